/**
 * Event queues (eventq.c): vEVENTQ (driver-reported vIOMMU events, read-only fd) and FAULT
 * (I/O page faults from HWPTs, read/write fd). Both fds pin their object and the context.
 */
import {
  EEXIST,
  EINVAL,
  ENOMEM,
  EOPNOTSUPP,
  ESPIPE,
  IOMMU_PGFAULT_FLAGS_LAST_PAGE,
  IOMMU_PGFAULT_FLAGS_PASID_VALID,
  IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
  IOMMU_VEVENTQ_TYPE_DEFAULT,
  IOMMUFD_PAGE_RESP_INVALID,
  IOMMUFD_PAGE_RESP_SUCCESS,
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
  iommufd_vevent_header,
  type iommu_fault_alloc,
  type iommu_veventq_alloc,
} from '@iommufd/uapi';
import type { Errno, IopfGroup } from '@iommufd/driver-api';
import type { IommufdCtxImpl, Ucmd } from './context.js';
import type { KernelFile } from './kernel.js';
import { IommufdObject, pinObject, unpinObject } from './object.js';
import type { BoundDevice, CoreDevice } from './device.js';
import type { Hwpt } from './hw-pagetable.js';
import { allocUcmd, type Viommu } from './viommu.js';

type Cmd<L> = L extends { decode(b: Uint8Array): infer V } ? V : never;

/** EPOLLIN | EPOLLRDNORM */
const EPOLLIN_RDNORM = 0x001 | 0x040;
/** EPOLLOUT */
const EPOLLOUT = 0x004;

/** The fd side of an event queue: holds a users ref on the object and a ctx file ref. */
function eventqFile(obj: IommufdObject, kind: string, io: Pick<KernelFile, 'read' | 'write' | 'poll'>): KernelFile {
  obj.users++;
  obj.ictx.getFile();
  let released = false;
  return {
    kind,
    ...io,
    release() {
      if (released) return;
      released = true;
      obj.users--;
      obj.ictx.putFile();
    },
  };
}

/** One queued vEVENT (or the lost-events header). */
export interface VeventRecord {
  readonly lost: boolean;
  readonly data: Uint8Array;
  sequence: number;
}

/** A VEVENTQ object. */
export class Veventq extends IommufdObject {
  /** `VEVENTQ` */
  readonly type = 'VEVENTQ' as const;
  /** Queued records (the lost-events header may be the last one). */
  readonly deliver: VeventRecord[] = [];
  /** Records counted against the depth. */
  numEvents = 0;
  /** Next sequence number (31-bit). */
  sequence = 0;
  /** The single preallocated lost-events header. */
  readonly lostHeader: VeventRecord = { lost: true, data: new Uint8Array(0), sequence: 0 };
  constructor(
    ictx: IommufdCtxImpl,
    /** The vIOMMU (pinned). */
    readonly viommu: Viommu,
    /** `enum iommu_veventq_type`. */
    readonly eventType: number,
    /** Maximum queued records. */
    readonly depth: number,
  ) {
    super(ictx);
  }

  /** `iommufd_veventq_destroy`. */
  destroy(): void {
    this.deliver.length = 0;
    const i = this.viommu.veventqs.indexOf(this);
    if (i >= 0) this.viommu.veventqs.splice(i, 1);
    if (this.pinned.includes(this.viommu)) unpinObject(this, this.viommu);
  }

  /** `iommufd_veventq_abort`. */
  override abort(): void {
    this.destroy();
  }

  private enqueue(rec: VeventRecord): void {
    // A lost header at the tail is moved to carry the newest sequence.
    if (this.deliver.at(-1) === this.lostHeader) this.deliver.pop();
    rec.sequence = this.sequence;
    this.sequence = (this.sequence + 1) & 0x7fffffff;
    this.deliver.push(rec);
  }

  /** `iommufd_viommu_report_event` for this queue. */
  report(data: Uint8Array): 0 | Errno {
    if (this.numEvents === this.depth) {
      this.enqueue(this.lostHeader);
      return 0;
    }
    if (this.ictx.shouldFail('vevent-alloc')) {
      this.enqueue(this.lostHeader);
      return ENOMEM;
    }
    this.numEvents++;
    this.enqueue({ lost: false, data: data.slice(), sequence: 0 });
    return 0;
  }

