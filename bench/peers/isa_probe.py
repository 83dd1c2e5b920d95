"""Which ISA each peer library actually runs, for bench/run.ts (issue 16, `--isa`): run under the peer's environment
with ONEDNN_VERBOSE=1, it does one small convolution (oneDNN prints its ISA and the implementation it picked, e.g.
"isa:Intel AVX2" and "jit:avx2", on stdout; run.ts parses those lines) and prints one JSON line with ATen's CPU
capability (torch.__config__.show) and the core OpenBLAS selected (openblas_get_corename, the BLAS torch.matmul
calls on Debian). Bench-only, like torch_cpu.py.
"""
import ctypes
import ctypes.util
import json
import sys

import torch
import torch.nn.functional as F

with torch.no_grad():
    F.conv2d(torch.ones(1, 32, 32, 32), torch.ones(32, 32, 3, 3), padding=1)
sys.stdout.flush()
aten = [l.split(":", 1)[1].strip() for l in torch.__config__.show().split("\n") if "CPU capability usage" in l]
core = None
for name in ("libopenblas.so.0", ctypes.util.find_library("openblas")):
    try:
        lib = ctypes.CDLL(name)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
        break
    except (OSError, AttributeError, TypeError):
        continue
print(json.dumps({"aten": aten[0] if aten else None, "openblasCore": core}))
