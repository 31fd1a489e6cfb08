// nvkm/engine/device/{pci,base}.c: bring the PCI function up, map its registers (BAR0), read
// PMC_BOOT_0 to identify the chip ("NVIDIA %s (%08x)", or "unknown chipset (%08x)" and
// -ENODEV), and the VRAM size.

import {
  dev_err, dev_info, ioread32, ioremap, iounmap, iowrite32, pci_disable_device, pci_enable_device, pci_resource_len, pci_resource_start,
  pci_set_master, ENODEV, ENOMEM, type pci_dev,
} from "kemu/kernel";
import { NV_PFB_VRAM_SIZE, NV_PMC_BOOT_0 } from "./nouveau_reg.ts";

/** struct nvkm_device, as much of it as this driver uses. */
export interface nvkm_device {
  pdev: pci_dev;
  /** device->pri: BAR0 mapped */
  pri: number;
  boot0: number;
  chipset: number;
  chiprev: number;
  name: string;
  /** fb->ram->size */
  ram_size: number;
}

/** The chipsets this driver knows (nvkm_device_ctor()'s switch, Pascal and later). */
const CHIPSETS: Readonly<Record<number, string>> = {
  0x130: "GP100", 0x132: "GP102", 0x134: "GP104", 0x136: "GP106", 0x137: "GP107", 0x138: "GP108",
  0x140: "GV100", 0x162: "TU102", 0x164: "TU104", 0x166: "TU106", 0x167: "TU117", 0x168: "TU116",
};

/** NV_DEVICE_INFO_V0_PASCAL and later: what nouveau_dmem_init() requires. */
export function nvkm_is_pascal_or_later(device: nvkm_device): boolean {
  return device.chipset >= 0x130;
}

export function nvkm_rd32(device: nvkm_device, addr: number): number {
  return ioread32(device.pri + addr);
}

export function nvkm_wr32(device: nvkm_device, addr: number, data: number): void {
  iowrite32(data >>> 0, device.pri + addr);
}

/** nvkm_device_pci_new(): the device, or a negative errno with the function left disabled. */
export function nvkm_device_pci_new(pdev: pci_dev): nvkm_device | number {
  let ret = pci_enable_device(pdev);
  if (ret) return ret;
  pci_set_master(pdev);
  const mmio_base = pci_resource_start(pdev, 0);
  const mmio_size = pci_resource_len(pdev, 0);
  const pri = ioremap(mmio_base, mmio_size);
  if (!pri) {
    dev_err(pdev.dev, "unable to map PRI\n");
    pci_disable_device(pdev);
    return -ENOMEM;
  }
  const boot0 = ioread32(pri + NV_PMC_BOOT_0);
  const device: nvkm_device = { pdev, pri, boot0, chipset: 0, chiprev: 0, name: "", ram_size: 0 };
  if ((boot0 & 0x1f000000) > 0) {
    device.chipset = (boot0 & 0x1ff00000) >>> 20;
    device.chiprev = boot0 & 0x000000ff;
  }
  const name = CHIPSETS[device.chipset];
  if (!name) {
    dev_err(pdev.dev, "unknown chipset (%08x)\n", boot0);
    ret = -ENODEV;
  } else {
    device.name = name;
    dev_info(pdev.dev, "NVIDIA %s (%08x)\n", name, boot0);
    const v = nvkm_rd32(device, NV_PFB_VRAM_SIZE);
    device.ram_size = (v & 0xff) * 2 ** 32 + ((v & 0xffffff00) >>> 0);
  }
  if (ret) {
    nvkm_device_del(device);
    return ret;
  }
  return device;
}

/** nvkm_device_del(): unmap, and the function off again. */
export function nvkm_device_del(device: nvkm_device): void {
  iounmap(device.pri);
  device.pri = 0;
  pci_disable_device(device.pdev);
}
