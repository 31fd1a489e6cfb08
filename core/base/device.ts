// The device model (drivers/base): buses, devices and drivers, binding through the bus match,
// probe and remove, devres release on unbind and on probe failure, and dev_printk().

import { Devres } from "./devres.ts";

export const NUMA_NO_NODE = -1;

export type ProbeFn = (dev: Device) => number;
export type RemoveFn = (dev: Device) => number | void;

/** struct bus_type */
export class BusType {
  readonly name: string;
  /** bus->match(): may `drv` drive `dev`? Default: names are equal (platform_match's last rule). */
  match: (dev: Device, drv: DeviceDriver) => boolean;
  readonly devices: Device[] = [];
  readonly drivers: DeviceDriver[] = [];
  registered = false;

  constructor(name: string, match?: (dev: Device, drv: DeviceDriver) => boolean) {
    this.name = name;
    this.match = match ?? ((dev, drv) => dev.matchName === drv.name);
  }
}

/** struct device_driver */
export class DeviceDriver {
  readonly name: string;
  bus: BusType | null = null;
  probe: ProbeFn | null;
  remove: RemoveFn | null;
  /** The module that owns the driver ("" for built-in core code). */
  readonly owner: string;
  registered = false;
  /** drv->p->klist_devices: the devices bound to this driver, in the order they were bound. */
  readonly devices: Device[] = [];

  constructor(name: string, opts: { probe?: ProbeFn; remove?: RemoveFn; owner?: string } = {}) {
    this.name = name;
    this.probe = opts.probe ?? null;
    this.remove = opts.remove ?? null;
    this.owner = opts.owner ?? "";
  }
}

/** struct device */
export class Device {
  /** dev_name() */
  readonly name: string;
  /** What bus->match compares with the driver name (platform device name without its id). */
  matchName: string;
  readonly parent: Device | null;
  bus: BusType | null = null;
  driver: DeviceDriver | null = null;
  /** dev->numa_node */
  numa_node = NUMA_NO_NODE;
  /** dev_get_drvdata() */
  driver_data: unknown = null;
  /** The device's class name, if any (dev_driver_string's last fallback). */
  className: string | null = null;
  /** Managed resources, oldest first; released from the end. */
  readonly devres: Devres[] = [];
  registered = false;
  /** The device is being released (device_del done). */
  dead = false;
  /** dev->release(): frees what embeds the device when its last reference goes. */
  release: (() => void) | null = null;
  /** dev->kobj.kref: device_initialize() starts it at 1. */
  refcount = 1;
  /** The MODALIAS of its "add" uevent (bus->uevent), which udev modprobes; null for none. */
  modalias: string | null = null;

  constructor(name: string, opts: { parent?: Device | null; matchName?: string; className?: string } = {}) {
    this.name = name;
    this.parent = opts.parent ?? null;
    this.matchName = opts.matchName ?? name;
    this.className = opts.className ?? null;
  }
}

/**
 * The device's directory under /sys, as kobject_get_path() gives it: a platform device without
 * a parent sits under /devices/platform, a class device under its parent's glue directory
 * named after the class (or /devices/virtual/CLASS without a parent), any other device under
 * its parent (or /devices).
 */
export function device_path(dev: Device): string {
  return child_path(dev.parent, dev.name, dev.className, dev.bus?.name ?? null);
}

/** device_path() of a device named `name` that is not (yet) there. */
export function child_path(parent: Device | null, name: string, className: string | null = null, bus: string | null = null): string {
  if (className) return `${parent ? device_path(parent) : "/devices/virtual"}/${className}/${name}`;
  if (parent) return `${device_path(parent)}/${name}`;
  return bus === "platform" ? `/devices/platform/${name}` : `/devices/${name}`;
}

/** The call chain from device_add() to sysfs_warn_dup() for a directory, innermost first. */
export const SYSFS_DIR_CALLERS = ["sysfs_create_dir_ns", "kobject_add_internal", "kobject_add", "device_add"];

/** dev_name() */
export function dev_name(dev: Device): string {
  return dev.name;
}

/** dev_to_node() */
export function dev_to_node(dev: Device | null): number {
  return dev ? dev.numa_node : NUMA_NO_NODE;
}

/** dev_driver_string(): the driver, else the bus, else the class name. */
export function dev_driver_string(dev: Device): string {
  if (dev.driver) return dev.driver.name;
  if (dev.bus) return dev.bus.name;
  if (dev.className) return dev.className;
  return "";
}

/** The "%s %s: " prefix of dev_printk(). */
export function devPrefix(dev: Device): string {
  return `${dev_driver_string(dev)} ${dev_name(dev)}: `;
}
