// ioremap()/iounmap() (arch/x86/mm/ioremap.c) and ioread32()/iowrite32() (lib/iomap.c): MMIO
// space mapped into the kernel's vmalloc/ioremap area, and 32-bit accesses through it.
//
// A cookie is a kernel virtual address in that area. x86-64 puts VMALLOC_START at
// 0xffffc90000000000; kemu writes such addresses as signed 64-bit values (-0x370000000000 +
// offset), which are exact JavaScript numbers, so a driver can add register offsets to the
// cookie as C code adds them to a void __iomem *. They are far below -MAX_ERRNO: IS_ERR() is
// false for them, and NULL (0) is the failure value.

import { IORES_DESC_NONE, IORESOURCE_SYSTEM_RAM, REGION_DISJOINT } from "./resource.ts";
import { PAGE_SIZE } from "./memmap.ts";
import type { Kernel } from "../kernel.ts";

/** VMALLOC_START (0xffffc90000000000) as a signed 64-bit number. */
export const VMALLOC_START = -0x370000000000;
/** VMALLOC_SIZE_TB 32 (4-level paging): the area ends here (exclusive). */
export const VMALLOC_END = VMALLOC_START + 32 * 2 ** 40;

/** Who decodes a physical MMIO address: the PCI subsystem routes it to the function's BAR. */
export interface MmioDecoder {
  read32(phys: number): number;
  write32(phys: number, value: number): void;
}

/** struct vm_struct of one ioremap() */
export interface IoMapping {
  /** The page-aligned cookie of the area, and its size (a page multiple, plus the guard page). */
  readonly addr: number;
  readonly size: number;
  /** The page-aligned physical address it maps. */
  readonly phys: number;
}

export class IoRemap {
  readonly #k: Kernel;
  readonly #decoder: MmioDecoder;
  /** Live mappings by their area address, in address order of creation (the area only grows). */
  readonly #areas = new Map<number, IoMapping>();
  /** Sorted area addresses, for the lookup of an access. */
  #sorted: number[] = [];
  #next = VMALLOC_START;

  constructor(k: Kernel, decoder: MmioDecoder) {
    this.#k = k;
    this.#decoder = decoder;
  }

  /**
   * ioremap() = ioremap_nocache() = __ioremap_caller(..., _PAGE_CACHE_MODE_UC_MINUS): NULL (0)
   * for an empty or wrapping range, an address beyond the physical address space, or RAM.
   */
  ioremap(phys: number, size: number): number {
    const k = this.#k;
    const last = phys + size - 1;
    if (!size || last < phys) return 0;
    if (phys < 0 || last >= 2 ** k.config.physBits) {
      k.printk(`\x014ioremap: invalid physical address ${phys.toString(16)}\n`);
      k.warnOnce("__ioremap_caller:invalid", { file: "arch/x86/mm/ioremap.c", func: "__ioremap_caller" }, null);
      return 0;
    }
    // "Don't allow anybody to remap normal RAM that we're using.."
    if (k.mm.iomem.region_intersects(phys, size, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE) !== REGION_DISJOINT) {
      const pa = (v: number) => "0x" + v.toString(16).padStart(16, "0");
      k.warnOnce("__ioremap_caller:ram", { file: "arch/x86/mm/ioremap.c", func: "__ioremap_caller" }, `ioremap on RAM at ${pa(phys)} - ${pa(last)}\n`);
      return 0;
    }
    const offset = phys % PAGE_SIZE;
    const start = phys - offset;
    const mapped = Math.ceil((last + 1 - start) / PAGE_SIZE) * PAGE_SIZE;
    // get_vm_area_caller(): the area and a guard page after it.
    const area = { addr: this.#next, size: mapped + PAGE_SIZE, phys: start };
    if (area.addr + area.size > VMALLOC_END) return 0;
    this.#next += area.size;
    this.#areas.set(area.addr, area);
    this.#sorted.push(area.addr);
    return area.addr + offset;
  }

  /** iounmap(): "iounmap: bad address %p" and a stack dump for an address no area starts at. */
  iounmap(addr: number): void {
    const k = this.#k;
    const base = addr - (((addr % PAGE_SIZE) + PAGE_SIZE) % PAGE_SIZE);
    const area = this.#areas.get(base);
    if (!area) {
      k.printk(`\x013iounmap: bad address ${k.hashPointer(BigInt.asUintN(64, BigInt(addr)))}\n`);
      k.bugs.dumpStack(4, ["iounmap"]);
      return;
    }
    this.#areas.delete(base);
    this.#sorted = this.#sorted.filter((a) => a !== base);
  }

  /** The physical address behind `addr` for an access of `len` bytes, or null (no mapping). */
  translate(addr: number, len: number): number | null {
    const s = this.#sorted;
    let lo = 0;
    let hi = s.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid]! <= addr) lo = mid + 1;
      else hi = mid - 1;
    }
    const area = hi >= 0 ? this.#areas.get(s[hi]!) : undefined;
    if (!area || addr + len > area.addr + area.size - PAGE_SIZE) return null;
    return area.phys + (addr - area.addr);
  }

  read32(phys: number): number {
    return this.#decoder.read32(phys) >>> 0;
  }

  write32(phys: number, value: number): void {
    this.#decoder.write32(phys, value >>> 0);
  }

  /** Mappings still in place (tests, debugging). */
  get mappings(): number {
    return this.#areas.size;
  }
}
