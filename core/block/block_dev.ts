// /dev/<disk> as a process uses it (fs/block_dev.c, mm/filemap.c, 4.20/5.0): open takes the
// disk and its driver's module (get_disk_and_module(): rmmod says "in use" while it is
// open); reads and writes go through the block device's page cache, one bio per page,
// written back by fsync() (then an empty REQ_PREFLUSH bio when the queue has a volatile
// write cache) and at the last close (sync_blockdev + kill_bdev). O_DIRECT I/O goes to the
// driver at once and must be aligned to the logical block size (-EINVAL).

import { EBADF, EINVAL, EIO, ENOMEM, ENOSPC, ENXIO, EOPNOTSUPP } from "../errno.ts";
import { DEVTMPFS_DEV } from "../fs/devtmpfs.ts";
import { File, O_ACCMODE, OPEN_FMODE, type FileOperations, type Inode } from "../fs/file.ts";
import type { Kernel } from "../kernel.ts";
import { GFP_KERNEL } from "../mm/gfp.ts";
import { PAGE_SIZE, type Page } from "../mm/memmap.ts";
import { Bio, REQ_OP_READ, REQ_OP_WRITE, REQ_PREFLUSH, REQ_SYNC, type BlockCore } from "./blk-core.ts";
import type { Disks, Gendisk } from "./genhd.ts";

/** O_DIRECT on x86 */
export const O_DIRECT = 0o40000;

/** The inode of a block device node. */
class BdevInode implements Inode {
  readonly i_ino: number;
  readonly s_dev = DEVTMPFS_DEV;
  i_size = 0;
  readonly i_mapping = null;
  readonly regular = false;
  readonly i_rdev: number;
  constructor(ino: number, rdev: number) {
    this.i_ino = ino;
    this.i_rdev = rdev;
  }
}

/** struct block_device of a whole disk: its openers and its page cache. */
/** The page-cache pieces of [pos, pos + n): each page index, the offset in it and the length. */
function* page_chunks(pos: number, n: number): Generator<{ off: number; index: number; inPage: number; chunk: number }> {
  for (let off = 0; off < n; ) {
    const index = Math.floor((pos + off) / PAGE_SIZE);
    const inPage = pos + off - index * PAGE_SIZE;
    const chunk = Math.min(PAGE_SIZE - inPage, n - off);
    yield { off, index, inPage, chunk };
    off += chunk;
  }
}

export class BlockDevice {
  readonly disk: Gendisk;
  bd_openers = 0;
  /** i_size of the bdev inode (bd_set_size()) */
  size = 0;
  /** The page cache: page index -> page (one reference each). */
  readonly pages = new Map<number, Page>();
  readonly dirty = new Set<number>();
  constructor(disk: Gendisk) {
    this.disk = disk;
  }
}

export class BlockDevices {
  readonly #k: Kernel;
  readonly #core: BlockCore;
  readonly #disks: Disks;
  #nextIno = 1000;
  /** Open files of block devices. */
  readonly #files = new Map<File, BlockDevice>();

  constructor(k: Kernel, core: BlockCore, disks: Disks) {
    this.#k = k;
    this.#core = core;
    this.#disks = disks;
  }

