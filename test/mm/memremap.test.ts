// devm_memremap_pages() and its teardown in 4.20 and 5.0 (spec mm-hmm R1.8, R2.3-R2.9, R7.2,
// R7.4, R7.6), get_dev_pagemap()/put_dev_pagemap(), and ZONE_DEVICE struct page state.

import { describe, expect, it } from "vitest";
import { EEXIST, EINVAL, ENOMEM, ENXIO } from "../../core/errno.ts";
import { HungTaskError } from "../../core/kernel/sched.ts";
import { KernelOops } from "../../core/kernel/bug.ts";
import type { Kernel } from "../../core/kernel.ts";
import { PAGES_PER_SECTION, PHYS_PFN, ZONE_DEVICE } from "../../core/mm/memmap.ts";
import {
  MEMORY_DEVICE_FS_DAX, MEMORY_DEVICE_PCI_P2PDMA, MEMORY_DEVICE_PRIVATE,
} from "../../core/mm/memremap.ts";
import { PG_reserved } from "../../core/mm/page-flags.ts";
import { __va } from "../../core/mm/physmem.ts";
import type { KernelVersion } from "../../core/version.ts";
import { bindDevice } from "../helpers/devices.ts";
import { boot } from "../helpers/kernel.ts";
import { pageFlags } from "../helpers/mm.ts";
import { ownPgmap, type OwnerOptions, type PgmapOwner } from "../helpers/pgmap-owner.ts";

const G = 2 ** 30;
const M = 2 ** 20;
const PMEM = 4 * G; // where the first pmem region of a 1G machine lands
const SECTION = 128 * M;

/** The 5.0 owner sets pgmap->kill; the 4.20 owner kills in an action registered after. */
function contract(version: KernelVersion): Partial<OwnerOptions> {
  return version === "5.0" ? { setKill: true } : { killAfter: true };
}

async function bootPmem(version: KernelVersion, extra: Parameters<typeof boot>[0] = {}, opts?: Parameters<typeof boot>[1]) {
  return boot({ version, memory: "1G", pmem: [{ size: "1G" }], ...extra }, opts);
}

/** Bind a device "name" whose probe maps `o` and fails the probe if that failed. */
function probeWith(k: Kernel, name: string, o: OwnerOptions): { owner: PgmapOwner; dev: ReturnType<typeof bindDevice>["dev"] } {
  let owner!: PgmapOwner;
  const { dev } = bindDevice(k, name, (d) => {
    owner = ownPgmap(k, d, o);
    return owner.addr < 0 ? owner.addr : 0;
  });
  return { owner, dev };
}

