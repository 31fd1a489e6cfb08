// kemu modinfo from the command line (sdk/cli/main.ts in a real process), against kmod's
// tools/modinfo.c: "filename:" and each key padded to 16 columns, entries in the order the
// file has them, -F/-a/-d/-l/-n, -0, kmod's error lines, several files, usage errors.
// The module files are built in this process with the real builder.

import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, it } from "vitest";
import { get_modinfo, parseKo } from "../../core/module/ko.ts";
import { build } from "../../sdk/build/build.ts";
import { withModinfo } from "../helpers/build.ts";
import { workdir } from "../helpers/cli.ts";

const { dir: DIR, kemu, put } = workdir("kemu-modinfo-");

/** `kemu modinfo ARGS`, run in DIR. */
const modinfo = (...args: string[]) => kemu(["modinfo", ...args]);

const GOOD = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
k.MODULE_DESCRIPTION("a good driver");
k.MODULE_AUTHOR("A. Hacker <a@example.org>");
k.MODULE_ALIAS("kemu:good");
k.MODULE_ALIAS("kemu:best");
k.module_init(() => 0);
k.module_exit(() => {});
`;

const CLOSED = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("Proprietary");
k.MODULE_DESCRIPTION("a closed driver");
k.module_init(() => 0);
`;

/** Build `source` as DIR/src/NAME.ts into DIR/NAME.ko (for 4.20); the module's bytes. */
async function ko(name: string, source: string): Promise<Uint8Array> {
  const r = await build({ entry: put(`src/${name}.ts`, source), kernel: "4.20" });
  put(`${name}.ko`, r.ko);
  return r.ko;
}

let srcversion = "";
beforeAll(async () => {
  const good = await ko("good", GOOD);
  srcversion = get_modinfo(parseKo(good).modinfo, "srcversion") ?? "";
  await ko("closed", CLOSED);
  // A module whose .modinfo has an order and keys no build writes: kmod prints what is there.
  put("odd.ko", withModinfo(good, () => ["name=odd", "alias=z", "license=GPL", "alias=a", "vermagic=4.20.0 SMP mod_unload "]));
  put("not-a.mod.ko", "hello, I am not a module\n");
});

const GOOD_LINES = (abs: string) => [
  `filename:       ${abs}`,
  "alias:          kemu:best",
  "alias:          kemu:good",
  "author:         A. Hacker <a@example.org>",
  "description:    a good driver",
  "license:        GPL",
  `srcversion:     ${srcversion}`,
  "depends:        ",
  "retpoline:      Y",
  "name:           good",
  "vermagic:       4.20.0 SMP mod_unload ",
];

