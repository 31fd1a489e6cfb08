// Page-table entries of a user address space, with x86-64's bits (the tables themselves are
// in mm_types.ts: one 512-entry pte table per 2 MiB). A present pte is pfn * PAGE_SIZE plus
// its flag bits; a swap pte (an entry that is not present and not none: swap, migration,
// device-private) is swp_entry_to_pte().

import { PAGE_SIZE, type Page } from "./memmap.ts";

export type pte_t = number;

export const _PAGE_PRESENT = 0x001;
export const _PAGE_RW = 0x002;
export const _PAGE_USER = 0x004;
export const _PAGE_ACCESSED = 0x020;
export const _PAGE_DIRTY = 0x040;
/** _PAGE_BIT_SOFTW1: a pte without a struct page behind it (the zero page, pfn maps). */
export const _PAGE_SPECIAL = 0x200;
/** x86 keeps _PAGE_DEVMAP at bit 58 (SOFTW4); kemu's ptes have no high bits, so SOFTW2. */
export const _PAGE_DEVMAP = 0x400;
/** Marks a swap pte. x86 stores swap entries inverted in the high bits; kemu uses _PAGE_GLOBAL's
 *  bit, which no user pte has, so that no swap entry reads as pte_none. */
const _PAGE_SWP = 0x100;

const FLAGS = PAGE_SIZE; // the flag bits live below the pfn

export function pte_none(pte: pte_t): boolean {
  return pte === 0;
}
export function pte_present(pte: pte_t): boolean {
  return (pte & _PAGE_PRESENT) !== 0;
}
export function pte_pfn(pte: pte_t): Page {
  return Math.floor(pte / FLAGS);
}
function flags(pte: pte_t): number {
  return pte % FLAGS;
}
export function pte_write(pte: pte_t): boolean {
  return (flags(pte) & _PAGE_RW) !== 0;
}
export function pte_dirty(pte: pte_t): boolean {
  return (flags(pte) & _PAGE_DIRTY) !== 0;
}
export function pte_young(pte: pte_t): boolean {
  return (flags(pte) & _PAGE_ACCESSED) !== 0;
}
export function pte_special(pte: pte_t): boolean {
  return (flags(pte) & _PAGE_SPECIAL) !== 0;
}
export function pte_devmap(pte: pte_t): boolean {
  return (flags(pte) & _PAGE_DEVMAP) !== 0;
}

function setFlags(pte: pte_t, set: number, clear: number): pte_t {
  return pte - flags(pte) + ((flags(pte) | set) & ~clear);
}
export function pte_mkwrite(pte: pte_t): pte_t {
  return setFlags(pte, _PAGE_RW, 0);
}
export function pte_wrprotect(pte: pte_t): pte_t {
  return setFlags(pte, 0, _PAGE_RW);
}
export function pte_mkdirty(pte: pte_t): pte_t {
  return setFlags(pte, _PAGE_DIRTY, 0);
}
export function pte_mkclean(pte: pte_t): pte_t {
  return setFlags(pte, 0, _PAGE_DIRTY);
}
export function pte_mkyoung(pte: pte_t): pte_t {
  return setFlags(pte, _PAGE_ACCESSED, 0);
}
export function pte_mkold(pte: pte_t): pte_t {
  return setFlags(pte, 0, _PAGE_ACCESSED);
}
export function pte_mkspecial(pte: pte_t): pte_t {
  return setFlags(pte, _PAGE_SPECIAL, 0);
}
export function pte_mkdevmap(pte: pte_t): pte_t {
  return setFlags(pte, _PAGE_SPECIAL | _PAGE_DEVMAP, 0);
}

/** mk_pte() / pfn_pte(): the pte mapping `pfn` with protection `prot`. */
export function pfn_pte(pfn: Page, prot: number): pte_t {
  return pfn * FLAGS + (prot % FLAGS);
}

/** A swap entry (swp_entry_t) as a pte; `entry` must not be 0 in type and offset alike. */
export function swp_entry_to_pte(entry: number): pte_t {
  return entry * FLAGS + _PAGE_SWP;
}
/** Is `pte` a swap pte (not present, not none)? */
export function is_swap_pte(pte: pte_t): boolean {
  return !pte_none(pte) && !pte_present(pte);
}
export function pte_to_swp_entry(pte: pte_t): number {
  return Math.floor(pte / FLAGS);
}
