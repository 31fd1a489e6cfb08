// Managed device resources (drivers/base/devres.c): a per-device stack of release actions,
// undone in strict reverse order when the driver unbinds, when probe fails, or when the
// device goes away. Each entry is a kmalloc()ed struct devres, so failslab can fail it.

import type { KBuf } from "../mm/slab.ts";
import type { Device } from "./device.ts";

export type DrRelease = (dev: Device, res: Devres) => void;

/** struct devres: the release function and the data it releases. */
export class Devres {
  readonly release: DrRelease;
  /** dr->data; for devm_add_action() entries, the action and its argument. */
  readonly data: Record<string, unknown>;
  /** The name devres logging prints: the release function's name. */
  readonly name: string;
  readonly size: number;
  buf: KBuf | null;
  added = false;

  constructor(release: DrRelease, data: Record<string, unknown>, name: string, size: number, buf: KBuf | null) {
    this.release = release;
    this.data = data;
    this.name = name;
    this.size = size;
    this.buf = buf;
  }
}

/** sizeof(struct devres) on x86-64, before the payload. */
export const DEVRES_HEADER = 40;
