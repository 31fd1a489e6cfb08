// gpumem: a closed-source GPU memory manager, the kind of out-of-tree driver the 5.0 export
// change broke.
//
// At load it registers its "VRAM" with the kernel as device-private memory (HMM): an
// hmm_device to own it, then hmm_devmem_add(), which finds a free physical range at the top of
// the address space and gives every page of it a struct page. It also has code to map BARs
// with devm_memremap_pages() (gpumem_map_bar below), so it needs that symbol too.
//
// Both hmm_devmem_add and devm_memremap_pages are EXPORT_SYMBOL in 4.19 and 4.20 and
// EXPORT_SYMBOL_GPL from 5.0 (see the README), so with MODULE_LICENSE("Proprietary"):
//   - 4.19, 4.20: it loads, tainting the kernel P (proprietary) and O (out-of-tree);
//   - 5.0: modpost refuses to build it, and a module built anyway is refused by the loader:
//     "gpumem: Unknown symbol devm_memremap_pages (err -2)", the same for hmm_devmem_add, and
//     for hmm_devmem_remove, which 5.0 no longer exports at all.
//
// Try it: npx kemu check examples/gpumem/gpumem.ts --kernel 4.20,5.0

import {
  MODULE_LICENSE, MODULE_DESCRIPTION, module_init, module_exit, printk, KERN_INFO, IS_ERR, PTR_ERR, ENODEV,
  hmm_device_new, hmm_device_put, hmm_devmem_add, hmm_devmem_remove, devm_memremap_pages,
  type hmm_device, type hmm_devmem, type hmm_devmem_ops,
} from "kemu/kernel";

MODULE_LICENSE("Proprietary");
MODULE_DESCRIPTION("a closed-source GPU memory manager");

/** How much device memory (VRAM) the "GPU" has: 256 MiB, 65536 pages. */
const VRAM_SIZE = 256 << 20;

/** VM_FAULT_SIGBUS: a CPU access to a page that lives in VRAM (no migration in this example). */
const VM_FAULT_SIGBUS = 0x0002;

let hdev: hmm_device | null = null;
let vram: hmm_devmem | null = null;

const vram_ops: hmm_devmem_ops = {
  // The last reference to a VRAM page went away: the page is free again for the GPU.
  free: () => {},
  // The CPU touched a VRAM page: a real driver migrates it back to system memory here.
  fault: () => VM_FAULT_SIGBUS,
};

module_init(() => {
  const h = hmm_device_new(null);
  if (IS_ERR(h)) return PTR_ERR(h);
  hdev = h;

  const d = hmm_devmem_add(vram_ops, h.device, VRAM_SIZE);
  if (IS_ERR(d)) {
    hmm_device_put(h);
    hdev = null;
    return PTR_ERR(d);
  }
  vram = d;
  printk(KERN_INFO + "gpumem: %lu pages of device memory at pfn %#lx\n", d.pfn_last - d.pfn_first, d.pfn_first);
  return 0;
});

module_exit(() => {
  // 4.19/4.20: give the device memory back before the device goes. Left to the device's
  // devres instead, HMM's teardown of that era WARNs twice (its actions remove themselves).
  if (vram) hmm_devmem_remove(vram);
  vram = null;
  if (hdev) hmm_device_put(hdev);
  hdev = null;
});

/**
 * Map a BAR of the GPU as ZONE_DEVICE memory. Not called at load: a dev_pagemap needs a live
 * percpu_ref, and percpu_ref_init() is EXPORT_SYMBOL_GPL in every version, so a proprietary
 * module cannot make one (see the README). It is exported so that the bundler keeps it (an
 * unreachable function would be tree-shaken away, and with it the module's need for
 * devm_memremap_pages), as a real driver's object file keeps every function it contains: the
 * module needs the symbol, and that is what the kernel checks at insmod.
 */
export function gpumem_map_bar(): number {
  if (!hdev || !vram) return -ENODEV;
  return devm_memremap_pages(hdev.device, {});
}
