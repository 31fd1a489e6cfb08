// PCI drivers as modules write them (include/linux/pci.h, drivers/pci/pci-driver.c and pci.c,
// 4.20/5.0): pci_register_driver() with an id_table, probe(pdev, id) and remove(pdev); enable,
// bus mastering, BARs; ioremap() and ioread32()/iowrite32() of a BAR (arch/x86/mm/ioremap.c,
// lib/iomap.c); streaming DMA mappings of pages (include/linux/dma-mapping.h).
//
// DMA: x86 without an IOMMU maps a page to its physical address (dma_direct_map_page()), if the
// device's dma_mask reaches it. A failed mapping is 0 here (4.20's DIRECT_MAPPING_ERROR; 5.0's
// DMA_MAPPING_ERROR is ~0, which is no exact JavaScript number): test it with
// dma_mapping_error(). The inlines reach the DMA ops through x86's dma_ops in both versions
// (5.0's inline also calls dma_direct_map_page() when dma_ops is NULL; kemu's symbol lists are
// the same for every version, so they name dma_ops alone).

import type { Device, DeviceDriver } from "../../base/device.ts";
import { pci_resource_len, PCI_ROM_RESOURCE, PCI_ANY_ID, type PciDev, type PciDeviceId } from "../../base/pci.ts";
import { EIO, EBUSY, ENOMEM } from "../../errno.ts";
import { PAGE_SIZE, type Page } from "../../mm/memmap.ts";
import { defineApis, type CallCtx } from "../api.ts";
import { ArgError } from "../marshal.ts";
import type { StructTwin } from "../twins.ts";
import { hold, unhold } from "./teardown.ts";

/** Each module's live ioremap() mappings: address -> its teardown key. */
const moduleIoremaps = new WeakMap<object, Map<number, object>>();
function ioremaps(c: CallCtx): Map<number, object> {
  let m = moduleIoremaps.get(c.mod);
  if (!m) moduleIoremaps.set(c.mod, (m = new Map()));
  return m;
}

/** struct pci_driver as the kernel holds it. */
export interface PciDriverTwin {
  name: string;
  id_table: PciDeviceId[];
  probe: ((pdev: PciDev, id: PciDeviceId) => number) | null;
  remove: ((pdev: PciDev) => void) | null;
  registered: DeviceDriver | null;
}

const ID_FIELDS = ["vendor", "device", "subvendor", "subdevice", "class", "class_mask", "driver_data"] as const;

/** An id_table as the module wrote it: entries of numbers, missing fields 0 (C's designated initialisers). */
function idTable(v: unknown): PciDeviceId[] {
  if (v === null || v === undefined) return [];
  if (!Array.isArray(v)) throw new ArgError("pci_driver.id_table is not an array of struct pci_device_id");
  return v.map((e, i) => {
    if (!e || typeof e !== "object") throw new ArgError(`pci_driver.id_table[${i}] is not a struct pci_device_id`);
    const id = {} as PciDeviceId;
    for (const f of ID_FIELDS) {
      const x = (e as Record<string, unknown>)[f] ?? 0;
      if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0 || x > PCI_ANY_ID) throw new ArgError(`pci_driver.id_table[${i}].${f} is not a 32-bit value`);
      id[f] = x;
    }
    return id;
  });
}

export const pci_driver_twin: StructTwin = {
  create: (): PciDriverTwin => ({ name: "", id_table: [], probe: null, remove: null, registered: null }),
  update(obj, f) {
    const d = obj as PciDriverTwin;
    // Registered, the kernel's copy rules.
    if (d.registered) return;
    if (typeof f["name"] === "string") d.name = f["name"];
    d.id_table = idTable(f["id_table"]);
    d.probe = (f["probe"] as PciDriverTwin["probe"]) ?? null;
    d.remove = (f["remove"] as PciDriverTwin["remove"]) ?? null;
  },
};

function bar(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > PCI_ROM_RESOURCE) throw new ArgError(`BAR ${n} is not a resource of a pci_dev (0-${PCI_ROM_RESOURCE})`);
  return n;
}

/** An __iomem address: the physical address behind it, for an aligned 32-bit access. */
function mmio(c: CallCtx, addr: number, func: string): number {
  if (!Number.isSafeInteger(addr) || addr % 4) throw new ArgError(`${func}() of ${addr}, which is not an aligned __iomem address`);
  const phys = c.k.pci.io.translate(addr, 4);
  // The kernel would take a page fault on an address no ioremap() mapped.
  if (phys === null) throw new ArgError(`${func}() of an address no ioremap() mapping covers`);
  return phys;
}

/** dma_mask of a device: PCI functions have one; other devices have none (dev->dma_mask NULL). */
function dmaMask(c: CallCtx, dev: Device): number | null {
  return c.k.pci.to_pci_dev(dev)?.dma_mask ?? null;
}

