/**
 * ioctl request encoding (`include/uapi/asm-generic/ioctl.h`, used by x86-64 and arm64).
 * iommufd and VFIO only use `_IO` (direction 0, size 0): the size lives in the struct's
 * first u32 instead, which is what makes their structs extensible.
 */

/** Bits of the command number (`_IOC_NRBITS`). */
export const _IOC_NRBITS = 8;
/** Bits of the type (`_IOC_TYPEBITS`). */
export const _IOC_TYPEBITS = 8;
/** Bits of the size (`_IOC_SIZEBITS`). */
export const _IOC_SIZEBITS = 14;
/** Shift of the number field. */
export const _IOC_NRSHIFT = 0;
/** Shift of the type field. */
export const _IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS;
/** Shift of the size field. */
export const _IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS;
/** Shift of the direction field. */
export const _IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS;
/** Direction: no data transfer. */
export const _IOC_NONE = 0;
/** Direction: user writes, kernel reads. */
export const _IOC_WRITE = 1;
/** Direction: kernel writes, user reads. */
export const _IOC_READ = 2;

/** `_IOC(dir, type, nr, size)`: the full request value as an unsigned 32-bit number. */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  return (
    ((dir << _IOC_DIRSHIFT) | (type << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)) >>> 0
  );
}

/** `_IO(type, nr)`: an ioctl without a size in its number, as every iommufd/VFIO ioctl. */
export function _IO(type: number, nr: number): number {
  return _IOC(_IOC_NONE, type, nr, 0);
}

/** `_IOC_NR(request)`: the command number (low 8 bits). */
export function _IOC_NR(request: number): number {
  return (request >>> _IOC_NRSHIFT) & ((1 << _IOC_NRBITS) - 1);
}

/** `_IOC_TYPE(request)`: the type character (`';'` = 0x3b for iommufd and VFIO). */
export function _IOC_TYPE(request: number): number {
  return (request >>> _IOC_TYPESHIFT) & ((1 << _IOC_TYPEBITS) - 1);
}
