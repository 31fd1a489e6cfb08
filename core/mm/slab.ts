// kmalloc() on SLUB-style caches (mm/slub.c): one cache per size class, slabs are pages from
// the buddy allocator marked PG_slab, objects up to KMALLOC_MAX_CACHE_SIZE live in slabs and
// bigger ones are whole compound allocations (kmalloc_large). failslab applies to each slab
// allocation (slab_pre_alloc_hook), not to kmalloc_large, which goes straight to the page allocator.

import { __GFP_NOFAIL, __GFP_RECLAIM, __GFP_ZERO } from "./gfp.ts";
import { PAGE_SIZE, type Page } from "./memmap.ts";
import type { FaultAttr } from "../lib/fault-inject.ts";
import { object_gone } from "../lib/lifetime.ts";

export const KMALLOC_SIZES = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192] as const;
/** SLUB: KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1 */
export const KMALLOC_MAX_CACHE_SIZE = 2 * PAGE_SIZE;

export interface SlabEnv {
  alloc_pages(gfp: number, order: number): Page;
  free_pages(page: Page, order: number): void;
  setSlab(page: Page, on: boolean): void;
  zero(phys: number, len: number): void;
  failslab: FaultAttr;
  /** A kfree() of something that is not a live allocation. */
  badFree(buf: KBuf, why: string): void;
}

/** A kmalloc()ed object: where it lives and who asked for it. */
export class KBuf {
  readonly size: number;
  readonly cache: KmemCache | null;
  /** The first page of the slab or of the large allocation. */
  readonly page: Page;
  /** Byte offset of the object in its slab. */
  readonly offset: number;
  readonly order: number;
  readonly owner: string;
  freed = false;

  constructor(size: number, cache: KmemCache | null, page: Page, offset: number, order: number, owner: string) {
    this.size = size;
    this.cache = cache;
    this.page = page;
    this.offset = offset;
    this.order = order;
    this.owner = owner;
  }

  /** Physical address of the object. */
  get phys(): number {
    return this.page * PAGE_SIZE + this.offset;
  }
}

interface Slab {
  page: Page;
  free: number[];
  inuse: number;
}

export class KmemCache {
  readonly name: string;
  readonly object_size: number;
  readonly order: number;
  readonly objects: number;
  readonly slabs = new Map<Page, Slab>();
  readonly partial: Slab[] = [];

  constructor(name: string, size: number) {
    this.name = name;
    this.object_size = size;
    this.order = calculate_order(size);
    this.objects = Math.floor((PAGE_SIZE << this.order) / size);
  }
}

/** SLUB slub_max_order (PAGE_ALLOC_COSTLY_ORDER) */
export const slub_max_order = 3;
/** nr_cpu_ids of the emulated machine: one CPU. */
const NR_CPU_IDS = 1;

/** get_order(): the smallest order whose block holds `size` bytes (no int32 shift, so sizes past 2 GiB end). */
function get_order(size: number): number {
  let order = 0;
  while (PAGE_SIZE * 2 ** order < size) order++;
  return order;
}

/** mm/slub.c slab_order() */
function slab_order(size: number, minObjects: number, maxOrder: number, fractLeftover: number): number {
  let order = get_order(minObjects * size);
  for (; order <= maxOrder; order++) {
    const slabSize = PAGE_SIZE << order;
    if (slabSize % size <= slabSize / fractLeftover) break;
  }
  return order;
}

/** mm/slub.c calculate_order() with slub_min_objects = 0 and slub_min_order = 0. */
export function calculate_order(size: number): number {
  let minObjects = 4 * (32 - Math.clz32(NR_CPU_IDS) + 1);
  const maxObjects = Math.floor((PAGE_SIZE << slub_max_order) / size);
  minObjects = Math.min(minObjects, maxObjects);
  while (minObjects > 1) {
    for (let fraction = 16; fraction >= 4; fraction /= 2) {
      const order = slab_order(size, minObjects, slub_max_order, fraction);
      if (order <= slub_max_order) return order;
    }
    minObjects--;
  }
  let order = slab_order(size, 1, slub_max_order, 1);
  if (order <= slub_max_order) return order;
  order = slab_order(size, 1, 10, 1);
  return order;
}

export const ZERO_SIZE_PTR = new KBuf(0, null, -1, 16, 0, "");

export class Slub {
  readonly caches: KmemCache[] = KMALLOC_SIZES.map((s) => new KmemCache(`kmalloc-${s >= 1024 ? `${s / 1024}k` : s}`, s));
  readonly #env: SlabEnv;
  /** Every live allocation, for leak checks. */
  readonly live = new Set<KBuf>();
  /** NR_SLAB_UNRECLAIMABLE, in pages */
  slabPages = 0;

