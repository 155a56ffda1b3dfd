// The Host benchmarks (bench/*.mjs, `pnpm bench ioctl|vsmmu-e2e|map|scale`) at tiny sizes:
// the harness runs, prints BENCH.md's line format, and what it measured was correct. The
// figures themselves are never asserted (speed is measured in benchmarks, not in tests).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PhysicalStore, VsmmuMixRun, createQueueEngine } from '@iommufd/queue-engine';

const benchDir = fileURLToPath(new URL('../bench/', import.meta.url));

type Line = { name: string; kind: string; fields: Record<string, string> };

/** Runs `bench/<file>.mjs <args…>` and parses every stdout line as `NAME impl=… k=v…` or `NAME ratios k=v…`. */
function runBench(file: string, ...args: string[]): Line[] {
  const r = spawnSync(process.execPath, [`${file}.mjs`, ...args], { cwd: benchDir, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout
    .trimEnd()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [name, second, ...rest] = l.split(' ');
      const isRatios = second === 'ratios';
      const pairs = isRatios ? rest : [second!, ...rest];
      for (const p of pairs) expect(p, `'${p}' in line '${l}'`).toMatch(/^[\w./-]+=\S+$/);
      const fields = Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
      return { name: name!, kind: isRatios ? 'ratios' : 'impl', fields };
    });
}

/** A positive finite number printed as BENCH.md's figures are. */
const positive = (s: string | undefined) => {
  expect(s).toMatch(/^\d+(\.\d+)?(e[+-]?\d+)?$/);
  expect(Number(s)).toBeGreaterThan(0);
};

/** Every line is the benchmark's; impl lines carry ops_per_s; the last line is the only ratios line. */
function wellFormed(lines: Line[], name: string): Line[] {
  expect(lines.length).toBeGreaterThan(1);
  for (const l of lines) expect(l.name).toBe(name);
  expect(lines.at(-1)!.kind).toBe('ratios');
  const impls = lines.slice(0, -1);
  for (const l of impls) {
    expect(l.kind).toBe('impl');
    expect(l.fields.impl).toMatch(/^[\w-]+$/);
    if (l.fields.skipped === undefined) positive(l.fields.ops_per_s);
  }
  return impls;
}

