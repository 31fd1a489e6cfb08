// A dev_pagemap owner for tests, written the way pmem and hmm own theirs in each version:
// a percpu_ref whose release completes a completion, teardown actions registered around
// devm_memremap_pages() so that devres' reverse order runs them at the right moment.

import type { Device } from "../../core/base/device.ts";
import type { Kernel } from "../../core/kernel.ts";
import { Completion, complete, wait_for_completion } from "../../core/kernel/sched.ts";
import { DevPagemap, MEMORY_DEVICE_FS_DAX } from "../../core/mm/memremap.ts";
import type { PercpuRef } from "../../core/mm/percpu-refcount.ts";
import { Resource } from "../../core/mm/resource.ts";
import { armFailslab } from "./failslab.ts";

export interface OwnerOptions {
  start: number;
  size: number;
  type?: number;
  /** 4.20 contract: kill the ref in an action registered after devm_memremap_pages. */
  killAfter?: boolean;
  /** 5.0 contract: pgmap->kill = percpu_ref_kill. */
  setKill?: boolean;
  /** Give the pgmap no percpu_ref at all. */
  noRef?: boolean;
  /** Call dev_pagemap_get_ops() first (as HMM and fsdax do), put it at teardown. */
  managed?: boolean;
  altmap?: { base_pfn: number; reserve: number; free: number };
  /** Arm failslab to fail the n-th allocation devm_memremap_pages() makes (1: xa_store_range,
   *  2: the devres of its release action). */
  failNthAlloc?: number;
}

export interface PgmapOwner {
  pgmap: DevPagemap;
  ref: PercpuRef | null;
  done: Completion;
  /** What devm_memremap_pages returned. */
  addr: number;
  /** Events in the order they happened: "kill", "release", "cleanup", "page_free:<pfn>". */
  events: string[];
}

/** Build the pgmap, register the owner's teardown, call devm_memremap_pages(). */
export function ownPgmap(k: Kernel, dev: Device, o: OwnerOptions): PgmapOwner {
  const events: string[] = [];
  const done = new Completion();
  const pgmap = new DevPagemap();
  pgmap.res = Resource.mem(o.start, o.size, dev.name, 0x80000200);
  pgmap.type = o.type ?? MEMORY_DEVICE_FS_DAX;
  pgmap.data = "owner-data";
  pgmap.page_free = (page, data) => {
    events.push(`page_free:${page.toString(16)}:${String(data)}`);
  };
  if (o.altmap) {
    pgmap.altmap = { ...o.altmap, align: 0, alloc: 0 };
    pgmap.altmap_valid = true;
  }
  let ref: PercpuRef | null = null;
  if (!o.noRef) {
    ref = k.percpu_ref_init(function owner_ref_release() {
      events.push("release");
      complete(done);
    });
    pgmap.ref = ref;
    // Registered before devm_memremap_pages: runs after its release (devres is LIFO).
    // Like blk_cleanup_queue(): kill the ref if nobody did, wait for it to drain, exit it.
    k.base.devm_add_action(dev, function owner_ref_cleanup() {
      events.push("cleanup");
      if (!ref!.isDead) ref!.kill();
      wait_for_completion(k.sched, done);
      ref!.exit();
    }, null);
  }
  if (o.managed) {
    k.mm.memremap.dev_pagemap_get_ops();
    k.base.devm_add_action(dev, () => k.mm.memremap.dev_pagemap_put_ops(), null);
  }
  if (o.setKill) {
    pgmap.kill = function owner_kill(r: PercpuRef) {
      events.push("kill");
      r.kill();
    };
  }
  if (o.failNthAlloc) armFailslab(k, o.failNthAlloc);
  const addr = k.mm.memremap.devm_memremap_pages(dev, pgmap);
  if (o.failNthAlloc) k.write("/sys/kernel/debug/failslab/probability", "0");
  if (o.killAfter && addr > 0) {
    k.base.devm_add_action(dev, function owner_ref_kill() {
      events.push("kill");
      ref!.kill();
    }, null);
  }
  return { pgmap, ref, done, addr, events };
}
