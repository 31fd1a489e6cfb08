// tmpfs files (mm/shmem.c, 4.19-5.0): memfd_create(), the file behind anonymous shared mappings
// (shmem_zero_setup, "/dev/zero (deleted)"), and their page cache. Pages come from the buddy
// allocator when first needed (a fault or a write; a read of a hole reads zeros), each cached
// page holds one reference, page->mapping is the inode's address_space, page->index its offset.
// A fault beyond EOF is SIGBUS; truncation unmaps the pages (COW copies too) and frees them.
//
// Simplified: no swap, no huge pages, no seals, no size limit besides the allocator's; inode
// numbers count up from 1 per boot (the kernel's get_next_ino() depends on what boot used).

import { EFBIG, EINVAL, ENOMEM } from "../errno.ts";
import { AddressSpace, File, FMODE_READ, FMODE_WRITE, MKDEV, type FileOperations, type Inode } from "../fs/file.ts";
import type { Kernel } from "../kernel.ts";
import { GFP_HIGHUSER_MOVABLE } from "./gfp.ts";
import { PAGE_SIZE, type Page } from "./memmap.ts";
import { __SetPageSwapBacked, alloc_set_pte, SetPageDirty, SetPageUptodate, unmap_mapping_range, vmf_error, VM_FAULT_LOCKED } from "./memory.ts";
import type { VmArea, VmFault, VmOperationsStruct, vm_fault_t } from "./mm_types.ts";

/** shm_mnt's superblock: the anonymous device 0:5 of a 4.x boot. */
export const SHMEM_DEV = MKDEV(0, 5);
/** MAX_LFS_FILESIZE, clamped to what a JavaScript number holds exactly. */
export const SHMEM_MAX_BYTES = Number.MAX_SAFE_INTEGER;

// enum sgp_type
export const SGP_READ = 0;
export const SGP_CACHE = 1;
export const SGP_NOHUGE = 2;
export const SGP_HUGE = 3;
export const SGP_WRITE = 4;
export const SGP_FALLOC = 5;

/** A tmpfs inode (struct shmem_inode_info + its inode). */
export class ShmemInode implements Inode {
  readonly k: Kernel;
  readonly i_ino: number;
  readonly s_dev = SHMEM_DEV;
  i_size = 0;
  readonly i_mapping: AddressSpace;
  readonly regular = true;
  /** The name its dentry was created with ("memfd:x", "dev/zero"). */
  readonly name: string;
  /** Files open on this inode; the last one evicts it (tmpfs files here are never linked). */
  i_count = 0;
  constructor(k: Kernel, ino: number, name: string) {
    this.k = k;
    this.i_ino = ino;
    this.name = name;
    this.i_mapping = new AddressSpace(this);
  }
}

/** Per-kernel tmpfs state: inode numbers and the inodes alive (for the leak check). */
export class Shmem {
  #nextIno = 1;
  readonly inodes = new Set<ShmemInode>();
  get_next_ino(): number {
    return this.#nextIno++;
  }
}

function inodeOf(file: File): ShmemInode {
  return file.f_inode as ShmemInode;
}

/** shmem_add_to_page_cache(): the cache takes a reference; ->mapping and ->index are set. */
function shmem_add_to_page_cache(inode: ShmemInode, page: Page, index: number): void {
  const kmm = inode.k.mm;
  const sec = kmm.memmap.section(page);
  const i = page - sec.startPfn;
  sec.refcount[i]!++;
  sec.mapping[i] = inode.i_mapping;
  sec.index[i] = index;
  inode.i_mapping.i_pages.set(index, page);
  kmm.vmstat.nr_file_pages++;
  kmm.vmstat.nr_shmem++;
}

/** delete_from_page_cache(): the page leaves the cache and loses the cache's reference. */
function delete_from_page_cache(inode: ShmemInode, index: number, page: Page): void {
  const kmm = inode.k.mm;
  inode.i_mapping.i_pages.delete(index);
  const sec = kmm.memmap.section(page);
  sec.mapping[page - sec.startPfn] = null;
  kmm.vmstat.nr_file_pages--;
  kmm.vmstat.nr_shmem--;
  kmm.put_page(page);
}

