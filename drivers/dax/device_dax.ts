// device_dax: device-dax, the character device over a range of dax capacity
// (drivers/dax/device.c of 4.20/5.0, module device_dax.ko).
//
// A provider (dax_pmem, or a test module as tools/testing/nvdimm has) describes its memory
// with alloc_dax_region(parent, region_id, res, align, addr, pfn_flags) and carves instances
// out of it with devm_create_dev_dax(): each gets a dax_device from the dax core, the number
// of that dax_device as its cdev (owned by the parent's driver), and the class device
// /dev/daxR.I. Both go with the parent device's devres (the provider unbinding).
//
// mmap(2) of /dev/daxR.I must be shared, start and end on the region's alignment, and (for a
// range without struct pages, PFN_DEV alone) come with MADV_DONTFORK; faults map the pages
// of the range directly (vmf_insert_mixed(), no page cache). Once the dax_device is killed,
// every mapping is zapped and new mmaps and faults fail (-ENXIO, SIGBUS).
//
// kemu maps no PMDs or PUDs, so vm_operations_struct.huge_fault is not there: every fault is
// a PTE fault, which (as __dev_dax_pte_fault() does) gives SIGBUS when the region's
// alignment is larger than a page. dev_dbg() lines are left out (dynamic debug is off), as
// are page->mapping/index (for memory_failure(), which kemu has not) and
// mmap_supported_flags (MAP_SYNC). cdev_device_add() is cdev_add() + device_create(), its
// pre-4.11 spelling.

import {
  MODULE_LICENSE, MODULE_AUTHOR, module_init, module_exit, THIS_MODULE, EXPORT_SYMBOL_GPL, IS_ERR, PTR_ERR,
  PAGE_SIZE, EINVAL, ENOMEM, ENXIO, PFN_DEV, PFN_MAP, VM_MAYSHARE, VM_DONTCOPY, VM_MIXEDMAP, VM_HUGEPAGE, VM_FAULT_SIGBUS,
  class_create, class_destroy, cdev_init, cdev_add, cdev_del, device_create, device_destroy, device_create_file, device_remove_file,
  dev_get_drvdata, dev_set_drvdata, dev_driver_owner, devm_add_action_or_reset, dev_info_ratelimited, dev_WARN, get_current,
  vma_set_vm_ops, vm_flags_set, vmf_insert_mixed, phys_to_pfn_t, unmap_mapping_range, mm_get_unmapped_area,
  type address_space, type cdev, type class_struct, type device, type device_attribute, type file, type file_operations, type inode,
  type vm_area_struct, type vm_fault, type vm_operations_struct,
} from "kemu/kernel";
import { alloc_dax, dax_alive, dax_get_private, dax_inode, dax_read_lock, dax_read_unlock, inode_dax, kill_dax, put_dax } from "kemu/extern";
import type { dax_device, dax_res } from "./dax-private.ts";

MODULE_AUTHOR("Intel Corporation");
MODULE_LICENSE("GPL v2");

/** enum page_entry_size */
const PE_SIZE_PTE = 0;

/** struct dax_region (dax-private.h) */
interface DaxRegion {
  readonly key: number;
  readonly id: number;
  /** The ids handed out for dev_dax instances created with id < 0 (ida). */
  readonly ida: Set<number>;
  kref: number;
  readonly dev: device;
  readonly align: number;
  readonly res: dax_res;
  readonly base: number;
  readonly pfn_flags: number;
}

/** struct dev_dax (dax-private.h) */
interface DevDax {
  readonly key: number;
  readonly region: DaxRegion;
  readonly dax_dev: dax_device;
  dev: device | null;
  /** Allocated from the region's ida, or -1 when the provider owns the id. */
  id: number;
  readonly res: dax_res[];
  readonly cdev: cdev;
  readonly devt: number;
  /** The node's address space, where every mapping of the device is (kemu: from dax_open()). */
  mapping: address_space | null;
  /** The device's references beyond registration: open files (cdev_get() pins the device). */
  opens: number;
  registered: boolean;
}

let dax_class: class_struct | null = null;
const regions = new Map<number, DaxRegion>();
const dev_daxes = new Map<number, DevDax>();
let next_key = 1;

function resource_size(res: dax_res): number {
  return res.end - res.start + 1;
}

function IS_ALIGNED(x: number, a: number): boolean {
  return x % a === 0;
}

/*
 * Rely on the fact that drvdata is set before the attributes are registered, and that the
 * attributes are unregistered before drvdata is cleared to assume that drvdata is always valid.
 */
