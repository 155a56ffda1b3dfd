// §2.9 vIOMMU alloc (fixture iommufd_viommu).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAP_SHARED, PAGE, PROT_RW, teardown, U, VIOMMU_VARIANTS, viommuFixture, type ViommuFixture } from './helpers.js';

describe.each(VIOMMU_VARIANTS)('fixture iommufd_viommu / $name', (v) => {
  let f: ViommuFixture;
  beforeEach(async () => {
    f = await viommuFixture(v);
  });
  afterEach(() => teardown(f.t, f.buffer));

  it('viommu_auto_destroy', () => {
    const types = f.t.host.objects(f.t.fd).map((o) => o.type);
    expect(types.filter((x) => x === 'VIOMMU').length).toBe(v.viommu ? 1 : 0);
  });

  it('viommu_negative_tests', () => {
    const t = f.t;
    if (!f.device) {
      expect(t.viommuAlloc(f.device, f.hwpt, U.IOMMU_VIOMMU_TYPE_SELFTEST).rc).toBe(-U.ENOENT);
      return;
    }
    expect(t.viommuAlloc(f.device, 0, U.IOMMU_VIOMMU_TYPE_SELFTEST).rc).toBe(-U.ENOENT);
    const h = t.hwptAlloc(f.device, f.ioas, 0);
    expect(h.rc).toBe(0);
    expect(t.viommuAlloc(f.device, h.id, U.IOMMU_VIOMMU_TYPE_SELFTEST).rc).toBe(-U.EINVAL);
    expect(t.destroy(h.id)).toBe(0);
    expect(t.viommuAlloc(f.device, f.hwpt, 0xdead).rc).toBe(-U.EOPNOTSUPP);
    expect(t.destroy(f.hwpt)).toBe(-U.EBUSY);
    expect(t.destroy(f.viommu)).toBe(-U.EBUSY);
  });

  if (v.viommu)
    it('viommu_alloc_nested_iopf', () => {
    const t = f.t;
    const sel = { type: U.IOMMU_HWPT_DATA_SELFTEST, bytes: U.iommu_hwpt_selftest.encode({ iotlb: U.IOMMU_TEST_IOTLB_DEFAULT }) };
    const fault = t.faultAlloc();
    expect(fault.rc).toBe(0);
    expect(t.hwptAlloc(f.device, f.viommu, U.IOMMU_HWPT_FAULT_ID_VALID, sel, 0xffffffff).rc).toBe(-U.ENOENT);
    expect(t.hwptAlloc(f.device, f.viommu, (U.IOMMU_HWPT_FAULT_ID_VALID | (1 << 31)) >>> 0, sel, fault.id).rc).toBe(-U.EOPNOTSUPP);
    const iopf = t.hwptAlloc(f.device, f.viommu, U.IOMMU_HWPT_FAULT_ID_VALID, sel, fault.id);
    expect(iopf.rc).toBe(0);
    // A vIOMMU nested HWPT needs the device's vDEVICE first.
    expect(t.replace(f.stdev, iopf.id).rc).toBe(-U.ENOENT);
    expect(t.vdeviceAlloc(f.viommu, f.device, 0x99n).rc).toBe(0);
    expect(t.replace(f.stdev, iopf.id).rc).toBe(0);
    expect(t.destroy(iopf.id)).toBe(-U.EBUSY);
    const io = t.triggerIopf(f.device, fault.fd);
    expect([io.trigger, io.read, io.write]).toEqual([0, U.iommu_hwpt_pgfault.size, U.iommu_hwpt_page_response.size]);
    expect(t.replace(f.stdev, f.ioas).rc).toBe(0);
    expect(t.destroy(iopf.id)).toBe(0);
    expect(t.p.close(fault.fd)).toBe(0);
    expect(t.destroy(fault.id)).toBe(0);
  });

  // The kernel test skips no_viommu; the case only exists with a vIOMMU here.
  if (v.viommu)
    it('viommu_alloc_with_data', () => {
      const t = f.t;
      const data = U.iommu_viommu_selftest.encode({ in_data: 0xbeef });
      const r = t.viommuAlloc(f.device, f.hwpt, U.IOMMU_VIOMMU_TYPE_SELFTEST, data);
      expect(r.rc).toBe(0);
      const out = U.iommu_viommu_selftest.decode(r.data!);
      expect(out.out_data).toBe(0xbeef);
      expect(out.out_mmap_length).toBe(2n * PAGE);
      const { out_mmap_offset: off, out_mmap_length: len } = out;
      const mmap = (l: bigint, o: bigint) => t.p.mmap(l, PROT_RW, MAP_SHARED, t.fd, o);
      expect(mmap(len, off + PAGE)).toBe(BigInt(-U.ENXIO));
      expect(mmap(len, off + 2n * PAGE)).toBe(BigInt(-U.ENXIO));
      expect(mmap(len / 2n, off)).toBe(BigInt(-U.ENXIO));
      expect(mmap(len * 2n, off)).toBe(BigInt(-U.ENXIO));
      const va = mmap(len, off);
      expect(va > 0n).toBe(true);
      expect(new DataView((t.p.peek(va, 4) as Uint8Array).buffer).getUint32(0, true)).toBe(0xbeef);
      expect(t.destroy(r.id)).toBe(-U.EBUSY);
      expect(t.p.munmap(va, len)).toBe(0);
      expect(t.destroy(r.id)).toBe(0);
    });
});
