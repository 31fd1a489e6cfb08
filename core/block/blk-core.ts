// The request queue of a bio-based driver (block/blk-core.c, blk-settings.c, blk-mq.c of
// 4.20/5.0): blk_alloc_queue_node(), blk_queue_make_request(), the limits and flags the
// driver sets, q_usage_counter (taken by every bio while it is in the driver, killed by
// blk_freeze_queue_start(), waited for by blk_cleanup_queue()), and generic_make_request()
// with its end-of-device check. pmem's pgmap reference is this q_usage_counter (spec R5.1).

import type { Kernel } from "../kernel.ts";
import { EIO, ENOMEM, EOPNOTSUPP } from "../errno.ts";
import { PERCPU_REF_INIT_ATOMIC, PercpuRef } from "../mm/percpu-refcount.ts";
import type { Page } from "../mm/memmap.ts";
import { object_gone } from "../lib/lifetime.ts";

/** enum req_opf (the low REQ_OP_BITS of bi_opf) and the req_flag_bits of 4.20/5.0. */
export const REQ_OP_READ = 0;
export const REQ_OP_WRITE = 1;
export const REQ_OP_FLUSH = 2;
export const REQ_OP_BITS = 8;
export const REQ_OP_MASK = (1 << REQ_OP_BITS) - 1;
export const REQ_SYNC = 1 << 11;
export const REQ_FUA = 1 << 17;
export const REQ_PREFLUSH = 1 << 18;

/** blk_status_t */
export const BLK_STS_OK = 0;
export const BLK_STS_NOTSUPP = 1;
export const BLK_STS_RESOURCE = 9;
export const BLK_STS_IOERR = 10;

/** blk_status_to_errno() */
export function blk_status_to_errno(status: number): number {
  switch (status) {
    case BLK_STS_OK:
      return 0;
    case BLK_STS_NOTSUPP:
      return -EOPNOTSUPP;
    case BLK_STS_RESOURCE:
      return -ENOMEM;
    default:
      return -EIO;
  }
}

/** QUEUE_FLAG_* (include/linux/blkdev.h, 4.20/5.0) */
export const QUEUE_FLAG_DYING = 1;
export const QUEUE_FLAG_NONROT = 6;
export const QUEUE_FLAG_DAX = 19;

export const SECTOR_SHIFT = 9;

/** One segment of a bio (struct bio_vec). */
export interface BioVec {
  bv_page: Page;
  bv_len: number;
  bv_offset: number;
}

/** struct bio: one I/O; the driver walks its segments and ends it with bio_endio(). */
export class Bio {
  bi_opf: number;
  /** bi_iter.bi_sector / bi_iter.bi_size at submission. */
  readonly bi_sector: number;
  readonly bi_size: number;
  readonly bi_io_vec: BioVec[];
  bi_status = BLK_STS_OK;
  /** bio_endio() has run. */
  ended = false;
  /** The disk it is for (bio_devname). */
  readonly disk_name: string;

  constructor(opf: number, sector: number, vecs: BioVec[], diskName: string) {
    this.bi_opf = opf;
    this.bi_sector = sector;
    this.bi_io_vec = vecs;
    this.bi_size = vecs.reduce((n, v) => n + v.bv_len, 0);
    this.disk_name = diskName;
  }

  get op(): number {
    return this.bi_opf & REQ_OP_MASK;
  }
}

export type MakeRequestFn = (q: RequestQueue, bio: Bio) => number;

/** struct request_queue, as the kernel keeps the one a driver set up. */
export class RequestQueue {
  /** q->q_usage_counter: held by each bio in flight; the freeze kills it. */
  q_usage_counter: PercpuRef | null = null;
  make_request_fn: MakeRequestFn | null = null;
  queuedata: unknown = null;
  node = -1;
  logical_block_size = 512;
  physical_block_size = 512;
  max_hw_sectors = 255;
  /** queue_flags, by bit */
  queue_flags = 0;
  /** blk_queue_write_cache(q, wc, fua) */
  write_cache = false;
  fua = false;
  /** mq_freeze_depth */
  mq_freeze_depth = 0;
  /** blk_alloc_queue_node() ran and blk_cleanup_queue() has not. */
  alive = false;
  /** blk_cleanup_queue() ran. */
  dead = false;
  /** The module that set it up (for teardown when it dies). */
  owner = "";

