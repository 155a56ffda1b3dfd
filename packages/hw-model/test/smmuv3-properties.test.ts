import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CMDQ_OP, SMMU_CD, SMMU_REG, SMMU_STE, createMachine, type DmaTranslation, type PhysicalMemory, type Tegra241Smmu } from '../src/index.js';
import { GuestRam, PageTables, SmmuDriver, s1Cd, s2Ste } from './support/smmu-driver.js';
import { QUEUE_CONSUMERS, useQueueConsumer } from './support/consumers.js';

/** An independent, deliberately plain 4 KiB-granule walk over the same memory. */
function referenceWalk(
  mem: PhysicalMemory,
  stage: 1 | 2,
  root: bigint,
  ia: bigint,
  access: { write: boolean; priv: boolean; exec: boolean },
  tableToPa: (a: bigint) => bigint | undefined,
): { pa: bigint; size: bigint } | string {
  let table = root;
  let wp = false;
  for (let level = 0; level <= 3; level++) {
    const shift = BigInt(39 - 9 * level);
    const idx = (ia >> shift) & 511n;
    const descPa = tableToPa(table + idx * 8n);
    if (descPa === undefined) return 'S2-TABLE';
    const d = mem.read64(descPa);
    if ((d & 1n) === 0n) return 'F_TRANSLATION';
    const isTable = (d & 2n) !== 0n;
    if (level < 3 && isTable) {
      table = d & 0x0000_ffff_ffff_f000n;
      if (stage === 1 && (d >> 62n) & 1n) wp = true;
      continue;
    }
    if (level === 0 || (level === 3 && !isTable)) return 'F_TRANSLATION';
    const size = 1n << shift;
    const oa = d & 0x0000_ffff_ffff_f000n & ~(size - 1n);
    if (((d >> 10n) & 1n) === 0n) return 'F_ACCESS';
    const ap = (d >> 6n) & 3n;
    if (stage === 1) {
      if (!access.priv && (ap & 1n) === 0n) return 'F_PERMISSION';
      if (access.write && ((ap & 2n) !== 0n || wp)) return 'F_PERMISSION';
      if (access.exec && ((d >> (access.priv ? 53n : 54n)) & 1n) !== 0n) return 'F_PERMISSION';
    } else {
      if (access.write ? (ap & 2n) === 0n : (ap & 1n) === 0n) return 'F_PERMISSION';
    }
    return { pa: oa + (ia & (size - 1n)), size };
  }
  return 'F_TRANSLATION';
}

const mapping = fc.record({
  slot: fc.integer({ min: 0, max: 15 }),
  level: fc.constantFrom(1, 2, 3, 3, 3),
  target: fc.integer({ min: 0, max: 63 }),
  write: fc.boolean(),
  read: fc.boolean(),
  af: fc.boolean(),
  el0: fc.boolean(),
  xn: fc.boolean(),
});
const access = fc.record({ slot: fc.integer({ min: 0, max: 15 }), offset: fc.integer({ min: 0, max: 0xfff }), write: fc.boolean(), priv: fc.boolean(), exec: fc.boolean() });

/** Input address of a slot: spread over L1/L2/L3 boundaries. */
const slotIa = (s: number) => (BigInt(s & 3) << 30n) | (BigInt((s >> 2) & 1) << 21n) | (BigInt(s >> 3) << 12n);

function outcome(t: DmaTranslation): { pa: bigint; size: bigint } | string {
  return t.ok ? { pa: t.pa, size: t.pageSize } : t.fault.kind;
}

