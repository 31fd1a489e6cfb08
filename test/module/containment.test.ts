// Containment (DESIGN principle 10): an exception, a time-out or heap exhaustion in a driver's
// init, exit or callback gives an oops-style report naming the module (taint D; L as well for
// the soft-lockup time-out), the kernel call that ran the driver returns the error for that
// path, the module is marked dead and torn down with everything it held released, and the
// kernel keeps running: a second module loads and works, and the invariant checker is clean.
//
// What the real kernel does is harsher: an oops kills the task that was running (insmod,
// rmmod, the task registering a device), and the module stays "Loading"/"Unloading" forever.
// kemu keeps the kernel's report and taints but contains the module instead, and gives the
// caller the kernel's errno for a faulting access, -EFAULT ("Bad address"). A probe that fails
// this way fails like any probe returning an error (drivers/base/dd.c really_probe()):
//   "<drv>: probe of <dev> failed with error -14"
//
// A built-in (=y) driver runs in the host without a time or heap limit, as code linked into
// the kernel does: an exception is contained, an endless loop or an unbounded allocation in a
// built-in driver cannot be interrupted (it would hang or crash the test process), so there is
// no such test here.

import { describe, expect, it } from "vitest";
import { ConfigError } from "../../core/config.ts";
import type { Kernel } from "../../core/kernel.ts";
import type { KernelVersion } from "../../core/version.ts";
import { buildSource, ko } from "../helpers/build.ts";
import { boot, insmodError, rmmodError, tainted } from "../helpers/kernel.ts";

/** Small limits keep the suite fast: a looping driver is stopped after 50 ms. */
const LIMITS = { moduleTimeoutMs: 50, moduleHeap: "16M" } as const;

type Fault = "throw" | "loop" | "heap";
const FAULTS: readonly Fault[] = ["throw", "loop", "heap"];

/** The body of the function that fails, for each kind of failure. */
const CRASH: Record<Fault, string> = {
  throw: 'throw new TypeError("driver bug");',
  loop: "for (;;) {}",
  heap: "const hoard: number[][] = []; for (;;) hoard.push(new Array(100000).fill(1.5));",
};

/** Where the driver fails. */
type Where = "none" | "init" | "exit" | "probe" | "remove" | "action";

/**
 * A platform driver that takes one of everything a module can hold: a kmalloc()ed buffer, an
 * iomem region, a platform device of its own and a platform driver; its probe takes devres
 * (devm_kzalloc, devm_request_mem_region, two devm actions). It fails at `where`.
 */
function crashy(where: Where, fault: Fault = "throw"): string {
  const at = (w: Where) => (w === where ? "crashy_fail();" : "");
  return `
import {
  MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, GFP_KERNEL, IS_ERR, PLATFORM_DEVID_NONE,
  kmalloc, kfree, request_mem_region, release_mem_region, devm_kzalloc, devm_request_mem_region, devm_add_action,
  platform_driver_register, platform_driver_unregister, platform_device_register_simple, platform_device_unregister,
  type kbuf, type platform_device, type platform_driver,
} from "kemu/kernel";

MODULE_LICENSE("GPL");

function crashy_fail(): number { ${CRASH[fault]} }
function crashy_keep(_data: unknown): void { printk(KERN_INFO + "crashy: keep action\\n"); }
function crashy_release(_data: unknown): void { printk(KERN_INFO + "crashy: release action\\n"); ${at("action")} }

const crashy_driver: platform_driver = {
  driver: { name: "crashy" },
  probe(pdev: platform_device): number {
    const mem = devm_kzalloc(pdev.dev, 128, GFP_KERNEL);
    const res = devm_request_mem_region(pdev.dev, 0x1000000000, 0x1000, "crashy-devm");
    devm_add_action(pdev.dev, crashy_keep, null);
    devm_add_action(pdev.dev, crashy_release, null);
    printk(KERN_INFO + "crashy: probe %s: %d bytes, %s\\n", pdev.name, mem ? mem.size : 0, res ? res.name : "no region");
    ${at("probe")}
    return 0;
  },
  remove(pdev: platform_device): number {
    printk(KERN_INFO + "crashy: remove %s\\n", pdev.name);
    ${at("remove")}
    return 0;
  },
};

let buf: kbuf | null = null;
let own: platform_device | null = null;

module_init(() => {
  buf = kmalloc(32, GFP_KERNEL);
  const res = request_mem_region(0x2000000000, 0x1000, "crashy");
  const p = platform_device_register_simple("crashy_own", PLATFORM_DEVID_NONE, null, 0);
  if (!IS_ERR(p)) own = p;
  const rc = platform_driver_register(crashy_driver);
  printk(KERN_INFO + "crashy: init: %d bytes, %s, %s, driver %d\\n", buf ? buf.size : 0, res ? res.name : "no region", own ? own.name : "no device", rc);
  ${at("init")}
  return 0;
});

module_exit(() => {
  printk(KERN_INFO + "crashy: exit\\n");
  ${at("exit")}
  platform_driver_unregister(crashy_driver);
  platform_device_unregister(own);
  release_mem_region(0x2000000000, 0x1000);
  kfree(buf);
});
`;
}

