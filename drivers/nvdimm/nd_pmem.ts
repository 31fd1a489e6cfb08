// nd_pmem: persistent memory as a block device (drivers/nvdimm/pmem.c of 4.20/5.0, module
// nd_pmem.ko). It binds namespaces (raw: /dev/pmemN over the whole namespace, no struct
// pages) and the pfn devices of fsdax namespaces (/dev/pmemN after the info block, with
// struct pages from devm_memremap_pages(): a ZONE_DEVICE MEMORY_DEVICE_FS_DAX map whose memmap
// lives in the namespace, map=dev). A namespace that holds a pfn or dax info block is left to
// the pfn or dax device nd_pfn_probe()/nd_dax_probe() creates for it.
//
// The queue's q_usage_counter is the pgmap's reference (spec R5.1). Teardown runs the devres
// actions newest first: 4.20 registers pmem_freeze_queue as an action after the mapping, so
// the queue is frozen (the reference killed) before devm_memremap_pages' release; 5.0 hands
// pmem_freeze_queue to the mapping as pgmap->kill, which its release runs first. Either way
// blk_cleanup_queue() (the first action, so the last to run) waits for the reference to drain.

import {
  MODULE_LICENSE, MODULE_AUTHOR, MODULE_ALIAS, module_init, module_exit, THIS_MODULE, LINUX_VERSION_CODE, KERNEL_VERSION,
  ENOMEM, ENXIO, EBUSY, EOPNOTSUPP, GFP_KERNEL, PAGE_SIZE, IS_ERR, PTR_ERR, ARCH_MEMREMAP_PMEM, MEMORY_DEVICE_FS_DAX, PFN_DEV, PFN_MAP, IORESOURCE_MEM,
  ND_DRIVER_NAMESPACE_IO, ND_DRIVER_NAMESPACE_PMEM, GENHD_FL_EXT_DEVT, QUEUE_FLAG_NONROT, QUEUE_FLAG_DAX,
  REQ_OP_MASK, REQ_OP_READ, REQ_PREFLUSH, REQ_FUA,
  nd_driver_register, driver_unregister, dev_warn, dev_set_drvdata, dev_get_drvdata, devm_kzalloc, devm_add_action_or_reset,
  devm_request_mem_region, devm_memremap, devm_memremap_pages, dev_pagemap_get_ops, dev_pagemap_put_ops,
  blk_alloc_queue_node, blk_queue_make_request, blk_queue_write_cache, blk_queue_physical_block_size, blk_queue_logical_block_size,
  blk_queue_max_hw_sectors, blk_queue_flag_set, blk_freeze_queue_start, blk_cleanup_queue,
  alloc_disk_node, device_add_disk, set_capacity, revalidate_disk, del_gendisk, put_disk,
  bio_for_each_segment, bio_endio, bio_io_error, kmap_atomic, memcpy_mcsafe, memcpy_flushcache,
  type device, type bio, type gendisk, type request_queue, type percpu_ref, type dev_pagemap, type nd_device_driver,
  type block_device_operations,
} from "kemu/kernel";
import {
  nvdimm_namespace_common_probe, to_nd_namespace_io, devm_nsio_enable, devm_nsio_disable, is_nd_pfn, is_nd_btt, to_nd_pfn,
  nd_pfn_probe, nd_dax_probe, nvdimm_setup_pfn, nvdimm_namespace_disk_name, nvdimm_flush, nvdimm_has_flush,
} from "kemu/extern";
import type { nd_namespace_common, nd_region } from "./nd.ts";

MODULE_LICENSE("GPL v2");
MODULE_AUTHOR("Ross Zwisler <ross.zwisler@linux.intel.com>");
// MODULE_ALIAS_ND_DEVICE(ND_DEVICE_NAMESPACE_IO), (ND_DEVICE_NAMESPACE_PMEM)
MODULE_ALIAS("nd:t4*");
MODULE_ALIAS("nd:t5*");

const UINT_MAX = 0xffffffff;

/** struct pmem_device */
interface PmemDevice {
  phys_addr: number;
  data_offset: number;
  pfn_pad: number;
  pfn_flags: number;
  size: number;
  virt_addr: number;
  nd_region: nd_region;
  pgmap: dev_pagemap;
  q: request_queue;
  disk: gendisk;
}

const pmem_fops: block_device_operations = { owner: THIS_MODULE };
/** The pmem_device of each queue (q->queuedata) and of each queue's usage counter. */
const byQueue = new Map<request_queue, PmemDevice>();

