// What the persistent memory holds when the machine powers on: each pmem region is backed by
// its `file` (read on first access, written back on flush and at power-off), and its
// namespace carries the info block `ndctl create-namespace -m MODE` would have left at
// offset 4 KiB, as the 4.20/5.0 kernel's nd_pfn_init() lays it out (drivers/nvdimm/pfn.h
// struct nd_pfn_sb, version 1.2, map=dev, align as configured: 2 MiB by default): "NVDIMM_PFN_INFO" for fsdax,
// "NVDIMM_DAX_INFO" for devdax (with 128 KiB reserved for dax labels), nothing for raw. A
// block the media already holds for the configured mode is left as it is, so data written
// in a previous boot keeps its place; another mode's block is rewritten, or wiped for raw.

import type { Kernel } from "../kernel.ts";
import type { PmemMode, ResolvedPmem } from "../config.ts";
import { PA_SECTION_SIZE, PAGE_SIZE } from "../mm/memmap.ts";
import { IORES_DESC_NONE, IORESOURCE_SYSTEM_RAM, REGION_MIXED } from "../mm/resource.ts";

export const SZ_4K = 4096;
export const SZ_8K = 8192;
export const SZ_128K = 128 << 10;
export const SZ_2M = 2 << 20;
/** sizeof(struct nd_pfn_sb) */
export const ND_PFN_SB_SIZE = 4096;
export const PFN_SIG = "NVDIMM_PFN_INFO\0";
export const DAX_SIG = "NVDIMM_DAX_INFO\0";
export const PFN_SIG_LEN = 16;
/** enum nd_pfn_mode */
export const PFN_MODE_NONE = 0;
export const PFN_MODE_RAM = 1;
export const PFN_MODE_PMEM = 2;

/** The parsed fields of struct nd_pfn_sb (little endian on the media). */
interface NdPfnSb {
  signature: string;
  uuid: Uint8Array;
  parent_uuid: Uint8Array;
  flags: number;
  version_major: number;
  version_minor: number;
  dataoff: number;
  npfns: number;
  mode: number;
  start_pad: number;
  end_trunc: number;
  align: number;
}

/** nd_fletcher64() over little-endian u32 words. */
export function nd_fletcher64(buf: Uint8Array): bigint {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let lo = 0;
  let hi = 0n;
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    lo = (lo + v.getUint32(i, true)) >>> 0;
    hi = (hi + BigInt(lo)) & 0xffffffffffffffffn;
  }
  return ((hi << 32n) | BigInt(lo)) & 0xffffffffffffffffn;
}

/** nd_sb_checksum(): the fletcher64 of the block with its checksum field zeroed. */
export function nd_sb_checksum(sb: Uint8Array): bigint {
  const copy = sb.slice(0, ND_PFN_SB_SIZE);
  new DataView(copy.buffer).setBigUint64(ND_PFN_SB_SIZE - 8, 0n, true);
  return nd_fletcher64(copy);
}

function encodePfnSb(sb: NdPfnSb): Uint8Array {
  const buf = new Uint8Array(ND_PFN_SB_SIZE);
  const v = new DataView(buf.buffer);
  for (let i = 0; i < PFN_SIG_LEN; i++) buf[i] = sb.signature.charCodeAt(i) || 0;
  buf.set(sb.uuid, 16);
  buf.set(sb.parent_uuid, 32);
  v.setUint32(48, sb.flags, true);
  v.setUint16(52, sb.version_major, true);
  v.setUint16(54, sb.version_minor, true);
  v.setBigUint64(56, BigInt(sb.dataoff), true);
  v.setBigUint64(64, BigInt(sb.npfns), true);
  v.setUint32(72, sb.mode, true);
  v.setUint32(76, sb.start_pad, true);
  v.setUint32(80, sb.end_trunc, true);
  v.setUint32(84, sb.align, true);
  v.setBigUint64(ND_PFN_SB_SIZE - 8, nd_sb_checksum(buf), true);
  return buf;
}

const ALIGN = (x: number, a: number) => Math.ceil(x / a) * a;
const ALIGN_DOWN = (x: number, a: number) => Math.floor(x / a) * a;

/**
 * nd_pfn_init() of 4.20/5.0 for a namespace covering [start, start + size): the info block
 * for `mode` (section padding where System RAM shares a section, end truncated to the
 * alignment, the memmap reserved in the namespace for map=dev), or null when the namespace
 * cannot satisfy the alignment.
 */