/** A second module: registers the platform device "crashy" (so crashy's probe runs) and unregisters it at exit. */
const TRIGGER = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, IS_ERR, PLATFORM_DEVID_NONE,
  platform_device_register_simple, platform_device_unregister, type platform_device } from "kemu/kernel";

MODULE_LICENSE("GPL");

let pdev: platform_device | null = null;

module_init(() => {
  const p = platform_device_register_simple("crashy", PLATFORM_DEVID_NONE, null, 0);
  if (IS_ERR(p)) return p;
  pdev = p;
  printk(KERN_INFO + "trigger: registered %s\\n", p.name);
  return 0;
});

module_exit(() => {
  platform_device_unregister(pdev);
  printk(KERN_INFO + "trigger: unregistered\\n");
});
`;

const HELLO = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => { printk(KERN_INFO + "hello: %d + %d = %d\\n", 40, 2, 42); return 0; });
module_exit(() => { printk(KERN_INFO + "hello: bye\\n"); });
`;

const INIT_LINE = "crashy: init: 32 bytes, crashy, crashy_own, driver 0";
const PROBE_LINE = "crashy: probe crashy: 128 bytes, crashy-devm";

interface ReportSpec {
  mod: string;
  fault: Fault;
  /** The task that was running the driver. */
  comm: string;
  /** What "Modules linked in:" lists at the time. */
  linked: string;
  /** The driver function that failed (RIP), for exceptions and time-outs. */
  fn?: string;
  /** The exception's text, when it is not the TypeError of CRASH.throw. */
  error?: string;
}

