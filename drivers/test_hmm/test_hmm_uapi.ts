// The user interface of /dev/hmm_dmirror0 and /dev/hmm_dmirror1 (lib/test_hmm_uapi.h): the
// ioctl numbers, struct hmm_dmirror_cmd and the snapshot bytes. Plain arithmetic, shared by the
// driver and by user space (the selftests).
//
// Numbering: the current header's (MIGRATE_TO_SYS came with the device-coherent tests, 6.0):
// READ 0x00, WRITE 0x01, MIGRATE_TO_DEV 0x02, MIGRATE_TO_SYS 0x03, SNAPSHOT 0x04. The first merged header (v5.8) had MIGRATE at 0x02 and
// SNAPSHOT at 0x03: a binary built against that one does not work with this driver.
// EXCLUSIVE (0x05) and the later commands are not implemented: -EINVAL.

/**
 * struct hmm_dmirror_cmd { __u64 addr, ptr, npages, cpages, faults; }
 * addr: (in) user address the device reads/writes; ptr: (in) user address the data is copied
 * to/from; npages: (in) pages; cpages: (out) pages copied; faults: (out) device faults seen.
 */
export const HMM_DMIRROR_CMD_SIZE = 40;

/** _IOWR('H', nr, struct hmm_dmirror_cmd): dir 3 << 30 | size << 16 | type << 8 | nr. */
function iowr(nr: number): number {
  return 3 * 2 ** 30 + HMM_DMIRROR_CMD_SIZE * 2 ** 16 + 0x48 * 2 ** 8 + nr;
}

/** The device reads [addr, addr + npages pages) through its page table into ptr. */
export const HMM_DMIRROR_READ = iowr(0x00);
/** The device writes ptr's data to [addr, addr + npages pages) through its page table. */
export const HMM_DMIRROR_WRITE = iowr(0x01);
/** Migrate the range into the device's private memory, then read it back into ptr. */
export const HMM_DMIRROR_MIGRATE_TO_DEV = iowr(0x02);
/** Migrate this device's pages in the range back to system memory; cpages = pages moved. */
export const HMM_DMIRROR_MIGRATE_TO_SYS = iowr(0x03);
/** One byte per page at ptr: what the CPU page table holds (HMM_DMIRROR_PROT_*). */
export const HMM_DMIRROR_SNAPSHOT = iowr(0x04);

// Values written to ptr by HMM_DMIRROR_SNAPSHOT, one per page.
/** no valid mirror PTE for this page */
export const HMM_DMIRROR_PROT_ERROR = 0xff;
/** unpopulated PTE or PTE with no access */
export const HMM_DMIRROR_PROT_NONE = 0x00;
/** read-only PTE */
export const HMM_DMIRROR_PROT_READ = 0x01;
/** read/write PTE */
export const HMM_DMIRROR_PROT_WRITE = 0x02;
/** special read-only zero page */
export const HMM_DMIRROR_PROT_ZERO = 0x10;
/** migrated device private page on the device the ioctl() is made */
export const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20;
/** migrated device private page on some other device */
export const HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30;

/** The struct's fields; a field past 2^53 can be given as a bigint. */
export interface HmmDmirrorCmd {
  addr: number | bigint;
  ptr: number | bigint;
  npages: number | bigint;
  cpages: number | bigint;
  faults: number | bigint;
}

export const HMM_DMIRROR_CMD_FIELDS = ["addr", "ptr", "npages", "cpages", "faults"] as const;

/** The struct's bytes (little-endian u64s); missing fields are 0. */
export function hmm_dmirror_cmd_bytes(c: Partial<HmmDmirrorCmd>): Uint8Array {
  const b = new Uint8Array(HMM_DMIRROR_CMD_SIZE);
  const v = new DataView(b.buffer);
  HMM_DMIRROR_CMD_FIELDS.forEach((f, i) => v.setBigUint64(i * 8, BigInt.asUintN(64, BigInt(c[f] ?? 0)), true));
  return b;
}

/** The struct read back from its bytes, each field as a bigint (u64). */
export function hmm_dmirror_cmd_parse(b: Uint8Array): Record<(typeof HMM_DMIRROR_CMD_FIELDS)[number], bigint> {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const r = {} as Record<(typeof HMM_DMIRROR_CMD_FIELDS)[number], bigint>;
  HMM_DMIRROR_CMD_FIELDS.forEach((f, i) => (r[f] = v.getBigUint64(i * 8, true)));
  return r;
}
