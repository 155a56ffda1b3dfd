#!/usr/bin/env node
// CI rule: a change to a package's public API report (packages/*/etc/*.api.md) since the
// last release must come with a pending changeset that names that package. The last release
// is the newest commit that wrote a package CHANGELOG.md (what `changeset version` does); with
// no release yet, the whole history counts.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

let base;
try {
  git('rev-parse', 'HEAD');
} catch {
  console.log('changesets: no commits yet, nothing to check');
  process.exit(0);
}
if (git('rev-parse', '--is-shallow-repository') === 'true') {
  console.log('changesets: shallow clone, the history needed for the check is missing; skipping');
  process.exit(0);
}
const releases = git('log', '--format=%H', '--', 'packages/*/CHANGELOG.md');
base = releases.split('\n').filter(Boolean)[0];
const range = base ? [`${base}..HEAD`] : ['HEAD'];
const changedReports = new Set(
  git('log', '--format=', '--name-only', ...range, '--', 'packages/*/etc/*.api.md')
    .split('\n')
    .filter(Boolean),
);
// Uncommitted report changes count too (a developer running the check before committing).
for (const f of git('status', '--porcelain', '--', 'packages/*/etc/*.api.md').split('\n').filter(Boolean)) {
  changedReports.add(f.slice(3));
}

const pending = new Set();
const csDir = join(root, '.changeset');
for (const f of existsSync(csDir) ? readdirSync(csDir) : []) {
  if (!f.endsWith('.md') || f === 'README.md') continue;
  const text = readFileSync(join(csDir, f), 'utf8');
  const front = text.split('---')[1] ?? '';
  for (const m of front.matchAll(/["']?(@iommufd\/[a-z0-9-]+)["']?\s*:\s*(major|minor|patch)/g)) pending.add(m[1]);
}

const missing = [];
for (const report of changedReports) {
  const pkgDir = report.split('/')[1];
  const pkgJson = join(root, 'packages', pkgDir, 'package.json');
  if (!existsSync(pkgJson)) continue;
  const name = JSON.parse(readFileSync(pkgJson, 'utf8')).name;
  if (!pending.has(name)) missing.push(`${name} (${report})`);
}
if (missing.length) {
  console.error('changesets: these public API reports changed without a changeset naming the package:');
  for (const m of missing) console.error(`  - ${m}`);
  console.error('Add one with `pnpm exec changeset` (a breaking change to @iommufd/driver-api is a major).');
  process.exit(1);
}
console.log(`changesets: ${changedReports.size} changed API report(s), all covered by pending changesets`);
