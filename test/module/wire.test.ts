// How calls cross between a module and the kernel (marshal.ts, shim.ts): void calls with plain
// arguments are queued and run before anything else of the module reaches the kernel;
// arrays the callee writes into (io:) come back; what a module hands the kernel through them
// is checked. Isolated and built in behave the same.

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { ko } from "../helpers/build.ts";
import { boot } from "../helpers/kernel.ts";
import { PAGE } from "../helpers/process.ts";

async function load(k: Kernel, name: string, source: string, builtin: boolean): Promise<void> {
  await k.insmod(await ko(name, source, { intree: true, kernel: k.config.version }), { builtin });
}

const QUEUE = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, GFP_KERNEL, alloc_page, __free_page, get_page, put_page, page_ref_count } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => {
  const p = alloc_page(GFP_KERNEL)!;
  get_page(p);
  get_page(p);
  printk(KERN_INFO + "queue: after two gets %d\\n", page_ref_count(p));
  put_page(-5);
  printk(KERN_INFO + "queue: after a refused put\\n");
  for (let i = 0; i < 3000; i++) { get_page(p); put_page(p); }
  put_page(p);
  put_page(p);
  printk(KERN_INFO + "queue: after 3000 pairs and two puts %d\\n", page_ref_count(p));
  __free_page(p);
  return 0;
});
module_exit(() => {});
`;

for (const builtin of [false, true]) {
  describe(`calls from a module ${builtin ? "built in" : "isolated"}`, () => {
    it("void calls with plain arguments run in order before the module's next call (a full queue flushes itself)", async () => {
      const k = await boot({ version: "5.0" });
      const seq = k.log.nextSeq;
      await load(k, "queue", QUEUE, builtin);
      expect(k.log.messages(seq).filter((l) => l.startsWith("queue") || l.includes("kemu: queue"))).toEqual([
        "queue: after two gets 3",
        "kemu: queue: put_page(): expected a struct page (a pfn), got number -5; call refused",
        "queue: after a refused put",
        "queue: after 3000 pairs and two puts 1",
      ]);
      k.rmmod("queue");
    });

    it("a void call that runs the module's own code (platform_device_unregister -> remove) is made at once, not queued", async () => {
      const k = await boot({ version: "5.0" });
      const seq = k.log.nextSeq;
      await load(k, "callsback", `
import {
  MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO,
  platform_driver_register, platform_driver_unregister, platform_device_register_simple, platform_device_unregister, type platform_driver,
} from "kemu/kernel";
MODULE_LICENSE("GPL");
let state = "bound";
const drv: platform_driver = {
  driver: { name: "callsback" },
  probe: () => 0,
  remove: () => { printk(KERN_INFO + "callsback: remove sees %s\\n", state); return 0; },
};
module_init(() => {
  platform_driver_register(drv);
  const pdev = platform_device_register_simple("callsback", 0, null, 0);
  platform_device_unregister(pdev);
  state = "unregistered";
  printk(KERN_INFO + "callsback: after unregister\\n");
  return 0;
});
module_exit(() => platform_driver_unregister(drv));
`, builtin);
      expect(k.log.messages(seq).filter((l) => l.startsWith("callsback"))).toEqual(["callsback: remove sees bound", "callsback: after unregister"]);
      k.rmmod("callsback");
    });

    it("alloc_and_copy() naming a page the module does not hold: the entry is dropped with a line, nothing moves", async () => {
      const k = await boot({ version: "5.0" });
      await load(k, "forger", `
import {
  MODULE_LICENSE, module_init, module_exit, THIS_MODULE, MISC_DYNAMIC_MINOR, MIGRATE_PFN_LOCKED, PAGE_SIZE,
  misc_register, misc_deregister, get_current, find_vma, migrate_vma, migrate_pfn, type miscdevice,
} from "kemu/kernel";
MODULE_LICENSE("GPL");
const src = new Float64Array(1), dst = new Float64Array(1);
const dev: miscdevice = { minor: MISC_DYNAMIC_MINOR, name: "forger", fops: { owner: THIS_MODULE, unlocked_ioctl(_f, cmd, arg) {
  const vma = find_vma(get_current().mm!, arg)!;
  const rc = migrate_vma({
    alloc_and_copy(_v, s, d) { d[0] = migrate_pfn(cmd) + MIGRATE_PFN_LOCKED; },
    finalize_and_map() {},
  }, vma, arg, arg + PAGE_SIZE, src, dst, null);
  return rc < 0 ? rc : src[0]! % 64;
} } };
module_init(() => misc_register(dev));
module_exit(() => misc_deregister(dev));
`, builtin);
      const p = k.spawn("app");
      const buf = p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      p.write(buf, [42]);
      const fd = p.open("/dev/forger", O_RDWR);
      const pfn = Math.floor(p.mm!.ptep_get(buf) / PAGE);
      const seq = k.log.nextSeq;
      // pfn 0x10: a free page nobody holds; then a pfn beyond memory.
      for (const bad of [0x10, 0x7fffffff]) {
        const flags = p.ioctl(fd, bad, buf);
        expect(flags & 2).toBe(0); // MIGRATE cleared: nothing moved
      }
      expect(k.log.messages(seq)).toEqual([
        "kemu: forger: alloc_and_copy() set dst[0] to 0x405, which is not a locked page it holds; the entry is dropped",
        "kemu: forger: alloc_and_copy() set dst[0] to 0x1fffffffc5, which is not a locked page it holds; the entry is dropped",
      ]);
      // The page stays where it was (its pte is restored from the migration entry).
      expect(Math.floor(p.mm!.ptep_get(buf) / PAGE)).toBe(pfn);
      expect([...p.read(buf, 1)]).toEqual([42]);
      p.close(fd);
      p.exit();
    });
  });
}

describe("arrays the kernel writes into (io:f64)", () => {
  it("hmm_range pfns: filled by hmm_vma_get_pfns(), zeroed by an invalidation while tracked, read back at range_done", async () => {
    const k = await boot({ version: "4.20" });
    await load(k, "ranger", `
