// The buddy page allocator (mm/page_alloc.c 4.20/5.0) as /proc and dmesg show it: split and
// merge in /proc/buddyinfo, zone fallback, __GFP_ZERO, warn_alloc(), bad_page() on both the
// free and the allocation path, get_page()/put_page() on RAM pages with DEBUG_VM, the lazily
// materialised memmap, and /proc/meminfo.

import { describe, expect, it } from "vitest";
import { KernelOops } from "../../core/kernel/bug.ts";
import type { Kernel } from "../../core/kernel.ts";
import {
  formatGfp, GFP_ATOMIC, GFP_DMA, GFP_DMA32, GFP_HIGHUSER, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_KERNEL_ACCOUNT, GFP_NOFS,
  GFP_NOIO, GFP_NOWAIT, GFP_TRANSHUGE, GFP_TRANSHUGE_LIGHT, GFP_USER, __GFP_COMP, __GFP_HIGH, __GFP_KSWAPD_RECLAIM,
  __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN, __GFP_RECLAIM, __GFP_ZERO,
} from "../../core/mm/gfp.ts";
import { pagePointer, PAGE_SIZE, PFN_PHYS, ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, type Page } from "../../core/mm/memmap.ts";
import { PG_active, PG_hwpoison, PG_locked, PG_lru, PG_reserved } from "../../core/mm/page-flags.ts";
import { MAX_DMA32_PFN, MAX_DMA_PFN, MAX_ORDER } from "../../core/mm/page_alloc.ts";
import { TAINT_BAD_PAGE, TAINT_DIE } from "../../core/taint.ts";
import { boot, levelled, messages, tainted } from "../helpers/kernel.ts";
import { meminfo } from "../helpers/mm.ts";

// ---- helpers -------------------------------------------------------------------------------

type Buddy = Map<string, number[]>;

/** /proc/buddyinfo, checking every line has the exact frag_show_print() layout. */
function buddyinfo(k: Kernel): Buddy {
  const text = k.read("/proc/buddyinfo");
  expect(text.endsWith("\n")).toBe(true);
  const out: Buddy = new Map();
  for (const line of text.slice(0, -1).split("\n")) {
    const m = /^Node 0, zone +(\S+) /.exec(line);
    expect(m, line).not.toBeNull();
    const counts = line.slice("Node 0, zone ".length + 9).trim().split(/ +/).map(Number);
    expect(counts).toHaveLength(MAX_ORDER);
    expect(line).toBe(buddyLine(m![1]!, counts));
    out.set(m![1]!, counts);
  }
  return out;
}

/** seq_printf(m, "Node %d, zone %8s ", ...) then "%6lu " per order. */
function buddyLine(zone: string, counts: number[]): string {
  return `Node 0, zone ${zone.padStart(8)} ` + counts.map((c) => `${String(c).padStart(6)} `).join("");
}

/** What a buddy allocator must show after taking one block of `order`: the smallest free
 *  block of at least that order is split, leaving one free block at each order in between. */
function afterSplit(counts: number[], order: number): number[] {
  const out = [...counts];
  let c = order;
  while (out[c] === 0) c++;
  out[c]!--;
  for (let o = order; o < c; o++) out[o]!++;
  return out;
}

function pagesIn(b: Buddy): number {
  let n = 0;
  for (const counts of b.values()) counts.forEach((c, o) => (n += c << o));
  return n;
}

function memFree(k: Kernel): number {
  return meminfo(k).get("MemFree")!;
}

function zoneOf(pfn: Page): number {
  return pfn < MAX_DMA_PFN ? ZONE_DMA : pfn < MAX_DMA32_PFN ? ZONE_DMA32 : ZONE_NORMAL;
}

function section(k: Kernel, pfn: Page) {
  const sec = k.mm.memmap.section(pfn);
  return { sec, i: pfn - sec.startPfn };
}

const hex16 = (n: bigint) => n.toString(16).padStart(16, "0");

// ---- allocation and freeing ----------------------------------------------------------------

describe("alloc_pages / __free_pages", () => {
  it("orders 0..10: refcount 1, the split shows in /proc/buddyinfo, freeing merges back exactly", async () => {
    const k = await boot({ memory: "1G" });
    for (let order = 0; order < MAX_ORDER; order++) {
      const before = buddyinfo(k);
      const freeBefore = memFree(k);
      const page = k.mm.alloc_pages(GFP_KERNEL, order);
      expect(page).toBeGreaterThan(0);
      expect(page % (1 << order), "a block is aligned to its order").toBe(0);
      expect(zoneOf(page), "GFP_KERNEL on a 1G machine comes from DMA32").toBe(ZONE_DMA32);
      expect(k.mm.page_ref_count(page)).toBe(1);
      for (let t = 1; t < 1 << order; t++) expect(k.mm.page_ref_count(page + t), "tail pages stay at 0").toBe(0);
      const during = buddyinfo(k);
      expect(during.get("DMA32")).toEqual(afterSplit(before.get("DMA32")!, order));
      expect(during.get("DMA"), "other zones untouched").toEqual(before.get("DMA"));
      expect(memFree(k)).toBe(freeBefore - (4 << order));
      expect(k.read("/proc/buddyinfo")).toContain(buddyLine("DMA32", afterSplit(before.get("DMA32")!, order)));

      k.mm.__free_pages(page, order);
      expect(buddyinfo(k)).toEqual(before);
      expect(memFree(k)).toBe(freeBefore);
      expect(k.mm.pageAlloc.isBuddyHead(page), "the block is free again").toBe(true);
    }
  });

  it("boot leaves DMA with its small blocks and DMA32 with whole MAX_ORDER blocks", async () => {
    const k = await boot({ memory: "1G" });
    const b = buddyinfo(k);
    expect([...b.keys()]).toEqual(["DMA", "DMA32"]);
    expect(pagesIn(b) * 4).toBe(memFree(k));
    expect(b.get("DMA32")![10]).toBeGreaterThan(200);
  });

  it("freeing blocks in any order merges buddies back into the original free lists", async () => {
    const k = await boot({ memory: "1G" });
    const before = buddyinfo(k);
    const pages = Array.from({ length: 37 }, (_, n) => k.mm.alloc_pages(GFP_KERNEL, n % 3));
    expect(new Set(pages).size).toBe(pages.length);
    // Interleave: odd ones first, then even ones backwards.
    const order = [...pages.keys()].filter((n) => n % 2).concat([...pages.keys()].filter((n) => n % 2 === 0).reverse());
    for (const n of order) k.mm.__free_pages(pages[n]!, n % 3);
    expect(buddyinfo(k)).toEqual(before);
  });

  it("__free_pages() only drops a reference while others hold the page", async () => {
    const k = await boot({ memory: "64M" });
    const free0 = memFree(k);
    const p = k.mm.alloc_pages(GFP_KERNEL, 0);
    k.mm.get_page(p);
    k.mm.__free_pages(p, 0);
    expect(k.mm.page_ref_count(p)).toBe(1);
    expect(memFree(k)).toBe(free0 - 4);
    k.mm.__free_pages(p, 0);
    expect(memFree(k)).toBe(free0);
  });
});

