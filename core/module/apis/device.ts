// The device model as modules use it: devres, dev_name()/drvdata, the platform bus, and
// iomem regions.

import type { Device } from "../../base/device.ts";
import type { PlatformDevice } from "../../base/platform.ts";
import { __GFP_ZERO } from "../../mm/gfp.ts";
import type { Resource } from "../../mm/resource.ts";
import type { KBuf } from "../../mm/slab.ts";
import { EBUSY, EINVAL } from "../../errno.ts";
import { defineApis, type CallCtx } from "../api.ts";
import type { DriverPointer } from "../marshal.ts";
import type { PlatformDriverTwin } from "../twins.ts";

type Action = (data: unknown) => void;

function devmKmalloc(c: CallCtx, dev: Device, size: number, gfp: number): KBuf | null {
  return c.k.base.devm_kmalloc(dev, size, gfp);
}

function platformDriverRegister(c: CallCtx, drv: PlatformDriverTwin): number {
  if (drv.registered) return -EBUSY;
  if (!drv.name) return -EINVAL;
  const r = c.k.platform.platform_driver_register({
    name: drv.name,
    owner: c.mod.name,
    probe: drv.probe as ((pdev: PlatformDevice) => number) | null,
    remove: drv.remove as ((pdev: PlatformDevice) => number) | null,
  });
  if (typeof r === "number") return r;
  drv.registered = r;
  c.mod.holdings.drivers.add(r);
  return 0;
}

function platformDriverUnregister(c: CallCtx, drv: PlatformDriverTwin): void {
  if (!drv.registered) return;
  c.k.platform.platform_driver_unregister(drv.registered);
  c.mod.holdings.drivers.delete(drv.registered);
  drv.registered = null;
}