/** The oops report for `s.mod` in `msgs`, checked line by line; returns its lines. */
function expectReport(msgs: string[], s: ReportSpec): string[] {
  const head =
    s.fault === "throw"
      ? `kemu: ${s.mod}: ${s.error ?? "TypeError: driver bug"}`
      : s.fault === "loop"
        ? `kemu: ${s.mod}: killed: did not return within 50 ms`
        : `kemu: ${s.mod}: killed: ran out of its 16 MiB heap`;
  const i = msgs.indexOf(head);
  expect(i, `"${head}" in:\n${msgs.join("\n")}`).toBeGreaterThanOrEqual(0);
  if (s.fault === "loop") {
    // kernel/watchdog.c watchdog_timer_fn(): pr_emerg("BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]\n")
    expect(msgs[i - 1]).toMatch(new RegExp(`^watchdog: BUG: soft lockup - CPU#0 stuck for 22s! \\[${s.comm}:\\d+\\]$`));
  }
  const end = msgs.findIndex((l, j) => j > i && /^---\[ end trace [0-9a-f]{16} \]---$/.test(l));
  expect(end, "end of the report").toBeGreaterThan(i);
  const report = msgs.slice(i, end + 1);
  expect(report).toContainEqual(expect.stringMatching(/^Oops: 0000 \[#\d+\] SMP PTI$/));
  expect(report).toContainEqual(expect.stringMatching(new RegExp(`^CPU: 0 PID: \\d+ Comm: ${s.comm} (Not tainted|Tainted: [A-Z ]{18}) \\d+\\.\\d+\\.0 #1$`)));
  expect(report).toContain("Call Trace:");
  expect(report).toContain(`Modules linked in: ${s.linked}`);
  if (s.fn) expect(report).toContain(`RIP: 0010:${s.fn} [${s.mod}]`);
  return report;
}

/** What is left of crashy in the kernel: nothing, once it is contained. */
function remains(k: Kernel) {
  return {
    iomem: k.read("/proc/iomem").split("\n").filter((l) => l.includes("crashy")),
    kmalloc: [...k.mm.slab.live].filter((b) => b.owner === "crashy").length,
    devices: k.base.devices.filter((d) => d.name.startsWith("crashy")).map((d) => (d.driver ? `${d.name} bound to ${d.driver.name}` : d.name)),
    drivers: k.platform.bus.drivers.map((d) => d.name).filter((n) => n.startsWith("crashy")),
    kemu: k.read("/proc/kemu/modules").split("\n").filter((l) => l.startsWith("crashy")),
  };
}

const NOTHING = { iomem: [], kmalloc: 0, devices: [], drivers: [], kemu: [] };

/** The module works again once its broken copy is gone: the name is free, the kernel is fine. */
async function loadsAgain(k: Kernel, version: KernelVersion = "5.0"): Promise<void> {
  const seq = k.log.nextSeq;
  await k.insmod(await ko("crashy", crashy("none"), { kernel: version }));
  k.rmmod("crashy");
  // (The first out-of-tree module after built-in ones says so first.)
  expect(k.log.messages(seq).filter((l) => l !== "crashy: loading out-of-tree module taints kernel.")).toEqual([INIT_LINE, "crashy: exit"]);
  expect(remains(k)).toEqual(NOTHING);
}

describe("a driver that fails in its init", () => {
  for (const version of ["4.19", "4.20", "5.0"] as const satisfies readonly KernelVersion[]) {
    for (const fault of FAULTS) {
      it(`${fault}: insmod fails with EFAULT, oops naming the module, everything it took released (${version})`, async () => {
        const k = await boot({ version, ...LIMITS });
        const file = await ko("crashy", crashy("init", fault), { kernel: version });
        const seq = k.log.nextSeq;
        const err = await insmodError(k, file);
        expect(err.errno).toBe(14);
        expect(err.message).toBe("insmod: ERROR: could not insert module module.ko: Bad address");
        const msgs = k.log.messages(seq);
        expect(msgs.slice(0, 2)).toEqual(["crashy: loading out-of-tree module taints kernel.", INIT_LINE]);
        expectReport(msgs, { mod: "crashy", fault, comm: "insmod", linked: "crashy(O+)", fn: fault === "heap" ? undefined : "crashy_fail" });
        expect(k.tainted()).toBe(tainted(fault === "loop" ? "DOL" : "DO"));
        // Torn down: off the module list, its device, driver, region and memory gone.
        expect(k.read("/proc/modules")).toBe("");
        expect(remains(k)).toEqual(NOTHING);
        expect(k.checkInvariants()).toEqual([]);
        await loadsAgain(k, version);
      });
    }
  }

  it("a second, unrelated module loads and runs afterwards", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    await insmodError(k, await ko("crashy", crashy("init", "loop")));
    const seq = k.log.nextSeq;
    await k.insmod(await ko("hello", HELLO));
    expect(k.log.messages(seq)).toEqual(["hello: 40 + 2 = 42"]);
    expect(k.read("/proc/modules")).toMatch(/^hello 4096 0 - Live 0xffffffffc\w+ \(O\)\n$/);
    k.rmmod("hello");
    expect(k.log.messages(seq)).toEqual(["hello: 40 + 2 = 42", "hello: bye"]);
  });
});

describe("time limits of nested calls", () => {
  // The kernel calls the module back while the module's own call is under way (probe from its
  // own platform_driver_register() in init): the callback runs under init's time limit.
  const NESTED = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, PLATFORM_DEVID_NONE,
  platform_device_register_simple, platform_device_unregister, platform_driver_register, platform_driver_unregister,
  type platform_device, type platform_driver } from "kemu/kernel";
MODULE_LICENSE("GPL");
let own: platform_device | null = null;
const drv: platform_driver = {
  driver: { name: "nested" },
  probe(): number { printk(KERN_INFO + "nested: probe\\n"); for (;;) {} },
};
module_init(() => {
  own = platform_device_register_simple("nested", PLATFORM_DEVID_NONE, null, 0);
  return platform_driver_register(drv);
});
module_exit(() => { platform_driver_unregister(drv); platform_device_unregister(own); });
`;
  it("an endless loop in a callback made during the module's own call is stopped by that call's limit", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("nested", NESTED));
    expect(err.errno).toBe(14);
    const msgs = k.log.messages(seq);
    expect(msgs).toContain("nested: probe");
    expect(msgs.some((m) => /^watchdog: BUG: soft lockup - CPU#0 stuck for \d+s! \[insmod:\d+\]$/.test(m))).toBe(true);
    expect(msgs).toContain("kemu: nested: killed: did not return within 50 ms");
    expect(k.read("/proc/modules")).toBe("");
    expect(k.checkInvariants()).toEqual([]);
  });
});

describe("a driver that fails in its exit", () => {
  for (const fault of FAULTS) {
    it(`${fault}: rmmod fails with EFAULT, the module is gone all the same, with what it held`, async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      await k.insmod(await ko("crashy", crashy("exit", fault)));
      const seq = k.log.nextSeq;
      const err = rmmodError(k, "crashy")!;
      expect(err.errno).toBe(14);
      expect(err.message).toBe("rmmod: ERROR: could not remove module crashy: Bad address");
      const msgs = k.log.messages(seq);
      expect(msgs[0]).toBe("crashy: exit");
      // Going: "(O-)" as module_flags() prints a module in MODULE_STATE_GOING.
      expectReport(msgs, { mod: "crashy", fault, comm: "rmmod", linked: "crashy(O-)", fn: fault === "heap" ? undefined : "crashy_fail" });
      expect(k.tainted()).toBe(tainted(fault === "loop" ? "DOL" : "DO"));
      expect(k.read("/proc/modules")).toBe("");
      expect(remains(k)).toEqual(NOTHING);
      expect(k.checkInvariants()).toEqual([]);
      await loadsAgain(k);
    });
  }
});

describe("a driver that fails in a callback", () => {
  for (const fault of FAULTS) {
    it(`${fault} in probe (device registered by another module): probe fails with -14, the other module is not blamed`, async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      await k.insmod(await ko("crashy", crashy("probe", fault)));
      const seq = k.log.nextSeq;
      // trigger's init registers the device; crashy's probe fails inside that call.
      await k.insmod(await ko("trigger", TRIGGER));
      const msgs = k.log.messages(seq);
      expect(msgs[0]).toBe(PROBE_LINE);
      expectReport(msgs, { mod: "crashy", fault, comm: "insmod", linked: "trigger(O+) crashy(O)", fn: fault === "heap" ? undefined : "crashy_fail" });
      const after = msgs.slice(msgs.findIndex((l) => l.startsWith("---[ end trace")) + 1);
      // really_probe(): the devres of the failed probe is released (crashy's actions are not
      // called: its code is dead), then the failure is reported; trigger goes on.
      expect(after).toEqual(["crashy: probe of crashy failed with error -14", "trigger: registered crashy"]);
      expect(k.tainted()).toBe(tainted(fault === "loop" ? "DOL" : "DO"));
      expect(k.read("/proc/modules")).toMatch(/^trigger 4096 0 - Live 0xffffffffc\w+ \(O\)\n$/);
      // The device stays, unbound and without devres; crashy is gone with all it held.
      expect(k.base.devices.find((d) => d.name === "crashy")?.devres).toEqual([]);
      expect(remains(k)).toEqual({ ...NOTHING, devices: ["crashy"] });
      expect(k.checkInvariants()).toEqual([]);
      // A working crashy binds to the device trigger registered; then everything unloads.
      const seq2 = k.log.nextSeq;
      await k.insmod(await ko("crashy", crashy("none")));
      expect(k.log.messages(seq2)).toEqual([PROBE_LINE, INIT_LINE]);
      k.rmmod("crashy");
      k.rmmod("trigger");
      expect(k.log.messages(seq2)).toEqual([
        PROBE_LINE, INIT_LINE, "crashy: exit", "crashy: remove crashy", "crashy: release action", "crashy: keep action", "trigger: unregistered",
      ]);
      expect(remains(k)).toEqual(NOTHING);
    });
  }

  it("throw in probe of a device the host registers: the host's call returns, the module is contained", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    await k.insmod(await ko("crashy", crashy("probe")));
    const seq = k.log.nextSeq;
    let pdev: unknown;
    expect(() => (pdev = k.platform.platform_device_register_simple("crashy", -1))).not.toThrow();
    expect(typeof pdev).toBe("object");
    const msgs = k.log.messages(seq);
    expectReport(msgs, { mod: "crashy", fault: "throw", comm: "swapper/0", linked: "crashy(O)", fn: "crashy_fail" });
    expect(msgs.at(-1)).toBe("crashy: probe of crashy failed with error -14");
    k.settle();
    expect(k.read("/proc/modules")).toBe("");
    expect(remains(k)).toEqual({ ...NOTHING, devices: ["crashy"] });
    expect(k.checkInvariants()).toEqual([]);
  });

  for (const fault of FAULTS) {
    it(`${fault} in a devm action run at unbind: the unbind completes, the rest of the devres is released`, async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      await k.insmod(await ko("crashy", crashy("action", fault)));
      await k.insmod(await ko("trigger", TRIGGER));
      expect(remains(k).iomem).toEqual(["1000000000-1000000fff : crashy-devm", "2000000000-2000000fff : crashy"]);
      const seq = k.log.nextSeq;
      // rmmod trigger: its exit unregisters the device; unbinding runs crashy's remove, then
      // its devres newest first: crashy_release fails; crashy_keep is never called.
      k.rmmod("trigger");
      const msgs = k.log.messages(seq);
      expect(msgs.slice(0, 2)).toEqual(["crashy: remove crashy", "crashy: release action"]);
      expectReport(msgs, { mod: "crashy", fault, comm: "rmmod", linked: "trigger(O-) crashy(O)", fn: fault === "heap" ? undefined : "crashy_fail" });
      expect(msgs.slice(msgs.findIndex((l) => l.startsWith("---[ end trace")) + 1)).toEqual(["trigger: unregistered"]);
      expect(k.read("/proc/modules")).toBe("");
      expect(remains(k)).toEqual(NOTHING);
      expect(k.checkInvariants()).toEqual([]);
      await loadsAgain(k);
    });
  }

  it("throw in remove: the unbind completes as if remove returned, devres released, the module contained", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    await k.insmod(await ko("crashy", crashy("remove")));
    await k.insmod(await ko("trigger", TRIGGER));
    const seq = k.log.nextSeq;
    k.rmmod("trigger");
    const msgs = k.log.messages(seq);
    expect(msgs[0]).toBe("crashy: remove crashy");
    expectReport(msgs, { mod: "crashy", fault: "throw", comm: "rmmod", linked: "trigger(O-) crashy(O)", fn: "crashy_fail" });
    expect(msgs.slice(msgs.findIndex((l) => l.startsWith("---[ end trace")) + 1)).toEqual(["trigger: unregistered"]);
    expect(k.read("/proc/modules")).toBe("");
    expect(remains(k)).toEqual(NOTHING);
    expect(k.checkInvariants()).toEqual([]);
    await loadsAgain(k);
  });

  describe("an exported function another module calls (kemu/extern)", () => {
    const LIB = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, EXPORT_SYMBOL, GFP_KERNEL, kmalloc, kfree, type kbuf } from "kemu/kernel";
MODULE_LICENSE("GPL");
let buf: kbuf | null = null;
export function lib_fn(x: number): number {
  printk(KERN_INFO + "lib: lib_fn(%d)\\n", x);
  if (x > 1) throw new RangeError("lib_fn: " + x + " is too big");
  return x + 1;
}
EXPORT_SYMBOL(lib_fn);
module_init(() => { buf = kmalloc(16, GFP_KERNEL); return 0; });
module_exit(() => { kfree(buf); });
`;
    const USER = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
import { lib_fn } from "kemu/extern";
MODULE_LICENSE("GPL");
module_init(() => {
  for (const x of [1, 2, 1]) printk(KERN_INFO + "user: lib_fn(%d) = %d\\n", x, lib_fn(x));
  return 0;
});
module_exit(() => { printk(KERN_INFO + "user: bye\\n"); });
`;

    it("the caller gets -EFAULT, the exporter is dead but listed while used, and goes with its last user", async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      const lib = await buildSource("lib", LIB);
      await k.insmod(lib.ko);
      const seq = k.log.nextSeq;
      await k.insmod(await ko("user", USER, { symvers: [lib.symvers] }));
      const msgs = k.log.messages(seq);
      expect(msgs.slice(0, 3)).toEqual(["lib: lib_fn(1)", "user: lib_fn(1) = 2", "lib: lib_fn(2)"]);
      expectReport(msgs, { mod: "lib", fault: "throw", comm: "insmod", linked: "user(O+) lib(O)", fn: "lib_fn", error: "RangeError: lib_fn: 2 is too big" });
      expect(msgs.slice(msgs.findIndex((l) => l.startsWith("---[ end trace")) + 1)).toEqual([
        "user: lib_fn(2) = -14",
        // lib is dead: the third call does not reach it.
        "user: lib_fn(1) = -14",
        "kemu: lib: dead, but used by user; it stays listed until they go",
      ]);
      // /proc/modules shows it going, still used by user; /proc/kemu/modules says it is dead.
      expect(k.read("/proc/modules")).toMatch(/^user 4096 0 - Live 0xffffffffc\w+ \(O\)\nlib 4096 1 user, Unloading 0xffffffffc\w+ \(O-\)\n$/);
      expect(k.read("/proc/kemu/modules").split("\n")[2]).toMatch(/^lib\s+isolated\s+dead\s+\d+\.\d{3}\s+\d+\s+16384$/);
      expect([...k.mm.slab.live].filter((b) => b.owner === "lib")).toEqual([]);
      expect(rmmodError(k, "lib")!.message).toBe("rmmod: ERROR: Module lib is in use by: user");
      // The last user goes: so does the dead module, and its name is free again.
      k.rmmod("user");
      expect(k.read("/proc/modules")).toBe("");
      expect(k.read("/proc/kemu/modules").split("\n").filter(Boolean)).toHaveLength(1);
      await k.insmod(lib.ko);
      k.rmmod("lib");
      expect(k.checkInvariants()).toEqual([]);
    });
  });
});

describe("an oops in a kernel function the driver calls", () => {
  // percpu_ref_kill() on a percpu_ref that was never initialised dereferences NULL in the
  // kernel: the task dies there. The driver's code after the call must not run.
  const CATCHER = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, percpu_ref_kill, type percpu_ref } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => {
  const ref = {} as percpu_ref;
  try {
    percpu_ref_kill(ref);
  } catch (e) {
    printk(KERN_INFO + "catcher: caught %s\\n", String(e));
  }
  printk(KERN_INFO + "catcher: still running\\n");
  return 0;
});
module_exit(() => {});
`;

  it("kills the driver's task: its code does not go on, insmod fails, the module is contained", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("catcher", CATCHER));
    expect(err.errno).toBe(14);
    const msgs = k.log.messages(seq);
    expect(msgs).toContainEqual(expect.stringMatching(/^Oops: 0000 \[#1\] SMP PTI$/));
    expect(msgs).toContain("Modules linked in: catcher(O+)");
    // Nothing the driver printed after the call: not its catch, not the line after it.
    expect(msgs.filter((l) => l.startsWith("catcher: caught") || l === "catcher: still running")).toEqual([]);
    expect(k.tainted()).toBe(tainted("DO"));
    expect(k.read("/proc/modules")).toBe("");
    expect(k.checkInvariants()).toEqual([]);
  });
});

describe("built-in drivers ({ builtin: true }) are contained too", () => {
  // Built as in-tree code, as a =y driver would be; no O taint.
  const build = (where: Where) => ko("crashy", crashy(where), { intree: true });

  it("throw in init: insmod fails with EFAULT, oops, everything released", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await build("init"), { builtin: true });
    expect(err.errno).toBe(14);
    const msgs = k.log.messages(seq);
    expect(msgs[0]).toBe(INIT_LINE);
    expectReport(msgs, { mod: "crashy", fault: "throw", comm: "insmod", linked: "crashy(+)", fn: "crashy_fail" });
    expect(k.tainted()).toBe(tainted("D"));
    expect(k.read("/proc/modules")).toBe("");
    expect(remains(k)).toEqual(NOTHING);
    expect(k.checkInvariants()).toEqual([]);
    await loadsAgain(k);
  });

  it("throw in exit: rmmod fails with EFAULT, the module is gone", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    await k.insmod(await build("exit"), { builtin: true });
    const seq = k.log.nextSeq;
    expect(rmmodError(k, "crashy")!.errno).toBe(14);
    expectReport(k.log.messages(seq), { mod: "crashy", fault: "throw", comm: "rmmod", linked: "crashy(-)", fn: "crashy_fail" });
    expect(k.read("/proc/modules")).toBe("");
    expect(remains(k)).toEqual(NOTHING);
    expect(k.checkInvariants()).toEqual([]);
  });

  it("throw in probe: probe fails with -14, the isolated module that registered the device loads", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    await k.insmod(await build("probe"), { builtin: true });
    const seq = k.log.nextSeq;
    await k.insmod(await ko("trigger", TRIGGER));
    const msgs = k.log.messages(seq);
    expectReport(msgs, { mod: "crashy", fault: "throw", comm: "insmod", linked: "trigger(O+) crashy", fn: "crashy_fail" });
    expect(msgs.slice(msgs.findIndex((l) => l.startsWith("---[ end trace")) + 1)).toEqual([
      "crashy: probe of crashy failed with error -14",
      "trigger: registered crashy",
    ]);
    expect(k.read("/proc/modules")).toMatch(/^trigger 4096 0 - Live 0xffffffffc\w+ \(O\)\n$/);
    expect(remains(k)).toEqual({ ...NOTHING, devices: ["crashy"] });
    k.rmmod("trigger");
  });
});

