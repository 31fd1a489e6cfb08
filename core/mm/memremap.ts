// ZONE_DEVICE page maps (kernel/memremap.c): struct dev_pagemap, the pgmap_array lookup,
// devm_memremap_pages() and its release as 4.20 and 5.0 have them (spec mm-hmm R1.8,
// R2.3-R2.9), get_dev_pagemap()/put_dev_pagemap() and the devmap-managed put_page() path.

import { EINVAL, ENOMEM, ENXIO } from "../errno.ts";
import { findRange } from "../lib/ranges.ts";
import type { Device } from "../base/device.ts";
import { GFP_KERNEL } from "./gfp.ts";
import {
  add_pages, arch_add_memory, memmap_init_zone_device, move_pfn_range_to_zone, rangeAt, remove_pages, vmem_altmap_offset,
} from "./memory_hotplug.ts";
import { ALIGN, PA_SECTION_SIZE, PAGES_PER_SECTION, PFN_PHYS, PHYS_PFN, type Page } from "./memmap.ts";
import type { MM } from "./mm.ts";
import { VM_FAULT_SIGBUS } from "./memory.ts";
import { moduleOfFunction } from "../kernel/kallsyms.ts";
import type { PercpuRef } from "./percpu-refcount.ts";
import { __va } from "./physmem.ts";
import {
  formatResource, IORES_DESC_NONE, IORESOURCE_SYSTEM_RAM, REGION_DISJOINT, REGION_INTERSECTS, REGION_MIXED, Resource, resource_size,
} from "./resource.ts";

// enum memory_type (4.20 / 5.0)
export const MEMORY_DEVICE_PRIVATE = 1;
export const MEMORY_DEVICE_PUBLIC = 2;
export const MEMORY_DEVICE_FS_DAX = 3;
export const MEMORY_DEVICE_PCI_P2PDMA = 4;
export const MEMORY_TYPE_NAMES: Record<number, string> = {
  [MEMORY_DEVICE_PRIVATE]: "MEMORY_DEVICE_PRIVATE",
  [MEMORY_DEVICE_PUBLIC]: "MEMORY_DEVICE_PUBLIC",
  [MEMORY_DEVICE_FS_DAX]: "MEMORY_DEVICE_FS_DAX",
  [MEMORY_DEVICE_PCI_P2PDMA]: "MEMORY_DEVICE_PCI_P2PDMA",
};

export const SECTION_SIZE = PA_SECTION_SIZE;
const MEMREMAP = { file: "kernel/memremap.c", func: "devm_memremap_pages" };
const MEMREMAP_RELEASE = { file: "kernel/memremap.c", func: "devm_memremap_pages_release" };

/** struct vmem_altmap: memmap stored in the device memory itself. */
export interface VmemAltmap {
  base_pfn: number;
  reserve: number;
  free: number;
  align: number;
  alloc: number;
}

/** dev_page_fault_t (4.20): the CPU fault callback of a device-private page. */
export type DevPageFault = (vma: unknown, addr: number, page: Page, flags: number, pmdp: unknown) => number;
/** dev_page_free_t: called when a device page's refcount drops back to 1. */
export type DevPageFree = (page: Page, data: unknown) => void;

/** struct dev_pagemap (4.20 and 5.0 fields). */
export class DevPagemap {
  /** 4.20: device-private CPU fault callback (5.0 moved it into struct hmm_devmem). */
  page_fault: DevPageFault | null = null;
  page_free: DevPageFree | null = null;
  altmap: VmemAltmap = { base_pfn: 0, reserve: 0, free: 0, align: 0, alloc: 0 };
  altmap_valid = false;
  res: Resource = new Resource(0, -1, null);
  ref: PercpuRef | null = null;
  /** 5.0: how devm_memremap_pages kills `ref` on teardown and on failure. */
  kill: ((ref: PercpuRef) => void) | null = null;
  dev: Device | null = null;
  /** Passed to page_free. */
  data: unknown = null;
  type = 0;
  pci_p2pdma_bus_offset = 0;
  /** kemu: the value stored in page->pgmap while this map is registered (0: not registered). */
  id = 0;
  /** kemu: what embeds this pgmap (container_of(), e.g. its struct hmm_devmem). */
  container: object | null = null;
}

