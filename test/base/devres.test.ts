// Managed device resources (drivers/base/devres.c, spec R2.11): strict LIFO release on every
// path, devm_add_action and its failure modes under failslab, devm_remove_action, and
// devm_kzalloc/devm_kfree.

import { describe, expect, it } from "vitest";
import { BusType, Device, DeviceDriver } from "../../core/base/device.ts";
import { EIO, ENOMEM } from "../../core/errno.ts";
import type { Kernel } from "../../core/kernel.ts";
import { GFP_KERNEL } from "../../core/mm/gfp.ts";
import { bindDevice, testBus } from "../helpers/devices.ts";
import { armFailslab } from "../helpers/failslab.ts";
import { boot, levelled } from "../helpers/kernel.ts";

/** A WARN_ON() (no message, so no "cut here" on x86 4.19-5.1) at `site` by task `comm`/`pid`. */
function warnBlock(site: string, func: string, pid: number, comm: string, tainted = "Not tainted"): string[] {
  return [
    `<4>WARNING: CPU: 0 PID: ${pid} at ${site} ${func}`,
    "<4>Modules linked in:",
    `<4>CPU: 0 PID: ${pid} Comm: ${comm} ${tainted} 5.0.0 #1`,
    "<4>Hardware name: kemu Standard PC (emulated), BIOS kemu 04/01/2014",
    `<4>RIP: 0010:${func}`,
    "<4>Call Trace:",
  ];
}

/** Registers three actions and a devm_kzalloc in between; each action logs its name. */
function takeThree(k: Kernel, dev: Device, log: string[]): void {
  expect(k.base.devm_add_action(dev, (n) => log.push(n as string), "a")).toBe(0);
  expect(k.base.devm_kzalloc(dev, 32)).not.toBeNull();
  expect(k.base.devm_add_action(dev, (n) => log.push(n as string), "b")).toBe(0);
  expect(k.base.devm_add_action(dev, (n) => log.push(n as string), "c")).toBe(0);
}

describe("devres release order", () => {
  it("runs probe's actions in reverse order on device_release_driver()", async () => {
    const k = await boot();
    const log: string[] = [];
    const { dev } = bindDevice(k, "lifo", (d) => (takeThree(k, d, log), 0));
    expect(log).toEqual([]);
    expect(dev.devres).toHaveLength(4);
    k.base.device_release_driver(dev);
    expect(log).toEqual(["c", "b", "a"]);
    expect(dev.devres).toEqual([]);
  });

  it("runs them in reverse order on driver_unregister()", async () => {
    const k = await boot();
    const log: string[] = [];
    const { dev, drv } = bindDevice(k, "lifo", (d) => (takeThree(k, d, log), 0));
    k.base.driver_unregister(drv);
    expect(log).toEqual(["c", "b", "a"]);
    expect(dev.devres).toEqual([]);
  });

  it("runs them in reverse order on device_unregister()", async () => {
    const k = await boot();
    const log: string[] = [];
    const { dev } = bindDevice(k, "lifo", (d) => (takeThree(k, d, log), 0));
    k.base.device_unregister(dev);
    expect(log).toEqual(["c", "b", "a"]);
    expect(dev.devres).toEqual([]);
  });

  it("runs them in reverse order when probe fails", async () => {
    const k = await boot();
    const log: string[] = [];
    const { dev } = bindDevice(k, "lifo", (d) => (takeThree(k, d, log), -EIO));
    expect(log).toEqual(["c", "b", "a"]);
    expect(dev.devres).toEqual([]);
  });

  it("interleaves resources taken by remove() with the rest, newest first", async () => {
    const k = await boot();
    const log: string[] = [];
    const { dev } = bindDevice(
      k,
      "lifo",
      (d) => (takeThree(k, d, log), 0),
      (d) => void k.base.devm_add_action(d, (n) => log.push(n as string), "from remove"),
    );
    k.base.device_release_driver(dev);
    expect(log).toEqual(["from remove", "c", "b", "a"]);
  });

  it("an action that adds another devres while devres is being released does not leak it", async () => {
    // devres_release_all() detaches the list first; what a release adds lands on the device anew.
    const k = await boot();
    const log: string[] = [];
    const { dev } = bindDevice(k, "nested", (d) => {
      k.base.devm_add_action(d, () => {
        log.push("outer");
        k.base.devm_add_action(d, () => log.push("late"), null);
      }, null);
      return 0;
    });
    k.base.device_release_driver(dev);
    expect(log).toEqual(["outer"]);
    expect(dev.devres).toHaveLength(1);
    k.base.device_unregister(dev);
    expect(log).toEqual(["outer", "late"]);
    expect(dev.devres).toEqual([]);
  });

  it("gives each action its own data", async () => {
    const k = await boot();
    const got: unknown[] = [];
    const x = { id: 1 };
    const y = { id: 2 };
    const action = (p: unknown) => void got.push(p);
    const { dev } = bindDevice(k, "data", (d) => {
      k.base.devm_add_action(d, action, x);
      k.base.devm_add_action(d, action, y);
      return 0;
    });
    k.base.device_release_driver(dev);
    expect(got[0]).toBe(y);
    expect(got[1]).toBe(x);
  });
});

