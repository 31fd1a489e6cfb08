// The kernel side of the calling convention (abi.ts): turn what a module sent into kernel
// values, and kernel values into what the module receives. Anything malformed (a forged
// handle, a wrong type) raises ArgError; the call is refused without touching anything.
//
// Both sides know the kind of every argument and result, so the common values cross as plain
// numbers (a structured copy of an object or an array costs a microsecond or more per
// crossing; a number almost nothing):
//
//   o:T    the handle, once the shim holds the object's current fields; { __o, __f } otherwise
//   s:T    the struct's id; from the module, { id, f } when its fields changed since last time
//   p      the module's id for an object it passed; { v } / { __v } for any other value
//   arrays (f64, bytes, io:*) a place in the module's transfer buffer: offset * 2^26 + length.
//          The sender copies the array in, the receiver copies it out (principle 3: copies on
//          both sides, neither keeps a reference); after the call the callee's copy of an io:
//          array travels back the same way. An array too large for the buffer travels as a
//          structured copy instead ({ __r, __kio } carries io: arrays back).
//
// Each transfer is consumed before anything else uses the buffer (the receiver copies the
// arguments out first thing, the caller copies io: arrays back first thing after the call),
// so every call starts at offset 0 and nested calls need no space of their own.

import { moduleOfFunction } from "../kernel/kallsyms.ts";
import type { Kernel } from "../kernel.ts";
import type { CallCtx, NestedObject } from "./api.ts";
import { parseKind, STRUCT_FIELDS, type Kind, type StructWire } from "./abi.ts";
import { HandleError } from "./handles.ts";
import type { Module } from "./module.ts";
import { DriverFault } from "./runtime.ts";
import { OBJECT_LIVE, OBJECT_MUTABLE, objectFieldInfo, objectFields, STRUCT_TWINS } from "./twins.ts";

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

/**
 * Each module's transfer buffer, 1 MiB: arrays from its start; at its end two queues and
 * their lengths (in f64 slots): void kernel calls the module made and the kernel has not run
 * yet (MB_QUEUE), and notifications for the module the kernel deferred (MB_NOTIF).
 */
export const MAILBOX_BYTES = 1 << 20;
const MB_SLOTS = MAILBOX_BYTES / 8;
/** Slot holding the number of f64s queued at MB_QUEUE: [call index, args...] per call. */
export const MB_QLEN = MB_SLOTS - 1;
/** Slot holding the number of f64s queued at MB_NOTIF: [fn id, sig, nargs, args...] each. */
export const MB_NLEN = MB_SLOTS - 2;
/** Slot holding how many bytes of arrays the module's current call into the kernel carries. */
export const MB_USED = MB_SLOTS - 3;
export const MB_QCAP = 4096;
export const MB_NCAP = 4093;
export const MB_NOTIF = MB_SLOTS - 3 - MB_NCAP;
export const MB_QUEUE = MB_NOTIF - MB_QCAP;
/** Arrays may use bytes [0, MB_ARRAYS) (983040: 122880 u64 entries in one call). */
export const MB_ARRAYS = MB_QUEUE * 8;
/** An array in the transfer buffer travels as offset * SLOT + length. */
export const MAILBOX_SLOT = 2 ** 26;

type TypedArray = Float64Array | Uint8Array;

/** One array the callee writes into: where it sits in the buffer (-1: it came as a copy). */
interface IoSlot {
  arr: TypedArray;
  readonly off: number;
}

/** The state of one crossing: the next free place in the buffer, the io: arrays. */
export interface Xfer {
  off: number;
  io: IoSlot[] | null;
}

