// The kselftest harness of tools/testing/selftests/vm/hmm-tests.c, on kemu: the fixtures
// `hmm` (one open /dev/hmm_dmirror0) and `hmm2` (both devices), whose teardown asserts that
// close() returns 0; struct hmm_buffer with its user-space mirror; hmm_dmirror_cmd(), which
// returns 0 or -errno like the selftest's; and int-array helpers for the buffers, which the
// selftest fills and checks with ptr[i] = i loops.

import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { KernelError } from "../../core/errno.ts";
import type { Kernel } from "../../core/kernel.ts";
import type { Process } from "../../core/kernel/process.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import type { KernelVersion } from "../../core/version.ts";
import type { Module } from "../../core/module/module.ts";
import { HMM_DMIRROR_CMD_SIZE, hmm_dmirror_cmd_bytes, hmm_dmirror_cmd_parse } from "../../drivers/test_hmm/test_hmm_uapi.ts";
import { buildDriver } from "../helpers/build.ts";
import { boot } from "../helpers/kernel.ts";

export const DRIVER = fileURLToPath(new URL("../../drivers/test_hmm/test_hmm.ts", import.meta.url));

/** HMM_BUFFER_SIZE: 1024 pages. */
export const HMM_BUFFER_SIZE = 1024 << 12;
export const NTIMES = 10;
export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

/** Boot `version` (checked for invariants and leaks when the test ends) and load test_hmm. */
export async function bootTestHmm(version: KernelVersion, builtin: boolean): Promise<{ k: Kernel; mod: Module }> {
  const k = await boot({ version });
  const mod = await k.insmod((await buildDriver(DRIVER, version)).ko, { builtin, filename: "test_hmm.ko" });
  return { k, mod };
}

/** A system call's result as the selftest sees it: its return value, or -errno. */
export function sys(fn: () => number | void): number {
  try {
    return fn() ?? 0;
  } catch (e) {
    if (e instanceof KernelError) return -e.errno;
    throw e;
  }
}

/** hmm_open(): open("/dev/hmm_dmirror%d", O_RDWR), the fd or -errno. */
export function hmm_open(p: Process, unit: number): number {
  return sys(() => p.open(`/dev/hmm_dmirror${unit}`, O_RDWR));
}

export interface HmmFixture {
  readonly k: Kernel;
  readonly p: Process;
  readonly fd: number;
  readonly page_size: number;
  readonly page_shift: number;
}

export interface Hmm2Fixture {
  readonly k: Kernel;
  readonly p: Process;
  readonly fd0: number;
  readonly fd1: number;
  readonly page_size: number;
  readonly page_shift: number;
}

/** FIXTURE_SETUP(hmm) for the device-private variant (device 0). */
export function setup_hmm(k: Kernel): HmmFixture {
  const p = k.spawn("hmm-tests");
  cmd_block(p);
  const fd = hmm_open(p, 0);
  expect(fd).toBeGreaterThanOrEqual(0);
  return { k, p, fd, page_size: PAGE_SIZE, page_shift: PAGE_SHIFT };
}

/** FIXTURE_TEARDOWN(hmm): close() must return 0. */
export function teardown_hmm(self: HmmFixture): void {
  expect(sys(() => self.p.close(self.fd))).toBe(0);
}

/** FIXTURE_SETUP(hmm2): devices 0 and 1. */
export function setup_hmm2(k: Kernel): Hmm2Fixture {
  const p = k.spawn("hmm-tests");
  cmd_block(p);
  const fd0 = hmm_open(p, 0);
  expect(fd0).toBeGreaterThanOrEqual(0);
  const fd1 = hmm_open(p, 1);
  expect(fd1).toBeGreaterThanOrEqual(0);
  return { k, p, fd0, fd1, page_size: PAGE_SIZE, page_shift: PAGE_SHIFT };
}

export function teardown_hmm2(self: Hmm2Fixture): void {
  expect(sys(() => self.p.close(self.fd0))).toBe(0);
  expect(sys(() => self.p.close(self.fd1))).toBe(0);
}

/** struct hmm_buffer: ptr is the memory the device works on, mirror the user buffer for its data. */
export interface HmmBuffer {
  ptr: number;
  mirror: number;
  /** What malloc() gave the mirror (free() knows it). */
  mirror_size: number;
  size: number;
  fd: number;
  cpages: number;
  faults: number;
}

