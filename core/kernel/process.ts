// User processes: a task with an address space and a file table, driven from the host through
// POSIX-shaped methods. Each method runs as the task (it is `current`), like a system call, and
// throws a KernelError with the errno a libc wrapper would leave in errno. read() and write()
// are the process's own CPU accesses: each page goes through the pte, and a missing or
// write-protected one through the x86 page-fault handler, exactly as an instruction would.
//
// Not modelled: threads, signals handlers (a fault signal is thrown to the host as a
// SignalError and the process stays usable), exec (no program is loaded: no text, heap or
// stack mappings), wait/zombies (an exited process is gone at once), fds 0-2 (the console;
// the first file a process opens is fd 3).

import { EBADF, EINVAL, ESRCH, KernelError, strerror } from "../errno.ts";
import { vfs_ioctl } from "../fs/chrdev.ts";
import { fput, get_file, type File } from "../fs/file.ts";
import type { Kernel } from "../kernel.ts";
import { do_uaccess_fault, do_user_addr_fault, type FaultEnv, type FaultingTask } from "../mm/fault.ts";
import { PAGE_SIZE, type Page } from "../mm/memmap.ts";
import { MAP_ANONYMOUS, MAP_DENYWRITE, MAP_EXECUTABLE, MAP_HUGETLB, vm_mmap_pgoff, do_munmap } from "../mm/mmap.ts";
import { do_mprotect } from "../mm/mprotect.ts";
import { MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS, TASK_SIZE, type MmStruct } from "../mm/mm_types.ts";
import { pte_pfn, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER } from "../mm/pgtable.ts";
import { is_shmem_file, shmem_file_setup } from "../mm/shmem.ts";
import { Ratelimit } from "../lib/ratelimit.ts";
import { dup_mm, mm_alloc, mmput } from "./fork.ts";
import { HungTaskError, type Task } from "./sched.ts";
import { SI_KERNEL, SIGKILL, SignalError } from "./signal.ts";

export const MFD_CLOEXEC = 0x0001;
export const MFD_ALLOW_SEALING = 0x0002;
export const MFD_HUGETLB = 0x0004;
/** MFD_NAME_MAX_LEN: NAME_MAX minus the "memfd:" prefix. */
export const MFD_NAME_MAX_LEN = 255 - 6;
/** A fault the kernel keeps resolving without the access ever succeeding would spin forever;
 *  kemu gives up after this many and reports it. */
export const MAX_FAULT_RETRIES = 64;
const FIRST_FD = 3;

function errnoError(syscall: string, rc: number): KernelError {
  return new KernelError(-rc, `${syscall}: ${strerror(rc)}`);
}

