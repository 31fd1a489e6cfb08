// Module signatures on 4.19-5.0 (spec module-loader §4 T4 E, with the kernel's 4.19-5.0 code
// where the spec describes 5.4+): load_module() runs elf_header_check() and setup_load_info()
// first, then module_sig_check(), which looks at a signature only when the finit_module flags
// are 0. mod_verify_sig() errors are fatal, except -ENOKEY (unsigned, or a key not in the
// keyring), which only MODULE_SIG_FORCE refuses; and it refuses it silently: "Loading of %s is
// rejected" is 5.4+. Otherwise an unverified module taints E with a pr_notice_once() printed
// after add_unformed_module(). mod_verify_sig() prints its two pr_err()s without a module name
// (the "%s: " prefix came with mod_check_sig() in 5.4).

import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Kernel } from "../../core/kernel.ts";
import { ko } from "../helpers/build.ts";
import { boot, bootError, insmodError, tainted } from "../helpers/kernel.ts";

const VERSIONS = ["4.19", "4.20", "5.0"] as const;

function keyPair(): { priv: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    priv: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    pub: publicKey.export({ type: "spki", format: "pem" }) as string,
  };
}
const TRUSTED = keyPair();
const UNTRUSTED = keyPair();

const SIGMOD = `
import { MODULE_LICENSE, module_init, module_exit, printk, KERN_INFO } from "kemu/kernel";
MODULE_LICENSE("GPL");
module_init(() => { printk(KERN_INFO + "sigmod: loaded\\n"); return 0; });
module_exit(() => {});
`;
const OTHER = SIGMOD.replaceAll("sigmod", "othermod");

const SIG = { MODULE_SIG: true } as const;
const SIG_FORCE = { MODULE_SIG: true, MODULE_SIG_FORCE: true } as const;

const OOT = (m: string) => `${m}: loading out-of-tree module taints kernel.`;
const UNVERIFIED = (m: string) => `${m}: module verification failed: signature and/or required key missing - tainting kernel`;
const LOCKDEP = "Disabling lock debugging due to kernel taint";

const MARKER_LEN = "~Module signature appended~\n".length;
const SIG_INFO = 12; // struct module_signature

function unsigned(version: (typeof VERSIONS)[number] = "4.20", src = SIGMOD, name = "sigmod"): Promise<Uint8Array> {
  return ko(name, src, { kernel: version });
}
function signedBy(key: string, version: (typeof VERSIONS)[number] = "4.20", src = SIGMOD, name = "sigmod"): Promise<Uint8Array> {
  return ko(name, src, { kernel: version, signKey: key });
}

/** A copy of a signed module with its struct module_signature edited. */
function withSigInfo(file: Uint8Array, edit: (ms: Buffer) => void): Uint8Array {
  const b = Buffer.from(file);
  expect(b.subarray(b.length - MARKER_LEN).toString()).toBe("~Module signature appended~\n");
  const at = b.length - MARKER_LEN - SIG_INFO;
  edit(b.subarray(at, at + SIG_INFO));
  return new Uint8Array(b);
}

/** A copy of a signed module with one byte of its code changed (a space into a tab). */
function tampered(file: Uint8Array): Uint8Array {
  const b = Buffer.from(file);
  const at = b.length - MARKER_LEN - SIG_INFO;
  const sigLen = b.readUInt32BE(at + 8);
  const payloadEnd = at - sigLen;
  let i = payloadEnd - 1;
  while (b[i] !== 0x20) i--;
  b[i] = 0x09;
  return new Uint8Array(b);
}

const insmodMessage = (text: string) => `insmod: ERROR: could not insert module module.ko: ${text}`;

