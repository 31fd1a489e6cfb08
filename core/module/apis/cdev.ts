// Character device regions, cdevs, device classes and sysfs attributes as modules use them
// (fs/char_dev.c, drivers/base/class.c and core.c; core/fs/cdev.ts): alloc a region of
// device numbers, cdev_add() a struct cdev with the module's file_operations over them,
// device_create() a device of a class for each number (its /dev node), attributes under
// /sys. What the module leaves registered when it goes is torn down, newest first.
//
// Where C writes through a pointer (alloc_chrdev_region()'s dev_t *dev), kemu returns the
// value: the dev_t, or a negative errno.

import type { Device } from "../../base/device.ts";
import type { CharFileOperations } from "../../fs/chrdev.ts";
import { Cdev, MINORBITS, MINORMASK, type DeviceClass } from "../../fs/cdev.ts";
import { MAJOR, MINOR, MKDEV } from "../../fs/file.ts";
import { defineApis, type CallCtx } from "../api.ts";
import { ArgError } from "../marshal.ts";
import type { Module } from "../module.ts";
import type { StructTwin } from "../twins.ts";
import { moduleSprintf, warnSite } from "./bug.ts";
import { hold, unhold } from "./teardown.ts";

/** struct device_attribute as the kernel holds it. */
export interface DeviceAttributeTwin {
  name: string;
  mode: number;
  show: ((dev: Device) => string) | null;
}

export const cdev_twin: StructTwin = {
  create: () => new Cdev(),
  update(obj, f) {
    const c = obj as Cdev;
    // Once added the kernel's copy rules.
    if (c.added) return;
    if ("owner" in f) c.owner = (f["owner"] as Module | null) ?? null;
  },
};

export const device_attribute_twin: StructTwin = {
  create: (): DeviceAttributeTwin => ({ name: "", mode: 0o444, show: null }),
  update(obj, f) {
    const a = obj as DeviceAttributeTwin;
    const attr = f["attr"] as { name?: unknown; mode?: unknown } | null | undefined;
    if (attr && typeof attr === "object") {
      if (typeof attr.name === "string") a.name = attr.name;
      if (typeof attr.mode === "number") a.mode = attr.mode;
    }
    if ("show" in f) a.show = (f["show"] as DeviceAttributeTwin["show"]) ?? null;
  },
};

function count(what: string, n: number, max: number): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new ArgError(`${what} ${n} is out of range`);
  return n;
}

function devt(v: number): number {
  return count("dev_t", v, MKDEV(4095, MINORMASK));
}

/** What is left registered at unload is removed: `hold` with kemu's line saying so. */
const REMOVING = { verb: "removing" };

/** The registrations behind a module's regions (from, count) and attributes (device, name). */
const regionKeys = new WeakMap<Module, Map<string, object>>();
function key(c: CallCtx, k: string, create: boolean): object | undefined {
  let m = regionKeys.get(c.mod);
  if (!m) regionKeys.set(c.mod, (m = new Map()));
  let o = m.get(k);
  if (!o && create) m.set(k, (o = {}));
  if (o && !create) m.delete(k);
  return o;
}

/** What device_create_file()'s key is for `dev` and `name`. */
const devIds = new WeakMap<Device, number>();
let nextDevId = 1;
function devId(dev: Device): number {
  let id = devIds.get(dev);
  if (id === undefined) devIds.set(dev, (id = nextDevId++));
  return id;
}

function regionName(from: number, n: number, name: string): string {
  return `char device region '${name}' (${MAJOR(from)}:${MINOR(from)}, ${n} minors)`;
}

