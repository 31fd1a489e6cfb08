// Completions (kernel/sched/completion.c), RCU callbacks as kemu defers them, and the
// khungtaskd report (kernel/hung_task.c) for a wait that nothing can ever satisfy.

import { describe, expect, it } from "vitest";
import { NSEC_PER_SEC } from "../../core/clock.ts";
import type { Kernel } from "../../core/kernel.ts";
import {
  complete,
  complete_all,
  Completion,
  completion_done,
  HUNG_TASK_TIMEOUT_SECS,
  HungTaskError,
  init_completion,
  reinit_completion,
  try_wait_for_completion,
  UINT_MAX,
  wait_for_completion,
} from "../../core/kernel/sched.ts";
import type { PercpuRef } from "../../core/mm/percpu-refcount.ts";
import { bindDevice } from "../helpers/devices.ts";
import { boot, levelled, messages } from "../helpers/kernel.ts";

/** Run `fn` as task `comm`; returns the pid it ran as and the error it threw. */
function runAsCatching(k: Kernel, comm: string, fn: () => void): { pid: number; error: unknown } {
  let pid = 0;
  let error: unknown = null;
  k.sched.runAs(comm, () => {
    pid = k.sched.current.pid;
    try {
      fn();
    } catch (e) {
      error = e;
    }
  });
  return { pid, error };
}

describe("completion state", () => {
  it("starts not done; complete() makes one waiter's worth", () => {
    const x = new Completion();
    expect(completion_done(x)).toBe(false);
    expect(try_wait_for_completion(x)).toBe(false);
    complete(x);
    expect(completion_done(x)).toBe(true);
    // completion_done() does not consume it.
    expect(completion_done(x)).toBe(true);
    expect(try_wait_for_completion(x)).toBe(true);
    expect(completion_done(x)).toBe(false);
    expect(try_wait_for_completion(x)).toBe(false);
  });

  it("counts each complete()", () => {
    const x = new Completion();
    complete(x);
    complete(x);
    complete(x);
    expect(x.done).toBe(3);
    expect(try_wait_for_completion(x)).toBe(true);
    expect(try_wait_for_completion(x)).toBe(true);
    expect(try_wait_for_completion(x)).toBe(true);
    expect(try_wait_for_completion(x)).toBe(false);
  });

  it("complete_all() satisfies every waiter until reinit_completion()", () => {
    const x = new Completion();
    complete(x);
    complete_all(x);
    expect(x.done).toBe(UINT_MAX);
    for (let i = 0; i < 100; i++) expect(try_wait_for_completion(x)).toBe(true);
    complete(x); // does not overflow past UINT_MAX
    expect(x.done).toBe(UINT_MAX);
    expect(completion_done(x)).toBe(true);
    reinit_completion(x);
    expect(completion_done(x)).toBe(false);
    expect(try_wait_for_completion(x)).toBe(false);
  });

  it("init_completion() resets a completion", () => {
    const x = new Completion();
    complete(x);
    init_completion(x);
    expect(completion_done(x)).toBe(false);
  });
});

