// CONFIG_DEBUG_VM-style checks of user address spaces: every vma list is sorted and sane, every
// pte lies in a vma, each mm's rss counters say what its ptes say, and every page's _mapcount
// equals the number of ptes (over all mms) that map it. Read-only: it reports, never fixes.

import type { Kernel } from "../kernel.ts";
import { PAGES_PER_SECTION, PAGE_SIZE, ZONE_DEVICE, type Page } from "./memmap.ts";
import { MM_SWAPENTS, NR_MM_COUNTERS, PMD_SIZE, PTRS_PER_PTE, VM_MIXEDMAP, VM_PFNMAP, type VmArea } from "./mm_types.ts";
import { PG_slab } from "./page-flags.ts";
import { mm_counter } from "./memory.ts";
import { pte_devmap, pte_pfn, pte_present, pte_special, pte_to_swp_entry } from "./pgtable.ts";
import { device_private_entry_to_pfn, is_device_private_entry, is_hwpoison_entry, is_migration_entry, migration_entry_to_pfn, non_swap_entry } from "./swapops.ts";

const hex = (v: number) => "0x" + v.toString(16);

/** Problems with the vmas, ptes and rss counters of every mm, and with mapcounts. */
export function checkAddressSpaces(k: Kernel): string[] {
  const problems: string[] = [];
  const kmm = k.mm;
  const mapped = new Map<Page, number>();
  for (const mm of kmm.mms) {
    const who = `mm ${kmm.kptr(mm)}`;
    const vmas = mm.mmap;
    for (let i = 0; i < vmas.length; i++) {
      const v = vmas[i]!;
      if (v.vm_mm !== mm) problems.push(`${who}: vma ${hex(v.vm_start)} belongs to another mm`);
      if (v.vm_start % PAGE_SIZE || v.vm_end % PAGE_SIZE || v.vm_start >= v.vm_end) problems.push(`${who}: vma ${hex(v.vm_start)}-${hex(v.vm_end)} is malformed`);
      if (i > 0 && vmas[i - 1]!.vm_end > v.vm_start) problems.push(`${who}: vmas ${hex(vmas[i - 1]!.vm_start)} and ${hex(v.vm_start)} overlap or are out of order`);
      if (v.vm_file?.f_mapping && !v.vm_file.f_mapping.i_mmap.has(v)) problems.push(`${who}: vma ${hex(v.vm_start)} is missing from its file's i_mmap`);
    }
    const rss = new Array<number>(NR_MM_COUNTERS).fill(0);
    let vi = 0;
    const pmds = [...mm.pgd.keys()].sort((a, b) => a - b);
    for (const pi of pmds) {
      const table = mm.pgd.get(pi)!;
      for (let j = 0; j < PTRS_PER_PTE; j++) {
        const pte = table[j]!;
        if (pte === 0) continue;
        const addr = pi * PMD_SIZE + j * PAGE_SIZE;
        while (vi < vmas.length && vmas[vi]!.vm_end <= addr) vi++;
        const vma: VmArea | undefined = vmas[vi];
        if (!vma || vma.vm_start > addr) {
          problems.push(`${who}: pte ${hex(pte)} at ${hex(addr)} lies in no vma`);
          continue;
        }
        let page: Page = -1;
        let maps = true;
        if (pte_present(pte)) {
          const pfn = pte_pfn(pte);
          if (pte_special(pte)) {
            if (pfn === kmm.zeroPfn || vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) continue;
            if (kmm.memmap.pfn_valid(pfn) && kmm.is_device_public_page(pfn)) page = pfn;
            else if (pte_devmap(pte)) continue;
            else {
              problems.push(`${who}: special pte ${hex(pte)} at ${hex(addr)} maps nothing known`);
              continue;
            }
          } else if (!kmm.memmap.pfn_valid(pfn)) {
            problems.push(`${who}: pte ${hex(pte)} at ${hex(addr)} maps pfn ${hex(pfn)} without a struct page`);
            continue;
          } else {
            page = pfn;
          }
        } else {
          const entry = pte_to_swp_entry(pte);
          if (!non_swap_entry(entry)) {
            rss[MM_SWAPENTS]++;
            continue;
          }
          if (is_hwpoison_entry(entry)) continue;
          if (is_migration_entry(entry)) {
            // The page was unmapped into the entry: counted in rss, not in _mapcount.
            page = migration_entry_to_pfn(entry);
            maps = false;
          } else if (is_device_private_entry(entry)) {
            page = device_private_entry_to_pfn(entry);
            if (!kmm.memmap.pfn_valid(page) || kmm.page_zonenum(page) !== ZONE_DEVICE || !kmm.is_device_private_page(page)) {
              problems.push(`${who}: device-private entry at ${hex(addr)} points at pfn ${hex(page)}, which is not a device-private page`);
              continue;
            }
          } else {
            problems.push(`${who}: pte ${hex(pte)} at ${hex(addr)} is no entry kemu knows`);
            continue;
          }
        }
        rss[mm_counter(kmm, page)]++;
        if (!maps) continue;
        mapped.set(page, (mapped.get(page) ?? 0) + 1);
        if (kmm.page_ref_count(page) < 1) problems.push(`${who}: pte at ${hex(addr)} maps pfn ${hex(page)} at refcount ${kmm.page_ref_count(page)}`);
      }
    }
    for (let c = 0; c < NR_MM_COUNTERS; c++) {
      if (rss[c] !== mm.rss[c]) problems.push(`${who}: rss counter ${c} is ${mm.rss[c]} but the ptes say ${rss[c]}`);
    }
  }
  for (const [page, n] of mapped) {
    const sec = kmm.memmap.section(page);
    const i = page - sec.startPfn;
    const mapcount = sec.mapcount[i]! + 1;
    if (mapcount !== n) problems.push(`page: pfn ${hex(page)} has mapcount ${mapcount} but ${n} ptes map it`);
    if (sec.refcount[i]! < n) problems.push(`page: pfn ${hex(page)} has refcount ${sec.refcount[i]} below the ${n} ptes that map it`);
  }
  // No page may count mappings that no pte has.
  for (const range of kmm.memmap.ranges()) {
    for (const sec of kmm.memmap.materializedIn(range.startPfn, range.endPfn)) {
      for (let i = 0; i < PAGES_PER_SECTION; i++) {
        const mc = sec.mapcount[i]!;
        if (mc < 0 || sec.flags[i]! & (1 << PG_slab)) continue;
        const page = sec.startPfn + i;
        if (!mapped.has(page)) problems.push(`page: pfn ${hex(page)} has mapcount ${mc + 1} but no pte maps it`);
      }
    }
  }
  return problems;
}
