// nouveau_dmem.c as nouveau had it in 5.1/5.2, on the 4.20/5.0 hmm_devmem API: the GPU's VRAM
// registered as device-private memory with hmm_devmem_add(), handed out a page at a time from
// 2 MiB chunks (512 pages, a bitmap, a count) whose VRAM is allocated (a pinned BO) on first
// use; migration of process memory into VRAM (migrate_vma() in batches, the copy engine
// copying host -> VRAM), and back on a CPU fault (hmm_devmem_ops.fault, VRAM -> a new system
// page). A page whose last user goes comes back through hmm_devmem_ops.free.
//
// While any VRAM page is handed out the module holds a reference on itself: those pages would
// fault into code that is gone.

import {
  __free_page, __module_get, alloc_page_vma, dma_map_page_attrs, dma_mapping_error, dma_unmap_page, get_page, hmm_devmem_add, hmm_pfn_to_page,
  is_device_private_page, IS_ERR, kfree, kzalloc, lock_page, migrate_pfn, migrate_pfn_to_page, migrate_vma, module_put, put_page, symbol_get, symbol_put, THIS_MODULE,
  unlock_page, WARN, WARN_ON, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, EINVAL, ENODEV, ENOMEM, GFP_HIGHUSER, GFP_KERNEL, MIGRATE_PFN_DEVICE,
  MIGRATE_PFN_ERROR, MIGRATE_PFN_LOCKED, MIGRATE_PFN_MIGRATE, PAGE_SIZE, VM_FAULT_SIGBUS, type hmm_devmem_ops, type hmm_range,
  type migrate_vma_ops, type page, type vm_area_struct,
} from "kemu/kernel";
import { nouveau_bo_new, nouveau_bo_pin, nouveau_bo_put, nouveau_bo_unpin } from "./nouveau_bo.ts";
import { nvkm_is_pascal_or_later, nvkm_rd32, nvkm_wr32 } from "./nouveau_device.ts";
import { NV_INFO, type nouveau_dmem, type nouveau_dmem_chunk, type nouveau_drm } from "./nouveau_drv.ts";
import {
  CE_ERRORS, CE_LAUNCH_DMA, CE_LINE_COUNT, CE_LINE_LENGTH_IN, CE_OFFSET_IN_LOWER, CE_OFFSET_IN_UPPER, CE_OFFSET_OUT_LOWER, CE_OFFSET_OUT_UPPER,
  CE_PITCH_IN, CE_PITCH_OUT, CE_SET_DST_PHYS_MODE, CE_SET_SRC_PHYS_MODE, lower_32_bits, NV_CE, upper_32_bits,
} from "./nouveau_reg.ts";

const DMEM_CHUNK_SIZE = 2 << 20;
const DMEM_CHUNK_NPAGES = DMEM_CHUNK_SIZE / PAGE_SIZE;
/** sizeof(struct nouveau_dmem_chunk) on x86-64: list, bo, drm, pfn_first, callocated, bitmap, lock. */
const CHUNK_STRUCT_SIZE = 120;
/** SG_MAX_SINGLE_ALLOC (PAGE_SIZE / sizeof(struct scatterlist)): pages per migrate_vma() call. */
const SG_MAX_SINGLE_ALLOC = PAGE_SIZE / 32;

/** enum nouveau_aper */
export const NOUVEAU_APER_VIRT = 0;
export const NOUVEAU_APER_VRAM = 1;
export const NOUVEAU_APER_HOST = 2;

/** Every device with registered device memory (the ops find theirs by page). */
const drms: nouveau_drm[] = [];
/** VRAM pages handed out, on every device: while there are any, the module is in use. */
let pages_in_use = 0;

function drm_of_page(page: page): nouveau_drm | null {
  return drms.find((d) => d.dmem !== null && page >= d.dmem.devmem.pfn_first && page < d.dmem.devmem.pfn_last) ?? null;
}

