// nouveau_drv.h: the driver's identity, its per-device and per-client structs, and NV_PRINTK,
// which prefixes each line with the client's name ("DRM") after dev_printk's "nouveau BDF: ".

import { dev_info, type device, type hmm_devmem, type kbuf, type miscdevice, type mm_struct, type pci_dev } from "kemu/kernel";
import type { nvkm_device } from "./nouveau_device.ts";
import type { nouveau_bo } from "./nouveau_bo.ts";

export const DRIVER_NAME = "nouveau";
export const DRIVER_DATE = "20120801";
export const DRIVER_MAJOR = 1;
export const DRIVER_MINOR = 3;
export const DRIVER_PATCHLEVEL = 1;

/** struct nouveau_dmem_chunk: 2 MiB of device memory, 512 pages, backed by a VRAM BO once used. */
export interface nouveau_dmem_chunk {
  /** The descriptor's kzalloc()ed memory. */
  buf: kbuf;
  bo: nouveau_bo | null;
  pfn_first: number;
  callocated: number;
  /** One bit per page, set while the page is handed out. */
  bitmap: Uint32Array;
}

/** struct nouveau_dmem */
export interface nouveau_dmem {
  devmem: hmm_devmem;
  /** Chunks with pages in use and pages free; all pages in use; none in use. Head first. */
  chunk_free: nouveau_dmem_chunk[];
  chunk_full: nouveau_dmem_chunk[];
  chunk_empty: nouveau_dmem_chunk[];
  /** Every chunk, by its index in the device memory. */
  chunks: nouveau_dmem_chunk[];
}

/** struct nouveau_svmm: a client's SVM address space, mirrored into a GPU VMM instance. */
export interface nouveau_svmm {
  drm: nouveau_drm;
  mm: mm_struct;
  /** The GPU MMU instance its page table lives in. */
  inst: number;
  unmanaged: { start: number; limit: number };
  /** The address space went away (hmm_mirror_ops.release). */
  dead: boolean;
  mirror: unknown;
}

/** struct nouveau_cli: one open file of the device node. */
export interface nouveau_cli {
  name: string;
  drm: nouveau_drm;
  svmm: nouveau_svmm | null;
}

/** struct nouveau_drm */
export interface nouveau_drm {
  pdev: pci_dev;
  dev: device;
  device: nvkm_device;
  /** The drm minor (card0 = 0; the render node is renderD(128 + minor)). */
  minor: number;
  misc: miscdevice | null;
  dmem: nouveau_dmem | null;
  /** VRAM in 2 MiB blocks, true where a BO lives. */
  vram_heap: Uint8Array;
  /** GPU VMM instances in use. */
  vmm_inst: Set<number>;
}

/** NV_PRINTK(l, &drm->client, f, a...): dev_l(dev, "%s: " f, "DRM", a...) */
export function NV_INFO(drm: nouveau_drm, fmt: string, ...args: unknown[]): void {
  dev_info(drm.dev, "%s: " + fmt, "DRM", ...args);
}
