// Test helpers: boot() and messages() are the SDK's (kemu/testing); the rest are for
// kemu's own suites.

import { expect } from "vitest";
import { Kernel } from "../../core/kernel.ts";
import { ConfigError, type BootConfig } from "../../core/config.ts";
import { KernelError } from "../../core/errno.ts";
import type { InsmodOptions } from "../../core/module/loader.ts";

export { boot, messages, type BootOptions } from "../../sdk/testing/index.ts";

/** The error a promise rejects with (the test fails if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail("expected a failure"),
    (e: unknown) => e,
  );
}

/** An insmod that must fail: its KernelError (errno and insmod's message). */
export async function insmodError(k: Kernel, file: Uint8Array, opts: InsmodOptions = {}): Promise<KernelError> {
  const err = await k.insmod(file, opts).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, "insmod should have failed").toBeInstanceOf(KernelError);
  return err as KernelError;
}

/** rmmod's KernelError, or null when the module was removed. */
export function rmmodError(k: Kernel, name: string, force = false): KernelError | null {
  try {
    k.rmmod(name, { force });
    return null;
  } catch (e) {
    expect(e, `rmmod${force ? " -f" : ""} ${name}`).toBeInstanceOf(KernelError);
    return e as KernelError;
  }
}

/** Every printk line since `since` with its level, as `dmesg -r` prints it without the
 *  timestamp: "<4>text". A record of several lines gives one entry per line. */
export function levelled(k: Kernel, since = 0): string[] {
  const out: string[] = [];
  for (const r of k.log.records(since)) {
    for (const line of r.text.replace(/\n$/, "").split("\n")) out.push(`<${r.level}>${line}`);
  }
  return out;
}

/** taint_flags[] of 4.19-5.0 (TAINT_FLAGS_COUNT 18), one letter per bit from bit 0. */
const TAINT_LETTERS = "PFSRMBUDAWCIOELKXT";

/** print_tainted() with the letters in `letters` set: "Tainted: " and a column per flag,
 *  'G' in the first when P is clear, a space for any other clear flag. */
export function tainted(letters: string): string {
  return "Tainted: " + [...TAINT_LETTERS].map((c, i) => (letters.includes(c) ? c : i === 0 ? "G" : " ")).join("");
}

/** /proc/modules with the size and the address (both layout details) replaced. */
export function procModules(k: Kernel): string {
  return k.read("/proc/modules").replace(/^(\S+) \d+ /gm, "$1 SIZE ").replace(/ 0x[0-9a-f]{16}/g, " ADDR");
}

/** The size /proc/modules gives module `name`. */
export function moduleSize(k: Kernel, name: string): number {
  const m = new RegExp(`^${name} (\\d+) `, "m").exec(k.read("/proc/modules"));
  if (!m) throw new Error(`${name} is not in /proc/modules`);
  return Number(m[1]);
}

/** One lsmod line as kmod prints it: printf("%-19s %8ld  %d", name, size, refcnt), then
 *  " holder,holder" when there are holders. */
export function lsmodLine(k: Kernel, name: string, refcnt: number, holders = ""): string {
  return `${name.padEnd(19)} ${String(moduleSize(k, name)).padStart(8)}  ${refcnt}${holders ? " " + holders : ""}`;
}

/**
 * Boot `cfg`, which must fail: the promise Kernel.boot() returned rejects with a ConfigError.
 * (Should it boot after all, the kernel is shut down and the test fails.)
 */
export async function bootError(cfg: unknown): Promise<ConfigError> {
  const outcome = await Kernel.boot(cfg as BootConfig).then(
    async (k) => {
      await k.shutdown();
      return new Error(`booted with ${JSON.stringify(cfg)}`);
    },
    (e: unknown) => e,
  );
  expect(outcome, "Kernel.boot should have failed").toBeInstanceOf(ConfigError);
  return outcome as ConfigError;
}
