// Drives the driver through @iommufd/driver-api exactly as the core does: devices are added
// (probeDevice), domains allocated and attached through the ops, vIOMMU/vDEVICE objects are
// allocated with the size the driver reports and their core fields filled before init.
import {
  IOMMUFD_VDEVICE,
  IommufdHwQueue,
  IommufdVdevice,
  IommufdViommu,
  StructMemory,
  type Device,
  type IommufdDriverServices,
  type IommuDomain,
  type IommuUserData,
  type IommuUserDataArray,
  type UserMemory,
} from '@iommufd/driver-api';
import { ARM_PTE, SMMU_CD, createMachine, type Machine, type PciDevice, type SmmuV3, type SmmuV3Options } from '@iommufd/hw-model';
import { EBADF, EFAULT } from '@iommufd/uapi';
import type { KernelFile, KernelProcess } from '@iommufd/core';
import { armSmmuV3Probe, tegra241CmdqvImpl, type ArmSmmuV3 } from '../../src/index.js';

export const SMMU_BASE = 0x900_0000n;

export interface Rig {
  readonly machine: Machine;
  readonly hw: SmmuV3;
  readonly smmu: ArmSmmuV3;
  readonly pci: readonly PciDevice[];
  readonly devs: Device[];
}

/** A machine with one SMMUv3 and `devices` PCI functions 00:0n.0, the driver probed and each device added. */
export function rig(o: { smmu?: SmmuV3Options; devices?: number; strict?: boolean; ats?: boolean; pasid?: boolean; canwbs?: boolean; tegra?: boolean; priIopf?: boolean; vsmmuConverter?: 'engine' | 'typescript' } = {}): Rig {
  const machine = createMachine({
    ramBytes: 0x1000_0000n,
    strict: o.strict ?? true,
    iommus: [{ kind: o.tegra === true ? 'tegra241-cmdqv' : 'smmuv3', name: 'smmu0', base: SMMU_BASE, options: o.smmu ?? {} }],
    devices: Array.from({ length: o.devices ?? 2 }, (_, i) => ({
      bdf: { bus: 0, dev: i + 1, fn: 0 },
      iommu: 'smmu0',
      capabilities: { ats: o.ats ?? false, pri: true, ...(o.pasid === true ? { pasid: { maxPasidLog2: 20, exec: true, priv: true } } : {}) },
    })),
  });
  const hw = machine.iommus.get('smmu0') as SmmuV3;
  const smmu = armSmmuV3Probe({
    memory: machine.memory,
    base: SMMU_BASE,
    name: 'smmu0',
    streams: machine.devices,
    canwbs: o.canwbs ?? false,
    priIopf: o.priIopf ?? false,
    vsmmuConverter: o.vsmmuConverter ?? 'engine',
    ...(o.tegra === true ? { impl: tegra241CmdqvImpl() } : {}),
  });
  const devs = machine.devices.map((p) => addDevice(smmu, p, { ats: o.ats ?? false, pasid: o.pasid ?? false }));
  return { machine, hw, smmu, pci: machine.devices, devs };
}

/** iommu_probe_device: a core Device whose probe the driver accepted. */
export function addDevice(smmu: ArmSmmuV3, p: { readonly name: string; readonly requesterId?: number }, o: { ats: boolean; pasid: boolean }): Device {
  const dev: Device = {
    name: p.name,
    iommu: smmu,
    groupId: p.requesterId ?? 0,
    pasid: o.pasid ? { maxPasidLog2: 20, exec: true, priv: true } : undefined,
    pri: true,
    ats: o.ats,
    isVf: false,
    iommuPriv: undefined,
  };
  const st = smmu.ops.probeDevice!(dev);
  if (st !== 0) throw new Error(`probeDevice failed: ${st}`);
  return dev;
}

/** Allocates and attaches (through the ops) a paging domain. */
export function pagingDomain(dev: Device, flags = 0): IommuDomain {
  const d = dev.iommu.ops.domainAllocPagingFlags!(dev, flags, undefined);
  if (typeof d === 'number') throw new Error(`domain alloc failed: ${d}`);
  return d;
}

