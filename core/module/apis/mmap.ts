// Mappings as drivers make them (include/linux/mm.h, mm/memory.c, 4.20/5.0): a
// file_operations.mmap(file, vma) sets up the vma (its vm_ops, vm_flags, vm_private_data) and
// may map pages at once (vm_insert_page()); the vm_operations_struct's fault(vmf) maps them on
// demand (vmf_insert_pfn(), vmf_insert_mixed() with a pfn_t, or vmf->page for the core to map).
//
// A module cannot assign to a kernel object's fields (it holds a copy): the assignments a C
// driver makes to the vma and the vm_fault are calls here, named after the field, with the
// C statement as their prototype. vm_flags_set()/vm_flags_clear() are 6.3's names for them.

import type { AddressSpace } from "../../fs/file.ts";
import { PAGE_SIZE, type Page } from "../../mm/memmap.ts";
import {
  unmap_mapping_range, VM_FAULT_DONE_COW, VM_FAULT_ERROR, VM_FAULT_NOPAGE, VM_FAULT_RETRY, VM_FAULT_SIGBUS, vm_insert_page, vmf_insert_mixed, vmf_insert_pfn,
  zap_page_range_single,
} from "../../mm/memory.ts";
import {
  linear_page_index, VM_ACCOUNT, VM_EXEC, VM_GROWSDOWN, VM_HUGETLB, VM_LOCKED, VM_MAYSHARE, VM_PFNMAP, VM_READ, VM_SHARED, VM_WRITE, vma_pages,
  type MmStruct, type VmArea, type VmFault, type VmOperationsStruct,
} from "../../mm/mm_types.ts";
import { arch_get_unmapped_area_topdown } from "../../mm/mmap.ts";
import { __pfn_to_pfn_t, phys_to_pfn_t, pfn_t_devmap, pfn_t_to_pfn } from "../../mm/pfn_t.ts";
import { defineApis, type CallCtx } from "../api.ts";
import { ArgError } from "../marshal.ts";
import type { StructTwin } from "../twins.ts";

/** The vm_flags a driver may not change: the core's accounting and access checks rest on them. */
const VM_FLAGS_CORE = VM_READ | VM_WRITE | VM_EXEC | VM_SHARED | VM_MAYSHARE | VM_ACCOUNT | VM_LOCKED | VM_HUGETLB | VM_GROWSDOWN;

/** struct vm_fault as the module sees it: one per nesting depth of an ops table, reused. */
export class VmFaultObj {
  vma: VmArea | null = null;
  address = 0;
  pgoff = 0;
  flags = 0;
  /** What the module set vmf->page to, or -1. */
  page: Page = -1;
  /** Inside the callback it was made for; a handle kept beyond it is refused. */
  active = false;
}

/** The module's functions, as it passed them last (NULL when its struct lacks one). */
interface ModuleVmOps {
  open: ((vma: VmArea) => void) | null;
  close: ((vma: VmArea) => void) | null;
  split: ((vma: VmArea, addr: number) => number) | null;
  fault: ((vmf: VmFaultObj) => number) | null;
  page_mkwrite: ((vmf: VmFaultObj) => number) | null;
  pfn_mkwrite: ((vmf: VmFaultObj) => number) | null;
}

const OPS = ["open", "close", "split", "fault", "page_mkwrite", "pfn_mkwrite"] as const;

/**
 * The kernel's copy of a module's vm_operations_struct: what memory.ts and mmap.ts call.
 * A method is there only when the module's struct has it (do_fault() tests ->fault).
 */
export class ModuleVmOperations implements VmOperationsStruct {
  readonly #c: CallCtx;
  readonly #fn: ModuleVmOps = { open: null, close: null, split: null, fault: null, page_mkwrite: null, pfn_mkwrite: null };
  readonly #pool: VmFaultObj[] = [];
  #depth = 0;
  open?: (vma: VmArea) => void;
  close?: (vma: VmArea) => void;
  split?: (vma: VmArea, addr: number) => number;
  fault?: (vmf: VmFault) => number;
  page_mkwrite?: (vmf: VmFault) => number;
  pfn_mkwrite?: (vmf: VmFault) => number;

