/**
 * Fixtures and helpers of the selftest port, in our own words: every call goes through the
 * Host contract (`p.open/ioctl/mmap/...`) with structs built from the uAPI layouts, and
 * returns the raw rc (0 / -errno) plus the decoded output so tests can assert exact errno
 * and exact bytes.
 */
import type { StructLayout, StructValue, FieldSpec } from '@iommufd/uapi';
import * as U from '@iommufd/uapi';
import { expect } from 'vitest';
import { createHost, type Host, type HostProcess } from '../../src/index.js';

export const PAGE = 4096n;
export const MOCK_PAGE = PAGE / 2n;
export const HUGEPAGE = 2n << 20n;
export const BUFFER_SIZE = 16n * PAGE;
export const AP = BigInt(U.MOCK_APERTURE_START);
export const AL = BigInt(U.MOCK_APERTURE_LAST);
export const PROT_RW = U.PROT_READ | U.PROT_WRITE;
export const { MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_POPULATE } = U;
export const RW = U.IOMMU_IOAS_MAP_WRITEABLE | U.IOMMU_IOAS_MAP_READABLE;

type Layout = StructLayout<readonly FieldSpec[]>;

/** One ioctl with a struct: its rc and the struct as the kernel left it. */
export interface Call<V> {
  rc: number;
  out: V;
}

/** An open /dev/iommu with the helpers the kernel's iommufd_utils.h offers. */
export class Iommufd {
  constructor(
    readonly host: Host,
    readonly fd: number,
    /** The process issuing the calls (the VMM process unless {@link Iommufd.as} chose another). */
    readonly p: HostProcess = host.process,
  ) {}

  /** The same descriptor used by `process` — a forked child's inherited copy of the fd. */
  as(process: HostProcess): Iommufd {
    return new Iommufd(this.host, this.fd, process);
  }

  /** Encodes `value` (size defaults to sizeof), issues the ioctl, decodes the result. */
  call<L extends Layout>(request: number, layout: L, value: Record<string, number | bigint | readonly (number | bigint)[]>, extra = 0): Call<ReturnType<L['decode']>> {
    const bytes = new Uint8Array(layout.size + extra);
    layout.encode({ size: layout.size, ...value } as never, bytes);
    const rc = this.p.ioctl(this.fd, request, bytes);
    return { rc, out: layout.decode(bytes) as ReturnType<L['decode']> };
  }

  /** A raw ioctl on arbitrary bytes (cmd_length, cmd_ex_fail). */
  raw(request: number, bytes: Uint8Array): number {
    return this.p.ioctl(this.fd, request, bytes);
  }

  destroy(id: number): number {
    return this.call(U.IOMMU_DESTROY, U.iommu_destroy, { id }).rc;
  }

  ioasAlloc(): number {
    const r = this.call(U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, {});
    expect(r.rc).toBe(0);
    expect(r.out.out_ioas_id).not.toBe(0);
    return r.out.out_ioas_id;
  }

  map(ioas: number, va: bigint, length: bigint, opts: { iova?: bigint; flags?: number } = {}): Call<StructValue<never>> & { iova: bigint } {
    const fixed = opts.iova !== undefined;
    const r = this.call(U.IOMMU_IOAS_MAP, U.iommu_ioas_map, {
      ioas_id: ioas,
      flags: (opts.flags ?? RW) | (fixed ? U.IOMMU_IOAS_MAP_FIXED_IOVA : 0),
      user_va: va,
      length,
      iova: opts.iova ?? 0n,
    });
    return { ...r, iova: r.out.iova } as never;
  }

  mapFile(ioas: number, mfd: number, start: bigint, length: bigint, iova?: bigint): { rc: number; iova: bigint } {
    const r = this.call(U.IOMMU_IOAS_MAP_FILE, U.iommu_ioas_map_file, {
      ioas_id: ioas,
      flags: RW | (iova !== undefined ? U.IOMMU_IOAS_MAP_FIXED_IOVA : 0),
      fd: mfd,
      start,
      length,
      iova: iova ?? 0n,
    });
    return { rc: r.rc, iova: r.out.iova };
  }

