/**
 * What the hardware presets (`intel-vtd`, `arm-smmuv3`, `tegra241-cmdqv`) share: the core
 * with a fault injector that can be armed later, a PCI function per device on the machine's
 * physical memory, and the {@link Platform} face over the core whose DMA is the PCI
 * function's own DMA engine, translated by the IOMMU model.
 */
import { IommuCore, type CoreDevice, type DirectMap } from '@iommufd/core';
import type { FaultInjector } from '@iommufd/driver-api';
import { PciDevice, type Bdf, type DmaTranslator, type PciCapabilities, type PhysicalMemory } from '@iommufd/hw-model';
import type { PciFunctionOptions } from '../hardware-options.js';
import { MachineMemory } from '../physical.js';
import { IommufdContexts } from './contexts.js';
import type { DmaRequest, DmaResult, Platform, PlatformContext, PlatformDevice, PlatformName } from '../platform.js';

/** The machine memory of a platform context (every preset runs on hw-model's memory). */
export function machineOf(ctx: PlatformContext, preset: PlatformName): PhysicalMemory {
  if (!(ctx.memory instanceof MachineMemory)) throw new Error(`the '${preset}' platform needs the machine memory`);
  return ctx.memory.machine;
}

/**
 * A core whose fault injector (fail_nth) is consulted at call time, so it can be armed after
 * boot, and which reaches RAM through `directMap` (the kernel's direct map).
 */
export function coreWithInjector(directMap: DirectMap): { core: IommuCore; setInjector(i: FaultInjector | undefined): void } {
  let injector: FaultInjector | undefined;
  const core = new IommuCore({ faultInjection: { shouldFail: (site) => injector?.shouldFail(site) ?? false }, directMap });
  return {
    core,
    setInjector: (i) => {
      injector = i;
    },
  };
}

export { presetBdf } from '../hardware-options.js';

/** The Linux name of a PCI function (`0000:00:01.0`). */
export function pciName(bdf: Bdf): string {
  const h = (n: number) => n.toString(16).padStart(2, '0');
  return `0000:${h(bdf.bus)}:${h(bdf.dev)}.${bdf.fn}`;
}

/** A PCI function on the machine's memory behind `translator` (the IOMMU model). */
export function plugPciDevice(memory: PhysicalMemory, translator: DmaTranslator, bdf: Bdf, capabilities: PciCapabilities): PciDevice {
  return new PciDevice(memory, translator, { bdf, capabilities });
}

/**
 * A preset's function capabilities with the `hardware.devices` option applied: ATS / PRI
 * switched, the PASID width replaced (0 removes the PASID capability).
 */
export function functionCapabilities(preset: PciCapabilities, o: PciFunctionOptions | undefined): PciCapabilities {
  if (o === undefined) return preset;
  const pasidBits = o.pasidBits ?? preset.pasid?.maxPasidLog2 ?? 0;
  return {
    ats: o.ats ?? preset.ats === true,
    pri: o.pri ?? preset.pri === true,
    ...(pasidBits > 0 ? { pasid: { exec: false, priv: false, ...preset.pasid, maxPasidLog2: pasidBits } } : {}),
  };
}

/** The core's `addDevice` description fields that come from a function's PCI capabilities. */
export function coreCapabilities(caps: PciCapabilities): { pasid?: { maxPasidLog2: number; exec?: boolean; priv?: boolean }; pri: boolean; ats: boolean } {
  return { ...(caps.pasid !== undefined ? { pasid: caps.pasid } : {}), pri: caps.pri === true, ats: caps.ats === true };
}

/** A device of a hardware preset: the core's handle plus the PCI function that issues its DMA. */
export interface HardwareDevice {
  readonly handle: CoreDevice;
  readonly pci: PciDevice;
}

/**
 * The {@link Platform} of a hardware preset. `afterDma` runs after each device DMA with the
 * function, the request and the result (the device's reaction to a failed translation, the
 * interrupt handlers of IOMMUs whose models raise wired interrupts without a callback).
 */
export function hardwarePlatform(opts: {
  readonly name: PlatformName;
  readonly core: IommuCore;
  readonly devices: readonly HardwareDevice[];
  readonly setInjector: (i: FaultInjector | undefined) => void;
  readonly afterDma?: (pci: PciDevice, req: DmaRequest, result: DmaResult) => void;
}): Platform {
  const { core } = opts;
  const contexts = new IommufdContexts();
  let injector: FaultInjector | undefined;
  const byHandle = new Map<unknown, PciDevice>(opts.devices.map((d) => [d.handle, d.pci]));
  const devices: PlatformDevice[] = opts.devices.map((d) => ({ name: d.handle.name, handle: d.handle }));
  return {
    name: opts.name,
    devices,
    ...contexts.platformMembers(core, () => injector),
    setFaultInjector(i) {
      injector = i;
      opts.setInjector(i);
    },
    dma(device, req): DmaResult {
      const pci = byHandle.get(device.handle)!;
      // The function bypasses its ATC for this one request (AT = 00b): while it is issued, and
      // while the device reacts to its outcome (no page request follows), ATS counts as off.
      const atsEnabled = pci.atsEnabled;
      if (req.untranslated === true) pci.atsEnabled = false;
      try {
        const r = pci.dma({ iova: req.iova, length: req.length, write: req.write, ...(req.data !== undefined ? { data: req.data } : {}), ...(req.pasid !== undefined ? { pasid: req.pasid } : {}) });
        const result: DmaResult = r.ok ? (r.data !== undefined ? { ok: true, data: r.data } : { ok: true }) : { ok: false, fault: r.fault };
        opts.afterDma?.(pci, req, result);
        return result;
      } finally {
        pci.atsEnabled = atsEnabled;
      }
    },
  };
}
