"""PyTorch peers of bench/gpu/kernels.ts on the same GPU (issue 14 Part B d). Bench-only: Kiln never runs Python.

    echo '{"reps": 20, "cases": [{"name": ..., "kind": "gemm"|"attn"|"conv"|"gn_silu", ...}]}' | python3 bench/gpu/torch_kernels.py

Each case runs in bf16 on CUDA (on CPU when no GPU is present, for a dry run); time = median (and min) of 5 batches of
`reps` back-to-back calls between two CUDA events, after warm-up. Prints one JSON line: {name: {medianMs, minMs,
variant[, copyMs]}} ({error} for a case that failed).
  gemm     torch.matmul (cuBLAS)
  attn     F.scaled_dot_product_attention (flash / cuDNN / efficient, whichever torch picks); backward: fwd + bwd
  conv     F.conv2d 3x3 pad 1 (cuDNN), NCHW and channels-last, the faster reported; backward: fwd + dx + dw
  gn_silu  F.silu(F.group_norm(x, G, w, b)); copyMs: dst.copy_(x) of the same tensor (device-to-device)
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

dev = "cuda" if torch.cuda.is_available() else "cpu"
dt = torch.bfloat16


def timed(fn, reps):
    for _ in range(3):
        fn()
    if dev == "cuda":
        torch.cuda.synchronize()
    out = []
    for _ in range(5):
        if dev == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(reps):
                fn()
            b.record()
            b.synchronize()
            out.append(a.elapsed_time(b) / reps)
        else:
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            out.append((time.perf_counter() - t) * 1e3 / reps)
    out.sort()
    return {"medianMs": out[2], "minMs": out[0]}


def rand(*shape, scale=1.0, grad=False):
    return (torch.randn(*shape, device=dev, dtype=torch.float32) * scale).to(dt).requires_grad_(grad)


def gemm(c, reps):
    a, b = rand(c["m"], c["k"]), rand(c["k"], c["n"])
    return dict(timed(lambda: torch.matmul(a, b), reps), variant="torch.matmul")


def attn(c, reps):
    shape = (c["b"], c["h"], c["s"], c["d"])
    q, k, v = (rand(*shape, grad=c["backward"]) for _ in range(3))
    if not c["backward"]:
        with torch.no_grad():
            return dict(timed(lambda: F.scaled_dot_product_attention(q, k, v), reps), variant="sdpa")
    do = rand(*shape)

    def step():
        o = F.scaled_dot_product_attention(q, k, v)
        torch.autograd.grad(o, (q, k, v), do)
    return dict(timed(step, reps), variant="sdpa fwd+bwd")


def conv(c, reps):
    best = None
    for layout in ("nchw", "channels_last"):
        x, w = rand(c["n"], c["c"], c["hw"], c["hw"], grad=c["backward"]), rand(c["c"], c["c"], 3, 3, scale=(9 * c["c"]) ** -0.5, grad=c["backward"])
        if layout == "channels_last":
            x = x.detach().to(memory_format=torch.channels_last).requires_grad_(c["backward"])
            w = w.detach().to(memory_format=torch.channels_last).requires_grad_(c["backward"])
        if c["backward"]:
            dy = rand(c["n"], c["c"], c["hw"], c["hw"])
            if layout == "channels_last":
                dy = dy.to(memory_format=torch.channels_last)

            def fn():
                y = F.conv2d(x, w, padding=1)
                torch.autograd.grad(y, (x, w), dy)
        else:
            def fn():
                with torch.no_grad():
                    F.conv2d(x, w, padding=1)
        t = dict(timed(fn, reps), variant="cudnn " + layout)
        if best is None or t["medianMs"] < best["medianMs"]:
            best = t
    return best


def gn_silu(c, reps):
    x = rand(c["n"], c["c"], c["hw"], c["hw"], scale=3.0)
    w, b = rand(c["c"]), rand(c["c"])
    dst = torch.empty_like(x)
    with torch.no_grad():
        t = timed(lambda: F.silu(F.group_norm(x, c["groups"], w, b)), reps)
        t["copyMs"] = timed(lambda: dst.copy_(x), reps)["medianMs"]
    return dict(t, variant="F.silu(F.group_norm)")


def main():
    spec = json.load(sys.stdin)
    torch.backends.cudnn.benchmark = True
    out = {}
    for c in spec["cases"]:
        try:
            out[c["name"]] = {"gemm": gemm, "attn": attn, "conv": conv, "gn_silu": gn_silu}[c["kind"]](c, spec["reps"])
            print("torch %s: %.4f ms (%s)" % (c["name"], out[c["name"]]["medianMs"], out[c["name"]]["variant"]), file=sys.stderr)
        except Exception as e:  # one failing case must not lose the others
            out[c["name"]] = {"error": "%s: %s" % (type(e).__name__, e)}
        if dev == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