  /** Pages in block device page caches (meminfo's Buffers). */
  get cachedPages(): number {
    let n = 0;
    for (const d of this.#disks.list) n += d.bdev?.pages.size ?? 0;
    return n;
  }

  /** blkdev_open() -> blkdev_get(): the file, or -ENXIO when the disk or its driver is going. */
  open(disk: Gendisk, path: string, flags: number): File | number {
    const k = this.#k;
    if ((flags & O_ACCMODE) === 3) return -EINVAL;
    // get_disk_and_module()
    if (!disk.added) return -ENXIO;
    const owner = disk.fops?.owner ?? null;
    if (owner && !k.modules.try_module_get(owner)) return -ENXIO;
    disk.refcount++;
    let bdev = disk.bdev;
    if (!bdev) disk.bdev = bdev = new BlockDevice(disk);
    if (bdev.bd_openers++ === 0) bdev.size = disk.capacity * 512; // bd_set_size()
    const ops: FileOperations = {
      read: (file, count, pos) => this.#read(file, count, pos),
      write: (file, data, pos) => this.#write(file, data, pos),
      fsync: (file) => this.#fsync(file),
      release: (file) => this.#release(file),
    };
    const inode = new BdevInode(this.#nextIno++, disk.devt);
    inode.i_size = bdev.size;
    const file = new File(ops, OPEN_FMODE(flags), inode, path, disk.disk_name);
    file.f_flags = flags;
    this.#files.set(file, bdev);
    return file;
  }

  #bdev(file: File): BlockDevice | number {
    return this.#files.get(file) ?? -EBADF;
  }

  /** One bio of `len` bytes at byte offset `pos` from `page` (none: an empty flush), submitted and waited for. */
  #submit(bdev: BlockDevice, op: number, flags: number, pos: number, page: Page | null, len: number): number {
    const disk = bdev.disk;
    if (!disk.added || !disk.queue) return -EIO;
    const vecs = page === null ? [] : [{ bv_page: page, bv_len: len, bv_offset: 0 }];
    const bio = new Bio(op | flags, Math.floor(pos / 512), vecs, disk.disk_name);
    return this.#core.generic_make_request(disk.queue, bio, disk.capacity);
  }

