// kemu build from the command line (sdk/cli/main.ts in a real process): NAME.ko next to the
// source or at -o, Kbuild's lines, modpost's refusals in its own words (GPL-only symbols,
// undefined symbols, a missing MODULE_LICENSE), the bundler's refusal of bare imports, modinfo
// from the MODULE_*() literals, byte-identical rebuilds, --sign, Module.symvers, --symvers,
// and the usage errors.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, it } from "vitest";
import { GPUMEM_SOURCE, workdir, type Run } from "../helpers/cli.ts";

const { dir: DIR, kemu, put } = workdir("kemu-build-");

const bytes = (rel: string) => readFileSync(join(DIR, rel));

/** The line kemu build adds after modpost's refusals, saying what to do. */
const GPL_HINT = (sym: string) =>
  `kemu build: '${sym}' is exported GPL-only: a module using it needs a GPL-compatible MODULE_LICENSE() (docs/export-policy.md lists each version's exports)\n`;
const UNDEF_HINT = (sym: string, kernel = "5.0") =>
  `kemu build: "${sym}": not exported by ${kernel} (docs/export-policy.md lists what is); another module's export needs that module's Module.symvers (--symvers FILE)\n`;

/** A GPL driver with every kind of MODULE_*() literal (and one commented out). */
const GOOD = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
k.MODULE_DESCRIPTION("a \\"good\\" driver");
k.MODULE_AUTHOR("A. Hacker <a@example.org>");
// k.MODULE_AUTHOR("not me: commented out");
k.MODULE_VERSION("1.2");
k.MODULE_ALIAS("kemu:good");
k.module_init(() => 0);
k.module_exit(() => {});
`;

/** An exporter: one plain export, one GPL-only. */
const ALPHA = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
export function alpha_add(a: number, b: number): number { return a + b; }
export function alpha_tag(s: string): string { return "alpha:" + s; }
k.EXPORT_SYMBOL(alpha_add);
k.EXPORT_SYMBOL_GPL(alpha_tag);
k.module_init(() => 0);
k.module_exit(() => {});
`;

/** A user of alpha's exports through "kemu/extern". */
const userOf = (license: string, sym: string) => `
import * as k from "kemu/kernel";
import { ${sym} } from "kemu/extern";
k.MODULE_LICENSE(${JSON.stringify(license)});
k.module_init(() => { k.printk(k.KERN_INFO + "%s\\n", String(${sym}(1, 2))); return 0; });
k.module_exit(() => {});
`;

const KBUILD = (src: string, ko: string) => `  BUNDLE  ${src}\n  MODPOST 1 modules\n  LD [M]  ${ko}\n`;

let good: Run;
beforeAll(async () => {
  put("good.ts", GOOD);
  good = await kemu(["build", "good.ts"]);
});

