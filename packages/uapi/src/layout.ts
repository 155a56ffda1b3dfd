/**
 * A declarative description of C struct layouts. Each struct is declared once as data
 * (named fields with C types); offsets, sizes, the kernel's `min` size, encode, decode and
 * pretty-printing are all derived from that declaration, so no offset is ever written twice.
 *
 * Layout rules are those of the C ABI on a 64-bit little-endian Linux: every field is
 * aligned to its element size (`__aligned_u64` is 8-aligned), the struct size is rounded up
 * to its largest alignment.
 */

/** The scalar C types a uAPI field can have. */
export type ScalarKind = 'u8' | 'u16' | 'u32' | 's32' | 'u64' | 's64';

/** The JavaScript type a scalar decodes to: 64-bit fields are `bigint`, others `number`. */
export type ScalarValue<K extends ScalarKind> = K extends 'u64' | 's64' ? bigint : number;

/** One field of a struct declaration. `count` makes it a fixed-size array. */
export interface FieldSpec<N extends string = string, K extends ScalarKind = ScalarKind> {
  /** The C field name. */
  readonly name: N;
  /** The C element type. */
  readonly kind: K;
  /** Array length for `T name[count]`; absent for a scalar. */
  readonly count?: number;
  /**
   * For a member of an anonymous C union: the earlier field this one shares its bytes with
   * (see {@link alias}). Absent for an ordinary field.
   */
  readonly aliasOf?: string;
}

/** A scalar field spec. @public */
export interface ScalarFieldSpec<N extends string, K extends ScalarKind> extends FieldSpec<N, K> {
  /** Always absent: a scalar has no array length. */
  readonly count?: undefined;
}

/** An array field spec. @public */
export interface ArrayFieldSpec<N extends string, K extends ScalarKind> extends FieldSpec<N, K> {
  /** The array length. */
  readonly count: number;
}

/** `__u8 name` */
export function u8<N extends string>(name: N): ScalarFieldSpec<N, 'u8'> {
  return { name, kind: 'u8' };
}
/** `__u16 name` */
export function u16<N extends string>(name: N): ScalarFieldSpec<N, 'u16'> {
  return { name, kind: 'u16' };
}
/** `__u32 name` */
export function u32<N extends string>(name: N): ScalarFieldSpec<N, 'u32'> {
  return { name, kind: 'u32' };
}
/** `__s32 name` */
export function s32<N extends string>(name: N): ScalarFieldSpec<N, 's32'> {
  return { name, kind: 's32' };
}
/** `__aligned_u64 name` (also `__le64`, `__u64`) */
export function u64<N extends string>(name: N): ScalarFieldSpec<N, 'u64'> {
  return { name, kind: 'u64' };
}
/** `__s64 name` */
export function s64<N extends string>(name: N): ScalarFieldSpec<N, 's64'> {
  return { name, kind: 's64' };
}
/**
 * A second name for the bytes of an earlier scalar field, as in an anonymous C union of
 * same-size members: `union { __u32 in_data_type; __u32 out_data_type; }` is declared as
 * `u32('in_data_type'), alias('out_data_type', 'u32', 'in_data_type')`. The alias takes no
 * space; decode reports both names; encode writes the alias only when it is given (so it
 * wins over the field it aliases when both are given).
 */
export function alias<N extends string, K extends ScalarKind>(
  name: N,
  kind: K,
  of: string,
): ScalarFieldSpec<N, K> {
  return { name, kind, aliasOf: of };
}
/** `T name[count]` */
export function array<N extends string, K extends ScalarKind>(
  name: N,
  kind: K,
  count: number,
): ArrayFieldSpec<N, K> {
  return { name, kind, count };
}

/** The decoded value of one field spec. */
export type FieldValue<F extends FieldSpec> = F extends ArrayFieldSpec<string, infer K>
  ? ScalarValue<K>[]
  : F extends ScalarFieldSpec<string, infer K>
    ? ScalarValue<K>
    : F extends FieldSpec<string, infer K>
      ? ScalarValue<K> | ScalarValue<K>[]
      : never;

/** The decoded value of a whole struct: an object with one property per field. */
export type StructValue<F extends readonly FieldSpec[]> = {
  [S in F[number] as S['name']]: FieldValue<S>;
};

