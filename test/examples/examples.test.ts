// The drivers in examples/, built from their files and loaded the way a driver author would
// test them (kemu/testing: boot, buildFor, insmodDriver, messages). Each boot checks the
// invariants and leaks when its test ends.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ENOENT, EBUSY, KernelError } from "../../core/errno.ts";
import { get_modinfo } from "../../core/module/ko.ts";
import { PHYS_PFN, ZONE_DEVICE } from "../../core/mm/memmap.ts";
import type { KernelVersion } from "../../core/version.ts";
import { boot, build, BuildError, buildFor, insmodDriver, messages, type Kernel } from "../../sdk/testing/index.ts";
import { buildSource } from "../helpers/build.ts";
import { lsmodLine, rejection, rmmodError } from "../helpers/kernel.ts";

const example = (path: string) => fileURLToPath(new URL(`../../examples/${path}`, import.meta.url));
const GPUMEM = example("gpumem/gpumem.ts");
const PMEM_GPL = example("pmem-gpl/pmem-gpl.ts");
const MEMSHIM = example("gpl-shim/memshim.ts");
const CLOSED = example("gpl-shim/closed.ts");

const NOT_TAINTED = "Not tainted";
const TAINT_O = "Tainted: G           O     ";
const TAINT_PO = "Tainted: P           O     ";

const OOT = (m: string) => `${m}: loading out-of-tree module taints kernel.`;
const PROPRIETARY = (m: string) => `${m}: module license 'Proprietary' taints kernel.`;
const LOCKDEP = "Disabling lock debugging due to kernel taint";
const LSMOD_HEADER = "Module                  Size  Used by";

/** What an action made the kernel print. */
async function printed(k: Kernel, action: () => unknown): Promise<string[]> {
  const seq = k.log.nextSeq;
  await action();
  return messages(k, seq);
}

describe("examples/gpumem: a proprietary driver using devm_memremap_pages and hmm_devmem_add", () => {
  const SYMBOLS = ["printk", "devm_memremap_pages", "hmm_device_new", "hmm_device_put", "hmm_devmem_add", "hmm_devmem_remove"];

  it("needs devm_memremap_pages (kept by its export gpumem_map_bar) and hmm_devmem_add; modpost lets 4.19 and 4.20 through", async () => {
    for (const kernel of ["4.19", "4.20"] as const) {
      const r = await build({ entry: GPUMEM, kernel });
      expect(r.symbols).toEqual(SYMBOLS);
      expect(r.warnings).toEqual([]);
      expect(get_modinfo(r.image.modinfo, "license")).toBe("Proprietary");
      expect(get_modinfo(r.image.modinfo, "name")).toBe("gpumem");
    }
  });

  for (const version of ["4.19", "4.20"] as const) {
    it(`${version}: loads, taints P and O, gives its VRAM struct pages; hmm_devmem_remove() gives them back at rmmod`, async () => {
      const k = await boot({ version });
      expect(k.tainted()).toBe(NOT_TAINTED);
      const loaded = await printed(k, () => insmodDriver(k, GPUMEM));
      expect(loaded).toEqual([
        OOT("gpumem"),
        PROPRIETARY("gpumem"),
        LOCKDEP,
        // memmap_init_zone_device() and its pr_info came with 4.20.
        ...(version === "4.20" ? ["hmm_device0 initialised, 65536 pages in 0ms"] : []),
        "gpumem: 65536 pages of device memory at pfn 0x3ffff0000",
      ]);
      expect(k.tainted()).toBe(TAINT_PO);
      expect(k.read("/proc/modules")).toMatch(/^gpumem \d+ 0 - Live 0x[0-9a-f]{16} \(PO\)\n$/);
      expect(k.lsmod()).toBe(`${LSMOD_HEADER}\n${lsmodLine(k, "gpumem", 0)}\n`);
      expect(k.read("/proc/iomem")).toContain("\n3ffff0000000-3fffffffffff : hmm_device0\n");
      expect(k.mm.page_zonenum(0x3ffff0000)).toBe(ZONE_DEVICE);

      // hmm_devmem_remove() first, then the device: a clean unload on these versions.
      expect(await printed(k, () => k.rmmod("gpumem"))).toEqual([]);
      expect(k.read("/proc/modules")).toBe("");
      expect(k.read("/proc/iomem")).not.toContain("hmm_device0");
      // Taints stay for the life of the kernel.
      expect(k.tainted()).toBe(TAINT_PO);
    });
  }

  it("5.0: modpost refuses the build at the first GPL-only symbol; nothing reaches the kernel", async () => {
    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    const err = await rejection(insmodDriver(k, GPUMEM));
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).errors).toEqual(["FATAL: modpost: GPL-incompatible module gpumem.ko uses GPL-only symbol 'devm_memremap_pages'"]);
    expect(messages(k, seq)).toEqual([]);
    expect(k.read("/proc/modules")).toBe("");
    expect(k.tainted()).toBe(NOT_TAINTED);
  });

  it("5.0, built anyway (licenseGate: loader, KBUILD_MODPOST_WARN): insmod fails with -ENOENT, each refused symbol named; the taints stay", async () => {
    const k = await boot({ version: "5.0" });
    const anyway = { licenseGate: "loader", modpostWarn: true } as const;
    const r = await buildFor(k, GPUMEM, anyway);
    // modpost's verdicts are kept, as warnings.
    expect(r.warnings).toEqual([
      "FATAL: modpost: GPL-incompatible module gpumem.ko uses GPL-only symbol 'devm_memremap_pages'",
      'WARNING: "hmm_devmem_remove" [gpumem.ko] undefined!',
    ]);
    expect(r.symbols).toEqual(SYMBOLS);

    const seq = k.log.nextSeq;
    const err = await rejection(insmodDriver(k, GPUMEM, { build: anyway }));
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).errno).toBe(ENOENT);
    expect((err as KernelError).message).toBe("insmod: ERROR: could not insert module gpumem.ko: Unknown symbol in module");
    // check_modinfo() taints before simplify_symbols() looks the symbols up.
    expect(messages(k, seq)).toEqual([
      OOT("gpumem"),
      PROPRIETARY("gpumem"),
      LOCKDEP,
      "gpumem: Unknown symbol devm_memremap_pages (err -2)",
      "gpumem: Unknown symbol hmm_devmem_add (err -2)",
      "gpumem: Unknown symbol hmm_devmem_remove (err -2)",
    ]);
    expect(k.tainted()).toBe(TAINT_PO);
    expect(k.read("/proc/modules")).toBe("");
    expect(k.read("/proc/iomem")).not.toContain("hmm_device");
  });
});

