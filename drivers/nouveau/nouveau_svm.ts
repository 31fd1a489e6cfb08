// nouveau_svm.c (as merged in 5.3), on the 4.20/5.0 mirror API: a client's shared virtual memory.
// DRM_NOUVEAU_SVM_INIT gives the client a GPU address space (a VMM instance) that mirrors the
// process's (hmm_mirror_register()); invalidations of the CPU page tables unmap the GPU's.
// DRM_NOUVEAU_SVM_BIND migrates a range into VRAM. A GPU fault is serviced by faulting the
// range in through the mirror (hmm_vma_fault()), rewriting device-private entries to VRAM
// addresses (nouveau_dmem_convert_pfn()) and mapping the result into the GPU's page table.

import {
  find_vma, get_current, get_task_mm, hmm_mirror_register, hmm_mirror_unregister, hmm_vma_fault, hmm_vma_get_pfns, hmm_vma_range_done, mmdrop, mmgrab, mmput,
  EAGAIN, EBUSY, EFAULT, EINVAL, ENOSPC, PAGE_SIZE, VM_WRITE, type hmm_mirror, type hmm_range, type vm_area_struct,
} from "kemu/kernel";
import { nouveau_dmem_convert_pfn, nouveau_dmem_migrate_vma } from "./nouveau_dmem.ts";
import { nvkm_wr32 } from "./nouveau_device.ts";
import type { nouveau_cli, nouveau_drm, nouveau_svmm } from "./nouveau_drv.ts";
import {
  lower_32_bits, MMU_INST, MMU_INSTANCES, MMU_MAP, MMU_PTE_HI, MMU_PTE_LO, MMU_UNMAP, MMU_UNMAP_ALL, MMU_VA_HI, MMU_VA_LO, NV_MMU, PTE_APER_HOST,
  PTE_APER_VRAM, PTE_VALID, PTE_WRITE, upper_32_bits,
} from "./nouveau_reg.ts";
import {
  NOUVEAU_SVM_BIND_COMMAND__MIGRATE, NOUVEAU_SVM_BIND_COMMAND_MASK, NOUVEAU_SVM_BIND_TARGET__GPU_VRAM, NOUVEAU_SVM_BIND_TARGET_MASK,
  NOUVEAU_SVM_BIND_VALID_BITS, u64_get, u64_set,
} from "./nouveau_uapi.ts";

/** A range's pfns: address << 12 | V | W | VRAM (NVIF_VMM_PFNMAP_V0's layout). */
const PFN_V = 1;
const PFN_W = 2;
const PFN_VRAM = 8;
const PFN_SHIFT = 12;
/** HMM_PFN_ERROR and HMM_PFN_SPECIAL: V clear, so never a page; HMM_PFN_NONE: 0. */
const PFN_ERROR = 0xffe;
/** Pages a fault maps at most (nouveau_svm_fault()'s args.phys[]). */
export const SVM_FAULT_WINDOW = 256;

const PAGE_MASK = (v: number) => v - (v % PAGE_SIZE);

// ---- the GPU VMM ----------------------------------------------------------------------------

function vmm_select(drm: nouveau_drm, inst: number, va: number): void {
  nvkm_wr32(drm.device, NV_MMU + MMU_INST, inst);
  nvkm_wr32(drm.device, NV_MMU + MMU_VA_HI, upper_32_bits(va));
  nvkm_wr32(drm.device, NV_MMU + MMU_VA_LO, lower_32_bits(va));
}

/** nouveau_svmm_invalidate(): the GPU forgets [start, limit). */
function nouveau_svmm_invalidate(svmm: nouveau_svmm, start: number, limit: number): void {
  if (limit <= start) return;
  vmm_select(svmm.drm, svmm.inst, start);
  nvkm_wr32(svmm.drm.device, NV_MMU + MMU_UNMAP, (limit - start) / PAGE_SIZE);
}

// ---- SVM_INIT and the mirror ----------------------------------------------------------------

/** nouveau_svmm_sync_cpu_device_pagetables(): the CPU's page tables change in [start, end). */
function nouveau_svmm_sync(svmm: nouveau_svmm, update: { start: number; end: number; blockable: boolean }): number {
  let start = update.start;
  const limit = update.end;
  if (!update.blockable) return -EAGAIN;
  // The unmanaged window is not the mirror's.
  if (limit > svmm.unmanaged.start && start < svmm.unmanaged.limit) {
    if (start < svmm.unmanaged.start) nouveau_svmm_invalidate(svmm, start, svmm.unmanaged.start);
    start = svmm.unmanaged.limit;
  }
  nouveau_svmm_invalidate(svmm, start, limit);
  return 0;
}

