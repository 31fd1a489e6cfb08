// nouveau_bo.c as far as device memory needs it: buffer objects placed in VRAM (TTM_PL_FLAG_VRAM)
// and pinned there. VRAM is handed out in 2 MiB blocks, first fit; a BO's offset is where the
// copy engine and the GPU MMU find its bytes.

import { ENOMEM } from "kemu/kernel";
import type { nouveau_drm } from "./nouveau_drv.ts";

const BLOCK = 2 << 20;

/** struct nouveau_bo: bo.offset and its size in VRAM, and whether it is pinned there. */
export interface nouveau_bo {
  offset: number;
  size: number;
  pin_refcnt: number;
}

/** The VRAM heap of a device: one flag per 2 MiB block. */
export function nouveau_vram_heap(ram_size: number): Uint8Array {
  return new Uint8Array(Math.floor(ram_size / BLOCK));
}

/** nouveau_bo_new(..., TTM_PL_FLAG_VRAM, ...): a BO of `size` bytes (2 MiB multiple), or -ENOMEM. */
export function nouveau_bo_new(drm: nouveau_drm, size: number): nouveau_bo | number {
  const heap = drm.vram_heap;
  const n = Math.ceil(size / BLOCK);
  for (let i = 0; i + n <= heap.length; i++) {
    let free = true;
    for (let j = i; j < i + n && free; j++) free = heap[j] === 0;
    if (!free) continue;
    heap.fill(1, i, i + n);
    return { offset: i * BLOCK, size: n * BLOCK, pin_refcnt: 0 };
  }
  return -ENOMEM;
}

export function nouveau_bo_pin(bo: nouveau_bo): number {
  bo.pin_refcnt++;
  return 0;
}

export function nouveau_bo_unpin(bo: nouveau_bo): void {
  if (bo.pin_refcnt > 0) bo.pin_refcnt--;
}

/** nouveau_bo_ref(NULL, &bo): the last reference gives the VRAM back. */
export function nouveau_bo_put(drm: nouveau_drm, bo: nouveau_bo): void {
  drm.vram_heap.fill(0, bo.offset / BLOCK, (bo.offset + bo.size) / BLOCK);
}