describe("wait_for_completion", () => {
  it("returns at once when already done, consuming one completion, without running RCU work", async () => {
    const k = await boot();
    const x = new Completion();
    complete(x);
    complete(x);
    let ran = false;
    k.sched.call_rcu(() => (ran = true));
    const t0 = k.clock.now();
    wait_for_completion(k.sched, x);
    expect(x.done).toBe(1);
    expect(ran).toBe(false);
    expect(k.sched.pendingRcu).toBe(1);
    expect(k.clock.now()).toBe(t0);
    k.sched.idle();
    expect(ran).toBe(true);
  });

  it("after complete_all() never blocks and leaves it done", async () => {
    const k = await boot();
    const x = new Completion();
    complete_all(x);
    for (let i = 0; i < 3; i++) wait_for_completion(k.sched, x);
    expect(x.done).toBe(UINT_MAX);
  });

  it("runs pending RCU work when that is what completes it: a percpu_ref released after kill", async () => {
    const k = await boot();
    const done = new Completion();
    function pgmap_release(_r: PercpuRef): void {
      complete(done);
    }
    const ref = k.percpu_ref_init(pgmap_release);
    ref.get_many(4);
    ref.put_many(4);
    ref.kill();
    expect(completion_done(done)).toBe(false);
    const since = k.log.nextSeq;
    const t0 = k.clock.now();
    wait_for_completion(k.sched, done);
    expect(completion_done(done)).toBe(false); // consumed by the wait
    expect(ref.is_zero()).toBe(true);
    expect(k.sched.pendingRcu).toBe(0);
    expect(levelled(k, since)).toEqual([]);
    expect(k.clock.now()).toBe(t0);
  });

  it("keeps running grace periods while callbacks queue more callbacks", async () => {
    const k = await boot();
    const x = new Completion();
    k.sched.call_rcu(() => k.sched.call_rcu(() => k.sched.call_rcu(() => complete(x))));
    wait_for_completion(k.sched, x);
    expect(k.sched.pendingRcu).toBe(0);
  });

  it("stops running RCU work once it is done", async () => {
    const k = await boot();
    const x = new Completion();
    const ran: string[] = [];
    k.sched.call_rcu(() => (ran.push("first"), complete(x)));
    k.sched.call_rcu(() => k.sched.call_rcu(() => ran.push("next grace period")));
    wait_for_completion(k.sched, x);
    // One grace period ran: both callbacks queued before it, not the one they queued.
    expect(ran).toEqual(["first"]);
    expect(k.sched.pendingRcu).toBe(1);
    k.sched.idle();
    expect(ran).toEqual(["first", "next grace period"]);
  });

  it("reports a task that nothing can wake as khungtaskd does, 120 s later, and unwinds it", async () => {
    const k = await boot();
    const x = new Completion();
    const since = k.log.nextSeq;
    const t0 = k.clock.now();
    const { pid, error } = runAsCatching(k, "mytask", () => wait_for_completion(k.sched, x));
    expect(error).toBeInstanceOf(HungTaskError);
    const e = error as HungTaskError;
    expect(e.name).toBe("HungTaskError");
    expect(e.task).toEqual({ pid, comm: "mytask" });
    expect(e.message).toBe(`task mytask:${pid} blocked forever in wait_for_completion`);
    expect(pid).toBeGreaterThan(1);
    expect(levelled(k, since).slice(0, 4)).toEqual([
      `<3>INFO: task mytask:${pid} blocked for more than 120 seconds.`,
      "<3>      Not tainted 5.0.0 #1",
      '<3>"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
      `<6>mytask          D    0 ${String(pid).padStart(5)}      1 0x00000000`,
    ]);
    expect(HUNG_TASK_TIMEOUT_SECS).toBe(120);
    expect(k.clock.now() - t0).toBe(120 * NSEC_PER_SEC);
    // The report is stamped when khungtaskd notices, 120 s after the wait began (boot ends at 1.2 s).
    expect(k.log.lines({ since })[0]).toBe(`[  121.200000] INFO: task mytask:${pid} blocked for more than 120 seconds.`);
    expect(k.state).toBe("running");
  });

  it("prints the kernel's taint and release in the second line", async () => {
    const k = await boot({ version: "4.20" });
    const { dev } = bindDevice(k, "w", () => 0);
    k.base.devm_remove_action(dev, () => {}, null); // WARN: taint W
    const since = k.log.nextSeq;
    const { error } = runAsCatching(k, "ndctl", () => wait_for_completion(k.sched, new Completion()));
    expect(error).toBeInstanceOf(HungTaskError);
    expect(levelled(k, since)[1]).toBe("<3>      Tainted: G        W         4.20.0 #1");
  });

  it("truncates the comm to 15 characters and numbers tasks", async () => {
    const k = await boot();
    const since = k.log.nextSeq;
    const a = runAsCatching(k, "a-very-long-task-name", () => wait_for_completion(k.sched, new Completion()));
    const b = runAsCatching(k, "second", () => wait_for_completion(k.sched, new Completion()));
    expect(b.pid).toBe(a.pid + 1);
    const lines = messages(k, since).filter((m) => m.startsWith("INFO: task"));
    expect(lines).toEqual([
      `INFO: task a-very-long-tas:${a.pid} blocked for more than 120 seconds.`,
      `INFO: task second:${b.pid} blocked for more than 120 seconds.`,
    ]);
  });

  it("reports the ten first hung tasks only (hung_task_warnings), but unwinds them all", async () => {
    const k = await boot();
    const since = k.log.nextSeq;
    const t0 = k.clock.now();
    for (let i = 0; i < 12; i++) {
      const { error } = runAsCatching(k, `t${i}`, () => wait_for_completion(k.sched, new Completion()));
      expect(error).toBeInstanceOf(HungTaskError);
    }
    const reports = messages(k, since).filter((m) => m.startsWith("INFO: task"));
    expect(reports).toHaveLength(10);
    expect(reports.at(-1)).toMatch(/^INFO: task t9:\d+ blocked/);
    // Each report: three lines, then sched_show_task()'s task line, "Call Trace:" and 4 frames.
    expect(messages(k, since)).toHaveLength(10 * 9);
    expect(k.clock.now() - t0).toBe(12 * 120 * NSEC_PER_SEC);
  });

  it("reports nothing once the kernel has oopsed (taint D)", async () => {
    const k = await boot();
    k.write("/proc/sys/kernel/tainted", String(1 << 7));
    expect(k.tainted()).toContain("D");
    const since = k.log.nextSeq;
    const { error } = runAsCatching(k, "stuck", () => wait_for_completion(k.sched, new Completion()));
    expect(error).toBeInstanceOf(HungTaskError);
    expect(messages(k, since).filter((m) => m.startsWith("INFO: task"))).toEqual([]);
  });

  it("hangs after running every RCU callback that could have helped", async () => {
    const k = await boot();
    const ran: number[] = [];
    k.sched.call_rcu(() => ran.push(1));
    k.sched.call_rcu(() => k.sched.call_rcu(() => ran.push(2)));
    const { error } = runAsCatching(k, "waiter", () => wait_for_completion(k.sched, new Completion()));
    expect(error).toBeInstanceOf(HungTaskError);
    expect(ran).toEqual([1, 2]);
    expect(k.sched.pendingRcu).toBe(0);
  });

  it("R7.2: an over-put percpu_ref WARNs at the switch, never releases, and its waiter hangs", async () => {
    const k = await boot();
    const released = new Completion();
    function dev_pagemap_percpu_release(_r: PercpuRef): void {
      complete(released);
    }
    const ref = k.percpu_ref_init(dev_pagemap_percpu_release);
    ref.get_many(8); // eight pages take a reference
    ref.put_many(9); // release puts one too many: with kill's put, nothing is left for the switch
    const since = k.log.nextSeq;
    const { pid, error } = runAsCatching(k, "ndctl", () => {
      ref.kill();
      wait_for_completion(k.sched, released);
    });
    expect(error).toBeInstanceOf(HungTaskError);
    const m = messages(k, since);
    expect(m[1]).toBe("percpu ref (dev_pagemap_percpu_release) <= 0 (0) after switching to atomic");
    expect(m[2]).toBe(`WARNING: CPU: 0 PID: ${pid} at lib/percpu-refcount.c percpu_ref_switch_to_atomic_rcu`);
    expect(m.slice(-9, -6)).toEqual([
      `INFO: task ndctl:${pid} blocked for more than 120 seconds.`,
      "      Tainted: G        W         5.0.0 #1",
      '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
    ]);
    expect(completion_done(released)).toBe(false);
  });
});

