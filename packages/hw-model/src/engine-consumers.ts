/**
 * The queue consumers backed by the WebAssembly queue engine of `@iommufd/queue-engine`: the
 * SMMUv3 CMDQ, the Tegra241 VCMDQs (host-owned and guest) and the VT-d invalidation queue.
 * The engine reads the rings in place in the machine's `PhysicalStore`, validates and
 * rewrites commands, and hands back batches of effect records; these adapters apply every
 * record, in queue order, through the model's own executors (the same cache invalidations,
 * MSI / status writes and page responses as the TypeScript consumers), so swapping the
 * engine in changes no observable behaviour.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import {
  EFFECT_KINDS,
  FSTS_ICE,
  FSTS_IQE,
  FSTS_ITE,
  QueueEngine,
  QueueEngineError,
  type CacheEffects,
  type Effect,
  type EffectBatch,
  type EngineCore,
  type InvalidationFault,
  type InvalidationQueue,
  type PhysicalStore,
  type SmmuQueue,
} from '@iommufd/queue-engine';
import type { BitLayout, BitFieldSpec } from './bitfield.js';
import { typescriptCommandQueueConsumer, type CommandExecutor, type CommandQueueConsumer, type CommandQueueResult, type CommandRing, type GuestQueueContext } from './cmdq.js';
import type { PhysicalMemory } from './memory.js';
import { queueFull, queueIndex, queuePointer } from './queue.js';
import { CMDQ_ERR, CMDQ_OP, SMMU_COMMAND_LAYOUTS } from './smmuv3-layouts.js';
import type { SmmuV3 } from './smmuv3.js';
import {
  VTD_DESC,
  VTD_DESC_LAYOUTS,
  VTD_IQEI,
  VtdTsInvalidationQueueConsumer,
  validateVtdDescriptor,
  type VtdDescriptorLayout,
  type VtdInvalidationQueueConsumer,
  type VtdIqConfig,
  type VtdIqConsumeResult,
  type VtdIqExecutor,
  type VtdIqRing,
} from './vtd-iq.js';

/** Thrown when the engine accepted a command that the model's executor refuses (an engine / model disagreement). */
export class QueueEngineMismatchError extends Error {
  /** Error name for `instanceof`-free checks. */
  override readonly name = 'QueueEngineMismatchError';
}

// ------------------------------------------------------------------ loading the engine

let compiledEngine: WebAssembly.Module | null | undefined;

/**
 * A WebAssembly queue engine over `store`, instantiated synchronously (Node instantiates
 * modules of any size synchronously) from the `dist/engine.wasm` that `@iommufd/queue-engine`
 * builds, so that the synchronous `createMachine` can use it; undefined where WebAssembly or
 * the built module is unavailable (callers then keep the TypeScript consumers).
 * `createQueueEngine` of `@iommufd/queue-engine` is the asynchronous equivalent.
 */
export function loadQueueEngineSync(store: PhysicalStore): QueueEngine | undefined {
  if (compiledEngine === undefined) {
    try {
      const entry = createRequire(import.meta.url).resolve('@iommufd/queue-engine');
      compiledEngine = new WebAssembly.Module(readFileSync(new URL('./engine.wasm', pathToFileURL(entry))));
    } catch {
      compiledEngine = null;
    }
  }
  if (compiledEngine === null) return undefined;
  try {
    const instance = new WebAssembly.Instance(compiledEngine, { env: { memory: store.memory } });
    return new QueueEngine(store, instance.exports as unknown as EngineCore, 'wasm');
  } catch {
    return undefined;
  }
}

/** The one engine of each store (engines allocate their control blocks from the store's reserved bytes). */
const storeEngines = new WeakMap<PhysicalStore, QueueEngine | null>();

/**
 * The queue engine of `store`, shared by every IOMMU whose memory is that store (created
 * with {@link loadQueueEngineSync} on first use, or the one {@link adoptQueueEngine} gave
 * it); undefined where the engine cannot load.
 */
export function queueEngineFor(store: PhysicalStore): QueueEngine | undefined {
  let engine = storeEngines.get(store);
  if (engine === undefined) {
    engine = loadQueueEngineSync(store) ?? null;
    storeEngines.set(store, engine);
  }
  return engine ?? undefined;
}

