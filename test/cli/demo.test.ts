// npm start (kemu demo) through the real command line: the whole story runs and says what
// happened, with the kernel's own lines. build/drivers is fresh (test/global-setup.ts).

import { describe, expect, it } from "vitest";
import { kemu } from "../helpers/cli.ts";

describe("kemu demo", () => {
  it("tells the story: drivers autoloaded, a VRAM round trip with the GPU computing, 4.20 loads the proprietary driver, 5.0 refuses it", async () => {
    const r = await kemu(["demo"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const o = r.stdout;
    expect(o).not.toContain("\x1b["); // no colours on a pipe
    for (const v of ["4.20", "5.0"]) expect(o).toMatch(new RegExp(`^   ${v.replace(".", "\\.")} +Linux version ${v.replace(".", "\\.")}\\.0 in \\d+ ms, modules: nouveau libnvdimm nfit nd_pmem dax device_dax dax_pmem$`, "m"));
    expect(o).toContain("nouveau 0000:00:02.0: DRM: DMEM: registered 256MB of device memory\n");
    expect(o).toContain("16 of a's ptes are now device-private entries");
    expect(o).toMatch(/c = a \+ b over 16384 ints: 16 pages read from VRAM, 32 through the GPU's mirror \(hmm_vma_fault\), \d+ GPU faults: c is right/);
    expect(o).toContain("(taps: demo, nouveau), each migrating the page back: 16 faults, a is intact");
    expect(o).toMatch(/^ {3}4\.20 +loaded +Tainted: P {11}O {5}$/m);
    expect(o).toContain("gpumem: module license 'Proprietary' taints kernel.\n");
    expect(o).toContain("5.0   refused insmod: ERROR: could not insert module gpumem.ko: Unknown symbol in module\n");
    expect(o).toContain("gpumem: Unknown symbol devm_memremap_pages (err -2)\n");
    expect(o).toMatch(/^ {3}libnvdimm +\d+ +3 dax_pmem,nd_pmem,nfit$/m);
    expect(o).toContain("100000000-11fffffff : Persistent Memory\n");
    expect(o).toMatch(/^ {3}5\.0 +\/proc\/sys\/kernel\/tainted = 4097 /m);
  });
});
