// Reading memory-management state the way a test compares it: page flags of a pfn and
// /proc/meminfo as numbers.

import { expect } from "vitest";
import type { Kernel } from "../../core/kernel.ts";

/** page->flags of `pfn` (the struct page is materialised if it was not). */
export function pageFlags(k: Kernel, pfn: number): number {
  const sec = k.mm.memmap.section(pfn);
  return sec.flags[pfn - sec.startPfn]!;
}

/**
 * /proc/meminfo as label -> kB, checking the layout of every "kB" line: show_val_kb()'s label
 * padded to 16 columns, "%8lu kB"; HardwareCorrupted has its own "%5lu kB" after one space.
 * Lines without a unit (HugePages_*) are left out.
 */
export function meminfo(k: Kernel): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of k.read("/proc/meminfo").split("\n")) {
    if (!line.endsWith(" kB")) continue;
    const m = /^([A-Za-z0-9_()]+): +(\d+) kB$/.exec(line);
    expect(m, `meminfo line ${JSON.stringify(line)}`).not.toBeNull();
    const label = m![1]!;
    const v = Number(m![2]);
    const layout = label === "HardwareCorrupted" ? `HardwareCorrupted: ${String(v).padStart(5)} kB` : `${(label + ":").padEnd(16)}${String(v).padStart(8)} kB`;
    expect(line, "meminfo layout").toBe(layout);
    out.set(label, v);
  }
  return out;
}
