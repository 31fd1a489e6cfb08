// dax: the dax core (drivers/dax/super.c of 4.20/5.0, module dax.ko). A struct dax_device
// anchors one range of dax capacity: it has a device number in the "dax" char region
// (MINORMASK + 1 minors under a dynamic major), an optional host name for lookups, the
// private data of the driver that made it, and whether it is alive. kill_dax() ends new
// operations: everything that checks dax_alive() inside dax_read_lock() (mmap, faults) fails
// from then on.
//
// kemu: the dax pseudo filesystem and its inodes (dax_fs_type, iget5_locked() by dev_t) are
// not modelled; a dax_device's "inode" is its device number (dax_inode()/inode_dax()), the
// cdev over that number is the char driver's own (device_dax.ko), and the last put_dax()
// frees the minor as dax_destroy_inode() does. SRCU read sections need no lock on one CPU.

import {
  MODULE_LICENSE, MODULE_AUTHOR, module_init, module_exit, EXPORT_SYMBOL_GPL, WARN_ONCE,
  MKDEV, MAJOR, MINOR, alloc_chrdev_region, unregister_chrdev_region,
} from "kemu/kernel";
import type { dax_device, dax_inode_info } from "./dax-private.ts";

MODULE_AUTHOR("Intel Corporation");
MODULE_LICENSE("GPL v2");

/** MINORMASK + 1: the minors of the "dax" region. */
const DAX_MINORS = 1 << 20;

/** struct dax_device */
interface DaxDevice {
  readonly minor: number;
  host: string | null;
  private_: number;
  alive: boolean;
  /** The inode's reference count (iget/igrab/iput). */
  count: number;
}

let dax_devt = 0;
/** dax_minor_ida plus the inodes: minor -> its dax_device. */
const dax_devices = new Map<number, DaxDevice>();

/** A dax_device's number for the other modules: its minor + 1 (0 stays NULL). */
function to_dax_dev(dax_dev: dax_device): DaxDevice | null {
  return dax_devices.get(dax_dev - 1) ?? null;
}

export function dax_read_lock(): number {
  return 0;
}
EXPORT_SYMBOL_GPL(dax_read_lock);

export function dax_read_unlock(_id: number): void {}
EXPORT_SYMBOL_GPL(dax_read_unlock);

export function dax_alive(dax_dev: dax_device): boolean {
  return to_dax_dev(dax_dev)?.alive ?? false;
}
EXPORT_SYMBOL_GPL(dax_alive);

/**
 * Note, rcu is not protecting the liveness of dax_dev, rcu is ensuring that any fault handlers
 * or operations that might have seen dax_alive(), have completed. Any operations that start
 * after synchronize_srcu() has run will abort upon seeing !dax_alive().
 */
export function kill_dax(dax_dev: dax_device): void {
  const d = to_dax_dev(dax_dev);
  if (!d) return;
  d.alive = false;
  // hlist_del_init(&dax_dev->list): no longer found by host.
  d.host = null;
  d.private_ = 0;
}
EXPORT_SYMBOL_GPL(kill_dax);

/** alloc_dax(): a new dax_device (an inode with a minor of the "dax" region), or NULL. */
export function alloc_dax(private_: number, host: string | null, _ops: null): dax_device {
  // ida_simple_get(&dax_minor_ida, 0, MINORMASK+1, GFP_KERNEL)
  let minor = 0;
  while (minor < DAX_MINORS && dax_devices.has(minor)) minor++;
  if (minor === DAX_MINORS) return 0;
  dax_devices.set(minor, { minor, host, private_, alive: true, count: 1 });
  return minor + 1;
}
EXPORT_SYMBOL_GPL(alloc_dax);

/** put_dax(): iput(); the last reference destroys the inode and frees the minor. */
export function put_dax(dax_dev: dax_device): void {
  const d = to_dax_dev(dax_dev);
  if (!d || --d.count > 0) return;
  WARN_ONCE(d.alive, "kill_dax() must be called before final iput()\n");
  dax_devices.delete(d.minor);
}
EXPORT_SYMBOL_GPL(put_dax);

/** dax_get_by_host(): a live dax_device registered under `host`, referenced (igrab), or NULL. */
export function dax_get_by_host(host: string): dax_device {
  if (!host) return 0;
  for (const d of dax_devices.values()) {
    if (!d.alive || d.host !== host) continue;
    d.count++;
    return d.minor + 1;
  }
  return 0;
}
EXPORT_SYMBOL_GPL(dax_get_by_host);

/** inode_dax(): the dax_device of an inode (kemu: of its device number). */
export function inode_dax(inode: dax_inode_info): dax_device {
  if (MAJOR(inode.i_rdev) !== MAJOR(dax_devt)) return 0;
  const d = dax_devices.get(MINOR(inode.i_rdev));
  return d ? d.minor + 1 : 0;
}
EXPORT_SYMBOL_GPL(inode_dax);

/** dax_inode(): the inode of a dax_device (kemu: its device number). */
export function dax_inode(dax_dev: dax_device): dax_inode_info {
  const d = to_dax_dev(dax_dev);
  return { i_rdev: d ? MKDEV(MAJOR(dax_devt), d.minor) : 0 };
}
EXPORT_SYMBOL_GPL(dax_inode);

export function dax_get_private(dax_dev: dax_device): number {
  return to_dax_dev(dax_dev)?.private_ ?? 0;
}
EXPORT_SYMBOL_GPL(dax_get_private);

module_init(() => {
  const rc = alloc_chrdev_region(0, DAX_MINORS, "dax");
  if (rc < 0) return rc;
  dax_devt = rc;
  return 0;
});

module_exit(() => {
  unregister_chrdev_region(dax_devt, DAX_MINORS);
  dax_devices.clear();
});
