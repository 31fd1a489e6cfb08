// The hardware behind a `gpus: [{ vram }]` entry: an NVIDIA Pascal GPU (GP104, PMC_BOOT_0
// 0x134000a1) as one PCI function. BAR0 holds 16 MiB of registers, BAR1 is the VRAM aperture,
// and the VRAM itself is memory of the device: its contents live in host memory the model owns
// (2 MiB blocks, allocated on the first write), not in the machine's RAM.
//
// Engines run synchronously when their launch register is written:
//   - PMC_BOOT_0 (0x000000) and the nv50-style VRAM size register (0x10020c) identify it.
//   - The copy engine takes the methods of the Pascal copy class, as nouveau's
//     nvc0b5_migrate_copy() pushes them (SET_SRC/DST_PHYS_MODE 0x260/0x264, OFFSET_IN/OUT,
//     PITCH, LINE_LENGTH_IN, LINE_COUNT 0x400-0x41c, LAUNCH_DMA 0x300), written directly at
//     0x104000 + method instead of through a channel's push buffer; physical mode only, VRAM
//     or host memory (DMA, which needs bus mastering) on either side.
//   - kemu's GPU MMU (0x1fa000) keeps a page table per address-space instance: VRAM or host
//     pages, writable or not.
//   - kemu's compute engine (0x1fb000) runs one kernel, c[i] = a[i] + b[i] over int32 arrays at
//     GPU virtual addresses. A page its MMU does not map (or maps read-only, for c) stops it
//     with a replayable fault the driver services before replaying; it counts the pages it
//     used from VRAM and from host memory.
// The MMU and compute register blocks are kemu's own, not NVIDIA's: a real GPU walks page
// tables in VRAM and runs shaders from a channel, far more than a driver test needs.

import { PAGE_SIZE } from "../mm/memmap.ts";

export const NV_VENDOR_ID = 0x10de;
/** GP104 [GeForce GTX 1080] */
export const NV_DEVICE_ID_GP104 = 0x1b80;
export const NV_BOOT0_GP104 = 0x134000a1;
/** Founders Edition subsystem */
export const NV_SUBSYSTEM_ID = 0x119e;
/** PCI_CLASS_DISPLAY_VGA << 8 */
export const NV_CLASS = 0x030000;
export const NV_BAR0_SIZE = 16 << 20;

// ---- registers (BAR0 offsets) ------------------------------------------------------------
export const NV_PMC_BOOT_0 = 0x000000;
/** nv50+: VRAM size, ((size >> 32) & 0xff) | (size & 0xffffff00) */
export const NV_PFB_VRAM_SIZE = 0x10020c;

export const NV_CE = 0x104000;
export const CE_SET_SRC_PHYS_MODE = 0x0260;
export const CE_SET_DST_PHYS_MODE = 0x0264;
export const CE_LAUNCH_DMA = 0x0300;
export const CE_OFFSET_IN_UPPER = 0x0400;
export const CE_OFFSET_IN_LOWER = 0x0404;
export const CE_OFFSET_OUT_UPPER = 0x0408;
export const CE_OFFSET_OUT_LOWER = 0x040c;
export const CE_PITCH_IN = 0x0410;
export const CE_PITCH_OUT = 0x0414;
export const CE_LINE_LENGTH_IN = 0x0418;
export const CE_LINE_COUNT = 0x041c;
/** kemu: launches completed (the value a fence waits for). */
export const CE_FENCE = 0x0f00;
/** kemu: launches that failed since the last read (cleared by reading). */
export const CE_ERRORS = 0x0f04;
/** SET_*_PHYS_MODE target */
export const CE_APER_VRAM = 0;
export const CE_APER_HOST = 1;
export const CE_LAUNCH_SRC_TYPE_PHYSICAL = 1 << 12;
export const CE_LAUNCH_DST_TYPE_PHYSICAL = 1 << 13;

export const NV_KEMU_MMU = 0x1fa000;
export const MMU_INST = 0x00;
export const MMU_VA_HI = 0x04;
export const MMU_VA_LO = 0x08;
export const MMU_PTE_HI = 0x0c;
export const MMU_PTE_LO = 0x10;
/** write: enter the latched PTE at the latched VA, then advance the VA by a page */
export const MMU_MAP = 0x14;
/** write N: remove N pages' entries from the latched VA */
export const MMU_UNMAP = 0x18;
/** write: remove every entry of the instance */
export const MMU_UNMAP_ALL = 0x1c;
export const MMU_INSTANCES = 64;
export const PTE_VALID = 1 << 0;
export const PTE_WRITE = 1 << 1;
export const PTE_APER_VRAM = 0 << 2;
export const PTE_APER_HOST = 2 << 2;