  unmap(ioas: number, iova: bigint, length: bigint): { rc: number; length: bigint } {
    const r = this.call(U.IOMMU_IOAS_UNMAP, U.iommu_ioas_unmap, { ioas_id: ioas, iova, length });
    return { rc: r.rc, length: r.out.length };
  }

  copy(dst: number, src: number, srcIova: bigint, length: bigint, dstIova?: bigint, flags = U.IOMMU_IOAS_MAP_WRITEABLE): { rc: number; dstIova: bigint } {
    const r = this.call(U.IOMMU_IOAS_COPY, U.iommu_ioas_copy, {
      dst_ioas_id: dst,
      src_ioas_id: src,
      flags: flags | (dstIova !== undefined ? U.IOMMU_IOAS_MAP_FIXED_IOVA : 0),
      length,
      dst_iova: dstIova ?? 0n,
      src_iova: srcIova,
    });
    return { rc: r.rc, dstIova: r.out.dst_iova };
  }

  option(option_id: number, op: number, object_id: number, val64 = 0n): { rc: number; val64: bigint } {
    const r = this.call(U.IOMMU_OPTION, U.iommu_option, { option_id, op, object_id, val64 });
    return { rc: r.rc, val64: r.out.val64 };
  }

  /** IOAS_IOVA_RANGES with room for `slots` ranges at a process buffer. */
  iovaRanges(ioas: number, slots: number, fill = 0xff): { rc: number; num: number; alignment: bigint; ranges: { start: bigint; last: bigint }[]; raw: Uint8Array } {
    // Always room for two more slots than announced, so tests can see what was not written.
    const room = (slots + 2) * 16;
    const buf = this.alloc(BigInt(room));
    this.p.poke(buf, new Uint8Array(room).fill(fill));
    const r = this.call(U.IOMMU_IOAS_IOVA_RANGES, U.iommu_ioas_iova_ranges, { ioas_id: ioas, num_iovas: slots, allowed_iovas: buf });
    const raw = this.p.peek(buf, room) as Uint8Array;
    const ranges = [];
    for (let i = 0; i < Math.min(slots, r.out.num_iovas); i++) ranges.push(U.iommu_iova_range.decode(raw, i * 16));
    return { rc: r.rc, num: r.out.num_iovas, alignment: r.out.out_iova_alignment, ranges, raw };
  }

  allowIovas(ioas: number, ranges: readonly [bigint, bigint][]): number {
    const buf = this.alloc(BigInt(Math.max(ranges.length, 1)) * 16n);
    ranges.forEach(([start, last], i) => this.p.poke(buf + BigInt(i * 16), U.iommu_iova_range.encode({ start, last })));
    return this.call(U.IOMMU_IOAS_ALLOW_IOVAS, U.iommu_ioas_allow_iovas, { ioas_id: ioas, num_iovas: ranges.length, allowed_iovas: buf }).rc;
  }

  hwptAlloc(dev: number, pt: number, flags: number, data?: { type: number; bytes?: Uint8Array; uptr?: bigint; len?: number }, faultId = 0): { rc: number; id: number } {
    let uptr = 0n;
    let len = 0;
    if (data?.bytes) {
      uptr = this.put(data.bytes);
      len = data.bytes.length;
    }
    const r = this.call(U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, {
      dev_id: dev,
      pt_id: pt,
      flags,
      data_type: data?.type ?? U.IOMMU_HWPT_DATA_NONE,
      data_len: data?.len ?? len,
      data_uptr: data?.uptr ?? uptr,
      fault_id: faultId,
    });
    return { rc: r.rc, id: r.out.out_hwpt_id };
  }