/** A flat user address space: uptr = offset into `bytes`. */
export class FlatUser implements UserMemory {
  readonly bytes = new Uint8Array(1 << 16);
  private top = 0x100;
  copyFromUser(va: bigint, length: number): Uint8Array | number {
    if (va < 0n || va + BigInt(length) > BigInt(this.bytes.length)) return EFAULT;
    return this.bytes.slice(Number(va), Number(va) + length);
  }
  copyToUser(va: bigint, bytes: Uint8Array): 0 | number {
    if (va < 0n || va + BigInt(bytes.length) > BigInt(this.bytes.length)) return EFAULT;
    this.bytes.set(bytes, Number(va));
    return 0;
  }
  put(bytes: Uint8Array): bigint {
    const at = this.top;
    this.bytes.set(bytes, at);
    this.top += (bytes.length + 7) & ~7;
    return BigInt(at);
  }
  data(type: number, bytes: Uint8Array): IommuUserData {
    return { type, uptr: this.put(bytes), len: bytes.length, user: this };
  }
  array(type: number, entryLen: number, entries: Uint8Array[]): IommuUserDataArray {
    const all = new Uint8Array(entryLen * entries.length);
    entries.forEach((e, i) => all.set(e, i * entryLen));
    return { type, uptr: this.put(all), entryLen, entryNum: entries.length, user: this };
  }
}

/** The core's side of the driver helpers, recording vEVENTs and holding vDEVICEs. */
export class FakeCore implements IommufdDriverServices {
  readonly vdevs = new Map<IommufdViommu, Map<bigint, Device>>();
  readonly events: { viommu: IommufdViommu; type: number; data: Uint8Array }[] = [];
  readonly mmaps = new Map<bigint, { viommu: IommufdViommu; addr: bigint; length: bigint }>();
  readonly depends: [IommufdHwQueue, IommufdHwQueue][] = [];
  private nextId = 1;
  private nextMmap = 0x1000n;
  viommuFindDev(viommu: IommufdViommu, vdevId: bigint): Device | undefined {
    return this.vdevs.get(viommu)?.get(vdevId);
  }
  viommuGetVdevId(viommu: IommufdViommu, dev: Device): bigint | number {
    for (const [id, d] of this.vdevs.get(viommu) ?? []) if (d === dev) return id;
    return 2; // ENOENT
  }
  vdeviceToDevice(vdev: IommufdVdevice): Device {
    return vdev.view.getPtr('idev')!;
  }
  viommuReportEvent(viommu: IommufdViommu, type: number, data: Uint8Array): number {
    this.events.push({ viommu, type, data });
    return 0;
  }
  viommuAllocMmap(viommu: IommufdViommu, addr: bigint, length: bigint): bigint {
    const off = this.nextMmap;
    this.nextMmap += length;
    this.mmaps.set(off, { viommu, addr, length });
    return off;
  }
  viommuDestroyMmap(_viommu: IommufdViommu, offset: bigint): void {
    this.mmaps.delete(offset);
  }
  hwQueueDepend(a: IommufdHwQueue, b: IommufdHwQueue): number {
    this.depends.push([a, b]);
    return 0;
  }
  hwQueueUndepend(a: IommufdHwQueue, b: IommufdHwQueue): void {
    const i = this.depends.findIndex(([x, y]) => x === a && y === b);
    if (i >= 0) this.depends.splice(i, 1);
  }
  shouldFail(): boolean {
    return false;
  }

  /** IOMMU_VIOMMU_ALLOC steps 4–8: size from the driver, core fields, then viommuInit. */
  viommuAlloc(dev: Device, parent: IommuDomain, type: number, userData?: IommuUserData): IommufdViommu | number {
    const size = dev.iommu.ops.getViommuSize!(dev, type);
    if (size === 0) return 95;
    const viommu = new IommufdViommu(new StructMemory(size));
    viommu.initCore({ id: this.nextId++, ictx: { driverServices: this }, iommuDev: dev.iommu, hwpt: { id: 100, domain: parent }, type, vdevs: undefined, veventqs: undefined });
    const st = dev.iommu.ops.viommuInit!(viommu, parent, userData);
    if (st !== 0) return st;
    this.vdevs.set(viommu, new Map());
    return viommu;
  }