/**
 * shmem_getpage_gfp(): the cache page at `index` with a reference for the caller, allocated
 * and cleared if absent; -EINVAL beyond EOF for SGP_READ/SGP_CACHE, -ENOMEM, -EFBIG.
 */
export function shmem_getpage(inode: ShmemInode, index: number, sgp: number): Page {
  const kmm = inode.k.mm;
  if (index > Math.floor(SHMEM_MAX_BYTES / PAGE_SIZE)) return -EFBIG;
  if (sgp <= SGP_CACHE && index * PAGE_SIZE >= inode.i_size) return -EINVAL;
  const cached = inode.i_mapping.i_pages.get(index);
  if (cached !== undefined) {
    kmm.get_page(cached);
    return cached;
  }
  const page = kmm.alloc_pages(GFP_HIGHUSER_MOVABLE, 0);
  if (page < 0) return -ENOMEM;
  __SetPageSwapBacked(kmm, page);
  // clear_highpage(): a new tmpfs page reads as zeros.
  kmm.physmem.clear(page);
  SetPageUptodate(kmm, page);
  shmem_add_to_page_cache(inode, page, index);
  return page;
}

/** shmem_fault(): the page at vmf->pgoff, SIGBUS beyond EOF. */
function shmem_fault(vmf: VmFault): vm_fault_t {
  const inode = inodeOf(vmf.vma.vm_file!);
  const page = shmem_getpage(inode, vmf.pgoff, SGP_CACHE);
  if (page < 0) return vmf_error(page);
  vmf.page = page;
  return VM_FAULT_LOCKED;
}

/** filemap_map_pages(): fault-around maps the cached pages of the window below EOF. */
function filemap_map_pages(vmf: VmFault, start_pgoff: number, end_pgoff: number): void {
  const vma = vmf.vma;
  const inode = inodeOf(vma.vm_file!);
  const kmm = inode.k.mm;
  const pages = inode.i_mapping.i_pages;
  const max_idx = Math.ceil(inode.i_size / PAGE_SIZE);
  const base = vmf.address;
  const flags = vmf.flags;
  vmf.flags = 0; // fault-around maps for reading
  for (let pgoff = start_pgoff; pgoff <= end_pgoff; pgoff++) {
    const page = pages.get(pgoff);
    if (page === undefined || pgoff >= max_idx) continue;
    vmf.address = base + (pgoff - start_pgoff) * PAGE_SIZE;
    if (vma.vm_mm.ptep_get(vmf.address) !== 0) continue;
    kmm.get_page(page);
    if (alloc_set_pte(vmf, page)) kmm.put_page(page);
  }
  vmf.address = base;
  vmf.flags = flags;
}

/** shmem_vm_ops */
export const shmem_vm_ops: VmOperationsStruct = Object.freeze({ fault: shmem_fault, map_pages: filemap_map_pages });

/** shmem_mmap() */
function shmem_mmap(_file: File, vma: VmArea): number {
  vma.vm_ops = shmem_vm_ops;
  return 0;
}

/** shmem_file_read_iter(): holes read as zeros and allocate nothing; stops at EOF. */
function shmem_file_read(file: File, count: number, pos: number): Uint8Array | number {
  const inode = inodeOf(file);
  const physmem = inode.k.mm.physmem;
  const end = Math.max(pos, Math.min(pos + count, inode.i_size));
  const out = new Uint8Array(end - pos);
  for (let off = pos; off < end; ) {
    const index = Math.floor(off / PAGE_SIZE);
    const o = off - index * PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - o, end - off);
    const page = inode.i_mapping.i_pages.get(index);
    if (page !== undefined) out.set(physmem.readPage(page).subarray(o, o + n), off - pos);
    off += n;
  }
  return out;
}

/** shmem_write_begin/end through generic_perform_write(): allocate, copy, dirty, extend i_size. */
function shmem_file_write(file: File, data: Uint8Array, pos: number): number {
  const inode = inodeOf(file);
  const kmm = inode.k.mm;
  if (pos + data.length > SHMEM_MAX_BYTES) return -EFBIG;
  let done = 0;
  while (done < data.length) {
    const off = pos + done;
    const index = Math.floor(off / PAGE_SIZE);
    const o = off - index * PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - o, data.length - done);
    const page = shmem_getpage(inode, index, SGP_WRITE);
    if (page < 0) return done ? done : page;
    kmm.physmem.writablePage(page).set(data.subarray(done, done + n), o);
    SetPageDirty(kmm, page);
    kmm.put_page(page);
    done += n;
    if (off + n > inode.i_size) inode.i_size = off + n;
  }
  return done;
}

