// Process exit and shutdown give every page back; the invariant checker catches address-space
// inconsistencies; odd ptes (swap, hwpoison, migration entries) fault as the kernel's
// do_swap_page() has them; a fault that cannot get memory kills the task.

import { describe, expect, it } from "vitest";
import { HungTaskError } from "../../core/kernel/sched.ts";
import { BUS_MCEERR_AR, SIGBUS, SIGKILL } from "../../core/kernel/signal.ts";
import { GFP_KERNEL } from "../../core/mm/gfp.ts";
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { MM_ANONPAGES, MM_SWAPENTS } from "../../core/mm/mm_types.ts";
import { swp_entry_to_pte } from "../../core/mm/pgtable.ts";
import { make_migration_entry, swp_entry, SWP_HWPOISON } from "../../core/mm/swapops.ts";
import { boot, messages } from "../helpers/kernel.ts";
import { meminfo } from "../helpers/mm.ts";
import { PAGE, pfnOf, signalOf } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe("exit", () => {
  it("frees every page: free pages and MemFree are back at their values before the process", async () => {
    const k = await boot();
    const free = k.mm.pageAlloc.nr_free_pages();
    const memFree = meminfo(k).get("MemFree");
    const p = k.spawn("app");
    const a = p.mmap(0, 64 * PAGE, RW, ANON);
    for (let i = 0; i < 64; i += 3) p.write(a + i * PAGE, [i]);
    const s = p.mmap(0, 8 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.write(s + 3 * PAGE, [1]);
    const fd = p.memfd_create("f");
    p.pwrite(fd, new Uint8Array(5 * PAGE).fill(7), 0);
    const m = p.mmap(0, 5 * PAGE, RW, MAP_PRIVATE, fd);
    p.write(m + PAGE, [1]);
    const c = p.fork();
    c.write(a, [99]);
    // 22 anonymous pages, 1 shared, 5 in the memfd, a private copy, the child's copy.
    expect(k.mm.pageAlloc.nr_free_pages()).toBe(free - 30);
    c.exit();
    p.exit();
    expect(k.mm.pageAlloc.nr_free_pages()).toBe(free);
    expect(meminfo(k).get("MemFree")).toBe(memFree);
    expect(k.mm.mms.size).toBe(0);
    expect(k.mm.shmem.inodes.size).toBe(0);
    expect(k.mm.vmstat.nr_anon_mapped + k.mm.vmstat.nr_file_mapped + k.mm.vmstat.nr_shmem).toBe(0);
  });

  it("shutdown kills the processes still running before it unloads modules", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 4 * PAGE, RW, ANON);
    p.write(a, [1]);
    p.fork().write(a + PAGE, [2]);
    await k.shutdown();
    expect(p.alive).toBe(false);
    expect(p.exit_code).toBe(128 + SIGKILL);
    expect(k.leaks()).toEqual([]);
  });

  it("an mm freed with rss still counted reports Bad rss-counter state", async () => {
    const k = await boot();
    const p = k.spawn("app");
    p.mm!.rss[MM_ANONPAGES] = 2;
    const seq = k.log.nextSeq;
    p.exit();
    expect(messages(k, seq)).toEqual([expect.stringMatching(/^BUG: Bad rss-counter state mm:[0-9a-f]{16} idx:1 val:2$/)]);
  });
});

describe("invariants", () => {
  it("catch an rss counter that disagrees with the ptes, and a mapcount no pte explains", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    p.write(a, [1]);
    const pfn = pfnOf(p, a);
    expect(k.checkInvariants()).toEqual([]);
    p.mm!.rss[MM_ANONPAGES]!++;
    const sec = k.mm.memmap.section(pfn);
    sec.mapcount[pfn - sec.startPfn]!++;
    expect(k.checkInvariants().filter((s) => !s.startsWith("iomem"))).toEqual([
      expect.stringMatching(/rss counter 1 is 2 but the ptes say 1$/),
      `page: pfn 0x${pfn.toString(16)} has mapcount 2 but 1 ptes map it`,
    ]);
    p.mm!.rss[MM_ANONPAGES]!--;
    sec.mapcount[pfn - sec.startPfn]!--;
    expect(k.checkInvariants()).toEqual([]);
  });

  it("catch a pte outside every vma", async () => {
    const k = await boot();
    const p = k.spawn("app");
    p.mm!.set_pte_at(0x100000, swp_entry_to_pte(swp_entry(SWP_HWPOISON, 1)));
    expect(k.checkInvariants()).toEqual([expect.stringMatching(/lies in no vma$/)]);
    p.mm!.pte_clear(0x100000);
    p.mm!.pgd.clear(); // a table outside every vma would outlive exit_mmap(): drop it too
  });
});

