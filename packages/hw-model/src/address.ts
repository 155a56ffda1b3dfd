/**
 * Address arithmetic in Numbers for the translation hot paths. Physical and intermediate
 * addresses of both architectures are at most 52 bits (VMSAv8-64 OA, VT-d HAW), which a
 * double holds exactly; input addresses can be 64-bit, so they enter as exact page numbers.
 */

/** 2^n for n = 0..64 (a table: `2 ** n` with a variable exponent is a call to pow). */
export const POW2: readonly number[] = Array.from({ length: 65 }, (_, n) => 2 ** n);

/** 2^32: joins the halves of a 64-bit word (`hi * TWO_32 + lo`). */
export const TWO_32 = 2 ** 32;

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/** The 4 KiB page number of `address`, exact for every 64-bit address (below 2^52). */
export function pageOf(address: bigint): number {
  return address >= 0n && address <= MAX_EXACT ? Math.floor(Number(address) / 4096) : Number(address >> 12n);
}

/** `a mod size` for a power-of-two `size` (no fmod call; exact below 2^53). */
export function offsetIn(a: number, size: number): number {
  return a - Math.floor(a / size) * size;
}