describe("devres of a device without a driver", () => {
  it("stays until the device is unregistered, then goes newest first", async () => {
    const k = await boot();
    const log: string[] = [];
    const dev = new Device("orphan");
    k.base.device_register(dev, testBus(k));
    expect(dev.driver).toBeNull();
    takeThree(k, dev, log);
    // Nothing to unbind: device_release_driver() leaves the resources alone.
    k.base.device_release_driver(dev);
    expect(log).toEqual([]);
    expect(dev.devres).toHaveLength(4);
    const live = k.mm.slab.live.size;
    k.base.device_unregister(dev);
    expect(log).toEqual(["c", "b", "a"]);
    expect(dev.devres).toEqual([]);
    expect(k.mm.slab.live.size).toBe(live - 4);
  });

  it("a device on no bus at all releases its resources when unregistered", async () => {
    const k = await boot();
    const log: string[] = [];
    const dev = new Device("busless");
    k.base.device_register(dev);
    takeThree(k, dev, log);
    k.base.device_unregister(dev);
    expect(log).toEqual(["c", "b", "a"]);
  });

  it("a bus without a matching driver leaves them in place while drivers come and go", async () => {
    const k = await boot();
    const bus = new BusType("nomatch", () => false);
    k.base.bus_register(bus);
    const log: string[] = [];
    const dev = new Device("d0");
    k.base.device_register(dev, bus);
    k.base.devm_add_action(dev, () => log.push("held"), null);
    const drv = new DeviceDriver("d0", { probe: () => 0 });
    k.base.driver_register(drv, bus);
    k.base.driver_unregister(drv);
    expect(log).toEqual([]);
    k.base.device_unregister(dev);
    expect(log).toEqual(["held"]);
  });
});

describe("devm_add_action", () => {
  it("returns 0 and does not run the action until release", async () => {
    const k = await boot();
    let runs = 0;
    const { dev } = bindDevice(k, "act", (d) => {
      expect(k.base.devm_add_action(d, () => runs++, null)).toBe(0);
      expect(runs).toBe(0);
      return 0;
    });
    expect(runs).toBe(0);
    k.base.device_release_driver(dev);
    expect(runs).toBe(1);
    k.base.device_unregister(dev);
    expect(runs).toBe(1);
  });

  it("returns -ENOMEM without running the action when the devres allocation fails", async () => {
    const k = await boot();
    let runs = 0;
    let rc = 0;
    const { dev } = bindDevice(k, "nomem", (d) => {
      armFailslab(k, 1, { verbose: 2 });
      rc = k.base.devm_add_action(d, () => runs++, null);
      return 0;
    });
    expect(rc).toBe(-ENOMEM);
    expect(rc).toBe(-12);
    expect(runs).toBe(0);
    expect(dev.devres).toEqual([]);
    // Nothing was registered, so unbinding runs nothing either.
    k.base.device_release_driver(dev);
    expect(runs).toBe(0);
  });

  it("fails through failslab, which reports the injected failure", async () => {
    const k = await boot();
    const { dev } = bindDevice(k, "inject", () => 0);
    armFailslab(k, 1, { verbose: 2 });
    const since = k.log.nextSeq;
    expect(k.base.devm_add_action(dev, () => {}, null)).toBe(-ENOMEM);
    const lines = levelled(k, since);
    expect(lines.slice(0, 2)).toEqual([
      "<5>FAULT_INJECTION: forcing a failure.",
      "<5>name failslab, interval 1, probability 100, space 0, times 1",
    ]);
    // times=1: only one failure is injected.
    expect(k.read("/sys/kernel/debug/failslab/times")).toBe("0\n");
    let runs = 0;
    expect(k.base.devm_add_action(dev, () => runs++, null)).toBe(0);
    k.base.device_release_driver(dev);
    expect(runs).toBe(1);
  });

  it("is not failed by failslab while ignore-gfp-wait is Y (GFP_KERNEL may sleep)", async () => {
    const k = await boot();
    const { dev } = bindDevice(k, "sleepy", () => 0);
    k.write("/sys/kernel/debug/failslab/probability", "100");
    k.write("/sys/kernel/debug/failslab/times", "1");
    expect(k.read("/sys/kernel/debug/failslab/ignore-gfp-wait")).toBe("Y\n");
    expect(k.base.devm_add_action(dev, () => {}, null)).toBe(0);
    expect(k.read("/sys/kernel/debug/failslab/times")).toBe("1\n");
    k.write("/sys/kernel/debug/failslab/probability", "0");
  });
});

