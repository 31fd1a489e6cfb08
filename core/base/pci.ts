// A minimal PCI (drivers/pci): root bus 0000:00 behind a host bridge, one function per
// configured GPU, and the "pci" bus type drivers register with (pci_register_driver() with an
// id_table, probe(pdev, id) and remove(pdev)).
//
// Enumeration at boot reads what firmware (SeaBIOS/OVMF on QEMU's pc machine) left behind: the
// host bridge windows "PCI Bus 0000:00" in /proc/iomem (the legacy VGA window, the 32-bit hole
// from the top of low RAM to 0xfebfffff, and a 64-bit window after RAM and persistent memory,
// 1 GiB aligned, at least 2 GiB as QEMU's i440fx sizes it) and each function's BARs inside
// them: BAR0 (16 MiB of registers, 32-bit) packed at the top of the 32-bit hole, BAR1 (the
// VRAM aperture, 64-bit prefetchable, a power of two) in the 64-bit window, largest first.
// A machine without GPUs has no PCI functions modelled, and no root bus either.
//
// MMIO to a BAR goes to the function's model; DMA from a function reaches system RAM only
// while it is a bus master (pci_set_master()).

import { ConfigError } from "../config.ts";
import { EINVAL, ENODEV } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import { ALIGN } from "../mm/memmap.ts";
import { IoRemap } from "../mm/ioremap.ts";
import {
  formatResource, IORES_DESC_NONE, IORESOURCE_BUS, IORESOURCE_MEM, IORESOURCE_MEM_64, IORESOURCE_PREFETCH, IORESOURCE_SYSTEM_RAM,
  IORESOURCE_WINDOW, REGION_INTERSECTS, Resource, resource_size,
} from "../mm/resource.ts";
import { object_gone } from "../lib/lifetime.ts";
import { BusType, Device, DeviceDriver } from "./device.ts";
import { NV_BAR0_SIZE, NvGpu } from "./nvgpu.ts";

/** include/linux/pci_ids.h, include/linux/mod_devicetable.h */
export const PCI_ANY_ID = 0xffffffff;
export const PCI_VENDOR_ID_NVIDIA = 0x10de;
export const PCI_VENDOR_ID_NVIDIA_SGS = 0x12d2;
export const PCI_BASE_CLASS_DISPLAY = 0x03;
export const PCI_CLASS_DISPLAY_VGA = 0x0300;
/** include/uapi/linux/pci_regs.h */
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_STD_RESOURCES = 0;
export const PCI_STD_RESOURCE_END = 5;
export const PCI_ROM_RESOURCE = 6;
/** include/linux/dma-direction.h */
export const DMA_BIDIRECTIONAL = 0;
export const DMA_TO_DEVICE = 1;
export const DMA_FROM_DEVICE = 2;
export const DMA_NONE = 3;
/** include/linux/dma-mapping.h */
export const DMA_ATTR_SKIP_CPU_SYNC = 1 << 5;

const SZ_1G = 2 ** 30;
const FOUR_G = 4 * SZ_1G;
/** Where the 32-bit hole ends: the IOAPIC at 0xfec00000 follows it. */
const HOLE32_END = 0xfec00000;
/** QEMU i440fx's default pci-hole64-size. */
const HOLE64_MIN = 2 * SZ_1G;
/** Functions sit in slots 02-1f (00 is the host bridge, 01 the ISA bridge). */
const FIRST_SLOT = 2;

/** struct pci_device_id */
export interface PciDeviceId {
  vendor: number;
  device: number;
  subvendor: number;
  subdevice: number;
  class: number;
  class_mask: number;
  driver_data: number;
}

/** struct pci_dev */
export class PciDev {
  readonly bus = 0;
  readonly devfn: number;
  readonly vendor: number;
  readonly device: number;
  readonly subsystem_vendor: number;
  readonly subsystem_device: number;
  /** 3 bytes: base class, sub-class, prog-if */
  readonly class: number;
  readonly revision: number;
  /** BARs 0-5 and the ROM; null where the function has none. */
  readonly resource: (Resource | null)[] = [null, null, null, null, null, null, null];
  readonly dev: Device;
  readonly gpu: NvGpu;
  /** PCI_COMMAND: firmware enabled memory decode when it assigned the BARs. */
  command = PCI_COMMAND_MEMORY;
  enable_cnt = 0;
  /** dev->dma_mask: 32 bits until the driver asks for more (pci_setup_device). */
  dma_mask = 0xffffffff;
  /** pdev->driver */
  driver: PciDriverOps | null = null;