  /** The cached page at `index`, read from the disk first when `fill`; or a negative errno. */
  #page(bdev: BlockDevice, index: number, fill: boolean): Page | number {
    const cached = bdev.pages.get(index);
    if (cached !== undefined) return cached;
    const k = this.#k;
    const page = k.mm.alloc_pages(GFP_KERNEL, 0);
    if (page < 0) return -ENOMEM;
    if (fill) {
      const len = Math.min(PAGE_SIZE, bdev.size - index * PAGE_SIZE);
      const rc = this.#submit(bdev, REQ_OP_READ, 0, index * PAGE_SIZE, page, len);
      if (rc) {
        k.mm.__free_pages(page, 0);
        return rc;
      }
    } else {
      k.mm.physmem.clear(page);
    }
    bdev.pages.set(index, page);
    return page;
  }

  #read(file: File, count: number, pos: number): Uint8Array | number {
    const bdev = this.#bdev(file);
    if (typeof bdev === "number") return bdev;
    if (file.f_flags & O_DIRECT) return this.#directRead(bdev, count, pos);
    if (pos >= bdev.size) return new Uint8Array(0);
    const n = Math.min(count, bdev.size - pos);
    const out = new Uint8Array(n);
    const pm = this.#k.mm.physmem;
    for (const { off, index, inPage, chunk } of page_chunks(pos, n)) {
      const page = this.#page(bdev, index, true);
      if (page < 0) return off ? out.subarray(0, off) : page;
      out.set(pm.read(page * PAGE_SIZE + inPage, chunk), off);
    }
    return out;
  }

  #write(file: File, data: Uint8Array, pos: number): number {
    const bdev = this.#bdev(file);
    if (typeof bdev === "number") return bdev;
    if (data.length === 0) return 0;
    if (pos >= bdev.size) return -ENOSPC;
    if (file.f_flags & O_DIRECT) return this.#directWrite(bdev, data, pos);
    const n = Math.min(data.length, bdev.size - pos);
    const pm = this.#k.mm.physmem;
    for (const { off, index, inPage, chunk } of page_chunks(pos, n)) {
      // block_write_begin(): a page only partly overwritten is read first.
      const whole = inPage === 0 && (chunk === PAGE_SIZE || pos + off + chunk >= bdev.size);
      const page = this.#page(bdev, index, !whole);
      if (page < 0) return off ? off : page;
      pm.write(page * PAGE_SIZE + inPage, data.subarray(off, off + chunk));
      bdev.dirty.add(index);
    }
    return n;
  }

  /** blkdev_direct_IO(): pos and length aligned to the logical block size, or -EINVAL. */
  #directCheck(bdev: BlockDevice, pos: number, len: number): number {
    const lbs = bdev.disk.queue?.logical_block_size ?? 512;
    return pos % lbs || len % lbs ? -EINVAL : 0;
  }

  #directRead(bdev: BlockDevice, count: number, pos: number): Uint8Array | number {
    const bad = this.#directCheck(bdev, pos, count);
    if (bad) return bad;
    if (pos >= bdev.size) return new Uint8Array(0);
    const n = Math.min(count, bdev.size - pos);
    const out = new Uint8Array(n);
    const rc = this.#bounce(bdev, REQ_OP_READ, pos, n, (page, off, len) => out.set(this.#k.mm.physmem.read(page * PAGE_SIZE, len), off));
    return rc < 0 ? rc : out;
  }

  #directWrite(bdev: BlockDevice, data: Uint8Array, pos: number): number {
    const bad = this.#directCheck(bdev, pos, data.length);
    if (bad) return bad;
    const n = Math.min(data.length, bdev.size - pos);
    // The page cache over the range is written back and dropped first (kemu: written back).
    const rc0 = this.#writeback(bdev);
    if (rc0) return rc0;
    for (let i = Math.floor(pos / PAGE_SIZE); i * PAGE_SIZE < pos + n; i++) this.#drop(bdev, i);
    const rc = this.#bounce(bdev, REQ_OP_WRITE, pos, n, null, (page, off, len) => this.#k.mm.physmem.write(page * PAGE_SIZE, data.subarray(off, off + len)));
    return rc < 0 ? rc : n;
  }

  /** Direct I/O, page by page through a bounce page (the pinned user pages of the kernel). */
  #bounce(bdev: BlockDevice, op: number, pos: number, n: number, after: ((page: Page, off: number, len: number) => void) | null, before?: (page: Page, off: number, len: number) => void): number {
    const k = this.#k;
    const page = k.mm.alloc_pages(GFP_KERNEL, 0);
    if (page < 0) return -ENOMEM;
    try {
      for (let off = 0; off < n; ) {
        const len = Math.min(PAGE_SIZE, n - off);
        before?.(page, off, len);
        const rc = this.#submit(bdev, op, REQ_SYNC, pos + off, page, len);
        if (rc) return rc;
        after?.(page, off, len);
        off += len;
      }
      return 0;
    } finally {
      k.mm.__free_pages(page, 0);
    }
  }

  /** filemap_write_and_wait(): every dirty page goes to the driver. */
  #writeback(bdev: BlockDevice): number {
    let err = 0;
    for (const index of [...bdev.dirty].sort((a, b) => a - b)) {
      const len = Math.min(PAGE_SIZE, bdev.size - index * PAGE_SIZE);
      const rc = this.#submit(bdev, REQ_OP_WRITE, 0, index * PAGE_SIZE, bdev.pages.get(index)!, len);
      if (rc) err ||= rc;
      else bdev.dirty.delete(index);
    }
    return err;
  }

  #drop(bdev: BlockDevice, index: number): void {
    const page = bdev.pages.get(index);
    if (page === undefined) return;
    bdev.pages.delete(index);
    bdev.dirty.delete(index);
    this.#k.mm.__free_pages(page, 0);
  }

  /** blkdev_fsync(): write back, then blkdev_issue_flush() when the queue caches writes. */
  #fsync(file: File): number {
    const bdev = this.#bdev(file);
    if (typeof bdev === "number") return bdev;
    const rc = this.#writeback(bdev);
    if (rc) return rc;
    const q = bdev.disk.queue;
    if (!q?.write_cache) return 0;
    const err = this.#submit(bdev, REQ_OP_WRITE, REQ_PREFLUSH, 0, null, 0);
    return err === -EOPNOTSUPP ? 0 : err;
  }

  /** blkdev_close() -> blkdev_put(): the last opener syncs and drops the cache. */
  #release(file: File): void {
    const bdev = this.#files.get(file);
    if (!bdev) return;
    this.#files.delete(file);
    const disk = bdev.disk;
    if (--bdev.bd_openers === 0) {
      this.#writeback(bdev); // sync_blockdev(): errors at close are not reported
      for (const index of [...bdev.pages.keys()]) this.#drop(bdev, index); // kill_bdev()
      disk.bdev = null;
    }
    this.#k.modules.module_put(disk.fops?.owner ?? null);
    this.#disks.put_disk(disk);
  }
}
