// test_hmm ("dmirror"): the HMM test module of lib/test_hmm.c (first merged in v5.8-rc1),
// written for the HMM API of 4.20/5.0. Two emulated devices, /dev/hmm_dmirror0 and
// /dev/hmm_dmirror1, each with its own device-private memory. Each open file is a "device
// mirror" of the opening process's address space: a device page table (vpfn -> page, tagged
// writable or not) that the device reads and writes through, kept coherent by HMM.
//
//   HMM_DMIRROR_READ      the device reads [addr, addr + npages pages) into ptr; pages it has
//                         no entry for are faulted in (hmm_vma_fault()); faults = fault passes
//   HMM_DMIRROR_WRITE     the device writes ptr's data there, faulting for write
//   HMM_DMIRROR_MIGRATE_TO_DEV  migrate the range to device memory (migrate_vma()), then read
//                         it back through the device page table (-ENOENT for a page not on it)
//   HMM_DMIRROR_MIGRATE_TO_SYS  migrate this device's pages in the range back to system memory;
//                         cpages = pages moved
//   HMM_DMIRROR_SNAPSHOT  one byte per page: the CPU page table (hmm_vma_get_pfns())
//
// mmap() of the device file maps a zeroed kernel page at each address (vm_insert_page(), as
// test_hmm does since 5.16 for its mixedmap test).
//
// Device memory comes in 256 MiB chunks from hmm_devmem_add(); one per device at load, more
// when a device runs out. A device page's data lives in a system page allocated with it
// ("backing page", as in test_hmm). A CPU access to a device page faults into
// hmm_devmem_ops.fault, which migrates the page back; when its last user lets go,
// hmm_devmem_ops.free puts it back on the device's free list.
//
// Where 5.0's API differs from the one test_hmm was written for (5.8: memremap_pages,
// mmu_interval_notifier, hmm_range_fault, migrate_vma_setup), this driver does what a 5.0
// driver has to (docs/drivers/test_hmm.md lists each difference and what user space sees):
// - device memory from hmm_devmem_add() on an hmm_device, not request_free_mem_region();
// - misc devices, not a chrdev region;
// - one hmm_mirror per mm for all of the module's open files: 4.20/5.0 leak the struct hmm and
//   the mm when two mirrors of one mm unregister (hmm_mirror_unregister() clears hmm->mm);
// - hmm_vma_fault() works on one vma: faults go vma by vma; a write to a vma without VM_WRITE
//   is refused with -EPERM up front (hmm_vma_fault() would call handle_mm_fault() for write
//   forever: the pte never becomes writable); another device's pages are faulted back by
//   asking for them again with HMM_PFN_DEVICE_PRIVATE (5.0 has no dev_private_owner);
// - migrate_vma() collects every page, system and device-private, and fires a plain
//   invalidation (no MMU_NOTIFY_MIGRATE with an owner to ignore): alloc_and_copy() leaves
//   alone what the migration does not select (to the device: device pages, as
//   MIGRATE_VMA_SELECT_SYSTEM; to system memory: all but this device's pages, as
//   MIGRATE_VMA_SELECT_DEVICE_PRIVATE with pgmap_owner), and the entries this device's mirrors
//   had for pages that did not move are put back once the call's invalidations are over;
// - the module holds a reference on itself while any device page is in use: its
//   hmm_devmem_ops would otherwise be called after it is gone.

import {
  MODULE_LICENSE, MODULE_DESCRIPTION, MODULE_AUTHOR, module_init, module_exit, THIS_MODULE, pr_info, IS_ERR, PTR_ERR,
  PAGE_SIZE, PAGE_SHIFT, GFP_HIGHUSER, GFP_KERNEL, __GFP_ZERO, EFAULT, EINVAL, EBUSY, EAGAIN, ENOENT, ENODEV, ENOMEM, EPERM,
  MISC_DYNAMIC_MINOR, VM_READ, VM_WRITE, VM_FAULT_SIGBUS, VM_FAULT_OOM,
  MIGRATE_PFN_VALID, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_LOCKED, MIGRATE_PFN_DEVICE, MIGRATE_PFN_WRITE, MIGRATE_PFN_ERROR,
  hmm_device_new, hmm_device_put, hmm_devmem_add, symbol_get, symbol_put, __module_get, module_put,
  alloc_page, __free_page, get_page, put_page, lock_page, vm_insert_page, copy_highpage, memcpy_from_page, memcpy_to_page, is_zero_pfn,
  misc_register, misc_deregister, copy_from_user, copy_to_user, get_current, mmgrab, mmdrop, mmget_not_zero, mmput, find_vma,
  hmm_mirror_register, hmm_mirror_unregister, hmm_vma_get_pfns, hmm_vma_range_done, hmm_vma_fault, hmm_vma_alloc_locked_page,
  migrate_vma, migrate_pfn, migrate_pfn_to_page, hmm_pfn_to_page,
  type hmm_device, type hmm_devmem, type hmm_devmem_ops, type hmm_mirror, type hmm_range, type migrate_vma_ops,
  type miscdevice, type file_operations, type file, type inode, type mm_struct, type vm_area_struct, type page,
} from "kemu/kernel";
import {
  HMM_DMIRROR_CMD_SIZE, HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_PROT_ERROR, HMM_DMIRROR_PROT_NONE, HMM_DMIRROR_PROT_READ, HMM_DMIRROR_PROT_WRITE, HMM_DMIRROR_PROT_ZERO,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL, HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE, hmm_dmirror_cmd_bytes, hmm_dmirror_cmd_parse,
} from "./test_hmm_uapi.ts";

