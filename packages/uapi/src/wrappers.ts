/**
 * Typed wrappers for every iommufd ioctl, the VFIO cdev bind/attach/detach, the VFIO type1
 * container ioctls and IOMMU_TEST_CMD — what `iommufd_utils.h` or rust-vmm's iommufd crate
 * are to C/Rust users. Each wrapper encodes its struct from the declared layout, passes it
 * to `process.ioctl` (copied in and back as the kernel does), places pointed-to data in
 * scratch user memory, and either returns the outputs or throws {@link IommufdError}.
 */
import { EMSGSIZE } from './errno.js';
import { IOMMUFD_IOCTLS } from './dispatch.js';
import * as I from './iommufd.js';
import type { FieldSpec, LayoutValue, StructLayout, StructValue } from './layout.js';
import { IommufdError, peekUser, withScratch, type UserProcess, type UserScratch } from './process.js';
import { IOMMU_TEST_CMD, IOMMU_TEST_CMD_LAYOUTS, IOMMU_TEST_OP_MEMBER, type IommuTestCmdMember } from './selftest.js';
import * as V from './vfio.js';

const REQUEST_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  ...IOMMUFD_IOCTLS.map((e): [number, string] => [e.request, e.name]),
  [IOMMU_TEST_CMD, 'IOMMU_TEST_CMD'],
  [V.VFIO_GET_API_VERSION, 'VFIO_GET_API_VERSION'],
  [V.VFIO_CHECK_EXTENSION, 'VFIO_CHECK_EXTENSION'],
  [V.VFIO_SET_IOMMU, 'VFIO_SET_IOMMU'],
  [V.VFIO_IOMMU_GET_INFO, 'VFIO_IOMMU_GET_INFO'],
  [V.VFIO_IOMMU_MAP_DMA, 'VFIO_IOMMU_MAP_DMA'],
  [V.VFIO_IOMMU_UNMAP_DMA, 'VFIO_IOMMU_UNMAP_DMA'],
  [V.VFIO_DEVICE_BIND_IOMMUFD, 'VFIO_DEVICE_BIND_IOMMUFD'],
  [V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
  [V.VFIO_DEVICE_DETACH_IOMMUFD_PT, 'VFIO_DEVICE_DETACH_IOMMUFD_PT'],
]);

/** The C name of a request value known to this package (`0x3b85` → `'IOMMU_IOAS_MAP'`), else its hex value. */
export function ioctlName(request: number): string {
  return REQUEST_NAMES.get(request >>> 0) ?? `ioctl 0x${(request >>> 0).toString(16)}`;
}

/** The outcome of an ioctl whose struct must be read even on failure. */
interface RawResult<F extends readonly FieldSpec[]> {
  readonly rc: number;
  readonly out: StructValue<F>;
}

// The struct's own size goes in its first field (`size` for iommufd, `argsz` for VFIO).
function issue<F extends readonly FieldSpec[]>(
  p: UserProcess,
  fd: number,
  request: number,
  layout: StructLayout<F>,
  value: Partial<StructValue<F>>,
): RawResult<F> {
  const sizeField = layout.fieldList[0].name;
  const bytes = layout.encode({ ...value, [sizeField]: layout.size } as Partial<StructValue<F>>);
  const rc = p.ioctl(fd, request, bytes);
  return { rc, out: layout.decode(bytes) };
}

function call<F extends readonly FieldSpec[]>(
  p: UserProcess,
  fd: number,
  request: number,
  layout: StructLayout<F>,
  value: Partial<StructValue<F>>,
): StructValue<F> {
  const { rc, out } = issue(p, fd, request, layout, value);
  if (rc < 0) throw new IommufdError(ioctlName(request), -rc);
  return out;
}

function checked(rc: number, request: number): number {
  if (rc < 0) throw new IommufdError(ioctlName(request), -rc);
  return rc;
}

// ---------------------------------------------------------------------------------------
// Objects and IOAS

/** An inclusive IOVA interval, as `struct iommu_iova_range`. */
export interface IovaRange {
  /** First IOVA. */
  readonly start: bigint;
  /** Last IOVA (inclusive). */
  readonly last: bigint;
}

/** IOMMU_DESTROY: destroys object `id`. */
export function destroy(p: UserProcess, fd: number, id: number): void {
  call(p, fd, I.IOMMU_DESTROY, I.iommu_destroy, { id });
}

