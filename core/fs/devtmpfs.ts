// devtmpfs: the /dev nodes of registered devices (drivers/base/devtmpfs.c). Each kind of
// device (misc, char regions, block disks) adds a node when its device is added and removes
// it when the device goes; open(2) of /dev/NAME reaches the device's own open path.

import { EEXIST, ENOENT } from "../errno.ts";
import { MKDEV, type File } from "./file.ts";

/** The s_dev of devtmpfs, where the nodes' inodes live (MKDEV(0, 6) on a typical boot). */
export const DEVTMPFS_DEV = MKDEV(0, 6);

/** What a node opens: the file, or a negative errno. */
export type DevNodeOpen = (path: string, flags: number) => File | number;

/** A node: what it opens, and the device it was made for (its mode and rdev). */
interface DevNode {
  open: DevNodeOpen;
  rdev: number;
  block: boolean;
}

export class Devtmpfs {
  readonly #nodes = new Map<string, DevNode>();

  /**
   * devtmpfs_create_node(): -EEXIST when the name is taken (by another device, which keeps
   * it). `name` is relative to /dev; `rdev` and `block` say whose node it is.
   */
  create_node(name: string, rdev: number, open: DevNodeOpen, block = false): number {
    if (this.#nodes.has(name)) return -EEXIST;
    this.#nodes.set(name, { open, rdev, block });
    return 0;
  }

  /**
   * devtmpfs_delete_node(): handle_remove() removes the node only when dev_mynode(): a node
   * of that name another device made stays.
   */
  delete_node(name: string, rdev: number, block = false): void {
    const n = this.#nodes.get(name);
    if (n && n.rdev === rdev && n.block === block) this.#nodes.delete(name);
  }

  /** Is there a node /dev/NAME? */
  has(path: string): boolean {
    return this.#nodes.has(nodeName(path) ?? "");
  }

  /** open(2) of a path under /dev: -ENOENT when there is no such node. */
  open(path: string, flags: number): File | number {
    const name = nodeName(path);
    const node = name === null ? undefined : this.#nodes.get(name);
    return node ? node.open(path, flags) : -ENOENT;
  }

  /** Node names, sorted (ls /dev). */
  list(): string[] {
    return [...this.#nodes.keys()].sort();
  }
}

function nodeName(path: string): string | null {
  return path.startsWith("/dev/") && path.length > 5 ? path.slice(5) : null;
}