/** The decoded value of a declared layout: `LayoutValue<typeof iommu_ioas_map>`. */
export type LayoutValue<L> = L extends StructLayout<infer F> ? StructValue<F> : never;

/** Where a field sits in its struct. */
export interface FieldInfo {
  /** The C field name. */
  readonly name: string;
  /** The C element type. */
  readonly kind: ScalarKind;
  /** Byte offset from the start of the struct. */
  readonly offset: number;
  /** Size of one element in bytes. */
  readonly elementSize: number;
  /** Number of elements (1 for a scalar). */
  readonly count: number;
  /** Whether the field was declared as an array. */
  readonly isArray: boolean;
  /** Total size in bytes (`elementSize * count`). */
  readonly size: number;
  /** The field whose bytes this one shares (an anonymous-union alias), if any. */
  readonly aliasOf?: string;
}

/** Options of {@link defineStruct}. */
export interface StructOptions<N extends string> {
  /**
   * The field whose `offsetofend` is the kernel's minimum accepted size (the last field of
   * the struct's first version). Defaults to the last field, i.e. min = sizeof.
   */
  readonly minField?: N;
  /**
   * A minimum alignment for the whole struct, for what the field list cannot show: a union
   * member declared elsewhere that holds an `__aligned_u64` (as in `iommu_test_cmd`), or an
   * explicit `__aligned(n)`. Defaults to the largest field alignment.
   */
  readonly align?: number;
}

/** A struct layout derived from a declaration. */
export interface StructLayout<F extends readonly FieldSpec[] = readonly FieldSpec[]> {
  /** The C name, e.g. `iommu_ioas_map`. */
  readonly name: string;
  /** `sizeof` of the struct. */
  readonly size: number;
  /** Alignment of the struct (its largest field alignment). */
  readonly align: number;
  /** The kernel's minimum accepted user size (`offsetofend` of the min field). */
  readonly minSize: number;
  /** Fields in declaration order. */
  readonly fieldList: readonly FieldInfo[];
  /** Fields by name. */
  readonly fields: { readonly [K in F[number]['name']]: FieldInfo };
  /** `offsetof(struct, name)` */
  offsetOf(name: F[number]['name']): number;
  /** `offsetofend(struct, name)` */
  offsetOfEnd(name: F[number]['name']): number;
  /**
   * Decodes the struct from `bytes` at `offset`. Bytes beyond the end of `bytes` read as
   * zero, which is the kernel's rule for a user struct shorter than the kernel's.
   */
  decode(bytes: Uint8Array, offset?: number): StructValue<F>;
  /**
   * Encodes `value` (missing fields are zero). Writes into `into` at `offset` when given
   * (only the bytes that fit), else returns a new array of `size` bytes.
   */
  encode(value?: Partial<StructValue<F>>, into?: Uint8Array, offset?: number): Uint8Array;
  /** A zero-filled struct value. */
  zero(): StructValue<F>;
  /** Reads one field. */
  get<N extends F[number]['name']>(
    bytes: Uint8Array,
    name: N,
    offset?: number,
  ): FieldValue<Extract<F[number], { name: N }>>;
  /** Writes one field (only the bytes that fit in `bytes`). */
  set<N extends F[number]['name']>(
    bytes: Uint8Array,
    name: N,
    value: FieldValue<Extract<F[number], { name: N }>>,
    offset?: number,
  ): void;
  /** A multi-line, human-readable dump of a decoded value. */
  format(value: StructValue<F>): string;
}

const ELEMENT_SIZE: Record<ScalarKind, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8, s64: 8 };

/** An error in a struct declaration (a programming error, not a user-input error). */
export class LayoutError extends Error {
  /** Always `'LayoutError'`. */
  override readonly name = 'LayoutError';
}

/**
 * Scratch bytes for small structs. A small Uint8Array lives inside the JS heap and asking it
 * for its `.buffer` (as a DataView needs) moves it out first, which costs more than the whole
 * decode; copying it here and reading through one long-lived DataView does not.
 */
const SCRATCH_BYTES = 256;
const SCRATCH = new Uint8Array(SCRATCH_BYTES);
const SCRATCH_VIEW = new DataView(SCRATCH.buffer);

