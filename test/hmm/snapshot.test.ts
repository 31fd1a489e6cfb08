// hmm_vma_get_pfns() and hmm_vma_range_done() (spec mm-hmm R4.2; mm/hmm.c of 4.20 and 5.0):
// the checks in the kernel's order (the range against the vma, hmm_register(), the "no mirror"
// check that hmm_register() has just made impossible, hugetlb/VM_SPECIAL, VM_READ), the value
// of each kind of pte in the driver's encoding, and range tracking: an invalidation that
// overlaps the range (even one ending exactly at its start) makes hmm_vma_range_done() false
// and zeroes the overlapping entries (to 0, not to the NONE value).

import { describe, expect, it } from "vitest";
import { EINVAL, EPERM } from "../../core/errno.ts";
import type { HmmMm } from "../../core/mm/hmm-mirror.ts";
import { hmm_pfn_to_page, hmm_pfn_to_pfn } from "../../core/mm/hmm-mirror.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { VM_HUGETLB, VM_IO, VM_MIXEDMAP, VM_PFNMAP } from "../../core/mm/mm_types.ts";
import { swp_entry_to_pte } from "../../core/mm/pgtable.ts";
import { swp_entry, SWP_HWPOISON } from "../../core/mm/swapops.ts";
import { F_DEVICE, F_VALID, F_WRITE, Gpu, hpfn, mirrorOf, pfnsOf, rangeOf, V_ERROR, V_NONE, V_SPECIAL } from "../helpers/hmm-driver.ts";
import { boot } from "../helpers/kernel.ts";
import { PAGE, pfnOf } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

