// kemu demo (npm start): boot a 5.0 kernel with persistent memory and show what it did.

import { Kernel } from "../../core/kernel.ts";
import type { Command } from "./command.ts";

export const demo: Command = {
  name: "demo",
  summary: "the demonstration that `npm start` runs",
  help: `Usage: kemu demo

Boot a Linux 5.0 kernel with 1G of RAM and a 4G persistent-memory region, then print its
kernel log and /proc/iomem. Runs on Node ${process.versions.node}.
`,
  async run() {
    process.stdout.write(`kemu on Node ${process.version}\n\n`);
    const k = await Kernel.boot({ version: "5.0", memory: "1G", pmem: [{ size: "4G" }] });
    process.stdout.write("$ dmesg\n" + k.dmesg() + "\n$ cat /proc/iomem\n" + k.read("/proc/iomem"));
    await k.shutdown();
    return 0;
  },
};
