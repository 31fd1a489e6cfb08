// A module's printk(): %pR / %pr of a resource it holds (it passes the kernel's object back by
// its handle) and of one it filled in itself.

import { describe, expect, it } from "vitest";
import { ko } from "../helpers/build.ts";
import { boot } from "../helpers/kernel.ts";

const SOURCE = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO, request_mem_region, release_mem_region } from "kemu/kernel";
MODULE_LICENSE("GPL");
const START = 0x3000000000, SIZE = 0x1000;
module_init(() => {
  const res = request_mem_region(START, SIZE, "printk_test");
  if (!res) return -16;
  printk(KERN_INFO + "held: %pR, raw %pr\\n", res, res);
  printk(KERN_INFO + "own: %pR\\n", { start: 0x1000, end: 0x1fff, flags: 0x200 });
  printk(KERN_INFO + "not one: %pR\\n", { handle: 999999 });
  return 0;
});
module_exit(() => release_mem_region(START, SIZE));
`;

describe("a module's printk", () => {
  it("formats %pR and %pr of a kernel resource it holds, of its own struct, and refuses a stray handle", async () => {
    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    await k.insmod(await ko("printk_test", SOURCE));
    expect(k.log.messages(seq).slice(1)).toEqual([
      "held: [mem 0x3000000000-0x3000000fff], raw [mem 0x3000000000-0x3000000fff flags 0x80000200]",
      "own: [mem 0x00001000-0x00001fff]",
      "not one: [??? invalid]",
    ]);
    k.rmmod("printk_test");
  });
});
