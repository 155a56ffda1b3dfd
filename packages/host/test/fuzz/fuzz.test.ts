import { describe, expect, it } from 'vitest';
import { FUZZ_OP_KINDS, FuzzRandom, generateOps, minimize, parseFuzzCase, replay, runFuzz, type FuzzCase, type FuzzOp } from '../../src/index.js';
import { FuzzSession } from '../../src/fuzz/session.js';

describe('FuzzRandom', () => {
  it('is a pure function of the seed', () => {
    const a = new FuzzRandom(42);
    const b = new FuzzRandom(42);
    const xs = Array.from({ length: 8 }, () => a.nextU32());
    expect(Array.from({ length: 8 }, () => b.nextU32())).toEqual(xs);
    expect(new Set(xs).size).toBe(8);
    expect(new FuzzRandom(43).nextU32()).not.toBe(xs[0]);
  });

  it('below(n) stays in [0, n)', () => {
    const r = new FuzzRandom(7);
    for (let i = 0; i < 1000; i++) expect(r.below(5)).toBeLessThan(5);
  });
});

describe('generateOps', () => {
  it('is reproducible and draws from every kind over a long sequence', () => {
    const ops = generateOps(9, 5000);
    expect(generateOps(9, 5000)).toEqual(ops);
    const kinds = new Set(ops.map((o) => o.kind));
    for (const k of FUZZ_OP_KINDS) if (k !== 'CLOSE_ALL') expect(kinds.has(k), k).toBe(true);
  });
});

describe('minimize (ddmin)', () => {
  it('finds the two elements an artificial predicate needs', async () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const fails = (c: readonly number[]): boolean => c.includes(17) && c.includes(83);
    expect(await minimize(items, fails)).toEqual([17, 83]);
  });

  it('keeps order and returns a 1-minimal list for an order-dependent predicate', async () => {
    const items = [5, 1, 9, 3, 7, 2, 8];
    // Fails when some 9 comes before some 2.
    const fails = (c: readonly number[]): boolean => c.indexOf(9) >= 0 && c.lastIndexOf(2) > c.indexOf(9);
    expect(await minimize(items, fails)).toEqual([9, 2]);
  });

  it('returns the empty list when even that fails, and refuses an input that does not fail', async () => {
    expect(await minimize([1, 2, 3], () => true)).toEqual([]);
    await expect(minimize([1, 2, 3], () => false)).rejects.toThrow(/does not fail/);
  });

  it('with groupOf, drops a whole group at once where single removals shift the program', async () => {
    // A "program" that fails while the 3rd 'mk' item is 'mk!' (an earlier 'mk' removed shifts
    // which one is 3rd, as a removed creator shifts a fuzz op's pick): dropping the 'q' group
    // in one test leaves ddmin little to do (21 tests here; 65 without groupOf).
    const items = Array.from({ length: 120 }, (_, i) => (i % 5 === 0 ? `mk${i === 10 ? '!' : ''}` : `q${i}`));
    const fails = (c: readonly string[]): boolean => c.filter((x) => x.startsWith('mk'))[2] === 'mk!';
    let calls = 0;
    const out = await minimize(
      items,
      (c) => {
        calls++;
        return fails(c);
      },
      { groupOf: (x) => (x.startsWith('mk') ? 'mk' : 'q') },
    );
    expect(out).toEqual(['mk', 'mk', 'mk!']);
    expect(calls).toBeLessThan(40);
  });

  it('stops at maxTests', async () => {
    let n = 0;
    await minimize(
      Array.from({ length: 64 }, (_, i) => i),
      (c) => {
        n++;
        return c.includes(3);
      },
      { maxTests: 10 },
    );
    expect(n).toBeLessThanOrEqual(10);
  });
});

describe('runFuzz on mock (short CI budget)', () => {
  // The CI budget: a few seeds per preset (no finding is open, so any seed should pass).
  it.each([3, 5, 6, 7])('seed %i: 2000 operations, zero findings, back to baseline', async (seed) => {
    const r = await runFuzz({ seed, seeds: 1, callsPerSeed: 2000, platform: 'mock' });
    expect(r.failures.map((f) => f.findings[0]?.message)).toEqual([]);
    expect(r.findings).toBe(0);
    expect(r.operations).toBe(2001);
    // Most fuzzed input is rejected, some accepted: both paths ran.
    expect(r.errors).toBeGreaterThan(100);
    expect(r.calls - r.errors).toBeGreaterThan(100);
  }, 120_000);
});

