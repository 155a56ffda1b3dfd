import {
  createQueueEngine, PhysicalStore, type CacheEffects, type EffectBatch, type EngineImpl, type InvalidationFault,
  type QueueEngine,
} from '../src/index.js';

export const IMPLS: readonly EngineImpl[] = ['wasm', 'ts'];

/** A fresh store + engine of `impl`. */
export async function engineOf(impl: EngineImpl): Promise<QueueEngine> {
  const e = await createQueueEngine(new PhysicalStore(), { impl });
  if (e.impl !== impl) throw new Error(`${impl} engine unavailable`);
  return e;
}

/** Writes 16-byte commands (or 32-byte descriptors) as u64 words at `pa`. */
export function writeWords(store: PhysicalStore, pa: bigint, words: readonly bigint[]): void {
  words.forEach((w, i) => store.write64(pa + BigInt(i * 8), w));
}

/** A sink that records every batch (raw bytes + decoded) and answers with scripted faults. */
export class RecordingSink implements CacheEffects {
  readonly batches: Uint8Array[] = [];
  readonly decoded: ReturnType<EffectBatch['toArray']>[] = [];
  constructor(private readonly faults: (InvalidationFault | undefined)[] = []) {}
  applyEffects(batch: EffectBatch): InvalidationFault | undefined {
    this.batches.push(batch.bytes());
    this.decoded.push(batch.toArray());
    return this.faults.shift();
  }
  get all(): ReturnType<EffectBatch['toArray']> {
    return this.decoded.flat();
  }
}

/** Little-endian u64 words of a byte array. */
export function words64(bytes: Uint8Array): bigint[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.length / 8 }, (_, i) => dv.getBigUint64(i * 8, true));
}