/** IOMMU_IOAS_ALLOC: a new IOAS; returns its id. */
export function ioasAlloc(p: UserProcess, fd: number): number {
  return call(p, fd, I.IOMMU_IOAS_ALLOC, I.iommu_ioas_alloc, {}).out_ioas_id;
}

function placeRanges(scratch: UserScratch, ranges: readonly IovaRange[]): bigint {
  const bytes = new Uint8Array(ranges.length * I.iommu_iova_range.size);
  ranges.forEach((r, i) => I.iommu_iova_range.encode(r, bytes, i * I.iommu_iova_range.size));
  return scratch.place(bytes);
}

function readRanges(p: UserProcess, va: bigint, count: number): IovaRange[] {
  if (count === 0) return [];
  const bytes = peekUser(p, va, count * I.iommu_iova_range.size);
  return Array.from({ length: count }, (_, i) => {
    const { start, last } = I.iommu_iova_range.decode(bytes, i * I.iommu_iova_range.size);
    return { start, last };
  });
}

/** IOMMU_IOAS_ALLOW_IOVAS: replaces the IOAS's allowed ranges (an empty list clears them). */
export function ioasAllowIovas(p: UserProcess, fd: number, ioasId: number, ranges: readonly IovaRange[]): void {
  withScratch(p, (scratch) => {
    call(p, fd, I.IOMMU_IOAS_ALLOW_IOVAS, I.iommu_ioas_allow_iovas, {
      ioas_id: ioasId,
      num_iovas: ranges.length,
      allowed_iovas: ranges.length ? placeRanges(scratch, ranges) : 0n,
    });
  });
}

/** What {@link ioasIovaRanges} returns. */
export interface IovaRanges {
  /** The usable IOVA ranges. */
  readonly ranges: IovaRange[];
  /** `out_iova_alignment`: every map's IOVA and length must be a multiple of it. */
  readonly alignment: bigint;
}

/**
 * IOMMU_IOAS_IOVA_RANGES: the usable IOVA ranges of an IOAS. When the kernel reports
 * EMSGSIZE (more ranges than room) it asks again with the count the kernel returned.
 */
export function ioasIovaRanges(p: UserProcess, fd: number, ioasId: number, capacity = 8): IovaRanges {
  let room = capacity;
  for (;;) {
    const result = withScratch(p, (scratch) => {
      const va = room ? scratch.reserve(room * I.iommu_iova_range.size) : 0n;
      const { rc, out } = issue(p, fd, I.IOMMU_IOAS_IOVA_RANGES, I.iommu_ioas_iova_ranges, {
        ioas_id: ioasId,
        num_iovas: room,
        allowed_iovas: va,
      });
      if (rc === -EMSGSIZE && out.num_iovas > room) return out.num_iovas;
      checked(rc, I.IOMMU_IOAS_IOVA_RANGES);
      return { ranges: readRanges(p, va, out.num_iovas), alignment: out.out_iova_alignment };
    });
    if (typeof result !== 'number') return result;
    room = result;
  }
}

/** Arguments of {@link ioasMap}. */
export interface IoasMapArgs {
  /** The IOAS to map into. */
  readonly ioasId: number;
  /** Process VA of the memory to map. */
  readonly userVa: bigint;
  /** Bytes to map. */
  readonly length: bigint;
  /** A fixed IOVA (adds IOMMU_IOAS_MAP_FIXED_IOVA); omitted = the kernel picks one. */
  readonly iova?: bigint;
  /** IOMMU_IOAS_MAP_* flags; default READABLE | WRITEABLE. */
  readonly flags?: number;
}

const DEFAULT_MAP_FLAGS = I.IOMMU_IOAS_MAP_READABLE | I.IOMMU_IOAS_MAP_WRITEABLE;

function mapFlags(flags: number | undefined, iova: bigint | undefined): number {
  return (flags ?? DEFAULT_MAP_FLAGS) | (iova === undefined ? 0 : I.IOMMU_IOAS_MAP_FIXED_IOVA);
}

