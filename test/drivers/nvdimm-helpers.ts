// The nvdimm stack for tests: libnvdimm, nfit, nd_e820 and nd_pmem built in-tree for a
// version (once per run), and loaded isolated or built in.

import { fileURLToPath } from "node:url";
import type { Kernel } from "../../core/kernel.ts";
import type { KernelVersion } from "../../core/version.ts";
import type { BuildResult } from "../../sdk/build/build.ts";
import { buildDriver } from "../helpers/build.ts";

const src = (f: string) => fileURLToPath(new URL(`../../drivers/nvdimm/${f}`, import.meta.url));

export interface NdModules {
  libnvdimm: BuildResult;
  nfit: BuildResult;
  nd_e820: BuildResult;
  nd_pmem: BuildResult;
}

/** One module of the stack for `version`; all but libnvdimm are built against its exports. */
export async function ndModule(name: keyof NdModules, version: KernelVersion): Promise<BuildResult> {
  const libnvdimm = await buildDriver(src("libnvdimm.ts"), version);
  return name === "libnvdimm" ? libnvdimm : buildDriver(src(`${name}.ts`), version, [libnvdimm.symvers]);
}

export async function ndModules(version: KernelVersion): Promise<NdModules> {
  const [libnvdimm, nfit, nd_e820, nd_pmem] = await Promise.all((["libnvdimm", "nfit", "nd_e820", "nd_pmem"] as const).map((n) => ndModule(n, version)));
  return { libnvdimm: libnvdimm!, nfit: nfit!, nd_e820: nd_e820!, nd_pmem: nd_pmem! };
}

/** insmod the modules named, in order, all isolated or all built in. */
export async function load(k: Kernel, builtin: boolean, ...names: (keyof NdModules)[]): Promise<void> {
  for (const n of names) await k.insmod((await ndModule(n, k.config.version)).ko, { builtin, filename: `${n}.ko` });
}

/** Device names on the kernel's device list, with the driver bound to each: "pfn0.1[nd_pmem]". */
export function devices(k: Kernel): string[] {
  return k.base.devices.map((d) => `${d.name}${d.driver ? `[${d.driver.name}]` : ""}`);
}

export const MODES: [KernelVersion, boolean][] = [
  ["5.0", false],
  ["5.0", true],
  ["4.20", false],
  ["4.20", true],
];