export const DEVICE_APIS = defineApis([
  { name: "dev_name", symbols: [], params: ["o:device"], ret: "str", proto: "static inline const char *dev_name(const struct device *dev)", impl: (_c: CallCtx, dev: Device) => dev.name },
  { name: "dev_set_drvdata", symbols: [], params: ["o:device", "p"], ret: "void", proto: "static inline void dev_set_drvdata(struct device *dev, void *data)", impl: (_c: CallCtx, dev: Device, p: DriverPointer | null) => void (dev.driver_data = p) },
  { name: "dev_get_drvdata", symbols: [], params: ["o:device"], ret: "p", proto: "static inline void *dev_get_drvdata(const struct device *dev)", impl: (_c: CallCtx, dev: Device) => dev.driver_data },
  { name: "devm_add_action", symbols: ["devm_add_action"], params: ["o:device", "fn(p)", "p"], ret: "int", proto: "int devm_add_action(struct device *dev, void (*action)(void *), void *data)", impl: (c: CallCtx, dev: Device, fn: Action, data: unknown) => c.k.base.devm_add_action(dev, fn, data) },
  { name: "devm_add_action_or_reset", symbols: ["devm_add_action"], params: ["o:device", "fn(p)", "p"], ret: "int", proto: "static inline int devm_add_action_or_reset(struct device *dev, void (*action)(void *), void *data)", impl: (c: CallCtx, dev: Device, fn: Action, data: unknown) => c.k.base.devm_add_action_or_reset(dev, fn, data) },
  { name: "devm_remove_action", symbols: ["devm_remove_action"], params: ["o:device", "fn(p)", "p"], ret: "void", proto: "void devm_remove_action(struct device *dev, void (*action)(void *), void *data)", impl: (c: CallCtx, dev: Device, fn: Action, data: unknown) => c.k.base.devm_remove_action(dev, fn, data) },
  { name: "devm_kmalloc", symbols: ["devm_kmalloc"], params: ["o:device", "num", "num"], ret: "o?:kbuf", proto: "void *devm_kmalloc(struct device *dev, size_t size, gfp_t gfp)", impl: devmKmalloc },
  { name: "devm_kzalloc", symbols: ["devm_kmalloc"], params: ["o:device", "num", "num"], ret: "o?:kbuf", proto: "static inline void *devm_kzalloc(struct device *dev, size_t size, gfp_t gfp)", impl: (c: CallCtx, dev: Device, size: number, gfp: number) => devmKmalloc(c, dev, size, gfp | __GFP_ZERO) },
  { name: "devm_kfree", symbols: ["devm_kfree"], params: ["o:device", "o:kbuf"], ret: "void", proto: "void devm_kfree(struct device *dev, const void *p)", impl: (c: CallCtx, dev: Device, buf: KBuf) => c.k.base.devm_kfree(dev, buf) },
  {
    name: "request_mem_region", symbols: ["__request_region", "iomem_resource"], params: ["num", "num", "str"], ret: "o?:resource", proto: "#define request_mem_region(start,n,name) __request_region(&iomem_resource, (start), (n), (name), 0)",
    impl: (c: CallCtx, start: number, n: number, name: string) => {
      const r = c.k.mm.iomem.request_mem_region(start, n, name);
      if (r) c.mod.holdings.regions.add(r);
      return r;
    },
  },
  {
    name: "release_mem_region", symbols: ["__release_region", "iomem_resource"], params: ["num", "num"], ret: "void", proto: "#define release_mem_region(start,n) __release_region(&iomem_resource, (start), (n))",
    impl: (c: CallCtx, start: number, n: number) => {
      for (const r of c.mod.holdings.regions) if (r.start === start && r.end === start + n - 1) c.mod.holdings.regions.delete(r);
      c.k.mm.iomem.release_mem_region(start, n);
    },
  },
  { name: "devm_request_mem_region", symbols: ["__devm_request_region", "iomem_resource"], params: ["o:device", "num", "num", "str"], ret: "o?:resource", proto: "#define devm_request_mem_region(dev,start,n,name) __devm_request_region(dev, &iomem_resource, (start), (n), (name))", impl: (c: CallCtx, dev: Device, start: number, n: number, name: string) => c.k.base.devm_request_mem_region(dev, start, n, name) },
  { name: "devm_release_mem_region", symbols: ["__devm_release_region", "iomem_resource"], params: ["o:device", "num", "num"], ret: "void", proto: "#define devm_release_mem_region(dev, start, n) __devm_release_region(dev, &iomem_resource, (start), (n))", impl: (c: CallCtx, dev: Device, start: number, n: number) => c.k.base.devm_release_mem_region(dev, start, n) },
  { name: "region_intersects", symbols: ["region_intersects"], params: ["num", "num", "num", "num"], ret: "int", proto: "int region_intersects(resource_size_t start, size_t size, unsigned long flags, unsigned long desc)", impl: (c: CallCtx, start: number, size: number, flags: number, desc: number) => c.k.mm.iomem.region_intersects(start, size, flags, desc) },
  { name: "request_resource", symbols: ["request_resource"], params: ["o:resource", "s:resource"], ret: "int", proto: "int request_resource(struct resource *root, struct resource *new)", impl: (c: CallCtx, root: Resource, r: Resource) => c.k.mm.iomem.request_resource(root, r) },
  { name: "insert_resource", symbols: ["insert_resource"], params: ["o:resource", "s:resource"], ret: "int", proto: "int insert_resource(struct resource *parent, struct resource *new)", impl: (c: CallCtx, root: Resource, r: Resource) => c.k.mm.iomem.insert_resource(root, r) },
  { name: "release_resource", symbols: ["release_resource"], params: ["s:resource"], ret: "int", proto: "int release_resource(struct resource *old)", impl: (c: CallCtx, r: Resource) => c.k.mm.iomem.release_resource(r) },
  { name: "remove_resource", symbols: ["remove_resource"], params: ["s:resource"], ret: "int", proto: "int remove_resource(struct resource *old)", impl: (c: CallCtx, r: Resource) => c.k.mm.iomem.remove_resource(r) },
  { name: "platform_driver_register", symbols: ["__platform_driver_register"], params: ["s:platform_driver"], ret: "int", proto: "#define platform_driver_register(drv) __platform_driver_register(drv, THIS_MODULE)", impl: platformDriverRegister },
  { name: "platform_driver_unregister", symbols: ["platform_driver_unregister"], params: ["s:platform_driver"], ret: "void", proto: "void platform_driver_unregister(struct platform_driver *drv)", impl: platformDriverUnregister },
  {
    name: "platform_device_register_simple", symbols: ["platform_device_register_full"], params: ["str", "int", "any", "int"], ret: "o:platform_device", proto: "static inline struct platform_device *platform_device_register_simple(const char *name, int id, const struct resource *res, unsigned int num)",
    impl: (c: CallCtx, name: string, id: number) => {
      const p = c.k.platform.platform_device_register_simple(name, id);
      if (typeof p !== "number") c.mod.holdings.pdevs.add(p);
      return p;
    },
  },
  {
    name: "platform_device_unregister", callsBack: true, symbols: ["platform_device_unregister"], params: ["o?:platform_device"], ret: "void", proto: "void platform_device_unregister(struct platform_device *pdev)",
    impl: (c: CallCtx, pdev: PlatformDevice | null) => {
      if (!pdev) return;
      c.mod.holdings.pdevs.delete(pdev);
      c.k.platform.platform_device_unregister(pdev);
    },
  },
]);