  constructor(devfn: number, gpu: NvGpu) {
    this.devfn = devfn;
    this.gpu = gpu;
    this.vendor = gpu.vendor;
    this.device = gpu.device;
    this.subsystem_vendor = gpu.subsystem_vendor;
    this.subsystem_device = gpu.subsystem_device;
    this.class = gpu.class;
    this.revision = gpu.revision;
    this.dev = new Device(pci_name(0, devfn));
    // pci_uevent(): MODALIAS, which udev hands to modprobe.
    const hex = (v: number, w: number) => v.toString(16).toUpperCase().padStart(w, "0");
    this.dev.modalias =
      `pci:v${hex(this.vendor, 8)}d${hex(this.device, 8)}sv${hex(this.subsystem_vendor, 8)}sd${hex(this.subsystem_device, 8)}` +
      `bc${hex(this.class >> 16, 2)}sc${hex((this.class >> 8) & 0xff, 2)}i${hex(this.class & 0xff, 2)}`;
  }

  get is_busmaster(): boolean {
    return (this.command & PCI_COMMAND_MASTER) !== 0;
  }
}

/** "0000:00:02.0" */
export function pci_name(bus: number, devfn: number): string {
  return `0000:${bus.toString(16).padStart(2, "0")}:${(devfn >> 3).toString(16).padStart(2, "0")}.${devfn & 7}`;
}

/** struct pci_driver as the kernel holds it. */
export interface PciDriverOps {
  name: string;
  id_table: PciDeviceId[];
  probe: ((pdev: PciDev, id: PciDeviceId) => number) | null;
  remove: ((pdev: PciDev) => void) | null;
  /** The module registering it ("" for the core). */
  owner: string;
}

/** pci_match_one_device() */
function pci_match_one_device(id: PciDeviceId, dev: PciDev): boolean {
  return (
    (id.vendor === PCI_ANY_ID || id.vendor === dev.vendor) &&
    (id.device === PCI_ANY_ID || id.device === dev.device) &&
    (id.subvendor === PCI_ANY_ID || id.subvendor === dev.subsystem_vendor) &&
    (id.subdevice === PCI_ANY_ID || id.subdevice === dev.subsystem_device) &&
    ((id.class ^ dev.class) & id.class_mask) === 0
  );
}

/** pci_match_id(): the first entry that matches, up to the all-zero terminator. */
export function pci_match_id(ids: readonly PciDeviceId[], dev: PciDev): PciDeviceId | null {
  for (const id of ids) {
    if (!id.vendor && !id.subvendor && !id.class_mask) break;
    if (pci_match_one_device(id, dev)) return id;
  }
  return null;
}

export class PciSubsystem {
  readonly bus: BusType;
  /** ioremap() and the MMIO it reaches. */
  readonly io: IoRemap;
  readonly devices: PciDev[] = [];
  /** The host bridge windows ("PCI Bus 0000:00"), once enumerated. */
  readonly windows: Resource[] = [];
  readonly #k: Kernel;
  readonly #pdevs = new WeakMap<Device, PciDev>();
  readonly #drivers = new WeakMap<DeviceDriver, PciDriverOps>();

