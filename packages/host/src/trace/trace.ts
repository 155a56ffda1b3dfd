/**
 * Chrome / Perfetto trace-event JSON of a run. Timestamps come from a deterministic clock (a
 * counter advanced once per event), so the same run always writes the same file and a trace
 * can be replayed and compared event by event. Slices nest as the work does: an ioctl holds
 * the driver ops the core called, which hold the commands the IOMMU consumed; a DMA holds the
 * table walks its TLB misses caused; faults are instant events.
 */
import type { DriverOpObserver } from '@iommufd/core';
import type { HardwareObserver } from '@iommufd/hw-model';
import * as U from '@iommufd/uapi';
import type { Host } from '../host.js';
import { hex } from '../hex.js';
import type { HostObjectInfo } from '../platform.js';
import type { HostProcess } from '../process.js';
import { commandQueueConsumer } from '../inspect/hardware.js';
import { ioctlLayout, ioctlName } from '../scenario/run.js';
import { observationPointsOf } from '../platforms/observation.js';

/** One trace event (the Trace Event Format's fields that we use). */
export interface TraceEvent {
  /** What happened: a syscall or ioctl name, `DMA read`, `+IOAS 1`, a counter name. */
  readonly name: string;
  /**
   * Category: `syscall`, `ioctl`, `dma`, `object`, `hw` (counters), `driver` (driver ops),
   * `command` (commands / descriptors consumed), `walk`, `fault`, `__metadata`.
   */
  readonly cat: string;
  /** `X` complete event, `i` instant, `C` counter, `M` metadata. */
  readonly ph: 'X' | 'i' | 'C' | 'M';
  /** Deterministic clock ticks (shown as µs). */
  readonly ts: number;
  /** Ticks the complete event spans. */
  readonly dur?: number;
  /** Always 1 (the VMM process). */
  readonly pid: number;
  /**
   * Track: 1 syscalls (with their driver ops and commands), 2 device DMA (with its walks and
   * faults), 3 iommufd objects, 4 work outside both (the commands of a guest-owned queue
   * whose doorbell the guest rang through an mmapped page; another process's driver ops);
   * 0 for counters.
   */
  readonly tid: number;
  /** Instant scope (thread). */
  readonly s?: 't';
  /** Arguments and results (`result` is the return value or the errno name). */
  readonly args?: Readonly<Record<string, string | number | boolean>>;
}

/** What produced a trace, so `trace --replay` can produce it again. */
export type TraceSource =
  | { readonly kind: 'demo'; readonly platform: string; readonly devices: number }
  | { readonly kind: 'scenario'; readonly file: string; readonly text: string };

/** The JSON document written by `--trace`. */
export interface TraceFile {
  /** The events, in clock order after the metadata. */
  readonly traceEvents: readonly TraceEvent[];
  /** How viewers label the ticks. */
  readonly displayTimeUnit: 'ns';
  /** What produced the trace (replayed by `trace --replay`). */
  readonly otherData: { readonly generator: 'iommufd-sim'; readonly clock: 'deterministic'; readonly source: TraceSource };
}

const PID = 1;
/** Trace threads: syscalls of the VMM process, device DMA, iommufd objects, other IOMMU work. */
const TID = { syscall: 1, dma: 2, objects: 3, hardware: 4 } as const;

/** Arguments of a trace event (and its results, merged in when a complete event ends). */
export type TraceArgs = Record<string, string | number | boolean>;

/** Records events with the deterministic clock. */
export class Tracer {
  private clock = 0;
  private readonly list: TraceEvent[] = [
    { name: 'process_name', cat: '__metadata', ph: 'M', ts: 0, pid: PID, tid: 0, args: { name: 'iommufd-sim' } },
    { name: 'thread_name', cat: '__metadata', ph: 'M', ts: 0, pid: PID, tid: TID.syscall, args: { name: 'VMM syscalls' } },
    { name: 'thread_name', cat: '__metadata', ph: 'M', ts: 0, pid: PID, tid: TID.dma, args: { name: 'device DMA' } },
    { name: 'thread_name', cat: '__metadata', ph: 'M', ts: 0, pid: PID, tid: TID.objects, args: { name: 'iommufd objects' } },
    { name: 'thread_name', cat: '__metadata', ph: 'M', ts: 0, pid: PID, tid: TID.hardware, args: { name: 'outside traced syscalls and DMA (guest queues)' } },
  ];
  /** Complete events still open, innermost last. */
  private readonly open: { readonly index: number; readonly ts: number; readonly args: TraceArgs }[] = [];

