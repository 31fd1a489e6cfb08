// Driver core (drivers/base/{bus,dd,core,devres}.c): registration, binding, probe and
// unbind, devres, and the devm_* helpers built on it.

import { EBUSY, EINVAL, ENODEV, ENOENT, ENOMEM, ENXIO, EPROBE_DEFER } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import { GFP_KERNEL, __GFP_ZERO } from "../mm/gfp.ts";
import type { Resource } from "../mm/resource.ts";
import { KBuf } from "../mm/slab.ts";
import { BusType, Device, DeviceDriver, devPrefix } from "./device.ts";
import { DEVRES_HEADER, Devres, type DrRelease } from "./devres.ts";
import { object_gone, object_lives_in } from "../lib/lifetime.ts";

const DEVRES = { file: "drivers/base/devres.c" };
const DD = { file: "drivers/base/dd.c" };

/** devm_add_action() callbacks take one argument, as void (*action)(void *). */
export type DevmAction = (data: unknown) => void;

export class DriverCore {
  readonly #k: Kernel;
  readonly buses: BusType[] = [];
  /** Every registered device, in registration order. */
  readonly devices: Device[] = [];

  constructor(k: Kernel) {
    this.#k = k;
  }

  // ---- registration ----------------------------------------------------------------------

  bus_register(bus: BusType): number {
    if (bus.registered) return -EINVAL;
    bus.registered = true;
    this.buses.push(bus);
    return 0;
  }

  bus_unregister(bus: BusType): void {
    for (const drv of [...bus.drivers]) this.driver_unregister(drv);
    for (const dev of [...bus.devices]) this.device_unregister(dev);
    bus.registered = false;
    this.buses.splice(this.buses.indexOf(bus), 1);
  }

  /** device_register() = device_initialize() + device_add(): joins its bus and is probed. */
  device_register(dev: Device, bus: BusType | null = null): number {
    if (dev.registered) return -EINVAL;
    dev.bus = bus;
    dev.registered = true;
    dev.dead = false;
    this.devices.push(dev);
    if (bus) {
      bus.devices.push(dev);
      this.device_attach(dev);
    }
    // kobject_uevent(KOBJ_ADD): udev loads a driver for what is left unbound.
    this.#k.kmod.uevent(dev);
    return 0;
  }

  /**
   * fs/sysfs/dir.c sysfs_warn_dup() (4.19-5.0): a second directory or file at `path` (without
   * /sys) is pr_warn()ed with a dump_stack() from `callers` (innermost first). A directory comes
   * from kobject_add_internal(), which then pr_err()s the -EEXIST for the kobject `name`.
   */
  sysfs_warn_dup(path: string, callers: string[], dirOf: string | null): void {
    const k = this.#k;
    k.printk(`\x014sysfs: cannot create duplicate filename '${path}'\n`);
    k.bugs.dumpStack(4, ["sysfs_warn_dup", ...callers]);
    if (dirOf !== null) k.printk(`\x013kobject_add_internal failed for ${dirOf} with -EEXIST, don't try to register things with the same name in the same directory.\n`);
  }

  /** device_unregister() = device_del() + put_device(). */
  device_unregister(dev: Device): void {
    if (!dev.registered) return;
    this.device_del(dev);
    this.put_device(dev);
  }

  /** device_del(): unbind and leave the bus; the device lives on while referenced. */
  device_del(dev: Device): void {
    this.device_release_driver(dev);
    if (dev.bus) dev.bus.devices.splice(dev.bus.devices.indexOf(dev), 1);
    dev.registered = false;
    this.devices.splice(this.devices.indexOf(dev), 1);
  }

  /** put_device(): the last reference runs device_release(). */
  put_device(dev: Device): void {
    if (dev.refcount <= 0) {
      // kobject_put() -> kref_put() -> refcount_dec_and_test() on a released device (its kobject
      // was initialized, so no "is not initialized" WARN): with CONFIG_REFCOUNT_FULL, 4.19-5.0
      // lib/refcount.c refcount_sub_and_test_checked() WARN_ONCE()s the underflow and returns
      // false, so nothing is released twice.
      const k = this.#k;
      k.bugs.frame("put_device", () => k.bugs.frame("kobject_put", () =>
        k.warnOnce("refcount_t:underflow", { file: "lib/refcount.c", func: "refcount_sub_and_test_checked" }, "refcount_t: underflow; use-after-free.\n")));
      return;
    }
    if (--dev.refcount > 0) return;
    // device_release(): resources acquired without a driver go with the device.
    dev.dead = true;
    this.devres_release_all(dev);
    object_gone(dev);
    dev.release?.();
    dev.release = null;
  }

