// hmm_vma_fault() (spec mm-hmm R4.2; mm/hmm.c of 4.20 and 5.0): pfns[] carries the device's
// requests (VALID, WRITE, DEVICE_PRIVATE); a page needs a fault when requested and invalid,
// or when a write is asked of a read-only pte; device memory only when DEVICE_PRIVATE is asked.
//
// What the kernel's walk does beyond the spec's summary, asserted here:
// - hmm_vma_walk_hole_() faults every page from the one that needs it to the end of the walk
//   step: the rest of the pte table's pmd (bounded by the range), or, with no page table,
//   the whole hole from its start (the pmd's, or the pud's or pgd's when those are empty too);
//   all with the write flag of the first page that needed a fault (hmm_range_need_fault()
//   stops there); each faulted page's request is overwritten with NONE, so the walk that
//   restarts at hmm_vma_walk.last does not see the others' write requests any more.
// - handle_mm_fault() always gets FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_REMOTE (4.20 sets
//   ALLOW_RETRY, then ORs it again unless `block`).
// - On VM_FAULT_ERROR, hmm_vma_do_fault() stores the ERROR value, but hmm_vma_fault() then
//   sets NONE from hmm_vma_walk.last — where the failing step began, at or before the failing
//   page — to the end: the driver sees -EFAULT and NONE, never the ERROR value.
// - A fault the range itself causes (a COW, a migration back) invalidates it.

import { describe, expect, it } from "vitest";
import { EFAULT } from "../../core/errno.ts";
import type { Kernel } from "../../core/kernel.ts";
import type { Process } from "../../core/kernel/process.ts";
import type { HmmMm } from "../../core/mm/hmm-mirror.ts";
import { FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_REMOTE, FAULT_FLAG_WRITE, VM_FAULT_LOCKED, VM_FAULT_SIGBUS } from "../../core/mm/memory.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { PMD_SIZE } from "../../core/mm/mm_types.ts";
import { pte_to_swp_entry } from "../../core/mm/pgtable.ts";
import { is_write_device_private_entry } from "../../core/mm/swapops.ts";
import { F_DEVICE, F_VALID, F_WRITE, gpuApp, hpfn, mirrorOf, pfnsOf, rangeOf, teardown, V_NONE } from "../helpers/hmm-driver.ts";
import { boot } from "../helpers/kernel.ts";
import { hex, mapcount, PAGE, pfnOf, pteOf, refcount } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const RD = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_REMOTE;
const WR = RD | FAULT_FLAG_WRITE;

/** handle_mm_fault() calls as "addr flags ret", addresses relative to `base`. */
function faultLog(k: Kernel, base: () => number): string[] {
  const log: string[] = [];
  k.hooks.mm.fault.tap("test", (_vma, addr, flags, ret) => void log.push(`${hex(addr - base())} ${hex(flags)} ${ret}`));
  return log;
}

type Version = "4.20" | "5.0";

/** A kernel, an "app" process with a mirror, the fault log (relative to `a`), and the mapping at
 *  `a`: `map` private anonymous read-write pages, or what the function `map` maps. */
async function mirroredApp(version: Version, map: number | ((p: Process) => number)) {
  const k = await boot({ version });
  const p = k.spawn("app");
  const m = mirrorOf(k, p);
  let a = 0;
  const log = faultLog(k, () => a);
  a = typeof map === "number" ? p.mmap(0, map * PAGE, RW, ANON) : map(p);
  return { k, p, m, a, log };
}

/** Two pages (1 and 2) migrated to a Gpu's device pages d0 and d1, then a mirror on the process. */
async function twoDevicePages(version: Version) {
  const { k, gpu, p, a } = await gpuApp(version, 2, [1, 2]);
  gpu.migrateToDevice(p, a, 2);
  const [d0, d1] = [...gpu.inUse];
  const m = mirrorOf(k, p);
  return { k, gpu, p, a, d0: d0!, d1: d1!, m };
}

