// libnvdimm: the NVDIMM core (drivers/nvdimm/{core,bus,region_devs,region,namespace_devs,
// claim,pfn_devs,dax_devs,btt_devs}.c of 4.20/5.0, module libnvdimm.ko). It owns the "nd"
// bus: providers (nfit, nd_e820) register a bus and its persistent-memory regions; regions
// get their namespaces and btt/pfn/dax seeds; drivers (nd_pmem, dax_pmem) bind to namespaces
// and to the pfn/dax devices an info block on a namespace brings, through the exports below.
//
// Across modules go copies and handles (docs/drivers/nvdimm.md): a namespace, pfn or dax
// argument is the copy a caller got from libnvdimm, recognised by its device; where C writes
// through a pointer the caller passed, the function returns what it would have written.

import {
  MODULE_LICENSE, MODULE_AUTHOR, MODULE_DESCRIPTION, module_init, module_exit, EXPORT_SYMBOL, EXPORT_SYMBOL_GPL,
  EINVAL, ENODEV, ENXIO, bus_register, bus_unregister, driver_register, driver_unregister,
  type device, type nd_device_driver,
} from "kemu/kernel";
import {
  nd_record, nd_synchronize, nsioView, ndnsView, nvdimm_bus_type, ownDriverTypes, pfnView, regionView, type NdRegion,
} from "./nd-core.ts";
import {
  nd_bus_driver, nd_region_driver, nvdimm_bus_register as bus_register_impl, nvdimm_bus_unregister as bus_unregister_impl,
  nvdimm_pmem_region_create as region_create_impl,
} from "./region_devs.ts";
import {
  devm_nsio_disable as nsio_disable, devm_nsio_enable as nsio_enable, nd_bounce_exit, nd_bounce_init, ns_of,
  nvdimm_namespace_common_probe as common_probe, nvdimm_namespace_disk_name as disk_name, nvdimm_read_bytes as read_bytes,
} from "./namespace_devs.ts";
import { nd_dax_probe as dax_probe, nd_pfn_probe as pfn_probe, nvdimm_setup_pfn as setup_pfn, pfn_of } from "./pfn_devs.ts";
import type {
  nd_dax, nd_namespace_common, nd_namespace_io, nd_pfn, nd_pfn_pagemap, nd_region, nd_region_desc, nvdimm_bus, nvdimm_bus_descriptor,
} from "./nd.ts";

MODULE_LICENSE("GPL v2");
MODULE_AUTHOR("Intel Corporation");
MODULE_DESCRIPTION("kemu libnvdimm: the nd bus, regions, namespaces, pfn and dax devices");

// ---- bus.c ------------------------------------------------------------------------------

/**
 * __nd_driver_register(): a driver for the nd bus. Drivers of other modules reach it through
 * kemu/kernel's nd_driver_register(), which carries their callbacks (a function cannot cross
 * into this module); here it registers libnvdimm's own.
 */
export function __nd_driver_register(nd_drv: nd_device_driver, _owner: unknown, _mod_name: string): number {
  // pr_debug("driver type bitmask not set (%pf)\n") / pr_debug("%s ->probe() must be specified\n", mod_name)
  if (!nd_drv?.type) return -EINVAL;
  if (typeof nd_drv.probe !== "function") return -EINVAL;
  const drv = nd_drv.drv;
  drv.bus = nvdimm_bus_type;
  // nvdimm_bus_probe()/nvdimm_bus_remove() call the nd driver's own.
  drv.probe = nd_drv.probe;
  drv.remove = nd_drv.remove;
  ownDriverTypes.set(drv.name, nd_drv.type);
  return driver_register(drv);
}
EXPORT_SYMBOL(__nd_driver_register);

export function nvdimm_bus_register(parent: device | null, nd_desc: nvdimm_bus_descriptor): nvdimm_bus | null {
  const b = bus_register_impl(parent, nd_desc);
  return b ? { id: b.id, dev: b.dev } : null;
}
EXPORT_SYMBOL_GPL(nvdimm_bus_register);

export function nvdimm_bus_unregister(nvdimm_bus: nvdimm_bus | null): void {
  if (!nvdimm_bus) return;
  const b = nd_record(nvdimm_bus.dev);
  if (b?.kind === "bus") bus_unregister_impl(b);
}
EXPORT_SYMBOL_GPL(nvdimm_bus_unregister);

// ---- region_devs.c ----------------------------------------------------------------------

export function nvdimm_pmem_region_create(nvdimm_bus: nvdimm_bus, ndr_desc: nd_region_desc): nd_region | null {
  const b = nvdimm_bus ? nd_record(nvdimm_bus.dev) : undefined;
  if (b?.kind !== "bus") return null;
  const r = region_create_impl(b, ndr_desc);
  return r ? regionView(r) : null;
}
EXPORT_SYMBOL_GPL(nvdimm_pmem_region_create);

function region_of(v: nd_region | null | undefined): NdRegion | null {
  const r = v?.dev ? nd_record(v.dev) : undefined;
  return r?.kind === "region" ? r : null;
}

export function to_nd_region(dev: device): nd_region | null {
  const r = nd_record(dev);
  return r?.kind === "region" ? regionView(r) : null;
}
EXPORT_SYMBOL_GPL(to_nd_region);

