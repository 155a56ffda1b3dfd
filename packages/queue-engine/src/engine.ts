/**
 * The public face of the queue engine: a {@link QueueEngine} bound to one PhysicalStore,
 * running either the WebAssembly engine (dist/engine.wasm, built from asm/engine.ts) or its
 * TypeScript twin, and the queue objects the hardware model drives with it.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as A from './abi.js';
import { EffectBatch, type CacheEffects, type InvalidationFault } from './effects.js';
import { TsEngineCore, type EngineCore } from './engine-ts.js';
import { PAGE_SHIFT, PAGE_SIZE, type PhysicalStore } from './physical-store.js';

/** Which implementation runs the queues. */
export type EngineImpl = 'wasm' | 'ts';

/** Options of {@link createQueueEngine}. */
export interface QueueEngineOptions {
  /** `'auto'` (default): WebAssembly when it loads, else the TypeScript twin. */
  readonly impl?: 'auto' | EngineImpl;
}

/** Thrown on a misuse of the engine API (bad geometry, exhausted engine memory, ...). */
export class QueueEngineError extends Error {
  override readonly name = 'QueueEngineError';
}

/** Why a consume call returned. */
export type StopReason = 'empty' | 'error' | 'effects-full' | 'barrier' | 'log-full' | 'halted';
const STOP_NAMES: readonly StopReason[] = ['empty', 'error', 'effects-full', 'barrier', 'log-full', 'halted'];

/** First byte of the engine arena (offset 0 stays unused so that 0 can mean "none"). */
const ARENA_BASE = 0x1000;

/** First-fit allocator over the store's reserved bytes [ARENA_BASE, framesBase). */
class Arena {
  private readonly free: { off: number; size: number }[];
  constructor(limit: number) {
    this.free = limit > ARENA_BASE ? [{ off: ARENA_BASE, size: limit - ARENA_BASE }] : [];
  }
  alloc(size: number, what: string): number {
    const need = (size + 63) & ~63;
    const i = this.free.findIndex((r) => r.size >= need);
    if (i < 0) {
      throw new QueueEngineError(
        `engine memory exhausted allocating ${need} bytes for ${what}; destroy unused queues or create the PhysicalStore with a larger reservedBytes`,
      );
    }
    const r = this.free[i]!;
    const off = r.off;
    r.off += need;
    r.size -= need;
    if (r.size === 0) this.free.splice(i, 1);
    return off;
  }
  release(off: number, size: number): void {
    const need = (size + 63) & ~63;
    this.free.push({ off, size: need });
    this.free.sort((a, b) => a.off - b.off);
    for (let i = 0; i + 1 < this.free.length; ) {
      const a = this.free[i]!, b = this.free[i + 1]!;
      if (a.off + a.size === b.off) { a.size += b.size; this.free.splice(i + 1, 1); } else i++;
    }
  }
}

let wasmModule: WebAssembly.Module | undefined;
function loadWasm(): WebAssembly.Module {
  if (!wasmModule) {
    // dist/engine.js sits next to engine.wasm; src/engine.ts (tests) finds it in ../dist.
    const here = new URL('./engine.wasm', import.meta.url);
    const built = new URL('../dist/engine.wasm', import.meta.url);
    wasmModule = new WebAssembly.Module(readFileSync(existsSync(here) ? here : built));
  }
  return wasmModule;
}

/**
 * Creates a queue engine over `store`. Async because WebAssembly instantiation is; the
 * compiled module is shared by every engine of the process.
 */
export async function createQueueEngine(store: PhysicalStore, options: QueueEngineOptions = {}): Promise<QueueEngine> {
  const want = options.impl ?? 'auto';
  if (want === 'ts') return new QueueEngine(store, new TsEngineCore(store.memory), 'ts');
  try {
    const instance = await WebAssembly.instantiate(loadWasm(), { env: { memory: store.memory } });
    return new QueueEngine(store, instance.exports as unknown as EngineCore, 'wasm');
  } catch (e) {
    if (want === 'wasm') throw new QueueEngineError(`cannot load the WebAssembly engine (dist/engine.wasm): ${String(e)}; run the package build`);
    return new QueueEngine(store, new TsEngineCore(store.memory), 'ts');
  }
}