  driver_register(drv: DeviceDriver, bus: BusType): number {
    if (drv.registered) return -EINVAL;
    if (!bus.registered) return -EINVAL;
    if (bus.drivers.some((d) => d.name === drv.name)) {
      this.#k.printk(`\x013Error: Driver '${drv.name}' is already registered, aborting...\n`);
      return -EBUSY;
    }
    drv.bus = bus;
    drv.registered = true;
    bus.drivers.push(drv);
    for (const dev of [...bus.devices]) if (!dev.driver && bus.match(dev, drv)) this.#probe(dev, drv);
    return 0;
  }

  driver_unregister(drv: DeviceDriver): void {
    if (!drv.registered || !drv.bus) return;
    // driver_detach(): the device bound last is released first.
    for (const dev of [...drv.devices].reverse()) if (dev.driver === drv) this.device_release_driver(dev);
    drv.bus.drivers.splice(drv.bus.drivers.indexOf(drv), 1);
    drv.registered = false;
  }

  /** device_attach(): try each driver of the bus until one binds. */
  device_attach(dev: Device): boolean {
    if (dev.driver || !dev.bus) return dev.driver !== null;
    for (const drv of [...dev.bus.drivers]) {
      if (dev.bus.match(dev, drv) && this.#probe(dev, drv)) return true;
    }
    return false;
  }

  /** really_probe(): bind, call probe, and on failure release devres and unbind. */
  #probe(dev: Device, drv: DeviceDriver): boolean {
    const k = this.#k;
    // 4.20/5.0 really_probe(): WARN_ON(!list_empty(&dev->devres_head)), then probe anyway.
    if (dev.devres.length) k.warn({ ...DD, func: "really_probe" }, null);
    dev.driver = drv;
    let ret = 0;
    if (drv.probe) {
      const probe = drv.probe;
      ret = k.bugs.frame(k.symbolName(probe), () => probe(dev));
    }
    if (ret === 0) {
      drv.devices.push(dev); // driver_bound()
      return true;
    }
    this.devres_release_all(dev);
    dev.driver = null;
    dev.driver_data = null;
    if (ret === -EPROBE_DEFER) {
      // driver_deferred_probe_add(): kemu has nothing that would retry it later.
    } else if (ret !== -ENODEV && ret !== -ENXIO) {
      k.printk(`\x014${drv.name}: probe of ${dev.name} failed with error ${ret}\n`);
    }
    return false;
  }

  /** device_release_driver(): remove, then devres in reverse order, then unbind. */
  device_release_driver(dev: Device): void {
    const drv = dev.driver;
    if (!drv) return;
    const k = this.#k;
    if (drv.remove) {
      const remove = drv.remove;
      k.bugs.frame(k.symbolName(remove), () => remove(dev));
    }
    this.devres_release_all(dev);
    dev.driver = null;
    dev.driver_data = null;
    const i = drv.devices.indexOf(dev);
    if (i >= 0) drv.devices.splice(i, 1); // klist_remove(&dev->p->knode_driver)
  }

  // ---- devres ----------------------------------------------------------------------------

  /** devres_alloc(): a kmalloc()ed devres holding `data`; null when the allocation fails. */
  devres_alloc(release: DrRelease, size: number, gfp: number, data: Record<string, unknown>, name: string): Devres | null {
    const buf = this.#k.mm.kmalloc(DEVRES_HEADER + size, gfp, "devres");
    if (!buf) return null;
    return new Devres(release, data, name, size, buf);
  }

  devres_free(dr: Devres): void {
    this.#k.mm.kfree(dr.buf);
    dr.buf = null;
  }

  devres_add(dev: Device, dr: Devres): void {
    dr.added = true;
    dev.devres.push(dr);
  }

  /** devres_remove(): unlink the newest matching entry and hand it back, or null. */
  devres_remove(dev: Device, release: DrRelease, match: (dr: Devres) => boolean): Devres | null {
    for (let i = dev.devres.length - 1; i >= 0; i--) {
      const dr = dev.devres[i]!;
      if (dr.release === release && match(dr)) {
        dev.devres.splice(i, 1);
        dr.added = false;
        return dr;
      }
    }
    return null;
  }

  /** devres_destroy(): remove and free without running the release; -ENOENT if none. */
  devres_destroy(dev: Device, release: DrRelease, match: (dr: Devres) => boolean): number {
    const dr = this.devres_remove(dev, release, match);
    if (!dr) return -ENOENT;
    this.devres_free(dr);
    return 0;
  }

  /** devres_release(): remove, run the release, free; -ENOENT if none. */
  devres_release(dev: Device, release: DrRelease, match: (dr: Devres) => boolean): number {
    const dr = this.devres_remove(dev, release, match);
    if (!dr) return -ENOENT;
    release(dev, dr);
    this.devres_free(dr);
    return 0;
  }

