// The buddy page allocator for System RAM (mm/page_alloc.c): memblock at boot, zones
// DMA/DMA32/Normal, free areas of orders 0..MAX_ORDER-1, split on allocation, merge on free.
//
// Free lists are stacks of head pfns with lazy deletion: a block leaves a list by losing its
// PageBuddy mark, and stale stack entries are skipped. Whole MAX_ORDER blocks that nobody has
// touched since boot stay in `untouched` runs, so a 24 GiB machine boots without touching its
// memmap; they count in nr_free and are carved off (highest address first, as the kernel's
// LIFO lists hand them out after boot) when the lists run dry.

import { __GFP_ZERO, gfp_zone } from "./gfp.ts";
import { findRange } from "../lib/ranges.ts";
import {
  ALIGN, Memmap, MemSection, PAGES_PER_SECTION, ZONE_DEVICE, ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NAMES, ZONE_NORMAL,
  type MemmapRange, type Page,
} from "./memmap.ts";
import {
  PAGE_FLAGS_CHECK_AT_FREE, PAGE_FLAGS_CHECK_AT_PREP, PAGE_TYPE_BASE, PG_buddy, PG_hwpoison, PG_reserved,
} from "./page-flags.ts";

export const MAX_ORDER = 11;
export const MAX_ORDER_NR_PAGES = 1 << (MAX_ORDER - 1);
/** x86-64 pageblock_order (HUGETLB_PAGE_ORDER) */
export const pageblock_order = 9;
/** MAX_DMA_PFN and MAX_DMA32_PFN on x86-64 */
export const MAX_DMA_PFN = (16 << 20) >> 12;
export const MAX_DMA32_PFN = 1 << 20;

/** A half-open pfn range [start, end). */
export interface PfnRange {
  start: number;
  end: number;
}

export class FreeArea {
  /** Head pfns, newest last (list_add puts new blocks at the head: we pop from the end). */
  readonly list: Page[] = [];
  nr_free = 0;
}

export class Zone {
  readonly idx: number;
  readonly name: string;
  zone_start_pfn: number;
  /** zone_end_pfn(): zone_start_pfn + spanned_pages */
  zone_end_pfn: number;
  present_pages = 0;
  managed_pages = 0;
  readonly free_area: FreeArea[] = Array.from({ length: MAX_ORDER }, () => new FreeArea());
  /** Runs of free MAX_ORDER blocks never touched since boot, ascending, block aligned. */
  readonly untouched: PfnRange[] = [];
  /** NR_FREE_PAGES */
  nr_free_pages = 0;
  /** _watermark[WMARK_MIN/LOW/HIGH], in pages */
  readonly watermark = { min: 0, low: 0, high: 0 };

  constructor(idx: number, start: number, end: number) {
    this.idx = idx;
    this.name = ZONE_NAMES[idx]!;
    this.zone_start_pfn = start;
    this.zone_end_pfn = end;
  }

  /** resize_zone_range(): grow the span to cover [start, end). */
  span(start: number, end: number): void {
    if (this.zone_end_pfn <= this.zone_start_pfn) {
      this.zone_start_pfn = start;
      this.zone_end_pfn = end;
    } else {
      this.zone_start_pfn = Math.min(this.zone_start_pfn, start);
      this.zone_end_pfn = Math.max(this.zone_end_pfn, end);
    }
  }

  get spanned_pages(): number {
    return this.zone_end_pfn - this.zone_start_pfn;
  }
  populated(): boolean {
    return this.present_pages > 0;
  }
}

/** What the allocator reports through the kernel (bad_page(), warn_alloc(), clear_page()). */
export interface PageAllocEnv {
  badPage(page: Page, reason: string, badFlags: number): void;
  allocFailure(gfp: number, order: number): void;
  /** __alloc_pages_nodemask(): WARN_ON_ONCE(!(gfp & __GFP_NOWARN)) for order >= MAX_ORDER. */
  orderTooBig(gfp: number): void;
  clearPage(page: Page, nr: number): void;
}

export interface MemblockLayout {
  /** memblock.memory: usable RAM */
  memory: PfnRange[];
  /** memblock.reserved: kernel image, memmap, page 0 ... */
  reserved: PfnRange[];
}

