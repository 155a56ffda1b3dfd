// Shared part of the `translate` benchmark scripts: builds a C walker with `cc -O2` into
// tools/bench/build/, dumps the populated physical frames (after a header of u64 `words`),
// runs the walker on the dump and prints its lines and the TS/C ratio line (BENCH.md).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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
