// What the nvdimm drivers need from the core beyond the device model (apis/bus.ts) and the
// block layer (apis/block.ts), 4.20/5.0:
//
// - nd_driver_register(): module_nd_driver()'s registration. Its symbol, __nd_driver_register,
//   is libnvdimm's export (EXPORT_SYMBOL, drivers/nvdimm/bus.c): a driver that uses it depends
//   on libnvdimm and is refused without it. The kernel does its work here because a driver's
//   callbacks cannot cross into libnvdimm's isolate: the same checks (type and ->probe set,
//   else -EINVAL), drv->bus = libnvdimm's "nd" bus, driver_register(). libnvdimm
//   registers its own drivers with its own __nd_driver_register().
// - Persistent memory access through kernel virtual addresses (numbers): devm_memremap() of
//   a namespace, kmap_atomic() of a page, memcpy_mcsafe() (reads; bytes not copied),
//   memcpy_flushcache() (writes that bypass the CPU cache: on the media, i.e. in the region's
//   file, when it returns) and arch_wb_cache_pmem().

import type { Device } from "../../base/device.ts";
import { EINVAL, ENODEV, ENXIO } from "../../errno.ts";
import { PAGE_SIZE, PFN_PHYS, type Page } from "../../mm/memmap.ts";
import { __pa, __va, is_linear_map_address } from "../../mm/physmem.ts";
import { IORES_DESC_NONE, IORESOURCE_SYSTEM_RAM, REGION_DISJOINT, Resource } from "../../mm/resource.ts";
import type { Kernel } from "../../kernel.ts";
import { defineApis, type CallCtx } from "../api.ts";
import { ArgError } from "../marshal.ts";
import type { StructTwin } from "../twins.ts";
import { MEMREMAP_WB, MEMREMAP_WC, MEMREMAP_WT } from "../../acpi/ndctl.ts";
import { moduleBuses, registerDriver, TypedDeviceDriver, type DriverTwin } from "./bus.ts";

/** struct nd_device_driver as the kernel keeps a module's. */
export interface NdDeviceDriverTwin {
  drv: DriverTwin | null;
  type: number;
  probe: ((dev: Device) => number) | null;
  remove: ((dev: Device) => number) | null;
}

export const NVDIMM_TWINS: Record<string, StructTwin> = {
  nd_device_driver: {
    create: (): NdDeviceDriverTwin => ({ drv: null, type: 0, probe: null, remove: null }),
    update(obj, f) {
      const d = obj as NdDeviceDriverTwin;
      if (d.drv?.kdrv) return;
      d.drv = (f["drv"] as DriverTwin | null) ?? null;
      d.type = typeof f["type"] === "number" ? f["type"] : 0;
      d.probe = (f["probe"] as NdDeviceDriverTwin["probe"]) ?? null;
      d.remove = (f["remove"] as NdDeviceDriverTwin["remove"]) ?? null;
    },
  },
};

/** devm_memremap_release(): memunmap() of a linear-map address has nothing to undo. */
function devm_memremap_release(_addr: unknown): void {}

/**
 * The physical range behind kernel virtual addresses [va, va + len): memory the kernel maps,
 * System RAM or a persistent-memory region. Anything else is a bad pointer.
 */
function kernelRange(k: Kernel, va: number, len: number, func: string): number {
  if (!Number.isSafeInteger(len) || len < 0) throw new ArgError(`${func}(): ${len} is not a byte count`);
  if (typeof va !== "number" || !is_linear_map_address(va)) throw new ArgError(`${func}(): ${va} is not a kernel address`);
  const phys = __pa(va);
  if (len === 0) return phys;
  const inPmem = k.config.pmem.some((p) => phys >= p.start && phys + len <= p.start + p.size);
  if (!inPmem) {
    const ram = k.mm.iomem.region_intersects(phys, len, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE);
    for (let pfn = Math.floor(phys / PAGE_SIZE); pfn * PAGE_SIZE < phys + len; pfn++) {
      if (ram === REGION_DISJOINT || !k.mm.memmap.pfn_valid(pfn)) throw new ArgError(`${func}(): [${va.toString(16)}, +${len}) is not memory the kernel maps`);
    }
  }
  return phys;
}

