// A small host-side "GPU driver" for the HMM suites, shaped like nouveau's dmem/svm code of
// 5.1 on the 4.20/5.0 API:
// - device memory from hmm_devmem_add(); idle device pages sit at refcount 1 on the driver's
//   free list, and taking one is get_page() + lock_page() (spec mm-hmm R3.1); ops->free
//   puts a page back on the list;
// - migrateToDevice(): migrate_vma() whose alloc_and_copy() gives each collected system page
//   (and, unless told not to, each hole) a device page, dst = migrate_pfn(dpage) | LOCKED |
//   DEVICE, its contents copied into the device page's "VRAM" (kept in physmem by pfn);
// - ops->fault: migrate_vma() of the faulting page back to system memory, with
//   hmm_vma_alloc_locked_page() and the copy back, or MIGRATE_PFN_ERROR when no page can be
//   had (VM_FAULT_SIGBUS);
// - mirrors whose sync_cpu_device_pagetables() records each update.

import { expect } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import type { Process } from "../../core/kernel/process.ts";
import type { HmmDevice, HmmDevmem } from "../../core/mm/hmm-devmem.ts";
import { HmmMirror, HmmRange, type HmmUpdate } from "../../core/mm/hmm-mirror.ts";
import { VM_FAULT_SIGBUS } from "../../core/mm/memory.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import type { Page } from "../../core/mm/memmap.ts";
import {
  lock_page, migrate_pfn, migrate_pfn_flags, migrate_pfn_to_page, MIGRATE_PFN_DEVICE, MIGRATE_PFN_ERROR, MIGRATE_PFN_LOCKED, MIGRATE_PFN_MIGRATE,
  type MigrateVmaOps,
} from "../../core/mm/migrate.ts";
import type { VmArea } from "../../core/mm/mm_types.ts";
import { boot } from "./kernel.ts";
import { hex, PAGE } from "./process.ts";

/** What one migrate_vma() of the driver did: its result, src[] after it, dst[], and src[] as
 *  finalize_and_map() saw it (null when migrate_vma() returned before the callbacks). */
export interface Migration {
  readonly ret: number;
  readonly src: Float64Array;
  readonly dst: Float64Array;
  readonly finalized: Float64Array | null;
}

export interface GpuOptions {
  /** Bytes of device memory (hmm_devmem_add() rounds up to a 128 MiB section). */
  size?: number;
}

export class Gpu {
  readonly k: Kernel;
  readonly hdev: HmmDevice;
  readonly devmem: HmmDevmem;
  /** Every page ops->free handed back, in order. */
  readonly freed: Page[] = [];
  /** Every CPU fault ops->fault served: address, page, flags and what it returned. */
  readonly faults: { addr: number; page: Page; flags: number; ret: number }[] = [];
  /** Device pages handed out and not yet back. */
  readonly inUse = new Set<Page>();
  /** Fail hmm_vma_alloc_locked_page() in the fault path (no system memory). */
  failSystemAlloc = false;
  /** Give holes (and zero-page ptes) a fresh device page in migrateToDevice(). */
  fillHoles = true;
  /** Free device pages (refcount 1), reused last-freed first; `#next` is the first never used. */
  readonly #recycled: Page[] = [];
  #next: Page;
  #finalized: Float64Array | null = null;
  readonly #faultSrc = new Float64Array(1);
  readonly #faultDst = new Float64Array(1);

  constructor(k: Kernel, opts: GpuOptions = {}) {
    this.k = k;
    const hdev = k.hmm.hmm_device_new(this);
    if (typeof hdev === "number") throw new Error(`hmm_device_new: ${hdev}`);
    this.hdev = hdev;
    const dm = k.hmm.hmm_devmem_add(
      { free: (devmem, page) => this.#free(devmem, page), fault: (devmem, vma, addr, page, flags) => this.#fault(devmem, vma as VmArea, addr, page, flags) },
      hdev.device,
      opts.size ?? 128 << 20,
    );
    if (typeof dm === "number") throw new Error(`hmm_devmem_add: ${dm}`);
    this.devmem = dm;
    this.#next = dm.pfn_first;
  }

  /** Take a free device page: get_page() (1 -> 2) and lock_page(); -1 when there is none. */
  allocDevicePage(): Page {
    const page = this.#recycled.pop() ?? (this.#next < this.devmem.pfn_last ? this.#next++ : -1);
    if (page < 0) return -1;
    this.k.mm.get_page(page);
    lock_page(this.k.mm, page);
    this.inUse.add(page);
    return page;
  }

  /** ops->free: the page is idle again (refcount 1) and ours. */
  #free(_devmem: HmmDevmem, page: Page): void {
    this.freed.push(page);
    this.inUse.delete(page);
    this.k.mm.physmem.clear(page);
    this.#recycled.push(page);
  }

