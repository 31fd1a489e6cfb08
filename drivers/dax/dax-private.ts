// What the dax modules hand each other (drivers/dax/dax-private.h, dax.h, device-dax.h of
// 4.20/5.0), and the "kemu/extern" declarations of their exports.
//
// Across modules go copies and kernel-object handles, never a module's own objects: a
// struct dax_device, dax_region or dev_dax is the number its owner (dax.ko, device_dax.ko)
// knows it by, as opaque to the other modules as the C pointer is (struct dax_device is
// private to super.c). No MODULE_LICENSE here: this file is part of each module that imports it.

import type { device } from "kemu/kernel";

/** struct dax_device *: dax.ko's number for it (0 is NULL). */
export type dax_device = number;
/** struct dax_region *: device_dax.ko's number for it (0 is NULL). */
export type dax_region = number;
/** struct dev_dax *: device_dax.ko's number for it, or an ERR_PTR (a negative errno). */
export type dev_dax = number;

/** A struct resource as the dax modules copy it (start and end inclusive). */
export interface dax_res {
  start: number;
  end: number;
}

/** The inode of a dax_device as dax_inode() gives it: kemu copies out its device number. */
export interface dax_inode_info {
  i_rdev: number;
}

declare module "kemu/extern" {
  // dax.ko (drivers/dax/super.c), all EXPORT_SYMBOL_GPL
  export function dax_read_lock(): number;
  export function dax_read_unlock(id: number): void;
  export function dax_alive(dax_dev: dax_device): boolean;
  export function kill_dax(dax_dev: dax_device): void;
  export function alloc_dax(private_: number, host: string | null, ops: null): dax_device;
  export function put_dax(dax_dev: dax_device): void;
  export function dax_get_by_host(host: string): dax_device;
  export function dax_get_private(dax_dev: dax_device): number;
  export function dax_inode(dax_dev: dax_device): dax_inode_info;
  export function inode_dax(inode: dax_inode_info): dax_device;
  // device_dax.ko (drivers/dax/device.c), all EXPORT_SYMBOL_GPL
  export function alloc_dax_region(parent: device, region_id: number, res: dax_res, align: number, addr: number, pfn_flags: number): dax_region;
  export function dax_region_put(dax_region: dax_region): void;
  export function devm_create_dev_dax(dax_region: dax_region, id: number, res: dax_res[], count: number): dev_dax;
}