function region_of(dev: device): DaxRegion {
  return dev_get_drvdata(dev) as DaxRegion;
}

const dev_attr_id: device_attribute = { attr: { name: "dax_region/id", mode: 0o444 }, show: (dev) => `${region_of(dev).id}\n` };
const dev_attr_region_size: device_attribute = { attr: { name: "dax_region/size", mode: 0o444 }, show: (dev) => `${resource_size(region_of(dev).res)}\n` };
const dev_attr_align: device_attribute = { attr: { name: "dax_region/align", mode: 0o444 }, show: (dev) => `${region_of(dev).align}\n` };
/** dax_region_attribute_group ("dax_region"): size, align, id. */
const dax_region_attributes = [dev_attr_region_size, dev_attr_align, dev_attr_id];

function dax_region_free(dax_region: DaxRegion): void {
  regions.delete(dax_region.key);
}

export function dax_region_put(key: number): void {
  const dax_region = regions.get(key);
  if (dax_region && --dax_region.kref === 0) dax_region_free(dax_region);
}
EXPORT_SYMBOL_GPL(dax_region_put);

function dax_region_unregister(region: unknown): void {
  const dax_region = region as DaxRegion;
  for (const attr of dax_region_attributes) device_remove_file(dax_region.dev, attr);
  dax_region_put(dax_region.key);
}

export function alloc_dax_region(parent: device, region_id: number, res: dax_res, align: number, addr: number, pfn_flags: number): number {
  /*
   * The DAX core assumes that it can store its private data in parent->driver_data. This
   * WARN is a reminder / safeguard for developers of device-dax drivers.
   */
  if (dev_get_drvdata(parent)) {
    dev_WARN(parent, "dax core failed to setup private data\n");
    return 0;
  }
  if (!(align > 0) || !IS_ALIGNED(res.start, align) || !IS_ALIGNED(resource_size(res), align)) return 0;
  const dax_region: DaxRegion = {
    key: next_key++, id: region_id, ida: new Set(), kref: 1, dev: parent, align, res: { start: res.start, end: res.end }, base: addr, pfn_flags,
  };
  dev_set_drvdata(parent, dax_region);
  regions.set(dax_region.key, dax_region);
  // sysfs_create_groups(&parent->kobj, dax_region_attribute_groups)
  for (let i = 0; i < dax_region_attributes.length; i++) {
    if (device_create_file(parent, dax_region_attributes[i]!)) {
      for (let j = 0; j < i; j++) device_remove_file(parent, dax_region_attributes[j]!);
      dax_region_free(dax_region);
      return 0;
    }
  }
  dax_region.kref++;
  if (devm_add_action_or_reset(parent, dax_region_unregister, dax_region)) return 0;
  return dax_region.key;
}
EXPORT_SYMBOL_GPL(alloc_dax_region);

const dev_attr_size: device_attribute = {
  attr: { name: "size", mode: 0o444 },
  show: (dev) => {
    const dev_dax = dev_get_drvdata(dev) as DevDax;
    return `${dev_dax.res.reduce((n, r) => n + resource_size(r), 0)}\n`;
  },
};

function check_vma(dev_dax: DevDax, vma: vm_area_struct, func: string): number {
  const dax_region = dev_dax.region;
  const dev = dev_dax.dev!;
  if (!dax_alive(dev_dax.dax_dev)) return -ENXIO;
  // prevent private mappings from being established
  if ((vma.vm_flags & VM_MAYSHARE) !== VM_MAYSHARE) {
    dev_info_ratelimited(dev, "%s: %s: fail, attempted private mapping\n", get_current().comm, func);
    return -EINVAL;
  }
  const mask = dax_region.align - 1;
  if (!IS_ALIGNED(vma.vm_start, dax_region.align) || !IS_ALIGNED(vma.vm_end, dax_region.align)) {
    dev_info_ratelimited(dev, "%s: %s: fail, unaligned vma (%#lx - %#lx, %#lx)\n", get_current().comm, func, vma.vm_start, vma.vm_end, mask);
    return -EINVAL;
  }
  if ((dax_region.pfn_flags & (PFN_DEV | PFN_MAP)) === PFN_DEV && (vma.vm_flags & VM_DONTCOPY) === 0) {
    dev_info_ratelimited(dev, "%s: %s: fail, dax range requires MADV_DONTFORK\n", get_current().comm, func);
    return -EINVAL;
  }
  // vma_is_dax(): dax_open() marks every inode of the device S_DAX, so it always holds here.
  return 0;
}