export const NVDIMM_APIS = defineApis([
  {
    name: "nd_driver_register", symbols: ["__nd_driver_register"], symbolsFrom: "libnvdimm", params: ["s:nd_device_driver"], ret: "int",
    proto: "#define nd_driver_register(driver) __nd_driver_register(driver, THIS_MODULE, KBUILD_MODNAME)",
    impl: (c: CallCtx, nd: NdDeviceDriverTwin) => {
      const d = nd.drv;
      if (!d) throw new ArgError("nd_driver_register(): struct nd_device_driver without its drv");
      // pr_debug("driver type bitmask not set (%pf)\n") / pr_debug("%s ->probe() must be specified\n", mod_name):
      // ->remove is optional (nvdimm_bus_remove() calls it only when there is one).
      if (!nd.type || !nd.probe) return -EINVAL;
      if (d.kdrv) return -EINVAL;
      // drv->bus = &nvdimm_bus_type: the bus of the module whose __nd_driver_register this is.
      const libnvdimm = c.mod.symbols.get("__nd_driver_register") ?? null;
      const bus = moduleBuses.get("nd");
      if (!bus?.kbus || bus.owner !== libnvdimm) return -ENODEV;
      const drv = new TypedDeviceDriver(d.name, { owner: c.mod.name, probe: nd.probe, remove: nd.remove ?? undefined });
      drv.type = nd.type;
      d.bus = bus;
      return registerDriver(c, d, drv, bus.kbus);
    },
  },
  {
    name: "devm_memremap", symbols: ["devm_memremap"], params: ["o:device", "num", "num", "num"], ret: "num",
    proto: "void *devm_memremap(struct device *dev, resource_size_t offset, size_t size, unsigned long flags)",
    impl: (c: CallCtx, dev: Device, offset: number, size: number, flags: number) => {
      if (!(flags & (MEMREMAP_WB | MEMREMAP_WT | MEMREMAP_WC))) return -EINVAL;
      kernelRange(c.k, __va(offset), size, "devm_memremap");
      const addr = __va(offset);
      // The mapping goes with the device (devm_memremap_release -> memunmap).
      const rc = c.k.base.devm_add_action(dev, devm_memremap_release, addr, "devm_memremap_release");
      return rc ? -ENXIO : addr;
    },
  },
  {
    name: "devm_memunmap", symbols: ["devm_memunmap"], params: ["o:device", "num"], ret: "void", proto: "void devm_memunmap(struct device *dev, void *addr)",
    // WARN_ON(devres_release(dev, devm_memremap_release, devm_memremap_match, addr))
    impl: (c: CallCtx, dev: Device, addr: number) => c.k.base.devm_remove_action(dev, devm_memremap_release, addr),
  },
  {
    name: "walk_iomem_res_desc", symbols: ["walk_iomem_res_desc"], params: ["num", "num", "num", "num", "p", "fn(o:resource,p)->int|-14"], ret: "int",
    proto: "int walk_iomem_res_desc(unsigned long desc, unsigned long flags, u64 start, u64 end, void *arg, int (*func)(struct resource *, void *))",
    impl: (c: CallCtx, desc: number, flags: number, start: number, end: number, arg: unknown, func: ((res: Resource, arg: unknown) => number) | null) => {
      if (!func) return -EINVAL;
      // find_next_iomem_res(): every resource of the tree, depth first, that has all of
      // `flags` and (unless IORES_DESC_NONE) `desc`, clipped to [start, end]; func gets a copy.
      let ret = -1;
      const visit = (r: Resource | null): boolean => {
        for (let p = r; p; p = p.sibling) {
          if (p.start > end) return false;
          if (p.end >= start && (p.flags & flags) === flags && (desc === IORES_DESC_NONE || p.desc === desc)) {
            const copy = new Resource(Math.max(p.start, start), Math.min(p.end, end), p.name, p.flags, p.desc);
            ret = func(copy, arg);
            if (ret) return false;
          }
          if (p.child && visit(p.child) === false && ret) return false;
        }
        return true;
      };
      visit(c.k.mm.iomem.root.child);
      return ret;
    },
  },
  {
    name: "kmap_atomic", symbols: [], params: ["page"], ret: "num", proto: "static inline void *kmap_atomic(struct page *page)",
    impl: (c: CallCtx, page: Page) => {
      c.k.mm.memmap.section(page); // a pfn without a struct page faults
      return __va(PFN_PHYS(page));
    },
  },
  { name: "kunmap_atomic", symbols: [], params: ["num"], ret: "void", proto: "#define kunmap_atomic(addr)", impl: () => undefined },
  {
    name: "memcpy_mcsafe", symbols: ["__memcpy_mcsafe"], params: ["num", "num", "num"], ret: "num",
    proto: "static __always_inline unsigned long memcpy_mcsafe(void *dst, const void *src, size_t cnt)",
    impl: (c: CallCtx, dst: number, src: number, cnt: number) => {
      const d = kernelRange(c.k, dst, cnt, "memcpy_mcsafe");
      const s = kernelRange(c.k, src, cnt, "memcpy_mcsafe");
      c.k.mm.physmem.write(d, c.k.mm.physmem.read(s, cnt));
      return 0;
    },
  },
  {
    name: "memcpy_flushcache", symbols: ["__memcpy_flushcache"], params: ["num", "num", "num"], ret: "void",
    proto: "static __always_inline void memcpy_flushcache(void *dst, const void *src, size_t cnt)",
    impl: (c: CallCtx, dst: number, src: number, cnt: number) => {
      const d = kernelRange(c.k, dst, cnt, "memcpy_flushcache");
      const s = kernelRange(c.k, src, cnt, "memcpy_flushcache");
      const pm = c.k.mm.physmem;
      pm.write(d, pm.read(s, cnt));
      pm.writeback(d, cnt);
    },
  },
  {
    name: "arch_wb_cache_pmem", symbols: ["arch_wb_cache_pmem"], params: ["num", "num"], ret: "void", proto: "void arch_wb_cache_pmem(void *addr, size_t size)",
    impl: (c: CallCtx, addr: number, size: number) => {
      c.k.mm.physmem.writeback(kernelRange(c.k, addr, size, "arch_wb_cache_pmem"), size);
    },
  },
]);