/** pgmap_array: an xarray of pfn -> pgmap, stored by range. */
export class PgmapArray {
  #entries: { first: number; last: number; pgmap: DevPagemap }[] = [];

  /** xa_store_range(): [first, last] now maps to `pgmap` (null erases). */
  store(first: number, last: number, pgmap: DevPagemap | null): void {
    const out: { first: number; last: number; pgmap: DevPagemap }[] = [];
    for (const e of this.#entries) {
      if (e.last < first || e.first > last) {
        out.push(e);
        continue;
      }
      if (e.first < first) out.push({ first: e.first, last: first - 1, pgmap: e.pgmap });
      if (e.last > last) out.push({ first: last + 1, last: e.last, pgmap: e.pgmap });
    }
    if (pgmap) out.push({ first, last, pgmap });
    out.sort((a, b) => a.first - b.first);
    this.#entries = out;
  }

  /** xa_load() */
  load(pfn: number): DevPagemap | null {
    return findRange(this.#entries, pfn, (e) => e.first, (e) => e.last + 1)?.pgmap ?? null;
  }

  entries(): readonly { first: number; last: number; pgmap: DevPagemap }[] {
    return this.#entries;
  }
}

/** The module whose callbacks a pgmap carries (for its taps' names), or "kernel". */
function pgmapOwner(pgmap: DevPagemap): string {
  const ops = (pgmap.container as { ops?: Record<string, unknown> } | null)?.ops;
  for (const fn of [pgmap.page_free, pgmap.page_fault, ops?.["free"], ops?.["fault"]]) {
    const owner = typeof fn === "function" ? moduleOfFunction.get(fn) : undefined;
    if (owner) return owner;
  }
  return "kernel";
}

export function pfn_first(pgmap: DevPagemap): number {
  let pfn = PHYS_PFN(pgmap.res.start);
  if (pgmap.altmap_valid) pfn += vmem_altmap_offset(pgmap.altmap);
  return pfn;
}

export function pfn_end(pgmap: DevPagemap): number {
  return PHYS_PFN(pgmap.res.start + resource_size(pgmap.res));
}

export class Memremap {
  readonly #mm: MM;
  readonly pgmap_array = new PgmapArray();
  /** page->pgmap: id -> pgmap for every registered map. */
  readonly table: (DevPagemap | undefined)[] = [undefined];
  #devmap_enable = 0;
  /** devmap_managed_key: put_page() routes ZONE_DEVICE pages through __put_devmap_managed_page. */
  devmap_managed_key = false;

  constructor(mm: MM) {
    this.#mm = mm;
  }

  /** The dev_pagemap a page->pgmap value names. */
  pgmapOf(id: number): DevPagemap | undefined {
    return this.table[id];
  }

  /** Live pgmaps: registered and not yet released. */
  registered(): DevPagemap[] {
    return this.table.filter((p): p is DevPagemap => p !== undefined);
  }

  /**
   * Give `pgmap` the id page->pgmap holds. devm_memremap_pages() does it for its maps; 4.20's
   * hmm_devmem, whose pgmap is not in pgmap_array, calls it itself.
   */
  register(pgmap: DevPagemap): void {
    pgmap.id = this.table.length;
    this.table.push(pgmap);
    // The owner's callbacks become the pgmap's taps; ids are never reused, so the hooks of
    // an unregistered pgmap are simply never called again.
    const hooks = this.#mm.k.hooks.devmem;
    const name = pgmapOwner(pgmap);
    hooks.free.for(pgmap.id).tap(name, (page) => pgmap.page_free!(page, pgmap.data));
    hooks.fault.for(pgmap.id).tap(name, (vma, addr, page, flags) => {
      // 4.20: pgmap->page_fault; 5.0: the hmm_devmem that embeds the pgmap (container_of).
      const fault = pgmap.page_fault ?? (pgmap.container as { page_fault?: DevPageFault | null } | null)?.page_fault;
      if (!fault) return this.#mm.nullDeref("device_private_entry_fault");
      return fault(vma, addr, page, flags, null);
    });
  }

