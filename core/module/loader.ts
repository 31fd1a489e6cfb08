// The module loader (kernel/module.c, 4.19-5.0): init_module() and delete_module() with the
// kernel's checks in the kernel's order, symbol resolution against vmlinux and loaded
// modules with the export policy of the running version, taints, use links and reference
// counts, and the containment of module code that fails.

import { createPublicKey, type KeyObject } from "node:crypto";
import {
  EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, ENOEXEC, ENOKEY, EPERM, EWOULDBLOCK, KernelError,
} from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import { KernelOops } from "../kernel/bug.ts";
import { HungTaskError } from "../kernel/sched.ts";
import { NSEC_PER_SEC } from "../clock.ts";
import { crc32 } from "node:zlib";
import { Prandom } from "../lib/random.ts";
import {
  TAINT_CRAP, TAINT_FORCED_MODULE, TAINT_FORCED_RMMOD, TAINT_OOT_MODULE, TAINT_PROPRIETARY_MODULE, TAINT_SOFTLOCKUP, TAINT_UNSIGNED_MODULE,
} from "../taint.ts";
import type { KApi } from "./api.ts";
import { KERNEL_APIS, kernelApi } from "./apis/index.ts";
import { BuiltinRuntime } from "./builtin.ts";
import { KERNEL_CONSTANTS } from "./constants.ts";
import { HandleTable } from "./handles.ts";
import { IsolateRuntime } from "./isolate.ts";
import { checkSignature, get_modinfo, KoFormatError, parseKo, type KoImage } from "./ko.ts";
import { kernelSymbol, symbolCrc, type ExportClass } from "./ksymtab.ts";
import { license_is_gpl_compatible } from "./license.ts";
import { ArgError, kind, MAILBOX_BYTES, Marshal, newXfer } from "./marshal.ts";
import type { Kind } from "./abi.ts";
import { MODULE_REF_BASE, Module } from "./module.ts";
import { DriverFault, LinkError, type ModuleRuntime } from "./runtime.ts";
import { CALL_DATA, CALL_FLUSH, CALL_SYMBOL, generateShim } from "./shim.ts";
import { checkModuleCode } from "./code.ts";
import { mmdrop, mmput } from "../kernel/fork.ts";

export const O_TRUNC = 0o1000;
const MODULE_NAME_LEN = 56;
export const O_NONBLOCK = 0o4000;
/** finit_module() flags */
export const MODULE_INIT_IGNORE_MODVERSIONS = 1;
export const MODULE_INIT_IGNORE_VERMAGIC = 2;

const MODULE_C = { file: "kernel/module.c" };

export interface ModuleKconfig {
  MODULE_SIG: boolean;
  MODULE_SIG_FORCE: boolean;
  MODVERSIONS: boolean;
  MODULE_FORCE_LOAD: boolean;
  MODULE_FORCE_UNLOAD: boolean;
}

export interface InsmodOptions {
  /** Load into the host (=y) rather than an isolate (=m). */
  builtin?: boolean;
  /** Module parameters, "name=value ..." as insmod passes them. */
  params?: string;
  /** finit_module() flags (MODULE_INIT_IGNORE_*, as modprobe --force sets them). */
  flags?: number;
}

/** Where a symbol was found: vmlinux (owner null) or a module. */
interface FoundSymbol {
  owner: Module | null;
  cls: ExportClass;
  crc: number | null;
}

export class ModuleSubsystem {
  readonly #k: Kernel;
  readonly handles = new HandleTable();
  /** The module list, newest first (list_add_rcu at the head). */
  readonly list: Module[] = [];
  /** last_unloaded_module */
  lastUnloaded = "";
  modules_disabled = false;
  readonly kconfig: ModuleKconfig;
  readonly #keys: KeyObject[];
  readonly heapMiB: number;
  readonly timeoutMs: number;
  #nextBase = 0xffffffffc0000000n;
  readonly #warnedOnce = new Set<string>();
  /** module_wq: loads waiting for another copy of their module to finish loading. */
  #moduleWq: (() => void)[] = [];
  /** Each module's call table (for the calls it queued). */
  readonly #tables = new WeakMap<Module, CallTable>();
  /** What each module got with symbol_get(): name -> owner (null for vmlinux). */
  readonly #gotSymbols = new WeakMap<Module, Map<string, Module | null>>();

  constructor(k: Kernel) {
    this.#k = k;
    this.kconfig = k.config.kconfig;
    this.#keys = k.config.moduleSigKeys.map((pem) => createPublicKey(pem));
    this.heapMiB = k.config.moduleHeapMiB;
    this.timeoutMs = k.config.moduleTimeoutMs;
  }

  /** The kernel's vermagic: UTS_RELEASE " SMP mod_unload " and "modversions " with MODVERSIONS. */
  get vermagic(): string {
    return `${this.#k.profile.release} SMP mod_unload ${this.kconfig.MODVERSIONS ? "modversions " : ""}`;
  }

