// Character device regions and cdevs (fs/char_dev.c, 4.20/5.0), and the device classes whose
// devices get their /dev nodes (drivers/base/class.c, core.c device_create(), devtmpfs):
//
// - register_chrdev_region()/alloc_chrdev_region() reserve (major, minor) ranges by name, as
//   /proc/devices lists them; dynamic majors are handed out from 254 down to 234, then from
//   511 down to 384 (find_dynamic_major()).
// - cdev_add() makes a range of device numbers reach a struct cdev's file_operations.
// - device_create() adds a device of a class; with a dev_t it gets the node /dev/NAME, whose
//   open(2) is chrdev_open(): the cdev covering the number (-ENXIO without one), a reference on
//   the cdev's owner (cdev_get) and one on the fops' owner (fops_get), then ->open. The file
//   keeps both until its last fput(), which calls ->release.
//
// Every node has its inode and the inode its address space, so a driver can find and zap
// every mapping of its device (unmap_mapping_range(), as device-dax does when it dies).

import { EBUSY, EEXIST, EINVAL, ENXIO } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import { child_path, Device, device_path, SYSFS_DIR_CALLERS } from "../base/device.ts";
import type { Module } from "../module/module.ts";
import { char_file_ops, MISC_MAJOR, type CharFileOperations } from "./chrdev.ts";
import { DEVTMPFS_DEV } from "./devtmpfs.ts";
import { AddressSpace, File, MAJOR, MINOR, MKDEV, OPEN_FMODE, type Inode } from "./file.ts";

export const MINORBITS = 20;
export const MINORMASK = (1 << MINORBITS) - 1;
export const CHRDEV_MAJOR_MAX = 512;
const CHRDEV_MAJOR_HASH_SIZE = 255;
/** The bottom of the first segment of dynamic majors (254 down to here). */
const CHRDEV_MAJOR_DYN_END = 234;
/** The second segment: 511 down to 384. */
const CHRDEV_MAJOR_DYN_EXT_START = 511;
const CHRDEV_MAJOR_DYN_EXT_END = 384;

/** struct char_device_struct: one registered range. */
export interface ChrdevRegion {
  readonly major: number;
  readonly baseminor: number;
  readonly minorct: number;
  readonly name: string;
}

/** struct cdev */
export class Cdev {
  /** cdev->owner: the module cdev_get() pins while a file is open. */
  owner: Module | null = null;
  ops: CharFileOperations | null = null;
  dev = 0;
  count = 0;
  /** Between cdev_add() and cdev_del(). */
  added = false;
}

/** struct class */
export class DeviceClass {
  readonly name: string;
  readonly owner: Module | null;
  readonly devices: Device[] = [];
  constructor(name: string, owner: Module | null) {
    this.name = name;
    this.owner = owner;
  }
}

/** The inode of a character device node: i_rdev says which device; it has its own mapping. */
export class CdevInode implements Inode {
  readonly i_ino: number;
  readonly s_dev = DEVTMPFS_DEV;
  i_size = 0;
  readonly i_mapping: AddressSpace;
  readonly regular = false;
  readonly i_rdev: number;
  /** inode->i_cdev: the cdev the first open found (cleared by cdev_del()). */
  i_cdev: Cdev | null = null;
  constructor(ino: number, rdev: number) {
    this.i_ino = ino;
    this.i_rdev = rdev;
    this.i_mapping = new AddressSpace(this);
  }
}

/** What an open file of a node keeps until its release. */
interface OpenCdev {
  readonly inode: CdevInode;
  readonly cdev: Cdev;
  readonly fops: CharFileOperations;
}

/** A sysfs attribute file: what reading it gives. */
export type AttrShow = () => string;

export class CharDevices {
  readonly #k: Kernel;
  /** chrdevs[]: by major, then minor. */
  readonly regions: ChrdevRegion[] = [];
  /** cdev_map: added cdevs, newest first (kobj_map() puts a new probe in front). */
  readonly #cdevs: Cdev[] = [];
  readonly classes: DeviceClass[] = [];
  /** The dev_t of each device created with one. */
  readonly #devt = new WeakMap<Device, number>();
  /** The node of each such device. */
  readonly #nodes = new Map<number, CdevInode>();
  readonly #files = new WeakMap<File, OpenCdev>();
  /** sysfs attribute paths of each device (removed with it). */
  readonly #attrs = new Map<Device, Set<string>>();
  #nextIno = 2000;
  /** The "Block devices:" section of /proc/devices, when a block layer provides one. */
  blockDevices: (() => string) | null = null;

