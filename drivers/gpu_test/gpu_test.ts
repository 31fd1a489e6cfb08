// gpu_test: a GPU-like test driver for HMM as 4.20 and 5.0 have it, in the manner of
// lib/test_hmm.c (which came later, for the 5.7 API).
//
// The "GPU" has VRAM: device-private memory registered with hmm_devmem_add(), whose struct
// pages the kernel knows but the CPU cannot reach. As in test_hmm, the contents of each VRAM
// page live in a backing system page the driver allocates (in 2 MiB chunks, kept for the
// module's life). /dev/gpu_test (a misc device) takes ioctls on a struct gpu_test_cmd in the
// calling process's memory (test_hmm's struct hmm_dmirror_cmd; gpu_test_uapi.ts):
//
//   GPU_TEST_MIGRATE  migrate [addr, addr + npages pages) into VRAM with migrate_vma(), in
//                     batches of 512 pages within one vma; cpages = pages moved
//   GPU_TEST_READ     read the range through the device's mirror of the process's page
//                     tables (hmm_vma_fault()) into the buffer at ptr; faults = walks made
//   GPU_TEST_SNAPSHOT one byte per page at ptr: what the CPU page table holds
//                     (hmm_vma_get_pfns()), encoded as test_hmm's HMM_DMIRROR_PROT_*
//   GPU_TEST_MIRRORED the number of entries in the device page table (the return value)
//
// A CPU access to a page in VRAM faults; hmm_devmem_ops.fault migrates it back to a system
// page (migrate_vma() from device to system), and when the kernel drops the last reference
// to the VRAM page, hmm_devmem_ops.free puts it back on the free list.
//
// Each open file keeps the mm of the process that opened it (mmgrab, as test_hmm's
// interval notifier does), and registers its mirror on that mm at the first READ or
// SNAPSHOT. An open file holds a module reference (fops.owner), and so does VRAM in use: the
// module cannot be removed while a process has pages in VRAM (they would fault into a driver
// that is gone); rmmod says it is in use until they are freed.

import {
  MODULE_LICENSE, MODULE_DESCRIPTION, MODULE_AUTHOR, module_init, module_exit, THIS_MODULE,
  printk, KERN_INFO, IS_ERR, PTR_ERR, GFP_HIGHUSER, PAGE_SIZE,
  EFAULT, EINVAL, ENOTTY, EBUSY, MISC_DYNAMIC_MINOR, VM_READ, VM_FAULT_SIGBUS,
  MIGRATE_PFN_MIGRATE, MIGRATE_PFN_LOCKED, MIGRATE_PFN_DEVICE, MIGRATE_PFN_WRITE, MIGRATE_PFN_ERROR,
  hmm_device_new, hmm_device_put, hmm_devmem_add, symbol_get, symbol_put,
  alloc_pages, __free_pages, get_page, lock_page, copy_highpage, memcpy_from_page, __module_get, module_put,
  misc_register, misc_deregister, copy_from_user, copy_to_user, get_current, mmgrab, mmdrop, find_vma,
  hmm_mirror_register, hmm_mirror_unregister, hmm_vma_get_pfns, hmm_vma_range_done, hmm_vma_fault,
  hmm_vma_alloc_locked_page, migrate_vma, migrate_pfn, migrate_pfn_to_page, hmm_pfn_to_page,
  type hmm_device, type hmm_devmem, type hmm_devmem_ops, type hmm_mirror, type hmm_range,
  type migrate_vma_ops, type miscdevice, type file, type inode, type mm_struct, type vm_area_struct,
  type page,
} from "kemu/kernel";

MODULE_LICENSE("GPL v2");
MODULE_DESCRIPTION("a GPU-like HMM test device: VRAM, migration, a mirror");
MODULE_AUTHOR("kemu");

import {
  GPU_TEST_CMD_SIZE as CMD_SIZE, GPU_TEST_MIGRATE, GPU_TEST_MIRRORED, GPU_TEST_READ, GPU_TEST_SNAPSHOT,
  GPU_TEST_PROT_DEV_PRIVATE_LOCAL as PROT_DEV_PRIVATE_LOCAL, GPU_TEST_PROT_ERROR as PROT_ERROR, GPU_TEST_PROT_NONE as PROT_NONE,
  GPU_TEST_PROT_READ as PROT_READ, GPU_TEST_PROT_WRITE as PROT_WRITE, gpu_test_cmd_bytes, gpu_test_cmd_parse, type GpuTestCmd as Cmd,
} from "./gpu_test_uapi.ts";

