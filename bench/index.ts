// Every figure `kemu bench` knows, in the order it runs them.

import type { Figure } from "./figure.ts";
import { faultCrossings, faultFloorUs, faultIsolatedUs, faultIsolatedVsBuiltin, faultIsolatedVsFloor, migrateBatchUs, migrateVsMemcpy } from "./hmm.ts";
import { memremapHeap, memremapTime } from "./memremap.ts";
import { insmodMedian, moduleMem, symcallBuiltin, symcallIsolated, symcallRatio } from "./module.ts";
import { pageGetPut, pageGetPutFloor } from "./page-ref.ts";

export const FIGURES: readonly Figure<any>[] = [
  memremapTime, memremapHeap, pageGetPut, pageGetPutFloor,
  insmodMedian, moduleMem, symcallIsolated, symcallBuiltin, symcallRatio,
  faultIsolatedVsFloor, faultIsolatedUs, faultFloorUs, faultCrossings, faultIsolatedVsBuiltin, migrateVsMemcpy, migrateBatchUs,
];
