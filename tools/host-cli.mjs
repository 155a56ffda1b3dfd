// What the root scripts that front `iommufd-sim` share: build @iommufd/host and what it
// depends on, then run the built CLI with the given node flags and arguments, exiting with
// its status.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

/** Builds the host package, then runs `node [nodeFlags] cli.js [args]`; never returns. */
export function runHostCli(name, args, nodeFlags = []) {
  const build = spawnSync('pnpm', ['exec', 'turbo', 'run', 'build', '--filter=@iommufd/host...', '--output-logs=errors-only'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (build.status !== 0) {
    console.error(`${name}: the build failed; run \`pnpm build\` to see why`);
    process.exit(build.status ?? 1);
  }
  const cli = join(root, 'packages/host/dist/cli.js');
  const r = spawnSync(process.execPath, [...nodeFlags, cli, ...args], { cwd: root, stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
