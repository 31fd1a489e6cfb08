// npm run gen: rewrite every generated file from the kernel's tables.

import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { generateExportPolicy } from "./export-policy.ts";
import { generateKernelDts } from "./kernel-dts.ts";

export const GENERATED: Record<string, () => string> = {
  "sdk/types/kemu-kernel.d.ts": generateKernelDts,
  "docs/export-policy.md": generateExportPolicy,
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  for (const [path, gen] of Object.entries(GENERATED)) {
    writeFileSync(root + path, gen());
    process.stdout.write(`wrote ${path}\n`);
  }
}
