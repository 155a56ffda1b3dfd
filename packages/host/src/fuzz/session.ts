/**
 * One fuzzing session: a fresh host, the operations of {@link FuzzOp} executed against its
 * uAPI, a shadow model of what each context mapped where, and the invariants checked after
 * every call (no exception, a 0/positive/-errno return, consistent object graph, pins only
 * under live areas, DMA only where the device's context mapped, IDs not reused while live,
 * and a return to the baseline when every fd is closed).
 */
import {
  IOMMU_DESTROY,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_GET_HW_INFO,
  IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IOMMU_HW_QUEUE_ALLOC,
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_OPTION,
  IOMMU_VDEVICE_ALLOC,
  IOMMU_VEVENTQ_ALLOC,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_ALLOC,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_PASID,
  iommu_destroy,
  iommu_fault_alloc,
  iommu_hw_info,
  iommu_hw_queue_alloc,
  iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  iommu_hwpt_set_dirty_tracking,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_map_file,
  iommu_ioas_unmap,
  iommu_iova_range,
  iommu_option,
  iommu_vdevice_alloc,
  iommu_veventq_alloc,
  iommu_viommu_alloc,
  iommu_viommu_invalidate_selftest,
  iommu_viommu_selftest,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  type StructLayout,
} from '@iommufd/uapi';
import { createHost, type Host } from '../host.js';
import type { HostProcess } from '../process.js';
import type { HostObjectInfo, PlatformName } from '../platform.js';
import { hardwareTableViolations, type DeviceAttachment } from './hardware-invariants.js';
import { OpArgs, type FuzzOp } from './ops.js';

const PAGE = 4096n;
const U64_MAX = (1n << 64n) - 1n;
const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
/** Pages of the session's own scratch memory for arrays and data pointers inside structs. */
const ARENA_PAGES = 8n;
/** Bound on live anonymous mappings / fds the fuzzer keeps, so state stays dense in objects. */
const MAX_ANON = 24;
const MAX_FDS = 48;
/** The VMM process plus at most this many spawned ones (processes never exit). */
const MAX_PROCESSES = 3;
/** VFIO ioctls that change mappings or bindings: 0x3b66 SET_IOMMU, 0x3b71 MAP_DMA, 0x3b72 UNMAP_DMA, 0x3b73/0x3b75 dirty/enable, 0x3b76-0x3b78 cdev bind/attach/detach. */
const STATEFUL_REQUESTS = new Set([0x3b66, 0x3b71, 0x3b72, 0x3b73, 0x3b74, 0x3b75, 0x3b76, 0x3b77, 0x3b78]);

/** What kind of check a finding broke. */
export type FuzzFindingKind = 'exception' | 'bad-return' | 'invariant';

/** One broken rule, at one operation of a run. */
export interface FuzzFinding {
  /** Index of the operation in the run. */
  readonly index: number;
  /** The operation kind. */
  readonly op: string;
  /** Which rule broke. */
  readonly kind: FuzzFindingKind;
  /** What was observed and what was expected. */
  readonly message: string;
}

