// WARN_ON(), WARN() and WARN_ONCE() as modules use them (include/asm-generic/bug.h, x86 __WARN_FLAGS): the
// report when the condition holds, taint W, and the condition back.
//
// WARN_ON() traps (ud2) to report_bug() and needs no exported symbol; WARN() prints its message
// through __warn_printk() (kernel/panic.c, EXPORT_SYMBOL since 4.15) first. The kernel does not
// see a module's source file and line: the WARNING line names the module's object and the
// module function the kernel is in.

import { vsprintf } from "../../lib/vsprintf.ts";
import { defineApis, type CallCtx } from "../api.ts";

/** Where a module's WARN is, for the WARNING line: its object and the function the kernel is in. */
export function warnSite(c: CallCtx): { file: string; func: string } {
  return { file: `${c.mod.name}.ko`, func: c.mod.callees.at(-1) ?? `[${c.mod.name}]` };
}

/** A module's format and arguments as text, %p hashed (no %pR/%ps lookups, unlike printk's). */
export function moduleSprintf(c: CallCtx, fmt: string, args: unknown[]): string {
  return vsprintf(fmt, args, { hashPointer: (v) => c.k.hashPointer(v), resource: () => null, symbol: () => null });
}

/** The WARN_ONCE() formats a module has reported: its `static bool __warned`s, which go with it. */
const warnedOnce = new WeakMap<object, Set<string>>();

export const BUG_APIS = defineApis([
  {
    name: "WARN_ON", symbols: [], params: ["bool"], ret: "bool", proto: "#define WARN_ON(condition) ({ int __ret_warn_on = !!(condition); if (unlikely(__ret_warn_on)) __WARN(); unlikely(__ret_warn_on); })",
    impl: (c: CallCtx, cond: boolean) => {
      if (cond) c.k.warn(warnSite(c), null);
      return cond;
    },
  },
  {
    name: "WARN", symbols: ["__warn_printk"], params: ["bool", "str", "...any"], ret: "bool", proto: "#define WARN(condition, format...) ({ int __ret_warn_on = !!(condition); if (unlikely(__ret_warn_on)) __WARN_printf(format); unlikely(__ret_warn_on); })",
    impl: (c: CallCtx, cond: boolean, fmt: string, ...args: unknown[]) => {
      if (cond) c.k.warn(warnSite(c), moduleSprintf(c, fmt, args));
      return cond;
    },
  },
  {
    // Once per call site in C (a static flag in the module's .data); kemu tells sites apart by
    // their format string.
    name: "WARN_ONCE", symbols: ["__warn_printk"], params: ["bool", "str", "...any"], ret: "bool",
    proto: "#define WARN_ONCE(condition, format...) ({ static bool __section(.data.once) __warned; int __ret_warn_once = !!(condition); if (unlikely(__ret_warn_once && !__warned)) { __warned = true; WARN(1, format); } unlikely(__ret_warn_once); })",
    impl: (c: CallCtx, cond: boolean, fmt: string, ...args: unknown[]) => {
      if (!cond) return cond;
      let seen = warnedOnce.get(c.mod);
      if (!seen) warnedOnce.set(c.mod, (seen = new Set()));
      if (!seen.has(fmt)) {
        seen.add(fmt);
        c.k.warn(warnSite(c), moduleSprintf(c, fmt, args));
      }
      return cond;
    },
  },
]);
