// Kernel taint (core/taint.ts, kernel/panic.c 4.20/5.0): print_tainted()'s "Not tainted" and
// 18-column "Tainted: " string, add_taint()'s one-time "Disabling lock debugging due to kernel
// taint" for LOCKDEP_NOW_UNRELIABLE taints, /proc/sys/kernel/tainted (kernel/sysctl.c
// proc_taint), and the WARN report of __warn_printk()/__warn() (core/kernel/bug.ts).

import { describe, expect, it } from "vitest";
import { EINVAL, KernelError } from "../../core/errno.ts";
import { HARDWARE_NAME, KernelOops } from "../../core/kernel/bug.ts";
import type { Kernel } from "../../core/kernel.ts";
import { KERN_INFO } from "../../core/printk.ts";
import {
  letters, Taint, TAINT_AUX, TAINT_BAD_PAGE, TAINT_CPU_OUT_OF_SPEC, TAINT_CRAP, TAINT_DIE, TAINT_FIRMWARE_WORKAROUND,
  TAINT_FLAGS, TAINT_FORCED_MODULE, TAINT_FORCED_RMMOD, TAINT_LIVEPATCH, TAINT_MACHINE_CHECK, TAINT_OOT_MODULE,
  TAINT_OVERRIDDEN_ACPI_TABLE, TAINT_PROPRIETARY_MODULE, TAINT_RANDSTRUCT, TAINT_SOFTLOCKUP, TAINT_TEST,
  TAINT_UNSIGNED_MODULE, TAINT_USER, TAINT_WARN,
} from "../../core/taint.ts";
import { boot } from "../helpers/kernel.ts";

const DISABLING = "Disabling lock debugging due to kernel taint";
const TAINTED = "/proc/sys/kernel/tainted";
const SITE = { file: "mm/kemu_test.c", func: "kemu_test_fn" };

function count(k: Kernel, line: string): number {
  return k.log.messages().filter((l) => l === line).length;
}

/** The write must fail with EINVAL and leave the mask as it was. */
function expectEinval(k: Kernel, data: string): void {
  const before = k.read(TAINTED);
  let err: unknown;
  try {
    k.write(TAINTED, data);
  } catch (e) {
    err = e;
  }
  expect(err, `write of ${JSON.stringify(data)}`).toBeInstanceOf(KernelError);
  expect((err as KernelError).errno).toBe(EINVAL);
  expect((err as KernelError).message).toBe(`write to ${TAINTED} failed: Invalid argument`);
  expect(k.read(TAINTED)).toBe(before);
}

