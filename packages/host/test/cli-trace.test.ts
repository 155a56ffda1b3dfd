import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareTraces, type TraceEvent, type TraceFile } from '../src/index.js';
import { cli, examplesDir, tmp } from './cli-helpers.js';

const load = (f: string): TraceFile => JSON.parse(readFileSync(f, 'utf8')) as TraceFile;

describe('iommufd-sim trace', () => {
  it('run --trace writes trace-event JSON with a deterministic clock: ioctls with errno, DMA with faults, object creation', async () => {
    const dir = tmp();
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    expect((await cli('run', join(examplesDir, 'mock-nested.yaml'), '--quiet', '--trace', a)).code).toBe(0);
    expect((await cli('trace', join(examplesDir, 'mock-nested.yaml'), '--out', b)).code).toBe(0);
    expect(readFileSync(a, 'utf8')).toBe(readFileSync(b, 'utf8'));
    const t = load(a);
    expect(t.otherData).toMatchObject({ generator: 'iommufd-sim', clock: 'deterministic', source: { kind: 'scenario' } });
    const events = t.traceEvents.filter((e) => e.ph !== 'M');
    // One clock tick per event: timestamps are 0, 1, 2, … in order; a complete event spans
    // the events nested in it (an ioctl its driver ops), so its end is never before theirs.
    expect(events.map((e) => e.ts)).toEqual(events.map((_, i) => i));
    expect(events.every((e) => (e.ph === 'X' ? e.dur! >= 1 : e.ph === 'i'))).toBe(true);
    const attach = events.find((e) => e.name === 'VFIO_DEVICE_ATTACH_IOMMUFD_PT')!;
    expect(attach.dur).toBe(6);
    expect(events.filter((e) => e.ts > attach.ts && e.ts < attach.ts + attach.dur!).map((e) => [e.cat, e.name])).toEqual([
      ['driver', 'domainAllocPagingFlags'],
      ['driver', 'attachDev'],
      ['driver', 'mapPages'],
      ['driver', 'mapPages'],
      ['driver', 'mapPages'],
    ]);
    const destroy = events.find((e) => e.name === 'IOMMU_DESTROY');
    expect(destroy?.args).toEqual({ fd: 4, 'in.size': '0x8', 'in.id': '0x1', result: 'EBUSY' });
    expect(events.find((e) => e.name === 'IOMMU_IOAS_ALLOC')?.args).toEqual({ fd: 4, 'in.size': '0xc', result: 0, 'out.out_ioas_id': '0x1' });
    expect(events.filter((e) => e.cat === 'dma').map((e) => [e.name, e.args?.iova, e.args?.result, e.args?.fault])).toEqual([
      ['DMA read', '0x1001000', 'ok', undefined],
      ['DMA write', '0x1002000', 'ok', undefined],
      ['DMA read', '0x1200000', 'fault', 'F_TRANSLATION'],
    ]);
    expect(events.filter((e) => e.cat === 'object').map((e) => e.name)).toEqual([
      '+IOAS 1',
      '+DEVICE 2',
      '+DEVICE 3',
      '+HWPT_PAGING 4',
      '+HWPT_PAGING 5',
      '+VIOMMU 6',
      '+VDEVICE 7',
      '+HWPT_NESTED 8',
      '+VEVENTQ 9',
      '-HWPT_NESTED 8',
      '-VDEVICE 7',
    ]);
    expect(events.find((e) => e.name === '+VIOMMU 6')?.args).toEqual({ id: 6, type: 'VIOMMU', refs: '5' });
  });

  it('on a hardware preset the trace counts the commands the IOMMU consumed (a counter track), and replays', async () => {
    for (const [file, queue] of [['arm-smmuv3-basic.yaml', 'CMDQ'], ['intel-vtd-basic.yaml', 'IQ']] as const) {
      const f = join(tmp(), 'hw.json');
      expect((await cli('run', join(examplesDir, file), '--quiet', '--trace', f)).code).toBe(0);
      const counters = load(f).traceEvents.filter((e) => e.ph === 'C');
      expect(counters.length).toBeGreaterThan(0);
      expect(new Set(counters.map((e) => e.name))).toEqual(new Set([`${queue} commands consumed`]));
      const counts = counters.map((e) => Number(e.args?.commands));
      expect(counts.every((c, i) => c > (i === 0 ? 0 : counts[i - 1]!))).toBe(true);
      expect((await cli('trace', '--replay', f)).code).toBe(0);
    }
  });

  it('--replay of a scenario trace and of a demo trace matches (exit 0)', async () => {
    const dir = tmp();
    const s = join(dir, 's.json');
    const d = join(dir, 'd.json');
    await cli('run', join(examplesDir, 'mock-nested.yaml'), '--quiet', '--trace', s);
    expect(await cli('trace', '--replay', s)).toMatchObject({ code: 0, out: `${s}: replay matches (57 events)\n` });
    expect((await cli('demo', '--quiet', '--trace', d)).code).toBe(0);
    const replay = await cli('trace', '--replay', d);
    expect(replay.code).toBe(0);
    expect(replay.out).toMatch(/replay matches \(\d+ events\)/);
  });

  it('--replay of a trace whose recorded result differs exits 1 naming the first mismatch', async () => {
    const dir = tmp();
    const s = join(dir, 's.json');
    await cli('run', join(examplesDir, 'mock-nested.yaml'), '--quiet', '--trace', s);
    const t = load(s);
    const i = t.traceEvents.findIndex((e) => e.name === 'IOMMU_DESTROY');
    const tampered: TraceEvent[] = t.traceEvents.map((e, k) => (k === i ? { ...e, args: { ...e.args, result: 0 } } : e));
    writeFileSync(s, JSON.stringify({ ...t, traceEvents: tampered }));
    const r = await cli('trace', '--replay', s);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/does not match the recording: event \d+ \(ts \d+\) differs:\n {2}recorded \["ioctl","IOMMU_DESTROY",\{.*"result":0\}\]\n {2}replayed \["ioctl","IOMMU_DESTROY",\{.*"result":"EBUSY"\}\]/);
  });

  it('--replay of something that is not a trace is an invalid file (exit 3)', async () => {
    const f = join(tmp(), 'x.json');
    writeFileSync(f, '{"traceEvents": []}');
    expect(await cli('trace', '--replay', f)).toMatchObject({ code: 3, err: expect.stringMatching(/is not an iommufd-sim trace/) });
    writeFileSync(f, 'nope');
    expect(await cli('trace', '--replay', f)).toMatchObject({ code: 3, err: expect.stringMatching(/is not JSON/) });
  });

  it('compareTraces reports a missing tail', () => {
    const e = (name: string, ts: number): TraceEvent => ({ name, cat: 'syscall', ph: 'X', ts, dur: 1, pid: 1, tid: 1, args: { result: 0 } });
    expect(compareTraces([e('open', 0)], [e('open', 0)])).toBeUndefined();
    expect(compareTraces([e('open', 0), e('close', 1)], [e('open', 0)])).toBe('the recorded trace has 2 events, the replay 1; first extra: ["syscall","close",{"result":0}]');
  });
});