/** 128 MiB of VRAM (one memory section), 32768 pages. */
const VRAM_SIZE = 128 << 20;
/** Backing memory comes in chunks of 2 MiB (an order-9 allocation). */
const CHUNK_ORDER = 9;
const CHUNK_PAGES = 1 << CHUNK_ORDER;
/** migrate_vma() batch: what one src[]/dst[] pair covers. */
const BATCH = 512;

let hdev: hmm_device | null = null;
let vram: hmm_devmem | null = null;
/** Free VRAM pages; pop() takes the lowest. */
const freeList: page[] = [];
/** Backing system pages: chunk index -> first pfn of its order-9 block. */
const chunks: (page | undefined)[] = [];
/** VRAM pages handed out and not yet freed; while any are, the module holds a reference. */
let inUse = 0;

function backing(dpage: page): page {
  const i = dpage - vram!.pfn_first;
  return chunks[Math.floor(i / CHUNK_PAGES)]! + (i % CHUNK_PAGES);
}

/** A VRAM page, referenced and locked (nouveau_dmem_page_alloc_locked), or null. */
function vram_alloc(): page | null {
  const dpage = freeList.pop();
  if (dpage === undefined) return null;
  const c = Math.floor((dpage - vram!.pfn_first) / CHUNK_PAGES);
  if (chunks[c] === undefined) {
    const base = alloc_pages(GFP_HIGHUSER, CHUNK_ORDER);
    if (base === null) {
      freeList.push(dpage);
      return null;
    }
    chunks[c] = base;
  }
  if (inUse++ === 0) __module_get(THIS_MODULE);
  get_page(dpage);
  lock_page(dpage);
  return dpage;
}

const vram_ops: hmm_devmem_ops = {
  // The last reference to a VRAM page went: it is free again.
  free(_devmem, dpage) {
    freeList.push(dpage);
    if (--inUse === 0) module_put(THIS_MODULE);
  },
  // The CPU touched a page in VRAM: migrate it back (nouveau_dmem_fault).
  fault(_devmem, vma, addr) {
    if (!vma) return VM_FAULT_SIGBUS;
    faultSrc[0] = faultDst[0] = 0;
    const rc = migrate_vma(to_system_ops, vma, addr, addr + PAGE_SIZE, faultSrc, faultDst, null);
    if (rc || faultDst[0] === MIGRATE_PFN_ERROR) return VM_FAULT_SIGBUS;
    return 0;
  },
};

const faultSrc = new Float64Array(1);
const faultDst = new Float64Array(1);

const to_system_ops: migrate_vma_ops = {
  alloc_and_copy(vma, src, dst, start, end) {
    for (let i = 0, addr = start; addr < end; i++, addr += PAGE_SIZE) {
      const spage = migrate_pfn_to_page(src[i]!);
      if (spage === null || !(src[i]! & MIGRATE_PFN_MIGRATE)) continue;
      const dpage = hmm_vma_alloc_locked_page(vma, addr);
      if (dpage === null) {
        dst[i] = MIGRATE_PFN_ERROR;
        continue;
      }
      copy_highpage(dpage, backing(spage));
      dst[i] = migrate_pfn(dpage) + MIGRATE_PFN_LOCKED;
    }
  },
  finalize_and_map() {},
};

const to_device_ops: migrate_vma_ops = {
  alloc_and_copy(_vma, src, dst, start, end) {
    for (let i = 0, addr = start; addr < end; i++, addr += PAGE_SIZE) {
      const spage = migrate_pfn_to_page(src[i]!);
      // Holes and the zero page are left where they are (nouveau does the same).
      if (spage === null || !(src[i]! & MIGRATE_PFN_MIGRATE)) continue;
      const dpage = vram_alloc();
      if (dpage === null) continue;
      copy_highpage(backing(dpage), spage);
      dst[i] = migrate_pfn(dpage) + MIGRATE_PFN_LOCKED + MIGRATE_PFN_DEVICE + (src[i]! & MIGRATE_PFN_WRITE);
    }
  },
  finalize_and_map() {},
};

/** What one open file of /dev/gpu_test keeps (file->private_data). */
interface Gpu {
  mm: mm_struct;
  mirror: hmm_mirror | null;
  /** The device page table: virtual page -> pfn (system or VRAM) it mirrors. */
  table: Map<number, page>;
}

function gpu_open(_inode: inode, filp: file): number {
  const mm = get_current().mm;
  if (!mm) return -EINVAL;
  mmgrab(mm);
  const gpu: Gpu = { mm, mirror: null, table: new Map() };
  filp.private_data = gpu;
  return 0;
}

function gpu_release(_inode: inode, filp: file): number {
  const gpu = filp.private_data as Gpu;
  if (gpu.mirror) hmm_mirror_unregister(gpu.mirror);
  gpu.mirror = null;
  mmdrop(gpu.mm);
  return 0;
}

