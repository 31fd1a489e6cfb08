// file_operations.mmap and vm_operations_struct from a module (core/module/apis/mmap.ts on
// core/mm): ->mmap setting up the vma and mapping pages at once (vm_insert_page), ->fault
// mapping them on demand (vmf->page, vmf_insert_pfn, vmf_insert_mixed), ->open/->close/
// ->split, and what the module may not do. The fixture driver is test/fixtures/mmap_test.ts;
// each scenario runs isolated and built in.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { EFAULT, EINVAL, ENOENT } from "../../core/errno.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import type { Kernel } from "../../core/kernel.ts";
import type { Process } from "../../core/kernel/process.ts";
import { SIGBUS } from "../../core/kernel/signal.ts";
import { PAGE_SIZE } from "../../core/mm/memmap.ts";
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { MM_FILEPAGES, VM_DONTEXPAND, VM_IO, VM_MIXEDMAP, VM_PFNMAP } from "../../core/mm/mm_types.ts";
import { pte_devmap, pte_pfn, pte_special } from "../../core/mm/pgtable.ts";
import type { KernelVersion } from "../../core/version.ts";
import { buildDriver } from "../helpers/build.ts";
import { boot, rmmodError } from "../helpers/kernel.ts";
import { errnoOf, PAGE, signalOf } from "../helpers/process.ts";

const DRIVER = fileURLToPath(new URL("../fixtures/mmap_test.ts", import.meta.url));
const RW = PROT_READ | PROT_WRITE;
const MMAP_TEST_MODE = 0x4d01;
const MMAP_TEST_PFN = 0x4d02;
const MMAP_TEST_VMAS = 0x4d03;

const MODE_FAULT_PAGE = 2;
const MODE_FAULT_PFN = 3;
const MODE_FAULT_MIXED = 4;
const MODE_BAD_INSERT = 5;
const MODE_SIGBUS = 6;
const MODE_NO_OPS = 7;

async function setup(builtin: boolean, version: KernelVersion = "5.0"): Promise<{ k: Kernel; p: Process; fd: number; pfn: (i: number) => number }> {
  const k = await boot({ version });
  await k.insmod((await buildDriver(DRIVER, version)).ko, { builtin, filename: "mmap_test.ko" });
  const p = k.spawn("app");
  const fd = p.open("/dev/mmap_test", O_RDWR);
  return { k, p, fd, pfn: (i) => p.ioctl(fd, MMAP_TEST_PFN, i) };
}

/** The driver's page i holds the byte i + 1. */
function filled(i: number, n = PAGE): Uint8Array {
  return new Uint8Array(n).fill(i + 1);
}

