// The "kemu/kernel" module a driver links against, generated per module: it exports the
// functions whose symbols resolved for this module (a refused symbol is simply not there,
// so the link fails as the kernel's symbol resolution did), the constants and macros, and
// the conversions of abi.ts. One function, handed in by the kernel and kept in this
// module's scope, reaches the kernel; the driver cannot see it.

import { STRUCT_FIELDS } from "./abi.ts";
import type { KApi } from "./api.ts";

export interface ShimSpec {
  /** Permitted functions, by their index in the kernel's call table (index 0 is the data call). */
  apis: { index: number; api: KApi }[];
  /** Symbols imported from other modules (kemu/extern), by call index. */
  externs: { index: number; name: string }[];
  /** Data symbols the module may use (iomem_resource), plus THIS_MODULE. */
  data: string[];
  /** Constants: name -> value (numbers or strings). */
  constants: Record<string, number | string>;
}

/** Call index of the data call (THIS_MODULE, exported data), and of calls through what
 *  symbol_get() returned. The module's functions are 1 and up. */
export const CALL_DATA = 0;
export const CALL_SYMBOL = -2;

/** The global where the shim finds the kernel's call function while it is evaluated; it
 *  deletes it at once, so the module's code never sees it. */
export const KCALL_GLOBAL = "__kemu_kcall";

/**
 * What a shim always exports, implemented in the module itself (macros and header inlines),
 * with the declaration the SDK gives it.
 */
export const SHIM_MACROS: Readonly<Record<string, string>> = {
  MODULE_LICENSE: "function MODULE_LICENSE(license: string): void",
  MODULE_AUTHOR: "function MODULE_AUTHOR(value: string): void",
  MODULE_DESCRIPTION: "function MODULE_DESCRIPTION(value: string): void",
  MODULE_VERSION: "function MODULE_VERSION(value: string): void",
  MODULE_ALIAS: "function MODULE_ALIAS(value: string): void",
  MODULE_SOFTDEP: "function MODULE_SOFTDEP(value: string): void",
  MODULE_FIRMWARE: "function MODULE_FIRMWARE(value: string): void",
  MODULE_INFO: "function MODULE_INFO(tag: string, info: string): void",
  MODULE_PARM_DESC: "function MODULE_PARM_DESC(parm: string, desc: string): void",
  module_init: "function module_init(init: () => number | void): void",
  module_exit: "function module_exit(exit: () => void): void",
  EXPORT_SYMBOL: "function EXPORT_SYMBOL(fn: (...args: any[]) => unknown): void",
  EXPORT_SYMBOL_GPL: "function EXPORT_SYMBOL_GPL(fn: (...args: any[]) => unknown): void",
  EXPORT_SYMBOL_GPL_FUTURE: "function EXPORT_SYMBOL_GPL_FUTURE(fn: (...args: any[]) => unknown): void",
  IS_ERR: "function IS_ERR(p: unknown): p is ERR_PTR",
  IS_ERR_OR_NULL: "function IS_ERR_OR_NULL(p: unknown): boolean",
  PTR_ERR: "function PTR_ERR(p: ERR_PTR): number",
  ERR_PTR: "function ERR_PTR(err: number): ERR_PTR",
  PTR_ERR_OR_ZERO: "function PTR_ERR_OR_ZERO(p: unknown): number",
  THIS_MODULE: "const THIS_MODULE: module",
};