const v5_0 = LINUX_VERSION_CODE() >= KERNEL_VERSION(5, 0, 0);

/** pmem_do_bvec(): one segment between a page and the media. */
function pmem_do_bvec(pmem: PmemDevice, page: number, len: number, off: number, is_write: boolean, sector: number): boolean {
  const pmem_addr = pmem.virt_addr + sector * 512 + pmem.data_offset;
  const mem = kmap_atomic(page);
  if (!is_write) return memcpy_mcsafe(mem + off, pmem_addr, len) === 0; // read_pmem()
  memcpy_flushcache(pmem_addr, mem + off, len); // write_pmem()
  return true;
}

/** pmem_make_request(): flush before (REQ_PREFLUSH) and after (REQ_FUA), each segment between. */
function pmem_make_request(q: request_queue, bio: bio): number {
  const pmem = byQueue.get(q)!;
  if (bio.bi_opf & REQ_PREFLUSH) nvdimm_flush(pmem.nd_region);
  const segs = bio_for_each_segment(bio);
  const is_write = (bio.bi_opf & REQ_OP_MASK) !== REQ_OP_READ;
  for (let i = 0; i < segs.length; i += 4) {
    if (!pmem_do_bvec(pmem, segs[i]!, segs[i + 1]!, segs[i + 2]!, is_write, segs[i + 3]!)) {
      bio_io_error(bio); // bio->bi_status = BLK_STS_IOERR
      return 0;
    }
  }
  if (bio.bi_opf & REQ_FUA) nvdimm_flush(pmem.nd_region);
  bio_endio(bio);
  return 0; // BLK_QC_T_NONE
}

function pmem_release_queue(data: unknown): void {
  const q = data as request_queue;
  blk_cleanup_queue(q);
  byQueue.delete(q);
}

/** 4.20: a devres action on the queue. */
function pmem_freeze_queue(data: unknown): void {
  blk_freeze_queue_start(data as request_queue);
}

/** 5.0: pgmap->kill, given the reference, which is the queue's q_usage_counter. */
function pmem_kill(ref: percpu_ref): void {
  for (const [q] of byQueue) if (q.q_usage_counter === ref) return blk_freeze_queue_start(q);
}

function fsdax_pagefree(_page: number, _data: unknown): void {
  // wake_up_var(&page->_refcount): a truncate waiting for DMA to finish goes on.
}

function pmem_release_pgmap_ops(_data: unknown): void {
  dev_pagemap_put_ops();
}

/** setup_pagemap_fsdax(): FS_DAX pages return to the driver at refcount 1. */
function setup_pagemap_fsdax(dev: device, pgmap: dev_pagemap): number {
  dev_pagemap_get_ops();
  if (devm_add_action_or_reset(dev, pmem_release_pgmap_ops, pgmap)) return -ENOMEM;
  pgmap.type = MEMORY_DEVICE_FS_DAX;
  pgmap.page_free = fsdax_pagefree;
  return 0;
}

function pmem_release_disk(data: unknown): void {
  const pmem = data as PmemDevice;
  del_gendisk(pmem.disk);
  put_disk(pmem.disk);
}

