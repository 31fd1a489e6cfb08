// lib/vsprintf.c pointer() of 4.15-5.1 as modules reach it through printk(): NULL pointers,
// %pK/%px, and %pf/%ps of a module's function.

import { describe, expect, it } from "vitest";
import { vsprintf, type VsprintfEnv } from "../../core/lib/vsprintf.ts";
import { buildSource } from "../helpers/build.ts";
import { boot, messages } from "../helpers/kernel.ts";

const env: VsprintfEnv = {
  hashPointer: (v) => `hash(${v.toString(16)})`,
  resource: () => "[mem 0x1000-0x1fff]",
  symbol: (v) => (typeof v === "function" ? `${v.name} [mymod]` : null),
};

describe("vsprintf %p", () => {
  // 4.20 pointer(): "if (!ptr && *fmt != 'K' && *fmt != 'x')" -> string(buf, end, "(null)",
  // spec) with field_width = 2 * sizeof(void *) when the format gives none.
  it("a NULL pointer is (null), right-aligned to 16 columns, for %p, %pR, %pr, %pf, %ps and %pS", () => {
    for (const spec of ["%p", "%pR", "%pr", "%pf", "%ps", "%pS"]) {
      expect(vsprintf(`[${spec}]`, [null], env), spec).toBe("[          (null)]");
      expect(vsprintf(`[${spec}]`, [0], env), `${spec} of 0`).toBe("[          (null)]");
    }
  });

  it("a NULL pointer takes the format's width, flags and precision as a string does", () => {
    expect(vsprintf("[%-p]", [null], env)).toBe("[(null)          ]");
    expect(vsprintf("[%20p]", [null], env)).toBe("[              (null)]");
    expect(vsprintf("[%2p]", [null], env)).toBe("[(null)]");
    expect(vsprintf("[%*p]", [-8, null], env)).toBe("[(null)  ]");
    expect(vsprintf("[%.3p]", [null], env)).toBe("[             (nu]");
  });

  it("%px prints NULL as zeros and %pK hashes it like any pointer", () => {
    expect(vsprintf("%px", [null], env)).toBe("0000000000000000");
    expect(vsprintf("%pK", [null], env)).toBe("hash(0)");
    expect(vsprintf("%px %pK %p", [0x1234, 0x1234, 0x1234], env)).toBe("0000000000001234 hash(1234) hash(1234)");
  });

  it("%pf/%ps print what the environment names the function; an address that is none is 0x%lx", () => {
    function my_handler() {}
    expect(vsprintf("%pf|%ps|%pS", [my_handler, my_handler, my_handler], env)).toBe(
      "my_handler [mymod]|my_handler [mymod]|my_handler [mymod]",
    );
    expect(vsprintf("%ps", [0xffffffffa0001234n], env)).toBe("0xffffffffa0001234");
    expect(vsprintf("[%-24ps]", [my_handler], env)).toBe("[my_handler [mymod]      ]");
  });
});

describe("printk %pf from a module", () => {
  it("a module's own function prints as name [module]; NULL as (null)", async () => {
    const k = await boot({ version: "4.20" });
    const src = [
      'import * as k from "kemu/kernel";',
      'k.MODULE_LICENSE("GPL");',
      "function pf_handler() { return 0; }",
      'k.module_init(() => { k.printk(k.KERN_INFO + "pfmod: %pf %ps|%p|\\n", pf_handler, pf_handler, null); return 0; });',
      "k.module_exit(() => {});",
    ].join("\n");
    const r = await buildSource("pfmod", src, { kernel: "4.20" });
    const seq = k.log.nextSeq;
    await k.insmod(r.ko);
    expect(messages(k, seq)).toEqual([
      "pfmod: loading out-of-tree module taints kernel.",
      "pfmod: pf_handler [pfmod] pf_handler [pfmod]|          (null)|",
    ]);
    k.rmmod("pfmod");
  });
});
