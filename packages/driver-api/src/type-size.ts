/**
 * `sizeof` at the type level: the C layout of a driver struct declaration computed by the
 * type checker (natural alignment, tail padding), so `VIOMMU_STRUCT_SIZE<L, 'core'>` is the
 * literal byte size. Numbers are tuple lengths; structs up to ~900 bytes are computed, larger
 * ones (or arrays with a non-literal length) fall back to `number`.
 */
import type { ScalarKind } from '@iommufd/uapi';
import type { CoreStructKind, DriverCoreMember, DriverField, DriverPointerField, DriverScalarField } from './struct.js';

/** `sizeof(struct iommufd_viommu)` etc., as literal types (checked against the runtime layouts by tests). */
export interface CoreStructSizes {
  /** `sizeof(struct iommufd_viommu)` */
  iommufd_viommu: 64;
  /** `sizeof(struct iommufd_vdevice)` */
  iommufd_vdevice: 40;
  /** `sizeof(struct iommufd_hw_queue)` */
  iommufd_hw_queue: 56;
}

type ScalarSizes = { u8: 1; u16: 2; u32: 4; s32: 4; u64: 8; s64: 8 };

type Tuple<N extends number, T extends 0[] = []> = T['length'] extends N ? T : Tuple<N, [...T, 0]>;
type Repeat<T extends 0[], C extends number, Acc extends 0[] = [], I extends 0[] = []> = I['length'] extends C
  ? Acc
  : Repeat<T, C, [...Acc, ...T], [...I, 0]>;
type IsMultiple<T extends 0[], A extends 0[]> = T extends [] ? true : T extends [...A, ...infer R extends 0[]] ? IsMultiple<R, A> : false;
type AlignUp<T extends 0[], A extends 0[]> = IsMultiple<T, A> extends true ? T : AlignUp<[...T, 0], A>;

type Len<T> = T extends readonly unknown[] ? T['length'] : number;

type FieldSize<F> = F extends DriverPointerField
  ? 8
  : F extends DriverCoreMember<string, infer S extends CoreStructKind>
    ? CoreStructSizes[S]
    : F extends DriverScalarField<string, infer K extends ScalarKind>
      ? F extends { readonly count: infer C extends number }
        ? number extends C
          ? number
          : Len<Repeat<Tuple<ScalarSizes[K]>, C>>
        : ScalarSizes[K]
      : number;
type FieldAlign<F> = F extends DriverScalarField<string, infer K extends ScalarKind> ? ScalarSizes[K] : 8;
type Max<A extends number, B extends number> = A extends 8
  ? 8
  : B extends 8
    ? 8
    : A extends 4
      ? 4
      : B extends 4
        ? 4
        : A extends 2
          ? 2
          : B extends 2
            ? 2
            : 1;

type Walk<F extends readonly unknown[], Off extends 0[], MaxA extends number> = F extends readonly [infer H, ...infer R]
  ? FieldSize<H> extends infer S extends number
    ? number extends S
      ? number
      : AlignUp<Off, Tuple<FieldAlign<H>>> extends infer O extends 0[]
        ? Tuple<S> extends infer ST extends 0[]
          ? Walk<R, [...O, ...ST], Max<MaxA, FieldAlign<H>>>
          : number
        : number
    : number
  : Len<AlignUp<Off, Tuple<MaxA>>>;

/** The type-level `sizeof` of a driver struct declaration (a literal, or `number` when not computable). */
export type StructSizeOf<F extends readonly DriverField[]> = number extends F['length'] ? number : Walk<F, [], 1>;
