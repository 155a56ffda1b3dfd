/**
 * The negative-case tables (iommufd-core.md §2-§3, issue #9): each row names the reference
 * case it checks, builds its objects through the Host contract, sends raw struct bytes built
 * from the uAPI layouts, and expects an exact -errno. A rejected call must leave everything as
 * it was: the context's objects (IDs, types, users, references), the host's pinned pages, the
 * process's fds and the struct bytes in user memory (unless the row names the bytes the
 * kernel copies back anyway). Every row runs on a fresh /dev/iommu of a host shared by its
 * table; closing the row's fds must then release the context with no object and no pin left.
 */
import type { FieldSpec, StructLayout } from '@iommufd/uapi';
import * as U from '@iommufd/uapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host, type HostProcess } from '../../src/index.js';
import type { ProcessImpl } from '../../src/process.js';

export { U };
export const PAGE = 4096n;
export const U64_MAX = (1n << 64n) - 1n;
export const RW = U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE;
export const PROT_RW = U.PROT_READ | U.PROT_WRITE;

/** The presets the tables run on. */
export type Preset = 'mock' | 'arm-smmuv3' | 'intel-vtd' | 'tegra241-cmdqv';
/** Where a row runs unless it names its presets (tegra241-cmdqv only runs the rows naming it). */
export const PRESETS: readonly Preset[] = ['mock', 'arm-smmuv3', 'intel-vtd'];
const ALL_PRESETS: readonly Preset[] = [...PRESETS, 'tegra241-cmdqv'];

/** What each preset offers the rows: where mappings land, and its vIOMMU flavour (if any). */
export interface Profile {
  /** An IOVA inside every paging domain's aperture. */
  readonly base: bigint;
  /** IOAS alignment once a paging domain is attached. */
  readonly domainAlignment: bigint;
  /** vIOMMU type, nested HWPT data and vEVENTQ type (undefined: no vIOMMU rows). */
  readonly viommu?: { readonly type: number; readonly hwptType: number; readonly hwptData: Uint8Array; readonly veventqType: number };
  /** Nested HWPT directly on a NEST_PARENT HWPT_PAGING (undefined: the driver has no domain_alloc_nested). */
  readonly nestedOnParent?: { readonly type: number; readonly data: Uint8Array };
}

export const PROFILES: Record<Preset, Profile> = {
  mock: {
    base: BigInt(U.MOCK_APERTURE_START),
    domainAlignment: PAGE / 2n,
    viommu: {
      type: U.IOMMU_VIOMMU_TYPE_SELFTEST,
      hwptType: U.IOMMU_HWPT_DATA_SELFTEST,
      hwptData: U.iommu_hwpt_selftest.encode({ iotlb: 0 }),
      veventqType: U.IOMMU_VEVENTQ_TYPE_SELFTEST,
    },
    nestedOnParent: { type: U.IOMMU_HWPT_DATA_SELFTEST, data: U.iommu_hwpt_selftest.encode({ iotlb: 0 }) },
  },
  'arm-smmuv3': {
    base: 1n << 24n,
    domainAlignment: PAGE,
    viommu: {
      type: U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
      hwptType: U.IOMMU_HWPT_DATA_ARM_SMMUV3,
      // A guest STE word 0 with V=1, Config=0b100 (bypass): the simplest valid nested STE.
      hwptData: U.iommu_hwpt_arm_smmuv3.encode({ ste: [0x9n, 0n] }),
      veventqType: U.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
    },
  },
  // The vIOMMU of this preset needs its driver data (the VINTF mmap offset/length): its rows
  // build it themselves.
  'tegra241-cmdqv': { base: 1n << 24n, domainAlignment: PAGE },
  'intel-vtd': {
    base: 1n << 24n,
    domainAlignment: PAGE,
    nestedOnParent: {
      type: U.IOMMU_HWPT_DATA_VTD_S1,
      data: U.iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: 0x10_0000n, addr_width: 48 }),
    },
  },
};

type Layout = StructLayout<readonly FieldSpec[]>;
type Value = Record<string, number | bigint | readonly (number | bigint)[]>;