export const NV_KEMU_EXEC = 0x1fb000;
export const EXEC_INST = 0x00;
export const EXEC_A_HI = 0x04;
export const EXEC_A_LO = 0x08;
export const EXEC_B_HI = 0x0c;
export const EXEC_B_LO = 0x10;
export const EXEC_C_HI = 0x14;
export const EXEC_C_LO = 0x18;
export const EXEC_COUNT = 0x1c;
export const EXEC_LAUNCH = 0x20;
export const EXEC_STATUS = 0x24;
export const EXEC_FAULT_HI = 0x28;
export const EXEC_FAULT_LO = 0x2c;
export const EXEC_FAULT_INFO = 0x30;
export const EXEC_VRAM_PAGES = 0x34;
export const EXEC_HOST_PAGES = 0x38;
export const EXEC_DONE = 0x3c;
export const EXEC_LAUNCH_START = 1;
export const EXEC_LAUNCH_REPLAY = 2;
export const EXEC_LAUNCH_CANCEL = 3;
export const EXEC_STATUS_IDLE = 0;
export const EXEC_STATUS_FAULT = 1;
export const EXEC_STATUS_ERROR = 2;
/** FAULT_INFO: bit 0 the access was a write; bits 8-15 the reason */
export const EXEC_FAULT_WRITE = 1;
export const FAULT_REASON_NOT_PRESENT = 1 << 8;
export const FAULT_REASON_READ_ONLY = 2 << 8;
export const FAULT_REASON_MISALIGNED = 3 << 8;
export const FAULT_REASON_BUS_ERROR = 4 << 8;
export const FAULT_REASON_CANCELED = 5 << 8;

const VRAM_BLOCK = 2 << 20;
const ZERO_BLOCK = new Uint8Array(VRAM_BLOCK);

/** How the GPU reaches the machine: DMA into host memory, allowed only while it is a bus master. */
export interface GpuHost {
  /** May the function DMA to [addr, addr + len) (bus master on, and the range is RAM)? */
  dma_ok(addr: number, len: number): boolean;
  /** A host page's bytes: for reading (do not modify), or for writing. */
  readPage(pfn: number): Uint8Array;
  writablePage(pfn: number): Uint8Array;
}

interface Pte {
  write: boolean;
  host: boolean;
  /** VRAM offset or host physical address of the page */
  addr: number;
}

const hi32 = (v: number) => Math.floor(v / 2 ** 32) >>> 0;
const lo32 = (v: number) => v % 2 ** 32 >>> 0;
const join = (hi: number, lo: number) => hi * 2 ** 32 + lo;

export class NvGpu {
  // What its configuration space says.
  readonly vendor = NV_VENDOR_ID;
  readonly device = NV_DEVICE_ID_GP104;
  readonly subsystem_vendor = NV_VENDOR_ID;
  readonly subsystem_device = NV_SUBSYSTEM_ID;
  readonly class = NV_CLASS;
  readonly revision = NV_BOOT0_GP104 & 0xff;
  readonly vramSize: number;
  /** VRAM contents by 2 MiB block, allocated on first write. */
  readonly #vram = new Map<number, Uint8Array>();
  #host: GpuHost | null = null;

  // copy engine state
  readonly #ce = new Map<number, number>();
  #ceFence = 0;
  #ceErrors = 0;

  // MMU state
  readonly #vmm = new Map<number, Map<number, Pte>>();
  #mmuInst = 0;
  #mmuVa = [0, 0];
  #mmuPte = [0, 0];

  // compute engine state
  readonly #exec = new Map<number, number>();
  #status = EXEC_STATUS_IDLE;
  #done = 0;
  #fault = { addr: 0, info: 0 };
  #counted = new Set<string>();
  #vramPages = 0;
  #hostPages = 0;

  constructor(vramSize: number) {
    this.vramSize = vramSize;
  }

  /** The PCI layer hands over its DMA path when the function is enumerated. */
  attach(host: GpuHost): void {
    this.#host = host;
  }

  /** BAR sizes: BAR0 registers (32-bit), BAR1 the VRAM aperture (64-bit, prefetchable, a power of two). */
  get bar1Size(): number {
    let s = VRAM_BLOCK;
    while (s < this.vramSize) s *= 2;
    return s;
  }

