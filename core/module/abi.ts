// The calling convention between a module and the kernel. Every kemu/kernel function declares
// the kind of each argument and of its result; the shim in the module and the kernel here
// convert by kind, so only numbers, strings, byte copies and plain data cross the boundary:
//
//   int, num, bool, str, bytes, any, void   values (checked on the kernel side)
//   f64                                     a Float64Array (u64 arrays: pfns, migrate entries)
//   io:bytes, io:f64                        an array the callee writes into: it travels as a
//                                           copy, and after the call the callee's copy is
//                                           copied back into the caller's array (C's out-param)
//   page                                    a struct page *, i.e. a pfn (checked: pfn_valid)
//   o:T / o?:T / o!:T                       a kernel object of type T, as a handle (o!: a
//                                           result that is never NULL nor an error)
//   s:T / s?:T                              a struct the module owns (percpu_ref, dev_pagemap..),
//                                           identified by the shim; the kernel keeps a twin
//   p                                       a void * the module passes in and gets back
//   fn(k1,k2..)->r|v                        a module function the kernel may call back; if the
//                                           module fails inside it the kernel gets v back
//   fn~(k1,k2..)                            a notification (void): while the module is inside
//                                           a call into the kernel it is delivered as that
//                                           call returns, without a crossing of its own
//   symbol                                  (results only) a symbol from symbol_get(): the
//                                           module gets a function that calls it, or null
//
// On the wire both sides know the kind of every argument and result, so most values travel as
// plain numbers (wire.ts): a kernel object as its handle once the shim holds its fields, a
// module's struct as its id once the kernel holds its twin, an array as its place in the
// module's transfer buffer. Values without a kind ("any", the fields of objects) are
// self-describing: { __o: handle, __f: fields } for a kernel object (the shim keeps one object
// { handle, ...fields } per handle), { __s: id } for a module's own struct, { __p: id } /
// { __v: value } for a void * it passed in.

export type Kind =
  | { t: "int" | "num" | "bool" | "str" | "bytes" | "any" | "void" | "page" | "p" | "symbol" | "f64" }
  /** An array the callee writes into (io:bytes, io:f64). */
  | { t: "io"; of: "bytes" | "f64" }
  /** `o!:T`: a pointer-returning call that cannot fail (get_current()). */
  | { t: "o" | "s"; type: string; nullable: boolean; infallible?: boolean }
  /** `onFault`: what the kernel gets back when the module fails inside the call. */
  /**
   * `defer`: a notification the kernel does not wait on (fn~(...), a page_free): while the
   * module is inside a call into the kernel, it is delivered when that call returns.
   */
  | { t: "fn"; args: Kind[]; ret: Kind; onFault: number | undefined; defer?: boolean };

