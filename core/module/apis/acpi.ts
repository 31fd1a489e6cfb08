// ACPI as a driver of an ACPI namespace device uses it (drivers/acpi/bus.c, tables):
// acpi_bus_register_driver() of a struct acpi_driver whose ids name the _HIDs it drives
// (nfit: "ACPI0012"), and acpi_get_table(), which gives the module a copy of a firmware table.

import type { AcpiDevice, AcpiDriverOps } from "../../acpi/bus.ts";
import type { DeviceDriver } from "../../base/device.ts";
import { EBUSY } from "../../errno.ts";
import { defineApis, type CallCtx } from "../api.ts";
import type { StructTwin } from "../twins.ts";
import { hold, unhold } from "./teardown.ts";

/** struct acpi_driver as the kernel keeps a module's. */
export interface AcpiDriverTwin {
  name: string;
  class: string;
  ids: string[];
  add: ((adev: AcpiDevice) => number) | null;
  remove: ((adev: AcpiDevice) => number) | null;
  registered: DeviceDriver | null;
}

function ids(v: unknown): string[] {
  // struct acpi_device_id ids[]: { id } entries up to the first empty one.
  const out: string[] = [];
  if (!Array.isArray(v)) return out;
  for (const e of v) {
    const id = (e as { id?: unknown } | null)?.id;
    if (typeof id !== "string" || !id) break;
    out.push(id);
  }
  return out;
}

/** struct acpi_device_ops */
export interface AcpiDeviceOpsTwin {
  add: ((adev: AcpiDevice) => number) | null;
  remove: ((adev: AcpiDevice) => number) | null;
}

export const ACPI_TWINS: Record<string, StructTwin> = {
  acpi_device_ops: {
    create: (): AcpiDeviceOpsTwin => ({ add: null, remove: null }),
    update(obj, f) {
      const o = obj as AcpiDeviceOpsTwin;
      o.add = (f["add"] as AcpiDeviceOpsTwin["add"]) ?? null;
      o.remove = (f["remove"] as AcpiDeviceOpsTwin["remove"]) ?? null;
    },
  },
  acpi_driver: {
    create: (): AcpiDriverTwin => ({ name: "", class: "", ids: [], add: null, remove: null, registered: null }),
    update(obj, f) {
      const d = obj as AcpiDriverTwin;
      if (d.registered) return;
      if (typeof f["name"] === "string") d.name = f["name"];
      if (typeof f["class"] === "string") d.class = f["class"];
      d.ids = ids(f["ids"]);
      const ops = (f["ops"] as AcpiDeviceOpsTwin | null) ?? null;
      d.add = ops?.add ?? null;
      d.remove = ops?.remove ?? null;
    },
  },
};

export const ACPI_APIS = defineApis([
  {
    name: "acpi_bus_register_driver", symbols: ["acpi_bus_register_driver"], params: ["s:acpi_driver"], ret: "int", proto: "int acpi_bus_register_driver(struct acpi_driver *driver)",
    impl: (c: CallCtx, d: AcpiDriverTwin) => {
      if (d.registered) return -EBUSY;
      const ops: AcpiDriverOps = { name: d.name, class: d.class, ids: d.ids, add: d.add, remove: d.remove, owner: c.mod.name };
      const r = c.k.acpi.acpi_bus_register_driver(ops);
      if (typeof r === "number") return r;
      d.registered = r;
      hold(c, d, `acpi driver '${d.name}'`, () => {
        if (d.registered) c.k.acpi.acpi_bus_unregister_driver(d.registered);
        d.registered = null;
      });
      return 0;
    },
  },
  {
    name: "acpi_bus_unregister_driver", symbols: ["acpi_bus_unregister_driver"], params: ["s:acpi_driver"], ret: "void", proto: "void acpi_bus_unregister_driver(struct acpi_driver *driver)",
    impl: (c: CallCtx, d: AcpiDriverTwin) => {
      unhold(c, d);
      if (d.registered) c.k.acpi.acpi_bus_unregister_driver(d.registered);
      d.registered = null;
    },
  },
  {
    name: "acpi_get_table", symbols: ["acpi_get_table"], params: ["str", "int"], ret: "bytes",
    proto: "acpi_status acpi_get_table(char *signature, u32 instance, struct acpi_table_header **out_table) /* kemu: a copy of the table, or NULL for AE_NOT_FOUND */",
    impl: (c: CallCtx, sig: string, instance: number) => {
      if (sig.length !== 4 || instance < 0) return null;
      return c.k.acpi.acpi_get_table(sig, instance);
    },
  },
]);
