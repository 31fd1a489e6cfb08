// Memory hotplug for ZONE_DEVICE (mm/memory_hotplug.c, arch/x86/mm/init_64.c): sections are
// added with or without a linear mapping, the pfn range moves to ZONE_DEVICE, and
// memmap_init_zone_device() (mm/page_alloc.c) initialises the struct pages. A struct page is
// initialised lazily: the range records what state each part of it is in, and a section
// takes that state when it is first touched (or at once, if it already was).

import { COST_NS, jiffies_to_msecs } from "../clock.ts";
import { EEXIST, ENOMEM } from "../errno.ts";
import { MEMMAP_PAGES_PER_SECTION, PAGES_PER_SECTION, PHYS_PFN, ZONE_DEVICE, type MemSection, type MemmapRange } from "./memmap.ts";
import { PG_reserved } from "./page-flags.ts";
import type { MM } from "./mm.ts";
import type { DevPagemap, VmemAltmap } from "./memremap.ts";

export type PageState =
  /** never initialised: page_init_poison() left 0xff bytes */
  | { kind: "poison" }
  /** __init_single_page() + __SetPageReserved(), no pgmap (altmap-backed memmap pages) */
  | { kind: "reserved" }
  /** memmap_init_zone_device(): refcount 1, PG_reserved, page->pgmap, hmm_data 0; the
   *  release loop later leaves untouched pages at refcount 0 */
  | { kind: "device"; pgmapId: number; refcount: number };

interface Segment {
  start: number;
  end: number;
  state: PageState;
}

/** The sections one add_pages() call made present, and the state of their struct pages. */
export class HotplugRange implements MemmapRange {
  readonly startPfn: number;
  readonly endPfn: number;
  readonly name: string;
  readonly #segments: Segment[];
  /** Created with a linear mapping (arch_add_memory) rather than memmap only (add_pages). */
  readonly linearMap: boolean;
  /** The altmap its memmap was allocated from, if any. */
  readonly altmap: VmemAltmap | null;

  constructor(startPfn: number, endPfn: number, name: string, linearMap: boolean, altmap: VmemAltmap | null) {
    this.startPfn = startPfn;
    this.endPfn = endPfn;
    this.name = name;
    this.linearMap = linearMap;
    this.altmap = altmap;
    this.#segments = [{ start: startPfn, end: endPfn, state: { kind: "poison" } }];
  }

  init(sec: MemSection): void {
    const s = sec.startPfn;
    const e = s + PAGES_PER_SECTION;
    for (const seg of this.#segments) {
      const a = Math.max(seg.start, s);
      const b = Math.min(seg.end, e);
      if (a < b) fill(sec, a - s, b - s, seg.state);
    }
  }