  /** Every event so far. */
  get events(): readonly TraceEvent[] {
    return this.list;
  }

  /** The track of the innermost open complete event (where nested work is drawn), else the IOMMU track. */
  get currentTid(): number {
    const top = this.open.at(-1);
    return top === undefined ? TID.hardware : this.list[top.index]!.tid;
  }

  /**
   * Opens a complete event; {@link Tracer.end} with the returned depth closes it (and
   * whatever opened inside it and was not closed, e.g. by a throw).
   */
  begin(cat: string, name: string, tid: number, args: TraceArgs): number {
    this.open.push({ index: this.list.length, ts: this.clock, args });
    this.list.push({ name, cat, ph: 'X', ts: this.clock++, dur: 1, pid: PID, tid, args });
    return this.open.length - 1;
  }

  /** Closes the complete event opened at `depth`, adding `result` to its arguments. */
  end(depth: number, result: TraceArgs): void {
    while (this.open.length > depth) {
      const o = this.open.pop()!;
      this.list[o.index] = { ...this.list[o.index]!, dur: Math.max(1, this.clock - o.ts), args: { ...o.args, ...(this.open.length === depth ? result : { result: 'unfinished' }) } };
    }
  }

  /** Runs `fn` as a complete event; `describe` turns its result into the end arguments. */
  span<T>(cat: string, name: string, tid: number, args: TraceArgs, fn: () => T, describe: (r: T) => TraceArgs): T {
    const depth = this.begin(cat, name, tid, args);
    let r: T;
    try {
      r = fn();
    } catch (e) {
      this.end(depth, { result: 'threw' });
      throw e;
    }
    this.end(depth, describe(r));
    return r;
  }

  /** An instant event. */
  instant(cat: string, name: string, tid: number, args: TraceArgs): void {
    this.list.push({ name, cat, ph: 'i', s: 't', ts: this.clock++, pid: PID, tid, args });
  }

  /** A counter sample (Perfetto draws it as a track). */
  counter(cat: string, name: string, args: Record<string, number>): void {
    this.list.push({ name, cat, ph: 'C', ts: this.clock++, pid: PID, tid: 0, args });
  }

  /** The trace file. */
  toFile(source: TraceSource): TraceFile {
    return { traceEvents: this.list, displayTimeUnit: 'ns', otherData: { generator: 'iommufd-sim', clock: 'deterministic', source } };
  }
}

const errnoResult = (rc: number | bigint): Record<string, string | number> =>
  rc < 0 ? { result: Number(rc) > -4096 ? U.errnoName(-Number(rc)) : String(rc) } : { result: typeof rc === 'bigint' ? hex(rc) : rc };

/** The struct's non-zero fields (or, with `before`, the fields that changed) as `prefix.field` arguments. */
function structArgs(prefix: string, bytes: Uint8Array, request: number, before?: Record<string, string>): Record<string, string> {
  const layout = ioctlLayout(request);
  if (!layout) return {};
  const d = layout.decode(bytes) as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const f of layout.fieldList) {
    const v = d[f.name];
    if (typeof v !== 'number' && typeof v !== 'bigint') continue;
    const was = before?.[`in.${f.name}`] ?? (before ? '0x0' : undefined);
    if (before ? hex(v) !== was : v !== 0 && v !== 0n) out[`${prefix}${f.name}`] = hex(v);
  }
  return out;
}

/**
 * A driver-op observer for the core: each op a complete event on the current track (inside
 * the ioctl that caused it), with its arguments and `result`: the errno name of a failure,
 * else the op's value (`unmapPages`: bytes) or 0.
 */
export function driverOpTracer(tracer: Tracer): DriverOpObserver {
  const depths: number[] = [];
  return {
    opBegin: (op, args) => {
      depths.push(tracer.begin('driver', op, tracer.currentTid, { ...args }));
    },
    opEnd: (_op, errno, value) => {
      const depth = depths.pop();
      if (depth !== undefined) tracer.end(depth, { result: errno !== 0 ? U.errnoName(errno) : (value ?? 0) });
    },
  };
}

