// modprobe and udev's autoload (core/kernel/kmod.ts) over a tree built by `kemu modules`'
// buildInTree (sdk/build/intree.ts): test/fixtures/kmod-tree has a library module
// (demo_core, EXPORT_SYMBOL_GPL) and a platform driver (demo_plat, MODULE_ALIAS
// "platform:kemu-demo") that uses it.

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KernelError, ENOENT } from "../../core/errno.ts";
import { buildInTree } from "../../sdk/build/intree.ts";
import { boot } from "../helpers/kernel.ts";

const TREE = fileURLToPath(new URL("../fixtures/kmod-tree", import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kemu-kmod-"));
  await buildInTree(TREE, dir, "5.0");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("depmod", () => {
  it("writes modules.dep with each module's dependencies and modules.alias from MODULE_ALIAS", () => {
    expect(readFileSync(join(dir, "5.0/modules.dep"), "utf8")).toBe("demo_core.ko:\ndemo_plat.ko: demo_core.ko\n");
    expect(readFileSync(join(dir, "5.0/modules.alias"), "utf8")).toBe("# Aliases extracted from modules themselves.\nalias platform:kemu-demo demo_plat\n");
    expect(readFileSync(join(dir, "5.0/Module.symvers"), "utf8")).toMatch(/^0x[0-9a-f]{8}\tdemo_core_hello\tdemo_core\tEXPORT_SYMBOL_GPL\n$/);
  });
});

describe("depmod of a module whose dependencies depend on each other", () => {
  // top uses m1 and m2, and m2 uses m1 too: m1 must load before m2 whatever order
  // top's "depends" names them in.
  const lib = (name: string, uses: string[]) => `
import { MODULE_LICENSE, EXPORT_SYMBOL_GPL } from "kemu/kernel";
${uses.length ? `import { ${uses.map((u) => `${u}_fn`).join(", ")} } from "kemu/extern";` : ""}
declare module "kemu/extern" { ${uses.map((u) => `export function ${u}_fn(): number;`).join(" ")} }
MODULE_LICENSE("GPL");
export function ${name}_fn(): number { return ${["0", ...uses.map((u) => `${u}_fn()`)].join(" + ")}; }
EXPORT_SYMBOL_GPL(${name}_fn);
`;
  let tree: string;
  beforeAll(async () => {
    tree = mkdtempSync(join(tmpdir(), "kemu-kmod-diamond-"));
    mkdirSync(join(tree, "src/drivers"), { recursive: true });
    writeFileSync(join(tree, "src/drivers/m1.ts"), lib("m1", []));
    writeFileSync(join(tree, "src/drivers/m2.ts"), lib("m2", ["m1"]));
    writeFileSync(join(tree, "src/drivers/top.ts"), lib("top", ["m1", "m2"]));
    await buildInTree(join(tree, "src"), join(tree, "out"), "5.0");
  });
  afterAll(() => rmSync(tree, { recursive: true, force: true }));

  it("lists them deepest last, and modprobe loads each after what it needs", async () => {
    expect(readFileSync(join(tree, "out/5.0/modules.dep"), "utf8")).toContain("top.ko: m2.ko m1.ko\n");
    const k = await boot({ modulesDir: join(tree, "out") });
    expect((await k.modprobe("top")).map((m) => m.name)).toEqual(["m1", "m2", "top"]);
  });
});

describe("modprobe", () => {
  it("loads what a module depends on first, and nothing twice", async () => {
    const k = await boot({ modulesDir: dir });
    const loaded = await k.modprobe("demo_plat");
    expect(loaded.map((m) => m.name)).toEqual(["demo_core", "demo_plat"]);
    expect(await k.modprobe("demo_plat")).toEqual([]);
    expect(k.read("/proc/modules")).toMatch(/^demo_plat .* - Live /m);
    expect(k.read("/proc/modules")).toMatch(/^demo_core \d+ 1 demo_plat, Live /m);
  });

  it("resolves an alias, with fnmatch patterns, and names '-' and '_' alike", async () => {
    const k = await boot({ modulesDir: dir });
    expect(k.kmod.resolve("platform:kemu-demo")).toEqual(["demo_plat"]);
    expect(k.kmod.resolve("demo-core")).toEqual(["demo_core"]);
    expect(k.kmod.resolve("platform:other")).toEqual([]);
  });

  it("fails as kmod does for a name nothing resolves to, and loads nothing", async () => {
    const k = await boot({ modulesDir: dir });
    const e = await k.modprobe("nosuch").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).errno).toBe(ENOENT);
    expect((e as KernelError).message).toBe(`modprobe: FATAL: Module nosuch not found in directory ${join(dir, "5.0")}`);
    expect(k.read("/proc/modules")).toBe("");
  });

  it("finds nothing for a kernel version that has no modules installed", async () => {
    const k = await boot({ modulesDir: dir, version: "4.20" });
    expect(k.kmod.resolve("demo_plat")).toEqual([]);
  });
});

describe("udev autoload", () => {
  it("a platform device added later gets its driver (and the driver's dependencies) loaded", async () => {
    const k = await boot({ modulesDir: dir, autoload: true });
    expect(k.read("/proc/modules")).toBe("");
    k.platform.platform_device_register_simple("kemu-demo", 0);
    // udevd runs when the CPU is idle again: here, at the next settle.
    await k.kmod.settle();
    expect(k.read("/proc/modules")).toMatch(/^demo_plat /m);
    expect(k.dmesg()).toContain("demo_core: hello from probe");
  });

  it("a driver udev cannot load goes to udevd's journal, not to the kernel log, and the kernel goes on", async () => {
    const broken = mkdtempSync(join(tmpdir(), "kemu-kmod-broken-"));
    try {
      cpSync(dir, broken, { recursive: true });
      rmSync(join(broken, "5.0/demo_core.ko"));
      const k = await boot({ modulesDir: broken, autoload: true });
      k.platform.platform_device_register_simple("kemu-demo", 0);
      const seq = k.log.nextSeq;
      await k.kmod.settle();
      expect(k.kmod.journal).toEqual([
        `systemd-udevd: kemu-demo.0: insmod: ERROR: could not load module ${join(broken, "5.0/demo_core.ko")}: No such file or directory`,
      ]);
      expect(k.log.messages(seq)).toEqual([]);
      expect(k.read("/proc/modules")).toBe("");
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  it("does nothing with autoload off", async () => {
    const k = await boot({ modulesDir: dir, autoload: false });
    k.platform.platform_device_register_simple("kemu-demo", 0);
    await k.insmod(readFileSync(join(dir, "5.0/demo_core.ko")));
    expect(k.read("/proc/modules")).not.toMatch(/^demo_plat /m);
  });

  it("a device bound already is left alone", async () => {
    const k = await boot({ modulesDir: dir, autoload: true });
    await k.modprobe("demo_plat");
    k.platform.platform_device_register_simple("kemu-demo", 1);
    const before = k.dmesg();
    await k.kmod.settle();
    expect(k.dmesg()).toBe(before + "");
  });
});
