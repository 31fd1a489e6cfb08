// Load-time module taints and where they show (spec module-loader §4 T3/T4/T6, §8 F1-F4, §9 B5),
// as kernel/module.c of 4.19-5.0 has them. load_module() runs check_modstruct_version()
// (module_layout, B5), then check_modinfo() from layout_and_allocate(): vermagic or
// try_to_force_load("bad vermagic"), O, check_modinfo_retpoline(), C, livepatch, set_license();
// then, with the module on the list, E (MODULE_SIG), check_module_license_and_versions()
// (name overrides, "no versions for exported symbols") and only then simplify_symbols(). So
// every taint is in place before a symbol is looked up, and none is ever taken back.
//
// try_to_force_load() (CONFIG_MODULE_FORCE_LOAD) prints "%s: %s: kernel tainted." while F is
// clear and taints F (lockdep now unreliable); without the option it returns -ENOEXEC silently.
// check_modinfo_retpoline(): retpoline_module_ok() (arch/x86/kernel/cpu/bugs.c) prints
// "Spectre V2 : System may be vulnerable to spectre v2" (pr_err) before returning false, then
// "%s: loading module not compiled with retpoline compiler." (pr_warn); no taint, every time.

import { describe, expect, it } from "vitest";
import { get_modinfo, parseKo } from "../../core/module/ko.ts";
import { ko, rewriteKo, setModinfo, withModinfo } from "../helpers/build.ts";
import { boot, insmodError, tainted } from "../helpers/kernel.ts";

const DISABLING = "Disabling lock debugging due to kernel taint";
const VERSIONS = ["4.19", "4.20", "5.0"] as const;
const TAINTED = "/proc/sys/kernel/tainted";
const INVALID_FORMAT = "insmod: ERROR: could not insert module module.ko: Invalid module format";
const RELEASE = { "4.19": "4.19.0", "4.20": "4.20.0", "5.0": "5.0.0" } as const;

const P = 1 << 0;
const F = 1 << 1;
const C = 1 << 10;
const O = 1 << 12;
const E = 1 << 13;

/** A module whose init prints "<name>: up" and returns `ret`; `extra` goes at the top level. */
function source(name: string, license: string, ret = "0", extra = ""): string {
  return `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, get_dev_pagemap } from "kemu/kernel";
MODULE_LICENSE(${JSON.stringify(license)});
${extra}
module_init(() => {
  printk(KERN_INFO + "${name}: up\\n");
  return ${ret};
});
module_exit(() => {});
`;
}

/** Uses get_dev_pagemap() (EXPORT_SYMBOL_GPL): a proprietary copy fails on it. */
const GPL_ONLY_USE = "export function probe_pfn(pfn: number) { return get_dev_pagemap(pfn, null); }";

const staging = (b: Uint8Array) => withModinfo(b, (e) => [...e, "staging=Y"]);
const noRetpoline = (b: Uint8Array) => withModinfo(b, (e) => e.filter((x) => !x.startsWith("retpoline=")));
const noVermagic = (b: Uint8Array) => withModinfo(b, (e) => e.filter((x) => !x.startsWith("vermagic=")));
const vermagic = (b: Uint8Array, v: string) => setModinfo(b, "vermagic", v);
const relicense = (b: Uint8Array, l: string) => setModinfo(b, "license", l);

describe("out-of-tree (T3)", () => {
  for (const version of VERSIONS) {
    it(`${version}: the line once per boot, O on every out-of-tree module, none on an in-tree one`, async () => {
      const k = await boot({ version });
      let seq = k.log.nextSeq;
      const intree = await k.insmod(await ko("intree", source("intree", "GPL"), { kernel: version, intree: true }));
      expect(k.log.messages(seq)).toEqual(["intree: up"]);
      expect(intree.taints).toBe(0);
      expect(k.tainted()).toBe("Not tainted");

      seq = k.log.nextSeq;
      const a = await k.insmod(await ko("oota", source("oota", "GPL"), { kernel: version }));
      expect(k.log.messages(seq)).toEqual(["oota: loading out-of-tree module taints kernel.", "oota: up"]);
      seq = k.log.nextSeq;
      const b = await k.insmod(await ko("ootb", source("ootb", "GPL v2"), { kernel: version }));
      expect(k.log.messages(seq)).toEqual(["ootb: up"]);
      expect([a.taints, b.taints]).toEqual([O, O]);
      expect(k.tainted()).toBe(tainted("O"));
      expect(k.tainted()).toBe("Tainted: G           O     ");
      expect(k.read(TAINTED)).toBe("4096\n");
      expect(k.read("/proc/modules")).toMatch(
        /^ootb \d+ 0 - Live 0x[0-9a-f]{16} \(O\)\noota \d+ 0 - Live 0x[0-9a-f]{16} \(O\)\nintree \d+ 0 - Live 0x[0-9a-f]{16}\n$/,
      );
      // An in-tree module loaded after them still has no flags of its own.
      await k.insmod(await ko("intree2", source("intree2", "GPL"), { kernel: version, intree: true }));
      expect(k.read("/proc/modules")).toMatch(/^intree2 \d+ 0 - Live 0x[0-9a-f]{16}\n/);
    });
  }
});

