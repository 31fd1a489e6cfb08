// Fault injection (lib/fault-inject.c): the attributes debugfs exposes under
// /sys/kernel/debug/<name>/, and should_fail() deciding each call.

import type { Prandom } from "./random.ts";

export interface FaultAttrSettings {
  /** Percent chance of failing a call that gets this far (0 disables the attribute). */
  probability?: number;
  /** Fail only every interval-th call. */
  interval?: number;
  /** How many failures to inject; -1 for no limit. */
  times?: number;
  /** Bytes to let through before failing. */
  space?: number;
  /** 0 silent, 1 message, 2 message and stack (default 2). */
  verbose?: number;
  /** failslab only: also fail allocations that may sleep (ignore-gfp-wait=N). */
  ignoreGfpReclaim?: boolean;
}

export class FaultAttr {
  readonly name: string;
  probability = 0;
  interval = 1;
  times = 1;
  space = 0;
  verbose = 2;
  ignoreGfpReclaim = true;
  #count = 0;
  readonly #random: Prandom;
  readonly #report: (attr: FaultAttr) => void;

  constructor(name: string, random: Prandom, report: (attr: FaultAttr) => void) {
    this.name = name;
    this.#random = random;
    this.#report = report;
  }

  set(s: FaultAttrSettings): void {
    if (s.probability !== undefined) this.probability = checkInt("probability", s.probability, 0, 100);
    if (s.interval !== undefined) this.interval = checkInt("interval", s.interval, 1, 2 ** 31);
    if (s.times !== undefined) this.times = checkInt("times", s.times, -1, 2 ** 31);
    if (s.space !== undefined) this.space = checkInt("space", s.space, 0, 2 ** 31);
    if (s.verbose !== undefined) this.verbose = checkInt("verbose", s.verbose, 0, 2);
    if (s.ignoreGfpReclaim !== undefined) this.ignoreGfpReclaim = s.ignoreGfpReclaim;
    this.#count = 0;
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

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`fault injection ${name}: ${v} is not an integer from ${min} to ${max}`);
  return v;
}
