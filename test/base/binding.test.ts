// Device model binding (drivers/base/dd.c, bus.c, driver.c, core.c): bus match, probe,
// probe failure reporting, unbind order, and the messages the kernel prints on the way.

import { describe, expect, it } from "vitest";
import { BusType, Device, DeviceDriver } from "../../core/base/device.ts";
import { PLATFORM_DEVID_NONE, PlatformDevice } from "../../core/base/platform.ts";
import { EBUSY, EEXIST, EINVAL, EIO, ENODEV, ENOMEM, ENXIO, EPROBE_DEFER } from "../../core/errno.ts";
import { bindDevice, testBus } from "../helpers/devices.ts";
import { boot, levelled, messages, tainted } from "../helpers/kernel.ts";

describe("binding through the bus match", () => {
  it("binds a device registered after its driver", async () => {
    const k = await boot();
    const bus = testBus(k);
    const probed: Device[] = [];
    const drv = new DeviceDriver("foo", { probe: (d) => (probed.push(d), 0) });
    expect(k.base.driver_register(drv, bus)).toBe(0);
    expect(probed).toEqual([]);
    const dev = new Device("foo");
    expect(k.base.device_register(dev, bus)).toBe(0);
    expect(probed).toEqual([dev]);
    expect(dev.driver).toBe(drv);
    expect(drv.devices).toEqual([dev]);
  });

  it("binds a device registered before its driver when the driver registers", async () => {
    const k = await boot();
    const bus = testBus(k);
    const probed: Device[] = [];
    const dev = new Device("foo");
    expect(k.base.device_register(dev, bus)).toBe(0);
    expect(dev.driver).toBeNull();
    const drv = new DeviceDriver("foo", { probe: (d) => (probed.push(d), 0) });
    expect(k.base.driver_register(drv, bus)).toBe(0);
    expect(probed).toEqual([dev]);
    expect(dev.driver).toBe(drv);
  });

  it("only probes drivers the bus match accepts", async () => {
    const k = await boot();
    const bus = new BusType("pcibus", (dev, drv) => dev.matchName.startsWith(drv.name + ":"));
    expect(k.base.bus_register(bus)).toBe(0);
    const calls: string[] = [];
    const a = new DeviceDriver("alpha", { probe: (d) => (calls.push(`alpha ${d.name}`), 0) });
    const b = new DeviceDriver("beta", { probe: (d) => (calls.push(`beta ${d.name}`), 0) });
    k.base.driver_register(a, bus);
    k.base.driver_register(b, bus);
    const d1 = new Device("0000:00:01.0", { matchName: "beta:1" });
    const d2 = new Device("0000:00:02.0", { matchName: "gamma:2" });
    k.base.device_register(d1, bus);
    k.base.device_register(d2, bus);
    expect(calls).toEqual(["beta 0000:00:01.0"]);
    expect(d1.driver).toBe(b);
    expect(d2.driver).toBeNull();
  });

  it("the default match compares the device's match name with the driver name", async () => {
    const k = await boot();
    const bus = testBus(k);
    const drv = new DeviceDriver("serial8250", { probe: () => 0 });
    k.base.driver_register(drv, bus);
    const yes = new Device("serial8250.0", { matchName: "serial8250" });
    const no = new Device("serial8250.1");
    k.base.device_register(yes, bus);
    k.base.device_register(no, bus);
    expect(yes.driver).toBe(drv);
    expect(no.driver).toBeNull();
  });

  it("a device with no bus is never probed", async () => {
    const k = await boot();
    let probes = 0;
    k.base.driver_register(new DeviceDriver("lonely", { probe: () => (probes++, 0) }), testBus(k));
    const dev = new Device("lonely");
    expect(k.base.device_register(dev)).toBe(0);
    expect(probes).toBe(0);
    expect(dev.driver).toBeNull();
    expect(k.base.device_attach(dev)).toBe(false);
    k.base.device_unregister(dev);
  });

  it("binds a driver without a probe function", async () => {
    const k = await boot();
    const bus = testBus(k);
    const drv = new DeviceDriver("noprobe");
    k.base.driver_register(drv, bus);
    const dev = new Device("noprobe");
    k.base.device_register(dev, bus);
    expect(dev.driver).toBe(drv);
  });

  it("dev->driver is already set while probe runs", async () => {
    const k = await boot();
    let seen: DeviceDriver | null = null;
    const { dev, drv } = bindDevice(k, "early", (d) => {
      seen = d.driver;
      k.base.dev_info(d, "probing\n");
      return 0;
    });
    expect(seen).toBe(drv);
    expect(dev.driver).toBe(drv);
    expect(messages(k)).toContain("early early: probing");
  });

  it("a registered device or driver cannot be registered again", async () => {
    const k = await boot();
    const { dev, drv } = bindDevice(k, "twice", () => 0);
    expect(k.base.device_register(dev, testBus(k))).toBe(-EINVAL);
    expect(k.base.driver_register(drv, testBus(k))).toBe(-EINVAL);
    expect(k.base.bus_register(testBus(k))).toBe(-EINVAL);
  });

  it("refuses a second driver of the same name on a bus with the kernel's KERN_ERR line", async () => {
    const k = await boot();
    const bus = testBus(k);
    k.base.driver_register(new DeviceDriver("dup"), bus);
    const since = k.log.nextSeq;
    const second = new DeviceDriver("dup", { probe: () => 0 });
    expect(k.base.driver_register(second, bus)).toBe(-EBUSY);
    expect(levelled(k, since)).toEqual(["<3>Error: Driver 'dup' is already registered, aborting..."]);
    expect(second.registered).toBe(false);
    expect(bus.drivers.filter((d) => d.name === "dup")).toHaveLength(1);
  });

  it("refuses a driver on a bus that is not registered", async () => {
    const k = await boot();
    const bus = new BusType("nobus");
    expect(k.base.driver_register(new DeviceDriver("x"), bus)).toBe(-EINVAL);
  });
});

