// Signals a user access can raise (include/uapi/asm-generic/signal.h, siginfo.h). kemu's
// processes install no handlers, so a fault signal would kill them; the host sees it instead as
// a SignalError thrown out of the access, as if a test harness had caught the signal, and the
// process stays usable.

export const SIGBUS = 7;
export const SIGKILL = 9;
export const SIGSEGV = 11;

/** si_code of SIGSEGV */
export const SEGV_MAPERR = 1;
export const SEGV_ACCERR = 2;
export const SEGV_BNDERR = 3;
export const SEGV_PKUERR = 4;
/** si_code of SIGBUS */
export const BUS_ADRALN = 1;
export const BUS_ADRERR = 2;
export const BUS_OBJERR = 3;
export const BUS_MCEERR_AR = 4;
export const BUS_MCEERR_AO = 5;
/** si_code of a signal the kernel sends (SIGKILL from the OOM killer). */
export const SI_KERNEL = 0x80;

const SIGNAMES: Record<number, string> = { [SIGBUS]: "SIGBUS", [SIGKILL]: "SIGKILL", [SIGSEGV]: "SIGSEGV" };
const CODES: Record<number, Record<number, string>> = {
  [SIGSEGV]: { [SEGV_MAPERR]: "SEGV_MAPERR", [SEGV_ACCERR]: "SEGV_ACCERR", [SEGV_BNDERR]: "SEGV_BNDERR", [SEGV_PKUERR]: "SEGV_PKUERR" },
  [SIGBUS]: { [BUS_ADRALN]: "BUS_ADRALN", [BUS_ADRERR]: "BUS_ADRERR", [BUS_OBJERR]: "BUS_OBJERR", [BUS_MCEERR_AR]: "BUS_MCEERR_AR", [BUS_MCEERR_AO]: "BUS_MCEERR_AO" },
};

/** A fault signal delivered to a process (force_sig_fault()): signo, si_code, si_addr. */
export class SignalError extends Error {
  readonly signo: number;
  readonly si_code: number;
  /** The faulting user address (si_addr). */
  readonly addr: number;
  readonly pid: number;
  constructor(signo: number, si_code: number, addr: number, task: { pid: number; comm: string }) {
    const code = CODES[signo]?.[si_code] ?? (si_code === SI_KERNEL ? "SI_KERNEL" : String(si_code));
    super(`${task.comm}[${task.pid}]: ${SIGNAMES[signo] ?? `signal ${signo}`} (${code}) at 0x${addr.toString(16)}`);
    this.name = "SignalError";
    this.signo = signo;
    this.si_code = si_code;
    this.addr = addr;
    this.pid = task.pid;
  }
}