function isCount(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

function checkNumber(syscall: string, a: number, b = 0): void {
  if (!isCount(a) || !isCount(b)) throw errnoError(syscall, -EINVAL);
}

/**
 * What the MMU does with `pte` for an access to `addr`: the pfn when a present user pte allows
 * it (setting the accessed bit, and the dirty bit on a write), else -1 (a page fault).
 */
function hardwareAccess(mm: MmStruct, addr: number, pte: number, write: boolean): Page {
  const fl = pte % PAGE_SIZE;
  if ((fl & (_PAGE_PRESENT | _PAGE_USER)) !== (_PAGE_PRESENT | _PAGE_USER) || (write && !(fl & _PAGE_RW))) return -1;
  const want = _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
  if ((fl & want) !== want) mm.set_pte_at(addr, pte - fl + (fl | want));
  return pte_pfn(pte);
}

/** A user process: task_struct with its mm and files. */
export class Process implements Task {
  readonly k: Kernel;
  readonly pid: number;
  readonly comm: string;
  readonly ppid: number;
  /** The address space; null once the process has exited. */
  mm: MmStruct | null;
  /** The file table: fd -> file. */
  readonly files = new Map<number, File>();
  /** Set when the process exits: the exit code, or 128 + the signal that killed it. */
  exit_code: number | null = null;
  readonly #table: Processes;

  constructor(table: Processes, comm: string, mm: MmStruct, ppid: number) {
    this.k = table.k;
    this.#table = table;
    this.pid = this.k.sched.alloc_pid();
    this.comm = comm.slice(0, 15);
    this.mm = mm;
    this.ppid = ppid;
  }

  get alive(): boolean {
    return this.exit_code === null;
  }

  /** Run `fn` as this task, as a system call would; the CPU goes idle afterwards. */
  #syscall<T>(name: string, fn: (mm: MmStruct) => T): T {
    if (!this.alive) throw new KernelError(ESRCH, `${name}: process ${this.pid} (${this.comm}) has exited`);
    const mm = this.mm!;
    try {
      return this.k.sched.runAsTask(this, () => fn(mm));
    } finally {
      this.k.settle();
    }
  }

  /** mmap(2): the address of the new mapping. */
  mmap(addr: number, length: number, prot: number, flags: number, fd = -1, offset = 0): number {
    return this.#syscall("mmap", (mm) => {
      checkNumber("mmap", addr, length);
      // sys_mmap(): the offset must be page aligned.
      if (!Number.isSafeInteger(offset) || offset < 0 || offset % PAGE_SIZE) throw errnoError("mmap", -EINVAL);
      let file: File | null = null;
      if (!(flags & MAP_ANONYMOUS)) {
        file = this.files.get(fd) ?? null;
        if (!file) throw errnoError("mmap", -EBADF);
        if (flags & MAP_HUGETLB) throw errnoError("mmap", -EINVAL); // not a hugetlbfs file
        get_file(file);
      }
      flags &= ~(MAP_EXECUTABLE | MAP_DENYWRITE);
      try {
        const ret = vm_mmap_pgoff(mm, file, addr, length, prot, flags, offset / PAGE_SIZE);
        if (ret < 0) throw errnoError("mmap", ret);
        return ret;
      } finally {
        if (file) fput(file);
      }
    });
  }

  /** munmap(2) */
  munmap(addr: number, length: number): void {
    this.#syscall("munmap", (mm) => {
      checkNumber("munmap", addr, length);
      const rc = do_munmap(mm, addr, length);
      if (rc) throw errnoError("munmap", rc);
    });
  }

  /** mprotect(2) */
  mprotect(addr: number, length: number, prot: number): void {
    this.#syscall("mprotect", (mm) => {
      checkNumber("mprotect", addr, length);
      const rc = do_mprotect(mm, addr, length, prot);
      if (rc) throw errnoError("mprotect", rc);
    });
  }

  /** fork(2): the child, with a copy-on-write copy of the address space and the files. */
  fork(): Process {
    return this.#syscall("fork", (mm) => {
      const child = dup_mm(mm);
      if (typeof child === "number") throw errnoError("fork", child);
      const p = new Process(this.#table, this.comm, child, this.pid);
      for (const [fd, file] of this.files) p.files.set(fd, get_file(file));
      this.#table.add(p);
      return p;
    });
  }

  /** exit(2): the address space and the files go; the process is gone. */
  exit(code = 0): void {
    this.#syscall("exit", () => this.do_exit(code & 0xff));
  }

  /** do_exit(): exit_mm(), then exit_files(). */
  do_exit(code: number): void {
    if (!this.alive) return;
    this.exit_code = code;
    const mm = this.mm!;
    this.mm = null;
    mmput(mm);
    const files = [...this.files.values()];
    this.files.clear();
    for (const f of files) fput(f);
    this.#table.remove(this);
  }

  /** fd_install(): the lowest free fd now refers to `file` (whose reference it takes). */
  fd_install(file: File): number {
    let fd = FIRST_FD;
    while (this.files.has(fd)) fd++;
    this.files.set(fd, file);
    return fd;
  }

  #file(syscall: string, fd: number): File {
    const file = this.files.get(fd);
    if (!file) throw errnoError(syscall, -EBADF);
    return file;
  }

  /** memfd_create(2): a tmpfs file, "/memfd:NAME (deleted)" in /proc/PID/maps. */
  memfd_create(name: string, flags = 0): number {
    return this.#syscall("memfd_create", () => {
      if (flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB)) throw errnoError("memfd_create", -EINVAL);
      // hugetlbfs is not modelled
      if (flags & MFD_HUGETLB) throw errnoError("memfd_create", -EINVAL);
      if (name.length > MFD_NAME_MAX_LEN) throw errnoError("memfd_create", -EINVAL);
      return this.fd_install(shmem_file_setup(this.k, `memfd:${name}`, 0));
    });
  }

  /**
   * open(2) of a device node (/dev/NAME of a registered device, through devtmpfs): the new
   * fd. ENOENT when there is no such node; otherwise what the driver's ->open returned.
   */
  open(path: string, flags: number): number {
    return this.#syscall("open", () => {
      if (typeof path !== "string" || !Number.isSafeInteger(flags)) throw errnoError("open", -EINVAL);
      const file = this.k.devtmpfs.open(path, flags);
      if (typeof file === "number") throw errnoError("open", file);
      return this.fd_install(file);
    });
  }

  /**
   * ioctl(2): the driver's ->unlocked_ioctl(file, cmd, arg) runs as this task, so
   * copy_from_user()/copy_to_user() reach this process's memory. A result in [-4095, -1] is
   * an errno (thrown, as a libc wrapper sets errno); anything else is returned.
   */
  ioctl(fd: number, cmd: number, arg = 0): number {
    return this.#syscall("ioctl", () => {
      const file = this.#file("ioctl", fd);
      // cmd is an unsigned int, arg an unsigned long.
      if (!Number.isSafeInteger(cmd) || !Number.isSafeInteger(arg) || arg < 0) throw errnoError("ioctl", -EINVAL);
      const r = vfs_ioctl(file, cmd >>> 0, arg);
      if (r < 0 && r >= -4095) throw errnoError("ioctl", r);
      return r;
    });
  }

  /** close(2) */
  close(fd: number): void {
    this.#syscall("close", () => {
      const file = this.#file("close", fd);
      this.files.delete(fd);
      fput(file);
    });
  }

  /** ftruncate(2) */
  ftruncate(fd: number, length: number): void {
    this.#syscall("ftruncate", () => {
      const file = this.#file("ftruncate", fd);
      if (!Number.isSafeInteger(length) || length < 0) throw errnoError("ftruncate", -EINVAL);
      // do_sys_ftruncate(): a regular file open for writing
      if (!file.f_inode?.regular || !(file.f_mode & 2) || !file.f_op.truncate) throw errnoError("ftruncate", -EINVAL);
      const rc = file.f_op.truncate(file, length);
      if (rc) throw errnoError("ftruncate", rc);
    });
  }

  /** pread(2): up to `count` bytes at `offset` (fewer at end of file). */
  pread(fd: number, count: number, offset: number): Uint8Array {
    return this.#syscall("pread", () => {
      const file = this.#file("pread", fd);
      checkNumber("pread", count, offset);
      if (!(file.f_mode & 1)) throw errnoError("pread", -EBADF);
      if (!file.f_op.read) throw errnoError("pread", -EINVAL);
      const r = file.f_op.read(file, count, offset);
      if (typeof r === "number") throw errnoError("pread", r);
      return r;
    });
  }

  /** pwrite(2): the bytes written. */
  pwrite(fd: number, data: Uint8Array, offset: number): number {
    return this.#syscall("pwrite", () => {
      const file = this.#file("pwrite", fd);
      checkNumber("pwrite", offset);
      if (!(file.f_mode & 2)) throw errnoError("pwrite", -EBADF);
      if (!file.f_op.write) throw errnoError("pwrite", -EINVAL);
      const r = file.f_op.write(file, data, offset);
      if (r < 0) throw errnoError("pwrite", r);
      return r;
    });
  }

  /** fsync(2): -EINVAL for a file that cannot be synced (do_fsync: no ->fsync). */
  fsync(fd: number): void {
    this.#syscall("fsync", () => {
      const file = this.#file("fsync", fd);
      if (!file.f_op.fsync) throw errnoError("fsync", -EINVAL);
      const rc = file.f_op.fsync(file);
      if (rc) throw errnoError("fsync", rc);
    });
  }

  /** Is `fd` a tmpfs file? */
  isShmem(fd: number): boolean {
    const f = this.files.get(fd);
    return f !== undefined && is_shmem_file(f);
  }

  /**
   * The pfn the CPU reaches at `addr`, faulting until the pte allows the access. The hardware
   * sets the accessed bit, and the dirty bit on a write.
   */
  #translate(mm: MmStruct, addr: number, write: boolean): Page {
    for (let tries = 0; ; tries++) {
      const pte = mm.ptep_get(addr);
      const pfn = hardwareAccess(mm, addr, pte, write);
      if (pfn >= 0) return pfn;
      if (tries === MAX_FAULT_RETRIES) {
        this.k.printk(`\x013kemu: ${this.comm}[${this.pid}]: the fault at ${addr.toString(16)} is still not resolved after ${tries} attempts; the task would fault forever\n`);
        throw new HungTaskError(this, `a page-fault loop at 0x${addr.toString(16)}`);
      }
      do_user_addr_fault(this.#table, this, mm, addr, write, pte);
      // A fault that killed the task (OOM) ends the access.
      if (!this.alive) throw new SignalError(SIGKILL, SI_KERNEL, addr, this);
    }
  }

  /**
   * The pfn a kernel access (copy_from_user/copy_to_user, running as this task) reaches at
   * user address `addr`, or -1. A missing or write-protected pte goes through the fault
   * handler as a kernel-mode fault on a user address does (no FAULT_FLAG_USER); one it cannot
   * resolve ends the copy through the exception table (fixup_exception()): no signal.
   */
  #uaccessPfn(mm: MmStruct, addr: number, write: boolean): Page {
    for (let tries = 0; tries <= MAX_FAULT_RETRIES; tries++) {
      const pte = mm.ptep_get(addr);
      const pfn = hardwareAccess(mm, addr, pte, write);
      if (pfn >= 0) return pfn;
      if (!do_uaccess_fault(this.#table, this, mm, addr, write, pte) || !this.alive) return -1;
    }
    return -1;
  }

  /**
   * _copy_from_user() as this task: the bytes read from [from, from + n) and how many could
   * not be (the tail of the buffer is zeroed for those, as the kernel does). access_ok() fails
   * for ranges beyond TASK_SIZE_MAX.
   */
  copy_from_user(from: number, n: number): { data: Uint8Array; left: number } {
    const data = new Uint8Array(n);
    return { data, left: this.#copy_user(from, data, false) };
  }

  /** _copy_to_user() as this task: the number of bytes that could not be written. */
  copy_to_user(to: number, data: Uint8Array): number {
    return this.#copy_user(to, data, true);
  }

  /**
   * The page walk of copy_from_user() (`buf` is filled from user memory at `addr`) and
   * copy_to_user() (`buf` is written there): the number of bytes not copied.
   */
  #copy_user(addr: number, buf: Uint8Array, write: boolean): number {
    const n = buf.length;
    const mm = this.mm;
    if (!mm || !isCount(addr) || addr + n > TASK_SIZE || addr + n < addr) return n;
    const physmem = this.k.mm.physmem;
    let off = 0;
    while (off < n) {
      const a = addr + off;
      const pfn = this.#uaccessPfn(mm, a, write);
      if (pfn < 0) break;
      const o = a % PAGE_SIZE;
      const len = Math.min(PAGE_SIZE - o, n - off);
      if (write) physmem.writablePage(pfn).set(buf.subarray(off, off + len), o);
      else buf.set(physmem.readPage(pfn).subarray(o, o + len), off);
      off += len;
    }
    return n - off;
  }

  /** A CPU read of [addr, addr+length): throws SignalError on SIGSEGV/SIGBUS. */
  read(addr: number, length: number): Uint8Array {
    if (!isCount(length)) throw errnoError("read", -EINVAL);
    const out = new Uint8Array(length);
    this.readInto(addr, out);
    return out;
  }

  /** A CPU read of out.length bytes at `addr` into `out` (no allocation per access). */
  readInto(addr: number, out: Uint8Array): void {
    this.#checkAccess("read", addr);
    this.#cpuAccess(addr, out, false);
  }

  /** A CPU write of `data` at `addr`: throws SignalError on SIGSEGV/SIGBUS (what came before
   *  the faulting page is written, as a memcpy would leave it). */
  write(addr: number, data: Uint8Array | ArrayLike<number>): void {
    this.#checkAccess("write", addr);
    this.#cpuAccess(addr, data instanceof Uint8Array ? data : Uint8Array.from(data), true);
  }

  #checkAccess(name: string, addr: number): void {
    if (!this.alive) throw new KernelError(ESRCH, `${name}: process ${this.pid} (${this.comm}) has exited`);
    if (!isCount(addr)) throw errnoError(name, -EINVAL);
  }

  /**
   * The CPU's accesses, page by page through #translate(): `buf` is filled from `addr` (a
   * read) or written there. The access paths switch `current` by hand: no closure per access.
   */
  #cpuAccess(addr: number, buf: Uint8Array, write: boolean): void {
    const length = buf.length;
    const mm = this.mm!;
    const sched = this.k.sched;
    const prev = sched.current;
    sched.current = this;
    try {
      const physmem = this.k.mm.physmem;
      for (let off = 0; off < length; ) {
        const a = addr + off;
        const pfn = this.#translate(mm, a, write);
        const o = a % PAGE_SIZE;
        const n = Math.min(PAGE_SIZE - o, length - off);
        // A whole-buffer chunk (off 0, n the full length) needs no subarray.
        if (write) physmem.writablePage(pfn).set(n === length ? buf : buf.subarray(off, off + n), o);
        else {
          const src = physmem.readPage(pfn);
          buf.set(n === PAGE_SIZE ? src : src.subarray(o, o + n), off);
        }
        off += n;
      }
    } finally {
      sched.current = prev;
      this.k.settle();
    }
  }
}

