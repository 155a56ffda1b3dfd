/**
 * Command building (`struct arm_smmu_cmdq_ent` + `arm_smmu_cmdq_build_cmd`): a command is
 * described as data and encoded through the bit-field layouts `@iommufd/hw-model` exports, so
 * no field is shifted by hand here.
 */
import {
  CMDQ_OP,
  CMD_SYNC_CS,
  SMMU_CMD,
  SMMU_CMD_ATC_INV,
  SMMU_CMD_CFGI_RANGE,
  SMMU_CMD_PRI_RESP,
  SMMU_CMD_SYNC,
  SMMU_CMD_TLBI,
} from '@iommufd/hw-model';

/** One 16-byte command as two little-endian double words. */
export type SmmuCommand = readonly [dw0: bigint, dw1: bigint];

/** TLBI fields shared by the address-based invalidations. */
export interface TlbiFields {
  /** ASID (NH_VA, NH_ASID, EL2_VA, EL2_ASID). */
  readonly asid?: number;
  /** VMID (NH_*, S12_VMALL, S2_IPA). */
  readonly vmid?: number;
  /** Address (VA or IPA), page aligned. */
  readonly addr?: bigint;
  /** Leaf-only invalidation. */
  readonly leaf?: boolean;
  /** Range: NUM (pages = (NUM+1)·2^SCALE). */
  readonly num?: number;
  /** Range: SCALE. */
  readonly scale?: number;
  /** Range: translation granule (1 = 4 KiB). */
  readonly tg?: number;
  /** Range: level of the leaf entries (0 = unknown). */
  readonly ttl?: number;
}

/** `struct arm_smmu_cmdq_ent`: what a caller asks for. */
export type CmdqEnt =
  | { readonly opcode: 'PREFETCH_CFG'; readonly sid: number }
  | { readonly opcode: 'CFGI_STE'; readonly sid: number; readonly leaf: boolean }
  | { readonly opcode: 'CFGI_ALL' }
  | { readonly opcode: 'CFGI_CD'; readonly sid: number; readonly ssid: number; readonly leaf: boolean }
  | { readonly opcode: 'CFGI_CD_ALL'; readonly sid: number }
  | ({ readonly opcode: 'TLBI_NH_VA' | 'TLBI_NH_VAA' | 'TLBI_S2_IPA' | 'TLBI_EL2_VA' } & TlbiFields)
  | { readonly opcode: 'TLBI_NH_ASID'; readonly asid: number; readonly vmid: number }
  | { readonly opcode: 'TLBI_NH_ALL' | 'TLBI_S12_VMALL'; readonly vmid: number }
  | { readonly opcode: 'TLBI_EL2_ASID'; readonly asid: number }
  | { readonly opcode: 'TLBI_NSNH_ALL' | 'TLBI_EL2_ALL' }
  | {
      readonly opcode: 'ATC_INV';
      readonly sid: number;
      readonly ssid: number;
      readonly substreamValid: boolean;
      readonly global?: boolean;
      readonly addr: bigint;
      readonly size: number;
    }
  | {
      readonly opcode: 'PRI_RESP';
      readonly sid: number;
      readonly ssid: number;
      readonly substreamValid: boolean;
      readonly grpid: number;
      readonly resp: number;
    }
  | { readonly opcode: 'CMD_SYNC'; readonly msiaddr?: bigint };

/** `ARM_SMMU_SH_ISH`: inner shareable. */
const SH_ISH = 3;
/** `CMDQ_SYNC_0_MSIATTR_OIWB`: outer+inner write-back. */
const MSIATTR_OIWB = 0xf;
/** `ATC_INV_SIZE_ALL`: the whole ATC. */
export const ATC_INV_SIZE_ALL = 52;

const pair = (w: bigint[]): SmmuCommand => [w[0]!, w[1]!];

/**
 * `arm_smmu_cmdq_build_cmd`: the two double words of `ent`. Addresses keep only the bits the
 * command has room for (VA [63:12], IPA [51:12], MSI address [51:2]), as Linux masks them.
 */