/** The mirror of the opener's address space, registered on first use. */
function gpu_mirror(gpu: Gpu): number {
  if (gpu.mirror) return 0;
  const mirror: hmm_mirror = {
    ops: {
      // The CPU page tables change in [start, end): the device forgets what it mirrored there.
      sync_cpu_device_pagetables(_m, update) {
        const u = update as { start: number; end: number };
        for (const vpfn of [...gpu.table.keys()]) if (vpfn * PAGE_SIZE >= u.start && vpfn * PAGE_SIZE < u.end) gpu.table.delete(vpfn);
        return 0;
      },
      // The address space is going away.
      release() {
        gpu.table.clear();
      },
    },
  };
  const rc = hmm_mirror_register(mirror, gpu.mm);
  if (rc) return rc;
  gpu.mirror = mirror;
  return 0;
}

function cmd_in(arg: number): Cmd | number {
  const buf = new Uint8Array(CMD_SIZE);
  if (copy_from_user(buf, arg, CMD_SIZE)) return -EFAULT;
  const cmd = gpu_test_cmd_parse(buf);
  cmd.cpages = cmd.faults = 0;
  if (cmd.addr % PAGE_SIZE) return -EINVAL;
  if (cmd.npages === 0 || cmd.addr + cmd.npages * PAGE_SIZE > 2 ** 47) return -EINVAL;
  return cmd;
}

function cmd_out(arg: number, cmd: Cmd): number {
  return copy_to_user(arg, gpu_test_cmd_bytes(cmd), CMD_SIZE) ? -EFAULT : 0;
}

const migSrc = new Float64Array(BATCH);
const migDst = new Float64Array(BATCH);

/** GPU_TEST_MIGRATE: system memory -> VRAM, 512 pages at a time within one vma. */
function gpu_migrate(gpu: Gpu, cmd: Cmd): number {
  const end = cmd.addr + cmd.npages * PAGE_SIZE;
  for (let start = cmd.addr; start < end; ) {
    const vma = find_vma(gpu.mm, start);
    if (!vma || vma.vm_start > start || !(vma.vm_flags & VM_READ)) return -EINVAL;
    const next = Math.min(end, vma.vm_end, start + BATCH * PAGE_SIZE);
    const rc = migrate_vma(to_device_ops, vma, start, next, migSrc, migDst, null);
    if (rc) return rc;
    const n = (next - start) / PAGE_SIZE;
    for (let i = 0; i < n; i++) if (migSrc[i]! & MIGRATE_PFN_MIGRATE && migrate_pfn_to_page(migDst[i]!) !== null) cmd.cpages++;
    start = next;
  }
  return 0;
}

/** The range a READ or SNAPSHOT walks: one vma's part of [start, end). */
function range_of(vma: vm_area_struct, start: number, end: number, fill: number): hmm_range {
  const npages = (end - start) / PAGE_SIZE;
  return {
    vma,
    start,
    end,
    pfns: new Float64Array(npages).fill(fill),
    // pfn << 3 | flags: VALID 1, WRITE 2, DEVICE_PRIVATE 4 (nouveau's encoding)
    flags: [1, 2, 4],
    values: [0xfffffffe, 0, 0xfffffffc],
    pfn_shift: 3,
  };
}

/** GPU_TEST_READ: the device reads the range through its mirror (dmirror_read). */
function gpu_read(gpu: Gpu, cmd: Cmd): number {
  const rc = gpu_mirror(gpu);
  if (rc) return rc;
  const end = cmd.addr + cmd.npages * PAGE_SIZE;
  const bounce = new Uint8Array(cmd.npages * PAGE_SIZE);
  for (let start = cmd.addr; start < end; ) {
    const vma = find_vma(gpu.mm, start);
    if (!vma || vma.vm_start > start) return -EFAULT;
    const next = Math.min(end, vma.vm_end);
    let range: hmm_range;
    for (let tries = 0; ; tries++) {
      // Ask for every page (VALID): what the CPU does not map yet is faulted in.
      range = range_of(vma, start, next, 1);
      const err = hmm_vma_fault(range, true);
      cmd.faults++;
      if (err === -EBUSY && tries < 8) continue;
      if (err) return err;
      // An invalidation hit the snapshot while it was taken: take it again.
      if (hmm_vma_range_done(range)) break;
      if (tries === 8) return -EBUSY;
    }
    for (let i = 0, a = start; a < next; i++, a += PAGE_SIZE) {
      const pfn = range.pfns[i]!;
      let p = hmm_pfn_to_page(range, pfn);
      if (p === null) return -EFAULT;
      gpu.table.set(a / PAGE_SIZE, p);
      if (pfn % 8 & 4) p = backing(p);
      bounce.set(memcpy_from_page(p, 0, PAGE_SIZE), a - cmd.addr);
      cmd.cpages++;
    }
    start = next;
  }
  return copy_to_user(cmd.ptr, bounce, bounce.length) ? -EFAULT : 0;
}

