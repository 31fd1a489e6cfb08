// HMM device memory (mm/hmm.c): hmm_device_new()/put(), and hmm_devmem_add(),
// hmm_devmem_add_resource(), hmm_devmem_remove() as 4.19/4.20 have them (their own page
// creation and devres, spec mm-hmm R4.3) and as 5.0 has them on top of devm_memremap_pages()
// (R4.6). The free range for device-private memory is searched downwards from the top of the
// physical address space (R1.9).

import { EBUSY, EINVAL, ENOMEM, ENXIO, ERANGE } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import { Device } from "../base/device.ts";
import type { DrRelease } from "../base/devres.ts";
import { GFP_HIGHUSER, GFP_KERNEL } from "./gfp.ts";
import { lock_page } from "./migrate.ts";
import { Completion, complete, init_completion, wait_for_completion } from "../kernel/sched.ts";
import { add_pages, arch_add_memory, memmap_init_zone_device, move_pfn_range_to_zone, remove_pages } from "./memory_hotplug.ts";
import { ALIGN, PA_SECTION_SIZE, PHYS_PFN, type Page } from "./memmap.ts";
import { DevPagemap, MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_PUBLIC } from "./memremap.ts";
import { PercpuRef } from "./percpu-refcount.ts";
import { HmmMirrors } from "./hmm-mirror.ts";
import {
  formatResource, IORES_DESC_DEVICE_PRIVATE_MEMORY, IORES_DESC_DEVICE_PUBLIC_MEMORY, IORES_DESC_NONE, IORESOURCE_SYSTEM_RAM,
  REGION_DISJOINT, REGION_INTERSECTS, REGION_MIXED, resource_size, type Resource,
} from "./resource.ts";
import { object_gone, object_lives_in } from "../lib/lifetime.ts";

/** x86-64 MAX_PHYSMEM_BITS with 4-level paging. */
export const MAX_PHYSMEM_BITS = 46;
export const HMM_DEVICE_MAX = 256;
const HMM = { file: "mm/hmm.c" };

/** struct hmm_devmem_ops */
export interface HmmDevmemOpsLike {
  free: ((devmem: HmmDevmem, page: Page) => void) | null;
  fault: ((devmem: HmmDevmem, vma: unknown, addr: number, page: Page, flags: number, pmdp: unknown) => number) | null;
}

/** struct hmm_device: a fake device a driver can hang device memory off. */
export class HmmDevice {
  readonly device: Device;
  readonly minor: number;
  constructor(device: Device, minor: number) {
    this.device = device;
    this.minor = minor;
  }
}

/** struct hmm_devmem */
export class HmmDevmem {
  readonly completion = new Completion();
  pfn_first = -1;
  pfn_last = -1;
  resource: Resource | null = null;
  readonly device: Device;
  readonly pagemap = new DevPagemap();
  readonly ops: HmmDevmemOpsLike;
  readonly ref = new PercpuRef();
  /** 5.0: the CPU fault handler device_private_entry_fault() calls (hmm_devmem_fault). */
  page_fault: ((vma: unknown, addr: number, page: Page, flags: number, pmdp: unknown) => number) | null = null;
  constructor(device: Device, ops: HmmDevmemOpsLike) {
    this.device = device;
    this.ops = ops;
    this.pagemap.container = this;
  }
}

/** hmm_devmem_fault(): a CPU fault on device memory goes to the driver's ops->fault(). */
function hmmDevmemFault(devmem: HmmDevmem) {
  return function hmm_devmem_fault(vma: unknown, addr: number, page: Page, flags: number, pmdp: unknown): number {
    return devmem.ops.fault!(devmem, vma, addr, page, flags, pmdp);
  };
}

export class Hmm {
  readonly #k: Kernel;
  /** hmm_mirror_register() and the hmm_vma_* calls (hmm-mirror.ts). */
  readonly mirror: HmmMirrors;
  #minors = new Set<number>();
  /** hmm_devmem_radix (4.19/4.20): section number -> the devmem mapping it. */
  readonly #radix = new Map<number, HmmDevmem>();
  readonly #actions420 = new WeakMap<HmmDevmem, { refExit: (ref: unknown) => void; refKill: (ref: unknown) => void }>();

  constructor(k: Kernel) {
    this.#k = k;
    this.mirror = new HmmMirrors(k);
  }

  // ---- hmm_device ------------------------------------------------------------------------