/** Engine-private state kept off the public object: the arena allocator. */
const arenas = new WeakMap<QueueEngine, Arena>();
function arenaOf(e: QueueEngine): Arena {
  return arenas.get(e)!;
}

/** The queue engine bound to a PhysicalStore. */
export class QueueEngine {
  /**
   * Use {@link createQueueEngine}.
   * @param store - the physical memory the rings live in
   * @param core - the engine's entry points (WebAssembly exports or the TypeScript twin)
   * @param impl - which implementation `core` is
   */
  constructor(
    /** The physical memory the rings live in. */
    readonly store: PhysicalStore,
    /** The engine's entry points. */
    readonly core: EngineCore,
    /** Which implementation runs. */
    readonly impl: EngineImpl,
  ) {
    arenas.set(this, new Arena(store.framesBase));
  }

  /** A new SMMUv3 CMDQ or Tegra241 VCMDQ consumer. */
  createSmmuQueue(options: SmmuQueueOptions = {}): SmmuQueue {
    return new SmmuQueue(this, options);
  }

  /** A new VT-d invalidation queue consumer. */
  createInvalidationQueue(options: InvalidationQueueOptions = {}): InvalidationQueue {
    return new InvalidationQueue(this, options);
  }

  /** The trapped vSMMU invalidation path of one vIOMMU (VMID + vSID → pSID table). */
  createVsmmu(options: VsmmuOptions): Vsmmu {
    return new Vsmmu(this, options);
  }

  /** @internal */
  u32(off: number): number {
    return this.store.view.getUint32(off, true);
  }
  /** @internal */
  setU32(off: number, v: number): void {
    this.store.view.setUint32(off, v >>> 0, true);
  }
}

/** A table of (key → value) u32 pairs in engine memory, hashed as the engine looks them up. */
class SidTable {
  off = 0;
  log2 = 0;
  private bytes = 0;
  constructor(private readonly engine: QueueEngine) {}
  set(pairs: Iterable<readonly [number, number]>): void {
    const list = [...pairs];
    const keys = new Set<number>();
    for (const [k, v] of list) {
      if (!isU32(k) || !isU32(v)) throw new QueueEngineError(`stream ids must be u32 integers, got ${k} → ${v}`);
      if (keys.has(k)) throw new QueueEngineError(`virtual stream id 0x${k.toString(16)} appears twice`);
      keys.add(k);
    }
    this.dispose();
    if (list.length === 0) return;
    let log2 = 1;
    while (1 << log2 < list.length * 2) log2++;
    this.bytes = 16 << log2;
    this.off = arenaOf(this.engine).alloc(this.bytes, 'a stream id table');
    this.log2 = log2;
    this.engine.store.bytes.fill(0, this.off, this.off + this.bytes);
    const mask = (1 << log2) - 1;
    for (const [k, v] of list) {
      let slot = Math.imul(k, 0x9e3779b1) >>> (32 - log2);
      while (this.engine.u32(this.off + slot * 16) !== 0) slot = (slot + 1) & mask;
      this.engine.setU32(this.off + slot * 16, 1);
      this.engine.setU32(this.off + slot * 16 + 4, k);
      this.engine.setU32(this.off + slot * 16 + 8, v);
    }
  }
  dispose(): void {
    if (this.off) arenaOf(this.engine).release(this.off, this.bytes);
    this.off = 0;
    this.log2 = 0;
  }
}

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/** Options shared by every queue kind. */
export interface QueueCommonOptions {
  /** Effect buffer capacity in records; 0 disables effects (no cache model). Default 256. */
  readonly effectsCapacity?: number;
  /** Keep per-opcode / per-type execution counters. Default true. */
  readonly counters?: boolean;
}

