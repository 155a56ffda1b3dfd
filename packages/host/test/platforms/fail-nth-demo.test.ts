// fail_nth over the demo's VMM run (`iommufd-sim demo`, runDemo) on every preset (issue 9):
// for n = 1, 2, … the n-th allocation point of the core or the driver fails, until a run
// passes them all. Each failed run is a DemoError naming the step and the errno — never
// another exception; the failing system call leaves the uAPI state (objects, fds, mappings,
// pins, domain IDs / ASIDs / VMIDs) as before it; closing every fd and unmapping what the VMM
// mapped leaves no object, pin, ID, STE / context / PASID entry or VCMDQ behind.
import { FailNth } from '@iommufd/core';
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost, DemoError, runDemo, type Host, type HostProcess, type PlatformName } from '../../src/index.js';
import { armSmmuOf } from '../../src/platforms/arm-smmuv3.js';
import { intelVtdUnitOf } from '../../src/platforms/intel-vtd.js';
import { smmuLeftNothing } from './smmu-guest.js';
import { sidOf, vtdLeftNothing } from './vtd-fixture.js';

/** The demo's own device count (`iommufd-sim demo` without `--devices`). */
const DEVICES = 2;

/** What a failed call must leave as it was. */
function uapiState(host: Host): unknown {
  const p = host.process;
  const fds = p.fds();
  const smmu = armSmmuOf(host.memory)?.smmu;
  const vtd = intelVtdUnitOf(host.memory)?.unit;
  return {
    fds,
    mappings: p.mappings(),
    objects: fds.filter((f) => f.kind === '[iommufd]').map((f) => host.objects(f.fd)),
    pins: host.pinnedPages,
    locked: p.lockedPages,
    ids: smmu ? [smmu.asidsInUse, smmu.vmidsInUse] : vtd ? [vtd.allocatedDids] : [],
  };
}

/** The system calls that change uAPI state, checked: a negative result must leave {@link uapiState} as it was. */
const CHECKED_CALLS = new Set(['open', 'close', 'ioctl', 'read', 'write', 'mmap', 'munmap', 'memfdCreate']);

/**
 * `host` with its VMM process wrapped: every checked system call that fails is compared with
 * the state before it. Returns the wrapped host and the failures it saw (call and result).
 */
function checkedHost(host: Host): { host: Host; failures: string[] } {
  const failures: string[] = [];
  const process = new Proxy(host.process, {
    get(target, key) {
      const v: unknown = Reflect.get(target, key, target);
      if (typeof key !== 'string' || !CHECKED_CALLS.has(key) || typeof v !== 'function') return typeof v === 'function' ? v.bind(target) : v;
      return (...args: unknown[]) => {
        const before = uapiState(host);
        const rc = (v as (...a: unknown[]) => number | bigint).apply(target, args);
        if (rc < 0) {
          failures.push(`${key} = ${rc}`);
          expect(uapiState(host), `failed ${key} changed the state`).toEqual(before);
        }
        return rc;
      };
    },
  }) as HostProcess;
  const wrapped = new Proxy(host, { get: (target, key) => (key === 'process' ? process : Reflect.get(target, key, target)) });
  return { host: wrapped, failures };
}

/** Closes every fd and unmaps every mapping of the VMM (what its exit would do), then checks nothing is left. */
function closeEverything(host: Host, platform: PlatformName): void {
  const p = host.process;
  for (const { fd } of p.fds()) expect(p.close(fd)).toBe(0);
  for (const m of p.mappings()) expect(p.munmap(m.start, m.end - m.start)).toBe(0);
  expect(host.contexts().every((c) => c.released && c.objects.length === 0)).toBe(true);
  expect([host.pinnedPages, p.lockedPages]).toEqual([0, 0]);
  const devices = Array.from({ length: DEVICES }, (_, i) => i);
  if (platform === 'intel-vtd') vtdLeftNothing(host, devices);
  else if (platform !== 'mock') smmuLeftNothing(host, devices.map(sidOf));
}

/** The errno of allocation points that do not fail with ENOMEM (as a pattern of the message's end). */
const ERRNO_OF_SITE: Readonly<Record<string, string>> = { 'resv-regions': 'EINVAL \\(-?22\\)', 'mock-map-pages': 'ENOENT \\(-?2\\)' };

