/**
 * The fuzzer's hardware invariant: the tables the IOMMU reads point only at live domains and
 * memory. For each device's StreamID / requester ID it decodes the entries the hardware would
 * fetch (SMMUv3 STE and the CDs of a stage-1 STE; VT-d PASID directory and table entries) and
 * checks every ID they name is allocated in the driver and every table pointer lies in a
 * machine page the allocator has handed out. A device attached to nothing must be blocked.
 */
import { SMMU_CD, SMMU_L1CD, SMMU_STE, STE_CFG, VTD_PGTT, VtdPasidDirEntry, VtdPasidEntry, type PhysicalMemory } from '@iommufd/hw-model';
import { requesterId } from '../hardware-options.js';
import type { Host } from '../host.js';
import { armSmmuOf } from '../platforms/arm-smmuv3.js';
import { intelVtdUnitOf } from '../platforms/intel-vtd.js';

/** What the caller's shadow knows of one device's attachments. */
export interface DeviceAttachment {
  /** Something is attached at the RID (or PASID 0, which is the RID). */
  readonly rid: boolean;
  /** PASIDs other than 0 with something attached. */
  readonly pasids: readonly number[];
}

/** SSIDs / PASIDs looked at beyond the attached ones: the low ones every fuzzer op picks from. */
const LOW_IDS = 4;

const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

/**
 * Checks the hardware tables of the first `host.vfioDevices` devices against the drivers'
 * allocators; `attachment(index)` is the caller's view of device `index` (undefined: unknown,
 * so only IDs and pointers are checked). Returns one message per violation.
 */
export function hardwareTableViolations(host: Host, attachment: (index: number) => DeviceAttachment | undefined): string[] {
  const machine = (host.memory as { machine?: PhysicalMemory }).machine;
  if (!machine) return [];
  const out: string[] = [];
  const smmu = armSmmuOf(host.memory)?.smmu;
  const vtd = intelVtdUnitOf(host.memory)?.unit;
  for (let index = 0; index < host.vfioDevices.length; index++) {
    const sid = requesterId(index);
    const where = `device ${host.vfioDevices[index]} (${smmu ? 'StreamID' : 'RID'} ${hex(sid)})`;
    if (smmu) smmuViolations(out, where, smmu.readSte(sid), machine, new Set(smmu.vmidsInUse), new Set(smmu.asidsInUse), attachment(index));
    else if (vtd) {
      const info = vtd.devices.get(sid);
      if (info) vtdViolations(out, where, info.pasidDir, machine, new Set(vtd.allocatedDids), attachment(index));
    }
  }
  return out;
}

