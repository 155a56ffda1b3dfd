import { describe, expect, it } from 'vitest';
import {
  FSTS_ICE, FSTS_IQE, FSTS_ITE, IQEI_FETCH, IQEI_INVALID_TAIL, IQEI_INVALID_TYPE, IQEI_INVALID_WIDTH, IQEI_RESERVED,
  IQEI_TAIL_MISALIGNED, QI_IWD_TYPE, type InvalidationQueueOptions,
} from '../src/index.js';
import { IMPLS, RecordingSink, engineOf, words64, writeWords } from './helpers.js';

const BASE = 0x4000_0000n;

describe.each(IMPLS)('VT-d invalidation queue (%s)', (impl) => {
  async function setup(wide: boolean, opts: InvalidationQueueOptions = {}, qs = 0) {
    const e = await engineOf(impl);
    const q = e.createInvalidationQueue(opts);
    q.setBase(BASE, qs, wide);
    const width = wide ? 32 : 16;
    const put = (i: number, ...w: bigint[]) => writeWords(e.store, BASE + BigInt(i * width), w);
    return { e, q, put, width };
  }

  it('executes a 128-bit IOTLB PSI and a wait descriptor with exact effect records', async () => {
    const { q, put } = await setup(false);
    put(0, 0x2n | (3n << 4n) | (1n << 6n) | (0x42n << 16n), 0x1234_5000n | (1n << 6n) | 3n);
    put(1, 0x5n | (1n << 5n) | (2n << 32n), 0xfee0_1004n);
    const sink = new RecordingSink();
    expect(q.consume(2 << 4, 0, sink)).toBe(2 << 4);
    expect(words64(sink.batches[0]!)).toEqual([
      0x102n, 0x42n << 16n | 0x3n | (1n << 2n), 0x1234_5000n, 3n | (1n << 6n),
      0x105n | (1n << 32n), (1n << 1n) | (2n << 32n), 0xfee0_1004n, 0n,
    ]);
    expect(sink.all.map((x) => [x.name, x.fields])).toEqual([
      ['QI_IOTLB', { granularity: 3n, drainWrites: 1n, drainReads: 0n, did: 0x42n, addr: 0x1234_5000n, am: 3n, ih: 1n }],
      ['QI_IWD', { interruptFlag: 0n, statusWrite: 1n, fence: 0n, pageDrain: 0n, statusData: 2n, statusAddr: 0xfee0_1004n }],
    ]);
    expect(q.executed(QI_IWD_TYPE)).toBe(1);
  });

  it('decodes every descriptor type of a 256-bit queue', async () => {
    const { q, put } = await setup(true, { dit: true, pds: true });
    put(0, 0x1n | (3n << 4n) | (7n << 16n) | (0x0108n << 32n) | (2n << 48n), 0n, 0n, 0n);
    put(1, 0x3n | (0xan << 12n) | (5n << 16n) | (0x0200n << 32n) | (0x123n << 52n), 0x7000n | 1n, 0n, 0n);
    put(2, 0x4n | (1n << 4n) | (3n << 27n) | (0x55n << 32n), 0n, 0n, 0n);
    put(3, 0x6n | (2n << 4n) | (9n << 16n) | (0x12345n << 32n), 0n, 0n, 0n);
    put(4, 0x7n | (1n << 4n) | (9n << 16n) | (0x12345n << 32n), 0n, 0n, 0n);
    put(5, 0x8n | (4n << 4n) | (0x3n << 12n) | (0x0300n << 16n) | (0x1n << 32n) | (0x7ffn << 52n), 1n | (1n << 11n) | 0x9000n, 0n, 0n);
    put(6, 0x9n | (1n << 4n) | (1n << 5n) | (0xfn << 12n) | (0x0400n << 16n) | (0x22n << 32n), (0x1abn << 3n) | (1n << 2n), 0xaaaan, 0xbbbbn);
    put(7, 0x5n | (1n << 4n) | (1n << 6n) | (1n << 7n), 0n, 0n, 0n);
    const sink = new RecordingSink();
    expect(q.consume(8 << 5, 0, sink)).toBe(8 << 5);
    expect(sink.all.map((x) => [x.name, x.position, x.fields])).toEqual([
      ['QI_CC', 0, { granularity: 3n, fm: 2n, did: 7n, sid: 0x108n }],
      ['QI_DEV_IOTLB', 1, { sid: 0x200n, pfsid: 0xan | (0x123n << 4n), mip: 5n, addr: 0x7000n, size: 1n }],
      ['QI_IEC', 2, { indexSelective: 1n, im: 3n, iidx: 0x55n }],
      ['QI_PASID_IOTLB', 3, { granularity: 2n, did: 9n, pasid: 0x12345n, addr: 0n, am: 0n, ih: 0n }],
      ['QI_PASID_CACHE', 4, { granularity: 1n, did: 9n, pasid: 0x12345n }],
      ['QI_PASID_DEV_IOTLB', 5, { sid: 0x300n, pfsid: 3n | (0x7ffn << 4n), pasid: 1n, mip: 4n, addr: 0x9000n, global: 1n, size: 1n }],
      ['QI_PGRP_RESP', 6, { rid: 0x400n, code: 0xfn, pasidPresent: 1n, privatePresent: 1n, lpig: 1n, prgi: 0x1abn, pasid: 0x22n, private0: 0xaaaan, private1: 0xbbbbn }],
      ['QI_IWD', 7, { interruptFlag: 1n, statusWrite: 0n, fence: 1n, pageDrain: 1n, statusData: 0n, statusAddr: 0n }],
    ]);
  });

  it('wraps IQH from the last entry to 0', async () => {
    const { q, put } = await setup(false);
    put(255, 0x4n);
    put(0, 0x4n);
    const sink = new RecordingSink();
    expect(q.consume(1 << 4, 255 << 4, sink)).toBe(1 << 4);
    expect(sink.all.map((x) => x.position)).toEqual([255, 0]);
  });

  const bad: [string, boolean, InvalidationQueueOptions, bigint[], number][] = [
    ['type 0', false, {}, [0x0n, 0n], IQEI_INVALID_TYPE],
    ['type 0xa (page-stream response, obsolete)', false, {}, [0xan, 0n], IQEI_INVALID_TYPE],
    ['type[6:4] set', false, {}, [0x4n | (1n << 9n), 0n], IQEI_INVALID_TYPE],
    ['a context-cache invalidation with qw1 set', false, {}, [0x1n | (1n << 4n), 1n], IQEI_RESERVED],
    ['a context-cache invalidation with G = 0', false, {}, [0x1n, 0n], IQEI_RESERVED],
    ['an IOTLB PSI with AM > MAMV', false, { mamv: 4 }, [0x2n | (3n << 4n), 5n], IQEI_RESERVED],
    ['a device-TLB invalidation with PFSID but no ECAP.DIT', false, {}, [0x3n | (1n << 12n), 0n], IQEI_RESERVED],
    ['a wait descriptor with PD but no ECAP.PDS', false, {}, [0x5n | (1n << 7n), 0n], IQEI_RESERVED],
    ['a wait descriptor with a status address not dword aligned', false, {}, [0x5n | (1n << 5n), 0x1002n], IQEI_RESERVED],
    ['a PASID-IOTLB invalidation in a 128-bit queue', false, {}, [0x6n | (2n << 4n), 0n], IQEI_INVALID_WIDTH],
    ['a PASID-cache invalidation in a 128-bit queue', false, {}, [0x7n, 0n], IQEI_INVALID_WIDTH],
    ['a PASID device-TLB invalidation in a 128-bit queue', false, {}, [0x8n, 0n], IQEI_INVALID_WIDTH],
    ['a PASID-IOTLB invalidation with G = 1', true, {}, [0x6n | (1n << 4n), 0n, 0n, 0n], IQEI_RESERVED],
    ['a PASID-cache invalidation with G = 2', true, {}, [0x7n | (2n << 4n), 0n, 0n, 0n], IQEI_RESERVED],
    ['qw2 set in a 256-bit queue', true, {}, [0x4n, 0n, 1n, 0n], IQEI_RESERVED],
    ['private data without the private-data bit', true, {}, [0x9n, 0n, 0n, 1n], IQEI_RESERVED],
  ];
  it.each(bad)('raises IQE at %s, IQH on the bad descriptor', async (_n, wide, opts, desc, iqei) => {
    const { q, put, width } = await setup(wide, opts);
    put(0, ...(wide ? [0x4n, 0n, 0n, 0n] : [0x4n, 0n]));
    put(1, ...desc);
    put(2, ...(wide ? [0x4n, 0n, 0n, 0n] : [0x4n, 0n]));
    const sink = new RecordingSink();
    expect(q.consume(3 * width, 0, sink)).toBe(width);
    expect(q.fsts).toBe(FSTS_IQE);
    expect(q.iqer).toBe(BigInt(iqei));
    expect(q.stop).toBe('error');
    expect(sink.all.map((x) => x.name)).toEqual(['QI_IEC']);
    // Nothing is fetched while IQE is set; after the RW1C clear the queue resumes at IQH.
    put(1, ...(wide ? [0x4n, 0n, 0n, 0n] : [0x4n, 0n]));
    expect(q.consume(3 * width, width, sink)).toBe(width);
    expect(q.stop).toBe('halted');
    q.clearFaults(FSTS_IQE);
    expect(q.consume(3 * width, width, sink)).toBe(3 * width);
  });

  it('raises IQE for a tail beyond the queue and for a misaligned 256-bit tail', async () => {
    const a = await setup(false);
    expect(a.q.consume(256 << 4, 0, new RecordingSink())).toBe(0);
    expect(a.q.iqer).toBe(BigInt(IQEI_INVALID_TAIL));
    const b = await setup(true);
    expect(b.q.consume(0x30, 0, new RecordingSink())).toBe(0);
    expect(b.q.iqer).toBe(BigInt(IQEI_TAIL_MISALIGNED));
  });

  it('raises IQE with a fetch error when the queue page is not RAM', async () => {
    const e = await engineOf(impl);
    const q = e.createInvalidationQueue();
    q.setBase(BASE, 0, false, () => false);
    expect(q.consume(0x10, 0, new RecordingSink())).toBe(0);
    expect(q.iqer).toBe(BigInt(IQEI_FETCH));
  });

  it('aborts the wait after a timed-out device-TLB invalidation with ITE and ITESID', async () => {
    const { q, put } = await setup(false);
    put(0, 0x3n | (0x0208n << 32n), 0x1000n);
    put(1, 0x5n | (1n << 5n) | (2n << 32n), 0x9000n);
    put(2, 0x4n);
    const sink = new RecordingSink([{ kind: 'timeout', sid: 0x0208 }]);
    expect(q.consume(3 << 4, 0, sink)).toBe(2 << 4);
    expect(q.fsts).toBe(FSTS_ITE);
    expect(q.iqer).toBe(0x0208n << 32n);
    expect(sink.all.map((x) => x.name)).toEqual(['QI_DEV_IOTLB']);
    expect(q.consume(3 << 4, 2 << 4, sink)).toBe(2 << 4);
    expect(q.stop).toBe('halted');
    q.clearFaults(FSTS_ITE);
    expect(q.consume(3 << 4, 2 << 4, sink)).toBe(3 << 4);
  });

  it('records ICE and ICESID and keeps going', async () => {
    const { q, put } = await setup(false);
    put(0, 0x3n | (0x0300n << 32n), 0x1000n);
    put(1, 0x5n | (1n << 5n), 0x9000n);
    const sink = new RecordingSink([{ kind: 'completion-error', sid: 0x0300 }]);
    expect(q.consume(2 << 4, 0, sink)).toBe(2 << 4);
    expect(q.fsts).toBe(FSTS_ICE);
    expect(q.iqer).toBe(0x0300n << 48n);
    expect(sink.all.map((x) => x.name)).toEqual(['QI_DEV_IOTLB', 'QI_IWD']);
  });
});
