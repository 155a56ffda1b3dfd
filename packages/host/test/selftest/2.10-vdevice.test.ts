// §2.10 vDEVICE and vIOMMU-scoped invalidation, with the vEVENTQ coverage of §2.11
// (fixture iommufd_viommu): vdevice_alloc, vdevice_cache, vdevice_tombstone.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readVevents, teardown, U, VIOMMU_VARIANTS, viommuFixture, type ViommuFixture } from './helpers.js';

const DEF = U.IOMMU_TEST_DEV_CACHE_DEFAULT;
const INV = U.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST;

const reqs = (...entries: [number, number, number][]) => {
  const out = new Uint8Array(entries.length * 12);
  entries.forEach(([flags, vdev_id, cache_id], i) => U.iommu_viommu_invalidate_selftest.encode({ flags, vdev_id, cache_id }, out, i * 12));
  return out;
};

describe.each(VIOMMU_VARIANTS)('fixture iommufd_viommu / $name', (v) => {
  let f: ViommuFixture;
  beforeEach(async () => {
    f = await viommuFixture(v);
  });
  afterEach(() => teardown(f.t, f.buffer));

  it('vdevice_alloc', () => {
    const t = f.t;
    if (!f.device) {
      expect(t.vdeviceAlloc(f.viommu, f.device, 0x99n).rc).toBe(-U.ENOENT);
      return;
    }
    const seq = { prev: -1 };
    expect(t.replace(f.stdev, f.nestedHwpt).rc).toBe(-U.ENOENT);
    const q = t.veventqAlloc(f.viommu, U.IOMMU_VEVENTQ_TYPE_SELFTEST, 2);
    expect(q.rc).toBe(0);
    expect(t.veventqAlloc(f.viommu, U.IOMMU_VEVENTQ_TYPE_SELFTEST, 2).rc).toBe(-U.EEXIST);
    let vd = t.vdeviceAlloc(f.viommu, f.device, 0x99n);
    expect(vd.rc).toBe(0);
    expect(t.replace(f.stdev, f.nestedHwpt).rc).toBe(0);
    expect(t.triggerVevent(f.device)).toBe(0);
    expect(readVevents(t, q.fd, 1, 0x99, seq)).toBe(0);
    expect(t.vdeviceAlloc(f.viommu, f.device, 0x99n).rc).toBe(-U.EEXIST);
    expect(t.replace(f.stdev, f.ioas).rc).toBe(0);
    expect(t.destroy(vd.id)).toBe(0);

    vd = t.vdeviceAlloc(f.viommu, f.device, 0x88n);
    expect(vd.rc).toBe(0);
    expect(t.replace(f.stdev, f.nestedHwpt).rc).toBe(0);
    // Depth 2: the third event is lost and reported by a LOST_EVENTS header.
    for (let i = 0; i < 3; i++) expect(t.triggerVevent(f.device)).toBe(0);
    expect(readVevents(t, q.fd, 3, 0x88, seq)).toBe(U.EOVERFLOW);
    expect(t.triggerVevent(f.device)).toBe(0);
    expect(readVevents(t, q.fd, 1, 0x88, seq)).toBe(0);
    expect(t.p.close(q.fd)).toBe(0);
    expect(t.replace(f.stdev, f.ioas).rc).toBe(0);
    expect(t.destroy(vd.id)).toBe(0);
    expect(t.destroy(q.id)).toBe(0);
  });

  if (v.viommu)
    it('vdevice_alloc: exact vEVENT bytes and sequence numbers', () => {
      const t = f.t;
      const q = t.veventqAlloc(f.viommu, U.IOMMU_VEVENTQ_TYPE_SELFTEST, 2);
      expect(t.vdeviceAlloc(f.viommu, f.device, 0x88n).rc).toBe(0);
      expect(t.replace(f.stdev, f.nestedHwpt).rc).toBe(0);
      for (let i = 0; i < 3; i++) expect(t.triggerVevent(f.device)).toBe(0);
      const buf = new Uint8Array(64);
      expect(t.p.read(q.fd, buf)).toBe(12 + 12 + 8);
      const words = Array.from({ length: 8 }, (_, i) => new DataView(buf.buffer).getUint32(i * 4, true));
      // {flags 0, seq 0, virt 0x88}, {0, 1, 0x88}, {LOST, 2}
      expect(words).toEqual([0, 0, 0x88, 0, 1, 0x88, U.IOMMU_VEVENTQ_FLAG_LOST_EVENTS, 2]);
      expect(t.p.read(q.fd, buf)).toBe(0);
      expect(t.triggerVevent(f.device)).toBe(0);
      expect(t.p.read(q.fd, buf)).toBe(12);
      expect(new DataView(buf.buffer).getUint32(4, true)).toBe(3);
      expect(t.replace(f.stdev, f.ioas).rc).toBe(0);
    });

  it('vdevice_cache', () => {
    const t = f.t;
    if (!f.device) {
      expect(t.vdeviceAlloc(f.viommu, f.device, 0x99n).rc).toBe(-U.ENOENT);
      return;
    }
    const vd = t.vdeviceAlloc(f.viommu, f.device, 0x99n);
    expect(vd.rc).toBe(0);
    t.expectDevCache(f.device, [DEF, DEF, DEF, DEF]);
    const vi = f.viommu;
    const zero = reqs([0, 0, 0], [0, 0, 0]);
    expect(t.invalidate(vi, INV, zero, 12, 0)).toEqual({ rc: 0, num: 0 });
    expect(t.invalidate(vi, U.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID, zero, 12, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(vi, INV, zero, 13, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(vi, INV, zero, 1, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(vi, INV, reqs([0xffffffff, 0x99, 0]), 12, 1)).toEqual({ rc: -U.EOPNOTSUPP, num: 0 });
    expect(t.invalidate(vi, INV, undefined, 12, 1, 0n)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(vi, INV, reqs([0, 0x99, 0]), 0, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(vi, INV, reqs([0, 0x99, U.MOCK_DEV_CACHE_ID_MAX + 1]), 12, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(vi, INV, reqs([0, 0x9, 0]), 12, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(vi, INV, reqs([0, 0x99, 0], [0xffffffff, 0x99, 1]), 12, 2)).toEqual({ rc: -U.EOPNOTSUPP, num: 1 });
    t.expectDevCache(f.device, [0, DEF, DEF, DEF]);
    expect(t.invalidate(vi, INV, reqs([0, 0x99, 0], [0, 0x99, U.MOCK_DEV_CACHE_ID_MAX + 1]), 12, 2)).toEqual({ rc: -U.EINVAL, num: 1 });
    t.expectDevCache(f.device, [0, DEF, DEF, DEF]);
    expect(t.invalidate(vi, INV, reqs([0, 0x99, 1]), 12, 1)).toEqual({ rc: 0, num: 1 });
    t.expectDevCache(f.device, [0, 0, DEF, DEF]);
    expect(t.invalidate(vi, INV, reqs([0, 0x99, 2], [0, 0x99, 3]), 12, 2)).toEqual({ rc: 0, num: 2 });
    t.expectDevCache(f.device, [0, 0, 0, 0]);
    expect(t.invalidate(vi, INV, reqs([U.IOMMU_TEST_INVALIDATE_FLAG_ALL, 0x99, 0]), 12, 1)).toEqual({ rc: 0, num: 1 });
    t.expectDevCache(f.device, [0, 0, 0, 0]);
    expect(t.destroy(vd.id)).toBe(0);
  });

  if (v.viommu)
    it('vdevice_tombstone', () => {
      const t = f.t;
      const vd = t.vdeviceAlloc(f.viommu, f.device, 0x99n);
      expect(vd.rc).toBe(0);
      // Unbinding the device first forces the vDEVICE down and tombstones its ID.
      expect(t.destroy(f.stdev)).toBe(0);
      expect(t.destroy(vd.id)).toBe(-U.ENOENT);
      const slot = t.host.objects(t.fd).find((o) => o.id === vd.id);
      expect(slot?.state).toBe('reserved');
    });
});
