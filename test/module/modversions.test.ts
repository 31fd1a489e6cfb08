// CONFIG_MODVERSIONS (spec module-loader §9 B4/B5, §4 T4 F, §6 R2/R4) as kernel/module.c
// 4.19-5.0 has it: check_modstruct_version() checks module_layout before anything else,
// same_magic() ignores the release before the first space only when the module has a
// __versions section, check_version() rejects a CRC that disagrees (-EINVAL), lets a symbol
// missing from __versions through with a pr_warn_once(), force-loads a module without
// __versions, and check_module_license_and_versions() force-loads a module whose exports have
// no CRCs. MODULE_INIT_IGNORE_MODVERSIONS makes setup_load_info() pretend there is no
// __versions section at all. Module.symvers is the 4.19-5.3 four-field layout.

import { describe, expect, it } from "vitest";
import { get_modinfo, parseKo } from "../../core/module/ko.ts";
import { kernelSymbol, moduleSymvers, symbolCrc } from "../../core/module/ksymtab.ts";
import type { KernelVersion } from "../../core/version.ts";
import { buildSource, ko, rewriteKo, setModinfo } from "../helpers/build.ts";
import { boot, insmodError, tainted } from "../helpers/kernel.ts";

const VERSIONS = ["4.19", "4.20", "5.0"] as const;
const RELEASE: Record<KernelVersion, string> = { "4.19": "4.19.0", "4.20": "4.20.0", "5.0": "5.0.0" };
const MV = { MODVERSIONS: true } as const;
const MV_FORCE = { MODVERSIONS: true, MODULE_FORCE_LOAD: true } as const;

const HELLO = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => { printk(KERN_INFO + "hello: loaded\\n"); return 0; });
module_exit(() => {});
`;

// A module exporting a function, and one using it through kemu/extern.
const GPUCORE = `
import { MODULE_LICENSE, EXPORT_SYMBOL, module_init, module_exit } from "kemu/kernel";
MODULE_LICENSE("GPL");
export function gpu_alloc(n: number): number { return n * 2; }
EXPORT_SYMBOL(gpu_alloc);
module_init(() => 0);
module_exit(() => {});
`;
const GPUUSER = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
import { gpu_alloc } from "kemu/extern";
MODULE_LICENSE("GPL");
module_init(() => { printk(KERN_INFO + "gpuuser: gpu_alloc(21) = %d\\n", gpu_alloc(21)); return 0; });
module_exit(() => {});
`;

const OOT = (m: string) => `${m}: loading out-of-tree module taints kernel.`;
const LOCKDEP = "Disabling lock debugging due to kernel taint";

function crcOf(name: string, version: KernelVersion): number {
  return symbolCrc(kernelSymbol(name)!, version);
}

function insmodMessage(text: string): string {
  return `insmod: ERROR: could not insert module module.ko: ${text}`;
}

/** A copy of a built module with one __versions entry changed (or dropped with crc null). */
function withVersion(file: Uint8Array, name: string, crc: number | null): Uint8Array {
  return rewriteKo(file, (img) => {
    const v = img.versions!;
    const i = v.findIndex((x) => x.name === name);
    expect(i, `${name} in __versions`).toBeGreaterThanOrEqual(0);
    if (crc === null) v.splice(i, 1);
    else v[i] = { name, crc };
  });
}

