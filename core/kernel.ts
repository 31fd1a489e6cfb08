// The emulated kernel: Kernel.boot(config) composes the subsystems and owns the printk log,
// the taint state, the virtual clock and the hooks. Host code drives it through this class.

import { SyncHook } from "tapable";
import { Clock } from "./clock.ts";
import { resolveConfig, type BootConfig, type ResolvedConfig } from "./config.ts";
import { baseline, checkInvariants, checkLeaks, type BootBaseline } from "./debug-vm.ts";
import { ProcFs } from "./fs/procfs.ts";
import { BugReporter, KernelOops, type Site } from "./kernel/bug.ts";
import { Sched } from "./kernel/sched.ts";
import type { FaultAttr } from "./lib/fault-inject.ts";
import { Prandom } from "./lib/random.ts";
import { MM } from "./mm/mm.ts";
import { devmemHooks, mmHooks, type DevmemHooks, type MmHooks } from "./mm/devmem-hooks.ts";
import { PercpuRef, type PercpuRefEnv, type PercpuRefFunc } from "./mm/percpu-refcount.ts";
import { PrintkLog, type DmesgOptions, type PrintkRecord } from "./printk.ts";
import { Taint } from "./taint.ts";
import { profileFor, type VersionProfile } from "./version.ts";
import { DriverCore } from "./base/driver-core.ts";
import { devPrefix, type Device } from "./base/device.ts";
import { PlatformBus } from "./base/platform.ts";
import { PciSubsystem } from "./base/pci.ts";
import { Acpi } from "./acpi/bus.ts";
import { pmem_media_init, register_e820_pmem } from "./acpi/pmem-media.ts";
import { BlockLayer } from "./block/index.ts";
import { Hmm } from "./mm/hmm-devmem.ts";
import { insmodError, ModuleSubsystem, O_NONBLOCK, O_TRUNC, type InsmodOptions } from "./module/loader.ts";
import type { Module } from "./module/module.ts";
import { symbolString } from "./module/marshal.ts";
import { moduleOfFunction } from "./kernel/kallsyms.ts";
import { KernelError, EBUSY, EINVAL, EIO, ENOENT, ERRNO, strerror } from "./errno.ts";
import { readFile } from "node:fs/promises";
import { Processes, type Process } from "./kernel/process.ts";
import { proc_pid_status, show_maps } from "./fs/task_mmu.ts";
import { MiscDevices } from "./fs/chrdev.ts";
import { Devtmpfs } from "./fs/devtmpfs.ts";
import { CharDevices } from "./fs/cdev.ts";
import { Kmod } from "./kernel/kmod.ts";

export type KernelState = "booting" | "running" | "halted";

export class Kernel {
  readonly config: ResolvedConfig;
  readonly profile: VersionProfile;
  readonly clock = new Clock();
  readonly log: PrintkLog;
  readonly random: Prandom;
  readonly taint: Taint;
  readonly sched: Sched;
  readonly bugs: BugReporter;
  readonly mm: MM;
  readonly base: DriverCore;
  readonly platform: PlatformBus;
  /** PCI: bus 0000:00 with the configured GPUs, and ioremap() of their BARs. */
  readonly pci: PciSubsystem;
  readonly hmm: Hmm;
  readonly modules: ModuleSubsystem;
  readonly proc: ProcFs;
  /** User processes (k.spawn()). */
  readonly processes: Processes;
  /** The /dev nodes of registered devices. */
  readonly devtmpfs = new Devtmpfs();
  /** modprobe and udev's autoload of in-tree drivers. */
  readonly kmod: Kmod;
  /** Character devices drivers register with misc_register() (/dev/NAME). */
  readonly misc: MiscDevices;
  /** Character device regions, cdevs and device classes (fs/char_dev.c). */
  readonly chrdevs: CharDevices;
  /** ACPI tables (the NFIT) and namespace devices (ACPI0012). */
  readonly acpi: Acpi;
  /** Request queues, disks and /dev block device files. */
  readonly block: BlockLayer;
  /** Tapable hook sets, fixed at construction (principle 5). */
  readonly hooks: Readonly<{
    /** Every printk record as it completes: (record, formatted line). */
    printk: SyncHook<[PrintkRecord, string]>;
    /** Device memory: the CPU fault and page-free hooks, per pgmap (devmem-hooks.ts). */
    devmem: DevmemHooks;
    /** User address spaces: each handled fault and each invalidation of a range. */
    mm: MmHooks;
  }>;
  readonly cmdline = "console=ttyS0";
  readonly percpuRefEnv: PercpuRefEnv;
  #state: KernelState = "booting";
  #baseline: BootBaseline | null = null;
  #ptrKey: bigint | null = null;