describe("zone selection", () => {
  it("GFP_DMA comes only from ZONE_DMA and fails when DMA is out of blocks, whatever DMA32 holds", async () => {
    const k = await boot({ memory: "1G" });
    const before = buddyinfo(k);
    const got: Page[] = [];
    const seq = k.log.nextSeq;
    for (;;) {
      const p = k.mm.alloc_pages(GFP_DMA, 10);
      if (p < 0) break;
      got.push(p);
    }
    expect(got).toHaveLength(before.get("DMA")![10]!);
    for (const p of got) expect(p + 1024).toBeLessThanOrEqual(MAX_DMA_PFN);
    expect(messages(k, seq)[0]).toBe("swapper/0: page allocation failure: order:10, mode:0x1(GFP_DMA), nodemask=(null)");
    expect(buddyinfo(k).get("DMA32"), "DMA32 was never touched").toEqual(before.get("DMA32"));
    const small = k.mm.alloc_pages(GFP_DMA, 0);
    expect(zoneOf(small)).toBe(ZONE_DMA);
    k.mm.__free_pages(small, 0);
    for (const p of got) k.mm.__free_pages(p, 10);
    expect(buddyinfo(k)).toEqual(before);
  });

  it("GFP_KERNEL on a small machine falls back Normal -> DMA32 -> DMA", async () => {
    const k = await boot({ memory: "64M" });
    const zones = k.mm.pageAlloc.zones;
    expect(zones[ZONE_NORMAL]!.managed_pages, "no Normal zone below 4G").toBe(0);
    const dma32 = zones[ZONE_DMA32]!.nr_free_pages;
    const got: Page[] = [];
    for (let n = 0; n < dma32; n++) got.push(k.mm.alloc_pages(GFP_KERNEL, 0));
    expect(got.every((p) => zoneOf(p) === ZONE_DMA32), "DMA32 is used up before DMA").toBe(true);
    expect(zones[ZONE_DMA32]!.nr_free_pages).toBe(0);
    const next = k.mm.alloc_pages(GFP_KERNEL, 0);
    expect(zoneOf(next), "then ZONE_DMA").toBe(ZONE_DMA);
    got.push(next);
    for (const p of got) k.mm.__free_pages(p, 0);
  });

  it("on a >4G machine GFP_KERNEL and GFP_HIGHUSER_MOVABLE come from Normal first; GFP_DMA32 never does", async () => {
    const k = await boot({ memory: "16G" });
    const before = buddyinfo(k);
    expect([...before.keys()]).toEqual(["DMA", "DMA32", "Normal"]);
    const kern = k.mm.alloc_pages(GFP_KERNEL, 0);
    const user = k.mm.alloc_pages(GFP_HIGHUSER_MOVABLE, 0);
    expect(zoneOf(kern)).toBe(ZONE_NORMAL);
    expect(zoneOf(user)).toBe(ZONE_NORMAL);
    const d32 = k.mm.alloc_pages(GFP_DMA32, 0);
    expect(zoneOf(d32)).toBe(ZONE_DMA32);
    for (const p of [kern, user, d32]) k.mm.__free_pages(p, 0);

    // Take every order-10 block GFP_DMA32 may have: DMA32's, then DMA's, never Normal's.
    const got: Page[] = [];
    const seq = k.log.nextSeq;
    for (;;) {
      const p = k.mm.alloc_pages(GFP_DMA32, 10);
      if (p < 0) break;
      got.push(p);
    }
    expect(got).toHaveLength(before.get("DMA32")![10]! + before.get("DMA")![10]!);
    expect(got.every((p) => p + 1024 <= MAX_DMA32_PFN)).toBe(true);
    expect(got.slice(0, before.get("DMA32")![10]!).every((p) => zoneOf(p) === ZONE_DMA32)).toBe(true);
    expect(got.slice(before.get("DMA32")![10]!).every((p) => zoneOf(p) === ZONE_DMA)).toBe(true);
    expect(messages(k, seq)[0]).toBe("swapper/0: page allocation failure: order:10, mode:0x4(GFP_DMA32), nodemask=(null)");
    expect(buddyinfo(k).get("Normal")).toEqual(before.get("Normal"));
    const normal = k.mm.alloc_pages(GFP_KERNEL, 10);
    expect(zoneOf(normal)).toBe(ZONE_NORMAL);
    k.mm.__free_pages(normal, 10);
    for (const p of got) k.mm.__free_pages(p, 10);
    expect(buddyinfo(k)).toEqual(before);
  });
});

