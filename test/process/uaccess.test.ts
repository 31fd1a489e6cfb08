// copy_from_user()/copy_to_user() as a process (arch/x86/mm/fault.c, 4.20/5.0): a kernel-mode
// fault on a user address goes through the same handler as the process's own accesses, but
// what it cannot resolve (no vma, a vma that forbids the access, a VM_FAULT_SIGBUS) goes to
// the exception fixup: the copy stops short, no signal, no "segfault at" line.

import { describe, expect, it } from "vitest";
import { BUS_ADRERR, SEGV_ACCERR, SIGBUS, SIGSEGV } from "../../core/kernel/signal.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { boot } from "../helpers/kernel.ts";
import { PAGE, pteOf, signalOf } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe("user copies", () => {
  it("a PROT_NONE mapping: the copy stops, with no signal and no message, where the CPU gets SIGSEGV", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const m = p.mmap(0, 2 * PAGE, RW, ANON);
    p.write(m + PAGE - 4, [1, 2, 3, 4]);
    p.mprotect(m + PAGE, PAGE, PROT_NONE);
    const seq = k.log.nextSeq;
    const { data, left } = p.copy_from_user(m + PAGE - 4, 8);
    expect(left).toBe(4);
    expect([...data]).toEqual([1, 2, 3, 4, 0, 0, 0, 0]);
    expect(p.copy_to_user(m + PAGE, new Uint8Array([9]))).toBe(1);
    expect(pteOf(p, m + PAGE)).toBe(0);
    expect(k.log.messages(seq)).toEqual([]);
    // The process's own access is the access error the copy was spared.
    const sig = signalOf(() => p.read(m + PAGE, 1));
    expect([sig.signo, sig.si_code]).toEqual([SIGSEGV, SEGV_ACCERR]);
    expect(k.log.messages(seq)[0]).toBe(`app[${p.pid}]: segfault at ${(m + PAGE).toString(16)} ip 0000000000000000 sp 0000000000000000 error 4`);
    expect(p.alive).toBe(true);
  });

  it("beyond EOF of a file mapping: VM_FAULT_SIGBUS ends the copy, the process gets no SIGBUS", async () => {
    const k = await boot();
    const p = k.spawn("app");
    const fd = p.memfd_create("short");
    p.ftruncate(fd, PAGE);
    const m = p.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd);
    const seq = k.log.nextSeq;
    // copy_to_user() faults the page inside the file in (writable) and stops at EOF.
    expect(p.copy_to_user(m + PAGE - 2, new Uint8Array([7, 8, 9, 10]))).toBe(2);
    expect([...p.pread(fd, 2, PAGE - 2)]).toEqual([7, 8]);
    const { data, left } = p.copy_from_user(m + PAGE - 2, 4);
    expect(left).toBe(2);
    expect([...data]).toEqual([7, 8, 0, 0]);
    expect(k.log.messages(seq)).toEqual([]);
    const sig = signalOf(() => p.read(m + PAGE, 1));
    expect([sig.signo, sig.si_code]).toEqual([SIGBUS, BUS_ADRERR]);
    expect(p.alive).toBe(true);
  });
});
