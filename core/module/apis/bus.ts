// The device model for a module that implements a bus (drivers/base/bus.c, core.c,
// driver.c) and the system workqueue it defers work to (kernel/workqueue.c), as libnvdimm
// uses them: bus_register() of its "nd" bus, device_register() of ndbus0, region0,
// namespace0.0 ..., driver_register() of its own drivers, schedule_work() and
// flush_scheduled_work().
//
// A struct device cannot live in a module (kernel objects are handles), so device_register()
// takes a description (struct device_desc: the fields a C driver sets before registering:
// init_name, parent, bus, type, and the MODALIAS its bus's uevent() would give) and returns
// the kernel's device, or an ERR_PTR. The rest keeps the C prototypes.

import { BusType, child_path, Device, DeviceDriver, SYSFS_DIR_CALLERS, type ProbeFn, type RemoveFn } from "../../base/device.ts";
import { EBUSY, EEXIST, EINVAL } from "../../errno.ts";
import { object_gone } from "../../lib/lifetime.ts";
import { defineApis, type CallCtx } from "../api.ts";
import { ArgError } from "../marshal.ts";
import type { Module } from "../module.ts";
import type { StructTwin } from "../twins.ts";
import { hold, unhold } from "./teardown.ts";

/** struct bus_type as the kernel keeps a module's. */
export class BusTypeTwin {
  name = "";
  match: ((dev: Device, drv: DeviceDriver) => number) | null = null;
  /** The registered bus, while it is. */
  kbus: BusType | null = null;
  owner: Module | null = null;
}

/** struct device_desc: what a module sets in a struct device before device_register(). */
export class DeviceDescTwin {
  init_name = "";
  parent: Device | null = null;
  bus: BusTypeTwin | null = null;
  type = "";
  modalias = "";
}

/** struct device_driver as the kernel keeps a module's. */
export class DriverTwin {
  name = "";
  bus: BusTypeTwin | null = null;
  probe: ProbeFn | null = null;
  remove: RemoveFn | null = null;
  /** The registered driver, while it is. */
  kdrv: DeviceDriver | null = null;
}

/** A driver of an nd bus: its nd_device_driver.type, which the bus's match reads. */
export class TypedDeviceDriver extends DeviceDriver {
  type = 0;
}

/** dev->type->name of devices registered through device_register(). */
export const deviceTypeName = new WeakMap<Device, string>();

/** Buses modules registered, by name (bus_find-by-name for the nd glue of apis/nvdimm.ts). */
export const moduleBuses = new Map<string, BusTypeTwin>();

/** struct work_struct as the kernel keeps a module's. */
export class WorkTwin {
  func: ((work: WorkTwin) => void) | null = null;
  /** WORK_STRUCT_PENDING */
  pending = false;
}

export const BUS_TWINS: Record<string, StructTwin> = {
  work_struct: {
    create: () => new WorkTwin(),
    update(obj, f) {
      (obj as WorkTwin).func = (f["func"] as WorkTwin["func"]) ?? null;
    },
  },
  bus_type: {
    create: () => new BusTypeTwin(),
    update(obj, f) {
      const b = obj as BusTypeTwin;
      if (b.kbus) return;
      if (typeof f["name"] === "string") b.name = f["name"];
      b.match = (f["match"] as BusTypeTwin["match"]) ?? null;
    },
  },
  device_desc: {
    create: () => new DeviceDescTwin(),
    update(obj, f) {
      const d = obj as DeviceDescTwin;
      d.init_name = typeof f["init_name"] === "string" ? f["init_name"] : "";
      d.parent = (f["parent"] as Device | null) ?? null;
      d.bus = (f["bus"] as BusTypeTwin | null) ?? null;
      d.type = typeof f["type"] === "string" ? f["type"] : "";
      d.modalias = typeof f["modalias"] === "string" ? f["modalias"] : "";
    },
  },
  device_driver: {
    create: () => new DriverTwin(),
    update(obj, f) {
      const d = obj as DriverTwin;
      if (d.kdrv) return;
      if (typeof f["name"] === "string") d.name = f["name"];
      d.bus = (f["bus"] as BusTypeTwin | null) ?? null;
      d.probe = (f["probe"] as ProbeFn | null) ?? null;
      d.remove = (f["remove"] as RemoveFn | null) ?? null;
    },
  },
};

function busUnregister(c: CallCtx, b: BusTypeTwin): void {
  const bus = b.kbus;
  if (!bus) return;
  c.k.base.bus_unregister(bus);
  b.kbus = null;
  b.owner = null;
  if (moduleBuses.get(b.name) === b) moduleBuses.delete(b.name);
}

/** Register a driver the kernel made for a module (driver_register(), nd_driver_register()). */
export function registerDriver(c: CallCtx, d: DriverTwin, drv: DeviceDriver, bus: BusType): number {
  const rc = c.k.base.driver_register(drv, bus);
  if (rc) {
    object_gone(drv);
    return rc;
  }
  d.kdrv = drv;
  hold(c, d, `driver '${drv.name}'`, () => driverUnregister(c, d));
  return 0;
}

function driverUnregister(c: CallCtx, d: DriverTwin): void {
  const drv = d.kdrv;
  if (!drv) return;
  c.k.base.driver_unregister(drv);
  object_gone(drv);
  d.kdrv = null;
}

/** Devices each module registered, so that it can only unregister its own. */
const ownDevices = new WeakMap<Device, Module>();

function deviceUnregister(c: CallCtx, dev: Device): void {
  if (!dev.registered) return;
  c.k.base.device_unregister(dev);
}

