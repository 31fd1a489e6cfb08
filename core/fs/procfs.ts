// Read-only (and a few writable) views of kernel state, by path: /proc, /sys and debugfs
// files rendered the way the kernel renders them.

import { EINVAL, ENOENT, EPERM, KernelError } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import type { FaultAttr } from "../lib/fault-inject.ts";
import { kstrtobool, simple_strtoll, simple_strtoull } from "../lib/kstrtox.ts";

export interface ProcFile {
  read(): string;
  /** Returns 0 or a negative errno. */
  write?(data: string): number;
}

/** x86-64 4-level paging VMALLOC_SIZE: 32 TiB, in kB. */
const VMALLOC_TOTAL_KB = 34359738367;

export class ProcFs {
  readonly #files = new Map<string, ProcFile>();

  constructor(k: Kernel) {
    this.register("/proc/iomem", { read: () => k.mm.iomem.show() });
    this.register("/proc/meminfo", { read: () => meminfo(k) });
    this.register("/proc/buddyinfo", { read: () => k.mm.pageAlloc.buddyinfo() });
    this.register("/proc/version", { read: () => k.banner() + "\n" });
    this.register("/proc/cmdline", { read: () => k.cmdline + "\n" });
    this.register("/proc/sys/kernel/tainted", {
      read: () => `${k.taint.maskString}\n`,
      write: (data) => procTaint(k, data),
    });
    this.register("/proc/modules", { read: () => k.modules.procModules() });
    this.register("/proc/misc", { read: () => k.misc.show() });
    this.register("/proc/kemu/modules", { read: () => k.modules.procKemuModules() });
    this.register("/proc/sys/kernel/modules_disabled", {
      read: () => (k.modules.modules_disabled ? "1\n" : "0\n"),
      // kernel/sysctl.c: proc_dointvec_minmax with extra1 = extra2 = &one ("only handle a
      // transition from default "0" to "1""), so "0" is -EINVAL even while it is 0.
      write: (data) => proc_dointvec_minmax(data, (v) => (k.modules.modules_disabled = v === 1), 1, 1),
    });
    this.register("/proc/sys/kernel/hung_task_timeout_secs", {
      read: () => `${k.sched.hung_task_timeout_secs}\n`,
      // The kernel's handler is proc_dohung_task_timeout_secs() (proc_doulongvec_minmax, at most
      // LONG_MAX / HZ); kemu takes 0 to 2^31 through the same parsing and -EINVALs the rest.
      write: (data) => proc_dointvec_minmax(data, (v) => (k.sched.hung_task_timeout_secs = v), 0, 2 ** 31),
    });
    this.register("/proc/sys/kernel/hung_task_warnings", {
      read: () => `${k.sched.hung_task_warnings}\n`,
      // proc_dointvec_minmax with extra1 = &neg_one
      write: (data) => proc_dointvec_minmax(data, (v) => (k.sched.hung_task_warnings = v), -1),
    });
    this.register("/proc/sys/vm/min_free_kbytes", { read: () => `${k.mm.pageAlloc.min_free_kbytes}\n` });
    this.#faultAttrFiles("/sys/kernel/debug/failslab", k.mm.failslab);
  }

  register(path: string, file: ProcFile): void {
    this.#files.set(path, file);
  }

  /** The file goes (a device's sysfs attribute, with its device). */
  unregister(path: string): void {
    this.#files.delete(path);
  }

