// Disks (block/genhd.c, 4.20/5.0): alloc_disk_node(), device_add_disk() with a dev_t from
// the disk's own minors or, for a GENHD_FL_EXT_DEVT disk without minors (pmem), the
// extended area BLOCK_EXT_MAJOR 259; the "block" class device, the /dev node (devtmpfs) and
// /proc/partitions; set_capacity(), revalidate_disk()'s "detected capacity change" line,
// del_gendisk() and put_disk(). A disk pins its driver's module while it is open
// (get_disk_and_module()).

import { Device } from "../base/device.ts";
import { EBUSY, EINVAL, ENOMEM } from "../errno.ts";
import { MKDEV, MAJOR, MINOR, type File } from "../fs/file.ts";
import type { Kernel } from "../kernel.ts";
import type { Module } from "../module/module.ts";
import type { RequestQueue } from "./blk-core.ts";
import type { BlockDevice } from "./block_dev.ts";

export const BLOCK_EXT_MAJOR = 259;
export const GENHD_FL_REMOVABLE = 1;
export const GENHD_FL_EXT_DEVT = 64;
export const GENHD_FL_SUPPRESS_PARTITION_INFO = 32;
export const GENHD_FL_UP = 16;
export const DISK_NAME_LEN = 32;

/** struct block_device_operations as the kernel holds it. */
export interface BlockDeviceOperations {
  owner: Module | null;
}

/** struct gendisk as the kernel keeps the one a driver set up. */
export class Gendisk {
  disk_name = "";
  major = 0;
  first_minor = 0;
  minors = 0;
  flags = 0;
  fops: BlockDeviceOperations | null = null;
  queue: RequestQueue | null = null;
  /** get_capacity(): 512-byte sectors. */
  capacity = 0;
  node = -1;
  /** alloc_disk_node() ran and the last put_disk() has not. */
  allocated = false;
  /** kref of disk_to_dev(disk) */
  refcount = 0;
  /** device_add_disk() ran and del_gendisk() has not. */
  added = false;
  devt = 0;
  dev: Device | null = null;
  /** The bdev of the whole disk while someone has it open. */
  bdev: BlockDevice | null = null;
  /** The module that set it up. */
  owner = "";
}

export class Disks {
  readonly #k: Kernel;
  /** Added disks, in the order added. */
  readonly list: Gendisk[] = [];
  /** ext_devt_idr */
  readonly #extMinors = new Set<number>();

  constructor(k: Kernel) {
    this.#k = k;
    k.proc.register("/proc/partitions", { read: () => this.show_partitions() });
  }

  /** alloc_disk_node(): 0 or -ENOMEM. */
  alloc_disk_node(disk: Gendisk, minors: number, node: number): number {
    if (!Number.isInteger(minors) || minors < 0 || minors > 256) return -EINVAL;
    if (disk.allocated) return -EBUSY;
    // struct gendisk, its part table and part0's stats.
    if (this.#k.mm.slab.should_failslab(1024, 0)) return -ENOMEM;
    disk.minors = minors;
    disk.node = node;
    disk.allocated = true;
    disk.refcount = 1;
    return 0;
  }

  /** blk_alloc_devt() for part0 */
  #allocDevt(disk: Gendisk): number {
    if (disk.minors > 0) return MKDEV(disk.major, disk.first_minor);
    let idx = 0;
    while (this.#extMinors.has(idx)) idx++;
    this.#extMinors.add(idx);
    return MKDEV(BLOCK_EXT_MAJOR, idx);
  }

  /**
   * device_add_disk(parent, disk): the disk's dev_t, its device in class "block" under
   * `parent`, /dev/NAME and its line in /proc/partitions.
   */
  device_add_disk(parent: Device | null, disk: Gendisk, open: (disk: Gendisk, path: string, flags: number) => File | number): number {
    const k = this.#k;
    if (!disk.allocated || disk.added || !disk.queue) return -EINVAL;
    // WARN_ON(disk->minors && !(disk->major || disk->first_minor)) etc.: a disk needs a dev_t.
    if (!disk.minors && !(disk.flags & GENHD_FL_EXT_DEVT)) {
      k.warn({ file: "block/genhd.c", func: "__device_add_disk" }, null);
      return -EINVAL;
    }
    disk.flags |= GENHD_FL_UP;
    disk.devt = this.#allocDevt(disk);
    const dev = new Device(disk.disk_name, { parent, className: "block" });
    disk.dev = dev;
    k.base.device_register(dev, null);
    disk.added = true;
    this.list.push(disk);
    k.devtmpfs.create_node(disk.disk_name, disk.devt, (path, flags) => open(disk, path, flags), true);
    disk.refcount++; // the device holds the disk until del_gendisk()
    return 0;
  }

  /** revalidate_disk() -> check_disk_size_change(): the bdev's size follows the capacity. */
  revalidate_disk(disk: Gendisk, bdevSize: number): void {
    const size = disk.capacity * 512;
    if (size !== bdevSize) this.#k.printk(`\x016${disk.disk_name}: detected capacity change from ${bdevSize} to ${size}\n`);
  }

  /** del_gendisk(): the node, the line in /proc/partitions and the device go. */
  del_gendisk(disk: Gendisk): void {
    const k = this.#k;
    if (!disk.added) return;
    disk.added = false;
    disk.flags &= ~GENHD_FL_UP;
    k.devtmpfs.delete_node(disk.disk_name, disk.devt, true);
    this.list.splice(this.list.indexOf(disk), 1);
    if (MAJOR(disk.devt) === BLOCK_EXT_MAJOR) this.#extMinors.delete(MINOR(disk.devt));
    if (disk.dev) k.base.device_unregister(disk.dev);
    disk.dev = null;
    this.put_disk(disk);
  }

  /** put_disk(): the last reference frees the disk. */
  put_disk(disk: Gendisk): void {
    if (!disk.allocated) return;
    if (--disk.refcount > 0) return;
    disk.allocated = false;
  }

  /** /proc/partitions (show_partition): disks with a capacity, under one header. */
  show_partitions(): string {
    const rows = this.list.filter((d) => d.capacity > 0 && !(d.flags & GENHD_FL_SUPPRESS_PARTITION_INFO));
    if (rows.length === 0) return "";
    let out = "major minor  #blocks  name\n\n";
    for (const d of rows) out += `${String(MAJOR(d.devt)).padStart(4)}  ${String(MINOR(d.devt)).padStart(7)} ${String(Math.floor(d.capacity / 2)).padStart(10)} ${d.disk_name}\n`;
    return out;
  }
}
