// What `--insmod`, `--with` and `kemu check` accept: a built module file, or a driver's
// source, which is built first for the kernel it is going into.

import { readFileSync } from "node:fs";
import { get_modinfo, parseKo, type KoImage } from "../../core/module/ko.ts";
import { build, moduleSymversOf, type BuildOptions } from "../build/build.ts";

export function isDriverSource(path: string): boolean {
  return /\.[cm]?[jt]s$/.test(path);
}

export interface ModuleFile {
  /** What Kernel.insmod() takes: the path of a .ko it could not read (insmod reports
   *  that as kmod does), or the module's bytes. */
  file: string | Uint8Array;
  /** The name insmod's messages use: the path for a .ko, NAME.ko for a built source. */
  filename: string;
  /** The module's name, when the file could be read as a module. */
  name: string | null;
  /** Its MODULE_LICENSE(), or null when it has none (or the file is not a module). */
  license: string | null;
  /** The module's exports as Module.symvers lines (empty when it exports nothing). */
  symvers: string;
  /** modpost's warnings, for a built source. */
  warnings: string[];
}

/** The module at `path` for a kernel of `opts.kernel`, built first when it is a source.
 *  Throws BuildError when modpost refuses the source. */
export async function moduleFile(path: string, opts: Omit<BuildOptions, "entry">): Promise<ModuleFile> {
  if (isDriverSource(path)) {
    const r = await build({ ...opts, entry: path });
    return { ...described(r.image), file: r.ko, filename: `${r.image.thisModule}.ko`, symvers: r.symvers, warnings: r.warnings };
  }
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch {
    return { file: path, filename: path, name: null, license: null, symvers: "", warnings: [] };
  }
  let img: KoImage;
  try {
    img = parseKo(bytes);
  } catch {
    // Not a module: insmod says so in its own words.
    return { file: bytes, filename: path, name: null, license: null, symvers: "", warnings: [] };
  }
  return { ...described(img), file: bytes, filename: path, symvers: moduleSymversOf(img), warnings: [] };
}

function described(img: KoImage): { name: string; license: string | null } {
  return { name: img.thisModule, license: get_modinfo(img.modinfo, "license") ?? null };
}
