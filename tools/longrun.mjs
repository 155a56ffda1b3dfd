#!/usr/bin/env node
// Long runs (issue 9): build the host, then `iommufd-sim longrun` under a real --expose-gc so
// every heap figure is taken after a full collection. Arguments go to the command, e.g.
//   pnpm longrun --platform intel-vtd --minutes 5
// Without arguments: 25 VM cycles on every preset.
import { runHostCli } from './host-cli.mjs';

runHostCli('longrun', ['longrun', ...process.argv.slice(2)], ['--expose-gc']);
