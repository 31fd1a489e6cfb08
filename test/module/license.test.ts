// License classification and the P taint (spec module-loader §3 L1-L5, §4 T1/T2/T5, §10 H5),
// as kernel/module.c of 4.19-5.0 has them: set_license() in check_modinfo() prints
// "%s: module license '%s' taints kernel." only while P is clear and taints P on the module
// and kernel-wide (LOCKDEP_NOW_UNRELIABLE: the first one also prints "Disabling lock debugging
// due to kernel taint", after the license line); resolve_symbol() lets a module see GPL-only
// exports iff its own taint mask lacks P; check_module_license_and_versions() applies the
// ndiswrapper / driverloader / lve overrides by mod->name and prints "%s: module license taints
// kernel." when that made P new. get_modinfo() returns the first "license=" entry, read as a C
// string (up to the first NUL).
//
// modpost refuses to build a GPL-incompatible module that uses a GPL-only symbol, so the
// incompatible strings are put into a module built as "GPL" by rewriting its .modinfo.

import { describe, expect, it } from "vitest";
import { get_modinfo, modinfoEntries, parseKo } from "../../core/module/ko.ts";
import { buildSource, ko, setModinfo, withModinfo } from "../helpers/build.ts";
import { boot, insmodError, tainted } from "../helpers/kernel.ts";

const DISABLING = "Disabling lock debugging due to kernel taint";
const VERSIONS = ["4.19", "4.20", "5.0"] as const;

/** A module that calls get_dev_pagemap() (EXPORT_SYMBOL_GPL in 4.19, 4.20 and 5.0) from init. */
function gplUser(name: string, license: string | null): string {
  return `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, get_dev_pagemap } from "kemu/kernel";
${license === null ? "" : `MODULE_LICENSE(${JSON.stringify(license)});`}
module_init(() => {
  const pgmap = get_dev_pagemap(0x1000, null);
  printk(KERN_INFO + "${name}: get_dev_pagemap(0x1000) = %s\\n", pgmap === null ? "NULL" : "a pgmap");
  return 0;
});
module_exit(() => {});
`;
}

/** A module that uses plain exports only (printk). */
function plainUser(name: string, license: string | null): string {
  return `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
${license === null ? "" : `MODULE_LICENSE(${JSON.stringify(license)});`}
module_init(() => {
  printk(KERN_INFO + "${name}: up\\n");
  return 0;
});
module_exit(() => {});
`;
}

/** The module with its license= entries replaced by one (first) entry, or none. */
function relicense(bytes: Uint8Array, license: string | null): Uint8Array {
  return withModinfo(bytes, (e) => [...(license === null ? [] : [`license=${license}`]), ...e.filter((x) => !x.startsWith("license="))]);
}

const UNKNOWN_SYMBOL = "insmod: ERROR: could not insert module module.ko: Unknown symbol in module";

