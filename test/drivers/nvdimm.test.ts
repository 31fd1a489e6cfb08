// drivers/nvdimm: nfit, libnvdimm and nd_pmem as the kernel's in-tree modules, from the NFIT
// the firmware builds out of the boot config's pmem regions to /dev/pmem0: the probe lines,
// the devices and /proc/iomem, module dependencies and use counts, export-class refusal,
// block I/O, persistence in the region's file across boots, what rmmod refuses, and the
// 4.20 vs 5.0 teardown order of the pgmap kill and the queue freeze. Every scenario runs
// isolated and built in (and on 4.20 and 5.0 where they differ), with boot()'s invariant and
// leak checks.

import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { O_RDONLY, O_RDWR } from "../../core/fs/file.ts";
import { O_DIRECT } from "../../core/block/block_dev.ts";
import { EBUSY, EINVAL, ENOSPC } from "../../core/errno.ts";
import type { Kernel } from "../../core/kernel.ts";
import type { InsmodOptions } from "../../core/module/loader.ts";
import { build } from "../../sdk/build/build.ts";
import { boot, bootError, insmodError, lsmodLine, rmmodError } from "../helpers/kernel.ts";
import { errnoOf, PAGE } from "../helpers/process.ts";
import { devices, load, MODES, ndModules } from "./nvdimm-helpers.ts";

const SIZE = 256 << 20;
const START = 0x100000000;
/** nd_pfn_init() for 256 MiB at 4 GiB, map=dev, align 2 MiB: the memmap and info block. */
const DATAOFF = 6 << 20;
const CAPACITY = SIZE - DATAOFF;