/** Options of an SMMU command queue. */
export interface SmmuQueueOptions extends QueueCommonOptions {
  /** `'cmdq'` (SMMU CMDQ or a host-owned VCMDQ) or `'vcmdq-guest'` (VINTF with HYP_OWN=0). Default `'cmdq'`. */
  readonly kind?: 'cmdq' | 'vcmdq-guest';
  /** IDR0.S1P. Default true. */
  readonly s1p?: boolean;
  /** IDR0.S2P. Default true. */
  readonly s2p?: boolean;
  /** IDR0.ATS. Default true. */
  readonly ats?: boolean;
  /** Guest VCMDQ: the VINTF's VMID (CONFIG.VMID). */
  readonly vmid?: number;
  /** Guest VCMDQ: SID_MATCH.VIRT_SID → SID_REPLACE.PHYS_SID pairs. */
  readonly streams?: Iterable<readonly [vsid: number, psid: number]>;
}

/** Options of a VT-d invalidation queue. */
export interface InvalidationQueueOptions extends QueueCommonOptions {
  /** ECAP.DIT: PFSID fields are defined. Default false. */
  readonly dit?: boolean;
  /** ECAP.PDS: the wait descriptor's PD bit is defined. Default false. */
  readonly pds?: boolean;
  /** CAP.MAMV. Default 9 (QEMU's value). */
  readonly mamv?: number;
}

/** How the ring's pages are told apart from MMIO / holes (a fetch from those aborts). */
export type RamPredicate = (pfn: number) => boolean;

/** What SMMU and VT-d queues share: the control block in engine memory and its buffers. */
export abstract class EngineQueue {
  /** Byte offset of this queue's control block in the engine memory. */
  readonly block: number;
  private fxCap: number;
  private fx = 0;
  private counters = 0;
  private pt = 0;
  private ptBytes = 0;
  private log = 0;
  private logOwned = 0;
  private destroyed = false;

  /**
   * @param engine - the engine the queue runs on
   * @param options - buffers and counters
   * @param flags - `QF_*` bits of the queue kind
   */
  constructor(protected readonly engine: QueueEngine, options: QueueCommonOptions, flags: number) {
    const cap = options.effectsCapacity ?? 256;
    if (!Number.isInteger(cap) || cap < 0 || cap > 65536) throw new QueueEngineError(`effectsCapacity must be an integer 0..65536, got ${cap}`);
    this.fxCap = cap;
    this.block = arenaOf(engine).alloc(A.QB_SIZE, 'a queue control block');
    engine.store.bytes.fill(0, this.block, this.block + A.QB_SIZE);
    if (cap > 0) this.fx = arenaOf(engine).alloc(cap * A.FX_RECORD_SIZE, 'an effect buffer');
    if (options.counters ?? true) {
      // Two banks of 256 u32: the SMMU loop alternates between them (see asm/engine.ts).
      this.counters = arenaOf(engine).alloc(2048, 'execution counters');
      engine.store.bytes.fill(0, this.counters, this.counters + 2048);
    }
    this.set(A.QB_FX, this.fx);
    this.set(A.QB_FX_CAP, cap);
    this.set(A.QB_COUNTERS, this.counters);
    this.set(A.QB_FLAGS, flags | (cap > 0 ? A.QF_EFFECTS : 0));
    this.set(A.QB_RING_FLAT, A.RING_ABORT);
    this.set(A.QB_PT, 0);
  }

  /** Why the last consume call returned. */
  get stop(): StopReason {
    return STOP_NAMES[this.get(A.QB_STOP)]!;
  }

  /** Executions of opcode / descriptor type `code` so far (modulo 2^32; 0 without counters). */
  executed(code: number): number {
    if (!this.counters || !Number.isInteger(code) || code < 0 || code > 255) return 0;
    return (this.engine.u32(this.counters + code * 4) + this.engine.u32(this.counters + 1024 + code * 4)) >>> 0;
  }

