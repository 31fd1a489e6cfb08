// Build modules for tests with the real builder: source text (written to a temporary directory)
// or a driver file of the tree. Builds are cached per source and options within a test process.

import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build, type BuildOptions, type BuildResult } from "../../sdk/build/build.ts";
import { parseKo, serializeKo, type KoImage } from "../../core/module/ko.ts";
import type { KernelVersion } from "../../core/version.ts";

const cache = new Map<string, Promise<BuildResult>>();
const dir = join(tmpdir(), `kemu-test-${process.pid}`);

/** Build `source` as module `name` (the file is NAME.ts in a temporary directory). */
export function buildSource(name: string, source: string, opts: Omit<BuildOptions, "entry"> = {}): Promise<BuildResult> {
  const key = createHash("sha256").update(JSON.stringify([name, source, opts])).digest("hex");
  let p = cache.get(key);
  if (!p) {
    const d = join(dir, key.slice(0, 16));
    mkdirSync(d, { recursive: true });
    const entry = join(d, `${name}.ts`);
    writeFileSync(entry, source);
    p = build({ ...opts, entry, name });
    cache.set(key, p);
  }
  return p;
}

const drivers = new Map<string, Promise<BuildResult>>();

/**
 * A driver file (of drivers/, or a fixture) built in-tree for `kernel`, so it loads isolated or
 * built in, against the Module.symvers of the modules it uses. Built once per test file.
 */
export function buildDriver(entry: string, kernel: KernelVersion, symvers: string[] = []): Promise<BuildResult> {
  const key = JSON.stringify([entry, kernel, symvers]);
  let p = drivers.get(key);
  if (!p) drivers.set(key, (p = build({ entry, kernel, intree: true, symvers })));
  return p;
}

/** The bytes of a built module, for insmod. */
export async function ko(name: string, source: string, opts: Omit<BuildOptions, "entry"> = {}): Promise<Uint8Array> {
  return (await buildSource(name, source, opts)).ko;
}

/** A copy of a module file with its image changed (to make files modpost would not). */
export function rewriteKo(bytes: Uint8Array, change: (img: KoImage) => void): Uint8Array {
  const img = parseKo(bytes);
  change(img);
  return serializeKo(img);
}

/** A copy of a module file with its .modinfo entries ("tag=value") changed by `change`. */
export function withModinfo(bytes: Uint8Array, change: (entries: string[]) => string[]): Uint8Array {
  return rewriteKo(bytes, (img) => {
    img.modinfo = change(img.modinfo.split("\0")).join("\0");
  });
}

/** A copy of a module file with every `tag=` entry of its .modinfo set to `tag=value`. */
export function setModinfo(bytes: Uint8Array, tag: string, value: string): Uint8Array {
  return withModinfo(bytes, (entries) => entries.map((e) => (e.startsWith(tag + "=") ? `${tag}=${value}` : e)));
}

/** A module whose source is just its MODULE_LICENSE and an init returning 0. */
export function licensed(license: string | null, extra = ""): string {
  return [
    'import * as k from "kemu/kernel";',
    license === null ? "" : `k.MODULE_LICENSE(${JSON.stringify(license)});`,
    extra,
    "k.module_init(() => 0);",
    "k.module_exit(() => {});",
  ].join("\n");
}