describe("a module built with modversions on a MODVERSIONS kernel", () => {
  for (const version of VERSIONS) {
    it(`${version}: carries 'modversions ' in its vermagic and the vmlinux CRCs in __versions, and loads`, async () => {
      const file = await ko("hello", HELLO, { kernel: version, modversions: true });
      const img = parseKo(file);
      expect(get_modinfo(img.modinfo, "vermagic")).toBe(`${RELEASE[version]} SMP mod_unload modversions `);
      // module_layout first (modpost puts it there for check_modstruct_version), then what it uses.
      expect(img.versions).toEqual([
        { name: "module_layout", crc: crcOf("module_layout", version) },
        { name: "printk", crc: crcOf("printk", version) },
      ]);
      const k = await boot({ version, kconfig: MV });
      const seq = k.log.nextSeq;
      await k.insmod(file);
      expect(k.log.messages(seq)).toEqual([OOT("hello"), "hello: loaded"]);
      expect(k.tainted()).toBe(tainted("O"));
      expect(k.read("/proc/modules")).toMatch(/^hello \d+ 0 - Live 0x[0-9a-f]+ \(O\)\n$/);
      k.rmmod("hello");
    });
  }

  it("is refused by a kernel without MODVERSIONS: the vermagic differs in 'modversions '", async () => {
    const k = await boot({ version: "4.20" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("hello", HELLO, { kernel: "4.20", modversions: true }));
    expect(err.errno).toBe(8);
    expect(err.message).toBe(insmodMessage("Invalid module format"));
    expect(k.log.messages(seq)).toEqual(["hello: version magic '4.20.0 SMP mod_unload modversions ' should be '4.20.0 SMP mod_unload '"]);
    expect(k.tainted()).toBe("Not tainted");
  });
});

describe("same_magic(): with CRCs, the release before the first space is not compared", () => {
  it("a module from another 4.20 sublevel loads when it has __versions", async () => {
    const file = setModinfo(await ko("hello", HELLO, { kernel: "4.20", modversions: true }), "vermagic", "4.20.17 SMP mod_unload modversions ");
    const k = await boot({ version: "4.20", kconfig: MV });
    const seq = k.log.nextSeq;
    await k.insmod(file);
    expect(k.log.messages(seq)).toEqual([OOT("hello"), "hello: loaded"]);
  });

  it("a 4.20 module on a 5.0 kernel: module_layout's CRC stops it, the release in vermagic would not", async () => {
    const file = await ko("hello", HELLO, { kernel: "4.20", modversions: true });
    expect(crcOf("module_layout", "4.20")).not.toBe(crcOf("module_layout", "5.0"));
    const k = await boot({ version: "5.0", kconfig: MV });
    let seq = k.log.nextSeq;
    let err = await insmodError(k, file);
    expect(err.errno).toBe(8);
    expect(err.message).toBe(insmodMessage("Invalid module format"));
    // check_modstruct_version() runs before check_modinfo(): no version magic line.
    expect(k.log.messages(seq)).toEqual(["hello: disagrees about version of symbol module_layout"]);
    // Had struct module and friends not changed, '4.20.0' against '5.0.0' would pass.
    seq = k.log.nextSeq;
    await k.insmod(withVersion(file, "module_layout", crcOf("module_layout", "5.0")));
    expect(k.log.messages(seq)).toEqual([OOT("hello"), "hello: loaded"]);
    k.rmmod("hello");
    // And without __versions the releases are compared after all (F from the forced module_layout).
    const k2 = await boot({ version: "5.0", kconfig: MV_FORCE });
    seq = k2.log.nextSeq;
    err = await insmodError(k2, rewriteKo(file, (img) => {
      img.versions = null;
    }));
    expect(err.errno).toBe(8);
    expect(k2.log.messages(seq)).toEqual([
      "hello: module_layout: kernel tainted.",
      LOCKDEP,
      "hello: version magic '4.20.0 SMP mod_unload modversions ' should be '5.0.0 SMP mod_unload modversions '",
    ]);
  });

  it("everything after the first space is still compared", async () => {
    const file = setModinfo(await ko("hello", HELLO, { kernel: "4.20", modversions: true }), "vermagic", "4.20.0 mod_unload modversions ");
    const k = await boot({ version: "4.20", kconfig: MV });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, file);
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq)).toEqual(["hello: version magic '4.20.0 mod_unload modversions ' should be '4.20.0 SMP mod_unload modversions '"]);
  });

  it("without CONFIG_MODVERSIONS same_magic() is a plain strcmp, __versions or not", async () => {
    // A module with __versions whose vermagic names another sublevel and no 'modversions '.
    const file = setModinfo(await ko("hello", HELLO, { kernel: "4.20", modversions: true }), "vermagic", "4.20.17 SMP mod_unload ");
    const k = await boot({ version: "4.20" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, file);
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq)).toEqual(["hello: version magic '4.20.17 SMP mod_unload ' should be '4.20.0 SMP mod_unload '"]);
    expect(k.read("/proc/modules")).toBe("");
  });

  it("without __versions the whole vermagic is compared (after the forced module_layout)", async () => {
    const file = rewriteKo(setModinfo(await ko("hello", HELLO, { kernel: "4.20", modversions: true }), "vermagic", "4.20.17 SMP mod_unload modversions "), (img) => {
      img.versions = null;
    });
    const k = await boot({ version: "4.20", kconfig: MV_FORCE });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, file);
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq)).toEqual([
      "hello: module_layout: kernel tainted.",
      LOCKDEP,
      "hello: version magic '4.20.17 SMP mod_unload modversions ' should be '4.20.0 SMP mod_unload modversions '",
    ]);
    expect(k.tainted()).toBe(tainted("F"));
  });
});

