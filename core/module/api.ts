// What a module sees in "kemu/kernel": each function, the exported kernel symbols it needs
// (none for header inlines), the kinds of its arguments and result (abi.ts), and the kernel
// side that carries it out. SDK declarations and docs are generated from this list.

import type { Kernel } from "../kernel.ts";
import type { Module } from "./module.ts";

export interface CallCtx {
  readonly k: Kernel;
  readonly mod: Module;
}

export interface KApi {
  /** The name in kemu/kernel (the C function or macro name). */
  readonly name: string;
  /** Exported kernel symbols the call needs: what modpost lists as undefined for it. */
  readonly symbols: readonly string[];
  /**
   * The module that exports `symbols` when they are not vmlinux's (kemu/kernel's
   * nd_driver_register() needs libnvdimm's __nd_driver_register): they resolve, with a
   * dependency and a use count, only while that module is loaded.
   */
  readonly symbolsFrom?: string;
  /** Argument kinds (abi.ts); a trailing "...any" makes the function variadic. */
  readonly params: readonly string[];
  readonly ret: string;
  /** The C prototype, for the SDK's doc comments. */
  readonly proto: string;
  readonly impl: (c: CallCtx, ...args: any[]) => unknown;
  /**
   * It may run the calling module's code before it returns (a remove(), a work item, a
   * mirror's release()): never queued (shim.ts queueable()), so that code runs when C's would.
   */
  readonly callsBack?: true;
}

/** A nested kernel object inside the fields of another (e.g. hmm_device.device). */
export interface NestedObject {
  readonly __kemu_object: string;
  readonly obj: object;
}

export function nested(type: string, obj: object): NestedObject {
  return { __kemu_object: type, obj };
}

export function defineApis(list: KApi[]): KApi[] {
  return list;
}
