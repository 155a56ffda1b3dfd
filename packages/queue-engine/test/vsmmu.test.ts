import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  VSMMU_MIX_VMID, VsmmuMixRun, fnv1a64, generateVsmmuMix, vsmmuMixStreams, QueueEngineError,
} from '../src/index.js';
import { IMPLS, engineOf, words64 } from './helpers.js';

// BENCH.md: n = 1000, seed 7.
const COUNTS_1000_7 = { nhVa: 672, nhAsid: 118, nhAll: 54, atcInv: 105, cfgiCd: 51, sync: 16 };
const CHECKSUM_1000_7 = 0x3103b7ebceae993bn;

function cmds(...c: [bigint, bigint][]): Uint8Array {
  const b = new Uint8Array(c.length * 16);
  const dv = new DataView(b.buffer);
  c.forEach(([d0, d1], i) => { dv.setBigUint64(i * 16, d0, true); dv.setBigUint64(i * 16 + 8, d1, true); });
  return b;
}

describe('the vsmmu-mix workload helpers', () => {
  it('generates the commands BENCH.md defines (first draws of seed 7, against a BigInt reference)', () => {
    const n = 64;
    const got = new Uint8Array(n * 16);
    generateVsmmuMix(got, n, 7n);
    const M = (1n << 64n) - 1n;
    let s = 7n;
    const want: bigint[] = [];
    for (let k = 0; k < n; k++) {
      s = (s + 0x9e3779b97f4a7c15n) & M;
      let z = s;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
      const r = z ^ (z >> 31n);
      const sel = r % 100n, asid = (r >> 8n) & 0xffffn, vsid = 0x100n + 3n * ((r >> 8n) % 64n);
      if (sel < 70n) want.push(0x12n | (0xdeadn << 32n) | (asid << 48n), ((r >> 7n) & 1n) | (((r >> 24n) & 0xfffffffffn) << 12n));
      else if (sel < 80n) want.push(0x11n | (asid << 48n), 0n);
      else if (sel < 90n) want.push(0x40n | (vsid << 32n), ((r >> 40n) & 0x3fn) % 53n);
      else if (sel < 95n) want.push(0x05n | (vsid << 32n) | (((r >> 16n) & 0xfffffn) << 12n) | (1n << 11n), r >> 63n);
      else want.push(0x30n, 0n);
    }
    expect(words64(got)).toEqual(want);
  });

  it('computes FNV-1a 64 like the reference', () => {
    expect(fnv1a64(new Uint8Array())).toBe(0xcbf29ce484222325n);
    expect(fnv1a64(new TextEncoder().encode('a'))).toBe(0xaf63dc4c8601ec8cn);
    expect(fnv1a64(new TextEncoder().encode('foobar'))).toBe(0x85944171f73967e8n);
  });
});

