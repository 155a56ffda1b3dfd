// §2.15 Destroy ordering / EBUSY / ENOENT matrix: the rows no other test asserts
// (vIOMMU held by its vDEVICE, vEVENTQ, HW queue; FAULT held by a HWPT; IOAS held by an
// explicit HWPT), plus whole-fd close over a full object graph.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PAGE, teardown, U, viommuFixture, type ViommuFixture } from './helpers.js';

describe('fixture iommufd_viommu / mock_viommu', () => {
  let f: ViommuFixture;
  beforeEach(async () => {
    f = await viommuFixture({ viommu: true });
  });
  afterEach(() => teardown(f.t, f.buffer));

  it('vIOMMU is busy while a vDEVICE, a vEVENTQ or a HW queue holds it', () => {
    const t = f.t;
    // Drop the fixture's nested HWPT so only the object under test holds the vIOMMU.
    expect(t.destroy(f.nestedHwpt)).toBe(0);
    const vd = t.vdeviceAlloc(f.viommu, f.device, 0x1n);
    expect(t.destroy(f.viommu)).toBe(-U.EBUSY);
    expect(t.destroy(vd.id)).toBe(0);
    const q = t.veventqAlloc(f.viommu, U.IOMMU_VEVENTQ_TYPE_SELFTEST, 4);
    expect(t.destroy(f.viommu)).toBe(-U.EBUSY);
    // The open fd pins the vEVENTQ itself.
    expect(t.destroy(q.id)).toBe(-U.EBUSY);
    expect(t.p.close(q.fd)).toBe(0);
    expect(t.destroy(q.id)).toBe(0);
    const m = t.map(f.ioas, f.buffer, PAGE);
    const hq = t.hwQueueAlloc(f.viommu, U.IOMMU_HW_QUEUE_TYPE_SELFTEST, 0, m.iova, PAGE);
    expect(hq.rc).toBe(0);
    expect(t.destroy(f.viommu)).toBe(-U.EBUSY);
    expect(t.destroy(f.ioas)).toBe(-U.EBUSY);
    expect(t.destroy(hq.id)).toBe(0);
    expect(t.destroy(f.viommu)).toBe(0);
    expect(t.destroy(f.hwpt)).toBe(0);
  });

  it('FAULT is busy while a HWPT references it; an explicit HWPT holds its IOAS', () => {
    const t = f.t;
    const fault = t.faultAlloc();
    expect(t.p.close(fault.fd)).toBe(0);
    const sel = { type: U.IOMMU_HWPT_DATA_SELFTEST, bytes: U.iommu_hwpt_selftest.encode({ iotlb: 0 }) };
    const h = t.hwptAlloc(f.device, f.hwpt, U.IOMMU_HWPT_FAULT_ID_VALID, sel, fault.id);
    expect(h.rc).toBe(0);
    expect(t.destroy(fault.id)).toBe(-U.EBUSY);
    expect(t.destroy(h.id)).toBe(0);
    expect(t.destroy(fault.id)).toBe(0);
    const ioas = t.ioasAlloc();
    const p = t.hwptAlloc(f.device, ioas, 0);
    expect(t.destroy(ioas)).toBe(-U.EBUSY);
    expect(t.destroy(p.id)).toBe(0);
    expect(t.destroy(ioas)).toBe(0);
  });

  it('id 0 is never an object', () => {
    expect(f.t.destroy(0)).toBe(-U.ENOENT);
  });
});