/**
 * shmem_undo_range() from `lstart` to the end of the file: whole pages go (unmapped first if
 * a pte still maps them), and the tail of a partial first page is zeroed.
 */
function shmem_truncate_range(inode: ShmemInode, lstart: number): void {
  const kmm = inode.k.mm;
  const start = Math.ceil(lstart / PAGE_SIZE);
  const partial = lstart % PAGE_SIZE;
  const victims = [...inode.i_mapping.i_pages].filter(([index]) => index >= start).sort((a, b) => a[0] - b[0]);
  for (const [index, page] of victims) {
    // truncate_inode_page(): a still-mapped page is unmapped from every vma first.
    const sec = kmm.memmap.section(page);
    if (sec.mapcount[page - sec.startPfn]! >= 0) unmap_mapping_range(inode.i_mapping, index * PAGE_SIZE, PAGE_SIZE, false);
    delete_from_page_cache(inode, index, page);
  }
  if (partial) {
    const page = inode.i_mapping.i_pages.get(start - 1);
    if (page !== undefined) kmm.physmem.zero(page * PAGE_SIZE + partial, PAGE_SIZE - partial);
  }
}

/** shmem_setattr() with ATTR_SIZE: a shrink unmaps, frees and unmaps again (racy COWs). */
export function shmem_truncate(inode: ShmemInode, newsize: number): number {
  if (newsize < 0) return -EINVAL;
  if (newsize > SHMEM_MAX_BYTES) return -EFBIG;
  const oldsize = inode.i_size;
  inode.i_size = newsize;
  if (newsize <= oldsize) {
    const holebegin = Math.ceil(newsize / PAGE_SIZE) * PAGE_SIZE;
    if (oldsize > holebegin) unmap_mapping_range(inode.i_mapping, holebegin, 0, true);
    shmem_truncate_range(inode, newsize);
    if (oldsize > holebegin) unmap_mapping_range(inode.i_mapping, holebegin, 0, true);
  }
  return 0;
}

/** shmem_evict_inode(): the last reference went; every page goes back. */
function shmem_evict_inode(inode: ShmemInode): void {
  shmem_truncate_range(inode, 0);
  inode.k.mm.shmem.inodes.delete(inode);
}

function shmem_release(file: File): void {
  const inode = inodeOf(file);
  if (--inode.i_count === 0) shmem_evict_inode(inode);
}

export const shmem_file_operations: FileOperations = Object.freeze({
  mmap: shmem_mmap,
  read: shmem_file_read,
  write: shmem_file_write,
  truncate: (file: File, length: number) => shmem_truncate(inodeOf(file), length),
  release: shmem_release,
});

/**
 * shmem_file_setup() / shmem_kernel_file_setup(): an unlinked tmpfs file of `size` bytes on
 * the internal mount, open for reading and writing. Its path reads "/NAME (deleted)".
 */
export function shmem_file_setup(k: Kernel, name: string, size: number): File {
  const inode = new ShmemInode(k, k.mm.shmem.get_next_ino(), name);
  inode.i_size = size;
  inode.i_count = 1;
  k.mm.shmem.inodes.add(inode);
  // d_path() escapes a newline as "\012" (seq_file_path(m, file, "\n")).
  return new File(shmem_file_operations, FMODE_READ | FMODE_WRITE, inode, `/${name.replace(/\n/g, "\\012")} (deleted)`, name);
}

/**
 * shmem_zero_setup(): an anonymous shared mapping is a tmpfs file "dev/zero" as large as the
 * mapping, which the vma owns.
 */
export function shmem_zero_setup(vma: VmArea): number {
  const file = shmem_file_setup(vma.vm_mm.k, "dev/zero", vma.vm_end - vma.vm_start);
  vma.vm_file = file;
  vma.vm_ops = shmem_vm_ops;
  return 0;
}

/** Is this a tmpfs file? */
export function is_shmem_file(file: File): boolean {
  return file.f_op === shmem_file_operations;
}
