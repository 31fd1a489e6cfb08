// The block layer as a bio-based driver (pmem) uses it, 4.20/5.0: a request queue with a
// make_request function and its limits, q_usage_counter (which pmem makes its pgmap's
// reference), blk_freeze_queue_start()/blk_cleanup_queue(), and a gendisk added under the
// driver's device (/dev/NAME, /proc/partitions). struct request_queue and struct gendisk live
// in the module, as a percpu_ref does: alloc_disk_node() and blk_alloc_queue_node() take the
// module's struct and set it up (kemu cannot hand a module a struct of the kernel's), the
// driver fills in its fields, and the kernel reads them when the struct is passed.

import type { Device } from "../../base/device.ts";
import { Bio, BLK_STS_IOERR, RequestQueue, type MakeRequestFn } from "../../block/blk-core.ts";
import { Gendisk, type BlockDeviceOperations } from "../../block/genhd.ts";
import { EINVAL } from "../../errno.ts";
import type { PercpuRef } from "../../mm/percpu-refcount.ts";
import { defineApis, type CallCtx } from "../api.ts";
import { ArgError } from "../marshal.ts";
import type { Module } from "../module.ts";
import type { StructTwin } from "../twins.ts";
import { hold, unhold } from "./teardown.ts";

export const BLOCK_TWINS: Record<string, StructTwin> = {
  request_queue: {
    create: () => new RequestQueue(),
    update(obj, f) {
      const q = obj as RequestQueue;
      // The counter is the module's percpu_ref until the queue is set up; then the kernel's.
      if (!q.alive && f["q_usage_counter"]) q.q_usage_counter = f["q_usage_counter"] as PercpuRef;
      if ("queuedata" in f) q.queuedata = f["queuedata"] ?? null;
    },
  },
  block_device_operations: {
    create: (): BlockDeviceOperations => ({ owner: null }),
    update(obj, f) {
      (obj as BlockDeviceOperations).owner = (f["owner"] as Module | null) ?? null;
    },
  },
  gendisk: {
    create: () => new Gendisk(),
    update(obj, f) {
      const d = obj as Gendisk;
      // Once added, the kernel's copy rules (the name and dev_t are in use).
      if (d.added) return;
      if (typeof f["disk_name"] === "string") d.disk_name = f["disk_name"];
      if (typeof f["major"] === "number") d.major = f["major"];
      if (typeof f["first_minor"] === "number") d.first_minor = f["first_minor"];
      if (typeof f["flags"] === "number") d.flags = f["flags"];
      if ("fops" in f) d.fops = (f["fops"] as BlockDeviceOperations | null) ?? null;
      if ("queue" in f) d.queue = (f["queue"] as RequestQueue | null) ?? null;
    },
  },
};

function live(q: RequestQueue, func: string): RequestQueue {
  if (!q.alive) throw new ArgError(`${func}() of a request_queue that blk_alloc_queue_node() did not set up (or that was cleaned up)`);
  return q;
}

function disk(d: Gendisk, func: string): Gendisk {
  if (!d.allocated) throw new ArgError(`${func}() of a gendisk that alloc_disk_node() did not set up (or that was put)`);
  return d;
}

/** A queue or disk the module left: cleaned up without waiting (nothing would end the wait). */
function holdQueue(c: CallCtx, q: RequestQueue): void {
  hold(c, q, "request_queue", () => {
    if (!q.alive) return;
    if (!q.q_usage_counter!.isDead) q.q_usage_counter!.kill();
    q.q_usage_counter!.exit();
    q.alive = false;
    q.dead = true;
    c.k.block.core.queues.delete(q);
  });
}

