// hmm_mirror_register()/unregister() and what a mirror hears (spec mm-hmm R4.1; mm/hmm.c of
// 4.20 and 5.0, which behave alike here): one struct hmm and one mmu notifier per mm, whose
// registration pins the mm (mmgrab); sync_cpu_device_pagetables() with the exact [start, end)
// of every invalidation, from invalidate_range_start; release at exit, after which the
// notifier is unhashed. And the 4.20/5.0 lifetime bugs: the first of two unregisters clears
// hmm->mm, so the last one returns early and the notifier (with its mm reference) stays; a
// mirror still registered when the mm's last reference goes gets its struct hmm freed twice.

import { describe, expect, it } from "vitest";
import { EINVAL } from "../../core/errno.ts";
import { HungTaskError } from "../../core/kernel/sched.ts";
import { HmmMirror, type HmmMm } from "../../core/mm/hmm-mirror.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { Gpu, mirrorOf, RecordingMirror } from "../helpers/hmm-driver.ts";
import { boot, levelled } from "../helpers/kernel.ts";
import { hex, PAGE } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const r = (s: number, e: number) => `${hex(s)}-${hex(e)}`;

/** Shut down and check that exactly one mm and its struct hmm leaked (the two-mirror bug). */
async function expectHmmLeak(k: Awaited<ReturnType<typeof boot>>): Promise<void> {
  await k.shutdown();
  // (The slab page holding the struct hmm, the object, the mm_struct.)
  expect(k.leaks()).toEqual(["pages: 1 pages not returned to the allocator", "slab: objects not freed (hmm: 1)", "mm: 1 address spaces not freed"]);
}

/** Live kmalloc objects HMM owns (struct hmm). */
function hmmObjects(k: Awaited<ReturnType<typeof boot>>): number {
  let n = 0;
  for (const b of k.mm.slab.live) if (b.owner === "hmm") n++;
  return n;
}

