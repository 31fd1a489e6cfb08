// Helpers for tests of user processes: what a system call or a CPU access threw, ptes and
// struct page fields of a process's memory, and an mmu notifier that records what it hears.

import { expect } from "vitest";
import { KernelError } from "../../core/errno.ts";
import type { Kernel } from "../../core/kernel.ts";
import type { Process } from "../../core/kernel/process.ts";
import { SignalError } from "../../core/kernel/signal.ts";
import { MmuNotifier } from "../../core/mm/mmu_notifier.ts";
import { is_swap_pte, pte_pfn, pte_present, pte_to_swp_entry } from "../../core/mm/pgtable.ts";
import { is_device_private_entry, is_write_device_private_entry, swp_offset } from "../../core/mm/swapops.ts";

export const PAGE = 4096;
export const hex = (v: number) => "0x" + v.toString(16);

/** The errno a system call failed with (it must fail). */
export function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    expect(e, "a KernelError").toBeInstanceOf(KernelError);
    return (e as KernelError).errno;
  }
  throw new Error("the call succeeded");
}

/** The signal a CPU access raised (it must raise one). */
export function signalOf(fn: () => unknown): SignalError {
  try {
    fn();
  } catch (e) {
    expect(e, "a SignalError").toBeInstanceOf(SignalError);
    return e as SignalError;
  }
  throw new Error("the access raised no signal");
}

/** The pte of `addr` in `p`'s page tables (0 when none). */
export function pteOf(p: Process, addr: number): number {
  return p.mm!.ptep_get(addr);
}

/** The pfn `p` maps at `addr` (the pte must be present). */
export function pfnOf(p: Process, addr: number): number {
  const pte = pteOf(p, addr);
  expect(pte_present(pte), `pte at ${hex(addr)} present`).toBe(true);
  return pte_pfn(pte);
}

/** The device page a pte's device-private entry points at, and whether it is writable. */
export function deviceEntry(p: Process, addr: number): [number, boolean] {
  const pte = pteOf(p, addr);
  expect(is_swap_pte(pte), `swap pte at ${hex(addr)}`).toBe(true);
  const entry = pte_to_swp_entry(pte);
  expect(is_device_private_entry(entry), `device-private entry at ${hex(addr)}`).toBe(true);
  return [swp_offset(entry), is_write_device_private_entry(entry)];
}

export function refcount(k: Kernel, pfn: number): number {
  return k.mm.page_ref_count(pfn);
}

/** page_mapcount() */
export function mapcount(k: Kernel, pfn: number): number {
  const sec = k.mm.memmap.section(pfn);
  return sec.mapcount[pfn - sec.startPfn]! + 1;
}

/** An mmu notifier on `p`'s mm that logs "start A-B", "end A-B" and "release". */
export function recordNotifier(p: Process): string[] {
  const events: string[] = [];
  const mn = new MmuNotifier({
    invalidate_range_start: (_mn, r) => {
      events.push(`start ${hex(r.start)}-${hex(r.end)}`);
      return 0;
    },
    invalidate_range_end: (_mn, r) => void events.push(`end ${hex(r.start)}-${hex(r.end)}`),
    release: () => void events.push("release"),
  });
  p.mm!.mmu_notifier_mm.register(mn);
  return events;
}

/** The lines of /proc/PID/maps. */
export function maps(k: Kernel, p: Process): string[] {
  return k.read(`/proc/${p.pid}/maps`).split("\n").slice(0, -1);
}

/** One /proc/PID/maps line as show_map_vma() prints it. */
export function mapsLine(start: number, end: number, perms: string, pgoff = 0, dev = "00:00", ino = 0, name = ""): string {
  const line = `${start.toString(16).padStart(8, "0")}-${end.toString(16).padStart(8, "0")} ${perms} ${pgoff.toString(16).padStart(8, "0")} ${dev} ${ino} `;
  return name ? line.padEnd(72) + " " + name : line;
}
