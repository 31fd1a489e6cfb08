// The user interface of /dev/gpu_test (the uapi header, as lib/test_hmm_uapi.h is for
// test_hmm): ioctl numbers, struct gpu_test_cmd, and the snapshot bytes. Plain arithmetic, so
// both the driver and user-space code (tests, benchmarks) can use it.

/** struct gpu_test_cmd { __u64 addr, ptr, npages, cpages, faults; } */
export const GPU_TEST_CMD_SIZE = 40;

/** _IOWR('G', nr, struct gpu_test_cmd) */
function iowr(nr: number): number {
  return 3 * 2 ** 30 + GPU_TEST_CMD_SIZE * 2 ** 16 + 0x47 * 2 ** 8 + nr;
}

/** Read [addr, addr + npages pages) through the device's mirror into ptr. */
export const GPU_TEST_READ = iowr(0x00);
/** Migrate [addr, addr + npages pages) into VRAM; cpages = pages moved. */
export const GPU_TEST_MIGRATE = iowr(0x02);
/** One byte per page at ptr: the CPU page table's view (GPU_TEST_PROT_*). */
export const GPU_TEST_SNAPSHOT = iowr(0x04);
/** _IO('G', 0x10): returns the number of pages in the device's page table. */
export const GPU_TEST_MIRRORED = 0x47 * 2 ** 8 + 0x10;

// Snapshot bytes (test_hmm's HMM_DMIRROR_PROT_*).
export const GPU_TEST_PROT_ERROR = 0xff;
export const GPU_TEST_PROT_NONE = 0x00;
export const GPU_TEST_PROT_READ = 0x01;
export const GPU_TEST_PROT_WRITE = 0x02;
export const GPU_TEST_PROT_DEV_PRIVATE_LOCAL = 0x20;

export interface GpuTestCmd {
  addr: number;
  ptr: number;
  npages: number;
  cpages: number;
  faults: number;
}

const FIELDS = ["addr", "ptr", "npages", "cpages", "faults"] as const;

/** The struct's bytes (little-endian u64s). */
export function gpu_test_cmd_bytes(c: Partial<GpuTestCmd>): Uint8Array {
  const b = new Uint8Array(GPU_TEST_CMD_SIZE);
  const v = new DataView(b.buffer);
  FIELDS.forEach((f, i) => {
    const x = c[f] ?? 0;
    v.setUint32(i * 8, x % 2 ** 32, true);
    v.setUint32(i * 8 + 4, Math.floor(x / 2 ** 32), true);
  });
  return b;
}

/** The struct read back from its bytes. */
export function gpu_test_cmd_parse(b: Uint8Array): GpuTestCmd {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const r = {} as GpuTestCmd;
  FIELDS.forEach((f, i) => (r[f] = v.getUint32(i * 8 + 4, true) * 2 ** 32 + v.getUint32(i * 8, true)));
  return r;
}