  /** HWPT_INVALIDATE; `entry_num` comes back whatever the rc. */
  invalidate(hwpt: number, type: number, entries: Uint8Array | undefined, entryLen: number, num: number, uptr?: bigint): { rc: number; num: number } {
    const data = uptr ?? (entries ? this.put(entries) : 0n);
    const r = this.call(U.IOMMU_HWPT_INVALIDATE, U.iommu_hwpt_invalidate, {
      hwpt_id: hwpt,
      data_uptr: data,
      data_type: type,
      entry_len: entryLen,
      entry_num: num,
    });
    return { rc: r.rc, num: r.out.entry_num };
  }

  hwInfo(dev: number, dataLen: number, opts: { uptr?: bigint; flags?: number; inType?: number } = {}) {
    const buf = dataLen > 0 ? this.alloc(BigInt(dataLen)) : 0n;
    if (dataLen > 0) this.p.poke(buf, new Uint8Array(dataLen).fill(0xaa));
    const r = this.call(U.IOMMU_GET_HW_INFO, U.iommu_hw_info, {
      dev_id: dev,
      data_len: dataLen,
      data_uptr: opts.uptr ?? buf,
      flags: opts.flags ?? 0,
      in_data_type: opts.inType ?? 0,
    });
    const data = dataLen > 0 ? (this.p.peek(buf, dataLen) as Uint8Array) : new Uint8Array(0);
    return { rc: r.rc, out: r.out, data };
  }

  viommuAlloc(dev: number, hwpt: number, type: number, data?: Uint8Array): { rc: number; id: number; data?: Uint8Array } {
    const uptr = data ? this.put(data) : 0n;
    const r = this.call(U.IOMMU_VIOMMU_ALLOC, U.iommu_viommu_alloc, { dev_id: dev, hwpt_id: hwpt, type, data_uptr: uptr, data_len: data?.length ?? 0 });
    return { rc: r.rc, id: r.out.out_viommu_id, ...(data ? { data: this.p.peek(uptr, data.length) as Uint8Array } : {}) };
  }

  vdeviceAlloc(viommu: number, dev: number, virtId: bigint): { rc: number; id: number } {
    const r = this.call(U.IOMMU_VDEVICE_ALLOC, U.iommu_vdevice_alloc, { viommu_id: viommu, dev_id: dev, virt_id: virtId });
    return { rc: r.rc, id: r.out.out_vdevice_id };
  }

  veventqAlloc(viommu: number, type: number, depth = 2): { rc: number; id: number; fd: number } {
    const r = this.call(U.IOMMU_VEVENTQ_ALLOC, U.iommu_veventq_alloc, { viommu_id: viommu, type, veventq_depth: depth });
    return { rc: r.rc, id: r.out.out_veventq_id, fd: r.out.out_veventq_fd };
  }

  hwQueueAlloc(viommu: number, type: number, index: number, iova: bigint, length: bigint): { rc: number; id: number } {
    const r = this.call(U.IOMMU_HW_QUEUE_ALLOC, U.iommu_hw_queue_alloc, { viommu_id: viommu, type, index, nesting_parent_iova: iova, length });
    return { rc: r.rc, id: r.out.out_hw_queue_id };
  }

  faultAlloc(): { rc: number; id: number; fd: number } {
    const r = this.call(U.IOMMU_FAULT_QUEUE_ALLOC, U.iommu_fault_alloc, {});
    return { rc: r.rc, id: r.out.out_fault_id, fd: r.out.out_fault_fd };
  }

  setDirtyTracking(hwpt: number, enable: boolean): number {
    return this.call(U.IOMMU_HWPT_SET_DIRTY_TRACKING, U.iommu_hwpt_set_dirty_tracking, { hwpt_id: hwpt, flags: enable ? U.IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0 }).rc;
  }

