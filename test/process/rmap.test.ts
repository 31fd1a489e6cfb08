// The reverse map (mm/rmap.c): from a page to every pte that maps it, through fork's anon_vma
// chains and a file's i_mmap; and the memory lines of /proc/PID/status that the rss counters
// feed.

import { describe, expect, it } from "vitest";
import type { Process } from "../../core/kernel/process.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { page_vma_mapped, rmap_walk } from "../../core/mm/rmap.ts";
import { boot } from "../helpers/kernel.ts";
import { PAGE, pfnOf } from "../helpers/process.ts";
import type { Kernel } from "../../core/kernel.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** rmap_walk() over `page`: "pid@address" of every vma whose pte maps it. */
function walk(k: Kernel, procs: Process[], page: number): string[] {
  const out: string[] = [];
  rmap_walk(k.mm, page, (vma, addr) => {
    if (!page_vma_mapped(vma.vm_mm, addr, page)) return;
    const p = procs.find((q) => q.mm === vma.vm_mm);
    out.push(`${p?.pid}@${addr.toString(16)}`);
  });
  return out.sort();
}

describe("rmap_walk", () => {
  it("finds the parent's and the child's pte of a page shared by fork, and only the owner's after COW", async () => {
    const k = await boot();
    const parent = k.spawn("app");
    const a = parent.mmap(0, 4 * PAGE, RW, ANON);
    parent.write(a + 2 * PAGE, [1]);
    const page = pfnOf(parent, a + 2 * PAGE);
    const child = parent.fork();
    const grandchild = child.fork();
    const all = [parent, child, grandchild];
    const at = (a + 2 * PAGE).toString(16);
    expect(walk(k, all, page)).toEqual([`${parent.pid}@${at}`, `${child.pid}@${at}`, `${grandchild.pid}@${at}`].sort());
    child.write(a + 2 * PAGE, [2]);
    expect(walk(k, all, page)).toEqual([`${parent.pid}@${at}`, `${grandchild.pid}@${at}`].sort());
    expect(walk(k, all, pfnOf(child, a + 2 * PAGE))).toEqual([`${child.pid}@${at}`]);
  });

  it("finds the page after the vma was split and moved apart by munmap", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 8 * PAGE, RW, ANON);
    p.write(a + 6 * PAGE, [1]);
    p.munmap(a + 2 * PAGE, 2 * PAGE);
    expect(walk(k, [p], pfnOf(p, a + 6 * PAGE))).toEqual([`${p.pid}@${(a + 6 * PAGE).toString(16)}`]);
  });

  it("finds every process mapping a file page, at each one's address", async () => {
    const k = await boot();
    const p1 = k.spawn("a");
    const fd = p1.memfd_create("f");
    p1.ftruncate(fd, 4 * PAGE);
    const p2 = p1.fork();
    const m1 = p1.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd);
    p1.mmap(0, 8 * PAGE, RW, ANON); // p2's mapping lands elsewhere
    const m2 = p2.mmap(0, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 2 * PAGE);
    p1.write(m1 + 3 * PAGE, [1]);
    p2.read(m2 + PAGE, 1);
    const page = pfnOf(p1, m1 + 3 * PAGE);
    expect(walk(k, [p1, p2], page)).toEqual([`${p1.pid}@${(m1 + 3 * PAGE).toString(16)}`, `${p2.pid}@${(m2 + PAGE).toString(16)}`].sort());
  });
});

describe("/proc/PID/status", () => {
  it("VmSize, VmRSS and the Rss split follow the mappings and the ptes", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 16 * PAGE, RW, ANON);
    for (let i = 0; i < 5; i++) p.write(a + i * PAGE, [1]);
    const s = p.mmap(0, 4 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.write(s, [1]);
    const status = k.read(`/proc/${p.pid}/status`);
    const line = (name: string) => status.split("\n").find((l) => l.startsWith(name + ":"));
    expect(status.startsWith(`Name:\tapp\nPid:\t${p.pid}\nPPid:\t1\n`)).toBe(true);
    expect(line("VmSize")).toBe("VmSize:\t      80 kB");
    expect(line("VmRSS")).toBe("VmRSS:\t      24 kB");
    expect(line("RssAnon")).toBe("RssAnon:\t      20 kB");
    expect(line("RssFile")).toBe("RssFile:\t       0 kB");
    expect(line("RssShmem")).toBe("RssShmem:\t       4 kB");
    expect(line("VmData")).toBe("VmData:\t      64 kB");
    p.munmap(a, 16 * PAGE);
    const after = k.read(`/proc/${p.pid}/status`);
    expect(after).toContain("VmRSS:\t       4 kB\n");
    expect(after).toContain("VmHWM:\t      24 kB\n");
    expect(after).toContain("VmPeak:\t      80 kB\n");
  });
});
