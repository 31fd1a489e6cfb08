// The x86 page-fault handler for user accesses (arch/x86/mm/fault.c, 4.20 __do_page_fault /
// 5.0 do_user_addr_fault): find the vma, check the access against its flags, let
// handle_mm_fault() resolve it, and turn what cannot be resolved into a signal.
//
// kemu's CPU accesses come from the host, not from instructions, so the task has no
// instruction or stack pointer: "segfault at" lines print ip and sp as 0, and show_opcodes()
// finds no code there ("Code: Bad RIP value."), as the kernel does for a jump to NULL.

import type { MmStruct } from "./mm_types.ts";
import { pte_protnone, TASK_SIZE, VM_EXEC, VM_READ, VM_WRITE } from "./mm_types.ts";
import {
  FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_KILLABLE, FAULT_FLAG_TRIED, FAULT_FLAG_USER, FAULT_FLAG_WRITE, handle_mm_fault, VM_FAULT_ERROR, VM_FAULT_HWPOISON,
  VM_FAULT_HWPOISON_LARGE, VM_FAULT_OOM, VM_FAULT_RETRY, VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV,
} from "./memory.ts";
import { pte_present, type pte_t } from "./pgtable.ts";
import { BUS_ADRERR, BUS_MCEERR_AR, SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGSEGV, SignalError } from "../kernel/signal.ts";
import type { Ratelimit } from "../lib/ratelimit.ts";
import type { Kernel } from "../kernel.ts";

// enum x86_pf_error_code
export const X86_PF_PROT = 1 << 0;
export const X86_PF_WRITE = 1 << 1;
export const X86_PF_USER = 1 << 2;
export const X86_PF_RSVD = 1 << 3;
export const X86_PF_INSTR = 1 << 4;
export const X86_PF_PK = 1 << 5;

/** The task the fault happened in, as the handler needs it. */
export interface FaultingTask {
  readonly pid: number;
  readonly comm: string;
}

/** What the fault handler calls back into the process layer for. */
export interface FaultEnv {
  readonly k: Kernel;
  /** printk_ratelimit()'s state (show_signal_msg). */
  readonly printk_ratelimit: Ratelimit;
  /** pagefault_out_of_memory(): the OOM path; throws when the task is killed. */
  pagefault_out_of_memory(task: FaultingTask, address: number): void;
}

/** access_error(): may this vma be accessed this way at all? */
function access_error(error_code: number, vm_flags: number): boolean {
  if (error_code & X86_PF_WRITE) return !(vm_flags & VM_WRITE);
  // read, present: a protection fault on a readable pte cannot be fixed up
  if (error_code & X86_PF_PROT) return true;
  return !(vm_flags & (VM_READ | VM_EXEC | VM_WRITE));
}

/** show_signal_msg(): the "segfault at" line, printk_ratelimit()ed. */
function show_signal_msg(env: FaultEnv, task: FaultingTask, error_code: number, address: number): void {
  const k = env.k;
  if (!env.printk_ratelimit.allow(k.clock.jiffies, "show_signal_msg", (t) => k.printk(t))) return;
  const loglvl = task.pid > 1 ? "\x016" : "\x010";
  const zero = "0".repeat(16);
  k.printk(`${loglvl}${task.comm}[${task.pid}]: segfault at ${address.toString(16)} ip ${zero} sp ${zero} error ${error_code.toString(16)}\n`);
  k.printk(`${loglvl}Code: Bad RIP value.\n`);
}

/** __bad_area_nosemaphore() for a user access: report and deliver SIGSEGV. */
function bad_area(env: FaultEnv, task: FaultingTask, error_code: number, address: number, si_code: number): never {
  // Kernel addresses are always protection faults, so the page-table layout does not leak.
  if (address >= TASK_SIZE) error_code |= X86_PF_PROT;
  show_signal_msg(env, task, error_code, address);
  throw new SignalError(SIGSEGV, si_code, address, task);
}

