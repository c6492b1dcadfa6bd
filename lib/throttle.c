#include "lib/throttle.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

#define WAYS 8

struct entry {
	uint64_t hash;      /* 0: free */
	uint64_t last_ms;   /* time of the last failure, moved forward by whole decay steps */
	unsigned failures;
};

struct throttle {
	struct throttle_params p;
	unsigned char key[16];
	size_t n_sets;
	struct entry *e;    /* n_sets * WAYS */
};

/* ---- SipHash-2-4 (Aumasson and Bernstein), reference algorithm ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND \
	do { \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t throttle_siphash(const unsigned char key[16], const void *data, size_t n)
{
	const unsigned char *in = data;
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)n << 56, m;
	size_t whole = n - n % 8;

	for (size_t i = 0; i < whole; i += 8) {
		m = le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < n % 8; i++)
		b |= (uint64_t)in[whole + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the table ---- */

struct throttle *throttle_new(const struct throttle_params *p, const unsigned char key[16])
{
	struct throttle *t = xcalloc(1, sizeof(*t));
	size_t slots = p->slots ? p->slots : 4096;

	t->p = *p;
	memcpy(t->key, key, sizeof(t->key));
	t->n_sets = (slots + WAYS - 1) / WAYS;
	t->e = xcalloc(t->n_sets * WAYS, sizeof(*t->e));
	return t;
}

void throttle_free(struct throttle **tp)
{
	struct throttle *t = *tp;

	if (!t)
		return;
	free(t->e);
	free(t);
	*tp = NULL;
}

static uint64_t hash_key(const struct throttle *t, const char *key)
{
	uint64_t h = throttle_siphash(t->key, key, strlen(key));

	return h ? h : 1;
}

static struct entry *set_of(const struct throttle *t, uint64_t h)
{
	/* the low bits pick the set; the whole hash identifies the key */
	return &t->e[(size_t)(h % t->n_sets) * WAYS];
}

static struct entry *find(const struct throttle *t, uint64_t h)
{
	struct entry *set = set_of(t, h);

	for (int i = 0; i < WAYS; i++)
		if (set[i].hash == h)
			return &set[i];
	return NULL;
}

/* Failures left at now; with update, also applies the decay to e. */
static unsigned decayed(const struct throttle *t, struct entry *e, uint64_t now_ms, int update)
{
	uint64_t steps;
	unsigned f = e->failures;

	if (!t->p.decay_ms || now_ms <= e->last_ms)
		return f;
	steps = (now_ms - e->last_ms) / t->p.decay_ms;
	f = steps >= f ? 0 : f - (unsigned)steps;
	if (update) {
		e->failures = f;
		e->last_ms += steps * t->p.decay_ms;
	}
	return f;
}

unsigned throttle_backoff(const struct throttle_params *p, unsigned f)
{
	unsigned shift;
	uint64_t d;

	if (!p->base_ms || f < p->free_failures)
		return 0;
	shift = f - p->free_failures;
	if (shift >= 32)
		return p->max_ms;
	d = (uint64_t)p->base_ms << shift;
	return d > p->max_ms ? p->max_ms : (unsigned)d;
}

static unsigned delay_for(const struct throttle *t, unsigned f)
{
	return throttle_backoff(&t->p, f);
}

unsigned throttle_failures(const struct throttle *t, const char *key, uint64_t now_ms)
{
	struct entry *e = find(t, hash_key(t, key));

	return e ? decayed(t, e, now_ms, 0) : 0;
}

unsigned throttle_delay(const struct throttle *t, const char *key, uint64_t now_ms)
{
	return delay_for(t, throttle_failures(t, key, now_ms));
}

unsigned throttle_failure(struct throttle *t, const char *key, uint64_t now_ms)
{
	uint64_t h = hash_key(t, key);
	struct entry *e = find(t, h);

	if (!e) {
		struct entry *set = set_of(t, h);
		unsigned best_f = 0;

		for (int i = 0; i < WAYS; i++) {
			unsigned f;

			if (!set[i].hash) {
				e = &set[i];
				break;
			}
			f = decayed(t, &set[i], now_ms, 1);
			if (!e || f < best_f || (f == best_f && set[i].last_ms < e->last_ms)) {
				e = &set[i];
				best_f = f;
			}
		}
		e->hash = h;
		e->failures = 0;
		e->last_ms = now_ms;
	} else {
		decayed(t, e, now_ms, 1);
	}
	if (e->failures < UINT_MAX)
		e->failures++;
	e->last_ms = now_ms;
	return e->failures;
}

void throttle_success(struct throttle *t, const char *key)
{
	struct entry *e = find(t, hash_key(t, key));

	if (e)
		memset(e, 0, sizeof(*e));
}
