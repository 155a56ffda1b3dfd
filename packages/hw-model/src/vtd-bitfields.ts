/**
 * Typed field layouts: a hardware structure (register, table entry, descriptor, fault record)
 * is declared once as data — field name, 64-bit word, bit range, and how the value reads
 * (number, shifted bigint, or an address kept in place) — and every accessor, encoder,
 * decoder, reserved-bit mask and pretty-printer is derived from that declaration, so no
 * shift or mask is written by hand in the model's logic. The declaration is checked and
 * compiled by the machine's {@link defineBitLayout} (one validation for every layout); this
 * module adds typed values and reserved-bit masks on top.
 */
import { BitLayoutError, defineBitLayout, type BitLayout } from './bitfield.js';
import type { Word64 } from './memory.js';

/** How a field's value is presented: a number (≤ 32 bits), a shifted bigint, or an address kept in place. */
export type FieldKind = 'num' | 'big' | 'addr';

/** One field of a {@link FieldLayout}: bits `hi..lo` of 64-bit word `word`. */
export interface FieldSpec<N extends string = string, K extends FieldKind = FieldKind> {
  /** Field name (the architecture's mnemonic). */
  readonly name: N;
  /** Index of the little-endian 64-bit word holding the field. */
  readonly word: number;
  /** Highest bit (inclusive) within the word. */
  readonly hi: number;
  /** Lowest bit within the word. */
  readonly lo: number;
  /** Value presentation. */
  readonly kind: K;
}

/** A field read as a `number` (at most 32 bits wide), e.g. `num('DID', 1, 15, 0)` for qw1[15:0]. */
export function num<const N extends string>(name: N, word: number, hi: number, lo: number = hi): FieldSpec<N, 'num'> {
  if (hi - lo + 1 > 32) throw new BitLayoutError(`field ${name}: a 'num' field is at most 32 bits wide; use big() or addr()`);
  return { name, word, hi, lo, kind: 'num' };
}

/** A field read as a shifted `bigint` (any width up to 64 bits). */
export function big<const N extends string>(name: N, word: number, hi: number, lo: number): FieldSpec<N, 'big'> {
  return { name, word, hi, lo, kind: 'big' };
}

/**
 * An address field read as a `bigint` left in place (not shifted), e.g. a page-table
 * pointer in bits 63:12 reads as the physical address itself.
 */
export function addr<const N extends string>(name: N, word: number, hi: number, lo: number): FieldSpec<N, 'addr'> {
  return { name, word, hi, lo, kind: 'addr' };
}

/** The value type of a field kind. */
export type FieldValue<K extends FieldKind> = K extends 'num' ? number : bigint;

/** The decoded record of a layout with fields `F`. */
export type FieldLayoutValue<F extends readonly FieldSpec[]> = {
  -readonly [S in F[number] as S['name']]: FieldValue<S['kind']>;
};

/** Field names of a layout. */
export type FieldName<F extends readonly FieldSpec[]> = F[number]['name'];

/** A compiled field: reads and writes one field of a word array. */
export interface FieldAccessor<K extends FieldKind = FieldKind> {
  /** The declaration. */
  readonly spec: FieldSpec<string, K>;
  /** The field's bits in place within its word. */
  readonly mask: bigint;
  /** Reads the field from a word array. */
  get(words: ArrayLike<bigint>): FieldValue<K>;
  /** Reads the field from its own word (for single-word structures such as PTEs). */
  of(word: bigint): FieldValue<K>;
  /** Writes the field into a word array (throws RangeError if the value does not fit). */
  set(words: bigint[], value: FieldValue<K> | boolean): void;
}

