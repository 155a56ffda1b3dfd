/**
 * Circular queue index arithmetic shared by the SMMUv3 CMDQ/EVTQ/PRIQ and the Tegra241
 * VCMDQs: PROD/CONS hold an index in the low log2size bits and a wrap flag just above.
 */

/** Index + wrap bits of a PROD/CONS value. */
export function queuePointer(value: number, log2Size: number): number {
  return value & ((2 << log2Size) - 1);
}

/** True when the queue holds no entries. */
export function queueEmpty(prod: number, cons: number, log2Size: number): boolean {
  return queuePointer(prod, log2Size) === queuePointer(cons, log2Size);
}

/** True when the queue holds 2^log2Size entries (same index, different wrap). */
export function queueFull(prod: number, cons: number, log2Size: number): boolean {
  const mask = (1 << log2Size) - 1;
  return (prod & mask) === (cons & mask) && ((prod >> log2Size) & 1) !== ((cons >> log2Size) & 1);
}

/** The pointer after `value` (index+1 with wrap toggled on overflow); upper bits dropped. */
export function queueIncrement(value: number, log2Size: number): number {
  return (queuePointer(value, log2Size) + 1) & ((2 << log2Size) - 1);
}

/** Index of a pointer. */
export function queueIndex(value: number, log2Size: number): number {
  return value & ((1 << log2Size) - 1);
}
