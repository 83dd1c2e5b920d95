/** Every test process runs the IR verifiers between compiler stages (KILN_VERIFY=1) unless told otherwise. */
process.env.KILN_VERIFY ??= '1';
