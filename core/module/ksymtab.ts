// The symbols the emulated vmlinux exports (principle 2: one source of truth). For each: the
// kernel file that exports it, its export class in each kernel version (absent = not
// exported in that version), and its C prototype, whose CRC modversions checks.
// Export classes were checked against the kernel sources of 4.19, 4.20 and 5.0; the
// devm_memremap_pages/hmm_devmem changes are spec module-loader §10 H3/H4.

import { KERNEL_VERSIONS, type KernelVersion } from "../version.ts";
import { crc32 } from "node:zlib";

export type ExportClass = "EXPORT_SYMBOL" | "EXPORT_SYMBOL_GPL" | "EXPORT_SYMBOL_GPL_FUTURE";

export interface KernelSymbol {
  readonly name: string;
  /** The kernel source file with the EXPORT_SYMBOL line. */
  readonly file: string;
  /** Export class per version; a version without an entry does not export the symbol. */
  readonly exports: Partial<Record<KernelVersion, ExportClass>>;
  /** The C declaration; genksyms-style CRCs are computed from it. */
  readonly proto: string;
  /** The declaration in versions where it differed from `proto`. */
  readonly protoIn?: Partial<Record<KernelVersion, string>>;
  /** Data rather than a function (iomem_resource, devmap_managed_key). */
  readonly data?: boolean;
}

const ALL = (c: ExportClass): Record<KernelVersion, ExportClass> => ({ "4.19": c, "4.20": c, "5.0": c });
const P = ALL("EXPORT_SYMBOL");
const G = ALL("EXPORT_SYMBOL_GPL");
/** EXPORT_SYMBOL until the series made it EXPORT_SYMBOL_GPL in 5.0 (spec §10 H3/H4). */
const GPL_IN_5_0: Record<KernelVersion, ExportClass> = { ...P, "5.0": "EXPORT_SYMBOL_GPL" };
/** EXPORT_SYMBOL until the series removed it in 5.0. */
const GONE_IN_5_0: Partial<Record<KernelVersion, ExportClass>> = { "4.19": "EXPORT_SYMBOL", "4.20": "EXPORT_SYMBOL" };

