// devtmpfs (drivers/base/devtmpfs.c) with two kinds of device of one name: the second node is
// not made (-EEXIST), and the second device going does not take the first one's node with it
// (handle_remove() deletes a node only when dev_mynode(): its mode and dev_t are the device's).

import { describe, expect, it } from "vitest";
import { EEXIST } from "../../core/errno.ts";
import { MiscDevice } from "../../core/fs/chrdev.ts";
import { MKDEV } from "../../core/fs/file.ts";
import type { DeviceClass } from "../../core/fs/cdev.ts";
import { boot } from "../helpers/kernel.ts";

describe("devtmpfs nodes of a misc device and a class device of the same name", () => {
  it("the class device's removal leaves the misc device's /dev node", async () => {
    const k = await boot();
    const misc = new MiscDevice();
    misc.name = "twin";
    misc.fops = { owner: null, open: null, release: null, unlocked_ioctl: null, mmap: null, get_unmapped_area: null };
    expect(k.misc.misc_register(misc, null)).toBe(0);
    const cls = k.chrdevs.class_create(null, "twins") as DeviceClass;
    const devt = k.chrdevs.alloc_chrdev_region(0, 1, "twins");
    k.chrdevs.device_create(cls, null, devt, null, "twin");
    // The node is the misc device's still: another one of that name cannot be made.
    expect(k.devtmpfs.create_node("twin", devt, () => -1)).toBe(-EEXIST);
    k.chrdevs.device_destroy(cls, devt);
    expect(k.devtmpfs.list()).toContain("twin");
    k.devtmpfs.delete_node("twin", MKDEV(10, 0)); // not misc's minor: not its node either
    expect(k.devtmpfs.has("/dev/twin")).toBe(true);
    k.misc.misc_deregister(misc);
    expect(k.devtmpfs.has("/dev/twin")).toBe(false);
    k.chrdevs.class_destroy(cls);
    k.chrdevs.unregister_chrdev_region(devt, 1);
  });
});
