// The ACPI bus as far as kemu's firmware goes (drivers/acpi/bus.c, scan.c, tables): the
// tables the firmware provides (acpi_get_table()), and the namespace devices drivers bind to
// by hardware id through acpi_bus_register_driver(). The NVDIMM root device "ACPI0012" is
// there when the NFIT describes persistent memory; its modalias "acpi:ACPI0012:" makes udev
// load nfit.

import { BusType, Device, DeviceDriver } from "../base/device.ts";
import { EINVAL } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import { object_gone } from "../lib/lifetime.ts";
import { ACPI_SIG_NFIT, buildNfit } from "./nfit.ts";

/** struct acpi_device: a device of the ACPI namespace with its _HID. */
export class AcpiDevice {
  readonly hid: string;
  readonly dev: Device;
  constructor(hid: string, instance: number) {
    this.hid = hid;
    this.dev = new Device(`${hid}:${String(instance).padStart(2, "0")}`);
    // acpi_device_uevent(): MODALIAS=acpi:<HID>:
    this.dev.modalias = `acpi:${hid}:`;
  }
}

/** struct acpi_driver as the kernel holds it. */
export interface AcpiDriverOps {
  name: string;
  class: string;
  /** acpi_device_id[].id: the _HIDs it drives. */
  ids: string[];
  add: ((adev: AcpiDevice) => number) | null;
  remove: ((adev: AcpiDevice) => number) | null;
  owner: string;
}

export class Acpi {
  readonly #k: Kernel;
  /** acpi_bus_match(): the driver's ids against the device's _HID. */
  readonly bus = new BusType("acpi", (dev, drv) => {
    const adev = this.#adevs.get(dev);
    const ids = this.#ids.get(drv);
    return !!adev && !!ids && ids.includes(adev.hid);
  });
  /** Installed tables by signature, each signature's instances in order. */
  readonly tables = new Map<string, Uint8Array[]>();
  readonly devices: AcpiDevice[] = [];
  readonly #adevs = new WeakMap<Device, AcpiDevice>();
  readonly #ids = new WeakMap<DeviceDriver, string[]>();

  constructor(k: Kernel) {
    this.#k = k;
  }

  /** acpi_init(): install the firmware's tables, enumerate the namespace devices. */
  boot(): void {
    const k = this.#k;
    k.base.bus_register(this.bus);
    const nfit = buildNfit(k.config.pmem);
    if (!nfit) return;
    this.tables.set(ACPI_SIG_NFIT, [nfit]);
    const adev = new AcpiDevice("ACPI0012", 0);
    this.#adevs.set(adev.dev, adev);
    this.devices.push(adev);
    k.base.device_register(adev.dev, this.bus);
  }

  /** acpi_get_table(signature, instance): a copy of the table, or null (AE_NOT_FOUND). */
  acpi_get_table(signature: string, instance: number): Uint8Array | null {
    const t = this.tables.get(signature)?.[instance - (instance > 0 ? 1 : 0)];
    return t ? t.slice() : null;
  }

  /** acpi_bus_register_driver(): bind to every device with one of the driver's ids. */
  acpi_bus_register_driver(ops: AcpiDriverOps): DeviceDriver | number {
    if (!ops.name || ops.ids.length === 0) return -EINVAL;
    const k = this.#k;
    const adevs = this.#adevs;
    const { add, remove } = ops;
    // acpi_device_probe()/acpi_device_remove() call the driver's ->add/->remove.
    const drv = new DeviceDriver(ops.name, {
      owner: ops.owner,
      probe: add ? function acpi_device_probe(dev: Device) { return k.bugs.frame(k.symbolName(add), () => add(adevs.get(dev)!)); } : undefined,
      remove: remove ? function acpi_device_remove(dev: Device) { return k.bugs.frame(k.symbolName(remove), () => remove(adevs.get(dev)!)); } : undefined,
    });
    this.#ids.set(drv, [...ops.ids]);
    const rc = k.base.driver_register(drv, this.bus);
    if (rc) {
      object_gone(drv);
      return rc;
    }
    return drv;
  }

  acpi_bus_unregister_driver(drv: DeviceDriver): void {
    this.#k.base.driver_unregister(drv);
  }
}
