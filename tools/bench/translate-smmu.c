/*
 * C walker for the `translate` benchmark (BENCH.md): the same SMMUv3 nested tables as the
 * TypeScript model, read from a memory dump, translated on a TLB hit and on a full two-stage
 * walk (TLB miss). Usage: translate-smmu DUMP HIT_OPS MISS_OPS
 * Dump format (little-endian u64): magic, s1_ttb_ipa, s2_ttb, vmid, asid, n_iova, iova[n_iova],
 * n_frames, then per frame: pfn, 4096 bytes.
 */
#include "translate-common.h"

static int rd64(uint64_t pa, uint64_t *out) {
	if (pa < ram_base || pa + 8 > ram_base + ram_size) return -1;
	memcpy(out, ram + (pa - ram_base), 8);
	return 0;
}

#define OA_MASK 0x0000fffffffff000ull

/* One stage, 4 KiB granule, start level 0, 48-bit input. */
static int walk(uint64_t root, uint64_t ia, int stage, uint64_t s2root, uint64_t *oa, uint64_t *size, int *writable) {
	uint64_t table = root;
	int wp = 0;
	for (int level = 0; level <= 3; level++) {
		int shift = 39 - 9 * level;
		uint64_t at = table + ((ia >> shift) & 511) * 8, d;
		if (stage == 1 && s2root) {
			uint64_t pa, sz;
			int w;
			if (walk(s2root, at, 2, 0, &pa, &sz, &w)) return -1;
			at = pa;
		}
		if (rd64(at, &d)) return -1;
		if (!(d & 1)) return -1;
		int is_table = (d & 2) != 0;
		if (level < 3 && is_table) {
			table = d & OA_MASK;
			if (stage == 1 && ((d >> 62) & 1)) wp = 1;
			continue;
		}
		if (level == 0 || (level == 3 && !is_table)) return -1;
		if (!((d >> 10) & 1)) return -1;
		uint64_t s = 1ull << shift;
		*size = s;
		*oa = (d & OA_MASK & ~(s - 1)) + (ia & (s - 1));
		unsigned ap = (d >> 6) & 3;
		*writable = stage == 2 ? (ap & 2) != 0 : !(ap & 2) && !wp;
		return 0;
	}
	return -1;
}

static uint64_t s1root, s2root, vmid, asid, n_iova, *iovas;

/* Nested translation through the TLB (tag = VMID/ASID); fills it on a miss. */
static int translate(uint64_t iova, uint64_t *pa) {
	uint64_t tag = (vmid << 16) | asid, page = iova >> 12;
	struct tlb_entry *e = tlb_find(tag, page);
	if (e) {
		*pa = e->pa + (iova & 0xfff);
		return 0;
	}
	uint64_t ipa, sz, out, sz2;
	int w1, w2;
	if (walk(s1root, iova, 1, s2root, &ipa, &sz, &w1)) return -1;
	if (walk(s2root, ipa, 2, 0, &out, &sz2, &w2)) return -1;
	tlb_insert(tag, page, out & ~0xfffull, w1 && w2);
	*pa = out;
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 4) { fprintf(stderr, "usage: %s DUMP HIT_OPS MISS_OPS\n", argv[0]); return 2; }
	FILE *f = fopen(argv[1], "rb");
	if (!f) { perror(argv[1]); return 1; }
	if (rd(f) != 0x534d4d5554524e53ull) { fprintf(stderr, "bad magic\n"); return 1; }
	s1root = rd(f); s2root = rd(f); vmid = rd(f); asid = rd(f);
	iovas = read_iovas(f, &n_iova);
	load_frames(f);
	return run_bench("smmuv3", iovas, n_iova, atol(argv[2]), atol(argv[3]));
}
