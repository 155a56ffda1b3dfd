/**
 * The `intel-vtd` preset: an x86 machine with one VT-d remapping unit (scalable mode, first
 * and second stage, nesting, PASID, page requests, device-TLB — the model's defaults) and N
 * PCI functions behind it with ATS, PRI and 20-bit PASID, driven by `@iommufd/intel-vtd`.
 * The unit's MSIs (fault event, page request) go straight to the driver's handlers.
 */
import { createVtdIommu, type VtdIommu } from '@iommufd/hw-model';
import { probeIntelIommu, type IntelIommu } from '@iommufd/intel-vtd';
import type { HostPhysicalMemory } from '../physical.js';
import type { Platform, PlatformContext } from '../platform.js';
import { registerObservationPoints } from './observation.js';
import { coreCapabilities, coreWithInjector, functionCapabilities, hardwarePlatform, machineOf, pciName, plugPciDevice, presetBdf, type HardwareDevice } from './hardware.js';

/**
 * Register base of the DRHD. x86 firmware puts it at 0xfed9_0000, but the host's RAM starts
 * at 0x8000_0000 and runs over that hole, so the unit sits just below RAM.
 */
export const INTEL_VTD_BASE = 0x7fd9_0000n;

/** What every function of the preset advertises: what a passed-through SR-IOV-less NIC or GPU has. */
const DEVICE_CAPABILITIES = { ats: true, pri: true, pasid: { maxPasidLog2: 20, exec: false, priv: true } } as const;

/** The driver's unit of each intel-vtd host, by the host's memory (inspection for the package's own tests). */
const units = new WeakMap<HostPhysicalMemory, { unit: IntelIommu; hw: VtdIommu }>();

/** The intel-vtd driver's unit and the VT-d model of the host whose memory is `memory` (domain IDs, QI log, caches). */
export function intelVtdUnitOf(memory: HostPhysicalMemory): { unit: IntelIommu; hw: VtdIommu } | undefined {
  return units.get(memory);
}

/** Builds the `intel-vtd` platform. */
export async function createIntelVtdPlatform(ctx: PlatformContext): Promise<Platform> {
  const memory = machineOf(ctx, 'intel-vtd');
  let unit: IntelIommu | undefined;
  const hw: VtdIommu = createVtdIommu({
    memory,
    description: { kind: 'vtd', name: 'dmar0', base: INTEL_VTD_BASE, options: { ...ctx.hardware.vtd, onInterrupt: (irq) => unit?.handleInterrupt(irq) } },
    strict: ctx.strict,
    seed: ctx.seed,
  });
  memory.addMmio(INTEL_VTD_BASE, hw.mmioSize, hw);
  unit = probeIntelIommu({ memory, base: INTEL_VTD_BASE, name: 'dmar0' });
  units.set(ctx.memory, { unit, hw });
  const { core, setInjector } = coreWithInjector(ctx.memory);
  core.registerIommu(unit);
  const capabilities = functionCapabilities(DEVICE_CAPABILITIES, ctx.hardware.devices);
  const devices: HardwareDevice[] = [];
  for (let i = 0; i < ctx.devices; i++) {
    const bdf = presetBdf(i);
    const pci = plugPciDevice(memory, hw, bdf, capabilities);
    const name = pciName(bdf);
    unit.addPciDevice(name, pci);
    // One iommu_group per function (ACS everywhere, as on a server root complex).
    const handle = core.addDevice({ name, iommu: unit, group: i + 1, ...coreCapabilities(pci.capabilities) });
    devices.push({ handle, pci });
  }
  registerObservationPoints(ctx.memory, { core, iommus: [hw], devices: devices.map((d) => d.handle) });
  return hardwarePlatform({ name: 'intel-vtd', core, devices, setInjector });
}
