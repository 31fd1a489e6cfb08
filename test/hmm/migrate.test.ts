// migrate_vma() (spec mm-hmm R4.4; mm/migrate.c of 4.20 and 5.0): the argument checks, src[]
// as collected, what stays behind (pinned pages, page-cache pages, pages the driver gave no
// destination), the reverse-map unmap of pages another process maps, holes filled by
// migrate_vma_insert_page(), what finalize_and_map() sees, and every reference count after.

import { describe, expect, it } from "vitest";
import { EINVAL } from "../../core/errno.ts";
import type { Kernel } from "../../core/kernel.ts";
import {
  migrate_pfn, migrate_pfn_to_page, MIGRATE_PFN_DEVICE, MIGRATE_PFN_LOCKED, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_PFN_WRITE,
  type MigrateVmaOps,
} from "../../core/mm/migrate.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { MM_ANONPAGES, VM_DONTEXPAND, VM_HUGETLB, VM_IO, VM_MIXEDMAP, VM_PFNMAP, type VmArea } from "../../core/mm/mm_types.ts";
import { PG_locked } from "../../core/mm/page-flags.ts";
import { pte_write } from "../../core/mm/pgtable.ts";
import { Gpu, gpuApp, mirrorOf, teardown } from "../helpers/hmm-driver.ts";
import { boot } from "../helpers/kernel.ts";
import { pageFlags } from "../helpers/mm.ts";
import { deviceEntry, hex, mapcount, PAGE, pfnOf, pteOf, refcount } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const V = MIGRATE_PFN_VALID;
const M = MIGRATE_PFN_MIGRATE;
const L = MIGRATE_PFN_LOCKED;
const W = MIGRATE_PFN_WRITE;
const D = MIGRATE_PFN_DEVICE;
const mp = (pfn: number, flags: number) => migrate_pfn(pfn) - V + flags;
const r = (s: number, e: number) => `${hex(s)}-${hex(e)}`;

/** Ops that record src[] as alloc_and_copy() sees it and give no destination. */
function recordingOps(seen: number[][]): MigrateVmaOps {
  return {
    alloc_and_copy: (_vma, src) => void seen.push([...src]),
    finalize_and_map: (_vma, src) => void seen.push([...src]),
  };
}

const free = (k: Kernel) => k.mm.pageAlloc.nr_free_pages();

