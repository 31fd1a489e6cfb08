// drivers/test_hmm beyond what hmm-tests.c asserts: what loading it prints and registers, the
// module references that keep it loaded (an open file, device pages in use), what a CPU fault
// and a free do to device pages, how the device page table follows the CPU's, device memory
// that grows by a chunk, and commands that are wrong in every way the ioctl checks (exact
// errno, the kernel still up, nothing leaked: boot() checks invariants and leaks at the end).

import { describe, expect, it } from "vitest";
import { EFAULT, EINVAL } from "../../core/errno.ts";
import type { Kernel } from "../../core/kernel.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import type { KernelVersion } from "../../core/version.ts";
import {
  HMM_DMIRROR_CMD_SIZE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL, HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE, HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_READ, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_WRITE, hmm_dmirror_cmd_bytes, hmm_dmirror_cmd_parse, type HmmDmirrorCmd,
} from "../../drivers/test_hmm/test_hmm_uapi.ts";
import { rmmodError } from "../helpers/kernel.ts";
import { deviceEntry, pfnOf } from "../helpers/process.ts";
import {
  bootTestHmm, expectInts, fill, hmm_buffer, hmm_dmirror_cmd, hmm_open, malloc, PAGE_SIZE, setup_hmm, setup_hmm2, sys, teardown_hmm, teardown_hmm2,
  type HmmBuffer,
} from "./hmm-harness.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const DEV_W = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE;

/** Device 0's memory is the top 256 MiB of the 46-bit physical address space, device 1's below. */
const DEV0_LAST_PFN = 0x3ffffffff;
const DEV1_LAST_PFN = 0x3fffeffff;

const MODES: [KernelVersion, string][] = [["5.0", "isolated"], ["5.0", "built in"], ["4.20", "isolated"], ["4.20", "built in"]];

function refcount(k: Kernel): number {
  const m = /^test_hmm \d+ (\d+) /m.exec(k.read("/proc/modules"));
  if (!m) throw new Error("test_hmm is not loaded");
  return Number(m[1]);
}

describe.each(MODES)("test_hmm on %s, %s", (version, mode) => {
  const builtin = mode === "built in";

  it("loads: a 256 MB chunk of device memory per device, /dev/hmm_dmirror0 and 1, test_hmm's lines; unloads clean", async () => {
    const { k } = await bootTestHmm(version, builtin);
    const lines = k.log.messages().slice(-5);
    expect(lines[0]).toMatch(/^hmm_device0 initialised, 65536 pages in \d+ms$/);
    expect(lines[1]).toBe("added new 256 MB chunk (total 1 chunks, 256 MB) PFNs [0x3ffff0000 0x400000000)");
    expect(lines[2]).toMatch(/^hmm_device1 initialised, 65536 pages in \d+ms$/);
    expect(lines[3]).toBe("added new 256 MB chunk (total 1 chunks, 256 MB) PFNs [0x3fffe0000 0x3ffff0000)");
    expect(lines[4]).toBe("HMM test module loaded. This is only for testing HMM.");
    expect(k.read("/proc/misc")).toBe(" 62 hmm_dmirror1\n 63 hmm_dmirror0\n");
    expect(k.read("/proc/iomem")).toContain("3fffe0000000-3fffefffffff : hmm_device1\n3ffff0000000-3fffffffffff : hmm_device0\n");
    expect(refcount(k)).toBe(0);
    const seq = k.log.nextSeq;
    k.rmmod("test_hmm");
    expect(k.log.messages(seq)).toEqual([]);
    expect(k.read("/proc/misc")).toBe("");
    expect(k.read("/proc/iomem")).not.toContain("hmm_device");
    expect(k.checkInvariants()).toEqual([]);
  });

  it("an open file holds the module (fops.owner): rmmod is refused until it is closed", async () => {
    const { k } = await bootTestHmm(version, builtin);
    const self = setup_hmm(k);
    expect(refcount(k)).toBe(1);
    expect(rmmodError(k, "test_hmm")!.message).toBe("rmmod: ERROR: Module test_hmm is in use");
    // Still working after the refusal.
    const buffer = hmm_buffer(self.p, 4 * PAGE_SIZE, RW, ANON);
    expect(hmm_dmirror_cmd(self.p, self.fd, HMM_DMIRROR_READ, buffer, 4)).toBe(0);
    teardown_hmm(self);
    expect(refcount(k)).toBe(0);
    k.rmmod("test_hmm");
    expect(k.checkInvariants()).toEqual([]);
    self.p.exit();
  });

  it("device pages in use hold the module: rmmod is refused until the process has them back or unmapped", async () => {
    const { k } = await bootTestHmm(version, builtin);
    const self = setup_hmm(k);
    const { p } = self;
    const buffer = hmm_buffer(p, 4 * PAGE_SIZE, RW, ANON);
    fill(p, buffer.ptr, 0, 4 * 1024, (i) => i);
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 4)).toBe(0);
    expect(refcount(k)).toBe(2); // the open file, the device memory in use
    teardown_hmm(self);
    expect(refcount(k)).toBe(1);
    expect(rmmodError(k, "test_hmm")!.message).toBe("rmmod: ERROR: Module test_hmm is in use");
    // Two pages come back through CPU faults (the driver is still there to serve them) ...
    expectInts(p, buffer.ptr, 0, 2 * 1024, (i) => i);
    expect(rmmodError(k, "test_hmm")!.message).toBe("rmmod: ERROR: Module test_hmm is in use");
    // ... two are unmapped: the device memory is all free again.
    p.munmap(buffer.ptr + 2 * PAGE_SIZE, 2 * PAGE_SIZE);
    expect(refcount(k)).toBe(0);
    k.rmmod("test_hmm");
    expect(k.checkInvariants()).toEqual([]);
    expectInts(p, buffer.ptr, 0, 2 * 1024, (i) => i);
    p.exit();
  });

  it("a process that exits with pages on the device gives them back; the next process gets the same pages", async () => {
    const { k } = await bootTestHmm(version, builtin);
    const a = setup_hmm(k);
    const buf = hmm_buffer(a.p, 8 * PAGE_SIZE, RW, ANON);
    fill(a.p, buf.ptr, 0, 8 * 1024, (i) => i);
    expect(hmm_dmirror_cmd(a.p, a.fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 8)).toBe(0);
    const pfns = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => deviceEntry(a.p, buf.ptr + i * PAGE_SIZE)[0]);
    a.p.exit();
    expect(refcount(k)).toBe(0);
    const b = setup_hmm(k);
    const buf2 = hmm_buffer(b.p, 8 * PAGE_SIZE, RW, ANON);
    fill(b.p, buf2.ptr, 0, 8 * 1024, (i) => -i);
    expect(hmm_dmirror_cmd(b.p, b.fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf2, 8)).toBe(0);
    // Freed in page order, the free list hands them out in reverse.
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => deviceEntry(b.p, buf2.ptr + i * PAGE_SIZE)[0])).toEqual([...pfns].reverse());
    expectInts(b.p, buf2.ptr, 0, 8 * 1024, (i) => -i);
    teardown_hmm(b);
    b.p.exit();
  });
});

