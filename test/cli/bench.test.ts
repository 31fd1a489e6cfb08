// kemu bench through the installed launcher (it adds --expose-gc): every figure of DESIGN.md's
// "Performance targets" runs and lands in --json. One sample each (--repeats 1): this checks
// that the figures run and are reported, never how fast anything is.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { kemu, tempDir } from "../helpers/cli.ts";

const DESIGN_FIGURES = [
  "fault_isolated_vs_floor", "fault_isolated_vs_builtin", "migrate_vs_memcpy", "memremap_1tib_ms", "memremap_1tib_heap_mib",
  "page_getput_mops", "insmod_median_ms", "module_mem_mib",
];
const dir = tempDir("kemu-bench-");

describe("kemu bench", () => {
  it("runs every figure and writes each, with its unit and min/max, to --json; the table names them all", async () => {
    const out = join(dir, "out.json");
    const r = await kemu(["bench", "--repeats", "1", "--json", out], { launcher: true });
    expect(r.status).toBe(0);
    const json = JSON.parse(readFileSync(out, "utf8")) as { figures: Record<string, { value: number; unit: string; min: number; max: number }> };
    for (const name of DESIGN_FIGURES) {
      const f = json.figures[name];
      expect(f, name).toBeDefined();
      expect(Number.isFinite(f!.value), name).toBe(true);
      expect(f!.unit, name).toMatch(/^(x|ms|MiB|Mops\/s)$/);
      expect(f!.min).toBe(f!.value); // one sample
      expect(r.stdout).toMatch(new RegExp(`^${name} `, "m"));
    }
    expect(r.stdout).toMatch(/^figure +min +median +max +unit +target/);
  });

  it("--filter runs only the figures it names; bad --filter and --repeats are usage errors", async () => {
    const r = await kemu(["bench", "--repeats", "1", "--filter", "memremap"], { launcher: true });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n").slice(1).map((l) => l.split(" ")[0])).toEqual(["memremap_1tib_ms", "memremap_1tib_heap_mib"]);
    const bad = await kemu(["bench", "--filter", "nosuch"], { launcher: true });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("bench: --filter 'nosuch' matches no figure");
    const rep = await kemu(["bench", "--repeats", "0"], { launcher: true });
    expect(rep.status).toBe(2);
    expect(rep.stderr).toContain("bench: --repeats '0' is not a count from 1 to 1000");
  });
});
