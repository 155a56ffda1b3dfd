/**
 * Fuzzer operations as data. An operation is a kind plus a fixed list of random 32-bit words;
 * the executor derives every choice (which fd, which live object, valid or mutated struct,
 * which bytes) from those words and the state at that moment. So an operation never names an
 * ID or an fd directly, any sub-list of a failing run is still a runnable program (what the
 * minimizer needs), and the JSON of a run is small.
 */
import { FuzzRandom } from './prng.js';

/** Every operation the fuzzer issues. */
export const FUZZ_OP_KINDS = [
  'OPEN_IOMMUFD',
  'OPEN_VFIO_COMPAT',
  'CLOSE',
  'MMAP_ANON',
  'MUNMAP',
  'POKE',
  'MEMFD',
  'IOAS_ALLOC',
  'IOAS_MAP',
  'IOAS_MAP_FILE',
  'IOAS_COPY',
  'IOAS_UNMAP',
  'IOAS_IOVA_RANGES',
  'IOAS_ALLOW_IOVAS',
  'OPTION',
  'HWPT_ALLOC',
  'HWPT_INVALIDATE',
  'SET_DIRTY_TRACKING',
  'GET_DIRTY_BITMAP',
  'GET_HW_INFO',
  'VIOMMU_ALLOC',
  'VDEVICE_ALLOC',
  'VEVENTQ_ALLOC',
  'HW_QUEUE_ALLOC',
  'FAULT_QUEUE_ALLOC',
  'DESTROY',
  'VFIO_OPEN',
  'VFIO_BIND',
  'VFIO_ATTACH',
  'VFIO_DETACH',
  'READ_EVENT',
  'WRITE_FAULT',
  'MMAP_REGION',
  'DMA',
  'GARBAGE_IOCTL',
  'CLOSE_ALL',
  'SPAWN_PROCESS',
  'SWITCH_PROCESS',
] as const;

/** One operation kind of {@link FUZZ_OP_KINDS}. */
export type FuzzOpKind = (typeof FUZZ_OP_KINDS)[number];

/** One operation: its kind and the random words it draws its choices from. */
export interface FuzzOp {
  /** What the operation does. */
  readonly kind: FuzzOpKind;
  /** Unsigned 32-bit words every choice of the operation is drawn from. */
  readonly args: readonly number[];
}

/** Words drawn per operation (more than any kind needs; a missing word reads as 0). */
export const FUZZ_OP_WORDS = 16;

/** Relative frequency of each kind: setup and mapping ops often, teardown-everything rarely. */
const WEIGHTS: Record<FuzzOpKind, number> = {
  OPEN_IOMMUFD: 3,
  OPEN_VFIO_COMPAT: 1,
  CLOSE: 3,
  MMAP_ANON: 6,
  MUNMAP: 2,
  POKE: 3,
  MEMFD: 2,
  IOAS_ALLOC: 6,
  IOAS_MAP: 12,
  IOAS_MAP_FILE: 4,
  IOAS_COPY: 5,
  IOAS_UNMAP: 7,
  IOAS_IOVA_RANGES: 2,
  IOAS_ALLOW_IOVAS: 2,
  OPTION: 2,
  HWPT_ALLOC: 8,
  HWPT_INVALIDATE: 3,
  SET_DIRTY_TRACKING: 2,
  GET_DIRTY_BITMAP: 2,
  GET_HW_INFO: 2,
  VIOMMU_ALLOC: 4,
  VDEVICE_ALLOC: 3,
  VEVENTQ_ALLOC: 2,
  HW_QUEUE_ALLOC: 3,
  FAULT_QUEUE_ALLOC: 2,
  DESTROY: 8,
  VFIO_OPEN: 4,
  VFIO_BIND: 5,
  VFIO_ATTACH: 8,
  VFIO_DETACH: 3,
  READ_EVENT: 2,
  WRITE_FAULT: 1,
  MMAP_REGION: 2,
  DMA: 14,
  GARBAGE_IOCTL: 3,
  CLOSE_ALL: 0.15,
  SPAWN_PROCESS: 0.3,
  SWITCH_PROCESS: 3,
};

const CUMULATIVE: { kind: FuzzOpKind; upTo: number }[] = [];
let total = 0;
for (const kind of FUZZ_OP_KINDS) {
  total += WEIGHTS[kind];
  CUMULATIVE.push({ kind, upTo: total });
}

/** Draws one operation from `rng`. */
export function generateOp(rng: FuzzRandom): FuzzOp {
  const x = (rng.nextU32() / 2 ** 32) * total;
  const kind = CUMULATIVE.find((c) => x < c.upTo)?.kind ?? 'DMA';
  const args: number[] = [];
  for (let i = 0; i < FUZZ_OP_WORDS; i++) args.push(rng.nextU32());
  return { kind, args };
}

/** Reads an operation's words in order; past the end every word is 0. */
export class OpArgs {
  private i = 0;
  constructor(private readonly words: readonly number[]) {}
  /** The next word. */
  u32(): number {
    return (this.words[this.i++] ?? 0) >>> 0;
  }
  /** The next word reduced to `[0, n)`. */
  below(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  /** True with probability `percent`/100. */
  chance(percent: number): boolean {
    return this.below(100) < percent;
  }
  /** A 64-bit value from two words. */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
  /** One of `items` (undefined when empty). */
  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.below(items.length)];
  }
}