function chunk_of_page(dmem: nouveau_dmem, page: page): nouveau_dmem_chunk {
  return dmem.chunks[Math.floor((page - dmem.devmem.pfn_first) / DMEM_CHUNK_NPAGES)]!;
}

/** Where a device page's bytes are in VRAM. */
function vram_addr(dmem: nouveau_dmem, page: page): number {
  const chunk = chunk_of_page(dmem, page);
  return (page - chunk.pfn_first) * PAGE_SIZE + chunk.bo!.offset;
}

/** Keep the chunk on the list its count says: none, some or all of its pages in use. */
function chunk_file(dmem: nouveau_dmem, chunk: nouveau_dmem_chunk): void {
  for (const list of [dmem.chunk_free, dmem.chunk_full, dmem.chunk_empty]) {
    const i = list.indexOf(chunk);
    if (i >= 0) list.splice(i, 1);
  }
  if (chunk.callocated === DMEM_CHUNK_NPAGES) dmem.chunk_full.unshift(chunk);
  else if (chunk.callocated > 0) dmem.chunk_free.unshift(chunk);
  // An empty chunk that has its VRAM stays at the head, to be used first.
  else if (chunk.bo) dmem.chunk_empty.unshift(chunk);
  else dmem.chunk_empty.push(chunk);
}

// ---- the copy engine ------------------------------------------------------------------------

/** nvc0b5_migrate_copy(): the copy class's methods for npages pages, physical addressing. */
function nvc0b5_migrate_copy(drm: nouveau_drm, npages: number, dst_aper: number, dst_addr: number, src_aper: number, src_addr: number): number {
  const ce = (mthd: number, data: number) => nvkm_wr32(drm.device, NV_CE + mthd, data);
  let launch_dma = (1 << 9) /* MULTI_LINE_ENABLE. */ | (1 << 8) /* DST_MEMORY_LAYOUT_PITCH. */ | (1 << 7) /* SRC_MEMORY_LAYOUT_PITCH. */ |
    (1 << 2) /* FLUSH_ENABLE_TRUE. */ | (2 << 0) /* DATA_TRANSFER_TYPE_NON_PIPELINED. */;
  if (src_aper !== NOUVEAU_APER_VIRT) {
    if (src_aper === NOUVEAU_APER_VRAM) ce(CE_SET_SRC_PHYS_MODE, 0);
    else if (src_aper === NOUVEAU_APER_HOST) ce(CE_SET_SRC_PHYS_MODE, 1);
    else return -EINVAL;
    launch_dma |= 0x00001000; /* SRC_TYPE_PHYSICAL. */
  }
  if (dst_aper !== NOUVEAU_APER_VIRT) {
    if (dst_aper === NOUVEAU_APER_VRAM) ce(CE_SET_DST_PHYS_MODE, 0);
    else if (dst_aper === NOUVEAU_APER_HOST) ce(CE_SET_DST_PHYS_MODE, 1);
    else return -EINVAL;
    launch_dma |= 0x00002000; /* DST_TYPE_PHYSICAL. */
  }
  ce(CE_OFFSET_IN_UPPER, upper_32_bits(src_addr));
  ce(CE_OFFSET_IN_LOWER, lower_32_bits(src_addr));
  ce(CE_OFFSET_OUT_UPPER, upper_32_bits(dst_addr));
  ce(CE_OFFSET_OUT_LOWER, lower_32_bits(dst_addr));
  ce(CE_PITCH_IN, PAGE_SIZE);
  ce(CE_PITCH_OUT, PAGE_SIZE);
  ce(CE_LINE_LENGTH_IN, PAGE_SIZE);
  ce(CE_LINE_COUNT, npages);
  ce(CE_LAUNCH_DMA, launch_dma);
  return 0;
}

/** nouveau_fence_new() + nouveau_fence_wait() on the copy channel: the launches that failed. */
function nouveau_dmem_fence_wait(drm: nouveau_drm): number {
  return nvkm_rd32(drm.device, NV_CE + CE_ERRORS);
}

