// docs/writing-a-driver.md stays true: the code it shows is the tested fixture in
// docs/writing-a-driver/ (which `npm test` runs, vitest.config.ts includes docs/**/*.test.ts),
// and the kernel lines it quotes are the ones kemu prints for the cases it describes.

import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { KernelError } from "../../core/errno.ts";
import { exportClass } from "../../core/module/ksymtab.ts";
import { boot, build, BuildError, insmodDriver, messages } from "../../sdk/testing/index.ts";
import { rejection } from "../helpers/kernel.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DOC_PATH = join(ROOT, "docs/writing-a-driver.md");
const FIXTURES = "docs/writing-a-driver";
const DOC = readFileSync(DOC_PATH, "utf8");
const HELLO_SRC = readFileSync(join(ROOT, FIXTURES, "hello.ts"), "utf8");

interface Block {
  lang: string;
  body: string;
  /** Offset of the opening fence in the document. */
  at: number;
}

/** Every fenced code block of the document, in order; `body` ends with a newline. */
function blocks(md: string): Block[] {
  const out: Block[] = [];
  for (const m of md.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) out.push({ lang: m[1]!, body: m[2]!, at: m.index });
  return out;
}

/** The prose with every run of white space (line breaks included) made one space. */
const FLAT = DOC.replace(/\s+/g, " ");

/** The document quotes `text` (as inline code or in prose; line breaks may differ). */
function quoted(text: string): void {
  expect(FLAT, `docs/writing-a-driver.md should quote: ${text}`).toContain(text.replace(/\s+/g, " "));
}

/** A driver source `src` written as NAME.ts in a directory of its own; the entry's path. */
function driverFile(name: string, src: string): string {
  const dir = mkdtempSync(join(tmpdir(), "kemu-doc-"));
  const entry = join(dir, `${name}.ts`);
  writeFileSync(entry, src);
  return entry;
}

/** Apply a unified-diff hunk without header (' ' context, '-' removed, '+' added) to `src`. */
function applyHunk(src: string, hunk: string): string {
  const lines = hunk.replace(/\n$/, "").split("\n");
  const before = lines.filter((l) => !l.startsWith("+")).map((l) => l.slice(1));
  const after = lines.filter((l) => !l.startsWith("-")).map((l) => l.slice(1));
  const old = before.join("\n") + "\n";
  expect(src.split(old).length - 1, `the diff's context must occur once in hello.ts:\n${old}`).toBe(1);
  return src.replace(old, after.join("\n") + "\n");
}

describe("docs/writing-a-driver.md shows the fixtures verbatim", () => {
  const shown = blocks(DOC)
    .filter((b) => b.lang === "ts")
    .map((b) => ({ b, file: /^\/\/ (docs\/writing-a-driver\/\S+)\n/.exec(b.body)?.[1] }))
    .filter((x): x is { b: Block; file: string } => x.file !== undefined);

  it("has a ts block for every fixture file, and only for those", () => {
    const files = readdirSync(join(ROOT, FIXTURES)).map((f) => `${FIXTURES}/${f}`).sort();
    expect(files).toEqual([`${FIXTURES}/hello.test.ts`, `${FIXTURES}/hello.ts`]);
    expect(shown.map((x) => x.file).sort()).toEqual(files);
  });

  it("each such block equals its file exactly", () => {
    for (const { b, file } of shown) expect(b.body, file).toBe(readFileSync(join(ROOT, file), "utf8"));
  });

  it("the fixture test imports the helpers by relative path and names the out-of-tree import", () => {
    const test = readFileSync(join(ROOT, FIXTURES, "hello.test.ts"), "utf8");
    expect(test).toContain('from "../../sdk/testing/index.ts"; // out of tree: "kemu/testing"');
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { exports: Record<string, string> };
    expect(pkg.exports["./testing"]).toBe("./sdk/testing/index.ts");
  });
});