// ---- contents ------------------------------------------------------------------------------

describe("__GFP_ZERO", () => {
  it("zeroes a page that held data; without it the stale data survives", async () => {
    const k = await boot({ memory: "1G" });
    const pattern = new Uint8Array(PAGE_SIZE).map((_, n) => (n * 7 + 1) & 0xff);
    const p = k.mm.alloc_pages(GFP_KERNEL, 0);
    k.mm.physmem.write(PFN_PHYS(p), pattern);
    k.mm.__free_pages(p, 0);

    const stale = k.mm.alloc_pages(GFP_KERNEL, 0);
    expect(stale, "the hot page comes straight back").toBe(p);
    expect(k.mm.physmem.read(PFN_PHYS(stale), PAGE_SIZE)).toEqual(pattern);
    k.mm.__free_pages(stale, 0);

    const zeroed = k.mm.alloc_pages(GFP_KERNEL | __GFP_ZERO, 0);
    expect(zeroed).toBe(p);
    expect(k.mm.physmem.read(PFN_PHYS(zeroed), PAGE_SIZE)).toEqual(new Uint8Array(PAGE_SIZE));
    k.mm.__free_pages(zeroed, 0);
  });

  it("zeroes every page of a higher-order block", async () => {
    const k = await boot({ memory: "1G" });
    const p = k.mm.alloc_pages(GFP_KERNEL, 2);
    for (let t = 0; t < 4; t++) k.mm.physmem.write(PFN_PHYS(p + t) + 100, new Uint8Array([0xde, 0xad, t]));
    k.mm.__free_pages(p, 2);
    const q = k.mm.alloc_pages(GFP_KERNEL | __GFP_ZERO, 2);
    expect(q).toBe(p);
    expect(k.mm.physmem.read(PFN_PHYS(q), 4 * PAGE_SIZE)).toEqual(new Uint8Array(4 * PAGE_SIZE));
    k.mm.__free_pages(q, 2);
  });

  it("costs nothing for pages nobody wrote (principle 8)", async () => {
    const k = await boot({ memory: "1G" });
    const held = k.mm.physmem.allocatedPages;
    const p = k.mm.alloc_pages(GFP_KERNEL | __GFP_ZERO, 10);
    expect(k.mm.physmem.read(PFN_PHYS(p + 513), 16)).toEqual(new Uint8Array(16));
    expect(k.mm.physmem.allocatedPages).toBe(held);
    k.mm.__free_pages(p, 10);
  });
});

// ---- failure -------------------------------------------------------------------------------

describe("exhaustion and warn_alloc()", () => {
  it("allocating until failure returns -1 with the kernel's message; freeing everything restores the counts", async () => {
    const k = await boot({ memory: "64M" });
    const before = buddyinfo(k);
    const free0 = memFree(k);
    const got: Page[] = [];
    const seq = k.log.nextSeq;
    let last = 0;
    k.sched.runAs("memhog", () => {
      for (;;) {
        last = k.mm.alloc_pages(GFP_KERNEL, 0);
        if (last < 0) break;
        got.push(last);
      }
    });
    expect(last).toBe(-1);
    expect(got.length).toBeGreaterThan(0);
    const lines = levelled(k, seq);
    expect(lines.filter((l) => l.includes("page allocation failure"))).toEqual([
      "<4>memhog: page allocation failure: order:0, mode:0x6000c0(GFP_KERNEL), nodemask=(null)",
    ]);
    expect(lines[1], "then the task's cpuset").toBe("<6>memhog cpuset=/ mems_allowed=0");
    expect(lines[2], "then dump_stack() of the failing task").toMatch(/^<4>CPU: 0 PID: \d+ Comm: memhog Not tainted /);
    expect(lines, "then show_mem()").toContain("<4>Mem-Info:");
    expect(lines.some((l) => /^<4>Node 0 DMA32: (\d+\*\d+kB ){11}= \d+kB$/.test(l))).toBe(true);
    expect(k.tainted(), "warn_alloc() does not taint").toBe("Not tainted");

    // __GFP_NOWARN: the same failure, silently.
    const quiet = k.log.nextSeq;
    expect(k.mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0)).toBe(-1);
    expect(k.mm.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 3)).toBe(-1);
    expect(messages(k, quiet)).toEqual([]);

    // A higher order, another mask: the order and the %pGg name follow.
    const again = k.log.nextSeq;
    expect(k.mm.alloc_pages(GFP_HIGHUSER_MOVABLE, 3)).toBe(-1);
    expect(messages(k, again)[0]).toBe("swapper/0: page allocation failure: order:3, mode:0x6200ca(GFP_HIGHUSER_MOVABLE), nodemask=(null)");

    for (const p of got) k.mm.__free_pages(p, 0);
    expect(memFree(k)).toBe(free0);
    expect(buddyinfo(k)).toEqual(before);
  });

  it("an order-10 failure names order:10 and the mask with its extra bits", async () => {
    const k = await boot({ memory: "64M" });
    const got: Page[] = [];
    for (;;) {
      const p = k.mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 10);
      if (p < 0) break;
      got.push(p);
    }
    expect(got.length).toBeGreaterThan(0);
    const seq = k.log.nextSeq;
    expect(k.sched.runAs("kworker/0:1", () => k.mm.alloc_pages(GFP_KERNEL | __GFP_ZERO | __GFP_NORETRY, 10))).toBe(-1);
    expect(messages(k, seq)[0]).toBe(
      "kworker/0:1: page allocation failure: order:10, mode:0x6090c0(GFP_KERNEL|__GFP_NORETRY|__GFP_ZERO), nodemask=(null)",
    );
    for (const p of got) k.mm.__free_pages(p, 10);
  });

  // 4.20 __alloc_pages_nodemask(): "if (unlikely(order >= MAX_ORDER)) { WARN_ON_ONCE(!(gfp_mask &
  // __GFP_NOWARN)); return NULL; }" -- a WARNING, not warn_alloc().
  it("order >= MAX_ORDER is a WARN_ON_ONCE in __alloc_pages_nodemask, not a page allocation failure", async () => {
    const k = await boot({ memory: "64M" });
    const seq = k.log.nextSeq;
    expect(k.mm.alloc_pages(GFP_KERNEL, MAX_ORDER)).toBe(-1);
    const lines = messages(k, seq);
    expect(lines.some((l) => l.includes("page allocation failure"))).toBe(false);
    expect(lines.some((l) => /^WARNING: CPU: 0 PID: \d+ at mm\/page_alloc\.c/.test(l))).toBe(true);
  });
});