describe.each(["4.20", "5.0"] as const)("devm_memremap_pages on %s", (version) => {
  it("maps a pmem range: linear address, one pgmap ref per page, pages at refcount 1 in ZONE_DEVICE", async () => {
    const k = await bootPmem(version);
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 256 * M, ...contract(version) });
    expect(owner.addr).toBe(__va(PMEM));
    expect(dev.driver).not.toBeNull();
    const first = PHYS_PFN(PMEM);
    const npages = (256 * M) / 4096;
    expect(owner.ref!.count).toBe(1 + npages);
    for (const pfn of [first, first + 1, first + npages - 1]) {
      expect(k.mm.page_ref_count(pfn)).toBe(1);
      expect(k.mm.page_zonenum(pfn)).toBe(ZONE_DEVICE);
      expect(k.mm.page_pgmap(pfn)).toBe(owner.pgmap);
      expect(pageFlags(k, pfn) & (1 << PG_reserved)).not.toBe(0);
    }
    expect(owner.pgmap.dev).toBe(dev);
    expect(k.log.messages()).toContain(`pmem0 initialised, ${npages} pages in 0ms`);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("initialises the whole section-aligned span but takes refs only for the resource's pages", async () => {
    const k = await bootPmem(version);
    const start = PMEM + 16 * M;
    const { owner } = probeWith(k, "pmem0", { start, size: 32 * M, ...contract(version) });
    const span = SECTION / 4096;
    expect(k.log.messages()).toContain(`pmem0 initialised, ${span} pages in 0ms`);
    expect(owner.ref!.count).toBe(1 + (32 * M) / 4096);
    // A page of the span outside the resource is initialised with the pgmap too (memmap_init_zone_device).
    expect(k.mm.page_pgmap(PHYS_PFN(PMEM))).toBe(owner.pgmap);
    expect(k.mm.page_ref_count(PHYS_PFN(PMEM))).toBe(1);
  });

  it("tears down on unbind: every page ref returned, the ref released once, the sections gone", async () => {
    const k = await bootPmem(version);
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 256 * M, ...contract(version) });
    k.base.device_release_driver(dev);
    expect(owner.events.filter((e) => e === "release")).toHaveLength(1);
    expect(owner.ref!.count).toBe(0);
    expect(owner.ref!.exited).toBe(true);
    expect(k.mm.memmap.pfn_valid(PHYS_PFN(PMEM))).toBe(false);
    expect(k.mm.memremap.registered()).toEqual([]);
    expect(k.mm.memremap.get_dev_pagemap(PHYS_PFN(PMEM), null)).toBeNull();
    expect(k.tainted()).toBe("Not tainted");
  });

  it("takes a live reference in get_dev_pagemap and honours the cached pgmap", async () => {
    const k = await bootPmem(version);
    const { owner } = probeWith(k, "pmem0", { start: PMEM, size: 256 * M, ...contract(version) });
    const mr = k.mm.memremap;
    const before = owner.ref!.count;
    const pfn = PHYS_PFN(PMEM) + 10;
    const pg = mr.get_dev_pagemap(pfn, null);
    expect(pg).toBe(owner.pgmap);
    expect(owner.ref!.count).toBe(before + 1);
    // Cached and covering: returned as is, no new reference.
    expect(mr.get_dev_pagemap(pfn + 1, pg)).toBe(pg);
    expect(owner.ref!.count).toBe(before + 1);
    // Cached but not covering: the cached reference is dropped first.
    expect(mr.get_dev_pagemap(PHYS_PFN(PMEM + 512 * M), pg)).toBeNull();
    expect(owner.ref!.count).toBe(before);
    // Outside every pgmap.
    expect(mr.get_dev_pagemap(PHYS_PFN(0x100000), null)).toBeNull();
    mr.put_dev_pagemap(null);
    expect(owner.ref!.count).toBe(before);
  });

  it("refuses a second mapping in the same section with dev_WARN and -ENOMEM, without killing the caller's ref", async () => {
    const k = await bootPmem(version);
    probeWith(k, "pmem0", { start: PMEM, size: 64 * M, ...contract(version) });
    const { owner: second, dev } = probeWith(k, "pmem1", { start: PMEM + 64 * M, size: 64 * M, setKill: true });
    expect(second.addr).toBe(-ENOMEM);
    expect(dev.driver).toBeNull();
    const msgs = k.log.messages();
    // dev_WARN prints dev_driver_string(): the driver is already bound while probe runs.
    expect(msgs).toContain("pmem1 pmem1: Conflicting mapping in same section");
    expect(msgs).toContain("pmem1: probe of pmem1 failed with error -12");
    // Both versions return before any kill on this path (5.3 routed it to the kill label).
    expect(second.events).not.toContain("kill");
    expect(k.tainted()).toBe("Tainted: G        W        ");
  });

  it("maps MEMORY_DEVICE_PCI_P2PDMA pages without page_free: put_page is not devmap-managed", async () => {
    const k = await bootPmem(version);
    const { owner } = probeWith(k, "p2p0", { start: PMEM, size: 128 * M, type: MEMORY_DEVICE_PCI_P2PDMA, managed: true, ...contract(version) });
    const pfn = PHYS_PFN(PMEM) + 3;
    k.mm.get_page(pfn);
    k.mm.put_page(pfn);
    expect(owner.events.filter((e) => e.startsWith("page_free"))).toEqual([]);
  });
});

