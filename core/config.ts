// Boot configuration: what Kernel.boot() accepts, parsed and checked field by field.
// A bad value fails with an error that names the field and says what would be accepted.

import { createPublicKey } from "node:crypto";
import { fileURLToPath } from "node:url";
import { EINVAL, KernelError } from "./errno.ts";
import { isKernelVersion, KERNEL_VERSIONS, type KernelVersion } from "./version.ts";

/** `kemu modules` installs the in-tree drivers here (build/drivers of the tree). */
export const MODULES_DIR = fileURLToPath(new URL("../build/drivers", import.meta.url));

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const SZ_1M = 1 << 20;
export const SZ_1G = 1 << 30;

export type Size = number | string;

export interface PmemConfig {
  /** Size of the region: bytes or a memparse string ("4G"); a multiple of 4 KiB. */
  size: Size;
  /** Physical start address; by default regions follow the RAM, section (128 MiB) aligned. */
  start?: Size;
  /** Backing file (used by the nd_pmem driver); created on demand. */
  file?: string;
  /** e820 type 12 "Persistent Memory (legacy)" instead of type 7. */
  legacy?: boolean;
  /**
   * What `ndctl create-namespace -m MODE` would have written into the namespace's info block
   * (default "fsdax"): "fsdax" (a pfn info block: /dev/pmemN with struct pages), "devdax" (a
   * dax info block, for dax_pmem) or "raw" (none: /dev/pmemN without struct pages).
   */
  mode?: PmemMode;
  /**
   * `ndctl create-namespace --align` for fsdax and devdax: "4K", "2M" (the default, PMD_SIZE)
   * or, for devdax only, "1G". kemu maps 4 KiB pages only, so a devdax namespace whose pages a
   * process is to touch needs "4K" (device-dax refuses faults smaller than its alignment).
   */
  align?: Size;
}

export const PMEM_MODES = ["fsdax", "devdax", "raw"] as const;
export type PmemMode = (typeof PMEM_MODES)[number];

export interface GpuConfig {
  /** VRAM size: bytes or a memparse string ("512M"); a multiple of 2 MiB, at least 2M. */
  vram: Size;
}

export interface ReservedConfig {
  start: Size;
  size: Size;
}

export interface BootConfig {
  /** Kernel version profile: "4.20" or "5.0" (default "5.0"). */
  version?: string;
  /** System RAM size (default "1G"), a multiple of 1 MiB, at least 64M. */
  memory?: Size;
  /** e820 "Persistent Memory" regions. */
  pmem?: PmemConfig[];
  /** e820 reserved ranges; where they overlap RAM they punch holes in it. */
  reserved?: ReservedConfig[];
  /** PCI GPUs (NVIDIA, nouveau-like), one function each on bus 0000:00 (core/base/pci.ts). */
  gpus?: GpuConfig[];
  /** x86_phys_bits: iomem_resource ends at 2^physBits - 1 (default 46, 36..52). */
  physBits?: number;
  /** Seed for everything random (oops ids, hashes); default 0. */
  seed?: number;
  /** log_buf_len in bytes (default 128 KiB). */
  logBufLen?: Size;
  /** Echo each printk line as it is stored (console=...), or a function that receives them. */
  console?: boolean | ((line: string) => void);
  /** CONFIG_DEBUG_VM: VM_BUG_ON checks on page refcounts (default true). */
  debugVm?: boolean;
  /** Kconfig options of the module loader (all off by default). */
  kconfig?: Partial<Record<KconfigOption, boolean>>;
  /** Public keys (PEM, Ed25519) the kernel trusts for module signatures. */
  moduleSigKeys?: string[];
  /** Heap limit of each isolated module (default 64M). */
  moduleHeap?: Size;
  /** Time limit of each call into an isolated module, in ms (default 1000). */
  moduleTimeoutMs?: number;
  /** udev: modprobe the in-tree drivers of the configured devices at boot, and of each device
   *  added later (default true). */
  autoload?: boolean;
  /** Where `kemu modules` installed the in-tree drivers (default: build/drivers of the tree). */
  modulesDir?: string;
}