describe("staging (T4 C)", () => {
  it("the staging tag taints C and warns on every load, after O and before the license", async () => {
    const k = await boot({ version: "4.19" });
    const first = staging(await ko("stg_a", source("stg_a", "Proprietary"), { kernel: "4.19" }));
    expect(get_modinfo(parseKo(first).modinfo, "staging")).toBe("Y");
    let seq = k.log.nextSeq;
    const a = await k.insmod(first);
    expect(k.log.messages(seq)).toEqual([
      "stg_a: loading out-of-tree module taints kernel.",
      "stg_a: module is from the staging directory, the quality is unknown, you have been warned.",
      "stg_a: module license 'Proprietary' taints kernel.",
      DISABLING,
      "stg_a: up",
    ]);
    seq = k.log.nextSeq;
    const b = await k.insmod(staging(await ko("stg_b", source("stg_b", "GPL"), { kernel: "4.19", intree: true })));
    expect(k.log.messages(seq)).toEqual(["stg_b: module is from the staging directory, the quality is unknown, you have been warned.", "stg_b: up"]);
    expect([a.taints, b.taints]).toEqual([P | C | O, C]);
    expect(k.read("/proc/modules")).toMatch(/^stg_b \d+ 0 - Live 0x[0-9a-f]{16} \(C\)\nstg_a \d+ 0 - Live 0x[0-9a-f]{16} \(PCO\)\n$/);
    expect(k.tainted()).toBe("Tainted: P         C O     ");
    expect(k.read(TAINTED)).toBe(String(P | C | O) + "\n");
  });

  for (const version of VERSIONS) {
    it(`${version}: an in-tree staging module alone: "Tainted: G         C       "`, async () => {
      const k = await boot({ version });
      await k.insmod(staging(await ko("stg", source("stg", "GPL"), { kernel: version, intree: true })));
      expect(k.tainted()).toBe("Tainted: G         C       ");
      expect(k.read(TAINTED)).toBe("1024\n");
    });
  }
});