describe("GPL-compatible licenses (L1): exactly six strings", () => {
  const COMPATIBLE = ["GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"];

  for (const license of COMPATIBLE) {
    it(`"${license}" loads without P and resolves a GPL-only symbol`, async () => {
      const k = await boot({ version: "5.0" });
      const file = await ko("lic", gplUser("lic", license), { kernel: "5.0", intree: true });
      expect(get_modinfo(parseKo(file).modinfo, "license")).toBe(license);
      const seq = k.log.nextSeq;
      const mod = await k.insmod(file);
      expect(k.log.messages(seq)).toEqual(["lic: get_dev_pagemap(0x1000) = NULL"]);
      expect(mod.taints).toBe(0);
      expect(k.tainted()).toBe("Not tainted");
      expect(k.read("/proc/modules")).toMatch(/^lic \d+ 0 - Live 0x[0-9a-f]{16}\n$/);
      k.rmmod("lic");
    });
  }

  const INCOMPATIBLE = ["GPL-2.0", "GPL-2.0-only", "GPLv2", "gpl", "GPL ", "Dual GPL/BSD", "BSD", "MIT", "Proprietary"];

  for (const license of INCOMPATIBLE) {
    it(`"${license}" taints P and does not see GPL-only symbols: Unknown symbol (err -2)`, async () => {
      const k = await boot({ version: "5.0" });
      const file = relicense(await ko("lic", gplUser("lic", "GPL"), { kernel: "5.0", intree: true }), license);
      const seq = k.log.nextSeq;
      const err = await insmodError(k, file);
      expect(err.errno).toBe(2);
      expect(err.message).toBe(UNKNOWN_SYMBOL);
      expect(k.log.messages(seq)).toEqual([
        `lic: module license '${license}' taints kernel.`,
        DISABLING,
        "lic: Unknown symbol get_dev_pagemap (err -2)",
      ]);
      // The P taint was applied before the symbols were resolved and stays after the failure.
      expect(k.tainted()).toBe(tainted("P"));
      expect(k.read("/proc/sys/kernel/tainted")).toBe("1\n");
      expect(k.read("/proc/modules")).toBe("");
    });
  }

  it("modpost refuses each incompatible string with a GPL-only symbol, and builds it with plain ones", async () => {
    for (const license of INCOMPATIBLE) {
      const err = (await buildSource("lic", gplUser("lic", license), { kernel: "5.0" }).catch((e: unknown) => e)) as { errors?: string[] };
      expect(err.errors, license).toEqual(["FATAL: modpost: GPL-incompatible module lic.ko uses GPL-only symbol 'get_dev_pagemap'"]);
    }
    const r = await buildSource("lic", plainUser("lic", "MIT"), { kernel: "5.0" });
    expect(get_modinfo(r.image.modinfo, "license")).toBe("MIT");
  });

  it("an incompatible module that uses plain exports only loads, P on the module and the kernel", async () => {
    const k = await boot({ version: "4.19" });
    const seq = k.log.nextSeq;
    const mod = await k.insmod(await ko("bsdmod", plainUser("bsdmod", "BSD"), { kernel: "4.19", intree: true }));
    expect(k.log.messages(seq)).toEqual(["bsdmod: module license 'BSD' taints kernel.", DISABLING, "bsdmod: up"]);
    expect(mod.taints).toBe(1);
    expect(k.read("/proc/modules")).toMatch(/^bsdmod \d+ 0 - Live 0x[0-9a-f]{16} \(P\)\n$/);
    expect(k.tainted()).toBe(tainted("P"));
    k.rmmod("bsdmod");
    // T6: unloading clears nothing.
    expect(k.tainted()).toBe(tainted("P"));
  });
});

