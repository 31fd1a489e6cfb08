// kemu shell: a booted kernel and a prompt with the module tools (insmod, rmmod, modprobe,
// lsmod, modinfo), dmesg, and cat/ls of /proc, /sys and /dev. Lines come from the terminal
// (with a prompt and history) or from a pipe, so a file of commands is a script.

import { createInterface } from "node:readline";
import { KernelError } from "../../core/errno.ts";
import { Kernel } from "../../core/kernel.ts";
import { BuildError } from "../build/build.ts";
import { machineConfig, MACHINE_HELP, MACHINE_OPTIONS } from "./boot.ts";
import { parse, type Command } from "./command.ts";
import { moduleFile } from "./driver-file.ts";
import { modinfoCommand } from "./modinfo.ts";

const HELP = `Usage: kemu shell [options]

Boot an emulated kernel and read commands, one per line: from the terminal with a
"kemu# " prompt and history, or from a pipe as a script, e.g.
  printf 'modprobe gpu_test\\nlsmod\\n' | npx kemu shell
The kernel shuts down at the end of input or at 'exit'. Type 'help' for the commands.

Options:
${MACHINE_HELP}  -h, --help           this help

Exit status: 0 when every command succeeded, 1 when one failed (its message is on stderr),
2 for bad usage.
`;

/** One shell command: its synopsis for `help`, and what it does. */
interface Builtin {
  usage: string;
  what: string;
  run(sh: Shell, args: string[]): Promise<void> | void;
}

/** A command's failure: its message goes to stderr, and the shell goes on. */
class ShellError extends Error {}

const BUILTINS: Record<string, Builtin> = {
  help: {
    usage: "help [COMMAND]",
    what: "list the commands, or show one",
    run(sh, args) {
      if (args[0]) {
        const b = BUILTINS[args[0]];
        if (!b) throw new ShellError(`help: no such command: ${args[0]}`);
        sh.out(`${b.usage}\n    ${b.what}\n`);
        return;
      }
      for (const b of Object.values(BUILTINS)) sh.out(`  ${b.usage.padEnd(30)} ${b.what}\n`);
    },
  },
  insmod: {
    usage: "insmod [--builtin] FILE",
    what: "load a module: a built .ko, or a driver's .ts source (built first)",
    async run(sh, args) {
      const builtin = args[0] === "--builtin";
      const file = args[builtin ? 1 : 0];
      if (!file || args.length > (builtin ? 2 : 1)) throw new ShellError("insmod: usage: insmod [--builtin] FILE");
      const k = sh.k;
      const m = await moduleFile(file, { kernel: k.config.version, symvers: sh.symvers });
      for (const w of m.warnings) sh.err(`${w}\n`);
      await k.insmod(m.file, { filename: m.filename, builtin });
      if (m.symvers) sh.symvers.push(m.symvers);
    },
  },
  rmmod: {
    usage: "rmmod [-f] NAME...",
    what: "unload modules",
    run(sh, args) {
      const force = args[0] === "-f";
      const names = force ? args.slice(1) : args;
      if (!names.length) throw new ShellError("rmmod: ERROR: missing module name.");
      for (const n of names) sh.k.rmmod(n, { force });
    },
  },
  modprobe: {
    usage: "modprobe NAME|ALIAS",
    what: "load an in-tree module and what it depends on",
    async run(sh, args) {
      if (args.length !== 1) throw new ShellError("modprobe: ERROR: missing module name.");
      await sh.k.modprobe(args[0]!);
    },
  },
  lsmod: {
    usage: "lsmod",
    what: "the loaded modules, as lsmod shows /proc/modules",
    run(sh) {
      sh.out(lsmod(sh.k.read("/proc/modules")));
    },
  },
  modinfo: {
    usage: "modinfo [options] FILE.ko",
    what: "a module file's .modinfo (see kemu modinfo --help)",
    async run(_sh, args) {
      if ((await modinfoCommand.run(args)) !== 0) throw new ShellError("");
    },
  },
  dmesg: {
    usage: "dmesg",
    what: "the kernel log",
    run(sh) {
      sh.out(sh.k.dmesg());
    },
  },
  cat: {
    usage: "cat FILE...",
    what: "a /proc or /sys file",
    run(sh, args) {
      if (!args.length) throw new ShellError("cat: missing operand");
      for (const f of args) sh.out(sh.k.read(f));
    },
  },
  ls: {
    usage: "ls [/dev|/proc]",
    what: "the device nodes, or the files cat can read",
    run(sh, args) {
      const dir = (args[0] ?? "/dev").replace(/\/$/, "");
      if (dir === "/dev") sh.out(sh.k.devtmpfs.list().join("\n") + "\n");
      else if (dir === "/proc" || dir === "/sys") sh.out(sh.k.proc.paths().filter((p) => p.startsWith(dir + "/")).join("\n") + "\n");
      else throw new ShellError(`ls: cannot access '${dir}': No such file or directory`);
    },
  },
  echo: {
    usage: "echo TEXT",
    what: "print TEXT (for scripts)",
    run(sh, args) {
      sh.out(args.join(" ") + "\n");
    },
  },
  history: {
    usage: "history",
    what: "the commands given so far",
    run(sh) {
      sh.history.forEach((h, i) => sh.out(`${String(i + 1).padStart(5)}  ${h}\n`));
    },
  },
  exit: {
    usage: "exit",
    what: "shut the kernel down and leave",
    run(sh) {
      sh.done = true;
    },
  },
};