  getDirtyBitmap(hwpt: number, iova: bigint, length: bigint, pageSize: bigint, bitmap: bigint, flags = 0): number {
    return this.call(U.IOMMU_HWPT_GET_DIRTY_BITMAP, U.iommu_hwpt_get_dirty_bitmap, { hwpt_id: hwpt, iova, length, page_size: pageSize, data: bitmap, flags }).rc;
  }

  // ---- IOMMU_TEST_CMD -----------------------------------------------------------------

  /** One IOMMU_TEST_CMD with `op`, `id` and a payload view. */
  test<L extends Layout>(op: number, id: number, layout: L, value: Record<string, number | bigint> = {}): Call<ReturnType<L['decode']>> {
    const bytes = new Uint8Array(U.iommu_test_cmd.size);
    layout.encode({ ...value, size: U.iommu_test_cmd.size, op, id } as never, bytes);
    const rc = this.p.ioctl(this.fd, U.IOMMU_TEST_CMD, bytes);
    return { rc, out: layout.decode(bytes) as ReturnType<L['decode']> };
  }

  /** MOCK_DOMAIN(_FLAGS): a mock device bound and attached to `pt`. */
  mockDomain(pt: number, devFlags = 0): { rc: number; stdev: number; hwpt: number; idev: number } {
    const r = this.test(devFlags ? U.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS : U.IOMMU_TEST_OP_MOCK_DOMAIN, pt, U.IOMMU_TEST_CMD_LAYOUTS.mock_domain_flags, { dev_flags: devFlags });
    return { rc: r.rc, stdev: r.out.out_stdev_id, hwpt: r.out.out_hwpt_id, idev: r.out.out_idev_id };
  }

  mockDomainOk(pt: number, devFlags = 0): { stdev: number; hwpt: number; idev: number } {
    const r = this.mockDomain(pt, devFlags);
    expect(r.rc).toBe(0);
    return r;
  }

  /** MOCK_DOMAIN_REPLACE: rc and the HWPT actually attached. */
  replace(stdev: number, pt: number): { rc: number; pt: number } {
    const r = this.test(U.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, U.IOMMU_TEST_CMD_LAYOUTS.mock_domain_replace, { pt_id: pt });
    return { rc: r.rc, pt: r.out.pt_id };
  }

  addReserved(ioas: number, start: bigint, length: bigint): number {
    return this.test(U.IOMMU_TEST_OP_ADD_RESERVED, ioas, U.IOMMU_TEST_CMD_LAYOUTS.add_reserved, { start, length }).rc;
  }

  checkMap(hwpt: number, iova: bigint, length: bigint, uptr: bigint): number {
    return this.test(U.IOMMU_TEST_OP_MD_CHECK_MAP, hwpt, U.IOMMU_TEST_CMD_LAYOUTS.check_map, { iova, length, uptr }).rc;
  }

  checkRefs(uptr: bigint, length: bigint, refs: number): number {
    return this.test(U.IOMMU_TEST_OP_MD_CHECK_REFS, 0, U.IOMMU_TEST_CMD_LAYOUTS.check_refs, { uptr, length, refs }).rc;
  }

  setTempMemoryLimit(limit: number): number {
    return this.test(U.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, U.IOMMU_TEST_CMD_LAYOUTS.memory_limit, { limit }).rc;
  }

  createAccess(ioas: number, flags = 0): { rc: number; fd: number } {
    const r = this.test(U.IOMMU_TEST_OP_CREATE_ACCESS, ioas, U.IOMMU_TEST_CMD_LAYOUTS.create_access, { flags });
    return { rc: r.rc, fd: r.out.out_access_fd };
  }

  accessPages(accessFd: number, iova: bigint, length: bigint, uptr: bigint, flags = 0): { rc: number; id: number } {
    const r = this.test(U.IOMMU_TEST_OP_ACCESS_PAGES, accessFd, U.IOMMU_TEST_CMD_LAYOUTS.access_pages, { iova, length, uptr, flags });
    return { rc: r.rc, id: r.out.out_access_pages_id };
  }

