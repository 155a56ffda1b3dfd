/**
 * Queued invalidation as dmar.c drives it: descriptor builders named after the kernel's
 * `qi_desc_*` helpers, and {@link QueuedInvalidation.submitSync} with `qi_submit_sync`
 * semantics (descriptors + one status-write wait descriptor, IQT write, poll the status slot,
 * IQE recovery by overwriting the bad slot with the wait, ITE abort and resubmission).
 */
import { EINVAL, ETIMEDOUT } from '@iommufd/uapi';
import {
  VTD_DESC,
  VTD_FSTS,
  VTD_REG,
  VtdCcDesc,
  VtdDevTlbDesc,
  VtdIotlbDesc,
  VtdIqer,
  VtdPcDesc,
  VtdPdevTlbDesc,
  VtdPgrpRespDesc,
  VtdPiotlbDesc,
  VtdWaitDesc,
  type PhysicalMemory,
} from '@iommufd/hw-model';
import type { Status } from '@iommufd/driver-api';
import type { VtdRegisters } from './regs.js';

/** One invalidation descriptor as four 64-bit words (qw2/qw3 zero for 128-bit formats). */
export type QiDesc = readonly [bigint, bigint, bigint, bigint];

function desc(words: readonly bigint[]): QiDesc {
  return [words[0] ?? 0n, words[1] ?? 0n, words[2] ?? 0n, words[3] ?? 0n];
}

/** `QI_LENGTH`: slots in the invalidation queue. */
export const QI_LENGTH = 256;
/** `QI_DONE`: status data the wait descriptor writes. */
export const QI_DONE = 2;
/** `QI_IN_USE` / `QI_FREE` / `QI_ABORT` slot states. */
const QI_FREE = 0;
const QI_IN_USE = 1;
const QI_ABORT = 3;
/** `MAX_AGAW_PFN_WIDTH`: the address mask meaning "everything". */
export const MAX_AGAW_PFN_WIDTH = 52;
/** `QI_DEV_IOTLB_MAX_INVS`: a queue depth of 32 or more is encoded as 0. */
const QI_DEV_IOTLB_MAX_INVS = 32;

/** IOTLB invalidation granularity (`DMA_TLB_*_FLUSH` as descriptor G values). */
export const IOTLB_GRAN = { GLOBAL: 1, DSI: 2, PSI: 3 } as const;
/** Context-cache invalidation granularity (`DMA_CCMD_*_INVL`). */
export const CC_GRAN = { GLOBAL: 1, DOMAIN: 2, DEVICE: 3 } as const;
/** PASID-cache invalidation granularity (`QI_PC_*`). */
export const PC_GRAN = { ALL_PASIDS: 0, PASID_SEL: 1, GLOBAL: 3 } as const;

/** `qi_flush_context`'s descriptor (type 0x1). */
export function qiDescContext(did: number, sid: number, fm: number, gran: number): QiDesc {
  return desc(VtdCcDesc.encode({ TYPE: VTD_DESC.CC, G: gran, DID: did, SID: sid, FM: fm }));
}

/**
 * `qi_desc_iotlb` (type 0x2). The address is masked to 4 KiB, which is why an invalidation
 * hint OR-ed into `addr` by cache.c never reaches the descriptor.
 */
export function qiDescIotlb(cap: { drd: boolean; dwd: boolean }, did: number, addr: bigint, am: number, gran: number, ih = 0): QiDesc {
  return desc(
    VtdIotlbDesc.encode({ TYPE: VTD_DESC.IOTLB, G: gran, DR: cap.drd ? 1 : 0, DW: cap.dwd ? 1 : 0, DID: did, ADDR: addr & ~0xfffn, IH: ih, AM: am }),
  );
}

/** `qi_desc_piotlb` (type 0x6): npages -1 = all non-global mappings of (DID, PASID). */
export function qiDescPiotlb(did: number, pasid: number, addr: bigint, npages: bigint, ih: number): QiDesc {
  if (npages === -1n) return desc(VtdPiotlbDesc.encode({ TYPE: VTD_DESC.PIOTLB, G: 2, DID: did, PASID: pasid }));
  const mask = ilog2(roundupPowOfTwo(npages));
  const span = 4096n << BigInt(mask);
  const aligned = addr & ~(span - 1n);
  return desc(VtdPiotlbDesc.encode({ TYPE: VTD_DESC.PIOTLB, G: 3, DID: did, PASID: pasid, ADDR: aligned, IH: ih, AM: mask }));
}

/** Encodes an ATS invalidation range: S=1 and the low address bits set below the size (PCIe ATS rule). */
function atsAddress(addr: bigint, mask: number): { addr: bigint; s: number } {
  if (mask === 0) return { addr: addr & ~0xfffn, s: 0 };
  const a = BigInt.asUintN(64, addr | ((1n << BigInt(12 + mask - 1)) - 1n));
  return { addr: a & ~0xfffn, s: 1 };
}

