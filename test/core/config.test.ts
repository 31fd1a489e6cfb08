// Boot configuration (core/config.ts, core/mm/e820.ts checks): parsing of sizes, defaults, and
// a ConfigError naming the field and saying what is wrong for every bad value. A failed boot
// rejects the promise Kernel.boot() returned and leaves nothing behind.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { memparse, MODULES_DIR, resolveConfig } from "../../core/config.ts";
import { EINVAL, KernelError } from "../../core/errno.ts";
import { boot, bootError } from "../helpers/kernel.ts";

const K = 2 ** 10;
const M = 2 ** 20;
const G = 2 ** 30;
const T = 2 ** 40;
const P = 2 ** 50;

const TOP_KEYS = "version, memory, pmem, reserved, gpus, physBits, seed, logBufLen, console, debugVm, kconfig, moduleSigKeys, moduleHeap, moduleTimeoutMs, autoload, modulesDir";
const SIZE_HINT = '(bytes, or a number with K, M, G, T, P or E, e.g. "4G")';

/** The failure must name `field` and carry exactly `message`. */
async function expectConfigError(cfg: unknown, field: string, message: string): Promise<void> {
  const err = await bootError(cfg);
  expect(err.field).toBe(field);
  expect(err.message).toBe(`boot config: ${field}: ${message}`);
}

describe("memparse", () => {
  it.each([
    ["4G", 4 * G],
    ["512M", 512 * M],
    ["0x1000", 4096],
    ["0X1000", 4096],
    ["4096", 4096],
    ["010", 8],
    ["0", 0],
    ["00", 0],
    ["1k", K],
    ["1K", K],
    ["2m", 2 * M],
    ["3g", 3 * G],
    ["1t", T],
    ["1T", T],
    ["4P", 4 * P],
    ["4p", 4 * P],
    ["0xffK", 255 * K],
    ["010M", 8 * M],
    ["9007199254740991", Number.MAX_SAFE_INTEGER],
  ])("%s is %d", (s, n) => {
    expect(memparse(s)).toBe(n);
  });

  it.each([
    ["empty", ""],
    ["a word", "lots"],
    ["a unit with B", "4GB"],
    ["a fraction", "1.5G"],
    ["a negative number", "-1"],
    ["a bare 0x", "0x"],
    ["an octal number with an 8", "08"],
    ["two suffixes", "4GG"],
    ["an unknown suffix", "4Q"],
    ["2^53 in decimal", "9007199254740992"],
    ["2^53 in hex", "0x20000000000000"],
    ["8P (2^53)", "8P"],
    ["1E (2^60)", "1E"],
    ["16E (wraps a u64 in the kernel)", "16E"],
    ["a 30-digit number", "999999999999999999999999999999"],
  ])("rejects %s", (_what, s) => {
    expect(memparse(s)).toBeUndefined();
  });
});

describe("defaults and accepted forms", () => {
  it("resolves an empty config to 5.0, 1G, 46 physical bits, seed 0, a 128 KiB log, DEBUG_VM on, module Kconfig off", () => {
    const c = resolveConfig({});
    expect(c).toEqual({
      version: "5.0",
      memory: G,
      pmem: [],
      reserved: [],
      gpus: [],
      physBits: 46,
      seed: 0,
      logBufLen: 128 * K,
      console: undefined,
      debugVm: true,
      kconfig: { MODULE_SIG: false, MODULE_SIG_FORCE: false, MODVERSIONS: false, MODULE_FORCE_LOAD: false, MODULE_FORCE_UNLOAD: false },
      moduleSigKeys: [],
      moduleHeapMiB: 64,
      moduleTimeoutMs: 1000,
      autoload: true,
      modulesDir: MODULES_DIR,
    });
    expect(resolveConfig()).toEqual(c);
  });

  it("takes sizes as numbers, hex, octal and lowercase suffixes", async () => {
    expect(resolveConfig({ memory: G }).memory).toBe(G);
    expect(resolveConfig({ memory: "0x40000000" }).memory).toBe(G);
    expect(resolveConfig({ memory: "1024m" }).memory).toBe(G);
    expect(resolveConfig({ memory: "01000M" }).memory).toBe(512 * M);
    expect(resolveConfig({ logBufLen: "8k" }).logBufLen).toBe(8 * K);
    // The region's file is created (sparse) at boot: one in a temporary directory.
    const file = join(mkdtempSync(join(tmpdir(), "kemu-config-")), "p.img");
    const k = await boot({ version: "4.20", memory: "2g", pmem: [{ size: "256m", start: "0x100000000", legacy: true, file }] });
    expect(k.config.version).toBe("4.20");
    expect(k.config.memory).toBe(2 * G);
    expect(k.config.pmem).toEqual([{ index: 0, start: 4 * G, size: 256 * M, file, legacy: true, mode: "fsdax", align: 2 * M }]);
    expect(k.profile.release).toBe("4.20.0");
  });

  it("accepts the boundaries: 64M of memory, physBits 36 and 52, a 4K log", () => {
    expect(resolveConfig({ memory: "64M" }).memory).toBe(64 * M);
    expect(resolveConfig({ physBits: 36 }).physBits).toBe(36);
    expect(resolveConfig({ physBits: 52 }).physBits).toBe(52);
    expect(resolveConfig({ logBufLen: 4096 }).logBufLen).toBe(4096);
    expect(resolveConfig({ seed: -5 }).seed).toBe(-5);
  });

  it("passes a console function through and turns console:false into none", () => {
    const fn = (_line: string) => {};
    expect(resolveConfig({ console: fn }).console).toBe(fn);
    expect(resolveConfig({ console: false }).console).toBeUndefined();
    expect(typeof resolveConfig({ console: true }).console).toBe("function");
  });
});

