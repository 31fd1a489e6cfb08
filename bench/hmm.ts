// HMM through a driver: the device-private CPU fault (a process reads a page that is in the
// GPU's VRAM; gpu_test's hmm_devmem_ops.fault migrates it back with migrate_vma()), isolated
// against a floor and against the same driver built in, and migration to VRAM in 512-page
// batches against host memcpy of the same bytes. Each ratio is measured side by side in one
// sample.

import { fileURLToPath } from "node:url";
import ivm from "isolated-vm";
import { Kernel } from "../core/kernel.ts";
import type { Process } from "../core/kernel/process.ts";
import { O_RDWR } from "../core/fs/file.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../core/mm/mmap.ts";
import type { Module } from "../core/module/module.ts";
import { build } from "../sdk/build/build.ts";
import { GPU_TEST_MIGRATE, gpu_test_cmd_bytes } from "../drivers/gpu_test/gpu_test_uapi.ts";
import type { Figure } from "./figure.ts";

const PAGE = 4096;
/** Pages per sample: one migrate_vma() batch. */
const BATCH = 512;
const DRIVER = fileURLToPath(new URL("../drivers/gpu_test/gpu_test.ts", import.meta.url));

let built: Promise<Uint8Array> | null = null;
/** gpu_test, an in-tree build (only those can be built in), for 5.0. */
function gpuKo(): Promise<Uint8Array> {
  built ??= build({ entry: DRIVER, kernel: "5.0", intree: true }).then((r) => r.ko);
  return built;
}

/** A kernel with gpu_test loaded one way, and a process with 512 pages of data and the device open. */
interface Gpu {
  k: Kernel;
  mod: Module;
  p: Process;
  buf: number;
  cmd: number;
  fd: number;
  page: Uint8Array;
}

async function gpu(builtin: boolean): Promise<Gpu> {
  const k = await Kernel.boot({ version: "5.0", memory: "1G" });
  const mod = await k.insmod(await gpuKo(), { builtin });
  const p = k.spawn("bench");
  const rw = PROT_READ | PROT_WRITE;
  const buf = p.mmap(0, BATCH * PAGE, rw, MAP_PRIVATE | MAP_ANONYMOUS);
  p.write(buf, new Uint8Array(BATCH * PAGE).map((_, i) => i & 0xff));
  const cmd = p.mmap(0, PAGE, rw, MAP_PRIVATE | MAP_ANONYMOUS);
  p.write(cmd, gpu_test_cmd_bytes({ addr: buf, npages: BATCH }));
  const fd = p.open("/dev/gpu_test", O_RDWR);
  return { k, mod, p, buf, cmd, fd, page: new Uint8Array(PAGE) };
}

async function done(g: Gpu): Promise<void> {
  g.p.close(g.fd);
  g.p.exit();
  await g.k.shutdown();
}

/** Migrate the 512 pages into VRAM: ms. */
function migrate(g: Gpu): number {
  const t0 = performance.now();
  g.p.ioctl(g.fd, GPU_TEST_MIGRATE, g.cmd);
  return performance.now() - t0;
}

/** Read every page back (each read faults, and the driver migrates the page back): µs per fault. */
function faultBack(g: Gpu): number {
  const { p, buf, page } = g;
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) p.readInto(buf + i * PAGE, page);
  return ((performance.now() - t0) * 1000) / BATCH;
}

/** The floor: one bare isolated-vm sync call plus a 4 KiB copy, µs. */
interface Floor {
  isolate: ivm.Isolate;
  noop: ivm.Reference<() => number>;
  src: Uint8Array;
  dst: Uint8Array;
}

function floorSetup(): Floor {
  const isolate = new ivm.Isolate({ memoryLimit: 16 });
  const ctx = isolate.createContextSync();
  ctx.evalSync("globalThis.noop = function () { return 0; };");
  const noop = ctx.global.getSync("noop", { reference: true }) as ivm.Reference<() => number>;
  return { isolate, noop, src: new Uint8Array(PAGE).fill(7), dst: new Uint8Array(PAGE) };
}

function floor(f: Floor): number {
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) {
    f.noop.applySync(undefined, []);
    f.dst.set(f.src);
  }
  return ((performance.now() - t0) * 1000) / BATCH;
}

