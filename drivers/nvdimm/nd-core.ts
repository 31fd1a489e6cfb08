// libnvdimm's core state (drivers/nvdimm/core.c, bus.c, nd-core.h of 4.20/5.0): the "nd" bus
// type and its match, the devices on it (ndbus, region, namespace, btt, pfn, dax) keyed by
// the kernel's device, the ida allocators behind their names, and nd_device_register(): as in
// the kernel, devices are registered from a deferred context (the kernel's nd_async_domain;
// kemu: the system workqueue), in the order they were queued, and nd_synchronize() waits for
// that to finish.

import {
  ND_DEVICE_DAX_PMEM, ND_DEVICE_NAMESPACE_IO, ND_DEVICE_REGION_PMEM,
  IS_ERR, device_register, device_unregister, schedule_work, flush_scheduled_work,
  type bus_type, type device, type device_driver_info, type device_desc, type work_struct,
} from "kemu/kernel";
import type { nd_namespace_io, nd_pfn, nd_pfn_sb, nvdimm_bus_descriptor } from "./nd.ts";

/** ND_DEVICE_MODALIAS_FMT "nd:t%d" */
export function nd_modalias(type: number): string {
  return `nd:t${type}`;
}

export interface NvdimmBus {
  kind: "bus";
  /** device_unregister() was called. */
  gone?: boolean;
  id: number;
  dev: device;
  name: string;
  desc: nvdimm_bus_descriptor;
  regions: NdRegion[];
}

export interface NdRegion {
  kind: "region";
  /** device_unregister() was called. */
  gone?: boolean;
  id: number;
  dev: device;
  name: string;
  bus: NvdimmBus;
  ndr_start: number;
  ndr_size: number;
  ndr_mappings: number;
  numa_node: number;
  ro: boolean;
  ns_ida: Ida;
  btt_ida: Ida;
  pfn_ida: Ida;
  dax_ida: Ida;
  /** Children, in registration order (device_for_each_child). */
  children: NdChild[];
}

export interface NdNamespace {
  kind: "namespace";
  /** device_unregister() was called. */
  gone?: boolean;
  dev: device | null;
  name: string;
  region: NdRegion;
  res: { start: number; end: number; name: string };
  force_raw: boolean;
  claim_class: number;
  /** ndns->claim: the pfn/dax/btt device that claimed it */
  claim: NdPfn | null;
  /** nsio->addr while enabled, else 0; nsio->size */
  addr: number;
  size: number;
}

export interface NdPfn {
  kind: "pfn" | "dax" | "btt";
  /** device_unregister() was called. */
  gone?: boolean;
  dev: device | null;
  name: string;
  id: number;
  region: NdRegion;
  mode: number;
  align: number;
  uuid: number[] | null;
  npfns: number;
  ndns: NdNamespace | null;
  pfn_sb: nd_pfn_sb | null;
}

export type NdChild = NdNamespace | NdPfn;
export type NdRecord = NvdimmBus | NdRegion | NdChild;

