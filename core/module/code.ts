// The check of a module's code before it is linked, as apply_relocations() would find a
// broken object: code that does not parse, awaits at its top level, or imports anything but
// kemu/kernel is refused (-ENOEXEC) before any of it runs. The CommonJS form made on the way
// is what the built-in runtime runs.

import { transform } from "esbuild";

export type CheckedCode = { cjs: string } | { error: string };

/** Results for the last few distinct codes (a driver loaded again, tests, the bench). */
const checked = new Map<string, Promise<CheckedCode>>();

/** Asynchronous, so the loader can set up the module's isolate meanwhile. */
export function checkModuleCode(code: string): Promise<CheckedCode> {
  let r = checked.get(code);
  if (r === undefined) {
    r = check(code);
    if (checked.size >= 64) checked.delete(checked.keys().next().value!);
    checked.set(code, r);
  }
  return r;
}

async function check(code: string): Promise<CheckedCode> {
  let cjs: string;
  try {
    cjs = (await transform(code, { format: "cjs", loader: "js", target: "es2022", logLevel: "silent" })).code;
  } catch (e) {
    const m = (e as { errors?: { text: string; location?: { line: number; column: number } | null }[] }).errors?.[0];
    if (!m) throw e;
    const at = m.location ? ` (line ${m.location.line}, column ${m.location.column})` : "";
    // The module's top level runs inside init_module(): nothing may wait there.
    if (m.text.startsWith("Top-level await")) return { error: `awaits at its top level${at}` };
    return { error: `does not compile: ${m.text}${at}` };
  }
  // esbuild turns every import into a require() of its specifier.
  for (const [, spec] of cjs.matchAll(/\brequire\("([^"]*)"\)/g)) {
    if (spec !== "kemu/kernel") return { error: `imports '${spec}'; a module may import only kemu/kernel` };
  }
  return { cjs };
}
