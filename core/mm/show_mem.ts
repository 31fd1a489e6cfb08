// show_mem() / show_free_areas() (mm/page_alloc.c, lib/show_mem.c), as warn_alloc() prints
// them after a page allocation failure: the counters, each zone, and each zone's free lists.

import { MAX_ORDER, type Zone } from "./page_alloc.ts";
import type { MM } from "./mm.ts";

const kB = (pages: number) => `${pages * 4}kB`;

export function show_mem(mm: MM): void {
  const k = mm.k;
  const pa = mm.pageAlloc;
  const free = pa.nr_free_pages();
  const slab = mm.slab.slabPages;
  k.printk("\x014Mem-Info:\n");
  k.printk(
    "\x014active_anon:0 inactive_anon:0 isolated_anon:0\n" +
      " active_file:0 inactive_file:0 isolated_file:0\n" +
      " unevictable:0 dirty:0 writeback:0 unstable:0\n" +
      ` slab_reclaimable:0 slab_unreclaimable:${slab}\n` +
      " mapped:0 shmem:0 pagetables:0 bounce:0\n" +
      ` free:${free} free_pcp:0 free_cma:0\n`,
  );
  const zones: Zone[] = pa.zones.filter((z) => z.populated());
  for (const z of zones) {
    k.printk(
      `\x014Node 0 ${z.name} free:${kB(z.nr_free_pages)} min:${kB(z.watermark.min)} low:${kB(z.watermark.low)} high:${kB(z.watermark.high)}` +
        ` active_anon:0kB inactive_anon:0kB active_file:0kB inactive_file:0kB unevictable:0kB writepending:0kB` +
        ` present:${kB(z.present_pages)} managed:${kB(z.managed_pages)} mlocked:0kB kernel_stack:0kB pagetables:0kB bounce:0kB` +
        ` free_pcp:0kB local_pcp:0kB free_cma:0kB\n`,
    );
    k.printk(`\x014lowmem_reserve[]:${" 0".repeat(pa.zones.length)}\n`);
  }
  for (const z of zones) {
    let line = `Node 0 ${z.name}: `;
    let total = 0;
    for (let order = 0; order < MAX_ORDER; order++) {
      const n = z.free_area[order]!.nr_free;
      line += `${n}*${4 << order}kB `;
      total += n * (4 << order);
    }
    k.printk(`\x014${line}= ${total}kB\n`);
  }
  const ram = pa.memblock.memory.reduce((n, r) => n + r.end - r.start, 0);
  k.printk("\x0140 total pagecache pages\n");
  k.printk(`\x014${ram} pages RAM\n`);
  k.printk("\x0140 pages HighMem/MovableOnly\n");
  k.printk(`\x014${ram - pa.totalram_pages} pages reserved\n`);
}
