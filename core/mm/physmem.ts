// Physical memory contents. A page's bytes are allocated on its first write (principle 8);
// reading a page nobody wrote gives zeros. The kernel linear map (__va) is modelled as an
// offset, so kernel virtual addresses stay exact JavaScript numbers.
//
// A range can be backed by a file (a pmem region's `file`): its pages are read from the file
// on first access and written back by writeback() (a flush of the persistence domain, and
// shutdown). A page the file holds only zeros for costs nothing, as one never written.

import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
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

/** A physical range whose contents live in a file: [startPfn, endPfn) <-> file offset 0... */
export class FileBacking {
  readonly path: string;
  readonly startPfn: number;
  readonly endPfn: number;
  fd: number;
  /** Pages whose contents were read from the file (or replaced) already. */
  readonly loaded = new Set<Page>();
  /** Pages whose contents differ from the file's. */
  readonly dirty = new Set<Page>();

  constructor(path: string, startPfn: number, nrPages: number, fd: number) {
    this.path = path;
    this.startPfn = startPfn;
    this.endPfn = startPfn + nrPages;
    this.fd = fd;
  }
}

export class PhysMem {
  readonly #pages = new Map<Page, Uint8Array>();
  readonly #backings: FileBacking[] = [];

  /**
   * Back [startPfn, startPfn + nrPages) with `path`: created (sparse) when missing and
   * extended to the range's size when shorter; a longer file keeps its tail.
   */
  attachFile(path: string, startPfn: number, nrPages: number): FileBacking {
    // O_CREAT without O_TRUNC: made when missing, what it holds is kept.
    const rw = openSync(path, constants.O_RDWR | constants.O_CREAT);
    if (fstatSync(rw).size < nrPages * PAGE_SIZE) ftruncateSync(rw, nrPages * PAGE_SIZE);
    const b = new FileBacking(path, startPfn, nrPages, rw);
    this.#backings.push(b);
    return b;
  }

  /** The file backing `pfn`, if any. */
  backingOf(pfn: Page): FileBacking | undefined {
    for (const b of this.#backings) if (pfn >= b.startPfn && pfn < b.endPfn) return b;
    return undefined;
  }

  /** A backed page's contents from its file, the first time it is used; null: all zeros. */
  #load(b: FileBacking, pfn: Page): Uint8Array | null {
    if (b.loaded.has(pfn)) return null;
    b.loaded.add(pfn);
    const buf = new Uint8Array(PAGE_SIZE);
    readSync(b.fd, buf, 0, PAGE_SIZE, (pfn - b.startPfn) * PAGE_SIZE);
    if (buf.every((x) => x === 0)) return null;
    this.#pages.set(pfn, buf);
    return buf;
  }

  /** The page's bytes, loading a file-backed one; undefined when they are all zeros. */
  #get(pfn: Page): Uint8Array | undefined {
    const p = this.#pages.get(pfn);
    if (p || this.#backings.length === 0) return p;
    const b = this.backingOf(pfn);
    return (b && this.#load(b, pfn)) || undefined;
  }

  /** A page's contents change: a file-backed page now differs from its file. */
  #dirty(pfn: Page): void {
    if (this.#backings.length === 0) return;
    const b = this.backingOf(pfn);
    if (!b) return;
    b.loaded.add(pfn);
    b.dirty.add(pfn);
  }

  /**
   * Write the dirty pages of [phys, phys + len) (all backed ranges when no range is given) to
   * their files: what reached the persistence domain. Returns the pages written.
   */
  writeback(phys = 0, len = Infinity): number {
    let n = 0;
    const first = Math.floor(phys / PAGE_SIZE);
    const end = len === Infinity ? Infinity : Math.ceil((phys + len) / PAGE_SIZE);
    for (const b of this.#backings) {
      if (b.fd < 0) continue;
      for (const pfn of [...b.dirty]) {
        if (pfn < first || pfn >= end) continue;
        writeSync(b.fd, this.#pages.get(pfn) ?? ZEROES, 0, PAGE_SIZE, (pfn - b.startPfn) * PAGE_SIZE);
        b.dirty.delete(pfn);
        n++;
      }
    }
    return n;
  }

  /** Power off: everything goes to the files, which are closed. */
  detachFiles(): void {
    this.writeback();
    for (const b of this.#backings.splice(0)) {
      if (b.fd >= 0) closeSync(b.fd);
      b.fd = -1;
    }
  }

  /** The page's bytes for reading; a shared zero page if it was never written. Do not modify. */
  readPage(pfn: Page): Uint8Array {
    return this.#get(pfn) ?? ZEROES;
  }

  /** The page's bytes for writing, allocated (zeroed) on first use. */
  writablePage(pfn: Page): Uint8Array {
    let p = this.#get(pfn);
    if (!p) {
      p = new Uint8Array(PAGE_SIZE);
      this.#pages.set(pfn, p);
    }
    this.#dirty(pfn);
    return p;
  }

  /** clear_page(): contents become zero (and stop costing memory). */
  clear(pfn: Page, nr = 1): void {
    for (let i = 0; i < nr; i++) {
      this.#pages.delete(pfn + i);
      this.#dirty(pfn + i);
    }
  }

  /** memset(0) over a physical range; pages never written stay unallocated. */
  zero(phys: number, len: number): void {
    forEachPage(phys, len, (pfn, o, n) => {
      const p = this.#get(pfn);
      if (!p) return;
      p.fill(0, o, o + n);
      this.#dirty(pfn);
    });
  }

  /** copy_highpage() */
  copyPage(dst: Page, src: Page): void {
    const s = this.#get(src);
    if (!s) this.clear(dst);
    else this.writablePage(dst).set(s);
  }

  read(phys: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    forEachPage(phys, len, (pfn, o, n, off) => {
      const p = this.#get(pfn);
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
