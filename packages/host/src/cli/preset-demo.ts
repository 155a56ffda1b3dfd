/**
 * The demo on the hardware presets (`arm-smmuv3`, `tegra241-cmdqv`, `intel-vtd`): a whole
 * VM the way a VMM builds one, through the Host contract and the uapi wrappers only.
 *
 * Guest RAM (a memfd) is mapped into an IOAS at guest physical 0 and every device is bound
 * and attached; then the nest parent, the vIOMMU with a vDEVICE per device (SMMUv3), the
 * guest's own translation structures in guest RAM (SMMUv3: STE → CD table → stage-1 tables;
 * VT-d: x86 first-stage tables) and a nested HWPT from them. DMA goes to guest virtual
 * addresses; the guest remaps a page without invalidating and the device still sees the old
 * page until the guest's invalidation (IOMMU_HWPT_INVALIDATE; on Tegra also through the
 * guest's VCMDQ in the mmapped VINTF page); a translation fault reaches the VMM (SMMUv3: a
 * vEVENT with the vSID; VT-d, whose functions use ATS + PRI: a page request on the FAULT fd,
 * answered after the guest maps the page). On VT-d a second part goes beyond Linux 6.17 with
 * the project's experimental VT-d vIOMMU: vDEVICEs with guest RIDs, a nested HWPT with the
 * guest's domain ID, guest QI descriptors rewritten with the host's DID and RID, and a
 * recorded fault of an untranslated request delivered as a vEVENT with the guest RID.
 * Everything is destroyed in the VMM's order and must leave no page pinned.
 */
import * as U from '@iommufd/uapi';
import { buildCmd } from '@iommufd/arm-smmu-v3';
import { CMDQ_OP, EVT_ID, SMMU_CD, SMMU_EVENT, SMMU_STE, STE_CFG, TEGRA241_CMDQV_REG, VTD_DESC, VtdDevTlbDesc, VtdPiotlbDesc, vtdFaultName } from '@iommufd/hw-model';
import {
  IOMMU_HWPT_DATA_VTD_S1_VDID_EXP,
  IOMMU_VEVENT_VTD_FAULT_READ,
  IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP,
  IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP,
  IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP,
  iommu_hwpt_vtd_s1_vdid,
  iommu_vevent_vtd_fault,
  iommu_viommu_vtd_invalidate,
} from '@iommufd/intel-vtd';
import { bindAndAttachAll, DemoError, demoSteps, dmaRoundTrip, readOneVevent, type DemoDevice, type DemoStep, type DemoSummary } from '../demo.js';
import type { Host } from '../host.js';
import type { DmaRequest } from '../platform.js';
import type { HostProcess } from '../process.js';
import { intelVtdUnitOf } from '../platforms/intel-vtd.js';
import { hex, hexBytes } from '../hex.js';
import { ARM_STAGE1_FORMAT, GuestPageTable, GuestRam, X86_FIRST_STAGE_FORMAT } from '../vmm/guest.js';

/** Guest RAM of the demo VM. */
export const PRESET_DEMO_GUEST_RAM = 2n << 20n;
/** The guest's first free page: below it are the greeting pages of the DMA round trip. */
const GUEST_FIRST_FREE = 0x1_0000n;
/** The guest virtual address (IOVA of the nested HWPT) the guest maps for its device. */
export const PRESET_DEMO_GVA = 0x4000_0000n;
/** A guest virtual address the guest leaves unmapped until the fault. */
export const PRESET_DEMO_FAULT_GVA = 0x4010_0000n;
/** The first device's virtual StreamID (the next devices get the following ones). */
export const PRESET_DEMO_VSID = 0x31n;
/** The first device's guest requester ID on the VT-d vIOMMU (00:03.0 in the guest; the next devices get the following slots). */
export const PRESET_DEMO_GUEST_RID = 0x18n;
/** The guest's domain ID of its PASID entry on the VT-d vIOMMU. */
export const PRESET_DEMO_GUEST_DID = 5;
/** The guest's ASID in its CD. */
const ASID = 3;
/** MAIR of the guest's CD: index 1 = normal write-back memory, as Linux's MAIR_EL1 puts it. */
const GUEST_MAIR = 0xf404ff44n;

const HW_INFO_NAMES: Readonly<Record<number, string>> = {
  [U.IOMMU_HW_INFO_TYPE_INTEL_VTD]: 'INTEL_VTD',
  [U.IOMMU_HW_INFO_TYPE_ARM_SMMUV3]: 'ARM_SMMUV3',
  [U.IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV]: 'TEGRA241_CMDQV',
};
const EVENT_NAMES = new Map<number, string>(Object.entries(EVT_ID).map(([name, id]) => [id, name]));
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** What the guest-side flows share: the host, the VMM's fds, guest RAM and the step recorder. */
interface Vm {
  readonly host: Host;
  readonly p: HostProcess;
  readonly iommufd: number;
  readonly ioas: number;
  readonly devices: DemoDevice[];
  readonly guest: GuestRam;
  readonly parent: number;
  /** Records a step of the summary (and prints it as progress). */
  record(title: string, result: string): void;
  /** A DMA read by the first device; throws {@link DemoError} on a fault. */
  read(iova: bigint, length: number, what: string): Uint8Array;
  /** A DMA write by the first device; throws {@link DemoError} on a fault. */
  write(iova: bigint, data: Uint8Array, what: string): void;
  /** IDs to destroy at teardown, in order, after the first device has been detached. */
  readonly destroy: [string, number][];
  /** fds to close and VMM mappings to unmap at teardown, before the destroys. */
  readonly cleanup: (() => void)[];
  transfers: number;
  faults: number;
  vevents: number;
}

