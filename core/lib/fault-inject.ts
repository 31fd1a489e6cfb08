// Fault injection (lib/fault-inject.c): the attributes debugfs exposes under
// /sys/kernel/debug/<name>/, and should_fail() deciding each call.

import type { Prandom } from "./random.ts";

/** struct fault_attr, as FAULT_ATTR_INITIALIZER leaves it. Its debugfs files set the fields. */
export class FaultAttr {
  readonly name: string;
  /** Percent chance of failing a call that gets this far; 0 disables the attribute. */
  probability = 0;
  /** Only every interval-th call that gets this far can fail. */
  interval = 1;
  /** Failures left to inject; -1 for no limit. */
  times = 1;
  /** Bytes to let through before failing. */
  space = 0;
  /** 0 silent, 1 the FAULT_INJECTION lines, 2 those and a stack dump. */
  verbose = 2;
  /** failslab: allocations that may reclaim are never failed (ignore-gfp-wait). */
  ignoreGfpReclaim = true;
  #count = 0;
  readonly #random: Prandom;
  readonly #report: (attr: FaultAttr) => void;

  constructor(name: string, random: Prandom, report: (attr: FaultAttr) => void) {
    this.name = name;
    this.#random = random;
    this.#report = report;
  }

  /** should_fail() */
  shouldFail(size: number): boolean {
    if (this.probability === 0) return false;
    if (this.times === 0) return false;
    if (this.space > size) {
      this.space -= size;
      return false;
    }
    if (this.interval > 1) {
      this.#count++;
      if (this.#count % this.interval) return false;
    }
    if (this.probability <= this.#random.u32() % 100) return false;
    this.#report(this);
    if (this.times !== -1) this.times--;
    return true;
  }
}
