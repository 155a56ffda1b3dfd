// The selftest port's cases that need no IOMMU_TEST_CMD, re-run on every preset with real
// VFIO devices in place of MOCK_DOMAIN: IOAS map/unmap/copy/ranges, HWPT_ALLOC errno,
// attach/replace/detach, the DESTROY EBUSY matrix. On the hardware presets each mapping is
// also checked by a device DMA through the IOMMU model (and each unmap by a fault), which is
// what the mock's MD_CHECK_MAP stands for there.
import { describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/index.js';
import { BUFFER_SIZE, Iommufd, makeBuffer, PAGE, RW, U } from '../selftest/helpers.js';

const U64_MAX = (1n << 64n) - 1n;
const PRESETS = ['mock', 'intel-vtd', 'arm-smmuv3', 'tegra241-cmdqv'] as const;
type Preset = (typeof PRESETS)[number];

/**
 * Where the tests map on each preset and what IOAS_IOVA_RANGES reports with one device
 * attached: the paging domain's aperture. The hardware drivers do not implement
 * get_resv_regions yet (Linux reports VT-d's interrupt window 0xfee0_0000 + 1 MiB as MSI and
 * SMMUv3's software MSI window 0x0800_0000 + 1 MiB), so no hole is cut in these ranges.
 */
const GEOMETRY: Record<Preset, { base: bigint; ranges: { start: bigint; last: bigint }[]; alignment: bigint }> = {
  mock: { base: BigInt(U.MOCK_APERTURE_START), ranges: [{ start: BigInt(U.MOCK_APERTURE_START), last: BigInt(U.MOCK_APERTURE_LAST) }], alignment: PAGE / 2n },
  // A first-stage domain: 4-level x86 tables, lower canonical half only (47 bits).
  'intel-vtd': { base: 1n << 24n, ranges: [{ start: 0n, last: (1n << 47n) - 1n }], alignment: PAGE },
  // A stage-1 domain: 48-bit VA, 4 KiB granule.
  'arm-smmuv3': { base: 1n << 24n, ranges: [{ start: 0n, last: (1n << 48n) - 1n }], alignment: PAGE },
  'tegra241-cmdqv': { base: 1n << 24n, ranges: [{ start: 0n, last: (1n << 48n) - 1n }], alignment: PAGE },
};

interface Fixture {
  host: Host;
  t: Iommufd;
  buffer: bigint;
  ioas: number;
  devFds: number[];
  devIds: number[];
  /** The auto domain device 0 was attached to. */
  hwpt: number;
  base: bigint;
  /** A device DMA read; undefined where the preset has no device model worth checking. */
  read(dev: number, iova: bigint, length: number): Uint8Array | 'fault';
}

async function fixture(platform: Preset): Promise<Fixture> {
  const host = await createHost({ platform, devices: 2 });
  const fd = host.process.open('/dev/iommu');
  const t = new Iommufd(host, fd);
  const buffer = makeBuffer(t);
  const ioas = t.ioasAlloc();
  const devFds = host.vfioDevices.map((p) => host.process.open(p));
  const devIds = devFds.map((dfd) => {
    const b = U.vfio_device_bind_iommufd.encode({ argsz: U.vfio_device_bind_iommufd.size, iommufd: fd });
    expect(host.process.ioctl(dfd, U.VFIO_DEVICE_BIND_IOMMUFD, b)).toBe(0);
    return U.vfio_device_bind_iommufd.get(b, 'out_devid');
  });
  const hwpt = attach(host, devFds[0]!, ioas);
  expect(hwpt.rc).toBe(0);
  const read = (dev: number, iova: bigint, length: number) => {
    const r = host.dma(host.vfioDevices[dev]!, { iova, length, write: false });
    return r.ok ? r.data! : 'fault';
  };
  return { host, t, buffer, ioas, devFds, devIds, hwpt: hwpt.ptId, base: GEOMETRY[platform].base, read };
}

function attach(host: Host, dfd: number, ptId: number): { rc: number; ptId: number } {
  const b = U.vfio_device_attach_iommufd_pt.encode({ argsz: U.vfio_device_attach_iommufd_pt.size, pt_id: ptId });
  return { rc: host.process.ioctl(dfd, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, b), ptId: U.vfio_device_attach_iommufd_pt.get(b, 'pt_id') };
}

function detach(host: Host, dfd: number): number {
  return host.process.ioctl(dfd, U.VFIO_DEVICE_DETACH_IOMMUFD_PT, U.vfio_device_detach_iommufd_pt.encode({ argsz: U.vfio_device_detach_iommufd_pt.size }));
}

/** Closing every fd leaves no object and no pin. */
function teardown(f: Fixture): void {
  for (const dfd of f.devFds) expect(f.host.process.close(dfd)).toBe(0);
  expect(f.t.close()).toBe(0);
  expect(f.host.contexts().every((c) => c.released && c.objects.length === 0)).toBe(true);
  expect(f.host.pinnedPages).toBe(0);
}

describe.each(PRESETS)("portable selftest cases on '%s'", (platform) => {
  const bytesAt = (f: Fixture, offset: bigint, length: number) => f.t.p.peek(f.buffer + offset, length) as Uint8Array;

  it('ioas_destroy / ioas_area_destroy: the IOAS is busy while a device’s auto domain holds it', async () => {
    const f = await fixture(platform);
    expect(f.t.destroy(f.ioas)).toBe(-U.EBUSY);
    expect(f.t.map(f.ioas, f.buffer, PAGE, { iova: f.base }).rc).toBe(0);
    expect(f.t.destroy(f.ioas)).toBe(-U.EBUSY);
    expect(detach(f.host, f.devFds[0]!)).toBe(0);
    // The auto domain went with the last detach; now only the table holds the IOAS.
    expect(f.t.destroy(f.ioas)).toBe(0);
    teardown(f);
  });

  it('area: ENOENT for nothing, areas are never split, over-mapping is EEXIST; the device sees exactly what is mapped', async () => {
    const f = await fixture(platform);
    const { t, ioas, base } = f;
    for (let i = 0n; i < 10n; i++) expect(t.unmap(ioas, base + i * PAGE, PAGE).rc).toBe(-U.ENOENT);
    for (let i = 0n; i < 10n; i++) expect(t.map(ioas, f.buffer + i * PAGE, PAGE, { iova: base + i * PAGE }).rc).toBe(0);
    expect(f.read(0, base + 3n * PAGE + 8n, 16)).toEqual(bytesAt(f, 3n * PAGE + 8n, 16));
    for (let i = 0n; i < 10n; i++) expect(t.unmap(ioas, base + i * PAGE, PAGE).rc).toBe(0);
    // Unmapped means unreachable: the IOTLB was invalidated.
    expect(f.read(0, base + 3n * PAGE, 4)).toBe('fault');
    expect(t.map(ioas, f.buffer, 2n * PAGE, { iova: base + 16n * PAGE }).rc).toBe(0);
    expect(t.unmap(ioas, base + 16n * PAGE, PAGE).rc).toBe(-U.ENOENT);
    expect(t.unmap(ioas, base + 17n * PAGE, PAGE).rc).toBe(-U.ENOENT);
    for (const [len, at] of [[2n, 16n], [1n, 16n], [1n, 17n], [2n, 15n], [3n, 15n]] as const) {
      expect(t.map(ioas, f.buffer, len * PAGE, { iova: base + at * PAGE }).rc).toBe(-U.EEXIST);
    }
    expect(f.read(0, base + 17n * PAGE, 8)).toEqual(bytesAt(f, PAGE, 8));
    expect(t.unmap(ioas, 0n, U64_MAX)).toEqual({ rc: 0, length: 2n * PAGE });
    expect(t.unmap(ioas, 0n, U64_MAX)).toEqual({ rc: 0, length: 0n });
    expect(f.read(0, base + 17n * PAGE, 8)).toBe('fault');
    teardown(f);
  });

  it('unmap_fully_contained_areas', async () => {
    const f = await fixture(platform);
    const { t, ioas } = f;
    const base = f.base + 4n * PAGE;
    for (let i = 0n; i < 4n; i++) expect(t.map(ioas, f.buffer, 8n * PAGE, { iova: base + i * 16n * PAGE }).rc).toBe(0);
    expect(t.unmap(ioas, base - 4n * PAGE, 8n * PAGE).rc).toBe(-U.ENOENT);
    expect(t.unmap(ioas, base + 3n * 16n * PAGE + 8n * PAGE - 4n * PAGE, 8n * PAGE).rc).toBe(-U.ENOENT);
    expect(t.unmap(ioas, base - 4n * PAGE, 3n * 16n * PAGE + 8n * PAGE + 4n * PAGE)).toEqual({ rc: 0, length: 32n * PAGE });
    teardown(f);
  });

  it('copy_area: IOAS_COPY maps the same pages at the new IOVA (the device reads the same bytes there)', async () => {
    const f = await fixture(platform);
    const { t, ioas, base } = f;
    expect(t.map(ioas, f.buffer + 5n * PAGE, PAGE, { iova: base }).rc).toBe(0);
    // Readable and writeable: a write-only IOVA is unreadable only where the page-table
    // format has a read permission (the mock's); x86 first-stage and AArch64 stage-1 PTEs do not.
    expect(t.copy(ioas, ioas, base, PAGE, base + 7n * PAGE, RW).rc).toBe(0);
    expect(f.read(0, base + 7n * PAGE, 32)).toEqual(bytesAt(f, 5n * PAGE, 32));
    const dst = t.ioasAlloc();
    expect(t.copy(dst, ioas, base, PAGE, base, RW).rc).toBe(0);
    // Device 1 on the copy's IOAS reads the same page.
    expect(attach(f.host, f.devFds[1]!, dst).rc).toBe(0);
    expect(f.read(1, base + 0x10n, 16)).toEqual(bytesAt(f, 5n * PAGE + 0x10n, 16));
    // Copying a range that is not fully mapped is ENOENT.
    expect(t.copy(dst, ioas, base, 2n * PAGE, base + 32n * PAGE, RW).rc).toBe(-U.ENOENT);
    teardown(f);
  });

  it('iova_ranges: the preset’s aperture; EMSGSIZE without room; fixed mappings stop at the aperture', async () => {
    const f = await fixture(platform);
    const g = GEOMETRY[platform];
    const r = f.t.iovaRanges(f.ioas, Number(BUFFER_SIZE / 16n));
    expect([r.rc, r.num]).toEqual([0, g.ranges.length]);
    expect(r.ranges).toEqual(g.ranges);
    expect(r.alignment).toBe(g.alignment);
    // No room: EMSGSIZE with the count, and nothing written.
    const none = f.t.iovaRanges(f.ioas, 0, 0xee);
    expect([none.rc, none.num]).toEqual([-U.EMSGSIZE, g.ranges.length]);
    expect(none.raw.every((b) => b === 0xee)).toBe(true);
    // Beyond the aperture is reserved: iopt_check_iova refuses a fixed mapping there with EINVAL.
    const last = g.ranges.at(-1)!.last;
    expect(f.t.map(f.ioas, f.buffer, PAGE, { iova: last + 1n }).rc).toBe(-U.EINVAL);
    expect(f.t.map(f.ioas, f.buffer, PAGE, { iova: last + 1n - PAGE }).rc).toBe(0);
    teardown(f);
  });

  it('HWPT_ALLOC errno: unknown flags, bad IDs, wrong object types, data for a paging HWPT', async () => {
    const f = await fixture(platform);
    const { t, ioas, devIds } = f;
    expect(t.hwptAlloc(devIds[0]!, ioas, 1 << 30).rc).toBe(-U.EOPNOTSUPP);
    expect(t.hwptAlloc(9999, ioas, 0).rc).toBe(-U.ENOENT);
    // iommufd_hwpt_alloc turns a pt_id lookup failure into EINVAL.
    expect(t.hwptAlloc(devIds[0]!, 9999, 0).rc).toBe(-U.EINVAL);
    // pt_id naming a device, dev_id naming an IOAS.
    expect(t.hwptAlloc(devIds[0]!, devIds[1]!, 0).rc).toBe(-U.EINVAL);
    expect(t.hwptAlloc(ioas, ioas, 0).rc).toBe(-U.ENOENT);
    // A nested HWPT on a paging HWPT: EINVAL for an auto domain (not a nest parent) where the
    // driver has domain_alloc_nested; arm-smmu-v3 has none (nesting only through a vIOMMU),
    // so iommufd_hwpt_nested_alloc stops earlier with EOPNOTSUPP.
    const nestedOnPaging = platform === 'arm-smmuv3' || platform === 'tegra241-cmdqv' ? -U.EOPNOTSUPP : -U.EINVAL;
    expect(t.hwptAlloc(devIds[0]!, f.hwpt, 0, { type: U.IOMMU_HWPT_DATA_SELFTEST, bytes: U.iommu_hwpt_selftest.encode({ iotlb: 0 }) }).rc).toBe(nestedOnPaging);
    const ok = t.hwptAlloc(devIds[0]!, ioas, 0);
    expect(ok.rc).toBe(0);
    expect(f.host.objects(t.fd).find((o) => o.id === ok.id)).toMatchObject({ type: 'HWPT_PAGING', users: 1, refs: [ioas] });
    teardown(f);
  });

  it('attach / replace / detach: DMA follows the attached page table; detached is blocked', async () => {
    const f = await fixture(platform);
    const { t, ioas, base, host } = f;
    const ioas2 = t.ioasAlloc();
    expect(t.map(ioas, f.buffer, PAGE, { iova: base }).rc).toBe(0);
    expect(t.map(ioas2, f.buffer + 9n * PAGE, PAGE, { iova: base }).rc).toBe(0);
    const h2 = t.hwptAlloc(f.devIds[0]!, ioas2, 0);
    expect(h2.rc).toBe(0);
    expect(f.read(0, base, 8)).toEqual(bytesAt(f, 0n, 8));
    // Attaching again replaces (the cdev tracks the attachment): now through h2.
    expect(attach(host, f.devFds[0]!, h2.id)).toEqual({ rc: 0, ptId: h2.id });
    expect(f.read(0, base, 8)).toEqual(bytesAt(f, 9n * PAGE, 8));
    // The replaced auto domain is gone; the explicit HWPT is busy while attached.
    expect(t.destroy(f.hwpt)).toBe(-U.ENOENT);
    expect(t.destroy(h2.id)).toBe(-U.EBUSY);
    // Back to the first IOAS: a new auto domain.
    const again = attach(host, f.devFds[0]!, ioas);
    expect(again.rc).toBe(0);
    expect(f.read(0, base, 8)).toEqual(bytesAt(f, 0n, 8));
    expect(t.destroy(h2.id)).toBe(0);
    expect(detach(host, f.devFds[0]!)).toBe(0);
    expect(f.read(0, base, 8)).toBe('fault');
    // Attach to something that is not a page table.
    expect(attach(host, f.devFds[0]!, f.devIds[1]!).rc).toBe(-U.EINVAL);
    expect(attach(host, f.devFds[0]!, 9999).rc).toBe(-U.ENOENT);
    teardown(f);
  });

  it('PASID attach: a PASID-tagged DMA goes through the HWPT attached at that PASID, the untagged one through the RID’s', async () => {
    const f = await fixture(platform);
    const { t, ioas, base, host } = f;
    const ioas2 = t.ioasAlloc();
    expect(t.map(ioas, f.buffer, PAGE, { iova: base }).rc).toBe(0);
    expect(t.map(ioas2, f.buffer + 3n * PAGE, PAGE, { iova: base }).rc).toBe(0);
    // Only a HWPT allocated with IOMMU_HWPT_ALLOC_PASID may be attached at a PASID.
    const plain = t.hwptAlloc(f.devIds[0]!, ioas2, 0);
    const pasidCapable = t.hwptAlloc(f.devIds[0]!, ioas2, U.IOMMU_HWPT_ALLOC_PASID);
    expect([plain.rc, pasidCapable.rc]).toEqual([0, 0]);
    const attachPasid = (pt: number, pasid: number) =>
      host.process.ioctl(f.devFds[0]!, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, U.vfio_device_attach_iommufd_pt.encode({ argsz: U.vfio_device_attach_iommufd_pt.size, flags: U.VFIO_DEVICE_ATTACH_PASID, pt_id: pt, pasid }));
    expect(attachPasid(plain.id, 5)).toBe(-U.EINVAL);
    // … and only while the RID's HWPT is PASID-compatible too (the auto domain is not).
    expect(attachPasid(pasidCapable.id, 5)).toBe(-U.EINVAL);
    const rid = t.hwptAlloc(f.devIds[0]!, ioas, U.IOMMU_HWPT_ALLOC_PASID);
    expect(attach(host, f.devFds[0]!, rid.id)).toEqual({ rc: 0, ptId: rid.id });
    expect(attachPasid(pasidCapable.id, 5)).toBe(0);
    const pasidRead = host.dma(host.vfioDevices[0]!, { iova: base, length: 8, write: false, pasid: 5 });
    expect(pasidRead).toEqual({ ok: true, data: bytesAt(f, 3n * PAGE, 8) });
    expect(f.read(0, base, 8)).toEqual(bytesAt(f, 0n, 8));
    expect(t.destroy(pasidCapable.id)).toBe(-U.EBUSY);
    teardown(f);
  });

  it('DESTROY matrix: an explicit HWPT holds its IOAS, a bound device is not destroyable, ID 0 is nothing', async () => {
    const f = await fixture(platform);
    const { t } = f;
    const ioas = t.ioasAlloc();
    const h = t.hwptAlloc(f.devIds[1]!, ioas, 0);
    expect(h.rc).toBe(0);
    expect(t.destroy(ioas)).toBe(-U.EBUSY);
    expect(t.destroy(h.id)).toBe(0);
    expect(t.destroy(ioas)).toBe(0);
    expect(t.destroy(ioas)).toBe(-U.ENOENT);
    expect(t.destroy(f.devIds[0]!)).toBe(-U.EBUSY);
    expect(t.destroy(0)).toBe(-U.ENOENT);
    teardown(f);
  });

  it('fork_gone: a new HWPT is filled from the pages pinned for an exited child; with nothing pinned, EFAULT', async () => {
    const f = await fixture(platform);
    const { t } = f;
    const child = f.host.process.fork();
    // Pinned in the child for device 0's domain…
    expect(t.as(child).map(f.ioas, f.buffer, BUFFER_SIZE, { iova: f.base }).rc).toBe(0);
    // …and not pinned at all in an IOAS with no domain.
    const bare = t.ioasAlloc();
    expect(t.as(child).map(bare, f.buffer, BUFFER_SIZE, { iova: f.base }).rc).toBe(0);
    child.exit();
    const h = t.hwptAlloc(f.devIds[1]!, f.ioas, 0);
    expect(h.rc).toBe(0);
    expect(attach(f.host, f.devFds[1]!, h.id).rc).toBe(0);
    expect(f.read(1, f.base + PAGE - 8n, 16)).toEqual(f.host.process.peek(f.buffer + PAGE - 8n, 16));
    expect(t.hwptAlloc(f.devIds[1]!, bare, 0).rc).toBe(-U.EFAULT);
    teardown(f);
  });
});