describe("%pGg: GFP masks as warn_alloc() prints them", () => {
  it("formats the composite masks with their 4.20 values", () => {
    expect([GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_ATOMIC, GFP_NOWAIT, GFP_NOFS, GFP_NOIO, GFP_USER, GFP_HIGHUSER, GFP_KERNEL_ACCOUNT]).toEqual([
      0x6000c0, 0x6200ca, 0x480020, 0x400000, 0x600040, 0x600000, 0x6200c0, 0x6200c2, 0x7000c0,
    ]);
    expect(formatGfp(GFP_KERNEL)).toBe("GFP_KERNEL");
    expect(formatGfp(GFP_HIGHUSER_MOVABLE)).toBe("GFP_HIGHUSER_MOVABLE");
    expect(formatGfp(GFP_HIGHUSER)).toBe("GFP_HIGHUSER");
    expect(formatGfp(GFP_USER)).toBe("GFP_USER");
    expect(formatGfp(GFP_KERNEL_ACCOUNT)).toBe("GFP_KERNEL_ACCOUNT");
    expect(formatGfp(GFP_ATOMIC)).toBe("GFP_ATOMIC");
    expect(formatGfp(GFP_NOWAIT)).toBe("GFP_NOWAIT");
    expect(formatGfp(GFP_NOIO)).toBe("GFP_NOIO");
    expect(formatGfp(GFP_NOFS)).toBe("GFP_NOFS");
    expect(formatGfp(GFP_DMA)).toBe("GFP_DMA");
    expect(formatGfp(GFP_DMA32)).toBe("GFP_DMA32");
  });

  it("takes the first matching name, then leftover flags in table order, then unknown bits in hex", () => {
    expect(formatGfp(GFP_KERNEL | __GFP_ZERO)).toBe("GFP_KERNEL|__GFP_ZERO");
    expect(formatGfp(GFP_KERNEL | __GFP_NOWARN | __GFP_ZERO)).toBe("GFP_KERNEL|__GFP_NOWARN|__GFP_ZERO");
    expect(formatGfp(GFP_KERNEL | GFP_DMA)).toBe("GFP_KERNEL|GFP_DMA");
    expect(formatGfp(GFP_ATOMIC & ~__GFP_KSWAPD_RECLAIM)).toBe("__GFP_HIGH|__GFP_ATOMIC");
    expect(formatGfp(__GFP_HIGH)).toBe("__GFP_HIGH");
    expect(formatGfp(__GFP_RECLAIM)).toBe("GFP_NOIO");
    expect(formatGfp(GFP_KERNEL | 0x1000000)).toBe("GFP_KERNEL|0x1000000");
    expect(formatGfp(0)).toBe("");
  });

  it("knows GFP_TRANSHUGE and GFP_TRANSHUGE_LIGHT, which head the 4.20 table", () => {
    expect(GFP_TRANSHUGE_LIGHT).toBe(0x342ca);
    expect(GFP_TRANSHUGE).toBe(0x2342ca);
    expect(formatGfp(GFP_TRANSHUGE)).toBe("GFP_TRANSHUGE");
    expect(formatGfp(GFP_TRANSHUGE_LIGHT)).toBe("GFP_TRANSHUGE_LIGHT");
    expect(formatGfp(GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN)).toBe("GFP_TRANSHUGE|GFP_NOWAIT");
  });
});

// ---- bad_page() ----------------------------------------------------------------------------

/** dump_page()'s first four lines for a page whose other fields are clear. */
function dumpLines(pfn: Page, opts: { count: number; mapcount: number; rawMapcount: number; zone: number; flags: number }): string[] {
  const flagsWord = (BigInt(opts.zone) << 51n) | BigInt(opts.flags);
  const counts = (BigInt(opts.count >>> 0) << 32n) | BigInt(opts.rawMapcount >>> 0);
  const names = ["locked", "referenced", "uptodate", "dirty", "lru", "active"];
  const flagNames: string[] = [];
  for (let b = 0; b < 25; b++) if (opts.flags & (1 << b)) flagNames.push(b === PG_reserved ? "reserved" : b === PG_hwpoison ? "hwpoison" : names[b]!);
  return [
    `<0>page:${pagePointer(pfn)} count:${opts.count} mapcount:${opts.mapcount} mapping:0000000000000000 index:0x0`,
    `<0>flags: 0x${flagsWord.toString(16)}(${flagNames.join("|")})`,
    `<1>raw: ${hex16(flagsWord)} 0000000000000000 0000000000000000 0000000000000000`,
    `<1>raw: 0000000000000000 0000000000000000 ${hex16(counts)} 0000000000000000`,
  ];
}