/** Runs the VMM scenario on a hardware preset. Throws {@link DemoError} naming the failed step. */
export function runPresetDemo(host: Host, log: (line: string) => void): DemoSummary {
  const p = host.process;
  const { step } = demoSteps(host);
  const steps: DemoStep[] = [];
  const record = (title: string, result: string) => {
    steps.push({ title, result });
    log(`${title}: ${result}`);
  };
  let current = 'boot';
  const phase = <T>(title: string, fn: () => T): T => {
    current = title;
    return fn();
  };
  log(`host: platform ${host.platform}, ${host.vfioDevices.length} VFIO device(s)`);
  try {
    // Guest RAM: a shared memfd, as QEMU's memory backend does, mapped at guest physical 0.
    const { ram, ramFd, iommufd, ioas } = phase('guest RAM', () => {
      const ramFd = p.memfdCreate('guest-ram', PRESET_DEMO_GUEST_RAM);
      step('memfd_create(guest-ram)', ramFd);
      const ram = p.mmap(PRESET_DEMO_GUEST_RAM, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED, ramFd);
      step('mmap(guest RAM)', ram);
      const iommufd = p.open('/dev/iommu');
      step('open(/dev/iommu)', iommufd);
      const ioas = U.ioasAlloc(p, iommufd);
      U.ioasMapFile(p, iommufd, { ioasId: ioas, memFd: ramFd, start: 0n, length: PRESET_DEMO_GUEST_RAM, iova: 0n });
      record('guest RAM', `${PRESET_DEMO_GUEST_RAM >> 20n} MiB memfd at VMM VA ${hex(ram)}, mapped in IOAS ${ioas} at IOVA 0x0..${hex(PRESET_DEMO_GUEST_RAM - 1n)}`);
      return { ram, ramFd, iommufd, ioas };
    });
    const greeting = new TextEncoder().encode('hello from guest RAM');
    step('guest RAM write', p.poke(ram + 0x1000n, greeting));

    const devices = bindAndAttachAll(host, iommufd, ioas, step, log);
    const dev0 = devices[0]!;
    phase('IOMMU_GET_HW_INFO', () => {
      const info = U.getHwInfo(p, iommufd, { devId: dev0.devId });
      record('IOMMU_GET_HW_INFO', `DEVICE ${dev0.devId}: type ${HW_INFO_NAMES[info.type] ?? info.type}, max PASID log2 ${info.maxPasidLog2}`);
    });
    const checked = dmaRoundTrip(host, devices, ram, 0n, PRESET_DEMO_GUEST_RAM, greeting, log);
    record('DMA on the IOAS', `${dev0.path} read "${text(greeting)}" at IOVA 0x1000; the last device wrote IOVA 0x2000; IOVA ${hex(PRESET_DEMO_GUEST_RAM)} (past guest RAM) blocked`);

    const parent = phase('nest parent', () => {
      const parent = U.hwptAlloc(p, iommufd, { devId: dev0.devId, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
      dev0.ptId = U.vfioDeviceAttachIommufdPt(p, dev0.fd, { ptId: parent });
      record('nest parent', `HWPT ${parent} (stage 2 over IOAS ${ioas}); ${dev0.path} replaced onto it`);
      return parent;
    });

    const dmaDevice = (req: DmaRequest, what: string) => {
      const r = host.dma(dev0.path, req);
      if (!r.ok) throw new DemoError(`${what}: DMA at IOVA ${hex(req.iova)} faulted (${r.fault.kind})`);
      vm.transfers++;
      return r.data ?? new Uint8Array(0);
    };
    const vm: Vm = {
      host,
      p,
      iommufd,
      ioas,
      devices,
      guest: new GuestRam(p, ram, PRESET_DEMO_GUEST_RAM, GUEST_FIRST_FREE),
      parent,
      record,
      read: (iova, length, what) => dmaDevice({ iova, length, write: false }, what),
      write: (iova, data, what) => void dmaDevice({ iova, length: data.length, write: true, data }, what),
      destroy: [],
      cleanup: [],
      transfers: checked.transfers,
      faults: checked.faults,
      vevents: 0,
    };
    if (host.platform === 'intel-vtd') {
      vtdGuest(vm, phase);
      vtdViommuGuest(vm, phase);
    } else smmuGuest(vm, phase);
    const objects = host.objects(iommufd).map((o) => ({ id: o.id, type: o.type, users: o.users }));

    // Teardown in the VMM's order: the guest's view first (its mappings of the VMM's MMIO and
    // event fds, the device off the nested HWPT, the nested objects), then the devices, the
    // iommufd and guest RAM.
    phase('teardown', () => {
      for (const undo of vm.cleanup) undo();
      U.vfioDeviceDetachIommufdPt(p, dev0.fd);
      for (const [, id] of vm.destroy) U.destroy(p, iommufd, id);
      U.destroy(p, iommufd, parent);
      for (const d of devices) step(`close(${d.path})`, p.close(d.fd));
      step('close(/dev/iommu)', p.close(iommufd));
      step('close(guest-ram memfd)', p.close(ramFd));
      step('munmap(guest RAM)', p.munmap(ram, PRESET_DEMO_GUEST_RAM));
      const leftover = host.contexts().at(-1)!;
      record('teardown', `destroyed ${[...vm.destroy.map(([what]) => what), 'the nest parent'].join(', ')}; closed every fd; context released ${leftover.released ? 'with no object left' : `holding ${leftover.objects.length} object(s)`}; ${host.pinnedPages} page(s) pinned`);
    });
    return {
      platform: host.platform,
      devices: devices.map(({ path, devId, ptId }) => ({ path, devId, ptId })),
      guestRamBytes: PRESET_DEMO_GUEST_RAM,
      guestIova: 0n,
      dmaTransfers: vm.transfers,
      dmaFaults: vm.faults,
      vevents: vm.vevents,
      objects,
      pinnedPagesAfterClose: host.pinnedPages,
      steps,
    };
  } catch (e) {
    if (e instanceof U.IommufdError || e instanceof RangeError) throw new DemoError(`${current}: ${e.message}`);
    throw e;
  }
}

type Phase = <T>(title: string, fn: () => T) => T;

/** The guest writes recognisable text at the start of a page. */
function labelPage(vm: Vm, label: string): bigint {
  const gpa = vm.guest.allocPage();
  vm.guest.write(gpa, new TextEncoder().encode(label));
  return gpa;
}

/**
 * The guest remaps {@link PRESET_DEMO_GVA} to `to` without telling the IOMMU: the device
 * still reads the page it was mapped to before (the TLB entry is stale).
 */
function staleRead(vm: Vm, table: GuestPageTable, to: bigint, toLabel: string, expected: string, title: string): void {
  table.map(PRESET_DEMO_GVA, to);
  const stale = vm.read(PRESET_DEMO_GVA, expected.length, title);
  if (text(stale) !== expected) throw new DemoError(`${title}: expected the stale "${expected}", the device read "${text(stale)}"`);
  vm.record(title, `guest remapped GVA ${hex(PRESET_DEMO_GVA)} → ${toLabel} at IPA ${hex(to)} without invalidating; DMA still reads "${text(stale)}" (${hexBytes(stale)})`);
}

/** After the guest's invalidation the device reads the new page. */
function freshRead(vm: Vm, expected: string, title: string, how: string): void {
  const fresh = vm.read(PRESET_DEMO_GVA, expected.length, title);
  if (text(fresh) !== expected) throw new DemoError(`${title}: after the invalidation the device read "${text(fresh)}", expected "${expected}"`);
  vm.record(title, `${how}; DMA now reads "${text(fresh)}" (${hexBytes(fresh)})`);
}

/** SMMUv3 (and Tegra241 CMDQV): vIOMMU, vDEVICEs, guest STE → CD → stage 1, TLBIs, a vEVENT. */
function smmuGuest(vm: Vm, phase: Phase): void {
  const { p, iommufd, devices, guest, parent } = vm;
  const dev0 = devices[0]!;
  const tegra = vm.host.platform === 'tegra241-cmdqv';
  const viommu = phase('vIOMMU', () => {
    const type = tegra ? U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV : U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3;
    const data = tegra ? { data: U.iommu_viommu_tegra241_cmdqv.encode({ out_vintf_mmap_offset: 0n, out_vintf_mmap_length: 0n }) } : {};
    const v = U.viommuAlloc(p, iommufd, { devId: dev0.devId, hwptId: parent, type, ...data });
    vm.record('vIOMMU', `vIOMMU ${v.id} (${tegra ? 'TEGRA241_CMDQV' : 'ARM_SMMUV3'}) on nest parent HWPT ${parent}`);
    return v;
  });
  phase('vDEVICE', () => {
    const ids = devices.map((d, i) => {
      const vsid = PRESET_DEMO_VSID + BigInt(i);
      const id = U.vdeviceAlloc(p, iommufd, { viommuId: viommu.id, devId: d.devId, virtId: vsid });
      vm.destroy.push([`vDEVICE ${id}`, id]);
      return `vDEVICE ${id}: vSID ${hex(vsid)} → DEVICE ${d.devId}`;
    });
    vm.record('vDEVICEs', ids.join('; '));
  });
  const q = phase('vEVENTQ', () => {
    const q = U.veventqAlloc(p, iommufd, { viommuId: viommu.id, type: U.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, depth: 8 });
    vm.record('vEVENTQ', `vEVENTQ ${q.id} (ARM_SMMUV3, depth 8) on fd ${q.fd}`);
    return q;
  });

  // The guest driver's structures, in its RAM: stage-1 tables, a CD table of one CD, the STE.
  const table = new GuestPageTable(guest, ARM_STAGE1_FORMAT);
  const pageA = labelPage(vm, 'guest page A');
  const pageB = labelPage(vm, 'guest page B');
  const cdTable = guest.allocPage();
  phase('guest tables', () => {
    table.map(PRESET_DEMO_GVA, pageA);
    guest.write64(cdTable, ...SMMU_CD.encode({ T0SZ: 16, TG0: 0, IR0: 1, OR0: 1, SH0: 3, EPD1: 1, V: 1, IPS: 5, AA64: 1, R: 1, A: 1, ASET: 1, ASID, TTB0: table.root >> 4n, MAIR: GUEST_MAIR }));
    vm.record('guest tables', `STE (S1_TRANS) → CD table at IPA ${hex(cdTable)} (CD 0: ASID ${ASID}, TTB0 ${hex(table.root)}) → stage-1 tables; GVA ${hex(PRESET_DEMO_GVA)} → IPA ${hex(pageA)}`);
  });
  const ste = SMMU_STE.encode({ V: 1, CONFIG: STE_CFG.S1_TRANS, S1CONTEXTPTR: cdTable >> 6n }).slice(0, 2);
  const nested = phase('nested HWPT', () => {
    const nested = U.hwptAlloc(p, iommufd, { devId: dev0.devId, ptId: viommu.id, data: { type: U.IOMMU_HWPT_DATA_ARM_SMMUV3, bytes: U.iommu_hwpt_arm_smmuv3.encode({ ste }) } });
    dev0.ptId = U.vfioDeviceAttachIommufdPt(p, dev0.fd, { ptId: nested });
    vm.record('nested HWPT', `HWPT ${nested} from the guest STE ${ste.map((w) => hex(w)).join(' ')} on vIOMMU ${viommu.id}; ${dev0.path} attached`);
    return nested;
  });
  vm.destroy.unshift([`nested HWPT ${nested}`, nested]);

  phase('DMA at a guest VA', () => guestVaDma(vm, pageA));
  phase('stale translation', () => staleRead(vm, table, pageB, '"guest page B"', 'guest page A', 'stale translation'));
  phase('IOMMU_HWPT_INVALIDATE', () => {
    const tlbi = buildCmd({ opcode: 'TLBI_NH_VA', asid: ASID, vmid: 0, addr: PRESET_DEMO_GVA, leaf: true });
    const done = U.hwptInvalidate(p, iommufd, { hwptId: viommu.id, dataType: U.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, entryLen: 16, entries: [commandBytes(tlbi)] });
    freshRead(vm, 'guest page B', 'IOMMU_HWPT_INVALIDATE', `TLBI_NH_VA (ASID ${ASID}, VA ${hex(PRESET_DEMO_GVA)}) on vIOMMU ${viommu.id}: ${done.entryNum} command(s) handled`);
  });
  if (tegra) phase('guest VCMDQ', () => tegraVcmdq(vm, table, viommu));

  phase('vEVENT', () => {
    const miss = vm.host.dma(dev0.path, { iova: PRESET_DEMO_FAULT_GVA, length: 4, write: false });
    if (miss.ok) throw new DemoError(`a DMA at the unmapped GVA ${hex(PRESET_DEMO_FAULT_GVA)} was not blocked`);
    vm.faults++;
    const { bytes: n, event: first } = readOneVevent(p, q.fd, U.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, U.iommu_vevent_arm_smmuv3.size, 'vEVENT');
    vm.vevents++;
    const evt = SMMU_EVENT.decode(U.iommu_vevent_arm_smmuv3.decode(first.data).evt);
    if (evt.SID !== PRESET_DEMO_VSID) throw new DemoError(`the vEVENT carries SID ${hex(evt.SID)}, expected the vSID ${hex(PRESET_DEMO_VSID)}`);
    const name = EVENT_NAMES.get(Number(evt.ID)) ?? 'unknown';
    vm.record(
      'vEVENT',
      `${dev0.path} read GVA ${hex(PRESET_DEMO_FAULT_GVA)} (unmapped by the guest): ${miss.fault.kind}; read(vEVENTQ fd ${q.fd}) = ${n} bytes: sequence ${first.sequence}, ` +
        `${name} (${hex(evt.ID)}), vSID ${hex(evt.SID)}, RnW ${evt.RNW}, input address ${hex(evt.INPUT_ADDR)}; record ${hexBytes(first.data)}`,
    );
  });
  vm.cleanup.push(() => {
    if (p.close(q.fd) !== 0) throw new DemoError('close(vEVENTQ fd) failed');
  });
  vm.destroy.push([`vEVENTQ ${q.id}`, q.id], [`vIOMMU ${viommu.id}`, viommu.id]);
}

/** The guest's DMA to its own virtual address: written through the nested translation, seen at the guest physical page. */
function guestVaDma(vm: Vm, pageA: bigint): void {
  const payload = new TextEncoder().encode('DMA at a guest VA');
  vm.write(PRESET_DEMO_GVA + 0x100n, payload, 'DMA at a guest VA');
  const seen = vm.guest.read(pageA + 0x100n, payload.length);
  if (text(seen) !== text(payload)) throw new DemoError(`the device's write to GVA ${hex(PRESET_DEMO_GVA + 0x100n)} is not at IPA ${hex(pageA + 0x100n)}: "${text(seen)}"`);
  const back = vm.read(PRESET_DEMO_GVA, 12, 'DMA at a guest VA');
  vm.record('DMA at a guest VA', `write GVA ${hex(PRESET_DEMO_GVA + 0x100n)} landed at IPA ${hex(pageA + 0x100n)} ("${text(seen)}"); read GVA ${hex(PRESET_DEMO_GVA)} = "${text(back)}"`);
}

/** 16 bytes of an SMMU command as an invalidation entry (two little-endian u64). */
function commandBytes(cmd: readonly [bigint, bigint]): Uint8Array {
  const e = new Uint8Array(16);
  const view = new DataView(e.buffer);
  view.setBigUint64(0, cmd[0], true);
  view.setBigUint64(8, cmd[1], true);
  return e;
}

/**
 * Tegra241 CMDQV: the guest owns VCMDQ 0 of its VINTF (the page the VMM mmapped from the
 * iommufd and handed to it) and issues the TLBI + CMD_SYNC itself, with no ioctl.
 */
function tegraVcmdq(vm: Vm, table: GuestPageTable, viommu: { id: number; data: Uint8Array }): void {
  const { p, iommufd, guest } = vm;
  const out = U.iommu_viommu_tegra241_cmdqv.decode(viommu.data);
  const vintf = p.mmap(out.out_vintf_mmap_length, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED, iommufd, out.out_vintf_mmap_offset);
  if (vintf < 0n) throw new DemoError(`mmap(VINTF page) failed: ${U.errnoName(Number(-vintf))}`);
  vm.cleanup.unshift(() => {
    if (p.munmap(vintf, out.out_vintf_mmap_length) !== 0) throw new DemoError('munmap(VINTF page) failed');
  });
  const queue = guest.allocPage();
  const hwq = U.hwQueueAlloc(p, iommufd, { viommuId: viommu.id, type: U.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index: 0, nestingParentIova: queue, length: 0x1000n });
  vm.destroy.unshift([`HW queue ${hwq}`, hwq]);
  const pageC = labelPage(vm, 'guest page C');
  staleRead(vm, table, pageC, '"guest page C"', 'guest page B', 'stale translation (Tegra)');
  const reg = (off: number) => vintf + BigInt(off);
  const w32 = (off: number, v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    U.pokeUser(p, reg(off), b);
  };
  const r32 = (off: number) => new DataView(U.peekUser(p, reg(off), 4).buffer).getUint32(0, true);
  const tlbi = buildCmd({ opcode: 'TLBI_NH_VA', asid: ASID, vmid: 0, addr: PRESET_DEMO_GVA, leaf: true });
  guest.write64(queue, tlbi[0], tlbi[1], BigInt(CMDQ_OP.CMD_SYNC), 0n);
  w32(TEGRA241_CMDQV_REG.VCMDQ_CONFIG, 1);
  w32(TEGRA241_CMDQV_REG.VCMDQ_PROD, 2);
  const cons = r32(TEGRA241_CMDQV_REG.VCMDQ_CONS);
  if (cons !== 2) throw new DemoError(`the VCMDQ did not consume the guest's commands: CONS ${hex(cons)}, expected 0x2`);
  freshRead(
    vm,
    'guest page C',
    'guest VCMDQ',
    `VINTF page mmapped at VMM VA ${hex(vintf)} (${out.out_vintf_mmap_length >> 10n} KiB), HW queue ${hwq} = VCMDQ 0 at IPA ${hex(queue)}; guest wrote TLBI_NH_VA + CMD_SYNC, PROD = 2, CONS = ${cons}`,
  );
}

/** VT-d: nested HWPT (iommu_hwpt_vtd_s1) over the guest's x86 first-stage tables, descriptor invalidation, an I/O page fault. */
function vtdGuest(vm: Vm, phase: Phase): void {
  const { p, iommufd, devices, guest, parent } = vm;
  const dev0 = devices[0]!;
  // Linux 6.17 has no VT-d vIOMMU: the nested HWPT is allocated on the nest parent, and the
  // I/O page faults of its PRI-capable functions come to the VMM through a FAULT object.
  const fault = phase('FAULT queue', () => {
    const fault = U.faultQueueAlloc(p, iommufd);
    vm.record('FAULT queue', `FAULT ${fault.id} on fd ${fault.fd} (VT-d has no vIOMMU in Linux 6.17; its ATS+PRI functions report translation faults as page requests)`);
    return fault;
  });
  const table = new GuestPageTable(guest, X86_FIRST_STAGE_FORMAT);
  const pageA = labelPage(vm, 'guest page A');
  const pageB = labelPage(vm, 'guest page B');
  phase('guest tables', () => {
    table.map(PRESET_DEMO_GVA, pageA);
    vm.record('guest tables', `x86 first-stage PML4 at GPA ${hex(table.root)} (4-level, 48-bit); GVA ${hex(PRESET_DEMO_GVA)} → GPA ${hex(pageA)}`);
  });
  const nested = phase('nested HWPT', () => {
    const s1 = U.iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: table.root, addr_width: 48, __reserved: 0 });
    const nested = U.hwptAlloc(p, iommufd, { devId: dev0.devId, ptId: parent, faultId: fault.id, data: { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1 } });
    dev0.ptId = U.vfioDeviceAttachIommufdPt(p, dev0.fd, { ptId: nested });
    vm.record('nested HWPT', `HWPT ${nested} from iommu_hwpt_vtd_s1 { pgtbl_addr ${hex(table.root)}, addr_width 48 } on nest parent HWPT ${parent}, faults to FAULT ${fault.id}; ${dev0.path} attached`);
    return nested;
  });
  vm.destroy.push([`nested HWPT ${nested}`, nested], [`FAULT ${fault.id}`, fault.id]);
  vm.cleanup.push(() => {
    if (p.close(fault.fd) !== 0) throw new DemoError('close(FAULT fd) failed');
  });

  phase('DMA at a guest VA', () => guestVaDma(vm, pageA));
  phase('stale translation', () => staleRead(vm, table, pageB, '"guest page B"', 'guest page A', 'stale translation'));
  phase('IOMMU_HWPT_INVALIDATE', () => {
    const entry = U.iommu_hwpt_vtd_s1_invalidate.encode({ addr: PRESET_DEMO_GVA, npages: 1n, flags: 0, __reserved: 0 });
    const done = U.hwptInvalidate(p, iommufd, { hwptId: nested, dataType: U.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entryLen: U.iommu_hwpt_vtd_s1_invalidate.size, entries: [entry] });
    freshRead(vm, 'guest page B', 'IOMMU_HWPT_INVALIDATE', `iommu_hwpt_vtd_s1_invalidate { addr ${hex(PRESET_DEMO_GVA)}, npages 1 } on HWPT ${nested}: ${done.entryNum} descriptor(s) handled`);
  });

  phase('I/O page fault', () => {
    const miss = vm.host.dma(dev0.path, { iova: PRESET_DEMO_FAULT_GVA, length: 4, write: false });
    if (miss.ok) throw new DemoError(`a DMA at the unmapped GVA ${hex(PRESET_DEMO_FAULT_GVA)} was not blocked`);
    vm.faults++;
    const buf = new Uint8Array(4 * U.iommu_hwpt_pgfault.size);
    const n = p.read(fault.fd, buf);
    if (n < 0) throw new DemoError(`read(FAULT fd) failed: ${U.errnoName(-n)}`);
    const records = U.parsePageFaults(buf.subarray(0, n));
    const pf = records[0];
    if (records.length !== 1 || pf === undefined) throw new DemoError(`expected one page request after the fault, read ${records.length}`);
    if (pf.dev_id !== dev0.devId || pf.addr !== PRESET_DEMO_FAULT_GVA) throw new DemoError(`the page request names DEVICE ${pf.dev_id} at ${hex(pf.addr)}, expected DEVICE ${dev0.devId} at ${hex(PRESET_DEMO_FAULT_GVA)}`);
    // The guest handles it: maps the page, then the VMM answers and the device retries.
    const pageD = labelPage(vm, 'guest page D');
    table.map(PRESET_DEMO_FAULT_GVA, pageD);
    const answered = U.writePageResponses(p, fault.fd, [{ cookie: pf.cookie, code: U.IOMMUFD_PAGE_RESP_SUCCESS }]);
    const retry = vm.read(PRESET_DEMO_FAULT_GVA, 12, 'I/O page fault');
    vm.record(
      'I/O page fault',
      `${dev0.path} read GVA ${hex(PRESET_DEMO_FAULT_GVA)} (unmapped by the guest): ${miss.fault.kind}; read(FAULT fd ${fault.fd}) = ${n} bytes: DEVICE ${pf.dev_id}, ` +
        `addr ${hex(pf.addr)}, perm ${hex(pf.perm)}, grpid ${pf.grpid}, cookie ${pf.cookie}; record ${hexBytes(buf.subarray(0, n))}; ` +
        `guest mapped GPA ${hex(pageD)}, ${answered} response(s) written, retried DMA reads "${text(retry)}"`,
    );
  });
}