/** IOMMU_IOAS_MAP: maps process memory; returns the IOVA. */
export function ioasMap(p: UserProcess, fd: number, args: IoasMapArgs): bigint {
  return call(p, fd, I.IOMMU_IOAS_MAP, I.iommu_ioas_map, {
    flags: mapFlags(args.flags, args.iova),
    ioas_id: args.ioasId,
    user_va: args.userVa,
    length: args.length,
    iova: args.iova ?? 0n,
  }).iova;
}

/** Arguments of {@link ioasMapFile}. */
export interface IoasMapFileArgs {
  /** The IOAS to map into. */
  readonly ioasId: number;
  /** The memfd to map. */
  readonly memFd: number;
  /** Byte offset in the file. */
  readonly start: bigint;
  /** Bytes to map. */
  readonly length: bigint;
  /** A fixed IOVA (adds FIXED_IOVA); omitted = the kernel picks one. */
  readonly iova?: bigint;
  /** IOMMU_IOAS_MAP_* flags; default READABLE | WRITEABLE. */
  readonly flags?: number;
}

/** IOMMU_IOAS_MAP_FILE: maps part of a memfd; returns the IOVA. */
export function ioasMapFile(p: UserProcess, fd: number, args: IoasMapFileArgs): bigint {
  return call(p, fd, I.IOMMU_IOAS_MAP_FILE, I.iommu_ioas_map_file, {
    flags: mapFlags(args.flags, args.iova),
    ioas_id: args.ioasId,
    fd: args.memFd,
    start: args.start,
    length: args.length,
    iova: args.iova ?? 0n,
  }).iova;
}

/** Arguments of {@link ioasCopy}. */
export interface IoasCopyArgs {
  /** Destination IOAS. */
  readonly dstIoasId: number;
  /** Source IOAS. */
  readonly srcIoasId: number;
  /** First source IOVA. */
  readonly srcIova: bigint;
  /** Bytes to copy. */
  readonly length: bigint;
  /** A fixed destination IOVA (adds FIXED_IOVA); omitted = the kernel picks one. */
  readonly dstIova?: bigint;
  /** IOMMU_IOAS_MAP_* flags; default READABLE | WRITEABLE. */
  readonly flags?: number;
}

/** IOMMU_IOAS_COPY: maps the pages behind a source range into another IOAS; returns the destination IOVA. */
export function ioasCopy(p: UserProcess, fd: number, args: IoasCopyArgs): bigint {
  return call(p, fd, I.IOMMU_IOAS_COPY, I.iommu_ioas_copy, {
    flags: mapFlags(args.flags, args.dstIova),
    dst_ioas_id: args.dstIoasId,
    src_ioas_id: args.srcIoasId,
    length: args.length,
    dst_iova: args.dstIova ?? 0n,
    src_iova: args.srcIova,
  }).dst_iova;
}

/** IOMMU_IOAS_UNMAP: unmaps whole mappings inside [iova, iova+length); returns the bytes unmapped. */
export function ioasUnmap(p: UserProcess, fd: number, args: { ioasId: number; iova: bigint; length: bigint }): bigint {
  return call(p, fd, I.IOMMU_IOAS_UNMAP, I.iommu_ioas_unmap, { ioas_id: args.ioasId, iova: args.iova, length: args.length })
    .length;
}

/** IOMMU_IOAS_UNMAP of everything (iova 0, length U64_MAX); returns the bytes unmapped. */
export function ioasUnmapAll(p: UserProcess, fd: number, ioasId: number): bigint {
  return ioasUnmap(p, fd, { ioasId, iova: 0n, length: 0xffff_ffff_ffff_ffffn });
}

/** IOMMU_IOAS_CHANGE_PROCESS: moves the pinned-page accounting of every (file) mapping to the calling process. */
export function ioasChangeProcess(p: UserProcess, fd: number): void {
  call(p, fd, I.IOMMU_IOAS_CHANGE_PROCESS, I.iommu_ioas_change_process, {});
}

/** IOMMU_OPTION get: the value of `optionId` (IOMMU_OPTION_RLIMIT_MODE with object 0, HUGE_PAGES with an IOAS id). */
export function optionGet(p: UserProcess, fd: number, optionId: number, objectId = 0): bigint {
  return call(p, fd, I.IOMMU_OPTION, I.iommu_option, { option_id: optionId, op: I.IOMMU_OPTION_OP_GET, object_id: objectId })
    .val64;
}

