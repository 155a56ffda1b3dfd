#!/usr/bin/env node
/**
 * `iommufd-sim`: the command line of the simulated host (commands in `cli/main.ts`).
 *
 * Exit codes: 0 success, 1 the run failed, 2 bad command line, 3 invalid scenario or trace file.
 */
import { cliMain } from './cli/main.js';

process.exitCode = await cliMain(process.argv.slice(2));
