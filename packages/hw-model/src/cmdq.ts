/**
 * The command-queue consumer port. The SMMUv3 CMDQ and the Tegra241 VCMDQs consume their rings
 * through a {@link CommandQueueConsumer}, so that the WebAssembly engine of
 * `@iommufd/queue-engine` can replace {@link typescriptCommandQueueConsumer} without a change
 * in behaviour: fetch at CONS, execute, advance CONS only after the command took effect, stop
 * at the first error with CONS still pointing at the failed command (reference §3.3).
 */
import type { PhysicalMemory } from './memory.js';
import { queueEmpty, queueIncrement, queueIndex } from './queue.js';
import { CMDQ_ERR } from './smmuv3-layouts.js';

/** The state of a command ring when consumption starts. */
export interface CommandRing {
  /** Physical address of entry 0. */
  readonly base: bigint;
  /** log2 of the number of 16-byte entries. */
  readonly log2Size: number;
  /** PROD (index + wrap). */
  readonly prod: number;
  /** CONS (index + wrap, without the ERR field). */
  readonly cons: number;
  /**
   * Which hardware queue this is (`'cmdq'`, `'vcmdq3'`, ...): consumers that keep state per
   * queue (the queue engine's ring mapping, a pending ATC_INV timeout) key it by this.
   * Default `'cmdq'`.
   */
  readonly id?: string;
}

/**
 * What a guest-owned Tegra241 VCMDQ (VINTF HYP_OWN = 0) substitutes, for consumers that
 * restrict and rewrite commands themselves (the queue engine) instead of calling
 * {@link CommandExecutor.execute}: the VINTF's VMID, its enabled SID_MATCH → SID_REPLACE
 * slots, and the SMMU's own executor that runs the rewritten commands.
 */
export interface GuestQueueContext {
  /** VINTF CONFIG.VMID, stamped into TLBI_NH_ASID / TLBI_NH_VA. */
  readonly vmid: number;
  /** Enabled slots as virtual SID → physical SID (the first slot wins for a repeated virtual SID). */
  readonly streams: readonly (readonly [vsid: number, psid: number])[];
  /** The SMMU's executor for commands after substitution. */
  readonly host: CommandExecutor;
}

/** Executes one command; returns a CONS.ERR code ({@link CMDQ_ERR}.NONE when it took effect). */
export interface CommandExecutor {
  /** Executes the command `dw0`,`dw1`. */
  execute(dw0: bigint, dw1: bigint): number;
  /** Set for a guest-owned VCMDQ: what `execute` restricts and substitutes before the SMMU runs a command. */
  readonly guest?: GuestQueueContext;
}

/** Where consumption stopped. */
export interface CommandQueueResult {
  /** New CONS (index + wrap): PROD when all were consumed, else the failed command. */
  readonly cons: number;
  /** {@link CMDQ_ERR} code; NONE when the queue drained. */
  readonly error: number;
  /** Commands that took effect. */
  readonly executed: number;
}

/** Consumes a command ring up to PROD or the first error. */
export interface CommandQueueConsumer {
  /** Consumes `ring` reading entries through `memory` and executing them on `executor`. */
  consume(ring: CommandRing, memory: PhysicalMemory, executor: CommandExecutor): CommandQueueResult;
}

/** The TypeScript consumer (the reference semantics for the queue engine). */
export const typescriptCommandQueueConsumer: CommandQueueConsumer = {
  consume(ring, memory, executor) {
    let cons = ring.cons;
    let executed = 0;
    while (!queueEmpty(ring.prod, cons, ring.log2Size)) {
      const at = ring.base + BigInt(queueIndex(cons, ring.log2Size) * 16);
      // A fetch from something that is not RAM is an external abort on the queue read.
      if (!memory.isRam(at, 16)) return { cons, error: CMDQ_ERR.ABT, executed };
      const err = executor.execute(memory.read64(at), memory.read64(at + 8n));
      if (err !== CMDQ_ERR.NONE) return { cons, error: err, executed };
      executed++;
      cons = queueIncrement(cons, ring.log2Size);
    }
    return { cons, error: CMDQ_ERR.NONE, executed };
  },
};
