// Kernel-side twins of the structs a module owns (it fills a struct dev_pagemap and passes a
// pointer; the kernel keeps its own copy, updated from the module's fields on every call),
// and the fields of kernel objects a module may read.

import type { CallCtx, NestedObject } from "./api.ts";
import { nested } from "./api.ts";
import { Completion } from "../kernel/sched.ts";
import { DevPagemap } from "../mm/memremap.ts";
import { PercpuRef } from "../mm/percpu-refcount.ts";
import { Resource } from "../mm/resource.ts";
import type { DeviceDriver } from "../base/device.ts";
import type { HmmDevmem } from "../mm/hmm-devmem.ts";

export interface StructTwin {
  create(c: CallCtx): object;
  update?(obj: object, fields: Record<string, unknown>, c: CallCtx): void;
}

/** struct hmm_devmem_ops as the kernel holds it. */
export interface HmmDevmemOps {
  free: ((devmem: HmmDevmem, page: number) => void) | null;
  fault: ((devmem: HmmDevmem, vma: unknown, addr: number, page: number, flags: number, pmdp: unknown) => number) | null;
}

/** struct platform_driver as the kernel holds it. */
export interface PlatformDriverTwin {
  name: string;
  probe: Function | null;
  remove: Function | null;
  registered: DeviceDriver | null;
}

function resourceFrom(v: unknown): Resource | null {
  if (!v || typeof v !== "object") return null;
  const r = v as { start?: unknown; end?: unknown; flags?: unknown; name?: unknown; desc?: unknown };
  if (typeof r.start !== "number" || typeof r.end !== "number") return null;
  return new Resource(r.start, r.end, typeof r.name === "string" ? r.name : null, typeof r.flags === "number" ? r.flags : 0x200, typeof r.desc === "number" ? r.desc : 0);
}

export const STRUCT_TWINS: Record<string, StructTwin> = {
  percpu_ref: { create: () => new PercpuRef() },
  completion: { create: () => new Completion() },
  resource: {
    create: () => new Resource(0, -1, null),
    update(obj, f) {
      const r = obj as Resource;
      // Only while it is not in a tree: the kernel owns the fields of a linked resource.
      if (r.parent) return;
      if (typeof f["start"] === "number") r.start = f["start"];
      if (typeof f["end"] === "number") r.end = f["end"];
      if (typeof f["name"] === "string") r.name = f["name"];
      if (typeof f["flags"] === "number") r.flags = f["flags"] >>> 0;
      if (typeof f["desc"] === "number") r.desc = f["desc"];
    },
  },
  dev_pagemap: {
    create: () => new DevPagemap(),
    update(obj, f) {
      const p = obj as DevPagemap;
      // Fields are read when a call passes the struct; once registered the kernel's copy rules.
      if (p.id) return;
      if (typeof f["type"] === "number") p.type = f["type"];
      const res = resourceFrom(f["res"]);
      if (res) p.res = res;
      if ("ref" in f) p.ref = (f["ref"] as PercpuRef | null) ?? null;
      if ("page_free" in f) p.page_free = (f["page_free"] as DevPagemap["page_free"]) ?? null;
      if ("page_fault" in f) p.page_fault = (f["page_fault"] as DevPagemap["page_fault"]) ?? null;
      if ("kill" in f) p.kill = (f["kill"] as DevPagemap["kill"]) ?? null;
      if ("data" in f) p.data = f["data"] ?? null;
      const a = f["altmap"] as Partial<DevPagemap["altmap"]> | undefined;
      if (a && typeof a === "object") {
        p.altmap = { base_pfn: num(a.base_pfn), reserve: num(a.reserve), free: num(a.free), align: num(a.align), alloc: num(a.alloc) };
      }
      if ("altmap_valid" in f) p.altmap_valid = f["altmap_valid"] === true;
    },
  },
  hmm_devmem_ops: {
    create: (): HmmDevmemOps => ({ free: null, fault: null }),
    update(obj, f) {
      const o = obj as HmmDevmemOps;
      if ("free" in f) o.free = (f["free"] as HmmDevmemOps["free"]) ?? null;
      if ("fault" in f) o.fault = (f["fault"] as HmmDevmemOps["fault"]) ?? null;
    },
  },
  platform_driver: {
    create: (): PlatformDriverTwin => ({ name: "", probe: null, remove: null, registered: null }),
    update(obj, f) {
      const d = obj as PlatformDriverTwin;
      if (d.registered) return;
      const drv = f["driver"] as { name?: unknown } | undefined;
      if (drv && typeof drv.name === "string") d.name = drv.name;
      d.probe = (f["probe"] as Function | null) ?? null;
      d.remove = (f["remove"] as Function | null) ?? null;
    },
  },
};

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

/**
 * Kernel objects a module holds by handle, and the fields it may read, with their types as
 * the SDK declares them. A field whose type is another object type travels as that object.
 */
export const OBJECT_TYPES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  device: {},
  resource: { start: "number", end: "number", name: "string | null", flags: "number", desc: "number" },
  kbuf: { size: "number" },
  platform_device: { name: "string", id: "number", dev: "device" },
  hmm_device: { device: "device" },
  hmm_devmem: { pfn_first: "number", pfn_last: "number", resource: "resource | null", device: "device" },
  module: { name: "string" },
};

/** The fields of `obj` (a kernel object of `type`) that travel with its handle. */
export function objectFields(type: string, obj: object): Record<string, unknown | NestedObject> {
  const out: Record<string, unknown | NestedObject> = {};
  for (const [name, ts] of Object.entries(OBJECT_TYPES[type] ?? {})) {
    const v = (obj as Record<string, unknown>)[name];
    const objType = ts.replace(" | null", "");
    out[name] = objType in OBJECT_TYPES && v ? nested(objType, v as object) : (v ?? null);
  }
  return out;
}
