/**
 * The `hardware` option of `createHost`: the parameters of the IOMMU models and PCI
 * functions a hardware preset builds, by platform. Every value ends up in an ID / capability
 * register (SMMU IDR0–IDR5, CMDQV PARAM, VT-d CAP/ECAP) or a PCI capability, and the driver
 * learns it by probing those registers, as on a real machine.
 */
import type { Bdf } from '@iommufd/hw-model';
import { HostError } from './errors.js';
import type { PlatformName } from './platform.js';

/** Functions per PCI bus of a preset: slots 1–31 (slot 0 is the host bridge's). */
const FUNCTIONS_PER_BUS = 31;

/** The most devices a preset plugs: every slot of buses 0–255. */
export const MAX_DEVICES = FUNCTIONS_PER_BUS * 256;

/** Where preset device `index` sits: slots 1–31 of each bus, function 0, bus after bus. */
export function presetBdf(index: number): Bdf {
  return { bus: Math.floor(index / FUNCTIONS_PER_BUS), dev: (index % FUNCTIONS_PER_BUS) + 1, fn: 0 };
}

/** The PCI capabilities of every function a hardware preset plugs. */
export interface PciFunctionOptions {
  /** Address Translation Services capability. Default true. */
  readonly ats?: boolean;
  /** Page Request Interface capability. Default true. */
  readonly pri?: boolean;
  /** PASID capability width in bits (Max PASID Width); 0 = no PASID capability. Default 20. */
  readonly pasidBits?: number;
}

/** SMMUv3 features of the `arm-smmuv3` / `tegra241-cmdqv` presets (the IDR fields they set). */
export interface SmmuHardwareOptions {
  /** Stage-1 translation (IDR0.S1P). Default true. At least one stage must be supported. */
  readonly stage1?: boolean;
  /** Stage-2 translation (IDR0.S2P). Default true. */
  readonly stage2?: boolean;
  /** ATS (IDR0.ATS). Default true. */
  readonly ats?: boolean;
  /** PRI (IDR0.PRI). Default true. */
  readonly pri?: boolean;
  /** Range invalidation (IDR3.RIL). Default true. */
  readonly ril?: boolean;
  /** Stage-2 forced write-back (IDR3.FWB). Default true. */
  readonly fwb?: boolean;
  /** Two-level CD tables (IDR0.CD2L). Default true. */
  readonly cd2l?: boolean;
  /** Two-level stream table (IDR0.ST_LEVEL). Default true. */
  readonly twoLevelStreamTable?: boolean;
  /** ASID width (IDR0.ASID16): 8 or 16. Default 16. */
  readonly asidBits?: 8 | 16;
  /** VMID width (IDR0.VMID16): 8 or 16. Default 16. */
  readonly vmidBits?: 8 | 16;
  /** StreamID width (IDR1.SIDSIZE), 0..32; every function's StreamID (its requester ID) must fit. Default 16. */
  readonly sidBits?: number;
  /** SubstreamID width (IDR1.SSIDSIZE), 0..20. Default 20. */
  readonly ssidBits?: number;
  /**
   * log2 of the largest command queue (IDR1.CMDQS), 7..19 (the driver refuses to probe an
   * SMMU whose queue holds no more than one 64-command batch). Default 19.
   */
  readonly cmdqLog2?: number;
  /** log2 of the largest event queue (IDR1.EVTQS), 1..19. Default 19. */
  readonly evtqLog2?: number;
  /** log2 of the largest PRI queue (IDR1.PRIQS), 1..19. Default 19. */
  readonly priqLog2?: number;
  /** Output address size encoding (IDR5.OAS): 0 = 32 bits … 5 = 48 bits. Default 5. */
  readonly oas?: number;
}

/**
 * NVIDIA Tegra241 CMDQV sizes (its PARAM register). The driver derives LVCMDQs per VINTF as
 * 2^vcmdqsLog2 / 2^vintfsLog2 and keeps VINTF0 for the kernel; each vIOMMU gets a free VINTF of its own.
 */
export interface CmdqvHardwareOptions {
  /** log2 of the number of global VCMDQs (PARAM.NUM_VCMDQ_LOG2), 0..7. Default 4 (16). */
  readonly vcmdqsLog2?: number;
  /** log2 of the number of VINTFs (PARAM.NUM_VINTF_LOG2), 0..6, at most vcmdqsLog2. Default 2 (4). */
  readonly vintfsLog2?: number;
  /** log2 of the SID match/replace slots per VINTF (PARAM.NUM_SID_PER_VM_LOG2), 0..4. Default 4 (16). */
  readonly sidsPerVintfLog2?: number;
}

