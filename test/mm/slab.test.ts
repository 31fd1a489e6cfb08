// kmalloc() on SLUB-style caches (mm/slub.c, mm/slab_common.c 4.20/5.0): size classes, slab
// pages and their accounting in /proc/meminfo, kzalloc, kmalloc_large, double frees, and
// failslab through /sys/kernel/debug/failslab (mm/failslab.c, lib/fault-inject.c).

import { describe, expect, it } from "vitest";
import { EINVAL, KernelError } from "../../core/errno.ts";
import type { Kernel } from "../../core/kernel.ts";
import {
  GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, __GFP_HIGH, __GFP_KSWAPD_RECLAIM, __GFP_NOFAIL, __GFP_ZERO,
} from "../../core/mm/gfp.ts";
import { PG_slab } from "../../core/mm/page-flags.ts";
import { KBuf, KMALLOC_MAX_CACHE_SIZE, ZERO_SIZE_PTR } from "../../core/mm/slab.ts";
import { TAINT_BAD_PAGE } from "../../core/taint.ts";
import type { KernelVersion } from "../../core/version.ts";
import { boot, levelled, messages, tainted } from "../helpers/kernel.ts";
import { meminfo, pageFlags } from "../helpers/mm.ts";

const FS = "/sys/kernel/debug/failslab";

// ---- kmalloc -------------------------------------------------------------------------------

