/**
 * The record formats read from a vEVENTQ fd and read from / written to a FAULT fd, and
 * small readers/writers over a {@link UserProcess}.
 */
import * as I from './iommufd.js';
import type { LayoutValue } from './layout.js';
import { IommufdError, type UserProcess } from './process.js';
import { IOMMU_VEVENTQ_TYPE_SELFTEST, iommu_viommu_event_selftest } from './selftest.js';

/** Payload bytes that follow a (non-lost) vEVENT header, per vEVENTQ type. */
export const VEVENT_PAYLOAD_SIZE: Readonly<Record<number, number>> = Object.freeze({
  [I.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3]: I.iommu_vevent_arm_smmuv3.size,
  [I.IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV]: I.iommu_vevent_tegra241_cmdqv.size,
  [IOMMU_VEVENTQ_TYPE_SELFTEST]: iommu_viommu_event_selftest.size,
});

/** One record of a vEVENTQ read. */
export interface Vevent {
  /** `iommufd_vevent_header.flags`. */
  readonly flags: number;
  /** `iommufd_vevent_header.sequence` (0..INT_MAX, wrapping to 0). */
  readonly sequence: number;
  /** The header carries IOMMU_VEVENTQ_FLAG_LOST_EVENTS (and no payload follows it). */
  readonly lostEvents: boolean;
  /** The type-specific payload (empty for a lost-events header). */
  readonly data: Uint8Array;
}

/**
 * Splits the bytes of a vEVENTQ `read()` into records. `type` is the queue's
 * IOMMU_VEVENTQ_TYPE_* (it fixes the payload size); `payloadSize` overrides it for types
 * this package does not know. The kernel only returns whole records, so a cut record is an
 * error.
 */
export function parseVevents(bytes: Uint8Array, type: number, payloadSize = VEVENT_PAYLOAD_SIZE[type]): Vevent[] {
  if (payloadSize === undefined) {
    throw new RangeError(`unknown vEVENTQ type 0x${type.toString(16)}: pass its payload size as the third argument`);
  }
  const out: Vevent[] = [];
  const hsize = I.iommufd_vevent_header.size;
  let at = 0;
  while (at < bytes.length) {
    if (at + hsize > bytes.length) throw new RangeError(`vEVENT header cut at byte ${at} of ${bytes.length}`);
    const { flags, sequence } = I.iommufd_vevent_header.decode(bytes, at);
    const lostEvents = (flags & I.IOMMU_VEVENTQ_FLAG_LOST_EVENTS) !== 0;
    const len = lostEvents ? 0 : payloadSize;
    if (at + hsize + len > bytes.length) throw new RangeError(`vEVENT payload cut at byte ${at + hsize} of ${bytes.length}`);
    out.push({ flags, sequence, lostEvents, data: bytes.slice(at + hsize, at + hsize + len) });
    at += hsize + len;
  }
  return out;
}

/** A decoded `struct iommu_hwpt_pgfault`. */
export type PageFault = LayoutValue<typeof I.iommu_hwpt_pgfault>;

/** Splits the bytes of a FAULT fd `read()` into `iommu_hwpt_pgfault` records (40 bytes each). */
export function parsePageFaults(bytes: Uint8Array): PageFault[] {
  const size = I.iommu_hwpt_pgfault.size;
  if (bytes.length % size !== 0) throw new RangeError(`a FAULT read returns whole ${size}-byte records, got ${bytes.length} bytes`);
  return Array.from({ length: bytes.length / size }, (_, i) => I.iommu_hwpt_pgfault.decode(bytes, i * size));
}

/** One `struct iommu_hwpt_page_response`. */
export interface PageResponse {
  /** The cookie of the fault group being answered. */
  readonly cookie: number;
  /** IOMMUFD_PAGE_RESP_SUCCESS or IOMMUFD_PAGE_RESP_INVALID. */
  readonly code: number;
}

/** Encodes page responses for a FAULT fd `write()` (8 bytes each). */
export function encodePageResponses(responses: readonly PageResponse[]): Uint8Array {
  const size = I.iommu_hwpt_page_response.size;
  const out = new Uint8Array(responses.length * size);
  responses.forEach((r, i) => I.iommu_hwpt_page_response.encode(r, out, i * size));
  return out;
}

/** Reads whatever a vEVENTQ fd holds (up to `maxBytes`) and parses it; an empty queue gives []. */
export function readVevents(p: UserProcess, veventqFd: number, type: number, maxBytes = 4096): Vevent[] {
  const buf = new Uint8Array(maxBytes);
  const n = p.read(veventqFd, buf);
  if (n < 0) throw new IommufdError('read', -n, { detail: 'vEVENTQ fd' });
  return parseVevents(buf.subarray(0, n), type);
}

/** Reads up to `maxFaults` pending page faults from a FAULT fd. */
export function readPageFaults(p: UserProcess, faultFd: number, maxFaults = 64): PageFault[] {
  const buf = new Uint8Array(maxFaults * I.iommu_hwpt_pgfault.size);
  const n = p.read(faultFd, buf);
  if (n < 0) throw new IommufdError('read', -n, { detail: 'FAULT fd' });
  return parsePageFaults(buf.subarray(0, n));
}

/** Writes page responses to a FAULT fd; returns how many the kernel consumed. */
export function writePageResponses(p: UserProcess, faultFd: number, responses: readonly PageResponse[]): number {
  const n = p.write(faultFd, encodePageResponses(responses));
  if (n < 0) throw new IommufdError('write', -n, { detail: 'FAULT fd' });
  return n / I.iommu_hwpt_page_response.size;
}