describe('runFuzz on the hardware presets (short budget)', () => {
  it.each([
    ['intel-vtd', 1],
    ['arm-smmuv3', 3],
    ['tegra241-cmdqv', 1],
  ] as const)('%s seed %i: 1500 operations, zero findings', async (platform, seed) => {
    const r = await runFuzz({ seed, seeds: 1, callsPerSeed: 1500, platform });
    expect(r.failures.map((f) => f.findings[0]?.message)).toEqual([]);
    expect(r.operations).toBe(1501);
  }, 120_000);
});

describe('replay', () => {
  it('round-trips a case through JSON and reproduces the same calls', async () => {
    const ops = generateOps(5, 300);
    const c: FuzzCase = { format: 'iommufd-fuzz-case/1', platform: 'mock', devices: 3, seed: 5, ops, findings: [] };
    const back = parseFuzzCase(JSON.parse(JSON.stringify(c)));
    expect(back).toEqual(c);
    const a = await replay(back);
    const b = await replay(c);
    expect(a).toEqual(b);
    expect(a.operations).toBe(301);
    expect(a.findings).toEqual([]);
  }, 60_000);

  it('rejects malformed cases with a message saying what is wrong', () => {
    expect(() => parseFuzzCase({ format: 'x' })).toThrow(/iommufd-fuzz-case\/1/);
    expect(() => parseFuzzCase({ format: 'iommufd-fuzz-case/1', ops: [{ kind: 'NOPE', args: [] }] })).toThrow(/op 0/);
    expect(() => parseFuzzCase({ format: 'iommufd-fuzz-case/1', ops: [{ kind: 'DMA', args: [-1] }] })).toThrow(/u32/);
  });
});

describe('findings directory', () => {
  it('holds replayable cases (open findings and fixed regressions), each with the findings it showed when saved', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const files = ['./findings/', './regressions/'].flatMap((d) => {
      const dir = new URL(d, import.meta.url);
      return readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => new URL(f, dir));
    });
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const c = parseFuzzCase(JSON.parse(readFileSync(f, 'utf8')));
      expect(c.findings.length, f.pathname).toBeGreaterThan(0);
      expect(c.ops.length, f.pathname).toBeGreaterThan(0);
    }
  });
});

// Findings that were fixed (core replace unwinding, PhysicalStore write after grow, PASID 0
// as the RID): each replays cleanly now and must stay so.
describe('fixed findings', () => {
  const load = async (name: string): Promise<FuzzCase> => {
    const { readFileSync } = await import('node:fs');
    return parseFuzzCase(JSON.parse(readFileSync(new URL(`./regressions/${name}.json`, import.meta.url), 'utf8')));
  };
  it.each([
    'replace-auto-domain-fill-eperm',
    'replace-auto-domain-undo-detaches',
    'smmu-physical-store-grow-detached-view',
    'vtd-attach-grow-exception-dangling-pin',
    'vtd-pasid0-attach-translates-rid',
    'pasid0-detach-blocks-attached-rid',
    'vdevice-keeps-device-reference',
    'invalidate-array-beyond-kmalloc',
    'vfio-bind-mutated-iommufd',
    'dirty-bitmap-garbage-length',
    'mmap-region-reused-offset',
    'pasid-beyond-smmu-ssid',
  ])('%s replays with no finding', async (name) => {
    const c = await load(name);
    expect(c.findings.length).toBeGreaterThan(0); // what it showed when it was found
    const r = await replay(c);
    expect(r.findings.map((f) => f.message)).toEqual([]);
  });

  // The PASID-0 program also broke SMMUv3 (substream 0 is the RID's CD): STE_ABORT for a RID
  // the core believed attached. It runs every op on every preset.
  it.each(['mock', 'arm-smmuv3', 'tegra241-cmdqv'] as const)('pasid0-detach-blocks-attached-rid on %s: no finding, every op ran', async (platform) => {
    const c = await load('pasid0-detach-blocks-attached-rid');
    const r = await replay({ ...c, platform });
    expect(r.findings.map((f) => f.message)).toEqual([]);
    expect(r.operations).toBe(c.ops.length + 1);
  });
});

