// The sparse memmap (SPARSEMEM_VMEMMAP): struct page for every pfn of a present 128 MiB
// section, stored struct-of-arrays per section and allocated when a page of the section is
// first used (principle 8). A `struct page *` is its pfn: with a virtual memmap,
// page_to_pfn() and pfn_to_page() are plain arithmetic, so the pfn is the page.

import { PAGE_POISON_PATTERN } from "./page-flags.ts";
import { findRange } from "../lib/ranges.ts";

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** x86-64 SECTION_SIZE_BITS */
export const PA_SECTION_SHIFT = 27;
export const PFN_SECTION_SHIFT = PA_SECTION_SHIFT - PAGE_SHIFT;
export const PAGES_PER_SECTION = 1 << PFN_SECTION_SHIFT;
export const PA_SECTION_SIZE = 2 ** PA_SECTION_SHIFT;
const SECTION_MASK = PAGES_PER_SECTION - 1;
const SECTIONS_PER_ROOT = 1024;
/** x86-64 vmemmap_base without KASLR. Only used for printing. */
export const VMEMMAP_START = 0xffffea0000000000n;
/** sizeof(struct page) on x86-64 */
export const STRUCT_PAGE_SIZE = 64;
/** Each present section's memmap is one vmemmap block: 32768 struct pages of 64 bytes, 512 pages (2 MiB). */
export const MEMMAP_PAGES_PER_SECTION = (PAGES_PER_SECTION * STRUCT_PAGE_SIZE) / PAGE_SIZE;

/** A struct page pointer: the page's pfn. */
export type Page = number;

export const ZONE_DMA = 0;
export const ZONE_DMA32 = 1;
export const ZONE_NORMAL = 2;
export const ZONE_MOVABLE = 3;
export const ZONE_DEVICE = 4;
export const MAX_NR_ZONES = 5;
export const ZONE_NAMES: readonly string[] = ["DMA", "DMA32", "Normal", "Movable", "Device"];
/** The zone value of a struct page that was never initialised. */
export const ZONE_POISON = 0xff;

export function PFN_PHYS(pfn: number): number {
  return pfn * PAGE_SIZE;
}
export function PHYS_PFN(phys: number): number {
  return Math.floor(phys / PAGE_SIZE);
}
/** ALIGN(x, a): x rounded up to a multiple of a (include/linux/kernel.h). */
export function ALIGN(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}
export function pfn_to_section_nr(pfn: number): number {
  return Math.floor(pfn / PAGES_PER_SECTION);
}
export function section_nr_to_pfn(nr: number): number {
  return nr * PAGES_PER_SECTION;
}
/** The address %px prints for a struct page. */
export function pagePointer(page: Page): string {
  return (VMEMMAP_START + BigInt(page) * BigInt(STRUCT_PAGE_SIZE)).toString(16).padStart(16, "0");
}

/** One section's struct pages, one typed array per field; index = pfn & (PAGES_PER_SECTION-1). */
export class MemSection {
  readonly nr: number;
  readonly startPfn: number;
  /** page->flags (the flag bits; zone and node live in `zone`). */
  readonly flags = new Uint32Array(PAGES_PER_SECTION);
  /** page->_refcount */
  readonly refcount = new Int32Array(PAGES_PER_SECTION);
  /** page->_mapcount, which also holds page_type; -1 when unmapped and untyped. */
  readonly mapcount = new Int32Array(PAGES_PER_SECTION);
  /** page_zonenum(page) */
  readonly zone = new Uint8Array(PAGES_PER_SECTION);
  /** page->pgmap of ZONE_DEVICE pages, as an id in the kernel's pgmap table (0 = none). */
  readonly pgmap = new Uint32Array(PAGES_PER_SECTION);
  #private: Float64Array | null = null;
  #index: Float64Array | null = null;
  #hmmData: Float64Array | null = null;
  #mapping: unknown[] | null = null;

  constructor(nr: number) {
    this.nr = nr;
    this.startPfn = nr * PAGES_PER_SECTION;
  }