  /**
   * device_private_entry_fault(): a CPU access to a device-private entry asks the page's
   * owner, through the pgmap's fault hook, to migrate it back (spec mm-hmm R3.8).
   */
  device_private_entry_fault(vma: unknown, addr: number, page: Page, flags: number): number {
    const id = this.#mm.memmap.section(page).pgmap[page % PAGES_PER_SECTION]!;
    // A fault no tap answered comes to SIGBUS.
    return this.#mm.k.hooks.devmem.fault.get(id)!.call(vma, addr, page, flags) ?? VM_FAULT_SIGBUS;
  }

  unregister(pgmap: DevPagemap): void {
    if (pgmap.id) this.table[pgmap.id] = undefined;
    pgmap.id = 0;
  }

  /** pgmap_array_delete(): erase the range, then wait for RCU readers. */
  #arrayDelete(res: Resource): void {
    this.pgmap_array.store(PHYS_PFN(res.start), PHYS_PFN(res.end), null);
    this.#mm.k.sched.synchronize_rcu();
  }

  /**
   * devm_memremap_pages(): struct pages for pgmap->res, released with the device.
   * Returns the linear-map address of res->start, or a negative errno.
   */
  devm_memremap_pages(dev: Device, pgmap: DevPagemap): number {
    const mm = this.#mm;
    const k = mm.k;
    const v = k.profile.memremap;
    const res = pgmap.res;
    const altmap = pgmap.altmap_valid ? pgmap.altmap : null;

    if (v.requireKill && (!pgmap.ref || !pgmap.kill)) return -EINVAL;

    const align_start = res.start - (res.start % SECTION_SIZE);
    const align_size = ALIGN(res.start + resource_size(res), SECTION_SIZE) - align_start;
    const align_end = align_start + align_size - 1;

    for (const at of [align_start, align_end]) {
      const conflict = this.get_dev_pagemap(PHYS_PFN(at), null);
      if (conflict) {
        k.dev_WARN(dev, MEMREMAP, "Conflicting mapping in same section\n");
        this.put_dev_pagemap(conflict);
        return -ENOMEM;
      }
    }

    const is_ram = mm.iomem.region_intersects(align_start, align_size, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE);
    let error = 0;
    const fail = (err: number): number => {
      // err_array: 5.0 kills the ref on every failure from here on (patch 3/7).
      if (v.killOnError && pgmap.kill && pgmap.ref) pgmap.kill(pgmap.ref);
      this.unregister(pgmap);
      return err;
    };

    if (v.systemRam === "linear-map") {
      if (is_ram === REGION_MIXED) {
        k.warnOnce("devm_memremap_pages:mixed", MEMREMAP, `devm_memremap_pages attempted on mixed region ${formatResource(res, true)}\n`);
        return -ENXIO;
      }
      if (is_ram === REGION_INTERSECTS) return __va(res.start);
      if (!pgmap.ref) return -EINVAL;
    } else if (is_ram !== REGION_DISJOINT) {
      k.warnOnce("devm_memremap_pages:ram", MEMREMAP,
        `devm_memremap_pages attempted on ${is_ram === REGION_MIXED ? "mixed" : "ram"} region ${formatResource(res, true)}\n`);
      return fail(-ENXIO);
    }

    pgmap.dev = dev;
    this.register(pgmap);

    // xa_store_range() allocates xarray nodes: failslab can fail it.
    if (mm.slab.should_failslab(576, GFP_KERNEL)) return fail(-ENOMEM);
    this.pgmap_array.store(PHYS_PFN(res.start), PHYS_PFN(res.end), pgmap);

    const startPfn = PHYS_PFN(align_start);
    const nrPages = PHYS_PFN(align_size);
    const name = `${dev.name} (${MEMORY_TYPE_NAMES[pgmap.type] ?? `type ${pgmap.type}`})`;
    if (v.privateWithoutLinearMap && pgmap.type === MEMORY_DEVICE_PRIVATE) {
      error = add_pages(mm, startPfn, nrPages, name, false, altmap);
    } else {
      error = arch_add_memory(mm, align_start, align_size, name, altmap);
    }
    if (!error) move_pfn_range_to_zone(mm, startPfn, nrPages, altmap);
    if (error) {
      // err_add_memory -> err_pfn_remap: the sections __add_pages() added stay, as in the kernel.
      this.#arrayDelete(res);
      return fail(error);
    }

    memmap_init_zone_device(mm, startPfn, nrPages, pgmap);
    pgmap.ref!.get_many(pfn_end(pgmap) - pfn_first(pgmap));

    const release = () => this.devm_memremap_pages_release(pgmap);
    if (v.releaseRegistration === "devm_add_action") {
      // 4.20 ignores the result: on failure nothing will ever tear this mapping down (R7.4).
      k.base.devm_add_action(dev, release, pgmap, "devm_memremap_pages_release");
    } else {
      error = k.base.devm_add_action_or_reset(dev, release, pgmap, "devm_memremap_pages_release");
      if (error) return error;
    }
    return __va(res.start);
  }