/** DRM_NOUVEAU_SVM_INIT: struct drm_nouveau_svm_init { unmanaged_addr, unmanaged_size } */
export function nouveau_svmm_init(drm: nouveau_drm, cli: nouveau_cli, args: Uint8Array): number {
  // Check that SVM isn't already enabled for the client.
  if (cli.svmm) return -EBUSY;
  let inst = 0;
  while (inst < MMU_INSTANCES && drm.vmm_inst.has(inst)) inst++;
  if (inst === MMU_INSTANCES) return -ENOSPC;
  const mm = get_task_mm(get_current());
  if (!mm) return -EINVAL;
  const unmanaged_addr = u64_get(args, 0);
  const svmm: nouveau_svmm = {
    drm, mm, inst, dead: false, mirror: null,
    unmanaged: { start: unmanaged_addr, limit: unmanaged_addr + u64_get(args, 8) },
  };
  // Enable HMM mirroring of CPU address-space to VMM.
  const mirror: hmm_mirror = {
    ops: {
      sync_cpu_device_pagetables: (_m, update) => nouveau_svmm_sync(svmm, update as { start: number; end: number; blockable: boolean }),
      // The address space is going away: nothing of it may be used again.
      release: () => {
        svmm.dead = true;
        nvkm_wr32(drm.device, NV_MMU + MMU_INST, svmm.inst);
        nvkm_wr32(drm.device, NV_MMU + MMU_UNMAP_ALL, 1);
      },
    },
  };
  const ret = hmm_mirror_register(mirror, mm);
  if (ret === 0) {
    mmgrab(mm);
    svmm.mirror = mirror;
    drm.vmm_inst.add(inst);
    nvkm_wr32(drm.device, NV_MMU + MMU_INST, inst);
    nvkm_wr32(drm.device, NV_MMU + MMU_UNMAP_ALL, 1);
    cli.svmm = svmm;
  }
  mmput(mm);
  return ret;
}

/** nouveau_svmm_fini(): the client goes; so do its mirror and its GPU address space. */
export function nouveau_svmm_fini(cli: nouveau_cli): void {
  const svmm = cli.svmm;
  if (!svmm) return;
  cli.svmm = null;
  hmm_mirror_unregister(svmm.mirror as hmm_mirror);
  nvkm_wr32(svmm.drm.device, NV_MMU + MMU_INST, svmm.inst);
  nvkm_wr32(svmm.drm.device, NV_MMU + MMU_UNMAP_ALL, 1);
  svmm.drm.vmm_inst.delete(svmm.inst);
  mmdrop(svmm.mm);
}

// ---- SVM_BIND -------------------------------------------------------------------------------

/**
 * DRM_NOUVEAU_SVM_BIND: struct drm_nouveau_svm_bind { header, va_start, va_end, npages, stride,
 * result, reserved0, reserved1 }. Migration is a best effort: errors of single ranges are
 * ignored, and result stays 0 (nouveau's FIXME: the migrate API does not say how many moved).
 */
export function nouveau_svmm_bind(drm: nouveau_drm, cli: nouveau_cli, args: Uint8Array): number {
  const header = u64_get(args, 0);
  const va_start = PAGE_MASK(u64_get(args, 8));
  const va_end = PAGE_MASK(u64_get(args, 16));
  const npages = u64_get(args, 24);
  u64_set(args, 8, va_start);
  u64_set(args, 16, va_end);
  // Sanity check arguments
  if (u64_get(args, 48) || u64_get(args, 56)) return -EINVAL;
  if (header >= 2 ** NOUVEAU_SVM_BIND_VALID_BITS) return -EINVAL;
  if (va_start >= va_end) return -EINVAL;
  if (!npages) return -EINVAL;
  const cmd = header % 2 ** 8 & NOUVEAU_SVM_BIND_COMMAND_MASK;
  if (cmd !== NOUVEAU_SVM_BIND_COMMAND__MIGRATE) return -EINVAL;
  // FIXME (as nouveau's): only the GPU's VRAM is a target.
  const target = Math.floor(header / 2 ** 16) % 2 ** 32 & NOUVEAU_SVM_BIND_TARGET_MASK;
  if (target >>> 0 !== NOUVEAU_SVM_BIND_TARGET__GPU_VRAM) return -EINVAL;
  // FIXME (as nouveau's): no stride yet.
  if (u64_get(args, 32)) return -EINVAL;
  const size = npages * PAGE_SIZE;
  if (va_start + size <= va_start) return -EINVAL;
  if (va_start + size > va_end) return -EINVAL;

  const mm = get_task_mm(get_current());
  if (!mm) return -EINVAL;
  // SVM must be enabled for the client (822cab6150d3).
  if (!cli.svmm) {
    mmput(mm);
    return -EINVAL;
  }
  for (let addr = va_start, end = va_start + size; addr < end; ) {
    // find_vma_intersection(mm, addr, end)
    const vma = find_vma(mm, addr);
    if (!vma || vma.vm_start >= end) break;
    addr = Math.max(addr, vma.vm_start);
    const next = Math.min(vma.vm_end, end);
    // This is a best effort so we ignore errors
    nouveau_dmem_migrate_vma(drm, vma, addr, next);
    addr = next;
  }
  u64_set(args, 40, 0);
  mmput(mm);
  return 0;
}

