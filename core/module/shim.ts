// The "kemu/kernel" module a driver links against, generated per module: it exports the
// functions whose symbols resolved for this module (a refused symbol is simply not there,
// so the link fails as the kernel's symbol resolution did), the constants and macros, and
// the conversions of abi.ts. One function, handed in by the kernel and kept in this
// module's scope, reaches the kernel; the driver cannot see it.

import { parseKind, STRUCT_FIELDS, type Kind } from "./abi.ts";
import type { KApi } from "./api.ts";
import { MAILBOX_SLOT, MB_ARRAYS, MB_NLEN, MB_NOTIF, MB_QCAP, MB_QLEN, MB_QUEUE, MB_USED } from "./marshal.ts";

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
/** Only run the void calls the module queued (its queue is full). */
export const CALL_FLUSH = -3;

/** The global where the shim finds the kernel's call function while it is evaluated; it
 *  deletes it at once, so the module's code never sees it. */
export const KCALL_GLOBAL = "__kemu_kcall";
/** The same for the module's transfer buffer (marshal.ts). */
export const MAILBOX_GLOBAL = "__kemu_mailbox";

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
  _IOC: "function _IOC(dir: number, type: string | number, nr: number, size: number): number",
  _IO: "function _IO(type: string | number, nr: number): number",
  _IOR: "function _IOR(type: string | number, nr: number, size: number): number",
  _IOW: "function _IOW(type: string | number, nr: number, size: number): number",
  _IOWR: "function _IOWR(type: string | number, nr: number, size: number): number",
  _IOC_DIR: "function _IOC_DIR(cmd: number): number",
  _IOC_TYPE: "function _IOC_TYPE(cmd: number): number",
  _IOC_NR: "function _IOC_NR(cmd: number): number",
  _IOC_SIZE: "function _IOC_SIZE(cmd: number): number",
  MKDEV: "function MKDEV(major: number, minor: number): number",
  MAJOR: "function MAJOR(dev: number): number",
  MINOR: "function MINOR(dev: number): number",
  iminor: "function iminor(inode: inode): number",
  imajor: "function imajor(inode: inode): number",
  migrate_pfn: "function migrate_pfn(pfn: number): number",
  migrate_pfn_to_page: "function migrate_pfn_to_page(mpfn: number): page | null",
  hmm_pfn_to_pfn: "function hmm_pfn_to_pfn(range: hmm_range, pfn: number): number",
  hmm_pfn_to_page: "function hmm_pfn_to_page(range: hmm_range, pfn: number): page | null",
  hmm_pfn_from_pfn: "function hmm_pfn_from_pfn(range: hmm_range, pfn: number): number",
  hmm_pfn_from_page: "function hmm_pfn_from_page(range: hmm_range, page: page): number",
};

/**
 * May the shim queue calls of this function instead of crossing for each? A void function
 * whose arguments all travel as numbers (plain values and handles) and that calls nothing of
 * the module's back (KApi.callsBack): nothing the module does after the call depends on it,
 * and the kernel runs it before anything else can see.
 */
export function queueable(api: KApi): boolean {
  if (api.ret !== "void" || api.params.includes("...any") || api.callsBack) return false;
  return api.params.every((p) => {
    const k = parseKind(p);
    return k.t === "int" || k.t === "num" || k.t === "page" || k.t === "bool" || k.t === "o";
  });
}

/** Does a value of this kind carry an array the callee writes into (io:, or a struct with one)? */
function carriesIo(k: Kind, seen = new Set<string>()): boolean {
  if (k.t === "io") return true;
  if (k.t !== "s" || seen.has(k.type)) return false;
  seen.add(k.type);
  return Object.values(STRUCT_FIELDS[k.type] ?? {}).some((spec) => carriesIo(parseKind(spec), seen));
}

