// closed: a proprietary module that gets device-private memory through memshim's
// EXPORT_SYMBOL wrapper instead of calling the GPL-only hmm_devmem_add() itself.
//
// Build it against memshim's Module.symvers (its exports and their classes), load memshim
// first. modpost and the loader see only memshim_vram_add and memshim_vram_remove, both
// EXPORT_SYMBOL: under 5.0 this loads where examples/gpumem does not. See the README.

import { MODULE_LICENSE, MODULE_DESCRIPTION, module_init, module_exit, printk, KERN_INFO, KERN_ERR } from "kemu/kernel";
import { memshim_vram_add, memshim_vram_remove } from "kemu/extern";
import type { memshim_vram } from "./memshim.ts";

// What memshim exports, for the type checker (the build takes the symbols from its Module.symvers).
declare module "kemu/extern" {
  export function memshim_vram_add(size: number): memshim_vram | number;
  export function memshim_vram_remove(id: number): number;
}

MODULE_LICENSE("Proprietary");
MODULE_DESCRIPTION("a closed-source driver using GPL-only memory through a shim");

/** 128 MiB: hmm_devmem_add() rounds sizes up to a memory section (PA_SECTION_SIZE, 128 MiB). */
const VRAM_SIZE = 128 << 20;

let vram: memshim_vram | null = null;

module_init(() => {
  const r = memshim_vram_add(VRAM_SIZE);
  if (typeof r === "number") {
    printk(KERN_ERR + "closed: no device memory: %d\n", r);
    return r;
  }
  vram = r;
  printk(KERN_INFO + "closed: %lu pages of device memory at pfn %#lx, through memshim\n", r.pfn_last - r.pfn_first, r.pfn_first);
  return 0;
});

module_exit(() => {
  if (vram) memshim_vram_remove(vram.id);
  vram = null;
});