  paths(): string[] {
    return [...this.#files.keys()].sort();
  }

  read(path: string): string {
    const f = this.#files.get(path);
    if (!f) throw new KernelError(ENOENT, `${path}: No such file or directory`);
    return f.read();
  }

  write(path: string, data: string): void {
    const f = this.#files.get(path);
    if (!f) throw new KernelError(ENOENT, `${path}: No such file or directory`);
    if (!f.write) throw new KernelError(EPERM, `${path}: Permission denied (read-only file)`);
    const rc = f.write(data);
    if (rc < 0) throw new KernelError(-rc, `write to ${path} failed: ${rc === -EINVAL ? "Invalid argument" : `error ${rc}`}`);
  }

  /**
   * debugfs fault_attr files (lib/fault-inject.c fault_create_debugfs_attr): unsigned longs
   * and atomic_ts through simple_attr_write(), which in 4.20/5.0 takes whatever
   * simple_strtoll() makes of the input and never fails; booleans through kstrtobool().
   */
  #faultAttrFiles(dir: string, attr: FaultAttr): void {
    type Num = "probability" | "interval" | "times" | "space" | "verbose";
    const ulong = (v: number) => (v < 0 ? (2n ** 64n + BigInt(v)).toString() : String(v));
    const file = (field: Num, atomic: boolean): ProcFile => ({
      read: () => `${atomic ? attr[field] : ulong(attr[field])}\n`,
      write: (data) => {
        const v = simple_strtoll(data);
        attr[field] = atomic ? v | 0 : v;
        return 0;
      },
    });
    this.register(`${dir}/probability`, file("probability", false));
    this.register(`${dir}/interval`, file("interval", false));
    this.register(`${dir}/times`, file("times", true));
    this.register(`${dir}/space`, file("space", true));
    this.register(`${dir}/verbose`, file("verbose", false));
    this.register(`${dir}/ignore-gfp-wait`, {
      read: () => (attr.ignoreGfpReclaim ? "Y\n" : "N\n"),
      write: (data) => {
        const v = kstrtobool(data);
        if (v === null) return -EINVAL;
        attr.ignoreGfpReclaim = v;
        return 0;
      },
    });
  }
}

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;
/** TMPBUFLEN of proc_get_long(): a number and its sign take at most 20 characters. */
const TMPBUFLEN = 22;

/**
 * A write to a one-int proc_dointvec_minmax() table (kernel/sysctl.c __do_proc_dointvec() and
 * proc_get_long()): leading whitespace is skipped, then an optional '-' and a base-0 number
 * (simple_strtoul()) that ends the input or is followed by ' ', '\t' or '\n' (what follows it
 * is left unwritten). A value outside [min, max] is -EINVAL and nothing is stored; the bounds
 * default to int's, do_proc_dointvec_conv()'s range check.
 */
function proc_dointvec_minmax(data: string, set: (v: number) => void, min = INT_MIN, max = INT_MAX): number {
  const p = data.replace(/^[ \t\n\v\f\r]+/, ""); // proc_skip_spaces()
  if (!p) return -EINVAL;
  const tmp = p.slice(0, TMPBUFLEN - 1);
  const neg = tmp[0] === "-" && p.length > 1;
  const at = neg ? 1 : 0;
  if (!/[0-9]/.test(tmp[at] ?? "")) return -EINVAL;
  const { value, end: len } = simple_strtoull(tmp, at);
  if (len === TMPBUFLEN - 1) return -EINVAL;
  if (len < p.length && !" \t\n".includes(p[len]!)) return -EINVAL;
  const v = neg ? -value : value;
  if (v < BigInt(min) || v > BigInt(max)) return -EINVAL;
  set(Number(v));
  return 0;
}

/**
 * proc_taint() through proc_doulongvec_minmax(): each whitespace-separated value is read with
 * simple_strtoul(base 0) and every set bit is added; a negative value is skipped (4.20 and
 * 5.0 only refused it in 2021). Bits are never cleared.
 */
function procTaint(k: Kernel, data: string): number {
  for (const word of data.trim().split(/\s+/).filter(Boolean)) {
    const neg = word.startsWith("-");
    const digits = neg ? word.slice(1) : word;
    const { value: v, end } = simple_strtoull(digits);
    if (end === 0 || end !== digits.length) return -EINVAL;
    if (neg) continue;
    for (let i = 0; i < 64; i++) if ((v >> BigInt(i)) & 1n) k.taint.add(i, "LOCKDEP_STILL_OK");
  }
  return 0;
}

