// Open files (include/linux/fs.h): struct file with its reference count, the inode behind it and
// the inode's page cache (struct address_space), which is also where the reverse map finds every
// vma that maps the file. Only what mmap and the page cache need: no dentries or mounts, a file
// carries the path d_path() would give it.

import { object_gone } from "../lib/lifetime.ts";
import type { Page } from "../mm/memmap.ts";
import type { VmArea } from "../mm/mm_types.ts";

export const FMODE_READ = 0x1;
export const FMODE_WRITE = 0x2;

export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_ACCMODE = 0o3;

/** OPEN_FMODE(): the FMODE_READ/FMODE_WRITE an open(2)'s access mode asks for (none for 3). */
export function OPEN_FMODE(flags: number): number {
  return ((flags & O_ACCMODE) + 1) & O_ACCMODE;
}

/** The inode fields mmap and /proc/PID/maps read. */
export interface Inode {
  readonly i_ino: number;
  /** The superblock's s_dev as (major << 20) | minor (MKDEV). */
  readonly s_dev: number;
  i_size: number;
  readonly i_mapping: AddressSpace | null;
  /** S_ISREG() */
  readonly regular: boolean;
}

/** struct address_space: a file's page cache (index -> page) and its mappings (i_mmap). */
export class AddressSpace {
  readonly host: Inode;
  /** i_pages: each cached page holds one reference; page->mapping is this object. */
  readonly i_pages = new Map<number, Page>();
  /** i_mmap: every vma mapping this file, shared or private (the kernel's interval tree). */
  readonly i_mmap = new Set<VmArea>();
  constructor(host: Inode) {
    this.host = host;
  }
}

/** struct file_operations: what the core calls on an open file. Negative errno on failure. */
export interface FileOperations {
  mmap?(file: File, vma: VmArea): number;
  /** read_iter at `pos`: the bytes read (short at end of file), or a negative errno. */
  read?(file: File, count: number, pos: number): Uint8Array | number;
  /** write_iter at `pos`: bytes written or a negative errno. */
  write?(file: File, data: Uint8Array, pos: number): number;
  /** do_truncate() through ->setattr: 0 or a negative errno. */
  truncate?(file: File, length: number): number;
  /** fsync(2) (vfs_fsync_range): 0 or a negative errno. */
  fsync?(file: File): number;
  /** The last reference is gone. */
  release?(file: File): void;
  /** get_unmapped_area() for a mapping of this file: an address, or a negative errno. */
  get_unmapped_area?(file: File, addr: number, len: number, pgoff: number, flags: number): number;
  /** ioctl(2) (fs/ioctl.c vfs_ioctl): a value >= 0 or a negative errno. */
  unlocked_ioctl?(file: File, cmd: number, arg: number): number;
}

/** struct file */
export class File {
  readonly f_op: FileOperations;
  readonly f_mode: number;
  readonly f_inode: Inode | null;
  readonly f_mapping: AddressSpace | null;
  /** What d_path() gives for /proc/PID/maps, e.g. "/memfd:name (deleted)". */
  readonly path: string;
  /** The dentry name %pD prints. */
  readonly dname: string;
  f_count = 1;
  /** The open(2) flags. */
  f_flags = 0;
  private_data: unknown = null;

  constructor(f_op: FileOperations, f_mode: number, inode: Inode | null, path: string, dname: string) {
    this.f_op = f_op;
    this.f_mode = f_mode;
    this.f_inode = inode;
    this.f_mapping = inode?.i_mapping ?? null;
    this.path = path;
    this.dname = dname;
  }

  /** The file is freed: modules' handles to it go stale. */
  gone(): void {
    object_gone(this);
  }
}

/** get_file() */
export function get_file(file: File): File {
  file.f_count++;
  return file;
}

/** fput(): the last reference releases the file (and handles to it go stale). */
export function fput(file: File): void {
  if (--file.f_count !== 0) return;
  try {
    file.f_op.release?.(file);
  } finally {
    file.gone();
  }
}

/** MKDEV() of the kernel's internal dev_t. */
export function MKDEV(major: number, minor: number): number {
  return major * 2 ** 20 + minor;
}
export function MAJOR(dev: number): number {
  return Math.floor(dev / 2 ** 20);
}
export function MINOR(dev: number): number {
  return dev % 2 ** 20;
}
