// Module states, references and unloading (spec module-loader §7 U1, U3-U6; §8 F4), checked
// against kernel/module.c of 4.19/4.20/5.0 (delete_module, try_release_module_ref,
// try_stop_module, module_put, do_init_module, add_unformed_module, m_show,
// print_unload_info) and kmod's tools/rmmod.c (check_module_inuse) and tools/lsmod.c.
//
// kmod's rmmod checks /sys/module before it calls delete_module(), and skips those checks
// with -f; Kernel.rmmod() plays rmmod, k.modules.delete_module() is the syscall itself.

import { describe, expect, it, onTestFinished } from "vitest";
import { EPERM, ENOENT, EWOULDBLOCK, EBUSY, EEXIST, ENODEV, KernelError } from "../../core/errno.ts";
import { KernelOops } from "../../core/kernel/bug.ts";
import type { Kernel } from "../../core/kernel.ts";
import { O_NONBLOCK, O_TRUNC } from "../../core/module/loader.ts";
import type { Module } from "../../core/module/module.ts";
import type { KernelVersion } from "../../core/version.ts";
import { buildSource, ko, licensed } from "../helpers/build.ts";
import { boot, insmodError, lsmodLine, moduleSize, procModules, rmmodError, tainted } from "../helpers/kernel.ts";

const VERSIONS: KernelVersion[] = ["4.19", "4.20", "5.0"];

/** A GPL module printing "NAME: init"/"NAME: exit"; `init`/`exit` null leaves that function out. */
function plain(name: string, init: string | null, exit: string | null = ""): string {
  return [
    'import * as k from "kemu/kernel";',
    'k.MODULE_LICENSE("GPL");',
    init === null ? "" : `k.module_init(() => { k.printk(k.KERN_INFO + "${name}: init\\n"); ${init} });`,
    exit === null ? "" : `k.module_exit(() => { k.printk(k.KERN_INFO + "${name}: exit\\n"); ${exit} });`,
  ].join("\n");
}

