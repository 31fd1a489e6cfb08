// kemu new: scaffold an out-of-tree driver project, a directory that builds, checks and tests
// one driver against kemu the way a third party would: package.json with the kemu scripts, the
// driver in src/, a vitest suite in test/ that loads it under 4.20 and 5.0, tsconfig, README.

import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, UsageError, type Command } from "./command.ts";

/** MODULE_NAME_LEN is 64 - sizeof(unsigned long): 55 characters and the NUL. */
const MODULE_NAME_MAX = 55;

/** Package names the scaffold depends on: npm refuses to install a package under its own name. */
const DEPENDENCY_NAMES = ["kemu", "vitest", "typescript", "node"];

const HELP = `Usage: kemu new NAME [--dir DIR]

Scaffold an out-of-tree driver project named NAME in directory NAME (or DIR):

  package.json      scripts: build (kemu build), check (kemu check --kernel 4.20,5.0),
                    test (tsc and vitest); depends on kemu, pins Node, TypeScript and vitest
  src/NAME.ts       a GPL v2 driver that says hello at module_init and goodbye at module_exit
  test/NAME.test.ts a vitest suite that loads it under Linux 4.20 and 5.0 and checks the
                    kernel log, the out-of-tree taint and rmmod
  vitest.config.ts  forked test workers started with --no-node-snapshot (isolated-vm needs it)
  tsconfig.json, README.md, .gitignore

NAME is the module's name: letters, digits, '_' and '-' (at most ${MODULE_NAME_MAX} characters). As in
kbuild, '-' becomes '_' in the module name the kernel sees (KBUILD_MODNAME): kemu new my-drv
builds my_drv.ko. An existing directory is used only when it is empty.

Options:
  --dir DIR            create the project in DIR instead of ./NAME
  -h, --help           this help

Then: cd NAME && npm install && npm test

Exit status: 0 on success, 1 when the directory exists and is not empty or cannot be
written, 2 for bad usage.
`;

/** kemu's own checkout or installed package: two levels above sdk/cli. */
function kemuRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
}

export interface KemuPackage {
  version: string;
  devDependencies: Record<string, string>;
}

function kemuPackage(root: string): KemuPackage {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as Partial<KemuPackage>;
  if (typeof pkg.version !== "string" || !pkg.devDependencies) throw new Error(`${root}/package.json has no version or devDependencies`);
  return pkg as KemuPackage;
}

/**
 * How the project depends on kemu: a checkout (kemu's root is not inside a node_modules
 * directory) by its absolute path, so npm links it; an installed kemu by its version.
 */
export function kemuDependency(root: string, version: string): string {
  return root.split(sep).includes("node_modules") ? `^${version}` : `file:${root}`;
}

/** Why NAME is not a module name, with the fix; null when it is one. */
export function invalidName(name: string): string | null {
  if (name === "") return "new: NAME is empty; give the driver's module name, e.g. kemu new mydrv";
  const bad = [...new Set(name.replace(/[A-Za-z0-9_-]/g, ""))];
  if (bad.length > 0) {
    const fix = name.replace(/[^A-Za-z0-9_-]/g, "_");
    return (
      `new: '${name}' is not a valid module name: ${bad.map((c) => JSON.stringify(c)).join(", ")} not allowed; ` +
      `use only letters, digits, '_' and '-' (e.g. kemu new ${fix})`
    );
  }
  if (name.length > MODULE_NAME_MAX) {
    return `new: '${name}' is ${name.length} characters long; a module name has at most ${MODULE_NAME_MAX} (MODULE_NAME_LEN - 1): choose a shorter NAME`;
  }
  if (DEPENDENCY_NAMES.includes(name.toLowerCase())) {
    return `new: '${name}' is the name of a package the project depends on, and npm refuses to install a package under its own name: choose another NAME, e.g. kemu new ${name}_drv`;
  }
  return null;
}

export interface Scaffold {
  /** Relative path (with '/') to contents, in the order they are written. */
  files: [string, string][];
}

