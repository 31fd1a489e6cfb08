// The firmware memory map (core/mm/e820.ts) as e820__print_table() prints it in 4.20/5.0:
//   pr_info("%s: [mem %#018Lx-%#018Lx] ", who, addr, addr + size - 1); e820_print_type(type);
// with e820_print_type() giving "usable", "reserved", "ACPI data", "ACPI NVS", "unusable",
// "persistent (type %u)" for types 7 and 12, else "type %u". The BIOS table is sanitized
// (e820__update_table) before it is printed: touching entries of one type merge, type 12
// included (only 23446cb66c07, in 5.10, kept consecutive E820_PRAM ranges apart).
// The layout is QEMU's pc machine with SeaBIOS; pmem without a start follows the RAM.

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import {
  buildE820, E820_TYPE_ACPI, E820_TYPE_NVS, E820_TYPE_PMEM, E820_TYPE_PRAM, E820_TYPE_RAM, E820_TYPE_RESERVED,
  E820_TYPE_UNUSABLE, e820TypeName, e820TypeText, formatMemRange,
} from "../../core/mm/e820.ts";
import { resolveConfig } from "../../core/config.ts";
import { boot } from "../helpers/kernel.ts";

const M = 2 ** 20;
const G = 2 ** 30;

/** The BIOS-e820 lines of the boot log, in order. */
function e820Lines(k: Kernel): string[] {
  return k.log.messages().filter((l) => l.startsWith("BIOS-e820: "));
}

// The fixed part of every QEMU pc map below 1 MiB.
const LOW = [
  "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
  "BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved",
  "BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved",
];
// The fixed part just below 4 GiB.
const HOLE = [
  "BIOS-e820: [mem 0x00000000feffc000-0x00000000feffffff] reserved",
  "BIOS-e820: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved",
];

describe("e820 type names", () => {
  it("e820_print_type() text for every type", () => {
    expect(e820TypeText(E820_TYPE_RAM)).toBe("usable");
    expect(e820TypeText(E820_TYPE_RESERVED)).toBe("reserved");
    expect(e820TypeText(E820_TYPE_ACPI)).toBe("ACPI data");
    expect(e820TypeText(E820_TYPE_NVS)).toBe("ACPI NVS");
    expect(e820TypeText(E820_TYPE_UNUSABLE)).toBe("unusable");
    expect(e820TypeText(E820_TYPE_PMEM)).toBe("persistent (type 7)");
    expect(e820TypeText(E820_TYPE_PRAM)).toBe("persistent (type 12)");
    expect(e820TypeText(6)).toBe("type 6");
    expect(e820TypeText(13)).toBe("type 13");
  });

  it("e820_type_to_string() /proc/iomem names", () => {
    expect(e820TypeName(E820_TYPE_RAM)).toBe("System RAM");
    expect(e820TypeName(E820_TYPE_RESERVED)).toBe("Reserved");
    expect(e820TypeName(E820_TYPE_ACPI)).toBe("ACPI Tables");
    expect(e820TypeName(E820_TYPE_NVS)).toBe("ACPI Non-volatile Storage");
    expect(e820TypeName(E820_TYPE_UNUSABLE)).toBe("Unusable memory");
    expect(e820TypeName(E820_TYPE_PMEM)).toBe("Persistent Memory");
    expect(e820TypeName(E820_TYPE_PRAM)).toBe("Persistent Memory (legacy)");
    expect(e820TypeName(13)).toBe("Reserved");
  });

  it("%#018Lx ranges: 0x and 16 digits, inclusive end", () => {
    expect(formatMemRange(0, 0xfff)).toBe("[mem 0x0000000000000000-0x0000000000000fff]");
    expect(formatMemRange(2 ** 46, 2 ** 52 - 1)).toBe("[mem 0x0000400000000000-0x000fffffffffffff]");
  });
});