const EXPORTER = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
export function lib_twice(x: number): number { return 2 * x; }
k.EXPORT_SYMBOL(lib_twice);
k.module_init(() => 0);
k.module_exit(() => {});
`;
const USER = `
import * as k from "kemu/kernel";
import { lib_twice } from "kemu/extern";
k.MODULE_LICENSE("GPL");
k.module_init(() => { k.printk(k.KERN_INFO + "user: %d\\n", lib_twice(21)); return 0; });
k.module_exit(() => {});
`;

describe("delete_module(): the decision order of 4.19-5.0 (U5) and kmod's rmmod messages (U6)", () => {
  for (const version of VERSIONS) {
    it(`${version}: a module that is not loaded: -ENOENT; rmmod says so before asking the kernel`, async () => {
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      expect(k.modules.delete_module("nosuch", O_NONBLOCK)).toBe(-ENOENT);
      expect(k.modules.delete_module("nosuch", O_NONBLOCK | O_TRUNC)).toBe(-ENOENT);
      const e = rmmodError(k, "nosuch")!;
      expect(e.message).toBe("rmmod: ERROR: Module nosuch is not currently loaded");
      expect(k.log.messages(seq)).toEqual([]);
    });
  }

  it("rmmod -f skips kmod's checks: a module that is not loaded is the kernel's -ENOENT", async () => {
    // kmod rmmod.c: `if (!(flags & KMOD_REMOVE_FORCE) && check_module_inuse(mod) < 0)`, so with
    // -f the "not currently loaded" check is not made and delete_module() answers.
    const k = await boot({ version: "4.20", kconfig: { MODULE_FORCE_UNLOAD: true } });
    const e = rmmodError(k, "nosuch", true)!;
    expect(e.errno).toBe(ENOENT);
    expect(e.message).toBe("rmmod: ERROR: could not remove module nosuch: No such file or directory");
  });

  it("with modules_disabled every delete_module() is -EPERM, before the name is even looked up", async () => {
    const k = await boot({ version: "4.20" });
    k.write("/proc/sys/kernel/modules_disabled", "1");
    expect(k.modules.delete_module("nosuch", O_NONBLOCK)).toBe(-EPERM);
    expect(k.modules.delete_module("", O_NONBLOCK | O_TRUNC)).toBe(-EPERM);
  });

  it("modules_disabled only goes from 0 to 1: writing 0 is -EINVAL even while it is 0", async () => {
    // kernel/sysctl.c kern_table: modules_disabled is proc_dointvec_minmax with
    // .extra1 = .extra2 = &one ("only handle a transition from default "0" to "1").
    const EINVAL = 22;
    const k = await boot({ version: "4.20" });
    const write = (v: string) => {
      try {
        k.write("/proc/sys/kernel/modules_disabled", v);
        return 0;
      } catch (e) {
        expect((e as KernelError).message).toBe("write to /proc/sys/kernel/modules_disabled failed: Invalid argument");
        return -(e as KernelError).errno;
      }
    };
    expect(write("0")).toBe(-EINVAL);
    expect(write("2")).toBe(-EINVAL);
    expect(k.read("/proc/sys/kernel/modules_disabled")).toBe("0\n");
    expect(write("1\n")).toBe(0);
    expect(write("0x1")).toBe(0);
    expect(write("0")).toBe(-EINVAL);
    expect(write("-1")).toBe(-EINVAL);
    expect(k.read("/proc/sys/kernel/modules_disabled")).toBe("1\n");
  });

  it("an empty name is -ENOENT; a longer name is cut to MODULE_NAME_LEN-1 (55) characters and then looked up", async () => {
    // delete_module(): strncpy_from_user(name, name_user, MODULE_NAME_LEN-1) and
    // name[MODULE_NAME_LEN-1] = '\0': nothing rejects a long name, it is truncated.
    const k = await boot({ version: "4.20" });
    const long = "m".repeat(55);
    const r = await buildSource(long, licensed("GPL"), { kernel: "4.20", name: long });
    await k.insmod(r.ko);
    expect(k.modules.delete_module("", O_NONBLOCK)).toBe(-ENOENT);
    expect(k.modules.delete_module("x".repeat(100), O_NONBLOCK)).toBe(-ENOENT);
    expect(procModules(k)).toBe(`${long} SIZE 0 - Live ADDR (O)\n`);
    // The first 55 characters name the loaded module: that is the module removed.
    expect(k.modules.delete_module(long + "_and_then_some", O_NONBLOCK)).toBe(0);
    expect(procModules(k)).toBe("");
  });

  for (const version of VERSIONS) {
    it(`${version}: a module another one uses: -EWOULDBLOCK, forced or not; rmmod names the user`, async () => {
      const k = await boot({ version, kconfig: { MODULE_FORCE_UNLOAD: true } });
      const symvers = (await buildSource("lib", EXPORTER, { kernel: version })).symvers;
      await k.insmod(await ko("lib", EXPORTER, { kernel: version }));
      await k.insmod(await ko("user", USER, { kernel: version, symvers: [symvers] }));
      const seq = k.log.nextSeq;
      expect(k.modules.delete_module("lib", O_NONBLOCK)).toBe(-EWOULDBLOCK);
      // The use-link check comes before the force check: no R taint either.
      expect(k.modules.delete_module("lib", O_NONBLOCK | O_TRUNC)).toBe(-EWOULDBLOCK);
      expect(k.tainted()).toBe(tainted("O"));
      expect(rmmodError(k, "lib")!.message).toBe("rmmod: ERROR: Module lib is in use by: user");
      const forced = rmmodError(k, "lib", true)!;
      expect(forced.errno).toBe(EWOULDBLOCK);
      expect(forced.message).toBe("rmmod: ERROR: could not remove module lib: Resource temporarily unavailable");
      expect(k.log.messages(seq)).toEqual([]);
      expect(procModules(k)).toBe("user SIZE 0 - Live ADDR (O)\nlib SIZE 1 user, Live ADDR (O)\n");
      k.rmmod("user");
      k.rmmod("lib");
      expect(procModules(k)).toBe("");
    });
  }
});

describe("states (U1): a module that is not LIVE cannot be removed", () => {
  it("while its init runs (COMING): /proc/modules says Loading (+), delete_module() is -EBUSY even forced", async () => {
    const k = await boot({ version: "4.20", kconfig: { MODULE_FORCE_UNLOAD: true } });
    const seen: { proc: string; rc: number; forced: number; rmmod: string; rmmodForced: KernelError | null; get: boolean }[] = [];
    let mod: Module | undefined;
    // Another task acts while init is running: a printk tap runs in the middle of init.
    k.hooks.printk.tap("unload-test", (_rec, line) => {
      if (!line.includes("coming: init")) return;
      mod = k.modules.find_module("coming");
      seen.push({
        proc: procModules(k),
        rc: k.modules.delete_module("coming", O_NONBLOCK),
        forced: k.modules.delete_module("coming", O_NONBLOCK | O_TRUNC),
        rmmod: rmmodError(k, "coming")!.message,
        rmmodForced: rmmodError(k, "coming", true),
        // try_module_get() refuses only GOING modules: it succeeds while COMING.
        get: k.modules.try_module_get(mod!),
      });
      k.modules.module_put(mod!);
    });
    await k.insmod(await ko("coming", plain("coming", "return 0;"), { kernel: "4.20" }));
    expect(seen).toHaveLength(1);
    const s = seen[0]!;
    // The loader holds one reference while init runs: refcnt shows 1.
    expect(s.proc).toBe("coming SIZE 1 - Loading ADDR (O+)\n");
    expect(s.rc).toBe(-EBUSY);
    expect(s.forced).toBe(-EBUSY);
    expect(s.rmmod).toBe("rmmod: ERROR: Module coming is in use");
    expect(s.rmmodForced?.errno).toBe(EBUSY);
    expect(s.rmmodForced?.message).toBe("rmmod: ERROR: could not remove module coming: Device or resource busy");
    expect(s.get).toBe(true);
    // The state check precedes the force check: forcing did not taint R.
    expect(k.tainted()).toBe(tainted("O"));
    expect(procModules(k)).toBe("coming SIZE 0 - Live ADDR (O)\n");
    k.rmmod("coming");
  });

  it("while its exit runs (GOING): Unloading (-), refcnt -1, delete_module() -EBUSY, try_module_get() fails", async () => {
    const k = await boot({ version: "4.20" });
    const seen: { proc: string; rc: number; get: boolean; lsmod: string }[] = [];
    k.hooks.printk.tap("unload-test", (_rec, line) => {
      if (!line.includes("going: exit")) return;
      seen.push({
        proc: procModules(k),
        rc: k.modules.delete_module("going", O_NONBLOCK),
        get: k.modules.try_module_get(k.modules.find_module("going")!),
        lsmod: k.lsmod(),
      });
    });
    await k.insmod(await ko("going", plain("going", "return 0;"), { kernel: "4.20" }));
    const size = moduleSize(k, "going");
    k.rmmod("going");
    expect(seen).toHaveLength(1);
    // try_release_module_ref() took the base reference: module_refcount() is -1.
    expect(seen[0]!.proc).toBe("going SIZE -1 - Unloading ADDR (O-)\n");
    expect(seen[0]!.rc).toBe(-EBUSY);
    expect(seen[0]!.get).toBe(false);
    expect(seen[0]!.lsmod).toBe(`Module                  Size  Used by\n${"going".padEnd(19)} ${String(size).padStart(8)}  -1\n`);
    expect(procModules(k)).toBe("");
  });

  it("a module still being formed (UNFORMED) is invisible: not in /proc/modules, not found by delete_module()", async () => {
    const k = await boot({ version: "4.20" });
    const bytes = await ko("formed", plain("formed", "return 0;"), { kernel: "4.20" });
    // insmod runs until it links the code; meanwhile the module is on the list, UNFORMED.
    const p = k.insmod(bytes);
    expect(k.modules.list.map((m) => `${m.name} ${m.state}`)).toEqual(["formed UNFORMED"]);
    expect(k.read("/proc/modules")).toBe("");
    expect(k.lsmod()).toBe("Module                  Size  Used by\n");
    expect(k.modules.delete_module("formed", O_NONBLOCK)).toBe(-ENOENT);
    await p;
    expect(procModules(k)).toBe("formed SIZE 0 - Live ADDR (O)\n");
  });
});

describe("init and exit functions (U4, U5 step 5)", () => {
  for (const version of VERSIONS) {
    it(`${version}: init without exit is permanent: [permanent], -EBUSY; forcing taints R`, async () => {
      const k = await boot({ version, kconfig: { MODULE_FORCE_UNLOAD: true } });
      await k.insmod(await ko("perm", plain("perm", "return 0;", null), { kernel: version }));
      expect(procModules(k)).toBe("perm SIZE 0 [permanent], Live ADDR (O)\n");
      const seq = k.log.nextSeq;
      expect(k.modules.delete_module("perm", O_NONBLOCK)).toBe(-EBUSY);
      // kmod sees no holders and refcnt 0, so the kernel answers.
      const e = rmmodError(k, "perm")!;
      expect(e.errno).toBe(EBUSY);
      expect(e.message).toBe("rmmod: ERROR: could not remove module perm: Device or resource busy");
      expect(k.log.messages(seq)).toEqual([]);
      expect(k.tainted()).toBe(tainted("O"));
      // rmmod -f: try_force_unload() adds TAINT_FORCED_RMMOD (LOCKDEP_NOW_UNRELIABLE).
      expect(rmmodError(k, "perm", true)).toBeNull();
      expect(k.log.messages(seq)).toEqual(["Disabling lock debugging due to kernel taint"]);
      expect(k.tainted()).toBe(tainted("RO"));
      expect(procModules(k)).toBe("");
      expect(k.modulesLinkedIn()).toBe(" [last unloaded: perm]");
    });
  }

  it("without CONFIG_MODULE_FORCE_UNLOAD, forcing a permanent module changes nothing", async () => {
    const k = await boot({ version: "5.0" });
    await k.insmod(await ko("perm", plain("perm", "return 0;", null), { kernel: "5.0" }));
    expect(k.modules.delete_module("perm", O_NONBLOCK | O_TRUNC)).toBe(-EBUSY);
    const e = rmmodError(k, "perm", true)!;
    expect(e.errno).toBe(EBUSY);
    expect(e.message).toBe("rmmod: ERROR: could not remove module perm: Device or resource busy");
    expect(k.tainted()).toBe(tainted("O"));
    expect(procModules(k)).toBe("perm SIZE 0 [permanent], Live ADDR (O)\n");
  });

  it("a module with neither init nor exit goes LIVE at once and is removable; so is one with exit only", async () => {
    const k = await boot({ version: "4.20" });
    await k.insmod(await ko("bare", plain("bare", null, null), { kernel: "4.20" }));
    await k.insmod(await ko("exitonly", plain("exitonly", null, ""), { kernel: "4.20" }));
    expect(procModules(k)).toBe("exitonly SIZE 0 - Live ADDR (O)\nbare SIZE 0 - Live ADDR (O)\n");
    const seq = k.log.nextSeq;
    k.rmmod("bare");
    k.rmmod("exitonly");
    expect(k.log.messages(seq)).toEqual(["exitonly: exit"]);
    expect(k.tainted()).toBe(tainted("O"));
  });

  for (const version of VERSIONS) {
    it(`${version}: init returning < 0: insmod fails with that error, the module is gone, its taints stay`, async () => {
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      const e = await insmodError(k, await ko("nodev", plain("nodev", "return -k.ENODEV;"), { kernel: version }));
      expect(e.errno).toBe(ENODEV);
      expect(e.message).toBe("insmod: ERROR: could not insert module module.ko: No such device");
      // The kernel prints nothing of its own for a failing init.
      expect(k.log.messages(seq)).toEqual(["nodev: loading out-of-tree module taints kernel.", "nodev: init"]);
      expect(k.read("/proc/modules")).toBe("");
      expect(k.tainted()).toBe(tainted("O"));
      expect(rmmodError(k, "nodev")!.message).toBe("rmmod: ERROR: Module nodev is not currently loaded");
      // It never was unloaded: init failure does not set last_unloaded_module.
      expect(k.modulesLinkedIn()).toBe("");
      // The same file loads again once the failed copy is gone (no -EEXIST).
      const again = await insmodError(k, await ko("nodev", plain("nodev", "return -k.ENODEV;"), { kernel: version }));
      expect(again.errno).toBe(ENODEV);
    });
  }

  for (const version of VERSIONS) {
    it(`${version}: init returning > 0: do_init_module's warning and a stack dump, then LIVE`, async () => {
      const k = await boot({ version });
      const seq = k.log.nextSeq;
      const mod = await k.insmod(await ko("odd", plain("odd", "return 1;"), { kernel: version }));
      expect(mod.state).toBe("LIVE");
      const msgs = k.log.messages(seq);
      // pr_warn("%s: '%s'->init suspiciously returned %d, it should follow 0/-E convention\n"
      //         "%s: loading module anyway...\n", __func__, mod->name, ret, __func__); dump_stack();
      expect(msgs.slice(0, 4)).toEqual([
        "odd: loading out-of-tree module taints kernel.",
        "odd: init",
        "do_init_module: 'odd'->init suspiciously returned 1, it should follow 0/-E convention",
        "do_init_module: loading module anyway...",
      ]);
      expect(msgs[4]).toMatch(new RegExp(`^CPU: 0 PID: \\d+ Comm: insmod Tainted: G           O      ${version}\\.0 #1$`));
      expect(msgs[5]).toMatch(/^Hardware name: /);
      expect(msgs[6]).toBe("Call Trace:");
      expect(msgs.slice(7)).toContain(" do_init_module");
      // dump_stack() is no WARN: no W taint.
      expect(k.tainted()).toBe(tainted("O"));
      expect(procModules(k)).toBe("odd SIZE 0 - Live ADDR (O)\n");
      k.rmmod("odd");
    });
  }
});