/** IOMMU_OPTION set. */
export function optionSet(p: UserProcess, fd: number, optionId: number, value: bigint, objectId = 0): void {
  call(p, fd, I.IOMMU_OPTION, I.iommu_option, {
    option_id: optionId,
    op: I.IOMMU_OPTION_OP_SET,
    object_id: objectId,
    val64: value,
  });
}

/** IOMMU_VFIO_IOAS: GET returns the compat IOAS id; SET makes `ioasId` the compat IOAS; CLEAR unsets it. Returns `ioas_id` after the call. */
export function vfioIoas(p: UserProcess, fd: number, op: number, ioasId = 0): number {
  return call(p, fd, I.IOMMU_VFIO_IOAS, I.iommu_vfio_ioas, { ioas_id: ioasId, op }).ioas_id;
}

// ---------------------------------------------------------------------------------------
// HWPT, hw info, dirty tracking, invalidation

/** Driver-specific data of an allocation (`data_type` + bytes placed behind `data_uptr`). */
export interface DriverData {
  /** `IOMMU_HWPT_DATA_*` (HWPT_ALLOC) or the vIOMMU type's layout. */
  readonly type: number;
  /** The encoded driver struct, e.g. `iommu_hwpt_arm_smmuv3.encode({ ste })`. */
  readonly bytes: Uint8Array;
}

/** Arguments of {@link hwptAlloc}. */
export interface HwptAllocArgs {
  /** The DEVICE the HWPT is for. */
  readonly devId: number;
  /** IOAS (paging), HWPT_PAGING nest parent or vIOMMU (nested). */
  readonly ptId: number;
  /** IOMMU_HWPT_ALLOC_* flags (FAULT_ID_VALID is added when faultId is given). */
  readonly flags?: number;
  /** Driver data for a nested HWPT. */
  readonly data?: DriverData;
  /** A FAULT object receiving the HWPT's page faults. */
  readonly faultId?: number;
}

/** IOMMU_HWPT_ALLOC: returns the new HWPT id. */
export function hwptAlloc(p: UserProcess, fd: number, args: HwptAllocArgs): number {
  return withScratch(p, (scratch) => {
    const data = args.data;
    return call(p, fd, I.IOMMU_HWPT_ALLOC, I.iommu_hwpt_alloc, {
      flags: (args.flags ?? 0) | (args.faultId === undefined ? 0 : I.IOMMU_HWPT_FAULT_ID_VALID),
      dev_id: args.devId,
      pt_id: args.ptId,
      data_type: data?.type ?? I.IOMMU_HWPT_DATA_NONE,
      data_len: data?.bytes.length ?? 0,
      data_uptr: data ? scratch.place(data.bytes) : 0n,
      fault_id: args.faultId ?? 0,
    }).out_hwpt_id;
  });
}

/** What {@link getHwInfo} returns. */
export interface HwInfo {
  /** `out_data_type` (IOMMU_HW_INFO_TYPE_*). */
  readonly type: number;
  /** The driver payload, `min(kernel length, buffer length)` bytes (decode with e.g. `iommu_hw_info_arm_smmuv3`). */
  readonly data: Uint8Array;
  /** The kernel's full payload length (may exceed `data.length`). */
  readonly dataLen: number;
  /** `out_max_pasid_log2` (0 = no PASID). */
  readonly maxPasidLog2: number;
  /** `out_capabilities` (IOMMU_HW_CAP_*). */
  readonly capabilities: bigint;
}

/** IOMMU_GET_HW_INFO for a bound device; `type` requests a specific info type (sets IOMMU_HW_INFO_FLAG_INPUT_TYPE). */
export function getHwInfo(p: UserProcess, fd: number, args: { devId: number; type?: number; bufferLength?: number }): HwInfo {
  const room = args.bufferLength ?? 256;
  return withScratch(p, (scratch) => {
    const va = scratch.reserve(room);
    const out = call(p, fd, I.IOMMU_GET_HW_INFO, I.iommu_hw_info, {
      flags: args.type === undefined ? 0 : I.IOMMU_HW_INFO_FLAG_INPUT_TYPE,
      dev_id: args.devId,
      data_len: room,
      data_uptr: room ? va : 0n,
      in_data_type: args.type ?? 0,
    });
    const copied = Math.min(out.data_len, room);
    return {
      type: out.out_data_type,
      data: copied ? peekUser(p, va, copied) : new Uint8Array(0),
      dataLen: out.data_len,
      maxPasidLog2: out.out_max_pasid_log2,
      capabilities: out.out_capabilities,
    };
  });
}

