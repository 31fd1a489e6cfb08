// The block layer: request queues and bios (blk-core.ts), disks (genhd.ts) and the block
// device files processes open (block_dev.ts).

import type { File } from "../fs/file.ts";
import type { Kernel } from "../kernel.ts";
import { BlockCore } from "./blk-core.ts";
import { BlockDevices } from "./block_dev.ts";
import { Disks, type Gendisk } from "./genhd.ts";

export class BlockLayer {
  readonly core: BlockCore;
  readonly disks: Disks;
  readonly bdevs: BlockDevices;

  constructor(k: Kernel) {
    this.core = new BlockCore(k);
    this.disks = new Disks(k);
    this.bdevs = new BlockDevices(k, this.core, this.disks);
  }

  /** device_add_disk(): the disk's /dev node opens through the block device layer. */
  open(disk: Gendisk, path: string, flags: number): File | number {
    return this.bdevs.open(disk, path, flags);
  }
}
