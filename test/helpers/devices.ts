// A platform-like bus for tests that need a device with a driver bound to it.

import { BusType, Device, DeviceDriver, type ProbeFn, type RemoveFn } from "../../core/base/device.ts";
import type { Kernel } from "../../core/kernel.ts";

/** Register a bus "testbus" (once per kernel) and return it. */
export function testBus(k: Kernel): BusType {
  let bus = k.base.buses.find((b) => b.name === "testbus");
  if (!bus) {
    bus = new BusType("testbus");
    k.base.bus_register(bus);
  }
  return bus;
}

/**
 * A device named `name` bound to a driver of the same name whose probe is `probe`.
 * Returns the device and driver; probe has already run (check dev.driver to see if it bound).
 */
export function bindDevice(k: Kernel, name: string, probe: ProbeFn, remove?: RemoveFn): { dev: Device; drv: DeviceDriver } {
  const bus = testBus(k);
  const drv = new DeviceDriver(name, remove ? { probe, remove } : { probe });
  const dev = new Device(name);
  k.base.driver_register(drv, bus);
  k.base.device_register(dev, bus);
  return { dev, drv };
}