describe("bad_page() when a page is freed in a bad state", () => {
  it("nonzero mapcount: the report, the dump, taint B, and the page is leaked", async () => {
    const k = await boot({ memory: "1G" }, { expectLeaks: true });
    const p = k.mm.alloc_pages(GFP_DMA, 0);
    const free1 = memFree(k);
    const { sec, i } = section(k, p);
    sec.mapcount[i] = 0; // still mapped once
    const seq = k.log.nextSeq;
    k.sched.runAs("badfree", () => k.mm.__free_pages(p, 0));
    const lines = levelled(k, seq);
    expect(lines.slice(0, 7)).toEqual([
      `<1>BUG: Bad page state in process badfree  pfn:${p.toString(16).padStart(5, "0")}`,
      ...dumpLines(p, { count: 0, mapcount: 1, rawMapcount: 0, zone: ZONE_DMA, flags: 0 }),
      "<1>page dumped because: nonzero mapcount",
      "<4>Modules linked in:",
    ]);
    expect(p.toString(16).length, "pfn:%05lx pads a DMA pfn").toBeLessThan(5);
    expect(lines.some((l) => l.includes("bad because of flags")), "no flags were at fault").toBe(false);
    expect(lines[7]).toMatch(/^<4>CPU: 0 PID: \d+ Comm: badfree Not tainted /);
    expect(lines).toContain("<4>Disabling lock debugging due to kernel taint");
    expect(k.tainted()).toBe(tainted("B"));
    expect(k.tainted().charAt("Tainted: ".length + 5)).toBe("B");
    expect(k.read("/proc/sys/kernel/tainted")).toBe("32\n");
    // Leaked: not back in the free lists, PageBuddy-safe (page_mapcount_reset), refcount 0.
    expect(memFree(k)).toBe(free1);
    expect(k.mm.pageAlloc.isBuddyHead(p)).toBe(false);
    expect(sec.mapcount[i]).toBe(-1);
    expect(k.mm.page_ref_count(p)).toBe(0);
    expect(k.checkInvariants()).toEqual([]);
    await k.shutdown();
    expect(k.leaks()).toEqual(["pages: 1 pages not returned to the allocator"]);
  });

  it("PG_reserved: PAGE_FLAGS_CHECK_AT_FREE flag(s) set, and bad because of flags", async () => {
    const k = await boot({ memory: "1G" }, { expectLeaks: true });
    const p = k.mm.alloc_pages(GFP_DMA, 0);
    const { sec, i } = section(k, p);
    sec.flags[i] = sec.flags[i]! | (1 << PG_reserved);
    const seq = k.log.nextSeq;
    k.sched.runAs("resfree", () => k.mm.__free_pages(p, 0));
    expect(levelled(k, seq).slice(0, 8)).toEqual([
      `<1>BUG: Bad page state in process resfree  pfn:${p.toString(16).padStart(5, "0")}`,
      ...dumpLines(p, { count: 0, mapcount: 0, rawMapcount: -1, zone: ZONE_DMA, flags: 1 << PG_reserved }),
      "<1>page dumped because: PAGE_FLAGS_CHECK_AT_FREE flag(s) set",
      "<1>bad because of flags: 0x1000(reserved)",
      "<4>Modules linked in:",
    ]);
    expect(k.taint.test(TAINT_BAD_PAGE)).toBe(true);
    await k.shutdown();
    expect(k.leaks()).toEqual(["pages: 1 pages not returned to the allocator"]);
  });

  it("several problems: the last test in free_pages_check_bad() names the reason", async () => {
    const k = await boot({ memory: "1G" }, { expectLeaks: true });
    const p = k.mm.alloc_pages(GFP_KERNEL, 0);
    const { sec, i } = section(k, p);
    sec.mapcount[i] = 2;
    sec.flags[i] = sec.flags[i]! | (1 << PG_lru) | (1 << PG_locked) | (1 << PG_active);
    const seq = k.log.nextSeq;
    k.mm.__free_pages(p, 0);
    const lines = messages(k, seq);
    expect(lines[0]).toBe(`BUG: Bad page state in process swapper/0  pfn:${p.toString(16).padStart(5, "0")}`);
    expect(lines[1]).toBe(`page:${pagePointer(p)} count:0 mapcount:3 mapping:0000000000000000 index:0x0`);
    expect(lines[2]).toBe(`flags: 0x${((1n << 51n) | 0x31n).toString(16)}(locked|lru|active)`);
    expect(lines).toContain("page dumped because: PAGE_FLAGS_CHECK_AT_FREE flag(s) set");
    expect(lines).toContain("bad because of flags: 0x31(locked|lru|active)");
    await k.shutdown();
    expect(k.leaks()).toEqual(["pages: 1 pages not returned to the allocator"]);
  });

  it("a tail page with a reference (nonzero _refcount) leaks the whole block, tails checked before the head", async () => {
    const k = await boot({ memory: "1G" }, { expectLeaks: true });
    const p = k.mm.alloc_pages(GFP_DMA, 1);
    const free1 = memFree(k);
    const tail = section(k, p + 1);
    tail.sec.refcount[tail.i] = 1; // a stray reference on the tail page
    const head = section(k, p);
    head.sec.mapcount[head.i] = 0; // and the head is still mapped
    const seq = k.log.nextSeq;
    k.mm.__free_pages(p, 1);
    const lines = messages(k, seq);
    const reports = lines.filter((l) => l.startsWith("BUG: Bad page state"));
    expect(reports).toEqual([
      `BUG: Bad page state in process swapper/0  pfn:${(p + 1).toString(16).padStart(5, "0")}`,
      `BUG: Bad page state in process swapper/0  pfn:${p.toString(16).padStart(5, "0")}`,
    ]);
    expect(lines.filter((l) => l.startsWith("page dumped because:"))).toEqual([
      "page dumped because: nonzero _refcount",
      "page dumped because: nonzero mapcount",
    ]);
    expect(lines).toContain(`page:${pagePointer(p + 1)} count:1 mapcount:0 mapping:0000000000000000 index:0x0`);
    expect(memFree(k), "neither page went back").toBe(free1);
    await k.shutdown();
    expect(k.leaks()).toEqual(["pages: 2 pages not returned to the allocator"]);
  });

  it("a tail page with a mapping: non-NULL mapping", async () => {
    const k = await boot({ memory: "1G" }, { expectLeaks: true });
    const p = k.mm.alloc_pages(GFP_KERNEL, 1);
    const tail = section(k, p + 1);
    tail.sec.mapping[tail.i] = { host: "inode" };
    const seq = k.log.nextSeq;
    k.mm.__free_pages(p, 1);
    const lines = messages(k, seq);
    expect(lines[0]).toBe(`BUG: Bad page state in process swapper/0  pfn:${(p + 1).toString(16).padStart(5, "0")}`);
    expect(lines).toContain("page dumped because: non-NULL mapping");
    await k.shutdown();
    expect(k.leaks()).toEqual(["pages: 2 pages not returned to the allocator"]);
  });

  it("after 60 reports in a minute bad_page() goes quiet but still taints and leaks", async () => {
    const k = await boot({ memory: "64M" }, { expectLeaks: true });
    const seq = k.log.nextSeq;
    for (let n = 0; n < 61; n++) {
      const p = k.mm.alloc_pages(GFP_KERNEL, 0);
      const { sec, i } = section(k, p);
      sec.flags[i] = sec.flags[i]! | (1 << PG_reserved);
      k.mm.__free_pages(p, 0);
    }
    expect(messages(k, seq).filter((l) => l.startsWith("BUG: Bad page state in process"))).toHaveLength(60);
    await k.shutdown();
    expect(k.leaks()).toEqual(["pages: 61 pages not returned to the allocator"]);
  });

  // bad_page(): "if (nr_unshown) { pr_alert("BUG: Bad page state: %lu messages suppressed\n",
  // nr_unshown); ..." once the minute is over.
  it("the next report after the quiet minute says how many were suppressed", async () => {
    const k = await boot({ memory: "64M" }, { expectLeaks: true });
    const spoil = () => {
      const p = k.mm.alloc_pages(GFP_KERNEL, 0);
      const { sec, i } = section(k, p);
      sec.flags[i] = sec.flags[i]! | (1 << PG_reserved);
      k.mm.__free_pages(p, 0);
    };
    for (let n = 0; n < 63; n++) spoil();
    k.clock.advance(61e9);
    const seq = k.log.nextSeq;
    spoil();
    expect(messages(k, seq)[0]).toBe("BUG: Bad page state: 3 messages suppressed");
  });
});