/** The physical address of page `pgoff` of the device, or -1 beyond its ranges. */
function dax_pgoff_to_phys(dev_dax: DevDax, pgoff: number, size: number): number {
  for (const res of dev_dax.res) {
    const phys = pgoff * PAGE_SIZE + res.start;
    if (phys >= res.start && phys <= res.end) return phys + size - 1 <= res.end ? phys : -1;
    pgoff -= resource_size(res) / PAGE_SIZE;
  }
  return -1;
}

function __dev_dax_pte_fault(dev_dax: DevDax, vmf: vm_fault): number {
  const fault_size = PAGE_SIZE;
  if (check_vma(dev_dax, vmf.vma, "__dev_dax_pte_fault")) return VM_FAULT_SIGBUS;
  const dax_region = dev_dax.region;
  // dev_dbg(dev, "alignment (%#x) > fault size (%#x)\n", ...)
  if (dax_region.align > PAGE_SIZE) return VM_FAULT_SIGBUS;
  if (fault_size !== dax_region.align) return VM_FAULT_SIGBUS;
  const phys = dax_pgoff_to_phys(dev_dax, vmf.pgoff, PAGE_SIZE);
  // dev_dbg(dev, "pgoff_to_phys(%#lx) failed\n", vmf->pgoff)
  if (phys === -1) return VM_FAULT_SIGBUS;
  const pfn = phys_to_pfn_t(phys, dax_region.pfn_flags);
  return vmf_insert_mixed(vmf.vma, vmf.address, pfn);
}

function dev_dax_huge_fault(vmf: vm_fault, pe_size: number): number {
  const dev_dax = vmf.vma.vm_file!.private_data as DevDax;
  const id = dax_read_lock();
  const rc = pe_size === PE_SIZE_PTE ? __dev_dax_pte_fault(dev_dax, vmf) : VM_FAULT_SIGBUS;
  dax_read_unlock(id);
  return rc;
}

function dev_dax_fault(vmf: vm_fault): number {
  return dev_dax_huge_fault(vmf, PE_SIZE_PTE);
}

function dev_dax_split(vma: vm_area_struct, addr: number): number {
  const dev_dax = vma.vm_file!.private_data as DevDax;
  return IS_ALIGNED(addr, dev_dax.region.align) ? 0 : -EINVAL;
}

const dax_vm_ops: vm_operations_struct = {
  fault: dev_dax_fault,
  split: dev_dax_split,
};

function dax_mmap(filp: file, vma: vm_area_struct): number {
  const dev_dax = filp.private_data as DevDax;
  // We lock to check dax_dev liveness and will re-check at fault time.
  const id = dax_read_lock();
  const rc = check_vma(dev_dax, vma, "dax_mmap");
  dax_read_unlock(id);
  if (rc) return rc;
  vma_set_vm_ops(vma, dax_vm_ops);
  vm_flags_set(vma, VM_MIXEDMAP | VM_HUGEPAGE);
  return 0;
}

/** return an unmapped area aligned to the dax region specified alignment */
function dax_get_unmapped_area(filp: file, addr: number, len: number, pgoff: number, flags: number): number {
  const dev_dax = filp.private_data as DevDax | null;
  const mm = get_current().mm!;
  if (dev_dax && !addr) {
    const align = dev_dax.region.align;
    const off = pgoff * PAGE_SIZE;
    const off_end = off + len;
    const off_align = Math.ceil(off / align) * align;
    if (off_end > off_align && off_end - off_align >= align) {
      const addr_align = mm_get_unmapped_area(mm, filp, addr, len + align, pgoff, flags);
      // !IS_ERR_VALUE(addr_align): move it up to the offset's place in the alignment.
      if (addr_align >= 0) return addr_align + ((((off - addr_align) % align) + align) % align);
    }
  }
  return mm_get_unmapped_area(mm, filp, addr, len, pgoff, flags);
}

function dax_open(ino: inode, filp: file): number {
  const dax_dev = inode_dax({ i_rdev: ino.i_rdev });
  const dev_dax = dev_daxes.get(dax_get_private(dax_dev));
  if (!dev_dax) return -ENXIO;
  // inode->i_mapping = __dax_inode->i_mapping: every open of the device shares one mapping.
  dev_dax.mapping ??= ino.i_mapping;
  filp.private_data = dev_dax;
  dev_dax.opens++;
  return 0;
}

