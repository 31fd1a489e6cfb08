// pfn, dax and btt devices (drivers/nvdimm/pfn_devs.c, dax_devs.c, btt_devs.c of 4.20/5.0):
// the seeds every region gets ("btt0.0", "pfn0.0", "dax0.0"), nd_pfn_probe()/nd_dax_probe()
// (an info block on the namespace makes a new pfnN.M / daxN.M that claims it), the info
// block's validation, and nvdimm_setup_pfn(), which gives a driver the dev_pagemap range and
// altmap of an fsdax or devdax namespace. The block layout is struct nd_pfn_sb (pfn.h).

import {
  ND_DEVICE_DAX_PMEM, ND_DEVICE_NAMESPACE_IO, EBUSY, EINVAL, ENODEV, ENOMEM, ENXIO, PAGE_SIZE, PA_SECTION_SIZE, IORESOURCE_MEM,
  dev_err, dev_info, type device,
} from "kemu/kernel";
import { nd_device_register, nd_modalias, nd_record, type NdNamespace, type NdPfn, type NdRegion } from "./nd-core.ts";
import { nvdimm_namespace_capacity, nvdimm_read_bytes, nvdimm_write_bytes } from "./namespace_devs.ts";
import {
  DAX_SIG, ND_PFN_SB_SIZE, NVDIMM_CCLASS_DAX, NVDIMM_CCLASS_NONE, NVDIMM_CCLASS_PFN, PFN_MODE_NONE, PFN_MODE_PMEM, PFN_MODE_RAM, PFN_SIG,
  PFN_SIG_LEN, SZ_128K, SZ_2M, SZ_4K, SZ_8K, type nd_pfn_pagemap, type nd_pfn_sb,
} from "./nd.ts";
import { child_forget } from "./region_devs.ts";

const DEVICE_TYPE = { pfn: "nd_pfn", dax: "nd_dax", btt: "nd_btt" } as const;

/** nd_pfn_default_alignment(): PMD_SIZE (transparent hugepages are there). */
const nd_pfn_default_alignment = SZ_2M;

/** nd_pfn_alloc()/nd_dax_alloc()/nd_btt_alloc(): "<kind><region>.<id>" under the region. */
function nd_alloc(r: NdRegion, kind: "pfn" | "dax" | "btt"): NdPfn {
  const ida = kind === "pfn" ? r.pfn_ida : kind === "dax" ? r.dax_ida : r.btt_ida;
  const id = ida.get();
  return {
    kind, dev: null, name: `${kind}${r.id}.${id}`, id, region: r, mode: PFN_MODE_NONE, align: nd_pfn_default_alignment, uuid: null, npfns: 0,
    ndns: null, pfn_sb: null,
  };
}

function modalias(p: NdPfn): string {
  return nd_modalias(p.kind === "dax" ? ND_DEVICE_DAX_PMEM : ND_DEVICE_NAMESPACE_IO);
}

/** nd_btt_create()/nd_pfn_create()/nd_dax_create(): an unconfigured seed. */
export function nd_seed_create(r: NdRegion, kind: "pfn" | "dax" | "btt"): NdPfn | null {
  const p = nd_alloc(r, kind);
  r.children.push(p);
  nd_device_register(p, () => r.dev, DEVICE_TYPE[kind], modalias(p), (rc) => {
    if (rc) child_forget(p);
  });
  return p;
}

/** __nd_attach_ndns(): false when another device claimed it first. */
function attach_ndns(p: NdPfn, ns: NdNamespace): boolean {
  if (ns.claim) {
    // "failed, already claimed by %s" (dev_dbg)
    return false;
  }
  ns.claim = p;
  ns.claim_class = p.kind === "dax" ? NVDIMM_CCLASS_DAX : NVDIMM_CCLASS_PFN;
  p.ndns = ns;
  return true;
}

