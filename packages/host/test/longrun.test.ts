import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost, runLongRun, type Host, type LongRunSample } from '../src/index.js';
import { cli } from './cli-helpers.js';

/** The figures that must come back exactly, without the heap. */
const counts = ({ heapUsedBytes: _h, cycle: _c, ...rest }: LongRunSample) => rest;

describe('long runs: whole VMs created and destroyed on one machine', () => {
  for (const platform of ['mock', 'arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd'] as const) {
    it(`${platform}: after 25 VM cycles frames, pins, contexts and objects are exactly at the baseline`, async () => {
      const r = await runLongRun({ platform, cycles: 25 });
      expect(r.leaks).toEqual([]);
      expect(r.cycles).toBe(25);
      expect(counts(r.final)).toEqual(counts(r.baseline));
      expect(r.final).toMatchObject({ cycle: 25, pinnedPages: 0, lockedPages: 0, openContexts: 0, objects: 0, fds: 0 });
      // The machine still holds the IOMMU's own tables and queues: the VMs are what went away.
      expect(r.final.machinePages).toBeGreaterThan(0);
      expect(r.final.storeFrames).toBeLessThanOrEqual(r.final.machinePages);
    });
  }

  it('a VM that leaves its iommufd, device and pinned mapping behind is reported, figure by figure', async () => {
    let n = 0;
    const leakyVm = (host: Host) => {
      const p = host.process;
      const fd = p.open('/dev/iommu');
      const dev = p.open(host.vfioDevices[n++]!);
      U.vfioDeviceBindIommufd(p, dev, { iommufd: fd });
      const ioas = U.ioasAlloc(p, fd);
      U.vfioDeviceAttachIommufdPt(p, dev, { ptId: ioas });
      const va = p.mmap(0x1000n, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
      U.ioasMap(p, fd, { ioasId: ioas, userVa: va, length: 0x1000n, iova: 0n });
    };
    const r = await runLongRun({ platform: 'intel-vtd', devices: 3, cycles: 3, cycle: leakyVm });
    // IOAS, DEVICE and the auto-domain HWPT per VM; one pinned page each (the VMM runs privileged: nothing charged to RLIMIT_MEMLOCK).
    expect(r.final).toMatchObject({ openContexts: 3, objects: 9, pinnedPages: 3, lockedPages: 0, fds: 6, mappings: 3 });
    expect(r.leaks).toEqual([
      'machinePages 634 → 639 after cycle 2',
      'processPages 1 → 2 after cycle 2',
      'pinnedPages 1 → 2 after cycle 2',
      'openContexts 1 → 2 after cycle 2',
      'objects 3 → 6 after cycle 2',
      'fds 2 → 4 after cycle 2',
      'mappings 1 → 2 after cycle 2',
    ]);
  });

  it('a time budget that ends the run before the warm-up compares the heap with cycle 1', async () => {
    const slowVm = () => {
      const until = performance.now() + 30;
      while (performance.now() < until);
    };
    const r = await runLongRun({ platform: 'mock', budgetMs: 70, warmupCycles: 5, cycle: slowVm });
    expect(r.cycles).toBeGreaterThanOrEqual(1);
    expect(r.cycles).toBeLessThan(5);
    expect(r.warmupCycles).toBe(1);
    expect(r.warmupHeapUsedBytes).toBe(r.baseline.heapUsedBytes);
    expect(r.leaks).toEqual([]);
  });

  it('iommufd-sim longrun prints the figures and exits 0; bad options exit 2', async () => {
    const r = await cli('longrun', '--platform', 'tegra241-cmdqv', '--cycles', '4', '--warmup', '2', '--quiet');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/^longrun tegra241-cmdqv: 4 VM cycle\(s\) in \d+\.\d s/);
    expect(r.out).toMatch(/\n {2}pinned pages +0 +0 +0\n/);
    expect(r.out).toMatch(/\n {2}objects +0 +0 +0\n/);
    expect(r.out).toMatch(/\+?-?\d+\.\d\d MiB since cycle 2 \(/);
    expect(r.out).toMatch(/longrun tegra241-cmdqv: OK, everything back at the baseline\n$/);
    expect(await cli('longrun', '--platform', 'vax')).toMatchObject({ code: 2, err: expect.stringMatching(/unknown platform 'vax'/) });
    expect(await cli('longrun', '--cycles', '0')).toMatchObject({ code: 2, err: expect.stringMatching(/--cycles must be a positive integer, got '0'/) });
    expect(await cli('longrun', '--minutes', 'soon')).toMatchObject({ code: 2, err: expect.stringMatching(/--minutes must be a positive number/) });
    expect((await cli('longrun', '--help')).out).toMatch(/Usage: iommufd-sim longrun/);
  });
});

describe('host.contexts() over many VMs', () => {
  it('keeps the open order and every context, released or not, while forgetting the dead ones it only counts', async () => {
    const host = await createHost({ platform: 'mock', devices: 1 });
    const p = host.process;
    const first = p.open('/dev/iommu');
    U.ioasAlloc(p, first);
    for (let i = 0; i < 200; i++) expect(p.close(p.open('/dev/iommu'))).toBe(0);
    const list = host.contexts();
    expect(list).toHaveLength(201);
    expect(list[0]).toMatchObject({ released: false, objects: [{ id: 1, type: 'IOAS' }] });
    expect(list.slice(1).every((c) => c.released && c.objects.length === 0)).toBe(true);
    expect(p.close(first)).toBe(0);
    expect(host.contexts()).toEqual(Array.from({ length: 201 }, () => ({ released: true, objects: [] })));
    // A device binds to a context opened after hundreds of dead ones.
    const fd = p.open('/dev/iommu');
    const dev = p.open(host.vfioDevices[0]!);
    expect(U.vfioDeviceBindIommufd(p, dev, { iommufd: fd })).toBe(1);
    expect(host.contexts().at(-1)).toMatchObject({ released: false, objects: [{ id: 1, type: 'DEVICE' }] });
  });
});
