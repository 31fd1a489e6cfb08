// Physical memory contents. A page's bytes are allocated on its first write (principle 8);
// reading a page nobody wrote gives zeros. The kernel linear map (__va) is modelled as an
// offset, so kernel virtual addresses stay exact JavaScript numbers.

import { PAGE_SIZE, type Page } from "./memmap.ts";

/** kemu's PAGE_OFFSET: __va(phys) = PAGE_OFFSET + phys, exact for any physBits <= 52. */
export const PAGE_OFFSET = 2 ** 52;

export function __va(phys: number): number {
  return PAGE_OFFSET + phys;
}
export function __pa(va: number): number {
  return va - PAGE_OFFSET;
}
/** Is `v` a linear-map address (as opposed to an ERR_PTR, a handle or a user address)? */
export function is_linear_map_address(v: number): boolean {
  return v >= PAGE_OFFSET;
}
/** The address %px prints for a linear-map address under a version's __PAGE_OFFSET_BASE. */
export function formatVa(pageOffset: bigint, va: number): string {
  return (pageOffset + BigInt(va - PAGE_OFFSET)).toString(16).padStart(16, "0");
}

const ZEROES = new Uint8Array(PAGE_SIZE);

export class PhysMem {
  readonly #pages = new Map<Page, Uint8Array>();

  /** The page's bytes for reading; a shared zero page if it was never written. Do not modify. */
  readPage(pfn: Page): Uint8Array {
    return this.#pages.get(pfn) ?? ZEROES;
  }

  /** The page's bytes for writing, allocated (zeroed) on first use. */
  writablePage(pfn: Page): Uint8Array {
    let p = this.#pages.get(pfn);
    if (!p) {
      p = new Uint8Array(PAGE_SIZE);
      this.#pages.set(pfn, p);
    }
    return p;
  }

  /** clear_page(): contents become zero (and stop costing memory). */
  clear(pfn: Page, nr = 1): void {
    for (let i = 0; i < nr; i++) this.#pages.delete(pfn + i);
  }

  /** memset(0) over a physical range; pages never written stay unallocated. */
  zero(phys: number, len: number): void {
    forEachPage(phys, len, (pfn, o, n) => this.#pages.get(pfn)?.fill(0, o, o + n));
  }

  /** copy_highpage() */
  copyPage(dst: Page, src: Page): void {
    const s = this.#pages.get(src);
    if (!s) this.#pages.delete(dst);
    else this.writablePage(dst).set(s);
  }

  read(phys: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    forEachPage(phys, len, (pfn, o, n, off) => {
      const p = this.#pages.get(pfn);
      if (p) out.set(p.subarray(o, o + n), off);
    });
    return out;
  }

  write(phys: number, data: Uint8Array): void {
    forEachPage(phys, data.length, (pfn, o, n, off) => this.writablePage(pfn).set(data.subarray(off, off + n), o));
  }

  /** Pages holding allocated contents (for meminfo-style accounting and tests). */
  get allocatedPages(): number {
    return this.#pages.size;
  }
}

/** Walk [phys, phys+len) page by page: fn(pfn, offset in page, bytes, offset in the range). */
function forEachPage(phys: number, len: number, fn: (pfn: Page, o: number, n: number, off: number) => void): void {
  for (let off = 0; off < len; ) {
    const pa = phys + off;
    const pfn = Math.floor(pa / PAGE_SIZE);
    const o = pa - pfn * PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - o, len - off);
    fn(pfn, o, n, off);
    off += n;
  }
}