MODULE_LICENSE("GPL v2");
MODULE_DESCRIPTION("HMM test module: a device mirror and device private memory (lib/test_hmm.c on the 4.20/5.0 API)");
MODULE_AUTHOR("kemu");

const DMIRROR_NDEVICES = 2;
const DEVMEM_CHUNK_SIZE = 256 * 1024 * 1024;
const DEVMEM_CHUNK_MB = DEVMEM_CHUNK_SIZE / (1024 * 1024);
/** What one fault, snapshot or migrate_vma() call covers (test_hmm's pfns[64], src_pfns[64]). */
const DMIRROR_BATCH = 64;
/** Tries of one range before -EBUSY (test_hmm gives hmm_range_fault() 1 s). */
const DMIRROR_RANGE_RETRIES = 16;
/** A device page table entry: page << 2 | tag; WRITE = 3, read-only = 0. */
const DPT_XA_TAG_WRITE = 3;
/** x86-64 user addresses end below TASK_SIZE_MAX: nothing is mapped from there on. */
const TASK_SIZE_MAX = 2 ** 47 - PAGE_SIZE;

// The driver's hmm_range encoding (dmirror_hmm_flags/values of test_hmm before
// hmm_range_fault() had fixed flags): pfn << PAGE_SHIFT | flags.
const DPT_VALID = 1 << 0;
const DPT_WRITE = 1 << 1;
const DPT_DEVICE_PRIVATE = 1 << 2;
const DPT_ERROR = 0x10;
const DPT_NONE = 0;
const dmirror_hmm_flags = [DPT_VALID, DPT_WRITE, DPT_DEVICE_PRIVATE];
const dmirror_hmm_values = [DPT_ERROR, DPT_NONE, DPT_ERROR];

/** Per device. */
interface DmirrorDevice {
  readonly misc: miscdevice;
  hdev: hmm_device | null;
  /** Its device memory, one hmm_devmem per chunk. */
  readonly chunks: hmm_devmem[];
  /** Free device pages; pop() gives the most recently freed (a list threaded through the pages). */
  readonly free_pages: page[];
}

/** Per open file: a mirror of the opener's address space (file->private_data). */
interface Dmirror {
  readonly mdevice: DmirrorDevice;
  readonly mm: mm_struct;
  /** The device page table: vpfn -> page << 2 | tag. It holds no page references. */
  readonly pt: Map<number, number>;
  mirror: MmMirror | null;
}

/** The hmm_mirror of one mm, shared by the module's open files on that mm. */
interface MmMirror {
  readonly mm: mm_struct;
  readonly mirror: hmm_mirror;
  readonly dmirrors: Dmirror[];
}

/** What a device page carries (test_hmm keeps both in zone_device_data). */
interface DpageData {
  /** The system page that holds the device page's data. */
  readonly rpage: page;
  /** The mirror that migrated it there. */
  dmirror: Dmirror | null;
}

/** A migrate_vma() call's private data. */
interface MigrateCtx {
  readonly mdevice: DmirrorDevice;
  /** To device: the mirror that asked. To system: the mirror that migrated the page there. */
  readonly dmirror: Dmirror | null;
  /** The entries this device's mirrors of the mm had for [start, end] before the call. */
  readonly saved: { dmirror: Dmirror; vpfn: number; entry: number }[];
  /** To system: the src entries that moved (dmirror_successful_migrated_pages). */
  cpages: number;
}

/** The command as the driver works on it: addresses and sizes are page aligned, so exact. */
interface Cmd {
  addr: number;
  ptr: number;
  /** npages << PAGE_SHIFT (in u64: what the range really is). */
  size: number;
  cpages: number;
  faults: number;
}

function dmirror_device(id: number): DmirrorDevice {
  const fops: file_operations = {
    owner: THIS_MODULE,
    open: dmirror_fops_open,
    release: dmirror_fops_release,
    unlocked_ioctl: dmirror_fops_unlocked_ioctl,
    mmap: dmirror_fops_mmap,
  };
  return {
    misc: { minor: MISC_DYNAMIC_MINOR, name: `hmm_dmirror${id}`, fops },
    hdev: null,
    chunks: [],
    free_pages: [],
  };
}

const dmirror_devices: DmirrorDevice[] = [];
const mm_mirrors: MmMirror[] = [];
const dpage_data = new Map<page, DpageData>();
/** Device pages handed out and not yet freed; while there are any the module is pinned. */
let devmem_in_use = 0;

const same_mm = (a: mm_struct, b: mm_struct) => a.handle === b.handle;
const entry_page = (e: number) => Math.floor(e / 4);
const entry_tag = (e: number) => e % 4;
/** The flag bits of an hmm_range entry. */
const dpt_flags = (v: number) => v % (1 << PAGE_SHIFT);

/** The device whose memory `page` is, or null. */
function dmirror_page_to_device(page: page): DmirrorDevice | null {
  for (const mdevice of dmirror_devices) {
    for (const devmem of mdevice.chunks) if (page >= devmem.pfn_first && page < devmem.pfn_last) return mdevice;
  }
  return null;
}

function vma_at(mm: mm_struct, addr: number): vm_area_struct | null {
  if (addr >= TASK_SIZE_MAX) return null;
  const vma = find_vma(mm, addr);
  return vma && vma.vm_start <= addr ? vma : null;
}

// ---- copies between the device and user memory ---------------------------------------------

/** What moves between the device and user memory in one copy. */
const PIECE_PAGES = 64;
const PIECE = PIECE_PAGES * PAGE_SIZE;