  /** devres_release_all(): everything, newest first. */
  devres_release_all(dev: Device): void {
    const todo = dev.devres.splice(0, dev.devres.length);
    for (let i = todo.length - 1; i >= 0; i--) {
      const dr = todo[i]!;
      dr.added = false;
      this.#k.bugs.frame(dr.name, () => dr.release(dev, dr));
      this.devres_free(dr);
    }
  }

  readonly #actionRelease: DrRelease = (_dev, dr) => (dr.data["action"] as DevmAction)(dr.data["data"]);

  /** devm_add_action(): 0, or -ENOMEM without running the action. */
  devm_add_action(dev: Device, action: DevmAction, data: unknown, name = this.#k.symbolName(action)): number {
    const dr = this.devres_alloc(this.#actionRelease, 16, GFP_KERNEL, { action, data }, name);
    if (!dr) return -ENOMEM;
    this.devres_add(dev, dr);
    return 0;
  }

  /** devm_add_action_or_reset(): on failure the action runs at once and the error is returned. */
  devm_add_action_or_reset(dev: Device, action: DevmAction, data: unknown, name = this.#k.symbolName(action)): number {
    const rc = this.devm_add_action(dev, action, data, name);
    if (rc) action(data);
    return rc;
  }

  /** devm_remove_action(): unregister without running; WARN_ON if there is no such action. */
  devm_remove_action(dev: Device, action: DevmAction, data: unknown): void {
    const rc = this.devres_destroy(dev, this.#actionRelease, (dr) => dr.data["action"] === action && dr.data["data"] === data);
    if (rc) this.#k.warn({ ...DEVRES, func: "devm_remove_action" }, null);
  }

  readonly #kmallocRelease: DrRelease = () => {};

  /**
   * devm_kmalloc(): the object lives in the devres itself and goes with it. The caller gets
   * dr->data: `size` bytes just past the devres header, not the devres allocation itself.
   */
  devm_kmalloc(dev: Device, size: number, gfp: number = GFP_KERNEL): KBuf | null {
    const dr = this.devres_alloc(this.#kmallocRelease, size, gfp, {}, "devm_kmalloc_release");
    if (!dr) return null;
    const whole = dr.buf!;
    const obj = new KBuf(size, whole.cache, whole.page, whole.offset + DEVRES_HEADER, whole.order, whole.owner);
    object_lives_in(obj, whole);
    dr.data["obj"] = obj;
    this.devres_add(dev, dr);
    return obj;
  }

  devm_kzalloc(dev: Device, size: number, gfp: number = GFP_KERNEL): KBuf | null {
    return this.devm_kmalloc(dev, size, gfp | __GFP_ZERO);
  }

  /** devm_kfree(): WARN_ON if `buf` was not devm_kmalloc()ed on `dev`. */
  devm_kfree(dev: Device, buf: KBuf): void {
    const rc = this.devres_destroy(dev, this.#kmallocRelease, (dr) => dr.data["obj"] === buf);
    if (rc) this.#k.warn({ ...DEVRES, func: "devm_kfree" }, null);
  }

  readonly #regionRelease: DrRelease = (_dev, dr) => {
    const iomem = this.#k.mm.iomem;
    iomem.__release_region(iomem.root, dr.data["start"] as number, dr.data["n"] as number);
  };

  /** __devm_request_region() on iomem: the region is released with the device. */
  devm_request_mem_region(dev: Device, start: number, n: number, name: string): Resource | null {
    const k = this.#k;
    const iomem = k.mm.iomem;
    const dr = this.devres_alloc(this.#regionRelease, 24, GFP_KERNEL, { start, n }, "devm_region_release");
    if (!dr) return null;
    const res = iomem.__request_region(iomem.root, start, n, name, 0, () => k.sched.waitUntil(() => false, "__request_region"));
    if (res) this.devres_add(dev, dr);
    else this.devres_free(dr);
    return res;
  }

  /** devm_release_mem_region(): release the region, then WARN_ON if it had no devres. */
  devm_release_mem_region(dev: Device, start: number, n: number): void {
    const iomem = this.#k.mm.iomem;
    iomem.__release_region(iomem.root, start, n);
    const rc = this.devres_destroy(dev, this.#regionRelease, (dr) => dr.data["start"] === start && dr.data["n"] === n);
    if (rc) this.#k.warn({ file: "kernel/resource.c", func: "__devm_release_region" }, null);
  }

  // ---- dev_printk ------------------------------------------------------------------------

  dev_printk(level: string, dev: Device, msg: string): void {
    this.#k.printk(level + devPrefix(dev) + msg);
  }
  dev_err(dev: Device, msg: string): void {
    this.dev_printk("\x013", dev, msg);
  }
  dev_warn(dev: Device, msg: string): void {
    this.dev_printk("\x014", dev, msg);
  }
  dev_info(dev: Device, msg: string): void {
    this.dev_printk("\x016", dev, msg);
  }
}
