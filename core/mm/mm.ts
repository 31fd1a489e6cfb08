// The memory-management subsystem: composes the memmap, the page allocator, kmalloc, the
// iomem tree and ZONE_DEVICE maps, and implements the struct page reference rules
// (get_page/put_page with the 4.20 ZONE_DEVICE behaviour of spec mm-hmm §3).

import { hex } from "../config.ts";
import type { Kernel } from "../kernel.ts";
import { FaultAttr } from "../lib/fault-inject.ts";
import { TAINT_BAD_PAGE } from "../taint.ts";
import {
  buildE820, E820_TYPE_PMEM, KERNEL_IMAGE, E820_TYPE_PRAM, E820_TYPE_RAM, e820TypeName, e820TypeText, formatMemRange, type E820Entry,
} from "./e820.ts";
import { formatGfp, GFP_KERNEL, __GFP_NOWARN } from "./gfp.ts";
import { HZ } from "../clock.ts";
import { Ratelimit } from "../lib/ratelimit.ts";
import { show_mem } from "./show_mem.ts";
import {
  ALIGN, Memmap, MEMMAP_PAGES_PER_SECTION, MemSection, pagePointer, PAGE_SIZE, PAGES_PER_SECTION, PFN_PHYS, STRUCT_PAGE_SIZE, VMEMMAP_START, ZONE_DEVICE, ZONE_POISON, type Page,
} from "./memmap.ts";
import type { HotplugRange } from "./memory_hotplug.ts";
import {
  DevPagemap, Memremap, MEMORY_DEVICE_FS_DAX, MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_PUBLIC,
} from "./memremap.ts";
import { formatPageFlags, PAGE_POISON_PATTERN, PG_active, PG_slab, PG_waiters } from "./page-flags.ts";
import { mergeRanges, PageAllocator, Zone, type PfnRange } from "./page_alloc.ts";
import { PhysMem } from "./physmem.ts";
import {
  IORES_DESC_NONE, IORES_DESC_PERSISTENT_MEMORY, IORES_DESC_PERSISTENT_MEMORY_LEGACY, IORESOURCE_BUSY, IORESOURCE_MEM, IORESOURCE_READONLY,
  IORESOURCE_SYSTEM_RAM, Resource, ResourceTree,
} from "./resource.ts";
import { Slub, type KBuf } from "./slab.ts";
import { VmStat, type MmStruct, type VmArea, type vm_fault_t } from "./mm_types.ts";
import { Shmem } from "./shmem.ts";
import { device_private_entry_to_pfn, type swp_entry_t } from "./swapops.ts";
import { Migration } from "./migrate.ts";


export class MM {
  readonly k: Kernel;
  readonly memmap = new Memmap();
  readonly physmem = new PhysMem();
  readonly e820: E820Entry[];
  readonly iomem: ResourceTree;
  readonly pageAlloc: PageAllocator;
  readonly slab: Slub;
  readonly memremap: Memremap;
  readonly failslab: FaultAttr;
  readonly hotplugRanges: HotplugRange[] = [];
  readonly deviceZone: Zone;
  /** The zero page: a reserved page in the kernel's bss. */
  readonly zeroPfn: number;
  /** Physical ranges covered by the kernel linear map (pfns). */
  #linearMap: PfnRange[] = [];
  /** CONFIG_DEBUG_VM */
  readonly debugVm: boolean;
  /** Node page counters of mapped and cached pages (AnonPages, Mapped, Shmem of meminfo). */
  readonly vmstat = new VmStat();
  /** Every mm_struct not yet freed (mm_alloc .. the last mmdrop). */
  readonly mms = new Set<MmStruct>();
  /** tmpfs: inode numbers and live inodes. */
  readonly shmem = new Shmem();
  /** migrate_vma() */
  readonly migration: Migration;
  #badPageShown = 0;
  #badPageUnshown = 0;
  #badPageResume = 0;
  /** nopage_rs: warn_alloc() reports at most 10 per 5 s. */
  readonly #nopageRs = new Ratelimit();
  /** Stable kernel addresses for emulated objects that %px prints (mappings, anon_vmas). */
  readonly #kptrs = new WeakMap<object, bigint>();
  #nextKptr = 0xffff888100000000n;