describe("probe failure", () => {
  it("prints '<drv>: probe of <dev> failed with error <n>' at KERN_WARNING", async () => {
    const k = await boot();
    const since = k.log.nextSeq;
    const { dev } = bindDevice(k, "broken", () => -ENOMEM);
    expect(levelled(k, since)).toEqual(["<4>broken: probe of broken failed with error -12"]);
    expect(dev.driver).toBeNull();
  });

  it("names the driver and the device separately", async () => {
    const k = await boot();
    const bus = testBus(k);
    k.base.driver_register(new DeviceDriver("nd_pmem", { probe: () => -EIO }), bus);
    const since = k.log.nextSeq;
    k.base.device_register(new Device("namespace0.0", { matchName: "nd_pmem" }), bus);
    expect(levelled(k, since)).toEqual(["<4>nd_pmem: probe of namespace0.0 failed with error -5"]);
  });

  it.each([
    ["-ENODEV", -ENODEV],
    ["-ENXIO", -ENXIO],
    ["-EPROBE_DEFER", -EPROBE_DEFER],
  ])("prints nothing for %s", async (_name, err) => {
    const k = await boot();
    const since = k.log.nextSeq;
    const { dev } = bindDevice(k, "quiet", () => err);
    expect(levelled(k, since)).toEqual([]);
    expect(dev.driver).toBeNull();
  });

  it("clears dev->driver and the driver data after a failed probe", async () => {
    const k = await boot();
    const { dev, drv } = bindDevice(k, "fails", (d) => {
      d.driver_data = { priv: 1 };
      return -EINVAL;
    });
    expect(dev.driver).toBeNull();
    expect(dev.driver_data).toBeNull();
    expect(drv.devices).toEqual([]);
  });

  it("keeps the driver data of a successful probe until unbind", async () => {
    const k = await boot();
    const priv = { priv: 1 };
    const { dev } = bindDevice(k, "keeps", (d) => {
      d.driver_data = priv;
      return 0;
    });
    expect(dev.driver_data).toBe(priv);
    k.base.device_release_driver(dev);
    expect(dev.driver_data).toBeNull();
  });

  it("releases every devres taken during probe, newest first, before printing the failure", async () => {
    const k = await boot();
    const since = k.log.nextSeq;
    const { dev } = bindDevice(k, "partial", (d) => {
      for (const name of ["first", "second", "third"]) {
        // dev_info() inside the release: dev->driver is still set while devres is released.
        expect(k.base.devm_add_action(d, () => k.base.dev_info(d, `undo ${name}\n`), null)).toBe(0);
      }
      expect(k.base.devm_kzalloc(d, 64)).not.toBeNull();
      return -EIO;
    });
    expect(levelled(k, since)).toEqual([
      "<6>partial partial: undo third",
      "<6>partial partial: undo second",
      "<6>partial partial: undo first",
      "<4>partial: probe of partial failed with error -5",
    ]);
    expect(dev.devres).toEqual([]);
    expect(dev.driver).toBeNull();
  });

  it("lets the next matching driver try after one fails", async () => {
    const k = await boot();
    const bus = new BusType("anybus", () => true);
    k.base.bus_register(bus);
    const order: string[] = [];
    const first = new DeviceDriver("first", { probe: () => (order.push("first"), -ENODEV) });
    const second = new DeviceDriver("second", { probe: () => (order.push("second"), 0) });
    const third = new DeviceDriver("third", { probe: () => (order.push("third"), 0) });
    k.base.driver_register(first, bus);
    k.base.driver_register(second, bus);
    k.base.driver_register(third, bus);
    const dev = new Device("dev0");
    k.base.device_register(dev, bus);
    expect(order).toEqual(["first", "second"]);
    expect(dev.driver).toBe(second);
  });

  it("a device left unbound by a failed probe binds to a driver registered later", async () => {
    const k = await boot();
    const bus = new BusType("anybus", () => true);
    k.base.bus_register(bus);
    k.base.driver_register(new DeviceDriver("nope", { probe: () => -ENXIO }), bus);
    const dev = new Device("dev0");
    k.base.device_register(dev, bus);
    expect(dev.driver).toBeNull();
    const good = new DeviceDriver("good", { probe: () => 0 });
    k.base.driver_register(good, bus);
    expect(dev.driver).toBe(good);
  });

  it("device_attach() retries a failed device and reports whether it bound", async () => {
    const k = await boot();
    let fail = true;
    const { dev, drv } = bindDevice(k, "flaky", () => (fail ? -EPROBE_DEFER : 0));
    expect(dev.driver).toBeNull();
    fail = false;
    expect(k.base.device_attach(dev)).toBe(true);
    expect(dev.driver).toBe(drv);
    expect(k.base.device_attach(dev)).toBe(true);
  });
});

