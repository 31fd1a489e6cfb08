// kemu boot from the command line: modules loaded with --insmod, a refused one reported with
// insmod's message while boot goes on, and the module views printed.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ko, licensed } from "../helpers/build.ts";

const KEMU = fileURLToPath(new URL("../../bin/kemu.mjs", import.meta.url));

function kemu(...args: string[]) {
  const r = spawnSync(process.execPath, [KEMU, ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("kemu boot --insmod", () => {
  it("loads built modules in order, reports a refused one and exits 1", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kemu-cli-"));
    const good = join(dir, "good.ko");
    const closed = join(dir, "closed.ko");
    writeFileSync(good, await ko("good", licensed("GPL"), { kernel: "4.20" }));
    writeFileSync(closed, await ko("closed", licensed("Proprietary"), { kernel: "4.20" }));
    const missing = join(dir, "missing.ko");
    const r = kemu("boot", "--kernel", "4.20", "--insmod", good, "--insmod", missing, "--insmod", closed, "--insmod", good, "--print", "modules,tainted");
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `insmod: ERROR: could not load module ${missing}: No such file or directory\n` +
        `insmod: ERROR: could not insert module ${good}: File exists\n`,
    );
    expect(r.stdout).toMatch(/^==> \/proc\/modules <==\nclosed \d+ 0 - Live 0xffffffffc0002000 \(PO\)\ngood \d+ 0 - Live 0xffffffffc0000000 \(O\)\n==> \/proc\/sys\/kernel\/tainted <==\n4097\n$/);
  });

  it("turns on kconfig options: with MODULE_SIG an unsigned module fails verification and taints E", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kemu-cli-"));
    const good = join(dir, "good.ko");
    writeFileSync(good, await ko("good", licensed("GPL"), { kernel: "4.20" }));
    // Without the option: O only (TAINT_OOT_MODULE, 4096).
    const plain = kemu("boot", "--kernel", "4.20", "--insmod", good, "--print", "tainted");
    expect(plain.status).toBe(0);
    expect(plain.stderr).toBe("");
    expect(plain.stdout).toBe("4096\n");
    // With it: module_sig_check() finds no signature, so O and E (TAINT_UNSIGNED_MODULE, 8192).
    const r = kemu("boot", "--kernel", "4.20", "--kconfig", "MODULE_SIG", "--insmod", good, "--print", "dmesg,tainted");
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

  it("names the choices for an unknown kconfig option and exits 2", () => {
    const r = kemu("boot", "--kconfig", "MODULE_SIG,MODVERSION");
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      "kemu boot: --kconfig: unknown option 'MODVERSION' (choose from MODULE_SIG, MODULE_SIG_FORCE, MODVERSIONS, MODULE_FORCE_LOAD, MODULE_FORCE_UNLOAD)\n" +
        "Run `kemu boot --help` for usage.\n",
    );
    expect(r.stdout).toBe("");
  });
});

describe("kemu boot --insmod DRIVER.ts", () => {
  const dir = mkdtempSync(join(tmpdir(), "kemu-cli-src-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** test/module/policy.test.ts's proprietary GPU driver: its HMM symbols are GPL-only from 5.0. */
  const GPUMEM = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("Proprietary");
let hdev: k.hmm_device | null = null;
k.module_init(() => {
  const h = k.hmm_device_new(null);
  if (k.IS_ERR(h)) return k.PTR_ERR(h);
  hdev = h;
  const d = k.hmm_devmem_add({ free: () => {}, fault: () => 2 }, h.device, 256 << 20);
  if (k.IS_ERR(d)) return k.PTR_ERR(d);
  k.printk(k.KERN_INFO + "gpumem: %lu pages of device memory\\n", d.pfn_last - d.pfn_first);
  return 0;
});
k.module_exit(() => { if (hdev) k.hmm_device_put(hdev); });
export function map_bar(): number { return k.devm_memremap_pages(hdev!.device, {}); }
`;
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
  const gpumem = join(dir, "gpumem.ts");
  const good = join(dir, "good.ts");
  const shim = join(dir, "shim.ts");
  const user = join(dir, "user.ts");
  writeFileSync(gpumem, GPUMEM);
  writeFileSync(good, licensed("GPL"));
  writeFileSync(shim, SHIM);
  writeFileSync(user, USER);

  it("builds a source for --kernel and loads it", () => {
    const r = kemu("boot", "--kernel", "4.20", "--insmod", gpumem, "--print", "modules,tainted");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^==> \/proc\/modules <==\ngpumem \d+ 0 - Live 0xffffffffc0000000 \(PO\)\n==> \/proc\/sys\/kernel\/tainted <==\n4097\n$/);
  });

  it("a source modpost refuses prints modpost's line; boot goes on with the next and exits 1", () => {
    const r = kemu("boot", "--kernel", "5.0", "--insmod", gpumem, "--insmod", good, "--print", "modules");
    expect(r.stderr).toBe("FATAL: modpost: GPL-incompatible module gpumem.ko uses GPL-only symbol 'devm_memremap_pages'\n");
    expect(r.stdout).toMatch(/^good \d+ 0 - Live 0xffffffffc0000000 \(O\)\n$/);
    expect(r.status).toBe(1);
  });

  it("a source importing an earlier one's EXPORT_SYMBOL through kemu/extern is built against it and loads after it", () => {
    const r = kemu("boot", "--kernel", "5.0", "--insmod", shim, "--insmod", user, "--print", "modules,dmesg");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const [modules, dmesg] = r.stdout.split("==> dmesg <==\n");
    expect(modules).toMatch(/^==> \/proc\/modules <==\nuser \d+ 0 - Live 0xffffffffc0002000 \(PO\)\nshim \d+ 1 user, Live 0xffffffffc0000000 \(O\)\n$/);
    expect(dmesg).toMatch(/\] user: 42\n$/);
    // In the other order the user comes first, with nothing to resolve its import against.
    const rev = kemu("boot", "--kernel", "5.0", "--insmod", user, "--insmod", shim, "--print", "modules");
    expect(rev.stderr).toBe('ERROR: "shim_add" [user.ko] undefined!\n');
    expect(rev.stdout).toMatch(/^shim \d+ 0 - Live 0xffffffffc0000000 \(O\)\n$/);
    expect(rev.status).toBe(1);
  });
});
