// The module loader's figures: insmod of a built module (isolate, link, init), the memory one
// loaded isolated module costs, and a kernel-symbol call from driver code, isolated against
// built-in, measured side by side.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kernel } from "../core/kernel.ts";
import { parseKo, serializeKo, type KoImage } from "../core/module/ko.ts";
import type { Module } from "../core/module/module.ts";
import { build } from "../sdk/build/build.ts";
import { gc, type Figure } from "./figure.ts";

/** A small but real driver: a platform driver, a device, a devm allocation in probe. */
const DRIVER = `
import {
  MODULE_LICENSE, module_init, module_exit, GFP_KERNEL, dev_info, devm_kzalloc,
  platform_driver_register, platform_driver_unregister, platform_device_register_simple,
  platform_device_unregister, page_ref_count, EXPORT_SYMBOL, type platform_device,
} from "kemu/kernel";
MODULE_LICENSE("GPL");
let pdev: platform_device | null = null;
const drv = {
  driver: { name: "benchdrv" },
  probe(p: platform_device): number {
    if (!devm_kzalloc(p.dev, 256, GFP_KERNEL)) return -12;
    dev_info(p.dev, "bound\\n");
    return 0;
  },
};
/** n calls of a kernel function; the bench calls this through the module's dispatcher. */
export function benchdrv_symcall(pfn: number, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += page_ref_count(pfn);
  return sum;
}
EXPORT_SYMBOL(benchdrv_symcall);
module_init(() => {
  const err = platform_driver_register(drv);
  if (err) return err;
  pdev = platform_device_register_simple("benchdrv", 0, null, 0);
  return 0;
});
module_exit(() => {
  if (pdev) platform_device_unregister(pdev);
  platform_driver_unregister(drv);
});
`;

/** Build DRIVER as module `name` for 5.0 (its driver and export named after it: one owner per name). */
async function buildDriver(name: string, intree = false): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), "kemu-bench-"));
  try {
    const entry = join(dir, `${name}.ts`);
    writeFileSync(entry, DRIVER.replaceAll("benchdrv", name));
    return (await build({ entry, name, kernel: "5.0", intree })).ko;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface LoadCtx {
  k: Kernel;
  image: KoImage;
  n: number;
}

export const insmodMedian: Figure<LoadCtx> = {
  name: "insmod_median_ms",
  unit: "ms",
  what: "insmod of a built module: isolate, link, init (probe included)",
  target: { op: "<=", value: 5 },
  repeats: 21,
  async setup() {
    return { k: await Kernel.boot({ version: "5.0" }), image: parseKo(await buildDriver("benchdrv")), n: 0 };
  },
  async sample(ctx) {
    const { k, image } = ctx;
    // A module file the kernel has not seen: nothing about its code is cached.
    const ko = serializeKo({ ...image, code: `${image.code}// load ${ctx.n++}\n` });
    const t0 = performance.now();
    await k.insmod(ko);
    const ms = performance.now() - t0;
    k.rmmod("benchdrv");
    return ms;
  },
  async teardown({ k }) {
    await k.shutdown();
  },
};

const MEM_MODULES = 16;

interface MemCtx {
  k: Kernel;
  kos: Uint8Array[];
}

function settledRss(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().rss;
}

export const moduleMem: Figure<MemCtx> = {
  name: "module_mem_mib",
  unit: "MiB",
  what: `resident memory per loaded isolated module (${MEM_MODULES} loaded)`,
  target: { op: "<=", value: 3 },
  repeats: 5,
  async setup() {
    const kos: Uint8Array[] = [];
    for (let i = 0; i < MEM_MODULES; i++) kos.push(await buildDriver(`memdrv${i}`));
    return { k: await Kernel.boot({ version: "5.0" }), kos };
  },
  async sample({ k, kos }) {
    const before = settledRss();
    for (const ko of kos) await k.insmod(ko);
    const after = settledRss();
    for (let i = kos.length - 1; i >= 0; i--) k.rmmod(`memdrv${i}`);
    return (after - before) / kos.length / 2 ** 20;
  },
  async teardown({ k }) {
    await k.shutdown();
  },
};

const CALLS = 20_000;

interface CallCtx {
  k: Kernel;
  isolated: Module;
  builtin: Module;
  pfn: number;
}

/** ns per page_ref_count() call made by driver code, through its shim and the kernel's checks. */
function symcall(mod: Module, pfn: number): number {
  const fn = mod.exportFns![`${mod.name}_symcall`]!;
  const t0 = performance.now();
  mod.runtime!.call(fn, 0, [pfn, CALLS]);
  return ((performance.now() - t0) * 1e6) / CALLS;
}

async function callSetup(): Promise<CallCtx> {
  const k = await Kernel.boot({ version: "5.0" });
  // Both in-tree builds: only those can be built in, and the two should differ in nothing else.
  const isolated = await k.insmod(await buildDriver("callisol", true));
  const builtin = await k.insmod(await buildDriver("callbuiltin", true), { builtin: true });
  return { k, isolated, builtin, pfn: 0x1000 };
}

async function callTeardown({ k }: CallCtx): Promise<void> {
  await k.shutdown();
}

export const symcallIsolated: Figure<CallCtx> = {
  name: "symcall_isolated_ns",
  unit: "ns",
  what: "a kernel-symbol call from an isolated driver",
  repeats: 9,
  setup: callSetup,
  sample: ({ isolated, pfn }) => symcall(isolated, pfn),
  teardown: callTeardown,
};

export const symcallBuiltin: Figure<CallCtx> = {
  name: "symcall_builtin_ns",
  unit: "ns",
  what: "the same call from the same driver built in",
  repeats: 9,
  setup: callSetup,
  sample: ({ builtin, pfn }) => symcall(builtin, pfn),
  teardown: callTeardown,
};

export const symcallRatio: Figure<CallCtx> = {
  name: "symcall_isolated_vs_builtin",
  unit: "x",
  what: "isolated / built-in symbol call, measured alternately in one run",
  repeats: 9,
  setup: callSetup,
  sample: ({ isolated, builtin, pfn }) => symcall(isolated, pfn) / symcall(builtin, pfn),
  teardown: callTeardown,
};
