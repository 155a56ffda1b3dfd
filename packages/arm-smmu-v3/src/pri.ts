/**
 * PRI page requests into the core's I/O page-fault path, and page responses back as
 * PRI_RESP. Linux 6.17 has no such path for SMMUv3 PRI (it denies every request, which is
 * what the driver does without this); a host opts in with `priIopf: true` at probe to model
 * a kernel whose SMMUv3 driver forwards PRI to IOPF, e.g. to exercise FAULT objects.
 */
import type { IopfPageRequest, Status } from '@iommufd/driver-api';
import type { ArmSmmuMaster } from './master.js';
import type { ArmSmmuV3, PriPageRequest } from './smmu.js';

/** `enum iommu_page_response_code` → PRI_RESP Resp (0 deny, 1 failure, 2 success). */
const RESP_OF_CODE: Readonly<Record<number, number>> = { 0: 2, 1: 0, 2: 1 };
/** `IOMMU_FAULT_PAGE_REQUEST_*` */
const PASID_VALID = 1;
const LAST_PAGE = 2;
/** `IOMMU_FAULT_PERM_*` */
const PERM = { READ: 1, WRITE: 2, EXEC: 4, PRIV: 8 } as const;

/** Installs the PRI → IOPF routing on `smmu`. */
export function installPriIopf(smmu: ArmSmmuV3): void {
  const partial = new Map<string, IopfPageRequest[]>();
  smmu.pageRequestSink = (master: ArmSmmuMaster, req: PriPageRequest) => {
    const fault: IopfPageRequest = {
      flags: (req.ssid !== undefined ? PASID_VALID : 0) | (req.last ? LAST_PAGE : 0),
      pasid: req.ssid ?? 0,
      grpid: req.grpid,
      perm: (req.read ? PERM.READ : 0) | (req.write ? PERM.WRITE : 0) | (req.exec ? PERM.EXEC : 0) | (req.priv ? PERM.PRIV : 0),
      addr: req.addr,
    };
    const key = `${req.sid}:${req.grpid}`;
    const faults = [...(partial.get(key) ?? []), fault];
    if (!req.last) {
      partial.set(key, faults);
      return;
    }
    partial.delete(key);
    // The RID's domain takes the group (user_pasid_table: PASID faults of nested guests too).
    const domain = master.domain;
    let st: Status = 1;
    if (domain?.iopfHandler !== undefined) st = domain.iopfHandler({ dev: master.dev, faults, domain });
    // Nobody to handle it: the group is answered INVALID right away (`iopf_error_response`).
    if (st !== 0) priResponse(smmu, master, fault, 1);
  };
}

/** `page_response`: the core's answer to a group, as PRI_RESP for its last request. */
export function priResponse(smmu: ArmSmmuV3, master: ArmSmmuMaster, request: IopfPageRequest, code: number): void {
  const ssv = (request.flags & PASID_VALID) !== 0;
  for (const sid of master.streams) {
    smmu.issueCmdWithSync({ opcode: 'PRI_RESP', sid, ssid: ssv ? request.pasid : 0, substreamValid: ssv, grpid: request.grpid, resp: RESP_OF_CODE[code] ?? 0 });
  }
}
