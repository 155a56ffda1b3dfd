/*
 * Shared part of the `translate` benchmark's C walkers (BENCH.md): the memory dump loader,
 * an IOTLB-like open-addressed cache and the timed hit / miss loops. Each walker defines
 * `translate(iova, &pa)` (walk through the cache, fill it on a miss) and calls run_bench().
 * Dump tail (little-endian u64): n_frames, then per frame: pfn, 4096 bytes.
 */
#ifndef TRANSLATE_COMMON_H
#define TRANSLATE_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint8_t *ram;
static uint64_t ram_base, ram_size;

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

/* Reads n_iova and the IOVAs. */
static uint64_t *read_iovas(FILE *f, uint64_t *n_iova) {
	*n_iova = rd(f);
	uint64_t *iovas = malloc(*n_iova * 8);
	for (uint64_t i = 0; i < *n_iova; i++) iovas[i] = rd(f);
	return iovas;
}

/* Reads the frames of the dump into one flat RAM image from the lowest to the highest frame. */
static void load_frames(FILE *f) {
	uint64_t n_frames = rd(f), lo = ~0ull, hi = 0;
	uint64_t *pfns = malloc(n_frames * 8);
	uint8_t *frames = malloc(n_frames * 4096);
	for (uint64_t i = 0; i < n_frames; i++) {
		pfns[i] = rd(f);
		if (fread(frames + i * 4096, 4096, 1, f) != 1) { fprintf(stderr, "short dump\n"); exit(1); }
		if (pfns[i] < lo) lo = pfns[i];
		if (pfns[i] > hi) hi = pfns[i];
	}
	ram_base = lo << 12; ram_size = (hi - lo + 1) << 12;
	ram = calloc(1, ram_size);
	for (uint64_t i = 0; i < n_frames; i++) memcpy(ram + ((pfns[i] - lo) << 12), frames + i * 4096, 4096);
}

static int translate(uint64_t iova, uint64_t *pa);

/* Checksum of 4096 full walks, then best-of-5 timed hit and miss loops; prints the two lines. */
static int run_bench(const char *iommu, const uint64_t *iovas, uint64_t n_iova, long hit_ops, long miss_ops) {
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
	printf("translate impl=c iommu=%s case=tlb-hit ops_per_s=%.0f checksum=%016llx\n", iommu, hit_ops / best_hit, (unsigned long long)check);
	printf("translate impl=c iommu=%s case=nested-miss ops_per_s=%.0f checksum=%016llx\n", iommu, miss_ops / best_miss, (unsigned long long)check);
	return sink == 42 ? 3 : 0;
}
#endif