function detach_ndns(p: NdPfn): void {
  const ns = p.ndns;
  if (ns && ns.claim === p) {
    ns.claim = null;
    ns.claim_class = NVDIMM_CCLASS_NONE;
  }
  p.ndns = null;
}

// ---- the info block -------------------------------------------------------------------------

function le(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** nd_fletcher64() of little-endian u32 words. */
function nd_fletcher64(buf: Uint8Array): bigint {
  const v = le(buf);
  let lo = 0;
  let hi = 0n;
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    lo = (lo + v.getUint32(i, true)) >>> 0;
    hi = (hi + BigInt(lo)) & 0xffffffffffffffffn;
  }
  return ((hi << 32n) | BigInt(lo)) & 0xffffffffffffffffn;
}

/** nd_sb_checksum(): with the checksum field zeroed. */
function nd_sb_checksum(raw: Uint8Array): bigint {
  const copy = raw.slice(0, ND_PFN_SB_SIZE);
  le(copy).setBigUint64(ND_PFN_SB_SIZE - 8, 0n, true);
  return nd_fletcher64(copy);
}

function parse_sb(raw: Uint8Array): nd_pfn_sb {
  const v = le(raw);
  return {
    signature: String.fromCharCode(...raw.subarray(0, PFN_SIG_LEN)),
    uuid: [...raw.subarray(16, 32)],
    parent_uuid: [...raw.subarray(32, 48)],
    flags: v.getUint32(48, true),
    version_major: v.getUint16(52, true),
    version_minor: v.getUint16(54, true),
    dataoff: Number(v.getBigUint64(56, true)),
    npfns: Number(v.getBigUint64(64, true)),
    mode: v.getUint32(72, true),
    start_pad: v.getUint32(76, true),
    end_trunc: v.getUint32(80, true),
    align: v.getUint32(84, true),
  };
}

function encode_sb(sb: nd_pfn_sb): Uint8Array {
  const raw = new Uint8Array(ND_PFN_SB_SIZE);
  const v = le(raw);
  for (let i = 0; i < PFN_SIG_LEN; i++) raw[i] = sb.signature.charCodeAt(i) || 0;
  raw.set(sb.uuid, 16);
  raw.set(sb.parent_uuid, 32);
  v.setUint32(48, sb.flags, true);
  v.setUint16(52, sb.version_major, true);
  v.setUint16(54, sb.version_minor, true);
  v.setBigUint64(56, BigInt(sb.dataoff), true);
  v.setBigUint64(64, BigInt(sb.npfns), true);
  v.setUint32(72, sb.mode, true);
  v.setUint32(76, sb.start_pad, true);
  v.setUint32(80, sb.end_trunc, true);
  v.setUint32(84, sb.align, true);
  v.setBigUint64(ND_PFN_SB_SIZE - 8, nd_sb_checksum(raw), true);
  return raw;
}