function pmem_attach_disk(dev: device, ndns: nd_namespace_common): number {
  const nsio = to_nd_namespace_io(ndns.dev)!;
  const nd_region = ndns.nd_region;
  const res = nsio.res;
  if (!devm_kzalloc(dev, 256, GFP_KERNEL)) return -ENOMEM; // struct pmem_device
  const pmem = { nd_region, pgmap: {} as dev_pagemap, data_offset: 0, pfn_pad: 0, pfn_flags: 0, virt_addr: 0 } as PmemDevice;

  // while nsio_rw_bytes is active, parse a pfn info block if present
  let pfn_sb = null;
  if (is_nd_pfn(dev)) {
    const r = nvdimm_setup_pfn(to_nd_pfn(dev)!);
    if (typeof r === "number") return r;
    pmem.pgmap.res = r.res;
    pmem.pgmap.altmap = r.altmap;
    pmem.pgmap.altmap_valid = r.altmap_valid;
    pfn_sb = r.pfn_sb;
  }

  // we're attaching a block device, disable raw namespace access
  devm_nsio_disable(dev, nsio);

  dev_set_drvdata(dev, pmem);
  pmem.phys_addr = res.start;
  pmem.size = res.end - res.start + 1;
  let fua = nvdimm_has_flush(nd_region);
  if (fua < 0) {
    dev_warn(dev, "unable to guarantee persistence of writes\n");
    fua = 0;
  }

  if (!devm_request_mem_region(dev, res.start, pmem.size, ndns.name)) {
    dev_warn(dev, "could not reserve region %pR\n", { start: res.start, end: res.end, flags: IORESOURCE_MEM });
    return -EBUSY;
  }

  const q: request_queue = { q_usage_counter: {} };
  if (blk_alloc_queue_node(q, GFP_KERNEL, -1)) return -ENOMEM;
  if (devm_add_action_or_reset(dev, pmem_release_queue, q)) return -ENOMEM;
  pmem.q = q;
  byQueue.set(q, pmem);

  pmem.pfn_flags = PFN_DEV;
  pmem.pgmap.ref = q.q_usage_counter;
  if (v5_0) pmem.pgmap.kill = pmem_kill;
  let addr: number;
  if (pfn_sb) {
    if (setup_pagemap_fsdax(dev, pmem.pgmap)) return -ENOMEM;
    addr = devm_memremap_pages(dev, pmem.pgmap);
    pmem.data_offset = pfn_sb.dataoff;
    const pgres = pmem.pgmap.res as { start: number; end: number };
    pmem.pfn_pad = pmem.size - (pgres.end - pgres.start + 1);
    pmem.pfn_flags |= PFN_MAP;
  } else {
    addr = devm_memremap(dev, pmem.phys_addr, pmem.size, ARCH_MEMREMAP_PMEM);
  }

  // 4.20: at release time the queue must be frozen before devm_memremap_pages is unwound
  if (!v5_0 && devm_add_action_or_reset(dev, pmem_freeze_queue, q)) return -ENOMEM;

  if (IS_ERR(addr)) return PTR_ERR(addr);
  pmem.virt_addr = addr;

  blk_queue_write_cache(q, true, fua !== 0);
  blk_queue_make_request(q, pmem_make_request);
  blk_queue_physical_block_size(q, PAGE_SIZE);
  blk_queue_logical_block_size(q, 512); // pmem_sector_size() of an io namespace
  blk_queue_max_hw_sectors(q, UINT_MAX);
  blk_queue_flag_set(QUEUE_FLAG_NONROT, q);
  if (pmem.pfn_flags & PFN_MAP) blk_queue_flag_set(QUEUE_FLAG_DAX, q);

  const disk: gendisk = { disk_name: nvdimm_namespace_disk_name(ndns), fops: pmem_fops, queue: q, flags: GENHD_FL_EXT_DEVT };
  if (alloc_disk_node(disk, 0, -1)) return -ENOMEM;
  pmem.disk = disk;
  set_capacity(disk, (pmem.size - pmem.pfn_pad - pmem.data_offset) / 512);

  device_add_disk(dev, disk);
  if (devm_add_action_or_reset(dev, pmem_release_disk, pmem)) return -ENOMEM;
  revalidate_disk(disk);
  return 0;
}

function nd_pmem_probe(dev: device): number {
  const ndns = nvdimm_namespace_common_probe(dev);
  if (IS_ERR(ndns)) return PTR_ERR(ndns);
  const nsio = to_nd_namespace_io(ndns.dev)!;
  if (devm_nsio_enable(dev, nsio)) return -ENXIO;

  // kemu has no nd_btt: a btt device has no namespace and never gets this far.
  if (is_nd_btt(dev)) return -ENXIO;
  if (is_nd_pfn(dev)) return pmem_attach_disk(dev, ndns);

  // An info block of the pfn or dax kind hands the namespace to the device it creates.
  let ret = nd_pfn_probe(dev, ndns);
  if (ret === 0) return -ENXIO;
  else if (ret === -EOPNOTSUPP) return ret;

  ret = nd_dax_probe(dev, ndns);
  if (ret === 0) return -ENXIO;
  else if (ret === -EOPNOTSUPP) return ret;

  return pmem_attach_disk(dev, ndns);
}

/** nd_pmem_remove(): a last flush; what pmem_attach_disk() set up is devres, released next. */
function nd_pmem_remove(dev: device): number {
  const pmem = dev_get_drvdata(dev) as PmemDevice | null;
  if (pmem) nvdimm_flush(pmem.nd_region);
  return 0;
}

const nd_pmem_driver: nd_device_driver = {
  probe: nd_pmem_probe,
  remove: nd_pmem_remove,
  drv: { name: "nd_pmem" },
  type: ND_DRIVER_NAMESPACE_IO | ND_DRIVER_NAMESPACE_PMEM,
};

module_init(() => nd_driver_register(nd_pmem_driver));

module_exit(() => driver_unregister(nd_pmem_driver.drv));