/** One row's world: a fresh /dev/iommu with the host's devices open and bound. */
export class Env {
  readonly p: HostProcess;
  readonly fd: number;
  readonly devFds: number[];
  readonly devIds: number[];
  /** fds open before the row (everything else is closed by the row's teardown). */
  private readonly fdsBefore: Set<number>;

  constructor(
    readonly host: Host,
    readonly preset: Preset,
    opts: { bind?: boolean; path?: string } = {},
  ) {
    this.p = host.process;
    this.fdsBefore = new Set(this.p.fds().map((f) => f.fd));
    this.fd = this.p.open(opts.path ?? '/dev/iommu');
    expect(this.fd).toBeGreaterThan(0);
    this.devFds = host.vfioDevices.map((path) => this.p.open(path));
    this.devIds = opts.bind === false ? [] : this.devFds.map((dfd) => this.bind(dfd));
  }

  get prof(): Profile {
    return PROFILES[this.preset];
  }

  /** The process implementation (credentials). */
  get proc(): ProcessImpl {
    return this.p as ProcessImpl;
  }

  bind(dfd: number): number {
    const b = U.vfio_device_bind_iommufd.encode({ argsz: U.vfio_device_bind_iommufd.size, iommufd: this.fd });
    expect(this.p.ioctl(dfd, U.VFIO_DEVICE_BIND_IOMMUFD, b)).toBe(0);
    return U.vfio_device_bind_iommufd.get(b, 'out_devid');
  }

  /** An ioctl on /dev/iommu that must succeed; returns the struct as the kernel left it. */
  ok<L extends Layout>(request: number, layout: L, value: Value): ReturnType<L['decode']> {
    const bytes = layout.encode({ size: layout.size, ...value } as never);
    expect(this.p.ioctl(this.fd, request, bytes), `setup ioctl 0x${request.toString(16)}`).toBe(0);
    return layout.decode(bytes) as ReturnType<L['decode']>;
  }

  /** Anonymous read/write memory. */
  alloc(length: bigint, prot = PROT_RW): bigint {
    const va = this.p.mmap(length, prot, U.MAP_PRIVATE | U.MAP_ANONYMOUS);
    expect(va > 0n).toBe(true);
    return va;
  }

  /** Bytes placed in fresh process memory. */
  put(bytes: Uint8Array): bigint {
    const va = this.alloc(PAGE * BigInt(Math.ceil(Math.max(bytes.length, 1) / 4096)));
    expect(this.p.poke(va, bytes)).toBe(0);
    return va;
  }

  /** The same bytes in a read-only shared mapping: copy_from_user works, copy_to_user faults. */
  readOnly(bytes: Uint8Array): bigint {
    const mfd = this.p.memfdCreate('ro', PAGE);
    const rw = this.p.mmap(PAGE, PROT_RW, U.MAP_SHARED, mfd);
    expect(this.p.poke(rw, bytes)).toBe(0);
    const ro = this.p.mmap(PAGE, U.PROT_READ, U.MAP_SHARED, mfd);
    expect(ro > 0n).toBe(true);
    return ro;
  }

  ioas(): number {
    return this.ok(U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, {}).out_ioas_id;
  }

  /** Maps `length` bytes of fresh memory at `iova` (FIXED) or anywhere. */
  map(ioas: number, length: bigint, iova?: bigint, flags = RW): bigint {
    const va = this.alloc(length);
    return this.ok(U.IOMMU_IOAS_MAP, U.iommu_ioas_map, {
      ioas_id: ioas,
      flags: flags | (iova === undefined ? 0 : U.IOMMU_IOAS_MAP_FIXED_IOVA),
      user_va: va,
      length,
      iova: iova ?? 0n,
    }).iova;
  }

  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT of device `dev`; returns the attached HWPT ID. */
  attach(dev: number, ptId: number): number {
    const b = U.vfio_device_attach_iommufd_pt.encode({ argsz: U.vfio_device_attach_iommufd_pt.size, pt_id: ptId });
    expect(this.p.ioctl(this.devFds[dev]!, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, b)).toBe(0);
    return U.vfio_device_attach_iommufd_pt.get(b, 'pt_id');
  }

