// The iomem tree of a booted kernel: the boot layout /proc/iomem shows (e820 + kernel image +
// ROM, spec R1.5), the kernel's own WARN and printk for misuse, devm_request_mem_region tied to
// driver binding, and region_intersects over the real layout. Every kernel comes from boot(),
// which checks invariants and that /proc/iomem is back to its boot state when the test ends.

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import {
  IORES_DESC_NONE, IORES_DESC_PERSISTENT_MEMORY, IORES_DESC_PERSISTENT_MEMORY_LEGACY, IORESOURCE_BUSY, IORESOURCE_MEM,
  IORESOURCE_SYSRAM, IORESOURCE_SYSTEM_RAM, REGION_DISJOINT, REGION_INTERSECTS, REGION_MIXED, Resource,
} from "../../core/mm/resource.ts";
import { TAINT_WARN } from "../../core/taint.ts";
import { bindDevice } from "../helpers/devices.ts";
import { boot } from "../helpers/kernel.ts";

const EBUSY = -16;
const G = 2 ** 30;
const M = 2 ** 20;

/** The resource named `name` whose range starts at `start`, anywhere in the tree. */
function find(k: Kernel, name: string, start: number): Resource {
  for (const [r] of k.mm.iomem.walk()) if (r.name === name && r.start === start) return r;
  throw new Error(`no ${name} at ${start.toString(16)}`);
}

const LOW_1G =
  "00000000-00000fff : Reserved\n" +
  "00001000-0009fbff : System RAM\n" +
  "0009fc00-0009ffff : Reserved\n" +
  "000f0000-000fffff : Reserved\n" +
  "  000f0000-000fffff : System ROM\n" +
  "00100000-3ffdffff : System RAM\n" +
  "  01000000-01a031d0 : Kernel code\n" +
  "  01a031d1-0226c77f : Kernel data\n" +
  "  024f5000-027fffff : Kernel bss\n" +
  "3ffe0000-3fffffff : Reserved\n" +
  "feffc000-feffffff : Reserved\n" +
  "fffc0000-ffffffff : Reserved\n";