export const BUS_APIS = defineApis([
  {
    name: "bus_register", symbols: ["bus_register"], params: ["s:bus_type"], ret: "int", proto: "int bus_register(struct bus_type *bus)",
    impl: (c: CallCtx, b: BusTypeTwin) => {
      if (b.kbus) return -EBUSY;
      if (!b.name) return -EINVAL;
      // kset_register() of /sys/bus/NAME
      if (c.k.base.buses.some((x) => x.name === b.name)) {
        c.k.base.sysfs_warn_dup(`/bus/${b.name}`, ["sysfs_create_dir_ns", "kobject_add_internal", "kset_register", "bus_register"], b.name);
        return -EEXIST;
      }
      const match = b.match;
      const bus = new BusType(b.name, match ? (dev, drv) => match(dev, drv) !== 0 : undefined);
      const rc = c.k.base.bus_register(bus);
      if (rc) return rc;
      b.kbus = bus;
      b.owner = c.mod;
      moduleBuses.set(b.name, b);
      hold(c, b, `bus '${b.name}'`, () => busUnregister(c, b));
      return 0;
    },
  },
  {
    name: "bus_unregister", symbols: ["bus_unregister"], params: ["s:bus_type"], ret: "void", proto: "void bus_unregister(struct bus_type *bus)",
    impl: (c: CallCtx, b: BusTypeTwin) => {
      unhold(c, b);
      busUnregister(c, b);
    },
  },
  {
    name: "device_register", symbols: ["device_register"], params: ["s:device_desc"], ret: "o:device",
    proto: "int device_register(struct device *dev) /* kemu: takes the fields a driver sets (struct device_desc); returns the device or an ERR_PTR */",
    impl: (c: CallCtx, d: DeviceDescTwin) => {
      const k = c.k;
      if (!d.init_name || d.init_name.length > 63) return -EINVAL;
      const bus = d.bus ? d.bus.kbus : null;
      if (d.bus && !bus) throw new ArgError(`device_register(${d.init_name}): its bus '${d.bus.name}' is not registered`);
      if (k.base.devices.some((x) => x.name === d.init_name && x.bus === bus)) {
        k.base.sysfs_warn_dup(child_path(d.parent, d.init_name, null, bus?.name ?? null), [...SYSFS_DIR_CALLERS, "device_register"], d.init_name);
        return -EEXIST;
      }
      const dev = new Device(d.init_name, { parent: d.parent });
      dev.modalias = d.modalias || null;
      deviceTypeName.set(dev, d.type);
      ownDevices.set(dev, c.mod);
      hold(c, dev, `device '${dev.name}'`, () => deviceUnregister(c, dev));
      k.base.device_register(dev, bus);
      return dev;
    },
  },
  {
    name: "device_unregister", callsBack: true, symbols: ["device_unregister"], params: ["o:device"], ret: "void", proto: "void device_unregister(struct device *dev)",
    impl: (c: CallCtx, dev: Device) => {
      if (ownDevices.get(dev) !== c.mod) throw new ArgError(`device_unregister(${dev.name}): not a device this module registered`);
      unhold(c, dev);
      deviceUnregister(c, dev);
    },
  },
  {
    name: "driver_register", symbols: ["driver_register"], params: ["s:device_driver"], ret: "int", proto: "int driver_register(struct device_driver *drv)",
    impl: (c: CallCtx, d: DriverTwin) => {
      if (d.kdrv) return -EBUSY;
      const bus = d.bus?.kbus;
      // "Driver '%s' was unable to register with bus_type '%s' because the bus was not initialized."
      if (!bus) {
        c.k.printk(`\x013Driver '${d.name}' was unable to register with bus_type '${d.bus?.name ?? ""}' because the bus was not initialized.\n`);
        return -EINVAL;
      }
      const drv = new TypedDeviceDriver(d.name, { owner: c.mod.name, probe: d.probe ?? undefined, remove: d.remove ?? undefined });
      return registerDriver(c, d, drv, bus);
    },
  },
  {
    name: "driver_unregister", symbols: ["driver_unregister"], params: ["s:device_driver"], ret: "void", proto: "void driver_unregister(struct device_driver *drv)",
    impl: (c: CallCtx, d: DriverTwin) => {
      unhold(c, d);
      driverUnregister(c, d);
    },
  },
  {
    name: "schedule_work", symbols: ["queue_work_on", "system_wq"], params: ["s:work_struct"], ret: "bool", proto: "static inline bool schedule_work(struct work_struct *work)",
    impl: (c: CallCtx, w: WorkTwin) => {
      if (!w.func) throw new ArgError("schedule_work() of a work_struct without a func");
      if (w.pending) return false;
      w.pending = true;
      const mod = c.mod;
      const k = c.k;
      // A kworker runs it: in kemu when this CPU next goes idle or waits for a grace period,
      // or at flush_scheduled_work(); never once the module is gone.
      k.sched.call_rcu(() => {
        w.pending = false;
        if (mod.dead || k.modules.find_module(mod.name) !== mod || !w.func) return;
        const func = w.func;
        k.sched.runAs("kworker/0:1", () => func(w));
      });
      return true;
    },
  },
  {
    name: "flush_scheduled_work", callsBack: true, symbols: ["flush_workqueue", "system_wq"], params: [], ret: "void", proto: "static inline void flush_scheduled_work(void)",
    impl: (c: CallCtx) => c.k.sched.rcu_barrier(),
  },
]);
