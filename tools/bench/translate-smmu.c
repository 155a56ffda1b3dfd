/*
 * C walker for the `translate` benchmark (BENCH.md): the same SMMUv3 nested tables as the
 * TypeScript model, read from a memory dump, translated on a TLB hit and on a full two-stage
 * walk (TLB miss). Usage: translate-smmu DUMP HIT_OPS MISS_OPS
 * Dump format (little-endian u64): magic, s1_ttb_ipa, s2_ttb, vmid, asid, n_iova, iova[n_iova],
 * n_frames, then per frame: pfn, 4096 bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint8_t *ram;
static uint64_t ram_base, ram_size;

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

#define TLB_SLOTS 8192
struct tlb_entry { uint64_t tag, page, pa; uint32_t gen; int writable; };
static struct tlb_entry tlb[TLB_SLOTS];
static uint32_t tlb_gen = 1;

static inline uint64_t hash(uint64_t tag, uint64_t page) {
	uint64_t h = (tag * 0x9E3779B97F4A7C15ull) ^ (page * 0xBF58476D1CE4E5B9ull);
	return (h ^ (h >> 29)) & (TLB_SLOTS - 1);
}

static struct tlb_entry *tlb_find(uint64_t tag, uint64_t page) {
	for (uint64_t i = hash(tag, page), n = 0; n < TLB_SLOTS; i = (i + 1) & (TLB_SLOTS - 1), n++) {
		struct tlb_entry *e = &tlb[i];
		if (e->gen != tlb_gen) return NULL;
		if (e->tag == tag && e->page == page) return e;
	}
	return NULL;
}

static void tlb_insert(uint64_t tag, uint64_t page, uint64_t pa, int writable) {
	for (uint64_t i = hash(tag, page);; i = (i + 1) & (TLB_SLOTS - 1)) {
		struct tlb_entry *e = &tlb[i];
		if (e->gen != tlb_gen || (e->tag == tag && e->page == page)) {
			*e = (struct tlb_entry){ tag, page, pa, tlb_gen, writable };
			return;
		}
	}
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

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rd(FILE *f) {
	uint64_t v;
	if (fread(&v, 8, 1, f) != 1) { fprintf(stderr, "short dump\n"); exit(1); }
	return v;
}

int main(int argc, char **argv) {
	if (argc != 4) { fprintf(stderr, "usage: %s DUMP HIT_OPS MISS_OPS\n", argv[0]); return 2; }
	FILE *f = fopen(argv[1], "rb");
	if (!f) { perror(argv[1]); return 1; }
	if (rd(f) != 0x534d4d5554524e53ull) { fprintf(stderr, "bad magic\n"); return 1; }
	s1root = rd(f); s2root = rd(f); vmid = rd(f); asid = rd(f); n_iova = rd(f);
	iovas = malloc(n_iova * 8);
	for (uint64_t i = 0; i < n_iova; i++) iovas[i] = rd(f);
	uint64_t n_frames = rd(f), lo = ~0ull, hi = 0;
	uint64_t *pfns = malloc(n_frames * 8);
	uint8_t *frames = malloc(n_frames * 4096);
	for (uint64_t i = 0; i < n_frames; i++) {
		pfns[i] = rd(f);
		if (fread(frames + i * 4096, 4096, 1, f) != 1) { fprintf(stderr, "short dump\n"); return 1; }
		if (pfns[i] < lo) lo = pfns[i];
		if (pfns[i] > hi) hi = pfns[i];
	}
	ram_base = lo << 12; ram_size = (hi - lo + 1) << 12;
	ram = calloc(1, ram_size);
	for (uint64_t i = 0; i < n_frames; i++) memcpy(ram + ((pfns[i] - lo) << 12), frames + i * 4096, 4096);
	long hit_ops = atol(argv[2]), miss_ops = atol(argv[3]);

	/* Checksum over the same fixed pass the TypeScript side makes. */
	uint64_t check = 0, pa;
	for (uint64_t i = 0; i < 4096; i++) { tlb_gen++; if (!translate(iovas[i % n_iova], &pa)) check += pa; }

	double best_hit = 1e30, best_miss = 1e30;
	volatile uint64_t sink = 0;
	for (int rep = 0; rep < 6; rep++) {
		tlb_gen++;
		for (uint64_t i = 0; i < 256; i++) translate(iovas[i], &pa);
		double t0 = now();
		uint64_t s = 0;
		for (long i = 0; i < hit_ops; i++) { translate(iovas[i & 255], &pa); s += pa; }
		double t1 = now();
		for (long i = 0; i < miss_ops; i++) { tlb_gen++; translate(iovas[i % n_iova], &pa); s += pa; }
		double t2 = now();
		sink += s;
		if (rep > 0) { /* rep 0 is the warm-up */
			if (t1 - t0 < best_hit) best_hit = t1 - t0;
			if (t2 - t1 < best_miss) best_miss = t2 - t1;
		}
	}
	printf("translate impl=c iommu=smmuv3 case=tlb-hit ops_per_s=%.0f checksum=%016llx\n", hit_ops / best_hit, (unsigned long long)check);
	printf("translate impl=c iommu=smmuv3 case=nested-miss ops_per_s=%.0f checksum=%016llx\n", miss_ops / best_miss, (unsigned long long)check);
	return sink == 42 ? 3 : 0;
}