// ---- GPU faults -----------------------------------------------------------------------------

function svm_range(vma: vm_area_struct, start: number, end: number, request: number): hmm_range {
  return {
    vma, start, end,
    pfns: new Float64Array((end - start) / PAGE_SIZE).fill(request),
    flags: [PFN_V, PFN_W, PFN_VRAM],
    values: [PFN_ERROR, 0, PFN_ERROR],
    pfn_shift: PFN_SHIFT,
  };
}

/** Does the CPU entry `v` (a snapshot's pfn) serve the access without a fault? VRAM does. */
function svm_pfn_ok(v: number, write: boolean): boolean {
  const f = v % 2 ** PFN_SHIFT;
  return (f & PFN_V) !== 0 && (!write || (f & PFN_W) !== 0);
}

/**
 * nouveau_svm_fault() for one replayable fault at `addr`: a window of the vma around it
 * (SVM_FAULT_WINDOW pages from the fault on) is snapshotted through the mirror; the run of
 * pages from the fault on that the CPU does not map (or not writably, for a write) is faulted
 * in with hmm_vma_fault(); then everything the window holds is mapped into the GPU's page
 * table, VRAM pages as VRAM. The snapshot comes first because 4.20/5.0's hmm_vma_fault()
 * faults every page from the first one that needs it to the end of its walk step, device
 * memory included, which would send the window's VRAM pages back to system memory.
 * 0, or -EFAULT when the address cannot be made valid (the fault is cancelled).
 */
export function nouveau_svm_fault(svmm: nouveau_svmm, addr: number, write: boolean): number {
  if (svmm.dead) return -EFAULT;
  let start = PAGE_MASK(addr);
  let limit = start + SVM_FAULT_WINDOW * PAGE_SIZE;
  if (start < svmm.unmanaged.limit) limit = Math.min(limit, svmm.unmanaged.start);
  else if (limit > svmm.unmanaged.start) start = Math.max(start, svmm.unmanaged.limit);
  if (start > addr || limit <= addr) return -EFAULT;
  const vma = find_vma(svmm.mm, start);
  if (!vma || vma.vm_start > addr) return -EFAULT;
  if (write && !(vma.vm_flags & VM_WRITE)) return -EFAULT;
  start = Math.max(start, vma.vm_start);
  limit = Math.min(limit, vma.vm_end);
  const at = (PAGE_MASK(addr) - start) / PAGE_SIZE;
  for (let tries = 0; tries < 8; tries++) {
    const range = svm_range(vma, start, limit, 0);
    if (hmm_vma_get_pfns(range)) {
      hmm_vma_range_done(range);
      return -EFAULT;
    }
    if (!hmm_vma_range_done(range)) continue;
    if (!svm_pfn_ok(range.pfns[at]!, write)) {
      let end = at;
      while (end < range.pfns.length && !svm_pfn_ok(range.pfns[end]!, write) && !(range.pfns[end]! % 2 ** PFN_SHIFT & PFN_VRAM)) end++;
      const fault = svm_range(vma, start + at * PAGE_SIZE, start + end * PAGE_SIZE, PFN_V | (write ? PFN_W : 0));
      const ret = hmm_vma_fault(fault, true);
      if (ret === -EBUSY) continue;
      if (ret) return -EFAULT;
      hmm_vma_range_done(fault);
      // The window again, with the pages in.
      continue;
    }
    nouveau_dmem_convert_pfn(svmm.drm, range);
    vmm_select(svmm.drm, svmm.inst, start);
    for (const v of range.pfns) {
      const flags = v % 2 ** PFN_SHIFT;
      const pte = flags & PFN_V ? PAGE_MASK(v) + PTE_VALID + (flags & PFN_W ? PTE_WRITE : 0) + (flags & PFN_VRAM ? PTE_APER_VRAM : PTE_APER_HOST) : 0;
      nvkm_wr32(svmm.drm.device, NV_MMU + MMU_PTE_HI, upper_32_bits(pte));
      nvkm_wr32(svmm.drm.device, NV_MMU + MMU_PTE_LO, lower_32_bits(pte));
      nvkm_wr32(svmm.drm.device, NV_MMU + MMU_MAP, 1);
    }
    // Device memory of another device is not mapped (nouveau_dmem_convert_pfn() dropped it).
    return svm_pfn_ok(range.pfns[at]!, write) ? 0 : -EFAULT;
  }
  return -EFAULT;
}
