// failslab (mm/failslab.c, lib/fault-inject.c) armed through debugfs, as a tester does it.

import type { Kernel } from "../../core/kernel.ts";

const FAILSLAB = "/sys/kernel/debug/failslab";

export interface FailslabOptions {
  /** failslab/verbose: 0 silent (the default here), 1 the FAULT_INJECTION lines, 2 those and a stack dump. */
  verbose?: 0 | 1 | 2;
}

/** Fail the `nth` slab allocation from now, once; ignore-gfp-wait N, so allocations that may
 *  sleep (GFP_KERNEL) fail too. */
export function armFailslab(k: Kernel, nth: number, opts: FailslabOptions = {}): void {
  k.write(`${FAILSLAB}/ignore-gfp-wait`, "N");
  k.write(`${FAILSLAB}/verbose`, String(opts.verbose ?? 0));
  k.write(`${FAILSLAB}/interval`, String(nth));
  k.write(`${FAILSLAB}/times`, "1");
  k.write(`${FAILSLAB}/probability`, "100");
}
