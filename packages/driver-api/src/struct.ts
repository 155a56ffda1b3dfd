/**
 * Driver object layouts. In Linux a driver declares `struct mock_viommu { struct
 * iommufd_viommu core; ... }`, reports `VIOMMU_STRUCT_SIZE(struct mock_viommu, core)` and the
 * core allocates that many bytes, fills the core part and hands the driver a pointer it
 * `container_of`s back to its own struct. This module models that literally: a layout is
 * declared once as data (named fields, C alignment), objects are byte allocations plus a
 * pointer table, and views read and write named fields of one allocation.
 */
import { defineStruct, u16, u32, u64, u8, type ScalarKind, type ScalarValue, type StructLayout } from '@iommufd/uapi';

/** Names of the three core structs a driver struct may embed. */
export type CoreStructKind = 'iommufd_viommu' | 'iommufd_vdevice' | 'iommufd_hw_queue';

/** A scalar field of a driver struct (`__u32 name`, `u64 name`, `T name[count]`). */
export interface DriverScalarField<N extends string = string, K extends ScalarKind = ScalarKind> {
  readonly name: N;
  readonly kind: K;
  /** Array length for `T name[count]`; absent for a scalar. */
  readonly count?: number;
}

/**
 * A pointer field (`struct foo *name`): 8 bytes in the allocation; the referenced JavaScript
 * object lives in the allocation's pointer table, so the field behaves like a C pointer.
 */
export interface DriverPointerField<N extends string = string, T = unknown> {
  readonly name: N;
  readonly kind: 'ptr';
  /** Phantom: the pointee type, never set at runtime. */
  readonly pointee?: T;
}

/** An embedded core struct (`struct iommufd_viommu core;`). */
export interface DriverCoreMember<N extends string = string, S extends CoreStructKind = CoreStructKind> {
  readonly name: N;
  readonly kind: 'struct';
  readonly struct: CoreStructLayout<S>;
}

/** Any field of a driver struct declaration. */
export type DriverField = DriverScalarField | DriverPointerField | DriverCoreMember;

/** Where a field sits in its struct. */
export interface DriverFieldInfo {
  /** Field name. */
  readonly name: string;
  /** `ptr`, `struct` or a scalar kind. */
  readonly kind: ScalarKind | 'ptr' | 'struct';
  /** `offsetof(struct, name)`. */
  readonly offset: number;
  /** Size of the field in bytes. */
  readonly size: number;
  /** Alignment of the field. */
  readonly align: number;
  /** Element count (1 for a scalar, a pointer or a member). */
  readonly count: number;
}

/** A driver (or core) struct layout: the declaration plus derived offsets and `sizeof`. */
export interface DriverStructLayout<F extends readonly DriverField[] = readonly DriverField[]> {
  /** The C name, e.g. `mock_viommu`. */
  readonly name: string;
  /** The declaration, in order (the type of this tuple is what `*_STRUCT_SIZE` inspects). */
  readonly specs: F;
  /** `sizeof` of the struct (rounded up to its alignment). */
  readonly size: number;
  /** Largest member alignment. */
  readonly align: number;
  /** Fields in declaration order with their offsets. */
  readonly fieldList: readonly DriverFieldInfo[];
  /** `offsetof(struct, name)`. */
  offsetOf(name: F[number]['name']): number;
}

/** The layout of a core struct, tagged with its kind so embedding can be type-checked. */
export interface CoreStructLayout<
  S extends CoreStructKind = CoreStructKind,
  F extends readonly DriverField[] = readonly DriverField[],
> extends DriverStructLayout<F> {
  /** Which core struct this is. */
  readonly coreKind: S;
}

/** An error in a struct declaration or view access (a programming error of a driver). */
export class DriverStructError extends Error {
  /** Always `DriverStructError`. */
  override readonly name = 'DriverStructError';
}

const SCALAR_SIZE: Record<ScalarKind, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8, s64: 8 };

/** `__u8 name` in a driver struct (the uAPI field constructor: one declaration style everywhere). */
export const du8: <N extends string>(name: N) => DriverScalarField<N, 'u8'> = u8;
/** `__u16 name` in a driver struct. */
export const du16: <N extends string>(name: N) => DriverScalarField<N, 'u16'> = u16;
/** `__u32 name` in a driver struct. */
export const du32: <N extends string>(name: N) => DriverScalarField<N, 'u32'> = u32;
/** `u64 name` in a driver struct. */
export const du64: <N extends string>(name: N) => DriverScalarField<N, 'u64'> = u64;
/** `T name[count]` in a driver struct. */
export function darray<N extends string, K extends ScalarKind, const C extends number>(
  name: N,
  kind: K,
  count: C,
): DriverScalarField<N, K> & { readonly count: C } {
  return { name, kind, count };
}
/** A type tag naming a pointer field's pointee type: `dptr('parent', pointee<IommuDomain>())`. */
export interface Pointee<T> {
  /** Phantom: never set at runtime. */
  readonly type?: T;
}
/** The tag for a pointee of type `T` (see {@link dptr}). */
export function pointee<T>(): Pointee<T> {
  return {};
}
/** `T *name` in a driver struct; `T` is given by a {@link pointee} tag. */
export function dptr<const N extends string, T>(name: N, _pointee: Pointee<T>): DriverPointerField<N, T> {
  return { name, kind: 'ptr' };
}
/** `struct iommufd_viommu name;` (or another core struct) embedded in a driver struct. */
export function coreMember<N extends string, S extends CoreStructKind>(
  name: N,
  struct: CoreStructLayout<S>,
): DriverCoreMember<N, S> {
  return { name, kind: 'struct', struct };
}

