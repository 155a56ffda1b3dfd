import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEVFN, LinuxVtd, mapFs, mapSs, REG, req, SID } from './vtd-linux.js';
import { QUEUE_CONSUMERS, useQueueConsumer } from './support/consumers.js';

const ADDR = 0x000f_ffff_ffff_f000n;

/** An independent x86 first-stage walk: the expected PA or fault code of a user request. */
function refFirstStage(read64: (pa: bigint) => bigint | undefined, root: bigint, iova: bigint, levels: number, write: boolean): bigint | number {
  const top = iova >> BigInt(12 + 9 * levels - 1);
  if (top !== 0n && top !== (1n << BigInt(64 - (12 + 9 * levels - 1))) - 1n) return 0x80;
  let table = root;
  let w = true;
  let u = true;
  for (let l = levels; l >= 1; l--) {
    const shift = BigInt(12 + 9 * (l - 1));
    const e = read64(table + ((iova >> shift) & 511n) * 8n);
    if (e === undefined) return l === levels ? 0x73 : 0x70;
    if ((e & 1n) === 0n) return 0x71;
    const ps = l > 1 && (e & 0x80n) !== 0n;
    if (ps && l > 3) return 0x72;
    if (ps && (e & ((1n << shift) - 1n) & ~0x1fffn) !== 0n) return 0x72;
    if ((e & ADDR) >> 48n !== 0n) return 0x72;
    w &&= (e & 2n) !== 0n;
    u &&= (e & 4n) !== 0n;
    if (l === 1 || ps) {
      if (!u) return 0x81;
      if (write && !w) return 0x85;
      const size = 1n << shift;
      return (e & ADDR & ~(size - 1n)) + (iova & (size - 1n));
    }
    table = e & ADDR;
  }
  return 0x71;
}

/** An independent VT-d second-stage walk. */
function refSecondStage(read64: (pa: bigint) => bigint | undefined, root: bigint, iova: bigint, levels: number, write: boolean): bigint | number {
  if (iova >> BigInt(12 + 9 * levels) !== 0n) return 0x83;
  let table = root;
  let r = true;
  let w = true;
  for (let l = levels; l >= 1; l--) {
    const shift = BigInt(12 + 9 * (l - 1));
    const e = read64(table + ((iova >> shift) & 511n) * 8n);
    if (e === undefined) return 0x78;
    if ((e & 3n) === 0n) return 0x79;
    const ps = l > 1 && (e & 0x80n) !== 0n;
    if (ps && l > 3) return 0x7a;
    if (ps && (e & ((1n << shift) - 1n) & ~0xfffn) !== 0n) return 0x7a;
    if (!ps && l > 1 && (e & 0x800n) !== 0n) return 0x7a;
    if ((e & ADDR) >> 48n !== 0n) return 0x7a;
    r &&= (e & 1n) !== 0n;
    w &&= (e & 2n) !== 0n;
    if (l === 1 || ps) {
      if (write && !w) return 0x85;
      if (!write && !r) return 0x86;
      const size = 1n << shift;
      return (e & ADDR & ~(size - 1n)) + (iova & (size - 1n));
    }
    table = e & ADDR;
  }
  return 0x79;
}

const mapping = fc.record({
  slot: fc.integer({ min: 0, max: 63 }),
  leafLevel: fc.constantFrom(1, 1, 1, 2, 3),
  pa: fc.integer({ min: 0, max: 0x3ff }),
  write: fc.boolean(),
  other: fc.boolean(), // user (FS) or read (SS)
});
const access = fc.record({ slot: fc.integer({ min: 0, max: 63 }), offset: fc.integer({ min: 0, max: 0x3f_ffff }), write: fc.boolean() });

/** Mapping slot n → an IOVA that spreads over every table level. */
function slotIova(slot: number, levels: number): bigint {
  const hi = BigInt(slot & 7) << BigInt(12 + 9 * (levels - 1));
  return hi | (BigInt((slot >> 3) & 7) << 30n) | (BigInt(slot & 1) << 21n);
}

