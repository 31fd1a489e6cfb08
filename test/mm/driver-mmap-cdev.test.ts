// Character device regions, cdevs, classes and their /dev nodes from a module (core/fs/cdev.ts,
// core/module/apis/cdev.ts), with an mmap through the cdev's file_operations: /proc/devices,
// chrdev_open() (-ENXIO without a cdev; cdev_get + fops_get hold the owners), sysfs
// attributes, and the teardown of what a module leaves registered. Fixture:
// test/fixtures/cdev_test.ts; each scenario runs isolated and built in.

import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { EBUSY, EINVAL, ENOENT, ENXIO } from "../../core/errno.ts";
import { O_RDWR } from "../../core/fs/file.ts";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../../core/mm/mmap.ts";
import { buildDriver, ko } from "../helpers/build.ts";
import { boot, rmmodError } from "../helpers/kernel.ts";
import { errnoOf, PAGE } from "../helpers/process.ts";

const DRIVER = fileURLToPath(new URL("../fixtures/cdev_test.ts", import.meta.url));
const CDEV_TEST_MINOR = 0x4301;
const CDEV_TEST_DEL = 0x4302;

const cdevTestKo = async () => (await buildDriver(DRIVER, "5.0")).ko;

/** A module that registers everything and forgets it all at exit. */
const FORGETFUL = `
import * as k from "kemu/kernel";
k.MODULE_LICENSE("GPL");
const c: k.cdev = {};
k.module_init(() => {
  const devt = k.alloc_chrdev_region(0, 1, "forgetful");
  const cls = k.class_create(k.THIS_MODULE, "forgetful");
  if (k.IS_ERR(cls)) return k.PTR_ERR(cls);
  k.cdev_init(c, { owner: k.THIS_MODULE });
  k.cdev_add(c, devt, 1);
  const d = k.device_create(cls, null, devt, null, "forgetful0");
  if (k.IS_ERR(d)) return k.PTR_ERR(d);
  k.printk(k.KERN_INFO + "forgetful: %d:%d %d %d\\n", k.MAJOR(devt), k.MINOR(devt),
    k.register_chrdev_region(devt, 1, "again"), k.register_chrdev_region(k.MKDEV(600, 0), 1, "huge"));
  return 0;
});
k.module_exit(() => {});
`;

for (const builtin of [false, true]) {
  describe(`char device regions and cdevs, ${builtin ? "built in" : "isolated"}`, () => {
    it("a dynamic region, a cdev, a class device with its node and attributes; open and mmap hold the module", async () => {
      const k = await boot({ version: "5.0" });
      const seq = k.log.nextSeq;
      await k.insmod(await cdevTestKo(), { builtin, filename: "cdev_test.ko" });
      expect(k.log.messages(seq)).toEqual(["cdev_test: major 254"]);
      expect(k.read("/proc/devices")).toBe("Character devices:\n 10 misc\n254 cdev_test\n\nBlock devices:\n");
      expect(k.read("/sys/class/cdev_test/cdtest0/dev")).toBe("254:0\n");
      expect(k.read("/sys/class/cdev_test/cdtest0/value")).toBe("42\n");
      // Minor 1 is in the cdev but has no device, so no node.
      expect(k.devtmpfs.list()).toContain("cdtest0");
      expect(k.devtmpfs.has("/dev/cdtest1")).toBe(false);
      const p = k.spawn("app");
      const fd = p.open("/dev/cdtest0", O_RDWR);
      expect(p.ioctl(fd, CDEV_TEST_MINOR)).toBe(0);
      // The open file holds the cdev's owner and the fops' owner: the same module, twice.
      expect(k.read("/proc/modules")).toMatch(/^cdev_test \d+ 2 /);
      expect(errnoOf(() => p.mmap(0, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 0))).toBe(EINVAL);
      const a = p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      expect(new TextDecoder().decode(p.read(a, 14))).toBe("cdev_test page");
      p.close(fd);
      expect(rmmodError(k, "cdev_test")!.message).toBe("rmmod: ERROR: Module cdev_test is in use");
      p.munmap(a, PAGE);
      k.rmmod("cdev_test");
      expect(k.read("/proc/devices")).toBe("Character devices:\n 10 misc\n\nBlock devices:\n");
      expect(errnoOf(() => p.open("/dev/cdtest0", O_RDWR))).toBe(ENOENT);
      expect(errnoOf(() => k.read("/sys/class/cdev_test/cdtest0/value"))).toBe(ENOENT);
    });

    it("cdev_del(): open files keep working, a new open of the node is -ENXIO", async () => {
      const k = await boot({ version: "5.0" });
      await k.insmod(await cdevTestKo(), { builtin, filename: "cdev_test.ko" });
      const p = k.spawn("app");
      const fd = p.open("/dev/cdtest0", O_RDWR);
      p.ioctl(fd, CDEV_TEST_DEL);
      expect(errnoOf(() => p.open("/dev/cdtest0", O_RDWR))).toBe(ENXIO);
      expect(p.ioctl(fd, CDEV_TEST_MINOR)).toBe(0);
      p.close(fd);
      k.rmmod("cdev_test");
    });

    it("a module that forgets its region, class, cdev and device at exit: each is removed with a line; conflicts are -EBUSY / -EINVAL", async () => {
      const k = await boot({ version: "5.0" });
      const seq = k.log.nextSeq;
      await k.insmod(await ko("forgetful", FORGETFUL, { kernel: "5.0", intree: true }), { builtin, filename: "forgetful.ko" });
      expect(k.log.messages(seq)).toEqual([
        'CHRDEV "huge" major requested (600) is greater than the maximum (511)',
        `forgetful: 254:0 ${-EBUSY} ${-EINVAL}`,
      ]);
      const s2 = k.log.nextSeq;
      k.rmmod("forgetful");
      expect(k.log.messages(s2)).toEqual([
        "kemu: forgetful: device 'forgetful0' still registered at unload; removing it",
        "kemu: forgetful: cdev 254:0 still registered at unload; removing it",
        "kemu: forgetful: class 'forgetful' still registered at unload; removing it",
        "kemu: forgetful: char device region 'forgetful' (254:0, 1 minors) still registered at unload; removing it",
      ]);
      expect(k.read("/proc/devices")).toBe("Character devices:\n 10 misc\n\nBlock devices:\n");
      expect(k.devtmpfs.list()).not.toContain("forgetful0");
    });
  });
}
