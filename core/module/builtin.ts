// A built-in module's runtime (=y): the same code and the same shim, run in the host instead
// of an isolate. No time limit and no heap limit, as for code linked into the kernel; the
// conversions of the shim still apply, so a driver behaves the same both ways.
//
// Both are ES modules. The host's ESM loader would keep every instance for the life of the
// process, so they are turned into CommonJS (esbuild) and run as functions: each load gets a
// fresh instance that goes when the module is freed.

import { runInThisContext } from "node:vm";
import { transformSync } from "esbuild";
import { codeImports } from "./ko.ts";
import { DriverFault, LinkError, type ModuleInfo, type ModuleRuntime, type RuntimeStats } from "./runtime.ts";

export interface BuiltinOptions {
  name: string;
  shimSource: string;
  code: string;
  kcall: (index: number, args: unknown[]) => unknown;
}

/** The global the shim takes its call function from while it is instantiated. */
export const BUILTIN_KCALL_GLOBAL = "__kemu_builtin_kcall";

interface ShimExports {
  __kemu_dispatch(id: number, args: unknown[], ret: string): unknown;
  __kemu_info(): ModuleInfo;
  [name: string]: unknown;
}

type CjsBody = (require: (spec: string) => unknown, module: { exports: Record<string, unknown> }, exports: Record<string, unknown>) => void;

/** ESM text -> CommonJS text, for the last few distinct texts (a driver reloaded, a shim). */
const compiled = new Map<string, string>();

function toCjs(source: string): string {
  let cjs = compiled.get(source);
  if (cjs === undefined) {
    cjs = transformSync(source, { format: "cjs", loader: "js", target: "es2022", logLevel: "silent" }).code;
    if (compiled.size >= 64) compiled.delete(compiled.keys().next().value!);
    compiled.set(source, cjs);
  }
  return cjs;
}

function compile(cjs: string, filename: string): CjsBody {
  return runInThisContext(`(function (require, module, exports) {${cjs}\n})`, { filename }) as CjsBody;
}

function run(body: CjsBody, imports: Record<string, unknown> | null): Record<string, unknown> {
  const module = { exports: {} as Record<string, unknown> };
  body(
    (spec) => {
      if (spec === "kemu/kernel" && imports) return imports;
      throw new LinkError(`a module may import only kemu/kernel, not '${spec}'`, spec);
    },
    module,
    module.exports,
  );
  return module.exports;
}

export class BuiltinRuntime implements ModuleRuntime {
  readonly kind = "built-in";
  readonly #o: BuiltinOptions;
  #shim: ShimExports | null = null;
  #driver: CjsBody | null = null;
  #cpuNs = 0;

  constructor(o: BuiltinOptions) {
    this.#o = o;
  }

  /** Instantiate the shim and check that every name the code imports is there. */
  link(): void {
    const o = this.#o;
    const g = globalThis as Record<string, unknown>;
    g[BUILTIN_KCALL_GLOBAL] = o.kcall;
    try {
      this.#shim = run(compile(toCjs(o.shimSource), "kemu:///kemu/kernel.mjs"), null) as ShimExports;
      const cjs = toCjs(o.code);
      for (const [, spec] of cjs.matchAll(/\brequire\("([^"]*)"\)/g)) {
        if (spec !== "kemu/kernel") throw new LinkError(`${o.name}: imports '${spec}'; a module may import only kemu/kernel`, spec!);
      }
      for (const name of codeImports(o.code)) {
        if (!(name in this.#shim)) throw new LinkError(`The requested module 'kemu/kernel' does not provide an export named '${name}'`, name);
      }
      this.#driver = compile(cjs, `kemu:///drivers/${o.name}.mjs`);
    } catch (e) {
      if (e instanceof LinkError) throw e;
      throw new DriverFault("exception", `${(e as Error).name ?? "Error"}: ${(e as Error).message ?? String(e)}`, (e as Error).stack ?? "");
    } finally {
      delete g[BUILTIN_KCALL_GLOBAL];
    }
  }

  evaluate(): ModuleInfo {
    this.#time(() => run(this.#driver!, this.#shim));
    return this.#shim!.__kemu_info();
  }

  call(fn: number, args: unknown[], ret: string): unknown {
    return this.#time(() => this.#shim!.__kemu_dispatch(fn, args, ret));
  }

  #time<T>(f: () => T): T {
    const t0 = performance.now();
    try {
      return f();
    } catch (e) {
      if (e instanceof LinkError) throw e;
      throw new DriverFault("exception", `${(e as Error).name ?? "Error"}: ${(e as Error).message ?? String(e)}`, (e as Error).stack ?? "");
    } finally {
      this.#cpuNs += (performance.now() - t0) * 1e6;
    }
  }

  /** Host code cannot be stopped from outside: the kernel's error unwinds through it, and
   *  every later call into the kernel fails, so it stops at its next one. */
  kill(_reason: DriverFault): void {}

  dispose(): void {
    this.#shim = null;
    this.#driver = null;
  }

  stats(): RuntimeStats {
    return { cpuNs: Math.round(this.#cpuNs), heapUsed: 0, heapLimit: 0 };
  }
}
