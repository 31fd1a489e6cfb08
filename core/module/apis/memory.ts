// kmalloc/kfree and struct page functions as modules call them.

import { __GFP_ZERO } from "../../mm/gfp.ts";
import { ArgError } from "../marshal.ts";
import { PAGE_SIZE, type Page } from "../../mm/memmap.ts";
import type { KBuf } from "../../mm/slab.ts";
import { ZONE_DEVICE } from "../../mm/memmap.ts";
import { defineApis, type CallCtx } from "../api.ts";

function kmalloc(c: CallCtx, size: number, gfp: number): KBuf | null {
  const buf = c.k.mm.kmalloc(size, gfp, c.mod.name);
  if (buf && buf.size) c.mod.holdings.kbufs.add(buf);
  return buf && buf.size ? buf : null;
}

const PUT_PAGE_SYMBOLS = ["__put_page", "devmap_managed_key", "__put_devmap_managed_page"];

function pageBytes(c: CallCtx, page: Page, offset: number, len: number): [number, number] {
  if (!Number.isInteger(offset) || !Number.isInteger(len) || offset < 0 || len < 0 || offset + len > PAGE_SIZE) {
    throw new ArgError(`offset ${offset} + length ${len} is outside the page`);
  }
  c.k.mm.memmap.section(page); // a bad pfn faults like the kernel's kmap would
  return [page * PAGE_SIZE + offset, len];
}

export const MEMORY_APIS = defineApis([
  { name: "kmalloc", symbols: ["__kmalloc"], params: ["num", "num"], ret: "o?:kbuf", proto: "void *kmalloc(size_t size, gfp_t flags)", impl: kmalloc },
  { name: "kzalloc", symbols: ["__kmalloc"], params: ["num", "num"], ret: "o?:kbuf", proto: "void *kzalloc(size_t size, gfp_t flags)", impl: (c: CallCtx, size: number, gfp: number) => kmalloc(c, size, gfp | __GFP_ZERO) },
  {
    name: "kfree", symbols: ["kfree"], params: ["o?:kbuf"], ret: "void", proto: "void kfree(const void *objp)",
    impl: (c: CallCtx, buf: KBuf | null) => {
      if (buf) c.mod.holdings.kbufs.delete(buf);
      c.k.mm.kfree(buf);
    },
  },
  { name: "alloc_pages", symbols: ["alloc_pages_current"], params: ["num", "int"], ret: "page", proto: "struct page *alloc_pages(gfp_t gfp_mask, unsigned int order)", impl: (c: CallCtx, gfp: number, order: number) => c.k.mm.alloc_pages(gfp, order) },
  { name: "alloc_page", symbols: ["alloc_pages_current"], params: ["num"], ret: "page", proto: "#define alloc_page(gfp_mask) alloc_pages(gfp_mask, 0)", impl: (c: CallCtx, gfp: number) => c.k.mm.alloc_pages(gfp, 0) },
  {
    name: "alloc_page_vma", symbols: ["alloc_pages_vma"], params: ["num", "o?:vm_area_struct", "num"], ret: "page", proto: "#define alloc_page_vma(gfp_mask, vma, addr) alloc_pages_vma(gfp_mask, 0, vma, addr, numa_node_id(), false)",
    impl: (c: CallCtx, gfp: number) => c.k.mm.alloc_pages(gfp, 0),
  },
  { name: "__free_pages", symbols: ["__free_pages"], params: ["page", "int"], ret: "void", proto: "void __free_pages(struct page *page, unsigned int order)", impl: (c: CallCtx, page: Page, order: number) => c.k.mm.__free_pages(page, order) },
  { name: "__free_page", symbols: ["__free_pages"], params: ["page"], ret: "void", proto: "#define __free_page(page) __free_pages((page), 0)", impl: (c: CallCtx, page: Page) => c.k.mm.__free_pages(page, 0) },
  { name: "get_page", symbols: [], params: ["page"], ret: "void", proto: "static inline void get_page(struct page *page)", impl: (c: CallCtx, page: Page) => c.k.mm.get_page(page) },
  { name: "put_page", symbols: PUT_PAGE_SYMBOLS, params: ["page"], ret: "void", proto: "static inline void put_page(struct page *page)", impl: (c: CallCtx, page: Page) => c.k.mm.put_page(page) },
  { name: "page_ref_count", symbols: [], params: ["page"], ret: "int", proto: "static inline int page_ref_count(struct page *page)", impl: (c: CallCtx, page: Page) => c.k.mm.page_ref_count(page) },
  { name: "page_to_pfn", symbols: [], params: ["page"], ret: "num", proto: "#define page_to_pfn __page_to_pfn", impl: (_c: CallCtx, page: Page) => page },
  { name: "pfn_to_page", symbols: [], params: ["num"], ret: "page", proto: "#define pfn_to_page __pfn_to_page", impl: (_c: CallCtx, pfn: number) => pfn },
  { name: "is_zone_device_page", symbols: [], params: ["page"], ret: "bool", proto: "static inline bool is_zone_device_page(const struct page *page)", impl: (c: CallCtx, page: Page) => c.k.mm.page_zonenum(page) === ZONE_DEVICE },
  { name: "is_device_private_page", symbols: [], params: ["page"], ret: "bool", proto: "static inline bool is_device_private_page(const struct page *page)", impl: (c: CallCtx, page: Page) => c.k.mm.is_device_private_page(page) },
  {
    name: "memcpy_to_page", symbols: [], params: ["page", "int", "bytes"], ret: "void", proto: "static inline void memcpy_to_page(struct page *page, size_t offset, const char *from, size_t len)",
    impl: (c: CallCtx, page: Page, offset: number, data: Uint8Array) => {
      const [phys] = pageBytes(c, page, offset, data.length);
      c.k.mm.physmem.write(phys, data);
    },
  },
  {
    name: "memcpy_from_page", symbols: [], params: ["page", "int", "int"], ret: "bytes", proto: "static inline void memcpy_from_page(char *to, struct page *page, size_t offset, size_t len)",
    impl: (c: CallCtx, page: Page, offset: number, len: number) => {
      const [phys, n] = pageBytes(c, page, offset, len);
      return c.k.mm.physmem.read(phys, n);
    },
  },
]);

