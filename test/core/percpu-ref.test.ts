// percpu_ref (lib/percpu-refcount.c, 4.20): percpu mode, kill and the RCU-delayed switch to
// atomic mode with the bias until then, release exactly once, and the two WARN_ONCEs
// (double kill, and the count at or below zero after the switch: the bug of spec R7.2).

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import { PERCPU_REF_INIT_ATOMIC, PERCPU_REF_INIT_DEAD, PercpuRef } from "../../core/mm/percpu-refcount.ts";
import { boot, levelled, messages } from "../helpers/kernel.ts";

/** A ref whose release function is named `name` and counts its calls. */
function counted(k: Kernel, flags = 0): { ref: PercpuRef; calls: PercpuRef[] } {
  const calls: PercpuRef[] = [];
  function my_release(r: PercpuRef): void {
    calls.push(r);
  }
  return { ref: k.percpu_ref_init(my_release, flags), calls };
}

describe("percpu_ref in percpu mode", () => {
  it("starts live in percpu mode with a count of 1", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    expect(ref.count).toBe(1);
    expect(ref.isPercpu).toBe(true);
    expect(ref.isDead).toBe(false);
    expect(ref.is_zero()).toBe(false);
    expect(calls).toEqual([]);
    expect(k.sched.pendingRcu).toBe(0);
  });

  it("get, get_many, put and put_many move the count", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.get();
    expect(ref.count).toBe(2);
    ref.get_many(10);
    expect(ref.count).toBe(12);
    ref.put_many(5);
    expect(ref.count).toBe(7);
    ref.put();
    expect(ref.count).toBe(6);
    expect(calls).toEqual([]);
    ref.put_many(5);
    ref.kill();
    k.sched.synchronize_rcu();
    expect(calls).toEqual([ref]);
  });

  it("never releases and is never zero in percpu mode, even when the count reaches 0", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.put();
    expect(ref.count).toBe(0);
    expect(calls).toEqual([]);
    expect(ref.is_zero()).toBe(false);
    // A get brings it back: percpu mode does not check anything.
    ref.get();
    k.sched.idle();
    expect(calls).toEqual([]);
  });

  it("tryget and tryget_live succeed while live", async () => {
    const k = await boot();
    const { ref } = counted(k);
    expect(ref.tryget()).toBe(true);
    expect(ref.tryget_live()).toBe(true);
    expect(ref.count).toBe(3);
    ref.put_many(2);
  });
});

describe("percpu_ref_kill", () => {
  it("marks the ref dead at once and switches to atomic only after a grace period", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.kill();
    expect(ref.isDead).toBe(true);
    expect(ref.isPercpu).toBe(false);
    expect(k.sched.pendingRcu).toBe(1);
    // Before the grace period: the bias keeps the count from reaching zero.
    expect(ref.is_zero()).toBe(false);
    expect(calls).toEqual([]);
    k.sched.synchronize_rcu();
    expect(calls).toEqual([ref]);
    expect(ref.is_zero()).toBe(true);
    expect(ref.count).toBe(0);
  });

  it("the idle CPU completes the switch too", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.kill();
    k.sched.idle();
    expect(calls).toEqual([ref]);
  });

  it("tryget_live fails right after kill, and after the switch", async () => {
    const k = await boot();
    const { ref } = counted(k);
    ref.get();
    ref.kill();
    expect(ref.tryget_live()).toBe(false);
    k.sched.synchronize_rcu();
    expect(ref.tryget_live()).toBe(false);
    expect(ref.count).toBe(1);
    ref.put();
  });

  it("tryget still succeeds on a dead ref with references left, and fails at zero", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.get();
    ref.kill();
    expect(ref.tryget()).toBe(true); // biased: inc_not_zero succeeds
    k.sched.synchronize_rcu();
    expect(ref.count).toBe(2);
    expect(ref.tryget()).toBe(true);
    ref.put_many(3);
    expect(calls).toHaveLength(1);
    expect(ref.tryget()).toBe(false);
    expect(ref.count).toBe(0);
  });

  it("puts before the grace period cannot release; the switch's own put does", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.get_many(3);
    ref.kill();
    ref.put_many(3);
    expect(calls).toEqual([]);
    expect(ref.is_zero()).toBe(false);
    k.sched.synchronize_rcu();
    expect(calls).toEqual([ref]);
  });

  it("a reference held across the grace period delays release to its put, exactly once", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.get();
    ref.kill();
    k.sched.synchronize_rcu();
    expect(calls).toEqual([]);
    expect(ref.count).toBe(1);
    expect(ref.is_zero()).toBe(false);
    ref.put();
    expect(calls).toEqual([ref]);
    k.sched.idle();
    expect(calls).toHaveLength(1);
  });

  it("kill_and_confirm calls confirm after the grace period, before the release", async () => {
    const k = await boot();
    const order: string[] = [];
    const ref = k.percpu_ref_init(function rel() {
      order.push("release");
    });
    ref.kill_and_confirm(function confirm(r) {
      order.push(`confirm dead=${r.isDead}`);
    });
    expect(order).toEqual([]);
    k.sched.synchronize_rcu();
    expect(order).toEqual(["confirm dead=true", "release"]);
  });

  it("does not WARN on a clean kill", async () => {
    const k = await boot();
    const since = k.log.nextSeq;
    const { ref } = counted(k);
    ref.get();
    ref.kill();
    k.sched.synchronize_rcu();
    ref.put();
    expect(levelled(k, since)).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
  });
});

