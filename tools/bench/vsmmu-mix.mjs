#!/usr/bin/env node
// The queue engine's benchmarks (shared/design/BENCH.md), run as @iommufd/queue-engine's
// `bench` script: `pnpm bench [NAME] [--n N] [--seed S]`.
//   vsmmu-mix  the trapped vSMMU path: impl=c (tools/bench/vsmmu-mix.c, system cc -O2),
//              impl=wasm, impl=ts in one run, each checked against BENCH.md, then ratios
//   vtd-iq     VT-d invalidation queue consume throughput (extra figure)
//   vcmdq      Tegra241 guest VCMDQ consume throughput (extra figure)
// Names this package does not own are skipped. Best of 5 timed runs after one warm-up.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  PhysicalStore, createQueueEngine, VsmmuMixRun, CMDQ_OP_TLBI_NH_VA, CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_ATC_INV,
  CMDQ_OP_CMD_SYNC,
} from '../../packages/queue-engine/dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const OWN = ['vsmmu-mix', 'vtd-iq', 'vcmdq'];
const args = process.argv.slice(2);
const names = [];
let n = 10_000_000;
let seed = 1n;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--n') n = Number(args[++i]);
  else if (args[i] === '--seed') seed = BigInt(args[++i]);
  else names.push(args[i]);
}
const selected = names.length === 0 ? OWN : names.filter((x) => OWN.includes(x));
if (selected.length === 0) process.exit(0);
if (!Number.isInteger(n) || n < 1 || n > 60_000_000) {
  console.error(`--n must be an integer 1..60000000, got ${n}`);
  process.exit(2);
}

const EXPECTED = {
  '1000/7': { counts: '672/118/54/105/51/16', checksum: '3103b7ebceae993b' },
  '10000000/1': { counts: '7001975/998654/498857/999968/500546/158731', checksum: '60fee8c54390a359' },
};
const RUNS = 5;
const fmt = (x) => (x >= 100 ? Math.round(x).toString() : x.toPrecision(3));
let failed = false;

function check(impl, nn, s, counts, checksum, reference) {
  // For an (n, seed) BENCH.md does not list, every implementation must agree with C.
  const want = EXPECTED[`${nn}/${s}`] ?? reference;
  if (!want) return 'reference';
  if (want.counts !== counts || want.checksum !== checksum) {
    console.error(`vsmmu-mix impl=${impl} n=${nn} seed=${s}: got counts ${counts} checksum ${checksum}, expected ${want.counts} ${want.checksum}`);
    failed = true;
    return 'MISMATCH';
  }
  return 'ok';
}

function runC(nn, s, runs) {
  const build = join(here, 'build');
  mkdirSync(build, { recursive: true });
  const exe = join(build, 'vsmmu-mix');
  const cc = spawnSync('cc', ['-O2', '-o', exe, join(here, 'vsmmu-mix.c')], { stdio: 'inherit' });
  if (cc.status !== 0) throw new Error('cc -O2 tools/bench/vsmmu-mix.c failed');
  const r = spawnSync(exe, [String(nn), String(s), String(runs + 1)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vsmmu-mix (C) failed: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const times = lines.filter((l) => l.startsWith('run=')).slice(1).map((l) => Number(/ns=(\d+)/.exec(l)[1]));
  const last = lines.at(-1);
  return {
    ns: Math.min(...times),
    executed: Number(/executed=(\d+)/.exec(last)[1]),
    counts: /counts=(\S+)/.exec(last)[1],
    checksum: /checksum=([0-9a-f]+)/.exec(last)[1],
  };
}

async function runEngine(impl, nn, s, runs) {
  const engine = await createQueueEngine(new PhysicalStore(), { impl });
  if (engine.impl !== impl) throw new Error(`impl=${impl} unavailable`);
  const bench = new VsmmuMixRun(engine, nn, s);
  bench.run(); // warm-up
  let best = Infinity, executed = 0;
  for (let i = 0; i < runs; i++) {
    const o = bench.run();
    best = Math.min(best, o.ns);
    executed = o.executed;
  }
  const c = bench.counts();
  return {
    ns: best, executed,
    counts: [c.nhVa, c.nhAsid, c.nhAll, c.atcInv, c.cfgiCd, c.sync].join('/'),
    checksum: bench.checksum().toString(16).padStart(16, '0'),
  };
}

async function vsmmuMix() {
  // The spec's small case must match exactly for every implementation before anything is timed.
  for (const impl of ['c', 'wasm', 'ts']) {
    const r = impl === 'c' ? runC(1000, 7n, 1) : await runEngine(impl, 1000, 7n, 1);
    check(impl, 1000, 7n, r.counts, r.checksum);
  }
  const results = {};
  for (const impl of ['c', 'wasm', 'ts']) {
    const r = impl === 'c' ? runC(n, seed, RUNS) : await runEngine(impl, n, seed, RUNS);
    const status = check(impl, n, seed, r.counts, r.checksum, results.c && { counts: results.c.counts, checksum: results.c.checksum });
    results[impl] = r;
    const s = r.ns / 1e9;
    console.log(`vsmmu-mix impl=${impl} ops_per_s=${fmt(n / s)} cmds_per_s=${fmt(r.executed / s)} checksum=${r.checksum} n=${n} seed=${seed} counts=${r.counts} check=${status}`);
  }
  const ratio = (a) => (results.c.ns / results[a].ns).toFixed(3);
  console.log(`vsmmu-mix ratios wasm/c=${ratio('wasm')} ts/c=${ratio('ts')} n=${n} best_of=${RUNS}`);
}

/** A sink standing in for the cache model: counts what it is given. */
function countingSink() {
  const sink = { records: 0, applyEffects(batch) { sink.records += batch.count; return undefined; } };
  return sink;
}

/** Best of RUNS timings of `reps` calls of `pass`, after `warm` untimed calls. */
function bestNs(pass, warm, reps) {
  for (let i = 0; i < warm; i++) pass();
  let best = Infinity;
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) pass();
    best = Math.min(best, Number(process.hrtime.bigint() - t0));
  }
  return best;
}