  /**
   * Keeps an execution log: every executed entry (after substitution) appended as raw
   * bytes into `bytes` of engine memory starting at byte offset `offset` (e.g. a contiguous
   * range from `PhysicalStore.ensureContiguous`), or in the arena when `offset` is omitted.
   */
  setExecutionLog(bytes: number, offset?: number): void {
    this.releaseLog();
    if (!Number.isInteger(bytes) || bytes < 0) throw new QueueEngineError(`log size must be a non-negative integer, got ${bytes}`);
    if (bytes === 0) return;
    if (offset === undefined) { offset = arenaOf(this.engine).alloc(bytes, 'an execution log'); this.logOwned = bytes; }
    this.log = offset;
    this.set(A.QB_LOG, offset);
    this.set(A.QB_LOG_CAP, bytes);
    this.set(A.QB_LOG_LEN, 0);
  }

  /** The execution log so far (a view into engine memory, valid until the memory grows). */
  executionLog(): Uint8Array {
    return new Uint8Array(this.engine.store.memory.buffer, this.log, this.get(A.QB_LOG_LEN));
  }

  /** Zeroes the execution counters. */
  resetCounters(): void {
    if (this.counters) this.engine.store.bytes.fill(0, this.counters, this.counters + 2048);
  }

  /** Empties the execution log. */
  resetExecutionLog(): void {
    this.set(A.QB_LOG_LEN, 0);
  }

  /** Frees the queue's engine memory; the object must not be used afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.releaseLog();
    const a = arenaOf(this.engine);
    if (this.pt) a.release(this.pt, this.ptBytes);
    if (this.fx) a.release(this.fx, this.fxCap * A.FX_RECORD_SIZE);
    if (this.counters) a.release(this.counters, 2048);
    this.disposeExtra();
    a.release(this.block, A.QB_SIZE);
  }

  /** Frees what a subclass allocated. */
  protected disposeExtra(): void {}

  private releaseLog(): void {
    if (this.logOwned) arenaOf(this.engine).release(this.log, this.logOwned);
    this.logOwned = 0;
    this.log = 0;
    this.set(A.QB_LOG, 0);
    this.set(A.QB_LOG_CAP, 0);
    this.set(A.QB_LOG_LEN, 0);
  }

  /**
   * Resolves the ring [base, base + bytes) to engine memory once (as when the base register
   * is programmed): flat when its frames are contiguous, else through a page table.
   */
  protected programRing(base: bigint, bytes: number, isRam?: RamPredicate): void {
    const align = Math.min(bytes, PAGE_SIZE);
    if (base < 0n || base >= 1n << 52n || (base & BigInt(align - 1)) !== 0n) {
      throw new QueueEngineError(`ring base 0x${base.toString(16)} must be a physical address aligned to ${align} bytes`);
    }
    const pfn0 = Number(base >> BigInt(PAGE_SHIFT));
    // A ring below a page size sits inside one page; it is aligned to its size so byte 0 of
    // the ring is at `inPage` and the engine's page index (ring byte >> 12) is always 0.
    const inPage = Number(base & BigInt(PAGE_SIZE - 1));
    const pages = Math.ceil(bytes / PAGE_SIZE);
    if (this.pt) arenaOf(this.engine).release(this.pt, this.ptBytes);
    this.ptBytes = pages * 4;
    this.pt = arenaOf(this.engine).alloc(this.ptBytes, 'a ring page table');
    const store = this.engine.store;
    let allRam = true;
    for (let i = 0; i < pages; i++) if (isRam && !isRam(pfn0 + i)) allRam = false;
    const flat = allRam ? store.ensureContiguous(pfn0, pages) : -1;
    for (let i = 0; i < pages; i++) {
      const ram = !isRam || isRam(pfn0 + i);
      this.engine.setU32(this.pt + i * 4, ram ? store.ensureFrame(pfn0 + i) + inPage : A.RING_ABORT);
    }
    this.set(A.QB_PT, this.pt);
    this.set(A.QB_RING_FLAT, flat >= 0 ? flat + inPage : A.RING_ABORT);
  }

  /** @internal */
  get(field: number): number {
    return this.engine.u32(this.block + field);
  }
  /** @internal */
  set(field: number, v: number): void {
    this.engine.setU32(this.block + field, v);
  }

