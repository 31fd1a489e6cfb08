// No ambient authority inside an isolate (DESIGN principle 3): no process, require, dynamic
// import, timers or host objects; each is tried by a driver that reports what it saw with
// printk. Kernel objects cross the boundary as handles checked for owner, type and liveness:
// a forged, foreign, stale or mistyped handle is refused with kemu's line
//   "kemu: <module>: <function>(): <why>; call refused"
// and the call's error value, and nothing is touched. A module file that is not what the
// builder makes (foreign imports, top-level await, not JavaScript) is refused as malformed
// (-ENOEXEC, as load_module() refuses a bad ELF image) without running any of its code, and no
// module code runs before the license and symbol checks.

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import { buildSource, ko, rewriteKo } from "../helpers/build.ts";
import { boot, insmodError, tainted } from "../helpers/kernel.ts";

const LIMITS = { moduleTimeoutMs: 50, moduleHeap: "16M" } as const;

const HELLO = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => { printk(KERN_INFO + "hello: %d + %d = %d\\n", 40, 2, 42); return 0; });
module_exit(() => {});
`;

/**
 * A driver whose init runs `body` (statements ending in a return) and prints what came of it:
 * "sbx: <value>" or "sbx: threw <Error>: <message>". It catches what it provokes, so it loads.
 */
function attempt(body: string): string {
  return `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
