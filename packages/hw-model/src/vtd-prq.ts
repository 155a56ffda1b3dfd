/**
 * VT-d page request queue: the 32-byte page request descriptor and the page requests
 * (PCIe PRI) of endpoints behind the unit; responses come back as page-group response
 * descriptors through the invalidation queue.
 */
import { addr, big, defineFieldLayout, num } from './vtd-bitfields.js';

/** Page request descriptor (32 bytes) written at PQT. */
export const VtdPageRequestDesc = defineFieldLayout('page_req_dsc', 4, [
  num('TYPE', 0, 7, 0),
  num('PASID_PRESENT', 0, 8),
  num('PRIV_DATA_PRESENT', 0, 9),
  num('RID', 0, 31, 16),
  num('PASID', 0, 51, 32),
  num('EXE', 0, 52),
  num('PM', 0, 53),
  num('RD', 1, 0),
  num('WR', 1, 1),
  num('LPIG', 1, 2),
  num('PRGI', 1, 11, 3),
  addr('ADDR', 1, 63, 12),
  big('PRIV0', 2, 63, 0),
  big('PRIV1', 3, 63, 0),
]);

/** A page request an endpoint sends (PCIe Page Request Message). */
export interface VtdPageRequest {
  /** Requester id. */
  readonly requesterId: number;
  /** PASID, when the request carries one. */
  readonly pasid?: number;
  /** Page address (low 12 bits ignored). */
  readonly address: bigint;
  /** Read access requested. */
  readonly read: boolean;
  /** Write access requested. */
  readonly write: boolean;
  /** Execute requested. */
  readonly exec?: boolean;
  /** Privileged mode requested. */
  readonly priv?: boolean;
  /** Last page in the group. */
  readonly lastInGroup: boolean;
  /** Page request group index (9 bits). */
  readonly groupIndex: number;
  /** Private data (two u64), when present. */
  readonly privateData?: readonly [bigint, bigint];
}

/** A page-group response the unit delivered to an endpoint (from a type 0x9 descriptor). */
export interface VtdPageGroupResponse {
  /** Requester id of the endpoint. */
  readonly requesterId: number;
  /** PASID, when present. */
  readonly pasid?: number;
  /** Response code: 0 success, 1 invalid request, 0xF failure. */
  readonly code: number;
  /** Page request group index. */
  readonly groupIndex: number;
}

/** Encodes a page request as its queue descriptor. */
export function encodePageRequest(r: VtdPageRequest): bigint[] {
  return VtdPageRequestDesc.encode({
    TYPE: 1,
    PASID_PRESENT: r.pasid !== undefined ? 1 : 0,
    PRIV_DATA_PRESENT: r.privateData !== undefined ? 1 : 0,
    RID: r.requesterId,
    PASID: r.pasid ?? 0,
    EXE: r.exec === true ? 1 : 0,
    PM: r.priv === true ? 1 : 0,
    RD: r.read ? 1 : 0,
    WR: r.write ? 1 : 0,
    LPIG: r.lastInGroup ? 1 : 0,
    PRGI: r.groupIndex,
    ADDR: r.address & ~0xfffn,
    PRIV0: r.privateData?.[0] ?? 0n,
    PRIV1: r.privateData?.[1] ?? 0n,
  });
}
