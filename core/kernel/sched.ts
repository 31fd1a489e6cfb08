// Tasks and deferred work. kemu runs on one CPU and never preempts: work the kernel defers
// (RCU callbacks) runs when the current task would sleep, at synchronize_rcu(), or when a host
// operation ends and the CPU goes idle. A wait that nothing left can satisfy is reported the
// way khungtaskd reports it, and the waiting task is unwound with a HungTaskError.

import { NSEC_PER_SEC, type Clock } from "../clock.ts";
import { TAINT_DIE, type Taint } from "../taint.ts";

export interface Task {
  readonly pid: number;
  readonly comm: string;
}

/** hung_task_timeout_secs default */
export const HUNG_TASK_TIMEOUT_SECS = 120;
/** sysctl_hung_task_warnings default: only the first ten hung tasks are reported. */
export const HUNG_TASK_WARNINGS = 10;

/** Thrown out of a wait that can never be satisfied; the host operation that waited fails. */
export class HungTaskError extends Error {
  readonly task: Task;
  constructor(task: Task, what: string) {
    super(`task ${task.comm}:${task.pid} blocked forever in ${what}`);
    this.name = "HungTaskError";
    this.task = task;
  }
}

export interface SchedEnv {
  clock: Clock;
  printk(text: string): void;
  taint: Taint;
  /** The emulated call chain of the current task, innermost first (for show_stack()). */
  frames(): string[];
  release: string;
}

export class Sched {
  readonly #env: SchedEnv;
  #rcu: (() => void)[] = [];
  #nextPid = 100;
  /** sysctl_hung_task_warnings: reports left. */
  hung_task_warnings = HUNG_TASK_WARNINGS;
  /** sysctl_hung_task_timeout_secs: 0 turns the reports off (the task still never wakes). */
  hung_task_timeout_secs = HUNG_TASK_TIMEOUT_SECS;
  current: Task = { pid: 1, comm: "swapper/0" };

  constructor(env: SchedEnv) {
    this.#env = env;
  }

  /** Run `fn` as a new user task named `comm` (an insmod, an rmmod, a test). */
  runAs<T>(comm: string, fn: () => T): T {
    const prev = this.#enter(comm);
    try {
      return fn();
    } finally {
      this.#leave(prev);
    }
  }

  /** runAs() for work that awaits in between: the task stays current until `fn` settles. */
  async runAsAsync<T>(comm: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#enter(comm);
    try {
      return await fn();
    } finally {
      this.#leave(prev);
    }
  }

  /** Run `fn` as an existing task (a user process making a system call or touching memory). */
  runAsTask<T>(task: Task, fn: () => T): T {
    const prev = this.current;
    this.current = task;
    try {
      return fn();
    } finally {
      this.#leave(prev);
    }
  }

  /** alloc_pid(): the next pid, shared by runAs() tasks and user processes. */
  alloc_pid(): number {
    return this.#nextPid++;
  }

  /** Make a new task current; returns the one it replaces. */
  #enter(comm: string): Task {
    const prev = this.current;
    this.current = { pid: this.alloc_pid(), comm: comm.slice(0, 15) };
    return prev;
  }

  #leave(prev: Task): void {
    this.current = prev;
  }

  /** call_rcu(): `fn` runs after a grace period. */
  call_rcu(fn: () => void): void {
    this.#rcu.push(fn);
  }

  /** synchronize_rcu(): a grace period elapses; callbacks queued before it run. */
  synchronize_rcu(): void {
    const batch = this.#rcu;
    this.#rcu = [];
    for (const fn of batch) fn();
  }

  /** rcu_barrier(): every callback queued so far, and those they queue, has run. */
  rcu_barrier(): void {
    while (this.#rcu.length > 0) this.synchronize_rcu();
  }

  /** The CPU goes idle: deferred work runs to completion. */
  idle(): void {
    this.rcu_barrier();
  }

  get pendingRcu(): number {
    return this.#rcu.length;
  }

  /**
   * Block until `done()` holds. Deferred work runs first, as other CPUs and kthreads would;
   * if that is not enough nothing else ever will be, so report the hung task and unwind.
   */
  waitUntil(done: () => boolean, what: string): void {
    while (!done()) {
      if (this.#rcu.length === 0) this.#hung(what);
      this.synchronize_rcu();
    }
  }

  #hung(what: string): never {
    const env = this.#env;
    const t = this.current;
    const timeout = this.hung_task_timeout_secs;
    if (timeout === 0) throw new HungTaskError(t, what);
    env.clock.advance(timeout * NSEC_PER_SEC);
    // check_hung_uninterruptible_tasks(): nothing once the kernel has oopsed (taint D);
    // check_hung_task(): only while sysctl_hung_task_warnings lasts.
    if (!env.taint.test(TAINT_DIE) && this.hung_task_warnings !== 0) {
      if (this.hung_task_warnings > 0) this.hung_task_warnings--;
      env.printk(`\x013INFO: task ${t.comm}:${t.pid} blocked for more than ${timeout} seconds.\n`);
      env.printk(`\x013      ${env.taint} ${env.release} #1\n`);
      env.printk(`\x013"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.\n`);
      // sched_show_task(): comm, state D, free stack, pid, ppid, flags; then its stack.
      env.printk(`\x016${t.comm.padEnd(15)} D${"0".padStart(5)} ${String(t.pid).padStart(5)} ${"1".padStart(6)} 0x00000000\n`);
      env.printk("\x014Call Trace:\n");
      for (const f of ["__schedule", "schedule", "schedule_timeout", what, ...env.frames()]) env.printk(`\x014 ${f}\n`);
    }
    throw new HungTaskError(t, what);
  }
}

/** struct completion (kernel/sched/completion.c) */
export class Completion {
  done = 0;
}

export const UINT_MAX = 0xffffffff;

export function init_completion(x: Completion): void {
  x.done = 0;
}
export function reinit_completion(x: Completion): void {
  x.done = 0;
}
export function complete(x: Completion): void {
  if (x.done !== UINT_MAX) x.done++;
}
export function complete_all(x: Completion): void {
  x.done = UINT_MAX;
}
export function completion_done(x: Completion): boolean {
  return x.done !== 0;
}
export function try_wait_for_completion(x: Completion): boolean {
  if (!x.done) return false;
  if (x.done !== UINT_MAX) x.done--;
  return true;
}
/** wait_for_completion() */
export function wait_for_completion(sched: Sched, x: Completion): void {
  sched.waitUntil(() => x.done !== 0, "wait_for_completion");
  if (x.done !== UINT_MAX) x.done--;
}
