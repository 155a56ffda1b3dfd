import { expect, it } from 'vitest';
import { createMachine } from '../src/index.js';

it('the README VT-d example brings the unit up and DMA reaches memory', () => {
  const m = createMachine({
    ramBytes: 0x1000_0000n,
    iommus: [{ kind: 'vtd', name: 'dmar0', base: 0xfed9_0000n, options: { addressWidth: 48 } }],
    devices: [{ bdf: { bus: 0, dev: 2, fn: 0 }, iommu: 'dmar0' }],
  });
  const mem = m.memory;
  const reg = (off: number) => 0xfed9_0000n + BigInt(off);
  const [root, ctx, dir, ptbl, iq, data] = mem.allocPages(6, { contiguous: false });

  // iommu_set_root_entry: RTADDR | TTM=01 (scalable), GCMD.SRTP, poll GSTS.RTPS
  mem.write64(reg(0x20), root | (1n << 10n));
  mem.write32(reg(0x18), 1 << 30);
  // dmar_enable_qi: IQT=0, IQA = base | DW(256-bit) | QS=1, GCMD.QIE
  mem.write32(reg(0x88), 0);
  mem.write64(reg(0x90), iq | (1n << 11n) | 1n);
  mem.write32(reg(0x18), 1 << 26);
  // scalable root (lower half) → context entry of devfn 0x10 → PASID dir → PASID 0 entry, pass-through
  mem.write64(root, ctx | 1n);
  mem.write64(ctx + 0x10n * 32n, dir | (7n << 9n) | 1n);
  mem.write64(dir, ptbl | 1n);
  mem.write64(ptbl + 8n, 1n);                    // DID 1
  mem.write64(ptbl, (4n << 6n) | (2n << 2n) | 1n); // PGTT=4, AW=2, P (set last)
  // GCMD.TE (keep QIE)
  mem.write32(reg(0x18), (1 << 31) | (1 << 26));
  m.devices[0].dma({ iova: data, length: 4, write: true, data: new Uint8Array([1, 2, 3, 4]) });
  expect([...mem.read(data, 4)]).toEqual([1, 2, 3, 4]);
  expect(mem.read32(reg(0x1c)) >>> 0).toBe(((1 << 31) | (1 << 30) | (1 << 26)) >>> 0);
});