export const KCONFIG_OPTIONS = ["MODULE_SIG", "MODULE_SIG_FORCE", "MODVERSIONS", "MODULE_FORCE_LOAD", "MODULE_FORCE_UNLOAD"] as const;
export type KconfigOption = (typeof KCONFIG_OPTIONS)[number];

export interface ResolvedPmem {
  index: number;
  start: number;
  size: number;
  file: string | undefined;
  legacy: boolean;
  mode: PmemMode;
  align: number;
}

export interface ResolvedGpu {
  index: number;
  vram: number;
}

export interface ResolvedConfig {
  version: KernelVersion;
  memory: number;
  pmem: ResolvedPmem[];
  reserved: { index: number; start: number; size: number }[];
  gpus: ResolvedGpu[];
  physBits: number;
  seed: number;
  logBufLen: number;
  console: ((line: string) => void) | undefined;
  debugVm: boolean;
  kconfig: Record<KconfigOption, boolean>;
  moduleSigKeys: string[];
  moduleHeapMiB: number;
  moduleTimeoutMs: number;
  autoload: boolean;
  modulesDir: string;
}

/** A boot configuration error; `field` names the offending key, e.g. "pmem[1].size". */
export class ConfigError extends KernelError {
  readonly field: string;
  constructor(field: string, message: string) {
    super(EINVAL, `boot config: ${field}: ${message}`);
    this.name = "ConfigError";
    this.field = field;
  }
}

const SUFFIX_SHIFT: Record<string, number> = { K: 10, M: 20, G: 30, T: 40, P: 50, E: 60 };

/**
 * memparse() as lib/cmdline.c has it: a number (0x hex, 0 octal, else decimal) with an
 * optional K/M/G/T/P/E suffix. Returns undefined for anything else.
 */
export function memparse(s: string): number | undefined {
  const m = /^\s*(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kKmMgGtTpPeE]?)\s*$/.exec(s);
  if (!m) return undefined;
  const digits = m[1]!;
  const base = /^0[xX]/.test(digits) ? 16 : digits.length > 1 && digits[0] === "0" ? 8 : 10;
  const body = base === 16 ? digits.slice(2) : digits;
  const value = Number.parseInt(body || "0", base) * 2 ** (SUFFIX_SHIFT[m[2]!.toUpperCase()] ?? 0);
  return Number.isSafeInteger(value) ? value : undefined;
}

function size(field: string, v: unknown): number {
  let n: number | undefined;
  if (typeof v === "number") n = Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  else if (typeof v === "string") n = memparse(v);
  if (n === undefined) {
    throw new ConfigError(field, `${JSON.stringify(v)} is not a size (bytes, or a number with K, M, G, T, P or E, e.g. "4G")`);
  }
  return n;
}

function aligned(field: string, n: number, align: number, what: string): void {
  if (n % align !== 0) throw new ConfigError(field, `${hex(n)} is not a multiple of ${what}`);
}

function checkKeys(field: string, obj: object, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      const where = field ? `${field}.${key}` : key;
      throw new ConfigError(where, `unknown key (expected one of: ${allowed.join(", ")})`);
    }
  }
}

function plainObject(field: string, v: unknown): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ConfigError(field, `expected an object, got ${JSON.stringify(v)}`);
  }
  return v as Record<string, unknown>;
}

function list(field: string, v: unknown): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ConfigError(field, `expected a list, got ${JSON.stringify(v)}`);
  return v;
}

export function hex(n: number): string {
  return "0x" + n.toString(16);
}

const TOP_KEYS = [
  "version", "memory", "pmem", "reserved", "gpus", "physBits", "seed", "logBufLen", "console", "debugVm", "kconfig", "moduleSigKeys",
  "moduleHeap", "moduleTimeoutMs", "autoload", "modulesDir",
] as const;

