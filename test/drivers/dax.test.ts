// drivers/dax: the dax core (dax.ko), device-dax (device_dax.ko) and a provider
// (test/fixtures/dax_test.ts, as tools/testing/nvdimm feeds device-dax): /dev/daxN.0 over a
// pmem range, mapped shared and aligned into processes (CPU accesses land in the pmem pages),
// check_vma()'s refusals with their dmesg lines (drivers/dax/device.c of 4.20/5.0), the
// device killed under a mapping, module use counts and unload order. Every scenario runs
// isolated and built in; boot() checks invariants and leaks at the end.

import { describe, expect, it } from "vitest";
import { EINVAL, ENOENT, ENXIO } from "../../core/errno.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import type { Kernel } from "../../core/kernel.ts";
import { SIGBUS } from "../../core/kernel/signal.ts";
import { MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { VM_HUGEPAGE, VM_MIXEDMAP } from "../../core/mm/mm_types.ts";
import { pte_devmap, pte_pfn } from "../../core/mm/pgtable.ts";
import type { KernelVersion } from "../../core/version.ts";
import { boot, rmmodError } from "../helpers/kernel.ts";
import { errnoOf, PAGE, signalOf } from "../helpers/process.ts";
import { DAX_TEST_ADD, DAX_TEST_DEL, DAX_TEST_DRVDATA, DAX_TEST_NO_MAP, loadDax, PMEM_START, SECTION } from "./dax-helpers.ts";

const RW = PROT_READ | PROT_WRITE;
const MODES: [KernelVersion, boolean][] = [["4.20", false], ["4.20", true], ["5.0", false], ["5.0", true]];

async function daxBoot(version: KernelVersion, builtin: boolean): Promise<Kernel> {
  const k = await boot({ version, pmem: [{ size: "512M", start: "4G" }] });
  await loadDax(k, builtin);
  return k;
}

/** Add a dax_test device (and so /dev/daxN.0): its id. */
function addDax(k: Kernel, arg = 4096): number {
  const p = k.spawn("daxctl");
  const fd = p.open("/dev/dax_test", O_RDWR);
  try {
    return p.ioctl(fd, DAX_TEST_ADD, arg);
  } finally {
    p.exit();
  }
}

function delDax(k: Kernel, id: number): void {
  const p = k.spawn("daxctl");
  const fd = p.open("/dev/dax_test", O_RDWR);
  p.ioctl(fd, DAX_TEST_DEL, id);
  p.exit();
}

for (const [version, builtin] of MODES) {
  describe(`device-dax on ${version}, ${builtin ? "built in" : "isolated"}`, () => {
    it("a provider's range becomes /dev/dax0.0: the \"dax\" region, the class device, its sysfs, the modules' use counts", async () => {
      const k = await daxBoot(version, builtin);
      expect(k.read("/proc/devices")).toContain("254 dax\n");
      expect(addDax(k)).toBe(0);
      expect(k.devtmpfs.has("/dev/dax0.0")).toBe(true);
      expect(k.read("/sys/class/dax/dax0.0/dev")).toBe("254:0\n");
      expect(k.read("/sys/class/dax/dax0.0/size")).toBe(`${SECTION}\n`);
      expect(k.read("/sys/bus/platform/devices/dax_test.0/dax_region/align")).toBe("4096\n");
      expect(k.read("/sys/bus/platform/devices/dax_test.0/dax_region/size")).toBe(`${SECTION}\n`);
      expect(k.read("/sys/bus/platform/devices/dax_test.0/dax_region/id")).toBe("0\n");
      expect(k.read("/proc/iomem")).toContain("100000000-107ffffff : dax_test.0");
      expect(k.read("/proc/modules")).toMatch(/^dax \d+ 1 device_dax, Live/m);
      expect(k.read("/proc/modules")).toMatch(/^device_dax \d+ 1 dax_test, Live/m);
      // Unbinding the provider takes the device away: node, class device, region attributes.
      delDax(k, 0);
      expect(k.devtmpfs.has("/dev/dax0.0")).toBe(false);
      expect(errnoOf(() => k.read("/sys/class/dax/dax0.0/size"))).toBe(ENOENT);
      expect(errnoOf(() => k.read("/sys/bus/platform/devices/dax_test.0/dax_region/align"))).toBe(ENOENT);
      // A second device reuses minor 0 of the "dax" region.
      expect(addDax(k)).toBe(0);
      expect(k.read("/sys/class/dax/dax0.0/dev")).toBe("254:0\n");
    });

    it("mmap shared and aligned: CPU writes land in the pmem pages, a second process's mapping sees them", async () => {
      const k = await daxBoot(version, builtin);
      addDax(k);
      const p = k.spawn("app");
      const fd = p.open("/dev/dax0.0", O_RDWR);
      const a = p.mmap(0, 16 * PAGE, RW, MAP_SHARED, fd, 0);
      const vma = p.mm!.find_vma(a)!;
      expect(vma.vm_flags & (VM_MIXEDMAP | VM_HUGEPAGE)).toBe(VM_MIXEDMAP | VM_HUGEPAGE);
      p.write(a + 3 * PAGE + 5, [1, 2, 3]);
      expect([...k.mm.physmem.read(PMEM_START + 3 * PAGE + 5, 3)]).toEqual([1, 2, 3]);
      // The pte maps the pmem page directly (a devmap pte, no page reference).
      const pte = p.mm!.ptep_get(a + 3 * PAGE);
      expect([pte_pfn(pte), pte_devmap(pte)]).toEqual([PMEM_START / PAGE + 3, true]);
      expect(k.mm.page_ref_count(PMEM_START / PAGE + 3)).toBe(1);
      // Another process, at an offset: the same memory.
      const q = k.spawn("other");
      const fd2 = q.open("/dev/dax0.0", O_RDWR);
      const b = q.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd2, 2 * PAGE);
      expect([...q.read(b + PAGE + 5, 3)]).toEqual([1, 2, 3]);
      q.write(b, [9]);
      expect(p.read(a + 2 * PAGE, 1)[0]).toBe(9);
      // Beyond the device: SIGBUS.
      const c = q.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd2, SECTION - PAGE);
      expect(signalOf(() => q.read(c + PAGE, 1)).signo).toBe(SIGBUS);
      q.exit();
      p.exit();
    });

    it("check_vma(): a private mapping, an unaligned vma and PFN_DEV without MADV_DONTFORK are refused with device.c's lines", async () => {
      const k = await daxBoot(version, builtin);
      addDax(k);
      addDax(k, (2 << 20) + 0);
      addDax(k, 4096 + DAX_TEST_NO_MAP);
      const p = k.spawn("app");
      const seq = k.log.nextSeq;
      const fd0 = p.open("/dev/dax0.0", O_RDWR);
      expect(errnoOf(() => p.mmap(0, PAGE, RW, MAP_PRIVATE, fd0, 0))).toBe(EINVAL);
      const fd1 = p.open("/dev/dax1.0", O_RDWR);
      const at = 0x7f0000001000;
      expect(errnoOf(() => p.mmap(at, 2 << 20, RW, MAP_SHARED | MAP_FIXED, fd1, 0))).toBe(EINVAL);
      const fd2 = p.open("/dev/dax2.0", O_RDWR);
      expect(errnoOf(() => p.mmap(0, PAGE, RW, MAP_SHARED, fd2, 0))).toBe(EINVAL);
      expect(k.log.messages(seq)).toEqual([
        "dax dax0.0: app: dax_mmap: fail, attempted private mapping",
        "dax dax1.0: app: dax_mmap: fail, unaligned vma (0x7f0000001000 - 0x7f0000201000, 0x1fffff)",
        "dax dax2.0: app: dax_mmap: fail, dax range requires MADV_DONTFORK",
      ]);
      // Without an address, dax_get_unmapped_area() picks a 2 MiB aligned one and the mmap
      // succeeds; but kemu has no PMD faults: the PTE handler's "alignment > fault size" is SIGBUS.
      const b = p.mmap(0, 4 << 20, RW, MAP_SHARED, fd1, 0);
      expect(b % (2 << 20)).toBe(0);
      expect(signalOf(() => p.read(b, 1)).signo).toBe(SIGBUS);
      // ->split refuses a cut that is not aligned.
      expect(errnoOf(() => p.munmap(b, PAGE))).toBe(EINVAL);
      p.munmap(b, 2 << 20);
      p.exit();
    });

    it("the device killed under a mapping: its ptes are zapped, faults SIGBUS, mmap of an open file -ENXIO; the last close frees it", async () => {
      const k = await daxBoot(version, builtin);
      addDax(k);
      const p = k.spawn("app");
      const fd = p.open("/dev/dax0.0", O_RDWR);
      const a = p.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
      p.write(a, [7]);
      delDax(k, 0);
      expect(p.mm!.ptep_get(a)).toBe(0);
      expect(signalOf(() => p.read(a, 1)).signo).toBe(SIGBUS);
      expect(errnoOf(() => p.mmap(0, PAGE, RW, MAP_SHARED, fd, 0))).toBe(ENXIO);
      expect(errnoOf(() => p.open("/dev/dax0.0", O_RDWR))).toBe(ENOENT);
      // The pmem keeps what was written.
      expect(k.mm.physmem.read(PMEM_START, 1)[0]).toBe(7);
      p.munmap(a, 4 * PAGE);
      p.close(fd);
      // The next device gets minor 0 again: the old dax_device went with the last close.
      expect(addDax(k)).toBe(0);
      expect(k.read("/sys/class/dax/dax0.0/dev")).toBe("254:0\n");
    });

    it("rmmod: refused while a mapping holds device_dax and the provider; then in order provider, device_dax, dax", async () => {
      const k = await daxBoot(version, builtin);
      addDax(k);
      const p = k.spawn("app");
      const fd = p.open("/dev/dax0.0", O_RDWR);
      const a = p.mmap(0, PAGE, RW, MAP_SHARED, fd, 0);
      p.close(fd);
      // The file behind the mapping holds the fops' owner (device_dax) and the cdev's owner
      // (the parent's driver, dax_test).
      expect(rmmodError(k, "dax_test")!.message).toBe("rmmod: ERROR: Module dax_test is in use");
      expect(rmmodError(k, "device_dax")!.message).toBe("rmmod: ERROR: Module device_dax is in use by: dax_test");
      expect(rmmodError(k, "dax")!.message).toBe("rmmod: ERROR: Module dax is in use by: device_dax");
      p.munmap(a, PAGE);
      k.rmmod("dax_test");
      k.rmmod("device_dax");
      k.rmmod("dax");
      expect(k.read("/proc/devices")).not.toContain("dax");
      expect(k.read("/proc/iomem")).not.toContain("dax_test");
      expect(k.checkInvariants()).toEqual([]);
    });

    it("alloc_dax_region() refuses a misaligned range and a parent whose drvdata is taken (dev_WARN)", async () => {
      const k = await daxBoot(version, builtin);
      const seq = k.log.nextSeq;
      addDax(k, 3 * 4096);
      expect(k.log.messages(seq)).toEqual(["dax_test.0 initialised, 32768 pages in 0ms", "dax_test: probe of dax_test.0 failed with error -12"]);
      const s2 = k.log.nextSeq;
      addDax(k, 4096 + DAX_TEST_DRVDATA);
      const lines = k.log.messages(s2);
      expect(lines.shift()).toBe("dax_test.1 initialised, 32768 pages in 0ms");
      expect(lines[0]).toBe("------------[ cut here ]------------");
      expect(lines[1]).toBe("dax_test dax_test.1: dax core failed to setup private data");
      expect(lines[2]).toMatch(/^WARNING: CPU: 0 PID: \d+ at device_dax\.ko /);
      expect(lines.at(-1)).toBe("dax_test: probe of dax_test.1 failed with error -12");
      expect(k.devtmpfs.list().filter((n) => n.startsWith("dax"))).toEqual(["dax_test"]);
    });
  });
}

