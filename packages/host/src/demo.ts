/**
 * The `iommufd-sim demo`: a VMM-style end-to-end run on a host, written the way a VMM
 * drives the kernel — guest RAM from a memfd, an IOAS mapping it at guest IOVAs, VFIO
 * devices bound and attached, device DMA at guest addresses, then the nested setup
 * (nest-parent HWPT, vIOMMU, vDEVICE, nested HWPT), a vIOMMU invalidation and a vEVENT read
 * from its vEVENTQ.
 */
import * as U from '@iommufd/uapi';
import type { StructLayout } from '@iommufd/uapi';
import type { Host } from './host.js';
import { hex } from './hex.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '@iommufd/uapi';

/** A step of the demo failed: which one and the errno it got. */
export class DemoError extends Error {
  override readonly name = 'DemoError';
}

/** One step of a VMM run as the summary states it: what was done and its exact result. */
export interface DemoStep {
  /** The step (`nest parent`, `stale translation`, `vEVENT` …). */
  readonly title: string;
  /** What it produced: object IDs, addresses, bytes read, records decoded. */
  readonly result: string;
}

/** What the demo did, for the summary. */
export interface DemoSummary {
  /** The host's platform. */
  readonly platform: string;
  /** Each VFIO device: its DEVICE object ID and the page table it ended attached to. */
  readonly devices: readonly { path: string; devId: number; ptId: number }[];
  /** Size of the guest RAM memfd. */
  readonly guestRamBytes: bigint;
  /** IOVA of guest physical address 0. */
  readonly guestIova: bigint;
  /** DMA transfers that completed. */
  readonly dmaTransfers: number;
  /** DMA transfers the IOMMU blocked. */
  readonly dmaFaults: number;
  /** vEVENTs read from the vEVENTQ. */
  readonly vevents: number;
  /** The iommufd object table just before teardown. */
  readonly objects: readonly { id: number; type: string; users: number }[];
  /** Long-term page pins left after every fd was closed (0 unless something leaked). */
  readonly pinnedPagesAfterClose: number;
  /** The steps of the run with their results, in order (the hardware presets' demo records them). */
  readonly steps?: readonly DemoStep[];
}

const GUEST_RAM = 2n << 20n;

/**
 * The demo on the `mock` platform (the selftest driver's nested flow), reporting progress
 * through `log`. Throws {@link DemoError}. The public entry is `runDemo`, which picks the run
 * for the host's platform.
 */