/**
 * test_hmm copies through a bounce buffer as big as the command (vmalloc): READ fills it page
 * by page and copies it out once every page is there, WRITE copies the user's data in before
 * the device writes anything. Here the same happens in two passes of 64-page pieces: the
 * device page table is completed first (faulting what is missing), then the data moves, so
 * the driver's memory does not grow with the command.
 */

/** The first page of [start, end) without an entry (without a writable one when `write`), or end. */
function dmirror_missing(dmirror: Dmirror, start: number, end: number, write: boolean): number {
  for (let vpfn = start / PAGE_SIZE; vpfn < end / PAGE_SIZE; vpfn++) {
    const entry = dmirror.pt.get(vpfn);
    if (entry === undefined || (write && entry_tag(entry) !== DPT_XA_TAG_WRITE)) return vpfn * PAGE_SIZE;
  }
  return end;
}

/**
 * Copy what the device sees of [start, end) to user memory at `ptr` (dmirror_do_read and the
 * copy_to_user() of the bounce buffer). Returns where it stopped: end, or the first page whose
 * entry is gone (the copy itself changed the CPU page tables); -EFAULT for a bad buffer.
 */
function dmirror_copy_out(dmirror: Dmirror, start: number, end: number, ptr: number, cmd: Cmd): number {
  const piece = new Uint8Array(Math.min(PIECE, end - start));
  for (let addr = start; addr < end; ) {
    const n = Math.min(PIECE_PAGES, (end - addr) / PAGE_SIZE);
    let k = 0;
    for (; k < n; k++) {
      const entry = dmirror.pt.get(addr / PAGE_SIZE + k);
      if (entry === undefined) break;
      piece.set(memcpy_from_page(entry_page(entry), 0, PAGE_SIZE), k * PAGE_SIZE);
    }
    if (k && copy_to_user(ptr + (addr - start), piece, k * PAGE_SIZE)) return -EFAULT;
    cmd.cpages += k;
    addr += k * PAGE_SIZE;
    if (k < n) return addr;
  }
  return end;
}

/** Can all of [ptr, ptr + size) be copied from? (The bounce buffer's copy_from_user().) */
function dmirror_user_readable(ptr: number, size: number): boolean {
  const piece = new Uint8Array(Math.min(PIECE, size));
  for (let off = 0; off < size; off += PIECE) {
    const n = Math.min(PIECE, size - off);
    if (copy_from_user(piece, ptr + off, n)) return false;
  }
  return true;
}

/**
 * Write the user's data at `ptr` to [start, end) through the device page table
 * (dmirror_do_write). Returns where it stopped: end, or the first page without a writable
 * entry; -EFAULT for a bad buffer.
 */
function dmirror_copy_in(dmirror: Dmirror, start: number, end: number, ptr: number, cmd: Cmd): number {
  const piece = new Uint8Array(Math.min(PIECE, end - start));
  for (let addr = start; addr < end; ) {
    const n = Math.min(PIECE_PAGES, (end - addr) / PAGE_SIZE);
    if (copy_from_user(piece, ptr + (addr - start), n * PAGE_SIZE)) return -EFAULT;
    for (let k = 0; k < n; k++, addr += PAGE_SIZE) {
      const entry = dmirror.pt.get(addr / PAGE_SIZE);
      if (entry === undefined || entry_tag(entry) !== DPT_XA_TAG_WRITE) return addr;
      memcpy_to_page(entry_page(entry), 0, piece.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE));
      cmd.cpages++;
    }
  }
  return end;
}

// ---- device memory ---------------------------------------------------------------------------

function dmirror_devmem_get(): void {
  if (devmem_in_use++ === 0) __module_get(THIS_MODULE);
}

function dmirror_devmem_put(): void {
  if (--devmem_in_use === 0) module_put(THIS_MODULE);
}

/** Add a chunk of device memory and put its pages on the free list. */
function dmirror_allocate_chunk(mdevice: DmirrorDevice): boolean {
  const devmem = hmm_devmem_add(dmirror_devmem_ops, mdevice.hdev!.device, DEVMEM_CHUNK_SIZE);
  if (IS_ERR(devmem)) return false;
  mdevice.chunks.push(devmem);
  const count = mdevice.chunks.length;
  pr_info("added new %u MB chunk (total %u chunks, %u MB) PFNs [0x%lx 0x%lx)\n", DEVMEM_CHUNK_MB, count, count * DEVMEM_CHUNK_MB, devmem.pfn_first, devmem.pfn_last);
  for (let pfn = devmem.pfn_first; pfn < devmem.pfn_last; pfn++) mdevice.free_pages.push(pfn);
  return true;
}

/** A free device page with a backing page (zeroed when `zero`), referenced and locked. */
function dmirror_devmem_alloc_page(mdevice: DmirrorDevice, zero: boolean): page | null {
  // A fake device: its memory is system memory.
  const rpage = alloc_page(zero ? GFP_HIGHUSER | __GFP_ZERO : GFP_HIGHUSER);
  if (rpage === null) return null;
  let dpage = mdevice.free_pages.pop();
  if (dpage === undefined) {
    if (!dmirror_allocate_chunk(mdevice)) {
      __free_page(rpage);
      return null;
    }
    dpage = mdevice.free_pages.pop()!;
  }
  dpage_data.set(dpage, { rpage, dmirror: null });
  dmirror_devmem_get();
  get_page(dpage);
  lock_page(dpage);
  return dpage;
}

/** The page holding a device page's data. */
function backing(dpage: page): page {
  return dpage_data.get(dpage)!.rpage;
}

