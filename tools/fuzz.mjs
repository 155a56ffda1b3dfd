#!/usr/bin/env node
// `pnpm fuzz`: build the host, then run the uAPI fuzzer from the built package.
//   --seed N       first seed (default 1)         --seeds N     number of seeds
//   --calls N      total operation budget          --seconds S   wall-clock budget
//   --per-seed N   operations per seed (2000)      --platform P  machine preset (mock)
//   --replay FILE  re-run a saved case             --out DIR     where failing cases go
//   --no-minimize  keep failing cases as generated (faster on long runs)
//   --ignore RE    step over findings whose message matches RE (known open bugs; repeatable)
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    seeds: { type: 'string' },
    calls: { type: 'string' },
    seconds: { type: 'string' },
    'per-seed': { type: 'string' },
    platform: { type: 'string' },
    replay: { type: 'string' },
    out: { type: 'string' },
    'no-minimize': { type: 'boolean' },
    ignore: { type: 'string', multiple: true },
    'no-build': { type: 'boolean' },
  },
});
if (!values['no-build']) {
  const build = spawnSync('pnpm', ['exec', 'turbo', 'run', 'build', '--filter=@iommufd/host...', '--output-logs=errors-only'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  if (build.status !== 0) {
    console.error('fuzz: the build failed; run `pnpm build` to see why');
    process.exit(build.status ?? 1);
  }
}
const host = await import(join(root, 'packages/host/dist/index.js'));
const num = (v) => (v === undefined ? undefined : Number(v));

if (values.replay) {
  const c = host.parseFuzzCase(JSON.parse(readFileSync(values.replay, 'utf8')));
  const r = await host.replay(c);
  for (const f of r.findings) console.log(`finding at op ${f.index} (${f.op}) [${f.kind}]: ${f.message}`);
  console.log(`fuzz replay ops=${c.ops.length} calls=${r.calls} findings=${r.findings.length} invariant_failures=${r.findings.filter((f) => f.kind === 'invariant').length} seed=${c.seed}`);
  process.exit(r.findings.length ? 1 : 0);
}

const out = values.out ?? join(root, 'fuzz-failures');
const r = await host.runFuzz({
  seed: num(values.seed),
  seeds: num(values.seeds),
  calls: num(values.calls),
  seconds: num(values.seconds),
  callsPerSeed: num(values['per-seed']),
  platform: values.platform,
  minimize: !values['no-minimize'],
  ignore: (values.ignore ?? []).map((p) => new RegExp(p)),
  onFailure: (c) => {
    mkdirSync(out, { recursive: true });
    const file = join(out, `seed-${c.seed}.json`);
    writeFileSync(file, `${JSON.stringify(c, null, 1)}\n`);
    console.log(`failing seed ${c.seed} (${c.ops.length} ops): ${c.findings[0]?.message ?? ''} -> ${file}`);
  },
});
console.log(host.formatFuzzSummary(r));
process.exit(r.findings ? 1 : 0);
