// errno values of include/uapi/asm-generic/errno-base.h and errno.h (x86-64),
// plus the kernel-internal codes of include/linux/errno.h that drivers see.

export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const ENOEXEC = 8;
export const EBADF = 9;
export const ECHILD = 10;
export const EAGAIN = 11;
export const EWOULDBLOCK = EAGAIN;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const ENOTBLK = 15;
export const EBUSY = 16;
export const EEXIST = 17;
export const EXDEV = 18;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ENOTTY = 25;
export const ETXTBSY = 26;
export const EFBIG = 27;
export const ENOSPC = 28;
export const ESPIPE = 29;
export const EROFS = 30;
export const EMLINK = 31;
export const EPIPE = 32;
export const EDOM = 33;
export const ERANGE = 34;
export const EDEADLK = 35;
export const ENAMETOOLONG = 36;
export const ENOSYS = 38;
export const ENOTEMPTY = 39;
export const ENODATA = 61;
export const ENOPKG = 65;
export const ETIME = 62;
export const EOVERFLOW = 75;
export const EBADMSG = 74;
export const EOPNOTSUPP = 95;
export const ETIMEDOUT = 110;
export const EALREADY = 114;
export const EINPROGRESS = 115;
export const EDQUOT = 122;
export const ECANCELED = 125;
export const ENOKEY = 126;
export const EKEYEXPIRED = 127;
export const EKEYREVOKED = 128;
export const EKEYREJECTED = 129;
export const EHWPOISON = 133;
// include/linux/errno.h: never seen by user space
export const ERESTARTSYS = 512;
export const EPROBE_DEFER = 517;
export const ENOTSUPP = 524;

const NAMES: Record<number, string> = {};
const MESSAGES: Record<number, string> = {
  [EPERM]: "Operation not permitted",
  [ENOENT]: "No such file or directory",
  [ESRCH]: "No such process",
  [EINTR]: "Interrupted system call",
  [EIO]: "Input/output error",
  [ENXIO]: "No such device or address",
  [E2BIG]: "Argument list too long",
  [ENOEXEC]: "Exec format error",
  [EBADF]: "Bad file descriptor",
  [ECHILD]: "No child processes",
  [EAGAIN]: "Resource temporarily unavailable",
  [ENOMEM]: "Cannot allocate memory",
  [EACCES]: "Permission denied",
  [EFAULT]: "Bad address",
  [ENOTBLK]: "Block device required",
  [EBUSY]: "Device or resource busy",
  [EEXIST]: "File exists",
  [EXDEV]: "Invalid cross-device link",
  [ENODEV]: "No such device",
  [ENOTDIR]: "Not a directory",
  [EISDIR]: "Is a directory",
  [EINVAL]: "Invalid argument",
  [ENFILE]: "Too many open files in system",
  [EMFILE]: "Too many open files",
  [ENOTTY]: "Inappropriate ioctl for device",
  [ETXTBSY]: "Text file busy",
  [EFBIG]: "File too large",
  [ENOSPC]: "No space left on device",
  [ESPIPE]: "Illegal seek",
  [EROFS]: "Read-only file system",
  [EMLINK]: "Too many links",
  [EPIPE]: "Broken pipe",
  [EDOM]: "Numerical argument out of domain",
  [ERANGE]: "Numerical result out of range",
  [EDEADLK]: "Resource deadlock avoided",
  [ENAMETOOLONG]: "File name too long",
  [ENOSYS]: "Function not implemented",
  [ENOTEMPTY]: "Directory not empty",
  [ENODATA]: "No data available",
  [ENOPKG]: "Package not installed",
  [ETIME]: "Timer expired",
  [EBADMSG]: "Bad message",
  [EOVERFLOW]: "Value too large for defined data type",
  [EOPNOTSUPP]: "Operation not supported",
  [ETIMEDOUT]: "Connection timed out",
  [EALREADY]: "Operation already in progress",
  [EINPROGRESS]: "Operation now in progress",
  [EDQUOT]: "Disk quota exceeded",
  [ECANCELED]: "Operation canceled",
  [ENOKEY]: "Required key not available",
  [EKEYEXPIRED]: "Key has expired",
  [EKEYREVOKED]: "Key has been revoked",
  [EKEYREJECTED]: "Key was rejected by service",
  [EHWPOISON]: "Memory page has hardware error",
  [ERESTARTSYS]: "Unknown error 512",
  [EPROBE_DEFER]: "Unknown error 517",
  [ENOTSUPP]: "Unknown error 524",
};

const ALL: Record<string, number> = {
  EPERM, ENOENT, ESRCH, EINTR, EIO, ENXIO, E2BIG, ENOEXEC, EBADF, ECHILD, EAGAIN, ENOMEM,
  EACCES, EFAULT, ENOTBLK, EBUSY, EEXIST, EXDEV, ENODEV, ENOTDIR, EISDIR, EINVAL, ENFILE,
  EMFILE, ENOTTY, ETXTBSY, EFBIG, ENOSPC, ESPIPE, EROFS, EMLINK, EPIPE, EDOM, ERANGE, EDEADLK,
  ENAMETOOLONG, ENOSYS, ENOTEMPTY, ENODATA, ENOPKG, ETIME, EBADMSG, EOVERFLOW, EOPNOTSUPP, ETIMEDOUT,
  EALREADY, EINPROGRESS, EDQUOT, ECANCELED, ENOKEY, EKEYEXPIRED, EKEYREVOKED, EKEYREJECTED,
  EHWPOISON, ERESTARTSYS, EPROBE_DEFER, ENOTSUPP,
};
for (const [name, value] of Object.entries(ALL)) NAMES[value] ??= name;

/** Every errno name with its value, for generated SDK declarations. */
export const ERRNO: Readonly<Record<string, number>> = Object.freeze({ ...ALL, EWOULDBLOCK });

/** "ENOMEM" for 12 or -12. */
export function errnoName(err: number): string {
  return NAMES[Math.abs(err)] ?? `E${Math.abs(err)}`;
}

/** strerror(3): "Cannot allocate memory" for 12 or -12. */
export function strerror(err: number): string {
  return MESSAGES[Math.abs(err)] ?? `Unknown error ${Math.abs(err)}`;
}

/**
 * The host API's error: carries the positive errno and the message that says what failed.
 * The driver API never throws it; drivers get negative errno values instead.
 */
export class KernelError extends Error {
  readonly errno: number;
  constructor(errno: number, message?: string) {
    const e = Math.abs(errno);
    super(message ?? `${errnoName(e)}: ${strerror(e)}`);
    this.name = "KernelError";
    this.errno = e;
  }
  /** The negative errno a kernel function would return. */
  get code(): number {
    return -this.errno;
  }
}

// ERR_PTR conventions: pointer-returning calls give an object or a negative errno.
export const MAX_ERRNO = 4095;
export type ErrPtr = number;
export function ERR_PTR(err: number): ErrPtr {
  return err;
}
export function IS_ERR(p: unknown): p is ErrPtr {
  return typeof p === "number" && p < 0 && p >= -MAX_ERRNO;
}
export function PTR_ERR(p: ErrPtr): number {
  return p;
}
export function IS_ERR_OR_NULL(p: unknown): boolean {
  return p === null || p === undefined || IS_ERR(p);
}
