// hmm_devmem as the kernel holds it (spec mm-hmm R3.4, R4.3): HMM's page_free wrapper clears
// page->mapping before ops->free(), and 4.20's hmm_devmem_remove() finds the ref actions
// hmm_devmem_add() registered, so it removes them without a WARN.

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import type { HmmDevmem } from "../../core/mm/hmm-devmem.ts";
import { boot } from "../helpers/kernel.ts";

function addDevmem(k: Kernel, freed: number[]): { devmem: HmmDevmem; put: () => void } {
  const hdev = k.hmm.hmm_device_new(null);
  if (typeof hdev === "number") throw new Error(`hmm_device_new: ${hdev}`);
  const devmem = k.hmm.hmm_devmem_add({ free: (_d, page) => void freed.push(page), fault: () => 0 }, hdev.device, 128 << 20);
  if (typeof devmem === "number") throw new Error(`hmm_devmem_add: ${devmem}`);
  return { devmem, put: () => k.hmm.hmm_device_put(hdev) };
}

describe("hmm_devmem", () => {
  for (const version of ["4.20", "5.0"] as const) {
    it(`${version}: hmm_devmem_free() clears page->mapping, then calls ops->free()`, async () => {
      const k = await boot({ version });
      const freed: number[] = [];
      const { devmem, put } = addDevmem(k, freed);
      const pfn = devmem.pfn_first + 3;
      k.mm.get_page(pfn);
      const sec = k.mm.memmap.section(pfn);
      sec.mapping[pfn - sec.startPfn] = { anon: true };
      k.mm.put_page(pfn);
      expect(freed).toEqual([pfn]);
      expect(sec.mapping[pfn - sec.startPfn]).toBeNull();
      put();
    });
  }

  it("4.20: hmm_devmem_remove() removes the actions hmm_devmem_add() registered, without a WARN", async () => {
    const k = await boot({ version: "4.20" });
    const { devmem, put } = addDevmem(k, []);
    const dev = devmem.device;
    expect(dev.devres.map((dr) => dr.name)).toEqual(["hmm_devmem_ref_exit", "devm_region_release", "hmm_devmem_release", "hmm_devmem_ref_kill"]);
    const seq = k.log.nextSeq;
    k.hmm.hmm_devmem_remove(devmem);
    expect(k.log.messages(seq)).toEqual([]);
    expect(dev.devres).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
    put();
  });

  // 4.19/4.20 hmm_devmem_pages_create() took no per-page references (R4.3); from 5.0 the
  // memory goes through devm_memremap_pages(), whose pages each hold one.
  for (const [version, pages] of [["4.19", 0], ["4.20", 0], ["5.0", 32768]] as const) {
    it(`${version}: the invariant checker counts ${pages} page references on the pgmap of live device memory`, async () => {
      const k = await boot({ version });
      const { devmem, put } = addDevmem(k, []);
      expect(k.checkInvariants()).toEqual([]);
      // One reference fewer than the pages and the owner hold is caught.
      devmem.ref.put();
      const r = devmem.resource!;
      expect(k.checkInvariants()).toEqual([
        `pgmap hmm_device0 ${r.start.toString(16)}-${r.end.toString(16)}: percpu_ref count ${pages} is below the ${pages + 1} references its pages and owner hold`,
      ]);
      devmem.ref.get();
      put();
    });
  }
});