const RUNTIME = String.raw`
const __k_mbF = new Float64Array(__k_mb), __k_mbB = new Uint8Array(__k_mb);
const __k_isView = ArrayBuffer.isView;
const __k_structIds = new WeakMap(), __k_structs = new Map(), __k_structLast = new WeakMap();
const __k_fnIds = new WeakMap(), __k_fns = new Map();
const __k_ptrIds = new WeakMap(), __k_ptrs = new Map();
const __k_objs = new Map();
const __k_kinds = new Map(), __k_sigIds = new Map(), __k_sigs = [null];
const __k_ABSENT = {};
let __k_nextStruct = 1, __k_nextFn = 1, __k_nextPtr = 1, __k_off = 0;
let __k_init = null, __k_exit = null;
const __k_exported = Object.create(null);

// A kind, compiled: c is n (a plain value), v, o, s, p, f (function), a (any), or an array:
// d (f64), D (io:f64), b (bytes), B (io:bytes).
function __k_K(spec) {
  let k = __k_kinds.get(spec);
  if (k !== undefined) return k;
  const s = spec.trim();
  if (s.startsWith("fn(") || s.startsWith("fn~(")) k = { c: "f", spec: s };
  else if (s === "f64") k = { c: "d" };
  else if (s === "io:f64") k = { c: "D" };
  else if (s === "bytes") k = { c: "b" };
  else if (s === "io:bytes") k = { c: "B" };
  else if (s === "p") k = { c: "p" };
  else if (s === "any") k = { c: "a" };
  else if (s === "void") k = { c: "v" };
  else if (s[0] === "o" && (s[1] === ":" || s[1] === "?" || s[1] === "!")) k = { c: "o" };
  else if (s[0] === "s" && (s[1] === ":" || s[1] === "?" || s[1] === "!")) k = { c: "s", type: s.slice(s.indexOf(":") + 1) };
  else k = { c: "n" };
  __k_kinds.set(spec, k);
  return k;
}
// A function kind's signature: how the dispatcher reads its arguments and writes its result.
function __k_sigOf(spec) {
  let id = __k_sigIds.get(spec);
  if (id !== undefined) return id;
  const args = [];
  let depth = 0, i = spec.indexOf("(") + 1, cur = "";
  for (; i < spec.length; i++) {
    const ch = spec[i];
    if (ch === "(") depth++;
    else if (ch === ")") { if (depth === 0) break; depth--; }
    if (ch === "," && depth === 0) { args.push(cur); cur = ""; } else cur += ch;
  }
  if (cur.trim()) args.push(cur);
  const m = /^->([^|]+)/.exec(spec.slice(i + 1));
  id = __k_sigs.length;
  __k_sigs.push({ args: args.map(__k_K), ret: __k_K(m ? m[1] : "void") });
  __k_sigIds.set(spec, id);
  return id;
}
// Struct schemas, compiled; a struct whose fields are all plain values, handles, pointers and
// functions travels as its id alone while none of them changed.
const __k_SCH = Object.create(null);
for (const t in __k_SCHEMAS) {
  const keys = Object.keys(__k_SCHEMAS[t]), kinds = keys.map((k) => __k_K(__k_SCHEMAS[t][k]));
  __k_SCH[t] = { keys, kinds, cache: kinds.every((k) => "nvopf".includes(k.c)) };
}

// A function whose body is empty (and whose parameters have no defaults) does nothing when
// called: the kernel is told, and does not cross to call it.
const __k_EMPTY = /^(?:function\s*[\w$]*\s*)?\(?[\w$\s,]*\)?\s*(?:=>\s*)?\{\s*\}$|^[\w$]+\s*\([\w$\s,]*\)\s*\{\s*\}$/;
const __k_empty = new WeakMap();
function __k_isEmpty(f) {
  let e = __k_empty.get(f);
  if (e === undefined) {
    let src = "";
    try { src = Function.prototype.toString.call(f); } catch { src = ""; }
    e = !/^(?:async|class)\b/.test(src) && __k_EMPTY.test(src) ? 1 : 0;
    __k_empty.set(f, e);
  }
  return e;
}
function __k_fnWire(f, spec) {
  if (f === null || f === undefined) return 0;
  if (typeof f !== "function") return -1;
  let id = __k_fnIds.get(f);
  if (id === undefined) { id = __k_nextFn++; __k_fnIds.set(f, id); __k_fns.set(id, f); }
  return [id, f.name || "", spec ? __k_sigOf(spec) : 0, __k_isEmpty(f)];
}
function __k_structWire(type, o, io) {
  if (o === null || o === undefined) return null;
  if (typeof o !== "object") return { id: -1 };
  let id = __k_structIds.get(o);
  if (id === undefined) { id = __k_nextStruct++; __k_structIds.set(o, id); __k_structs.set(id, o); }
  const sch = __k_SCH[type];
  if (!sch) return { id };
  const keys = sch.keys, n = keys.length;
  if (sch.cache) {
    const last = __k_structLast.get(o);
    if (last !== undefined) {
      let same = true;
      for (let i = 0; i < n; i++) if ((keys[i] in o ? o[keys[i]] : __k_ABSENT) !== last[i]) { same = false; break; }
      if (same) return id;
    }
  }
  const f = {}, vals = sch.cache ? new Array(n) : null;
  for (let i = 0; i < n; i++) {
    const key = keys[i];
    if (key in o) { const v = o[key]; if (vals) vals[i] = v; f[key] = __k_enc(sch.kinds[i], v, io); }
    else if (vals) vals[i] = __k_ABSENT;
  }
  if (vals) __k_structLast.set(o, vals);
  return { id, f };
}
function __k_ptrWire(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "object" || typeof v === "function") {
    let id = __k_ptrIds.get(v);
    if (id === undefined) { id = __k_nextPtr++; __k_ptrIds.set(v, id); __k_ptrs.set(id, v); }
    return id;
  }
  return { v };
}
function __k_objWire(v) {
  if (v === null || v === undefined) return 0;
  if (typeof v === "number") return v;
  if (typeof v === "object" && typeof v.handle === "number") return v.handle;
  return -1;
}
// An array into the transfer buffer (a copy); io: arrays are noted, to be copied back.
function __k_taWire(c, v, io) {
  if (v === null || v === undefined) return null;
  const f = c === "d" || c === "D";
  if (!(f ? v instanceof Float64Array : v instanceof Uint8Array)) return -1;
  const out = c === "D" || c === "B";
  const off = __k_off, bytes = v.byteLength;
  if (off + bytes > __k_MB) { if (out && io !== null) io.push(v, -1); return v; }
  if (f) __k_mbF.set(v, off >> 3); else __k_mbB.set(v, off);
  __k_off = off + ((bytes + 7) & ~7);
  if (out && io !== null) io.push(v, off);
  return off * __k_SLOT + v.length;
}
function __k_taDec(c, w, io) {
  if (w === null || w === undefined) return null;
  let a, off = -1;
  if (typeof w === "number") {
    off = Math.floor(w / __k_SLOT);
    const n = w - off * __k_SLOT;
    a = c === "d" || c === "D" ? __k_mbF.slice(off >> 3, (off >> 3) + n) : __k_mbB.slice(off, off + n);
  } else a = w;
  if ((c === "D" || c === "B") && io !== null) io.push(a, off);
  return a;
}
function __k_anyWire(v) {
  if (typeof v === "function") return __k_fnWire(v);
  if (v && typeof v === "object" && (__k_isView(v) || v instanceof ArrayBuffer || (__k_SAB !== null && v instanceof __k_SAB))) return __k_unshare(v);
  if (v && typeof v === "object") {
    if (Array.isArray(v)) return v.map(__k_anyWire);
    if (typeof v.handle === "number") return { handle: v.handle };
    const out = {};
    for (const k in v) out[k] = __k_anyWire(v[k]);
    return out;
  }
  return v;
}
function __k_enc(k, v, io) {
  switch (k.c) {
    case "n": return v;
    case "o": return __k_objWire(v);
    case "s": return __k_structWire(k.type, v, io);
    case "p": return __k_ptrWire(v);
    case "f": return __k_fnWire(v, k.spec);
    case "a": return __k_anyWire(v);
    case "v": return undefined;
    default: return __k_taWire(k.c, v, io);
  }
}
function __k_obj(h) {
  let o = __k_objs.get(h);
  if (o === undefined) { o = { handle: h }; __k_objs.set(h, o); }
  return o;
}
// A self-describing value (fields, "any" kinds, results of other modules' functions).
function __k_fromWire(w) {
  if (w === null || typeof w !== "object" || __k_isView(w)) return w;
  if (Array.isArray(w)) return w.map(__k_fromWire);
  if ("__o" in w) {
    const o = __k_obj(w.__o);
    const f = w.__f;
    if (f) for (const k in f) o[k] = __k_fromWire(f[k]);
    return o;
  }
  if ("__s" in w) return __k_structs.get(w.__s) ?? null;
  if ("__p" in w) return __k_ptrs.get(w.__p) ?? null;
  if ("__v" in w) return w.__v;
  const out = {};
  for (const k in w) out[k] = __k_fromWire(w[k]);
  return out;
}
function __k_dec(k, w, io) {
  switch (k.c) {
    case "n": return w;
    case "o": return typeof w === "number" ? (w > 0 ? __k_obj(w) : w) : __k_fromWire(w);
    case "s": return typeof w === "number" ? (w > 0 ? (__k_structs.get(w) ?? null) : w) : __k_fromWire(w);
    case "p": return typeof w === "number" ? (__k_ptrs.get(w) ?? null) : __k_fromWire(w);
    case "v": return undefined;
    case "a": case "f": return __k_fromWire(w);
    default: return __k_taDec(k.c, w, io);
  }
}
// After a kernel call: the io: arrays the kernel wrote come back into the module's arrays.
function __k_ioBack(io, r) {
  const kio = r !== null && typeof r === "object" && "__kio" in r ? r.__kio : null;
  let j = 0;
  for (let i = 0; i < io.length; i += 2) {
    const t = io[i], off = io[i + 1];
    if (off >= 0) {
      if (t instanceof Float64Array) t.set(__k_mbF.subarray(off >> 3, (off >> 3) + t.length));
      else t.set(__k_mbB.subarray(off, off + t.length));
    } else if (kio !== null) {
      const s = kio[j++];
      if (s && s.length === t.length) t.set(s);
    }
  }
  return kio !== null ? r.__r : r;
}
// Shared memory never crosses as itself (isolated-vm would share it): a private copy does.
const __k_SAB = typeof SharedArrayBuffer === "function" ? SharedArrayBuffer : null;
function __k_unshare(v) {
  if (__k_SAB === null || v === null || typeof v !== "object") return v;
  if (v instanceof __k_SAB) return new Uint8Array(v).slice().buffer;
  if (__k_isView(v) && v.buffer instanceof __k_SAB) return v instanceof DataView ? new DataView(new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice().buffer) : v.slice();
  return v;
}
function __k_call(index, P, R, hasio, a) {
  __k_off = 0;
  const io = hasio ? [] : null;
  const n = a.length, np = P.length, w = new Array(n);
  // Shared memory passed as an argument itself is copied by the kernel (loader.ts #kcallIn).
  for (let i = 0; i < n; i++) w[i] = i < np ? __k_enc(P[i], a[i], io) : __k_anyWire(a[i]);
  __k_mbF[__k_USED] = __k_off;
  let r = __k_kcall(index, ...w);
  if (io !== null && io.length) r = __k_ioBack(io, r);
  r = __k_dec(R, r, null);
  if (__k_mbF[__k_NLEN] !== 0) __k_notify();
  return r;
}
// A void kernel call with plain arguments does not cross on its own: it is queued, and the
// kernel runs the queue before anything else of the module reaches it (its next call into
// the kernel, or the return of the module's function the kernel called).
function __k_q(index, P, a) {
  const n = P.length;
  let len = __k_mbF[__k_QLEN];
  if (len + 1 + n > __k_QCAP) { __k_kcall(${CALL_FLUSH}); len = __k_mbF[__k_QLEN]; }
  const at = __k_QUEUE + len;
  __k_mbF[at] = index;
  for (let i = 0; i < n; i++) {
    const v = __k_enc(P[i], a[i], null);
    __k_mbF[at + 1 + i] = typeof v === "number" ? v : typeof v === "boolean" ? +v : NaN;
  }
  __k_mbF[__k_QLEN] = len + 1 + n;
  if (__k_mbF[__k_NLEN] !== 0) __k_notify();
}
// Notifications the kernel deferred while the module was in a call into it (a page_free):
// they run now, in the order they happened, before the module goes on.
function __k_notify() {
  const len = __k_mbF[__k_NLEN];
  const rec = __k_mbF.slice(__k_NOTIF, __k_NOTIF + len);
  __k_mbF[__k_NLEN] = 0;
  for (let i = 0; i < len; ) {
    const id = rec[i], sig = rec[i + 1], n = rec[i + 2], args = new Array(n);
    for (let j = 0; j < n; j++) { const v = rec[i + 3 + j]; args[j] = v !== v ? null : v; }
    i += 3 + n;
    __kemu_dispatch(id, sig, ...args);
  }
}

export function __kemu_dispatch(id, sig, ...args) {
  if (__k_mbF[__k_NLEN] !== 0) __k_notify();
  const f = __k_fns.get(id);
  const n = args.length;
  if (sig === 0) {
    for (let i = 0; i < n; i++) args[i] = __k_fromWire(args[i]);
    return __k_anyWire(f(...args));
  }
  const s = __k_sigs[sig], ak = s.args;
  let io = null;
  for (let i = 0; i < n; i++) {
    const k = ak[i];
    if (k === undefined) args[i] = __k_fromWire(args[i]);
    else if (k.c === "D" || k.c === "B") args[i] = __k_taDec(k.c, args[i], io ??= []);
    else args[i] = __k_dec(k, args[i], null);
  }
  const r = f(...args);
  __k_off = 0;
  const rw = __k_enc(s.ret, r, null);
  if (io === null) return rw;
  let kio = null;
  for (let i = 0; i < io.length; i += 2) {
    const a = io[i], off = io[i + 1];
    if (off < 0) (kio ??= []).push(a);
    else if (a instanceof Float64Array) __k_mbF.set(a, off >> 3);
    else __k_mbB.set(a, off);
  }
  return kio === null ? rw : { __r: rw, __kio: kio };
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
// include/uapi/asm-generic/ioctl.h, with arithmetic: dir << 30 does not fit an int32.
function __k_ch(t) { return typeof t === "string" ? t.charCodeAt(0) & 0xff : t & 0xff; }
export function _IOC(dir, type, nr, size) { return dir * 1073741824 + (size & 0x3fff) * 65536 + __k_ch(type) * 256 + (nr & 0xff); }
export function _IO(type, nr) { return _IOC(0, type, nr, 0); }
export function _IOR(type, nr, size) { return _IOC(2, type, nr, size); }
export function _IOW(type, nr, size) { return _IOC(1, type, nr, size); }
export function _IOWR(type, nr, size) { return _IOC(3, type, nr, size); }
export function _IOC_DIR(cmd) { return Math.floor(cmd / 1073741824) & 3; }
export function _IOC_TYPE(cmd) { return Math.floor(cmd / 256) & 0xff; }
export function _IOC_NR(cmd) { return cmd & 0xff; }
export function _IOC_SIZE(cmd) { return Math.floor(cmd / 65536) & 0x3fff; }
// include/linux/kdev_t.h (the kernel's dev_t: 20 bits of minor) and iminor()/imajor().
export function MKDEV(ma, mi) { return ma * 1048576 + mi; }
export function MAJOR(dev) { return Math.floor(dev / 1048576); }
export function MINOR(dev) { return dev % 1048576; }
export function iminor(inode) { return inode.i_rdev % 1048576; }
export function imajor(inode) { return Math.floor(inode.i_rdev / 1048576); }
// include/linux/migrate.h: a src/dst entry is pfn << MIGRATE_PFN_SHIFT | flags.
export function migrate_pfn(pfn) { return pfn * 64 + 1; }
export function migrate_pfn_to_page(mpfn) { return mpfn % 2 === 1 ? Math.floor(mpfn / 64) : null; }
// include/linux/hmm.h (4.20/5.0): a pfns[] entry of a range in the range's own encoding.
export function hmm_pfn_to_pfn(range, pfn) {
  const v = range.values;
  if (pfn === v[0] || pfn === v[1] || pfn === v[2]) return -1;
  const valid = range.flags[0];
  if (!valid || (pfn % 4294967296 & valid) !== valid) return -1;
  return Math.floor(pfn / 2 ** range.pfn_shift);
}
export function hmm_pfn_to_page(range, pfn) { const p = hmm_pfn_to_pfn(range, pfn); return p < 0 ? null : p; }
export function hmm_pfn_from_pfn(range, pfn) { return pfn * 2 ** range.pfn_shift + range.flags[0]; }
export function hmm_pfn_from_page(range, page) { return hmm_pfn_from_pfn(range, page); }
`;