for (const builtin of [false, true]) {
  describe(`a driver's mmap, ${builtin ? "built in" : "isolated"}`, () => {
    it("->mmap maps its pages with vm_insert_page(): shared writes land in them, rss and refcounts follow, munmap gives them back", async () => {
      const { k, p, fd, pfn } = await setup(builtin);
      const page1 = pfn(1);
      const ref = k.mm.page_ref_count(page1);
      const a = p.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, PAGE);
      const vma = p.mm!.find_vma(a)!;
      // vm_insert_page() made the vma VM_MIXEDMAP; the ptes are normal ones, present at once.
      expect(vma.vm_flags & VM_MIXEDMAP).toBe(VM_MIXEDMAP);
      expect(pte_pfn(p.mm!.ptep_get(a))).toBe(page1);
      expect(pte_special(p.mm!.ptep_get(a))).toBe(false);
      expect(p.mm!.rss[MM_FILEPAGES]).toBe(4);
      expect(k.mm.page_ref_count(page1)).toBe(ref + 1);
      expect(p.read(a, PAGE)).toEqual(filled(1));
      p.write(a + PAGE + 10, [0xab]);
      expect(k.mm.physmem.readPage(pfn(2))[10]).toBe(0xab);
      expect(p.ioctl(fd, MMAP_TEST_VMAS)).toBe(1);
      p.munmap(a, 4 * PAGE);
      expect(p.ioctl(fd, MMAP_TEST_VMAS)).toBe(0);
      expect(p.mm!.rss[MM_FILEPAGES]).toBe(0);
      expect(k.mm.page_ref_count(page1)).toBe(ref);
    });

    it("a private mapping of inserted pages copies on write: the driver's page stays as it was", async () => {
      const { k, p, fd, pfn } = await setup(builtin);
      const a = p.mmap(0, 2 * PAGE, RW, MAP_PRIVATE, fd, 0);
      p.write(a, [0x55]);
      expect(pte_pfn(p.mm!.ptep_get(a))).not.toBe(pfn(0));
      expect(p.read(a, 2)).toEqual(Uint8Array.of(0x55, 1));
      expect(k.mm.physmem.readPage(pfn(0))[0]).toBe(1);
      p.exit();
    });

    it("->fault hands over vmf->page: mapped on first touch, with the driver's data", async () => {
      const { k, p, fd, pfn } = await setup(builtin);
      p.ioctl(fd, MMAP_TEST_MODE, MODE_FAULT_PAGE);
      const a = p.mmap(0, 8 * PAGE, RW, MAP_SHARED, fd, 0);
      expect(p.mm!.ptep_get(a + 5 * PAGE)).toBe(0);
      expect(p.read(a + 5 * PAGE, PAGE)).toEqual(filled(5));
      expect(pte_pfn(p.mm!.ptep_get(a + 5 * PAGE))).toBe(pfn(5));
      p.write(a + 6 * PAGE, [9]);
      expect(k.mm.physmem.readPage(pfn(6))[0]).toBe(9);
      expect(p.mm!.rss[MM_FILEPAGES]).toBe(ENOENT);
      p.exit();
    });

    it("->fault maps a pfn: vmf_insert_pfn() in a VM_PFNMAP vma, vmf_insert_mixed() in a VM_MIXEDMAP one (special ptes, no page references)", async () => {
      const { k, p, fd, pfn } = await setup(builtin);
      const ref = k.mm.page_ref_count(pfn(3));
      p.ioctl(fd, MMAP_TEST_MODE, MODE_FAULT_PFN);
      const a = p.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
      expect(p.mm!.find_vma(a)!.vm_flags & (VM_PFNMAP | VM_IO | VM_DONTEXPAND)).toBe(VM_PFNMAP | VM_IO | VM_DONTEXPAND);
      expect(p.read(a + 3 * PAGE, 4)).toEqual(filled(3, 4));
      const pte = p.mm!.ptep_get(a + 3 * PAGE);
      expect([pte_pfn(pte), pte_special(pte), pte_devmap(pte)]).toEqual([pfn(3), true, false]);
      p.ioctl(fd, MMAP_TEST_MODE, MODE_FAULT_MIXED);
      const b = p.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
      p.write(b + 3 * PAGE + 1, [0x77]);
      expect(p.read(a + 3 * PAGE, 2)).toEqual(Uint8Array.of(4, 0x77));
      expect(pte_special(p.mm!.ptep_get(b + 3 * PAGE))).toBe(true);
      // Neither mapping counts in rss nor holds the page.
      expect(p.mm!.rss[MM_FILEPAGES]).toBe(0);
      expect(k.mm.page_ref_count(pfn(3))).toBe(ref);
      p.exit();
    });

    it("->split refuses a cut at an odd page (munmap fails with its errno); ->open/->close count the vmas through split and fork", async () => {
      const { p, fd } = await setup(builtin);
      p.ioctl(fd, MMAP_TEST_MODE, MODE_FAULT_PAGE);
      const a = p.mmap(0, 8 * PAGE, RW, MAP_SHARED, fd, 0);
      expect(errnoOf(() => p.munmap(a + PAGE, PAGE))).toBe(EINVAL);
      p.munmap(a + 2 * PAGE, 2 * PAGE); // two cuts at even pages: three vmas, one removed
      expect(p.ioctl(fd, MMAP_TEST_VMAS)).toBe(ENOENT);
      const child = p.fork();
      expect(p.ioctl(fd, MMAP_TEST_VMAS)).toBe(4);
      expect(child.read(a + 4 * PAGE, 1)).toEqual(Uint8Array.of(5));
      child.exit();
      expect(p.ioctl(fd, MMAP_TEST_VMAS)).toBe(ENOENT);
      p.munmap(a, 8 * PAGE);
      expect(p.ioctl(fd, MMAP_TEST_VMAS)).toBe(0);
    });

    it("errors: ->mmap's errno fails mmap(2) (nothing mapped); VM_FAULT_SIGBUS and no ->fault give SIGBUS", async () => {
      const { k, p, fd } = await setup(builtin);
      expect(errnoOf(() => p.mmap(0, 9 * PAGE, RW, MAP_SHARED, fd, 0))).toBe(EINVAL);
      p.ioctl(fd, MMAP_TEST_MODE, MODE_BAD_INSERT);
      expect(errnoOf(() => p.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd, 0))).toBe(EFAULT);
      expect(p.mm!.mmap.length).toBe(0);
      p.ioctl(fd, MMAP_TEST_MODE, MODE_SIGBUS);
      const a = p.mmap(0, PAGE, RW, MAP_SHARED, fd, 0);
      expect(signalOf(() => p.read(a, 1)).signo).toBe(SIGBUS);
      p.ioctl(fd, MMAP_TEST_MODE, MODE_NO_OPS);
      const b = p.mmap(0, PAGE, RW, MAP_SHARED, fd, 0);
      expect(signalOf(() => p.read(b, 1)).signo).toBe(SIGBUS);
      expect(k.log.messages().filter((m) => m.startsWith("kemu:"))).toEqual([]);
      p.exit();
    });

    it("a mapping holds the module: rmmod is refused after close(2) until munmap, and unloads clean afterwards", async () => {
      const { k, p, fd } = await setup(builtin);
      const a = p.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd, 0);
      p.close(fd);
      expect(rmmodError(k, "mmap_test")!.message).toBe("rmmod: ERROR: Module mmap_test is in use");
      expect(p.read(a, 1)).toEqual(Uint8Array.of(1));
      p.munmap(a, 2 * PAGE);
      k.rmmod("mmap_test");
      expect(errnoOf(() => p.open("/dev/mmap_test", O_RDWR))).toBe(ENOENT);
    });
  });
}

