/**
 * The fuzzer's hardware invariant: the tables the IOMMU reads point only at live domains and
 * memory. For each device's StreamID / requester ID it decodes the entries the hardware would
 * fetch (SMMUv3 STE and the CDs of a stage-1 STE; VT-d context entry, PASID directory and table
 * entries) and checks every ID they name is allocated in the driver and every table pointer
 * lies in a machine page the allocator has handed out. A device attached to nothing must be blocked.
 */
import { SMMU_CD, SMMU_L1CD, SMMU_STE, STE_CFG, VTD_PGTT, VtdPasidDirEntry, VtdPasidEntry, VtdSmContextEntry, type PhysicalMemory } from '@iommufd/hw-model';
import { requesterId } from '../hardware-options.js';
import type { Host } from '../host.js';
import { hex } from '../hex.js';
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

// Precompiled field readers: the check runs after every fuzzer call.
const STE_V = SMMU_STE.reader('V');
const STE_CONFIG = SMMU_STE.reader('CONFIG');
const STE_S1DSS = SMMU_STE.reader('S1DSS');
const STE_S2VMID = SMMU_STE.reader('S2VMID');
const STE_S2TTB = SMMU_STE.reader('S2TTB');
const STE_S1CONTEXTPTR = SMMU_STE.reader('S1CONTEXTPTR');
const STE_S1FMT = SMMU_STE.reader('S1FMT');
const STE_S1CDMAX = SMMU_STE.reader('S1CDMAX');
const L1CD_V = SMMU_L1CD.reader('V');
const L1CD_L2PTR = SMMU_L1CD.reader('L2PTR');
const CD_V = SMMU_CD.reader('V');
const CD_ASID = SMMU_CD.reader('ASID');
const CD_EPD0 = SMMU_CD.reader('EPD0');
const CD_TTB0 = SMMU_CD.reader('TTB0');
const PE = VtdPasidEntry.f;
const CE = VtdSmContextEntry.f;

/** The driver-side ID sets, taken once per check and only when an entry names an ID. */
class Lazy<T> {
  private value: T | undefined;
  constructor(private readonly make: () => T) {}
  get(): T {
    return (this.value ??= this.make());
  }
}

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
  if (smmu) {
    const vmids = new Lazy(() => new Set(smmu.vmidsInUse));
    const asids = new Lazy(() => new Set(smmu.asidsInUse));
    for (let index = 0; index < host.vfioDevices.length; index++) {
      const sid = requesterId(index);
      smmuViolations(out, () => `device ${host.vfioDevices[index]} (StreamID ${hex(sid)})`, smmu.steAddress(sid), machine, vmids, asids, attachment(index));
    }
    return out;
  }
  const vtd = intelVtdUnitOf(host.memory)?.unit;
  if (!vtd) return out;
  const dids = new Lazy(() => new Set(vtd.allocatedDids));
  for (let index = 0; index < host.vfioDevices.length; index++) {
    const sid = requesterId(index);
    const where = () => `device ${host.vfioDevices[index]} (RID ${hex(sid)})`;
    // The scalable-mode context entry the hardware fetches first: its PASID directory pointer.
    const ce = vtd.contextEntry(sid);
    if (ce.length !== VtdSmContextEntry.size) continue;
    const w0 = new DataView(ce.buffer, ce.byteOffset, 8).getBigUint64(0, true);
    if (CE.P.of(w0) === 0) continue;
    const dir = CE.PASIDDIRPTR.of(w0);
    if (!machine.isAllocated(dir)) out.push(`${where()}: context entry PASIDDIRPTR ${hex(dir)} is not in an allocated machine page`);
    else vtdViolations(out, where, dir, machine, dids, attachment(index));
  }
  return out;
}

/** SSID / PASID `i` of those looked at: the low ones, then the attached ones above them. */
function idsToCheck(att: DeviceAttachment | undefined): number[] {
  const extra = att?.pasids.filter((p) => p >= LOW_IDS) ?? [];
  return extra.length ? [0, 1, 2, 3, ...extra] : LOW;
}
const LOW = Array.from({ length: LOW_IDS }, (_, i) => i);