/** Computes the C layout of a declaration (natural alignment, 64-bit pointers). */
function layOut(name: string, specs: readonly DriverField[]) {
  const fieldList: DriverFieldInfo[] = [];
  const byName = new Map<string, DriverFieldInfo>();
  let offset = 0;
  let align = 1;
  for (const spec of specs) {
    if (byName.has(spec.name)) throw new DriverStructError(`${name}: field ${spec.name} declared twice`);
    let size: number;
    let fieldAlign: number;
    let count = 1;
    if (spec.kind === 'ptr') {
      size = 8;
      fieldAlign = 8;
    } else if (spec.kind === 'struct') {
      size = spec.struct.size;
      fieldAlign = spec.struct.align;
    } else {
      count = spec.count ?? 1;
      if (!Number.isInteger(count) || count < 1) {
        throw new DriverStructError(`${name}.${spec.name}: array length must be a positive integer`);
      }
      fieldAlign = SCALAR_SIZE[spec.kind];
      size = fieldAlign * count;
    }
    offset = Math.ceil(offset / fieldAlign) * fieldAlign;
    align = Math.max(align, fieldAlign);
    const info: DriverFieldInfo = { name: spec.name, kind: spec.kind, offset, size, align: fieldAlign, count };
    fieldList.push(info);
    byName.set(spec.name, info);
    offset += size;
  }
  const size = Math.ceil(offset / align) * align;
  const offsetOf = (n: string): number => {
    const f = byName.get(n);
    if (!f) throw new DriverStructError(`${name} has no field ${n}`);
    return f.offset;
  };
  return { name, size, align, fieldList, offsetOf };
}

/**
 * Declares a driver struct. Put the embedded core struct first, as Linux requires:
 *
 * @example
 * ```ts
 * const mock_viommu = defineDriverStruct('mock_viommu', [
 *   coreMember('core', IOMMUFD_VIOMMU),
 *   dptr('s2_parent', pointee<IommuDomain>()),
 *   du32('mmap_pages'),
 * ]);
 * const size = VIOMMU_STRUCT_SIZE(mock_viommu, 'core');
 * ```
 */
export function defineDriverStruct<const F extends readonly DriverField[]>(
  name: string,
  specs: F,
): DriverStructLayout<F> {
  return { ...layOut(name, specs), specs };
}

/** Declares one of the core structs (used by this package for the three core structs). */
export function defineCoreStruct<S extends CoreStructKind, const F extends readonly DriverField[]>(
  kind: S,
  specs: F,
): CoreStructLayout<S, F> {
  return { ...layOut(kind, specs), specs, coreKind: kind };
}

/**
 * One allocation of a driver object: `size` zeroed bytes plus the table that holds the
 * objects its pointer fields point to (keyed by byte offset).
 */
export class StructMemory {
  /** The object's bytes. */
  readonly bytes: Uint8Array;
  /** Pointer fields' pointees by byte offset. */
  readonly pointers = new Map<number, unknown>();
  /** Allocates `size` zeroed bytes (as kzalloc). */
  constructor(size: number) {
    if (!Number.isInteger(size) || size < 0) throw new DriverStructError(`struct size ${size} is not a byte count`);
    this.bytes = new Uint8Array(size);
  }
}

/** The names of the scalar fields of a declaration. */
export type ScalarFieldName<F extends readonly DriverField[]> = Extract<
  F[number],
  DriverScalarField
>['name'];
/** The names of the pointer fields of a declaration. */
export type PointerFieldName<F extends readonly DriverField[]> = Extract<
  F[number],
  DriverPointerField
>['name'];
/** The TypeScript type of a scalar field's value. */
export type ScalarFieldValue<F extends readonly DriverField[], N extends string> =
  Extract<F[number], { name: N }> extends DriverScalarField<string, infer K>
    ? Extract<F[number], { name: N }> extends { readonly count: number }
      ? ScalarValue<K>[]
      : ScalarValue<K>
    : never;