const dmirror_devmem_ops: hmm_devmem_ops = {
  // The last user of a device page let go: its backing page goes, the page is free again.
  free(_devmem, page) {
    const data = dpage_data.get(page);
    if (!data) return;
    __free_page(data.rpage);
    dpage_data.delete(page);
    dmirror_page_to_device(page)?.free_pages.push(page);
    dmirror_devmem_put();
  },
  // The CPU touched a device page: migrate it back to system memory (dmirror_devmem_fault).
  fault(_devmem, vma, addr, page) {
    if (!vma) return VM_FAULT_SIGBUS;
    const start = addr - (addr % PAGE_SIZE);
    const mdevice = dmirror_page_to_device(page);
    if (!mdevice) return VM_FAULT_SIGBUS;
    const ctx = dmirror_migrate_ctx(vma.vm_mm, mdevice, dpage_data.get(page)?.dmirror ?? null, start, start + PAGE_SIZE);
    fault_src[0] = fault_dst[0] = 0;
    if (migrate_vma(dmirror_devmem_fault_ops, vma, start, start + PAGE_SIZE, fault_src, fault_dst, ctx)) return VM_FAULT_SIGBUS;
    if (fault_dst[0] === MIGRATE_PFN_ERROR) return VM_FAULT_OOM;
    return 0;
  },
};

const fault_src = new Float64Array(1);
const fault_dst = new Float64Array(1);

/**
 * Device -> system, for a CPU fault and for MIGRATE_TO_SYS (dmirror_devmem_fault_alloc_and_copy).
 * Only this device's pages move (MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmap_owner = the device):
 * system memory and other devices' pages stay where they are.
 */
const dmirror_devmem_fault_ops: migrate_vma_ops = {
  alloc_and_copy(vma, src, dst, start, end, priv) {
    const ctx = priv as MigrateCtx;
    const done = new Set<number>();
    for (let i = 0, addr = start; addr < end; i++, addr += PAGE_SIZE) {
      const s = src[i]!;
      const spage = migrate_pfn_to_page(s);
      if (spage === null || !(s & MIGRATE_PFN_MIGRATE) || !(s & MIGRATE_PFN_DEVICE)) continue;
      if (dmirror_page_to_device(spage) !== ctx.mdevice) continue;
      const data = dpage_data.get(spage);
      if (!data) continue;
      const dpage = hmm_vma_alloc_locked_page(vma, addr);
      // No system page: the page stays on the device. A CPU fault reports it (VM_FAULT_OOM);
      // MIGRATE_TO_SYS does not count it.
      if (dpage === null) {
        dst[i] = MIGRATE_PFN_ERROR;
        continue;
      }
      data.dmirror?.pt.delete(addr / PAGE_SIZE);
      done.add(addr / PAGE_SIZE);
      copy_highpage(dpage, data.rpage);
      dst[i] = migrate_pfn(dpage) + MIGRATE_PFN_LOCKED + (s & MIGRATE_PFN_WRITE ? MIGRATE_PFN_WRITE : 0);
    }
    // The invalidation of migrate_vma()'s collect step is over (no hole is filled later on
    // this path): the entries of the pages that stay on the device come back now.
    dmirror_migrate_restore(ctx, done);
  },
  // No device finalize step is needed: alloc_and_copy() has updated the device page tables.
  // This is where 5.0 calls back between migrate_vma_pages() and migrate_vma_finalize(): the
  // entries that still say MIGRATE moved.
  finalize_and_map(_vma, src, _dst, start, end, priv) {
    const ctx = priv as MigrateCtx;
    for (let i = 0; i < (end - start) / PAGE_SIZE; i++) {
      if (src[i]! & MIGRATE_PFN_VALID && src[i]! & MIGRATE_PFN_MIGRATE) ctx.cpages++;
    }
  },
};

// ---- mirror ----------------------------------------------------------------------------------

/** Erase [start >> PAGE_SHIFT, end >> PAGE_SHIFT] (inclusive, as xa_for_each_range()). */
function dmirror_do_update(dmirror: Dmirror, start: number, end: number): void {
  const first = Math.floor(start / PAGE_SIZE);
  const last = Math.floor(end / PAGE_SIZE);
  const pt = dmirror.pt;
  if (last - first >= pt.size) {
    for (const vpfn of pt.keys()) if (vpfn >= first && vpfn <= last) pt.delete(vpfn);
  } else {
    for (let vpfn = first; vpfn <= last; vpfn++) pt.delete(vpfn);
  }
}

function mm_mirror_new(mm: mm_struct): MmMirror {
  const dmirrors: Dmirror[] = [];
  const mirror: hmm_mirror = {
    ops: {
      // The CPU page tables change: every device forgets what it mirrored there.
      sync_cpu_device_pagetables(_mirror, update) {
        const u = update as { start: number; end: number };
        for (const dmirror of dmirrors) dmirror_do_update(dmirror, u.start, u.end);
        return 0;
      },
      // The address space goes away.
      release() {
        for (const dmirror of dmirrors) dmirror.pt.clear();
      },
    },
  };
  return { mm, mirror, dmirrors };
}

/** Mirror the dmirror's mm: the mm's mirror, registered with its first file. */
function dmirror_mirror_add(dmirror: Dmirror): number {
  let m = mm_mirrors.find((x) => same_mm(x.mm, dmirror.mm));
  if (!m) {
    m = mm_mirror_new(dmirror.mm);
    const ret = hmm_mirror_register(m.mirror, dmirror.mm);
    if (ret) return ret;
    mm_mirrors.push(m);
  }
  m.dmirrors.push(dmirror);
  dmirror.mirror = m;
  return 0;
}