function inRanges(ranges: readonly PfnRange[], pfn: number): boolean {
  return findRange(ranges, pfn, (r) => r.start, (r) => r.end) !== undefined;
}

/** [a] minus every range of [cuts] (both sorted). */
export function subtractRanges(a: readonly PfnRange[], cuts: readonly PfnRange[]): PfnRange[] {
  const out: PfnRange[] = [];
  for (const r of a) {
    let start = r.start;
    for (const c of cuts) {
      if (c.end <= start || c.start >= r.end) continue;
      if (c.start > start) out.push({ start, end: c.start });
      start = Math.max(start, c.end);
    }
    if (start < r.end) out.push({ start, end: r.end });
  }
  return out;
}

/** Sort and merge overlapping or adjacent ranges. */
export function mergeRanges(ranges: readonly PfnRange[]): PfnRange[] {
  const sorted = [...ranges].sort((x, y) => x.start - y.start);
  const out: PfnRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ start: r.start, end: r.end });
  }
  return out;
}

// Page-type helpers on a section's arrays (page_type lives in _mapcount).
function PageBuddy(sec: MemSection, i: number): boolean {
  return (sec.mapcount[i]! & (PAGE_TYPE_BASE | PG_buddy)) === PAGE_TYPE_BASE;
}
function set_page_order(sec: MemSection, i: number, order: number): void {
  sec.private[i] = order;
  sec.mapcount[i] = sec.mapcount[i]! & ~PG_buddy;
}
function rmv_page_order(sec: MemSection, i: number): void {
  sec.mapcount[i] = sec.mapcount[i]! | PG_buddy;
  sec.private[i] = 0;
}

export class PageAllocator {
  readonly memmap: Memmap;
  readonly zones: Zone[];
  readonly memblock: MemblockLayout;
  readonly #env: PageAllocEnv;
  /** max_pfn: one past the highest RAM pfn */
  readonly max_pfn: number;
  /** min_low_pfn-ish: the first RAM pfn */
  readonly min_pfn: number;
  /** totalram_pages */
  totalram_pages = 0;

  constructor(memmap: Memmap, memblock: MemblockLayout, env: PageAllocEnv) {
    this.memmap = memmap;
    this.memblock = { memory: mergeRanges(memblock.memory), reserved: mergeRanges(memblock.reserved) };
    this.#env = env;
    const mem = this.memblock.memory;
    this.min_pfn = mem[0]!.start;
    this.max_pfn = mem[mem.length - 1]!.end;
    const clamp = (p: number) => Math.min(Math.max(p, this.min_pfn), this.max_pfn);
    this.zones = [
      new Zone(ZONE_DMA, clamp(0), clamp(MAX_DMA_PFN)),
      new Zone(ZONE_DMA32, clamp(MAX_DMA_PFN), clamp(MAX_DMA32_PFN)),
      new Zone(ZONE_NORMAL, clamp(MAX_DMA32_PFN), this.max_pfn),
      new Zone(ZONE_MOVABLE, 0, 0),
      new Zone(ZONE_DEVICE, 0, 0),
    ];
  }

  /** page_zonenum() of a RAM pfn, from the zone spans. */
  zoneIdxOf(pfn: number): number {
    if (pfn < MAX_DMA_PFN) return ZONE_DMA;
    if (pfn < MAX_DMA32_PFN) return ZONE_DMA32;
    return ZONE_NORMAL;
  }