  destroyAccessPages(accessFd: number, id: number): number {
    return this.test(U.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, accessFd, U.IOMMU_TEST_CMD_LAYOUTS.destroy_access_pages, { access_pages_id: id }).rc;
  }

  accessRw(accessFd: number, iova: bigint, uptr: bigint, length: bigint, flags = 0): number {
    return this.test(U.IOMMU_TEST_OP_ACCESS_RW, accessFd, U.IOMMU_TEST_CMD_LAYOUTS.access_rw, { iova, length, uptr, flags }).rc;
  }

  accessReplaceIoas(accessFd: number, ioas: number): number {
    return this.test(U.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, accessFd, U.IOMMU_TEST_CMD_LAYOUTS.access_replace_ioas, { ioas_id: ioas }).rc;
  }

  checkIotlb(hwpt: number, slot: number, value: number): number {
    return this.test(U.IOMMU_TEST_OP_MD_CHECK_IOTLB, hwpt, U.IOMMU_TEST_CMD_LAYOUTS.check_iotlb, { 'check_iotlb.id': slot, iotlb: value }).rc;
  }

  checkDevCache(idev: number, slot: number, value: number): number {
    return this.test(U.IOMMU_TEST_OP_DEV_CHECK_CACHE, idev, U.IOMMU_TEST_CMD_LAYOUTS.check_dev_cache, { 'check_dev_cache.id': slot, cache: value }).rc;
  }

  /** All four slots of a nested HWPT's mock IOTLB equal `values[i]`. */
  expectIotlb(hwpt: number, values: readonly number[]): void {
    expect(values.map((v, i) => this.checkIotlb(hwpt, i, v))).toEqual([0, 0, 0, 0]);
  }

  expectDevCache(idev: number, values: readonly number[]): void {
    expect(values.map((v, i) => this.checkDevCache(idev, i, v))).toEqual([0, 0, 0, 0]);
  }

  triggerVevent(idev: number): number {
    return this.test(U.IOMMU_TEST_OP_TRIGGER_VEVENT, 0, U.IOMMU_TEST_CMD_LAYOUTS.trigger_vevent, { dev_id: idev }).rc;
  }

  /** TRIGGER_IOPF, then read one fault record and answer it with SUCCESS (as the kernel helper). */
  triggerIopf(idev: number, faultFd: number, pasid = 0x1): { trigger: number; read: number; write: number; fault: ReturnType<typeof U.iommu_hwpt_pgfault.decode> } {
    const trigger = this.test(U.IOMMU_TEST_OP_TRIGGER_IOPF, 0, U.IOMMU_TEST_CMD_LAYOUTS.trigger_iopf, {
      dev_id: idev,
      pasid,
      grpid: 0x2,
      perm: U.IOMMU_PGFAULT_PERM_READ | U.IOMMU_PGFAULT_PERM_WRITE,
      addr: 0xdeadbeafn,
    }).rc;
    const buf = new Uint8Array(U.iommu_hwpt_pgfault.size);
    const read = this.p.read(faultFd, buf);
    const fault = U.iommu_hwpt_pgfault.decode(buf);
    const write = this.p.write(faultFd, U.iommu_hwpt_page_response.encode({ cookie: fault.cookie, code: 0 }));
    return { trigger, read, write, fault };
  }

  pasid(op: number, stdev: number, pasid: number, pt = 0): { rc: number; pt: number } {
    const r = this.test(op, stdev, U.IOMMU_TEST_CMD_LAYOUTS.pasid_attach, { pasid, pt_id: pt });
    return { rc: r.rc, pt: r.out.pt_id };
  }

  /** PASID_CHECK_HWPT: 0 when `pasid` of `stdev` is attached to `hwpt` (0 = nothing). */
  pasidCheck(stdev: number, pasid: number, hwpt: number): number {
    return this.pasid(U.IOMMU_TEST_OP_PASID_CHECK_HWPT, stdev, pasid, hwpt).rc;
  }

