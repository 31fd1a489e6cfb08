// printk (core/printk.ts) as kernel/printk/printk.c 4.20 has it: KERN_<LEVEL> prefixes (the
// first one wins), default_message_loglevel 4, "[%5lu.%06lu] " timestamps from the virtual clock
// on every line of a record, KERN_CONT continuation, a ring buffer that drops the oldest records,
// consoles that get records below console_loglevel, and determinism (principle 9).

import { describe, expect, it } from "vitest";
import { Clock, HZ, jiffies_to_msecs, msecs_to_jiffies } from "../../core/clock.ts";
import type { Kernel } from "../../core/kernel.ts";
import {
  CONSOLE_LOGLEVEL_DEFAULT, formatTimestamp, KERN_ALERT, KERN_CONT, KERN_CRIT, KERN_DEBUG, KERN_DEFAULT, KERN_EMERG,
  KERN_ERR, KERN_INFO, KERN_NOTICE, KERN_SOH, KERN_WARNING, LOG_BUF_LEN_DEFAULT, MESSAGE_LOGLEVEL_DEFAULT, PrintkLog,
} from "../../core/printk.ts";
import { boot } from "../helpers/kernel.ts";

const SITE = { file: "mm/kemu_test.c", func: "kemu_test_fn" };

/** The lines printed since `seq`, as dmesg prints them. */
function linesSince(k: Kernel, seq: number, opts: { raw?: boolean; level?: number } = {}): string[] {
  return k.log.lines({ ...opts, since: seq });
}

describe("levels", () => {
  it("KERN_<LEVEL> are SOH plus a digit, KERN_DEFAULT 'd', KERN_CONT 'c'", () => {
    expect(KERN_SOH).toBe("\x01");
    expect([KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR, KERN_WARNING, KERN_NOTICE, KERN_INFO, KERN_DEBUG]).toEqual([
      "\x010", "\x011", "\x012", "\x013", "\x014", "\x015", "\x016", "\x017",
    ]);
    expect(KERN_DEFAULT).toBe("\x01d");
    expect(KERN_CONT).toBe("\x01c");
    expect(MESSAGE_LOGLEVEL_DEFAULT).toBe(4);
    expect(CONSOLE_LOGLEVEL_DEFAULT).toBe(7);
    expect(LOG_BUF_LEN_DEFAULT).toBe(131072);
  });

  it("each prefix gives its level and is stripped from the text", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    const prefixes = [KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR, KERN_WARNING, KERN_NOTICE, KERN_INFO, KERN_DEBUG];
    prefixes.forEach((p, i) => k.printk(`${p}level ${i}\n`));
    const recs = k.log.records(seq);
    expect(recs.map((r) => r.level)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(recs.map((r) => r.text)).toEqual(prefixes.map((_, i) => `level ${i}\n`));
    expect(linesSince(k, seq, { raw: true })).toEqual(prefixes.map((_, i) => `<${i}>[    1.200000] level ${i}`));
  });

  it("text without a level, and KERN_DEFAULT, get default_message_loglevel 4", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk("plain\n");
    k.printk(`${KERN_DEFAULT}default\n`);
    expect(linesSince(k, seq, { raw: true })).toEqual(["<4>[    1.200000] plain", "<4>[    1.200000] default"]);
  });

  it("the first level of several wins; KERN_DEFAULT does not reset it", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk(`${KERN_INFO}${KERN_ERR}info first\n`);
    k.printk(`${KERN_ERR}${KERN_DEFAULT}err then default\n`);
    k.printk(`${KERN_DEFAULT}${KERN_NOTICE}default then notice\n`);
    expect(linesSince(k, seq, { raw: true })).toEqual([
      "<6>[    1.200000] info first",
      "<3>[    1.200000] err then default",
      "<5>[    1.200000] default then notice",
    ]);
  });

  it("an SOH that is not a level stays in the text", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk("\x01xodd\n");
    k.printk(`${KERN_INFO}\x019nine\n`);
    const recs = k.log.records(seq);
    expect(recs.map((r) => [r.level, r.text])).toEqual([
      [4, "\x01xodd\n"],
      [6, "\x019nine\n"],
    ]);
  });
});

