import { describe, expect, it } from 'vitest';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '@iommufd/driver-api';
import { CMDQ_OP, SMMU_CD, SMMU_L1CD, SMMU_STE } from '@iommufd/hw-model';
import { EBUSY, EINVAL, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID } from '@iommufd/uapi';
import { armSmmuBlockedDomain, type ArmSmmuDomain } from '../src/index.js';
import { issued, opcodes, pagingDomain, rig } from './support/harness.js';

const RW = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE;

describe('PASID attachments (set_dev_pasid)', () => {
  it('puts an S1 domain at a PASID of a blocked RID: 2-level CD table, S1DSS=terminate, PASID DMA translated', () => {
    const r = rig({ pasid: true });
    const d = pagingDomain(r.devs[0]!, IOMMU_HWPT_ALLOC_PASID) as ArmSmmuDomain;
    const buf = r.machine.memory.allocPages(1)[0]!;
    d.ops.mapPages!(d, 0x9000n, buf, 4096n, 1, RW);
    expect(d.ops.setDevPasid!(d, r.devs[0]!, 5, undefined)).toBe(0);
    const ste = SMMU_STE.decode(r.smmu.readSte(r.pci[0]!.streamId));
    expect(ste).toMatchObject({ V: 1n, CONFIG: 5n, S1FMT: 2n, S1CDMAX: 20n, S1DSS: 0n });
    const l1 = r.machine.memory.read64(ste.S1CONTEXTPTR << 6n);
    const cd = SMMU_CD.fromBytes(r.machine.memory.read((SMMU_L1CD.get([l1], 'L2PTR') << 12n) + 5n * 64n, 64));
    expect(SMMU_CD.decode(cd)).toMatchObject({ V: 1n, ASID: BigInt(d.asid), TTB0: d.pgtbl.pgd >> 4n });
    expect(r.pci[0]!.dma({ iova: 0x9000n, length: 4, write: false, pasid: 5 }).ok).toBe(true);
    const rid = r.pci[0]!.dma({ iova: 0x9000n, length: 4, write: false });
    expect(rid.ok).toBe(false);
    if (!rid.ok) expect(rid.fault.kind).toBe('F_STREAM_DISABLED');
    // With a PASID in use the RID cannot move to an S2 domain.
    const s2 = pagingDomain(r.devs[0]!, IOMMU_HWPT_ALLOC_NEST_PARENT);
    expect(s2.ops.attachDev!(s2, r.devs[0]!)).toBe(EBUSY);
    // Removing the last PASID turns the STE back into abort.
    const cmds = issued(r.smmu, () => armSmmuBlockedDomain.ops.setDevPasid!(armSmmuBlockedDomain, r.devs[0]!, 5, d));
    expect(opcodes(cmds)).toContain(CMDQ_OP.CFGI_CD);
    expect(r.smmu.readSte(r.pci[0]!.streamId)).toEqual(SMMU_STE.encode({ V: 1 }));
    expect(r.pci[0]!.dma({ iova: 0x9000n, length: 4, write: false, pasid: 5 }).ok).toBe(false);
  });

  it('keeps the RID S1 domain (SSID0) when a PASID joins, and refuses a PASID on an S2 RID (EINVAL)', () => {
    const r = rig({ pasid: true });
    const rid = pagingDomain(r.devs[0]!) as ArmSmmuDomain;
    rid.ops.attachDev!(rid, r.devs[0]!);
    const before = r.smmu.readSte(r.pci[0]!.streamId);
    const p = pagingDomain(r.devs[0]!, IOMMU_HWPT_ALLOC_PASID) as ArmSmmuDomain;
    expect(p.ops.setDevPasid!(p, r.devs[0]!, 9, undefined)).toBe(0);
    expect(r.smmu.readSte(r.pci[0]!.streamId)).toEqual(before);
    expect(SMMU_STE.get(before, 'S1DSS')).toBe(2n);
    const s2 = pagingDomain(r.devs[1]!, IOMMU_HWPT_ALLOC_NEST_PARENT);
    s2.ops.attachDev!(s2, r.devs[1]!);
    expect(p.ops.setDevPasid!(p, r.devs[1]!, 9, undefined)).toBe(EINVAL);
    expect(s2.ops.setDevPasid!(s2, r.devs[0]!, 3, undefined)).toBe(EINVAL);
  });
});
