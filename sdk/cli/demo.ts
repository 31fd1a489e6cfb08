// kemu demo (npm start): the story of "mm: Merge hmm into devm_memremap_pages, mark
// GPL-only" on one screen, with real output. Two machines (4.20 and 5.0) with persistent
// memory and a GPU boot and get their in-tree drivers from udev; on 5.0 a process migrates a
// buffer into VRAM, the GPU computes on it and the CPU faults it back; the proprietary
// example loads under 4.20 and is refused under 5.0; then lsmod, /proc/iomem and the taints.

import { fileURLToPath } from "node:url";
import { O_RDWR } from "../../core/fs/file.ts";
import { Kernel } from "../../core/kernel.ts";
import type { Process } from "../../core/kernel/process.ts";
import { KernelError } from "../../core/errno.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import type { KernelVersion } from "../../core/version.ts";
import { is_swap_pte, pte_to_swp_entry } from "../../core/mm/pgtable.ts";
import { is_device_private_entry } from "../../core/mm/swapops.ts";
import {
  DRM_IOCTL_NOUVEAU_KEMU_VADD, DRM_IOCTL_NOUVEAU_SVM_BIND, DRM_IOCTL_NOUVEAU_SVM_INIT, KEMU_VADD_FIELDS,
  NOUVEAU_SVM_BIND_TARGET__GPU_VRAM, nouveau_svm_bind_header, SVM_BIND_FIELDS, SVM_INIT_FIELDS, u64_fields, u64_struct,
} from "../../drivers/nouveau/nouveau_uapi.ts";
import type { Command } from "./command.ts";
import { moduleFile } from "./driver-file.ts";
import { lsmod } from "./shell.ts";

const GPUMEM = fileURLToPath(new URL("../../examples/gpumem/gpumem.ts", import.meta.url));
const PAGE = 4096;
/** Pages in each of the vectors a, b and c. */
const NPAGES = 16;
const RW = PROT_READ | PROT_WRITE;

