// Modules that use other modules (spec module-loader §1 E6, §5 P4, §6 R1-R4, §7 U2; DESIGN
// "Driver source" EXPORT_SYMBOL): exports resolved through "kemu/extern" with the exporter's
// Module.symvers, use links and "Used by", the GPL-only rule between modules, duplicate
// exports, symbol_get()/symbol_put(). Checked against kernel/module.c of 4.19/4.20/5.0
// (resolve_symbol, ref_module, find_symbol/check_symbol, verify_export_symbols,
// __symbol_get, __symbol_put, module_unload_free, print_unload_info) and scripts/mod/modpost.c.

import { describe, expect, it } from "vitest";
import { ENOENT, ENOEXEC, EWOULDBLOCK, EINVAL, KernelError } from "../../core/errno.ts";
import { get_modinfo } from "../../core/module/ko.ts";
import { O_NONBLOCK, O_TRUNC } from "../../core/module/loader.ts";
import type { KernelVersion } from "../../core/version.ts";
import { buildSource, ko, rewriteKo } from "../helpers/build.ts";
import { boot, insmodError, lsmodLine, procModules, rmmodError, tainted } from "../helpers/kernel.ts";

const VERSIONS: KernelVersion[] = ["4.19", "4.20", "5.0"];

/** The exporter: one plain export, one GPL-only export. */
const ALPHA = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
k.MODULE_DESCRIPTION("exports a plain and a GPL-only function");
export function alpha_add(a: number, b: number): number { return a + b; }
export function alpha_tag(s: string, o: { n: number; list: number[] }): { tag: string; n: number; sum: number } {
  return { tag: "alpha:" + s, n: o.n + 1, sum: o.list.reduce((x, y) => x + y, 0) };
}
k.EXPORT_SYMBOL(alpha_add);
k.EXPORT_SYMBOL_GPL(alpha_tag);
k.module_init(() => 0);
k.module_exit(() => {});
`;

/** A GPL user of both exports. */
function user(name: string, license = "GPL", init = "return 0;"): string {
  return `
import * as k from "kemu/kernel";
import { alpha_add, alpha_tag } from "kemu/extern";
k.MODULE_LICENSE(${JSON.stringify(license)});
k.module_init(() => {
  const r = alpha_tag("${name}", { n: 41, list: [1, 2, 3] });
  k.printk(k.KERN_INFO + "${name}: %d %s %d %d\\n", alpha_add(40, 2), r.tag, r.n, r.sum);
  ${init}
});
k.module_exit(() => {});
`;
}

/** A user of the plain export only. */
function plainUser(name: string, license: string): string {
  return `