const SYMBOLS: readonly KernelSymbol[] = [
  // kernel/printk/printk.c
  { name: "printk", file: "kernel/printk/printk.c", exports: P, proto: "int printk(const char *fmt, ...)" },
  // drivers/base/core.c define_dev_printk_level()
  { name: "_dev_emerg", file: "drivers/base/core.c", exports: P, proto: "void _dev_emerg(const struct device *dev, const char *fmt, ...)" },
  { name: "_dev_alert", file: "drivers/base/core.c", exports: P, proto: "void _dev_alert(const struct device *dev, const char *fmt, ...)" },
  { name: "_dev_crit", file: "drivers/base/core.c", exports: P, proto: "void _dev_crit(const struct device *dev, const char *fmt, ...)" },
  { name: "_dev_err", file: "drivers/base/core.c", exports: P, proto: "void _dev_err(const struct device *dev, const char *fmt, ...)" },
  { name: "_dev_warn", file: "drivers/base/core.c", exports: P, proto: "void _dev_warn(const struct device *dev, const char *fmt, ...)" },
  { name: "_dev_notice", file: "drivers/base/core.c", exports: P, proto: "void _dev_notice(const struct device *dev, const char *fmt, ...)" },
  { name: "_dev_info", file: "drivers/base/core.c", exports: P, proto: "void _dev_info(const struct device *dev, const char *fmt, ...)" },
  // lib/ratelimit.c
  { name: "___ratelimit", file: "lib/ratelimit.c", exports: P, proto: "int ___ratelimit(struct ratelimit_state *rs, const char *func)" },
  // mm/slub.c
  { name: "__kmalloc", file: "mm/slub.c", exports: P, proto: "void *__kmalloc(size_t size, gfp_t flags)" },
  { name: "kfree", file: "mm/slub.c", exports: P, proto: "void kfree(const void *x)" },
  // mm/mempolicy.c, mm/page_alloc.c, mm/swap.c
  { name: "alloc_pages_current", file: "mm/mempolicy.c", exports: P, proto: "struct page *alloc_pages_current(gfp_t gfp, unsigned order)" },
  { name: "__free_pages", file: "mm/page_alloc.c", exports: P, proto: "void __free_pages(struct page *page, unsigned int order)" },
  { name: "__put_page", file: "mm/swap.c", exports: P, proto: "void __put_page(struct page *page)" },
  // drivers/base/devres.c
  { name: "devm_add_action", file: "drivers/base/devres.c", exports: G, proto: "int devm_add_action(struct device *dev, void (*action)(void *), void *data)" },
  { name: "devm_remove_action", file: "drivers/base/devres.c", exports: G, proto: "void devm_remove_action(struct device *dev, void (*action)(void *), void *data)" },
  { name: "devm_kmalloc", file: "drivers/base/devres.c", exports: G, proto: "void *devm_kmalloc(struct device *dev, size_t size, gfp_t gfp)" },
  // 0571967dfb5d "devres: constify p in devm_kfree()" (4.20)
  { name: "devm_kfree", file: "drivers/base/devres.c", exports: G, proto: "void devm_kfree(struct device *dev, const void *p)", protoIn: { "4.19": "void devm_kfree(struct device *dev, void *p)" } },
  // kernel/resource.c
  { name: "iomem_resource", file: "kernel/resource.c", exports: P, proto: "struct resource iomem_resource", data: true },
  { name: "request_resource", file: "kernel/resource.c", exports: P, proto: "int request_resource(struct resource *root, struct resource *new)" },
  { name: "release_resource", file: "kernel/resource.c", exports: P, proto: "int release_resource(struct resource *old)" },
  { name: "insert_resource", file: "kernel/resource.c", exports: G, proto: "int insert_resource(struct resource *parent, struct resource *new)" },
  { name: "remove_resource", file: "kernel/resource.c", exports: G, proto: "int remove_resource(struct resource *old)" },
  { name: "region_intersects", file: "kernel/resource.c", exports: G, proto: "int region_intersects(resource_size_t start, size_t size, unsigned long flags, unsigned long desc)" },
  { name: "__request_region", file: "kernel/resource.c", exports: P, proto: "struct resource *__request_region(struct resource *parent, resource_size_t start, resource_size_t n, const char *name, int flags)" },
  { name: "__release_region", file: "kernel/resource.c", exports: P, proto: "void __release_region(struct resource *parent, resource_size_t start, resource_size_t n)" },
  { name: "__devm_request_region", file: "kernel/resource.c", exports: P, proto: "struct resource *__devm_request_region(struct device *dev, struct resource *parent, resource_size_t start, resource_size_t n, const char *name)" },
  { name: "__devm_release_region", file: "kernel/resource.c", exports: P, proto: "void __devm_release_region(struct device *dev, struct resource *parent, resource_size_t start, resource_size_t n)" },
  // lib/percpu-refcount.c
  { name: "percpu_ref_init", file: "lib/percpu-refcount.c", exports: G, proto: "int percpu_ref_init(struct percpu_ref *ref, percpu_ref_func_t *release, unsigned int flags, gfp_t gfp)" },
  { name: "percpu_ref_exit", file: "lib/percpu-refcount.c", exports: G, proto: "void percpu_ref_exit(struct percpu_ref *ref)" },
  { name: "percpu_ref_kill_and_confirm", file: "lib/percpu-refcount.c", exports: G, proto: "void percpu_ref_kill_and_confirm(struct percpu_ref *ref, percpu_ref_func_t *confirm_kill)" },
  { name: "percpu_ref_reinit", file: "lib/percpu-refcount.c", exports: G, proto: "void percpu_ref_reinit(struct percpu_ref *ref)" },
  // kernel/sched/wait.c, kernel/sched/completion.c
  { name: "__init_waitqueue_head", file: "kernel/sched/wait.c", exports: P, proto: "void __init_waitqueue_head(struct wait_queue_head *wq_head, const char *name, struct lock_class_key *key)" },
  { name: "complete", file: "kernel/sched/completion.c", exports: P, proto: "void complete(struct completion *x)" },
  { name: "complete_all", file: "kernel/sched/completion.c", exports: P, proto: "void complete_all(struct completion *x)" },
  { name: "wait_for_completion", file: "kernel/sched/completion.c", exports: P, proto: "void wait_for_completion(struct completion *x)" },
  { name: "try_wait_for_completion", file: "kernel/sched/completion.c", exports: P, proto: "bool try_wait_for_completion(struct completion *x)" },
  { name: "completion_done", file: "kernel/sched/completion.c", exports: P, proto: "bool completion_done(struct completion *x)" },
  // drivers/base/platform.c
  { name: "__platform_driver_register", file: "drivers/base/platform.c", exports: G, proto: "int __platform_driver_register(struct platform_driver *drv, struct module *owner)" },
  { name: "platform_driver_unregister", file: "drivers/base/platform.c", exports: G, proto: "void platform_driver_unregister(struct platform_driver *drv)" },
  { name: "platform_device_register_full", file: "drivers/base/platform.c", exports: G, proto: "struct platform_device *platform_device_register_full(const struct platform_device_info *pdevinfo)" },
  { name: "platform_device_unregister", file: "drivers/base/platform.c", exports: G, proto: "void platform_device_unregister(struct platform_device *pdev)" },
  // The nvdimm stack (apis/bus.ts, acpi.ts, block.ts, nvdimm.ts); classes as in 4.19-5.0.
  // drivers/base/bus.c, core.c, driver.c
  { name: "bus_register", file: "drivers/base/bus.c", exports: G, proto: "int bus_register(struct bus_type *bus)" },
  { name: "bus_unregister", file: "drivers/base/bus.c", exports: G, proto: "void bus_unregister(struct bus_type *bus)" },
  { name: "device_register", file: "drivers/base/core.c", exports: G, proto: "int device_register(struct device *dev)" },
  { name: "device_unregister", file: "drivers/base/core.c", exports: G, proto: "void device_unregister(struct device *dev)" },
  { name: "driver_register", file: "drivers/base/driver.c", exports: G, proto: "int driver_register(struct device_driver *drv)" },
  { name: "driver_unregister", file: "drivers/base/driver.c", exports: G, proto: "void driver_unregister(struct device_driver *drv)" },
  // kernel/workqueue.c
  { name: "system_wq", file: "kernel/workqueue.c", exports: P, proto: "struct workqueue_struct *system_wq", data: true },
  { name: "queue_work_on", file: "kernel/workqueue.c", exports: P, proto: "bool queue_work_on(int cpu, struct workqueue_struct *wq, struct work_struct *work)" },
  { name: "flush_workqueue", file: "kernel/workqueue.c", exports: P, proto: "void flush_workqueue(struct workqueue_struct *wq)" },
  // drivers/acpi/bus.c, drivers/acpi/acpica/tbxface.c
  { name: "acpi_bus_register_driver", file: "drivers/acpi/bus.c", exports: P, proto: "int acpi_bus_register_driver(struct acpi_driver *driver)" },
  { name: "acpi_bus_unregister_driver", file: "drivers/acpi/bus.c", exports: P, proto: "void acpi_bus_unregister_driver(struct acpi_driver *driver)" },
  { name: "acpi_get_table", file: "drivers/acpi/acpica/tbxface.c", exports: P, proto: "acpi_status acpi_get_table(char *signature, u32 instance, struct acpi_table_header **out_table)" },
  // block/blk-core.c, blk-settings.c, blk-mq.c, genhd.c, bio.c, fs/block_dev.c
  { name: "blk_alloc_queue_node", file: "block/blk-core.c", exports: P, proto: "struct request_queue *blk_alloc_queue_node(gfp_t gfp_mask, int node_id, spinlock_t *lock)" },
  { name: "blk_cleanup_queue", file: "block/blk-core.c", exports: P, proto: "void blk_cleanup_queue(struct request_queue *q)" },
  { name: "blk_queue_flag_set", file: "block/blk-core.c", exports: P, proto: "void blk_queue_flag_set(unsigned int flag, struct request_queue *q)" },
  { name: "blk_queue_make_request", file: "block/blk-settings.c", exports: P, proto: "void blk_queue_make_request(struct request_queue *q, make_request_fn *mfn)" },
  { name: "blk_queue_write_cache", file: "block/blk-settings.c", exports: G, proto: "void blk_queue_write_cache(struct request_queue *q, bool wc, bool fua)" },
  { name: "blk_queue_logical_block_size", file: "block/blk-settings.c", exports: P, proto: "void blk_queue_logical_block_size(struct request_queue *q, unsigned short size)" },
  { name: "blk_queue_physical_block_size", file: "block/blk-settings.c", exports: P, proto: "void blk_queue_physical_block_size(struct request_queue *q, unsigned int size)" },
  { name: "blk_queue_max_hw_sectors", file: "block/blk-settings.c", exports: P, proto: "void blk_queue_max_hw_sectors(struct request_queue *q, unsigned int max_hw_sectors)" },
  { name: "blk_freeze_queue_start", file: "block/blk-mq.c", exports: G, proto: "void blk_freeze_queue_start(struct request_queue *q)" },
  { name: "__alloc_disk_node", file: "block/genhd.c", exports: P, proto: "struct gendisk *__alloc_disk_node(int minors, int node_id)" },
  { name: "device_add_disk", file: "block/genhd.c", exports: P, proto: "void device_add_disk(struct device *parent, struct gendisk *disk)" },
  { name: "del_gendisk", file: "block/genhd.c", exports: P, proto: "void del_gendisk(struct gendisk *disk)" },
  { name: "put_disk", file: "block/genhd.c", exports: P, proto: "void put_disk(struct gendisk *disk)" },
  { name: "bio_endio", file: "block/bio.c", exports: P, proto: "void bio_endio(struct bio *bio)" },
  { name: "revalidate_disk", file: "fs/block_dev.c", exports: P, proto: "int revalidate_disk(struct gendisk *disk)" },
  // kernel/resource.c, kernel/memremap.c, arch/x86/lib/memcpy_64.S, arch/x86/lib/usercopy_64.c
  { name: "walk_iomem_res_desc", file: "kernel/resource.c", exports: G, proto: "int walk_iomem_res_desc(unsigned long desc, unsigned long flags, u64 start, u64 end, void *arg, int (*func)(struct resource *, void *))" },
  { name: "devm_memunmap", file: "kernel/memremap.c", exports: P, proto: "void devm_memunmap(struct device *dev, void *addr)" },
  { name: "devm_memremap", file: "kernel/memremap.c", exports: P, proto: "void *devm_memremap(struct device *dev, resource_size_t offset, size_t size, unsigned long flags)" },
  { name: "__memcpy_mcsafe", file: "arch/x86/lib/memcpy_64.S", exports: G, proto: "unsigned long __memcpy_mcsafe(void *dst, const void *src, size_t cnt)" },
  { name: "__memcpy_flushcache", file: "arch/x86/lib/usercopy_64.c", exports: G, proto: "void __memcpy_flushcache(void *_dst, const void *_src, size_t size)" },
  { name: "arch_wb_cache_pmem", file: "arch/x86/lib/usercopy_64.c", exports: G, proto: "void arch_wb_cache_pmem(void *addr, size_t size)" },
  // kernel/memremap.c (spec §10 H3/H4)
  { name: "devm_memremap_pages", file: "kernel/memremap.c", exports: GPL_IN_5_0, proto: "void *devm_memremap_pages(struct device *dev, struct dev_pagemap *pgmap)" },
  { name: "get_dev_pagemap", file: "kernel/memremap.c", exports: G, proto: "struct dev_pagemap *get_dev_pagemap(unsigned long pfn, struct dev_pagemap *pgmap)" },
  { name: "devmap_managed_key", file: "kernel/memremap.c", exports: P, proto: "struct static_key_false devmap_managed_key", data: true },
  { name: "dev_pagemap_get_ops", file: "kernel/memremap.c", exports: G, proto: "void dev_pagemap_get_ops(void)" },
  { name: "dev_pagemap_put_ops", file: "kernel/memremap.c", exports: G, proto: "void dev_pagemap_put_ops(void)" },
  { name: "__put_devmap_managed_page", file: "kernel/memremap.c", exports: P, proto: "void __put_devmap_managed_page(struct page *page)" },
  // mm/hmm.c (spec §10 H3/H4)
  { name: "hmm_device_new", file: "mm/hmm.c", exports: P, proto: "struct hmm_device *hmm_device_new(void *drvdata)" },
  { name: "hmm_device_put", file: "mm/hmm.c", exports: P, proto: "void hmm_device_put(struct hmm_device *hmm_device)" },
  { name: "hmm_devmem_add", file: "mm/hmm.c", exports: GPL_IN_5_0, proto: "struct hmm_devmem *hmm_devmem_add(const struct hmm_devmem_ops *ops, struct device *device, unsigned long size)" },
  { name: "hmm_devmem_add_resource", file: "mm/hmm.c", exports: GPL_IN_5_0, proto: "struct hmm_devmem *hmm_devmem_add_resource(const struct hmm_devmem_ops *ops, struct device *device, struct resource *res)" },
  { name: "hmm_devmem_remove", file: "mm/hmm.c", exports: GONE_IN_5_0, proto: "void hmm_devmem_remove(struct hmm_devmem *devmem)" },
  // mm/hmm.c (spec R4.5): the mirror and snapshot API, EXPORT_SYMBOL in 4.19-5.0
  { name: "hmm_mirror_register", file: "mm/hmm.c", exports: P, proto: "int hmm_mirror_register(struct hmm_mirror *mirror, struct mm_struct *mm)" },
  { name: "hmm_mirror_unregister", file: "mm/hmm.c", exports: P, proto: "void hmm_mirror_unregister(struct hmm_mirror *mirror)" },
  { name: "hmm_vma_get_pfns", file: "mm/hmm.c", exports: P, proto: "int hmm_vma_get_pfns(struct hmm_range *range)" },
  { name: "hmm_vma_range_done", file: "mm/hmm.c", exports: P, proto: "bool hmm_vma_range_done(struct hmm_range *range)" },
  { name: "hmm_vma_fault", file: "mm/hmm.c", exports: P, proto: "int hmm_vma_fault(struct hmm_range *range, bool block)" },
  { name: "hmm_vma_alloc_locked_page", file: "mm/hmm.c", exports: P, proto: "struct page *hmm_vma_alloc_locked_page(struct vm_area_struct *vma, unsigned long addr)" },
  // mm/migrate.c (spec R4.4)
  {
    name: "migrate_vma", file: "mm/migrate.c", exports: P,
    proto: "int migrate_vma(const struct migrate_vma_ops *ops, struct vm_area_struct *vma, unsigned long start, unsigned long end, unsigned long *src, unsigned long *dst, void *private)",
  },
  // mm/filemap.c, arch/x86/lib/copy_page_64.S, mm/mmap.c
  { name: "__lock_page", file: "mm/filemap.c", exports: P, proto: "void __lock_page(struct page *__page)" },
  { name: "unlock_page", file: "mm/filemap.c", exports: P, proto: "void unlock_page(struct page *page)" },
  { name: "copy_page", file: "arch/x86/lib/copy_page_64.S", exports: P, proto: "void copy_page(void *to, void *from)" },
  { name: "find_vma", file: "mm/mmap.c", exports: P, proto: "struct vm_area_struct *find_vma(struct mm_struct *mm, unsigned long addr)" },
  // mm/memory.c: inserting pages and pfns into a driver's vma. 4.19 had vmf_insert_mixed()
  // and vmf_insert_pfn() as inlines over vm_insert_mixed()/vm_insert_pfn(), also EXPORT_SYMBOL.
  { name: "vm_insert_page", file: "mm/memory.c", exports: P, proto: "int vm_insert_page(struct vm_area_struct *vma, unsigned long addr, struct page *page)" },
  { name: "vmf_insert_pfn", file: "mm/memory.c", exports: P, proto: "vm_fault_t vmf_insert_pfn(struct vm_area_struct *vma, unsigned long addr, unsigned long pfn)" },
  { name: "vmf_insert_mixed", file: "mm/memory.c", exports: P, proto: "vm_fault_t vmf_insert_mixed(struct vm_area_struct *vma, unsigned long addr, pfn_t pfn)" },
  { name: "unmap_mapping_range", file: "mm/memory.c", exports: P, proto: "void unmap_mapping_range(struct address_space *mapping, loff_t const holebegin, loff_t const holelen, int even_cows)" },
  { name: "zap_vma_ptes", file: "mm/memory.c", exports: G, proto: "void zap_vma_ptes(struct vm_area_struct *vma, unsigned long address, unsigned long size)" },
  // mm/memory.c: the zero page's pfn, which is_zero_pfn() compares with
  { name: "zero_pfn", file: "mm/memory.c", exports: P, proto: "unsigned long zero_pfn", data: true },
  // kernel/fork.c
  { name: "get_task_mm", file: "kernel/fork.c", exports: G, proto: "struct mm_struct *get_task_mm(struct task_struct *task)" },
  { name: "mmput", file: "kernel/fork.c", exports: G, proto: "void mmput(struct mm_struct *mm)" },
  { name: "__mmdrop", file: "kernel/fork.c", exports: G, proto: "void __mmdrop(struct mm_struct *mm)" },
  // arch/x86/kernel/cpu/common.c: EXPORT_PER_CPU_SYMBOL(current_task), which get_current() reads
  { name: "current_task", file: "arch/x86/kernel/cpu/common.c", exports: P, proto: "struct task_struct *current_task", data: true },
  // fs/char_dev.c
  { name: "register_chrdev_region", file: "fs/char_dev.c", exports: P, proto: "int register_chrdev_region(dev_t from, unsigned count, const char *name)" },
  { name: "alloc_chrdev_region", file: "fs/char_dev.c", exports: P, proto: "int alloc_chrdev_region(dev_t *dev, unsigned baseminor, unsigned count, const char *name)" },
  { name: "unregister_chrdev_region", file: "fs/char_dev.c", exports: P, proto: "void unregister_chrdev_region(dev_t from, unsigned count)" },
  { name: "cdev_init", file: "fs/char_dev.c", exports: P, proto: "void cdev_init(struct cdev *cdev, const struct file_operations *fops)" },
  { name: "cdev_add", file: "fs/char_dev.c", exports: P, proto: "int cdev_add(struct cdev *p, dev_t dev, unsigned count)" },
  { name: "cdev_del", file: "fs/char_dev.c", exports: P, proto: "void cdev_del(struct cdev *p)" },
  // drivers/base/class.c, drivers/base/core.c
  { name: "__class_create", file: "drivers/base/class.c", exports: G, proto: "struct class *__class_create(struct module *owner, const char *name, struct lock_class_key *key)" },
  { name: "class_destroy", file: "drivers/base/class.c", exports: G, proto: "void class_destroy(struct class *cls)" },
  { name: "device_create", file: "drivers/base/core.c", exports: G, proto: "struct device *device_create(struct class *class, struct device *parent, dev_t devt, void *drvdata, const char *fmt, ...)" },
  { name: "device_destroy", file: "drivers/base/core.c", exports: G, proto: "void device_destroy(struct class *class, dev_t devt)" },
  { name: "device_create_file", file: "drivers/base/core.c", exports: G, proto: "int device_create_file(struct device *dev, const struct device_attribute *attr)" },
  { name: "device_remove_file", file: "drivers/base/core.c", exports: G, proto: "void device_remove_file(struct device *dev, const struct device_attribute *attr)" },
  // drivers/char/misc.c
  { name: "misc_register", file: "drivers/char/misc.c", exports: P, proto: "int misc_register(struct miscdevice *misc)" },
  { name: "misc_deregister", file: "drivers/char/misc.c", exports: P, proto: "void misc_deregister(struct miscdevice *misc)" },
  // lib/usercopy.c (x86 defines neither INLINE_COPY_FROM_USER nor INLINE_COPY_TO_USER)
  { name: "_copy_from_user", file: "lib/usercopy.c", exports: P, proto: "unsigned long _copy_from_user(void *to, const void __user *from, unsigned long n)" },
  { name: "_copy_to_user", file: "lib/usercopy.c", exports: P, proto: "unsigned long _copy_to_user(void __user *to, const void *from, unsigned long n)" },
  // drivers/pci/pci-driver.c, drivers/pci/pci.c
  { name: "__pci_register_driver", file: "drivers/pci/pci-driver.c", exports: P, proto: "int __pci_register_driver(struct pci_driver *drv, struct module *owner, const char *mod_name)" },
  { name: "pci_unregister_driver", file: "drivers/pci/pci-driver.c", exports: P, proto: "void pci_unregister_driver(struct pci_driver *dev)" },
  { name: "pci_enable_device", file: "drivers/pci/pci.c", exports: P, proto: "int pci_enable_device(struct pci_dev *dev)" },
  { name: "pci_disable_device", file: "drivers/pci/pci.c", exports: P, proto: "void pci_disable_device(struct pci_dev *dev)" },
  { name: "pci_set_master", file: "drivers/pci/pci.c", exports: P, proto: "void pci_set_master(struct pci_dev *dev)" },
  { name: "pci_clear_master", file: "drivers/pci/pci.c", exports: P, proto: "void pci_clear_master(struct pci_dev *dev)" },
  // arch/x86/mm/ioremap.c (ioremap() is an inline over ioremap_nocache() until 5.5), lib/iomap.c
  { name: "ioremap_nocache", file: "arch/x86/mm/ioremap.c", exports: P, proto: "void __iomem *ioremap_nocache(resource_size_t phys_addr, unsigned long size)" },
  { name: "iounmap", file: "arch/x86/mm/ioremap.c", exports: P, proto: "void iounmap(volatile void __iomem *addr)" },
  { name: "ioread32", file: "lib/iomap.c", exports: P, proto: "unsigned int ioread32(void __iomem *addr)" },
  { name: "iowrite32", file: "lib/iomap.c", exports: P, proto: "void iowrite32(u32 val, void __iomem *addr)" },
  // arch/x86/kernel/pci-dma.c: the DMA ops the dma-mapping.h inlines reach through get_dma_ops()
  { name: "dma_ops", file: "arch/x86/kernel/pci-dma.c", exports: P, proto: "const struct dma_map_ops *dma_ops", data: true },
  // mm/mempolicy.c (CONFIG_NUMA): alloc_page_vma() is a macro over it
  { name: "alloc_pages_vma", file: "mm/mempolicy.c", exports: P, proto: "struct page *alloc_pages_vma(gfp_t gfp, int order, struct vm_area_struct *vma, unsigned long addr, int node, bool hugepage)" },
  // kernel/panic.c: WARN()'s message (4.15+, x86 __WARN_FLAGS)
  { name: "__warn_printk", file: "kernel/panic.c", exports: P, proto: "void __warn_printk(const char *fmt, ...)" },
  // kernel/module.c
  // genksyms expands struct module and the others into module_layout's CRC, and their layout
  // changes with every release: a module built for another version fails here first.
  {
    name: "module_layout", file: "kernel/module.c", exports: P,
    proto: "void module_layout(struct module *mod, struct modversion_info *ver, struct kernel_param *kp, struct kernel_symbol *ks, struct tracepoint * const *tp)",
    protoIn: Object.fromEntries(KERNEL_VERSIONS.map((v) => [v, `void module_layout(struct module *mod, struct modversion_info *ver, struct kernel_param *kp, struct kernel_symbol *ks, struct tracepoint * const *tp) /* ${v} */`])),
  },
  { name: "module_refcount", file: "kernel/module.c", exports: P, proto: "int module_refcount(struct module *mod)" },
  { name: "try_module_get", file: "kernel/module.c", exports: P, proto: "bool try_module_get(struct module *module)" },
  { name: "module_put", file: "kernel/module.c", exports: P, proto: "void module_put(struct module *module)" },
  { name: "__module_get", file: "kernel/module.c", exports: P, proto: "void __module_get(struct module *module)" },
  { name: "__symbol_get", file: "kernel/module.c", exports: G, proto: "void *__symbol_get(const char *symbol)" },
  { name: "__symbol_put", file: "kernel/module.c", exports: P, proto: "void __symbol_put(const char *symbol)" },
];