describe("check_modstruct_version(): module_layout", () => {
  for (const version of VERSIONS) {
    it(`${version}: a module_layout CRC mismatch is -ENOEXEC before any other check`, async () => {
      const file = withVersion(await ko("hello", HELLO, { kernel: version, modversions: true }), "module_layout", 0xdeadbeef);
      const k = await boot({ version, kconfig: MV_FORCE });
      const seq = k.log.nextSeq;
      const err = await insmodError(k, file);
      expect(err.errno).toBe(8);
      expect(err.message).toBe(insmodMessage("Invalid module format"));
      // No out-of-tree line: check_modinfo() never ran. Forcing does not help.
      expect(k.log.messages(seq)).toEqual(["hello: disagrees about version of symbol module_layout"]);
      expect(k.tainted()).toBe("Not tainted");
      expect(k.read("/proc/modules")).toBe("");
    });
  }

  it("a module without modversions on a MODVERSIONS kernel: -ENOEXEC, and nothing printed", async () => {
    const k = await boot({ version: "4.20", kconfig: MV });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("hello", HELLO, { kernel: "4.20" }));
    expect(err.errno).toBe(8);
    expect(err.message).toBe(insmodMessage("Invalid module format"));
    // try_to_force_load() without CONFIG_MODULE_FORCE_LOAD returns -ENOEXEC silently.
    expect(k.log.messages(seq)).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("forced past module_layout (F), a module without modversions still fails on its vermagic", async () => {
    const k = await boot({ version: "4.20", kconfig: MV_FORCE });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("hello", HELLO, { kernel: "4.20" }));
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq)).toEqual([
      "hello: module_layout: kernel tainted.",
      LOCKDEP,
      "hello: version magic '4.20.0 SMP mod_unload ' should be '4.20.0 SMP mod_unload modversions '",
    ]);
    expect(k.tainted()).toBe(tainted("F"));
  });

  it("the CRC lines name the module by its .modinfo name (info->name), the taint lines by struct module's", async () => {
    const base = await ko("hello", HELLO, { kernel: "4.20", modversions: true });
    const file = withVersion(setModinfo(base, "name", "hello_info"), "module_layout", 0xdeadbeef);
    const k = await boot({ version: "4.20", kconfig: MV });
    const seq = k.log.nextSeq;
    await insmodError(k, file);
    expect(k.log.messages(seq)).toEqual(["hello_info: disagrees about version of symbol module_layout"]);
  });
});

describe("check_version() for each symbol the module uses", () => {
  for (const version of VERSIONS) {
    it(`${version}: a CRC that disagrees is -EINVAL: 'Unknown symbol ... (err -22)', insmod says Invalid parameters`, async () => {
      const file = withVersion(await ko("hello", HELLO, { kernel: version, modversions: true }), "printk", crcOf("printk", version) ^ 0x80000000);
      const k = await boot({ version, kconfig: MV });
      const seq = k.log.nextSeq;
      const err = await insmodError(k, file);
      expect(err.errno).toBe(22);
      expect(err.message).toBe(insmodMessage("Invalid parameters"));
      expect(k.log.messages(seq)).toEqual([
        OOT("hello"),
        "hello: disagrees about version of symbol printk",
        "hello: Unknown symbol printk (err -22)",
      ]);
      // The taints of check_modinfo() stay; the module is gone.
      expect(k.tainted()).toBe(tainted("O"));
      expect(k.read("/proc/modules")).toBe("");
    });
  }

  it("a symbol missing from __versions is accepted, with one warning per boot", async () => {
    const k = await boot({ version: "4.20", kconfig: MV });
    const a = withVersion(await ko("hello", HELLO, { kernel: "4.20", modversions: true }), "printk", null);
    let seq = k.log.nextSeq;
    await k.insmod(a);
    expect(k.log.messages(seq)).toEqual([OOT("hello"), "hello: no symbol version for printk", "hello: loaded"]);
    expect(k.tainted()).toBe(tainted("O"));
    // pr_warn_once(): a second module missing a version, even module_layout, says nothing.
    const b = withVersion(withVersion(await ko("hello2", HELLO, { kernel: "4.20", modversions: true }), "printk", null), "module_layout", null);
    seq = k.log.nextSeq;
    await k.insmod(b);
    expect(k.log.messages(seq)).toEqual(["hello: loaded"]);
    expect(k.read("/proc/modules")).toMatch(/^hello2 \d+ 0 - Live 0x[0-9a-f]+ \(O\)\nhello \d+ 0 - Live 0x[0-9a-f]+ \(O\)\n$/);
  });

  it("module_layout missing from __versions is accepted too (the first warning names it)", async () => {
    const k = await boot({ version: "5.0", kconfig: MV });
    const file = withVersion(await ko("hello", HELLO, { kernel: "5.0", modversions: true }), "module_layout", null);
    const seq = k.log.nextSeq;
    await k.insmod(file);
    expect(k.log.messages(seq)).toEqual(["hello: no symbol version for module_layout", OOT("hello"), "hello: loaded"]);
  });
});