/** ANSI colours when stdout is a terminal that wants them. */
const colour = process.stdout.isTTY === true && !process.env["NO_COLOR"];
const sgr = (code: string) => (s: string) => (colour ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = sgr("1");
const dim = sgr("2");
const green = sgr("32");
const red = sgr("31");
const yellow = sgr("33");

function out(s = ""): void {
  process.stdout.write(s + "\n");
}

function heading(n: number, s: string): void {
  out();
  out(bold(`${n}. ${s}`));
}

/** Log lines since `seq`, indented, the kernel's WARN/ERR levels coloured. */
function logLines(k: Kernel, seq: number, filter: (line: string) => boolean = () => true): void {
  for (const l of k.log.lines({ since: seq })) if (filter(l)) out("   " + (/Unknown symbol|FATAL|refus/.test(l) ? red(l) : dim(l)));
}

function machine(version: KernelVersion): Promise<Kernel> {
  return Kernel.boot({ version, memory: "1G", pmem: [{ size: "512M" }], gpus: [{ vram: "256M" }] });
}

/** A process with the GPU open and its SVM on (nouveau_svm_init). */
class GpuClient {
  readonly p: Process;
  readonly fd: number;
  readonly arg: number;
  constructor(k: Kernel) {
    this.p = k.spawn("vecadd");
    this.fd = this.p.open("/dev/dri/renderD128", O_RDWR);
    this.arg = this.p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    this.ioctl(DRM_IOCTL_NOUVEAU_SVM_INIT, SVM_INIT_FIELDS, {});
  }
  ioctl(cmd: number, fields: readonly string[], values: Record<string, number>): Record<string, number> {
    this.p.write(this.arg, u64_struct(fields, values));
    this.p.ioctl(this.fd, cmd, this.arg);
    return u64_fields(fields, this.p.read(this.arg, fields.length * 8));
  }
  vector(f: (i: number) => number): number {
    const addr = this.p.mmap(0, NPAGES * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    this.p.write(addr, new Uint8Array(new Int32Array(NPAGES * 1024).map((_, i) => f(i)).buffer));
    return addr;
  }
  int32s(addr: number): Int32Array {
    return new Int32Array(this.p.read(addr, NPAGES * PAGE).slice().buffer);
  }
}

/** Step 2: a migration round trip with the GPU computing in between, on the 5.0 machine. */
function hmmStory(k: Kernel): void {
  heading(2, "HMM on 5.0: one address space for the CPU and the GPU");
  const g = new GpuClient(k);
  const A = (i: number) => 3 * i + 1;
  const B = (i: number) => 1000 - 7 * i;
  const a = g.vector(A);
  const b = g.vector(B);
  const c = g.vector(() => 0);
  const bind = g.ioctl(DRM_IOCTL_NOUVEAU_SVM_BIND, SVM_BIND_FIELDS, {
    header: nouveau_svm_bind_header(0, NOUVEAU_SVM_BIND_TARGET__GPU_VRAM), va_start: a, va_end: a + NPAGES * PAGE, npages: NPAGES,
  });
  const pgmap = k.mm.memremap.registered().find((m) => m.dev?.name === "0000:00:02.0")!;
  let entries = 0;
  for (let i = 0; i < NPAGES; i++) {
    const pte = g.p.mm!.ptep_get(a + i * PAGE);
    if (is_swap_pte(pte) && is_device_private_entry(pte_to_swp_entry(pte))) entries++;
  }
  out(`   SVM_BIND    ${NPAGES} pages of a -> VRAM (migrate_vma, copy engine): result ${bind["result"]}, ` +
    `${entries} of a's ptes are now device-private entries`);
  const v = g.ioctl(DRM_IOCTL_NOUVEAU_KEMU_VADD, KEMU_VADD_FIELDS, { a, b, c, count: NPAGES * 1024 });
  const sum = g.int32s(c);
  const ok = sum.every((x, i) => x === A(i) + B(i));
  out(`   KEMU_VADD   c = a + b over ${NPAGES * 1024} ints: ${v["vram_pages"]} pages read from VRAM, ${v["host_pages"]} through the ` +
    `GPU's mirror (hmm_vma_fault), ${v["faults"]} GPU faults: ${ok ? green("c is right") : red("c is WRONG")}`);
  // A host observer on the same hook the driver's hmm_devmem_ops.fault is a tap of.
  let cpuFaults = 0;
  k.hooks.devmem.fault.for(pgmap.id).tap({ name: "demo", stage: -1 }, () => void cpuFaults++);
  const back = g.int32s(a);
  const intact = back.every((x, i) => x === A(i));
  out(`   CPU reads a ${NPAGES} faults through kernel.hooks.devmem.fault (taps: ${k.hooks.devmem.fault.for(pgmap.id).taps.map((t) => t.name).join(", ")}), ` +
    `each migrating the page back: ${cpuFaults} faults, ${intact ? green("a is intact") : red("a is CORRUPT")}`);
  g.p.exit();
}

/** Step 3: the proprietary example under each kernel, with the kernel's lines. */
async function policyStory(kernels: [KernelVersion, Kernel][]): Promise<void> {
  heading(3, "Export policy: examples/gpumem is 'Proprietary' and maps device memory (hmm_devmem_add, devm_memremap_pages)");
  for (const [v, k] of kernels) {
    const seq = k.log.nextSeq;
    const m = await moduleFile(GPUMEM, { kernel: v, licenseGate: "loader", modpostWarn: true });
    let verdict: string;
    try {
      await k.insmod(m.file, { filename: m.filename });
      verdict = yellow("loaded ") + ` ${k.tainted()}`;
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      verdict = red("refused") + ` ${e.message}`;
    }
    out(`   ${bold(v.padEnd(4))}  ${verdict}`);
    logLines(k, seq);
  }
}

export const demo: Command = {
  name: "demo",
  summary: "the demonstration that `npm start` runs",
  help: `Usage: kemu demo

The story of Linux 5.0's "mm: Merge hmm into devm_memremap_pages, mark GPL-only", run for
real: boot 4.20 and 5.0 with 1G RAM, 512M of persistent memory and a GPU with 256M of VRAM,
each getting its in-tree drivers from udev (built by \`kemu modules\`); on 5.0 a process
migrates a buffer to VRAM, the GPU adds vectors, and the CPU faults the buffer back; the
proprietary example driver loads under 4.20 (tainting the kernel) and is refused under 5.0;
then lsmod, /proc/iomem and the taint state. Colours on a terminal (NO_COLOR turns them off).
`,
  async run() {
    const t0 = performance.now();
    out(bold(`kemu on Node ${process.version}`) + dim(': Linux 4.20 and 5.0 around "mm: Merge hmm into devm_memremap_pages, mark GPL-only"'));

    heading(1, "Boot: 1G RAM, 512M persistent memory, a GPU with 256M VRAM; udev loads the in-tree drivers");
    const kernels: [KernelVersion, Kernel][] = [];
    for (const v of ["4.20", "5.0"] as const) {
      const t = performance.now();
      const k = await machine(v);
      kernels.push([v, k]);
      const mods = k.read("/proc/modules").split("\n").filter(Boolean).map((l) => l.split(" ")[0]).reverse();
      out(`   ${bold(v.padEnd(4))}  ${k.banner().split(" (")[0]} in ${(performance.now() - t).toFixed(0)} ms, modules: ${mods.join(" ")}`);
    }
    const k50 = kernels[1]![1];
    out(dim("   5.0 dmesg from init on:"));
    const initSeq = k50.log.lines().findIndex((l) => l.includes("Run /sbin/init"));
    for (const l of k50.log.lines().slice(initSeq + 1)) out("   " + dim(l));

    hmmStory(k50);
    await policyStory(kernels);

    heading(4, "The 5.0 machine now");
    out(dim("   $ lsmod"));
    for (const l of lsmod(k50.read("/proc/modules")).trimEnd().split("\n")) out("   " + l);
    out(dim("   $ cat /proc/iomem"));
    for (const l of k50.read("/proc/iomem").trimEnd().split("\n")) out("   " + l);
    for (const [v, k] of kernels) out(`   ${bold(v.padEnd(4))}  /proc/sys/kernel/tainted = ${k.read("/proc/sys/kernel/tainted").trim()}  (${k.tainted()})`);
    for (const [, k] of kernels) await k.shutdown();
    out();
    out(dim(`${(performance.now() - t0).toFixed(0)} ms. More: npx kemu --help, npx kemu shell, docs/.`));
    return 0;
  },
};
