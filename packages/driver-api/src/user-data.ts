/**
 * Driver-specific user data (`struct iommu_user_data`, `struct iommu_user_data_array`) and
 * the copy helpers of include/linux/iommu.h with the kernel's size rules. Note the rule that
 * surprises people: a *driver* struct longer than the kernel's is EINVAL (not the
 * top-level ioctl rule "longer with zero tail is fine").
 */
import { E2BIG, EINVAL, ENOMEM } from '@iommufd/uapi';
import type { StructLayout, StructValue, FieldSpec } from '@iommufd/uapi';
import type { Errno, Status } from './ops.js';

/** The calling process's memory, as `copy_from_user` / `copy_to_user` see it. */
export interface UserMemory {
  /** Bytes at user VA `va`, or EFAULT if any byte is unmapped. */
  copyFromUser(va: bigint, length: number): Uint8Array | Errno;
  /** Writes `bytes` at `va`: 0, or EFAULT (writing nothing). */
  copyToUser(va: bigint, bytes: Uint8Array): Status;
}

/** `struct iommu_user_data`: one driver struct in user memory. */
export interface IommuUserData {
  /** The `data_type` the user declared. */
  readonly type: number;
  /** User pointer. */
  readonly uptr: bigint;
  /** User length in bytes. */
  readonly len: number;
  /** Where `uptr` points. */
  readonly user: UserMemory;
}

/** `struct iommu_user_data_array`: an array of driver entries in user memory. */
export interface IommuUserDataArray {
  /** The `data_type` the user declared. */
  readonly type: number;
  /** User pointer to the first entry. */
  readonly uptr: bigint;
  /** User size of one entry. */
  readonly entryLen: number;
  /** In: number of entries; the driver sets it to the number handled. */
  entryNum: number;
  /** Where `uptr` points. */
  readonly user: UserMemory;
}

/**
 * `copy_struct_from_user(dst, ksize, src, usize)`: reads `usize` user bytes into a
 * `ksize`-byte buffer; a shorter user struct is zero-extended, a longer one must have an
 * all-zero tail (else E2BIG). EFAULT on an unmapped byte.
 */
export function copyStructFromUser(user: UserMemory, ksize: number, uptr: bigint, usize: number): Uint8Array | Errno {
  const out = new Uint8Array(ksize);
  const got = user.copyFromUser(uptr, usize);
  if (typeof got === 'number') return got;
  if (usize > ksize) {
    for (let i = ksize; i < usize; i++) if (got[i] !== 0) return E2BIG;
  }
  out.set(got.subarray(0, Math.min(ksize, usize)));
  return out;
}

/**
 * `copy_struct_to_user(dst, usize, src, ksize)`: writes `min(usize, ksize)` bytes and zeroes
 * the user bytes beyond `ksize`.
 */
export function copyStructToUser(user: UserMemory, uptr: bigint, usize: number, src: Uint8Array): Status {
  const out = new Uint8Array(usize);
  out.set(src.subarray(0, Math.min(usize, src.byteLength)));
  return user.copyToUser(uptr, out);
}

/**
 * `iommu_copy_struct_from_user(kdst, user_data, data_type, min_last)`: type mismatch →
 * EINVAL; length below `offsetofend(minLast)` or above `sizeof` → EINVAL; EFAULT.
 */
export function iommuCopyStructFromUser<F extends readonly FieldSpec[]>(
  layout: StructLayout<F>,
  userData: IommuUserData,
  dataType: number,
  minLast: F[number]['name'],
): StructValue<F> | Errno {
  if (userData.type !== dataType) return EINVAL;
  if (userData.len < layout.offsetOfEnd(minLast) || userData.len > layout.size) return EINVAL;
  const bytes = copyStructFromUser(userData.user, layout.size, userData.uptr, userData.len);
  if (typeof bytes === 'number') return bytes;
  return layout.decode(bytes);
}

/**
 * `iommu_copy_struct_from_user_array(kdst, array, data_type, index, min_last)`: entry
 * `index` with the single-struct rules; `index >= entryNum` → EINVAL.
 */
