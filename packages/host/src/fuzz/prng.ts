/**
 * The fuzzer's pseudo-random generator: a 32-bit SplitMix-style mixer over a counter, so a
 * seed alone fixes every operation (no dependence on Math.random or the platform).
 */

/** A small seeded PRNG (SplitMix32): the same seed always gives the same sequence. */
export class FuzzRandom {
  private state: number;

  /** @param seed - any integer; only its low 32 bits matter. */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** An integer in `[0, n)` (n ≥ 1). */
  below(n: number): number {
    return this.nextU32() % n;
  }
}