describe("System RAM (spec R1.8)", () => {
  const inRam = { start: 256 * M, size: 16 * M };

  it("4.20 silently returns the linear map for a range inside System RAM, with no struct pages and even without a ref", async () => {
    const k = await bootPmem("4.20");
    const { owner } = probeWith(k, "ramdev", { ...inRam, noRef: true });
    expect(owner.addr).toBe(__va(inRam.start));
    expect(k.mm.memremap.registered()).toEqual([]);
    expect(k.mm.page_zonenum(PHYS_PFN(inRam.start))).not.toBe(ZONE_DEVICE);
    expect(k.log.messages().some((m) => m.includes("attempted on"))).toBe(false);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("5.0 refuses the same range with WARN_ONCE \"attempted on ram region\" and -ENXIO, and kills the ref", async () => {
    const k = await bootPmem("5.0");
    const { owner } = probeWith(k, "ramdev", { ...inRam, setKill: true });
    expect(owner.addr).toBe(-ENXIO);
    expect(owner.events).toContain("kill");
    const msgs = k.log.messages();
    expect(msgs).toContain("devm_memremap_pages attempted on ram region [mem 0x10000000-0x10ffffff flags 0x80000200]");
    expect(msgs).toContain("WARNING: CPU: 0 PID: 1 at kernel/memremap.c devm_memremap_pages");
    // really_probe() keeps quiet about -ENXIO (pr_debug).
    expect(msgs.some((m) => m.includes("probe of ramdev failed"))).toBe(false);
  });

  it("5.0 checks for pgmap->kill before anything else", async () => {
    const k = await bootPmem("5.0");
    const { owner } = probeWith(k, "nokill", { ...inRam });
    expect(owner.addr).toBe(-EINVAL);
    expect(k.log.messages().some((m) => m.includes("attempted on"))).toBe(false);
    const { owner: noRef } = probeWith(k, "noref", { start: PMEM, size: 128 * M, noRef: true, setKill: true });
    expect(noRef.addr).toBe(-EINVAL);
  });

  it("4.20 returns -EINVAL for a missing ref only once the range is not RAM", async () => {
    const k = await bootPmem("4.20");
    expect(probeWith(k, "noref", { start: PMEM, size: 128 * M, noRef: true }).owner.addr).toBe(-EINVAL);
  });

  // memory=1000M puts the end of RAM (and SeaBIOS's reserved tail) in section 7; pmem placed
  // right after it shares that section: the section-aligned check sees RAM plus other = MIXED.
  const mixedCfg = { memory: "1000M", pmem: [{ size: "24M", start: 0x3e800000 }] };

  for (const version of ["4.20", "5.0"] as const) {
    it(`${version} refuses pmem sharing a section with System RAM as a mixed region, warning once (R7.6)`, async () => {
      const k = await boot({ version, ...mixedCfg });
      const o = { start: 0x3e800000, size: 24 * M, ...contract(version) };
      const { owner } = probeWith(k, "pmem0", o);
      expect(owner.addr).toBe(-ENXIO);
      const warn = "devm_memremap_pages attempted on mixed region [mem 0x3e800000-0x3fffffff flags 0x80000200]";
      expect(k.log.messages()).toContain(warn);
      expect(owner.events.includes("kill")).toBe(version === "5.0");
      // WARN_ONCE: the second attempt fails the same way but prints nothing new.
      const seq = k.log.nextSeq;
      const { owner: again } = probeWith(k, "pmem1", o);
      expect(again.addr).toBe(-ENXIO);
      expect(k.log.messages(seq).some((m) => m.includes("attempted on"))).toBe(false);
    });
  }
});

describe("release order (spec R2.7, R2.8)", () => {
  it("4.20: the owner kills the ref before the core releases, and waits after", async () => {
    const k = await bootPmem("4.20");
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, killAfter: true });
    k.base.device_release_driver(dev);
    expect(owner.events).toEqual(["kill", "release", "cleanup"]);
  });

  it("4.20: an owner that did not kill first gets \"page mapping is still live!\"", async () => {
    const k = await bootPmem("4.20");
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M });
    k.base.device_release_driver(dev);
    expect(k.log.messages()).toContain("pmem0 pmem0: devm_memremap_pages_release: page mapping is still live!");
    expect(owner.events).toEqual(["cleanup", "release"]);
    expect(k.tainted()).toBe("Tainted: G        W        ");
  });

  it("5.0: the core calls pgmap->kill first, so the same owner needs no kill action and gets no warning", async () => {
    const k = await bootPmem("5.0");
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, setKill: true });
    k.base.device_release_driver(dev);
    expect(owner.events).toEqual(["kill", "release", "cleanup"]);
    expect(k.log.messages().some((m) => m.includes("still live"))).toBe(false);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("5.0 keeps the final page put race (R7.3): a put that lands after the unplug faults on the freed memmap", async () => {
    const k = await bootPmem("5.0", {}, { expectInvariantFailures: true, expectLeaks: true });
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, setKill: true, managed: true });
    const pfn = PHYS_PFN(PMEM) + 7;
    k.mm.get_page(pfn);
    // The user (say, a DMA in flight) drops its page during the grace period the release waits
    // for in pgmap_array_delete(), i.e. after arch_remove_memory() freed the struct pages.
    k.sched.call_rcu(() => k.mm.put_page(pfn));
    expect(() => k.base.device_release_driver(dev)).toThrow(KernelOops);
    // The release loop took the page back to 1 and handed it to its owner first.
    expect(owner.events).toEqual(["kill", `page_free:${pfn.toString(16)}:owner-data`]);
    const vmemmap = (0xffffea0000000000n + BigInt(pfn) * 64n).toString(16);
    expect(k.log.messages()).toContain(`BUG: unable to handle kernel paging request at ${vmemmap}`);
    expect(k.tainted()).toBe("Tainted: G      D          ");
  });

  it("a page nobody ever puts keeps the owner waiting forever: the hung task is reported", async () => {
    const k = await bootPmem("5.0", {}, { expectInvariantFailures: true, expectLeaks: true });
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, setKill: true });
    k.mm.get_page(PHYS_PFN(PMEM));
    expect(() => k.sched.runAs("ndctl", () => k.base.device_release_driver(dev))).toThrow(HungTaskError);
    expect(owner.events).toEqual(["kill", "cleanup"]);
    expect(owner.ref!.count).toBe(1);
    expect(k.log.messages().some((m) => /^INFO: task ndctl:\d+ blocked for more than 120 seconds\.$/.test(m))).toBe(true);
  });
});