  /** hmm_device_new(): a device "hmm_device%d", initialised but never added. */
  hmm_device_new(drvdata: unknown): HmmDevice | number {
    const k = this.#k;
    const buf = k.mm.kzalloc(968, undefined, "hmm_device");
    if (!buf) return -ENOMEM;
    let minor = 0;
    while (minor < HMM_DEVICE_MAX && this.#minors.has(minor)) minor++;
    if (minor >= HMM_DEVICE_MAX) {
      k.mm.kfree(buf);
      return -EBUSY;
    }
    this.#minors.add(minor);
    const dev = new Device(`hmm_device${minor}`, { className: "hmm_device" });
    dev.driver_data = drvdata;
    const hdev = new HmmDevice(dev, minor);
    dev.release = () => {
      object_gone(hdev);
      this.#minors.delete(minor);
      k.mm.kfree(buf);
    };
    return hdev;
  }

  /** hmm_device_put(): put_device(); the last reference releases it and its devres. */
  hmm_device_put(hdev: HmmDevice): void {
    this.#k.base.put_device(hdev.device);
  }

  /** hmm_vma_alloc_locked_page(): a GFP_HIGHUSER page for `addr`, locked; -1 (NULL) when
   *  none can be had. What a driver's fault handler migrates device memory back into. */
  hmm_vma_alloc_locked_page(_vma: unknown, _addr: number): Page {
    const mm = this.#k.mm;
    const page = mm.alloc_pages(GFP_HIGHUSER, 0);
    if (page < 0) return -1;
    lock_page(mm, page);
    return page;
  }

  // ---- hmm_devmem ------------------------------------------------------------------------

  /** hmm_devmem_add(): device-private memory of `size` bytes at the top of the address space. */
  hmm_devmem_add(ops: HmmDevmemOpsLike, device: Device, size: number): HmmDevmem | number {
    return this.#k.profile.hmm.devmemOnMemremap ? this.#add50(ops, device, size, null) : this.#add420(ops, device, size, null);
  }

  /** hmm_devmem_add_resource(): device-public memory in a resource the driver owns. */
  hmm_devmem_add_resource(ops: HmmDevmemOpsLike, device: Device, res: Resource): HmmDevmem | number {
    if (res.desc !== IORES_DESC_DEVICE_PUBLIC_MEMORY) return -EINVAL;
    return this.#k.profile.hmm.devmemOnMemremap ? this.#add50(ops, device, 0, res) : this.#add420(ops, device, 0, res);
  }

  /**
   * The free-range search: from min(iomem end, 2^MAX_PHYSMEM_BITS - 1) - size + 1 down in
   * steps of `size` (a section multiple) for a range region_intersects() calls disjoint.
   */
  #findFreeRange(device: Device, size: number, devmem: HmmDevmem): number {
    const k = this.#k;
    const iomem = k.mm.iomem;
    let addr = Math.min(iomem.root.end, 2 ** MAX_PHYSMEM_BITS - 1) - size + 1;
    for (; addr > size && addr >= iomem.root.start; addr -= size) {
      if (iomem.region_intersects(addr, size, 0, IORES_DESC_NONE) !== REGION_DISJOINT) continue;
      devmem.resource = k.base.devm_request_mem_region(device, addr, size, device.name);
      if (!devmem.resource) return -ENOMEM;
      return 0;
    }
    return -ERANGE;
  }