describe("timestamps", () => {
  it("print_time(): [%5lu.%06lu] with microseconds truncated", () => {
    expect(formatTimestamp(0)).toBe("[    0.000000] ");
    expect(formatTimestamp(999)).toBe("[    0.000000] ");
    expect(formatTimestamp(1_999)).toBe("[    0.000001] ");
    expect(formatTimestamp(1_234_567_891)).toBe("[    1.234567] ");
    expect(formatTimestamp(99_999_999_999_999)).toBe("[99999.999999] ");
    expect(formatTimestamp(123_456_789_000_000)).toBe("[123456.789000] ");
  });

  it("follow the virtual clock: boot ends at 1.2 s and k.clock.advance moves later records", async () => {
    const k = await boot();
    expect(k.dmesg().split("\n").at(-2)).toBe("[    1.200000] Run /sbin/init as init process");
    const seq = k.log.nextSeq;
    k.printk(`${KERN_INFO}before\n`);
    k.clock.advance(1_234_567_891);
    k.printk(`${KERN_INFO}after\n`);
    k.clock.advance(3_600_000_000_000);
    k.printk(`${KERN_INFO}an hour later\n`);
    expect(linesSince(k, seq)).toEqual([
      "[    1.200000] before",
      "[    2.434567] after",
      "[ 3602.434567] an hour later",
    ]);
    expect(k.log.records(seq).map((r) => r.tsNs)).toEqual([1_200_000_000, 2_434_567_891, 3_602_434_567_891]);
  });

  it("nothing moves the clock but the emulation: two printks in a row share a timestamp", async () => {
    const k = await boot();
    const t = k.clock.now();
    k.printk("a\n");
    k.printk("b\n");
    expect(k.clock.now()).toBe(t);
    expect(new Set(k.log.records(k.log.nextSeq - 2).map((r) => r.tsNs))).toEqual(new Set([t]));
  });

  it("the clock never goes backwards, rounds to whole ns and counts jiffies at HZ=250", () => {
    const c = new Clock();
    expect(c.now()).toBe(0);
    expect(() => c.advance(-1)).toThrow(RangeError);
    expect(() => c.advance(Number.NaN)).toThrow(RangeError);
    expect(c.now()).toBe(0);
    c.advance(1.6);
    expect(c.now()).toBe(2);
    c.advance(3_999_997);
    expect(c.jiffies).toBe(0);
    c.advance(1);
    expect(c.now()).toBe(4_000_000);
    expect(c.jiffies).toBe(1);
    expect(HZ).toBe(250);
    expect(jiffies_to_msecs(250)).toBe(1000);
    expect(msecs_to_jiffies(1)).toBe(1);
    expect(msecs_to_jiffies(1000)).toBe(250);
  });
});

describe("records and lines", () => {
  it("a multi-line record prints its timestamp (and raw level) on every line", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk(`${KERN_ERR}first\nsecond\n\nfourth\n`);
    expect(k.log.records(seq)).toHaveLength(1);
    expect(linesSince(k, seq)).toEqual(["[    1.200000] first", "[    1.200000] second", "[    1.200000] ", "[    1.200000] fourth"]);
    expect(linesSince(k, seq, { raw: true })).toEqual([
      "<3>[    1.200000] first",
      "<3>[    1.200000] second",
      "<3>[    1.200000] ",
      "<3>[    1.200000] fourth",
    ]);
    expect(k.log.messages(seq)).toEqual(["first", "second", "", "fourth"]);
  });

  it("dmesg() joins the lines with a final newline; dmesg({raw:true}) starts with <5> for the banner", async () => {
    const k = await boot({ version: "4.20" });
    const raw = k.dmesg({ raw: true });
    expect(raw.startsWith("<5>[    0.000000] Linux version 4.20.0 (kemu@kemu) (kemu emulator) #1 SMP Sun Dec 23 22:00:00 UTC 2018\n")).toBe(true);
    expect(raw.endsWith("<6>[    1.200000] Run /sbin/init as init process\n")).toBe(true);
    expect(k.dmesg()).toBe(k.log.lines().join("\n") + "\n");
    expect(k.dmesg({ since: k.log.nextSeq })).toBe("");
  });

  it("/proc/version is the banner line", async () => {
    const a = await boot({ version: "5.0" });
    expect(a.read("/proc/version")).toBe("Linux version 5.0.0 (kemu@kemu) (kemu emulator) #1 SMP Sun Mar 3 23:00:00 UTC 2019\n");
    expect(a.log.messages()[0]).toBe(a.read("/proc/version").trimEnd());
    const b = await boot({ version: "4.20" });
    expect(b.read("/proc/version")).toBe("Linux version 4.20.0 (kemu@kemu) (kemu emulator) #1 SMP Sun Dec 23 22:00:00 UTC 2018\n");
  });

  it("sequence numbers count every record from 0", async () => {
    const k = await boot();
    const recs = k.log.records();
    expect(recs.map((r) => r.seq)).toEqual(recs.map((_, i) => i));
    expect(k.log.nextSeq).toBe(recs.length);
  });

  it("dmesg({level}) keeps that level and more severe ones", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk(`${KERN_DEBUG}debug\n`);
    k.printk(`${KERN_INFO}info\n`);
    k.printk("default\n");
    k.printk(`${KERN_ERR}err\n`);
    k.printk(`${KERN_EMERG}emerg\n`);
    expect(k.log.lines({ since: seq, level: 4 })).toEqual(["[    1.200000] default", "[    1.200000] err", "[    1.200000] emerg"]);
    expect(k.log.lines({ since: seq, level: 0, raw: true })).toEqual(["<0>[    1.200000] emerg"]);
    expect(k.log.lines({ since: seq, level: 7 })).toHaveLength(5);
    // the boot log has KERN_DEBUG e820 lines that level 6 leaves out
    expect(k.dmesg()).toContain("e820: update [mem 0x00000000-0x00000fff] usable ==> reserved");
    expect(k.dmesg({ level: 6 })).not.toContain("e820: update");
    expect(k.dmesg({ level: 6 })).toContain("BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable");
  });
});

