// Device memory end to end, on 4.20 and 5.0 (spec mm-hmm R3.1, R3.8, R3.10, R4.3, R4.4): a
// device page idles at refcount 1, is 2 while a process maps it, and goes back to its driver
// (ops->free, once) when the last mapping goes; a process's data migrates to device memory
// and comes back, page by page, through the CPU fault and the driver's ops->fault; a host
// observer on the kernel's hooks sees the whole round trip in order.

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import { FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_KILLABLE, FAULT_FLAG_USER, FAULT_FLAG_WRITE } from "../../core/mm/memory.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { PG_locked } from "../../core/mm/page-flags.ts";
import { pte_write } from "../../core/mm/pgtable.ts";
import { Gpu, gpuApp, mirrorOf, teardown } from "../helpers/hmm-driver.ts";
import { boot } from "../helpers/kernel.ts";
import { pageFlags } from "../helpers/mm.ts";
import { deviceEntry, hex, mapcount, PAGE, pfnOf, pteOf, refcount } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const USER_READ = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | FAULT_FLAG_USER;
const USER_WRITE = USER_READ | FAULT_FLAG_WRITE;

const free = (k: Kernel) => k.mm.pageAlloc.nr_free_pages();

/** A page of recognisable bytes. */
function pattern(seed: number): Uint8Array {
  const b = new Uint8Array(PAGE);
  for (let i = 0; i < PAGE; i++) b[i] = (i * 7 + seed * 31) & 0xff;
  return b;
}