for (const version of ["4.20", "5.0"] as const) {
  describe(`${version}: hmm_vma_fault`, () => {
    it("a hole without page tables: one request faults the whole hole from its start, read; block or not, ALLOW_RETRY|REMOTE", async () => {
      const { k, p, m, a, log } = await mirroredApp(version, 4);
      const vma = p.mm!.find_vma(a)!;
      for (const block of [true, false]) {
        const range = rangeOf(vma, a, a + 4 * PAGE, [V_NONE, V_NONE, F_VALID, V_NONE]);
        expect(k.hmm.mirror.hmm_vma_fault(range, block)).toBe(0);
        const zero = hpfn(k.mm.zeroPfn, F_VALID);
        expect(pfnsOf(range)).toEqual([zero, zero, zero, zero]);
        // Reading holes changes no pte that was there: nothing invalidated the range.
        expect(k.hmm.mirror.hmm_vma_range_done(range)).toBe(true);
        // The second time the page table exists and the ptes are valid: no fault at all.
        expect(log.splice(0)).toEqual(block ? ["0x0 0x84 0", "0x1000 0x84 0", "0x2000 0x84 0", "0x3000 0x84 0"] : []);
      }
      expect(m.take()).toEqual([]);
      expect(RD).toBe(0x84);
      teardown(k, [m], [p]);
    });

    it("with a page table: from the requested page to the end of the step; earlier holes stay NONE", async () => {
      const { k, p, m, a, log } = await mirroredApp(version, 8);
      p.write(a + 7 * PAGE, [1]);
      log.splice(0);
      const range = rangeOf(p.mm!.find_vma(a)!, a, a + 5 * PAGE, [V_NONE, F_VALID | F_WRITE, V_NONE, F_VALID, V_NONE]);
      expect(k.hmm.mirror.hmm_vma_fault(range, true)).toBe(0);
      // Pages 1-4 write-faulted (page 1's flag), page 0 left alone.
      expect(log).toEqual(["0x1000 0x85 0", "0x2000 0x85 0", "0x3000 0x85 0", "0x4000 0x85 0"]);
      const vw = (i: number) => hpfn(pfnOf(p, a + i * PAGE), F_VALID | F_WRITE);
      expect(pfnsOf(range)).toEqual([V_NONE, vw(1), vw(2), vw(3), vw(4)]);
      expect(k.hmm.mirror.hmm_vma_range_done(range)).toBe(true);
      expect(WR).toBe(0x85);
      teardown(k, [m], [p]);
    });

    it("the first page needing a fault decides read or write: a later write request is lost (0, read-only)", async () => {
      const { k, p, m, a, log } = await mirroredApp(version, 2);
      const range = rangeOf(p.mm!.find_vma(a)!, a, a + 2 * PAGE, [F_VALID, F_VALID | F_WRITE]);
      expect(k.hmm.mirror.hmm_vma_fault(range, true)).toBe(0);
      expect(log).toEqual(["0x0 0x84 0", "0x1000 0x84 0"]);
      const zero = hpfn(k.mm.zeroPfn, F_VALID);
      expect(pfnsOf(range)).toEqual([zero, zero]);
      expect(k.hmm.mirror.hmm_vma_range_done(range)).toBe(true);
      teardown(k, [m], [p]);
    });

    it("the step's extent follows the page-table level: a hole at pmd level under a populated pud ends at the pmd", async () => {
      const k = await boot({ version });
      const zero = hpfn(k.mm.zeroPfn, F_VALID);
      const results: number[][] = [];
      for (const touch of [false, true]) {
        const p = k.spawn("app");
        const m = mirrorOf(k, p);
        const a = p.mmap(0, 2 * PMD_SIZE + 16 * PAGE, RW, ANON);
        const b = Math.ceil((a + 16 * PAGE) / PMD_SIZE) * PMD_SIZE;
        // A page of the first pmd, outside the range, gives that pmd a pte table.
        if (touch) p.write(b - 8 * PAGE, [1]);
        const range = rangeOf(p.mm!.find_vma(a)!, b - 2 * PAGE, b + 2 * PAGE, [V_NONE, V_NONE, V_NONE, F_VALID]);
        expect(k.hmm.mirror.hmm_vma_fault(range, true)).toBe(0);
        results.push(pfnsOf(range));
        expect(k.hmm.mirror.hmm_vma_range_done(range)).toBe(true);
        teardown(k, [m], [p]);
      }
      // No page table in the whole pud: one hole over the whole range, all faulted.
      expect(results[0]).toEqual([zero, zero, zero, zero]);
      // The first pmd has a table (its ptes are none, not asked for); the second pmd is a hole
      // of its own, faulted from its start.
      expect(results[1]).toEqual([V_NONE, V_NONE, zero, zero]);
    });

    it("a write request on a read-only COW page breaks COW; the COW's invalidation makes range_done false", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const a = p.mmap(0, 2 * PAGE, RW, ANON);
      p.write(a, [5]);
      p.write(a + PAGE, [6]);
      const c = p.fork();
      const old = pfnOf(p, a);
      const m = mirrorOf(k, p);
      const vma = p.mm!.find_vma(a)!;
      // A read request on the read-only page needs no fault.
      const r0 = rangeOf(vma, a, a + 2 * PAGE, [F_VALID, F_VALID]);
      expect(k.hmm.mirror.hmm_vma_fault(r0, true)).toBe(0);
      expect(pfnsOf(r0)).toEqual([hpfn(old, F_VALID), hpfn(pfnOf(p, a + PAGE), F_VALID)]);
      expect(k.hmm.mirror.hmm_vma_range_done(r0)).toBe(true);

      const range = rangeOf(vma, a, a + PAGE, [F_VALID | F_WRITE]);
      expect(k.hmm.mirror.hmm_vma_fault(range, true)).toBe(0);
      const copy = pfnOf(p, a);
      expect(copy).not.toBe(old);
      expect(pfnsOf(range)).toEqual([hpfn(copy, F_VALID | F_WRITE)]);
      expect(m.take()).toEqual([`${hex(a)}-${hex(a + PAGE)}`]);
      expect(k.hmm.mirror.hmm_vma_range_done(range)).toBe(false);
      expect([pfnOf(c, a), mapcount(k, old), mapcount(k, copy), [...p.read(a, 1)], [...c.read(a, 1)]]).toEqual([old, 1, 1, [5], [5]]);
      teardown(k, [m], [c, p]);
    });

    it("device-private pages: reported without DEVICE_PRIVATE in the request, migrated back (by the driver's fault) with it", async () => {
      const { k, gpu, p, a, d0, d1, m } = await twoDevicePages(version);
      const range = rangeOf(p.mm!.find_vma(a)!, a, a + 2 * PAGE, [F_VALID | F_WRITE, F_VALID | F_WRITE | F_DEVICE]);
      expect(k.hmm.mirror.hmm_vma_fault(range, true)).toBe(0);
      // Page 1 came back through ops->fault with the request's write flag.
      expect(gpu.faults).toEqual([{ addr: a + PAGE, page: d1, flags: WR, ret: 0 }]);
      expect(gpu.freed).toEqual([d1]);
      const back = pfnOf(p, a + PAGE);
      expect(k.mm.is_zone_device_page(back)).toBe(false);
      expect(pfnsOf(range)).toEqual([hpfn(d0, F_VALID | F_DEVICE | F_WRITE), hpfn(back, F_VALID | F_WRITE)]);
      // The migration's own invalidation (collect's [a+1, a+2)) hit the range.
      expect(m.take()).toEqual([`${hex(a + PAGE)}-${hex(a + 2 * PAGE)}`]);
      expect(k.hmm.mirror.hmm_vma_range_done(range)).toBe(false);
      expect([...p.read(a + PAGE, 1), refcount(k, back), mapcount(k, back)]).toEqual([2, 1, 1]);
      teardown(k, [m], [p], gpu);
    });

    it("VM_FAULT_ERROR (SIGBUS beyond a memfd's end): -EFAULT, NONE from where the failing step began, range done", async () => {
      const { k, p, m, a, log } = await mirroredApp(version, (q) => {
        const fd = q.memfd_create("buf");
        q.ftruncate(fd, 2 * PAGE);
        return q.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd);
      });
      const range = rangeOf(p.mm!.find_vma(a)!, a, a + 4 * PAGE, F_VALID);
      expect(k.hmm.mirror.hmm_vma_fault(range, true)).toBe(-EFAULT);
      // (shmem's ->fault returns the page locked: VM_FAULT_LOCKED, 0x200.)
      expect(log).toEqual([`0x0 0x84 ${VM_FAULT_LOCKED}`, `0x1000 0x84 ${VM_FAULT_LOCKED}`, `0x2000 0x84 ${VM_FAULT_SIGBUS}`]);
      // Pages 0 and 1 were mapped, page 2 stored ERROR: all overwritten from `last` (page 0).
      expect(pteOf(p, a) !== 0 && pteOf(p, a + PAGE) !== 0).toBe(true);
      expect(pfnsOf(range)).toEqual([V_NONE, V_NONE, V_NONE, V_NONE]);
      expect((p.mm!.hmm as HmmMm).ranges).toEqual([]);
      teardown(k, [m], [p]);
    });

    it("VM_FAULT_SIGBUS from the driver (no system memory to migrate back into): -EFAULT, NONE, the page stays on the device", async () => {
      const { k, gpu, p, a, d0, d1, m } = await twoDevicePages(version);
      gpu.failSystemAlloc = true;
      const range = rangeOf(p.mm!.find_vma(a)!, a, a + 2 * PAGE, [F_VALID, F_VALID | F_DEVICE]);
      expect(k.hmm.mirror.hmm_vma_fault(range, false)).toBe(-EFAULT);
      expect(gpu.faults).toEqual([{ addr: a + PAGE, page: d1, flags: RD, ret: VM_FAULT_SIGBUS }]);
      // Page 0's value was computed before the failing step began at page 1: it stays.
      expect(pfnsOf(range)).toEqual([hpfn(d0, F_VALID | F_DEVICE | F_WRITE), V_NONE]);
      expect(is_write_device_private_entry(pte_to_swp_entry(pteOf(p, a + PAGE)))).toBe(true);
      expect([gpu.freed, refcount(k, d1), mapcount(k, d1)]).toEqual([[], 2, 1]);
      gpu.failSystemAlloc = false;
      expect([...p.read(a + PAGE, 1)]).toEqual([2]);
      teardown(k, [m], [p], gpu);
    });
  });
}