  private constructor(config: ResolvedConfig) {
    this.config = config;
    this.profile = profileFor(config.version);
    this.log = new PrintkLog(this.clock, config.logBufLen);
    this.hooks = Object.freeze({ printk: new SyncHook<[PrintkRecord, string]>(["record", "line"]), devmem: devmemHooks(), mm: mmHooks() });
    this.log.onLine((rec, line) => this.hooks.printk.call(rec, line));
    if (config.console) {
      const out = config.console;
      this.log.onLine((rec, line) => {
        if (rec.level < this.log.consoleLoglevel) out(line);
      });
    }
    this.random = new Prandom(config.seed);
    this.taint = new Taint(this.profile.taintFlagCount, (t) => this.printk(t));
    this.sched = new Sched({
      clock: this.clock,
      printk: (t) => this.printk(t),
      taint: this.taint,
      release: this.profile.release,
      frames: () => [...this.bugs.stack].reverse(),
    });
    this.log.owner = () => this.sched.current;
    this.bugs = new BugReporter({
      printk: (t) => this.printk(t),
      taint: this.taint,
      sched: this.sched,
      random: this.random,
      release: this.profile.release,
      modulesLinkedIn: () => this.modulesLinkedIn(),
    });
    this.percpuRefEnv = {
      sched: this.sched,
      warnOnce: (key, func, message) => void this.warnOnce(key, { file: "lib/percpu-refcount.c", func }, message),
      symbolName: (fn) => this.symbolName(fn),
    };
    this.mm = new MM(this);
    this.base = new DriverCore(this);
    this.modules = new ModuleSubsystem(this);
    this.platform = new PlatformBus(this);
    this.pci = new PciSubsystem(this);
    this.hmm = new Hmm(this);
    this.misc = new MiscDevices(this);
    this.kmod = new Kmod(this, config.modulesDir);
    this.proc = new ProcFs(this);
    this.chrdevs = new CharDevices(this);
    this.acpi = new Acpi(this);
    this.block = new BlockLayer(this);
    this.processes = new Processes(this);
  }

  /** Boot a kernel. Throws ConfigError naming the field for a bad configuration. */
  static async boot(config: BootConfig = {}): Promise<Kernel> {
    const k = new Kernel(resolveConfig(config));
    k.#boot();
    // systemd-udevd coldplug: the drivers of the devices the firmware presented.
    if (k.config.autoload) await k.kmod.settle();
    return k;
  }

