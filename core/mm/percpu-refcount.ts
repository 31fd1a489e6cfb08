// percpu_ref (lib/percpu-refcount.c, 4.20). In percpu mode gets and puts are never checked;
// percpu_ref_kill() marks the ref dead and switches it to atomic mode after an RCU grace
// period, folding the per-CPU counts in and warning if the result is not positive. Until the
// fold the atomic counter carries PERCPU_COUNT_BIAS, so no put can reach zero before it.

import type { Sched } from "../kernel/sched.ts";

export const PERCPU_REF_INIT_ATOMIC = 1 << 0;
export const PERCPU_REF_INIT_DEAD = 1 << 1;

export type PercpuRefFunc = (ref: PercpuRef) => void;

/** How a ref reports its WARNs; the kernel routes this to WARN_ONCE. */
export interface PercpuRefEnv {
  sched: Sched;
  warnOnce(key: string, func: string, message: string | null): void;
  /** %pf of a release function: its name, with " [module]" for module code. */
  symbolName(fn: Function): string;
}

export class PercpuRef {
  /** The true count: the atomic counter minus the bias, plus every per-CPU count. */
  #count = 0;
  #percpu = false;
  #dead = false;
  /** The bias is still in the atomic counter: the per-CPU counts are not folded in yet. */
  #biased = false;
  #switching = false;
  /** ref->force_atomic: PERCPU_REF_INIT_ATOMIC keeps the ref atomic across reinit. */
  #forceAtomic = false;
  #exited = false;
  release: PercpuRefFunc | null = null;
  confirm_switch: PercpuRefFunc | null = null;
  #env: PercpuRefEnv | null = null;
  /** A name for diagnostics (the owner's choice, e.g. "pgmap ref of namespace0.0"). */
  label = "";

  get env(): PercpuRefEnv {
    if (!this.#env) throw new Error("percpu_ref used before percpu_ref_init()");
    return this.#env;
  }

  /** percpu_ref_init() */
  init(env: PercpuRefEnv, release: PercpuRefFunc, flags: number): number {
    this.#env = env;
    this.release = release;
    this.confirm_switch = null;
    this.#exited = false;
    this.#count = 1;
    this.#switching = false;
    this.#forceAtomic = (flags & PERCPU_REF_INIT_ATOMIC) !== 0;
    this.#percpu = !(flags & PERCPU_REF_INIT_ATOMIC) && !(flags & PERCPU_REF_INIT_DEAD);
    this.#biased = this.#percpu;
    this.#dead = (flags & PERCPU_REF_INIT_DEAD) !== 0;
    if (this.#dead) this.#count = 0;
    return 0;
  }

  /** The count as it stands, including unfolded per-CPU counts (for checkers, not for code). */
  get count(): number {
    return this.#count;
  }
  get isDead(): boolean {
    return this.#dead;
  }
  get isPercpu(): boolean {
    return this.#percpu;
  }
  get exited(): boolean {
    return this.#exited;
  }

  get_many(nr: number): void {
    this.#count += nr;
  }
  get(): void {
    this.#count++;
  }

  /** percpu_ref_tryget(): fails only in atomic mode at zero. */
  tryget(): boolean {
    if (this.#percpu || this.#biased || this.#count !== 0) {
      this.#count++;
      return true;
    }
    return false;
  }

  /** percpu_ref_tryget_live(): fails once the ref is dead. */
  tryget_live(): boolean {
    if (this.#percpu) {
      this.#count++;
      return true;
    }
    if (this.#dead) return false;
    return this.tryget();
  }

  put_many(nr: number): void {
    this.#count -= nr;
    // atomic_long_sub_and_test(): only an exact zero of the atomic counter releases.
    if (!this.#percpu && !this.#biased && this.#count === 0) this.release?.(this);
  }
  put(): void {
    this.put_many(1);
  }

  /** percpu_ref_is_zero() */
  is_zero(): boolean {
    if (this.#percpu || this.#biased) return false;
    return this.#count === 0;
  }

  /** percpu_ref_kill_and_confirm() */
  kill_and_confirm(confirmKill: PercpuRefFunc | null): void {
    const env = this.env;
    if (this.#dead) {
      env.warnOnce("percpu_ref_kill_and_confirm", "percpu_ref_kill_and_confirm",
        `percpu_ref_kill_and_confirm called more than once on ${env.symbolName(this.release ?? noop)}!`);
    }
    this.#dead = true;
    this.#switchToAtomic(confirmKill);
    this.put();
  }

  /** percpu_ref_kill() */
  kill(): void {
    this.kill_and_confirm(null);
  }

  /**
   * __percpu_ref_switch_mode()'s wait_event_lock_irq(): a switch still in progress must be
   * confirmed first, so the caller sleeps through the grace period it is waiting for.
   */
  #waitForSwitch(): void {
    if (this.#switching) this.env.sched.waitUntil(() => !this.#switching, "percpu_ref_switch_mode");
  }

  #switchToAtomic(confirm: PercpuRefFunc | null): void {
    this.#waitForSwitch();
    if (!this.#percpu) {
      if (confirm) confirm(this);
      return;
    }
    this.#percpu = false;
    this.#switching = true;
    this.confirm_switch = confirm;
    this.#count++; // percpu_ref_get(): held until the switch is confirmed
    this.env.sched.call_rcu(() => this.#switchToAtomicRcu());
  }

  /** percpu_ref_switch_to_atomic_rcu(): fold the per-CPU counts into the atomic counter. */
  #switchToAtomicRcu(): void {
    const env = this.env;
    this.#biased = false;
    if (this.#count <= 0) {
      const name = env.symbolName(this.release ?? noop);
      env.warnOnce("percpu_ref_switch_to_atomic_rcu", "percpu_ref_switch_to_atomic_rcu",
        `percpu ref (${name}) <= 0 (${this.#count}) after switching to atomic`);
    }
    const confirm = this.confirm_switch;
    this.confirm_switch = null;
    this.#switching = false;
    confirm?.(this);
    this.put();
  }

  /**
   * percpu_ref_reinit(): WARN_ON_ONCE unless the count is zero, clear DEAD, take the
   * initial ref again and switch back to percpu mode (unless PERCPU_REF_INIT_ATOMIC).
   */
  reinit(): void {
    const env = this.env;
    if (!this.is_zero()) env.warnOnce("percpu_ref_reinit", "percpu_ref_reinit", null);
    this.#dead = false;
    this.get();
    this.#waitForSwitch();
    if (this.#forceAtomic || this.#percpu) return;
    this.#percpu = true;
    this.#biased = true;
  }

  /** percpu_ref_exit(): free the per-CPU counters; the ref stays usable in atomic-dead mode. */
  exit(): void {
    if (this.#switching) {
      this.env.warnOnce("percpu_ref_exit", "percpu_ref_exit", null);
    }
    this.#exited = true;
    this.#percpu = false;
    this.#dead = true;
  }
}

function noop(): void {}
