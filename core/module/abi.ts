// The calling convention between a module and the kernel. Every kemu/kernel function declares
// the kind of each argument and of its result; the shim in the module and the kernel here
// convert by kind, so only numbers, strings, byte copies and plain data cross the boundary:
//
//   int, num, bool, str, bytes, any, void   values (checked on the kernel side)
//   page                                    a struct page *, i.e. a pfn (checked: pfn_valid)
//   o:T / o?:T                              a kernel object of type T, as a handle
//   s:T / s?:T                              a struct the module owns (percpu_ref, dev_pagemap..),
//                                           identified by the shim; the kernel keeps a twin
//   p                                       a void * the module passes in and gets back
//   fn(k1,k2..)->r|v                        a module function the kernel may call back; if the
//                                           module fails inside it the kernel gets v back
//   symbol                                  (results only) a symbol from symbol_get(): the
//                                           module gets a function that calls it, or null
//
// Values the kernel sends are self-describing: { __o: handle, __f: fields } for a kernel
// object (the shim keeps one object { handle, ...fields } per handle), { __s: id } for a
// module's own struct, { __p: id } / { __v: value } for a void * it passed in.

export type Kind =
  | { t: "int" | "num" | "bool" | "str" | "bytes" | "any" | "void" | "page" | "p" | "symbol" }
  | { t: "o" | "s"; type: string; nullable: boolean }
  /** `onFault`: what the kernel gets back when the module fails inside the call. */
  | { t: "fn"; args: Kind[]; ret: Kind; onFault: number | undefined };

/** Parse a kind spelled as in the table above. */
export function parseKind(spec: string): Kind {
  const s = spec.trim();
  const fn = /^fn\((.*)\)(?:->([^|]+))?(?:\|(-?\d+))?$/.exec(s);
  if (fn) {
    return { t: "fn", args: splitTop(fn[1]!).map(parseKind), ret: parseKind(fn[2] ?? "void"), onFault: fn[3] === undefined ? undefined : Number(fn[3]) };
  }
  const obj = /^([os])(\?)?:([a-z_][a-z0-9_]*)$/.exec(s);
  if (obj) return { t: obj[1] as "o" | "s", type: obj[3]!, nullable: obj[2] === "?" };
  if (["int", "num", "bool", "str", "bytes", "any", "void", "page", "p", "symbol"].includes(s)) return { t: s as "int" };
  throw new Error(`bad ABI kind ${JSON.stringify(spec)}`);
}

/** Split "a,fn(b,c),d" at top-level commas. */
function splitTop(s: string): string[] {
  if (!s.trim()) return [];
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** A struct the module owns, as the shim sends it: its id and a snapshot of its fields. */
export interface StructWire {
  id: number;
  f?: Record<string, unknown>;
}

/** Which fields of each module-owned struct the shim sends, and their kinds. */
export const STRUCT_FIELDS: Record<string, Record<string, string>> = {
  percpu_ref: {},
  completion: {},
  resource: { start: "num", end: "num", name: "str", flags: "num", desc: "num" },
  dev_pagemap: {
    type: "int",
    res: "any",
    ref: "s?:percpu_ref",
    page_fault: "fn(any,num,page,int,any)->int|2",
    page_free: "fn(page,p)",
    kill: "fn(s:percpu_ref)",
    data: "p",
    altmap: "any",
    altmap_valid: "bool",
  },
  hmm_devmem_ops: {
    free: "fn(o:hmm_devmem,page)",
    fault: "fn(o:hmm_devmem,any,num,page,int,any)->int|2",
  },
  platform_driver: {
    probe: "fn(o:platform_device)->int|-14",
    remove: "fn(o:platform_device)->int|0",
    driver: "any",
  },
};

/** Fields the kernel cannot do without when a module passes the struct in. */
export const STRUCT_REQUIRED: Readonly<Record<string, readonly string[]>> = { resource: ["start", "end"] };