describe("kernel objects across the dax exports", () => {
  const FORGER = `
import * as k from "kemu/kernel";
import { alloc_dax_region } from "kemu/extern";
import type {} from "../../drivers/dax/dax-private.ts";
k.MODULE_LICENSE("GPL");
k.module_init(() => {
  // A device handle this module was never given: device_dax gets NULL, not someone's device.
  const r = alloc_dax_region({ handle: 424242 } as unknown as k.device, 0, { start: 0, end: 4095 }, 4096, 0, k.PFN_DEV);
  k.printk(k.KERN_INFO + "forger: %d\\n", r);
  return 0;
});
k.module_exit(() => {});
`;
  it("a forged device handle reaches device_dax as NULL: its calls on it are refused, nothing is touched", async () => {
    const { buildSource } = await import("../helpers/build.ts");
    const { daxKos } = await import("./dax-helpers.ts");
    const k = await boot({ version: "5.0" });
    await loadDax(k, false, false);
    const kos = await daxKos("5.0");
    const forger = await buildSource("forger", FORGER, { kernel: "5.0", symvers: [kos.dax.symvers, kos.device_dax.symvers] });
    const seq = k.log.nextSeq;
    await k.insmod(forger.ko, { filename: "forger.ko" });
    const lines = k.log.messages(seq).filter((l) => !l.includes("out-of-tree"));
    expect(lines).toEqual([
      "kemu: device_dax: dev_get_drvdata(): NULL device pointer; call refused",
      "kemu: device_dax: dev_set_drvdata(): NULL device pointer; call refused",
      "kemu: device_dax: device_create_file(): NULL device pointer; call refused",
      "forger: 0",
    ]);
    expect(k.read("/proc/modules")).toMatch(/^device_dax \d+ 1 forger, Live/m);
    k.rmmod("forger");
  });
});