  /** IOMMU_VDEVICE_ALLOC: the driver's size (or the core struct), core fields, slot, then vdeviceInit. */
  vdeviceAlloc(viommu: IommufdViommu, dev: Device, virtId: bigint): IommufdVdevice | number {
    const size = viommu.ops!.vdeviceSize ?? 0;
    const vdev = new IommufdVdevice(new StructMemory(size === 0 ? IOMMUFD_VDEVICE.size : size));
    vdev.initCore({ id: this.nextId++, viommu, dev, virtId });
    this.vdevs.get(viommu)!.set(virtId, dev);
    if (size !== 0) {
      const st = viommu.ops!.vdeviceInit!(vdev);
      if (st !== 0) {
        this.vdevs.get(viommu)!.delete(virtId);
        return st;
      }
    }
    return vdev;
  }

  /** IOMMU_DESTROY of a vDEVICE. */
  vdeviceDestroy(vdev: IommufdVdevice): void {
    vdev.destroy?.(vdev);
    this.vdevs.get(vdev.viommu)!.delete(vdev.virtId);
  }

  /** IOMMU_HW_QUEUE_ALLOC after the core pinned `length` bytes at physical `basePa`. */
  hwQueueAlloc(viommu: IommufdViommu, type: number, index: number, basePa: bigint, length: bigint): IommufdHwQueue | number {
    const size = viommu.ops!.getHwQueueSize?.(viommu, type) ?? 0;
    if (size === 0) return 95;
    const hw = new IommufdHwQueue(new StructMemory(size));
    hw.initCore({ id: this.nextId++, viommu, access: { id: this.nextId++ }, baseAddr: basePa, length, type });
    const st = viommu.ops!.hwQueueInitPhys!(hw, index, basePa);
    return st === 0 ? hw : st;
  }

  /** IOMMU_DESTROY of a HW queue: EBUSY while another queue depends on it. */
  hwQueueDestroy(hw: IommufdHwQueue): number {
    if (this.depends.some(([, b]) => b === hw)) return 16;
    hw.destroy?.(hw);
    return 0;
  }
}

/** Guest RAM: `pages` pages of host RAM seen by the guest at IPA `ipaBase`, mapped in `s2` 1:1 in order. */
export class GuestRam {
  readonly pa: bigint;
  private next = 0;
  constructor(
    readonly machine: Machine,
    readonly ipaBase: bigint,
    readonly pages: number,
  ) {
    this.pa = machine.memory.allocPages(pages)[0]!;
  }
  toPa(ipa: bigint): bigint {
    return this.pa + (ipa - this.ipaBase);
  }
  /** A zeroed guest page (its IPA). */
  allocPage(): bigint {
    if (this.next >= this.pages) throw new Error('guest RAM exhausted');
    return this.ipaBase + BigInt(this.next++) * 4096n;
  }
  write64(ipa: bigint, v: bigint): void {
    this.machine.memory.write64(this.toPa(ipa), v);
  }
  read64(ipa: bigint): bigint {
    return this.machine.memory.read64(this.toPa(ipa));
  }
}

/** The guest's own stage-1 table (48-bit VA, 4 levels) built in guest RAM with IPAs. */
export class GuestS1 {
  readonly root: bigint;
  constructor(private readonly ram: GuestRam) {
    this.root = ram.allocPage();
  }
  /** Maps a 4 KiB page VA → IPA as Linux's io-pgtable would (nG, AF, EL0, RW or RO). */
  map(va: bigint, ipa: bigint, write = true): void {
    this.ram.write64(this.leafSlot(va), ARM_PTE.encode({ VALID: 1, TABLE: 1, ATTR: 1, AP: write ? 1 : 3, SH: 3, AF: 1, NG: 1, OA: ipa >> 12n })[0]!);
  }
  unmap(va: bigint): void {
    this.ram.write64(this.leafSlot(va), 0n);
  }
  private leafSlot(va: bigint): bigint {
    let table = this.root;
    for (let level = 0; level < 3; level++) {
      const at = table + ((va >> BigInt(12 + 9 * (3 - level))) & 511n) * 8n;
      let d = this.ram.read64(at);
      if ((d & 3n) !== 3n) {
        d = ARM_PTE.encode({ VALID: 1, TABLE: 1, OA: this.ram.allocPage() >> 12n })[0]!;
        this.ram.write64(at, d);
      }
      table = ARM_PTE.get([d], 'OA') << 12n;
    }
    return table + ((va >> 12n) & 511n) * 8n;
  }
  /** The guest's CD for this table (what a guest arm-smmu-v3 driver writes). */
  cd(asid: number): bigint[] {
    return SMMU_CD.encode({ T0SZ: 16, TG0: 0, IR0: 1, OR0: 1, SH0: 3, EPD1: 1, V: 1, IPS: 5, AA64: 1, R: 1, A: 1, ASET: 1, ASID: asid, TTB0: this.root >> 4n, MAIR: 0xf404ff44n });
  }
}

