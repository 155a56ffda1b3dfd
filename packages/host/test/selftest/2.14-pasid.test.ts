// §2.14 PASID: TEST_F(iommufd_device_pasid, pasid_attach), variants no_pasid and has_pasid.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Iommufd, openIommufd, teardown, U } from './helpers.js';

const { IOMMU_TEST_OP_PASID_ATTACH: ATTACH, IOMMU_TEST_OP_PASID_REPLACE: REPLACE, IOMMU_TEST_OP_PASID_DETACH: DETACH } = U;

describe.each([
  { name: 'no_pasid', pasidCapable: false },
  { name: 'has_pasid', pasidCapable: true },
])('fixture iommufd_device_pasid / $name', (v) => {
  let t: Iommufd;
  let ioas: number;
  let stdev: number;
  let device: number;
  let noPasidStdev = 0;
  beforeEach(async () => {
    t = await openIommufd();
    ioas = t.ioasAlloc();
    ({ stdev, idev: device } = t.mockDomainOk(ioas, U.MOCK_FLAGS_DEVICE_PASID));
    if (!v.pasidCapable) noPasidStdev = t.mockDomainOk(ioas).stdev;
  });
  afterEach(() => teardown(t));

  const attach = (pasid: number, pt: number, dev = stdev) => t.pasid(ATTACH, dev, pasid, pt).rc;
  const replacePasid = (pasid: number, pt: number) => t.pasid(REPLACE, stdev, pasid, pt).rc;
  const detach = (pasid: number) => t.pasid(DETACH, stdev, pasid).rc;
  const check = (pasid: number, hwpt: number) => t.pasidCheck(stdev, pasid, hwpt);

  it('pasid_attach', () => {
    const sel = { type: U.IOMMU_HWPT_DATA_SELFTEST, bytes: U.iommu_hwpt_selftest.encode({ iotlb: U.IOMMU_TEST_IOTLB_DEFAULT }) };
    // 1: detaching a PASID that is not attached is fine
    expect(detach(100)).toBe(0);
    // 2–5: a nest parent, two PASID-capable nested HWPTs, an IOPF one, one via a vIOMMU, an S2
    const parent = t.hwptAlloc(device, ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT);
    const nested0 = t.hwptAlloc(device, parent.id, U.IOMMU_HWPT_ALLOC_PASID, sel);
    const nested1 = t.hwptAlloc(device, parent.id, U.IOMMU_HWPT_ALLOC_PASID, sel);
    expect([parent.rc, nested0.rc, nested1.rc]).toEqual([0, 0, 0]);
    const fault = t.faultAlloc();
    expect(fault.rc).toBe(0);
    const iopf = t.hwptAlloc(device, parent.id, U.IOMMU_HWPT_FAULT_ID_VALID | U.IOMMU_HWPT_ALLOC_PASID, sel, fault.id);
    expect(iopf.rc).toBe(0);
    const viommu = t.viommuAlloc(device, parent.id, U.IOMMU_VIOMMU_TYPE_SELFTEST);
    expect(viommu.rc).toBe(0);
    expect(t.hwptAlloc(device, viommu.id, U.IOMMU_HWPT_ALLOC_PASID, sel).rc).toBe(0);
    const s2 = t.hwptAlloc(device, ioas, U.IOMMU_HWPT_ALLOC_PASID);
    expect(s2.rc).toBe(0);

    // 6: a PASID needs the RID's domain to be PASID-compatible too
    expect(t.replace(stdev, parent.id).rc).toBe(0);
    expect(attach(100, s2.id)).toBe(-U.EINVAL);
    // 7: and the RID cannot move to an incompatible one while a PASID is attached
    expect(t.replace(stdev, s2.id).rc).toBe(0);
    expect(attach(100, nested0.id)).toBe(0);
    expect(t.replace(stdev, parent.id).rc).toBe(-U.EINVAL);
    // 8
    expect(detach(100)).toBe(0);
    expect(check(100, 0)).toBe(0);

    // 9: a device without PASID support behind an incompatible RID domain
    if (!v.pasidCapable) {
      expect(t.replace(noPasidStdev, nested0.id).rc).toBe(0);
      expect(t.replace(noPasidStdev, ioas).rc).toBe(0);
      expect(attach(100, parent.id, noPasidStdev)).toBe(-U.EINVAL);
      expect(attach(100, s2.id, noPasidStdev)).toBe(-U.EINVAL);
    }

    // 10–11: neither a non-PASID HWPT nor an IOAS (its automatic domain) can take a PASID
    expect(attach(100, parent.id)).toBe(-U.EINVAL);
    expect(check(100, 0)).toBe(0);
    expect(attach(100, ioas)).toBe(-U.EINVAL);
    expect(check(100, 0)).toBe(0);
    // 12–13: attach never overwrites
    expect(attach(100, s2.id)).toBe(0);
    expect(check(100, s2.id)).toBe(0);
    expect(attach(100, nested0.id)).toBe(-U.EBUSY);
    // 14
    expect(detach(100)).toBe(0);
    expect(check(100, 0)).toBe(0);
    expect(attach(100, nested0.id)).toBe(0);
    expect(check(100, nested0.id)).toBe(0);
    expect(attach(100, nested0.id)).toBe(-U.EBUSY);
    expect(detach(100)).toBe(0);

    // 15–16: replace
    expect(replacePasid(200, s2.id)).toBe(-U.EINVAL);
    expect(attach(200, s2.id)).toBe(0);
    expect(check(200, s2.id)).toBe(0);
    expect(replacePasid(200, ioas)).toBe(-U.EINVAL);
    expect(check(200, s2.id)).toBe(0);
    expect(replacePasid(200, nested0.id)).toBe(0);
    expect(check(200, nested0.id)).toBe(0);
    expect(replacePasid(200, nested1.id)).toBe(0);
    expect(check(200, nested1.id)).toBe(0);
    expect(detach(200)).toBe(0);
    expect(check(200, 0)).toBe(0);

    // 17: the mock fails the second set_dev_pasid of pasid 1024; the replace rolls back
    expect(attach(1024, s2.id)).toBe(0);
    expect(check(1024, s2.id)).toBe(0);
    expect(replacePasid(1024, nested0.id)).toBe(-U.ENOMEM);
    expect(check(1024, s2.id)).toBe(0);
    expect(detach(1024)).toBe(0);
    expect(check(1024, 0)).toBe(0);

    // 18: an IOPF-capable HWPT on a PASID delivers that PASID's page requests
    expect(attach(2048, iopf.id)).toBe(0);
    expect(check(2048, iopf.id)).toBe(0);
    const pf = t.triggerIopf(device, fault.fd, 2048);
    expect([pf.trigger, pf.read, pf.write]).toEqual([0, U.iommu_hwpt_pgfault.size, U.iommu_hwpt_page_response.size]);
    expect(pf.fault.pasid).toBe(2048);
    expect(pf.fault.flags & U.IOMMU_PGFAULT_FLAGS_PASID_VALID).toBe(U.IOMMU_PGFAULT_FLAGS_PASID_VALID);
    expect(replacePasid(2048, s2.id)).toBe(0);
    expect(check(2048, s2.id)).toBe(0);
    expect(detach(2048)).toBe(0);
    expect(check(2048, 0)).toBe(0);

    // 19
    expect(t.destroy(iopf.id)).toBe(0);
    expect(t.p.close(fault.fd)).toBe(0);
    expect(t.destroy(fault.id)).toBe(0);
    expect(t.replace(stdev, ioas).rc).toBe(0);
  });
});
