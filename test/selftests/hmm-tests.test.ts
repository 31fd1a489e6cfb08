// tools/testing/selftests/vm/hmm-tests.c ported to kemu: the tests of the device-private
// variant of the `hmm` and `hmm2` fixtures, run against drivers/test_hmm (lib/test_hmm.c on
// the 4.20/5.0 HMM API) through a process's system calls, each isolated and built in, on 5.0
// and 4.20. Each asserts what the selftest asserts (return codes as -errno, cpages, faults,
// the data), except where the 5.0 API makes the result differ; those asserts say so:
//
// - anon_read_prot: READ of a PROT_NONE range fails with -EPERM, not -EFAULT.
//   hmm_vma_fault() returns -EPERM for a vma without VM_READ; hmm_range_fault() (5.7+) gives
//   -EFAULT.
// - snapshot: a page in the other device's memory reads DEV_PRIVATE_REMOTE | WRITE, not
//   NONE. hmm_vma_get_pfns() reports every device-private page; hmm_range_fault() reports
//   only the pages of range->dev_private_owner.
// - mixedmap: the page of the device's own mapping reads ERROR, not READ. vm_insert_page()
//   makes the vma VM_MIXEDMAP, a VM_SPECIAL flag hmm_vma_get_pfns() refuses (-EINVAL);
//   hmm_range_fault() takes such vmas since 5.16 ("mm/hmm.c: allow VM_MIXEDMAP to work with
//   hmm_range_fault"), which added the test.
// - The ioctl numbers are the current uapi's (READ 0, WRITE 1, MIGRATE_TO_DEV 2,
//   MIGRATE_TO_SYS 3, SNAPSHOT 4): hmm_migrate_sys_to_dev() and hmm_migrate_dev_to_sys() are
//   HMM_DMIRROR_MIGRATE_TO_DEV and HMM_DMIRROR_MIGRATE_TO_SYS.
// - double_map: the selftest mallocs npages bytes for a mirror that READ fills with npages
//   pages; here the mirror has room for them.
//
// migrate_multiple and anon_read_multiple (NTIMES loops over 1024 pages) run on 5.0 only: on
// 4.20 they would exercise nothing migrate and anon_read do not, and they are the slow ones.
//
// kemu's own (not in hmm-tests.c): migrate_to_sys and migrate_to_sys_bad. The selftest's
// private variant calls MIGRATE_TO_SYS only in its THP tests (not ported); migrate_multiple
// calls it for the coherent variant alone, the private one faults the pages back.
//
// Not ported: the coherent-device variants (no DEVICE_COHERENT before 6.0), THP, hugetlbfs,
// device-exclusive, GUP, fork (anon_write_child*), anon_teardown (needs a second thread) and
// the tests the spec's catalogue does not list first.

import { describe, expect, it } from "vitest";
import { EINVAL, ENOENT, EPERM } from "../../core/errno.ts";
import { pte_present } from "../../core/mm/pgtable.ts";
import type { Kernel } from "../../core/kernel.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import type { KernelVersion } from "../../core/version.ts";
import {
  HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL, HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE, HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_READ, HMM_DMIRROR_PROT_WRITE, HMM_DMIRROR_PROT_ZERO, HMM_DMIRROR_READ, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_WRITE,
} from "../../drivers/test_hmm/test_hmm_uapi.ts";
import {
  bootTestHmm, expectInts, expectIntsIn, fill, hmm_buffer, hmm_buffer_free, hmm_create_file, hmm_dmirror_cmd, HMM_BUFFER_SIZE, ints, NTIMES, setup_hmm,
  setup_hmm2, sys, teardown_hmm, teardown_hmm2, type Hmm2Fixture, type HmmFixture,
} from "./hmm-harness.ts";
import { deviceEntry, pteOf } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

const MODES: [KernelVersion, string][] = [["5.0", "isolated"], ["5.0", "built in"], ["4.20", "isolated"], ["4.20", "built in"]];

/** The int at `addr`, read by the CPU. */
function readInt(self: { p: HmmFixture["p"] }, addr: number): number {
  return new Int32Array(self.p.read(addr, 4).slice().buffer)[0]!;
}

