#!/usr/bin/env node
// `pnpm bench [NAME]`: builds, then runs the benchmarks of shared/design/BENCH.md
// (vsmmu-mix, translate, ioctl, map, scale). Each package that owns benchmarks has a
// `bench` script taking the optional NAME; a package skips names it does not own.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const names = process.argv.slice(2);
const build = spawnSync('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
let status = 0;
for (const d of readdirSync(join(root, 'packages')).sort()) {
  const pj = join(root, 'packages', d, 'package.json');
  if (!existsSync(pj) || !JSON.parse(readFileSync(pj, 'utf8')).scripts?.bench) continue;
  const r = spawnSync('pnpm', ['--silent', 'run', 'bench', ...names], { cwd: join(root, 'packages', d), stdio: 'inherit' });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
