// tmpfs files (mm/shmem.c) mapped by processes: memfd shared between processes, private
// copies on write, fault-around, SIGBUS beyond EOF, truncation, pread/pwrite through the
// page cache.

import { describe, expect, it } from "vitest";
import { EBADF, EINVAL } from "../../core/errno.ts";
import { BUS_ADRERR, SIGBUS } from "../../core/kernel/signal.ts";
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { MM_ANONPAGES, MM_SHMEMPAGES } from "../../core/mm/mm_types.ts";
import { pte_write } from "../../core/mm/pgtable.ts";
import { boot } from "../helpers/kernel.ts";
import { errnoOf, mapcount, PAGE, pfnOf, pteOf, refcount, signalOf } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;

describe("memfd", () => {
  it("MAP_SHARED in two processes: both map the same page-cache pages and see the same bytes", async () => {
    const k = await boot();
    const p1 = k.spawn("writer");
    const fd = p1.memfd_create("shared");
    p1.ftruncate(fd, 4 * PAGE);
    const p2 = p1.fork(); // inherits the fd
    const m1 = p1.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd);
    const m2 = p2.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd);
    p1.write(m1 + 2 * PAGE + 7, [1, 2, 3]);
    expect([...p2.read(m2 + 2 * PAGE + 7, 3)]).toEqual([1, 2, 3]);
    p2.write(m2, [9]);
    expect([...p1.read(m1, 1)]).toEqual([9]);
    const pfn = pfnOf(p1, m1 + 2 * PAGE);
    expect(pfnOf(p2, m2 + 2 * PAGE)).toBe(pfn);
    // The cache holds one reference, each pte one more.
    expect([refcount(k, pfn), mapcount(k, pfn)]).toEqual([3, 2]);
    expect([...p1.pread(fd, 3, 2 * PAGE + 7)]).toEqual([1, 2, 3]);
    expect(p1.mm!.rss[MM_SHMEMPAGES]).toBe(p1.mm!.get_mm_rss());
  });

  it("a read fault maps the pages of the fault-around window that are in the cache", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const fd = p.memfd_create("fa");
    p.pwrite(fd, new Uint8Array(20 * PAGE).fill(1), 0);
    const m = p.mmap(0, 20 * PAGE, PROT_READ, MAP_SHARED, fd);
    // The fault at page 5 maps the aligned 64 KiB window around it, clipped to the vma.
    const off = (m / PAGE) % 16;
    p.read(m + 5 * PAGE, 1);
    const mapped: number[] = [];
    for (let i = 0; i < 20; i++) if (pteOf(p, m + i * PAGE)) mapped.push(i);
    const first = Math.max(0, 5 - ((off + 5) % 16));
    expect(mapped).toEqual(Array.from({ length: Math.min(20, first + 16) - first }, (_, i) => first + i));
    expect(p.mm!.rss[MM_SHMEMPAGES]).toBe(mapped.length);
  });

  it("MAP_PRIVATE maps the cache page for reading and copies it on write", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const fd = p.memfd_create("priv");
    p.pwrite(fd, Uint8Array.of(5, 6, 7), 0);
    const s = p.mmap(0, PAGE, RW, MAP_SHARED, fd);
    const m = p.mmap(0, PAGE, RW, MAP_PRIVATE, fd);
    expect([...p.read(m, 3)]).toEqual([5, 6, 7]);
    const cache = pfnOf(p, m);
    p.read(s, 1);
    expect(pfnOf(p, s)).toBe(cache);
    expect(pte_write(pteOf(p, m))).toBe(false);
    expect([p.mm!.rss[MM_SHMEMPAGES], p.mm!.rss[MM_ANONPAGES]]).toEqual([2, 0]);
    p.write(m + 1, [0]);
    expect(pfnOf(p, m)).not.toBe(cache);
    expect([...p.read(m, 3)]).toEqual([5, 0, 7]);
    expect([...p.read(s, 3)]).toEqual([5, 6, 7]);
    expect([...p.pread(fd, 3, 0)]).toEqual([5, 6, 7]);
    expect([p.mm!.rss[MM_SHMEMPAGES], p.mm!.rss[MM_ANONPAGES]]).toEqual([1, 1]);
    // A later write through the shared mapping is not seen by the private copy.
    p.write(s, [8]);
    expect([...p.read(m, 1)]).toEqual([5]);
  });

  it("a write fault on a never-read private file page copies straight away (do_cow_fault)", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const fd = p.memfd_create("cow");
    p.pwrite(fd, Uint8Array.of(1, 2), 0);
    const m = p.mmap(0, PAGE, RW, MAP_PRIVATE, fd);
    p.write(m + 1, [3]);
    expect([...p.read(m, 2)]).toEqual([1, 3]);
    expect([...p.pread(fd, 2, 0)]).toEqual([1, 2]);
    expect(p.mm!.rss[MM_ANONPAGES]).toBe(1);
    expect(pte_write(pteOf(p, m))).toBe(true);
  });

  it("an access beyond EOF is SIGBUS BUS_ADRERR, in shared and private mappings", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const fd = p.memfd_create("short");
    p.ftruncate(fd, PAGE + 10);
    const m = p.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd);
    p.write(m + PAGE + 100, [1]); // inside the last, partial page: fine
    const sig = signalOf(() => p.read(m + 2 * PAGE + 5, 1));
    expect([sig.signo, sig.si_code, sig.addr]).toEqual([SIGBUS, BUS_ADRERR, m + 2 * PAGE + 5]);
    const c = p.mmap(0, 4 * PAGE, RW, MAP_PRIVATE, fd);
    expect(signalOf(() => p.write(c + 3 * PAGE, [1])).signo).toBe(SIGBUS);
    // SIGBUS prints no segfault line.
    expect(k.dmesg()).not.toContain("segfault");
  });

  it("truncation unmaps the pages beyond the new size (private copies too) and frees them", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const fd = p.memfd_create("trunc");
    p.ftruncate(fd, 4 * PAGE);
    const m = p.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd);
    const c = p.mmap(0, 4 * PAGE, RW, MAP_PRIVATE, fd);
    for (let i = 0; i < 4; i++) p.write(m + i * PAGE, [i + 1]);
    p.write(c + 3 * PAGE, [9]); // a COW copy beyond the new size
    p.write(m + PAGE + 200, [5]);
    const free = k.mm.pageAlloc.nr_free_pages();
    p.ftruncate(fd, PAGE + 100);
    expect(pteOf(p, m + 2 * PAGE)).toBe(0);
    expect(pteOf(p, c + 3 * PAGE)).toBe(0);
    expect(pteOf(p, m + PAGE)).not.toBe(0);
    // Two cache pages and the private copy are back.
    expect(k.mm.pageAlloc.nr_free_pages()).toBe(free + 3);
    expect(signalOf(() => p.read(m + 3 * PAGE, 1)).signo).toBe(SIGBUS);
    // The tail of the partial page reads zeros.
    expect([...p.read(m + PAGE + 99, 2)]).toEqual([0, 0]);
    expect([...p.read(m + PAGE, 1)]).toEqual([2]);
    // Growing again gives zeroed pages.
    p.ftruncate(fd, 4 * PAGE);
    expect([...p.read(m + 3 * PAGE, 1)]).toEqual([0]);
  });

  it("pread reads holes as zeros without allocating; pwrite extends the file", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const fd = p.memfd_create("rw");
    expect(p.pread(fd, 10, 0)).toEqual(new Uint8Array(0));
    p.ftruncate(fd, 3 * PAGE);
    const free = k.mm.pageAlloc.nr_free_pages();
    expect(p.pread(fd, 4, 2 * PAGE - 2)).toEqual(new Uint8Array(4));
    expect(k.mm.pageAlloc.nr_free_pages()).toBe(free);
    expect(p.pwrite(fd, Uint8Array.of(1, 2, 3), 5 * PAGE - 1)).toBe(3);
    expect(p.pread(fd, 10, 5 * PAGE - 1)).toEqual(Uint8Array.of(1, 2, 3));
    expect(k.mm.pageAlloc.nr_free_pages()).toBe(free - 2);
  });

  it("bad fds and arguments: -EBADF, -EINVAL", async () => {
    const k = await boot();
    const p = k.spawn("app");
    expect(errnoOf(() => p.close(3))).toBe(EBADF);
    expect(errnoOf(() => p.ftruncate(3, 0))).toBe(EBADF);
    expect(errnoOf(() => p.memfd_create("x".repeat(250)))).toBe(EINVAL);
    expect(errnoOf(() => p.memfd_create("x", 0x100))).toBe(EINVAL);
    const fd = p.memfd_create("x".repeat(249));
    expect(fd).toBe(3);
    expect(errnoOf(() => p.ftruncate(fd, -1))).toBe(EINVAL);
    p.close(fd);
    expect(errnoOf(() => p.pread(fd, 1, 0))).toBe(EBADF);
  });

  it("the file lives while a mapping holds it: close, then the mapping still works; munmap frees it", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const free = k.mm.pageAlloc.nr_free_pages();
    const fd = p.memfd_create("held");
    p.ftruncate(fd, 2 * PAGE);
    const m = p.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd);
    p.close(fd);
    p.write(m, [1]);
    p.write(m + PAGE, [2]);
    expect(k.mm.shmem.inodes.size).toBe(1);
    p.munmap(m, 2 * PAGE);
    expect(k.mm.shmem.inodes.size).toBe(0);
    expect(k.mm.pageAlloc.nr_free_pages()).toBe(free);
  });
});
