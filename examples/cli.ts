/** Shared by the example CLIs: run `main` and turn a thrown error into one line on stderr and exit status 1
 * (the message names the file, shape or tool at fault); KILN_DEBUG=1 prints the whole error with its stack. */
export async function runCli(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    console.error(process.env.KILN_DEBUG ? e : `error: ${(e as Error).message}`);
    process.exit(1);
  }
}