  constructor(k: Kernel) {
    this.k = k;
    this.debugVm = k.config.debugVm;
    this.e820 = buildE820(k.config);
    this.memmap.onBadPfn = (pfn) => this.#badPfn(pfn);
    this.failslab = new FaultAttr("failslab", k.random, (attr) => k.faultReport(attr));
    this.iomem = new ResourceTree(new Resource(0, 2 ** k.config.physBits - 1, "PCI mem", IORESOURCE_MEM), {
      printk: (t) => k.printk(t),
      warnOn: (func) => void k.warn({ file: "kernel/resource.c", func }, null),
    });

    const memory: PfnRange[] = this.e820
      .filter((e) => e.type === E820_TYPE_RAM)
      .map((e) => ({ start: Math.ceil(e.addr / PAGE_SIZE), end: Math.floor((e.addr + e.size) / PAGE_SIZE) }))
      // e820: update [mem 0x00000000-0x00000fff] usable ==> reserved
      .map((r) => ({ start: Math.max(r.start, 1), end: r.end }))
      .filter((r) => r.end > r.start);
    const mem = mergeRanges(memory);
    const presentSections = new Set<number>();
    for (const r of mem) for (let s = Math.floor(r.start / PAGES_PER_SECTION); s * PAGES_PER_SECTION < r.end; s++) presentSections.add(s);
    const reserved: PfnRange[] = [
      { start: KERNEL_IMAGE.code.start / PAGE_SIZE, end: (KERNEL_IMAGE.bss.end + 1) / PAGE_SIZE },
      ...this.#memmapReservation(mem, presentSections.size * MEMMAP_PAGES_PER_SECTION),
    ];
    this.pageAlloc = new PageAllocator(this.memmap, { memory, reserved }, {
      badPage: (page, reason, flags) => this.bad_page(page, reason, flags),
      allocFailure: (gfp, order) => this.#warnAlloc(gfp, order),
      orderTooBig: (gfp) => {
        if (!(gfp & __GFP_NOWARN)) k.warnOnce("__alloc_pages_nodemask:order", { file: "mm/page_alloc.c", func: "__alloc_pages_nodemask" }, null);
      },
      clearPage: (page, nr) => this.physmem.clear(page, nr),
    });
    this.deviceZone = this.pageAlloc.zones[ZONE_DEVICE]!;
    for (const range of this.pageAlloc.memmapRanges()) this.memmap.addRange(range);
    for (const r of mem) this.linearMapAdd(r.start, r.end);
    this.zeroPfn = Math.floor(KERNEL_IMAGE.bss.start / PAGE_SIZE);
    this.slab = new Slub({
      alloc_pages: (gfp, order) => this.pageAlloc.alloc_pages(gfp, order),
      free_pages: (page, order) => this.__free_pages(page, order),
      setSlab: (page, on) => {
        const sec = this.memmap.section(page);
        const i = page - sec.startPfn;
        sec.flags[i] = on ? sec.flags[i]! | (1 << PG_slab) : sec.flags[i]! & ~(1 << PG_slab);
      },
      zero: (phys, len) => this.physmem.zero(phys, len),
      failslab: this.failslab,
      badFree: (buf, why) => this.#badFree(buf, why),
    });
    this.memremap = new Memremap(this);
    this.migration = new Migration(this);
  }

