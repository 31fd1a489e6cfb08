// Device-private entries in a process's page tables (spec mm-hmm R3.7, R3.8, R3.10): a CPU
// access goes through the pgmap's fault hook to the driver's ops->fault (R3.8), fork
// duplicates the entry with a page reference and downgrades a writable one on both sides,
// and zapping drops the reference, which sends the page back to its driver at refcount 1.
// The entries are installed by hand here, the way migrate_vma would leave them.

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import type { Process } from "../../core/kernel/process.ts";
import { BUS_ADRERR, SIGBUS } from "../../core/kernel/signal.ts";
import type { HmmDevmem, HmmDevmemOpsLike } from "../../core/mm/hmm-devmem.ts";
import { FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_KILLABLE, FAULT_FLAG_USER, FAULT_FLAG_WRITE, zap_page_range } from "../../core/mm/memory.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { MM_ANONPAGES } from "../../core/mm/mm_types.ts";
import { pte_to_swp_entry, swp_entry_to_pte } from "../../core/mm/pgtable.ts";
import { anon_vma_prepare, page_add_new_anon_rmap } from "../../core/mm/rmap.ts";
import { is_write_device_private_entry, make_device_private_entry, swp_offset } from "../../core/mm/swapops.ts";
import { boot } from "../helpers/kernel.ts";
import { mapcount, PAGE, pteOf, recordNotifier, refcount, signalOf } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;

/** Device memory whose ops->fault is `fault` (VM_FAULT_SIGBUS by default: no migration back). */
function devmem(k: Kernel, freed: number[], fault: HmmDevmemOpsLike["fault"] = () => 0x2): { dm: HmmDevmem; put: () => void } {
  const hdev = k.hmm.hmm_device_new(null);
  if (typeof hdev === "number") throw new Error(`hmm_device_new: ${hdev}`);
  const dm = k.hmm.hmm_devmem_add({ free: (_d, page) => void freed.push(page), fault }, hdev.device, 128 << 20);
  if (typeof dm === "number") throw new Error(`hmm_devmem_add: ${dm}`);
  return { dm, put: () => k.hmm.hmm_device_put(hdev) };
}

/** What migrate_vma leaves behind: the driver's page (refcount 2), an anon rmap, the entry. */
function installEntry(k: Kernel, p: Process, addr: number, page: number, write: boolean): void {
  const mm = p.mm!;
  const vma = mm.find_vma(addr)!;
  anon_vma_prepare(vma);
  k.mm.get_page(page);
  page_add_new_anon_rmap(k.mm, page, vma, addr);
  mm.rss[MM_ANONPAGES]!++;
  mm.set_pte_at(addr, swp_entry_to_pte(make_device_private_entry(page, write)));
}

describe("device-private entries", () => {
  it("a CPU access the driver's ops->fault cannot serve (VM_FAULT_SIGBUS) is SIGBUS", async () => {
    const k = await boot({ version: "5.0" });
    const freed: number[] = [];
    const { dm, put } = devmem(k, freed);
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    installEntry(k, p, a, dm.pfn_first, true);
    const sig = signalOf(() => p.read(a + 8, 1));
    expect([sig.signo, sig.si_code, sig.addr]).toEqual([SIGBUS, BUS_ADRERR, a + 8]);
    p.exit();
    expect(freed).toEqual([dm.pfn_first]);
    put();
  });

  it("the fault reaches the driver's ops->fault(devmem, vma, page address, page, flags); 0 retries the access", async () => {
    const k = await boot({ version: "5.0" });
    const freed: number[] = [];
    const calls: unknown[] = [];
    const { dm, put } = devmem(k, freed, (_dm, vma, addr, page, flags) => {
      const v = vma as { vm_start: number };
      calls.push([v.vm_start, addr, page, flags]);
      // A stand-in for the driver's migration back: drop the entry; the retry faults anew.
      zap_page_range(vma as Parameters<typeof zap_page_range>[0], addr, PAGE);
      return 0;
    });
    const p = k.spawn("app");
    const a = p.mmap(0, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    const page = dm.pfn_first + 1;
    installEntry(k, p, a + PAGE, page, true);
    p.write(a + PAGE + 5, [1]);
    expect(calls).toEqual([[a, a + PAGE, page, FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | FAULT_FLAG_USER | FAULT_FLAG_WRITE]]);
    expect(freed).toEqual([page]);
    expect([...p.read(a + PAGE + 4, 2)]).toEqual([0, 1]);
    put();
  });

  it("fork takes a page reference and a mapping, and makes a writable entry read-only on both sides", async () => {
    const k = await boot({ version: "5.0" });
    const freed: number[] = [];
    const { dm, put } = devmem(k, freed);
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    const page = dm.pfn_first + 2;
    installEntry(k, p, a, page, true);
    expect([refcount(k, page), mapcount(k, page)]).toEqual([2, 1]);
    const ev = recordNotifier(p);
    const c = p.fork();
    expect(ev).toEqual([`start 0x${a.toString(16)}-0x${(a + PAGE).toString(16)}`, `end 0x${a.toString(16)}-0x${(a + PAGE).toString(16)}`]);
    expect([refcount(k, page), mapcount(k, page)]).toEqual([3, 2]);
    expect(c.mm!.rss[MM_ANONPAGES]).toBe(1);
    for (const q of [p, c]) {
      const entry = pte_to_swp_entry(pteOf(q, a));
      expect([swp_offset(entry), is_write_device_private_entry(entry)]).toEqual([page, false]);
    }
    // Each zap drops one reference; the last one (down to 1) frees the page to the driver.
    c.munmap(a, PAGE);
    expect([refcount(k, page), mapcount(k, page), freed.length]).toEqual([2, 1, 0]);
    p.exit();
    expect([refcount(k, page), freed]).toEqual([1, [page]]);
    put();
  });

  it("a shared mapping keeps a writable entry writable across fork", async () => {
    const k = await boot({ version: "5.0" });
    const { dm, put } = devmem(k, []);
    const p = k.spawn("app");
    const s = p.mmap(0, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS);
    // Shared mappings are only copied at fork when they have pages fork must copy (anon_vma).
    const vma = p.mm!.find_vma(s)!;
    anon_vma_prepare(vma);
    installEntry(k, p, s, dm.pfn_first, true);
    const c = p.fork();
    expect(is_write_device_private_entry(pte_to_swp_entry(pteOf(p, s)))).toBe(true);
    expect(is_write_device_private_entry(pte_to_swp_entry(pteOf(c, s)))).toBe(true);
    c.exit();
    p.exit();
    put();
  });

  it("mprotect makes writable entries read-only", async () => {
    const k = await boot({ version: "5.0" });
    const { dm, put } = devmem(k, []);
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    installEntry(k, p, a, dm.pfn_first, true);
    p.mprotect(a, PAGE, PROT_READ);
    expect(is_write_device_private_entry(pte_to_swp_entry(pteOf(p, a)))).toBe(false);
    p.exit();
    put();
  });
});