  /** read(): never blocks; whole records only. */
  read(buf: Uint8Array, position: number): number {
    if (position !== 0) return -ESPIPE;
    let done = 0;
    while (this.deliver.length) {
      const head = this.deliver[0]!;
      const need = iommufd_vevent_header.size + (head.lost ? 0 : head.data.byteLength);
      if (buf.byteLength - done < need) break;
      this.deliver.shift();
      iommufd_vevent_header.encode(
        { flags: head.lost ? IOMMU_VEVENTQ_FLAG_LOST_EVENTS : 0, sequence: head.sequence },
        buf,
        done,
      );
      buf.set(head.data, done + iommufd_vevent_header.size);
      done += need;
      if (!head.lost) this.numEvents--;
    }
    return done;
  }
}

/** IOMMU_VEVENTQ_ALLOC */
export function iommufdVeventqAlloc(ucmd: Ucmd<Cmd<typeof iommu_veventq_alloc>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.flags || cmd.__reserved || cmd.type === IOMMU_VEVENTQ_TYPE_DEFAULT) return EOPNOTSUPP;
  if (!cmd.veventq_depth) return EINVAL;
  const viommu = ictx.getObject<Viommu>(cmd.viommu_id, 'VIOMMU');
  if (typeof viommu === 'number') return viommu;
  try {
    if (viommu.veventqs.some((q) => q.eventType === cmd.type)) return EEXIST;
    const q = ictx.allocObject(new Veventq(ictx, viommu, cmd.type, cmd.veventq_depth));
    if (typeof q === 'number') return q;
    pinObject(q, viommu);
    viommu.veventqs.push(q);
    const fd = ictx.process.reserveFd();
    if (fd < 0) {
      ictx.abortAndDestroy(q);
      return -fd;
    }
    const file = eventqFile(q, '[iommufd-viommu-event]', {
      read: (buf, pos) => q.read(buf, pos),
      poll: () => (q.deliver.length ? EPOLLIN_RDNORM : 0),
    });
    q.file = file;
    cmd.out_veventq_id = q.id;
    cmd.out_veventq_fd = fd;
    const rc = ucmd.respond();
    if (rc) {
      ictx.process.releaseFd(fd);
      ictx.abortAndDestroy(q);
      return rc;
    }
    ictx.finalize(q);
    q.file = undefined;
    ictx.process.installFd(fd, file);
    return 0;
  } finally {
    ictx.putObject(viommu);
  }
}

/** One delivered fault group and where it came from. */
export interface FaultGroup {
  readonly group: IopfGroup;
  readonly hwpt: Hwpt;
  readonly idev: BoundDevice;
}

/** A FAULT object. */
export class Fault extends IommufdObject {
  /** `FAULT` */
  readonly type = 'FAULT' as const;
  /** Groups waiting to be read. */
  readonly deliver: FaultGroup[] = [];
  /** Groups read and waiting for a response, by cookie. */
  readonly response = new Map<number, FaultGroup>();

  /** `iommufd_fault_iopf_handler`: queue the group for read(). */
  iopfHandler(group: IopfGroup): 0 | Errno {
    const hwpt = group.domain.cookie as Hwpt;
    const idev = (group.dev as CoreDevice).bound;
    if (!idev) return EINVAL;
    this.deliver.push({ group, hwpt, idev });
    return 0;
  }

  private respond(g: FaultGroup, code: number): void {
    const last = g.group.faults.at(-1);
    if (last) g.group.dev.iommu.ops.pageResponse?.(g.group.dev, last, code);
  }

  /** Auto-responds INVALID to every fault of `idev` from `hwpt` (detach / replace). */
  autoRespond(idev: BoundDevice, hwpt: Hwpt): void {
    for (let i = this.deliver.length - 1; i >= 0; i--) {
      const g = this.deliver[i]!;
      if (g.idev === idev && g.hwpt === hwpt) {
        this.deliver.splice(i, 1);
        this.respond(g, IOMMUFD_PAGE_RESP_INVALID);
      }
    }
    for (const [cookie, g] of [...this.response]) {
      if (g.idev === idev && g.hwpt === hwpt) {
        this.response.delete(cookie);
        this.respond(g, IOMMUFD_PAGE_RESP_INVALID);
      }
    }
  }

