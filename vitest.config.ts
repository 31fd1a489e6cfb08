import { defineConfig } from "vitest/config";

// isolated-vm needs --no-node-snapshot in every process that loads it; worker
// threads cannot take that flag, so tests run in forked processes.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "docs/**/*.test.ts"],
    pool: "forks",
    execArgv: ["--no-node-snapshot"],
    testTimeout: 30_000,
    // `kemu modules` first: build/drivers from the sources under test.
    globalSetup: ["test/global-setup.ts"],
  },
});
