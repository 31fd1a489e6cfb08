// Test helpers: boot a kernel for one test and, when the test ends, run the invariant
// checker, shut the kernel down and check that nothing leaked.

import { expect, onTestFinished } from "vitest";
import { Kernel } from "../../core/kernel.ts";
import type { BootConfig } from "../../core/config.ts";
import { KernelError } from "../../core/errno.ts";
import type { InsmodOptions } from "../../core/module/loader.ts";

export interface BootOptions {
  /** The test asserts leaks itself (it provokes a kernel bug that leaks on purpose). */
  expectLeaks?: boolean;
  /** The test asserts invariants itself (it corrupts state on purpose). */
  expectInvariantFailures?: boolean;
}

export async function boot(config: BootConfig = {}, opts: BootOptions = {}): Promise<Kernel> {
  const k = await Kernel.boot(config);
  onTestFinished(async () => {
    if (!opts.expectInvariantFailures) expect(k.checkInvariants(), "invariants before shutdown").toEqual([]);
    await k.shutdown();
    if (!opts.expectInvariantFailures) expect(k.checkInvariants(), "invariants after shutdown").toEqual([]);
    if (!opts.expectLeaks) expect(k.leaks(), "leaks after shutdown").toEqual([]);
  });
  return k;
}

/** The message text of every printk since `since` (a PrintkLog sequence number). */
export function messages(k: Kernel, since = 0): string[] {
  return k.log.messages(since);
}

/** An insmod that must fail: its KernelError (errno and insmod's message). */
export async function insmodError(k: Kernel, file: Uint8Array, opts: InsmodOptions = {}): Promise<KernelError> {
  const err = await k.insmod(file, opts).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, "insmod should have failed").toBeInstanceOf(KernelError);
  return err as KernelError;
}

/** rmmod's KernelError, or null when the module was removed. */
export function rmmodError(k: Kernel, name: string, force = false): KernelError | null {
  try {
    k.rmmod(name, { force });
    return null;
  } catch (e) {
    expect(e, `rmmod${force ? " -f" : ""} ${name}`).toBeInstanceOf(KernelError);
    return e as KernelError;
  }
}
