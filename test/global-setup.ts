// Before any suite: `kemu modules`, so the tree's build/drivers (what udev autoloads and what
// the demo runs) is built from the drivers/ sources under test, never a stale earlier build.

import { fileURLToPath } from "node:url";
import { MODULES_DIR } from "../core/config.ts";
import { buildInTree, INTREE_VERSIONS } from "../sdk/build/intree.ts";

export default async function setup(): Promise<void> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  for (const v of INTREE_VERSIONS) await buildInTree(root, MODULES_DIR, v);
}
