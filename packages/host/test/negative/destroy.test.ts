// §1.3-§1.5 IOMMU_DESTROY: ENOENT for an ID that is not live, EBUSY whenever another
// reference than the table's is held — the whole EBUSY matrix, one row per holder.
import { PAGE, table, U, type Env, type Row } from './harness.js';

const destroy = (id: number) => ({ layout: U.iommu_destroy, value: { id } });
type D = { id: number; mmio?: bigint; length?: bigint };

/** A mock vIOMMU with a page of queue memory mapped in its parent's IOAS. */
function queueMemory(e: Env) {
  const v = e.viommu();
  const iova = e.map(v.ioas, PAGE, e.prof.base);
  return { ...v, iova };
}

table('IOMMU_DESTROY', U.IOMMU_DESTROY, [
  { name: '§1.5 ID 0 → ENOENT', arg: () => destroy(0), errno: U.ENOENT },
  { name: '§1.5 an ID never handed out → ENOENT', arg: () => destroy(1234), errno: U.ENOENT },
  { name: '§1.5 an ID above the 31-bit limit → ENOENT', arg: () => destroy(0x8000_0001), errno: U.ENOENT },
  { name: '§1.5 DEVICE: always (the binding driver holds a reference) → EBUSY', arg: (e) => destroy(e.devIds[0]!), errno: U.EBUSY },
  {
    name: '§1.5 IOAS with a manual HWPT_PAGING → EBUSY',
    setup: (e) => {
      const id = e.ioas();
      e.hwpt(id);
      return { id };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5 IOAS with an automatic HWPT (device attached) → EBUSY',
    setup: (e) => {
      const id = e.ioas();
      e.attach(0, id);
      return { id };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5 HWPT_PAGING with a device attached → EBUSY',
    setup: (e) => {
      const id = e.hwpt(e.ioas());
      e.attach(0, id);
      return { id };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5 automatic HWPT_PAGING with its device attached → EBUSY',
    setup: (e) => ({ id: e.attach(0, e.ioas()) }),
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5 HWPT_PAGING parent of a HWPT_NESTED → EBUSY',
    needsNestedOnParent: true,
    setup: (e) => {
      const id = e.hwpt(e.ioas(), U.IOMMU_HWPT_ALLOC_NEST_PARENT);
      const n = e.prof.nestedOnParent!;
      e.ok(U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, { dev_id: e.devIds[0]!, pt_id: id, data_type: n.type, data_len: n.data.length, data_uptr: e.put(n.data) });
      return { id };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  { name: '§1.5 HWPT_PAGING used by a vIOMMU → EBUSY', needsViommu: true, setup: (e) => ({ id: e.viommu().parent }), arg: (_e, s) => destroy(s.id), errno: U.EBUSY },
  {
    name: '§1.5 HWPT_NESTED with a device attached → EBUSY',
    needsViommu: true,
    setup: (e) => {
      const v = e.viommu();
      e.vdevice(v.viommu, 1n, 0);
      const id = e.nested(v.viommu);
      e.attach(0, id);
      return { id };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5 VIOMMU with a vDEVICE → EBUSY',
    needsViommu: true,
    setup: (e) => {
      const v = e.viommu();
      e.vdevice(v.viommu);
      return { id: v.viommu };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5 VIOMMU with a nested HWPT → EBUSY',
    needsViommu: true,
    setup: (e) => {
      const v = e.viommu();
      e.nested(v.viommu);
      return { id: v.viommu };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5 VIOMMU with a vEVENTQ (its fd closed) → EBUSY',
    needsViommu: true,
    setup: (e) => {
      const v = e.viommu();
      e.p.close(e.veventq(v.viommu).fd);
      return { id: v.viommu };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5 VIOMMU with a HW_QUEUE → EBUSY',
    presets: ['mock'],
    setup: (e) => {
      const v = queueMemory(e);
      e.hwQueue(v.viommu, v.iova, 0);
      return { id: v.viommu };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5/§3.6 VIOMMU with a live mmap of its MMIO region → EBUSY',
    presets: ['mock'],
    setup: (e) => {
      const r = e.viommuWithRegion();
      const mmio = e.p.mmap(r.length, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED, e.fd, r.offset);
      if (mmio < 0n) throw new Error(`mmap ${mmio}`);
      return { id: r.viommu, mmio, length: r.length };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
    cleanup: (e, s) => {
      e.p.munmap(s.mmio!, s.length!);
    },
  },
  {
    name: '§1.5 IOAS with a HW_QUEUE internal ACCESS → EBUSY',
    presets: ['mock'],
    setup: (e) => {
      const v = queueMemory(e);
      e.hwQueue(v.viommu, v.iova, 0);
      return { id: v.ioas };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5/§5.2 the internal ACCESS of a HW_QUEUE (its ID is user-visible) → EBUSY',
    presets: ['mock'],
    setup: (e) => {
      const v = queueMemory(e);
      return { id: e.hwQueue(v.viommu, v.iova, 0) + 1 };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5 HW_QUEUE another queue depends on → EBUSY',
    presets: ['mock'],
    setup: (e) => {
      const v = queueMemory(e);
      const id = e.hwQueue(v.viommu, v.iova, 0);
      e.hwQueue(v.viommu, v.iova + PAGE / 2n, 1);
      return { id };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§1.5/§5.4 VEVENTQ whose fd is open → EBUSY',
    needsViommu: true,
    setup: (e) => ({ id: e.veventq(e.viommu().viommu).id }),
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  { name: '§1.5/§5.4 FAULT whose fd is open → EBUSY', setup: (e) => ({ id: e.fault().id }), arg: (_e, s) => destroy(s.id), errno: U.EBUSY },
  {
    name: '§1.5 FAULT (fd closed) referenced by a HWPT → EBUSY',
    presets: ['mock'],
    setup: (e) => {
      const f = e.fault();
      e.p.close(f.fd);
      e.ok(U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, { dev_id: e.devIds[0]!, pt_id: e.ioas(), flags: U.IOMMU_HWPT_FAULT_ID_VALID, fault_id: f.id });
      return { id: f.id };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.EBUSY,
  },
  {
    name: '§5.1 a tombstoned vDEVICE (its device unbound first) → ENOENT',
    needsViommu: true,
    setup: (e) => {
      const v = e.viommu();
      const id = e.vdevice(v.viommu, 5n, 1);
      e.p.close(e.devFds[1]!);
      return { id };
    },
    arg: (_e, s) => destroy(s.id),
    errno: U.ENOENT,
  },
] satisfies Row<D>[]);
