/**
 * NVIDIA Tegra241 CMDQV (`tegra241-cmdqv.c`): VINTF0 with preallocated logical VCMDQs the
 * host uses as extra command queues, and guest-owned VINTFs handed to user space as the
 * TEGRA241_CMDQV vIOMMU — the VINTF page0 mmap-able through iommufd, HW_QUEUEs mapped as
 * LVCMDQs, vDEVICEs programmed into the VINTF's SID match/replace slots.
 */
import {
  EEXIST,
  EINVAL,
  EIO,
  ENOSPC,
  ENXIO,
  EOPNOTSUPP,
  IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV,
  IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV,
  IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV,
  iommu_hw_info_tegra241_cmdqv,
  iommu_viommu_tegra241_cmdqv,
  iommu_vevent_tegra241_cmdqv,
  IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV,
} from '@iommufd/uapi';
import {
  HW_QUEUE_STRUCT_SIZE,
  IOMMUFD_HW_QUEUE,
  IOMMUFD_VDEVICE,
  IOMMUFD_VIOMMU,
  VDEVICE_STRUCT_SIZE,
  VIOMMU_STRUCT_SIZE,
  containerOf,
  coreMember,
  defineDriverStruct,
  dptr,
  du16,
  du32,
  du64,
  hwQueueDepend,
  hwQueueUndepend,
  iommuCopyStructFromUser,
  iommuCopyStructToUser,
  pointee,
  vdeviceToDevice,
  viommuAllocMmap,
  viommuDestroyMmap,
  viommuReportEvent,
  type HwInfoResult,
  type IommufdHwQueue,
  type IommufdVdevice,
  type IommufdViommu,
  type IommufdViommuOps,
  type IommuUserData,
  type Status,
} from '@iommufd/driver-api';
import {
  CMDQV_CMDQ_ALLOC,
  CMDQV_PARAM,
  SMMU_IDR1,
  SMMU_CMD_SYNC,
  CMDQ_OP,
  CMD_SYNC_CS,
  SMMU_MMIO_SIZE,
  TEGRA241_CMDQV_REG,
  VCMDQ_BASE,
  VINTF_CONFIG,
  VINTF_SID_MATCH,
} from '@iommufd/hw-model';
import type { CmdqEnt } from './cmds.js';
import { CommandQueue } from './cmdq.js';
import { masterOf } from './domain.js';
import { armVsmmuCacheInvalidate, armVsmmuOps, type ArmVsmmu } from './iommufd.js';
import type { ArmSmmuV3, SmmuImpl } from './smmu.js';

const R = TEGRA241_CMDQV_REG;
/** `CMDQ_MAX_SZ_SHIFT` */
const CMDQ_MAX_SZ_SHIFT = 18;
/** `CMDQ_ENT_SZ_SHIFT` */
const CMDQ_ENT_SZ_SHIFT = 4;
/** A VINTF page (64 KiB), what user space mmaps. */
const SZ_64K = 0x10000n;

/** A VINTF's host-side state. */
interface Vintf {
  readonly idx: number;
  hypOwn: boolean;
  enabled: boolean;
  vmid: number;
  readonly lvcmdqs: (Vcmdq | undefined)[];
  readonly sids: Set<number>;
  mmapOffset: bigint;
  /** The vIOMMU of a user VINTF. */
  viommu: IommufdViommu | undefined;
}

/** A logical VCMDQ (`struct tegra241_vcmdq`). */
interface Vcmdq {
  /** Global VCMDQ index. */
  readonly idx: number;
  readonly lidx: number;
  readonly vintf: Vintf;
  /** Register offsets relative to the SMMU base. */
  readonly page0: number;
  readonly page1: number;
  /** VCMDQ_BASE value. */
  qBase: bigint;
  /** Host queue (VINTF0 only). */
  cmdq: CommandQueue | undefined;
  enabled: boolean;
  prev: IommufdHwQueue | undefined;
}