describe("the report reads like an x86 oops of 4.19-5.0", () => {
  // arch/x86/kernel/dumpstack.c __die(): "Oops: %04lx [#%d] SMP PTI", then show_regs()
  // (show_regs_print_info: "CPU: ..." and "Hardware name: ..."; __show_regs: "RIP: ..."; then
  // the "Call Trace:"), then print_modules(), then the end-of-trace marker.
  const ORDER = [/^Oops: /, /^CPU: 0 PID: /, /^Hardware name: /, /^RIP: 0010:/, /^Call Trace:$/, /^Modules linked in:/, /^---\[ end trace /];
  /** Anything of the host: its files, node's internals, isolated-vm, esbuild's data: URLs. */
  const HOST = /\/work\/|core\/module\/|\.ts:\d|node:|isolated-vm|data:text\/javascript|node_modules/;

  for (const builtin of [false, true]) {
    it(`in kernel order, with nothing of the host in it (${builtin ? "built-in" : "isolated"})`, async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      const seq = k.log.nextSeq;
      await insmodError(k, await ko("crashy", crashy("init"), { intree: builtin }), { builtin });
      const report = expectReport(k.log.messages(seq), { mod: "crashy", fault: "throw", comm: "insmod", linked: builtin ? "crashy(+)" : "crashy(O+)", fn: "crashy_fail" });
      const at = ORDER.map((re) => report.findIndex((l) => re.test(l)));
      expect(at.every((n) => n >= 0), report.join("\n")).toBe(true);
      expect([...at].sort((a, b) => a - b), report.join("\n")).toEqual(at);
      expect(report.filter((l) => HOST.test(l))).toEqual([]);
      // Every frame of the call trace is a symbol, "name" or "name [module]"; as on x86 the
      // trace starts at the caller of the function in RIP.
      const trace = report.slice(report.indexOf("Call Trace:") + 1, report.findIndex((l) => l.startsWith("Modules linked in:")));
      expect(trace[0]).toBe(" init_module [crashy]");
      expect(trace.filter((l) => !/^ [A-Za-z_][\w.]*( \[\w+\])?$/.test(l))).toEqual([]);
    });
  }

  it("a probe that fails shows a call trace of symbols only", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    await k.insmod(await ko("crashy", crashy("probe")));
    const seq = k.log.nextSeq;
    await k.insmod(await ko("trigger", TRIGGER)).catch(() => null);
    const report = expectReport(k.log.messages(seq), { mod: "crashy", fault: "throw", comm: "insmod", linked: "trigger(O+) crashy(O)", fn: "crashy_fail" });
    const trace = report.slice(report.indexOf("Call Trace:") + 1, report.findIndex((l) => l.startsWith("Modules linked in:")));
    expect(trace[0]).toBe(" probe [crashy]");
    expect(trace).toContain(" platform_drv_probe");
    expect(trace.filter((l) => !/^ [A-Za-z_][\w.]*( \[\w+\])?$/.test(l))).toEqual([]);
  });
});

