// Test harness: a machine with one VT-d unit and PCI functions, the intel-vtd driver probed
// on it, and a few lines that call the driver exactly as the core does (probe_device,
// domain alloc, attach, map) so the tests exercise only the driver-api entry points.
import { createMachine, type Machine, type PciCapabilities, type PciDevice, type VtdIommu, type VtdOptions } from '@iommufd/hw-model';
import type { Device, IommuDomain, IommuUserData, IommuUserDataArray, UserMemory } from '@iommufd/driver-api';
import { EFAULT } from '@iommufd/uapi';
import type { CoreDevice, IommuCore } from '@iommufd/core';
import { intelIommuOps, probeIntelIommu, type IntelIommu, type QiDesc } from '../src/index.js';

export const VTD_BASE = 0xfed9_0000n;
export const RAM_BASE = 0x4000_0000n;

export interface TestDeviceSpec {
  readonly bdf: { bus: number; dev: number; fn: number };
  readonly capabilities?: PciCapabilities;
}

export const PLAIN: TestDeviceSpec = { bdf: { bus: 0, dev: 2, fn: 0 } };
export const ATS_PASID_PRI: TestDeviceSpec = {
  bdf: { bus: 0, dev: 3, fn: 0 },
  capabilities: { ats: true, pri: true, pasid: { maxPasidLog2: 16, exec: false, priv: true } },
};

/** A user address space for driver user data (copy_from_user / copy_to_user). */
export class FakeUser implements UserMemory {
  private readonly bytes = new Map<bigint, Uint8Array>();
  private next = 0x10_0000n;
  /** Places `data` at a fresh user VA. */
  put(data: Uint8Array): bigint {
    const va = this.next;
    this.bytes.set(va, data.slice());
    this.next += BigInt(Math.max(4096, data.length + 4096));
    return va;
  }
  copyFromUser(va: bigint, length: number): Uint8Array | number {
    for (const [base, b] of this.bytes) {
      if (va >= base && va + BigInt(length) <= base + BigInt(b.length)) return b.slice(Number(va - base), Number(va - base) + length);
    }
    return EFAULT;
  }
  copyToUser(va: bigint, data: Uint8Array): number {
    for (const [base, b] of this.bytes) {
      if (va >= base && va + BigInt(data.length) <= base + BigInt(b.length)) {
        b.set(data, Number(va - base));
        return 0;
      }
    }
    return EFAULT;
  }
}

export class VtdTestbed {
  readonly machine: Machine;
  readonly hw: VtdIommu;
  readonly iommu: IntelIommu;
  readonly devs: Device[] = [];
  readonly pci: PciDevice[];
  readonly user = new FakeUser();

  /** The core's device handles, when the testbed was built on a core. */
  readonly coreDevs: CoreDevice[] = [];

  constructor(options: VtdOptions = {}, devices: readonly TestDeviceSpec[] = [PLAIN], strict = true, core?: IommuCore) {
    let unit: IntelIommu | undefined;
    this.machine = createMachine({
      ramBytes: 0x1000_0000n,
      strict,
      iommus: [{ kind: 'vtd', name: 'dmar0', base: VTD_BASE, options: { ...options, onInterrupt: (irq: { data: number }) => unit?.handleInterrupt(irq) } }],
      devices: devices.map((d) => ({ bdf: d.bdf, iommu: 'dmar0', ...(d.capabilities !== undefined ? { capabilities: d.capabilities } : {}) })),
    });
    this.hw = this.machine.iommus.get('dmar0') as VtdIommu;
    this.pci = [...this.machine.devices];
    this.iommu = probeIntelIommu({ memory: this.machine.memory, base: VTD_BASE });
    unit = this.iommu;
    core?.registerIommu(this.iommu);
    this.pci.forEach((p, i) => {
      const name = `0000:${hex2(p.bdf.bus)}:${hex2(p.bdf.dev)}.${p.bdf.fn}`;
      this.iommu.addPciDevice(name, p);
      const caps = p.capabilities;
      if (core !== undefined) {
        // The core runs probe_device itself (iommu_device_register + bus probe).
        const cd = core.addDevice({ name, iommu: this.iommu, group: i + 1, ...(caps.pasid !== undefined ? { pasid: caps.pasid } : {}), pri: caps.pri === true, ats: caps.ats === true });
        this.coreDevs.push(cd);
        this.devs.push(cd);
        return;
      }
      const dev: Device = {
        name,
        iommu: this.iommu,
        groupId: i,
        pasid: caps.pasid,
        pri: caps.pri === true,
        ats: caps.ats === true,
        isVf: false,
        iommuPriv: undefined,
      };
      const rc = intelIommuOps.probeDevice!(dev);
      if (rc !== 0) throw new Error(`probe_device failed: ${rc}`);
      this.devs.push(dev);
    });
  }

  get mem() {
    return this.machine.memory;
  }

  /** Allocates a paging domain as the core does. */
  allocPaging(flags = 0, dev = this.devs[0]!): IommuDomain {
    const d = intelIommuOps.domainAllocPagingFlags!(dev, flags, undefined);
    if (typeof d === 'number') throw new Error(`domain_alloc_paging_flags failed: ${d}`);
    return d;
  }

  /** User data for a driver struct. */
  userData(type: number, bytes: Uint8Array, len = bytes.length): IommuUserData {
    return { type, uptr: this.user.put(bytes), len, user: this.user };
  }

  /** A user array of driver entries. */
  userArray(type: number, entries: readonly Uint8Array[], entryLen = entries[0]?.length ?? 24): IommuUserDataArray {
    const all = new Uint8Array(Math.max(1, entries.length * entryLen));
    entries.forEach((e, i) => all.set(e.subarray(0, entryLen), i * entryLen));
    return { type, uptr: this.user.put(all), entryLen, entryNum: entries.length, user: this.user };
  }

  /** Descriptors of the batches submitted since `mark` (without the appended waits). */
  batchesSince(mark: number): QiDesc[][] {
    return this.iommu.qi.log.slice(mark).map((b) => [...b.descs]);
  }

  /** Physical address of a fresh zeroed RAM page. */
  page(n = 1): bigint {
    return this.mem.allocPages(n)[0]!;
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Little-endian words of a byte array. */
export function words(bytes: Uint8Array): bigint[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.length / 8 }, (_, i) => v.getBigUint64(i * 8, true));
}

/** Hex of a descriptor's words. */
export function hexDesc(d: readonly bigint[]): string[] {
  return d.map((w) => '0x' + w.toString(16).padStart(16, '0'));
}
