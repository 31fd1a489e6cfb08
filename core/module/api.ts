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
  /** Argument kinds (abi.ts); a trailing "...any" makes the function variadic. */
  readonly params: readonly string[];
  readonly ret: string;
  /** The C prototype, for the SDK's doc comments. */
  readonly proto: string;
  readonly impl: (c: CallCtx, ...args: any[]) => unknown;
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
