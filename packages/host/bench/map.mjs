#!/usr/bin/env node
// `pnpm bench map` (shared/design/BENCH.md): IOMMU_IOAS_MAP + IOMMU_IOAS_UNMAP of 4 KiB …
// 1 GiB on the 'mock' platform with a VFIO device attached to the IOAS (so every map pins
// the pages and fills the mock domain, and every unmap clears it and unpins). The memory is
// shared anonymous, touched once before timing (so the figure is the iommufd cost, not
// first-touch page allocation). One line per size, then the growth curve: the time factor
// per doubling of the size between neighbouring sizes (2 = linear) and the overall exponent
// (log time / log size: 1 = linear in the size, 0 = constant), on the last (ratios) line.
import * as U from '@iommufd/uapi';
import { bestNs, bootVmm, fmt, ok, parseArgs, place } from './common.mjs';

const { selected, tiny } = parseArgs('map');
if (!selected) process.exit(0);

const KIB = 1024;
const SIZES = tiny
  ? [[4 * KIB, 2], [64 * KIB, 2], [2 * KIB * KIB, 2]]
  : [[4 * KIB, 2000], [64 * KIB, 1000], [2 * KIB * KIB, 64], [64 * KIB * KIB, 4], [KIB * KIB * KIB, 1]];
const IOVA = 1n << 30n; // inside the mock aperture [16 MiB, 2 GiB)
const NAMES = { [4 * KIB]: '4KiB', [64 * KIB]: '64KiB', [2 * KIB * KIB]: '2MiB', [64 * KIB * KIB]: '64MiB', [KIB * KIB * KIB]: '1GiB' };
const largest = SIZES.at(-1)[0];

const vmm = await bootVmm({ platform: 'mock', devices: 1, ramBytes: BigInt(largest) + (256n << 20n) });
const { host, p, fd, deviceFds, ioas } = vmm;
U.vfioDeviceAttachIommufdPt(p, deviceFds[0], { ptId: ioas });
const buffer = p.mmap(BigInt(largest), U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED | U.MAP_ANONYMOUS | U.MAP_POPULATE, -1, 0);
if (buffer < 0n) throw new Error(`mmap ${largest}: ${U.errnoName(Number(-buffer))}`);

const results = [];
for (const [size, reps] of SIZES) {
  const length = BigInt(size);
  const flags = U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE;
  const mapVa = place(p, U.iommu_ioas_map.encode({ size: U.iommu_ioas_map.size, flags, ioas_id: ioas, user_va: buffer, length, iova: IOVA }));
  const unmapVa = place(p, U.iommu_ioas_unmap.encode({ size: U.iommu_ioas_unmap.size, ioas_id: ioas, iova: IOVA, length }));
  // A check outside the timing: the device reads the buffer's last byte through the mapping.
  ok('IOAS_MAP', p.ioctl(fd, U.IOMMU_IOAS_MAP, mapVa));
  U.pokeUser(p, buffer + length - 1n, new Uint8Array([0x5a]));
  const dma = host.dma(host.vfioDevices[0], { iova: IOVA + length - 1n, length: 1, write: false });
  if (!dma.ok || dma.data[0] !== 0x5a) throw new Error(`DMA through the ${size}-byte mapping: ${JSON.stringify(dma)}`);
  ok('IOAS_UNMAP', p.ioctl(fd, U.IOMMU_IOAS_UNMAP, unmapVa));
  const ns = bestNs(() => {
    ok('IOAS_MAP', p.ioctl(fd, U.IOMMU_IOAS_MAP, mapVa));
    ok('IOAS_UNMAP', p.ioctl(fd, U.IOMMU_IOAS_UNMAP, unmapVa));
  }, reps) / reps;
  if (host.pinnedPages !== 0) throw new Error(`${host.pinnedPages} pages still pinned after unmap`);
  results.push({ size, ns });
  console.log(`map impl=mock size=${NAMES[size]} ops_per_s=${fmt(1e9 / ns)} ns_per_op=${fmt(ns)} bytes_per_s=${fmt((size * 1e9) / ns)} ns_per_4k_page=${fmt(ns / (size / 4096))} reps=${reps}`);
}

const steps = results.slice(1).map((r, i) => {
  const prev = results[i];
  const factor = (r.ns / prev.ns) ** (1 / Math.log2(r.size / prev.size));
  return `per_doubling_${NAMES[prev.size]}-${NAMES[r.size]}=${factor.toFixed(3)}`;
});
const first = results[0], last = results.at(-1);
const exponent = Math.log(last.ns / first.ns) / Math.log(last.size / first.size);
console.log(`map ratios ${steps.join(' ')} exponent=${exponent.toFixed(3)} best_of=5`);