describe("the BIOS-provided physical RAM map", () => {
  it("1G: RAM up to SeaBIOS's 128 KiB at the top, printed after the header at KERN_INFO", async () => {
    const k = await boot({ memory: "1G" });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x000000003ffdffff] usable",
      "BIOS-e820: [mem 0x000000003ffe0000-0x000000003fffffff] reserved",
      ...HOLE,
    ]);
    const msgs = k.log.messages();
    const header = msgs.indexOf("BIOS-provided physical RAM map:");
    expect(header).toBeGreaterThan(0);
    expect(msgs[header + 1]).toBe(LOW[0]);
    for (const r of k.log.records().filter((r) => r.text.startsWith("BIOS-e820"))) expect(r.level).toBe(6);
    // and the e820 entries become the top of /proc/iomem
    expect(k.read("/proc/iomem")).toContain("00100000-3ffdffff : System RAM\n");
    expect(k.read("/proc/iomem")).toContain("3ffe0000-3fffffff : Reserved\n");
  });

  it("4G: RAM split at 3G, the low part, then 0x100000000 upwards", async () => {
    const k = await boot({ memory: "4G" });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable",
      "BIOS-e820: [mem 0x00000000bffe0000-0x00000000bfffffff] reserved",
      ...HOLE,
      "BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] usable",
    ]);
    expect(k.read("/proc/iomem")).toContain("100000000-13fffffff : System RAM\n");
  });

  it("3.5G and more is split at 3G (QEMU pc, gigabyte_align)", async () => {
    const k = await boot({ memory: "3584M" });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable",
      "BIOS-e820: [mem 0x00000000bffe0000-0x00000000bfffffff] reserved",
      ...HOLE,
      "BIOS-e820: [mem 0x0000000100000000-0x000000011fffffff] usable",
    ]);
  });

  it("below 3.5G all RAM stays below 4G (QEMU pc keeps lowmem = 0xe0000000)", async () => {
    const k = await boot({ memory: "3328M" });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x00000000cffdffff] usable",
      "BIOS-e820: [mem 0x00000000cffe0000-0x00000000cfffffff] reserved",
      ...HOLE,
    ]);
  });

  it("64M, the smallest machine", async () => {
    const k = await boot({ memory: "64M" });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x0000000003fdffff] usable",
      "BIOS-e820: [mem 0x0000000003fe0000-0x0000000003ffffff] reserved",
      ...HOLE,
    ]);
  });

  it("the map is the same on 4.20 and 5.0", async () => {
    const a = await boot({ version: "4.20", memory: "2G", pmem: [{ size: "1G" }] });
    const b = await boot({ version: "5.0", memory: "2G", pmem: [{ size: "1G" }] });
    expect(e820Lines(a)).toEqual(e820Lines(b));
  });
});