async function vtdIq() {
  const rate = {};
  for (const impl of ['wasm', 'ts']) {
    const store = new PhysicalStore();
    const engine = await createQueueEngine(store, { impl });
    const q = engine.createInvalidationQueue({ effectsCapacity: 256 });
    const base = 0x1000_0000n;
    q.setBase(base, 1, true); // 8 KiB, 256 × 256-bit descriptors, as Linux sets it up with SMTS
    // Linux's batches: up to 16 PASID-IOTLB page-selective invalidations, then a wait (SW).
    for (let i = 0; i < 255; i++) {
      const at = base + BigInt(i * 32);
      if (i % 17 === 16) {
        store.write64(at, 0x5n | (1n << 5n) | (2n << 32n));
        store.write64(at + 8n, 0x2000_0000n + BigInt(i * 4));
      } else {
        store.write64(at, 0x6n | (3n << 4n) | (7n << 16n) | (BigInt(i) << 32n));
        store.write64(at + 8n, BigInt(i) << 12n);
      }
    }
    const sink = countingSink();
    const tail = 255 * 32;
    const pass = () => { if (q.consume(tail, 0, sink) !== tail) throw new Error('vtd-iq: queue did not drain'); };
    const reps = 2000;
    const best = bestNs(pass, 200, reps);
    rate[impl] = (reps * 255) / (best / 1e9);
    console.log(`vtd-iq impl=${impl} ops_per_s=${fmt(rate[impl])} descriptor=256-bit mix=15xPIOTLB+wait effects=on`);
  }
  console.log(`vtd-iq ratios ts/wasm=${(rate.ts / rate.wasm).toFixed(3)} best_of=${RUNS}`);
}

async function vcmdq() {
  const rate = {};
  for (const impl of ['wasm', 'ts']) {
    const store = new PhysicalStore();
    const engine = await createQueueEngine(store, { impl });
    const streams = Array.from({ length: 16 }, (_, i) => [0x100 + i, 0x8000 + i]);
    const q = engine.createSmmuQueue({ kind: 'vcmdq-guest', vmid: 0x2a, streams, effectsCapacity: 256 });
    const base = 0x2000_0000n;
    q.setBase(base, 10);
    const N = 1023;
    for (let i = 0; i < N; i++) {
      const at = base + BigInt(i * 16);
      const k = i % 16;
      if (k === 15) store.write64(at, BigInt(CMDQ_OP_CMD_SYNC));
      else if (k === 14) { store.write64(at, BigInt(CMDQ_OP_ATC_INV) | (BigInt(0x100 + (i % 16)) << 32n)); store.write64(at + 8n, 52n); }
      else if (k === 13) store.write64(at, BigInt(CMDQ_OP_TLBI_NH_ASID) | (BigInt(i & 0xffff) << 48n));
      else { store.write64(at, BigInt(CMDQ_OP_TLBI_NH_VA) | (BigInt(i & 0xffff) << 48n)); store.write64(at + 8n, BigInt(i) << 12n); }
    }
    const sink = countingSink();
    const pass = () => { if ((q.consume(N, 0, sink) & 0x7ff) !== N) throw new Error(`vcmdq: queue did not drain (${q.stop})`); };
    const reps = 500;
    const best = bestNs(pass, 50, reps);
    rate[impl] = (reps * N) / (best / 1e9);
    console.log(`vcmdq impl=${impl} ops_per_s=${fmt(rate[impl])} guest=on mix=13xNH_VA+NH_ASID+ATC_INV+SYNC effects=on`);
  }
  console.log(`vcmdq ratios ts/wasm=${(rate.ts / rate.wasm).toFixed(3)} best_of=${RUNS}`);
}

if (selected.includes('vsmmu-mix')) await vsmmuMix();
if (selected.includes('vtd-iq')) await vtdIq();
if (selected.includes('vcmdq')) await vcmdq();
process.exit(failed ? 1 : 0);