  /** The state untouched struct pages at `pfn` are in. */
  stateAt(pfn: number): PageState {
    for (const seg of this.#segments) if (pfn >= seg.start && pfn < seg.end) return seg.state;
    return { kind: "poison" };
  }

  /** Give [start, end) a new initial state, in materialised sections too. */
  set(mm: MM, start: number, end: number, state: PageState): void {
    const out: Segment[] = [];
    for (const seg of this.#segments) {
      if (seg.end <= start || seg.start >= end) {
        out.push(seg);
        continue;
      }
      if (seg.start < start) out.push({ start: seg.start, end: start, state: seg.state });
      if (seg.end > end) out.push({ start: end, end: seg.end, state: seg.state });
    }
    out.push({ start, end, state });
    out.sort((x, y) => x.start - y.start);
    this.#segments.splice(0, this.#segments.length, ...out);
    for (const sec of mm.memmap.materializedIn(start, end)) {
      const a = Math.max(start, sec.startPfn);
      const b = Math.min(end, sec.startPfn + PAGES_PER_SECTION);
      fill(sec, a - sec.startPfn, b - sec.startPfn, state);
    }
  }
}

function fill(sec: MemSection, from: number, to: number, state: PageState): void {
  if (state.kind === "poison") {
    sec.poison(from, to);
    return;
  }
  sec.flags.fill(1 << PG_reserved, from, to);
  sec.refcount.fill(state.kind === "device" ? state.refcount : 1, from, to);
  sec.mapcount.fill(-1, from, to);
  sec.zone.fill(ZONE_DEVICE, from, to);
  sec.pgmap.fill(state.kind === "device" ? state.pgmapId : 0, from, to);
  if (sec.hasPrivate()) sec.private.fill(0, from, to);
  if (sec.hasMapping()) sec.mapping.fill(null, from, to);
  if (state.kind === "device") sec.hmmData.fill(0, from, to);
}

export function vmem_altmap_offset(altmap: VmemAltmap): number {
  return altmap.reserve + altmap.free;
}

/**
 * add_pages() / __add_pages(): make each section present. Its memmap comes from the altmap
 * when there is one (-ENOMEM once the altmap's free pages run out, with no fallback).
 * Stops at the first section that fails and, as in 4.20, leaves the sections it added
 * before that in place.
 */
export function add_pages(mm: MM, startPfn: number, nrPages: number, name: string, linearMap: boolean, altmap: VmemAltmap | null): number {
  const end = startPfn + nrPages;
  let pfn = startPfn;
  while (pfn < end) {
    // The longest run of sections that can be added; the first failing one ends the loop.
    let runEnd = pfn;
    let error = 0;
    while (runEnd < end) {
      if (mm.memmap.pfn_valid(runEnd)) {
        error = -EEXIST;
        break;
      }
      if (altmap && altmap.alloc + ((runEnd - pfn) / PAGES_PER_SECTION + 1) * MEMMAP_PAGES_PER_SECTION > altmap.free) {
        error = -ENOMEM;
        break;
      }
      runEnd += PAGES_PER_SECTION;
    }
    if (runEnd > pfn) {
      if (altmap) altmap.alloc += ((runEnd - pfn) / PAGES_PER_SECTION) * MEMMAP_PAGES_PER_SECTION;
      const range = new HotplugRange(pfn, runEnd, name, linearMap, altmap);
      mm.memmap.addRange(range);
      mm.hotplugRanges.push(range);
      if (linearMap) mm.linearMapAdd(pfn, runEnd);
    }
    if (error) return error;
    pfn = runEnd;
  }
  return 0;
}

/** arch_add_memory(): the linear mapping, then add_pages(). */
export function arch_add_memory(mm: MM, start: number, size: number, name: string, altmap: VmemAltmap | null): number {
  return add_pages(mm, PHYS_PFN(start), PHYS_PFN(size), name, true, altmap);
}

/** __remove_pages() / arch_remove_memory(): the sections, their memmap and mapping go away. */
export function remove_pages(mm: MM, startPfn: number, nrPages: number): void {
  const end = startPfn + nrPages;
  for (const range of [...mm.hotplugRanges]) {
    if (range.startPfn >= end || range.endPfn <= startPfn) continue;
    mm.memmap.removeRange(range);
    mm.hotplugRanges.splice(mm.hotplugRanges.indexOf(range), 1);
    if (range.linearMap) mm.linearMapRemove(range.startPfn, range.endPfn);
    // vmem_altmap_free(): the memmap block goes back to the altmap it came from.
    if (range.altmap) range.altmap.alloc -= ((range.endPfn - range.startPfn) / PAGES_PER_SECTION) * MEMMAP_PAGES_PER_SECTION;
  }
  // shrink_zone_span(): what is left of ZONE_DEVICE spans the remaining hotplugged ranges.
  const zone = mm.deviceZone;
  zone.zone_start_pfn = zone.zone_end_pfn = 0;
  for (const r of mm.hotplugRanges) zone.span(r.startPfn, r.endPfn);
}

/** The HotplugRange holding `pfn`. */
export function rangeAt(mm: MM, pfn: number): HotplugRange {
  const r = mm.memmap.rangeOf(pfn);
  if (!(r instanceof HotplugRange)) throw new RangeError(`pfn 0x${pfn.toString(16)} is not hotplugged memory`);
  return r;
}

/**
 * move_pfn_range_to_zone() for ZONE_DEVICE: the zone span grows, and with an altmap the
 * pages holding the memmap itself are initialised reserved (memmap_init_zone, MEMMAP_HOTPLUG);
 * the altmap's own reserve stays uninitialised.
 */
export function move_pfn_range_to_zone(mm: MM, startPfn: number, nrPages: number, altmap: VmemAltmap | null): void {
  mm.deviceZone.span(startPfn, startPfn + nrPages);
  if (!altmap) return;
  let start = startPfn;
  if (start === altmap.base_pfn) start += altmap.reserve;
  const end = altmap.base_pfn + vmem_altmap_offset(altmap);
  if (end > start) rangeAt(mm, start).set(mm, start, end, { kind: "reserved" });
}

/**
 * memmap_init_zone_device(): every device page at refcount 1, PG_reserved, page->pgmap set;
 * prints "%s initialised, %lu pages in %ums". Virtual time is charged per page.
 */
export function memmap_init_zone_device(mm: MM, startPfn: number, size: number, pgmap: DevPagemap): void {
  const endPfn = startPfn + size;
  const start = mm.k.clock.jiffies;
  if (pgmap.altmap_valid) {
    startPfn = pgmap.altmap.base_pfn + vmem_altmap_offset(pgmap.altmap);
    size = endPfn - startPfn;
  }
  for (let pfn = startPfn; pfn < endPfn; ) {
    const range = rangeAt(mm, pfn);
    const to = Math.min(endPfn, range.endPfn);
    range.set(mm, pfn, to, { kind: "device", pgmapId: pgmap.id, refcount: 1 });
    pfn = to;
  }
  mm.k.clock.advance(size * COST_NS.memmapInitPage);
  if (!mm.k.profile.memremap.memmapInitMessage) return;
  const ms = jiffies_to_msecs(mm.k.clock.jiffies - start);
  mm.k.printk(`\x016${pgmap.dev ? pgmap.dev.name : "(null)"} initialised, ${size} pages in ${ms}ms\n`);
}