  hwpt(ioas: number, flags = 0, dev = 0): number {
    return this.ok(U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, { dev_id: this.devIds[dev]!, pt_id: ioas, flags }).out_hwpt_id;
  }

  /** IOAS + NEST_PARENT HWPT + vIOMMU of the preset's type on device 0. */
  viommu(): { ioas: number; parent: number; viommu: number } {
    const v = this.prof.viommu!;
    const ioas = this.ioas();
    const parent = this.hwpt(ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT);
    const viommu = this.ok(U.IOMMU_VIOMMU_ALLOC, U.iommu_viommu_alloc, { type: v.type, dev_id: this.devIds[0]!, hwpt_id: parent }).out_viommu_id;
    return { ioas, parent, viommu };
  }

  /** A nested HWPT on a vIOMMU. */
  nested(viommu: number, flags = 0): number {
    const v = this.prof.viommu!;
    const data = this.put(v.hwptData);
    return this.ok(U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, {
      dev_id: this.devIds[0]!,
      pt_id: viommu,
      flags,
      data_type: v.hwptType,
      data_len: v.hwptData.length,
      data_uptr: data,
    }).out_hwpt_id;
  }

  vdevice(viommu: number, virtId = 1n, dev = 0): number {
    return this.ok(U.IOMMU_VDEVICE_ALLOC, U.iommu_vdevice_alloc, { viommu_id: viommu, dev_id: this.devIds[dev]!, virt_id: virtId }).out_vdevice_id;
  }

  veventq(viommu: number): { id: number; fd: number } {
    const r = this.ok(U.IOMMU_VEVENTQ_ALLOC, U.iommu_veventq_alloc, { viommu_id: viommu, type: this.prof.viommu!.veventqType, veventq_depth: 4 });
    return { id: r.out_veventq_id, fd: r.out_veventq_fd };
  }

  /** A selftest HW queue of `length` bytes at `iova` of the vIOMMU's parent IOAS (mock). */
  hwQueue(viommu: number, iova: bigint, index = 0, length = PAGE / 2n): number {
    return this.ok(U.IOMMU_HW_QUEUE_ALLOC, U.iommu_hw_queue_alloc, { type: U.IOMMU_HW_QUEUE_TYPE_SELFTEST, index, viommu_id: viommu, nesting_parent_iova: iova, length }).out_hw_queue_id;
  }

  /** A mock vIOMMU with driver data: its viommu_init registers a two-page MMIO region. */
  viommuWithRegion(): { viommu: number; offset: bigint; length: bigint } {
    const parent = this.hwpt(this.ioas(), U.IOMMU_HWPT_ALLOC_NEST_PARENT);
    const data = this.put(U.iommu_viommu_selftest.encode({ in_data: 1 }));
    const viommu = this.ok(U.IOMMU_VIOMMU_ALLOC, U.iommu_viommu_alloc, {
      type: U.IOMMU_VIOMMU_TYPE_SELFTEST,
      dev_id: this.devIds[0]!,
      hwpt_id: parent,
      data_len: U.iommu_viommu_selftest.size,
      data_uptr: data,
    }).out_viommu_id;
    const out = U.iommu_viommu_selftest.decode(this.p.peek(data, U.iommu_viommu_selftest.size) as Uint8Array);
    return { viommu, offset: out.out_mmap_offset, length: out.out_mmap_length };
  }

  /** An IOAS whose only allowed range lies far outside every domain aperture (2^60). */
  ioasAllowedOutsideAperture(): number {
    const ioas = this.ioas();
    const arr = this.put(U.iommu_iova_range.encode({ start: 1n << 60n, last: (1n << 60n) + PAGE - 1n }));
    this.ok(U.IOMMU_IOAS_ALLOW_IOVAS, U.iommu_ioas_allow_iovas, { ioas_id: ioas, num_iovas: 1, allowed_iovas: arr });
    return ioas;
  }

  fault(): { id: number; fd: number } {
    const r = this.ok(U.IOMMU_FAULT_QUEUE_ALLOC, U.iommu_fault_alloc, {});
    return { id: r.out_fault_id, fd: r.out_fault_fd };
  }