/** ida: the lowest free id. */
export class Ida {
  readonly #used = new Set<number>();
  get(): number {
    let id = 0;
    while (this.#used.has(id)) id++;
    this.#used.add(id);
    return id;
  }
  remove(id: number): void {
    this.#used.delete(id);
  }
}

/** nvdimm_bus_type: bus "nd". */
export const nvdimm_bus_type: bus_type = { name: "nd", match: nvdimm_bus_match };
/** nd_ida (buses) and region_ida */
export const nd_ida = new Ida();
export const region_ida = new Ida();
/** Every device libnvdimm registered, by the kernel's device. */
export const records = new Map<device, NdRecord>();
export const buses: NvdimmBus[] = [];
/** The types libnvdimm's own drivers drive (registered by __nd_driver_register() here). */
export const ownDriverTypes = new Map<string, number>();

/** to_nd_device_type(): what a driver's type bitmask is tested against. */
export function to_nd_device_type(r: NdRecord): number {
  switch (r.kind) {
    case "region":
      return ND_DEVICE_REGION_PMEM;
    case "dax":
      return ND_DEVICE_DAX_PMEM;
    case "namespace":
    case "pfn":
    case "btt":
      // is_nd_region(dev->parent): nd_region_to_nstype() of a region without mappings
      return ND_DEVICE_NAMESPACE_IO;
    default:
      return 0;
  }
}

/** nvdimm_bus_match(): the bus device goes to nd_bus; others by the driver's type bitmask. */
function nvdimm_bus_match(dev: device, drv: device_driver_info): number {
  const r = nd_record(dev);
  if (!r) return 0;
  if (r.kind === "bus") return drv.name === "nd_bus" ? 1 : 0;
  const type = drv.type || ownDriverTypes.get(drv.name) || 0;
  return type & (1 << to_nd_device_type(r)) ? 1 : 0;
}

/** A device of `r`, registered now: the kernel's device, or an errno. */
export function nd_device_add(r: NdRecord, parent: device | null, type: string, modalias: string): number {
  const desc: device_desc = { init_name: r.name, parent, bus: nvdimm_bus_type, type, modalias };
  const prev = pendingRecord;
  pendingRecord = r;
  let dev: device | number;
  try {
    dev = device_register(desc);
  } finally {
    pendingRecord = prev;
  }
  if (IS_ERR(dev)) return dev;
  r.dev = dev;
  records.set(dev, r);
  return 0;
}

/**
 * The record being registered: device_register() probes before it returns the device, so
 * match() and probe() of a device not yet in `records` find it here.
 */
let pendingRecord: NdRecord | null = null;

/** The record of a device, or the one being registered right now. */
export function nd_record(dev: device): NdRecord | undefined {
  return records.get(dev) ?? (pendingRecord && !pendingRecord.dev ? adopt(dev) : undefined);
}

function adopt(dev: device): NdRecord {
  const r = pendingRecord!;
  r.dev = dev;
  records.set(dev, r);
  return r;
}

/**
 * device_unregister() of a record's device. The record stays in `records`: the driver's
 * remove (nd_bus's, nd_region's, nd_pmem's) runs when the call does, which may be after this
 * returns (a void kernel call with plain arguments is queued until the module next reaches
 * the kernel), and still finds it.
 */
export function nd_device_del(r: NdRecord): void {
  if (!r.dev || r.gone) return;
  r.gone = true;
  device_unregister(r.dev);
}

// ---- nd_device_register(): deferred registration (nd_async_device_register) ----------------

interface Pending {
  r: NdRecord;
  parent: () => device | null;
  type: string;
  modalias: string;
  done?: (rc: number) => void;
}
const queue: Pending[] = [];
const nd_async_work: work_struct = { func: nd_async_run };

function nd_async_run(): void {
  while (queue.length) {
    const p = queue.shift()!;
    const rc = nd_device_add(p.r, p.parent(), p.type, p.modalias);
    p.done?.(rc);
  }
}

/** __nd_device_register(): registered later, in order. */
export function nd_device_register(r: NdRecord, parent: () => device | null, type: string, modalias: string, done?: (rc: number) => void): void {
  queue.push({ r, parent, type, modalias, done });
  schedule_work(nd_async_work);
}

/** nd_synchronize(): every queued registration has run. */
export function nd_synchronize(): void {
  flush_scheduled_work();
}

/** A namespace's public shape (nd_namespace_common). */
export function ndnsView(ns: NdNamespace) {
  const region = ns.region;
  return {
    dev: ns.dev!,
    name: ns.name,
    force_raw: ns.force_raw,
    claim_class: ns.claim_class,
    claim: ns.claim ? ns.claim.name : "",
    nd_region: regionView(region),
  };
}

export function nsioView(ns: NdNamespace): nd_namespace_io {
  return { common: ndnsView(ns), res: { ...ns.res } };
}

export function regionView(r: NdRegion) {
  return { id: r.id, dev: r.dev, ndr_start: r.ndr_start, ndr_size: r.ndr_size, ndr_mappings: r.ndr_mappings, ro: r.ro };
}

export function pfnView(p: NdPfn): nd_pfn {
  return {
    dev: p.dev!, name: p.name, id: p.id, mode: p.mode, align: p.align, uuid: p.uuid, npfns: p.npfns,
    ndns: p.ndns ? ndnsView(p.ndns) : null, pfn_sb: p.pfn_sb ? { ...p.pfn_sb } : null,
  };
}