  /** memblock allocates each section's vmemmap block top-down from the highest RAM. */
  #memmapReservation(mem: PfnRange[], pages: number): PfnRange[] {
    const out: PfnRange[] = [];
    let need = pages;
    const kernelEnd = (KERNEL_IMAGE.bss.end + 1) / PAGE_SIZE;
    for (let i = mem.length - 1; i >= 0 && need > 0; i--) {
      const r = mem[i]!;
      const lo = Math.max(r.start, kernelEnd);
      const top = Math.floor(r.end / 512) * 512;
      const take = Math.min(need, Math.max(0, top - lo));
      if (take <= 0) continue;
      out.push({ start: top - take, end: top });
      need -= take;
    }
    return out;
  }

  /** The boot-time part of mm_init: e820 lines, resources, zones, and the buddy allocator. */
  boot(): void {
    const k = this.k;
    k.printk("\x016BIOS-provided physical RAM map:\n");
    for (const e of this.e820) k.printk(`\x016BIOS-e820: ${formatMemRange(e.addr, e.addr + e.size - 1)} ${e820TypeText(e.type)}\n`);
    k.printk("\x017e820: update [mem 0x00000000-0x00000fff] usable ==> reserved\n");
    k.printk("\x017e820: remove [mem 0x000a0000-0x000fffff] usable\n");
    const pa = this.pageAlloc;
    k.printk(`\x016last_pfn = ${hex(pa.max_pfn)} max_arch_pfn = 0x400000000\n`);
    this.#reserveResources();
    k.printk("\x016Zone ranges:\n");
    for (const zone of pa.zones) {
      if (zone.idx === 3) continue; // ZONE_MOVABLE is not listed here
      const span = zone.zone_end_pfn > zone.zone_start_pfn ? formatMemRange(PFN_PHYS(zone.zone_start_pfn), PFN_PHYS(zone.zone_end_pfn) - 1) : "empty";
      k.printk(`\x016  ${zone.name.padEnd(8)} ${span}\n`);
    }
    k.printk("\x016Movable zone start for each node\n");
    k.printk("\x016Early memory node ranges\n");
    for (const r of pa.memblock.memory) k.printk(`\x016  node   0: ${formatMemRange(PFN_PHYS(r.start), PFN_PHYS(r.end) - 1)}\n`);
    const mem = pa.memblock.memory;
    k.printk(`\x016Initmem setup node 0 ${formatMemRange(PFN_PHYS(mem[0]!.start), PFN_PHYS(mem[mem.length - 1]!.end) - 1)}\n`);
    pa.freeBootMemory();
    k.printk(`\x016Built 1 zonelists, mobility grouping on.  Total pages: ${pa.totalram_pages}\n`);
    const physpages = mem.reduce((n, r) => n + r.end - r.start, 0);
    const img = KERNEL_IMAGE;
    const codeKb = Math.round((img.code.end - img.code.start + 1) / 1024);
    const dataKb = Math.round((img.data.end - img.data.start + 1) / 1024) - img.rodataKb - img.initKb;
    const bssKb = Math.round((img.bss.end - img.bss.start + 1) / 1024);
    k.printk(
      `\x016Memory: ${pa.nr_free_pages() * 4}K/${physpages * 4}K available (${codeKb}K kernel code, ${dataKb}K rwdata, ` +
        `${img.rodataKb}K rodata, ${img.initKb}K init, ${bssKb}K bss, ${(physpages - pa.totalram_pages) * 4}K reserved, 0K cma-reserved)\n`,
    );
  }

  /** e820__reserve_resources() + the kernel image resources + e820__reserve_resources_late(). */
  #reserveResources(): void {
    // probe_roms() claims the BIOS ROM first; the e820 entry inserted over it becomes its parent.
    const rom = new Resource(0xf0000, 0xfffff, "System ROM", (IORESOURCE_MEM | IORESOURCE_READONLY | IORESOURCE_BUSY) >>> 0);
    this.iomem.request_resource(this.iomem.root, rom);
    const late: Resource[] = [];
    for (const e of this.e820) {
      const name = e820TypeName(e.type);
      const desc = e.type === E820_TYPE_PMEM ? IORES_DESC_PERSISTENT_MEMORY : e.type === E820_TYPE_PRAM ? IORES_DESC_PERSISTENT_MEMORY_LEGACY : IORES_DESC_NONE;
      const flags = e.type === E820_TYPE_RAM ? IORESOURCE_SYSTEM_RAM : IORESOURCE_MEM;
      const res = Resource.mem(e.addr, e.size, name, flags, desc);
      // do_mark_busy(): below 1 MiB everything is busy; pmem and reserved ranges are not.
      const busy = e.addr < 1 << 20 || e.type === E820_TYPE_RAM;
      if (busy) {
        res.flags = (res.flags | IORESOURCE_BUSY) >>> 0;
        this.iomem.insert_resource(this.iomem.root, res);
      } else {
        late.push(res);
      }
    }
    // The first page became reserved (e820: update ... usable ==> reserved).
    const first = this.iomem.root.child;
    if (first && first.start === 0 && first.name === "System RAM") {
      first.start = PAGE_SIZE;
      const page0 = new Resource(0, PAGE_SIZE - 1, "Reserved", (IORESOURCE_MEM | IORESOURCE_BUSY) >>> 0);
      this.iomem.insert_resource(this.iomem.root, page0);
    }
    for (const [name, r] of [["Kernel code", KERNEL_IMAGE.code], ["Kernel data", KERNEL_IMAGE.data], ["Kernel bss", KERNEL_IMAGE.bss]] as const) {
      this.iomem.insert_resource(this.iomem.root, new Resource(r.start, r.end, name, (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY) >>> 0));
    }
    for (const res of late) this.iomem.insert_resource_expand_to_fit(this.iomem.root, res);
    // Bump RAM ranges up to reasonable boundaries so nothing else lands in stolen RAM.
    for (const e of this.e820) {
      if (e.type !== E820_TYPE_RAM) continue;
      const start = e.addr + e.size;
      const align = start < 1 << 20 ? 64 << 10 : start < 16 << 20 ? 1 << 20 : 64 << 20;
      const end = ALIGN(start, align) - 1;
      if (start >= end) continue;
      this.k.printk(`\x017e820: reserve RAM buffer [mem 0x${start.toString(16).padStart(8, "0")}-0x${end.toString(16).padStart(8, "0")}]\n`);
      this.iomem.reserve_region_with_split(this.iomem.root, start, end, "RAM buffer");
    }
  }

  // ---- the kernel linear map -------------------------------------------------------------

  linearMapAdd(startPfn: number, endPfn: number): void {
    this.#linearMap = mergeRanges([...this.#linearMap, { start: startPfn, end: endPfn }]);
  }
  linearMapRemove(startPfn: number, endPfn: number): void {
    const out: PfnRange[] = [];
    for (const r of this.#linearMap) {
      if (r.end <= startPfn || r.start >= endPfn) out.push(r);
      else {
        if (r.start < startPfn) out.push({ start: r.start, end: startPfn });
        if (r.end > endPfn) out.push({ start: endPfn, end: r.end });
      }
    }
    this.#linearMap = out;
  }
  /** DirectMap4k/2M/1G of /proc/meminfo: the linear map split into the largest aligned pages. */
  directMapSizes(): { k4: number; m2: number; g1: number } {
    const out = { k4: 0, m2: 0, g1: 0 };
    const M2 = 512;
    const G1 = 512 * 512;
    for (const r of this.#linearMap) {
      let pfn = r.start;
      while (pfn < r.end) {
        if (pfn % G1 === 0 && pfn + G1 <= r.end) {
          out.g1 += 1 << 20;
          pfn += G1;
        } else if (pfn % M2 === 0 && pfn + M2 <= r.end) {
          out.m2 += 2048;
          pfn += M2;
        } else {
          const next = Math.min(r.end, ALIGN(pfn + 1, M2));
          out.k4 += (next - pfn) * 4;
          pfn = next;
        }
      }
    }
    return out;
  }

  /** Does the kernel linear map cover this pfn (could __va(PFN_PHYS(pfn)) be dereferenced)? */
  linearMapped(pfn: number): boolean {
    return this.#linearMap.some((r) => pfn >= r.start && pfn < r.end);
  }

  // ---- struct page references ------------------------------------------------------------

  /** page_ref_count() */
  page_ref_count(page: Page): number {
    const sec = this.memmap.section(page);
    return sec.refcount[page - sec.startPfn]!;
  }

  /** page_zonenum() */
  page_zonenum(page: Page): number {
    const sec = this.memmap.section(page);
    return sec.zone[page - sec.startPfn]!;
  }

  is_zone_device_page(page: Page): boolean {
    return this.page_zonenum(page) === ZONE_DEVICE;
  }

  /** page->pgmap of a ZONE_DEVICE page. */
  page_pgmap(page: Page): DevPagemap | null {
    const sec = this.memmap.section(page);
    const i = page - sec.startPfn;
    if (sec.zone[i] !== ZONE_DEVICE) return null;
    return this.memremap.pgmapOf(sec.pgmap[i]!) ?? null;
  }

  is_device_private_page(page: Page): boolean {
    return this.page_pgmap(page)?.type === MEMORY_DEVICE_PRIVATE;
  }
  is_device_public_page(page: Page): boolean {
    return this.page_pgmap(page)?.type === MEMORY_DEVICE_PUBLIC;
  }

  /** get_page(): VM_BUG_ON_PAGE(page_ref_count(page) <= 0) under DEBUG_VM, then one more. */
  get_page(page: Page): void {
    const sec = this.memmap.section(page);
    this.get_page_at(sec, page - sec.startPfn);
  }

  /** get_page() of page `i` of `sec`, for callers that looked the section up already. */
  get_page_at(sec: MemSection, i: number): void {
    if (this.debugVm && sec.refcount[i]! <= 0) this.#vmBugOnPage(sec.startPfn + i, "page_ref_count(page) <= 0");
    sec.refcount[i]!++;
  }

  /** put_page(): devmap-managed pages first (4.20 put_devmap_managed_page), then the usual path. */
  put_page(page: Page): void {
    const sec = this.memmap.section(page);
    this.put_page_at(sec, page - sec.startPfn);
  }

  /** put_page() of page `i` of `sec`, for callers that looked the section up already. */
  put_page_at(sec: MemSection, i: number): void {
    if (this.memremap.devmap_managed_key && sec.zone[i] === ZONE_DEVICE) {
      const type = this.memremap.pgmapOf(sec.pgmap[i]!)?.type;
      if (type === MEMORY_DEVICE_PRIVATE || type === MEMORY_DEVICE_PUBLIC || type === MEMORY_DEVICE_FS_DAX) {
        this.#put_devmap_managed_page(sec, i);
        return;
      }
    }
    if (this.debugVm && sec.refcount[i] === 0) this.#vmBugOnPage(sec.startPfn + i, "page_ref_count(page) == 0");
    if (--sec.refcount[i]! === 0) this.#put_page(sec, i);
  }

  /** __put_devmap_managed_page(): at 1 the page is idle and goes back to its driver. */
  __put_devmap_managed_page(page: Page): void {
    const sec = this.memmap.section(page);
    this.#put_devmap_managed_page(sec, page - sec.startPfn);
  }

  #put_devmap_managed_page(sec: MemSection, i: number): void {
    const count = --sec.refcount[i]!;
    if (count === 1) {
      // ->mapping is left alone: HMM's page_free clears it (2fa147bdbf67, 4.19).
      sec.flags[i] = sec.flags[i]! & ~((1 << PG_active) | (1 << PG_waiters));
      const pgmap = this.memremap.pgmapOf(sec.pgmap[i]!)!;
      if (!pgmap.page_free) this.nullDeref("__put_devmap_managed_page");
      this.k.hooks.devmem.free.get(pgmap.id)!.call(sec.startPfn + i);
    } else if (count === 0) {
      this.#put_page(sec, i);
    }
  }

  /** __put_page(): a ZONE_DEVICE page only drops its pgmap reference; RAM goes back to buddy. */
  __put_page(page: Page): void {
    const sec = this.memmap.section(page);
    this.#put_page(sec, page - sec.startPfn);
  }

  #put_page(sec: MemSection, i: number): void {
    if (sec.zone[i] === ZONE_DEVICE) {
      this.memremap.put_dev_pagemap(this.memremap.pgmapOf(sec.pgmap[i]!) ?? null);
      return;
    }
    this.pageAlloc.free_one_page(sec.startPfn + i, 0, sec);
  }

  /** alloc_pages(): the head page, or -1. */
  alloc_pages(gfp: number, order: number): Page {
    return this.pageAlloc.alloc_pages(gfp, order);
  }

  /** __free_pages(): drop the allocation's reference; free the block when it was the last. */
  __free_pages(page: Page, order: number): void {
    const sec = this.memmap.section(page);
    const i = page - sec.startPfn;
    if (this.debugVm && sec.refcount[i] === 0) this.#vmBugOnPage(page, "page_ref_count(page) == 0");
    if (--sec.refcount[i]! === 0) this.pageAlloc.free_one_page(page, order);
  }

  kmalloc(size: number, gfp: number = GFP_KERNEL, owner?: string): KBuf | null {
    return this.slab.kmalloc(size, gfp, owner);
  }
  kzalloc(size: number, gfp: number = GFP_KERNEL, owner?: string): KBuf | null {
    return this.slab.kzalloc(size, gfp, owner);
  }
  kfree(buf: KBuf | null): void {
    this.slab.kfree(buf);
  }

  // ---- reports ---------------------------------------------------------------------------

  /** dump_page(): what the kernel prints about a struct page. */
  dump_page(page: Page, reason: string | null): void {
    const k = this.k;
    const sec = this.memmap.peek(page) ?? (this.memmap.pfn_valid(page) ? this.memmap.section(page) : undefined);
    if (!sec) {
      k.printk(`\x010page:${pagePointer(page)} is uninitialized and poisoned\n`);
    } else {
      const i = page - sec.startPfn;
      const flags = sec.flags[i]!;
      if (flags === PAGE_POISON_PATTERN && sec.zone[i] === ZONE_POISON) {
        k.printk(`\x010page:${pagePointer(page)} is uninitialized and poisoned\n`);
      } else {
        const mapcount = flags & (1 << PG_slab) ? 0 : sec.mapcount[i]! + 1;
        const mapping = this.kptr(sec.hasMapping() ? sec.mapping[i] : null);
        const index = sec.hasIndex() ? sec.index[i]! : 0;
        k.printk(`\x010page:${pagePointer(page)} count:${sec.refcount[i]} mapcount:${mapcount} mapping:${mapping} index:0x${index.toString(16)}\n`);
        k.printk(`\x010flags: 0x${pageFlagsWord(sec.zone[i]!, flags).toString(16)}(${formatPageFlags(flags)})\n`);
      }
      const words = rawWords(sec, page - sec.startPfn, (o) => this.kptr(o));
      k.printk(`\x011raw: ${words.slice(0, 4).join(" ")}\n`);
      k.printk(`\x011raw: ${words.slice(4).join(" ")}\n`);
    }
    if (reason) k.printk(`\x011page dumped because: ${reason}\n`);
  }

  /** %p of an emulated kernel object: its kptr() hashed, or "(null)" in the pointer's width. */
  ptrP(o: unknown): string {
    if (o === null || o === undefined) return "(null)".padStart(16);
    return this.k.hashPointer(BigInt("0x" + this.kptr(o)));
  }

  /** %px of an emulated kernel object: a stable linear-map address, or zeros for null. */
  kptr(o: unknown): string {
    if (typeof o !== "object" || o === null) return "0000000000000000";
    let a = this.#kptrs.get(o);
    if (a === undefined) {
      a = this.#nextKptr;
      this.#nextKptr += 0x100n;
      this.#kptrs.set(o, a);
    }
    return a.toString(16);
  }

  /** bad_page(): report, leave the page out of circulation, taint B (60 reports a minute). */
  bad_page(page: Page, reason: string, badFlags: number): void {
    const k = this.k;
    const now = k.clock.jiffies;
    const sec = this.memmap.section(page);
    const i = page - sec.startPfn;
    // A burst of 60 reports, then quiet for the rest of that minute.
    if (this.#badPageShown === 60 && now < this.#badPageResume) {
      this.#badPageUnshown++;
    } else {
      if (this.#badPageShown === 60) {
        if (this.#badPageUnshown) {
          k.printk(`\x011BUG: Bad page state: ${this.#badPageUnshown} messages suppressed\n`);
          this.#badPageUnshown = 0;
        }
        this.#badPageShown = 0;
      }
      if (this.#badPageShown++ === 0) this.#badPageResume = now + 60 * HZ;
      k.printk(`\x011BUG: Bad page state in process ${k.sched.current.comm}  pfn:${page.toString(16).padStart(5, "0")}\n`);
      this.dump_page(page, reason);
      const bad = badFlags & sec.flags[i]!;
      if (bad) k.printk(`\x011bad because of flags: 0x${bad.toString(16)}(${formatPageFlags(bad)})\n`);
      k.printk(`\x014Modules linked in:${k.modulesLinkedIn()}\n`);
      k.bugs.dumpStack(4);
    }
    // out: bad fields are left for debugging, except that PageBuddy could make trouble.
    sec.mapcount[i] = -1; // page_mapcount_reset()
    k.taint.add(TAINT_BAD_PAGE, "LOCKDEP_NOW_UNRELIABLE");
  }

  /** VM_BUG_ON_PAGE(): dump the page, then BUG(). */
  #vmBugOnPage(page: Page, cond: string): never {
    this.dump_page(page, `VM_BUG_ON_PAGE(${cond})`);
    return this.k.bugs.bug({ file: "include/linux/mm.h", func: cond.includes("<=") ? "get_page" : "put_page" });
  }

  /** A pfn with no struct page: the vmemmap access faults. */
  #badPfn(pfn: number): never {
    const addr = Number.isInteger(pfn) && pfn >= 0 ? pagePointer(pfn) : "ffffea0000000000";
    return this.k.bugs.oops(
      [`BUG: unable to handle kernel paging request at ${addr}`, "#PF error: [normal kernel read fault]"],
      "Oops: 0000",
      { file: "mm", func: "pfn_to_page" },
    );
  }

  /**
   * device_private_entry_fault(): do_swap_page() found a device-private entry (spec mm-hmm
   * R3.8); the page's pgmap fault hook asks its owner to migrate it back.
   */
  devicePrivateFault(vma: VmArea, addr: number, entry: swp_entry_t, flags: number): vm_fault_t {
    return this.memremap.device_private_entry_fault(vma, addr, device_private_entry_to_pfn(entry), flags);
  }

  /** hmm_mm_destroy(): __mmdrop() frees HMM's per-mm state (mm->hmm). */
  hmm_mm_destroy(mm: MmStruct): void {
    this.k.hmm.mirror.hmm_mm_destroy(mm);
  }

  /** A NULL function pointer called from `func`: the oops the kernel would print. */
  nullDeref(func: string): never {
    return this.k.bugs.oops(
      ["BUG: unable to handle kernel NULL pointer dereference at 0000000000000000", "#PF error: [INSTR]"],
      "Oops: 0000",
      { file: "mm", func },
    );
  }

  /**
   * A bad kfree() on a slab object, reported as SLUB's sanity checks (slub_debug=F) do:
   * object_err() then slab_fix(); the object is not freed again.
   */
  #badFree(buf: KBuf, why: string): void {
    const k = this.k;
    const cache = buf.cache!;
    const slab = cache.slabs.get(buf.page);
    const sec = this.memmap.section(buf.page);
    const flags = pageFlagsWord(sec.zone[buf.page - sec.startPfn]!, sec.flags[buf.page - sec.startPfn]!);
    const va = (phys: number) => k.profile.pageOffset + BigInt(phys);
    const objPtr = k.hashPointer(va(buf.phys));
    const freelist = slab && slab.free.length ? k.hashPointer(va(buf.page * PAGE_SIZE + slab.free[slab.free.length - 1]! * cache.object_size)) : "0000000000000000";
    k.printk("\x013=============================================================================\n");
    k.printk(`\x013BUG ${cache.name} (${k.taint}): ${why}\n`);
    k.printk("\x013-----------------------------------------------------------------------------\n\n");
    k.taint.add(TAINT_BAD_PAGE, "LOCKDEP_NOW_UNRELIABLE");
    k.printk(`\x013INFO: Slab 0x${k.hashPointer(VMEMMAP_START + BigInt(buf.page) * BigInt(STRUCT_PAGE_SIZE))} objects=${cache.objects} used=${slab?.inuse ?? 0} fp=0x${freelist} flags=0x${flags.toString(16).padStart(4, "0")}\n`);
    k.printk(`\x013INFO: Object 0x${objPtr} @offset=${buf.offset} fp=0x${freelist}\n\n`);
    k.bugs.dumpStack(4, ["free_debug_processing", "kfree"]);
    k.printk(`\x013FIX ${cache.name}: Object at 0x${objPtr} not freed\n`);
  }

  /** warn_alloc(): "page allocation failure" unless __GFP_NOWARN, at most 10 per 5 s. */
  #warnAlloc(gfp: number, order: number): void {
    const k = this.k;
    if (gfp & __GFP_NOWARN || !this.#nopageRs.allow(k.clock.jiffies, "warn_alloc", (t) => k.printk(t))) return;
    const comm = k.sched.current.comm;
    k.printk(`\x014${comm}: page allocation failure: order:${order}, mode:0x${(gfp >>> 0).toString(16)}(${formatGfp(gfp)}), nodemask=(null)\n`);
    k.printk(`\x016${comm} cpuset=/ mems_allowed=0\n`);
    k.bugs.dumpStack(4, ["warn_alloc"]);
    show_mem(this);
  }
}