export function buildCmd(ent: CmdqEnt): SmmuCommand {
  switch (ent.opcode) {
    case 'PREFETCH_CFG':
      return pair(SMMU_CMD.encode({ OPCODE: CMDQ_OP.PREFETCH_CONFIG, SID: ent.sid }));
    case 'CFGI_STE':
      return pair(SMMU_CMD.encode({ OPCODE: CMDQ_OP.CFGI_STE, SID: ent.sid, LEAF: ent.leaf }));
    case 'CFGI_ALL':
      // CFGI_ALL is CFGI_STE_RANGE covering every StreamID.
      return pair(SMMU_CMD_CFGI_RANGE.encode({ OPCODE: CMDQ_OP.CFGI_STE_RANGE, RANGE: 31 }));
    case 'CFGI_CD':
      return pair(SMMU_CMD.encode({ OPCODE: CMDQ_OP.CFGI_CD, SSID: ent.ssid, SID: ent.sid, LEAF: ent.leaf }));
    case 'CFGI_CD_ALL':
      return pair(SMMU_CMD.encode({ OPCODE: CMDQ_OP.CFGI_CD_ALL, SID: ent.sid }));
    case 'TLBI_NH_VA':
    case 'TLBI_NH_VAA':
    case 'TLBI_EL2_VA':
    case 'TLBI_S2_IPA': {
      const addrMask = ent.opcode === 'TLBI_S2_IPA' ? (1n << 52n) - 1n : (1n << 64n) - 1n;
      return pair(
        SMMU_CMD_TLBI.encode({
          OPCODE: CMDQ_OP[ent.opcode],
          NUM: ent.num ?? 0,
          SCALE: ent.scale ?? 0,
          VMID: ent.opcode === 'TLBI_EL2_VA' ? 0 : (ent.vmid ?? 0),
          ASID: ent.opcode === 'TLBI_NH_VA' || ent.opcode === 'TLBI_EL2_VA' ? (ent.asid ?? 0) : 0,
          LEAF: ent.leaf ?? false,
          TTL: ent.ttl ?? 0,
          TG: ent.tg ?? 0,
          ADDR: ((ent.addr ?? 0n) & addrMask) >> 12n,
        }),
      );
    }
    case 'TLBI_NH_ASID':
      return pair(SMMU_CMD_TLBI.encode({ OPCODE: CMDQ_OP.TLBI_NH_ASID, ASID: ent.asid, VMID: ent.vmid }));
    case 'TLBI_NH_ALL':
    case 'TLBI_S12_VMALL':
      return pair(SMMU_CMD_TLBI.encode({ OPCODE: CMDQ_OP[ent.opcode], VMID: ent.vmid }));
    case 'TLBI_EL2_ASID':
      return pair(SMMU_CMD_TLBI.encode({ OPCODE: CMDQ_OP.TLBI_EL2_ASID, ASID: ent.asid }));
    case 'TLBI_NSNH_ALL':
    case 'TLBI_EL2_ALL':
      return pair(SMMU_CMD.encode({ OPCODE: CMDQ_OP[ent.opcode] }));
    case 'ATC_INV':
      return pair(
        SMMU_CMD_ATC_INV.encode({
          OPCODE: CMDQ_OP.ATC_INV,
          GLOBAL: ent.global ?? false,
          SSV: ent.substreamValid,
          SSID: ent.ssid,
          SID: ent.sid,
          SIZE: ent.size,
          ADDR: ent.addr >> 12n,
        }),
      );
    case 'PRI_RESP':
      return pair(
        SMMU_CMD_PRI_RESP.encode({
          OPCODE: CMDQ_OP.PRI_RESP,
          SSV: ent.substreamValid,
          SSID: ent.ssid,
          SID: ent.sid,
          PRGI: ent.grpid,
          RESP: ent.resp,
        }),
      );
    case 'CMD_SYNC':
      // With an MSI address the SMMU writes MSIData (0) there on completion: the MSIPOLL trick.
      return pair(
        SMMU_CMD_SYNC.encode({
          OPCODE: CMDQ_OP.CMD_SYNC,
          CS: ent.msiaddr !== undefined ? CMD_SYNC_CS.IRQ : CMD_SYNC_CS.SEV,
          MSH: SH_ISH,
          MSIATTR: MSIATTR_OIWB,
          MSIADDR: ((ent.msiaddr ?? 0n) & ((1n << 52n) - 1n)) >> 2n,
        }),
      );
  }
}
