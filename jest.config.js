/** Jest runs the TypeScript sources as ESM through ts-jest (transpile only; `npm run typecheck` and the
 * type-level fixtures test do the type checking).
 *
 * Two runs: `npm test` is the fast developer loop (about 2 minutes on 2 cores with a warm kernel cache);
 * `KILN_FULL=1` (`npm run test:full`, and what `.ci/run` runs) adds the slow suites listed here and the slow cases
 * inside fast files (`fullTest` from test/support/full.ts). Every test process runs the IR verifiers
 * (test/support/env.ts sets KILN_VERIFY=1). */
const full = process.env.KILN_FULL === '1';

/** Suites that only the full run takes (seconds from one full run on 2 busy cores with a cold kernel cache):
 * PuLID training (634) and generation (90), the deep planner simulations (203), the face networks on real
 * weights (pipeline 252, recognizer 133, CLI 34), nvcc compiles of the CUDA templates and generated code (83 +
 * 83), the type-level fixtures through tsc (92; `npm run typecheck` covers the sources), the per-template CPU
 * kernel sweeps (conv 44, attention 24, GEMM 19), the tiny UNet (39) and the PuLID gradient checks (32). The
 * fast run keeps the op table forward/backward on the C++ back end, fusion, memory planning, training of small
 * nets, IEEE special values and the compiler's golden and meta tests. */
export const slowSuites = [
  // Data parallel over mpirun -np 2 (collectives 32 s, micro UNet 105 s, PuLID stage 2 and the killed rank).
  'test/parallel/collective.test.ts',
  'test/parallel/data-parallel.test.ts',
  'test/parallel/pulid-dp.test.ts',
  'test/pulid/train.test.ts',
  'test/pulid/lightning-segments.test.ts',
  'test/pulid/generate.test.ts',
  'test/pulid/grad.test.ts',
  'test/schedule/memory-sim.test.ts',
  'test/schedule/checkpoint.test.ts',
  'test/face/pipeline.test.ts',
  'test/face/recognizer.test.ts',
  'test/face/cli.test.ts',
  'test/kernels/cuda-compile.test.ts',
  'test/backend/cuda-codegen.test.ts',
  'test/dsl/types.test.ts',
  'test/kernels/cpu-conv2d.test.ts',
  'test/kernels/cpu-attention.test.ts',
  'test/kernels/cpu-gemm.test.ts',
  'test/models/unet.test.ts',
  // DreamBooth on the micro base: class images, LoRA and full fine-tune compiled and trained (i22a).
  'test/models/dreambooth-train.test.ts',
  // CUDA emulator: whole training steps emulated vs C++ (80), template sweeps on the checked emulator (gemm 18,
  // attention 19, conv 9); the op table and the emulator's own tests stay in the fast run.
  'test/backend/training-cuda-emu.test.ts',
  'test/backend/random-shapes.test.ts',
  'test/kernels/cuda-emu-gemm.test.ts',
  'test/kernels/cuda-emu-attention.test.ts',
  'test/kernels/cuda-emu-conv2d.test.ts',
  // CLIs spawned one by one (141), pipelines on micro/tiny (112), the web app in headless Chromium (31-140),
  // the trainer killed mid-write (12).
  'test/cli/cli.test.ts',
  'test/pulid/pipeline.test.ts',
  'test/app/pulid-app.test.ts',
  'test/pulid/faults.test.ts',
  // Every CPU ISA path through a compiled program, one child process per path (18 s warm, 44 s cold).
  'test/backend/cpu-isa.test.ts',
  // CPU row kernels forward and backward at six row lengths, 14 compiled programs (7 s warm, 31-42 s cold).
  'test/backend/row-kernels.test.ts',
  // examples/ip-adapter-generate.ts on the float64 evaluator (53-115); IP-Adapter gradient checks and trainer (23, 85
  // with the compiled trainer)
  'test/ip-adapter/example.test.ts',
  'test/ip-adapter/train.test.ts',
  // IDFormer + ID attention + the tiny EVA02 tower compiled as one program vs the PuLID reference (≈ 60-190 s).
  'test/pulid/reference-compiled.test.ts',
  // Mixed precision on C++: op tables in bf16 and f16 (2 builds), tiny UNet gradients bf16 vs f32 (160 s cold).
  'test/backend/precision-cpu.test.ts',
  // The bf16 conv-net step through nvcc (70 s) and on the emulated CUDA back end vs C++ (40 s).
  'test/backend/precision-cuda.test.ts',
  // PuLID micro stage 1 trained 20 steps in f32 and bf16, and in f16 with loss scaling (590 s: three step builds).
  'test/pulid/precision-train.test.ts',
].map((f) => `<rootDir>/${f}`);

export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', ...(full ? [] : slowSuites)],
  setupFiles: ['<rootDir>/test/support/env.ts'],
  testTimeout: 120000,
};