/** Makes `engine` (e.g. from `createQueueEngine`) the one {@link queueEngineFor} returns for its store. */
export function adoptQueueEngine(engine: QueueEngine): void {
  const current = storeEngines.get(engine.store);
  if (current !== undefined && current !== engine) throw new QueueEngineError('this PhysicalStore already has a queue engine; a store has one engine');
  storeEngines.set(engine.store, engine);
}

/**
 * The engine an IOMMU model's queues use: `explicit`, else the store's shared engine unless
 * `consumers` is `'typescript'` (then undefined: the TypeScript consumers).
 */
export function modelQueueEngine(memory: PhysicalMemory, consumers: 'engine' | 'typescript' | undefined, explicit?: QueueEngine): QueueEngine | undefined {
  if (explicit !== undefined) return explicit;
  return consumers === 'typescript' ? undefined : queueEngineFor(memory.store);
}

// ------------------------------------------------------------------ effect records → entries

/** How one effect field becomes a field of a command / descriptor layout: its name there and a right shift. */
type FieldMap = Readonly<Record<string, readonly [field: string, shift?: number]>>;

const SMMU_SID: FieldMap = { sid: ['SID'], ssid: ['SSID'], ssv: ['SSV'] };
const SMMU_TLBI: FieldMap = {
  vmid: ['VMID'], asid: ['ASID'], addr: ['ADDR', 12], leaf: ['LEAF'], ttl: ['TTL'], tg: ['TG'], num: ['NUM'], scale: ['SCALE'],
};
type AnyBitLayout = BitLayout<readonly BitFieldSpec[]>;

/**
 * SMMU effect kind (= opcode) → the command layout and field mapping that rebuild the
 * command the engine executed (after guest substitution), as data.
 */
const SMMU_EFFECT_FIELDS: ReadonlyMap<number, FieldMap> = new Map<number, FieldMap>([
  [CMDQ_OP.PREFETCH_CONFIG, SMMU_SID],
  [CMDQ_OP.PREFETCH_ADDR, { ...SMMU_SID, addr: ['ADDR', 12] }],
  [CMDQ_OP.CFGI_STE, { sid: ['SID'], leaf: ['LEAF'] }],
  [CMDQ_OP.CFGI_STE_RANGE, { sid: ['SID'], range: ['RANGE'] }],
  [CMDQ_OP.CFGI_CD, { ...SMMU_SID, leaf: ['LEAF'] }],
  [CMDQ_OP.CFGI_CD_ALL, { sid: ['SID'] }],
  ...[
    CMDQ_OP.TLBI_NH_ALL, CMDQ_OP.TLBI_NH_ASID, CMDQ_OP.TLBI_NH_VA, CMDQ_OP.TLBI_NH_VAA, CMDQ_OP.TLBI_EL3_ALL, CMDQ_OP.TLBI_EL3_VA,
    CMDQ_OP.TLBI_EL2_ALL, CMDQ_OP.TLBI_EL2_ASID, CMDQ_OP.TLBI_EL2_VA, CMDQ_OP.TLBI_EL2_VAA, CMDQ_OP.TLBI_S12_VMALL, CMDQ_OP.TLBI_S2_IPA,
    CMDQ_OP.TLBI_NSNH_ALL,
  ].map((op) => [op, SMMU_TLBI] as const),
  [CMDQ_OP.ATC_INV, { ...SMMU_SID, global: ['GLOBAL'], addr: ['ADDR', 12], size: ['SIZE'] }],
  [CMDQ_OP.PRI_RESP, { ...SMMU_SID, prgi: ['PRGI'], resp: ['RESP'] }],
  [CMDQ_OP.RESUME, { sid: ['SID'], stag: ['STAG'], action: ['ACTION'] }],
  [CMDQ_OP.STALL_TERM, { sid: ['SID'] }],
  [CMDQ_OP.CMD_SYNC, { cs: ['CS'], msh: ['MSH'], msiAttr: ['MSIATTR'], msiData: ['MSIDATA'], msiAddr: ['MSIADDR', 2] }],
]);
const SMMU_COMMAND_OF_EFFECT: ReadonlyMap<number, readonly [AnyBitLayout, FieldMap]> = new Map(
  [...SMMU_EFFECT_FIELDS].map(([op, map]) => [op, [SMMU_COMMAND_LAYOUTS.get(op)!, map]] as const),
);

