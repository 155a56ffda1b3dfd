// The WebAssembly engine and the TypeScript twin must agree byte for byte on everything a
// consumer can observe: the returned CONS / IQH, stop reason, error registers, every effect
// batch, the execution log, the counters and the memory they write.
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import type { InvalidationFault, QueueEngine } from '../src/index.js';
import { RecordingSink, engineOf } from './helpers.js';

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const SMMU_OPS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x11, 0x12, 0x13, 0x18, 0x1a, 0x20, 0x21, 0x22, 0x23, 0x28, 0x2a, 0x30, 0x40, 0x41, 0x44, 0x45, 0x46];

/** A command: mostly a known opcode with random fields (SSec and CS=3 sometimes), sometimes raw noise. */
const smmuCommand = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...SMMU_OPS), u64, u64, fc.nat(9), fc.nat(3)).map(([op, hi, d1, ssec, cs]) => {
    let d0 = (hi & ~0xffn & ~(1n << 10n)) | BigInt(op);
    if (ssec === 0) d0 |= 1n << 10n;
    if (op === 0x46) d0 = (d0 & ~(3n << 12n)) | (BigInt(cs) << 12n);
    if (op === 0x40 || op === 0x11 || op === 0x12) d0 = (d0 & 0xffff_ffffn) | (BigInt(hi % 8n) << 32n) | ((hi >> 48n) << 48n);
    return [d0, d1] as const;
  }) },
  { weight: 1, arbitrary: fc.tuple(u64, u64) },
);

const fault = fc.option(fc.record({ kind: fc.constantFrom<'timeout' | 'completion-error'>('timeout', 'timeout', 'completion-error'), sid: fc.nat(0xffff) }), { nil: undefined, freq: 3 });

const smmuCase = fc.record({
  log2: fc.integer({ min: 1, max: 5 }),
  guest: fc.boolean(),
  s1p: fc.boolean(), s2p: fc.boolean(), ats: fc.boolean(),
  cap: fc.integer({ min: 0, max: 6 }),
  logEntries: fc.integer({ min: 0, max: 80 }),
  abort: fc.nat(19),
  vmid: fc.nat(0xffff),
  streams: fc.uniqueArray(fc.tuple(fc.nat(7), fc.nat(0xffff_ffff)), { selector: (p) => p[0], maxLength: 6 }),
  cmds: fc.array(smmuCommand, { minLength: 32, maxLength: 32 }),
  cons: fc.nat(0xffff_ffff),
  prod: fc.nat(0xffff_ffff),
  faults: fc.array(fault, { maxLength: 8 }),
});

type SmmuCase = typeof smmuCase extends fc.Arbitrary<infer T> ? T : never;

/** Runs one case (two consume calls) and destroys the queue so the engine arena never fills. */
function runSmmu(e: QueueEngine, c: SmmuCase) {
  const base = 0x8000_0000n;
  const q = e.createSmmuQueue({
    kind: c.guest ? 'vcmdq-guest' : 'cmdq', s1p: c.s1p, s2p: c.s2p, ats: c.ats, effectsCapacity: c.cap,
    vmid: c.vmid, streams: c.streams,
  });
  q.setBase(base, c.log2, c.abort === 0 ? () => false : undefined);
  if (c.logEntries) q.setExecutionLog(c.logEntries * 16);
  c.cmds.slice(0, 1 << c.log2).forEach(([d0, d1], i) => {
    e.store.write64(base + BigInt(i * 16), d0);
    e.store.write64(base + BigInt(i * 16 + 8), d1);
  });
  const sink = new RecordingSink([...c.faults] as (InvalidationFault | undefined)[]);
  const run = c.cap > 0 ? sink : undefined;
  const first = q.consume(c.prod, c.cons, run);
  const stop1 = q.stop;
  const second = q.consume(c.prod, first, run);
  const out = {
    first, stop1, second, stop2: q.stop, error: q.error, lastSync: q.lastSyncData,
    batches: sink.batches.map((b) => Array.from(b)),
    log: Array.from(q.executionLog()),
    counters: Array.from({ length: 256 }, (_, i) => q.executed(i)),
    ring: Array.from(e.store.read(base, 16 << c.log2)),
  };
  q.destroy();
  return out;
}

const VTD_ALLOWED: Record<number, [bigint, bigint]> = {
  1: [0x0003_ffff_ffff_0030n, 0n],
  2: [0x0000_0000_ffff_00f0n, 0xffff_ffff_ffff_f07fn],
  3: [0xffff_ffff_001f_f000n, 0xffff_ffff_ffff_f001n],
  4: [0x0000_ffff_f800_0010n, 0n],
  5: [0xffff_ffff_0000_00f0n, 0xffff_ffff_ffff_fffcn],
  6: [0x000f_ffff_ffff_0030n, 0xffff_ffff_ffff_f07fn],
  7: [0x000f_ffff_ffff_0030n, 0n],
  8: [0xffff_ffff_ffff_f1f0n, 0xffff_ffff_ffff_f801n],
  9: [0x000f_ffff_ffff_f030n, 0x0000_0000_0000_0ffcn],
};

const vtdDescriptor = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.constantFrom(1, 2, 3, 3, 3, 4, 5, 5, 5, 6, 7, 8, 8, 8, 9), u64, u64, u64, u64, fc.nat(5)).map(([t, a, b, c, d, z]) => {
    const [m0, m1] = VTD_ALLOWED[t]!;
    return [BigInt(t) | (a & m0), b & m1, z === 0 ? c : 0n, z === 1 ? d : 0n] as const;
  }) },
  { weight: 1, arbitrary: fc.tuple(u64, u64, u64, u64) },
);

