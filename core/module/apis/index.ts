// Every function kemu/kernel offers, in one table: the order is the call index (from 1).

import type { KApi } from "../api.ts";
import { CDEV_APIS } from "./cdev.ts";
import { CHRDEV_APIS } from "./chrdev.ts";
import { DEVICE_APIS } from "./device.ts";
import { HMM_APIS } from "./hmm.ts";
import { MEMORY_APIS } from "./memory.ts";
import { MEMREMAP_APIS } from "./memremap.ts";
import { MMAP_APIS } from "./mmap.ts";
import { VERSION_APIS } from "./version.ts";
import { MODULE_APIS } from "./module.ts";
import { MM_APIS } from "./mm.ts";
import { PRINTK_APIS } from "./printk.ts";
import { PCI_APIS } from "./pci.ts";
import { BUG_APIS } from "./bug.ts";
import { SYNC_APIS } from "./sync.ts";
import { NVDIMM_STACK_APIS } from "./nvdimm-stack.ts";

export const KERNEL_APIS: readonly KApi[] = [
  ...PRINTK_APIS, ...MEMORY_APIS, ...DEVICE_APIS, ...SYNC_APIS, ...MEMREMAP_APIS, ...MODULE_APIS, ...CHRDEV_APIS, ...HMM_APIS, ...MMAP_APIS, ...CDEV_APIS, ...VERSION_APIS, ...MM_APIS, ...PCI_APIS, ...BUG_APIS,
  ...NVDIMM_STACK_APIS,
];

const BY_NAME = new Map(KERNEL_APIS.map((a) => [a.name, a]));

export function kernelApi(name: string): KApi | undefined {
  return BY_NAME.get(name);
}