/** A guest QI descriptor (two little-endian qwords) as a 32-byte `iommu_viommu_vtd_invalidate` entry. */
function qiEntry(words: readonly bigint[]): Uint8Array {
  return iommu_viommu_vtd_invalidate.encode({ qw: [words[0] ?? 0n, words[1] ?? 0n, 0n, 0n] });
}

/** A PASID-based IOTLB or device-TLB descriptor as the demo prints it: its DID or SID and raw qwords. */
function describeQi(words: readonly bigint[]): string {
  const raw = `${hex(words[0]!)} ${hex(words[1]!)}`;
  const type = Number(words[0]! & 0xfn);
  if (type === VTD_DESC.PIOTLB) {
    const d = VtdPiotlbDesc.decode(words);
    return `PIOTLB (DID ${d.DID}, PASID ${d.PASID}, G ${d.G}, ADDR ${hex(d.ADDR)}, AM ${d.AM}) ${raw}`;
  }
  if (type === VTD_DESC.DEV_TLB) {
    const d = VtdDevTlbDesc.decode(words);
    return `dev-TLB (SID ${hex(d.SID)}, ADDR ${hex(d.ADDR)}) ${raw}`;
  }
  return `type ${hex(type)} ${raw}`;
}

/**
 * Beyond Linux 6.17: the project's experimental VT-d vIOMMU (type 0x8086, design note in
 * `@iommufd/intel-vtd`'s README). vDEVICEs give the functions guest RIDs, a nested HWPT from
 * the vIOMMU carries the guest's domain ID, the guest's own QI descriptors go through
 * IOMMU_HWPT_INVALIDATE on the vIOMMU and come out with the host's DID and RID, and a fault the
 * unit records comes back as a vEVENT naming the guest RID.
 */