  get dying(): boolean {
    return (this.queue_flags & (1 << QUEUE_FLAG_DYING)) !== 0;
  }
}

export class BlockCore {
  readonly #k: Kernel;
  /** Live queues, for the invariant checker and for a module that dies. */
  readonly queues = new Set<RequestQueue>();

  constructor(k: Kernel) {
    this.#k = k;
  }

  /**
   * blk_alloc_queue_node(): a queue for `node` whose q_usage_counter starts in atomic mode
   * ("faster to shut down"), released into blk_queue_usage_counter_release. 0 or -ENOMEM.
   */
  blk_alloc_queue_node(q: RequestQueue, node: number): number {
    const k = this.#k;
    if (k.mm.slab.should_failslab(2048, 0)) return -ENOMEM;
    q.q_usage_counter ??= new PercpuRef();
    const blk_queue_usage_counter_release = (_ref: PercpuRef) => {
      // wake_up_all(&q->mq_freeze_wq): waiters test percpu_ref_is_zero() themselves.
    };
    q.q_usage_counter.init(k.percpuRefEnv, blk_queue_usage_counter_release, PERCPU_REF_INIT_ATOMIC);
    q.q_usage_counter.label = "q_usage_counter";
    q.node = node;
    q.alive = true;
    q.dead = false;
    q.mq_freeze_depth = 0;
    q.queue_flags = 0;
    this.queues.add(q);
    return 0;
  }

  /** blk_freeze_queue_start(): the first freeze kills q_usage_counter (no new bios enter). */
  blk_freeze_queue_start(q: RequestQueue): void {
    if (++q.mq_freeze_depth === 1) q.q_usage_counter!.kill();
  }

  /** blk_mq_freeze_queue_wait(): sleep until every bio and page reference has gone. */
  blk_mq_freeze_queue_wait(q: RequestQueue): void {
    const ref = q.q_usage_counter!;
    this.#k.sched.waitUntil(() => ref.is_zero(), "blk_mq_freeze_queue_wait");
  }

  /**
   * blk_cleanup_queue(): mark the queue dying (which freezes it), wait for it to drain, and
   * free the usage counter. The queue is dead afterwards.
   */
  blk_cleanup_queue(q: RequestQueue): void {
    if (!q.alive) return;
    // blk_set_queue_dying(): QUEUE_FLAG_DYING, then blk_freeze_queue_start().
    q.queue_flags |= 1 << QUEUE_FLAG_DYING;
    this.blk_freeze_queue_start(q);
    // blk_freeze_queue(): start (again) and wait.
    this.blk_freeze_queue_start(q);
    this.blk_mq_freeze_queue_wait(q);
    q.q_usage_counter!.exit();
    q.alive = false;
    q.dead = true;
    this.queues.delete(q);
  }

  /**
   * generic_make_request(): the checks of generic_make_request_checks(), then the queue's
   * make_request_fn with q_usage_counter held (blk_queue_enter). Returns the bio's errno.
   */
  generic_make_request(q: RequestQueue, bio: Bio, capacity: number): number {
    const k = this.#k;
    const nr = bio.bi_size >> SECTOR_SHIFT;
    if (nr && (bio.bi_sector > capacity || capacity - bio.bi_sector < nr)) {
      // handle_bad_sector()
      k.printk("\x016attempt to access beyond end of device\n");
      k.printk(`\x016${bio.disk_name}: rw=${bio.bi_opf}, want=${bio.bi_sector + nr}, limit=${capacity}\n`);
      return -EIO;
    }
    // blk_queue_enter(): a dying or frozen queue takes no more bios.
    if (!q.alive || !q.q_usage_counter!.tryget_live()) return -EIO;
    try {
      if (!q.make_request_fn) return -EIO;
      q.make_request_fn(q, bio);
    } finally {
      q.q_usage_counter!.put(); // blk_queue_exit()
    }
    // A bio-based driver ends every bio before returning (pmem does); one it left is an error.
    if (!bio.ended) return -EIO;
    return blk_status_to_errno(bio.bi_status);
  }

  /** bio_endio() */
  bio_endio(bio: Bio): void {
    bio.ended = true;
    object_gone(bio);
  }
}