describe("RCU callbacks", () => {
  it("synchronize_rcu() runs the callbacks queued before it, in order", async () => {
    const k = await boot();
    const ran: string[] = [];
    k.sched.call_rcu(() => ran.push("a"));
    k.sched.call_rcu(() => ran.push("b"));
    k.sched.call_rcu(() => {
      ran.push("c");
      k.sched.call_rcu(() => ran.push("queued by c"));
    });
    expect(ran).toEqual([]);
    expect(k.sched.pendingRcu).toBe(3);
    k.sched.synchronize_rcu();
    expect(ran).toEqual(["a", "b", "c"]);
    expect(k.sched.pendingRcu).toBe(1);
    k.sched.synchronize_rcu();
    expect(ran).toEqual(["a", "b", "c", "queued by c"]);
  });

  it("rcu_barrier() and idle() run everything, including what callbacks queue", async () => {
    const k = await boot();
    const ran: number[] = [];
    k.sched.call_rcu(() => k.sched.call_rcu(() => k.sched.call_rcu(() => ran.push(3))));
    k.sched.rcu_barrier();
    expect(ran).toEqual([3]);
    k.sched.call_rcu(() => k.sched.call_rcu(() => ran.push(4)));
    k.sched.idle();
    expect(ran).toEqual([3, 4]);
    expect(k.sched.pendingRcu).toBe(0);
  });

  it("a booted kernel has no RCU work pending", async () => {
    const k = await boot();
    expect(k.sched.pendingRcu).toBe(0);
  });

  it("runAs() restores the previous task, even when the task throws", async () => {
    const k = await boot();
    const before = k.sched.current;
    expect(before).toEqual({ pid: 1, comm: "swapper/0" });
    expect(() => k.sched.runAs("thrower", () => {
      throw new Error("x");
    })).toThrow("x");
    expect(k.sched.current).toBe(before);
    const nested = k.sched.runAs("outer", () => k.sched.runAs("inner", () => k.sched.current.comm));
    expect(nested).toBe("inner");
    expect(k.sched.current).toBe(before);
  });
});

