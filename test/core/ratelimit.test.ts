// lib/ratelimit.c ___ratelimit(): `burst` events per `interval` jiffies; a new interval starts
// only when time_is_before_jiffies(rs->begin + rs->interval), i.e. strictly after its end.

import { describe, expect, it } from "vitest";
import { HZ } from "../../core/clock.ts";
import { Ratelimit } from "../../core/lib/ratelimit.ts";

describe("___ratelimit()", () => {
  it("keeps the interval through its last jiffy and reports what it dropped when the next one starts", () => {
    const rs = new Ratelimit(5 * HZ, 2);
    const out: string[] = [];
    const printk = (t: string) => void out.push(t);
    const begin = 1000;
    expect([rs.allow(begin, "f", printk), rs.allow(begin, "f", printk), rs.allow(begin, "f", printk)]).toEqual([true, true, false]);
    // jiffies == begin + interval is not after it: still the same interval.
    expect(rs.allow(begin + 5 * HZ, "f", printk)).toBe(false);
    expect(out).toEqual([]);
    expect(rs.allow(begin + 5 * HZ + 1, "f", printk)).toBe(true);
    expect(out).toEqual(["\x014f: 2 callbacks suppressed\n"]);
  });
});