export function runMockDemo(host: Host, log: (line: string) => void): DemoSummary {
  const p = host.process;
  const { step, call, hex } = demoSteps(host);

  log(`host: platform ${host.platform}, ${host.vfioDevices.length} VFIO device(s)`);

  // Guest RAM: a shared memfd, as QEMU's memory backend does.
  const ramFd = p.memfdCreate('guest-ram', GUEST_RAM);
  step('memfd_create(guest-ram)', ramFd);
  const ram = p.mmap(GUEST_RAM, PROT_READ | PROT_WRITE, MAP_SHARED, ramFd);
  step('mmap(guest RAM)', Number(ram < 0n ? ram : 0n));
  const greeting = new TextEncoder().encode('hello from guest RAM');
  step('guest RAM write', p.poke(ram + 0x1000n, greeting));
  log(`guest RAM: ${GUEST_RAM >> 20n} MiB memfd mapped at VA ${hex(ram)}`);

  const iommufd = p.open('/dev/iommu');
  step('open(/dev/iommu)', iommufd);
  const ioas = call(iommufd, 'IOMMU_IOAS_ALLOC', U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, {}).out_ioas_id;
  // Guest physical 0 is placed at the start of the IOMMU's aperture.
  const iovaBase = BigInt(U.MOCK_APERTURE_START);
  call(iommufd, 'IOMMU_IOAS_MAP_FILE', U.IOMMU_IOAS_MAP_FILE, U.iommu_ioas_map_file, {
    flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
    ioas_id: ioas,
    fd: ramFd,
    start: 0n,
    length: GUEST_RAM,
    iova: iovaBase,
  });
  log(`IOAS ${ioas}: guest RAM mapped at IOVA ${hex(iovaBase)}..${hex(iovaBase + GUEST_RAM - 1n)}`);

  const devices = bindAndAttachAll(host, iommufd, ioas, step, log);
  const dev0 = devices[0]!;
  let { transfers, faults } = dmaRoundTrip(host, devices, ram, iovaBase, GUEST_RAM, greeting, log);

  // Nested translation: stage 2 = the IOAS, stage 1 = a guest-owned nested HWPT.
  const parent = call(iommufd, 'IOMMU_HWPT_ALLOC(NEST_PARENT)', U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, {
    flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT,
    dev_id: dev0.devId,
    pt_id: ioas,
  }).out_hwpt_id;
  const viommu = call(iommufd, 'IOMMU_VIOMMU_ALLOC', U.IOMMU_VIOMMU_ALLOC, U.iommu_viommu_alloc, {
    type: U.IOMMU_VIOMMU_TYPE_SELFTEST,
    dev_id: dev0.devId,
    hwpt_id: parent,
  }).out_viommu_id;
  const virtId = 0x10n;
  const vdevice = call(iommufd, 'IOMMU_VDEVICE_ALLOC', U.IOMMU_VDEVICE_ALLOC, U.iommu_vdevice_alloc, {
    viommu_id: viommu,
    dev_id: dev0.devId,
    virt_id: virtId,
  }).out_vdevice_id;
  log(`nest parent HWPT ${parent}, vIOMMU ${viommu}, vDEVICE ${vdevice} (virtual ID ${hex(virtId)})`);
  const dataVa = p.mmap(4096n, PROT_READ | PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS);
  step('mmap(scratch)', Number(dataVa < 0n ? dataVa : 0n));
  step('scratch write', p.poke(dataVa, U.iommu_hwpt_selftest.encode({ iotlb: U.IOMMU_TEST_IOTLB_DEFAULT })));
  const nested = call(iommufd, 'IOMMU_HWPT_ALLOC(nested)', U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, {
    dev_id: dev0.devId,
    pt_id: viommu,
    data_type: U.IOMMU_HWPT_DATA_SELFTEST,
    data_len: U.iommu_hwpt_selftest.size,
    data_uptr: dataVa,
  }).out_hwpt_id;
  const attach = U.vfio_device_attach_iommufd_pt.encode({ argsz: U.vfio_device_attach_iommufd_pt.size, pt_id: nested });
  step('VFIO_DEVICE_ATTACH_IOMMUFD_PT(nested)', p.ioctl(dev0.fd, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach));
  dev0.ptId = nested;
  log(`nested HWPT ${nested} allocated from vIOMMU ${viommu}; ${dev0.path} replaced onto it`);
  const q = call(iommufd, 'IOMMU_VEVENTQ_ALLOC', U.IOMMU_VEVENTQ_ALLOC, U.iommu_veventq_alloc, {
    viommu_id: viommu,
    type: U.IOMMU_VEVENTQ_TYPE_SELFTEST,
    veventq_depth: 8,
  });
  log(`vEVENTQ ${q.out_veventq_id} on fd ${q.out_veventq_fd}`);

  const inv = U.iommu_viommu_invalidate_selftest.encode({ flags: U.IOMMU_TEST_INVALIDATE_FLAG_ALL, vdev_id: Number(virtId) });
  step('scratch write', p.poke(dataVa + 256n, inv));
  const done = call(iommufd, 'IOMMU_HWPT_INVALIDATE(vIOMMU)', U.IOMMU_HWPT_INVALIDATE, U.iommu_hwpt_invalidate, {
    hwpt_id: viommu,
    data_uptr: dataVa + 256n,
    data_type: U.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
    entry_len: U.iommu_viommu_invalidate_selftest.size,
    entry_num: 1,
  });
  log(`IOMMU_HWPT_INVALIDATE on vIOMMU ${viommu}: ${done.entry_num} request(s) handled (device caches flushed for vDEVICE ${hex(virtId)})`);

  // The device reports an event; the host delivers it to the guest through the vEVENTQ.
  const trig = U.IOMMU_TEST_CMD_LAYOUTS.trigger_vevent.encode({ size: U.iommu_test_cmd.size, op: U.IOMMU_TEST_OP_TRIGGER_VEVENT, dev_id: dev0.devId });
  const cmd = new Uint8Array(U.iommu_test_cmd.size);
  cmd.set(trig);
  step('IOMMU_TEST_CMD(TRIGGER_VEVENT)', p.ioctl(iommufd, U.IOMMU_TEST_CMD, cmd));
  const { bytes: n, event } = readOneVevent(p, q.out_veventq_fd, U.IOMMU_VEVENTQ_TYPE_SELFTEST, U.iommu_viommu_event_selftest.size, 'vEVENT');
  const header = { sequence: event.sequence, flags: event.flags };
  const ev = U.iommu_viommu_event_selftest.decode(event.data);
  if (n !== 12 || BigInt(ev.virt_id) !== virtId) throw new DemoError(`unexpected vEVENT: ${n} bytes, virt_id ${hex(ev.virt_id)}`);
  log(`vEVENT read: sequence ${header.sequence}, flags ${header.flags}, virt_id ${hex(ev.virt_id)}`);

  const nestedRead = host.dma(dev0.path, { iova: iovaBase + 0x1000n, length: greeting.length, write: false });
  if (nestedRead.ok) {
    transfers++;
    log(`DMA ${dev0.path} read  IOVA ${hex(iovaBase + 0x1000n)} through nested HWPT ${nested}: "${new TextDecoder().decode(nestedRead.data)}"`);
  } else {
    faults++;
    log(`DMA ${dev0.path} through nested HWPT ${nested}: ${nestedRead.fault.kind}`);
  }

  const objects = host.objects(iommufd).map((o) => ({ id: o.id, type: o.type, users: o.users }));

  // Teardown in the VMM's order: the guest's view first (device off the nested HWPT, then
  // nested HWPT, vDEVICE, vEVENTQ, vIOMMU, nest parent), then the device fds and the iommufd.
  const det = U.vfio_device_detach_iommufd_pt.encode({ argsz: U.vfio_device_detach_iommufd_pt.size });
  step('VFIO_DEVICE_DETACH_IOMMUFD_PT', p.ioctl(dev0.fd, U.VFIO_DEVICE_DETACH_IOMMUFD_PT, det));
  const destroy = (what: string, id: number) => call(iommufd, `IOMMU_DESTROY(${what} ${id})`, U.IOMMU_DESTROY, U.iommu_destroy, { id });
  destroy('nested HWPT', nested);
  destroy('vDEVICE', vdevice);
  step('close(vEVENTQ)', p.close(q.out_veventq_fd));
  destroy('vEVENTQ', q.out_veventq_id);
  destroy('vIOMMU', viommu);
  destroy('nest parent HWPT', parent);
  for (const d of devices) step(`close(${d.path})`, p.close(d.fd));
  step('close(/dev/iommu)', p.close(iommufd));
  step('close(guest-ram memfd)', p.close(ramFd));
  step('munmap(guest RAM)', p.munmap(ram, GUEST_RAM));
  step('munmap(scratch)', p.munmap(dataVa, 4096n));
  log('destroyed the nested objects, closed every fd, unmapped guest RAM');

  return {
    platform: host.platform,
    devices: devices.map(({ path, devId, ptId }) => ({ path, devId, ptId })),
    guestRamBytes: GUEST_RAM,
    guestIova: iovaBase,
    dmaTransfers: transfers,
    dmaFaults: faults,
    vevents: 1,
    objects,
    pinnedPagesAfterClose: host.pinnedPages,
  };
}

