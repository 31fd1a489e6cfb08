// The firmware memory map (arch/x86/kernel/e820.c): what the BIOS reports, laid out as QEMU's
// "pc" machine with SeaBIOS reports it, plus the configured pmem and reserved ranges.

import { ConfigError, SZ_1G, type ResolvedConfig } from "../config.ts";
import { ALIGN, PA_SECTION_SIZE } from "./memmap.ts";

export const E820_TYPE_RAM = 1;
export const E820_TYPE_RESERVED = 2;
export const E820_TYPE_ACPI = 3;
export const E820_TYPE_NVS = 4;
export const E820_TYPE_UNUSABLE = 5;
export const E820_TYPE_PMEM = 7;
export const E820_TYPE_PRAM = 12;

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/** The modelled kernel image: where "Kernel code/data/bss" sit in /proc/iomem. */
export const KERNEL_IMAGE = {
  code: { start: 0x01000000, end: 0x01a031d0 },
  data: { start: 0x01a031d1, end: 0x0226c77f },
  bss: { start: 0x024f5000, end: 0x027fffff },
  rodataKb: 3560,
  initKb: 1440,
} as const;
/** Where QEMU's pc machine splits RAM around the 32-bit PCI hole (pc_init1(): RAM of 3.5 GiB
 *  or more is split at 3 GiB, gigabyte_align; anything smaller stays below 4 GiB whole). */
const LOWMEM_LIMIT = 3 * SZ_1G;
const LOWMEM_SPLIT_FROM = 0xe0000000;
const FOUR_G = 4 * SZ_1G;
/** The top 128 KiB of low RAM that SeaBIOS keeps for itself. */
const BIOS_TOP_RESERVE = 0x20000;

/** e820_print_type() */
export function e820TypeText(type: number): string {
  switch (type) {
    case E820_TYPE_RAM:
      return "usable";
    case E820_TYPE_RESERVED:
      return "reserved";
    case E820_TYPE_ACPI:
      return "ACPI data";
    case E820_TYPE_NVS:
      return "ACPI NVS";
    case E820_TYPE_UNUSABLE:
      return "unusable";
    case E820_TYPE_PMEM:
    case E820_TYPE_PRAM:
      return `persistent (type ${type})`;
    default:
      return `type ${type}`;
  }
}

/** e820_type_to_string(): the /proc/iomem name. */
export function e820TypeName(type: number): string {
  switch (type) {
    case E820_TYPE_RAM:
      return "System RAM";
    case E820_TYPE_ACPI:
      return "ACPI Tables";
    case E820_TYPE_NVS:
      return "ACPI Non-volatile Storage";
    case E820_TYPE_UNUSABLE:
      return "Unusable memory";
    case E820_TYPE_PRAM:
      return "Persistent Memory (legacy)";
    case E820_TYPE_PMEM:
      return "Persistent Memory";
    default:
      return "Reserved";
  }
}

export function formatMemRange(start: number, endInclusive: number): string {
  return `[mem 0x${start.toString(16).padStart(16, "0")}-0x${endInclusive.toString(16).padStart(16, "0")}]`;
}

interface Span {
  start: number;
  end: number; // exclusive
  field: string;
}

function overlap(a: Span, b: Span): boolean {
  return a.start < b.end && b.start < a.end;
}

/**
 * Build the e820 table. Pmem regions without a start follow the RAM from the 1 GiB-aligned
 * address after it (QEMU's device-memory base), each on a 128 MiB section boundary; their
 * chosen start is written back into `cfg.pmem`. Reserved ranges punch holes in RAM; any
 * other overlap is a configuration error.
 */