describe('two processes', () => {
  // Words chosen so each op takes the plain path (see session.ts): both processes open
  // /dev/iommu, map one anonymous page (tags 0x11 and 0x22) at IOVA 0x1000000 of their IOAS,
  // and the second binds vfio0 to its own IOAS and DMAs into it.
  const w = (...xs: number[]): number[] => [...xs, ...Array<number>(16 - xs.length).fill(0)];
  const ops: FuzzOp[] = [
    { kind: 'OPEN_IOMMUFD', args: w() },
    { kind: 'IOAS_ALLOC', args: w(50, 0, 0) },
    { kind: 'MMAP_ANON', args: w(99, 0, 0, 0, 0, 0x11) },
    { kind: 'IOAS_MAP', args: w(50, 0, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0) },
    { kind: 'SPAWN_PROCESS', args: w() },
    { kind: 'OPEN_IOMMUFD', args: w() },
    { kind: 'IOAS_ALLOC', args: w(99, 50, 0, 0) },
    { kind: 'MMAP_ANON', args: w(99, 0, 0, 0, 0, 0x22) },
    { kind: 'IOAS_MAP', args: w(99, 50, 0, 0, 0, 99, 0, 99, 0, 0, 0, 0, 0, 0, 0) },
    { kind: 'VFIO_OPEN', args: w(0) },
    { kind: 'VFIO_BIND', args: w(0, 99, 50, 0, 0) },
    { kind: 'VFIO_ATTACH', args: w(0, 99, 0, 0, 0) },
    { kind: 'DMA', args: w(0, 0, 0, 0, 0, 16, 7, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4) },
  ];

  it.each(['mock', 'intel-vtd', 'arm-smmuv3'] as const)('%s: a DMA of the second process lands in its memory only, and its fds are its own', async (platform) => {
    const s = await FuzzSession.create({ platform, devices: 2 });
    for (const [i, op] of ops.entries()) expect(s.execute(op, i), `${i} ${op.kind}`).toEqual([]);
    const host = s.hostUnderTest;
    const [p1, p2] = host.processes;
    expect(host.processes.map((p) => p.pid)).toEqual([1, 2]);
    // Same fd number, different contexts: each process's IOAS holds its own mapping.
    const fd1 = p1!.fds().find((f) => f.kind === '[iommufd]')!.fd;
    const fd2 = p2!.fds().find((f) => f.kind === '[iommufd]')!.fd;
    expect(fd2).toBe(fd1);
    expect(host.objects(fd2, p2).map((o) => o.type)).toEqual(['IOAS', 'DEVICE', 'HWPT_PAGING']);
    expect(host.objects(fd1, p1).map((o) => o.type)).toEqual(['IOAS']);
    // The pages the two processes mapped at IOVA 0x1000000 (the same VA in both): the DMA
    // write reached the second process's page only.
    const page = (p: typeof p1, tag: number): bigint => p!.mappings().find((m) => m.end - m.start === 4096n && (p!.peek(m.start, 1) as Uint8Array)[0] === tag)!.start;
    const va1 = page(p1, 0x11);
    const va2 = page(p2, 0x22);
    expect(va2).toBe(va1);
    expect(p2!.peek(va2 + 16n, 8)).toEqual(Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4));
    expect(p1!.peek(va1, 24)).toEqual(Uint8Array.from({ length: 24 }, (_, i) => [0x11, 0xa5][i] ?? 0));
    expect(s.finish(ops.length)).toEqual([]);
  });

  it('a mock run with the second process spawned early stays clean', async () => {
    const spawnFirst: FuzzOp[] = [{ kind: 'SPAWN_PROCESS', args: w() }, ...generateOps(11, 1500)];
    const r = await replay({ ops: spawnFirst, platform: 'mock', devices: 3 });
    expect(r.findings.map((f) => f.message)).toEqual([]);
    expect(r.operations).toBe(spawnFirst.length + 1);
  }, 60_000);
});