describe("non-present ptes", () => {
  it("a hardware-poisoned page is SIGBUS BUS_MCEERR_AR with the MCE line", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    p.mm!.set_pte_at(a, swp_entry_to_pte(swp_entry(SWP_HWPOISON, 0x1234)));
    const seq = k.log.nextSeq;
    const sig = signalOf(() => p.read(a + 1, 1));
    expect([sig.signo, sig.si_code, sig.addr]).toEqual([SIGBUS, BUS_MCEERR_AR, a + 1]);
    expect(messages(k, seq)).toEqual([`MCE: Killing app:${p.pid} due to hardware memory corruption fault at ${(a + 1).toString(16)}`]);
  });

  it("a swap entry (kemu has no swap) is a bad pte: BUG: Bad page map, taint B, SIGBUS", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    p.mm!.set_pte_at(a, swp_entry_to_pte(swp_entry(0, 5)));
    p.mm!.rss[MM_SWAPENTS]!++;
    const seq = k.log.nextSeq;
    expect(signalOf(() => p.read(a, 1)).signo).toBe(SIGBUS);
    const log = messages(k, seq);
    expect(log[0]).toBe(`BUG: Bad page map in process app  pte:${swp_entry_to_pte(swp_entry(0, 5)).toString(16).padStart(8, "0")} pmd:00000067`);
    expect(log[1]).toMatch(/^addr:[0-9a-f]{16} vm_flags:08100073 anon_vma:          \(null\) mapping:          \(null\) index:7ffff7ffe$/);
    expect(log[2]).toBe("file:          (null) fault:          (null) mmap:          (null) readpage:          (null)");
    expect(k.tainted()).toContain("B");
    p.munmap(a, PAGE);
    expect(p.mm!.rss[MM_SWAPENTS]).toBe(0);
  });

  it("a migration entry waits for the migration: done by deferred work, the access goes on", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    p.write(a, [5]);
    const pte = p.mm!.ptep_get(a);
    p.mm!.set_pte_at(a, swp_entry_to_pte(make_migration_entry(pfnOf(p, a) + 0, false)));
    k.sched.call_rcu(() => p.mm!.set_pte_at(a, pte));
    expect([...p.read(a, 1)]).toEqual([5]);
  });

  it("a migration entry nothing will resolve is a hung task", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    p.write(a, [5]);
    const pte = p.mm!.ptep_get(a);
    p.mm!.set_pte_at(a, swp_entry_to_pte(make_migration_entry(pfnOf(p, a), true)));
    expect(() => p.read(a, 1)).toThrow(HungTaskError);
    expect(k.dmesg()).toContain(`INFO: task app:${p.pid} blocked for more than 120 seconds.`);
    p.mm!.set_pte_at(a, pte);
  });
});

describe("out of memory", () => {
  it("a fault that cannot get a page kills the faulting task (no OOM killer could free any)", async () => {
    const k = await boot({ memory: "128M" });
    const p = k.spawn("hog");
    const a = p.mmap(0, 256 << 20, RW, ANON | MAP_NORESERVE);
    let sig = null;
    for (let off = 0; off < 256 << 20 && !sig; off += PAGE) {
      try {
        p.write(a + off, [1]);
      } catch (e) {
        sig = e as { signo: number };
      }
    }
    expect(sig?.signo).toBe(SIGKILL);
    expect(p.alive).toBe(false);
    expect(k.dmesg()).toMatch(new RegExp(`Out of memory: Kill process ${p.pid} \\(hog\\) score \\d+ or sacrifice child\\n.*Killed process ${p.pid} \\(hog\\) total-vm:262144kB, anon-rss:\\d+kB, file-rss:0kB, shmem-rss:0kB`));
    // Everything it had is free again.
    const page = k.mm.alloc_pages(GFP_KERNEL, 0);
    expect(page).toBeGreaterThan(0);
    k.mm.__free_pages(page, 0);
  });
});