/**
 * A hardware observer for an IOMMU model: commands and walks as complete events on the
 * current track (inside the driver op or DMA that caused them), faults as instant events.
 */
export function hardwareTracer(tracer: Tracer): HardwareObserver {
  const stream = (e: { streamId: number; pasid?: number }): TraceArgs => ({ sid: hex(e.streamId), ...(e.pasid !== undefined ? { pasid: e.pasid } : {}) });
  return {
    command: (e) => {
      tracer.end(tracer.begin('command', e.opcode, tracer.currentTid, { queue: e.queue, ...e.fields, ...(e.error !== undefined ? { error: e.error } : {}) }), {});
    },
    walk: (e) => {
      const args: TraceArgs = { ...stream(e), iova: hex(e.iova), stage: e.stage, ...(e.levels !== undefined ? { levels: e.levels } : {}) };
      tracer.end(tracer.begin('walk', `walk ${e.stage}`, tracer.currentTid, args), e.result.ok ? { result: hex(e.result.pa), size: hex(e.result.size) } : { result: e.result.fault });
    },
    fault: (e) => {
      tracer.instant('fault', e.name, tracer.currentTid, { ...stream(e), iova: hex(e.iova), write: e.write, recorded: e.recorded, stall: e.stall });
    },
  };
}

/**
 * Wraps `host` so every syscall of its process, every DMA and every change of an iommufd
 * object table is recorded in `tracer`, and sets the core's driver-op observer and the IOMMU
 * models' hardware observers to record every driver op, command consumed, walk and fault.
 * The wrapped host behaves exactly like `host`. A host has one set of observers: tracing it
 * again replaces them (the earlier tracer stops receiving driver ops and hardware events).
 */
