/** How the host prints addresses, IDs and bytes in CLI output, traces and error messages. */

/** `0x…` of a number. */
export function hex(n: bigint | number): string {
  return `0x${n.toString(16)}`;
}

/** `n` bytes as spaced hex (`de ad be ef`), how DMA payloads and records are printed. */
export function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}