function dmirror_mirror_del(dmirror: Dmirror): void {
  const m = dmirror.mirror;
  if (!m) return;
  dmirror.mirror = null;
  m.dmirrors.splice(m.dmirrors.indexOf(dmirror), 1);
  if (m.dmirrors.length) return;
  mm_mirrors.splice(mm_mirrors.indexOf(m), 1);
  hmm_mirror_unregister(m.mirror);
}

// ---- file operations -------------------------------------------------------------------------

function dmirror_fops_open(_inode: inode, filp: file): number {
  // misc_open() left the miscdevice in private_data.
  const mdevice = dmirror_devices.find((d) => d.misc === filp.private_data);
  if (!mdevice) return -ENODEV;
  // Mirror this process address space
  const mm = get_current().mm;
  if (!mm) return -EINVAL;
  const dmirror: Dmirror = { mdevice, mm, pt: new Map(), mirror: null };
  const ret = dmirror_mirror_add(dmirror);
  if (ret) return ret;
  // Pairs with the mmdrop() in dmirror_fops_release().
  mmgrab(mm);
  filp.private_data = dmirror;
  return 0;
}

function dmirror_fops_release(_inode: inode, filp: file): number {
  const dmirror = filp.private_data as Dmirror;
  dmirror_mirror_del(dmirror);
  mmdrop(dmirror.mm);
  dmirror.pt.clear();
  return 0;
}

/** Every page of the mapping is a zeroed kernel page of its own (VM_MIXEDMAP). */
function dmirror_fops_mmap(_filp: file, vma: vm_area_struct): number {
  for (let addr = vma.vm_start; addr < vma.vm_end; addr += PAGE_SIZE) {
    const page = alloc_page(GFP_KERNEL | __GFP_ZERO);
    if (page === null) return -ENOMEM;
    const ret = vm_insert_page(vma, addr, page);
    if (ret) {
      __free_page(page);
      return ret;
    }
    // The mapping holds its own reference now.
    put_page(page);
  }
  return 0;
}

// ---- faults: READ and WRITE ------------------------------------------------------------------

function dmirror_range(vma: vm_area_struct, start: number, end: number, pfns: Float64Array): hmm_range {
  return { vma, start, end, pfns, flags: dmirror_hmm_flags, values: dmirror_hmm_values, pfn_shift: PAGE_SHIFT };
}

/** Store what a fault made valid in the device page table (dmirror_do_fault). */
function dmirror_do_fault(dmirror: Dmirror, range: hmm_range, write: boolean): number {
  for (let i = 0, vpfn = range.start / PAGE_SIZE; vpfn < range.end / PAGE_SIZE; i++, vpfn++) {
    const v = range.pfns[i]!;
    let page = hmm_pfn_to_page(range, v);
    // The fault asked for every page: none may come back invalid.
    if (page === null) return -EFAULT;
    const flags = dpt_flags(v);
    // This device's own memory: the device reaches the data in its backing page.
    if (flags & DPT_DEVICE_PRIVATE) page = backing(page);
    if (!(flags & DPT_WRITE) && write) return -EFAULT;
    dmirror.pt.set(vpfn, page * 4 + (flags & DPT_WRITE ? DPT_XA_TAG_WRITE : 0));
  }
  return 0;
}

/** Fault [start, end) of one vma for the device (dmirror_range_fault). */
function dmirror_range_fault(dmirror: Dmirror, vma: vm_area_struct, start: number, end: number, write: boolean): number {
  const n = (end - start) / PAGE_SIZE;
  const req = DPT_VALID | (write ? DPT_WRITE : 0);
  const reqs = new Float64Array(n).fill(req);
  for (let tries = 0; tries < DMIRROR_RANGE_RETRIES; tries++) {
    const range = dmirror_range(vma, start, end, reqs.slice());
    const ret = hmm_vma_fault(range, true);
    if (ret === -EBUSY || ret === -EAGAIN) continue;
    if (ret) return ret;
    // Another device's memory is faulted back to system memory, as for a page of another
    // dev_private_owner: ask again for those pages, with HMM_PFN_DEVICE_PRIVATE.
    let again = false;
    for (let i = 0; i < n; i++) {
      const v = range.pfns[i]!;
      if (!(dpt_flags(v) & DPT_DEVICE_PRIVATE) || reqs[i]! & DPT_DEVICE_PRIVATE) continue;
      if (dmirror_page_to_device(hmm_pfn_to_page(range, v)!) === dmirror.mdevice) continue;
      reqs[i] = req | DPT_DEVICE_PRIVATE;
      again = true;
    }
    // An invalidation hit the range while it was faulted: fault it again.
    if (!hmm_vma_range_done(range) || again) continue;
    return dmirror_do_fault(dmirror, range, write);
  }
  return -EBUSY;
}

/** Fault [start, end) for the device, 64 pages and one vma at a time (dmirror_fault). */
function dmirror_fault(dmirror: Dmirror, start: number, end: number, write: boolean): number {
  const mm = dmirror.mm;
  // The mm is the opener's: pin it first.
  if (!mmget_not_zero(mm)) return -EINVAL;
  let ret = 0;
  for (let addr = start; addr < end && !ret; ) {
    const next = Math.min(addr + DMIRROR_BATCH * PAGE_SIZE, end);
    for (; addr < next; ) {
      const vma = vma_at(mm, addr);
      if (!vma) {
        ret = -EFAULT;
        break;
      }
      // hmm_vma_fault() would fault for write forever on a read-only vma.
      if (write && !(vma.vm_flags & VM_WRITE)) {
        ret = -EPERM;
        break;
      }
      const e = Math.min(next, vma.vm_end);
      ret = dmirror_range_fault(dmirror, vma, addr, e, write);
      if (ret) break;
      addr = e;
    }
  }
  mmput(mm);
  return ret;
}

