/** The full test run (`.ci/run`, `npm run test:full`) sets KILN_FULL=1; the default `npm test` is the fast
 * developer loop. Slow whole files are listed in jest.config.js; slow cases inside a fast file use these. */
export const FULL = process.env.KILN_FULL === '1';
/** A test that runs only in the full run (reported as skipped in the fast one). */
export const fullTest: jest.It = FULL ? test : test.skip;
