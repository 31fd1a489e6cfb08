// nouveau_drm.c: the PCI driver for NVIDIA GPUs and the device node each GPU gets.
//
// probe: bring the device up and identify it (nouveau_device.ts), report VRAM and the GPU's
// address space as nouveau_ttm_init() does, register VRAM as device memory
// (nouveau_dmem.ts), and create the render node. kemu has no DRM core: the node is a misc
// device named "dri/renderD<128 + minor>", whose /dev path is the one the DRM core would
// create, and its ioctl is drm_ioctl()'s dispatch of the driver's ioctls (the SVM ones of
// nouveau_svm.ts and kemu's vector add of nouveau_exec.ts).
//
// Each open file is a client (struct nouveau_cli) and holds a reference on the module
// (fops.owner), as VRAM in use does (nouveau_dmem.ts): rmmod says the module is in use.
// The module's entry and .modinfo are in nouveau.ts.

import {
  THIS_MODULE,
  _IOC_DIR, _IOC_NR, _IOC_SIZE, copy_from_user, copy_to_user, dma_set_mask, misc_deregister, misc_register, pci_get_drvdata, pci_name,
  pci_register_driver, pci_set_drvdata, pci_unregister_driver, printk, EFAULT, EINVAL, KERN_INFO, MISC_DYNAMIC_MINOR, PCI_ANY_ID,
  PCI_BASE_CLASS_DISPLAY, PCI_VENDOR_ID_NVIDIA, PCI_VENDOR_ID_NVIDIA_SGS, type file, type inode, type miscdevice, type pci_dev, type pci_driver,
} from "kemu/kernel";
import { nvkm_device_del, nvkm_device_pci_new } from "./nouveau_device.ts";
import { nouveau_dmem_fini, nouveau_dmem_init } from "./nouveau_dmem.ts";
import { DRIVER_DATE, DRIVER_MAJOR, DRIVER_MINOR, DRIVER_NAME, DRIVER_PATCHLEVEL, NV_INFO, type nouveau_cli, type nouveau_drm } from "./nouveau_drv.ts";
import { nouveau_exec_vadd } from "./nouveau_exec.ts";
import { nouveau_vram_heap } from "./nouveau_bo.ts";
import { nouveau_svmm_bind, nouveau_svmm_fini, nouveau_svmm_init } from "./nouveau_svm.ts";
import {
  DRM_COMMAND_BASE, DRM_COMMAND_END, DRM_IOCTL_NOUVEAU_KEMU_VADD, DRM_IOCTL_NOUVEAU_SVM_BIND, DRM_IOCTL_NOUVEAU_SVM_INIT,
} from "./nouveau_uapi.ts";

/** nouveau_drm_pci_table: any NVIDIA (or NVIDIA/SGS) function of the display class. */
const nouveau_drm_pci_table = [
  { vendor: PCI_VENDOR_ID_NVIDIA, device: PCI_ANY_ID, subvendor: PCI_ANY_ID, subdevice: PCI_ANY_ID, class: PCI_BASE_CLASS_DISPLAY << 16, class_mask: 0xff << 16 },
  { vendor: PCI_VENDOR_ID_NVIDIA_SGS, device: PCI_ANY_ID, subvendor: PCI_ANY_ID, subdevice: PCI_ANY_ID, class: PCI_BASE_CLASS_DISPLAY << 16, class_mask: 0xff << 16 },
  {},
];

/** The GPU VMM's size on Pascal (49-bit virtual addresses): what "GART" reports. */
const GP100_VMM_LIMIT = 2 ** 49;
/** gp100 MMU dma_bits */
const GP100_DMA_BITS = 47;

/** drm minors in use (the DRM core's idr). */
const minors = new Set<number>();

// ---- the device node ------------------------------------------------------------------------

type ioctl_func = (drm: nouveau_drm, cli: nouveau_cli, data: Uint8Array) => number;

/** struct drm_ioctl_desc nouveau_ioctls[], at DRM_IOCTL_NR(cmd) - DRM_COMMAND_BASE. */
const nouveau_ioctls = new Map<number, { cmd: number; func: ioctl_func }>([
  [_IOC_NR(DRM_IOCTL_NOUVEAU_SVM_INIT) - DRM_COMMAND_BASE, { cmd: DRM_IOCTL_NOUVEAU_SVM_INIT, func: nouveau_svmm_init }],
  [_IOC_NR(DRM_IOCTL_NOUVEAU_SVM_BIND) - DRM_COMMAND_BASE, { cmd: DRM_IOCTL_NOUVEAU_SVM_BIND, func: nouveau_svmm_bind }],
  [_IOC_NR(DRM_IOCTL_NOUVEAU_KEMU_VADD) - DRM_COMMAND_BASE, { cmd: DRM_IOCTL_NOUVEAU_KEMU_VADD, func: nouveau_exec_vadd }],
]);

/** IOC_IN / IOC_OUT as _IOC_DIR() bits */
const IOC_IN = 1;
const IOC_OUT = 2;

