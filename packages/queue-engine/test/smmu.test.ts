import { describe, expect, it } from 'vitest';
import {
  CERROR_ABT, CERROR_ATC_INV_SYNC, CERROR_ILL, CERROR_NONE, CMDQ_OP_ATC_INV, CMDQ_OP_CFGI_CD, CMDQ_OP_CFGI_STE,
  CMDQ_OP_CMD_SYNC, CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_TLBI_NH_VA, CMDQ_OP_TLBI_S2_IPA, QueueEngineError,
} from '../src/index.js';
import { IMPLS, RecordingSink, engineOf, words64, writeWords } from './helpers.js';

const BASE = 0x8000_0000n;

describe.each(IMPLS)('SMMU command queue (%s)', (impl) => {
  async function setup(opts: Parameters<Awaited<ReturnType<typeof engineOf>>['createSmmuQueue']>[0] = {}, log2 = 3) {
    const e = await engineOf(impl);
    const q = e.createSmmuQueue(opts);
    q.setBase(BASE, log2);
    const put = (i: number, dw0: bigint, dw1 = 0n) => writeWords(e.store, BASE + BigInt(i * 16), [dw0, dw1]);
    return { e, q, put };
  }

  it('returns CONS unchanged on an empty queue', async () => {
    const { q } = await setup();
    const sink = new RecordingSink();
    expect(q.consume(5, 5, sink)).toBe(5);
    expect(q.stop).toBe('empty');
    expect(sink.batches).toEqual([]);
  });

  it('executes TLBI_NH_VA into an exact effect record', async () => {
    const { q, put } = await setup();
    // NUM 3, SCALE 2, VMID 0x2a, ASID 0xbeef; Leaf, TTL 3, TG 1, VA 0x1234_5678_9000.
    put(0, 0x12n | (3n << 12n) | (2n << 20n) | (0x2an << 32n) | (0xbeefn << 48n), 1n | (3n << 8n) | (1n << 10n) | 0x1234_5678_9000n);
    const sink = new RecordingSink();
    expect(q.consume(1, 0, sink)).toBe(1);
    expect(words64(sink.batches[0]!)).toEqual([
      0x12n, // kind, position 0
      0x2an | (0xbeefn << 16n),
      0x1234_5678_9000n,
      1n | (3n << 8n) | (1n << 10n) | (3n << 16n) | (2n << 24n),
    ]);
    expect(sink.all[0]).toEqual({
      kind: 0x12, name: 'TLBI_NH_VA', position: 0,
      fields: { vmid: 0x2an, asid: 0xbeefn, addr: 0x1234_5678_9000n, leaf: 1n, ttl: 3n, tg: 1n, num: 3n, scale: 2n },
    });
  });

  it('completes CMD_SYNC with its MSI write described in the effect', async () => {
    const { q, put } = await setup();
    put(0, 0x46n | (1n << 12n) | (3n << 22n) | (0xfn << 24n) | (0xdeadbeefn << 32n), 0x1234_5678_9abfn);
    const sink = new RecordingSink();
    q.consume(1, 0, sink);
    expect(sink.all[0]!.fields).toEqual({ cs: 1n, msh: 3n, msiAttr: 0xfn, msiData: 0xdeadbeefn, msiAddr: 0x1234_5678_9abcn });
    expect(q.lastSyncData).toBe(0xdeadbeef);
  });

  it('decodes every opcode into its declared fields', async () => {
    const { q, put } = await setup({}, 5);
    const cmds: [bigint, bigint, string, Record<string, bigint>][] = [
      [0x01n | (1n << 11n) | (0x12345n << 12n) | (0x77n << 32n), 0n, 'PREFETCH_CONFIG', { sid: 0x77n, ssid: 0x12345n, ssv: 1n }],
      [0x02n | (0x77n << 32n), 0xabc000n | 0x13n, 'PREFETCH_ADDR', { sid: 0x77n, ssid: 0n, ssv: 0n, addr: 0xabc000n, size: 0x13n }],
      [0x03n | (0x9n << 32n), 1n, 'CFGI_STE', { sid: 9n, leaf: 1n }],
      [0x04n | (0x9n << 32n), 31n, 'CFGI_STE_RANGE', { sid: 9n, range: 31n }],
      [0x05n | (1n << 11n) | (0x3n << 12n) | (0x9n << 32n), 1n, 'CFGI_CD', { sid: 9n, ssid: 3n, ssv: 1n, leaf: 1n }],
      [0x06n | (0xffffffffn << 32n), 0n, 'CFGI_CD_ALL', { sid: 0xffffffffn }],
      [0x10n | (0x2an << 32n), 0n, 'TLBI_NH_ALL', { vmid: 0x2an }],
      [0x11n | (0x2an << 32n) | (5n << 48n), 0n, 'TLBI_NH_ASID', { vmid: 0x2an, asid: 5n }],
      [0x13n | (0x2an << 32n), 0x5000n, 'TLBI_NH_VAA', { vmid: 0x2an, addr: 0x5000n, leaf: 0n, ttl: 0n, tg: 0n, num: 0n, scale: 0n }],
      [0x18n, 0n, 'TLBI_EL3_ALL', {}],
      [0x1an, 0x7000n, 'TLBI_EL3_VA', { addr: 0x7000n, leaf: 0n, ttl: 0n, tg: 0n, num: 0n, scale: 0n }],
      [0x20n, 0n, 'TLBI_EL2_ALL', {}],
      [0x21n | (6n << 48n), 0n, 'TLBI_EL2_ASID', { asid: 6n }],
      [0x22n | (6n << 48n), 0x8001n, 'TLBI_EL2_VA', { asid: 6n, addr: 0x8000n, leaf: 1n, ttl: 0n, tg: 0n, num: 0n, scale: 0n }],
      [0x23n, 0x9000n, 'TLBI_EL2_VAA', { addr: 0x9000n, leaf: 0n, ttl: 0n, tg: 0n, num: 0n, scale: 0n }],
      [0x28n | (0x2an << 32n), 0n, 'TLBI_S12_VMALL', { vmid: 0x2an }],
      [0x2an | (0x2an << 32n), 0xfff0_0000_0000_1000n, 'TLBI_S2_IPA', { vmid: 0x2an, addr: 0x0000_0000_0000_1000n, leaf: 0n, ttl: 0n, tg: 0n, num: 0n, scale: 0n }],
      [0x30n, 0n, 'TLBI_NSNH_ALL', {}],
      [0x40n | (1n << 9n) | (1n << 11n) | (0x42n << 12n) | (0x8000n << 32n), 0x40000n | 52n, 'ATC_INV', { sid: 0x8000n, ssid: 0x42n, ssv: 1n, global: 1n, addr: 0x40000n, size: 52n }],
      [0x41n | (0x8000n << 32n), 0x1ffn | (2n << 12n), 'PRI_RESP', { sid: 0x8000n, ssid: 0n, ssv: 0n, prgi: 0x1ffn, resp: 2n }],
      [0x44n | (1n << 12n) | (0x8000n << 32n), 0xabcdn, 'RESUME', { sid: 0x8000n, stag: 0xabcdn, action: 1n }],
      [0x45n | (0x8000n << 32n), 0n, 'STALL_TERM', { sid: 0x8000n }],
    ];
    cmds.forEach(([d0, d1], i) => put(i, d0, d1));
    const sink = new RecordingSink();
    expect(q.consume(cmds.length, 0, sink)).toBe(cmds.length);
    expect(sink.all.map((x) => [x.name, x.fields])).toEqual(cmds.map(([, , name, fields]) => [name, fields]));
    expect(q.executed(CMDQ_OP_CFGI_STE)).toBe(1);
  });

  it('wraps: consumes index 3 then 0 of a 4-entry queue and toggles the wrap bit', async () => {
    const { q, put } = await setup({}, 2);
    put(3, 0x30n);
    put(0, 0x46n);
    const sink = new RecordingSink();
    expect(q.consume(0b101, 0b011, sink)).toBe(0b101);
    expect(sink.all.map((x) => [x.name, x.position])).toEqual([['TLBI_NSNH_ALL', 3], ['CMD_SYNC', 4]]);
  });

  it('consumes a full queue (PROD index = CONS index, wrap different)', async () => {
    const { q, put } = await setup({}, 2);
    for (let i = 0; i < 4; i++) put(i, 0x30n);
    const sink = new RecordingSink();
    expect(q.consume(0b100, 0b000, sink)).toBe(0b100);
    expect(sink.all).toHaveLength(4);
  });

  const illegal: [string, Parameters<Awaited<ReturnType<typeof engineOf>>['createSmmuQueue']>[0], bigint, bigint][] = [
    ['an unknown opcode', {}, 0x07n, 0n],
    ['SSec set on the Non-secure queue', {}, BigInt(CMDQ_OP_CFGI_STE) | (1n << 10n), 0n],
    ['CFGI_CD without stage 1', { s1p: false }, BigInt(CMDQ_OP_CFGI_CD), 0n],
    ['TLBI_NH_ASID without stage 1', { s1p: false }, BigInt(CMDQ_OP_TLBI_NH_ASID), 0n],
    ['TLBI_S2_IPA without stage 2', { s2p: false }, BigInt(CMDQ_OP_TLBI_S2_IPA), 0n],
    ['ATC_INV without ATS', { ats: false }, BigInt(CMDQ_OP_ATC_INV), 0n],
    ['CMD_SYNC with the reserved CS encoding', {}, BigInt(CMDQ_OP_CMD_SYNC) | (3n << 12n), 0n],
  ];
  it.each(illegal)('stops with CERROR_ILL at %s, after executing the commands before it', async (_n, opts, d0, d1) => {
    const { q, put } = await setup(opts);
    put(0, 0x30n);
    put(1, d0, d1);
    put(2, 0x46n);
    const sink = new RecordingSink();
    const cons = q.consume(3, 0, sink);
    expect(cons).toBe((CERROR_ILL << 24) | 1);
    expect(q.error).toBe(CERROR_ILL);
    expect(q.stop).toBe('error');
    expect(sink.all.map((x) => x.name)).toEqual(['TLBI_NSNH_ALL']);
  });

  it('stops with CERROR_ABT when the ring page is not RAM, keeping CONS bits above the pointer', async () => {
    const e = await engineOf(impl);
    const q = e.createSmmuQueue();
    q.setBase(BASE, 3, () => false);
    expect(q.consume(2, 0x8000_0000, new RecordingSink())).toBe((0x8000_0000 | (CERROR_ABT << 24)) >>> 0);
    expect(q.error).toBe(CERROR_ABT);
  });

  it('reports CERROR_ATC_INV_SYNC on the SYNC after a timed-out ATC_INV, and completes the SYNC on retry', async () => {
    const { q, put } = await setup();
    put(0, 0x40n | (0x8000n << 32n), 52n);
    put(1, 0x12n);
    put(2, 0x46n);
    const sink = new RecordingSink([{ kind: 'timeout', sid: 0x8000 }]);
    const cons = q.consume(3, 0, sink);
    expect(cons).toBe((CERROR_ATC_INV_SYNC << 24) | 2);
    expect(sink.batches).toHaveLength(1); // ATC_INV + NH_VA flushed before the SYNC
    expect(sink.all.map((x) => x.name)).toEqual(['ATC_INV', 'TLBI_NH_VA']);
    // Software acknowledges GERROR and the SMMU retries the SYNC at CONS.
    const again = q.consume(3, cons, sink);
    expect(again).toBe((CERROR_ATC_INV_SYNC << 24) | 3); // ERR keeps the last code, CONS passed the SYNC
    expect(q.stop).toBe('empty');
    expect(sink.all.map((x) => x.name)).toEqual(['ATC_INV', 'TLBI_NH_VA', 'CMD_SYNC']);
  });

  it('delivers effects in batches of the buffer capacity, in order', async () => {
    const { q, put } = await setup({ effectsCapacity: 2 });
    for (let i = 0; i < 5; i++) put(i, 0x10n | (BigInt(i) << 32n));
    const sink = new RecordingSink();
    expect(q.consume(5, 0, sink)).toBe(5);
    expect(sink.decoded.map((b) => b.map((x) => x.fields['vmid']))).toEqual([[0n, 1n], [2n, 3n], [4n]]);
  });

  it('requires a sink when effects are on, and none when they are off', async () => {
    const { q, put } = await setup();
    put(0, 0x30n);
    expect(() => q.consume(1, 0)).toThrow(QueueEngineError);
    const { q: q2, put: put2 } = await setup({ effectsCapacity: 0 });
    put2(0, 0x30n);
    expect(q2.consume(1, 0)).toBe(1);
    expect(q2.executed(0x30)).toBe(1);
  });

  it('keeps an execution log of the executed commands', async () => {
    const { q, put } = await setup({ effectsCapacity: 0 });
    q.setExecutionLog(64);
    put(0, 0x11n | (7n << 48n), 0n);
    put(1, 0x46n | (9n << 32n), 0n);
    q.consume(2, 0);
    expect(words64(q.executionLog())).toEqual([0x11n | (7n << 48n), 0n, 0x46n | (9n << 32n), 0n]);
  });

  it('stops with log-full rather than dropping a log entry', async () => {
    const { q, put } = await setup({ effectsCapacity: 0 });
    q.setExecutionLog(16);
    put(0, 0x30n);
    put(1, 0x30n);
    expect(q.consume(2, 0)).toBe(1);
    expect(q.stop).toBe('log-full');
  });

  it('rejects bad geometry with a typed error', async () => {
    const e = await engineOf(impl);
    const q = e.createSmmuQueue();
    expect(() => q.consume(0, 0)).toThrow(/setBase/);
    expect(() => q.setBase(0x8000_0008n, 3)).toThrow(/aligned/);
    expect(() => q.setBase(0x8000_0000n, 20)).toThrow(/log2size/);
  });

  describe('guest-owned VCMDQ', () => {
    const streams: [number, number][] = [[0x10, 0x8010], [0x11, 0x8011]];
    it('stamps the VINTF VMID and replaces matched SIDs', async () => {
      const { q, put } = await setup({ kind: 'vcmdq-guest', vmid: 0x77, streams });
      put(0, 0x12n | (0x1234n << 32n) | (5n << 48n), 0x3000n);
      put(1, 0x11n | (5n << 48n));
      put(2, 0x40n | (0x11n << 32n), 52n);
      put(3, 0x46n);
      const sink = new RecordingSink();
      expect(q.consume(4, 0, sink)).toBe(4);
      expect(sink.all.map((x) => [x.name, x.fields['vmid'] ?? x.fields['sid'] ?? null])).toEqual([
        ['TLBI_NH_VA', 0x77n], ['TLBI_NH_ASID', 0x77n], ['ATC_INV', 0x8011n], ['CMD_SYNC', null],
      ]);
    });
    it.each([
      ['CFGI_STE', 0x03n],
      ['TLBI_NH_ALL', 0x10n],
      ['TLBI_NH_VAA', 0x13n],
      ['ATC_INV of an unmatched vSID', 0x40n | (0x99n << 32n)],
    ])('refuses %s with CERROR_ILL', async (_n, d0) => {
      const { q, put } = await setup({ kind: 'vcmdq-guest', vmid: 1, streams });
      put(0, d0);
      expect(q.consume(1, 0, new RecordingSink())).toBe(CERROR_ILL << 24);
    });
  });

  it('reports CERROR_NONE as 0', () => {
    expect(CERROR_NONE).toBe(0);
  });
});
