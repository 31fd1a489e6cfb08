// WARN_ON(), WARN() and WARN_ONCE() from a module: the kernel's WARNING report naming the
// module, taint W, the condition returned; WARN_ONCE() reports once per site (its static flag
// lives in the module, so a new load of the module warns again).

import { describe, expect, it } from "vitest";
import { ko } from "../helpers/build.ts";
import { boot } from "../helpers/kernel.ts";

const SRC = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, WARN, WARN_ONCE } from "kemu/kernel";
MODULE_LICENSE("GPL");
function check(n: number): void {
  const r = WARN_ONCE(n > 0, "warny: n is %d\\n", n);
  printk(KERN_INFO + "warny: WARN_ONCE gave %d\\n", r ? 1 : 0);
}
module_init(() => {
  check(0);
  check(1);
  check(2);
  printk(KERN_INFO + "warny: WARN gave %d\\n", WARN(true, "warny: plain %s\\n", "warn") ? 1 : 0);
  return 0;
});
module_exit(() => {});
`;

describe("WARN_ONCE from a module", () => {
  it("reports the first time its condition holds only, returns the condition every time, and again after a reload", async () => {
    const k = await boot({ version: "5.0" });
    const file = await ko("warny", SRC, { kernel: "5.0" });
    for (let load = 0; load < 2; load++) {
      const seq = k.log.nextSeq;
      await k.insmod(file);
      const msgs = k.log.messages(seq);
      expect(msgs.filter((m) => m.startsWith("warny:") && !m.includes("taints kernel"))).toEqual([
        "warny: WARN_ONCE gave 0",
        "warny: n is 1",
        "warny: WARN_ONCE gave 1",
        "warny: WARN_ONCE gave 1",
        "warny: plain warn",
        "warny: WARN gave 1",
      ]);
      expect(msgs.filter((m) => m.startsWith("WARNING: CPU: 0 PID: "))).toHaveLength(2);
      expect(msgs.filter((m) => m === "------------[ cut here ]------------")).toHaveLength(2);
      expect(msgs.filter((m) => m === "RIP: 0010:init_module [warny]")).toHaveLength(2);
      k.rmmod("warny");
    }
    expect(k.tainted()).toContain("W");
  });
});