describe("boot layout", () => {
  it("a 1G kernel: e820 RAM and reserved ranges, the ROM under Reserved, the kernel image under System RAM", async () => {
    const k = await boot({ memory: "1G" });
    expect(k.read("/proc/iomem")).toBe(LOW_1G);
  });

  it("e820 flags: RAM is busy System RAM, reserved ranges below 1M are busy, the ones above are not", async () => {
    const k = await boot({ memory: "1G" });
    const sysramBusy = (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY) >>> 0;
    for (const start of [0x1000, 0x100000]) {
      const ram = find(k, "System RAM", start);
      expect(ram.flags).toBe(sysramBusy);
      expect(ram.flags).toBe(0x81000200);
      expect(ram.desc).toBe(IORES_DESC_NONE);
      expect(ram.parent).toBe(k.mm.iomem.root);
    }
    for (const start of [0x0, 0x9fc00, 0xf0000]) expect(find(k, "Reserved", start).flags).toBe(0x80000200);
    for (const start of [0x3ffe0000, 0xfeffc000, 0xfffc0000]) expect(find(k, "Reserved", start).flags).toBe(IORESOURCE_MEM);
    const ram = find(k, "System RAM", 0x100000);
    for (const [name, start] of [["Kernel code", 0x1000000], ["Kernel data", 0x1a031d1], ["Kernel bss", 0x24f5000]] as const) {
      const r = find(k, name, start);
      expect(r.parent).toBe(ram);
      expect(r.flags).toBe(sysramBusy);
    }
    const rom = find(k, "System ROM", 0xf0000);
    expect(rom.parent).toBe(find(k, "Reserved", 0xf0000));
    expect((rom.flags & IORESOURCE_BUSY) >>> 0).toBe(IORESOURCE_BUSY);
    expect(rom.flags & IORESOURCE_MEM).toBe(IORESOURCE_MEM);
    expect(k.mm.iomem.root.name).toBe("PCI mem");
    expect(k.mm.iomem.root.end).toBe(2 ** 46 - 1);
  });

  it("pmem: 'Persistent Memory' desc 4 and legacy 'Persistent Memory (legacy)' desc 5, IORESOURCE_MEM, not busy", async () => {
    const k = await boot({ memory: "1G", pmem: [{ size: "1G" }, { size: "256M", legacy: true }] });
    expect(k.read("/proc/iomem")).toBe(LOW_1G + "100000000-13fffffff : Persistent Memory\n140000000-14fffffff : Persistent Memory (legacy)\n");
    const pmem = find(k, "Persistent Memory", 0x100000000);
    expect(pmem.flags).toBe(IORESOURCE_MEM);
    expect(pmem.desc).toBe(IORES_DESC_PERSISTENT_MEMORY);
    expect(pmem.parent).toBe(k.mm.iomem.root);
    const legacy = find(k, "Persistent Memory (legacy)", 0x140000000);
    expect(legacy.flags).toBe(IORESOURCE_MEM);
    expect(legacy.desc).toBe(IORES_DESC_PERSISTENT_MEMORY_LEGACY);
  });

  it("because pmem is not busy, a driver can request sub-ranges of it, which inherit its desc", async () => {
    const k = await boot({ memory: "1G", pmem: [{ size: "1G" }, { size: "256M", legacy: true }] });
    const iomem = k.mm.iomem;
    const ns = iomem.request_mem_region(0x100000000, 512 * M, "namespace0.0");
    const ns1 = iomem.request_mem_region(0x140000000, 256 * M, "namespace1.0");
    expect(ns).not.toBeNull();
    expect(ns!.parent).toBe(find(k, "Persistent Memory", 0x100000000));
    expect(ns!.flags).toBe(0x80000200);
    expect(ns!.desc).toBe(IORES_DESC_PERSISTENT_MEMORY);
    expect(ns1!.desc).toBe(IORES_DESC_PERSISTENT_MEMORY_LEGACY);
    expect(k.read("/proc/iomem")).toBe(
      LOW_1G +
        "100000000-13fffffff : Persistent Memory\n" +
        "  100000000-11fffffff : namespace0.0\n" +
        "140000000-14fffffff : Persistent Memory (legacy)\n" +
        "  140000000-14fffffff : namespace1.0\n",
    );
    // The namespace is busy: a second claim fails.
    expect(iomem.request_mem_region(0x100000000, 4096, "again")).toBeNull();
    iomem.release_mem_region(0x100000000, 512 * M);
    iomem.release_mem_region(0x140000000, 256 * M);
    expect(k.read("/proc/iomem")).not.toContain("namespace");
  });

  it("memory above 3G is split around the PCI hole, the rest at 0x100000000", async () => {
    const k = await boot({ memory: "5G" });
    const iomem = k.read("/proc/iomem");
    expect(iomem).toBe(LOW_1G.replace("00100000-3ffdffff", "00100000-bffdffff").replace("3ffe0000-3fffffff", "bffe0000-bfffffff") + "100000000-17fffffff : System RAM\n");
    expect(find(k, "System RAM", 0x100000000).flags).toBe(0x81000200);
  });

  it("exactly 3G stays below the hole, with nothing at 0x100000000", async () => {
    const k = await boot({ memory: "3G" });
    const iomem = k.read("/proc/iomem");
    expect(iomem).toContain("00100000-bffdffff : System RAM\n");
    expect(iomem).toContain("bffe0000-bfffffff : Reserved\n");
    expect(iomem).not.toContain("100000000-");
  });

  it("pmem after high RAM starts at the next 1G boundary, right after the RAM", async () => {
    const k = await boot({ memory: "5G", pmem: [{ size: "1G" }] });
    expect(k.read("/proc/iomem")).toContain("100000000-17fffffff : System RAM\n180000000-1bfffffff : Persistent Memory\n");
  });
});