describe.concurrent("kemu build", () => {
  it("writes NAME.ko next to the source, with Kbuild's lines, and no Module.symvers for a module exporting nothing", ({ expect }) => {
    expect(good.stderr).toBe("");
    expect(good.stdout).toBe(KBUILD("good.ts", "good.ko"));
    expect(good.status).toBe(0);
    expect(existsSync(join(DIR, "good.ko"))).toBe(true);
    expect(existsSync(join(DIR, "Module.symvers"))).toBe(false);
  });

  it("-o DIR (existing, or ending in '/') writes NAME.ko into it; a file in the way is a usage error", async ({ expect }) => {
    mkdirSync(join(DIR, "odir"));
    const a = await kemu(["build", "good.ts", "-o", "odir"]);
    expect(a.stdout).toBe(KBUILD("good.ts", "odir/good.ko"));
    const b = await kemu(["build", "good.ts", "-o", "onew/"]);
    expect(b.stdout).toBe(KBUILD("good.ts", "onew/good.ko"));
    expect(bytes("odir/good.ko").equals(bytes("onew/good.ko"))).toBe(true);
    put("ofile", "");
    const c = await kemu(["build", "good.ts", "-o", "ofile/x.ko"]);
    expect(c.status).toBe(2);
    expect(c.stderr.split("\n")[0]).toBe(`kemu build: -o ofile/x.ko: cannot create ${join(DIR, "ofile")}: a file is in the way`);
  });

  it("-o writes elsewhere, creating the directories; paths outside the working directory print whole", async ({ expect }) => {
    mkdirSync(join(DIR, "elsewhere"));
    const r = await kemu(["build", join(DIR, "good.ts"), "-o", "out/deep/renamed.ko"], join(DIR, "elsewhere"));
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(KBUILD(join(DIR, "good.ts"), "out/deep/renamed.ko"));
    expect(r.status).toBe(0);
    // The same module, wherever it is written.
    expect(bytes("elsewhere/out/deep/renamed.ko").equals(bytes("good.ko"))).toBe(true);
  });

  it("puts the MODULE_*() literals into .modinfo, last first, then srcversion, depends, retpoline, name, vermagic", async ({ expect }) => {
    const r = await kemu(["modinfo", "good.ko"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.split("\n")).toEqual([
      `filename:       ${DIR}/good.ko`,
      "alias:          kemu:good",
      "version:        1.2",
      "author:         A. Hacker <a@example.org>",
      'description:    a "good" driver',
      "license:        GPL",
      expect.stringMatching(/^srcversion:     [0-9A-F]{23}$/),
      "depends:        ",
      "retpoline:      Y",
      "name:           good",
      "vermagic:       5.0.0 SMP mod_unload ",
      "",
    ]);
  });

  it("--kernel sets vermagic, --modversions adds 'modversions ' to it", async ({ expect }) => {
    const b = await kemu(["build", "good.ts", "--kernel", "4.19", "--modversions", "-o", "v419/good.ko"]);
    expect(b.stderr).toBe("");
    expect(b.status).toBe(0);
    const r = await kemu(["modinfo", "-F", "vermagic", "v419/good.ko", "good.ko"]);
    expect(r.stdout).toBe("4.19.0 SMP mod_unload modversions \n5.0.0 SMP mod_unload \n");
    expect(r.status).toBe(0);
  });

  it("names the module after the file ('-' read as '_'), or --name", async ({ expect }) => {
    put("my-drv.ts", GOOD);
    const a = await kemu(["build", "my-drv.ts"]);
    expect(a.stdout).toBe(KBUILD("my-drv.ts", "my_drv.ko"));
    expect(a.status).toBe(0);
    const b = await kemu(["build", "my-drv.ts", "--name", "custom"]);
    expect(b.stdout).toBe(KBUILD("my-drv.ts", "custom.ko"));
    expect(b.status).toBe(0);
    const r = await kemu(["modinfo", "-F", "name", "my_drv.ko", "custom.ko"]);
    expect(r.stdout).toBe("my_drv\ncustom\n");
  });

  it("a proprietary driver using a GPL-only symbol under 5.0: modpost's FATAL line, exit 1, no .ko", async ({ expect }) => {
    // examples/gpumem: modpost stops at its first GPL-only symbol, before it would name
    // hmm_devmem_remove (which 5.0 does not export) undefined.
    put("gpl50/gpumem.ts", GPUMEM_SOURCE);
    const r = await kemu(["build", "gpl50/gpumem.ts", "--kernel", "5.0"]);
    expect(r.stderr).toBe("FATAL: modpost: GPL-incompatible module gpumem.ko uses GPL-only symbol 'devm_memremap_pages'\n" + GPL_HINT("devm_memremap_pages"));
    expect(r.stdout).toBe("  BUNDLE  gpl50/gpumem.ts\n  MODPOST 1 modules\n");
    expect(r.status).toBe(1);
    expect(existsSync(join(DIR, "gpl50/gpumem.ko"))).toBe(false);
  });

  it("the same driver builds for 4.20, which exports all its symbols, none GPL-only yet", async ({ expect }) => {
    put("gpl420/gpumem.ts", GPUMEM_SOURCE);
    const r = await kemu(["build", "gpl420/gpumem.ts", "--kernel", "4.20"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(KBUILD("gpl420/gpumem.ts", "gpl420/gpumem.ko"));
    expect(r.status).toBe(0);
    const info = await kemu(["modinfo", "-F", "vermagic", "gpl420/gpumem.ko"]);
    expect(info.stdout).toBe("4.20.0 SMP mod_unload \n");
  });

  describe("undefined symbols", () => {
    const KERNEL_UNKNOWN = `
import { MODULE_LICENSE, module_init, nosuch } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => nosuch());
`;
    const EXTERN_UNKNOWN = `
import { MODULE_LICENSE, module_init } from "kemu/kernel";
import { nosuch } from "kemu/extern";
MODULE_LICENSE("GPL");
module_init(() => nosuch());
`;

    it('a kernel symbol nobody exports: ERROR: "SYM" [NAME.ko] undefined!, exit 1, no .ko', async ({ expect }) => {
      put("undef/unknown.ts", KERNEL_UNKNOWN);
      const r = await kemu(["build", "undef/unknown.ts"]);
      expect(r.stderr).toBe('ERROR: "nosuch" [unknown.ko] undefined!\n' + UNDEF_HINT("nosuch"));
      expect(r.status).toBe(1);
      expect(existsSync(join(DIR, "undef/unknown.ko"))).toBe(false);
    });

    it("--modpost-warn (KBUILD_MODPOST_WARN=1) makes an unknown kernel symbol a WARNING and builds", async ({ expect }) => {
      put("undefw/unknown.ts", KERNEL_UNKNOWN);
      const r = await kemu(["build", "undefw/unknown.ts", "--modpost-warn"]);
      expect(r.stderr).toBe('WARNING: "nosuch" [unknown.ko] undefined!\n');
      expect(r.stdout).toBe(KBUILD("undefw/unknown.ts", "undefw/unknown.ko"));
      expect(r.status).toBe(0);
      expect(existsSync(join(DIR, "undefw/unknown.ko"))).toBe(true);
    });

    it("a namespace member the kernel lacks (k.nosuch) is undefined too, not a silent undefined at run time", async ({ expect }) => {
      put("undefns/ns.ts", 'import * as k from "kemu/kernel";\nk.MODULE_LICENSE("GPL");\nk.module_init(() => k.nosuch());\n');
      const e = await kemu(["build", "undefns/ns.ts"]);
      expect(e.stderr).toBe('ERROR: "nosuch" [ns.ko] undefined!\n' + UNDEF_HINT("nosuch"));
      expect(e.status).toBe(1);
      const w = await kemu(["build", "undefns/ns.ts", "--modpost-warn"]);
      expect(w.stderr).toBe('WARNING: "nosuch" [ns.ko] undefined!\n');
      expect(w.status).toBe(0);
      // Loaded anyway, the kernel refuses it by name.
      const b = await kemu(["boot", "--insmod", "undefns/ns.ko", "--print", "dmesg"]);
      expect(b.stdout).toMatch(/\] ns: Unknown symbol nosuch \(err -2\)\n/);
      expect(b.status).toBe(1);
    });

    it("an extern no Module.symvers names: ERROR, and with --modpost-warn a WARNING and a .ko", async ({ expect }) => {
      put("extern/unknown.ts", EXTERN_UNKNOWN);
      const e = await kemu(["build", "extern/unknown.ts"]);
      expect(e.stderr).toBe('ERROR: "nosuch" [unknown.ko] undefined!\n' + UNDEF_HINT("nosuch"));
      expect(e.status).toBe(1);
      expect(existsSync(join(DIR, "extern/unknown.ko"))).toBe(false);
      const w = await kemu(["build", "extern/unknown.ts", "--modpost-warn"]);
      expect(w.stderr).toBe('WARNING: "nosuch" [unknown.ko] undefined!\n');
      expect(w.stdout).toBe(KBUILD("extern/unknown.ts", "extern/unknown.ko"));
      expect(w.status).toBe(0);
    });
  });

  it("refuses a bare import, naming the imports a driver may have", async ({ expect }) => {
    put("bare.ts", 'import fs from "fs";\nimport * as k from "kemu/kernel";\nk.MODULE_LICENSE("GPL");\nk.module_init(() => (fs ? 0 : 1));\n');
    const r = await kemu(["build", "bare.ts"]);
    expect(r.stderr).toBe(
      'bare.ts:1:15: a driver may import only "kemu/kernel" (and "kemu/extern" for other modules\' symbols) and its own relative files, not "fs"\n',
    );
    expect(r.status).toBe(1);
    expect(existsSync(join(DIR, "bare.ko"))).toBe(false);
  });

  it("a missing MODULE_LICENSE() is modpost's warning (4.19-5.0), and the module builds without a license entry", async ({ expect }) => {
    put("nolic.ts", 'import * as k from "kemu/kernel";\nk.MODULE_DESCRIPTION("no licence");\nk.module_init(() => 0);\n');
    const r = await kemu(["build", "nolic.ts"]);
    expect(r.stderr).toBe("WARNING: modpost: missing MODULE_LICENSE() in nolic.o\nsee include/linux/module.h for more information\n");
    expect(r.stdout).toBe(KBUILD("nolic.ts", "nolic.ko"));
    expect(r.status).toBe(0);
    const info = await kemu(["modinfo", "-F", "license", "nolic.ko", "good.ko"]);
    expect(info.stdout).toBe("GPL\n");
  });

  it("is reproducible: the same source gives the same bytes, rebuilt or built in another directory", async ({ expect }) => {
    const DRV = 'import * as k from "kemu/kernel";\nimport { twice } from "./lib/util.ts";\nk.MODULE_LICENSE("GPL");\nk.module_init(() => twice(0));\n';
    const UTIL = "export function twice(n: number): number {\n  return n * 2;\n}\n";
    for (const d of ["repro-a", "repro-b"]) {
      put(`${d}/drv.ts`, DRV);
      put(`${d}/lib/util.ts`, UTIL);
    }
    // One from inside its directory, one by absolute path from elsewhere, to another output.
    const a = await kemu(["build", "drv.ts"], join(DIR, "repro-a"));
    expect(a.status).toBe(0);
    const first = bytes("repro-a/drv.ko");
    const b = await kemu(["build", join(DIR, "repro-b/drv.ts"), "-o", join(DIR, "repro-b/out/drv.ko")]);
    expect(b.status).toBe(0);
    expect(bytes("repro-b/out/drv.ko").equals(first)).toBe(true);
    const again = await kemu(["build", "repro-a/drv.ts"]);
    expect(again.status).toBe(0);
    expect(bytes("repro-a/drv.ko").equals(first)).toBe(true);
  });

  it("--sign appends an Ed25519 signature of the module and the marker; modinfo shows it", async ({ expect }) => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    put("key.pem", pem);
    const r = await kemu(["build", "good.ts", "--sign", "key.pem", "-o", "signed/good.ko"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(KBUILD("good.ts", "signed/good.ko"));
    expect(r.status).toBe(0);
    const signed = bytes("signed/good.ko");
    const unsigned = bytes("good.ko");
    expect(signed.subarray(signed.length - 28).toString("latin1")).toBe("~Module signature appended~\n");
    expect(signed.subarray(0, unsigned.length).equals(unsigned)).toBe(true);

    // kemu's PKCS#7 stand-in: the key id is the first 8 bytes of SHA-256 over the public key's
    // SubjectPublicKeyInfo; the signature is Ed25519's (deterministic) over the unsigned module.
    const hex = (b: Buffer) => [...b].map((x) => x.toString(16).toUpperCase().padStart(2, "0")).join(":");
    const pub = createPublicKey(createPrivateKey(pem));
    const keyId = createHash("sha256").update(pub.export({ type: "spki", format: "der" })).digest().subarray(0, 8);
    const sig = sign(null, unsigned, createPrivateKey(pem));
    const sigLines = [0, 20, 40, 60].map((i) => hex(sig.subarray(i, i + 20)));
    const info = await kemu(["modinfo", "signed/good.ko"]);
    expect(info.status).toBe(0);
    expect(info.stdout.split("\n").slice(10)).toEqual([
      "vermagic:       5.0.0 SMP mod_unload ",
      "sig_id:         PKCS#7",
      "signer:         ",
      `sig_key:        ${hex(keyId)}`,
      "sig_hashalgo:   none",
      `signature:      ${sigLines[0]}:`,
      `\t\t${sigLines[1]}:`,
      `\t\t${sigLines[2]}:`,
      `\t\t${sigLines[3]}`,
      "",
    ]);
  });

  it("writes an exporter's Module.symvers lines next to its .ko; a second exporter in the same directory keeps them", async ({ expect }) => {
    put("exp/alpha.ts", ALPHA);
    put("exp/gamma.ts", 'import * as k from "kemu/kernel";\nk.MODULE_LICENSE("GPL");\nexport function gamma_fn(): number { return 7; }\nk.EXPORT_SYMBOL(gamma_fn);\nk.module_init(() => 0);\n');
    const a = await kemu(["build", "exp/alpha.ts", "-o", "exp/out/alpha.ko"]);
    expect(a.stderr).toBe("");
    expect(a.stdout).toBe(KBUILD("exp/alpha.ts", "exp/out/alpha.ko") + "  SYMVERS exp/out/Module.symvers\n");
    expect(a.status).toBe(0);
    const symvers = () => bytes("exp/out/Module.symvers").toString("utf8");
    expect(symvers()).toBe("0x00000000\talpha_add\talpha\tEXPORT_SYMBOL\n0x00000000\talpha_tag\talpha\tEXPORT_SYMBOL_GPL\n");

    const g = await kemu(["build", "exp/gamma.ts", "-o", "exp/out/gamma.ko"]);
    expect(g.status).toBe(0);
    expect(symvers()).toBe(
      "0x00000000\talpha_add\talpha\tEXPORT_SYMBOL\n0x00000000\talpha_tag\talpha\tEXPORT_SYMBOL_GPL\n0x00000000\tgamma_fn\tgamma\tEXPORT_SYMBOL\n",
    );

    // alpha rebuilt without alpha_tag: its own lines are replaced, gamma's stay.
    put("exp/alpha.ts", ALPHA.replace("k.EXPORT_SYMBOL_GPL(alpha_tag);", ""));
    const a2 = await kemu(["build", "exp/alpha.ts", "-o", "exp/out/alpha.ko"]);
    expect(a2.status).toBe(0);
    expect(symvers()).toBe("0x00000000\tgamma_fn\tgamma\tEXPORT_SYMBOL\n0x00000000\talpha_add\talpha\tEXPORT_SYMBOL\n");
  });

  describe("--symvers: a module using another module's exports through kemu/extern", () => {
    beforeAll(() => {
      put("ext/alpha.symvers", "0x00000000\talpha_add\talpha\tEXPORT_SYMBOL\n0x00000000\talpha_tag\talpha\tEXPORT_SYMBOL_GPL\n");
      put("ext/user.ts", userOf("GPL", "alpha_add"));
      put("ext/closed.ts", userOf("Proprietary", "alpha_tag"));
    });

    it("without it, the extern is undefined", async ({ expect }) => {
      const r = await kemu(["build", "ext/user.ts"]);
      expect(r.stderr).toBe('ERROR: "alpha_add" [user.ko] undefined!\n' + UNDEF_HINT("alpha_add"));
      expect(r.status).toBe(1);
    });

    it("with it, the module builds and depends on the exporter", async ({ expect }) => {
      const r = await kemu(["build", "ext/user.ts", "--symvers", "ext/alpha.symvers"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe(KBUILD("ext/user.ts", "ext/user.ko"));
      expect(r.status).toBe(0);
      const info = await kemu(["modinfo", "-F", "depends", "ext/user.ko"]);
      expect(info.stdout).toBe("alpha\n");
    });

    it("a proprietary user of a module's EXPORT_SYMBOL_GPL is modpost's FATAL too", async ({ expect }) => {
      const r = await kemu(["build", "ext/closed.ts", "--symvers", "ext/alpha.symvers"]);
      expect(r.stderr).toBe("FATAL: modpost: GPL-incompatible module closed.ko uses GPL-only symbol 'alpha_tag'\n" + GPL_HINT("alpha_tag"));
      expect(r.status).toBe(1);
      expect(existsSync(join(DIR, "ext/closed.ko"))).toBe(false);
    });
  });

  it("--help explains the command and exits 0", async ({ expect }) => {
    const r = await kemu(["build", "--help"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^Usage: kemu build DRIVER\.ts \[options\]\n/);
    for (const opt of ["-o, --output FILE", "--kernel V", "--name NAME", "--symvers FILE", "--sign KEY.pem", "--modpost-warn"]) expect(r.stdout).toContain(opt);
  });

  it("usage errors exit 2, name the problem and point to --help", async ({ expect }) => {
    const cases: [string[], string][] = [
      [[], "build: expected one driver source, got 0 (kemu build DRIVER.ts)"],
      [["good.ts", "nolic.ts"], "build: expected one driver source, got 2 (kemu build DRIVER.ts)"],
      [["good.ko"], "build: 'good.ko' is not a driver source (.ts or .js); a built .ko needs no build"],
      [["good.ts", "--kernel", "5.1"], "build: --kernel '5.1' is not a kernel kemu emulates (choose from 4.19, 4.20, 5.0)"],
      [["good.ts", "--name", "bad-name"], "build: --name 'bad-name' is not a module name (letters, digits and '_', at most 55)"],
      [["good.ts", "--sign", "nokey.pem"], "build: --sign nokey.pem: no such file"],
      [["good.ts", "--symvers", "no.symvers"], "build: --symvers no.symvers: no such file"],
      [["absent.ts"], "build: driver absent.ts: no such file"],
      [["good.ts", "--bogus"], "build: Unknown option '--bogus'"],
    ];
    const runs = await Promise.all(cases.map(([args]) => kemu(["build", ...args])));
    runs.forEach((r, i) => {
      expect({ args: cases[i]![0], status: r.status, stderr: r.stderr, stdout: r.stdout }).toEqual({
        args: cases[i]![0],
        status: 2,
        stderr: `kemu ${cases[i]![1]}\nRun \`kemu build --help\` for usage.\n`,
        stdout: "",
      });
    });
  });
});
