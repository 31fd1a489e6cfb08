// The virtual clock (principle 9). Nothing reads host time: printk timestamps, jiffies and
// every timeout the kernel models come from here, so the same inputs give the same dmesg.
// Time moves only when emulated work charges it (boot stages, memmap init, sleeps, timeouts).

export const NSEC_PER_USEC = 1_000;
export const NSEC_PER_MSEC = 1_000_000;
export const NSEC_PER_SEC = 1_000_000_000;
export const HZ = 250;

/**
 * Modelled costs, in nanoseconds. Chosen from published measurements so that printed
 * durations are plausible; they are a model, not a measurement of this host.
 */
export const COST_NS = {
  /** Initialising one struct page in memmap_init_zone_device: Duyck's 2018 figures give
   *  about 3 TB of pmem in ~32 s after his series, i.e. ~40 ns per 4 KiB page. */
  memmapInitPage: 40,
} as const;

export class Clock {
  #ns = 0;

  /** local_clock(): nanoseconds since boot. */
  now(): number {
    return this.#ns;
  }

  advance(ns: number): void {
    if (!(ns >= 0)) throw new RangeError(`clock cannot go backwards (${ns} ns)`);
    this.#ns += Math.round(ns);
  }

  get jiffies(): number {
    return Math.floor(this.#ns / (NSEC_PER_SEC / HZ));
  }
}

export function jiffies_to_msecs(j: number): number {
  return (j * 1000) / HZ;
}

export function msecs_to_jiffies(ms: number): number {
  return Math.ceil((ms * HZ) / 1000);
}
