// kemu modules: `make modules modules_install` for the in-tree drivers (drivers/).

import { relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BuildError } from "../build/build.ts";
import { buildInTree, INTREE_VERSIONS } from "../build/intree.ts";
import { isKernelVersion, type KernelVersion } from "../../core/version.ts";
import { MODULES_DIR } from "../../core/config.ts";
import { parse, UsageError, type Command } from "./command.ts";

/** The repository: drivers/ and the default output build/drivers are under it. */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const HELP = `Usage: kemu modules [options]

Build every in-tree driver (drivers/**: each source with a MODULE_LICENSE) for each kernel
version, as \`make modules modules_install\` does: DIR/<version>/<name>.ko, with depmod's
modules.dep and modules.alias and the tree's Module.symvers. The kernel's autoload at boot
(udev's modprobe of each new device's modalias) and \`kemu shell\`'s modprobe read them there.
\`npm install\` runs it.

Options:
  -o, --output DIR    where to install (default: build/drivers in the kemu tree)
  --kernel LIST       versions to build for (default: ${INTREE_VERSIONS.join(",")})
  -h, --help          this help

Exit status: 0 built, 1 a driver did not build, 2 bad usage.
`;

export const modulesCommand: Command = {
  name: "modules",
  summary: "build the in-tree drivers into build/drivers/<version>/ (make modules_install)",
  help: HELP,
  async run(argv) {
    const { values } = parse("modules", argv, { output: { type: "string", short: "o" }, kernel: { type: "string" } }, false);
    const versions = (values.kernel ?? INTREE_VERSIONS.join(",")).split(",").map((v) => v.trim());
    for (const v of versions) {
      if (!isKernelVersion(v) || !INTREE_VERSIONS.includes(v)) throw new UsageError(`modules: --kernel '${v}': in-tree drivers build for ${INTREE_VERSIONS.join(", ")}`);
    }
    const out = resolve(values.output ?? MODULES_DIR);
    const show = (p: string) => relative(process.cwd(), p) || p;
    for (const v of versions as KernelVersion[]) {
      try {
        const mods = await buildInTree(ROOT, out, v);
        for (const m of mods) process.stdout.write(`  LD [M]  ${show(m.file)}\n`);
        process.stdout.write(`  DEPMOD  ${v} (${mods.length} modules)\n`);
      } catch (e) {
        if (!(e instanceof BuildError)) throw e;
        for (const err of e.errors) process.stderr.write(err + "\n");
        return 1;
      }
    }
    return 0;
  },
};