  #pr(level: number, text: string): void {
    this.#k.printk(`\x01${level}${text}\n`);
  }

  #once(key: string, fn: () => void): void {
    if (this.#warnedOnce.has(key)) return;
    this.#warnedOnce.add(key);
    fn();
  }

  find_module(name: string): Module | undefined {
    return this.list.find((m) => m.name === name && m.state !== "UNFORMED");
  }

  // ---- init_module() ---------------------------------------------------------------------

  /** init_module(): load, link and initialise a module; the Module, or a negative errno. */
  async init_module(bytes: Uint8Array, opts: InsmodOptions = {}): Promise<Module | number> {
    if (this.modules_disabled) return -EPERM;
    const flags = opts.flags ?? 0;

    // elf_header_check(), setup_load_info(): the sections, wherever a signature trails them.
    let image: KoImage;
    try {
      image = parseKo(bytes);
    } catch (e) {
      if (e instanceof KoFormatError) return -ENOEXEC;
      throw e;
    }

    // module_sig_check(): only with flags == 0, as a module with version information removed
    // is no longer the module that was signed.
    let sigOk = false;
    if (this.kconfig.MODULE_SIG) {
      const sig = flags ? { err: -ENOKEY } : checkSignature(bytes, this.#keys);
      if ("message" in sig && sig.message) this.#pr(3, sig.message);
      sigOk = sig.err === 0;
      if (!sigOk && !(sig.err === -ENOKEY && !this.kconfig.MODULE_SIG_FORCE)) return sig.err;
    }

    // Built in (=y) means linked into the kernel, with no isolate around it: only code from
    // the tree itself gets that (principle 6); out-of-tree code always runs isolated.
    if (opts.builtin && get_modinfo(image.modinfo, "intree") === undefined) {
      this.#pr(3, `kemu: ${image.thisModule}: only in-tree modules can be built in; load it isolated, or build it with intree`);
      return -EPERM;
    }
    const mod = new Module(image, this.#nextBase, opts.builtin === true);
    // MODULE_INIT_IGNORE_MODVERSIONS: pretend there is no __versions section.
    mod.versions = flags & MODULE_INIT_IGNORE_MODVERSIONS ? null : image.versions;

    // check_modstruct_version(): module_layout first.
    if (this.kconfig.MODVERSIONS && !this.#checkVersion(mod, "module_layout", symbolCrc(kernelSymbol("module_layout")!, this.#k.profile.version))) {
      return -ENOEXEC;
    }
    const rc = this.#checkModinfo(mod, flags);
    if (rc) return rc;

    // add_unformed_module(): a copy still loading may fail, so wait for it to finish.
    for (;;) {
      const old = this.list.find((m) => m.name === mod.name);
      if (!old) break;
      if (old.state !== "UNFORMED" && old.state !== "COMING") return -EEXIST;
      await new Promise<void>((wake) => this.#moduleWq.push(wake));
    }
    this.list.unshift(mod);
    this.#nextBase += BigInt(mod.size + 4096);

    if (this.kconfig.MODULE_SIG && !sigOk) {
      this.#once("module_sig", () => this.#pr(5, `${mod.name}: module verification failed: signature and/or required key missing - tainting kernel`));
      this.#taintModule(mod, TAINT_UNSIGNED_MODULE, "LOCKDEP_STILL_OK");
    }
    // module_unload_init(): the base reference, and one held while loading.
    mod.refcnt = MODULE_REF_BASE + 1;

    let err = this.#checkLicenseAndVersions(mod);
    if (!err) err = this.#simplifySymbols(mod);
    if (err) return this.#unwind(mod, err);

    // apply_relocations(): link the code against a shim of what resolved; a broken object is
    // found here.
    try {
      await this.#link(mod);
    } catch (e) {
      if (e instanceof CodeError) {
        this.#pr(3, `kemu: ${mod.name}: module code ${e.message}`);
        return this.#unwind(mod, -ENOEXEC);
      }
      if (e instanceof LinkError) {
        this.#pr(4, `${mod.name}: Unknown symbol ${e.missing} (err ${-ENOENT})`);
        return this.#unwind(mod, -ENOENT);
      }
      if (e instanceof DriverFault) {
        this.#report(mod, e);
        return this.#unwind(mod, -EFAULT);
      }
      throw e;
    }

    // complete_formation(): no duplicate exports, then COMING.
    for (const e of mod.exports) {
      const dup = this.#findSymbol(e.name, true, mod);
      if (dup) {
        this.#pr(3, `${mod.name}: exports duplicate symbol ${e.name} (owned by ${dup.owner ? dup.owner.name : "kernel"})`);
        return this.#unwind(mod, -ENOEXEC);
      }
    }
    mod.state = "COMING";
    for (const p of (opts.params ?? "").split(/\s+/).filter(Boolean)) {
      this.#pr(4, `${mod.name}: unknown parameter '${p.split("=")[0]}' ignored`);
    }
    return this.#doInitModule(mod);
  }

  /** check_modinfo(): vermagic, out-of-tree, retpoline, staging, license. */
  #checkModinfo(mod: Module, flags: number): number {
    const info = mod.image.modinfo;
    const modmagic = flags & MODULE_INIT_IGNORE_VERMAGIC ? undefined : get_modinfo(info, "vermagic");
    if (modmagic === undefined) {
      const rc = this.#tryToForceLoad(mod, "bad vermagic");
      if (rc) return rc;
    } else if (!sameMagic(modmagic, this.vermagic, this.kconfig.MODVERSIONS && mod.versions !== null)) {
      this.#pr(3, `${mod.infoName}: version magic '${modmagic}' should be '${this.vermagic}'`);
      return -ENOEXEC;
    }
    const k = this.#k;
    if (get_modinfo(info, "intree") === undefined) {
      if (!k.taint.test(TAINT_OOT_MODULE)) this.#pr(4, `${mod.name}: loading out-of-tree module taints kernel.`);
      this.#taintModule(mod, TAINT_OOT_MODULE, "LOCKDEP_STILL_OK");
    }
    // check_modinfo_retpoline(): the kernel runs with retpolines, so retpoline_module_ok()
    // complains first (arch/x86/kernel/cpu/bugs.c, pr_fmt "Spectre V2 : ").
    if (get_modinfo(info, "retpoline") === undefined) {
      this.#pr(3, "Spectre V2 : System may be vulnerable to spectre v2");
      this.#pr(4, `${mod.name}: loading module not compiled with retpoline compiler.`);
    }
    if (get_modinfo(info, "staging") !== undefined) {
      this.#taintModule(mod, TAINT_CRAP, "LOCKDEP_STILL_OK");
      this.#pr(4, `${mod.name}: module is from the staging directory, the quality is unknown, you have been warned.`);
    }
    // set_license(): the first license= entry, up to its first NUL.
    const license = get_modinfo(info, "license") ?? "unspecified";
    if (!license_is_gpl_compatible(license)) {
      if (!k.taint.test(TAINT_PROPRIETARY_MODULE)) this.#pr(4, `${mod.name}: module license '${license}' taints kernel.`);
      this.#taintModule(mod, TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    }
    return 0;
  }

  /** check_module_license_and_versions(): the name overrides, then CRCs on exports. */
  #checkLicenseAndVersions(mod: Module): number {
    const k = this.#k;
    const prev = k.taint.test(TAINT_PROPRIETARY_MODULE);
    // ndiswrapper is GPL itself but loads proprietary binaries: kernel-wide P only.
    if (mod.name === "ndiswrapper") k.taint.add(TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    // driverloader was caught wrongly pretending to be under GPL
    if (mod.name === "driverloader") this.#taintModule(mod, TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    // lve claims to be GPL but upstream won't provide source
    if (mod.name === "lve") this.#taintModule(mod, TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    if (!prev && k.taint.test(TAINT_PROPRIETARY_MODULE)) this.#pr(4, `${mod.name}: module license taints kernel.`);
    if (this.kconfig.MODVERSIONS && mod.exports.some((e) => e.crc === null)) {
      return this.#tryToForceLoad(mod, "no versions for exported symbols");
    }
    return 0;
  }

  /** try_to_force_load(): only with CONFIG_MODULE_FORCE_LOAD, and then taint F. */
  #tryToForceLoad(mod: Module, reason: string): number {
    if (!this.kconfig.MODULE_FORCE_LOAD) return -ENOEXEC;
    if (!this.#k.taint.test(TAINT_FORCED_MODULE)) this.#pr(4, `${mod.name}: ${reason}: kernel tainted.`);
    this.#taintModule(mod, TAINT_FORCED_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    return 0;
  }

  /** add_taint_module() */
  #taintModule(mod: Module, bit: number, lockdep: "LOCKDEP_STILL_OK" | "LOCKDEP_NOW_UNRELIABLE"): void {
    this.#k.taint.add(bit, lockdep);
    mod.taints |= 1 << bit;
  }

  /**
   * find_symbol(): vmlinux (plain, then GPL if allowed, then GPL_FUTURE), then every formed
   * module, newest first. A GPL-only symbol a non-GPL module may not use is skipped.
   */
  #findSymbol(name: string, gplok: boolean, exclude: Module | null = null, warn = false): FoundSymbol | null {
    const version = this.#k.profile.version;
    const check = (cls: ExportClass): boolean => {
      if (gplok) return true;
      if (cls === "EXPORT_SYMBOL_GPL") return false;
      if (cls === "EXPORT_SYMBOL_GPL_FUTURE" && warn) {
        this.#pr(4, `Symbol ${name} is being used by a non-GPL module, which will not be allowed in the future`);
      }
      return true;
    };
    const ksym = kernelSymbol(name);
    const cls = ksym?.exports[version];
    if (ksym && cls && check(cls)) return { owner: null, cls, crc: this.kconfig.MODVERSIONS ? symbolCrc(ksym, version) : null };
    for (const m of this.list) {
      if (m.state === "UNFORMED" || m === exclude) continue;
      const e = m.exports.find((x) => x.name === name);
      if (e && check(e.class)) return { owner: m, cls: e.class, crc: e.crc };
    }
    return null;
  }

  /** check_version(): a CRC from __versions against the owner's; missing is let through once. */
  #checkVersion(mod: Module, name: string, crc: number | null): boolean {
    if (crc === null) return true;
    const versions = mod.versions;
    if (versions === null) return this.#tryToForceLoad(mod, name) === 0;
    const v = versions.find((x) => x.name === name);
    if (!v) {
      this.#once("no symbol version", () => this.#pr(4, `${mod.infoName}: no symbol version for ${name}`));
      return true;
    }
    if (v.crc >>> 0 === crc >>> 0) return true;
    this.#pr(4, `${mod.infoName}: disagrees about version of symbol ${name}`);
    return false;
  }

  /** resolve_symbol_wait(): the symbol, or null when not found, or a negative errno. */
  #resolveSymbol(mod: Module, name: string): FoundSymbol | null | number {
    const found = this.#findSymbol(name, gplok(mod), mod, true);
    if (!found) return null;
    if (!this.#checkVersion(mod, name, found.crc)) return -EINVAL;
    // An owner still in its init would make the kernel wait (-EBUSY); in kemu a module's init
    // runs to its end before anything else loads, so no owner is ever COMING here.
    const err = this.#refModule(mod, found.owner);
    return err ? err : found;
  }

  /** simplify_symbols(): every undefined symbol; one line per failure; the last error wins. */
  #simplifySymbols(mod: Module): number {
    let ret = 0;
    for (const u of mod.image.undefinedSymbols) {
      const r = this.#resolveSymbol(mod, u.name);
      if (r && typeof r === "object") {
        mod.symbols.set(u.name, r.owner);
        continue;
      }
      if (r === null && u.weak) continue;
      const err = typeof r === "number" ? r : -ENOENT;
      this.#pr(4, `${mod.name}: Unknown symbol ${u.name} (err ${err})`);
      ret = err;
    }
    return ret;
  }

  /** ref_module(): a use link (one reference) the first time mod takes a symbol of owner. */
  #refModule(mod: Module, owner: Module | null): number {
    if (!owner || mod.targetList.includes(owner)) return 0;
    if (owner.state === "COMING") return -EBUSY;
    if (!this.try_module_get(owner)) return -ENOENT;
    // add_module_usage(): list_add() at the heads.
    mod.targetList.unshift(owner);
    owner.sourceList.unshift(mod);
    return 0;
  }

  // ---- linking and running module code ---------------------------------------------------

  async #link(mod: Module): Promise<void> {
    const k = this.#k;
    // Checked while the module's isolate is being set up.
    const checking = checkModuleCode(mod.image.code);
    // What simplify_symbols() resolved, bound once: a function is offered when all the
    // symbols it needs resolved; another module's export is called in the module that owns it.
    const apis: KApi[] = [];
    const externs: { name: string; owner: Module }[] = [];
    for (const name of mod.image.imports) {
      const api = kernelApi(name);
      if (api) {
        if (api.symbols.every((s) => mod.symbols.has(s))) apis.push(api);
      } else {
        const owner = mod.symbols.get(name);
        if (owner) externs.push({ name, owner });
      }
    }
    const table: CallTable = [...apis.map(apiEntry), ...externs];
    const data = ["iomem_resource"].filter((s) => mod.image.imports.includes(s) && mod.symbols.has(s));
    const shimSource = generateShim({
      apis: apis.map((api, i) => ({ index: i + 1, api })),
      externs: externs.map(({ name }, i) => ({ index: apis.length + 1 + i, name })),
      data,
      constants: KERNEL_CONSTANTS,
    });
    const kcall = (index: number, args: unknown[]) => this.#kcall(mod, table, data, index, args);
    // The module's Date follows the virtual clock from the day 5.0 was released.
    const now = () => Date.UTC(2019, 2, 3) + k.clock.now() / 1e6;
    const random = moduleRandom(k.config.seed, mod.name);
    // The buffer arrays cross through (marshal.ts), shared by the shim and the kernel only.
    const mailbox = new SharedArrayBuffer(MAILBOX_BYTES);
    const runtime: ModuleRuntime = mod.builtin
      ? new BuiltinRuntime({ name: mod.name, shimSource, code: mod.image.code, kcall, now, random, mailbox })
      : new IsolateRuntime({ name: mod.name, shimSource, code: mod.image.code, kcall, memoryLimitMiB: this.heapMiB, timeoutMs: this.timeoutMs, now, random, mailbox });
    mod.runtime = runtime;
    mod.marshal = new Marshal(k, mod, (fn, sig, args, name, after) => this.#callModule(mod, fn, sig, args, name, after), mailbox);
    this.#tables.set(mod, table);
    const code = await checking;
    if ("error" in code) throw new CodeError(code.error);
    await runtime.link(code.cjs);
  }

  /** The kernel side of a module's shim: index 0 is data, then its functions, then externs. */
  #kcall(mod: Module, table: CallTable, data: string[], index: number, args: unknown[]): unknown {
    if (mod.dead) throw new DriverFault("dead", `${mod.name} is dead`);
    mod.kcallDepth++;
    try {
      return this.#kcallIn(mod, table, data, index, args);
    } finally {
      mod.kcallDepth--;
    }
  }

  #kcallIn(mod: Module, table: CallTable, data: string[], index: number, args: unknown[]): unknown {
    const k = this.#k;
    const marshal = mod.marshal!;
    // isolated-vm hands a SharedArrayBuffer over as itself, not as a copy: take a copy, so
    // that no memory is ever shared between a module and anything else (principle 3).
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a !== null && typeof a === "object" && (a instanceof SharedArrayBuffer || (ArrayBuffer.isView(a) && a.buffer instanceof SharedArrayBuffer))) args[i] = unshare(a);
    }
    const entry = index > 0 ? table[index - 1] : undefined;
    // The void calls the module queued before this one run first. They may call back into
    // the module, which uses the transfer buffer: this call's arrays are kept aside meanwhile.
    if (marshal.queued) {
      const saved = entry && "api" in entry ? marshal.saveArrays() : null;
      this.#runQueued(mod);
      if (saved) marshal.restoreArrays(saved);
    }
    if (index === CALL_FLUSH) return undefined;
    if (index === CALL_DATA) {
      const out: Record<string, unknown> = { THIS_MODULE: marshal.wireObject("module", mod) };
      for (const d of data) if (d === "iomem_resource") out[d] = marshal.wireObject("resource", k.mm.iomem.root);
      return out;
    }
    if (index === CALL_SYMBOL) return this.#callGotSymbol(mod, args[0] as string, args.slice(1));
    if (!entry) throw new Error(`bad kernel call index ${index}`);
    if ("owner" in entry) return this.#crossOut(entry.owner, mod, this.#callExport(entry.owner, entry.name, args.map((a) => this.#crossIn(mod, entry.owner, a))));
    return this.#callApi(mod, entry, args);
  }

  /**
   * Run the void kernel calls the module queued instead of crossing for each (shim.ts), in
   * the order it made them, as if each had been made then: nothing else of the kernel ran
   * since, and the module learnt nothing from them.
   */
  #runQueued(mod: Module): void {
    const q = mod.marshal?.takeQueued();
    if (!q) return;
    const table = this.#tables.get(mod)!;
    for (let i = 0; i < q.length; ) {
      const entry = table[q[i]! - 1];
      if (!entry || !("api" in entry)) {
        this.#pr(3, `kemu: ${mod.name}: a queued kernel call has a bad index ${q[i]}; the rest of the queue is dropped`);
        return;
      }
      const n = entry.params.length;
      if (entry.scalar) {
        this.#callScalar(mod, entry, q[i + 1], q[i + 2], q[i + 3]);
      } else {
        const args = new Array<unknown>(n);
        for (let j = 0; j < n; j++) args[j] = q[i + 1 + j];
        this.#callApi(mod, entry, args);
      }
      i += 1 + n;
    }
  }

  /** A kernel function called by a module: arguments checked, the call made, its result out. */
  #callApi(mod: Module, { api, params, ret }: ApiEntry, args: unknown[]): unknown {
    const marshal = mod.marshal!;
    const x = newXfer();
    const n = args.length;
    const converted = new Array<unknown>(n);
    let refused: ArgError | null = null;
    for (let i = 0; i < n; i++) {
      try {
        converted[i] = marshal.in(params[i] ?? ANY, args[i], x);
      } catch (e) {
        if (!(e instanceof ArgError)) throw e;
        // The rest is still read, so the kernel knows every struct the module passed.
        refused ??= e;
      }
    }
    if (refused) return this.#refuse(mod, api, refused, ret);
    const stack = this.#k.bugs.stack;
    stack.push(api.name);
    let r: unknown;
    try {
      r = api.impl(marshal.ctx, ...converted);
    } catch (e) {
      return this.#implFailed(mod, api, e, ret);
    } finally {
      stack.pop();
    }
    // io: arrays go back first (where they came from), then the result after them.
    const io = x.io;
    const wr = marshal.out(ret, r, x);
    return io ? marshal.ioToModule(x, wr) : wr;
  }

  /**
   * A queued call whose parameters are all scalars (at most 3): #callApi without the
   * per-call arrays, for the per-page calls (get_page, lock_page, copy_highpage) that
   * drivers make by the thousand.
   */
  #callScalar(mod: Module, entry: ApiEntry, a: unknown, b: unknown, c: unknown): void {
    const { api, params } = entry;
    const marshal = mod.marshal!;
    const n = params.length;
    try {
      if (n > 0) a = marshal.in(params[0]!, a);
      if (n > 1) b = marshal.in(params[1]!, b);
      if (n > 2) c = marshal.in(params[2]!, c);
    } catch (e) {
      if (!(e instanceof ArgError)) throw e;
      this.#refuse(mod, api, e, entry.ret);
      return;
    }
    const stack = this.#k.bugs.stack;
    stack.push(api.name);
    try {
      api.impl(marshal.ctx, a, b, c);
    } catch (e) {
      this.#implFailed(mod, api, e, entry.ret);
    } finally {
      stack.pop();
    }
  }

  #refuse(mod: Module, api: KApi, e: ArgError, ret: Kind): unknown {
    this.#pr(3, `kemu: ${mod.name}: ${api.name}(): ${e.message}; call refused`);
    return mod.marshal!.out(ret, errorValue(ret));
  }

  /** What a kernel function threw: a refusal, or an oops/hang that dooms the calling module. */
  #implFailed(mod: Module, api: KApi, e: unknown, ret: Kind): unknown {
    if (e instanceof ArgError) return this.#refuse(mod, api, e, ret);
    // The kernel oopsed or the task hung inside this call: the report is out; the module
    // that made the call is contained when control comes back out of it.
    if (e instanceof KernelOops || e instanceof HungTaskError) {
      mod.kernelFault = true;
      mod.runtime?.kill(new DriverFault("dead", `killed in ${api.name}()`));
    }
    throw e;
  }

  /**
   * Call function `callee` of a module, as the kernel calls a callback; a failure is
   * contained. The callee's name is the call trace's frame and, when the module's own stack
   * has none (a time-out, heap exhaustion), the RIP of the report.
   */
  #callModule(mod: Module, fn: number, sig: number, args: unknown[], callee: string, after: ((r: unknown) => unknown) | null = null): unknown {
    if (!mod.runtime || mod.dead) throw new DriverFault("dead", `${mod.name} is dead`);
    const frame = `${callee} [${mod.name}]`;
    const stack = this.#k.bugs.stack;
    // On the call trace until the report is out, so the report shows it.
    stack.push(frame);
    mod.callees.push(frame);
    try {
      let r = mod.runtime.call(fn, sig, args);
      if (after) r = after(r);
      // What the module queued before returning runs now, still as its call.
      this.#runQueued(mod);
      return r;
    } catch (e) {
      if (e instanceof DriverFault) {
        // The calls it made before it failed were made.
        if (!mod.dead) this.#runQueued(mod);
        this.#fault(mod, e);
      }
      throw e;
    } finally {
      mod.callees.pop();
      stack.pop();
    }
  }

  /** A call to a function another module exports; -EFAULT when that module fails in it. */
  #callExport(owner: Module, name: string, args: unknown[]): unknown {
    const fn = owner.exportFns?.[name];
    if (!fn) throw new DriverFault("dead", `${owner.name} does not export ${name}`);
    try {
      return this.#callModule(owner, fn, 0, args, name);
    } catch (e) {
      if (e instanceof DriverFault) return -EFAULT;
      throw e;
    }
  }

  /**
   * A kernel object one module hands another through an export: the callee gets its own
   * handle for the same object (with its fields), as a pointer is the same pointer in both; a
   * handle the caller does not own (forged, stale) arrives as NULL. Plain data is copied.
   */
  #crossIn(from: Module, to: Module, v: unknown, depth = 0): unknown {
    if (v === null || typeof v !== "object" || ArrayBuffer.isView(v) || depth > 16) return v;
    if (Array.isArray(v)) return v.map((x) => this.#crossIn(from, to, x, depth + 1));
    const h = (v as { handle?: unknown }).handle;
    if (typeof h === "number" && Object.keys(v).length === 1) {
      const e = this.handles.lookup(from.name, h);
      return e && to.marshal ? to.marshal.wireObject(e.type, e.obj) : null;
    }
    const out: Record<string, unknown> = {};
    for (const [key, x] of Object.entries(v)) out[key] = this.#crossIn(from, to, x, depth + 1);
    return out;
  }

  /** What the callee of an export returned, for the caller (#crossIn the other way). */
  #crossOut(from: Module, to: Module, r: unknown): unknown {
    return this.#crossIn(from, to, r);
  }

  /** A call through what symbol_get() returned: the owner's export, or vmlinux's function. */
  #callGotSymbol(mod: Module, name: string, args: unknown[]): unknown {
    const got = this.#gotSymbols.get(mod);
    if (!got?.has(name)) throw new DriverFault("dead", `${name} was not taken with symbol_get()`);
    const owner = got.get(name)!;
    if (owner) return this.#callExport(owner, name, args);
    // The arguments come untyped: kernel objects as {handle}, which the function's kinds read.
    const plain = args.map((a) => (a && typeof a === "object" && typeof (a as { handle?: unknown }).handle === "number" ? (a as { handle: number }).handle : a));
    return this.#callApi(mod, apiEntry(kernelApi(name)!), plain);
  }

  /** do_init_module(): run the top level and init; LIVE on success, freed on failure. */
  #doInitModule(mod: Module): Module | number {
    const k = this.#k;
    let ret = 0;
    try {
      const info = mod.runtime!.evaluate();
      this.#runQueued(mod);
      mod.hasInit = info.init !== 0;
      mod.hasExit = info.exit !== 0;
      mod.exportFns = info.exports;
      mod.exitFn = info.exit;
      if (info.init) {
        const r = this.#callModule(mod, info.init, 0, [], "init_module");
        ret = typeof r === "number" && Number.isFinite(r) ? Math.trunc(r) : 0;
      }
    } catch (e) {
      if (!(e instanceof DriverFault || e instanceof KernelOops || e instanceof HungTaskError)) throw e;
      if (e instanceof DriverFault && !mod.dead) this.#fault(mod, e);
      this.#contain(mod);
      return -EFAULT;
    }
    if (mod.dead) {
      this.#contain(mod);
      return -EFAULT;
    }
    if (ret < 0) {
      mod.state = "GOING";
      k.sched.synchronize_rcu();
      this.module_put(mod);
      this.#freeModule(mod);
      return ret;
    }
    if (ret > 0) {
      this.#pr(4, `do_init_module: '${mod.name}'->init suspiciously returned ${ret}, it should follow 0/-E convention\ndo_init_module: loading module anyway...`);
      k.bugs.dumpStack(4, ["do_init_module"]);
    }
    mod.state = "LIVE";
    this.module_put(mod); // drop the loader's reference
    this.#wakeUpModuleWq();
    return mod;
  }

  /** Unwind a load that failed before init: the module never ran. */
  #unwind(mod: Module, err: number): number {
    this.#freeModule(mod);
    return err;
  }

  // ---- delete_module() -------------------------------------------------------------------

  /** delete_module(): 0 or a negative errno, in the decision order of spec U5. */
  delete_module(name: string, flags = O_NONBLOCK): number {
    if (this.modules_disabled) return -EPERM;
    // strncpy_from_user(name, .., MODULE_NAME_LEN - 1): a longer name is cut, then looked up.
    const mod = this.find_module(name.slice(0, MODULE_NAME_LEN - 1));
    if (!mod) return -ENOENT;
    if (mod.sourceList.length) return -EWOULDBLOCK;
    if (mod.state !== "LIVE") return -EBUSY;
    if (mod.hasInit && !mod.hasExit && !this.#tryForceUnload(flags)) return -EBUSY;
    // try_stop_module(): drop the base reference unless someone holds another.
    mod.refcnt -= MODULE_REF_BASE;
    if (mod.refcnt < 0) this.#k.bugs.bug({ ...MODULE_C, func: "try_release_module_ref" });
    if (mod.refcnt !== 0) {
      mod.refcnt += MODULE_REF_BASE;
      if (!this.#tryForceUnload(flags)) return -EWOULDBLOCK;
    }
    mod.state = "GOING";
    if (mod.exitFn) {
      try {
        this.#callModule(mod, mod.exitFn, 0, [], "cleanup_module");
      } catch (e) {
        if (!(e instanceof DriverFault || e instanceof KernelOops || e instanceof HungTaskError)) throw e;
      }
    }
    this.lastUnloaded = mod.name;
    if (mod.dead) {
      this.#contain(mod);
      return -EFAULT;
    }
    this.#freeModule(mod);
    return 0;
  }

  /** try_force_unload(): only with CONFIG_MODULE_FORCE_UNLOAD and O_TRUNC; taints R. */
  #tryForceUnload(flags: number): boolean {
    if (!this.kconfig.MODULE_FORCE_UNLOAD || !(flags & O_TRUNC)) return false;
    this.#k.taint.add(TAINT_FORCED_RMMOD, "LOCKDEP_NOW_UNRELIABLE");
    return true;
  }

  /** free_module(): off the list, use links dropped, code and handles gone. */
  #freeModule(mod: Module): void {
    this.#releaseHoldings(mod, false);
    mod.state = "UNFORMED";
    const targets = mod.targetList.splice(0);
    for (const target of targets) {
      target.sourceList.splice(target.sourceList.indexOf(mod), 1);
      this.module_put(target);
    }
    const i = this.list.indexOf(mod);
    if (i >= 0) this.list.splice(i, 1);
    this.handles.dropOwner(mod.name);
    mod.marshal?.clear();
    mod.runtime?.dispose();
    this.#wakeUpModuleWq();
    // A dead module kept listed for its users goes with the last of them.
    for (const target of targets) if (target.dead && target.sourceList.length === 0 && this.list.includes(target)) this.#freeModule(target);
  }

  /**
   * What a module still has registered when it goes: its drivers and devices cannot outlive
   * its code. A living module that forgot them gets a line saying so; memory it allocated
   * is left as the kernel leaves it (the leak checker reports it), unless it died.
   */
  #releaseHoldings(mod: Module, dead: boolean): void {
    const k = this.#k;
    const h = mod.holdings;
    for (const [obj, release] of [...h.teardown].reverse()) {
      h.teardown.delete(obj);
      release(dead);
    }
    for (const drv of [...h.drivers]) {
      if (!dead) this.#pr(3, `kemu: ${mod.name}: ${drv.bus?.name ?? "platform"} driver '${drv.name}' still registered at unload; unregistering it`);
      k.base.driver_unregister(drv);
      h.drivers.delete(drv);
    }
    for (const pdev of [...h.pdevs]) {
      if (!dead) this.#pr(3, `kemu: ${mod.name}: platform device '${pdev.dev.name}' still registered at unload; unregistering it`);
      k.platform.platform_device_unregister(pdev);
      h.pdevs.delete(pdev);
    }
    for (const misc of [...h.miscdevs]) {
      if (!dead) this.#pr(3, `kemu: ${mod.name}: misc device '${misc.name}' still registered at unload; deregistering it`);
      if (misc.listed) k.misc.misc_deregister(misc);
      h.miscdevs.delete(misc);
    }
    for (const mirror of [...h.mirrors]) {
      if (!dead) this.#pr(3, `kemu: ${mod.name}: an hmm_mirror is still registered at unload; unregistering it`);
      k.hmm.mirror.hmm_mirror_unregister(mirror);
      h.mirrors.delete(mirror);
    }
    for (const hd of [...h.hmmDevices]) {
      if (!dead) this.#pr(3, `kemu: ${mod.name}: ${hd.device.name} still held at unload; putting it`);
      k.hmm.hmm_device_put(hd);
      h.hmmDevices.delete(hd);
    }
    if (!dead) return;
    // References on address spaces the dead module can no longer drop itself.
    for (const [mm, refs] of h.mms) {
      for (let i = 0; i < refs.users; i++) mmput(mm);
      for (let i = 0; i < refs.count; i++) mmdrop(mm);
    }
    h.mms.clear();
    for (const r of [...h.regions]) k.mm.iomem.release_mem_region(r.start, r.end - r.start + 1);
    h.regions.clear();
    for (const b of [...h.kbufs]) if (!b.freed) k.mm.kfree(b);
    h.kbufs.clear();
  }

  // ---- containment -----------------------------------------------------------------------

  /** A module's code failed: report it as an oops naming the module (taint D) and mark it dead. */
  #fault(mod: Module, f: DriverFault): void {
    if (mod.dead) return;
    mod.dead = true;
    if (f.kind === "dead" || mod.kernelFault) return;
    this.#report(mod, f);
  }

  /**
   * The oops for a module's failure, as die() prints one: kemu's line saying what the code
   * did (and where, in the module's own files), then the report with the module's frames
   * in the call trace. The task is not killed: the failing call returns its error.
   */
  #report(mod: Module, f: DriverFault): void {
    const k = this.#k;
    const frames = driverFrames(f.driverStack);
    const sym = (fr: { fn: string }) => `${fr.fn} [${mod.name}]`;
    const rip = frames[0] ? sym(frames[0]) : (mod.callees.at(-1) ?? `[${mod.name}]`);
    const header: string[] = [];
    if (f.kind === "timeout") {
      // The soft-lockup watchdog fires after 2 x watchdog_thresh (10 s).
      k.clock.advance(22 * NSEC_PER_SEC);
      const t = k.sched.current;
      this.#pr(0, `watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [${t.comm}:${t.pid}]`);
      k.taint.add(TAINT_SOFTLOCKUP, "LOCKDEP_STILL_OK");
      header.push(`kemu: ${mod.name}: killed: ${f.message}`);
    } else if (f.kind === "heap") {
      header.push(`kemu: ${mod.name}: killed: ${f.message}`);
    } else {
      header.push(`kemu: ${mod.name}: ${f.message}`);
      for (const fr of frames.slice(0, 5)) header.push(`  at ${fr.fn} (${fr.where})`);
    }
    const trace = frames.slice(1).map(sym);
    try {
      k.bugs.oops(header, "Oops: 0000", { file: `drivers/${mod.name}.mjs`, func: rip }, 1, trace);
    } catch (e) {
      if (!(e instanceof KernelOops)) throw e;
    }
  }

  /** Tear a dead module down: its devices and drivers go (no callbacks into it), its memory is freed. */
  #contain(mod: Module): void {
    mod.dead = true;
    mod.state = "GOING";
    this.#releaseHoldings(mod, true);
    if (mod.sourceList.length === 0) this.#freeModule(mod);
    else {
      mod.runtime?.dispose();
      this.#pr(3, `kemu: ${mod.name}: dead, but used by ${mod.sourceList.map((m) => m.name).join(",")}; it stays listed until they go`);
    }
  }

  /** wake_up_all(&module_wq): a module finished loading, or was freed. */
  #wakeUpModuleWq(): void {
    for (const wake of this.#moduleWq.splice(0)) wake();
  }

  /** Work queued for when the current operation is over: contain modules that died meanwhile. */
  reapDead(): void {
    for (const mod of [...this.list]) if (mod.dead && mod.state === "LIVE") this.#contain(mod);
  }

  // ---- module references -----------------------------------------------------------------

  /** try_module_get(): fails only once the module is going (or its count reached 0). */
  try_module_get(mod: Module | null): boolean {
    if (!mod) return true;
    if (mod.state === "GOING" || mod.refcnt === 0) return false;
    mod.refcnt++;
    return true;
  }

  /** __module_get(): unconditionally. */
  __module_get(mod: Module | null): void {
    if (mod) mod.refcnt++;
  }

  /** module_put(): atomic_dec_if_positive(), and WARN_ON when it would go negative. */
  module_put(mod: Module | null): void {
    if (!mod) return;
    if (mod.refcnt - 1 < 0) {
      this.#k.warn({ ...MODULE_C, func: "module_put" }, null);
      return;
    }
    mod.refcnt--;
  }

  /**
   * __symbol_get(): a symbol of vmlinux or of a live module (taking a reference on it, but no
   * use link); what the module gets is a function calling it.
   */
  symbol_get(caller: Module, name: string): string | null {
    const found = this.#findSymbol(name, true, caller);
    if (!found) return null;
    // vmlinux data and symbols kemu/kernel offers no function for cannot be called.
    if (!found.owner && kernelApi(name) === undefined) return null;
    if (found.owner && (found.owner.state === "COMING" || !this.try_module_get(found.owner))) return null;
    let got = this.#gotSymbols.get(caller);
    if (!got) this.#gotSymbols.set(caller, (got = new Map()));
    got.set(name, found.owner);
    return name;
  }

  /** __symbol_put(): drop the reference symbol_get() took. */
  symbol_put(name: string): void {
    const found = this.#findSymbol(name, true);
    if (!found) {
      this.#k.bugs.bug({ ...MODULE_C, func: "__symbol_put" });
    }
    this.module_put(found.owner);
  }

  // ---- views -----------------------------------------------------------------------------

  /** /proc/modules: "name size refcnt deps state address[ (flags)]", newest first. */
  procModules(): string {
    const count = this.#k.taint.count;
    let out = "";
    for (const m of this.list) {
      if (m.state === "UNFORMED") continue;
      let deps = m.sourceList.map((s) => s.name + ",").join("");
      if (m.hasInit && !m.hasExit) deps += "[permanent],";
      const state = m.state === "GOING" ? "Unloading" : m.state === "COMING" ? "Loading" : "Live";
      const flags = m.taints ? " " + m.flags(count) : "";
      out += `${m.name} ${m.size} ${m.refcount} ${deps || "-"} ${state} 0x${m.base.toString(16)}${flags}\n`;
    }
    return out;
  }

  /** print_modules(): " name(flags)" for each module, then " [last unloaded: x]". */
  modulesLinkedIn(): string {
    const count = this.#k.taint.count;
    let s = "";
    for (const m of this.list) if (m.state !== "UNFORMED") s += ` ${m.name}${m.flags(count)}`;
    if (this.lastUnloaded) s += ` [last unloaded: ${this.lastUnloaded}]`;
    return s;
  }

  /** kmod's lsmod: "Module                  Size  Used by". */
  lsmod(): string {
    let out = "Module                  Size  Used by\n";
    for (const m of this.list) {
      if (m.state === "UNFORMED") continue;
      const holders = m.sourceList.map((s) => s.name).join(",");
      out += `${m.name.padEnd(19)} ${String(m.size).padStart(8)}  ${m.refcount}${holders ? " " + holders : ""}\n`;
    }
    return out;
  }

  /** /proc/kemu/modules: how each module runs and what it costs. */
  procKemuModules(): string {
    let out = "name                 mode      state      cpu_ms   heap_kib  heap_limit_kib\n";
    for (const m of this.list) {
      if (m.state === "UNFORMED") continue;
      const s = m.runtime?.stats() ?? { cpuNs: 0, heapUsed: 0, heapLimit: 0 };
      const state = m.dead ? "dead" : m.state.toLowerCase();
      out += `${m.name.padEnd(20)} ${(m.builtin ? "built-in" : "isolated").padEnd(9)} ${state.padEnd(10)} ${(s.cpuNs / 1e6).toFixed(3).padStart(9)} ${String(Math.round(s.heapUsed / 1024)).padStart(10)} ${String(Math.round(s.heapLimit / 1024)).padStart(15)}\n`;
    }
    return out;
  }

  /** All functions kemu/kernel offers (for the SDK). */
  static get apis(): readonly KApi[] {
    return KERNEL_APIS;
  }
}