/** IOMMU_HWPT_SET_DIRTY_TRACKING: turns dirty tracking of a paging HWPT on or off. */
export function hwptSetDirtyTracking(p: UserProcess, fd: number, hwptId: number, enable: boolean): void {
  call(p, fd, I.IOMMU_HWPT_SET_DIRTY_TRACKING, I.iommu_hwpt_set_dirty_tracking, {
    flags: enable ? I.IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0,
    hwpt_id: hwptId,
  });
}

/** Arguments of {@link hwptGetDirtyBitmap}. */
export interface DirtyBitmapArgs {
  /** The paging HWPT. */
  readonly hwptId: number;
  /** First IOVA. */
  readonly iova: bigint;
  /** Bytes covered. */
  readonly length: bigint;
  /** Bytes per bit. */
  readonly pageSize: bigint;
  /** IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR to keep the dirty bits. */
  readonly flags?: number;
}

/**
 * IOMMU_HWPT_GET_DIRTY_BITMAP: the dirty bitmap as bytes (bit n, LSB first within u64
 * words, is the page at iova + n·pageSize), sized to whole u64 words.
 */
export function hwptGetDirtyBitmap(p: UserProcess, fd: number, args: DirtyBitmapArgs): Uint8Array {
  const pages = args.pageSize > 0n ? (args.length + args.pageSize - 1n) / args.pageSize : 0n;
  const bytes = Number((pages + 63n) / 64n) * 8;
  return withScratch(p, (scratch) => {
    const va = scratch.reserve(bytes);
    call(p, fd, I.IOMMU_HWPT_GET_DIRTY_BITMAP, I.iommu_hwpt_get_dirty_bitmap, {
      hwpt_id: args.hwptId,
      flags: args.flags ?? 0,
      iova: args.iova,
      length: args.length,
      page_size: args.pageSize,
      data: va,
    });
    return bytes ? peekUser(p, va, bytes) : new Uint8Array(0);
  });
}

/** Arguments of {@link hwptInvalidate}. */
export interface InvalidateArgs {
  /** A nested HWPT or a vIOMMU. */
  readonly hwptId: number;
  /** IOMMU_HWPT_INVALIDATE_DATA_* / IOMMU_VIOMMU_INVALIDATE_DATA_*. */
  readonly dataType: number;
  /** Bytes per entry (e.g. `iommu_viommu_arm_smmuv3_invalidate.size`). */
  readonly entryLen: number;
  /** The entries, each `entryLen` bytes (an empty list probes whether `dataType` is supported). */
  readonly entries: readonly Uint8Array[];
}

/**
 * IOMMU_HWPT_INVALIDATE: returns how many entries the kernel handled. On failure the thrown
 * {@link IommufdError} carries that count as `entryNum` (the kernel writes it back always).
 */
export function hwptInvalidate(p: UserProcess, fd: number, args: InvalidateArgs): { entryNum: number } {
  return withScratch(p, (scratch) => {
    const array = new Uint8Array(args.entries.length * args.entryLen);
    args.entries.forEach((e, i) => array.set(e.subarray(0, args.entryLen), i * args.entryLen));
    const { rc, out } = issue(p, fd, I.IOMMU_HWPT_INVALIDATE, I.iommu_hwpt_invalidate, {
      hwpt_id: args.hwptId,
      data_uptr: args.entries.length ? scratch.place(array) : 0n,
      data_type: args.dataType,
      entry_len: args.entryLen,
      entry_num: args.entries.length,
    });
    if (rc < 0) throw new IommufdError('IOMMU_HWPT_INVALIDATE', -rc, { entryNum: out.entry_num });
    return { entryNum: out.entry_num };
  });
}

// ---------------------------------------------------------------------------------------
// FAULT, vIOMMU, vDEVICE, vEVENTQ, HW_QUEUE

/** An object that comes with its own file descriptor (FAULT, vEVENTQ). */
export interface ObjectWithFd {
  /** The object id (for IOMMU_DESTROY, fault_id …). */
  readonly id: number;
  /** The fd to read/write/poll; close it before destroying the object. */
  readonly fd: number;
}