/** The project's files for driver NAME, given kemu's root directory and package.json. */
export function scaffold(name: string, root: string, pkg: KemuPackage): Scaffold {
  const modname = name.replaceAll("-", "_");
  const dev = (dep: string): string => {
    const v = pkg.devDependencies[dep];
    if (v === undefined) throw new Error(`kemu's package.json (${root}) has no devDependency ${dep}`);
    return v;
  };
  const packageJson = {
    name,
    version: "0.1.0",
    description: `${modname}: an out-of-tree Linux driver for kemu`,
    private: true,
    type: "module",
    license: "GPL-2.0-only",
    engines: { node: ">=24" },
    scripts: {
      build: `kemu build src/${name}.ts -o build/${name}.ko`,
      check: `kemu check src/${name}.ts --kernel 4.20,5.0`,
      test: "tsc -p . && vitest run",
    },
    dependencies: { kemu: kemuDependency(root, pkg.version) },
    devDependencies: {
      "@types/node": dev("@types/node"),
      node: dev("node"),
      typescript: dev("typescript"),
      vitest: dev("vitest"),
    },
    // npm 11 runs install scripts only of packages approved here: esbuild and isolated-vm
    // fetch or build their native parts, node puts the pinned Node binary in place.
    allowScripts: { esbuild: true, "isolated-vm": true, node: true },
  };

  const driver = `// ${modname}: an out-of-tree driver for kemu, the Linux 4.20/5.0 kernel emulator.
//
// A driver imports only from "kemu/kernel" (and its own relative files). MODULE_* take string
// literals: \`kemu build\` reads them the way modpost reads .modinfo, before any code runs.

import { KERN_INFO, MODULE_DESCRIPTION, MODULE_LICENSE, module_exit, module_init, printk } from "kemu/kernel";

MODULE_LICENSE("GPL v2");
MODULE_DESCRIPTION("${modname}: an out-of-tree hello-world driver");

module_init(() => {
  printk(KERN_INFO + "${modname}: hello from an out-of-tree driver\\n");
  return 0;
});

module_exit(() => {
  printk(KERN_INFO + "${modname}: goodbye\\n");
});
`;

  const test = `// Loads ${modname} into a kemu kernel of each version, checks what the kernel logs and how it is
// tainted, and unloads it. boot() also checks the kernel's invariants and leaks when a test ends.

import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { boot, insmodDriver, messages } from "kemu/testing";

const DRIVER = fileURLToPath(new URL("../src/${name}.ts", import.meta.url));

describe("${modname}", () => {
  for (const version of ["4.20", "5.0"] as const) {
    it(\`loads and unloads under Linux \${version}\`, async () => {
      const k = await boot({ version });

      // insmodDriver builds the driver for this kernel's version and insmods it.
      let seq = k.log.nextSeq;
      await insmodDriver(k, DRIVER);
      expect(messages(k, seq)).toEqual([
        "${modname}: loading out-of-tree module taints kernel.",
        "${modname}: hello from an out-of-tree driver",
      ]);
      // O: TAINT_OOT_MODULE, an out-of-tree module was loaded.
      expect(k.tainted()).toBe("Tainted: G           O     ");

      seq = k.log.nextSeq;
      k.rmmod("${modname}");
      expect(messages(k, seq)).toEqual(["${modname}: goodbye"]);
      // A taint stays after the module is gone.
      expect(k.tainted()).toBe("Tainted: G           O     ");
    });
  }
});
`;

  const vitestConfig = `import { defineConfig } from "vitest/config";

// kemu loads each driver into its own V8 isolate with isolated-vm, which needs Node started with
// --no-node-snapshot in every process that loads it. Worker threads cannot take that flag, so the
// tests run in forked processes that get it.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    execArgv: ["--no-node-snapshot"],
    testTimeout: 30_000,
  },
});
`;

  const tsconfig = `{
  "compilerOptions": {
    "target": "es2024",
    "lib": ["es2024"],
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "types": ["node"],
    "strict": true,
    "noEmit": true,
    "allowImportingTsExtensions": true,
    "verbatimModuleSyntax": true,
    "skipLibCheck": true
  },
  // kemu-kernel.d.ts declares the module "kemu/kernel" that the driver imports: kemu build
  // provides that module, so its types come from this ambient declaration.
  "include": ["src", "test", "vitest.config.ts", "node_modules/kemu/sdk/types/kemu-kernel.d.ts"]
}
`;

  // A checkout is read where it is; an installed kemu ships its docs in the package.
  const docs = kemuDependency(root, pkg.version).startsWith("file:") ? join(root, "docs") : "node_modules/kemu/docs";
  const readme = `# ${name}

An out-of-tree Linux driver for kemu, the Linux 4.20/5.0 kernel emulator. It was scaffolded
by \`kemu new ${name}\`.

- \`src/${name}.ts\`: the driver. It imports only from \`kemu/kernel\`, is licensed GPL v2, says
  hello when it loads and goodbye when it unloads. The kernel knows it as \`${modname}\`.
- \`test/${name}.test.ts\`: a vitest suite that boots Linux 4.20 and 5.0, loads the driver,
  checks the kernel log and the out-of-tree taint (\`O\`), and unloads it.

## Use

Node 24 or newer runs kemu; \`npm install\` installs a pinned Node 24 that the npm scripts use.

\`\`\`sh
npm install        # kemu, TypeScript, vitest and Node 24
npm test           # typecheck, then run the tests under 4.20 and 5.0
npm run build      # build/${name}.ko: the bundled module with its modinfo
npm run check      # which kernel versions load it, refused symbols, taints, dmesg
\`\`\`

From the command line (\`npx kemu\` runs the kemu installed here, on the pinned Node):

\`\`\`sh
npx kemu modinfo build/${name}.ko                            # what the build put in the module
npx kemu boot --insmod build/${name}.ko --print dmesg,tainted
npx kemu boot --kernel 4.20 --insmod src/${name}.ts          # builds the source for that kernel
\`\`\`

\`npm run build\` builds for Linux 5.0, kemu's default. A module's vermagic must match the kernel
that loads it: \`npx kemu build src/${name}.ts --kernel 4.20 -o build/${name}.ko\` builds for 4.20.

## Read more

In kemu's documentation (\`${docs}\`):

- \`writing-a-driver.md\`: the driver SDK, the build, testing with \`kemu/testing\`.
- \`export-policy.md\`: which kernel symbols a module may use under which license and
  kernel version, and why a load is refused.
`;

  return {
    files: [
      ["package.json", JSON.stringify(packageJson, null, 2) + "\n"],
      [`src/${name}.ts`, driver],
      [`test/${name}.test.ts`, test],
      ["vitest.config.ts", vitestConfig],
      ["tsconfig.json", tsconfig],
      ["README.md", readme],
      [".gitignore", "node_modules/\nbuild/\n"],
    ],
  };
}