describe("examples/pmem-gpl: a GPL driver doing devm_memremap_pages the pmem way", () => {
  const PMEM = 0x100000000; // where the example's 1G machine has its Persistent Memory
  const LINE = "pmem_gpl pmem_gpl: 65536 pages of persistent memory at [mem 0x100000000-0x10fffffff], pfn 0x100000";

  for (const version of ["4.19", "4.20", "5.0"] as const satisfies readonly KernelVersion[]) {
    it(`${version}: maps 256 MiB of pmem with struct pages and tears it down cleanly at rmmod`, async () => {
      const k = await boot({ version, memory: "1G", pmem: [{ size: "1G" }] });
      const loaded = await printed(k, () => insmodDriver(k, PMEM_GPL));
      expect(loaded).toEqual([
        OOT("pmem_gpl"),
        ...(version === "4.19" ? [] : ["pmem_gpl initialised, 65536 pages in 0ms"]),
        LINE,
        "pmem_gpl: loaded",
      ]);
      expect(k.tainted()).toBe(TAINT_O);
      expect(k.read("/proc/modules")).toMatch(/^pmem_gpl \d+ 0 - Live 0x[0-9a-f]{16} \(O\)\n$/);
      expect(k.read("/proc/iomem")).toContain("\n100000000-13fffffff : Persistent Memory\n  100000000-10fffffff : pmem_gpl\n");
      // One pgmap, holding the driver's percpu_ref; its pages are ZONE_DEVICE.
      const maps = k.mm.memremap.registered();
      expect(maps.map((p) => [p.res.start, p.res.end, p.dev?.name])).toEqual([[PMEM, PMEM + 0x10000000 - 1, "pmem_gpl"]]);
      expect(maps[0]!.ref!.count).toBe(1 + 65536);
      for (const pfn of [PHYS_PFN(PMEM), PHYS_PFN(PMEM) + 65535]) expect(k.mm.page_zonenum(pfn)).toBe(ZONE_DEVICE);
      expect(k.checkInvariants()).toEqual([]);

      // Nothing but the driver's own line: no "page mapping is still live!" (4.19/4.20, the ref
      // was killed before the release), no WARN about a missing kill (5.0), no hung wait.
      const ref = maps[0]!.ref!;
      expect(await printed(k, () => k.rmmod("pmem_gpl"))).toEqual(["pmem_gpl: unloaded"]);
      expect(ref.count).toBe(0);
      expect(ref.exited).toBe(true);
      expect(k.mm.memremap.registered()).toEqual([]);
      expect(k.mm.memmap.pfn_valid(PHYS_PFN(PMEM))).toBe(false);
      expect(k.read("/proc/iomem")).not.toContain("pmem_gpl");
      expect(k.read("/proc/modules")).toBe("");
      expect(k.tainted()).toBe(TAINT_O);
    });
  }

  it("without persistent memory the probe fails with -ENXIO, which really_probe() does not report; the module stays and unloads", async () => {
    const k = await boot({ version: "5.0", memory: "1G" });
    expect(await printed(k, () => insmodDriver(k, PMEM_GPL))).toEqual([
      OOT("pmem_gpl"),
      // -ENODEV and -ENXIO "reject the match" (pr_debug); any other error would add
      // "pmem_gpl: probe of pmem_gpl failed with error N".
      "pmem_gpl pmem_gpl: no persistent memory at 0x100000000",
      "pmem_gpl: loaded",
    ]);
    expect(k.mm.memremap.registered()).toEqual([]);
    expect(k.read("/proc/iomem")).not.toContain("pmem_gpl");
    expect(await printed(k, () => k.rmmod("pmem_gpl"))).toEqual(["pmem_gpl: unloaded"]);
  });

  it("it has to be GPL: as a proprietary module even 4.20's modpost stops it (devm_add_action, percpu_ref_init are GPL-only)", async () => {
    const source = readFileSync(PMEM_GPL, "utf8").replace('MODULE_LICENSE("GPL v2")', 'MODULE_LICENSE("Proprietary")');
    expect(source).toContain('MODULE_LICENSE("Proprietary")');
    const err = await rejection(buildSource("pmem_gpl", source, { kernel: "4.20" }));
    expect((err as BuildError).errors).toEqual(["FATAL: modpost: GPL-incompatible module pmem_gpl.ko uses GPL-only symbol 'devm_add_action'"]);
    const gpl = await build({ entry: PMEM_GPL, kernel: "4.20" });
    expect(gpl.symbols).toContain("percpu_ref_init");
    expect(gpl.symbols).toContain("devm_memremap_pages");
  });
});

