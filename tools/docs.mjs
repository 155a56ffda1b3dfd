#!/usr/bin/env node
// `pnpm run docs` (`pnpm docs` alone is pnpm's own command): the API reference in docs/api/, generated from the code.
//
// 1. build every package (turbo, cached);
// 2. run api-extractor on each published package with the API *report* switched off, so
//    nothing under packages/*/etc/ is touched (the report is `pnpm api` / `pnpm api:update`'s
//    business): only the doc model packages/<pkg>/temp/<pkg>.api.json is written;
// 3. collect the doc models into temp/api-models/ and run `api-documenter markdown` into
//    docs/api/ (one page per package and per exported item).
//
// `pnpm run docs:check` (`--check`) regenerates into a scratch folder and fails when docs/api/ differs
// (what `pnpm check` runs, so the committed reference cannot drift from the code).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const require = createRequire(join(root, 'package.json'));
const { Extractor, ExtractorConfig } = require('@microsoft/api-extractor');

const check = process.argv.includes('--check');
const skipBuild = process.argv.includes('--no-build');
const outDir = join(root, 'docs/api');
const modelsDir = join(root, 'temp/api-models');
const genDir = check ? join(root, 'temp/api-docs-check') : outDir;

const run = (cmd, args, quiet = false) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', quiet ? 'pipe' : 'inherit', quiet ? 'pipe' : 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) {
    if (quiet) process.stderr.write(`${r.stdout}${r.stderr}`);
    console.error(`docs: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status})`);
    process.exit(1);
  }
};

if (!skipBuild) run('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only']);

const packagesDir = join(root, 'packages');
const published = readdirSync(packagesDir).filter((d) => {
  const pj = join(packagesDir, d, 'package.json');
  return existsSync(pj) && existsSync(join(packagesDir, d, 'api-extractor.json')) && !JSON.parse(readFileSync(pj, 'utf8')).private;
});

rmSync(modelsDir, { recursive: true, force: true });
mkdirSync(modelsDir, { recursive: true });
const warnings = [];
for (const d of published) {
  const configPath = join(packagesDir, d, 'api-extractor.json');
  const configObject = ExtractorConfig.loadFile(configPath);
  configObject.apiReport = { ...configObject.apiReport, enabled: false };
  // With the report on, a forgotten export is written into etc/*.api.md (and `pnpm api`
  // passes); with it off it would be a console error. Keep the report's verdict: a warning.
  configObject.messages.extractorMessageReporting['ae-forgotten-export'] = { logLevel: 'warning' };
  const config = ExtractorConfig.prepare({ configObject, configObjectFullPath: configPath, packageJsonFullPath: join(packagesDir, d, 'package.json') });
  const result = Extractor.invoke(config, {
    localBuild: true,
    messageCallback(message) {
      // Collected and printed once per package, so the TSDoc problems are easy to hand on.
      if (message.logLevel === 'warning' || message.logLevel === 'error') {
        const where = message.sourceFilePath ? `${relative(root, message.sourceFilePath)}:${message.sourceFileLine}` : d;
        warnings.push(`${where}: [${message.messageId}] ${message.text}`);
      }
      message.handled = true;
    },
  });
  if (!result.succeeded) {
    console.error(`docs: api-extractor failed for packages/${d} (${result.errorCount} errors)`);
    for (const w of warnings) console.error(`  ${w}`);
    process.exit(1);
  }
  cpSync(config.apiJsonFilePath, join(modelsDir, `${d}.api.json`));
}

rmSync(genDir, { recursive: true, force: true });
// In --check mode (inside `pnpm check`) api-documenter's progress lines are noise.
run(join(root, 'node_modules/.bin/api-documenter'), ['markdown', '--input-folder', modelsDir, '--output-folder', genDir], check);
// api-documenter writes an index.md that links to every package page; keep a stable note on top.
const indexPath = join(genDir, 'index.md');
writeFileSync(
  indexPath,
  readFileSync(indexPath, 'utf8').replace(
    '## Packages',
    'Generated from the code by `pnpm run docs` (api-extractor doc model → api-documenter); do not edit by hand.\n\n## Packages',
  ),
);

if (warnings.length && !check) {
  console.log(`docs: ${warnings.length} api-extractor/TSDoc warning(s) in the sources:`);
  for (const w of warnings) console.log(`  ${w}`);
}

if (check) {
  const diff = spawnSync('git', ['diff', '--no-index', '--stat', '--', outDir, genDir], { cwd: root, encoding: 'utf8' });
  rmSync(genDir, { recursive: true, force: true });
  if (diff.status !== 0) {
    console.error(diff.stdout);
    console.error('docs: docs/api/ is out of date with the code; run `pnpm run docs` and commit docs/api/.');
    process.exit(1);
  }
  console.log('docs: docs/api/ is up to date');
} else {
  console.log(`docs: API reference for ${published.length} packages written to ${relative(root, outDir)}/`);
}