import * as k from "kemu/kernel";
import { alpha_add } from "kemu/extern";
k.MODULE_LICENSE(${JSON.stringify(license)});
k.module_init(() => { k.printk(k.KERN_INFO + "${name}: %d\\n", alpha_add(1, 2)); return 0; });
k.module_exit(() => {});
`;
}

describe("a module using another module's exports (R1, U2)", () => {
  for (const version of VERSIONS) {
    it(`${version}: values round-trip; "Used by", depends=, rmmod refused until the user is gone`, async () => {
      const k = await boot({ version, kconfig: { MODULE_FORCE_UNLOAD: true } });
      const sv = (await buildSource("alpha", ALPHA, { kernel: version })).symvers;
      expect(sv).toBe("0x00000000\talpha_add\talpha\tEXPORT_SYMBOL\n0x00000000\talpha_tag\talpha\tEXPORT_SYMBOL_GPL\n");
      const beta = await buildSource("beta", user("beta"), { kernel: version, symvers: [sv] });
      // modpost records the owner of each module symbol in depends=.
      expect(get_modinfo(beta.image.modinfo, "depends")).toBe("alpha");
      expect(get_modinfo((await buildSource("alpha", ALPHA, { kernel: version })).image.modinfo, "depends")).toBe("");

      await k.insmod(await ko("alpha", ALPHA, { kernel: version }));
      const seq = k.log.nextSeq;
      await k.insmod(beta.ko);
      expect(k.log.messages(seq)).toEqual(["beta: 42 alpha:beta 42 6"]);
      // One use link for both symbols (ref_module() reuses it): alpha's refcnt is 1.
      expect(procModules(k)).toBe("beta SIZE 0 - Live ADDR (O)\nalpha SIZE 1 beta, Live ADDR (O)\n");
      expect(k.lsmod()).toBe(`Module                  Size  Used by\n${lsmodLine(k, "beta", 0)}\n${lsmodLine(k, "alpha", 1, "beta")}\n`);

      expect(k.modules.delete_module("alpha", O_NONBLOCK)).toBe(-EWOULDBLOCK);
      expect(k.modules.delete_module("alpha", O_NONBLOCK | O_TRUNC)).toBe(-EWOULDBLOCK);
      expect(rmmodError(k, "alpha")!.message).toBe("rmmod: ERROR: Module alpha is in use by: beta");
      const forced = rmmodError(k, "alpha", true)!;
      expect(forced.errno).toBe(EWOULDBLOCK);
      expect(forced.message).toBe("rmmod: ERROR: could not remove module alpha: Resource temporarily unavailable");
      expect(k.tainted()).toBe(tainted("O"));

      k.rmmod("beta");
      expect(procModules(k)).toBe("alpha SIZE 0 - Live ADDR (O)\n");
      k.rmmod("alpha");
      expect(procModules(k)).toBe("");
      expect(k.log.messages(seq)).toEqual(["beta: 42 alpha:beta 42 6"]);
    });
  }

  it("without the exporter's Module.symvers modpost stops: every module symbol is undefined", async () => {
    const err = await buildSource("beta", user("beta"), { kernel: "4.20" }).catch((e: unknown) => e);
    expect((err as { errors: string[] }).errors).toEqual(['ERROR: "alpha_add" [beta.ko] undefined!', 'ERROR: "alpha_tag" [beta.ko] undefined!']);
  });

  it("several users: print_unload_info() lists them newest first (list_add() at the head of source_list)", async () => {
    const k = await boot({ version: "4.20" });
    const sv = (await buildSource("alpha", ALPHA, { kernel: "4.20" })).symvers;
    await k.insmod(await ko("alpha", ALPHA, { kernel: "4.20" }));
    await k.insmod(await ko("beta", user("beta"), { kernel: "4.20", symvers: [sv] }));
    await k.insmod(await ko("gamma", user("gamma"), { kernel: "4.20", symvers: [sv] }));
    expect(procModules(k)).toBe(
      "gamma SIZE 0 - Live ADDR (O)\nbeta SIZE 0 - Live ADDR (O)\nalpha SIZE 2 gamma,beta, Live ADDR (O)\n",
    );
    k.rmmod("beta");
    expect(procModules(k)).toBe("gamma SIZE 0 - Live ADDR (O)\nalpha SIZE 1 gamma, Live ADDR (O)\n");
  });

  it("an exporter still being formed (UNFORMED) is skipped: its exports are not found yet", async () => {
    const k = await boot({ version: "4.20" });
    const sv = (await buildSource("alpha", ALPHA, { kernel: "4.20" })).symvers;
    const alpha = await ko("alpha", ALPHA, { kernel: "4.20" });
    const beta = await ko("beta", user("beta"), { kernel: "4.20", symvers: [sv] });
    const seq = k.log.nextSeq;
    // alpha's insmod is linking (UNFORMED, on the list) when beta's resolves its symbols.
    const pa = k.insmod(alpha);
    expect(k.modules.list.map((m) => `${m.name} ${m.state}`)).toEqual(["alpha UNFORMED"]);
    const pb = k.insmod(beta);
    const [a, b] = await Promise.allSettled([pa, pb]);
    expect(a.status).toBe("fulfilled");
    expect(b.status === "rejected" && (b.reason as KernelError).errno).toBe(ENOENT);
    expect(k.log.messages(seq)).toEqual([
      "alpha: loading out-of-tree module taints kernel.",
      "beta: Unknown symbol alpha_add (err -2)",
      "beta: Unknown symbol alpha_tag (err -2)",
    ]);
    expect(procModules(k)).toBe("alpha SIZE 0 - Live ADDR (O)\n");
  });

  it("a load that fails after linking to the exporter (init < 0) leaves no use link and no reference", async () => {
    const k = await boot({ version: "5.0" });
    const sv = (await buildSource("alpha", ALPHA, { kernel: "5.0" })).symvers;
    await k.insmod(await ko("alpha", ALPHA, { kernel: "5.0" }));
    const e = await insmodError(k, await ko("beta", user("beta", "GPL", "return -k.EIO;"), { kernel: "5.0", symvers: [sv] }));
    expect(e.errno).toBe(5);
    expect(e.message).toBe("insmod: ERROR: could not insert module module.ko: Input/output error");
    expect(procModules(k)).toBe("alpha SIZE 0 - Live ADDR (O)\n");
    k.rmmod("alpha");
  });

  it("an exporter whose base reference is gone cannot be linked to: ref_module() fails with -ENOENT", async () => {
    // strong_try_module_get() -> try_module_get() fails once refcnt is 0.
    const k = await boot({ version: "4.20" });
    const sv = (await buildSource("alpha", ALPHA, { kernel: "4.20" })).symvers;
    const alpha = await k.insmod(await ko("alpha", ALPHA, { kernel: "4.20" }));
    k.modules.module_put(alpha);
    const seq = k.log.nextSeq;
    const e = await insmodError(k, await ko("beta", plainUser("beta", "GPL"), { kernel: "4.20", symvers: [sv] }));
    expect(e.errno).toBe(ENOENT);
    expect(k.log.messages(seq)).toEqual(["beta: Unknown symbol alpha_add (err -2)"]);
    k.modules.__module_get(alpha);
    expect(procModules(k)).toBe("alpha SIZE 0 - Live ADDR (O)\n");
  });
});

describe("GPL-only exports between modules (T2, R1, R5, P4)", () => {
  for (const version of VERSIONS) {
    it(`${version}: a proprietary module cannot see an EXPORT_SYMBOL_GPL export: Unknown symbol (err -2)`, async () => {
      const k = await boot({ version });
      const sv = (await buildSource("alpha", ALPHA, { kernel: version })).symvers;
      // modpost refuses it outright...
      const refused = await buildSource("pbeta", user("pbeta", "Proprietary"), { kernel: version, symvers: [sv] }).catch((x: unknown) => x);
      expect((refused as { errors: string[] }).errors).toEqual(["FATAL: modpost: GPL-incompatible module pbeta.ko uses GPL-only symbol 'alpha_tag'"]);
      // ...so it was built against an older alpha whose alpha_tag was a plain export.
      const stale = sv.replace("alpha_tag\talpha\tEXPORT_SYMBOL_GPL", "alpha_tag\talpha\tEXPORT_SYMBOL");
      const pbeta = await ko("pbeta", user("pbeta", "Proprietary"), { kernel: version, symvers: [stale] });

      await k.insmod(await ko("alpha", ALPHA, { kernel: version }));
      const seq = k.log.nextSeq;
      const e = await insmodError(k, pbeta);
      expect(e.errno).toBe(ENOENT);
      expect(e.message).toBe("insmod: ERROR: could not insert module module.ko: Unknown symbol in module");
      // alpha_add resolved (and linked), alpha_tag is hidden from a P-tainted module.
      expect(k.log.messages(seq)).toEqual([
        "pbeta: module license 'Proprietary' taints kernel.",
        "Disabling lock debugging due to kernel taint",
        "pbeta: Unknown symbol alpha_tag (err -2)",
      ]);
      // The link made for alpha_add went with the failed module.
      expect(procModules(k)).toBe("alpha SIZE 0 - Live ADDR (O)\n");
      expect(k.tainted()).toBe(tainted("PO"));

      // The plain export is fine for a proprietary module.
      await k.insmod(await ko("pok", plainUser("pok", "Proprietary"), { kernel: version, symvers: [sv] }));
      expect(procModules(k)).toBe("pok SIZE 0 - Live ADDR (PO)\nalpha SIZE 1 pok, Live ADDR (O)\n");
      k.rmmod("pok");
      k.rmmod("alpha");
    });
  }

  for (const version of VERSIONS) {
    it(`${version}: a GPL shim re-exporting GPL-only functionality with EXPORT_SYMBOL serves a proprietary module`, async () => {
      const SHIM = `
