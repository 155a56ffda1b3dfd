/**
 * The vsmmu-mix workload of shared/design/BENCH.md, exported so that the benchmark, the
 * tests and anyone reproducing the figures run the very same thing: the splitmix64 guest
 * command generator, FNV-1a 64 over the execution log, and a harness that runs the trapped
 * vSMMU path on a {@link QueueEngine}.
 */
import { CMDQ_OP_ATC_INV, CMDQ_OP_CFGI_CD, CMDQ_OP_CMD_SYNC, CMDQ_OP_TLBI_NH_ALL, CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_TLBI_NH_VA, VSMMU_BATCH } from './abi.js';
import { QueueEngineError, type QueueEngine, type SmmuQueue, type Vsmmu } from './engine.js';
import { PAGE_SIZE } from './physical-store.js';

/** The vIOMMU's VMID in vsmmu-mix. */
export const VSMMU_MIX_VMID = 0x2a;

/** The 64 vDEVICEs of vsmmu-mix: vSID_i = 0x100 + 3·i → pSID_i = 0x8000 + 7·i. */
export function vsmmuMixStreams(): [vsid: number, psid: number][] {
  return Array.from({ length: 64 }, (_, i) => [0x100 + 3 * i, 0x8000 + 7 * i]);
}

/** 64-bit (hi, lo) product mod 2^64 of two u64 given as u32 halves. */
function mul64(aH: number, aL: number, bH: number, bL: number, out: Uint32Array): void {
  const a0 = aL & 0xffff, a1 = aL >>> 16, b0 = bL & 0xffff, b1 = bL >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  out[1] = ((mid & 0xffff) << 16) | (p00 & 0xffff);
  out[0] = (mid >>> 16) + (p01 >>> 16) + (p10 >>> 16) + p11 + Math.imul(aH, bL) + Math.imul(aL, bH);
}

/**
 * Writes the `n` guest commands of vsmmu-mix for `seed` into `target` (n × 16 bytes,
 * 4-byte aligned view), as BENCH.md's table defines them.
 */
export function generateVsmmuMix(target: Uint8Array, n: number, seed: bigint): void {
  if (target.byteOffset % 4 !== 0 || target.length < n * 16) throw new QueueEngineError(`target must be a 4-byte aligned view of at least ${n * 16} bytes`);
  const w = new Uint32Array(target.buffer, target.byteOffset, n * 4);
  let sH = Number((seed >> 32n) & 0xffffffffn), sL = Number(seed & 0xffffffffn);
  const t = new Uint32Array(2);
  for (let k = 0; k < n; k++) {
    // state += 0x9E3779B97F4A7C15
    const lo = sL + 0x7f4a7c15;
    sL = lo >>> 0;
    sH = (sH + 0x9e3779b9 + (lo > 0xffffffff ? 1 : 0)) >>> 0;
    let zH = sH, zL = sL;
    // z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9
    zL = (zL ^ ((zL >>> 30) | (zH << 2))) >>> 0; zH = (zH ^ (zH >>> 30)) >>> 0;
    mul64(zH, zL, 0xbf58476d, 0x1ce4e5b9, t); zH = t[0]!; zL = t[1]!;
    // z = (z ^ z >> 27) * 0x94D049BB133111EB
    zL = (zL ^ ((zL >>> 27) | (zH << 5))) >>> 0; zH = (zH ^ (zH >>> 27)) >>> 0;
    mul64(zH, zL, 0x94d049bb, 0x133111eb, t); zH = t[0]!; zL = t[1]!;
    // r = z ^ z >> 31
    const rL = (zL ^ ((zL >>> 31) | (zH << 1))) >>> 0, rH = (zH ^ (zH >>> 31)) >>> 0;
    const sel = ((rH % 100) * 96 + (rL % 100)) % 100; // 2^32 mod 100 = 96
    const asid = (rL >>> 8) & 0xffff;
    const vsid = 0x100 + 3 * ((rL >>> 8) & 63);
    const p = k * 4;
    if (sel < 70) {
      w[p] = CMDQ_OP_TLBI_NH_VA; w[p + 1] = (0xdead | (asid << 16)) >>> 0;
      w[p + 2] = (((rL >>> 7) & 1) | ((((rL >>> 24) | ((rH & 0xfff) << 8)) & 0xfffff) << 12)) >>> 0;
      w[p + 3] = (rH >>> 12) & 0xffff;
    } else if (sel < 80) {
      w[p] = CMDQ_OP_TLBI_NH_ASID; w[p + 1] = (asid << 16) >>> 0; w[p + 2] = 0; w[p + 3] = 0;
    } else if (sel < 90) {
      w[p] = CMDQ_OP_ATC_INV; w[p + 1] = vsid; w[p + 2] = ((rH >>> 8) & 0x3f) % 53; w[p + 3] = 0;
    } else if (sel < 95) {
      w[p] = (CMDQ_OP_CFGI_CD | ((((rL >>> 16) | ((rH & 0xf) << 16)) & 0xfffff) << 12) | (1 << 11)) >>> 0;
      w[p + 1] = vsid; w[p + 2] = rH >>> 31; w[p + 3] = 0;
    } else {
      w[p] = 0x30; w[p + 1] = 0; w[p + 2] = 0; w[p + 3] = 0;
    }
  }
}

/** FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) of `bytes`. */
export function fnv1a64(bytes: Uint8Array): bigint {
  let h = 0xcbf29ce4, l = 0x84222325;
  for (let i = 0; i < bytes.length; i++) {
    l = (l ^ bytes[i]!) >>> 0;
    // (h, l) * (2^40 + 0x1b3) mod 2^64
    const p = l * 0x1b3;
    const carry = Math.floor(p / 4294967296);
    h = (Math.imul(h, 0x1b3) + carry + (l << 8)) >>> 0;
    l = p >>> 0;
  }
  return (BigInt(h) << 32n) | BigInt(l);
}

/** Executed commands per opcode of a vsmmu-mix run, in BENCH.md's column order. */
export interface VsmmuMixCounts {
  /** TLBI_NH_VA. */ readonly nhVa: number;
  /** TLBI_NH_ASID. */ readonly nhAsid: number;
  /** TLBI_NH_ALL. */ readonly nhAll: number;
  /** ATC_INV. */ readonly atcInv: number;
  /** CFGI_CD. */ readonly cfgiCd: number;
  /** CMD_SYNC. */ readonly sync: number;
}

/** What one vsmmu-mix run produced. */
export interface VsmmuMixOutcome {
  /** Wall time of the timed region (convert + issue + consume), nanoseconds. */
  readonly ns: number;
  /** Commands the SMMU executed (guest commands + CMD_SYNCs). */
  readonly executed: number;
}

/**
 * vsmmu-mix on one engine: the guest array, a pristine copy, the host CMDQ (2^10 entries)
 * and the execution log live in contiguous ranges of the engine's PhysicalStore.
 */
export class VsmmuMixRun {
  private readonly pristine: Uint8Array;
  private readonly array: number;
  private readonly queue: SmmuQueue;
  private readonly vsmmu: Vsmmu;

  /**
   * @param engine - the engine to measure (a fresh store is best: ranges must be contiguous)
   * @param n - guest commands
   * @param seed - generator seed
   */
  constructor(private readonly engine: QueueEngine, readonly n: number, readonly seed: bigint) {
    const store = engine.store;
    const arrayPages = Math.ceil((n * 16) / PAGE_SIZE) || 1;
    const logBytes = (n + Math.ceil(n / VSMMU_BATCH) + 1) * 16;
    // Physical layout: host CMDQ at 1 GiB, guest array at 4 GiB, log at 16 GiB.
    const ring = 0x4000_0000n;
    this.array = store.ensureContiguous(0x10_0000, arrayPages);
    const log = store.ensureContiguous(0x40_0000, Math.ceil(logBytes / PAGE_SIZE));
    if (this.array < 0 || log < 0) throw new QueueEngineError('vsmmu-mix needs a PhysicalStore whose ranges at 4 GiB and 16 GiB are untouched');
    this.pristine = new Uint8Array(n * 16);
    generateVsmmuMix(this.pristine, n, seed);
    this.queue = engine.createSmmuQueue({ effectsCapacity: 0 });
    this.queue.setBase(ring, 10);
    this.queue.setExecutionLog(logBytes, log);
    this.vsmmu = engine.createVsmmu({ vmid: VSMMU_MIX_VMID, streams: vsmmuMixStreams() });
  }

  /** One run: restore the guest array, then time convert + issue + consume. */
  run(): VsmmuMixOutcome {
    this.engine.store.bytes.set(this.pristine, this.array);
    this.queue.resetExecutionLog();
    this.queue.resetCounters();
    const t0 = process.hrtime.bigint();
    const r = this.vsmmu.invalidate(this.array, this.n, this.queue);
    const ns = Number(process.hrtime.bigint() - t0);
    if (r.status !== 'ok') throw new QueueEngineError(`vsmmu-mix stopped: ${r.status} at index ${r.index}`);
    return { ns, executed: this.queue.executionLog().length / 16 };
  }

  /** Per-opcode counts of the last run. */
  counts(): VsmmuMixCounts {
    const q = this.queue;
    return {
      nhVa: q.executed(CMDQ_OP_TLBI_NH_VA), nhAsid: q.executed(CMDQ_OP_TLBI_NH_ASID), nhAll: q.executed(CMDQ_OP_TLBI_NH_ALL),
      atcInv: q.executed(CMDQ_OP_ATC_INV), cfgiCd: q.executed(CMDQ_OP_CFGI_CD), sync: q.executed(CMDQ_OP_CMD_SYNC),
    };
  }

  /** FNV-1a 64 of the last run's execution log. */
  checksum(): bigint {
    return fnv1a64(this.queue.executionLog());
  }
}