describe("examples/gpl-shim: a proprietary module using GPL-only memory through a GPL module's EXPORT_SYMBOL", () => {
  const LINE = "closed: 32768 pages of device memory at pfn 0x3ffff8000, through memshim";

  it("modpost: memshim exports with EXPORT_SYMBOL; closed needs only those and depends on memshim", async () => {
    const shim = await build({ entry: MEMSHIM, kernel: "5.0" });
    expect(shim.symbols).toEqual(["printk", "hmm_device_new", "hmm_device_put", "hmm_devmem_add"]);
    expect(shim.symvers).toBe("0x00000000\tmemshim_vram_add\tmemshim\tEXPORT_SYMBOL\n0x00000000\tmemshim_vram_remove\tmemshim\tEXPORT_SYMBOL\n");
    const closed = await build({ entry: CLOSED, kernel: "5.0", symvers: [shim.symvers] });
    expect(closed.symbols).toEqual(["printk", "memshim_vram_add", "memshim_vram_remove"]);
    expect(closed.warnings).toEqual([]);
    expect(get_modinfo(closed.image.modinfo, "depends")).toBe("memshim");
    expect(get_modinfo(closed.image.modinfo, "license")).toBe("Proprietary");
    // Without memshim's Module.symvers, modpost knows neither symbol.
    const err = await rejection(build({ entry: CLOSED, kernel: "5.0" }));
    expect((err as BuildError).errors).toEqual(['ERROR: "memshim_vram_add" [closed.ko] undefined!', 'ERROR: "memshim_vram_remove" [closed.ko] undefined!']);
  });

  it("5.0: closed loads after memshim, taints P, shows in lsmod as memshim's user; rmmod order is enforced", async () => {
    const k = await boot({ version: "5.0" });
    const shim = await buildFor(k, MEMSHIM);

    expect(await printed(k, () => insmodDriver(k, MEMSHIM))).toEqual([OOT("memshim"), "memshim: ready"]);
    expect(k.tainted()).toBe(TAINT_O);
    expect(await printed(k, () => insmodDriver(k, CLOSED, { build: { symvers: [shim.symvers] } }))).toEqual([
      PROPRIETARY("closed"),
      LOCKDEP,
      "hmm_device0 initialised, 32768 pages in 0ms",
      LINE,
    ]);
    expect(k.tainted()).toBe(TAINT_PO);
    expect(k.read("/proc/modules")).toMatch(/^closed \d+ 0 - Live 0x[0-9a-f]{16} \(PO\)\nmemshim \d+ 1 closed, Live 0x[0-9a-f]{16} \(O\)\n$/);
    expect(k.lsmod()).toBe(`${LSMOD_HEADER}\n${lsmodLine(k, "closed", 0)}\n${lsmodLine(k, "memshim", 1, "closed")}\n`);
    // The device memory is memshim's (it made the hmm_device), made for closed.
    expect(k.read("/proc/iomem")).toContain("\n3ffff8000000-3fffffffffff : hmm_device0\n");

    const busy = rmmodError(k, "memshim")!;
    expect(busy.errno).toBe(EBUSY);
    expect(busy.message).toBe("rmmod: ERROR: Module memshim is in use by: closed");
    expect(k.read("/proc/modules")).toMatch(/^closed .*\nmemshim \d+ 1 closed, Live /);

    // closed's exit gives the memory back through memshim_vram_remove().
    expect(await printed(k, () => k.rmmod("closed"))).toEqual([]);
    expect(k.read("/proc/iomem")).not.toContain("hmm_device0");
    expect(k.read("/proc/modules")).toMatch(/^memshim \d+ 0 - Live 0x[0-9a-f]{16} \(O\)\n$/);
    k.rmmod("memshim");
    expect(k.read("/proc/modules")).toBe("");
    expect(k.tainted()).toBe(TAINT_PO);
  });

  it("5.0: closed without memshim loaded is refused with -ENOENT (after tainting); it loads once memshim is there", async () => {
    const k = await boot({ version: "5.0" });
    const shim = await buildFor(k, MEMSHIM);
    const seq = k.log.nextSeq;
    const err = await rejection(insmodDriver(k, CLOSED, { build: { symvers: [shim.symvers] } }));
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).errno).toBe(ENOENT);
    expect((err as KernelError).message).toBe("insmod: ERROR: could not insert module closed.ko: Unknown symbol in module");
    expect(messages(k, seq)).toEqual([
      OOT("closed"),
      PROPRIETARY("closed"),
      LOCKDEP,
      "closed: Unknown symbol memshim_vram_add (err -2)",
      "closed: Unknown symbol memshim_vram_remove (err -2)",
    ]);
    expect(k.tainted()).toBe(TAINT_PO);
    expect(k.read("/proc/modules")).toBe("");

    // The taints are already there: the second attempt prints no taint lines.
    expect(await printed(k, async () => {
      await insmodDriver(k, MEMSHIM);
      await insmodDriver(k, CLOSED, { build: { symvers: [shim.symvers] } });
    })).toEqual(["memshim: ready", "hmm_device0 initialised, 32768 pages in 0ms", LINE]);
    k.rmmod("closed");
    k.rmmod("memshim");
  });

  it("the export class is what counts: had memshim used EXPORT_SYMBOL_GPL, closed would be refused like gpumem", async () => {
    const source = readFileSync(MEMSHIM, "utf8").replace(/\bEXPORT_SYMBOL\b/g, "EXPORT_SYMBOL_GPL");
    expect(source).toContain("EXPORT_SYMBOL_GPL(memshim_vram_add);");
    const gplShim = await buildSource("memshim", source, { kernel: "5.0" });
    expect(gplShim.symvers).toBe("0x00000000\tmemshim_vram_add\tmemshim\tEXPORT_SYMBOL_GPL\n0x00000000\tmemshim_vram_remove\tmemshim\tEXPORT_SYMBOL_GPL\n");

    const err = await rejection(build({ entry: CLOSED, kernel: "5.0", symvers: [gplShim.symvers] }));
    expect((err as BuildError).errors).toEqual(["FATAL: modpost: GPL-incompatible module closed.ko uses GPL-only symbol 'memshim_vram_add'"]);

    // And the loader agrees (resolve_symbol() checks the class of a module's export too).
    const k = await boot({ version: "5.0" });
    await k.insmod(gplShim.ko, { filename: "memshim.ko" });
    const seq = k.log.nextSeq;
    const refused = await rejection(insmodDriver(k, CLOSED, { build: { symvers: [gplShim.symvers], licenseGate: "loader" } }));
    expect((refused as KernelError).errno).toBe(ENOENT);
    expect(messages(k, seq)).toEqual([
      PROPRIETARY("closed"),
      LOCKDEP,
      "closed: Unknown symbol memshim_vram_add (err -2)",
      "closed: Unknown symbol memshim_vram_remove (err -2)",
    ]);
    expect(k.read("/proc/modules")).toMatch(/^memshim \d+ 0 - Live /);
    k.rmmod("memshim");
  });
});