describe("check_new_page() when the allocator hands out a bad free page", () => {
  /** The order-0 free blocks of ZONE_DMA: the next GFP_DMA order-0 allocations. */
  function dmaOrder0(k: Kernel): Page[] {
    return [...k.mm.pageAlloc.freeBlocks(k.mm.pageAlloc.zones[ZONE_DMA]!, 0)];
  }

  it("a flag set on a free page: PAGE_FLAGS_CHECK_AT_PREP flag set; the allocation retries in the same zone", async () => {
    const k = await boot({ memory: "1G" }, { expectLeaks: true });
    const bad = dmaOrder0(k);
    expect(bad.length).toBeGreaterThan(0);
    for (const p of bad) {
      const { sec, i } = section(k, p);
      sec.flags[i] = sec.flags[i]! | (1 << PG_active);
    }
    const dmaFree = k.mm.pageAlloc.zones[ZONE_DMA]!.nr_free_pages;
    const seq = k.log.nextSeq;
    const got = k.sched.runAs("dmauser", () => k.mm.alloc_pages(GFP_DMA, 0));
    expect(got, "GFP_DMA still succeeds from another DMA block").toBeGreaterThan(0);
    expect(zoneOf(got)).toBe(ZONE_DMA);
    expect(bad).not.toContain(got);
    const lines = levelled(k, seq);
    expect(lines.filter((l) => l.includes("Bad page state")).sort()).toEqual(
      bad.map((p) => `<1>BUG: Bad page state in process dmauser  pfn:${p.toString(16).padStart(5, "0")}`).sort(),
    );
    expect(lines.filter((l) => l.includes("page dumped because"))).toEqual(bad.map(() => "<1>page dumped because: PAGE_FLAGS_CHECK_AT_PREP flag set"));
    expect(lines.filter((l) => l.includes("bad because of flags"))).toEqual(bad.map(() => "<1>bad because of flags: 0x20(active)"));
    expect(lines.some((l) => l.includes("page allocation failure"))).toBe(false);
    expect(k.mm.pageAlloc.zones[ZONE_DMA]!.nr_free_pages, "the bad pages are leaked").toBe(dmaFree - bad.length - 1);
    expect(k.taint.test(TAINT_BAD_PAGE)).toBe(true);
    k.mm.__free_pages(got, 0);
    await k.shutdown();
    expect(k.leaks()).toEqual([`pages: ${bad.length} pages not returned to the allocator`]);
  });

  it("a reference on a free page: nonzero _count (PageBuddy already cleared when checked)", async () => {
    const k = await boot({ memory: "1G" }, { expectLeaks: true });
    const bad = dmaOrder0(k);
    for (const p of bad) {
      const { sec, i } = section(k, p);
      sec.refcount[i] = 1;
    }
    const seq = k.log.nextSeq;
    const got = k.mm.alloc_pages(GFP_DMA, 0);
    expect(got).toBeGreaterThan(0);
    expect(bad).not.toContain(got);
    const lines = levelled(k, seq);
    expect(lines.filter((l) => l.includes("page dumped because"))).toEqual(bad.map(() => "<1>page dumped because: nonzero _count"));
    for (const p of bad) {
      const at = lines.indexOf(`<1>BUG: Bad page state in process swapper/0  pfn:${p.toString(16).padStart(5, "0")}`);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(lines.slice(at + 1, at + 6)).toEqual([
        ...dumpLines(p, { count: 1, mapcount: 0, rawMapcount: -1, zone: ZONE_DMA, flags: 0 }),
        "<1>page dumped because: nonzero _count",
      ]);
    }
    expect(lines.some((l) => l.includes("bad because of flags"))).toBe(false);
    k.mm.__free_pages(got, 0);
    await k.shutdown();
    expect(k.leaks()).toEqual([`pages: ${bad.length} pages not returned to the allocator`]);
  });

  it("a HWPoison free page is skipped without a report and without taint", async () => {
    const k = await boot({ memory: "1G" }, { expectLeaks: true });
    const bad = dmaOrder0(k);
    for (const p of bad) {
      const { sec, i } = section(k, p);
      sec.flags[i] = sec.flags[i]! | (1 << PG_hwpoison);
    }
    const seq = k.log.nextSeq;
    const got = k.mm.alloc_pages(GFP_DMA, 0);
    expect(got).toBeGreaterThan(0);
    expect(bad).not.toContain(got);
    expect(messages(k, seq)).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
    for (const p of bad) expect(k.mm.pageAlloc.isBuddyHead(p), "PageBuddy removed").toBe(false);
    k.mm.__free_pages(got, 0);
    await k.shutdown();
    expect(k.leaks()).toEqual([`pages: ${bad.length} pages not returned to the allocator`]);
  });
});