describe("MEMORY_DEVICE_PRIVATE (patch 4/7)", () => {
  for (const [version, mapped] of [["4.20", true], ["5.0", false]] as const) {
    it(`${version} ${mapped ? "creates" : "does not create"} a linear mapping for device-private memory`, async () => {
      const k = await bootPmem(version);
      const before = k.mm.directMapSizes();
      probeWith(k, "priv0", { start: PMEM, size: 256 * M, type: MEMORY_DEVICE_PRIVATE, ...contract(version) });
      expect(k.mm.linearMapped(PHYS_PFN(PMEM))).toBe(mapped);
      const after = k.mm.directMapSizes();
      const grew = after.k4 + after.m2 + after.g1 - (before.k4 + before.m2 + before.g1);
      expect(grew).toBe(mapped ? 256 * 1024 : 0);
      expect(k.mm.is_device_private_page(PHYS_PFN(PMEM))).toBe(true);
    });
  }
});

describe("failures after the RAM check (patch 3/7)", () => {
  for (const [version, killed] of [["4.20", false], ["5.0", true]] as const) {
    it(`${version}: a failed xa_store_range returns -ENOMEM and ${killed ? "kills" : "does not kill"} the ref`, async () => {
      const k = await bootPmem(version);
      const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, failNthAlloc: 1, ...contract(version) });
      expect(owner.addr).toBe(-ENOMEM);
      expect(dev.driver).toBeNull();
      expect(owner.events.includes("kill")).toBe(killed);
      expect(k.mm.memmap.pfn_valid(PHYS_PFN(PMEM))).toBe(false);
      expect(k.mm.memremap.registered()).toEqual([]);
    });
  }

  it("4.20: when devm_add_action fails the mapping can never be torn down, and the range cannot be mapped again (R7.4)", async () => {
    const k = await bootPmem("4.20", {}, { expectLeaks: true, expectInvariantFailures: true });
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, failNthAlloc: 2, killAfter: true });
    expect(owner.addr).toBe(__va(PMEM));
    // Nothing will ever drop the pages' references: the owner's teardown waits forever.
    expect(() => k.base.device_release_driver(dev)).toThrow(HungTaskError);
    expect(owner.events).toEqual(["kill", "cleanup"]);
    // No release ran: the sections and the pgmap_array entries stay.
    expect(k.mm.memmap.pfn_valid(PHYS_PFN(PMEM))).toBe(true);
    expect(k.mm.memremap.registered()).toContain(owner.pgmap);
    const { owner: again } = probeWith(k, "pmem1", { start: PMEM, size: 128 * M, killAfter: true });
    expect(again.addr).toBe(-EEXIST);
    await k.shutdown();
    expect(k.leaks()).toContain("memremap: 1 pgmaps still registered");
  });

  it("5.0: when the release cannot be registered it runs at once and the call fails cleanly", async () => {
    const k = await bootPmem("5.0");
    const { owner } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, failNthAlloc: 2, setKill: true });
    expect(owner.addr).toBe(-ENOMEM);
    expect(owner.events).toEqual(["kill", "release", "cleanup"]);
    expect(k.mm.memmap.pfn_valid(PHYS_PFN(PMEM))).toBe(false);
    const { owner: again } = probeWith(k, "pmem1", { start: PMEM, size: 128 * M, setKill: true });
    expect(again.addr).toBe(__va(PMEM));
  });
});