describe("a second module of the same name", () => {
  for (const version of VERSIONS) {
    it(`${version}: while the first is LIVE: -EEXIST, which insmod prints as strerror ("File exists")`, async () => {
      const k = await boot({ version });
      const bytes = await ko("twice", licensed("GPL"), { kernel: version });
      await k.insmod(bytes);
      const seq = k.log.nextSeq;
      const e = await insmodError(k, bytes);
      expect(e.errno).toBe(EEXIST);
      // kmod insmod's mod_strerror() maps only ENOEXEC, ENOENT, ESRCH and EINVAL.
      expect(e.message).toBe("insmod: ERROR: could not insert module module.ko: File exists");
      expect(k.log.messages(seq)).toEqual([]);
      expect(procModules(k)).toBe("twice SIZE 0 - Live ADDR (O)\n");
    });
  }

  it("while the first is still UNFORMED: the second waits for it, and loads when the first fails", async () => {
    // add_unformed_module(): an UNFORMED or COMING copy is waited for (finished_loading());
    // -EEXIST only when the copy found is LIVE or GOING. The failed copy is freed before
    // do_init_module() wakes the waiters, so the second finds no copy and loads.
    const k = await boot({ version: "4.20" });
    const failing = await ko("same", plain("same", "return -k.ENODEV;"), { kernel: "4.20" });
    const working = await ko("same", plain("same", "return 0;"), { kernel: "4.20" });
    const p1 = k.insmod(failing);
    // The first copy is on the list, UNFORMED (linking its code), when the second arrives.
    expect(k.modules.list.map((m) => `${m.name} ${m.state}`)).toEqual(["same UNFORMED"]);
    const p2 = k.insmod(working);
    const [first, second] = await Promise.allSettled([p1, p2]);
    expect(first.status === "rejected" && (first.reason as KernelError).errno).toBe(ENODEV);
    expect(second.status).toBe("fulfilled");
    expect(procModules(k)).toBe("same SIZE 0 - Live ADDR (O)\n");
  });
});