// ---- allocation -----------------------------------------------------------------------------

/** nouveau_dmem_chunk_alloc(): give the first chunk without VRAM a pinned 2 MiB BO. */
function nouveau_dmem_chunk_alloc(drm: nouveau_drm): number {
  const dmem = drm.dmem;
  if (!dmem) return -EINVAL;
  const chunk = dmem.chunk_empty[0];
  if (!chunk || chunk.bo) return -ENOMEM;
  const bo = nouveau_bo_new(drm, DMEM_CHUNK_SIZE);
  if (typeof bo === "number") return bo;
  const ret = nouveau_bo_pin(bo);
  if (ret) {
    nouveau_bo_put(drm, bo);
    return ret;
  }
  chunk.bo = bo;
  chunk.bitmap.fill(0);
  chunk_file(dmem, chunk);
  return 0;
}

/** nouveau_dmem_chunk_first_free_locked() */
function nouveau_dmem_chunk_first_free_locked(dmem: nouveau_dmem): nouveau_dmem_chunk | null {
  if (dmem.chunk_free.length) return dmem.chunk_free[0]!;
  const chunk = dmem.chunk_empty[0];
  return chunk?.bo ? chunk : null;
}

/** nouveau_dmem_pages_alloc() for one page: its pfn, or a negative errno. */
function nouveau_dmem_pages_alloc(drm: nouveau_drm): number {
  const dmem = drm.dmem!;
  for (;;) {
    const chunk = nouveau_dmem_chunk_first_free_locked(dmem);
    if (!chunk) {
      const ret = nouveau_dmem_chunk_alloc(drm);
      if (ret) return ret;
      continue;
    }
    let i = 0;
    while (i < DMEM_CHUNK_NPAGES && chunk.bitmap[i >> 5]! & (1 << (i & 31))) i++;
    chunk.bitmap[i >> 5]! |= 1 << (i & 31);
    chunk.callocated++;
    chunk_file(dmem, chunk);
    return chunk.pfn_first + i;
  }
}

/** nouveau_dmem_page_alloc_locked(): a VRAM page, referenced and locked, or null. */
function nouveau_dmem_page_alloc_locked(drm: nouveau_drm): page | null {
  const pfn = nouveau_dmem_pages_alloc(drm);
  if (pfn < 0) return null;
  if (pages_in_use++ === 0) __module_get(THIS_MODULE);
  get_page(pfn);
  lock_page(pfn);
  return pfn;
}

/** nouveau_dmem_page_free_locked(): the last reference goes, and hmm_devmem_ops.free follows. */
function nouveau_dmem_page_free_locked(page: page): void {
  unlock_page(page);
  put_page(page);
}

// ---- hmm_devmem_ops -------------------------------------------------------------------------

/** The last user of a VRAM page let it go: its bit is clear again. */
function nouveau_dmem_free(_devmem: unknown, page: page): void {
  const drm = drm_of_page(page);
  if (!drm) return;
  const dmem = drm.dmem!;
  const chunk = chunk_of_page(dmem, page);
  const idx = page - chunk.pfn_first;
  chunk.bitmap[idx >> 5]! &= ~(1 << (idx & 31));
  WARN_ON(!chunk.callocated);
  if (chunk.callocated) chunk.callocated--;
  // FIXME (as nouveau's): a chunk that empties keeps its VRAM; nothing reclaims it.
  chunk_file(dmem, chunk);
  if (--pages_in_use === 0) module_put(THIS_MODULE);
}

/** The private data of a migrate_vma() either way: the device, and the DMA mappings of the copies. */
interface dmem_migrate {
  drm: nouveau_drm;
  dma: number[];
}

/** The page migrate_vma() collected at src[i], or null when it is not to be migrated. */
function migrating_page(src: Float64Array, i: number): page | null {
  const spage = migrate_pfn_to_page(src[i]!);
  return spage !== null && src[i]! & MIGRATE_PFN_MIGRATE ? spage : null;
}