describe("CONFIG_MODULE_SIG without MODULE_SIG_FORCE", () => {
  for (const version of VERSIONS) {
    it(`${version}: an unsigned module loads, taints E, and the line comes once per boot`, async () => {
      const k = await boot({ version, kconfig: SIG, moduleSigKeys: [TRUSTED.pub] });
      let seq = k.log.nextSeq;
      await k.insmod(await unsigned(version));
      expect(k.log.messages(seq)).toEqual([OOT("sigmod"), UNVERIFIED("sigmod"), "sigmod: loaded"]);
      expect(k.tainted()).toBe(tainted("OE"));
      expect(k.read("/proc/modules")).toMatch(/^sigmod \d+ 0 - Live 0x[0-9a-f]+ \(OE\)\n$/);
      // pr_notice_once(): the next unverified module is tainted without a word.
      seq = k.log.nextSeq;
      await k.insmod(await unsigned(version, OTHER, "othermod"));
      expect(k.log.messages(seq)).toEqual(["othermod: loaded"]);
      expect(k.read("/proc/modules")).toMatch(/^othermod \d+ 0 - Live 0x[0-9a-f]+ \(OE\)\n/);
    });

    it(`${version}: a module signed with a trusted key loads without E`, async () => {
      const k = await boot({ version, kconfig: SIG, moduleSigKeys: [UNTRUSTED.pub, TRUSTED.pub] });
      const seq = k.log.nextSeq;
      await k.insmod(await signedBy(TRUSTED.priv, version));
      expect(k.log.messages(seq)).toEqual([OOT("sigmod"), "sigmod: loaded"]);
      expect(k.tainted()).toBe(tainted("O"));
      expect(k.read("/proc/modules")).toMatch(/^sigmod \d+ 0 - Live 0x[0-9a-f]+ \(O\)\n$/);
    });
  }

  it("a module signed with a key the kernel does not know counts as unsigned", async () => {
    const k = await boot({ version: "4.20", kconfig: SIG, moduleSigKeys: [TRUSTED.pub] });
    const seq = k.log.nextSeq;
    await k.insmod(await signedBy(UNTRUSTED.priv));
    expect(k.log.messages(seq)).toEqual([OOT("sigmod"), UNVERIFIED("sigmod"), "sigmod: loaded"]);
    expect(k.tainted()).toBe(tainted("OE"));
  });

  it("with no key configured at all, a signed module counts as unsigned", async () => {
    const k = await boot({ version: "5.0", kconfig: SIG });
    const seq = k.log.nextSeq;
    await k.insmod(await signedBy(TRUSTED.priv, "5.0"));
    expect(k.log.messages(seq)).toEqual([OOT("sigmod"), UNVERIFIED("sigmod"), "sigmod: loaded"]);
  });

  it("a signature that does not verify is fatal even without enforcement: -EKEYREJECTED", async () => {
    const k = await boot({ version: "4.20", kconfig: SIG, moduleSigKeys: [TRUSTED.pub] });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, tampered(await signedBy(TRUSTED.priv)));
    expect(err.errno).toBe(129);
    expect(err.message).toBe(insmodMessage("Key was rejected by service"));
    expect(k.log.messages(seq)).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("a malformed signature is fatal even without enforcement: -ENOPKG for a non-PKCS#7 id_type", async () => {
    const k = await boot({ version: "4.19", kconfig: SIG, moduleSigKeys: [TRUSTED.pub] });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, withSigInfo(await signedBy(TRUSTED.priv, "4.19"), (ms) => (ms[2] = 1)));
    expect(err.errno).toBe(65);
    expect(err.message).toBe(insmodMessage("Package not installed"));
    expect(k.log.messages(seq)).toEqual(["Module is not signed with expected PKCS#7 message"]);
    expect(k.read("/proc/modules")).toBe("");
  });

  it("the E taint stays when the load fails later", async () => {
    const src = `
      import { MODULE_LICENSE, module_init } from "kemu/kernel";
      import { not_exported_anywhere } from "kemu/extern";
      MODULE_LICENSE("GPL");
      module_init(() => not_exported_anywhere());
    `;
    const k = await boot({ version: "4.20", kconfig: SIG });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await ko("sigmod", src, { kernel: "4.20", modpostWarn: true }));
    expect(err.errno).toBe(2);
    expect(k.log.messages(seq)).toEqual([OOT("sigmod"), UNVERIFIED("sigmod"), "sigmod: Unknown symbol not_exported_anywhere (err -2)"]);
    expect(k.tainted()).toBe(tainted("OE"));
  });
});

