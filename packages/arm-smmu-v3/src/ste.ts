/**
 * What Linux writes into STEs and CDs (`arm_smmu_make_*_ste`, `arm_smmu_make_s1_cd`),
 * reference/smmuv3.md §2.3–2.4. Pure functions from the configuration to the eight words.
 */
import { SMMU_CD, SMMU_STE, STE_CFG } from '@iommufd/hw-model';
import type { ArmLpaeTcr } from './io-pgtable-arm.js';

/** `STRTAB_STE_1_S1DSS_*` */
export const S1DSS = { TERMINATE: 0, BYPASS: 1, SSID0: 2 } as const;
/** `STRTAB_STE_1_EATS_TRANS` */
const EATS_TRANS = 1;
/** `STRTAB_STE_1_S1C_CACHE_WBRA` */
const S1C_CACHE_WBRA = 1;
/** `ARM_SMMU_SH_ISH` */
const SH_ISH = 3;
/** `STRTAB_STE_1_SHCFG_INCOMING` */
const SHCFG_INCOMING = 1;
/** `STRTAB_STE_1_STRW_NSEL1` / `_EL2` */
const STRW = { NSEL1: 0, EL2: 2 } as const;

/** The SMMU features the make functions look at. */
export interface SteFeatures {
  /** `ARM_SMMU_FEAT_ATTR_TYPES_OVR` (IDR1.ATTR_TYPES_OVR) */
  readonly attrTypesOvr: boolean;
  /** `ARM_SMMU_FEAT_E2H` */
  readonly e2h: boolean;
  /** `ARM_SMMU_FEAT_STALLS` */
  readonly stalls: boolean;
}

/** The CD table an S1 STE points at. */
export interface CdTableRef {
  /** `STRTAB_STE_0_S1FMT_*`: 0 linear, 2 two-level with 64 KiB leaves. */
  readonly s1fmt: number;
  /** Physical address of the (L1) table. */
  readonly base: bigint;
  /** log2 number of CDs. */
  readonly s1cdmax: number;
}

/** The stage-2 part of an S2 domain STE. */
export interface S2Config {
  /** VMID */
  readonly vmid: number;
  /** VTCR fields */
  readonly vtcr: ArmLpaeTcr;
  /** Table base (S2TTB) */
  readonly ttb: bigint;
  /** `IO_PGTABLE_QUIRK_ARM_S2FWB`: the nest-parent tables use FWB. */
  readonly s2fwb: boolean;
}

/** `arm_smmu_make_abort_ste` */
export function makeAbortSte(): bigint[] {
  return SMMU_STE.encode({ V: 1, CONFIG: STE_CFG.ABORT });
}

/** `arm_smmu_make_bypass_ste` */
export function makeBypassSte(f: SteFeatures): bigint[] {
  return SMMU_STE.encode({ V: 1, CONFIG: STE_CFG.BYPASS, SHCFG: f.attrTypesOvr ? SHCFG_INCOMING : 0 });
}

/** `arm_smmu_make_cdtable_ste` */
export function makeCdtableSte(f: SteFeatures, cd: CdTableRef, opts: { atsEnabled: boolean; s1dss: number; stallEnabled: boolean }): bigint[] {
  return SMMU_STE.encode({
    V: 1,
    CONFIG: STE_CFG.S1_TRANS,
    S1FMT: cd.s1fmt,
    S1CONTEXTPTR: cd.base >> 6n,
    S1CDMAX: cd.s1cdmax,
    S1DSS: opts.s1dss,
    S1CIR: S1C_CACHE_WBRA,
    S1COR: S1C_CACHE_WBRA,
    S1CSH: SH_ISH,
    S1STALLD: f.stalls && !opts.stallEnabled,
    EATS: opts.atsEnabled ? EATS_TRANS : 0,
    SHCFG: f.attrTypesOvr && opts.s1dss === S1DSS.BYPASS ? SHCFG_INCOMING : 0,
    STRW: f.e2h ? STRW.EL2 : STRW.NSEL1,
    // Without E2H, S1-only STEs carry VMID 0 (reserved by the driver for this use).
    S2VMID: 0,
  });
}

/** `arm_smmu_make_s2_domain_ste` */
export function makeS2DomainSte(f: SteFeatures, s2: S2Config, opts: { atsEnabled: boolean; stallEnabled: boolean }): bigint[] {
  return SMMU_STE.encode({
    V: 1,
    CONFIG: STE_CFG.S2_TRANS,
    EATS: opts.atsEnabled ? EATS_TRANS : 0,
    S2FWB: s2.s2fwb,
    SHCFG: f.attrTypesOvr ? SHCFG_INCOMING : 0,
    S2VMID: s2.vmid,
    S2T0SZ: s2.vtcr.tsz,
    S2SL0: s2.vtcr.sl,
    S2IR0: s2.vtcr.irgn,
    S2OR0: s2.vtcr.orgn,
    S2SH0: s2.vtcr.sh,
    S2TG: s2.vtcr.tg,
    S2PS: s2.vtcr.ps,
    S2AA64: 1,
    S2PTW: 1,
    S2S: opts.stallEnabled,
    S2R: 1,
    S2TTB: s2.ttb >> 4n,
  });
}

/**
 * `arm_smmu_make_nested_cd_table_ste`: the S2 STE of the parent with Config = nested, the
 * guest's S1 fields (dw0 and dw1 as validated) and MEV to rate-limit a guest's event flood.
 */
export function makeNestedCdTableSte(f: SteFeatures, s2: S2Config, guestSte: readonly [bigint, bigint], opts: { atsEnabled: boolean; stallEnabled: boolean }): bigint[] {
  const w = makeS2DomainSte(f, s2, opts);
  const cfgMask = 0b1110n;
  w[0] = SMMU_STE.encode({ V: 1, CONFIG: STE_CFG.NESTED })[0]! | (guestSte[0] & ~cfgMask);
  w[1] = w[1]! | guestSte[1];
  SMMU_STE.set(w, 'MEV', 1);
  return w;
}

/** `arm_smmu_make_s1_cd` */
export function makeS1Cd(tcr: ArmLpaeTcr, opts: { asid: number; ttb: bigint; mair: bigint; stallEnabled: boolean; hd: boolean }): bigint[] {
  return SMMU_CD.encode({
    T0SZ: tcr.tsz,
    TG0: tcr.tg,
    IR0: tcr.irgn,
    OR0: tcr.orgn,
    SH0: tcr.sh,
    EPD1: 1,
    V: 1,
    IPS: tcr.ps,
    AA64: 1,
    S: opts.stallEnabled,
    R: 1,
    A: 1,
    ASET: 1,
    ASID: opts.asid,
    HA: opts.hd,
    HD: opts.hd,
    TTB0: opts.ttb >> 4n,
    MAIR: opts.mair,
  });
}
