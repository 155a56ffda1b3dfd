/** Typed errors of the host's TypeScript API (uAPI calls return -errno instead). */

/** What went wrong, for programs that branch on it. */
export type HostErrorCode =
  | 'PLATFORM_NOT_AVAILABLE'
  | 'UNKNOWN_PLATFORM'
  | 'BAD_OPTION'
  | 'NO_SUCH_DEVICE'
  | 'OUT_OF_MEMORY'
  | 'PROCESS_EXITED';

/** Thrown for misuse of the host API; the message says what was wrong and how to fix it. */
export class HostError extends Error {
  override readonly name = 'HostError';
  constructor(
    readonly code: HostErrorCode,
    message: string,
  ) {
    super(message);
  }
}