describe("percpu_ref_kill called twice", () => {
  it("WARNs once with the release function's name and still releases exactly once", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.get();
    ref.kill();
    const since = k.log.nextSeq;
    const pid = k.sched.runAs("mytask", () => (ref.kill(), k.sched.current.pid));
    const lines = levelled(k, since);
    expect(lines.slice(0, 8)).toEqual([
      "<4>------------[ cut here ]------------",
      "<4>percpu_ref_kill_and_confirm called more than once on my_release!",
      `<4>WARNING: CPU: 0 PID: ${pid} at lib/percpu-refcount.c percpu_ref_kill_and_confirm`,
      "<4>Modules linked in:",
      `<4>CPU: 0 PID: ${pid} Comm: mytask Not tainted 5.0.0 #1`,
      "<4>Hardware name: kemu Standard PC (emulated), BIOS kemu 04/01/2014",
      "<4>RIP: 0010:percpu_ref_kill_and_confirm",
      "<4>Call Trace:",
    ]);
    expect(lines[8]).toMatch(/^<4>---\[ end trace [0-9a-f]{16} \]---$/);
    expect(k.tainted()).toBe("Tainted: G        W        ");
    k.sched.idle();
    // The second kill waited for the first switch, then dropped one more reference: the
    // get above. No "<= 0" WARN follows, and release ran once.
    expect(lines).toHaveLength(9);
    expect(levelled(k, since)).toHaveLength(9);
    expect(calls).toEqual([ref]);
  });

  it("waits for a switch in progress before switching again (the grace period runs)", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.kill();
    expect(k.sched.pendingRcu).toBe(1);
    ref.kill();
    // The first kill's switch completed inside the second kill: it dropped the last reference.
    expect(k.sched.pendingRcu).toBe(0);
    expect(calls).toEqual([ref]);
    expect(messages(k).filter((m) => m.includes("after switching to atomic"))).toEqual([]);
  });

  it("WARN_ONCE: a second ref killed twice does not WARN again in the same boot", async () => {
    const k = await boot();
    const a = counted(k).ref;
    a.get();
    a.kill();
    a.kill();
    const since = k.log.nextSeq;
    const b = counted(k).ref;
    b.get();
    b.kill();
    b.kill();
    expect(levelled(k, since)).toEqual([]);
    k.sched.idle();
  });

  it("killing a ref initialised dead WARNs", async () => {
    const k = await boot();
    const { ref } = counted(k, PERCPU_REF_INIT_DEAD);
    ref.get();
    ref.kill();
    expect(messages(k)).toContain("percpu_ref_kill_and_confirm called more than once on my_release!");
  });
});