MODULE_LICENSE("GPL");
function sbx_show(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "function") return "function";
  if (typeof v === "object" && v !== null) return Object.prototype.toString.call(v);
  return String(v);
}
function sbx_try(): unknown {
  ${body}
}
module_init(() => {
  let seen: string;
  try {
    seen = sbx_show(sbx_try());
  } catch (e) {
    seen = "threw " + (e as Error).name + ": " + (e as Error).message;
  }
  printk(KERN_INFO + "sbx: %s\\n", seen);
  return 0;
});
module_exit(() => {});
`;
}

/** Load `source` as "sbx", return what it printed; the kernel must be up and fine afterwards. */
async function run(k: Kernel, source: string | Uint8Array): Promise<string[]> {
  const seq = k.log.nextSeq;
  await k.insmod(typeof source === "string" ? await ko("sbx", source) : source);
  const msgs = k.log.messages(seq).filter((l) => l !== "sbx: loading out-of-tree module taints kernel.");
  k.rmmod("sbx");
  await stillFine(k);
  return msgs;
}

/** The kernel is running, consistent, untainted beyond O, and another module works. */
async function stillFine(k: Kernel): Promise<void> {
  expect(k.state).toBe("running");
  expect(k.checkInvariants()).toEqual([]);
  const seq = k.log.nextSeq;
  await k.insmod(await ko("hello", HELLO));
  expect(k.log.messages(seq)).toEqual(["hello: 40 + 2 = 42"]);
  k.rmmod("hello");
}

describe("no ambient authority inside an isolate", () => {
  const CASES: [string, string, string][] = [
    ["process", "return (process as any).exit(1);", "threw ReferenceError: process is not defined"],
    ["process via globalThis", 'return (globalThis as any)["process"];', "undefined"],
    ["require", 'return (0, eval)("require")("node:fs");', "threw ReferenceError: require is not defined"],
    ["module (CommonJS)", 'return (0, eval)("module");', "threw ReferenceError: module is not defined"],
    ["setTimeout", "return setTimeout(() => {}, 0);", "threw ReferenceError: setTimeout is not defined"],
    ["setInterval", "return setInterval(() => {}, 1);", "threw ReferenceError: setInterval is not defined"],
    ["setImmediate", "return (setImmediate as any)(() => {});", "threw ReferenceError: setImmediate is not defined"],
    ["queueMicrotask", "return queueMicrotask(() => {});", "threw ReferenceError: queueMicrotask is not defined"],
    ["console", 'return console.log("hello from the isolate");', "threw ReferenceError: console is not defined"],
    ["fetch", 'return fetch("http://example.com/");', "threw ReferenceError: fetch is not defined"],
    ["Buffer", 'return (0, eval)("Buffer");', "threw ReferenceError: Buffer is not defined"],
    ["performance", "return performance.now();", "threw ReferenceError: performance is not defined"],
    ["the kernel's call function", 'return typeof (globalThis as any).__kemu_kcall + "," + typeof (globalThis as any).__kemu_now + "," + typeof (globalThis as any).__kemu_random;', "undefined,undefined,undefined"],
    // eval and Function work, inside the isolate only.
    ["eval", 'return eval("typeof process + \\",\\" + typeof require + \\",\\" + (6 * 7)");', "undefined,undefined,42"],
    ["Function", 'return new Function("return typeof process + \\",\\" + (this === globalThis)")();', "undefined,true"],
    ["a constructor's constructor", 'return (sbx_show as any).constructor.constructor("return typeof require")();', "undefined"],
  ];
  for (const [what, body, outcome] of CASES) {
    it(`${what}: ${outcome}`, async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      expect(await run(k, attempt(body))).toEqual([`sbx: ${outcome}`]);
      expect(k.tainted()).toBe(tainted("O"));
    });
  }

  it("globals: only ECMAScript's lower-case globals, and no host or isolated-vm classes", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const lower = await run(k, attempt(`
      return Object.getOwnPropertyNames(globalThis).filter((n) => !/^[A-Z]/.test(n)).sort().join(",");`));
    expect(lower).toEqual([
      "sbx: decodeURI,decodeURIComponent,encodeURI,encodeURIComponent,escape,eval,globalThis,isFinite,isNaN,parseFloat,parseInt,undefined,unescape",
    ]);
    const HOST = ["Buffer", "Reference", "ExternalCopy", "Callback", "Isolate", "Context", "Worker", "MessageChannel", "MessagePort",
      "BroadcastChannel", "WebSocket", "XMLHttpRequest", "Request", "Response", "Headers", "Blob", "File", "URL", "EventTarget", "Performance"];
    const upper = await run(k, attempt(`
      const host = ${JSON.stringify(HOST)};
      return Object.getOwnPropertyNames(globalThis).filter((n) => host.includes(n)).join(",") || "none";`));
    expect(upper).toEqual(["sbx: none"]);
  });

  it("no export of kemu/kernel is a host function or object (hand-made module reading the whole namespace)", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const base = await ko("sbx", attempt('return "NAMESPACE";'));
    const file = rewriteKo(base, (img) => {
      img.code = 'import * as sbx_ns from "kemu/kernel";\n' + img.code.replace('return "NAMESPACE";', `
  const bad = [];
  for (const [name, v] of Object.entries(sbx_ns)) {
    if (typeof v === "function" && /\\[native code\\]/.test(Function.prototype.toString.call(v))) bad.push(name);
    else if (typeof v === "object" && v !== null && Object.getPrototypeOf(v) !== Object.prototype) bad.push(name);
  }
  return bad.join(",") || "none";`);
    });
    expect(await run(k, file)).toEqual(["sbx: none"]);
  });

  it('dynamic import("node:fs") is rejected, never resolved', async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const source = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => {
  const spec = ["node", "fs"].join(":");
  import(spec).then(
    (m) => printk(KERN_INFO + "sbx: import resolved: %s\\n", Object.keys(m).join(",")),
    (e) => printk(KERN_INFO + "sbx: import rejected: %s\\n", String(e)),
  );
  printk(KERN_INFO + "sbx: init done\\n");
  return 0;
});
module_exit(() => {});
`;
    expect(await run(k, source)).toEqual(["sbx: init done", "sbx: import rejected: Error: Not supported"]);
  });

  it("work queued as a promise reaction runs under the module's time limit: a loop there is contained", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const source = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
MODULE_LICENSE("GPL");
function sbx_spin(): void { for (;;) {} }
module_init(() => {
  Promise.resolve().then(() => { printk(KERN_INFO + "sbx: reaction runs\\n"); sbx_spin(); });
  printk(KERN_INFO + "sbx: init done\\n");
  return 0;
});
module_exit(() => {});
`;
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("sbx", source));
    expect(err.errno).toBe(14);
    const msgs = k.log.messages(seq);
    expect(msgs.slice(1, 3)).toEqual(["sbx: init done", "sbx: reaction runs"]);
    expect(msgs).toContain("kemu: sbx: killed: did not return within 50 ms");
    expect(k.read("/proc/modules")).toBe("");
    await stillFine(k);
  });

  describe("SharedArrayBuffer, Atomics, WebAssembly", () => {
    it("a SharedArrayBuffer handed to another module arrives as a copy: no memory is shared", async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      const lib = await buildSource("sablib", `
import { MODULE_LICENSE, module_init, module_exit, EXPORT_SYMBOL } from "kemu/kernel";
MODULE_LICENSE("GPL");
let kept: Int32Array | null = null;
export function sab_keep(x: Int32Array): number { kept = x; return kept[0]!; }
export function sab_peek(): number { return kept ? kept[0]! : -1; }
EXPORT_SYMBOL(sab_keep);
EXPORT_SYMBOL(sab_peek);
module_init(() => 0);
module_exit(() => {});
`);
      await k.insmod(lib.ko);
      const seq = k.log.nextSeq;
      await k.insmod(await ko("sabuser", `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
import { sab_keep, sab_peek } from "kemu/extern";
MODULE_LICENSE("GPL");
module_init(() => {
  const shared = new Int32Array(new SharedArrayBuffer(4));
  printk(KERN_INFO + "sabuser: kept %d\\n", sab_keep(shared));
  Atomics.store(shared, 0, 42);
  printk(KERN_INFO + "sabuser: the other module sees %d\\n", sab_peek());
  return 0;
});
module_exit(() => {});
`, { symvers: [lib.symvers] }));
      expect(k.log.messages(seq)).toEqual(["sabuser: kept 0", "sabuser: the other module sees 0"]);
      k.rmmod("sabuser");
      k.rmmod("sablib");
      await stillFine(k);
    });

    it("Atomics.wait() with no time-out is stopped by the module's time limit", async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      const seq = k.log.nextSeq;
      const err = await insmodError(k, await ko("sbx", attempt("return Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);")));
      expect(err.errno).toBe(14);
      expect(k.log.messages(seq)).toContain("kemu: sbx: killed: did not return within 50 ms");
      await stillFine(k);
    });

    it("there is no WebAssembly: its memory would live outside the module's heap limit", async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      const seq = k.log.nextSeq;
      await k.insmod(await ko("sbx", attempt(`
        const mem = new WebAssembly.Memory({ initial: 1024 });
        new Uint8Array(mem.buffer).fill(1);
        return "got " + (mem.buffer.byteLength >> 20) + " MiB";`)));
      expect(k.log.messages(seq).filter((l) => l.startsWith("sbx: "))).toContain("sbx: threw ReferenceError: WebAssembly is not defined");
      k.rmmod("sbx");
      await stillFine(k);
    });
  });

  it("a driver that rewrites its builtins (Object.prototype, JSON, Array) changes nothing outside its isolate", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const out = await run(k, attempt(`
      (Object.prototype as any).polluted = "yes";
      (Array.prototype as any).map = () => { throw new Error("poisoned map"); };
      (JSON as any).stringify = () => "poisoned";
      return "rewritten";`));
    // The shim converts with the poisoned builtins inside the isolate; the kernel is untouched.
    expect(out).toEqual(["sbx: rewritten"]);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect([1, 2].map((x) => x * 2)).toEqual([2, 4]);
    expect(JSON.stringify({ a: 1 })).toBe('{"a":1}');
  });
});

describe("Date and Math.random: the virtual clock and the boot seed", () => {
  const CLOCK = attempt(`
    const r = [Math.random(), Math.random(), Math.random()].map((x) => x.toFixed(15)).join(" ");
    return Date.now() + " " + new Date().toISOString() + " " + r;`);

  async function sample(seed: number, builtin = false): Promise<{ line: string; expectedNow: number }> {
    const k = await boot({ version: "5.0", seed, ...LIMITS });
    const expectedNow = Date.UTC(2019, 2, 3) + Math.floor(k.clock.now() / 1e6);
    const seq = k.log.nextSeq;
    await k.insmod(await ko("sbx", CLOCK, builtin ? { intree: true } : {}), { builtin });
    const line = k.log.messages(seq).filter((l) => l.startsWith("sbx: ") && !l.endsWith("taints kernel."))[0] ?? "";
    k.rmmod("sbx");
    return { line, expectedNow };
  }

  for (const builtin of [false, true]) {
    it(`Date is the kernel's clock and Math.random the boot seed: same seed, same dmesg (${builtin ? "built-in" : "isolated"})`, async () => {
      const a = await sample(7, builtin);
      const b = await sample(7, builtin);
      const c = await sample(8, builtin);
      const [, now, iso, ...rand] = a.line.split(" ");
      expect(Number(now)).toBe(a.expectedNow);
      expect(iso).toBe(new Date(a.expectedNow).toISOString());
      expect(rand).toHaveLength(3);
      expect(b.line).toBe(a.line);
      // Another seed, other numbers; the same clock.
      expect(c.line.split(" ").slice(0, 3)).toEqual(a.line.split(" ").slice(0, 3));
      expect(c.line.split(" ").slice(3)).not.toEqual(rand);
    });
  }
});

