"""PyTorch CPU peer for bench/run.ts (issue 16): runs the same cases on the same inputs, in eager mode.

    /usr/bin/python3 bench/peers/torch_cpu.py DIR

DIR/spec.json: {"threads": T, "cases": [{"name", "op", "inputs": {name: {"shape", "file"}}, "attrs"}]}; every input
file is raw little-endian float32. The process loads every case, writes each case's output to DIR/out-<index>.bin
(float32, Kiln's layout), prints one JSON line {"ready": true, "torch", "threads", "parallel"} and then serves
timing requests, one JSON line each on stdin ({"case": i, "minSamples": S, "maxTime": seconds}) answered by one
JSON line on stdout ({"medianMs", "minMs", "samples"}), until stdin closes. run.ts interleaves these requests with
Kiln's own timings of the same case (rounds), so both sides are measured under the same machine conditions.
Bench-only: Kiln never runs Python.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def attention(q, k, v, scale):
    return torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1).matmul(v)


def op_fn(c, t):
    a = c.get("attrs", {})
    op = c["op"]
    if op == "matmul":
        return lambda: torch.matmul(t["a"], t["b"])
    if op == "conv2d":
        return lambda: F.conv2d(t["x"], t["w"], stride=a["stride"], padding=a["padding"])
    if op == "attention":
        return lambda: attention(t["q"], t["k"], t["v"], a["scale"])
    if op == "softmax":
        return lambda: torch.softmax(t["x"], dim=-1)
    if op == "log_softmax":
        return lambda: torch.log_softmax(t["x"], dim=-1)
    if op == "layernorm":
        return lambda: F.layer_norm(t["x"], (t["x"].shape[-1],), t["gamma"], t["beta"], a["eps"])
    if op == "groupnorm_silu":
        return lambda: F.silu(F.group_norm(t["x"], a["groups"], t["gamma"], t["beta"], a["eps"]))
    raise ValueError("unknown op " + op)


def timed(fn, min_samples, max_time):
    with torch.no_grad():
        fn()
        fn()
        samples = []
        start = time.perf_counter()
        while len(samples) < min_samples or (time.perf_counter() - start < max_time and len(samples) < 1000):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return {"medianMs": samples[len(samples) // 2], "minMs": samples[0], "samples": len(samples)}


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "spec.json")) as f:
        spec = json.load(f)
    torch.set_num_threads(spec["threads"])
    fns = []
    for i, c in enumerate(spec["cases"]):
        t = {}
        for name, inp in c["inputs"].items():
            arr = np.fromfile(os.path.join(d, inp["file"]), dtype="<f4").reshape(inp["shape"])
            t[name] = torch.from_numpy(arr).contiguous()
        fn = op_fn(c, t)
        with torch.no_grad():
            fn().contiguous().numpy().astype("<f4").tofile(os.path.join(d, "out-%d.bin" % i))
        fns.append(fn)
    info = {"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "parallel": torch.__config__.parallel_info().split("\n")[0:4]}
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        print(json.dumps(timed(fns[req["case"]], req["minSamples"], req["maxTime"])), flush=True)


if __name__ == "__main__":
    main()
