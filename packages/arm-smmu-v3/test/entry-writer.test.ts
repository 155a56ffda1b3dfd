import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SMMU_CD, SMMU_STE } from '@iommufd/hw-model';
import { getCdUsed, getSteUsed, writeEntry } from '../src/entry-writer.js';
import { makeAbortSte, makeBypassSte, makeCdtableSte, makeNestedCdTableSte, makeS1Cd, makeS2DomainSte } from '../src/index.js';

const features = { attrTypesOvr: false, e2h: false, stalls: false };
const vtcr = (sl: number) => ({ tsz: 16, tg: 0, ps: 5, irgn: 1, orgn: 1, sh: 3, sl });
const ste = fc.oneof(
  fc.constant(makeAbortSte()),
  fc.constant(makeBypassSte(features)),
  fc.record({ base: fc.bigInt({ min: 1n, max: 0xfff_ffffn }), s1dss: fc.constantFrom(0, 1, 2), ats: fc.boolean(), cdmax: fc.constantFrom(0, 10, 20) }).map((o) =>
    makeCdtableSte(features, { s1fmt: o.cdmax > 10 ? 2 : 0, base: o.base << 12n, s1cdmax: o.cdmax }, { atsEnabled: o.ats, s1dss: o.s1dss, stallEnabled: false }),
  ),
  fc.record({ vmid: fc.integer({ min: 1, max: 0xffff }), ttb: fc.bigInt({ min: 1n, max: 0xfff_ffffn }), ats: fc.boolean(), fwb: fc.boolean() }).map((o) =>
    makeS2DomainSte(features, { vmid: o.vmid, vtcr: vtcr(2), ttb: o.ttb << 12n, s2fwb: o.fwb }, { atsEnabled: o.ats, stallEnabled: false }),
  ),
  fc.record({ vmid: fc.integer({ min: 1, max: 0xffff }), ttb: fc.bigInt({ min: 1n, max: 0xfff_ffffn }), ctx: fc.bigInt({ min: 1n, max: 0xfff_ffffn }), dss: fc.constantFrom(0n, 1n, 2n) }).map((o) =>
    makeNestedCdTableSte(features, { vmid: o.vmid, vtcr: vtcr(2), ttb: o.ttb << 12n, s2fwb: true }, [SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: o.ctx })[0]!, o.dss], { atsEnabled: false, stallEnabled: false }),
  ),
);
const cd = fc.oneof(
  fc.constant(new Array<bigint>(8).fill(0n)),
  fc.record({ asid: fc.integer({ min: 1, max: 0xffff }), ttb: fc.bigInt({ min: 1n, max: 0xfff_ffffn }) }).map((o) =>
    makeS1Cd(vtcr(0), { asid: o.asid, ttb: o.ttb << 12n, mair: 0xf404ff44n, stallEnabled: false, hd: false }),
  ),
);

/** What the SMMU acts on: the used bits of an entry, or "invalid" when V = 0. */
function meaning(getUsed: (e: readonly bigint[]) => bigint[], e: readonly bigint[], valid: (e: readonly bigint[]) => boolean): string {
  if (!valid(e)) return 'invalid';
  const used = getUsed(e);
  return e.map((w, i) => (w & used[i]!).toString(16)).join(',');
}

function observedStates(getUsed: (e: readonly bigint[]) => bigint[], from: bigint[], to: bigint[]): bigint[][] {
  const live = [...from];
  const seen: bigint[][] = [];
  writeEntry(
    {
      getUsed,
      writeQword: (i, v) => {
        live[i] = v;
      },
      // The SMMU may fetch the entry at any sync (and after it).
      sync: () => seen.push([...live]),
    },
    from,
    to,
  );
  expect(live).toEqual(to);
  return seen;
}

describe('hitless entry writer (arm_smmu_write_entry)', () => {
  it('never lets an STE fetch see anything but the old configuration, the new one, or V=0', () => {
    fc.assert(
      fc.property(ste, ste, (from, to) => {
        const ok = new Set([meaning(getSteUsed, from, (e) => SMMU_STE.get(e, 'V') === 1n), meaning(getSteUsed, to, (e) => SMMU_STE.get(e, 'V') === 1n), 'invalid']);
        for (const s of observedStates(getSteUsed, from, to)) expect(ok.has(meaning(getSteUsed, s, (e) => SMMU_STE.get(e, 'V') === 1n))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('keeps CD updates hitless too (an ASID/TTB change never exposes a mix)', () => {
    fc.assert(
      fc.property(cd, cd, (from, to) => {
        const valid = (e: readonly bigint[]) => SMMU_CD.get(e, 'V') === 1n;
        const ok = new Set([meaning(getCdUsed, from, valid), meaning(getCdUsed, to, valid), 'invalid']);
        for (const s of observedStates(getCdUsed, from, to)) expect(ok.has(meaning(getCdUsed, s, valid))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('is a no-op (no sync) when nothing changes', () => {
    fc.assert(
      fc.property(ste, (e) => {
        expect(observedStates(getSteUsed, e, [...e])).toEqual([]);
      }),
    );
  });
});