describe("ZONE_DEVICE page references (spec §3)", () => {
  it("without devmap_managed_key put_page never calls page_free; the last put drops the pgmap ref", async () => {
    const k = await bootPmem("5.0");
    const { owner } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, setKill: true });
    const pfn = PHYS_PFN(PMEM);
    const refs = owner.ref!.count;
    k.mm.get_page(pfn);
    expect(k.mm.page_ref_count(pfn)).toBe(2);
    k.mm.put_page(pfn);
    expect(k.mm.page_ref_count(pfn)).toBe(1);
    expect(owner.events).toEqual([]);
    expect(owner.ref!.count).toBe(refs);
  });

  for (const type of [MEMORY_DEVICE_FS_DAX, MEMORY_DEVICE_PRIVATE] as const) {
    it(`with devmap_managed_key a type ${type} page going back to 1 calls page_free(page, pgmap->data) and leaves ->mapping to it`, async () => {
      const k = await bootPmem("5.0");
      const { owner } = probeWith(k, "dev0", { start: PMEM, size: 128 * M, type, setKill: true, managed: true });
      expect(k.mm.memremap.devmap_managed_key).toBe(true);
      const pfn = PHYS_PFN(PMEM) + 5;
      k.mm.get_page(pfn);
      k.mm.get_page(pfn);
      const sec = k.mm.memmap.section(pfn);
      sec.mapping[pfn - sec.startPfn] = { anon: true };
      k.mm.put_page(pfn);
      expect(owner.events).toEqual([]);
      k.mm.put_page(pfn);
      expect(owner.events).toEqual([`page_free:${pfn.toString(16)}:owner-data`]);
      // 4.19+ (2fa147bdbf67): the core no longer clears ->mapping; HMM's page_free does.
      expect(sec.mapping[pfn - sec.startPfn]).toEqual({ anon: true });
      expect(k.mm.page_ref_count(pfn)).toBe(1);
    });
  }

  it("get_page does not touch the pgmap reference (R3.2)", async () => {
    const k = await bootPmem("4.20");
    const { owner } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, killAfter: true });
    const refs = owner.ref!.count;
    k.mm.get_page(PHYS_PFN(PMEM));
    expect(owner.ref!.count).toBe(refs);
    k.mm.put_page(PHYS_PFN(PMEM));
  });

  it("the invariant checker notices a pgmap ref dropped by someone who never took it", async () => {
    const k = await bootPmem("5.0");
    const { owner } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, setKill: true });
    expect(k.checkInvariants()).toEqual([]);
    k.mm.memremap.put_dev_pagemap(owner.pgmap);
    k.mm.memremap.put_dev_pagemap(owner.pgmap);
    const problems = k.checkInvariants();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^pgmap pmem0 100000000-107ffffff: percpu_ref count 32767 is below the 32769 references/);
    owner.ref!.get_many(2);
  });

  it("over-putting the pgmap ref ends as R7.2 did: the atomic switch warns and the owner hangs", async () => {
    const k = await bootPmem("5.0", {}, { expectInvariantFailures: true, expectLeaks: true });
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 128 * M, setKill: true });
    k.mm.memremap.put_dev_pagemap(owner.pgmap);
    k.mm.memremap.put_dev_pagemap(owner.pgmap);
    expect(() => k.sched.runAs("ndctl", () => k.base.device_release_driver(dev))).toThrow(/blocked forever/);
    const msgs = k.log.messages();
    expect(msgs).toContain("percpu ref (owner_ref_release) <= 0 (-1) after switching to atomic");
    expect(msgs.some((m) => /^INFO: task ndctl:\d+ blocked for more than 120 seconds\.$/.test(m))).toBe(true);
    expect(owner.events).not.toContain("release");
  });
});

