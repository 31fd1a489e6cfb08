// A loadable module's runtime: its own V8 isolate (isolated-vm), one context, its code as an
// ES module linked against its shim. Calls go in through one dispatcher, synchronously and
// with a time limit; they come out through one callback the shim hides from the driver.
// The context offers no ambient authority: no process, require, timers or console, and a
// Date and Math.random driven by the kernel's virtual clock and seed.

import ivm from "isolated-vm";
import { DriverFault, LinkError, type ModuleInfo, type ModuleRuntime, type RuntimeStats } from "./runtime.ts";
import { KCALL_GLOBAL, MAILBOX_GLOBAL } from "./shim.ts";

export interface IsolateOptions {
  name: string;
  shimSource: string;
  code: string;
  /** The kernel side of the shim's call function. */
  kcall: (index: number, args: unknown[]) => unknown;
  /** The module's transfer buffer, shared with the kernel's marshal. */
  mailbox: SharedArrayBuffer;
  memoryLimitMiB: number;
  timeoutMs: number;
  /** Virtual time in ms since the epoch, and a seeded random source, for the context. */
  now: () => number;
  random: () => number;
}


// Run before any module code: take away what a kernel module has no business using.
// WebAssembly goes too: its memory lives outside the isolate's heap limit.
const PRELUDE = `
delete globalThis.console;
delete globalThis.WebAssembly;
{
  const now = globalThis.__kemu_now, rnd = globalThis.__kemu_random;
  delete globalThis.__kemu_now; delete globalThis.__kemu_random;
  const RealDate = Date;
  class KernelDate extends RealDate {
    constructor(...a) { if (a.length === 0) super(now()); else super(...a); }
    static now() { return now(); }
  }
  globalThis.Date = KernelDate;
  Math.random = () => rnd();
}
`;

export class IsolateRuntime implements ModuleRuntime {
  readonly kind = "isolated";
  readonly #o: IsolateOptions;
  readonly #isolate: ivm.Isolate;
  readonly #context: ivm.Context;
  #shim: ivm.Module | null = null;
  #driver: ivm.Module | null = null;
  #dispatch: ivm.Reference<Function> | null = null;
  #info: ivm.Reference<Function> | null = null;
  #dead: DriverFault | null = null;
  #calls = 0;
  #kcalls = 0;

  constructor(o: IsolateOptions) {
    this.#o = o;
    this.#isolate = new ivm.Isolate({ memoryLimit: o.memoryLimitMiB });
    this.#context = this.#isolate.createContextSync();
    const g = this.#context.global;
    g.setSync("__kemu_now", new ivm.Callback(o.now));
    g.setSync("__kemu_random", new ivm.Callback(o.random));
    this.#context.evalSync(PRELUDE, { timeout: o.timeoutMs });
    g.setSync(KCALL_GLOBAL, new ivm.Callback((index: number, ...args: unknown[]) => {
      this.#kcalls++;
      return o.kcall(index, args);
    }));
    g.setSync(MAILBOX_GLOBAL, new ivm.ExternalCopy(o.mailbox).copyInto({ release: true }));
    this.#fast = { timeout: o.timeoutMs, result: { copy: true } };
    this.#copying = { timeout: o.timeoutMs, arguments: { copy: true }, result: { copy: true } };
  }

  /** applySync options: numbers only need no copying of the arguments. */
  readonly #fast: ivm.ReferenceApplyOptions;
  readonly #copying: ivm.ReferenceApplyOptions;
  readonly #fastNested: ivm.ReferenceApplyOptions = { result: { copy: true } };
  readonly #copyingNested: ivm.ReferenceApplyOptions = { arguments: { copy: true }, result: { copy: true } };
  /** Calls into the module under way (nested when it calls the kernel and is called back). */
  #depth = 0;
  /** When the outermost of them began (performance.now()). */
  #since = 0;


