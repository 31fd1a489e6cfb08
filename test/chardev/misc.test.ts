// Character devices a driver registers with misc_register() (drivers/char/misc.c, 4.19-5.0)
// and a process reaches through /dev: open (misc_open: the device by minor, fops_get, private
// data, ->open), ioctl (vfs_ioctl), close (->release, fops_put), and the user-memory copies
// an ioctl makes (copy_from_user/copy_to_user of the calling process, through its fault path).
// Each scenario runs with the driver isolated and built in (principle 6).

import { describe, expect, it } from "vitest";
import type { Kernel } from "../../core/kernel.ts";
import { O_RDONLY, O_RDWR } from "../../core/fs/file.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { EFAULT, EBUSY, ENOENT, EBADF, ENOTTY, EINVAL } from "../../core/errno.ts";
import { ko } from "../helpers/build.ts";
import { boot, rmmodError } from "../helpers/kernel.ts";
import { errnoOf, PAGE } from "../helpers/process.ts";

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

// ioctl numbers of the test device
const ECHO = 1; // copy arg[0..16) in, add one to each byte, copy it back: returns 16 - not copied
const PEEK = 2; // what the process wrote at arg (8 bytes), printed
const POKE = 3; // write "kemu" at arg; returns bytes not copied
const WHO = 4; // returns current's pid, after checking file->private_data is the open's state
const BIG = 5; // copy 1 MiB in and back out (larger than the transfer buffer)
const NOCMD = 6; // returns -ENOIOCTLCMD
const OOPS = 7; // throws
const OPENS = 8; // how many opens the device saw

const DRIVER = `
import {
  MODULE_LICENSE, module_init, module_exit, THIS_MODULE, printk, KERN_INFO, EFAULT, EBUSY, ENOTTY, ENOIOCTLCMD,
  MISC_DYNAMIC_MINOR, misc_register, misc_deregister, copy_from_user, copy_to_user, get_current, mmgrab, mmdrop, iminor,
  type file, type inode, type miscdevice, type mm_struct,
} from "kemu/kernel";
MODULE_LICENSE("GPL v2");

interface State { id: number; mm: mm_struct; }
let opens = 0;
let failNextOpen = false;

const dev: miscdevice = {
  minor: MISC_DYNAMIC_MINOR,
  name: "kemu_misc",
  fops: {
    owner: THIS_MODULE,
    open(inode: inode, f: file): number {
      // misc_open() put the miscdevice in private_data before calling us.
      if (f.private_data !== dev) return -EFAULT;
      if (failNextOpen) { failNextOpen = false; return -EBUSY; }
      const mm = get_current().mm!;
      mmgrab(mm);
      opens++;
      printk(KERN_INFO + "misc: open minor %d mode %d\\n", iminor(inode), f.f_mode);
      const st: State = { id: opens, mm };
      f.private_data = st;
      return 0;
    },
    release(_inode: inode, f: file): number {
      const st = f.private_data as State;
      printk(KERN_INFO + "misc: release %d\\n", st.id);
      mmdrop(st.mm);
      return 0;
    },
    unlocked_ioctl(f: file, cmd: number, arg: number): number {
      const st = f.private_data as State;
      switch (cmd) {
        case ${ECHO}: {
          const b = new Uint8Array(16);
          const left = copy_from_user(b, arg, 16);
          for (let i = 0; i < 16; i++) b[i] = (b[i]! + 1) & 0xff;
          copy_to_user(arg, b, 16 - left);
          return 16 - left;
        }
        case ${PEEK}: {
          const b = new Uint8Array(8);
          if (copy_from_user(b, arg, 8)) return -EFAULT;
          printk(KERN_INFO + "misc: peek %s\\n", Array.from(b).join(","));
          return 0;
        }
        case ${POKE}:
          return copy_to_user(arg, new Uint8Array([107, 101, 109, 117]), 4);
        case ${WHO}:
          return st && st.mm ? get_current().pid : -EFAULT;
        case ${BIG}: {
          const b = new Uint8Array(1 << 20);
          if (copy_from_user(b, arg, b.length)) return -EFAULT;
          for (let i = 0; i < b.length; i++) b[i] = b[i]! ^ 0xff;
          return copy_to_user(arg, b, b.length) ? -EFAULT : 0;
        }
        case ${NOCMD}:
          return -ENOIOCTLCMD;
        case ${OOPS}:
          throw new Error("ioctl blew up");
        case ${OPENS}:
          return opens;
        case 99:
          failNextOpen = true;
          return 0;
      }
      return -ENOTTY;
    },
  },
};

module_init(() => misc_register(dev));
module_exit(() => misc_deregister(dev));
`;

