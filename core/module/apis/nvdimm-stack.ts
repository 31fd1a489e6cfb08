// The APIs of the nvdimm stack, in one list for index.ts: the device model for a bus a
// module implements, ACPI, the block layer, and the nvdimm glue.

import { ACPI_APIS } from "./acpi.ts";
import { BLOCK_APIS } from "./block.ts";
import { BUS_APIS } from "./bus.ts";
import { NVDIMM_APIS } from "./nvdimm.ts";

export const NVDIMM_STACK_APIS = [...BUS_APIS, ...ACPI_APIS, ...BLOCK_APIS, ...NVDIMM_APIS];
