// The symbol table is the one source of truth (principle 2): the export snapshots of spec
// module-loader §10 H3/H4 and the generated SDK declarations, which must not go stale
// (Module.symvers is tested in modversions.test.ts).

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { KERNEL_APIS } from "../../core/module/apis/index.ts";
import { exportClass, kernelSymbol, kernelSymbols } from "../../core/module/ksymtab.ts";
import { KERNEL_VERSIONS } from "../../core/version.ts";
import { GENERATED } from "../../sdk/gen/main.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

describe("the export snapshots of the series (spec §10 H3/H4)", () => {
  // H3 ("before", 4.19.0 and 4.20.0) and H4 ("after", 5.0) for every symbol the series touches.
  const TABLE: [string, string | undefined, string | undefined, string | undefined][] = [
    ["devm_memremap_pages", "EXPORT_SYMBOL", "EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL"],
    ["get_dev_pagemap", "EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL_GPL"],
    ["devmap_managed_key", "EXPORT_SYMBOL", "EXPORT_SYMBOL", "EXPORT_SYMBOL"],
    ["dev_pagemap_get_ops", "EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL_GPL"],
    ["dev_pagemap_put_ops", "EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL_GPL"],
    ["__put_devmap_managed_page", "EXPORT_SYMBOL", "EXPORT_SYMBOL", "EXPORT_SYMBOL"],
    ["hmm_devmem_add", "EXPORT_SYMBOL", "EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL"],
    ["hmm_devmem_add_resource", "EXPORT_SYMBOL", "EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL"],
    ["hmm_devmem_remove", "EXPORT_SYMBOL", "EXPORT_SYMBOL", undefined],
    ["hmm_device_new", "EXPORT_SYMBOL", "EXPORT_SYMBOL", "EXPORT_SYMBOL"],
    ["hmm_device_put", "EXPORT_SYMBOL", "EXPORT_SYMBOL", "EXPORT_SYMBOL"],
  ];
  for (const [name, v419, v420, v50] of TABLE) {
    it(`${name}: ${v419 ?? "absent"} / ${v420 ?? "absent"} / ${v50 ?? "absent"}`, () => {
      expect([exportClass(name, "4.19"), exportClass(name, "4.20"), exportClass(name, "5.0")]).toEqual([v419, v420, v50]);
    });
  }

  it("changes nothing else between 4.20 and 5.0", () => {
    const changed = kernelSymbols().filter((s) => s.exports["4.20"] !== s.exports["5.0"]).map((s) => s.name);
    expect(changed.sort()).toEqual(["devm_memremap_pages", "hmm_devmem_add", "hmm_devmem_add_resource", "hmm_devmem_remove"]);
    const changed419 = kernelSymbols().filter((s) => s.exports["4.19"] !== s.exports["4.20"]).map((s) => s.name);
    expect(changed419).toEqual([]);
  });
});

describe("kemu/kernel", () => {
  it("needs only symbols the table knows, each exported by some version", () => {
    for (const api of KERNEL_APIS) {
      // A module's export (libnvdimm's __nd_driver_register) is in its Module.symvers.
      if (api.symbolsFrom) continue;
      for (const s of api.symbols) {
        const sym = kernelSymbol(s);
        expect(sym, `${api.name} needs ${s}`).toBeDefined();
        expect(KERNEL_VERSIONS.some((v) => sym!.exports[v]), `${s} is exported somewhere`).toBe(true);
      }
    }
  });

  it("declares every function, each with its export class per version", () => {
    const dts = readFileSync(ROOT + "sdk/types/kemu-kernel.d.ts", "utf8");
    for (const api of KERNEL_APIS) expect(dts, api.name).toContain(`export function ${api.name}(`);
    const at = dts.indexOf("export function devm_memremap_pages(");
    const doc = dts.slice(dts.lastIndexOf("/**", at), at);
    expect(doc).toMatch(/4\.19: EXPORT_SYMBOL\b/);
    expect(doc).toMatch(/4\.20: EXPORT_SYMBOL\b/);
    expect(doc).toMatch(/5\.0: EXPORT_SYMBOL_GPL\b/);
  });

  it("docs/export-policy.md lists the 5.0 changes and what each function needs", () => {
    const doc = readFileSync(ROOT + "docs/export-policy.md", "utf8");
    const changed = doc.slice(doc.indexOf("## What changed in 5.0"), doc.indexOf("## Every symbol"));
    expect(changed.split("\n").filter((l) => l.startsWith("| `"))).toEqual([
      "| `devm_memremap_pages` | kernel/memremap.c | EXPORT_SYMBOL | EXPORT_SYMBOL | EXPORT_SYMBOL_GPL |",
      "| `hmm_devmem_add` | mm/hmm.c | EXPORT_SYMBOL | EXPORT_SYMBOL | EXPORT_SYMBOL_GPL |",
      "| `hmm_devmem_add_resource` | mm/hmm.c | EXPORT_SYMBOL | EXPORT_SYMBOL | EXPORT_SYMBOL_GPL |",
      "| `hmm_devmem_remove` | mm/hmm.c | EXPORT_SYMBOL | EXPORT_SYMBOL | not exported |",
    ]);
    expect(doc).toContain("| **`devm_memremap_pages`** | kernel/memremap.c | **EXPORT_SYMBOL** | **EXPORT_SYMBOL** | **EXPORT_SYMBOL_GPL** |");
    expect(doc).toContain("| `percpu_ref_kill` | `percpu_ref_kill_and_confirm` | GPL | GPL | GPL |");
    expect(doc).toContain("| `hmm_devmem_remove` | `hmm_devmem_remove` | any | any | nobody |");
  });

  for (const path of Object.keys(GENERATED)) {
    it(`${path} is up to date (npm run gen)`, () => {
      expect(readFileSync(ROOT + path, "utf8") === GENERATED[path]!(), `${path} is stale: run npm run gen`).toBe(true);
    });
  }
});