describe("vermagic and forced loads (T4 F)", () => {
  for (const version of VERSIONS) {
    it(`${version}: no vermagic without CONFIG_MODULE_FORCE_LOAD: -ENOEXEC, silently, before any taint`, async () => {
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      const err = await insmodError(k, noVermagic(await ko("nomagic", source("nomagic", "Proprietary"), { kernel: version })));
      expect(err.errno).toBe(8);
      expect(err.message).toBe(INVALID_FORMAT);
      expect(k.log.messages(seq)).toEqual([]);
      expect(k.tainted()).toBe("Not tainted");
    });

    it(`${version}: no vermagic with CONFIG_MODULE_FORCE_LOAD: "bad vermagic: kernel tainted." once, F on each module`, async () => {
      const k = await boot({ version, kconfig: { MODULE_FORCE_LOAD: true } });
      let seq = k.log.nextSeq;
      const a = await k.insmod(noVermagic(await ko("forced_a", source("forced_a", "GPL"), { kernel: version })));
      expect(k.log.messages(seq)).toEqual([
        "forced_a: bad vermagic: kernel tainted.",
        DISABLING,
        "forced_a: loading out-of-tree module taints kernel.",
        "forced_a: up",
      ]);
      seq = k.log.nextSeq;
      const b = await k.insmod(noVermagic(await ko("forced_b", source("forced_b", "GPL"), { kernel: version, intree: true })));
      expect(k.log.messages(seq)).toEqual(["forced_b: up"]);
      expect([a.taints, b.taints]).toEqual([F | O, F]);
      expect(k.read("/proc/modules")).toMatch(/^forced_b \d+ 0 - Live 0x[0-9a-f]{16} \(F\)\nforced_a \d+ 0 - Live 0x[0-9a-f]{16} \(FO\)\n$/);
      expect(k.tainted()).toBe("Tainted: GF          O     ");
      expect(k.read(TAINTED)).toBe("4098\n");
    });

    it(`${version}: a wrong vermagic is always -ENOEXEC, with or without CONFIG_MODULE_FORCE_LOAD, and taints nothing`, async () => {
      for (const force of [false, true]) {
        const k = await boot({ version, kconfig: { MODULE_FORCE_LOAD: force } });
        const file = vermagic(await ko("badmagic", source("badmagic", "Proprietary"), { kernel: version }), `${RELEASE[version]}-custom SMP mod_unload `);
        const seq = k.log.nextSeq;
        const err = await insmodError(k, file);
        expect(err.errno).toBe(8);
        expect(err.message).toBe(INVALID_FORMAT);
        expect(k.log.messages(seq)).toEqual([
          `badmagic: version magic '${RELEASE[version]}-custom SMP mod_unload ' should be '${RELEASE[version]} SMP mod_unload '`,
        ]);
        expect(k.tainted()).toBe("Not tainted");
      }
    });
  }

  it("a module built for another release is refused by its vermagic (no CRCs: the whole string is compared)", async () => {
    const k = await boot({ version: "4.20" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("old", source("old", "GPL"), { kernel: "4.19" }));
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq)).toEqual(["old: version magic '4.19.0 SMP mod_unload ' should be '4.20.0 SMP mod_unload '"]);
  });

  it("the version magic line names the module by its .modinfo name= (info->name)", async () => {
    const k = await boot({ version: "5.0" });
    const base = await ko("vmx", source("vmx", "GPL"), { kernel: "4.20" });
    const file = setModinfo(base, "name", "vmx_info");
    const seq = k.log.nextSeq;
    await insmodError(k, file);
    expect(k.log.messages(seq)).toEqual(["vmx_info: version magic '4.20.0 SMP mod_unload ' should be '5.0.0 SMP mod_unload '"]);
  });

  it("MODULE_INIT_IGNORE_VERMAGIC (modprobe --force): -ENOEXEC without CONFIG_MODULE_FORCE_LOAD, silently", async () => {
    const k = await boot({ version: "4.19" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("ign", source("ign", "GPL"), { kernel: "4.19" }), { flags: 2 });
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq)).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("MODULE_INIT_IGNORE_VERMAGIC with CONFIG_MODULE_FORCE_LOAD: a wrong or a right vermagic is ignored, F", async () => {
    const k = await boot({ version: "4.19", kconfig: { MODULE_FORCE_LOAD: true } });
    const wrong = vermagic(await ko("ign_a", source("ign_a", "GPL"), { kernel: "4.19" }), "3.10.0 SMP mod_unload modversions ");
    let seq = k.log.nextSeq;
    const a = await k.insmod(wrong, { flags: 2 });
    expect(k.log.messages(seq)).toEqual(["ign_a: bad vermagic: kernel tainted.", DISABLING, "ign_a: loading out-of-tree module taints kernel.", "ign_a: up"]);
    seq = k.log.nextSeq;
    const b = await k.insmod(await ko("ign_b", source("ign_b", "GPL"), { kernel: "4.19", intree: true }), { flags: 2 });
    expect(k.log.messages(seq)).toEqual(["ign_b: up"]);
    expect([a.taints, b.taints]).toEqual([F | O, F]);
  });

  it("F set from user space first: no bad vermagic line, but the module's F turns lockdep off", async () => {
    const k = await boot({ version: "5.0", kconfig: { MODULE_FORCE_LOAD: true } });
    const seq = k.log.nextSeq;
    k.write(TAINTED, "2");
    expect(k.log.messages(seq)).toEqual([]);
    const mod = await k.insmod(noVermagic(await ko("late", source("late", "GPL"), { kernel: "5.0", intree: true })));
    expect(k.log.messages(seq)).toEqual([DISABLING, "late: up"]);
    expect(mod.taints).toBe(F);
  });
});

