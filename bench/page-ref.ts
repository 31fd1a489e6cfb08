// get_page()/put_page() pairs on a System RAM page, built in (no isolate), against the floor
// of the same increments and decrements done directly on a typed array.

import { Kernel } from "../core/kernel.ts";
import { GFP_KERNEL } from "../core/mm/gfp.ts";
import type { Figure } from "./figure.ts";

const PAIRS = 10_000_000;

interface Ctx {
  k: Kernel;
  page: number;
}

export const pageGetPut: Figure<Ctx> = {
  name: "page_getput_mops",
  unit: "Mops/s",
  what: "get_page()+put_page() pairs, built-in, on a RAM page",
  target: { op: ">=", value: 50 },
  repeats: 7,
  async setup() {
    const k = await Kernel.boot({ version: "5.0", memory: "1G" });
    const page = k.mm.alloc_pages(GFP_KERNEL, 0);
    return { k, page };
  },
  sample({ k, page }) {
    const mm = k.mm;
    const t0 = performance.now();
    for (let i = 0; i < PAIRS; i++) {
      mm.get_page(page);
      mm.put_page(page);
    }
    return PAIRS / ((performance.now() - t0) * 1000);
  },
  async teardown({ k, page }) {
    k.mm.__free_pages(page, 0);
    await k.shutdown();
  },
};

export const pageGetPutFloor: Figure<Int32Array> = {
  name: "page_getput_floor_mops",
  unit: "Mops/s",
  what: "floor: the same pairs as bare typed-array ++/--",
  repeats: 7,
  async setup() {
    return new Int32Array(32768);
  },
  sample(a) {
    const t0 = performance.now();
    for (let i = 0; i < PAIRS; i++) {
      a[i & 7]!++;
      a[i & 7]!--;
    }
    return PAIRS / ((performance.now() - t0) * 1000);
  },
  teardown() {},
};