describe("pmem in the e820 map", () => {
  it("type 7 prints as 'persistent (type 7)' and is 'Persistent Memory' in /proc/iomem", async () => {
    const k = await boot({ memory: "1G", pmem: [{ size: "1G" }] });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x000000003ffdffff] usable",
      "BIOS-e820: [mem 0x000000003ffe0000-0x000000003fffffff] reserved",
      ...HOLE,
      "BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] persistent (type 7)",
    ]);
    expect(k.read("/proc/iomem")).toContain("100000000-13fffffff : Persistent Memory\n");
  });

  it("legacy: type 12, 'persistent (type 12)', 'Persistent Memory (legacy)'", async () => {
    const k = await boot({ memory: "1G", pmem: [{ size: "512M", legacy: true }] });
    expect(e820Lines(k).at(-1)).toBe("BIOS-e820: [mem 0x0000000100000000-0x000000011fffffff] persistent (type 12)");
    expect(k.read("/proc/iomem")).toContain("100000000-11fffffff : Persistent Memory (legacy)\n");
  });

  it("the first region without a start goes to the first 1 GiB boundary after the RAM (at least 4G)", async () => {
    expect((await boot({ memory: "1G", pmem: [{ size: "128M" }] })).config.pmem[0]!.start).toBe(4 * G);
    expect((await boot({ memory: "4G", pmem: [{ size: "128M" }] })).config.pmem[0]!.start).toBe(5 * G);
    // 4.5G of RAM ends at 5.5G; the next 1 GiB boundary is 6G
    const k = await boot({ memory: "4608M", pmem: [{ size: "128M" }] });
    expect(k.config.pmem[0]!.start).toBe(6 * G);
    expect(e820Lines(k).slice(-2)).toEqual([
      "BIOS-e820: [mem 0x0000000100000000-0x000000015fffffff] usable",
      "BIOS-e820: [mem 0x0000000180000000-0x0000000187ffffff] persistent (type 7)",
    ]);
  });

  it("later regions start on the next 128 MiB boundary after the one before", async () => {
    const k = await boot({ memory: "1G", pmem: [{ size: "100M" }, { size: "1G", legacy: true }, { size: "4K" }] });
    expect(k.config.pmem.map((p) => p.start)).toEqual([4 * G, 4 * G + 128 * M, 5 * G + 128 * M]);
    expect(e820Lines(k).slice(-3)).toEqual([
      "BIOS-e820: [mem 0x0000000100000000-0x00000001063fffff] persistent (type 7)",
      "BIOS-e820: [mem 0x0000000108000000-0x0000000147ffffff] persistent (type 12)",
      "BIOS-e820: [mem 0x0000000148000000-0x0000000148000fff] persistent (type 7)",
    ]);
  });

  it("automatic placement skips explicitly placed regions, wherever they are in the list", async () => {
    // the three legacy (type 12) regions touch, so 4.19-5.0's sanitizer merges them into one line
    const k = await boot({
      memory: "1G",
      pmem: [{ size: "256M", legacy: true }, { size: "512M", start: "4G", legacy: true }, { size: "64M", legacy: true }],
    });
    expect(k.config.pmem.map((p) => p.start)).toEqual([4 * G + 512 * M, 4 * G, 4 * G + 768 * M]);
    expect(e820Lines(k).slice(-3)).toEqual([...HOLE, "BIOS-e820: [mem 0x0000000100000000-0x0000000133ffffff] persistent (type 12)"]);
    expect(k.read("/proc/iomem")).toContain("fffc0000-ffffffff : Reserved\n100000000-133ffffff : Persistent Memory (legacy)\n");
  });

  it("automatic placement jumps over an explicit region in its way to the next 128 MiB boundary", async () => {
    const k = await boot({ memory: "1G", pmem: [{ size: "4K", start: "0x108001000" }, { size: "256M" }] });
    // the cursor starts at 4G; a 256M region there would cover 0x108001000, so it moves past it
    expect(k.config.pmem[1]!.start).toBe(4 * G + 256 * M);
  });

  it("automatic placement skips reserved ranges", async () => {
    const k = await boot({ memory: "1G", reserved: [{ start: "0x100100000", size: "1M" }], pmem: [{ size: "128M" }] });
    expect(k.config.pmem[0]!.start).toBe(4 * G + 128 * M);
    expect(e820Lines(k).slice(-2)).toEqual([
      "BIOS-e820: [mem 0x0000000100100000-0x00000001001fffff] reserved",
      "BIOS-e820: [mem 0x0000000108000000-0x000000010fffffff] persistent (type 7)",
    ]);
  });

  // e820__update_table() merges touching entries of one type; 4.19-5.0 have no E820_PRAM
  // exception (23446cb66c07 added it in 5.10), so touching legacy regions become one.
  it("touching type-7 regions merge into one entry, and so do touching type-12 regions", async () => {
    const a = await boot({ memory: "1G", pmem: [{ size: "1G" }, { size: "1G" }] });
    expect(a.config.pmem.map((p) => p.start)).toEqual([4 * G, 5 * G]);
    expect(e820Lines(a).slice(-1)).toEqual(["BIOS-e820: [mem 0x0000000100000000-0x000000017fffffff] persistent (type 7)"]);
    const b = await boot({ memory: "1G", pmem: [{ size: "1G", legacy: true }, { size: "1G", legacy: true }] });
    expect(e820Lines(b).slice(-1)).toEqual(["BIOS-e820: [mem 0x0000000100000000-0x000000017fffffff] persistent (type 12)"]);
    expect(b.read("/proc/iomem")).toContain("100000000-17fffffff : Persistent Memory (legacy)\n");
    // a type-7 region next to a type-12 region: different types never merge
    const c = await boot({ memory: "1G", pmem: [{ size: "1G" }, { size: "1G", legacy: true }] });
    expect(e820Lines(c).slice(-2)).toEqual([
      "BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] persistent (type 7)",
      "BIOS-e820: [mem 0x0000000140000000-0x000000017fffffff] persistent (type 12)",
    ]);
  });

  it("an explicit start below 4G, in the PCI hole, is printed in address order", async () => {
    const k = await boot({ memory: "1G", pmem: [{ size: "256M", start: "0xc0000000" }] });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x000000003ffdffff] usable",
      "BIOS-e820: [mem 0x000000003ffe0000-0x000000003fffffff] reserved",
      "BIOS-e820: [mem 0x00000000c0000000-0x00000000cfffffff] persistent (type 7)",
      ...HOLE,
    ]);
  });

  it("buildE820 writes the chosen start into the resolved config only", () => {
    const cfg = resolveConfig({ memory: "2G", pmem: [{ size: "1G" }] });
    expect(cfg.pmem[0]!.start).toBe(-1);
    const table = buildE820(cfg);
    expect(cfg.pmem[0]!.start).toBe(4 * G);
    expect(table.at(-1)).toEqual({ addr: 4 * G, size: G, type: E820_TYPE_PMEM });
    // sorted by address, no overlaps
    for (let i = 1; i < table.length; i++) expect(table[i]!.addr).toBeGreaterThanOrEqual(table[i - 1]!.addr + table[i - 1]!.size);
  });
});