function dmaMapPage(c: CallCtx, dev: Device, page: Page, offset: number, size: number, dir: number): number {
  if (!Number.isInteger(dir) || dir < 0 || dir > 2) throw new ArgError(`DMA direction ${dir} is not valid`); // BUG_ON(!valid_dma_direction(dir))
  if (!Number.isInteger(offset) || !Number.isInteger(size) || offset < 0 || size < 0 || offset + size > PAGE_SIZE * 512) throw new ArgError(`offset ${offset} + size ${size} is not a page mapping`);
  const mm = c.k.mm;
  if (!mm.memmap.pfn_valid(page)) throw new ArgError(`page ${page} has no struct page`);
  const addr = page * PAGE_SIZE + offset;
  const mask = dmaMask(c, dev);
  // dma_capable(): the device must reach every byte; a device-private page has no address at all.
  if (mask === null || addr + size - 1 > mask || mm.is_device_private_page(page)) return 0;
  return addr;
}

export const PCI_APIS = defineApis([
  {
    name: "pci_register_driver", symbols: ["__pci_register_driver"], params: ["s:pci_driver"], ret: "int", proto: "#define pci_register_driver(driver) __pci_register_driver(driver, THIS_MODULE, KBUILD_MODNAME)",
    impl: (c: CallCtx, drv: PciDriverTwin) => {
      if (drv.registered) return -EBUSY;
      const r = c.k.pci.pci_register_driver({ name: drv.name, id_table: drv.id_table, probe: drv.probe, remove: drv.remove, owner: c.mod.name });
      if (typeof r === "number") return r;
      drv.registered = r;
      c.mod.holdings.drivers.add(r);
      return 0;
    },
  },
  {
    name: "pci_unregister_driver", symbols: ["pci_unregister_driver"], params: ["s:pci_driver"], ret: "void", proto: "void pci_unregister_driver(struct pci_driver *dev)",
    impl: (c: CallCtx, drv: PciDriverTwin) => {
      if (!drv.registered) return;
      c.k.pci.pci_unregister_driver(drv.registered);
      c.mod.holdings.drivers.delete(drv.registered);
      drv.registered = null;
    },
  },
  { name: "pci_enable_device", symbols: ["pci_enable_device"], params: ["o:pci_dev"], ret: "int", proto: "int pci_enable_device(struct pci_dev *dev)", impl: (c: CallCtx, pdev: PciDev) => c.k.pci.pci_enable_device(pdev) },
  { name: "pci_disable_device", symbols: ["pci_disable_device"], params: ["o:pci_dev"], ret: "void", proto: "void pci_disable_device(struct pci_dev *dev)", impl: (c: CallCtx, pdev: PciDev) => c.k.pci.pci_disable_device(pdev) },
  { name: "pci_set_master", symbols: ["pci_set_master"], params: ["o:pci_dev"], ret: "void", proto: "void pci_set_master(struct pci_dev *dev)", impl: (c: CallCtx, pdev: PciDev) => c.k.pci.pci_set_master(pdev, true) },
  { name: "pci_clear_master", symbols: ["pci_clear_master"], params: ["o:pci_dev"], ret: "void", proto: "void pci_clear_master(struct pci_dev *dev)", impl: (c: CallCtx, pdev: PciDev) => c.k.pci.pci_set_master(pdev, false) },
  {
    name: "pci_resource_start", symbols: [], params: ["o:pci_dev", "int"], ret: "num", proto: "#define pci_resource_start(dev, bar) ((dev)->resource[(bar)].start)",
    impl: (_c: CallCtx, pdev: PciDev, n: number) => pdev.resource[bar(n)]?.start ?? 0,
  },
  {
    name: "pci_resource_len", symbols: [], params: ["o:pci_dev", "int"], ret: "num", proto: "#define pci_resource_len(dev,bar) ((pci_resource_start((dev), (bar)) == 0 && pci_resource_end((dev), (bar)) == pci_resource_start((dev), (bar))) ? 0 : (pci_resource_end((dev), (bar)) - pci_resource_start((dev), (bar)) + 1))",
    impl: (_c: CallCtx, pdev: PciDev, n: number) => pci_resource_len(pdev, bar(n)),
  },
  { name: "pci_name", symbols: [], params: ["o:pci_dev"], ret: "str", proto: "static inline const char *pci_name(const struct pci_dev *pdev)", impl: (_c: CallCtx, pdev: PciDev) => pdev.dev.name },
  { name: "pci_set_drvdata", symbols: [], params: ["o:pci_dev", "p"], ret: "void", proto: "static inline void pci_set_drvdata(struct pci_dev *pdev, void *data)", impl: (_c: CallCtx, pdev: PciDev, p: unknown) => void (pdev.dev.driver_data = p) },
  { name: "pci_get_drvdata", symbols: [], params: ["o:pci_dev"], ret: "p", proto: "static inline void *pci_get_drvdata(struct pci_dev *pdev)", impl: (_c: CallCtx, pdev: PciDev) => pdev.dev.driver_data },
  {
    name: "ioremap", symbols: ["ioremap_nocache"], params: ["num", "num"], ret: "num", proto: "static inline void __iomem *ioremap(resource_size_t offset, unsigned long size)",
    impl: (c: CallCtx, phys: number, size: number) => {
      if (!Number.isSafeInteger(phys) || !Number.isSafeInteger(size) || phys < 0 || size < 0) throw new ArgError(`ioremap(${phys}, ${size}): not a physical range`);
      const addr = c.k.pci.io.ioremap(phys, size);
      // Mapped until iounmap(), or until the module goes. (Cookies are negative: VMALLOC_START
      // as a signed 64-bit number; 0 is the failure.)
      if (addr !== 0) {
        const key = { addr };
        ioremaps(c).set(addr, key);
        hold(c, key, `ioremap() of [mem 0x${phys.toString(16)}-0x${(phys + size - 1).toString(16)}]`, () => c.k.pci.io.iounmap(addr), { verb: "unmapping", state: "mapped" });
      }
      return addr;
    },
  },
  {
    name: "iounmap", symbols: ["iounmap"], params: ["num"], ret: "void", proto: "void iounmap(volatile void __iomem *addr)",
    impl: (c: CallCtx, addr: number) => {
      const key = ioremaps(c).get(addr);
      if (key) {
        unhold(c, key);
        ioremaps(c).delete(addr);
      }
      c.k.pci.io.iounmap(addr);
    },
  },
  {
    name: "ioread32", symbols: ["ioread32"], params: ["num"], ret: "num", proto: "unsigned int ioread32(void __iomem *addr)",
    impl: (c: CallCtx, addr: number) => c.k.pci.io.read32(mmio(c, addr, "ioread32")),
  },
  {
    name: "iowrite32", symbols: ["iowrite32"], params: ["num", "num"], ret: "void", proto: "void iowrite32(u32 val, void __iomem *addr)",
    impl: (c: CallCtx, val: number, addr: number) => {
      if (!Number.isInteger(val) || val < -(2 ** 31) || val > 0xffffffff) throw new ArgError(`iowrite32() of ${val}, which is not a u32`);
      c.k.pci.io.write32(mmio(c, addr, "iowrite32"), val);
    },
  },
  {
    name: "dma_set_mask", symbols: ["dma_ops"], params: ["o:device", "num"], ret: "int", proto: "static inline int dma_set_mask(struct device *dev, u64 mask)",
    impl: (c: CallCtx, dev: Device, mask: number) => {
      const pdev = c.k.pci.to_pci_dev(dev);
      // !dev->dma_mask, or a mask below ZONE_DMA's 24 bits (dma_direct_supported())
      if (!pdev || !Number.isSafeInteger(mask) || mask < 2 ** 24 - 1) return -EIO;
      pdev.dma_mask = mask;
      return 0;
    },
  },
  {
    name: "dma_map_page_attrs", symbols: ["dma_ops"], params: ["o:device", "page", "num", "num", "int", "num"], ret: "num",
    proto: "static inline dma_addr_t dma_map_page_attrs(struct device *dev, struct page *page, size_t offset, size_t size, enum dma_data_direction dir, unsigned long attrs)",
    impl: (c: CallCtx, dev: Device, page: Page, offset: number, size: number, dir: number) => dmaMapPage(c, dev, page, offset, size, dir),
  },
  {
    name: "dma_map_page", symbols: ["dma_ops"], params: ["o:device", "page", "num", "num", "int"], ret: "num", proto: "#define dma_map_page(d, p, o, s, r) dma_map_page_attrs(d, p, o, s, r, 0)",
    impl: (c: CallCtx, dev: Device, page: Page, offset: number, size: number, dir: number) => dmaMapPage(c, dev, page, offset, size, dir),
  },
  {
    name: "dma_unmap_page", symbols: ["dma_ops"], params: ["o:device", "num", "num", "int"], ret: "void", proto: "#define dma_unmap_page(d, a, s, r) dma_unmap_page_attrs(d, a, s, r, 0)",
    impl: (_c: CallCtx, _dev: Device, addr: number, _size: number, dir: number) => {
      if (!Number.isInteger(dir) || dir < 0 || dir > 2) throw new ArgError(`DMA direction ${dir} is not valid`);
      if (!Number.isSafeInteger(addr) || addr < 0) throw new ArgError(`${addr} is not a dma_addr_t`);
    },
  },
  {
    name: "dma_mapping_error", symbols: ["dma_ops"], params: ["o:device", "num"], ret: "int", proto: "static inline int dma_mapping_error(struct device *dev, dma_addr_t dma_addr)",
    impl: (_c: CallCtx, _dev: Device, addr: number) => (addr === 0 ? -ENOMEM : 0),
  },
]);
