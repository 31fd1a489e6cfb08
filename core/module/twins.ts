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
import { HmmMirror, type HmmMm, type HmmUpdate, HmmRange } from "../mm/hmm-mirror.ts";
import type { VmArea, MmStruct } from "../mm/mm_types.ts";
import { MiscDevice, type CharFileOperations } from "../fs/chrdev.ts";
import type { Kernel } from "../kernel.ts";
import { BUS_TWINS } from "./apis/bus.ts";
import { ACPI_TWINS } from "./apis/acpi.ts";
import { BLOCK_TWINS } from "./apis/block.ts";
import { NVDIMM_TWINS } from "./apis/nvdimm.ts";
import { vma_in_mmap } from "../mm/mmap.ts";
import { vm_operations_twin } from "./apis/mmap.ts";
import { pci_driver_twin } from "./apis/pci.ts";
import { cdev_twin, device_attribute_twin } from "./apis/cdev.ts";

/** A twin of the nvdimm stack's structs, looked up when used (the modules import each other). */
function nvdimmTwin(type: string): StructTwin {
  return (BUS_TWINS[type] ?? ACPI_TWINS[type] ?? BLOCK_TWINS[type] ?? NVDIMM_TWINS[type])!;
}

export interface StructTwin {
  create(c: CallCtx): object;
  update?(obj: object, fields: Record<string, unknown>, c: CallCtx): void;
  /** The kernel's array behind an io: field, which goes back to the module after a call. */
  ioField?(obj: object, name: string): Float64Array | Uint8Array | undefined;
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

/** struct hmm_mirror_ops as the kernel holds it. */
export interface HmmMirrorOpsTwin {
  release: ((mirror: HmmMirror) => void) | null;
  sync_cpu_device_pagetables: ((mirror: HmmMirror, update: HmmUpdate) => number) | null;
}

/** struct migrate_vma_ops as the kernel holds it. */
export interface MigrateVmaOpsTwin {
  alloc_and_copy: ((vma: VmArea, src: Float64Array, dst: Float64Array, start: number, end: number, priv: unknown) => void) | null;
  finalize_and_map: ((vma: VmArea, src: Float64Array, dst: Float64Array, start: number, end: number, priv: unknown) => void) | null;
}

/** The mirror's ops as the module last passed them (the twin's ops call through this). */
export const mirrorOps = new WeakMap<HmmMirror, { ops: HmmMirrorOpsTwin | null }>();

/** Is the range on its mm's list of tracked snapshots (between get_pfns/fault and range_done)? */
export function rangeTracked(range: HmmRange): boolean {
  const hmm = (range.vma as VmArea | null)?.vm_mm.hmm as HmmMm | null | undefined;
  return !!hmm && hmm.ranges.includes(range);
}

function numTriple(v: unknown): [number, number, number] | null {
  if (!Array.isArray(v) || v.length < 3) return null;
  const t = v.slice(0, 3);
  return t.every((x) => typeof x === "number" && Number.isFinite(x) && x >= 0) ? (t as [number, number, number]) : null;
}

function resourceFrom(v: unknown): Resource | null {
  if (!v || typeof v !== "object") return null;
  const r = v as { start?: unknown; end?: unknown; flags?: unknown; name?: unknown; desc?: unknown };
  if (typeof r.start !== "number" || typeof r.end !== "number") return null;
  return new Resource(r.start, r.end, typeof r.name === "string" ? r.name : null, typeof r.flags === "number" ? r.flags : 0x200, typeof r.desc === "number" ? r.desc : 0);
}

/**
 * An ops table as the kernel holds it: each field is what the module passed last (its
 * function, or the module that owns it), NULL when the module's struct lacks the field.
 */
function opsTwin<T extends object>(fields: readonly (keyof T & string)[]): StructTwin {
  return {
    create: () => Object.fromEntries(fields.map((name) => [name, null])) as T,
    update(obj, f) {
      for (const name of fields) (obj as Record<string, unknown>)[name] = f[name] ?? null;
    },
  };
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
  file_operations: opsTwin<CharFileOperations>(["owner", "open", "release", "unlocked_ioctl", "mmap", "get_unmapped_area"]),
  miscdevice: {
    create: () => new MiscDevice(),
    update(obj, f) {
      const m = obj as MiscDevice;
      // On misc_list the kernel's copy rules (its minor may be a dynamic one it chose).
      if (m.listed) return;
      if (typeof f["minor"] === "number") m.minor = f["minor"];
      if (typeof f["name"] === "string") m.name = f["name"];
      if ("fops" in f) m.fops = (f["fops"] as CharFileOperations | null) ?? null;
      if (typeof f["mode"] === "number") m.mode = f["mode"];
    },
  },
  hmm_mirror_ops: opsTwin<HmmMirrorOpsTwin>(["release", "sync_cpu_device_pagetables"]),
  hmm_mirror: {
    create: () => {
      const holder: { ops: HmmMirrorOpsTwin | null } = { ops: null };
      // The mirror's ops call the module's, through what it passed last.
      const mirror = new HmmMirror({
        release: (m) => holder.ops?.release?.(m),
        sync_cpu_device_pagetables: (m, update) => holder.ops?.sync_cpu_device_pagetables?.(m, update) ?? 0,
      });
      mirrorOps.set(mirror, holder);
      return mirror;
    },
    update(obj, f) {
      if ("ops" in f) mirrorOps.get(obj as HmmMirror)!.ops = (f["ops"] as HmmMirrorOpsTwin | null) ?? null;
    },
  },
  hmm_range: {
    create: () =>
      new HmmRange({ vma: null as unknown as VmArea, start: 0, end: 0, pfns: new Float64Array(0), flags: [0, 0, 0], values: [0, 0, 0], pfn_shift: 0 }),
    update(obj, f) {
      const r = obj as HmmRange;
      // While the kernel tracks the snapshot, pfns[] is the kernel's to write (an
      // invalidation zeroes it); the module's copy is not read back in.
      if (rangeTracked(r)) return;
      if ("vma" in f) r.vma = f["vma"] as VmArea;
      if (typeof f["start"] === "number") r.start = f["start"];
      if (typeof f["end"] === "number") r.end = f["end"];
      if (f["pfns"] instanceof Float64Array) r.pfns = f["pfns"];
      const flags = numTriple(f["flags"]);
      if (flags) r.flags = flags;
      const values = numTriple(f["values"]);
      if (values) r.values = values;
      if (typeof f["pfn_shift"] === "number") r.pfn_shift = f["pfn_shift"];
    },
    ioField: (obj, name) => (name === "pfns" ? (obj as HmmRange).pfns : undefined),
  },
  migrate_vma_ops: opsTwin<MigrateVmaOpsTwin>(["alloc_and_copy", "finalize_and_map"]),
  // Created and updated in apis/mmap.ts (the kernel calls it from the fault path).
  vm_operations_struct: { create: (c) => vm_operations_twin.create(c), update: (o, f, c) => vm_operations_twin.update!(o, f, c) },
  // apis/cdev.ts
  cdev: { create: (c) => cdev_twin.create(c), update: (o, f, c) => cdev_twin.update!(o, f, c) },
  device_attribute: { create: (c) => device_attribute_twin.create(c), update: (o, f, c) => device_attribute_twin.update!(o, f, c) },
  // Created and updated in apis/pci.ts.
  pci_driver: { create: (c) => pci_driver_twin.create(c), update: (o, f, c) => pci_driver_twin.update!(o, f, c) },
  // The nvdimm stack: created and updated in apis/bus.ts, acpi.ts, block.ts and nvdimm.ts.
  ...Object.fromEntries(
    (["work_struct", "bus_type", "device_desc", "device_driver", "nd_device_driver", "acpi_device_ops", "acpi_driver", "request_queue", "block_device_operations", "gendisk"] as const).map((t) => [
      t, { create: (c: CallCtx) => nvdimmTwin(t).create(c), update: (o: object, f: Record<string, unknown>, c: CallCtx) => nvdimmTwin(t).update!(o, f, c) },
    ]),
  ),
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
  pci_dev: { vendor: "number", device: "number", subsystem_vendor: "number", subsystem_device: "number", class: "number", revision: "number", devfn: "number", dev: "device" },
  hmm_device: { device: "device" },
  hmm_devmem: { pfn_first: "number", pfn_last: "number", resource: "resource | null", device: "device" },
  module: { name: "string" },
  /** struct file: private_data is the module's (misc_open() sets it to the miscdevice). */
  file: { f_flags: "number", f_mode: "number", private_data: "unknown" },
  inode: { i_ino: "number", i_rdev: "number", i_mapping: "address_space | null" },
  /** struct address_space: a file's (or device node's) mappings and page cache. */
  address_space: {},
  task_struct: { pid: "number", comm: "string", mm: "mm_struct | null" },
  mm_struct: {},
  vm_area_struct: { vm_start: "number", vm_end: "number", vm_flags: "number", vm_pgoff: "number", vm_mm: "mm_struct", vm_file: "file | null", vm_private_data: "unknown" },
  /** struct class (class_create()) */
  class_struct: {},
  /** struct vm_fault as a vm_operations_struct's fault() gets it (valid during that call). */
  vm_fault: { vma: "vm_area_struct", address: "number", pgoff: "number", flags: "number" },
  /**
   * struct device_driver as a bus's match() gets it (the kernel's, which may be another
   * module's): its name, and nd_device_driver.type for an nd bus driver (0 elsewhere).
   */
  device_driver_info: { name: "string", type: "number" },
  /** struct acpi_device: the ACPI namespace device an acpi_driver's add() gets. */
  acpi_device: { hid: "string", dev: "device" },
  /** struct bio as a make_request function gets it (bi_iter flattened); valid until bio_endio(). */
  bio: { bi_opf: "number", bi_sector: "number", bi_size: "number" },
};

/**
 * Fields that travel only with the object's first trip to a module: from then on they are the
 * module's (it may assign them; the kernel never reads them back).
 */
export const OBJECT_ONCE_FIELDS: Readonly<Record<string, readonly string[]>> = { file: ["private_data"] };

/**
 * Objects that die without object_gone(): is this one still alive? A handle to a dead one is
 * refused like a stale handle.
 */
export const OBJECT_LIVE: Readonly<Record<string, (obj: object, k: Kernel) => boolean>> = {
  task_struct: (t) => (t as { alive?: boolean }).alive !== false,
  mm_struct: (mm, k) => k.mm.mms.has(mm as MmStruct),
  vm_area_struct: (v, k) => {
    const vma = v as VmArea;
    const mm = vma.vm_mm;
    // A vma a driver's ->mmap is setting up is not linked yet.
    return vma_in_mmap.has(vma) || (k.mm.mms.has(mm) && !mm.dead && mm.mmap[mm.find_vma_index(vma.vm_start)] === vma);
  },
  vm_fault: (v) => (v as { active?: boolean }).active === true,
};

/**
 * Object types whose fields can change while a module holds a handle: the kernel compares
 * them with what it sent last before sending the handle alone. Every other type's fields are
 * fixed for the object's life (and its handle's), so they travel once.
 */
export const OBJECT_MUTABLE: ReadonlySet<string> = new Set(["resource", "vm_area_struct", "task_struct", "vm_fault"]);

/** One field of an object type: its name, and the object type it holds, if it holds one. */
export interface ObjectField {
  readonly name: string;
  readonly nested: string | null;
  readonly once: boolean;
}

const fieldInfo = new Map<string, readonly ObjectField[]>();

/** The fields of `type`, compiled once. */
export function objectFieldInfo(type: string): readonly ObjectField[] {
  let info = fieldInfo.get(type);
  if (!info) {
    const once = OBJECT_ONCE_FIELDS[type] ?? [];
    info = Object.entries(OBJECT_TYPES[type] ?? {}).map(([name, ts]) => {
      const objType = ts.replace(" | null", "");
      return { name, nested: objType in OBJECT_TYPES ? objType : null, once: once.includes(name) };
    });
    fieldInfo.set(type, info);
  }
  return info;
}

/** The fields of `obj` (a kernel object of `type`) that travel with its handle. */
export function objectFields(type: string, obj: object): Record<string, unknown | NestedObject> {
  const out: Record<string, unknown | NestedObject> = {};
  for (const f of objectFieldInfo(type)) {
    const v = (obj as Record<string, unknown>)[f.name];
    out[f.name] = f.nested && v ? nested(f.nested, v as object) : (v ?? null);
  }
  return out;
}
