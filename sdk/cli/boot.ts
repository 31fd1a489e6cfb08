// kemu boot: boot a kernel, optionally run a script against it, print what was asked, shut down.

import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { KCONFIG_OPTIONS, type BootConfig, type KconfigOption, type PmemConfig, type ReservedConfig } from "../../core/config.ts";
import { KernelError } from "../../core/errno.ts";
import { Kernel } from "../../core/kernel.ts";
import { BuildError } from "../build/build.ts";
import { parse, UsageError, type Command } from "./command.ts";
import { moduleFile } from "./driver-file.ts";

const PRINTABLE: Record<string, string> = {
  dmesg: "",
  iomem: "/proc/iomem",
  meminfo: "/proc/meminfo",
  buddyinfo: "/proc/buddyinfo",
  tainted: "/proc/sys/kernel/tainted",
  version: "/proc/version",
  modules: "/proc/modules",
  "kemu-modules": "/proc/kemu/modules",
};

/** The help lines of MACHINE_OPTIONS. */
export const MACHINE_HELP = `  --kernel V           kernel version profile: 4.19, 4.20 or 5.0 (default 5.0)
  --memory SIZE        System RAM, e.g. 1G, 512M (default 1G)
  --pmem SPEC          a persistent-memory region, repeatable:
                       SIZE[@START][:FILE][,mode=fsdax|devdax|raw][,align=4K|2M|1G][,legacy]
                       e.g. 4G, 4G@0x140000000:pmem0.img, or 1G:dax.img,mode=devdax,align=4K
  --reserved SPEC      a firmware-reserved range, repeatable: SIZE@START
  --gpu VRAM           a GPU (NVIDIA GP104 on PCI) with VRAM bytes, e.g. 512M; repeatable
  --seed N             seed for everything random (default 0)
  --kconfig LIST       comma-separated options to turn on: ${KCONFIG_OPTIONS.join(", ")}
  --no-autoload        no udev: the in-tree drivers of the devices do not load on their
                       own (\`kemu modules\` installs them in build/drivers)
  --modules-dir DIR    where modprobe and udev find modules (DIR/<version>/modules.dep;
                       default: build/drivers of the kemu tree)
`;

const HELP = `Usage: kemu boot [options]

Boot an emulated kernel, run an optional script against it, print the requested views,
and shut it down again.

Options:
${MACHINE_HELP}  --insmod FILE        load a module after boot, repeatable: a built .ko, or a driver's
                       .ts source, built first for --kernel; a module modpost or the
                       kernel refuses prints their lines, boot goes on with the next,
                       and the exit status is 1
  --run SCRIPT         import SCRIPT (an ES module) and await its default export,
                       an async function (kernel) => void, with the booted kernel
  --print LIST         comma-separated: ${Object.keys(PRINTABLE).join(", ")} (default dmesg)
  -h, --help           this help

Exit status: 0 on success, 1 when the kernel refused the configuration or the script
failed, 2 for bad usage.
`;

/** SIZE[@START][:FILE][,mode=fsdax|devdax|raw][,align=4K|2M|1G][,legacy] */
function pmemSpec(cmd: string, spec: string): PmemConfig {
  const [region, ...opts] = spec.split(",");
  const m = /^([^@:]+)(?:@([^:]+))?(?::(.+))?$/.exec(region!);
  if (!m) throw new UsageError(`${cmd}: --pmem '${spec}' is not SIZE[@START][:FILE][,mode=M][,align=A][,legacy]`);
  const p: PmemConfig = { size: m[1]! };
  if (m[2]) p.start = m[2];
  if (m[3]) p.file = m[3];
  for (const o of opts) {
    const [key, value] = o.split("=", 2) as [string, string | undefined];
    if (key === "legacy" && value === undefined) p.legacy = true;
    else if (key === "mode" && value) p.mode = value as PmemConfig["mode"];
    else if (key === "align" && value) p.align = value;
    else throw new UsageError(`${cmd}: --pmem '${spec}': unknown option '${o}' (mode=fsdax|devdax|raw, align=4K|2M|1G, legacy)`);
  }
  return p;
}

function reservedSpec(cmd: string, spec: string): ReservedConfig {
  const m = /^([^@]+)@(.+)$/.exec(spec);
  if (!m) throw new UsageError(`${cmd}: --reserved '${spec}' is not SIZE@START`);
  return { size: m[1]!, start: m[2]! };
}