/**
 * The demos' step helpers: `step` throws {@link DemoError} naming the step on a negative
 * return, `call` packs a uAPI struct (size filled in), issues the ioctl and decodes the result.
 */
export function demoSteps(host: Host) {
  const p = host.process;
  const step = (what: string, rc: number | bigint): void => {
    if (rc < 0) throw new DemoError(`${what} failed: ${U.errnoName(-Number(rc))} (${rc})`);
  };
  const call = <L extends StructLayout>(fd: number, what: string, request: number, layout: L, value: Record<string, number | bigint>) => {
    const bytes = layout.encode({ size: layout.size, ...value } as never);
    step(what, p.ioctl(fd, request, bytes));
    return layout.decode(bytes) as ReturnType<L['decode']>;
  };
  return { step, call, hex };
}

/**
 * Reads the one vEVENT a fault queued on the vEVENTQ at `fd`: the bytes read and the record.
 * Throws {@link DemoError} naming `what` when the read fails, when only a LOST_EVENTS header
 * came back (the host could not allocate the record: the fault's event is lost, as Linux
 * reports it) or when the queue held another number of records.
 */
export function readOneVevent(p: U.UserProcess, fd: number, type: number, payloadSize: number, what: string): { bytes: number; event: U.Vevent } {
  const buf = new Uint8Array(256);
  const n = p.read(fd, buf);
  if (n < 0) throw new DemoError(`${what}: read(vEVENTQ fd ${fd}) failed: ${U.errnoName(-n)} (${n})`);
  const events = U.parseVevents(buf.subarray(0, n), type, payloadSize);
  const first = events[0];
  if (first?.lostEvents === true) throw new DemoError(`${what}: read(vEVENTQ fd ${fd}) returned a LOST_EVENTS header and no record: the host could not queue the event`);
  if (events.length !== 1 || first === undefined) throw new DemoError(`${what}: expected one vEVENT on fd ${fd}, read ${events.length}`);
  return { bytes: n, event: first };
}

/** A VFIO device of the demo: its cdev fd, DEVICE ID and the page table it is attached to. */
export interface DemoDevice {
  readonly path: string;
  readonly fd: number;
  readonly devId: number;
  ptId: number;
}

