// Swap entries (include/linux/swapops.h, swap.h of 4.19-5.0): a type and an offset. Types at
// and above MAX_SWAPFILES are not swap at all: hardware poison, migration entries that stand
// for a page being migrated, and device-private entries that stand for a page in device
// memory the CPU cannot reach (spec mm-hmm R3.7).

import type { Page } from "./memmap.ts";

export type swp_entry_t = number;

export const MAX_SWAPFILES_SHIFT = 5;
export const SWP_DEVICE_NUM = 2;
export const SWP_MIGRATION_NUM = 2;
export const SWP_HWPOISON_NUM = 1;
export const MAX_SWAPFILES = (1 << MAX_SWAPFILES_SHIFT) - SWP_DEVICE_NUM - SWP_MIGRATION_NUM - SWP_HWPOISON_NUM;
export const SWP_HWPOISON = MAX_SWAPFILES;
export const SWP_MIGRATION_READ = MAX_SWAPFILES + SWP_HWPOISON_NUM;
export const SWP_MIGRATION_WRITE = MAX_SWAPFILES + SWP_HWPOISON_NUM + 1;
export const SWP_DEVICE_WRITE = MAX_SWAPFILES + SWP_HWPOISON_NUM + SWP_MIGRATION_NUM;
export const SWP_DEVICE_READ = MAX_SWAPFILES + SWP_HWPOISON_NUM + SWP_MIGRATION_NUM + 1;

const TYPES = 1 << MAX_SWAPFILES_SHIFT;

export function swp_entry(type: number, offset: number): swp_entry_t {
  return offset * TYPES + type;
}
export function swp_type(entry: swp_entry_t): number {
  return entry % TYPES;
}
export function swp_offset(entry: swp_entry_t): number {
  return Math.floor(entry / TYPES);
}
/** Not a real swap entry: poison, migration or device-private. */
export function non_swap_entry(entry: swp_entry_t): boolean {
  return swp_type(entry) >= MAX_SWAPFILES;
}

export function make_device_private_entry(page: Page, write: boolean): swp_entry_t {
  return swp_entry(write ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, page);
}
export function is_device_private_entry(entry: swp_entry_t): boolean {
  const t = swp_type(entry);
  return t === SWP_DEVICE_READ || t === SWP_DEVICE_WRITE;
}
export function is_write_device_private_entry(entry: swp_entry_t): boolean {
  return swp_type(entry) === SWP_DEVICE_WRITE;
}
/** make_device_private_entry_read(): downgrade to read (fork of a COW mapping, R3.10). */
export function make_device_private_entry_read(entry: swp_entry_t): swp_entry_t {
  return swp_entry(SWP_DEVICE_READ, swp_offset(entry));
}
export function device_private_entry_to_pfn(entry: swp_entry_t): Page {
  return swp_offset(entry);
}

export function make_migration_entry(page: Page, write: boolean): swp_entry_t {
  return swp_entry(write ? SWP_MIGRATION_WRITE : SWP_MIGRATION_READ, page);
}
export function is_migration_entry(entry: swp_entry_t): boolean {
  const t = swp_type(entry);
  return t === SWP_MIGRATION_READ || t === SWP_MIGRATION_WRITE;
}
export function is_write_migration_entry(entry: swp_entry_t): boolean {
  return swp_type(entry) === SWP_MIGRATION_WRITE;
}
/** make_migration_entry_read(): downgrade to read (fork of a COW mapping, mprotect). */
export function make_migration_entry_read(entry: swp_entry_t): swp_entry_t {
  return swp_entry(SWP_MIGRATION_READ, swp_offset(entry));
}
export function migration_entry_to_pfn(entry: swp_entry_t): Page {
  return swp_offset(entry);
}

export function is_hwpoison_entry(entry: swp_entry_t): boolean {
  return swp_type(entry) === SWP_HWPOISON;
}
