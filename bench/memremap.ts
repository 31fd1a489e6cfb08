// devm_memremap_pages() of a 1 TiB pmem range: wall time of the call and heap growth while
// mapped (after a full GC on each side, so it can come out slightly negative). Sections are
// materialised only when touched, so both should stay near zero.

import { Device, DeviceDriver, BusType } from "../core/base/device.ts";
import { Kernel } from "../core/kernel.ts";
import { DevPagemap, MEMORY_DEVICE_FS_DAX } from "../core/mm/memremap.ts";
import { Resource } from "../core/mm/resource.ts";
import { gc, type Figure } from "./figure.ts";

const TiB = 2 ** 40;
const PMEM_START = 2 ** 32;

interface Ctx {
  k: Kernel;
  bus: BusType;
  n: number;
}

/** Bind a device whose probe maps the whole terabyte the way a 5.0 fsdax owner does. */
function mapTerabyte(ctx: Ctx): { dev: Device; drv: DeviceDriver; ms: number } {
  const { k, bus } = ctx;
  const name = `pmem${ctx.n++}`;
  let ms = 0;
  const drv = new DeviceDriver(name, {
    probe: (dev) => {
      const pgmap = new DevPagemap();
      pgmap.res = Resource.mem(PMEM_START, TiB, dev.name);
      pgmap.type = MEMORY_DEVICE_FS_DAX;
      const ref = k.percpu_ref_init(() => {});
      pgmap.ref = ref;
      pgmap.kill = (r) => r.kill();
      k.base.devm_add_action(dev, () => ref.exit(), null);
      const t0 = performance.now();
      const addr = k.mm.memremap.devm_memremap_pages(dev, pgmap);
      ms = performance.now() - t0;
      if (addr < 0) throw new Error(`devm_memremap_pages of 1 TiB failed: ${addr}`);
      return 0;
    },
  });
  k.base.driver_register(drv, bus);
  const dev = new Device(name);
  k.base.device_register(dev, bus);
  return { dev, drv, ms };
}

function unmap(ctx: Ctx, { dev, drv }: { dev: Device; drv: DeviceDriver }): void {
  ctx.k.base.device_unregister(dev);
  ctx.k.base.driver_unregister(drv);
}

async function setup(): Promise<Ctx> {
  const k = await Kernel.boot({ version: "5.0", memory: "1G", pmem: [{ size: "1T", start: PMEM_START + 0 }], autoload: false });
  const bus = new BusType("bench");
  k.base.bus_register(bus);
  return { k, bus, n: 0 };
}


export const memremapTime: Figure<Ctx> = {
  name: "memremap_1tib_ms",
  unit: "ms",
  what: "devm_memremap_pages() of a 1 TiB range",
  target: { op: "<=", value: 5 },
  repeats: 15,
  setup,
  sample(ctx) {
    const { ms, ...mapped } = mapTerabyte(ctx);
    unmap(ctx, mapped);
    return ms;
  },
  async teardown(ctx) {
    await ctx.k.shutdown();
  },
};

export const memremapHeap: Figure<Ctx> = {
  name: "memremap_1tib_heap_mib",
  unit: "MiB",
  what: "JS heap growth while a 1 TiB range is mapped",
  target: { op: "<=", value: 1 },
  repeats: 7,
  setup,
  sample(ctx) {
    gc();
    const before = process.memoryUsage().heapUsed;
    const mapped = mapTerabyte(ctx);
    gc();
    const after = process.memoryUsage().heapUsed;
    unmap(ctx, mapped);
    return (after - before) / 2 ** 20;
  },
  async teardown(ctx) {
    await ctx.k.shutdown();
  },
};