describe("unbinding", () => {
  it("device_release_driver() calls remove, then releases devres, then clears dev->driver", async () => {
    const k = await boot();
    const events: string[] = [];
    const { dev, drv } = bindDevice(
      k,
      "unbind",
      (d) => {
        k.base.devm_add_action(d, () => events.push(`devres (driver ${d.driver?.name ?? "none"})`), null);
        return 0;
      },
      (d) => {
        events.push(`remove (driver ${d.driver?.name ?? "none"})`);
      },
    );
    expect(events).toEqual([]);
    k.base.device_release_driver(dev);
    expect(events).toEqual(["remove (driver unbind)", "devres (driver unbind)"]);
    expect(dev.driver).toBeNull();
    expect(drv.devices).toEqual([]);
    // A second release is a no-op.
    k.base.device_release_driver(dev);
    expect(events).toHaveLength(2);
  });

  it("driver_unregister() unbinds every device, the one bound last first", async () => {
    const k = await boot();
    const bus = testBus(k);
    const events: string[] = [];
    const drv = new DeviceDriver("multi", {
      probe: (d) => {
        k.base.devm_add_action(d, () => events.push(`release ${d.name}`), null);
        return 0;
      },
      remove: (d) => void events.push(`remove ${d.name}`),
    });
    const a = new Device("multi.0", { matchName: "multi" });
    const b = new Device("multi.1", { matchName: "multi" });
    const c = new Device("multi.2", { matchName: "multi" });
    k.base.device_register(a, bus);
    k.base.device_register(b, bus);
    k.base.device_register(c, bus);
    k.base.driver_register(drv, bus);
    // Rebind a: the bind order is now b, c, a while the bus order stays a, b, c.
    k.base.device_release_driver(a);
    events.length = 0;
    expect(k.base.device_attach(a)).toBe(true);
    expect(drv.devices).toEqual([b, c, a]);
    k.base.driver_unregister(drv);
    expect(events).toEqual(["remove multi.0", "release multi.0", "remove multi.2", "release multi.2", "remove multi.1", "release multi.1"]);
    for (const d of [a, b, c]) expect(d.driver).toBeNull();
    expect(drv.registered).toBe(false);
    expect(bus.drivers).not.toContain(drv);
    // The devices stay on the bus, unbound.
    expect(bus.devices).toEqual([a, b, c]);
  });

  it("device_unregister() unbinds the device and takes it off its bus", async () => {
    const k = await boot();
    const events: string[] = [];
    const { dev, drv } = bindDevice(k, "gone", () => 0, () => void events.push("remove"));
    const bus = testBus(k);
    k.base.device_unregister(dev);
    expect(events).toEqual(["remove"]);
    expect(dev.driver).toBeNull();
    expect(dev.registered).toBe(false);
    expect(bus.devices).not.toContain(dev);
    expect(k.base.devices).not.toContain(dev);
    expect(drv.devices).toEqual([]);
    // Unregistering twice does nothing.
    k.base.device_unregister(dev);
    expect(events).toEqual(["remove"]);
  });

  it("a driver unregistered and registered again binds the device again", async () => {
    const k = await boot();
    let probes = 0;
    const { dev, drv } = bindDevice(k, "again", () => (probes++, 0));
    k.base.driver_unregister(drv);
    expect(dev.driver).toBeNull();
    expect(k.base.driver_register(drv, testBus(k))).toBe(0);
    expect(dev.driver).toBe(drv);
    expect(probes).toBe(2);
  });

  it("bus_unregister() unbinds drivers and unregisters devices", async () => {
    const k = await boot();
    const bus = new BusType("tmpbus");
    k.base.bus_register(bus);
    const events: string[] = [];
    const drv = new DeviceDriver("tmp", { probe: () => 0, remove: (d) => void events.push(`remove ${d.name}`) });
    k.base.driver_register(drv, bus);
    const dev = new Device("tmp");
    k.base.device_register(dev, bus);
    k.base.bus_unregister(bus);
    expect(events).toEqual(["remove tmp"]);
    expect(dev.registered).toBe(false);
    expect(drv.registered).toBe(false);
    expect(k.base.buses).not.toContain(bus);
  });

  it("shutdown unbinds bound devices", async () => {
    const k = await boot();
    const events: string[] = [];
    bindDevice(k, "atexit", (d) => {
      k.base.devm_add_action(d, () => events.push("devres"), null);
      return 0;
    }, () => void events.push("remove"));
    await k.shutdown();
    expect(events).toEqual(["remove", "devres"]);
  });
});