/** Opens, binds and attaches every VFIO device of `host` to `ptId` (the demos' common start). */
export function bindAndAttachAll(host: Host, iommufd: number, ptId: number, step: (what: string, rc: number) => void, log: (line: string) => void): DemoDevice[] {
  const p = host.process;
  const devices: DemoDevice[] = [];
  for (const path of host.vfioDevices) {
    const fd = p.open(path);
    step(`open(${path})`, fd);
    const bind = U.vfio_device_bind_iommufd.encode({ argsz: U.vfio_device_bind_iommufd.size, iommufd });
    step(`VFIO_DEVICE_BIND_IOMMUFD(${path})`, p.ioctl(fd, U.VFIO_DEVICE_BIND_IOMMUFD, bind));
    const devId = U.vfio_device_bind_iommufd.get(bind, 'out_devid');
    const attach = U.vfio_device_attach_iommufd_pt.encode({ argsz: U.vfio_device_attach_iommufd_pt.size, pt_id: ptId });
    step(`VFIO_DEVICE_ATTACH_IOMMUFD_PT(${path})`, p.ioctl(fd, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach));
    const attached = U.vfio_device_attach_iommufd_pt.get(attach, 'pt_id');
    devices.push({ path, fd, devId, ptId: attached });
    log(`${path}: bound as DEVICE ${devId}, attached to IOAS ${ptId} through HWPT ${attached}`);
  }
  if (devices.length === 0) throw new DemoError('the demo needs at least one device: run with --devices 1 or more');
  return devices;
}

/**
 * The demos' DMA checks with guest RAM at `iovaBase`: the first device reads the greeting
 * at +0x1000, the last writes at +0x2000 and the guest sees it, a read past RAM is blocked.
 */
export function dmaRoundTrip(
  host: Host,
  devices: readonly DemoDevice[],
  ram: bigint,
  iovaBase: bigint,
  ramBytes: bigint,
  greeting: Uint8Array,
  log: (line: string) => void,
): { transfers: number; faults: number } {
  const dev0 = devices[0]!;
  const read = host.dma(dev0.path, { iova: iovaBase + 0x1000n, length: greeting.length, write: false });
  if (!read.ok) throw new DemoError(`DMA read at IOVA ${hex(iovaBase + 0x1000n)} faulted: ${read.fault.kind}`);
  log(`DMA ${dev0.path} read  IOVA ${hex(iovaBase + 0x1000n)}: "${new TextDecoder().decode(read.data)}"`);
  const last = devices[devices.length - 1]!;
  const payload = new TextEncoder().encode('written by the device');
  const write = host.dma(last.path, { iova: iovaBase + 0x2000n, length: payload.length, write: true, data: payload });
  if (!write.ok) throw new DemoError(`DMA write at IOVA ${hex(iovaBase + 0x2000n)} faulted: ${write.fault.kind}`);
  const seen = host.process.peek(ram + 0x2000n, payload.length);
  if (typeof seen === 'number' || new TextDecoder().decode(seen) !== 'written by the device') throw new DemoError('the guest did not see the device write');
  log(`DMA ${last.path} write IOVA ${hex(iovaBase + 0x2000n)}: guest RAM now reads "written by the device"`);
  const outside = host.dma(dev0.path, { iova: iovaBase + ramBytes, length: 4, write: false });
  if (outside.ok) throw new DemoError('a DMA outside the IOAS mappings was not blocked');
  log(`DMA ${dev0.path} read  IOVA ${hex(iovaBase + ramBytes)}: blocked (${outside.fault.kind})`);
  return { transfers: 2, faults: 1 };
}

/** The readable end-of-run summary. */
export function formatSummary(s: DemoSummary): string {
  const lines = [
    '',
    'Summary',
    `  platform          ${s.platform}`,
    `  guest RAM         ${s.guestRamBytes >> 20n} MiB at IOVA 0x${s.guestIova.toString(16)}`,
    ...s.devices.map((d) => `  ${d.path.padEnd(26)} DEVICE ${d.devId}, attached to HWPT ${d.ptId}`),
    `  DMA               ${s.dmaTransfers} transfer(s), ${s.dmaFaults} blocked`,
    `  vEVENTs           ${s.vevents} delivered`,
    ...(s.steps && s.steps.length > 0 ? ['  steps:', ...s.steps.map((st, i) => `  ${String(i + 1).padStart(3)}. ${st.title}: ${st.result}`)] : []),
    '  objects before close:',
    ...s.objects.map((o) => `    ${String(o.id).padStart(3)}  ${o.type.padEnd(12)} users ${o.users}`),
    `  pinned pages after close: ${s.pinnedPagesAfterClose}`,
  ];
  return lines.join('\n');
}
