// drivers/nouveau: the PCI GPU of `gpus: [{ vram }]` and its in-tree driver. The driver probes
// the function (dmesg, /proc/iomem), registers VRAM as device-private memory, migrates a
// process's buffer into it (DRM_NOUVEAU_SVM_BIND), runs the GPU's vector add on it through its
// mirror of the process's page tables (kemu's DRM_NOUVEAU_KEMU_VADD), and gives pages back on
// CPU faults; open files and VRAM in use keep the module loaded. Each scenario runs isolated
// and built in, on 5.0 and 4.20, with boot()'s invariant and leak checks.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import type { Process } from "../../core/kernel/process.ts";
import { PCI_COMMAND_MASTER } from "../../core/base/pci.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import type { Module } from "../../core/module/module.ts";
import { SIGBUS } from "../../core/kernel/signal.ts";
import type { KernelVersion } from "../../core/version.ts";
import { EBUSY, EFAULT, EINVAL, EIO } from "../../core/errno.ts";
import { build } from "../../sdk/build/build.ts";
import { buildInTree } from "../../sdk/build/intree.ts";
import {
  DRM_IOCTL_NOUVEAU_KEMU_VADD, DRM_IOCTL_NOUVEAU_SVM_BIND, DRM_IOCTL_NOUVEAU_SVM_INIT, DRM_IOWR, KEMU_VADD_FIELDS, NOUVEAU_SVM_BIND_TARGET__GPU_VRAM,
  nouveau_svm_bind_header, SVM_BIND_FIELDS, SVM_INIT_FIELDS, u64_fields, u64_struct,
} from "../../drivers/nouveau/nouveau_uapi.ts";
import { buildDriver, ko } from "../helpers/build.ts";
import { boot, bootError, rmmodError } from "../helpers/kernel.ts";
import { deviceEntry, errnoOf, PAGE, pteOf, signalOf } from "../helpers/process.ts";
import { is_swap_pte } from "../../core/mm/pgtable.ts";

const DRIVER = fileURLToPath(new URL("../../drivers/nouveau/nouveau.ts", import.meta.url));
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const BDF = "0000:00:02.0";
const VRAM_TARGET = nouveau_svm_bind_header(0, NOUVEAU_SVM_BIND_TARGET__GPU_VRAM);

async function loadNouveau(k: Kernel, builtin: boolean): Promise<Module> {
  return k.insmod((await buildDriver(DRIVER, k.config.version)).ko, { builtin, filename: "nouveau.ko" });
}

/** A process with a render node open and a page for ioctl arguments. */
class Client {
  readonly p: Process;
  readonly fd: number;
  readonly arg: number;
  constructor(k: Kernel, node = "/dev/dri/renderD128", comm = "app") {
    this.p = k.spawn(comm);
    this.fd = this.p.open(node, O_RDWR);
    this.arg = this.p.mmap(0, PAGE, RW, ANON);
  }
  /** The ioctl on a struct of u64 fields: the struct as the driver left it (throws on failure). */
  ioctl(cmd: number, fields: readonly string[], values: Record<string, number>): Record<string, number> {
    this.p.write(this.arg, u64_struct(fields, values));
    this.p.ioctl(this.fd, cmd, this.arg);
    return this.args(fields);
  }
  /** The argument struct as it is now (after a failed ioctl too: DRM copies it out anyway). */
  args(fields: readonly string[]): Record<string, number> {
    return u64_fields(fields, this.p.read(this.arg, fields.length * 8));
  }
  svmInit(unmanaged_addr = 0, unmanaged_size = 0): void {
    this.ioctl(DRM_IOCTL_NOUVEAU_SVM_INIT, SVM_INIT_FIELDS, { unmanaged_addr, unmanaged_size });
  }
  bind(addr: number, npages: number, over: Record<string, number> = {}): Record<string, number> {
    return this.ioctl(DRM_IOCTL_NOUVEAU_SVM_BIND, SVM_BIND_FIELDS, { header: VRAM_TARGET, va_start: addr, va_end: addr + npages * PAGE, npages, ...over });
  }
  vadd(a: number, b: number, c: number, count: number, over: Record<string, number> = {}): Record<string, number> {
    return this.ioctl(DRM_IOCTL_NOUVEAU_KEMU_VADD, KEMU_VADD_FIELDS, { a, b, c, count, ...over });
  }
  /** A buffer of `npages` holding the int32s `f(i)`. */
  buffer(npages: number, f: ((i: number) => number) | null): number {
    const addr = this.p.mmap(0, npages * PAGE, RW, ANON);
    if (f) this.p.write(addr, new Uint8Array(new Int32Array(npages * 1024).map((_, i) => f(i)).buffer));
    return addr;
  }
  int32s(addr: number, n: number): Int32Array {
    return new Int32Array(this.p.read(addr, n * 4).slice().buffer);
  }
}