describe("devm_add_action_or_reset", () => {
  it("returns 0 and defers the action to release when registration works", async () => {
    const k = await boot();
    const log: string[] = [];
    const { dev } = bindDevice(k, "ok", (d) => {
      expect(k.base.devm_add_action_or_reset(d, (n) => log.push(n as string), "reset")).toBe(0);
      return 0;
    });
    expect(log).toEqual([]);
    k.base.device_release_driver(dev);
    expect(log).toEqual(["reset"]);
  });

  it("runs the action at once and returns -ENOMEM when registration fails", async () => {
    const k = await boot();
    const log: string[] = [];
    let rc = 0;
    const { dev } = bindDevice(k, "reset", (d) => {
      k.base.devm_add_action(d, (n) => log.push(n as string), "earlier");
      armFailslab(k, 1, { verbose: 2 });
      rc = k.base.devm_add_action_or_reset(d, (n) => log.push(n as string), "immediate");
      log.push("after call");
      return 0;
    });
    expect(rc).toBe(-ENOMEM);
    expect(log).toEqual(["immediate", "after call"]);
    expect(dev.devres).toHaveLength(1);
    k.base.device_release_driver(dev);
    // The failed registration's action does not run a second time.
    expect(log).toEqual(["immediate", "after call", "earlier"]);
  });
});