export const CDEV_APIS = defineApis([
  {
    name: "register_chrdev_region", symbols: ["register_chrdev_region"], params: ["num", "num", "str"], ret: "int", proto: "int register_chrdev_region(dev_t from, unsigned count, const char *name)",
    impl: (c: CallCtx, from: number, n: number, name: string) => {
      const rc = c.k.chrdevs.register_chrdev_region(devt(from), count("count", n, 2 ** 32 - 1), name);
      if (!rc) hold(c, key(c, `${from}/${n}`, true)!, regionName(from, n, name), () => c.k.chrdevs.unregister_chrdev_region(from, n), REMOVING);
      return rc;
    },
  },
  {
    name: "alloc_chrdev_region", symbols: ["alloc_chrdev_region"], params: ["num", "num", "str"], ret: "int",
    proto: "int alloc_chrdev_region(unsigned baseminor, unsigned count, const char *name) /* C: (dev_t *dev, ...); kemu returns *dev, or a negative errno */",
    impl: (c: CallCtx, baseminor: number, n: number, name: string) => {
      const r = c.k.chrdevs.alloc_chrdev_region(count("baseminor", baseminor, MINORMASK), count("count", n, 1 << MINORBITS), name);
      if (r >= 0) hold(c, key(c, `${r}/${n}`, true)!, regionName(r, n, name), () => c.k.chrdevs.unregister_chrdev_region(r, n), REMOVING);
      return r;
    },
  },
  {
    name: "unregister_chrdev_region", symbols: ["unregister_chrdev_region"], params: ["num", "num"], ret: "void", proto: "void unregister_chrdev_region(dev_t from, unsigned count)",
    impl: (c: CallCtx, from: number, n: number) => {
      const o = key(c, `${from}/${n}`, false);
      if (o) unhold(c, o);
      c.k.chrdevs.unregister_chrdev_region(devt(from), n);
    },
  },
  {
    name: "cdev_init", symbols: ["cdev_init"], params: ["s:cdev", "s:file_operations"], ret: "void", proto: "void cdev_init(struct cdev *cdev, const struct file_operations *fops)",
    impl: (c: CallCtx, cdev: Cdev, fops: CharFileOperations) => {
      if (cdev.added) throw new ArgError("the cdev is added: cdev_del() it first");
      c.k.chrdevs.cdev_init(cdev, fops);
    },
  },
  {
    name: "cdev_add", symbols: ["cdev_add"], params: ["s:cdev", "num", "num"], ret: "int", proto: "int cdev_add(struct cdev *p, dev_t dev, unsigned count)",
    impl: (c: CallCtx, cdev: Cdev, dev: number, n: number) => {
      if (!cdev.ops) throw new ArgError("cdev_add() of a cdev without cdev_init()");
      const rc = c.k.chrdevs.cdev_add(cdev, devt(dev), count("count", n, 1 << MINORBITS));
      if (!rc) hold(c, cdev, `cdev ${MAJOR(dev)}:${MINOR(dev)}`, () => c.k.chrdevs.cdev_del(cdev), REMOVING);
      return rc;
    },
  },
  {
    name: "cdev_del", symbols: ["cdev_del"], params: ["s:cdev"], ret: "void", proto: "void cdev_del(struct cdev *p)",
    impl: (c: CallCtx, cdev: Cdev) => {
      unhold(c, cdev);
      c.k.chrdevs.cdev_del(cdev);
    },
  },
  {
    name: "class_create", symbols: ["__class_create"], params: ["o?:module", "str"], ret: "o:class_struct", proto: "#define class_create(owner, name) __class_create(owner, name, &__key)",
    impl: (c: CallCtx, owner: Module | null, name: string) => {
      const cls = c.k.chrdevs.class_create(owner, name);
      if (typeof cls !== "number") hold(c, cls, `class '${name}'`, () => c.k.chrdevs.class_destroy(cls), REMOVING);
      return cls;
    },
  },
  {
    name: "class_destroy", symbols: ["class_destroy"], params: ["o?:class_struct"], ret: "void", proto: "void class_destroy(struct class *cls)",
    impl: (c: CallCtx, cls: DeviceClass | null) => {
      if (!cls) return;
      unhold(c, cls);
      c.k.chrdevs.class_destroy(cls);
    },
  },
  {
    name: "device_create", symbols: ["device_create"], params: ["o:class_struct", "o?:device", "num", "p", "str", "...any"], ret: "o:device",
    proto: "struct device *device_create(struct class *cls, struct device *parent, dev_t devt, void *drvdata, const char *fmt, ...)",
    impl: (c: CallCtx, cls: DeviceClass, parent: Device | null, dev: number, drvdata: unknown, fmt: string, ...args: unknown[]) => {
      const name = moduleSprintf(c, fmt, args);
      if (!name || name.includes("/")) throw new ArgError(`bad device name ${JSON.stringify(name)}`);
      const d = c.k.chrdevs.device_create(cls, parent, devt(dev), drvdata, name);
      if (typeof d !== "number") hold(c, d, `device '${name}'`, () => c.k.chrdevs.device_unregister(d), REMOVING);
      return d;
    },
  },
  {
    name: "device_destroy", symbols: ["device_destroy"], params: ["o:class_struct", "num"], ret: "void", proto: "void device_destroy(struct class *cls, dev_t devt)",
    impl: (c: CallCtx, cls: DeviceClass, dev: number) => {
      const d = cls.devices.find((x) => c.k.chrdevs.devt(x) === dev);
      if (d) unhold(c, d);
      c.k.chrdevs.device_destroy(cls, devt(dev));
    },
  },
  {
    name: "device_create_file", symbols: ["device_create_file"], params: ["o:device", "s:device_attribute"], ret: "int", proto: "int device_create_file(struct device *dev, const struct device_attribute *attr)",
    impl: (c: CallCtx, dev: Device, attr: DeviceAttributeTwin) => {
      // A group's name is a directory: "dax_region/align" for sysfs_create_group()'s "dax_region".
      if (!/^[A-Za-z0-9_.:-]+(\/[A-Za-z0-9_.:-]+)?$/.test(attr.name)) throw new ArgError(`bad attribute name ${JSON.stringify(attr.name)}`);
      const show = attr.show;
      const rc = c.k.chrdevs.device_create_file(dev, attr.name, () => (show ? (show(dev) ?? "") : ""));
      if (rc) return rc;
      hold(c, key(c, `attr:${devId(dev)}:${attr.name}`, true)!, `attribute '${attr.name}' of ${dev.name}`, () => c.k.chrdevs.device_remove_file(dev, attr.name), {
        ...REMOVING,
        left: () => c.k.chrdevs.device_has_file(dev, attr.name),
      });
      return 0;
    },
  },
  {
    name: "device_remove_file", symbols: ["device_remove_file"], params: ["o:device", "s:device_attribute"], ret: "void", proto: "void device_remove_file(struct device *dev, const struct device_attribute *attr)",
    impl: (c: CallCtx, dev: Device, attr: DeviceAttributeTwin) => {
      const o = key(c, `attr:${devId(dev)}:${attr.name}`, false);
      if (o) unhold(c, o);
      c.k.chrdevs.device_remove_file(dev, attr.name);
    },
  },
  {
    name: "dev_WARN", symbols: ["__warn_printk"], params: ["o:device", "str", "...any"], ret: "void",
    proto: '#define dev_WARN(dev, format, arg...) WARN(1, "%s %s: " format, dev_driver_string(dev), dev_name(dev), ## arg)',
    impl: (c: CallCtx, dev: Device, fmt: string, ...args: unknown[]) => {
      c.k.dev_WARN(dev, warnSite(c), moduleSprintf(c, fmt, args));
    },
  },
  {
    name: "dev_driver_owner", symbols: [], params: ["o:device"], ret: "o?:module", proto: "/* dev->driver->owner: the module of the driver bound to dev, or NULL */",
    impl: (c: CallCtx, dev: Device) => {
      const owner = dev.driver?.owner;
      return owner ? (c.k.modules.find_module(owner) ?? null) : null;
    },
  },
]);