describe("retpoline (check_modinfo_retpoline)", () => {
  for (const version of VERSIONS) {
    it(`${version}: no retpoline tag: the spectre v2 line and the module's line on every load, no taint`, async () => {
      const k = await boot({ version });
      const first = noRetpoline(await ko("noretp", source("noretp", "GPL"), { kernel: version }));
      expect(get_modinfo(parseKo(first).modinfo, "retpoline")).toBeUndefined();
      let seq = k.log.nextSeq;
      const a = await k.insmod(first);
      expect(k.log.messages(seq)).toEqual([
        "noretp: loading out-of-tree module taints kernel.",
        "Spectre V2 : System may be vulnerable to spectre v2",
        "noretp: loading module not compiled with retpoline compiler.",
        "noretp: up",
      ]);
      seq = k.log.nextSeq;
      const b = await k.insmod(noRetpoline(await ko("noretp2", source("noretp2", "GPL"), { kernel: version, intree: true })));
      expect(k.log.messages(seq)).toEqual([
        "Spectre V2 : System may be vulnerable to spectre v2",
        "noretp2: loading module not compiled with retpoline compiler.",
        "noretp2: up",
      ]);
      expect([a.taints, b.taints]).toEqual([O, 0]);
      expect(k.tainted()).toBe(tainted("O"));
    });
  }

  it("the kemu builder marks every module retpoline=Y, so a normal build prints neither line", async () => {
    const file = await ko("retp", source("retp", "GPL"), { kernel: "5.0", intree: true });
    expect(get_modinfo(parseKo(file).modinfo, "retpoline")).toBe("Y");
    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    await k.insmod(file);
    expect(k.log.messages(seq)).toEqual(["retp: up"]);
  });
});

describe("taints are sticky (T6) and come before symbol resolution", () => {
  for (const version of VERSIONS) {
    it(`${version}: a load that fails on its symbols keeps every taint it applied`, async () => {
      const k = await boot({ version });
      const file = staging(relicense(await ko("badsym", source("badsym", "GPL", "0", GPL_ONLY_USE), { kernel: version }), "Proprietary"));
      const seq = k.log.nextSeq;
      const err = await insmodError(k, file);
      expect(err.errno).toBe(2);
      expect(k.log.messages(seq)).toEqual([
        "badsym: loading out-of-tree module taints kernel.",
        "badsym: module is from the staging directory, the quality is unknown, you have been warned.",
        "badsym: module license 'Proprietary' taints kernel.",
        DISABLING,
        "badsym: Unknown symbol get_dev_pagemap (err -2)",
      ]);
      expect(k.read("/proc/modules")).toBe("");
      expect(k.tainted()).toBe("Tainted: P         C O     ");
      expect(k.read(TAINTED)).toBe(String(P | C | O) + "\n");
    });
  }

  it("an init that fails keeps them too; so does rmmod of a module that loaded", async () => {
    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("nodev", source("nodev", "Proprietary", "-19"), { kernel: "5.0" }));
    expect(err.errno).toBe(19);
    expect(err.message).toBe("insmod: ERROR: could not insert module module.ko: No such device");
    expect(k.log.messages(seq)).toEqual(["nodev: loading out-of-tree module taints kernel.", "nodev: module license 'Proprietary' taints kernel.", DISABLING, "nodev: up"]);
    expect(k.tainted()).toBe(tainted("PO"));

    await k.insmod(staging(await ko("gone", source("gone", "GPL"), { kernel: "5.0", intree: true })));
    expect(k.tainted()).toBe(tainted("PCO"));
    k.rmmod("gone");
    expect(k.read("/proc/modules")).toBe("");
    expect(k.tainted()).toBe(tainted("PCO"));
    expect(k.read(TAINTED)).toBe(String(P | C | O) + "\n");
  });
});