/** lsmod: /proc/modules as "Module Size Used by" columns (kmod's "%-19s %8lu  %d"). */
export function lsmod(procModules: string): string {
  let out = "Module                  Size  Used by\n";
  for (const line of procModules.split("\n")) {
    const [name, size, refs, deps] = line.split(" ");
    if (!name || !size || !refs) continue;
    const holders = deps && deps !== "-" ? " " + deps.replace(/,$/, "") : "";
    out += `${name.padEnd(19)} ${size.padStart(8)}  ${refs}${holders}\n`;
  }
  return out;
}

class Shell {
  readonly k: Kernel;
  readonly history: string[] = [];
  /** Module.symvers of the sources built here, for the modules built after them. */
  readonly symvers: string[] = [];
  done = false;
  failed = false;
  constructor(k: Kernel) {
    this.k = k;
  }
  out(s: string): void {
    process.stdout.write(s);
  }
  err(s: string): void {
    process.stderr.write(s);
  }

  async exec(line: string): Promise<void> {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (!words.length || words[0]!.startsWith("#")) return;
    this.history.push(line.trim());
    const [cmd, ...args] = words as [string, ...string[]];
    const b = BUILTINS[cmd];
    try {
      if (!b) throw new ShellError(`kemu: ${cmd}: command not found (try 'help')`);
      await b.run(this, args);
    } catch (e) {
      this.failed = true;
      if (e instanceof ShellError) {
        if (e.message) this.err(e.message + "\n");
      } else if (e instanceof KernelError) this.err(e.message + "\n");
      else if (e instanceof BuildError) this.err([...e.warnings, ...e.errors].join("\n") + "\n");
      else throw e;
    }
  }
}

export const shellCommand: Command = {
  name: "shell",
  summary: "an interactive (or piped) shell on a booted kernel: insmod, lsmod, dmesg, cat ...",
  help: HELP,
  async run(argv) {
    const { values } = parse("shell", argv, { ...MACHINE_OPTIONS });
    const k = await Kernel.boot(machineConfig("shell", values));
    const sh = new Shell(k);
    // Sources built here see the in-tree modules' exports, as an external build does.
    const intree = k.kmod.symvers();
    if (intree) sh.symvers.push(intree);
    const tty = process.stdin.isTTY === true;
    const rl = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty, historySize: 1000 });
    if (tty) {
      process.stdout.write(`${k.banner()}\nType 'help' for the commands, 'exit' or Ctrl-D to shut down.\n`);
      rl.setPrompt("kemu# ");
      rl.prompt();
    }
    try {
      let journaled = k.kmod.journal.length;
      for (const l of k.kmod.journal) sh.err(l + "\n");
      for await (const line of rl) {
        await sh.exec(line);
        // udevd's complaints about what it could not load, as they come.
        for (const l of k.kmod.journal.slice(journaled)) sh.err(l + "\n");
        journaled = k.kmod.journal.length;
        if (sh.done) break;
        if (tty) rl.prompt();
      }
    } finally {
      rl.close();
      await k.shutdown();
    }
    if (sh.failed && !tty) return 1;
    return 0;
  },
};