export const newCommand: Command = {
  name: "new",
  summary: "scaffold an out-of-tree driver project",
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse("new", argv, { dir: { type: "string" } }, true);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (positionals.length === 0) throw new UsageError("new: missing NAME, the driver's module name (e.g. kemu new mydrv)");
    if (positionals.length > 1) throw new UsageError(`new: one NAME expected, got ${positionals.length}: ${positionals.join(" ")}`);
    const name = positionals[0]!;
    const problem = invalidName(name);
    if (problem) throw new UsageError(problem);
    if (values.dir === "") throw new UsageError("new: --dir is empty");
    const shown = values.dir ?? name;
    const dir = resolve(shown);

    if (existsSync(dir)) {
      if (!statSync(dir).isDirectory()) {
        process.stderr.write(`kemu new: ${shown} exists and is not a directory; choose another NAME or --dir\n`);
        return 1;
      }
      if (readdirSync(dir).length > 0) {
        process.stderr.write(`kemu new: ${shown} already exists and is not empty; nothing was written. Choose another NAME or --dir, or empty it first\n`);
        return 1;
      }
    }

    const root = kemuRoot();
    const { files } = scaffold(name, root, kemuPackage(root));
    try {
      for (const [path, text] of files) {
        const file = join(dir, path);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, text, { flag: "wx" });
      }
    } catch (e) {
      process.stderr.write(`kemu new: cannot write ${shown}: ${(e as Error).message}\n`);
      return 1;
    }

    const prefix = shown.endsWith("/") ? shown : `${shown}/`;
    const modname = name.replaceAll("-", "_");
    const out = [
      `Created ${prefix}, an out-of-tree driver project for ${modname}.ko:`,
      ...files.map(([path]) => `  ${prefix}${path}`),
      "",
      "Next steps:",
      `  cd ${shellQuote(shown)}`,
      "  npm install        # kemu, TypeScript, vitest and a pinned Node 24",
      "  npm test           # typecheck, then load the driver under Linux 4.20 and 5.0",
      `  npm run build      # build/${name}.ko`,
      "  npm run check      # which kernel versions load it, and why not",
      "",
    ];
    process.stdout.write(out.join("\n"));
    return 0;
  },
};

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