/** `qi_desc_dev_iotlb` (type 0x3). */
export function qiDescDevIotlb(sid: number, pfsid: number, qdep: number, addr: bigint, mask: number): QiDesc {
  const a = atsAddress(addr, mask);
  return desc(
    VtdDevTlbDesc.encode({
      TYPE: VTD_DESC.DEV_TLB,
      SID: sid,
      MIP: qdep >= QI_DEV_IOTLB_MAX_INVS ? 0 : qdep,
      PFSID_LO: pfsid & 0xf,
      PFSID_HI: pfsid >> 4,
      ADDR: a.addr,
      S: a.s,
    }),
  );
}

/** `qi_desc_dev_iotlb_pasid` (type 0x8). */
export function qiDescDevIotlbPasid(sid: number, pfsid: number, pasid: number, qdep: number, addr: bigint, sizeOrder: number): QiDesc {
  const a = atsAddress(addr, sizeOrder);
  return desc(
    VtdPdevTlbDesc.encode({
      TYPE: VTD_DESC.PDEV_TLB,
      SID: sid,
      PASID: pasid,
      MIP: qdep >= QI_DEV_IOTLB_MAX_INVS ? 0 : qdep,
      PFSID_LO: pfsid & 0xf,
      PFSID_HI: pfsid >> 4,
      ADDR: a.addr,
      S: a.s,
    }),
  );
}

/** `pasid_cache_invalidation_with_pasid` / `qi_flush_pasid_cache` (type 0x7). */
export function qiDescPasidCache(did: number, gran: number, pasid: number): QiDesc {
  return desc(VtdPcDesc.encode({ TYPE: VTD_DESC.PC, G: gran, DID: did, PASID: pasid }));
}

/** The page-group response of `intel_iommu_page_response` (type 0x9; LPIG no longer set). */
export function qiDescPageGroupResponse(rid: number, pasid: number | undefined, code: number, prgIndex: number): QiDesc {
  return desc(
    VtdPgrpRespDesc.encode({ TYPE: VTD_DESC.PGRP_RESP, RID: rid, P: pasid !== undefined ? 1 : 0, PASID: pasid ?? 0, RC: code, PRGI: prgIndex }),
  );
}

/** The fence-only wait the PRQ drain puts first (`QI_IWD_STATUS_DATA(QI_DONE) | QI_IWD_FENCE`). */
export function qiDescFenceWait(): QiDesc {
  return desc(VtdWaitDesc.encode({ TYPE: VTD_DESC.WAIT, FN: 1, SDATA: QI_DONE }));
}

/** `__roundup_pow_of_two` on u64. */
export function roundupPowOfTwo(n: bigint): bigint {
  let p = 1n;
  while (p < n) p <<= 1n;
  return p;
}

/** `ilog2` of a power of two. */
export function ilog2(n: bigint): number {
  let i = 0;
  while (n > 1n) {
    n >>= 1n;
    i++;
  }
  return i;
}

/** One submitted batch, as the driver wrote it into the queue (for inspection and traces). */
export interface QiBatch {
  /** The descriptors of the caller, in order (the appended wait is not included). */
  readonly descs: readonly QiDesc[];
  /** The wait descriptor appended by `qi_submit_sync`. */
  readonly wait: QiDesc;
  /** Slot index of the first descriptor. */
  readonly index: number;
  /** 0, EINVAL (IQE on the first descriptor) or ETIMEDOUT. */
  readonly status: Status;
}

/** Options of one submission (`QI_OPT_WAIT_DRAIN`). */
export interface QiSubmitOptions {
  /** Add PD (page-request drain) to the wait descriptor. */
  readonly drain?: boolean;
}

/** The invalidation queue of one remapping unit as dmar.c manages it. */
export class QueuedInvalidation {
  /** Every batch submitted, oldest first (bounded to the last 4096). */
  readonly log: QiBatch[] = [];
  private freeHead = 0;
  private readonly status: bigint;
  private readonly shift: number;

  /**
   * @param regs - the unit's registers
   * @param mem - physical memory (queue and status slots)
   * @param base - physical base of the queue pages
   * @param wide - 256-bit descriptors (scalable mode)
   * @param statusPage - a page holding the `desc_status` slots the wait descriptors write
   * @param isDevicePresent - `pci_device_is_present` of the requester ID an ITE names
   */
  constructor(
    private readonly regs: VtdRegisters,
    private readonly mem: PhysicalMemory,
    readonly base: bigint,
    readonly wide: boolean,
    statusPage: bigint,
    private readonly isDevicePresent: (sid: number) => boolean,
  ) {
    this.status = statusPage;
    this.shift = wide ? 5 : 4;
  }