describe('SMMUv3 walker agrees with a reference walk (fast-check)', () => {
  it('stage 1 and stage 2 over random tables', () => {
    fc.assert(
      fc.property(fc.constantFrom(1 as const, 2 as const), fc.array(mapping, { maxLength: 12 }), fc.array(access, { minLength: 1, maxLength: 12 }), (stage, maps, accesses) => {
        const d = new SmmuDriver({ strict: true });
        d.bringUp();
        const alloc = () => d.mem.allocPages(1)[0]!;
        const pt = new PageTables(d.mem, stage, 0, alloc);
        // Output addresses need not be RAM: translation never touches the target.
        const targetBase = 0x1_0000_0000n;
        for (const m of maps) {
          const size = 1n << BigInt(39 - 9 * m.level);
          pt.map(slotIa(m.slot) & ~(size - 1n), targetBase + ((BigInt(m.target) * size) & 0x3fff_ffffn & ~(size - 1n)), m.level, m);
        }
        if (stage === 1) {
          const cd = alloc();
          d.mem.write(cd, SMMU_CD.toBytes(s1Cd(pt.root, 3)));
          d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cd >> 6n }));
        } else {
          d.writeSte(8, SMMU_STE.encode(s2Ste(pt.root, 4)));
        }
        d.cfgiSte(8);
        for (const a of accesses) {
          const ia = slotIa(a.slot) + BigInt(a.offset);
          const got = outcome(d.smmu.translate({ requesterId: 8, streamId: 8, iova: ia, write: a.write, priv: a.priv, exec: a.exec && stage === 1 }));
          const want = referenceWalk(d.mem, stage, pt.root, ia, { ...a, exec: a.exec && stage === 1 }, (x) => x);
          expect(got).toEqual(want);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('nested: random guest stage 1 over a stage 2 with random permissions', () => {
    fc.assert(
      fc.property(fc.array(mapping, { maxLength: 10 }), fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), fc.array(access, { minLength: 1, maxLength: 10 }), (maps, s2write, accesses) => {
        const d = new SmmuDriver({ strict: true });
        d.bringUp();
        // Table pages (first 64) writable; data pages (last 64) with random write permission.
        const g = new GuestRam(d.mem, 128, (i) => i < 64 || s2write[i - 64]!);
        const { s2 } = g;
        const G = GuestRam.BASE;
        const toPa = (a: bigint) => g.pa(a);
        const s1 = g.stage1();
        for (const m of maps) s1.map(slotIa(m.slot) & ~0xfffn, G + (64n + BigInt(m.target)) * 0x1000n, 3, { ...m, read: true });
        const cd = G + 63n * 0x1000n;
        d.mem.write(toPa(cd)!, SMMU_CD.toBytes(s1Cd(s1.root, 6)));
        d.writeSte(8, SMMU_STE.encode({ ...s2Ste(s2.root, 2, 7), S1CONTEXTPTR: cd >> 6n }));
        d.cfgiSte(8);
        for (const a of accesses) {
          const ia = slotIa(a.slot) + BigInt(a.offset);
          const got = outcome(d.smmu.translate({ requesterId: 8, streamId: 8, iova: ia, write: a.write, priv: a.priv }));
          const s1r = referenceWalk(d.mem, 1, s1.root, ia, { ...a, exec: false }, toPa);
          let want: { pa: bigint; size: bigint } | string = s1r;
          if (typeof s1r !== 'string') {
            const s2r = referenceWalk(d.mem, 2, s2.root, s1r.pa, { ...a, exec: false }, (x) => x);
            want = typeof s2r === 'string' ? s2r : { pa: s2r.pa, size: 0x1000n };
          }
          expect(got).toEqual(want);
        }
      }),
      { numRuns: 40 },
    );
  });
});

const OPS = Object.values(CMDQ_OP);

describe.each(QUEUE_CONSUMERS)('%s queue consumer', (consumer) => {
  useQueueConsumer(consumer);

  describe('random command streams (fast-check)', () => {
    it('never crash, stop only with an architected error, and only ever shrink the caches', () => {
      const cmd = fc.tuple(fc.oneof(fc.constantFrom(...OPS), fc.integer({ min: 0, max: 255 })), fc.bigInt({ min: 0n, max: (1n << 56n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }));
      fc.assert(
        fc.property(fc.array(cmd, { minLength: 1, maxLength: 40 }), fc.boolean(), (cmds, hyp) => {
          const d = new SmmuDriver({ cmdqLog2: 4, smmu: { hyp } });
          d.bringUp();
          // Populate the caches with one S1 translation.
          const pt = new PageTables(d.mem, 1, 0, () => d.mem.allocPages(1)[0]!);
          pt.map(0x1000n, d.mem.allocPages(1)[0]!);
          const cd = d.mem.allocPages(1)[0]!;
          d.mem.write(cd, SMMU_CD.toBytes(s1Cd(pt.root, 1)));
          d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cd >> 6n }));
          d.cfgiSte(8);
          expect(d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x1000n, write: false }).ok).toBe(true);
          for (const [op, hi, dw1] of cmds) {
            const before = { tlb: d.smmu.tlb.size, cfg: d.smmu.configCache.size };
            // Keep SSec clear half of the time so most commands are legal.
            d.issue([[(hi << 8n) | BigInt(op), dw1]]);
            const cons = d.reg32(SMMU_REG.CMDQ_CONS);
            const prod = d.reg32(SMMU_REG.CMDQ_PROD);
            const active = (d.reg32(SMMU_REG.GERROR) ^ d.reg32(SMMU_REG.GERRORN)) & 1;
            expect(d.smmu.tlb.size).toBeLessThanOrEqual(before.tlb);
            expect(d.smmu.configCache.size).toBeLessThanOrEqual(before.cfg);
            if (active) {
              expect([1, 2, 3]).toContain(cons >>> 24);
              expect(cons & 0x1f).not.toBe(prod & 0x1f);
              // Linux skip-err: replace the entry by a CMD_SYNC and acknowledge.
              d.mem.write64(d.cmdq + BigInt((cons & 0xf) * 16), BigInt(CMDQ_OP.CMD_SYNC));
              d.mem.write64(d.cmdq + BigInt((cons & 0xf) * 16) + 8n, 0n);
              d.w32(SMMU_REG.GERRORN, d.reg32(SMMU_REG.GERROR));
            }
            expect(d.reg32(SMMU_REG.CMDQ_CONS) & 0x1f).toBe(prod & 0x1f);
          }
        }),
        { numRuns: 100 },
      );
    });
  });
});

