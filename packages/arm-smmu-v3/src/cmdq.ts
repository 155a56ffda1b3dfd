/**
 * The command queue as Linux drives it (`arm_smmu_cmdq_issue_cmdlist`, the batch helpers and
 * the CMD_SYNC wait). One producer here, so the lock-free multi-producer machinery of Linux
 * reduces to: reserve space, write the commands (plus a CMD_SYNC when asked), publish PROD,
 * and wait for the SYNC by MSI polling (coherent SMMU with MSIs) or by polling CONS.
 */
import { ETIMEDOUT } from '@iommufd/uapi';
import type { Status } from '@iommufd/driver-api';
import { CMD_SYNC_CS, SMMU_CMD_SYNC, SMMU_Q_BASE, queueIncrement, queueIndex } from '@iommufd/hw-model';
import { buildCmd, type CmdqEnt, type SmmuCommand } from './cmds.js';

/** `CMDQ_BATCH_ENTRIES` (= BITS_PER_LONG): commands per batch. */
export const CMDQ_BATCH_ENTRIES = 64;
/** `CMDQ_ENT_DWORDS` × 8. */
const CMDQ_ENT_BYTES = 16;
/** How many times a waiter polls before giving up ("CMD_SYNC timeout", -ETIMEDOUT). */
const POLL_LIMIT = 16;

/** What the queue needs from its SMMU: MMIO, memory, and the interrupt it may take while spinning. */
export interface CmdqHost {
  /** 32-bit register read at `offset` of the SMMU frame. */
  readReg(offset: number): number;
  /** 32-bit register write. */
  writeReg(offset: number, value: number): void;
  /** Physical memory access for the ring. */
  readonly memory: { write(pa: bigint, data: Uint8Array): void; write64(pa: bigint, v: bigint): void; read32(pa: bigint): number };
  /** Runs pending interrupt handlers (a CPU spinning on a SYNC still takes the GERROR IRQ). */
  serviceInterrupts(): void;
  /** Whether CMD_SYNC completion is polled through its own MSI write (`ARM_SMMU_OPT_MSIPOLL`). */
  readonly msiPoll: boolean;
  /** Reports a driver message (`dev_err` / `dev_warn`). */
  log(message: string): void;
}

/** A command ring in memory, its registers, and the driver's shadow PROD/CONS (`llq`). */
export class CommandQueue {
  /** Shadow PROD (index + wrap). */
  prod = 0;
  /** Shadow CONS (index + wrap), refreshed from the register. */
  cons = 0;

  constructor(
    private readonly host: CmdqHost,
    /** Physical base of entry 0 (aligned to the ring size). */
    readonly base: bigint,
    /** log2 of the number of entries (`max_n_shift`). */
    readonly log2Size: number,
    /** Offset of the PROD register. */
    readonly prodReg: number,
    /** Offset of the CONS register. */
    readonly consReg: number,
    /**
     * Tegra241 VCMDQs are polled on CONS with CS=NONE SYNCs
     * (`arm_smmu_cmdq_needs_busy_polling`).
     */
    readonly busyPolling = false,
    /** Commands this queue accepts (`cmdq->supports_cmd`); all when absent. */
    readonly supportsCmd?: (ent: CmdqEnt) => boolean,
  ) {}

  /** The `*Q_BASE` register value: RWA | ADDR | LOG2SIZE. */
  get qBase(): bigint {
    return SMMU_Q_BASE.encode({ RA: 1, ADDR: this.base >> 5n, LOG2SIZE: this.log2Size })[0]!;
  }

  /** Physical address of the slot of pointer `p`. */
  slot(p: number): bigint {
    return this.base + BigInt(queueIndex(p, this.log2Size) * CMDQ_ENT_BYTES);
  }

  private readCons(): number {
    return this.host.readReg(this.consReg) & ((2 << this.log2Size) - 1);
  }

  private space(): number {
    const size = 1 << this.log2Size;
    const mask = (2 << this.log2Size) - 1;
    return size - ((this.prod - this.cons) & mask);
  }

  /** `queue_consumed(llq, prod)`: CONS has moved past the entry at `p`. */
  private consumed(p: number): boolean {
    const idx = (v: number) => queueIndex(v, this.log2Size);
    const wrp = (v: number) => v & (1 << this.log2Size);
    return (wrp(this.cons) === wrp(p) && idx(this.cons) > idx(p)) || (wrp(this.cons) !== wrp(p) && idx(this.cons) <= idx(p));
  }