/** A DataView over `bytes`' contents for reading: the scratch copy for small arrays. */
function readView(bytes: Uint8Array): DataView {
  if (bytes.byteLength > SCRATCH_BYTES) return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  SCRATCH.set(bytes);
  return SCRATCH_VIEW;
}

/**
 * Runs `write` on a DataView with `bytes`' contents and leaves the result in `bytes` (for a
 * small array: on the scratch copy, copied back only when `write` returns).
 */
function writeThrough(bytes: Uint8Array, write: (view: DataView) => void): void {
  if (bytes.byteLength > SCRATCH_BYTES) {
    write(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return;
  }
  SCRATCH.set(bytes);
  write(SCRATCH_VIEW);
  bytes.set(SCRATCH.subarray(0, bytes.byteLength));
}

function readScalar(view: DataView, kind: ScalarKind, at: number, end: number): number | bigint {
  const size = ELEMENT_SIZE[kind];
  if (at + size <= end) {
    switch (kind) {
      case 'u8':
        return view.getUint8(at);
      case 'u16':
        return view.getUint16(at, true);
      case 'u32':
        return view.getUint32(at, true);
      case 's32':
        return view.getInt32(at, true);
      case 'u64':
        return view.getBigUint64(at, true);
      case 's64':
        return view.getBigInt64(at, true);
    }
  }
  // Partially or fully beyond the user's bytes: the missing bytes read as zero.
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(at + i < end ? view.getUint8(at + i) : 0);
  if (kind === 'u64') return v;
  if (kind === 's64') return BigInt.asIntN(64, v);
  if (kind === 's32') return Number(BigInt.asIntN(32, v));
  return Number(v);
}

function writeScalar(
  view: DataView,
  kind: ScalarKind,
  at: number,
  end: number,
  value: number | bigint,
): void {
  const size = ELEMENT_SIZE[kind];
  if (at + size <= end) {
    // The whole scalar fits: one store, truncated to the C type's width as the byte loop would.
    if (size === 8) {
      view.setBigUint64(at, BigInt.asUintN(64, typeof value === 'bigint' ? value : BigInt(Math.trunc(value))), true);
      return;
    }
    const n = typeof value === 'bigint' ? Number(BigInt.asUintN(32, value)) : Math.trunc(value);
    if (Number.isSafeInteger(n)) {
      if (size === 4) view.setUint32(at, n >>> 0, true);
      else if (size === 2) view.setUint16(at, n & 0xffff, true);
      else view.setUint8(at, n & 0xff);
      return;
    }
  }
  let v = typeof value === 'bigint' ? value : BigInt(Math.trunc(value));
  v = BigInt.asUintN(size * 8, v);
  for (let i = 0; i < size; i++) {
    if (at + i < end) view.setUint8(at + i, Number(v & 0xffn));
    v >>= 8n;
  }
}

/**
 * Declares a struct. Field order and C types are exactly those of the C header.
 *
 * @example
 * ```ts
 * const iommu_destroy = defineStruct('iommu_destroy', [u32('size'), u32('id')]);
 * iommu_destroy.size; // 8
 * ```
 */
export function defineStruct<const F extends readonly FieldSpec[]>(
  name: string,
  specs: F,
  options: StructOptions<F[number]['name']> = {},
): StructLayout<F> {
  const fieldList: FieldInfo[] = [];
  const fields: Record<string, FieldInfo> = {};
  let offset = 0;
  let align = 1;
  for (const spec of specs) {
    if (fields[spec.name]) throw new LayoutError(`${name}: field ${spec.name} declared twice`);
    const elementSize = ELEMENT_SIZE[spec.kind];
    const count = spec.count ?? 1;
    if (!Number.isInteger(count) || count < 1) {
      throw new LayoutError(`${name}.${spec.name}: array length must be a positive integer`);
    }
    if (spec.aliasOf !== undefined) {
      const target = fields[spec.aliasOf];
      if (!target || target.aliasOf !== undefined || target.isArray || target.elementSize !== elementSize || spec.count !== undefined) {
        throw new LayoutError(
          `${name}.${spec.name}: an alias must name an earlier scalar field of the same size (got ${spec.aliasOf})`,
        );
      }
      const info: FieldInfo = { ...target, name: spec.name, kind: spec.kind, aliasOf: target.name };
      fieldList.push(info);
      fields[spec.name] = info;
      continue;
    }
    offset = Math.ceil(offset / elementSize) * elementSize;
    align = Math.max(align, elementSize);
    const info: FieldInfo = {
      name: spec.name,
      kind: spec.kind,
      offset,
      elementSize,
      count,
      isArray: spec.count !== undefined,
      size: elementSize * count,
    };
    fieldList.push(info);
    fields[spec.name] = info;
    offset += info.size;
  }
  if (options.align !== undefined) {
    if (!Number.isInteger(options.align) || options.align < 1 || (options.align & (options.align - 1)) !== 0) {
      throw new LayoutError(`${name}: align must be a power of two`);
    }
    align = Math.max(align, options.align);
  }
  const size = Math.ceil(offset / align) * align;
  const minInfo = options.minField === undefined ? undefined : fields[options.minField];
  if (options.minField !== undefined && !minInfo) {
    throw new LayoutError(`${name}: minField ${String(options.minField)} is not a field`);
  }
  const minSize = minInfo ? minInfo.offset + minInfo.size : size;

  const field = (n: string): FieldInfo => {
    const f = fields[n];
    if (!f) throw new LayoutError(`${name} has no field ${n}`);
    return f;
  };
  const readField = (view: DataView, f: FieldInfo, base: number, end: number) => {
    if (!f.isArray) return readScalar(view, f.kind, base + f.offset, end);
    const out: (number | bigint)[] = [];
    for (let i = 0; i < f.count; i++) out.push(readScalar(view, f.kind, base + f.offset + i * f.elementSize, end));
    return out;
  };
  const writeField = (view: DataView, f: FieldInfo, base: number, end: number, v: unknown) => {
    if (!f.isArray) {
      writeScalar(view, f.kind, base + f.offset, end, v as number | bigint);
      return;
    }
    const arr = v as readonly (number | bigint)[];
    for (let i = 0; i < f.count; i++) {
      writeScalar(view, f.kind, base + f.offset + i * f.elementSize, end, arr[i] ?? 0);
    }
  };
  const zeroOf = (f: FieldInfo) => {
    const z = f.elementSize === 8 ? 0n : 0;
    return f.isArray ? Array.from({ length: f.count }, () => z) : z;
  };

  const layout: StructLayout<F> = {
    name,
    size,
    align,
    minSize,
    fieldList,
    fields: fields as StructLayout<F>['fields'],
    offsetOf: (n) => field(n).offset,
    offsetOfEnd: (n) => field(n).offset + field(n).size,
    decode(bytes, base = 0) {
      const view = readView(bytes);
      const out: Record<string, unknown> = {};
      for (const f of fieldList) out[f.name] = readField(view, f, base, bytes.byteLength);
      return out as StructValue<F>;
    },
    encode(value = {}, into, base = 0) {
      const bytes = into ?? new Uint8Array(size);
      const v = value as Record<string, unknown>;
      writeThrough(bytes, (view) => {
        for (const f of fieldList) {
          if (f.aliasOf !== undefined && v[f.name] === undefined) continue;
          writeField(view, f, base, bytes.byteLength, v[f.name] ?? zeroOf(f));
        }
      });
      return bytes;
    },
    zero() {
      const out: Record<string, unknown> = {};
      for (const f of fieldList) out[f.name] = zeroOf(f);
      return out as StructValue<F>;
    },
    get(bytes, n, base = 0) {
      return readField(readView(bytes), field(n), base, bytes.byteLength) as never;
    },
    set(bytes, n, v, base = 0) {
      const f = field(n);
      writeThrough(bytes, (view) => writeField(view, f, base, bytes.byteLength, v));
    },
    format(value) {
      const v = value as Record<string, unknown>;
      const hex = (x: unknown) =>
        typeof x === 'bigint' ? `0x${x.toString(16)}` : typeof x === 'number' ? `0x${(x >>> 0).toString(16)}` : String(x);
      const lines = fieldList.map((f) => {
        const x = v[f.name];
        const shown = Array.isArray(x) ? `[${x.map(hex).join(', ')}]` : hex(x);
        return `  +${f.offset.toString().padStart(3)} ${f.kind}${f.isArray ? `[${f.count}]` : ''} ${f.name} = ${shown}`;
      });
      return `struct ${name} (${size} bytes) {\n${lines.join('\n')}\n}`;
    },
  };
  return layout;
}
