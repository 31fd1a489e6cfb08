// Constants of the nvdimm interfaces: device types and driver flags (include/uapi/linux/ndctl.h,
// the same in 4.20 and 5.0), the MODALIAS format of nd devices, and memremap()'s flags.

// include/uapi/linux/ndctl.h: device types, and the driver flags built from them.
export const ND_DEVICE_DIMM = 1;
export const ND_DEVICE_REGION_PMEM = 2;
export const ND_DEVICE_REGION_BLK = 3;
export const ND_DEVICE_NAMESPACE_IO = 4;
export const ND_DEVICE_NAMESPACE_PMEM = 5;
export const ND_DEVICE_NAMESPACE_BLK = 6;
export const ND_DEVICE_DAX_PMEM = 7;
export const ND_DRIVER_DIMM = 1 << ND_DEVICE_DIMM;
export const ND_DRIVER_REGION_PMEM = 1 << ND_DEVICE_REGION_PMEM;
export const ND_DRIVER_REGION_BLK = 1 << ND_DEVICE_REGION_BLK;
export const ND_DRIVER_NAMESPACE_IO = 1 << ND_DEVICE_NAMESPACE_IO;
export const ND_DRIVER_NAMESPACE_PMEM = 1 << ND_DEVICE_NAMESPACE_PMEM;
export const ND_DRIVER_NAMESPACE_BLK = 1 << ND_DEVICE_NAMESPACE_BLK;
export const ND_DRIVER_DAX_PMEM = 1 << ND_DEVICE_DAX_PMEM;
/** enum memremap flags (include/linux/io.h) */
export const MEMREMAP_WB = 1 << 0;
export const MEMREMAP_WT = 1 << 1;
export const MEMREMAP_WC = 1 << 2;
/** x86: ARCH_MEMREMAP_PMEM is MEMREMAP_WB */
export const ARCH_MEMREMAP_PMEM = MEMREMAP_WB;

/** ND_DEVICE_MODALIAS_FMT */
export const ND_DEVICE_MODALIAS_FMT = "nd:t%d";