describe.each(MODES.slice(0, 2))("test_hmm on %s, %s: device memory", (version, mode) => {
  const builtin = mode === "built in";

  it("MIGRATE gives each device its own pages, from the top of its chunk; a CPU fault migrates one back and frees it to the device", async () => {
    const { k } = await bootTestHmm(version, builtin);
    const self = setup_hmm2(k);
    const { p } = self;
    const buffer = hmm_buffer(p, 2 * PAGE_SIZE, RW, ANON);
    fill(p, buffer.ptr, 0, 2 * 1024, (i) => i * 3);
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 1)).toBe(0);
    expect(deviceEntry(p, buffer.ptr)).toEqual([DEV0_LAST_PFN, true]);
    const second = { ...buffer, ptr: buffer.ptr + PAGE_SIZE };
    expect(hmm_dmirror_cmd(p, self.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, second, 1)).toBe(0);
    expect(deviceEntry(p, buffer.ptr + PAGE_SIZE)).toEqual([DEV1_LAST_PFN, true]);
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_SNAPSHOT, buffer, 2)).toBe(0);
    expect([...p.read(buffer.mirror, 2)]).toEqual([DEV_W, HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE | HMM_DMIRROR_PROT_WRITE]);
    // The CPU reads page 0: hmm_devmem_ops.fault brings it back to a system page.
    expectInts(p, buffer.ptr, 0, 1024, (i) => i * 3);
    expect(pfnOf(p, buffer.ptr)).toBeLessThan(0x100000);
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_SNAPSHOT, buffer, 2)).toBe(0);
    expect(p.read(buffer.mirror, 1)[0]).toBe(HMM_DMIRROR_PROT_WRITE);
    // hmm_devmem_ops.free put the device page back on the free list: it is the next one given.
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 1)).toBe(0);
    expect(deviceEntry(p, buffer.ptr)).toEqual([DEV0_LAST_PFN, true]);
    expectInts(p, buffer.ptr, 0, 2 * 1024, (i) => i * 3);
    teardown_hmm2(self);
    p.exit();
  });

  it("the device page table follows the CPU's: an invalidation erases [start, end] (one page past the end, as xa_for_each_range)", async () => {
    const { k } = await bootTestHmm(version, builtin);
    const self = setup_hmm(k);
    const { p } = self;
    const buffer = hmm_buffer(p, 4 * PAGE_SIZE, RW, ANON);
    fill(p, buffer.ptr, 0, 4 * 1024, (i) => i);
    const read = (page: number) => {
      const b = { ...buffer, ptr: buffer.ptr + page * PAGE_SIZE };
      expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_READ, b, 1)).toBe(0);
      return b.faults;
    };
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_READ, buffer, 4)).toBe(0);
    expect(buffer.faults).toBe(1);
    expect([0, 1, 2, 3].map(read)).toEqual([0, 0, 0, 0]);
    // mprotect() of page 1 invalidates [page 1, page 2): entries 1 and 2 go.
    p.mprotect(buffer.ptr + PAGE_SIZE, PAGE_SIZE, PROT_READ);
    expect([0, 1, 2, 3].map(read)).toEqual([0, 1, 1, 0]);
    // A write to a page the device mirrors (no COW: nothing changes) keeps the entry.
    p.write(buffer.ptr, [7]);
    expect(read(0)).toBe(0);
    // munmap() of the last two pages: the device has no page there any more.
    p.munmap(buffer.ptr + 2 * PAGE_SIZE, 2 * PAGE_SIZE);
    const b = { ...buffer, ptr: buffer.ptr + 2 * PAGE_SIZE };
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_READ, b, 1)).toBe(-EFAULT);
    teardown_hmm(self);
    p.exit();
  });

  it("a device that runs out of memory adds a chunk (test_hmm's line); it goes with the device", async () => {
    const { k } = await bootTestHmm(version, builtin);
    const { p } = setup_hmm(k);
    const fd = hmm_open(p, 1);
    const npages = 65536 + 1;
    // Untouched anonymous memory: every page a hole the device fills with a zeroed page. The
    // copy back to ptr (NULL) fails after the migration.
    const size = npages * PAGE_SIZE;
    const buffer: HmmBuffer = { ptr: p.mmap(0, size, RW, ANON), mirror: 0, mirror_size: 0, size, fd: -1, cpages: 0, faults: 0 };
    const seq = k.log.nextSeq;
    expect(hmm_dmirror_cmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(-EFAULT);
    const lines = k.log.messages(seq);
    expect(lines[0]).toMatch(/^hmm_device1 initialised, 65536 pages in \d+ms$/);
    expect(lines.slice(1)).toEqual(["added new 256 MB chunk (total 2 chunks, 512 MB) PFNs [0x3fffd0000 0x3fffe0000)"]);
    expect(k.read("/proc/iomem")).toContain("3fffd0000000-3fffdfffffff : hmm_device1\n3fffe0000000-3fffefffffff : hmm_device1\n");
    // The page past the first chunk is on the second.
    expect(deviceEntry(p, buffer.ptr + 65536 * PAGE_SIZE)[0]).toBe(0x3fffdffff);
    p.exit();
    expect(refcount(k)).toBe(0);
    k.rmmod("test_hmm");
    expect(k.read("/proc/iomem")).not.toContain("hmm_device");
    expect(k.checkInvariants()).toEqual([]);
  });

  it("the file's mm is gone (the opener exited, a forked child has the file): -EINVAL, no fault loop", async () => {
    const { k } = await bootTestHmm(version, builtin);
    const parent = setup_hmm(k);
    const child = parent.p.fork();
    parent.p.exit();
    const buffer = hmm_buffer(child, PAGE_SIZE, RW, ANON);
    for (const nr of [HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT]) {
      expect(hmm_dmirror_cmd(child, parent.fd, nr, buffer, 1)).toBe(-EINVAL);
    }
    expect(sys(() => child.close(parent.fd))).toBe(0);
    child.exit();
  });
});

