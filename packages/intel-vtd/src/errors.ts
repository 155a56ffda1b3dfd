/** Errors of the TypeScript API of the driver (misuse, not uAPI errors: those are errno values). */

/** Thrown when the driver is used against its contract (bad probe arguments, unknown device, …). */
export class IntelVtdError extends Error {
  override readonly name = 'IntelVtdError';
}