/** Fault until the device page table has every page of [start, end) (writable when `write`). */
function dmirror_fault_all(dmirror: Dmirror, start: number, end: number, write: boolean, cmd: Cmd): number {
  for (let from = start; ; ) {
    const missing = dmirror_missing(dmirror, from, end, write);
    if (missing === end) return 0;
    const ret = dmirror_fault(dmirror, missing, end, write);
    if (ret) return ret;
    cmd.faults++;
    from = missing;
  }
}

function dmirror_read(dmirror: Dmirror, cmd: Cmd): number {
  const end = cmd.addr + cmd.size;
  for (let start = cmd.addr; start < end; ) {
    const ret = dmirror_fault_all(dmirror, start, end, false, cmd);
    if (ret) return ret;
    start = dmirror_copy_out(dmirror, start, end, cmd.ptr + (start - cmd.addr), cmd);
    if (start < 0) return start;
  }
  return 0;
}

function dmirror_write(dmirror: Dmirror, cmd: Cmd): number {
  const end = cmd.addr + cmd.size;
  if (!dmirror_user_readable(cmd.ptr, cmd.size)) return -EFAULT;
  for (let start = cmd.addr; start < end; ) {
    const ret = dmirror_fault_all(dmirror, start, end, true, cmd);
    if (ret) return ret;
    start = dmirror_copy_in(dmirror, start, end, cmd.ptr + (start - cmd.addr), cmd);
    if (start < 0) return start;
  }
  return 0;
}

// ---- MIGRATE_TO_DEV and MIGRATE_TO_SYS -------------------------------------------------------

/**
 * Remember the entries this device's mirrors of `mm` have for [start >> PAGE_SHIFT,
 * end >> PAGE_SHIFT]: migrate_vma()'s invalidations erase them, and those of pages that do not
 * move are still right afterwards (test_hmm ignores its own migrations' invalidations).
 */
function dmirror_migrate_ctx(mm: mm_struct, mdevice: DmirrorDevice, dmirror: Dmirror | null, start: number, end: number): MigrateCtx {
  const saved: MigrateCtx["saved"] = [];
  const m = mm_mirrors.find((x) => same_mm(x.mm, mm));
  for (const d of m ? m.dmirrors : []) {
    if (d.mdevice !== mdevice) continue;
    for (let vpfn = start / PAGE_SIZE; vpfn <= end / PAGE_SIZE; vpfn++) {
      const entry = d.pt.get(vpfn);
      if (entry !== undefined) saved.push({ dmirror: d, vpfn, entry });
    }
  }
  return { mdevice, dmirror, saved, cpages: 0 };
}

/** Put back the remembered entries, except those of pages that moved. */
function dmirror_migrate_restore(ctx: MigrateCtx, moved: Set<number>): void {
  for (const s of ctx.saved) if (!moved.has(s.vpfn) && s.dmirror.mirror) s.dmirror.pt.set(s.vpfn, s.entry);
}

/** The vpfns whose page migrate_vma() moved: src still says MIGRATE and dst has a page. */
function moved(src: Float64Array, dst: Float64Array, start: number, end: number): Set<number> {
  const out = new Set<number>();
  for (let i = 0, addr = start; addr < end; i++, addr += PAGE_SIZE) {
    if (src[i]! & MIGRATE_PFN_MIGRATE && migrate_pfn_to_page(dst[i]!) !== null) out.add(addr / PAGE_SIZE);
  }
  return out;
}

/** System -> device (dmirror_migrate_alloc_and_copy, dmirror_migrate_finalize_and_map). */
const dmirror_migrate_ops: migrate_vma_ops = {
  alloc_and_copy(vma, src, dst, start, end, priv) {
    const ctx = priv as MigrateCtx;
    for (let i = 0, addr = start; addr < end; i++, addr += PAGE_SIZE) {
      const s = src[i]!;
      if (!(s & MIGRATE_PFN_MIGRATE)) continue;
      // System memory only (MIGRATE_VMA_SELECT_SYSTEM): device pages stay where they are.
      if (s & MIGRATE_PFN_DEVICE) continue;
      // No page for pte_none() and the read-only zero page: the device page starts zeroed.
      const spage = migrate_pfn_to_page(s);
      const dpage = dmirror_devmem_alloc_page(ctx.mdevice, spage === null);
      if (dpage === null) continue;
      const data = dpage_data.get(dpage)!;
      if (spage !== null) copy_highpage(data.rpage, spage);
      data.dmirror = ctx.dmirror;
      let d = migrate_pfn(dpage) + MIGRATE_PFN_LOCKED + MIGRATE_PFN_DEVICE;
      if (s & MIGRATE_PFN_WRITE || (spage === null && vma.vm_flags & VM_WRITE)) d += MIGRATE_PFN_WRITE;
      dst[i] = d;
    }
  },
  // Map the migrated pages into the device's page table: the page that holds the data.
  finalize_and_map(_vma, src, dst, start, end, priv) {
    const ctx = priv as MigrateCtx;
    const done = moved(src, dst, start, end);
    for (let i = 0, addr = start; addr < end; i++, addr += PAGE_SIZE) {
      if (!done.has(addr / PAGE_SIZE)) continue;
      const d = dst[i]!;
      ctx.dmirror!.pt.set(addr / PAGE_SIZE, backing(migrate_pfn_to_page(d)!) * 4 + (d & MIGRATE_PFN_WRITE ? DPT_XA_TAG_WRITE : 0));
    }
    dmirror_migrate_restore(ctx, done);
  },
};