  constructor(k: Kernel) {
    this.#k = k;
    this.bus = new BusType("pci", (dev, drv) => {
      const pdev = this.#pdevs.get(dev);
      const ops = this.#drivers.get(drv);
      return !!pdev && !!ops && pci_match_id(ops.id_table, pdev) !== null;
    });
    k.base.bus_register(this.bus);
    this.io = new IoRemap(k, { read32: (p) => this.#mmioRead(p), write32: (p, v) => this.#mmioWrite(p, v) });
  }

  /** The pci_dev behind a struct device, if it is one. */
  to_pci_dev(dev: Device): PciDev | null {
    return this.#pdevs.get(dev) ?? null;
  }

  // ---- enumeration -------------------------------------------------------------------------

  /** pci_scan_root_bus(): the windows, then one function per configured GPU. */
  boot(): void {
    const k = this.#k;
    const gpus = k.config.gpus;
    if (!gpus.length) return;
    const iomem = k.mm.iomem;
    const e820End = (limit: number) => Math.max(0, ...k.mm.e820.map((e) => e.addr + e.size).filter((end) => end <= limit));
    const lowTop = ALIGN(e820End(HOLE32_END), 1 << 20);
    const start64 = ALIGN(Math.max(FOUR_G, e820End(Infinity)), SZ_1G);
    // BAR1s, largest first, each naturally aligned, from the start of the 64-bit window.
    const order = gpus.map((g, i) => ({ i, size: new NvGpu(g.vram).bar1Size })).sort((a, b) => b.size - a.size || a.i - b.i);
    const bar1 = new Map<number, number>();
    let cursor = start64;
    for (const { i, size } of order) {
      const at = ALIGN(cursor, size);
      bar1.set(i, at);
      cursor = at + size;
    }
    const end64 = ALIGN(Math.max(start64 + HOLE64_MIN, cursor), SZ_1G) - 1;
    if (end64 >= 2 ** k.config.physBits) {
      const big = order[0]!;
      throw new ConfigError(`gpus[${big.i}].vram`, `BAR 1 [mem 0x${bar1.get(big.i)!.toString(16)}-0x${(bar1.get(big.i)! + big.size - 1).toString(16)}] is beyond the ${k.config.physBits}-bit physical address space (physBits)`);
    }
    const window = (start: number, end: number) => new Resource(start, end, "PCI Bus 0000:00", IORESOURCE_MEM | IORESOURCE_WINDOW);
    // QEMU's 32-bit hole ends at 0xfebfffff, short of the IOAPIC at 0xfec00000.
    const windows = [window(0xa0000, 0xbffff), window(lowTop, HOLE32_END - 1), window(start64, end64)];
    k.printk("\x016PCI host bridge to bus 0000:00\n");
    for (const w of windows) {
      // pci_acpi_root_add_resources(): a window that conflicts is left out ("can't claim").
      if (iomem.insert_resource(iomem.root, w)) continue;
      this.windows.push(w);
      k.printk(`\x016pci_bus 0000:00: root bus resource ${formatResource(w, false)}\n`);
    }
    k.printk(`\x016pci_bus 0000:00: root bus resource ${formatResource(new Resource(0, 0xff, null, IORESOURCE_BUS), false)}\n`);
    let bar0Top = HOLE32_END;
    gpus.forEach((g, i) => {
      const gpu = new NvGpu(g.vram);
      const pdev = new PciDev((FIRST_SLOT + i) << 3, gpu);
      const name = pdev.dev.name;
      k.printk(`\x017pci ${name}: [${hex4(pdev.vendor)}:${hex4(pdev.device)}] type 00 class 0x${pdev.class.toString(16).padStart(6, "0")}\n`);
      bar0Top = this.#placeBar0(pdev, bar0Top);
      const b1 = bar1.get(i)!;
      pdev.resource[1] = new Resource(b1, b1 + gpu.bar1Size - 1, name, IORESOURCE_MEM | IORESOURCE_MEM_64 | IORESOURCE_PREFETCH);
      for (const [bar, reg] of [[0, 0x10], [1, 0x14]] as const) {
        const res = pdev.resource[bar]!;
        k.printk(`\x017pci ${name}: reg 0x${reg.toString(16)}: ${formatResource(res, false)}\n`);
        const parent = this.windows.find((w) => res.start >= w.start && res.end <= w.end) ?? iomem.root;
        iomem.request_resource(parent, res);
      }
      gpu.attach({
        dma_ok: (addr, len) => pdev.is_busmaster && addr >= 0 && iomem.region_intersects(addr, len, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE) === REGION_INTERSECTS,
        readPage: (pfn) => k.mm.physmem.readPage(pfn),
        writablePage: (pfn) => k.mm.physmem.writablePage(pfn),
      });
      this.#pdevs.set(pdev.dev, pdev);
      pdev.dev.release = () => {
        // The BARs firmware assigned stay in the tree (only a hot-unplug, which kemu does not
        // model, frees them); the function's hardware state goes with its struct device.
        gpu.release();
        this.devices.splice(this.devices.indexOf(pdev), 1);
        object_gone(pdev);
      };
      this.devices.push(pdev);
      k.base.device_register(pdev.dev, this.bus);
    });
  }

  /** BAR0 (16 MiB, 32-bit): the highest aligned free slot of the 32-bit hole below `top`. */
  #placeBar0(pdev: PciDev, top: number): number {
    const w = this.windows.find((r) => r.start < FOUR_G && r.end > 0x100000);
    for (let at = Math.floor((top - NV_BAR0_SIZE) / NV_BAR0_SIZE) * NV_BAR0_SIZE; w && at >= w.start; at -= NV_BAR0_SIZE) {
      const busy = [...w.children()].some((c) => c.start <= at + NV_BAR0_SIZE - 1 && c.end >= at);
      if (busy) continue;
      pdev.resource[0] = new Resource(at, at + NV_BAR0_SIZE - 1, pdev.dev.name, IORESOURCE_MEM);
      return at;
    }
    throw new ConfigError(`gpus[${(pdev.devfn >> 3) - FIRST_SLOT}]`, `no room for BAR 0 (16 MiB) in the 32-bit PCI hole ${w ? formatResource(w, false) : "(none)"}`);
  }

  // ---- MMIO --------------------------------------------------------------------------------

  /** The function and BAR that decode `phys`, while memory decode is on. */
  #decode(phys: number): { pdev: PciDev; bar: number; off: number } | null {
    for (const pdev of this.devices) {
      if (!(pdev.command & PCI_COMMAND_MEMORY)) continue;
      for (let bar = 0; bar <= PCI_STD_RESOURCE_END; bar++) {
        const r = pdev.resource[bar];
        if (r && phys >= r.start && phys + 3 <= r.end) return { pdev, bar, off: phys - r.start };
      }
    }
    return null;
  }

