// drivers/gpu_test: a GPU-like HMM driver using the 4.20/5.0 API through kemu/kernel: VRAM
// from hmm_devmem_add(), migration with migrate_vma() (system -> VRAM on an ioctl, VRAM ->
// system from hmm_devmem_ops.fault), a mirror of the opener's address space (hmm_mirror,
// hmm_vma_fault/get_pfns), and /dev/gpu_test. Each scenario runs isolated and built in, on
// 4.20 and 5.0, with the invariant and leak checks of boot().

import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import type { Process } from "../../core/kernel/process.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import type { Module } from "../../core/module/module.ts";
import { is_swap_pte, pte_to_swp_entry } from "../../core/mm/pgtable.ts";
import { is_device_private_entry, swp_offset } from "../../core/mm/swapops.ts";
import type { KernelVersion } from "../../core/version.ts";
import { buildDriver } from "../helpers/build.ts";
import {
  GPU_TEST_CMD_SIZE, GPU_TEST_MIGRATE, GPU_TEST_MIRRORED, GPU_TEST_PROT_DEV_PRIVATE_LOCAL, GPU_TEST_PROT_ERROR, GPU_TEST_PROT_NONE,
  GPU_TEST_PROT_READ, GPU_TEST_PROT_WRITE, GPU_TEST_READ, GPU_TEST_SNAPSHOT, gpu_test_cmd_bytes, gpu_test_cmd_parse, type GpuTestCmd,
} from "../../drivers/gpu_test/gpu_test_uapi.ts";
import { EINVAL, EFAULT, ENOTTY } from "../../core/errno.ts";
import { boot, rmmodError } from "../helpers/kernel.ts";
import { errnoOf, PAGE } from "../helpers/process.ts";

const DRIVER = fileURLToPath(new URL("../../drivers/gpu_test/gpu_test.ts", import.meta.url));
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const DEV_W = GPU_TEST_PROT_DEV_PRIVATE_LOCAL | GPU_TEST_PROT_WRITE;

async function loadGpu(k: Kernel, builtin: boolean): Promise<Module> {
  return k.insmod((await buildDriver(DRIVER, k.config.version)).ko, { builtin, filename: "gpu_test.ko" });
}

/** A process with the device open, a command block and a buffer of `npages` holding `data`. */
class App {
  readonly p: Process;
  readonly fd: number;
  readonly cmd: number;
  readonly out: number;
  constructor(k: Kernel, comm = "app") {
    this.p = k.spawn(comm);
    this.fd = this.p.open("/dev/gpu_test", O_RDWR);
    this.cmd = this.p.mmap(0, PAGE, RW, ANON);
    this.out = this.p.mmap(0, 64 * PAGE, RW, ANON);
  }
  /** An ioctl on a command block; the block as the driver left it. */
  ioctl(nr: number, c: Partial<GpuTestCmd>): GpuTestCmd {
    this.p.write(this.cmd, gpu_test_cmd_bytes(c));
    this.p.ioctl(this.fd, nr, this.cmd);
    return gpu_test_cmd_parse(this.p.read(this.cmd, GPU_TEST_CMD_SIZE));
  }
  migrate(addr: number, npages: number): GpuTestCmd {
    return this.ioctl(GPU_TEST_MIGRATE, { addr, npages });
  }
  snapshot(addr: number, npages: number): number[] {
    this.ioctl(GPU_TEST_SNAPSHOT, { addr, ptr: this.out, npages });
    return [...this.p.read(this.out, npages)];
  }
  /** The device reads the range through its mirror: the bytes, and the command block. */
  mirrorRead(addr: number, npages: number): { data: Uint8Array; cmd: GpuTestCmd } {
    const cmd = this.ioctl(GPU_TEST_READ, { addr, ptr: this.out, npages });
    return { data: this.p.read(this.out, npages * PAGE), cmd };
  }
}