  /** migrate_vma() of `npages` pages at `addr` of `p` to device memory. */
  migrateToDevice(p: Process, addr: number, npages: number, vma: VmArea | null = p.mm!.find_vma(addr)): Migration {
    return this.#migrate(this.#toDevice, vma, addr, npages);
  }

  /** migrate_vma() of `npages` pages at `addr` of `p` back to system memory (as the fault
   *  path does for one page). */
  migrateToSystem(p: Process, addr: number, npages: number, vma: VmArea | null = p.mm!.find_vma(addr)): Migration {
    return this.#migrate(this.#toSystem, vma, addr, npages);
  }

  #migrate(ops: MigrateVmaOps, vma: VmArea | null, addr: number, npages: number): Migration {
    const src = new Float64Array(npages);
    const dst = new Float64Array(npages);
    this.#finalized = null;
    const ret = this.k.mm.migration.migrate_vma(ops, vma, addr, addr + npages * PAGE, src, dst, this);
    return { ret, src, dst, finalized: this.#finalized };
  }

  readonly #toDevice: MigrateVmaOps = {
    alloc_and_copy: (_vma, src, dst, start, end) => {
      const physmem = this.k.mm.physmem;
      for (let i = 0, n = (end - start) / PAGE; i < n; i++) {
        const flags = migrate_pfn_flags(src[i]!);
        if (!(flags & MIGRATE_PFN_MIGRATE) || flags & MIGRATE_PFN_DEVICE) continue;
        const spage = migrate_pfn_to_page(src[i]!);
        if (spage < 0 && !this.fillHoles) continue;
        const dpage = this.allocDevicePage();
        if (dpage < 0) continue;
        if (spage >= 0) physmem.copyPage(dpage, spage);
        else physmem.clear(dpage);
        dst[i] = migrate_pfn(dpage) + MIGRATE_PFN_LOCKED + MIGRATE_PFN_DEVICE;
      }
    },
    finalize_and_map: (_vma, src) => {
      this.#finalized = Float64Array.from(src);
    },
  };

  readonly #toSystem: MigrateVmaOps = {
    // nouveau_dmem_fault_alloc_and_copy()
    alloc_and_copy: (vma, src, dst, start, end) => {
      const k = this.k;
      for (let i = 0, n = (end - start) / PAGE; i < n; i++) {
        const spage = migrate_pfn_to_page(src[i]!);
        if (spage < 0 || !(migrate_pfn_flags(src[i]!) & MIGRATE_PFN_MIGRATE)) continue;
        const dpage = this.failSystemAlloc ? -1 : k.hmm.hmm_vma_alloc_locked_page(vma, start + i * PAGE);
        if (dpage < 0) {
          dst[i] = MIGRATE_PFN_ERROR;
          continue;
        }
        k.mm.physmem.copyPage(dpage, spage);
        dst[i] = migrate_pfn(dpage) + MIGRATE_PFN_LOCKED;
      }
    },
    finalize_and_map: (_vma, src) => {
      this.#finalized = Float64Array.from(src);
    },
  };

  /** ops->fault (nouveau_dmem_fault()): migrate the faulting page back to system memory. */
  #fault(_devmem: HmmDevmem, vma: VmArea, addr: number, page: Page, flags: number): number {
    const src = this.#faultSrc;
    const dst = this.#faultDst;
    dst[0] = 0;
    const r = this.k.mm.migration.migrate_vma(this.#toSystem, vma, addr, addr + PAGE, src, dst, this);
    const ret = r || dst[0] === MIGRATE_PFN_ERROR ? VM_FAULT_SIGBUS : 0;
    this.faults.push({ addr, page, flags, ret });
    return ret;
  }

  /** The device's "VRAM" contents of `page`. */
  vram(page: Page, offset = 0, n = PAGE): Uint8Array {
    return this.k.mm.physmem.readPage(page).slice(offset, offset + n);
  }

  /** hmm_device_put(): the device's devres (the device memory with it) goes. */
  remove(): void {
    this.k.hmm.hmm_device_put(this.hdev);
  }
}