/** page->flags as the kernel stores it: zone in bits 51..53 (NODES_SHIFT 10, node 0). */
function pageFlagsWord(zone: number, flags: number): bigint {
  if (flags === PAGE_POISON_PATTERN) return 0xffffffffffffffffn;
  return (BigInt(zone) << 51n) | BigInt(flags >>> 0);
}

/** The eight words of struct page that dump_page prints as "raw:". */
function rawWords(sec: MemSection, i: number, kptr: (o: unknown) => string): string[] {
  const h = (n: bigint) => n.toString(16).padStart(16, "0");
  const u32 = (n: number) => BigInt(n >>> 0);
  const flags = pageFlagsWord(sec.zone[i]!, sec.flags[i]!);
  const priv = sec.hasPrivate() ? BigInt(Math.trunc(sec.private[i]!)) : 0n;
  const counts = (u32(sec.refcount[i]!) << 32n) | u32(sec.mapcount[i]!);
  const lru = sec.zone[i] === ZONE_DEVICE && sec.pgmap[i] ? BigInt(sec.pgmap[i]!) : 0n;
  const mapping = kptr(sec.hasMapping() ? sec.mapping[i] : null);
  const index = sec.hasIndex() ? BigInt(Math.trunc(sec.index[i]!)) : 0n;
  return [h(flags), h(lru), h(0n), mapping, h(index), h(priv), h(counts), h(0n)];
}

