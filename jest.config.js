/** Jest runs the TypeScript sources as ESM through ts-jest (transpile only; `npm run typecheck` and the
 * type-level fixtures test do the type checking).
 *
 * Two runs: `npm test` is the fast developer loop (about 2 minutes on 2 cores with a warm kernel cache);
 * `KILN_FULL=1` (`npm run test:full`, and what `.ci/run` runs) adds the slow suites listed here and the slow cases
 * inside fast files (`fullTest` from test/support/full.ts). Every test process runs the IR verifiers
 * (test/support/env.ts sets KILN_VERIFY=1). */
const full = process.env.KILN_FULL === '1';

/** Suites that only the full run takes: PuLID training (several minutes of compiling and training), the
 * deep planner and model cases. */
export const slowSuites = [
  '<rootDir>/test/pulid/train.test.ts',
];

export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', ...(full ? [] : slowSuites)],
  setupFiles: ['<rootDir>/test/support/env.ts'],
  testTimeout: 120000,
};