/** Intel VT-d capabilities of the `intel-vtd` preset (the CAP / ECAP fields they set). */
export interface VtdHardwareOptions {
  /**
   * Address width in bits (CAP.MGAW + 1, SAGAW): 39, 48 or 57. Default 48. With 39 the unit
   * walks 3-level tables only, so a first-stage (4-level) domain cannot attach (-EINVAL):
   * set `firstStage: false` to get second-stage paging domains.
   */
  readonly addressWidth?: 39 | 48 | 57;
  /** First-stage translation (ECAP.FLTS). Default true. */
  readonly firstStage?: boolean;
  /** Second-stage translation (ECAP.SLTS). Default true. */
  readonly secondStage?: boolean;
  /** Nested translation (ECAP.NEST). Default true. */
  readonly nested?: boolean;
  /** Pass-through (ECAP.PT). Default true. */
  readonly passThrough?: boolean;
  /** PASID width (ECAP.PSS + 1), 0..20; 0 clears ECAP.PASID. Default 20. */
  readonly pasidBits?: number;
  /** Page requests (ECAP.PRS). Default true. */
  readonly pageRequests?: boolean;
  /** Device-TLB / ATS (ECAP.DT). Default true. */
  readonly deviceTlb?: boolean;
  /** Snoop control (ECAP.SC). Default false. */
  readonly snoopControl?: boolean;
  /** Caching mode (CAP.CM), as a virtual IOMMU reports it. Default false. */
  readonly cachingMode?: boolean;
  /** Domain-ID width (CAP.ND: 2^(4+2·nd) domain IDs), 0..6. Default 6. */
  readonly nd?: number;
  /** Fault recording registers (CAP.NFR + 1), 1..8. Default 4. */
  readonly faultRecords?: number;
}

/** `hardware` of the `arm-smmuv3` preset. */
export interface ArmSmmuV3HardwareOptions {
  /** The SMMU's features. */
  readonly smmu?: SmmuHardwareOptions;
  /** Every PCI function's capabilities. */
  readonly devices?: PciFunctionOptions;
}

/** `hardware` of the `tegra241-cmdqv` preset. */
export interface Tegra241CmdqvHardwareOptions extends ArmSmmuV3HardwareOptions {
  /** The CMDQV's sizes (PARAM). */
  readonly cmdqv?: CmdqvHardwareOptions;
}

/** `hardware` of the `intel-vtd` preset. */
export interface IntelVtdHardwareOptions {
  /** The remapping unit's capabilities. */
  readonly vtd?: VtdHardwareOptions;
  /** Every PCI function's capabilities. */
  readonly devices?: PciFunctionOptions;
}

/**
 * The `hardware` option of each preset. The `mock` preset (the selftest mock, whose
 * parameters are the kernel selftest's) has none.
 */
export interface HostHardwareOptions {
  readonly mock: never;
  readonly 'arm-smmuv3': ArmSmmuV3HardwareOptions;
  readonly 'tegra241-cmdqv': Tegra241CmdqvHardwareOptions;
  readonly 'intel-vtd': IntelVtdHardwareOptions;
}

/** Every hardware section a preset may receive, validated (what the platform factories read). */
export interface ValidatedHardware {
  readonly smmu?: SmmuHardwareOptions;
  readonly cmdqv?: CmdqvHardwareOptions;
  readonly vtd?: VtdHardwareOptions;
  readonly devices?: PciFunctionOptions;
}

type Rule = { readonly kind: 'boolean' } | { readonly kind: 'integer'; readonly min: number; readonly max: number; readonly why?: string } | { readonly kind: 'oneOf'; readonly values: readonly number[] };
type Rules<T> = { readonly [K in keyof Required<T>]: Rule };

const BOOL: Rule = { kind: 'boolean' };
const int = (min: number, max: number, why?: string): Rule => ({ kind: 'integer', min, max, ...(why !== undefined ? { why } : {}) });

// The ranges are the registers' (and the models'): a value outside them has no encoding.
const PCI_RULES: Rules<PciFunctionOptions> = { ats: BOOL, pri: BOOL, pasidBits: int(0, 20) };
const SMMU_RULES: Rules<SmmuHardwareOptions> = {
  stage1: BOOL,
  stage2: BOOL,
  ats: BOOL,
  pri: BOOL,
  ril: BOOL,
  fwb: BOOL,
  cd2l: BOOL,
  twoLevelStreamTable: BOOL,
  asidBits: { kind: 'oneOf', values: [8, 16] },
  vmidBits: { kind: 'oneOf', values: [8, 16] },
  sidBits: int(0, 32),
  ssidBits: int(0, 20),
  cmdqLog2: int(7, 19, "Linux's arm-smmu-v3 refuses to probe an SMMU whose command queue holds no more than one 64-command batch"),
  evtqLog2: int(1, 19),
  priqLog2: int(1, 19),
  oas: int(0, 5),
};
// CMDQ_ALLOC.LVCMDQ is 7 bits and .VINTF 6 bits; a VINTF's register block holds 16 SID slots.
const CMDQV_RULES: Rules<CmdqvHardwareOptions> = { vcmdqsLog2: int(0, 7), vintfsLog2: int(0, 6), sidsPerVintfLog2: int(0, 4) };
const VTD_RULES: Rules<VtdHardwareOptions> = {
  addressWidth: { kind: 'oneOf', values: [39, 48, 57] },
  firstStage: BOOL,
  secondStage: BOOL,
  nested: BOOL,
  passThrough: BOOL,
  pasidBits: int(0, 20),
  pageRequests: BOOL,
  deviceTlb: BOOL,
  snoopControl: BOOL,
  cachingMode: BOOL,
  nd: int(0, 6),
  faultRecords: int(1, 8),
};

