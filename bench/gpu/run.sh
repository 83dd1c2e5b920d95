#!/usr/bin/env bash
# Issue 14 Part B on the lent GPU machine, as one prepared script: each step under its own time limit, JSON written
# as each finishes (a timeout still returns what is done). From the repository root:
#   bash bench/gpu/pack.sh                           # here: node, the built addon and a pruned node_modules into .gpu/
#   device run (carry .gpu): source .gpu/activate.sh && bash bench/gpu/run.sh "$OUT" [step ...]
# Steps (default: all, in this order): info optable train sanitize kernels unet pulid. On the device (16 cores, H200)
# the first lease ran info optable train sanitize in 161 s, then train beside kernels in 190 s and unet in 96 s; pulid
# (not yet run there) stops itself at 280 s.
# KILN_GPU_TAR=FILE: after every step, FILE is rewritten as a tar of the output folder (the device tool returns at
# most 8 files, so its command keeps its results in one tar under $OUT).
# Dry run without a GPU (the emulator instead, same commands): KILN_GPU_DRYRUN=1 bash bench/gpu/run.sh /tmp/gpu-dry
set -uo pipefail
out=${1:-bench/results}; shift || true
steps=${*:-info optable train sanitize kernels unet pulid}
mkdir -p "$out"
backend=cuda
[ "${KILN_GPU_DRYRUN:-}" = 1 ] && backend=cuda-emu
export KILN_CACHE=${KILN_CACHE:-/tmp/kiln-cache}
# CUDA programs prebuilt by pack.sh --prebuild (same nvcc release here and there) are found by their cache key, which
# names the nvcc used: the same wrapper path on both machines.
if [ "$backend" = cuda ]; then
  if [ ! -e /usr/local/bin/nvcc ] && command -v nvcc >/dev/null; then
    printf '#!/bin/sh\nexec %s "$@"\n' "$(readlink -f "$(command -v nvcc)")" > /usr/local/bin/nvcc && chmod +x /usr/local/bin/nvcc
  fi
  [ -x /usr/local/bin/nvcc ] && export KILN_NVCC=/usr/local/bin/nvcc
  [ -f .gpu/cache.tar.xz ] && mkdir -p "$KILN_CACHE" && tar -xJf .gpu/cache.tar.xz -C "$KILN_CACHE"
fi
has() { [[ " $steps " == *" $1 "* ]]; }
step() {
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$@"; local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
  bundle
}
bundle() { [ -n "${KILN_GPU_TAR:-}" ] && tar -cf "$KILN_GPU_TAR.$BASHPID.tmp" -C "$out" . && mv "$KILN_GPU_TAR.$BASHPID.tmp" "$KILN_GPU_TAR"; return 0; }
check=(node --import tsx bench/gpu/check.ts --backend "$backend" --out "$out")
if has info && [ "$backend" = cuda ]; then
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nvcc --version | tail -2;
    g++ --version | head -1; python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())';
    compute-sanitizer --version | head -2; nproc; } > "$out/gpu-info.txt" 2>&1
  cat "$out/gpu-info.txt"; bundle
fi
if has optable; then
  step optable-f32-host 100 "${check[@]}" optable --precision f32 --launch host
  step optable-f32-list 100 "${check[@]}" optable --precision f32 --launch list
  step optable-bf16-host 100 "${check[@]}" optable --precision bf16 --launch host
fi
# The training comparison spends minutes in g++ and nvcc and only milliseconds on the GPU, so when the kernel
# benchmarks run too it runs beside them (its log printed when it ends) instead of before them.
train_pid=
if has train; then
  if has kernels; then
    step train 240 "${check[@]}" train > "$out/train.log" 2>&1 &
    train_pid=$!
  else
    step train 240 "${check[@]}" train
  fi
fi
if has sanitize && [ "$backend" = cuda ]; then
  # One run of the micro UNet training step and of the op table, each kernel launched on its own, under the
  # sanitizer's memcheck (global and shared out-of-bounds, misaligned, leaks) and racecheck (shared-memory hazards).
  for tool in memcheck racecheck; do
    step "sanitize-$tool" 120 compute-sanitizer --tool "$tool" --print-limit 20 --error-exitcode 3 \
      node --import tsx bench/gpu/check.ts once --launch list --backend cuda --out "$out" 2>&1 | tee "$out/sanitize-$tool.txt"
  done
fi
has kernels && step kernels 240 node --import tsx bench/gpu/kernels.ts --backend "$backend" --out "$out" $([ "$backend" = cuda-emu ] && echo --small --reps 2)
[ -n "$train_pid" ] && { wait "$train_pid"; cat "$out/train.log"; bundle; }
# The UNet step stops itself at its --deadline (200 s here) and keeps what it measured.
has unet && step unet 230 node --import tsx bench/gpu/unet-step.ts --backend "$backend" --out "$out" --deadline 200 $([ "$backend" = cuda-emu ] && echo --config tiny)
# PuLID SDXL stage 2 at 768² in bf16 under the planner's 14 GiB budget: planned against measured device memory.
has pulid && step pulid 300 node --import tsx bench/gpu/pulid-step.ts --backend "$backend" --out "$out" --deadline 280 $([ "$backend" = cuda-emu ] && echo --config micro --steps 1)
exit 0
