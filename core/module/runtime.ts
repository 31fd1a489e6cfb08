// How a module's code runs: isolated in its own V8 isolate (loadable, =m) or in the host
// (built-in, =y). The loader and the marshalling code see only this interface.

/** What a module's code registered while its top level ran. */
export interface ModuleInfo {
  init: number;
  exit: number;
  /** EXPORT_SYMBOL()ed functions: name -> function id. */
  exports: Record<string, number>;
}

export interface RuntimeStats {
  /** CPU time spent in the module's code, ns. */
  cpuNs: number;
  heapUsed: number;
  heapLimit: number;
  /** Crossings so far: calls of the module's functions by the kernel, and of the kernel by the module. */
  calls?: number;
  kcalls?: number;
}

/** The module's code failed: it threw, ran past its time limit or out of heap. */
export class DriverFault extends Error {
  readonly kind: "exception" | "timeout" | "heap" | "dead";
  readonly driverStack: string;
  constructor(kind: DriverFault["kind"], message: string, driverStack = "") {
    super(message);
    this.name = "DriverFault";
    this.kind = kind;
    this.driverStack = driverStack;
  }
}

/** The module's code does not link: it imports a name the shim does not export. */
export class LinkError extends Error {
  /** The kemu/kernel name that could not be resolved. */
  readonly missing: string;
  constructor(message: string, missing: string) {
    super(message);
    this.name = "LinkError";
    this.missing = missing;
  }
}

export interface ModuleRuntime {
  readonly kind: "isolated" | "built-in";
  /**
   * Link the code against its shim; `cjs` is the code's CommonJS form (code.ts). No module
   * code runs. Throws LinkError.
   */
  link(cjs: string): void | Promise<void>;
  /** Run the top level (module_init()/EXPORT_SYMBOL() registrations). Throws DriverFault. */
  evaluate(): ModuleInfo;
  /**
   * Call one of the module's functions by id with wire arguments; `sig` says how the shim
   * reads them (0: self-describing values). Throws DriverFault.
   */
  call(fn: number, sig: number, args: unknown[]): unknown;
  /**
   * The kernel killed the task running the module's code (an oops in a kernel function it
   * called): stop the code now, so nothing after the call runs. Called from inside a call.
   */
  kill(reason: DriverFault): void;
  dispose(): void;
  stats(): RuntimeStats;
}
