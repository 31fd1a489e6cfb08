// Character devices as drivers register them through the misc driver (drivers/char/misc.c,
// 4.19-5.0) and as a process reaches them through /dev (fs/char_dev.c, fs/open.c,
// fs/ioctl.c): misc_register() gives a struct miscdevice a minor of MISC_MAJOR (a dynamic one,
// counted down from 63, for MISC_DYNAMIC_MINOR), a device "NAME" in class misc and the node
// /dev/NAME. open() finds the device by its minor, takes a reference on the owner of its
// file_operations (fops_get), points file->private_data at the miscdevice and calls ->open;
// a failed ->open drops the reference again without ->release. The file holds the reference
// until its last fput(), which calls ->release. ioctl() goes to ->unlocked_ioctl
// (vfs_ioctl: -ENOTTY without one, and for -ENOIOCTLCMD).

import { EBUSY, EEXIST, EINVAL, ENODEV, ENOTTY } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import { child_path, Device, SYSFS_DIR_CALLERS } from "../base/device.ts";
import type { Module } from "../module/module.ts";
import type { VmArea } from "../mm/mm_types.ts";
import { DEVTMPFS_DEV } from "./devtmpfs.ts";
import { File, MAJOR, MINOR, MKDEV, OPEN_FMODE, O_ACCMODE, type AddressSpace, type FileOperations, type Inode } from "./file.ts";

export const MISC_MAJOR = 10;
/** miscdevice.minor asking for a dynamic minor. */
export const MISC_DYNAMIC_MINOR = 255;
/** Dynamic minors: 64, handed out from 63 down. */
export const DYNAMIC_MINORS = 64;
/** include/linux/errno.h: "no ioctl command", kernel-internal; vfs_ioctl() turns it into -ENOTTY. */
export const ENOIOCTLCMD = 515;

/** Kept here for kemu/kernel's constants (fs/file.ts defines it). */
export { O_ACCMODE };

/** struct file_operations of a character device, as the kernel holds it. */
export interface CharFileOperations {
  /** fops->owner: the module fops_get() pins while a file is open (THIS_MODULE). */
  owner: Module | null;
  open: ((inode: CharInode, file: File) => number) | null;
  release: ((inode: CharInode, file: File) => number) | null;
  unlocked_ioctl: ((file: File, cmd: number, arg: number) => number) | null;
  mmap: ((file: File, vma: VmArea) => number) | null;
  get_unmapped_area: ((file: File, addr: number, len: number, pgoff: number, flags: number) => number) | null;
}

/** The inode of a device node: i_rdev says which device it is. */
export class CharInode implements Inode {
  readonly i_ino: number;
  readonly s_dev = DEVTMPFS_DEV;
  i_size = 0;
  readonly i_mapping: AddressSpace | null = null;
  readonly regular = false;
  /** MKDEV(major, minor) */
  readonly i_rdev: number;
  constructor(ino: number, rdev: number) {
    this.i_ino = ino;
    this.i_rdev = rdev;
  }
}

/** struct miscdevice as the kernel holds it: the module's fields, and its place on misc_list. */
export class MiscDevice {
  minor = MISC_DYNAMIC_MINOR;
  name = "";
  fops: CharFileOperations | null = null;
  mode = 0;
  /** On misc_list (list_empty(&misc->list) is false). */
  listed = false;
  /** misc->this_device */
  this_device: Device | null = null;
  /** The module that registered it (for teardown when the module dies). */
  owner: Module | null = null;
  /** The devtmpfs inode of /dev/NAME. */
  inode: CharInode | null = null;
}

/** iminor() */
export function iminor(inode: CharInode): number {
  return MINOR(inode.i_rdev);
}
/** imajor() */
export function imajor(inode: CharInode): number {
  return MAJOR(inode.i_rdev);
}

/** The f_op of an open char device file: the driver's fops, with the open path's own release. */
export function char_file_ops(fops: CharFileOperations, release: (file: File) => void): FileOperations {
  return {
    release,
    unlocked_ioctl: fops.unlocked_ioctl ? (file, cmd, arg) => fops.unlocked_ioctl!(file, cmd, arg) : undefined,
    mmap: fops.mmap ? (file, vma) => fops.mmap!(file, vma) : undefined,
    get_unmapped_area: fops.get_unmapped_area ? (file, addr, len, pgoff, fl) => fops.get_unmapped_area!(file, addr, len, pgoff, fl) : undefined,
  };
}

/** What the file of an open device node keeps: its inode and the fops it was opened with. */
interface CharFile {
  readonly inode: CharInode;
  readonly fops: CharFileOperations;
}

export class MiscDevices {
  readonly #k: Kernel;
  /** misc_list: newest first, so later devices can "override" earlier defaults. */
  readonly list: MiscDevice[] = [];
  /** misc_minors: bit i set means dynamic minor DYNAMIC_MINORS - i - 1 is taken. */
  readonly #dynamic = new Set<number>();
  #nextIno = 1000;
  readonly #files = new WeakMap<File, CharFile>();

  constructor(k: Kernel) {
    this.#k = k;
  }

