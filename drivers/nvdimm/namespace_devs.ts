// Namespaces and their raw access (drivers/nvdimm/namespace_devs.c, claim.c of 4.20/5.0):
// nvdimm_namespace_common_probe() (which namespace a namespace/pfn/dax device stands for and
// whether it may be used), devm_nsio_enable()/devm_nsio_disable() (claim the range in iomem
// and map it for rw_bytes), nsio_rw_bytes() (through the region's mapping), the disk name.

import {
  EBUSY, EFAULT, EIO, ENODEV, ENXIO, ENOMEM, PAGE_SIZE, GFP_KERNEL, ARCH_MEMREMAP_PMEM, IS_ERR, IORESOURCE_MEM,
  dev_warn, devm_request_mem_region, devm_release_mem_region, devm_memremap, devm_memunmap, WARN,
  alloc_page, __free_page, kmap_atomic, memcpy_mcsafe, memcpy_flushcache, memcpy_from_page, memcpy_to_page,
  type device,
} from "kemu/kernel";
import { nd_record, type NdNamespace } from "./nd-core.ts";
import type { nd_namespace_common, nd_namespace_io } from "./nd.ts";

/** ND_MIN_NAMESPACE_SIZE */
const ND_MIN_NAMESPACE_SIZE = PAGE_SIZE;

/** The namespace a caller's nd_namespace_common / nd_namespace_io copy stands for. */
export function ns_of(v: nd_namespace_common | nd_namespace_io | null | undefined): NdNamespace | null {
  const dev = v && ("common" in v ? v.common?.dev : v.dev);
  const r = dev ? nd_record(dev) : undefined;
  return r?.kind === "namespace" ? r : null;
}

/** nvdimm_namespace_capacity() */
export function nvdimm_namespace_capacity(ns: NdNamespace): number {
  return ns.res.end - ns.res.start + 1;
}

/** nvdimm_namespace_common_probe(): the namespace, or -ENODEV/-EBUSY/-ENXIO. */
export function nvdimm_namespace_common_probe(dev: device): NdNamespace | number {
  const r = nd_record(dev);
  if (!r) return -ENODEV;
  let ns: NdNamespace | null;
  if (r.kind === "pfn" || r.kind === "dax" || r.kind === "btt") {
    ns = r.ndns;
    if (!ns) return -ENODEV;
    if (ns.claim !== r) {
      WARN(true, "%s: host (%s) vs claim (%s) mismatch\n", ns.name, r.name, ns.claim?.name ?? "(null)");
      return -ENXIO;
    }
  } else if (r.kind === "namespace") {
    ns = r;
    // "claimed by %s, failing probe" (dev_dbg)
    if (ns.claim) return -ENXIO;
  } else {
    return -ENODEV;
  }
  // "%pa, too small must be at least %#x" (dev_dbg)
  if (nvdimm_namespace_capacity(ns) < ND_MIN_NAMESPACE_SIZE) return -ENODEV;
  return ns;
}

/** devm_nsio_enable(): claim the range for `dev` and map it for rw_bytes. */
export function devm_nsio_enable(dev: device, ns: NdNamespace): number {
  const size = nvdimm_namespace_capacity(ns);
  ns.size = size;
  if (!devm_request_mem_region(dev, ns.res.start, size, ns.name)) {
    dev_warn(dev, "could not reserve region %pR\n", { start: ns.res.start, end: ns.res.end, flags: IORESOURCE_MEM });
    return -EBUSY;
  }
  const addr = devm_memremap(dev, ns.res.start, size, ARCH_MEMREMAP_PMEM);
  if (IS_ERR(addr)) return addr;
  ns.addr = addr;
  return 0;
}

/** devm_nsio_disable() */
export function devm_nsio_disable(dev: device, ns: NdNamespace): void {
  if (ns.addr) devm_memunmap(dev, ns.addr);
  ns.addr = 0;
  devm_release_mem_region(dev, ns.res.start, nvdimm_namespace_capacity(ns));
}

/** One page of the kernel's, for moving bytes between the media and libnvdimm. */
let bounce = -1;

export function nd_bounce_init(): number {
  const p = alloc_page(GFP_KERNEL);
  if (p === null) return -ENOMEM;
  bounce = p;
  return 0;
}

export function nd_bounce_exit(): void {
  if (bounce >= 0) __free_page(bounce);
  bounce = -1;
}

/** nsio_rw_bytes(READ) */
export function nvdimm_read_bytes(ns: NdNamespace, offset: number, size: number): Uint8Array | number {
  if (!ns.addr) return -ENXIO;
  if (offset + size > ns.size) {
    WARN(true, "%s: request out of range\n", ns.name);
    return -EFAULT;
  }
  const out = new Uint8Array(size);
  for (let done = 0; done < size; ) {
    const n = Math.min(PAGE_SIZE, size - done);
    if (memcpy_mcsafe(kmap_atomic(bounce), ns.addr + offset + done, n) !== 0) return -EIO;
    out.set(memcpy_from_page(bounce, 0, n), done);
    done += n;
  }
  return out;
}

/** nsio_rw_bytes(WRITE): memcpy_flushcache, so the bytes are on the media when it returns. */
export function nvdimm_write_bytes(ns: NdNamespace, offset: number, buf: Uint8Array): number {
  if (!ns.addr) return -ENXIO;
  if (offset + buf.length > ns.size) {
    WARN(true, "%s: request out of range\n", ns.name);
    return -EFAULT;
  }
  for (let done = 0; done < buf.length; ) {
    const n = Math.min(PAGE_SIZE, buf.length - done);
    memcpy_to_page(bounce, 0, buf.subarray(done, done + n));
    memcpy_flushcache(ns.addr + offset + done, kmap_atomic(bounce), n);
    done += n;
  }
  return 0;
}

/** nvdimm_namespace_disk_name(): "pmem<region>" for an io namespace. */
export function nvdimm_namespace_disk_name(ns: NdNamespace): string {
  const suffix = ns.claim?.kind === "btt" ? "s" : "";
  return `pmem${ns.region.id}${suffix}`;
}