for (const version of ["4.20", "5.0"] as const) {
  describe(`${version}: hmm_vma_get_pfns`, () => {
    it("-EINVAL for a range outside the vma, before hmm_register(): nothing allocated, pfns untouched", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const a = p.mmap(0, 4 * PAGE, RW, ANON);
      const vma = p.mm!.find_vma(a)!;
      const hm = k.hmm.mirror;
      for (const [s, e] of [
        [a - PAGE, a + PAGE], // start below the vma
        [a + 4 * PAGE, a + 5 * PAGE], // start at its end
        [a, a + 5 * PAGE], // end beyond it
      ] as const) {
        const range = rangeOf(vma, s, e, 7);
        expect(hm.hmm_vma_get_pfns(range)).toBe(-EINVAL);
        expect(hm.hmm_vma_fault(range, true)).toBe(-EINVAL);
        expect(pfnsOf(range).every((v) => v === 7)).toBe(true);
      }
      // Even on a VM_IO vma the range check comes first: no SPECIAL fill.
      vma.vm_flags |= VM_IO;
      const range = rangeOf(vma, a, a + 5 * PAGE, 7);
      expect(hm.hmm_vma_get_pfns(range)).toBe(-EINVAL);
      expect(pfnsOf(range)).toEqual([7, 7, 7, 7, 7]);
      vma.vm_flags &= ~VM_IO;
      expect([p.mm!.hmm, p.mm!.mm_count]).toEqual([null, 1]);
      p.exit();
    });

    it("without a mirror: hmm_register() creates the struct hmm and its notifier, so the '!mmu_notifier.ops' check never fails: 0 and a snapshot", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const a = p.mmap(0, 2 * PAGE, RW, ANON);
      p.write(a, [1]);
      const vma = p.mm!.find_vma(a)!;
      const range = rangeOf(vma, a, a + 2 * PAGE);
      expect(k.hmm.mirror.hmm_vma_get_pfns(range)).toBe(0);
      expect(pfnsOf(range)).toEqual([hpfn(pfnOf(p, a), F_VALID | F_WRITE), V_NONE]);
      const hmm = p.mm!.hmm as HmmMm;
      expect([hmm.mirrors.length, hmm.ranges, p.mm!.mmu_notifier_mm.list.length, p.mm!.mm_count]).toEqual([0, [range], 1, 2]);
      expect(k.hmm.mirror.hmm_vma_range_done(range)).toBe(true);
      expect(hmm.ranges).toEqual([]);
      // Nothing would ever free it; a mirror's register and unregister do.
      const m = mirrorOf(k, p);
      expect(m.hmm).toBe(hmm);
      k.hmm.mirror.hmm_mirror_unregister(m);
      expect([p.mm!.hmm, p.mm!.mm_count]).toEqual([null, 1]);
      p.exit();
    });

    it("hugetlb and VM_SPECIAL vmas: SPECIAL everywhere, -EINVAL, after hmm_register() (flags set by hand: kemu has no VM_IO/PFNMAP mapping API)", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const a = p.mmap(0, 2 * PAGE, RW, ANON);
      p.write(a, [1]);
      const vma = p.mm!.find_vma(a)!;
      for (const flag of [VM_IO, VM_PFNMAP, VM_MIXEDMAP, VM_HUGETLB]) {
        vma.vm_flags |= flag;
        const range = rangeOf(vma, a, a + 2 * PAGE, F_VALID);
        expect(k.hmm.mirror.hmm_vma_get_pfns(range)).toBe(-EINVAL);
        expect(pfnsOf(range)).toEqual([V_SPECIAL, V_SPECIAL]);
        const fault = rangeOf(vma, a, a + 2 * PAGE, F_VALID);
        expect(k.hmm.mirror.hmm_vma_fault(fault, true)).toBe(-EINVAL);
        expect(pfnsOf(fault)).toEqual([V_SPECIAL, V_SPECIAL]);
        vma.vm_flags &= ~flag;
      }
      // hmm_register() ran before the check: the struct hmm is there, tracking no range.
      const hmm = p.mm!.hmm as HmmMm;
      expect(hmm.ranges).toEqual([]);
      k.hmm.mirror.hmm_mirror_unregister(mirrorOf(k, p));
      p.exit();
    });

    it("no VM_READ (PROT_NONE, or write-only): NONE everywhere, -EPERM", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const m = mirrorOf(k, p);
      const a = p.mmap(0, 2 * PAGE, RW, ANON);
      p.write(a, [1]);
      p.mprotect(a, 2 * PAGE, PROT_NONE);
      const w = p.mmap(0, 2 * PAGE, PROT_WRITE, ANON);
      for (const addr of [a, w]) {
        const vma = p.mm!.find_vma(addr)!;
        const range = rangeOf(vma, addr, addr + 2 * PAGE, 7);
        expect(k.hmm.mirror.hmm_vma_get_pfns(range)).toBe(-EPERM);
        expect(pfnsOf(range)).toEqual([V_NONE, V_NONE]);
        const fault = rangeOf(vma, addr, addr + 2 * PAGE, F_VALID);
        expect(k.hmm.mirror.hmm_vma_fault(fault, true)).toBe(-EPERM);
        expect(pfnsOf(fault)).toEqual([V_NONE, V_NONE]);
      }
      k.hmm.mirror.hmm_mirror_unregister(m);
      p.exit();
    });

    it("values: none, the zero page (read-only), written pages, device-private entries; after fork read-only", async () => {
      const k = await boot({ version });
      const gpu = new Gpu(k);
      const p = k.spawn("app");
      const m = mirrorOf(k, p);
      const a = p.mmap(0, 6 * PAGE, RW, ANON);
      p.read(a + PAGE, 1);
      p.write(a + 2 * PAGE, [1]);
      p.write(a + 3 * PAGE, [2]);
      p.write(a + 4 * PAGE, [3]);
      expect(gpu.migrateToDevice(p, a + 3 * PAGE, 2).ret).toBe(0);
      m.take();
      const [d0, d1] = [...gpu.inUse];
      const vma = p.mm!.find_vma(a)!;
      const pfn2 = pfnOf(p, a + 2 * PAGE);
      const zero = k.mm.zeroPfn;
      const range = rangeOf(vma, a, a + 6 * PAGE, 7);
      expect(k.hmm.mirror.hmm_vma_get_pfns(range)).toBe(0);
      expect(pfnsOf(range)).toEqual([
        V_NONE,
        hpfn(zero, F_VALID),
        hpfn(pfn2, F_VALID | F_WRITE),
        hpfn(d0!, F_VALID | F_DEVICE | F_WRITE),
        hpfn(d1!, F_VALID | F_DEVICE | F_WRITE),
        V_NONE,
      ]);
      expect(k.hmm.mirror.hmm_vma_range_done(range)).toBe(true);
      expect([hmm_pfn_to_pfn(range, range.pfns[2]!), hmm_pfn_to_page(range, range.pfns[3]!), hmm_pfn_to_pfn(range, V_NONE)]).toEqual([pfn2, d0, -1]);

      // fork write-protects both sides (and makes the device entries read-only, R3.10).
      const c = p.fork();
      expect(m.take()).toEqual([`0x${a.toString(16)}-0x${(a + 6 * PAGE).toString(16)}`]);
      const after = [V_NONE, hpfn(zero, F_VALID), hpfn(pfn2, F_VALID), hpfn(d0!, F_VALID | F_DEVICE), hpfn(d1!, F_VALID | F_DEVICE), V_NONE];
      for (const q of [p, c]) {
        const rq = rangeOf(q.mm!.find_vma(a)!, a, a + 6 * PAGE);
        expect(k.hmm.mirror.hmm_vma_get_pfns(rq)).toBe(0);
        expect(pfnsOf(rq)).toEqual(after);
        expect(k.hmm.mirror.hmm_vma_range_done(rq)).toBe(true);
      }
      // (The child's struct hmm came from hmm_vma_get_pfns(); a mirror cycle frees it.)
      k.hmm.mirror.hmm_mirror_unregister(mirrorOf(k, c));
      c.exit();
      k.hmm.mirror.hmm_mirror_unregister(m);
      p.exit();
      gpu.remove();
    });

    it("a migration entry is NONE (no wait); a hwpoison entry is ERROR and stops the walk, the call still returns 0", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const m = mirrorOf(k, p);
      const a = p.mmap(0, 4 * PAGE, RW, ANON);
      p.write(a, [1]);
      p.write(a + PAGE, [2]);
      const vma = p.mm!.find_vma(a)!;
      // Seen from inside a migration: the ptes are migration entries while alloc_and_copy() runs.
      let during: number[] = [];
      const range = rangeOf(vma, a, a + 2 * PAGE, 7);
      const src = new Float64Array(2);
      const dst = new Float64Array(2);
      const ret = k.mm.migration.migrate_vma(
        {
          alloc_and_copy: () => {
            expect(k.hmm.mirror.hmm_vma_get_pfns(range)).toBe(0);
            during = pfnsOf(range);
          },
          finalize_and_map: () => {},
        },
        vma, a, a + 2 * PAGE, src, dst, null,
      );
      expect([ret, during]).toEqual([0, [V_NONE, V_NONE]]);
      // Nothing moved (dst stayed 0); the migration entries went back to ptes without an
      // invalidation, so the snapshot still counts as valid.
      expect(k.hmm.mirror.hmm_vma_range_done(range)).toBe(true);
      expect([...p.read(a, 1), ...p.read(a + PAGE, 1)]).toEqual([1, 2]);

      // (An entry put there by hand: kemu has no memory_failure().)
      p.mm!.set_pte_at(a + 2 * PAGE, swp_entry_to_pte(swp_entry(SWP_HWPOISON, 0x1234)));
      const sentinel = hpfn(0x777, 0);
      const r2 = rangeOf(vma, a, a + 4 * PAGE, sentinel);
      expect(k.hmm.mirror.hmm_vma_get_pfns(r2)).toBe(0);
      expect(pfnsOf(r2)).toEqual([hpfn(pfnOf(p, a), F_VALID | F_WRITE), hpfn(pfnOf(p, a + PAGE), F_VALID | F_WRITE), V_ERROR, sentinel]);
      expect(k.hmm.mirror.hmm_vma_range_done(r2)).toBe(true);
      p.mm!.pte_clear(a + 2 * PAGE);
      k.hmm.mirror.hmm_mirror_unregister(m);
      p.exit();
    });

    it("hmm_vma_range_done(): true when untouched; false once an invalidation overlapped, whose pfns are zeroed", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const m = mirrorOf(k, p);
      const a = p.mmap(0, 8 * PAGE, RW, ANON);
      for (let i = 0; i < 8; i++) p.write(a + i * PAGE, [i]);
      const vma = p.mm!.find_vma(a)!;
      const pfn = (i: number) => hpfn(pfnOf(p, a + i * PAGE), F_VALID | F_WRITE);
      const hm = k.hmm.mirror;
      const hmm = p.mm!.hmm as HmmMm;

      // Untouched: true, and the range is no longer tracked.
      const r0 = rangeOf(vma, a + 2 * PAGE, a + 6 * PAGE);
      expect(hm.hmm_vma_get_pfns(r0)).toBe(0);
      expect(hmm.ranges).toEqual([r0]);
      expect(hm.hmm_vma_range_done(r0)).toBe(true);
      expect(hmm.ranges).toEqual([]);

      // Two tracked ranges, newest first; mprotect of [a+3, a+5) overlaps both.
      const r1 = rangeOf(vma, a + 2 * PAGE, a + 6 * PAGE);
      const r2 = rangeOf(vma, a + 4 * PAGE, a + 8 * PAGE);
      expect(hm.hmm_vma_get_pfns(r1)).toBe(0);
      expect(hm.hmm_vma_get_pfns(r2)).toBe(0);
      expect(hmm.ranges).toEqual([r2, r1]);
      const before1 = [pfn(2), pfn(3), pfn(4), pfn(5)];
      p.mprotect(a + 3 * PAGE, 2 * PAGE, PROT_READ);
      expect(pfnsOf(r1)).toEqual([before1[0], 0, 0, before1[3]]);
      expect(pfnsOf(r2)).toEqual([0, pfn(5), pfn(6), pfn(7)]);
      expect([hm.hmm_vma_range_done(r1), hm.hmm_vma_range_done(r2)]).toEqual([false, false]);
      // Done ranges are not touched any more.
      const kept = pfnsOf(r2);
      p.munmap(a + 7 * PAGE, PAGE);
      expect(pfnsOf(r2)).toEqual(kept);

      // An update that ends exactly at range->start counts (end < start is the test): the
      // range is invalid, nothing zeroed. One that starts at range->end does not.
      // (mprotect split the vma: [a, a+3) is one again.)
      const r3 = rangeOf(p.mm!.find_vma(a)!, a + PAGE, a + 3 * PAGE);
      expect(hm.hmm_vma_get_pfns(r3)).toBe(0);
      const snap = pfnsOf(r3);
      p.munmap(a + 3 * PAGE, PAGE);
      expect(r3.valid).toBe(true);
      p.munmap(a, PAGE);
      expect([r3.valid, pfnsOf(r3)]).toEqual([false, snap]);
      expect(hm.hmm_vma_range_done(r3)).toBe(false);
      k.hmm.mirror.hmm_mirror_unregister(m);
      p.exit();
    });
  });
}