describe("a 1 TiB range costs nothing until touched (principle 8)", () => {
  it("maps, touches one page, and unmaps a terabyte", async () => {
    const k = await boot({ version: "5.0", memory: "1G", pmem: [{ size: "1T" }] });
    const sections = k.mm.memmap.materializedSections;
    const t0 = k.clock.now();
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 1024 * G, setKill: true });
    const npages = (1024 * G) / 4096;
    expect(owner.addr).toBe(__va(PMEM));
    expect(owner.ref!.count).toBe(1 + npages);
    expect(k.mm.memmap.materializedSections).toBe(sections);
    expect(k.clock.now() - t0).toBe(npages * 40);
    const last = PHYS_PFN(PMEM) + npages - 1;
    expect(k.mm.memmap.pfn_valid(last)).toBe(true);
    k.mm.get_page(last);
    expect(k.mm.memmap.materializedSections).toBe(sections + 1);
    k.mm.put_page(last);
    k.base.device_release_driver(dev);
    expect(owner.ref!.count).toBe(0);
    expect(k.mm.memmap.materializedSections).toBe(sections);
    expect(PAGES_PER_SECTION).toBe(32768);
  });
});

describe("vmem_altmap: the memmap lives in the device memory", () => {
  const base = PHYS_PFN(PMEM);
  // 256 MiB = two sections; each section's memmap is a 2 MiB block = 512 pages of the altmap.
  const altmap = { base_pfn: base, reserve: 2, free: 1024 };

  it("skips the reserve and the memmap pages: uninitialised, then reserved without a pgmap, then device pages", async () => {
    const k = await bootPmem("5.0");
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 256 * M, setKill: true, altmap: { ...altmap } });
    expect(owner.addr).toBe(__va(PMEM));
    const first = base + 2 + 1024;
    expect(owner.ref!.count).toBe(1 + (65536 - 1026));
    expect(k.log.messages()).toContain(`pmem0 initialised, ${65536 - 1026} pages in 0ms`);
    expect(owner.pgmap.altmap.alloc).toBe(1024);
    const seq = k.log.nextSeq;
    k.mm.dump_page(base, null);
    expect(k.log.messages(seq)[0]).toBe(`page:${(0xffffea0000000000n + BigInt(base) * 64n).toString(16)} is uninitialized and poisoned`);
    expect(k.mm.page_zonenum(base + 2)).toBe(ZONE_DEVICE);
    expect(k.mm.page_pgmap(base + 2)).toBeNull();
    expect(k.mm.page_ref_count(base + 2)).toBe(1);
    expect(k.mm.page_pgmap(first)).toBe(owner.pgmap);
    k.base.device_release_driver(dev);
    expect(owner.pgmap.altmap.alloc).toBe(0);
    expect(k.log.messages().some((m) => m.includes("failed to free all reserved pages"))).toBe(false);
  });

  it("warns once at teardown when altmap pages were not given back", async () => {
    const k = await bootPmem("4.20");
    const { owner, dev } = probeWith(k, "pmem0", { start: PMEM, size: 256 * M, killAfter: true, altmap: { ...altmap } });
    owner.pgmap.altmap.alloc += 3; // a driver taking altmap pages and never returning them
    k.base.device_release_driver(dev);
    expect(k.log.messages()).toContain("pmem0 pmem0: devm_memremap_pages_release: failed to free all reserved pages");
  });

  it("fails with -ENOMEM when the altmap cannot hold the memmap, leaving the sections it did add (no unwind before 5.3)", async () => {
    const k = await bootPmem("5.0", {}, { expectInvariantFailures: true, expectLeaks: true });
    const { owner } = probeWith(k, "pmem0", { start: PMEM, size: 256 * M, setKill: true, altmap: { ...altmap, free: 1023 } });
    expect(owner.addr).toBe(-ENOMEM);
    expect(owner.events).toContain("kill");
    expect(k.mm.memmap.pfn_valid(base)).toBe(true);
    expect(k.mm.memmap.pfn_valid(base + PAGES_PER_SECTION)).toBe(false);
    expect(k.checkInvariants()).toEqual(["memmap: sections 100000-108000 (pmem0 (MEMORY_DEVICE_FS_DAX)) belong to no pgmap"]);
    const { owner: again } = probeWith(k, "pmem1", { start: PMEM, size: 256 * M, setKill: true });
    expect(again.addr).toBe(-EEXIST);
  });
});
