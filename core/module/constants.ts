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
  PAGE_SIZE,
  PAGE_SHIFT,
  PA_SECTION_SIZE,
  NULL: 0,
});
