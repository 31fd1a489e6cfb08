// The kernel version a module runs on (include/generated/uapi/linux/version.h). In C these are
// macros of the tree the module is built against; insmod's vermagic check makes that the
// running kernel, so kemu answers from the running kernel's profile. In-tree drivers use it
// where one source serves 4.20 and 5.0 (dax_pmem: pgmap->kill arrived in 5.0).

import { defineApis, type CallCtx } from "../api.ts";

function KERNEL_VERSION(a: number, b: number, c: number): number {
  return a * 65536 + b * 256 + Math.min(c, 255);
}

export const VERSION_APIS = defineApis([
  {
    name: "LINUX_VERSION_CODE", symbols: [], params: [], ret: "num", proto: "#define LINUX_VERSION_CODE /* KERNEL_VERSION() of the kernel the module is built for */",
    impl: (c: CallCtx) => {
      const [a, b, p] = c.k.profile.release.split(".").map(Number);
      return KERNEL_VERSION(a ?? 0, b ?? 0, p ?? 0);
    },
  },
  {
    name: "KERNEL_VERSION", symbols: [], params: ["int", "int", "int"], ret: "num", proto: "#define KERNEL_VERSION(a,b,c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))",
    impl: (_c: CallCtx, a: number, b: number, c: number) => KERNEL_VERSION(a, b, c),
  },
]);
