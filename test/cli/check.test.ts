// kemu check: per kernel version, does the driver load, which symbols are refused and why, the
// taints, modpost's lines and the kernel log. The proprietary GPU driver of examples/gpumem
// loads under 4.20 and is refused under 5.0 (through the real CLI, as text and as JSON); a GPL
// driver with the same GPL-only symbols loads everywhere; a 4.20 .ko is refused by vermagic on
// 5.0; a GPL shim loaded with --with lets the proprietary user load on 5.0. checkDriver() and
// formatResults() are also called directly for the cases that need no process of their own.

import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { build } from "../../sdk/build/build.ts";
import { checkDriver, formatResults } from "../../sdk/cli/check.ts";
import { GPUMEM_SOURCE, workdir } from "../helpers/cli.ts";

const { dir: DIR, kemu, put } = workdir("kemu-check-");

/** `kemu check ARGS`, run in DIR. */
const check = (...args: string[]) => kemu(["check", ...args]);

/** A dmesg line without its timestamp (the clock is not what is under test here). */
const untimed = (line: string) => line.replace(/^(\s*)\[\s*\d+\.\d{6}\] /, "$1");

/**
 * Not examples/gpumem (the proprietary driver, used as gpumem.ts below) but a minimal variant
 * of it for the license cases: the same two HMM symbols, GPL-only from 5.0, without
 * hmm_devmem_remove, which 5.0 does not export at all. Under the GPL it must load on 5.0, and
 * without a license only its GPL-only symbols must be refused.
 */
const hmmDriver = (license: string | null) => `
import * as k from "kemu/kernel";
${license === null ? "" : `k.MODULE_LICENSE(${JSON.stringify(license)});`}
let hdev: k.hmm_device | null = null;
k.module_init(() => {
  const h = k.hmm_device_new(null);
  if (k.IS_ERR(h)) return k.PTR_ERR(h);
  hdev = h;
  const d = k.hmm_devmem_add({ free: () => {}, fault: () => 2 }, h.device, 256 << 20);
  if (k.IS_ERR(d)) return k.PTR_ERR(d);
  k.printk(k.KERN_INFO + "gpumem: %lu pages of device memory at pfn %#lx\\n", d.pfn_last - d.pfn_first, d.pfn_first);
  return 0;
});
k.module_exit(() => { if (hdev) k.hmm_device_put(hdev); });
export function map_bar(): number { return k.devm_memremap_pages(hdev!.device, {}); }
`;