describe("handles: forged, foreign, stale, mistyped", () => {
  /** Owns a buffer and hands its handle number out through an export. */
  const OWNER = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, GFP_KERNEL, EXPORT_SYMBOL, kmalloc, kfree, type kbuf } from "kemu/kernel";
MODULE_LICENSE("GPL");
let buf: kbuf | null = null;
export function owner_buf(): number { return buf ? buf.handle : 0; }
EXPORT_SYMBOL(owner_buf);
module_init(() => { buf = kmalloc(64, GFP_KERNEL); printk(KERN_INFO + "owner: buffer %d\\n", buf ? buf.handle : 0); return 0; });
module_exit(() => { kfree(buf); printk(KERN_INFO + "owner: freed %d\\n", buf ? buf.handle : 0); });
`;

  /** A module whose init runs `body` with the usual imports. */
  const misuser = (body: string) => `
import {
  MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, GFP_KERNEL, PLATFORM_DEVID_NONE, IS_ERR,
  kmalloc, kfree, dev_name, devm_kmalloc, devm_add_action, platform_device_register_simple, platform_device_unregister,
  type kbuf, type device, type platform_device,
} from "kemu/kernel";
MODULE_LICENSE("GPL");
function misuse_action(_data: unknown): void {}
module_init(() => {
  ${body}
  return 0;
});
module_exit(() => {});
`;

  const refused = (mod: string, api: string, why: string) => `kemu: ${mod}: ${api}(): ${why}; call refused`;

  it("a forged handle (a number never given out) is refused; int calls get -EINVAL", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const seq = k.log.nextSeq;
    await k.insmod(await ko("misuse", misuser(`
      kfree(424242 as unknown as kbuf);
      kfree(-3 as unknown as kbuf);
      printk(KERN_INFO + "misuse: devm_add_action = %d\\n", devm_add_action(999999 as unknown as device, misuse_action, null));
      printk(KERN_INFO + "misuse: dev_name = [%s]\\n", dev_name({ handle: 777777 } as unknown as device));`)));
    expect(k.log.messages(seq).slice(1)).toEqual([
      refused("misuse", "kfree", "handle 424242 does not exist (expected kbuf)"),
      refused("misuse", "kfree", "number -3 is not a kbuf handle"),
      refused("misuse", "devm_add_action", "handle 999999 does not exist (expected device)"),
      "misuse: devm_add_action = -22",
      refused("misuse", "dev_name", "handle 777777 does not exist (expected device)"),
      "misuse: dev_name = []",
    ]);
    expect(k.tainted()).toBe(tainted("O"));
    k.rmmod("misuse");
    await stillFine(k);
  });

  it("another module's handle (passed through an export) is refused; the owner's buffer is untouched", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const owner = await buildSource("owner", OWNER);
    await k.insmod(owner.ko);
    const h = Number(/^owner: buffer (\d+)$/.exec(k.log.messages(0).find((l) => l.startsWith("owner: buffer")) ?? "")?.[1]);
    expect(h).toBeGreaterThan(0);
    const seq = k.log.nextSeq;
    await k.insmod(await ko("thief", `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, kfree, type kbuf } from "kemu/kernel";
