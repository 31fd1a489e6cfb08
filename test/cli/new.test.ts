// kemu new from the command line: the project it scaffolds (files, package.json wired to this
// checkout and to kemu's own pinned tool versions), the errors for a bad NAME or a non-empty
// directory, and then the scaffold's own `tsc` and vitest suite, run offline against this
// checkout: node_modules/kemu and node_modules/vitest are symlinks instead of an npm install.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { invalidName, kemuDependency } from "../../sdk/cli/new.ts";
import { kemu, ROOT, run, tempDir } from "../helpers/cli.ts";

const VITEST = join(ROOT, "node_modules/vitest/vitest.mjs");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");
const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string; devDependencies: Record<string, string> };

/** CI=true on top of the cleaned environment: the scaffold's own vitest runs non-interactively. */
const CI = { CI: "true" };

/** `kemu new ARGS` as the command line runs it: sdk/cli/main.ts, so usage errors print as main prints them. */
const kemuNew = (args: string[], cwd = ROOT) => kemu(["new", ...args], { cwd, env: CI });

/** A fresh, empty directory for one test, under this file's temporary directory. */
const BASE = tempDir("kemu-new-");
const freshDir = () => mkdtempSync(join(BASE, "case-"));

/** Every file under dir, relative, sorted; node_modules left out. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .filter((p) => !p.startsWith("node_modules"))
    .sort();
}

const FILES = (name: string) =>
  [".gitignore", "README.md", "package.json", `src/${name}.ts`, `test/${name}.test.ts`, "tsconfig.json", "vitest.config.ts"].sort();

describe("kemu new", () => {
  it("--help explains NAME, --dir and the files", async () => {
    const r = await kemuNew(["--help"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^Usage: kemu new NAME \[--dir DIR\]\n/);
    for (const s of ["--dir DIR", "src/NAME.ts", "test/NAME.test.ts", "KBUILD_MODNAME", "npm install && npm test"]) expect(r.stdout).toContain(s);
  });

  it("scaffolds ./NAME: package.json pinned to kemu's own tool versions, a GPL v2 driver, its test", async () => {
    const cwd = freshDir();
    const r = await kemuNew(["mydrv"], cwd);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const dir = join(cwd, "mydrv");
    expect(tree(dir)).toEqual(FILES("mydrv"));
    expect(r.stdout).toContain("Created mydrv/");
    for (const f of FILES("mydrv")) expect(r.stdout).toContain(`  mydrv/${f}\n`);
    expect(r.stdout).toContain("Next steps:\n  cd mydrv\n  npm install");
    expect(r.stdout).toContain("\n  npm test");

    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    expect(pkg).toMatchObject({ name: "mydrv", private: true, type: "module", engines: { node: ">=24" } });
    expect(pkg.scripts).toEqual({
      build: "kemu build src/mydrv.ts -o build/mydrv.ko",
      check: "kemu check src/mydrv.ts --kernel 4.20,5.0",
      test: "tsc -p . && vitest run",
    });
    // This checkout is not inside node_modules: the project depends on it by path.
    expect(pkg.dependencies).toEqual({ kemu: `file:${ROOT}` });
    expect(pkg.devDependencies).toEqual({
      "@types/node": PKG.devDependencies["@types/node"],
      node: PKG.devDependencies["node"],
      typescript: PKG.devDependencies["typescript"],
      vitest: PKG.devDependencies["vitest"],
    });
    expect(pkg.allowScripts).toEqual({ esbuild: true, "isolated-vm": true, node: true });

    const src = readFileSync(join(dir, "src/mydrv.ts"), "utf8");
    expect([...src.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1])).toEqual(["kemu/kernel"]);
    expect(src).toContain('MODULE_LICENSE("GPL v2");');
    expect(src).toMatch(/MODULE_DESCRIPTION\("[^"]+"\);/);
    expect(src).toContain('printk(KERN_INFO + "mydrv: hello from an out-of-tree driver\\n");');

    const test = readFileSync(join(dir, "test/mydrv.test.ts"), "utf8");
    expect(test).toContain('import { boot, insmodDriver, messages } from "kemu/testing";');
    expect(test).toContain('expect(k.tainted()).toBe("Tainted: G           O     ");');

    const vitestConfig = readFileSync(join(dir, "vitest.config.ts"), "utf8");
    expect(vitestConfig).toContain('pool: "forks"');
    expect(vitestConfig).toContain('execArgv: ["--no-node-snapshot"]');
    expect(vitestConfig).toContain('include: ["test/**/*.test.ts"]');

    // tsconfig.json allows comments; drop them to read it.
    const tsconfig = JSON.parse(readFileSync(join(dir, "tsconfig.json"), "utf8").replace(/^\s*\/\/.*$/gm, ""));
    expect(tsconfig.compilerOptions).toMatchObject({
      strict: true, module: "nodenext", moduleResolution: "nodenext", noEmit: true,
      allowImportingTsExtensions: true, types: ["node"], skipLibCheck: true,
    });
    expect(tsconfig.include).toEqual(["src", "test", "vitest.config.ts", "node_modules/kemu/sdk/types/kemu-kernel.d.ts"]);
    expect(existsSync(join(ROOT, "sdk/types/kemu-kernel.d.ts"))).toBe(true);

    const readme = readFileSync(join(dir, "README.md"), "utf8");
    for (const s of ["npm install", "npm test", "npm run build", "npm run check", "writing-a-driver.md", "export-policy.md"]) expect(readme).toContain(s);
    expect(readFileSync(join(dir, ".gitignore"), "utf8")).toBe("node_modules/\nbuild/\n");
  });

  it("depends on an installed kemu by version, on a checkout by path", () => {
    expect(kemuDependency("/home/u/proj/node_modules/kemu", "0.1.0")).toBe("^0.1.0");
    expect(kemuDependency("/home/u/node_modules/.pnpm/kemu@0.1.0/node_modules/kemu", "0.1.0")).toBe("^0.1.0");
    expect(kemuDependency("/home/u/src/kemu", "0.1.0")).toBe("file:/home/u/src/kemu");
    expect(kemuDependency("/home/u/node_modules_old/kemu", "0.1.0")).toBe("file:/home/u/node_modules_old/kemu");
  });

  it("refuses a NAME that is not a module name, says why and how to fix it, writes nothing", async () => {
    const cwd = freshDir();
    // Through the command line: the message, the pointer to --help, exit status 2, nothing written.
    const r = await kemuNew(["my.drv"], cwd);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `kemu new: 'my.drv' is not a valid module name: "." not allowed; use only letters, digits, '_' and '-' (e.g. kemu new my_drv)\n` +
        "Run `kemu new --help` for usage.\n",
    );
    expect(r.stdout).toBe("");
    // The other checks, by message.
    expect(invalidName("a/b c")).toBe(`new: 'a/b c' is not a valid module name: "/", " " not allowed; use only letters, digits, '_' and '-' (e.g. kemu new a_b_c)`);
    expect(invalidName("x".repeat(56))).toBe(`new: '${"x".repeat(56)}' is 56 characters long; a module name has at most 55 (MODULE_NAME_LEN - 1): choose a shorter NAME`);
    expect(invalidName("Vitest")).toBe(
      "new: 'Vitest' is the name of a package the project depends on, and npm refuses to install a package under its own name: choose another NAME, e.g. kemu new Vitest_drv",
    );
    expect(invalidName("x".repeat(55))).toBeNull();
    expect(invalidName("My-Drv_2")).toBeNull();

    const missing = await kemuNew([], cwd);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toBe("kemu new: missing NAME, the driver's module name (e.g. kemu new mydrv)\nRun `kemu new --help` for usage.\n");
    const two = await kemuNew(["a", "b"], cwd);
    expect(two.status).toBe(2);
    expect(two.stderr).toMatch(/^kemu new: one NAME expected, got 2: a b\n/);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("refuses a non-empty directory and writes nothing; an empty one is used", async () => {
    const base = freshDir();
    const busy = join(base, "busy");
    mkdirSync(busy);
    writeFileSync(join(busy, "notes.txt"), "mine\n");
    const r = await kemuNew(["busy", "--dir", busy], base);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`kemu new: ${busy} already exists and is not empty; nothing was written. Choose another NAME or --dir, or empty it first\n`);
    expect(r.stdout).toBe("");
    expect(tree(busy)).toEqual(["notes.txt"]);
    expect(readFileSync(join(busy, "notes.txt"), "utf8")).toBe("mine\n");

    const file = join(base, "plain");
    writeFileSync(file, "");
    const f = await kemuNew(["plain"], base);
    expect(f.status).toBe(1);
    expect(f.stderr).toBe("kemu new: plain exists and is not a directory; choose another NAME or --dir\n");

    const empty = join(base, "empty");
    mkdirSync(empty);
    const e = await kemuNew(["empty", "--dir", empty], base);
    expect(e.status).toBe(0);
    expect(tree(empty)).toEqual(FILES("empty"));
  });

  it("the scaffold typechecks and its own test passes under 4.20 and 5.0 (offline: symlinked node_modules)", async () => {
    // A '-' in NAME: files keep it, the module (KBUILD_MODNAME) has '_', as kemu build names it.
    const base = freshDir();
    const dir = join(base, "my-drv");
    const r = await kemuNew(["my-drv", "--dir", dir], base);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(tree(dir)).toEqual(FILES("my-drv"));
    const src = readFileSync(join(dir, "src/my-drv.ts"), "utf8");
    expect(src).toContain('printk(KERN_INFO + "my_drv: hello from an out-of-tree driver\\n");');
    expect(src).toContain('printk(KERN_INFO + "my_drv: goodbye\\n");');

    // What npm install would give for the parts the test needs: kemu linked to this checkout
    // (as a file: dependency is), vitest and @types/node from this checkout's node_modules.
    mkdirSync(join(dir, "node_modules/@types"), { recursive: true });
    symlinkSync(ROOT, join(dir, "node_modules/kemu"), "dir");
    symlinkSync(join(ROOT, "node_modules/vitest"), join(dir, "node_modules/vitest"), "dir");
    symlinkSync(join(ROOT, "node_modules/@types/node"), join(dir, "node_modules/@types/node"), "dir");

    const tsc = await run(process.execPath, [TSC, "-p", dir], { cwd: dir, env: CI });
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.status).toBe(0);

    const vt = await run(process.execPath, ["--no-node-snapshot", VITEST, "run", "--root", dir], { cwd: dir, env: CI });
    const out = vt.stdout + vt.stderr;
    expect(out).toMatch(/✓ test\/my-drv\.test\.ts \(2 tests\)/);
    expect(out).toMatch(/Test Files\s+1 passed \(1\)/);
    expect(out).toMatch(/Tests\s+2 passed \(2\)/);
    expect(vt.status, out).toBe(0);
  }, 120_000);
});