  /** `iommufd_fault_destroy`: every pending fault is answered INVALID. */
  destroy(): void {
    for (const g of this.deliver.splice(0)) this.respond(g, IOMMUFD_PAGE_RESP_INVALID);
    for (const g of this.response.values()) this.respond(g, IOMMUFD_PAGE_RESP_INVALID);
    this.response.clear();
  }

  /** read(): whole groups of 40-byte records, each group with one cookie. */
  read(buf: Uint8Array, position: number): number {
    const rec = iommu_hwpt_pgfault.size;
    if (position !== 0 || buf.byteLength % rec) return -ESPIPE;
    let done = 0;
    while (this.deliver.length) {
      const g = this.deliver[0]!;
      if (buf.byteLength - done < rec * g.group.faults.length) break;
      let cookie = 1;
      while (this.response.has(cookie)) cookie++;
      this.deliver.shift();
      this.response.set(cookie, g);
      for (const f of g.group.faults) {
        iommu_hwpt_pgfault.encode(
          {
            flags: f.flags & (IOMMU_PGFAULT_FLAGS_PASID_VALID | IOMMU_PGFAULT_FLAGS_LAST_PAGE),
            dev_id: g.idev.id,
            pasid: f.pasid,
            grpid: f.grpid,
            perm: f.perm,
            addr: f.addr,
            length: 0,
            cookie,
          },
          buf,
          done,
        );
        done += rec;
      }
    }
    return done;
  }

  /** write(): 8-byte responses; each valid one completes its group. */
  write(buf: Uint8Array, position: number): number {
    const rec = iommu_hwpt_page_response.size;
    if (position !== 0 || buf.byteLength % rec) return -ESPIPE;
    let done = 0;
    let rc = 0;
    while (done < buf.byteLength) {
      const r = iommu_hwpt_page_response.decode(buf.subarray(done, done + rec));
      if (r.code !== IOMMUFD_PAGE_RESP_SUCCESS && r.code !== IOMMUFD_PAGE_RESP_INVALID) {
        rc = EINVAL;
        break;
      }
      const g = this.response.get(r.cookie);
      if (!g) {
        rc = EINVAL;
        break;
      }
      this.response.delete(r.cookie);
      this.respond(g, r.code);
      done += rec;
    }
    // Nothing written: the error, or 0 for an empty write (never -0).
    return done ? done : rc ? -rc : 0;
  }
}

/** IOMMU_FAULT_QUEUE_ALLOC */
export function iommufdFaultAlloc(ucmd: Ucmd<Cmd<typeof iommu_fault_alloc>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.flags) return EOPNOTSUPP;
  const fault = allocUcmd(ucmd, new Fault(ictx));
  if (typeof fault === 'number') return fault;
  const fd = ictx.process.reserveFd();
  if (fd < 0) return -fd;
  const file = eventqFile(fault, '[iommufd-pgfault]', {
    read: (buf, pos) => fault.read(buf, pos),
    write: (buf, pos) => fault.write(buf, pos),
    poll: () => EPOLLOUT | (fault.deliver.length ? EPOLLIN_RDNORM : 0),
  });
  fault.file = file;
  cmd.out_fault_id = fault.id;
  cmd.out_fault_fd = fd;
  const rc = ucmd.respond();
  if (rc) {
    ictx.process.releaseFd(fd);
    return rc;
  }
  fault.file = undefined;
  ictx.process.installFd(fd, file);
  return 0;
}

/** `iommufd_viommu_report_event` (driver.c). */
export function viommuReportEvent(viommu: Viommu, type: number, data: Uint8Array): 0 | Errno {
  const q = viommu.veventqs.find((x) => x.eventType === type);
  if (!q) return EOPNOTSUPP;
  return q.report(data);
}