  /**
   * `arm_smmu_cmdq_issue_cmdlist(cmds, n, sync)`: writes the commands contiguously, appends a
   * CMD_SYNC when `sync`, publishes PROD and waits for the SYNC. 0 or ETIMEDOUT. `cmds` is
   * either the commands or their bytes (16 per command, little-endian dw0 then dw1: the
   * ring's own format), which go into the ring in one write per contiguous run.
   */
  issueCmdlist(cmds: readonly SmmuCommand[] | Uint8Array, sync: boolean): Status {
    const bytes = cmds instanceof Uint8Array ? cmds : commandBytes(cmds);
    if (bytes.length % CMDQ_ENT_BYTES !== 0) throw new RangeError(`command bytes must be a multiple of ${CMDQ_ENT_BYTES}, got ${bytes.length}`);
    const count = bytes.length / CMDQ_ENT_BYTES;
    const n = count + (sync ? 1 : 0);
    if (n > 1 << this.log2Size) throw new RangeError(`${n} commands do not fit a ${1 << this.log2Size}-entry queue`);
    for (let tries = 0; this.space() < n; tries++) {
      this.cons = this.readCons();
      if (this.space() >= n) break;
      if (tries === POLL_LIMIT) {
        this.host.log('CMDQ timeout');
        return ETIMEDOUT;
      }
      this.host.serviceInterrupts();
    }
    let p = this.writeRun(this.prod, bytes);
    const syncAt = p;
    if (sync) {
      // MSIPOLL: the SYNC's completion MSI writes MSIData (0) over the SYNC's own first word.
      const sc = this.host.msiPoll ? syncWithMsiAddress(this.slot(p)) : [...SYNC_SEV];
      if (this.busyPolling) SMMU_CMD_SYNC.set(sc, 'CS', CMD_SYNC_CS.NONE);
      this.writeSlot(p, sc[0]!, sc[1]!);
      p = queueIncrement(p, this.log2Size);
    }
    this.prod = p;
    this.host.writeReg(this.prodReg, p);
    if (!sync) return 0;
    for (let tries = 0; ; tries++) {
      this.cons = this.readCons();
      const done = this.host.msiPoll && !this.busyPolling ? this.host.memory.read32(this.slot(syncAt)) === 0 : this.consumed(syncAt);
      if (done) return 0;
      if (tries === POLL_LIMIT) {
        this.host.log(`CMD_SYNC timeout at 0x${syncAt.toString(16)} [hwprod 0x${p.toString(16)}, hwcons 0x${this.cons.toString(16)}]`);
        return ETIMEDOUT;
      }
      this.host.serviceInterrupts();
    }
  }

  /** Writes whole commands from slot `p` on (at most two runs: up to the end of the ring, then from slot 0); the pointer after them. */
  private writeRun(p: number, bytes: Uint8Array): number {
    const count = bytes.length / CMDQ_ENT_BYTES;
    if (count === 0) return p;
    const size = 1 << this.log2Size;
    const first = Math.min(count, size - queueIndex(p, this.log2Size));
    this.host.memory.write(this.slot(p), bytes.subarray(0, first * CMDQ_ENT_BYTES));
    if (first < count) this.host.memory.write(this.base, bytes.subarray(first * CMDQ_ENT_BYTES));
    return (p + count) & ((2 << this.log2Size) - 1);
  }

  private writeSlot(p: number, dw0: bigint, dw1: bigint): void {
    const at = this.slot(p);
    this.host.memory.write64(at, dw0);
    this.host.memory.write64(at + 8n, dw1);
  }
}

/** `CMD_SYNC` completing by SEV, and by MSI (address 0 here; see {@link syncWithMsiAddress}). */
const SYNC_SEV = buildCmd({ opcode: 'CMD_SYNC' });
const SYNC_MSI = buildCmd({ opcode: 'CMD_SYNC', msiaddr: 0n });

/**
 * `buildCmd({ opcode: 'CMD_SYNC', msiaddr })` from the prebuilt command: only MSIADDR depends
 * on the address (one CMD_SYNC per batch, so building it field by field each time would cost
 * as much as the batch).
 */
function syncWithMsiAddress(msiaddr: bigint): bigint[] {
  const sc = [...SYNC_MSI];
  SMMU_CMD_SYNC.set(sc, 'MSIADDR', (msiaddr & ((1n << 52n) - 1n)) >> 2n);
  return sc;
}

/** The ring bytes of `cmds` (16 per command, little-endian dw0 then dw1). */
function commandBytes(cmds: readonly SmmuCommand[]): Uint8Array {
  const out = new Uint8Array(cmds.length * CMDQ_ENT_BYTES);
  const view = new DataView(out.buffer);
  cmds.forEach(([dw0, dw1], i) => {
    view.setBigUint64(i * CMDQ_ENT_BYTES, BigInt.asUintN(64, dw0), true);
    view.setBigUint64(i * CMDQ_ENT_BYTES + 8, BigInt.asUintN(64, dw1), true);
  });
  return out;
}

/**
 * `struct arm_smmu_cmdq_batch`: up to {@link CMDQ_BATCH_ENTRIES} commands issued together;
 * a full batch is issued without a SYNC, {@link CmdqBatch.submit} issues the rest with one.
 */
export class CmdqBatch {
  private cmds: SmmuCommand[] = [];
  private status: Status = 0;
  private cmdq: CommandQueue | undefined;
  constructor(
    /** `arm_smmu_get_cmdq`: the queue for a command (a Tegra241 VCMDQ or the main CMDQ). */
    private readonly pick: (ent: CmdqEnt) => CommandQueue,
    /** `ARM_SMMU_OPT_CMDQ_FORCE_SYNC`: a SYNC every 63 commands (MMU-700 erratum). */
    private readonly forceSync = false,
  ) {}

  /** `arm_smmu_cmdq_batch_add`. */
  add(ent: CmdqEnt): void {
    this.cmdq ??= this.pick(ent);
    const unsupported = this.cmdq.supportsCmd !== undefined && !this.cmdq.supportsCmd(ent);
    if ((this.forceSync && this.cmds.length === CMDQ_BATCH_ENTRIES - 1) || unsupported) {
      this.flush(true);
      if (unsupported) this.cmdq = this.pick(ent);
    }
    if (this.cmds.length === CMDQ_BATCH_ENTRIES) this.flush(false);
    this.cmds.push(buildCmd(ent));
  }

  /** `arm_smmu_cmdq_batch_submit`: issues what is left with a CMD_SYNC. */
  submit(): Status {
    this.flush(true);
    return this.status;
  }

  private flush(sync: boolean): void {
    if (this.cmdq === undefined) return;
    const st = this.cmdq.issueCmdlist(this.cmds, sync);
    if (st !== 0) this.status = st;
    this.cmds = [];
  }
}