  constructor(c: CallCtx) {
    this.#c = c;
  }

  update(f: Record<string, unknown>): void {
    for (const name of OPS) (this.#fn as unknown as Record<string, unknown>)[name] = (f[name] as Function | undefined) ?? null;
    const fn = this.#fn;
    this.open = fn.open ? (vma) => fn.open?.(vma) : undefined;
    this.close = fn.close ? (vma) => fn.close?.(vma) : undefined;
    this.split = fn.split ? (vma, addr) => fn.split?.(vma, addr) ?? 0 : undefined;
    this.fault = fn.fault ? (vmf) => this.#call("fault", vmf) : undefined;
    this.page_mkwrite = fn.page_mkwrite ? (vmf) => this.#call("page_mkwrite", vmf) : undefined;
    this.pfn_mkwrite = fn.pfn_mkwrite ? (vmf) => this.#call("pfn_mkwrite", vmf) : undefined;
  }

  /** A fault callback with the module's view of `vmf`; vmf->page comes back if it set it. */
  #call(name: "fault" | "page_mkwrite" | "pfn_mkwrite", vmf: VmFault): number {
    const f = this.#fn[name];
    if (!f) return this.#c.k.mm.nullDeref(name === "fault" ? "__do_fault" : name === "page_mkwrite" ? "do_page_mkwrite" : "wp_pfn_shared");
    const d = this.#depth++;
    const obj = (this.#pool[d] ??= new VmFaultObj());
    obj.vma = vmf.vma;
    obj.address = vmf.address;
    obj.pgoff = vmf.pgoff;
    obj.flags = vmf.flags;
    obj.page = name === "fault" ? -1 : vmf.page;
    obj.active = true;
    let ret: number;
    try {
      ret = f(obj);
    } finally {
      obj.active = false;
      this.#depth--;
    }
    ret = Number.isSafeInteger(ret) && ret >= 0 ? ret : VM_FAULT_SIGBUS;
    if (name !== "fault") return ret;
    if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY | VM_FAULT_DONE_COW)) {
      // A page set next to an error is not the core's to map; the module keeps its reference.
      return ret;
    }
    if (obj.page < 0) {
      // __do_fault() goes on to read vmf->page, which the handler left NULL.
      return this.#c.k.bugs.oops(
        ["BUG: unable to handle kernel NULL pointer dereference at 0000000000000000", "#PF error: [normal kernel read fault]"],
        "Oops: 0000",
        { file: "mm/memory.c", func: "__do_fault" },
      );
    }
    vmf.page = obj.page;
    return ret;
  }
}

export const vm_operations_twin: StructTwin = {
  create: (c) => new ModuleVmOperations(c),
  update: (obj, f) => (obj as ModuleVmOperations).update(f),
};

function pfnArg(pfn: number, what: string): number {
  // MAX_PHYSMEM_BITS (46): no pte can hold a larger frame number.
  if (!Number.isSafeInteger(pfn) || pfn < 0 || pfn >= 2 ** (46 - 12)) throw new ArgError(`${what} ${pfn} is not a page frame number`);
  return pfn;
}

function addrArg(addr: number): number {
  if (!Number.isSafeInteger(addr) || addr < 0) throw new ArgError(`address ${addr} is not a user address`);
  return addr;
}

function flagsArg(flags: number): number {
  if (!Number.isSafeInteger(flags) || flags < 0 || flags >= 2 ** 32) throw new ArgError(`${flags} is not a set of vm_flags`);
  if (flags & VM_FLAGS_CORE) throw new ArgError(`a driver may not change VM_READ/WRITE/EXEC/SHARED/MAYSHARE/ACCOUNT/LOCKED/HUGETLB/GROWSDOWN (0x${(flags & VM_FLAGS_CORE).toString(16)})`);
  return flags;
}

