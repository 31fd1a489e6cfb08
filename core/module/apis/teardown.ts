// What a module registered through the kernel and has not unregistered: an entry of its
// holdings.teardown, run newest first when the module goes. A module that died is cleaned up
// in silence; a living one that forgot something gets kemu's line for it first.

import type { CallCtx } from "../api.ts";

/**
 * Undo `obj` with `release` if the module goes with it still registered. `verb` is what the
 * line says is done ("unregistering" by default), `state` what it still is ("registered"); `left` says whether anything is left to undo
 * (an attribute goes with its device).
 */
export function hold(c: CallCtx, obj: object, what: string, release: () => void, opts: { verb?: string; state?: string; left?: () => boolean } = {}): void {
  const mod = c.mod;
  const verb = opts.verb ?? "unregistering";
  const state = opts.state ?? "registered";
  mod.holdings.teardown.set(obj, (dead) => {
    if (!dead && (opts.left?.() ?? true)) c.k.printk(`\x013kemu: ${mod.name}: ${what} still ${state} at unload; ${verb} it\n`);
    release();
  });
}

/** The module unregistered `obj` itself. */
export function unhold(c: CallCtx, obj: object): void {
  c.mod.holdings.teardown.delete(obj);
}