  /** The device went away: its VRAM contents with it. */
  release(): void {
    this.#vram.clear();
    this.#vmm.clear();
    this.#host = null;
  }

  /** VRAM blocks holding contents (what the device's memory costs the host). */
  get vramBlocks(): number {
    return this.#vram.size;
  }

  // ---- VRAM ------------------------------------------------------------------------------

  /** A VRAM page's bytes (a view into its block); `write` allocates the block. */
  #vramPage(off: number, write: boolean): Uint8Array {
    const b = Math.floor(off / VRAM_BLOCK);
    let block = this.#vram.get(b);
    if (!block) {
      if (!write) return ZERO_BLOCK.subarray(off % VRAM_BLOCK, off % VRAM_BLOCK + PAGE_SIZE);
      this.#vram.set(b, (block = new Uint8Array(VRAM_BLOCK)));
    }
    const o = off % VRAM_BLOCK;
    return block.subarray(o - (o % PAGE_SIZE), o - (o % PAGE_SIZE) + PAGE_SIZE);
  }

  /** Read VRAM bytes (tests look at what the device holds). */
  vramRead(off: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let done = 0; done < len; ) {
      const a = off + done;
      const n = Math.min(len - done, PAGE_SIZE - (a % PAGE_SIZE));
      const page = this.#vramPage(a, false);
      out.set(page.subarray(a % PAGE_SIZE, (a % PAGE_SIZE) + n), done);
      done += n;
    }
    return out;
  }

  // ---- MMIO ------------------------------------------------------------------------------

  mmio_read32(bar: number, off: number): number {
    if (bar === 1) {
      if (off + 4 > this.vramSize) return 0xffffffff;
      const p = this.#vramPage(off, false);
      return new DataView(p.buffer, p.byteOffset).getUint32(off % PAGE_SIZE, true);
    }
    if (bar !== 0) return 0xffffffff;
    switch (off) {
      case NV_PMC_BOOT_0:
        return NV_BOOT0_GP104;
      case NV_PFB_VRAM_SIZE:
        return ((hi32(this.vramSize) & 0xff) | (lo32(this.vramSize) & 0xffffff00)) >>> 0;
      case NV_CE + CE_FENCE:
        return this.#ceFence >>> 0;
      case NV_CE + CE_ERRORS: {
        const e = this.#ceErrors;
        this.#ceErrors = 0;
        return e;
      }
      case NV_KEMU_EXEC + EXEC_STATUS:
        return this.#status;
      case NV_KEMU_EXEC + EXEC_FAULT_HI:
        return hi32(this.#fault.addr);
      case NV_KEMU_EXEC + EXEC_FAULT_LO:
        return lo32(this.#fault.addr);
      case NV_KEMU_EXEC + EXEC_FAULT_INFO:
        return this.#fault.info;
      case NV_KEMU_EXEC + EXEC_VRAM_PAGES:
        return this.#vramPages;
      case NV_KEMU_EXEC + EXEC_HOST_PAGES:
        return this.#hostPages;
      case NV_KEMU_EXEC + EXEC_DONE:
        return this.#done;
    }
    if (off >= NV_CE && off < NV_CE + 0x1000) return this.#ce.get(off - NV_CE) ?? 0;
    if (off >= NV_KEMU_EXEC && off < NV_KEMU_EXEC + 0x40) return this.#exec.get(off - NV_KEMU_EXEC) ?? 0;
    return 0;
  }

  mmio_write32(bar: number, off: number, v: number): void {
    if (bar === 1) {
      if (off + 4 > this.vramSize) return;
      const p = this.#vramPage(off, true);
      new DataView(p.buffer, p.byteOffset).setUint32(off % PAGE_SIZE, v, true);
      return;
    }
    if (bar !== 0) return;
    if (off >= NV_CE && off < NV_CE + 0x1000) {
      if (off - NV_CE === CE_LAUNCH_DMA) this.#ceLaunch(v);
      else this.#ce.set(off - NV_CE, v);
      return;
    }
    if (off >= NV_KEMU_MMU && off < NV_KEMU_MMU + 0x20) return this.#mmuWrite(off - NV_KEMU_MMU, v);
    if (off >= NV_KEMU_EXEC && off < NV_KEMU_EXEC + 0x40) {
      if (off - NV_KEMU_EXEC === EXEC_LAUNCH) this.#execLaunch(v);
      else this.#exec.set(off - NV_KEMU_EXEC, v);
    }
  }

  // ---- copy engine -----------------------------------------------------------------------

  /** One side of a copy: is every byte reachable? */
  #reachable(host: boolean, addr: number, len: number): boolean {
    if (host) return this.#host !== null && this.#host.dma_ok(addr, len);
    return addr >= 0 && addr + len <= this.vramSize;
  }

  /** LAUNCH_DMA: LINE_COUNT lines of LINE_LENGTH_IN bytes, all or nothing. */
  #ceLaunch(launch: number): void {
    const r = (m: number) => this.#ce.get(m) ?? 0;
    this.#ceFence++;
    const physical = CE_LAUNCH_SRC_TYPE_PHYSICAL | CE_LAUNCH_DST_TYPE_PHYSICAL;
    const srcHost = r(CE_SET_SRC_PHYS_MODE) === CE_APER_HOST;
    const dstHost = r(CE_SET_DST_PHYS_MODE) === CE_APER_HOST;
    const src = join(r(CE_OFFSET_IN_UPPER), r(CE_OFFSET_IN_LOWER));
    const dst = join(r(CE_OFFSET_OUT_UPPER), r(CE_OFFSET_OUT_LOWER));
    const len = r(CE_LINE_LENGTH_IN);
    const lines = r(CE_LINE_COUNT);
    const pin = r(CE_PITCH_IN);
    const pout = r(CE_PITCH_OUT);
    let ok = (launch & physical) === physical;
    for (let l = 0; ok && l < lines; l++) ok = this.#reachable(srcHost, src + l * pin, len) && this.#reachable(dstHost, dst + l * pout, len);
    if (!ok) {
      this.#ceErrors++;
      return;
    }
    for (let l = 0; l < lines; l++) this.#copy(srcHost, src + l * pin, dstHost, dst + l * pout, len);
  }

  #copy(srcHost: boolean, src: number, dstHost: boolean, dst: number, len: number): void {
    const host = this.#host!;
    for (let done = 0; done < len; ) {
      const s = src + done;
      const d = dst + done;
      const n = Math.min(len - done, PAGE_SIZE - (s % PAGE_SIZE), PAGE_SIZE - (d % PAGE_SIZE));
      const from = srcHost ? host.readPage(Math.floor(s / PAGE_SIZE)) : this.#vramPage(s, false);
      const to = dstHost ? host.writablePage(Math.floor(d / PAGE_SIZE)) : this.#vramPage(d, true);
      to.set(from.subarray(s % PAGE_SIZE, (s % PAGE_SIZE) + n), d % PAGE_SIZE);
      done += n;
    }
  }

  // ---- MMU -------------------------------------------------------------------------------

  #mmuWrite(reg: number, v: number): void {
    switch (reg) {
      case MMU_INST:
        this.#mmuInst = v;
        return;
      case MMU_VA_HI:
        this.#mmuVa[0] = v;
        return;
      case MMU_VA_LO:
        this.#mmuVa[1] = v;
        return;
      case MMU_PTE_HI:
        this.#mmuPte[0] = v;
        return;
      case MMU_PTE_LO:
        this.#mmuPte[1] = v;
        return;
    }
    if (this.#mmuInst >= MMU_INSTANCES) return;
    const va = join(this.#mmuVa[0]!, this.#mmuVa[1]!);
    const vpfn = Math.floor(va / PAGE_SIZE);
    let table = this.#vmm.get(this.#mmuInst);
    if (reg === MMU_MAP) {
      const pte = join(this.#mmuPte[0]!, this.#mmuPte[1]!);
      if (!table) this.#vmm.set(this.#mmuInst, (table = new Map()));
      if (pte % 2 === 0) table.delete(vpfn);
      else table.set(vpfn, { write: (pte & PTE_WRITE) !== 0, host: (pte & 0xc) === PTE_APER_HOST, addr: pte - (pte % PAGE_SIZE) });
      const next = va + PAGE_SIZE;
      this.#mmuVa = [hi32(next), lo32(next)];
    } else if (reg === MMU_UNMAP) {
      for (let i = 0; table && i < v; i++) table.delete(vpfn + i);
    } else if (reg === MMU_UNMAP_ALL) {
      this.#vmm.delete(this.#mmuInst);
    }
  }

  /** Entries in an instance's page table (tests). */
  mapped(inst: number): number {
    return this.#vmm.get(inst)?.size ?? 0;
  }

  // ---- compute engine --------------------------------------------------------------------

  #execLaunch(v: number): void {
    if (v === EXEC_LAUNCH_START) {
      this.#done = 0;
      this.#vramPages = this.#hostPages = 0;
      this.#counted.clear();
      this.#run();
    } else if (v === EXEC_LAUNCH_REPLAY) {
      if (this.#status === EXEC_STATUS_FAULT) this.#run();
    } else if (v === EXEC_LAUNCH_CANCEL) {
      if (this.#status === EXEC_STATUS_FAULT) this.#stop(EXEC_STATUS_ERROR, this.#fault.addr, (this.#fault.info & 0xff) | FAULT_REASON_CANCELED);
    }
  }

  #stop(status: number, addr: number, info: number): void {
    this.#status = status;
    this.#fault = { addr, info };
  }

  /** Translate one operand's address; null after stopping with a fault (or an error). */
  #translate(which: string, va: number, write: boolean): { page: Uint8Array; off: number } | null {
    const inst = this.#exec.get(EXEC_INST) ?? 0;
    const vpfn = Math.floor(va / PAGE_SIZE);
    const pte = this.#vmm.get(inst)?.get(vpfn);
    const page0 = va - (va % PAGE_SIZE);
    const info = write ? EXEC_FAULT_WRITE : 0;
    let reason = 0;
    if (!pte) reason = FAULT_REASON_NOT_PRESENT;
    else if (write && !pte.write) reason = FAULT_REASON_READ_ONLY;
    if (reason) {
      this.#stop(EXEC_STATUS_FAULT, page0, info | reason);
      return null;
    }
    let page: Uint8Array | null = null;
    if (pte!.host) {
      const host = this.#host;
      if (host && host.dma_ok(pte!.addr, PAGE_SIZE)) page = write ? host.writablePage(pte!.addr / PAGE_SIZE) : host.readPage(pte!.addr / PAGE_SIZE);
    } else if (pte!.addr + PAGE_SIZE <= this.vramSize) {
      page = this.#vramPage(pte!.addr, write);
    }
    // Memory the page table points at that the GPU cannot reach: not replayable.
    if (!page) {
      this.#stop(EXEC_STATUS_ERROR, page0, info | FAULT_REASON_BUS_ERROR);
      return null;
    }
    const key = `${which}${vpfn}`;
    if (!this.#counted.has(key)) {
      this.#counted.add(key);
      if (pte!.host) this.#hostPages++;
      else this.#vramPages++;
    }
    return { page, off: va % PAGE_SIZE };
  }

  /** c[i] = a[i] + b[i] from element `done` on, a page run at a time, until done or a fault. */
  #run(): void {
    const reg = (r: number) => this.#exec.get(r) ?? 0;
    const a = join(reg(EXEC_A_HI), reg(EXEC_A_LO));
    const b = join(reg(EXEC_B_HI), reg(EXEC_B_LO));
    const c = join(reg(EXEC_C_HI), reg(EXEC_C_LO));
    const count = reg(EXEC_COUNT);
    this.#status = EXEC_STATUS_IDLE;
    const misaligned = [a, b, c].find((x) => x % 4);
    if (misaligned !== undefined) {
      this.#stop(EXEC_STATUS_ERROR, misaligned, FAULT_REASON_MISALIGNED);
      return;
    }
    while (this.#done < count) {
      const i = this.#done;
      const ea = a + 4 * i;
      const eb = b + 4 * i;
      const ec = c + 4 * i;
      const left = (x: number) => (PAGE_SIZE - (x % PAGE_SIZE)) / 4;
      const run = Math.min(count - i, left(ea), left(eb), left(ec));
      const ta = this.#translate("a", ea, false);
      if (!ta) return;
      const tb = this.#translate("b", eb, false);
      if (!tb) return;
      const tc = this.#translate("c", ec, true);
      if (!tc) return;
      const va = new DataView(ta.page.buffer, ta.page.byteOffset, PAGE_SIZE);
      const vb = new DataView(tb.page.buffer, tb.page.byteOffset, PAGE_SIZE);
      const vc = new DataView(tc.page.buffer, tc.page.byteOffset, PAGE_SIZE);
      for (let j = 0; j < run; j++) vc.setInt32(tc.off + 4 * j, (va.getInt32(ta.off + 4 * j, true) + vb.getInt32(tb.off + 4 * j, true)) | 0, true);
      this.#done = i + run;
    }
  }
}