const RUNTIME = String.raw`
const __k_structIds = new WeakMap(), __k_structs = new Map();
const __k_fnIds = new WeakMap(), __k_fns = new Map();
const __k_ptrIds = new WeakMap(), __k_ptrs = new Map();
const __k_objs = new Map();
let __k_nextStruct = 1, __k_nextFn = 1, __k_nextPtr = 1;
let __k_init = null, __k_exit = null;
const __k_exported = Object.create(null);

function __k_fnWire(f) {
  if (f === null || f === undefined) return 0;
  if (typeof f !== "function") return -1;
  let id = __k_fnIds.get(f);
  if (id === undefined) { id = __k_nextFn++; __k_fnIds.set(f, id); __k_fns.set(id, f); }
  return [id, f.name || ""];
}
function __k_structWire(type, o) {
  if (o === null || o === undefined) return null;
  if (typeof o !== "object") return { id: -1 };
  let id = __k_structIds.get(o);
  if (id === undefined) { id = __k_nextStruct++; __k_structIds.set(o, id); __k_structs.set(id, o); }
  const schema = __k_SCHEMAS[type];
  if (!schema) return { id };
  const f = {};
  for (const k in schema) if (k in o) f[k] = __k_toWire(schema[k], o[k]);
  return { id, f };
}
function __k_ptrWire(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "object" || typeof v === "function") {
    let id = __k_ptrIds.get(v);
    if (id === undefined) { id = __k_nextPtr++; __k_ptrIds.set(v, id); __k_ptrs.set(id, v); }
    return { id };
  }
  return { v };
}
function __k_objWire(v) {
  if (v === null || v === undefined) return 0;
  if (typeof v === "number") return v;
  if (typeof v === "object" && typeof v.handle === "number") return v.handle;
  return -1;
}
function __k_anyWire(v) {
  if (typeof v === "function") return __k_fnWire(v);
  if (v && typeof v === "object" && !(v instanceof Uint8Array)) {
    if (Array.isArray(v)) return v.map(__k_anyWire);
    if (typeof v.handle === "number") return { handle: v.handle };
    const out = {};
    for (const k in v) out[k] = __k_anyWire(v[k]);
    return out;
  }
  return v;
}
function __k_toWire(kind, v) {
  if (kind === "p") return __k_ptrWire(v);
  if (kind === "any") return __k_anyWire(v);
  if (kind.startsWith("fn(")) return __k_fnWire(v);
  const c = kind[0];
  if (c === "o" && (kind[1] === ":" || kind[1] === "?")) return __k_objWire(v);
  if (c === "s" && (kind[1] === ":" || kind[1] === "?")) return __k_structWire(kind.slice(kind.indexOf(":") + 1), v);
  return v;
}
function __k_fromWire(w) {
  if (w === null || typeof w !== "object" || w instanceof Uint8Array) return w;
  if (Array.isArray(w)) return w.map(__k_fromWire);
  if ("__o" in w) {
    let o = __k_objs.get(w.__o);
    if (!o) { o = { handle: w.__o }; __k_objs.set(w.__o, o); }
    for (const k in w.__f) o[k] = __k_fromWire(w.__f[k]);
    return o;
  }
  if ("__s" in w) return __k_structs.get(w.__s) ?? null;
  if ("__p" in w) return __k_ptrs.get(w.__p) ?? null;
  if ("__v" in w) return w.__v;
  const out = {};
  for (const k in w) out[k] = __k_fromWire(w[k]);
  return out;
}
function __k_call(index, params, args) {
  const n = args.length, w = new Array(n);
  for (let i = 0; i < n; i++) w[i] = __k_toWire(i < params.length ? params[i] : "any", args[i]);
  return __k_fromWire(__k_kcall(index, w));
}

export function __kemu_dispatch(id, args, ret) {
  const f = __k_fns.get(id);
  const a = new Array(args.length);
  for (let i = 0; i < args.length; i++) a[i] = __k_fromWire(args[i]);
  const r = f(...a);
  return ret === "void" ? undefined : __k_toWire(ret, r);
}
export function __kemu_info() {
  const exports = {};
  for (const name in __k_exported) exports[name] = __k_fnWire(__k_exported[name])[0];
  return { init: __k_init ? __k_fnWire(__k_init)[0] : 0, exit: __k_exit ? __k_fnWire(__k_exit)[0] : 0, exports };
}

export function MODULE_LICENSE(_license) {}
export function MODULE_AUTHOR(_author) {}
export function MODULE_DESCRIPTION(_description) {}
export function MODULE_VERSION(_version) {}
export function MODULE_ALIAS(_alias) {}
export function MODULE_INFO(_tag, _info) {}
export function MODULE_SOFTDEP(_softdep) {}
export function MODULE_FIRMWARE(_firmware) {}
export function MODULE_PARM_DESC(_parm, _desc) {}
export function module_init(fn) { __k_init = fn; }
export function module_exit(fn) { __k_exit = fn; }
export function EXPORT_SYMBOL(fn, name) { __k_exported[name ?? fn.name] = fn; }
export function EXPORT_SYMBOL_GPL(fn, name) { __k_exported[name ?? fn.name] = fn; }
export function EXPORT_SYMBOL_GPL_FUTURE(fn, name) { __k_exported[name ?? fn.name] = fn; }
export function IS_ERR(p) { return typeof p === "number" && p < 0 && p >= -4095; }
export function IS_ERR_OR_NULL(p) { return p === null || p === undefined || IS_ERR(p); }
export function PTR_ERR(p) { return p; }
export function ERR_PTR(e) { return e; }
export function PTR_ERR_OR_ZERO(p) { return IS_ERR(p) ? p : 0; }
`;

/** The shim's ES module source for one module. */
export function generateShim(spec: ShimSpec): string {
  const lines: string[] = [];
  lines.push(`const __k_kcall = globalThis[${JSON.stringify(KCALL_GLOBAL)}];`);
  lines.push(`delete globalThis[${JSON.stringify(KCALL_GLOBAL)}];`);
  lines.push(`const __k_SCHEMAS = ${JSON.stringify(STRUCT_FIELDS)};`);
  lines.push(RUNTIME);
  for (const [name, value] of Object.entries(spec.constants)) lines.push(`export const ${name} = ${JSON.stringify(value)};`);
  lines.push(`const __k_DATA = __k_fromWire(__k_kcall(${CALL_DATA}, []));`);
  for (const name of ["THIS_MODULE", ...spec.data]) lines.push(`export const ${name} = __k_DATA[${JSON.stringify(name)}] ?? null;`);
  for (const { index, api } of spec.apis) {
    const params = api.params.filter((p) => p !== "...any");
    lines.push(`const __k_P${index} = ${JSON.stringify(params)};`);
    if (api.ret === "symbol") {
      // The kernel hands back the symbol; the module gets a function that calls it.
      lines.push(`export function ${api.name}(...a) { const s = __k_call(${index}, __k_P${index}, a); return s === null || s === undefined ? null : (...b) => __k_fromWire(__k_kcall(${CALL_SYMBOL}, [s, b.map(__k_anyWire)])); }`);
    } else {
      lines.push(`export function ${api.name}(...a) { return __k_call(${index}, __k_P${index}, a); }`);
    }
  }
  for (const { index, name } of spec.externs) {
    lines.push(`export function ${name}(...a) { return __k_call(${index}, [], a); }`);
  }
  return lines.join("\n") + "\n";
}
