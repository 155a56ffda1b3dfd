/**
 * The `arm-smmuv3` preset: an Arm machine (the `virt` board's SMMU at 0x0900_0000) with one
 * SMMUv3 probed by `@iommufd/arm-smmu-v3` and N PCI functions behind it. The SMMU model raises
 * wired interrupts without a callback, so the platform runs the driver's handlers (GERROR,
 * EVTQ, PRIQ) after every device DMA, as the CPU would take the interrupt; a function's PRI
 * page request after a failed ATS translation is issued there too. The same builder
 * gives the `tegra241-cmdqv` preset with the CMDQV frame after the SMMU's registers.
 */
import { IOMMU_FACTORIES, type IommuInstance, type PciCapabilities, type PciDevice } from '@iommufd/hw-model';
import { armSmmuV3Probe, tegra241CmdqvImpl, type ArmSmmuV3 } from '@iommufd/arm-smmu-v3';
import type { HostPhysicalMemory } from '../physical.js';
import type { DmaRequest, DmaResult, Platform, PlatformContext } from '../platform.js';
import { registerObservationPoints } from './observation.js';
import { coreCapabilities, coreWithInjector, functionCapabilities, hardwarePlatform, machineOf, pciName, plugPciDevice, presetBdf, type HardwareDevice } from './hardware.js';

/** Register base of the SMMU (the Arm `virt` board's); the Tegra241 CMDQV frame follows its 128 KiB. */
export const ARM_SMMUV3_BASE = 0x0900_0000n;

/**
 * What every function advertises: ATS, PRI and 20-bit PASID with execute and privileged
 * modes, as a passed-through accelerator on an Arm server has. PRI requests go to the
 * core's I/O page-fault path (FAULT objects), with responses back as PRI_RESP.
 */
const DEVICE_CAPABILITIES: PciCapabilities = { ats: true, pri: true, pasid: { maxPasidLog2: 20, exec: true, priv: true } };

/** The driver instance and SMMU model of each SMMU host, by the host's memory (inspection for the package's own tests). */
const smmus = new WeakMap<HostPhysicalMemory, { smmu: ArmSmmuV3; hw: IommuInstance }>();

/** The arm-smmu-v3 driver instance and SMMU model of the host whose memory is `memory`. */
export function armSmmuOf(memory: HostPhysicalMemory): { smmu: ArmSmmuV3; hw: IommuInstance } | undefined {
  return smmus.get(memory);
}

/** Builds the `arm-smmuv3` platform, or with `tegra` the `tegra241-cmdqv` one. */
export async function createSmmuPlatform(ctx: PlatformContext, tegra = false): Promise<Platform> {
  const name = tegra ? 'tegra241-cmdqv' : 'arm-smmuv3';
  const memory = machineOf(ctx, name);
  const kind = tegra ? 'tegra241-cmdqv' : 'smmuv3';
  // The model's options are the hardware's: IDR fields and the CMDQV's PARAM, which the driver probes.
  const options = { ...ctx.hardware.smmu, ...(tegra && ctx.hardware.cmdqv ? { cmdqv: ctx.hardware.cmdqv } : {}) };
  const hw = IOMMU_FACTORIES[kind]!({ memory, description: { kind, name: 'smmu0', base: ARM_SMMUV3_BASE, options }, strict: ctx.strict, seed: ctx.seed });
  memory.addMmio(ARM_SMMUV3_BASE, hw.mmioSize, hw);
  for (const x of hw.extraMmio ?? []) memory.addMmio(ARM_SMMUV3_BASE + x.offset, x.size, x.device);
  // The IORT: every function's StreamID (= its requester ID) is known before the SMMU probes.
  const capabilities = functionCapabilities(DEVICE_CAPABILITIES, ctx.hardware.devices);
  const pcis = Array.from({ length: ctx.devices }, (_, i) => plugPciDevice(memory, hw, presetBdf(i), capabilities));
  const streams = pcis.map((pci) => ({ name: pciName(pci.bdf), streamId: pci.streamId, endpoint: pci }));
  const smmu = armSmmuV3Probe({ memory, base: ARM_SMMUV3_BASE, name: 'smmu0', streams, priIopf: true, ...(tegra ? { impl: tegra241CmdqvImpl() } : {}) });
  smmus.set(ctx.memory, { smmu, hw });
  const { core, setInjector } = coreWithInjector(ctx.memory);
  core.registerIommu(smmu);
  const devices: HardwareDevice[] = pcis.map((pci, i) => {
    // The driver finds the StreamID by the device name; one iommu_group per function.
    const handle = core.addDevice({ name: streams[i]!.name, iommu: smmu, group: i + 1, ...coreCapabilities(pci.capabilities) });
    return { handle, pci };
  });
  registerObservationPoints(ctx.memory, { core, iommus: [hw], devices: devices.map((d) => d.handle) });
  const groupIndex = new Map<PciDevice, number>();
  const afterDma = (pci: PciDevice, req: DmaRequest, result: DmaResult): void => {
    // A PRI-capable function whose ATS translation request came back without a translation
    // asks for the page (PCIe PRI); the SMMU model takes that as a separate device request.
    if (!result.ok && !result.fault.recorded && result.fault.kind === 'F_TRANSLATION' && pci.capabilities.pri === true && pci.atsEnabled) {
      const prgi = groupIndex.get(pci) ?? 0;
      groupIndex.set(pci, (prgi + 1) & 0x1ff);
      pci.pageRequest({ iova: result.fault.iova, write: req.write, ...(req.pasid !== undefined ? { pasid: req.pasid } : {}), prgi, last: true });
    }
    smmu.serviceInterrupts();
  };
  return hardwarePlatform({ name, core, devices, setInjector, afterDma });
}

/** Builds the `arm-smmuv3` platform. */
export function createArmSmmuV3Platform(ctx: PlatformContext): Promise<Platform> {
  return createSmmuPlatform(ctx, false);
}
