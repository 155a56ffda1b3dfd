#!/usr/bin/env node
// The README's main job: build what the demo needs, then run `iommufd-sim demo` (a VMM-style
// end-to-end run on the default embedded machine). Extra arguments go to the demo.
import { runHostCli } from './host-cli.mjs';

runHostCli('demo', ['demo', ...process.argv.slice(2)]);