/** The shim's ES module source for one module. */
export function generateShim(spec: ShimSpec): string {
  const lines: string[] = [];
  lines.push(`const __k_kcall = globalThis[${JSON.stringify(KCALL_GLOBAL)}];`);
  lines.push(`delete globalThis[${JSON.stringify(KCALL_GLOBAL)}];`);
  lines.push(`const __k_mb = globalThis[${JSON.stringify(MAILBOX_GLOBAL)}];`);
  lines.push(`delete globalThis[${JSON.stringify(MAILBOX_GLOBAL)}];`);
  lines.push(`const __k_SCHEMAS = ${JSON.stringify(STRUCT_FIELDS)};`);
  lines.push(`const __k_MB = ${MB_ARRAYS}, __k_QLEN = ${MB_QLEN}, __k_NLEN = ${MB_NLEN}, __k_USED = ${MB_USED}, __k_QUEUE = ${MB_QUEUE}, __k_NOTIF = ${MB_NOTIF}, __k_QCAP = ${MB_QCAP}, __k_SLOT = ${MAILBOX_SLOT};`);
  lines.push(RUNTIME);
  for (const [name, value] of Object.entries(spec.constants)) lines.push(`export const ${name} = ${JSON.stringify(value)};`);
  lines.push(`const __k_DATA = __k_fromWire(__k_kcall(${CALL_DATA}));`);
  for (const name of ["THIS_MODULE", ...spec.data]) lines.push(`export const ${name} = __k_DATA[${JSON.stringify(name)}] ?? null;`);
  for (const { index, api } of spec.apis) {
    const params = api.params.filter((p) => p !== "...any");
    const io = params.some((p) => carriesIo(parseKind(p)));
    lines.push(`const __k_P${index} = [${params.map((p) => `__k_K(${JSON.stringify(p)})`).join(", ")}], __k_R${index} = __k_K(${JSON.stringify(api.ret)});`);
    if (api.ret === "symbol") {
      // The kernel hands back the symbol; the module gets a function that calls it.
      lines.push(`export function ${api.name}(...a) { const s = __k_call(${index}, __k_P${index}, __k_R${index}, false, a); return s === null || s === undefined ? null : (...b) => { const r = __k_fromWire(__k_kcall(${CALL_SYMBOL}, s, ...b.map(__k_anyWire))); if (__k_mbF[__k_NLEN] !== 0) __k_notify(); return r; }; }`);
    } else if (queueable(api)) {
      lines.push(`export function ${api.name}(...a) { __k_q(${index}, __k_P${index}, a); }`);
    } else {
      lines.push(`export function ${api.name}(...a) { return __k_call(${index}, __k_P${index}, __k_R${index}, ${io}, a); }`);
    }
  }
  for (const { index, name } of spec.externs) {
    lines.push(`export function ${name}(...a) { const r = __k_fromWire(__k_kcall(${index}, ...a.map(__k_anyWire))); if (__k_mbF[__k_NLEN] !== 0) __k_notify(); return r; }`);
  }
  return lines.join("\n") + "\n";
}