  /** Runs `step` until it stops for a reason the sink cannot clear, flushing effects to `sink`. */
  protected drive(step: () => number, sink: CacheEffects | undefined, onFault: (f: InvalidationFault) => void): StopReason {
    for (;;) {
      const r = step();
      const n = this.get(A.QB_FX_COUNT);
      if (n > 0 || r === A.STOP_BARRIER) {
        if (!sink) throw new QueueEngineError('this queue emits effects: pass a CacheEffects sink to consume(), or create it with effectsCapacity: 0');
        const fault = n > 0 ? sink.applyEffects(new EffectBatch(this.engine.store.memory, this.fx, n)) : undefined;
        this.set(A.QB_FX_COUNT, 0);
        this.set(A.QB_PENDING, this.get(A.QB_PENDING) & ~A.PEND_DEVTLB);
        if (fault) onFault(fault);
      }
      if (r !== A.STOP_EFFECTS_FULL && r !== A.STOP_BARRIER) return STOP_NAMES[r]!;
    }
  }
}

/**
 * Which SMMU opcodes a Non-secure queue executes, as data (smmuv3.md §3.2/§3.3, QEMU's ILL
 * cases): `always`, or only when the SMMU implements stage 1 / stage 2 / ATS.
 */
const SMMU_OPCODES: ReadonlyMap<number, 'always' | 's1p' | 's2p' | 'ats'> = new Map([
  [A.CMDQ_OP_PREFETCH_CFG, 'always'], [A.CMDQ_OP_PREFETCH_ADDR, 'always'], [A.CMDQ_OP_CFGI_STE, 'always'],
  [A.CMDQ_OP_CFGI_STE_RANGE, 'always'], [A.CMDQ_OP_CFGI_CD, 's1p'], [A.CMDQ_OP_CFGI_CD_ALL, 's1p'],
  [A.CMDQ_OP_TLBI_NH_ALL, 's1p'], [A.CMDQ_OP_TLBI_NH_ASID, 's1p'], [A.CMDQ_OP_TLBI_NH_VA, 's1p'],
  [A.CMDQ_OP_TLBI_NH_VAA, 's1p'], [A.CMDQ_OP_TLBI_EL3_ALL, 'always'], [A.CMDQ_OP_TLBI_EL3_VA, 'always'],
  [A.CMDQ_OP_TLBI_EL2_ALL, 'always'], [A.CMDQ_OP_TLBI_EL2_ASID, 'always'], [A.CMDQ_OP_TLBI_EL2_VA, 'always'],
  [A.CMDQ_OP_TLBI_EL2_VAA, 'always'], [A.CMDQ_OP_TLBI_S12_VMALL, 's2p'], [A.CMDQ_OP_TLBI_S2_IPA, 's2p'],
  [A.CMDQ_OP_TLBI_NSNH_ALL, 'always'], [A.CMDQ_OP_ATC_INV, 'ats'], [A.CMDQ_OP_PRI_RESP, 'always'],
  [A.CMDQ_OP_RESUME, 'always'], [A.CMDQ_OP_STALL_TERM, 'always'], [A.CMDQ_OP_CMD_SYNC, 'always'],
] as const);

/** What a guest-owned VINTF queue executes (tegra241_guest_vcmdq_supports_cmd + CMD_SYNC). */
const GUEST_VCMDQ_OPCODES: ReadonlySet<number> = new Set([A.CMDQ_OP_TLBI_NH_ASID, A.CMDQ_OP_TLBI_NH_VA, A.CMDQ_OP_ATC_INV, A.CMDQ_OP_CMD_SYNC]);

/** An SMMUv3 CMDQ or a Tegra241 VCMDQ: 16-byte commands, PROD/CONS with a wrap bit. */
export class SmmuQueue extends EngineQueue {
  private readonly sids: SidTable;
  private log2 = -1;

