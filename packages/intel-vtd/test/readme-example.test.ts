// Keeps the README's opening example compiling and running.
import { expect, it } from 'vitest';
import { createMachine } from '@iommufd/hw-model';
import { IommuCore } from '@iommufd/core';
import { probeIntelIommu } from '../src/index.js';

it('the README example runs', () => {
  let unit: ReturnType<typeof probeIntelIommu> | undefined;
  const machine = createMachine({
    ramBytes: 0x1000_0000n,
    iommus: [{ kind: 'vtd', name: 'dmar0', base: 0xfed9_0000n,
               options: { onInterrupt: (irq: { data: number }) => unit?.handleInterrupt(irq) } }],
    devices: [{ bdf: { bus: 0, dev: 3, fn: 0 }, iommu: 'dmar0', capabilities: { ats: true } }],
  });
  unit = probeIntelIommu({ memory: machine.memory, base: 0xfed9_0000n });   // bring-up
  const core = new IommuCore();
  core.registerIommu(unit);
  const pci = machine.devices[0]!;
  unit.addPciDevice('0000:00:03.0', pci);                                   // DMAR device scope
  const dev = core.addDevice({ name: '0000:00:03.0', iommu: unit, group: 1, ats: true }); // probe_device
  expect(dev.name).toBe('0000:00:03.0');
  expect(unit.devices.get(0x18)?.atsEnabled).toBe(true);
});