export function iommuCopyStructFromUserArray<F extends readonly FieldSpec[]>(
  layout: StructLayout<F>,
  array: IommuUserDataArray,
  dataType: number,
  index: number,
  minLast: F[number]['name'],
): StructValue<F> | Errno {
  if (index >= array.entryNum || array.entryNum === 0) return EINVAL;
  return iommuCopyStructFromUser(
    layout,
    { type: array.type, uptr: array.uptr + BigInt(array.entryLen) * BigInt(index), len: array.entryLen, user: array.user },
    dataType,
    minLast,
  );
}

/** The largest kmalloc (`KMALLOC_MAX_SIZE`: 2^(MAX_PAGE_ORDER 10 + PAGE_SHIFT 12) bytes, 4 MiB). */
export const KMALLOC_MAX_SIZE = 4 << 20;

/**
 * `iommu_copy_struct_from_full_user_array(kdst, entry_size, array, data_type)`, as the raw
 * kernel buffer: `entryNum` entries of `layout.size` bytes each (for drivers that hand the
 * array on as bytes, e.g. to a command queue, without decoding every entry). Every entry
 * follows `copy_struct_from_user` rules (shorter zero-extended, longer with a non-zero tail
 * E2BIG); more than {@link KMALLOC_MAX_SIZE} bytes of kernel entries → ENOMEM first (the
 * caller's kcalloc); type mismatch or `entryNum` 0 → EINVAL. When `entryLen` equals the kernel size the
 * whole array is read with ONE `copyFromUser` (as Linux does). The buffer is the kernel's
 * own copy: the driver may rewrite it in place.
 */
export function iommuCopyFullUserArrayBytes<F extends readonly FieldSpec[]>(
  layout: StructLayout<F>,
  array: IommuUserDataArray,
  dataType: number,
): Uint8Array | Errno {
  // Every Linux caller first kcalloc()s entry_num kernel-sized entries for this copy, and
  // kmalloc refuses more than KMALLOC_MAX_SIZE: ENOMEM before anything is read.
  if (array.entryNum * layout.size > KMALLOC_MAX_SIZE) return ENOMEM;
  if (array.type !== dataType) return EINVAL;
  if (array.entryNum === 0) return EINVAL;
  const ksize = layout.size;
  if (array.entryLen === ksize) {
    // Linux: same size → a single copy_from_user of the array; no tails, so only EFAULT.
    const all = array.user.copyFromUser(array.uptr, ksize * array.entryNum);
    if (typeof all === 'number') return all;
    return all.slice();
  }
  const out = new Uint8Array(ksize * array.entryNum);
  for (let i = 0; i < array.entryNum; i++) {
    const bytes = copyStructFromUser(array.user, ksize, array.uptr + BigInt(array.entryLen) * BigInt(i), array.entryLen);
    if (typeof bytes === 'number') return bytes;
    out.set(bytes, i * ksize);
  }
  return out;
}

/**
 * `iommu_copy_struct_from_full_user_array(kdst, entry_size, array, data_type)`: every entry
 * decoded, with the rules (and the single `copyFromUser` for same-size entries) of
 * {@link iommuCopyFullUserArrayBytes}.
 */
export function iommuCopyStructFromFullUserArray<F extends readonly FieldSpec[]>(
  layout: StructLayout<F>,
  array: IommuUserDataArray,
  dataType: number,
): StructValue<F>[] | Errno {
  const all = iommuCopyFullUserArrayBytes(layout, array, dataType);
  if (typeof all === 'number') return all;
  const out: StructValue<F>[] = [];
  for (let i = 0; i < array.entryNum; i++) out.push(layout.decode(all, i * layout.size));
  return out;
}

/**
 * `iommu_copy_struct_to_user(user_data, ksrc, data_type, min_last)`: same length rules as
 * the from-user helper; writes `min(len, sizeof)` bytes.
 */
export function iommuCopyStructToUser<F extends readonly FieldSpec[]>(
  userData: IommuUserData,
  layout: StructLayout<F>,
  value: Partial<StructValue<F>>,
  dataType: number,
  minLast: F[number]['name'],
): Status {
  if (userData.type !== dataType) return EINVAL;
  if (userData.len < layout.offsetOfEnd(minLast) || userData.len > layout.size) return EINVAL;
  return copyStructToUser(userData.user, userData.uptr, userData.len, layout.encode(value));
}
