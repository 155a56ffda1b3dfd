/**
 * The `mock` platform: the selftest kernel's machine — the mock IOMMU driver
 * (`@iommufd/mock-iommu`) with one instance, N mock PCI devices behind it (PASID capable,
 * each in its own iommu_group), RAM from the machine's physical memory, `IOMMU_TEST_CMD`,
 * and DMA translated through whatever mock domain a device is attached to.
 */
import { deviceAttachedDomain, IommuCore, type CoreDevice } from '@iommufd/core';
import { IOMMU_READ, IOMMU_WRITE, type FaultInjector, type IommuDomain } from '@iommufd/driver-api';
import { MachineMemory } from '../physical.js';
import { mockDomainLookup, MockIommu, MOCK_IO_PAGE_SIZE, type MockNestedDomain, type MockPhysicalMemory } from '@iommufd/mock-iommu';
import type { DmaFault, DmaRequest, DmaResult, Platform, PlatformContext, PlatformDevice } from '../platform.js';
import { IommufdContexts } from './contexts.js';
import { SelftestCommands } from './selftest-cmd.js';
import { registerObservationPoints } from './observation.js';

const PAGE = 4096n;

/** RAM pages for the mock vIOMMU's mmap-able region, from the machine's allocator. */
function mockMemory(memory: MachineMemory): MockPhysicalMemory {
  return {
    allocPages: (npages) => memory.machine.allocPages(npages, { contiguous: true })[0],
    freePages: (pa, npages) => memory.machine.freePages(Array.from({ length: npages }, (_, i) => pa + BigInt(i) * PAGE)),
    write: (pa, bytes) => memory.write(pa, bytes),
  };
}

/** Builds the mock platform. */
export async function createMockPlatform(ctx: PlatformContext): Promise<Platform> {
  if (!(ctx.memory instanceof MachineMemory)) throw new Error('the mock platform needs the machine memory');
  const memory = ctx.memory;
  const mock = new MockIommu({ memory: mockMemory(memory) });
  let injector: FaultInjector | undefined;
  let selftest: SelftestCommands | undefined;
  const core = new IommuCore({
    faultInjection: { shouldFail: (site) => injector?.shouldFail(site) ?? false },
    testCommand: (c, arg, size) => selftest!.dispatch(c, arg, size),
    directMap: memory,
  });
  core.registerIommu(mock.instance);
  selftest = new SelftestCommands(core, mock, ctx, () => injector);

  const devices: PlatformDevice[] = [];
  for (let i = 0; i < ctx.devices; i++) {
    // Real PCI functions, one per group, PASID capable (20 bits) with PRI, as a VMM would pass through.
    const handle = core.addDevice({ name: `0000:00:${(i + 1).toString(16).padStart(2, '0')}.0`, iommu: mock.instance, group: i + 1, pasid: { maxPasidLog2: 20 }, pri: true });
    devices.push({ name: handle.name, handle });
  }

  registerObservationPoints(ctx.memory, { core, iommus: [], devices: devices.map((d) => d.handle as CoreDevice) });
  const contexts = new IommufdContexts();

  return {
    name: 'mock',
    devices,
    ...contexts.platformMembers(core, () => injector),
    setFaultInjector(i) {
      injector = i;
    },
    dma: (device, req) => mockDma(memory, device.handle as CoreDevice, req),
  };
}

/** The stage-2 (paging) domain that translates for `domain`: itself, or a nested domain's parent. */
function pagingOf(domain: IommuDomain): IommuDomain | undefined {
  if (domain.type === 'paging') return domain;
  if (domain.type === 'nested') return (domain as MockNestedDomain).parent;
  return undefined;
}

/**
 * A DMA through the mock: each MOCK_IO_PAGE_SIZE piece is looked up in the attached domain's
 * page table (a mock nested domain has no stage-1 tables of its own, so its parent's map
 * applies); a miss or a permission failure aborts the transfer at that address.
 */
function mockDma(memory: MachineMemory, dev: CoreDevice, req: DmaRequest): DmaResult {
  const fault = (kind: string, code: number, iova: bigint): DmaResult => ({
    ok: false,
    fault: { kind, code, iova, write: req.write, recorded: false } satisfies DmaFault,
  });
  const domain = deviceAttachedDomain(dev, req.pasid);
  const paging = domain ? pagingOf(domain) : undefined;
  if (!domain || !paging) return fault('BLOCKED', 0, req.iova);
  const out = new Uint8Array(req.length);
  const data = req.data ?? new Uint8Array(req.length);
  let done = 0;
  while (done < req.length) {
    const iova = req.iova + BigInt(done);
    const pte = mockDomainLookup(paging, iova);
    if (!pte) return fault('F_TRANSLATION', 0x10, iova);
    if (!(pte.prot & (req.write ? IOMMU_WRITE : IOMMU_READ))) return fault('F_PERMISSION', 0x13, iova);
    const within = iova % MOCK_IO_PAGE_SIZE;
    const chunk = Math.min(req.length - done, Number(MOCK_IO_PAGE_SIZE - within));
    const pa = pte.pa + within;
    if (req.write) memory.write(pa, data.subarray(done, done + chunk));
    else out.set(memory.read(pa, chunk), done);
    done += chunk;
  }
  return req.write ? { ok: true } : { ok: true, data: out };
}