/** GPU_TEST_SNAPSHOT: what the CPU page table holds, one byte per page (dmirror_snapshot). */
function gpu_snapshot(gpu: Gpu, cmd: Cmd): number {
  const rc = gpu_mirror(gpu);
  if (rc) return rc;
  const end = cmd.addr + cmd.npages * PAGE_SIZE;
  const out = new Uint8Array(cmd.npages);
  for (let start = cmd.addr; start < end; ) {
    const vma = find_vma(gpu.mm, start);
    if (!vma || vma.vm_start > start) {
      // No vma: every page up to the next one is an error, as an unmapped hole is.
      const stop = vma ? Math.min(end, vma.vm_start) : end;
      out.fill(PROT_ERROR, (start - cmd.addr) / PAGE_SIZE, (stop - cmd.addr) / PAGE_SIZE);
      start = stop;
      continue;
    }
    const next = Math.min(end, vma.vm_end);
    const range = range_of(vma, start, next, 0);
    const err = hmm_vma_get_pfns(range);
    hmm_vma_range_done(range);
    for (let i = 0; i < range.pfns.length; i++) {
      const v = range.pfns[i]!;
      const at = (start - cmd.addr) / PAGE_SIZE + i;
      if (err || v === 0xfffffffe) out[at] = PROT_ERROR;
      else if (!(v % 8 & 1)) out[at] = PROT_NONE;
      else out[at] = (v % 8 & 2 ? PROT_WRITE : PROT_READ) | (v % 8 & 4 ? PROT_DEV_PRIVATE_LOCAL : 0);
    }
    cmd.cpages += range.pfns.length;
    start = next;
  }
  return copy_to_user(cmd.ptr, out, out.length) ? -EFAULT : 0;
}

function gpu_ioctl(filp: file, cmd: number, arg: number): number {
  const gpu = filp.private_data as Gpu;
  if (cmd === GPU_TEST_MIRRORED) return gpu.table.size;
  let handler: ((gpu: Gpu, c: Cmd) => number) | null = null;
  if (cmd === GPU_TEST_MIGRATE) handler = gpu_migrate;
  else if (cmd === GPU_TEST_READ) handler = gpu_read;
  else if (cmd === GPU_TEST_SNAPSHOT) handler = gpu_snapshot;
  if (!handler) return -ENOTTY;
  const c = cmd_in(arg);
  if (typeof c === "number") return c;
  const rc = handler(gpu, c);
  if (rc) return rc;
  return cmd_out(arg, c);
}

const gpu_misc: miscdevice = {
  minor: MISC_DYNAMIC_MINOR,
  name: "gpu_test",
  fops: { owner: THIS_MODULE, open: gpu_open, release: gpu_release, unlocked_ioctl: gpu_ioctl },
};

module_init(() => {
  const h = hmm_device_new(null);
  if (IS_ERR(h)) return PTR_ERR(h);
  const d = hmm_devmem_add(vram_ops, h.device, VRAM_SIZE);
  if (IS_ERR(d)) {
    hmm_device_put(h);
    return PTR_ERR(d);
  }
  hdev = h;
  vram = d;
  for (let p = d.pfn_last - 1; p >= d.pfn_first; p--) freeList.push(p);
  const rc = misc_register(gpu_misc);
  if (rc) {
    gpu_teardown();
    return rc;
  }
  printk(KERN_INFO + "gpu_test: %lu MiB of VRAM at pfn %#lx-%#lx\n", (d.pfn_last - d.pfn_first) / 256, d.pfn_first, d.pfn_last - 1);
  return 0;
});

function gpu_teardown(): void {
  // 4.19/4.20: give the device memory back before the device goes; 5.0 has no
  // hmm_devmem_remove() (the memory goes with the device's devres).
  const remove = symbol_get("hmm_devmem_remove");
  if (remove && vram) {
    remove(vram);
    symbol_put("hmm_devmem_remove");
  }
  vram = null;
  for (let c = 0; c < chunks.length; c++) if (chunks[c] !== undefined) __free_pages(chunks[c]!, CHUNK_ORDER);
  chunks.length = 0;
  freeList.length = 0;
  if (hdev) hmm_device_put(hdev);
  hdev = null;
}

module_exit(() => {
  misc_deregister(gpu_misc);
  gpu_teardown();
});
