// The reverse map (mm/rmap.c, 4.19-5.0): from a page to every pte that maps it.
//
// An anonymous page's ->mapping is the anon_vma of the vma that created it and ->index its
// linear page index. A vma is linked to its own anon_vma and, after fork, to every anon_vma of
// its ancestors (the anon_vma_chain), so walking the vmas linked to the page's anon_vma finds
// each process that may still map the page. A file page's ->mapping is the file's
// address_space, whose i_mmap lists every vma mapping the file. page->_mapcount counts ptes:
// -1 is unmapped.
//
// Simplified: an anon_vma's vmas are a set rather than an interval tree, and anon_vma_clone()
// never reuses an idle anon_vma (a memory optimisation of the kernel's, not observable).

import type { AddressSpace } from "../fs/file.ts";
import type { MM } from "./mm.ts";
import type { MemSection, Page } from "./memmap.ts";
import { PAGE_SIZE } from "./memmap.ts";
import type { MmStruct, VmArea } from "./mm_types.ts";
import { linear_page_index, VM_EXEC, VM_READ, VM_SOFTDIRTY, VM_WRITE } from "./mm_types.ts";
import { PG_swapbacked } from "./page-flags.ts";
import { is_swap_pte, pte_pfn, pte_present, pte_to_swp_entry } from "./pgtable.ts";
import { is_device_private_entry, is_migration_entry, swp_offset } from "./swapops.ts";

/** struct anon_vma */
export class AnonVma {
  /** PAGE_MAPPING_ANON: page->mapping points at an anon_vma, not an address_space. */
  readonly anon = true;
  /** The oldest ancestor: a page mapped non-exclusively uses the root (fork lineage). */
  readonly root: AnonVma;
  readonly parent: AnonVma;
  /** rb_root: the vmas chained to this anon_vma. */
  readonly vmas = new Set<VmArea>();
  constructor(parent: AnonVma | null) {
    this.parent = parent ?? this;
    this.root = parent ? parent.root : this;
  }
}

/** PageAnon() */
export function PageAnon(mm: MM, page: Page): boolean {
  const sec = mm.memmap.section(page);
  if (!sec.hasMapping()) return false;
  return sec.mapping[page - sec.startPfn] instanceof AnonVma;
}

/** page_rmapping(): the anon_vma or address_space of a page, or null. */
export function page_rmapping(mm: MM, page: Page): AnonVma | AddressSpace | null {
  const sec = mm.memmap.section(page);
  if (!sec.hasMapping()) return null;
  return (sec.mapping[page - sec.startPfn] as AnonVma | AddressSpace | null) ?? null;
}

/** page_mapcount() */
export function page_mapcount(mm: MM, page: Page): number {
  const sec = mm.memmap.section(page);
  return sec.mapcount[page - sec.startPfn]! + 1;
}

function link(vma: VmArea, av: AnonVma): void {
  vma.anon_vma_chain.push(av);
  av.vmas.add(vma);
}

/** anon_vma_compatible(): could a and b (a just below b) share an anon_vma? */
function anon_vma_compatible(a: VmArea, b: VmArea): boolean {
  return (
    a.vm_end === b.vm_start &&
    a.vm_file === b.vm_file &&
    !((a.vm_flags ^ b.vm_flags) & ~(VM_READ | VM_WRITE | VM_EXEC | VM_SOFTDIRTY)) &&
    b.vm_pgoff === a.vm_pgoff + (b.vm_start - a.vm_start) / PAGE_SIZE
  );
}

/** reusable_anon_vma(): `old`'s anon_vma if it was never shared by a fork. */
function reusable_anon_vma(old: VmArea, a: VmArea, b: VmArea): AnonVma | null {
  if (anon_vma_compatible(a, b) && old.anon_vma && old.anon_vma_chain.length === 1) return old.anon_vma;
  return null;
}

/** find_mergeable_anon_vma(): a neighbour's anon_vma, so that the two may merge later. */
function find_mergeable_anon_vma(vma: VmArea): AnonVma | null {
  const a = vma.vm_mm.mmap;
  const i = a.indexOf(vma);
  if (i < 0) return null;
  const next = a[i + 1];
  if (next) {
    const av = reusable_anon_vma(next, vma, next);
    if (av) return av;
  }
  const prev = a[i - 1];
  if (prev) return reusable_anon_vma(prev, prev, vma);
  return null;
}

/** anon_vma_prepare(): make sure the vma has an anon_vma before an anonymous page goes in.
 *  0, or -ENOMEM (never: anon_vmas are not slab objects here). */
export function anon_vma_prepare(vma: VmArea): number {
  if (vma.anon_vma) return 0;
  const av = find_mergeable_anon_vma(vma) ?? new AnonVma(null);
  vma.anon_vma = av;
  link(vma, av);
  return 0;
}

/** anon_vma_clone(): dst (a split-off part or a fork copy) is linked wherever src is. */
export function anon_vma_clone(dst: VmArea, src: VmArea): number {
  for (const av of src.anon_vma_chain) link(dst, av);
  return 0;
}

/** anon_vma_fork(): the child's vma joins the parent's chain and gets an anon_vma of its own. */
export function anon_vma_fork(vma: VmArea, pvma: VmArea): number {
  vma.anon_vma_chain = [];
  if (!pvma.anon_vma) return 0;
  vma.anon_vma = null;
  anon_vma_clone(vma, pvma);
  const av = new AnonVma(pvma.anon_vma);
  vma.anon_vma = av;
  link(vma, av);
  return 0;
}

/** unlink_anon_vmas(): the vma goes away. */
export function unlink_anon_vmas(vma: VmArea): void {
  for (const av of vma.anon_vma_chain) av.vmas.delete(vma);
  vma.anon_vma_chain = [];
}