/**
 * One compiled rule: bits `[shift, shift + width)` of effect word `from` go to bit `at` of
 * entry word `to` (derived once from the effect kind's field declarations and the target
 * layout's, so the per-record work is a few shifts and masks).
 */
interface BitMove {
  readonly from: number;
  readonly shift: bigint;
  readonly mask: bigint;
  readonly to: number;
  readonly at: bigint;
}

/** How to rebuild the entry of one effect kind: its first word's constant part (opcode / type) and the moves. */
interface Rebuild {
  readonly words: number;
  readonly head: bigint;
  readonly moves: readonly BitMove[];
  /**
   * The same moves merged: every move between the same two words by the same distance
   * becomes one mask and one shift (target fields never overlap, so this is exact).
   */
  readonly merged: readonly MergedMove[];
}

/**
 * Bits of effect word `from` (mask in 32-bit halves `maskLo` / `maskHi`), moved left by
 * `left` bits (right when negative) into entry word `to`: worked on 32-bit halves, so a
 * record is rebuilt without a BigInt per field.
 */
interface MergedMove {
  readonly from: number;
  readonly to: number;
  readonly maskLo: number;
  readonly maskHi: number;
  readonly left: number;
}

function mergeMoves(moves: readonly BitMove[]): MergedMove[] {
  const groups = new Map<string, { from: number; to: number; mask: bigint; left: number }>();
  for (const m of moves) {
    const left = Number(m.at - m.shift);
    const key = `${m.from}:${m.to}:${left}`;
    const g = groups.get(key) ?? { from: m.from, to: m.to, mask: 0n, left };
    g.mask |= m.mask << m.shift;
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => ({ from: g.from, to: g.to, maskLo: Number(g.mask & 0xffff_ffffn), maskHi: Number((g.mask >> 32n) & 0xffff_ffffn), left: g.left }));
}

/** A target field: where it sits and whether it holds an address in place (VT-d `addr` fields). */
interface TargetField {
  readonly word: number;
  readonly hi: number;
  readonly lo: number;
  readonly inPlace: boolean;
}

/** Effect kinds of VT-d descriptors start here (queue-engine's FX_VTD_BASE). */
const VTD_EFFECT_BASE = 0x100;

/** PFSID[3:0] and PFSID[15:4] sit in two fields of the device-TLB descriptors. */
const PFSID_PARTS: readonly (readonly [field: string, shift: number])[] = [['PFSID_LO', 0], ['PFSID_HI', 4]];

function compileRebuild(kind: number, words: number, head: bigint, targets: ReadonlyMap<string, TargetField>, map: FieldMap): Rebuild {
  const decl = EFFECT_KINDS.get(kind);
  if (decl === undefined) throw new QueueEngineMismatchError(`the queue engine has no effect kind 0x${kind.toString(16)}`);
  const moves: BitMove[] = [];
  for (const f of decl.fields) {
    const rules = [...(map[f.name] !== undefined ? [map[f.name]!] : []), ...(f.name === 'pfsid' ? PFSID_PARTS : [])];
    for (const [name, ruleShift] of rules) {
      const t = targets.get(name);
      if (t === undefined) throw new QueueEngineMismatchError(`rebuild rule of ${decl.name}: the entry has no field ${name}`);
      const shift = t.inPlace ? t.lo : (ruleShift ?? 0);
      const width = Math.min(f.width - shift, t.hi - t.lo + 1);
      moves.push({ from: f.word, shift: BigInt(f.lo + shift), mask: (1n << BigInt(width)) - 1n, to: t.word, at: BigInt(t.lo) });
    }
  }
  return { words, head, moves, merged: mergeMoves(moves) };
}

/** Applies a rebuild rule to effect words w0..w3. */
function rebuild(r: Rebuild, w: readonly bigint[]): bigint[] {
  const out = new Array<bigint>(r.words).fill(0n);
  out[0] = r.head;
  for (const m of r.moves) out[m.to]! |= ((w[m.from]! >> m.shift) & m.mask) << m.at;
  return out;
}