import * as k from "kemu/kernel";
import { alpha_tag } from "kemu/extern";
k.MODULE_LICENSE("GPL");
export function shim_tag(s: string): string { return alpha_tag(s, { n: 0, list: [] }).tag; }
k.EXPORT_SYMBOL(shim_tag);
k.module_init(() => 0);
k.module_exit(() => {});
`;
      const PROP = `
import * as k from "kemu/kernel";
import { shim_tag } from "kemu/extern";
k.MODULE_LICENSE("Proprietary");
k.module_init(() => { k.printk(k.KERN_INFO + "blob: %s\\n", shim_tag("via shim")); return 0; });
k.module_exit(() => {});
`;
      const k = await boot({ version });
      const alphaSv = (await buildSource("alpha", ALPHA, { kernel: version })).symvers;
      const shimSv = (await buildSource("shim", SHIM, { kernel: version, symvers: [alphaSv] })).symvers;
      expect(shimSv).toBe("0x00000000\tshim_tag\tshim\tEXPORT_SYMBOL\n");
      await k.insmod(await ko("alpha", ALPHA, { kernel: version }));
      await k.insmod(await ko("shim", SHIM, { kernel: version, symvers: [alphaSv] }));
      const seq = k.log.nextSeq;
      // 4.19-5.0 have no taint inheritance (5.9): nothing refuses it.
      await k.insmod(await ko("blob", PROP, { kernel: version, symvers: [shimSv] }));
      expect(k.log.messages(seq)).toEqual([
        "blob: module license 'Proprietary' taints kernel.",
        "Disabling lock debugging due to kernel taint",
        "blob: alpha:via shim",
      ]);
      expect(procModules(k)).toBe(
        "blob SIZE 0 - Live ADDR (PO)\nshim SIZE 1 blob, Live ADDR (O)\nalpha SIZE 1 shim, Live ADDR (O)\n",
      );
      expect(k.tainted()).toBe(tainted("PO"));
    });
  }
});

describe("symbols that do not resolve (R4)", () => {
  it("every missing symbol gets its own Unknown symbol line; the load fails with -ENOENT", async () => {
    const MISS = `
