// modprobe and udev's module autoload (kmod, systemd-udevd): module names and aliases are
// looked up in depmod's modules.dep and modules.alias of the kernel's module directory
// (<modulesDir>/<version>/, written by `kemu modules`); a module's dependencies load first.
// A device added with a MODALIAS is remembered, and settle() modprobes the aliases of the
// devices still without a driver, as udevd does for each "add" uevent, until no new device
// appears (a loaded driver may add devices of its own, as libnvdimm adds namespaces).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ENOENT, KernelError } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import type { Device } from "../base/device.ts";
import type { Module } from "../module/module.ts";

interface Index {
  /** module name -> its dependencies, the ones to load first last (modules.dep order). */
  deps: Map<string, string[]>;
  /** [pattern, module] in file order */
  aliases: [RegExp, string][];
}

export class Kmod {
  readonly #k: Kernel;
  /** <modulesDir>/<version> */
  readonly dir: string;
  #index: Index | null = null;
  /** Devices added with a modalias, not yet looked at by settle(). */
  readonly #uevents: Device[] = [];
  /**
   * What udevd logged (to its journal, not to the kernel's log): one line per module it could
   * not load. The kernel's own lines about the failure are in dmesg.
   */
  readonly journal: string[] = [];

  constructor(k: Kernel, modulesDir: string) {
    this.#k = k;
    this.dir = join(modulesDir, k.config.version);
  }

  /** A device was added (kobject_uevent(KOBJ_ADD)): udevd, when it runs, looks at its MODALIAS. */
  uevent(dev: Device): void {
    if (dev.modalias && this.#k.config.autoload) this.#uevents.push(dev);
  }

  /** The in-tree modules' Module.symvers ("" when none is installed), for building against them. */
  symvers(): string {
    try {
      return readFileSync(join(this.dir, "Module.symvers"), "utf8");
    } catch {
      return "";
    }
  }

  /** modules.dep and modules.alias, read once; empty when none are installed for this kernel. */
  #load(): Index {
    if (this.#index) return this.#index;
    const read = (f: string): string => {
      try {
        return readFileSync(join(this.dir, f), "utf8");
      } catch {
        return "";
      }
    };
    const deps = new Map<string, string[]>();
    for (const line of read("modules.dep").split("\n")) {
      const m = /^(\S+)\.ko:(.*)$/.exec(line);
      if (m) deps.set(m[1]!, m[2]!.trim().split(/\s+/).filter(Boolean).map((d) => d.replace(/\.ko$/, "")));
    }
    const aliases: [RegExp, string][] = [];
    for (const line of read("modules.alias").split("\n")) {
      const m = /^alias (\S+) (\S+)$/.exec(line);
      if (m) aliases.push([fnmatch(m[1]!), m[2]!]);
    }
    return (this.#index = { deps, aliases });
  }

  /** The modules an alias (or a module name) resolves to. */
  resolve(nameOrAlias: string): string[] {
    const idx = this.#load();
    const name = nameOrAlias.replace(/-/g, "_");
    if (idx.deps.has(name)) return [name];
    return [...new Set(idx.aliases.filter(([re]) => re.test(nameOrAlias)).map(([, mod]) => mod))];
  }

  /**
   * modprobe NAME|ALIAS: load it and what it depends on, deepest first, skipping what is
   * loaded. Throws kmod's "Module X not found" for a name nothing resolves to.
   */
  async modprobe(nameOrAlias: string, opts: { builtin?: boolean } = {}): Promise<Module[]> {
    const mods = this.resolve(nameOrAlias);
    if (mods.length === 0) throw new KernelError(ENOENT, `modprobe: FATAL: Module ${nameOrAlias} not found in directory ${this.dir}`);
    const loaded: Module[] = [];
    for (const name of mods) {
      const deps = this.#load().deps.get(name) ?? [];
      for (const m of [...deps].reverse().concat(name)) {
        if (this.#k.modules.find_module(m)) continue;
        loaded.push(await this.#k.insmod(join(this.dir, `${m}.ko`), opts));
      }
    }
    return loaded;
  }

  /**
   * udevadm settle: modprobe the alias of every device added since, while it has no driver,
   * until loading adds no more. A failure goes to the journal, and the rest goes on.
   */
  async settle(opts: { builtin?: boolean } = {}): Promise<void> {
    while (this.#uevents.length) {
      const dev = this.#uevents.shift()!;
      if (!dev.registered || dev.driver || !dev.modalias) continue;
      if (this.resolve(dev.modalias).length === 0) continue; // `kmod load` of an unknown alias is silent
      try {
        await this.modprobe(dev.modalias, opts);
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        this.journal.push(`systemd-udevd: ${dev.name}: ${e.message}`);
      }
    }
  }
}

/** A modules.alias pattern (fnmatch: *, ?, [..]) as a regular expression. */
function fnmatch(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const j = pattern.indexOf("]", i + 1);
      if (j < 0) re += "\\[";
      else {
        re += "[" + pattern.slice(i + 1, j).replace(/^!/, "^").replace(/\\/g, "\\\\") + "]";
        i = j;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
