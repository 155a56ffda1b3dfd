#!/usr/bin/env node
/**
 * `iommufd-sim`: the command line of the simulated host (commands in `cli/main.ts`).
 *
 * Exit codes: 0 success, 1 the run failed, 2 bad command line, 3 invalid scenario or trace file;
 * 141 when the reader of stdout went away (`iommufd-sim demo | head`), as a program killed by
 * SIGPIPE reports in a shell.
 */
import { cliMain } from './cli/main.js';

/** 128 + SIGPIPE: Node ignores SIGPIPE, so a closed pipe arrives as an EPIPE write error instead. */
const EXIT_BROKEN_PIPE = 141;

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(EXIT_BROKEN_PIPE);
});

process.exitCode = await cliMain(process.argv.slice(2));
