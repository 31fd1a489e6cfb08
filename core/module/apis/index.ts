// Every function kemu/kernel offers, in one table: the order is the call index (from 1).

import type { KApi } from "../api.ts";
import { CHRDEV_APIS } from "./chrdev.ts";
import { DEVICE_APIS } from "./device.ts";
import { HMM_APIS } from "./hmm.ts";
import { MEMORY_APIS } from "./memory.ts";
import { MEMREMAP_APIS } from "./memremap.ts";
import { MODULE_APIS } from "./module.ts";
import { PRINTK_APIS } from "./printk.ts";
import { SYNC_APIS } from "./sync.ts";

export const KERNEL_APIS: readonly KApi[] = [
  ...PRINTK_APIS, ...MEMORY_APIS, ...DEVICE_APIS, ...SYNC_APIS, ...MEMREMAP_APIS, ...MODULE_APIS, ...CHRDEV_APIS, ...HMM_APIS,
];

const BY_NAME = new Map(KERNEL_APIS.map((a) => [a.name, a]));

export function kernelApi(name: string): KApi | undefined {
  return BY_NAME.get(name);
}