/** The options that describe the machine, shared by kemu boot and kemu shell. */
export const MACHINE_OPTIONS = {
  kernel: { type: "string" },
  memory: { type: "string" },
  pmem: { type: "string", multiple: true },
  reserved: { type: "string", multiple: true },
  gpu: { type: "string", multiple: true },
  seed: { type: "string" },
  kconfig: { type: "string" },
  "no-autoload": { type: "boolean" },
  "modules-dir": { type: "string" },
} as const;

export interface MachineValues {
  kernel?: string | undefined;
  memory?: string | undefined;
  pmem?: string[] | undefined;
  reserved?: string[] | undefined;
  gpu?: string[] | undefined;
  seed?: string | undefined;
  kconfig?: string | undefined;
  "no-autoload"?: boolean | undefined;
  "modules-dir"?: string | undefined;
}

/** The boot config the machine options describe; `cmd` names the command in usage errors. */
export function machineConfig(cmd: string, values: MachineValues): BootConfig {
  const config: BootConfig = {};
  if (values.kernel !== undefined) config.version = values.kernel;
  if (values.memory !== undefined) config.memory = values.memory;
  if (values.pmem) config.pmem = values.pmem.map((s) => pmemSpec(cmd, s));
  if (values.reserved) config.reserved = values.reserved.map((s) => reservedSpec(cmd, s));
  if (values.gpu) config.gpus = values.gpu.map((vram) => ({ vram }));
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed)) throw new UsageError(`${cmd}: --seed '${values.seed}' is not a non-negative integer`);
    config.seed = Number(values.seed);
  }
  if (values.kconfig !== undefined) {
    const on = values.kconfig.split(",").map((s) => s.trim()).filter(Boolean);
    for (const o of on) {
      if (!(KCONFIG_OPTIONS as readonly string[]).includes(o)) throw new UsageError(`${cmd}: --kconfig: unknown option '${o}' (choose from ${KCONFIG_OPTIONS.join(", ")})`);
    }
    config.kconfig = Object.fromEntries(on.map((o) => [o as KconfigOption, true]));
  }
  if (values["no-autoload"]) config.autoload = false;
  if (values["modules-dir"] !== undefined) config.modulesDir = values["modules-dir"];
  return config;
}

export const bootCommand: Command = {
  name: "boot",
  summary: "boot a kernel, run a script, print dmesg or /proc views",
  help: HELP,
  async run(argv) {
    const { values } = parse("boot", argv, {
      ...MACHINE_OPTIONS,
      insmod: { type: "string", multiple: true },
      run: { type: "string" },
      print: { type: "string" },
    });
    const prints = (values.print ?? "dmesg").split(",").map((s) => s.trim()).filter(Boolean);
    for (const p of prints) {
      if (!(p in PRINTABLE)) throw new UsageError(`boot: --print: unknown view '${p}' (choose from ${Object.keys(PRINTABLE).join(", ")})`);
    }
    const k = await Kernel.boot(machineConfig("boot", values));
    let journaled = 0;
    const journal = () => {
      for (const line of k.kmod.journal.slice(journaled)) process.stderr.write(line + "\n");
      journaled = k.kmod.journal.length;
    };
    journal();
    let status = 0;
    // Modules built here link against the in-tree modules' exports and the Module.symvers of
    // those loaded before them.
    const symvers: string[] = [k.kmod.symvers()].filter(Boolean);
    for (const file of values.insmod ?? []) {
      try {
        const m = await moduleFile(file, { kernel: k.config.version, symvers: [...symvers] });
        for (const w of m.warnings) process.stderr.write(`${w}\n`);
        await k.insmod(m.file, { filename: m.filename });
        if (m.symvers) symvers.push(m.symvers);
      } catch (e) {
        if (e instanceof BuildError) process.stderr.write([...e.warnings, ...e.errors].join("\n") + "\n");
        else if (e instanceof KernelError) process.stderr.write(`${e.message}\n`);
        else throw e;
        status = 1;
      }
    }
    journal();
    if (values.run) {
      const url = pathToFileURL(resolve(values.run)).href;
      try {
        const mod = (await import(url)) as { default?: unknown };
        if (typeof mod.default !== "function") throw new Error(`${values.run} has no default export function (kernel) => void`);
        await (mod.default as (k: Kernel) => unknown)(k);
      } catch (e) {
        process.stderr.write(`kemu boot: --run ${values.run}: ${(e as Error).stack ?? e}\n`);
        status = 1;
      }
    }
    const many = prints.length > 1;
    for (const p of prints) {
      const path = PRINTABLE[p]!;
      if (many) process.stdout.write(`==> ${path || "dmesg"} <==\n`);
      process.stdout.write(path ? k.read(path) : k.dmesg());
    }
    await k.shutdown();
    return status;
  },
};