const migrate_src = new Float64Array(DMIRROR_BATCH);
const migrate_dst = new Float64Array(DMIRROR_BATCH);

function dmirror_migrate_to_device(dmirror: Dmirror, cmd: Cmd): number {
  const mm = dmirror.mm;
  const end = cmd.addr + cmd.size;
  // Since the mm is for the mirrored process, get a reference first.
  if (!mmget_not_zero(mm)) return -EINVAL;
  for (let addr = cmd.addr, next: number; addr < end; addr = next) {
    const vma = vma_at(mm, addr);
    if (!vma || !(vma.vm_flags & VM_READ)) {
      mmput(mm);
      return -EINVAL;
    }
    next = Math.min(end, addr + DMIRROR_BATCH * PAGE_SIZE, vma.vm_end);
    const ctx = dmirror_migrate_ctx(mm, dmirror.mdevice, dmirror, addr, next);
    const ret = migrate_vma(dmirror_migrate_ops, vma, addr, next, migrate_src, migrate_dst, ctx);
    if (ret) {
      mmput(mm);
      return ret;
    }
  }
  mmput(mm);
  // Return the migrated data for verification: -ENOENT when a page is not on the device's
  // page table (it could not be migrated).
  if (dmirror_missing(dmirror, cmd.addr, end, false) !== end) return -ENOENT;
  const ret = dmirror_copy_out(dmirror, cmd.addr, end, cmd.ptr, cmd);
  if (ret < 0) return ret;
  return ret === end ? 0 : -ENOENT;
}

/** Migrate this device's pages in the range back to system memory (dmirror_migrate_to_system). */
function dmirror_migrate_to_system(dmirror: Dmirror, cmd: Cmd): number {
  const mm = dmirror.mm;
  const end = cmd.addr + cmd.size;
  // Since the mm is for the mirrored process, get a reference first.
  if (!mmget_not_zero(mm)) return -EINVAL;
  let ret = 0;
  for (let addr = cmd.addr, next: number; addr < end; addr = next) {
    const vma = vma_at(mm, addr);
    if (!vma || !(vma.vm_flags & VM_READ)) {
      ret = -EINVAL;
      break;
    }
    next = Math.min(end, addr + DMIRROR_BATCH * PAGE_SIZE, vma.vm_end);
    const ctx = dmirror_migrate_ctx(mm, dmirror.mdevice, dmirror, addr, next);
    ret = migrate_vma(dmirror_devmem_fault_ops, vma, addr, next, migrate_src, migrate_dst, ctx);
    if (ret) break;
    cmd.cpages += ctx.cpages;
  }
  mmput(mm);
  return ret;
}

// ---- SNAPSHOT --------------------------------------------------------------------------------

/** One page's snapshot byte (dmirror_mkentry). */
function dmirror_mkentry(dmirror: Dmirror, range: hmm_range, v: number): number {
  if (v === DPT_ERROR) return HMM_DMIRROR_PROT_ERROR;
  const flags = dpt_flags(v);
  if (!(flags & DPT_VALID)) return HMM_DMIRROR_PROT_NONE;
  const page = hmm_pfn_to_page(range, v)!;
  let perm: number;
  if (flags & DPT_DEVICE_PRIVATE) {
    // Is the page migrated to this device or some other?
    perm = dmirror_page_to_device(page) === dmirror.mdevice ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL : HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
  } else if (is_zero_pfn(page)) {
    perm = HMM_DMIRROR_PROT_ZERO;
  } else {
    perm = HMM_DMIRROR_PROT_NONE;
  }
  return perm | (flags & DPT_WRITE ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ);
}

/** Snapshot [start, end) of one vma into perm[at..]. */
function dmirror_vma_snapshot(dmirror: Dmirror, vma: vm_area_struct, start: number, end: number, perm: Uint8Array, at: number): number {
  const n = (end - start) / PAGE_SIZE;
  for (let tries = 0; tries < DMIRROR_RANGE_RETRIES; tries++) {
    const range = dmirror_range(vma, start, end, new Float64Array(n));
    // No VM_READ (-EPERM), hugetlb or VM_SPECIAL (-EINVAL): no valid mirror PTE for any page.
    if (hmm_vma_get_pfns(range)) {
      perm.fill(HMM_DMIRROR_PROT_ERROR, at, at + n);
      return 0;
    }
    if (!hmm_vma_range_done(range)) continue;
    for (let i = 0; i < n; i++) perm[at + i] = dmirror_mkentry(dmirror, range, range.pfns[i]!);
    return 0;
  }
  return -EBUSY;
}

/** Snapshot [start, end) (at most 64 pages) into perm (dmirror_range_snapshot). */
function dmirror_range_snapshot(dmirror: Dmirror, start: number, end: number, perm: Uint8Array): number {
  for (let addr = start; addr < end; ) {
    const vma = addr < TASK_SIZE_MAX ? find_vma(dmirror.mm, addr) : null;
    const at = (addr - start) / PAGE_SIZE;
    // No vma: an error, as hmm_range_fault() reports a hole without one.
    if (!vma || vma.vm_start >= end) {
      perm.fill(HMM_DMIRROR_PROT_ERROR, at, (end - start) / PAGE_SIZE);
      return 0;
    }
    if (vma.vm_start > addr) {
      perm.fill(HMM_DMIRROR_PROT_ERROR, at, (vma.vm_start - start) / PAGE_SIZE);
      addr = vma.vm_start;
      continue;
    }
    const e = Math.min(end, vma.vm_end);
    const ret = dmirror_vma_snapshot(dmirror, vma, addr, e, perm, at);
    if (ret) return ret;
    addr = e;
  }
  return 0;
}