  /** Closes every fd the row opened (the iommufd last); returns close()'s rc for it. */
  closeAll(): number {
    for (const { fd } of this.p.fds()) if (!this.fdsBefore.has(fd) && fd !== this.fd) this.p.close(fd);
    return this.p.close(this.fd);
  }

  /** Closes every fd the row opened; the context must then be released, clean. */
  teardown(): void {
    expect(this.closeAll()).toBe(0);
    expect(this.host.contexts().filter((c) => !c.released || c.objects.length)).toEqual([]);
    expect(this.host.pinnedPages).toBe(0);
  }
}

/** The struct of a row: a layout and field values (size defaults to sizeof), or raw bytes. */
export interface Arg {
  readonly layout?: Layout;
  readonly value?: Value;
  /** The `size` field written into the struct (default: the layout's size). */
  readonly size?: number;
  /** Bytes after the layout's end (a longer user struct). */
  readonly tail?: Uint8Array;
  /** Raw bytes instead of a layout. */
  readonly bytes?: Uint8Array;
  /** A user VA instead of a buffer (e.g. read-only or unmapped memory). */
  readonly va?: bigint;
}

/** The bytes of an {@link Arg}. */
export function argBytes(a: Arg): Uint8Array {
  if (a.bytes) return a.bytes;
  const layout = a.layout!;
  const size = a.size ?? layout.size;
  const out = new Uint8Array(Math.max(size, layout.size + (a.tail?.length ?? 0)));
  layout.encode({ size, ...(a.value ?? {}) } as never, out);
  if (a.tail) out.set(a.tail, layout.size);
  return out.subarray(0, Math.max(size, a.tail ? layout.size + a.tail.length : 0));
}

/** One table row. `S` is whatever the setup hands to the struct builder. */
export interface Row<S = Record<string, number | bigint>> {
  /** What it checks, citing iommufd-core.md (section and the rule). */
  readonly name: string;
  /** Presets it runs on (default: all; 'mock' for mock-specific rows). */
  readonly presets?: readonly Preset[];
  /** Needs the preset's vIOMMU (rows on presets without one are not generated). */
  readonly needsViommu?: boolean;
  /** Needs a nested HWPT directly on a NEST_PARENT HWPT_PAGING. */
  readonly needsNestedOnParent?: boolean;
  /** Bind the devices (default true). */
  readonly bind?: boolean;
  /** The device node the row opens instead of /dev/iommu. */
  readonly path?: string;
  readonly setup?: (e: Env) => S;
  /** The ioctl request (default: the table's). */
  readonly request?: number;
  /** The fd the ioctl goes to (default: the /dev/iommu fd). */
  readonly target?: (e: Env, s: S) => number;
  readonly arg?: (e: Env, s: S) => Arg;
  /** A call other than an ioctl (read/write/mmap): its result as a number; no struct bytes. */
  readonly call?: (e: Env, s: S) => number;
  /** Expected errno (positive), or 0 for the copy-back rows that succeed. */
  readonly errno: number;
  /** The struct bytes expected after the call (default: exactly what was sent). */
  readonly copyBack?: (sent: Uint8Array, e: Env, s: S) => Uint8Array;
  /** Checks the bytes instead of {@link Row.copyBack} (outputs that depend on the preset). */
  readonly checkBytes?: (sent: Uint8Array, back: Uint8Array) => void;
  /** Undoes what closing fds does not (e.g. munmap of an iommufd MMIO mapping). */
  readonly cleanup?: (e: Env, s: S) => void;
  /** Replaces the "nothing changed" state check (rows that succeed or change state by rule). */
  readonly after?: (e: Env, s: S, before: Snapshot) => void;
}

/** Everything a rejected call must leave as it was. */
export interface Snapshot {
  readonly objects: unknown;
  readonly pinned: number;
  readonly fds: unknown;
  readonly mappings: unknown;
}

export function snapshot(e: Env): Snapshot {
  return {
    objects: structuredClone(e.host.objects(e.fd)),
    pinned: e.host.pinnedPages,
    fds: e.p.fds().map((f) => ({ ...f })),
    mappings: e.p.mappings().length,
  };
}