export const BLOCK_APIS = defineApis([
  {
    name: "blk_alloc_queue_node", symbols: ["blk_alloc_queue_node"], params: ["s:request_queue", "num", "int"], ret: "int",
    proto: "struct request_queue *blk_alloc_queue_node(gfp_t gfp_mask, int node_id, spinlock_t *lock) /* kemu: sets up the module's struct request_queue; 0 or -ENOMEM */",
    impl: (c: CallCtx, q: RequestQueue, _gfp: number, node: number) => {
      if (q.alive) throw new ArgError("blk_alloc_queue_node() of a request_queue that is set up already");
      const rc = c.k.block.core.blk_alloc_queue_node(q, node);
      if (!rc) {
        q.owner = c.mod.name;
        holdQueue(c, q);
      }
      return rc;
    },
  },
  {
    name: "blk_queue_make_request", symbols: ["blk_queue_make_request"], params: ["s:request_queue", "fn(s:request_queue,o:bio)->num|0"], ret: "void",
    proto: "void blk_queue_make_request(struct request_queue *q, make_request_fn *mfn)",
    impl: (_c: CallCtx, q: RequestQueue, fn: MakeRequestFn | null) => {
      live(q, "blk_queue_make_request").make_request_fn = fn;
      // blk_queue_make_request() sets the default limits.
      q.max_hw_sectors = 255;
      q.logical_block_size = 512;
      q.physical_block_size = 512;
    },
  },
  {
    name: "blk_queue_write_cache", symbols: ["blk_queue_write_cache"], params: ["s:request_queue", "bool", "bool"], ret: "void", proto: "void blk_queue_write_cache(struct request_queue *q, bool wc, bool fua)",
    impl: (_c: CallCtx, q: RequestQueue, wc: boolean, fua: boolean) => {
      live(q, "blk_queue_write_cache");
      q.write_cache = wc;
      q.fua = fua;
    },
  },
  {
    name: "blk_queue_logical_block_size", symbols: ["blk_queue_logical_block_size"], params: ["s:request_queue", "int"], ret: "void", proto: "void blk_queue_logical_block_size(struct request_queue *q, unsigned short size)",
    impl: (_c: CallCtx, q: RequestQueue, size: number) => {
      if (size < 512 || size > 65536 || size & (size - 1)) throw new ArgError(`blk_queue_logical_block_size(${size}): not a power of two from 512`);
      live(q, "blk_queue_logical_block_size").logical_block_size = size;
      if (q.physical_block_size < size) q.physical_block_size = size;
    },
  },
  {
    name: "blk_queue_physical_block_size", symbols: ["blk_queue_physical_block_size"], params: ["s:request_queue", "int"], ret: "void", proto: "void blk_queue_physical_block_size(struct request_queue *q, unsigned int size)",
    impl: (_c: CallCtx, q: RequestQueue, size: number) => {
      live(q, "blk_queue_physical_block_size");
      q.physical_block_size = Math.max(size, q.logical_block_size);
    },
  },
  {
    name: "blk_queue_max_hw_sectors", symbols: ["blk_queue_max_hw_sectors"], params: ["s:request_queue", "num"], ret: "void", proto: "void blk_queue_max_hw_sectors(struct request_queue *q, unsigned int max_hw_sectors)",
    impl: (_c: CallCtx, q: RequestQueue, n: number) => void (live(q, "blk_queue_max_hw_sectors").max_hw_sectors = Math.max(8, n >>> 0)),
  },
  {
    name: "blk_queue_flag_set", symbols: ["blk_queue_flag_set"], params: ["int", "s:request_queue"], ret: "void", proto: "void blk_queue_flag_set(unsigned int flag, struct request_queue *q)",
    impl: (_c: CallCtx, flag: number, q: RequestQueue) => {
      if (flag < 0 || flag > 30) throw new ArgError(`blk_queue_flag_set(${flag}): no such queue flag`);
      live(q, "blk_queue_flag_set").queue_flags |= 1 << flag;
    },
  },
  {
    name: "blk_freeze_queue_start", symbols: ["blk_freeze_queue_start"], params: ["s:request_queue"], ret: "void", proto: "void blk_freeze_queue_start(struct request_queue *q)",
    impl: (c: CallCtx, q: RequestQueue) => c.k.block.core.blk_freeze_queue_start(live(q, "blk_freeze_queue_start")),
  },
  {
    name: "blk_cleanup_queue", symbols: ["blk_cleanup_queue"], params: ["s:request_queue"], ret: "void", proto: "void blk_cleanup_queue(struct request_queue *q)",
    impl: (c: CallCtx, q: RequestQueue) => {
      live(q, "blk_cleanup_queue");
      unhold(c, q);
      c.k.block.core.blk_cleanup_queue(q);
    },
  },
  {
    name: "alloc_disk_node", symbols: ["__alloc_disk_node"], params: ["s:gendisk", "int", "int"], ret: "int",
    proto: "#define alloc_disk_node(minors, node_id) __alloc_disk_node(minors, node_id) /* kemu: sets up the module's struct gendisk; 0 or -ENOMEM */",
    impl: (c: CallCtx, d: Gendisk, minors: number, node: number) => {
      const rc = c.k.block.disks.alloc_disk_node(d, minors, node);
      if (!rc) {
        d.owner = c.mod.name;
        hold(c, d, `gendisk '${d.disk_name}'`, () => {
          c.k.block.disks.del_gendisk(d);
          while (d.allocated) c.k.block.disks.put_disk(d);
        });
      }
      return rc;
    },
  },
  {
    name: "device_add_disk", symbols: ["device_add_disk"], params: ["o?:device", "s:gendisk"], ret: "void", proto: "void device_add_disk(struct device *parent, struct gendisk *disk)",
    impl: (c: CallCtx, parent: Device | null, d: Gendisk) => {
      disk(d, "device_add_disk");
      if (!d.disk_name) throw new ArgError("device_add_disk() of a gendisk without a disk_name");
      if (!d.queue?.alive) throw new ArgError(`device_add_disk(${d.disk_name}): its queue is not set up`);
      const rc = c.k.block.disks.device_add_disk(parent, d, (disk, path, flags) => c.k.block.open(disk, path, flags));
      if (rc) throw new ArgError(`device_add_disk(${d.disk_name}): the disk has no dev_t (no minors and no GENHD_FL_EXT_DEVT)`);
    },
  },
  {
    name: "set_capacity", symbols: [], params: ["s:gendisk", "num"], ret: "void", proto: "static inline void set_capacity(struct gendisk *disk, sector_t size)",
    impl: (_c: CallCtx, d: Gendisk, sectors: number) => {
      if (!Number.isSafeInteger(sectors) || sectors < 0) throw new ArgError(`set_capacity(${sectors}): not a sector count`);
      disk(d, "set_capacity").capacity = sectors;
    },
  },
  { name: "get_capacity", symbols: [], params: ["s:gendisk"], ret: "num", proto: "static inline sector_t get_capacity(struct gendisk *disk)", impl: (_c: CallCtx, d: Gendisk) => d.capacity },
  {
    name: "revalidate_disk", symbols: ["revalidate_disk"], params: ["s:gendisk"], ret: "int", proto: "int revalidate_disk(struct gendisk *disk)",
    impl: (c: CallCtx, d: Gendisk) => {
      if (!disk(d, "revalidate_disk").added) return -EINVAL;
      c.k.block.disks.revalidate_disk(d, d.bdev ? d.bdev.size : 0);
      if (d.bdev) d.bdev.size = d.capacity * 512;
      return 0;
    },
  },
  {
    name: "del_gendisk", symbols: ["del_gendisk"], params: ["s:gendisk"], ret: "void", proto: "void del_gendisk(struct gendisk *disk)",
    impl: (c: CallCtx, d: Gendisk) => c.k.block.disks.del_gendisk(disk(d, "del_gendisk")),
  },
  {
    name: "put_disk", symbols: ["put_disk"], params: ["s?:gendisk"], ret: "void", proto: "void put_disk(struct gendisk *disk)",
    impl: (c: CallCtx, d: Gendisk | null) => {
      if (!d) return;
      disk(d, "put_disk");
      c.k.block.disks.put_disk(d);
      if (!d.allocated) unhold(c, d);
    },
  },
  {
    name: "bio_for_each_segment", symbols: [], params: ["o:bio"], ret: "f64",
    proto: "#define bio_for_each_segment(bvl, bio, iter) /* kemu: the loop's values at once, [bv_page, bv_len, bv_offset, iter.bi_sector] per segment */",
    impl: (_c: CallCtx, bio: Bio) => {
      const out = new Float64Array(bio.bi_io_vec.length * 4);
      let sector = bio.bi_sector;
      bio.bi_io_vec.forEach((v, i) => {
        out.set([v.bv_page, v.bv_len, v.bv_offset, sector], i * 4);
        sector += v.bv_len / 512;
      });
      return out;
    },
  },
  { name: "bio_endio", symbols: ["bio_endio"], params: ["o:bio"], ret: "void", proto: "void bio_endio(struct bio *bio)", impl: (c: CallCtx, bio: Bio) => c.k.block.core.bio_endio(bio) },
  {
    name: "bio_io_error", symbols: ["bio_endio"], params: ["o:bio"], ret: "void", proto: "static inline void bio_io_error(struct bio *bio)",
    impl: (c: CallCtx, bio: Bio) => {
      bio.bi_status = BLK_STS_IOERR;
      c.k.block.core.bio_endio(bio);
    },
  },
]);