describe('pnpm bench (host) at tiny sizes', () => {
  it('a name the host does not own runs nothing', () => {
    for (const f of ['ioctl', 'vsmmu-e2e', 'map', 'scale']) expect(runBench(f, 'translate', '--tiny')).toEqual([]);
  });

  it('ioctl: IOVA_RANGES on every preset, one-entry HWPT_INVALIDATE on mock, arm-smmuv3 and intel-vtd, then ratios', () => {
    const lines = wellFormed(runBench('ioctl', 'ioctl', '--tiny'), 'ioctl');
    const got = lines.map((l) => `${l.fields.impl}/${l.fields.op}`);
    expect(got).toEqual([
      'mock/IOMMU_IOAS_IOVA_RANGES',
      'mock/IOMMU_HWPT_INVALIDATE',
      'arm-smmuv3/IOMMU_IOAS_IOVA_RANGES',
      'arm-smmuv3/IOMMU_HWPT_INVALIDATE',
      'tegra241-cmdqv/IOMMU_IOAS_IOVA_RANGES',
      'intel-vtd/IOMMU_IOAS_IOVA_RANGES',
      'intel-vtd/IOMMU_HWPT_INVALIDATE',
    ]);
    for (const l of lines) positive(l.fields.ns_per_op);
    // The harness itself throws (exit ≠ 0) unless every call returned 0 and entry_num came back 1.
    expect(lines.filter((l) => l.fields.op === 'IOMMU_HWPT_INVALIDATE').map((l) => l.fields.entries)).toEqual(['1', '1', '1']);
    const ratios = runBench('ioctl', '--tiny').at(-1)!.fields;
    expect(Object.keys(ratios)).toEqual([
      'invalidate/iova_ranges_mock',
      'invalidate/iova_ranges_arm-smmuv3',
      'invalidate/iova_ranges_intel-vtd',
      'invalidate_arm-smmuv3/mock',
      'invalidate_intel-vtd/mock',
      'best_of',
    ]);
  });

  it('vsmmu-e2e: host entries/s next to the engine cmds/s; the engine ran BENCH.md vsmmu-mix exactly', async () => {
    const all = runBench('vsmmu-e2e', 'vsmmu-e2e', '--tiny');
    const lines = wellFormed(all, 'vsmmu-e2e');
    expect(lines).toHaveLength(2);
    const [host, engine] = lines;
    expect(host!.fields).toMatchObject({ impl: 'host', n: '1024', seed: '1', entries_per_call: '64', vdevices: '31', engine_in_path: 'convert+consume' });
    positive(host!.fields.entries_per_s);
    expect(host!.fields.entries_per_s).toBe(host!.fields.ops_per_s);
    expect(engine!.fields).toMatchObject({ impl: 'engine', n: '1024', seed: '1', engine: 'wasm' });
    positive(engine!.fields.cmds_per_s);
    // The TypeScript twin on the same input gives the checksum the bench's wasm run printed.
    const twin = new VsmmuMixRun(await createQueueEngine(new PhysicalStore(), { impl: 'ts' }), 1024, 1n);
    twin.run();
    expect(engine!.fields.checksum).toBe(twin.checksum().toString(16).padStart(16, '0'));
    positive(all.at(-1)!.fields['host/engine']);
  });

  it('map: one line per size with ns_per_op and bytes_per_s, then the growth curve', () => {
    const all = runBench('map', 'map', '--tiny');
    const lines = wellFormed(all, 'map');
    expect(lines.map((l) => l.fields.size)).toEqual(['4KiB', '64KiB', '2MiB']);
    for (const l of lines) {
      positive(l.fields.ns_per_op);
      positive(l.fields.bytes_per_s);
      // bytes_per_s is size / time of one map + unmap.
      const size = { '4KiB': 4096, '64KiB': 65536, '2MiB': 2 << 20 }[l.fields.size!]!;
      expect(Number(l.fields.bytes_per_s) / ((size * 1e9) / Number(l.fields.ns_per_op))).toBeCloseTo(1, 2);
    }
    expect(Object.keys(all.at(-1)!.fields)).toEqual(['per_doubling_4KiB-64KiB', 'per_doubling_64KiB-2MiB', 'exponent', 'best_of']);
  });

  it('scale: vDEVICEs, HW queues and the sparse map reach what each platform allows, with the exact stop errno', () => {
    const all = runBench('scale', 'scale', '--tiny');
    const lines = wellFormed(all, 'scale');
    const by = (impl: string, what: string) => lines.find((l) => l.fields.impl === impl && l.fields.what === what)!.fields;
    expect(by('mock', 'vdevices')).toMatchObject({ target: '16', reached: '16' });
    // 16 vDEVICEs + 16 devices + 16 auto domains + IOAS + nest parent + vIOMMU + … in the object table.
    expect(Number(by('mock', 'vdevices').objects)).toBeGreaterThanOrEqual(16 * 3 + 3);
    expect(by('arm-smmuv3', 'vdevices')).toMatchObject({ target: '16', reached: '16', devices: '16', buses: '1' });
    expect(by('arm-smmuv3', 'vdevices').stopped_by).toBeUndefined();
    // A VINTF has 16 SID slots: the 17th vDEVICE is the driver's -ENOSPC.
    expect(by('tegra241-cmdqv', 'vdevices')).toMatchObject({ reached: '16', sid_slots_per_vintf: '16', stopped_by: 'ENOSPC' });
    expect(by('mock', 'hw_queues')).toMatchObject({ target: '64', reached: '2', stopped_by: 'EINVAL' });
    // 2^7 VCMDQs over 2^1 VINTFs: 64 LVCMDQs on the vIOMMU's VINTF, as GET_HW_INFO says; index 64 is -EINVAL.
    expect(by('tegra241-cmdqv', 'hw_queues')).toMatchObject({ target: '64', reached: '64', hw_info_log2vcmdqs: '6', stopped_by: 'EINVAL' });
    expect(by('mock', 'sparse_map')).toMatchObject({ domain: 'none', bytes: String(1 << 30), rc: '0', pinned_pages: '0' });
    expect(Number(by('mock', 'sparse_map').frames_in_use)).toBeLessThan(8);
    expect(by('mock', 'sparse_attach').rc).toBe('EADDRINUSE');
    expect(by('mock', 'sparse_unmap').rc).toBe('0');
    // With a domain every page must be pinned: 1 GiB does not fit 64 MiB of RAM, and the failed map unpins all.
    expect(by('arm-smmuv3', 'sparse_map')).toMatchObject({ domain: 'attached', rc: 'ENOMEM', pinned_pages: '0' });
    expect(all.at(-1)!.fields).toMatchObject({ vdevices_mock: '16/16', 'vdevices_arm-smmuv3': '16/16', hw_queues_mock: '2/64', 'hw_queues_tegra241-cmdqv': '64/64', sparse_map_no_domain: 'ok', 'sparse_map_arm-smmuv3_attached': 'ENOMEM' });
  });
});