describe("a module with no __versions at all (modprobe --force did this)", () => {
  for (const version of VERSIONS) {
    it(`${version}: -ENOEXEC without CONFIG_MODULE_FORCE_LOAD, nothing printed`, async () => {
      const file = rewriteKo(await ko("hello", HELLO, { kernel: version, modversions: true }), (img) => {
        img.versions = null;
      });
      const k = await boot({ version, kconfig: MV });
      const seq = k.log.nextSeq;
      const err = await insmodError(k, file);
      expect(err.errno).toBe(8);
      expect(err.message).toBe(insmodMessage("Invalid module format"));
      expect(k.log.messages(seq)).toEqual([]);
      expect(k.tainted()).toBe("Not tainted");
    });

    it(`${version}: with it, taint F with the first symbol checked (module_layout) as the reason`, async () => {
      const file = rewriteKo(await ko("hello", HELLO, { kernel: version, modversions: true }), (img) => {
        img.versions = null;
      });
      const k = await boot({ version, kconfig: MV_FORCE });
      const seq = k.log.nextSeq;
      await k.insmod(file);
      // F is printed once: printk's check finds F already set.
      expect(k.log.messages(seq)).toEqual(["hello: module_layout: kernel tainted.", LOCKDEP, OOT("hello"), "hello: loaded"]);
      expect(k.tainted()).toBe(tainted("FO"));
      expect(k.read("/proc/modules")).toMatch(/^hello \d+ 0 - Live 0x[0-9a-f]+ \(FO\)\n$/);
      k.rmmod("hello");
    });
  }
});

describe("check_module_license_and_versions(): exports without CRCs", () => {
  async function crclessCore(): Promise<Uint8Array> {
    return rewriteKo(await ko("gpucore", GPUCORE, { kernel: "4.20", modversions: true }), (img) => {
      for (const e of img.exports) e.crc = null;
    });
  }

  it("-ENOEXEC without CONFIG_MODULE_FORCE_LOAD, after check_modinfo()'s taints", async () => {
    const k = await boot({ version: "4.20", kconfig: MV });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await crclessCore());
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq)).toEqual([OOT("gpucore")]);
    expect(k.tainted()).toBe(tainted("O"));
    expect(k.read("/proc/modules")).toBe("");
  });

  it("with it, taint F 'no versions for exported symbols'; an importer's CRC for them is then not checked", async () => {
    const k = await boot({ version: "4.20", kconfig: MV_FORCE });
    let seq = k.log.nextSeq;
    await k.insmod(await crclessCore());
    expect(k.log.messages(seq)).toEqual([OOT("gpucore"), "gpucore: no versions for exported symbols: kernel tainted.", LOCKDEP]);
    expect(k.read("/proc/modules")).toMatch(/^gpucore \d+ 0 - Live 0x[0-9a-f]+ \(FO\)\n$/);
    // "Exporting module didn't supply crcs?  OK, we're already tainted."
    const core = await buildSource("gpucore", GPUCORE, { kernel: "4.20", modversions: true });
    const user = withVersion(await ko("gpuuser", GPUUSER, { kernel: "4.20", modversions: true, symvers: [core.symvers] }), "gpu_alloc", 0x12345678);
    seq = k.log.nextSeq;
    await k.insmod(user);
    expect(k.log.messages(seq)).toEqual(["gpuuser: gpu_alloc(21) = 42"]);
    expect(k.tainted()).toBe(tainted("FO"));
    k.rmmod("gpuuser");
    k.rmmod("gpucore");
  });

  it("a kernel without MODVERSIONS does not care", async () => {
    const k = await boot({ version: "4.20" });
    const seq = k.log.nextSeq;
    await k.insmod(await ko("gpucore", GPUCORE, { kernel: "4.20" }));
    expect(k.log.messages(seq)).toEqual([OOT("gpucore")]);
    expect(k.tainted()).toBe(tainted("O"));
  });
});

