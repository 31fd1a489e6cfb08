// kemu check: does this driver load, kernel by kernel? For each version: boot a kernel,
// build the driver for it (modpost reports instead of stopping, so the loader's own checks
// run), insmod it, and report what the kernel said.

import { existsSync } from "node:fs";
import { Kernel } from "../../core/kernel.ts";
import { KernelError } from "../../core/errno.ts";
import { exportClass, kernelSymbol } from "../../core/module/ksymtab.ts";
import { isKernelVersion, KERNEL_VERSIONS, type KernelVersion } from "../../core/version.ts";
import { BuildError } from "../build/build.ts";
import { parse, UsageError, type Command } from "./command.ts";
import { moduleFile } from "./driver-file.ts";

const HELP = `Usage: kemu check DRIVER [options]

For each kernel version: boot a kernel, insmod DRIVER (a .ko, or a driver's .ts source,
built for that version), and report whether it loaded, which symbols were refused and why,
the taints, modpost's findings and the kernel log of the attempt.

A source is built with modpost reporting instead of stopping (GPL-only and undefined
symbols, as KBUILD_MODPOST_WARN=1 does for the latter), so that the kernel's own checks at
load time decide; modpost's lines are shown with the result.

Options:
  --kernel LIST        comma-separated versions (default: ${KERNEL_VERSIONS.join(",")})
  --with FILE          insmod FILE first: a module DRIVER uses (for a source, its
                       Module.symvers is used in the build); repeatable, loaded in order
  --json               print the results as JSON instead of a table
  -h, --help           this help

Exit status: 0 when every version loaded it, 1 when any refused it, 2 for bad usage.
`;

export interface RefusedSymbol {
  symbol: string;
  /** The kernel's line about it. */
  message: string;
  /** Why, from that version's symbol table. */
  reason: string;
}

export interface CheckResult {
  kernel: KernelVersion;
  /** The module's name (null when the file is not a module). */
  module: string | null;
  loaded: boolean;
  /** insmod's error, or modpost's refusal (null when loaded). */
  error: string | null;
  /** The errno insmod failed with, negative as the kernel returns it. */
  errno: number | null;
  /** Taint letters afterwards ("P", "O", ...), and print_tainted()'s line. */
  taints: string[];
  tainted: string;
  refused: RefusedSymbol[];
  /** modpost's lines for a source: warnings, or the errors that stopped the build. */
  modpost: string[];
  /** The kernel log of the attempt, as dmesg prints it. */
  dmesg: string[];
}

/** The symbols the kernel's lines name as refused, each with the reason behind it. */
function refusedSymbols(messages: string[], module: string, v: KernelVersion, license: string | null): RefusedSymbol[] {
  const out: RefusedSymbol[] = [];
  const prefix = `${module}: `;
  for (const message of messages) {
    if (!message.startsWith(prefix)) continue;
    const text = message.slice(prefix.length);
    let m = /^Unknown symbol (\S+) \(err -?\d+\)$/.exec(text);
    if (m) {
      const symbol = m[1]!;
      const cls = exportClass(symbol, v);
      const reason =
        cls === "EXPORT_SYMBOL_GPL" ? `${cls} in ${v}, and the module's license ${license === null ? "is missing" : `'${license}' is not GPL-compatible`}`
        : kernelSymbol(symbol) ? `${v} does not export it`
        : "neither the kernel nor a loaded module exports it";
      out.push({ symbol, message, reason });
      continue;
    }
    m = /^disagrees about version of symbol (\S+)$/.exec(text);
    if (m) out.push({ symbol: m[1]!, message, reason: "its CRC differs from the one the module was built against (modversions)" });
    m = /^no symbol version for (\S+)$/.exec(text);
    if (m) out.push({ symbol: m[1]!, message, reason: "the module carries no CRC for it" });
  }
  return out;
}