async function load(k: Kernel, builtin: boolean, source = DRIVER, name = "kemu_misc"): Promise<void> {
  await k.insmod(await ko(name, source, { kernel: k.config.version, intree: true }), { builtin });
}

for (const builtin of [false, true]) {
  describe(`misc devices, the driver ${builtin ? "built in" : "isolated"}`, () => {
    it("misc_register() gives /dev/NAME a dynamic minor counted down from 63; /proc/misc lists it", async () => {
      const k = await boot({ version: "5.0" });
      await load(k, builtin);
      expect(k.read("/proc/misc")).toBe(" 63 kemu_misc\n");
      const p = k.spawn("app");
      const seq = k.log.nextSeq;
      const fd = p.open("/dev/kemu_misc", O_RDWR);
      expect(fd).toBe(3);
      expect(k.log.messages(seq)).toEqual(["misc: open minor 63 mode 3"]);
      p.close(fd);
      k.rmmod("kemu_misc");
      expect(k.read("/proc/misc")).toBe("");
      expect(errnoOf(() => p.open("/dev/kemu_misc", O_RDWR))).toBe(ENOENT);
    });

    it("open: ENOENT without the node, the driver's error from ->open (no ->release, no reference kept)", async () => {
      const k = await boot({ version: "4.20" });
      await load(k, builtin);
      const p = k.spawn("app");
      expect(errnoOf(() => p.open("/dev/nosuch", O_RDWR))).toBe(ENOENT);
      expect(errnoOf(() => p.open("/dev", O_RDWR))).toBe(ENOENT);
      const fd = p.open("/dev/kemu_misc", O_RDONLY);
      p.ioctl(fd, 99);
      const seq = k.log.nextSeq;
      expect(errnoOf(() => p.open("/dev/kemu_misc", O_RDWR))).toBe(EBUSY);
      expect(k.log.messages(seq)).toEqual([]);
      expect(k.lsmod()).toMatch(/^kemu_misc\s+\d+\s+1$/m);
      p.close(fd);
      expect(k.lsmod()).toMatch(/^kemu_misc\s+\d+\s+0$/m);
    });

    it("each open file holds a module reference (fops.owner): rmmod says it is in use until the last close", async () => {
      const k = await boot({ version: "5.0" });
      await load(k, builtin);
      const p = k.spawn("app");
      const a = p.open("/dev/kemu_misc", O_RDWR);
      expect(p.open("/dev/kemu_misc", O_RDWR)).toBe(a + 1);
      expect(k.read("/proc/modules")).toMatch(/^kemu_misc \d+ 2 - Live/);
      expect(rmmodError(k, "kemu_misc")!.message).toBe("rmmod: ERROR: Module kemu_misc is in use");
      const seq = k.log.nextSeq;
      p.close(a);
      expect(rmmodError(k, "kemu_misc")!.message).toBe("rmmod: ERROR: Module kemu_misc is in use");
      p.exit(); // closes b
      expect(k.log.messages(seq)).toEqual(["misc: release 1", "misc: release 2"]);
      k.rmmod("kemu_misc");
    });

    it("file->private_data is the driver's own value, per open file; ioctl runs as the calling process", async () => {
      const k = await boot({ version: "5.0" });
      await load(k, builtin);
      const p = k.spawn("app");
      const q = k.spawn("other");
      const fp = p.open("/dev/kemu_misc", O_RDWR);
      const fq = q.open("/dev/kemu_misc", O_RDWR);
      expect(p.ioctl(fp, WHO)).toBe(p.pid);
      expect(q.ioctl(fq, WHO)).toBe(q.pid);
      expect(p.ioctl(fp, OPENS)).toBe(2);
      const seq = k.log.nextSeq;
      q.close(fq);
      p.close(fp);
      expect(k.log.messages(seq)).toEqual(["misc: release 2", "misc: release 1"]);
    });

    it("ioctl: the driver's value; its errors as errno; -ENOIOCTLCMD and no ->unlocked_ioctl are ENOTTY; a bad fd EBADF", async () => {
      const k = await boot({ version: "5.0" });
      await load(k, builtin);
      const p = k.spawn("app");
      const fd = p.open("/dev/kemu_misc", O_RDWR);
      expect(errnoOf(() => p.ioctl(fd, 1234))).toBe(ENOTTY);
      expect(errnoOf(() => p.ioctl(fd, NOCMD))).toBe(ENOTTY);
      expect(errnoOf(() => p.ioctl(fd, PEEK, 0))).toBe(EFAULT);
      expect(errnoOf(() => p.ioctl(17, WHO))).toBe(EBADF);
      expect(errnoOf(() => p.ioctl(fd, WHO, -1))).toBe(EINVAL);
      const memfd = p.memfd_create("x");
      expect(errnoOf(() => p.ioctl(memfd, WHO))).toBe(ENOTTY);
      p.close(fd);
    });

    it("copy_from_user/copy_to_user: the process's memory through its fault path; what cannot be reached is not copied", async () => {
      const k = await boot({ version: "5.0" });
      await load(k, builtin);
      const p = k.spawn("app");
      const fd = p.open("/dev/kemu_misc", O_RDWR);
      const buf = p.mmap(0, 2 * PAGE, RW, ANON);
      p.write(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
      // A round trip: every byte plus one.
      expect(p.ioctl(fd, ECHO, buf)).toBe(16);
      expect([...p.read(buf, 16)]).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 1, 1, 1, 1, 1, 1, 1, 1]);
      // The second page was never touched: copy_from_user() reads zeroes (the zero page),
      // copy_to_user() faults a page in.
      expect(p.ioctl(fd, ECHO, buf + PAGE)).toBe(16);
      expect([...p.read(buf + PAGE, 16)]).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
      // Half the buffer past the end of the mapping: 8 bytes copied, 8 not.
      p.munmap(buf + PAGE, PAGE);
      const seq = k.log.nextSeq;
      expect(p.ioctl(fd, ECHO, buf + PAGE - 8)).toBe(8);
      expect([...p.read(buf + PAGE - 8, 8)]).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
      // Nothing is reachable: -EFAULT from the driver; no signal for the process.
      expect(errnoOf(() => p.ioctl(fd, PEEK, buf + PAGE))).toBe(EFAULT);
      expect(errnoOf(() => p.ioctl(fd, PEEK, 2 ** 47))).toBe(EFAULT);
      expect(k.log.messages(seq)).toEqual([]);
      // copy_to_user() into a read-only mapping copies nothing.
      const ro = p.mmap(0, PAGE, PROT_READ, ANON);
      expect(p.ioctl(fd, POKE, ro)).toBe(4);
      expect([...p.read(ro, 4)]).toEqual([0, 0, 0, 0]);
      expect(p.ioctl(fd, POKE, buf)).toBe(0);
      expect(new TextDecoder().decode(p.read(buf, 4))).toBe("kemu");
      // A read-only page can be read.
      p.ioctl(fd, PEEK, ro);
      expect(k.log.messages(seq).at(-1)).toBe("misc: peek 0,0,0,0,0,0,0,0");
      p.close(fd);
    });

    it("a buffer larger than the transfer buffer travels as a copy, both ways", async () => {
      const k = await boot({ version: "5.0" });
      await load(k, builtin);
      const p = k.spawn("app");
      const fd = p.open("/dev/kemu_misc", O_RDWR);
      const buf = p.mmap(0, 1 << 20, RW, ANON);
      const data = new Uint8Array(1 << 20).map((_, i) => (i * 13) & 0xff);
      p.write(buf, data);
      expect(p.ioctl(fd, BIG, buf)).toBe(0);
      const back = p.read(buf, 1 << 20);
      expect(back.every((v, i) => v === (data[i]! ^ 0xff))).toBe(true);
      p.close(fd);
    });

    it("a driver that throws in ioctl is contained: -EFAULT, an oops naming it, its device goes; close still works", async () => {
      const k = await boot({ version: "5.0" });
      await load(k, builtin);
      const p = k.spawn("app");
      const fd = p.open("/dev/kemu_misc", O_RDWR);
      const seq = k.log.nextSeq;
      expect(errnoOf(() => p.ioctl(fd, OOPS))).toBe(EFAULT);
      const msgs = k.log.messages(seq);
      expect(msgs[0]).toBe("kemu: kemu_misc: Error: ioctl blew up");
      expect(msgs).toContain("RIP: 0010:unlocked_ioctl [kemu_misc]");
      expect(k.read("/proc/misc")).toBe("");
      expect(errnoOf(() => p.open("/dev/kemu_misc", O_RDWR))).toBe(ENOENT);
      // The file is still open: calls into the dead driver fail, its release is skipped.
      expect(errnoOf(() => p.ioctl(fd, WHO))).toBe(EFAULT);
      p.close(fd);
      expect(k.read("/proc/modules")).toBe("");
      expect(k.tainted()).toMatch(/D/);
    });
  });
}