function vtdViommuGuest(vm: Vm, phase: Phase): void {
  const { p, iommufd, devices, guest, parent } = vm;
  const dev0 = devices[0]!;
  const viommu = phase('vIOMMU (experimental)', () => {
    const v = U.viommuAlloc(p, iommufd, { devId: dev0.devId, hwptId: parent, type: IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP });
    vm.record(
      'beyond Linux 6.17: the experimental VT-d vIOMMU',
      `vIOMMU ${v.id} (INTEL_VTD_EXP, type ${hex(IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP)}, not in Linux) on nest parent HWPT ${parent}: the host resolves guest DIDs and RIDs and forwards recorded faults`,
    );
    return v.id;
  });
  phase('vDEVICE (experimental)', () => {
    const ids = devices.map((d, i) => {
      const rid = PRESET_DEMO_GUEST_RID + 8n * BigInt(i);
      const id = U.vdeviceAlloc(p, iommufd, { viommuId: viommu, devId: d.devId, virtId: rid });
      vm.destroy.push([`vDEVICE ${id}`, id]);
      return `vDEVICE ${id}: guest RID ${hex(rid)} (00:${(Number(rid) >> 3).toString(16).padStart(2, '0')}.0) → DEVICE ${d.devId}`;
    });
    vm.record('vDEVICEs', ids.join('; '));
  });
  const q = phase('vEVENTQ (experimental)', () => {
    const q = U.veventqAlloc(p, iommufd, { viommuId: viommu, type: IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, depth: 8 });
    vm.cleanup.push(() => {
      if (p.close(q.fd) !== 0) throw new DemoError('close(vEVENTQ fd) failed');
    });
    vm.record('vEVENTQ', `vEVENTQ ${q.id} (INTEL_VTD_EXP, depth 8) on fd ${q.fd}`);
    return q;
  });

  // A second guest address space (the guest's domain PRESET_DEMO_GUEST_DID): its own tables.
  const table = new GuestPageTable(guest, X86_FIRST_STAGE_FORMAT);
  const pageE = labelPage(vm, 'guest page E');
  const pageF = labelPage(vm, 'guest page F');
  phase('guest tables (vIOMMU)', () => {
    table.map(PRESET_DEMO_GVA, pageE);
    vm.record('guest tables (vIOMMU)', `guest domain ${PRESET_DEMO_GUEST_DID}: x86 first-stage PML4 at GPA ${hex(table.root)}; GVA ${hex(PRESET_DEMO_GVA)} → GPA ${hex(pageE)}`);
  });
  const nested = phase('nested HWPT (vIOMMU)', () => {
    const data = iommu_hwpt_vtd_s1_vdid.encode({ flags: 0n, pgtbl_addr: table.root, addr_width: 48, guest_did: PRESET_DEMO_GUEST_DID });
    const nested = U.hwptAlloc(p, iommufd, { devId: dev0.devId, ptId: viommu, data: { type: IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, bytes: data } });
    vm.destroy.unshift([`nested HWPT ${nested}`, nested]);
    const before = dev0.ptId;
    dev0.ptId = U.vfioDeviceAttachIommufdPt(p, dev0.fd, { ptId: nested });
    vm.record(
      'nested HWPT (vIOMMU)',
      `HWPT ${nested} from iommu_hwpt_vtd_s1_vdid { pgtbl_addr ${hex(table.root)}, addr_width 48, guest_did ${PRESET_DEMO_GUEST_DID} } on vIOMMU ${viommu}; ${dev0.path} replaced from HWPT ${before} onto it`,
    );
    return nested;
  });
  phase('DMA through the vIOMMU', () => {
    const read = vm.read(PRESET_DEMO_GVA, 12, 'DMA through the vIOMMU');
    if (text(read) !== 'guest page E') throw new DemoError(`DMA through the vIOMMU: GVA ${hex(PRESET_DEMO_GVA)} read "${text(read)}", expected "guest page E"`);
    vm.record('DMA through the vIOMMU', `read GVA ${hex(PRESET_DEMO_GVA)} through HWPT ${nested} = "${text(read)}"`);
  });
  phase('stale translation (vIOMMU)', () => staleRead(vm, table, pageF, '"guest page F"', 'guest page E', 'stale translation (vIOMMU)'));
  phase('guest QI descriptors', () => {
    const guestDescs = [
      VtdPiotlbDesc.encode({ TYPE: VTD_DESC.PIOTLB, G: 3, DID: PRESET_DEMO_GUEST_DID, PASID: 0, ADDR: PRESET_DEMO_GVA, AM: 0 }),
      VtdDevTlbDesc.encode({ TYPE: VTD_DESC.DEV_TLB, SID: Number(PRESET_DEMO_GUEST_RID), ADDR: PRESET_DEMO_GVA }),
    ];
    // What the driver put on the unit's invalidation queue for them (its wait descriptors aside).
    const qi = intelVtdUnitOf(vm.host.memory)?.unit.qi;
    const mark = qi?.log.length ?? 0;
    const done = U.hwptInvalidate(p, iommufd, { hwptId: viommu, dataType: IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP, entryLen: iommu_viommu_vtd_invalidate.size, entries: guestDescs.map(qiEntry) });
    const issued = (qi?.log.slice(mark) ?? []).flatMap((b) => b.descs.filter((d) => Number(d[0]! & 0xfn) !== VTD_DESC.WAIT));
    freshRead(
      vm,
      'guest page F',
      'IOMMU_HWPT_INVALIDATE (vIOMMU)',
      `guest ${guestDescs.map(describeQi).join(' + ')} on vIOMMU ${viommu}: ${done.entryNum} descriptor(s) handled, issued rewritten with the host DID and RID as ${issued.map(describeQi).join(' + ')}`,
    );
  });
  phase('vEVENT', () => {
    // The preset's functions use ATS + PRI: a failed translation request is answered in the
    // completion and becomes a page request (the FAULT fd above), never a fault record. An
    // untranslated request (AT = 00b, DMA the function does not cache in its ATC) is
    // translated by the unit itself, which records the fault in FRCD: the vIOMMU forwards it.
    const miss = vm.host.dma(dev0.path, { iova: PRESET_DEMO_FAULT_GVA, length: 4, write: false, untranslated: true });
    if (miss.ok) throw new DemoError(`an untranslated DMA at the unmapped GVA ${hex(PRESET_DEMO_FAULT_GVA)} was not blocked`);
    if (!miss.fault.recorded) throw new DemoError(`the untranslated DMA's ${miss.fault.kind} fault was not recorded`);
    vm.faults++;
    const { bytes: n, event: first } = readOneVevent(p, q.fd, IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, iommu_vevent_vtd_fault.size, 'vEVENT');
    vm.vevents++;
    const evt = iommu_vevent_vtd_fault.decode(first.data);
    if (BigInt(evt.virt_rid) !== PRESET_DEMO_GUEST_RID) throw new DemoError(`the vEVENT carries RID ${hex(evt.virt_rid)}, expected the guest RID ${hex(PRESET_DEMO_GUEST_RID)}`);
    vm.record(
      'vEVENT',
      `${dev0.path} untranslated read of GVA ${hex(PRESET_DEMO_FAULT_GVA)} (unmapped by the guest; an ATS translation request would have become a page request): ${miss.fault.kind}, recorded in a fault recording register; ` +
        `read(vEVENTQ fd ${q.fd}) = ${n} bytes: sequence ${first.sequence}, virt_rid ${hex(evt.virt_rid)}, reason ${hex(evt.reason)} (${vtdFaultName(evt.reason)}), addr ${hex(evt.addr)}, ` +
        `${(evt.flags & IOMMU_VEVENT_VTD_FAULT_READ) !== 0 ? 'read' : 'write'}; record ${hexBytes(first.data)}`,
    );
  });
  vm.destroy.push([`vEVENTQ ${q.id}`, q.id], [`vIOMMU ${viommu}`, viommu]);
}