describe('random configuration structures (fast-check)', () => {
  it('any STE / CD / L1 descriptor bytes give a translation or an architected fault, never a throw', () => {
    const word = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
    const pointerish = fc.bigInt({ min: 0n, max: 0x1000n }).map((n) => 0x4000_0000n + n * 0x1000n);
    fc.assert(
      fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), fc.array(word, { minLength: 8, maxLength: 8 }), pointerish, fc.boolean(), fc.option(fc.integer({ min: 0, max: 0xfffff })), fc.boolean(), (ste, cd, ptr, keepValid, pasid, twoLevel) => {
        const d = new SmmuDriver({ twoLevel });
        d.bringUp();
        // Half of the runs point the STE at a real CD so the CD decoder sees random bytes too.
        const cdPa = d.mem.allocPages(1)[0]!;
        d.mem.write(cdPa, SMMU_CD.toBytes(cd));
        const w = [...ste];
        if (keepValid) w[0] = (w[0]! & ~(((1n << 46n) - 1n) << 6n)) | (cdPa & ~0x3fn) | 1n;
        d.writeSte(8, w);
        d.cfgiSte(8);
        for (const iova of [0n, ptr, 0xffff_ffff_f000n]) {
          const t = d.smmu.translate({ requesterId: 8, streamId: 8, iova, write: true, ...(pasid !== null ? { pasid } : {}) });
          if (!t.ok) expect(t.fault.kind).toMatch(/^(F_|C_|STE_ABORT$)/);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('random register traffic (fast-check)', () => {
  it('SMMU and CMDQV register files accept any aligned access without throwing', () => {
    const access = fc.record({
      cmdqv: fc.boolean(),
      offset: fc.integer({ min: 0, max: 0xaffff }).map((o) => o & ~3),
      size: fc.constantFrom(4 as const, 8 as const),
      value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      write: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(access, { maxLength: 60 }), (accesses) => {
        const m = createMachine({ ramBytes: 0x100_0000n, iommus: [{ kind: 'tegra241-cmdqv', name: 't', base: 0x900_0000n }] });
        const smmu = m.iommus.get('t') as Tegra241Smmu;
        for (const a of accesses) {
          const dev = a.cmdqv ? smmu.cmdqv : smmu;
          const off = a.cmdqv ? a.offset : a.offset & 0x1ffff;
          if (a.write) dev.mmioWrite(off, a.size, BigInt.asUintN(a.size * 8, a.value));
          else expect(dev.mmioRead(off, a.size) >> BigInt(a.size * 8)).toBe(0n);
        }
        // Whatever happened, the SMMU still answers translations.
        const t = smmu.translate({ requesterId: 8, streamId: 8, iova: 0x1000n, write: false });
        expect(typeof t.ok).toBe('boolean');
      }),
      { numRuns: 200 },
    );
  });
});