describe("KERN_CONT", () => {
  it("a record without a newline stays open; KERN_CONT pieces join it with its level and first timestamp", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk(`${KERN_INFO}Modules linked in:`);
    k.clock.advance(5_000_000);
    k.printk(`${KERN_CONT} a`);
    k.printk(`${KERN_CONT} b\n`);
    const recs = k.log.records(seq);
    expect(recs).toHaveLength(1);
    expect(recs[0]!.text).toBe("Modules linked in: a b\n");
    expect(recs[0]!.level).toBe(6);
    expect(linesSince(k, seq, { raw: true })).toEqual(["<6>[    1.200000] Modules linked in: a b"]);
    // the record is closed: the next KERN_CONT starts a record of its own at the default level
    k.printk(`${KERN_CONT}orphan\n`);
    expect(linesSince(k, seq, { raw: true }).at(-1)).toBe("<4>[    1.205000] orphan");
  });

  it("a KERN_CONT piece naming a level still continues the open record", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk(`${KERN_WARNING}x`);
    k.printk(`${KERN_CONT}${KERN_ERR}y\n`);
    expect(linesSince(k, seq, { raw: true })).toEqual(["<4>[    1.200000] xy"]);
  });

  it("a new record closes an open one", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk(`${KERN_INFO}open`);
    k.clock.advance(1_000);
    k.printk(`${KERN_ERR}next\n`);
    k.printk(`${KERN_CONT}late\n`);
    expect(linesSince(k, seq, { raw: true })).toEqual([
      "<6>[    1.200000] open",
      "<3>[    1.200001] next",
      "<4>[    1.200001] late",
    ]);
    // so does a record without a level
    const seq2 = k.log.nextSeq;
    k.printk("one");
    k.printk("two\n");
    expect(k.log.messages(seq2)).toEqual(["one", "two"]);
  });

  it("an empty KERN_CONT with nothing open stores nothing; with a record open it just ends it", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk(KERN_CONT);
    k.printk(`${KERN_CONT}\n`);
    expect(k.log.nextSeq).toBe(seq);
    k.printk(`${KERN_INFO}half`);
    k.printk(`${KERN_CONT}\n`);
    k.printk(`${KERN_CONT}separate\n`);
    expect(k.log.messages(seq)).toEqual(["half", "separate"]);
  });

  it("continuation pieces may carry newlines: the record becomes several lines", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk(`${KERN_INFO}a`);
    k.printk(`${KERN_CONT}b\nc`);
    k.printk(`${KERN_CONT}d\n`);
    expect(linesSince(k, seq)).toEqual(["[    1.200000] ab", "[    1.200000] cd"]);
  });
});

describe("the ring buffer", () => {
  it("drops the oldest records first when logBufLen is small (16-byte header + text, 4-byte aligned)", async () => {
    const k = await boot({ logBufLen: 4096 });
    const first = k.log.nextSeq;
    // "msg 00000" is 9 bytes: 16 + 9 = 25, aligned to 4 is 28; 4096 / 28 holds 146 of them
    for (let i = 0; i < 300; i++) k.printk(`${KERN_INFO}msg ${String(i).padStart(5, "0")}\n`);
    const recs = k.log.records();
    expect(recs).toHaveLength(146);
    expect(recs[0]!.seq).toBe(first + 154);
    expect(recs[0]!.text).toBe("msg 00154\n");
    expect(recs.at(-1)!.text).toBe("msg 00299\n");
    expect(k.log.nextSeq).toBe(first + 300);
    // the boot messages are gone
    expect(k.dmesg()).not.toContain("Linux version");
    expect(k.dmesg().split("\n")[0]).toBe("[    1.200000] msg 00154");
  });

  it("a larger buffer keeps more: the default 128 KiB keeps the whole boot", async () => {
    const small = await boot({ logBufLen: "4K" });
    const big = await boot({});
    expect(big.log.records()[0]!.seq).toBe(0);
    expect(big.log.messages()[0]).toMatch(/^Linux version /);
    for (let i = 0; i < 300; i++) {
      small.printk(`${KERN_INFO}msg ${String(i).padStart(5, "0")}\n`);
      big.printk(`${KERN_INFO}msg ${String(i).padStart(5, "0")}\n`);
    }
    expect(big.log.records()[0]!.seq).toBe(0);
    expect(small.log.records()[0]!.seq).toBeGreaterThan(0);
  });

  it("a record larger than the buffer still keeps the newest record", () => {
    const log = new PrintkLog(new Clock(), 64);
    log.printk("a\n");
    log.printk("x".repeat(200) + "\n");
    expect(log.records().map((r) => r.seq)).toEqual([1]);
    expect(log.messages()).toEqual(["x".repeat(200)]);
  });
});

