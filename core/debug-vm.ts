// An invariant checker in the spirit of CONFIG_DEBUG_VM: refcounts, pgmap references against
// the pages that hold them, the resource tree, the buddy allocator, devres, and (after
// shutdown) that everything drivers took was given back.

import type { Kernel } from "./kernel.ts";
import { ALIGN, PAGES_PER_SECTION, ZONE_DEVICE } from "./mm/memmap.ts";
import { pfn_end, pfn_first, type DevPagemap } from "./mm/memremap.ts";
import { PAGE_POISON_PATTERN } from "./mm/page-flags.ts";
import { HotplugRange } from "./mm/memory_hotplug.ts";
import { HmmDevmem } from "./mm/hmm-devmem.ts";
import type { KBuf } from "./mm/slab.ts";
import { checkAddressSpaces } from "./mm/debug-pgtable.ts";

/** What the kernel looked like when boot finished: shutdown must return to it. */
export interface BootBaseline {
  iomem: string;
  freePages: number;
  slabObjects: ReadonlySet<KBuf>;
  presentSections: number;
}

export function baseline(k: Kernel): BootBaseline {
  return {
    iomem: k.mm.iomem.show(),
    freePages: k.mm.pageAlloc.nr_free_pages(),
    slabObjects: new Set(k.mm.slab.live),
    presentSections: k.mm.memmap.presentSections,
  };
}

/** Pages of a pgmap's range at refcount >= 1: each holds one pgmap reference. */
export function pagesHoldingRef(k: Kernel, pgmap: DevPagemap): number {
  const memmap = k.mm.memmap;
  const first = pfn_first(pgmap);
  const end = pfn_end(pgmap);
  let n = 0;
  for (let pfn = first; pfn < end; ) {
    const secEnd = Math.min(end, (Math.floor(pfn / PAGES_PER_SECTION) + 1) * PAGES_PER_SECTION);
    const sec = memmap.peek(pfn);
    if (sec) {
      for (let p = pfn; p < secEnd; p++) if (sec.refcount[p - sec.startPfn]! > 0) n++;
    } else {
      // Untouched: the pages are in the state their range records for them.
      const range = memmap.rangeOf(pfn);
      if (range instanceof HotplugRange) {
        const st = range.stateAt(pfn);
        if (st.kind === "reserved" || (st.kind === "device" && st.refcount > 0)) n += secEnd - pfn;
      }
    }
    pfn = secEnd;
  }
  return n;
}

/** Everything that is wrong right now; empty when the kernel is consistent. */
export function checkInvariants(k: Kernel): string[] {
  const problems: string[] = [];
  const mm = k.mm;
  problems.push(...mm.iomem.check().map((p) => `iomem: ${p}`));
  problems.push(...mm.pageAlloc.check().map((p) => `buddy: ${p}`));

  // struct pages: no negative refcounts outside never-initialised memmap; device pages name a live pgmap.
  for (const range of mm.memmap.ranges()) {
    for (const sec of mm.memmap.materializedIn(range.startPfn, range.endPfn)) {
      for (let i = 0; i < PAGES_PER_SECTION; i++) {
        const rc = sec.refcount[i]!;
        if (rc < 0 && sec.flags[i] !== PAGE_POISON_PATTERN) {
          problems.push(`page: pfn 0x${(sec.startPfn + i).toString(16)} has _refcount ${rc}`);
        }
        if (sec.zone[i] === ZONE_DEVICE && sec.pgmap[i] && !mm.memremap.pgmapOf(sec.pgmap[i]!)) {
          problems.push(`page: pfn 0x${(sec.startPfn + i).toString(16)} points at pgmap ${sec.pgmap[i]} which is gone`);
        }
      }
    }
  }

  // pgmap references: every page at refcount >= 1 holds one; the live initial ref holds one more.
  for (const pgmap of mm.memremap.registered()) {
    const ref = pgmap.ref;
    const who = `pgmap ${pgmap.dev?.name ?? "?"} ${pgmap.res.start.toString(16)}-${pgmap.res.end.toString(16)}`;
    if (!ref) {
      problems.push(`${who}: no percpu_ref`);
      continue;
    }
    // 4.19/4.20 hmm_devmem_pages_create() never took per-page references (spec mm-hmm R4.3).
    const held = pgmap.data instanceof HmmDevmem && !k.profile.hmm.devmemOnMemremap ? 0 : pagesHoldingRef(k, pgmap);
    const min = held + (ref.isDead ? 0 : 1);
    if (ref.count < min) problems.push(`${who}: percpu_ref count ${ref.count} is below the ${min} references its pages and owner hold`);
    if (ref.exited) problems.push(`${who}: percpu_ref exited while the pgmap is registered`);
  }

  // Address spaces: vmas, rss counters and mapcounts against the ptes.
  problems.push(...checkAddressSpaces(k));

  // ZONE_DEVICE sections belong to a registered pgmap.
  for (const range of mm.hotplugRanges) {
    const owner = mm.memremap.registered().some((p) => {
      const s = Math.floor(p.res.start / 4096 / PAGES_PER_SECTION) * PAGES_PER_SECTION;
      const e = ALIGN((p.res.end + 1) / 4096, PAGES_PER_SECTION);
      return range.startPfn >= s && range.endPfn <= e;
    });
    if (!owner) problems.push(`memmap: sections ${range.startPfn.toString(16)}-${range.endPfn.toString(16)} (${range.name}) belong to no pgmap`);
  }

  return problems;
}

/** After shutdown: what was not given back compared with the end of boot. */
export function checkLeaks(k: Kernel, base: BootBaseline): string[] {
  const problems: string[] = [];
  const mm = k.mm;
  if (mm.iomem.show() !== base.iomem) problems.push(`iomem differs from boot:\n${mm.iomem.show()}`);
  const free = mm.pageAlloc.nr_free_pages();
  if (free !== base.freePages) problems.push(`pages: ${base.freePages - free} pages not returned to the allocator`);
  const owners = new Map<string, number>();
  for (const b of mm.slab.live) if (!base.slabObjects.has(b)) owners.set(b.owner, (owners.get(b.owner) ?? 0) + 1);
  if (owners.size) problems.push(`slab: objects not freed (${[...owners].map(([o, c]) => `${o}: ${c}`).join(", ")})`);
  if (mm.memremap.registered().length) problems.push(`memremap: ${mm.memremap.registered().length} pgmaps still registered`);
  if (mm.memmap.presentSections !== base.presentSections) {
    problems.push(`memmap: ${mm.memmap.presentSections - base.presentSections} hotplugged sections still present`);
  }
  if (mm.mms.size) problems.push(`mm: ${mm.mms.size} address spaces not freed`);
  if (mm.shmem.inodes.size) problems.push(`shmem: ${mm.shmem.inodes.size} tmpfs inodes not evicted`);
  for (const dev of k.base.devices) if (dev.devres.length) problems.push(`devres: ${dev.name} still holds ${dev.devres.length} resources`);
  return problems;
}