describe("what docs/writing-a-driver.md says kemu prints", () => {
  it("modinfo: the tags the build writes, and 5.0's vermagic", async () => {
    const { image } = await build({ entry: join(ROOT, FIXTURES, "hello.ts"), kernel: "5.0" });
    const entries = image.modinfo.split("\0");
    const tags = entries.map((e) => e.slice(0, e.indexOf("=")));
    quoted(tags.slice(0, -1).map((t) => `\`${t}\``).join(", ") + ` and \`${tags.at(-1)}\``);
    const vermagic = entries.find((e) => e.startsWith("vermagic="))!.slice("vermagic=".length);
    expect(vermagic).toBe("5.0.0 SMP mod_unload ");
    quoted(`\`vermagic\` (\`${vermagic}\`)`);
  });

  it("hello under a proprietary license: modpost's FATAL line in every version", async () => {
    const src = HELLO_SRC.replace('MODULE_LICENSE("GPL");', 'MODULE_LICENSE("Proprietary");');
    expect(src).not.toBe(HELLO_SRC);
    const entry = driverFile("hello", src);
    const line = "FATAL: modpost: GPL-incompatible module hello.ko uses GPL-only symbol 'devm_kmalloc'";
    quoted(line);
    for (const kernel of ["4.19", "4.20", "5.0"] as const) {
      const e = await rejection(build({ entry, kernel }));
      expect(e).toBeInstanceOf(BuildError);
      expect((e as BuildError).errors, kernel).toEqual([line]);
    }
  });

  it("the export table matches core's symbol table", () => {
    const table = /^\| symbol \| 4\.20 \| 5\.0 \|\n\|[-|]+\|\n((?:\|.*\|\n)+)/m.exec(DOC);
    expect(table, "the 4.20/5.0 table").not.toBeNull();
    const rows = table![1]!.trimEnd().split("\n");
    const seen: string[] = [];
    const cls = (cell: string) => (cell === "not exported" ? undefined : cell.replaceAll("`", ""));
    for (const row of rows) {
      const [syms, c420, c50] = row.split("|").slice(1, -1).map((c) => c.trim());
      for (const s of syms!.split(",").map((x) => x.trim().replaceAll("`", ""))) {
        seen.push(s);
        expect(exportClass(s, "4.20"), `${s} in 4.20`).toBe(cls(c420!));
        expect(exportClass(s, "5.0"), `${s} in 5.0`).toBe(cls(c50!));
      }
    }
    expect(seen.sort()).toEqual(["devm_memremap_pages", "hmm_devmem_add", "hmm_devmem_add_resource", "hmm_devmem_remove"]);
  });

  const GPUMEM = `
import { MODULE_LICENSE, module_init, module_exit, devm_memremap_pages } from "kemu/kernel";
MODULE_LICENSE("Proprietary");
module_init(() => (typeof devm_memremap_pages === "function" ? 0 : -1));
module_exit(() => {});
`;

  it("a proprietary user of devm_memremap_pages: loads under 4.20 (taint P)", async () => {
    const k = await boot({ version: "4.20" });
    const seq = k.log.nextSeq;
    await insmodDriver(k, driverFile("gpumem", GPUMEM));
    const line = "gpumem: module license 'Proprietary' taints kernel.";
    quoted(line);
    expect(messages(k, seq)).toEqual([
      "gpumem: loading out-of-tree module taints kernel.",
      line,
      "Disabling lock debugging due to kernel taint",
    ]);
    expect(k.tainted()).toBe("Tainted: P           O     ");
    k.rmmod("gpumem");
  });

  it("... and is stopped by modpost for 5.0, or refused by the 5.0 loader", async () => {
    const entry = driverFile("gpumem", GPUMEM);
    const fatal = "FATAL: modpost: GPL-incompatible module gpumem.ko uses GPL-only symbol 'devm_memremap_pages'";
    quoted(fatal);
    const e = await rejection(build({ entry, kernel: "5.0" }));
    expect(e).toBeInstanceOf(BuildError);
    expect((e as BuildError).errors).toEqual([fatal]);

    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    const refused = await rejection(insmodDriver(k, entry, { build: { licenseGate: "loader" } }));
    expect(refused).toBeInstanceOf(KernelError);
    const insmodLine = "insmod: ERROR: could not insert module gpumem.ko: Unknown symbol in module";
    const dmesgLine = "gpumem: Unknown symbol devm_memremap_pages (err -2)";
    quoted(insmodLine);
    quoted(dmesgLine);
    expect((refused as KernelError).message).toBe(insmodLine);
    expect(messages(k, seq).at(-1)).toBe(dmesgLine);
    expect(k.read("/proc/modules")).toBe("");
  });

  it('a name the kernel does not export: ERROR: "foo" [hello.ko] undefined!', async () => {
    const src = HELLO_SRC.replace("  printk, KERN_INFO,", "  printk, KERN_INFO, foo,").replace('  printk(KERN_INFO + "hello: init\\n");', "  foo();");
    expect(src).toContain("KERN_INFO, foo,");
    expect(src).toContain("  foo();");
    const line = 'ERROR: "foo" [hello.ko] undefined!';
    quoted(line);
    const e = await rejection(build({ entry: driverFile("hello", src), kernel: "5.0" }));
    expect(e).toBeInstanceOf(BuildError);
    expect((e as BuildError).errors).toEqual([line]);
  });

  it("hmm_devmem_remove() is undefined for 5.0 and builds for 4.20", async () => {
    const entry = driverFile(
      "gpumem",
      `import { MODULE_LICENSE, module_init, hmm_devmem_remove } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => (typeof hmm_devmem_remove === "function" ? 0 : -1));
`,
    );
    const line = 'ERROR: "hmm_devmem_remove" [gpumem.ko] undefined!';
    quoted(line);
    const e = await rejection(build({ entry, kernel: "5.0" }));
    expect(e).toBeInstanceOf(BuildError);
    expect((e as BuildError).errors).toEqual([line]);
    await build({ entry, kernel: "4.20" });
  });

  it("the broken hello_probe of the diff gives the oops shown, and the kernel goes on", async () => {
    const all = blocks(DOC);
    const d = all.findIndex((b) => b.lang === "diff");
    expect(d, "the diff block").toBeGreaterThanOrEqual(0);
    const shownLog = all.slice(d + 1).find((b) => b.lang === "text");
    expect(shownLog, "the text block after the diff").toBeDefined();
    const entry = driverFile("hello", applyHunk(HELLO_SRC, all[d]!.body));

    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    const e = await rejection(insmodDriver(k, entry));
    expect(e).toBeInstanceOf(KernelError);
    const insmodLine = "insmod: ERROR: could not insert module hello.ko: Bad address";
    quoted(insmodLine);
    expect((e as KernelError).message).toBe(insmodLine);
    // The position in the bundled code follows the build's output layout: compared loosely.
    const pos = (s: string) => s.replace(/\(drivers\/hello\.mjs:\d+:\d+\)/g, "(drivers/hello.mjs:LINE:COL)");
    expect(pos(messages(k, seq).join("\n") + "\n")).toBe(pos(shownLog!.body));

    const taint = k.tainted();
    expect(taint).toBe("Tainted: G      D    O     ");
    quoted(`(\`${taint}\`)`);
    expect(k.read("/proc/modules")).toBe("");

    // "the next insmod works": the fixed driver loads and unloads.
    const after = k.log.nextSeq;
    await insmodDriver(k, join(ROOT, FIXTURES, "hello.ts"));
    expect(messages(k, after)).toEqual(["hello: init", "hello hello: probed, 64 bytes of state"]);
    k.rmmod("hello");
  });
});