/** Parse a kind spelled as in the table above. */
export function parseKind(spec: string): Kind {
  const s = spec.trim();
  const fn = /^fn(~)?\((.*)\)(?:->([^|]+))?(?:\|(-?\d+))?$/.exec(s);
  if (fn) {
    return {
      t: "fn", args: splitTop(fn[2]!).map(parseKind), ret: parseKind(fn[3] ?? "void"), onFault: fn[4] === undefined ? undefined : Number(fn[4]),
      ...(fn[1] ? { defer: true } : {}),
    };
  }
  const obj = /^([os])([?!])?:([a-z_][a-z0-9_]*)$/.exec(s);
  if (obj) return { t: obj[1] as "o" | "s", type: obj[3]!, nullable: obj[2] === "?", ...(obj[2] === "!" ? { infallible: true } : {}) };
  if (["int", "num", "bool", "str", "bytes", "any", "void", "page", "p", "symbol", "f64"].includes(s)) return { t: s as "int" };
  if (s === "io:bytes" || s === "io:f64") return { t: "io", of: s.slice(3) as "bytes" | "f64" };
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
    page_fault: "fn(o?:vm_area_struct,num,page,int,any)->int|2",
    page_free: "fn~(page,p)",
    kill: "fn(s:percpu_ref)",
    data: "p",
    altmap: "any",
    altmap_valid: "bool",
  },
  hmm_devmem_ops: {
    free: "fn~(o:hmm_devmem,page)",
    fault: "fn(o:hmm_devmem,o?:vm_area_struct,num,page,int,any)->int|2",
  },
  platform_driver: {
    probe: "fn(o:platform_device)->int|-14",
    remove: "fn(o:platform_device)->int|0",
    driver: "any",
  },
  // include/linux/pci.h: probe gets the id_table entry that matched (a copy); remove is void.
  pci_driver: {
    name: "str",
    id_table: "any",
    probe: "fn(o:pci_dev,any)->int|-14",
    remove: "fn(o:pci_dev)",
  },
  // include/linux/fs.h: the operations a character device offers; a module that dies inside
  // open or ioctl gives the caller -EFAULT (-14), inside release 0 (the file goes anyway).
  file_operations: {
    owner: "o?:module",
    open: "fn(o:inode,o:file)->int|-14",
    release: "fn(o:inode,o:file)->int|0",
    unlocked_ioctl: "fn(o:file,num,num)->num|-14",
    mmap: "fn(o:file,o:vm_area_struct)->int|-14",
    get_unmapped_area: "fn(o:file,num,num,num,num)->num|-14",
  },
  // include/linux/mm.h (4.20/5.0): the operations of a driver's mappings. fault() and the
  // mkwrite callbacks return a vm_fault_t (VM_FAULT_SIGBUS, 2, when the module fails in them),
  // split() 0 or a negative errno. huge_fault is not modelled: kemu maps no PMDs.
  vm_operations_struct: {
    open: "fn(o:vm_area_struct)",
    close: "fn(o:vm_area_struct)",
    split: "fn(o:vm_area_struct,num)->int|-22",
    fault: "fn(o:vm_fault)->int|2",
    page_mkwrite: "fn(o:vm_fault)->int|2",
    pfn_mkwrite: "fn(o:vm_fault)->int|2",
  },
  // include/linux/cdev.h: cdev_init() sets the ops; the module sets the owner before cdev_add().
  cdev: { owner: "o?:module" },
  // include/linux/device.h: attr is { name, mode }; show(dev) returns the text a read gives
  // (C's show(dev, attr, buf) writes it into buf).
  device_attribute: { attr: "any", show: "fn(o:device)->str" },
  // include/linux/miscdevice.h
  miscdevice: { minor: "int", name: "str", fops: "s:file_operations", mode: "int" },
  // include/linux/hmm.h (4.20/5.0): the mirror and its callbacks; struct hmm_update arrives as
  // a plain { start, end, event, blockable }.
  hmm_mirror_ops: {
    release: "fn(s:hmm_mirror)",
    sync_cpu_device_pagetables: "fn(s:hmm_mirror,any)->int|0",
  },
  hmm_mirror: { ops: "s?:hmm_mirror_ops" },
  // struct hmm_range: pfns[] is the driver's array, which the kernel fills (and an
  // invalidation zeroes) while the range is tracked; flags[] and values[] are its encoding.
  hmm_range: { vma: "o?:vm_area_struct", start: "num", end: "num", pfns: "io:f64", flags: "any", values: "any", pfn_shift: "int" },
  // include/linux/migrate.h (4.19-5.0): alloc_and_copy() fills dst[] (it comes back to the
  // kernel when the callback returns); finalize_and_map() only reads.
  migrate_vma_ops: {
    alloc_and_copy: "fn(o:vm_area_struct,f64,io:f64,num,num,p)",
    finalize_and_map: "fn(o:vm_area_struct,f64,f64,num,num,p)",
  },
  // The nvdimm stack (apis/bus.ts, block.ts, acpi.ts, nvdimm.ts): a bus a module implements,
  // the devices and drivers on it, ACPI drivers, and a bio-based block driver's queue and disk.
  work_struct: { func: "fn(s:work_struct)" },
  bus_type: { name: "str", match: "fn(o:device,o:device_driver_info)->int|0" },
  device_desc: { init_name: "str", parent: "o?:device", bus: "s?:bus_type", type: "str", modalias: "str" },
  device_driver: { name: "str", bus: "s?:bus_type", probe: "fn(o:device)->int|-14", remove: "fn(o:device)->int|0" },
  nd_device_driver: { drv: "s:device_driver", type: "int", probe: "fn(o:device)->int|-14", remove: "fn(o:device)->int|0" },
  acpi_device_ops: { add: "fn(o:acpi_device)->int|-14", remove: "fn(o:acpi_device)->int|0" },
  acpi_driver: { name: "str", class: "str", ids: "any", ops: "s:acpi_device_ops" },
  request_queue: { q_usage_counter: "s?:percpu_ref", queuedata: "p" },
  block_device_operations: { owner: "o?:module" },
  gendisk: { disk_name: "str", major: "int", first_minor: "int", flags: "int", fops: "s?:block_device_operations", queue: "s?:request_queue" },
};

/** Fields the kernel cannot do without when a module passes the struct in. */
export const STRUCT_REQUIRED: Readonly<Record<string, readonly string[]>> = {
  pci_driver: ["name", "id_table", "probe"],
  resource: ["start", "end"],
  miscdevice: ["minor", "name", "fops"],
  device_attribute: ["attr"],
  hmm_mirror: ["ops"],
  hmm_range: ["vma", "start", "end", "pfns", "flags", "values", "pfn_shift"],
  migrate_vma_ops: ["alloc_and_copy", "finalize_and_map"],
  hmm_mirror_ops: ["sync_cpu_device_pagetables"],
  bus_type: ["name"],
  device_desc: ["init_name"],
  device_driver: ["name"],
  nd_device_driver: ["drv", "type"],
  acpi_driver: ["name", "ids", "ops"],
  request_queue: ["q_usage_counter"],
  gendisk: ["disk_name"],
};
