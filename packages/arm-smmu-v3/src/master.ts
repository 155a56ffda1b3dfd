/**
 * A device behind the SMMU (`struct arm_smmu_master`): its StreamIDs, its CD table (linear
 * or 2-level with 64 KiB leaves, allocated on first use), STE installation for all its
 * StreamIDs, and ATS state.
 */
import type { Device, IommuDomain, Status } from '@iommufd/driver-api';
import { SMMU_CD, SMMU_L1CD, SMMU_STE, STE_CFG } from '@iommufd/hw-model';
import { ATC_INV_SIZE_ALL, type CmdqEnt } from './cmds.js';
import { getCdUsed, writeEntry, type EntryWriter } from './entry-writer.js';
import type { ArmSmmuV3, FirmwareStream } from './smmu.js';
import type { CdTableRef } from './ste.js';

/** `CTXDESC_L2_ENTRIES`: CDs per 64 KiB leaf table. */
const CTXDESC_L2_ENTRIES = 1024;
/** `CTXDESC_LINEAR_CDMAX`: log2 CDs of the largest linear table. */
const CTXDESC_LINEAR_CDMAX = 10;
/** `STRTAB_STE_0_S1FMT_LINEAR` / `_64K_L2` */
const S1FMT = { LINEAR: 0, L2_64K: 2 } as const;

/** The master's CD table. */
interface CdTable extends CdTableRef {
  readonly pages: bigint[];
  readonly l2: Map<number, bigint[]>;
}

/** What a nested attach records for event forwarding (`struct arm_smmu_vmaster`). */
export interface ArmVmaster {
  /** The vIOMMU's event reporting. */
  readonly report: (words: readonly bigint[]) => Status;
  /** The device's virtual StreamID. */
  readonly vsid: bigint;
}

/** A device behind an SMMU, set up at `probeDevice`. */
export class ArmSmmuMaster {
  /** StreamIDs, ascending. */
  readonly streams: readonly number[];
  /** SubstreamID bits this master may use. */
  readonly ssidBits: number;
  /** ATS is enabled at the endpoint. */
  atsEnabled = false;
  /** The domain its RID is attached to (`iommu_get_domain_for_dev`). */
  domain: IommuDomain | undefined;
  /** Set while attached to a nested domain through a vDEVICE. */
  vmaster: ArmVmaster | undefined;
  /** `cd_table.used_ssids`: valid CDs at SubstreamIDs other than 0 (PASID attachments). */
  usedSsids = 0;
  /** `cd_table.in_ste`: the installed STE points at the CD table. */
  cdInSte = false;
  /** `ste_ats_enabled`: the installed STE has EATS = 1. */
  steAtsEnabled = false;
  private cdTable: CdTable | undefined;

  constructor(
    /** Its SMMU. */
    readonly smmu: ArmSmmuV3,
    /** The core's device. */
    readonly dev: Device,
    /** Firmware description (StreamID, ATS control). */
    readonly fw: FirmwareStream,
  ) {
    this.streams = [fw.streamId];
    let ssid = Math.min(smmu.ssidBits, dev.pasid?.maxPasidLog2 ?? 0);
    if (!smmu.features.twoLvlCdtab) ssid = Math.min(ssid, CTXDESC_LINEAR_CDMAX);
    this.ssidBits = ssid;
  }

  /** `arm_smmu_ssids_in_use` */
  get ssidsInUse(): boolean {
    return this.usedSsids > 0;
  }

  /** `arm_smmu_ats_supported` */
  get atsSupported(): boolean {
    return this.smmu.features.ats && this.dev.ats;
  }

  /** `arm_smmu_master_canwbs` */
  get canwbs(): boolean {
    return this.smmu.canwbs;
  }

  /** The CD table STE fields, once allocated. */
  get cdTableRef(): CdTableRef | undefined {
    return this.cdTable;
  }

  /** `arm_smmu_alloc_cd_tables` */
  private allocCdTables(): CdTable | undefined {
    const mem = this.smmu.memory;
    const max = 2 ** this.ssidBits;
    try {
      if (!this.smmu.features.twoLvlCdtab || max <= CTXDESC_L2_ENTRIES) {
        const pages = mem.allocPages(Math.ceil((max * 64) / 4096));
        return { s1fmt: S1FMT.LINEAR, base: pages[0]!, s1cdmax: this.ssidBits, pages, l2: new Map() };
      }
      const l1Ents = Math.ceil(max / CTXDESC_L2_ENTRIES);
      const pages = mem.allocPages(Math.ceil((l1Ents * 8) / 4096));
      return { s1fmt: S1FMT.L2_64K, base: pages[0]!, s1cdmax: this.ssidBits, pages, l2: new Map() };
    } catch {
      return undefined;
    }
  }

  /** `arm_smmu_get_cd_ptr`: address of the CD of `ssid`, if its table exists. */
  getCdPtr(ssid: number): bigint | undefined {
    const t = this.cdTable;
    if (t === undefined) return undefined;
    if (t.s1fmt === S1FMT.LINEAR) return t.base + BigInt(ssid * 64);
    const l2 = t.l2.get(Math.floor(ssid / CTXDESC_L2_ENTRIES));
    if (l2 === undefined) return undefined;
    return l2[0]! + BigInt((ssid % CTXDESC_L2_ENTRIES) * 64);
  }