/** A structure declared as bit fields over `words` little-endian 64-bit words. */
export interface FieldLayout<F extends readonly FieldSpec[]> {
  /** Structure name (for messages and pretty-printing). */
  readonly name: string;
  /** Number of 64-bit words. */
  readonly words: number;
  /** Size in bytes. */
  readonly size: number;
  /** The declarations, in order. */
  readonly specs: F;
  /** The same structure as an untyped {@link BitLayout} (bytes conversion, bigint values). */
  readonly raw: BitLayout<readonly (readonly [string, number, number, number])[]>;
  /** Compiled accessors by field name. */
  readonly f: { readonly [S in F[number] as S['name']]: FieldAccessor<S['kind']> };
  /** Per word: the bits no field (and no `ignored` range) covers — reserved, must be zero. */
  readonly reservedMasks: readonly bigint[];
  /** Decodes every field. Missing words read as zero. */
  decode(words: ArrayLike<bigint>): FieldLayoutValue<F>;
  /** Encodes a (partial) record; absent fields are zero. */
  encode(value: Partial<FieldLayoutValue<F>>): bigint[];
  /** Reads one field. */
  get<N extends FieldName<F>>(words: ArrayLike<bigint>, name: N): FieldLayoutValue<F>[N];
  /** True when any reserved bit is set. */
  hasReservedBits(words: ArrayLike<bigint>): boolean;
  /** `name{A=1 B=0x1000 …}` for messages and traces. */
  format(words: ArrayLike<bigint>): string;
}

/** Options of {@link defineFieldLayout}. */
export interface FieldLayoutOptions {
  /** Ranges `[word, hi, lo]` that are neither fields nor reserved (ignored by hardware). */
  readonly ignored?: readonly (readonly [number, number, number])[];
  /** Words that are not checked for reserved bits at all. */
  readonly uncheckedWords?: readonly number[];
}

function rangeMask(hi: number, lo: number): bigint {
  return ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
}

/** Declares a structure once and derives its accessors (see the module comment). */
export function defineFieldLayout<const F extends readonly FieldSpec[]>(
  name: string,
  words: number,
  specs: F,
  options: FieldLayoutOptions = {},
): FieldLayout<F> {
  // The machine's bit layout checks positions and overlaps once, for both layout styles.
  const raw = defineBitLayout(name, words, specs.map((x) => [x.name, x.word, x.hi, x.lo] as const));
  const covered: bigint[] = Array.from({ length: words }, () => 0n);
  const accessors: Record<string, FieldAccessor> = {};
  for (const x of specs) {
    const mask = raw.reader(x.name).mask;
    covered[x.word] |= mask;
    accessors[x.name] = compileField(name, x, mask);
  }
  for (const [w, hi, lo] of options.ignored ?? []) covered[w] |= rangeMask(hi, lo);
  for (const w of options.uncheckedWords ?? []) covered[w] = (1n << 64n) - 1n;
  const all = (1n << 64n) - 1n;
  const reservedMasks = covered.map((c) => all & ~c);
  const list = specs.map((s) => accessors[s.name]);
  const layout: FieldLayout<F> = {
    name,
    words,
    size: words * 8,
    specs,
    raw,
    f: accessors as FieldLayout<F>['f'],
    reservedMasks,
    decode(ws) {
      const out: Record<string, number | bigint> = {};
      for (const a of list) out[a.spec.name] = a.get(ws);
      return out as FieldLayoutValue<F>;
    },
    encode(value) {
      const ws: bigint[] = Array.from({ length: words }, () => 0n);
      const v = value as Record<string, number | bigint | undefined>;
      for (const a of list) {
        const x = v[a.spec.name];
        if (x !== undefined) a.set(ws, x);
      }
      return ws;
    },
    get(ws, n) {
      const a = accessors[n] as FieldAccessor | undefined;
      if (a === undefined) throw new BitLayoutError(`layout ${name} has no field '${String(n)}'; fields: ${specs.map((x) => x.name).join(', ')}`);
      return a.get(ws) as FieldLayoutValue<F>[typeof n];
    },
    hasReservedBits(ws) {
      for (let i = 0; i < words; i++) if (((ws[i] ?? 0n) & reservedMasks[i]) !== 0n) return true;
      return false;
    },
    format(ws) {
      const parts = list.map((a) => {
        const x = a.get(ws);
        return `${a.spec.name}=${typeof x === 'bigint' ? `0x${x.toString(16)}` : x > 9 ? `0x${x.toString(16)}` : x}`;
      });
      return `${name}{${parts.join(' ')}}`;
    },
  };
  return layout;
}