const SMMU_REBUILD: ReadonlyMap<number, Rebuild> = new Map(
  [...SMMU_COMMAND_OF_EFFECT].map(([op, [layout, map]]) => {
    const targets = new Map<string, TargetField>(layout.fields.map(([name, word, hi, lo]) => [name, { word, hi, lo, inPlace: false }]));
    return [op, compileRebuild(op, 2, BigInt(op), targets, map)] as const;
  }),
);

/** {@link SMMU_REBUILD} indexed by effect kind (an array lookup per record). */
const SMMU_REBUILD_BY_KIND: readonly (Rebuild | undefined)[] = Array.from({ length: 256 }, (_, kind) => SMMU_REBUILD.get(kind));

/** VT-d effect kind (0x100 + type) → descriptor field of each effect field, as data (PFSID is split in two). */
const VTD_FIELDS_OF_EFFECT: ReadonlyMap<number, FieldMap> = new Map<number, FieldMap>([
  [VTD_DESC.CC, { granularity: ['G'], fm: ['FM'], did: ['DID'], sid: ['SID'] }],
  [VTD_DESC.IOTLB, { granularity: ['G'], drainWrites: ['DW'], drainReads: ['DR'], did: ['DID'], addr: ['ADDR'], am: ['AM'], ih: ['IH'] }],
  [VTD_DESC.DEV_TLB, { sid: ['SID'], mip: ['MIP'], addr: ['ADDR'], size: ['S'] }],
  [VTD_DESC.IEC, { indexSelective: ['G'], im: ['IM'], iidx: ['IIDX'] }],
  [VTD_DESC.WAIT, { interruptFlag: ['IF'], statusWrite: ['SW'], fence: ['FN'], pageDrain: ['PD'], statusData: ['SDATA'], statusAddr: ['SADDR'] }],
  [VTD_DESC.PIOTLB, { granularity: ['G'], did: ['DID'], pasid: ['PASID'], addr: ['ADDR'], am: ['AM'], ih: ['IH'] }],
  [VTD_DESC.PC, { granularity: ['G'], did: ['DID'], pasid: ['PASID'] }],
  [VTD_DESC.PDEV_TLB, { sid: ['SID'], pasid: ['PASID'], mip: ['MIP'], addr: ['ADDR'], global: ['G'], size: ['S'] }],
  [
    VTD_DESC.PGRP_RESP,
    { rid: ['RID'], code: ['RC'], pasidPresent: ['P'], privatePresent: ['PDP'], lpig: ['LPIG'], prgi: ['PRGI'], pasid: ['PASID'], private0: ['PRIV0'], private1: ['PRIV1'] },
  ],
]);

const VTD_REBUILD: ReadonlyMap<number, Rebuild> = new Map(
  [...VTD_FIELDS_OF_EFFECT].map(([type, map]) => {
    const layout: VtdDescriptorLayout = VTD_DESC_LAYOUTS.get(type)!;
    const targets = new Map<string, TargetField>(layout.specs.map((f) => [f.name, { word: f.word, hi: f.hi, lo: f.lo, inPlace: f.kind === 'addr' }]));
    return [VTD_EFFECT_BASE + type, compileRebuild(VTD_EFFECT_BASE + type, 4, BigInt(type), targets, map)] as const;
  }),
);

/** The four record words of a decoded effect. */
function wordsOfEffect(e: Effect): bigint[] {
  const w = [BigInt(e.kind) | (BigInt(e.position) << 32n), 0n, 0n, 0n];
  for (const f of EFFECT_KINDS.get(e.kind)?.fields ?? []) w[f.word]! |= (e.fields[f.name] ?? 0n) << BigInt(f.lo);
  return w;
}

/** The 16-byte command (dw0, dw1) an SMMU effect record stands for (after guest substitution). */
export function smmuCommandOfEffect(e: Effect): [bigint, bigint] {
  const r = SMMU_REBUILD.get(e.kind);
  if (r === undefined) throw new QueueEngineMismatchError(`effect kind 0x${e.kind.toString(16)} (${e.name}) is not an SMMU command`);
  const [dw0, dw1] = rebuild(r, wordsOfEffect(e));
  return [dw0!, dw1!];
}