function nd_pfn_init_sb(k: Kernel, start: number, size: number, dax: boolean, uuid: Uint8Array, align = SZ_2M): NdPfnSb | null {
  const dax_label_reserve = dax ? SZ_128K : 0;
  const iomem = k.mm.iomem;
  let start_pad = 0;
  let end_trunc = 0;
  const secDown = ALIGN_DOWN(start, PA_SECTION_SIZE);
  if (iomem.region_intersects(secDown, size, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE) === REGION_MIXED) {
    start_pad = ALIGN(start, PA_SECTION_SIZE) - start;
  }
  const end = start + size;
  if (iomem.region_intersects(start, ALIGN(end, PA_SECTION_SIZE) - start, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE) === REGION_MIXED || end % align !== 0) {
    end_trunc = end - Math.min(ALIGN_DOWN(end, PA_SECTION_SIZE), ALIGN_DOWN(end, align));
  }
  const base = start + start_pad;
  let npfns = Math.floor((size - start_pad - end_trunc - SZ_8K) / SZ_4K);
  const offset = ALIGN(base + SZ_8K + 64 * npfns + dax_label_reserve, align) - base;
  if (offset + start_pad + end_trunc >= size) return null;
  npfns = Math.floor((size - offset - start_pad - end_trunc) / SZ_4K);
  return {
    signature: dax ? DAX_SIG : PFN_SIG, uuid, parent_uuid: new Uint8Array(16), flags: 0, version_major: 1, version_minor: 2,
    dataoff: offset, npfns, mode: PFN_MODE_PMEM, start_pad, end_trunc, align,
  };
}

/**
 * A version-4 UUID for region `index` (ndctl would draw a random one): from the boot seed, by
 * its own generator, so the kernel's random stream is not disturbed.
 */
function uuidFor(k: Kernel, index: number): Uint8Array {
  const u = new Uint8Array(16);
  const v = new DataView(u.buffer);
  let x = (k.config.seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < 4; i++) {
    // xorshift32
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    v.setUint32(i * 4, x || 0x6b656d75);
  }
  u[6] = (u[6]! & 0x0f) | 0x40;
  u[8] = (u[8]! & 0x3f) | 0x80;
  return u;
}

/** struct nd_pfn_sb.align of the block at `phys` */
function readAlign(k: Kernel, phys: number): number {
  const b = k.mm.physmem.read(phys + 84, 4);
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
}

function signatureAt(k: Kernel, phys: number): string {
  return String.fromCharCode(...k.mm.physmem.read(phys, PFN_SIG_LEN));
}

/** The media of every pmem region at power-on: files attached, info blocks as configured. */
export function pmem_media_init(k: Kernel): void {
  const pm = k.mm.physmem;
  for (const p of k.config.pmem) {
    if (p.file) pm.attachFile(p.file, p.start / PAGE_SIZE, p.size / PAGE_SIZE);
    writeInfoBlock(k, p, p.mode);
  }
  pm.writeback();
}

function writeInfoBlock(k: Kernel, p: ResolvedPmem, mode: PmemMode): void {
  if (p.size <= SZ_8K) return; // no room for an info block
  const at = p.start + SZ_4K;
  const sig = signatureAt(k, at);
  const want = mode === "fsdax" ? PFN_SIG : mode === "devdax" ? DAX_SIG : null;
  // The same mode with the same alignment: ndctl was not run again, the data stays.
  if (sig === want && readAlign(k, at) === p.align) return;
  if (want === null) {
    // -m raw over an fsdax/devdax namespace: the old info block is wiped.
    if (sig === PFN_SIG || sig === DAX_SIG) k.mm.physmem.zero(at, ND_PFN_SB_SIZE);
    return;
  }
  const sb = nd_pfn_init_sb(k, p.start, p.size, mode === "devdax", uuidFor(k, p.index), p.align);
  if (sb) k.mm.physmem.write(at, encodePfnSb(sb));
}

/**
 * register_e820_pmem() (arch/x86/kernel/pmem.c): when the e820 map has legacy persistent
 * memory (type 12), a platform device "e820_pmem" appears, "simply here to trigger the
 * module to load on demand" (nd_e820 drives it).
 */
export function register_e820_pmem(k: Kernel): void {
  if (!k.config.pmem.some((p) => p.legacy)) return;
  k.platform.platform_device_register_simple("e820_pmem", -1, { boot: true });
}