describe("misc_register()/misc_deregister() errors", () => {
  const TWO = `
import { MODULE_LICENSE, module_init, module_exit, MISC_DYNAMIC_MINOR, misc_register, misc_deregister, printk, KERN_INFO, type miscdevice } from "kemu/kernel";
MODULE_LICENSE("GPL");
const a: miscdevice = { minor: MISC_DYNAMIC_MINOR, name: "twin", fops: {} };
const b: miscdevice = { minor: MISC_DYNAMIC_MINOR, name: "twin", fops: {} };
const c: miscdevice = { minor: 130, name: "fixed", fops: {} };
const d: miscdevice = { minor: 130, name: "fixed2", fops: {} };
module_init(() => {
  printk(KERN_INFO + "a %d\\n", misc_register(a));
  printk(KERN_INFO + "b %d minor %d\\n", misc_register(b), b.minor);
  printk(KERN_INFO + "c %d\\n", misc_register(c));
  printk(KERN_INFO + "d %d\\n", misc_register(d));
  misc_deregister(b);
  return 0;
});
module_exit(() => { misc_deregister(a); misc_deregister(c); });
`;

  it("a second device of the same name is -EEXIST with sysfs's lines; a fixed minor taken is -EBUSY; deregistering one never registered WARNs", async () => {
    const k = await boot({ version: "5.0" });
    const seq = k.log.nextSeq;
    await k.insmod(await ko("twinmisc", TWO));
    const msgs = k.log.messages(seq).filter((l) => !/^ |^Call Trace|^CPU:|^Hardware|^RIP|^Modules|^---\[ end|^Spectre|loading/.test(l));
    expect(msgs).toEqual([
      "a 0",
      "sysfs: cannot create duplicate filename '/devices/virtual/misc/twin'",
      "kobject_add_internal failed for twin with -EEXIST, don't try to register things with the same name in the same directory.",
      "b -17 minor 255",
      "c 0",
      "d -16",
      // WARN_ON() in 4.19-5.0: no "cut here" line (only WARN() with a message has one).
      "WARNING: CPU: 0 PID: 100 at drivers/char/misc.c misc_deregister",
    ]);
    expect(k.read("/proc/misc")).toBe("130 fixed\n 63 twin\n");
    k.rmmod("twinmisc");
    expect(k.read("/proc/misc")).toBe("");
  });

  it("a module that leaves its device registered at unload: a line, and the device goes", async () => {
    const k = await boot({ version: "5.0" });
    await k.insmod(await ko("leaky", `
import { MODULE_LICENSE, module_init, module_exit, MISC_DYNAMIC_MINOR, misc_register, type miscdevice } from "kemu/kernel";
MODULE_LICENSE("GPL");
const m: miscdevice = { minor: MISC_DYNAMIC_MINOR, name: "leaky", fops: {} };
module_init(() => misc_register(m));
module_exit(() => {});
`));
    const seq = k.log.nextSeq;
    k.rmmod("leaky");
    expect(k.log.messages(seq)).toEqual(["kemu: leaky: misc device 'leaky' still registered at unload; deregistering it"]);
    expect(k.read("/proc/misc")).toBe("");
    const p = k.spawn("app");
    expect(errnoOf(() => p.open("/dev/leaky", O_RDWR))).toBe(ENOENT);
  });
});