  link(): void {
    const o = this.#o;
    try {
      this.#shim = this.#isolate.compileModuleSync(o.shimSource, { filename: "file:///kemu/kernel.mjs" });
      this.#shim.instantiateSync(this.#context, () => {
        throw new Error("the kernel shim imports nothing");
      });
      this.#shim.evaluateSync({ timeout: o.timeoutMs });
      this.#driver = this.#isolate.compileModuleSync(o.code, { filename: `file:///drivers/${o.name}.mjs` });
      for (const spec of this.#driver.dependencySpecifiers) {
        if (spec !== "kemu/kernel") throw new LinkError(`${o.name}: imports '${spec}'; a module may import only kemu/kernel`, spec);
      }
      this.#driver.instantiateSync(this.#context, () => this.#shim!);
    } catch (e) {
      if (e instanceof LinkError) throw e;
      const msg = (e as Error).message ?? String(e);
      const m = /does not provide an export named '([^']+)'/.exec(msg);
      if (m) throw new LinkError(msg, m[1]!);
      throw this.#fault(e);
    }
    const ns = this.#shim.namespace;
    this.#dispatch = ns.getSync("__kemu_dispatch", { reference: true }) as ivm.Reference<Function>;
    this.#info = ns.getSync("__kemu_info", { reference: true }) as ivm.Reference<Function>;
  }

  evaluate(): ModuleInfo {
    this.#check();
    try {
      this.#driver!.evaluateSync({ timeout: this.#o.timeoutMs });
      return this.#info!.applySync(undefined, [], { timeout: this.#o.timeoutMs, result: { copy: true } }) as ModuleInfo;
    } catch (e) {
      throw this.#fault(e);
    }
  }

  call(fn: number, sig: number, args: unknown[]): unknown {
    this.#check();
    this.#calls++;
    let plain = true;
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a !== null && typeof a === "object") {
        plain = false;
        break;
      }
    }
    // A call made while the module is already running (it called the kernel, which calls it
    // back) runs under the outer call's time limit: no watchdog of its own to start and stop.
    const nested = this.#depth++ > 0;
    if (!nested) this.#since = performance.now();
    try {
      return this.#dispatch!.applySync(undefined, [fn, sig, ...args], plain ? (nested ? this.#fastNested : this.#fast) : nested ? this.#copyingNested : this.#copying);
    } catch (e) {
      throw this.#fault(e);
    } finally {
      this.#depth--;
    }
  }

  #check(): void {
    if (this.#dead) throw new DriverFault("dead", `module ${this.#o.name} is dead: ${this.#dead.message}`);
  }

  kill(reason: DriverFault): void {
    this.#dead ??= reason;
    // Disposing terminates the running code; the outer call then fails with #dead.
    if (!this.#isolate.isDisposed) this.#isolate.dispose();
  }

  /** Classify what isolated-vm threw, and remember that the module is now dead. */
  #fault(e: unknown): DriverFault {
    if (e instanceof DriverFault) return e;
    if (this.#dead) return this.#dead;
    const err = e as Error;
    const msg = err?.message ?? String(e);
    let fault: DriverFault;
    // The outer call's watchdog terminates a nested call with an error of its own.
    const overdue = this.#depth > 1 && performance.now() - this.#since >= this.#o.timeoutMs;
    if (/Script execution timed out/.test(msg) || overdue) {
      fault = new DriverFault("timeout", `did not return within ${this.#o.timeoutMs} ms`, err.stack ?? "");
    } else if (this.#isolate.isDisposed || /disposed during execution due to memory limit|Array buffer allocation failed/.test(msg)) {
      fault = new DriverFault("heap", `ran out of its ${this.#o.memoryLimitMiB} MiB heap`, "");
    } else {
      fault = new DriverFault("exception", `${err?.name ?? "Error"}: ${msg}`, err?.stack ?? "");
    }
    this.#dead = fault;
    return fault;
  }

  dispose(): void {
    this.#dispatch?.release();
    this.#info?.release();
    this.#dispatch = this.#info = null;
    this.#dead ??= new DriverFault("dead", `module ${this.#o.name} is unloaded`);
    if (!this.#isolate.isDisposed) this.#isolate.dispose();
  }

  stats(): RuntimeStats {
    const calls = this.#calls;
    const kcalls = this.#kcalls;
    if (this.#isolate.isDisposed) return { cpuNs: 0, heapUsed: 0, heapLimit: this.#o.memoryLimitMiB * 2 ** 20, calls, kcalls };
    const h = this.#isolate.getHeapStatisticsSync();
    return { cpuNs: Number(this.#isolate.cpuTime), heapUsed: h.used_heap_size + h.externally_allocated_size, heapLimit: this.#o.memoryLimitMiB * 2 ** 20, calls, kcalls };
  }
}