describe("reading the license from .modinfo (L2-L4)", () => {
  it("the loader takes the first license= entry: Proprietary first taints and hides GPL-only symbols", async () => {
    const k = await boot({ version: "4.20" });
    const base = await ko("two", gplUser("two", "GPL"), { kernel: "4.20", intree: true });
    const file = withModinfo(base, (e) => ["license=Proprietary", ...e]);
    expect(modinfoEntries(parseKo(file).modinfo).filter(([t]) => t === "license").map(([, v]) => v)).toEqual(["Proprietary", "GPL"]);
    const seq = k.log.nextSeq;
    const err = await insmodError(k, file);
    expect(err.errno).toBe(2);
    expect(k.log.messages(seq)).toEqual(["two: module license 'Proprietary' taints kernel.", DISABLING, "two: Unknown symbol get_dev_pagemap (err -2)"]);
  });

  it("the loader takes the first license= entry: GPL first loads as GPL, a later Proprietary is ignored", async () => {
    const k = await boot({ version: "4.20" });
    const base = await ko("two", gplUser("two", "GPL"), { kernel: "4.20", intree: true });
    const file = withModinfo(base, (e) => [...e.filter((x) => x.startsWith("license=")), "license=Proprietary", ...e.filter((x) => !x.startsWith("license="))]);
    const seq = k.log.nextSeq;
    await k.insmod(file);
    expect(k.log.messages(seq)).toEqual(["two: get_dev_pagemap(0x1000) = NULL"]);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("modpost wants every license= entry compatible: two MODULE_LICENSE() lines, one of them Proprietary, fail the build", async () => {
    const src = gplUser("two", "GPL").replace('MODULE_LICENSE("GPL");', 'MODULE_LICENSE("GPL");\nMODULE_LICENSE("Proprietary");');
    const err = (await buildSource("two", src, { kernel: "5.0" }).catch((e: unknown) => e)) as { errors?: string[] };
    expect(err.errors).toEqual(["FATAL: modpost: GPL-incompatible module two.ko uses GPL-only symbol 'get_dev_pagemap'"]);
  });

  it("a tag matches only as the exact name followed by '=': licence=GPL is no license, 'unspecified'", async () => {
    const k = await boot({ version: "5.0" });
    const base = await ko("spell", plainUser("spell", "GPL"), { kernel: "5.0", intree: true });
    const file = withModinfo(base, (e) => ["licence=GPL", "license_=GPL", "xlicense=GPL", ...e.filter((x) => !x.startsWith("license="))]);
    const seq = k.log.nextSeq;
    const mod = await k.insmod(file);
    expect(k.log.messages(seq)).toEqual(["spell: module license 'unspecified' taints kernel.", DISABLING, "spell: up"]);
    expect(mod.taints).toBe(1);
  });

  it("Linuxant's \"GPL\\0for files in the \\\"GPL\\\" directory...\" is GPL to modpost and to the loader (L4)", async () => {
    const LINUXANT = 'GPL\\0for files in the \\"GPL\\" directory; for others, only LICENSE file applies';
    const src = gplUser("hsfserial", null).replace("module_init(()", `MODULE_LICENSE("${LINUXANT}");\nmodule_init(()`);
    const r = await buildSource("hsfserial", src, { kernel: "5.0", intree: true });
    expect(r.image.modinfo).toContain('license=GPL\0for files in the "GPL" directory; for others, only LICENSE file applies\0');
    expect(get_modinfo(r.image.modinfo, "license")).toBe("GPL");
    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    const mod = await k.insmod(r.ko);
    expect(k.log.messages(seq)).toEqual(["hsfserial: get_dev_pagemap(0x1000) = NULL"]);
    expect(mod.taints).toBe(0);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("bytes after the NUL that start with tag= become entries of their own: \"GPL\\0intree=Y\" hides an out-of-tree build", async () => {
    const k = await boot({ version: "5.0" });
    const r = await buildSource("sneaky", plainUser("sneaky", "GPL\0intree=Y"), { kernel: "5.0" });
    expect(get_modinfo(r.image.modinfo, "intree")).toBe("Y");
    const seq = k.log.nextSeq;
    await k.insmod(r.ko);
    expect(k.log.messages(seq)).toEqual(["sneaky: up"]);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("an injected second license= comes after the first and changes nothing: \"Proprietary\\0license=GPL\" is Proprietary", async () => {
    const k = await boot({ version: "4.19" });
    const r = await buildSource("inject", plainUser("inject", "Proprietary\0license=GPL"), { kernel: "4.19", intree: true });
    expect(modinfoEntries(r.image.modinfo).filter(([t]) => t === "license").map(([, v]) => v)).toEqual(["Proprietary", "GPL"]);
    const seq = k.log.nextSeq;
    const mod = await k.insmod(r.ko);
    expect(k.log.messages(seq)).toEqual(["inject: module license 'Proprietary' taints kernel.", DISABLING, "inject: up"]);
    expect(mod.taints).toBe(1);
  });

  it("no MODULE_LICENSE(): modpost only warns (even with GPL-only symbols), the loader says 'unspecified' and hides them (L3, B2)", async () => {
    const r = await buildSource("nolic", gplUser("nolic", null), { kernel: "5.0", intree: true });
    expect(r.warnings).toContain("WARNING: modpost: missing MODULE_LICENSE() in nolic.o\nsee include/linux/module.h for more information");
    expect(get_modinfo(r.image.modinfo, "license")).toBeUndefined();
    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, r.ko);
    expect(err.errno).toBe(2);
    expect(k.log.messages(seq)).toEqual(["nolic: module license 'unspecified' taints kernel.", DISABLING, "nolic: Unknown symbol get_dev_pagemap (err -2)"]);
    expect(k.tainted()).toBe(tainted("P"));
  });
});

describe("when the license lines are printed (T1, L5)", () => {
  for (const version of VERSIONS) {
    it(`${version}: the license line only while P is clear; "Disabling lock debugging" once, after it`, async () => {
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      await k.insmod(await ko("first", plainUser("first", "Proprietary"), { kernel: version }));
      expect(k.log.messages(seq)).toEqual([
        "first: loading out-of-tree module taints kernel.",
        "first: module license 'Proprietary' taints kernel.",
        DISABLING,
        "first: up",
      ]);
      const seq2 = k.log.nextSeq;
      const second = await k.insmod(await ko("second", plainUser("second", "MIT"), { kernel: version }));
      expect(k.log.messages(seq2)).toEqual(["second: up"]);
      // Quiet, but the second module is proprietary all the same.
      expect(second.taints).toBe(1 | (1 << 12));
      expect(k.read("/proc/modules")).toMatch(/^second \d+ 0 - Live 0x[0-9a-f]{16} \(PO\)\nfirst \d+ 0 - Live 0x[0-9a-f]{16} \(PO\)\n$/);
      expect(k.tainted()).toBe(tainted("PO"));
      expect(k.log.messages(seq).filter((m) => m === DISABLING)).toHaveLength(1);
    });
  }

  it("P set from user space first (lockdep still OK): no license line, but the module's P turns lockdep off", async () => {
    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    k.write("/proc/sys/kernel/tainted", "1");
    expect(k.log.messages(seq)).toEqual([]);
    expect(k.tainted()).toBe(tainted("P"));
    await k.insmod(await ko("late", plainUser("late", "Proprietary"), { kernel: "5.0", intree: true }));
    expect(k.log.messages(seq)).toEqual([DISABLING, "late: up"]);
    expect(k.read("/proc/modules")).toMatch(/\(P\)\n$/);
  });
});

describe("name overrides (T5): by mod->name, exact", () => {
  for (const version of VERSIONS) {
    it(`${version}: ndiswrapper taints the kernel P but not itself, and keeps its GPL-only symbols`, async () => {
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      const mod = await k.insmod(await ko("ndiswrapper", gplUser("ndiswrapper", "GPL"), { kernel: version }));
      expect(k.log.messages(seq)).toEqual([
        "ndiswrapper: loading out-of-tree module taints kernel.",
        // add_taint() prints before the override's own line.
        DISABLING,
        "ndiswrapper: module license taints kernel.",
        "ndiswrapper: get_dev_pagemap(0x1000) = NULL",
      ]);
      expect(mod.taints).toBe(1 << 12);
      expect(k.read("/proc/modules")).toMatch(/^ndiswrapper \d+ 0 - Live 0x[0-9a-f]{16} \(O\)\n$/);
      expect(k.tainted()).toBe(tainted("PO"));
      expect(k.read("/proc/sys/kernel/tainted")).toBe("4097\n");
    });
  }

  for (const name of ["driverloader", "lve"]) {
    it(`${name} declaring "GPL" gets P on itself and loses the GPL-only symbols`, async () => {
      const k = await boot({ version: "5.0" });
      const seq = k.log.nextSeq;
      const err = await insmodError(k, await ko(name, gplUser(name, "GPL"), { kernel: "5.0" }));
      expect(err.errno).toBe(2);
      expect(err.message).toBe(UNKNOWN_SYMBOL);
      expect(k.log.messages(seq)).toEqual([
        `${name}: loading out-of-tree module taints kernel.`,
        DISABLING,
        `${name}: module license taints kernel.`,
        `${name}: Unknown symbol get_dev_pagemap (err -2)`,
      ]);
      expect(k.tainted()).toBe(tainted("PO"));
    });

    it(`${name} with plain symbols loads, shown (PO) in /proc/modules`, async () => {
      const k = await boot({ version: "4.19" });
      const mod = await k.insmod(await ko(name, plainUser(name, "GPL v2"), { kernel: "4.19" }));
      expect(mod.taints).toBe(1 | (1 << 12));
      expect(k.read("/proc/modules")).toMatch(new RegExp(`^${name} \\d+ 0 - Live 0x[0-9a-f]{16} \\(PO\\)\\n$`));
    });

    it(`${name} prints its line only when P is new: nothing more after a proprietary license`, async () => {
      const k = await boot({ version: "4.20" });
      const seq = k.log.nextSeq;
      await k.insmod(await ko(name, plainUser(name, "Proprietary"), { kernel: "4.20", intree: true }));
      expect(k.log.messages(seq)).toEqual([`${name}: module license 'Proprietary' taints kernel.`, DISABLING, `${name}: up`]);
    });
  }

  it("ndiswrapper after another proprietary module: P is not new, no line", async () => {
    const k = await boot({ version: "4.20" });
    await k.insmod(await ko("blob", plainUser("blob", "Proprietary"), { kernel: "4.20" }));
    const seq = k.log.nextSeq;
    await k.insmod(await ko("ndiswrapper", gplUser("ndiswrapper", "GPL"), { kernel: "4.20" }));
    expect(k.log.messages(seq)).toEqual(["ndiswrapper: get_dev_pagemap(0x1000) = NULL"]);
  });

  it("the match is an exact strcmp: ndiswrapper2, Lve and driverloader_ get nothing", async () => {
    const k = await boot({ version: "5.0" });
    for (const name of ["ndiswrapper2", "Lve", "driverloader_"]) {
      const seq = k.log.nextSeq;
      const mod = await k.insmod(await ko(name, gplUser(name, "GPL"), { kernel: "5.0", intree: true }));
      expect(k.log.messages(seq)).toEqual([`${name}: get_dev_pagemap(0x1000) = NULL`]);
      expect(mod.taints).toBe(0);
    }
    expect(k.tainted()).toBe("Not tainted");
  });

  it("the override follows mod->name (.gnu.linkonce.this_module), not the modinfo name= tag", async () => {
    const k = await boot({ version: "5.0" });
    const base = await ko("lve", plainUser("lve", "GPL"), { kernel: "5.0", intree: true });
    const file = setModinfo(base, "name", "notlve");
    const seq = k.log.nextSeq;
    const mod = await k.insmod(file);
    expect(k.log.messages(seq)).toEqual([DISABLING, "lve: module license taints kernel.", "lve: up"]);
    expect(mod.taints).toBe(1);
  });
});

describe("the series (H5): devm_memremap_pages", () => {
  /** Calls devm_memremap_pages() for real, with a pgmap that has no percpu_ref: every version refuses it with -EINVAL. */
  const MAPPER = (license: string) => `
import {
  MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, IS_ERR, PTR_ERR,
  hmm_device_new, hmm_device_put, devm_memremap_pages, IORESOURCE_MEM, type hmm_device,
} from "kemu/kernel";
MODULE_LICENSE(${JSON.stringify(license)});
let hdev: hmm_device | null = null;
module_init(() => {
  const h = hmm_device_new(null);
  if (IS_ERR(h)) return PTR_ERR(h);
  hdev = h;
  const r = devm_memremap_pages(h.device, { res: { start: 0x100000000000, end: 0x100007ffffff, flags: IORESOURCE_MEM } });
  printk(KERN_INFO + "mapper: devm_memremap_pages() = %d\\n", r);
  return 0;
});
module_exit(() => {
  if (hdev) hmm_device_put(hdev);
});
`;

  for (const version of VERSIONS) {
    it(`${version}: a GPL module using devm_memremap_pages loads`, async () => {
      const r = await buildSource("mapper", MAPPER("GPL"), { kernel: version });
      expect(r.symbols).toContain("devm_memremap_pages");
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      const mod = await k.insmod(r.ko);
      expect(k.log.messages(seq)).toEqual(["mapper: loading out-of-tree module taints kernel.", "mapper: devm_memremap_pages() = -22"]);
      expect(mod.taints).toBe(1 << 12);
      expect(k.tainted()).toBe(tainted("O"));
      k.rmmod("mapper");
    });
  }

  for (const version of ["4.19", "4.20"] as const) {
    it(`${version}: the same module as Proprietary loads too, tainting P (the "before" snapshot)`, async () => {
      const k = await boot({ version });
      const file = relicense(await ko("mapper", MAPPER("GPL"), { kernel: version }), "Proprietary");
      const seq = k.log.nextSeq;
      const mod = await k.insmod(file);
      expect(k.log.messages(seq)).toEqual([
        "mapper: loading out-of-tree module taints kernel.",
        "mapper: module license 'Proprietary' taints kernel.",
        DISABLING,
        "mapper: devm_memremap_pages() = -22",
      ]);
      expect(k.read("/proc/modules")).toMatch(/ \(PO\)\n$/);
      expect(mod.taints).toBe(1 | (1 << 12));
    });
  }

  it("5.0: as Proprietary it is refused, Unknown symbol devm_memremap_pages (err -2), and modpost names the reason", async () => {
    const build = (await buildSource("mapper", MAPPER("Proprietary"), { kernel: "5.0" }).catch((e: unknown) => e)) as { errors?: string[] };
    expect(build.errors).toEqual(["FATAL: modpost: GPL-incompatible module mapper.ko uses GPL-only symbol 'devm_memremap_pages'"]);
    const k = await boot({ version: "5.0" });
    const file = relicense(await ko("mapper", MAPPER("GPL"), { kernel: "5.0" }), "Proprietary");
    const seq = k.log.nextSeq;
    const err = await insmodError(k, file);
    expect(err.errno).toBe(2);
    expect(err.message).toBe(UNKNOWN_SYMBOL);
    expect(k.log.messages(seq)).toEqual([
      "mapper: loading out-of-tree module taints kernel.",
      "mapper: module license 'Proprietary' taints kernel.",
      DISABLING,
      "mapper: Unknown symbol devm_memremap_pages (err -2)",
    ]);
    expect(k.tainted()).toBe(tainted("PO"));
    expect(k.read("/proc/modules")).toBe("");
  });
});
