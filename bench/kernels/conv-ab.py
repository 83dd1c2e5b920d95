"""Kiln's CPU conv library entries vs PyTorch CPU, in one process, interleaved call by call (best of N each).

    /usr/bin/python3 bench/kernels/conv-ab.py [--ref REV] [--modes 0,1,2] [--reps 20] [--only 32ch,1x1] [--isa avx2]

Builds bench/kernels/conv-lib.cpp with kernels/cpu/lib.cpp of this checkout (and, with --ref, of git revision REV
as well: before/after in the same run; a library with the plain-store entries kiln_conv2d_*_out_f32 is timed through
those too, as "<build> out": what the renderer calls for a conv whose epilogue is only the store) and times each conv case of bench/run.ts the same way for every build and
for torch (torch.conv2d; aten convolution_backward for the input / weight gradient), alternating, so load on a
shared machine hits every entry alike. Same thread count (2 unless OMP_NUM_THREADS), OMP_WAIT_POLICY=passive as
run.ts sets it. `--isa avx2` caps both sides at AVX2 as `bench/run.ts --isa avx2` does (KILN_CPU_ISA=avx2 and the
builds with -mno-avx512f; torch with ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell).
Each output is checked against torch's (max |diff| / max |ref| < 1e-4) before timing. Prints one JSON line per
case and mode: best ms per entry and torch / entry ratios (> 1: faster than torch)."""
import argparse, ctypes, json, os, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument('--ref'); ap.add_argument('--modes', default='0'); ap.add_argument('--reps', type=int, default=20)
ap.add_argument('--only'); ap.add_argument('--isa', choices=['native', 'avx2'], default='native')
ap.add_argument('--shapes', help='other cases instead of run.ts\'s: C:O:H:k:s:N,... (square H x H input, padding (k-1)/2, N images)')
args = ap.parse_args()
os.environ.setdefault('OMP_WAIT_POLICY', 'passive')
if args.isa == 'avx2':  # before torch loads (oneDNN and OpenBLAS read these once)
  os.environ.update(KILN_CPU_ISA='avx2', ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2', OPENBLAS_CORETYPE='Haswell')
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
threads = int(os.environ.get('OMP_NUM_THREADS', '2'))
torch.set_num_threads(threads)
tmp = tempfile.mkdtemp(prefix='kiln-conv-ab-')


def build(name: str, kdir: str) -> dict:
  """The build's timed entries: `name` (store epilogue) and, where the library has them, `name out` (plain store)."""
  hdr = open(os.path.join(kdir, 'kiln_lib.h')).read()
  row, out = ('1' if k in hdr else '0' for k in ('kiln_epi4r', 'kiln_conv2d_bwd_weight_out_f32'))
  so = os.path.join(tmp, f'conv-{name.replace("@", "-")}.so')
  subprocess.run(['g++', '-O3', '-march=native', '-fopenmp', '-std=c++17', '-shared', '-fPIC', '-fno-gnu-unique', f'-DROW={row}', f'-DOUT={out}', '-I', kdir,
                  os.path.join(ROOT, 'bench/kernels/conv-lib.cpp'), os.path.join(kdir, 'lib.cpp'), '-o', so]
                 + (['-mno-avx512f'] if args.isa == 'avx2' else []), check=True)
  lib = ctypes.CDLL(so)
  fns = {name: lib.kb_conv, **({f'{name} out': lib.kb_conv_out} if out == '1' else {})}
  for f in fns.values():
    f.restype = ctypes.c_double
    f.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3
  return fns


libs = build('kiln', os.path.join(ROOT, 'kernels/cpu'))
if args.ref:
  subprocess.run(f'git -C {ROOT} archive {args.ref} kernels/cpu | tar -x -C {tmp}', shell=True, check=True)
  libs.update(build(f'kiln@{args.ref}', os.path.join(tmp, 'kernels/cpu')))

CASES = [('conv3x3 64ch 56²', 64, 64, 56, 3, 1), ('conv3x3 32ch 64² (UNet)', 32, 32, 64, 3, 1),
         ('conv3x3 320ch 64² (UNet)', 320, 320, 64, 3, 1), ('conv1x1 320→640ch 32² (UNet shortcut)', 320, 640, 32, 1, 1),
         ('conv3x3 320ch 64² stride 2 (UNet downsample)', 320, 320, 64, 3, 2)]
CASES = [(*c, 1) for c in CASES]
if args.shapes:
  CASES = []
  for t in args.shapes.split(','):
    C, O, H, k, s, N = (int(v) for v in t.split(':'))
    CASES.append((f'conv{k}x{k} {C}→{O}ch {H}²{f" stride {s}" if s > 1 else ""}{f" x{N}" if N > 1 else ""}', C, O, H, k, s, N))
rng = np.random.default_rng(0)
for name, C, O, H, k, s, N in CASES:
  if args.only and not any(o in name for o in args.only.split(',')): continue
  p = (k - 1) // 2
  Ho = (H + 2 * p - k) // s + 1
  x = rng.standard_normal((N, C, H, H), dtype=np.float32)
  w = rng.standard_normal((O, C, k, k), dtype=np.float32) * 0.1
  dy = rng.standard_normal((N, O, Ho, Ho), dtype=np.float32)
  dims = np.array([N, C, H, H, O, k, k, s, s, p, p, p, p, 1, 1, 1], dtype=np.int64)
  tx, tw, tdy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy)
  cb = lambda m: torch.ops.aten.convolution_backward(tdy, tx, tw, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, m)
  for mode in (int(m) for m in args.modes.split(',')):
    a, b, shape, tf = [(x, w, (N, O, Ho, Ho), lambda: torch.conv2d(tx, tw, stride=s, padding=p)),
                       (dy, w, (N, C, H, H), lambda: cb([True, False, False])[0]),
                       (x, dy, (O, C, k, k), lambda: cb([False, True, False])[1])][mode]
    y = np.zeros(shape, np.float32)
    best = {n: float('inf') for n in [*libs, 'torch']}
    with torch.no_grad():
      ref = tf().numpy()
      for r in range(args.reps + 1):
        for n, lib in libs.items():
          y[...] = np.nan
          t = lib(mode, dims.ctypes.data, a.ctypes.data, b.ctypes.data, y.ctypes.data, *shape[1:])
          if r == 0:
            err = float(np.abs(y - ref).max() / np.abs(ref).max())
            if not err < 1e-4: sys.exit(f'{n} {name} mode {mode}: rel. error {err} vs torch')
          else: best[n] = min(best[n], t)
        t0 = time.perf_counter(); tf(); t = time.perf_counter() - t0
        if r: best['torch'] = min(best['torch'], t)
    row = {'case': name, 'mode': ['forward', 'bwd_data', 'bwd_weight'][mode], 'threads': threads,
           **{f'{n} ms': round(v * 1e3, 3) for n, v in best.items()},
           **{f'torch/{n}': round(best['torch'] / best[n], 2) for n in libs}, 'load': [round(v, 2) for v in os.getloadavg()]}
    print(json.dumps(row, ensure_ascii=False), flush=True)
