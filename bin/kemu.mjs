#!/usr/bin/env node
// The kemu command. It re-executes Node with the flags kemu needs: --no-node-snapshot
// (isolated-vm requires it on Node >= 20) and --expose-gc (bench measures heap growth).

import { spawnSync } from "node:child_process";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(
    `kemu: Node ${process.version} is too old; kemu needs Node 24 or newer.\n` +
      "Run it as `npx kemu ...` or through an npm script inside a project that installed kemu: both use the pinned Node.\n",
  );
  process.exit(2);
}

const main = fileURLToPath(new URL("../sdk/cli/main.ts", import.meta.url));
const flags = ["--no-node-snapshot", "--expose-gc"];
const r = spawnSync(process.execPath, [...flags, main, ...process.argv.slice(2)], { stdio: "inherit" });
if (r.error) {
  process.stderr.write(`kemu: could not start ${process.execPath}: ${r.error.message}\n`);
  process.exit(2);
}
process.exit(r.status ?? (r.signal ? 128 + (constants.signals[r.signal] ?? 0) : 1));
