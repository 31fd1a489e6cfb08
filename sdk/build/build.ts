// kemu's Kbuild: bundle a driver with esbuild, find the exact kernel functions it uses (each
// kemu/kernel name is its own virtual module, so tree-shaking leaves only what is called),
// write .modinfo from its MODULE_*() literals, check it as modpost does, and emit NAME.ko.

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename, dirname, extname, resolve } from "node:path";
import * as esbuild from "esbuild";
import { KERNEL_CONSTANTS } from "../../core/module/constants.ts";
import { KERNEL_APIS, kernelApi } from "../../core/module/apis/index.ts";
import { codeImports, serializeKo, signKo, type KoImage } from "../../core/module/ko.ts";
import { exportClass, kernelSymbol, symbolCrc, symversLine } from "../../core/module/ksymtab.ts";
import { license_is_gpl_compatible } from "../../core/module/license.ts";
import { SHIM_MACROS } from "../../core/module/shim.ts";
import { crc32 } from "node:zlib";
import { profileFor, type KernelVersion } from "../../core/version.ts";
import { nameExports, scanSource } from "./modinfo.ts";

export interface BuildOptions {
  /** The driver's entry file (.ts or .js). */
  entry: string;
  /** Kernel version to build against (vermagic, export classes); default 5.0. */
  kernel?: KernelVersion;
  /** KBUILD_MODNAME; default: the entry file's name with '-' turned into '_'. */
  name?: string;
  /** CONFIG_MODVERSIONS: record CRCs in __versions and for exports. */
  modversions?: boolean;
  /** An in-tree build: modinfo gets intree=Y. */
  intree?: boolean;
  /** Sign the module with this Ed25519 private key (PEM). */
  signKey?: string;
  /** Module.symvers of other modules whose exports this one uses (kemu/extern). */
  symvers?: string[];
  /** KBUILD_MODPOST_WARN: undefined symbols are warnings, not errors. */
  modpostWarn?: boolean;
  /**
   * Who refuses a GPL-incompatible module's use of a GPL-only symbol: "modpost" (the default)
   * stops the build as modpost does; "loader" keeps modpost's line as a warning and builds the
   * module anyway, so that the kernel's own check at insmod decides (kemu check does this).
   */
  licenseGate?: "modpost" | "loader";
}

export interface BuildResult {
  ko: Uint8Array;
  image: KoImage;
  /** The kernel symbols the module needs, as modpost saw them. */
  symbols: string[];
  /** This module's exports as Module.symvers lines, for the modules that import them. */
  symvers: string;
  warnings: string[];
}

export class BuildError extends Error {
  readonly errors: string[];
  readonly warnings: string[];
  /** Which step refused the driver: esbuild (bundling its sources) or modpost. */
  readonly stage: "bundle" | "modpost";
  constructor(errors: string[], warnings: string[], stage: "bundle" | "modpost") {
    super(errors.join("\n"));
    this.name = "BuildError";
    this.errors = errors;
    this.warnings = warnings;
    this.stage = stage;
  }
}

const KERNEL_NAMES = new Set<string>([...KERNEL_APIS.map((a) => a.name), ...Object.keys(KERNEL_CONSTANTS), ...Object.keys(SHIM_MACROS), "iomem_resource"]);

/** One Module.symvers line: crc, symbol, module, export type (4.19-5.3 layout). */
interface SymversEntry {
  crc: number;
  module: string;
  cls: string;
}