describe("resources present before probing", () => {
  it("WARNs in really_probe and still probes (4.20/5.0 WARN_ON(!list_empty(&dev->devres_head)))", async () => {
    const k = await boot();
    const bus = testBus(k);
    const events: string[] = [];
    const dev = new Device("early");
    k.base.device_register(dev, bus);
    expect(k.base.devm_add_action(dev, () => events.push("pre-probe resource"), null)).toBe(0);
    const drv = new DeviceDriver("early", {
      probe: (d) => {
        k.base.devm_add_action(d, () => events.push("probe resource"), null);
        return 0;
      },
    });
    const since = k.log.nextSeq;
    const pid = k.sched.runAs("modprobe", () => (k.base.driver_register(drv, bus), k.sched.current.pid));
    const lines = levelled(k, since);
    // WARN_ON() traps to report_bug(): no "cut here" line on x86 before 5.2.
    expect(lines.slice(0, -1)).toEqual([
      `<4>WARNING: CPU: 0 PID: ${pid} at drivers/base/dd.c really_probe`,
      "<4>Modules linked in:",
      `<4>CPU: 0 PID: ${pid} Comm: modprobe Not tainted 5.0.0 #1`,
      "<4>Hardware name: kemu Standard PC (emulated), BIOS kemu 04/01/2014",
      "<4>RIP: 0010:really_probe",
      "<4>Call Trace:",
    ]);
    expect(lines.at(-1)).toMatch(/^<4>---\[ end trace [0-9a-f]{16} \]---$/);
    expect(dev.driver).toBe(drv);
    expect(k.tainted()).toContain("W");
    // Unbinding releases everything the device holds, the pre-probe resource last.
    k.base.device_release_driver(dev);
    expect(events).toEqual(["probe resource", "pre-probe resource"]);
  });

  it("does not WARN for a device that holds nothing", async () => {
    const k = await boot();
    const since = k.log.nextSeq;
    bindDevice(k, "clean", () => 0);
    expect(levelled(k, since)).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
  });
});