const tmp = mkdtempSync(join(tmpdir(), "kemu-nvdimm-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

async function pmemKernel(version: string, builtin: boolean, mode: "fsdax" | "raw" | "devdax" = "fsdax", file?: string): Promise<Kernel> {
  const k = await boot({ version, pmem: [{ size: "256M", mode, ...(file ? { file } : {}) }] });
  await load(k, builtin, "libnvdimm", "nfit", "nd_pmem");
  return k;
}

for (const [version, builtin] of MODES) {
  describe(`nvdimm on ${version}, ${builtin ? "built in" : "isolated"}`, () => {
    it("probes an fsdax namespace into /dev/pmem0 with the kernel's lines and resources", async () => {
      const k = await boot({ version, pmem: [{ size: "256M" }] });
      const since = k.log.nextSeq;
      await load(k, builtin, "libnvdimm", "nfit", "nd_pmem");
      const msgs = k.log.messages(since);
      expect(msgs).toHaveLength(3);
      expect(msgs[0]).toBe("nd_pmem pfn0.1: unable to guarantee persistence of writes");
      expect(msgs[1]).toMatch(/^pfn0\.1 initialised, 64000 pages in \d+ms$/);
      expect(msgs[2]).toBe(`pmem0: detected capacity change from 0 to ${CAPACITY}`);
      expect(devices(k).filter((d) => !/^(hmm|misc)/.test(d))).toEqual(
        expect.arrayContaining(["ACPI0012:00[nfit]", "ndbus0[nd_bus]", "region0[nd_region]", "namespace0.0", "btt0.0", "pfn0.0", "dax0.0", "pfn0.1[nd_pmem]", "pmem0"]),
      );
      expect(k.read("/proc/iomem")).toContain("100000000-10fffffff : Persistent Memory\n  100000000-10fffffff : namespace0.0\n");
      expect(k.read("/proc/partitions")).toBe(`major minor  #blocks  name\n\n 259        0     ${CAPACITY / 1024} pmem0\n`);
      // The NFIT the firmware gave nfit: one SPA range, checksummed.
      const nfit = k.acpi.acpi_get_table("NFIT", 0)!;
      expect(nfit.length).toBe(40 + 56);
      expect(nfit.reduce((a, b) => a + b, 0) & 0xff).toBe(0);
    });

    it("lists the dependencies and use counts, and refuses to remove libnvdimm while it is used", async () => {
      const k = await pmemKernel(version, builtin);
      const mods = await ndModules(k.config.version);
      for (const m of [mods.nfit, mods.nd_pmem]) expect(m.image.modinfo).toContain("depends=libnvdimm");
      expect(k.lsmod()).toContain(lsmodLine(k, "libnvdimm", 2, "nd_pmem,nfit"));
      expect(k.lsmod()).toContain(lsmodLine(k, "nd_pmem", 0));
      expect(rmmodError(k, "libnvdimm")?.message).toBe("rmmod: ERROR: Module libnvdimm is in use by: nd_pmem nfit");
      expect(rmmodError(k, "nd_pmem")).toBeNull();
      expect(rmmodError(k, "libnvdimm")?.message).toBe("rmmod: ERROR: Module libnvdimm is in use by: nfit");
      expect(rmmodError(k, "nfit")).toBeNull();
      expect(rmmodError(k, "libnvdimm")).toBeNull();
      expect(k.read("/proc/iomem")).not.toContain("namespace0.0");
      expect(k.read("/proc/partitions")).toBe("");
      expect(devices(k).filter((d) => /nd|region|namespace|pfn|dax|btt|pmem/.test(d))).toEqual([]);
      expect(k.checkInvariants()).toEqual([]);
    });

    it("reads and writes /dev/pmem0 through the page cache; fsync writes back", async () => {
      const k = await pmemKernel(version, builtin);
      const p = k.spawn("dd");
      const fd = p.open("/dev/pmem0", O_RDWR);
      expect(text(p.pread(fd, 5, 0))).toBe("\0\0\0\0\0");
      expect(p.pwrite(fd, bytes("hello, pmem"), 3 * PAGE - 5)).toBe(11);
      expect(text(p.pread(fd, 11, 3 * PAGE - 5))).toBe("hello, pmem");
      // Not on the media before the write-back: the page cache holds it.
      const media = START + DATAOFF + 3 * PAGE - 5;
      expect(text(k.mm.physmem.read(media, 11))).toBe("\0".repeat(11));
      p.fsync(fd);
      expect(text(k.mm.physmem.read(media, 11))).toBe("hello, pmem");
      // The end of the device: short reads, -ENOSPC for a write at it.
      expect(p.pread(fd, 100, CAPACITY - 10).length).toBe(10);
      expect(p.pread(fd, 100, CAPACITY).length).toBe(0);
      expect(errnoOf(() => p.pwrite(fd, bytes("x"), CAPACITY))).toBe(ENOSPC);
      expect(p.pwrite(fd, bytes("tail!"), CAPACITY - 3)).toBe(3);
      p.close(fd);
      // The last close synced the cache and dropped it.
      expect(text(k.mm.physmem.read(START + DATAOFF + CAPACITY - 3, 3))).toBe("tai");
      const ro = p.open("/dev/pmem0", O_RDONLY);
      expect(errnoOf(() => p.pwrite(ro, bytes("x"), 0))).toBe(9 /* EBADF */);
      p.close(ro);
    });

    it("does O_DIRECT I/O aligned to the logical block size and refuses it unaligned", async () => {
      const k = await pmemKernel(version, builtin);
      const p = k.spawn("dio");
      const fd = p.open("/dev/pmem0", O_RDWR | O_DIRECT);
      const block = new Uint8Array(1024).map((_, i) => i & 0xff);
      expect(p.pwrite(fd, block, 512)).toBe(1024);
      // On the media at once: no page cache in between.
      expect(k.mm.physmem.read(START + DATAOFF + 512, 1024)).toEqual(block);
      expect(p.pread(fd, 1024, 512)).toEqual(block);
      expect(errnoOf(() => p.pwrite(fd, block, 100))).toBe(EINVAL);
      expect(errnoOf(() => p.pwrite(fd, block.subarray(0, 100), 512))).toBe(EINVAL);
      expect(errnoOf(() => p.pread(fd, 512, 7))).toBe(EINVAL);
      expect(errnoOf(() => p.pwrite(fd, block, CAPACITY))).toBe(ENOSPC);
      p.close(fd);
    });

    it("keeps what was written in the region's file for the next boot", async () => {
      const file = join(tmp, `pmem-${version}-${builtin ? "y" : "m"}.img`);
      const k1 = await pmemKernel(version, builtin, "fsdax", file);
      // Created on demand at the region's size, sparse: pages never written cost nothing.
      expect(statSync(file).size).toBe(SIZE);
      const p = k1.spawn("writer");
      const fd = p.open("/dev/pmem0", O_RDWR);
      p.pwrite(fd, bytes("persistent"), 1 << 20);
      p.fsync(fd);
      p.close(fd);
      await k1.shutdown();
      expect(statSync(file).blocks * 512).toBeLessThan(1 << 20);

      const k2 = await pmemKernel(version, builtin, "fsdax", file);
      const q = k2.spawn("reader");
      const fd2 = q.open("/dev/pmem0", O_RDONLY);
      expect(text(q.pread(fd2, 10, 1 << 20))).toBe("persistent");
      q.close(fd2);
      // The info block ndctl "wrote" stayed the same: the data did not move.
      expect(k2.log.messages(0)).toContain(`pmem0: detected capacity change from 0 to ${CAPACITY}`);
    });

    it("refuses rmmod nd_pmem while /dev/pmem0 is open", async () => {
      const k = await pmemKernel(version, builtin);
      const p = k.spawn("holder");
      const fd = p.open("/dev/pmem0", O_RDWR);
      expect(k.lsmod()).toContain(lsmodLine(k, "nd_pmem", 1));
      const err = rmmodError(k, "nd_pmem");
      expect(err?.errno).toBe(EBUSY);
      expect(err?.message).toBe("rmmod: ERROR: Module nd_pmem is in use");
      expect(k.read("/proc/partitions")).toContain("pmem0");
      p.close(fd);
      expect(rmmodError(k, "nd_pmem")).toBeNull();
      expect(k.read("/proc/partitions")).toBe("");
      expect(errnoOf(() => p.open("/dev/pmem0", O_RDWR))).toBe(2 /* ENOENT */);
    });

    it("hangs in blk_cleanup_queue when rmmod comes while a page of the pmem is pinned", async () => {
      const k = await pmemKernel(version, builtin);
      // A DMA pin (get_user_pages() of an fsdax page): a page reference and a pgmap reference.
      const pfn = (START + DATAOFF) / PAGE;
      expect(k.mm.memremap.get_dev_pagemap(pfn, null)).not.toBeNull();
      k.mm.get_page(pfn);
      const since = k.log.nextSeq;
      const err = rmmodError(k, "nd_pmem");
      // The queue's usage counter (the pgmap's reference) never drains: the task is hung,
      // and kemu unwinds it where the kernel would wait forever.
      expect(err?.message).toBe("rmmod: ERROR: could not remove module nd_pmem: Bad address");
      const msgs = k.log.messages(since).join("\n");
      expect(msgs).toMatch(/^INFO: task rmmod:\d+ blocked for more than 120 seconds\./);
      expect(msgs).toContain(" blk_mq_freeze_queue_wait\n blk_cleanup_queue\n pmem_release_queue [nd_pmem]\n");
      expect(k.read("/proc/partitions")).toBe("");
    });

    it("warns 'could not reserve region' when the namespace range is taken", async () => {
      const k = await boot({ version, pmem: [{ size: "256M" }] });
      const busy = k.mm.iomem.request_mem_region(START, SIZE, "busy")!;
      const since = k.log.nextSeq;
      await load(k, builtin, "libnvdimm", "nfit", "nd_pmem");
      expect(k.log.messages(since)).toEqual(["nd_pmem namespace0.0: could not reserve region [mem 0x100000000-0x10fffffff]"]);
      expect(devices(k)).toContain("namespace0.0");
      expect(devices(k)).not.toContain("pmem0");
      k.mm.iomem.release_resource(busy);
    });

    it("binds a raw namespace itself: /dev/pmem0 over all of it, no struct pages", async () => {
      const k = await boot({ version, pmem: [{ size: "256M", mode: "raw" }] });
      const since = k.log.nextSeq;
      const pgmaps = k.mm.memremap.registered().length;
      await load(k, builtin, "libnvdimm", "nfit", "nd_pmem");
      expect(k.log.messages(since)).toEqual([
        "nd_pmem namespace0.0: unable to guarantee persistence of writes",
        `pmem0: detected capacity change from 0 to ${SIZE}`,
      ]);
      expect(devices(k)).toContain("namespace0.0[nd_pmem]");
      expect(devices(k)).not.toContain("pfn0.1");
      expect(k.mm.memremap.registered().length).toBe(pgmaps);
      const p = k.spawn("raw");
      const fd = p.open("/dev/pmem0", O_RDWR);
      p.pwrite(fd, bytes("raw"), 0);
      p.fsync(fd);
      expect(text(k.mm.physmem.read(START, 3))).toBe("raw");
      p.close(fd);
    });

    it("refuses an fsdax info block whose checksum is wrong: the namespace is bound raw", async () => {
      const k = await boot({ version, pmem: [{ size: "256M" }] });
      // One byte of the block's reserved area changed: nd_pfn_validate()'s fletcher64 fails.
      const at = START + 4096 + 1024;
      k.mm.physmem.write(at, Uint8Array.of(k.mm.physmem.read(at, 1)[0]! ^ 0xff));
      const since = k.log.nextSeq;
      await load(k, builtin, "libnvdimm", "nfit", "nd_pmem");
      expect(k.log.messages(since)).toEqual([
        "nd_pmem namespace0.0: unable to guarantee persistence of writes",
        `pmem0: detected capacity change from 0 to ${SIZE}`,
      ]);
      expect(devices(k)).toContain("namespace0.0[nd_pmem]");
      expect(devices(k)).not.toContain("pfn0.1");
    });

    it("leaves a devdax namespace to dax0.1, the nd_dax device dax_pmem binds to", async () => {
      const k = await boot({ version, pmem: [{ size: "256M", mode: "devdax" }] });
      const since = k.log.nextSeq;
      await load(k, builtin, "libnvdimm", "nfit", "nd_pmem");
      expect(k.log.messages(since)).toEqual([]);
      expect(devices(k)).toEqual(expect.arrayContaining(["namespace0.0", "dax0.0", "dax0.1"]));
      const dax = k.base.devices.find((d) => d.name === "dax0.1")!;
      expect(dax.modalias).toBe("nd:t7");
      expect(dax.driver).toBeNull();
      expect(k.read("/proc/partitions")).toBe("");
    });

    it("tears down in the version's order: the queue freeze kills the pgmap reference", async () => {
      const k = await pmemKernel(version, builtin);
      const events: string[] = [];
      const memremap = k.mm.memremap;
      const core = k.block.core;
      const release = memremap.devm_memremap_pages_release.bind(memremap);
      const freeze = core.blk_freeze_queue_start.bind(core);
      const cleanup = core.blk_cleanup_queue.bind(core);
      let inRelease = false;
      memremap.devm_memremap_pages_release = (pgmap) => {
        events.push(`release(ref ${pgmap.ref!.isDead ? "dead" : "live"})`);
        inRelease = true;
        try {
          release(pgmap);
        } finally {
          inRelease = false;
        }
      };
      core.blk_freeze_queue_start = (q) => {
        events.push(`freeze${inRelease ? " in release" : ""}`);
        freeze(q);
      };
      core.blk_cleanup_queue = (q) => {
        events.push("cleanup");
        cleanup(q);
      };
      const since = k.log.nextSeq;
      expect(rmmodError(k, "nd_pmem")).toBeNull();
      const first = events.slice(0, 3);
      if (version === "4.20") expect(first).toEqual(["freeze", "release(ref dead)", "cleanup"]);
      else expect(first).toEqual(["release(ref live)", "freeze in release", "cleanup"]);
      // No "page mapping is still live!" WARN: the reference was dead before the check.
      expect(k.log.messages(since)).toEqual([]);
      expect(k.checkInvariants()).toEqual([]);
    });
  });
}

describe("nvdimm, everywhere the same", () => {
  it("refuses libnvdimm's GPL-only exports to a proprietary module", async () => {
    const k = await boot({ version: "5.0", pmem: [{ size: "256M" }] });
    await load(k, false, "libnvdimm");
    const mods = await ndModules("5.0");
    const closed = await build({
      entry: new URL("../fixtures/nd_closed.ts", import.meta.url).pathname, kernel: "5.0", symvers: [mods.libnvdimm.symvers], licenseGate: "loader",
    });
    expect(closed.warnings).toContain("FATAL: modpost: GPL-incompatible module nd_closed.ko uses GPL-only symbol 'nvdimm_bus_register'");
    const since = k.log.nextSeq;
    const err = await insmodError(k, closed.ko, { filename: "nd_closed.ko" } as InsmodOptions);
    expect(err.message).toBe("insmod: ERROR: could not insert module nd_closed.ko: Unknown symbol in module");
    expect(k.log.messages(since)).toEqual(expect.arrayContaining(["nd_closed: Unknown symbol nvdimm_bus_register (err -2)"]));
    expect(k.lsmod()).toContain(lsmodLine(k, "libnvdimm", 0));
  });

  it("registers legacy (e820 type 12) pmem through nd_e820", async () => {
    const k = await boot({ version: "5.0", pmem: [{ size: "256M", legacy: true, mode: "raw" }] });
    const since = k.log.nextSeq;
    await load(k, false, "libnvdimm", "nd_e820", "nd_pmem");
    expect(k.log.messages(since)).toEqual([
      "nd_pmem namespace0.0: unable to guarantee persistence of writes",
      `pmem0: detected capacity change from 0 to ${SIZE}`,
    ]);
    expect(devices(k)).toEqual(expect.arrayContaining(["e820_pmem[e820_pmem]", "ndbus0[nd_bus]", "region0[nd_region]", "namespace0.0[nd_pmem]"]));
    expect(k.read("/proc/iomem")).toContain("100000000-10fffffff : Persistent Memory (legacy)\n  100000000-10fffffff : namespace0.0\n");
    expect(k.acpi.acpi_get_table("NFIT", 0)).toBeNull();
  });

  it("refuses a pmem mode that is not a namespace mode", async () => {
    const err = await bootError({ pmem: [{ size: "256M", mode: "sector" as "raw" }] });
    expect(err.field).toBe("pmem[0].mode");
    expect(err.message).toBe('boot config: pmem[0].mode: "sector" is not a namespace mode (expected one of: fsdax, devdax, raw)');
  });
});
