/**
 * The mock driver's geometry as bigint IOVAs (the selftest's iommufd_test.h values; the
 * numeric versions of the shared constants are exported by `@iommufd/uapi`).
 */

/** `MOCK_APERTURE_START` as an IOVA. */
export const MOCK_APERTURE_FIRST_IOVA = 1n << 24n;
/** `MOCK_APERTURE_LAST` as an IOVA. */
export const MOCK_APERTURE_LAST_IOVA = (1n << 31n) - 1n;
/** `MOCK_IO_PAGE_SIZE` = PAGE_SIZE / 2: smaller than the CPU page on purpose. */
export const MOCK_IO_PAGE_SIZE = 2048n;
/** `MOCK_HUGE_PAGE_SIZE` */
export const MOCK_HUGE_PAGE_SIZE = 512n * MOCK_IO_PAGE_SIZE;
