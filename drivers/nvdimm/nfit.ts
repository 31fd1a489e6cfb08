// nfit: the ACPI NVDIMM Firmware Interface Table driver (drivers/acpi/nfit/core.c of 4.20/
// 5.0, module nfit.ko). It binds the NVDIMM root device ACPI0012, reads the NFIT, registers
// an nvdimm bus ("ACPI.NFIT") and one pmem region per System Physical Address range of the
// persistent-memory type. kemu's firmware describes SPA ranges only (no DIMMs, no control
// regions), so there are no nmem devices and each region has no mappings.

import {
  MODULE_LICENSE, MODULE_AUTHOR, MODULE_ALIAS, module_init, module_exit,
  ENOMEM, ENXIO, IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY, REGION_INTERSECTS,
  acpi_bus_register_driver, acpi_bus_unregister_driver, acpi_get_table, dev_err, dev_warn, devm_add_action_or_reset,
  insert_resource, remove_resource, region_intersects, iomem_resource,
  type acpi_device, type acpi_driver, type device, type resource_struct,
} from "kemu/kernel";
import { nvdimm_bus_register, nvdimm_bus_unregister, nvdimm_pmem_region_create } from "kemu/extern";
import type { nvdimm_bus, nvdimm_bus_descriptor } from "./nd.ts";

MODULE_LICENSE("GPL v2");
MODULE_AUTHOR("Intel Corporation");
// MODULE_DEVICE_TABLE(acpi, acpi_nfit_ids)
MODULE_ALIAS("acpi*:ACPI0012:*");

const ACPI_SIG_NFIT = "NFIT";
/** sizeof(struct acpi_table_nfit) */
const ACPI_TABLE_NFIT_SIZE = 40;
const ACPI_NFIT_TYPE_SYSTEM_ADDRESS = 0;
const ACPI_NFIT_TYPE_END = 8;
const ACPI_NFIT_PROXIMITY_VALID = 1 << 1;
/** UUID_PERSISTENT_MEMORY as the table stores it */
const NFIT_SPA_PM_GUID = "79d3f066f3b47440ac430d3318b78cdb";

/** struct acpi_nfit_system_address, the fields used */
interface NfitSpa {
  range_index: number;
  flags: number;
  proximity_domain: number;
  guid: string;
  address: number;
  length: number;
}

/** struct acpi_nfit_desc */
interface AcpiNfitDesc {
  dev: device;
  nd_desc: nvdimm_bus_descriptor;
  nvdimm_bus: nvdimm_bus | null;
  spas: NfitSpa[];
}

const descs = new Map<device, AcpiNfitDesc>();

function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** add_table(): one structure; the next offset, or -1 at the end or on an error. */
function add_table(acpi_desc: AcpiNfitDesc, t: DataView, at: number): number {
  if (at >= t.byteLength) return -1;
  const type = t.getUint16(at, true);
  const length = t.getUint16(at + 2, true);
  if (!length) {
    dev_warn(acpi_desc.dev, "found a zero length table '%d' parsing nfit\n", type);
    return -1;
  }
  if (at + length > t.byteLength) return -1;
  if (type === ACPI_NFIT_TYPE_SYSTEM_ADDRESS) {
    const guid = hex(new Uint8Array(t.buffer, t.byteOffset + at + 16, 16));
    acpi_desc.spas.push({
      range_index: t.getUint16(at + 4, true),
      flags: t.getUint16(at + 6, true),
      proximity_domain: t.getUint32(at + 12, true),
      guid,
      address: Number(t.getBigUint64(at + 32, true)),
      length: Number(t.getBigUint64(at + 40, true)),
    });
  } else if (type >= ACPI_NFIT_TYPE_END) {
    dev_err(acpi_desc.dev, "unknown table '%d' parsing nfit\n", type);
  }
  return at + length;
}

/** acpi_nfit_remove_resource() */
function acpi_nfit_remove_resource(data: unknown): void {
  remove_resource(data as resource_struct);
}

