// The platform bus (drivers/base/platform.c): devices named "name.id" (or "name" for
// PLATFORM_DEVID_NONE), matched to drivers by name, probed with their platform_device.

import { EEXIST, EINVAL, ENOMEM } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import { BusType, child_path, Device, DeviceDriver, SYSFS_DIR_CALLERS } from "./device.ts";
import { object_gone } from "../lib/lifetime.ts";

export const PLATFORM_DEVID_NONE = -1;
export const PLATFORM_DEVID_AUTO = -2;

/** struct platform_device */
export class PlatformDevice {
  readonly name: string;
  readonly id: number;
  readonly dev: Device;
  constructor(name: string, id: number, dev: Device) {
    this.name = name;
    this.id = id;
    this.dev = dev;
  }
}

/** struct platform_driver */
export interface PlatformDriverOps {
  name: string;
  probe?: ((pdev: PlatformDevice) => number) | null;
  remove?: ((pdev: PlatformDevice) => number) | null;
  /** The module registering it ("" for the core). */
  owner?: string;
}

export class PlatformBus {
  readonly bus = new BusType("platform", (dev, drv) => dev.matchName === drv.name);
  readonly #k: Kernel;
  readonly #pdevs = new WeakMap<Device, PlatformDevice>();
  #autoId = 0;

  constructor(k: Kernel) {
    this.#k = k;
    k.base.bus_register(this.bus);
  }

  /** platform_device_register_full() with just a name and an id. */
  platform_device_register_simple(name: string, id: number, opts: { boot?: boolean } = {}): PlatformDevice | number {
    if (typeof name !== "string" || !name || name.length > 63) return -EINVAL;
    if (!Number.isInteger(id) || id < PLATFORM_DEVID_AUTO) return -EINVAL;
    const realId = id === PLATFORM_DEVID_AUTO ? this.#autoId++ : id;
    const devName = id === PLATFORM_DEVID_NONE ? name : id === PLATFORM_DEVID_AUTO ? `${name}.${realId}.auto` : `${name}.${realId}`;
    if (this.#k.base.devices.some((d) => d.name === devName)) {
      // device_add() -> kobject_add_internal() -> sysfs_create_dir_ns() finds the name taken.
      this.#k.base.sysfs_warn_dup(child_path(null, devName, null, "platform"), [...SYSFS_DIR_CALLERS, "platform_device_add", "platform_device_register_full"], devName);
      return -EEXIST;
    }
    // platform_device_alloc(): struct platform_object and the name, one kzalloc.
    // A device the kernel registers while it boots is counted with the boot's memory: the leak
    // check would see its allocation given back at power-off as pages the kernel never had.
    const buf = opts.boot ? null : this.#k.mm.kzalloc(1024 + name.length + 1, undefined, "platform");
    if (!buf && !opts.boot) return -ENOMEM;
    const dev = new Device(devName, { matchName: name });
    const pdev = new PlatformDevice(name, realId, dev);
    // platform_uevent(): "MODALIAS=platform:%s" of the name without its id.
    dev.modalias = `platform:${name}`;
    dev.release = () => {
      object_gone(pdev);
      if (buf) this.#k.mm.kfree(buf);
    };
    this.#pdevs.set(dev, pdev);
    this.#k.base.device_register(dev, this.bus);
    return pdev;
  }

  platform_device_unregister(pdev: PlatformDevice): void {
    this.#k.base.device_unregister(pdev.dev);
  }

  /** __platform_driver_register(): a device_driver whose probe/remove take the platform_device. */
  platform_driver_register(ops: PlatformDriverOps): DeviceDriver | number {
    const k = this.#k;
    const pdevs = this.#pdevs;
    const { probe, remove } = ops;
    // platform_drv_probe()/platform_drv_remove() call the driver's own functions, which the
    // call trace shows by name.
    const drv = new DeviceDriver(ops.name, {
      owner: ops.owner ?? "",
      probe: probe ? function platform_drv_probe(dev: Device) { return k.bugs.frame(k.symbolName(probe), () => probe(pdevs.get(dev)!)); } : undefined,
      remove: remove ? function platform_drv_remove(dev: Device) { return k.bugs.frame(k.symbolName(remove), () => remove(pdevs.get(dev)!)); } : undefined,
    });
    const rc = this.#k.base.driver_register(drv, this.bus);
    return rc ? rc : drv;
  }

  platform_driver_unregister(drv: DeviceDriver): void {
    this.#k.base.driver_unregister(drv);
  }
}