function compileField(layout: string, s: FieldSpec, mask: bigint): FieldAccessor {
  const shift = BigInt(s.lo);
  const width = s.hi - s.lo + 1;
  const valueMax = (1n << BigInt(width)) - 1n;
  const w = s.word;
  const of =
    s.kind === 'num'
      ? (word: bigint): number | bigint => Number((word & mask) >> shift)
      : s.kind === 'big'
        ? (word: bigint): number | bigint => (word & mask) >> shift
        : (word: bigint): number | bigint => word & mask;
  return {
    spec: s,
    mask,
    of: of as FieldAccessor['of'],
    get: ((words: ArrayLike<bigint>) => of(words[w] ?? 0n)) as FieldAccessor['get'],
    set(words: bigint[], value: number | bigint | boolean) {
      const raw = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
      let placed: bigint;
      if (s.kind === 'addr') {
        if ((raw & ~mask) !== 0n) {
          throw new BitLayoutError(`${layout}.${s.name}: 0x${raw.toString(16)} has bits outside ${s.hi}:${s.lo}; align it / keep it below 2^${s.hi + 1}`);
        }
        placed = raw;
      } else {
        if (raw < 0n || raw > valueMax) {
          throw new BitLayoutError(`${layout}.${s.name}: ${raw} does not fit in ${width} bit(s)`);
        }
        placed = raw << shift;
      }
      words[w] = ((words[w] ?? 0n) & ~mask) | placed;
    },
  };
}

/** The memory interface the model reads structures through (PhysicalStore and PhysicalMemory both fit). */
export interface StructureMemory {
  /** Reads a naturally aligned little-endian u64. */
  read64(pa: bigint): bigint;
  /** Writes a naturally aligned little-endian u64. */
  write64(pa: bigint, value: bigint): void;
  /** Writes a naturally aligned little-endian u32. */
  write32(pa: bigint, value: number): void;
  /** Whether `[pa, pa+len)` is RAM (absent: everything is); table reads elsewhere are access errors. */
  isRam?(pa: bigint, len: number): boolean;
  /** Reads the aligned u64 at `pa` as two 32-bit halves when it is RAM (walkers use it when present, as `PhysicalMemory` does). */
  readRamWord?(pa: number, out: Word64): boolean;
}

/** True when the structure at `pa` can be read (it lies in RAM). */
export function readable(mem: StructureMemory, pa: bigint, len: number): boolean {
  return mem.isRam === undefined || mem.isRam(pa, len);
}

/**
 * Reads the aligned u64 at `pa` (a Number: table addresses are below 2^52, and a larger,
 * 4 KiB-aligned root is still exact) into `out`; false when it is not readable.
 */
export function readWord(mem: StructureMemory, pa: number, out: Word64): boolean {
  if (mem.readRamWord !== undefined) return mem.readRamWord(pa, out);
  const at = BigInt(pa);
  if (!readable(mem, at, 8)) return false;
  const v = mem.read64(at);
  out.lo = Number(v & 0xffff_ffffn);
  out.hi = Number(v >> 32n);
  return true;
}

/** Writes the u64 of halves `lo`, `hi` at `pa`. */
export function writeWord(mem: StructureMemory, pa: number, lo: number, hi: number): void {
  mem.write64(BigInt(pa), (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
}

/** Reads `n` consecutive 64-bit words at `pa`. */
export function readWords(mem: StructureMemory, pa: bigint, n: number): bigint[] {
  const out: bigint[] = new Array<bigint>(n);
  for (let i = 0; i < n; i++) out[i] = mem.read64(pa + BigInt(i * 8));
  return out;
}

/** Writes consecutive 64-bit words at `pa`. */
export function writeWords(mem: StructureMemory, pa: bigint, words: readonly bigint[]): void {
  for (let i = 0; i < words.length; i++) mem.write64(pa + BigInt(i * 8), words[i]);
}