/** A figure measured on another's context: the same setup and teardown. */
function alongside<C>(base: Figure<C>, f: Omit<Figure<C>, "setup" | "teardown">): Figure<C> {
  return { ...f, setup: base.setup, teardown: base.teardown };
}

interface FaultCtx {
  isolated: Gpu;
  floor: Floor;
}

export const faultIsolatedVsFloor: Figure<FaultCtx> = {
  name: "fault_isolated_vs_floor",
  unit: "x",
  what: "device-private CPU fault via the isolated driver / (bare ivm call + 4 KiB copy)",
  target: { op: "<=", value: 2.0 },
  repeats: 9,
  async setup() {
    return { isolated: await gpu(false), floor: floorSetup() };
  },
  sample({ isolated, floor: f }) {
    migrate(isolated);
    return faultBack(isolated) / floor(f);
  },
  async teardown({ isolated, floor: f }) {
    f.noop.release();
    f.isolate.dispose();
    await done(isolated);
  },
};

export const faultIsolatedUs = alongside(faultIsolatedVsFloor, {
  name: "fault_isolated_us",
  unit: "us",
  what: "the device-private CPU fault via the isolated driver",
  repeats: 9,
  sample({ isolated }) {
    migrate(isolated);
    return faultBack(isolated);
  },
});

export const faultFloorUs = alongside(faultIsolatedVsFloor, {
  name: "fault_floor_us",
  unit: "us",
  what: "floor: one bare isolated-vm sync call plus a 4 KiB copy",
  repeats: 9,
  sample: ({ floor: f }) => floor(f),
});

/** Kernel<->isolate crossings per fault: calls into the module plus calls out of it. */
export const faultCrossings = alongside(faultIsolatedVsFloor, {
  name: "fault_crossings",
  unit: "hops",
  what: "kernel<->isolate crossings per device-private fault (each way counted)",
  repeats: 3,
  sample({ isolated }) {
    migrate(isolated);
    const rt = isolated.mod.runtime!;
    const a = rt.stats();
    faultBack(isolated);
    const b = rt.stats();
    return ((b.calls ?? 0) - (a.calls ?? 0) + (b.kcalls ?? 0) - (a.kcalls ?? 0)) / BATCH;
  },
});

interface BothCtx {
  isolated: Gpu;
  builtin: Gpu;
}

export const faultIsolatedVsBuiltin: Figure<BothCtx> = {
  name: "fault_isolated_vs_builtin",
  unit: "x",
  what: "the same fault path, isolated / built-in",
  repeats: 9,
  async setup() {
    return { isolated: await gpu(false), builtin: await gpu(true) };
  },
  sample({ isolated, builtin }) {
    migrate(isolated);
    migrate(builtin);
    const i = faultBack(isolated);
    const b = faultBack(builtin);
    return i / b;
  },
  async teardown({ isolated, builtin }) {
    await done(isolated);
    await done(builtin);
  },
};

interface MigrateCtx {
  isolated: Gpu;
  src: Uint8Array;
  dst: Uint8Array;
}

/** Host memcpy of the batch's bytes: ms. */
function memcpy(c: MigrateCtx): number {
  const t0 = performance.now();
  c.dst.set(c.src);
  return performance.now() - t0;
}

export const migrateVsMemcpy: Figure<MigrateCtx> = {
  name: "migrate_vs_memcpy",
  unit: "x",
  what: "migrate to VRAM in 512-page batches, as a fraction of host memcpy bandwidth",
  target: { op: ">=", value: 0.5 },
  repeats: 9,
  async setup() {
    return { isolated: await gpu(false), src: new Uint8Array(BATCH * PAGE).fill(3), dst: new Uint8Array(BATCH * PAGE) };
  },
  sample(c) {
    // The pages come back to system memory first (not timed).
    faultBack(c.isolated);
    const m = migrate(c.isolated);
    return memcpy(c) / m;
  },
  async teardown({ isolated }) {
    await done(isolated);
  },
};

export const migrateBatchUs = alongside(migrateVsMemcpy, {
  name: "migrate_batch_us",
  unit: "us",
  what: "one 512-page migration to VRAM through the isolated driver",
  repeats: 9,
  sample(c) {
    faultBack(c.isolated);
    return migrate(c.isolated) * 1000;
  },
});