describe("where taints show (F1-F4)", () => {
  it("an unsigned proprietary out-of-tree module on a MODULE_SIG kernel: (POE), E's line once per boot", async () => {
    const k = await boot({ version: "4.20", kconfig: { MODULE_SIG: true } });
    let seq = k.log.nextSeq;
    const a = await k.insmod(await ko("blob", source("blob", "Proprietary"), { kernel: "4.20" }));
    expect(k.log.messages(seq)).toEqual([
      "blob: loading out-of-tree module taints kernel.",
      "blob: module license 'Proprietary' taints kernel.",
      DISABLING,
      "blob: module verification failed: signature and/or required key missing - tainting kernel",
      "blob: up",
    ]);
    seq = k.log.nextSeq;
    const b = await k.insmod(await ko("clean", source("clean", "GPL"), { kernel: "4.20", intree: true }));
    expect(k.log.messages(seq)).toEqual(["clean: up"]);
    expect([a.taints, b.taints]).toEqual([P | O | E, E]);
    expect(k.read("/proc/modules")).toMatch(/^clean \d+ 0 - Live 0x[0-9a-f]{16} \(E\)\nblob \d+ 0 - Live 0x[0-9a-f]{16} \(POE\)\n$/);
    expect(k.tainted()).toBe("Tainted: P           OE    ");
    expect(k.read(TAINTED)).toBe(String(P | O | E) + "\n");
  });

  for (const version of VERSIONS) {
    it(`${version}: /proc/sys/kernel/tainted reads the decimal mask; writes OR bits in, print nothing, clear nothing`, async () => {
      const k = await boot({ version });
      await k.insmod(await ko("blob", source("blob", "Proprietary"), { kernel: version }));
      expect(k.read(TAINTED)).toBe("4097\n");
      const seq = k.log.nextSeq;
      k.write(TAINTED, "0");
      expect(k.read(TAINTED)).toBe("4097\n");
      k.write(TAINTED, "4096");
      expect(k.read(TAINTED)).toBe("4097\n");
      k.write(TAINTED, "64");
      expect(k.read(TAINTED)).toBe("4161\n");
      expect(k.tainted()).toBe("Tainted: P     U     O     ");
      expect(k.log.messages(seq)).toEqual([]);
      // Kernel-wide bits are not module bits: the module's own flags are unchanged.
      expect(k.read("/proc/modules")).toMatch(/ \(PO\)\n$/);
      // All 18 columns; proc_taint() of 4.19-5.0 walks BITS_PER_LONG, so bit 18 is kept, unshown.
      k.write(TAINTED, String((1 << 19) - 1));
      expect(k.tainted()).toBe("Tainted: PFSRMBUDAWCIOELKXT");
      expect(k.read(TAINTED)).toBe(`${(1 << 19) - 1}\n`);
      expect(k.log.messages(seq)).toEqual([]);
    });
  }

  it("a mask with only bits past the table prints 'Tainted: G' and 17 blanks, not 'Not tainted'", async () => {
    const k = await boot({ version: "4.19" });
    k.write(TAINTED, String(1 << 20));
    expect(k.read(TAINTED)).toBe("1048576\n");
    expect(k.tainted()).toBe("Tainted: G                 ");
  });
});

