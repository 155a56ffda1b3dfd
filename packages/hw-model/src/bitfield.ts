/**
 * Bit-field layouts: a hardware structure (STE, CD, page descriptor, command, event record,
 * queue-invalidation descriptor) is declared ONCE as data — field name, 64-bit word, bit range —
 * and every accessor (get/set/decode/encode/read from memory) is derived from that declaration.
 */

/** One field: `[name, word, hi, lo]` — bits `hi..lo` (inclusive) of little-endian 64-bit word `word`. */
export type BitFieldSpec = readonly [name: string, word: number, hi: number, lo: number];

/** Field values by name, as produced by {@link BitLayout.decode}. */
export type BitFields<F extends readonly BitFieldSpec[]> = { [K in F[number][0]]: bigint };

/** Thrown for a malformed layout declaration or an out-of-range field value. */
export class BitLayoutError extends Error {
  /** Error name for `instanceof`-free checks. */
  override readonly name = 'BitLayoutError';
}

interface Compiled {
  readonly word: number;
  readonly lo: bigint;
  readonly width: number;
  readonly mask: bigint;
}

/** A structure of `words` little-endian 64-bit words with named bit fields. */
export interface BitLayout<F extends readonly BitFieldSpec[]> {
  /** Structure name (for messages and {@link BitLayout.format}). */
  readonly name: string;
  /** Number of 64-bit words. */
  readonly words: number;
  /** Size in bytes. */
  readonly size: number;
  /** The declaration. */
  readonly fields: F;
  /** Value of field `f` in `w`. */
  get(w: ArrayLike<bigint>, f: F[number][0]): bigint;
  /** Value of field `f` as a number (fields up to 53 bits). */
  num(w: ArrayLike<bigint>, f: F[number][0]): number;
  /** Stores `v` in field `f` of `w` (throws {@link BitLayoutError} if it does not fit). */
  set(w: bigint[], f: F[number][0], v: bigint | number | boolean): void;
  /** All fields by name. */
  decode(w: ArrayLike<bigint>): BitFields<F>;
  /** Builds the words from field values (missing fields are zero). */
  encode(values: Partial<Record<F[number][0], bigint | number | boolean>>): bigint[];
  /** The words from little-endian bytes at `offset`. */
  fromBytes(bytes: Uint8Array, offset?: number): bigint[];
  /** Little-endian bytes of the words. */
  toBytes(w: ArrayLike<bigint>): Uint8Array;
  /** `name{field=0x..,...}` of the non-zero fields. */
  format(w: ArrayLike<bigint>): string;
  /**
   * A precomputed reader of field `f` from the value of its own word (for hot paths: no
   * array, no name lookup per access).
   */
  reader(f: F[number][0]): BitFieldReader;
}

/** A compiled accessor of one field (see {@link BitLayout.reader}). */
export interface BitFieldReader {
  /** The 64-bit word the field lives in. */
  readonly word: number;
  /** The field's mask in place within its word. */
  readonly mask: bigint;
  /** The field's value from the value of its word. */
  get(word: bigint): bigint;
  /** True when the field is non-zero in the word. */
  test(word: bigint): boolean;
}

/**
 * Declares a bit layout. Fields must lie inside the structure, have `hi >= lo`, and not
 * overlap each other (checked once, here).
 */
