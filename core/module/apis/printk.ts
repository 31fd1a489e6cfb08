// printk() and the dev_printk() family as modules call them.

import { vsprintf } from "../../lib/vsprintf.ts";
import { symbolString } from "../marshal.ts";
import { formatResource, Resource } from "../../mm/resource.ts";
import { devPrefix, type Device } from "../../base/device.ts";
import { defineApis, type CallCtx } from "../api.ts";

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
]);