/** `struct tegra241_vintf`: the vIOMMU; its leading fields are `struct arm_vsmmu`'s. */
export const tegra241_vintf = defineDriverStruct('tegra241_vintf', [
  coreMember('core', IOMMUFD_VIOMMU),
  dptr('smmu', pointee<ArmSmmuV3>()),
  dptr('s2_parent', pointee<unknown>()),
  du16('vmid'),
  du16('idx'),
  du64('mmap_offset'),
  dptr('state', pointee<Vintf>()),
]);

/** `struct tegra241_vcmdq`: a guest LVCMDQ as an iommufd HW queue. */
export const tegra241_vcmdq = defineDriverStruct('tegra241_vcmdq', [
  coreMember('core', IOMMUFD_HW_QUEUE),
  du16('idx'),
  du16('lidx'),
  du64('q_base'),
  dptr('state', pointee<Vcmdq>()),
]);

/** `struct tegra241_vintf_sid`: a vDEVICE with its SID slot. */
export const tegra241_vintf_sid = defineDriverStruct('tegra241_vintf_sid', [
  coreMember('core', IOMMUFD_VDEVICE),
  dptr('vintf', pointee<Vintf>()),
  du32('sid'),
  du16('idx'),
]);

/** The CMDQV attached to an SMMU (`struct tegra241_cmdqv`). */
export class Tegra241Cmdqv implements SmmuImpl {
  /** Number of VINTFs. */
  readonly numVintfs: number;
  /** Number of global VCMDQs. */
  readonly numVcmdqs: number;
  /** LVCMDQs per VINTF. */
  readonly numLvcmdqsPerVintf: number;
  /** SID match/replace slots per VINTF. */
  readonly numSidsPerVintf: number;
  /** VINTFs by index (0 = host). */
  readonly vintfs: (Vintf | undefined)[];

  constructor(
    private readonly smmu: ArmSmmuV3,
    /** Offset of the CMDQV frame from the SMMU base. */
    readonly offset: number,
  ) {
    const param = [BigInt(this.read(R.PARAM))];
    this.numVintfs = 1 << CMDQV_PARAM.num(param, 'NUM_VINTF_LOG2');
    this.numVcmdqs = 1 << CMDQV_PARAM.num(param, 'NUM_VCMDQ_LOG2');
    this.numLvcmdqsPerVintf = this.numVcmdqs / this.numVintfs;
    this.numSidsPerVintf = 1 << CMDQV_PARAM.num(param, 'NUM_SID_PER_VM_LOG2');
    this.vintfs = new Array<Vintf | undefined>(this.numVintfs).fill(undefined);
    // init_structures: VINTF0 for the kernel, with every LVCMDQ preallocated.
    const v0 = this.initVintf(0, { hypOwn: true });
    if (v0 === undefined) throw new Error('VINTF0 is taken');
    for (let lidx = 0; lidx < this.numLvcmdqsPerVintf; lidx++) {
      const q = this.initLvcmdq(v0, lidx);
      const shift = Math.min(CMDQ_MAX_SZ_SHIFT, SMMU_IDR1.num([BigInt(smmu.readReg(0x04))], 'CMDQS'));
      const bytes = 16n << BigInt(shift);
      const base = smmu.memory.allocPages(Number(bytes / 4096n), { align: bytes })[0]!;
      q.cmdq = new CommandQueue(smmu, base, shift, q.page0 + R.VCMDQ_PROD, q.page0 + R.VCMDQ_CONS, true);
      q.qBase = VCMDQ_BASE.encode({ ADDR: base >> 5n, LOG2SIZE: shift })[0]!;
    }
  }

  /** Physical address of the CMDQV frame. */
  get basePhys(): bigint {
    return this.smmu.base + BigInt(this.offset);
  }

  private read(reg: number): number {
    return this.smmu.readReg(this.offset + reg);
  }
  private write(reg: number, v: number): void {
    this.smmu.writeReg(this.offset + reg, v);
  }
  private vintfReg(v: Vintf, reg: number): number {
    return R.VINTF_BASE + R.VINTF_STRIDE * v.idx + reg;
  }

