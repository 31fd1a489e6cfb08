// Kernel taint (kernel/panic.c): taint_flags[], print_tainted(), add_taint() and the
// "Disabling lock debugging" line printed by the first taint that makes lockdep unreliable.

export const TAINT_PROPRIETARY_MODULE = 0;
export const TAINT_FORCED_MODULE = 1;
export const TAINT_CPU_OUT_OF_SPEC = 2;
export const TAINT_FORCED_RMMOD = 3;
export const TAINT_MACHINE_CHECK = 4;
export const TAINT_BAD_PAGE = 5;
export const TAINT_USER = 6;
export const TAINT_DIE = 7;
export const TAINT_OVERRIDDEN_ACPI_TABLE = 8;
export const TAINT_WARN = 9;
export const TAINT_CRAP = 10;
export const TAINT_FIRMWARE_WORKAROUND = 11;
export const TAINT_OOT_MODULE = 12;
export const TAINT_UNSIGNED_MODULE = 13;
export const TAINT_SOFTLOCKUP = 14;
export const TAINT_LIVEPATCH = 15;
export const TAINT_AUX = 16;
export const TAINT_RANDSTRUCT = 17;
export const TAINT_TEST = 18;
export const TAINT_FWCTL = 19;

export interface TaintFlag {
  readonly bit: number;
  readonly name: string;
  /** Letter when set. */
  readonly cTrue: string;
  /** Letter when clear: 'G' for bit 0, a space otherwise. */
  readonly cFalse: string;
  /** Shown in a module's own taint letters (/proc/modules). */
  readonly module: boolean;
}

/** Every flag ever defined, in bit order; a kernel version shows the first `count` of them. */
export const TAINT_FLAGS: readonly TaintFlag[] = [
  { bit: 0, name: "PROPRIETARY_MODULE", cTrue: "P", cFalse: "G", module: true },
  { bit: 1, name: "FORCED_MODULE", cTrue: "F", cFalse: " ", module: true },
  { bit: 2, name: "CPU_OUT_OF_SPEC", cTrue: "S", cFalse: " ", module: false },
  { bit: 3, name: "FORCED_RMMOD", cTrue: "R", cFalse: " ", module: false },
  { bit: 4, name: "MACHINE_CHECK", cTrue: "M", cFalse: " ", module: false },
  { bit: 5, name: "BAD_PAGE", cTrue: "B", cFalse: " ", module: false },
  { bit: 6, name: "USER", cTrue: "U", cFalse: " ", module: false },
  { bit: 7, name: "DIE", cTrue: "D", cFalse: " ", module: false },
  { bit: 8, name: "OVERRIDDEN_ACPI_TABLE", cTrue: "A", cFalse: " ", module: false },
  { bit: 9, name: "WARN", cTrue: "W", cFalse: " ", module: false },
  { bit: 10, name: "CRAP", cTrue: "C", cFalse: " ", module: true },
  { bit: 11, name: "FIRMWARE_WORKAROUND", cTrue: "I", cFalse: " ", module: false },
  { bit: 12, name: "OOT_MODULE", cTrue: "O", cFalse: " ", module: true },
  { bit: 13, name: "UNSIGNED_MODULE", cTrue: "E", cFalse: " ", module: true },
  { bit: 14, name: "SOFTLOCKUP", cTrue: "L", cFalse: " ", module: false },
  { bit: 15, name: "LIVEPATCH", cTrue: "K", cFalse: " ", module: true },
  { bit: 16, name: "AUX", cTrue: "X", cFalse: " ", module: true },
  { bit: 17, name: "RANDSTRUCT", cTrue: "T", cFalse: " ", module: true },
  { bit: 18, name: "TEST", cTrue: "N", cFalse: " ", module: true },
  { bit: 19, name: "FWCTL", cTrue: "J", cFalse: " ", module: true },
];

export type LockdepOk = "LOCKDEP_STILL_OK" | "LOCKDEP_NOW_UNRELIABLE";

export class Taint {
  /** TAINT_FLAGS_COUNT of the running kernel version. */
  readonly count: number;
  /** tainted_mask: an unsigned long, so bits 0..63. */
  #mask = 0n;
  /** debug_locks: cleared by the first taint that makes lockdep unreliable. */
  #debugLocks = true;
  readonly #printk: (text: string) => void;

  constructor(count: number, printk: (text: string) => void) {
    if (count < 1 || count > TAINT_FLAGS.length) throw new RangeError(`taint flag count ${count}`);
    this.count = count;
    this.#printk = printk;
  }

  /** tainted_mask as a number (exact up to bit 52; /proc reads use maskString). */
  get mask(): number {
    return Number(this.#mask);
  }

  /** tainted_mask in decimal, exact for all 64 bits. */
  get maskString(): string {
    return this.#mask.toString();
  }

  test(bit: number): boolean {
    return (this.#mask & (1n << BigInt(bit))) !== 0n;
  }

  /** add_taint(): bits are only ever added (T6). Bits past the flag table still set (4.20). */
  add(bit: number, lockdep: LockdepOk): void {
    if (!Number.isInteger(bit) || bit < 0 || bit > 63) throw new RangeError(`taint bit ${bit} out of range`);
    if (lockdep === "LOCKDEP_NOW_UNRELIABLE" && this.debugLocksOff()) {
      this.#printk("\x014Disabling lock debugging due to kernel taint\n");
    }
    this.#mask |= 1n << BigInt(bit);
  }

  /** __debug_locks_off(): clear debug_locks; true if this call turned it off. oops_enter()
   *  calls it before the oops is printed, so an oops's own TAINT_DIE prints no
   *  "Disabling lock debugging" line. */
  debugLocksOff(): boolean {
    const was = this.#debugLocks;
    this.#debugLocks = false;
    return was;
  }

  /** debug_locks */
  get debugLocks(): boolean {
    return this.#debugLocks;
  }

  /** print_tainted(): "Not tainted" or "Tainted: " plus one column per flag. */
  toString(): string {
    if (this.#mask === 0n) return "Not tainted";
    return "Tainted: " + letters(Number(this.#mask & 0xfffffn), this.count, true);
  }

  /** print_tainted_verbose()-style list of the set flags, e.g. "[P]=PROPRIETARY_MODULE". */
  verbose(): string[] {
    return TAINT_FLAGS.slice(0, this.count)
      .filter((f) => this.test(f.bit))
      .map((f) => `[${f.cTrue}]=${f.name}`);
  }
}

/**
 * The taint letters of a mask. With `columns` every flag gets a column (kernel-wide string);
 * without, only the set letters appear (module_flags_taint() for /proc/modules).
 */
export function letters(mask: number, count: number, columns: boolean): string {
  let s = "";
  for (const f of TAINT_FLAGS.slice(0, count)) {
    const set = (mask & (1 << f.bit)) !== 0;
    if (columns) s += set ? f.cTrue : f.cFalse;
    else if (set && f.module) s += f.cTrue;
  }
  return s;
}