/** How many of the `npages` pages at `addr` are device-private entries. */
function inVram(c: Client, addr: number, npages: number): number {
  let n = 0;
  for (let i = 0; i < npages; i++) if (is_swap_pte(pteOf(c.p, addr + i * PAGE))) n++;
  return n;
}

/** The GPU's device memory map, and a counter of the CPU faults it takes (a hook observer). */
function cpuFaults(k: Kernel): { count: number } {
  const pgmap = k.mm.memremap.registered().find((m) => m.dev?.name === BDF)!;
  const seen = { count: 0 };
  k.hooks.devmem.fault.get(pgmap.id)!.tap({ name: "test", stage: -1 }, () => {
    seen.count++;
    return undefined;
  });
  return seen;
}

const A = (i: number) => i * 3 + 1;
const B = (i: number) => 1000 - i * 7;

const MODES: [KernelVersion, boolean][] = [["5.0", false], ["5.0", true], ["4.20", false], ["4.20", true]];

for (const [version, builtin] of MODES) {
  describe(`nouveau on ${version}, ${builtin ? "built in" : "isolated"}`, () => {
    it("probes the GPU: its dmesg lines, VRAM as device memory in /proc/iomem, /dev/dri/renderD128; rmmod unbinds it clean", async () => {
      const k = await boot({ version, gpus: [{ vram: "512M" }] });
      const seq = k.log.nextSeq;
      await loadNouveau(k, builtin);
      expect(k.log.messages(seq)).toEqual([
        `nouveau ${BDF}: NVIDIA GP104 (134000a1)`,
        `nouveau ${BDF}: DRM: VRAM: 512 MiB`,
        `nouveau ${BDF}: DRM: GART: 536870912 MiB`,
        `${BDF} initialised, 131072 pages in 4ms`,
        `nouveau ${BDF}: DRM: DMEM: registered 512MB of device memory`,
        `[drm] Initialized nouveau 1.3.1 20120801 for ${BDF} on minor 0`,
      ]);
      const iomem = k.read("/proc/iomem");
      expect(iomem).toContain("40000000-febfffff : PCI Bus 0000:00\n  fd000000-fdffffff : 0000:00:02.0\n");
      expect(iomem).toContain("100000000-17fffffff : PCI Bus 0000:00\n  100000000-11fffffff : 0000:00:02.0\n");
      expect(iomem).toContain("3fffe0000000-3fffffffffff : 0000:00:02.0\n");
      expect(k.read("/proc/misc")).toBe(" 63 dri/renderD128\n");
      expect(k.devtmpfs.list()).toContain("dri/renderD128");
      expect(k.pci.devices[0]!.dev.driver?.name).toBe("nouveau");
      k.rmmod("nouveau");
      expect(k.log.messages(seq).length).toBe(6);
      expect(k.read("/proc/iomem")).not.toContain("3fffe0000000");
      expect(k.read("/proc/misc")).toBe("");
      expect(k.devtmpfs.list()).not.toContain("dri/renderD128");
      expect(k.pci.io.mappings).toBe(0);
      expect(k.pci.devices[0]!.enable_cnt).toBe(0);
    });

    it("SVM_BIND migrates a buffer into VRAM: device-private entries, its bytes in the GPU's VRAM, the module held", async () => {
      const k = await boot({ version, gpus: [{ vram: "64M" }] });
      await loadNouveau(k, builtin);
      const c = new Client(k);
      c.svmInit();
      const a = c.buffer(16, A);
      expect(k.read("/proc/modules")).toMatch(/^nouveau \d+ 1 /); // the open file
      const seq = k.log.nextSeq;
      expect(c.bind(a, 16).result).toBe(0);
      expect(k.log.messages(seq)).toEqual([]);
      expect(inVram(c, a, 16)).toBe(16);
      // The pages belong to the GPU's device memory; their contents are the device's.
      const [dpage, writable] = deviceEntry(c.p, a + 5 * PAGE);
      expect(writable).toBe(true);
      expect(k.mm.is_device_private_page(dpage)).toBe(true);
      const gpu = k.pci.devices[0]!.gpu;
      expect(gpu.vramBlocks).toBe(1); // one 2 MiB chunk backed
      const vram = new Int32Array(gpu.vramRead(0, 16 * PAGE).slice().buffer);
      expect(vram.every((v, i) => v === A(i))).toBe(true);
      expect(k.read("/proc/modules")).toMatch(/^nouveau \d+ 2 /); // and the VRAM in use
      // Binding again moves nothing more.
      c.bind(a, 16);
      expect(inVram(c, a, 16)).toBe(16);
      c.p.exit();
      expect(k.read("/proc/modules")).toMatch(/^nouveau \d+ 0 /);
    });

    it("VADD runs c = a + b on the GPU: a from VRAM, b and c in system memory; CPU faults bring a back, data intact", async () => {
      const k = await boot({ version, gpus: [{ vram: "64M" }] });
      await loadNouveau(k, builtin);
      const faults = cpuFaults(k);
      const cl = new Client(k);
      cl.svmInit();
      const n = 16 * 1024;
      const a = cl.buffer(16, A);
      const b = cl.buffer(16, B);
      const c = cl.buffer(16, null);
      cl.bind(a, 16);
      // The GPU faults once per array: each fault maps the run of pages it belongs to.
      expect(cl.vadd(a, b, c, n)).toMatchObject({ vram_pages: 16, host_pages: 32, faults: 3 });
      expect(cl.int32s(c, n).every((v, i) => v === A(i) + B(i))).toBe(true);
      expect(faults.count).toBe(0);
      // Its page table still holds everything: no faults the second time.
      expect(cl.vadd(a, b, c, n)).toMatchObject({ vram_pages: 16, host_pages: 32, faults: 0 });
      // The CPU reads a: each page faults back into system memory, through the driver.
      expect(cl.int32s(a, n).every((v, i) => v === A(i))).toBe(true);
      expect(faults.count).toBe(16);
      expect(inVram(cl, a, 16)).toBe(0);
      expect(k.read("/proc/modules")).toMatch(/^nouveau \d+ 1 /); // VRAM is free again
      // The GPU lost its mapping of a (invalidated) and faults it in from system memory.
      expect(cl.vadd(a, b, c, n)).toMatchObject({ vram_pages: 0, host_pages: 48, faults: 1 });
      // c in VRAM: the GPU writes it there; the CPU reads the sums back.
      cl.bind(c, 16);
      cl.p.write(c, new Uint8Array(4 * PAGE)); // four pages come back, zeroed
      expect(inVram(cl, c, 16)).toBe(12);
      expect(cl.vadd(a, b, c, n)).toMatchObject({ vram_pages: 12, host_pages: 36, faults: 1 });
      expect(cl.int32s(c, n).every((v, i) => v === A(i) + B(i))).toBe(true);
      expect(faults.count).toBe(16 + 4 + 12);
      cl.p.close(cl.fd);
      cl.p.exit();
    });

    it("rmmod is refused while a file is open or VRAM is in use; when idle it unloads clean", async () => {
      const k = await boot({ version, gpus: [{ vram: "64M" }] });
      await loadNouveau(k, builtin);
      const c = new Client(k);
      c.svmInit();
      const a = c.buffer(8, A);
      c.bind(a, 8);
      expect(rmmodError(k, "nouveau")!.message).toBe("rmmod: ERROR: Module nouveau is in use");
      c.p.close(c.fd);
      // The file is gone, the VRAM pages are not.
      expect(k.read("/proc/modules")).toMatch(/^nouveau \d+ 1 /);
      expect(rmmodError(k, "nouveau")!.message).toBe("rmmod: ERROR: Module nouveau is in use");
      c.p.munmap(a, 8 * PAGE);
      expect(k.read("/proc/modules")).toMatch(/^nouveau \d+ 0 /);
      const seq = k.log.nextSeq;
      k.rmmod("nouveau");
      // nouveau_dmem_fini() found no chunk in use: no WARNING.
      expect(k.log.messages(seq)).toEqual([]);
      expect(k.tainted()).toBe("Not tainted");
      expect(k.checkInvariants()).toEqual([]);
      c.p.exit();
    });

    it("bad ioctl input: EINVAL, EBUSY, EFAULT; the kernel stays up and nothing leaks", async () => {
      const k = await boot({ version, gpus: [{ vram: "64M" }] });
      await loadNouveau(k, builtin);
      const c = new Client(k);
      const a = c.buffer(4, A);
      const ro = c.p.mmap(0, PAGE, PROT_READ, ANON);
      // SVM must be enabled first.
      expect(errnoOf(() => c.bind(a, 4))).toBe(EINVAL);
      expect(errnoOf(() => c.vadd(a, a, a, 16))).toBe(EINVAL);
      c.svmInit(0x10000000, 0x10000000);
      expect(errnoOf(() => c.svmInit())).toBe(EBUSY);
      // SVM_BIND's checks, in nouveau_svmm_bind()'s order.
      expect(errnoOf(() => c.bind(a, 4, { reserved1: 1 }))).toBe(EINVAL);
      expect(errnoOf(() => c.bind(a, 4, { header: VRAM_TARGET + 2 ** 48 }))).toBe(EINVAL);
      expect(errnoOf(() => c.bind(a, 4, { va_end: a }))).toBe(EINVAL);
      expect(errnoOf(() => c.bind(a, 4, { npages: 0 }))).toBe(EINVAL);
      expect(errnoOf(() => c.bind(a, 4, { header: VRAM_TARGET + 1 }))).toBe(EINVAL); // a command other than MIGRATE
      expect(errnoOf(() => c.bind(a, 4, { header: 0 }))).toBe(EINVAL); // a target other than the GPU's VRAM
      expect(errnoOf(() => c.bind(a, 4, { stride: PAGE }))).toBe(EINVAL);
      expect(errnoOf(() => c.bind(a, 4, { npages: 5 }))).toBe(EINVAL); // beyond va_end
      expect(inVram(c, a, 4)).toBe(0);
      // A range without memory is a best effort that moves nothing.
      expect(c.bind(0x10000, 4).result).toBe(0);
      // VADD's: count, alignment, reserved.
      expect(errnoOf(() => c.vadd(a, a, a, 0))).toBe(EINVAL);
      expect(errnoOf(() => c.vadd(a + 2, a, a, 4))).toBe(EINVAL);
      expect(errnoOf(() => c.vadd(a, a, a, 4, { reserved: 1 }))).toBe(EINVAL);
      expect(errnoOf(() => c.vadd(a, a, a, 2 ** 32))).toBe(EINVAL);
      // Faults the GPU cannot have serviced are cancelled: no memory, read-only memory, the
      // unmanaged window.
      expect(errnoOf(() => c.vadd(a, a, 0x20000, 16))).toBe(EFAULT);
      expect(c.args(KEMU_VADD_FIELDS).faults).toBe(2);
      expect(errnoOf(() => c.vadd(a, a, ro, 16))).toBe(EFAULT);
      expect(errnoOf(() => c.vadd(0x10000000, a, a, 16))).toBe(EFAULT);
      // drm_ioctl(): ioctls the driver does not have, and an argument it cannot read.
      expect(errnoOf(() => c.p.ioctl(c.fd, DRM_IOWR(0x40, 16), c.arg))).toBe(EINVAL); // DRM_NOUVEAU_GETPARAM
      expect(errnoOf(() => c.p.ioctl(c.fd, DRM_IOWR(0x00, 16), c.arg))).toBe(EINVAL); // a core ioctl
      expect(errnoOf(() => c.p.ioctl(c.fd, DRM_IOCTL_NOUVEAU_SVM_BIND, 0x30000))).toBe(EFAULT);
      // A shorter struct is zero-extended: SVM_INIT with 8 bytes still says EBUSY.
      expect(errnoOf(() => c.p.ioctl(c.fd, DRM_IOWR(0x48, 8), c.arg))).toBe(EBUSY);
      // Still working.
      const b = c.buffer(4, B);
      expect(c.vadd(a, b, b, 4096)).toMatchObject({ host_pages: 12, faults: 1 }); // a is mapped already
      expect(c.int32s(b, 4096).every((v, i) => v === A(i) + B(i))).toBe(true);
      c.p.exit();
    });

    it("a GPU that stops bus mastering: pages stay in system memory, a CPU fault on VRAM gets SIGBUS, VADD -EIO", async () => {
      const k = await boot({ version, gpus: [{ vram: "64M" }] });
      await loadNouveau(k, builtin);
      const c = new Client(k);
      c.svmInit();
      const a = c.buffer(4, A);
      const b = c.buffer(4, B);
      c.bind(a, 2);
      const pdev = k.pci.devices[0]!;
      // As setpci would: PCI_COMMAND loses its bus master bit.
      pdev.command &= ~PCI_COMMAND_MASTER;
      // The copy engine's DMA fails: the fence says so, and nothing is migrated.
      c.bind(b, 4);
      expect(inVram(c, b, 4)).toBe(0);
      // nouveau_dmem_fault(): the copy back fails, MIGRATE_PFN_ERROR, VM_FAULT_SIGBUS.
      const sig = signalOf(() => c.p.read(a, 4));
      expect([sig.signo, sig.addr]).toEqual([SIGBUS, a]);
      expect(inVram(c, a, 2)).toBe(2);
      // The GPU cannot reach system memory either.
      expect(errnoOf(() => c.vadd(a, b, b, 4096))).toBe(EIO);
      pdev.command |= PCI_COMMAND_MASTER;
      expect(c.int32s(a, 4096).every((v, i) => v === A(i))).toBe(true);
      c.p.exit();
    });
  });
}

