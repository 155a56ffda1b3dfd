/*
 * C walker for the `translate` benchmark (BENCH.md), VT-d: the same nested tables as the
 * TypeScript model (PASID entry PGTT=3: x86 4-level first stage in guest memory, every
 * table GPA and the output GPA translated through a 4-level VT-d second stage), read from a
 * memory dump, translated on an IOTLB hit and on a full two-stage walk (IOTLB miss).
 * Usage: translate-vtd DUMP HIT_OPS MISS_OPS
 * Dump format (little-endian u64): magic, fs_root_gpa, ss_root, did, n_iova, iova[n_iova],
 * n_frames, then per frame: pfn, 4096 bytes.
 */
#include "translate-common.h"

static int rd64(uint64_t pa, uint64_t *out) {
	if (pa < ram_base || pa + 8 > ram_base + ram_size) { *out = 0; return 0; }
	memcpy(out, ram + (pa - ram_base), 8);
	return 0;
}

#define ADDR_MASK 0x000ffffffffff000ull

/* VT-d second stage, 4 levels: R/W present bits, PS leaves at levels 2 and 3. */
static int ss_walk(uint64_t root, uint64_t gpa, uint64_t *hpa, int *writable) {
	uint64_t table = root;
	int w = 1;
	if (gpa >> 48) return -1;
	for (int level = 4; level >= 1; level--) {
		int shift = 12 + 9 * (level - 1);
		uint64_t e;
		rd64(table + ((gpa >> shift) & 511) * 8, &e);
		if (!(e & 3)) return -1;
		w &= (e >> 1) & 1;
		if (level == 1 || (level <= 3 && (e & 0x80))) {
			uint64_t s = 1ull << shift;
			*hpa = (e & ADDR_MASK & ~(s - 1)) + (gpa & (s - 1));
			*writable = w;
			return (e & 1) ? 0 : -1;
		}
		table = e & ADDR_MASK;
	}
	return -1;
}

/* x86 first stage, 4 levels, table pointers are GPAs (nested). */
static int fs_walk(uint64_t root_gpa, uint64_t ss_root, uint64_t iova, uint64_t *gpa, int *writable) {
	uint64_t table = root_gpa;
	int w = 1, sw;
	uint64_t top = iova >> 47;
	if (top != 0 && top != 0x1ffff) return -1;
	for (int level = 4; level >= 1; level--) {
		int shift = 12 + 9 * (level - 1);
		uint64_t hpa, e;
		if (ss_walk(ss_root, table, &hpa, &sw)) return -1;
		rd64(hpa + ((iova >> shift) & 511) * 8, &e);
		if (!(e & 1)) return -1;
		w &= (e >> 1) & 1;
		if (level == 1 || (level <= 3 && (e & 0x80))) {
			uint64_t s = 1ull << shift;
			*gpa = (e & ADDR_MASK & ~(s - 1)) + (iova & (s - 1));
			*writable = w;
			return 0;
		}
		table = e & ADDR_MASK;
	}
	return -1;
}

static uint64_t fs_root, ss_root, did, n_iova, *iovas;

/* Nested translation through the IOTLB (tag = DID, PASID 0); fills it on a miss. */
static int translate(uint64_t iova, uint64_t *pa) {
	uint64_t page = iova >> 12;
	struct tlb_entry *e = tlb_find(did, page);
	if (e) {
		*pa = e->pa + (iova & 0xfff);
		return 0;
	}
	uint64_t gpa, out;
	int w1, w2;
	if (fs_walk(fs_root, ss_root, iova, &gpa, &w1)) return -1;
	if (ss_walk(ss_root, gpa, &out, &w2)) return -1;
	tlb_insert(did, page, out & ~0xfffull, w1 && w2);
	*pa = out;
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 4) { fprintf(stderr, "usage: %s DUMP HIT_OPS MISS_OPS\n", argv[0]); return 2; }
	FILE *f = fopen(argv[1], "rb");
	if (!f) { perror(argv[1]); return 1; }
	if (rd(f) != 0x5654445452414e53ull) { fprintf(stderr, "bad magic\n"); return 1; }
	fs_root = rd(f); ss_root = rd(f); did = rd(f);
	iovas = read_iovas(f, &n_iova);
	load_frames(f);
	return run_bench("vtd", iovas, n_iova, atol(argv[2]), atol(argv[3]));
}