const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** nd_pfn_validate(): read the info block and check it against `sig` and the namespace. */
function nd_pfn_validate(p: NdPfn, sig: string): number {
  const ns = p.ndns;
  if (!ns) return -ENODEV;
  const raw = nvdimm_read_bytes(ns, SZ_4K, ND_PFN_SB_SIZE);
  if (typeof raw === "number") return -ENXIO;
  if (String.fromCharCode(...raw.subarray(0, PFN_SIG_LEN)) !== sig) return -ENODEV;
  if (le(raw).getBigUint64(ND_PFN_SB_SIZE - 8, true) !== nd_sb_checksum(raw)) return -ENODEV;
  const sb = parse_sb(raw);
  // An io namespace has no uuid: nd_dev_to_uuid() gives the null uuid.
  if (!same(sb.parent_uuid, new Array(16).fill(0))) return -ENODEV;
  if (sb.version_minor < 1) sb.start_pad = sb.end_trunc = 0;
  if (sb.version_minor < 2) sb.align = 0;
  if (sb.mode !== PFN_MODE_RAM && sb.mode !== PFN_MODE_PMEM) return -ENXIO;
  let align = sb.align;
  const offset = sb.dataoff;
  if (align === 0) align = 2 ** Math.floor(Math.log2(offset));
  if (!p.uuid) {
    // Probing a namespace: the settings come from the block.
    p.uuid = sb.uuid;
    p.align = align;
    p.mode = sb.mode;
  } else {
    if (!same(p.uuid, sb.uuid)) return -ENODEV;
    if (p.align !== align || p.mode !== sb.mode) {
      dev_err(p.dev!, "init failed, settings mismatch\n");
      return -EINVAL;
    }
  }
  const capacity = nvdimm_namespace_capacity(ns);
  if (align > capacity) {
    dev_err(p.dev!, "alignment: %lx exceeds capacity %llx\n", align, capacity);
    return -EINVAL;
  }
  if (offset >= capacity) {
    dev_err(p.dev!, "pfn array size exceeds capacity of %s\n", ns.name);
    return -EBUSY;
  }
  if ((align && (ns.res.start + offset + sb.start_pad) % align) || offset % PAGE_SIZE) {
    dev_err(p.dev!, "bad offset: %#llx dax disabled align: %#lx\n", offset, align);
    return -ENXIO;
  }
  p.pfn_sb = sb;
  return 0;
}

/** nd_pfn_probe()/nd_dax_probe(): a valid block of `kind` makes a device that claims `ns`. */
function nd_probe_kind(ns: NdNamespace, kind: "pfn" | "dax"): number {
  if (ns.force_raw) return -ENODEV;
  const want = kind === "pfn" ? NVDIMM_CCLASS_PFN : NVDIMM_CCLASS_DAX;
  if (ns.claim_class !== NVDIMM_CCLASS_NONE && ns.claim_class !== want) return -ENODEV;
  const r = ns.region;
  const p = nd_alloc(r, kind);
  if (!attach_ndns(p, ns)) {
    (kind === "pfn" ? r.pfn_ida : r.dax_ida).remove(p.id);
    return -ENOMEM;
  }
  const rc = nd_pfn_validate(p, kind === "pfn" ? PFN_SIG : DAX_SIG);
  // dev_dbg(dev, "pfn: %s\n", rc == 0 ? dev_name(pfn_dev) : "<none>")
  if (rc < 0) {
    detach_ndns(p);
    (kind === "pfn" ? r.pfn_ida : r.dax_ida).remove(p.id);
    return rc;
  }
  r.children.push(p);
  nd_device_register(p, () => r.dev, DEVICE_TYPE[kind], modalias(p), (err) => {
    if (err) child_forget(p);
  });
  return rc;
}

export function nd_pfn_probe(_dev: device, ns: NdNamespace): number {
  return nd_probe_kind(ns, "pfn");
}

export function nd_dax_probe(_dev: device, ns: NdNamespace): number {
  return nd_probe_kind(ns, "dax");
}

