// The trace of known scenarios on every preset: the driver ops the core called (nested in
// their ioctl), the commands the IOMMU consumed (nested in the driver op that queued them, or
// on the IOMMU track for a guest-owned queue), the walks of each DMA and its faults, with
// exact arguments, in order; and every trace replays.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as U from '@iommufd/uapi';
import { createHost, Tracer, traceHost, type TraceEvent, type TraceFile } from '../src/index.js';
import { cli, examplesDir, tmp } from './cli-helpers.js';
import { bindVmm } from './platforms/vmm.js';

async function traceOf(example: string): Promise<TraceEvent[]> {
  const f = join(tmp(), 't.json');
  expect((await cli('trace', join(examplesDir, example), '--out', f)).code).toBe(0);
  expect((await cli('trace', '--replay', f)).code).toBe(0);
  return (JSON.parse(readFileSync(f, 'utf8')) as TraceFile).traceEvents.filter((e) => e.ph !== 'M');
}

/** The events drawn inside complete event `parent` (same track, within its span), outermost first. */
const inside = (events: readonly TraceEvent[], parent: TraceEvent): TraceEvent[] =>
  events.filter((e) => e.tid === parent.tid && e.ts > parent.ts && e.ts < parent.ts + parent.dur!);

const brief = (e: TraceEvent): [string, string, Readonly<Record<string, string | number | boolean>> | undefined] => [e.cat, e.name, e.args];

/** Complete events on one track either nest or are disjoint (what Perfetto needs to draw slices). */
function expectWellNested(events: readonly TraceEvent[]): void {
  const open: TraceEvent[] = [];
  for (const e of events.filter((x) => x.ph === 'X')) {
    while (open.length && open.at(-1)!.ts + open.at(-1)!.dur! <= e.ts) open.pop();
    const top = open.at(-1);
    if (top && top.tid === e.tid) expect(e.ts + e.dur!).toBeLessThanOrEqual(top.ts + top.dur!);
    open.push(e);
  }
}