  /** The present sections of boot memory, as memmap ranges whose sections this allocator fills. */
  memmapRanges(): MemmapRange[] {
    const secs = mergeRanges(
      this.memblock.memory.map((r) => ({
        start: Math.floor(r.start / PAGES_PER_SECTION) * PAGES_PER_SECTION,
        end: ALIGN(r.end, PAGES_PER_SECTION),
      })),
    );
    return secs.map((r) => ({ startPfn: r.start, endPfn: r.end, name: "System RAM", init: (sec: MemSection) => this.#initSection(sec) }));
  }

  /**
   * memmap_init_zone() + memblock_free_all() for one section, as they would have left it:
   * reserved pages and holes at refcount 1 with PG_reserved, free pages at 0, and the head of
   * every untouched MAX_ORDER block marked PageBuddy of order MAX_ORDER-1.
   */
  #initSection(sec: MemSection): void {
    const s = sec.startPfn;
    const e = s + PAGES_PER_SECTION;
    for (let pfn = s; pfn < e; ) {
      const zoneEnd = Math.min(e, pfn < MAX_DMA_PFN ? MAX_DMA_PFN : pfn < MAX_DMA32_PFN ? MAX_DMA32_PFN : e);
      sec.zone.fill(this.zoneIdxOf(pfn), pfn - s, zoneEnd - s);
      pfn = zoneEnd;
    }
    sec.flags.fill(1 << PG_reserved);
    sec.refcount.fill(1);
    sec.mapcount.fill(-1);
    for (const free of subtractRanges(this.memblock.memory, this.memblock.reserved)) {
      const a = Math.max(free.start, s);
      const b = Math.min(free.end, e);
      if (a >= b) continue;
      sec.flags.fill(0, a - s, b - s);
      sec.refcount.fill(0, a - s, b - s);
    }
    for (const zone of this.zones) {
      for (const run of zone.untouched) {
        const a = Math.max(run.start, s);
        const b = Math.min(run.end, e);
        for (let pfn = a; pfn < b; pfn += MAX_ORDER_NR_PAGES) set_page_order(sec, pfn - s, MAX_ORDER - 1);
      }
    }
  }

  /** memblock_free_all(): hand every free pfn to the buddy allocator. */
  freeBootMemory(): void {
    const free = subtractRanges(this.memblock.memory, this.memblock.reserved);
    for (const zone of this.zones) {
      if (zone.zone_end_pfn <= zone.zone_start_pfn) continue;
      const span = [{ start: zone.zone_start_pfn, end: zone.zone_end_pfn }];
      zone.present_pages = intersectLength(this.memblock.memory, span);
      zone.managed_pages = intersectLength(free, span);
      this.totalram_pages += zone.managed_pages;
    }
    // Whole MAX_ORDER blocks become untouched runs; edge blocks go onto the lists now.
    const edges: [number, number][] = [];
    for (const r of free) {
      for (const zone of this.zones) {
        let pfn = Math.max(r.start, zone.zone_start_pfn);
        const end = Math.min(r.end, zone.zone_end_pfn);
        while (pfn < end) {
          let order = Math.min(MAX_ORDER - 1, ctz(pfn));
          while (pfn + (1 << order) > end) order--;
          if (order === MAX_ORDER - 1) {
            const last = zone.untouched[zone.untouched.length - 1];
            if (last && last.end === pfn) last.end += MAX_ORDER_NR_PAGES;
            else zone.untouched.push({ start: pfn, end: pfn + MAX_ORDER_NR_PAGES });
            zone.free_area[order]!.nr_free++;
          } else {
            edges.push([pfn, order]);
          }
          zone.nr_free_pages += 1 << order;
          pfn += 1 << order;
        }
      }
    }
    for (const [pfn, order] of edges) {
      const sec = this.memmap.section(pfn);
      const zone = this.zones[sec.zone[pfn - sec.startPfn]!]!;
      set_page_order(sec, pfn - sec.startPfn, order);
      zone.free_area[order]!.list.push(pfn);
      zone.free_area[order]!.nr_free++;
    }
    this.#setupWatermarks();
  }

  /** __setup_per_zone_wmarks() with min_free_kbytes = sqrt(lowmem_kbytes * 16), 128..65536. */
  #setupWatermarks(): void {
    const lowmemKb = this.totalram_pages * 4;
    const minFreeKb = Math.min(65536, Math.max(128, Math.floor(Math.sqrt(lowmemKb * 16))));
    const pagesMin = minFreeKb / 4;
    for (const zone of this.zones) {
      if (!zone.managed_pages) continue;
      const min = Math.floor((pagesMin * zone.managed_pages) / this.totalram_pages);
      const step = Math.max(Math.floor(min / 4), Math.floor((zone.managed_pages * 10) / 10000));
      zone.watermark.min = min;
      zone.watermark.low = min + step;
      zone.watermark.high = min + step * 2;
    }
  }

  get min_free_kbytes(): number {
    return Math.min(65536, Math.max(128, Math.floor(Math.sqrt(this.totalram_pages * 4 * 16))));
  }

  nr_free_pages(): number {
    let n = 0;
    for (const z of this.zones) n += z.nr_free_pages;
    return n;
  }

  /** __rmqueue_smallest(): take the smallest block of at least `order` and split it down. */
  #rmqueue(zone: Zone, order: number): Page {
    for (let current = order; current < MAX_ORDER; current++) {
      const area = zone.free_area[current]!;
      if (area.nr_free === 0) continue;
      const page = this.#popFree(zone, area, current);
      if (page < 0) continue;
      zone.nr_free_pages -= 1 << order;
      // expand(): keep the low half, free the high halves.
      let high = current;
      while (high > order) {
        high--;
        const buddy = page + (1 << high);
        const sec = this.memmap.section(buddy);
        set_page_order(sec, buddy - sec.startPfn, high);
        zone.free_area[high]!.list.push(buddy);
        zone.free_area[high]!.nr_free++;
      }
      return page;
    }
    return -1;
  }