describe("the hung task's stack (sched_show_task)", () => {
  it("follows the report with comm, state D, pid and the blocked call chain", async () => {
    const k = await boot();
    const seq = k.log.nextSeq;
    let pid = 0;
    expect(() =>
      k.sched.runAs("waiter", () => {
        pid = k.sched.current.pid;
        k.bugs.frame("my_probe", () => wait_for_completion(k.sched, new Completion()));
      }),
    ).toThrow(HungTaskError);
    const lines = messages(k, seq);
    expect(lines.slice(3)).toEqual([
      `waiter          D    0 ${String(pid).padStart(5)}      1 0x00000000`,
      "Call Trace:",
      " __schedule",
      " schedule",
      " schedule_timeout",
      " wait_for_completion",
      " my_probe",
    ]);
  });

  it("writing 0 to hung_task_timeout_secs silences the report; the wait still never ends", async () => {
    const k = await boot();
    k.write("/proc/sys/kernel/hung_task_timeout_secs", "0");
    const seq = k.log.nextSeq;
    const t0 = k.clock.now();
    expect(() => wait_for_completion(k.sched, new Completion())).toThrow(HungTaskError);
    expect(messages(k, seq)).toEqual([]);
    expect(k.clock.now()).toBe(t0);
    expect(() => k.write("/proc/sys/kernel/hung_task_timeout_secs", "soon")).toThrow(/Invalid argument/);
  });

  it("hung_task_warnings parses like proc_dointvec_minmax(): base 0, whitespace around, at least -1", async () => {
    // kernel/sysctl.c proc_get_long(): simple_strtoul(p, &p, 0), then only ' ', '\t' or '\n'
    // may follow; hung_task_warnings has .extra1 = &neg_one.
    const k = await boot();
    const file = "/proc/sys/kernel/hung_task_warnings";
    const ok: [string, string][] = [["0x10", "16"], ["  7\n", "7"], ["010", "8"], ["-1", "-1"], ["3 4", "3"]];
    for (const [v, shown] of ok) {
      k.write(file, v);
      expect(k.read(file), JSON.stringify(v)).toBe(`${shown}\n`);
    }
    for (const bad of ["", " ", "-2", "5x", "08", "+5", "2147483648", "-", "0x"]) {
      expect(() => k.write(file, bad), JSON.stringify(bad)).toThrow(`write to ${file} failed: Invalid argument`);
      expect(k.read(file), JSON.stringify(bad)).toBe("3\n");
    }
  });
});