/** __page_set_anon_rmap(): ->mapping and ->index of a page that becomes anonymous. */
function __page_set_anon_rmap(mm: MM, page: Page, vma: VmArea, address: number, exclusive: boolean): void {
  const sec = mm.memmap.section(page);
  __page_set_anon_rmap_at(sec, page - sec.startPfn, vma, address, exclusive);
}

/** __page_set_anon_rmap() of page `i` of `sec`. */
function __page_set_anon_rmap_at(sec: MemSection, i: number, vma: VmArea, address: number, exclusive: boolean): void {
  if (sec.hasMapping() && sec.mapping[i] instanceof AnonVma) return;
  const av = exclusive ? vma.anon_vma! : vma.anon_vma!.root;
  sec.mapping[i] = av;
  sec.index[i] = linear_page_index(vma, address);
}

/** page_add_new_anon_rmap(): a page just allocated for this vma gets its first pte. */
export function page_add_new_anon_rmap(mm: MM, page: Page, vma: VmArea, address: number): void {
  const sec = mm.memmap.section(page);
  const i = page - sec.startPfn;
  sec.flags[i] = sec.flags[i]! | (1 << PG_swapbacked);
  sec.mapcount[i] = 0;
  mm.vmstat.nr_anon_mapped++;
  __page_set_anon_rmap(mm, page, vma, address, true);
}

/** page_add_anon_rmap(): one more pte maps an existing anonymous page (swap-in, migration). */
export function page_add_anon_rmap(mm: MM, page: Page, vma: VmArea, address: number): void {
  const sec = mm.memmap.section(page);
  page_add_anon_rmap_at(mm, sec, page - sec.startPfn, vma, address);
}

/** page_add_anon_rmap() of page `i` of `sec`, for callers that looked the section up already. */
export function page_add_anon_rmap_at(mm: MM, sec: MemSection, i: number, vma: VmArea, address: number): void {
  if (++sec.mapcount[i]! === 0) {
    mm.vmstat.nr_anon_mapped++;
    __page_set_anon_rmap_at(sec, i, vma, address, false);
  }
}

/** page_dup_rmap(): fork copied a pte. */
export function page_dup_rmap(mm: MM, page: Page): void {
  const sec = mm.memmap.section(page);
  sec.mapcount[page - sec.startPfn]!++;
}

/** page_add_file_rmap() */
export function page_add_file_rmap(mm: MM, page: Page): void {
  const sec = mm.memmap.section(page);
  page_add_file_rmap_at(mm, sec, page - sec.startPfn);
}

/** page_add_file_rmap() of page `i` of `sec`. */
export function page_add_file_rmap_at(mm: MM, sec: MemSection, i: number): void {
  if (++sec.mapcount[i]! === 0) mm.vmstat.nr_file_mapped++;
}

/** page_remove_rmap(): a pte no longer maps the page. */
export function page_remove_rmap(mm: MM, page: Page): void {
  const sec = mm.memmap.section(page);
  page_remove_rmap_at(mm, sec, page - sec.startPfn);
}

/** page_remove_rmap() of page `i` of `sec`, for callers that looked the section up already. */
export function page_remove_rmap_at(mm: MM, sec: MemSection, i: number): void {
  const anon = sec.hasMapping() && sec.mapping[i] instanceof AnonVma;
  if (--sec.mapcount[i]! >= 0) return;
  if (anon) mm.vmstat.nr_anon_mapped--;
  else mm.vmstat.nr_file_mapped--;
}

/** page_move_anon_rmap(): a COW page that is ours alone moves to our own anon_vma. */
export function page_move_anon_rmap(mm: MM, page: Page, vma: VmArea): void {
  const sec = mm.memmap.section(page);
  sec.mapping[page - sec.startPfn] = vma.anon_vma;
}

/** vma_address(): where `page` (at page offset `pgoff`) would sit in `vma`, or -1 if outside. */
export function vma_address(pgoff: number, vma: VmArea): number {
  const addr = vma.vm_start + (pgoff - vma.vm_pgoff) * PAGE_SIZE;
  return addr >= vma.vm_start && addr < vma.vm_end ? addr : -1;
}

/**
 * rmap_walk(): call rmap_one(vma, address) for every vma that may map `page` (rmap_walk_anon
 * over the page's anon_vma, rmap_walk_file over the file's i_mmap), at the address the page
 * would have there. As in the kernel the callee checks the pte (page_vma_mapped()); returning
 * false stops the walk. A page without ->mapping has no reverse map.
 */
export function rmap_walk(mm: MM, page: Page, rmap_one: (vma: VmArea, address: number) => boolean | void): void {
  const mapping = page_rmapping(mm, page);
  if (mapping === null) return;
  const sec = mm.memmap.section(page);
  const pgoff = sec.hasIndex() ? sec.index[page - sec.startPfn]! : 0;
  const vmas = mapping instanceof AnonVma ? mapping.vmas : mapping.i_mmap;
  for (const vma of [...vmas]) {
    const addr = vma_address(pgoff, vma);
    if (addr < 0) continue;
    if (rmap_one(vma, addr) === false) return;
  }
}

/**
 * page_vma_mapped(): does the pte at `address` in `mm` map `page` — present, or as a migration
 * or device-private entry? (page_vma_mapped_walk() for one small page.)
 */
export function page_vma_mapped(mm: MmStruct, address: number, page: Page): boolean {
  const pte = mm.ptep_get(address);
  if (pte_present(pte)) return pte_pfn(pte) === page;
  if (!is_swap_pte(pte)) return false;
  const entry = pte_to_swp_entry(pte);
  return (is_migration_entry(entry) || is_device_private_entry(entry)) && swp_offset(entry) === page;
}