/** A mirror whose sync_cpu_device_pagetables() records "start-end" (relative to `base` when
 *  given), and whose release() is counted; `unregisterOnRelease` unregisters it from there. */
export class RecordingMirror extends HmmMirror {
  readonly updates: HmmUpdate[] = [];
  releases = 0;
  unregisterOnRelease = false;
  /** `log` (shared by several mirrors) gets `name` at each call, to see their order. */
  constructor(k: Kernel, name = "", log: string[] | null = null) {
    super({
      sync_cpu_device_pagetables: (_m, update) => {
        this.updates.push({ ...update });
        log?.push(name);
        return 0;
      },
      release: (m) => {
        this.releases++;
        if (this.unregisterOnRelease) k.hmm.mirror.hmm_mirror_unregister(m);
      },
    });
  }
  /** The updates as "0x1000-0x3000" strings, taking them. */
  take(): string[] {
    return this.updates.splice(0).map((u) => {
      expect([u.event, u.blockable], "HMM_UPDATE_INVALIDATE, blockable").toEqual([0, true]);
      return `${hex(u.start)}-${hex(u.end)}`;
    });
  }
}

/** Register a recording mirror on `p`'s mm (it must succeed). */
export function mirrorOf(k: Kernel, p: Process, name = "", log: string[] | null = null): RecordingMirror {
  const m = new RecordingMirror(k, name, log);
  expect(k.hmm.mirror.hmm_mirror_register(m, p.mm!)).toBe(0);
  return m;
}

/** A kernel of `version` with a Gpu, and an "app" process with `npages` private anonymous
 *  read-write pages mapped at `a`; page i is written with `[data[i]]` where that is given. */
export async function gpuApp(
  version: "4.20" | "5.0",
  npages: number,
  data: readonly (number | undefined)[] = [],
): Promise<{ k: Kernel; gpu: Gpu; p: Process; a: number }> {
  const k = await boot({ version });
  const gpu = new Gpu(k);
  const p = k.spawn("app");
  const a = p.mmap(0, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  data.forEach((v, i) => {
    if (v !== undefined) p.write(a + i * PAGE, [v]);
  });
  return { k, gpu, p, a };
}

/** The end of a test: unregister `mirrors`, exit `procs`, in order; then remove `gpu`. */
export function teardown(k: Kernel, mirrors: readonly HmmMirror[], procs: readonly Process[], gpu?: Gpu): void {
  for (const m of mirrors) k.hmm.mirror.hmm_mirror_unregister(m);
  for (const p of procs) p.exit();
  gpu?.remove();
}

// The tests' hmm_range encoding: flags VALID 1, WRITE 2, DEVICE_PRIVATE 4; values ERROR 0x10,
// NONE 0x20, SPECIAL 0x30 (NONE is not 0, so an invalidation's zeroing shows); the pfn above
// bit 6.
export const F_VALID = 1;
export const F_WRITE = 2;
export const F_DEVICE = 4;
export const V_ERROR = 0x10;
export const V_NONE = 0x20;
export const V_SPECIAL = 0x30;
export const PFN_SHIFT = 6;
export const FLAGS = Object.freeze([F_VALID, F_WRITE, F_DEVICE] as [number, number, number]);
export const VALUES = Object.freeze([V_ERROR, V_NONE, V_SPECIAL] as [number, number, number]);

/** An hmm_range over [start, end) of `vma`, pfns[] initialised to `req` (default NONE). */
export function rangeOf(vma: VmArea, start: number, end: number, req: number | number[] = V_NONE): HmmRange {
  const n = (end - start) / PAGE;
  const pfns = new Float64Array(n);
  if (Array.isArray(req)) pfns.set(req);
  else pfns.fill(req);
  return new HmmRange({ vma, start, end, pfns, flags: FLAGS, values: VALUES, pfn_shift: PFN_SHIFT });
}

/** The test encoding of pfn with flags. */
export function hpfn(pfn: number, flags: number): number {
  return pfn * 2 ** PFN_SHIFT + flags;
}

/** pfns[] as numbers (for toEqual). */
export function pfnsOf(range: HmmRange): number[] {
  return [...range.pfns];
}