/**
 * @internal The command (dw0, dw1) of the SMMU effect record at byte `at` of `view`, by the
 * consumer's fast path (undefined for a kind that is not an SMMU command).
 */
export function smmuCommandOfRecord(view: DataView, at: number): [bigint, bigint] | undefined {
  const rule = SMMU_REBUILD_BY_KIND[view.getUint16(at, true)];
  if (rule === undefined) return undefined;
  const out = [0n, 0n];
  rebuildSmmuCommand(rule, view, at, new Int32Array(4), out);
  return [out[0]!, out[1]!];
}

/** The descriptor words (always four; the upper two are zero unless private data) a VT-d effect record stands for. */
export function vtdDescriptorOfEffect(e: Effect): bigint[] {
  const r = VTD_REBUILD.get(e.kind);
  if (r === undefined) throw new QueueEngineMismatchError(`effect kind 0x${e.kind.toString(16)} (${e.name}) is not a VT-d descriptor`);
  return rebuild(r, wordsOfEffect(e));
}

/** Scratch for assembling a 64-bit word from its halves (one BigInt per word). */
const HALVES = new DataView(new ArrayBuffer(8));

/**
 * Rebuilds the SMMU command of the effect record at store offset `at` into `out` (dw0, dw1),
 * straight from engine memory: the moves run on 32-bit halves (`h` is scratch for the four
 * output halves), and each command word becomes a BigInt once.
 */
function rebuildSmmuCommand(r: Rebuild, view: DataView, at: number, h: Int32Array, out: bigint[]): void {
  h[0] = Number(r.head & 0xffff_ffffn);
  h[1] = Number(r.head >> 32n);
  h[2] = 0;
  h[3] = 0;
  for (const m of r.merged) {
    const lo = view.getUint32(at + 8 * m.from, true) & m.maskLo;
    const hi = view.getUint32(at + 8 * m.from + 4, true) & m.maskHi;
    const L = m.left;
    let dlo: number;
    let dhi: number;
    if (L === 0) {
      dlo = lo;
      dhi = hi;
    } else if (L >= 32) {
      dlo = 0;
      dhi = lo << (L - 32);
    } else if (L > 0) {
      dlo = lo << L;
      dhi = (hi << L) | (lo >>> (32 - L));
    } else if (L > -32) {
      dlo = (lo >>> -L) | (hi << (32 + L));
      dhi = hi >>> -L;
    } else {
      dlo = hi >>> (-L - 32);
      dhi = 0;
    }
    h[2 * m.to] |= dlo;
    h[2 * m.to + 1] |= dhi;
  }
  HALVES.setInt32(0, h[0]!, true);
  HALVES.setInt32(4, h[1]!, true);
  out[0] = HALVES.getBigUint64(0, true);
  HALVES.setInt32(0, h[2]!, true);
  HALVES.setInt32(4, h[3]!, true);
  out[1] = HALVES.getBigUint64(0, true);
}

/** Reads the four words of record `i` of a batch straight from engine memory. */
function recordWords(store: PhysicalStore, batch: EffectBatch, i: number): bigint[] {
  const view = store.view;
  const at = batch.offset + i * 32;
  return [view.getBigUint64(at, true), view.getBigUint64(at + 8, true), view.getBigUint64(at + 16, true), view.getBigUint64(at + 24, true)];
}

// ------------------------------------------------------------------ ring mapping

/** The ring of an engine queue as last programmed, and the frames it resolved to. */
interface ProgrammedRing {
  base: bigint;
  bytes: number;
  /** Store offset of each ring page at programming time (-1: not RAM). */
  frames: number[];
}