/** nouveau_dmem_{fault,migrate}_finalize_and_map(): the copies are done, their DMA mappings go. */
function nouveau_dmem_unmap_dma(migrate: dmem_migrate): void {
  while (migrate.dma.length) dma_unmap_page(migrate.drm.dev, migrate.dma.pop()!, PAGE_SIZE, DMA_BIDIRECTIONAL);
}

const fault_migrate_ops: migrate_vma_ops = {
  /** nouveau_dmem_fault_alloc_and_copy(): VRAM -> a new system page for each page. */
  alloc_and_copy(vma, src, dst, start, end, priv) {
    const fault = priv as dmem_migrate;
    const drm = fault.drm;
    const dev = drm.dev;
    const dmem = drm.dmem!;
    let npages = 0;
    for (let addr = start, i = 0; addr < end; addr += PAGE_SIZE, i++) {
      dst[i] = 0;
      if (migrating_page(src, i) === null) continue;
      const dpage = alloc_page_vma(GFP_HIGHUSER, vma, addr);
      if (dpage === null) {
        dst[i] = MIGRATE_PFN_ERROR;
        continue;
      }
      lock_page(dpage);
      dst[i] = migrate_pfn(dpage) + MIGRATE_PFN_LOCKED;
      npages++;
    }
    if (!npages) return;
    const failed = (i: number, dpage: page) => {
      dst[i] = MIGRATE_PFN_ERROR;
      unlock_page(dpage);
      __free_page(dpage);
    };
    for (let addr = start, i = 0; addr < end; addr += PAGE_SIZE, i++) {
      const dpage = migrate_pfn_to_page(dst[i]!);
      if (dpage === null || dst[i] === MIGRATE_PFN_ERROR) continue;
      const spage = migrating_page(src, i);
      if (spage === null) {
        failed(i, dpage);
        continue;
      }
      const dma = dma_map_page_attrs(dev, dpage, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC);
      if (dma_mapping_error(dev, dma)) {
        failed(i, dpage);
        continue;
      }
      fault.dma.push(dma);
      if (nvc0b5_migrate_copy(drm, 1, NOUVEAU_APER_HOST, dma, NOUVEAU_APER_VRAM, vram_addr(dmem, spage))) failed(i, dpage);
    }
    // The fence: a copy that did not complete leaves garbage, so no page of the batch is used.
    if (nouveau_dmem_fence_wait(drm)) {
      for (let i = 0; i < (end - start) / PAGE_SIZE; i++) {
        const dpage = migrate_pfn_to_page(dst[i]!);
        if (dpage !== null && dst[i] !== MIGRATE_PFN_ERROR) failed(i, dpage);
      }
    }
  },
  /** nouveau_dmem_fault_finalize_and_map() */
  finalize_and_map(_vma, _src, _dst, _start, _end, priv) {
    nouveau_dmem_unmap_dma(priv as dmem_migrate);
  },
};

const fault_src = new Float64Array(1);
const fault_dst = new Float64Array(1);

/** nouveau_dmem_fault(): the CPU touched a page in VRAM; migrate that one page back. */
function nouveau_dmem_fault(_devmem: unknown, vma: vm_area_struct | null, addr: number, page: page): number {
  const drm = drm_of_page(page);
  if (!drm || !vma) return VM_FAULT_SIGBUS;
  const fault: dmem_migrate = { drm, dma: [] };
  fault_src[0] = fault_dst[0] = 0;
  // FIXME (as nouveau's): more than the one page would likely be touched next.
  const ret = migrate_vma(fault_migrate_ops, vma, addr, addr + PAGE_SIZE, fault_src, fault_dst, fault);
  if (ret) return VM_FAULT_SIGBUS;
  if (fault_dst[0] === MIGRATE_PFN_ERROR) return VM_FAULT_SIGBUS;
  return 0;
}

