// A built-in module's runtime (=y): the same code and the same shim, imported into the host
// instead of an isolate. No time limit and no heap limit, as for code linked into the kernel;
// the conversions of the shim still apply, so a driver behaves the same both ways.

import { DriverFault, LinkError, type ModuleInfo, type ModuleRuntime, type RuntimeStats } from "./runtime.ts";

export interface BuiltinOptions {
  name: string;
  shimSource: string;
  code: string;
  kcall: (index: number, args: unknown[]) => unknown;
  /** The global the shim takes its call function from; unique per load. */
  kcallGlobal: string;
}

function dataUrl(source: string): string {
  return "data:text/javascript;base64," + Buffer.from(source).toString("base64");
}

interface ShimExports {
  __kemu_dispatch(id: number, args: unknown[], ret: string): unknown;
  __kemu_info(): ModuleInfo;
}

export class BuiltinRuntime implements ModuleRuntime {
  readonly kind = "built-in";
  readonly #o: BuiltinOptions;
  #shim: ShimExports | null = null;
  #info: ModuleInfo | null = null;
  #cpuNs = 0;

  constructor(o: BuiltinOptions) {
    this.#o = o;
  }

  /** Importing links and runs the top level at once; the loader calls this after its checks. */
  async link(): Promise<void> {
    const o = this.#o;
    const g = globalThis as Record<string, unknown>;
    g[o.kcallGlobal] = o.kcall;
    const shimUrl = dataUrl(o.shimSource);
    try {
      this.#shim = (await import(shimUrl)) as ShimExports;
      const code = o.code.replaceAll(/from\s*"kemu\/kernel"/g, `from ${JSON.stringify(shimUrl)}`);
      if (/from\s*"(?!data:)[^"]*"|import\s*\(/.test(code)) throw new LinkError(`${o.name}: a module may import only kemu/kernel`, "");
      const t0 = performance.now();
      await import(dataUrl(code + `\n//# sourceURL=kemu:///drivers/${o.name}.mjs`));
      this.#cpuNs += (performance.now() - t0) * 1e6;
      this.#info = this.#shim.__kemu_info();
    } catch (e) {
      if (e instanceof LinkError) throw e;
      const msg = (e as Error).message ?? String(e);
      const m = /does not provide an export named '([^']+)'/.exec(msg);
      if (m) throw new LinkError(msg, m[1]!);
      throw new DriverFault("exception", `${(e as Error).name ?? "Error"}: ${msg}`, (e as Error).stack ?? "");
    } finally {
      delete g[o.kcallGlobal];
    }
  }

  evaluate(): ModuleInfo {
    return this.#info!;
  }

  call(fn: number, args: unknown[], ret: string): unknown {
    const t0 = performance.now();
    try {
      return this.#shim!.__kemu_dispatch(fn, args, ret);
    } catch (e) {
      throw new DriverFault("exception", `${(e as Error).name ?? "Error"}: ${(e as Error).message ?? String(e)}`, (e as Error).stack ?? "");
    } finally {
      this.#cpuNs += (performance.now() - t0) * 1e6;
    }
  }

  dispose(): void {
    this.#shim = null;
  }

  stats(): RuntimeStats {
    return { cpuNs: Math.round(this.#cpuNs), heapUsed: 0, heapLimit: 0 };
  }
}