/** A thrown value as text (stack head included for errors). */
function describeThrown(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}${e.stack ? ` @ ${e.stack.split('\n').slice(1, 3).join(' ').trim()}` : ''}`;
  return String(e);
}

type AreaSource = { readonly kind: 'anon'; readonly mapping: AnonMapping; readonly va: bigint } | { readonly kind: 'opaque' };

interface Area {
  readonly iova: bigint;
  readonly length: bigint;
  readonly prot: number;
  readonly src: AreaSource;
  /** A failed UNMAP over it may or may not have removed it. */
  uncertain: boolean;
}

interface AnonMapping {
  /** The process whose address space holds it. */
  readonly proc: ProcShadow;
  readonly va: bigint;
  readonly length: bigint;
  live: boolean;
}

interface CtxShadow {
  /** Position in `host.contexts()` (one list over every process). */
  readonly index: number;
  /** The process that opened it; `fd` is a number in its fd table. */
  readonly proc: ProcShadow;
  fd: number | undefined;
  readonly ioas: Map<number, Area[]>;
  /** IDs of the mmap-able regions the context's vIOMMUs registered: offset/length by owner. */
  readonly regions: { owner: number; offset: bigint; length: bigint }[];
  /** The DEVICE each vDEVICE was allocated for (by vDEVICE ID; stale once the ID is gone). */
  readonly vdeviceOf: Map<number, number>;
}

interface VfioShadow {
  readonly fd: number;
  readonly device: number;
  ctx: CtxShadow | undefined;
  devId: number | undefined;
  readonly attached: Map<number | undefined, number>;
}

interface EventFd {
  readonly fd: number;
  readonly ctx: CtxShadow;
  readonly objId: number;
  readonly kind: 'fault' | 'veventq';
}

interface MmioMapping {
  readonly va: bigint;
  readonly length: bigint;
  readonly ctx: CtxShadow;
  readonly owner: number;
}

/** What the fuzzer knows of one process: its fds, memory and the objects it reaches through them. */
interface ProcShadow {
  readonly p: HostProcess;
  readonly ctxByFd: Map<number, CtxShadow>;
  readonly anon: AnonMapping[];
  readonly memfds: number[];
  readonly vfio: VfioShadow[];
  readonly events: EventFd[];
  readonly mmio: MmioMapping[];
  /** Scratch memory for arrays and data pointers inside structs. */
  arena: bigint;
}

function procShadow(p: HostProcess): ProcShadow {
  return { p, ctxByFd: new Map(), anon: [], memfds: [], vfio: [], events: [], mmio: [], arena: 0n };
}

type Mode = 'valid' | 'mutated' | 'garbage';

/** Options of {@link FuzzSession.create}. */
export interface FuzzSessionOptions {
  /** Machine preset. Default 'mock'. */
  readonly platform?: PlatformName;
  /** Devices behind the IOMMU. Default 3. */
  readonly devices?: number;
}

/**
 * A host under fuzzing plus the shadow model. `execute(op)` runs one operation and returns
 * the findings it caused (empty when every rule held); `finish()` closes everything and
 * checks the baseline.
 */
export class FuzzSession {
  private readonly ctxs: CtxShadow[] = [];
  /** Every process, the VMM process first; `cur` is the one operations run in. */
  private readonly procs: ProcShadow[];
  private cur: ProcShadow;
  /** Contexts the warm-up opened before the session started (they come first in `host.contexts()`). */
  private readonly ctxBase: number;
  private previous = new Map<number, Map<number, string>>();
  private findings: FuzzFinding[] = [];
  private index = 0;
  private opName = '';
  /** ioctl/syscall-level calls made so far (an operation may make several). */
  calls = 0;
  /** Calls that returned an errno. */
  errors = 0;

  private constructor(
    private readonly host: Host,
    private readonly baseline: { readonly pages: number; readonly machinePages: number },
  ) {
    this.ctxBase = host.contexts().length;
    this.cur = procShadow(host.process);
    this.procs = [this.cur];
  }

  // The operations act on the current process's fds and memory.
  private get ctxByFd(): Map<number, CtxShadow> {
    return this.cur.ctxByFd;
  }
  private get anon(): AnonMapping[] {
    return this.cur.anon;
  }
  private get memfds(): number[] {
    return this.cur.memfds;
  }
  private get vfio(): VfioShadow[] {
    return this.cur.vfio;
  }
  private get events(): EventFd[] {
    return this.cur.events;
  }
  private get mmio(): MmioMapping[] {
    return this.cur.mmio;
  }
  private get arena(): bigint {
    return this.cur.arena;
  }

  /** Builds a fresh host and session. */
  static async create(options: FuzzSessionOptions = {}): Promise<FuzzSession> {
    const host = await createHost({ platform: options.platform ?? 'mock', devices: options.devices ?? 3, seed: 1 });
    warmUp(host);
    const s = new FuzzSession(host, { pages: host.memory.pagesInUse, machinePages: machinePagesOf(host) - spareOf(host) });
    s.mapArena();
    return s;
  }

  /** The host under test (for inspection by callers). */
  get hostUnderTest(): Host {
    return this.host;
  }

  /** Runs operation number `index`; returns the findings it produced. */
  execute(op: FuzzOp, index: number): FuzzFinding[] {
    this.findings = [];
    this.index = index;
    this.opName = op.kind;
    this.objectsCache.clear();
    try {
      this.dispatch(op.kind, new OpArgs(op.args));
    } catch (e) {
      this.report('exception', `an exception escaped: ${describeThrown(e)}`);
    }
    try {
      this.checkInvariants();
    } catch (e) {
      this.report('exception', `an exception escaped while inspecting state: ${describeThrown(e)}`);
    }
    return this.findings;
  }

  /** Closes every fd and mapping and checks the system is back at its baseline. */
  finish(index: number): FuzzFinding[] {
    this.findings = [];
    this.index = index;
    this.opName = 'FINISH';
    try {
      this.closeAll();
    } catch (e) {
      this.report('exception', `an exception escaped during teardown: ${describeThrown(e)}`);
    }
    return this.findings;
  }

  private report(kind: FuzzFindingKind, message: string): void {
    this.findings.push({ index: this.index, op: this.opName, kind, message });
  }

  /** Checks a syscall return: an integer, ≥ 0 or a -errno in [-4095, -1]. */
  private ret(what: string, r: number): number {
    this.counted();
    if (!Number.isInteger(r) || r < -4095) this.report('bad-return', `${what} returned ${String(r)}, not 0/positive or -errno`);
    if (r < 0) this.errors++;
    return r;
  }

  // ---------------------------------------------------------------------------------------
  // Operations

  private dispatch(kind: FuzzOp['kind'], a: OpArgs): void {
    switch (kind) {
      case 'OPEN_IOMMUFD':
        return this.openIommufd('/dev/iommu');
      case 'OPEN_VFIO_COMPAT':
        return this.openIommufd('/dev/vfio/vfio');
      case 'CLOSE':
        return this.closeOne(a);
      case 'MMAP_ANON':
        return this.mmapAnon(a);
      case 'MUNMAP':
        return this.munmapOne(a);
      case 'POKE':
        return this.poke(a);
      case 'MEMFD':
        return this.memfd(a);
      case 'IOAS_ALLOC':
        return this.ioasAlloc(a);
      case 'IOAS_MAP':
        return this.ioasMap(a);
      case 'IOAS_MAP_FILE':
        return this.ioasMapFile(a);
      case 'IOAS_COPY':
        return this.ioasCopy(a);
      case 'IOAS_UNMAP':
        return this.ioasUnmap(a);
      case 'IOAS_IOVA_RANGES':
        return this.ioasIovaRanges(a);
      case 'IOAS_ALLOW_IOVAS':
        return this.ioasAllowIovas(a);
      case 'OPTION':
        return this.option(a);
      case 'HWPT_ALLOC':
        return this.hwptAlloc(a);
      case 'HWPT_INVALIDATE':
        return this.hwptInvalidate(a);
      case 'SET_DIRTY_TRACKING':
        return this.setDirty(a);
      case 'GET_DIRTY_BITMAP':
        return this.getDirty(a);
      case 'GET_HW_INFO':
        return this.getHwInfo(a);
      case 'VIOMMU_ALLOC':
        return this.viommuAlloc(a);
      case 'VDEVICE_ALLOC':
        return this.vdeviceAlloc(a);
      case 'VEVENTQ_ALLOC':
        return this.veventqAlloc(a);
      case 'HW_QUEUE_ALLOC':
        return this.hwQueueAlloc(a);
      case 'FAULT_QUEUE_ALLOC':
        return this.faultAlloc(a);
      case 'DESTROY':
        return this.destroy(a);
      case 'VFIO_OPEN':
        return this.vfioOpen(a);
      case 'VFIO_BIND':
        return this.vfioBind(a);
      case 'VFIO_ATTACH':
        return this.vfioAttach(a);
      case 'VFIO_DETACH':
        return this.vfioDetach(a);
      case 'READ_EVENT':
        return this.readEvent(a);
      case 'WRITE_FAULT':
        return this.writeFault(a);
      case 'MMAP_REGION':
        return this.mmapRegion(a);
      case 'DMA':
        return this.dma(a);
      case 'GARBAGE_IOCTL':
        return this.garbageIoctl(a);
      case 'CLOSE_ALL':
        return this.closeAll();
      case 'SPAWN_PROCESS':
        return this.spawnProcess();
      case 'SWITCH_PROCESS':
        return this.switchProcess(a);
    }
  }

  private get p(): HostProcess {
    return this.cur.p;
  }

  private fdCount(): number {
    return this.p.fds().length;
  }

  /** A second (third) VMM process with its own fd table, address space and memlock account. */
  private spawnProcess(): void {
    if (this.procs.length >= MAX_PROCESSES) return;
    const proc = procShadow(this.host.spawnProcess());
    this.procs.push(proc);
    this.mapArena(proc);
    this.cur = proc;
  }

  /** Following operations run in another process (fds and VAs are then its own). */
  private switchProcess(a: OpArgs): void {
    this.cur = this.procs[a.below(this.procs.length)]!;
  }

  private openIommufd(path: string): void {
    if (this.fdCount() >= MAX_FDS) return;
    const fd = this.ret(`open(${path})`, this.p.open(path));
    if (fd < 0) return;
    const ctx: CtxShadow = { index: this.ctxBase + this.ctxs.length, proc: this.cur, fd, ioas: new Map(), regions: [], vdeviceOf: new Map() };
    this.ctxs.push(ctx);
    this.ctxByFd.set(fd, ctx);
  }

  /** An iommufd fd to issue an ioctl on (now and then any other fd, or a closed one). */
  private iommufdFd(a: OpArgs): number {
    // Cross-process misuse: an fd number that is an iommufd only in another process (the
    // kernel resolves it in this process's table). Only with several processes, so a
    // one-process program draws the same words as before.
    if (this.procs.length > 1 && a.chance(5)) {
      const foreign = a.pick(this.ctxs.filter((c) => c.fd !== undefined && c.proc !== this.cur));
      if (foreign) return foreign.fd!;
    }
    const open = this.ctxs.filter((c) => c.fd !== undefined && c.proc === this.cur);
    if (open.length === 0 || a.chance(3)) {
      const any = a.pick(this.p.fds().map((f) => f.fd));
      return a.chance(50) || any === undefined ? a.below(64) - 1 : any;
    }
    return open[a.below(open.length)]!.fd!;
  }

  /** Counts one syscall-level call; what the host answered before it may have changed. */
  private counted(): void {
    this.calls++;
    this.objectsCache.clear();
  }

  /** Objects of a context as of the last call (read once per context between calls). */
  private readonly objectsCache = new Map<CtxShadow, readonly HostObjectInfo[]>();

  private objectsOf(ctx: CtxShadow | undefined): readonly HostObjectInfo[] {
    if (!ctx) return [];
    let objs = this.objectsCache.get(ctx);
    if (!objs) {
      // One context's objects through its fd, not every context ever opened.
      objs = ctx.fd !== undefined ? this.host.objects(ctx.fd, ctx.proc.p) : (this.host.contexts()[ctx.index]?.objects ?? []);
      this.objectsCache.set(ctx, objs);
    }
    return objs;
  }

  /** An object ID: mostly a live object of one of `types` in the fd's context, else anything. */
  private pickId(a: OpArgs, fd: number, types: readonly string[]): number {
    const roll = a.below(100);
    const objs = this.objectsOf(this.ctxByFd.get(fd));
    if (roll < 85) {
      const matching = objs.filter((o) => o.state === 'live' && types.includes(o.type));
      const o = a.pick(matching);
      if (o) return o.id;
    }
    if (roll < 93) {
      const o = a.pick(objs);
      if (o) return o.id;
    }
    return a.pick([0, 1, 2, 3, 0x7fffffff, 0xffffffff, a.u32()])!;
  }

  /**
   * Issues `request` on `fd` with the struct `value`: as is, mutated (a bit flip, a wrong
   * size with or without a non-zero tail, a field replaced by an edge value) or as garbage.
   * Returns the return value, the bytes the kernel saw, and the buffer as copied back.
   */
  private ioctlStruct(
    fd: number,
    request: number,
    layout: StructLayout,
    value: Record<string, number | bigint>,
    a: OpArgs,
    name: string,
  ): { r: number; sent: Uint8Array; out: Uint8Array; mode: Mode } {
    const roll = a.below(100);
    const mode: Mode = roll < 78 ? 'valid' : roll < 96 ? 'mutated' : 'garbage';
    let bytes = layout.encode(value as never);
    new DataView(bytes.buffer).setUint32(0, layout.size, true);
    if (mode === 'mutated') bytes = this.mutate(bytes, layout, a);
    else if (mode === 'garbage') {
      bytes = new Uint8Array(a.pick([layout.size, layout.minSize, 8, 64])!);
      for (let i = 0; i < bytes.length; i++) bytes[i] = a.u32() & 0xff;
      if (a.chance(60) && bytes.length >= 4) new DataView(bytes.buffer).setUint32(0, layout.size, true);
    }
    const sent = bytes.slice();
    const r = this.ret(name, this.p.ioctl(fd, request, bytes));
    return { r, sent, out: bytes, mode };
  }

  private mutate(bytes: Uint8Array, layout: StructLayout, a: OpArgs): Uint8Array {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    switch (a.below(4)) {
      case 0: {
        const bit = a.below(bytes.length * 8);
        bytes[bit >> 3]! ^= 1 << (bit & 7);
        return bytes;
      }
      case 1: {
        // The size rule: too small, exact minimum, larger with zero or non-zero tail.
        const sizes = [0, layout.minSize - 1, layout.minSize, layout.size + 8, layout.size + 8, 0xffffffff];
        const size = sizes[a.below(sizes.length)]!;
        if (size === layout.size + 8) {
          const big = new Uint8Array(layout.size + 8);
          big.set(bytes);
          if (a.chance(50)) big[layout.size + a.below(8)] = 1 + a.below(255);
          new DataView(big.buffer).setUint32(0, size, true);
          return big;
        }
        view.setUint32(0, size >>> 0, true);
        return bytes;
      }
      case 2: {
        const off = 4 * (1 + a.below(Math.max(1, (bytes.length >> 2) - 1)));
        if (off + 4 <= bytes.length) view.setUint32(off, a.pick([0, 1, 0xffffffff, 0x7fffffff, 0x80000000, a.u32()])!, true);
        return bytes;
      }
      default: {
        const off = 8 * a.below(Math.max(1, bytes.length >> 3));
        if (off + 8 <= bytes.length) view.setBigUint64(off, a.pick([U64_MAX, U64_MAX - 4095n, 1n << 63n, 1n << 52n, 0n, a.u64()])!, true);
        return bytes;
      }
    }
  }

  /** The struct as the kernel read it (size field honoured, missing tail zero). */
  private sentValue<L extends StructLayout>(layout: L, sent: Uint8Array): ReturnType<L['decode']> {
    const size = sent.length >= 4 ? new DataView(sent.buffer, sent.byteOffset).getUint32(0, true) : 0;
    const n = Math.min(size, sent.length, layout.size);
    const buf = new Uint8Array(layout.size);
    buf.set(sent.subarray(0, n));
    return layout.decode(buf) as ReturnType<L['decode']>;
  }

  private mapArena(proc: ProcShadow = this.cur): void {
    const va = proc.p.mmap(ARENA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
    proc.arena = va > 0n ? va : 0n;
  }

  private mmapAnon(a: OpArgs): void {
    const live = this.anon.filter((m) => m.live);
    if (live.length >= MAX_ANON) return;
    const pages = BigInt(1 + a.below(a.chance(20) ? 64 : 8));
    const prot = a.chance(85) ? PROT_READ | PROT_WRITE : a.pick([PROT_READ, 0, PROT_WRITE])!;
    const flags = a.chance(90) ? MAP_PRIVATE | MAP_ANONYMOUS : a.pick([MAP_SHARED | MAP_ANONYMOUS, MAP_ANONYMOUS, a.u32()])!;
    // Odd lengths (unaligned, up to 64 MiB): a mapping of gigabytes adds no coverage over one
    // of megabytes, but pinning it into every domain attached later costs seconds.
    const length = a.chance(95) ? pages * PAGE : BigInt(a.u32() % (1 << 26));
    const r = this.p.mmap(length, prot, flags, -1, 0n);
    this.counted();
    if (r < 0n) {
      this.errors++;
      if (r < -4095n) this.report('bad-return', `mmap returned ${r}`);
      return;
    }
    const m: AnonMapping = { proc: this.cur, va: r, length: ((length + PAGE - 1n) / PAGE) * PAGE, live: true };
    this.anon.push(m);
    if (prot & PROT_WRITE && m.length <= 64n * PAGE) {
      // A tag in every page so DMA data checks see distinct contents.
      for (let off = 0n; off < m.length; off += PAGE) this.p.poke(r + off, new Uint8Array([a.u32() & 0xff, 0xa5, Number(off / PAGE) & 0xff]));
    }
  }

  private munmapOne(a: OpArgs): void {
    if (a.chance(25) && this.mmio.length > 0) {
      const i = a.below(this.mmio.length);
      const m = this.mmio[i]!;
      const r = this.ret('munmap(mmio)', this.p.munmap(m.va, m.length));
      if (r === 0) this.mmio.splice(i, 1);
      return;
    }
    const live = this.anon.filter((m) => m.live);
    const m = a.pick(live);
    if (!m) return;
    const partial = a.chance(25) && m.length > PAGE;
    const off = partial ? BigInt(a.below(Number(m.length / PAGE))) * PAGE : 0n;
    const len = partial ? PAGE : m.length;
    const r = this.ret('munmap', this.p.munmap(m.va + off, len));
    // Any unmap of part of it ends the identity of its pages (a later mmap may reuse the VA).
    if (r === 0) m.live = false;
  }

  private poke(a: OpArgs): void {
    const m = a.pick(this.anon.filter((x) => x.live));
    const va = m && a.chance(90) ? m.va + BigInt(a.below(Number(m.length) - 16)) : BigInt(a.u32()) << 12n;
    const bytes = new Uint8Array(1 + a.below(16));
    for (let i = 0; i < bytes.length; i++) bytes[i] = a.u32() & 0xff;
    this.ret('poke', this.p.poke(va, bytes));
  }

  private memfd(a: OpArgs): void {
    if (this.fdCount() >= MAX_FDS) return;
    const fd = this.ret('memfd_create', this.p.memfdCreate('fuzz', BigInt(1 + a.below(16)) * PAGE));
    if (fd >= 0) this.memfds.push(fd);
  }

  /** A user VA to map: mostly a range inside a live anonymous mapping. */
  private userRange(a: OpArgs): { va: bigint; length: bigint } {
    // Cross-process misuse: another process's VA means nothing here (EFAULT, or whatever this
    // process happens to have there, which is what must then be mapped).
    const others = this.procs.length > 1 && a.chance(5) ? this.procs.filter((q) => q !== this.cur).flatMap((q) => q.anon.filter((x) => x.live)) : [];
    const m = others.length ? a.pick(others) : a.pick(this.anon.filter((x) => x.live));
    if (!m || a.chance(8)) return { va: a.pick([0n, BigInt(a.u32()) << 12n, U64_MAX - PAGE + 1n])!, length: BigInt(1 + a.below(4)) * PAGE };
    const pages = Number(m.length / PAGE);
    const first = a.below(pages);
    const n = 1 + a.below(pages - first);
    return { va: m.va + BigInt(first) * PAGE, length: BigInt(n) * PAGE };
  }

  /** An IOVA: mostly page-aligned in a small window so maps collide and DMA finds them. */
  private iova(a: OpArgs): bigint {
    const roll = a.below(100);
    if (roll < 85) return (1n << 24n) + BigInt(a.below(512)) * PAGE;
    if (roll < 92) return BigInt(a.below(1 << 20)) * PAGE;
    return a.pick([0n, U64_MAX, U64_MAX - PAGE + 1n, 1n << 63n, a.u64()])!;
  }

  private anonSourceFor(va: bigint, length: bigint): AreaSource {
    const m = this.anon.find((x) => x.live && va >= x.va && va + length <= x.va + x.length);
    return m ? { kind: 'anon', mapping: m, va } : { kind: 'opaque' };
  }

  private ioasAlloc(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const { r, out } = this.ioctlStruct(fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { flags: 0 }, a, 'IOMMU_IOAS_ALLOC');
    const ctx = this.ctxByFd.get(fd);
    if (r === 0 && ctx) {
      const id = iommu_ioas_alloc.decode(out).out_ioas_id;
      this.checkFreshId(ctx, id);
      ctx.ioas.set(id, []);
    }
  }

  private addArea(ctx: CtxShadow | undefined, ioasId: number, area: Omit<Area, 'uncertain'>): void {
    if (!ctx) return;
    let areas = ctx.ioas.get(ioasId);
    if (!areas) ctx.ioas.set(ioasId, (areas = []));
    const end = area.iova + area.length;
    // A successful map proves whatever a failed unmap left uncertain there is gone.
    for (let i = areas.length - 1; i >= 0; i--) {
      const x = areas[i]!;
      if (x.iova < end && area.iova < x.iova + x.length) {
        if (x.uncertain) areas.splice(i, 1);
        else this.report('invariant', `IOAS ${ioasId}: a new mapping [0x${area.iova.toString(16)}, +0x${area.length.toString(16)}) overlaps the live mapping [0x${x.iova.toString(16)}, +0x${x.length.toString(16)}) (EEXIST expected)`);
      }
    }
    areas.push({ ...area, uncertain: false });
  }

  private mapFlags(a: OpArgs): number {
    let f = a.chance(80) ? RW : a.pick([IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, 0])!;
    if (a.chance(60)) f |= IOMMU_IOAS_MAP_FIXED_IOVA;
    return f;
  }

  private ioasMap(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const ioasId = this.pickId(a, fd, ['IOAS']);
    const { va, length } = this.userRange(a);
    const flags = this.mapFlags(a);
    const iova = this.iova(a);
    const { r, sent, out } = this.ioctlStruct(fd, IOMMU_IOAS_MAP, iommu_ioas_map, { flags, ioas_id: ioasId, user_va: va, length, iova }, a, 'IOMMU_IOAS_MAP');
    if (r !== 0) return;
    const s = this.sentValue(iommu_ioas_map, sent);
    const got = iommu_ioas_map.decode(out);
    this.addArea(this.ctxByFd.get(fd), s.ioas_id, { iova: got.iova, length: s.length, prot: s.flags & RW, src: this.anonSourceFor(s.user_va, s.length) });
  }

  private ioasMapFile(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const ioasId = this.pickId(a, fd, ['IOAS']);
    const mfd = a.chance(90) ? (a.pick(this.memfds) ?? -1) : a.below(70) - 2;
    const start = a.chance(85) ? BigInt(a.below(8)) * PAGE : a.u64();
    const length = a.chance(90) ? BigInt(1 + a.below(8)) * PAGE : a.u64();
    const { r, sent, out } = this.ioctlStruct(
      fd,
      IOMMU_IOAS_MAP_FILE,
      iommu_ioas_map_file,
      { flags: this.mapFlags(a), ioas_id: ioasId, fd: mfd, start, length, iova: this.iova(a) },
      a,
      'IOMMU_IOAS_MAP_FILE',
    );
    if (r !== 0) return;
    const s = this.sentValue(iommu_ioas_map_file, sent);
    this.addArea(this.ctxByFd.get(fd), s.ioas_id, { iova: iommu_ioas_map_file.decode(out).iova, length: s.length, prot: s.flags & RW, src: { kind: 'opaque' } });
  }

  private ioasCopy(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const ctx = this.ctxByFd.get(fd);
    const src = this.pickId(a, fd, ['IOAS']);
    const dst = this.pickId(a, fd, ['IOAS']);
    const srcArea = a.pick(ctx?.ioas.get(src) ?? []);
    let srcIova = srcArea ? srcArea.iova : this.iova(a);
    let length = srcArea ? srcArea.length : BigInt(1 + a.below(4)) * PAGE;
    if (srcArea && a.chance(30) && srcArea.length > PAGE) {
      srcIova += PAGE;
      length -= PAGE;
    }
    const { r, sent, out } = this.ioctlStruct(
      fd,
      IOMMU_IOAS_COPY,
      iommu_ioas_copy,
      { flags: this.mapFlags(a), dst_ioas_id: dst, src_ioas_id: src, length, dst_iova: this.iova(a), src_iova: srcIova },
      a,
      'IOMMU_IOAS_COPY',
    );
    if (r !== 0 || !ctx) return;
    const s = this.sentValue(iommu_ioas_copy, sent);
    const from = (ctx.ioas.get(s.src_ioas_id) ?? []).find((x) => !x.uncertain && s.src_iova >= x.iova && s.src_iova + s.length <= x.iova + x.length);
    const source: AreaSource = from && from.src.kind === 'anon' ? { kind: 'anon', mapping: from.src.mapping, va: from.src.va + (s.src_iova - from.iova) } : { kind: 'opaque' };
    this.addArea(ctx, s.dst_ioas_id, { iova: iommu_ioas_copy.decode(out).dst_iova, length: s.length, prot: s.flags & RW, src: source });
  }

  private ioasUnmap(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const ctx = this.ctxByFd.get(fd);
    const ioasId = this.pickId(a, fd, ['IOAS']);
    const area = a.pick(ctx?.ioas.get(ioasId) ?? []);
    const roll = a.below(100);
    let iova: bigint;
    let length: bigint;
    if (roll < 10) [iova, length] = [0n, U64_MAX];
    else if (area && roll < 75) [iova, length] = [area.iova, area.length];
    else if (area && roll < 88) [iova, length] = [area.iova, area.length + BigInt(a.below(4)) * PAGE];
    else [iova, length] = [this.iova(a), BigInt(a.below(8)) * PAGE];
    const { r, sent, out } = this.ioctlStruct(fd, IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { ioas_id: ioasId, iova, length }, a, 'IOMMU_IOAS_UNMAP');
    if (!ctx) return;
    const s = this.sentValue(iommu_ioas_unmap, sent);
    const areas = ctx.ioas.get(s.ioas_id);
    if (!areas) return;
    const all = s.iova === 0n && s.length === U64_MAX;
    const end = s.iova + s.length;
    const hit = (x: Area): boolean => all || (x.iova < end && s.iova < x.iova + x.length);
    if (r === 0) {
      const removed = areas.filter((x) => all || (x.iova >= s.iova && x.iova + x.length <= end));
      const certain = areas.every((x) => !x.uncertain);
      const unmapped = iommu_ioas_unmap.decode(out).length;
      const expected = removed.reduce((t, x) => t + x.length, 0n);
      if (certain && unmapped !== expected) {
        this.report('invariant', `IOMMU_IOAS_UNMAP of IOAS ${s.ioas_id} [0x${s.iova.toString(16)}, +0x${s.length.toString(16)}) reported 0x${unmapped.toString(16)} bytes unmapped; the mappings fully inside total 0x${expected.toString(16)}`);
      }
      ctx.ioas.set(
        s.ioas_id,
        areas.filter((x) => !removed.includes(x)),
      );
    } else {
      for (const x of areas) if (hit(x)) x.uncertain = true;
    }
  }

  private writeRanges(a: OpArgs, n: number): void {
    const bytes = new Uint8Array(n * 16);
    for (let i = 0; i < n; i++) {
      const start = a.chance(80) ? BigInt(a.below(1 << 16)) * PAGE : a.u64();
      const last = a.chance(80) ? start + BigInt(1 + a.below(1 << 12)) * PAGE - 1n : a.u64();
      iommu_iova_range.encode({ start, last: last & U64_MAX }, bytes, i * 16);
    }
    this.p.poke(this.arena, bytes);
  }

  private ioasIovaRanges(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const cap = a.below(6);
    this.ioctlStruct(
      fd,
      IOMMU_IOAS_IOVA_RANGES,
      iommu_ioas_iova_ranges,
      { ioas_id: this.pickId(a, fd, ['IOAS']), num_iovas: cap, allowed_iovas: a.chance(90) ? this.arena : a.u64() },
      a,
      'IOMMU_IOAS_IOVA_RANGES',
    );
  }

  private ioasAllowIovas(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const n = a.below(4);
    this.writeRanges(a, n);
    this.ioctlStruct(
      fd,
      IOMMU_IOAS_ALLOW_IOVAS,
      iommu_ioas_allow_iovas,
      { ioas_id: this.pickId(a, fd, ['IOAS']), num_iovas: n, allowed_iovas: a.chance(90) ? this.arena : a.u64() },
      a,
      'IOMMU_IOAS_ALLOW_IOVAS',
    );
  }

  private option(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const huge = a.chance(70);
    this.ioctlStruct(
      fd,
      IOMMU_OPTION,
      iommu_option,
      { option_id: huge ? 1 : 0, op: a.below(2), object_id: huge ? this.pickId(a, fd, ['IOAS']) : 0, val64: BigInt(a.below(3)) },
      a,
      'IOMMU_OPTION',
    );
  }

  private hwptAlloc(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const devId = this.pickId(a, fd, ['DEVICE']);
    const nested = a.chance(35);
    const ptId = this.pickId(a, fd, nested ? ['HWPT_PAGING', 'VIOMMU'] : ['IOAS']);
    let flags = 0;
    if (!nested) {
      if (a.chance(40)) flags |= IOMMU_HWPT_ALLOC_NEST_PARENT;
      if (a.chance(25)) flags |= IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
    }
    if (a.chance(15)) flags |= IOMMU_HWPT_ALLOC_PASID;
    let faultId = 0;
    if (a.chance(15)) {
      flags |= IOMMU_HWPT_FAULT_ID_VALID;
      faultId = this.pickId(a, fd, ['FAULT']);
    }
    const data = iommu_hwpt_selftest.encode({ iotlb: a.chance(80) ? a.below(0x100) : a.u32() });
    if (nested) this.p.poke(this.arena, data);
    this.ioctlStruct(
      fd,
      IOMMU_HWPT_ALLOC,
      iommu_hwpt_alloc,
      {
        flags,
        dev_id: devId,
        pt_id: ptId,
        data_type: nested ? IOMMU_HWPT_DATA_SELFTEST : IOMMU_HWPT_DATA_NONE,
        data_len: nested ? iommu_hwpt_selftest.size : 0,
        data_uptr: nested ? this.arena : 0n,
        fault_id: faultId,
      },
      a,
      'IOMMU_HWPT_ALLOC',
    );
  }

  private hwptInvalidate(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const onViommu = a.chance(40);
    const id = this.pickId(a, fd, onViommu ? ['VIOMMU'] : ['HWPT_NESTED']);
    const n = a.below(4);
    const layout = onViommu ? iommu_viommu_invalidate_selftest : iommu_hwpt_invalidate_selftest;
    const entries = new Uint8Array(Math.max(1, n) * layout.size);
    for (let i = 0; i < n; i++) {
      if (onViommu) iommu_viommu_invalidate_selftest.encode({ flags: a.chance(90) ? 0 : a.u32(), vdev_id: a.below(8), cache_id: a.below(5) }, entries, i * layout.size);
      else iommu_hwpt_invalidate_selftest.encode({ flags: a.chance(90) ? a.below(2) : a.u32(), iotlb_id: a.below(5) }, entries, i * layout.size);
    }
    this.p.poke(this.arena, entries);
    this.ioctlStruct(
      fd,
      IOMMU_HWPT_INVALIDATE,
      iommu_hwpt_invalidate,
      {
        hwpt_id: id,
        data_uptr: a.chance(95) ? this.arena : 0n,
        data_type: onViommu ? IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST : IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
        entry_len: a.chance(90) ? layout.size : a.below(64),
        entry_num: n,
      },
      a,
      'IOMMU_HWPT_INVALIDATE',
    );
  }

  private setDirty(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    this.ioctlStruct(
      fd,
      IOMMU_HWPT_SET_DIRTY_TRACKING,
      iommu_hwpt_set_dirty_tracking,
      { flags: a.below(2), hwpt_id: this.pickId(a, fd, ['HWPT_PAGING']) },
      a,
      'IOMMU_HWPT_SET_DIRTY_TRACKING',
    );
  }

  private getDirty(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const pageSize = a.chance(85) ? PAGE : BigInt(a.pick([0, 512, 2048, 8192, 1 << 21])!);
    this.ioctlStruct(
      fd,
      IOMMU_HWPT_GET_DIRTY_BITMAP,
      iommu_hwpt_get_dirty_bitmap,
      {
        hwpt_id: this.pickId(a, fd, ['HWPT_PAGING']),
        flags: a.below(2),
        iova: this.iova(a),
        length: BigInt(1 + a.below(64)) * PAGE,
        page_size: pageSize,
        data: a.chance(95) ? this.arena : a.u64(),
      },
      a,
      'IOMMU_HWPT_GET_DIRTY_BITMAP',
    );
  }

  private getHwInfo(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const typed = a.chance(30);
    this.ioctlStruct(
      fd,
      IOMMU_GET_HW_INFO,
      iommu_hw_info,
      {
        flags: typed ? IOMMU_HW_INFO_FLAG_INPUT_TYPE : 0,
        dev_id: this.pickId(a, fd, ['DEVICE']),
        data_len: a.below(48),
        data_uptr: a.chance(95) ? this.arena : a.u64(),
        in_data_type: typed ? a.pick([IOMMU_HW_INFO_TYPE_SELFTEST, 0, 1, 2, a.u32()])! : 0,
      },
      a,
      'IOMMU_GET_HW_INFO',
    );
  }

  private viommuAlloc(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const withData = a.chance(80);
    if (withData) this.p.poke(this.arena, iommu_viommu_selftest.encode({ in_data: a.u32() }));
    const { r, sent, out: outStruct } = this.ioctlStruct(
      fd,
      IOMMU_VIOMMU_ALLOC,
      iommu_viommu_alloc,
      {
        flags: 0,
        type: a.chance(90) ? IOMMU_VIOMMU_TYPE_SELFTEST : a.below(4),
        dev_id: this.pickId(a, fd, ['DEVICE']),
        hwpt_id: this.pickId(a, fd, ['HWPT_PAGING']),
        data_len: withData ? iommu_viommu_selftest.size : 0,
        data_uptr: withData ? this.arena : 0n,
      },
      a,
      'IOMMU_VIOMMU_ALLOC',
    );
    const ctx = this.ctxByFd.get(fd);
    if (r !== 0 || !ctx) return;
    const s = this.sentValue(iommu_viommu_alloc, sent);
    const out = this.p.peek(s.data_uptr, iommu_viommu_selftest.size);
    const id = iommu_viommu_alloc.decode(padTo(outStruct, iommu_viommu_alloc.size)).out_viommu_id;
    if (typeof out !== 'number' && s.data_len >= iommu_viommu_selftest.size) {
      const d = iommu_viommu_selftest.decode(out);
      if (d.out_mmap_length > 0n) ctx.regions.push({ owner: id, offset: d.out_mmap_offset, length: d.out_mmap_length });
    }
  }

  private vdeviceAlloc(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const { r, sent, out } = this.ioctlStruct(
      fd,
      IOMMU_VDEVICE_ALLOC,
      iommu_vdevice_alloc,
      { viommu_id: this.pickId(a, fd, ['VIOMMU']), dev_id: this.pickId(a, fd, ['DEVICE']), virt_id: a.chance(90) ? BigInt(a.below(8)) : a.u64() },
      a,
      'IOMMU_VDEVICE_ALLOC',
    );
    const ctx = this.ctxByFd.get(fd);
    if (r === 0 && ctx) ctx.vdeviceOf.set(iommu_vdevice_alloc.decode(padTo(out, iommu_vdevice_alloc.size)).out_vdevice_id, this.sentValue(iommu_vdevice_alloc, sent).dev_id);
  }

  private veventqAlloc(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const { r, out } = this.ioctlStruct(
      fd,
      IOMMU_VEVENTQ_ALLOC,
      iommu_veventq_alloc,
      { flags: 0, viommu_id: this.pickId(a, fd, ['VIOMMU']), type: a.chance(85) ? IOMMU_VEVENTQ_TYPE_SELFTEST : a.below(4), veventq_depth: a.below(8) },
      a,
      'IOMMU_VEVENTQ_ALLOC',
    );
    const ctx = this.ctxByFd.get(fd);
    if (r === 0 && ctx) {
      const v = iommu_veventq_alloc.decode(out);
      this.events.push({ fd: v.out_veventq_fd, ctx, objId: v.out_veventq_id, kind: 'veventq' });
    }
  }

  private hwQueueAlloc(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const ctx = this.ctxByFd.get(fd);
    const areas = [...(ctx?.ioas.values() ?? [])].flat();
    const area = a.pick(areas);
    const base = area && a.chance(85) ? area.iova + BigInt(a.below(Number(area.length / PAGE))) * PAGE : this.iova(a);
    this.ioctlStruct(
      fd,
      IOMMU_HW_QUEUE_ALLOC,
      iommu_hw_queue_alloc,
      {
        flags: 0,
        viommu_id: this.pickId(a, fd, ['VIOMMU']),
        type: a.chance(90) ? IOMMU_HW_QUEUE_TYPE_SELFTEST : a.below(3),
        index: a.below(4),
        nesting_parent_iova: base,
        length: a.chance(85) ? PAGE : BigInt(a.below(3 * 4096)),
      },
      a,
      'IOMMU_HW_QUEUE_ALLOC',
    );
  }

  private faultAlloc(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const { r, out } = this.ioctlStruct(fd, IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, { flags: 0 }, a, 'IOMMU_FAULT_QUEUE_ALLOC');
    const ctx = this.ctxByFd.get(fd);
    if (r === 0 && ctx) {
      const v = iommu_fault_alloc.decode(out);
      this.events.push({ fd: v.out_fault_fd, ctx, objId: v.out_fault_id, kind: 'fault' });
    }
  }

  private destroy(a: OpArgs): void {
    const fd = this.iommufdFd(a);
    const objs = this.objectsOf(this.ctxByFd.get(fd));
    const o = a.chance(90) ? a.pick(objs) : undefined;
    const id = o ? o.id : a.pick([0, 0x7fffffff, a.u32()])!;
    const { r, sent } = this.ioctlStruct(fd, IOMMU_DESTROY, iommu_destroy, { id }, a, 'IOMMU_DESTROY');
    const ctx = this.ctxByFd.get(fd);
    if (r === 0 && ctx) ctx.ioas.delete(this.sentValue(iommu_destroy, sent).id);
  }

  private vfioOpen(a: OpArgs): void {
    if (this.fdCount() >= MAX_FDS) return;
    const device = a.below(this.host.vfioDevices.length + 1);
    const path = this.host.vfioDevices[device] ?? '/dev/vfio/devices/vfio63';
    const fd = this.ret(`open(${path})`, this.p.open(path));
    if (fd >= 0) this.vfio.push({ fd, device, ctx: undefined, devId: undefined, attached: new Map() });
  }

  private vfioFd(a: OpArgs): VfioShadow | undefined {
    return a.pick(this.vfio);
  }

  private vfioBind(a: OpArgs): void {
    const v = this.vfioFd(a);
    if (!v) return;
    const iommufd = this.iommufdFd(a);
    const { r, sent, out } = this.ioctlStruct(v.fd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: vfio_device_bind_iommufd.size, flags: 0, iommufd }, a, 'VFIO_DEVICE_BIND_IOMMUFD');
    if (r === 0) {
      // The fd the kernel saw: a mutated struct may name another (valid) iommufd.
      v.ctx = this.ctxByFd.get(this.sentValue(vfio_device_bind_iommufd, sent).iommufd);
      v.devId = vfio_device_bind_iommufd.decode(padTo(out, vfio_device_bind_iommufd.size)).out_devid;
      if (v.ctx) this.checkFreshId(v.ctx, v.devId);
    }
  }

  private vfioAttach(a: OpArgs): void {
    const v = this.vfioFd(a);
    if (!v) return;
    const pasid = a.chance(20) ? a.below(4) : undefined;
    const pt = v.ctx?.fd !== undefined ? this.pickId(a, v.ctx.fd, ['IOAS', 'HWPT_PAGING', 'HWPT_NESTED']) : a.below(8);
    const { r, sent, out } = this.ioctlStruct(
      v.fd,
      VFIO_DEVICE_ATTACH_IOMMUFD_PT,
      vfio_device_attach_iommufd_pt,
      { argsz: vfio_device_attach_iommufd_pt.size, flags: pasid === undefined ? 0 : VFIO_DEVICE_ATTACH_PASID, pt_id: pt, pasid: pasid ?? 0 },
      a,
      'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
    );
    if (r !== 0) return;
    const s = vfio_device_attach_iommufd_pt.decode(sent.length >= 16 ? sent : padTo(sent, 16));
    v.attached.set(s.flags & VFIO_DEVICE_ATTACH_PASID ? s.pasid : undefined, vfio_device_attach_iommufd_pt.decode(padTo(out, 16)).pt_id);
  }

  private vfioDetach(a: OpArgs): void {
    const v = this.vfioFd(a);
    if (!v) return;
    const pasid = a.chance(20) ? a.below(4) : undefined;
    const { r, sent } = this.ioctlStruct(
      v.fd,
      VFIO_DEVICE_DETACH_IOMMUFD_PT,
      vfio_device_detach_iommufd_pt,
      { argsz: vfio_device_detach_iommufd_pt.size, flags: pasid === undefined ? 0 : VFIO_DEVICE_DETACH_PASID, pasid: pasid ?? 0 },
      a,
      'VFIO_DEVICE_DETACH_IOMMUFD_PT',
    );
    if (r !== 0) return;
    const s = vfio_device_detach_iommufd_pt.decode(padTo(sent, 12));
    v.attached.delete(s.flags & VFIO_DEVICE_DETACH_PASID ? s.pasid : undefined);
  }

  private readEvent(a: OpArgs): void {
    const e = a.pick(this.events);
    const fd = e && a.chance(90) ? e.fd : a.below(64);
    this.ret('read', this.p.read(fd, new Uint8Array(a.below(128))));
  }

  private writeFault(a: OpArgs): void {
    const e = a.pick(this.events.filter((x) => x.kind === 'fault'));
    const fd = e && a.chance(90) ? e.fd : a.below(64);
    const buf = new Uint8Array(a.pick([0, 8, 16, 7, 64])!);
    for (let i = 0; i < buf.length; i++) buf[i] = a.u32() & 0xff;
    this.ret('write', this.p.write(fd, buf));
  }

  private mmapRegion(a: OpArgs): void {
    const ctx = a.pick(this.ctxs.filter((c) => c.fd !== undefined && c.proc === this.cur));
    if (!ctx || this.mmio.length >= 16) return;
    const region = a.pick(ctx.regions);
    const offset = region && a.chance(85) ? region.offset : BigInt(a.below(16)) * PAGE;
    const length = region && a.chance(85) ? region.length : BigInt(1 + a.below(3)) * PAGE;
    const va = this.p.mmap(length, PROT_READ | PROT_WRITE, a.chance(90) ? MAP_SHARED : MAP_PRIVATE, ctx.fd!, offset);
    this.counted();
    if (va < 0n) {
      this.errors++;
      if (va < -4095n) this.report('bad-return', `mmap(iommufd) returned ${va}`);
      return;
    }
    // The newest registration: a destroyed vIOMMU's offsets are handed out again.
    const owner = ctx.regions.findLast((x) => offset >= x.offset && offset < x.offset + x.length)?.owner ?? -1;
    this.mmio.push({ va, length, ctx, owner });
  }

  private garbageIoctl(a: OpArgs): void {
    const fds = this.p.fds().map((f) => f.fd);
    const fd = a.pick(fds) ?? 0;
    let request = a.chance(70) ? 0x3b00 | (0x70 + a.below(0x40)) : a.u32();
    // Real commands get garbage through their own operations (with the shadow updated);
    // here only numbers that change no state: unknown ones, VFIO info/version queries.
    if (STATEFUL_REQUESTS.has(request & 0xffff) || ((request & 0xffff) >= 0x3b80 && (request & 0xffff) <= 0x3ba0)) request = 0x3b95;
    const buf = new Uint8Array(a.pick([0, 4, 16, 64, 256])!);
    for (let i = 0; i < buf.length; i++) buf[i] = a.u32() & 0xff;
    if (buf.length >= 4 && a.chance(50)) new DataView(buf.buffer).setUint32(0, buf.length, true);
    // Only ioctls that cannot create state the shadow does not see: bit 0x80 set and not a
    // real command are unknown → must fail; real ones with garbage are fuzzed by their op.
    const r = this.ret(`ioctl(0x${request.toString(16)})`, this.p.ioctl(fd, request, buf.length ? buf : a.u64()));
    if (r === 0) this.unknownState = true;
  }

  /** Set when a garbage call succeeded: the shadow may have missed a state change. */
  private unknownState = false;

  // ---------------------------------------------------------------------------------------
  // DMA against the shadow

  /** The IOAS that translates for page table `ptId` of a context (following refs). */
  private ioasOf(objs: readonly HostObjectInfo[], ptId: number): number | undefined {
    const byId = new Map(objs.map((o) => [o.id, o]));
    const seen = new Set<number>();
    const queue = [ptId];
    while (queue.length) {
      const id = queue.shift()!;
      if (seen.has(id)) continue;
      seen.add(id);
      const o = byId.get(id);
      if (!o) continue;
      if (o.type === 'IOAS') return id;
      if (o.type === 'HWPT_PAGING' || o.type === 'HWPT_NESTED' || o.type === 'VIOMMU') queue.push(...o.refs);
    }
    return undefined;
  }

  private dma(a: OpArgs): void {
    const v = a.pick(this.vfio);
    const device = v ? v.device : a.below(this.host.vfioDevices.length);
    const path = this.host.vfioDevices[device];
    if (!path) return;
    // Every open of the device shares one attachment state; the bound one holds it.
    const bound = this.procs.flatMap((q) => q.vfio).find((x) => x.device === device && x.devId !== undefined);
    const keys = bound ? [...bound.attached.keys()] : [];
    const pasid = keys.length && a.chance(85) ? keys[a.below(keys.length)] : a.chance(50) ? undefined : a.below(4);
    // VFIO tracks a PASID-0 attach apart from the RID's, but PASID 0 is IOMMU_NO_PASID: the
    // core attaches the RID itself, so requests without a PASID translate through it. A
    // request tagged PASID 0 is the hardware's business (VT-d: RID_PASID; SMMU: substream 0
    // may be refused), so it may fault but never reach what the RID's IOAS does not map.
    const rid = pasid === undefined || pasid === 0;
    const ptId = rid ? (bound?.attached.get(undefined) ?? bound?.attached.get(0)) : bound?.attached.get(pasid);
    const mayFault = pasid === 0;
    let areas: Area[] = [];
    if (bound?.ctx && ptId !== undefined) {
      const ioasId = this.ioasOf(this.objectsOf(bound.ctx), ptId);
      areas = ioasId === undefined ? [] : (bound.ctx.ioas.get(ioasId) ?? []);
      if (ioasId === undefined && !this.unknownState) this.report('invariant', `device ${path} is attached to pt ${ptId}, which leads to no IOAS`);
    }
    const area = a.pick(areas);
    let iova: bigint;
    let length: number;
    if (area && a.chance(80)) {
      iova = area.iova + BigInt(a.below(Number(area.length)));
      length = 1 + a.below(Math.min(256, Number(area.iova + area.length - iova)));
    } else {
      iova = (this.iova(a) + BigInt(a.below(4096))) & U64_MAX;
      length = 1 + a.below(64);
      // A bus transaction cannot wrap past 2^64 (host.dma rejects that as API misuse).
      if (iova + BigInt(length) > U64_MAX + 1n) iova = U64_MAX + 1n - BigInt(length);
    }
    const write = a.chance(50);
    const data = new Uint8Array(length);
    for (let i = 0; i < length; i++) data[i] = a.u32() & 0xff;
    this.counted();
    const r = this.host.dma(path, { iova, length, write, data: write ? data : undefined, pasid });
    if (this.unknownState) return;
    const covering = (x: bigint): Area | undefined => {
      for (let i = areas.length - 1; i >= 0; i--) {
        const ar = areas[i]!;
        if (x >= ar.iova && x < ar.iova + ar.length) return ar;
      }
      return undefined;
    };
    const first = covering(iova);
    const last = covering(iova + BigInt(length) - 1n);
    const where = `DMA ${write ? 'write' : 'read'} by ${path}${pasid === undefined ? '' : ` pasid ${pasid}`} at iova 0x${iova.toString(16)} len ${length}`;
    if (ptId === undefined) {
      if (r.ok) this.report('invariant', `${where} succeeded, but the device is attached to nothing at that PASID (must be blocked)`);
      return;
    }
    const sameArea = first !== undefined && first === last;
    if (!sameArea) {
      // Crosses into or lies in IOVA the context did not map: must fault somewhere unless
      // every byte is under some (possibly uncertain) area.
      let allCovered = true;
      for (let x = iova; x < iova + BigInt(length); x += 1n) {
        if (!covering(x)) {
          allCovered = false;
          break;
        }
      }
      if (r.ok && !allCovered) this.report('invariant', `${where} succeeded, but the context mapped nothing at part of that range (isolation broken)`);
      return;
    }
    const need = write ? IOMMU_IOAS_MAP_WRITEABLE : IOMMU_IOAS_MAP_READABLE;
    if (!first.uncertain && !(first.prot & need)) {
      // Only writes are checked: stage-1 formats (LPAE, VT-d first level) have no
      // write-only permission, so a WRITEABLE-only mapping is readable there, as in Linux.
      if (r.ok && write) this.report('invariant', `${where} succeeded on a mapping without WRITEABLE`);
      return;
    }
    if (!first.uncertain && !r.ok && !mayFault) {
      this.report('invariant', `${where} faulted (${r.fault.kind}) but the context mapped it (IOAS mapping at 0x${first.iova.toString(16)}, prot ${first.prot})`);
      return;
    }
    if (r.ok && first.src.kind === 'anon' && first.src.mapping.live) {
      const va = first.src.va + (iova - first.iova);
      // Read back in the process that mapped it: another process's memory at the same VA
      // must not be what the device reached.
      const mem = first.src.mapping.proc.p.peek(va, length);
      if (typeof mem === 'number') return;
      const got = write ? mem : (r.data ?? new Uint8Array(0));
      const want = write ? data : mem;
      if (!equalBytes(got, want)) {
        this.report('invariant', `${where} ${write ? 'did not land in' : 'did not read'} the process memory mapped there (VA 0x${va.toString(16)}): the device reached other physical memory`);
      }
    }
  }

  // ---------------------------------------------------------------------------------------
  // Teardown

  private closeOne(a: OpArgs): void {
    const fds = this.p.fds().map((f) => f.fd);
    const fd = a.chance(95) ? a.pick(fds) : a.below(80) - 1;
    if (fd === undefined) return;
    const r = this.ret('close', this.p.close(fd));
    if (r === 0) this.forgetFd(fd);
  }

  private forgetFd(fd: number, proc: ProcShadow = this.cur): void {
    const ctx = proc.ctxByFd.get(fd);
    if (ctx) {
      ctx.fd = undefined;
      proc.ctxByFd.delete(fd);
    }
    const vi = proc.vfio.findIndex((x) => x.fd === fd);
    if (vi >= 0) proc.vfio.splice(vi, 1);
    const ei = proc.events.findIndex((x) => x.fd === fd);
    if (ei >= 0) proc.events.splice(ei, 1);
    const mi = proc.memfds.indexOf(fd);
    if (mi >= 0) proc.memfds.splice(mi, 1);
  }

  private closeAll(): void {
    for (const proc of this.procs) {
      for (const { fd } of proc.p.fds()) {
        this.ret('close', proc.p.close(fd));
        this.forgetFd(fd, proc);
      }
      for (const m of proc.p.mappings()) this.ret('munmap', proc.p.munmap(m.start, m.end - m.start));
      for (const m of proc.anon) m.live = false;
      proc.anon.length = 0;
      proc.mmio.length = 0;
    }
    this.checkBaseline();
    for (const proc of this.procs) this.mapArena(proc);
  }

  private checkBaseline(): void {
    const left = this.host.contexts().flatMap((c, i) => (c.released && c.objects.length === 0 ? [] : [`context ${i}: ${c.released ? 'released' : 'NOT released'}, objects [${c.objects.map((o) => `${o.id}:${o.type}`).join(' ')}]`]));
    if (left.length) this.report('invariant', `after closing every fd: ${left.join('; ')}`);
    if (this.host.pinnedPages !== 0) this.report('invariant', `after closing every fd ${this.host.pinnedPages} pages are still pinned`);
    for (const { p } of this.procs) {
      if (p.lockedPages !== 0) this.report('invariant', `after closing every fd ${p.lockedPages} pages are still charged to RLIMIT_MEMLOCK of pid ${p.pid}`);
    }
    if (this.host.memory.pagesInUse !== this.baseline.pages) {
      this.report('invariant', `after closing every fd and mapping ${this.host.memory.pagesInUse} RAM pages are in use, baseline ${this.baseline.pages}`);
    }
    const machine = machinePagesOf(this.host) - spareOf(this.host);
    if (machine !== this.baseline.machinePages) {
      this.report('invariant', `after closing everything the drivers hold ${machine} machine pages, baseline ${this.baseline.machinePages} (measured after binding and attaching every device once)`);
    }
    for (const c of this.ctxs) c.ioas.clear();
    this.unknownState = false;
  }

  // ---------------------------------------------------------------------------------------
  // Invariants after every call

  private checkFreshId(ctx: CtxShadow, id: number): void {
    const before = this.previous.get(ctx.index);
    if (before?.has(id)) this.report('invariant', `context ${ctx.index}: new object ID ${id} was already live (${before.get(id)}) before the call`);
  }

  private checkInvariants(): void {
    const contexts = this.host.contexts();
    const next = new Map<number, Map<number, string>>();
    let totalAreaPages = 0n;
    for (let i = 0; i < contexts.length; i++) {
      const c = contexts[i]!;
      const ctx = this.ctxs[i - this.ctxBase];
      if (c.released) {
        if (c.objects.length) this.report('invariant', `context ${i} is released but still has objects`);
        if (ctx) ctx.ioas.clear();
        continue;
      }
      const ids = new Map<number, string>();
      next.set(i, ids);
      const before = this.previous.get(i);
      // One pass indexes the objects and counts who pins whom; a second checks each live one.
      const byId = new Map<number, HostObjectInfo>();
      const incoming = new Map<number, number>();
      for (const o of c.objects) {
        if (o.id <= 0 || o.id > 0x7fffffff) this.report('invariant', `context ${i}: object ID ${o.id} outside [1, 0x7fffffff]`);
        if (ids.has(o.id)) this.report('invariant', `context ${i}: object ID ${o.id} listed twice`);
        ids.set(o.id, o.type);
        byId.set(o.id, o);
        const prevType = before?.get(o.id);
        if (prevType !== undefined && prevType !== o.type && o.state === 'live') {
          this.report('invariant', `context ${i}: ID ${o.id} was a ${prevType} and is now a ${o.type} within one call (ID reused while live)`);
        }
        if (o.state === 'live') for (const r of o.refs) incoming.set(r, (incoming.get(r) ?? 0) + 1);
      }
      for (const o of c.objects) {
        if (o.state !== 'live') continue;
        for (const r of o.refs) {
          if (byId.get(r)?.state !== 'live') this.report('invariant', `context ${i}: ${o.type} ${o.id} pins ID ${r}, which is not a live object`);
        }
        if (this.unknownState) continue;
        const extra = this.extraUsers(ctx, o, c.objects);
        const expected = 1 + (incoming.get(o.id) ?? 0) + extra;
        if (o.users !== expected) {
          this.report('invariant', `context ${i}: ${o.type} ${o.id} has users=${o.users}, expected ${expected} (1 table + ${incoming.get(o.id) ?? 0} pinning objects + ${extra} fds/mmaps/bindings)`);
        }
      }
      if (ctx) {
        for (const [ioasId, areas] of ctx.ioas) {
          if (ids.get(ioasId) !== 'IOAS') {
            ctx.ioas.delete(ioasId);
            continue;
          }
          for (const ar of areas) totalAreaPages += (ar.length + PAGE - 1n) / PAGE;
        }
      }
    }
    this.previous = next;
    if (this.host.platform !== 'mock') {
      const bound = this.boundDevices();
      for (const m of hardwareTableViolations(this.host, (i) => this.attachmentOf(bound, i))) this.report('invariant', m);
    }
    const pinned = BigInt(this.host.pinnedPages);
    if (!this.unknownState && pinned > totalAreaPages) {
      this.report('invariant', `${pinned} pages are pinned but the live IOAS mappings cover only ${totalAreaPages} pages (a pin outlived its area)`);
    }
  }

  /** The bound VFIO open of each device (every open shares one attachment state; the bound one holds it). */
  private boundDevices(): Map<number, VfioShadow> {
    const bound = new Map<number, VfioShadow>();
    for (const q of this.procs) for (const v of q.vfio) if (v.devId !== undefined) bound.set(v.device, v);
    return bound;
  }

  /** Device `index`'s attachments as the shadow knows them (undefined after an unseen state change). */
  private attachmentOf(bound: ReadonlyMap<number, VfioShadow>, index: number): DeviceAttachment | undefined {
    if (this.unknownState) return undefined;
    const attached = bound.get(index)?.attached;
    if (!attached?.size) return NOTHING_ATTACHED;
    const keys = [...attached.keys()];
    return { rid: keys.includes(undefined) || keys.includes(0), pasids: keys.filter((k): k is number => k !== undefined && k !== 0) };
  }

  /** users references held by things other than objects: fds, mmaps, the VFIO binding. */
  private extraUsers(ctx: CtxShadow | undefined, o: HostObjectInfo, objects: readonly HostObjectInfo[]): number {
    if (!ctx) return 0;
    switch (o.type) {
      case 'FAULT':
      case 'VEVENTQ':
        return ctx.proc.events.some((e) => e.ctx === ctx && e.objId === o.id) ? 1 : 0;
      case 'VIOMMU':
        return ctx.proc.mmio.filter((m) => m.ctx === ctx && m.owner === o.id).length;
      case 'ACCESS':
        // The owner's reference (the HW_QUEUE for its internal access): never destroyable.
        return 1;
      case 'DEVICE':
        // The VFIO binding's reference, plus one per attachment (the core pairs each HWPT
        // pin of the device with a users reference on the device), plus its vDEVICE's: the
        // lookup reference (users + wait_cnt) the vDEVICE keeps until it is destroyed.
        return 1 + o.refs.length + objects.filter((v) => v.type === 'VDEVICE' && v.state === 'live' && ctx.vdeviceOf.get(v.id) === o.id).length;
      default:
        return 0;
    }
  }
}

/**
 * Binds every device and attaches its RID and a PASID once, then closes everything, so the
 * tables a driver builds once and keeps (context tables, level-2 stream tables) exist before
 * the baseline is measured.
 */
function warmUp(host: Host): void {
  const p = host.process;
  const iommufd = p.open('/dev/iommu');
  if (iommufd < 0) return;
  const alloc = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  if (p.ioctl(iommufd, IOMMU_IOAS_ALLOC, alloc) === 0) {
    const ioasId = iommu_ioas_alloc.decode(alloc).out_ioas_id;
    for (const path of host.vfioDevices) {
      const fd = p.open(path);
      if (fd < 0) continue;
      if (p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd.encode({ argsz: vfio_device_bind_iommufd.size, iommufd })) === 0) {
        p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt.encode({ argsz: vfio_device_attach_iommufd_pt.size, pt_id: ioasId }));
        p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt.encode({ argsz: vfio_device_attach_iommufd_pt.size, flags: VFIO_DEVICE_ATTACH_PASID, pt_id: ioasId, pasid: 1 }));
      }
      p.close(fd);
    }
  }
  for (const { fd } of p.fds()) p.close(fd);
}

function padTo(b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return b;
  const out = new Uint8Array(n);
  out.set(b);
  return out;
}

function equalBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

const NOTHING_ATTACHED: DeviceAttachment = { rid: false, pasids: [] };

/** Pages the machine's page allocator has handed out (RAM for processes and drivers). */
function machinePagesOf(host: Host): number {
  const m = host.memory as unknown as { machine?: { allocatedPages?: number } };
  return m.machine?.allocatedPages ?? 0;
}

/** Pages the host RAM layer holds (handed out or on its own free list), so the rest are the drivers'. */
function spareOf(host: Host): number {
  const m = host.memory as unknown as { spare?: unknown[] };
  return Array.isArray(m.spare) ? m.spare.length + host.memory.pagesInUse : 0;
}