const nouveau_dmem_devmem_ops: hmm_devmem_ops = {
  free: nouveau_dmem_free,
  fault: nouveau_dmem_fault,
};

// ---- init and fini --------------------------------------------------------------------------

/** nouveau_dmem_init(): register all of VRAM (in 2 MiB chunks) as device memory. */
export function nouveau_dmem_init(drm: nouveau_drm): void {
  // This only make sense on PASCAL or newer
  if (!nvkm_is_pascal_or_later(drm.device)) return;
  const size = Math.ceil(drm.device.ram_size / DMEM_CHUNK_SIZE) * DMEM_CHUNK_SIZE;
  // FIXME (as nouveau's): all of VRAM is registered; there is no policy for how much.
  const devmem = hmm_devmem_add(nouveau_dmem_devmem_ops, drm.dev, size);
  if (IS_ERR(devmem)) return;
  const dmem: nouveau_dmem = { devmem, chunk_free: [], chunk_full: [], chunk_empty: [], chunks: [] };
  drm.dmem = dmem;
  drms.push(drm);
  for (let i = 0; i < size / DMEM_CHUNK_SIZE; i++) {
    const buf = kzalloc(CHUNK_STRUCT_SIZE, GFP_KERNEL);
    if (!buf) {
      nouveau_dmem_fini(drm);
      return;
    }
    const chunk: nouveau_dmem_chunk = { buf, bo: null, pfn_first: devmem.pfn_first + i * DMEM_CHUNK_NPAGES, callocated: 0, bitmap: new Uint32Array(DMEM_CHUNK_NPAGES / 32) };
    dmem.chunks.push(chunk);
    dmem.chunk_empty.push(chunk);
  }
  NV_INFO(drm, "DMEM: registered %ldMB of device memory\n", size / 2 ** 20);
}

/** nouveau_dmem_fini(): chunks still in use are a bug (WARN_ON); the empty ones give their VRAM back. */
export function nouveau_dmem_fini(drm: nouveau_drm): void {
  const dmem = drm.dmem;
  if (!dmem) return;
  WARN_ON(dmem.chunk_free.length > 0);
  WARN_ON(dmem.chunk_full.length > 0);
  for (const chunk of dmem.chunk_empty) {
    if (chunk.bo) {
      nouveau_bo_unpin(chunk.bo);
      nouveau_bo_put(drm, chunk.bo);
      chunk.bo = null;
    }
    kfree(chunk.buf);
  }
  dmem.chunk_empty.length = 0;
  // 4.19/4.20: the device memory must be removed before the device unbinds (its devres
  // actions would not find themselves there). 5.0 has no hmm_devmem_remove(): the memory
  // goes with the device's devres.
  const remove = symbol_get("hmm_devmem_remove");
  if (remove) {
    remove(dmem.devmem);
    symbol_put("hmm_devmem_remove");
  }
  drm.dmem = null;
  drms.splice(drms.indexOf(drm), 1);
}

// ---- migration to VRAM ----------------------------------------------------------------------

