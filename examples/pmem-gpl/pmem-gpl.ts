// pmem_gpl: a GPL driver that gives a persistent-memory range struct pages with
// devm_memremap_pages(), the way drivers/nvdimm/pmem.c does, and loads under 4.19, 4.20 and 5.0.
//
// The range is the first "Persistent Memory" region of the machine (boot it with
// `pmem: [{ size: "1G" }]` and `memory` of at most 3G, and kemu puts that region at 4 GiB);
// a real driver would get it from its device's resources (nd_region, e820_pmem).
//
// What devm_memremap_pages() asks of its caller:
//   - pgmap->ref: a live percpu_ref. Each mapped page holds a reference on it; the owner
//     kills it at teardown and waits for the release callback before freeing it.
//   - who kills it: 4.19/4.20 expect the ref to be dead by the time
//     devm_memremap_pages_release() runs, so the owner registers a kill action *after*
//     devm_memremap_pages() (devres runs in reverse order); 5.0 calls pgmap->kill() itself and
//     refuses a pgmap without one (-EINVAL). This driver does both, with a kill that only
//     kills once, so that one build is right on every version (as `#if LINUX_VERSION_CODE`
//     would be in C).
//   - a cleanup registered *before* devm_memremap_pages(): runs after its release, waits
//     for the ref to drain and exits it (pmem's blk_cleanup_queue()).
//
// percpu_ref_init, devm_add_action, region_intersects and the platform bus are
// EXPORT_SYMBOL_GPL in every version, devm_memremap_pages from 5.0: this driver has to be GPL.

import {
  MODULE_LICENSE, MODULE_DESCRIPTION, module_init, module_exit, printk, KERN_INFO, GFP_KERNEL, IS_ERR, PTR_ERR,
  EBUSY, ENXIO, IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY, MEMORY_DEVICE_FS_DAX, PAGE_SIZE, PLATFORM_DEVID_NONE, REGION_INTERSECTS,
  region_intersects, devm_request_mem_region, devm_add_action_or_reset, devm_memremap_pages, dev_info, dev_err,
  percpu_ref_init, percpu_ref_kill, percpu_ref_exit, init_completion, complete, wait_for_completion,
  platform_driver_register, platform_driver_unregister, platform_device_register_simple, platform_device_unregister,
  type completion, type dev_pagemap, type percpu_ref, type platform_device, type platform_driver,
} from "kemu/kernel";

MODULE_LICENSE("GPL v2");
MODULE_DESCRIPTION("persistent memory with struct pages, the pmem way");

const DRV_NAME = "pmem_gpl";

/** Where kemu puts the first pmem region of a machine with at most 3G of RAM, and how much of it we map. */
const PMEM_START = 0x100000000;
const PMEM_SIZE = 256 * 1024 * 1024;

/** One mapping's state: what pmem.c keeps in struct pmem_device and its request_queue. */
interface pmem_device {
  ref: percpu_ref;
  done: completion;
  killed: boolean;
  pgmap: dev_pagemap;
}

/** Kill the ref once, whichever of pgmap->kill (5.0) and our devm action (4.19/4.20) comes first. */
function pmem_kill(pmem: pmem_device): void {
  if (pmem.killed) return;
  pmem.killed = true;
  percpu_ref_kill(pmem.ref);
}

function pmem_probe(pdev: platform_device): number {
  const dev = pdev.dev;

  // Only persistent memory: devm_memremap_pages() on System RAM is refused (5.0) or a no-op (4.20).
  if (region_intersects(PMEM_START, PMEM_SIZE, IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY) !== REGION_INTERSECTS) {
    dev_err(dev, "no persistent memory at %#llx\n", PMEM_START);
    return -ENXIO;
  }
  const res = devm_request_mem_region(dev, PMEM_START, PMEM_SIZE, DRV_NAME);
  if (!res) {
    dev_err(dev, "could not reserve region [mem %#llx-%#llx]\n", PMEM_START, PMEM_START + PMEM_SIZE - 1);
    return -EBUSY;
  }

  const pmem: pmem_device = {
    ref: {},
    done: {},
    killed: false,
    pgmap: {},
  };
  init_completion(pmem.done);
  // The release callback runs once the ref is dead and the last page reference is gone.
  let rc = percpu_ref_init(pmem.ref, function pmem_release(_ref: percpu_ref) { complete(pmem.done); }, 0, GFP_KERNEL);
  if (rc) return rc;
  // Registered before devm_memremap_pages(), so it runs after the mapping's release.
  rc = devm_add_action_or_reset(dev, function pmem_cleanup(_data: unknown) {
    pmem_kill(pmem);
    wait_for_completion(pmem.done);
    percpu_ref_exit(pmem.ref);
  }, null);
  if (rc) return rc;

  const range = { start: res.start, end: res.end, name: DRV_NAME, flags: IORESOURCE_MEM, desc: IORES_DESC_PERSISTENT_MEMORY };
  pmem.pgmap = {
    type: MEMORY_DEVICE_FS_DAX,
    res: range,
    ref: pmem.ref,
    kill: function pmem_pgmap_kill(_ref: percpu_ref) { pmem_kill(pmem); },
  };
  const addr = devm_memremap_pages(dev, pmem.pgmap);
  if (IS_ERR(addr)) {
    dev_err(dev, "devm_memremap_pages failed: %d\n", PTR_ERR(addr));
    return PTR_ERR(addr);
  }
  // Registered after devm_memremap_pages(), so it runs before the mapping's release (4.19/4.20).
  rc = devm_add_action_or_reset(dev, function pmem_freeze(_data: unknown) { pmem_kill(pmem); }, null);
  if (rc) return rc;

  dev_info(dev, "%lu pages of persistent memory at %pR, pfn %#lx\n", PMEM_SIZE / PAGE_SIZE, res, PMEM_START / PAGE_SIZE);
  return 0;
}

const pmem_driver: platform_driver = {
  driver: { name: DRV_NAME },
  probe: pmem_probe,
};

let pdev: platform_device | null = null;

module_init(() => {
  const rc = platform_driver_register(pmem_driver);
  if (rc) return rc;
  const p = platform_device_register_simple(DRV_NAME, PLATFORM_DEVID_NONE, null, 0);
  if (IS_ERR(p)) {
    platform_driver_unregister(pmem_driver);
    return PTR_ERR(p);
  }
  pdev = p;
  printk(KERN_INFO + "pmem_gpl: loaded\n");
  return 0;
});

module_exit(() => {
  // Unregistering the device unbinds it: devres tears the mapping down in reverse order.
  platform_device_unregister(pdev);
  pdev = null;
  platform_driver_unregister(pmem_driver);
  printk(KERN_INFO + "pmem_gpl: unloaded\n");
});
