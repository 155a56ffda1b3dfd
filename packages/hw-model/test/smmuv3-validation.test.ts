import { describe, expect, it } from 'vitest';
import { SMMU_CD, SMMU_L1CD, SMMU_STE } from '../src/index.js';
import { GuestRam, PageTables, SmmuDriver, s1Cd, s2Ste } from './support/smmu-driver.js';

function setup(smmu = {}) {
  const d = new SmmuDriver({ smmu });
  d.bringUp();
  const alloc = () => d.mem.allocPages(1)[0]!;
  const pt = new PageTables(d.mem, 1, 0, alloc);
  pt.map(0x1000n, alloc());
  const t = () => d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x1000n, write: false, priv: true });
  return { d, alloc, pt, t };
}

describe('STE validation (C_BAD_STE)', () => {
  const s2 = (over: Record<string, number | bigint>) => SMMU_STE.encode({ ...s2Ste(0x4000_0000n, 1), ...over });
  it.each([
    ['Config 1..3 reserved', SMMU_STE.encode({ V: 1, CONFIG: 3 })],
    ['S2AA64 = 0', s2({ S2AA64: 0 })],
    ['S2TG 64K (only 4K advertised)', s2({ S2TG: 1 })],
    ['S2SL0 = 3', s2({ S2SL0: 3 })],
    ['S2T0SZ below 64 − PS', s2({ S2T0SZ: 15 })],
    ['S2T0SZ above 39', s2({ S2T0SZ: 40 })],
    ['more than 16 concatenated tables', s2({ S2T0SZ: 16, S2SL0: 1 })],
    ['S2TTB beyond the output size', s2({ S2PS: 2, S2T0SZ: 24, S2SL0: 1, S2TTB: (1n << 40n) >> 4n })],
    ['S2ENDI on a little-endian SMMU', s2({ S2ENDI: 1 })],
    ['S2S on an SMMU without stalls', s2({ S2S: 1 })],
    ['S2HA without HTTU', s2({ S2HA: 1 })],
    ['S1CDMax above SSIDSIZE', SMMU_STE.encode({ V: 1, CONFIG: 5, S1CDMAX: 21 })],
    ['S1Fmt = 3', SMMU_STE.encode({ V: 1, CONFIG: 5, S1FMT: 3 })],
    ['EATS = 3', SMMU_STE.encode({ V: 1, CONFIG: 4, EATS: 3 })],
  ] as const)('%s', (_name, ste) => {
    const { d, t } = setup();
    d.writeSte(8, [...ste]);
    d.cfgiSte(8);
    expect(t()).toMatchObject({ ok: false, fault: { kind: 'C_BAD_STE', recorded: true } });
  });

  it('stage-specific configs on an SMMU without that stage', () => {
    for (const [opts, ste] of [
      [{ stage1: false }, SMMU_STE.encode({ V: 1, CONFIG: 5 })],
      [{ stage2: false }, SMMU_STE.encode(s2Ste(0x4000_0000n, 1))],
      [{ cd2l: false }, SMMU_STE.encode({ V: 1, CONFIG: 5, S1FMT: 1 })],
    ] as const) {
      const { d, t } = setup(opts);
      d.writeSte(8, [...ste]);
      d.cfgiSte(8);
      expect(t()).toMatchObject({ ok: false, fault: { kind: 'C_BAD_STE' } });
    }
  });
});

describe('CD validation (C_BAD_CD)', () => {
  it.each([
    ['V = 0', { V: 0 }],
    ['AA64 = 0', { AA64: 0 }],
    ['A = 0 with TERM_MODEL = 1', { A: 0 }],
    ['S = 1 without stalls', { S: 1 }],
    ['HA without HTTU', { HA: 1 }],
    ['HD without HTTU', { HD: 1 }],
    ['ENDI = 1', { ENDI: 1 }],
    ['T0SZ < 16', { T0SZ: 15 }],
    ['T0SZ > 39', { T0SZ: 40 }],
    ['TG0 64K', { TG0: 1 }],
    ['TTB0 beyond IPS', { IPS: 2, TTB0: (1n << 40n) >> 4n }],
  ] as const)('%s', (_name, over) => {
    const { d, alloc, pt, t } = setup();
    const cd = alloc();
    d.mem.write(cd, SMMU_CD.toBytes(s1Cd(pt.root, 1, over)));
    d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cd >> 6n }));
    d.cfgiSte(8);
    expect(t()).toMatchObject({ ok: false, fault: { kind: 'C_BAD_CD', recorded: true } });
  });

  it('EPD0 makes every access a stage-1 translation fault', () => {
    const { d, alloc, pt, t } = setup();
    const cd = alloc();
    d.mem.write(cd, SMMU_CD.toBytes(s1Cd(pt.root, 1, { EPD0: 1 })));
    d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cd >> 6n }));
    d.cfgiSte(8);
    expect(t()).toMatchObject({ ok: false, fault: { kind: 'F_TRANSLATION' } });
  });
});

describe('nested 2-level CD tables', () => {
  it('translates the L1 CD pointer and the leaf through stage 2, and reports an invalid L1CD', () => {
    const d = new SmmuDriver();
    d.bringUp();
    const g = new GuestRam(d.mem, 48);
    const { s2, host: guest, toPa } = g;
    const G = GuestRam.BASE;
    const s1 = g.stage1();
    s1.map(0x7000n, G + 40n * 0x1000n);
    const l1 = G + 30n * 0x1000n;
    const leaf = G + 32n * 0x1000n; // 4 KiB leaves (S1Fmt = 1): 64 CDs each
    d.mem.write64(toPa(l1) + 8n, SMMU_L1CD.encode({ V: 1, L2PTR: leaf >> 12n })[0]!);
    d.mem.write(toPa(leaf) + 5n * 64n, SMMU_CD.toBytes(s1Cd(s1.root, 12)));
    d.writeSte(8, SMMU_STE.encode({ ...s2Ste(s2.root, 9, 7), S1FMT: 1, S1CONTEXTPTR: l1 >> 6n, S1CDMAX: 8, S1DSS: 0 }));
    d.cfgiSte(8);
    const t = (pasid: number) => d.smmu.translate({ requesterId: 8, streamId: 8, pasid, iova: 0x7010n, write: true });
    expect(t(69)).toEqual({ ok: true, pa: guest[40]! + 0x10n, pageSize: 0x1000n, writable: true });
    expect(t(200)).toMatchObject({ ok: false, fault: { kind: 'C_BAD_SUBSTREAMID' } }); // L1CD 3 invalid
    d.events();
  });
});