/** do_sigbus() */
function do_sigbus(env: FaultEnv, task: FaultingTask, address: number, fault: number): never {
  let code = BUS_ADRERR;
  if (fault & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)) {
    env.k.printk(`\x013MCE: Killing ${task.comm}:${task.pid} due to hardware memory corruption fault at ${address.toString(16)}\n`);
    code = BUS_MCEERR_AR;
  }
  throw new SignalError(SIGBUS, code, address, task);
}

/**
 * do_user_addr_fault(): a user-mode access to `address` faulted (`pte` is what the pte held).
 * Returns when the fault was handled (the access should be retried); throws SignalError when
 * a signal is delivered instead.
 */
export function do_user_addr_fault(env: FaultEnv, task: FaultingTask, mm: MmStruct, address: number, write: boolean, pte: pte_t): void {
  __do_page_fault(env, task, mm, address, write, pte, true);
}

/**
 * A kernel-mode access to user `address` (copy_from_user/copy_to_user as `task`) faulted.
 * True when the fault was handled (retry the access); false when it could not be, and
 * no_context() hands the access to its exception-table fixup: no signal, no message.
 */
export function do_uaccess_fault(env: FaultEnv, task: FaultingTask, mm: MmStruct, address: number, write: boolean, pte: pte_t): boolean {
  return __do_page_fault(env, task, mm, address, write, pte, false);
}

/** __do_page_fault() for a user address; `user`: the access came from user mode. */
function __do_page_fault(env: FaultEnv, task: FaultingTask, mm: MmStruct, address: number, write: boolean, pte: pte_t, user: boolean): boolean {
  // The hardware saw a present pte only if it was present and not PROT_NONE.
  const hwPresent = pte_present(pte) && !pte_protnone(pte);
  const error_code = (user ? X86_PF_USER : 0) | (write ? X86_PF_WRITE : 0) | (hwPresent ? X86_PF_PROT : 0);
  // __bad_area_nosemaphore(): a signal for a user access, no_context() (the fixup) otherwise.
  const bad = (si_code: number): false => {
    if (user) bad_area(env, task, error_code, address, si_code);
    return false;
  };
  if (address >= TASK_SIZE) return bad(SEGV_MAPERR);
  let flags = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | (user ? FAULT_FLAG_USER : 0) | (write ? FAULT_FLAG_WRITE : 0);
  for (;;) {
    const vma = mm.find_vma(address);
    if (!vma) return bad(SEGV_MAPERR);
    if (vma.vm_start > address) {
      // expand_stack() is not modelled: an access below a VM_GROWSDOWN vma is a bad area too.
      return bad(SEGV_MAPERR);
    }
    if (access_error(error_code, vma.vm_flags)) return bad(SEGV_ACCERR);
    const fault = handle_mm_fault(vma, address, flags);
    if (fault & VM_FAULT_RETRY) {
      // Retry at most once; after that the access itself is retried.
      if (flags & FAULT_FLAG_ALLOW_RETRY) {
        flags = (flags & ~FAULT_FLAG_ALLOW_RETRY) | FAULT_FLAG_TRIED;
        continue;
      }
      return true;
    }
    if (!(fault & VM_FAULT_ERROR)) return true;
    // mm_fault_error(): a kernel-mode access goes to no_context() for every error.
    if (!user) return false;
    if (fault & VM_FAULT_OOM) {
      env.pagefault_out_of_memory(task, address);
      return true;
    }
    if (fault & (VM_FAULT_SIGBUS | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)) do_sigbus(env, task, address, fault);
    if (fault & VM_FAULT_SIGSEGV) bad_area(env, task, error_code, address, SEGV_MAPERR);
    // VM_FAULT_FALLBACK alone: BUG()
    return env.k.bugs.bug({ file: "arch/x86/mm/fault.c", func: "mm_fault_error" });
  }
}
