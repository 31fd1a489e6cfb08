// kemu/testing: vitest helpers for driver authors. Boot a kernel for one test (checked and shut
// down when the test ends), build a driver from its source for that kernel and insmod it, read
// the kernel log. kemu's own suites use the same helpers.

import { expect, onTestFinished } from "vitest";
import type { BootConfig } from "../../core/config.ts";
import { Kernel } from "../../core/kernel.ts";
import type { InsmodOptions } from "../../core/module/loader.ts";
import type { Module } from "../../core/module/module.ts";
import { build, type BuildOptions, type BuildResult } from "../build/build.ts";

export { Kernel };
export { build, BuildError, type BuildOptions, type BuildResult } from "../build/build.ts";

export interface BootOptions {
  /** The test asserts leaks itself (it provokes a kernel bug that leaks on purpose). */
  expectLeaks?: boolean;
  /** The test asserts invariants itself (it corrupts state on purpose). */
  expectInvariantFailures?: boolean;
}

/**
 * Boot a kernel for the current test. When the test ends the invariant checker runs (it must
 * report nothing), the kernel shuts down, which unloads every module, and nothing may have
 * leaked since the end of boot. Unlike Kernel.boot(), no in-tree driver loads on its own
 * (autoload false), so the test decides what runs: pass `autoload: true` for udev.
 */
export async function boot(config: BootConfig = {}, opts: BootOptions = {}): Promise<Kernel> {
  const k = await Kernel.boot({ autoload: false, ...config });
  onTestFinished(async () => {
    if (!opts.expectInvariantFailures) expect(k.checkInvariants(), "invariants before shutdown").toEqual([]);
    await k.shutdown();
    if (!opts.expectInvariantFailures) expect(k.checkInvariants(), "invariants after shutdown").toEqual([]);
    if (!opts.expectLeaks) expect(k.leaks(), "leaks after shutdown").toEqual([]);
  });
  return k;
}

/** Build the driver at `entry` for the kernel `k` runs (its version is the build's --kernel). */
export function buildFor(k: Kernel, entry: string, opts: Omit<BuildOptions, "entry" | "kernel"> = {}): Promise<BuildResult> {
  return build({ ...opts, entry, kernel: k.config.version });
}

/**
 * Build the driver at `entry` for `k` and insmod it. A build error throws a BuildError with
 * modpost's lines; a refused insmod throws a KernelError with insmod's message.
 */
export async function insmodDriver(k: Kernel, entry: string, opts: { build?: Omit<BuildOptions, "entry" | "kernel">; insmod?: InsmodOptions } = {}): Promise<Module> {
  const { ko, image } = await buildFor(k, entry, opts.build);
  return k.insmod(ko, { ...opts.insmod, filename: `${image.thisModule}.ko` });
}

/** The text of every printk since `since` (a sequence number from k.log.nextSeq), one entry per record. */
export function messages(k: Kernel, since = 0): string[] {
  return k.log.messages(since);
}