function dax_release(_ino: inode, filp: file): number {
  const dev_dax = filp.private_data as DevDax;
  // cdev_put(): the last file of an unregistered device releases it.
  if (--dev_dax.opens === 0 && !dev_dax.registered) dev_dax_release(dev_dax);
  return 0;
}

const dax_fops: file_operations = {
  owner: THIS_MODULE,
  open: dax_open,
  release: dax_release,
  get_unmapped_area: dax_get_unmapped_area,
  mmap: dax_mmap,
};

function dev_dax_release(dev_dax: DevDax): void {
  const dax_region = dev_dax.region;
  if (dev_dax.id >= 0) dax_region.ida.delete(dev_dax.id);
  dax_region_put(dax_region.key);
  put_dax(dev_dax.dax_dev);
  dev_daxes.delete(dev_dax.key);
}

function kill_dev_dax(dev_dax: DevDax): void {
  kill_dax(dev_dax.dax_dev);
  if (dev_dax.mapping) unmap_mapping_range(dev_dax.mapping, 0, 0, 1);
}

/** cdev_device_del() + put_device() */
function unregister_dev_dax(data: unknown): void {
  const dev_dax = data as DevDax;
  kill_dev_dax(dev_dax);
  if (dev_dax.dev) device_remove_file(dev_dax.dev, dev_attr_size);
  device_destroy(dax_class!, dev_dax.devt);
  dev_dax.dev = null;
  cdev_del(dev_dax.cdev);
  dev_dax.registered = false;
  if (dev_dax.opens === 0) dev_dax_release(dev_dax);
}

export function devm_create_dev_dax(region: number, id: number, res: dax_res[], count: number): number {
  const dax_region = regions.get(region);
  if (!dax_region || !Array.isArray(res) || res.length < count) return -EINVAL;
  const parent = dax_region.dev;
  if (!count) return -EINVAL;
  const copies: dax_res[] = [];
  for (let i = 0; i < count; i++) {
    const r = res[i]!;
    if (!IS_ALIGNED(r.start, dax_region.align) || !IS_ALIGNED(resource_size(r), dax_region.align)) return -EINVAL;
    copies.push({ start: r.start, end: r.end });
  }
  let dev_id = -1;
  if (id < 0) {
    // ida_simple_get(&dax_region->ida, 0, 0, GFP_KERNEL)
    id = 0;
    while (dax_region.ida.has(id)) id++;
    dax_region.ida.add(id);
    dev_id = id;
  }
  const key = next_key++;
  // No 'host' or dax_operations since there is no access to this device outside of mmap of
  // the resulting character device.
  const dax_dev = alloc_dax(key, null, null);
  if (!dax_dev) {
    if (dev_id >= 0) dax_region.ida.delete(dev_id);
    return -ENOMEM;
  }
  // from here on we're committed to teardown via dev_dax_release()
  const devt = dax_inode(dax_dev).i_rdev;
  const dev_dax: DevDax = {
    key, region: dax_region, dax_dev, dev: null, id: dev_id, res: copies, cdev: {}, devt, mapping: null, opens: 0, registered: true,
  };
  dev_daxes.set(key, dev_dax);
  cdev_init(dev_dax.cdev, dax_fops);
  dev_dax.cdev.owner = dev_driver_owner(parent);
  dax_region.kref++;
  let rc = cdev_add(dev_dax.cdev, devt, 1);
  if (!rc) {
    const dev = device_create(dax_class!, parent, devt, dev_dax, "dax%d.%d", dax_region.id, id);
    if (IS_ERR(dev)) {
      cdev_del(dev_dax.cdev);
      rc = PTR_ERR(dev);
    } else {
      dev_dax.dev = dev;
      // dev->groups = dax_attribute_groups
      device_create_file(dev, dev_attr_size);
    }
  }
  if (rc) {
    kill_dev_dax(dev_dax);
    dev_dax.registered = false;
    dev_dax_release(dev_dax);
    return rc;
  }
  rc = devm_add_action_or_reset(dax_region.dev, unregister_dev_dax, dev_dax);
  if (rc) return rc;
  return key;
}
EXPORT_SYMBOL_GPL(devm_create_dev_dax);

module_init(() => {
  const c = class_create(THIS_MODULE, "dax");
  if (IS_ERR(c)) return PTR_ERR(c);
  dax_class = c;
  return 0;
});

module_exit(() => {
  if (dax_class) class_destroy(dax_class);
  dax_class = null;
});
