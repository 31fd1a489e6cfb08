// The VMA layer (mm/mmap.c, mm/mprotect.c) as /proc/PID/maps shows it, the errors mmap,
// munmap and mprotect return, and the signals of bad accesses (arch/x86/mm/fault.c).

import { describe, expect, it } from "vitest";
import { EACCES, EBADF, EEXIST, EINVAL, ENOMEM, ESRCH } from "../../core/errno.ts";
import { File, FMODE_READ, fput } from "../../core/fs/file.ts";
import { SEGV_ACCERR, SEGV_MAPERR, SIGSEGV } from "../../core/kernel/signal.ts";
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, PROT_NONE, PROT_READ, PROT_WRITE,
} from "../../core/mm/mmap.ts";
import { MM_ANONPAGES, MMAP_BASE, TASK_SIZE } from "../../core/mm/mm_types.ts";
import { shmem_file_setup, shmem_file_operations, type ShmemInode } from "../../core/mm/shmem.ts";
import { boot, messages } from "../helpers/kernel.ts";
import { errnoOf, hex, maps, mapsLine, PAGE, pteOf, signalOf } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe("/proc/PID/maps", () => {
  it("munmap of the middle splits the vma in two", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 8 * PAGE, RW, ANON);
    p.munmap(a + 2 * PAGE, 3 * PAGE);
    expect(k.read(`/proc/${p.pid}/maps`)).toBe(
      "7ffff7ff7000-7ffff7ff9000 rw-p 00000000 00:00 0 \n" + "7ffff7ffc000-7ffff7fff000 rw-p 00000000 00:00 0 \n",
    );
    expect(p.mm!.map_count).toBe(2);
  });

  it("adjacent anonymous mappings merge; mprotect splits one in three and merges it back", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 4 * PAGE, RW, ANON);
    const b = p.mmap(0, 4 * PAGE, RW, ANON);
    expect(b).toBe(a - 4 * PAGE);
    expect(maps(k, p)).toEqual([mapsLine(b, a + 4 * PAGE, "rw-p")]);
    p.write(b + PAGE, [1]); // an anon_vma now: merging must keep it
    p.mprotect(b + 2 * PAGE, 3 * PAGE, PROT_READ);
    expect(maps(k, p)).toEqual([mapsLine(b, b + 2 * PAGE, "rw-p"), mapsLine(b + 2 * PAGE, b + 5 * PAGE, "r--p"), mapsLine(b + 5 * PAGE, a + 4 * PAGE, "rw-p")]);
    p.mprotect(b + 2 * PAGE, 3 * PAGE, RW);
    expect(maps(k, p)).toEqual([mapsLine(b, a + 4 * PAGE, "rw-p")]);
    expect([...p.read(b + PAGE, 1)]).toEqual([1]);
  });

  it("different protections do not merge; a shared anonymous mapping is /dev/zero (deleted)", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    const b = p.mmap(0, PAGE, PROT_READ, ANON);
    const s = p.mmap(0, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS);
    expect(maps(k, p)).toEqual([
      mapsLine(s, s + 2 * PAGE, "rw-s", 0, "00:05", 1, "/dev/zero (deleted)"),
      mapsLine(b, b + PAGE, "r--p"),
      mapsLine(a, a + PAGE, "rw-p"),
    ]);
    // The name starts at column 73.
    expect(maps(k, p)[0]!.indexOf("/dev/zero")).toBe(73);
  });

  it("a memfd mapping shows its offset, tmpfs device and inode, and /memfd:NAME (deleted)", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const fd = p.memfd_create("buf");
    p.ftruncate(fd, 8 * PAGE);
    const m = p.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd, 4 * PAGE);
    expect(maps(k, p)).toEqual([mapsLine(m, m + 2 * PAGE, "rw-s", 4 * PAGE, "00:05", 1, "/memfd:buf (deleted)")]);
    // Splitting it keeps the file offset of each part.
    p.munmap(m, PAGE);
    expect(maps(k, p)).toEqual([mapsLine(m + PAGE, m + 2 * PAGE, "rw-s", 5 * PAGE, "00:05", 1, "/memfd:buf (deleted)")]);
  });

  it("an exited process has no maps file", async () => {
    const k = await boot();
    const p = k.spawn("app");
    p.exit();
    expect(() => k.read(`/proc/${p.pid}/maps`)).toThrow(/No such file or directory/);
  });
});