  /** `arm_smmu_alloc_cd_ptr`: allocates the table (and leaf) on first use. */
  allocCdPtr(ssid: number): bigint | undefined {
    if (this.cdTable === undefined) {
      this.cdTable = this.allocCdTables();
      if (this.cdTable === undefined) return undefined;
    }
    const t = this.cdTable;
    if (t.s1fmt === S1FMT.L2_64K) {
      const idx = Math.floor(ssid / CTXDESC_L2_ENTRIES);
      if (!t.l2.has(idx)) {
        let leaf: bigint[];
        try {
          leaf = this.smmu.memory.allocPages((CTXDESC_L2_ENTRIES * 64) / 4096);
        } catch {
          return undefined;
        }
        t.l2.set(idx, leaf);
        this.smmu.memory.write64(t.base + BigInt(idx * 8), SMMU_L1CD.encode({ V: 1, L2PTR: leaf[0]! >> 12n })[0]!);
        // An invalid L1CD can be cached.
        this.syncCd(ssid, false);
      }
    }
    return this.getCdPtr(ssid);
  }

  /** `arm_smmu_sync_cd`: CFGI_CD for every StreamID of the master, one batch + SYNC. */
  syncCd(ssid: number, leaf: boolean): void {
    const b = this.smmu.batch();
    for (const sid of this.streams) b.add({ opcode: 'CFGI_CD', sid, ssid, leaf });
    b.submit();
  }

  /** `arm_smmu_write_cd_entry`: hitless CD update. */
  writeCdEntry(ssid: number, cdptr: bigint, target: readonly bigint[]): void {
    const mem = this.smmu.memory;
    // PASID CDs becoming valid or invalid are what keeps the CD table in the STE.
    if (ssid !== 0) {
      const wasValid = SMMU_CD.get(SMMU_CD.fromBytes(mem.read(cdptr, 64)), 'V') === 1n;
      const willBeValid = SMMU_CD.get(target, 'V') === 1n;
      if (wasValid !== willBeValid) this.usedSsids += willBeValid ? 1 : -1;
    }
    const writer: EntryWriter = {
      getUsed: getCdUsed,
      writeQword: (i, v) => mem.write64(cdptr + BigInt(i * 8), v),
      sync: () => this.syncCd(ssid, true),
    };
    writeEntry(writer, SMMU_CD.fromBytes(mem.read(cdptr, 64)), target);
  }

  /** `arm_smmu_clear_cd` */
  clearCd(ssid: number): void {
    if (this.cdTable === undefined) return;
    const cdptr = this.getCdPtr(ssid);
    if (cdptr === undefined) return;
    this.writeCdEntry(ssid, cdptr, new Array<bigint>(8).fill(0n));
  }

  /** `arm_smmu_install_ste_for_dev` */
  installSte(target: readonly bigint[]): void {
    this.cdInSte = SMMU_STE.num(target, 'CONFIG') === STE_CFG.S1_TRANS;
    this.steAtsEnabled = SMMU_STE.num(target, 'EATS') === 1;
    const done = new Set<number>();
    for (const sid of this.streams) {
      // Bridged PCI devices may end up with duplicated IDs.
      if (done.has(sid)) continue;
      done.add(sid);
      this.smmu.writeSte(sid, target);
    }
  }

  /** `arm_smmu_atc_inv_master`: the whole ATC of `ssid` (all when `ssid` is 0 = IOMMU_NO_PASID). */
  atcInvMaster(ssid: number): void {
    const b = this.smmu.batch();
    for (const sid of this.streams) b.add(atcInvCmd(sid, ssid, 0n, 0n));
    b.submit();
  }

  /** `pci_enable_ats` / `pci_disable_ats`: the endpoint's ATS control register. */
  setEndpointAts(enabled: boolean): void {
    if (this.fw.endpoint !== undefined) this.fw.endpoint.atsEnabled = enabled;
    else this.fw.atsEnabled = enabled;
  }

  /** Frees the CD table (`release_device`). */
  freeCdTables(): void {
    const t = this.cdTable;
    if (t === undefined) return;
    for (const leaf of t.l2.values()) this.smmu.memory.freePages(leaf);
    this.smmu.memory.freePages(t.pages);
    this.cdTable = undefined;
  }
}

/**
 * `arm_smmu_atc_inv_to_cmd`: an ATC_INV covering `[iova, iova + size)` with the smallest
 * naturally aligned power-of-two span of 4 KiB pages; size 0 = the whole ATC.
 */
export function atcInvCmd(sid: number, ssid: number, iova: bigint, size: bigint): CmdqEnt {
  const base = { opcode: 'ATC_INV' as const, sid, ssid, substreamValid: ssid !== 0 };
  if (size === 0n) return { ...base, addr: 0n, size: ATC_INV_SIZE_ALL };
  let pageStart = iova >> 12n;
  const pageEnd = (iova + size - 1n) >> 12n;
  const x = pageStart ^ pageEnd;
  const log2Span = x === 0n ? 0 : x.toString(2).length;
  pageStart &= ~((1n << BigInt(log2Span)) - 1n);
  return { ...base, addr: pageStart << 12n, size: log2Span };
}
