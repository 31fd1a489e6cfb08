// memshim: a GPL module whose only job is to hand GPL-only functionality to modules that
// cannot use it themselves.
//
// hmm_devmem_add() is EXPORT_SYMBOL_GPL from 5.0, so a proprietary module cannot link to it.
// This module can (it is GPL), and it wraps the call in functions it exports with plain
// EXPORT_SYMBOL, which any module may use whatever its license. The loader checks the export
// class of the symbol a module links to, memshim_vram_add here, not what that function does
// with it: the arrangement loads. Whether it is allowed by the GPL is another matter (see the
// README): this is the well-known "GPL condom" grey area, shown here so that you can see what
// the loader does with it, not as a recommendation.

import {
  MODULE_LICENSE, MODULE_DESCRIPTION, module_init, module_exit, printk, KERN_INFO, EXPORT_SYMBOL, IS_ERR, PTR_ERR,
  ENOENT, ENOSPC, hmm_device_new, hmm_device_put, hmm_devmem_add, type hmm_device,
} from "kemu/kernel";

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("re-exports device-private memory (hmm_devmem_add) with EXPORT_SYMBOL");

/** What a caller gets back: plain data (kernel objects are handles only their owner may use). */
export interface memshim_vram {
  /** Identifies the memory for memshim_vram_remove(). */
  id: number;
  pfn_first: number;
  pfn_last: number;
}

const MAX_VRAM = 8;
/** The hmm_device owning each region handed out, by id (1..MAX_VRAM). */
const regions = new Map<number, hmm_device>();
let next_id = 1;

/** Device-private memory of `size` bytes for the caller: its pfn range, or a negative errno. */
export function memshim_vram_add(size: number): memshim_vram | number {
  if (regions.size >= MAX_VRAM) return -ENOSPC;
  const h = hmm_device_new(null);
  if (IS_ERR(h)) return PTR_ERR(h);
  const d = hmm_devmem_add({ free: () => {}, fault: () => 2 /* VM_FAULT_SIGBUS */ }, h.device, size);
  if (IS_ERR(d)) {
    hmm_device_put(h);
    return PTR_ERR(d);
  }
  const id = next_id++;
  regions.set(id, h);
  return { id, pfn_first: d.pfn_first, pfn_last: d.pfn_last };
}
EXPORT_SYMBOL(memshim_vram_add);

/** Give back what memshim_vram_add() returned (the device memory goes with its device). */
export function memshim_vram_remove(id: number): number {
  const h = regions.get(id);
  if (!h) return -ENOENT;
  regions.delete(id);
  hmm_device_put(h);
  return 0;
}
EXPORT_SYMBOL(memshim_vram_remove);

module_init(() => {
  printk(KERN_INFO + "memshim: ready\n");
  return 0;
});

module_exit(() => {
  // Its users are gone (the kernel does not unload a module in use); drop anything they left.
  for (const h of regions.values()) hmm_device_put(h);
  regions.clear();
});
