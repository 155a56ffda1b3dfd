/*
 * vsmmu-mix in C: the reference implementation of shared/design/BENCH.md that the queue
 * engine is measured against. Same semantics as packages/queue-engine/asm/engine.ts on this
 * path: convert the guest array in place (VMID stamp, vSID -> pSID through the same hash
 * table, NSNH_ALL -> NH_ALL), write each command into a 2^10-entry host CMDQ, a CMD_SYNC
 * after every 63 and after the last, and consume up to PROD at each SYNC (validate, count
 * per opcode, record the SYNC's MSIData, append to the execution log).
 *
 * Usage: vsmmu-mix N SEED RUNS  -> one line per run: "run=i ns=... " and a final line
 * "counts=... checksum=..." for the last run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 63
#define LOG2Q 10
#define SIDTAB_LOG2 7

struct sidslot { uint32_t used, key, value, pad; };
static struct sidslot sidtab[1 << SIDTAB_LOG2];

static uint64_t splitmix(uint64_t *s) {
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline int64_t sid_lookup(uint32_t key) {
	uint32_t mask = (1u << SIDTAB_LOG2) - 1, slot = (key * 0x9e3779b1u) >> (32 - SIDTAB_LOG2);
	for (;;) {
		if (!sidtab[slot].used) return -1;
		if (sidtab[slot].key == key) return sidtab[slot].value;
		slot = (slot + 1) & mask;
	}
}

struct queue {
	uint64_t *ring;
	uint32_t prod, cons, err;
	uint32_t counters[256];
	uint32_t last_sync;
	uint8_t *log;
	size_t log_len;
};

/* Legality on a Non-secure queue of an SMMU with S1P, S2P and ATS (smmuv3.md 3.3). */
static inline int legal(uint32_t op, uint64_t dw0) {
	if (dw0 & (1u << 10)) return 0;
	switch (op) {
	case 0x01: case 0x02: case 0x03: case 0x04: case 0x05: case 0x06: case 0x10: case 0x11: case 0x12:
	case 0x13: case 0x18: case 0x1a: case 0x20: case 0x21: case 0x22: case 0x23: case 0x28: case 0x2a:
	case 0x30: case 0x40: case 0x41: case 0x44: case 0x45:
		return 1;
	case 0x46:
		return ((dw0 >> 12) & 3) != 3;
	default:
		return 0;
	}
}

static int consume(struct queue *q) {
	const uint32_t ptr_mask = (2u << LOG2Q) - 1, idx_mask = (1u << LOG2Q) - 1;
	uint32_t cons = q->cons;
	while (cons != q->prod) {
		uint64_t *e = q->ring + 2 * (cons & idx_mask);
		uint64_t dw0 = e[0], dw1 = e[1];
		uint32_t op = dw0 & 0xff;
		if (!legal(op, dw0)) { q->err = 1; q->cons = cons; return 1; }
		memcpy(q->log + q->log_len, &dw0, 8);
		memcpy(q->log + q->log_len + 8, &dw1, 8);
		q->log_len += 16;
		q->counters[op]++;
		if (op == 0x46) q->last_sync = (uint32_t)(dw0 >> 32);
		cons = (cons + 1) & ptr_mask;
	}
	q->cons = cons;
	return 0;
}

static inline int convert(uint64_t *p, uint64_t vmid) {
	uint64_t dw0 = p[0];
	switch (dw0 & 0xff) {
	case 0x30: p[0] = 0x10 | (vmid << 32); p[1] = 0; return 1;
	case 0x12: case 0x13: case 0x10: case 0x11: p[0] = (dw0 & 0xffff0000ffffffffull) | (vmid << 32); return 1;
	case 0x40: case 0x05: case 0x06: {
		int64_t psid = sid_lookup((uint32_t)(dw0 >> 32));
		if (psid < 0) return 0;
		p[0] = (dw0 & 0xffffffffull) | ((uint64_t)psid << 32);
		return 1;
	}
	default: return 0;
	}
}