function smmuViolations(out: string[], where: () => string, steAt: bigint, machine: PhysicalMemory, vmids: Lazy<ReadonlySet<number>>, asids: Lazy<ReadonlySet<number>>, att: DeviceAttachment | undefined): void {
  const w0 = machine.read64(steAt);
  if (!STE_V.test(w0)) return;
  const config = Number(STE_CONFIG.get(w0));
  const w1 = config === STE_CFG.ABORT || config === STE_CFG.BYPASS ? 0n : machine.read64(steAt + 8n);
  if (att && !att.rid) {
    // The blocked domain writes an abort STE, or keeps the CD table with S1DSS = terminate when PASIDs use it.
    const blocked = config === STE_CFG.ABORT || (att.pasids.length > 0 && config === STE_CFG.S1_TRANS && STE_S1DSS.get(w1) === 0n);
    if (!blocked) out.push(`${where()} is attached to nothing at its RID${att.pasids.length ? ` (PASIDs ${att.pasids.join(', ')})` : ''}, but its STE has CONFIG ${config}${config === STE_CFG.S1_TRANS ? ` S1DSS ${STE_S1DSS.get(w1)}` : ''}, not the blocked domain's`);
  }
  if (config === STE_CFG.S2_TRANS || config === STE_CFG.NESTED) {
    const vmid = Number(STE_S2VMID.get(machine.read64(steAt + BigInt(8 * STE_S2VMID.word))));
    if (!vmids.get().has(vmid)) out.push(`${where()}: STE names VMID ${vmid}, which the driver has not allocated`);
    const ttb = STE_S2TTB.get(machine.read64(steAt + BigInt(8 * STE_S2TTB.word))) << 4n;
    if (!machine.isAllocated(ttb)) out.push(`${where()}: STE S2TTB ${hex(ttb)} is not in an allocated machine page`);
  }
  // A nested STE's CD table sits at a guest IPA: only the host-owned stage-1 structures are checked.
  if (config !== STE_CFG.S1_TRANS) return;
  const table = STE_S1CONTEXTPTR.get(w0) << 6n;
  if (!machine.isAllocated(table)) {
    out.push(`${where()}: STE S1ContextPtr ${hex(table)} is not in an allocated machine page`);
    return;
  }
  const count = 2 ** Number(STE_S1CDMAX.get(w0));
  const fmt = STE_S1FMT.get(w0);
  // 2-level CD tables: leaves of 2^6 (S1FMT 1, 4 KiB) or 2^10 (S1FMT 2, 64 KiB) CDs.
  const leafBits = fmt === 1n ? 6 : 10;
  let leafIndex = -1;
  let leaf = 0n;
  for (const ssid of idsToCheck(att)) {
    if (ssid >= count) continue;
    let cdAt = table + BigInt(64 * ssid);
    if (fmt !== 0n) {
      if (ssid >> leafBits !== leafIndex) {
        leafIndex = ssid >> leafBits;
        const l1 = machine.read64(table + BigInt(8 * leafIndex));
        leaf = L1CD_V.test(l1) ? L1CD_L2PTR.get(l1) << 12n : 0n;
        if (leaf !== 0n && !machine.isAllocated(leaf)) {
          out.push(`${where()}: L1 CD descriptor for SSID ${ssid} points at ${hex(leaf)}, not an allocated machine page`);
          leaf = 0n;
        }
      }
      if (leaf === 0n) continue;
      cdAt = leaf + BigInt(64 * (ssid & ((1 << leafBits) - 1)));
    }
    const c0 = machine.read64(cdAt);
    if (!CD_V.test(c0)) continue;
    const asid = Number(CD_ASID.get(c0));
    if (!asids.get().has(asid)) out.push(`${where()}: CD of SSID ${ssid} names ASID ${asid}, which the driver has not allocated`);
    const ttb = CD_TTB0.get(machine.read64(cdAt + BigInt(8 * CD_TTB0.word))) << 4n;
    if (!CD_EPD0.test(c0) && !machine.isAllocated(ttb)) out.push(`${where()}: CD of SSID ${ssid} TTB0 ${hex(ttb)} is not in an allocated machine page`);
  }
}

function vtdViolations(out: string[], where: () => string, pasidDir: bigint, machine: PhysicalMemory, dids: Lazy<ReadonlySet<number>>, att: DeviceAttachment | undefined): void {
  let dirIndex = -1;
  let table = 0n;
  for (const pasid of idsToCheck(att)) {
    if (pasid >> 6 !== dirIndex) {
      dirIndex = pasid >> 6;
      const dir = machine.read64(pasidDir + BigInt(8 * dirIndex));
      table = VtdPasidDirEntry.f.P.of(dir) === 0 ? 0n : VtdPasidDirEntry.f.PASIDPTPTR.of(dir);
      if (table !== 0n && !machine.isAllocated(table)) {
        out.push(`${where()}: PASID directory entry for PASID ${pasid} points at ${hex(table)}, not an allocated machine page`);
        table = 0n;
      }
    }
    if (table === 0n) continue;
    const at = table + BigInt(64 * (pasid & 63));
    const w0 = machine.read64(at);
    if (PE.P.of(w0) === 0) continue;
    const pgtt = PE.PGTT.of(w0);
    const did = PE.DID.of(machine.read64(at + 8n));
    const entry = `PASID ${pasid} entry at ${hex(at)}`;
    // PASID 0 is RID_PASID: with nothing attached at the RID it must not translate.
    if (pasid === 0 && att && !att.rid) out.push(`${where()} is attached to nothing at its RID, but its ${entry} is present (PGTT ${pgtt}, DID ${did})`);
    if (!dids.get().has(did)) out.push(`${where()}: ${entry} names DID ${did}, which the driver has not allocated`);
    // A nested entry's first-stage table is at a guest address: only the second stage is host memory.
    const [name, root] = pgtt === VTD_PGTT.FIRST_STAGE ? ['FSPTPTR', PE.FSPTPTR.of(machine.read64(at + 16n))] : pgtt === VTD_PGTT.SECOND_STAGE || pgtt === VTD_PGTT.NESTED ? ['SSPTPTR', PE.SSPTPTR.of(w0)] : ['', 0n];
    if (name && !machine.isAllocated(root)) out.push(`${where()}: ${entry} ${name} ${hex(root)} is not in an allocated machine page`);
  }
}