for (const version of ["4.20", "5.0"] as const) {
  describe(`${version}: migrate_vma`, () => {
    it("-EINVAL: no vma, ops, src or dst; start >= end (after rounding down); the range outside the vma; hugetlb or VM_SPECIAL", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const a = p.mmap(0, 4 * PAGE, RW, ANON);
      p.write(a, [1]);
      const vma = p.mm!.find_vma(a)!;
      const seen: number[][] = [];
      const ops = recordingOps(seen);
      const src = new Float64Array(8).fill(7);
      const dst = new Float64Array(8);
      const mig = (o: MigrateVmaOps | null, v: VmArea | null, s: number, e: number, sa: Float64Array | null = src, da: Float64Array | null = dst) =>
        k.mm.migration.migrate_vma(o, v, s, e, sa, da, null);
      expect(mig(ops, null, a, a + PAGE)).toBe(-EINVAL);
      expect(mig(null, vma, a, a + PAGE)).toBe(-EINVAL);
      expect(mig(ops, vma, a, a + PAGE, null)).toBe(-EINVAL);
      expect(mig(ops, vma, a, a + PAGE, src, null)).toBe(-EINVAL);
      expect(mig(ops, vma, a, a)).toBe(-EINVAL);
      expect(mig(ops, vma, a + PAGE, a)).toBe(-EINVAL);
      expect(mig(ops, vma, a, a + 100)).toBe(-EINVAL); // end &= PAGE_MASK: a
      expect(mig(ops, vma, a - PAGE, a + PAGE)).toBe(-EINVAL);
      expect(mig(ops, vma, a + 4 * PAGE, a + 5 * PAGE)).toBe(-EINVAL);
      expect(mig(ops, vma, a, a + 5 * PAGE)).toBe(-EINVAL);
      for (const flag of [VM_HUGETLB, VM_IO, VM_PFNMAP, VM_MIXEDMAP, VM_DONTEXPAND]) {
        vma.vm_flags |= flag;
        expect(mig(ops, vma, a, a + PAGE)).toBe(-EINVAL);
        vma.vm_flags &= ~flag;
      }
      // Nothing was collected, src[] was not even cleared.
      expect([seen, [...src].every((v) => v === 7)]).toEqual([[], true]);
      // Unaligned bounds are rounded down: [a+100, a+PAGE+100) is the page at a.
      expect(mig(ops, vma, a + 100, a + PAGE + 100)).toBe(0);
      // (memset() clears the range's entries only; the callbacks see the whole array.)
      expect(seen).toEqual([
        [mp(pfnOf(p, a), V | M | L | W), 7, 7, 7, 7, 7, 7, 7],
        [mp(pfnOf(p, a), V | L | W), 7, 7, 7, 7, 7, 7, 7],
      ]);
      p.exit();
    });

    it("src[] as collected: holes and the zero page MIGRATE only; pages pfn|MIGRATE|LOCKED[|WRITE]; device-private entries with DEVICE", async () => {
      const { k, gpu, p, a } = await gpuApp(version, 6);
      p.read(a + PAGE, 1);
      p.write(a + 2 * PAGE, [2]);
      p.write(a + 3 * PAGE, [3]);
      gpu.migrateToDevice(p, a + 3 * PAGE, 1);
      const [d3] = [...gpu.inUse];
      p.write(a + 4 * PAGE, [4]);
      const vma = p.mm!.find_vma(a)!;
      const pfn2 = pfnOf(p, a + 2 * PAGE);
      const pfn4 = pfnOf(p, a + 4 * PAGE);
      const seen: number[][] = [];
      const src = new Float64Array(6);
      const dst = new Float64Array(6);
      expect(k.mm.migration.migrate_vma(recordingOps(seen), vma, a, a + 6 * PAGE, src, dst, null)).toBe(0);
      const collected = [M, M, mp(pfn2, V | M | L | W), mp(d3!, V | M | L | W | D), mp(pfn4, V | M | L | W), M];
      expect(seen[0]).toEqual(collected);
      // No destination anywhere: migrate_vma_pages() cleared MIGRATE, finalize restored all;
      // LOCKED stays in src[] (nothing clears it).
      const restored = [0, 0, mp(pfn2, V | L | W), mp(d3!, V | L | W | D), mp(pfn4, V | L | W), 0];
      expect(seen[1]).toEqual(restored);
      expect([...src]).toEqual(restored);
      expect([pfnOf(p, a + 2 * PAGE), pte_write(pteOf(p, a + 2 * PAGE)), deviceEntry(p, a + 3 * PAGE), pteOf(p, a)]).toEqual([pfn2, true, [d3, true], 0]);
      expect(pfnOf(p, a + PAGE)).toBe(k.mm.zeroPfn);
      for (const pg of [pfn2, pfn4, d3!]) expect(pageFlags(k, pg) & (1 << PG_locked), `page ${hex(pg)} unlocked`).toBe(0);
      expect([refcount(k, pfn2), mapcount(k, pfn2), refcount(k, d3!), mapcount(k, d3!)]).toEqual([1, 1, 2, 1]);

      // After fork the same pages are read-only: no WRITE.
      const c = p.fork();
      seen.length = 0;
      expect(k.mm.migration.migrate_vma(recordingOps(seen), vma, a + 2 * PAGE, a + 5 * PAGE, new Float64Array(3), new Float64Array(3), null)).toBe(0);
      expect(seen[0]).toEqual([mp(pfn2, V | M | L), mp(d3!, V | M | L | D), mp(pfn4, V | M | L)]);
      // Restored in both processes, with their mappings and references.
      for (const q of [p, c]) expect([pfnOf(q, a + 2 * PAGE), deviceEntry(q, a + 3 * PAGE), pfnOf(q, a + 4 * PAGE)]).toEqual([pfn2, [d3, false], pfn4]);
      expect([refcount(k, pfn2), mapcount(k, pfn2), refcount(k, d3!), mapcount(k, d3!)]).toEqual([2, 2, 3, 2]);
      c.exit();
      p.exit();
      expect(gpu.freed).toEqual([d3]);
      gpu.remove();
    });

    it("page-cache (memfd) pages are collected but never moved to device-private memory: MIGRATE cleared, the device pages go back", async () => {
      const k = await boot({ version });
      const gpu = new Gpu(k);
      const p = k.spawn("app");
      const fd = p.memfd_create("buf");
      p.ftruncate(fd, 3 * PAGE);
      const a = p.mmap(0, 3 * PAGE, RW, MAP_SHARED, fd);
      p.write(a, [1]);
      p.write(a + PAGE, [2]);
      const pfn0 = pfnOf(p, a);
      const pfn1 = pfnOf(p, a + PAGE);
      const m = mirrorOf(k, p);
      const res = gpu.migrateToDevice(p, a, 3);
      expect(res.ret).toBe(0);
      // Page 2 is a hole of a file mapping: migrate_vma_insert_page() only fills anonymous vmas.
      expect([...res.finalized!]).toEqual([mp(pfn0, V | L | W), mp(pfn1, V | L | W), 0]);
      expect(res.dst.map(migrate_pfn_to_page).every((pg) => pg >= 0)).toBe(true);
      // Each device page was taken (get_page + lock) and, unused, put back (unlock + put_page).
      expect(gpu.freed).toEqual([...res.dst].map(migrate_pfn_to_page));
      expect(gpu.inUse.size).toBe(0);
      expect(m.take()).toEqual([r(a, a + 3 * PAGE), r(a + 2 * PAGE, a + 3 * PAGE)]);
      // The ptes are back (file rmap), the data is intact.
      expect([pfnOf(p, a), pfnOf(p, a + PAGE), pteOf(p, a + 2 * PAGE)]).toEqual([pfn0, pfn1, 0]);
      expect([refcount(k, pfn0), mapcount(k, pfn0), [...p.read(a, 1)], [...p.read(a + PAGE, 1)]]).toEqual([2, 1, [1], [2]]);
      teardown(k, [m], [p], gpu);
    });

    it("a page with an extra reference fails migrate_vma_check_page(): restored, src 0, no destination asked for", async () => {
      const { k, gpu, p, a } = await gpuApp(version, 3, [10, 11, 12]);
      const pfns = [0, 1, 2].map((i) => pfnOf(p, a + i * PAGE));
      k.mm.get_page(pfns[1]!);
      const res = gpu.migrateToDevice(p, a, 3);
      expect(res.finalized![1]).toBe(0);
      expect([res.src[1], res.dst[1]]).toEqual([0, 0]);
      expect([...res.finalized!].map((v) => v % 64)).toEqual([V | M | L | W, 0, V | M | L | W]);
      expect([pfnOf(p, a + PAGE), pte_write(pteOf(p, a + PAGE)), refcount(k, pfns[1]!), mapcount(k, pfns[1]!)]).toEqual([pfns[1], true, 2, 1]);
      expect(pageFlags(k, pfns[1]!) & (1 << PG_locked)).toBe(0);
      expect(gpu.inUse.size).toBe(2);
      k.mm.put_page(pfns[1]!);
      // With every page pinned, nothing is left after prepare: no callback at all.
      const b = p.mmap(0, PAGE, RW, ANON);
      p.write(b, [1]);
      const pb = pfnOf(p, b);
      k.mm.get_page(pb);
      const none = gpu.migrateToDevice(p, b, 1);
      expect([none.ret, none.finalized, [...none.src], gpu.inUse.size]).toEqual([0, null, [0], 2]);
      k.mm.put_page(pb);
      expect([...p.read(a, 1), ...p.read(a + PAGE, 1), ...p.read(a + 2 * PAGE, 1)]).toEqual([10, 11, 12]);
      p.exit();
      gpu.remove();
    });

    it("pages mapped in two processes after fork: unmapped from both through the reverse map; both get the device entry", async () => {
      const { k, gpu, p, a } = await gpuApp(version, 2, [1, 2]);
      const c = p.fork();
      const mp_ = mirrorOf(k, p);
      const mc = mirrorOf(k, c);
      const old = [pfnOf(p, a), pfnOf(p, a + PAGE)];
      const f0 = free(k);
      const res = gpu.migrateToDevice(p, a, 2);
      expect([...res.finalized!].map((v) => v % 64)).toEqual([V | M | L, V | M | L]);
      const dev = [...res.dst].map(migrate_pfn_to_page);
      // collect's invalidation of the range; then try_to_unmap_one() per page for each vma the
      // reverse map gives (the parent's, whose pte collect already replaced, then the child's).
      expect(mp_.take()).toEqual([r(a, a + 2 * PAGE), r(a, a + PAGE), r(a + PAGE, a + 2 * PAGE)]);
      expect(mc.take()).toEqual([r(a, a + PAGE), r(a + PAGE, a + 2 * PAGE)]);
      for (const q of [p, c]) expect([deviceEntry(q, a), deviceEntry(q, a + PAGE)]).toEqual([[dev[0], false], [dev[1], false]]);
      expect(dev.map((d) => [refcount(k, d), mapcount(k, d)])).toEqual([[3, 2], [3, 2]]);
      // The old pages went back to the buddy allocator.
      expect([free(k) - f0, refcount(k, old[0]!), refcount(k, old[1]!)]).toEqual([2, 0, 0]);
      expect([p.mm!.rss[MM_ANONPAGES], c.mm!.rss[MM_ANONPAGES]]).toEqual([2, 2]);
      teardown(k, [mc, mp_], [c]);
      expect(dev.map((d) => [refcount(k, d), mapcount(k, d)])).toEqual([[2, 1], [2, 1]]);
      p.exit();
      expect(gpu.freed).toEqual(dev);
      gpu.remove();
    });

    it("holes and zero-page ptes get a fresh device page (migrate_vma_insert_page), writable as the vma, inside [first hole, end)", async () => {
      const { k, gpu, p, a } = await gpuApp(version, 3, [1]);
      p.read(a + 2 * PAGE, 1);
      const m = mirrorOf(k, p);
      expect(p.mm!.rss[MM_ANONPAGES]).toBe(1);
      const res = gpu.migrateToDevice(p, a, 3);
      const [d0, d1, d2] = [...res.dst].map(migrate_pfn_to_page);
      expect([...res.dst].map((v) => v % 64)).toEqual([V | L | D, V | L | D, V | L | D]);
      expect([...res.finalized!]).toEqual([mp(migrate_pfn_to_page(res.finalized![0]!), V | M | L | W), M, M]);
      expect([...res.src]).toEqual([...res.finalized!]);
      expect(m.take()).toEqual([r(a, a + 3 * PAGE), r(a + PAGE, a + 3 * PAGE)]);
      expect([deviceEntry(p, a), deviceEntry(p, a + PAGE), deviceEntry(p, a + 2 * PAGE)]).toEqual([[d0, true], [d1, true], [d2, true]]);
      expect([d0, d1, d2].map((d) => [refcount(k, d!), mapcount(k, d!)])).toEqual([[2, 1], [2, 1], [2, 1]]);
      expect(p.mm!.rss[MM_ANONPAGES]).toBe(3);
      // The filled pages read as zeroes (brought back by the CPU fault).
      expect([...p.read(a + PAGE, 2), ...p.read(a + 2 * PAGE, 2), ...p.read(a, 1)]).toEqual([0, 0, 0, 0, 1]);

      // A driver that gives holes nothing: MIGRATE is cleared, no second invalidation.
      gpu.fillHoles = false;
      const b = p.mmap(0, 2 * PAGE, RW, ANON);
      p.write(b, [9]);
      m.take();
      const res2 = gpu.migrateToDevice(p, b, 2);
      expect([...res2.finalized!].map((v) => v % 64)).toEqual([V | M | L | W, 0]);
      expect([res2.src[1], pteOf(p, b + PAGE), m.take()]).toEqual([0, 0, [r(b, b + 2 * PAGE)]]);
      teardown(k, [m], [p], gpu);
    });

    it("finalize_and_map() sees MIGRATE exactly for what moved; afterwards old pages are free, device pages mapped (2) and idle (1) after munmap", async () => {
      const { k, gpu, p, a } = await gpuApp(version, 4, [1, undefined, 3]);
      p.read(a + 3 * PAGE, 1);
      const w0 = pfnOf(p, a);
      const w2 = pfnOf(p, a + 2 * PAGE);
      k.mm.get_page(w2);
      const f0 = free(k);
      const res = gpu.migrateToDevice(p, a, 4);
      const moved = [...res.finalized!].map((v) => (v % 64 & M ? 1 : 0));
      expect(moved).toEqual([1, 1, 0, 1]);
      expect(res.finalized![0]).toBe(mp(w0, V | M | L | W));
      const dev = [0, 1, 3].map((i) => migrate_pfn_to_page(res.dst[i]!));
      expect(res.dst[2]).toBe(0);
      // w0 went back to the allocator; w2 stayed (mapped and pinned).
      expect([free(k) - f0, refcount(k, w0), refcount(k, w2), mapcount(k, w2), pfnOf(p, a + 2 * PAGE)]).toEqual([1, 0, 2, 1, w2]);
      expect(dev.map((d) => [refcount(k, d), mapcount(k, d)])).toEqual([[2, 1], [2, 1], [2, 1]]);
      expect(p.mm!.rss[MM_ANONPAGES]).toBe(4);
      expect(gpu.freed).toEqual([]);
      // munmap: each device page back to refcount 1, and to the driver, exactly once.
      p.munmap(a, 4 * PAGE);
      expect(gpu.freed).toEqual(dev);
      expect(dev.map((d) => [refcount(k, d), mapcount(k, d)])).toEqual([[1, 0], [1, 0], [1, 0]]);
      expect([refcount(k, w2), mapcount(k, w2)]).toEqual([1, 0]);
      k.mm.put_page(w2);
      expect(free(k) - f0).toBe(2);
      p.exit();
      expect(gpu.freed).toEqual(dev);
      gpu.remove();
    });

    it("device pages migrated to the device again: the driver skips them (DEVICE), they are restored untouched", async () => {
      const { k, gpu, p, a } = await gpuApp(version, 1, [1]);
      gpu.migrateToDevice(p, a, 1);
      const [d] = [...gpu.inUse];
      const res = gpu.migrateToDevice(p, a, 1);
      expect([...res.finalized!]).toEqual([mp(d!, V | L | W | D)]);
      expect([deviceEntry(p, a), refcount(k, d!), mapcount(k, d!), gpu.freed]).toEqual([[d, true], 2, 1, []]);
      expect([...gpu.vram(d!, 0, 1)]).toEqual([1]);
      p.exit();
      gpu.remove();
    });
  });
}