describe.each(MODES)("test_hmm on %s, %s: bad commands", (version, mode) => {
  const builtin = mode === "built in";

  it("each is refused with test_hmm's errno; the module and the kernel go on", async () => {
    const { k } = await bootTestHmm(version, builtin);
    const self = setup_hmm(k);
    const { p, fd } = self;
    const seq = k.log.nextSeq;
    const buf = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    fill(p, buf, 0, 4 * 1024, (i) => i);
    const out = malloc(p, 4 * PAGE_SIZE);
    const cmd = malloc(p, PAGE_SIZE);
    const ioctl = (nr: number, c: Partial<HmmDmirrorCmd>, at = cmd) => {
      p.write(cmd, hmm_dmirror_cmd_bytes(c));
      return sys(() => p.ioctl(fd, nr, at));
    };
    const ok = { addr: buf, ptr: out, npages: 4 };
    // The struct cannot be read: NULL, unmapped, running off the end of its mapping.
    expect(ioctl(HMM_DMIRROR_READ, ok, 0)).toBe(-EFAULT);
    const hole = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.munmap(hole + PAGE_SIZE, PAGE_SIZE);
    expect(ioctl(HMM_DMIRROR_READ, ok, hole + PAGE_SIZE)).toBe(-EFAULT);
    p.write(hole + PAGE_SIZE - 16, hmm_dmirror_cmd_bytes(ok).subarray(0, 16));
    expect(sys(() => p.ioctl(fd, HMM_DMIRROR_READ, hole + PAGE_SIZE - 16))).toBe(-EFAULT);
    // addr not page aligned; npages 0; addr + npages pages wrapping (also to exactly 0).
    expect(ioctl(HMM_DMIRROR_READ, { ...ok, addr: buf + 8 })).toBe(-EINVAL);
    expect(ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { ...ok, npages: 0 })).toBe(-EINVAL);
    expect(ioctl(HMM_DMIRROR_SNAPSHOT, { ...ok, npages: 2n ** 64n - 1n })).toBe(-EINVAL);
    expect(ioctl(HMM_DMIRROR_WRITE, { ...ok, npages: 2n ** 52n })).toBe(-EINVAL);
    expect(ioctl(HMM_DMIRROR_READ, { ...ok, npages: 2n ** 52n - BigInt(buf / PAGE_SIZE) })).toBe(-EINVAL);
    // Unknown commands: _IOWR('H', 0x05) (EXCLUSIVE, not implemented) and _IO('H', 0); the
    // struct is read and checked first.
    expect(ioctl(HMM_DMIRROR_READ + 5, ok)).toBe(-EINVAL);
    expect(ioctl(0x4800, ok)).toBe(-EINVAL);
    expect(ioctl(HMM_DMIRROR_READ + 5, ok, 0)).toBe(-EFAULT);
    expect(ioctl(HMM_DMIRROR_READ + 5, { ...ok, addr: buf + 1 })).toBe(-EINVAL);
    // Nowhere to put the data, or to take it from: -EFAULT, and the struct is not written back.
    for (const nr of [HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_SNAPSHOT]) {
      expect(ioctl(nr, { ...ok, ptr: 0, cpages: 0x55 })).toBe(-EFAULT);
      expect(hmm_dmirror_cmd_parse(p.read(cmd, HMM_DMIRROR_CMD_SIZE)).cpages).toBe(0x55n);
    }
    // A range that runs past its mapping: READ and WRITE fault into nothing (-EFAULT),
    // MIGRATE finds no vma (-EINVAL) after migrating what precedes the hole, SNAPSHOT reports
    // the hole. The migrated pages are read back to buf on the way.
    p.munmap(buf + 2 * PAGE_SIZE, 2 * PAGE_SIZE);
    expect(ioctl(HMM_DMIRROR_READ, ok)).toBe(-EFAULT);
    expect(ioctl(HMM_DMIRROR_WRITE, ok)).toBe(-EFAULT);
    expect(ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, ok)).toBe(-EINVAL);
    expect(ioctl(HMM_DMIRROR_SNAPSHOT, ok)).toBe(0);
    expect([...p.read(out, 4)]).toEqual([DEV_W, DEV_W, 0xff, 0xff]);
    // A huge npages over a small mapping: the first page past it is the end of it.
    expect(ioctl(HMM_DMIRROR_READ, { ...ok, npages: 2n ** 40n })).toBe(-EFAULT);
    expect(ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { ...ok, npages: 2n ** 40n })).toBe(-EINVAL);
    // The pages before the hole are on the device (MIGRATE with ptr NULL moved them before
    // failing): READ finds them in the device page table, MIGRATE leaves them there.
    expect(ioctl(HMM_DMIRROR_READ, { ...ok, npages: 2 })).toBe(0);
    expect(hmm_dmirror_cmd_parse(p.read(cmd, HMM_DMIRROR_CMD_SIZE))).toMatchObject({ cpages: 2n, faults: 0n });
    expectInts(p, out, 0, 2 * 1024, (i) => i);
    expect(ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { ...ok, npages: 2 })).toBe(0);
    expect(ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { ...ok, addr: out, npages: 1 })).toBe(0);
    // Nothing was logged, and the data comes back to the CPU intact.
    expect(k.log.messages(seq)).toEqual([]);
    expectInts(p, buf, 0, 2 * 1024, (i) => i);
    teardown_hmm(self);
    p.exit();
  });
});