describe('trace events of driver ops, commands, walks and faults', () => {
  it('arm-smmuv3: an attach holds attachDev, which holds the CMDQ commands; a DMA holds its walk and fault', async () => {
    const events = await traceOf('arm-smmuv3-basic.yaml');
    expectWellNested(events);
    const attaches = events.filter((e) => e.name === 'VFIO_DEVICE_ATTACH_IOMMUFD_PT');
    const second = inside(events, attaches[1]!);
    expect(second.map(brief)).toEqual([
      ['driver', 'attachDev', { domain: 4, device: '0000:00:02.0', result: 0 }],
      ['command', 'CFGI_CD', { queue: 'cmdq', SID: '0x10' }],
      ['command', 'CMD_SYNC', { queue: 'cmdq', CS: '0x1', MSH: '0x3', MSIATTR: '0xf', MSIADDR: '0x20000048' }],
      ['command', 'CFGI_CD', { queue: 'cmdq', SID: '0x10', LEAF: '0x1' }],
      ['command', 'CMD_SYNC', { queue: 'cmdq', CS: '0x1', MSH: '0x3', MSIATTR: '0xf', MSIADDR: '0x20000050' }],
      ['command', 'CFGI_CD', { queue: 'cmdq', SID: '0x10', LEAF: '0x1' }],
      ['command', 'CMD_SYNC', { queue: 'cmdq', CS: '0x1', MSH: '0x3', MSIATTR: '0xf', MSIADDR: '0x20000058' }],
      ['command', 'CFGI_STE', { queue: 'cmdq', SID: '0x10', LEAF: '0x1' }],
      ['command', 'CMD_SYNC', { queue: 'cmdq', CS: '0x1', MSH: '0x3', MSIATTR: '0xf', MSIADDR: '0x20000060' }],
      ['command', 'CFGI_STE', { queue: 'cmdq', SID: '0x10', LEAF: '0x1' }],
      ['command', 'CMD_SYNC', { queue: 'cmdq', CS: '0x1', MSH: '0x3', MSIATTR: '0xf', MSIADDR: '0x20000068' }],
      ['command', 'PREFETCH_CONFIG', { queue: 'cmdq', SID: '0x10' }],
      ['command', 'ATC_INV', { queue: 'cmdq', SID: '0x10', SIZE: '0x34' }],
      ['command', 'CMD_SYNC', { queue: 'cmdq', CS: '0x1', MSH: '0x3', MSIATTR: '0xf', MSIADDR: '0x20000074' }],
    ]);
    // Every command of the attach is nested in attachDev too.
    expect(inside(events, second[0]!)).toEqual(second.slice(1));
    const dmas = events.filter((e) => e.cat === 'dma');
    expect(inside(events, dmas[0]!).map(brief)).toEqual([
      ['walk', 'walk s1', { sid: '0x8', iova: '0x1000', stage: 's1', levels: 4, result: '0x80c05000', size: '0x1000' }],
    ]);
    expect(inside(events, dmas[2]!).map(brief)).toEqual([
      ['walk', 'walk s1', { sid: '0x8', iova: '0x200000', stage: 's1', result: 'F_TRANSLATION' }],
      ['fault', 'F_TRANSLATION', { sid: '0x8', iova: '0x200000', write: false, recorded: false, stall: false }],
      // The driver's PRI handler answers the page request the fault caused.
      ['command', 'PRI_RESP', { queue: 'cmdq', SID: '0x8' }],
      ['command', 'CMD_SYNC', { queue: 'cmdq', CS: '0x1', MSH: '0x3', MSIATTR: '0xf', MSIADDR: '0x2000007c' }],
    ]);
    const detach = events.find((e) => e.name === 'VFIO_DEVICE_DETACH_IOMMUFD_PT')!;
    expect(inside(events, detach).filter((e) => e.cat === 'driver').map(brief)).toEqual([
      ['driver', 'attachDev', { domain: 'blocked', device: '0000:00:02.0', result: 0 }],
      ['driver', 'unmapPages', { domain: 4, iova: '0x0', pgsize: '0x1000', pgcount: 512, result: 2097152 }],
      ['driver', 'free', { domain: 4, result: 0 }],
    ]);
  });

  it('intel-vtd: invalidation descriptors inside attachDev; first- and second-stage walks; a page-request fault before its response', async () => {
    const events = await traceOf('intel-vtd-basic.yaml');
    expectWellNested(events);
    const attach = events.filter((e) => e.name === 'VFIO_DEVICE_ATTACH_IOMMUFD_PT')[2]!;
    expect(inside(events, attach).map(brief)).toEqual([
      ['driver', 'attachDev', { domain: 5, device: '0000:00:01.0', result: 0 }],
      ['command', 'pc_inv_dsc', { queue: 'iq', G: '0x1', DID: '0x2' }],
      ['command', 'inv_wait_dsc', { queue: 'iq', SW: '0x1', SDATA: '0x2', SADDR: '0x20000809' }],
      ['command', 'p_iotlb_inv_dsc', { queue: 'iq', G: '0x2', DID: '0x2' }],
      ['command', 'inv_wait_dsc', { queue: 'iq', SW: '0x1', SDATA: '0x2', SADDR: '0x2000080b' }],
      ['command', 'dev_tlb_inv_dsc', { queue: 'iq', SID: '0x8', S: '0x1', ADDR: '0x7ffffffffffff' }],
      ['command', 'inv_wait_dsc', { queue: 'iq', SW: '0x1', SDATA: '0x2', SADDR: '0x2000080d' }],
    ]);
    expect(events.filter((e) => e.cat === 'walk').map((e) => e.args)).toEqual([
      { sid: '0x8', pasid: 0, iova: '0x1000', stage: 'first-stage', levels: 4, result: '0x80055000', size: '0x1000' },
      { sid: '0x10', pasid: 0, iova: '0x2000', stage: 'first-stage', levels: 4, result: '0x80058000', size: '0x1000' },
      { sid: '0x8', pasid: 0, iova: '0x200000', stage: 'first-stage', result: 'SM_FS_NOT_PRESENT' },
      { sid: '0x8', pasid: 0, iova: '0x1000', stage: 'second-stage', levels: 4, result: '0x80055000', size: '0x1000' },
    ]);
    const faulting = events.filter((e) => e.cat === 'dma')[2]!;
    expect(inside(events, faulting).map((e) => [e.cat, e.name])).toEqual([
      ['walk', 'walk first-stage'],
      ['fault', 'SM_FS_NOT_PRESENT'],
      ['command', 'page_grp_resp_dsc'],
      ['command', 'inv_wait_dsc'],
    ]);
    expect(events.filter((e) => e.cat === 'fault').map((e) => [e.name, e.args])).toEqual([
      ['SM_FS_NOT_PRESENT', { sid: '0x8', iova: '0x200000', write: false, recorded: false, stall: true }],
      ['SM_PASID_NOT_PRESENT', { sid: '0x10', iova: '0x1000', write: false, recorded: true, stall: false }],
    ]);
  });

  it('tegra241-cmdqv: getHwQueueSize then hwQueueInitPhys in IOMMU_HW_QUEUE_ALLOC; the guest VCMDQ commands on the IOMMU track, the illegal one with CERROR_ILL', async () => {
    const events = await traceOf('tegra241-cmdqv-vcmdq.yaml');
    expectWellNested(events);
    const alloc = events.find((e) => e.name === 'IOMMU_HW_QUEUE_ALLOC')!;
    expect(inside(events, alloc).map(brief)).toEqual([
      // The seed contract: the driver's size first (the core allocates that much), then init.
      ['driver', 'getHwQueueSize', { viommu: 4, type: 1, result: 80 }],
      ['driver', 'hwQueueInitPhys', { hwQueue: 5, viommu: 4, type: 1, index: 0, basePa: '0x80c16000', length: '0x1000', result: 0 }],
    ]);
    expect(events.filter((e) => e.tid === 4).map(brief)).toEqual([
      ['command', 'CMD_SYNC', { queue: 'vcmdq4' }],
      ['command', 'CFGI_STE', { queue: 'vcmdq4', LEAF: '0x1', error: 'CERROR_ILL' }],
    ]);
  });

  it('mock: driver ops of nested translation (getViommuSize, viommuInit, vdeviceInit, allocDomainNested, cacheInvalidate)', async () => {
    const events = await traceOf('mock-nested.yaml');
    expectWellNested(events);
    expect(events.filter((e) => e.cat === 'driver' && !['mapPages', 'attachDev'].includes(e.name)).map((e) => [e.name, e.args])).toEqual([
      ['domainAllocPagingFlags', { device: '0000:00:01.0', hwpt: 4, flags: 0, userDataLen: 0, result: 0 }],
      ['domainAllocPagingFlags', { device: '0000:00:01.0', hwpt: 5, flags: 1, userDataLen: 0, result: 0 }],
      ['getViommuSize', { device: '0000:00:01.0', type: 0xdeadbeef, result: 104 }],
      ['viommuInit', { viommu: 6, device: '0000:00:01.0', parent: 5, type: 0xdeadbeef, dataLen: 0, result: 0 }],
      ['vdeviceInit', { vdevice: 7, viommu: 6, device: '0000:00:01.0', virtId: '0x10', result: 0 }],
      ['allocDomainNested', { viommu: 6, hwpt: 8, flags: 0, userDataType: 0xdead, result: 0 }],
      ['cacheInvalidate', { viommu: 6, type: 0xdeadbeef, entries: 1, result: 0 }],
      ['free', { domain: 8, result: 0 }],
    ]);
    expect(events.some((e) => e.cat === 'command' || e.cat === 'walk')).toBe(false);
  });

  it('a DMA slice names an untranslated request (AT = 00b), and only then', async () => {
    const tracer = new Tracer();
    const host = traceHost(await createHost({ platform: 'intel-vtd', devices: 1 }), tracer);
    host.dma(host.vfioDevices[0]!, { iova: 0x1000n, length: 4, write: false });
    host.dma(host.vfioDevices[0]!, { iova: 0x1000n, length: 4, write: false, untranslated: true });
    expect(tracer.events.filter((e) => e.cat === 'dma').map((e) => e.args)).toEqual([
      { device: '/dev/vfio/devices/vfio0', iova: '0x1000', length: 4, result: 'fault', fault: 'SM_PASID_DIR_NOT_PRESENT' },
      { device: '/dev/vfio/devices/vfio0', iova: '0x1000', length: 4, untranslated: true, result: 'fault', fault: 'SM_PASID_DIR_NOT_PRESENT' },
    ]);
  });

  it('a failing driver op ends with its errno name, inside the ioctl that failed', async () => {
    const host = await createHost({ platform: 'intel-vtd', devices: 1 });
    const tracer = new Tracer();
    const { p, fd, devIds } = bindVmm(traceHost(host, tracer));
    const ioas = U.ioasAlloc(p, fd);
    // The core's 'domain-alloc' check passes, the driver's (the second) fails.
    let calls = 0;
    host.setFaultInjector({ shouldFail: (site) => site === 'domain-alloc' && ++calls === 2 });
    expect(() => U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: ioas })).toThrow(U.IommufdError);
    const events = tracer.events.filter((e) => e.ph !== 'M');
    const alloc = events.findLast((e) => e.name === 'IOMMU_HWPT_ALLOC')!;
    expect(alloc.args?.result).toBe('ENOMEM');
    expect(inside(events, alloc).map(brief)).toEqual([
      ['driver', 'domainAllocPagingFlags', { device: '0000:00:01.0', hwpt: 3, flags: 0, userDataLen: 0, result: 'ENOMEM' }],
    ]);
  });

  it('--replay compares driver ops, commands and walks (a changed result fails) and still replays a trace recorded without them', async () => {
    const f = join(tmp(), 'r.json');
    expect((await cli('trace', join(examplesDir, 'arm-smmuv3-basic.yaml'), '--out', f)).code).toBe(0);
    const t = JSON.parse(readFileSync(f, 'utf8')) as TraceFile;
    const i = t.traceEvents.findIndex((e) => e.cat === 'walk');
    const tampered = t.traceEvents.map((e, k) => (k === i ? { ...e, args: { ...e.args, result: '0x0' } } : e));
    writeFileSync(f, JSON.stringify({ ...t, traceEvents: tampered }));
    const r = await cli('trace', '--replay', f);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/recorded \["walk","walk s1",\{.*"result":"0x0".*\}\]\n {2}replayed \["walk","walk s1",\{.*"result":"0x80c05000"/);
    // As an older version wrote it: no driver ops, commands, walks or faults.
    const older = t.traceEvents.filter((e) => !['driver', 'command', 'walk', 'fault'].includes(e.cat));
    writeFileSync(f, JSON.stringify({ ...t, traceEvents: older }));
    expect(await cli('trace', '--replay', f)).toMatchObject({ code: 0, out: `${f}: replay matches (${older.filter((e) => e.ph !== 'M').length} events)\n` });
  });

  it('the demo on every preset traces driver ops, and on the hardware presets commands and walks', async () => {
    for (const platform of ['mock', 'arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd']) {
      const f = join(tmp(), 'd.json');
      expect((await cli('demo', '--platform', platform, '--quiet', '--trace', f)).code).toBe(0);
      const cats = new Set((JSON.parse(readFileSync(f, 'utf8')) as TraceFile).traceEvents.map((e) => e.cat));
      expect(cats.has('driver')).toBe(true);
      expect([cats.has('command'), cats.has('walk')]).toEqual(platform === 'mock' ? [false, false] : [true, true]);
      expect((await cli('trace', '--replay', f)).code).toBe(0);
    }
  });
});