describe("nouveau, one driver two ways (principle 6)", () => {
  /** The story on one kernel: what the process sees, and dmesg without timestamps. */
  async function story(builtin: boolean): Promise<{ out: unknown[]; dmesg: string }> {
    const k = await boot({ version: "5.0", gpus: [{ vram: "64M" }] });
    await loadNouveau(k, builtin);
    const cl = new Client(k);
    cl.svmInit();
    const a = cl.buffer(8, A);
    const b = cl.buffer(8, B);
    const c = cl.buffer(8, null);
    const out: unknown[] = [cl.bind(a, 8), cl.vadd(a, b, c, 8192), [...cl.int32s(c, 8192).subarray(0, 8)], inVram(cl, a, 8)];
    out.push(cl.int32s(a, 4).join(","), inVram(cl, a, 8));
    cl.p.close(cl.fd);
    cl.p.exit();
    k.rmmod("nouveau");
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

describe("PCI GPUs at boot", () => {
  it("enumerates each GPU on bus 0000:00 under the host bridge windows, with its BARs and MODALIAS", async () => {
    const k = await boot({ version: "5.0", memory: "4G", pmem: [{ size: "1G" }], gpus: [{ vram: "512M" }, { vram: "6G" }] });
    const lines = k.dmesg().split("\n").map((l) => l.replace(/^\[[ \d.]+\] /, "")).filter((l) => /^(PCI|pci)/.test(l));
    expect(lines).toEqual([
      "PCI host bridge to bus 0000:00",
      "pci_bus 0000:00: root bus resource [mem 0x000a0000-0x000bffff window]",
      "pci_bus 0000:00: root bus resource [mem 0xc0000000-0xfebfffff window]",
      "pci_bus 0000:00: root bus resource [mem 0x180000000-0x43fffffff window]",
      "pci_bus 0000:00: root bus resource [bus 00-ff]",
      "pci 0000:00:02.0: [10de:1b80] type 00 class 0x030000",
      "pci 0000:00:02.0: reg 0x10: [mem 0xfd000000-0xfdffffff]",
      "pci 0000:00:02.0: reg 0x14: [mem 0x400000000-0x41fffffff 64bit pref]",
      "pci 0000:00:03.0: [10de:1b80] type 00 class 0x030000",
      "pci 0000:00:03.0: reg 0x10: [mem 0xfc000000-0xfcffffff]",
      "pci 0000:00:03.0: reg 0x14: [mem 0x200000000-0x3ffffffff 64bit pref]",
    ]);
    // The 64-bit window follows RAM and persistent memory; BAR1 is VRAM rounded to a power of two.
    expect(k.read("/proc/iomem")).toContain(
      "140000000-17fffffff : Persistent Memory\n180000000-43fffffff : PCI Bus 0000:00\n  200000000-3ffffffff : 0000:00:03.0\n  400000000-41fffffff : 0000:00:02.0\n",
    );
    expect(k.pci.devices.map((d) => d.dev.modalias)).toEqual([
      "pci:v000010DEd00001B80sv000010DEsd0000119Ebc03sc00i00",
      "pci:v000010DEd00001B80sv000010DEsd0000119Ebc03sc00i00",
    ]);
    // Without GPUs there is no PCI function, and no root bus.
    const bare = await boot({ version: "5.0" });
    expect(bare.read("/proc/iomem")).not.toContain("PCI Bus");
    expect(bare.dmesg()).not.toContain("PCI host bridge");
  });

  it("two GPUs: renderD128 and renderD129; the second GPU finds the first one's VRAM unknown device memory", async () => {
    const k = await boot({ version: "5.0", gpus: [{ vram: "64M" }, { vram: "64M" }] });
    await loadNouveau(k, false);
    expect(k.read("/proc/misc")).toBe(" 62 dri/renderD129\n 63 dri/renderD128\n");
    expect(k.dmesg()).toContain("[drm] Initialized nouveau 1.3.1 20120801 for 0000:00:03.0 on minor 1");
    const c0 = new Client(k);
    c0.svmInit();
    const fd1 = c0.p.open("/dev/dri/renderD129", O_RDWR);
    const c1 = Object.assign(Object.create(Client.prototype) as Client, { p: c0.p, fd: fd1, arg: c0.arg });
    c1.svmInit();
    const a = c0.buffer(2, A);
    const b = c0.buffer(2, B);
    c0.bind(a, 2);
    expect(c0.vadd(a, b, b, 2048)).toMatchObject({ vram_pages: 2, host_pages: 4 });
    // nouveau_dmem_convert_pfn(): a page of another device's memory cannot be mapped.
    const seq = k.log.nextSeq;
    expect(errnoOf(() => c1.vadd(a, a, a, 2048))).toBe(EFAULT);
    // One WARN for each of a's pages the fault's window held.
    const log = k.log.messages(seq).join("\n");
    expect(log.match(/------------\[ cut here \]------------\nSome unknown device memory !\nWARNING: CPU: 0 PID: \d+ at nouveau.ko nouveau_drm_ioctl \[nouveau\]\n/g)).toHaveLength(2);
    expect(k.tainted()).toContain("W");
    c0.p.exit();
  });
});

describe("the PCI API from a module of its own", () => {
  it("probe gets its id_table entry; BARs, ioremap of registers and aperture, RAM refused, DMA, one disable too many", async () => {
    const k = await boot({ version: "5.0", gpus: [{ vram: "64M" }] });
    const ko = (await build({ entry: fileURLToPath(new URL("../fixtures/pci_test.ts", import.meta.url)), kernel: "5.0" })).ko;
    const seq = k.log.nextSeq;
    await k.insmod(ko, { filename: "pci_test.ko" });
    const log = k.log.messages(seq);
    expect(log.filter((l) => l.startsWith("pci_test ") && !l.includes("disabling"))).toEqual([
      `pci_test ${BDF}: ${BDF} [10de:1b80] data 7 bar0 0xfd000000+0x1000000 bar1 0x100000000+0x4000000`,
      `pci_test ${BDF}: boot0 134000a1 vram 04000000`,
      `pci_test ${BDF}: aperture cafef00d`,
      `pci_test ${BDF}: ioremap of RAM: 0`,
      `pci_test ${BDF}: dma_set_mask(0xffff): -5`,
      `pci_test ${BDF}: dma: at the page`,
    ]);
    const text = log.join("\n");
    expect(text).toContain("------------[ cut here ]------------\nioremap on RAM at 0x0000000000100000 - 0x0000000000100fff\nWARNING: CPU: 0 PID: ");
    expect(text).toContain(`------------[ cut here ]------------\npci_test ${BDF}: disabling already-disabled device\nWARNING: CPU: 0 PID: `);
    // BAR1 reaches VRAM: what the module wrote is in the device's memory.
    expect([...k.pci.devices[0]!.gpu.vramRead(0x1008, 4)]).toEqual([0x0d, 0xf0, 0xfe, 0xca]);
    expect(k.pci.devices[0]!.enable_cnt).toBe(-1);
    k.rmmod("pci_test");
    expect(k.log.messages(seq).at(-1)).toBe(`pci_test ${BDF}: remove`);
    expect(k.pci.io.mappings).toBe(0);
  });

  it("an ioremap() the module did not iounmap() is unmapped when it goes, with kemu's line", async () => {
    const k = await boot({ version: "5.0", gpus: [{ vram: "64M" }] });
    const src = readFileSync(fileURLToPath(new URL("../fixtures/pci_test.ts", import.meta.url)), "utf8").replace("  iounmap(regs);\n", "");
    await k.insmod(await ko("pci_ioleak", src, { kernel: "5.0" }));
    expect(k.pci.io.mappings).toBe(1);
    const seq = k.log.nextSeq;
    k.rmmod("pci_ioleak");
    expect(k.log.messages(seq)).toContain("kemu: pci_ioleak: ioremap() of [mem 0xfd000000-0xfdffffff] still mapped at unload; unmapping it");
    expect(k.pci.io.mappings).toBe(0);
  });

  it("a PCI driver still registered at unload is unregistered by the loader, with a line naming its bus", async () => {
    const k = await boot({ version: "5.0", gpus: [{ vram: "64M" }] });
    const src = readFileSync(fileURLToPath(new URL("../fixtures/pci_test.ts", import.meta.url)), "utf8").replace(
      "module_exit(() => pci_unregister_driver(pci_test_driver));",
      "module_exit(() => {});",
    );
    await k.insmod(await ko("pci_leaky", src, { kernel: "5.0" }));
    const seq = k.log.nextSeq;
    k.rmmod("pci_leaky");
    expect(k.log.messages(seq)).toEqual([
      "kemu: pci_leaky: pci driver 'pci_test' still registered at unload; unregistering it",
      `pci_test ${BDF}: remove`,
    ]);
    expect(k.checkInvariants()).toEqual([]);
  });
});

describe("udev at boot", () => {
  it("loads nouveau for a configured GPU by its MODALIAS, as `kemu modules` installed it", async () => {
    // A tree with drivers/nouveau only, built and installed as `kemu modules` would.
    const root = mkdtempSync(join(tmpdir(), "kemu-nouveau-"));
    try {
      mkdirSync(join(root, "drivers"));
      symlinkSync(fileURLToPath(new URL("../../drivers/nouveau", import.meta.url)), join(root, "drivers/nouveau"));
      await buildInTree(root, join(root, "modules"), "5.0");
      expect(readFileSync(join(root, "modules/5.0/modules.alias"), "utf8")).toBe(
        "# Aliases extracted from modules themselves.\nalias pci:v000012D2d*sv*sd*bc03sc*i* nouveau\nalias pci:v000010DEd*sv*sd*bc03sc*i* nouveau\n",
      );
      const k = await boot({ version: "5.0", gpus: [{ vram: "64M" }], modulesDir: join(root, "modules"), autoload: true });
      expect(k.read("/proc/modules")).toMatch(/^nouveau \d+ 0 - Live /);
      expect(k.pci.devices[0]!.dev.driver?.name).toBe("nouveau");
      expect(k.dmesg()).toContain(`nouveau ${BDF}: DRM: DMEM: registered 64MB of device memory`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("gpus in the boot config", () => {
  it("accepts sizes that are multiples of 2 MiB; the PCI functions follow the list", async () => {
    const k = await boot({ version: "5.0", gpus: [{ vram: "2M" }, { vram: 6 * 2 ** 20 }] });
    expect(k.config.gpus).toEqual([{ index: 0, vram: 2 ** 21 }, { index: 1, vram: 6 * 2 ** 20 }]);
    expect(k.pci.devices.map((d) => [d.dev.name, d.gpu.vramSize, d.gpu.bar1Size])).toEqual([
      ["0000:00:02.0", 2 ** 21, 2 ** 21],
      ["0000:00:03.0", 6 * 2 ** 20, 8 * 2 ** 20],
    ]);
  });

  it.each([
    [{ gpus: "512M" }, "gpus", 'expected a list, got "512M"'],
    [{ gpus: [512] }, "gpus[0]", "expected an object, got 512"],
    [{ gpus: [{}] }, "gpus[0].vram", 'missing (e.g. "512M")'],
    [{ gpus: [{ vram: "512M", bar: 1 }] }, "gpus[0].bar", "unknown key (expected one of: vram)"],
    [{ gpus: [{ vram: "lots" }] }, "gpus[0].vram", '"lots" is not a size (bytes, or a number with K, M, G, T, P or E, e.g. "4G")'],
    [{ gpus: [{ vram: "512M" }, { vram: "3M" }] }, "gpus[1].vram", "0x300000 is not a multiple of 2 MiB"],
    [{ gpus: [{ vram: 0 }] }, "gpus[0].vram", "must be at least 2M"],
    [{ gpus: Array(31).fill({ vram: "2M" }) }, "gpus", "31 GPUs do not fit on bus 0000:00 (slots 02-1f: at most 30)"],
    [{ physBits: 36, gpus: [{ vram: "64G" }] }, "gpus[0].vram", "BAR 1 [mem 0x1000000000-0x1fffffffff] is beyond the 36-bit physical address space (physBits)"],
  ])("refuses %j: %s", async (cfg, field, message) => {
    const err = await bootError(cfg);
    expect(err.field).toBe(field);
    expect(err.message).toBe(`boot config: ${field}: ${message}`);
  });
});