function pattern(npages: number, seed = 0): Uint8Array {
  return new Uint8Array(npages * PAGE).map((_, i) => (i * 31 + seed + (i >> 12)) & 0xff);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

const MODES: [KernelVersion, boolean][] = [["4.20", false], ["4.20", true], ["5.0", false], ["5.0", true]];

for (const [version, builtin] of MODES) {
  describe(`gpu_test on ${version}, ${builtin ? "built in" : "isolated"}`, () => {
    it("loads: its VRAM is device-private memory, /dev/gpu_test a misc device; it unloads clean", async () => {
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      await loadGpu(k, builtin);
      expect(k.log.messages(seq).at(-1)).toBe("gpu_test: 128 MiB of VRAM at pfn 0x3ffff8000-0x3ffffffff");
      expect(k.read("/proc/misc")).toBe(" 63 gpu_test\n");
      expect(k.read("/proc/iomem")).toContain("3ffff8000000-3fffffffffff : hmm_device0");
      k.rmmod("gpu_test");
      expect(k.read("/proc/misc")).toBe("");
      expect(k.read("/proc/iomem")).not.toContain("hmm_device0");
    });

    it("MIGRATE moves a buffer into VRAM; CPU reads fault each page back through the driver, data intact", async () => {
      const k = await boot({ version });
      await loadGpu(k, builtin);
      const app = new App(k);
      const { p } = app;
      const n = 16;
      const buf = p.mmap(0, n * PAGE, RW, ANON);
      const data = pattern(n);
      p.write(buf, data);
      expect(app.snapshot(buf, n)).toEqual(Array(n).fill(GPU_TEST_PROT_WRITE));
      const seq = k.log.nextSeq;
      expect(app.migrate(buf, n).cpages).toBe(n);
      expect(app.snapshot(buf, n)).toEqual(Array(n).fill(DEV_W));
      // The ptes are device-private entries for pages of the driver's VRAM.
      const pte = p.mm!.ptep_get(buf);
      expect(is_swap_pte(pte) && is_device_private_entry(pte_to_swp_entry(pte))).toBe(true);
      expect(k.mm.is_device_private_page(swp_offset(pte_to_swp_entry(pte)))).toBe(true);
      // One page back: only it leaves VRAM.
      expect(same(p.read(buf + 3 * PAGE, PAGE), data.subarray(3 * PAGE, 4 * PAGE))).toBe(true);
      expect(app.snapshot(buf, n)).toEqual([...Array(3).fill(DEV_W), GPU_TEST_PROT_WRITE, ...Array(n - 4).fill(DEV_W)]);
      // The rest, with a write in the middle of it.
      p.write(buf + 5 * PAGE + 100, [0xaa]);
      data[5 * PAGE + 100] = 0xaa;
      expect(same(p.read(buf, n * PAGE), data)).toBe(true);
      expect(app.snapshot(buf, n)).toEqual(Array(n).fill(GPU_TEST_PROT_WRITE));
      expect(k.log.messages(seq)).toEqual([]);
      // Migrating again and again: VRAM pages are reused.
      for (let i = 0; i < 3; i++) {
        expect(app.migrate(buf, n).cpages).toBe(n);
        expect(same(p.read(buf, n * PAGE), data)).toBe(true);
      }
      p.exit();
      k.rmmod("gpu_test");
    });

    it("READ: the device reads through its mirror (hmm_vma_fault); VRAM pages in place; the mirror follows invalidations", async () => {
      const k = await boot({ version });
      await loadGpu(k, builtin);
      const app = new App(k);
      const { p } = app;
      const n = 8;
      const buf = p.mmap(0, n * PAGE, RW, ANON);
      const data = pattern(n, 7);
      p.write(buf, data.subarray(0, 4 * PAGE)); // the last four pages are never touched
      data.fill(0, 4 * PAGE);
      expect(app.migrate(buf, 2).cpages).toBe(2);
      const r = app.mirrorRead(buf, n);
      expect(same(r.data.subarray(0, n * PAGE), data)).toBe(true);
      expect([r.cmd.cpages, r.cmd.faults]).toEqual([n, 1]);
      // Reading faulted the untouched pages in (the zero page: read-only), and left VRAM alone.
      expect(app.snapshot(buf, n)).toEqual([DEV_W, DEV_W, ...Array(2).fill(GPU_TEST_PROT_WRITE), ...Array(4).fill(GPU_TEST_PROT_READ)]);
      expect(p.ioctl(app.fd, GPU_TEST_MIRRORED)).toBe(n);
      // The CPU page tables change: sync_cpu_device_pagetables() drops what the device mirrored.
      p.munmap(buf + 2 * PAGE, 2 * PAGE);
      expect(p.ioctl(app.fd, GPU_TEST_MIRRORED)).toBe(n - 2);
      p.write(buf + 5 * PAGE, [1]); // the zero page is replaced by a page of its own
      expect(p.ioctl(app.fd, GPU_TEST_MIRRORED)).toBe(n - 3);
      expect(app.snapshot(buf, n)).toEqual([DEV_W, DEV_W, GPU_TEST_PROT_ERROR, GPU_TEST_PROT_ERROR, GPU_TEST_PROT_READ, GPU_TEST_PROT_WRITE, GPU_TEST_PROT_READ, GPU_TEST_PROT_READ]);
      p.close(app.fd);
      p.exit();
    });

    it("bad commands: EINVAL (unaligned, empty, no vma), EFAULT (the command block), ENOTTY (no such ioctl)", async () => {
      const k = await boot({ version });
      await loadGpu(k, builtin);
      const app = new App(k);
      const { p } = app;
      const buf = p.mmap(0, 4 * PAGE, RW, ANON);
      expect(errnoOf(() => app.migrate(buf + 8, 1))).toBe(EINVAL);
      expect(errnoOf(() => app.migrate(buf, 0))).toBe(EINVAL);
      p.munmap(buf + 2 * PAGE, 2 * PAGE);
      expect(errnoOf(() => app.migrate(buf + 2 * PAGE, 1))).toBe(EINVAL);
      expect(errnoOf(() => p.ioctl(app.fd, GPU_TEST_MIGRATE, 0))).toBe(EFAULT);
      expect(errnoOf(() => p.ioctl(app.fd, GPU_TEST_MIGRATE, buf + 2 * PAGE))).toBe(EFAULT);
      expect(errnoOf(() => p.ioctl(app.fd, GPU_TEST_MIGRATE + 0x30, app.cmd))).toBe(ENOTTY);
      // A range that runs into the hole migrates what precedes it, then fails.
      p.write(buf, [1]);
      expect(errnoOf(() => app.migrate(buf, 4))).toBe(EINVAL);
      expect(app.snapshot(buf, 2)).toEqual([DEV_W, GPU_TEST_PROT_NONE]);
      // Shared memory cannot go to device-private memory: nothing moves, no error.
      const shm = p.mmap(0, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS);
      p.write(shm, [1]);
      expect(app.migrate(shm, 1).cpages).toBe(0);
      expect(app.snapshot(shm, 1)).toEqual([GPU_TEST_PROT_WRITE]);
      p.exit();
    });

    it("pages in VRAM hold the module: rmmod is refused until the process frees them", async () => {
      const k = await boot({ version });
      await loadGpu(k, builtin);
      const app = new App(k);
      const { p } = app;
      const buf = p.mmap(0, 4 * PAGE, RW, ANON);
      p.write(buf, pattern(4));
      app.migrate(buf, 4);
      expect(k.read("/proc/modules")).toMatch(/^gpu_test \d+ 2 /); // the open file, the VRAM in use
      p.close(app.fd);
      expect(rmmodError(k, "gpu_test")!.message).toBe("rmmod: ERROR: Module gpu_test is in use");
      // Two pages come back to system memory, two are unmapped: VRAM is free again.
      p.read(buf, 2 * PAGE);
      expect(rmmodError(k, "gpu_test")!.message).toBe("rmmod: ERROR: Module gpu_test is in use");
      p.munmap(buf + 2 * PAGE, 2 * PAGE);
      expect(k.read("/proc/modules")).toMatch(/^gpu_test \d+ 0 /);
      k.rmmod("gpu_test");
      p.exit();
    });

    it("a process that exits with pages in VRAM gives them back to the driver", async () => {
      const k = await boot({ version });
      const mod = await loadGpu(k, builtin);
      const app = new App(k);
      const buf = app.p.mmap(0, 32 * PAGE, RW, ANON);
      app.p.write(buf, pattern(32));
      expect(app.migrate(buf, 32).cpages).toBe(32);
      app.p.exit();
      expect(mod.refcount).toBe(0);
      // Another process gets the same VRAM pages.
      const b = new App(k, "b");
      const buf2 = b.p.mmap(0, 32 * PAGE, RW, ANON);
      b.p.write(buf2, pattern(32, 3));
      expect(b.migrate(buf2, 32).cpages).toBe(32);
      expect(same(b.p.read(buf2, 32 * PAGE), pattern(32, 3))).toBe(true);
      b.p.exit();
    });
  });
}

describe("gpu_test, one driver two ways (principle 6)", () => {
  /** The whole story on one kernel: what the process sees, and dmesg without timestamps. */
  async function story(builtin: boolean): Promise<{ out: unknown[]; dmesg: string }> {
    const k = await boot({ version: "5.0" });
    await loadGpu(k, builtin);
    const app = new App(k);
    const { p } = app;
    const out: unknown[] = [];
    const buf = p.mmap(0, 64 * PAGE, RW, ANON);
    p.write(buf, pattern(64));
    out.push(app.migrate(buf, 64), app.snapshot(buf, 64));
    out.push(same(p.read(buf, 64 * PAGE), pattern(64)));
    out.push(app.mirrorRead(buf, 8).cmd, p.ioctl(app.fd, GPU_TEST_MIRRORED));
    p.close(app.fd);
    p.exit();
    k.rmmod("gpu_test");
    await k.shutdown();
    return { out, dmesg: k.dmesg().replace(/^\[[ \d.]+\] /gm, "") };
  }

  it("isolated and built in: the same results, the same dmesg", async () => {
    const a = await story(false);
    const b = await story(true);
    expect(a.out).toEqual(b.out);
    expect(a.dmesg).toBe(b.dmesg);
  });
});

describe("gpu_test's fault path crosses the isolate boundary 4 times", () => {
  it("fault in, migrate_vma out, alloc_and_copy in, hmm_vma_alloc_locked_page out: the copy is queued, finalize_and_map empty, free deferred", async () => {
    const k = await boot({ version: "5.0" });
    const mod = await loadGpu(k, false);
    const app = new App(k);
    const buf = app.p.mmap(0, 64 * PAGE, RW, ANON);
    app.p.write(buf, pattern(64));
    app.migrate(buf, 64);
    const rt = mod.runtime!;
    const before = rt.stats();
    const page = new Uint8Array(PAGE);
    for (let i = 0; i < 64; i++) app.p.readInto(buf + i * PAGE, page);
    const after = rt.stats();
    expect([(after.calls! - before.calls!) / 64, (after.kcalls! - before.kcalls!) / 64]).toEqual([2, 2]);
    app.p.exit();
  });
});
