// nd_e820: legacy persistent memory (drivers/nvdimm/e820.c of 4.20/5.0, module nd_e820.ko).
// The "e820_pmem" platform device (arch/x86/kernel/pmem.c) appears when the e820 map has type
// 12 ranges; this driver registers an nvdimm bus ("e820") and one pmem region per
// "Persistent Memory (legacy)" range of iomem.

import {
  MODULE_LICENSE, MODULE_AUTHOR, MODULE_ALIAS, module_init, module_exit, ENXIO, IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY_LEGACY,
  platform_driver_register, platform_driver_unregister, walk_iomem_res_desc, dev_err,
  type platform_device, type platform_driver, type resource,
} from "kemu/kernel";
import { nvdimm_bus_register, nvdimm_bus_unregister, nvdimm_pmem_region_create } from "kemu/extern";
import type { nvdimm_bus } from "./nd.ts";

MODULE_ALIAS("platform:e820_pmem*");
MODULE_LICENSE("GPL v2");
MODULE_AUTHOR("Intel Corporation");

/** platform_get_drvdata(): the bus of each e820_pmem device. */
const busOf = new Map<platform_device, nvdimm_bus | null>();

function e820_pmem_remove(pdev: platform_device): number {
  nvdimm_bus_unregister(busOf.get(pdev) ?? null);
  busOf.delete(pdev);
  return 0;
}

function e820_register_one(res: resource, data: unknown): number {
  const bus = data as nvdimm_bus;
  // ND_REGION_PAGEMAP; e820_range_to_nid(): node 0
  if (!nvdimm_pmem_region_create(bus, { res: { start: res.start, end: res.end }, numa_node: 0 })) return -ENXIO;
  return 0;
}

function e820_pmem_probe(pdev: platform_device): number {
  const dev = pdev.dev;
  let rc = -ENXIO;
  const nvdimm_bus = nvdimm_bus_register(dev, { provider_name: "e820" });
  if (nvdimm_bus) {
    busOf.set(pdev, nvdimm_bus);
    // start 0, end -1: the whole physical address space
    rc = walk_iomem_res_desc(IORES_DESC_PERSISTENT_MEMORY_LEGACY, IORESOURCE_MEM, 0, 2 ** 52, nvdimm_bus, e820_register_one);
    if (!rc) return 0;
  }
  nvdimm_bus_unregister(nvdimm_bus);
  busOf.delete(pdev);
  dev_err(dev, "failed to register legacy persistent memory ranges\n");
  return rc;
}

const e820_pmem_driver: platform_driver = {
  probe: e820_pmem_probe,
  remove: e820_pmem_remove,
  driver: { name: "e820_pmem" },
};

module_init(() => platform_driver_register(e820_pmem_driver));
module_exit(() => platform_driver_unregister(e820_pmem_driver));
