// Kbuild for the in-tree drivers (drivers/): every driver source that declares a
// MODULE_LICENSE is a module; each is built for each kernel version into
// OUT/<version>/<name>.ko, as `make modules` plus `make modules_install` would lay out
// /lib/modules/<release>/. Modules that use another module's exports are built after it, with
// its Module.symvers (Kbuild sees every in-tree export at once). depmod's modules.dep and
// modules.alias go next to them, for modprobe and for the autoload at boot (core/kernel/kmod.ts).

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { KERNEL_VERSIONS, type KernelVersion } from "../../core/version.ts";
import { get_modinfo } from "../../core/module/ko.ts";
import { build, BuildError, type BuildResult } from "./build.ts";

/** The versions in-tree drivers are built for (the HMM API they use is 4.20 and 5.0). */
export const INTREE_VERSIONS: readonly KernelVersion[] = KERNEL_VERSIONS.filter((v) => v !== "4.19");

export interface InTreeModule {
  name: string;
  /** The source, relative to the tree's root. */
  source: string;
  file: string;
}

/** Module entry files under `dir`: .ts files with a MODULE_LICENSE, sorted. */
function moduleSources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith(".ts") || e.name.endsWith(".d.ts")) continue;
    const path = join(e.parentPath, e.name);
    if (/\bMODULE_LICENSE\s*\(/.test(readFileSync(path, "utf8"))) out.push(path);
  }
  return out.sort();
}

/**
 * Build every module under `root`/drivers for `version` into `out`/`version`. Throws a
 * BuildError naming the modules that could not be built.
 */
export async function buildInTree(root: string, out: string, version: KernelVersion): Promise<InTreeModule[]> {
  const dir = join(out, version);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let pending = moduleSources(join(root, "drivers"));
  const built = new Map<string, { source: string; r: BuildResult }>();
  // Each pass builds what the exports known so far allow; a pass without progress ends it.
  for (;;) {
    const symvers = [...built.values()].map((b) => b.r.symvers).filter(Boolean);
    const failed: { source: string; e: BuildError }[] = [];
    for (const source of pending) {
      try {
        const r = await build({ entry: source, kernel: version, intree: true, symvers });
        built.set(r.image.thisModule, { source, r });
      } catch (e) {
        if (!(e instanceof BuildError)) throw e;
        failed.push({ source, e });
      }
    }
    if (failed.length === 0) break;
    if (failed.length === pending.length) {
      const errors = failed.flatMap(({ source, e }) => e.errors.map((m) => `${relative(root, source)}: ${m}`));
      throw new BuildError(errors, [], "modpost");
    }
    pending = failed.map((f) => f.source);
  }
  const mods: InTreeModule[] = [];
  for (const [name, { source, r }] of [...built].sort(([a], [b]) => a.localeCompare(b))) {
    const file = join(dir, `${name}.ko`);
    writeFileSync(file, r.ko);
    mods.push({ name, source: relative(root, source), file });
  }
  depmod(dir, new Map([...built].map(([name, { r }]) => [name, r.image.modinfo])));
  writeFileSync(join(dir, "Module.symvers"), [...built.values()].map((b) => b.r.symvers).join(""));
  return mods;
}

/**
 * depmod: modules.dep ("name.ko: dep.ko dep2.ko", dependencies in load-last-first order as
 * depmod writes them) and modules.alias ("alias PATTERN name").
 */
function depmod(dir: string, modinfo: Map<string, string>): void {
  const depsOf = (name: string): string[] => (get_modinfo(modinfo.get(name) ?? "", "depends") ?? "").split(",").filter(Boolean);
  const dep: string[] = [];
  for (const name of modinfo.keys()) {
    // Every module it needs, directly or not, each once, each after the ones it needs (a
    // depth-first post-order); written reversed, the deepest last, as modprobe reads it back.
    const seen = new Set<string>([name]);
    const order: string[] = [];
    const visit = (m: string): void => {
      for (const d of depsOf(m)) {
        if (seen.has(d)) continue;
        seen.add(d);
        visit(d);
        order.push(d);
      }
    };
    visit(name);
    dep.push(`${name}.ko:${order.reverse().map((d) => ` ${d}.ko`).join("")}\n`);
  }
  writeFileSync(join(dir, "modules.dep"), dep.join(""));
  const alias: string[] = [];
  for (const [name, info] of modinfo) {
    for (const entry of info.split("\0")) if (entry.startsWith("alias=")) alias.push(`alias ${entry.slice(6)} ${name}\n`);
  }
  writeFileSync(join(dir, "modules.alias"), "# Aliases extracted from modules themselves.\n" + alias.join(""));
}