export function traceHost(host: Host, tracer: Tracer): Host {
  const p = host.process;
  const points = observationPointsOf(host.memory);
  if (points) {
    points.core.observer = driverOpTracer(tracer);
    const hw = hardwareTracer(tracer);
    for (const iommu of points.iommus) iommu.observer = hw;
  }
  const iommufds = new Set<number>();
  const seen = new Map<number, Map<number, HostObjectInfo>>();
  const diffObjects = (fd: number): void => {
    const before = seen.get(fd) ?? new Map<number, HostObjectInfo>();
    const now = new Map(host.objects(fd).map((o) => [o.id, o] as const));
    for (const [id, o] of now) if (!before.has(id)) tracer.instant('object', `+${o.type} ${id}`, TID.objects, { id, type: o.type, refs: o.refs.join(',') });
    for (const [id, o] of before) if (!now.has(id)) tracer.instant('object', `-${o.type} ${id}`, TID.objects, { id, type: o.type });
    seen.set(fd, now);
  };
  // Commands the IOMMU consumed from its queue, sampled after every ioctl (a wrapping index:
  // the difference modulo the index space is the count, as long as one ioctl consumes less
  // than a whole queue).
  let lastConsumer = commandQueueConsumer(host);
  let consumed = 0;
  const sampleQueue = (): void => {
    const now = commandQueueConsumer(host);
    if (!now || !lastConsumer || now.index === lastConsumer.index) return;
    consumed += (now.index - lastConsumer.index + now.modulus) % now.modulus;
    lastConsumer = now;
    tracer.counter('hw', `${now.queue} commands consumed`, { commands: consumed });
  };
  const sys = <T extends number | bigint>(name: string, args: TraceArgs, fn: () => T): T =>
    tracer.span('syscall', name, TID.syscall, args, fn, errnoResult);

  const process: HostProcess = new Proxy(p, {
    get(target, key, receiver) {
      switch (key) {
        case 'open':
          return (path: string) => {
            const fd = sys('open', { path }, () => target.open(path));
            if (fd >= 0 && path === '/dev/iommu') iommufds.add(fd);
            return fd;
          };
        case 'close':
          return (fd: number) => {
            const rc = sys('close', { fd }, () => target.close(fd));
            if (rc === 0) {
              iommufds.delete(fd);
              seen.delete(fd);
            }
            return rc;
          };
        case 'ioctl':
          return (fd: number, request: number, arg?: bigint | Uint8Array) => {
            const inArgs: Record<string, string> = arg instanceof Uint8Array ? structArgs('in.', arg, request) : arg === undefined ? {} : { arg: hex(arg) };
            const rc = tracer.span('ioctl', ioctlName(request), TID.syscall, { fd, ...inArgs }, () => target.ioctl(fd, request, arg), (r) => ({
              ...errnoResult(r),
              ...(arg instanceof Uint8Array && r >= 0 ? structArgs('out.', arg, request, inArgs) : {}),
            }));
            // VFIO ioctls (bind, attach) change the iommufd's objects too.
            for (const ctx of iommufds) diffObjects(ctx);
            sampleQueue();
            return rc;
          };
        case 'read':
          return (fd: number, buf: Uint8Array) => sys('read', { fd, length: buf.length }, () => target.read(fd, buf));
        case 'write':
          return (fd: number, buf: Uint8Array) => sys('write', { fd, length: buf.length }, () => target.write(fd, buf));
        case 'mmap':
          return (length: bigint | number, prot: number, flags: number, fd?: number, offset?: bigint | number, addr?: bigint) =>
            sys('mmap', { length: hex(length), prot, flags: hex(flags), fd: fd ?? -1 }, () => target.mmap(length, prot, flags, fd, offset, addr));
        case 'munmap':
          return (va: bigint, length: bigint | number) => sys('munmap', { va: hex(va), length: hex(length) }, () => target.munmap(va, length));
        case 'memfdCreate':
          return (name: string, size?: bigint | number) => sys('memfd_create', { name }, () => target.memfdCreate(name, size));
        default: {
          const v: unknown = Reflect.get(target, key, receiver);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        }
      }
    },
  });

  return {
    ...host,
    platform: host.platform,
    vfioDevices: host.vfioDevices,
    memory: host.memory,
    process,
    get pinnedPages() {
      return host.pinnedPages;
    },
    objects: (fd) => host.objects(fd),
    dma: (path, req) =>
      tracer.span(
        'dma',
        `DMA ${req.write ? 'write' : 'read'}`,
        TID.dma,
        {
          device: path,
          iova: hex(req.iova),
          length: req.length,
          ...(req.pasid !== undefined ? { pasid: req.pasid } : {}),
          ...(req.untranslated ? { untranslated: true } : {}),
        },
        () => host.dma(path, req),
        (r): Record<string, string> => (r.ok ? { result: 'ok' } : { result: 'fault', fault: r.fault.kind }),
      ),
  };
}

/** The part of an event that a replay must reproduce (name, category, arguments). */
const signature = (e: TraceEvent): string => JSON.stringify([e.cat, e.name, e.args ?? {}]);

/** Categories that come from the core's and the IOMMU models' observers. */
const OBSERVED_CATEGORIES: ReadonlySet<string> = new Set(['driver', 'command', 'walk', 'fault']);

/**
 * Compares a recorded trace with a new one: undefined when they match, else the first
 * mismatch as a readable message. Every event is deterministic (driver ops, commands, walks
 * and faults included: the clock, the allocators and the caches replay identically) and is
 * compared by category, name and arguments; a trace recorded before driver ops, commands,
 * walks and faults were traced (it has none of them) is compared on the rest.
 */
export function compareTraces(recorded: readonly TraceEvent[], replayed: readonly TraceEvent[]): string | undefined {
  const observed = recorded.some((e) => OBSERVED_CATEGORIES.has(e.cat));
  const compared = (e: TraceEvent): boolean => e.ph !== 'M' && (observed || !OBSERVED_CATEGORIES.has(e.cat));
  const a = recorded.filter(compared);
  const b = replayed.filter(compared);
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (signature(a[i]!) !== signature(b[i]!)) {
      return `event ${i} (ts ${a[i]!.ts}) differs:\n  recorded ${signature(a[i]!)}\n  replayed ${signature(b[i]!)}`;
    }
  }
  if (a.length !== b.length) return `the recorded trace has ${a.length} events, the replay ${b.length}; first extra: ${signature((a.length > b.length ? a : b)[n]!)}`;
  return undefined;
}