describe("Kernel.boot rejects a bad config with a ConfigError", () => {
  it("is a KernelError with errno EINVAL", async () => {
    const err = await bootError({ memory: "lots" });
    expect(err).toBeInstanceOf(KernelError);
    expect(err.errno).toBe(EINVAL);
    expect(err.code).toBe(-EINVAL);
    expect(err.name).toBe("ConfigError");
  });

  it("refuses a config that is not an object", async () => {
    await expectConfigError(null, "config", "expected an object, got null");
    await expectConfigError([], "config", "expected an object, got []");
    await expectConfigError("1G", "config", 'expected an object, got "1G"');
  });

  it("names an unknown top-level key and lists the known ones", async () => {
    await expectConfigError({ colour: "blue" }, "colour", `unknown key (expected one of: ${TOP_KEYS})`);
    // keys are case-sensitive
    await expectConfigError({ Memory: "1G" }, "Memory", `unknown key (expected one of: ${TOP_KEYS})`);
  });

  it("takes a pmem namespace alignment ndctl offers for its mode", async () => {
    expect(resolveConfig({ pmem: [{ size: "1G", mode: "devdax", align: "1G" }] }).pmem[0]!.align).toBe(G);
    expect(resolveConfig({ pmem: [{ size: "1G", align: "4K" }] }).pmem[0]!.align).toBe(4 * K);
    await expectConfigError({ pmem: [{ size: "1G", align: "1G" }] }, "pmem[0].align", "0x40000000 is not an alignment ndctl offers for fsdax (4K or 2M)");
    await expectConfigError({ pmem: [{ size: "1G", mode: "devdax", align: "64K" }] }, "pmem[0].align", "0x10000 is not an alignment ndctl offers for devdax (4K, 2M or 1G)");
  });

  it("takes autoload as a boolean and modulesDir as a path", async () => {
    expect(resolveConfig({ autoload: false, modulesDir: "/tmp/mods" })).toMatchObject({ autoload: false, modulesDir: "/tmp/mods" });
    await expectConfigError({ autoload: "yes" }, "autoload", 'expected true or false, got "yes"');
    await expectConfigError({ modulesDir: "" }, "modulesDir", 'expected a directory path, got ""');
  });

  it("names an unknown nested key with its path", async () => {
    await expectConfigError({ pmem: [{ size: "1G", colour: "red" }] }, "pmem[0].colour", "unknown key (expected one of: size, start, file, legacy, mode, align)");
    await expectConfigError(
      { pmem: [{ size: "1G" }, { size: "1G", offset: 0 }] },
      "pmem[1].offset",
      "unknown key (expected one of: size, start, file, legacy, mode, align)",
    );
    await expectConfigError({ reserved: [{ start: 0, size: 4096, type: 2 }] }, "reserved[0].type", "unknown key (expected one of: start, size)");
  });

  it("refuses an unknown version and lists the known ones", async () => {
    await expectConfigError({ version: "4.18" }, "version", 'unknown kernel version "4.18" (known: 4.19, 4.20, 5.0)');
    await expectConfigError({ version: 5 }, "version", "unknown kernel version 5 (known: 4.19, 4.20, 5.0)");
    await expectConfigError({ version: "5.0.0" }, "version", 'unknown kernel version "5.0.0" (known: 4.19, 4.20, 5.0)');
  });

  it("refuses memory that is not a size", async () => {
    await expectConfigError({ memory: "lots" }, "memory", `"lots" is not a size ${SIZE_HINT}`);
    await expectConfigError({ memory: "1.5G" }, "memory", `"1.5G" is not a size ${SIZE_HINT}`);
    await expectConfigError({ memory: -1 }, "memory", `-1 is not a size ${SIZE_HINT}`);
    await expectConfigError({ memory: 0.5 }, "memory", `0.5 is not a size ${SIZE_HINT}`);
    await expectConfigError({ memory: true }, "memory", `true is not a size ${SIZE_HINT}`);
    await expectConfigError({ memory: "16E" }, "memory", `"16E" is not a size ${SIZE_HINT}`);
  });

  it("refuses memory that is not a multiple of 1 MiB", async () => {
    await expectConfigError({ memory: "1000K" }, "memory", "0xfa000 is not a multiple of 1 MiB");
    await expectConfigError({ memory: G + 4096 }, "memory", "0x40001000 is not a multiple of 1 MiB");
  });

  it("refuses memory below 64M", async () => {
    await expectConfigError({ memory: "63M" }, "memory", "63M is too small: the kernel image and memmap need at least 64M");
    await expectConfigError({ memory: 0 }, "memory", "0M is too small: the kernel image and memmap need at least 64M");
  });

  it("refuses System RAM beyond the physical address space", async () => {
    await expectConfigError(
      { memory: "65G", physBits: 36 },
      "memory",
      "System RAM [mem 0x0000000100000000-0x000000107fffffff] is beyond the 36-bit physical address space (physBits)",
    );
  });

  it("refuses physBits out of range or not an integer", async () => {
    await expectConfigError({ physBits: 35 }, "physBits", "35 is not an integer from 36 to 52");
    await expectConfigError({ physBits: 53 }, "physBits", "53 is not an integer from 36 to 52");
    await expectConfigError({ physBits: 46.5 }, "physBits", "46.5 is not an integer from 36 to 52");
    await expectConfigError({ physBits: "46" }, "physBits", '"46" is not an integer from 36 to 52');
  });

  it("refuses a pmem list that is not a list of objects", async () => {
    await expectConfigError({ pmem: {} }, "pmem", "expected a list, got {}");
    await expectConfigError({ pmem: "4G" }, "pmem", 'expected a list, got "4G"');
    await expectConfigError({ pmem: ["4G"] }, "pmem[0]", 'expected an object, got "4G"');
    await expectConfigError({ reserved: [null] }, "reserved[0]", "expected an object, got null");
  });

  it("refuses a pmem size that is missing, zero, not a size or not 4 KiB aligned", async () => {
    await expectConfigError({ pmem: [{}] }, "pmem[0].size", 'missing (e.g. "4G")');
    await expectConfigError({ pmem: [{ size: "1G" }, { start: "8G" }] }, "pmem[1].size", 'missing (e.g. "4G")');
    await expectConfigError({ pmem: [{ size: 0 }] }, "pmem[0].size", "must not be 0");
    await expectConfigError({ pmem: [{ size: "0G" }] }, "pmem[0].size", "must not be 0");
    await expectConfigError({ pmem: [{ size: "big" }] }, "pmem[0].size", `"big" is not a size ${SIZE_HINT}`);
    await expectConfigError({ pmem: [{ size: 4097 }] }, "pmem[0].size", "0x1001 is not a multiple of 4 KiB (the page size)");
    await expectConfigError({ pmem: [{ size: "1000" }] }, "pmem[0].size", "0x3e8 is not a multiple of 4 KiB (the page size)");
  });

  it("refuses a pmem start that is not a size or not 4 KiB aligned", async () => {
    await expectConfigError({ pmem: [{ size: "1G", start: "0x100000800" }] }, "pmem[0].start", "0x100000800 is not a multiple of 4 KiB (the page size)");
    await expectConfigError({ pmem: [{ size: "1G", start: "here" }] }, "pmem[0].start", `"here" is not a size ${SIZE_HINT}`);
  });

  it("refuses a bad pmem file or legacy flag", async () => {
    await expectConfigError({ pmem: [{ size: "1G", file: "" }] }, "pmem[0].file", 'expected a file name, got ""');
    await expectConfigError({ pmem: [{ size: "1G", file: 7 }] }, "pmem[0].file", "expected a file name, got 7");
    await expectConfigError({ pmem: [{ size: "1G", legacy: "yes" }] }, "pmem[0].legacy", "expected true or false");
  });

  it("names the second of two overlapping pmem regions", async () => {
    await expectConfigError(
      { pmem: [{ size: "1G", start: "4G" }, { size: "1G", start: "0x120000000" }] },
      "pmem[1]",
      "[mem 0x0000000120000000-0x000000015fffffff] overlaps pmem[0] [mem 0x0000000100000000-0x000000013fffffff]",
    );
    // a region inside another, and identical regions
    await expectConfigError(
      { pmem: [{ size: "2G", start: "8G" }, { size: "4K", start: "0x200001000" }] },
      "pmem[1]",
      "[mem 0x0000000200001000-0x0000000200001fff] overlaps pmem[0] [mem 0x0000000200000000-0x000000027fffffff]",
    );
  });

  it("accepts pmem regions that touch without overlapping", async () => {
    const c = resolveConfig({ pmem: [{ size: "1G", start: "4G" }, { size: "1G", start: "5G" }] });
    expect(c.pmem.map((p) => p.start)).toEqual([4 * G, 5 * G]);
    const k = await boot({ pmem: [{ size: "1G", start: "4G" }, { size: "1G", start: "5G" }] });
    expect(k.config.pmem.map((p) => [p.start, p.size])).toEqual([[4 * G, G], [5 * G, G]]);
  });

  it("refuses pmem over System RAM", async () => {
    await expectConfigError(
      { pmem: [{ size: "1M", start: "0x20000000" }] },
      "pmem[0].start",
      "[mem 0x0000000020000000-0x00000000200fffff] overlaps System RAM [mem 0x0000000000100000-0x000000003ffdffff]",
    );
    await expectConfigError(
      { memory: "4G", pmem: [{ size: "1G", start: "0x13ff00000" }] },
      "pmem[0].start",
      "[mem 0x000000013ff00000-0x000000017fefffff] overlaps System RAM [mem 0x0000000100000000-0x000000013fffffff]",
    );
    // the first page of RAM counts too
    await expectConfigError(
      { pmem: [{ size: "4K", start: 0 }] },
      "pmem[0].start",
      "[mem 0x0000000000000000-0x0000000000000fff] overlaps System RAM [mem 0x0000000000000000-0x000000000009fbff]",
    );
  });

  it("refuses pmem over the firmware's reserved ranges", async () => {
    await expectConfigError(
      { pmem: [{ size: "16K", start: "0xfeffc000" }] },
      "pmem[0].start",
      "[mem 0x00000000feffc000-0x00000000feffffff] overlaps firmware reserved [mem 0x00000000feffc000-0x00000000feffffff]",
    );
    await expectConfigError(
      { pmem: [{ size: "4K", start: "0x3ffff000" }] },
      "pmem[0].start",
      "[mem 0x000000003ffff000-0x000000003fffffff] overlaps firmware reserved [mem 0x000000003ffe0000-0x000000003fffffff]",
    );
  });

  it("refuses pmem beyond the physBits address space, placed or automatic", async () => {
    await expectConfigError(
      { physBits: 36, pmem: [{ size: "2G", start: "63G" }] },
      "pmem[0]",
      "[mem 0x0000000fc0000000-0x000000103fffffff] is beyond the 36-bit physical address space (physBits)",
    );
    await expectConfigError(
      { physBits: 36, pmem: [{ size: "61G" }] },
      "pmem[0]",
      "[mem 0x0000000100000000-0x000000103fffffff] is beyond the 36-bit physical address space (physBits)",
    );
  });

  it("accepts pmem that ends exactly at the top of the address space", async () => {
    const k = await boot({ physBits: 36, pmem: [{ size: "60G" }] });
    expect(k.config.pmem[0]!.start + k.config.pmem[0]!.size).toBe(2 ** 36);
  });

  it("refuses a reserved range overlapping pmem, naming the pmem region", async () => {
    await expectConfigError(
      { pmem: [{ size: "1G", start: "4G" }], reserved: [{ start: "4G", size: "1M" }] },
      "pmem[0]",
      "[mem 0x0000000100000000-0x000000013fffffff] overlaps reserved[0] [mem 0x0000000100000000-0x00000001000fffff]",
    );
  });

  it("names the second of two overlapping reserved ranges", async () => {
    await expectConfigError(
      { reserved: [{ start: "0x20000000", size: "2M" }, { start: "0x20100000", size: "2M" }] },
      "reserved[1]",
      "[mem 0x0000000020100000-0x00000000202fffff] overlaps reserved[0] [mem 0x0000000020000000-0x00000000201fffff]",
    );
  });

  it("refuses a reserved range over a firmware reserved range", async () => {
    await expectConfigError(
      { reserved: [{ start: "0x3ffe0000", size: "4K" }] },
      "reserved[0]",
      "[mem 0x000000003ffe0000-0x000000003ffe0fff] overlaps the firmware reserved range [mem 0x000000003ffe0000-0x000000003fffffff]",
    );
  });

  it("refuses a reserved range that is missing a field, unaligned, empty or beyond physBits", async () => {
    await expectConfigError({ reserved: [{ size: "1M" }] }, "reserved[0].start", "missing");
    await expectConfigError({ reserved: [{ start: "1G" }] }, "reserved[0].size", "missing");
    await expectConfigError({ reserved: [{ start: "0x20000800", size: "4K" }] }, "reserved[0].start", "0x20000800 is not a multiple of 4 KiB (the page size)");
    await expectConfigError({ reserved: [{ start: "0x20000000", size: 100 }] }, "reserved[0].size", "0x64 is not a multiple of 4 KiB (the page size)");
    await expectConfigError({ reserved: [{ start: "0x20000000", size: 0 }] }, "reserved[0].size", "must not be 0");
    await expectConfigError(
      { physBits: 36, reserved: [{ start: "64G", size: "4K" }] },
      "reserved[0]",
      "[mem 0x0000001000000000-0x0000001000000fff] is beyond the 36-bit physical address space (physBits)",
    );
  });

  it("refuses bad seed, logBufLen, console and debugVm values", async () => {
    await expectConfigError({ seed: 1.5 }, "seed", "expected an integer");
    await expectConfigError({ seed: "1" }, "seed", "expected an integer");
    await expectConfigError({ seed: 2 ** 53 }, "seed", "expected an integer");
    await expectConfigError({ logBufLen: "abc" }, "logBufLen", `"abc" is not a size ${SIZE_HINT}`);
    await expectConfigError({ logBufLen: "1K" }, "logBufLen", "must be at least 4K");
    await expectConfigError({ logBufLen: 4095 }, "logBufLen", "must be at least 4K");
    await expectConfigError({ console: "ttyS0" }, "console", "expected true, false or a function");
    await expectConfigError({ console: 1 }, "console", "expected true, false or a function");
    await expectConfigError({ debugVm: "no" }, "debugVm", "expected true or false");
    await expectConfigError({ debugVm: 0 }, "debugVm", "expected true or false");
  });

  it("reports the first bad field in the order of the config's fields", async () => {
    // version is checked before memory, memory before pmem
    await expectConfigError({ memory: "lots", version: "3.0" }, "version", 'unknown kernel version "3.0" (known: 4.19, 4.20, 5.0)');
    await expectConfigError({ pmem: [{}], memory: "lots" }, "memory", `"lots" is not a size ${SIZE_HINT}`);
  });
});

