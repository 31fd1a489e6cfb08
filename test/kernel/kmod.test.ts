// modprobe and udev's autoload (core/kernel/kmod.ts) over a tree built by `kemu modules`'
// buildInTree (sdk/build/intree.ts): test/fixtures/kmod-tree has a library module
// (demo_core, EXPORT_SYMBOL_GPL) and a platform driver (demo_plat, MODULE_ALIAS
// "platform:kemu-demo") that uses it.

import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
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
