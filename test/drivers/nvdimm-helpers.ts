// The nvdimm stack for tests: libnvdimm, nfit, nd_e820 and nd_pmem built in-tree for a
// version (once per run), and loaded isolated or built in.

import { fileURLToPath } from "node:url";
import type { Kernel } from "../../core/kernel.ts";
import type { KernelVersion } from "../../core/version.ts";
import { build, type BuildResult } from "../../sdk/build/build.ts";

const src = (f: string) => fileURLToPath(new URL(`../../drivers/nvdimm/${f}`, import.meta.url));

export interface NdModules {
  libnvdimm: BuildResult;
  nfit: BuildResult;
  nd_e820: BuildResult;
  nd_pmem: BuildResult;
}

const cache = new Map<KernelVersion, Promise<NdModules>>();

export function ndModules(version: KernelVersion): Promise<NdModules> {
  let p = cache.get(version);
  if (!p) {
    p = (async () => {
      const libnvdimm = await build({ entry: src("libnvdimm.ts"), kernel: version, intree: true });
      const symvers = [libnvdimm.symvers];
      const [nfit, nd_e820, nd_pmem] = await Promise.all(
        ["nfit.ts", "nd_e820.ts", "nd_pmem.ts"].map((f) => build({ entry: src(f), kernel: version, intree: true, symvers })),
      );
      return { libnvdimm, nfit: nfit!, nd_e820: nd_e820!, nd_pmem: nd_pmem! };
    })();
    cache.set(version, p);
  }
  return p;
}

/** insmod the modules named, in order, all isolated or all built in. */
export async function load(k: Kernel, builtin: boolean, ...names: (keyof NdModules)[]): Promise<void> {
  const mods = await ndModules(k.config.version);
  for (const n of names) await k.insmod(mods[n].ko, { builtin, filename: `${n}.ko` });
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