import * as k from "kemu/kernel";
import { ghost_one, ghost_two, ghost_three } from "kemu/extern";
k.MODULE_LICENSE("GPL");
k.module_init(() => ghost_one() + ghost_two() + ghost_three());
k.module_exit(() => {});
`;
    const r = await buildSource("miss", MISS, { kernel: "4.20", modpostWarn: true });
    expect(r.warnings).toEqual([
      'WARNING: "ghost_one" [miss.ko] undefined!',
      'WARNING: "ghost_two" [miss.ko] undefined!',
      'WARNING: "ghost_three" [miss.ko] undefined!',
    ]);
    const k = await boot({ version: "4.20" });
    const seq = k.log.nextSeq;
    const e = await insmodError(k, r.ko);
    expect(e.errno).toBe(ENOENT);
    expect(k.log.messages(seq)).toEqual([
      "miss: loading out-of-tree module taints kernel.",
      "miss: Unknown symbol ghost_one (err -2)",
      "miss: Unknown symbol ghost_two (err -2)",
      "miss: Unknown symbol ghost_three (err -2)",
    ]);
    expect(k.read("/proc/modules")).toBe("");
  });

  it("the last failing symbol's error is what init_module() returns (a CRC mismatch is -EINVAL)", async () => {
    const k = await boot({ version: "4.20", kconfig: { MODVERSIONS: true } });
    const sv = (await buildSource("alpha", ALPHA, { kernel: "4.20", modversions: true })).symvers;
    // A symvers whose CRC for alpha_add is not the one alpha was built with.
    const crc = /^(0x[0-9a-f]{8})\talpha_add\t/m.exec(sv)![1]!;
    const bad = sv.replace(`${crc}\talpha_add`, `0x${((parseInt(crc, 16) ^ 1) >>> 0).toString(16).padStart(8, "0")}\talpha_add`);
    expect(bad).not.toBe(sv);
    const src = (order: string) => `
