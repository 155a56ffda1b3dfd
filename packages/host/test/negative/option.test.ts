// §3.2 IOMMU_OPTION (only val64 is copied back), IOMMU_VFIO_IOAS and
// IOMMU_IOAS_CHANGE_PROCESS, each check in the kernel's order.
import { expect } from 'vitest';
import { PAGE, table, U, withU64, type Env, type Row } from './harness.js';

const opt = (value: Record<string, number | bigint>) => ({ layout: U.iommu_option, value });
const { IOMMU_OPTION_RLIMIT_MODE: RLIMIT, IOMMU_OPTION_HUGE_PAGES: HUGE, IOMMU_OPTION_OP_SET: SET, IOMMU_OPTION_OP_GET: GET } = U;
const VAL64 = U.iommu_option.offsetOf('val64');

table('IOMMU_OPTION', U.IOMMU_OPTION, [
  { name: '§3.2 __reserved≠0 → EOPNOTSUPP (wins over an unknown option)', arg: () => opt({ option_id: 7, __reserved: 1 }), errno: U.EOPNOTSUPP },
  { name: '§3.2 unknown option_id → EOPNOTSUPP', arg: () => opt({ option_id: 2, op: GET }), errno: U.EOPNOTSUPP },
  { name: '§3.2 RLIMIT_MODE with object_id≠0 → EOPNOTSUPP', arg: () => opt({ option_id: RLIMIT, op: GET, object_id: 1 }), errno: U.EOPNOTSUPP },
  { name: '§3.2 RLIMIT_MODE unknown op → EOPNOTSUPP', arg: () => opt({ option_id: RLIMIT, op: 2 }), errno: U.EOPNOTSUPP },
  {
    name: '§3.2 RLIMIT_MODE SET without CAP_SYS_RESOURCE → EPERM (wins over EBUSY)',
    setup: (e) => {
      e.proc.credentials.capSysResource = false;
      return {};
    },
    arg: () => opt({ option_id: RLIMIT, op: SET, val64: 1n }),
    errno: U.EPERM,
    after: (e, _s, before) => {
      e.proc.credentials.capSysResource = true;
      expect(e.host.objects(e.fd)).toEqual(before.objects);
    },
  },
  {
    name: '§3.2/§5.14 RLIMIT_MODE SET with any object (bound devices) → EBUSY',
    arg: () => opt({ option_id: RLIMIT, op: SET, val64: 1n }),
    errno: U.EBUSY,
  },
  {
    name: '§3.2 RLIMIT_MODE SET with an IOAS only → EBUSY',
    bind: false,
    setup: (e) => ({ ioas: e.ioas() }),
    arg: () => opt({ option_id: RLIMIT, op: SET, val64: 0n }),
    errno: U.EBUSY,
  },
  { name: '§3.2 RLIMIT_MODE SET val64 2 on an empty context → EINVAL (val64 not copied back)', bind: false, arg: () => opt({ option_id: RLIMIT, op: SET, val64: 2n }), errno: U.EINVAL },
  {
    name: '§2.7 RLIMIT_MODE GET on /dev/vfio/vfio (MM mode) copies back only val64 = 1',
    bind: false,
    path: '/dev/vfio/vfio',
    arg: () => opt({ option_id: RLIMIT, op: GET, val64: 0xffn }),
    errno: 0,
    copyBack: (sent) => withU64(sent, VAL64, 1n),
  },
  { name: '§3.2 HUGE_PAGES unknown IOAS → ENOENT (the lookup wins over an unknown op)', arg: () => opt({ option_id: HUGE, op: 9, object_id: 99 }), errno: U.ENOENT },
  { name: '§3.2 HUGE_PAGES object_id of a DEVICE → ENOENT', arg: (e) => opt({ option_id: HUGE, op: GET, object_id: e.devIds[0]! }), errno: U.ENOENT },
  { name: '§3.2 HUGE_PAGES unknown op → EOPNOTSUPP', setup: (e) => ({ ioas: e.ioas() }), arg: (_e, s) => opt({ option_id: HUGE, op: 2, object_id: s.ioas! }), errno: U.EOPNOTSUPP },
  { name: '§3.2 HUGE_PAGES SET val64 2 → EINVAL', setup: (e) => ({ ioas: e.ioas() }), arg: (_e, s) => opt({ option_id: HUGE, op: SET, object_id: s.ioas!, val64: 2n }), errno: U.EINVAL },
  {
    name: '§3.2 HUGE_PAGES SET 0 with a domain attached and a mapping → EINVAL',
    setup: (e) => {
      const ioas = e.ioas();
      e.attach(0, ioas);
      e.map(ioas, PAGE, e.prof.base);
      return { ioas };
    },
    arg: (_e, s) => opt({ option_id: HUGE, op: SET, object_id: s.ioas!, val64: 0n }),
    errno: U.EINVAL,
  },
  {
    name: '§2.7 HUGE_PAGES GET copies back only val64 (= 1)',
    setup: (e) => ({ ioas: e.ioas() }),
    arg: (_e, s) => opt({ option_id: HUGE, op: GET, object_id: s.ioas!, val64: 0x55n }),
    errno: 0,
    copyBack: (sent) => withU64(sent, VAL64, 1n),
  },
] satisfies Row[]);

