/**
 * PASID-table entries as pasid.c programs them (reference §2.6): first-stage, second-stage
 * and nested set-up (non-present → present, P written last), in-place replacement, teardown
 * with its invalidation sequence, and SSADE updates for dirty tracking.
 */
import { VTD_PGTT, VtdPasidEntry } from '@iommufd/hw-model';
import type { Status } from '@iommufd/driver-api';
import { EBUSY, EINVAL, ENODEV } from '@iommufd/uapi';
import type { DeviceDomainInfo, IntelIommu } from './iommu.js';
import { IOMMU_NO_PASID } from './iommu.js';
import { IOTLB_GRAN, PC_GRAN, qiDescPasidCache, qiDescPiotlb } from './qi.js';

/** Field values of a PASID entry, as the layout names them. */
export type PasidEntryFields = Partial<ReturnType<typeof VtdPasidEntry.decode>>;

function readEntry(iommu: IntelIommu, at: bigint): bigint[] {
  return Array.from({ length: 8 }, (_, i) => iommu.mem.read64(at + BigInt(i * 8)));
}

function writeEntry(iommu: IntelIommu, at: bigint, words: readonly bigint[]): void {
  // Everything but qw0 first, qw0 (holding P) last: hardware must never see a half-written present entry.
  for (let i = 7; i >= 0; i--) iommu.mem.write64(at + BigInt(i * 8), words[i] ?? 0n);
}

/** `pasid_flush_caches`: only caching mode needs invalidation of a non-present → present change. */
function pasidFlushCaches(iommu: IntelIommu, pasid: number, did: number): void {
  if (iommu.capField('CM') === 1) {
    iommu.qi.submitSync([qiDescPasidCache(did, PC_GRAN.PASID_SEL, pasid)]);
    iommu.qi.submitSync([qiDescPiotlb(did, pasid, 0n, -1n, 0)]);
  } else iommu.flushWriteBuffer();
}

/** `intel_pasid_flush_present`: the invalidations after rewriting a present entry. */
function pasidFlushPresent(iommu: IntelIommu, info: DeviceDomainInfo, pasid: number, did: number, pgtt: number): void {
  iommu.qi.submitSync([qiDescPasidCache(did, PC_GRAN.PASID_SEL, pasid)]);
  if (pgtt === VTD_PGTT.SECOND_STAGE || pgtt === VTD_PGTT.NESTED) iommu.qi.submitSync([iommu.descIotlb(did, 0n, 0, IOTLB_GRAN.DSI)]);
  else iommu.qi.submitSync([qiDescPiotlb(did, pasid, 0n, -1n, 0)]);
  iommu.devtlbInvalidationWithPasid(info, pasid);
}

/**
 * Writes a new entry for `pasid`: -ENODEV beyond the table, -EBUSY if present (set-up) or,
 * for a replacement (`oldDid` given), -EINVAL if the present entry is not the old domain's.
 */
export function pasidSetupEntry(iommu: IntelIommu, info: DeviceDomainInfo, pasid: number, fields: PasidEntryFields, oldDid?: number): Status {
  const at = iommu.pasidEntryAddr(info, pasid);
  if (at === undefined) return ENODEV;
  const cur = readEntry(iommu, at);
  const present = VtdPasidEntry.f.P.get(cur) === 1;
  if (oldDid === undefined) {
    if (present) return EBUSY;
  } else if (!present || VtdPasidEntry.f.DID.get(cur) !== oldDid) return EINVAL;
  writeEntry(iommu, at, VtdPasidEntry.encode({ ...fields, P: 1 }));
  const did = fields.DID ?? 0;
  if (oldDid === undefined) pasidFlushCaches(iommu, pasid, did);
  else pasidFlushPresent(iommu, info, pasid, oldDid, VtdPasidEntry.f.PGTT.get(cur));
  return 0;
}

/**
 * `intel_pasid_tear_down_entry(iommu, dev, pasid, fault_ignore=false)`: clear the entry,
 * then PASID-cache, IOTLB (PASID-based for FS/PT, DSI otherwise) and device-TLB flushes,
 * then drain page requests.
 */
export function pasidTearDownEntry(iommu: IntelIommu, info: DeviceDomainInfo, pasid: number): void {
  const at = iommu.pasidEntryAddr(info, pasid);
  if (at === undefined) return;
  const cur = readEntry(iommu, at);
  if (VtdPasidEntry.f.P.get(cur) === 0) {
    if (VtdPasidEntry.f.FPD.get(cur) === 1) {
      writeEntry(iommu, at, [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n]);
      iommu.drainPasidPrq(info, pasid, 1);
    }
    return;
  }
  const did = VtdPasidEntry.f.DID.get(cur);
  const pgtt = VtdPasidEntry.f.PGTT.get(cur);
  writeEntry(iommu, at, [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n]);
  iommu.qi.submitSync([qiDescPasidCache(did, PC_GRAN.PASID_SEL, pasid)]);
  if (pgtt === VTD_PGTT.PASS_THROUGH || pgtt === VTD_PGTT.FIRST_STAGE) iommu.qi.submitSync([qiDescPiotlb(did, pasid, 0n, -1n, 0)]);
  else iommu.qi.submitSync([iommu.descIotlb(did, 0n, 0, IOTLB_GRAN.DSI)]);
  iommu.devtlbInvalidationWithPasid(info, pasid);
  iommu.drainPasidPrq(info, pasid, did);
}

/** `intel_pasid_setup_dirty_tracking`: flip SSADE of a present SS/nested entry and flush. */
export function pasidSetupDirtyTracking(iommu: IntelIommu, info: DeviceDomainInfo, pasid: number, enabled: boolean): Status {
  const at = iommu.pasidEntryAddr(info, pasid);
  if (at === undefined) return ENODEV;
  const cur = readEntry(iommu, at);
  const pgtt = VtdPasidEntry.f.PGTT.get(cur);
  if (pgtt !== VTD_PGTT.SECOND_STAGE && pgtt !== VTD_PGTT.NESTED) return EINVAL;
  if ((VtdPasidEntry.f.SSADE.get(cur) === 1) === enabled) return 0;
  VtdPasidEntry.f.SSADE.set(cur, enabled ? 1 : 0);
  iommu.mem.write64(at, cur[0]!);
  const did = VtdPasidEntry.f.DID.get(cur);
  iommu.qi.submitSync([qiDescPasidCache(did, PC_GRAN.PASID_SEL, pasid)]);
  iommu.qi.submitSync([iommu.descIotlb(did, 0n, 0, IOTLB_GRAN.DSI)]);
  iommu.devtlbInvalidationWithPasid(info, pasid);
  return 0;
}

/** The raw 64 bytes of a device's PASID entry (inspection: zeros where no PASID table exists; never allocates one). */
export function pasidEntryBytes(iommu: IntelIommu, info: DeviceDomainInfo, pasid: number = IOMMU_NO_PASID): Uint8Array {
  const at = iommu.pasidEntryAddr(info, pasid, false);
  return at === undefined ? new Uint8Array(64) : iommu.mem.read(at, 64);
}
