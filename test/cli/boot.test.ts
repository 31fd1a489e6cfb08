// kemu boot from the command line: modules loaded with --insmod, a refused one reported with
// insmod's message while boot goes on, and the module views printed.

import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ko, licensed } from "../helpers/build.ts";
import { GPUMEM_EXAMPLE, workdir } from "../helpers/cli.ts";

// Through bin/kemu.mjs, the installed command, so that the launcher is tested too.
const w = workdir("kemu-cli-", { launcher: true });
const kemu = (...args: string[]) => w.kemu(args);

describe("kemu boot --insmod", () => {
  it("loads built modules in order, reports a refused one and exits 1", async () => {
    const good = w.put("order/good.ko", await ko("good", licensed("GPL"), { kernel: "4.20" }));
    const closed = w.put("order/closed.ko", await ko("closed", licensed("Proprietary"), { kernel: "4.20" }));
    const missing = join(w.dir, "order/missing.ko");
    const r = await kemu("boot", "--kernel", "4.20", "--insmod", good, "--insmod", missing, "--insmod", closed, "--insmod", good, "--print", "modules,tainted");
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `insmod: ERROR: could not load module ${missing}: No such file or directory\n` +
        `insmod: ERROR: could not insert module ${good}: File exists\n`,
    );
    expect(r.stdout).toMatch(/^==> \/proc\/modules <==\nclosed \d+ 0 - Live 0xffffffffc0002000 \(PO\)\ngood \d+ 0 - Live 0xffffffffc0000000 \(O\)\n==> \/proc\/sys\/kernel\/tainted <==\n4097\n$/);
  });

  it("turns on kconfig options: with MODULE_SIG an unsigned module fails verification and taints E", async () => {
    const good = w.put("kconfig/good.ko", await ko("good", licensed("GPL"), { kernel: "4.20" }));
    // Without the option: O only (TAINT_OOT_MODULE, 4096).
    const plain = await kemu("boot", "--kernel", "4.20", "--insmod", good, "--print", "tainted");
    expect(plain.status).toBe(0);
    expect(plain.stderr).toBe("");
    expect(plain.stdout).toBe("4096\n");
    // With it: module_sig_check() finds no signature, so O and E (TAINT_UNSIGNED_MODULE, 8192).
    const r = await kemu("boot", "--kernel", "4.20", "--kconfig", "MODULE_SIG", "--insmod", good, "--print", "dmesg,tainted");
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n").slice(-5)).toEqual([
      "[    1.200000] good: loading out-of-tree module taints kernel.",
      "[    1.200000] good: module verification failed: signature and/or required key missing - tainting kernel",
      "==> /proc/sys/kernel/tainted <==",
      "12288",
      "",
    ]);
  });

  it("names the choices for an unknown kconfig option and exits 2", async () => {
    const r = await kemu("boot", "--kconfig", "MODULE_SIG,MODVERSION");
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      "kemu boot: --kconfig: unknown option 'MODVERSION' (choose from MODULE_SIG, MODULE_SIG_FORCE, MODVERSIONS, MODULE_FORCE_LOAD, MODULE_FORCE_UNLOAD)\n" +
        "Run `kemu boot --help` for usage.\n",
    );
    expect(r.stdout).toBe("");
  });
});