export function defineBitLayout<const F extends readonly BitFieldSpec[]>(name: string, words: number, fields: F): BitLayout<F> {
  const compiled = new Map<string, Compiled>();
  const used: bigint[] = new Array<bigint>(words).fill(0n);
  for (const [fname, word, hi, lo] of fields) {
    if (compiled.has(fname)) throw new BitLayoutError(`${name}: field ${fname} declared twice`);
    if (!(word >= 0 && word < words && lo >= 0 && hi >= lo && hi < 64)) throw new BitLayoutError(`${name}.${fname}: bad range word ${word} bits ${hi}:${lo}`);
    const width = hi - lo + 1;
    const mask = (1n << BigInt(width)) - 1n;
    const placed = mask << BigInt(lo);
    if ((used[word]! & placed) !== 0n) throw new BitLayoutError(`${name}.${fname}: overlaps another field in word ${word}`);
    used[word] = used[word]! | placed;
    compiled.set(fname, { word, lo: BigInt(lo), width, mask });
  }
  const field = (f: string): Compiled => {
    const c = compiled.get(f);
    if (c === undefined) throw new BitLayoutError(`${name} has no field ${f}`);
    return c;
  };
  const get = (w: ArrayLike<bigint>, f: string): bigint => {
    const c = field(f);
    return ((w[c.word] ?? 0n) >> c.lo) & c.mask;
  };
  const set = (w: bigint[], f: string, v: bigint | number | boolean): void => {
    const c = field(f);
    const b = typeof v === 'bigint' ? v : BigInt(typeof v === 'boolean' ? (v ? 1 : 0) : v);
    if (b < 0n || b > c.mask) throw new BitLayoutError(`${name}.${f}: value 0x${b.toString(16)} does not fit in ${c.width} bits`);
    w[c.word] = ((w[c.word] ?? 0n) & ~(c.mask << c.lo)) | (b << c.lo);
  };
  const layout: BitLayout<F> = {
    name,
    words,
    size: words * 8,
    fields,
    get,
    num: (w, f) => Number(get(w, f)),
    set,
    decode(w) {
      const out: Record<string, bigint> = {};
      for (const [fname] of fields) out[fname] = get(w, fname);
      return out as BitFields<F>;
    },
    encode(values) {
      const w = new Array<bigint>(words).fill(0n);
      for (const [k, v] of Object.entries(values) as [string, bigint | number | boolean | undefined][]) if (v !== undefined) set(w, k, v);
      return w;
    },
    fromBytes(bytes, offset = 0) {
      const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, words * 8);
      return Array.from({ length: words }, (_, i) => dv.getBigUint64(i * 8, true));
    },
    toBytes(w) {
      const out = new Uint8Array(words * 8);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < words; i++) dv.setBigUint64(i * 8, BigInt.asUintN(64, w[i] ?? 0n), true);
      return out;
    },
    reader(f) {
      const c = field(f);
      const placed = c.mask << c.lo;
      return { word: c.word, mask: placed, get: (v) => (v >> c.lo) & c.mask, test: (v) => (v & placed) !== 0n };
    },
    format(w) {
      const parts: string[] = [];
      for (const [fname] of fields) {
        const v = get(w, fname);
        if (v !== 0n) parts.push(`${fname}=0x${v.toString(16)}`);
      }
      return `${name}{${parts.join(',')}}`;
    },
  };
  return layout;
}

/**
 * A field of a one-word layout as seen from the 32-bit half it lies in, for walkers that
 * read descriptors as two Numbers (`PhysicalMemory.readRamWord`)
 * instead of one BigInt. The masks come from the layout's declaration, so no bit position
 * is written twice.
 */
export interface HalfWordField {
  /** The field's bits in place within bits 31:0 (as an unsigned Number). */
  readonly lo: number;
  /** The field's bits in place within bits 63:32. */
  readonly hi: number;
  /** Right shift of the field within the half it lies in (fields that straddle bit 32 have none). */
  readonly shift: number;
  /** Mask of the field's value after the shift. */
  readonly valueMask: number;
}

/** The {@link HalfWordField} view of field `f` of word `word` of `layout`. */
export function halfWordField<F extends readonly BitFieldSpec[]>(layout: BitLayout<F>, f: F[number][0]): HalfWordField {
  const mask = layout.reader(f).mask;
  const lo = Number(mask & 0xffff_ffffn);
  const hi = Number(mask >> 32n);
  const placed = lo !== 0 ? lo : hi;
  let shift = 0;
  while (placed !== 0 && Math.floor(placed / 2 ** shift) % 2 === 0) shift++;
  const straddles = lo !== 0 && hi !== 0;
  return { lo, hi, shift: straddles ? 0 : shift, valueMask: straddles ? 0 : Math.floor(placed / 2 ** shift) };
}
