// The compute engine: kemu's DRM_NOUVEAU_KEMU_VADD runs c[i] = a[i] + b[i] on the GPU, in the
// client's SVM address space. The GPU reads and writes VRAM pages directly and reaches system
// pages through its page table; a page it has no (or no writable) entry for stops it with a
// replayable fault, which nouveau_svm_fault() services through the mirror before the engine
// replays. A fault that cannot be serviced is cancelled and the command fails with -EFAULT.

import { EFAULT, EINVAL, EIO } from "kemu/kernel";
import { nvkm_rd32, nvkm_wr32 } from "./nouveau_device.ts";
import type { nouveau_cli, nouveau_drm } from "./nouveau_drv.ts";
import {
  EXEC_A_HI, EXEC_A_LO, EXEC_B_HI, EXEC_B_LO, EXEC_C_HI, EXEC_C_LO, EXEC_COUNT, EXEC_FAULT_HI, EXEC_FAULT_INFO, EXEC_FAULT_LO, EXEC_FAULT_WRITE,
  EXEC_HOST_PAGES, EXEC_INST, EXEC_LAUNCH, EXEC_LAUNCH_CANCEL, EXEC_LAUNCH_REPLAY, EXEC_LAUNCH_START, EXEC_STATUS, EXEC_STATUS_FAULT,
  EXEC_STATUS_IDLE, EXEC_VRAM_PAGES, lower_32_bits, NV_EXEC, upper_32_bits,
} from "./nouveau_reg.ts";
import { nouveau_svm_fault } from "./nouveau_svm.ts";
import { u64_get, u64_set } from "./nouveau_uapi.ts";

/** TASK_SIZE_MAX with 4-level paging: no user address reaches it. */
const TASK_SIZE_MAX = 2 ** 47 - 4096;

/** DRM_NOUVEAU_KEMU_VADD: struct drm_nouveau_kemu_vadd { a, b, c, count, vram_pages, host_pages, faults, reserved } */
export function nouveau_exec_vadd(drm: nouveau_drm, cli: nouveau_cli, args: Uint8Array): number {
  const a = u64_get(args, 0);
  const b = u64_get(args, 8);
  const c = u64_get(args, 16);
  const count = u64_get(args, 24);
  if (u64_get(args, 56)) return -EINVAL;
  // The GPU runs in the client's SVM address space: there must be one.
  const svmm = cli.svmm;
  if (!svmm) return -EINVAL;
  if (count === 0 || count > 0xffffffff) return -EINVAL;
  for (const x of [a, b, c]) if (x % 4 || x + count * 4 > TASK_SIZE_MAX) return -EINVAL;

  const dev = drm.device;
  const wr = (reg: number, v: number) => nvkm_wr32(dev, NV_EXEC + reg, v);
  wr(EXEC_INST, svmm.inst);
  wr(EXEC_A_HI, upper_32_bits(a));
  wr(EXEC_A_LO, lower_32_bits(a));
  wr(EXEC_B_HI, upper_32_bits(b));
  wr(EXEC_B_LO, lower_32_bits(b));
  wr(EXEC_C_HI, upper_32_bits(c));
  wr(EXEC_C_LO, lower_32_bits(c));
  wr(EXEC_COUNT, count);
  wr(EXEC_LAUNCH, EXEC_LAUNCH_START);
  let faults = 0;
  let last = "";
  for (;;) {
    const status = nvkm_rd32(dev, NV_EXEC + EXEC_STATUS);
    if (status === EXEC_STATUS_IDLE) break;
    if (status !== EXEC_STATUS_FAULT) return -EIO;
    const addr = nvkm_rd32(dev, NV_EXEC + EXEC_FAULT_HI) * 2 ** 32 + nvkm_rd32(dev, NV_EXEC + EXEC_FAULT_LO);
    const write = (nvkm_rd32(dev, NV_EXEC + EXEC_FAULT_INFO) & EXEC_FAULT_WRITE) !== 0;
    faults++;
    u64_set(args, 48, faults);
    // The same fault again after servicing it: it will not go away.
    const key = `${addr}:${write}`;
    if (key === last || nouveau_svm_fault(svmm, addr, write)) {
      wr(EXEC_LAUNCH, EXEC_LAUNCH_CANCEL);
      return -EFAULT;
    }
    last = key;
    wr(EXEC_LAUNCH, EXEC_LAUNCH_REPLAY);
  }
  u64_set(args, 32, nvkm_rd32(dev, NV_EXEC + EXEC_VRAM_PAGES));
  u64_set(args, 40, nvkm_rd32(dev, NV_EXEC + EXEC_HOST_PAGES));
  u64_set(args, 48, faults);
  return 0;
}
