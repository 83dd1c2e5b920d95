"""PyTorch eager side of bench/gpu/unet-step.ts (issue 14 part e): one UNet training step (forward, MSE loss,
backward, AdamW) of bench/peers/unet_torch.py's twin of Kiln's UNet, under torch.autocast(bfloat16) with f32
master weights (the match of Kiln's 'bf16' policy), random init, timed with CUDA events. Bench-only.

    python3 bench/gpu/torch_unet_step.py --spec '{"config": UnetConfig, "tokens": 77, "steps": 5, "lr": 1e-5,
                                                  "device": "cuda", "compile": false}'

Prints a JSON line after every timed step ("partial": true) and a last one: ms (median step), msAll,
maxMemoryAllocated, ... Attention runs through F.scaled_dot_product_attention (flash / memory-efficient kernels, as
eager users run it) unless the spec says "attention": "naive" (the twin's own softmax(QKᵀ)V).
"""
import argparse
import importlib.util
import json
import os
import sys
import time
import types

import torch
import torch.nn.functional as F


def load_twin():
    try:
        import numpy  # noqa: F401  (unet_torch.py imports it at the top; only its CPU peer uses it)
    except ImportError:
        sys.modules["numpy"] = types.ModuleType("numpy")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers", "unet_torch.py")
    spec = importlib.util.spec_from_file_location("unet_torch", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sdpa_forward(self, x, ctx=None):
    c = x if ctx is None else ctx
    b, lq, _ = x.shape
    split = lambda t: t.reshape(b, t.shape[1], self.heads, self.head_dim).transpose(1, 2)
    a = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(c)), split(self.to_v(c)))
    return self.to_out[0](a.transpose(1, 2).reshape(b, lq, self.heads * self.head_dim))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True, help="JSON: config, tokens, steps, lr, device, compile, attention, warmup, autocast")
    s = json.loads(ap.parse_args().spec)
    c, dev = s["config"], torch.device(s.get("device", "cuda"))
    cuda = dev.type == "cuda"
    twin = load_twin()
    attention = s.get("attention", "sdpa" if hasattr(F, "scaled_dot_product_attention") else "naive")
    if attention == "sdpa":
        twin.Attention.forward = sdpa_forward
    torch.manual_seed(0)
    if cuda:
        torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    if hasattr(torch, "get_default_device"):  # torch >= 2.3: build the weights on the device (a CPU init of 2.6 B values takes long)
        with dev:
            model = twin.UNet(c)
    else:
        model = twin.UNet(c).to(dev)
    build_s = time.perf_counter() - t0
    S, L = c["sampleSize"], s.get("tokens", 77)
    pooled = c["projectionClassEmbeddingsInputDim"] - c["timeIds"] * c["additionTimeEmbedDim"]
    g = torch.Generator(device="cpu").manual_seed(1)
    rnd = lambda *shape: (torch.rand(*shape, generator=g) * 2 - 1).to(dev)
    args = (rnd(1, 4, S, S), torch.full((1,), 500.0, device=dev), rnd(1, L, c["crossAttentionDim"]), rnd(1, pooled),
            torch.tensor([[8.0 * S, 8.0 * S, 0, 0, 8.0 * S, 8.0 * S]], device=dev))
    target = rnd(1, 4, S, S)
    fused = False
    try:
        opt = torch.optim.AdamW(model.parameters(), lr=s.get("lr", 1e-5), betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, fused=cuda)
        fused = cuda
    except (TypeError, RuntimeError):
        opt = torch.optim.AdamW(model.parameters(), lr=s.get("lr", 1e-5), betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    run = torch.compile(model) if s.get("compile") else model
    # On the CPU (a dry run) autocast stays off by default: torch 1.13's CPU autocast leaves group_norm mixed.
    use_autocast = s.get("autocast", cuda)
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_autocast)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            pred = run(*args)
        loss = (pred.float() - target).square().mean()
        loss.backward()
        opt.step()
        return loss

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    t0 = time.perf_counter()
    losses = []
    for _ in range(s.get("warmup", 2)):
        losses.append(float(step()))
    warm_s = time.perf_counter() - t0
    ms, wall = [], []
    window = [time.time()]
    out = {
        "torch": torch.__version__, "device": torch.cuda.get_device_name(dev) if cuda else "cpu", "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()), "losses": losses, "attention": attention, "fusedAdamW": fused,
        "compile": bool(s.get("compile")), "autocast": "bfloat16, f32 master weights" if use_autocast else "off: f32", "cudnnBenchmark": cuda,
        "buildSeconds": round(build_s, 2), "warmupSeconds": round(warm_s, 2), "timedWindowEpoch": window,
    }

    def emit(partial):  # a line after every timed step: the parent keeps the last one if it has to stop this process
        out.update(ms=sorted(ms)[len(ms) // 2], msAll=[round(x, 3) for x in ms], wallMs=sorted(wall)[len(wall) // 2], partial=partial)
        if cuda:
            free, total = torch.cuda.mem_get_info(dev)
            out.update(maxMemoryAllocated=torch.cuda.max_memory_allocated(dev), maxMemoryReserved=torch.cuda.max_memory_reserved(dev),
                       deviceUsedBytes=total - free, cuda=torch.version.cuda)
        print(json.dumps(out), flush=True)

    for _ in range(s.get("steps", 5)):
        t1 = time.perf_counter()
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step()
            b.record()
            b.synchronize()
            ms.append(a.elapsed_time(b))
        else:
            step()
            ms.append((time.perf_counter() - t1) * 1e3)
        wall.append((time.perf_counter() - t1) * 1e3)
        emit(True)
    window.append(time.time())
    losses.append(float(step()))
    sync()
    emit(False)

if __name__ == "__main__":
    main()