/** IOMMU_FAULT_QUEUE_ALLOC: a FAULT object and its fd. */
export function faultQueueAlloc(p: UserProcess, fd: number): ObjectWithFd {
  const out = call(p, fd, I.IOMMU_FAULT_QUEUE_ALLOC, I.iommu_fault_alloc, {});
  return { id: out.out_fault_id, fd: out.out_fault_fd };
}

/** Arguments of {@link viommuAlloc}. */
export interface ViommuAllocArgs {
  /** The DEVICE whose physical IOMMU backs the vIOMMU. */
  readonly devId: number;
  /** The nesting-parent HWPT_PAGING. */
  readonly hwptId: number;
  /**
   * IOMMU_VIOMMU_TYPE_* (Linux: 1 ARM_SMMUV3, 2 TEGRA241_CMDQV), or a driver's type outside
   * Linux's enum such as 0x8086, `IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP` of `@iommufd/intel-vtd`.
   */
  readonly type: number;
  /** Driver data (e.g. `iommu_viommu_tegra241_cmdqv`), which the kernel may write back. */
  readonly data?: Uint8Array;
}

/** IOMMU_VIOMMU_ALLOC: returns the id and the driver data as the kernel left it (out fields filled). */
export function viommuAlloc(p: UserProcess, fd: number, args: ViommuAllocArgs): { id: number; data: Uint8Array } {
  return withScratch(p, (scratch) => {
    const data = args.data ?? new Uint8Array(0);
    const va = data.length ? scratch.place(data) : 0n;
    const out = call(p, fd, I.IOMMU_VIOMMU_ALLOC, I.iommu_viommu_alloc, {
      type: args.type,
      dev_id: args.devId,
      hwpt_id: args.hwptId,
      data_len: data.length,
      data_uptr: va,
    });
    return { id: out.out_viommu_id, data: data.length ? peekUser(p, va, data.length) : new Uint8Array(0) };
  });
}

/** IOMMU_VDEVICE_ALLOC: a vDEVICE with virtual id `virtId` (vSID, vRID …); returns its id. */
export function vdeviceAlloc(p: UserProcess, fd: number, args: { viommuId: number; devId: number; virtId: bigint }): number {
  return call(p, fd, I.IOMMU_VDEVICE_ALLOC, I.iommu_vdevice_alloc, {
    viommu_id: args.viommuId,
    dev_id: args.devId,
    virt_id: args.virtId,
  }).out_vdevice_id;
}

/** IOMMU_VEVENTQ_ALLOC: a vEVENTQ of `type` holding up to `depth` events; returns its id and fd. */
export function veventqAlloc(p: UserProcess, fd: number, args: { viommuId: number; type: number; depth: number }): ObjectWithFd {
  const out = call(p, fd, I.IOMMU_VEVENTQ_ALLOC, I.iommu_veventq_alloc, {
    viommu_id: args.viommuId,
    type: args.type,
    veventq_depth: args.depth,
  });
  return { id: out.out_veventq_id, fd: out.out_veventq_fd };
}

/** Arguments of {@link hwQueueAlloc}. */
export interface HwQueueAllocArgs {
  /** The vIOMMU. */
  readonly viommuId: number;
  /** IOMMU_HW_QUEUE_TYPE_*. */
  readonly type: number;
  /** Logical index of the queue per type. */
  readonly index: number;
  /** Guest-physical (nesting-parent IOVA) base of the queue memory. */
  readonly nestingParentIova: bigint;
  /** Bytes of queue memory. */
  readonly length: bigint;
}

/** IOMMU_HW_QUEUE_ALLOC: returns the HW queue id. */
export function hwQueueAlloc(p: UserProcess, fd: number, args: HwQueueAllocArgs): number {
  return call(p, fd, I.IOMMU_HW_QUEUE_ALLOC, I.iommu_hw_queue_alloc, {
    viommu_id: args.viommuId,
    type: args.type,
    index: args.index,
    nesting_parent_iova: args.nestingParentIova,
    length: args.length,
  }).out_hw_queue_id;
}

// ---------------------------------------------------------------------------------------
// VFIO device cdev

