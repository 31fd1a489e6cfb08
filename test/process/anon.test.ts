// Anonymous memory through the fault path (mm/memory.c): the zero page for reads, a zeroed
// page for the first write, copy-on-write after fork with reuse once the page is ours alone,
// and MAP_SHARED anonymous memory (a tmpfs file) shared across fork.

import { describe, expect, it } from "vitest";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { MM_ANONPAGES, MM_SHMEMPAGES, MMAP_BASE } from "../../core/mm/mm_types.ts";
import { pte_dirty, pte_special, pte_write } from "../../core/mm/pgtable.ts";
import { boot } from "../helpers/kernel.ts";
import { mapcount, PAGE, pfnOf, pteOf, refcount } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe("anonymous private memory", () => {
  it("is placed top-down below mmap_base (0x7ffff7fff000 without randomisation)", async () => {
    const k = await boot();
    const p = k.spawn("app");
    expect(p.mmap(0, 4 * PAGE, RW, ANON)).toBe(MMAP_BASE - 4 * PAGE);
    expect(MMAP_BASE).toBe(0x7ffff7fff000);
    expect(p.mmap(0, PAGE, RW, ANON)).toBe(MMAP_BASE - 5 * PAGE);
  });

  it("a read fault maps the zero page read-only with a special pte and takes no reference", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 2 * PAGE, RW, ANON);
    const zero = k.mm.zeroPfn;
    const ref = refcount(k, zero);
    const free = k.mm.pageAlloc.nr_free_pages();
    expect(p.read(a + 100, 8)).toEqual(new Uint8Array(8));
    expect(pfnOf(p, a)).toBe(zero);
    expect(pte_special(pteOf(p, a))).toBe(true);
    expect(pte_write(pteOf(p, a))).toBe(false);
    expect(refcount(k, zero)).toBe(ref);
    expect(p.mm!.rss[MM_ANONPAGES]).toBe(0);
    expect(k.mm.pageAlloc.nr_free_pages()).toBe(free);
    // The other page was not touched.
    expect(pteOf(p, a + PAGE)).toBe(0);
  });

  it("a write fault allocates a zeroed page, mapped writable and dirty, mapcount 1", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    const free = k.mm.pageAlloc.nr_free_pages();
    p.write(a + 10, [1, 2, 3]);
    const pfn = pfnOf(p, a);
    expect(pfn).not.toBe(k.mm.zeroPfn);
    expect(pte_write(pteOf(p, a)) && pte_dirty(pteOf(p, a))).toBe(true);
    expect([refcount(k, pfn), mapcount(k, pfn)]).toEqual([1, 1]);
    expect(k.mm.pageAlloc.nr_free_pages()).toBe(free - 1);
    expect(p.mm!.rss[MM_ANONPAGES]).toBe(1);
    expect([...p.read(a + 8, 6)]).toEqual([0, 0, 1, 2, 3, 0]);
  });

  it("a write after a read replaces the zero page with a new zeroed page", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    p.read(a, 1);
    p.write(a + 1, [7]);
    expect(pfnOf(p, a)).not.toBe(k.mm.zeroPfn);
    expect([...p.read(a, 3)]).toEqual([0, 7, 0]);
    expect(p.mm!.rss[MM_ANONPAGES]).toBe(1);
  });

  it("after fork the page is shared read-only (mapcount 2) until a write copies it", async () => {
    const k = await boot();
    const parent = k.spawn("app");
    const a = parent.mmap(0, 2 * PAGE, RW, ANON);
    parent.write(a, [1, 1, 1]);
    parent.write(a + PAGE, [5]);
    const child = parent.fork();
    const pfn = pfnOf(parent, a);
    expect(pfnOf(child, a)).toBe(pfn);
    expect(pte_write(pteOf(parent, a)) || pte_write(pteOf(child, a))).toBe(false);
    expect([refcount(k, pfn), mapcount(k, pfn)]).toEqual([2, 2]);
    expect(child.mm!.rss[MM_ANONPAGES]).toBe(2);

    child.write(a + 1, [9]);
    const copy = pfnOf(child, a);
    expect(copy).not.toBe(pfn);
    expect([...child.read(a, 3)]).toEqual([1, 9, 1]);
    expect([...parent.read(a, 3)]).toEqual([1, 1, 1]);
    expect([refcount(k, pfn), mapcount(k, pfn)]).toEqual([1, 1]);
    expect([refcount(k, copy), mapcount(k, copy)]).toEqual([1, 1]);

    // The parent is the only one left on its page: the write reuses it, nothing is allocated.
    expect(pte_write(pteOf(parent, a))).toBe(false);
    const free = k.mm.pageAlloc.nr_free_pages();
    parent.write(a + 2, [4]);
    expect(pfnOf(parent, a)).toBe(pfn);
    expect(pte_write(pteOf(parent, a))).toBe(true);
    expect(k.mm.pageAlloc.nr_free_pages()).toBe(free);
    expect([...parent.read(a, 3)]).toEqual([1, 1, 4]);
    expect([...child.read(a, 3)]).toEqual([1, 9, 1]);
    // The second page is still shared; the child sees the parent's data.
    expect([...child.read(a + PAGE, 1)]).toEqual([5]);
  });

  it("a child's exit leaves the parent's pages mapped once, and the parent's write reuses them", async () => {
    const k = await boot();
    const parent = k.spawn("app");
    const a = parent.mmap(0, PAGE, RW, ANON);
    parent.write(a, [3]);
    const pfn = pfnOf(parent, a);
    const child = parent.fork();
    expect(mapcount(k, pfn)).toBe(2);
    child.exit();
    expect([refcount(k, pfn), mapcount(k, pfn)]).toEqual([1, 1]);
    parent.write(a, [4]);
    expect(pfnOf(parent, a)).toBe(pfn);
  });

  it("private memory untouched at fork is not copied: the child faults its own zero page", async () => {
    const k = await boot();
    const parent = k.spawn("app");
    const a = parent.mmap(0, PAGE, RW, ANON);
    parent.read(a, 1); // the zero page only: no anon_vma, nothing for fork to copy
    const child = parent.fork();
    expect(pteOf(child, a)).toBe(0);
    expect([...child.read(a, 1)]).toEqual([0]);
    expect(pfnOf(child, a)).toBe(k.mm.zeroPfn);
  });
});