/** The pointee type of a pointer field. */
export type PointerFieldValue<F extends readonly DriverField[], N extends string> =
  Extract<F[number], { name: N }> extends DriverPointerField<string, infer T> ? T : never;

/**
 * A typed view of a struct inside an allocation (at `base`, 0 for the outermost struct).
 * Reads and writes go to the allocation's bytes (little-endian) or its pointer table.
 */
export class StructView<F extends readonly DriverField[] = readonly DriverField[]> {
  /** Wraps `memory` at byte offset `base` with `layout`. */
  constructor(
    /** The allocation this view reads. */
    readonly memory: StructMemory,
    /** The layout this view reads the allocation with. */
    readonly layout: DriverStructLayout<F>,
    /** Byte offset of the struct inside the allocation. */
    readonly base = 0,
  ) {
    if (base + layout.size > memory.bytes.byteLength) {
      throw new DriverStructError(
        `${layout.name} (${layout.size} bytes at +${base}) does not fit an allocation of ${memory.bytes.byteLength} bytes`,
      );
    }
  }

  private info(name: string): DriverFieldInfo {
    const f = this.layout.fieldList.find((x) => x.name === name);
    if (!f) throw new DriverStructError(`${this.layout.name} has no field ${name}`);
    return f;
  }

  /** Reads a scalar (or scalar array) field. */
  get<N extends ScalarFieldName<F>>(name: N): ScalarFieldValue<F, N> {
    const f = this.info(name);
    if (f.kind === 'ptr' || f.kind === 'struct') throw new DriverStructError(`${this.layout.name}.${name} is not a scalar`);
    const el = SCALAR_SIZE[f.kind];
    const read = (at: number): number | bigint => readScalar(this.memory.bytes, f.kind as ScalarKind, at);
    const at = this.base + f.offset;
    const spec = this.layout.specs.find((s) => s.name === name) as DriverScalarField;
    if (spec.count === undefined) return read(at) as ScalarFieldValue<F, N>;
    return Array.from({ length: f.count }, (_, i) => read(at + i * el)) as ScalarFieldValue<F, N>;
  }

  /** Writes a scalar (or scalar array) field. */
  set<N extends ScalarFieldName<F>>(name: N, value: ScalarFieldValue<F, N>): void {
    const f = this.info(name);
    if (f.kind === 'ptr' || f.kind === 'struct') throw new DriverStructError(`${this.layout.name}.${name} is not a scalar`);
    const el = SCALAR_SIZE[f.kind];
    const at = this.base + f.offset;
    const values = Array.isArray(value) ? (value as (number | bigint)[]) : [value as number | bigint];
    values.slice(0, f.count).forEach((v, i) => writeScalar(this.memory.bytes, f.kind as ScalarKind, at + i * el, v));
  }

  /** Reads a pointer field (`undefined` for NULL). */
  getPtr<N extends PointerFieldName<F>>(name: N): PointerFieldValue<F, N> | undefined {
    const f = this.info(name);
    if (f.kind !== 'ptr') throw new DriverStructError(`${this.layout.name}.${name} is not a pointer`);
    return this.memory.pointers.get(this.base + f.offset) as PointerFieldValue<F, N> | undefined;
  }

  /** Writes a pointer field (`undefined` stores NULL). The 8 bytes hold a non-zero token. */
  setPtr<N extends PointerFieldName<F>>(name: N, value: PointerFieldValue<F, N> | undefined): void {
    const f = this.info(name);
    if (f.kind !== 'ptr') throw new DriverStructError(`${this.layout.name}.${name} is not a pointer`);
    const at = this.base + f.offset;
    if (value === undefined) {
      this.memory.pointers.delete(at);
      writeScalar(this.memory.bytes, 'u64', at, 0n);
    } else {
      this.memory.pointers.set(at, value);
      // A recognisable non-NULL token, so a byte dump shows which pointers are set.
      writeScalar(this.memory.bytes, 'u64', at, 0xffff_8000_0000_0000n | BigInt(at));
    }
  }
}

/** One-field uAPI layouts, so scalar encoding is uapi's (little-endian, C widths). */
const SCALAR_LAYOUTS = Object.fromEntries(
  (['u8', 'u16', 'u32', 's32', 'u64', 's64'] as const).map((k) => [k, defineStruct(k, [{ name: 'v', kind: k }])]),
) as Record<ScalarKind, StructLayout<readonly [{ name: 'v'; kind: ScalarKind }]>>;

function readScalar(bytes: Uint8Array, kind: ScalarKind, at: number): number | bigint {
  return SCALAR_LAYOUTS[kind].get(bytes, 'v', at) as number | bigint;
}

function writeScalar(bytes: Uint8Array, kind: ScalarKind, at: number, value: number | bigint): void {
  SCALAR_LAYOUTS[kind].set(bytes, 'v', value as never, at);
}
