// §2 dispatch and the size-extensibility rule, for every ioctl of the table 0x80-0x94:
// size below the minimum → EINVAL, non-zero bytes past the kernel struct → E2BIG, an
// unmapped argument → EFAULT, holes and wrongly encoded requests → ENOTTY. All of them are
// decided before any handler runs, so nothing may change.
import { IOMMUFD_IOCTLS } from '@iommufd/uapi';
import { table, U, UNMAPPED, type Row } from './harness.js';

const rows: Row[] = [];
for (const io of IOMMUFD_IOCTLS) {
  rows.push({
    name: `§2.4 ${io.name}: size ${io.minSize - 1} < min ${io.minSize} → EINVAL`,
    request: io.request,
    arg: () => ({ layout: io.layout, size: io.minSize - 1 }),
    errno: U.EINVAL,
  });
  rows.push({
    name: `§2.5 ${io.name}: a non-zero byte past sizeof ${io.layout.size} → E2BIG`,
    request: io.request,
    arg: () => ({ layout: io.layout, size: io.layout.size + 8, tail: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1) }),
    errno: U.E2BIG,
  });
  rows.push({
    name: `§2.2 ${io.name}: the size word itself unreadable → EFAULT`,
    request: io.request,
    arg: () => ({ va: UNMAPPED }),
    errno: U.EFAULT,
  });
  rows.push({
    name: `§2.3 ${io.name}: wrong direction/size bits in the request → ENOTTY`,
    // _IOWR(';', nr, sizeof): the table slot's request is _IO(';', nr).
    request: (0xc0000000 | (io.layout.size << 16) | io.request) >>> 0,
    arg: () => ({ layout: io.layout }),
    errno: U.ENOTTY,
  });
}
rows.push(
  {
    name: '§2.2/§2.3 the size word is read before the request is matched: wrong bits + unmapped arg → EFAULT',
    request: 0xc0283b85,
    arg: () => ({ va: UNMAPPED }),
    errno: U.EFAULT,
  },
  {
    name: '§2 CONFIG_IOMMUFD_TEST: the table reaches 0xA0, so a hole (0x95) reads size first → EFAULT',
    presets: ['mock'],
    request: 0x3b95,
    arg: () => ({ va: UNMAPPED }),
    errno: U.EFAULT,
  },
  {
    name: '§2.1 without CONFIG_IOMMUFD_TEST 0x95 is past the table: the VFIO compat handler → ENOTTY',
    presets: ['arm-smmuv3', 'intel-vtd'],
    request: 0x3b95,
    arg: () => ({ va: UNMAPPED }),
    errno: U.ENOTTY,
  },
  {
    name: '§2.1 IOMMU_TEST_CMD without CONFIG_IOMMUFD_TEST → ENOTTY',
    presets: ['arm-smmuv3', 'intel-vtd'],
    request: U.IOMMU_TEST_CMD,
    arg: () => ({ layout: U.iommu_destroy }),
    errno: U.ENOTTY,
  },
  {
    name: '§2.3 the first number past the table (0x95) → ENOTTY',
    request: 0x3b95,
    arg: () => ({ layout: U.iommu_destroy }),
    errno: U.ENOTTY,
  },
  {
    name: '§2.5 a size past sizeof with an all-zero tail is accepted (IOMMU_DESTROY of an unknown ID → ENOENT, not E2BIG)',
    request: U.IOMMU_DESTROY,
    arg: () => ({ layout: U.iommu_destroy, value: { id: 77 }, size: 64, tail: new Uint8Array(56) }),
    errno: U.ENOENT,
  },
  {
    name: '§2.4 the size check comes before the struct is copied: a short size at the end of a mapping → EINVAL',
    request: U.IOMMU_IOAS_MAP,
    arg: (e) => {
      const va = e.alloc(4096n);
      const at = va + 4096n - 4n;
      e.p.poke(at, Uint8Array.of(4, 0, 0, 0));
      return { va: at, bytes: new Uint8Array(4) };
    },
    errno: U.EINVAL,
  },
  {
    name: '§2.5 a struct that runs into unmapped memory → EFAULT',
    request: U.IOMMU_IOAS_ALLOC,
    arg: (e) => {
      const va = e.alloc(4096n);
      const at = va + 4096n - 8n;
      e.p.poke(at, U.iommu_ioas_alloc.encode({ size: 12 }).subarray(0, 8));
      return { va: at, bytes: new Uint8Array(8) };
    },
    errno: U.EFAULT,
  },
);

table('dispatch', U.IOMMU_DESTROY, rows, 1);