  constructor(env: SlabEnv) {
    this.#env = env;
  }

  #cacheFor(size: number): KmemCache {
    for (const c of this.caches) if (size <= c.object_size) return c;
    throw new RangeError(`no kmalloc cache for ${size} bytes`);
  }

  /**
   * should_failslab(): `size` is the cache's object_size. 4.20 and 5.0 let ignore-gfp-wait
   * spare every allocation with any __GFP_RECLAIM bit, GFP_ATOMIC included (narrowed to
   * __GFP_DIRECT_RECLAIM only in 5.2).
   */
  should_failslab(size: number, gfp: number): boolean {
    const attr = this.#env.failslab;
    if (gfp & __GFP_NOFAIL) return false;
    if (attr.ignoreGfpReclaim && gfp & __GFP_RECLAIM) return false;
    return attr.shouldFail(size);
  }

  /** kmalloc(): the object, or null. `owner` names who allocated it (for leak reports). */
  kmalloc(size: number, gfp: number, owner = "kernel"): KBuf | null {
    if (!Number.isSafeInteger(size) || size < 0) return null;
    if (size === 0) return ZERO_SIZE_PTR;
    let buf: KBuf;
    if (size > KMALLOC_MAX_CACHE_SIZE) {
      const order = get_order(size);
      const page = this.#env.alloc_pages(gfp, order);
      if (page < 0) return null;
      buf = new KBuf(size, null, page, 0, order, owner);
    } else {
      const cache = this.#cacheFor(size);
      if (this.should_failslab(cache.object_size, gfp)) return null;
      let slab = cache.partial[cache.partial.length - 1];
      if (!slab) {
        const page = this.#env.alloc_pages(gfp & ~__GFP_ZERO, cache.order);
        if (page < 0) return null;
        this.#env.setSlab(page, true);
        this.slabPages += 1 << cache.order;
        slab = { page, free: Array.from({ length: cache.objects }, (_, k) => cache.objects - 1 - k), inuse: 0 };
        cache.slabs.set(page, slab);
        cache.partial.push(slab);
      }
      const slot = slab.free.pop()!;
      slab.inuse++;
      if (slab.free.length === 0) cache.partial.pop();
      buf = new KBuf(size, cache, slab.page, slot * cache.object_size, cache.order, owner);
    }
    if (gfp & __GFP_ZERO) this.#env.zero(buf.phys, buf.size);
    this.live.add(buf);
    return buf;
  }

  kzalloc(size: number, gfp: number, owner = "kernel"): KBuf | null {
    return this.kmalloc(size, gfp | __GFP_ZERO, owner);
  }

  /** kfree(); null and ZERO_SIZE_PTR are ignored, as in the kernel. */
  kfree(buf: KBuf | null): void {
    if (buf === null || buf === ZERO_SIZE_PTR) return;
    if (buf.freed || !this.live.has(buf)) {
      // kmalloc_large: kfree() hands the pages straight back, so the page allocator trips
      // over the second free (VM_BUG_ON_PAGE on a zero refcount).
      if (!buf.cache) return this.#env.free_pages(buf.page, buf.order);
      // SLUB free_consistency_checks(): an object that is not in use is on the slab's freelist.
      this.#env.badFree(buf, "Object already free");
      return;
    }
    buf.freed = true;
    this.live.delete(buf);
    object_gone(buf);
    if (!buf.cache) {
      this.#env.free_pages(buf.page, buf.order);
      return;
    }
    const cache = buf.cache;
    const slab = cache.slabs.get(buf.page)!;
    if (slab.free.length === 0) cache.partial.push(slab);
    slab.free.push(buf.offset / cache.object_size);
    slab.inuse--;
    if (slab.inuse === 0) {
      cache.slabs.delete(slab.page);
      cache.partial.splice(cache.partial.indexOf(slab), 1);
      this.#env.setSlab(slab.page, false);
      this.slabPages -= 1 << cache.order;
      this.#env.free_pages(slab.page, cache.order);
    }
  }

  /** /proc/slabinfo-style lines for the kmalloc caches in use. */
  slabinfo(): string[] {
    return this.caches
      .filter((c) => c.slabs.size > 0)
      .map((c) => {
        let active = 0;
        for (const s of c.slabs.values()) active += s.inuse;
        return `${c.name.padEnd(17)} ${String(active).padStart(6)} ${String(c.slabs.size * c.objects).padStart(6)} ${String(c.object_size).padStart(6)} ${String(c.objects).padStart(4)} ${String(1 << c.order).padStart(4)}`;
      });
  }
}