import * as k from "kemu/kernel";
import { ${order} } from "kemu/extern";
k.MODULE_LICENSE("GPL");
k.module_init(() => ${order.split(", ").map((s) => `${s}(1, 1)`).join(" + ")} > 0 ? 0 : -k.EINVAL);
k.module_exit(() => {});
`;
    await k.insmod(await ko("alpha", ALPHA, { kernel: "4.20", modversions: true }));

    const last2 = await buildSource("crcmix", src("alpha_add, ghost_one"), { kernel: "4.20", modversions: true, modpostWarn: true, symvers: [bad] });
    expect(last2.image.undefinedSymbols.map((u) => u.name).slice(-2)).toEqual(["alpha_add", "ghost_one"]);
    let seq = k.log.nextSeq;
    let e = await insmodError(k, last2.ko);
    expect(k.log.messages(seq)).toEqual([
      "crcmix: disagrees about version of symbol alpha_add",
      "crcmix: Unknown symbol alpha_add (err -22)",
      "crcmix: Unknown symbol ghost_one (err -2)",
    ]);
    expect(e.errno).toBe(ENOENT);

    const last22 = await buildSource("crcmix", src("ghost_one, alpha_add"), { kernel: "4.20", modversions: true, modpostWarn: true, symvers: [bad] });
    expect(last22.image.undefinedSymbols.map((u) => u.name).slice(-2)).toEqual(["ghost_one", "alpha_add"]);
    seq = k.log.nextSeq;
    e = await insmodError(k, last22.ko);
    expect(k.log.messages(seq)).toEqual([
      "crcmix: Unknown symbol ghost_one (err -2)",
      "crcmix: disagrees about version of symbol alpha_add",
      "crcmix: Unknown symbol alpha_add (err -22)",
    ]);
    expect(e.errno).toBe(EINVAL);
    // kmod's insmod maps EINVAL to "Invalid parameters", misleading here.
    expect(e.message).toBe("insmod: ERROR: could not insert module module.ko: Invalid parameters");
    expect(procModules(k)).toBe("alpha SIZE 0 - Live ADDR (O)\n");
  });
});

describe("duplicate exports (E6): verify_export_symbols() in complete_formation()", () => {
  for (const version of VERSIONS) {
    it(`${version}: exporting a name vmlinux exports: "(owned by kernel)", -ENOEXEC; GPL-only kernel exports count too`, async () => {
      const k = await boot({ version });
      const DUPK = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
export function printk(fmt: string): number { return fmt.length; }
k.EXPORT_SYMBOL(printk);
k.module_init(() => 0);
k.module_exit(() => {});
`;
      let seq = k.log.nextSeq;
      const e = await insmodError(k, await ko("dupk", DUPK, { kernel: version }));
      expect(e.errno).toBe(ENOEXEC);
      expect(e.message).toBe("insmod: ERROR: could not insert module module.ko: Invalid module format");
      expect(k.log.messages(seq)).toEqual([
        "dupk: loading out-of-tree module taints kernel.",
        "dupk: exports duplicate symbol printk (owned by kernel)",
      ]);
      // The lookup is made with GPL allowed, whatever the exporter's license.
      const DUPG = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("Proprietary");
