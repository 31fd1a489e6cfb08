// What kemu says around a module's life that the other suites do not cover: parameters the
// module does not know, a callback answering with the wrong kind of value, registrations a
// module forgot at unload, and a module that cannot be unloaded at shutdown.

import { describe, expect, it } from "vitest";
import { ko } from "../helpers/build.ts";
import { boot } from "../helpers/kernel.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import type { HmmMm } from "../../core/mm/hmm-mirror.ts";

describe("a module's life, as kemu reports it", () => {
  it("ignores parameters the module does not declare, with the kernel's warning for each, before init", async () => {
    const k = await boot({ version: "5.0" });
    const file = await ko("quiet", `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => { printk(KERN_INFO + "quiet: init\\n"); return 0; });
module_exit(() => {});
`, { intree: true });
    const seq = k.log.nextSeq;
    await k.insmod(file, { params: "debug=1 verbose" });
    // kernel/module.c unknown_module_param_cb(): pr_warn("%s: unknown parameter '%s' ignored\n")
    expect(k.log.messages(seq)).toEqual(["quiet: unknown parameter 'debug' ignored", "quiet: unknown parameter 'verbose' ignored", "quiet: init"]);
    k.rmmod("quiet");
  });

  it("a probe answering with a string is a bad value: the kernel gets the probe's fault value", async () => {
    const k = await boot({ version: "5.0" });
    const file = await ko("badret", `
import { MODULE_LICENSE, module_init, module_exit, platform_driver_register, platform_driver_unregister, platform_device_register_simple, platform_device_unregister, type platform_device } from "kemu/kernel";
MODULE_LICENSE("GPL");
const drv = { driver: { name: "badret" }, probe(_p: platform_device): number { return "ok" as unknown as number; } };
let pdev: platform_device | null = null;
module_init(() => { platform_driver_register(drv); pdev = platform_device_register_simple("badret", -1, null, 0); return 0; });
module_exit(() => { platform_device_unregister(pdev); platform_driver_unregister(drv); });
`, { intree: true });
    const seq = k.log.nextSeq;
    await k.insmod(file);
    expect(k.log.messages(seq)).toEqual([
      'kemu: badret: probe() returned a bad value: expected an integer, got "ok"',
      "badret: probe of badret failed with error -14",
    ]);
    // Only a value was wrong: the module is not dead.
    expect(k.read("/proc/modules")).toMatch(/^badret \d+ 0 - Live /);
    k.rmmod("badret");
  });

  it("what a module still has registered at unload is taken down, each with a line", async () => {
    const k = await boot({ version: "4.20" });
    const file = await ko("lazy", `
import { MODULE_LICENSE, module_init, module_exit, platform_driver_register, platform_device_register_simple, hmm_device_new, type platform_device } from "kemu/kernel";
MODULE_LICENSE("GPL");
const drv = { driver: { name: "lazy" }, probe(_p: platform_device): number { return 0; } };
module_init(() => { platform_driver_register(drv); platform_device_register_simple("lazy", -1, null, 0); hmm_device_new(null); return 0; });
module_exit(() => {});
`, { kernel: "4.20", intree: true });
    await k.insmod(file);
    const seq = k.log.nextSeq;
    k.rmmod("lazy");
    expect(k.log.messages(seq)).toEqual([
      "kemu: lazy: platform driver 'lazy' still registered at unload; unregistering it",
      "kemu: lazy: platform device 'lazy' still registered at unload; unregistering it",
      "kemu: lazy: hmm_device0 still held at unload; putting it",
    ]);
    expect(k.base.devices.filter((d) => d.name === "lazy" || d.name === "hmm_device0")).toEqual([]);
  });

  it("a mirror a module left registered at unload is unregistered, with a line", async () => {
    const k = await boot({ version: "5.0" });
    // open() mirrors the opener's address space; release() forgets to unregister it.
    await k.insmod(await ko("mirrorleak", `
import { MODULE_LICENSE, module_init, module_exit, MISC_DYNAMIC_MINOR, misc_register, misc_deregister, get_current, hmm_mirror_register, type miscdevice, type hmm_mirror } from "kemu/kernel";
MODULE_LICENSE("GPL");
const m: miscdevice = { minor: MISC_DYNAMIC_MINOR, name: "mirrorleak", fops: {
  open() { const mirror: hmm_mirror = { ops: { sync_cpu_device_pagetables() { return 0; } } }; return hmm_mirror_register(mirror, get_current().mm); },
} };
module_init(() => misc_register(m));
module_exit(() => { misc_deregister(m); });
`, { intree: true }));
    const p = k.spawn("app");
    p.close(p.open("/dev/mirrorleak", O_RDWR));
    const hmm = () => p.mm!.hmm as HmmMm | null;
    expect(hmm()!.mirrors.length).toBe(1);
    const seq = k.log.nextSeq;
    k.rmmod("mirrorleak");
    expect(k.log.messages(seq)).toEqual(["kemu: mirrorleak: an hmm_mirror is still registered at unload; unregistering it"]);
    expect(hmm()?.mirrors ?? []).toEqual([]);
    p.exit();
  });

  it("at shutdown a module that cannot be removed stays, and says why", async () => {
    const k = await boot({ version: "5.0" });
    // init without exit: permanent, and MODULE_FORCE_UNLOAD is off.
    await k.insmod(await ko("perm", `
import { MODULE_LICENSE, module_init } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => 0);
`, { intree: true }));
    const seq = k.log.nextSeq;
    await k.shutdown();
    expect(k.log.messages(seq)).toEqual(["kemu: shutdown: perm stays loaded: Device or resource busy", "reboot: Power down"]);
  });
});
