/**
 * The `hardware` option of `createHost`: the parameters of the IOMMU models and PCI
 * functions a hardware preset builds, by platform. Every value ends up in an ID / capability
 * register (SMMU IDR0–IDR5, CMDQV PARAM, VT-d CAP/ECAP) or a PCI capability, and the driver
 * learns it by probing those registers, as on a real machine.
 */
import type { Bdf, SmmuV3Options, Tegra241CmdqvOptions, VtdOptions } from '@iommufd/hw-model';
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

/**
 * SMMUv3 features of the `arm-smmuv3` / `tegra241-cmdqv` presets: the IDR fields of the
 * model's options (see `SmmuV3Options` of `@iommufd/hw-model` for each field and default).
 * Ranges: `sidBits` 0–32 (every function's StreamID, its requester ID, must fit), `ssidBits`
 * 0–20, `cmdqLog2` 7–19 (Linux's driver refuses to probe an SMMU whose command queue holds
 * no more than one 64-command batch), `evtqLog2` / `priqLog2` 1–19, `oas` 0–5; `stage1` and
 * `stage2` not both false.
 */
export type SmmuHardwareOptions = Pick<
  SmmuV3Options,
  'stage1' | 'stage2' | 'ats' | 'pri' | 'ril' | 'fwb' | 'cd2l' | 'twoLevelStreamTable' | 'asidBits' | 'vmidBits' | 'sidBits' | 'ssidBits' | 'cmdqLog2' | 'evtqLog2' | 'priqLog2' | 'oas'
>;

/**
 * NVIDIA Tegra241 CMDQV sizes (its PARAM register; `Tegra241CmdqvOptions` of
 * `@iommufd/hw-model`): `vcmdqsLog2` 0–7, `vintfsLog2` 0–6 and at most `vcmdqsLog2`,
 * `sidsPerVintfLog2` 0–4. The driver derives LVCMDQs per VINTF as 2^vcmdqsLog2 /
 * 2^vintfsLog2 and keeps VINTF0 for the kernel; each vIOMMU gets a free VINTF of its own.
 */
export type CmdqvHardwareOptions = Tegra241CmdqvOptions;

/**
 * Intel VT-d capabilities of the `intel-vtd` preset: the CAP / ECAP fields of the model's
 * options (see `VtdOptions` of `@iommufd/hw-model`). Ranges: `pasidBits` 0–20, `nd` 0–6,
 * `faultRecords` 1–8. With `addressWidth` 39 the unit walks 3-level tables only, so a
 * first-stage (4-level) domain cannot attach (-EINVAL): set `firstStage: false` to get
 * second-stage paging domains.
 */
export type VtdHardwareOptions = Pick<
  VtdOptions,
  'addressWidth' | 'firstStage' | 'secondStage' | 'nested' | 'passThrough' | 'pasidBits' | 'pageRequests' | 'deviceTlb' | 'snoopControl' | 'cachingMode' | 'nd' | 'faultRecords'
>;

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
  /** None: the selftest mock is what the kernel's selftest builds. */
  readonly mock: never;
  /** SMMU features and the PCI functions' capabilities. */
  readonly 'arm-smmuv3': ArmSmmuV3HardwareOptions;
  /** As `arm-smmuv3`, plus the CMDQV's sizes. */
  readonly 'tegra241-cmdqv': Tegra241CmdqvHardwareOptions;
  /** VT-d capabilities and the PCI functions' capabilities. */
  readonly 'intel-vtd': IntelVtdHardwareOptions;
}

/** Every hardware section a preset may receive, validated (what the platform factories read). */
export interface ValidatedHardware {
  /** SMMU IDR features (SMMU presets). */
  readonly smmu?: SmmuHardwareOptions;
  /** CMDQV PARAM sizes (tegra241-cmdqv). */
  readonly cmdqv?: CmdqvHardwareOptions;
  /** VT-d CAP / ECAP features (intel-vtd). */
  readonly vtd?: VtdHardwareOptions;
  /** PCI function capabilities (hardware presets). */
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
export function requesterId(index: number): number {
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
