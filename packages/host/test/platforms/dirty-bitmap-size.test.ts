// IOMMU_HWPT_GET_DIRTY_BITMAP and the user bitmap's memory, as Linux's iova_bitmap walks it:
// the bitmap is pinned for writing chunk by chunk; a first chunk that cannot be pinned fails
// iova_bitmap_alloc (ENOMEM), a later one ends the walk with EFAULT after the IOVA covered so
// far has been read and cleared and its bits set. A garbage-sized range (its bitmap up to
// 2^49 bytes) answers with an errno without materializing the bitmap.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost } from '../../src/index.js';

const PAGE = 4096n;

async function setup(platform: 'mock' | 'intel-vtd') {
  const host = await createHost({ platform, devices: 1 });
  const p = host.process;
  const fd = p.open('/dev/iommu');
  const dev = p.open(host.vfioDevices[0]!);
  const devId = U.vfioDeviceBindIommufd(p, dev, { iommufd: fd });
  const ioas = U.ioasAlloc(p, fd);
  const hwpt = U.hwptAlloc(p, fd, { devId, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
  const get = (iova: bigint, length: bigint, data: bigint, flags = 0): number =>
    p.ioctl(fd, U.IOMMU_HWPT_GET_DIRTY_BITMAP, U.iommu_hwpt_get_dirty_bitmap.encode({ size: U.iommu_hwpt_get_dirty_bitmap.size, hwpt_id: hwpt, flags, iova, length, page_size: PAGE, data }));
  return { host, p, fd, dev, ioas, hwpt, get };
}

describe('GET_DIRTY_BITMAP and the memory of its bitmap', () => {
  it('garbage-sized ranges over a one-page bitmap: the first chunk pins, the next does not → EFAULT, never an exception', async () => {
    const { p, get } = await setup('mock');
    const va = p.mmap(PAGE, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    for (const length of [(1n << 64n) - PAGE, 1n << 52n, 1n << 40n]) expect(get(0n, length, va), length.toString(16)).toBe(-U.EFAULT);
  });

  it('a bitmap whose first page cannot be pinned for writing → ENOMEM (read-only, unmapped); a 2 MiB writable one → 0, contents kept', async () => {
    const { p, get } = await setup('mock');
    const len = 2n << 20n;
    const ro = p.mmap(len, U.PROT_READ, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    expect(get(0n, len * 8n * PAGE, ro)).toBe(-U.ENOMEM);
    expect(get(0n, 64n * PAGE, 0x7fff_0000_0000n)).toBe(-U.ENOMEM);
    const va = p.mmap(len, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    p.poke(va + len - 8n, Uint8Array.of(0xaa));
    expect(get(0n, len * 8n * PAGE, va)).toBe(0);
    expect(p.peek(va + len - 8n, 2)).toEqual(Uint8Array.of(0xaa, 0));
  });

  it('intel-vtd: a bitmap cut short by a read-only page sets the bits it covers, clears only their dirty state, then EFAULT', async () => {
    const { host, p, fd, dev, ioas, hwpt, get } = await setup('intel-vtd');
    // Two mapped areas: IOVA 0 (bit 3 → first bitmap page) and IOVA 2^27 (bit 32769 → second page).
    const far = 32768n * PAGE;
    for (const iova of [0n, far]) {
      const mem = p.mmap(16n * PAGE, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED | U.MAP_ANONYMOUS, -1, 0);
      U.ioasMap(p, fd, { ioasId: ioas, userVa: mem, length: 16n * PAGE, iova });
    }
    U.vfioDeviceAttachIommufdPt(p, dev, { ptId: hwpt });
    U.hwptSetDirtyTracking(p, fd, hwpt, true);
    for (const iova of [3n * PAGE, far + PAGE]) expect(host.dma(host.vfioDevices[0]!, { iova, length: 4, write: true, data: Uint8Array.of(1, 2, 3, 4) }).ok).toBe(true);
    const bitmap = p.mmap(2n * PAGE, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    const word = (at: bigint) => new DataView((p.peek(at, 8) as Uint8Array).buffer).getBigUint64(0, true);
    // The second bitmap page becomes read-only memory (GUP cannot pin it for writing).
    expect(p.mmap(PAGE, U.PROT_READ, U.MAP_PRIVATE | U.MAP_ANONYMOUS | U.MAP_FIXED, -1, 0, bitmap + PAGE)).toBe(bitmap + PAGE);
    // 32832 bits need 4104 bytes: the walk cannot pin the second bitmap page.
    const length = (32768n + 64n) * PAGE;
    expect(get(0n, length, bitmap)).toBe(-U.EFAULT);
    expect(word(bitmap)).toBe(1n << 3n);
    // The walk stopped before IOVA 2^27: its dirty bit is still there; the first one was cleared.
    const whole = p.mmap(2n * PAGE, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    expect(get(0n, length, whole, U.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR)).toBe(0);
    expect([word(whole), word(whole + 4096n)]).toEqual([0n, 1n << 1n]);
  });
});
