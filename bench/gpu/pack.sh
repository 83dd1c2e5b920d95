#!/usr/bin/env bash
# Packs what the GPU machine needs beside the working tree into .gpu/ (git-ignored; carry it): node itself, the
# built addon, and node_modules pruned to what bench/gpu runs (tsx and esbuild, the image codecs, the progress bar,
# and face-api's weights and sample photos for PuLID), so the tree that travels stays under the device's 64 MiB.
# On the GPU machine, from the repository root: source .gpu/activate.sh && bash bench/gpu/run.sh "$OUT"
# --prebuild: also compile the CUDA programs of the kernel benchmarks here (nvcc needs no GPU) into
# .gpu/cache.tar.xz, which run.sh unpacks into the kernel cache there, saving their nvcc time on the lease.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu
node_bin=$(readlink -f "$(command -v node)")
if [ ! -f .gpu/node.xz ] || [ "$node_bin" -nt .gpu/node.xz ]; then xz -T0 -6 -c "$node_bin" > .gpu/node.xz; fi
# Test, type-checking, browser and tfjs packages stay behind; face-api keeps only its weights and sample photos.
drop=(@tensorflow typescript playwright-core ts-morph @ts-morph @babel @sinclair @jest jest jest-* ts-jest @types
      lodash caniuse-lite handlebars cmake-js node-api-headers node-addon-api benchmark)
args=()
for d in "${drop[@]}"; do args+=(--exclude="./node_modules/$d"); done
tar -cf - "${args[@]}" --exclude='./node_modules/@vladmandic/face-api/dist' --exclude='./node_modules/@vladmandic/face-api/src' \
  --exclude='./node_modules/.cache' ./node_modules ./build | xz -T0 -6 > .gpu/tree.tar.xz
if [ "${1:-}" = --prebuild ]; then
  rm -rf .gpu/cache && mkdir -p .gpu/cache
  # compile() builds the program, then stops for want of a driver: what is left is the cache.
  export KILN_NVCC=/usr/local/bin/nvcc KILN_CACHE=$root/.gpu/cache
  npx tsx bench/gpu/kernels.ts --backend cuda --out .gpu/prebuild-out >/dev/null 2>&1 || true
  find .gpu/cache -type f ! -name '*.cuda.so' ! -name '*.cu' -delete
  tar -cf - -C .gpu/cache . | xz -T0 -6 > .gpu/cache.tar.xz
  rm -rf .gpu/cache .gpu/prebuild-out
fi
cat > .gpu/activate.sh <<'ACT'
# sourced on the GPU machine from the repository root
mkdir -p /tmp/gpu-bin
[ -x /tmp/gpu-bin/node ] || { xz -dc .gpu/node.xz > /tmp/gpu-bin/node && chmod +x /tmp/gpu-bin/node; }
export PATH=/tmp/gpu-bin:$PATH
[ -d node_modules/tsx ] || tar -xJf .gpu/tree.tar.xz
node --version
ACT
du -sh .gpu/*
echo "total .gpu: $(du -sm .gpu | cut -f1) MiB; the working tree adds $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) bytes (64 MiB in all)"