describe("kernel messages", () => {
  it("inserting the same resource twice: WARN in __insert_resource, taint W, -EBUSY", async () => {
    const k = await boot({ memory: "1G" });
    const iomem = k.mm.iomem;
    const r = Resource.mem(0x200000000, 0x1000, "twice");
    expect(iomem.insert_resource(iomem.root, r)).toBe(0);
    expect(k.tainted()).toBe("Not tainted");
    const since = k.log.nextSeq;
    expect(iomem.insert_resource(iomem.root, r)).toBe(EBUSY);
    const out = k.dmesg({ since });
    // WARN_ON(): no "cut here" on x86 4.19-5.1.
    expect(out).not.toContain("------------[ cut here ]------------");
    expect(out).toMatch(/WARNING: CPU: 0 PID: \d+ at kernel\/resource\.c __insert_resource/);
    expect(k.taint.test(TAINT_WARN)).toBe(true);
    expect(k.tainted()).toMatch(/^Tainted: .*W/);
    expect(k.read("/proc/iomem").match(/twice/g)).toHaveLength(1);
    expect(iomem.remove_resource(r)).toBe(0);
  });

  it("releasing a region nobody holds: 'Trying to free nonexistent resource' at KERN_WARNING", async () => {
    const k = await boot({ memory: "1G" });
    const since = k.log.nextSeq;
    k.mm.iomem.release_mem_region(0x100000000, 0x1000);
    expect(k.log.messages(since)).toEqual(["Trying to free nonexistent resource <0000000100000000-0000000100000fff>"]);
    const raw = k.dmesg({ raw: true, since }).split("\n").filter(Boolean);
    expect(raw).toHaveLength(1);
    expect(raw[0]).toMatch(/^<4>\[\s*\d+\.\d{6}\] Trying to free nonexistent resource <0000000100000000-0000000100000fff>$/);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("a request inside busy System RAM fails; __request_region with System RAM as parent gets IORESOURCE_SYSRAM", async () => {
    const k = await boot({ memory: "1G" });
    const iomem = k.mm.iomem;
    expect(iomem.request_mem_region(0x10000000, 0x1000, "in RAM")).toBeNull();
    const ram = find(k, "System RAM", 0x100000);
    const r = iomem.__request_region(ram, 0x10000000, 0x1000, "crash kernel");
    expect(r!.parent).toBe(ram);
    expect(r!.flags).toBe((IORESOURCE_MEM | IORESOURCE_SYSRAM | IORESOURCE_BUSY) >>> 0);
    expect(k.read("/proc/iomem")).toContain("  024f5000-027fffff : Kernel bss\n  10000000-10000fff : crash kernel\n3ffe0000");
    iomem.__release_region(ram, 0x10000000, 0x1000);
    expect(k.read("/proc/iomem")).toBe(LOW_1G);
  });
});

describe("devm_request_mem_region", () => {
  const PMEM = { memory: "1G", pmem: [{ size: "1G" }] };
  const LINE = "  100000000-107ffffff : pmem0\n";

  it("holds the region while the driver is bound and releases it on unbind", async () => {
    const k = await boot(PMEM);
    let res: Resource | null = null;
    const { dev } = bindDevice(k, "pmem0", (d) => {
      res = k.base.devm_request_mem_region(d, 0x100000000, 128 * M, "pmem0");
      return res ? 0 : EBUSY;
    });
    expect(dev.driver).not.toBeNull();
    expect(res!.parent).toBe(find(k, "Persistent Memory", 0x100000000));
    expect(res!.desc).toBe(IORES_DESC_PERSISTENT_MEMORY);
    expect(dev.devres).toHaveLength(1);
    expect(k.read("/proc/iomem")).toContain("100000000-13fffffff : Persistent Memory\n" + LINE);
    // Held: nobody else gets it.
    expect(k.mm.iomem.request_mem_region(0x100000000, 4096, "intruder")).toBeNull();
    k.base.device_release_driver(dev);
    expect(dev.driver).toBeNull();
    expect(dev.devres).toHaveLength(0);
    expect(k.read("/proc/iomem")).not.toContain("pmem0");
    expect(res!.parent).toBeNull();
    // Free again.
    const again = k.mm.iomem.request_mem_region(0x100000000, 128 * M, "again");
    expect(again).not.toBeNull();
    k.mm.iomem.release_mem_region(0x100000000, 128 * M);
  });

  it("releases the region when the device is unregistered", async () => {
    const k = await boot(PMEM);
    const { dev } = bindDevice(k, "pmem0", (d) => (k.base.devm_request_mem_region(d, 0x100000000, 128 * M, "pmem0") ? 0 : EBUSY));
    expect(k.read("/proc/iomem")).toContain(LINE);
    k.base.device_unregister(dev);
    expect(k.read("/proc/iomem")).not.toContain("pmem0");
    expect(dev.devres).toHaveLength(0);
  });

  it("returns null on a conflict and leaves no devres (nor its allocation) behind", async () => {
    const k = await boot(PMEM);
    const first = bindDevice(k, "pmem0", (d) => (k.base.devm_request_mem_region(d, 0x100000000, 128 * M, "pmem0") ? 0 : EBUSY));
    const slabBefore = k.mm.slab.live.size;
    let got: Resource | null | undefined;
    let held = -1;
    const { dev } = bindDevice(k, "pmem1", (d) => {
      got = k.base.devm_request_mem_region(d, 0x104000000, 128 * M, "pmem1"); // overlaps pmem0
      held = d.devres.length;
      const ram = k.base.devm_request_mem_region(d, 0x200000, 4096, "in RAM"); // busy System RAM
      expect(ram).toBeNull();
      held += d.devres.length;
      return 0; // bind anyway, so a leftover devres would stay visible
    });
    expect(got).toBeNull();
    expect(held).toBe(0);
    expect(dev.driver).not.toBeNull();
    expect(dev.devres).toHaveLength(0);
    expect(k.mm.slab.live.size - slabBefore).toBe(0);
    expect(k.read("/proc/iomem")).not.toContain("pmem1");
    expect(k.read("/proc/iomem")).not.toContain("in RAM");
    expect(first.dev.devres).toHaveLength(1);
  });

  it("a probe that fails after the request gets its region released by devres", async () => {
    const k = await boot(PMEM);
    const before = k.read("/proc/iomem");
    const { dev } = bindDevice(k, "pmem0", (d) => {
      expect(k.base.devm_request_mem_region(d, 0x100000000, 128 * M, "pmem0")).not.toBeNull();
      return -12; // -ENOMEM later in probe
    });
    expect(dev.driver).toBeNull();
    expect(k.read("/proc/iomem")).toBe(before);
    expect(k.log.messages()).toContain("pmem0: probe of pmem0 failed with error -12");
  });

  it("devm_release_mem_region gives the region back early and drops the devres", async () => {
    const k = await boot(PMEM);
    const { dev } = bindDevice(k, "pmem0", (d) => (k.base.devm_request_mem_region(d, 0x100000000, 128 * M, "pmem0") ? 0 : EBUSY));
    k.base.devm_release_mem_region(dev, 0x100000000, 128 * M);
    expect(dev.devres).toHaveLength(0);
    expect(k.read("/proc/iomem")).not.toContain("pmem0");
    const since = k.log.nextSeq;
    k.base.device_release_driver(dev); // nothing left to release: no "nonexistent resource" warning
    expect(k.log.messages(since)).toEqual([]);
  });
});

describe("region_intersects on the boot layout", () => {
  it("high RAM followed by nothing: RAM + hole is INTERSECTS", async () => {
    const k = await boot({ memory: "5G" });
    expect(k.mm.iomem.region_intersects(0x170000000, 512 * M, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(REGION_INTERSECTS);
    expect(k.mm.iomem.region_intersects(0x180000000, 512 * M, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(REGION_DISJOINT);
  });

  it("RAM, RAM + pmem, RAM + hole, pmem only, nested resources", async () => {
    const k = await boot({ memory: "5G", pmem: [{ size: "1G" }] });
    const iomem = k.mm.iomem;
    const RAM = IORESOURCE_SYSTEM_RAM;
    const NONE = IORES_DESC_NONE;
    const PM = IORES_DESC_PERSISTENT_MEMORY;
    // 100000000-17fffffff System RAM, 180000000-1bfffffff Persistent Memory, then nothing.
    expect(iomem.region_intersects(0x100000000, G, RAM, NONE)).toBe(REGION_INTERSECTS);
    expect(iomem.region_intersects(0x170000000, 512 * M, RAM, NONE)).toBe(REGION_MIXED);
    expect(iomem.region_intersects(0x170000000, 512 * M, 0, NONE)).toBe(REGION_INTERSECTS);
    expect(iomem.region_intersects(0x180000000, G, RAM, NONE)).toBe(REGION_DISJOINT);
    expect(iomem.region_intersects(0x180000000, G, IORESOURCE_MEM, PM)).toBe(REGION_INTERSECTS);
    expect(iomem.region_intersects(0x180000000, G, IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY_LEGACY)).toBe(REGION_DISJOINT);
    expect(iomem.region_intersects(0x1b0000000, 512 * M, IORESOURCE_MEM, PM)).toBe(REGION_INTERSECTS); // pmem + hole
    expect(iomem.region_intersects(0x1c0000000, G, 0, NONE)).toBe(REGION_DISJOINT);
    // RAM at 0x100000 runs to 0xbffdffff; "Reserved" (not RAM) follows: MIXED. Into the PCI hole only: INTERSECTS.
    expect(iomem.region_intersects(0xbff00000, 0x100000, RAM, NONE)).toBe(REGION_MIXED);
    expect(iomem.region_intersects(0xfe000000, 0x1000000, RAM, NONE)).toBe(REGION_DISJOINT);
    // The kernel image is nested in System RAM: only the top-level RAM is seen.
    expect(iomem.region_intersects(0x1000000, 0x1000, (RAM | IORESOURCE_BUSY) >>> 0, NONE)).toBe(REGION_INTERSECTS);
    // A busy namespace nested in pmem is invisible: pmem itself is not busy.
    const ns = iomem.request_mem_region(0x180000000, 128 * M, "namespace0.0")!;
    expect(ns.parent!.name).toBe("Persistent Memory");
    expect(iomem.region_intersects(0x180000000, 128 * M, (IORESOURCE_MEM | IORESOURCE_BUSY) >>> 0, NONE)).toBe(REGION_DISJOINT);
    iomem.release_mem_region(0x180000000, 128 * M);
  });
});

describe("devm_release_mem_region()", () => {
  it("releases the region first and WARNs when the device had no devres for it", async () => {
    const k = await boot();
    let dev!: Parameters<Parameters<typeof bindDevice>[2]>[0];
    bindDevice(k, "plain", (d) => {
      dev = d;
      return 0;
    });
    // Taken without devm: the kernel still frees it, then WARN_ON(devres_destroy(...)).
    expect(k.mm.iomem.request_mem_region(0x100000000, 0x1000, "plain")).not.toBeNull();
    k.base.devm_release_mem_region(dev, 0x100000000, 0x1000);
    expect(k.read("/proc/iomem")).not.toContain(": plain");
    expect(k.log.messages()).toContain("WARNING: CPU: 0 PID: 1 at kernel/resource.c __devm_release_region");
  });
});