/** nd_pfn_init(): validate the block, or write a new one when there is none. */
function nd_pfn_init(p: NdPfn): number {
  const sig = p.kind === "dax" ? DAX_SIG : PFN_SIG;
  const rc = nd_pfn_validate(p, sig);
  if (rc !== -ENODEV) return rc;
  const ns = p.ndns!;
  const r = p.region;
  if (r.ro) {
    dev_info(p.dev!, "%s is read-only, unable to init metadata\n", r.name);
    return -ENXIO;
  }
  const dax_label_reserve = p.kind === "dax" ? SZ_128K : 0;
  const start = ns.res.start;
  const size = nvdimm_namespace_capacity(ns);
  const end = start + size;
  const end_trunc = end % p.align ? end - Math.min(Math.floor(end / PA_SECTION_SIZE) * PA_SECTION_SIZE, Math.floor(end / p.align) * p.align) : 0;
  const start_pad = 0;
  if (start_pad + end_trunc) dev_info(p.dev!, "%s alignment collision, truncate %d bytes\n", ns.name, start_pad + end_trunc);
  let npfns = Math.floor((size - start_pad - end_trunc - SZ_8K) / SZ_4K);
  let offset: number;
  if (p.mode === PFN_MODE_PMEM) offset = Math.ceil((start + SZ_8K + 64 * npfns + dax_label_reserve) / p.align) * p.align - start;
  else if (p.mode === PFN_MODE_RAM) offset = Math.ceil((start + SZ_8K + dax_label_reserve) / p.align) * p.align - start;
  else return -ENXIO;
  if (offset + start_pad + end_trunc >= size) {
    dev_err(p.dev!, "%s unable to satisfy requested alignment\n", ns.name);
    return -ENXIO;
  }
  npfns = Math.floor((size - offset - start_pad - end_trunc) / SZ_4K);
  const sb: nd_pfn_sb = {
    signature: sig, uuid: p.uuid ?? new Array(16).fill(0), parent_uuid: new Array(16).fill(0), flags: 0, version_major: 1, version_minor: 2,
    dataoff: offset, npfns, mode: p.mode, start_pad, end_trunc, align: p.align,
  };
  p.pfn_sb = sb;
  return nvdimm_write_bytes(ns, SZ_4K, encode_sb(sb));
}

const PHYS_PFN = (x: number) => Math.floor(x / PAGE_SIZE);
const PAGES_PER_SECTION = PA_SECTION_SIZE / PAGE_SIZE;

/**
 * nvdimm_setup_pfn(): what __nvdimm_setup_pfn() writes into the driver's dev_pagemap: the
 * namespace range less start_pad and end_trunc, and for map=dev (PFN_MODE_PMEM) an altmap
 * that keeps the memmap in the namespace, after the 8 KiB of labels and info block.
 */
export function nvdimm_setup_pfn(p: NdPfn): nd_pfn_pagemap | number {
  if (!p.uuid || !p.ndns) return -ENODEV;
  const rc = nd_pfn_init(p);
  if (rc) return rc;
  const sb = p.pfn_sb!;
  const ns = p.ndns;
  const offset = sb.dataoff;
  const base = ns.res.start + sb.start_pad;
  const res = { start: ns.res.start + sb.start_pad, end: ns.res.end - sb.end_trunc, flags: IORESOURCE_MEM, desc: 0 };
  const altmap = { base_pfn: 0, reserve: 0, free: 0, align: 0, alloc: 0 };
  let altmap_valid = false;
  if (p.mode === PFN_MODE_RAM) {
    if (offset < SZ_8K) return -EINVAL;
    p.npfns = sb.npfns;
  } else if (p.mode === PFN_MODE_PMEM) {
    const base_pfn = PHYS_PFN(base);
    const sectionDown = Math.floor(base_pfn / PAGES_PER_SECTION) * PAGES_PER_SECTION;
    p.npfns = Math.ceil(PHYS_PFN(res.end - res.start + 1 - offset) / PAGES_PER_SECTION) * PAGES_PER_SECTION;
    if (sb.npfns > p.npfns) dev_info(p.dev!, "number of pfns truncated from %lld to %ld\n", sb.npfns, p.npfns);
    altmap.base_pfn = sectionDown; // init_altmap_base()
    altmap.reserve = PHYS_PFN(SZ_8K) + base_pfn - sectionDown; // init_altmap_reserve()
    altmap.free = PHYS_PFN(offset - SZ_8K);
    altmap_valid = true;
  } else {
    return -ENXIO;
  }
  return { res, altmap, altmap_valid, pfn_sb: { ...sb } };
}

/** The nd_pfn/nd_dax/nd_btt behind `dev`, if it is one of `kind`. */
export function pfn_of(dev: device, kind: "pfn" | "dax" | "btt"): NdPfn | null {
  const r = nd_record(dev);
  return r && r.kind === kind ? r : null;
}