  /** @internal */
  constructor(engine: QueueEngine, options: SmmuQueueOptions) {
    const guest = options.kind === 'vcmdq-guest';
    const flags = ((options.s1p ?? true) ? A.QF_S1P : 0) | ((options.s2p ?? true) ? A.QF_S2P : 0) |
      ((options.ats ?? true) ? A.QF_ATS : 0) | (guest ? A.QF_GUEST : 0);
    super(engine, options, flags);
    const have = { always: true, s1p: options.s1p ?? true, s2p: options.s2p ?? true, ats: options.ats ?? true };
    for (const [op, needs] of SMMU_OPCODES) {
      if (have[needs] && (!guest || GUEST_VCMDQ_OPCODES.has(op))) engine.store.bytes[this.block + A.QB_LEGAL + op] = 1;
    }
    this.sids = new SidTable(engine);
    if (options.vmid !== undefined) this.setVmid(options.vmid);
    if (options.streams) this.setStreams(options.streams);
  }

  /** Programs BASE: ring at physical `base`, 2^`log2size` entries (contiguous, as Linux requires). */
  setBase(base: bigint, log2size: number, isRam?: RamPredicate): void {
    if (!Number.isInteger(log2size) || log2size < 1 || log2size > 19) throw new QueueEngineError(`log2size must be 1..19, got ${log2size}`);
    this.programRing(base, 16 << log2size, isRam);
    this.log2 = log2size;
    this.set(A.QB_LOG2, log2size);
  }

  /** Guest VCMDQ: the VINTF's VMID. */
  setVmid(vmid: number): void {
    if (!Number.isInteger(vmid) || vmid < 0 || vmid > 0xffff) throw new QueueEngineError(`VMID must be 0..0xffff, got ${vmid}`);
    this.set(A.QB_VMID, vmid);
  }

  /** Guest VCMDQ: the SID_MATCH → SID_REPLACE pairs. */
  setStreams(pairs: Iterable<readonly [vsid: number, psid: number]>): void {
    this.sids.set(pairs);
    this.set(A.QB_SIDTAB, this.sids.off);
    this.set(A.QB_SIDTAB_LOG2, this.sids.log2);
  }

  /**
   * Consumes from CONS up to PROD (register values) and returns the new CONS register
   * (index + wrap, ERR in [30:24]; bits outside keep `cons`'s). Effects go to `sink` in
   * batches. The caller keeps GERROR: it must not call while GERROR.CMDQ_ERR is active,
   * and raises it when `stop` is `'error'`.
   */
  consume(prod: number, cons: number, sink?: CacheEffects): number {
    if (this.log2 < 0) throw new QueueEngineError('the queue has no base: call setBase() first');
    this.set(A.QB_PROD, prod);
    this.set(A.QB_CONS, cons);
    this.drive(() => this.engine.core.smmuConsume(this.block), sink, (f) => {
      if (f.kind === 'timeout') this.set(A.QB_PENDING, this.get(A.QB_PENDING) | A.PEND_TIMEOUT);
    });
    return this.get(A.QB_CONS);
  }

  /** CONS.ERR of the last consume call's result (`CERROR_*`). */
  get error(): number {
    return (this.get(A.QB_CONS) & A.CONS_ERR_MASK) >>> A.CONS_ERR_SHIFT;
  }

  /** dw0[63:32] (MSIData) of the last CMD_SYNC executed. */
  get lastSyncData(): number {
    return this.get(A.QB_LAST_SYNC);
  }

  /** @internal */
  get log2size(): number {
    return this.log2;
  }

  /** Frees the SID table. */
  protected override disposeExtra(): void {
    this.sids.dispose();
  }
}

/** VT-d invalidation queue: 128- or 256-bit descriptors, IQH/IQT byte offsets. */
export class InvalidationQueue extends EngineQueue {
  private programmed = false;

  /** @internal */
  constructor(engine: QueueEngine, options: InvalidationQueueOptions) {
    super(engine, options, (options.dit ? A.QF_DIT : 0) | (options.pds ? A.QF_PDS : 0));
    const mamv = options.mamv ?? 9;
    if (!Number.isInteger(mamv) || mamv < 0 || mamv > 63) throw new QueueEngineError(`MAMV must be 0..63, got ${mamv}`);
    this.set(A.QB_MAMV, mamv);
  }

