// GFP flags (include/linux/gfp.h, 4.20) and zone selection.

import { ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL } from "./memmap.ts";

export const __GFP_DMA = 0x01;
export const __GFP_HIGHMEM = 0x02;
export const __GFP_DMA32 = 0x04;
export const __GFP_MOVABLE = 0x08;
export const __GFP_RECLAIMABLE = 0x10;
export const __GFP_HIGH = 0x20;
export const __GFP_IO = 0x40;
export const __GFP_FS = 0x80;
export const __GFP_WRITE = 0x100;
export const __GFP_NOWARN = 0x200;
export const __GFP_RETRY_MAYFAIL = 0x400;
export const __GFP_NOFAIL = 0x800;
export const __GFP_NORETRY = 0x1000;
export const __GFP_MEMALLOC = 0x2000;
export const __GFP_COMP = 0x4000;
export const __GFP_ZERO = 0x8000;
export const __GFP_NOMEMALLOC = 0x10000;
export const __GFP_HARDWALL = 0x20000;
export const __GFP_THISNODE = 0x40000;
export const __GFP_ATOMIC = 0x80000;
export const __GFP_ACCOUNT = 0x100000;
export const __GFP_DIRECT_RECLAIM = 0x200000;
export const __GFP_KSWAPD_RECLAIM = 0x400000;
export const __GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;

export const GFP_ATOMIC = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM;
export const GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
export const GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT;
export const GFP_NOWAIT = __GFP_KSWAPD_RECLAIM;
export const GFP_NOIO = __GFP_RECLAIM;
export const GFP_NOFS = __GFP_RECLAIM | __GFP_IO;
export const GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL;
export const GFP_DMA = __GFP_DMA;
export const GFP_DMA32 = __GFP_DMA32;
export const GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM;
export const GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE;
export const GFP_TRANSHUGE_LIGHT = (GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN) & ~__GFP_RECLAIM;
export const GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM;

/** Composite names first, as %pGg prints them (include/trace/events/mmflags.h). */
const GFP_NAMES: readonly [number, string][] = [
  [GFP_TRANSHUGE, "GFP_TRANSHUGE"],
  [GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE_LIGHT"],
  [GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"],
  [GFP_HIGHUSER, "GFP_HIGHUSER"],
  [GFP_USER, "GFP_USER"],
  [GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT"],
  [GFP_KERNEL, "GFP_KERNEL"],
  [GFP_NOFS, "GFP_NOFS"],
  [GFP_ATOMIC, "GFP_ATOMIC"],
  [GFP_NOIO, "GFP_NOIO"],
  [GFP_NOWAIT, "GFP_NOWAIT"],
  [GFP_DMA, "GFP_DMA"],
  [__GFP_HIGHMEM, "__GFP_HIGHMEM"],
  [GFP_DMA32, "GFP_DMA32"],
  [__GFP_HIGH, "__GFP_HIGH"],
  [__GFP_ATOMIC, "__GFP_ATOMIC"],
  [__GFP_IO, "__GFP_IO"],
  [__GFP_FS, "__GFP_FS"],
  [__GFP_NOWARN, "__GFP_NOWARN"],
  [__GFP_RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"],
  [__GFP_NOFAIL, "__GFP_NOFAIL"],
  [__GFP_NORETRY, "__GFP_NORETRY"],
  [__GFP_COMP, "__GFP_COMP"],
  [__GFP_ZERO, "__GFP_ZERO"],
  [__GFP_NOMEMALLOC, "__GFP_NOMEMALLOC"],
  [__GFP_MEMALLOC, "__GFP_MEMALLOC"],
  [__GFP_HARDWALL, "__GFP_HARDWALL"],
  [__GFP_THISNODE, "__GFP_THISNODE"],
  [__GFP_RECLAIMABLE, "__GFP_RECLAIMABLE"],
  [__GFP_MOVABLE, "__GFP_MOVABLE"],
  [__GFP_ACCOUNT, "__GFP_ACCOUNT"],
  [__GFP_WRITE, "__GFP_WRITE"],
  [__GFP_RECLAIM, "__GFP_RECLAIM"],
  [__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"],
  [__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"],
];

/** "GFP_KERNEL|__GFP_ZERO" as %pGg prints a gfp mask. */
export function formatGfp(gfp: number): string {
  let rest = gfp >>> 0;
  const names: string[] = [];
  for (const [mask, name] of GFP_NAMES) {
    if (mask !== 0 && (rest & mask) === mask) {
      names.push(name);
      rest &= ~mask;
    }
  }
  if (rest) names.push("0x" + rest.toString(16));
  return names.join("|");
}

/** gfp_zone(): the highest zone an allocation may use. */
export function gfp_zone(gfp: number): number {
  if (gfp & __GFP_DMA) return ZONE_DMA;
  if (gfp & __GFP_DMA32) return ZONE_DMA32;
  if ((gfp & (__GFP_HIGHMEM | __GFP_MOVABLE)) === (__GFP_HIGHMEM | __GFP_MOVABLE)) return ZONE_MOVABLE;
  return ZONE_NORMAL;
}