/** nvdimm_flush(): wmb(); a write to each flush hint (a region without mappings has none). */
export function nvdimm_flush(nd_region: nd_region): void {
  region_of(nd_region);
}
EXPORT_SYMBOL_GPL(nvdimm_flush);

/** nvdimm_has_flush(): -ENXIO when the flushing capability is unknown (no DIMM mappings). */
export function nvdimm_has_flush(nd_region: nd_region): number {
  const r = region_of(nd_region);
  if (!r || r.ndr_mappings === 0) return -ENXIO;
  return 0;
}
EXPORT_SYMBOL_GPL(nvdimm_has_flush);

// ---- namespace_devs.c, claim.c ----------------------------------------------------------

export function nvdimm_namespace_common_probe(dev: device): nd_namespace_common | number {
  const ns = common_probe(dev);
  return typeof ns === "number" ? ns : ndnsView(ns);
}
EXPORT_SYMBOL(nvdimm_namespace_common_probe);

/** kemu: an inline container_of() in C; the struct lives here. */
export function to_nd_namespace_io(dev: device): nd_namespace_io | null {
  const ns = nd_record(dev);
  return ns?.kind === "namespace" ? nsioView(ns) : null;
}
EXPORT_SYMBOL(to_nd_namespace_io);

export function devm_nsio_enable(dev: device, nsio: nd_namespace_io): number {
  const ns = ns_of(nsio);
  return ns ? nsio_enable(dev, ns) : -ENODEV;
}
EXPORT_SYMBOL_GPL(devm_nsio_enable);

export function devm_nsio_disable(dev: device, nsio: nd_namespace_io): void {
  const ns = ns_of(nsio);
  if (ns) nsio_disable(dev, ns);
}
EXPORT_SYMBOL_GPL(devm_nsio_disable);

/** kemu: ndns->rw_bytes(READ) (an inline in C): the bytes, or a negative errno. */
export function nvdimm_read_bytes(ndns: nd_namespace_common, offset: number, size: number): Uint8Array | number {
  const ns = ns_of(ndns);
  return ns ? read_bytes(ns, offset, size) : -ENODEV;
}
EXPORT_SYMBOL_GPL(nvdimm_read_bytes);

export function nvdimm_namespace_disk_name(ndns: nd_namespace_common): string {
  const ns = ns_of(ndns);
  return ns ? disk_name(ns) : "";
}
EXPORT_SYMBOL(nvdimm_namespace_disk_name);

// ---- pfn_devs.c, dax_devs.c, btt_devs.c -------------------------------------------------

export function is_nd_pfn(dev: device): boolean {
  return pfn_of(dev, "pfn") !== null;
}
EXPORT_SYMBOL(is_nd_pfn);

export function to_nd_pfn(dev: device): nd_pfn | null {
  const p = pfn_of(dev, "pfn");
  return p ? pfnView(p) : null;
}
EXPORT_SYMBOL(to_nd_pfn);

export function is_nd_dax(dev: device): boolean {
  return pfn_of(dev, "dax") !== null;
}
EXPORT_SYMBOL(is_nd_dax);

export function to_nd_dax(dev: device): nd_dax | null {
  const p = pfn_of(dev, "dax");
  return p ? { nd_pfn: pfnView(p) } : null;
}
EXPORT_SYMBOL(to_nd_dax);

export function is_nd_btt(dev: device): boolean {
  return pfn_of(dev, "btt") !== null;
}
EXPORT_SYMBOL(is_nd_btt);

export function nd_pfn_probe(dev: device, ndns: nd_namespace_common): number {
  const ns = ns_of(ndns);
  return ns ? pfn_probe(dev, ns) : -ENODEV;
}
EXPORT_SYMBOL(nd_pfn_probe);

export function nd_dax_probe(dev: device, ndns: nd_namespace_common): number {
  const ns = ns_of(ndns);
  return ns ? dax_probe(dev, ns) : -ENODEV;
}
EXPORT_SYMBOL(nd_dax_probe);

/** The nd_pfn (of a pfn or dax device) a caller's copy stands for. */
export function nvdimm_setup_pfn(nd_pfn: nd_pfn): nd_pfn_pagemap | number {
  const r = nd_pfn?.dev ? nd_record(nd_pfn.dev) : undefined;
  if (!r || (r.kind !== "pfn" && r.kind !== "dax")) return -ENODEV;
  return setup_pfn(r);
}
EXPORT_SYMBOL_GPL(nvdimm_setup_pfn);

// ---- core.c: libnvdimm_init()/libnvdimm_exit() ------------------------------------------

module_init(() => {
  let rc = nd_bounce_init();
  if (rc) return rc;
  rc = bus_register(nvdimm_bus_type);
  if (rc) {
    nd_bounce_exit();
    return rc;
  }
  rc = driver_register(nd_bus_driver);
  if (!rc) rc = __nd_driver_register(nd_region_driver, null, "libnvdimm");
  if (rc) {
    driver_unregister(nd_bus_driver);
    bus_unregister(nvdimm_bus_type);
    nd_bounce_exit();
  }
  return rc;
});

module_exit(() => {
  nd_synchronize();
  driver_unregister(nd_region_driver.drv);
  driver_unregister(nd_bus_driver);
  bus_unregister(nvdimm_bus_type);
  nd_bounce_exit();
});