export const MMAP_APIS = defineApis([
  {
    name: "vm_insert_page", symbols: ["vm_insert_page"], params: ["o:vm_area_struct", "num", "page"], ret: "int",
    proto: "int vm_insert_page(struct vm_area_struct *vma, unsigned long addr, struct page *page)",
    impl: (c: CallCtx, vma: VmArea, addr: number, page: Page) => {
      c.k.mm.memmap.section(page); // a pfn without a struct page faults as the kernel's would
      return vm_insert_page(vma, addrArg(addr), page);
    },
  },
  {
    name: "vmf_insert_pfn", symbols: ["vmf_insert_pfn"], params: ["o:vm_area_struct", "num", "num"], ret: "int",
    proto: "vm_fault_t vmf_insert_pfn(struct vm_area_struct *vma, unsigned long addr, unsigned long pfn)",
    impl: (_c: CallCtx, vma: VmArea, addr: number, pfn: number) => vmf_insert_pfn(vma, addrArg(addr), pfnArg(pfn, "pfn")),
  },
  {
    name: "vmf_insert_mixed", symbols: ["vmf_insert_mixed"], params: ["o:vm_area_struct", "num", "num"], ret: "int",
    proto: "vm_fault_t vmf_insert_mixed(struct vm_area_struct *vma, unsigned long addr, pfn_t pfn)",
    impl: (c: CallCtx, vma: VmArea, addr: number, pfn: number) => {
      if (!Number.isSafeInteger(pfn) || pfn < 0) throw new ArgError(`${pfn} is not a pfn_t`);
      const p = pfnArg(pfn_t_to_pfn(pfn), "pfn_t_to_pfn(pfn)");
      // A devmap pte promises a struct page (get_user_pages() takes a reference on it).
      if (pfn_t_devmap(pfn) && !c.k.mm.memmap.pfn_valid(p)) throw new ArgError(`pfn ${p} is PFN_DEV|PFN_MAP but has no struct page`);
      return vmf_insert_mixed(vma, addrArg(addr), pfn);
    },
  },
  {
    name: "zap_vma_ptes", symbols: ["zap_vma_ptes"], params: ["o:vm_area_struct", "num", "num"], ret: "void",
    proto: "void zap_vma_ptes(struct vm_area_struct *vma, unsigned long address, unsigned long size)",
    impl: (_c: CallCtx, vma: VmArea, address: number, size: number) => {
      // "if (address < vma->vm_start || address + size > vma->vm_end || !(vma->vm_flags & VM_PFNMAP)) return;"
      if (address < vma.vm_start || address + size > vma.vm_end || !(vma.vm_flags & VM_PFNMAP)) return;
      zap_page_range_single(vma, address, size, null);
    },
  },
  {
    name: "mm_get_unmapped_area", symbols: [], params: ["o:mm_struct", "o?:file", "num", "num", "num", "num"], ret: "num",
    proto: "/* mm->get_unmapped_area(file, addr, len, pgoff, flags) (mm_get_unmapped_area() from 6.10) */",
    impl: (_c: CallCtx, mm: MmStruct, _file: unknown, addr: number, len: number, _pgoff: number, flags: number) => {
      if (!Number.isSafeInteger(len) || len < 0) throw new ArgError(`bad length ${len}`);
      return arch_get_unmapped_area_topdown(mm, addrArg(addr), len, flags);
    },
  },
  {
    name: "unmap_mapping_range", symbols: ["unmap_mapping_range"], params: ["o:address_space", "num", "num", "int"], ret: "void",
    proto: "void unmap_mapping_range(struct address_space *mapping, loff_t const holebegin, loff_t const holelen, int even_cows)",
    impl: (_c: CallCtx, mapping: AddressSpace, holebegin: number, holelen: number, even_cows: number) => {
      if (!Number.isSafeInteger(holebegin) || holebegin < 0 || !Number.isSafeInteger(holelen) || holelen < 0) throw new ArgError(`bad range ${holebegin} + ${holelen}`);
      unmap_mapping_range(mapping, holebegin, holelen, even_cows !== 0);
    },
  },
  {
    name: "vm_flags_set", symbols: [], params: ["o:vm_area_struct", "num"], ret: "void", proto: "/* vma->vm_flags |= flags; (vm_flags_set() from 6.3) */",
    impl: (_c: CallCtx, vma: VmArea, flags: number) => void (vma.vm_flags = (vma.vm_flags | flagsArg(flags)) >>> 0),
  },
  {
    name: "vm_flags_clear", symbols: [], params: ["o:vm_area_struct", "num"], ret: "void", proto: "/* vma->vm_flags &= ~flags; (vm_flags_clear() from 6.3) */",
    impl: (_c: CallCtx, vma: VmArea, flags: number) => void (vma.vm_flags = (vma.vm_flags & ~flagsArg(flags)) >>> 0),
  },
  {
    name: "vma_set_vm_ops", symbols: [], params: ["o:vm_area_struct", "s:vm_operations_struct"], ret: "void", proto: "/* vma->vm_ops = ops; */",
    impl: (_c: CallCtx, vma: VmArea, ops: ModuleVmOperations) => {
      // Only a file mapping's ops are the driver's: an anonymous vma is one because it has none.
      if (!vma.vm_file) throw new ArgError("the vma maps no file: its vm_ops are not a driver's");
      vma.vm_ops = ops;
    },
  },
  {
    name: "vma_set_vm_private_data", symbols: [], params: ["o:vm_area_struct", "p"], ret: "void", proto: "/* vma->vm_private_data = data; */",
    impl: (_c: CallCtx, vma: VmArea, data: unknown) => {
      if (!vma.vm_file) throw new ArgError("the vma maps no file: its vm_private_data is not a driver's");
      vma.vm_private_data = data;
    },
  },
  {
    name: "vmf_set_page", symbols: [], params: ["o:vm_fault", "page"], ret: "void", proto: "/* vmf->page = page; (the page ->fault found, with a reference for the caller) */",
    impl: (c: CallCtx, vmf: VmFaultObj, page: Page) => {
      c.k.mm.memmap.section(page);
      vmf.page = page;
    },
  },
  { name: "vma_pages", symbols: [], params: ["o:vm_area_struct"], ret: "num", proto: "static inline unsigned long vma_pages(struct vm_area_struct *vma)", impl: (_c: CallCtx, vma: VmArea) => vma_pages(vma) },
  {
    name: "linear_page_index", symbols: [], params: ["o:vm_area_struct", "num"], ret: "num", proto: "static inline pgoff_t linear_page_index(struct vm_area_struct *vma, unsigned long address)",
    impl: (_c: CallCtx, vma: VmArea, address: number) => linear_page_index(vma, addrArg(address)),
  },
  { name: "__pfn_to_pfn_t", symbols: [], params: ["num", "num"], ret: "num", proto: "static inline pfn_t __pfn_to_pfn_t(unsigned long pfn, u64 flags)", impl: (_c: CallCtx, pfn: number, flags: number) => __pfn_to_pfn_t(pfnArg(pfn, "pfn"), flags) },
  { name: "pfn_to_pfn_t", symbols: [], params: ["num"], ret: "num", proto: "static inline pfn_t pfn_to_pfn_t(unsigned long pfn)", impl: (_c: CallCtx, pfn: number) => __pfn_to_pfn_t(pfnArg(pfn, "pfn"), 0) },
  {
    name: "phys_to_pfn_t", symbols: [], params: ["num", "num"], ret: "num", proto: "static inline pfn_t phys_to_pfn_t(phys_addr_t addr, u64 flags)",
    impl: (_c: CallCtx, addr: number, flags: number) => {
      pfnArg(Math.floor(addr / PAGE_SIZE), "the pfn of address");
      return phys_to_pfn_t(addr, flags);
    },
  },
  { name: "pfn_t_to_pfn", symbols: [], params: ["num"], ret: "num", proto: "static inline unsigned long pfn_t_to_pfn(pfn_t pfn)", impl: (_c: CallCtx, pfn: number) => pfn_t_to_pfn(pfn) },
  { name: "pfn_t_devmap", symbols: [], params: ["num"], ret: "bool", proto: "static inline bool pfn_t_devmap(pfn_t pfn)", impl: (_c: CallCtx, pfn: number) => pfn_t_devmap(pfn) },
]);