  /** Nobody decodes the address: the read completes with all ones (master abort). */
  #mmioRead(phys: number): number {
    const d = this.#decode(phys);
    return d ? d.pdev.gpu.mmio_read32(d.bar, d.off) : 0xffffffff;
  }

  #mmioWrite(phys: number, v: number): void {
    const d = this.#decode(phys);
    if (d) d.pdev.gpu.mmio_write32(d.bar, d.off, v);
  }

  // ---- drivers -----------------------------------------------------------------------------

  /** __pci_register_driver(): a device_driver on the pci bus; its devices probe now. */
  pci_register_driver(ops: PciDriverOps): DeviceDriver | number {
    const k = this.#k;
    if (!ops.name) return -EINVAL;
    const pdevs = this.#pdevs;
    const { probe, remove } = ops;
    // pci_device_probe() -> pci_call_probe() -> local_pci_probe(); pci_device_remove().
    const drv = new DeviceDriver(ops.name, {
      owner: ops.owner,
      probe: function pci_device_probe(dev: Device) {
        const pdev = pdevs.get(dev)!;
        const id = pci_match_id(ops.id_table, pdev);
        if (!id || !probe) return -ENODEV;
        pdev.driver = ops;
        const rc = k.bugs.frame("local_pci_probe", () => k.bugs.frame(k.symbolName(probe), () => probe(pdev, id)));
        if (rc) pdev.driver = null;
        return rc;
      },
      remove: function pci_device_remove(dev: Device) {
        const pdev = pdevs.get(dev)!;
        if (remove) k.bugs.frame(k.symbolName(remove), () => remove(pdev));
        pdev.driver = null;
      },
    });
    this.#drivers.set(drv, ops);
    const rc = k.base.driver_register(drv, this.bus);
    return rc ? rc : drv;
  }

  /** pci_unregister_driver(): every bound function is removed first. */
  pci_unregister_driver(drv: DeviceDriver): void {
    this.#k.base.driver_unregister(drv);
  }

  // ---- enable, bus mastering -----------------------------------------------------------------

  /** pci_enable_device(): memory decode on (it is from firmware), counted. */
  pci_enable_device(pdev: PciDev): number {
    if (++pdev.enable_cnt > 1) return 0;
    pdev.command |= PCI_COMMAND_MEMORY;
    return 0;
  }

  /** pci_disable_device(): "disabling already-disabled device" for one more than enabled. */
  pci_disable_device(pdev: PciDev): void {
    const k = this.#k;
    if (pdev.enable_cnt <= 0) {
      k.dev_WARN_ONCE(pdev.dev, `pci_disable_device:${pdev.dev.name}`, { file: "drivers/pci/pci.c", func: "pci_disable_device" }, "disabling already-disabled device");
    }
    // One disable too many leaves the count negative, as atomic_dec_return() does.
    if (--pdev.enable_cnt !== 0) return;
    // do_pci_disable_device(): bus mastering off.
    pdev.command &= ~PCI_COMMAND_MASTER;
  }

  /** pci_set_master() / pci_clear_master(). */
  pci_set_master(pdev: PciDev, on: boolean): void {
    pdev.command = on ? pdev.command | PCI_COMMAND_MASTER : pdev.command & ~PCI_COMMAND_MASTER;
  }
}

function hex4(v: number): string {
  return v.toString(16).padStart(4, "0");
}

/** For a BAR: its length as pci_resource_len() computes it (0 for none). */
export function pci_resource_len(pdev: PciDev, bar: number): number {
  const r = pdev.resource[bar];
  return r ? resource_size(r) : 0;
}
