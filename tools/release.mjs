#!/usr/bin/env node
// The release flow: `changeset version` (bumps versions, writes CHANGELOGs, consumes the
// changesets), rebuild and re-check, then `changeset publish`. No registry write is possible
// on these machines, so publishing is a dry run unless `--publish` is given.
import { spawnSync } from 'node:child_process';

const publish = process.argv.includes('--publish');
const run = (cmd, args) => {
  console.log(`$ ${cmd} ${args.join(' ')}`);
  const s = spawnSync(cmd, args, { stdio: 'inherit' }).status ?? 1;
  if (s !== 0) process.exit(s);
};
run('pnpm', ['exec', 'changeset', 'version']);
run('pnpm', ['install', '--no-frozen-lockfile']);
run('pnpm', ['exec', 'turbo', 'run', 'build', 'test', 'api']);
if (publish) run('pnpm', ['exec', 'changeset', 'publish']);
else run('pnpm', ['-r', 'publish', '--dry-run', '--no-git-checks']);