// ---- get_page / put_page -------------------------------------------------------------------

describe("get_page() / put_page() on RAM pages", () => {
  it("count references; the last put_page() gives the page back to the buddy allocator", async () => {
    const k = await boot({ memory: "1G" });
    const before = buddyinfo(k);
    const free0 = memFree(k);
    const p = k.mm.alloc_pages(GFP_KERNEL, 0);
    expect(k.mm.page_ref_count(p)).toBe(1);
    k.mm.get_page(p);
    k.mm.get_page(p);
    expect(k.mm.page_ref_count(p)).toBe(3);
    k.mm.put_page(p);
    k.mm.put_page(p);
    expect(k.mm.page_ref_count(p)).toBe(1);
    expect(memFree(k)).toBe(free0 - 4);
    k.mm.put_page(p);
    expect(k.mm.page_ref_count(p)).toBe(0);
    expect(memFree(k)).toBe(free0);
    expect(buddyinfo(k)).toEqual(before);
    expect(k.mm.alloc_pages(GFP_KERNEL, 0), "and it is the next page handed out").toBe(p);
    k.mm.put_page(p);
  });

  it("get_page() on a free page is VM_BUG_ON_PAGE: dump, kernel BUG, oops, taint D; the kernel carries on", async () => {
    const k = await boot({ memory: "1G" });
    const p = k.mm.alloc_pages(GFP_KERNEL, 0);
    k.mm.__free_pages(p, 0);
    const inside = p + 1; // inside a free block: not a buddy head
    expect(k.mm.pageAlloc.isBuddyHead(inside)).toBe(false);
    const seq = k.log.nextSeq;
    expect(() => k.sched.runAs("getter", () => k.mm.get_page(inside))).toThrow(KernelOops);
    const lines = levelled(k, seq);
    expect(lines.slice(0, 9)).toEqual([
      ...dumpLines(inside, { count: 0, mapcount: 0, rawMapcount: -1, zone: ZONE_DMA32, flags: 0 }),
      "<1>page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) <= 0)",
      "<4>------------[ cut here ]------------",
      // The level and the missing ":line" are checked (as a known bug) in the next test.
      expect.stringMatching(/^<\d>kernel BUG at include\/linux\/mm\.h(:\d+)?!$/),
      "<4>invalid opcode: 0000 [#1] SMP PTI",
      expect.stringMatching(/^<4>CPU: 0 PID: \d+ Comm: getter Not tainted /),
    ]);
    expect(lines.some((l) => /^<4>---\[ end trace [0-9a-f]{16} \]---$/.test(l))).toBe(true);
    expect(k.tainted()).toBe(tainted("D"));
    expect(k.mm.page_ref_count(inside), "BUG() stopped before the increment").toBe(0);

    // The kernel keeps working.
    const before = buddyinfo(k);
    const q = k.mm.alloc_pages(GFP_KERNEL, 3);
    expect(q).toBeGreaterThan(0);
    k.mm.get_page(q);
    k.mm.put_page(q);
    k.mm.__free_pages(q, 3);
    expect(buddyinfo(k)).toEqual(before);
    expect(k.checkInvariants()).toEqual([]);
  });

  // lib/bug.c report_bug(): pr_crit("kernel BUG at %s:%u!\n", file, line). kemu's emulated
  // functions have no source lines (docs/memory-model.md), so it prints the file alone.
  it("kernel BUG at is printed at KERN_CRIT", async () => {
    const k = await boot({ memory: "1G" });
    const p = k.mm.alloc_pages(GFP_KERNEL, 0);
    k.mm.__free_pages(p, 0);
    const seq = k.log.nextSeq;
    expect(() => k.mm.get_page(p + 1)).toThrow(KernelOops);
    expect(levelled(k, seq)).toContain("<2>kernel BUG at include/linux/mm.h!");
  });

  it("put_page() on a free buddy page is VM_BUG_ON_PAGE(page_ref_count(page) == 0), dumped with mapcount:-128", async () => {
    const k = await boot({ memory: "1G" });
    const pa = k.mm.pageAlloc;
    const [head] = [...pa.freeBlocks(pa.zones[ZONE_DMA32]!, 9)];
    expect(pa.isBuddyHead(head!)).toBe(true);
    const seq = k.log.nextSeq;
    expect(() => k.mm.put_page(head!)).toThrow(KernelOops);
    const lines = messages(k, seq);
    expect(lines[0]).toBe(`page:${pagePointer(head!)} count:0 mapcount:-128 mapping:0000000000000000 index:0x0`);
    expect(lines[3]).toBe(`raw: 0000000000000000 0000000000000009 ${hex16(0xffffff7fn)} 0000000000000000`);
    expect(lines[4]).toBe("page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) == 0)");
    expect(lines).toContain("kernel BUG at include/linux/mm.h!");
    expect(k.taint.test(TAINT_DIE)).toBe(true);
    expect(pa.isBuddyHead(head!), "the free block is untouched").toBe(true);
    expect(k.mm.page_ref_count(head!)).toBe(0);
  });

  it("without DEBUG_VM get_page() on a free page just increments, as VM_BUG_ON_PAGE compiles away", async () => {
    const k = await boot({ memory: "1G", debugVm: false });
    const p = k.mm.alloc_pages(GFP_KERNEL, 0);
    k.mm.__free_pages(p, 0);
    const seq = k.log.nextSeq;
    k.mm.get_page(p + 1);
    expect(k.mm.page_ref_count(p + 1)).toBe(1);
    expect(messages(k, seq)).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
    const { sec, i } = section(k, p + 1);
    sec.refcount[i] = 0; // undo, so the free block is consistent again
  });
});

