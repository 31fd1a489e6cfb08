// printk() and the dev_printk() family as modules call them.

import { vsprintf } from "../../lib/vsprintf.ts";
import { symbolString } from "../marshal.ts";
import { formatResource, Resource } from "../../mm/resource.ts";
import { devPrefix, type Device } from "../../base/device.ts";
import { defineApis, type CallCtx } from "../api.ts";
import { Ratelimit } from "../../lib/ratelimit.ts";

function format(c: CallCtx, fmt: string, args: unknown[]): string {
  return vsprintf(fmt, args, {
    hashPointer: (v) => c.k.hashPointer(v),
    resource: (v, raw) => {
      if (!v || typeof v !== "object") return null;
      // A kernel resource the module holds arrives as its handle.
      const h = (v as { handle?: unknown }).handle;
      if (h !== undefined) {
        try {
          return formatResource(c.k.modules.handles.get<Resource>(c.mod.name, h, "resource"), raw);
        } catch {
          return null;
        }
      }
      const r = v as { start?: unknown; end?: unknown; flags?: unknown };
      if (typeof r.start !== "number" || typeof r.end !== "number") return null;
      return formatResource(new Resource(r.start, r.end, null, typeof r.flags === "number" ? r.flags : 0x200), raw);
    },
    // A module's function arrives as [id, name]; a kernel function as itself.
    symbol: (v) => {
      if (typeof v === "function") return c.k.symbolName(v);
      const name = c.mod.marshal?.fnName(v) ?? null;
      return name === null ? null : symbolString(name, c.mod.name);
    },
  });
}

/** printk(fmt, ...): the text with its KERN_ prefix; returns the characters printed. */
function printk(c: CallCtx, fmt: string, ...args: unknown[]): number {
  const text = format(c, fmt, args);
  c.k.printk(text);
  return text.replace(/^(\x01.)+/, "").length;
}

const LEVELS: [string, string, string][] = [
  ["pr_emerg", "_dev_emerg", "\x010"],
  ["pr_alert", "_dev_alert", "\x011"],
  ["pr_crit", "_dev_crit", "\x012"],
  ["pr_err", "_dev_err", "\x013"],
  ["pr_warn", "_dev_warn", "\x014"],
  ["pr_notice", "_dev_notice", "\x015"],
  ["pr_info", "_dev_info", "\x016"],
];

/** The DEFINE_RATELIMIT_STATE of each dev_*_ratelimited() call site: per module and format. */
const callSites = new WeakMap<object, Map<string, Ratelimit>>();

function ratelimited(c: CallCtx, fmt: string): boolean {
  let sites = callSites.get(c.mod);
  if (!sites) callSites.set(c.mod, (sites = new Map()));
  let rs = sites.get(fmt);
  if (!rs) sites.set(fmt, (rs = new Ratelimit()));
  // __ratelimit() names the function it is in; kemu knows the module function it called.
  const func = (c.mod.callees.at(-1) ?? c.mod.name).replace(/ \[.*\]$/, "");
  return rs.allow(c.k.clock.jiffies, func, (t) => c.k.printk(t));
}

export const PRINTK_APIS = defineApis([
  { name: "printk", symbols: ["printk"], params: ["str", "...any"], ret: "int", proto: "int printk(const char *fmt, ...)", impl: printk },
  ...LEVELS.map(([pr, , level]) => ({
    name: pr,
    symbols: ["printk"],
    params: ["str", "...any"],
    ret: "int",
    proto: `#define ${pr}(fmt, ...) printk(KERN_${pr.slice(3).toUpperCase()} pr_fmt(fmt), ##__VA_ARGS__)`,
    impl: (c: CallCtx, fmt: string, ...args: unknown[]) => printk(c, level + fmt, ...args),
  })),
  { name: "pr_cont", symbols: ["printk"], params: ["str", "...any"], ret: "int", proto: "#define pr_cont(fmt, ...) printk(KERN_CONT fmt, ##__VA_ARGS__)", impl: (c: CallCtx, fmt: string, ...a: unknown[]) => printk(c, "\x01c" + fmt, ...a) },
  ...LEVELS.map(([pr, sym, level]) => ({
    name: `dev_${pr.slice(3)}`,
    symbols: [sym],
    params: ["o:device", "str", "...any"],
    ret: "void",
    proto: `void ${sym}(const struct device *dev, const char *fmt, ...)`,
    impl: (c: CallCtx, dev: Device, fmt: string, ...args: unknown[]) => {
      c.k.printk(level + devPrefix(dev) + format(c, fmt, args));
    },
  })),
  // include/linux/device.h dev_level_ratelimited(): a static ratelimit state per call site.
  ...LEVELS.map(([pr, sym, level]) => ({
    name: `dev_${pr.slice(3)}_ratelimited`,
    symbols: [sym, "___ratelimit"],
    params: ["o:device", "str", "...any"],
    ret: "void",
    proto: `#define dev_${pr.slice(3)}_ratelimited(dev, fmt, ...) dev_level_ratelimited(dev_${pr.slice(3)}, dev, fmt, ##__VA_ARGS__)`,
    impl: (c: CallCtx, dev: Device, fmt: string, ...args: unknown[]) => {
      if (ratelimited(c, fmt)) c.k.printk(level + devPrefix(dev) + format(c, fmt, args));
    },
  })),
]);