for (const version of ["4.20", "5.0"] as const) {
  describe(`${version}: device memory round trip`, () => {
    it("a device page: idle at 1; taken (get_page + lock) at 2; mapped at 2, unlocked; munmap or exit: 1 and ops->free once", async () => {
      const k = await boot({ version });
      const gpu = new Gpu(k);
      const d = gpu.devmem.pfn_first;
      expect([refcount(k, d), mapcount(k, d)]).toEqual([1, 0]);
      // Taking one by hand, as alloc_and_copy() does:
      expect(gpu.allocDevicePage()).toBe(d);
      expect([refcount(k, d), pageFlags(k, d) & (1 << PG_locked)]).toEqual([2, 1 << PG_locked]);
      // ... and giving it back unused: unlock + put_page() -> 1 -> ops->free.
      k.mm.memmap.section(d).flags[d - k.mm.memmap.section(d).startPfn]! &= ~(1 << PG_locked);
      k.mm.put_page(d);
      expect([refcount(k, d), gpu.freed]).toEqual([1, [d]]);

      const p = k.spawn("app");
      const a = p.mmap(0, 2 * PAGE, RW, ANON);
      p.write(a, [1]);
      gpu.migrateToDevice(p, a, 1);
      expect(deviceEntry(p, a)).toEqual([d, true]);
      expect([refcount(k, d), mapcount(k, d), pageFlags(k, d) & (1 << PG_locked)]).toEqual([2, 1, 0]);
      p.munmap(a, PAGE);
      expect([refcount(k, d), mapcount(k, d), gpu.freed]).toEqual([1, 0, [d, d]]);
      // hmm_devmem_free() cleared ->mapping before ops->free.
      const sec = k.mm.memmap.section(d);
      expect(sec.mapping[d - sec.startPfn]).toBeNull();

      p.write(a + PAGE, [2]);
      gpu.migrateToDevice(p, a + PAGE, 1);
      expect(deviceEntry(p, a + PAGE)).toEqual([d, true]);
      p.exit();
      expect([refcount(k, d), gpu.freed]).toEqual([1, [d, d, d]]);
      gpu.remove();
    });

    it("a process's data goes to device memory and comes back through CPU faults, intact, into new system pages", async () => {
      const { k, gpu, p, a } = await gpuApp(version, 3);
      for (let i = 0; i < 3; i++) p.write(a + i * PAGE, pattern(i));
      const old = [0, 1, 2].map((i) => pfnOf(p, a + i * PAGE));
      const f0 = free(k);

      const res = gpu.migrateToDevice(p, a, 3);
      expect(res.ret).toBe(0);
      const dev = [0, 1, 2].map((i) => deviceEntry(p, a + i * PAGE));
      expect(dev.map(([, w]) => w)).toEqual([true, true, true]);
      const d = dev.map(([pg]) => pg);
      for (let i = 0; i < 3; i++) {
        expect(k.mm.is_device_private_page(d[i]!)).toBe(true);
        expect(gpu.vram(d[i]!)).toEqual(pattern(i));
      }
      // The system pages went back to the buddy allocator.
      expect([free(k) - f0, old.map((pg) => refcount(k, pg))]).toEqual([3, [0, 0, 0]]);

      // A read of the middle page: one CPU fault, ops->fault migrates that page back.
      expect(p.read(a + PAGE, PAGE)).toEqual(pattern(1));
      expect(gpu.faults).toEqual([{ addr: a + PAGE, page: d[1], flags: USER_READ, ret: 0 }]);
      const back1 = pfnOf(p, a + PAGE);
      expect([k.mm.is_zone_device_page(back1), pte_write(pteOf(p, a + PAGE)), refcount(k, back1), mapcount(k, back1)]).toEqual([false, true, 1, 1]);
      expect([gpu.freed, refcount(k, d[1]!), mapcount(k, d[1]!), free(k) - f0]).toEqual([[d[1]], 1, 0, 2]);
      expect([deviceEntry(p, a), deviceEntry(p, a + 2 * PAGE)]).toEqual([dev[0], dev[2]]);

      // A write to the first: the fault carries FAULT_FLAG_WRITE; the rest of the page is there.
      p.write(a + 5, [0xee]);
      expect(gpu.faults[1]).toEqual({ addr: a, page: d[0], flags: USER_WRITE, ret: 0 });
      const want0 = pattern(0);
      want0[5] = 0xee;
      expect(p.read(a, PAGE)).toEqual(want0);
      expect(p.read(a + 2 * PAGE, PAGE)).toEqual(pattern(2));
      expect([gpu.freed, gpu.inUse.size, free(k) - f0]).toEqual([[d[1], d[0], d[2]], 0, 0]);
      expect(gpu.faults.length).toBe(3);
      p.exit();
      expect(free(k) - f0).toBe(3);
      gpu.remove();
    });

    it("after fork both processes map the device page (read-only); the child's access brings it back for both", async () => {
      const { k, gpu, p, a } = await gpuApp(version, 1);
      p.write(a, pattern(4));
      gpu.migrateToDevice(p, a, 1);
      const [d] = deviceEntry(p, a);
      const c = p.fork();
      const mp = mirrorOf(k, p);
      const mc = mirrorOf(k, c);
      expect([deviceEntry(p, a), deviceEntry(c, a), refcount(k, d), mapcount(k, d)]).toEqual([[d, false], [d, false], 3, 2]);
      expect(c.read(a, PAGE)).toEqual(pattern(4));
      expect(gpu.faults).toEqual([{ addr: a, page: d, flags: USER_READ, ret: 0 }]);
      // collect in the child; try_to_unmap() finds the parent's entry first, and stops there.
      expect([mc.take(), mp.take()]).toEqual([[`${hex(a)}-${hex(a + PAGE)}`], [`${hex(a)}-${hex(a + PAGE)}`]]);
      const back = pfnOf(c, a);
      expect([pfnOf(p, a), pte_write(pteOf(p, a)), pte_write(pteOf(c, a)), refcount(k, back), mapcount(k, back)]).toEqual([back, false, false, 2, 2]);
      expect([gpu.freed, refcount(k, d)]).toEqual([[d], 1]);
      // Copy-on-write as usual from here.
      p.write(a, [9]);
      expect([pfnOf(c, a), mapcount(k, back), c.read(a, 1)[0], p.read(a, 1)[0]]).toEqual([back, 1, pattern(4)[0], 9]);
      teardown(k, [mc, mp], [c, p], gpu);
    });

    it("a host observer on devmem.fault/free and mm.fault/invalidate sees one round trip in order", async () => {
      const { k, gpu, p, a } = await gpuApp(version, 2, [1, 2]);
      const id = gpu.devmem.pagemap.id;
      const seen: string[] = [];
      const rel = (x: number) => hex(x - a);
      k.hooks.devmem.fault.for(id).tap({ name: "tracer", stage: -1 }, (_vma, addr, page, flags) => {
        seen.push(`devmem.fault ${rel(addr)} ${hex(page)} ${hex(flags)}`);
        return undefined;
      });
      k.hooks.devmem.free.for(id).tap({ name: "tracer", stage: -1 }, (page) => void seen.push(`devmem.free ${hex(page)}`));
      k.hooks.mm.fault.tap("tracer", (_vma, addr, flags, ret) => void seen.push(`mm.fault ${rel(addr)} ${hex(flags)} ${ret}`));
      k.hooks.mm.invalidate.tap("tracer", (r) => void seen.push(`mm.invalidate ${rel(r.start)}-${rel(r.end)}`));

      gpu.migrateToDevice(p, a, 2);
      const [d0] = deviceEntry(p, a);
      const [d1] = deviceEntry(p, a + PAGE);
      expect(p.read(a + PAGE, 1)[0]).toBe(2);
      p.write(a + 1, [3]);
      p.munmap(a, 2 * PAGE);
      expect(seen).toEqual([
        "mm.invalidate 0x0-0x2000",
        `devmem.fault 0x1000 ${hex(d1)} ${hex(USER_READ)}`,
        "mm.invalidate 0x1000-0x2000",
        `devmem.free ${hex(d1)}`,
        `mm.fault 0x1000 ${hex(USER_READ)} 0`,
        `devmem.fault 0x0 ${hex(d0)} ${hex(USER_WRITE)}`,
        "mm.invalidate 0x0-0x1000",
        `devmem.free ${hex(d0)}`,
        // (mm.fault has the faulting address as the CPU gave it; the handlers see the page.)
        `mm.fault 0x1 ${hex(USER_WRITE)} 0`,
        "mm.invalidate 0x0-0x2000",
      ]);
      expect(gpu.freed).toEqual([d1, d0]);
      p.exit();
      gpu.remove();
    });
  });
}