describe("kemu boot --insmod DRIVER.ts", () => {
  /** A GPL exporter and a proprietary user of its (plain) export. */
  const SHIM = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
export function shim_add(a: number, b: number): number { return a + b; }
k.EXPORT_SYMBOL(shim_add);
k.module_init(() => 0);
k.module_exit(() => {});
`;
  const USER = `
import * as k from "kemu/kernel";
import { shim_add } from "kemu/extern";
k.MODULE_LICENSE("Proprietary");
k.module_init(() => { k.printk(k.KERN_INFO + "user: %d\\n", shim_add(40, 2)); return 0; });
k.module_exit(() => {});
`;
  // The proprietary GPU driver: its HMM symbols are GPL-only from 5.0 (and 5.0 does not export
  // hmm_devmem_remove at all, which modpost does not get to: it stops at the first GPL-only one).
  const gpumem = GPUMEM_EXAMPLE;
  const good = w.put("src/good.ts", licensed("GPL"));
  const shim = w.put("src/shim.ts", SHIM);
  const user = w.put("src/user.ts", USER);

  it("builds a source for --kernel and loads it", async () => {
    const r = await kemu("boot", "--kernel", "4.20", "--insmod", gpumem, "--print", "modules,tainted");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^==> \/proc\/modules <==\ngpumem \d+ 0 - Live 0xffffffffc0000000 \(PO\)\n==> \/proc\/sys\/kernel\/tainted <==\n4097\n$/);
  });

  it("a source modpost refuses prints modpost's line; boot goes on with the next and exits 1", async () => {
    const r = await kemu("boot", "--kernel", "5.0", "--insmod", gpumem, "--insmod", good, "--print", "modules");
    expect(r.stderr).toBe("FATAL: modpost: GPL-incompatible module gpumem.ko uses GPL-only symbol 'devm_memremap_pages'\n");
    expect(r.stdout).toMatch(/^good \d+ 0 - Live 0xffffffffc0000000 \(O\)\n$/);
    expect(r.status).toBe(1);
  });

  it("a source importing an earlier one's EXPORT_SYMBOL through kemu/extern is built against it and loads after it", async () => {
    const r = await kemu("boot", "--kernel", "5.0", "--insmod", shim, "--insmod", user, "--print", "modules,dmesg");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const [modules, dmesg] = r.stdout.split("==> dmesg <==\n");
    expect(modules).toMatch(/^==> \/proc\/modules <==\nuser \d+ 0 - Live 0xffffffffc0002000 \(PO\)\nshim \d+ 1 user, Live 0xffffffffc0000000 \(O\)\n$/);
    expect(dmesg).toMatch(/\] user: 42\n$/);
    // In the other order the user comes first, with nothing to resolve its import against.
    const rev = await kemu("boot", "--kernel", "5.0", "--insmod", user, "--insmod", shim, "--print", "modules");
    expect(rev.stderr).toBe('ERROR: "shim_add" [user.ko] undefined!\n');
    expect(rev.stdout).toMatch(/^shim \d+ 0 - Live 0xffffffffc0000000 \(O\)\n$/);
    expect(rev.status).toBe(1);
  });
});

describe("kemu boot: the machine", () => {
  it("--pmem takes a namespace mode and alignment, and udev loads the drivers for it; --no-autoload loads none", async () => {
    const r = await kemu("boot", "--pmem", "256M,mode=devdax,align=4K", "--gpu", "64M", "--print", "modules");
    expect(r.status).toBe(0);
    expect(r.stdout.split("\n").filter(Boolean).map((l) => l.split(" ")[0]).sort()).toEqual(["dax", "dax_pmem", "device_dax", "libnvdimm", "nd_pmem", "nfit", "nouveau"]);
    const none = await kemu("boot", "--pmem", "256M", "--gpu", "64M", "--no-autoload", "--print", "modules");
    expect(none.status).toBe(0);
    expect(none.stdout).toBe("");
  });

  it("a bad --pmem option or value names it", async () => {
    const opt = await kemu("boot", "--pmem", "256M,colour=red");
    expect(opt.status).toBe(2);
    expect(opt.stderr).toContain("kemu boot: --pmem '256M,colour=red': unknown option 'colour=red' (mode=fsdax|devdax|raw, align=4K|2M|1G, legacy)");
    const mode = await kemu("boot", "--pmem", "256M,mode=blue");
    expect(mode.status).toBe(1);
    expect(mode.stderr).toContain('kemu boot: boot config: pmem[0].mode: "blue" is not a namespace mode (expected one of: fsdax, devdax, raw)');
  });
});