  constructor(k: Kernel) {
    this.#k = k;
    // misc_init(): register_chrdev(MISC_MAJOR, "misc", &misc_fops).
    this.register_chrdev_region(MKDEV(MISC_MAJOR, 0), 256, "misc");
    k.proc.register("/proc/devices", { read: () => this.show() });
  }

  // ---- regions -------------------------------------------------------------------------

  /** find_dynamic_major(): -EBUSY when both segments are full. */
  #find_dynamic_major(): number {
    for (let i = CHRDEV_MAJOR_HASH_SIZE - 1; i >= CHRDEV_MAJOR_DYN_END; i--) {
      // chrdevs[i] == NULL: no major hashes to this slot.
      if (!this.regions.some((r) => r.major % CHRDEV_MAJOR_HASH_SIZE === i)) return i;
    }
    for (let i = CHRDEV_MAJOR_DYN_EXT_START; i >= CHRDEV_MAJOR_DYN_EXT_END; i--) {
      if (!this.regions.some((r) => r.major === i)) return i;
    }
    return -EBUSY;
  }

  /** __register_chrdev_region(): the region, or a negative errno. major 0 asks for a dynamic one. */
  #register(major: number, baseminor: number, minorct: number, name: string): ChrdevRegion | number {
    const k = this.#k;
    if (major === 0) {
      const m = this.#find_dynamic_major();
      if (m < 0) {
        k.printk(`\x013CHRDEV "${name}" dynamic allocation region is full\n`);
        return m;
      }
      major = m;
    }
    if (major >= CHRDEV_MAJOR_MAX) {
      k.printk(`\x013CHRDEV "${name}" major requested (${major}) is greater than the maximum (${CHRDEV_MAJOR_MAX - 1})\n`);
      return -EINVAL;
    }
    const last = baseminor + minorct - 1;
    if (this.regions.some((r) => r.major === major && baseminor <= r.baseminor + r.minorct - 1 && last >= r.baseminor)) return -EBUSY;
    const cd: ChrdevRegion = { major, baseminor, minorct, name };
    let i = 0;
    while (i < this.regions.length && (this.regions[i]!.major < major || (this.regions[i]!.major === major && this.regions[i]!.baseminor < baseminor))) i++;
    this.regions.splice(i, 0, cd);
    return cd;
  }

  /** register_chrdev_region(): [from, from + count) by name, across majors if it must be. */
  register_chrdev_region(from: number, count: number, name: string): number {
    const to = from + count;
    const done: ChrdevRegion[] = [];
    for (let n = from; n < to; ) {
      const next = Math.min(MKDEV(MAJOR(n) + 1, 0), to);
      const cd = this.#register(MAJOR(n), MINOR(n), next - n, name);
      if (typeof cd === "number") {
        for (const d of done) this.regions.splice(this.regions.indexOf(d), 1);
        return cd;
      }
      done.push(cd);
      n = next;
    }
    return 0;
  }

  /** alloc_chrdev_region(): the first dev_t of a range with a dynamic major, or a negative errno. */
  alloc_chrdev_region(baseminor: number, count: number, name: string): number {
    const cd = this.#register(0, baseminor, count, name);
    return typeof cd === "number" ? cd : MKDEV(cd.major, cd.baseminor);
  }

  /** unregister_chrdev_region(): the ranges register_chrdev_region() made for [from, from + count). */
  unregister_chrdev_region(from: number, count: number): void {
    const to = from + count;
    for (let n = from; n < to; ) {
      const next = Math.min(MKDEV(MAJOR(n) + 1, 0), to);
      const i = this.regions.findIndex((r) => r.major === MAJOR(n) && r.baseminor === MINOR(n) && r.minorct === next - n);
      if (i >= 0) this.regions.splice(i, 1);
      n = next;
    }
  }

  // ---- cdevs ---------------------------------------------------------------------------

  /** cdev_init(): a cdev with these file operations, not added. */
  cdev_init(cdev: Cdev, fops: CharFileOperations): void {
    cdev.ops = fops;
    cdev.dev = 0;
    cdev.count = 0;
  }

  /** cdev_add(): the numbers [dev, dev + count) now open through `cdev`. */
  cdev_add(cdev: Cdev, dev: number, count: number): number {
    if (cdev.added) return -EBUSY;
    cdev.dev = dev;
    cdev.count = count;
    cdev.added = true;
    this.#cdevs.unshift(cdev);
    return 0;
  }

  /** cdev_del(): no new opens reach it; open files keep it (and its module) until they go. */
  cdev_del(cdev: Cdev): void {
    const i = this.#cdevs.indexOf(cdev);
    if (i >= 0) this.#cdevs.splice(i, 1);
    cdev.added = false;
    // cdev_purge(): the inodes that cached it forget it.
    for (const inode of this.#nodes.values()) if (inode.i_cdev === cdev) inode.i_cdev = null;
  }

  /** kobj_lookup(cdev_map, dev): the newest added cdev covering `dev`. */
  #lookup(dev: number): Cdev | null {
    return this.#cdevs.find((c) => dev >= c.dev && dev < c.dev + c.count) ?? null;
  }

  /** chrdev_open(): the file of an open of node `inode`, or a negative errno. */
  chrdev_open(inode: CdevInode, path: string, name: string, flags: number): File | number {
    const k = this.#k;
    const mods = k.modules;
    let p = inode.i_cdev;
    if (!p) {
      p = this.#lookup(inode.i_rdev);
      if (!p) return -ENXIO;
      inode.i_cdev = p;
    }
    // cdev_get()
    if (!mods.try_module_get(p.owner)) return -ENXIO;
    const fops = p.ops;
    // fops_get()
    if (!fops || !mods.try_module_get(fops.owner)) {
      mods.module_put(p.owner);
      return -ENXIO;
    }
    const cdev = p;
    const file = new File(char_file_ops(fops, (f) => this.#release(f)), OPEN_FMODE(flags), inode, path, name);
    file.f_flags = flags;
    this.#files.set(file, { inode, cdev, fops });
    if (fops.open) {
      const err = fops.open(inode, file);
      if (err) {
        this.#files.delete(file);
        mods.module_put(fops.owner);
        mods.module_put(cdev.owner);
        file.gone();
        return err;
      }
    }
    return file;
  }

  /** __fput(): ->release, fops_put(), cdev_put(). */
  #release(file: File): void {
    const of = this.#files.get(file);
    if (!of) return;
    this.#files.delete(file);
    try {
      of.fops.release?.(of.inode, file);
    } finally {
      this.#k.modules.module_put(of.fops.owner);
      this.#k.modules.module_put(of.cdev.owner);
    }
  }

  // ---- classes and their devices -------------------------------------------------------

  /** class_create(): -EEXIST when a class of that name exists. */
  class_create(owner: Module | null, name: string): DeviceClass | number {
    if (this.classes.some((c) => c.name === name)) return -EEXIST;
    const cls = new DeviceClass(name, owner);
    this.classes.push(cls);
    return cls;
  }

  /** class_destroy(): its devices are expected to be gone; those left are unregistered. */
  class_destroy(cls: DeviceClass): void {
    for (const dev of [...cls.devices].reverse()) this.device_unregister(dev);
    const i = this.classes.indexOf(cls);
    if (i >= 0) this.classes.splice(i, 1);
  }

  /**
   * device_create(): a device of `cls` named `name` under `parent`; with a dev_t (non-zero)
   * it gets its "dev" attribute and the node /dev/NAME. -EEXIST for a name the class has.
   */
  device_create(cls: DeviceClass, parent: Device | null, devt: number, drvdata: unknown, name: string): Device | number {
    const k = this.#k;
    if (cls.devices.some((d) => d.name === name)) {
      // device_add(): the directory in the class's glue directory is taken.
      k.base.sysfs_warn_dup(child_path(parent, name, cls.name), [...SYSFS_DIR_CALLERS, "device_create_groups_vargs", "device_create"], name);
      return -EEXIST;
    }
    const dev = new Device(name, { parent, className: cls.name });
    dev.driver_data = drvdata;
    k.base.device_register(dev, null);
    cls.devices.push(dev);
    if (devt) {
      this.#devt.set(dev, devt);
      this.device_create_file(dev, "dev", () => `${MAJOR(devt)}:${MINOR(devt)}\n`);
      const inode = new CdevInode(this.#nextIno++, devt);
      this.#nodes.set(devt, inode);
      k.devtmpfs.create_node(name, devt, (path, flags) => this.chrdev_open(inode, path, name, flags));
    }
    return dev;
  }

  /** device_destroy(): the class's device with this dev_t goes (nothing when there is none). */
  device_destroy(cls: DeviceClass, devt: number): void {
    const dev = cls.devices.find((d) => this.#devt.get(d) === devt);
    if (dev) this.device_unregister(dev);
  }

  /** device_unregister() of a class device: its node, attributes and registration. */
  device_unregister(dev: Device): void {
    const k = this.#k;
    const cls = this.classes.find((c) => c.devices.includes(dev));
    if (cls) cls.devices.splice(cls.devices.indexOf(dev), 1);
    const devt = this.#devt.get(dev);
    if (devt !== undefined && this.#nodes.has(devt)) {
      k.devtmpfs.delete_node(dev.name, devt);
      this.#nodes.delete(devt);
    }
    for (const path of this.#attrs.get(dev) ?? []) k.proc.unregister(path);
    this.#attrs.delete(dev);
    k.base.device_unregister(dev);
  }

  /** The node inode of dev_t `devt` (the one device_create() made), if there is one. */
  node(devt: number): CdevInode | null {
    return this.#nodes.get(devt) ?? null;
  }

  /** MAJOR:MINOR of a class device made with a dev_t, or 0. */
  devt(dev: Device): number {
    return this.#devt.get(dev) ?? 0;
  }

  // ---- sysfs attributes ----------------------------------------------------------------

  /** Where the device's attributes are: /sys/class/CLASS/NAME or /sys/bus/BUS/devices/NAME. */
  sysfsDir(dev: Device): string {
    if (dev.className) return `/sys/class/${dev.className}/${dev.name}`;
    if (dev.bus) return `/sys/bus/${dev.bus.name}/devices/${dev.name}`;
    return `/sys/devices/virtual/${dev.name}`;
  }

  /** device_create_file(): -EEXIST when the device has the attribute already. */
  device_create_file(dev: Device, name: string, show: AttrShow): number {
    const path = `${this.sysfsDir(dev)}/${name}`;
    let set = this.#attrs.get(dev);
    if (!set) this.#attrs.set(dev, (set = new Set()));
    if (set.has(path)) {
      this.#k.base.sysfs_warn_dup(`${device_path(dev)}/${name}`, ["sysfs_add_file_mode_ns", "sysfs_create_file_ns", "device_create_file"], null);
      return -EEXIST;
    }
    set.add(path);
    this.#k.proc.register(path, { read: show });
    return 0;
  }

  /** Does the device have the attribute (device_unregister() removes them with it)? */
  device_has_file(dev: Device, name: string): boolean {
    return this.#attrs.get(dev)?.has(`${this.sysfsDir(dev)}/${name}`) ?? false;
  }

  /** device_remove_file(): false when the device has no such attribute (any more). */
  device_remove_file(dev: Device, name: string): boolean {
    const path = `${this.sysfsDir(dev)}/${name}`;
    const set = this.#attrs.get(dev);
    if (!set?.delete(path)) return false;
    this.#k.proc.unregister(path);
    return true;
  }

  // ---- /proc/devices -------------------------------------------------------------------

  /** chrdev_show() per major, then the block layer's section. */
  show(): string {
    const lines = ["Character devices:"];
    for (const r of this.regions) lines.push(`${String(r.major).padStart(3)} ${r.name}`);
    lines.push("", "Block devices:");
    let out = lines.join("\n") + "\n";
    if (this.blockDevices) out += this.blockDevices();
    return out;
  }
}
