// The NVDIMM Firmware Interface Table (ACPI 6.2 §5.2.25) the firmware hands the OS: one System
// Physical Address Range structure per persistent-memory region of the boot config, laid out
// as QEMU's hw/acpi/nvdimm.c writes them (OEM "BOCHS "/"BXPCNFIT", creator "BXPC"). Legacy
// (e820 type 12) regions are not in it: they reach libnvdimm through the e820_pmem device.
// Only SPA ranges are described (no NVDIMM region mappings, no control regions), so each
// region's namespace is a label-less ND_DEVICE_NAMESPACE_IO, as with memmap=/e820 pmem.

import type { ResolvedPmem } from "../config.ts";

export const ACPI_SIG_NFIT = "NFIT";
/** sizeof(struct acpi_table_header) */
export const ACPI_TABLE_HEADER_SIZE = 36;
/** sizeof(struct acpi_table_nfit): the header and 4 reserved bytes. */
export const ACPI_TABLE_NFIT_SIZE = 40;
export const ACPI_NFIT_TYPE_SYSTEM_ADDRESS = 0;
/** sizeof(struct acpi_nfit_system_address) */
export const ACPI_NFIT_SYSTEM_ADDRESS_SIZE = 56;
/** flags: the proximity domain field is valid. */
export const ACPI_NFIT_PROXIMITY_VALID = 1 << 1;
/** UUID_PERSISTENT_MEMORY 66f0d379-b4f3-4074-ac43-0d3318b78cdb, as stored (mixed endian). */
export const NFIT_SPA_PM_GUID = Uint8Array.of(0x79, 0xd3, 0xf0, 0x66, 0xf3, 0xb4, 0x74, 0x40, 0xac, 0x43, 0x0d, 0x33, 0x18, 0xb7, 0x8c, 0xdb);
/** EFI_MEMORY_WB | EFI_MEMORY_NV */
const SPA_MAPPING_ATTR = 0x8n | 0x8000n;

function ascii(view: Uint8Array, at: number, s: string): void {
  for (let i = 0; i < s.length; i++) view[at + i] = s.charCodeAt(i);
}

/** An ACPI table header; the checksum byte makes all bytes of the table sum to 0. */
function header(buf: Uint8Array, sig: string, revision: number, oemTableId: string): void {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  ascii(buf, 0, sig);
  v.setUint32(4, buf.length, true);
  buf[8] = revision;
  ascii(buf, 10, "BOCHS ");
  ascii(buf, 16, oemTableId);
  v.setUint32(24, 1, true); // OEM revision
  ascii(buf, 28, "BXPC");
  v.setUint32(32, 1, true); // creator revision
  let sum = 0;
  for (const b of buf) sum += b;
  buf[9] = (256 - (sum & 0xff)) & 0xff;
}

/** The NFIT for the config's non-legacy pmem regions; null when there are none. */
export function buildNfit(pmem: readonly ResolvedPmem[]): Uint8Array | null {
  const regions = pmem.filter((p) => !p.legacy);
  if (regions.length === 0) return null;
  const buf = new Uint8Array(ACPI_TABLE_NFIT_SIZE + regions.length * ACPI_NFIT_SYSTEM_ADDRESS_SIZE);
  const v = new DataView(buf.buffer);
  regions.forEach((p, i) => {
    const at = ACPI_TABLE_NFIT_SIZE + i * ACPI_NFIT_SYSTEM_ADDRESS_SIZE;
    v.setUint16(at, ACPI_NFIT_TYPE_SYSTEM_ADDRESS, true);
    v.setUint16(at + 2, ACPI_NFIT_SYSTEM_ADDRESS_SIZE, true);
    v.setUint16(at + 4, i + 1, true); // range_index: 0 means "none"
    v.setUint16(at + 6, ACPI_NFIT_PROXIMITY_VALID, true);
    v.setUint32(at + 12, 0, true); // proximity domain: node 0
    buf.set(NFIT_SPA_PM_GUID, at + 16);
    v.setBigUint64(at + 32, BigInt(p.start), true);
    v.setBigUint64(at + 40, BigInt(p.size), true);
    v.setBigUint64(at + 48, SPA_MAPPING_ATTR, true);
  });
  header(buf, ACPI_SIG_NFIT, 1, "BXPCNFIT");
  return buf;
}