describe("devm_remove_action", () => {
  it("unregisters the action without running it", async () => {
    const k = await boot();
    const log: string[] = [];
    const keep = (n: unknown) => void log.push(n as string);
    const drop = (n: unknown) => void log.push(n as string);
    const { dev } = bindDevice(k, "rm", (d) => {
      k.base.devm_add_action(d, keep, "kept");
      k.base.devm_add_action(d, drop, "dropped");
      return 0;
    });
    const since = k.log.nextSeq;
    k.base.devm_remove_action(dev, drop, "dropped");
    expect(log).toEqual([]);
    expect(dev.devres).toHaveLength(1);
    expect(levelled(k, since)).toEqual([]);
    k.base.device_release_driver(dev);
    expect(log).toEqual(["kept"]);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("frees the devres it removes", async () => {
    const k = await boot();
    const action = () => {};
    const { dev } = bindDevice(k, "rmfree", () => 0);
    const live = k.mm.slab.live.size;
    k.base.devm_add_action(dev, action, null);
    expect(k.mm.slab.live.size).toBe(live + 1);
    k.base.devm_remove_action(dev, action, null);
    expect(k.mm.slab.live.size).toBe(live);
  });

  it("removes one registration of a pair registered twice", async () => {
    const k = await boot();
    let runs = 0;
    const action = () => void runs++;
    const { dev } = bindDevice(k, "twice", (d) => {
      k.base.devm_add_action(d, action, null);
      k.base.devm_add_action(d, action, null);
      return 0;
    });
    k.base.devm_remove_action(dev, action, null);
    k.base.device_release_driver(dev);
    expect(runs).toBe(1);
  });

  it("removes the newest matching registration", async () => {
    // devres_remove() searches the list from its tail: the oldest duplicate keeps its place.
    const k = await boot();
    const log: string[] = [];
    const dup = () => void log.push("dup");
    const mid = () => void log.push("mid");
    const { dev } = bindDevice(k, "newest", (d) => {
      k.base.devm_add_action(d, dup, null);
      k.base.devm_add_action(d, mid, null);
      k.base.devm_add_action(d, dup, null);
      return 0;
    });
    k.base.devm_remove_action(dev, dup, null);
    k.base.device_release_driver(dev);
    expect(log).toEqual(["mid", "dup"]);
  });

  it("matches the data as well as the action", async () => {
    const k = await boot();
    const log: unknown[] = [];
    const action = (p: unknown) => void log.push(p);
    const { dev } = bindDevice(k, "match", (d) => {
      k.base.devm_add_action(d, action, "one");
      k.base.devm_add_action(d, action, "two");
      return 0;
    });
    k.base.devm_remove_action(dev, action, "one");
    k.base.device_release_driver(dev);
    expect(log).toEqual(["two"]);
  });

  it("WARNs when the action is not registered, and removes nothing", async () => {
    const k = await boot();
    const log: string[] = [];
    const registered = () => void log.push("registered");
    function never_added(): void {
      log.push("never added");
    }
    const { dev } = bindDevice(k, "warn", (d) => {
      k.base.devm_add_action(d, registered, "x");
      return 0;
    });
    const since = k.log.nextSeq;
    const pid = k.sched.runAs("mytask", () => {
      k.base.devm_remove_action(dev, never_added, null);
      return k.sched.current.pid;
    });
    const lines = levelled(k, since);
    expect(lines.slice(0, -1)).toEqual(warnBlock("drivers/base/devres.c", "devm_remove_action", pid, "mytask"));
    expect(lines.at(-1)).toMatch(/^<4>---\[ end trace [0-9a-f]{16} \]---$/);
    expect(k.tainted()).toBe("Tainted: G        W        ");
    expect(k.read("/proc/sys/kernel/tainted")).toBe("512\n");
    expect(dev.devres).toHaveLength(1);
    // The same action with other data is not registered either.
    const since2 = k.log.nextSeq;
    k.base.devm_remove_action(dev, registered, "y");
    expect(levelled(k, since2)[0]).toBe("<4>WARNING: CPU: 0 PID: 1 at drivers/base/devres.c devm_remove_action");
    expect(levelled(k, since2)[2]).toBe("<4>CPU: 0 PID: 1 Comm: swapper/0 Tainted: G        W         5.0.0 #1");
    k.base.device_release_driver(dev);
    expect(log).toEqual(["registered"]);
  });

  it("WARNs for an action already removed", async () => {
    const k = await boot();
    const action = () => {};
    const { dev } = bindDevice(k, "gone", (d) => (k.base.devm_add_action(d, action, null), 0));
    k.base.devm_remove_action(dev, action, null);
    const since = k.log.nextSeq;
    k.base.devm_remove_action(dev, action, null);
    expect(levelled(k, since)).toContain("<4>WARNING: CPU: 0 PID: 1 at drivers/base/devres.c devm_remove_action");
  });
});

describe("devm_kzalloc / devm_kfree", () => {
  it("returns a zeroed object of the requested size even where the slab held data", async () => {
    const k = await boot();
    const { dev } = bindDevice(k, "zero", () => 0);
    // Dirty a slab object of the size the devres will need, then free it for reuse.
    const dirty = k.mm.kmalloc(40 + 100, GFP_KERNEL)!;
    k.mm.physmem.write(dirty.phys, new Uint8Array(dirty.size).fill(0xa5));
    const dirtyPhys = dirty.phys;
    k.mm.kfree(dirty);
    const buf = k.base.devm_kzalloc(dev, 100)!;
    expect(buf).not.toBeNull();
    expect(buf.size).toBe(100);
    // dr->data sits in the dirtied object: the test would prove nothing otherwise.
    expect(buf.phys).toBeGreaterThanOrEqual(dirtyPhys);
    expect(buf.phys + buf.size).toBeLessThanOrEqual(dirtyPhys + 140);
    expect([...k.mm.physmem.read(buf.phys, buf.size)].every((b) => b === 0)).toBe(true);
  });

  it("devm_kmalloc() leaves the contents alone (only devm_kzalloc zeroes)", async () => {
    const k = await boot();
    const { dev } = bindDevice(k, "nozero", () => 0);
    const dirty = k.mm.kmalloc(40 + 100, GFP_KERNEL)!;
    k.mm.physmem.write(dirty.phys, new Uint8Array(dirty.size).fill(0xa5));
    k.mm.kfree(dirty);
    const buf = k.base.devm_kmalloc(dev, 100)!;
    expect(buf.size).toBe(100);
    expect(k.mm.physmem.read(buf.phys, buf.size).includes(0xa5)).toBe(true);
  });

  it("is freed when the driver unbinds", async () => {
    const k = await boot();
    const before = k.mm.slab.live.size;
    let buf = null as ReturnType<Kernel["base"]["devm_kzalloc"]>;
    const { dev } = bindDevice(k, "freed", (d) => {
      buf = k.base.devm_kzalloc(d, 256);
      return 0;
    });
    expect(buf).not.toBeNull();
    expect(k.mm.slab.live.size).toBe(before + 1);
    k.base.device_release_driver(dev);
    expect(k.mm.slab.live.size).toBe(before);
    expect(dev.devres).toEqual([]);
  });

  it("is freed when probe fails after taking it", async () => {
    const k = await boot();
    const before = k.mm.slab.live.size;
    bindDevice(k, "failed", (d) => {
      k.base.devm_kzalloc(d, 4096);
      k.base.devm_kzalloc(d, 8);
      return -ENOMEM;
    });
    expect(k.mm.slab.live.size).toBe(before);
  });

  it("returns null when the allocation fails, and registers nothing", async () => {
    const k = await boot();
    const { dev } = bindDevice(k, "nomem", () => 0);
    armFailslab(k, 1, { verbose: 2 });
    expect(k.base.devm_kzalloc(dev, 64)).toBeNull();
    expect(dev.devres).toEqual([]);
  });

  it("devm_kfree() frees at once, without a WARN", async () => {
    const k = await boot();
    const { dev } = bindDevice(k, "kfree", () => 0);
    const before = k.mm.slab.live.size;
    const a = k.base.devm_kzalloc(dev, 64)!;
    const b = k.base.devm_kzalloc(dev, 64)!;
    expect(k.mm.slab.live.size).toBe(before + 2);
    const since = k.log.nextSeq;
    k.base.devm_kfree(dev, a);
    expect(levelled(k, since)).toEqual([]);
    expect(k.mm.slab.live.size).toBe(before + 1);
    expect(dev.devres).toHaveLength(1);
    k.base.devm_kfree(dev, b);
    expect(dev.devres).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("devm_kfree() of a pointer that is not devm_kmalloc()ed on the device WARNs and frees nothing", async () => {
    const k = await boot();
    const { dev } = bindDevice(k, "own", () => 0);
    const other = new Device("other");
    k.base.device_register(other, testBus(k));
    const mine = k.base.devm_kzalloc(dev, 64)!;
    const plain = k.mm.kmalloc(64, GFP_KERNEL)!;
    const live = k.mm.slab.live.size;
    const since = k.log.nextSeq;
    const pid = k.sched.runAs("mytask", () => {
      k.base.devm_kfree(dev, plain);
      return k.sched.current.pid;
    });
    const lines = levelled(k, since);
    expect(lines.slice(0, -1)).toEqual(warnBlock("drivers/base/devres.c", "devm_kfree", pid, "mytask"));
    expect(k.tainted()).toBe("Tainted: G        W        ");
    // A devm object of another device is foreign too.
    const since2 = k.log.nextSeq;
    k.base.devm_kfree(other, mine);
    expect(levelled(k, since2)[0]).toBe("<4>WARNING: CPU: 0 PID: 1 at drivers/base/devres.c devm_kfree");
    expect(k.mm.slab.live.size).toBe(live);
    expect(dev.devres).toHaveLength(1);
    k.mm.kfree(plain);
    k.base.device_unregister(other);
  });
});

describe("devm_request_mem_region", () => {
  it("holds the region in /proc/iomem until the driver unbinds", async () => {
    const k = await boot();
    const before = k.read("/proc/iomem");
    const { dev } = bindDevice(k, "mmio", (d) => (k.base.devm_request_mem_region(d, 0xfe000000, 0x1000, "mmio") ? 0 : -16));
    expect(dev.driver).not.toBeNull();
    expect(k.read("/proc/iomem")).toContain("fe000000-fe000fff : mmio\n");
    k.base.device_release_driver(dev);
    expect(k.read("/proc/iomem")).toBe(before);
  });

  it("devm_release_mem_region() gives it back early", async () => {
    const k = await boot();
    const before = k.read("/proc/iomem");
    const { dev } = bindDevice(k, "mmio", (d) => (k.base.devm_request_mem_region(d, 0xfe000000, 0x1000, "mmio") ? 0 : -16));
    k.base.devm_release_mem_region(dev, 0xfe000000, 0x1000);
    expect(k.read("/proc/iomem")).toBe(before);
    expect(dev.devres).toEqual([]);
  });

  it("a busy region fails without registering a devres", async () => {
    const k = await boot();
    const { dev } = bindDevice(k, "mmio", () => 0);
    expect(k.base.devm_request_mem_region(dev, 0xfe000000, 0x1000, "first")).not.toBeNull();
    expect(k.base.devm_request_mem_region(dev, 0xfe000800, 0x1000, "second")).toBeNull();
    expect(dev.devres).toHaveLength(1);
  });
});