export function devm_kmalloc(): number { return 0; }
k.EXPORT_SYMBOL(devm_kmalloc);
k.module_init(() => 0);
k.module_exit(() => {});
`;
      seq = k.log.nextSeq;
      expect((await insmodError(k, await ko("dupg", DUPG, { kernel: version }))).errno).toBe(ENOEXEC);
      expect(k.log.messages(seq)).toEqual([
        "dupg: module license 'Proprietary' taints kernel.",
        "Disabling lock debugging due to kernel taint",
        "dupg: exports duplicate symbol devm_kmalloc (owned by kernel)",
      ]);
      expect(k.read("/proc/modules")).toBe("");
      expect(k.tainted()).toBe(tainted("PO"));
    });
  }

  it("a name only some versions export: hmm_devmem_remove is a duplicate on 4.19/4.20, free to take on 5.0", async () => {
    const SRC = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
export function hmm_devmem_remove(): void {}
k.EXPORT_SYMBOL(hmm_devmem_remove);
k.module_init(() => 0);
k.module_exit(() => {});
`;
    for (const version of ["4.19", "4.20"] as const) {
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      expect((await insmodError(k, await ko("oldhmm", SRC, { kernel: version }))).errno).toBe(ENOEXEC);
      expect(k.log.messages(seq)).toContain("oldhmm: exports duplicate symbol hmm_devmem_remove (owned by kernel)");
    }
    const k = await boot({ version: "5.0" });
    await k.insmod(await ko("oldhmm", SRC, { kernel: "5.0" }));
    expect(procModules(k)).toBe("oldhmm SIZE 0 - Live ADDR (O)\n");
  });

  it("exporting a name another module exports: \"(owned by <module>)\"; links made before the check are dropped", async () => {
    const k = await boot({ version: "5.0" });
    const sv = (await buildSource("alpha", ALPHA, { kernel: "5.0" })).symvers;
    const DUPM = `
import * as k from "kemu/kernel";
import { alpha_tag } from "kemu/extern";
k.MODULE_LICENSE("GPL");
export function alpha_add(a: number, b: number): number { return alpha_tag("x", { n: a, list: [b] }).sum; }
k.EXPORT_SYMBOL(alpha_add);
k.module_init(() => 0);
k.module_exit(() => {});
`;
    await k.insmod(await ko("alpha", ALPHA, { kernel: "5.0" }));
    const seq = k.log.nextSeq;
    const e = await insmodError(k, await ko("dupm", DUPM, { kernel: "5.0", symvers: [sv] }));
    expect(e.errno).toBe(ENOEXEC);
    expect(k.log.messages(seq)).toEqual(["dupm: exports duplicate symbol alpha_add (owned by alpha)"]);
    // Symbols were resolved (a use link on alpha) before complete_formation() refused it.
    expect(procModules(k)).toBe("alpha SIZE 0 - Live ADDR (O)\n");
    k.rmmod("alpha");
  });
});

describe("symbol_get() and symbol_put() (__symbol_get is EXPORT_SYMBOL_GPL)", () => {
  const GETTER = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
k.module_init(() => {
  const f = k.symbol_get("alpha_add") as ((a: number, b: number) => number) | null;
  k.printk(k.KERN_INFO + "getter: alpha_add %s\\n", f === null ? "NULL" : "found");
  k.printk(k.KERN_INFO + "getter: call %s\\n", typeof f === "function" ? String(f(20, 22)) : "not callable");
  k.printk(k.KERN_INFO + "getter: no_such_symbol %s\\n", k.symbol_get("no_such_symbol") === null ? "NULL" : "found");
  k.printk(k.KERN_INFO + "getter: printk %s\\n", k.symbol_get("printk") === null ? "NULL" : "found");
  return 0;
});
k.module_exit(() => { k.symbol_put("alpha_add"); k.symbol_put("printk"); });
`;

  for (const version of VERSIONS) {
    it(`${version}: a live module's symbol: a reference but no use link; symbol_put() drops it`, async () => {
      const k = await boot({ version });
      await k.insmod(await ko("alpha", ALPHA, { kernel: version }));
      const getter = await buildSource("getter", GETTER, { kernel: version });
      // No kemu/extern import: nothing of alpha's in depends=, nothing for modpost to check.
      expect(get_modinfo(getter.image.modinfo, "depends")).toBe("");
      const seq = k.log.nextSeq;
      await k.insmod(getter.ko);
      expect(k.log.messages(seq).filter((m) => m.startsWith("getter: alpha_add") || m.startsWith("getter: no_such"))).toEqual([
        "getter: alpha_add found",
        "getter: no_such_symbol NULL",
      ]);
      // __symbol_get() took a reference with strong_try_module_get(): refcnt 1, "Used by" empty.
      expect(procModules(k)).toBe("getter SIZE 0 - Live ADDR (O)\nalpha SIZE 1 - Live ADDR (O)\n");
      expect(k.modules.delete_module("alpha", O_NONBLOCK)).toBe(-EWOULDBLOCK);
      expect(rmmodError(k, "alpha")!.message).toBe("rmmod: ERROR: Module alpha is in use");
      k.rmmod("getter");
      expect(procModules(k)).toBe("alpha SIZE 0 - Live ADDR (O)\n");
      k.rmmod("alpha");
    });
  }

  it("what symbol_get() returns is the function itself: calling it runs the exporter's code", async () => {
    const k = await boot({ version: "4.20" });
    await k.insmod(await ko("alpha", ALPHA, { kernel: "4.20" }));
    const seq = k.log.nextSeq;
    await k.insmod(await ko("getter", GETTER, { kernel: "4.20" }));
    expect(k.log.messages(seq)).toContain("getter: call 42");
  });

  it("a vmlinux symbol: __symbol_get() finds it (owner NULL, no reference needed) and returns its address", async () => {
    // __symbol_get(): find_symbol(symbol, &owner, NULL, true, true); strong_try_module_get(NULL) is 0.
    const k = await boot({ version: "4.20" });
    await k.insmod(await ko("alpha", ALPHA, { kernel: "4.20" }));
    const seq = k.log.nextSeq;
    await k.insmod(await ko("getter", GETTER, { kernel: "4.20" }));
    expect(k.log.messages(seq)).toContain("getter: printk found");
  });

  it("a proprietary module cannot use symbol_get(): modpost refuses it, the loader hides __symbol_get", async () => {
    const PGET = GETTER.replace('k.MODULE_LICENSE("GPL")', 'k.MODULE_LICENSE("Proprietary")');
    const err = await buildSource("pgetter", PGET, { kernel: "4.20" }).catch((e: unknown) => e);
    expect((err as { errors: string[] }).errors).toEqual(["FATAL: modpost: GPL-incompatible module pgetter.ko uses GPL-only symbol '__symbol_get'"]);
    // The same code built as GPL, then relabelled: the loader's own check.
    const relabelled = rewriteKo(await ko("pgetter", GETTER, { kernel: "4.20" }), (img) => {
      img.modinfo = img.modinfo.replace("license=GPL", "license=Proprietary");
    });
    const k = await boot({ version: "4.20" });
    const seq = k.log.nextSeq;
    const e = await insmodError(k, relabelled);
    expect(e.errno).toBe(ENOENT);
    expect(k.log.messages(seq)).toEqual([
      "pgetter: loading out-of-tree module taints kernel.",
      "pgetter: module license 'Proprietary' taints kernel.",
      "Disabling lock debugging due to kernel taint",
      "pgetter: Unknown symbol __symbol_get (err -2)",
    ]);
  });
});

