/**
 * The size-extensibility rule of iommufd and VFIO structs, as the kernel applies it
 * (`copy_struct_from_user` in include/linux/uaccess.h on the way in, `min(user size,
 * sizeof)` bytes on the way out), shared by every model of a kernel handler.
 */
import { E2BIG, EFAULT } from './errno.js';
import type { FieldSpec, StructLayout, StructValue } from './layout.js';

/**
 * Reads a user struct of `user.length` bytes into the kernel's layout: a shorter struct has
 * its missing tail read as zero; a longer one is accepted only if every byte past the
 * kernel's `sizeof` is zero, else the result is `E2BIG` (a positive errno, the kernel's
 * "unknown non-zero trailing bytes"). The minimum size check (EINVAL) is the dispatcher's.
 */
export function copyStructFromUser<F extends readonly FieldSpec[]>(
  layout: StructLayout<F>,
  user: Uint8Array,
): StructValue<F> | typeof E2BIG {
  for (let i = layout.size; i < user.length; i++) if (user[i] !== 0) return E2BIG;
  // Every field lies below sizeof and the tail is zero: decoding the user bytes as they are
  // is the same (and a small array is not moved out of the JS heap by a subarray).
  return layout.decode(user);
}

/**
 * The bytes a handler's response copies back to a user struct of `userSize` bytes: the
 * whole kernel struct, cut to `min(userSize, sizeof)` (bytes beyond the kernel's struct are
 * never written).
 */
export function structBytesForUser<F extends readonly FieldSpec[]>(
  layout: StructLayout<F>,
  value: Partial<StructValue<F>>,
  userSize: number,
): Uint8Array {
  const bytes = layout.encode(value);
  return userSize >= layout.size ? bytes : bytes.slice(0, Math.max(0, userSize));
}

/** Reads `length` bytes of user memory at `va`: the bytes, or an errno (EFAULT) as a number. */
export type UserMemoryReader = (va: bigint, length: number) => Uint8Array | number;

/** Bytes of user memory {@link copyStructFromUserAt} reads at a time past the kernel's struct. */
const TAIL_CHUNK = 4096;

/**
 * `copy_struct_from_user` straight from user memory, for a user size that may be garbage: a
 * longer struct's tail is checked to be zero chunk by chunk from its start
 * (`check_zeroed_user`: the first non-zero byte gives `E2BIG`, the first unmapped byte
 * `EFAULT`, whichever comes first), then the kernel's part is copied (`EFAULT`). Never holds
 * more than one page of the tail, so a size of 4 GiB costs what it costs the kernel, not a
 * 4 GiB buffer. Errnos are positive, as in {@link copyStructFromUser}.
 */
export function copyStructFromUserAt<F extends readonly FieldSpec[]>(
  layout: StructLayout<F>,
  read: UserMemoryReader,
  va: bigint,
  userSize: number,
): StructValue<F> | typeof E2BIG | typeof EFAULT {
  for (let off = layout.size; off < userSize; ) {
    const at = va + BigInt(off);
    const chunk = Math.min(userSize - off, TAIL_CHUNK - Number(at % BigInt(TAIL_CHUNK)));
    const bytes = read(at, chunk);
    if (typeof bytes === 'number') return EFAULT;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return E2BIG;
    off += chunk;
  }
  const head = read(va, Math.min(userSize, layout.size));
  if (typeof head === 'number') return EFAULT;
  return layout.decode(head);
}