describe("/proc/kemu/modules and the moduleHeap boot option", () => {
  const HEADER = "name                 mode      state      cpu_ms   heap_kib  heap_limit_kib";

  /** Burns CPU in its probe; keeps `keepMiB` MiB of heap from its init on. */
  const worker = (name: string, keepMiB: number) => `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, platform_driver_register, platform_driver_unregister, type platform_device, type platform_driver } from "kemu/kernel";
MODULE_LICENSE("GPL");
let kept: number[] = [];
const drv: platform_driver = {
  driver: { name: "${name}" },
  probe(_pdev: platform_device): number {
    let x = 0;
    for (let i = 0; i < 3000000; i++) x = (x + i * i) % 1000003;
    printk(KERN_INFO + "${name}: worked %d\\n", x);
    return 0;
  },
};
module_init(() => { kept = new Array(${keepMiB} * 131072).fill(0.5); return platform_driver_register(drv); });
module_exit(() => { platform_driver_unregister(drv); kept = []; });
`;

  /** The /proc/kemu/modules line of `name`, split into its columns. */
  function row(k: Kernel, name: string): { mode: string; state: string; cpu: number; heap: number; limit: number } {
    const line = k.read("/proc/kemu/modules").split("\n").find((l) => l.startsWith(name + " "));
    expect(line, `${name} in /proc/kemu/modules`).toBeDefined();
    expect(line).toMatch(/^\S+ +\S+ +\S+ +\d+\.\d{3} +\d+ +\d+$/);
    const [, mode, state, cpu, heap, limit] = line!.split(/ +/);
    return { mode: mode!, state: state!, cpu: Number(cpu), heap: Number(heap), limit: Number(limit) };
  }

  it("lists each module, newest first, with its mode, state, CPU time and heap against its limit", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    await k.insmod(await ko("idle", worker("idle", 0)));
    await k.insmod(await ko("hoard", worker("hoard", 4)));
    await k.insmod(await ko("native", worker("native", 0), { intree: true }), { builtin: true });
    const lines = k.read("/proc/kemu/modules").split("\n");
    expect(lines[0]).toBe(HEADER);
    expect(lines.slice(1).map((l) => l.split(" ")[0])).toEqual(["native", "hoard", "idle", ""]);
    expect(row(k, "idle")).toMatchObject({ mode: "isolated", state: "live", limit: 16384 });
    expect(row(k, "native")).toMatchObject({ mode: "built-in", state: "live" });
    // 4 MiB of doubles kept alive show in hoard's heap, not in idle's.
    expect(row(k, "hoard").heap - row(k, "idle").heap).toBeGreaterThanOrEqual(4096);
    // CPU time grows with the work done in a callback.
    const before = row(k, "idle").cpu;
    const seq = k.log.nextSeq;
    k.platform.platform_device_register_simple("idle", -1);
    expect(k.log.messages(seq)).toEqual(["idle: worked 999718"]);
    expect(row(k, "idle").cpu).toBeGreaterThan(before);
    for (const m of ["native", "hoard", "idle"]) k.rmmod(m);
    expect(k.read("/proc/kemu/modules")).toBe(HEADER + "\n");
  });

  it("the limit is the boot option moduleHeap (default 64M)", async () => {
    const k1 = await boot({ version: "5.0" });
    await k1.insmod(await ko("idle", worker("idle", 0)));
    expect(row(k1, "idle").limit).toBe(65536);
    k1.rmmod("idle");
    const k2 = await boot({ version: "5.0", moduleHeap: "24M" });
    await k2.insmod(await ko("idle", worker("idle", 0)));
    expect(row(k2, "idle").limit).toBe(24576);
    k2.rmmod("idle");
  });

  it("a heap limit below 8M or not in whole MiB is refused at boot", async () => {
    for (const moduleHeap of ["4M", "12500K"]) {
      const err = await boot({ version: "5.0", moduleHeap }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).field).toBe("moduleHeap");
      expect((err as ConfigError).message).toBe("boot config: moduleHeap: must be a whole number of MiB, at least 8M");
    }
  });

  it("a module that outgrows the limit is killed with the limit in its report, its neighbour is not", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    await k.insmod(await ko("idle", worker("idle", 0)));
    const seq = k.log.nextSeq;
    await insmodError(k, await ko("hoard", worker("hoard", 32)));
    expectReport(k.log.messages(seq), { mod: "hoard", fault: "heap", comm: "insmod", linked: "hoard(O+) idle(O)" });
    expect(row(k, "idle")).toMatchObject({ mode: "isolated", state: "live", limit: 16384 });
    expect(k.read("/proc/kemu/modules").split("\n").filter((l) => l.startsWith("hoard"))).toEqual([]);
    k.rmmod("idle");
  });
});