describe("EXPORT_SYMBOL_GPL_FUTURE (spec E2, 2.6.17-5.11)", () => {
  const LIB = `
import { MODULE_LICENSE, EXPORT_SYMBOL_GPL_FUTURE, module_init, module_exit } from "kemu/kernel";
MODULE_LICENSE("GPL");
export function lib_future(x: number): number { return x * 3; }
EXPORT_SYMBOL_GPL_FUTURE(lib_future);
module_init(() => 0);
module_exit(() => {});
`;
  const USER = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
import { lib_future } from "kemu/extern";
MODULE_LICENSE("Proprietary");
module_init(() => { printk(KERN_INFO + "closed: lib_future(14) = %d\\n", lib_future(14)); return 0; });
module_exit(() => {});
`;

  it("a non-GPL module may use it: modpost warns, and the loader warns at each resolution", async () => {
    const k = await boot({ version: "4.20" });
    const lib = await buildSource("futlib", LIB, { kernel: "4.20" });
    expect(lib.symvers).toBe("0x00000000\tlib_future\tfutlib\tEXPORT_SYMBOL_GPL_FUTURE\n");
    await k.insmod(lib.ko);
    const user = await buildSource("closed", USER, { kernel: "4.20", symvers: [lib.symvers] });
    expect(user.warnings).toEqual(["WARNING: modpost: GPL-incompatible module closed.ko uses future GPL-only symbol 'lib_future'"]);
    const seq = k.log.nextSeq;
    await k.insmod(user.ko);
    // (futlib printed the out-of-tree line already: once per boot.)
    expect(k.log.messages(seq)).toEqual([
      "closed: module license 'Proprietary' taints kernel.",
      "Disabling lock debugging due to kernel taint",
      "Symbol lib_future is being used by a non-GPL module, which will not be allowed in the future",
      "closed: lib_future(14) = 42",
    ]);
    expect(procModules(k)).toMatch(/^closed SIZE 0 - Live ADDR \(PO\)\nfutlib SIZE 1 closed, Live ADDR \(O\)\n$/);
    k.rmmod("closed");
    k.rmmod("futlib");
  });
});