describe("mmap, munmap and mprotect errors", () => {
  it("mmap: -EINVAL for length 0, an unaligned MAP_FIXED address or offset, no MAP_SHARED/MAP_PRIVATE", async () => {
    const k = await boot();
    const p = k.spawn("app");
    expect(errnoOf(() => p.mmap(0, 0, RW, ANON))).toBe(EINVAL);
    expect(errnoOf(() => p.mmap(0x10000100, PAGE, RW, ANON | MAP_FIXED))).toBe(EINVAL);
    expect(errnoOf(() => p.mmap(0, PAGE, RW, MAP_ANONYMOUS))).toBe(EINVAL);
    expect(errnoOf(() => p.mmap(0, PAGE, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS))).toBe(EINVAL);
    const fd = p.memfd_create("x");
    expect(errnoOf(() => p.mmap(0, PAGE, RW, MAP_SHARED, fd, 100))).toBe(EINVAL);
    // mmap() ignores prot bits it does not know; mprotect() refuses them.
    const a = p.mmap(0, PAGE, RW | 0x10, ANON);
    expect(errnoOf(() => p.mprotect(a, PAGE, RW | 0x10))).toBe(EINVAL);
    expect(p.mm!.map_count).toBe(1);
  });

  it("mmap: -EBADF for a file mapping of a bad fd", async () => {
    const k = await boot();
    const p = k.spawn("app");
    expect(errnoOf(() => p.mmap(0, PAGE, RW, MAP_SHARED, 7))).toBe(EBADF);
    expect(errnoOf(() => p.mmap(0, PAGE, RW, MAP_PRIVATE, -1))).toBe(EBADF);
  });

  it("mmap: -ENOMEM beyond TASK_SIZE and when no gap is large enough", async () => {
    const k = await boot();
    const p = k.spawn("app");
    expect(errnoOf(() => p.mmap(0, TASK_SIZE + PAGE, PROT_READ, ANON))).toBe(ENOMEM);
    expect(errnoOf(() => p.mmap(TASK_SIZE - PAGE, 2 * PAGE, PROT_READ, ANON | MAP_FIXED))).toBe(ENOMEM);
    // Fill everything below mmap_base (read-only memory is not committed, so it costs nothing).
    const big = p.mmap(0, MMAP_BASE - PAGE, PROT_READ, ANON);
    expect(big).toBe(PAGE);
    // Only the 128 MiB above mmap_base are left: the bottom-up search finds them, no more.
    expect(p.mmap(0, 64 << 20, PROT_READ, ANON)).toBe(MMAP_BASE);
    expect(errnoOf(() => p.mmap(0, 128 << 20, PROT_READ, ANON))).toBe(ENOMEM);
  });

  it("mmap: private writable memory beyond what could ever be backed is -ENOMEM unless MAP_NORESERVE", async () => {
    const k = await boot({ memory: "256M" });
    const p = k.spawn("app");
    expect(errnoOf(() => p.mmap(0, 1 << 30, RW, ANON))).toBe(ENOMEM);
    expect(p.mmap(0, 1 << 30, RW, ANON | MAP_NORESERVE)).toBeGreaterThan(0);
    expect(p.mmap(0, 1 << 30, RW, MAP_SHARED | MAP_ANONYMOUS)).toBeGreaterThan(0);
  });

  it("mmap: MAP_FIXED replaces what was there; MAP_FIXED_NOREPLACE is -EEXIST", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 2 * PAGE, RW, ANON);
    p.write(a, [1]);
    expect(errnoOf(() => p.mmap(a, PAGE, RW, ANON | MAP_FIXED_NOREPLACE))).toBe(EEXIST);
    expect(p.mmap(a, PAGE, PROT_READ, ANON | MAP_FIXED)).toBe(a);
    expect(maps(k, p)).toEqual([mapsLine(a, a + PAGE, "r--p"), mapsLine(a + PAGE, a + 2 * PAGE, "rw-p")]);
    expect([...p.read(a, 1)]).toEqual([0]);
  });

  it("mmap: a writable shared mapping of a read-only file is -EACCES, and so is mprotect to write", async () => {
    const k = await boot();
    const p = k.spawn("app");
    // A tmpfs file opened read-only (as open(O_RDONLY) of a tmpfs path would give).
    const rw = shmem_file_setup(k, "memfd:ro", 2 * PAGE);
    const inode = rw.f_inode as ShmemInode;
    const ro = new File(shmem_file_operations, FMODE_READ, inode, rw.path, rw.dname);
    inode.i_count++;
    fput(rw);
    const fd = p.fd_install(ro);
    expect(errnoOf(() => p.mmap(0, PAGE, RW, MAP_SHARED, fd))).toBe(EACCES);
    const m = p.mmap(0, PAGE, PROT_READ, MAP_SHARED, fd);
    // VM_MAYWRITE is off: mprotect may not add PROT_WRITE.
    expect(errnoOf(() => p.mprotect(m, PAGE, RW))).toBe(EACCES);
    expect(maps(k, p)).toEqual([mapsLine(m, m + PAGE, "r--s", 0, "00:05", inode.i_ino, "/memfd:ro (deleted)")]);
    // A private copy may be written.
    const c = p.mmap(0, PAGE, RW, MAP_PRIVATE, fd);
    p.write(c, [1]);
  });

  it("munmap: -EINVAL for an unaligned address or length 0; an empty range is fine", async () => {
    const k = await boot();
    const p = k.spawn("app");
    expect(errnoOf(() => p.munmap(0x10001, PAGE))).toBe(EINVAL);
    expect(errnoOf(() => p.munmap(0x10000, 0))).toBe(EINVAL);
    p.munmap(0x10000, PAGE);
  });

  it("mprotect: -EINVAL unaligned, -ENOMEM over a hole (after changing what came before it)", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 4 * PAGE, RW, ANON);
    expect(errnoOf(() => p.mprotect(a + 1, PAGE, PROT_READ))).toBe(EINVAL);
    p.munmap(a + 2 * PAGE, PAGE);
    expect(errnoOf(() => p.mprotect(a, 4 * PAGE, PROT_READ))).toBe(ENOMEM);
    expect(maps(k, p)).toEqual([mapsLine(a, a + 2 * PAGE, "r--p"), mapsLine(a + 3 * PAGE, a + 4 * PAGE, "rw-p")]);
    expect(errnoOf(() => p.mprotect(a - 16 * PAGE, PAGE, PROT_READ))).toBe(ENOMEM);
  });

  it("a process that exited refuses system calls with -ESRCH", async () => {
    const k = await boot();
    const p = k.spawn("app");
    p.exit();
    expect(errnoOf(() => p.mmap(0, PAGE, RW, ANON))).toBe(ESRCH);
  });
});

