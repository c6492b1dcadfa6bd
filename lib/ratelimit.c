#include "lib/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "lib/throttle.h"
#include "lib/xalloc.h"

#define WAYS 8

struct bucket {
	uint64_t hash;        /* 0: free */
	uint64_t last_ms;
	uint64_t units;       /* tokens * 60000 at last_ms: a bucket of `limit` a minute gains
			       * exactly `limit` units a millisecond */
	unsigned limit;
};

struct ratelimit {
	unsigned char key[16];
	size_t n_sets;
	struct bucket *b;
};

struct ratelimit *ratelimit_new(size_t slots, const unsigned char key[16])
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));

	if (!slots)
		slots = 4096;
	memcpy(rl->key, key, sizeof(rl->key));
	rl->n_sets = (slots + WAYS - 1) / WAYS;
	rl->b = xcalloc(rl->n_sets * WAYS, sizeof(*rl->b));
	return rl;
}

void ratelimit_free(struct ratelimit **rlp)
{
	if (!*rlp)
		return;
	free((*rlp)->b);
	free(*rlp);
	*rlp = NULL;
}

#define TOKEN 60000u

/* The bucket's units at now. */
static uint64_t level(const struct bucket *b, uint64_t now)
{
	uint64_t cap = (uint64_t)b->limit * TOKEN, m = b->units;

	if (now > b->last_ms)
		m += (now - b->last_ms > cap ? cap : now - b->last_ms) * b->limit;
	return m > cap ? cap : m;
}

int ratelimit_take(struct ratelimit *rl, const char *key, unsigned limit, uint64_t now_ms)
{
	uint64_t h = throttle_siphash(rl->key, key, strlen(key));
	struct bucket *set, *b = NULL;

	if (!limit)
		return 1;
	h = h ? h : 1;
	set = &rl->b[(size_t)(h % rl->n_sets) * WAYS];
	for (int i = 0; i < WAYS; i++)
		if (set[i].hash == h)
			b = &set[i];
	if (!b) {
		uint64_t best = 0;

		for (int i = 0; i < WAYS; i++) {
			uint64_t lv;

			if (!set[i].hash) {
				b = &set[i];
				break;
			}
			/* the fullest, relative to its size */
			lv = level(&set[i], now_ms) * 1000 / ((uint64_t)set[i].limit * TOKEN + 1);
			if (!b || lv > best) {
				b = &set[i];
				best = lv;
			}
		}
		b->hash = h;
		b->limit = limit;
		b->units = (uint64_t)limit * TOKEN;
		b->last_ms = now_ms;
	}
	b->units = level(b, now_ms);
	b->limit = limit;
	if (b->units > (uint64_t)limit * TOKEN)
		b->units = (uint64_t)limit * TOKEN;
	b->last_ms = now_ms > b->last_ms ? now_ms : b->last_ms;
	if (b->units < TOKEN)
		return 0;
	b->units -= TOKEN;
	return 1;
}
