/**
 * The Linux errno values the host layer itself returns. Values are from
 * `include/uapi/asm-generic/errno-base.h` / `errno.h`.
 */
export const EPERM = 1;
export const ENOENT = 2;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const EMFILE = 24;
export const ENOTTY = 25;
export const ESPIPE = 29;
export const EOPNOTSUPP = 95;
export const EBADFD = 77;
