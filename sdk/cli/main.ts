// kemu: the command-line entry point. `kemu COMMAND --help` explains each command.

import { KernelError } from "../../core/errno.ts";
import { bench } from "./bench.ts";
import { bootCommand } from "./boot.ts";
import { buildCommand } from "./build.ts";
import { checkCommand } from "./check.ts";
import { UsageError, type Command } from "./command.ts";
import { demo } from "./demo.ts";
import { modinfoCommand } from "./modinfo.ts";
import { modulesCommand } from "./modules.ts";
import { newCommand } from "./new.ts";
import { shellCommand } from "./shell.ts";

const COMMANDS: readonly Command[] = [bootCommand, buildCommand, modulesCommand, shellCommand, modinfoCommand, checkCommand, newCommand, bench, demo];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: kemu <command> [options]",
    "",
    "kemu emulates the Linux 4.19-5.0 memory-management subsystem (iomem, memmap, ZONE_DEVICE,",
    "devm_memremap_pages, HMM) and its module loader, with kernel-exact messages; drivers are",
    "TypeScript modules, each loaded into its own isolate.",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `kemu <command> --help` for a command's options.",
    "",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write(topic ? topic.help : usage());
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`kemu: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(cmd.help);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`kemu ${e.message}\nRun \`kemu ${cmd.name} --help\` for usage.\n`);
      return 2;
    }
    if (e instanceof KernelError) {
      process.stderr.write(`kemu ${cmd.name}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

process.exitCode = await main(process.argv.slice(2));
