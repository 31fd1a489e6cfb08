// struct module: what the loader knows about a loaded module.

import { letters } from "../taint.ts";
import { get_modinfo, type KoImage } from "./ko.ts";
import type { Marshal } from "./marshal.ts";
import type { ModuleRuntime } from "./runtime.ts";
import type { ExportClass } from "./ksymtab.ts";
import type { KBuf } from "../mm/slab.ts";
import type { Resource } from "../mm/resource.ts";
import { ALIGN, PAGE_SIZE } from "../mm/memmap.ts";
import type { DeviceDriver } from "../base/device.ts";
import type { PlatformDevice } from "../base/platform.ts";
import type { HmmDevice } from "../mm/hmm-devmem.ts";
import type { MiscDevice } from "../fs/chrdev.ts";
import type { HmmMirror } from "../mm/hmm-mirror.ts";
import type { MmStruct } from "../mm/mm_types.ts";

/** What a module created through the kernel and still holds: torn down if the module dies. */
export interface ModuleHoldings {
  kbufs: Set<KBuf>;
  regions: Set<Resource>;
  drivers: Set<DeviceDriver>;
  pdevs: Set<PlatformDevice>;
  hmmDevices: Set<HmmDevice>;
  /** misc_register()ed devices. */
  miscdevs: Set<MiscDevice>;
  /** hmm_mirror_register()ed mirrors. */
  mirrors: Set<HmmMirror>;
  /** References on address spaces: mmget/get_task_mm (users), mmgrab (count). */
  mms: Map<MmStruct, { users: number; count: number }>;
  /**
   * Anything else registered through the kernel (char regions, cdevs, classes, devices, buses,
   * drivers, queues, disks): its teardown (apis/teardown.ts hold()), run newest first when the
   * module goes; `dead` says whether it died (a living module that forgot something gets a line).
   */
  teardown: Map<object, (dead: boolean) => void>;
}

export type ModuleState = "UNFORMED" | "COMING" | "LIVE" | "GOING";

/** MODULE_REF_BASE: the base reference dropped by a successful unload. */
export const MODULE_REF_BASE = 1;

export interface ModuleExport {
  name: string;
  class: ExportClass;
  crc: number | null;
}

export class Module {
  readonly name: string;
  state: ModuleState = "UNFORMED";
  /** mod->taints */
  taints = 0;
  /** mod->refcnt: MODULE_REF_BASE plus every reference. */
  refcnt = MODULE_REF_BASE;
  /** Modules that use this one ("Used by"): mod->source_list. */
  readonly sourceList: Module[] = [];
  /** Modules this one uses: mod->target_list. */
  readonly targetList: Module[] = [];
  /** What simplify_symbols() resolved: symbol -> owning module, null for vmlinux. */
  readonly symbols = new Map<string, Module | null>();
  readonly image: KoImage;
  /** info->name: the .modinfo name, else struct module's; what the CRC checks print. */
  readonly infoName: string;
  /** The __versions the loader checks: none when MODULE_INIT_IGNORE_MODVERSIONS was given. */
  versions: KoImage["versions"] = null;
  /** The module has an init / an exit function (known once its code has been evaluated). */
  hasInit = false;
  hasExit = false;
  readonly exports: ModuleExport[];
  /** core_layout.base and init+core size, as /proc/modules prints them. */
  readonly base: bigint;
  readonly size: number;
  runtime: ModuleRuntime | null = null;
  marshal: Marshal | null = null;
  /** The module failed (exception, time-out, heap) and was contained. */
  dead = false;
  /** Loaded in the host (built-in, =y) rather than isolated (=m). */
  readonly builtin: boolean;
  readonly holdings: ModuleHoldings = {
    kbufs: new Set(), regions: new Set(), drivers: new Set(), pdevs: new Set(), hmmDevices: new Set(), miscdevs: new Set(), mirrors: new Set(), mms: new Map(), teardown: new Map(),
  };
  /** The module's functions the kernel is in, innermost last ("name [module]"). */
  readonly callees: string[] = [];
  /** Calls into the kernel this module is inside of (deferred notifications wait for them). */
  kcallDepth = 0;
  /** A kernel call made by this module oopsed or hung: the report is printed already. */
  kernelFault = false;
  /** The function ids its code registered: exit, and EXPORT_SYMBOL()ed functions. */
  exitFn = 0;
  exportFns: Record<string, number> | null = null;

  constructor(image: KoImage, base: bigint, builtin: boolean) {
    this.name = image.thisModule;
    this.image = image;
    this.infoName = get_modinfo(image.modinfo, "name") ?? image.thisModule;
    this.exports = image.exports.map((e) => ({ name: e.name, class: e.class, crc: e.crc }));
    this.base = base;
    this.size = ALIGN(image.code.length + image.modinfo.length + 512, PAGE_SIZE);
    this.builtin = builtin;
  }

  /** module_refcount(): the references beyond the base one. */
  get refcount(): number {
    return this.refcnt - MODULE_REF_BASE;
  }

  /** module_flags(): "(POE+)" etc.; "" when there is nothing to show. */
  flags(taintCount: number): string {
    if (!this.taints && this.state !== "GOING" && this.state !== "COMING") return "";
    let s = "(" + letters(this.taints, taintCount, false);
    if (this.state === "GOING") s += "-";
    if (this.state === "COMING") s += "+";
    return s + ")";
  }
}
