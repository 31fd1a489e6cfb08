// /proc/PID/maps and the memory lines of /proc/PID/status (fs/proc/task_mmu.c, array.c, 4.20).

import { MAJOR, MINOR } from "./file.ts";
import { PAGE_SIZE } from "../mm/memmap.ts";
import { MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS, VM_EXEC, VM_MAYSHARE, VM_READ, VM_WRITE, type MmStruct, type VmArea } from "../mm/mm_types.ts";

function hex(v: number, width: number): string {
  return v.toString(16).padStart(width, "0");
}

/**
 * show_map_vma(): "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu " and, for a named mapping,
 * padding to column 73 (seq_setwidth(25 + sizeof(void *) * 6 - 1), seq_pad) and the name. An
 * anonymous mapping's line ends in that space.
 */
export function show_map_vma(vma: VmArea): string {
  const mm = vma.vm_mm;
  const flags = vma.vm_flags;
  const file = vma.vm_file;
  let dev = 0;
  let ino = 0;
  let pgoff = 0;
  if (file) {
    dev = file.f_inode?.s_dev ?? 0;
    ino = file.f_inode?.i_ino ?? 0;
    pgoff = vma.vm_pgoff * PAGE_SIZE;
  }
  const line =
    `${hex(vma.vm_start, 8)}-${hex(vma.vm_end, 8)} ` +
    `${flags & VM_READ ? "r" : "-"}${flags & VM_WRITE ? "w" : "-"}${flags & VM_EXEC ? "x" : "-"}${flags & VM_MAYSHARE ? "s" : "p"} ` +
    `${hex(pgoff, 8)} ${hex(MAJOR(dev), 2)}:${hex(MINOR(dev), 2)} ${ino} `;
  let name: string | null = null;
  if (file) name = file.path;
  else if (vma.vm_ops?.name) name = vma.vm_ops.name(vma);
  if (name === null) {
    if (vma.vm_start <= mm.brk && vma.vm_end >= mm.start_brk) name = "[heap]";
    else if (vma.vm_start <= mm.start_stack && vma.vm_end >= mm.start_stack) name = "[stack]";
  }
  return name === null ? line + "\n" : line.padEnd(72) + " " + name + "\n";
}

/** /proc/PID/maps */
export function show_maps(mm: MmStruct | null): string {
  return mm ? mm.mmap.map(show_map_vma).join("") : "";
}

/** task_mem(): the Vm and Rss lines of /proc/PID/status. */
export function task_mem(mm: MmStruct): string {
  const kb = (pages: number) => String((pages * PAGE_SIZE) / 1024).padStart(8);
  const anon = mm.rss[MM_ANONPAGES]!;
  const file = mm.rss[MM_FILEPAGES]!;
  const shmem = mm.rss[MM_SHMEMPAGES]!;
  const total_rss = anon + file + shmem;
  const hiwater_rss = Math.max(total_rss, mm.hiwater_rss);
  const hiwater_vm = Math.max(mm.total_vm, mm.hiwater_vm);
  const text = 0; // no executable is loaded: start_code == end_code
  const lib = mm.exec_vm * PAGE_SIZE - text;
  return (
    `VmPeak:\t${kb(hiwater_vm)} kB\n` +
    `VmSize:\t${kb(mm.total_vm)} kB\n` +
    `VmLck:\t${kb(mm.locked_vm)} kB\n` +
    `VmPin:\t${kb(mm.pinned_vm)} kB\n` +
    `VmHWM:\t${kb(hiwater_rss)} kB\n` +
    `VmRSS:\t${kb(total_rss)} kB\n` +
    `RssAnon:\t${kb(anon)} kB\n` +
    `RssFile:\t${kb(file)} kB\n` +
    `RssShmem:\t${kb(shmem)} kB\n` +
    `VmData:\t${kb(mm.data_vm)} kB\n` +
    `VmStk:\t${kb(mm.stack_vm)} kB\n` +
    `VmExe:\t${String(text / 1024).padStart(8)} kB\n` +
    `VmLib:\t${String(lib / 1024).padStart(8)} kB\n` +
    `VmPTE:\t${String(mm.pgtables_bytes() / 1024).padStart(8)} kB\n` +
    `VmSwap:\t${kb(mm.rss[MM_SWAPENTS]!)} kB\n` +
    `HugetlbPages:\t${String(0).padStart(8)} kB\n`
  );
}

/** /proc/PID/status: the lines kemu models (name, pids, memory, threads). */
export function proc_pid_status(task: { comm: string; pid: number; ppid: number; mm: MmStruct | null }): string {
  let out = `Name:\t${task.comm}\nPid:\t${task.pid}\nPPid:\t${task.ppid}\n`;
  if (task.mm) out += task_mem(task.mm);
  out += "Threads:\t1\n";
  return out;
}
