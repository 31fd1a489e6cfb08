// devm_memremap_pages() and HMM device memory as modules use them.

import type { Device } from "../../base/device.ts";
import type { Page } from "../../mm/memmap.ts";
import { DevPagemap } from "../../mm/memremap.ts";
import type { HmmDevice, HmmDevmem } from "../../mm/hmm-devmem.ts";
import type { Resource } from "../../mm/resource.ts";
import { defineApis, type CallCtx } from "../api.ts";
import type { DriverPointer } from "../marshal.ts";
import type { HmmDevmemOps } from "../twins.ts";

function pgmapOfPage(c: CallCtx, page: Page): DevPagemap | null {
  return c.k.mm.page_pgmap(page);
}

export const MEMREMAP_APIS = defineApis([
  { name: "devm_memremap_pages", symbols: ["devm_memremap_pages"], params: ["o:device", "s:dev_pagemap"], ret: "num", proto: "void *devm_memremap_pages(struct device *dev, struct dev_pagemap *pgmap)", impl: (c: CallCtx, dev: Device, pgmap: DevPagemap) => c.k.mm.memremap.devm_memremap_pages(dev, pgmap) },
  { name: "get_dev_pagemap", symbols: ["get_dev_pagemap"], params: ["num", "s?:dev_pagemap"], ret: "s?:dev_pagemap", proto: "struct dev_pagemap *get_dev_pagemap(unsigned long pfn, struct dev_pagemap *pgmap)", impl: (c: CallCtx, pfn: number, pgmap: DevPagemap | null) => c.k.mm.memremap.get_dev_pagemap(pfn, pgmap) },
  { name: "put_dev_pagemap", symbols: [], params: ["s?:dev_pagemap"], ret: "void", proto: "static inline void put_dev_pagemap(struct dev_pagemap *pgmap)", impl: (c: CallCtx, pgmap: DevPagemap | null) => c.k.mm.memremap.put_dev_pagemap(pgmap) },
  { name: "dev_pagemap_get_ops", symbols: ["dev_pagemap_get_ops"], params: [], ret: "void", proto: "void dev_pagemap_get_ops(void)", impl: (c: CallCtx) => c.k.mm.memremap.dev_pagemap_get_ops() },
  { name: "dev_pagemap_put_ops", symbols: ["dev_pagemap_put_ops"], params: [], ret: "void", proto: "void dev_pagemap_put_ops(void)", impl: (c: CallCtx) => c.k.mm.memremap.dev_pagemap_put_ops() },
  { name: "page_pgmap", symbols: [], params: ["page"], ret: "s?:dev_pagemap", proto: "/* page->pgmap */", impl: pgmapOfPage },
  {
    name: "hmm_device_new", symbols: ["hmm_device_new"], params: ["p"], ret: "o:hmm_device", proto: "struct hmm_device *hmm_device_new(void *drvdata)",
    impl: (c: CallCtx, drvdata: DriverPointer | null) => {
      const h = c.k.hmm.hmm_device_new(drvdata);
      if (typeof h !== "number") c.mod.holdings.hmmDevices.add(h);
      return h;
    },
  },
  {
    name: "hmm_device_put", callsBack: true, symbols: ["hmm_device_put"], params: ["o:hmm_device"], ret: "void", proto: "void hmm_device_put(struct hmm_device *hmm_device)",
    impl: (c: CallCtx, h: HmmDevice) => {
      c.mod.holdings.hmmDevices.delete(h);
      c.k.hmm.hmm_device_put(h);
    },
  },
  { name: "hmm_devmem_add", symbols: ["hmm_devmem_add"], params: ["s:hmm_devmem_ops", "o:device", "num"], ret: "o:hmm_devmem", proto: "struct hmm_devmem *hmm_devmem_add(const struct hmm_devmem_ops *ops, struct device *device, unsigned long size)", impl: (c: CallCtx, ops: HmmDevmemOps, dev: Device, size: number) => c.k.hmm.hmm_devmem_add(ops, dev, size) },
  { name: "hmm_devmem_add_resource", symbols: ["hmm_devmem_add_resource"], params: ["s:hmm_devmem_ops", "o:device", "o:resource"], ret: "o:hmm_devmem", proto: "struct hmm_devmem *hmm_devmem_add_resource(const struct hmm_devmem_ops *ops, struct device *device, struct resource *res)", impl: (c: CallCtx, ops: HmmDevmemOps, dev: Device, res: Resource) => c.k.hmm.hmm_devmem_add_resource(ops, dev, res) },
  { name: "hmm_devmem_remove", callsBack: true, symbols: ["hmm_devmem_remove"], params: ["o:hmm_devmem"], ret: "void", proto: "void hmm_devmem_remove(struct hmm_devmem *devmem)", impl: (c: CallCtx, d: HmmDevmem) => c.k.hmm.hmm_devmem_remove(d) },
  {
    name: "hmm_devmem_page_set_drvdata", symbols: [], params: ["page", "num"], ret: "void", proto: "static inline void hmm_devmem_page_set_drvdata(struct page *page, unsigned long data)",
    impl: (c: CallCtx, page: Page, data: number) => {
      const sec = c.k.mm.memmap.section(page);
      sec.hmmData[page - sec.startPfn] = data;
    },
  },
  {
    name: "hmm_devmem_page_get_drvdata", symbols: [], params: ["page"], ret: "num", proto: "static inline unsigned long hmm_devmem_page_get_drvdata(const struct page *page)",
    impl: (c: CallCtx, page: Page) => {
      const sec = c.k.mm.memmap.section(page);
      return sec.hmmData[page - sec.startPfn]!;
    },
  },
]);
