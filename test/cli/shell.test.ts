// kemu shell through the real command line: a script on a pipe, over a module tree built
// from test/fixtures/kmod-tree (a library module and a platform driver that uses it).

import { fileURLToPath } from "node:url";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { buildInTree } from "../../sdk/build/intree.ts";
import { lsmod } from "../../sdk/cli/shell.ts";
import { kemu, tempDir } from "../helpers/cli.ts";

const TREE = fileURLToPath(new URL("../fixtures/kmod-tree", import.meta.url));
const mods = tempDir("kemu-shell-");

beforeAll(async () => {
  await buildInTree(TREE, mods, "5.0");
});

function shell(script: string, args: string[] = []) {
  return kemu(["shell", "--modules-dir", mods, ...args], { input: script });
}

describe("kemu shell", () => {
  it("runs a piped script: insmod of a built .ko, modprobe, lsmod with holders, rmmod", async () => {
    const r = await shell(
      `insmod ${join(mods, "5.0/demo_core.ko")}\n` +
        "modprobe demo_plat\n" +
        "lsmod\n" +
        "rmmod demo_plat demo_core\n" +
        "lsmod\n",
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^Module {18}Size {2}Used by\ndemo_plat {11}\s+\d+ {2}0\ndemo_core {11}\s+\d+ {2}1 demo_plat\nModule {18}Size {2}Used by\n$/,
    );
  });

  it("a driver source using an in-tree module's export is built against the installed Module.symvers", async () => {
    const src = join(mods, "user.ts");
    writeFileSync(src, `
import { MODULE_LICENSE, module_init, module_exit } from "kemu/kernel";
import { demo_core_hello } from "kemu/extern";
declare module "kemu/extern" { export function demo_core_hello(who: string): number; }
MODULE_LICENSE("GPL");
module_init(() => demo_core_hello("user"));
module_exit(() => {});
`);
    const r = await shell(`modprobe demo_core\ninsmod ${src}\nlsmod\ndmesg\n`);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^demo_core +\d+ +1 user$/m);
    expect(r.stdout).toContain("demo_core: hello from user\n");
  });

  it("prints the kernel's message for a failed command, goes on, and exits 1", async () => {
    const r = await shell("rmmod demo_core\nbogus\necho still here\ncat /proc/nosuch\n");
    expect(r.stderr).toBe(
      "rmmod: ERROR: Module demo_core is not currently loaded\n" +
        "kemu: bogus: command not found (try 'help')\n" +
        "/proc/nosuch: No such file or directory\n",
    );
    expect(r.stdout).toBe("still here\n");
    expect(r.status).toBe(1);
  });

  it("cat, ls /dev, dmesg, history and help; comments and blank lines are skipped", async () => {
    const r = await shell("# a comment\n\ncat /proc/version\nls /dev\ndmesg\nhistory\nhelp lsmod\n", ["--kernel", "4.20"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Linux version 4\.20\.0 /);
    expect(r.stdout).toContain("\n\n"); // ls /dev of a kernel without device nodes
    expect(r.stdout).toContain("] Run /sbin/init as init process\n");
    expect(r.stdout).toContain("    1  cat /proc/version\n    2  ls /dev\n    3  dmesg\n    4  history\n");
    expect(r.stdout).toMatch(/lsmod\n {4}the loaded modules/);
  });

  it("stops reading at exit and shuts the kernel down", async () => {
    const r = await shell("exit\necho not reached\n");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("");
  });

  it("has a --help and refuses unknown options with exit status 2", async () => {
    const h = await kemu(["shell", "--help"]);
    expect(h.status).toBe(0);
    expect(h.stdout).toContain("printf 'modprobe gpu_test\\nlsmod\\n' | npx kemu shell");
    const bad = await kemu(["shell", "--colour"]);
    expect(bad.status).toBe(2);
  });
});

describe("lsmod", () => {
  it("formats /proc/modules as kmod's lsmod does", () => {
    expect(lsmod("b 16384 1 a, Live 0xffffffffc0000000\na 8192 0 - Live 0xffffffffc0004000 (O)\n")).toBe(
      "Module                  Size  Used by\nb                      16384  1 a\na                       8192  0\n",
    );
  });
});