function parseSymvers(text: string): Map<string, SymversEntry> {
  const out = new Map<string, SymversEntry>();
  for (const line of text.split("\n")) {
    const [crc, sym, module, cls] = line.split("\t");
    if (crc && sym && module && cls) out.set(sym, { crc: parseInt(crc, 16), module, cls });
  }
  return out;
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const version = opts.kernel ?? "5.0";
  const entry = resolve(opts.entry);
  const name = opts.name ?? basename(entry, extname(entry)).replaceAll("-", "_");
  const errors: string[] = [];
  const warnings: string[] = [];
  const sources = new Map<string, string>();

  // Names the driver takes from kemu/kernel that the kernel does not provide: exported by the
  // virtual kemu/kernel on a second pass, so that they stay imports and modpost reports them
  // as undefined (an ERROR, or a WARNING under KBUILD_MODPOST_WARN) like any other symbol.
  const unknown = new Set<string>();
  const kernelPlugin: esbuild.Plugin = {
    name: "kemu-kernel",
    setup(b) {
      b.onResolve({ filter: /^kemu\/kernel$/ }, (a) =>
        a.namespace === "ksym" ? { path: "kemu/kernel", external: true } : { path: "index", namespace: "kemu-kernel", sideEffects: false },
      );
      b.onResolve({ filter: /^kemu\/extern$/ }, () => ({ path: "kemu/kernel", external: true }));
      b.onResolve({ filter: /^ksym:/ }, (a) => ({ path: a.path.slice(5), namespace: "ksym", sideEffects: false }));
      b.onResolve({ filter: /^[^./]/ }, (a) => {
        if (a.namespace !== "file") return undefined;
        return { errors: [{ text: `a driver may import only "kemu/kernel" (and "kemu/extern" for other modules' symbols) and its own relative files, not "${a.path}"` }] };
      });
      b.onLoad({ filter: /.*/, namespace: "kemu-kernel" }, () => ({
        loader: "js",
        contents: [...KERNEL_NAMES, ...unknown].map((n) => `export { default as ${n} } from "ksym:${n}";`).join("\n"),
      }));
      b.onLoad({ filter: /.*/, namespace: "ksym" }, (a) => ({ loader: "js", contents: `export { ${a.path} as default } from "kemu/kernel";` }));
      b.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (a) => {
        const src = await readFile(a.path, "utf8");
        sources.set(a.path, src);
        return { contents: nameExports(src), loader: a.path.endsWith("ts") ? "ts" : "js", resolveDir: dirname(a.path) };
      });
    },
  };
  const bundle = () =>
    esbuild.build({
      entryPoints: [entry],
      // Paths in the output are relative to the driver, so a build is the same anywhere.
      absWorkingDir: dirname(entry),
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      treeShaking: true,
      legalComments: "none",
      logLevel: "silent",
      plugins: [kernelPlugin],
    });
  // A named import of a missing name fails the bundle; a namespace member (k.name) warns.
  const MISSING = /^(?:No matching export in "kemu-kernel:index" for import|Import) "([^"]+)"(?: will always be undefined because there is no matching export in "kemu-kernel:index")?$/;

  let out: esbuild.BuildResult<{ write: false }> | null = null;
  for (let pass = 0; pass < 2 && !out; pass++) {
    try {
      const r = await bundle();
      const missing = r.warnings.map((w) => MISSING.exec(w.text)?.[1]).filter((n): n is string => n !== undefined && !unknown.has(n));
      if (missing.length === 0) out = r;
      for (const n of missing) unknown.add(n);
    } catch (e) {
      const f = e as esbuild.BuildFailure;
      const missing = (f.errors ?? []).map((m) => MISSING.exec(m.text)?.[1]);
      if (pass === 0 && f.errors?.length && missing.every((n) => n !== undefined)) {
        for (const n of missing) unknown.add(n!);
        continue;
      }
      for (const m of f.errors ?? []) errors.push(m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : m.text);
      throw new BuildError(errors.length ? errors : [String(e)], warnings, "bundle");
    }
  }
  if (!out) throw new BuildError([`kemu/kernel names could not be resolved: ${[...unknown].join(", ")}`], warnings, "bundle");
  const code = out.outputFiles[0]!.text;

  // .modinfo and __ksymtab from the sources, in file order.
  const modinfo: [string, string][] = [];
  const exports: KoImage["exports"] = [];
  for (const [file, src] of sources) {
    const info = scanSource(src, file);
    errors.push(...info.errors);
    modinfo.push(...info.modinfo);
    for (const e of info.exports) exports.push({ name: e.name, class: e.class, crc: opts.modversions ? crc32(e.name) : null });
  }

  // The symbols the module needs: those of each kernel function it calls, then externs.
  const used = codeImports(code);
  const undefinedSymbols: string[] = [];
  const externs: string[] = [];
  for (const n of used) {
    const api = kernelApi(n);
    if (api) for (const s of api.symbols) if (!undefinedSymbols.includes(s)) undefinedSymbols.push(s);
    if (n === "iomem_resource" && !undefinedSymbols.includes(n)) undefinedSymbols.push(n);
    if (!KERNEL_NAMES.has(n)) externs.push(n);
  }
  const imported = new Map<string, SymversEntry>();
  for (const text of opts.symvers ?? []) for (const [k, v] of parseSymvers(text)) imported.set(k, v);

  // modpost
  const licenses = modinfo.filter(([t]) => t === "license").map(([, v]) => v.split("\0")[0]!);
  const gplCompatible = licenses.length > 0 && licenses.every(license_is_gpl_compatible);
  // 4.19-5.0 modpost only warns about a missing MODULE_LICENSE() (an error from 5.11), and
  // then does not hold GPL-only symbols against the module.
  if (licenses.length === 0) warnings.push(`WARNING: modpost: missing MODULE_LICENSE() in ${name}.o\nsee include/linux/module.h for more information`);
  const depends = new Set<string>();
  for (const s of [...undefinedSymbols, ...externs]) {
    const cls = kernelSymbol(s) ? exportClass(s, version) : imported.get(s)?.cls;
    if (!cls) {
      const line = `${opts.modpostWarn ? "WARNING" : "ERROR"}: "${s}" [${name}.ko] undefined!`;
      (opts.modpostWarn ? warnings : errors).push(line);
      continue;
    }
    const owner = imported.get(s)?.module;
    if (owner && owner !== "vmlinux") depends.add(basename(owner));
    if (licenses.length > 0 && !gplCompatible) {
      // ≤5.10 modpost: fatal() at the first GPL-only symbol (all errors are listed from 5.11).
      if (cls === "EXPORT_SYMBOL_GPL") {
        const line = `FATAL: modpost: GPL-incompatible module ${name}.ko uses GPL-only symbol '${s}'`;
        if (opts.licenseGate === "loader") {
          if (!warnings.some((w) => w.startsWith("FATAL:"))) warnings.push(line);
          continue;
        }
        errors.push(line);
        break;
      }
      if (cls === "EXPORT_SYMBOL_GPL_FUTURE") warnings.push(`WARNING: modpost: GPL-incompatible module ${name}.ko uses future GPL-only symbol '${s}'`);
    }
  }
  if (errors.length) throw new BuildError(errors, warnings, "modpost");

  const vermagic = `${profileFor(version).release} SMP mod_unload ${opts.modversions ? "modversions " : ""}`;
  const srcversion = createHash("sha256").update([...sources.values()].join("\0")).digest("hex").slice(0, 23).toUpperCase();
  const entries: [string, string][] = [
    ...[...modinfo].reverse(),
    ["srcversion", srcversion],
    ["depends", [...depends].join(",")],
    ["retpoline", "Y"],
    ...(opts.intree ? ([["intree", "Y"]] as [string, string][]) : []),
    ["name", name],
    ["vermagic", vermagic],
  ];
  const versions = opts.modversions
    ? [
        { name: "module_layout", crc: symbolCrc(kernelSymbol("module_layout")!, version) },
        ...undefinedSymbols.map((s) => ({ name: s, crc: symbolCrc(kernelSymbol(s)!, version) })),
        ...externs.filter((s) => imported.has(s)).map((s) => ({ name: s, crc: imported.get(s)!.crc })),
      ]
    : null;
  const image: KoImage = {
    thisModule: name,
    modinfo: entries.map(([t, v]) => `${t}=${v}`).join("\0"),
    undefinedSymbols: [...undefinedSymbols, ...externs].map((s) => ({ name: s, weak: false })),
    versions,
    exports,
    imports: used,
    code,
  };
  let ko = serializeKo(image);
  if (opts.signKey) ko = signKo(ko, opts.signKey);
  return { ko, image, symbols: [...undefinedSymbols, ...externs], symvers: moduleSymversOf(image), warnings };
}

/** A module's exports as Module.symvers lines (empty when it exports nothing). */
export function moduleSymversOf(img: KoImage): string {
  return img.exports.map((e) => symversLine(e.crc, e.name, img.thisModule, e.class) + "\n").join("");
}

