import { describe, expect, it } from 'vitest';
import {
  CMDQ_ERR,
  CMDQ_OP,
  SMMU_CMD_ATC_INV,
  SMMU_CMD_PRI_RESP,
  SMMU_CMD_SYNC,
  SMMU_PRIQ,
  SMMU_REG,
  typescriptCommandQueueConsumer,
  type CommandQueueConsumer,
} from '../src/index.js';
import { SmmuDriver } from './support/smmu-driver.js';
import { QUEUE_CONSUMERS, useQueueConsumer } from './support/consumers.js';

const SYNC_SEV: [bigint, bigint] = [SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: 2 })[0]!, 0n];
const cons = (d: SmmuDriver) => d.reg32(SMMU_REG.CMDQ_CONS);
const gerrorActive = (d: SmmuDriver) => d.reg32(SMMU_REG.GERROR) ^ d.reg32(SMMU_REG.GERRORN);

describe.each(QUEUE_CONSUMERS)('%s queue consumer', (consumer) => {
  useQueueConsumer(consumer);

  describe('SMMUv3 command queue', () => {
    it('consumes up to PROD across the wrap and counts opcodes', () => {
      const d = new SmmuDriver({ cmdqLog2: 2 });
      d.bringUp();
      // bring-up consumed 4 entries: PROD = CONS = 4 = index 0 with the wrap bit set.
      expect(cons(d)).toBe(4);
      d.issue([[BigInt(CMDQ_OP.PREFETCH_CONFIG) | (8n << 32n), 0n], SYNC_SEV, SYNC_SEV]);
      expect(cons(d)).toBe(7);
      d.issue([SYNC_SEV, SYNC_SEV]);
      expect(cons(d)).toBe(1); // index 1, wrap 0
      expect(d.smmu.commandCounts.get(CMDQ_OP.CMD_SYNC)).toBe(6);
      expect(d.smmu.interrupts.sev).toBe(6);
    });

    it('CERROR_ILL: CONS stays on the command, GERROR.CMDQ_ERR stops the queue until GERRORN', () => {
      const d = new SmmuDriver();
      d.bringUp();
      const before = cons(d);
      d.issue([[0x7fn, 0n], SYNC_SEV]); // unknown opcode
      expect(cons(d)).toBe(before | (CMDQ_ERR.ILL << 24));
      expect(gerrorActive(d)).toBe(1);
      expect(d.smmu.interrupts.gerror).toBe(1);
      d.issue([SYNC_SEV]); // still stopped
      expect(cons(d) & 0xfffff).toBe(before);
      // Linux skip-err: overwrite the bad entry with a CMD_SYNC, then acknowledge.
      d.mem.write64(d.cmdq + BigInt((before & 0xff) * 16), SYNC_SEV[0]);
      d.w32(SMMU_REG.GERRORN, d.reg32(SMMU_REG.GERROR));
      expect(gerrorActive(d)).toBe(0);
      expect(cons(d) & 0xfffff).toBe(before + 3);
    });

    it('ILL cases (reference §3.3, as the queue engine): SSec, stage-specific commands, ATC_INV without ATS, CS = 3', () => {
      const err = (opts: ConstructorParameters<typeof SmmuDriver>[0], cmd: [bigint, bigint]) => {
        const d = new SmmuDriver(opts);
        d.bringUp();
        d.issue([cmd]);
        return cons(d) >>> 24;
      };
      expect(err({}, [BigInt(CMDQ_OP.CFGI_STE) | (1n << 10n), 0n])).toBe(1);
      expect(err({}, [BigInt(CMDQ_OP.TLBI_NSNH_ALL) | (1n << 10n), 0n])).toBe(1);
      expect(err({ smmu: { stage1: false } }, [BigInt(CMDQ_OP.TLBI_NH_ASID), 0n])).toBe(1);
      expect(err({ smmu: { stage1: false } }, [BigInt(CMDQ_OP.CFGI_CD), 0n])).toBe(1);
      expect(err({ smmu: { stage1: false } }, [BigInt(CMDQ_OP.CFGI_CD_ALL), 0n])).toBe(1);
      expect(err({ smmu: { stage2: false } }, [BigInt(CMDQ_OP.TLBI_S2_IPA), 0n])).toBe(1);
      expect(err({ smmu: { stage2: false } }, [BigInt(CMDQ_OP.TLBI_S12_VMALL), 0n])).toBe(1);
      expect(err({ smmu: { ats: false } }, [BigInt(CMDQ_OP.ATC_INV), 0n])).toBe(1);
      expect(err({}, [BigInt(CMDQ_OP.CMD_SYNC) | (3n << 12n), 0n])).toBe(1);
      expect(err({}, [0x7fn, 0n])).toBe(1);
      // Accepted: EL2/EL3 TLBIs, range fields without RIL (RES0), ATC_INV Size > 52, PRI_RESP without PRI.
      expect(err({}, [BigInt(CMDQ_OP.TLBI_EL2_ALL), 0n])).toBe(0);
      expect(err({}, [BigInt(CMDQ_OP.TLBI_EL3_VA), 0n])).toBe(0);
      expect(err({ smmu: { ril: false } }, [BigInt(CMDQ_OP.TLBI_NH_VA) | (1n << 12n), 1n << 10n])).toBe(0);
      expect(err({}, [BigInt(CMDQ_OP.ATC_INV), 63n])).toBe(0);
      expect(err({ smmu: { pri: false } }, [BigInt(CMDQ_OP.PRI_RESP), 3n << 12n])).toBe(0);
      expect(err({ smmu: { stage2: false } }, [BigInt(CMDQ_OP.TLBI_NSNH_ALL), 0n])).toBe(0);
    });

    it('CERROR_ABT when the queue is not in RAM; ack retries', () => {
      const d = new SmmuDriver();
      d.bringUp();
      d.w32(SMMU_REG.CR0, 0x17); // CMDQEN off to move the queue
      d.w64(SMMU_REG.CMDQ_BASE, 0x2000_0000n | 4n);
      d.w32(SMMU_REG.CMDQ_PROD, 0);
      d.w32(SMMU_REG.CMDQ_CONS, 0);
      d.w32(SMMU_REG.CR0, 0x1f);
      d.w32(SMMU_REG.CMDQ_PROD, 1);
      expect(cons(d)).toBe(CMDQ_ERR.ABT << 24);
      expect(gerrorActive(d)).toBe(1);
    });

    it('CERROR_ATC_INV_SYNC: the SYNC after a timed-out ATC_INV fails, CONS points at it', () => {
      const d = new SmmuDriver();
      d.bringUp();
      d.machine.devices[0]!.atcInvalidationTimeout = true;
      const before = cons(d);
      d.issue([SMMU_CMD_ATC_INV.encode({ OPCODE: CMDQ_OP.ATC_INV, SID: 8, SIZE: 52 }) as [bigint, bigint]], true);
      expect(cons(d)).toBe((before + 1) | (CMDQ_ERR.ATC_INV_SYNC << 24));
      d.w32(SMMU_REG.GERRORN, d.reg32(SMMU_REG.GERROR));
      expect(cons(d) & 0xfffff).toBe(before + 2);
    });

    it('CMD_SYNC with CS=IRQ writes MSIData to MSIAddr (Linux MSI polling)', () => {
      const d = new SmmuDriver();
      d.bringUp();
      const slot = d.cmdq + BigInt((cons(d) & 0xff) * 16);
      d.issue([[SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: 1, MSH: 3, MSIATTR: 0xf, MSIDATA: 0 })[0]!, slot]]);
      expect(d.mem.read32(slot)).toBe(0);
      const target = d.mem.allocPages(1)[0]!;
      d.issue([SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: 1, MSIDATA: 0xfeed, MSIADDR: target >> 2n }) as [bigint, bigint]]);
      expect(d.mem.read32(target)).toBe(0xfeed);
      // No MSI support: a wired interrupt instead.
      const w = new SmmuDriver({ smmu: { msi: false } });
      w.bringUp();
      w.issue([SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: 1, MSIDATA: 1, MSIADDR: target >> 2n }) as [bigint, bigint]]);
      expect(w.smmu.interrupts.cmdSync).toBe(1);
    });

    it('consumes through a replaceable CommandQueueConsumer', () => {
      const d = new SmmuDriver();
      const seen: number[] = [];
      const spy: CommandQueueConsumer = {
        consume(ring, memory, executor) {
          seen.push(ring.prod);
          return typescriptCommandQueueConsumer.consume(ring, memory, executor);
        },
      };
      d.smmu.commandQueueConsumer = spy;
      d.bringUp();
      expect(seen.length).toBeGreaterThan(0);
    });
  });

  describe('SMMUv3 event and PRI queues', () => {
    it('toggles EVTQ_PROD.OVFLG when full and loses the record', () => {
      const d = new SmmuDriver({ evtqLog2: 1 });
      d.bringUp();
      const t = () => d.smmu.translate({ requesterId: 1, streamId: 5000, iova: 0n, write: false });
      expect(t()).toMatchObject({ fault: { recorded: true } });
      expect(t()).toMatchObject({ fault: { recorded: true } });
      expect(t()).toMatchObject({ fault: { recorded: false } });
      expect(d.reg32(0x10000 + SMMU_REG.EVTQ_PROD)).toBe(0x8000_0002);
      expect(t()).toMatchObject({ fault: { recorded: false } }); // still pending: no second toggle
      expect(d.reg32(0x10000 + SMMU_REG.EVTQ_PROD)).toBe(0x8000_0002);
      expect(d.smmu.interrupts.evtq).toBe(2);
      expect(d.events()).toHaveLength(2);
      // Linux acknowledges: CONS.OVACKFLG := PROD.OVFLG.
      d.w32(0x10000 + SMMU_REG.EVTQ_CONS, d.reg32(0x10000 + SMMU_REG.EVTQ_CONS) | 0x8000_0000);
      expect(t()).toMatchObject({ fault: { recorded: true } });
      expect(d.reg32(0x10000 + SMMU_REG.EVTQ_PROD)).toBe(0x8000_0003);
    });

    it('drops events while EVTQEN = 0 and raises EVTQ_ABT_ERR when the queue is not RAM', () => {
      const d = new SmmuDriver();
      d.bringUp();
      d.w32(SMMU_REG.CR0, 0x1b);
      const t = () => d.smmu.translate({ requesterId: 1, streamId: 5000, iova: 0n, write: false });
      expect(t()).toMatchObject({ fault: { recorded: false } });
      d.w64(SMMU_REG.EVTQ_BASE, 0x2000_0000n | 4n);
      d.w32(SMMU_REG.CR0, 0x1f);
      t();
      expect(gerrorActive(d)).toBe(1 << 2);
    });

    it('queues PRI page requests with the Linux record layout and delivers PRI_RESP', () => {
      const d = new SmmuDriver();
      d.bringUp();
      const dev = d.machine.devices[1]!; // SID 16
      expect(dev.pageRequest({ iova: 0x1234_5678n, write: true, pasid: 3, prgi: 0x1a5, last: true })).toBe(true);
      const rec = SMMU_PRIQ.fromBytes(d.mem.read(d.priq, 16));
      expect(rec).toEqual([16n | (3n << 32n) | (1n << 61n) | (1n << 62n) | (1n << 63n), 0x1a5n | 0x1234_5000n]);
      expect(d.reg32(0x10000 + SMMU_REG.PRIQ_PROD)).toBe(1);
      d.issue([SMMU_CMD_PRI_RESP.encode({ OPCODE: CMDQ_OP.PRI_RESP, SSV: 1, SSID: 3, SID: 16, PRGI: 0x1a5, RESP: 2 }) as [bigint, bigint]], true);
      expect(dev.pageResponses).toEqual([{ pasid: 3, prgi: 0x1a5, code: 2 }]);
    });

    it('PRIQ overflow toggles PRIQ_PROD.OVFLG; MSI_CMDQ_ABT_ERR when a CMD_SYNC MSI hits nothing', () => {
      const d = new SmmuDriver();
      d.bringUp();
      d.w32(SMMU_REG.CR0, 0x1d);
      d.w64(SMMU_REG.PRIQ_BASE, d.priq | 1n); // 2 entries
      d.w32(SMMU_REG.CR0, 0x1f);
      const dev = d.machine.devices[0]!;
      const req = () => dev.pageRequest({ iova: 0x1000n, write: false, prgi: 1, last: true });
      expect([req(), req(), req()]).toEqual([true, true, false]);
      expect(d.reg32(0x10000 + SMMU_REG.PRIQ_PROD)).toBe(0x8000_0002);
      d.issue([SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: 1, MSIADDR: 0x7000_0000n >> 2n }) as [bigint, bigint]]);
      expect(gerrorActive(d)).toBe(1 << 4);
      expect(cons(d) >>> 24).toBe(0); // the SYNC itself completed
    });

    it('signals programmed MSIs for GERROR', () => {
      const d = new SmmuDriver();
      d.bringUp();
      const doorbell = d.mem.allocPages(1)[0]!;
      d.w64(SMMU_REG.GERROR_IRQ_CFG0, doorbell);
      d.w32(SMMU_REG.GERROR_IRQ_CFG1, 0x42);
      d.issue([[0x7fn, 0n]]);
      expect(d.mem.read32(doorbell)).toBe(0x42);
    });
  });
});
