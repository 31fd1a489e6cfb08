// The kernel side of the calling convention (abi.ts): turn what a module sent into kernel
// values, and kernel values into what the module receives. Anything malformed (a forged
// handle, a wrong type) raises ArgError; the call is refused without touching anything.

import { moduleOfFunction } from "../kernel/kallsyms.ts";
import type { Kernel } from "../kernel.ts";
import type { CallCtx, NestedObject } from "./api.ts";
import { parseKind, STRUCT_FIELDS, type Kind, type StructWire } from "./abi.ts";
import { HandleError } from "./handles.ts";
import type { Module } from "./module.ts";
import { DriverFault } from "./runtime.ts";
import { objectFields, STRUCT_TWINS } from "./twins.ts";

export class ArgError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArgError";
  }
}

/** A void * a module handed in: the kernel keeps it and gives it back unchanged. */
export class DriverPointer {
  readonly wire: { v: unknown } | { id: number };
  constructor(wire: { v: unknown } | { id: number }) {
    this.wire = wire;
  }
}


/** What %pf prints for a function: its name, with " [module]" for module code. */
export function symbolString(name: string, mod: string | undefined): string {
  return (name || "0x0") + (mod ? ` [${mod}]` : "");
}

const kindCache = new Map<string, Kind>();
export function kind(spec: string): Kind {
  let k = kindCache.get(spec);
  if (!k) kindCache.set(spec, (k = parseKind(spec)));
  return k;
}

/** Calls a module's function by its id; set up by the module's runtime. */
export type CallModule = (fnId: number, args: unknown[], name: string) => unknown;

export class Marshal {
  readonly #k: Kernel;
  readonly #mod: Module;
  readonly #ctx: CallCtx;
  readonly #callModule: CallModule;
  /** Module-owned structs: shim id -> the kernel's twin of it, and back. */
  readonly #structs = new Map<number, { type: string; obj: object }>();
  readonly #structIds = new WeakMap<object, number>();
  readonly #fns = new Map<string, Function>();
  readonly #ptrs = new Map<number, DriverPointer>();
  readonly #vals = new Map<string, DriverPointer>();

  constructor(k: Kernel, mod: Module, callModule: CallModule) {
    this.#k = k;
    this.#mod = mod;
    this.#ctx = { k, mod };
    this.#callModule = callModule;
  }

  get ctx(): CallCtx {
    return this.#ctx;
  }

  /** Module -> kernel. */
  in(kd: Kind, v: unknown): unknown {
    switch (kd.t) {
      case "int":
        if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new ArgError(`expected an integer, got ${show(v)}`);
        return v;
      case "num":
        if (typeof v !== "number" || !Number.isFinite(v)) throw new ArgError(`expected a number, got ${show(v)}`);
        return v;
      case "page":
        if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new ArgError(`expected a struct page (a pfn), got ${show(v)}`);
        return v;
      case "bool":
        return Boolean(v);
      case "str":
        if (typeof v !== "string") throw new ArgError(`expected a string, got ${show(v)}`);
        return v;
      case "bytes":
        if (!(v instanceof Uint8Array)) throw new ArgError(`expected a Uint8Array, got ${show(v)}`);
        return v;
      case "any":
      case "void":
        return v;
      case "p":
        return this.#ptrIn(v);
      case "o":
        if (v === null || v === undefined || v === 0) {
          if (kd.nullable) return null;
          throw new ArgError(`NULL ${kd.type} pointer`);
        }
        try {
          return this.#k.modules.handles.get(this.#mod.name, v, kd.type);
        } catch (e) {
          if (e instanceof HandleError) throw new ArgError(e.message);
          throw e;
        }
      case "s":
        return this.#structIn(kd.type, kd.nullable, v);
      case "fn":
        return this.#fnIn(kd, v);
    }
  }

  /** Kernel -> module. */
  out(kd: Kind, v: unknown): unknown {
    switch (kd.t) {
      case "o":
        if (v === null || v === undefined) return null;
        if (typeof v === "number") return v; // ERR_PTR
        return this.#objOut(kd.type, v as object);
      case "s":
        if (v === null || v === undefined) return null;
        if (typeof v === "number") return v;
        return { __s: this.#structIds.get(v as object) ?? 0 };
      case "p":
        if (!(v instanceof DriverPointer)) return null;
        return "id" in v.wire ? { __p: v.wire.id } : { __v: v.wire.v };
      case "page":
        return typeof v === "number" && v >= 0 ? v : null;
      case "bool":
        return Boolean(v);
      case "void":
        return undefined;
      default:
        return v;
    }
  }

  #objOut(type: string, obj: object): unknown {
    const handle = this.#k.modules.handles.handleFor(this.#mod.name, obj, type);
    const fields = objectFields(type, obj);
    for (const [name, value] of Object.entries(fields)) {
      if (value && typeof value === "object" && "__kemu_object" in value) {
        const n = value as NestedObject;
        fields[name] = this.#objOut(n.__kemu_object, n.obj);
      }
    }
    return { __o: handle, __f: fields };
  }