describe("CONFIG_MODULE_SIG_FORCE", () => {
  for (const version of VERSIONS) {
    it(`${version}: an unsigned module is refused with -ENOKEY, and the kernel prints nothing`, async () => {
      const k = await boot({ version, kconfig: SIG_FORCE, moduleSigKeys: [TRUSTED.pub] });
      const seq = k.log.nextSeq;
      const err = await insmodError(k, await unsigned(version));
      expect(err.errno).toBe(126);
      expect(err.message).toBe(insmodMessage("Required key not available"));
      expect(k.log.messages(seq)).toEqual([]);
      expect(k.tainted()).toBe("Not tainted");
      expect(k.read("/proc/modules")).toBe("");
    });

    it(`${version}: a module signed with a trusted key loads, without E`, async () => {
      const k = await boot({ version, kconfig: SIG_FORCE, moduleSigKeys: [TRUSTED.pub] });
      const seq = k.log.nextSeq;
      await k.insmod(await signedBy(TRUSTED.priv, version));
      expect(k.log.messages(seq)).toEqual([OOT("sigmod"), "sigmod: loaded"]);
      expect(k.tainted()).toBe(tainted("O"));
    });
  }

  it("a key the kernel does not know: -ENOKEY", async () => {
    const k = await boot({ version: "4.20", kconfig: SIG_FORCE, moduleSigKeys: [TRUSTED.pub] });
    const seq = k.log.nextSeq;
    const err = await insmodError(k, await signedBy(UNTRUSTED.priv));
    expect(err.errno).toBe(126);
    expect(k.log.messages(seq)).toEqual([]);
  });

  it("a changed byte of code: -EKEYREJECTED; with an unknown key the key is missed first (-ENOKEY)", async () => {
    const k = await boot({ version: "5.0", kconfig: SIG_FORCE, moduleSigKeys: [TRUSTED.pub] });
    const seq = k.log.nextSeq;
    let err = await insmodError(k, tampered(await signedBy(TRUSTED.priv, "5.0")));
    expect(err.errno).toBe(129);
    expect(err.message).toBe(insmodMessage("Key was rejected by service"));
    err = await insmodError(k, tampered(await signedBy(UNTRUSTED.priv, "5.0")));
    expect(err.errno).toBe(126);
    expect(k.log.messages(seq)).toEqual([]);
  });

  it("an id_type other than PKEY_ID_PKCS7: -ENOPKG with mod_verify_sig()'s line", async () => {
    const k = await boot({ version: "4.20", kconfig: SIG_FORCE, moduleSigKeys: [TRUSTED.pub] });
    const file = await signedBy(TRUSTED.priv);
    for (const idType of [0, 1, 3]) {
      const seq = k.log.nextSeq;
      const err = await insmodError(k, withSigInfo(file, (ms) => (ms[2] = idType)));
      expect(err.errno).toBe(65);
      expect(err.message).toBe(insmodMessage("Package not installed"));
      expect(k.log.messages(seq)).toEqual(["Module is not signed with expected PKCS#7 message"]);
    }
  });

  it("any non-zero algo, hash, signer_len, key_id_len or pad byte: -EBADMSG", async () => {
    const k = await boot({ version: "4.20", kconfig: SIG_FORCE, moduleSigKeys: [TRUSTED.pub] });
    const file = await signedBy(TRUSTED.priv);
    for (const byte of [0, 1, 3, 4, 5, 6, 7]) {
      const seq = k.log.nextSeq;
      const err = await insmodError(k, withSigInfo(file, (ms) => (ms[byte] = 1)));
      expect(err.errno, `byte ${byte}`).toBe(74);
      expect(err.message).toBe(insmodMessage("Bad message"));
      expect(k.log.messages(seq)).toEqual(["PKCS#7 signature info has unexpected non-zero params"]);
    }
  });

  it("a sig_len reaching past the start of the file: -EBADMSG, nothing printed", async () => {
    const k = await boot({ version: "4.20", kconfig: SIG_FORCE, moduleSigKeys: [TRUSTED.pub] });
    const file = await signedBy(TRUSTED.priv);
    const seq = k.log.nextSeq;
    // sig_len >= what is left before struct module_signature
    const size = file.length - MARKER_LEN - SIG_INFO;
    for (const sigLen of [size, size + 1, 0xffffffff]) {
      const err = await insmodError(k, withSigInfo(file, (ms) => ms.writeUInt32BE(sigLen >>> 0, 8)));
      expect(err.errno).toBe(74);
      expect(err.message).toBe(insmodMessage("Bad message"));
    }
    // An id_type check after it does not get to run.
    const err = await insmodError(k, withSigInfo(file, (ms) => {
      ms.writeUInt32BE(size, 8);
      ms[2] = 0;
    }));
    expect(err.errno).toBe(74);
    expect(k.log.messages(seq)).toEqual([]);
  });

  it("a file that is not a module at all is -ENOEXEC: the ELF checks come before the signature", async () => {
    const k = await boot({ version: "4.20", kconfig: SIG_FORCE, moduleSigKeys: [TRUSTED.pub] });
    const err = await insmodError(k, new TextEncoder().encode("#!/bin/sh\n# a shell script handed to insmod by mistake: longer than an ELF header\necho hello\n"));
    expect(err.errno).toBe(8);
    expect(err.message).toBe(insmodMessage("Invalid module format"));
  });
});