/**
 * A driver whose probe does one reference operation on THIS_MODULE, chosen by the id of the
 * platform device "refs.<id>" the test registers: 1 try_module_get, 2 module_put, 3 __module_get.
 * probe returns -ENODEV, so the device stays unbound and the driver core prints nothing.
 */
const REFS = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
const drv: k.platform_driver = {
  probe: (pdev: k.platform_device) => {
    if (pdev.id === 1) k.printk(k.KERN_INFO + "refs: try_module_get %d\\n", k.try_module_get(k.THIS_MODULE) ? 1 : 0);
    if (pdev.id === 2) { k.module_put(k.THIS_MODULE); k.printk(k.KERN_INFO + "refs: module_put\\n"); }
    if (pdev.id === 3) { k.__module_get(k.THIS_MODULE); k.printk(k.KERN_INFO + "refs: __module_get\\n"); }
    k.printk(k.KERN_INFO + "refs: refcount %d\\n", k.module_refcount(k.THIS_MODULE));
    return -k.ENODEV;
  },
  driver: { name: "refs" },
};
k.module_init(() => k.platform_driver_register(drv));
k.module_exit(() => k.platform_driver_unregister(drv));
`;

/**
 * A test that leaves the module without its base reference gives the references back when it
 * ends, so that shutdown can unload it (shutdown would hit the same BUG_ON otherwise).
 */
function restoreBaseRefAtEnd(k: Kernel, mod: Module): void {
  onTestFinished(() => {
    while (mod.refcnt < 1 && k.modules.list.includes(mod)) k.modules.__module_get(mod);
  });
}

/** Make the refs driver do one operation; the lines it printed. */
function refOp(k: Kernel, op: 1 | 2 | 3): string[] {
  const seq = k.log.nextSeq;
  const pdev = k.platform.platform_device_register_simple("refs", op);
  if (typeof pdev === "number") throw new Error(`platform_device_register_simple: ${pdev}`);
  k.platform.platform_device_unregister(pdev);
  return k.log.messages(seq);
}

describe("module references (U3): try_module_get, __module_get, module_put on THIS_MODULE", () => {
  it("module_refcount() is exported by kernel/module.c (EXPORT_SYMBOL): modpost lists it as needed", async () => {
    // 4.19-5.0 kernel/module.c: int module_refcount(struct module *mod) {...} EXPORT_SYMBOL(module_refcount);
    const r = await buildSource("refs", REFS, { kernel: "4.20" });
    expect(r.symbols).toEqual(expect.arrayContaining(["try_module_get", "module_put", "__module_get", "module_refcount"]));
  });

  for (const version of VERSIONS) {
    it(`${version}: each reference shows in /proc/modules and lsmod; rmmod refuses, rmmod -f taints R`, async () => {
      const k = await boot({ version, kconfig: { MODULE_FORCE_UNLOAD: true } });
      await k.insmod(await ko("refs", REFS, { kernel: version }));
      expect(procModules(k)).toBe("refs SIZE 0 - Live ADDR (O)\n");
      expect(refOp(k, 1)).toEqual(["refs: try_module_get 1", "refs: refcount 1"]);
      expect(refOp(k, 3)).toEqual(["refs: __module_get", "refs: refcount 2"]);
      expect(procModules(k)).toBe("refs SIZE 2 - Live ADDR (O)\n");
      expect(k.lsmod()).toBe(`Module                  Size  Used by\n${lsmodLine(k, "refs", 2)}\n`);
      const seq = k.log.nextSeq;
      expect(k.modules.delete_module("refs", O_NONBLOCK)).toBe(-EWOULDBLOCK);
      expect(rmmodError(k, "refs")!.message).toBe("rmmod: ERROR: Module refs is in use");
      expect(k.log.messages(seq)).toEqual([]);
      expect(procModules(k)).toBe("refs SIZE 2 - Live ADDR (O)\n");
      // rmmod -f: try_stop_module() finds references, try_force_unload() taints R and goes on.
      expect(rmmodError(k, "refs", true)).toBeNull();
      expect(k.log.messages(seq)).toEqual(["Disabling lock debugging due to kernel taint"]);
      expect(k.tainted()).toBe(tainted("RO"));
      expect(procModules(k)).toBe("");
    });
  }

  it("without CONFIG_MODULE_FORCE_UNLOAD, rmmod -f of a referenced module is the kernel's -EWOULDBLOCK", async () => {
    const k = await boot({ version: "4.20" });
    await k.insmod(await ko("refs", REFS, { kernel: "4.20" }));
    refOp(k, 3);
    expect(k.modules.delete_module("refs", O_NONBLOCK | O_TRUNC)).toBe(-EWOULDBLOCK);
    const e = rmmodError(k, "refs", true)!;
    expect(e.errno).toBe(EWOULDBLOCK);
    expect(e.message).toBe("rmmod: ERROR: could not remove module refs: Resource temporarily unavailable");
    expect(k.tainted()).toBe(tainted("O"));
    refOp(k, 2);
    k.rmmod("refs");
  });

  it("a reference the kernel takes (try_module_get from core code) blocks rmmod the same way", async () => {
    const k = await boot({ version: "5.0" });
    const mod = await k.insmod(await ko("refs", REFS, { kernel: "5.0" }));
    expect(k.modules.try_module_get(mod)).toBe(true);
    expect(procModules(k)).toBe("refs SIZE 1 - Live ADDR (O)\n");
    expect(k.modules.delete_module("refs", O_NONBLOCK)).toBe(-EWOULDBLOCK);
    expect(rmmodError(k, "refs")!.message).toBe("rmmod: ERROR: Module refs is in use");
    k.modules.module_put(mod);
    k.rmmod("refs");
  });

  it("one unbalanced put at 0 silently drops the base reference: no warning, and no reference can be taken", async () => {
    const k = await boot({ version: "4.20" });
    const mod = await k.insmod(await ko("refs", REFS, { kernel: "4.20" }));
    restoreBaseRefAtEnd(k, mod);
    expect(refOp(k, 1)).toEqual(["refs: try_module_get 1", "refs: refcount 1"]);
    expect(refOp(k, 2)).toEqual(["refs: module_put", "refs: refcount 0"]);
    // atomic_dec_if_positive(1) = 0: no warning, the base reference is gone.
    expect(refOp(k, 2)).toEqual(["refs: module_put", "refs: refcount -1"]);
    expect(k.tainted()).toBe(tainted("O"));
    expect(procModules(k)).toBe("refs SIZE -1 - Live ADDR (O)\n");
    expect(k.lsmod()).toBe(`Module                  Size  Used by\n${lsmodLine(k, "refs", -1)}\n`);
    // atomic_inc_not_zero() fails now: nobody can take a reference any more...
    expect(refOp(k, 1)).toEqual(["refs: try_module_get 0", "refs: refcount -1"]);
    expect(k.modules.try_module_get(mod)).toBe(false);
    // ...but __module_get() increments unconditionally.
    expect(refOp(k, 3)).toEqual(["refs: __module_get", "refs: refcount 0"]);
    expect(refOp(k, 2)).toEqual(["refs: module_put", "refs: refcount -1"]);
    // kmod's rmmod reads refcnt -1 from /sys/module/refs/refcnt (check_module_inuse():
    // kmod_module_get_refcnt() != 0) and does not call the kernel.
    const seq = k.log.nextSeq;
    expect(rmmodError(k, "refs")!.message).toBe("rmmod: ERROR: Module refs is in use");
    expect(k.log.messages(seq)).toEqual([]);
    expect(procModules(k)).toBe("refs SIZE -1 - Live ADDR (O)\n");
  });

  it("a second extra put WARNs in module_put() (WARN_ON(ret < 0)), taints W and changes nothing", async () => {
    const k = await boot({ version: "4.20" });
    const mod = await k.insmod(await ko("refs", REFS, { kernel: "4.20" }));
    restoreBaseRefAtEnd(k, mod);
    refOp(k, 2);
    // atomic_dec_if_positive(0) < 0: the count stays, WARN_ON(ret < 0) fires.
    const msgs = refOp(k, 2);
    const at = msgs.findIndex((m) => m.startsWith("WARNING: "));
    expect(msgs[at]).toMatch(/^WARNING: CPU: 0 PID: \d+ at kernel\/module\.c\S* module_put/);
    expect(msgs[at + 1]).toBe("Modules linked in: refs(O)");
    expect(msgs.slice(-3, -2)[0]).toMatch(/^---\[ end trace [0-9a-f]{16} \]---$/);
    expect(msgs.slice(-2)).toEqual(["refs: module_put", "refs: refcount -1"]);
    expect(k.tainted()).toBe(tainted("WO"));
    expect(procModules(k)).toBe("refs SIZE -1 - Live ADDR (O)\n");
    // On x86 4.19-5.0 a WARN_ON() without a message prints no "cut here" line: report_bug()
    // calls __warn(file, line, ..., NULL), which prints CUT_HERE only with args, and the
    // line only came back with 6b15f678fb7d ("fix "cut here" for WARN_ON for __WARN_TAINT
    // architectures", 5.2, Cc: stable). The report starts with the WARNING line.
    expect(at).toBe(0);
  });

  it("delete_module() after the base reference is gone hits BUG_ON(ret < 0) in try_release_module_ref()", async () => {
    const k = await boot({ version: "4.20", kconfig: { MODULE_FORCE_UNLOAD: true } });
    const mod = await k.insmod(await ko("refs", REFS, { kernel: "4.20" }));
    restoreBaseRefAtEnd(k, mod);
    refOp(k, 2);
    expect(procModules(k)).toBe("refs SIZE -1 - Live ADDR (O)\n");
    // rmmod -f skips kmod's refcnt check. delete_module(): no users, LIVE, has an exit;
    // try_release_module_ref(): atomic_sub_return(MODULE_REF_BASE, 0) = -1, BUG_ON(ret < 0).
    // The task doing it dies in the oops.
    const seq = k.log.nextSeq;
    expect(() => k.rmmod("refs", { force: true })).toThrow(KernelOops);
    const bug = k.log.messages(seq);
    expect(bug.slice(0, 3)).toEqual(["------------[ cut here ]------------", "kernel BUG at kernel/module.c!", "invalid opcode: 0000 [#1] SMP PTI"]);
    expect(bug[3]).toMatch(/^CPU: 0 PID: \d+ Comm: rmmod Tainted: G           O      4\.20\.0 #1$/);
    expect(bug).toContain("RIP: 0010:try_release_module_ref");
    expect(bug).toContain("Modules linked in: refs(O)");
    // BUG_ON fired before try_force_unload(): no R, but D.
    expect(k.tainted()).toBe(tainted("DO"));
    // The module stays, with the count the BUG left (atomic_sub_return() had happened).
    expect(procModules(k)).toBe("refs SIZE -2 - Live ADDR (O)\n");
    expect(mod.state).toBe("LIVE");
  });
});
