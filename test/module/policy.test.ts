// The series in one scenario (spec module-loader §10 H5): a proprietary driver that builds
// device memory with devm_memremap_pages() and hmm_devmem_add() (examples/gpumem) loads under
// 4.19 and 4.20 and taints P and O; under 5.0 both symbols are GPL-only and the load fails
// (hmm_devmem_remove, which it calls at unload, is not exported by 5.0 at all).

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildSource, ko } from "../helpers/build.ts";
import { boot, insmodError } from "../helpers/kernel.ts";

/** examples/gpumem/gpumem.ts: the proprietary GPU driver (it also frees its memory with hmm_devmem_remove). */
const PROPRIETARY = readFileSync(fileURLToPath(new URL("../../examples/gpumem/gpumem.ts", import.meta.url)), "utf8");

describe("a proprietary module using devm_memremap_pages and hmm_devmem_add", () => {
  it("needs both symbols, GPL-only only from 5.0 on, according to modpost", async () => {
    const r = await buildSource("gpumem", PROPRIETARY, { kernel: "4.20" });
    expect(r.symbols).toEqual(["printk", "devm_memremap_pages", "hmm_device_new", "hmm_device_put", "hmm_devmem_add", "hmm_devmem_remove"]);
    // modpost of that era stops at the first GPL-only symbol it meets (before it would call
    // hmm_devmem_remove, which 5.0 does not export, undefined).
    const err = await buildSource("gpumem", PROPRIETARY, { kernel: "5.0" }).catch((e: unknown) => e);
    expect((err as { errors: string[] }).errors).toEqual([
      "FATAL: modpost: GPL-incompatible module gpumem.ko uses GPL-only symbol 'devm_memremap_pages'",
    ]);
  });

  for (const version of ["4.19", "4.20"] as const) {
    it(`loads under ${version}, tainting the kernel P and O with the kernel's lines`, async () => {
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      await k.insmod(await ko("gpumem", PROPRIETARY, { kernel: version }));
      expect(k.log.messages(seq).slice(0, 3)).toEqual([
        "gpumem: loading out-of-tree module taints kernel.",
        "gpumem: module license 'Proprietary' taints kernel.",
        "Disabling lock debugging due to kernel taint",
      ]);
      expect(k.log.messages(seq)).toContain("gpumem: 65536 pages of device memory at pfn 0x3ffff0000");
      expect(k.tainted()).toBe("Tainted: P           O     ");
      expect(k.read("/proc/modules")).toMatch(/^gpumem \d+ 0 - Live 0xffffffffc0000000 \(PO\)\n$/);
      expect(k.read("/proc/iomem")).toContain("3ffff0000000-3fffffffffff : hmm_device0");
      k.rmmod("gpumem");
    });
  }

  it("a 4.20 build is refused under 5.0 by its vermagic (-ENOEXEC) before any symbol is looked up", async () => {
    const k = await boot({ version: "5.0" });
    // Built for 4.20 (modpost let it through there) and loaded into a 5.0 kernel.
    const file = await ko("gpumem", PROPRIETARY, { kernel: "4.20" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, file);
    expect(err.errno).toBe(8);
    // vermagic first: a 4.20 module does not load on 5.0 at all.
    expect(k.log.messages(seq)).toEqual(["gpumem: version magic '4.20.0 SMP mod_unload ' should be '5.0.0 SMP mod_unload '"]);
  });

  it("without CONFIG_MODULE_FORCE_LOAD, ignoring the vermagic (modprobe --force) is refused too", async () => {
    const k = await boot({ version: "5.0" });
    const file = await ko("gpumem", PROPRIETARY, { kernel: "4.20" });
    const err = await insmodError(k, file, { flags: 2 });
    expect(err.errno).toBe(8);
    expect(err.message).toBe("insmod: ERROR: could not insert module module.ko: Invalid module format");
  });

  it("forced past the vermagic (taint F), its symbols are what refuses it under 5.0: the two GPL-only ones and the unexported hmm_devmem_remove", async () => {
    const k = await boot({ version: "5.0", kconfig: { MODULE_FORCE_LOAD: true } });
    const file = await ko("gpumem", PROPRIETARY, { kernel: "4.20" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, file, { flags: 2 });
    expect(err.errno).toBe(2);
    expect(err.message).toBe("insmod: ERROR: could not insert module module.ko: Unknown symbol in module");
    const msgs = k.log.messages(seq);
    expect(msgs).toContain("gpumem: Unknown symbol devm_memremap_pages (err -2)");
    expect(msgs).toContain("gpumem: Unknown symbol hmm_devmem_add (err -2)");
    // Not GPL-only but gone: 5.0 does not export it to any module.
    expect(msgs).toContain("gpumem: Unknown symbol hmm_devmem_remove (err -2)");
    expect(msgs.filter((m) => m.includes("Unknown symbol"))).toHaveLength(3);
    expect(msgs.slice(0, 4)).toEqual([
      "gpumem: bad vermagic: kernel tainted.",
      "Disabling lock debugging due to kernel taint",
      "gpumem: loading out-of-tree module taints kernel.",
      "gpumem: module license 'Proprietary' taints kernel.",
    ]);
    // The taints were applied before the symbols were looked at, and they stay.
    expect(k.tainted()).toBe("Tainted: PF          O     ");
    expect(k.read("/proc/modules")).toBe("");
  });
});