function dmirror_snapshot(dmirror: Dmirror, cmd: Cmd): number {
  const mm = dmirror.mm;
  const end = cmd.addr + cmd.size;
  const perm = new Uint8Array(DMIRROR_BATCH);
  let uptr = cmd.ptr;
  let ret = 0;
  // Since the mm is for the mirrored process, get a reference first.
  if (!mmget_not_zero(mm)) return -EINVAL;
  for (let addr = cmd.addr, next: number; addr < end; addr = next) {
    next = Math.min(addr + DMIRROR_BATCH * PAGE_SIZE, end);
    ret = dmirror_range_snapshot(dmirror, addr, next, perm);
    if (ret) break;
    const n = (next - addr) / PAGE_SIZE;
    if (copy_to_user(uptr, perm, n)) {
      ret = -EFAULT;
      break;
    }
    cmd.cpages += n;
    uptr += n;
  }
  mmput(mm);
  return ret;
}

// ---- ioctl -----------------------------------------------------------------------------------

/** A user pointer as a number: one past 2^52 is as unreachable as the u64 it stands for. */
function user_ptr(p: bigint): number {
  return p < 2n ** 52n ? Number(p) : 2 ** 52;
}

function dmirror_fops_unlocked_ioctl(filp: file, command: number, arg: number): number {
  const dmirror = filp.private_data as Dmirror | null;
  if (!dmirror) return -EINVAL;
  const buf = new Uint8Array(HMM_DMIRROR_CMD_SIZE);
  if (copy_from_user(buf, arg, HMM_DMIRROR_CMD_SIZE)) return -EFAULT;
  const u = hmm_dmirror_cmd_parse(buf);
  // u64 arithmetic: npages << PAGE_SHIFT and addr + size wrap.
  const size = BigInt.asUintN(64, u.npages << BigInt(PAGE_SHIFT));
  if (u.addr & BigInt(PAGE_SIZE - 1)) return -EINVAL;
  if (u.addr >= BigInt.asUintN(64, u.addr + size)) return -EINVAL;
  // Page aligned and below 2^64: exact as numbers.
  const cmd: Cmd = { addr: Number(u.addr), ptr: user_ptr(u.ptr), size: Number(size), cpages: 0, faults: 0 };
  let ret: number;
  switch (command) {
    case HMM_DMIRROR_READ:
      ret = dmirror_read(dmirror, cmd);
      break;
    case HMM_DMIRROR_WRITE:
      ret = dmirror_write(dmirror, cmd);
      break;
    case HMM_DMIRROR_MIGRATE_TO_DEV:
      ret = dmirror_migrate_to_device(dmirror, cmd);
      break;
    case HMM_DMIRROR_MIGRATE_TO_SYS:
      ret = dmirror_migrate_to_system(dmirror, cmd);
      break;
    case HMM_DMIRROR_SNAPSHOT:
      ret = dmirror_snapshot(dmirror, cmd);
      break;
    default:
      return -EINVAL;
  }
  if (ret) return ret;
  u.cpages = BigInt(cmd.cpages);
  u.faults = BigInt(cmd.faults);
  if (copy_to_user(arg, hmm_dmirror_cmd_bytes(u), HMM_DMIRROR_CMD_SIZE)) return -EFAULT;
  return 0;
}

// ---- init and exit ---------------------------------------------------------------------------

function dmirror_device_init(mdevice: DmirrorDevice): number {
  const hdev = hmm_device_new(mdevice);
  if (IS_ERR(hdev)) return PTR_ERR(hdev);
  mdevice.hdev = hdev;
  const ret = misc_register(mdevice.misc);
  if (ret) {
    hmm_device_put(hdev);
    mdevice.hdev = null;
    return ret;
  }
  // Build a list of free ZONE_DEVICE private struct pages
  dmirror_allocate_chunk(mdevice);
  return 0;
}

function dmirror_device_remove(mdevice: DmirrorDevice): void {
  misc_deregister(mdevice.misc);
  // 4.19/4.20: device memory is given back before its device goes; 5.0 has no
  // hmm_devmem_remove() (the memory goes with the device's devres).
  const remove = symbol_get("hmm_devmem_remove");
  if (remove) {
    for (const devmem of mdevice.chunks) remove(devmem);
    symbol_put("hmm_devmem_remove");
  }
  mdevice.chunks.length = 0;
  mdevice.free_pages.length = 0;
  if (mdevice.hdev) hmm_device_put(mdevice.hdev);
  mdevice.hdev = null;
}

module_init(() => {
  let id = 0;
  let ret = 0;
  for (; id < DMIRROR_NDEVICES; id++) {
    dmirror_devices[id] = dmirror_device(id);
    ret = dmirror_device_init(dmirror_devices[id]!);
    if (ret) break;
  }
  if (ret) {
    while (--id >= 0) dmirror_device_remove(dmirror_devices[id]!);
    dmirror_devices.length = 0;
    return ret;
  }
  pr_info("HMM test module loaded. This is only for testing HMM.\n");
  return 0;
});

module_exit(() => {
  for (const mdevice of dmirror_devices) dmirror_device_remove(mdevice);
  dmirror_devices.length = 0;
});
