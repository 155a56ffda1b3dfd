// The README's example, run as written (so the documentation cannot rot).
import { expect, it } from 'vitest';
import { createMachine } from '@iommufd/hw-model';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '@iommufd/driver-api';
import { armSmmuV3Probe } from '../src/index.js';

it('README example', () => {
  const machine = createMachine({
    ramBytes: 0x1000_0000n,
    iommus: [{ kind: 'smmuv3', name: 'smmu0', base: 0x900_0000n }],
    devices: [{ bdf: { bus: 0, dev: 1, fn: 0 }, iommu: 'smmu0', capabilities: { ats: true } }],
  });
  const smmu = armSmmuV3Probe({ memory: machine.memory, base: 0x900_0000n, name: 'smmu0', streams: machine.devices });
  const pci = machine.devices[0]!;
  const dev = { name: pci.name, iommu: smmu, groupId: 1, pasid: undefined, pri: false, ats: true, isVf: false, iommuPriv: undefined as unknown };
  expect(smmu.ops.probeDevice!(dev)).toBe(0);
  const domain = smmu.ops.domainAllocPagingFlags!(dev, 0, undefined);
  if (typeof domain === 'number') throw new Error(`errno ${domain}`);
  expect(domain.ops.attachDev!(domain, dev)).toBe(0);
  const page = machine.memory.allocPages(1)[0]!;
  domain.ops.mapPages!(domain, 0x10_0000n, page, 4096n, 1, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
  expect(pci.dma({ iova: 0x10_0000n, length: 4, write: true, data: new Uint8Array([1, 2, 3, 4]) })).toEqual({ ok: true });
  expect(domain.ops.unmapPages!(domain, 0x10_0000n, 4096n, 1)).toBe(4096n);
  smmu.serviceInterrupts();
  expect([...machine.memory.read(page, 4)]).toEqual([1, 2, 3, 4]);
});