describe("platform devices", () => {
  // fs/sysfs/dir.c sysfs_warn_dup() in 4.19-5.0: pr_warn("sysfs: cannot create duplicate
  // filename '%s/%s'\n", ...) and dump_stack(); lib/kobject.c kobject_add_internal() then
  // pr_err()s "... failed for %s with -EEXIST, ...", and device_add() returns -EEXIST.
  it("a second device of the same name is -EEXIST, with sysfs_warn_dup()'s report", async () => {
    const k = await boot({ version: "4.20" });
    const first = k.platform.platform_device_register_simple("twin", 3);
    expect(first).toBeInstanceOf(PlatformDevice);
    const since = k.log.nextSeq;
    const { pid, rc } = k.sched.runAs("modprobe", () => ({ pid: k.sched.current.pid, rc: k.platform.platform_device_register_simple("twin", 3) }));
    expect(rc).toBe(-EEXIST);
    expect(levelled(k, since)).toEqual([
      "<4>sysfs: cannot create duplicate filename '/devices/platform/twin.3'",
      `<4>CPU: 0 PID: ${pid} Comm: modprobe Not tainted 4.20.0 #1`,
      "<4>Hardware name: kemu Standard PC (emulated), BIOS kemu 04/01/2014",
      "<4>Call Trace:",
      "<4> sysfs_warn_dup",
      "<4> sysfs_create_dir_ns",
      "<4> kobject_add_internal",
      "<4> kobject_add",
      "<4> device_add",
      "<4> platform_device_add",
      "<4> platform_device_register_full",
      "<3>kobject_add_internal failed for twin.3 with -EEXIST, don't try to register things with the same name in the same directory.",
    ]);
    // dump_stack() is no WARN: nothing is tainted.
    expect(k.tainted()).toBe("Not tainted");
    const other = k.platform.platform_device_register_simple("twin", PLATFORM_DEVID_NONE);
    expect(other, "another name in the directory").toBeInstanceOf(PlatformDevice);
    k.platform.platform_device_unregister(other as PlatformDevice);
    k.platform.platform_device_unregister(first as PlatformDevice);
  });
});

describe("device references", () => {
  // kobject_put() -> kref_put() -> refcount_dec_and_test(): 4.19-5.0 lib/refcount.c
  // refcount_sub_and_test_checked() (CONFIG_REFCOUNT_FULL) does
  // WARN_ONCE(new > val, "refcount_t: underflow; use-after-free.\n") and returns false.
  it("a put_device() after the last one is refcount_t's underflow WARN, once, and releases nothing again", async () => {
    const k = await boot({ version: "4.20" });
    const bus = testBus(k);
    let releases = 0;
    const dev = new Device("gone");
    dev.release = () => releases++;
    k.base.device_register(dev, bus);
    k.base.device_unregister(dev);
    expect(releases).toBe(1);
    const since = k.log.nextSeq;
    k.base.put_device(dev);
    const lines = levelled(k, since);
    expect(lines.slice(0, -1)).toEqual([
      "<4>------------[ cut here ]------------",
      "<4>refcount_t: underflow; use-after-free.",
      "<4>WARNING: CPU: 0 PID: 1 at lib/refcount.c refcount_sub_and_test_checked",
      "<4>Modules linked in:",
      "<4>CPU: 0 PID: 1 Comm: swapper/0 Not tainted 4.20.0 #1",
      "<4>Hardware name: kemu Standard PC (emulated), BIOS kemu 04/01/2014",
      "<4>RIP: 0010:refcount_sub_and_test_checked",
      "<4>Call Trace:",
      "<4> kobject_put",
      "<4> put_device",
    ]);
    expect(lines.at(-1)).toMatch(/^<4>---\[ end trace [0-9a-f]{16} \]---$/);
    expect(k.tainted()).toBe(tainted("W"));
    const again = k.log.nextSeq;
    k.base.put_device(dev);
    expect(levelled(k, again), "WARN_ONCE").toEqual([]);
    expect(releases).toBe(1);
  });
});