describe("modversions force paths (B5)", () => {
  const EXPORTER = (name: string) => source(name, "GPL", "0", `export function ${name}_get(n: number) { return n; }\nEXPORT_SYMBOL(${name}_get);`).replace(
    "module_exit, printk,",
    "module_exit, EXPORT_SYMBOL, printk,",
  );

  for (const version of VERSIONS) {
    it(`${version}: a module whose __versions is stripped: -ENOEXEC, or with FORCE_LOAD "module_layout: kernel tainted."`, async () => {
      const file = rewriteKo(await ko("nover", source("nover", "GPL"), { kernel: version, modversions: true }), (img) => {
        img.versions = null;
      });
      expect(get_modinfo(parseKo(file).modinfo, "vermagic")).toBe(`${RELEASE[version]} SMP mod_unload modversions `);
      const strict = await boot({ version, kconfig: { MODVERSIONS: true } });
      let seq = strict.log.nextSeq;
      const err = await insmodError(strict, file);
      expect(err.errno).toBe(8);
      expect(strict.log.messages(seq)).toEqual([]);
      expect(strict.tainted()).toBe("Not tainted");

      const k = await boot({ version, kconfig: { MODVERSIONS: true, MODULE_FORCE_LOAD: true } });
      seq = k.log.nextSeq;
      const mod = await k.insmod(file);
      expect(k.log.messages(seq)).toEqual(["nover: module_layout: kernel tainted.", DISABLING, "nover: loading out-of-tree module taints kernel.", "nover: up"]);
      expect(mod.taints).toBe(F | O);
      expect(k.read("/proc/modules")).toMatch(/ \(FO\)\n$/);
    });
  }

  it("built without modversions for a MODVERSIONS kernel: module_layout is forced first (F stays), then the vermagic refuses it", async () => {
    const k = await boot({ version: "5.0", kconfig: { MODVERSIONS: true, MODULE_FORCE_LOAD: true } });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("plain", source("plain", "GPL"), { kernel: "5.0" }));
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq)).toEqual([
      "plain: module_layout: kernel tainted.",
      DISABLING,
      "plain: version magic '5.0.0 SMP mod_unload ' should be '5.0.0 SMP mod_unload modversions '",
    ]);
    expect(k.tainted()).toBe(tainted("F"));
    expect(k.read("/proc/modules")).toBe("");
  });

  it("with CRCs the release part of the vermagic is not compared (same_magic), the rest is", async () => {
    const k = await boot({ version: "5.0", kconfig: { MODVERSIONS: true } });
    const base = await ko("crcs", source("crcs", "GPL"), { kernel: "5.0", modversions: true });
    const seq = k.log.nextSeq;
    const mod = await k.insmod(vermagic(base, "5.0.0-rc8-custom SMP mod_unload modversions "));
    expect(k.log.messages(seq)).toEqual(["crcs: loading out-of-tree module taints kernel.", "crcs: up"]);
    expect(mod.taints).toBe(O);
    k.rmmod("crcs");
    const seq2 = k.log.nextSeq;
    const err = await insmodError(k, vermagic(base, "5.0.0 SMP preempt mod_unload modversions "));
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq2)).toEqual(["crcs: version magic '5.0.0 SMP preempt mod_unload modversions ' should be '5.0.0 SMP mod_unload modversions '"]);
  });

  for (const version of VERSIONS) {
    it(`${version}: MODULE_INIT_IGNORE_MODVERSIONS pretends there is no __versions: the module_layout force path`, async () => {
      const file = await ko("ignver", source("ignver", "GPL"), { kernel: version, modversions: true });
      const strict = await boot({ version, kconfig: { MODVERSIONS: true } });
      let seq = strict.log.nextSeq;
      const err = await insmodError(strict, file, { flags: 1 });
      expect(err.errno).toBe(8);
      expect(err.message).toBe(INVALID_FORMAT);
      expect(strict.log.messages(seq)).toEqual([]);

      const k = await boot({ version, kconfig: { MODVERSIONS: true, MODULE_FORCE_LOAD: true } });
      seq = k.log.nextSeq;
      const mod = await k.insmod(file, { flags: 1 });
      expect(k.log.messages(seq)).toEqual(["ignver: module_layout: kernel tainted.", DISABLING, "ignver: loading out-of-tree module taints kernel.", "ignver: up"]);
      expect(mod.taints).toBe(F | O);
    });
  }

  it("exports without CRCs: O is applied, then -ENOEXEC without FORCE_LOAD and O stays", async () => {
    const k = await boot({ version: "4.19", kconfig: { MODVERSIONS: true } });
    const file = rewriteKo(await ko("nocrc", EXPORTER("nocrc"), { kernel: "4.19", modversions: true }), (img) => {
      expect(img.exports.map((e) => e.name)).toEqual(["nocrc_get"]);
      for (const e of img.exports) e.crc = null;
    });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, file);
    expect(err.errno).toBe(8);
    expect(k.log.messages(seq)).toEqual(["nocrc: loading out-of-tree module taints kernel."]);
    expect(k.tainted()).toBe(tainted("O"));
    expect(k.read("/proc/modules")).toBe("");
  });

  it("exports without CRCs with FORCE_LOAD: \"no versions for exported symbols: kernel tainted.\" after the license checks", async () => {
    const k = await boot({ version: "4.19", kconfig: { MODVERSIONS: true, MODULE_FORCE_LOAD: true } });
    const file = rewriteKo(await ko("nocrc", EXPORTER("nocrc"), { kernel: "4.19", modversions: true }), (img) => {
      for (const e of img.exports) e.crc = null;
    });
    const seq = k.log.nextSeq;
    const mod = await k.insmod(relicense(file, "Proprietary"));
    expect(k.log.messages(seq)).toEqual([
      "nocrc: loading out-of-tree module taints kernel.",
      "nocrc: module license 'Proprietary' taints kernel.",
      DISABLING,
      "nocrc: no versions for exported symbols: kernel tainted.",
      "nocrc: up",
    ]);
    expect(mod.taints).toBe(P | F | O);
    expect(k.read("/proc/modules")).toMatch(/^nocrc \d+ 0 - Live 0x[0-9a-f]{16} \(PFO\)\n$/);
    expect(k.tainted()).toBe("Tainted: PF          O     ");
  });
});