  // ---- process memory -----------------------------------------------------------------

  /** Anonymous read/write memory of `length` bytes. */
  alloc(length: bigint, flags = MAP_PRIVATE | MAP_ANONYMOUS): bigint {
    const va = this.p.mmap(length, PROT_RW, flags);
    expect(va > 0n).toBe(true);
    return va;
  }

  /** Places bytes in fresh process memory and returns their VA. */
  put(bytes: Uint8Array): bigint {
    const va = this.alloc(BigInt(Math.max(bytes.length, 1)));
    this.p.poke(va, bytes);
    return va;
  }

  close(): number {
    return this.p.close(this.fd);
  }
}

/** A fresh mock host with /dev/iommu open. */
export async function openIommufd(devices = 0): Promise<Iommufd> {
  const host = await createHost({ platform: 'mock', devices });
  const fd = host.process.open('/dev/iommu');
  expect(fd).toBeGreaterThan(0);
  return new Iommufd(host, fd);
}

/**
 * The kernel fixtures' common teardown: closing the iommufd must destroy every object and
 * unpin every page; re-opening and checking the buffer's pin counts finds 0.
 */
export function teardown(t: Iommufd, buffer?: bigint, length = BUFFER_SIZE): void {
  for (const { fd, kind } of t.p.fds()) if (kind !== '[iommufd]' && kind !== '[memfd]') t.p.close(fd);
  expect(t.close()).toBe(0);
  expect(t.host.pinnedPages).toBe(0);
  if (buffer !== undefined) {
    const again = new Iommufd(t.host, t.p.open('/dev/iommu'));
    expect(again.checkRefs(buffer, length, 0)).toBe(0);
    expect(again.close()).toBe(0);
  }
}

/** The selftests' global `buffer`: BUFFER_SIZE of shared anonymous memory, huge-page aligned. */
export function makeBuffer(t: Iommufd, size = BUFFER_SIZE): bigint {
  const va = t.p.mmap(size < HUGEPAGE ? HUGEPAGE : size, PROT_RW, MAP_SHARED | MAP_ANONYMOUS);
  expect(va % HUGEPAGE).toBe(0n);
  // Pre-fault with a pattern so copies and reads have something to compare.
  const pattern = new Uint8Array(Number(size));
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + 3) & 0xff;
  t.p.poke(va, pattern);
  return va;
}

export { U };

// ---- fixtures ---------------------------------------------------------------------------

/** The process-global memory of the kernel test binary: `buffer` and the memfd `mfd`. */
export interface Globals {
  buffer: bigint;
  mfd: number;
  mfdBuffer: bigint;
}

export function makeGlobals(t: Iommufd, size = BUFFER_SIZE): Globals {
  const buffer = makeBuffer(t, size);
  const mfd = t.p.memfdCreate('mfd', size);
  const mfdBuffer = t.p.mmap(size, PROT_RW, MAP_SHARED, mfd);
  expect(mfdBuffer > 0n).toBe(true);
  return { buffer, mfd, mfdBuffer };
}

/** FIXTURE_VARIANT(iommufd_ioas). */
export interface IoasVariant {
  readonly name: string;
  readonly mockDomains: number;
  readonly memoryLimit?: number;
  readonly pasidCapable?: boolean;
}

export const IOAS_VARIANTS: readonly IoasVariant[] = [
  { name: 'no_domain', mockDomains: 0 },
  { name: 'mock_domain', mockDomains: 1, pasidCapable: true },
  { name: 'two_mock_domain', mockDomains: 2 },
  { name: 'mock_domain_limit', mockDomains: 1, memoryLimit: 16 },
];

/** FIXTURE(iommufd_ioas). IDs are 0 when the variant has no device, as in the C fixture. */
export interface IoasFixture extends Globals {
  t: Iommufd;
  ioas: number;
  stdev: number;
  hwpt: number;
  device: number;
  baseIova: bigint;
  devicePasid: number;
}

