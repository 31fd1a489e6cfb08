// kemu boot from the command line: modules loaded with --insmod, a refused one reported with
// insmod's message while boot goes on, and the module views printed.

import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
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