const CORE_SITES = ['domain-alloc', 'file-alloc', 'hw-info', 'id-alloc', 'object-alloc', 'pin', 'resv-regions', 'driver-init', 'vevent-alloc'];
/** The allocation points each preset's run reaches (all of them fail in turn). */
const SITES: Record<PlatformName, string[]> = {
  mock: ['domain-alloc', 'driver-init', 'file-alloc', 'id-alloc', 'mock-map-pages', 'object-alloc', 'pin', 'resv-regions', 'vevent-alloc'],
  'arm-smmuv3': CORE_SITES.sort(),
  'tegra241-cmdqv': [...CORE_SITES, 'mmap-alloc'].sort(),
  'intel-vtd': CORE_SITES.sort(),
};

const BOOT_FAILURES = [
  'open(/dev/iommu) failed: ENOMEM (-12)',
  'guest RAM: IOMMU_IOAS_ALLOC failed: ENOMEM (12)',
  'VFIO_DEVICE_BIND_IOMMUFD(/dev/vfio/devices/vfio0) failed: ENOMEM (-12)',
  'VFIO_DEVICE_ATTACH_IOMMUFD_PT(/dev/vfio/devices/vfio0) failed: ENOMEM (-12)',
  'VFIO_DEVICE_ATTACH_IOMMUFD_PT(/dev/vfio/devices/vfio0) failed: EINVAL (-22)',
  'VFIO_DEVICE_BIND_IOMMUFD(/dev/vfio/devices/vfio1) failed: ENOMEM (-12)',
  'IOMMU_GET_HW_INFO: IOMMU_GET_HW_INFO failed: ENOMEM (12)',
  'nest parent: IOMMU_HWPT_ALLOC failed: ENOMEM (12)',
];
const SMMU_FAILURES = [
  'vIOMMU: IOMMU_VIOMMU_ALLOC failed: ENOMEM (12)',
  'vDEVICE: IOMMU_VDEVICE_ALLOC failed: ENOMEM (12)',
  'vEVENTQ: IOMMU_VEVENTQ_ALLOC failed: ENOMEM (12)',
  'nested HWPT: IOMMU_HWPT_ALLOC failed: ENOMEM (12)',
];
/** The DemoErrors of each preset's sweep, distinct, in the order the run meets them. */
const FAILURES: Record<PlatformName, string[]> = {
  mock: [
    'open(/dev/iommu) failed: ENOMEM (-12)',
    'IOMMU_IOAS_ALLOC failed: ENOMEM (-12)',
    'VFIO_DEVICE_BIND_IOMMUFD(/dev/vfio/devices/vfio0) failed: ENOMEM (-12)',
    'VFIO_DEVICE_ATTACH_IOMMUFD_PT(/dev/vfio/devices/vfio0) failed: ENOMEM (-12)',
    'VFIO_DEVICE_ATTACH_IOMMUFD_PT(/dev/vfio/devices/vfio0) failed: EINVAL (-22)',
    'VFIO_DEVICE_ATTACH_IOMMUFD_PT(/dev/vfio/devices/vfio0) failed: ENOENT (-2)',
    'VFIO_DEVICE_BIND_IOMMUFD(/dev/vfio/devices/vfio1) failed: ENOMEM (-12)',
    'IOMMU_HWPT_ALLOC(NEST_PARENT) failed: ENOMEM (-12)',
    'IOMMU_HWPT_ALLOC(NEST_PARENT) failed: ENOENT (-2)',
    'IOMMU_VIOMMU_ALLOC failed: ENOMEM (-12)',
    'IOMMU_VDEVICE_ALLOC failed: ENOMEM (-12)',
    'IOMMU_HWPT_ALLOC(nested) failed: ENOMEM (-12)',
    'IOMMU_VEVENTQ_ALLOC failed: ENOMEM (-12)',
    'IOMMU_TEST_CMD(TRIGGER_VEVENT) failed: ENOMEM (-12)',
  ],
  'arm-smmuv3': [...BOOT_FAILURES, ...SMMU_FAILURES, 'vEVENT: read(vEVENTQ fd 7) returned a LOST_EVENTS header and no record: the host could not queue the event'],
  'tegra241-cmdqv': [
    ...BOOT_FAILURES,
    ...SMMU_FAILURES,
    'guest VCMDQ: IOMMU_HW_QUEUE_ALLOC failed: ENOMEM (12)',
    'vEVENT: read(vEVENTQ fd 7) returned a LOST_EVENTS header and no record: the host could not queue the event',
  ],
  'intel-vtd': [
    ...BOOT_FAILURES,
    'FAULT queue: IOMMU_FAULT_QUEUE_ALLOC failed: ENOMEM (12)',
    'nested HWPT: IOMMU_HWPT_ALLOC failed: ENOMEM (12)',
    'vIOMMU (experimental): IOMMU_VIOMMU_ALLOC failed: ENOMEM (12)',
    'vDEVICE (experimental): IOMMU_VDEVICE_ALLOC failed: ENOMEM (12)',
    'vEVENTQ (experimental): IOMMU_VEVENTQ_ALLOC failed: ENOMEM (12)',
    'nested HWPT (vIOMMU): IOMMU_HWPT_ALLOC failed: ENOMEM (12)',
    'vEVENT: read(vEVENTQ fd 8) returned a LOST_EVENTS header and no record: the host could not queue the event',
  ],
};