describe("CRCs of symbols another module exports", () => {
  it("the importer records the exporter's CRC from its Module.symvers, and a mismatch refuses it", async () => {
    const core = await buildSource("gpucore", GPUCORE, { kernel: "4.20", modversions: true });
    const crc = Number.parseInt(core.symvers.split("\t")[0]!, 16);
    const user = await ko("gpuuser", GPUUSER, { kernel: "4.20", modversions: true, symvers: [core.symvers] });
    expect(parseKo(user).versions).toContainEqual({ name: "gpu_alloc", crc });
    const k = await boot({ version: "4.20", kconfig: MV });
    await k.insmod(core.ko);
    let seq = k.log.nextSeq;
    await k.insmod(user);
    expect(k.log.messages(seq)).toEqual(["gpuuser: gpu_alloc(21) = 42"]);
    expect(k.read("/proc/modules")).toMatch(/^gpuuser \d+ 0 - Live 0x[0-9a-f]+ \(O\)\ngpucore \d+ 1 gpuuser, Live 0x[0-9a-f]+ \(O\)\n$/);
    k.rmmod("gpuuser");
    // gpucore rebuilt with another prototype: its CRC changes, the old gpuuser no longer fits.
    const stale = withVersion(user, "gpu_alloc", crc ^ 0xffff);
    seq = k.log.nextSeq;
    const err = await insmodError(k, stale);
    expect(err.errno).toBe(22);
    expect(k.log.messages(seq)).toEqual(["gpuuser: disagrees about version of symbol gpu_alloc", "gpuuser: Unknown symbol gpu_alloc (err -22)"]);
    // No use link was made.
    expect(k.read("/proc/modules")).toMatch(/^gpucore \d+ 0 - Live 0x[0-9a-f]+ \(O\)\n$/);
    k.rmmod("gpucore");
  });
});