describe("the taint flag table", () => {
  it("has the bits, letters and clear characters of taint_flags[]", () => {
    expect(TAINT_FLAGS.map((f) => f.cTrue).join("")).toBe("PFSRMBUDAWCIOELKXTNJ");
    expect(TAINT_FLAGS.map((f) => f.bit)).toEqual(TAINT_FLAGS.map((_, i) => i));
    expect(TAINT_FLAGS.map((f) => f.cFalse).join("")).toBe("G" + " ".repeat(19));
    expect(
      [TAINT_PROPRIETARY_MODULE, TAINT_FORCED_MODULE, TAINT_CPU_OUT_OF_SPEC, TAINT_FORCED_RMMOD, TAINT_MACHINE_CHECK,
        TAINT_BAD_PAGE, TAINT_USER, TAINT_DIE, TAINT_OVERRIDDEN_ACPI_TABLE, TAINT_WARN, TAINT_CRAP,
        TAINT_FIRMWARE_WORKAROUND, TAINT_OOT_MODULE, TAINT_UNSIGNED_MODULE, TAINT_SOFTLOCKUP, TAINT_LIVEPATCH,
        TAINT_AUX, TAINT_RANDSTRUCT, TAINT_TEST],
    ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
    // module flags (module_flags_taint, /proc/modules): P F C O E K X T N J
    expect(TAINT_FLAGS.filter((f) => f.module).map((f) => f.cTrue).join("")).toBe("PFCOEKXTNJ");
  });

  it("letters(): 18 columns for the kernel-wide string, set module letters only for a module", () => {
    const mask = (1 << TAINT_PROPRIETARY_MODULE) | (1 << TAINT_WARN) | (1 << TAINT_OOT_MODULE) | (1 << TAINT_UNSIGNED_MODULE);
    expect(letters(mask, 18, true)).toBe("P        W  OE    ");
    expect(letters(mask, 18, false)).toBe("POE");
    expect(letters(0, 18, true)).toBe("G" + " ".repeat(17));
  });

  it("the Taint constructor takes 1..20 columns, add() bits 0..63 (tainted_mask is an unsigned long)", () => {
    expect(() => new Taint(0, () => {})).toThrow(RangeError);
    expect(() => new Taint(21, () => {})).toThrow(RangeError);
    const t = new Taint(18, () => {});
    expect(() => t.add(64, "LOCKDEP_STILL_OK")).toThrow(RangeError);
    expect(() => t.add(-1, "LOCKDEP_STILL_OK")).toThrow(RangeError);
    expect(() => t.add(1.5, "LOCKDEP_STILL_OK")).toThrow(RangeError);
    expect(t.mask).toBe(0);
  });
});

describe.each(["4.20", "5.0"] as const)("print_tainted() on %s", (version) => {
  it("is 'Not tainted' after boot, with /proc/sys/kernel/tainted reading 0", async () => {
    const k = await boot({ version });
    expect(k.tainted()).toBe("Not tainted");
    expect(String(k.taint)).toBe("Not tainted");
    expect(k.read(TAINTED)).toBe("0\n");
    expect(k.taint.count).toBe(18);
  });

  it("P alone is 'Tainted: P' and 17 spaces", async () => {
    const k = await boot({ version });
    k.taint.add(TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    expect(k.tainted()).toBe("Tainted: P                 ");
    expect(k.tainted()).toHaveLength("Tainted: ".length + 18);
  });

  it("W alone is 'Tainted: G', 8 spaces, W, 8 spaces", async () => {
    const k = await boot({ version });
    k.taint.add(TAINT_WARN, "LOCKDEP_STILL_OK");
    expect(k.tainted()).toBe("Tainted: G        W        ");
  });

  it("P, O and E are 'Tainted: P           OE    '", async () => {
    const k = await boot({ version });
    for (const bit of [TAINT_OOT_MODULE, TAINT_UNSIGNED_MODULE, TAINT_PROPRIETARY_MODULE]) k.taint.add(bit, "LOCKDEP_STILL_OK");
    expect(k.tainted()).toBe("Tainted: P           OE    ");
    expect(k.taint.verbose()).toEqual(["[P]=PROPRIETARY_MODULE", "[O]=OOT_MODULE", "[E]=UNSIGNED_MODULE"]);
  });

  it("every one of the 18 flags in its column", async () => {
    const k = await boot({ version });
    const cols = "PFSRMBUDAWCIOELKXT";
    for (let bit = 0; bit < 18; bit++) {
      const t = new Taint(18, () => {});
      t.add(bit, "LOCKDEP_STILL_OK");
      const expected = [...cols].map((c, i) => (i === bit ? c : i === 0 ? "G" : " ")).join("");
      expect(String(t)).toBe("Tainted: " + expected);
      k.taint.add(bit, "LOCKDEP_STILL_OK");
    }
    expect(k.tainted()).toBe("Tainted: PFSRMBUDAWCIOELKXT");
    expect(k.read(TAINTED)).toBe(`${2 ** 18 - 1}\n`);
  });

  it("bits past the flag table set the mask but show no letter (4.20 add_taint has no check)", async () => {
    const k = await boot({ version });
    k.taint.add(TAINT_TEST, "LOCKDEP_STILL_OK");
    expect(k.read(TAINTED)).toBe("262144\n");
    expect(k.tainted()).toBe("Tainted: G                 ");
    k.taint.add(31, "LOCKDEP_STILL_OK");
    expect(k.taint.mask).toBe(2 ** 31 + 2 ** 18);
    expect(k.read(TAINTED)).toBe("2147745792\n");
    expect(k.tainted()).toBe("Tainted: G                 ");
    expect(k.taint.test(31)).toBe(true);
    expect(k.taint.verbose()).toEqual([]);
  });
});

describe("Disabling lock debugging due to kernel taint", () => {
  it("is printed at KERN_WARNING by the first LOCKDEP_NOW_UNRELIABLE taint only, before the bit is set", async () => {
    const k = await boot();
    const seen: string[] = [];
    k.hooks.printk.tap("test", (rec, line) => {
      if (line.endsWith(DISABLING)) seen.push(`${rec.level} ${k.tainted()}`);
    });
    k.taint.add(TAINT_WARN, "LOCKDEP_STILL_OK");
    k.taint.add(TAINT_OOT_MODULE, "LOCKDEP_STILL_OK");
    expect(count(k, DISABLING)).toBe(0);
    expect(k.taint.debugLocks).toBe(true);
    k.taint.add(TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    expect(count(k, DISABLING)).toBe(1);
    expect(seen).toEqual(["4 Tainted: G        W  O     "]);
    expect(k.taint.debugLocks).toBe(false);
    k.taint.add(TAINT_FORCED_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    k.taint.add(TAINT_FORCED_RMMOD, "LOCKDEP_NOW_UNRELIABLE");
    k.taint.add(TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    expect(count(k, DISABLING)).toBe(1);
    expect(k.tainted()).toBe("Tainted: PF R     W  O     ");
  });

  it("is printed even when the bit was already set by a lockdep-safe taint", async () => {
    const k = await boot();
    k.taint.add(TAINT_PROPRIETARY_MODULE, "LOCKDEP_STILL_OK");
    expect(count(k, DISABLING)).toBe(0);
    k.taint.add(TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    expect(count(k, DISABLING)).toBe(1);
  });

  it("is not printed by an oops: oops_enter() turned lock debugging off before TAINT_DIE", async () => {
    const k = await boot();
    expect(() => k.bugs.bug(SITE)).toThrow(KernelOops);
    expect(k.tainted()).toBe("Tainted: G      D          ");
    expect(count(k, DISABLING)).toBe(0);
    expect(k.taint.debugLocks).toBe(false);
    // and nothing prints it later either
    k.taint.add(TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    expect(count(k, DISABLING)).toBe(0);
  });
});

describe("/proc/sys/kernel/tainted", () => {
  it("reads the decimal mask", async () => {
    const k = await boot();
    k.taint.add(TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    k.taint.add(TAINT_OOT_MODULE, "LOCKDEP_STILL_OK");
    expect(k.read(TAINTED)).toBe("4097\n");
  });

  it("a write ORs bits in, lockdep-safe, and shows in the taint string", async () => {
    const k = await boot();
    k.write(TAINTED, "1");
    expect(k.read(TAINTED)).toBe("1\n");
    expect(k.tainted()).toBe("Tainted: P                 ");
    // proc_taint uses LOCKDEP_STILL_OK: no lock debugging line even for P
    expect(count(k, DISABLING)).toBe(0);
    k.write(TAINTED, "512\n");
    expect(k.read(TAINTED)).toBe("513\n");
    k.write(TAINTED, " 64 ");
    expect(k.read(TAINTED)).toBe("577\n");
    expect(k.tainted()).toBe("Tainted: P     U  W        ");
    // several bits at once
    k.write(TAINTED, String((1 << 12) | (1 << 13)));
    expect(k.read(TAINTED)).toBe(`${577 + 4096 + 8192}\n`);
  });

  it("can never clear a bit: writing 0 or a smaller mask changes nothing", async () => {
    const k = await boot();
    k.write(TAINTED, "4608");
    k.write(TAINTED, "0");
    expect(k.read(TAINTED)).toBe("4608\n");
    k.write(TAINTED, "512");
    expect(k.read(TAINTED)).toBe("4608\n");
    expect(k.tainted()).toBe("Tainted: G        W  O     ");
  });

  it("bits past the flag table are accepted (4.20 proc_taint loops to BITS_PER_LONG)", async () => {
    const k = await boot({ version: "4.20" });
    k.write(TAINTED, String(2 ** 20));
    expect(k.read(TAINTED)).toBe("1048576\n");
    expect(k.tainted()).toBe("Tainted: G                 ");
    k.write(TAINTED, String(2 ** 31));
    expect(k.read(TAINTED)).toBe(`${2 ** 31 + 2 ** 20}\n`);
  });

  it("refuses what is not a number with EINVAL and changes nothing", async () => {
    const k = await boot();
    k.write(TAINTED, "1");
    expectEinval(k, "abc");
    expectEinval(k, "1x");
    expectEinval(k, "x1");
  });

  it("an empty write changes nothing", async () => {
    const k = await boot();
    k.write(TAINTED, "1");
    k.write(TAINTED, "");
    expect(k.read(TAINTED)).toBe("1\n");
  });

  it("refuses writes to read-only files and unknown paths", async () => {
    const k = await boot();
    expect(() => k.write("/proc/version", "x")).toThrow("/proc/version: Permission denied (read-only file)");
    expect(() => k.read("/proc/sys/kernel/tainted_nope")).toThrow("/proc/sys/kernel/tainted_nope: No such file or directory");
  });

  // proc_taint() reads with proc_doulongvec_minmax(): proc_get_long() parses with base 0
  // (simple_strtoul(p, &p, 0) in 4.20, strtoul_lenient(p, &p, 0, val) from 5.0), and
  // __do_proc_doulongvec_minmax() skips a negative value with `if (neg) continue;` (it became
  // -EINVAL only in 2021).
  it("'-1' is skipped silently: the write succeeds and changes nothing", async () => {
    const k = await boot();
    k.write(TAINTED, "-1");
    expect(k.read(TAINTED)).toBe("0\n");
  });

  it("hex and octal are accepted, as strtoul base 0 reads them", async () => {
    const k = await boot();
    k.write(TAINTED, "0x200");
    expect(k.read(TAINTED)).toBe("512\n");
    k.write(TAINTED, "010");
    expect(k.read(TAINTED)).toBe("520\n");
  });

  it("bits 32..63 can be set on x86-64", async () => {
    const k = await boot();
    k.write(TAINTED, "4294967296");
    expect(k.read(TAINTED)).toBe("4294967296\n");
  });
});

describe("the WARN report", () => {
  // WARN() prints "cut here" from __warn_printk(); a WARN_ON() on x86 4.19-5.1 does not.
  const report = (tainted: string, message: string | null, pid = 1, comm = "swapper/0", release = "5.0.0") => [
    ...(message === null ? [] : ["------------[ cut here ]------------", message]),
    `WARNING: CPU: 0 PID: ${pid} at mm/kemu_test.c kemu_test_fn`,
    "Modules linked in:",
    `CPU: 0 PID: ${pid} Comm: ${comm} ${tainted} ${release} #1`,
    `Hardware name: ${HARDWARE_NAME}`,
    // x86 WARNs trap: show_regs() prints RIP, and the trace starts at its caller.
    "RIP: 0010:kemu_test_fn",
    "Call Trace:",
  ];

  /** The report lines since `seq`, with the end trace id checked and replaced by ID. */
  function reportSince(k: Kernel, seq: number): string[] {
    const msgs = k.log.messages(seq);
    const last = msgs.at(-1)!;
    expect(last).toMatch(/^---\[ end trace [0-9a-f]{16} \]---$/);
    return [...msgs.slice(0, -1), "---[ end trace ID ]---"];
  }

  it.each([
    ["5.0", "5.0.0"],
    ["4.20", "4.20.0"],
  ] as const)("on %s: cut here, the message, WARNING:, modules, CPU: line, hardware, call trace, end trace; then taint W", async (version, release) => {
    const k = await boot({ version });
    const seq = k.log.nextSeq;
    expect(k.warn(SITE, "something is off")).toBe(true);
    expect(reportSince(k, seq)).toEqual([...report("Not tainted", "something is off", 1, "swapper/0", release), "---[ end trace ID ]---"]);
    for (const r of k.log.records(seq)) expect(r.level).toBe(4);
    expect(k.tainted()).toBe("Tainted: G        W        ");
    expect(count(k, DISABLING)).toBe(0);
    expect(k.taint.debugLocks).toBe(true);
  });

  it("the dmesg lines carry the timestamp of the moment of the WARN", async () => {
    const k = await boot();
    k.clock.advance(800_000_000);
    const seq = k.log.nextSeq;
    k.warn(SITE, "late");
    expect(k.log.lines({ since: seq, raw: true }).slice(0, 3)).toEqual([
      "<4>[    2.000000] ------------[ cut here ]------------",
      "<4>[    2.000000] late",
      "<4>[    2.000000] WARNING: CPU: 0 PID: 1 at mm/kemu_test.c kemu_test_fn",
    ]);
  });

  it("WARN_ON (no message) has no cut-here or message line; a message's own newline is not doubled", async () => {
    const k = await boot();
    let seq = k.log.nextSeq;
    k.warn(SITE, null);
    expect(reportSince(k, seq)).toEqual([...report("Not tainted", null), "---[ end trace ID ]---"]);
    seq = k.log.nextSeq;
    k.warn(SITE, "with newline\n");
    expect(reportSince(k, seq)).toEqual([...report("Tainted: G        W        ", "with newline"), "---[ end trace ID ]---"]);
  });

  it("the CPU: line shows the taint from before the WARN, and the taints already there", async () => {
    const k = await boot();
    k.taint.add(TAINT_PROPRIETARY_MODULE, "LOCKDEP_NOW_UNRELIABLE");
    const seq = k.log.nextSeq;
    k.warn(SITE, "x");
    expect(k.log.messages(seq)).toContain("CPU: 0 PID: 1 Comm: swapper/0 Tainted: P                  5.0.0 #1");
    expect(k.tainted()).toBe("Tainted: P        W        ");
    const seq2 = k.log.nextSeq;
    k.warn(SITE, "y");
    expect(k.log.messages(seq2)).toContain("CPU: 0 PID: 1 Comm: swapper/0 Tainted: P        W         5.0.0 #1");
  });

  it("names the current task in the WARNING: and CPU: lines", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.sched.runAs("insmod", () => k.warn(SITE, "from insmod"));
    expect(reportSince(k, seq)).toEqual([...report("Not tainted", "from insmod", 100, "insmod"), "---[ end trace ID ]---"]);
  });

  it("the call trace lists kemu's frames innermost first, after the WARN site in RIP", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    k.bugs.frame("outer_fn", () => k.bugs.frame("inner_fn", () => k.warn(SITE, null)));
    const msgs = k.log.messages(seq);
    const at = msgs.indexOf("Call Trace:");
    expect(msgs[at - 1]).toBe("RIP: 0010:kemu_test_fn");
    expect(msgs.slice(at, -1)).toEqual(["Call Trace:", " inner_fn", " outer_fn"]);
    expect(k.bugs.stack).toEqual([]);
  });

  it("one end trace id per report, each one more than the last", async () => {
    const k = await boot({ seed: 9 });
    k.warn(SITE, "a");
    k.warn(SITE, "b");
    expect(() => k.bugs.bug(SITE)).toThrow(KernelOops);
    const ids = k.log.messages().flatMap((l) => /^---\[ end trace ([0-9a-f]{16}) \]---$/.exec(l)?.slice(1) ?? []);
    expect(ids).toHaveLength(3);
    const first = BigInt("0x" + ids[0]!);
    const MASK = 0xffffffffffffffffn;
    expect(ids.map((s) => BigInt("0x" + s))).toEqual([first, (first + 1n) & MASK, (first + 2n) & MASK]);
  });

  it("warnOnce prints once per key and returns true every time", async () => {
    const k = await boot();
    const cut = "------------[ cut here ]------------";
    expect(k.warnOnce("site-a", SITE, "once")).toBe(true);
    expect(k.warnOnce("site-a", SITE, "once")).toBe(true);
    expect(k.warnOnce("site-a", SITE, "different text, same key")).toBe(true);
    expect(count(k, cut)).toBe(1);
    expect(count(k, "once")).toBe(1);
    expect(k.warnOnce("site-b", SITE, "other")).toBe(true);
    expect(count(k, cut)).toBe(2);
    expect(count(k, "other")).toBe(1);
    // a plain WARN at the same site is not affected
    k.warn(SITE, "plain");
    expect(count(k, cut)).toBe(3);
    expect(k.tainted()).toBe("Tainted: G        W        ");
  });

  it("a WARN between printks leaves the log consistent: no record is left open", async () => {
    const k = await boot();
    k.printk(`${KERN_INFO}open line`);
    const seq = k.log.nextSeq - 1;
    k.warn(SITE, "w");
    const msgs = k.log.messages(seq);
    expect(msgs[0]).toBe("open line");
    expect(msgs[1]).toBe("------------[ cut here ]------------");
  });
});

describe("BUG()", () => {
  it("prints kernel BUG at, the invalid opcode line, the CPU: line, taints D and kills the task", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    let err: unknown;
    try {
      k.sched.runAs("test_task", () => k.bugs.bug(SITE));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelOops);
    expect((err as Error).message).toBe("kernel BUG at mm/kemu_test.c! in kemu_test_fn");
    const msgs = k.log.messages(seq);
    expect(msgs.slice(0, 4)).toEqual([
      "------------[ cut here ]------------",
      "kernel BUG at mm/kemu_test.c!",
      "invalid opcode: 0000 [#1] SMP PTI",
      "CPU: 0 PID: 100 Comm: test_task Not tainted 5.0.0 #1",
    ]);
    // report_bug(): pr_crit
    expect(k.log.records(seq)[1]!.level).toBe(2);
    expect(k.tainted()).toBe("Tainted: G      D          ");
    // the die counter goes up
    expect(() => k.bugs.bug(SITE)).toThrow(KernelOops);
    expect(k.log.messages()).toContain("invalid opcode: 0000 [#2] SMP PTI");
  });
});