/** The process table, and what the fault handler needs from it. */
export class Processes implements FaultEnv {
  readonly k: Kernel;
  readonly #list = new Map<number, Process>();
  /** printk_ratelimit_state: 10 messages per 5 s. */
  readonly printk_ratelimit = new Ratelimit();

  constructor(k: Kernel) {
    this.k = k;
  }

  /** Start a process `comm` with an empty address space. */
  spawn(comm: string): Process {
    const p = new Process(this, comm, mm_alloc(this.k), 1);
    this.add(p);
    return p;
  }

  add(p: Process): void {
    this.#list.set(p.pid, p);
  }
  remove(p: Process): void {
    this.#list.delete(p.pid);
  }
  get(pid: number): Process | undefined {
    return this.#list.get(pid);
  }
  list(): Process[] {
    return [...this.#list.values()];
  }

  /** Every process is killed (SIGKILL), newest first, as at power-off. */
  killAll(): void {
    for (const p of this.list().reverse()) this.k.sched.runAsTask(p, () => p.do_exit(128 + SIGKILL));
  }

  /**
   * pagefault_out_of_memory(): kemu has no OOM killer that could free memory elsewhere, so the
   * faulting task is the one killed, with oom_kill_process()'s messages.
   */
  pagefault_out_of_memory(task: FaultingTask, _address: number): void {
    const p = this.get(task.pid);
    const mm = p?.mm;
    if (!p || !mm) return;
    const k = this.k;
    const totalpages = k.mm.pageAlloc.totalram_pages;
    const points = Math.max(1, mm.get_mm_rss() + mm.rss[MM_SWAPENTS]! + mm.pgtables_bytes() / PAGE_SIZE);
    const kb = (pages: number) => (pages * PAGE_SIZE) / 1024;
    k.printk(`\x013Out of memory: Kill process ${p.pid} (${p.comm}) score ${Math.floor((points * 1000) / totalpages)} or sacrifice child\n`);
    k.printk(
      `\x013Killed process ${p.pid} (${p.comm}) total-vm:${kb(mm.total_vm)}kB, anon-rss:${kb(mm.rss[MM_ANONPAGES]!)}kB, ` +
        `file-rss:${kb(mm.rss[MM_FILEPAGES]!)}kB, shmem-rss:${kb(mm.rss[MM_SHMEMPAGES]!)}kB\n`,
    );
    p.do_exit(128 + SIGKILL);
  }
}