describe("bad accesses", () => {
  it("a write to memory mprotect()ed read-only is SIGSEGV SEGV_ACCERR at the address", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 2 * PAGE, RW, ANON);
    p.write(a + PAGE, [1]);
    p.mprotect(a, 2 * PAGE, PROT_READ);
    const seq = k.log.nextSeq;
    const sig = signalOf(() => p.write(a + PAGE + 12, [2]));
    expect([sig.signo, sig.si_code, sig.addr]).toEqual([SIGSEGV, SEGV_ACCERR, a + PAGE + 12]);
    // error 7: a protection fault on a write from user mode.
    expect(messages(k, seq)).toEqual([`app[${p.pid}]: segfault at ${(a + PAGE + 12).toString(16)} ip 0000000000000000 sp 0000000000000000 error 7`, "Code: Bad RIP value."]);
    expect([...p.read(a + PAGE, 1)]).toEqual([1]);
    // A never-touched page: not present, so error 6.
    const seq2 = k.log.nextSeq;
    expect(signalOf(() => p.write(a, [2])).si_code).toBe(SEGV_ACCERR);
    expect(messages(k, seq2)[0]).toMatch(/ error 6$/);
  });

  it("an access to unmapped memory is SIGSEGV SEGV_MAPERR; the process stays usable", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const sig = signalOf(() => p.read(0x1234, 1));
    expect([sig.signo, sig.si_code, sig.addr]).toEqual([SIGSEGV, SEGV_MAPERR, 0x1234]);
    expect(k.dmesg()).toContain(`app[${p.pid}]: segfault at 1234 ip 0000000000000000 sp 0000000000000000 error 4\n`);
    // Kernel addresses are reported as protection faults.
    expect(signalOf(() => p.read(TASK_SIZE, 1)).si_code).toBe(SEGV_MAPERR);
    expect(k.dmesg()).toContain(`segfault at ${TASK_SIZE.toString(16)} ip 0000000000000000 sp 0000000000000000 error 5\n`);
    const a = p.mmap(0, PAGE, RW, ANON);
    p.write(a, [1]);
    expect([...p.read(a, 1)]).toEqual([1]);
  });

  it("PROT_NONE memory faults on read with SEGV_ACCERR, even with pages behind it", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, PAGE, RW, ANON);
    p.write(a, [1]);
    p.mprotect(a, PAGE, PROT_NONE);
    expect(pteOf(p, a)).not.toBe(0); // the page stays mapped
    const sig = signalOf(() => p.read(a, 1));
    expect([sig.si_code, sig.addr]).toEqual([SEGV_ACCERR, a]);
    expect(k.dmesg()).toContain(" error 4\n");
    p.mprotect(a, PAGE, PROT_READ);
    expect([...p.read(a, 1)]).toEqual([1]);
  });

  it("segfault lines are rate limited as printk_ratelimit() does: 10 per 5 s", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const seq = k.log.nextSeq;
    for (let i = 0; i < 12; i++) signalOf(() => p.read(0x1000 + i, 1));
    expect(messages(k, seq).filter((m) => m.includes("segfault"))).toHaveLength(10);
    k.clock.advance(6e9);
    const seq2 = k.log.nextSeq;
    signalOf(() => p.read(0x2000, 1));
    expect(messages(k, seq2)).toEqual([
      "show_signal_msg: 2 callbacks suppressed",
      `app[${p.pid}]: segfault at 2000 ip 0000000000000000 sp 0000000000000000 error 4`,
      "Code: Bad RIP value.",
    ]);
  });

  it("MAP_POPULATE faults the whole mapping in at mmap time", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const a = p.mmap(0, 3 * PAGE, RW, ANON | MAP_POPULATE);
    expect(p.mm!.rss[MM_ANONPAGES]).toBe(3);
    const r = p.mmap(0, 2 * PAGE, PROT_READ, ANON | MAP_POPULATE);
    expect(pteOf(p, r)).not.toBe(0);
    expect(p.mm!.rss[MM_ANONPAGES]).toBe(3);
    expect(hex(a)).toBe(hex(MMAP_BASE - 3 * PAGE));
  });
});
