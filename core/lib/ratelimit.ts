// Rate limiting (lib/ratelimit.c): at most `burst` events per `interval` jiffies; when a new
// interval starts after some were dropped, "%s: %d callbacks suppressed" is printed.

import { HZ } from "../clock.ts";

export const DEFAULT_RATELIMIT_INTERVAL = 5 * HZ;
export const DEFAULT_RATELIMIT_BURST = 10;

export class Ratelimit {
  readonly interval: number;
  readonly burst: number;
  #begin = 0;
  #printed = 0;
  #missed = 0;

  constructor(interval = DEFAULT_RATELIMIT_INTERVAL, burst = DEFAULT_RATELIMIT_BURST) {
    this.interval = interval;
    this.burst = burst;
  }

  /** ___ratelimit(): true if this event may be reported now. */
  allow(jiffies: number, func: string, printk: (text: string) => void): boolean {
    if (!this.interval) return true;
    if (!this.#begin) this.#begin = jiffies;
    // time_is_before_jiffies(rs->begin + rs->interval): strictly after the interval's end.
    if (jiffies > this.#begin + this.interval) {
      if (this.#missed) printk(`\x014${func}: ${this.#missed} callbacks suppressed\n`);
      this.#begin = jiffies;
      this.#printed = 0;
      this.#missed = 0;
    }
    if (this.burst && this.burst > this.#printed) {
      this.#printed++;
      return true;
    }
    this.#missed++;
    return false;
  }
}