/** Pages of `[base, base + bytes)` (the engine maps rings page by page). */
function ringPfns(base: bigint, bytes: number): number[] {
  const first = Number(base >> 12n);
  const last = Number((base + BigInt(bytes) - 1n) >> 12n);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/** Which pages of a ring (indices from its first page) `count` entries from index `first` occupy. */
function touchedPages(first: number, count: number, entries: number, entryBytes: number): number[] {
  const perPage = Math.max(1, 4096 / entryBytes);
  const pages = new Set<number>();
  for (let k = 0; k < count; k += perPage) pages.add(Math.floor(((first + k) % entries) / perPage));
  if (count > 0) pages.add(Math.floor(((first + count - 1) % entries) / perPage));
  return [...pages];
}

/**
 * Programs `program(isRam)` when the ring moved, or when one of the pages this call will read
 * (`touched`) had its frame freed and re-allocated since (allocPages / freePages drop frames;
 * the engine's mapping would point at stale bytes). Returns undefined when the engine cannot
 * map this ring (then the caller falls back to the TypeScript consumer for this call).
 */
function mapRing(
  memory: PhysicalMemory,
  current: ProgrammedRing | undefined,
  base: bigint,
  bytes: number,
  touched: readonly number[],
  program: (isRam: (pfn: number) => boolean) => void,
): ProgrammedRing | undefined {
  const isRam = (pfn: number) => memory.isRam(BigInt(pfn) << 12n, 4096);
  const store = memory.store;
  const first = Number(base >> 12n);
  const unchanged = (i: number) => (current!.frames[i]! < 0 ? !isRam(first + i) : store.frameOffset(first + i) === current!.frames[i]);
  if (current !== undefined && current.base === base && current.bytes === bytes && touched.every(unchanged)) return current;
  try {
    program(isRam);
  } catch (e) {
    if (e instanceof QueueEngineError) return undefined;
    throw e;
  }
  return { base, bytes, frames: ringPfns(base, bytes).map((p) => (isRam(p) ? store.frameOffset(p) : -1)) };
}

/**
 * A new engine queue, or undefined when the engine's reserved memory is exhausted (many
 * IOMMUs in one store): that queue then stays with the TypeScript consumer.
 */
function engineQueue<Q>(create: () => Q): Q | undefined {
  try {
    return create();
  } catch (e) {
    if (e instanceof QueueEngineError) return undefined;
    throw e;
  }
}

// ------------------------------------------------------------------ SMMU CMDQ / VCMDQ

interface SmmuEngineRing {
  readonly queue: SmmuQueue;
  ring?: ProgrammedRing;
  log2?: number;
  guestKey?: string;
}

/**
 * The SMMUv3 CMDQ and Tegra241 VCMDQ consumer on the queue engine, for one SMMU: one engine
 * `SmmuQueue` per hardware queue ({@link CommandRing.id}; a guest-owned VCMDQ gets a
 * `'vcmdq-guest'` queue with the VINTF's VMID and SID slots). Each effect record is rebuilt
 * into its command and executed by the SMMU's executor, in queue order; an ATC_INV the
 * endpoint does not complete is handed back to the engine as a timeout, which fails the
 * next CMD_SYNC of that queue with CERROR_ATC_INV_SYNC. Rings the engine cannot map (a
 * single-entry queue, a base not aligned to a ring smaller than a page) are consumed by
 * {@link typescriptCommandQueueConsumer}.
 */
export class EngineCommandQueueConsumer implements CommandQueueConsumer {
  private readonly queues = new Map<string, SmmuEngineRing>();

  /**
   * @param engine - the engine bound to the SMMU's memory's `PhysicalStore`
   * @param smmu - the SMMU whose caches and endpoints the commands act on
   */
  constructor(
    /** The queue engine. */
    readonly engine: QueueEngine,
    private readonly smmu: SmmuV3,
  ) {
    if (engine.store !== smmu.memory.store) throw new QueueEngineError("the engine must run on the SMMU memory's PhysicalStore (create it with memory.store)");
  }

  /** {@inheritDoc CommandQueueConsumer.consume} */
  consume(ring: CommandRing, memory: PhysicalMemory, executor: CommandExecutor): CommandQueueResult {
    const q = memory.store === this.engine.store ? this.queueFor(ring, memory, executor.guest) : undefined;
    if (q === undefined) return typescriptCommandQueueConsumer.consume(ring, memory, executor);
    const host = executor.guest?.host ?? executor;
    let executed = 0;
    const halves = new Int32Array(4);
    const cmd: bigint[] = [0n, 0n];
    const sink: CacheEffects = {
      applyEffects: (batch: EffectBatch): InvalidationFault | undefined => {
        let fault: InvalidationFault | undefined;
        for (let i = 0; i < batch.count; i++) {
          // Re-read per record: an executor may grow the store (its view is then re-created).
          const view = this.engine.store.view;
          const at = batch.offset + i * 32;
          const kind = view.getUint16(at, true);
          const rule = SMMU_REBUILD_BY_KIND[kind];
          if (rule !== undefined) rebuildSmmuCommand(rule, view, at, halves, cmd);
          const err = rule === undefined ? CMDQ_ERR.ILL : host.execute(cmd[0]!, cmd[1]!);
          if (err !== CMDQ_ERR.NONE) {
            const e = batch.get(i);
            throw new QueueEngineMismatchError(`the engine executed ${e.name} at CONS 0x${e.position.toString(16)} but the SMMU model answers CONS.ERR ${err}`);
          }
          executed++;
          if (kind === CMDQ_OP.ATC_INV && this.smmu.takeAtcSyncPending()) fault = { kind: 'timeout', sid: this.engine.store.view.getUint32(at + 8, true) };
        }
        return fault;
      },
    };
    const cons = q.consume(ring.prod, ring.cons, sink);
    const error = q.stop === 'error' ? q.error : CMDQ_ERR.NONE;
    return { cons: queuePointer(cons, ring.log2Size), error, executed };
  }

  /** The engine queue of `ring`, programmed for its current base, size and guest context. */
  private queueFor(ring: CommandRing, memory: PhysicalMemory, guest: GuestQueueContext | undefined): SmmuQueue | undefined {
    if (ring.log2Size < 1 || ring.log2Size > 19) return undefined;
    const key = `${ring.id ?? 'cmdq'}${guest ? '/guest' : ''}`;
    let slot = this.queues.get(key);
    if (slot === undefined) {
      const s = this.smmu;
      const queue = engineQueue(() => this.engine.createSmmuQueue({ kind: guest ? 'vcmdq-guest' : 'cmdq', s1p: s.feature('S1P'), s2p: s.feature('S2P'), ats: s.feature('ATS') }));
      if (queue === undefined) return undefined;
      slot = { queue };
      this.queues.set(key, slot);
    }
    const { queue } = slot;
    const log2 = ring.log2Size;
    const entries = 1 << log2;
    const from = queueIndex(ring.cons, log2);
    const pending = queueFull(ring.prod, ring.cons, log2) ? entries : (queueIndex(ring.prod, log2) - from + entries) % entries;
    const touched = touchedPages(from, pending, entries, 16);
    const mapped = mapRing(memory, slot.log2 === log2 ? slot.ring : undefined, ring.base, 16 << log2, touched, (isRam) => queue.setBase(ring.base, log2, isRam));
    if (mapped === undefined) return undefined;
    slot.ring = mapped;
    slot.log2 = log2;
    if (guest) {
      const guestKey = `${guest.vmid}:${guest.streams.map(([v, p]) => `${v}>${p}`).join(',')}`;
      if (slot.guestKey !== guestKey) {
        queue.setVmid(guest.vmid);
        queue.setStreams(guest.streams);
        slot.guestKey = guestKey;
      }
    }
    return queue;
  }
}

// ------------------------------------------------------------------ VT-d invalidation queue

/**
 * The VT-d invalidation-queue consumer on the queue engine: IQH/IQT are handed over as
 * byte offsets, each effect record is rebuilt into its descriptor and executed by the
 * unit's executor in queue order (cache invalidations, device-TLB invalidations with their
 * ICE, wait status writes and completion interrupts). A device-TLB invalidation that times
 * out ends the call right behind it, as {@link VtdTsInvalidationQueueConsumer} does (the
 * unit then aborts up to the next wait and raises ITE); the descriptors the engine ran past
 * it are not applied. A unit without scalable mode validates the scalable-only descriptor
 * types itself, so its queue stays with the TypeScript consumer (the engine has no legacy
 * mode).
 */
export class EngineInvalidationQueueConsumer implements VtdInvalidationQueueConsumer {
  private queue: InvalidationQueue | undefined;
  private readonly fallback: VtdTsInvalidationQueueConsumer;
  private ring: ProgrammedRing | undefined;
  private wide = false;

  /**
   * @param engine - the engine bound to `memory.store`
   * @param memory - the machine memory the ring lives in
   * @param config - the capabilities descriptors are validated against
   */
  constructor(
    /** The queue engine. */
    readonly engine: QueueEngine,
    private readonly memory: PhysicalMemory,
    /** The capabilities descriptors are validated against. */
    readonly config: VtdIqConfig,
  ) {
    if (engine.store !== memory.store) throw new QueueEngineError("the engine must run on the machine memory's PhysicalStore (create it with memory.store)");
    this.fallback = new VtdTsInvalidationQueueConsumer(config);
  }

  /** {@inheritDoc VtdInvalidationQueueConsumer.consume} */
  consume(ring: VtdIqRing, executor: VtdIqExecutor): VtdIqConsumeResult {
    const width = ring.wide ? 32 : 16;
    const bytes = ring.entries * width;
    const touched = touchedPages(ring.head, (ring.tail - ring.head + ring.entries) % ring.entries, ring.entries, width);
    if (!this.config.scalable || ring.mem !== this.memory || !this.program(ring, bytes, touched)) return this.fallback.consume(ring, executor);
    const q = this.queue!;
    // The unit calls only while its FSTS.IQE / ITE are clear; ICE is the unit's own business.
    q.clearFaults(FSTS_IQE | FSTS_ITE | FSTS_ICE);
    let executed = 0;
    let timeout: { sid: number; head: number } | undefined;
    const sink: CacheEffects = {
      applyEffects: (batch: EffectBatch): undefined => {
        for (let i = 0; i < batch.count && timeout === undefined; i++) {
          const w = recordWords(this.engine.store, batch, i);
          const kind = Number(w[0]! & 0xffffn);
          const rule = VTD_REBUILD.get(kind);
          if (rule === undefined) throw new QueueEngineMismatchError(`the engine executed ${batch.get(i).name}, which is not a VT-d descriptor`);
          const out = executor.execute(kind - VTD_EFFECT_BASE, rebuild(rule, w));
          executed++;
          if (out.kind === 'timeout') timeout = { sid: out.sid, head: (Number(w[0]! >> 32n) + 1) % ring.entries };
        }
        return undefined;
      },
    };
    const iqh = q.consume(ring.tail * width, ring.head * width, sink);
    if (timeout !== undefined) return { head: timeout.head, executed, timeout: { sid: timeout.sid } };
    const head = (iqh & (bytes - 1)) / width;
    if ((q.fsts & FSTS_IQE) === 0) return { head, executed };
    const iqei = Number(q.iqer & 0xfn);
    return { head, executed, error: { iqei, reason: this.reason(ring, head, iqei) } };
  }

  /** (Re)programs the engine ring for IQA; false when the engine cannot map it. */
  private program(ring: VtdIqRing, bytes: number, touched: readonly number[]): boolean {
    const c = this.config;
    this.queue ??= engineQueue(() => this.engine.createInvalidationQueue({ dit: c.deviceTlbThrottling, pds: c.pageRequestDrain, mamv: c.mamv }));
    const queue = this.queue;
    if (queue === undefined) return false;
    const current = this.wide === ring.wide ? this.ring : undefined;
    const qs = Math.log2(bytes / 4096);
    const mapped = mapRing(this.memory, current, ring.base, bytes, touched, (isRam) => queue.setBase(ring.base, qs, ring.wide, isRam));
    if (mapped === undefined) return false;
    this.ring = mapped;
    this.wide = ring.wide;
    return true;
  }

  /** The reason text of an IQE at `head`, as the TypeScript consumer words it. */
  private reason(ring: VtdIqRing, head: number, iqei: number): string {
    const at = ring.base + BigInt(head * (ring.wide ? 32 : 16));
    if (iqei === VTD_IQEI.FETCH_ERROR) return `descriptor address 0x${at.toString(16)} is not memory`;
    const words = [0, 1, 2, 3].map((i) => (i < 2 || ring.wide ? this.memory.read64(at + BigInt(i * 8)) : 0n));
    return validateVtdDescriptor(words, ring.wide, this.config)?.reason ?? `IQEI ${iqei}`;
  }
}
