// sysfs_warn_dup() (fs/sysfs/dir.c, 4.19-5.0): a second directory or attribute with a taken
// name is WARNed with its full /sys path and a stack dump; a directory's kobject_add_internal()
// then reports the -EEXIST. The paths follow kobject_get_path(): class devices under
// /devices/virtual/CLASS or their parent's CLASS glue directory, other devices under their
// parent or /devices.

import { describe, expect, it } from "vitest";
import { EEXIST } from "../../core/errno.ts";
import { MKDEV } from "../../core/fs/file.ts";
import { child_path, device_path, Device } from "../../core/base/device.ts";
import { boot } from "../helpers/kernel.ts";

const KOBJ = (name: string) => `kobject_add_internal failed for ${name} with -EEXIST, don't try to register things with the same name in the same directory.`;

describe("sysfs duplicates", () => {
  it("device_create() of a name its class has: the virtual class path, a stack dump, kobject_add_internal's line", async () => {
    const k = await boot();
    const cls = k.chrdevs.class_create(null, "widget");
    if (typeof cls === "number") throw new Error("class_create");
    expect(k.chrdevs.device_create(cls, null, MKDEV(240, 0), null, "widget0")).toBeInstanceOf(Device);
    const seq = k.log.nextSeq;
    expect(k.chrdevs.device_create(cls, null, MKDEV(240, 1), null, "widget0")).toBe(-EEXIST);
    const msgs = k.log.messages(seq);
    expect(msgs[0]).toBe("sysfs: cannot create duplicate filename '/devices/virtual/widget/widget0'");
    expect(msgs).toContain("Call Trace:");
    expect(msgs).toContain(" device_create");
    expect(msgs.at(-1)).toBe(KOBJ("widget0"));
    k.chrdevs.class_destroy(cls);
  });

  it("device_create_file() of an attribute the device has: the attribute's path, a stack dump, no kobject line", async () => {
    const k = await boot();
    const cls = k.chrdevs.class_create(null, "widget");
    if (typeof cls === "number") throw new Error("class_create");
    const dev = k.chrdevs.device_create(cls, null, 0, null, "w1") as Device;
    expect(k.chrdevs.device_create_file(dev, "colour", () => "red\n")).toBe(0);
    const seq = k.log.nextSeq;
    expect(k.chrdevs.device_create_file(dev, "colour", () => "blue\n")).toBe(-EEXIST);
    const msgs = k.log.messages(seq);
    expect(msgs[0]).toBe("sysfs: cannot create duplicate filename '/devices/virtual/widget/w1/colour'");
    expect(msgs).toContain(" sysfs_add_file_mode_ns");
    expect(msgs.some((m) => m.startsWith("kobject_add_internal"))).toBe(false);
    expect(k.read("/sys/class/widget/w1/colour")).toBe("red\n");
    k.chrdevs.class_destroy(cls);
  });

  it("paths: platform devices, class devices under a parent's glue directory, bus devices", async () => {
    await boot();
    const parent = new Device("region0");
    expect(device_path(parent)).toBe("/devices/region0");
    expect(child_path(parent, "namespace0.0")).toBe("/devices/region0/namespace0.0");
    expect(child_path(parent, "dax0.0", "dax")).toBe("/devices/region0/dax/dax0.0");
    expect(child_path(null, "e820_pmem", null, "platform")).toBe("/devices/platform/e820_pmem");
    expect(child_path(null, "hmm_dmirror0", "misc")).toBe("/devices/virtual/misc/hmm_dmirror0");
  });
});