  /** Programs IQA: base, QS (2^QS pages) and DW (256-bit descriptors when true). */
  setBase(base: bigint, qs: number, wide: boolean, isRam?: RamPredicate): void {
    if (!Number.isInteger(qs) || qs < 0 || qs > 7) throw new QueueEngineError(`IQA.QS must be 0..7, got ${qs}`);
    if ((base & 0xfffn) !== 0n) throw new QueueEngineError(`IQA base 0x${base.toString(16)} must be 4 KiB aligned`);
    this.programRing(base, PAGE_SIZE << qs, isRam);
    this.set(A.QB_LOG2, qs + (wide ? 7 : 8));
    this.set(A.QB_FLAGS, (this.get(A.QB_FLAGS) & ~A.QF_DW256) | (wide ? A.QF_DW256 : 0));
    this.programmed = true;
  }

  /**
   * Drains from IQH to IQT (register values) and returns the new IQH. Errors show in
   * {@link InvalidationQueue.fsts} / {@link InvalidationQueue.iqer}; nothing is fetched
   * while FSTS.IQE or FSTS.ITE is set (clear them with {@link InvalidationQueue.clearFaults}).
   */
  consume(iqt: number, iqh: number, sink?: CacheEffects): number {
    if (!this.programmed) throw new QueueEngineError('the queue has no base: call setBase() first');
    this.set(A.QB_PROD, iqt);
    this.set(A.QB_CONS, iqh);
    this.drive(() => this.engine.core.iqConsume(this.block), sink, (f) => {
      if (f.kind === 'timeout') {
        this.set(A.QB_PENDING, this.get(A.QB_PENDING) | A.PEND_TIMEOUT);
        this.set(A.QB_FAULT_SID, f.sid);
      } else {
        this.set(A.QB_FSTS, this.get(A.QB_FSTS) | A.FSTS_ICE);
        this.set(A.QB_IQER_HI, (this.get(A.QB_IQER_HI) & 0xffff) | ((f.sid & 0xffff) << 16));
      }
    });
    return this.get(A.QB_CONS);
  }

  /** FSTS bits raised by the queue (IQE 0x10, ICE 0x20, ITE 0x40). */
  get fsts(): number {
    return this.get(A.QB_FSTS);
  }

  /** IQER: IQEI [3:0], ITESID [47:32], ICESID [63:48]. */
  get iqer(): bigint {
    return (BigInt(this.get(A.QB_IQER_HI)) << 32n) | BigInt(this.get(A.QB_IQER_LO));
  }

  /** Software's RW1C write of FSTS: clears the given IQE / ICE / ITE bits. */
  clearFaults(bits: number): void {
    this.set(A.QB_FSTS, this.get(A.QB_FSTS) & ~bits);
  }
}

/** Options of {@link Vsmmu}. */
export interface VsmmuOptions {
  /** The vIOMMU's VMID (its S2 parent's). */
  readonly vmid: number;
  /** vDEVICEs: virtual SID → physical SID. */
  readonly streams: Iterable<readonly [vsid: number, psid: number]>;
}

/** Result of a trapped invalidation: `index` is the kernel's entry_num. */
export interface VsmmuResult {
  /** `'ok'`, `'bad-command'` (-EIO: opcode outside the whitelist or unknown vSID), `'issue-error'` (host queue stopped). */
  readonly status: 'ok' | 'bad-command' | 'issue-error';
  /** Commands handled (n when ok), the failing index, or the last index of the failed batch. */
  readonly index: number;
}

/** The trapped vSMMU invalidation path of one vIOMMU (smmuv3.md §5.6). */
export class Vsmmu {
  private readonly sids: SidTable;
  private vmid = 0;
  private readonly res: number;