/** Parse and check a boot configuration; throws ConfigError naming the first bad field. */
export function resolveConfig(input: BootConfig = {}): ResolvedConfig {
  const cfg = plainObject("config", input);
  checkKeys("", cfg, TOP_KEYS);

  const version = cfg["version"] ?? "5.0";
  if (!isKernelVersion(version)) {
    throw new ConfigError("version", `unknown kernel version ${JSON.stringify(version)} (known: ${KERNEL_VERSIONS.join(", ")})`);
  }

  const memory = size("memory", cfg["memory"] ?? "1G");
  aligned("memory", memory, SZ_1M, "1 MiB");
  if (memory < 64 * SZ_1M) throw new ConfigError("memory", `${memory / SZ_1M}M is too small: the kernel image and memmap need at least 64M`);

  const physBits = cfg["physBits"] ?? 46;
  if (typeof physBits !== "number" || !Number.isInteger(physBits) || physBits < 36 || physBits > 52) {
    throw new ConfigError("physBits", `${JSON.stringify(physBits)} is not an integer from 36 to 52`);
  }

  const pmem = list("pmem", cfg["pmem"]).map((p, index): ResolvedPmem => {
    const field = `pmem[${index}]`;
    const o = plainObject(field, p);
    checkKeys(field, o, ["size", "start", "file", "legacy", "mode", "align"]);
    if (o["size"] === undefined) throw new ConfigError(`${field}.size`, "missing (e.g. \"4G\")");
    const sz = size(`${field}.size`, o["size"]);
    if (sz === 0) throw new ConfigError(`${field}.size`, "must not be 0");
    aligned(`${field}.size`, sz, PAGE_SIZE, "4 KiB (the page size)");
    let start = -1;
    if (o["start"] !== undefined) {
      start = size(`${field}.start`, o["start"]);
      aligned(`${field}.start`, start, PAGE_SIZE, "4 KiB (the page size)");
    }
    const file = o["file"];
    if (file !== undefined && (typeof file !== "string" || file === "")) {
      throw new ConfigError(`${field}.file`, `expected a file name, got ${JSON.stringify(file)}`);
    }
    const legacy = o["legacy"] ?? false;
    if (typeof legacy !== "boolean") throw new ConfigError(`${field}.legacy`, "expected true or false");
    const mode = o["mode"] ?? "fsdax";
    if (!PMEM_MODES.includes(mode as PmemMode)) {
      throw new ConfigError(`${field}.mode`, `${JSON.stringify(mode)} is not a namespace mode (expected one of: ${PMEM_MODES.join(", ")})`);
    }
    const align = size(`${field}.align`, o["align"] ?? "2M");
    const aligns = mode === "devdax" ? [PAGE_SIZE, 2 * SZ_1M, SZ_1G] : [PAGE_SIZE, 2 * SZ_1M];
    if (!aligns.includes(align)) {
      throw new ConfigError(`${field}.align`, `${hex(align)} is not an alignment ndctl offers for ${mode} (${mode === "devdax" ? "4K, 2M or 1G" : "4K or 2M"})`);
    }
    return { index, start, size: sz, file: file as string | undefined, legacy, mode: mode as PmemMode, align };
  });

  const reserved = list("reserved", cfg["reserved"]).map((r, index) => {
    const field = `reserved[${index}]`;
    const o = plainObject(field, r);
    checkKeys(field, o, ["start", "size"]);
    if (o["start"] === undefined) throw new ConfigError(`${field}.start`, "missing");
    if (o["size"] === undefined) throw new ConfigError(`${field}.size`, "missing");
    const start = size(`${field}.start`, o["start"]);
    const sz = size(`${field}.size`, o["size"]);
    aligned(`${field}.start`, start, PAGE_SIZE, "4 KiB (the page size)");
    aligned(`${field}.size`, sz, PAGE_SIZE, "4 KiB (the page size)");
    if (sz === 0) throw new ConfigError(`${field}.size`, "must not be 0");
    return { index, start, size: sz };
  });

  const gpus = list("gpus", cfg["gpus"]).map((g, index): ResolvedGpu => {
    const field = `gpus[${index}]`;
    const o = plainObject(field, g);
    checkKeys(field, o, ["vram"]);
    if (o["vram"] === undefined) throw new ConfigError(`${field}.vram`, 'missing (e.g. "512M")');
    const vram = size(`${field}.vram`, o["vram"]);
    // nouveau_dmem hands VRAM out in 2 MiB chunks (DMEM_CHUNK_SIZE).
    aligned(`${field}.vram`, vram, 2 * SZ_1M, "2 MiB");
    if (vram < 2 * SZ_1M) throw new ConfigError(`${field}.vram`, "must be at least 2M");
    return { index, vram };
  });
  if (gpus.length > 30) throw new ConfigError("gpus", `${gpus.length} GPUs do not fit on bus 0000:00 (slots 02-1f: at most 30)`);

  const seed = cfg["seed"] ?? 0;
  if (typeof seed !== "number" || !Number.isSafeInteger(seed)) throw new ConfigError("seed", "expected an integer");

  const logBufLen = size("logBufLen", cfg["logBufLen"] ?? 1 << 17);
  if (logBufLen < 4096) throw new ConfigError("logBufLen", "must be at least 4K");

  const con = cfg["console"] ?? false;
  let consoleFn: ((line: string) => void) | undefined;
  if (con === true) consoleFn = (line) => process.stdout.write(line + "\n");
  else if (typeof con === "function") consoleFn = con as (line: string) => void;
  else if (con !== false) throw new ConfigError("console", "expected true, false or a function");

  const debugVm = cfg["debugVm"] ?? true;
  if (typeof debugVm !== "boolean") throw new ConfigError("debugVm", "expected true or false");

  const kc = cfg["kconfig"] === undefined ? {} : plainObject("kconfig", cfg["kconfig"]);
  checkKeys("kconfig", kc, KCONFIG_OPTIONS);
  const kconfig = Object.fromEntries(KCONFIG_OPTIONS.map((o) => [o, false])) as Record<KconfigOption, boolean>;
  for (const [o, v] of Object.entries(kc)) {
    if (typeof v !== "boolean") throw new ConfigError(`kconfig.${o}`, "expected true or false");
    kconfig[o as KconfigOption] = v;
  }
  if (kconfig.MODULE_SIG_FORCE && !kconfig.MODULE_SIG) throw new ConfigError("kconfig.MODULE_SIG_FORCE", "needs MODULE_SIG");

  const keys = list("moduleSigKeys", cfg["moduleSigKeys"]).map((k, i) => {
    const bad = new ConfigError(`moduleSigKeys[${i}]`, "expected a PEM public key");
    if (typeof k !== "string" || !k.includes("PUBLIC KEY")) throw bad;
    try {
      createPublicKey(k);
    } catch {
      throw bad;
    }
    return k;
  });

  const heap = size("moduleHeap", cfg["moduleHeap"] ?? "64M");
  if (heap < 8 * SZ_1M || heap % SZ_1M) throw new ConfigError("moduleHeap", "must be a whole number of MiB, at least 8M");
  const timeout = cfg["moduleTimeoutMs"] ?? 1000;
  if (typeof timeout !== "number" || !Number.isInteger(timeout) || timeout < 1 || timeout > 600_000) {
    throw new ConfigError("moduleTimeoutMs", "expected an integer number of milliseconds from 1 to 600000");
  }

  const autoload = cfg["autoload"] ?? true;
  if (typeof autoload !== "boolean") throw new ConfigError("autoload", `expected true or false, got ${JSON.stringify(autoload)}`);
  const modulesDir = cfg["modulesDir"] ?? MODULES_DIR;
  if (typeof modulesDir !== "string" || !modulesDir) throw new ConfigError("modulesDir", `expected a directory path, got ${JSON.stringify(modulesDir)}`);

  return {
    version, memory, pmem, reserved, gpus, physBits, seed, logBufLen, console: consoleFn, debugVm, kconfig, moduleSigKeys: keys,
    moduleHeapMiB: heap / SZ_1M, moduleTimeoutMs: timeout, autoload, modulesDir,
  };
}