  /** misc_register(): 0, -EBUSY (no minor free, or the minor is taken), -EEXIST (the name is). */
  misc_register(misc: MiscDevice, owner: Module | null): number {
    const k = this.#k;
    const dynamic = misc.minor === MISC_DYNAMIC_MINOR;
    if (dynamic) {
      let i = 0;
      while (i < DYNAMIC_MINORS && this.#dynamic.has(i)) i++;
      if (i >= DYNAMIC_MINORS) return -EBUSY;
      misc.minor = DYNAMIC_MINORS - i - 1;
      this.#dynamic.add(i);
    } else if (this.list.some((c) => c.minor === misc.minor)) {
      return -EBUSY;
    }
    // device_create_with_groups(misc_class, misc->parent, dev, misc, misc->groups, "%s", name):
    // a second device of the same name fails in sysfs.
    if (!misc.name || this.list.some((c) => c.name === misc.name)) {
      if (misc.name) {
        k.base.sysfs_warn_dup(child_path(null, misc.name, "misc"), [...SYSFS_DIR_CALLERS, "device_create_groups_vargs", "device_create_with_groups", "misc_register"], misc.name);
      }
      if (dynamic) {
        this.#dynamic.delete(DYNAMIC_MINORS - misc.minor - 1);
        misc.minor = MISC_DYNAMIC_MINOR;
      }
      return misc.name ? -EEXIST : -EINVAL;
    }
    const dev = new Device(misc.name, { className: "misc" });
    k.base.device_register(dev, null);
    misc.this_device = dev;
    misc.inode = new CharInode(this.#nextIno++, MKDEV(MISC_MAJOR, misc.minor));
    misc.owner = owner;
    misc.listed = true;
    this.list.unshift(misc);
    k.devtmpfs.create_node(misc.name, misc.inode.i_rdev, (path, flags) => this.open(misc, path, flags));
    return 0;
  }

  /** misc_deregister(): WARN_ON(list_empty(&misc->list)) for one never registered (or twice). */
  misc_deregister(misc: MiscDevice): void {
    const k = this.#k;
    if (!misc.listed) {
      k.warn({ file: "drivers/char/misc.c", func: "misc_deregister" }, null);
      return;
    }
    this.list.splice(this.list.indexOf(misc), 1);
    misc.listed = false;
    k.devtmpfs.delete_node(misc.name, MKDEV(MISC_MAJOR, misc.minor));
    if (misc.this_device) k.base.device_unregister(misc.this_device);
    misc.this_device = null;
    const i = DYNAMIC_MINORS - misc.minor - 1;
    if (i < DYNAMIC_MINORS && i >= 0) this.#dynamic.delete(i);
    misc.owner = null;
  }

  /** /proc/misc: "%3i %s" per device, newest first. */
  show(): string {
    return this.list.map((c) => `${String(c.minor).padStart(3)} ${c.name}\n`).join("");
  }

  /**
   * open(2) of the device's node (/dev/NAME through devtmpfs): the file, or -ENODEV (its
   * module is going), -EINVAL (O_ACCMODE 3), or what ->open returned.
   */
  open(misc: MiscDevice, path: string, flags: number): File | number {
    const k = this.#k;
    const inode = misc.inode!;
    // chrdev_open() -> misc_open(): the device by minor, and fops_get().
    const fops = misc.fops;
    if (!fops) return -ENODEV;
    if (fops.owner && !k.modules.try_module_get(fops.owner)) return -ENODEV;
    if ((flags & O_ACCMODE) === 3) {
      k.modules.module_put(fops.owner);
      return -EINVAL;
    }
    const file = new File(char_file_ops(fops, (f) => this.#release(f)), OPEN_FMODE(flags), inode, path, misc.name);
    file.f_flags = flags;
    // "Place the miscdevice in the file's private_data so it can be used by the file
    // operations, including f_op->open below."
    file.private_data = misc;
    this.#files.set(file, { inode, fops });
    if (fops.open) {
      const err = fops.open(inode, file);
      if (err) {
        // do_dentry_open()'s cleanup: no ->release, the reference goes, the file is freed.
        this.#files.delete(file);
        k.modules.module_put(fops.owner);
        file.gone();
        return err;
      }
    }
    return file;
  }

  /** __fput(): ->release, then fops_put(). */
  #release(file: File): void {
    const cf = this.#files.get(file);
    if (!cf) return;
    this.#files.delete(file);
    try {
      cf.fops.release?.(cf.inode, file);
    } finally {
      this.#k.modules.module_put(cf.fops.owner);
    }
  }

  /** Is `file` an open device node? */
  isCharFile(file: File): boolean {
    return this.#files.has(file);
  }
}

/**
 * vfs_ioctl(): ->unlocked_ioctl, -ENOTTY without one; -ENOIOCTLCMD becomes -ENOTTY. The
 * generic commands of do_vfs_ioctl() (FIOCLEX, FIONBIO, ...) are not modelled.
 */
export function vfs_ioctl(file: File, cmd: number, arg: number): number {
  if (!file.f_op.unlocked_ioctl) return -ENOTTY;
  const r = file.f_op.unlocked_ioctl(file, cmd, arg);
  return r === -ENOIOCTLCMD ? -ENOTTY : r;
}