  #refRelease(devmem: HmmDevmem) {
    return function hmm_devmem_ref_release() {
      complete(devmem.completion);
    };
  }

  /** 4.19/4.20: hmm_devmem_add() / hmm_devmem_add_resource() with hmm_devmem_pages_create(). */
  #add420(ops: HmmDevmemOpsLike, device: Device, size: number, res: Resource | null): HmmDevmem | number {
    const k = this.#k;
    const base = k.base;
    k.mm.memremap.dev_pagemap_get_ops();
    const devmem = new HmmDevmem(device, ops);
    const dr = base.devres_alloc(this.#devmemRelease, 712, GFP_KERNEL, { devmem }, "hmm_devmem_release");
    if (!dr) return -ENOMEM;
    init_completion(devmem.completion);
    devmem.ref.init(k.percpuRefEnv, this.#refRelease(devmem), 0);
    const { refExit, refKill } = this.#refActions420(devmem);
    const unwind = (err: number) => {
      refKill(devmem.ref);
      refExit(devmem.ref);
      base.devres_free(dr);
      return err;
    };
    if (base.devm_add_action(device, refExit, devmem.ref, "hmm_devmem_ref_exit")) return unwind(-ENOMEM);
    if (res) {
      devmem.resource = res;
    } else {
      const aligned = ALIGN(size, PA_SECTION_SIZE);
      const err = this.#findFreeRange(device, aligned, devmem);
      if (err) return unwind(err);
      devmem.resource!.desc = IORES_DESC_DEVICE_PRIVATE_MEMORY;
    }
    const r = devmem.resource!;
    devmem.pfn_first = PHYS_PFN(r.start);
    devmem.pfn_last = devmem.pfn_first + PHYS_PFN(resource_size(r));
    const err = this.#pagesCreate420(devmem);
    if (err) {
      if (!res) base.devm_release_mem_region(device, r.start, resource_size(r));
      return unwind(err);
    }
    base.devres_add(device, dr);
    if (base.devm_add_action(device, refKill, devmem.ref, "hmm_devmem_ref_kill")) {
      this.hmm_devmem_remove(devmem);
      return -ENOMEM;
    }
    return devmem;
  }

  /**
   * 4.20's hmm_devmem_ref_exit() (exit, then devm_remove_action() on itself) and
   * hmm_devmem_ref_kill() (kill, wait for the release, the same): one pair per devmem, so
   * hmm_devmem_remove() calls the functions that were registered, as the kernel's static
   * functions are.
   */
  #refActions420(devmem: HmmDevmem): { refExit: (ref: unknown) => void; refKill: (ref: unknown) => void } {
    let actions = this.#actions420.get(devmem);
    if (actions) return actions;
    const k = this.#k;
    const refExit = function hmm_devmem_ref_exit(ref: unknown) {
      (ref as PercpuRef).exit();
      k.base.devm_remove_action(devmem.device, refExit, ref);
    };
    const refKill = function hmm_devmem_ref_kill(ref: unknown) {
      (ref as PercpuRef).kill();
      wait_for_completion(k.sched, devmem.completion);
      k.base.devm_remove_action(devmem.device, refKill, ref);
    };
    this.#actions420.set(devmem, (actions = { refExit, refKill }));
    return actions;
  }

  /** hmm_devmem_free(): the page's mapping is cleared here, not by the core (2fa147bdbf67). */
  #hmmDevmemFree(devmem: HmmDevmem) {
    const memmap = this.#k.mm.memmap;
    return function hmm_devmem_free(page: Page) {
      const sec = memmap.section(page);
      if (sec.hasMapping()) sec.mapping[page - sec.startPfn] = null;
      devmem.ops.free!(devmem, page);
    };
  }

  /** The devres of a 4.20 hmm_devmem: hmm_devmem_release(). */
  readonly #devmemRelease: DrRelease = (_dev, dr) => this.#release420(dr.data["devmem"] as HmmDevmem);

  /** hmm_devmem_pages_create() (4.20): RAM check, radix, hotplug, memmap_init_zone_device(). */
  #pagesCreate420(devmem: HmmDevmem): number {
    const k = this.#k;
    const mm = k.mm;
    const r = devmem.resource!;
    const align_start = r.start - (r.start % PA_SECTION_SIZE);
    const align_size = ALIGN(r.start + resource_size(r), PA_SECTION_SIZE) - align_start;
    const is_ram = mm.iomem.region_intersects(align_start, align_size, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE);
    if (is_ram === REGION_MIXED) {
      k.warnOnce("hmm_devmem_pages_create:mixed", { ...HMM, func: "hmm_devmem_pages_create" },
        `hmm_devmem_pages_create attempted on mixed region ${formatResource(r, true)}\n`);
      return -ENXIO;
    }
    if (is_ram === REGION_INTERSECTS) return -ENXIO;
    const pgmap = devmem.pagemap;
    pgmap.type = r.desc === IORES_DESC_DEVICE_PUBLIC_MEMORY ? MEMORY_DEVICE_PUBLIC : MEMORY_DEVICE_PRIVATE;
    pgmap.res = r;
    pgmap.page_fault = hmmDevmemFault(devmem);
    pgmap.page_free = this.#hmmDevmemFree(devmem);
    pgmap.dev = devmem.device;
    pgmap.ref = devmem.ref;
    pgmap.data = devmem;
    const align_end = align_start + align_size - 1;
    const added: number[] = [];
    const radixRelease = (err: number): number => {
      for (const a of added) this.#radix.delete(a);
      return err;
    };
    for (let key = align_start; key <= align_end; key += PA_SECTION_SIZE) {
      const nr = key / PA_SECTION_SIZE;
      const dup = this.#radix.get(nr);
      if (dup) {
        k.base.dev_err(devmem.device, `hmm_devmem_pages_create: collides with mapping for ${dup.device.name}\n`);
        return radixRelease(-EBUSY);
      }
      this.#radix.set(nr, devmem);
      added.push(nr);
    }
    const startPfn = PHYS_PFN(align_start);
    const nr = PHYS_PFN(align_size);
    const name = `${devmem.device.name} (${pgmap.type === MEMORY_DEVICE_PUBLIC ? "MEMORY_DEVICE_PUBLIC" : "MEMORY_DEVICE_PRIVATE"})`;
    // PUBLIC memory is CPU-addressable and gets the linear map; PRIVATE only struct pages.
    const err = pgmap.type === MEMORY_DEVICE_PUBLIC ? arch_add_memory(mm, align_start, align_size, name, null) : add_pages(mm, startPfn, nr, name, false, null);
    if (err) return radixRelease(err);
    move_pfn_range_to_zone(mm, startPfn, nr, null);
    mm.memremap.register(pgmap);
    memmap_init_zone_device(mm, startPfn, nr, pgmap);
    return 0;
  }

  /** hmm_devmem_release() (4.20): the devres that unplugs the memory. */
  #release420(devmem: HmmDevmem): void {
    const k = this.#k;
    const r = devmem.resource!;
    if (devmem.ref.tryget_live()) {
      k.dev_WARN(devmem.device, { ...HMM, func: "hmm_devmem_release" }, "hmm_devmem_release: page mapping is still live!\n");
      devmem.ref.put();
    }
    const startPfn = PHYS_PFN(r.start - (r.start % PA_SECTION_SIZE));
    const npages = PHYS_PFN(ALIGN(resource_size(r), PA_SECTION_SIZE));
    remove_pages(k.mm, startPfn, npages);
    for (let key = r.start; key <= r.end; key += PA_SECTION_SIZE) this.#radix.delete(Math.floor(key / PA_SECTION_SIZE));
    k.mm.memremap.unregister(devmem.pagemap);
    object_gone(devmem); // devres_free() of the hmm_devmem right after
  }

  /** hmm_devmem_remove() (4.19/4.20 only): kill, wait, exit, unplug, release the region. */
  hmm_devmem_remove(devmem: HmmDevmem): void {
    const k = this.#k;
    const r = devmem.resource!;
    const start = r.start;
    const size = resource_size(r);
    const cdm = r.desc === IORES_DESC_DEVICE_PUBLIC_MEMORY;
    const { refKill, refExit } = this.#refActions420(devmem);
    refKill(devmem.ref);
    refExit(devmem.ref);
    // hmm_devmem_pages_remove(): devres_release() of the hmm_devmem_release entry.
    const dev = devmem.device;
    k.base.devres_release(dev, this.#devmemRelease, (dr) => dr.data["devmem"] === devmem);
    if (!cdm) k.base.devm_release_mem_region(dev, start, size);
  }

  /** 5.0: hmm_devmem_add() / hmm_devmem_add_resource() on devm_memremap_pages(). */
  #add50(ops: HmmDevmemOpsLike, device: Device, size: number, res: Resource | null): HmmDevmem | number {
    const k = this.#k;
    const base = k.base;
    k.mm.memremap.dev_pagemap_get_ops();
    const buf = base.devm_kzalloc(device, 712);
    if (!buf) return -ENOMEM;
    const devmem = new HmmDevmem(device, ops);
    object_lives_in(devmem, buf);
    init_completion(devmem.completion);
    devmem.ref.init(k.percpuRefEnv, this.#refRelease(devmem), 0);
    const refExit = function hmm_devmem_ref_exit(ref: unknown) {
      wait_for_completion(k.sched, devmem.completion);
      (ref as PercpuRef).exit();
    };
    const rc = base.devm_add_action_or_reset(device, refExit, devmem.ref, "hmm_devmem_ref_exit");
    if (rc) return rc;
    if (res) {
      devmem.resource = res;
    } else {
      const err = this.#findFreeRange(device, ALIGN(size, PA_SECTION_SIZE), devmem);
      if (err) return err;
      devmem.resource!.desc = IORES_DESC_DEVICE_PRIVATE_MEMORY;
    }
    const r = devmem.resource!;
    devmem.pfn_first = PHYS_PFN(r.start);
    devmem.pfn_last = devmem.pfn_first + PHYS_PFN(resource_size(r));
    // 5.0: dev_pagemap has no page_fault; device_private_entry_fault() finds the devmem.
    devmem.page_fault = hmmDevmemFault(devmem);
    const pgmap = devmem.pagemap;
    pgmap.type = res ? MEMORY_DEVICE_PUBLIC : MEMORY_DEVICE_PRIVATE;
    pgmap.res = r;
    pgmap.page_free = this.#hmmDevmemFree(devmem);
    pgmap.altmap_valid = false;
    pgmap.ref = devmem.ref;
    pgmap.data = devmem;
    pgmap.kill = function hmm_devmem_ref_kill(ref) {
      ref.kill();
    };
    const addr = k.mm.memremap.devm_memremap_pages(device, pgmap);
    if (addr < 0) return addr;
    return devmem;
  }
}