/** A GPL module that wraps the GPL-only HMM call in a plain EXPORT_SYMBOL. */
const SHIM = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
export function shim_devmem_add(size: number): number {
  const h = k.hmm_device_new(null);
  if (k.IS_ERR(h)) return k.PTR_ERR(h);
  const d = k.hmm_devmem_add({ free: () => {}, fault: () => 2 }, h.device, size);
  if (k.IS_ERR(d)) return k.PTR_ERR(d);
  return d.pfn_last - d.pfn_first;
}
k.EXPORT_SYMBOL(shim_devmem_add);
k.module_init(() => 0);
k.module_exit(() => {});
`;

/** A proprietary module that uses only the shim's export. */
const CLOSED = `
import * as k from "kemu/kernel";
import { shim_devmem_add } from "kemu/extern";
k.MODULE_LICENSE("Proprietary");
k.module_init(() => {
  k.printk(k.KERN_INFO + "closed: %d pages\\n", shim_devmem_add(256 << 20));
  return 0;
});
k.module_exit(() => {});
`;

const REASON = "EXPORT_SYMBOL_GPL in 5.0, and the module's license 'Proprietary' is not GPL-compatible";
const GONE = "5.0 does not export it";

beforeAll(async () => {
  const gpumem = put("gpumem.ts", GPUMEM_SOURCE);
  put("gpugpl.ts", hmmDriver("GPL"));
  put("nolicense.ts", hmmDriver(null));
  put("shim.ts", SHIM);
  put("closed.ts", CLOSED);
  // A module file built for 4.20 (modpost lets it through there), for the vermagic check.
  put("gpumem.ko", (await build({ entry: gpumem, kernel: "4.20" })).ko);
});

describe("kemu check", () => {
  it("the proprietary GPU driver (examples/gpumem): loaded under 4.20 (P O), refused under 5.0 with both GPL-only symbols and the unexported hmm_devmem_remove, exit 1", async () => {
    const r = await check("gpumem.ts", "--kernel", "4.20,5.0");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(1);
    expect(r.stdout.split("\n").map(untimed)).toEqual([
      "kemu check gpumem.ts",
      "",
      "kernel  result   taints  refused symbols / error",
      "4.20    loaded   P O     -",
      `5.0     refused  P O     devm_memremap_pages: ${REASON}`,
      `                         hmm_devmem_add: ${REASON}`,
      `                         hmm_devmem_remove: ${GONE}`,
      "",
      "4.20: loaded",
      "  gpumem: loading out-of-tree module taints kernel.",
      "  gpumem: module license 'Proprietary' taints kernel.",
      "  Disabling lock debugging due to kernel taint",
      "  hmm_device0 initialised, 65536 pages in 0ms",
      "  gpumem: 65536 pages of device memory at pfn 0x3ffff0000",
      "",
      "5.0: refused: insmod: ERROR: could not insert module gpumem.ko: Unknown symbol in module",
      "  FATAL: modpost: GPL-incompatible module gpumem.ko uses GPL-only symbol 'devm_memremap_pages'",
      '  WARNING: "hmm_devmem_remove" [gpumem.ko] undefined!',
      "  gpumem: loading out-of-tree module taints kernel.",
      "  gpumem: module license 'Proprietary' taints kernel.",
      "  Disabling lock debugging due to kernel taint",
      "  gpumem: Unknown symbol devm_memremap_pages (err -2)",
      "  gpumem: Unknown symbol hmm_devmem_add (err -2)",
      "  gpumem: Unknown symbol hmm_devmem_remove (err -2)",
      "",
    ]);
    // The kernel log is printed as dmesg prints it, timestamps included.
    expect(r.stdout).toMatch(/\n {2}\[ {4}\d\.\d{6}\] gpumem: Unknown symbol hmm_devmem_remove \(err -2\)\n$/);
  });

  it("--json: the same results as data", async () => {
    const r = await check("gpumem.ts", "--kernel", "4.20,5.0", "--json");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout) as { driver: string; results: { dmesg: string[] }[] };
    for (const res of out.results) res.dmesg = res.dmesg.map(untimed);
    expect(out).toEqual({
      driver: "gpumem.ts",
      results: [
        {
          kernel: "4.20",
          module: "gpumem",
          loaded: true,
          error: null,
          errno: null,
          taints: ["P", "O"],
          tainted: "Tainted: P           O     ",
          refused: [],
          modpost: [],
          dmesg: [
            "gpumem: loading out-of-tree module taints kernel.",
            "gpumem: module license 'Proprietary' taints kernel.",
            "Disabling lock debugging due to kernel taint",
            "hmm_device0 initialised, 65536 pages in 0ms",
            "gpumem: 65536 pages of device memory at pfn 0x3ffff0000",
          ],
        },
        {
          kernel: "5.0",
          module: "gpumem",
          loaded: false,
          error: "insmod: ERROR: could not insert module gpumem.ko: Unknown symbol in module",
          errno: -2,
          taints: ["P", "O"],
          tainted: "Tainted: P           O     ",
          refused: [
            { symbol: "devm_memremap_pages", message: "gpumem: Unknown symbol devm_memremap_pages (err -2)", reason: REASON },
            { symbol: "hmm_devmem_add", message: "gpumem: Unknown symbol hmm_devmem_add (err -2)", reason: REASON },
            { symbol: "hmm_devmem_remove", message: "gpumem: Unknown symbol hmm_devmem_remove (err -2)", reason: GONE },
          ],
          modpost: [
            "FATAL: modpost: GPL-incompatible module gpumem.ko uses GPL-only symbol 'devm_memremap_pages'",
            'WARNING: "hmm_devmem_remove" [gpumem.ko] undefined!',
          ],
          dmesg: [
            "gpumem: loading out-of-tree module taints kernel.",
            "gpumem: module license 'Proprietary' taints kernel.",
            "Disabling lock debugging due to kernel taint",
            "gpumem: Unknown symbol devm_memremap_pages (err -2)",
            "gpumem: Unknown symbol hmm_devmem_add (err -2)",
            "gpumem: Unknown symbol hmm_devmem_remove (err -2)",
          ],
        },
      ],
    });
  });

  it("the same driver under the GPL loads in every version (the default 4.19, 4.20, 5.0): exit 0", async () => {
    const r = await check("gpugpl.ts");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const lines = r.stdout.split("\n").map(untimed);
    expect(lines.slice(0, 7)).toEqual([
      "kemu check gpugpl.ts",
      "",
      "kernel  result   taints  refused symbols / error",
      "4.19    loaded   O       -",
      "4.20    loaded   O       -",
      "5.0     loaded   O       -",
      "",
    ]);
    expect(lines.filter((l) => /^[\d.]+: /.test(l))).toEqual(["4.19: loaded", "4.20: loaded", "5.0: loaded"]);
    expect(lines.filter((l) => l === "  gpumem: 65536 pages of device memory at pfn 0x3ffff0000")).toHaveLength(3);
  });

  it("a .ko built for 4.20 is refused on 5.0 by its vermagic (-ENOEXEC), before any symbol is looked up", async () => {
    const r = await check("gpumem.ko", "--kernel", "5.0", "--json");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout) as { results: { dmesg: string[] }[] };
    expect(out.results).toHaveLength(1);
    const res = out.results[0]!;
    res.dmesg = res.dmesg.map(untimed);
    expect(res).toEqual({
      kernel: "5.0",
      module: "gpumem",
      loaded: false,
      error: "insmod: ERROR: could not insert module gpumem.ko: Invalid module format",
      errno: -8,
      taints: [],
      tainted: "Not tainted",
      refused: [],
      modpost: [],
      dmesg: ["gpumem: version magic '4.20.0 SMP mod_unload ' should be '5.0.0 SMP mod_unload '"],
    });
  });

  it("--with a GPL shim that EXPORT_SYMBOLs a wrapper: the proprietary user of the wrapper loads under 5.0", async () => {
    const r = await check("closed.ts", "--with", "shim.ts", "--kernel", "5.0");
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n").map(untimed)).toEqual([
      "kemu check closed.ts",
      "",
      "kernel  result   taints  refused symbols / error",
      "5.0     loaded   P O     -",
      "",
      "5.0: loaded",
      "  closed: module license 'Proprietary' taints kernel.",
      "  Disabling lock debugging due to kernel taint",
      "  hmm_device0 initialised, 65536 pages in 0ms",
      "  closed: 65536 pages",
      "",
    ]);
    expect(r.status).toBe(0);
  });

  it("without the shim, its export is undefined: modpost only warns, and the kernel refuses the symbol", async () => {
    const r = await checkDriver(join(DIR, "closed.ts"), "5.0");
    r.dmesg = r.dmesg.map(untimed);
    expect(r).toEqual({
      kernel: "5.0",
      module: "closed",
      loaded: false,
      error: "insmod: ERROR: could not insert module closed.ko: Unknown symbol in module",
      errno: -2,
      taints: ["P", "O"],
      tainted: "Tainted: P           O     ",
      refused: [
        {
          symbol: "shim_devmem_add",
          message: "closed: Unknown symbol shim_devmem_add (err -2)",
          reason: "neither the kernel nor a loaded module exports it",
        },
      ],
      modpost: ['WARNING: "shim_devmem_add" [closed.ko] undefined!'],
      dmesg: [
        "closed: loading out-of-tree module taints kernel.",
        "closed: module license 'Proprietary' taints kernel.",
        "Disabling lock debugging due to kernel taint",
        "closed: Unknown symbol shim_devmem_add (err -2)",
      ],
    });
    expect(formatResults("closed.ts", [r])).toBe(
      [
        "kemu check closed.ts",
        "",
        "kernel  result   taints  refused symbols / error",
        "5.0     refused  P O     shim_devmem_add: neither the kernel nor a loaded module exports it",
        "",
        "5.0: refused: insmod: ERROR: could not insert module closed.ko: Unknown symbol in module",
        '  WARNING: "shim_devmem_add" [closed.ko] undefined!',
        "  closed: loading out-of-tree module taints kernel.",
        "  closed: module license 'Proprietary' taints kernel.",
        "  Disabling lock debugging due to kernel taint",
        "  closed: Unknown symbol shim_devmem_add (err -2)",
        "",
      ].join("\n"),
    );
  });

  it("a source the bundler refuses is reported as modpost's refusal, before insmod", async () => {
    put("bare.ts", 'import fs from "fs";\nimport * as k from "kemu/kernel";\nk.MODULE_LICENSE("GPL");\nk.module_init(() => (fs ? 0 : 1));\n');
    const r = await checkDriver(join(DIR, "bare.ts"), "4.20");
    expect(r).toEqual({
      kernel: "4.20",
      module: null,
      loaded: false,
      error: "modpost refused to build it",
      errno: null,
      taints: [],
      tainted: "Not tainted",
      refused: [],
      modpost: ['bare.ts:1:15: a driver may import only "kemu/kernel" (and "kemu/extern" for other modules\' symbols) and its own relative files, not "fs"'],
      dmesg: [],
    });
  });

  it("a module without MODULE_LICENSE(): modpost warns, the kernel refuses its GPL-only symbols under 5.0 as unlicensed", async () => {
    const r = await checkDriver(join(DIR, "nolicense.ts"), "5.0");
    expect(r.loaded).toBe(false);
    expect(r.errno).toBe(-2);
    expect(r.taints).toEqual(["P", "O"]);
    expect(r.refused.map((s) => [s.symbol, s.reason])).toEqual([
      ["devm_memremap_pages", "EXPORT_SYMBOL_GPL in 5.0, and the module's license is missing"],
      ["hmm_devmem_add", "EXPORT_SYMBOL_GPL in 5.0, and the module's license is missing"],
    ]);
    expect(r.dmesg.map(untimed).slice(0, 2)).toEqual([
      "nolicense: loading out-of-tree module taints kernel.",
      "nolicense: module license 'unspecified' taints kernel.",
    ]);
    // modpost's two-line warning keeps its indentation in the report.
    const text = formatResults("nolicense.ts", [r]).split("\n");
    expect(text.slice(6, 9)).toEqual([
      "5.0: refused: insmod: ERROR: could not insert module nolicense.ko: Unknown symbol in module",
      "  WARNING: modpost: missing MODULE_LICENSE() in nolicense.o",
      "  see include/linux/module.h for more information",
    ]);
  });

  it("usage errors exit 2 and name the problem; --help exits 0", async () => {
    const [badVersion, noDriver, missing, help] = await Promise.all([
      check("gpugpl.ts", "--kernel", "4.20,5.1"),
      check("--kernel", "5.0"),
      check("absent.ts", "--kernel", "5.0"),
      check("--help"),
    ]);
    const usage = (msg: string) => ({ status: 2, stdout: "", stderr: `kemu check: ${msg}\nRun \`kemu check --help\` for usage.\n` });
    expect(badVersion).toEqual(usage("--kernel: '5.1' is not a kernel kemu emulates (choose from 4.19, 4.20, 5.0)"));
    expect(noDriver).toEqual(usage("expected one driver (a .ts source or a .ko), got 0"));
    expect(missing).toEqual(usage("absent.ts: no such file"));
    expect(help.status).toBe(0);
    expect(help.stderr).toBe("");
    expect(help.stdout).toMatch(/^Usage: kemu check DRIVER \[options\]\n/);
    expect(help.stdout).toContain("--with FILE");
  });
});
