// kemu's host API: boot a kernel and drive it; build driver modules.

export { Kernel } from "../core/kernel.ts";
export type { BootConfig } from "../core/config.ts";
export { KernelError } from "../core/errno.ts";
export { build, BuildError, type BuildOptions, type BuildResult } from "./build/build.ts";
