// kemu build: Kbuild for one out-of-tree driver: bundle, modpost, write NAME.ko (and
// Module.symvers when the module exports symbols).

import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { build, BuildError } from "../build/build.ts";
import { isKernelVersion, KERNEL_VERSIONS, type KernelVersion } from "../../core/version.ts";
import { parse, UsageError, type Command } from "./command.ts";
import { isDriverSource } from "./driver-file.ts";

const HELP = `Usage: kemu build DRIVER.ts [options]

Build a driver into a module file, as Kbuild does: bundle DRIVER.ts and its relative imports
with esbuild (a driver imports only "kemu/kernel", "kemu/extern" and its own files), read its
MODULE_*() literals into .modinfo, check it as modpost does, and write NAME.ko. A module that
exports symbols gets its lines in Module.symvers next to it, for the modules that use them.

modpost's checks, with its wording:
  FATAL: modpost: GPL-incompatible module NAME.ko uses GPL-only symbol 'SYM'
  ERROR: "SYM" [NAME.ko] undefined!
  WARNING: modpost: missing MODULE_LICENSE() in NAME.o

Options:
  -o, --output FILE     where to write the module (default: NAME.ko next to DRIVER.ts);
                        a directory (existing, or ending in '/') gets NAME.ko
  --kernel V            kernel version to build for: ${KERNEL_VERSIONS.join(", ")} (default 5.0);
                        it sets vermagic and the export classes modpost checks against
  --name NAME           the module name (default: DRIVER's file name, '-' becoming '_')
  --modversions         CONFIG_MODVERSIONS: record symbol CRCs (__versions)
  --symvers FILE        Module.symvers of a module whose exports this one uses; repeatable
  --sign KEY.pem        sign the module with this Ed25519 private key (scripts/sign-file)
  --modpost-warn        KBUILD_MODPOST_WARN=1: undefined symbols are warnings, not errors
  -h, --help            this help

The same source and options give the same bytes, wherever the build runs.
Exit status: 0 built, 1 modpost or the bundler refused it, 2 bad usage.
`;

export const buildCommand: Command = {
  name: "build",
  summary: "build a driver's .ts source into NAME.ko (esbuild + modpost)",
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse("build", argv, {
      output: { type: "string", short: "o" },
      kernel: { type: "string" },
      name: { type: "string" },
      modversions: { type: "boolean" },
      symvers: { type: "string", multiple: true },
      sign: { type: "string" },
      "modpost-warn": { type: "boolean" },
    }, true);
    if (positionals.length !== 1) throw new UsageError(`build: expected one driver source, got ${positionals.length} (kemu build DRIVER.ts)`);
    const entry = positionals[0]!;
    if (!isDriverSource(entry)) throw new UsageError(`build: '${entry}' is not a driver source (.ts or .js); a built .ko needs no build`);
    const kernel = values.kernel ?? "5.0";
    if (!isKernelVersion(kernel)) throw new UsageError(`build: --kernel '${kernel}' is not a kernel kemu emulates (choose from ${KERNEL_VERSIONS.join(", ")})`);
    if (values.name !== undefined && !/^[A-Za-z0-9_]{1,55}$/.test(values.name)) {
      throw new UsageError(`build: --name '${values.name}' is not a module name (letters, digits and '_', at most 55)`);
    }
    const read = (what: string, file: string): string => {
      try {
        return readFileSync(file, "utf8");
      } catch (e) {
        throw new UsageError(`build: ${what} ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
      }
    };
    const symvers = (values.symvers ?? []).map((f) => read("--symvers", f));
    const signKey = values.sign === undefined ? undefined : read("--sign", values.sign);
    read("driver", entry);

    const show = (p: string) => {
      const rel = relative(process.cwd(), p);
      return rel && !rel.startsWith("..") ? rel : p;
    };
    process.stdout.write(`  BUNDLE  ${show(resolve(entry))}\n`);
    let r;
    try {
      r = await build({
        entry, kernel, symvers,
        ...(values.name !== undefined && { name: values.name }),
        ...(values.modversions && { modversions: true }),
        ...(signKey !== undefined && { signKey }),
        ...(values["modpost-warn"] && { modpostWarn: true }),
      });
    } catch (e) {
      if (!(e instanceof BuildError)) throw e;
      if (e.stage === "modpost") process.stdout.write("  MODPOST 1 modules\n");
      for (const w of e.warnings) process.stderr.write(w + "\n");
      for (const err of e.errors) process.stderr.write(err + "\n");
      for (const h of hints(e.errors, kernel)) process.stderr.write(`kemu build: ${h}\n`);
      return 1;
    }
    process.stdout.write("  MODPOST 1 modules\n");
    for (const w of r.warnings) process.stderr.write(w + "\n");
    const name = r.image.thisModule;
    // -o DIR (an existing directory, or a path ending in '/') puts NAME.ko in it.
    const o = values.output;
    const intoDir = o !== undefined && (/[/\\]$/.test(o) || (existsSync(o) && statSync(o).isDirectory()));
    const out = resolve(o === undefined ? join(dirname(resolve(entry)), `${name}.ko`) : intoDir ? join(o, `${name}.ko`) : o);
    try {
      mkdirSync(dirname(out), { recursive: true });
    } catch (e) {
      throw new UsageError(`build: -o ${o}: cannot create ${dirname(out)}: ${(e as NodeJS.ErrnoException).code === "EEXIST" ? "a file is in the way" : (e as Error).message}`);
    }
    writeFileSync(out, r.ko);
    process.stdout.write(`  LD [M]  ${show(out)}\n`);
    if (r.symvers) {
      // One Module.symvers per output directory, as Kbuild keeps one per M= directory:
      // this module's lines replace the ones it had there.
      const symversFile = join(dirname(out), "Module.symvers");
      let kept = "";
      try {
        kept = readFileSync(symversFile, "utf8").split("\n").filter((l) => l && l.split("\t")[2] !== name).map((l) => l + "\n").join("");
      } catch {
        // none yet
      }
      writeFileSync(symversFile, kept + r.symvers);
      process.stdout.write(`  SYMVERS ${show(symversFile)}\n`);
    }
    return 0;
  },
};

/** What to do about modpost's refusals: one line per kind of error. */
function hints(errors: string[], kernel: KernelVersion): string[] {
  const out: string[] = [];
  const gpl = errors.map((e) => /uses GPL-only symbol '(.+)'$/.exec(e)?.[1]).find(Boolean);
  if (gpl) {
    out.push(`'${gpl}' is exported GPL-only: a module using it needs a GPL-compatible MODULE_LICENSE() (docs/export-policy.md lists each version's exports)`);
  }
  const undef = errors.map((e) => /^ERROR: "(.+)" \[.+\] undefined!$/.exec(e)?.[1]).filter(Boolean);
  if (undef.length) {
    out.push(
      `${undef.map((u) => `"${u}"`).join(", ")}: not exported by ${kernel} (docs/export-policy.md lists what is); ` +
        "another module's export needs that module's Module.symvers (--symvers FILE)",
    );
  }
  return out;
}