import { owner_buf } from "kemu/extern";
MODULE_LICENSE("GPL");
module_init(() => {
  const h = owner_buf() as number;
  printk(KERN_INFO + "thief: got handle %d\\n", h);
  kfree(h as unknown as kbuf);
  kfree({ handle: h } as unknown as kbuf);
  return 0;
});
module_exit(() => {});
`, { symvers: [owner.symvers] }));
    expect(k.log.messages(seq)).toEqual([
      `thief: got handle ${h}`,
      refused("thief", "kfree", `handle ${h} belongs to owner, not to thief`),
      refused("thief", "kfree", `handle ${h} belongs to owner, not to thief`),
    ]);
    // The buffer is still the owner's and alive; the owner frees it cleanly.
    expect([...k.mm.slab.live].filter((b) => b.owner === "owner").map((b) => b.size)).toEqual([64]);
    k.rmmod("thief");
    k.rmmod("owner");
    expect(k.log.messages(seq).at(-1)).toBe(`owner: freed ${h}`);
    expect([...k.mm.slab.live].filter((b) => b.owner === "owner")).toEqual([]);
    expect(k.tainted()).toBe(tainted("O"));
    await stillFine(k);
  });

  it("a stale handle (kfree twice) is refused: no double free reaches the allocator", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const seq = k.log.nextSeq;
    await k.insmod(await ko("misuse", misuser(`
      const mine = kmalloc(32, GFP_KERNEL)!;
      printk(KERN_INFO + "misuse: buffer %d\\n", mine.handle);
      kfree(mine);
      kfree(mine);
      printk(KERN_INFO + "misuse: done\\n");`)));
    const msgs = k.log.messages(seq).slice(1);
    const h = Number(/^misuse: buffer (\d+)$/.exec(msgs[0] ?? "")?.[1]);
    expect(msgs).toEqual([`misuse: buffer ${h}`, refused("misuse", "kfree", `handle ${h} (kbuf) refers to an object that is gone`), "misuse: done"]);
    // No SLUB "Object already free" report, no taint B.
    expect(k.tainted()).toBe(tainted("O"));
    k.rmmod("misuse");
    await stillFine(k);
  });

  it("a stale device handle (use after platform_device_unregister) is refused", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const seq = k.log.nextSeq;
    await k.insmod(await ko("misuse", misuser(`
      const p = platform_device_register_simple("misuse_dev", PLATFORM_DEVID_NONE, null, 0);
      if (IS_ERR(p)) return p;
      printk(KERN_INFO + "misuse: pdev %d dev %d %s\\n", p.handle, p.dev.handle, dev_name(p.dev));
      platform_device_unregister(p);
      printk(KERN_INFO + "misuse: dev_name after = [%s]\\n", dev_name(p.dev));
      platform_device_unregister(p);
      printk(KERN_INFO + "misuse: done\\n");`)));
    const msgs = k.log.messages(seq).slice(1);
    const m = /^misuse: pdev (\d+) dev (\d+) misuse_dev$/.exec(msgs[0] ?? "");
    expect(m).not.toBeNull();
    const [, p, d] = m!;
    expect(msgs.slice(1)).toEqual([
      refused("misuse", "dev_name", `handle ${d} (device) refers to an object that is gone`),
      "misuse: dev_name after = []",
      refused("misuse", "platform_device_unregister", `handle ${p} (platform_device) refers to an object that is gone`),
      "misuse: done",
    ]);
    expect(k.tainted()).toBe(tainted("O"));
    k.rmmod("misuse");
    await stillFine(k);
  });

  it("a handle of the wrong type (a kbuf where a device is expected) is refused with the call's error value", async () => {
    const k = await boot({ version: "5.0", ...LIMITS });
    const seq = k.log.nextSeq;
    await k.insmod(await ko("misuse", misuser(`
      const mine = kmalloc(32, GFP_KERNEL)!;
      const asDev = mine as unknown as device;
      printk(KERN_INFO + "misuse: buffer %d\\n", mine.handle);
      printk(KERN_INFO + "misuse: dev_name = [%s]\\n", dev_name(asDev));
      printk(KERN_INFO + "misuse: devm_kmalloc = %s\\n", String(devm_kmalloc(asDev, 8, GFP_KERNEL)));
      printk(KERN_INFO + "misuse: devm_add_action = %d\\n", devm_add_action(asDev, misuse_action, null));
      kfree(mine);
      printk(KERN_INFO + "misuse: freed\\n");`)));
    const msgs = k.log.messages(seq).slice(1);
    const h = Number(/^misuse: buffer (\d+)$/.exec(msgs[0] ?? "")?.[1]);
    expect(msgs).toEqual([
      `misuse: buffer ${h}`,
      refused("misuse", "dev_name", `handle ${h} is a kbuf, not a device`),
      "misuse: dev_name = []",
      refused("misuse", "devm_kmalloc", `handle ${h} is a kbuf, not a device`),
      // devm_kmalloc() returns NULL when it fails, never an ERR_PTR.
      "misuse: devm_kmalloc = null",
      refused("misuse", "devm_add_action", `handle ${h} is a kbuf, not a device`),
      "misuse: devm_add_action = -22",
      // The buffer was not touched: it is freed once, cleanly.
      "misuse: freed",
    ]);
    expect([...k.mm.slab.live].filter((b) => b.owner === "misuse")).toEqual([]);
    expect(k.tainted()).toBe(tainted("O"));
    k.rmmod("misuse");
    await stillFine(k);
  });
});

describe("module files the builder would not make", () => {
  const TOP = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
MODULE_LICENSE("GPL");
printk(KERN_INFO + "hm: top level ran\\n");
module_init(() => { printk(KERN_INFO + "hm: init ran\\n"); return 0; });
module_exit(() => {});
`;

  // What to do to the code, and kemu's line about it.
  const MALFORMED: [string, (code: string) => string, RegExp][] = [
    ["imports node:fs", (code) => 'import { readFileSync } from "node:fs";\n' + code + "\nvoid readFileSync;\n", /^kemu: hm: module code imports 'node:fs'; a module may import only kemu\/kernel$/],
    ["imports a relative file", (code) => 'import { helper } from "./helper.mjs";\n' + code + "\nvoid helper;\n", /^kemu: hm: module code imports '\.\/helper\.mjs'; a module may import only kemu\/kernel$/],
    ["uses a top-level await", (code) => code + "\nawait Promise.resolve();\n", /^kemu: hm: module code awaits at its top level \(line \d+, column 0\)$/],
    ["is not JavaScript", (code) => code + "\n}} this is not javascript (\n", /^kemu: hm: module code does not compile: Unexpected "}" \(line \d+, column 0\)$/],
  ];

  for (const builtin of [false, true]) {
    for (const [what, change, line] of MALFORMED) {
      it(`code that ${what} is refused with ENOEXEC, none of it runs (${builtin ? "built-in" : "isolated"})`, async () => {
        const k = await boot({ version: "5.0", ...LIMITS });
        const good = await ko("hm", TOP, builtin ? { intree: true } : {});
        const bad = rewriteKo(good, (img) => void (img.code = change(img.code)));
        const seq = k.log.nextSeq;
        const err = await insmodError(k, bad, { builtin });
        expect(err.errno).toBe(8);
        expect(err.message).toBe("insmod: ERROR: could not insert module module.ko: Invalid module format");
        const msgs = k.log.messages(seq);
        expect(msgs.filter((l) => l.startsWith("kemu: "))).toEqual([expect.stringMatching(line)]);
        expect(msgs.filter((l) => l.startsWith("hm: ") && !l.endsWith("taints kernel."))).toEqual([]);
        expect(msgs.filter((l) => /^(Oops|RIP|Call Trace)/.test(l))).toEqual([]);
        expect(k.tainted()).not.toMatch(/D/);
        expect(k.read("/proc/modules")).toBe("");
        // The same module, as built, loads and runs.
        const seq2 = k.log.nextSeq;
        await k.insmod(good, { builtin });
        expect(k.log.messages(seq2).filter((l) => !l.endsWith("taints kernel."))).toEqual(["hm: top level ran", "hm: init ran"]);
        k.rmmod("hm");
        expect(k.checkInvariants()).toEqual([]);
      });
    }
  }
});