describe("after a failed boot", () => {
  it("the next boot works and prints exactly what a first boot prints", async () => {
    const fresh = await boot({ seed: 3 });
    const expected = fresh.dmesg();
    for (const bad of [
      { memory: "lots" },
      { pmem: [{ size: "1G", start: "4G" }, { size: "1G", start: "4G" }] },
      { reserved: [{ start: "0x3ffe0000", size: "4K" }] },
      { physBits: 36, pmem: [{ size: "61G" }] },
    ]) {
      await bootError(bad);
    }
    const k = await boot({ seed: 3 });
    expect(k.state).toBe("running");
    expect(k.dmesg()).toBe(expected);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("the caller's config object is not modified, by a failure or by pmem placement", async () => {
    const bad = { pmem: [{ size: "1G" }, { size: "1G", start: "0x3ff00000" }] };
    const badCopy = structuredClone(bad);
    await expectConfigError(
      bad,
      "pmem[1].start",
      "[mem 0x000000003ff00000-0x000000007fefffff] overlaps System RAM [mem 0x0000000000100000-0x000000003ffdffff]",
    );
    expect(bad).toEqual(badCopy);
    const good = { pmem: [{ size: "1G" }] };
    const k = await boot(good);
    expect(k.config.pmem[0]!.start).toBe(4 * G);
    expect(good).toEqual({ pmem: [{ size: "1G" }] });
  });
});

describe("the kernel image", () => {
  it("refuses a reserved range over the kernel image at 16 MiB", async () => {
    await expectConfigError(
      { reserved: [{ start: "0x2000000", size: "1M" }] },
      "reserved[0]",
      "[mem 0x0000000002000000-0x00000000020fffff] overlaps the kernel image [mem 0x0000000001000000-0x00000000027fffff]",
    );
  });
});