const vfioIoas = (value: Record<string, number | bigint>) => ({ layout: U.iommu_vfio_ioas, value });

table('IOMMU_VFIO_IOAS', U.IOMMU_VFIO_IOAS, [
  { name: '§3.2 __reserved≠0 → EOPNOTSUPP', arg: () => vfioIoas({ op: U.IOMMU_VFIO_IOAS_GET, __reserved: 1 }), errno: U.EOPNOTSUPP },
  { name: '§3.2/§5.20 GET without a compat IOAS → ENODEV (GET does not create one)', arg: () => vfioIoas({ op: U.IOMMU_VFIO_IOAS_GET }), errno: U.ENODEV },
  { name: '§3.2 SET of an unknown IOAS → ENOENT', arg: () => vfioIoas({ op: U.IOMMU_VFIO_IOAS_SET, ioas_id: 99 }), errno: U.ENOENT },
  { name: '§3.2 SET of a DEVICE id → ENOENT', arg: (e) => vfioIoas({ op: U.IOMMU_VFIO_IOAS_SET, ioas_id: e.devIds[0]! }), errno: U.ENOENT },
  { name: '§3.2 unknown op → EOPNOTSUPP', arg: () => vfioIoas({ op: 3 }), errno: U.EOPNOTSUPP },
  {
    name: '§1.1 the compat IOAS is cleared when destroyed: GET → ENODEV',
    setup: (e) => {
      const ioas = e.ioas();
      e.ok(U.IOMMU_VFIO_IOAS, U.iommu_vfio_ioas, { op: U.IOMMU_VFIO_IOAS_SET, ioas_id: ioas });
      e.ok(U.IOMMU_DESTROY, U.iommu_destroy, { id: ioas });
      return {};
    },
    arg: () => vfioIoas({ op: U.IOMMU_VFIO_IOAS_GET }),
    errno: U.ENODEV,
  },
] satisfies Row[]);

const mapFile = (e: Env, ioas: number, iova: bigint) => {
  const mfd = e.p.memfdCreate('guest', PAGE);
  e.ok(U.IOMMU_IOAS_MAP_FILE, U.iommu_ioas_map_file, { ioas_id: ioas, flags: U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE | U.IOMMU_IOAS_MAP_FIXED_IOVA, fd: mfd, length: PAGE, iova });
};

table('IOMMU_IOAS_CHANGE_PROCESS', U.IOMMU_IOAS_CHANGE_PROCESS, [
  { name: '§3.2 __reserved≠0 → EOPNOTSUPP', arg: () => ({ layout: U.iommu_ioas_change_process, value: { __reserved: 1 } }), errno: U.EOPNOTSUPP },
  {
    name: '§3.2 an anonymous (not MAP_FILE) area → EINVAL, pins and accounting unchanged',
    setup: (e) => {
      const ioas = e.ioas();
      e.attach(0, ioas);
      e.map(ioas, PAGE, e.prof.base);
      return {};
    },
    arg: () => ({ layout: U.iommu_ioas_change_process }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2 all-or-nothing: a file area in one IOAS and an anonymous one in another → EINVAL',
    setup: (e) => {
      const a = e.ioas();
      e.attach(0, a);
      mapFile(e, a, e.prof.base);
      const b = e.ioas();
      e.attach(1, b);
      e.map(b, PAGE, e.prof.base);
      return {};
    },
    arg: () => ({ layout: U.iommu_ioas_change_process }),
    errno: U.EINVAL,
  },
] satisfies Row[]);
