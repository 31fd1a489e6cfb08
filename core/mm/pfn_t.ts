// pfn_t (include/linux/pfn_t.h, 4.20/5.0): a page frame number with flags saying what kind of
// memory it is. The kernel keeps the flags in bits 59-63 of a u64; a JS number holds 53 bits,
// so kemu keeps them below the pfn instead: pfn_t = pfn * PFN_FLAGS_SPAN + flags. The names
// and their meaning are the kernel's, the values are kemu's (drivers only combine and test them).

import { PAGE_SIZE } from "./memmap.ts";

export type pfn_t = number;

export const PFN_SG_CHAIN = 0x01;
export const PFN_SG_LAST = 0x02;
/** The pfn is device memory (no struct page unless PFN_MAP says so). */
export const PFN_DEV = 0x04;
/** The pfn has a struct page (ZONE_DEVICE memmap): with PFN_DEV, pfn_t_devmap(). */
export const PFN_MAP = 0x08;
export const PFN_SPECIAL = 0x10;
/** PFN_FLAGS_MASK */
export const PFN_FLAGS_MASK = 0x1f;
const SPAN = 0x20;

/** __pfn_to_pfn_t() */
export function __pfn_to_pfn_t(pfn: number, flags: number): pfn_t {
  return pfn * SPAN + (flags & PFN_FLAGS_MASK);
}
/** phys_to_pfn_t(): the pfn of a physical address. */
export function phys_to_pfn_t(addr: number, flags: number): pfn_t {
  return __pfn_to_pfn_t(Math.floor(addr / PAGE_SIZE), flags);
}
export function pfn_t_to_pfn(pfn: pfn_t): number {
  return Math.floor(pfn / SPAN);
}
export function pfn_t_flags(pfn: pfn_t): number {
  return pfn % SPAN;
}
/** pfn_t_devmap(): device memory with a struct page. */
export function pfn_t_devmap(pfn: pfn_t): boolean {
  return (pfn_t_flags(pfn) & (PFN_DEV | PFN_MAP)) === (PFN_DEV | PFN_MAP);
}