/** Commands written to the CMDQ ring between two PROD values (for exact-bytes checks). */
export function ringCommands(smmu: ArmSmmuV3, from: number, to: number): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  const q = smmu.cmdq;
  const mask = (2 << q.log2Size) - 1;
  for (let p = from; p !== to; p = (p + 1) & mask) {
    const at = q.slot(p);
    out.push([smmu.memory.read64(at), smmu.memory.read64(at + 8n)]);
  }
  return out;
}

/** Runs `fn` and returns the commands it issued (opcode names are easier to read in failures). */
export function issued(smmu: ArmSmmuV3, fn: () => void): [bigint, bigint][] {
  const from = smmu.cmdq.prod;
  fn();
  return ringCommands(smmu, from, smmu.cmdq.prod);
}

/** The opcodes of issued commands. */
export const opcodes = (cmds: readonly (readonly [bigint, bigint])[]): number[] => cmds.map(([a]) => Number(a & 0xffn));

/** Scratch VA area of a {@link Vmm} for ioctl structs. */
export const SCRATCH = 0x1000_0000n;
/** Where a {@link Vmm} maps its guest RAM. */
export const GUEST_VA = 0x7f00_0000_0000n;

/** A VMM process: a scratch area for ioctl structs and its guest RAM mapped at GUEST_VA. */
export class Vmm implements KernelProcess {
  readonly scratch = new Uint8Array(1 << 16);
  readonly files = new Map<number, KernelFile>();
  private top = 0;
  private nextFd = 3;
  constructor(private readonly ram: GuestRam) {}
  private pa(va: bigint): bigint | undefined {
    const off = va - GUEST_VA;
    return off >= 0n && off < BigInt(this.ram.pages) * 4096n ? this.ram.pa + off : undefined;
  }
  copyFromUser(va: bigint, length: number): Uint8Array | number {
    if (va >= SCRATCH && va + BigInt(length) <= SCRATCH + BigInt(this.scratch.length)) return this.scratch.slice(Number(va - SCRATCH), Number(va - SCRATCH) + length);
    const pa = this.pa(va);
    return pa === undefined ? EFAULT : this.ram.machine.memory.read(pa, length);
  }
  copyToUser(va: bigint, bytes: Uint8Array): 0 | number {
    if (va >= SCRATCH && va + BigInt(bytes.length) <= SCRATCH + BigInt(this.scratch.length)) {
      this.scratch.set(bytes, Number(va - SCRATCH));
      return 0;
    }
    return EFAULT;
  }
  pinPages(va: bigint, npages: number): { pfns: bigint[] } | number {
    const pfns: bigint[] = [];
    for (let i = 0; i < npages; i++) {
      const pa = this.pa(va + BigInt(i) * 4096n);
      if (pa === undefined) return EFAULT;
      pfns.push(pa >> 12n);
    }
    return { pfns };
  }
  unpinPages(): void {}
  fileForFd(): number {
    return EBADF;
  }
  reserveFd(): number {
    return this.nextFd++;
  }
  installFd(fd: number, file: KernelFile): void {
    this.files.set(fd, file);
  }
  releaseFd(fd: number): void {
    this.files.delete(fd);
  }
  capable(): boolean {
    return true;
  }
  chargeLockedPages(): 0 {
    return 0;
  }
  unchargeLockedPages(): void {}
  /** Places a struct in scratch memory; returns its VA. */
  put(bytes: Uint8Array): bigint {
    const at = this.top;
    this.scratch.set(bytes, at);
    this.top += (bytes.length + 15) & ~15;
    return SCRATCH + BigInt(at);
  }
  get(va: bigint, len: number): Uint8Array {
    return this.scratch.slice(Number(va - SCRATCH), Number(va - SCRATCH) + len);
  }
}