const migrate_ops: migrate_vma_ops = {
  /** nouveau_dmem_migrate_alloc_and_copy(): a VRAM page for each page, and the copy host -> VRAM. */
  alloc_and_copy(_vma, src, dst, start, end, priv) {
    const migrate = priv as dmem_migrate;
    const drm = migrate.drm;
    const dev = drm.dev;
    const dmem = drm.dmem!;
    let npages = 0;
    for (let addr = start, i = 0; addr < end; addr += PAGE_SIZE, i++) {
      dst[i] = 0;
      if (migrating_page(src, i) === null) continue;
      const dpage = nouveau_dmem_page_alloc_locked(drm);
      if (dpage === null) continue;
      dst[i] = migrate_pfn(dpage) + MIGRATE_PFN_LOCKED + MIGRATE_PFN_DEVICE;
      npages++;
    }
    if (!npages) return;
    const failed = (i: number, dpage: page) => {
      nouveau_dmem_page_free_locked(dpage);
      dst[i] = 0;
    };
    for (let addr = start, i = 0; addr < end; addr += PAGE_SIZE, i++) {
      const dpage = migrate_pfn_to_page(dst[i]!);
      if (dpage === null || dst[i] === MIGRATE_PFN_ERROR) continue;
      const dst_addr = vram_addr(dmem, dpage);
      const spage = migrating_page(src, i);
      if (spage === null) {
        failed(i, dpage);
        continue;
      }
      const dma = dma_map_page_attrs(dev, spage, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC);
      if (dma_mapping_error(dev, dma)) {
        failed(i, dpage);
        continue;
      }
      migrate.dma.push(dma);
      if (nvc0b5_migrate_copy(drm, 1, NOUVEAU_APER_VRAM, dst_addr, NOUVEAU_APER_HOST, dma)) failed(i, dpage);
    }
    // The fence: pages whose copy failed stay in system memory.
    if (nouveau_dmem_fence_wait(drm)) {
      for (let i = 0; i < (end - start) / PAGE_SIZE; i++) {
        const dpage = migrate_pfn_to_page(dst[i]!);
        if (dpage !== null) failed(i, dpage);
      }
    }
  },
  /** nouveau_dmem_migrate_finalize_and_map(): unmap the DMA; FIXME (as nouveau's): the GPU page
   *  table is not updated here, the GPU faults the pages in. */
  finalize_and_map(_vma, _src, _dst, _start, _end, priv) {
    nouveau_dmem_unmap_dma(priv as dmem_migrate);
  },
};

const mig_src = new Float64Array(SG_MAX_SINGLE_ALLOC);
const mig_dst = new Float64Array(SG_MAX_SINGLE_ALLOC);

/** nouveau_dmem_migrate_vma(): [start, end) of one vma into VRAM, SG_MAX_SINGLE_ALLOC pages at a time. */
export function nouveau_dmem_migrate_vma(drm: nouveau_drm, vma: vm_area_struct, start: number, end: number): number {
  if (!drm.dmem) return -ENODEV;
  const npages = (end - start) / PAGE_SIZE;
  const migrate: dmem_migrate = { drm, dma: [] };
  for (let i = 0, c = 0; i < npages; i += c) {
    c = Math.min(SG_MAX_SINGLE_ALLOC, npages - i);
    const next = start + c * PAGE_SIZE;
    const ret = migrate_vma(migrate_ops, vma, start, next, mig_src, mig_dst, migrate);
    if (ret) return ret;
    start = next;
  }
  return 0;
}

// ---- the GPU's view of device memory --------------------------------------------------------

/** nouveau_dmem_page(): is this device-private page one of this device's? */
export function nouveau_dmem_page(drm: nouveau_drm, page: page): boolean {
  if (!is_device_private_page(page)) return false;
  const dmem = drm.dmem;
  return dmem !== null && page >= dmem.devmem.pfn_first && page < dmem.devmem.pfn_last;
}

/**
 * nouveau_dmem_convert_pfn(): rewrite the device-private entries of a snapshot (flags[2] is the
 * range's HMM_PFN_DEVICE_PRIVATE) from device-private pfns to VRAM addresses; device memory of
 * another device is dropped with a WARN.
 */
export function nouveau_dmem_convert_pfn(drm: nouveau_drm, range: hmm_range): void {
  const flags = range.flags as number[];
  const shift = 2 ** range.pfn_shift;
  for (let i = 0; i < range.pfns.length; i++) {
    const v = range.pfns[i]!;
    const page = hmm_pfn_to_page(range, v);
    if (page === null) continue;
    if (!((v % shift) & flags[2]!)) continue;
    if (!nouveau_dmem_page(drm, page)) {
      WARN(true, "Some unknown device memory !\n");
      range.pfns[i] = 0;
      continue;
    }
    const addr = vram_addr(drm.dmem!, page) / PAGE_SIZE;
    range.pfns[i] = (v % shift) + addr * shift;
  }
}

