// The constants kemu/kernel exports: errno values, printk levels, GFP flags, resource flags
// and descriptors, memory types, page geometry.

import { ERRNO, MAX_ERRNO } from "../errno.ts";
import * as gfp from "../mm/gfp.ts";
import * as printk from "../printk.ts";
import * as resource from "../mm/resource.ts";
import * as memremap from "../mm/memremap.ts";
import * as percpu from "../mm/percpu-refcount.ts";
import * as platform from "../base/platform.ts";
import { PAGE_SHIFT, PAGE_SIZE, PA_SECTION_SIZE } from "../mm/memmap.ts";
import * as migrate from "../mm/migrate.ts";
import * as hmmMirror from "../mm/hmm-mirror.ts";
import * as memory from "../mm/memory.ts";
import * as mmTypes from "../mm/mm_types.ts";
import * as file from "../fs/file.ts";
import * as chrdev from "../fs/chrdev.ts";
import * as pci from "../base/pci.ts";
import * as pfnT from "../mm/pfn_t.ts";
import * as blk from "../block/blk-core.ts";
import * as genhd from "../block/genhd.ts";
import * as ndctl from "../acpi/ndctl.ts";

function pick(mod: Record<string, unknown>, re: RegExp): Record<string, number | string> {
  // Sorted: a module namespace lists its exports sorted, a transpiled one in source order.
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(mod).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) if (re.test(k) && (typeof v === "number" || typeof v === "string")) out[k] = v;
  return out;
}

export const KERNEL_CONSTANTS: Readonly<Record<string, number | string>> = Object.freeze({
  ...ERRNO,
  MAX_ERRNO,
  ...pick(printk, /^(KERN_[A-Z]+|LOGLEVEL_[A-Z]+)$/),
  ...pick(gfp, /^_*GFP_/),
  ...pick(resource, /^(IORESOURCE_|IORES_DESC_|REGION_)/),
  ...pick(memremap, /^MEMORY_DEVICE_/),
  ...pick(percpu, /^PERCPU_REF_INIT_/),
  ...pick(platform, /^PLATFORM_DEVID_/),
  ...pick(migrate, /^MIGRATE_PFN_/),
  ...pick(hmmMirror, /^HMM_(PFN_|UPDATE_)/),
  ...pick(memory, /^(VM_FAULT_|FAULT_FLAG_)/),
  ...pick(mmTypes, /^VM_(NONE|READ|WRITE|EXEC|SHARED|MAY[A-Z]+|GROWSDOWN|PFNMAP|LOCKED|IO|DONTCOPY|DONTEXPAND|ACCOUNT|NORESERVE|HUGETLB|MIXEDMAP|HUGEPAGE|NOHUGEPAGE|SPECIAL|WIPEONFORK|DONTDUMP)$/),
  ...pick(file, /^(O_RDONLY|O_WRONLY|O_RDWR|FMODE_READ|FMODE_WRITE)$/),
  ...pick(chrdev, /^(MISC_MAJOR|MISC_DYNAMIC_MINOR|ENOIOCTLCMD|O_ACCMODE)$/),
  ...pick(pci, /^(PCI_ANY_ID|PCI_VENDOR_ID_[A-Z_]+|PCI_BASE_CLASS_[A-Z]+|PCI_CLASS_[A-Z_]+|PCI_COMMAND_[A-Z]+|PCI_ROM_RESOURCE|DMA_(BIDIRECTIONAL|TO_DEVICE|FROM_DEVICE|NONE|ATTR_SKIP_CPU_SYNC))$/),
  ...pick(pfnT, /^PFN_(SG_CHAIN|SG_LAST|DEV|MAP|SPECIAL)$/),
  ...pick(blk, /^(REQ_OP_(READ|WRITE|FLUSH|BITS|MASK)|REQ_(SYNC|FUA|PREFLUSH)|BLK_STS_[A-Z]+|QUEUE_FLAG_[A-Z]+|SECTOR_SHIFT)$/),
  ...pick(genhd, /^(GENHD_FL_[A-Z_]+|BLOCK_EXT_MAJOR|DISK_NAME_LEN)$/),
  ...pick(ndctl, /^(ND_DEVICE_|ND_DRIVER_|MEMREMAP_|ARCH_MEMREMAP_PMEM)/),
  PAGE_SIZE,
  PAGE_SHIFT,
  PA_SECTION_SIZE,
  NULL: 0,
});