describe('VT-d walker agrees with a reference walk (property)', () => {
  for (const stage of ['first', 'second'] as const) {
    it(`${stage} stage: random tables and random DMA`, () => {
      fc.assert(
        fc.property(fc.constantFrom(4, 5), fc.array(mapping, { minLength: 1, maxLength: 12 }), fc.array(access, { minLength: 1, maxLength: 24 }), (levels, maps, accesses) => {
          const v = new LinuxVtd(levels === 5 ? { addressWidth: 57 } : {});
          v.bringUp();
          v.smContext(0, DEVFN);
          const root = v.page();
          for (const m of maps) {
            const size = 1n << BigInt(12 + 9 * (m.leafLevel - 1));
            const iova = slotIova(m.slot, levels) & ~(size - 1n);
            // Output pages lie outside RAM so that a later mapping that walks through a large leaf cannot overwrite live tables.
            const pa = (0x1_0000_0000n + (BigInt(m.pa) << 21n)) & ~(size - 1n);
            if (stage === 'first') mapFs(v, root, iova, pa, { levels, leafLevel: m.leafLevel, write: m.write, user: m.other });
            else mapSs(v, root, iova, pa, { levels, leafLevel: m.leafLevel, write: m.write, read: m.other });
          }
          v.setPasidEntry(
            SID,
            0,
            stage === 'first'
              ? LinuxVtd.pasidEntry({ pgtt: 1, did: 3, fsptptr: root, fspm: levels === 5 ? 1 : 0 })
              : LinuxVtd.pasidEntry({ pgtt: 2, did: 3, ssptptr: root, aw: levels - 2 }),
          );
          const read64 = (pa: bigint) => (v.mem.isRam(pa, 8) ? v.mem.read64(pa) : undefined);
          for (const a of accesses) {
            const iova = slotIova(a.slot, levels) + BigInt(a.offset);
            const expected = stage === 'first' ? refFirstStage(read64, root, iova, levels, a.write) : refSecondStage(read64, root, iova, levels, a.write);
            const t = v.iommu.translate(req(iova, a.write));
            expect(t.ok ? t.pa : t.fault.code).toBe(expected);
          }
        }),
        { numRuns: 60, seed: 0x5eed },
      );
    });
  }
});

const descriptor = fc.oneof(
  fc.tuple(fc.constantFrom(1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 0xan), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })).map(([t, a, b]) => [(a & ~0xfn) | t, b, 0n, 0n]),
  fc.tuple(fc.constantFrom(1n, 2n, 6n, 7n), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 20 })).map(([t, g, did, am]) => [t | (BigInt(g) << 4n) | (BigInt(did) << 16n), BigInt(am), 0n, 0n]),
  fc.tuple(fc.bigInt({ min: 0n, max: 0xfffn }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })).map(([h, b]) => [0x5n | (h & 0xf0n) | (2n << 32n), b & 0xffff_fffcn, 0n, 0n]),
  fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 4, maxLength: 4 }),
);
const step = fc.oneof(
  fc.record({ kind: fc.constant('batch' as const), descs: fc.array(descriptor, { minLength: 1, maxLength: 6 }) }),
  fc.record({ kind: fc.constant('clear' as const), bits: fc.integer({ min: 0, max: 0xff }) }),
  fc.record({ kind: fc.constant('tail' as const), value: fc.integer({ min: 0, max: 0x7ffff }) }),
  fc.record({ kind: fc.constant('dma' as const), iova: fc.bigInt({ min: 0n, max: 1n << 40n }) }),
);

describe.each(QUEUE_CONSUMERS)('%s queue consumer', (consumer) => {
  useQueueConsumer(consumer);

  describe('VT-d invalidation queue under random descriptor streams (property)', () => {
    it('never throws and leaves only architecturally allowed states', () => {
      fc.assert(
        fc.property(fc.array(step, { minLength: 1, maxLength: 20 }), (steps) => {
          const v = new LinuxVtd();
          v.bringUp();
          v.smContext(0, DEVFN);
          v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 4, did: 1 }));
          // Any status write lands in RAM: keep wait addresses inside it.
          for (const s of steps) {
            if (s.kind === 'batch') v.enqueue(s.descs.map((d) => (Number(d[0] & 0xfn) === 5 ? [d[0], 0x4000_0000n | (d[1] & 0xfff_fffcn), d[2], d[3]] : d)));
            else if (s.kind === 'clear') v.w32(REG.FSTS, s.bits);
            else if (s.kind === 'tail') {
              v.w32(REG.IQT, s.value);
              v.iqTail = (Number(v.r64(REG.IQT)) >> 5) % v.iqEntries;
            } else v.iommu.translate(req(s.iova));
            const fsts = v.r32(REG.FSTS);
            expect(fsts & ~0xff73).toBe(0);
            const head = Number(v.r64(REG.IQH));
            expect(head % 32).toBe(0);
            expect(head >> 5).toBeLessThan(v.iqEntries);
            if ((fsts & 0x50) === 0 && (Number(v.r64(REG.IQT)) >> 5) < v.iqEntries) expect(head).toBe(Number(v.r64(REG.IQT)) & ~0x1f);
            if (fsts & 0x10) expect(Number(v.r64(REG.IQER) & 0xfn)).toBeGreaterThan(0);
            expect(v.r32(REG.GSTS) & (1 << 26)).toBe(1 << 26);
          }
        }),
        { numRuns: 150, seed: 0xd15c },
      );
    });
  });
});

