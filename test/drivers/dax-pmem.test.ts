// drivers/dax/dax_pmem.ts (pmem.c of 4.20/5.0) on libnvdimm: a pmem region in devdax mode
// gives a namespace with a dax info block, nd_pmem's probe finds it and libnvdimm adds the
// nd_dax that dax_pmem binds; its range (after the info block) becomes /dev/dax0.0. Each
// scenario runs on 4.20 and 5.0 (who kills the percpu_ref differs), isolated and built in.

import { describe, expect, it } from "vitest";
import { EINVAL, ENOENT } from "../../core/errno.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import type { Kernel } from "../../core/kernel.ts";
import { SIGBUS } from "../../core/kernel/signal.ts";
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import type { KernelVersion } from "../../core/version.ts";
import { buildDriver } from "../helpers/build.ts";
import { boot, rmmodError } from "../helpers/kernel.ts";
import { errnoOf, signalOf } from "../helpers/process.ts";
import { DAX_PMEM, daxKos, loadDax } from "./dax-helpers.ts";
import { load, ndModule } from "./nvdimm-helpers.ts";

const RW = PROT_READ | PROT_WRITE;
const MODES: [KernelVersion, boolean][] = [["4.20", false], ["4.20", true], ["5.0", false], ["5.0", true]];

/** dax_pmem.ko, built against libnvdimm's, dax's and device_dax's exports. */
async function daxPmemKo(version: KernelVersion): Promise<Uint8Array> {
  const libnvdimm = await ndModule("libnvdimm", version);
  const d = await daxKos(version);
  return (await buildDriver(DAX_PMEM, version, [libnvdimm.symvers, d.dax.symvers, d.device_dax.symvers])).ko;
}

/** A 512 MiB devdax region at 4 GiB with libnvdimm, nfit, nd_pmem, dax, device_dax and dax_pmem. */
async function pmemBoot(version: KernelVersion, builtin: boolean): Promise<{ k: Kernel; seq: number }> {
  const k = await boot({ version, pmem: [{ size: "512M", start: "4G", mode: "devdax" }] });
  const dax_pmem = await daxPmemKo(version);
  await load(k, builtin, "libnvdimm", "nfit", "nd_pmem");
  await loadDax(k, builtin, false);
  const seq = k.log.nextSeq;
  await k.insmod(dax_pmem, { builtin, filename: "dax_pmem.ko" });
  return { k, seq };
}

for (const [version, builtin] of MODES) {
  describe(`dax_pmem on ${version}, ${builtin ? "built in" : "isolated"}`, () => {
    it("binds the namespace's nd_dax: /dev/dax0.0 over the data after the info block, with its alignment", async () => {
      const { k, seq } = await pmemBoot(version, builtin);
      const lines = k.log.messages(seq);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^dax0\.1 initialised, 128512 pages in \d+ms$/);
      expect(k.devtmpfs.has("/dev/dax0.0")).toBe(true);
      expect(k.read("/sys/bus/nd/devices/dax0.1/dax_region/align")).toBe(`${2 << 20}\n`);
      expect(k.read("/sys/bus/nd/devices/dax0.1/dax_region/id")).toBe("0\n");
      // 512 MiB less dataoff: the info block and the memmap kept in the namespace (map=dev).
      expect(k.read("/sys/class/dax/dax0.0/size")).toBe("526385152\n");
      expect(k.read("/proc/iomem")).toContain("100000000-11fffffff : Persistent Memory\n  100000000-11fffffff : namespace0.0\n");
      expect(k.read("/proc/modules")).toMatch(/^device_dax \d+ 1 dax_pmem, Live/m);
      expect(k.read("/proc/modules")).toMatch(/^libnvdimm \d+ 3 dax_pmem,nd_pmem,nfit, Live/m);
    });

    it("mmap: shared and 2 MiB aligned (dax_get_unmapped_area); private refused; a 2 MiB region faults SIGBUS without PMDs", async () => {
      const { k } = await pmemBoot(version, builtin);
      const p = k.spawn("app");
      const fd = p.open("/dev/dax0.0", O_RDWR);
      const seq = k.log.nextSeq;
      expect(errnoOf(() => p.mmap(0, 2 << 20, RW, MAP_PRIVATE, fd, 0))).toBe(EINVAL);
      expect(k.log.messages(seq)).toEqual(["dax dax0.0: app: dax_mmap: fail, attempted private mapping"]);
      const a = p.mmap(0, 4 << 20, RW, MAP_SHARED, fd, 0);
      expect(a % (2 << 20)).toBe(0);
      expect(signalOf(() => p.write(a, [1])).signo).toBe(SIGBUS);
      p.exit();
    });

    it("unbinding at rmmod: refused while mapped; then the dev_dax, the pages and the namespace claim go, WARN-free, and the rest unloads", async () => {
      const { k } = await pmemBoot(version, builtin);
      const p = k.spawn("app");
      const fd = p.open("/dev/dax0.0", O_RDWR);
      const a = p.mmap(0, 2 << 20, RW, MAP_SHARED, fd, 0);
      expect(rmmodError(k, "dax_pmem")!.message).toBe("rmmod: ERROR: Module dax_pmem is in use");
      p.munmap(a, 2 << 20);
      p.close(fd);
      const seq = k.log.nextSeq;
      k.rmmod("dax_pmem");
      expect(k.log.messages(seq)).toEqual([]);
      expect(errnoOf(() => p.open("/dev/dax0.0", O_RDWR))).toBe(ENOENT);
      expect(k.read("/proc/iomem")).not.toContain("namespace0.0");
      k.rmmod("device_dax");
      k.rmmod("dax");
      expect(k.checkInvariants()).toEqual([]);
      p.exit();
    });
  });
}