  /** `*_write_config`: write, then poll the STATUS ENABLED bit. */
  private writeConfig(cfg: number, status: number, value: number): Status {
    this.write(cfg, value);
    for (let i = 0; i < 4; i++) if ((this.read(status) & 1) === (value & 1)) return 0;
    this.smmu.log(`CMDQV: timeout waiting for 0x${status.toString(16)}`);
    return ENXIO;
  }

  /** `tegra241_cmdqv_init_vintf`: lowest free index ≤ `maxIdx`. */
  private initVintf(maxIdx: number, o: { hypOwn: boolean }): Vintf | undefined {
    for (let idx = 0; idx <= maxIdx; idx++) {
      if (this.vintfs[idx] === undefined) {
        const v: Vintf = { idx, hypOwn: o.hypOwn, enabled: false, vmid: 0, lvcmdqs: new Array(this.numLvcmdqsPerVintf).fill(undefined), sids: new Set(), mmapOffset: 0n, viommu: undefined };
        this.vintfs[idx] = v;
        return v;
      }
    }
    return undefined;
  }

  /** `tegra241_vintf_init_lvcmdq` */
  private initLvcmdq(vintf: Vintf, lidx: number): Vcmdq {
    const page0 = this.offset + R.VINTF_PAGE0 + R.VINTF_PAGE_STRIDE * vintf.idx + R.VCMDQ_STRIDE * lidx;
    const q: Vcmdq = { idx: vintf.idx * this.numLvcmdqsPerVintf + lidx, lidx, vintf, page0, page1: page0 + 0x10000, qBase: 0n, cmdq: undefined, enabled: false, prev: undefined };
    vintf.lvcmdqs[lidx] = q;
    return q;
  }

  /** `tegra241_cmdqv_hw_reset` */
  deviceReset(): Status {
    const cfg = this.read(R.CONFIG);
    let st = this.writeConfig(R.CONFIG, R.STATUS, cfg & ~1);
    if (st !== 0) return st;
    st = this.writeConfig(R.CONFIG, R.STATUS, cfg | 1);
    if (st !== 0) return st;
    // Static assignment: global VCMDQ q → (VINTF q / per-VINTF, LVCMDQ q % per-VINTF), unmapped.
    let qidx = 0;
    for (let idx = 0; idx < this.numVintfs; idx++) {
      for (let lidx = 0; lidx < this.numLvcmdqsPerVintf; lidx++) {
        this.write(R.CMDQ_ALLOC + 4 * qidx++, Number(CMDQV_CMDQ_ALLOC.encode({ VINTF: idx, LVCMDQ: lidx })[0]!));
      }
    }
    return this.vintfHwInit(this.vintfs[0]!, true);
  }

  private vcmdqWriteConfig(q: Vcmdq, v: number): Status {
    this.smmu.writeReg(q.page0 + R.VCMDQ_CONFIG, v);
    for (let i = 0; i < 4; i++) if ((this.smmu.readReg(q.page0 + R.VCMDQ_STATUS) & 1) === (v & 1)) {
      q.enabled = (v & 1) === 1;
      return 0;
    }
    return ENXIO;
  }

