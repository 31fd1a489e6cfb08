// What libnvdimm shares with the drivers on its bus (drivers/nvdimm/nd.h, include/linux/nd.h,
// pfn.h of 4.20/5.0): the shapes its exports take and return, as copies (kernel objects in
// them are handles of the caller's own), the info-block layout, and the "kemu/extern"
// declarations of its exports. Drivers `import type` from here; libnvdimm implements them.

import type { device, nd_device_driver, ERR_PTR } from "kemu/kernel";

/** struct nvdimm_bus_descriptor: what a bus provider (nfit, nd_e820) says about its bus. */
export interface nvdimm_bus_descriptor {
  provider_name: string;
}

/** struct nvdimm_bus, as a provider holds it. */
export interface nvdimm_bus {
  id: number;
  dev: device;
}

/** struct nd_region_desc: one persistent-memory range of a bus. */
export interface nd_region_desc {
  res: { start: number; end: number };
  numa_node?: number;
  /** ND_REGION_* flags */
  flags?: number;
}

/** struct nd_region, as its users see it. */
export interface nd_region {
  id: number;
  dev: device;
  ndr_start: number;
  ndr_size: number;
  ndr_mappings: number;
  ro: boolean;
}

/** enum nvdimm_claim_class */
export const NVDIMM_CCLASS_NONE = 0;
export const NVDIMM_CCLASS_BTT = 1;
export const NVDIMM_CCLASS_BTT2 = 2;
export const NVDIMM_CCLASS_PFN = 3;
export const NVDIMM_CCLASS_DAX = 4;
export const NVDIMM_CCLASS_UNKNOWN = 5;

/** struct nd_namespace_common */
export interface nd_namespace_common {
  dev: device;
  /** dev_name(&ndns->dev) */
  name: string;
  force_raw: boolean;
  claim_class: number;
  /** dev_name(ndns->claim), "" when unclaimed */
  claim: string;
  /** kemu: to_nd_region(ndns->dev.parent) (a kernel device's parent is not a module's to read) */
  nd_region: nd_region;
}

/** struct nd_namespace_io */
export interface nd_namespace_io {
  common: nd_namespace_common;
  res: { start: number; end: number; name: string };
}

/** struct nd_pfn_sb, parsed (pfn.h; little endian on the media, 4 KiB at offset 4 KiB) */
export interface nd_pfn_sb {
  signature: string;
  uuid: number[];
  parent_uuid: number[];
  flags: number;
  version_major: number;
  version_minor: number;
  dataoff: number;
  npfns: number;
  mode: number;
  start_pad: number;
  end_trunc: number;
  align: number;
}

/** enum nd_pfn_mode */
export const PFN_MODE_NONE = 0;
export const PFN_MODE_RAM = 1;
export const PFN_MODE_PMEM = 2;
export const PFN_SIG = "NVDIMM_PFN_INFO\0";
export const DAX_SIG = "NVDIMM_DAX_INFO\0";
export const PFN_SIG_LEN = 16;
export const SZ_4K = 4096;
export const SZ_8K = 8192;
export const SZ_128K = 128 << 10;
export const SZ_2M = 2 << 20;
/** sizeof(struct nd_pfn_sb) */
export const ND_PFN_SB_SIZE = 4096;

/** struct nd_pfn (and the nd_pfn inside an nd_dax) */
export interface nd_pfn {
  dev: device;
  /** dev_name(&nd_pfn->dev): "pfn0.1", "dax0.1" */
  name: string;
  id: number;
  mode: number;
  align: number;
  uuid: number[] | null;
  npfns: number;
  ndns: nd_namespace_common | null;
  pfn_sb: nd_pfn_sb | null;
}

/** struct nd_dax */
export interface nd_dax {
  nd_pfn: nd_pfn;
}

/** What nvdimm_setup_pfn() writes into the caller's struct dev_pagemap (and the info block). */
export interface nd_pfn_pagemap {
  res: { start: number; end: number; flags: number; desc: number };
  altmap: { base_pfn: number; reserve: number; free: number; align: number; alloc: number };
  altmap_valid: boolean;
  pfn_sb: nd_pfn_sb;
}

declare module "kemu/extern" {
  export function __nd_driver_register(nd_drv: nd_device_driver, owner: unknown, mod_name: string): number;
  export function nvdimm_bus_register(parent: device | null, nd_desc: nvdimm_bus_descriptor): nvdimm_bus | null;
  export function nvdimm_bus_unregister(nvdimm_bus: nvdimm_bus | null): void;
  export function nvdimm_pmem_region_create(nvdimm_bus: nvdimm_bus, ndr_desc: nd_region_desc): nd_region | null;
  export function nvdimm_namespace_common_probe(dev: device): nd_namespace_common | ERR_PTR;
  export function to_nd_namespace_io(dev: device): nd_namespace_io | null;
  export function devm_nsio_enable(dev: device, nsio: nd_namespace_io): number;
  export function devm_nsio_disable(dev: device, nsio: nd_namespace_io): void;
  export function nvdimm_read_bytes(ndns: nd_namespace_common, offset: number, size: number): Uint8Array | ERR_PTR;
  export function is_nd_pfn(dev: device): boolean;
  export function to_nd_pfn(dev: device): nd_pfn | null;
  export function is_nd_dax(dev: device): boolean;
  export function to_nd_dax(dev: device): nd_dax | null;
  export function is_nd_btt(dev: device): boolean;
  export function nd_pfn_probe(dev: device, ndns: nd_namespace_common): number;
  export function nd_dax_probe(dev: device, ndns: nd_namespace_common): number;
  export function nvdimm_setup_pfn(nd_pfn: nd_pfn): nd_pfn_pagemap | ERR_PTR;
  export function nvdimm_namespace_disk_name(ndns: nd_namespace_common): string;
  export function to_nd_region(dev: device): nd_region | null;
  export function nvdimm_flush(nd_region: nd_region): void;
  export function nvdimm_has_flush(nd_region: nd_region): number;
}
