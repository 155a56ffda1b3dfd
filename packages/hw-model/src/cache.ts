/**
 * Hardware caches: bounded (oldest entry evicted when full) or strict (never evicts, so every
 * missing invalidation stays visible). Entries leave only through eviction or the invalidation
 * commands of the architecture — never because memory changed.
 */

/** Options of {@link HardwareCache}. */
export interface HardwareCacheOptions {
  /** Capacity in entries (ignored when strict). */
  readonly capacity: number;
  /** Never evict. */
  readonly strict: boolean;
}

/** A keyed cache with FIFO eviction and predicate invalidation. */
export class HardwareCache<V> {
  private readonly map = new Map<string | number, V>();
  /** Lookups that hit. */
  hits = 0;
  /** Lookups that missed. */
  misses = 0;
  /** Entries evicted for capacity. */
  evictions = 0;

  constructor(
    /** Name for inspection ("config", "tlb"). */
    readonly name: string,
    private readonly options: HardwareCacheOptions,
  ) {}

  /** Number of entries. */
  get size(): number {
    return this.map.size;
  }

  /** The cached entries, oldest first. */
  entries(): V[] {
    return [...this.map.values()];
  }

  /** The entry under `key`, counting a hit or miss. */
  get(key: string | number): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) this.misses++;
    else this.hits++;
    return v;
  }

  /** Inserts (or replaces) an entry, evicting the oldest when a bounded cache is full. */
  set(key: string | number, value: V): void {
    this.map.delete(key);
    if (!this.options.strict && this.map.size >= this.options.capacity) {
      const oldest = this.map.keys().next();
      if (!oldest.done) {
        this.map.delete(oldest.value);
        this.evictions++;
      }
    }
    this.map.set(key, value);
  }

  /** Removes the entries matching `pred`; returns how many. */
  invalidate(pred: (v: V) => boolean): number {
    let n = 0;
    for (const [k, v] of this.map) {
      if (pred(v)) {
        this.map.delete(k);
        n++;
      }
    }
    return n;
  }

  /** Removes everything. */
  clear(): void {
    this.map.clear();
  }
}