  private slotStatus(i: number): number {
    return this.mem.read32(this.status + BigInt(i * 4));
  }
  private setSlotStatus(i: number, v: number): void {
    this.mem.write32(this.status + BigInt(i * 4), v);
  }
  private writeSlot(i: number, d: QiDesc): void {
    const at = this.base + (BigInt(i) << BigInt(this.shift));
    const n = this.wide ? 4 : 2;
    for (let w = 0; w < n; w++) this.mem.write64(at + BigInt(w * 8), d[w]);
  }

  /**
   * `qi_submit_sync(iommu, desc, count, options)`: 0, EINVAL when the unit reported an
   * invalidation queue error on the batch's first descriptor, ETIMEDOUT when a device-TLB
   * invalidation timed out for a device that is gone. A device-TLB time-out of a present
   * device aborts the batch and resubmits it (-EAGAIN loop).
   */
  submitSync(descs: readonly QiDesc[], options: QiSubmitOptions = {}): Status {
    for (;;) {
      const r = this.submitOnce(descs, options);
      if (r !== 'again') return r;
    }
  }

  private submitOnce(descs: readonly QiDesc[], options: QiSubmitOptions): Status | 'again' {
    const index = this.freeHead;
    const waitIndex = (index + descs.length) % QI_LENGTH;
    descs.forEach((d, i) => {
      const slot = (index + i) % QI_LENGTH;
      this.writeSlot(slot, d);
      this.setSlotStatus(slot, QI_IN_USE);
    });
    const wait = desc(
      VtdWaitDesc.encode({ TYPE: VTD_DESC.WAIT, SW: 1, PD: options.drain === true ? 1 : 0, SDATA: QI_DONE, SADDR: this.status + BigInt(waitIndex * 4) }),
    );
    this.writeSlot(waitIndex, wait);
    this.setSlotStatus(waitIndex, QI_IN_USE);
    this.freeHead = (waitIndex + 1) % QI_LENGTH;
    this.regs.write32(VTD_REG.IQT, this.freeHead << this.shift);
    let status: Status | 'again' = 0;
    // Hardware in the model runs on the IQT write; each fault check below may let it resume.
    for (let polls = 0; this.slotStatus(waitIndex) !== QI_DONE; polls++) {
      const rc = this.checkFault(index, waitIndex);
      if (rc !== 0) {
        status = rc;
        break;
      }
      if (polls > QI_LENGTH) throw new Error(`invalidation queue stalled at IQH=${this.regs.read64(VTD_REG.IQH)}: the unit stopped fetching`);
    }
    for (let i = 0; i <= descs.length; i++) this.setSlotStatus((index + i) % QI_LENGTH, QI_FREE);
    this.log.push({ descs, wait, index, status: status === 'again' ? 0 : status });
    if (this.log.length > 4096) this.log.shift();
    return status;
  }

  /** `qi_check_fault`. */
  private checkFault(index: number, waitIndex: number): Status | 'again' {
    const fault = this.regs.read32(VTD_REG.FSTS);
    if (fault & VTD_FSTS.IQE) {
      const head = Number(this.regs.read64(VTD_REG.IQH) >> BigInt(this.shift));
      if (head === index) {
        // Overwrite the bad descriptor with our wait so hardware completes the batch.
        const at = this.base + (BigInt(waitIndex) << BigInt(this.shift));
        const copy = desc([this.mem.read64(at), this.mem.read64(at + 8n), 0n, 0n]);
        this.writeSlot(head, copy);
        this.regs.write32(VTD_REG.FSTS, VTD_FSTS.IQE);
        return EINVAL;
      }
    }
    if (fault & VTD_FSTS.ITE) {
      const iqh = Number(this.regs.read64(VTD_REG.IQH) >> BigInt(this.shift));
      const iqt = Number(this.regs.read64(VTD_REG.IQT) >> BigInt(this.shift));
      const iter = VtdIqer.f.ITESID.get([this.regs.read64(VTD_REG.IQER)]);
      this.regs.write32(VTD_REG.FSTS, VTD_FSTS.ITE);
      // Every slot still in use between the faulting descriptor and the tail is aborted.
      for (let h = (iqh - 1 + QI_LENGTH) % QI_LENGTH; ; h = (h - 1 + QI_LENGTH) % QI_LENGTH) {
        if (this.slotStatus(h) === QI_IN_USE) this.setSlotStatus(h, QI_ABORT);
        if (h === index) break;
      }
      void iqt;
      if (iter !== 0 && !this.isDevicePresent(iter)) return ETIMEDOUT;
      if (this.slotStatus(waitIndex) === QI_ABORT) return 'again';
    }
    if (fault & VTD_FSTS.ICE) this.regs.write32(VTD_REG.FSTS, VTD_FSTS.ICE);
    return 0;
  }
}
