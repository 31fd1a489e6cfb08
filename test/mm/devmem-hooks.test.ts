// The kernel's hooks (DESIGN principle 5): a driver's hmm_devmem_ops become taps named after
// its module on the pgmap's fault and free hooks, and a host observer taps the same hooks; the
// mm hooks announce every handled fault and every invalidation.

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import { ko } from "../helpers/build.ts";
import { boot } from "../helpers/kernel.ts";
import { FAULT_FLAG_USER, FAULT_FLAG_WRITE, FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_KILLABLE } from "../../core/mm/memory.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";

const GPUMOD = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, IS_ERR, PTR_ERR,
  hmm_device_new, hmm_device_put, hmm_devmem_add, type hmm_device } from "kemu/kernel";
MODULE_LICENSE("GPL");
let hdev: hmm_device | null = null;
module_init(() => {
  const h = hmm_device_new(null);
  if (IS_ERR(h)) return PTR_ERR(h);
  hdev = h;
  const d = hmm_devmem_add({
    free: (_d, page) => { printk(KERN_INFO + "gpumod: free pfn %#lx\\n", page); },
    fault: (_d, _vma, addr, page, flags) => { printk(KERN_INFO + "gpumod: fault at %#lx pfn %#lx flags %#x\\n", addr, page, flags); return 0x4; },
  }, h.device, 128 << 20);
  return IS_ERR(d) ? PTR_ERR(d) : 0;
});
module_exit(() => { if (hdev) hmm_device_put(hdev); });
`;

function devicePgmap(k: Kernel) {
  const pgmap = k.mm.memremap.registered().find((p) => p.dev?.name === "hmm_device0");
  if (!pgmap) throw new Error("no hmm_device0 pgmap");
  return pgmap;
}

describe("device-memory hooks", () => {
  it("are frozen and named: kernel.hooks.devmem.{fault,free}", async () => {
    const k = await boot({ version: "5.0" });
    expect(Object.isFrozen(k.hooks)).toBe(true);
    expect(Object.isFrozen(k.hooks.devmem)).toBe(true);
    expect(Object.keys(k.hooks.devmem)).toEqual(["fault", "free"]);
    expect(Object.isFrozen(k.hooks.mm)).toBe(true);
    expect(Object.keys(k.hooks.mm)).toEqual(["fault", "invalidate"]);
  });

  it("mm.fault sees each handled fault with its result; mm.invalidate each range before it changes", async () => {
    const k = await boot({ version: "5.0" });
    const seen: string[] = [];
    k.hooks.mm.fault.tap("tracer", (vma, addr, flags, ret) => void seen.push(`fault ${(addr - vma.vm_start).toString(16)} ${flags.toString(16)} ${ret}`));
    k.hooks.mm.invalidate.tap("tracer", (r) => void seen.push(`invalidate ${(r.end - r.start).toString(16)}`));
    const p = k.spawn("app");
    const a = p.mmap(0, 0x3000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.write(a + 0x1000, new Uint8Array([1]));
    p.munmap(a, 0x3000);
    const w = FAULT_FLAG_WRITE | FAULT_FLAG_USER | FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE;
    expect(seen).toEqual([`fault 1000 ${w.toString(16)} 0`, "invalidate 3000"]);
    p.exit();
  });

  for (const version of ["4.20", "5.0"] as const) {
    it(`${version}: hmm_devmem_ops become taps named after the module; an observer sees each call first`, async () => {
      const k = await boot({ version });
      await k.insmod(await ko("gpumod", GPUMOD, { kernel: version }));
      const pgmap = devicePgmap(k);
      const fault = k.hooks.devmem.fault.get(pgmap.id)!;
      const free = k.hooks.devmem.free.get(pgmap.id)!;
      expect(fault.taps.map((t) => t.name)).toEqual(["gpumod"]);
      expect(free.taps.map((t) => t.name)).toEqual(["gpumod"]);

      const seen: string[] = [];
      fault.tap({ name: "tracer", stage: -1 }, (_vma, addr, page, flags) => {
        seen.push(`fault ${addr.toString(16)} ${page.toString(16)} ${flags}`);
        return undefined;
      });
      free.tap({ name: "tracer", stage: -1 }, (page) => void seen.push(`free ${page.toString(16)}`));
      expect(fault.taps.map((t) => t.name)).toEqual(["tracer", "gpumod"]);

      const page = 0x3ffff8000 + 5; // hmm_devmem_add() took the top 128 MiB of the physical space
      expect(pgmap.res.start).toBe(0x3ffff8000 * 4096);
      const seq = k.log.nextSeq;
      expect(k.mm.memremap.device_private_entry_fault(null, 0x7f0000005000, page, 0x55)).toBe(0x4);
      k.mm.get_page(page);
      k.mm.put_page(page);
      expect(seen).toEqual(["fault 7f0000005000 3ffff8005 85", "free 3ffff8005"]);
      expect(k.log.messages(seq)).toEqual(["gpumod: fault at 0x7f0000005000 pfn 0x3ffff8005 flags 0x55", "gpumod: free pfn 0x3ffff8005"]);
      k.rmmod("gpumod");
    });
  }

  it("is a bail hook: a tap that answers first decides the vm_fault_t, and the driver is not asked", async () => {
    const k = await boot({ version: "5.0" });
    await k.insmod(await ko("gpumod", GPUMOD));
    const pgmap = devicePgmap(k);
    k.hooks.devmem.fault.for(pgmap.id).tap({ name: "inject-sigbus", stage: -1 }, () => 0x2);
    const seq = k.log.nextSeq;
    expect(k.mm.memremap.device_private_entry_fault(null, 0x1000, 0x3ffff8000, 0)).toBe(0x2);
    expect(k.log.messages(seq)).toEqual([]);
    k.rmmod("gpumod");
  });
});
