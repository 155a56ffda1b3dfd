/*
 * C walker for the `translate` benchmark (BENCH.md), VT-d: the same nested tables as the
 * TypeScript model (PASID entry PGTT=3: x86 4-level first stage in guest memory, every
 * table GPA and the output GPA translated through a 4-level VT-d second stage), read from a
 * memory dump, translated on an IOTLB hit and on a full two-stage walk (IOTLB miss).
 * Usage: translate-vtd DUMP HIT_OPS MISS_OPS
 * Dump format (little-endian u64): magic, fs_root_gpa, ss_root, did, n_iova, iova[n_iova],
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
	if (rd(f) != 0x5654445452414e53ull) { fprintf(stderr, "bad magic\n"); return 1; }
	fs_root = rd(f); ss_root = rd(f); did = rd(f); n_iova = rd(f);
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
		if (rep > 0) {
			if (t1 - t0 < best_hit) best_hit = t1 - t0;
			if (t2 - t1 < best_miss) best_miss = t2 - t1;
		}
	}
	printf("translate impl=c iommu=vtd case=tlb-hit ops_per_s=%.0f checksum=%016llx\n", hit_ops / best_hit, (unsigned long long)check);
	printf("translate impl=c iommu=vtd case=nested-miss ops_per_s=%.0f checksum=%016llx\n", miss_ops / best_miss, (unsigned long long)check);
	return sink == 42 ? 3 : 0;
}