const ANY = kind("any");

/** A kernel function as a module's call table holds it: the kinds of its parameters
 *  (variadic ones read as "any") and result, parsed once. */
interface ApiEntry {
  readonly api: KApi;
  readonly params: readonly Kind[];
  readonly ret: Kind;
  /** At most 3 parameters, all numbers (#callScalar). */
  readonly scalar: boolean;
}
const apiEntries = new WeakMap<KApi, ApiEntry>();

function apiEntry(api: KApi): ApiEntry {
  let e = apiEntries.get(api);
  if (!e) {
    const params = api.params.filter((p) => p !== "...any").map(kind);
    const scalar = params.length <= 3 && params.length === api.params.length && params.every((p) => p.t === "int" || p.t === "num" || p.t === "page");
    apiEntries.set(api, (e = { api, params, ret: kind(api.ret), scalar }));
  }
  return e;
}

/** A private copy of shared memory. */
function unshare(v: SharedArrayBuffer | ArrayBufferView): unknown {
  if (v instanceof SharedArrayBuffer) return new Uint8Array(v).slice().buffer;
  const ctor = v.constructor as new (b: ArrayBuffer) => ArrayBufferView;
  const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice();
  try {
    return new ctor(bytes.buffer);
  } catch {
    return bytes;
  }
}

