#!/usr/bin/env node
// The README's main job: build what the demo needs, then run `iommufd-sim demo` (a VMM-style
// end-to-end run on the default embedded machine). Extra arguments go to the demo.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const build = spawnSync('pnpm', ['exec', 'turbo', 'run', 'build', '--filter=@iommufd/host...', '--output-logs=errors-only'], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'inherit'],
});
if (build.status !== 0) {
  console.error('demo: the build failed; run `pnpm build` to see why');
  process.exit(build.status ?? 1);
}
const cli = join(root, 'packages/host/dist/cli.js');
const r = spawnSync(process.execPath, [cli, 'demo', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