describe.concurrent("kemu modinfo", () => {
  it("prints filename (absolute) and every entry, keys padded to 16 columns as kmod's printf does", async ({ expect }) => {
    expect(srcversion).toMatch(/^[0-9A-F]{23}$/);
    const r = await modinfo("good.ko");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(GOOD_LINES(join(DIR, "good.ko")).join("\n") + "\n");
  });

  it("prints the entries in the file's order, repeated keys each time", async ({ expect }) => {
    const r = await modinfo("odd.ko");
    expect(r.stdout).toBe(
      `filename:       ${DIR}/odd.ko\nname:           odd\nalias:          z\nlicense:        GPL\nalias:          a\nvermagic:       4.20.0 SMP mod_unload \n`,
    );
    expect(r.status).toBe(0);
  });

  it("keys of 16 characters or more get kmod's %-*s padding: |15 - keylen| spaces", async ({ expect }) => {
    // printf("%s:%-*s%s%c", key, 15 - keylen, "", value, sep): a negative width is a '-' flag
    // and its absolute value, so a long key is followed by as many spaces as it overshoots.
    const bytes = withModinfo(new Uint8Array(readFileSync(join(DIR, "good.ko"))), () => [
      "fifteen_chars_k=a",
      "sixteen_chars_ke=b",
      "twenty_characters_ke=c",
    ]);
    put("long.ko", bytes);
    const r = await modinfo("long.ko");
    expect(r.stdout.split("\n").slice(1)).toEqual(["fifteen_chars_k:a", "sixteen_chars_ke: b", "twenty_characters_ke:     c", ""]);
  });

  it("-F FIELD prints only that field's values, one per line; -F filename the path; an absent field nothing", async ({ expect }) => {
    const alias = await modinfo("-F", "alias", "good.ko", "odd.ko");
    expect(alias.stdout).toBe("kemu:best\nkemu:good\nz\na\n");
    expect(alias.status).toBe(0);
    const file = await modinfo("--field", "filename", "good.ko");
    expect(file.stdout).toBe(`${DIR}/good.ko\n`);
    const none = await modinfo("-F", "firmware", "good.ko");
    expect(none).toEqual({ status: 0, stdout: "", stderr: "" });
  });

  it("-l, -a, -d and -n are -F license, author, description and filename", async ({ expect }) => {
    const [l, a, d, n] = await Promise.all([
      modinfo("-l", "good.ko", "closed.ko"),
      modinfo("-a", "good.ko", "closed.ko"),
      modinfo("-d", "good.ko", "closed.ko"),
      modinfo("-n", "good.ko", "closed.ko"),
    ]);
    expect(l.stdout).toBe("GPL\nProprietary\n");
    expect(a.stdout).toBe("A. Hacker <a@example.org>\n");
    expect(d.stdout).toBe("a good driver\na closed driver\n");
    expect(n.stdout).toBe(`${DIR}/good.ko\n${DIR}/closed.ko\n`);
    for (const r of [l, a, d, n]) expect([r.status, r.stderr]).toEqual([0, ""]);
  });

  it("-0 ends each entry with NUL: filename still padded, then key=value", async ({ expect }) => {
    const r = await modinfo("-0", "closed.ko");
    expect(r.status).toBe(0);
    expect(r.stdout.split("\0")).toEqual([
      `filename:       ${DIR}/closed.ko`,
      "description=a closed driver",
      "license=Proprietary",
      expect.stringMatching(/^srcversion=[0-9A-F]{23}$/),
      "depends=",
      "retpoline=Y",
      "name=closed",
      "vermagic=4.20.0 SMP mod_unload ",
      "",
    ]);
    expect(r.stdout).not.toContain("\n");
    const f = await modinfo("--null", "-F", "alias", "good.ko");
    expect(f.stdout).toBe("kemu:best\0kemu:good\0");
  });

  it("a missing file: 'Module X not found.', exit 1", async ({ expect }) => {
    const r = await modinfo("missing.ko");
    expect(r).toEqual({ status: 1, stdout: "", stderr: "modinfo: ERROR: Module missing.ko not found.\n" });
    mkdirSync(join(DIR, "adir.ko"), { recursive: true });
    // Not a regular file: kmod looks it up as an alias, which finds nothing either.
    const d = await modinfo("adir.ko");
    expect(d).toEqual({ status: 1, stdout: "", stderr: "modinfo: ERROR: Module adir.ko not found.\n" });
  });

  it("a file that is not a module: filename printed, then 'could not get modinfo' with kmod's module name, exit 1", async ({ expect }) => {
    // modinfo_do() prints the filename line before kmod_module_get_info() fails with -ENOEXEC;
    // the name is path_to_modname()'s: up to the first '.', '-' read as '_'.
    const r = await modinfo("not-a.mod.ko");
    expect(r.stderr).toBe("modinfo: ERROR: could not get modinfo from 'not_a': Exec format error\n");
    expect(r.stdout).toBe(`filename:       ${DIR}/not-a.mod.ko\n`);
    expect(r.status).toBe(1);
    // -n (-F filename) returns before the file is read at all.
    const n = await modinfo("-n", "not-a.mod.ko");
    expect(n).toEqual({ status: 0, stdout: `${DIR}/not-a.mod.ko\n`, stderr: "" });
  });

  it("an existing file without a module extension is looked up as an alias: not found", async ({ expect }) => {
    // is_module_filename() wants a regular file ending in .ko (or .ko.gz/.ko.xz); the rest go
    // to modinfo_alias_do().
    const r = await modinfo("src/good.ts");
    expect(r).toEqual({ status: 1, stdout: "", stderr: "modinfo: ERROR: Module src/good.ts not found.\n" });
  });

  it("several files, one missing: the others are printed in order, the error in its place, exit 1", async ({ expect }) => {
    const r = await modinfo("-F", "name", "good.ko", "missing.ko", "closed.ko");
    expect(r.stdout).toBe("good\nclosed\n");
    expect(r.stderr).toBe("modinfo: ERROR: Module missing.ko not found.\n");
    expect(r.status).toBe(1);
    const full = await modinfo("closed.ko", "missing.ko", "good.ko");
    const goodOut = GOOD_LINES(join(DIR, "good.ko")).join("\n") + "\n";
    expect(full.stdout.slice(-goodOut.length)).toBe(goodOut);
    expect(full.stdout.split("\n").slice(0, 2)).toEqual([`filename:       ${DIR}/closed.ko`, "description:    a closed driver"]);
    expect(full.stdout.split("\n")).toHaveLength(8 + 11 + 1);
    expect(full.stderr).toBe("modinfo: ERROR: Module missing.ko not found.\n");
    expect(full.status).toBe(1);
  });

  it("no file is a usage error (exit 2); --help exits 0", async ({ expect }) => {
    const r = await modinfo();
    expect(r).toEqual({
      status: 2,
      stdout: "",
      stderr: "kemu modinfo: missing module file (kemu modinfo FILE.ko)\nRun `kemu modinfo --help` for usage.\n",
    });
    const bad = await modinfo("-x", "good.ko");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe("kemu modinfo: Unknown option '-x'\nRun `kemu modinfo --help` for usage.\n");
    const h = await modinfo("--help");
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/^Usage: kemu modinfo \[options\] FILE\.ko\.\.\.\n/);
    expect(h.stdout).toContain("-F, --field FIELD");
  });
});