export function buildE820(cfg: ResolvedConfig): E820Entry[] {
  const M = cfg.memory;
  const lowTop = M >= LOWMEM_SPLIT_FROM ? LOWMEM_LIMIT : M;
  const highRam = M - lowTop;
  const table: E820Entry[] = [
    { addr: 0, size: 0x9fc00, type: E820_TYPE_RAM },
    { addr: 0x9fc00, size: 0x400, type: E820_TYPE_RESERVED },
    { addr: 0xf0000, size: 0x10000, type: E820_TYPE_RESERVED },
    { addr: 0x100000, size: lowTop - BIOS_TOP_RESERVE - 0x100000, type: E820_TYPE_RAM },
    { addr: lowTop - BIOS_TOP_RESERVE, size: BIOS_TOP_RESERVE, type: E820_TYPE_RESERVED },
    { addr: 0xfeffc000, size: 0x4000, type: E820_TYPE_RESERVED },
    { addr: 0xfffc0000, size: 0x40000, type: E820_TYPE_RESERVED },
  ];
  if (highRam > 0) table.push({ addr: FOUR_G, size: highRam, type: E820_TYPE_RAM });
  const ramTop = highRam > 0 ? FOUR_G + highRam : lowTop;

  const limit = 2 ** cfg.physBits;
  if (ramTop > limit) {
    throw new ConfigError("memory", `System RAM ${formatMemRange(FOUR_G, ramTop - 1)} is beyond the ${cfg.physBits}-bit physical address space (physBits)`);
  }
  const fixed: Span[] = table.map((e) => ({ start: e.addr, end: e.addr + e.size, field: e.type === E820_TYPE_RAM ? "System RAM" : "firmware reserved" }));
  const placed: Span[] = [];

  // Explicitly placed ranges first, so the automatic placement can avoid them.
  const checkSpan = (span: Span) => {
    if (span.end > limit) {
      throw new ConfigError(span.field, `${formatMemRange(span.start, span.end - 1)} is beyond the ${cfg.physBits}-bit physical address space (physBits)`);
    }
    for (const other of placed) {
      if (overlap(span, other)) throw new ConfigError(span.field, `${formatMemRange(span.start, span.end - 1)} overlaps ${other.field} ${formatMemRange(other.start, other.end - 1)}`);
    }
  };
  const image = { start: KERNEL_IMAGE.code.start, end: KERNEL_IMAGE.bss.end + 1 };
  for (const r of cfg.reserved) {
    const span = { start: r.start, end: r.start + r.size, field: `reserved[${r.index}]` };
    checkSpan(span);
    if (overlap(span, { ...image, field: "" })) {
      throw new ConfigError(span.field, `${formatMemRange(span.start, span.end - 1)} overlaps the kernel image ${formatMemRange(image.start, image.end - 1)}`);
    }
    for (const f of fixed) {
      if (f.field !== "System RAM" && overlap(span, f)) {
        throw new ConfigError(span.field, `${formatMemRange(span.start, span.end - 1)} overlaps the ${f.field} range ${formatMemRange(f.start, f.end - 1)}`);
      }
    }
    placed.push(span);
  }
  for (const p of cfg.pmem) {
    if (p.start < 0) continue;
    const span = { start: p.start, end: p.start + p.size, field: `pmem[${p.index}]` };
    checkSpan(span);
    for (const f of fixed) {
      if (overlap(span, f)) throw new ConfigError(`${span.field}.start`, `${formatMemRange(span.start, span.end - 1)} overlaps ${f.field} ${formatMemRange(f.start, f.end - 1)}`);
    }
    placed.push(span);
  }
  let cursor = ALIGN(Math.max(FOUR_G, ramTop), SZ_1G);
  for (const p of cfg.pmem) {
    if (p.start >= 0) continue;
    let start = ALIGN(cursor, PA_SECTION_SIZE);
    for (let moved = true; moved; ) {
      moved = false;
      for (const other of placed) {
        if (overlap({ start, end: start + p.size, field: "" }, other)) {
          start = ALIGN(other.end, PA_SECTION_SIZE);
          moved = true;
        }
      }
    }
    p.start = start;
    const span = { start, end: start + p.size, field: `pmem[${p.index}]` };
    checkSpan(span);
    placed.push(span);
    cursor = span.end;
  }

  for (const p of cfg.pmem) table.push({ addr: p.start, size: p.size, type: p.legacy ? E820_TYPE_PRAM : E820_TYPE_PMEM });
  let out = table;
  for (const r of cfg.reserved) out = rangeUpdate(out, r.start, r.size, E820_TYPE_RESERVED);
  return mergeAdjacent(out.sort((a, b) => a.addr - b.addr));
}

/**
 * The merging half of e820__update_table() (the sanitizer run on the BIOS table): touching
 * entries of one type become one entry. In 4.19-5.0 that includes E820_TYPE_PRAM: keeping
 * each legacy pmem range apart came with 23446cb66c07 ("x86/e820: Don't merge consecutive
 * E820_PRAM ranges", 5.10).
 */
function mergeAdjacent(sorted: E820Entry[]): E820Entry[] {
  const out: E820Entry[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && last.type === e.type && last.addr + last.size === e.addr) {
      out[out.length - 1] = { addr: last.addr, size: last.size + e.size, type: e.type };
    } else {
      out.push(e);
    }
  }
  return out;
}

/** e820__range_update(): the part of [start, start+size) that is RAM becomes `type`. */
export function rangeUpdate(table: E820Entry[], start: number, size: number, type: number): E820Entry[] {
  const end = start + size;
  const out: E820Entry[] = [];
  let covered = 0;
  for (const e of table) {
    const eEnd = e.addr + e.size;
    if (e.type !== E820_TYPE_RAM || eEnd <= start || e.addr >= end) {
      out.push(e);
      continue;
    }
    if (e.addr < start) out.push({ addr: e.addr, size: start - e.addr, type: e.type });
    const s = Math.max(e.addr, start);
    const t = Math.min(eEnd, end);
    out.push({ addr: s, size: t - s, type });
    covered += t - s;
    if (eEnd > end) out.push({ addr: end, size: eEnd - end, type: e.type });
  }
  if (covered < size) {
    // The part outside RAM becomes its own entry, as a BIOS-reported reserved range would.
    const holes = subtract({ start, end }, out.filter((e) => e.type === type).map((e) => ({ start: e.addr, end: e.addr + e.size })));
    for (const h of holes) out.push({ addr: h.start, size: h.end - h.start, type });
  }
  return out.sort((a, b) => a.addr - b.addr);
}

function subtract(r: { start: number; end: number }, cuts: { start: number; end: number }[]): { start: number; end: number }[] {
  let parts = [r];
  for (const c of cuts) {
    parts = parts.flatMap((p) => {
      if (c.end <= p.start || c.start >= p.end) return [p];
      const res: { start: number; end: number }[] = [];
      if (c.start > p.start) res.push({ start: p.start, end: c.start });
      if (c.end < p.end) res.push({ start: c.end, end: p.end });
      return res;
    });
  }
  return parts;
}