/* Returns -1 on success, else the reported index. */
static int64_t invalidate(uint64_t *src, uint32_t n, struct queue *q, uint64_t vmid) {
	const uint32_t ptr_mask = (2u << LOG2Q) - 1, idx_mask = (1u << LOG2Q) - 1;
	uint32_t prod = q->prod, in_batch = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t *p = src + 2 * i;
		if (!convert(p, vmid)) return i;
		uint64_t *e = q->ring + 2 * (prod & idx_mask);
		e[0] = p[0]; e[1] = p[1];
		prod = (prod + 1) & ptr_mask;
		if (++in_batch == BATCH || i + 1 == n) {
			e = q->ring + 2 * (prod & idx_mask);
			e[0] = 0x46 | (1u << 12) | ((uint64_t)(i + 1) << 32); e[1] = 0;
			prod = (prod + 1) & ptr_mask;
			q->prod = prod;
			if (consume(q)) return i;
			in_batch = 0;
		}
	}
	return -1;
}

static double now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
	if (argc < 4) { fprintf(stderr, "usage: %s N SEED RUNS\n", argv[0]); return 2; }
	uint32_t n = (uint32_t)strtoul(argv[1], 0, 10);
	uint64_t seed = strtoull(argv[2], 0, 10);
	int runs = atoi(argv[3]);
	for (uint32_t i = 0; i < 64; i++) {
		uint32_t key = 0x100 + 3 * i, slot = (key * 0x9e3779b1u) >> (32 - SIDTAB_LOG2);
		while (sidtab[slot].used) slot = (slot + 1) & ((1u << SIDTAB_LOG2) - 1);
		sidtab[slot] = (struct sidslot){ 1, key, 0x8000 + 7 * i, 0 };
	}
	uint64_t *pristine = malloc((size_t)n * 16), *work = malloc((size_t)n * 16);
	uint64_t s = seed;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t r = splitmix(&s), sel = r % 100, asid = (r >> 8) & 0xffff, vsid = 0x100 + 3 * ((r >> 8) % 64);
		uint64_t *c = pristine + 2 * k;
		if (sel < 70) { c[0] = 0x12 | (0xdeadull << 32) | (asid << 48); c[1] = ((r >> 7) & 1) | (((r >> 24) & 0xfffffffffull) << 12); }
		else if (sel < 80) { c[0] = 0x11 | (asid << 48); c[1] = 0; }
		else if (sel < 90) { c[0] = 0x40 | (vsid << 32); c[1] = ((r >> 40) & 0x3f) % 53; }
		else if (sel < 95) { c[0] = 0x05 | (vsid << 32) | (((r >> 16) & 0xfffff) << 12) | (1u << 11); c[1] = r >> 63; }
		else { c[0] = 0x30; c[1] = 0; }
	}
	static uint64_t ring[2 << LOG2Q];
	size_t log_cap = ((size_t)n + n / BATCH + 2) * 16;
	struct queue q = { .ring = ring, .log = malloc(log_cap) };
	for (int run = 0; run < runs; run++) {
		memcpy(work, pristine, (size_t)n * 16);
		memset(q.counters, 0, sizeof q.counters);
		q.prod = q.cons = q.err = 0; q.log_len = 0;
		double t0 = now_ns();
		int64_t r = invalidate(work, n, &q, 0x2a);
		double t1 = now_ns();
		if (r >= 0) { fprintf(stderr, "vsmmu-mix: failed at index %lld\n", (long long)r); return 1; }
		printf("run=%d ns=%.0f\n", run, t1 - t0);
	}
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < q.log_len; i++) { h ^= q.log[i]; h *= 0x100000001b3ull; }
	printf("counts=%u/%u/%u/%u/%u/%u executed=%zu checksum=%016llx\n", q.counters[0x12], q.counters[0x11],
	       q.counters[0x10], q.counters[0x40], q.counters[0x05], q.counters[0x46], q.log_len / 16,
	       (unsigned long long)h);
	return 0;
}
