"""PyTorch eager twin of Kiln's UNet2DConditionModel (models/unet, SDXL layout, diffusers state-dict keys) for the
tiny-UNet training-step case of bench/run.ts (issue 16). Bench-only: Kiln never runs Python.

    /usr/bin/python3 bench/peers/unet_torch.py DIR

DIR/spec.json: {"config": UnetConfig, "threads", "minSamples", "maxTime", "lr", "weights": "weights.safetensors",
"inputs": {name: {"shape", "file"}}} with inputs sample, t, ctx, pooled, timeIds, target (raw float32). Loads Kiln's
weights, writes the first forward's prediction to DIR/pred.bin and loss to result.json (run.ts checks them against
Kiln's before using the time), then times training steps: forward, MSE loss, backward, AdamW step.
"""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            raise ValueError("%s: dtype %s, expected F32" % (k, v["dtype"]))
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy())
    return out


def timestep_embedding(t, dim):  # flip_sin_to_cos=True, shift 0 (models/nn/embeddings.ts)
    half = dim // 2
    freqs = torch.tensor([math.exp(-math.log(10000) * i / half) for i in range(half)], dtype=torch.float32, device=t.device)
    arg = t.reshape(-1, 1) * freqs.reshape(1, -1)
    emb = torch.cat([torch.cos(arg), torch.sin(arg)], 1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class TimestepEmbedding(nn.Module):
    def __init__(self, i, d):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(i, d), nn.Linear(d, d)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class Resnet(nn.Module):
    def __init__(self, i, o, temb, groups):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, i, eps=1e-5), nn.Conv2d(i, o, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, o)
        self.norm2, self.conv2 = nn.GroupNorm(groups, o, eps=1e-5), nn.Conv2d(o, o, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(i, o, 1) if i != o else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x))) + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, qdim, heads, head_dim, cross_dim=None):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.to_q = nn.Linear(qdim, inner, bias=False)
        self.to_k = nn.Linear(cross_dim or qdim, inner, bias=False)
        self.to_v = nn.Linear(cross_dim or qdim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, qdim)])

    def forward(self, x, ctx=None):
        c = x if ctx is None else ctx
        b, lq, _ = x.shape
        split = lambda t: t.reshape(b, t.shape[1], self.heads, self.head_dim).transpose(1, 2)
        q, k, v = split(self.to_q(x)), split(self.to_k(c)), split(self.to_v(c))
        a = torch.softmax(q @ k.transpose(-1, -2) * (1 / math.sqrt(self.head_dim)), dim=-1) @ v
        return self.to_out[0](a.transpose(1, 2).reshape(b, lq, self.heads * self.head_dim))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        h, g = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(g)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class Block(nn.Module):
    def __init__(self, dim, heads, head_dim, cross_dim):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim, eps=1e-5), Attention(dim, heads, head_dim)
        self.norm2, self.attn2 = nn.LayerNorm(dim, eps=1e-5), Attention(dim, heads, head_dim, cross_dim)
        self.norm3, self.ff = nn.LayerNorm(dim, eps=1e-5), FeedForward(dim)

    def forward(self, x, ctx):
        h = x + self.attn1(self.norm1(x))
        h = h + self.attn2(self.norm2(h), ctx)
        return h + self.ff(self.norm3(h))


class Transformer2D(nn.Module):
    def __init__(self, c, channels, heads, layers):
        super().__init__()
        hd = channels // heads
        self.norm = nn.GroupNorm(c["normGroups"], channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, heads * hd)
        self.transformer_blocks = nn.ModuleList([Block(heads * hd, heads, hd, c["crossAttentionDim"]) for _ in range(layers)])
        self.proj_out = nn.Linear(heads * hd, channels)

    def forward(self, x, ctx):
        b, ch, h, w = x.shape
        t = self.proj_in(self.norm(x).reshape(b, ch, h * w).transpose(1, 2))
        for blk in self.transformer_blocks:
            t = blk(t, ctx)
        return self.proj_out(t).transpose(1, 2).reshape(b, ch, h, w) + x


class Sampler(nn.Module):
    def __init__(self, ch, down):
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(ch, ch, 3, stride=2 if down else 1, padding=1)

    def forward(self, x):
        return self.conv(x if self.down else F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.Module):
    pass


class UNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        ch, n = c["blockOutChannels"], len(c["blockOutChannels"])
        temb = ch[0] * 4
        res = lambda i, o: Resnet(i, o, temb, c["normGroups"])
        tr = lambda chn, heads, layers: Transformer2D(c, chn, heads, layers)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.add_embedding = TimestepEmbedding(c["projectionClassEmbeddingsInputDim"], temb)
        self.conv_in = nn.Conv2d(c["inChannels"], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        out = ch[0]
        for i in range(n):
            st, in_c, out = Stage(), out, ch[i]
            st.resnets = nn.ModuleList([res(in_c if j == 0 else out, out) for j in range(c["layersPerBlock"])])
            if c["crossAttnDown"][i]:
                st.attentions = nn.ModuleList([tr(out, c["heads"][i], c["transformerLayersPerBlock"][i]) for _ in range(c["layersPerBlock"])])
            if i < n - 1:
                st.downsamplers = nn.ModuleList([Sampler(out, True)])
            self.down_blocks.append(st)
        top = ch[-1]
        self.mid_block = Stage()
        self.mid_block.resnets = nn.ModuleList([res(top, top), res(top, top)])
        self.mid_block.attentions = nn.ModuleList([tr(top, c["heads"][-1], c["transformerLayersPerBlock"][-1])])
        rch, rheads, rlayers, rcross = ch[::-1], c["heads"][::-1], c["transformerLayersPerBlock"][::-1], c["crossAttnDown"][::-1]
        self.up_blocks = nn.ModuleList()
        prev = rch[0]
        for i in range(n):
            st, o, in_c = Stage(), rch[i], rch[min(i + 1, n - 1)]
            lp = c["layersPerBlock"]
            st.resnets = nn.ModuleList([res((prev if j == 0 else o) + (in_c if j == lp else o), o) for j in range(lp + 1)])
            if rcross[i]:
                st.attentions = nn.ModuleList([tr(o, rheads[i], rlayers[i]) for _ in range(lp + 1)])
            if i < n - 1:
                st.upsamplers = nn.ModuleList([Sampler(o, False)])
            self.up_blocks.append(st)
            prev = o
        self.conv_norm_out = nn.GroupNorm(c["normGroups"], ch[0], eps=1e-5)
        self.conv_out = nn.Conv2d(ch[0], c["outChannels"], 3, padding=1)

    def forward(self, sample, t, ctx, pooled, time_ids):
        c, b = self.c, sample.shape[0]
        emb = self.time_embedding(timestep_embedding(t.expand(b) if t.numel() == 1 else t, c["blockOutChannels"][0]))
        ids = timestep_embedding(time_ids.reshape(-1), c["additionTimeEmbedDim"]).reshape(b, -1)
        emb = emb + self.add_embedding(torch.cat([pooled, ids], 1))
        h = self.conv_in(sample)
        skips = [h]
        for st in self.down_blocks:
            for j, r in enumerate(st.resnets):
                h = r(h, emb)
                if hasattr(st, "attentions"):
                    h = st.attentions[j](h, ctx)
                skips.append(h)
            if hasattr(st, "downsamplers"):
                h = st.downsamplers[0](h)
                skips.append(h)
        h = self.mid_block.resnets[0](h, emb)
        h = self.mid_block.attentions[0](h, ctx)
        h = self.mid_block.resnets[1](h, emb)
        for st in self.up_blocks:
            for j, r in enumerate(st.resnets):
                h = r(torch.cat([h, skips.pop()], 1), emb)
                if hasattr(st, "attentions"):
                    h = st.attentions[j](h, ctx)
            if hasattr(st, "upsamplers"):
                h = st.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "spec.json")) as f:
        spec = json.load(f)
    torch.set_num_threads(spec["threads"])
    x = {k: torch.from_numpy(np.fromfile(os.path.join(d, v["file"]), dtype="<f4").reshape(v["shape"]).copy())
         for k, v in spec["inputs"].items()}
    model = UNet(spec["config"])
    weights = read_safetensors(os.path.join(d, spec["weights"]))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise SystemExit("weights: missing %s unexpected %s" % (missing[:5], unexpected[:5]))
    args = (x["sample"], x["t"], x["ctx"], x["pooled"], x["timeIds"])
    with torch.no_grad():
        pred = model(*args)
        loss0 = float(((pred - x["target"]) ** 2).mean())
    pred.numpy().astype("<f4").tofile(os.path.join(d, "pred.bin"))
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = ((model(*args) - x["target"]) ** 2).mean()
        loss.backward()
        opt.step()

    step()
    step()
    samples, start = [], time.perf_counter()
    while len(samples) < spec["minSamples"] or (time.perf_counter() - start < spec["maxTime"] and len(samples) < 1000):
        t0 = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    with open(os.path.join(d, "result.json"), "w") as f:
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "loss": loss0,
                   "params": sum(p.numel() for p in model.parameters()),
                   "medianMs": samples[len(samples) // 2], "minMs": samples[0], "samples": len(samples)}, f)


if __name__ == "__main__":
    main()