import {
  MODULE_LICENSE, module_init, module_exit, THIS_MODULE, MISC_DYNAMIC_MINOR, EINVAL, printk, KERN_INFO,
  misc_register, misc_deregister, get_current, find_vma, hmm_mirror_register, hmm_mirror_unregister,
  hmm_vma_get_pfns, hmm_vma_range_done, type miscdevice, type hmm_mirror, type hmm_range,
} from "kemu/kernel";
MODULE_LICENSE("GPL");
let range: hmm_range | null = null;
const mirror: hmm_mirror = { ops: { sync_cpu_device_pagetables(_m, u) { printk(KERN_INFO + "ranger: invalidate %#lx-%#lx\\n", (u as any).start, (u as any).end); return 0; } } };
const noops = {} as hmm_mirror;
const dev: miscdevice = { minor: MISC_DYNAMIC_MINOR, name: "ranger", fops: { owner: THIS_MODULE, unlocked_ioctl(_f, cmd, arg) {
  const mm = get_current().mm!;
  if (cmd === 0) {
    printk(KERN_INFO + "ranger: no ops %d\\n", hmm_mirror_register(noops, mm));
    return hmm_mirror_register(mirror, mm);
  }
  if (cmd === 1) {
    const vma = find_vma(mm, arg)!;
    range = { vma, start: arg, end: arg + 4 * 4096, pfns: new Float64Array(4), flags: [1, 2, 4], values: [0xfe, 0, 0xfc], pfn_shift: 3 };
    const rc = hmm_vma_get_pfns(range);
    printk(KERN_INFO + "ranger: get %d: %s\\n", rc, Array.from(range.pfns, (v) => v % 8).join(","));
    return rc;
  }
  if (cmd === 2) {
    const valid = hmm_vma_range_done(range!);
    printk(KERN_INFO + "ranger: done %d: %s\\n", valid ? 1 : 0, Array.from(range!.pfns, (v) => v % 8).join(","));
    return 0;
  }
  if (cmd === 3) {
    // Too short for the range: refused.
    const vma = find_vma(mm, arg)!;
    return hmm_vma_get_pfns({ vma, start: arg, end: arg + 4 * 4096, pfns: new Float64Array(2), flags: [1, 2, 4], values: [0xfe, 0, 0xfc], pfn_shift: 3 });
  }
  hmm_mirror_unregister(mirror);
  return -EINVAL;
} } };
module_init(() => misc_register(dev));
module_exit(() => misc_deregister(dev));
`, false);
    const p = k.spawn("app");
    const buf = p.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.write(buf, [1]);
    p.write(buf + 2 * PAGE, [1]);
    const fd = p.open("/dev/ranger", O_RDWR);
    const seq = k.log.nextSeq;
    expect(p.ioctl(fd, 0)).toBe(0);
    expect(p.ioctl(fd, 1, buf)).toBe(0);
    p.munmap(buf + 2 * PAGE, PAGE);
    expect(p.ioctl(fd, 2)).toBe(0);
    expect(() => p.ioctl(fd, 3, buf)).toThrow(/Invalid argument/);
    expect(() => p.ioctl(fd, 4)).toThrow(/Invalid argument/);
    const a = (buf + 2 * PAGE).toString(16);
    const b = (buf + 3 * PAGE).toString(16);
    expect(k.log.messages(seq)).toEqual([
      "ranger: no ops -22",
      "ranger: get 0: 3,0,3,0",
      `ranger: invalidate 0x${a}-0x${b}`,
      "ranger: done 0: 3,0,0,0",
      `kemu: ranger: hmm_vma_get_pfns(): range->pfns has 2 entries, the range [0x${buf.toString(16)}, 0x${(buf + 4 * PAGE).toString(16)}) needs 4; call refused`,
    ]);
    p.close(fd);
    p.exit();
  });
});