  #ptrIn(v: unknown): DriverPointer | null {
    if (v === null || v === undefined) return null;
    if (typeof v !== "object") throw new ArgError(`bad void * ${show(v)}`);
    if ("id" in v && typeof v.id === "number") {
      let p = this.#ptrs.get(v.id);
      if (!p) this.#ptrs.set(v.id, (p = new DriverPointer({ id: v.id })));
      return p;
    }
    if ("v" in v) {
      // Equal values are the same pointer, so devm_remove_action() can match what was added.
      const key = `${typeof v.v}:${String(v.v)}`;
      let p = this.#vals.get(key);
      if (!p) this.#vals.set(key, (p = new DriverPointer({ v: v.v })));
      return p;
    }
    throw new ArgError("bad void *");
  }

  #structIn(type: string, nullable: boolean, v: unknown): object | null {
    if (v === null || v === undefined) {
      if (nullable) return null;
      throw new ArgError(`NULL struct ${type} pointer`);
    }
    const w = v as StructWire;
    if (typeof w !== "object" || typeof w.id !== "number") throw new ArgError(`expected a struct ${type}`);
    let entry = this.#structs.get(w.id);
    if (!entry) {
      const twin = STRUCT_TWINS[type];
      if (!twin) throw new ArgError(`struct ${type} cannot be passed in`);
      entry = { type, obj: twin.create(this.#ctx) };
      this.#structs.set(w.id, entry);
      this.#structIds.set(entry.obj, w.id);
    }
    if (entry.type !== type) throw new ArgError(`struct ${type} expected, but this object was used as a struct ${entry.type}`);
    if (w.f) {
      const fields: Record<string, unknown> = {};
      const schema = STRUCT_FIELDS[type] ?? {};
      for (const [name, spec] of Object.entries(schema)) {
        if (name in w.f) fields[name] = this.in(kind(spec), w.f[name]);
      }
      STRUCT_TWINS[type]!.update?.(entry.obj, fields, this.#ctx);
    }
    return entry.obj;
  }


  /** The name of a module function as it arrives, [id, name]; null if `v` is not one. */
  fnName(v: unknown): string | null {
    if (!Array.isArray(v) || typeof v[0] !== "number" || !Number.isInteger(v[0]) || v[0] < 0) return null;
    return typeof v[1] === "string" && v[1] ? v[1] : `${this.#mod.name}_fn${v[0]}`;
  }

  /** A module function arrives as [id, name]: the name is what %pf prints for it. */
  #fnIn(kd: Extract<Kind, { t: "fn" }>, v: unknown): Function | null {
    if (v === null || v === undefined || v === 0) return null;
    const name = this.fnName(v);
    if (name === null) throw new ArgError(`expected a function, got ${show(v)}`);
    const id = (v as [number])[0];
    const key = `${id}`;
    let f = this.#fns.get(key);
    if (!f) {
      const args = kd.args;
      const ret = kd.ret;
      const call = this.#callModule;
      // What the kernel gets when the module fails in the call (it is contained already)
      // or answers with something that is not the right kind.
      const failed = () => (ret.t === "void" ? undefined : kd.onFault);
      // A kernel-side function that calls back into the module, converting both ways.
      f = (...a: unknown[]) => {
        const wire = args.map((ak, i) => this.out(ak, a[i]));
        let r: unknown;
        try {
          r = call(id, wire, name);
        } catch (e) {
          if (e instanceof DriverFault) return failed();
          throw e;
        }
        if (ret.t === "void") return undefined;
        // A C function that falls off its end without a return: kemu reads 0.
        if (r === undefined && (ret.t === "int" || ret.t === "num")) return 0;
        try {
          return this.in(ret, r);
        } catch (e) {
          if (!(e instanceof ArgError)) throw e;
          this.#k.printk(`\x013kemu: ${this.#mod.name}: ${name}() returned a bad value: ${e.message}\n`);
          return failed();
        }
      };
      Object.defineProperty(f, "name", { value: name });
      moduleOfFunction.set(f, this.#mod.name);
      this.#fns.set(key, f);
    }
    return f;
  }

  /** Release everything kept for this module. */
  clear(): void {
    this.#structs.clear();
    this.#fns.clear();
    this.#ptrs.clear();
    this.#vals.clear();
  }
}

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v);
  if (v === null) return "null";
  if (typeof v === "object") return Array.isArray(v) ? "an array" : "an object";
  return `${typeof v} ${String(v)}`;
}