  /** devm_memremap_pages_release(): the devres action that tears a mapping down. */
  devm_memremap_pages_release(pgmap: DevPagemap): void {
    const mm = this.#mm;
    const k = mm.k;
    const v = k.profile.memremap;
    const dev = pgmap.dev!;
    const ref = pgmap.ref!;
    const res = pgmap.res;

    if (v.releaseKillsRef) pgmap.kill!(ref);
    this.#putAllPages(pgmap);

    if (!v.releaseKillsRef && ref.tryget_live()) {
      k.dev_WARN(dev, MEMREMAP_RELEASE, "devm_memremap_pages_release: page mapping is still live!\n");
      ref.put();
    }

    const align_start = res.start - (res.start % SECTION_SIZE);
    const align_size = ALIGN(res.start + resource_size(res), SECTION_SIZE) - align_start;
    remove_pages(mm, PHYS_PFN(align_start), PHYS_PFN(align_size));
    this.#arrayDelete(res);
    if (pgmap.altmap.alloc) {
      k.dev_WARN_ONCE(dev, "devm_memremap_pages_release:altmap", MEMREMAP_RELEASE,
        "devm_memremap_pages_release: failed to free all reserved pages\n");
    }
    this.unregister(pgmap);
  }

  /**
   * for_each_device_pfn(pfn, pgmap) put_page(pfn_to_page(pfn)): pages of sections nobody
   * touched are still at their initial refcount of 1, so each drops one pgmap reference.
   */
  #putAllPages(pgmap: DevPagemap): void {
    const mm = this.#mm;
    const first = pfn_first(pgmap);
    const end = pfn_end(pgmap);
    let untouched = 0;
    for (let pfn = first; pfn < end; ) {
      const secEnd = Math.min(end, (Math.floor(pfn / PAGES_PER_SECTION) + 1) * PAGES_PER_SECTION);
      if (mm.memmap.peek(pfn)) {
        for (let p = pfn; p < secEnd; p++) mm.put_page(p);
      } else {
        rangeAt(mm, pfn).set(mm, pfn, secEnd, { kind: "device", pgmapId: pgmap.id, refcount: 0 });
        untouched += secEnd - pfn;
      }
      pfn = secEnd;
    }
    if (untouched) pgmap.ref!.put_many(untouched);
  }

  /**
   * get_dev_pagemap(): a live reference on the pgmap of `pfn`. A `cached` pgmap that covers the
   * pfn is returned as is; one that does not is put first.
   */
  get_dev_pagemap(pfn: number, cached: DevPagemap | null): DevPagemap | null {
    const phys = PFN_PHYS(pfn);
    if (cached) {
      if (phys >= cached.res.start && phys <= cached.res.end) return cached;
      this.put_dev_pagemap(cached);
    }
    const pgmap = this.pgmap_array.load(pfn);
    if (pgmap && !pgmap.ref!.tryget_live()) return null;
    return pgmap;
  }

  /** put_dev_pagemap() */
  put_dev_pagemap(pgmap: DevPagemap | null): void {
    if (pgmap) pgmap.ref!.put();
  }

  /** dev_pagemap_get_ops(): the first user turns on devmap_managed_key. */
  dev_pagemap_get_ops(): void {
    if (++this.#devmap_enable === 1) this.devmap_managed_key = true;
  }

  /** dev_pagemap_put_ops() */
  dev_pagemap_put_ops(): void {
    if (--this.#devmap_enable === 0) this.devmap_managed_key = false;
  }
}
