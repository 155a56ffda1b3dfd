/**
 * Linux errno values (`include/uapi/asm-generic/errno-base.h` and `errno.h`, shared by
 * x86-64 and arm64). uAPI calls in this project return them negated (`-EINVAL`).
 */
/** Operation not permitted (1). */
export const EPERM = 1;
/** No such file or directory (2). */
export const ENOENT = 2;
/** No such process (3). */
export const ESRCH = 3;
/** Interrupted system call (4). */
export const EINTR = 4;
/** I/O error (5). */
export const EIO = 5;
/** No such device or address (6). */
export const ENXIO = 6;
/** Argument list too long (7). */
export const E2BIG = 7;
/** Exec format error (8). */
export const ENOEXEC = 8;
/** Bad file number (9). */
export const EBADF = 9;
/** No child processes (10). */
export const ECHILD = 10;
/** Try again (11). */
export const EAGAIN = 11;
/** Out of memory (12). */
export const ENOMEM = 12;
/** Permission denied (13). */
export const EACCES = 13;
/** Bad address (14). */
export const EFAULT = 14;
/** Block device required (15). */
export const ENOTBLK = 15;
/** Device or resource busy (16). */
export const EBUSY = 16;
/** File exists (17). */
export const EEXIST = 17;
/** Cross-device link (18). */
export const EXDEV = 18;
/** No such device (19). */
export const ENODEV = 19;
/** Not a directory (20). */
export const ENOTDIR = 20;
/** Is a directory (21). */
export const EISDIR = 21;
/** Invalid argument (22). */
export const EINVAL = 22;
/** File table overflow (23). */
export const ENFILE = 23;
/** Too many open files (24). */
export const EMFILE = 24;
/** Not a typewriter (inappropriate ioctl for device) (25). */
export const ENOTTY = 25;
/** Text file busy (26). */
export const ETXTBSY = 26;
/** File too large (27). */
export const EFBIG = 27;
/** No space left on device (28). */
export const ENOSPC = 28;
/** Illegal seek (29). */
export const ESPIPE = 29;
/** Read-only file system (30). */
export const EROFS = 30;
/** Too many links (31). */
export const EMLINK = 31;
/** Broken pipe (32). */
export const EPIPE = 32;
/** Math argument out of domain of func (33). */
export const EDOM = 33;
/** Math result not representable (34). */
export const ERANGE = 34;
/** Resource deadlock would occur (35). */
export const EDEADLK = 35;
/** File name too long (36). */
export const ENAMETOOLONG = 36;
/** No record locks available (37). */
export const ENOLCK = 37;
/** Invalid system call number (38). */
export const ENOSYS = 38;
/** Directory not empty (39). */
export const ENOTEMPTY = 39;
/** Too many symbolic links encountered (40). */
export const ELOOP = 40;
/** No message of desired type (42). */
export const ENOMSG = 42;
/** Identifier removed (43). */
export const EIDRM = 43;
/** No data available (61). */
export const ENODATA = 61;
/** Timer expired (62). */
export const ETIME = 62;
/** Link has been severed (67). */
export const ENOLINK = 67;
/** Protocol error (71). */
export const EPROTO = 71;
/** Not a data message (74). */
export const EBADMSG = 74;
/** Value too large for defined data type (75). */
export const EOVERFLOW = 75;
/** File descriptor in bad state (77). */
export const EBADFD = 77;
/** Illegal byte sequence (84). */
export const EILSEQ = 84;
/** Message too long (90). */
export const EMSGSIZE = 90;
/** Operation not supported on transport endpoint (95). */
export const EOPNOTSUPP = 95;
/** Address already in use (98). */
export const EADDRINUSE = 98;
/** Cannot assign requested address (99). */
export const EADDRNOTAVAIL = 99;
/** No buffer space available (105). */
export const ENOBUFS = 105;
/** Connection timed out (110). */
export const ETIMEDOUT = 110;
/** Operation already in progress (114). */
export const EALREADY = 114;
/** Operation now in progress (115). */
export const EINPROGRESS = 115;
/** Stale file handle (116). */
export const ESTALE = 116;
/** Quota exceeded (122). */
export const EDQUOT = 122;
/** Operation Canceled (125). */
export const ECANCELED = 125;
/** Owner died (130). */
export const EOWNERDEAD = 130;
/** State not recoverable (131). */
export const ENOTRECOVERABLE = 131;
/** Memory page has hardware error (133). */
export const EHWPOISON = 133;
/** Same value as {@link EDEADLK}; the kernel's iommufd code spells it this way (IOAS_UNMAP retry limit). */
export const EDEADLOCK = EDEADLK;
/** Same value as {@link EAGAIN}. */
export const EWOULDBLOCK = EAGAIN;
/**
 * Kernel-internal "no such ioctl" (`include/linux/errno.h`, 515). It never reaches user
 * space: the VFS turns it into {@link ENOTTY}. Exported so models can keep the kernel's
 * internal return value visible.
 */