export async function ioasFixture(v: IoasVariant): Promise<IoasFixture> {
  const t = await openIommufd();
  const g = makeGlobals(t);
  const ioas = t.ioasAlloc();
  expect(t.setTempMemoryLimit(v.memoryLimit ?? 65536)).toBe(0);
  let stdev = 0;
  let hwpt = 0;
  let device = 0;
  let baseIova = 0n;
  for (let i = 0; i < v.mockDomains; i++) {
    ({ stdev, hwpt, idev: device } = t.mockDomainOk(ioas));
    t.expectDevCache(device, [U.IOMMU_TEST_DEV_CACHE_DEFAULT, U.IOMMU_TEST_DEV_CACHE_DEFAULT, U.IOMMU_TEST_DEV_CACHE_DEFAULT, U.IOMMU_TEST_DEV_CACHE_DEFAULT]);
    baseIova = AP;
  }
  const devicePasid = v.pasidCapable ? t.mockDomainOk(ioas, U.MOCK_FLAGS_DEVICE_PASID).idev : 0;
  return { t, ...g, ioas, stdev, hwpt, device, baseIova, devicePasid };
}

export function ioasTeardown(f: IoasFixture): void {
  expect(f.t.setTempMemoryLimit(65536)).toBe(0);
  teardown(f.t, f.buffer);
}

/** `1 << (ffs(length) - 1)`: the lowest set bit. */
export const lowestBit = (n: bigint): bigint => n & -n;

/** A tiny deterministic PRNG for the tests' `rand()`. */
export function prng(seed = 1): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s >>> 16;
  };
}

/** FIXTURE_VARIANT(iommufd_mock_domain). */
export interface MockDomainVariant {
  readonly name: string;
  readonly mockDomains: number;
  readonly hugepages: boolean;
  readonly file: boolean;
}

export const MOCK_DOMAIN_VARIANTS: readonly MockDomainVariant[] = [
  { name: 'one_domain', mockDomains: 1, hugepages: false, file: false },
  { name: 'two_domains', mockDomains: 2, hugepages: false, file: false },
  { name: 'one_domain_hugepage', mockDomains: 1, hugepages: true, file: false },
  { name: 'two_domains_hugepage', mockDomains: 2, hugepages: true, file: false },
  { name: 'one_domain_file', mockDomains: 1, hugepages: false, file: true },
  { name: 'one_domain_file_hugepage', mockDomains: 1, hugepages: true, file: true },
];

/** FIXTURE(iommufd_mock_domain). */
export interface MockDomainFixture extends Globals {
  t: Iommufd;
  ioas: number;
  hwptIds: number[];
  stdevIds: number[];
  idevIds: number[];
  mmapFlags: number;
  mmapBufSize: bigint;
}

/** Not in uapi's mman subset: `MAP_HUGETLB`. */
export const MAP_HUGETLB = 0x40000;

export async function mockDomainFixture(v: MockDomainVariant): Promise<MockDomainFixture> {
  const t = await openIommufd();
  const g = makeGlobals(t);
  const ioas = t.ioasAlloc();
  const hwptIds = [0, 0];
  const stdevIds = [0, 0];
  const idevIds = [0, 0];
  for (let i = 0; i < v.mockDomains; i++) {
    const r = t.mockDomainOk(ioas);
    [stdevIds[i], hwptIds[i], idevIds[i]] = [r.stdev, r.hwpt, r.idev];
    t.expectDevCache(idevIds[0], Array(4).fill(U.IOMMU_TEST_DEV_CACHE_DEFAULT));
  }
  return {
    t,
    ...g,
    ioas,
    hwptIds,
    stdevIds,
    idevIds,
    mmapFlags: MAP_SHARED | MAP_ANONYMOUS | (v.hugepages ? MAP_HUGETLB | MAP_POPULATE : 0),
    mmapBufSize: v.hugepages ? HUGEPAGE * 2n : PAGE * 8n,
  };
}

