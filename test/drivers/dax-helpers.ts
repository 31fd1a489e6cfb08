// Shared setup of the device-dax tests: the dax core, device_dax and a provider built for a
// version (each with the Module.symvers of the ones it uses), loaded isolated or built in.

import { fileURLToPath } from "node:url";
import type { Kernel } from "../../core/kernel.ts";
import type { KernelVersion } from "../../core/version.ts";
import type { BuildResult } from "../../sdk/build/build.ts";
import { buildDriver } from "../helpers/build.ts";

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));
export const DAX = src("../../drivers/dax/dax.ts");
const DEVICE_DAX = src("../../drivers/dax/device_dax.ts");
export const DAX_PMEM = src("../../drivers/dax/dax_pmem.ts");
const DAX_TEST = src("../fixtures/dax_test.ts");

/** Where dax_test's ranges are: the pmem region of daxBoot(). */
export const PMEM_START = 2 ** 32;
export const SECTION = 128 << 20;
export const DAX_TEST_ADD = 0x4401;
export const DAX_TEST_DEL = 0x4402;
export const DAX_TEST_NO_MAP = 1;
export const DAX_TEST_DRVDATA = 2;

export interface DaxKos {
  dax: BuildResult;
  device_dax: BuildResult;
  dax_test: BuildResult;
}

/** dax.ko, device_dax.ko and dax_test.ko for `version`. */
export async function daxKos(version: KernelVersion): Promise<DaxKos> {
  const dax = await buildDriver(DAX, version);
  const device_dax = await buildDriver(DEVICE_DAX, version, [dax.symvers]);
  const dax_test = await buildDriver(DAX_TEST, version, [dax.symvers, device_dax.symvers]);
  return { dax, device_dax, dax_test };
}

/** Load the dax core and device_dax (and dax_test unless told not to). */
export async function loadDax(k: Kernel, builtin: boolean, withTest = true): Promise<void> {
  const kos = await daxKos(k.config.version);
  await k.insmod(kos.dax.ko, { builtin, filename: "dax.ko" });
  await k.insmod(kos.device_dax.ko, { builtin, filename: "device_dax.ko" });
  if (withTest) await k.insmod(kos.dax_test.ko, { builtin, filename: "dax_test.ko" });
}