/** VFIO_DEVICE_BIND_IOMMUFD on a device cdev fd: returns the DEVICE object id. `token` is the 16-byte VF token UUID. */
export function vfioDeviceBindIommufd(p: UserProcess, deviceFd: number, args: { iommufd: number; token?: Uint8Array }): number {
  return withScratch(p, (scratch) => {
    if (args.token !== undefined && args.token.length !== 16) {
      throw new RangeError(`the VF token is a 16-byte UUID, got ${args.token.length} bytes`);
    }
    return call(p, deviceFd, V.VFIO_DEVICE_BIND_IOMMUFD, V.vfio_device_bind_iommufd, {
      flags: args.token ? V.VFIO_DEVICE_BIND_FLAG_TOKEN : 0,
      iommufd: args.iommufd,
      token_uuid_ptr: args.token ? scratch.place(args.token) : 0n,
    }).out_devid;
  });
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT (a replace when already attached): returns the HWPT id attached. */
export function vfioDeviceAttachIommufdPt(p: UserProcess, deviceFd: number, args: { ptId: number; pasid?: number }): number {
  return call(p, deviceFd, V.VFIO_DEVICE_ATTACH_IOMMUFD_PT, V.vfio_device_attach_iommufd_pt, {
    flags: args.pasid === undefined ? 0 : V.VFIO_DEVICE_ATTACH_PASID,
    pt_id: args.ptId,
    pasid: args.pasid ?? 0,
  }).pt_id;
}

/** VFIO_DEVICE_DETACH_IOMMUFD_PT: detaches the RID, or `pasid` when given. */
export function vfioDeviceDetachIommufdPt(p: UserProcess, deviceFd: number, args: { pasid?: number } = {}): void {
  call(p, deviceFd, V.VFIO_DEVICE_DETACH_IOMMUFD_PT, V.vfio_device_detach_iommufd_pt, {
    flags: args.pasid === undefined ? 0 : V.VFIO_DEVICE_DETACH_PASID,
    pasid: args.pasid ?? 0,
  });
}

// ---------------------------------------------------------------------------------------
// VFIO type1 container compat on /dev/iommu

/** VFIO_GET_API_VERSION: VFIO_API_VERSION (0). */
export function vfioGetApiVersion(p: UserProcess, fd: number): number {
  return checked(p.ioctl(fd, V.VFIO_GET_API_VERSION, 0n), V.VFIO_GET_API_VERSION);
}

/** VFIO_CHECK_EXTENSION: 1 (or more) when `extension` is supported, 0 when not. */
export function vfioCheckExtension(p: UserProcess, fd: number, extension: number): number {
  return checked(p.ioctl(fd, V.VFIO_CHECK_EXTENSION, BigInt(extension)), V.VFIO_CHECK_EXTENSION);
}

/** VFIO_SET_IOMMU: selects the container's IOMMU type (VFIO_TYPE1v2_IOMMU …). */
export function vfioSetIommu(p: UserProcess, fd: number, type: number): void {
  checked(p.ioctl(fd, V.VFIO_SET_IOMMU, BigInt(type)), V.VFIO_SET_IOMMU);
}

/** A parsed VFIO_IOMMU_GET_INFO reply. */
export interface VfioIommuInfo {
  /** VFIO_IOMMU_INFO_* flags. */
  readonly flags: number;
  /** Bitmap of supported page sizes. */
  readonly iovaPgsizes: bigint;
  /** The VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE capability's ranges (inclusive), if present. */
  readonly iovaRanges?: { start: bigint; end: bigint }[];
  /** The VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL capability, if present. */
  readonly dmaAvail?: number;
  /** Ids of every capability in chain order (including ones not parsed here). */
  readonly capabilityIds: number[];
}

/**
 * Walks the capability chain of a VFIO_IOMMU_GET_INFO reply in `buf` (the struct at offset
 * 0, `argsz` bytes). Offsets in the chain are relative to the struct start.
 */
export function parseVfioIommuInfo(buf: Uint8Array): VfioIommuInfo {
  const info = V.vfio_iommu_type1_info.decode(buf);
  const result: { -readonly [K in keyof VfioIommuInfo]: VfioIommuInfo[K] } = {
    flags: info.flags,
    iovaPgsizes: info.iova_pgsizes,
    capabilityIds: [],
  };
  let at = info.flags & V.VFIO_IOMMU_INFO_CAPS ? info.cap_offset : 0;
  const seen = new Set<number>();
  while (at !== 0) {
    if (seen.has(at) || at + V.vfio_info_cap_header.size > buf.length) {
      throw new RangeError(`VFIO_IOMMU_GET_INFO capability chain is broken at offset ${at}`);
    }
    seen.add(at);
    const header = V.vfio_info_cap_header.decode(buf, at);
    result.capabilityIds.push(header.id);
    if (header.id === V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
      const cap = V.vfio_iommu_type1_info_cap_iova_range.decode(buf, at);
      const first = at + V.vfio_iommu_type1_info_cap_iova_range.size;
      result.iovaRanges = Array.from({ length: cap.nr_iovas }, (_, i) => {
        const { start, end } = V.vfio_iova_range.decode(buf, first + i * V.vfio_iova_range.size);
        return { start, end };
      });
    } else if (header.id === V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
      result.dmaAvail = V.vfio_iommu_type1_info_dma_avail.decode(buf, at).avail;
    }
    at = header.next;
  }
  return result;
}

/**
 * VFIO_IOMMU_GET_INFO: asks once with the fixed struct to learn the needed `argsz`, then
 * again with room for the whole capability chain, and parses it.
 */
export function vfioIommuGetInfo(p: UserProcess, fd: number): VfioIommuInfo {
  let argsz = V.vfio_iommu_type1_info.size;
  for (;;) {
    const buf = V.vfio_iommu_type1_info.encode({ argsz });
    const full = new Uint8Array(Math.max(argsz, buf.length));
    full.set(buf);
    checked(p.ioctl(fd, V.VFIO_IOMMU_GET_INFO, full), V.VFIO_IOMMU_GET_INFO);
    const needed = V.vfio_iommu_type1_info.get(full, 'argsz');
    if (needed <= argsz) return parseVfioIommuInfo(full.subarray(0, argsz));
    argsz = needed;
  }
}

/** VFIO_IOMMU_MAP_DMA: maps `size` bytes of process memory at `vaddr` to `iova`. */
export function vfioIommuMapDma(
  p: UserProcess,
  fd: number,
  args: { vaddr: bigint; iova: bigint; size: bigint; flags?: number },
): void {
  call(p, fd, V.VFIO_IOMMU_MAP_DMA, V.vfio_iommu_type1_dma_map, {
    flags: args.flags ?? V.VFIO_DMA_MAP_FLAG_READ | V.VFIO_DMA_MAP_FLAG_WRITE,
    vaddr: args.vaddr,
    iova: args.iova,
    size: args.size,
  });
}

/** VFIO_IOMMU_UNMAP_DMA: returns the bytes unmapped (VFIO_DMA_UNMAP_FLAG_ALL with iova = size = 0 unmaps everything). */
export function vfioIommuUnmapDma(p: UserProcess, fd: number, args: { iova: bigint; size: bigint; flags?: number }): bigint {
  return call(p, fd, V.VFIO_IOMMU_UNMAP_DMA, V.vfio_iommu_type1_dma_unmap, {
    flags: args.flags ?? 0,
    iova: args.iova,
    size: args.size,
  }).size;
}

// ---------------------------------------------------------------------------------------
// IOMMU_TEST_CMD (selftest kernels / the mock platform)

const OP_OF_MEMBER = new Map(Object.entries(IOMMU_TEST_OP_MEMBER).map(([op, m]) => [m, Number(op)]));

/**
 * IOMMU_TEST_CMD with the union member `member` (its op is set from it): returns the whole
 * struct as the kernel left it, e.g. `iommuTestCmd(p, fd, 'mock_domain', { id: ioasId }).out_idev_id`.
 */
export function iommuTestCmd<M extends IommuTestCmdMember>(
  p: UserProcess,
  fd: number,
  member: M,
  value: Partial<LayoutValue<(typeof IOMMU_TEST_CMD_LAYOUTS)[M]>>,
): LayoutValue<(typeof IOMMU_TEST_CMD_LAYOUTS)[M]> {
  const layout = IOMMU_TEST_CMD_LAYOUTS[member] as unknown as StructLayout;
  const op = OP_OF_MEMBER.get(member) ?? 0;
  return call(p, fd, IOMMU_TEST_CMD, layout, { ...(value as Record<string, number | bigint>), op }) as never;
}