/** The sections each preset takes, with their rules (data, one row per preset). */
const SECTIONS: { readonly [P in PlatformName]: Readonly<Partial<Record<keyof ValidatedHardware, Rules<object>>>> } = {
  mock: {},
  'arm-smmuv3': { smmu: SMMU_RULES, devices: PCI_RULES },
  'tegra241-cmdqv': { smmu: SMMU_RULES, cmdqv: CMDQV_RULES, devices: PCI_RULES },
  'intel-vtd': { vtd: VTD_RULES, devices: PCI_RULES },
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (keys: readonly string[]): string => keys.map((k) => `'${k}'`).join(', ');
const bad = (message: string): HostError => new HostError('BAD_OPTION', message);

function checkValue(path: string, rule: Rule, value: unknown): void {
  switch (rule.kind) {
    case 'boolean':
      if (typeof value !== 'boolean') throw bad(`${path} must be true or false, got ${JSON.stringify(value)}`);
      return;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < rule.min || value > rule.max) {
        throw bad(`${path} must be an integer in [${rule.min}, ${rule.max}], got ${JSON.stringify(value)}${rule.why !== undefined ? ` (${rule.why})` : ''}`);
      }
      return;
    case 'oneOf':
      if (typeof value !== 'number' || !rule.values.includes(value)) throw bad(`${path} must be one of ${rule.values.join(', ')}, got ${JSON.stringify(value)}`);
  }
}

/** The requester ID (= StreamID on the SMMU presets) of preset function `index`. */
function requesterId(index: number): number {
  const { bus, dev, fn } = presetBdf(index);
  return (bus << 8) | (dev << 3) | fn;
}

/**
 * Checks `hardware` against `platform`'s sections, key by key, then the rules that span
 * fields; returns it typed for the platform factories.
 *
 * @throws {@link HostError} `BAD_OPTION` naming the field, what it got and what is allowed.
 */
export function validateHardware(platform: PlatformName, hardware: unknown, devices: number): ValidatedHardware {
  if (hardware === undefined) return {};
  const sections = SECTIONS[platform];
  const names = Object.keys(sections);
  if (names.length === 0) throw bad(`platform '${platform}' has no hardware options (the selftest mock's parameters are the kernel's); remove 'hardware'`);
  if (!isRecord(hardware)) throw bad(`hardware must be an object with some of ${list(names)}, got ${JSON.stringify(hardware)}`);
  for (const [section, value] of Object.entries(hardware)) {
    const rules = (sections as Record<string, Rules<object> | undefined>)[section];
    if (rules === undefined) throw bad(`hardware.${section} is not an option of platform '${platform}'; it takes ${list(names)}`);
    if (value === undefined) continue;
    if (!isRecord(value)) throw bad(`hardware.${section} must be an object, got ${JSON.stringify(value)}`);
    for (const [key, v] of Object.entries(value)) {
      const rule = (rules as Record<string, Rule | undefined>)[key];
      if (rule === undefined) throw bad(`hardware.${section}.${key} is not an option; hardware.${section} takes ${list(Object.keys(rules))}`);
      if (v !== undefined) checkValue(`hardware.${section}.${key}`, rule, v);
    }
  }
  const hw = hardware as ValidatedHardware;
  if (hw.smmu?.stage1 === false && hw.smmu.stage2 === false) throw bad('hardware.smmu: an SMMU needs stage 1 or stage 2; set stage1 or stage2 to true');
  const q = hw.cmdqv?.vcmdqsLog2 ?? 4;
  const v = hw.cmdqv?.vintfsLog2 ?? 2;
  if (v > q) throw bad(`hardware.cmdqv.vintfsLog2 (${v}) must not exceed vcmdqsLog2 (${q}): every VINTF needs at least one VCMDQ`);
  const sidBits = hw.smmu?.sidBits;
  if (sidBits !== undefined && devices > 0 && requesterId(devices - 1) >= 2 ** sidBits) {
    const last = requesterId(devices - 1);
    throw bad(
      `hardware.smmu.sidBits ${sidBits} cannot hold the StreamID 0x${last.toString(16)} of device ${devices - 1} (StreamID = requester ID, 31 functions per bus); ` +
        `use sidBits ≥ ${Math.floor(Math.log2(last)) + 1} or fewer devices`,
    );
  }
  return hw;
}