describe.each(IMPLS)('trapped vSMMU path (%s)', (impl) => {
  it('stamps the VMID, translates vSIDs and turns NSNH_ALL into NH_ALL', async () => {
    const e = await engineOf(impl);
    const vs = e.createVsmmu({ vmid: 0x2a, streams: [[0x100, 0x8000], [0x103, 0x8007]] });
    const a = cmds(
      [0x12n | (0xdeadn << 32n) | (5n << 48n), 0x1000n],
      [0x30n, 0xffffn],
      [0x40n | (0x103n << 32n), 52n],
      [0x05n | (1n << 11n) | (3n << 12n) | (0x100n << 32n), 1n],
      [0x06n | (0x103n << 32n), 0n],
      [0x10n | (0xffffn << 32n), 0n],
    );
    expect(vs.convert(a)).toBe(6);
    expect(words64(a)).toEqual([
      0x12n | (0x2an << 32n) | (5n << 48n), 0x1000n,
      0x10n | (0x2an << 32n), 0n,
      0x40n | (0x8007n << 32n), 52n,
      0x05n | (1n << 11n) | (3n << 12n) | (0x8000n << 32n), 1n,
      0x06n | (0x8007n << 32n), 0n,
      0x10n | (0x2an << 32n), 0n,
    ]);
  });

  it.each([
    ['CFGI_STE', 0x03n],
    ['TLBI_S12_VMALL', 0x28n],
    ['CMD_SYNC', 0x46n],
    ['ATC_INV of an unknown vSID', 0x40n | (0x999n << 32n)],
  ])('stops at %s and reports its index', async (_n, bad) => {
    const e = await engineOf(impl);
    const vs = e.createVsmmu({ vmid: 1, streams: [[0x100, 0x8000]] });
    expect(vs.convert(cmds([0x11n, 0n], [bad, 0n], [0x11n, 0n]))).toBe(1);
  });

  it('issues batches of 63 + CMD_SYNC and reports the failing index', async () => {
    const e = await engineOf(impl);
    const vs = e.createVsmmu({ vmid: VSMMU_MIX_VMID, streams: vsmmuMixStreams() });
    const q = e.createSmmuQueue({ effectsCapacity: 0 });
    q.setBase(0x4000_0000n, 7);
    q.setExecutionLog(200 * 16);
    const n = 130;
    const arr = e.store.ensureContiguous(0x10_0000, 1);
    const c = cmds(...Array.from({ length: n }, (_, i): [bigint, bigint] => [0x11n | (BigInt(i) << 48n), 0n]));
    e.store.bytes.set(c, arr);
    expect(vs.invalidate(arr, n, q)).toEqual({ status: 'ok', index: n });
    const log = words64(q.executionLog());
    expect(log.length / 2).toBe(n + 3);
    expect(log[63 * 2]).toBe(0x46n | (1n << 12n) | (63n << 32n));
    expect(log[127 * 2]).toBe(0x46n | (1n << 12n) | (126n << 32n));
    expect(log[132 * 2]).toBe(0x46n | (1n << 12n) | (130n << 32n));
    expect(q.lastSyncData).toBe(130);
    e.store.bytes.set(cmds([0x11n, 0n], [0x03n, 0n]), arr);
    expect(vs.invalidate(arr, 2, q)).toEqual({ status: 'bad-command', index: 1 });
  });

  it('reports an issue error with the last index of the failed batch', async () => {
    const e = await engineOf(impl);
    const vs = e.createVsmmu({ vmid: 1, streams: [[0x100, 0x8000]] });
    const q = e.createSmmuQueue({ effectsCapacity: 0, ats: false });
    q.setBase(0x4000_0000n, 7);
    const arr = e.store.ensureContiguous(0x10_0000, 1);
    e.store.bytes.set(cmds([0x11n, 0n], [0x40n | (0x100n << 32n), 0n], [0x11n, 0n]), arr);
    expect(vs.invalidate(arr, 3, q)).toEqual({ status: 'issue-error', index: 2 });
    expect(q.stop).toBe('error');
  });

  it('refuses to drive a queue with a cache model or a ring too small for a batch', async () => {
    const e = await engineOf(impl);
    const vs = e.createVsmmu({ vmid: 1, streams: [] });
    const q = e.createSmmuQueue();
    q.setBase(0x4000_0000n, 7);
    expect(() => vs.invalidate(0x10_0000, 1, q)).toThrow(QueueEngineError);
    const small = e.createSmmuQueue({ effectsCapacity: 0 });
    small.setBase(0x4000_0000n, 6);
    expect(() => vs.invalidate(0x10_0000, 1, small)).toThrow(/128 entries/);
  });

  it('reproduces BENCH.md for n = 1000, seed 7', async () => {
    const run = new VsmmuMixRun(await engineOf(impl), 1000, 7n);
    expect(run.run().executed).toBe(1016);
    expect(run.counts()).toEqual(COUNTS_1000_7);
    expect(run.checksum()).toBe(CHECKSUM_1000_7);
    run.run(); // a second run restores the guest array and yields the same log
    expect(run.checksum()).toBe(CHECKSUM_1000_7);
  });
});

describe('the C implementation (tools/bench/vsmmu-mix.c, system cc)', () => {
  it('reproduces BENCH.md for n = 1000, seed 7', () => {
    const src = fileURLToPath(new URL('../../../tools/bench/vsmmu-mix.c', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'vsmmu-mix-'));
    try {
      const exe = join(dir, 'vsmmu-mix');
      const cc = spawnSync('cc', ['-O2', '-o', exe, src], { encoding: 'utf8' });
      expect(cc.status, cc.stderr).toBe(0);
      const r = spawnSync(exe, ['1000', '7', '1'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout.trim().split('\n').at(-1)).toBe('counts=672/118/54/105/51/16 executed=1016 checksum=3103b7ebceae993b');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('engine selection and engine memory', () => {
  it('picks the WebAssembly engine by default', async () => {
    const { createQueueEngine, PhysicalStore } = await import('../src/index.js');
    expect((await createQueueEngine(new PhysicalStore())).impl).toBe('wasm');
  });

  it('returns a destroyed queue\'s engine memory to the arena', async () => {
    const e = await engineOf('wasm');
    for (let i = 0; i < 500; i++) {
      const q = e.createSmmuQueue({ kind: 'vcmdq-guest', streams: [[1, 2]] });
      q.setBase(0x4000_0000n, 10);
      q.setExecutionLog(4096);
      q.destroy();
    }
    expect(e.createSmmuQueue().stop).toBe('empty');
  });

  it('rejects an arena request larger than the reserved bytes with a typed error', async () => {
    const e = await engineOf('ts');
    expect(() => e.createSmmuQueue({ effectsCapacity: 65536 }).setExecutionLog(2 << 20)).toThrow(/engine memory exhausted/);
  });
});
