// The in-tree drivers as a machine gets them: `kemu modules`' build of drivers/ (the tree's
// build/drivers, fresh from test/global-setup.ts), a boot with an fsdax and a devdax pmem region and a GPU,
// and udev loading every driver by its alias. Then the devices are used through a process:
// /dev/pmem0 block I/O, /dev/dax1.0 mapped (a 4K-aligned devdax namespace, so the 4 KiB
// faults kemu has can map it), and both persist in the regions' files across a reboot.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MODULES_DIR, type BootConfig } from "../../core/config.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import type { KernelVersion } from "../../core/version.ts";
import { boot } from "../helpers/kernel.ts";

const VERSIONS: KernelVersion[] = ["4.20", "5.0"];
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "kemu-intree-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function machine(version: KernelVersion): BootConfig {
  return {
    version,
    pmem: [
      { size: "256M", file: join(dir, `${version}-pmem0.img`) },
      { size: "256M", file: join(dir, `${version}-pmem1.img`), mode: "devdax", align: "4K" },
    ],
    gpus: [{ vram: "64M" }],
    modulesDir: MODULES_DIR,
    autoload: true,
  };
}

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

for (const version of VERSIONS) {
  describe(`in-tree drivers on ${version}`, () => {
    it("udev loads nfit, libnvdimm, nd_pmem, dax_pmem (with dax, device_dax) and nouveau for the machine", async () => {
      const k = await boot(machine(version));
      const mods = k.read("/proc/modules").split("\n").filter(Boolean).map((l) => l.split(" ")[0]).sort();
      expect(mods).toEqual(["dax", "dax_pmem", "device_dax", "libnvdimm", "nd_pmem", "nfit", "nouveau"]);
      expect(k.read("/proc/modules")).toMatch(/^libnvdimm \d+ 3 dax_pmem,nd_pmem,nfit, Live/m);
      for (const node of ["/dev/pmem0", "/dev/dax1.0", "/dev/dri/renderD128"]) expect(k.devtmpfs.has(node), node).toBe(true);
      expect(k.dmesg()).toContain("DRM: DMEM: registered 64MB of device memory\n");
      expect(k.dmesg()).toMatch(/pmem0: detected capacity change from 0 to \d+\n/);
    });

    it("what a process writes to /dev/pmem0 and through a /dev/dax1.0 mapping is in the media after a reboot", async () => {
      {
        const k = await boot(machine(version));
        const p = k.spawn("writer");
        const blk = p.open("/dev/pmem0", O_RDWR);
        p.pwrite(blk, text("kemu block data"), 4096);
        p.fsync(blk);
        const dax = p.open("/dev/dax1.0", O_RDWR);
        const a = p.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, dax, 0);
        p.write(a + 8192, text("kemu dax data"));
        p.exit();
        // Power-off: what the CPU stored into pmem is in the media (the files) from here on.
        await k.shutdown();
      }
      const k = await boot(machine(version));
      const p = k.spawn("reader");
      expect(str(p.pread(p.open("/dev/pmem0", O_RDWR), 15, 4096))).toBe("kemu block data");
      const a = p.mmap(0, 1 << 20, PROT_READ, MAP_SHARED, p.open("/dev/dax1.0", O_RDWR), 0);
      expect(str(p.read(a + 8192, 13))).toBe("kemu dax data");
      p.exit();
    });
  });
}