describe("over-put: percpu ref <= 0 after switching to atomic (spec R7.2)", () => {
  it("WARNs with the release function's name and the count, and never releases", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.get();
    ref.put_many(3); // one more put than there were gets, plus the initial ref
    ref.kill();
    const since = k.log.nextSeq;
    k.sched.synchronize_rcu();
    const lines = levelled(k, since);
    expect(lines.slice(0, 3)).toEqual([
      "<4>------------[ cut here ]------------",
      "<4>percpu ref (my_release) <= 0 (-1) after switching to atomic",
      "<4>WARNING: CPU: 0 PID: 1 at lib/percpu-refcount.c percpu_ref_switch_to_atomic_rcu",
    ]);
    expect(lines).toContain("<4>RIP: 0010:percpu_ref_switch_to_atomic_rcu");
    expect(k.tainted()).toBe("Tainted: G        W        ");
    expect(calls).toEqual([]);
    expect(ref.is_zero()).toBe(false);
    expect(ref.count).toBe(-2);
  });

  it("reports exactly zero as '<= 0 (0)'", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.put(); // the put that should have been percpu_ref_kill()'s
    ref.kill();
    k.sched.synchronize_rcu();
    expect(messages(k)).toContain("percpu ref (my_release) <= 0 (0) after switching to atomic");
    expect(calls).toEqual([]);
  });

  it("reports the count the ref really reached (the R7.2 ndctl report had -1530626)", async () => {
    const k = await boot();
    const refs: PercpuRef[] = [];
    function blk_queue_usage_counter_release(r: PercpuRef): void {
      refs.push(r);
    }
    const ref = k.percpu_ref_init(blk_queue_usage_counter_release);
    ref.put_many(1530627);
    ref.kill();
    k.sched.idle();
    expect(messages(k)).toContain("percpu ref (blk_queue_usage_counter_release) <= 0 (-1530626) after switching to atomic");
    expect(refs).toEqual([]);
  });

  it("WARNs once per boot", async () => {
    const k = await boot();
    for (let i = 0; i < 3; i++) {
      const { ref } = counted(k);
      ref.put();
      ref.kill();
      k.sched.synchronize_rcu();
    }
    expect(messages(k).filter((m) => m.includes("after switching to atomic"))).toHaveLength(1);
    expect(messages(k).filter((m) => m === "------------[ cut here ]------------")).toHaveLength(1);
    const k2 = await boot();
    const { ref } = counted(k2);
    ref.put();
    ref.kill();
    k2.sched.synchronize_rcu();
    expect(messages(k2).filter((m) => m.includes("after switching to atomic"))).toHaveLength(1);
  });

  it("an over-put after the switch releases at zero and then goes negative silently", async () => {
    // In atomic mode only an exact zero releases; nothing checks below it.
    const k = await boot();
    const since = k.log.nextSeq;
    const { ref, calls } = counted(k);
    ref.kill();
    k.sched.synchronize_rcu();
    expect(calls).toHaveLength(1);
    ref.put();
    expect(calls).toHaveLength(1);
    expect(ref.count).toBe(-1);
    expect(levelled(k, since)).toEqual([]);
  });
});