describe("anonymous shared memory", () => {
  it("is a tmpfs file shared across fork: each side sees the other's writes", async () => {
    const k = await boot();
    const parent = k.spawn("app");
    const s = parent.mmap(0, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS);
    parent.write(s, [1, 2]);
    const child = parent.fork();
    // copy_page_range() skips shared mappings: the child faults the cache page in.
    expect(pteOf(child, s)).toBe(0);
    expect(child.mm!.rss[MM_SHMEMPAGES]).toBe(0);
    expect([...child.read(s, 2)]).toEqual([1, 2]);
    expect(pfnOf(child, s)).toBe(pfnOf(parent, s));
    child.write(s + PAGE + 5, [42]);
    expect([...parent.read(s + PAGE + 5, 1)]).toEqual([42]);
    expect(pfnOf(parent, s + PAGE)).toBe(pfnOf(child, s + PAGE));
    // Page cache reference + one per pte.
    expect([refcount(k, pfnOf(parent, s)), mapcount(k, pfnOf(parent, s))]).toEqual([3, 2]);
    expect(parent.mm!.rss[MM_SHMEMPAGES]).toBe(2);
  });

  it("a read fault maps the shared page writable at once: no write fault follows", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const s = p.mmap(0, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.read(s, 1);
    expect(pte_write(pteOf(p, s))).toBe(true);
    expect(pfnOf(p, s)).not.toBe(k.mm.zeroPfn);
  });
});