describe("finit_module() flags != 0 (modprobe --force): the signature is not looked at", () => {
  it("without enforcement a validly signed module is tainted E", async () => {
    const k = await boot({ version: "4.20", kconfig: { ...SIG, MODULE_FORCE_LOAD: true }, moduleSigKeys: [TRUSTED.pub] });
    const seq = k.log.nextSeq;
    await k.insmod(await signedBy(TRUSTED.priv), { flags: 2 });
    expect(k.log.messages(seq)).toEqual(["sigmod: bad vermagic: kernel tainted.", LOCKDEP, OOT("sigmod"), UNVERIFIED("sigmod"), "sigmod: loaded"]);
    expect(k.tainted()).toBe(tainted("FOE"));
    expect(k.read("/proc/modules")).toMatch(/^sigmod \d+ 0 - Live 0x[0-9a-f]+ \(FOE\)\n$/);
  });

  it("with enforcement it is refused with -ENOKEY before anything else", async () => {
    const k = await boot({ version: "4.20", kconfig: { ...SIG_FORCE, MODULE_FORCE_LOAD: true }, moduleSigKeys: [TRUSTED.pub] });
    const seq = k.log.nextSeq;
    for (const flags of [1, 2, 3]) {
      const err = await insmodError(k, await signedBy(TRUSTED.priv), { flags });
      expect(err.errno).toBe(126);
      expect(err.message).toBe(insmodMessage("Required key not available"));
    }
    expect(k.log.messages(seq)).toEqual([]);
    expect(k.tainted()).toBe("Not tainted");
  });

  it("a malformed signature trailer is not looked at either (the sections ignore what follows them)", async () => {
    const k = await boot({ version: "4.20", kconfig: { ...SIG, MODULE_FORCE_LOAD: true }, moduleSigKeys: [TRUSTED.pub] });
    const file = withSigInfo(await signedBy(TRUSTED.priv), (ms) => ms.writeUInt32BE(0xffffffff, 8));
    const seq = k.log.nextSeq;
    await k.insmod(file, { flags: 2 });
    expect(k.log.messages(seq)).toEqual(["sigmod: bad vermagic: kernel tainted.", LOCKDEP, OOT("sigmod"), UNVERIFIED("sigmod"), "sigmod: loaded"]);
  });
});

describe("a kernel without CONFIG_MODULE_SIG", () => {
  for (const version of VERSIONS) {
    it(`${version}: signed or not, modules load, never tainted E`, async () => {
      const k = await boot({ version, moduleSigKeys: [TRUSTED.pub] });
      let seq = k.log.nextSeq;
      await k.insmod(await signedBy(TRUSTED.priv, version));
      expect(k.log.messages(seq)).toEqual([OOT("sigmod"), "sigmod: loaded"]);
      seq = k.log.nextSeq;
      await k.insmod(await unsigned(version, OTHER, "othermod"));
      expect(k.log.messages(seq)).toEqual(["othermod: loaded"]);
      expect(k.tainted()).toBe(tainted("O"));
    });
  }

  it("the signature is not verified: an unknown key, changed code or a broken trailer make no difference", async () => {
    const k = await boot({ version: "4.20", moduleSigKeys: [TRUSTED.pub] });
    const files = [
      await signedBy(UNTRUSTED.priv),
      tampered(await signedBy(TRUSTED.priv)),
      withSigInfo(await signedBy(TRUSTED.priv), (ms) => (ms[2] = 1)),
      withSigInfo(await signedBy(TRUSTED.priv), (ms) => ms.writeUInt32BE(0xffffffff, 8)),
    ];
    for (const [i, file] of files.entries()) {
      const seq = k.log.nextSeq;
      await k.insmod(file).catch((e: unknown) => {
        throw new Error(`file ${i}: ${String(e)}`);
      });
      expect(k.log.messages(seq), `file ${i}`).toEqual(i === 0 ? [OOT("sigmod"), "sigmod: loaded"] : ["sigmod: loaded"]);
      expect(k.tainted()).toBe(tainted("O"));
      k.rmmod("sigmod");
    }
  });
});

describe("bad boot configs for signatures", () => {
  const field = async (cfg: Parameters<typeof Kernel.boot>[0]): Promise<string> => (await bootError(cfg)).field;

  it("a moduleSigKeys entry that says PUBLIC KEY but is no key names the field", async () => {
    const junk = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n";
    expect(await field({ kconfig: SIG, moduleSigKeys: [TRUSTED.pub, junk] })).toBe("moduleSigKeys[1]");
  });

  it("a private key, an OpenSSH key or a number in moduleSigKeys names the field", async () => {
    expect(await field({ kconfig: SIG, moduleSigKeys: [TRUSTED.priv] })).toBe("moduleSigKeys[0]");
    expect(await field({ kconfig: SIG, moduleSigKeys: [TRUSTED.pub, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG"] })).toBe("moduleSigKeys[1]");
    expect(await field({ kconfig: SIG, moduleSigKeys: [42 as unknown as string] })).toBe("moduleSigKeys[0]");
  });

  it("moduleSigKeys must be a list", async () => {
    expect(await field({ kconfig: SIG, moduleSigKeys: TRUSTED.pub as unknown as string[] })).toBe("moduleSigKeys");
  });

  it("MODULE_SIG_FORCE needs MODULE_SIG", async () => {
    expect(await field({ kconfig: { MODULE_SIG_FORCE: true } })).toBe("kconfig.MODULE_SIG_FORCE");
  });
});