describe("percpu_ref init flags", () => {
  it("PERCPU_REF_INIT_ATOMIC starts atomic: the last put releases at once", async () => {
    const k = await boot();
    const { ref, calls } = counted(k, PERCPU_REF_INIT_ATOMIC);
    expect(ref.isPercpu).toBe(false);
    expect(ref.isDead).toBe(false);
    expect(ref.count).toBe(1);
    ref.get();
    ref.put();
    expect(calls).toEqual([]);
    expect(ref.tryget_live()).toBe(true);
    ref.put_many(2);
    expect(calls).toEqual([ref]);
    expect(ref.is_zero()).toBe(true);
    expect(k.sched.pendingRcu).toBe(0);
    // Live but at zero: atomic_long_inc_not_zero() fails for both trygets.
    expect(ref.isDead).toBe(false);
    expect(ref.tryget_live()).toBe(false);
    expect(ref.tryget()).toBe(false);
    expect(ref.count).toBe(0);
  });

  it("killing an atomic ref needs no grace period", async () => {
    const k = await boot();
    const { ref, calls } = counted(k, PERCPU_REF_INIT_ATOMIC);
    const confirmed: boolean[] = [];
    ref.kill_and_confirm(() => confirmed.push(true));
    expect(k.sched.pendingRcu).toBe(0);
    expect(confirmed).toEqual([true]);
    expect(calls).toEqual([ref]);
  });

  it("PERCPU_REF_INIT_DEAD starts dead, atomic and at zero", async () => {
    const k = await boot();
    const { ref, calls } = counted(k, PERCPU_REF_INIT_DEAD);
    expect(ref.isDead).toBe(true);
    expect(ref.isPercpu).toBe(false);
    expect(ref.count).toBe(0);
    expect(ref.is_zero()).toBe(true);
    expect(ref.tryget()).toBe(false);
    expect(ref.tryget_live()).toBe(false);
    expect(calls).toEqual([]);
    ref.get();
    expect(ref.is_zero()).toBe(false);
    ref.put();
    expect(calls).toEqual([ref]);
  });

  it("INIT_ATOMIC|INIT_DEAD is dead at zero", async () => {
    const k = await boot();
    const { ref } = counted(k, PERCPU_REF_INIT_ATOMIC | PERCPU_REF_INIT_DEAD);
    expect(ref.isDead).toBe(true);
    expect(ref.count).toBe(0);
    expect(ref.is_zero()).toBe(true);
  });
});

describe("percpu_ref_reinit and percpu_ref_exit", () => {
  it("reinit after release brings the ref back to percpu mode, live, at 1", async () => {
    const k = await boot();
    const { ref, calls } = counted(k);
    ref.kill();
    k.sched.synchronize_rcu();
    expect(calls).toHaveLength(1);
    ref.reinit();
    expect(ref.isDead).toBe(false);
    expect(ref.isPercpu).toBe(true);
    expect(ref.count).toBe(1);
    expect(ref.tryget_live()).toBe(true);
    ref.put();
    ref.kill();
    k.sched.synchronize_rcu();
    expect(calls).toHaveLength(2);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("reinit of a ref that is not at zero WARNs once", async () => {
    const k = await boot();
    const { ref } = counted(k);
    ref.get();
    ref.kill();
    k.sched.synchronize_rcu();
    const since = k.log.nextSeq;
    ref.reinit();
    expect(levelled(k, since)[0]).toBe("<4>WARNING: CPU: 0 PID: 1 at lib/percpu-refcount.c percpu_ref_reinit");
    expect(ref.count).toBe(2);
    ref.put_many(2);
  });

  it("reinit keeps an INIT_ATOMIC ref atomic", async () => {
    const k = await boot();
    const { ref, calls } = counted(k, PERCPU_REF_INIT_ATOMIC);
    ref.kill();
    expect(calls).toHaveLength(1);
    ref.reinit();
    expect(ref.isPercpu).toBe(false);
    expect(ref.isDead).toBe(false);
    ref.put();
    expect(calls).toHaveLength(2);
  });

  it("exit while a switch is in progress WARNs", async () => {
    const k = await boot();
    const { ref } = counted(k);
    ref.kill();
    const since = k.log.nextSeq;
    ref.exit();
    expect(levelled(k, since)[0]).toBe("<4>WARNING: CPU: 0 PID: 1 at lib/percpu-refcount.c percpu_ref_exit");
    expect(ref.exited).toBe(true);
    k.sched.idle();
  });

  it("exit after release is quiet and leaves the ref dead", async () => {
    const k = await boot();
    const since = k.log.nextSeq;
    const { ref } = counted(k);
    ref.kill();
    k.sched.synchronize_rcu();
    ref.exit();
    expect(levelled(k, since)).toEqual([]);
    expect(ref.isDead).toBe(true);
    expect(ref.tryget_live()).toBe(false);
  });

  it("a ref used before percpu_ref_init() throws", () => {
    const ref = new PercpuRef();
    expect(() => ref.kill()).toThrow("percpu_ref used before percpu_ref_init()");
  });
});