function kb(pages: number): string {
  return `${String(pages * 4).padStart(8)} kB`;
}

/** meminfo_proc_show() in 4.20 order; what kemu does not model reads 0. */
function meminfo(k: Kernel): string {
  const mm = k.mm;
  const pa = mm.pageAlloc;
  const free = pa.nr_free_pages();
  let totalreserve = 0;
  for (const z of pa.zones) totalreserve += z.watermark.high;
  const available = Math.max(0, free - totalreserve);
  const slab = mm.slab.slabPages;
  const vm = mm.vmstat;
  // Cached: NR_FILE_PAGES less the swap cache and buffers (neither modelled); tmpfs pages count.
  const cached = Math.max(0, vm.nr_file_pages);
  const lines: [string, number][] = [
    ["MemTotal:", pa.totalram_pages],
    ["MemFree:", free],
    ["MemAvailable:", available],
    ["Buffers:", 0],
    ["Cached:", cached],
    ["SwapCached:", 0],
    ["Active:", 0],
    ["Inactive:", 0],
    ["Active(anon):", 0],
    ["Inactive(anon):", 0],
    ["Active(file):", 0],
    ["Inactive(file):", 0],
    ["Unevictable:", 0],
    ["Mlocked:", 0],
    ["SwapTotal:", 0],
    ["SwapFree:", 0],
    ["Dirty:", 0],
    ["Writeback:", 0],
    ["AnonPages:", vm.nr_anon_mapped],
    ["Mapped:", vm.nr_file_mapped],
    ["Shmem:", vm.nr_shmem],
    ["KReclaimable:", 0],
    ["Slab:", slab],
    ["SReclaimable:", 0],
    ["SUnreclaim:", slab],
  ];
  let out = lines.map(([name, pages]) => name.padEnd(16) + kb(pages)).join("\n") + "\n";
  out += `KernelStack:    ${String(0).padStart(8)} kB\n`;
  out += `PageTables:     ${kb(0)}\n`;
  out += `NFS_Unstable:   ${kb(0)}\n`;
  out += `Bounce:         ${kb(0)}\n`;
  out += `WritebackTmp:   ${kb(0)}\n`;
  out += `CommitLimit:    ${kb(Math.floor(pa.totalram_pages / 2))}\n`;
  out += `Committed_AS:   ${kb(0)}\n`;
  out += `VmallocTotal:   ${String(VMALLOC_TOTAL_KB).padStart(8)} kB\n`;
  out += `VmallocUsed:    ${kb(0)}\n`;
  out += `VmallocChunk:   ${kb(0)}\n`;
  out += `Percpu:         ${kb(0)}\n`;
  out += `HardwareCorrupted: ${String(0).padStart(5)} kB\n`;
  out += `AnonHugePages:  ${kb(0)}\n`;
  out += `ShmemHugePages: ${kb(0)}\n`;
  out += `ShmemPmdMapped: ${kb(0)}\n`;
  out += `HugePages_Total:   ${String(0).padStart(5)}\n`;
  out += `HugePages_Free:    ${String(0).padStart(5)}\n`;
  out += `HugePages_Rsvd:    ${String(0).padStart(5)}\n`;
  out += `HugePages_Surp:    ${String(0).padStart(5)}\n`;
  out += `Hugepagesize:   ${String(2048).padStart(8)} kB\n`;
  out += `Hugetlb:        ${String(0).padStart(8)} kB\n`;
  const dm = mm.directMapSizes();
  out += `DirectMap4k:    ${String(dm.k4).padStart(8)} kB\n`;
  out += `DirectMap2M:    ${String(dm.m2).padStart(8)} kB\n`;
  out += `DirectMap1G:    ${String(dm.g1).padStart(8)} kB\n`;
  return out;
}