  /** page->private (buddy order for free pages); allocated on first use. */
  get private(): Float64Array {
    return (this.#private ??= new Float64Array(PAGES_PER_SECTION));
  }
  /** page->index */
  get index(): Float64Array {
    return (this.#index ??= new Float64Array(PAGES_PER_SECTION));
  }
  /** page->hmm_data of ZONE_DEVICE pages */
  get hmmData(): Float64Array {
    return (this.#hmmData ??= new Float64Array(PAGES_PER_SECTION));
  }
  /** page->mapping: an address_space or anon_vma object, or null. */
  get mapping(): unknown[] {
    return (this.#mapping ??= new Array<unknown>(PAGES_PER_SECTION).fill(null));
  }
  hasMapping(): boolean {
    return this.#mapping !== null;
  }
  hasPrivate(): boolean {
    return this.#private !== null;
  }
  hasIndex(): boolean {
    return this.#index !== null;
  }

  /** Leave [from, to) in the state of struct pages nobody initialised (0xff poison). */
  poison(from: number, to: number): void {
    this.flags.fill(PAGE_POISON_PATTERN, from, to);
    this.refcount.fill(-1, from, to);
    this.mapcount.fill(-1, from, to);
    this.zone.fill(0xff, from, to);
    this.pgmap.fill(0, from, to);
  }

  /** Approximate bytes held by this section's arrays. */
  bytes(): number {
    let b = PAGES_PER_SECTION * (4 + 4 + 4 + 1 + 4);
    if (this.#private) b += PAGES_PER_SECTION * 8;
    if (this.#index) b += PAGES_PER_SECTION * 8;
    if (this.#hmmData) b += PAGES_PER_SECTION * 8;
    if (this.#mapping) b += PAGES_PER_SECTION * 8;
    return b;
  }
}

/**
 * A run of present sections added together (boot memory, or one arch_add_memory / add_pages
 * call). Its `init` fills a newly materialised section with the state the kernel's memmap
 * initialisation would have left there, so untouched sections cost nothing.
 */
export interface MemmapRange {
  readonly startPfn: number;
  readonly endPfn: number;
  readonly name: string;
  init(sec: MemSection): void;
}

export class Memmap {
  #roots: (MemSection | undefined)[][] = [];
  #ranges: MemmapRange[] = [];
  #materialized = 0;
  /** Called when a pfn outside every present section is dereferenced. */
  onBadPfn: (pfn: number) => never = (pfn) => {
    throw new RangeError(`pfn ${pfn.toString(16)} has no struct page`);
  };

  /** The section holding `pfn`, materialised on first use. */
  section(pfn: Page): MemSection {
    const nr = (pfn / PAGES_PER_SECTION) | 0;
    const root = this.#roots[nr >>> 10];
    const sec = root === undefined ? undefined : root[nr & (SECTIONS_PER_ROOT - 1)];
    return sec ?? this.#materialize(pfn);
  }

  /** Index of the pfn inside its section's arrays. */
  static idx(pfn: Page): number {
    return pfn & SECTION_MASK;
  }

  #materialize(pfn: Page): MemSection {
    const range = Number.isInteger(pfn) && pfn >= 0 ? this.rangeOf(pfn) : undefined;
    if (!range) return this.onBadPfn(pfn);
    const nr = pfn_to_section_nr(pfn);
    const sec = new MemSection(nr);
    range.init(sec);
    const root = (this.#roots[nr >>> 10] ??= new Array<MemSection | undefined>(SECTIONS_PER_ROOT));
    root[nr & (SECTIONS_PER_ROOT - 1)] = sec;
    this.#materialized++;
    return sec;
  }

  /** The present range holding `pfn`, if any (binary search). */
  rangeOf(pfn: number): MemmapRange | undefined {
    return findRange(this.#ranges, pfn, (r) => r.startPfn, (r) => r.endPfn);
  }

  /** pfn_valid(): the pfn lies in a present section (section granularity, as in 4.20). */
  pfn_valid(pfn: number): boolean {
    if (!Number.isInteger(pfn) || pfn < 0) return false;
    // A materialised section is present (removeRange() drops its sections): no search.
    const nr = Math.floor(pfn / PAGES_PER_SECTION);
    const root = this.#roots[Math.floor(nr / SECTIONS_PER_ROOT)];
    if (root !== undefined && root[nr % SECTIONS_PER_ROOT] !== undefined) return true;
    return this.rangeOf(pfn) !== undefined;
  }

  /** sparse_add_one_section() for each section of the range; false if one is present already. */
  addRange(range: MemmapRange): boolean {
    if (range.startPfn % PAGES_PER_SECTION !== 0 || range.endPfn % PAGES_PER_SECTION !== 0 || range.endPfn <= range.startPfn) {
      throw new RangeError(`memmap range ${range.name} is not section aligned`);
    }
    const r = this.#ranges;
    let i = 0;
    while (i < r.length && r[i]!.endPfn <= range.startPfn) i++;
    if (i < r.length && r[i]!.startPfn < range.endPfn) return false;
    r.splice(i, 0, range);
    return true;
  }

  /** sparse_remove_one_section() for each section of the range: its struct pages are gone. */
  removeRange(range: MemmapRange): void {
    const i = this.#ranges.indexOf(range);
    if (i < 0) throw new RangeError(`memmap range ${range.name} is not present`);
    this.#ranges.splice(i, 1);
    this.#dropSections(range.startPfn, range.endPfn);
  }

  #dropSections(startPfn: number, endPfn: number): void {
    for (let nr = pfn_to_section_nr(startPfn); nr < pfn_to_section_nr(endPfn); nr++) {
      const root = this.#roots[nr >>> 10];
      if (root && root[nr & (SECTIONS_PER_ROOT - 1)]) {
        root[nr & (SECTIONS_PER_ROOT - 1)] = undefined;
        this.#materialized--;
      }
    }
  }

  /** Materialised sections overlapping [startPfn, endPfn), in order (no materialisation). */
  *materializedIn(startPfn: number, endPfn: number): Generator<MemSection> {
    for (let nr = pfn_to_section_nr(startPfn); nr * PAGES_PER_SECTION < endPfn; nr++) {
      const sec = this.#roots[nr >>> 10]?.[nr & (SECTIONS_PER_ROOT - 1)];
      if (sec) yield sec;
    }
  }

  /** The section for `pfn` if it has been materialised, without materialising it. */
  peek(pfn: number): MemSection | undefined {
    const nr = pfn_to_section_nr(pfn);
    return this.#roots[nr >>> 10]?.[nr & (SECTIONS_PER_ROOT - 1)];
  }

  ranges(): readonly MemmapRange[] {
    return this.#ranges;
  }

  get materializedSections(): number {
    return this.#materialized;
  }

  get presentSections(): number {
    let n = 0;
    for (const r of this.#ranges) n += (r.endPfn - r.startPfn) / PAGES_PER_SECTION;
    return n;
  }

  /** Bytes held by materialised section arrays. */
  bytes(): number {
    let b = 0;
    for (const root of this.#roots) if (root) for (const s of root) if (s) b += s.bytes();
    return b;
  }
}
