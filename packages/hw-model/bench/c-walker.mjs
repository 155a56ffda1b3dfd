// Not a benchmark itself: helpers of translate-smmu.mjs and vtd-translate.mjs (bench/run.mjs runs it as a no-op).
// Shared part of the `translate` benchmark scripts: measures a model's translator, builds a C walker with `cc -O2` into
// tools/bench/build/, dumps the populated physical frames (after a header of u64 `words`),
// runs the walker on the dump and prints its lines and the TS/C ratio line (BENCH.md).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Operation counts of the `translate` benchmark: TS hit / miss, C hit / miss. */
export const TRANSLATE_OPS = { hit: 400_000, miss: 20_000, cHit: 20_000_000, cMiss: 2_000_000 };

/** True when the benchmark NAME given on the command line (if any) is `name`. */
export function benchSelected(name) {
  const wanted = process.argv[2];
  return wanted === undefined || wanted === name;
}

/**
 * @param {{ iommu: string, name: string, words: bigint[], store: import('@iommufd/queue-engine').PhysicalStore,
 *   hitOps: number, missOps: number, hit: number, miss: number, checksum: string }} o
 */
export function runCWalker(o) {
  const top = new URL('../../../', import.meta.url).pathname;
  const buildDir = join(top, 'tools/bench/build');
  mkdirSync(buildDir, { recursive: true });
  const exe = join(buildDir, o.name);
  const cc = spawnSync('cc', ['-O2', '-o', exe, join(top, `tools/bench/${o.name}.c`)], { stdio: 'inherit' });
  if (cc.status !== 0) {
    console.log(`translate impl=c iommu=${o.iommu} skipped=cc-failed`);
    return;
  }
  const pfns = o.store.populatedPfns();
  const words = [...o.words, BigInt(pfns.length)];
  const head = new DataView(new ArrayBuffer(words.length * 8));
  words.forEach((w, i) => head.setBigUint64(i * 8, w, true));
  const body = new Uint8Array(pfns.length * (8 + 4096));
  const bv = new DataView(body.buffer);
  pfns.forEach((pfn, i) => {
    bv.setBigUint64(i * 4104, BigInt(pfn), true);
    body.set(o.store.read(BigInt(pfn) * 4096n, 4096), i * 4104 + 8);
  });
  const dump = join(buildDir, `${o.name}.bin`);
  writeFileSync(dump, Buffer.concat([new Uint8Array(head.buffer), body]));
  const run = spawnSync(exe, [dump, String(o.hitOps), String(o.missOps)], { encoding: 'utf8' });
  process.stdout.write(run.stdout);
  const c = Object.fromEntries(
    run.stdout.trim().split('\n').map((l) => {
      const kv = Object.fromEntries(l.split(' ').slice(1).map((p) => p.split('=')));
      return [kv.case, kv];
    }),
  );
  const ratio = (ts, k) => (c[k] ? (ts / Number(c[k].ops_per_s)).toFixed(3) : 'n/a');
  const same = c['tlb-hit']?.checksum === o.checksum ? 'yes' : 'no';
  console.log(`translate ratio iommu=${o.iommu} tlb-hit_ts/c=${ratio(o.hit, 'tlb-hit')} nested-miss_ts/c=${ratio(o.miss, 'nested-miss')} checksums_match=${same}`);
}

/** Best-of-5 (after one warm-up) rate of `fn(ops)` in operations per second. */
function best(fn, ops) {
  let bestT = Infinity;
  for (let rep = 0; rep < 6; rep++) {
    const t0 = performance.now();
    fn(ops);
    const dt = performance.now() - t0;
    if (rep > 0 && dt < bestT) bestT = dt; // rep 0 warms up
  }
  return ops / (bestT / 1000);
}

/**
 * Measures a model's translator: the checksum of 4096 full walks (the C side makes the same
 * pass), then TLB hits over the first 256 requests and TLB misses (the TLB emptied before
 * every request); prints the two `impl=ts` lines.
 * @param {{ iommu: string, translate: (r: object) => { ok: boolean, pa?: bigint, fault?: { kind: string } },
 *   clearTlb: () => void, reqs: { iova: bigint }[], hitOps: number, missOps: number }} o
 */
export function measureTranslator(o) {
  const { translate, clearTlb, reqs } = o;
  let check = 0n;
  for (let i = 0; i < 4096; i++) {
    clearTlb();
    const t = translate(reqs[i % reqs.length]);
    if (!t.ok) throw new Error(`benchmark tables broken at ${reqs[i % reqs.length].iova.toString(16)}: ${t.fault.kind}`);
    check = BigInt.asUintN(64, check + t.pa);
  }
  const hit = best((n) => {
    clearTlb();
    for (let i = 0; i < 256; i++) translate(reqs[i]);
    for (let i = 0; i < n; i++) translate(reqs[i & 255]);
  }, o.hitOps);
  const miss = best((n) => {
    for (let i = 0; i < n; i++) {
      clearTlb();
      translate(reqs[i % reqs.length]);
    }
  }, o.missOps);
  const checksum = check.toString(16).padStart(16, '0');
  console.log(`translate impl=ts iommu=${o.iommu} case=tlb-hit ops_per_s=${hit.toFixed(0)} checksum=${checksum}`);
  console.log(`translate impl=ts iommu=${o.iommu} case=nested-miss ops_per_s=${miss.toFixed(0)} checksum=${checksum}`);
  return { hit, miss, checksum };
}