/** malloc(size) for the mirror: anonymous memory of the process. */
export function malloc(p: Process, size: number): number {
  return p.mmap(0, Math.ceil(size / PAGE_SIZE) * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
}

/** A buffer whose ptr comes from mmap(NULL, size, prot, flags, fd, 0), with a mirror of `mirrorSize`. */
export function hmm_buffer(p: Process, size: number, prot: number, flags: number, fd = -1, mirrorSize = size): HmmBuffer {
  const mirror = malloc(p, mirrorSize);
  const ptr = p.mmap(0, size, prot, flags, fd, 0);
  return { ptr, mirror, mirror_size: mirrorSize, size, fd, cpages: 0, faults: 0 };
}

/**
 * The command block hmm_dmirror_cmd() passes: its `struct hmm_dmirror_cmd cmd` on the stack,
 * mapped when the fixture is set up (a mapping made later could fill a hole a test punched).
 */
const cmdBlocks = new WeakMap<Process, number>();

function cmd_block(p: Process): number {
  let cmd = cmdBlocks.get(p);
  if (cmd === undefined) cmdBlocks.set(p, (cmd = malloc(p, HMM_DMIRROR_CMD_SIZE)));
  return cmd;
}

/**
 * hmm_dmirror_cmd(): ioctl(fd, request, {addr = buffer->ptr, ptr = buffer->mirror, npages});
 * 0 and cpages/faults copied to the buffer, or -errno.
 */
export function hmm_dmirror_cmd(p: Process, fd: number, request: number, buffer: HmmBuffer, npages: number): number {
  const cmd = cmd_block(p);
  p.write(cmd, hmm_dmirror_cmd_bytes({ addr: buffer.ptr, ptr: buffer.mirror, npages }));
  const ret = sys(() => p.ioctl(fd, request, cmd));
  if (ret) return ret;
  const out = hmm_dmirror_cmd_parse(p.read(cmd, HMM_DMIRROR_CMD_SIZE));
  buffer.cpages = Number(out.cpages);
  buffer.faults = Number(out.faults);
  return 0;
}

/** hmm_buffer_free(): munmap the buffer and free the mirror. */
export function hmm_buffer_free(p: Process, buffer: HmmBuffer): void {
  if (buffer.ptr) p.munmap(buffer.ptr, buffer.size);
  p.munmap(buffer.mirror, Math.ceil(buffer.mirror_size / PAGE_SIZE) * PAGE_SIZE);
}

/** hmm_create_file(): a tmpfs file of `size` bytes (open(O_TMPFILE) in /tmp; a memfd here). */
export function hmm_create_file(p: Process, size: number): number {
  const fd = p.memfd_create("hmm-tests");
  p.ftruncate(fd, size);
  return fd;
}

// ---- int arrays ------------------------------------------------------------------------------

/** The bytes of `count` ints, int k = f(from + k). */
export function ints(count: number, f: (i: number) => number, from = 0): Uint8Array {
  const a = new Int32Array(count);
  for (let k = 0; k < count; k++) a[k] = f(from + k);
  return new Uint8Array(a.buffer);
}

/** for (i = from; i < to; ++i) ptr[i] = f(i); written by the CPU. */
export function fill(p: Process, ptr: number, from: number, to: number, f: (i: number) => number): void {
  p.write(ptr + from * 4, ints(to - from, f, from));
}

/**
 * for (i = from; i < to; ++i) ASSERT_EQ(ptr[i], f(i)); read by the CPU. Reports the first int
 * that differs.
 */
export function expectInts(p: Process, ptr: number, from: number, to: number, f: (i: number) => number): void {
  expectIntsIn(p.read(ptr + from * 4, (to - from) * 4), from, f);
}

/** The same check on bytes already read (they start at int `from`). */
export function expectIntsIn(bytes: Uint8Array, from: number, f: (i: number) => number): void {
  const a = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  for (let k = 0; k < a.length; k++) {
    const i = from + k;
    if (a[k] !== (f(i) | 0)) expect(`ptr[${i}] = ${a[k]}`).toBe(`ptr[${i}] = ${f(i) | 0}`);
  }
}
