// dax_pmem: device-dax for persistent memory namespaces (drivers/dax/pmem.c of 4.20/5.0,
// module dax_pmem.ko). It drives libnvdimm's nd_dax devices (a namespace whose info block
// says devdax): the probe checks the namespace, reads the info block, claims the namespace's
// range, gives it struct pages with devm_memremap_pages() under a percpu_ref of its own, and
// hands the data part (after the info block: dataoff) to device-dax as region R, instance I
// of "namespaceR.I", with the info block's alignment.
//
// 4.20 and 5.0 differ in who kills the ref (spec mm-hmm R5.2): in 4.20 a devm action
// registered after devm_memremap_pages() does (and a failing devm_memremap_pages() has the
// ref exited by hand); in 5.0 pgmap->kill is dax_pmem_percpu_kill and devm_memremap_pages()
// calls it on failure and at release.
//
// kemu: the devm_kzalloc() of struct dax_pmem is left out (its state is this module's own
// object); dev_dbg() lines are not printed (dynamic debug is off).

import {
  MODULE_LICENSE, MODULE_AUTHOR, MODULE_ALIAS, module_init, module_exit, IS_ERR, PTR_ERR, PTR_ERR_OR_ZERO,
  EBUSY, EINVAL, ENOMEM, ENXIO, GFP_KERNEL, PFN_DEV, PFN_MAP, ND_DRIVER_DAX_PMEM, LINUX_VERSION_CODE, KERNEL_VERSION,
  dev_name, dev_warn, devm_request_mem_region, devm_add_action, devm_add_action_or_reset, devm_remove_action, devm_memremap_pages,
  percpu_ref_init, percpu_ref_kill, percpu_ref_exit, init_completion, complete, wait_for_completion, nd_driver_register, driver_unregister,
  type completion, type dev_pagemap, type device, type nd_device_driver, type percpu_ref,
} from "kemu/kernel";
import {
  alloc_dax_region, dax_region_put, devm_create_dev_dax, devm_nsio_disable, devm_nsio_enable, nvdimm_namespace_common_probe, nvdimm_setup_pfn,
  to_nd_dax, to_nd_namespace_io,
} from "kemu/extern";
import type {} from "./dax-private.ts";
import type {} from "../nvdimm/nd.ts";

MODULE_LICENSE("GPL v2");
MODULE_AUTHOR("Intel Corporation");
// MODULE_ALIAS_ND_DEVICE(ND_DEVICE_DAX_PMEM)
MODULE_ALIAS("nd:t7*");

/** struct dax_pmem */
interface DaxPmem {
  dev: device;
  ref: percpu_ref;
  pgmap: dev_pagemap;
  cmp: completion;
}

const by_ref = new Map<percpu_ref, DaxPmem>();

function to_dax_pmem(ref: percpu_ref): DaxPmem {
  return by_ref.get(ref)!;
}

function dax_pmem_percpu_release(ref: percpu_ref): void {
  complete(to_dax_pmem(ref).cmp);
}

function dax_pmem_percpu_exit(data: unknown): void {
  const dax_pmem = data as DaxPmem;
  wait_for_completion(dax_pmem.cmp);
  percpu_ref_exit(dax_pmem.ref);
  by_ref.delete(dax_pmem.ref);
}

/** 5.0: pgmap->kill */
function dax_pmem_percpu_kill(ref: percpu_ref): void {
  percpu_ref_kill(ref);
}

/** 4.20: the devm action that kills the ref before devm_memremap_pages_release() runs. */
function dax_pmem_percpu_kill_action(data: unknown): void {
  percpu_ref_kill((data as DaxPmem).ref);
}

/** sscanf(name, "namespace%d.%d", &region_id, &id) */
function parse_namespace(name: string): [number, number] | null {
  const m = /^namespace\s*([+-]?\d+)\.\s*([+-]?\d+)/.exec(name);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function dax_pmem_probe(dev: device): number {
  const nd_dax = to_nd_dax(dev);
  if (!nd_dax) return -ENXIO;
  const nd_pfn = nd_dax.nd_pfn;
  const ndns = nvdimm_namespace_common_probe(dev);
  if (IS_ERR(ndns)) return PTR_ERR(ndns);
  const nsio = to_nd_namespace_io(ndns.dev);
  if (!nsio) return -ENXIO;

  // parse the 'pfn' info block via ->rw_bytes
  let rc = devm_nsio_enable(dev, nsio);
  if (rc) return rc;
  const setup = nvdimm_setup_pfn(nd_pfn);
  if (IS_ERR(setup)) return PTR_ERR(setup);
  devm_nsio_disable(dev, nsio);

  const pfn_sb = setup.pfn_sb;
  const size = nsio.res.end - nsio.res.start + 1;
  if (!devm_request_mem_region(dev, nsio.res.start, size, dev_name(ndns.dev))) {
    dev_warn(dev, "could not reserve region %pR\n", nsio.res);
    return -EBUSY;
  }

  const dax_pmem: DaxPmem = {
    dev, ref: {}, cmp: {},
    pgmap: { res: setup.res, altmap: setup.altmap, altmap_valid: setup.altmap_valid, type: 0 },
  };
  by_ref.set(dax_pmem.ref, dax_pmem);
  init_completion(dax_pmem.cmp);
  rc = percpu_ref_init(dax_pmem.ref, dax_pmem_percpu_release, 0, GFP_KERNEL);
  if (rc) return rc;

  rc = devm_add_action(dev, dax_pmem_percpu_exit, dax_pmem);
  if (rc) {
    percpu_ref_exit(dax_pmem.ref);
    return rc;
  }

  const v5_0 = LINUX_VERSION_CODE() >= KERNEL_VERSION(5, 0, 0);
  dax_pmem.pgmap.ref = dax_pmem.ref;
  if (v5_0) dax_pmem.pgmap.kill = dax_pmem_percpu_kill;
  const addr = devm_memremap_pages(dev, dax_pmem.pgmap);
  if (IS_ERR(addr)) {
    if (!v5_0) {
      devm_remove_action(dev, dax_pmem_percpu_exit, dax_pmem);
      percpu_ref_exit(dax_pmem.ref);
    }
    return PTR_ERR(addr);
  }
  if (!v5_0) {
    rc = devm_add_action_or_reset(dev, dax_pmem_percpu_kill_action, dax_pmem);
    if (rc) return rc;
  }

  // adjust the dax_region resource to the start of data
  const res = { start: setup.res.start + pfn_sb.dataoff, end: setup.res.end };

  const ids = parse_namespace(dev_name(ndns.dev));
  if (!ids) return -EINVAL;
  const [region_id, id] = ids;

  const dax_region = alloc_dax_region(dev, region_id, res, pfn_sb.align, addr, PFN_DEV | PFN_MAP);
  if (!dax_region) return -ENOMEM;

  // TODO: support for subdividing a dax region...
  const dev_dax = devm_create_dev_dax(dax_region, id, [res], 1);

  // child dev_dax instances now own the lifetime of the dax_region
  dax_region_put(dax_region);

  return PTR_ERR_OR_ZERO(dev_dax);
}

// No ->remove (drivers/dax/pmem.c has none either): devres undoes the probe.
const dax_pmem_driver: nd_device_driver = {
  probe: dax_pmem_probe,
  drv: { name: "dax_pmem" },
  type: ND_DRIVER_DAX_PMEM,
};

// module_nd_driver(dax_pmem_driver)
module_init(() => nd_driver_register(dax_pmem_driver));
module_exit(() => driver_unregister(dax_pmem_driver.drv));
