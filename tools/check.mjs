#!/usr/bin/env node
// The project's whole test command (`pnpm check`, what `.ci/run` and the README run):
// build, type-check the tests, run every package's tests, check the API reports, lint the
// packages and check changesets; then sum vitest's JSON reports into `N passed, N failed`.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const packagesDir = join(root, 'packages');
const packages = readdirSync(packagesDir).filter((d) => existsSync(join(packagesDir, d, 'package.json')));
const withTests = packages.filter((d) => JSON.parse(readFileSync(join(packagesDir, d, 'package.json'), 'utf8')).scripts?.test);

for (const d of packages) rmSync(join(packagesDir, d, 'test-results.json'), { force: true });

const run = (cmd, args) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit' }).status ?? 1;
const tasks = ['build', 'typecheck', 'test', 'api', 'lint:pkg'];
const turboStatus = run('pnpm', ['exec', 'turbo', 'run', ...tasks, '--continue', '--output-logs=errors-only']);
const changesetStatus = run('node', [join(root, 'tools/check-changesets.mjs')]);
// The committed API reference (docs/api/) must match the code: regenerate it from the
// packages turbo just built and compare (a few seconds).
const docsStatus = turboStatus === 0 ? run('node', [join(root, 'tools/docs.mjs'), '--check', '--no-build']) : 0;

let passed = 0;
let failed = 0;
const rows = [];
for (const d of withTests) {
  const file = join(packagesDir, d, 'test-results.json');
  if (!existsSync(file)) {
    // The package's tests did not run to completion (a build or collection error).
    failed += 1;
    rows.push(`  @iommufd/${d}: no test report (tests did not run)`);
    continue;
  }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  const p = r.numPassedTests ?? 0;
  // A file that failed to load has failed suites but no failed tests: count it once.
  const f = (r.numFailedTests ?? 0) || (r.numFailedTestSuites ?? 0);
  passed += p;
  failed += f;
  rows.push(`  @iommufd/${d}: ${p} passed, ${f} failed`);
}
console.log('\nTests by package:');
console.log(rows.join('\n'));
if (turboStatus !== 0) console.log(`turbo: some tasks failed (exit ${turboStatus})`);
if (changesetStatus !== 0) console.log('changesets: an API change has no changeset (see above)');
if (docsStatus !== 0) console.log('docs: docs/api/ is out of date (run `pnpm run docs` and commit docs/api/)');
const ok = turboStatus === 0 && changesetStatus === 0 && docsStatus === 0 && failed === 0;
if (!ok && failed === 0) failed = 1; // a failed build/api/lint task counts as a failure
console.log(`${passed} passed, ${failed} failed`);
process.exit(ok ? 0 : 1);