  /** `tegra241_vcmdq_hw_deinit`: disable, flush ATC timeouts through the main CMDQ, clear, ack errors. */
  private vcmdqHwDeinit(q: Vcmdq): void {
    if (this.vcmdqWriteConfig(q, 0) !== 0) this.smmu.log(`VINTF${q.vintf.idx}/LVCMDQ${q.lidx}: disable timed out`);
    // A CMD_SYNC on the main queue flushes a pending ATC_INV timeout of the guest queue.
    const sync = SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: CMD_SYNC_CS.NONE });
    this.smmu.cmdq.issueCmdlist([[sync[0]!, sync[1]!]], true);
    this.smmu.writeReg(q.page0 + R.VCMDQ_PROD, 0);
    this.smmu.writeReg(q.page0 + R.VCMDQ_CONS, 0);
    this.smmu.memory.write64(this.smmu.base + BigInt(q.page1 + R.VCMDQ_BASE), 0n);
    this.smmu.memory.write64(this.smmu.base + BigInt(q.page1 + R.VCMDQ_CONS_INDX_BASE), 0n);
    const gerrorn = this.smmu.readReg(q.page0 + R.VCMDQ_GERRORN);
    const gerror = this.smmu.readReg(q.page0 + R.VCMDQ_GERROR);
    if (gerror !== gerrorn) {
      this.smmu.log(`VINTF${q.vintf.idx}/LVCMDQ${q.lidx}: uncleared error detected, resetting`);
      this.smmu.writeReg(q.page0 + R.VCMDQ_GERRORN, gerror);
    }
    if (q.cmdq !== undefined) {
      q.cmdq.prod = 0;
      q.cmdq.cons = 0;
    }
  }

  /** `tegra241_vcmdq_hw_init`: BASE then enable (host queues). */
  private vcmdqHwInit(q: Vcmdq): Status {
    this.vcmdqHwDeinit(q);
    this.smmu.memory.write64(this.smmu.base + BigInt(q.page1 + R.VCMDQ_BASE), q.qBase);
    return this.vcmdqWriteConfig(q, 1);
  }

  /** `tegra241_vcmdq_map_lvcmdq` / `_unmap_lvcmdq`: CMDQ_ALLOC.ALLOCATED of the global queue. */
  private setLvcmdqMapped(q: Vcmdq, mapped: boolean): void {
    const reg = R.CMDQ_ALLOC + 4 * q.idx;
    const w = [BigInt(this.read(reg))];
    CMDQV_CMDQ_ALLOC.set(w, 'ALLOCATED', mapped);
    this.write(reg, Number(w[0]!));
  }

  /** `tegra241_vintf_hw_deinit`: queues unmapped in descending order, VINTF off, SID slots cleared. */
  private vintfHwDeinit(v: Vintf): void {
    for (let lidx = this.numLvcmdqsPerVintf - 1; lidx >= 0; lidx--) {
      const q = v.lvcmdqs[lidx];
      if (q !== undefined) {
        this.vcmdqHwDeinit(q);
        this.setLvcmdqMapped(q, false);
      }
    }
    this.writeConfig(this.vintfReg(v, R.VINTF_CONFIG), this.vintfReg(v, R.VINTF_STATUS), 0);
    v.enabled = false;
    for (let s = 0; s < this.numSidsPerVintf; s++) {
      this.write(this.vintfReg(v, R.VINTF_SID_MATCH + 4 * s), 0);
      this.write(this.vintfReg(v, R.VINTF_SID_REPLACE + 4 * s), 0);
    }
  }

  /** `tegra241_vintf_hw_init`: CONFIG = HYP_OWN + VMID, enable, then map queues in ascending order. */
  private vintfHwInit(v: Vintf, hypOwn: boolean): Status {
    this.vintfHwDeinit(v);
    const cfg = Number(VINTF_CONFIG.encode({ HYP_OWN: hypOwn, VMID: v.vmid })[0]!);
    this.write(this.vintfReg(v, R.VINTF_CONFIG), cfg);
    const st = this.writeConfig(this.vintfReg(v, R.VINTF_CONFIG), this.vintfReg(v, R.VINTF_STATUS), cfg | 1);
    if (st !== 0) return st;
    v.enabled = true;
    // HYP_OWN reads back as wired by the hardware.
    v.hypOwn = VINTF_CONFIG.num([BigInt(this.read(this.vintfReg(v, R.VINTF_CONFIG)))], 'HYP_OWN') === 1;
    for (let lidx = 0; lidx < this.numLvcmdqsPerVintf; lidx++) {
      const q = v.lvcmdqs[lidx];
      if (q === undefined) continue;
      this.setLvcmdqMapped(q, true);
      const r = this.vcmdqHwInit(q);
      if (r !== 0) {
        this.vintfHwDeinit(v);
        return r;
      }
    }
    return 0;
  }

  /** `tegra241_cmdqv_get_cmdq`: CPU 0's LVCMDQ of VINTF0 when it is up. */
  getSecondaryCmdq(ent: CmdqEnt): CommandQueue | undefined {
    const v0 = this.vintfs[0];
    if (v0 === undefined || !v0.enabled) return undefined;
    const q = v0.lvcmdqs[0];
    if (q === undefined || !q.enabled || q.cmdq === undefined) return undefined;
    if (q.cmdq.supportsCmd !== undefined && !q.cmdq.supportsCmd(ent)) return undefined;
    return q.cmdq;
  }

  /** `tegra241_cmdqv_isr`: VINTF0 errors are skipped like CMDQ errors; user VINTF errors become vEVENTs. */
  serviceInterrupts(): void {
    const map = BigInt(this.read(R.VINTF_ERR_MAP)) | (BigInt(this.read(R.VINTF_ERR_MAP + 4)) << 32n);
    if (map === 0n) return;
    this.smmu.log(`CMDQV: unexpected error reported. vintf_map: ${map.toString(16).padStart(16, '0')}`);
    for (let idx = 0; idx < this.numVintfs; idx++) {
      if (((map >> BigInt(idx)) & 1n) === 0n) continue;
      const v = this.vintfs[idx];
      if (v === undefined) continue;
      const lmap = BigInt(this.read(this.vintfReg(v, R.VINTF_LVCMDQ_ERR_MAP))) | (BigInt(this.read(this.vintfReg(v, R.VINTF_LVCMDQ_ERR_MAP + 4))) << 32n);
      if (idx === 0) {
        for (let lidx = 0; lidx < this.numLvcmdqsPerVintf; lidx++) {
          const q = v.lvcmdqs[lidx];
          if (((lmap >> BigInt(lidx)) & 1n) === 0n || q?.cmdq === undefined) continue;
          const gerror = this.smmu.readReg(q.page0 + R.VCMDQ_GERROR);
          this.smmu.cmdqSkipErr(q.cmdq);
          this.smmu.writeReg(q.page0 + R.VCMDQ_GERRORN, gerror);
        }
      } else {
        this.reportUserError(v);
      }
    }
  }

  /** `tegra241_vintf_user_handle_error`: the VINTF's LVCMDQ error map as a TEGRA241_CMDQV vEVENT. */
  private reportUserError(v: Vintf): void {
    if (v.viommu === undefined) return;
    const map = [0, 1].map((i) => {
      const reg = this.vintfReg(v, R.VINTF_LVCMDQ_ERR_MAP + 8 * i);
      return BigInt(this.read(reg)) | (BigInt(this.read(reg + 4)) << 32n);
    });
    viommuReportEvent(v.viommu, IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV, iommu_vevent_tegra241_cmdqv.encode({ lvcmdq_err_map: map }));
  }

  /** `tegra241_cmdqv_hw_info` */
  hwInfo(type: number): HwInfoResult | number {
    if (type !== IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV) return EOPNOTSUPP;
    const ver = CMDQV_PARAM.num([BigInt(this.read(R.PARAM))], 'VER');
    return {
      type: IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV,
      data: iommu_hw_info_tegra241_cmdqv.encode({ flags: 0, version: ver, log2vcmdqs: Math.log2(this.numLvcmdqsPerVintf), log2vsids: Math.log2(this.numSidsPerVintf), __reserved: 0 }),
    };
  }

  /** `tegra241_cmdqv_get_vintf_size` */
  getViommuSize(type: number): number {
    if (type !== IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV) return 0;
    return VIOMMU_STRUCT_SIZE(tegra241_vintf, 'core');
  }

  /** `tegra241_cmdqv_init_vintf_user` */
  vsmmuInit(vsmmu: ArmVsmmu, userData: IommuUserData | undefined): Status {
    const viommu = vsmmu.viommu;
    if (viommu.type !== IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV) return EOPNOTSUPP;
    if (userData === undefined) return EINVAL;
    const data = iommuCopyStructFromUser(iommu_viommu_tegra241_cmdqv, userData, IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, 'out_vintf_mmap_length');
    if (typeof data === 'number') return data;
    const v = this.initVintf(this.numVintfs - 1, { hypOwn: false });
    if (v === undefined) {
      this.smmu.log('no more available vintf');
      return ENOSPC;
    }
    v.vmid = vsmmu.vmid;
    v.viommu = viommu;
    // No LVCMDQ is preallocated for a user VINTF: user space asks for each.
    let st = this.vintfHwInit(v, false);
    if (st !== 0) {
      this.vintfs[v.idx] = undefined;
      return st;
    }
    const page0 = this.basePhys + BigInt(R.VINTF_PAGE0 + R.VINTF_PAGE_STRIDE * v.idx);
    const off = viommuAllocMmap(viommu, page0, SZ_64K);
    if (typeof off === 'number') {
      this.vintfHwDeinit(v);
      this.vintfs[v.idx] = undefined;
      return off;
    }
    v.mmapOffset = off;
    st = iommuCopyStructToUser(userData, iommu_viommu_tegra241_cmdqv, { out_vintf_mmap_offset: off, out_vintf_mmap_length: SZ_64K }, IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, 'out_vintf_mmap_length');
    if (st !== 0) {
      viommuDestroyMmap(viommu, off);
      this.vintfHwDeinit(v);
      this.vintfs[v.idx] = undefined;
      return st;
    }
    const view = containerOf(viommu, tegra241_vintf, 'core');
    view.set('idx', v.idx);
    view.set('mmap_offset', off);
    view.setPtr('state', v);
    viommu.ops = this.viommuOps;
    return 0;
  }

  private vintfOf(viommu: IommufdViommu): Vintf {
    return containerOf(viommu, tegra241_vintf, 'core').getPtr('state')!;
  }

  /** `tegra241_cmdqv_viommu_ops` */
  readonly viommuOps: IommufdViommuOps = {
    destroy: (viommu) => {
      const v = this.vintfOf(viommu);
      if (v.mmapOffset !== 0n) viommuDestroyMmap(viommu, v.mmapOffset);
      this.vintfHwDeinit(v);
      this.vintfs[v.idx] = undefined;
    },
    allocDomainNested: armVsmmuOps.allocDomainNested!,
    // Commands a VCMDQ cannot take still go through the trapped path.
    cacheInvalidate: armVsmmuCacheInvalidate,
    vdeviceSize: VDEVICE_STRUCT_SIZE(tegra241_vintf_sid, 'core'),
    vdeviceInit: (vdev) => this.initVsid(vdev),
    getHwQueueSize: (_viommu, type) => (type === IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV ? HW_QUEUE_STRUCT_SIZE(tegra241_vcmdq, 'core') : 0),
    hwQueueInitPhys: (hw, index, pa) => this.allocLvcmdqUser(hw, index, pa),
  };

  /** `tegra241_vintf_init_vsid`: a free SID slot gets SID_REPLACE = pSID, SID_MATCH = `vSID << 1 | 1`. */
  private initVsid(vdev: IommufdVdevice): Status {
    const master = masterOf(vdeviceToDevice(vdev));
    const v = this.vintfOf(vdev.viommu);
    const virtSid = vdev.virtId;
    if (virtSid > 0xffff_ffffn) return EINVAL;
    let sidx = -1;
    for (let i = 0; i < this.numSidsPerVintf; i++) if (!v.sids.has(i)) {
      sidx = i;
      break;
    }
    if (sidx < 0) return ENOSPC;
    v.sids.add(sidx);
    const sid = master.streams[0]!;
    this.write(this.vintfReg(v, R.VINTF_SID_REPLACE + 4 * sidx), sid);
    // `writel(virt_sid << 1 | 0x1)`: a 32-bit write of whatever u32 the user gave; the
    // register keeps VIRT_SID's 20 bits, so a wider vSID is not refused, it is truncated.
    this.write(this.vintfReg(v, R.VINTF_SID_MATCH + 4 * sidx), Number(((virtSid << 1n) | VINTF_SID_MATCH.encode({ ENABLE: 1 })[0]!) & 0xffff_ffffn));
    const view = containerOf(vdev, tegra241_vintf_sid, 'core');
    view.setPtr('vintf', v);
    view.set('sid', sid);
    view.set('idx', sidx);
    vdev.destroy = (d) => {
      const x = containerOf(d, tegra241_vintf_sid, 'core');
      const idx = x.get('idx');
      this.write(this.vintfReg(v, R.VINTF_SID_MATCH + 4 * idx), 0);
      this.write(this.vintfReg(v, R.VINTF_SID_REPLACE + 4 * idx), 0);
      v.sids.delete(idx);
    };
    return 0;
  }

  /** `tegra241_vintf_alloc_lvcmdq_user`: the reference's checks in order, then map + BASE, left disabled. */
  private allocLvcmdqUser(hw: IommufdHwQueue, lidx: number, basePa: bigint): Status {
    const v = this.vintfOf(hw.viommu);
    if (hw.type !== IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV) return EOPNOTSUPP;
    if (lidx >= this.numLvcmdqsPerVintf) return EINVAL;
    if (v.lvcmdqs[lidx] !== undefined) return EEXIST;
    // The hardware maps LVCMDQs in ascending order.
    let prev: Vcmdq | undefined;
    if (lidx > 0) {
      prev = v.lvcmdqs[lidx - 1];
      if (prev === undefined) return EIO;
    }
    const maxNShift = SMMU_IDR1.num([BigInt(this.smmu.readReg(0x04))], 'CMDQS');
    const len = hw.length;
    if ((len & (len - 1n)) !== 0n || len < 32n || len > 1n << BigInt(maxNShift + CMDQ_ENT_SZ_SHIFT)) return EINVAL;
    const log2size = len.toString(2).length - 1 - CMDQ_ENT_SZ_SHIFT;
    const addrMask = ((1n << 48n) - 1n) & ~0x1fn;
    if ((basePa & ~addrMask) !== 0n || (basePa & (len - 1n)) !== 0n) return EINVAL;
    // Unmapping must go in descending order: the core refuses to destroy a depended-on queue.
    const prevHw = prev !== undefined ? this.hwQueues.get(prev) : undefined;
    if (prevHw !== undefined) {
      const st = hwQueueDepend(hw, prevHw);
      if (st !== 0) return st;
    }
    const q = this.initLvcmdq(v, lidx);
    q.prev = prevHw;
    this.setLvcmdqMapped(q, true);
    q.qBase = VCMDQ_BASE.encode({ ADDR: basePa >> 5n, LOG2SIZE: log2size })[0]!;
    // Configure only; the guest enables the queue through its mmapped page.
    this.smmu.memory.write64(this.smmu.base + BigInt(q.page1 + R.VCMDQ_BASE), q.qBase);
    const view = containerOf(hw, tegra241_vcmdq, 'core');
    view.set('idx', q.idx);
    view.set('lidx', lidx);
    view.set('q_base', q.qBase);
    view.setPtr('state', q);
    this.hwQueues.set(q, hw);
    hw.destroy = () => {
      this.vcmdqHwDeinit(q);
      this.setLvcmdqMapped(q, false);
      v.lvcmdqs[lidx] = undefined;
      this.hwQueues.delete(q);
      if (q.prev !== undefined) hwQueueUndepend(hw, q.prev);
    };
    return 0;
  }

  private readonly hwQueues = new Map<Vcmdq, IommufdHwQueue>();
}

/** Builds the Tegra241 CMDQV extension for {@link armSmmuV3Probe}'s `impl` option. */
export function tegra241CmdqvImpl(offset: number = Number(SMMU_MMIO_SIZE)): (smmu: ArmSmmuV3) => Tegra241Cmdqv {
  return (smmu) => new Tegra241Cmdqv(smmu, offset);
}