describe("no driver code runs before the license and symbol checks", () => {
  const LOUD = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, devm_add_action, type device } from "kemu/kernel";
MODULE_LICENSE("GPL");
printk(KERN_INFO + "loud: top level ran\\n");
export function loud_attach(dev: device): number { return devm_add_action(dev, () => {}, null); }
module_init(() => { printk(KERN_INFO + "loud: init ran\\n"); return 0; });
module_exit(() => {});
`;

  for (const builtin of [false, true]) {
    const how = builtin ? "built-in" : "isolated";
    // Built-in modules are in-tree builds: no out-of-tree taint.
    const oot = builtin ? [] : ["loud: loading out-of-tree module taints kernel."];

    it(`an Unknown symbol: only the loader's lines, none of the module's (${how})`, async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      const file = rewriteKo(await ko("loud", LOUD, { intree: builtin }), (img) => void img.undefinedSymbols.push({ name: "no_such_symbol", weak: false }));
      const seq = k.log.nextSeq;
      const err = await insmodError(k, file, { builtin });
      expect(err.errno).toBe(2);
      expect(err.message).toBe("insmod: ERROR: could not insert module module.ko: Unknown symbol in module");
      expect(k.log.messages(seq)).toEqual([...oot, "loud: Unknown symbol no_such_symbol (err -2)"]);
    });

    it(`a GPL-only symbol in a module whose modinfo says Proprietary: refused before any code runs (${how})`, async () => {
      const k = await boot({ version: "5.0", ...LIMITS });
      // The code still calls MODULE_LICENSE("GPL"): only .modinfo counts, read without running anything.
      const file = rewriteKo(await ko("loud", LOUD, { intree: builtin }), (img) => void (img.modinfo = img.modinfo.replace("license=GPL", "license=Proprietary")));
      const seq = k.log.nextSeq;
      const err = await insmodError(k, file, { builtin });
      expect(err.errno).toBe(2);
      expect(k.log.messages(seq)).toEqual([
        ...oot,
        "loud: module license 'Proprietary' taints kernel.",
        "Disabling lock debugging due to kernel taint",
        "loud: Unknown symbol devm_add_action (err -2)",
      ]);
      expect(k.tainted()).toBe(builtin ? "Tainted: P                 " : "Tainted: P           O     ");
    });
  }
});