/** An independent nested walk: FS table GPAs and the output GPA through the second stage. */
function refNested(read64: (pa: bigint) => bigint | undefined, fsRoot: bigint, ssRoot: bigint, iova: bigint, write: boolean): bigint | number {
  const s2 = (gpa: bigint, w: boolean, table: 'root' | 'table' | 'data'): bigint | number => {
    const r = refSecondStage(read64, ssRoot, gpa, 4, w);
    if (typeof r === 'bigint') return r;
    if (r === 0x83) return table === 'data' ? 0x83 : 0x74;
    if (r === 0x86) return table === 'root' ? 0x75 : table === 'table' ? 0x76 : 0x86;
    return r;
  };
  const top = iova >> 47n;
  if (top !== 0n && top !== (1n << 17n) - 1n) return 0x80;
  let table = fsRoot;
  let w = true;
  let u = true;
  for (let l = 4; l >= 1; l--) {
    const hpa = s2(table, false, l === 4 ? 'root' : 'table');
    if (typeof hpa === 'number') return hpa;
    const shift = BigInt(12 + 9 * (l - 1));
    const e = read64(hpa + ((iova >> shift) & 511n) * 8n);
    if (e === undefined) return 0x70;
    if ((e & 1n) === 0n) return 0x71;
    w &&= (e & 2n) !== 0n;
    u &&= (e & 4n) !== 0n;
    if (l === 1) {
      if (!u) return 0x81;
      if (write && !w) return 0x85;
      return s2((e & ADDR) + (iova & 0xfffn), write, 'data');
    }
    table = e & ADDR;
  }
  return 0x71;
}

describe('VT-d nested walker agrees with a reference nested walk (property)', () => {
  it('random guest first-stage tables behind a random second stage', () => {
    const G = 0x2_0000_0000n;
    const s2perm = fc.constantFrom('rw', 'rw', 'rw', 'r', 'w', 'none');
    fc.assert(
      fc.property(
        fc.array(s2perm, { minLength: 48, maxLength: 48 }),
        fc.array(fc.record({ slot: fc.integer({ min: 0, max: 31 }), target: fc.integer({ min: 0, max: 63 }), write: fc.boolean(), user: fc.boolean() }), { minLength: 1, maxLength: 10 }),
        fc.array(access, { minLength: 1, maxLength: 16 }),
        (perms, maps, accesses) => {
          const v = new LinuxVtd();
          v.bringUp();
          v.smContext(0, DEVFN);
          const hpas = perms.map(() => v.page());
          const ss = v.page();
          perms.forEach((p, i) => {
            if (p !== 'none') mapSs(v, ss, G + BigInt(i) * 0x1000n, hpas[i], { levels: 4, read: p.includes('r'), write: p.includes('w') });
          });
          // Guest tables: GPA page 0 is the FS root; further table pages are taken from 1.. in order.
          let next = 1;
          const hpaOf = (gpa: bigint) => hpas[Number((gpa - G) >> 12n)];
          for (const m of maps) {
            const iova = BigInt(m.slot) << 21n;
            let table = G;
            for (let level = 4; level > 1 && table !== 0n; level--) {
              const at = hpaOf(table) + ((iova >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n;
              let e = v.mem.read64(at);
              if ((e & 1n) === 0n) {
                if (next >= 32) {
                  table = 0n;
                  break;
                }
                e = (G + BigInt(next++) * 0x1000n) | 0x27n;
                v.mem.write64(at, e);
              }
              table = e & ADDR;
            }
            if (table === 0n) continue;
            const leaf = (G + BigInt(m.target) * 0x1000n) | 0x21n | (m.write ? 0x42n : 0n) | (m.user ? 4n : 0n);
            v.mem.write64(hpaOf(table) + ((iova >> 12n) & 511n) * 8n, leaf);
          }
          v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 3, did: 4, ssptptr: ss, fsptptr: G }));
          const read64 = (pa: bigint) => (v.mem.isRam(pa, 8) ? v.mem.read64(pa) : undefined);
          for (const a of accesses) {
            const iova = (BigInt(a.slot & 31) << 21n) + BigInt(a.offset & 0xfff);
            const expected = refNested(read64, G, ss, iova, a.write);
            const t = v.iommu.translate(req(iova, a.write));
            expect(t.ok ? t.pa : t.fault.code).toBe(expected);
          }
        },
      ),
      { numRuns: 60, seed: 0x7e57 },
    );
  });
});