const BY_NAME = new Map(SYMBOLS.map((s) => [s.name, s]));

export function kernelSymbols(): readonly KernelSymbol[] {
  return SYMBOLS;
}

export function kernelSymbol(name: string): KernelSymbol | undefined {
  return BY_NAME.get(name);
}

/** The export class of `name` in `version`, or undefined when that version does not export it. */
export function exportClass(name: string, version: KernelVersion): ExportClass | undefined {
  return BY_NAME.get(name)?.exports[version];
}

/**
 * The modversions CRC of a symbol in a version: genksyms hashes the expanded declaration;
 * kemu hashes its prototype (the newest one when no version is given).
 */
export function symbolCrc(sym: KernelSymbol, version?: KernelVersion): number {
  return crc32((version && sym.protoIn?.[version]) ?? sym.proto);
}

/** One Module.symvers line in the 4.19-5.3 layout: "crc\tsymbol\tmodule\texport-type". */
export function symversLine(crc: number | null, name: string, module: string, cls: ExportClass): string {
  return `0x${(crc ?? 0).toString(16).padStart(8, "0")}\t${name}\t${module}\t${cls}`;
}

/** Module.symvers for vmlinux; CRCs only under CONFIG_MODVERSIONS (0x00000000 otherwise). */
export function moduleSymvers(version: KernelVersion, modversions: boolean): string {
  return SYMBOLS.filter((s) => s.exports[version])
    .map((s) => symversLine(modversions ? symbolCrc(s, version) : null, s.name, "vmlinux", s.exports[version]!))
    .join("\n") + "\n";
}
