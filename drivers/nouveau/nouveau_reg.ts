// The GPU's registers as the driver programs them (BAR0 offsets): identification, the copy
// class's methods (written at 0x104000 + method), and the MMU and compute blocks of kemu's GPU
// model (core/base/nvgpu.ts documents the hardware side).

export const NV_PMC_BOOT_0 = 0x000000;
/** nv50+ PFB: VRAM size, ((size >> 32) & 0xff) | (size & 0xffffff00) */
export const NV_PFB_VRAM_SIZE = 0x10020c;

export const NV_CE = 0x104000;
/** The copy class's methods, as nvc0b5_migrate_copy() pushes them. */
export const CE_SET_SRC_PHYS_MODE = 0x0260;
export const CE_SET_DST_PHYS_MODE = 0x0264;
export const CE_LAUNCH_DMA = 0x0300;
export const CE_OFFSET_IN_UPPER = 0x0400;
export const CE_OFFSET_IN_LOWER = 0x0404;
export const CE_OFFSET_OUT_UPPER = 0x0408;
export const CE_OFFSET_OUT_LOWER = 0x040c;
export const CE_PITCH_IN = 0x0410;
export const CE_PITCH_OUT = 0x0414;
export const CE_LINE_LENGTH_IN = 0x0418;
export const CE_LINE_COUNT = 0x041c;
/** Launches completed, and launches failed since the last read (what a fence wait learns). */
export const CE_FENCE = 0x0f00;
export const CE_ERRORS = 0x0f04;

export const NV_MMU = 0x1fa000;
export const MMU_INST = 0x00;
export const MMU_VA_HI = 0x04;
export const MMU_VA_LO = 0x08;
export const MMU_PTE_HI = 0x0c;
export const MMU_PTE_LO = 0x10;
export const MMU_MAP = 0x14;
export const MMU_UNMAP = 0x18;
export const MMU_UNMAP_ALL = 0x1c;
export const MMU_INSTANCES = 64;
export const PTE_VALID = 1 << 0;
export const PTE_WRITE = 1 << 1;
export const PTE_APER_VRAM = 0 << 2;
export const PTE_APER_HOST = 2 << 2;

export const NV_EXEC = 0x1fb000;
export const EXEC_INST = 0x00;
export const EXEC_A_HI = 0x04;
export const EXEC_A_LO = 0x08;
export const EXEC_B_HI = 0x0c;
export const EXEC_B_LO = 0x10;
export const EXEC_C_HI = 0x14;
export const EXEC_C_LO = 0x18;
export const EXEC_COUNT = 0x1c;
export const EXEC_LAUNCH = 0x20;
export const EXEC_STATUS = 0x24;
export const EXEC_FAULT_HI = 0x28;
export const EXEC_FAULT_LO = 0x2c;
export const EXEC_FAULT_INFO = 0x30;
export const EXEC_VRAM_PAGES = 0x34;
export const EXEC_HOST_PAGES = 0x38;
export const EXEC_DONE = 0x3c;
export const EXEC_LAUNCH_START = 1;
export const EXEC_LAUNCH_REPLAY = 2;
export const EXEC_LAUNCH_CANCEL = 3;
export const EXEC_STATUS_IDLE = 0;
export const EXEC_STATUS_FAULT = 1;
export const EXEC_STATUS_ERROR = 2;
export const EXEC_FAULT_WRITE = 1;

/** upper_32_bits() / lower_32_bits() of a 64-bit address held in a number. */
export function upper_32_bits(v: number): number {
  return Math.floor(v / 2 ** 32) >>> 0;
}
export function lower_32_bits(v: number): number {
  return v % 2 ** 32 >>> 0;
}
