// /proc/meminfo's page-cache and mapping lines (meminfo_proc_show() of 4.20/5.0): AnonPages
// is NR_ANON_MAPPED, Mapped NR_FILE_MAPPED, Shmem NR_SHMEM, Cached NR_FILE_PAGES (no swap
// cache, no buffers in kemu). They follow what processes map and what tmpfs holds.

import { describe, expect, it } from "vitest";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { boot } from "../helpers/kernel.ts";
import { meminfo } from "../helpers/mm.ts";
import { PAGE } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const LINES = ["AnonPages", "Mapped", "Shmem", "Cached"] as const;

function lines(k: Parameters<typeof meminfo>[0]): Record<(typeof LINES)[number], number> {
  const m = meminfo(k);
  return Object.fromEntries(LINES.map((l) => [l, m.get(l)!])) as Record<(typeof LINES)[number], number>;
}

describe("meminfo: AnonPages, Mapped, Shmem, Cached", () => {
  it("count touched anonymous pages, tmpfs pages and their mappings, and go back to zero", async () => {
    const k = await boot();
    expect(lines(k)).toEqual({ AnonPages: 0, Mapped: 0, Shmem: 0, Cached: 0 });
    const p = k.spawn("app");
    const anon = p.mmap(0, 16 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    p.write(anon, new Uint8Array(16 * PAGE).fill(1));
    expect(lines(k)).toEqual({ AnonPages: 64, Mapped: 0, Shmem: 0, Cached: 0 });

    const fd = p.memfd_create("data");
    p.ftruncate(fd, 8 * PAGE);
    const shm = p.mmap(0, 8 * PAGE, RW, MAP_SHARED, fd, 0);
    p.write(shm, new Uint8Array(8 * PAGE).fill(2));
    expect(lines(k)).toEqual({ AnonPages: 64, Mapped: 32, Shmem: 32, Cached: 32 });

    // A second process mapping the same pages: still one page each in the counters.
    const child = p.fork();
    expect(lines(k)).toEqual({ AnonPages: 64, Mapped: 32, Shmem: 32, Cached: 32 });
    child.exit();

    p.munmap(shm, 8 * PAGE);
    expect(lines(k)).toEqual({ AnonPages: 64, Mapped: 0, Shmem: 32, Cached: 32 });
    p.munmap(anon, 16 * PAGE);
    expect(lines(k)).toEqual({ AnonPages: 0, Mapped: 0, Shmem: 32, Cached: 32 });
    p.exit();
    expect(lines(k)).toEqual({ AnonPages: 0, Mapped: 0, Shmem: 0, Cached: 0 });
  });
});