function smmuViolations(out: string[], where: string, ste: bigint[], machine: PhysicalMemory, vmids: ReadonlySet<number>, asids: ReadonlySet<number>, att: DeviceAttachment | undefined): void {
  if (SMMU_STE.get(ste, 'V') === 0n) return;
  const config = Number(SMMU_STE.get(ste, 'CONFIG'));
  if (att && !att.rid) {
    // The blocked domain writes an abort STE, or keeps the CD table with S1DSS = terminate when PASIDs use it.
    const blocked = att.pasids.length === 0 ? config === STE_CFG.ABORT : config === STE_CFG.ABORT || (config === STE_CFG.S1_TRANS && SMMU_STE.get(ste, 'S1DSS') === 0n);
    if (!blocked) out.push(`${where} is attached to nothing at its RID${att.pasids.length ? ` (PASIDs ${att.pasids.join(', ')})` : ''}, but its STE has CONFIG ${config}${config === STE_CFG.S1_TRANS ? ` S1DSS ${SMMU_STE.get(ste, 'S1DSS')}` : ''}, not the blocked domain's`);
  }
  if (config === STE_CFG.S2_TRANS || config === STE_CFG.NESTED) {
    const vmid = Number(SMMU_STE.get(ste, 'S2VMID'));
    if (!vmids.has(vmid)) out.push(`${where}: STE names VMID ${vmid}, which the driver has not allocated`);
    const ttb = SMMU_STE.get(ste, 'S2TTB') << 4n;
    if (!machine.isAllocated(ttb)) out.push(`${where}: STE S2TTB ${hex(ttb)} is not in an allocated machine page`);
  }
  // A nested STE's CD table sits at a guest IPA: only the host-owned stage-1 structures are checked.
  if (config !== STE_CFG.S1_TRANS) return;
  const table = SMMU_STE.get(ste, 'S1CONTEXTPTR') << 6n;
  if (!machine.isAllocated(table)) {
    out.push(`${where}: STE S1ContextPtr ${hex(table)} is not in an allocated machine page`);
    return;
  }
  const count = 2 ** Number(SMMU_STE.get(ste, 'S1CDMAX'));
  const fmt = SMMU_STE.get(ste, 'S1FMT');
  // 2-level CD tables: leaves of 2^6 (S1FMT 1, 4 KiB) or 2^10 (S1FMT 2, 64 KiB) CDs.
  const leafBits = fmt === 1n ? 6 : 10;
  const ssids = new Set([...Array.from({ length: LOW_IDS }, (_, i) => i), ...(att?.pasids ?? [])]);
  for (const ssid of ssids) {
    if (ssid >= count) continue;
    let cdAt = table + BigInt(64 * ssid);
    if (fmt !== 0n) {
      const l1 = [machine.read64(table + BigInt(8 * (ssid >> leafBits)))];
      if (SMMU_L1CD.get(l1, 'V') === 0n) continue;
      const leaf = SMMU_L1CD.get(l1, 'L2PTR') << 12n;
      if (!machine.isAllocated(leaf)) {
        out.push(`${where}: L1 CD descriptor for SSID ${ssid} points at ${hex(leaf)}, not an allocated machine page`);
        continue;
      }
      cdAt = leaf + BigInt(64 * (ssid & ((1 << leafBits) - 1)));
    }
    const cd = Array.from({ length: 8 }, (_, i) => machine.read64(cdAt + BigInt(8 * i)));
    if (SMMU_CD.get(cd, 'V') === 0n) continue;
    const asid = Number(SMMU_CD.get(cd, 'ASID'));
    if (!asids.has(asid)) out.push(`${where}: CD of SSID ${ssid} names ASID ${asid}, which the driver has not allocated`);
    const ttb = SMMU_CD.get(cd, 'TTB0') << 4n;
    if (SMMU_CD.get(cd, 'EPD0') === 0n && !machine.isAllocated(ttb)) out.push(`${where}: CD of SSID ${ssid} TTB0 ${hex(ttb)} is not in an allocated machine page`);
  }
}

function vtdViolations(out: string[], where: string, pasidDir: bigint, machine: PhysicalMemory, dids: ReadonlySet<number>, att: DeviceAttachment | undefined): void {
  if (pasidDir === 0n) return;
  const pasids = new Set([...Array.from({ length: LOW_IDS }, (_, i) => i), ...(att?.pasids ?? [])]);
  for (const pasid of pasids) {
    const dir = machine.read64(pasidDir + BigInt(8 * (pasid >> 6)));
    if (VtdPasidDirEntry.f.P.of(dir) === 0) continue;
    const table = VtdPasidDirEntry.f.PASIDPTPTR.of(dir);
    if (!machine.isAllocated(table)) {
      out.push(`${where}: PASID directory entry for PASID ${pasid} points at ${hex(table)}, not an allocated machine page`);
      continue;
    }
    const at = table + BigInt(64 * (pasid & 63));
    const e = VtdPasidEntry.decode(Array.from({ length: 8 }, (_, i) => machine.read64(at + BigInt(8 * i))));
    if (e.P === 0) continue;
    const entry = `PASID ${pasid} entry at ${hex(at)}`;
    // PASID 0 is RID_PASID: with nothing attached at the RID it must not translate.
    if (pasid === 0 && att && !att.rid) out.push(`${where} is attached to nothing at its RID, but its ${entry} is present (PGTT ${e.PGTT}, DID ${e.DID})`);
    if (!dids.has(e.DID)) out.push(`${where}: ${entry} names DID ${e.DID}, which the driver has not allocated`);
    // A nested entry's first-stage table is at a guest address: only the second stage is host memory.
    const roots: [string, bigint][] = e.PGTT === VTD_PGTT.FIRST_STAGE ? [['FSPTPTR', e.FSPTPTR]] : e.PGTT === VTD_PGTT.SECOND_STAGE || e.PGTT === VTD_PGTT.NESTED ? [['SSPTPTR', e.SSPTPTR]] : [];
    for (const [name, root] of roots) if (!machine.isAllocated(root)) out.push(`${where}: ${entry} ${name} ${hex(root)} is not in an allocated machine page`);
  }
}
