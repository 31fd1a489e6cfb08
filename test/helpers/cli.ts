// Run the kemu command line in a real process, the way the test/cli suites do: sdk/cli/main.ts
// under `node --no-node-snapshot` (or bin/kemu.mjs, the installed launcher, which adds the flags
// itself), in an environment without the outer vitest's variables and without colours. Also a
// temporary working directory per suite, removed after it, and a writer for files in it.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll } from "vitest";

/** This checkout's root (no trailing '/'). */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
/** The command line's entry, run by Node directly. */
export const MAIN = join(ROOT, "sdk/cli/main.ts");
/** The installed `kemu` command: a launcher that re-executes Node with kemu's flags and MAIN. */
export const LAUNCHER = join(ROOT, "bin/kemu.mjs");

/** examples/gpumem/gpumem.ts: the proprietary GPU driver (hmm_devmem_add, devm_memremap_pages, hmm_devmem_remove). */
export const GPUMEM_EXAMPLE = join(ROOT, "examples/gpumem/gpumem.ts");
/** Its source, to be put where a test wants the driver and its output (so nothing is written into examples/). */
export const GPUMEM_SOURCE = readFileSync(GPUMEM_EXAMPLE, "utf8");

/** How a child process ended and what it printed. */
export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The environment for child processes: none of the outer vitest's variables, no colours; then `extra`. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(VITEST|TEST$|NODE_OPTIONS$|FORCE_COLOR$)/.test(k)) env[k] = v;
  return { ...env, NO_COLOR: "1", ...extra };
}

export interface RunOptions {
  /** The working directory (this process's by default). */
  cwd?: string;
  /** Variables added to childEnv()'s. */
  env?: NodeJS.ProcessEnv;
  /** What the process reads on stdin (a pipe, closed after it); nothing by default. */
  input?: string;
}

/** `file ARGS` in childEnv(), its output collected as text. */
export function run(file: string, args: string[], opts: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(file, args, { cwd: opts.cwd, env: childEnv(opts.env) });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    p.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    p.on("error", reject);
    p.on("close", (status) => resolve({ status, stdout, stderr }));
    p.stdin.end(opts.input ?? "");
  });
}

export interface KemuOptions extends RunOptions {
  /** Run bin/kemu.mjs (to test the launcher too) instead of `node --no-node-snapshot sdk/cli/main.ts`. */
  launcher?: boolean;
}

/** `kemu ARGS` as the command line runs it. */
export function kemu(args: string[], opts: KemuOptions = {}): Promise<Run> {
  const { launcher = false, ...rest } = opts;
  return run(process.execPath, launcher ? [LAUNCHER, ...args] : ["--no-node-snapshot", MAIN, ...args], rest);
}

/**
 * A new temporary directory (its real path), removed after the current suite. Call it where
 * vitest takes hooks: at the top of a test file or in a describe block, not inside a test.
 */
export function tempDir(prefix: string): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A suite's working directory: kemu run in it, files written into it. */
export interface Workdir {
  /** The directory's absolute real path. */
  dir: string;
  /** `kemu ARGS` in `cwd` (the directory by default). */
  kemu(args: string[], cwd?: string): Promise<Run>;
  /** Write `text` at dir/rel (directories created); its absolute path. */
  put(rel: string, text: string | Uint8Array): string;
}

/** tempDir(prefix) with kemu() and put() bound to it; `opts` apply to every run (cwd excepted). */
export function workdir(prefix: string, opts: Omit<KemuOptions, "cwd"> = {}): Workdir {
  const dir = tempDir(prefix);
  return {
    dir,
    kemu: (args, cwd = dir) => kemu(args, { ...opts, cwd }),
    put(rel, text) {
      const p = join(dir, rel);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, text);
      return p;
    },
  };
}