export function newXfer(): Xfer {
  return { off: 0, io: null };
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

const structSchemas = new Map<string, readonly (readonly [string, Kind])[]>();

/** The fields of a module-owned struct type (STRUCT_FIELDS) with their kinds, parsed once. */
function structSchema(type: string): readonly (readonly [string, Kind])[] {
  let s = structSchemas.get(type);
  if (!s) structSchemas.set(type, (s = Object.entries(STRUCT_FIELDS[type] ?? {}).map(([name, spec]) => [name, kind(spec)] as const)));
  return s;
}

/**
 * Calls a module's function by its id; `sig` tells the shim how to read the arguments;
 * `after` (the copy back of io: arrays) runs as soon as the call returns.
 */
export type CallModule = (fnId: number, sig: number, args: unknown[], name: string, after: ((r: unknown) => unknown) | null) => unknown;

interface StructEntry {
  readonly type: string;
  readonly obj: object;
  /** The last fields the module sent could not be read: the struct is unusable until fixed. */
  poisoned: boolean;
}

export class Marshal {
  readonly #k: Kernel;
  readonly #mod: Module;
  readonly #ctx: CallCtx;
  readonly #callModule: CallModule;
  /** The module's transfer buffer, and views of it. */
  readonly mailbox: SharedArrayBuffer;
  readonly #mbF: Float64Array;
  readonly #mbB: Uint8Array;
  /** Module-owned structs: shim id -> the kernel's twin of it, and back. */
  readonly #structs = new Map<number, StructEntry>();
  readonly #structIds = new WeakMap<object, number>();
  readonly #fns = new Map<string, Function>();
  readonly #ptrs = new Map<number, DriverPointer>();
  readonly #vals = new Map<string, DriverPointer>();
  /** The fields the shim holds for each handle (the raw values sent last, in field order). */
  readonly #sent = new Map<number, unknown[]>();

  constructor(k: Kernel, mod: Module, callModule: CallModule, mailbox: SharedArrayBuffer) {
    this.#k = k;
    this.#mod = mod;
    this.#ctx = { k, mod };
    this.#callModule = callModule;
    this.mailbox = mailbox;
    this.#mbF = new Float64Array(mailbox);
    this.#mbB = new Uint8Array(mailbox);
  }

  get ctx(): CallCtx {
    return this.#ctx;
  }

  /** Module -> kernel. `x` is the crossing's state (io: arrays are recorded there). */
  in(kd: Kind, v: unknown, x: Xfer | null = null): unknown {
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
        return this.#arrayIn("bytes", v, false, x);
      case "f64":
        return this.#arrayIn("f64", v, false, x);
      case "io":
        return this.#arrayIn(kd.of, v, true, x);
      case "any":
      case "void":
      case "symbol":
        return v;
      case "p":
        return this.#ptrIn(v);
      case "o":
        if (v === null || v === undefined || v === 0) {
          if (kd.nullable) return null;
          throw new ArgError(`NULL ${kd.type} pointer`);
        }
        return this.#handle(kd.type, v);
      case "s":
        return this.#structIn(kd.type, kd.nullable, v, x);
      case "fn":
        return this.#fnIn(kd, v);
    }
  }

  /** The kernel object behind handle `h`, checked for owner, type and life. */
  #handle(type: string, h: unknown): object {
    let obj: object;
    try {
      obj = this.#k.modules.handles.get(this.#mod.name, h, type);
    } catch (e) {
      if (e instanceof HandleError) throw new ArgError(e.message);
      throw e;
    }
    const live = OBJECT_LIVE[type];
    if (live && !live(obj, this.#k)) throw new ArgError(`handle ${String(h)} (${type}) refers to an object that is gone`);
    return obj;
  }

  /** Kernel -> module. `x` is the crossing's state; arrays go into the transfer buffer. */
  out(kd: Kind, v: unknown, x: Xfer | null = null): unknown {
    switch (kd.t) {
      case "o":
        if (v === null || v === undefined) return null;
        if (typeof v === "number") return v; // ERR_PTR
        return this.#objOut(kd.type, v as object, true);
      case "s":
        if (v === null || v === undefined) return null;
        if (typeof v === "number") return v;
        return this.#structIds.get(v as object) ?? null;
      case "p":
        return this.#ptrOut(v);
      case "page":
        return typeof v === "number" && v >= 0 ? v : null;
      case "bool":
        return Boolean(v);
      case "void":
        return undefined;
      case "bytes":
      case "f64":
        return this.#arrayOut(v, false, x);
      case "io":
        return this.#arrayOut(v, true, x);
      default:
        return v;
    }
  }

  /** A kernel object as a self-describing value (the data call, fields of other objects). */
  wireObject(type: string, obj: object): unknown {
    return this.#objOut(type, obj, false);
  }

  // ---- arrays ----------------------------------------------------------------------------

  #arrayIn(of: "bytes" | "f64", v: unknown, io: boolean, x: Xfer | null): TypedArray | null {
    if (v === null || v === undefined) return null;
    const f64 = of === "f64";
    let arr: TypedArray;
    let off = -1;
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v) || v < 0) throw new ArgError(`expected a ${f64 ? "Float64Array" : "Uint8Array"}, got ${show(v)}`);
      off = Math.floor(v / MAILBOX_SLOT);
      const n = v - off * MAILBOX_SLOT;
      const size = f64 ? 8 : 1;
      if (off % size || off + n * size > MB_ARRAYS) throw new ArgError(`array at ${off} of ${n} entries is outside the transfer buffer`);
      arr = f64 ? this.#mbF.slice(off / 8, off / 8 + n) : this.#mbB.slice(off, off + n);
      if (x) x.off = Math.max(x.off, align8(off + n * size));
    } else if (f64 ? v instanceof Float64Array : v instanceof Uint8Array) {
      // Too large for the buffer: a structured copy (isolated), or the module's own array
      // (built in), which the kernel copies.
      arr = (v as TypedArray).slice();
    } else {
      throw new ArgError(`expected a ${f64 ? "Float64Array" : "Uint8Array"}, got ${show(v)}`);
    }
    if (io && x) (x.io ??= []).push({ arr, off });
    return arr;
  }

  #arrayOut(v: unknown, io: boolean, x: Xfer | null): unknown {
    if (!(v instanceof Float64Array || v instanceof Uint8Array)) return null;
    const xf = x ?? newXfer();
    const off = align8(xf.off);
    const bytes = v.byteLength;
    if (off + bytes > MB_ARRAYS) {
      if (io) (xf.io ??= []).push({ arr: v, off: -1 });
      return v.slice();
    }
    if (v instanceof Float64Array) this.#mbF.set(v, off / 8);
    else this.#mbB.set(v, off);
    xf.off = off + bytes;
    if (io) (xf.io ??= []).push({ arr: v, off });
    return off * MAILBOX_SLOT + v.length;
  }

  /**
   * After a module called the kernel: the io: arrays the kernel wrote go back into the buffer
   * where they came from. Arrays that came as copies come back in the result: the wrapped
   * result, or `r` itself when there are none.
   */
  ioToModule(x: Xfer, r: unknown): unknown {
    if (!x.io) return r;
    let kio: TypedArray[] | null = null;
    for (const s of x.io) {
      if (s.off < 0) (kio ??= []).push(s.arr);
      else if (s.arr instanceof Float64Array) this.#mbF.set(s.arr, s.off / 8);
      else this.#mbB.set(s.arr, s.off);
    }
    return kio ? { __r: r, __kio: kio } : r;
  }

  /** After the kernel called a module: copy what the module wrote into the io: arrays back. */
  #ioFromModule(x: Xfer, r: unknown): unknown {
    let kio: unknown[] | null = null;
    if (r !== null && typeof r === "object" && "__kio" in r) {
      kio = Array.isArray((r as { __kio: unknown }).__kio) ? ((r as { __kio: unknown[] }).__kio) : [];
      r = (r as unknown as { __r: unknown }).__r;
    }
    let j = 0;
    for (const s of x.io!) {
      if (s.off >= 0) {
        if (s.arr instanceof Float64Array) s.arr.set(this.#mbF.subarray(s.off / 8, s.off / 8 + s.arr.length));
        else s.arr.set(this.#mbB.subarray(s.off, s.off + s.arr.length));
        continue;
      }
      const back = kio?.[j++];
      if (back instanceof s.arr.constructor && (back as TypedArray).length === s.arr.length) s.arr.set(back as TypedArray);
    }
    return r;
  }

  // ---- kernel objects --------------------------------------------------------------------

  /**
   * A kernel object for the module: its handle alone when the shim already holds its current
   * fields (`compact`), else { __o, __f }. Fields the module owns once it has them (a file's
   * private_data) travel only with the first.
   */
  #objOut(type: string, obj: object, compact: boolean): unknown {
    const handle = this.#k.modules.handles.handleFor(this.#mod.name, obj, type);
    const prev = this.#sent.get(handle);
    if (prev !== undefined && (!OBJECT_MUTABLE.has(type) || this.#same(type, obj, prev))) return compact ? handle : { __o: handle };
    const info = objectFieldInfo(type);
    const fields = objectFields(type, obj);
    const raw = new Array<unknown>(info.length);
    for (let i = 0; i < info.length; i++) raw[i] = (obj as Record<string, unknown>)[info[i]!.name];
    this.#sent.set(handle, raw);
    const wire: Record<string, unknown> = {};
    for (const f of info) if (!(prev && f.once)) wire[f.name] = this.#fieldOut(fields[f.name]);
    return { __o: handle, __f: wire };
  }

  /** Are `obj`'s fields (and those of the mutable objects it holds) what the shim holds? */
  #same(type: string, obj: object, prev: unknown[]): boolean {
    const info = objectFieldInfo(type);
    for (let i = 0; i < info.length; i++) {
      const f = info[i]!;
      if (f.once) continue;
      const v = (obj as Record<string, unknown>)[f.name];
      if (v !== prev[i]) return false;
      if (f.nested && v && OBJECT_MUTABLE.has(f.nested)) {
        const h = this.#k.modules.handles.handleFor(this.#mod.name, v as object, f.nested);
        const p = this.#sent.get(h);
        if (!p || !this.#same(f.nested, v as object, p)) return false;
      }
    }
    return true;
  }

  /** A field value, self-describing. */
  #fieldOut(value: unknown): unknown {
    if (value && typeof value === "object") {
      if ("__kemu_object" in value) {
        const n = value as NestedObject;
        return this.#objOut(n.__kemu_object, n.obj, false);
      }
      if (value instanceof DriverPointer) return "id" in value.wire ? { __p: value.wire.id } : { __v: value.wire.v };
      const id = this.#structIds.get(value);
      if (id !== undefined) return { __s: id };
      return null;
    }
    return value;
  }

  // ---- void * ----------------------------------------------------------------------------

  #ptrIn(v: unknown): DriverPointer | null {
    if (v === null || v === undefined) return null;
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v) || v <= 0) throw new ArgError(`bad void * ${show(v)}`);
      return this.#ptrById(v);
    }
    if (typeof v !== "object") throw new ArgError(`bad void * ${show(v)}`);
    if ("id" in v && typeof v.id === "number") return this.#ptrById(v.id);
    if ("v" in v) {
      // Equal values are the same pointer, so devm_remove_action() can match what was added.
      const key = `${typeof v.v}:${String(v.v)}`;
      let p = this.#vals.get(key);
      if (!p) this.#vals.set(key, (p = new DriverPointer({ v: v.v })));
      return p;
    }
    throw new ArgError("bad void *");
  }

  #ptrById(id: number): DriverPointer {
    let p = this.#ptrs.get(id);
    if (!p) this.#ptrs.set(id, (p = new DriverPointer({ id })));
    return p;
  }

  #ptrOut(v: unknown): unknown {
    if (!(v instanceof DriverPointer)) return null;
    return "id" in v.wire ? v.wire.id : { __v: v.wire.v };
  }

  // ---- the module's structs ----------------------------------------------------------------

  #structIn(type: string, nullable: boolean, v: unknown, x: Xfer | null): object | null {
    if (v === null || v === undefined) {
      if (nullable) return null;
      throw new ArgError(`NULL struct ${type} pointer`);
    }
    if (typeof v === "number") {
      // The shim sends only the id when no field changed since the struct last travelled.
      const entry = this.#structs.get(v);
      if (!entry) throw new ArgError(`struct ${type} ${show(v)} was never passed in`);
      if (entry.type !== type) throw new ArgError(`struct ${type} expected, but this object was used as a struct ${entry.type}`);
      if (entry.poisoned) throw new ArgError(`struct ${type} has a field the kernel cannot read`);
      return entry.obj;
    }
    const w = v as StructWire;
    if (typeof w !== "object" || typeof w.id !== "number") throw new ArgError(`expected a struct ${type}`);
    let entry = this.#structs.get(w.id);
    if (!entry) {
      const twin = STRUCT_TWINS[type];
      if (!twin) throw new ArgError(`struct ${type} cannot be passed in`);
      entry = { type, obj: twin.create(this.#ctx), poisoned: false };
      this.#structs.set(w.id, entry);
      this.#structIds.set(entry.obj, w.id);
    }
    if (entry.type !== type) throw new ArgError(`struct ${type} expected, but this object was used as a struct ${entry.type}`);
    if (w.f) {
      const fields: Record<string, unknown> = {};
      try {
        for (const [name, kd] of structSchema(type)) {
          if (name in w.f) fields[name] = this.in(kd, w.f[name], x);
        }
      } catch (e) {
        entry.poisoned = true;
        throw e;
      }
      entry.poisoned = false;
      const twin = STRUCT_TWINS[type]!;
      twin.update?.(entry.obj, fields, this.#ctx);
      // An io: field goes back as the kernel's array (which may be one the kernel kept).
      if (twin.ioField && x?.io) {
        for (const slot of x.io) {
          for (const [name, value] of Object.entries(fields)) {
            if (slot.arr !== value) continue;
            const mine = twin.ioField(entry.obj, name);
            if (mine && mine.constructor === slot.arr.constructor && mine.length === slot.arr.length) slot.arr = mine;
          }
        }
      }
    }
    return entry.obj;
  }

  // ---- the module's functions --------------------------------------------------------------

  /** The name of a module function as it arrives, [id, name, sig, empty]; null if `v` is not one. */
  fnName(v: unknown): string | null {
    if (!Array.isArray(v) || typeof v[0] !== "number" || !Number.isInteger(v[0]) || v[0] < 0) return null;
    return typeof v[1] === "string" && v[1] ? v[1] : `${this.#mod.name}_fn${v[0]}`;
  }

  /**
   * A module function arrives as [id, name, sig, empty]: the name is what %pf prints for it;
   * `empty` when the shim saw that its body is empty.
   */
  #fnIn(kd: Extract<Kind, { t: "fn" }>, v: unknown): Function | null {
    if (v === null || v === undefined || v === 0) return null;
    const name = this.fnName(v);
    if (name === null) throw new ArgError(`expected a function, got ${show(v)}`);
    const id = (v as [number])[0];
    const rawSig = (v as unknown[])[2];
    const sig = typeof rawSig === "number" && Number.isSafeInteger(rawSig) && rawSig >= 0 ? rawSig : 0;
    // The shim says the function's body is empty: calling it would change nothing.
    const empty = (v as unknown[])[3] === 1;
    const key = `${id}:${sig}:${empty ? 1 : 0}`;
    let f = this.#fns.get(key);
    if (!f && empty) {
      const r = kd.ret.t === "int" || kd.ret.t === "num" ? 0 : undefined;
      f = () => r;
      Object.defineProperty(f, "name", { value: name });
      moduleOfFunction.set(f, this.#mod.name);
      this.#fns.set(key, f);
    }
    if (!f) {
      const args = kd.args;
      const ret = kd.ret;
      const n = args.length;
      const hasIo = args.some((a) => a.t === "io");
      const defer = kd.defer === true && ret.t === "void";
      const call = this.#callModule;
      // What the kernel gets when the module fails in the call (it is contained already)
      // or answers with something that is not the right kind.
      const failed = () => (ret.t === "void" ? undefined : kd.onFault);
      // A kernel-side function that calls back into the module, converting both ways.
      f = (...a: unknown[]) => {
        const x = newXfer();
        const wire = new Array<unknown>(n);
        for (let i = 0; i < n; i++) wire[i] = this.out(args[i]!, a[i], x);
        // A notification while the module waits in a call into the kernel: it runs in the
        // module when that call returns, before anything else of the module does.
        if (defer && this.#mod.kcallDepth > 0 && this.#queueNotification(id, sig, wire)) return undefined;
        const after = hasIo ? (r: unknown) => (x.io ? this.#ioFromModule(x, r) : r) : null;
        let r: unknown;
        try {
          r = call(id, sig, wire, name, after);
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

  /** Queue a notification whose arguments are all numbers; false when it cannot be queued. */
  #queueNotification(id: number, sig: number, wire: unknown[]): boolean {
    const f = this.#mbF;
    const len = f[MB_NLEN]!;
    if (len + 3 + wire.length > MB_NCAP) return false;
    for (const w of wire) if (w !== null && typeof w !== "number") return false;
    const at = MB_NOTIF + len;
    f[at] = id;
    f[at + 1] = sig;
    f[at + 2] = wire.length;
    // NULL travels as NaN (no handle, pfn or id is NaN).
    for (let i = 0; i < wire.length; i++) f[at + 3 + i] = wire[i] === null ? NaN : (wire[i] as number);
    f[MB_NLEN] = len + 3 + wire.length;
    return true;
  }

  /** The arrays the module's current call carries (bytes [0, n) of the buffer), if any: a copy. */
  saveArrays(): Uint8Array | null {
    const used = this.#mbF[MB_USED]!;
    if (!(used > 0 && used <= MB_ARRAYS)) return null;
    return this.#mbB.slice(0, used);
  }

  restoreArrays(saved: Uint8Array): void {
    this.#mbB.set(saved, 0);
  }

  /** Are calls queued? */
  get queued(): boolean {
    return this.#mbF[MB_QLEN] !== 0;
  }

  /** Take the void kernel calls the module queued (and empty the queue): [index, args..]... */
  takeQueued(): Float64Array | null {
    const f = this.#mbF;
    const len = f[MB_QLEN]!;
    if (!len) return null;
    f[MB_QLEN] = 0;
    if (!(len > 0 && len <= MB_QCAP && Number.isInteger(len))) return new Float64Array(0);
    return f.slice(MB_QUEUE, MB_QUEUE + len);
  }

  /** Release everything kept for this module. */
  clear(): void {
    this.#structs.clear();
    this.#fns.clear();
    this.#ptrs.clear();
    this.#vals.clear();
    this.#sent.clear();
  }
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v);
  if (v === null) return "null";
  if (typeof v === "object") return Array.isArray(v) ? "an array" : "an object";
  return `${typeof v} ${String(v)}`;
}