  #popFree(zone: Zone, area: FreeArea, order: number): Page {
    const list = area.list;
    while (list.length > 0) {
      const pfn = list.pop()!;
      const sec = this.memmap.section(pfn);
      const i = pfn - sec.startPfn;
      if (PageBuddy(sec, i) && sec.private[i] === order && sec.zone[i] === zone.idx) {
        rmv_page_order(sec, i);
        area.nr_free--;
        return pfn;
      }
    }
    if (order === MAX_ORDER - 1 && zone.untouched.length > 0) {
      const run = zone.untouched[zone.untouched.length - 1]!;
      const pfn = run.end - MAX_ORDER_NR_PAGES;
      // Materialise the section while the block still counts as untouched, then take it.
      const sec = this.memmap.section(pfn);
      run.end = pfn;
      if (run.end === run.start) zone.untouched.pop();
      rmv_page_order(sec, pfn - sec.startPfn);
      area.nr_free--;
      return pfn;
    }
    return -1;
  }

  /**
   * __alloc_pages_nodemask(): the first zone in the zonelist (highest allowed zone first) with
   * a free block. Returns the head page at refcount 1, or -1 after warn_alloc().
   */
  alloc_pages(gfp: number, order: number): Page {
    if (!Number.isInteger(order) || order < 0 || order >= MAX_ORDER) {
      this.#env.orderTooBig(gfp);
      return -1;
    }
    const highest = gfp_zone(gfp);
    for (let z = Math.min(highest, ZONE_NORMAL); z >= ZONE_DMA; z--) {
      const zone = this.zones[z]!;
      // rmqueue(): a block that fails check_new_pages() is leaked and the same zone is
      // asked again; only an empty zone sends the allocation on down the zonelist.
      let page: Page;
      do {
        if (zone.nr_free_pages < 1 << order) {
          page = -1;
          break;
        }
        page = this.#rmqueue(zone, order);
      } while (page >= 0 && this.#checkNewPages(page, order));
      if (page < 0) continue;
      this.#prepNewPage(page, order, gfp);
      return page;
    }
    this.#env.allocFailure(gfp, order);
    return -1;
  }

  /**
   * check_new_pages(): true if a page of the block is bad. check_new_page_bad() keeps the last
   * matching reason; a HWPoison page is not reported ("Don't complain about hwpoisoned pages"),
   * only its PageBuddy is reset. The first bad page ends the check.
   */
  #checkNewPages(page: Page, order: number): boolean {
    for (let p = page; p < page + (1 << order); p++) {
      const sec = this.memmap.section(p);
      const i = p - sec.startPfn;
      let reason: string | null = null;
      let badFlags = 0;
      if (sec.mapcount[i] !== -1) reason = "nonzero mapcount";
      if (sec.hasMapping() && sec.mapping[i] !== null) reason = "non-NULL mapping";
      if (sec.refcount[i] !== 0) reason = "nonzero _count";
      if (sec.flags[i]! & (1 << PG_hwpoison)) {
        sec.mapcount[i] = -1; // page_mapcount_reset(): remove PageBuddy
        return true;
      }
      if (sec.flags[i]! & PAGE_FLAGS_CHECK_AT_PREP) {
        reason = "PAGE_FLAGS_CHECK_AT_PREP flag set";
        badFlags = PAGE_FLAGS_CHECK_AT_PREP;
      }
      if (reason) {
        this.#env.badPage(p, reason, badFlags);
        return true;
      }
    }
    return false;
  }

  /** prep_new_page(): the head page at refcount 1, contents cleared for __GFP_ZERO. */
  #prepNewPage(page: Page, order: number, gfp: number): void {
    const sec = this.memmap.section(page);
    const i = page - sec.startPfn;
    if (sec.hasPrivate()) sec.private[i] = 0;
    sec.refcount[i] = 1;
    if (gfp & __GFP_ZERO) this.#env.clearPage(page, 1 << order);
  }

  /** free_pages_check(): false (and bad_page()) if the page is not in a freeable state. */
  #freePagesCheck(sec: MemSection, i: number, pfn: Page): boolean {
    let reason: string | null = null;
    let badFlags = 0;
    // free_pages_check_bad(): every test runs, the last matching reason is reported.
    if (sec.mapcount[i] !== -1) reason = "nonzero mapcount";
    if (sec.hasMapping() && sec.mapping[i] !== null) reason = "non-NULL mapping";
    if (sec.refcount[i] !== 0) reason = "nonzero _refcount";
    if (sec.flags[i]! & PAGE_FLAGS_CHECK_AT_FREE) {
      reason = "PAGE_FLAGS_CHECK_AT_FREE flag(s) set";
      badFlags = PAGE_FLAGS_CHECK_AT_FREE;
    }
    if (!reason) return true;
    this.#env.badPage(pfn, reason, badFlags);
    return false;
  }

  /** free_pages_prepare() + __free_one_page(): the block goes back, merging with free buddies. */
  free_one_page(page: Page, order: number, head: MemSection = this.memmap.section(page)): void {
    // free_pages_prepare(): an anonymous (PageMappingFlags) head drops its mapping; the tail
    // pages are checked first, then the head page. (`head`: the head page's section, when
    // the caller has it.)
    const hi = page - head.startPfn;
    if (head.hasMapping() && isAnonMapping(head.mapping[hi])) head.mapping[hi] = null;
    let bad = false;
    for (let k = 1; k <= 1 << order; k++) {
      const p = k === 1 << order ? page : page + k;
      // (The head's section is the one looked up already.)
      const sec = p === page ? head : this.memmap.section(p);
      const i = p - sec.startPfn;
      if (!this.#freePagesCheck(sec, i, p)) bad = true;
      else sec.flags[i] = sec.flags[i]! & ~PAGE_FLAGS_CHECK_AT_PREP;
    }
    if (bad) return;
    let sec = head;
    const zone = this.zones[head.zone[hi]!]!;
    zone.nr_free_pages += 1 << order;
    let pfn = page;
    while (order < MAX_ORDER - 1) {
      const buddyPfn = pfn ^ (1 << order);
      // A MAX_ORDER block lies in one section: the buddy is nearly always in `sec`.
      let bi = buddyPfn - sec.startPfn;
      if (bi < 0 || bi >= PAGES_PER_SECTION) {
        sec = this.memmap.section(buddyPfn);
        bi = buddyPfn - sec.startPfn;
      }
      if (!(PageBuddy(sec, bi) && sec.private[bi] === order && sec.zone[bi] === zone.idx)) break;
      // del_page_from_free_area(): the stack entry goes stale and is skipped later.
      rmv_page_order(sec, bi);
      zone.free_area[order]!.nr_free--;
      pfn = buddyPfn & pfn;
      order++;
    }
    if (pfn - sec.startPfn < 0 || pfn - sec.startPfn >= PAGES_PER_SECTION) sec = this.memmap.section(pfn);
    set_page_order(sec, pfn - sec.startPfn, order);
    const area = zone.free_area[order]!;
    area.list.push(pfn);
    area.nr_free++;
    if (area.list.length > 2 * area.nr_free + 64) this.#compact(zone, area, order);
  }

  /** Drop stale and duplicate entries from a free list's stack. */
  #compact(zone: Zone, area: FreeArea, order: number): void {
    const seen = new Set<number>();
    const keep: number[] = [];
    for (let k = area.list.length - 1; k >= 0; k--) {
      const pfn = area.list[k]!;
      if (seen.has(pfn)) continue;
      const sec = this.memmap.section(pfn);
      const i = pfn - sec.startPfn;
      if (PageBuddy(sec, i) && sec.private[i] === order && sec.zone[i] === zone.idx) {
        seen.add(pfn);
        keep.push(pfn);
      }
    }
    keep.reverse();
    area.list.length = 0;
    area.list.push(...keep);
  }

  /** The free blocks of a zone's order, as head pfns (untouched blocks included). */
  *freeBlocks(zone: Zone, order: number): Generator<Page> {
    const seen = new Set<number>();
    for (const pfn of zone.free_area[order]!.list) {
      if (seen.has(pfn)) continue;
      const sec = this.memmap.peek(pfn);
      if (!sec) continue;
      const i = pfn - sec.startPfn;
      if (PageBuddy(sec, i) && sec.private[i] === order && sec.zone[i] === zone.idx) {
        seen.add(pfn);
        yield pfn;
      }
    }
    if (order === MAX_ORDER - 1) {
      for (const run of zone.untouched) for (let p = run.start; p < run.end; p += MAX_ORDER_NR_PAGES) yield p;
    }
  }

  /** Is `page` the head of a free block (PageBuddy)? */
  isBuddyHead(page: Page): boolean {
    const sec = this.memmap.peek(page);
    if (!sec) return this.#inUntouched(page);
    return PageBuddy(sec, page - sec.startPfn);
  }

  #inUntouched(pfn: number): boolean {
    for (const z of this.zones) if (inRanges(z.untouched, pfn) && pfn % MAX_ORDER_NR_PAGES === 0) return true;
    return false;
  }

  /** /proc/buddyinfo */
  buddyinfo(): string {
    let out = "";
    for (const zone of this.zones) {
      if (!zone.populated()) continue;
      out += `Node 0, zone ${zone.name.padStart(8)} `;
      for (const area of zone.free_area) out += String(area.nr_free).padStart(6) + " ";
      out += "\n";
    }
    return out;
  }

  /**
   * DEBUG_VM-style consistency: each order's nr_free equals the blocks on its list, free pages
   * add up to NR_FREE_PAGES, and no free block overlaps another.
   */
  check(): string[] {
    const problems: string[] = [];
    for (const zone of this.zones) {
      let pages = 0;
      const blocks: PfnRange[] = [];
      for (let order = 0; order < MAX_ORDER; order++) {
        let n = 0;
        for (const pfn of this.freeBlocks(zone, order)) {
          n++;
          blocks.push({ start: pfn, end: pfn + (1 << order) });
          const sec = this.memmap.peek(pfn);
          if (sec && sec.refcount[pfn - sec.startPfn] !== 0) {
            problems.push(`zone ${zone.name}: free block at pfn 0x${pfn.toString(16)} order ${order} has _refcount ${sec.refcount[pfn - sec.startPfn]}`);
          }
        }
        if (n !== zone.free_area[order]!.nr_free) {
          problems.push(`zone ${zone.name}: free_area[${order}].nr_free is ${zone.free_area[order]!.nr_free} but ${n} blocks are free`);
        }
        pages += n << order;
      }
      if (pages !== zone.nr_free_pages) problems.push(`zone ${zone.name}: NR_FREE_PAGES is ${zone.nr_free_pages} but the free lists hold ${pages} pages`);
      blocks.sort((a, b) => a.start - b.start);
      for (let k = 1; k < blocks.length; k++) {
        if (blocks[k]!.start < blocks[k - 1]!.end) problems.push(`zone ${zone.name}: free blocks overlap at pfn 0x${blocks[k]!.start.toString(16)}`);
      }
    }
    return problems;
  }
}

/** PageMappingFlags(): page->mapping carries PAGE_MAPPING_ANON (an anon_vma, not a file). */
export function isAnonMapping(m: unknown): boolean {
  return typeof m === "object" && m !== null && (m as { anon?: unknown }).anon === true;
}

function ctz(n: number): number {
  if (n === 0) return 64;
  let c = 0;
  while (n % 2 === 0) {
    n /= 2;
    c++;
  }
  return c;
}

function intersectLength(a: readonly PfnRange[], b: readonly PfnRange[]): number {
  let n = 0;
  for (const x of a) for (const y of b) n += Math.max(0, Math.min(x.end, y.end) - Math.max(x.start, y.start));
  return n;
}