export const ENOIOCTLCMD = 515;

/** Every errno this module names, by value (aliases resolve to the primary name). */
const NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [1, 'EPERM'],
  [2, 'ENOENT'],
  [3, 'ESRCH'],
  [4, 'EINTR'],
  [5, 'EIO'],
  [6, 'ENXIO'],
  [7, 'E2BIG'],
  [8, 'ENOEXEC'],
  [9, 'EBADF'],
  [10, 'ECHILD'],
  [11, 'EAGAIN'],
  [12, 'ENOMEM'],
  [13, 'EACCES'],
  [14, 'EFAULT'],
  [15, 'ENOTBLK'],
  [16, 'EBUSY'],
  [17, 'EEXIST'],
  [18, 'EXDEV'],
  [19, 'ENODEV'],
  [20, 'ENOTDIR'],
  [21, 'EISDIR'],
  [22, 'EINVAL'],
  [23, 'ENFILE'],
  [24, 'EMFILE'],
  [25, 'ENOTTY'],
  [26, 'ETXTBSY'],
  [27, 'EFBIG'],
  [28, 'ENOSPC'],
  [29, 'ESPIPE'],
  [30, 'EROFS'],
  [31, 'EMLINK'],
  [32, 'EPIPE'],
  [33, 'EDOM'],
  [34, 'ERANGE'],
  [35, 'EDEADLK'],
  [36, 'ENAMETOOLONG'],
  [37, 'ENOLCK'],
  [38, 'ENOSYS'],
  [39, 'ENOTEMPTY'],
  [40, 'ELOOP'],
  [42, 'ENOMSG'],
  [43, 'EIDRM'],
  [61, 'ENODATA'],
  [62, 'ETIME'],
  [67, 'ENOLINK'],
  [71, 'EPROTO'],
  [74, 'EBADMSG'],
  [75, 'EOVERFLOW'],
  [77, 'EBADFD'],
  [84, 'EILSEQ'],
  [90, 'EMSGSIZE'],
  [95, 'EOPNOTSUPP'],
  [98, 'EADDRINUSE'],
  [99, 'EADDRNOTAVAIL'],
  [105, 'ENOBUFS'],
  [110, 'ETIMEDOUT'],
  [114, 'EALREADY'],
  [115, 'EINPROGRESS'],
  [116, 'ESTALE'],
  [122, 'EDQUOT'],
  [125, 'ECANCELED'],
  [130, 'EOWNERDEAD'],
  [131, 'ENOTRECOVERABLE'],
  [133, 'EHWPOISON'],
  [515, 'ENOIOCTLCMD'],
]);

/** Linux errno values by name, as data (aliases included). */
export const ERRNO: Readonly<Record<string, number>> = Object.freeze({
  EPERM,
  ENOENT,
  ESRCH,
  EINTR,
  EIO,
  ENXIO,
  E2BIG,
  ENOEXEC,
  EBADF,
  ECHILD,
  EAGAIN,
  ENOMEM,
  EACCES,
  EFAULT,
  ENOTBLK,
  EBUSY,
  EEXIST,
  EXDEV,
  ENODEV,
  ENOTDIR,
  EISDIR,
  EINVAL,
  ENFILE,
  EMFILE,
  ENOTTY,
  ETXTBSY,
  EFBIG,
  ENOSPC,
  ESPIPE,
  EROFS,
  EMLINK,
  EPIPE,
  EDOM,
  ERANGE,
  EDEADLK,
  ENAMETOOLONG,
  ENOLCK,
  ENOSYS,
  ENOTEMPTY,
  ELOOP,
  ENOMSG,
  EIDRM,
  ENODATA,
  ETIME,
  ENOLINK,
  EPROTO,
  EBADMSG,
  EOVERFLOW,
  EBADFD,
  EILSEQ,
  EMSGSIZE,
  EOPNOTSUPP,
  EADDRINUSE,
  EADDRNOTAVAIL,
  ENOBUFS,
  ETIMEDOUT,
  EALREADY,
  EINPROGRESS,
  ESTALE,
  EDQUOT,
  ECANCELED,
  EOWNERDEAD,
  ENOTRECOVERABLE,
  EHWPOISON,
  EDEADLOCK,
  EWOULDBLOCK,
  ENOIOCTLCMD,
});

/**
 * The C name of an errno value: `errnoName(22)` and `errnoName(-22)` are `'EINVAL'`
 * (a negated uAPI return value is accepted as is). Values without a name here give
 * `'errno N'`.
 */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  return NAMES.get(n) ?? `errno ${n}`;
}
