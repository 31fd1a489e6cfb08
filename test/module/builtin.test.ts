// One driver, two ways to run (principle 6): the same in-tree module file loaded into an
// isolate (=m) and into the host (=y) gives the same dmesg, the same /proc views and the same
// teardown. Out-of-tree code is never built in.

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import { ko } from "../helpers/build.ts";
import { boot, insmodError } from "../helpers/kernel.ts";

const DRIVER = `
import {
  MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, GFP_KERNEL, IS_ERR, PTR_ERR,
  platform_driver_register, platform_driver_unregister, platform_device_register_simple,
  platform_device_unregister, devm_kzalloc, dev_info, dev_name, devm_add_action,
  hmm_device_new, hmm_device_put, hmm_devmem_add,
  type platform_device, type hmm_device,
} from "kemu/kernel";

MODULE_LICENSE("GPL v2");

let pdev: platform_device | null = null;
let hdev: hmm_device | null = null;
const freed: number[] = [];

function probe(p: platform_device): number {
  const buf = devm_kzalloc(p.dev, 512, GFP_KERNEL);
  if (!buf) return -12;
  const h = hmm_device_new(null);
  if (IS_ERR(h)) return PTR_ERR(h);
  hdev = h;
  const mem = hmm_devmem_add({ free: (_d, page) => { freed.push(page); }, fault: () => 2 }, h.device, 64 << 20);
  if (IS_ERR(mem)) return PTR_ERR(mem);
  devm_add_action(p.dev, (tag) => { printk(KERN_INFO + "cmp: devres action %s\\n", tag); }, "first");
  dev_info(p.dev, "probed %s: %d bytes, device memory pfn %#lx-%#lx\\n", dev_name(p.dev), buf.size, mem.pfn_first, mem.pfn_last);
  return 0;
}

const drv = {
  driver: { name: "cmp" },
  probe,
  remove(p: platform_device): number {
    dev_info(p.dev, "remove\\n");
    return 0;
  },
};

module_init(() => {
  const err = platform_driver_register(drv);
  if (err) return err;
  pdev = platform_device_register_simple("cmp", 0, null, 0);
  printk(KERN_INFO + "cmp: %s, Math.random() %s, Date.now() %d\\n", "loaded", typeof Math.random(), typeof Date.now() === "number" ? 1 : 0);
  return 0;
});

module_exit(() => {
  if (pdev) platform_device_unregister(pdev);
  if (hdev) hmm_device_put(hdev);
  platform_driver_unregister(drv);
  printk(KERN_INFO + "cmp: unloaded, %d pages freed\\n", freed.length);
});
`;

interface Run {
  load: string[];
  modules: string;
  iomem: string;
  unload: string[];
  after: string;
}

async function run(k: Kernel, builtin: boolean, version: "4.20" | "5.0"): Promise<Run> {
  const file = await ko("cmp", DRIVER, { kernel: version, intree: true });
  let seq = k.log.nextSeq;
  await k.insmod(file, { builtin });
  const load = k.log.messages(seq);
  const modules = k.read("/proc/modules");
  const iomem = k.read("/proc/iomem");
  seq = k.log.nextSeq;
  k.rmmod("cmp");
  return { load, modules, iomem, unload: k.log.messages(seq), after: k.read("/proc/iomem") };
}

describe("a driver run isolated and built-in", () => {
  for (const version of ["4.20", "5.0"] as const) {
    it(`gives the same results both ways under ${version}`, async () => {
      const isolated = await run(await boot({ version }), false, version);
      const builtin = await run(await boot({ version }), true, version);
      expect(builtin).toEqual(isolated);
      // And the scenario really ran: probe, devres in LIFO order at unbind, the pages freed.
      expect(isolated.load).toContain("cmp cmp.0: probed cmp.0: 512 bytes, device memory pfn 0x3ffff8000-0x400000000");
      expect(isolated.load.at(-1)).toBe("cmp: loaded, Math.random() number, Date.now() 1");
      expect(isolated.modules).toMatch(/^cmp \d+ 0 - Live 0xffffffffc0000000\n$/);
      expect(isolated.iomem).toContain(" : hmm_device0\n");
      expect(isolated.unload.slice(0, 2)).toEqual(["cmp cmp.0: remove", "cmp: devres action first"]);
      expect(isolated.unload.at(-1)).toBe("cmp: unloaded, 0 pages freed");
      expect(isolated.after).not.toContain("hmm_device0");
    });
  }

  it("shows in /proc/kemu/modules how each module runs", async () => {
    const k = await boot({ version: "5.0" });
    await k.insmod(await ko("cmp", DRIVER, { kernel: "5.0", intree: true }), { builtin: true });
    const view = k.read("/proc/kemu/modules").split("\n");
    expect(view[0]).toBe("name                 mode      state      cpu_ms   heap_kib  heap_limit_kib");
    expect(view[1]).toMatch(/^cmp\s+built-in\s+live\s+\d+\.\d{3}\s+0\s+0$/);
    k.rmmod("cmp");
    await k.insmod(await ko("cmp", DRIVER, { kernel: "5.0", intree: true }));
    expect(k.read("/proc/kemu/modules").split("\n")[1]).toMatch(/^cmp\s+isolated\s+live\s+\d+\.\d{3}\s+[1-9]\d*\s+65536$/);
  });

  it("refuses to build in an out-of-tree module: that code always runs isolated", async () => {
    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("cmp", DRIVER, { kernel: "5.0" }), { builtin: true });
    expect(err.errno).toBe(1);
    expect(err.message).toBe("insmod: ERROR: could not insert module module.ko: Operation not permitted");
    expect(k.log.messages(seq)).toEqual(["kemu: cmp: only in-tree modules can be built in; load it isolated, or build it with intree"]);
    expect(k.read("/proc/modules")).toBe("");
    expect(k.tainted()).toBe("Not tainted");
  });
});
