import { describe, expect, it } from "vitest";
import { boot } from "../helpers/kernel.ts";

describe("boot", () => {
  it("prints the banner of the configured version and a zero timestamp first", async () => {
    const k = await boot({ version: "4.20" });
    const first = k.dmesg().split("\n")[0];
    expect(first).toBe("[    0.000000] Linux version 4.20.0 (kemu@kemu) (kemu emulator) #1 SMP Sun Dec 23 22:00:00 UTC 2018");
    expect(k.tainted()).toBe("Not tainted");
  });
});
