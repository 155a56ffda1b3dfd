// The hardware observer: commands consumed (by either consumer, including the one a queue
// stopped at), walks and faults, with exact fields; and nothing at all without an observer.
import { describe, expect, it } from 'vitest';
import {
  CMDQ_OP,
  SMMU_CMD,
  smmuCommandEvent,
  vtdDescriptorEvent,
  type HardwareCommandEvent,
  type HardwareFaultEvent,
  type HardwareObserver,
  type HardwareWalkEvent,
} from '../src/index.js';
import { QUEUE_CONSUMERS, useQueueConsumer } from './support/consumers.js';
import { s1Setup } from './support/smmu-driver.js';
import { DEVFN, LinuxVtd, QI, SID, mapFs, req } from './vtd-linux.js';

function recorder() {
  const commands: HardwareCommandEvent[] = [];
  const walks: HardwareWalkEvent[] = [];
  const faults: HardwareFaultEvent[] = [];
  const observer: HardwareObserver = { command: (e) => commands.push(e), walk: (e) => walks.push(e), fault: (e) => faults.push(e) };
  return { observer, commands, walks, faults };
}

describe.each(QUEUE_CONSUMERS)('SMMUv3 observer, %s consumer', (consumer) => {
  useQueueConsumer(consumer);

  const setup = () => s1Setup();

  it('reports each command consumed with its fields, in queue order', () => {
    const { d } = setup();
    const r = recorder();
    d.smmu.observer = r.observer;
    d.tlbi(CMDQ_OP.TLBI_NH_VA, { ASID: 1, ADDR: 0x10_0000n >> 12n, LEAF: 1 });
    expect(r.commands).toEqual([
      { queue: 'cmdq', opcode: 'TLBI_NH_VA', fields: { ASID: '0x1', LEAF: '0x1', ADDR: '0x100' } },
      { queue: 'cmdq', opcode: 'CMD_SYNC', fields: { CS: '0x2' } },
    ]);
  });

  it('reports the command a queue stopped at with its CONS.ERR name', () => {
    const { d } = setup();
    const r = recorder();
    d.smmu.observer = r.observer;
    // SSec set: CERROR_ILL whichever consumer runs.
    d.issue([[SMMU_CMD.encode({ OPCODE: CMDQ_OP.CFGI_STE, SID: 3, SSEC: 1 })[0]!, 0n]]);
    expect(r.commands).toEqual([{ queue: 'cmdq', opcode: 'CFGI_STE', fields: { SSEC: '0x1', SID: '0x3' }, error: 'CERROR_ILL' }]);
  });

  it('reports a TLB-miss walk with the levels read, and a fault', () => {
    const { d, data, dev } = setup();
    const r = recorder();
    d.smmu.observer = r.observer;
    expect(dev.dma({ iova: 0x10_0010n, length: 4, write: false }).ok).toBe(true);
    expect(dev.dma({ iova: 0x10_0020n, length: 4, write: false }).ok).toBe(true); // TLB hit: no walk
    expect(dev.dma({ iova: 0x20_0000n, length: 4, write: true }).ok).toBe(false);
    expect(r.walks).toEqual([
      { streamId: 8, iova: 0x10_0010n, stage: 's1', levels: 4, result: { ok: true, pa: data, size: 0x1000n } },
      { streamId: 8, iova: 0x20_0000n, stage: 's1', result: { ok: false, fault: 'F_TRANSLATION' } },
    ]);
    expect(r.faults).toEqual([{ name: 'F_TRANSLATION', streamId: 8, iova: 0x20_0000n, write: true, recorded: true, stall: false }]);
  });

  it('costs nothing observable without an observer', () => {
    const { d, dev } = setup();
    d.tlbi(CMDQ_OP.TLBI_NH_ALL, {});
    expect(dev.dma({ iova: 0x10_0010n, length: 4, write: false }).ok).toBe(true);
    expect(d.smmu.observer).toBeUndefined();
  });
});

describe.each(QUEUE_CONSUMERS)('VT-d observer, %s consumer', (consumer) => {
  useQueueConsumer(consumer);

  it('reports descriptors, a first-stage walk and a fault', () => {
    const v = new LinuxVtd();
    v.bringUp();
    v.smContext(0, DEVFN);
    const root = v.page();
    const data = v.page();
    mapFs(v, root, 0x40_0000n, data, { levels: 4 });
    v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 5, fsptptr: root }));
    const r = recorder();
    v.iommu.observer = r.observer;
    v.submit([QI.iotlbDsi(5)]);
    expect(r.commands.map((c) => [c.queue, c.opcode])).toEqual([
      ['iq', 'iotlb_inv_dsc'],
      ['iq', 'inv_wait_dsc'],
    ]);
    expect(r.commands[0]!.fields).toEqual({ G: '0x2', DID: '0x5' });
    expect(v.iommu.translate(req(0x40_0008n)).ok).toBe(true);
    expect(v.iommu.translate(req(0x80_0000n, true)).ok).toBe(false);
    expect(r.walks).toEqual([
      { streamId: SID, pasid: 0, iova: 0x40_0008n, stage: 'first-stage', levels: 4, result: { ok: true, pa: data, size: 0x1000n } },
      { streamId: SID, pasid: 0, iova: 0x80_0000n, stage: 'first-stage', result: { ok: false, fault: 'SM_FS_NOT_PRESENT' } },
    ]);
    expect(r.faults).toEqual([{ name: 'SM_FS_NOT_PRESENT', streamId: SID, iova: 0x80_0000n, write: true, recorded: true, stall: false }]);
  });

  it('reports the descriptor the queue stopped at', () => {
    const v = new LinuxVtd();
    v.bringUp();
    const r = recorder();
    v.iommu.observer = r.observer;
    v.enqueue([[0xfn, 0n]]);
    expect(r.commands).toHaveLength(1);
    expect(r.commands[0]).toMatchObject({ queue: 'iq', opcode: 'descriptor type 0xf' });
    expect(r.commands[0]!.error).toMatch(/^IQE: /);
  });
});

describe('event builders', () => {
  it('names unknown opcodes and descriptor types by number', () => {
    expect(smmuCommandEvent('cmdq', 0x7fn, 0x1n)).toEqual({ queue: 'cmdq', opcode: 'opcode 0x7f', fields: { dw0: '0x7f', dw1: '0x1' } });
    expect(vtdDescriptorEvent([0xfn, 0n], 'IQE: bad')).toEqual({ queue: 'iq', opcode: 'descriptor type 0xf', fields: { qw0: '0xf', qw1: '0x0' }, error: 'IQE: bad' });
  });
});