// ---- laziness ------------------------------------------------------------------------------

describe("memmap laziness (principle 8)", () => {
  it("a 16G machine boots with a handful of sections; an order-10 block materialises at most one more", async () => {
    const k = await boot({ memory: "16G" });
    const memmap = k.mm.memmap;
    const booted = memmap.materializedSections;
    expect(memmap.presentSections).toBeGreaterThanOrEqual(128);
    expect(booted).toBeLessThanOrEqual(4);

    // Reading /proc costs no struct pages.
    const info = meminfo(k);
    const b = buddyinfo(k);
    expect(memmap.materializedSections).toBe(booted);

    // MemFree counts every free page, materialised or not.
    expect(info.get("MemFree")).toBe(k.mm.pageAlloc.nr_free_pages() * 4);
    expect(info.get("MemFree")).toBe(pagesIn(b) * 4);
    expect(info.get("MemFree")!).toBeGreaterThan(15.5 * 1024 * 1024);
    expect(info.get("MemTotal")!).toBeGreaterThanOrEqual(info.get("MemFree")!);

    const p = k.mm.alloc_pages(GFP_KERNEL, 10);
    expect(zoneOf(p)).toBe(ZONE_NORMAL);
    expect(memmap.materializedSections - booted).toBeLessThanOrEqual(1);
    expect(memFree(k)).toBe(info.get("MemFree")! - 4096);
    expect(buddyinfo(k).get("Normal")![10]).toBe(b.get("Normal")![10]! - 1);
    k.mm.__free_pages(p, 10);
    expect(memFree(k)).toBe(info.get("MemFree"));
    expect(buddyinfo(k)).toEqual(b);
  });
});

// ---- /proc/meminfo -------------------------------------------------------------------------

describe("/proc/meminfo", () => {
  it("has the 4.20 layout and MemTotal is the managed pages", async () => {
    const k = await boot({ memory: "1G" });
    const text = k.read("/proc/meminfo");
    const lines = text.split("\n");
    expect(lines.slice(0, 5).map((l) => l.slice(0, 16))).toEqual(["MemTotal:       ", "MemFree:        ", "MemAvailable:   ", "Buffers:        ", "Cached:         "]);
    const info = meminfo(k);
    let managed = 0;
    for (const z of k.mm.pageAlloc.zones) managed += z.managed_pages;
    expect(info.get("MemTotal")).toBe(managed * 4);
    expect(info.get("MemTotal")).toBe(k.mm.pageAlloc.totalram_pages * 4);
    expect(lines[0]).toBe(`MemTotal:       ${String(managed * 4).padStart(8)} kB`);
    expect(info.get("Slab")).toBe(info.get("SReclaimable")! + info.get("SUnreclaim")!);
  });

  it("MemFree drops by exactly 4 kB per allocated page and comes back on free", async () => {
    const k = await boot({ memory: "1G" });
    const free0 = memFree(k);
    const pages: Page[] = [];
    for (let n = 1; n <= 5; n++) {
      pages.push(k.mm.alloc_pages(GFP_KERNEL, 0));
      expect(memFree(k)).toBe(free0 - 4 * n);
    }
    const big = k.mm.alloc_pages(GFP_KERNEL, 4);
    expect(memFree(k)).toBe(free0 - 20 - 64);
    k.mm.__free_pages(big, 4);
    for (const p of pages) k.mm.__free_pages(p, 0);
    expect(memFree(k)).toBe(free0);
  });
});

describe("the zero page", () => {
  it("is a reserved page of the kernel's bss, never handed out, reading as zeroes", async () => {
    const k = await boot({ memory: "64M" });
    const zp = k.mm.zeroPfn;
    expect(zp * 4096).toBeGreaterThanOrEqual(0x024f5000);
    expect(zp * 4096).toBeLessThanOrEqual(0x027fffff);
    expect(k.mm.page_ref_count(zp)).toBe(1);
    const sec = k.mm.memmap.section(zp);
    expect(sec.flags[zp - sec.startPfn]! & (1 << 12)).not.toBe(0); // PG_reserved
    expect(k.mm.physmem.readPage(zp).every((b) => b === 0)).toBe(true);
    // Draining the allocator never returns it.
    const got: number[] = [];
    for (let p = k.mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0); p >= 0; p = k.mm.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0)) got.push(p);
    expect(got).not.toContain(zp);
    for (const p of got) k.mm.__free_pages(p, 0);
  });
});