  #boot(): void {
    this.printk(`\x015${this.banner()}\n`);
    this.printk(`\x016Command line: ${this.cmdline}\n`);
    this.mm.boot();
    this.printk(`\x015Kernel command line: ${this.cmdline}\n`);
    this.pci.boot();
    pmem_media_init(this);
    this.acpi.boot();
    register_e820_pmem(this);
    this.clock.advance(1_200_000_000); // the rest of start_kernel() and the initcalls
    this.printk("\x016Run /sbin/init as init process\n");
    this.sched.idle();
    this.#state = "running";
    this.#baseline = baseline(this);
  }

  get state(): KernelState {
    return this.#state;
  }

  /** "Linux version 5.0.0 (kemu@kemu) ..." as /proc/version has it. */
  banner(): string {
    return `Linux version ${this.profile.release} (kemu@kemu) (kemu emulator) #1 SMP ${this.profile.buildDate}`;
  }

  /** printk(): text with an optional KERN_ level prefix. */
  printk(text: string): void {
    this.log.printk(text);
  }

  /** dmesg: the log, one "[    1.234567] text" line per line. */
  dmesg(opts: DmesgOptions = {}): string {
    const lines = this.log.lines(opts);
    return lines.length ? lines.join("\n") + "\n" : "";
  }

  /** print_tainted(): "Not tainted" or "Tainted: P           O     ". */
  tainted(): string {
    return String(this.taint);
  }

  /** Read a /proc, /sys or debugfs file (and /proc/PID/maps, /proc/PID/status). */
  read(path: string): string {
    const m = /^\/proc\/(\d+)\/(maps|status)$/.exec(path);
    if (m) {
      const p = this.processes.get(Number(m[1]));
      if (!p) throw new KernelError(ENOENT, `${path}: No such file or directory`);
      return m[2] === "maps" ? show_maps(p.mm) : proc_pid_status(p);
    }
    return this.proc.read(path);
  }

  /** Start a user process named `comm` with an empty address space. */
  spawn(comm: string): Process {
    if (this.#state !== "running") throw new KernelError(EINVAL, `spawn: the kernel is ${this.#state}`);
    return this.processes.spawn(comm);
  }

  /** Write a /proc, /sys or debugfs file (e.g. /proc/sys/kernel/tainted). */
  write(path: string, data: string): void {
    this.proc.write(path, data);
  }

  /** WARN(1, msg) at `site`. */
  warn(site: Site, message: string | null): true {
    return this.bugs.warn(site, message);
  }

  /** WARN_ONCE(1, msg): `key` names the call site. */
  warnOnce(key: string, site: Site, message: string | null): boolean {
    return this.bugs.warnOnce(key, site, message);
  }

  /** dev_WARN(dev, fmt): WARN with the dev_printk prefix. */
  dev_WARN(dev: Device, site: Site, message: string): true {
    return this.warn(site, devPrefix(dev) + message);
  }

  dev_WARN_ONCE(dev: Device, key: string, site: Site, message: string): boolean {
    return this.warnOnce(key, site, devPrefix(dev) + message);
  }

  /** fail_dump(): the FAULT_INJECTION lines. */
  faultReport(attr: FaultAttr): void {
    if (attr.verbose <= 0) return;
    this.printk(
      `\x015FAULT_INJECTION: forcing a failure.\nname ${attr.name}, interval ${attr.interval}, probability ${attr.probability}, ` +
        `space ${attr.space}, times ${attr.times}\n`,
    );
    if (attr.verbose > 1) this.bugs.dumpStack(4);
  }

  /**
   * %p (4.15+): a pointer hashed with a per-boot key, printed as 16 hex digits of which the
   * top 8 are zero on 64-bit, so logs do not leak addresses.
   */
  hashPointer(addr: bigint): string {
    this.#ptrKey ??= BigInt(this.random.u32()) << 32n | BigInt(this.random.u32());
    let x = (addr ^ this.#ptrKey) & 0xffffffffffffffffn;
    x = ((x ^ (x >> 33n)) * 0xff51afd7ed558ccdn) & 0xffffffffffffffffn;
    x = ((x ^ (x >> 33n)) * 0xc4ceb9fe1a85ec53n) & 0xffffffffffffffffn;
    x ^= x >> 33n;
    return (x & 0xffffffffn).toString(16).padStart(16, "0");
  }

  /** %pf/%ps of an emulated function: its name, with " [module]" for module code. */
  symbolName(fn: Function): string {
    return symbolString(fn.name, moduleOfFunction.get(fn));
  }

  /** What print_modules() prints after "Modules linked in:". */
  modulesLinkedIn(): string {
    return this.modules.modulesLinkedIn();
  }

  /** The CPU goes idle: deferred work runs, modules that died meanwhile are torn down. */
  settle(): void {
    this.sched.idle();
    this.modules.reapDead();
  }

  /**
   * insmod: load a module file (a path or its bytes) as `insmod` would, as a new task.
   * Throws a KernelError with insmod's message ("could not insert module ...") on failure;
   * `filename` names bytes in that message (default "module.ko").
   */
  async insmod(file: string | Uint8Array, opts: InsmodOptions & { filename?: string } = {}): Promise<Module> {
    let bytes: Uint8Array;
    try {
      bytes = typeof file === "string" ? new Uint8Array(await readFile(file)) : file;
    } catch (e) {
      // kmod: the file could not be opened, so there was nothing to insert.
      const code = (e as NodeJS.ErrnoException).code ?? "EIO";
      const errno = ERRNO[code] ?? EIO;
      throw new KernelError(errno, `insmod: ERROR: could not load module ${file}: ${strerror(-errno)}`);
    }
    const name = typeof file === "string" ? file : (opts.filename ?? "module.ko");
    try {
      return await this.sched.runAsAsync("insmod", async () => {
        const r = await this.modules.init_module(bytes, opts);
        if (typeof r === "number") throw insmodError(name, r);
        return r;
      });
    } finally {
      this.settle();
      // udevd: the devices the module added get their drivers.
      if (this.config.autoload) await this.kmod.settle();
    }
  }

  /**
   * modprobe NAME|ALIAS: the in-tree module (from `kemu modules`' build/drivers/<version>)
   * and the modules it depends on, those first; returns the modules it loaded.
   */
  modprobe(nameOrAlias: string, opts: InsmodOptions = {}): Promise<Module[]> {
    return this.kmod.modprobe(nameOrAlias, opts);
  }

  /**
   * rmmod: kmod's checks (not loaded, in use), then delete_module(O_NONBLOCK[|O_TRUNC]).
   * Throws a KernelError with rmmod's message on failure.
   */
  rmmod(name: string, opts: { force?: boolean } = {}): void {
    const err = (e: number, msg: string) => new KernelError(e, `rmmod: ERROR: ${msg}`);
    // check_module_inuse(), skipped by rmmod -f.
    if (!opts.force) {
      const mod = this.modules.find_module(name);
      if (!mod) throw err(ENOENT, `Module ${name} is not currently loaded`);
      if (mod.sourceList.length) throw err(EBUSY, `Module ${name} is in use by: ${mod.sourceList.map((m) => m.name).join(" ")}`);
      if (mod.refcount !== 0) throw err(EBUSY, `Module ${name} is in use`);
    }
    const rc = this.sched.runAs("rmmod", () => this.modules.delete_module(name, O_NONBLOCK | (opts.force ? O_TRUNC : 0)));
    this.settle();
    if (rc) throw err(-rc, `could not remove module ${name}: ${strerror(rc)}`);
  }

  /** lsmod */
  lsmod(): string {
    return this.modules.lsmod();
  }

  /** percpu_ref_init() on a new ref. */
  percpu_ref_init(release: PercpuRefFunc, flags = 0): PercpuRef {
    const ref = new PercpuRef();
    ref.init(this.percpuRefEnv, release, flags);
    return ref;
  }

  /** DEBUG_VM-style consistency check; an empty list means consistent. */
  checkInvariants(): string[] {
    return checkInvariants(this);
  }

  /** After shutdown(): what was not given back, compared with the end of boot. */
  leaks(): string[] {
    if (!this.#baseline) throw new KernelError(EINVAL, "leaks(): the kernel never finished booting");
    return checkLeaks(this, this.#baseline);
  }

  /** Kill the processes, unload modules (newest first), unbind and unregister every device, power off. */
  async shutdown(): Promise<void> {
    if (this.#state === "halted") return;
    this.settle();
    // Processes are killed before the modules whose memory and devices they may still use.
    this.processes.killAll();
    this.settle();
    for (const m of [...this.modules.list]) {
      let why = "";
      try {
        const rc = this.sched.runAs("modprobe", () => this.modules.delete_module(m.name, O_NONBLOCK | O_TRUNC));
        if (rc) why = strerror(rc);
      } catch (e) {
        // The unload oopsed (a BUG in the module's accounting): the report is out; go on.
        if (!(e instanceof KernelOops)) throw e;
        why = "the unload oopsed";
      }
      if (why) this.printk(`\x013kemu: shutdown: ${m.name} stays loaded: ${why}\n`);
    }
    for (const dev of [...this.base.devices].reverse()) this.base.device_unregister(dev);
    for (const bus of [...this.base.buses].reverse()) this.base.bus_unregister(bus);
    this.settle();
    this.mm.physmem.detachFiles(); // what reached the pmem persists in its files
    this.printk("\x015reboot: Power down\n");
    this.#state = "halted";
  }
}