/** A module's call table: index i + 1 is entry i, a kernel function or another module's export. */
type CallTable = (ApiEntry | { name: string; owner: Module })[];

/** The module's code is not a module kemu can link (code.ts says why). */
class CodeError extends Error {}

/** A module may use GPL-only symbols while its own taint lacks P (decided anew each time). */
function gplok(mod: Module): boolean {
  return !(mod.taints & (1 << TAINT_PROPRIETARY_MODULE));
}

/** same_magic(): with CRCs the version part before the first space is not compared. */
function sameMagic(a: string, b: string, hasCrcs: boolean): boolean {
  if (hasCrcs) {
    a = a.slice(a.indexOf(" ") >= 0 ? a.indexOf(" ") : a.length);
    b = b.slice(b.indexOf(" ") >= 0 ? b.indexOf(" ") : b.length);
  }
  return a === b;
}

/**
 * The isolate's Math.random(): seeded from the boot seed and the module's name, so a module
 * sees the same numbers on every boot and its draws do not shift the kernel's own.
 */
function moduleRandom(seed: number, name: string): () => number {
  const r = new Prandom((seed ^ crc32(name)) >>> 0);
  return () => r.u32() / 2 ** 32;
}

/** What a call returns when the kernel refuses it: NULL for pointers that may be NULL, an
 *  ERR_PTR(-EINVAL) for those that return errors, -EINVAL for ints. */