describe("a module's calls on a vma and a vm_fault are checked", () => {
  const BAD = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
let saved: k.vm_fault | null = null;
const ops: k.vm_operations_struct = {
  fault(vmf) {
    saved = vmf;
    k.vm_flags_set(vmf.vma, k.VM_SHARED);
    return k.vmf_insert_pfn(vmf.vma, vmf.address, 2 ** 40);
  },
};
const misc: k.miscdevice = {
  minor: k.MISC_DYNAMIC_MINOR, name: "bad_mmap",
  fops: {
    owner: k.THIS_MODULE,
    mmap(_f, vma) { k.vm_flags_set(vma, k.VM_PFNMAP); k.vma_set_vm_ops(vma, ops); return 0; },
    unlocked_ioctl() { if (saved) k.vmf_set_page(saved, 1); return 0; },
  },
};
k.module_init(() => k.misc_register(misc));
k.module_exit(() => k.misc_deregister(misc));
`;
  for (const builtin of [false, true]) {
    it(`${builtin ? "built in" : "isolated"}: core vm_flags, a pfn no pte holds, a vm_fault kept past its fault are refused; the fault gives SIGBUS`, async () => {
      const { ko } = await import("../helpers/build.ts");
      const k = await boot({ version: "5.0" });
      await k.insmod(await ko("bad_mmap", BAD, { kernel: "5.0", intree: true }), { builtin, filename: "bad_mmap.ko" });
      const p = k.spawn("app");
      const fd = p.open("/dev/bad_mmap", O_RDWR);
      const a = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED, fd, 0);
      const seq = k.log.nextSeq;
      expect(signalOf(() => p.read(a, 1)).signo).toBe(SIGBUS);
      p.ioctl(fd, 0);
      expect(k.log.messages(seq)).toEqual([
        "kemu: bad_mmap: vm_flags_set(): a driver may not change VM_READ/WRITE/EXEC/SHARED/MAYSHARE/ACCOUNT/LOCKED/HUGETLB/GROWSDOWN (0x8); call refused",
        "kemu: bad_mmap: vmf_insert_pfn(): pfn 1099511627776 is not a page frame number; call refused",
        expect.stringMatching(/^kemu: bad_mmap: vmf_set_page\(\): handle \d+ \(vm_fault\) refers to an object that is gone; call refused$/),
      ]);
      expect(p.mm!.find_vma(a)!.vm_flags & 0x8).toBe(0x8); // still the shared mapping it was
      p.exit();
    });
  }
});

describe("docs/writing-a-driver.md's mmap example", () => {
  const DOC = readFileSync(fileURLToPath(new URL("../../docs/writing-a-driver.md", import.meta.url)), "utf8");
  const src = /^```ts\n(\/\/ mmap_example\.ts\n[\s\S]*?)^```$/m.exec(DOC)?.[1];

  for (const builtin of [false, true]) {
    it(`${builtin ? "built in" : "isolated"}: builds, shares its page between processes, and holds the module while mapped`, async () => {
      expect(src, "the mmap_example.ts block").toBeDefined();
      const { ko } = await import("../helpers/build.ts");
      const k = await boot({ version: "5.0" });
      await k.insmod(await ko("mmap_example", src!, { kernel: "5.0", intree: true }), { builtin, filename: "mmap_example.ko" });
      const p = k.spawn("writer");
      const fd = p.open("/dev/mmap_example", O_RDWR);
      const a = p.mmap(0, 4096, RW, MAP_SHARED, fd, 0);
      p.write(a, [42]);
      const q = k.spawn("reader");
      const qfd = q.open("/dev/mmap_example", O_RDWR);
      const b = q.mmap(0, 4096, RW, MAP_SHARED, qfd, 0);
      expect(q.read(b, 1)[0]).toBe(42);
      expect(errnoOf(() => q.mmap(0, 2 * 4096, RW, MAP_SHARED, qfd, 0))).toBe(EINVAL);
      q.exit();
      p.close(fd);
      expect(rmmodError(k, "mmap_example")!.message).toBe("rmmod: ERROR: Module mmap_example is in use");
      p.exit();
      k.rmmod("mmap_example");
    });
  }
});