describe("consoles", () => {
  it("the console option gets each line below console_loglevel 7, as it completes, with its timestamp", async () => {
    const seen: string[] = [];
    const k = await boot({ console: (line) => seen.push(line) });
    // everything the boot printed except the KERN_DEBUG lines
    expect(seen).toEqual(k.log.lines({ level: 6 }));
    expect(seen.some((l) => l.includes("e820: update"))).toBe(false);
    seen.length = 0;
    k.printk(`${KERN_DEBUG}not on the console\n`);
    k.printk(`${KERN_INFO}two\nlines\n`);
    k.printk(`${KERN_INFO}open`);
    expect(seen).toEqual(["[    1.200000] two", "[    1.200000] lines"]);
    k.printk(`${KERN_CONT} and closed\n`);
    k.printk("default level\n");
    expect(seen).toEqual(["[    1.200000] two", "[    1.200000] lines", "[    1.200000] open and closed", "[    1.200000] default level"]);
  });

  it("a lower console_loglevel silences more", async () => {
    const seen: string[] = [];
    const k = await boot({ console: (line) => seen.push(line) });
    seen.length = 0;
    k.log.consoleLoglevel = 4;
    k.printk(`${KERN_WARNING}warning\n`);
    k.printk(`${KERN_ERR}err\n`);
    k.printk("default\n");
    expect(seen).toEqual(["[    1.200000] err"]);
  });

  it("the printk hook sees every completed line, KERN_DEBUG included", async () => {
    const k = await boot();
    const seen: [number, string][] = [];
    k.hooks.printk.tap("test", (rec, line) => void seen.push([rec.level, line]));
    k.printk(`${KERN_DEBUG}dbg\n`);
    k.printk(`${KERN_INFO}a`);
    expect(seen).toEqual([[7, "[    1.200000] dbg"]]);
    k.printk(`${KERN_CONT}b\n`);
    expect(seen).toEqual([[7, "[    1.200000] dbg"], [6, "[    1.200000] ab"]]);
  });
});

describe("determinism", () => {
  async function scenario(seed: number): Promise<{ dmesg: string; traceIds: string[] }> {
    const k = await boot({ seed, memory: "2G", pmem: [{ size: "1G" }] });
    k.clock.advance(7_777_777);
    k.printk(`${KERN_INFO}hello\n`);
    k.warn(SITE, "first");
    k.warn(SITE, "second");
    const traceIds = k.log.messages().flatMap((l) => /^---\[ end trace ([0-9a-f]{16}) \]---$/.exec(l)?.slice(1) ?? []);
    return { dmesg: k.dmesg({ raw: true }), traceIds };
  }

  it("two boots with the same config print the same dmesg, byte for byte", async () => {
    const a = await scenario(42);
    const b = await scenario(42);
    expect(a.traceIds).toHaveLength(2);
    expect(b.dmesg).toBe(a.dmesg);
  });

  it("a different seed changes the end trace id of a WARN, and nothing else", async () => {
    const a = await scenario(1);
    const b = await scenario(2);
    expect(b.traceIds[0]).not.toBe(a.traceIds[0]);
    expect(b.traceIds[1]).not.toBe(a.traceIds[1]);
    const strip = (s: string) => s.replace(/end trace [0-9a-f]{16}/g, "end trace X");
    expect(strip(b.dmesg)).toBe(strip(a.dmesg));
  });

  it("the end trace id goes up by one with every report (init_oops_id)", async () => {
    const { traceIds } = await scenario(7);
    expect(BigInt("0x" + traceIds[1]!)).toBe((BigInt("0x" + traceIds[0]!) + 1n) & 0xffffffffffffffffn);
  });
});

describe("continuation lines belong to the task that opened them", () => {
  it("a KERN_CONT from another task starts a record of its own", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.sched.runAs("a", () => k.printk("\x016first part"));
    k.sched.runAs("b", () => k.printk("\x01c from b\n"));
    expect(k.log.messages(seq)).toEqual(["first part", " from b"]);
  });

  it("the same task continues its own line", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.printk("\x016first part");
    k.printk("\x01c, second part\n");
    expect(k.log.messages(seq)).toEqual(["first part, second part"]);
  });
});