describe.each(MODES)("hmm-tests on %s, %s", (version, mode) => {
  const builtin = mode === "built in";

  /** TEST_F(hmm, name): a kernel with test_hmm, the fixture, the body, the teardown. */
  function TEST_F_hmm(name: string, body: (self: HmmFixture, k: Kernel) => void): void {
    it(name, async () => {
      const { k } = await bootTestHmm(version, builtin);
      const self = setup_hmm(k);
      body(self, k);
      teardown_hmm(self);
      self.p.exit();
    });
  }

  /** TEST_F(hmm2, name) */
  function TEST_F_hmm2(name: string, body: (self: Hmm2Fixture, k: Kernel) => void): void {
    it(`hmm2.${name}`, async () => {
      const { k } = await bootTestHmm(version, builtin);
      const self = setup_hmm2(k);
      body(self, k);
      teardown_hmm2(self);
      self.p.exit();
    });
  }

  /** Simple NULL test of device open/close. */
  TEST_F_hmm("open_close", () => {});

  /** Read private anonymous memory. */
  TEST_F_hmm("anon_read", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const buffer = hmm_buffer(p, size, RW, ANON);
    // Initialize buffer in system memory but leave the first two pages zero (pte_none and pfn_zero).
    fill(p, buffer.ptr, (2 * self.page_size) / 4, size / 4, (i) => i);
    // Set buffer permission to read-only.
    expect(sys(() => p.mprotect(buffer.ptr, size, PROT_READ))).toBe(0);
    // Populate the CPU page table with a special zero page.
    expect(readInt(self, buffer.ptr + self.page_size)).toBe(0);
    // Simulate a device reading system memory.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(buffer.faults).toBe(1);
    // Check what the device read.
    expectInts(p, buffer.mirror, 0, (2 * self.page_size) / 4, () => 0);
    expectInts(p, buffer.mirror, (2 * self.page_size) / 4, size / 4, (i) => i);
    hmm_buffer_free(p, buffer);
  });

  /** Read private anonymous memory which has been protected with mprotect() PROT_NONE. */
  TEST_F_hmm("anon_read_prot", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const buffer = hmm_buffer(p, size, RW, ANON);
    fill(p, buffer.ptr, 0, size / 4, (i) => i);
    // Initialize mirror buffer so we can verify it isn't written.
    fill(p, buffer.mirror, 0, size / 4, (i) => -i);
    // Protect buffer from reading.
    expect(sys(() => p.mprotect(buffer.ptr, size, PROT_NONE))).toBe(0);
    // Simulate a device reading system memory. hmm-tests.c: -EFAULT (hmm_range_fault());
    // 5.0's hmm_vma_fault() refuses a vma without VM_READ with -EPERM.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_READ, buffer, npages)).toBe(-EPERM);
    // Allow CPU to read the buffer so we can check it.
    expect(sys(() => p.mprotect(buffer.ptr, size, PROT_READ))).toBe(0);
    expectInts(p, buffer.ptr, 0, size / 4, (i) => i);
    // Check what the device read.
    expectInts(p, buffer.mirror, 0, size / 4, (i) => -i);
    hmm_buffer_free(p, buffer);
  });

  /** Write private anonymous memory. */
  TEST_F_hmm("anon_write", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const buffer = hmm_buffer(p, size, RW, ANON);
    // Initialize data that the device will write to buffer->ptr.
    fill(p, buffer.mirror, 0, size / 4, (i) => i);
    // Simulate a device writing system memory.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(buffer.faults).toBe(1);
    // Check what the device wrote.
    expectInts(p, buffer.ptr, 0, size / 4, (i) => i);
    hmm_buffer_free(p, buffer);
  });

  /** Write private anonymous memory which has been protected with mprotect() PROT_READ. */
  TEST_F_hmm("anon_write_prot", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const buffer = hmm_buffer(p, size, PROT_READ, ANON);
    // Simulate a device reading a zero page of memory.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_READ, buffer, 1)).toBe(0);
    expect(buffer.cpages).toBe(1);
    expect(buffer.faults).toBe(1);
    // Initialize data that the device will write to buffer->ptr.
    fill(p, buffer.mirror, 0, size / 4, (i) => i);
    // Simulate a device writing system memory.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(-EPERM);
    // Check what the device wrote.
    expectInts(p, buffer.ptr, 0, size / 4, () => 0);
    // Now allow writing and see that the zero page is replaced.
    expect(sys(() => p.mprotect(buffer.ptr, size, PROT_WRITE | PROT_READ))).toBe(0);
    // Simulate a device writing system memory.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(buffer.faults).toBe(1);
    // Check what the device wrote.
    expectInts(p, buffer.ptr, 0, size / 4, (i) => i);
    hmm_buffer_free(p, buffer);
  });

  /** Read mmap'ed file memory. */
  TEST_F_hmm("file_read", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const fd = hmm_create_file(p, size);
    expect(fd).toBeGreaterThanOrEqual(0);
    // Write initial contents of the file.
    expect(p.pwrite(fd, ints(size / 4, (i) => i), 0)).toBe(size);
    const buffer = hmm_buffer(p, size, PROT_READ, MAP_SHARED, fd);
    // Simulate a device reading system memory.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(buffer.faults).toBe(1);
    // Check what the device read.
    expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
    hmm_buffer_free(p, buffer);
    p.close(fd);
  });

  /** Write mmap'ed file memory. */
  TEST_F_hmm("file_write", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const fd = hmm_create_file(p, size);
    expect(fd).toBeGreaterThanOrEqual(0);
    const buffer = hmm_buffer(p, size, RW, MAP_SHARED, fd);
    // Initialize data that the device will write to buffer->ptr.
    fill(p, buffer.mirror, 0, size / 4, (i) => i);
    // Simulate a device writing system memory.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(buffer.faults).toBe(1);
    // Check what the device wrote.
    expectInts(p, buffer.ptr, 0, size / 4, (i) => i);
    // Check that the device also wrote the file.
    const data = p.pread(fd, size, 0);
    expect(data.length).toBe(size);
    expectIntsIn(data, 0, (i) => i);
    hmm_buffer_free(p, buffer);
    p.close(fd);
  });

  /** Migrate anonymous memory to device private memory. */
  TEST_F_hmm("migrate", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const buffer = hmm_buffer(p, size, RW, ANON);
    fill(p, buffer.ptr, 0, size / 4, (i) => i);
    // Migrate memory to device.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    // Check what the device read.
    expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
    hmm_buffer_free(p, buffer);
  });

  /**
   * Migrate anonymous memory to device private memory and fault some of it back to system
   * memory, then try migrating the resulting mix of system and device private memory to the
   * device.
   */
  TEST_F_hmm("migrate_fault", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const buffer = hmm_buffer(p, size, RW, ANON);
    fill(p, buffer.ptr, 0, size / 4, (i) => i);
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
    // Fault half the pages back to system memory and check them.
    expectInts(p, buffer.ptr, 0, size / 8, (i) => i);
    // Migrate memory to the device again.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
    hmm_buffer_free(p, buffer);
  });

  /** Migrate anonymous shared memory to device private memory. */
  TEST_F_hmm("migrate_shared", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const buffer = hmm_buffer(p, size, RW, MAP_SHARED | MAP_ANONYMOUS);
    // Migrate memory to device.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(-ENOENT);
    hmm_buffer_free(p, buffer);
  });

  /** Try to migrate various memory types to device private memory. */
  TEST_F_hmm2("migrate_mixed", (self) => {
    const { p } = self;
    const npages = 6;
    const size = npages << self.page_shift;
    const ps = self.page_size;
    // Reserve a range of addresses.
    const buffer = hmm_buffer(p, size, PROT_NONE, ANON);
    const base = buffer.ptr;
    // Migrating a protected area should be an error.
    expect(hmm_dmirror_cmd(p, self.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(-EINVAL);
    // Punch a hole after the first page address.
    expect(sys(() => p.munmap(base + ps, ps))).toBe(0);
    // We expect an error if the vma doesn't cover the range.
    expect(hmm_dmirror_cmd(p, self.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 3)).toBe(-EINVAL);
    // Page 2 will be a read-only zero page.
    expect(sys(() => p.mprotect(base + 2 * ps, ps, PROT_READ))).toBe(0);
    const val = readInt(self, base + 2 * ps) + 3;
    expect(val).toBe(3);
    // Page 3 will be read-only.
    expect(sys(() => p.mprotect(base + 3 * ps, ps, RW))).toBe(0);
    p.write(base + 3 * ps, ints(1, () => val));
    expect(sys(() => p.mprotect(base + 3 * ps, ps, PROT_READ))).toBe(0);
    // Page 4-5 will be read-write.
    expect(sys(() => p.mprotect(base + 4 * ps, 2 * ps, RW))).toBe(0);
    p.write(base + 4 * ps, ints(1, () => val));
    p.write(base + 5 * ps, ints(1, () => val));
    // Now try to migrate pages 2-5 to device 1.
    buffer.ptr = base + 2 * ps;
    expect(hmm_dmirror_cmd(p, self.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 4)).toBe(0);
    expect(buffer.cpages).toBe(4);
    // Page 5 won't be migrated to device 0 because it's on device 1.
    buffer.ptr = base + 5 * ps;
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 1)).toBe(-ENOENT);
    buffer.ptr = base;
    // (hmm_buffer_free() munmaps the whole range, the hole included.)
    hmm_buffer_free(p, buffer);
  });

  /** The NTIMES loops: on 5.0 only (see the top of the file). */
  const TEST_F_hmm_ntimes = version === "5.0" ? TEST_F_hmm : () => {};

  /**
   * Migrate anonymous memory to device private memory and back to system memory multiple
   * times, back through CPU faults.
   */
  TEST_F_hmm_ntimes("migrate_multiple", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    for (let c = 0; c < NTIMES; c++) {
      const buffer = hmm_buffer(p, size, RW, ANON);
      fill(p, buffer.ptr, 0, size / 4, (i) => i);
      expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(0);
      expect(buffer.cpages).toBe(npages);
      expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
      // Migrate back to system memory and check them. (The coherent variant first calls
      // MIGRATE_TO_SYS; the private one, ported here, faults the pages back.)
      expectInts(p, buffer.ptr, 0, size / 4, (i) => i);
      hmm_buffer_free(p, buffer);
    }
  });

  /**
   * kemu's own: migrate to device 0 and back with MIGRATE_TO_SYS. The ptes are system pages
   * again, the CPU reads them without a device fault, device 0 has to fault them in again;
   * device 1's pages in the range stay on device 1 (cpages counts device 0's only).
   */
  TEST_F_hmm2("migrate_to_sys", (self, k) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    const ps = self.page_size;
    const buffer = hmm_buffer(p, size, RW, ANON);
    const present = (from: number, n: number) => Array.from({ length: n }, (_, i) => pte_present(pteOf(p, buffer.ptr + (from + i) * ps)));
    fill(p, buffer.ptr, 0, size / 4, (i) => i);
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
    expect(present(0, npages).filter(Boolean).length).toBe(0);
    // From here on, count device 0's CPU faults and all CPU faults.
    const [dpage] = deviceEntry(p, buffer.ptr);
    let devfaults = 0;
    let faults = 0;
    k.hooks.devmem.fault.for(k.mm.page_pgmap(dpage)!.id).tap({ name: "count", stage: -1 }, () => {
      devfaults++;
      return undefined;
    });
    k.hooks.mm.fault.tap("count", () => void faults++);
    // Migrate memory back to system memory.
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(present(0, npages).filter((x) => !x).length).toBe(0);
    // The CPU reads system memory: no fault at all.
    expectInts(p, buffer.ptr, 0, size / 4, (i) => i);
    expect([devfaults, faults]).toEqual([0, 0]);
    // Device 0's page table lost the pages: READ faults them in again.
    fill(p, buffer.mirror, 0, size / 4, () => -1);
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
    expect([buffer.cpages, buffer.faults]).toEqual([npages, 1]);
    expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
    // Nothing of device 0's is left: MIGRATE_TO_SYS moves nothing.
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(0);
    // Pages 0-3 to device 1, 4-7 to device 0; 8-15 stay in system memory.
    expect(hmm_dmirror_cmd(p, self.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 4)).toBe(0);
    expect(buffer.cpages).toBe(4);
    const on1 = [0, 1, 2, 3].map((i) => deviceEntry(p, buffer.ptr + i * ps));
    const upper = { ...buffer, ptr: buffer.ptr + 4 * ps };
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_MIGRATE_TO_DEV, upper, 4)).toBe(0);
    expect(upper.cpages).toBe(4);
    // Device 0 takes back its own 4 pages only.
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, 16)).toBe(0);
    expect(buffer.cpages).toBe(4);
    expect(present(0, 16)).toEqual([false, false, false, false, ...Array<boolean>(12).fill(true)]);
    expect([0, 1, 2, 3].map((i) => deviceEntry(p, buffer.ptr + i * ps))).toEqual(on1);
    // Device 1 takes back its own.
    expect(hmm_dmirror_cmd(p, self.fd1, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, 16)).toBe(0);
    expect(buffer.cpages).toBe(4);
    expect(present(0, 16)).toEqual(Array<boolean>(16).fill(true));
    expectInts(p, buffer.ptr, 0, size / 4, (i) => i);
    expect([devfaults, faults]).toEqual([0, 0]);
    hmm_buffer_free(p, buffer);
  });

  /** kemu's own: MIGRATE_TO_SYS over a bad range is refused with test_hmm's errno. */
  TEST_F_hmm("migrate_to_sys_bad", (self, k) => {
    const { p } = self;
    const ps = self.page_size;
    const seq = k.log.nextSeq;
    const buffer = hmm_buffer(p, 4 * ps, RW, ANON);
    const base = buffer.ptr;
    fill(p, base, 0, ps, (i) => i);
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 4)).toBe(0);
    expect(buffer.cpages).toBe(4);
    // addr not page aligned.
    buffer.ptr = base + 8;
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, 1)).toBe(-EINVAL);
    // No vma: a hole punched in the buffer (pages 2-3), and a range running into it. The
    // pages before the hole are migrated before the error: test_hmm goes chunk by chunk.
    expect(sys(() => p.munmap(base + 2 * ps, 2 * ps))).toBe(0);
    buffer.ptr = base + 2 * ps;
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, 1)).toBe(-EINVAL);
    buffer.ptr = base;
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, 4)).toBe(-EINVAL);
    expect([pte_present(pteOf(p, base)), pte_present(pteOf(p, base + ps))]).toEqual([true, true]);
    // A vma without VM_READ.
    expect(sys(() => p.mprotect(base, 2 * ps, PROT_NONE))).toBe(0);
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, 2)).toBe(-EINVAL);
    expect(sys(() => p.mprotect(base, 2 * ps, PROT_READ))).toBe(0);
    expectInts(p, base, 0, (2 * ps) / 4, (i) => i);
    expect(k.log.messages(seq)).toEqual([]);
    buffer.size = 2 * ps;
    hmm_buffer_free(p, buffer);
  });

  /** Read anonymous memory multiple times. */
  TEST_F_hmm_ntimes("anon_read_multiple", (self) => {
    const { p } = self;
    const npages = HMM_BUFFER_SIZE >> self.page_shift;
    const size = npages << self.page_shift;
    for (let c = 0; c < NTIMES; c++) {
      const buffer = hmm_buffer(p, size, RW, ANON);
      fill(p, buffer.ptr, 0, size / 4, (i) => i + c);
      expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
      expect(buffer.cpages).toBe(npages);
      expect(buffer.faults).toBe(1);
      expectInts(p, buffer.mirror, 0, size / 4, (i) => i + c);
      hmm_buffer_free(p, buffer);
    }
  });

  /** Test memory snapshot without faulting in pages accessed by the device. */
  TEST_F_hmm("mixedmap", (self) => {
    const { p } = self;
    const npages = 1;
    const size = npages << self.page_shift;
    // Reserve a range of addresses.
    const buffer = hmm_buffer(p, size, RW, MAP_PRIVATE, self.fd, npages);
    // Simulate a device snapshotting CPU pagetables.
    expect(hmm_dmirror_cmd(p, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    // Check what the device saw. hmm-tests.c: HMM_DMIRROR_PROT_READ; 5.0 has no valid entry
    // for a VM_MIXEDMAP vma.
    expect(p.read(buffer.mirror, 1)[0]).toBe(HMM_DMIRROR_PROT_ERROR);
    // (The CPU has the zeroed page the driver mapped.)
    expectIntsIn(p.read(buffer.ptr, size), 0, () => 0);
    hmm_buffer_free(p, buffer);
  });

  /** Test memory snapshot without faulting in pages accessed by the device. */
  TEST_F_hmm2("snapshot", (self) => {
    const { p } = self;
    const npages = 7;
    const size = npages << self.page_shift;
    const ps = self.page_size;
    const buffer = hmm_buffer(p, size, PROT_NONE, ANON, -1, npages);
    const base = buffer.ptr;
    // Punch a hole after the first page address.
    expect(sys(() => p.munmap(base + ps, ps))).toBe(0);
    // Page 2 will be read-only zero page.
    expect(sys(() => p.mprotect(base + 2 * ps, ps, PROT_READ))).toBe(0);
    const val = readInt(self, base + 2 * ps) + 3;
    expect(val).toBe(3);
    // Page 3 will be read-only.
    expect(sys(() => p.mprotect(base + 3 * ps, ps, RW))).toBe(0);
    p.write(base + 3 * ps, ints(1, () => val));
    expect(sys(() => p.mprotect(base + 3 * ps, ps, PROT_READ))).toBe(0);
    // Page 4-6 will be read-write.
    expect(sys(() => p.mprotect(base + 4 * ps, 3 * ps, RW))).toBe(0);
    p.write(base + 4 * ps, ints(1, () => val));
    // Page 5 will be migrated to device 0.
    buffer.ptr = base + 5 * ps;
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 1)).toBe(0);
    expect(buffer.cpages).toBe(1);
    // Page 6 will be migrated to device 1.
    buffer.ptr = base + 6 * ps;
    expect(hmm_dmirror_cmd(p, self.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, 1)).toBe(0);
    expect(buffer.cpages).toBe(1);
    // Simulate a device snapshotting CPU pagetables.
    buffer.ptr = base;
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_SNAPSHOT, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    // Check what the device saw.
    const m = p.read(buffer.mirror, npages);
    expect(m[0]).toBe(HMM_DMIRROR_PROT_ERROR);
    expect(m[1]).toBe(HMM_DMIRROR_PROT_ERROR);
    expect(m[2]).toBe(HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
    expect(m[3]).toBe(HMM_DMIRROR_PROT_READ);
    expect(m[4]).toBe(HMM_DMIRROR_PROT_WRITE);
    expect(m[5]).toBe(HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE);
    // hmm-tests.c: HMM_DMIRROR_PROT_NONE (hmm_range_fault() leaves out another owner's
    // page); 5.0's hmm_vma_get_pfns() reports it as device-private memory, on device 1.
    expect(m[6]).toBe(HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE | HMM_DMIRROR_PROT_WRITE);
    hmm_buffer_free(p, buffer);
  });

  /** Test two devices reading the same memory (double mapped). */
  TEST_F_hmm2("double_map", (self) => {
    const { p } = self;
    const npages = 6;
    const size = npages << self.page_shift;
    const buffer = hmm_buffer(p, size, RW, ANON);
    fill(p, buffer.ptr, 0, size / 4, (i) => i);
    // Make region read-only.
    expect(sys(() => p.mprotect(buffer.ptr, size, PROT_READ))).toBe(0);
    // Simulate device 0 reading system memory.
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(buffer.faults).toBe(1);
    expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
    // Simulate device 1 reading system memory.
    expect(hmm_dmirror_cmd(p, self.fd1, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(buffer.faults).toBe(1);
    expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
    // Migrate pages to device 1 and try to read from device 0.
    expect(hmm_dmirror_cmd(p, self.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(hmm_dmirror_cmd(p, self.fd0, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
    expect(buffer.cpages).toBe(npages);
    expect(buffer.faults).toBe(1);
    // Check what device 0 read.
    expectInts(p, buffer.mirror, 0, size / 4, (i) => i);
    hmm_buffer_free(p, buffer);
  });
});
