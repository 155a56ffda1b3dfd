#!/usr/bin/env node
// Long runs (issue 9): build the host, then `iommufd-sim longrun` with a real --expose-gc so
// every heap figure is taken after a full collection. Arguments go to the command, e.g.
//   pnpm longrun --platform intel-vtd --minutes 5
// Without arguments: 25 VM cycles on every preset.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const build = spawnSync('pnpm', ['exec', 'turbo', 'run', 'build', '--filter=@iommufd/host...', '--output-logs=errors-only'], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'inherit'],
});
if (build.status !== 0) {
  console.error('longrun: the build failed; run `pnpm build` to see why');
  process.exit(build.status ?? 1);
}
const cli = join(root, 'packages/host/dist/cli.js');
const r = spawnSync(process.execPath, ['--expose-gc', cli, 'longrun', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