/** Boot `v`, load the --with modules, then the driver; what happened. */
export async function checkDriver(driver: string, v: KernelVersion, withFiles: readonly string[] = []): Promise<CheckResult> {
  const k = await Kernel.boot({ version: v });
  try {
    const symvers: string[] = [];
    for (const dep of withFiles) {
      const m = await moduleFile(dep, { kernel: v, symvers: [...symvers] });
      await k.insmod(m.file, { filename: m.filename });
      if (m.symvers) symvers.push(m.symvers);
    }
    const seq = k.log.nextSeq;
    const r: CheckResult = { kernel: v, module: null, loaded: false, error: null, errno: null, taints: [], tainted: "", refused: [], modpost: [], dmesg: [] };
    let license: string | null = null;
    try {
      const m = await moduleFile(driver, { kernel: v, symvers, licenseGate: "loader", modpostWarn: true });
      r.module = m.name;
      r.modpost = m.warnings;
      license = m.license;
      await k.insmod(m.file, { filename: m.filename });
      r.loaded = true;
    } catch (e) {
      if (e instanceof BuildError) {
        r.modpost = [...e.warnings, ...e.errors];
        r.error = "modpost refused to build it";
      } else if (e instanceof KernelError) {
        r.error = e.message;
        r.errno = -e.errno;
      } else throw e;
    }
    r.tainted = k.tainted();
    r.taints = [...r.tainted.replace(/^Tainted: |^Not tainted$/, "")].filter((c) => c !== " " && c !== "G");
    r.dmesg = k.log.lines({ since: seq });
    if (r.module) r.refused = refusedSymbols(k.log.messages(seq), r.module, v, license);
    return r;
  } finally {
    await k.shutdown();
  }
}

/** The results as a table, then each version's modpost lines and kernel log. */
export function formatResults(driver: string, results: readonly CheckResult[]): string {
  const rows = results.map((r) => [
    r.kernel,
    r.loaded ? "loaded" : "refused",
    r.taints.join(" ") || "-",
    r.refused.length ? r.refused.map((s) => `${s.symbol}: ${s.reason}`) : [r.loaded ? "-" : (r.error ?? "-")],
  ] as const);
  const w = [6, 7, 6].map((min, i) => Math.max(min, ...rows.map((row) => String(row[i]).length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c)).join("  ").trimEnd();
  const out = [`kemu check ${driver}`, "", line(["kernel", "result", "taints", "refused symbols / error"])];
  for (const [ver, res, taints, why] of rows) {
    out.push(line([ver, res, taints, why[0]!]));
    for (const more of why.slice(1)) out.push(line(["", "", "", more]));
  }
  for (const r of results) {
    out.push("", `${r.kernel}: ${r.loaded ? "loaded" : `refused: ${r.error}`}`);
    for (const m of r.modpost) out.push(`  ${m.replaceAll("\n", "\n  ")}`);
    for (const d of r.dmesg) out.push(`  ${d}`);
  }
  return out.join("\n") + "\n";
}

export const checkCommand: Command = {
  name: "check",
  summary: "does a driver load? per kernel version: verdict, refused symbols, taints",
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse("check", argv, {
      kernel: { type: "string" },
      with: { type: "string", multiple: true },
      json: { type: "boolean" },
    }, true);
    if (positionals.length !== 1) throw new UsageError(`check: expected one driver (a .ts source or a .ko), got ${positionals.length}`);
    const versions = (values.kernel ?? KERNEL_VERSIONS.join(",")).split(",").map((s) => s.trim()).filter(Boolean);
    for (const v of versions) {
      if (!isKernelVersion(v)) throw new UsageError(`check: --kernel: '${v}' is not a kernel kemu emulates (choose from ${KERNEL_VERSIONS.join(", ")})`);
    }
    if (versions.length === 0) throw new UsageError("check: --kernel names no version");
    const driver = positionals[0]!;
    for (const f of [driver, ...(values.with ?? [])]) {
      if (!existsSync(f)) throw new UsageError(`check: ${f}: no such file`);
    }
    const results: CheckResult[] = [];
    for (const v of versions as KernelVersion[]) results.push(await checkDriver(driver, v, values.with ?? []));
    process.stdout.write(values.json ? JSON.stringify({ driver, results }, null, 2) + "\n" : formatResults(driver, results));
    return results.every((r) => r.loaded) ? 0 : 1;
  },
};
