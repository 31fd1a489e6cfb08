// dev_printk() (drivers/base/core.c): "%s %s: " with dev_driver_string() and dev_name(), at the
// level of dev_err/dev_warn/dev_info.

import { describe, expect, it } from "vitest";
import { Device, dev_driver_string, dev_name, dev_to_node, devPrefix, NUMA_NO_NODE } from "../../core/base/device.ts";
import { bindDevice, testBus } from "../helpers/devices.ts";
import { boot, levelled } from "../helpers/kernel.ts";

describe("dev_printk", () => {
  it("prefixes the driver name and the device name, at each level", async () => {
    const k = await boot();
    const bus = testBus(k);
    const { dev } = bindDevice(k, "mydrv", () => 0);
    expect(dev.driver?.name).toBe("mydrv");
    expect(bus.name).toBe("testbus");
    const since = k.log.nextSeq;
    k.base.dev_err(dev, "bad thing\n");
    k.base.dev_warn(dev, "odd thing\n");
    k.base.dev_info(dev, "fine thing\n");
    expect(levelled(k, since)).toEqual(["<3>mydrv mydrv: bad thing", "<4>mydrv mydrv: odd thing", "<6>mydrv mydrv: fine thing"]);
  });

  it("uses the driver name, not the device's match name", async () => {
    const k = await boot();
    const bus = testBus(k);
    const { drv } = bindDevice(k, "nd_pmem", () => 0);
    const dev = new Device("pmem0", { matchName: "nd_pmem" });
    k.base.device_register(dev, bus);
    expect(dev.driver).toBe(drv);
    const since = k.log.nextSeq;
    k.base.dev_info(dev, "unable to guarantee persistence of writes\n");
    expect(levelled(k, since)).toEqual(["<6>nd_pmem pmem0: unable to guarantee persistence of writes"]);
  });

  it("falls back to the bus name for a device without a driver", async () => {
    const k = await boot();
    const dev = new Device("unbound0");
    k.base.device_register(dev, testBus(k));
    const since = k.log.nextSeq;
    k.base.dev_warn(dev, "no driver\n");
    expect(levelled(k, since)).toEqual(["<4>testbus unbound0: no driver"]);
  });

  it("switches from the driver name back to the bus name when the driver unbinds", async () => {
    const k = await boot();
    const seen: string[] = [];
    const { dev } = bindDevice(k, "switch", () => 0, (d) => void seen.push(devPrefix(d)));
    expect(devPrefix(dev)).toBe("switch switch: ");
    k.base.device_release_driver(dev);
    // remove() still runs with the driver bound.
    expect(seen).toEqual(["switch switch: "]);
    expect(devPrefix(dev)).toBe("testbus switch: ");
  });

  it("falls back to the class name for a device with no bus and no driver, then to nothing", async () => {
    const k = await boot();
    const classed = new Device("card0", { className: "drm" });
    const bare = new Device("bare0");
    k.base.device_register(classed);
    k.base.device_register(bare);
    const since = k.log.nextSeq;
    k.base.dev_info(classed, "classy\n");
    k.base.dev_info(bare, "bare\n");
    expect(levelled(k, since)).toEqual(["<6>drm card0: classy", "<6> bare0: bare"]);
    expect(dev_driver_string(bare)).toBe("");
    expect(dev_name(classed)).toBe("card0");
  });

  it("the bus name wins over the class name", async () => {
    const k = await boot();
    const dev = new Device("both0", { className: "drm" });
    k.base.device_register(dev, testBus(k));
    expect(dev_driver_string(dev)).toBe("testbus");
  });

  it("dev_printk() takes any level", async () => {
    const k = await boot();
    const { dev } = bindDevice(k, "lvl", () => 0);
    const since = k.log.nextSeq;
    k.base.dev_printk("\x012", dev, "critical\n");
    k.base.dev_printk("\x017", dev, "debug\n");
    expect(levelled(k, since)).toEqual(["<2>lvl lvl: critical", "<7>lvl lvl: debug"]);
  });

  it("dev_to_node() is NUMA_NO_NODE for no device or a device without a node", () => {
    expect(dev_to_node(null)).toBe(NUMA_NO_NODE);
    expect(NUMA_NO_NODE).toBe(-1);
    const dev = new Device("n");
    expect(dev_to_node(dev)).toBe(-1);
    dev.numa_node = 0;
    expect(dev_to_node(dev)).toBe(0);
  });
});