/**
 * drm_ioctl(): the driver's ioctl by number; the argument copied in for as much as both sides
 * say is input (zero-filled up to the driver's size), and out for as much as both say is
 * output, even when the ioctl failed. An ioctl the driver does not have is -EINVAL.
 */
function drm_ioctl(drm: nouveau_drm, filp: file, cmd: number, arg: number): number {
  const cli = filp.private_data as nouveau_cli;
  const nr = _IOC_NR(cmd);
  if (nr < DRM_COMMAND_BASE || nr >= DRM_COMMAND_END) return -EINVAL;
  const ioctl = nouveau_ioctls.get(nr - DRM_COMMAND_BASE);
  if (!ioctl) return -EINVAL;
  const drv_size = _IOC_SIZE(ioctl.cmd);
  let in_size = _IOC_SIZE(cmd);
  let out_size = in_size;
  if ((_IOC_DIR(cmd) & _IOC_DIR(ioctl.cmd) & IOC_IN) === 0) in_size = 0;
  if ((_IOC_DIR(cmd) & _IOC_DIR(ioctl.cmd) & IOC_OUT) === 0) out_size = 0;
  const kdata = new Uint8Array(Math.max(in_size, out_size, drv_size));
  if (in_size && copy_from_user(kdata, arg, in_size) !== 0) return -EFAULT;
  let ret = ioctl.func(drm, cli, kdata);
  if (out_size && copy_to_user(arg, kdata, out_size) !== 0) ret = -EFAULT;
  return ret;
}

/** The file operations of one device's node: open makes a client of the file. */
function nouveau_fops(drm: nouveau_drm): miscdevice["fops"] {
  return {
    owner: THIS_MODULE,
    open: function nouveau_drm_open(_inode: inode, filp: file) {
      const cli: nouveau_cli = { name: DRIVER_NAME, drm, svmm: null };
      filp.private_data = cli;
      return 0;
    },
    release: function nouveau_drm_postclose(_inode: inode, filp: file) {
      nouveau_svmm_fini(filp.private_data as nouveau_cli);
      return 0;
    },
    unlocked_ioctl: function nouveau_drm_ioctl(filp: file, cmd: number, arg: number) {
      return drm_ioctl(drm, filp, cmd, arg);
    },
  };
}

// ---- the PCI driver -------------------------------------------------------------------------

/** nouveau_drm_probe() */
function nouveau_drm_probe(pdev: pci_dev, _id: unknown): number {
  const device = nvkm_device_pci_new(pdev);
  if (typeof device === "number") return device;
  let minor = 0;
  while (minors.has(minor)) minor++;
  const drm: nouveau_drm = { pdev, dev: pdev.dev, device, minor, misc: null, dmem: null, vram_heap: nouveau_vram_heap(device.ram_size), vmm_inst: new Set() };
  // nouveau_ttm_init()
  dma_set_mask(pdev.dev, 2 ** GP100_DMA_BITS - 1);
  NV_INFO(drm, "VRAM: %d MiB\n", Math.floor(device.ram_size / 2 ** 20));
  NV_INFO(drm, "GART: %d MiB\n", GP100_VMM_LIMIT / 2 ** 20);
  nouveau_dmem_init(drm);
  // drm_dev_register(): the render node.
  const misc: miscdevice = { minor: MISC_DYNAMIC_MINOR, name: `dri/renderD${128 + minor}`, fops: nouveau_fops(drm) };
  const ret = misc_register(misc);
  if (ret) {
    nouveau_dmem_fini(drm);
    nvkm_device_del(device);
    return ret;
  }
  drm.misc = misc;
  minors.add(minor);
  pci_set_drvdata(pdev, drm);
  printk(KERN_INFO + "[drm] Initialized %s %d.%d.%d %s for %s on minor %d\n", DRIVER_NAME, DRIVER_MAJOR, DRIVER_MINOR, DRIVER_PATCHLEVEL, DRIVER_DATE, pci_name(pdev), minor);
  return 0;
}

/** nouveau_drm_remove(): the node first (drm_dev_unregister()), then device memory, then the device. */
function nouveau_drm_remove(pdev: pci_dev): void {
  const drm = pci_get_drvdata(pdev) as nouveau_drm;
  if (drm.misc) misc_deregister(drm.misc);
  drm.misc = null;
  minors.delete(drm.minor);
  nouveau_dmem_fini(drm);
  nvkm_device_del(drm.device);
}

const nouveau_drm_pci_driver: pci_driver = {
  name: DRIVER_NAME,
  id_table: nouveau_drm_pci_table,
  probe: nouveau_drm_probe,
  remove: nouveau_drm_remove,
};

/** nouveau_drm_init() */
export function nouveau_drm_init(): number {
  return pci_register_driver(nouveau_drm_pci_driver);
}

/** nouveau_drm_exit(): every device is removed first. */
export function nouveau_drm_exit(): void {
  pci_unregister_driver(nouveau_drm_pci_driver);
}