/** check_mock_iova: the user pages at `va` are what the fixture's HWPT(s) map at `iova`. */
export function checkMockIova(f: MockDomainFixture, va: bigint, iova: bigint, length: bigint): void {
  expect(f.t.checkMap(f.hwptIds[0], iova, length, va)).toBe(0);
  if (f.hwptIds[1]) expect(f.t.checkMap(f.hwptIds[1], iova, length, va)).toBe(0);
}

/** FIXTURE(iommufd_viommu): ids are 0 for the no_viommu variant. */
export interface ViommuFixture extends Globals {
  t: Iommufd;
  ioas: number;
  stdev: number;
  hwpt: number;
  nestedHwpt: number;
  device: number;
  viommu: number;
}

export const VIOMMU_VARIANTS = [
  { name: 'no_viommu', viommu: false },
  { name: 'mock_viommu', viommu: true },
] as const;

export async function viommuFixture(v: { viommu: boolean }): Promise<ViommuFixture> {
  const t = await openIommufd();
  const g = makeGlobals(t);
  const ioas = t.ioasAlloc();
  expect(t.setTempMemoryLimit(65536)).toBe(0);
  const f: ViommuFixture = { t, ...g, ioas, stdev: 0, hwpt: 0, nestedHwpt: 0, device: 0, viommu: 0 };
  if (v.viommu) {
    const d = t.mockDomainOk(ioas);
    f.stdev = d.stdev;
    f.device = d.idev;
    const parent = t.hwptAlloc(f.device, ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT);
    expect(parent.rc).toBe(0);
    f.hwpt = parent.id;
    const vi = t.viommuAlloc(f.device, f.hwpt, U.IOMMU_VIOMMU_TYPE_SELFTEST);
    expect(vi.rc).toBe(0);
    f.viommu = vi.id;
    const nested = t.hwptAlloc(f.device, f.viommu, 0, { type: U.IOMMU_HWPT_DATA_SELFTEST, bytes: U.iommu_hwpt_selftest.encode({ iotlb: U.IOMMU_TEST_IOTLB_DEFAULT }) });
    expect(nested.rc).toBe(0);
    f.nestedHwpt = nested.id;
  }
  return f;
}

/**
 * test_cmd_read_vevents in our words: read `n` selftest vEVENTs (header + u32 virt_id), check
 * every record (the C helper only looks at the first payload). Returns 0, or the errno the C
 * helper reports: EOVERFLOW for a LOST_EVENTS header or a sequence gap, EINVAL for a wrong
 * virt_id, EFAULT when nothing could be read.
 */
export function readVevents(t: Iommufd, fd: number, n: number, virtId: number, seq: { prev: number }): number {
  const rec = U.iommufd_vevent_header.size + U.iommu_viommu_event_selftest.size;
  if ((t.p.poll(fd) & 0x001) === 0) return U.EFAULT;
  const buf = new Uint8Array(n * rec);
  const got = t.p.read(fd, buf);
  if (got <= 0) return U.EFAULT;
  let at = 0;
  let result = 0;
  while (at + U.iommufd_vevent_header.size <= got) {
    const h = U.iommufd_vevent_header.decode(buf, at);
    at += U.iommufd_vevent_header.size;
    if (h.flags & U.IOMMU_VEVENTQ_FLAG_LOST_EVENTS || h.sequence - seq.prev > 1) result ||= U.EOVERFLOW;
    seq.prev = h.sequence;
    if (h.flags & U.IOMMU_VEVENTQ_FLAG_LOST_EVENTS) continue;
    if (U.iommu_viommu_event_selftest.get(buf, 'virt_id', at) !== virtId) result ||= U.EINVAL;
    at += U.iommu_viommu_event_selftest.size;
  }
  return result;
}
