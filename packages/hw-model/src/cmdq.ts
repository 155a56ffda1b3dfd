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
}

/** Executes one command; returns a CONS.ERR code ({@link CMDQ_ERR}.NONE when it took effect). */
export interface CommandExecutor {
  /** Executes the command `dw0`,`dw1`. */
  execute(dw0: bigint, dw1: bigint): number;
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
