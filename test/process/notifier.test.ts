// MMU notifiers see every change of a process's ptes where the 4.20 kernel calls them, with
// the kernel's exact ranges: munmap (the whole range), mprotect (from the first populated pmd
// to the end of the 1 GiB piece, none when nothing was touched), COW (the page), fork (the
// private vmas fork write-protects), exit (release only: it unhashes the notifiers first).

import { describe, expect, it } from "vitest";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { PMD_SIZE } from "../../core/mm/mm_types.ts";
import { boot } from "../helpers/kernel.ts";
import { hex, PAGE, recordNotifier } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const range = (s: number, e: number) => [`start ${hex(s)}-${hex(e)}`, `end ${hex(s)}-${hex(e)}`];

describe("mmu notifier invalidations", () => {
  it("munmap: [start, end) of the call, touched or not; nothing when nothing is mapped there", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 8 * PAGE, RW, ANON);
    p.write(a, [1]);
    const ev = recordNotifier(p);
    p.munmap(a + 2 * PAGE, 3 * PAGE);
    expect(ev.splice(0)).toEqual(range(a + 2 * PAGE, a + 5 * PAGE));
    p.munmap(a - 64 * PAGE, 4 * PAGE);
    expect(ev).toEqual([]);
    // A range over a hole and both neighbours: one invalidation of all of it.
    p.munmap(a, 8 * PAGE);
    expect(ev).toEqual(range(a, a + 8 * PAGE));
  });

  it("mprotect: from the first pmd with a page table to the end; none for an untouched range", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 16 * PAGE, RW, ANON);
    const ev = recordNotifier(p);
    p.mprotect(a, 4 * PAGE, PROT_READ);
    expect(ev.splice(0)).toEqual([]);
    p.write(a + 8 * PAGE, [1]);
    p.mprotect(a + 6 * PAGE, 4 * PAGE, PROT_READ);
    expect(ev.splice(0)).toEqual(range(a + 6 * PAGE, a + 10 * PAGE));
  });

  it("mprotect over two pmds with only the second populated starts at the pmd boundary", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 4 * PMD_SIZE, RW, ANON);
    const boundary = Math.ceil((a + 16 * PAGE) / PMD_SIZE) * PMD_SIZE;
    p.write(boundary + 5 * PAGE, [1]);
    const ev = recordNotifier(p);
    const end = boundary + PMD_SIZE;
    p.mprotect(boundary - 8 * PAGE, end - (boundary - 8 * PAGE), PROT_READ);
    expect(ev).toEqual(range(boundary, end));
  });

  it("copy-on-write: the page, around the pte switch; reuse needs none", async () => {
    const k = await boot();
    const parent = k.spawn("app");
    const a = parent.mmap(0, 2 * PAGE, RW, ANON);
    parent.write(a, [1]);
    parent.write(a + PAGE, [1]);
    const ev = recordNotifier(parent);
    const child = parent.fork();
    expect(ev.splice(0)).toEqual(range(a, a + 2 * PAGE));
    parent.write(a + PAGE + 3, [2]);
    expect(ev.splice(0)).toEqual(range(a + PAGE, a + 2 * PAGE));
    child.exit();
    parent.write(a, [2]); // mapped once now: reused in place
    expect(ev).toEqual([]);
  });

  it("a write to the zero page is a COW too", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    p.read(a, 1);
    const ev = recordNotifier(p);
    p.write(a, [1]);
    expect(ev).toEqual(range(a, a + PAGE));
  });

  it("fork: only private vmas with anonymous pages are write-protected (and notified)", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const s = p.mmap(0, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS);
    const untouched = p.mmap(0, PAGE, PROT_READ, ANON);
    const a = p.mmap(0, 3 * PAGE, RW, ANON);
    p.write(s, [1]);
    p.read(untouched, 1);
    p.write(a + PAGE, [1]);
    const ev = recordNotifier(p);
    p.fork();
    expect(ev).toEqual(range(a, a + 3 * PAGE));
  });

  it("exit: release, then nothing (exit_mmap's unmap finds the notifiers gone)", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    p.write(a, [1]);
    const ev = recordNotifier(p);
    p.exit();
    expect(ev).toEqual(["release"]);
  });
});