for (const version of ["4.20", "5.0"] as const) {
  describe(`${version}: hmm_mirror_register / unregister`, () => {
    it("-EINVAL without an mm, a mirror or its ops, before anything is allocated", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const hm = k.hmm.mirror;
      expect(hm.hmm_mirror_register(null, p.mm)).toBe(-EINVAL);
      expect(hm.hmm_mirror_register(new RecordingMirror(k), null)).toBe(-EINVAL);
      expect(hm.hmm_mirror_register(new HmmMirror(null), p.mm)).toBe(-EINVAL);
      expect([p.mm!.hmm, hmmObjects(k), p.mm!.mmu_notifier_mm.list.length]).toEqual([null, 0, 0]);
      // Unregistering a mirror that was never registered does nothing.
      hm.hmm_mirror_unregister(new RecordingMirror(k));
      p.exit();
    });

    it("one struct hmm and one notifier per mm, pinning the mm (mmgrab); the last unregister frees both", async () => {
      const k = await boot({ version }, { expectLeaks: true });
      const p = k.spawn("app");
      const q = k.spawn("other");
      const mm = p.mm!;
      expect(mm.mm_count).toBe(1);
      const m1 = mirrorOf(k, p);
      const m2 = mirrorOf(k, p);
      const m3 = mirrorOf(k, q);
      const hmm = mm.hmm as HmmMm;
      expect(m1.hmm).toBe(hmm);
      expect(m2.hmm).toBe(hmm);
      expect(m3.hmm).not.toBe(hmm);
      expect(m3.hmm).toBe(q.mm!.hmm);
      // list_add(): the newest mirror first.
      expect(hmm.mirrors).toEqual([m2, m1]);
      expect(hmm.mm).toBe(mm);
      expect([mm.mmu_notifier_mm.list, hmmObjects(k), hmm.buf.cache!.name]).toEqual([[hmm.mmu_notifier], 2, "kmalloc-128"]);
      // __mmu_notifier_register() took an mm_count reference (mmgrab).
      expect([mm.mm_count, mm.mm_users]).toEqual([2, 1]);

      k.hmm.mirror.hmm_mirror_unregister(m3);
      expect([q.mm!.hmm, q.mm!.mmu_notifier_mm.list.length, q.mm!.mm_count, hmmObjects(k)]).toEqual([null, 0, 1, 1]);
      expect(m3.hmm).toBeNull();
      q.exit();
      // With two mirrors on one mm there is no clean way out in 4.20/5.0 (the R4.1 bug below):
      // whichever goes first clears hmm->mm, the other's unregister returns early, and the
      // notifier's mm reference keeps the mm_struct and the struct hmm.
      k.hmm.mirror.hmm_mirror_unregister(m2);
      k.hmm.mirror.hmm_mirror_unregister(m1);
      p.exit();
      expect([k.mm.mms.has(mm), mm.mm_count, hmmObjects(k)]).toEqual([true, 1, 1]);
      expect([m1.releases, m2.releases]).toEqual([0, 0]);
      await expectHmmLeak(k);
    });

    it("sync_cpu_device_pagetables(): munmap and mprotect with their exact ranges, newest mirror first", async () => {
      const k = await boot({ version }, { expectLeaks: true });
      const p = k.spawn("app");
      const a = p.mmap(0, 16 * PAGE, RW, ANON);
      const order: string[] = [];
      const m1 = mirrorOf(k, p, "m1", order);
      const m2 = mirrorOf(k, p, "m2", order);
      p.write(a + 8 * PAGE, [1]);
      p.mprotect(a + 6 * PAGE, 4 * PAGE, PROT_READ);
      p.munmap(a + 2 * PAGE, 3 * PAGE);
      // mprotect notifies from the first pmd with a page table: this one has one (a + 8 pages),
      // so a range whose ptes are all none is still told.
      p.mprotect(a, 2 * PAGE, PROT_READ);
      for (const m of [m1, m2]) expect(m.take()).toEqual([r(a + 6 * PAGE, a + 10 * PAGE), r(a + 2 * PAGE, a + 5 * PAGE), r(a, a + 2 * PAGE)]);
      expect(order).toEqual(["m2", "m1", "m2", "m1", "m2", "m1"]);
      // Two mirrors on one mm: the R4.1 bug leaks it (see below).
      k.hmm.mirror.hmm_mirror_unregister(m1);
      k.hmm.mirror.hmm_mirror_unregister(m2);
      p.exit();
      await expectHmmLeak(k);
    });

    it("fork: the parent's private vma with pages; a COW write: the page", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const a = p.mmap(0, 4 * PAGE, RW, ANON);
      // A neighbour that does not merge (other protection) and has no pages: not copied.
      const untouched = p.mmap(0, 4 * PAGE, PROT_READ, ANON);
      p.write(a + PAGE, [1, 2]);
      const m = mirrorOf(k, p);
      const c = p.fork();
      // copy_page_range() only for vmas with an anon_vma; fork makes no hmm for the child.
      expect(untouched).toBe(a - 4 * PAGE);
      expect(m.take()).toEqual([r(a, a + 4 * PAGE)]);
      expect(c.mm!.hmm).toBeNull();
      p.write(a + PAGE + 1, [9]);
      expect(m.take()).toEqual([r(a + PAGE, a + 2 * PAGE)]);
      // The child's COW is in another mm: this mirror hears nothing.
      c.write(a + PAGE, [7]);
      expect(m.take()).toEqual([]);
      c.exit();
      k.hmm.mirror.hmm_mirror_unregister(m);
      p.exit();
    });

    it("exit: release, once, before the teardown; then no more calls (the mirror unregisters from release)", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const a = p.mmap(0, 4 * PAGE, RW, ANON);
      p.write(a, [1]);
      const m = mirrorOf(k, p);
      m.unregisterOnRelease = true;
      const mm = p.mm!;
      p.exit();
      expect([m.releases, m.take(), m.hmm]).toEqual([1, [], null]);
      // The unregister dropped the notifier's mm reference before exit's mmdrop: all freed.
      expect([k.mm.mms.has(mm), hmmObjects(k)]).toEqual([false, 0]);
    });

    it("unregister of the last mirror drops the notifier: no more calls, struct hmm freed, mm unpinned", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const a = p.mmap(0, 4 * PAGE, RW, ANON);
      const m = mirrorOf(k, p);
      p.munmap(a, PAGE);
      expect(m.take()).toEqual([r(a, a + PAGE)]);
      k.hmm.mirror.hmm_mirror_unregister(m);
      p.munmap(a + PAGE, PAGE);
      expect([m.take(), p.mm!.hmm, p.mm!.mmu_notifier_mm.list.length, p.mm!.mm_count, hmmObjects(k)]).toEqual([[], null, 0, 1, 0]);
      // A second unregister is a no-op (mirror->hmm is NULL).
      k.hmm.mirror.hmm_mirror_unregister(m);
      // And a new mirror gets a new struct hmm.
      const m2 = mirrorOf(k, p);
      expect(m2.hmm).not.toBeNull();
      k.hmm.mirror.hmm_mirror_unregister(m2);
      p.exit();
    });

    it("the first of two unregisters clears hmm->mm: the second returns early, the notifier stays (R4.1)", async () => {
      const k = await boot({ version }, { expectLeaks: true });
      const p = k.spawn("app");
      const a = p.mmap(0, 4 * PAGE, RW, ANON);
      const mm = p.mm!;
      const m1 = mirrorOf(k, p);
      const m2 = mirrorOf(k, p);
      const hmm = mm.hmm as HmmMm;
      k.hmm.mirror.hmm_mirror_unregister(m1);
      expect([hmm.mm, hmm.mirrors]).toEqual([null, [m2]]);
      // The remaining mirror still hears everything.
      p.munmap(a, PAGE);
      expect([m1.take(), m2.take()]).toEqual([[], [r(a, a + PAGE)]]);
      // should_unregister, but mm == NULL: return. Notifier, struct hmm and mm->hmm stay.
      k.hmm.mirror.hmm_mirror_unregister(m2);
      expect([m2.hmm, mm.hmm, mm.mmu_notifier_mm.list, mm.mm_count, hmmObjects(k)]).toEqual([null, hmm, [hmm.mmu_notifier], 2, 1]);
      // Invalidations still reach the notifier; there is no mirror left to tell.
      const seen: string[] = [];
      k.hooks.mm.invalidate.tap("t", (x) => void seen.push(r(x.start, x.end)));
      p.munmap(a + PAGE, PAGE);
      expect([seen, m2.take()]).toEqual([[r(a + PAGE, a + 2 * PAGE)], []]);

      // A new mirror: hmm_register() returns mm->hmm, whose mm is NULL, "a racing unregister
      // is about to destroy it": try again - forever. The soft-lockup watchdog reports it.
      const m3 = new RecordingMirror(k);
      const seq = k.log.nextSeq;
      // (Called as the process would, from an ioctl of the driver.)
      expect(() => k.sched.runAsTask(p, () => k.hmm.mirror.hmm_mirror_register(m3, mm))).toThrow(HungTaskError);
      expect(levelled(k, seq)).toEqual([`<0>watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [app:${p.pid}]`]);
      expect(k.tainted()).toContain("L");
      expect(m3.hmm).toBeNull();

      // At exit the notifier hears release (no mirrors) and is unhashed, but its mmgrab() is
      // never dropped: the mm_struct and the struct hmm leak.
      p.exit();
      expect([k.mm.mms.has(mm), mm.mm_count, mm.mmu_notifier_mm.list.length, hmmObjects(k)]).toEqual([true, 1, 0, 1]);
      await expectHmmLeak(k);
    });

    it("a mirror left registered past exit: its late unregister's mmdrop frees the mm, hmm_mm_destroy() the struct hmm, then it is freed again", async () => {
      const k = await boot({ version });
      const p = k.spawn("app");
      const mm = p.mm!;
      const m = mirrorOf(k, p);
      const hmm = mm.hmm as HmmMm;
      p.exit();
      expect([m.releases, k.mm.mms.has(mm), mm.mm_count, hmmObjects(k)]).toEqual([1, true, 1, 1]);
      const seq = k.log.nextSeq;
      k.hmm.mirror.hmm_mirror_unregister(m);
      // mmu_notifier_unregister_no_release() -> mmdrop() -> __mmdrop() -> hmm_mm_destroy():
      // kfree(mm->hmm); then hmm_mirror_unregister()'s own kfree(hmm): SLUB catches it.
      expect([k.mm.mms.has(mm), hmmObjects(k), hmm.buf.freed]).toEqual([false, 0, true]);
      const lines = levelled(k, seq);
      expect(lines[1]).toBe("<3>BUG kmalloc-128 (Not tainted): Object already free");
      expect(lines.at(-1)).toMatch(/^<3>FIX kmalloc-128: Object at 0x[0-9a-f]{16} not freed$/);
      expect(k.tainted()).toContain("B");
    });
  });
}

for (const version of ["4.20", "5.0"] as const) {
  describe(`${version}: hmm_mirror with device memory`, () => {
    it("migration: collect's [start, end), then the holes' [first hole, end) when they get pages", async () => {
      const k = await boot({ version });
      const gpu = new Gpu(k);
      const p = k.spawn("app");
      const a = p.mmap(0, 4 * PAGE, RW, ANON);
      p.write(a, [1]);
      p.write(a + PAGE, [2]);
      const m = mirrorOf(k, p);
      gpu.migrateToDevice(p, a, 4);
      expect(m.take()).toEqual([r(a, a + 4 * PAGE), r(a + 2 * PAGE, a + 4 * PAGE)]);
      // Back through the CPU fault: the faulting page only.
      p.read(a + PAGE, 1);
      expect(m.take()).toEqual([r(a + PAGE, a + 2 * PAGE)]);
      k.hmm.mirror.hmm_mirror_unregister(m);
      p.exit();
      gpu.remove();
    });
  });
}
