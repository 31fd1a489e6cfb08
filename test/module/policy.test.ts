// The series in one scenario (spec module-loader §10 H5): a proprietary driver that builds
// device memory with devm_memremap_pages() and hmm_devmem_add() loads under 4.19 and 4.20
// and taints P and O; under 5.0 both symbols are GPL-only and the load fails.

import { describe, expect, it } from "vitest";
import { buildSource, ko } from "../helpers/build.ts";
import { boot, insmodError } from "../helpers/kernel.ts";

const PROPRIETARY = `
import {
  MODULE_LICENSE, MODULE_DESCRIPTION, module_init, module_exit, printk, KERN_INFO, IS_ERR, PTR_ERR,
  hmm_device_new, hmm_device_put, hmm_devmem_add, devm_memremap_pages,
  type hmm_device, type hmm_devmem,
} from "kemu/kernel";

MODULE_LICENSE("Proprietary");
MODULE_DESCRIPTION("a closed-source GPU memory manager");

let hdev: hmm_device | null = null;
let devmem: hmm_devmem | null = null;

module_init(() => {
  const h = hmm_device_new(null);
  if (IS_ERR(h)) return PTR_ERR(h);
  hdev = h;
  const d = hmm_devmem_add({ free: () => {}, fault: () => 2 }, h.device, 256 << 20);
  if (IS_ERR(d)) return PTR_ERR(d);
  devmem = d;
  printk(KERN_INFO + "gpumem: %lu pages of device memory at pfn %#lx\\n", d.pfn_last - d.pfn_first, d.pfn_first);
  return 0;
});

module_exit(() => {
  if (hdev) hmm_device_put(hdev);
});

// Never called; here so the module needs the symbol, as a real driver mapping BARs would.
export function map_bar(): number {
  return devm_memremap_pages(hdev!.device, {});
}
`;

describe("a proprietary module using devm_memremap_pages and hmm_devmem_add", () => {
  it("needs both symbols, GPL-only only from 5.0 on, according to modpost", async () => {
    const r = await buildSource("gpumem", PROPRIETARY, { kernel: "4.20" });
    expect(r.symbols).toEqual(["printk", "devm_memremap_pages", "hmm_device_new", "hmm_device_put", "hmm_devmem_add"]);
    // modpost of that era stops at the first GPL-only symbol it meets.
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

  it("forced past the vermagic (taint F), the GPL-only symbols are what refuses it under 5.0", async () => {
    const k = await boot({ version: "5.0", kconfig: { MODULE_FORCE_LOAD: true } });
    const file = await ko("gpumem", PROPRIETARY, { kernel: "4.20" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, file, { flags: 2 });
    expect(err.errno).toBe(2);
    expect(err.message).toBe("insmod: ERROR: could not insert module module.ko: Unknown symbol in module");
    const msgs = k.log.messages(seq);
    expect(msgs).toContain("gpumem: Unknown symbol devm_memremap_pages (err -2)");
    expect(msgs).toContain("gpumem: Unknown symbol hmm_devmem_add (err -2)");
    expect(msgs.filter((m) => m.includes("Unknown symbol"))).toHaveLength(2);
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