describe.each(['mock', 'arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd'] as const)("fail_nth over the demo's VMM run on '%s'", (platform) => {
  it('each allocation point fails in turn: a DemoError naming the step, the failed call changed nothing, closing everything leaves nothing', async () => {
    const failedSites = new Set<string>();
    const messages = new Set<string>();
    const absorbed: string[] = [];
    let n = 1;
    for (; n < 200; n++) {
      const host = await createHost({ platform, devices: DEVICES });
      const injector = new FailNth(n);
      host.setFaultInjector(injector);
      const checked = checkedHost(host);
      const log: string[] = [];
      let error: unknown;
      try {
        runDemo(checked.host, (line) => log.push(line));
      } catch (e) {
        error = e;
      }
      host.setFaultInjector(undefined);
      if (!injector.injected) {
        // Past the last allocation point: the whole run, nothing failed.
        expect(error).toBeUndefined();
        expect(checked.failures).toEqual([]);
        closeEverything(host, platform);
        break;
      }
      const site = injector.failedSite!;
      failedSites.add(site);
      if (error === undefined) {
        // The kernel absorbed the failure: attaching the second device to the first one's
        // auto domain hit the reserved-region failure (EINVAL, "incompatible"), and
        // iommufd_device_auto_get_domain went on to allocate a domain of its own.
        absorbed.push(`${site}: ${checked.failures.join(', ')}`);
      } else {
        expect(error, `n = ${n} (${site}): ${String(error)}`).toBeInstanceOf(DemoError);
        const message = (error as DemoError).message;
        messages.add(message);
        // "<step>: <call> failed: ENOMEM (-12)" (hardware presets) or "<call> failed: ENOMEM (-12)"
        // (mock), with the kernel's errno of that allocation point: EINVAL for the reserved
        // regions, ENOENT for the mock domain's map_pages. A vEVENT the host could not
        // allocate on a hardware preset is not a failed call: the reader gets a LOST_EVENTS
        // header instead (the mock's TRIGGER_VEVENT test command returns the -ENOMEM).
        if (site === 'vevent-alloc' && platform !== 'mock') {
          expect(message).toMatch(/^vEVENT: read\(vEVENTQ fd \d+\) returned a LOST_EVENTS header and no record: the host could not queue the event$/);
          expect(checked.failures).toEqual([]);
        } else {
          expect(message, `n = ${n} (${site})`).toMatch(new RegExp(`^[^:]+(: .+)? failed: ${ERRNO_OF_SITE[site] ?? 'ENOMEM \\(-?12\\)'}$`));
          // The system call that failed was seen (and its state checked) by the wrapped process.
          expect(checked.failures, message).toHaveLength(1);
        }
      }
      closeEverything(host, platform);
    }
    expect(n).toBeGreaterThan(25);
    expect(n).toBeLessThan(200);
    expect([...failedSites].sort()).toEqual(SITES[platform]);
    expect([...messages]).toEqual(FAILURES[platform]);
    // One failure the kernel absorbs: the second device's attach to the first one's auto
    // domain fails its reserved regions (EINVAL = incompatible), and it gets a domain of its own.
    expect(absorbed).toEqual(['resv-regions: ']);
  });
});