describe("MODULE_INIT_IGNORE_MODVERSIONS (finit_module flag 1): the __versions section is ignored", () => {
  it("without CONFIG_MODULE_FORCE_LOAD even a good module is refused: it has no versions now", async () => {
    const k = await boot({ version: "4.20", kconfig: MV });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("hello", HELLO, { kernel: "4.20", modversions: true }), { flags: 1 });
    expect(err.errno).toBe(8);
    expect(err.message).toBe(insmodMessage("Invalid module format"));
    expect(k.log.messages(seq)).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("with it, taint F (module_layout), and CRCs that disagree are no longer checked", async () => {
    const file = withVersion(
      withVersion(await ko("hello", HELLO, { kernel: "4.20", modversions: true }), "printk", 0x11111111),
      "module_layout",
      0x22222222,
    );
    const k = await boot({ version: "4.20", kconfig: MV_FORCE });
    const seq = k.log.nextSeq;
    await k.insmod(file, { flags: 1 });
    expect(k.log.messages(seq)).toEqual(["hello: module_layout: kernel tainted.", LOCKDEP, OOT("hello"), "hello: loaded"]);
    expect(k.tainted()).toBe(tainted("FO"));
    expect(k.read("/proc/modules")).toMatch(/^hello \d+ 0 - Live 0x[0-9a-f]+ \(FO\)\n$/);
  });

  it("on a kernel without MODVERSIONS it changes nothing", async () => {
    const k = await boot({ version: "4.20", kconfig: { MODULE_FORCE_LOAD: true } });
    const seq = k.log.nextSeq;
    await k.insmod(await ko("hello", HELLO, { kernel: "4.20" }), { flags: 1 });
    expect(k.log.messages(seq)).toEqual([OOT("hello"), "hello: loaded"]);
    expect(k.tainted()).toBe(tainted("O"));
  });
});

describe("Module.symvers (4.19-5.3 layout: crc, symbol, module, export type)", () => {
  for (const version of VERSIONS) {
    it(`${version}: vmlinux's lines carry the CRCs the loader checks; 0x00000000 without MODVERSIONS`, async () => {
      const withCrcs = moduleSymvers(version, true);
      const lines = withCrcs.trimEnd().split("\n");
      expect(withCrcs.endsWith("\n")).toBe(true);
      for (const l of lines) expect(l).toMatch(/^0x[0-9a-f]{8}\t[A-Za-z_]\w*\tvmlinux\tEXPORT_SYMBOL(_GPL|_GPL_FUTURE)?$/);
      const byName = new Map(lines.map((l) => [l.split("\t")[1]!, l]));
      expect(byName.get("module_layout")).toBe(`0x${crcOf("module_layout", version).toString(16).padStart(8, "0")}\tmodule_layout\tvmlinux\tEXPORT_SYMBOL`);
      expect(byName.get("printk")).toBe(`0x${crcOf("printk", version).toString(16).padStart(8, "0")}\tprintk\tvmlinux\tEXPORT_SYMBOL`);
      // What a modversions build records is what Module.symvers says.
      const img = parseKo(await ko("hello", HELLO, { kernel: version, modversions: true }));
      for (const v of img.versions!) expect(byName.get(v.name)!.split("\t")[0]).toBe(`0x${v.crc.toString(16).padStart(8, "0")}`);

      const without = moduleSymvers(version, false).trimEnd().split("\n");
      expect(without).toHaveLength(lines.length);
      for (const l of without) expect(l).toMatch(/^0x00000000\t[A-Za-z_]\w*\tvmlinux\tEXPORT_SYMBOL(_GPL|_GPL_FUTURE)?$/);
    });
  }

  it("4.20 lists hmm_devmem_remove, 5.0 no longer exports it and lists devm_memremap_pages as EXPORT_SYMBOL_GPL", () => {
    const v420 = moduleSymvers("4.20", false);
    expect(v420).toContain("0x00000000\thmm_devmem_add\tvmlinux\tEXPORT_SYMBOL\n");
    expect(v420).toContain("0x00000000\thmm_devmem_remove\tvmlinux\tEXPORT_SYMBOL\n");
    const v50 = moduleSymvers("5.0", false);
    expect(v50).not.toContain("\thmm_devmem_remove\t");
    expect(v50).toContain("0x00000000\tdevm_memremap_pages\tvmlinux\tEXPORT_SYMBOL_GPL\n");
  });

  it("a module's exports: its own CRCs with modversions, 0x00000000 without", async () => {
    const src = `
      import { MODULE_LICENSE, EXPORT_SYMBOL, EXPORT_SYMBOL_GPL, module_init } from "kemu/kernel";
      MODULE_LICENSE("GPL");
      export function gpu_alloc(n: number) { return n * 2; }
      export function gpu_secret() { return 7; }
      EXPORT_SYMBOL(gpu_alloc);
      EXPORT_SYMBOL_GPL(gpu_secret);
      module_init(() => 0);
    `;
    const plain = await buildSource("gpucore", src, { kernel: "4.19" });
    expect(plain.symvers).toBe("0x00000000\tgpu_alloc\tgpucore\tEXPORT_SYMBOL\n0x00000000\tgpu_secret\tgpucore\tEXPORT_SYMBOL_GPL\n");
    const mv = await buildSource("gpucore", src, { kernel: "4.19", modversions: true });
    const img = parseKo(mv.ko);
    const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;
    // __kcrctab and Module.symvers agree.
    expect(mv.symvers).toBe(
      `${hex(img.exports[0]!.crc!)}\tgpu_alloc\tgpucore\tEXPORT_SYMBOL\n${hex(img.exports[1]!.crc!)}\tgpu_secret\tgpucore\tEXPORT_SYMBOL_GPL\n`,
    );
    expect(img.exports.every((e) => e.crc !== null && e.crc !== 0)).toBe(true);
  });
});
