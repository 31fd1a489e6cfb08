// Buses and regions (drivers/nvdimm/bus.c, core.c, region_devs.c, region.c of 4.20/5.0):
// nvdimm_bus_register() makes "ndbusN" (bound to the nd_bus driver, whose remove takes every
// child with it); nvdimm_pmem_region_create() makes "regionN"; the nd_region driver's probe
// registers the region's namespace (a label-less ND_DEVICE_NAMESPACE_IO covering the region,
// as for NFIT ranges without DIMM mappings and e820 pmem) and the btt, pfn and dax seeds.

import {
  ND_DEVICE_REGION_PMEM, ND_DEVICE_NAMESPACE_IO, ND_DRIVER_REGION_PMEM, ND_DRIVER_REGION_BLK, ENOMEM, ENXIO, dev_err,
  type device, type device_driver, type nd_device_driver,
} from "kemu/kernel";
import {
  Ida, buses, nd_device_add, nd_device_del, nd_device_register, nd_ida, nd_modalias, nd_record, nd_synchronize, nvdimm_bus_type,
  region_ida, type NdChild, type NdNamespace, type NdRegion, type NvdimmBus,
} from "./nd-core.ts";
import { nd_seed_create } from "./pfn_devs.ts";
import type { nd_region_desc, nvdimm_bus_descriptor } from "./nd.ts";

// ---- the bus --------------------------------------------------------------------------------

/** nd_bus_driver: binds each ndbusN; its remove unregisters the bus's children. */
export const nd_bus_driver: device_driver = {
  name: "nd_bus",
  bus: nvdimm_bus_type,
  probe: () => 0,
  remove: (dev: device) => {
    const b = nd_record(dev);
    if (b?.kind !== "bus") return 0;
    nd_synchronize();
    for (const r of [...b.regions]) region_unregister(r);
    return 0;
  },
};

export function nvdimm_bus_register(parent: device | null, nd_desc: nvdimm_bus_descriptor): NvdimmBus | null {
  const b: NvdimmBus = { kind: "bus", id: nd_ida.get(), dev: null as never, name: "", desc: { provider_name: String(nd_desc?.provider_name ?? "") }, regions: [] };
  b.name = `ndbus${b.id}`;
  buses.push(b);
  const rc = nd_device_add(b, parent, "nvdimm_bus", "");
  if (rc) {
    buses.splice(buses.indexOf(b), 1);
    nd_ida.remove(b.id);
    return null;
  }
  return b;
}

export function nvdimm_bus_unregister(b: NvdimmBus): void {
  nd_device_del(b);
  buses.splice(buses.indexOf(b), 1);
  nd_ida.remove(b.id);
}

// ---- regions --------------------------------------------------------------------------------

/** nd_region_create(): "regionN" under the bus, registered from the async context. */
export function nvdimm_pmem_region_create(b: NvdimmBus, ndr_desc: nd_region_desc): NdRegion | null {
  const res = ndr_desc?.res;
  if (!res || typeof res.start !== "number" || typeof res.end !== "number" || res.end < res.start) return null;
  const r: NdRegion = {
    kind: "region", id: region_ida.get(), dev: null as never, name: "", bus: b,
    ndr_start: res.start, ndr_size: res.end - res.start + 1, ndr_mappings: 0, numa_node: ndr_desc.numa_node ?? -1, ro: false,
    ns_ida: new Ida(), btt_ida: new Ida(), pfn_ida: new Ida(), dax_ida: new Ida(), children: [],
  };
  r.name = `region${r.id}`;
  b.regions.push(r);
  nd_device_register(r, () => b.dev, "nd_pmem", nd_modalias(ND_DEVICE_REGION_PMEM), (rc) => {
    if (rc) region_forget(r);
  });
  return r;
}

function region_forget(r: NdRegion): void {
  const b = r.bus;
  const i = b.regions.indexOf(r);
  if (i >= 0) b.regions.splice(i, 1);
  region_ida.remove(r.id);
}

function region_unregister(r: NdRegion): void {
  nd_device_del(r);
  region_forget(r);
}

/** nd_region_probe(): the namespaces, then the btt, pfn and dax seeds. */
function nd_region_probe(dev: device): number {
  const r = nd_record(dev);
  if (r?.kind !== "region") return -ENXIO;
  // create_namespace_io(): one namespace over the whole region.
  const ns: NdNamespace = {
    kind: "namespace", dev: null, name: `namespace${r.id}.${r.ns_ida.get()}`, region: r,
    res: { start: r.ndr_start, end: r.ndr_start + r.ndr_size - 1, name: r.name },
    force_raw: false, claim_class: 0, claim: null, addr: 0, size: 0,
  };
  let err = 0;
  r.children.push(ns);
  nd_device_register(ns, () => r.dev, "nd_namespace_io", nd_modalias(ND_DEVICE_NAMESPACE_IO), (rc) => {
    if (!rc) return;
    child_forget(ns);
    err++;
    dev_err(r.dev, "failed to register %d namespace%s, continuing...\n", err, err === 1 ? "" : "s");
  });
  for (const kind of ["btt", "pfn", "dax"] as const) {
    const seed = nd_seed_create(r, kind);
    if (!seed) return -ENOMEM;
  }
  return 0;
}

/** nd_region_remove(): every child goes, then the seeds are forgotten. */
function nd_region_remove(dev: device): number {
  const r = nd_record(dev);
  if (r?.kind !== "region") return 0;
  for (const c of [...r.children]) child_unregister(c);
  return 0;
}

/** child_unregister() -> nd_device_unregister(dev, ND_SYNC) */
function child_unregister(c: NdChild): void {
  nd_synchronize();
  nd_device_del(c);
  child_forget(c);
}

/** The device's release: its id goes back, its claim is dropped (nd_detach_ndns). */
export function child_forget(c: NdChild): void {
  const r = c.region;
  const i = r.children.indexOf(c);
  if (i >= 0) r.children.splice(i, 1);
  if (c.kind === "namespace") return;
  if (c.ndns && c.ndns.claim === c) {
    c.ndns.claim = null;
    c.ndns.claim_class = 0;
  }
  c.ndns = null;
  (c.kind === "pfn" ? r.pfn_ida : c.kind === "dax" ? r.dax_ida : r.btt_ida).remove(c.id);
}

/** nd_region_driver (region.c) */
export const nd_region_driver: nd_device_driver = {
  drv: { name: "nd_region" },
  type: ND_DRIVER_REGION_PMEM | ND_DRIVER_REGION_BLK,
  probe: nd_region_probe,
  remove: nd_region_remove,
};