/** acpi_nfit_insert_resource(): "Persistent Memory" in iomem, unless it is there already. */
function acpi_nfit_insert_resource(acpi_desc: AcpiNfitDesc, start: number, end: number): number {
  // No operation if the region is already registered as PMEM
  const is_pmem = region_intersects(start, end - start + 1, IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY);
  if (is_pmem === REGION_INTERSECTS) return 0;
  const res: resource_struct = { name: "Persistent Memory", start, end, flags: IORESOURCE_MEM, desc: IORES_DESC_PERSISTENT_MEMORY };
  const rc = insert_resource(iomem_resource, res);
  if (rc) return rc;
  return devm_add_action_or_reset(acpi_desc.dev, acpi_nfit_remove_resource, res);
}

/** acpi_nfit_register_region() */
function acpi_nfit_register_region(acpi_desc: AcpiNfitDesc, spa: NfitSpa): number {
  if (spa.range_index === 0) return 0; // "detected invalid spa index" (dev_dbg)
  if (spa.guid !== NFIT_SPA_PM_GUID) return 0;
  const start = spa.address;
  const end = start + spa.length - 1;
  const numa_node = spa.flags & ACPI_NFIT_PROXIMITY_VALID ? spa.proximity_domain : -1;
  let rc = acpi_nfit_insert_resource(acpi_desc, start, end);
  if (rc) {
    dev_warn(acpi_desc.dev, "failed to insert pmem resource to iomem: %d\n", rc);
  } else if (!nvdimm_pmem_region_create(acpi_desc.nvdimm_bus!, { res: { start, end }, numa_node })) {
    rc = -ENOMEM;
  }
  if (rc) dev_err(acpi_desc.dev, "failed to register spa range %d\n", spa.range_index);
  return rc;
}

/** acpi_nfit_unregister(): the bus goes with the ACPI device. */
function acpi_nfit_unregister(data: unknown): void {
  const acpi_desc = data as AcpiNfitDesc;
  nvdimm_bus_unregister(acpi_desc.nvdimm_bus);
  acpi_desc.nvdimm_bus = null;
}

/** acpi_nfit_init(): the bus, then the table's structures, then the regions. */
function acpi_nfit_init(acpi_desc: AcpiNfitDesc, t: DataView): number {
  if (!acpi_desc.nvdimm_bus) {
    acpi_desc.nvdimm_bus = nvdimm_bus_register(acpi_desc.dev, acpi_desc.nd_desc);
    if (!acpi_desc.nvdimm_bus) return -ENOMEM;
    const rc = devm_add_action_or_reset(acpi_desc.dev, acpi_nfit_unregister, acpi_desc);
    if (rc) return rc;
  }
  for (let at = 0; at >= 0; ) at = add_table(acpi_desc, t, at);
  for (const spa of acpi_desc.spas) {
    const rc = acpi_nfit_register_region(acpi_desc, spa);
    if (rc) return rc;
  }
  return 0;
}

function acpi_nfit_add(adev: acpi_device): number {
  const dev = adev.dev;
  const tbl = acpi_get_table(ACPI_SIG_NFIT, 0);
  // "failed to find NFIT at startup" (dev_dbg): an NVDIMM may be hotplugged later (_FIT).
  if (!tbl) return 0;
  if (tbl.length < ACPI_TABLE_NFIT_SIZE) return -ENXIO;
  const acpi_desc: AcpiNfitDesc = { dev, nd_desc: { provider_name: "ACPI.NFIT" }, nvdimm_bus: null, spas: [] };
  descs.set(dev, acpi_desc);
  const v = new DataView(tbl.buffer, tbl.byteOffset + ACPI_TABLE_NFIT_SIZE, Math.min(tbl.length, new DataView(tbl.buffer).getUint32(4, true)) - ACPI_TABLE_NFIT_SIZE);
  return acpi_nfit_init(acpi_desc, v);
}

/** acpi_nfit_remove(): see acpi_nfit_unregister */
function acpi_nfit_remove(adev: acpi_device): number {
  descs.delete(adev.dev);
  return 0;
}

const acpi_nfit_driver: acpi_driver = {
  name: "nfit",
  ids: [{ id: "ACPI0012" }, { id: "" }],
  ops: { add: acpi_nfit_add, remove: acpi_nfit_remove },
};

module_init(() => acpi_bus_register_driver(acpi_nfit_driver));

module_exit(() => {
  acpi_bus_unregister_driver(acpi_nfit_driver);
});
