// WARN(), BUG() and oops reports (kernel/panic.c __warn, arch/x86/kernel/dumpstack.c) in the
// order a 4.20/5.0 x86-64 kernel prints them. kemu's functions have no addresses, so where the
// kernel prints symbol+offset/size kemu prints the bare symbol name.

import type { Prandom } from "../lib/random.ts";
import { TAINT_DIE, TAINT_WARN, type Taint } from "../taint.ts";
import type { Sched } from "./sched.ts";

export const HARDWARE_NAME = "kemu Standard PC (emulated), BIOS kemu 04/01/2014";

/** The task that hit an oops is killed; this unwinds the host operation it was running. */
export class KernelOops extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KernelOops";
  }
}

export interface BugEnv {
  printk(text: string): void;
  taint: Taint;
  sched: Sched;
  random: Prandom;
  release: string;
  /** " a b(OE)" for "Modules linked in:", plus " [last unloaded: x]" */
  modulesLinkedIn(): string;
}

/** Where a WARN or BUG fired: the kernel source file and the function. */
export interface Site {
  file: string;
  func: string;
}

export class BugReporter {
  readonly #env: BugEnv;
  /** oops_id: drawn once per boot, then incremented by every report (init_oops_id()). */
  #oopsId: bigint | null = null;
  #dieCounter = 0;
  readonly #warnedOnce = new Set<string>();
  /** Frames of emulated kernel and driver code currently running, innermost last. */
  readonly stack: string[] = [];

  constructor(env: BugEnv) {
    this.#env = env;
  }

  #pr(level: number, text: string): void {
    this.#env.printk(`\x01${level}${text}\n`);
  }

  /** print_oops_end_marker(): ---[ end trace %016llx ]---. The id is random per boot (drawn on
   *  first use here) and init_oops_id() adds one for every later report, as 4.20/5.0 do. */
  #endTrace(): void {
    if (this.#oopsId === null) this.#oopsId = BigInt("0x" + this.#env.random.hex64());
    else this.#oopsId = (this.#oopsId + 1n) & 0xffffffffffffffffn;
    this.#pr(4, `---[ end trace ${this.#oopsId.toString(16).padStart(16, "0")} ]---`);
  }

  /**
   * dump_stack(), or show_regs() when `rip` is given (a trap: BUG, oops, x86's WARN): the
   * CPU and hardware lines, RIP, then the call trace kemu knows. Registers and code bytes
   * are left out: kemu has none.
   */
  dumpStack(level = 4, extra: string[] = [], rip?: string): void {
    const t = this.#env.sched.current;
    this.#pr(level, `CPU: 0 PID: ${t.pid} Comm: ${t.comm} ${this.#env.taint} ${this.#env.release} #1`);
    this.#pr(level, `Hardware name: ${HARDWARE_NAME}`);
    if (rip !== undefined) this.#pr(level, `RIP: 0010:${rip}`);
    // Consecutive repeats are one function seen from two sides (a module's function called
    // by the kernel, and in the module's own stack).
    const frames = [...extra, ...[...this.stack].reverse()].filter((f, i, a) => i === 0 || f !== a[i - 1]);
    // The function that trapped is in the RIP line, not again in the trace.
    if (rip !== undefined && frames[0] === rip) frames.shift();
    this.#pr(level, "Call Trace:");
    // dump_stack() shows itself at least; a trap's trace starts at the caller of RIP.
    for (const f of frames.length || rip !== undefined ? frames : ["dump_stack"]) this.#pr(level, ` ${f}`);
  }

  /**
   * WARN(1, fmt...) or, with no message, WARN_ON(1): the report, then taint W. Returns true
   * like WARN() does. On x86 a WARN_ON() traps to report_bug(), which in 4.19-5.1 prints no
   * "cut here" line (6b15f678fb7d restored it in 5.2); __warn_printk() prints one for WARN().
   */
  warn(site: Site, message: string | null): true {
    if (message !== null) this.#pr(4, "------------[ cut here ]------------");
    if (message) this.#env.printk(`\x014${message.endsWith("\n") ? message : message + "\n"}`);
    const t = this.#env.sched.current;
    this.#pr(4, `WARNING: CPU: 0 PID: ${t.pid} at ${site.file} ${site.func}`);
    this.#pr(4, `Modules linked in:${this.#env.modulesLinkedIn()}`);
    this.dumpStack(4, [], site.func);
    this.#endTrace();
    this.#env.taint.add(TAINT_WARN, "LOCKDEP_STILL_OK");
    return true;
  }

  /** WARN_ONCE(): the first time for this `key` only. */
  warnOnce(key: string, site: Site, message: string | null): boolean {
    if (this.#warnedOnce.has(key)) return true;
    this.#warnedOnce.add(key);
    return this.warn(site, message);
  }

  /**
   * die(): print the oops, taint D and kill the current task by throwing KernelOops.
   * `header` is what precedes "invalid opcode"/"Oops" (e.g. "kernel BUG at mm/swap.c!").
   */
  oops(header: string[], kind: "invalid opcode: 0000" | "Oops: 0000" | "Oops: 0002", site: Site, headerLevel = 1, trace: string[] = []): never {
    // oops_begin() -> oops_enter() -> debug_locks_off(): lockdep is off before TAINT_DIE is
    // added, so an oops prints no "Disabling lock debugging due to kernel taint".
    this.#env.taint.debugLocksOff();
    for (const h of header) this.#pr(headerLevel, h);
    this.#pr(4, `${kind} [#${++this.#dieCounter}] SMP PTI`);
    this.dumpStack(4, trace, site.func);
    this.#pr(4, `Modules linked in:${this.#env.modulesLinkedIn()}`);
    this.#endTrace();
    this.#env.taint.add(TAINT_DIE, "LOCKDEP_NOW_UNRELIABLE");
    throw new KernelOops(`${header[header.length - 1] ?? kind} in ${site.func}`);
  }

  /** BUG(): "kernel BUG at file!" then the oops. */
  bug(site: Site): never {
    this.#pr(4, "------------[ cut here ]------------");
    // lib/bug.c report_bug(): pr_crit("kernel BUG at %s:%u!\n", ...)
    return this.oops([`kernel BUG at ${site.file}!`], "invalid opcode: 0000", site, 2);
  }

  /** Run `fn` with `frame` on kemu's call trace. */
  frame<T>(frame: string, fn: () => T): T {
    this.stack.push(frame);
    try {
      return fn();
    } finally {
      this.stack.pop();
    }
  }
}