const vtdCase = fc.record({
  wide: fc.boolean(), dit: fc.boolean(), pds: fc.boolean(), mamv: fc.nat(12),
  cap: fc.integer({ min: 0, max: 5 }),
  logBytes: fc.nat(1200),
  abort: fc.nat(19),
  descs: fc.array(vtdDescriptor, { minLength: 40, maxLength: 40 }),
  head: fc.nat(255),
  count: fc.nat(40),
  rawTail: fc.option(fc.nat(0xfffff), { freq: 10 }),
  faults: fc.array(fault, { maxLength: 8 }),
});

type VtdCase = typeof vtdCase extends fc.Arbitrary<infer T> ? T : never;

function runVtd(e: QueueEngine, c: VtdCase) {
  const base = 0x4000_0000n;
  const q = e.createInvalidationQueue({ effectsCapacity: c.cap, dit: c.dit, pds: c.pds, mamv: c.mamv });
  q.setBase(base, 0, c.wide, c.abort === 0 ? () => false : undefined);
  if (c.logBytes) q.setExecutionLog(c.logBytes);
  const entries = c.wide ? 128 : 256;
  const width = c.wide ? 32 : 16;
  const head = c.head % entries;
  for (let i = 0; i < c.count; i++) {
    const at = base + BigInt(((head + i) % entries) * width);
    const d = c.descs[i]!;
    for (let w = 0; w < width / 8; w++) e.store.write64(at + BigInt(w * 8), d[w]!);
  }
  const tail = c.rawTail ?? ((head + c.count) % entries) * width;
  const sink = new RecordingSink([...c.faults] as (InvalidationFault | undefined)[]);
  const run = c.cap > 0 ? sink : undefined;
  const first = q.consume(tail, head * width, run);
  const out1 = { first, stop: q.stop, fsts: q.fsts, iqer: q.iqer };
  q.clearFaults(0x70);
  const second = q.consume(tail, first, run);
  const out = {
    out1, second, stop2: q.stop, fsts: q.fsts, iqer: q.iqer,
    batches: sink.batches.map((b) => Array.from(b)),
    log: Array.from(q.executionLog()),
    counters: Array.from({ length: 16 }, (_, i) => q.executed(i)),
  };
  q.destroy();
  return out;
}

function safely<T>(f: () => T): T | { threw: string } {
  try { return f(); } catch (err) { return { threw: String(err) }; }
}

describe('WebAssembly engine ≡ TypeScript twin', () => {
  // One engine pair per property (not per case) keeps each run fast; both see the same
  // history of ring contents, so stale bytes cannot make them differ.
  let wasm: QueueEngine;
  let ts: QueueEngine;
  beforeEach(async () => {
    wasm = await engineOf('wasm');
    ts = await engineOf('ts');
  });

  it('SMMU CMDQ / VCMDQ rings: valid, invalid, wrapping, full/empty, errors mid-batch, CMD_SYNC variants', async () => {
    await fc.assert(fc.asyncProperty(smmuCase, async (c) => {
      const a = safely(() => runSmmu(wasm, c));
      const b = safely(() => runSmmu(ts, c));
      expect(a).toEqual(b);
    }), { numRuns: 300 });
  });

  it('VT-d invalidation queues: descriptor mixes, 128/256-bit, IQE/ITE/ICE, wrapping', async () => {
    await fc.assert(fc.asyncProperty(vtdCase, async (c) => {
      expect(safely(() => runVtd(wasm, c))).toEqual(safely(() => runVtd(ts, c)));
    }), { numRuns: 300 });
  });

  const guestCmd = fc.tuple(fc.constantFrom(0x10, 0x11, 0x12, 0x13, 0x30, 0x40, 0x05, 0x06, 0x03, 0x46, 0x2a), u64, u64, fc.nat(9))
    .map(([op, hi, d1, sid]) => [(hi & ~0xffn & 0xffff_ffffn) | BigInt(op) | (BigInt(sid) << 32n) | ((hi >> 48n) << 48n), d1] as const);

  it('trapped vSMMU conversion and issue', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(guestCmd, { maxLength: 150 }), fc.nat(0xffff), fc.uniqueArray(fc.tuple(fc.nat(9), fc.nat(0xffff_ffff)), { selector: (p) => p[0], maxLength: 8 }),
      fc.boolean(),
      async (cmds, vmid, streams, ats) => {
        const run = (e: QueueEngine) => {
          const vs = e.createVsmmu({ vmid, streams });
          const bytes = new Uint8Array(cmds.length * 16);
          const dv = new DataView(bytes.buffer);
          cmds.forEach(([d0, d1], i) => { dv.setBigUint64(i * 16, d0, true); dv.setBigUint64(i * 16 + 8, d1, true); });
          const copy = bytes.slice();
          const converted = vs.convert(copy);
          const q = e.createSmmuQueue({ effectsCapacity: 0, ats });
          q.setBase(0x4000_0000n, 7);
          q.setExecutionLog(4096);
          const arr = e.store.ensureContiguous(0x10_0000, 4);
          e.store.bytes.set(bytes, arr);
          const r = vs.invalidate(arr, cmds.length, q);
          return {
            converted, copy: Array.from(copy), r, log: Array.from(q.executionLog()),
            array: Array.from(e.store.bytes.subarray(arr, arr + bytes.length)), ring: Array.from(e.store.read(0x4000_0000n, 2048)),
          };
        };
        expect(run(await engineOf('wasm'))).toEqual(run(await engineOf('ts')));
      },
    ), { numRuns: 150 });
  });
});

