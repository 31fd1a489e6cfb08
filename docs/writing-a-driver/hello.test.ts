// docs/writing-a-driver/hello.test.ts
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { boot, insmodDriver, messages } from "../../sdk/testing/index.ts"; // out of tree: "kemu/testing"

const HELLO = fileURLToPath(new URL("hello.ts", import.meta.url));

describe("hello", () => {
  for (const version of ["4.20", "5.0"] as const) {
    it(`binds its device at insmod and unbinds it at rmmod (${version})`, async () => {
      const k = await boot({ version });

      let seq = k.log.nextSeq;
      await insmodDriver(k, HELLO);
      expect(messages(k, seq)).toEqual([
        "hello: loading out-of-tree module taints kernel.",
        "hello: init",
        "hello hello: probed, 64 bytes of state",
      ]);
      expect(k.read("/proc/modules")).toMatch(/^hello \d+ 0 - Live 0x[0-9a-f]{16} \(O\)$/m);
      expect(k.tainted()).toBe("Tainted: G           O     ");

      seq = k.log.nextSeq;
      k.rmmod("hello");
      expect(messages(k, seq)).toEqual(["hello hello: removed", "hello: exit"]);
      expect(k.read("/proc/modules")).toBe("");
      // boot() checks the invariants and that nothing leaked when the test ends.
    });
  }
});