  /** @internal */
  constructor(private readonly engine: QueueEngine, options: VsmmuOptions) {
    this.sids = new SidTable(engine);
    this.res = arenaOf(engine).alloc(16, 'a vSMMU result block');
    this.setVmid(options.vmid);
    this.setStreams(options.streams);
  }

  /** Sets the VMID stamped into TLBI_NH_* commands. */
  setVmid(vmid: number): void {
    if (!Number.isInteger(vmid) || vmid < 0 || vmid > 0xffff) throw new QueueEngineError(`VMID must be 0..0xffff, got ${vmid}`);
    this.vmid = vmid;
  }

  /** Replaces the vSID → pSID table. */
  setStreams(pairs: Iterable<readonly [vsid: number, psid: number]>): void {
    this.sids.set(pairs);
  }

  /**
   * Converts `commands` (n × 16 bytes, little-endian) in place as the kernel does before
   * issuing them; returns the number converted (the index of the first refused command).
   */
  convert(commands: Uint8Array): number {
    if (commands.length % 16 !== 0) throw new QueueEngineError(`a command array is a multiple of 16 bytes, got ${commands.length}`);
    const n = commands.length / 16;
    if (n === 0) return 0;
    const tmp = arenaOf(this.engine).alloc(commands.length, 'a command array');
    try {
      this.engine.store.bytes.set(commands, tmp);
      const done = this.engine.core.vsmmuConvert(tmp, n, this.vmid, this.sids.off, this.sids.log2);
      commands.set(this.engine.store.bytes.subarray(tmp, tmp + commands.length));
      return done;
    } finally {
      arenaOf(this.engine).release(tmp, commands.length);
    }
  }

  /** Converts `n` commands in place at byte offset `offset` of engine memory; returns the count converted. */
  convertInPlace(offset: number, n: number): number {
    this.checkRange(offset, n);
    return this.engine.core.vsmmuConvert(offset, n, this.vmid, this.sids.off, this.sids.log2);
  }

  /**
   * The whole trapped path for `n` guest commands at byte offset `offset` of engine memory
   * (16-byte aligned): convert, write into `queue` at its PROD with a CMD_SYNC (CS=IRQ,
   * MSIData = last index + 1) after every 63 commands and after the last, and consume up
   * to PROD at each SYNC. `queue` models a host SMMU without a cache model (created with
   * `effectsCapacity: 0`) whose ring is RAM.
   */
  invalidate(offset: number, n: number, queue: SmmuQueue, prod = 0): VsmmuResult {
    this.checkRange(offset, n);
    if (queue.get(A.QB_FLAGS) & A.QF_EFFECTS) throw new QueueEngineError('invalidate() drives a queue without a cache model: create it with effectsCapacity: 0');
    if (queue.log2size < 7) throw new QueueEngineError('the host queue needs at least 128 entries (a batch of 64 must fit), call setBase() with log2size >= 7');
    if (queue.get(A.QB_RING_FLAT) === 0xffffffff) throw new QueueEngineError('the host queue ring must be contiguous RAM');
    queue.set(A.QB_PROD, prod);
    queue.set(A.QB_CONS, prod);
    const r = this.engine.core.vsmmuInvalidate(offset, n, queue.block, this.vmid, this.sids.off, this.sids.log2, this.res);
    const status = r === A.VSMMU_OK ? 'ok' : r === A.VSMMU_BAD_COMMAND ? 'bad-command' : 'issue-error';
    return { status, index: this.engine.u32(this.res + A.VS_INDEX) };
  }

  /** Frees the engine memory of this converter. */
  destroy(): void {
    this.sids.dispose();
    arenaOf(this.engine).release(this.res, 16);
  }

  private checkRange(offset: number, n: number): void {
    if (!Number.isInteger(offset) || offset <= 0 || offset % 16 !== 0 || !Number.isInteger(n) || n < 0 ||
      offset + n * 16 > this.engine.store.memory.buffer.byteLength) {
      throw new QueueEngineError(`command array at offset ${offset} × ${n} is not a 16-byte aligned range of engine memory`);
    }
  }
}