/** Runs one row: setup, the call, the checks, the teardown. */
export function runRow<S>(host: Host, preset: Preset, defaultRequest: number, row: Row<S>): void {
  const e = new Env(host, preset, { bind: row.bind, path: row.path });
  let done = false;
  let s: S | undefined;
  try {
    s = (row.setup?.(e) ?? {}) as S;
    check(e, s, defaultRequest, row);
    done = true;
  } finally {
    if (s !== undefined) row.cleanup?.(e, s);
    // A failed row still closes its fds so the next row starts from a clean host.
    if (done) e.teardown();
    else e.closeAll();
  }
}

function check<S>(e: Env, s: S, defaultRequest: number, row: Row<S>): void {
  if (row.call) {
    const before = snapshot(e);
    const rc = row.call(e, s);
    expect(rc, 'rc').toBe(row.errno ? -row.errno : 0);
    if (row.after) row.after(e, s, before);
    else expect(snapshot(e), 'objects, pins, fds and mappings after the call').toEqual(before);
    return;
  }
  const a = row.arg!(e, s);
  const request = row.request ?? defaultRequest;
  const target = row.target?.(e, s) ?? e.fd;
  const before = snapshot(e);
  let rc: number;
  let sent: Uint8Array;
  let back: Uint8Array;
  if (a.va !== undefined) {
    const len = a.bytes?.length ?? 0;
    sent = len ? (e.p.peek(a.va, len) as Uint8Array) : new Uint8Array(0);
    rc = e.p.ioctl(target, request, a.va);
    back = len ? (e.p.peek(a.va, len) as Uint8Array) : new Uint8Array(0);
  } else {
    sent = argBytes(a).slice();
    back = sent.slice();
    rc = e.p.ioctl(target, request, back);
  }
  expect(rc, 'rc').toBe(row.errno ? -row.errno : 0);
  if (row.checkBytes) row.checkBytes(sent, back);
  else expect(back, 'struct bytes in user memory').toEqual(row.copyBack ? row.copyBack(sent, e, s) : sent);
  if (row.after) row.after(e, s, before);
  else expect(snapshot(e), 'objects, pins, fds and mappings after the call').toEqual(before);
}

/** The rows of `rows` that apply to `preset`. */
export function rowsFor<S>(rows: readonly Row<S>[], preset: Preset): Row<S>[] {
  const prof = PROFILES[preset];
  return rows.filter(
    (r) => (r.presets ?? PRESETS).includes(preset) && (!r.needsViommu || prof.viommu) && (!r.needsNestedOnParent || prof.nestedOnParent),
  );
}

/**
 * Declares one table: `describe.each` over the presets, one `it` per applicable row, one
 * host per preset shared by the rows (each row on its own /dev/iommu).
 */
export function table<S>(title: string, request: number, rows: readonly Row<S>[], devices = 2): void {
  const names = rows.map((r) => r.name);
  if (new Set(names).size !== names.length) throw new Error(`${title}: duplicate row names`);
  describe.each(ALL_PRESETS.filter((p) => rowsFor(rows, p).length))(`${title} on %s`, (preset) => {
    let host: Host;
    beforeAll(async () => {
      host = await createHost({ platform: preset, devices });
    });
    afterAll(() => {
      expect(host.pinnedPages).toBe(0);
    });
    it.each(rowsFor(rows, preset).map((r) => [r.name, r] as const))('%s', (_, row) => runRow(host, preset, request, row));
  });
}

/** `bytes` with the little-endian u32 at `offset` replaced (for expected copy-backs). */
export function withU32(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const out = bytes.slice();
  new DataView(out.buffer).setUint32(offset, value, true);
  return out;
}

/** `bytes` with the little-endian u64 at `offset` replaced. */
export function withU64(bytes: Uint8Array, offset: number, value: bigint): Uint8Array {
  const out = bytes.slice();
  new DataView(out.buffer).setBigUint64(offset, value, true);
  return out;
}

/** An unmapped user address (the top of the lower half is never mapped by the host). */
export const UNMAPPED = 0x7fff_dead_0000n;