describe("kmalloc size classes", () => {
  it("rounds each request up to the kmalloc-N cache the kernel uses", async () => {
    const k = await boot({ memory: "64M" });
    const cases: [number, string][] = [
      [1, "kmalloc-8"], [8, "kmalloc-8"], [9, "kmalloc-16"], [16, "kmalloc-16"], [17, "kmalloc-32"], [33, "kmalloc-64"],
      [64, "kmalloc-64"], [65, "kmalloc-96"], [96, "kmalloc-96"], [97, "kmalloc-128"], [129, "kmalloc-192"],
      [192, "kmalloc-192"], [193, "kmalloc-256"], [257, "kmalloc-512"], [513, "kmalloc-1k"], [1024, "kmalloc-1k"],
      [1025, "kmalloc-2k"], [2049, "kmalloc-4k"], [4096, "kmalloc-4k"], [4097, "kmalloc-8k"], [8192, "kmalloc-8k"],
    ];
    const bufs: KBuf[] = [];
    for (const [size, name] of cases) {
      const b = k.mm.kmalloc(size, GFP_KERNEL)!;
      expect(b, `kmalloc(${size})`).not.toBeNull();
      expect(b.cache?.name, `kmalloc(${size})`).toBe(name);
      expect(b.offset % b.cache!.object_size, "objects sit at multiples of the object size").toBe(0);
      expect(pageFlags(k, b.page) & (1 << PG_slab), "slab pages are PageSlab").not.toBe(0);
      bufs.push(b);
    }
    for (const b of bufs) k.mm.kfree(b);
    expect(KMALLOC_MAX_CACHE_SIZE).toBe(8192);
  });

  it("kmalloc(0) is ZERO_SIZE_PTR; kfree(NULL) and kfree(ZERO_SIZE_PTR) do nothing", async () => {
    const k = await boot({ memory: "64M" });
    const free0 = meminfo(k).get("MemFree");
    const seq = k.log.nextSeq;
    expect(k.mm.kmalloc(0, GFP_KERNEL)).toBe(ZERO_SIZE_PTR);
    k.mm.kfree(ZERO_SIZE_PTR);
    k.mm.kfree(null);
    expect(messages(k, seq)).toEqual([]);
    expect(meminfo(k).get("MemFree")).toBe(free0);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("distinct live objects never overlap, and one slab holds many of them", async () => {
    const k = await boot({ memory: "64M" });
    const bufs = Array.from({ length: 100 }, () => k.mm.kmalloc(64, GFP_KERNEL)!);
    const spans = bufs.map((b) => [b.phys, b.phys + 64] as const).sort((a, b) => a[0] - b[0]);
    for (let n = 1; n < spans.length; n++) expect(spans[n]![0]).toBeGreaterThanOrEqual(spans[n - 1]![1]);
    expect(new Set(bufs.map((b) => b.page)).size, "100 objects of 64 bytes fit in two 4 KiB slabs").toBe(2);
    for (const b of bufs) k.mm.kfree(b);
  });
});

describe("slab pages and /proc/meminfo", () => {
  // SLUB calculate_order() on one CPU: min_objects = 4 * (fls(1) + 1) = 8, slub_max_order 3.
  const orders: [number, number, number][] = [
    // size, pages per slab, objects per slab
    [8, 1, 512], [64, 1, 64], [96, 1, 42], [512, 1, 8], [1024, 2, 8], [2048, 4, 8], [4096, 8, 8], [8192, 8, 4],
  ];
  for (const [size, pages, objects] of orders) {
    it(`kmalloc(${size}) takes a ${pages}-page slab of ${objects} objects; Slab and MemFree move by ${pages * 4} kB and back`, async () => {
      const k = await boot({ memory: "64M" });
      const before = meminfo(k);
      const b = k.mm.kmalloc(size, GFP_KERNEL)!;
      expect(b.cache!.objects).toBe(objects);
      expect(1 << b.cache!.order).toBe(pages);
      const during = meminfo(k);
      expect(during.get("Slab")).toBe(before.get("Slab")! + pages * 4);
      expect(during.get("SUnreclaim")).toBe(before.get("SUnreclaim")! + pages * 4);
      expect(during.get("SReclaimable")).toBe(before.get("SReclaimable"));
      expect(during.get("MemFree")).toBe(before.get("MemFree")! - pages * 4);

      // The rest of the slab's objects cost nothing more; one more object takes a second slab.
      const more = Array.from({ length: objects - 1 }, () => k.mm.kmalloc(size, GFP_KERNEL)!);
      expect(meminfo(k).get("Slab")).toBe(during.get("Slab"));
      const extra = k.mm.kmalloc(size, GFP_KERNEL)!;
      expect(extra.page).not.toBe(b.page);
      expect(meminfo(k).get("Slab")).toBe(before.get("Slab")! + 2 * pages * 4);

      for (const x of [b, ...more, extra]) k.mm.kfree(x);
      const after = meminfo(k);
      expect(after.get("Slab"), "empty slabs go back to the page allocator").toBe(before.get("Slab"));
      expect(after.get("MemFree")).toBe(before.get("MemFree"));
      expect(pageFlags(k, b.page) & (1 << PG_slab), "PG_slab is cleared on the way back").toBe(0);
    });
  }

  it("a slab stays while any object in it is live", async () => {
    const k = await boot({ memory: "64M" });
    const before = meminfo(k);
    const a = k.mm.kmalloc(128, GFP_KERNEL)!;
    const b = k.mm.kmalloc(128, GFP_KERNEL)!;
    expect(b.page).toBe(a.page);
    k.mm.kfree(a);
    expect(meminfo(k).get("Slab")).toBe(before.get("Slab")! + 4);
    k.mm.kfree(b);
    expect(meminfo(k).get("Slab")).toBe(before.get("Slab"));
    expect(meminfo(k).get("MemFree")).toBe(before.get("MemFree"));
  });
});

describe("kzalloc and stale contents", () => {
  it("kzalloc() returns zeroed memory even where a freed object left data", async () => {
    const k = await boot({ memory: "64M" });
    const keep = k.mm.kmalloc(200, GFP_KERNEL)!; // keeps the kmalloc-256 slab alive
    const a = k.mm.kmalloc(200, GFP_KERNEL)!;
    k.mm.physmem.write(a.phys, new Uint8Array(200).fill(0xa5));
    k.mm.kfree(a);
    const z = k.mm.kzalloc(200, GFP_KERNEL)!;
    expect(z.phys, "SLUB hands the last freed object out first").toBe(a.phys);
    expect(k.mm.physmem.read(z.phys, 200)).toEqual(new Uint8Array(200));
    k.mm.kfree(z);
    k.mm.kfree(keep);
  });

  it("kmalloc() without __GFP_ZERO leaves the old bytes past the free pointer", async () => {
    const k = await boot({ memory: "64M" });
    const keep = k.mm.kmalloc(64, GFP_KERNEL)!;
    const a = k.mm.kmalloc(64, GFP_KERNEL)!;
    k.mm.physmem.write(a.phys, new Uint8Array(64).fill(0x5a));
    k.mm.kfree(a);
    const b = k.mm.kmalloc(64, GFP_KERNEL)!;
    expect(b.phys).toBe(a.phys);
    // SLUB keeps its freelist pointer in the first word of a free object; the rest survives.
    expect(k.mm.physmem.read(b.phys + 8, 56)).toEqual(new Uint8Array(56).fill(0x5a));
    k.mm.kfree(b);
    k.mm.kfree(keep);
  });

  it("kzalloc() of a large object zeroes all of it", async () => {
    const k = await boot({ memory: "64M" });
    const a = k.mm.kmalloc(20000, GFP_KERNEL)!;
    k.mm.physmem.write(a.phys, new Uint8Array(20000).fill(0x11));
    k.mm.kfree(a);
    const z = k.mm.kzalloc(20000, GFP_KERNEL)!;
    expect(z.page).toBe(a.page);
    expect(k.mm.physmem.read(z.phys, 20000)).toEqual(new Uint8Array(20000));
    k.mm.kfree(z);
  });
});

describe("kmalloc_large: more than 8 KiB", () => {
  it("takes whole pages of get_order(size) straight from the page allocator", async () => {
    const k = await boot({ memory: "64M" });
    const cases: [number, number][] = [[8193, 2], [12288, 2], [16384, 2], [16385, 3], [65536, 4], [1 << 22, 10]];
    for (const [size, order] of cases) {
      const before = meminfo(k);
      const b = k.mm.kmalloc(size, GFP_KERNEL)!;
      expect(b, `kmalloc(${size})`).not.toBeNull();
      expect(b.cache).toBeNull();
      expect(b.order).toBe(order);
      expect(b.offset).toBe(0);
      expect(b.page % (1 << order)).toBe(0);
      expect(k.mm.page_ref_count(b.page)).toBe(1);
      expect(pageFlags(k, b.page) & (1 << PG_slab), "not a slab page").toBe(0);
      const during = meminfo(k);
      expect(during.get("MemFree")).toBe(before.get("MemFree")! - (4 << order));
      expect(during.get("Slab"), "not counted as slab").toBe(before.get("Slab"));
      k.mm.kfree(b);
      expect(meminfo(k).get("MemFree")).toBe(before.get("MemFree"));
    }
  });

  it("returns NULL when the page allocator has no block left, with the page allocator's warning", async () => {
    const k = await boot({ memory: "64M" });
    const got: KBuf[] = [];
    const seq = k.log.nextSeq;
    for (;;) {
      const b = k.mm.kmalloc(4 << 20, GFP_KERNEL);
      if (!b) break;
      got.push(b);
    }
    expect(got.length).toBeGreaterThan(0);
    expect(messages(k, seq)[0]).toBe("swapper/0: page allocation failure: order:10, mode:0x6000c0(GFP_KERNEL), nodemask=(null)");
    for (const b of got) k.mm.kfree(b);
  });
});

describe("kfree() of an object that is not allocated", () => {
  it("a double free reports SLUB's Object already free, taints B and does not crash", async () => {
    const k = await boot({ memory: "64M" });
    const keep = k.mm.kmalloc(64, GFP_KERNEL)!;
    const a = k.mm.kmalloc(64, GFP_KERNEL)!;
    k.mm.kfree(a);
    const before = meminfo(k);
    const seq = k.log.nextSeq;
    expect(() => k.mm.kfree(a)).not.toThrow();
    const lines = levelled(k, seq);
    expect(lines.slice(0, 3)).toEqual([
      "<3>" + "=".repeat(77),
      "<3>BUG kmalloc-64 (Not tainted): Object already free",
      "<3>" + "-".repeat(77),
    ]);
    expect(lines.some((l) => l.startsWith("<3>INFO: Slab 0x"))).toBe(true);
    expect(lines).toContain("<4>Disabling lock debugging due to kernel taint");
    expect(k.tainted()).toBe(tainted("B"));
    expect(meminfo(k), "nothing was freed twice").toEqual(before);

    // A second report shows the taint it already has.
    const seq2 = k.log.nextSeq;
    k.mm.kfree(a);
    expect(messages(k, seq2)[1]).toBe(`BUG kmalloc-64 (${tainted("B")}): Object already free`);

    // The allocator carries on: the slot is handed out once, not twice.
    const b = k.mm.kmalloc(64, GFP_KERNEL)!;
    const c = k.mm.kmalloc(64, GFP_KERNEL)!;
    expect(b.phys).not.toBe(c.phys);
    for (const x of [b, c, keep]) k.mm.kfree(x);
    expect(k.checkInvariants()).toEqual([]);
  });

  it("an object pointer nobody allocated is also Object already free (it is on the freelist)", async () => {
    const k = await boot({ memory: "64M" });
    const keep = k.mm.kmalloc(32, GFP_KERNEL)!;
    const forged = new KBuf(32, keep.cache, keep.page, keep.offset + 32 * 5, 0, "forger");
    const seq = k.log.nextSeq;
    expect(() => k.mm.kfree(forged)).not.toThrow();
    expect(messages(k, seq)[1]).toBe("BUG kmalloc-32 (Not tainted): Object already free");
    expect(k.taint.test(TAINT_BAD_PAGE)).toBe(true);
    // The real object is still live and frees cleanly.
    const seq2 = k.log.nextSeq;
    k.mm.kfree(keep);
    expect(messages(k, seq2)).toEqual([]);
  });

  // slab_bug() ends its dashes with "\n\n" (an empty line), print_page_info() prints
  // "INFO: Slab 0x%p objects=%u used=%u fp=0x%p flags=0x%04lx", and free_debug_processing()
  // ends with slab_fix(s, "Object at 0x%p not freed").
  it("the rest of SLUB's double-free report", async () => {
    const k = await boot({ memory: "64M" });
    const keep = k.mm.kmalloc(64, GFP_KERNEL)!;
    const a = k.mm.kmalloc(64, GFP_KERNEL)!;
    k.mm.kfree(a);
    const seq = k.log.nextSeq;
    k.mm.kfree(a);
    const lines = messages(k, seq);
    k.mm.kfree(keep);
    expect(lines[3]).toBe("");
    // slab_bug() taints B (lockdep now unreliable) before the trailer is printed.
    expect(lines[4]).toBe("Disabling lock debugging due to kernel taint");
    expect(lines[5]).toMatch(/^INFO: Slab 0x0{8}[0-9a-f]{8} objects=64 used=1 fp=0x[0-9a-f]{16} flags=0x[0-9a-f]{4,}$/);
    expect(lines[6]).toMatch(/^INFO: Object 0x0{8}[0-9a-f]{8} @offset=\d+ fp=0x[0-9a-f]{16}$/);
    expect(lines[7]).toBe("");
    expect(lines).toContainEqual(expect.stringMatching(/^FIX kmalloc-64: Object at 0x[0-9a-f]+ not freed$/));
  });
});

// ---- failslab ------------------------------------------------------------------------------

/** Arm failslab through debugfs the way Documentation/fault-injection describes. */
function arm(k: Kernel, o: { probability?: string; times?: string; interval?: string; space?: string; verbose?: string; wait?: string }): void {
  if (o.wait !== undefined) k.write(`${FS}/ignore-gfp-wait`, o.wait);
  if (o.verbose !== undefined) k.write(`${FS}/verbose`, o.verbose);
  if (o.interval !== undefined) k.write(`${FS}/interval`, o.interval);
  if (o.space !== undefined) k.write(`${FS}/space`, o.space);
  if (o.times !== undefined) k.write(`${FS}/times`, o.times);
  if (o.probability !== undefined) k.write(`${FS}/probability`, o.probability);
}

describe("failslab through /sys/kernel/debug/failslab", () => {
  it("starts as FAULT_ATTR_INITIALIZER left it: off, interval 1, times 1, verbose 2, ignore-gfp-wait Y", async () => {
    const k = await boot({ memory: "64M" });
    expect(k.read(`${FS}/probability`)).toBe("0\n");
    expect(k.read(`${FS}/interval`)).toBe("1\n");
    expect(k.read(`${FS}/times`)).toBe("1\n");
    expect(k.read(`${FS}/space`)).toBe("0\n");
    expect(k.read(`${FS}/verbose`)).toBe("2\n");
    expect(k.read(`${FS}/ignore-gfp-wait`)).toBe("Y\n");
    const b = k.mm.kmalloc(64, __GFP_HIGH);
    expect(b, "probability 0 fails nothing").not.toBeNull();
    k.mm.kfree(b);
  });

  for (const version of ["4.20", "5.0"] as KernelVersion[]) {
    it(`${version}: fails one kmalloc with fail_dump()'s exact lines, times printed before the decrement`, async () => {
      const k = await boot({ version, memory: "64M" });
      arm(k, { wait: "N", verbose: "1", times: "1", probability: "100" });
      const seq = k.log.nextSeq;
      expect(k.mm.kmalloc(64, GFP_KERNEL)).toBeNull();
      expect(levelled(k, seq)).toEqual([
        "<5>FAULT_INJECTION: forcing a failure.",
        "<5>name failslab, interval 1, probability 100, space 0, times 1",
      ]);
      expect(k.read(`${FS}/times`)).toBe("0\n");
      const seq2 = k.log.nextSeq;
      const b = k.mm.kmalloc(64, GFP_KERNEL);
      expect(b, "times ran out: the next allocation succeeds").not.toBeNull();
      expect(messages(k, seq2)).toEqual([]);
      expect(k.tainted(), "fault injection does not taint").toBe("Not tainted");
      k.mm.kfree(b);
    });
  }

  it("verbose 2 adds dump_stack(); verbose 0 fails silently", async () => {
    const k = await boot({ memory: "64M" });
    arm(k, { wait: "N", verbose: "2", times: "2", probability: "100" });
    const seq = k.log.nextSeq;
    expect(k.sched.runAs("insmod", () => k.mm.kmalloc(100, GFP_KERNEL))).toBeNull();
    const lines = messages(k, seq);
    expect(lines[0]).toBe("FAULT_INJECTION: forcing a failure.");
    expect(lines[1]).toBe("name failslab, interval 1, probability 100, space 0, times 2");
    expect(lines[2]).toMatch(/^CPU: 0 PID: \d+ Comm: insmod Not tainted /);
    k.write(`${FS}/verbose`, "0");
    const seq2 = k.log.nextSeq;
    expect(k.mm.kmalloc(100, GFP_KERNEL)).toBeNull();
    expect(messages(k, seq2)).toEqual([]);
    expect(k.read(`${FS}/times`)).toBe("0\n");
  });

  it("times -1 never runs out, and says so", async () => {
    const k = await boot({ memory: "64M" });
    arm(k, { wait: "N", verbose: "1", times: "-1", probability: "100" });
    const seq = k.log.nextSeq;
    for (let n = 0; n < 5; n++) expect(k.mm.kmalloc(8, GFP_KERNEL)).toBeNull();
    expect(messages(k, seq).filter((l) => l.startsWith("name failslab"))).toEqual(
      Array(5).fill("name failslab, interval 1, probability 100, space 0, times -1"),
    );
    expect(k.read(`${FS}/times`)).toBe("-1\n");
  });

  for (const version of ["4.20", "5.0"] as KernelVersion[]) {
    it(`${version}: with ignore-gfp-wait Y only allocations with no __GFP_RECLAIM bit are failed`, async () => {
      const k = await boot({ version, memory: "64M" });
      arm(k, { verbose: "0", times: "-1", probability: "100" });
      expect(k.read(`${FS}/ignore-gfp-wait`)).toBe("Y\n");
      const ok = [GFP_KERNEL, GFP_ATOMIC, GFP_NOWAIT, __GFP_HIGH | __GFP_NOFAIL].map((gfp) => k.mm.kmalloc(64, gfp));
      expect(ok.every((b) => b !== null), "GFP_KERNEL, GFP_ATOMIC (kswapd reclaim), GFP_NOWAIT, __GFP_NOFAIL").toBe(true);
      expect(k.mm.kmalloc(64, GFP_ATOMIC & ~__GFP_KSWAPD_RECLAIM), "no reclaim bit at all").toBeNull();
      expect(k.mm.kmalloc(64, __GFP_HIGH)).toBeNull();
      k.write(`${FS}/ignore-gfp-wait`, "N");
      expect(k.read(`${FS}/ignore-gfp-wait`)).toBe("N\n");
      expect(k.mm.kmalloc(64, GFP_KERNEL), "now GFP_KERNEL fails too").toBeNull();
      const nofail = k.mm.kmalloc(64, GFP_KERNEL | __GFP_NOFAIL);
      expect(nofail, "__GFP_NOFAIL never").not.toBeNull();
      for (const b of [...ok, nofail]) k.mm.kfree(b);
    });
  }

  it("space is consumed in object_size units of the cache", async () => {
    const k = await boot({ memory: "64M" });
    arm(k, { wait: "N", verbose: "1", space: "100", times: "1", probability: "100" });
    const a = k.mm.kmalloc(40, GFP_KERNEL); // kmalloc-64: 64 bytes of space
    expect(a).not.toBeNull();
    expect(k.read(`${FS}/space`)).toBe("36\n");
    const seq = k.log.nextSeq;
    expect(k.mm.kmalloc(40, GFP_KERNEL), "36 is not more than 64: fail").toBeNull();
    expect(messages(k, seq)[1]).toBe("name failslab, interval 1, probability 100, space 36, times 1");
    k.mm.kfree(a);
  });

  it("interval N fails every N-th allocation that gets that far", async () => {
    const k = await boot({ memory: "64M" });
    arm(k, { wait: "N", verbose: "0", interval: "3", times: "-1", probability: "100" });
    const got = Array.from({ length: 9 }, () => k.mm.kmalloc(16, GFP_KERNEL));
    expect(got.map((b) => b === null)).toEqual([false, false, true, false, false, true, false, false, true]);
    for (const b of got) k.mm.kfree(b);
  });

  it("kmalloc_large and kmalloc(0) are not slab allocations and are never failed", async () => {
    const k = await boot({ memory: "64M" });
    arm(k, { wait: "N", verbose: "1", times: "-1", probability: "100" });
    const seq = k.log.nextSeq;
    const big = k.mm.kmalloc(KMALLOC_MAX_CACHE_SIZE + 1, GFP_KERNEL);
    expect(big).not.toBeNull();
    expect(k.mm.kmalloc(0, GFP_KERNEL)).toBe(ZERO_SIZE_PTR);
    expect(messages(k, seq)).toEqual([]);
    expect(k.mm.kmalloc(KMALLOC_MAX_CACHE_SIZE, GFP_KERNEL), "the 8k cache is").toBeNull();
    k.mm.kfree(big);
  });

  it("ignore-gfp-wait takes kstrtobool() values and rejects anything else with EINVAL", async () => {
    const k = await boot({ memory: "64M" });
    for (const [v, shown] of [["N", "N"], ["1", "Y"], ["n\n", "N"], ["Y\n", "Y"], ["0", "N"], ["y", "Y"]] as const) {
      k.write(`${FS}/ignore-gfp-wait`, v);
      expect(k.read(`${FS}/ignore-gfp-wait`), JSON.stringify(v)).toBe(`${shown}\n`);
    }
    for (const bad of ["maybe", "x", "", "2", "-1"]) {
      let err: unknown;
      try {
        k.write(`${FS}/ignore-gfp-wait`, bad);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(bad)).toBeInstanceOf(KernelError);
      expect((err as KernelError).errno).toBe(EINVAL);
      expect(k.read(`${FS}/ignore-gfp-wait`), "unchanged").toBe("Y\n");
    }
  });

  // 4.20/5.0 kstrtobool() looks at the first character only (y/Y/1, n/N/0, "on"/"off"), so
  // "yes", "no", "on" and "off" are accepted.
  it("ignore-gfp-wait accepts yes/no/on/off like kstrtobool()", async () => {
    const k = await boot({ memory: "64M" });
    for (const [v, shown] of [["no", "N"], ["yes", "Y"], ["off", "N"], ["on", "Y"]] as const) {
      k.write(`${FS}/ignore-gfp-wait`, v);
      expect(k.read(`${FS}/ignore-gfp-wait`)).toBe(`${shown}\n`);
    }
  });

  // 4.20/5.0 fs/libfs.c simple_attr_write(): "val = simple_strtoll(attr->set_buf, NULL, 0);"
  // with no error check (kstrtoull and -EINVAL came in 5.10), and debugfs_create_ul() has no
  // range: junk reads as 0, "0x10" as 16, 150 is kept.
  it("the numeric failslab files take whatever simple_strtoll() makes of the input", async () => {
    const k = await boot({ memory: "64M" });
    k.write(`${FS}/probability`, "100");
    k.write(`${FS}/probability`, "junk");
    expect(k.read(`${FS}/probability`)).toBe("0\n");
    k.write(`${FS}/interval`, "0x10");
    expect(k.read(`${FS}/interval`)).toBe("16\n");
    k.write(`${FS}/probability`, "150");
    expect(k.read(`${FS}/probability`)).toBe("150\n");
  });

  it("a write to a file that does not exist fails with ENOENT and changes nothing", async () => {
    const k = await boot({ memory: "64M" });
    expect(() => k.write(`${FS}/probabilty`, "100")).toThrow(/No such file or directory/);
    expect(k.read(`${FS}/probability`)).toBe("0\n");
  });
});