function errorValue(ret: Kind): unknown {
  switch (ret.t) {
    case "int":
    case "num":
      return -EINVAL;
    case "o":
    case "s":
      return ret.nullable ? null : -EINVAL;
    case "bool":
      return false;
    case "str":
      return "";
    default:
      return null;
  }
}

/** The module's own frames in a V8 stack, innermost first: function and "file:line:col". */
function driverFrames(stack: string): { fn: string; where: string }[] {
  const out: { fn: string; where: string }[] = [];
  for (const line of stack.split("\n")) {
    const m = /^\s*at (?:async )?([^\s(]+) \((?:file|kemu):\/\/\/(drivers\/[^)]+)\)/.exec(line);
    // V8 names an object's method after its receiver ("Object.probe"); the kernel would not.
    if (m) out.push({ fn: m[1]!.replace(/^Object\./, ""), where: m[2]! });
  }
  return out;
}

/** Turn a loader errno into the message insmod prints (kmod's mod_strerror()). */
export function insmodError(file: string, err: number): KernelError {
  const e = -err;
  const msg =
    e === ENOEXEC ? "Invalid module format" : e === ENOENT ? "Unknown symbol in module" : e === EINVAL ? "Invalid parameters" : new KernelError(e).message.replace(/^[A-Z0-9]+: /, "");
  return new KernelError(e, `insmod: ERROR: could not insert module ${file}: ${msg}`);
}