describe("reserved ranges", () => {
  it("punch a hole in low RAM: the RAM entry is split around them", async () => {
    const k = await boot({ memory: "1G", reserved: [{ start: "0x20000000", size: "1M" }] });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable",
      "BIOS-e820: [mem 0x0000000020000000-0x00000000200fffff] reserved",
      "BIOS-e820: [mem 0x0000000020100000-0x000000003ffdffff] usable",
      "BIOS-e820: [mem 0x000000003ffe0000-0x000000003fffffff] reserved",
      ...HOLE,
    ]);
    expect(k.read("/proc/iomem")).toContain("20000000-200fffff : Reserved\n");
  });

  it("two holes in one RAM entry split it in three", async () => {
    const k = await boot({ memory: "1G", reserved: [{ start: "0x30000000", size: "4K" }, { start: "0x8000000", size: "2M" }] });
    expect(e820Lines(k).slice(3, 9)).toEqual([
      "BIOS-e820: [mem 0x0000000000100000-0x0000000007ffffff] usable",
      "BIOS-e820: [mem 0x0000000008000000-0x00000000081fffff] reserved",
      "BIOS-e820: [mem 0x0000000008200000-0x000000002fffffff] usable",
      "BIOS-e820: [mem 0x0000000030000000-0x0000000030000fff] reserved",
      "BIOS-e820: [mem 0x0000000030001000-0x000000003ffdffff] usable",
      "BIOS-e820: [mem 0x000000003ffe0000-0x000000003fffffff] reserved",
    ]);
  });

  it("at the start of high RAM: the RAM entry starts after them", async () => {
    const k = await boot({ memory: "4G", reserved: [{ start: "0x100200000", size: "14M" }] });
    expect(e820Lines(k).slice(-3)).toEqual([
      "BIOS-e820: [mem 0x0000000100000000-0x00000001001fffff] usable",
      "BIOS-e820: [mem 0x0000000100200000-0x0000000100ffffff] reserved",
      "BIOS-e820: [mem 0x0000000101000000-0x000000013fffffff] usable",
    ]);
    // starting at 4G it also touches the BIOS range below 4G, and the two merge
    const m = await boot({ memory: "4G", reserved: [{ start: "4G", size: "16M" }] });
    expect(e820Lines(m).slice(-3)).toEqual([
      "BIOS-e820: [mem 0x00000000feffc000-0x00000000feffffff] reserved",
      "BIOS-e820: [mem 0x00000000fffc0000-0x0000000100ffffff] reserved",
      "BIOS-e820: [mem 0x0000000101000000-0x000000013fffffff] usable",
    ]);
  });

  it("the first page of RAM", async () => {
    const k = await boot({ memory: "1G", reserved: [{ start: 0, size: "4K" }] });
    expect(e820Lines(k).slice(0, 2)).toEqual([
      "BIOS-e820: [mem 0x0000000000000000-0x0000000000000fff] reserved",
      "BIOS-e820: [mem 0x0000000000001000-0x000000000009fbff] usable",
    ]);
  });

  it("outside RAM they are entries of their own", async () => {
    const k = await boot({ memory: "1G", reserved: [{ start: "0xe0000000", size: "1M" }] });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x000000003ffdffff] usable",
      "BIOS-e820: [mem 0x000000003ffe0000-0x000000003fffffff] reserved",
      "BIOS-e820: [mem 0x00000000e0000000-0x00000000e00fffff] reserved",
      ...HOLE,
    ]);
  });

  it("across the end of RAM: the RAM part and the part beyond become one reserved entry", async () => {
    const k = await boot({ memory: "4G", reserved: [{ start: "0x13ff00000", size: "2M" }] });
    expect(e820Lines(k).slice(-2)).toEqual([
      "BIOS-e820: [mem 0x0000000100000000-0x000000013fefffff] usable",
      "BIOS-e820: [mem 0x000000013ff00000-0x00000001400fffff] reserved",
    ]);
  });

  it("touching a firmware reserved range: the sanitizer merges them into one entry", async () => {
    const k = await boot({ memory: "1G", reserved: [{ start: "0x3ff00000", size: "0xe0000" }] });
    expect(e820Lines(k)).toEqual([
      ...LOW,
      "BIOS-e820: [mem 0x0000000000100000-0x000000003fefffff] usable",
      "BIOS-e820: [mem 0x000000003ff00000-0x000000003fffffff] reserved",
      ...HOLE,
    ]);
    expect(k.read("/proc/iomem")).toContain("3ff00000-3fffffff : Reserved\n");
  });

  it("reserved RAM is not given to the page allocator", async () => {
    const plain = await boot({ memory: "1G" });
    const holed = await boot({ memory: "1G", reserved: [{ start: "0x20000000", size: "16M" }] });
    expect(plain.mm.pageAlloc.totalram_pages - holed.mm.pageAlloc.totalram_pages).toBe((16 * M) / 4096);
  });
});
