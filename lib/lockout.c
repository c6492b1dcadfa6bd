#include "lib/lockout.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ctype.h>

#include "lib/throttle.h"
#include "lib/xalloc.h"

#define WAYS 8

struct entry {
	uint64_t hash;              /* 0: free */
	struct lockout_record rec;
	uint64_t next_ms;           /* when the address's last queued delayed attempt runs */
	unsigned pending;           /* attempts in flight */
};

struct lockout {
	struct lockout_params p;
	unsigned char key[16];
	size_t n_sets;
	struct entry *e;            /* n_sets * WAYS */
	struct throttle *users;
	uint64_t changes;
};

uint64_t lockout_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct lockout *lockout_new(const struct lockout_params *p, const unsigned char key[16])
{
	struct lockout *lk = xcalloc(1, sizeof(*lk));
	size_t slots = p->slots ? p->slots : 4096;
	struct throttle_params tp = {
		.free_failures = p->free_failures,
		.base_ms = p->base_ms,
		.max_ms = p->max_ms,
		.decay_ms = p->decay_ms,
		.slots = slots,
	};

	lk->p = *p;
	memcpy(lk->key, key, sizeof(lk->key));
	lk->n_sets = (slots + WAYS - 1) / WAYS;
	lk->e = xcalloc(lk->n_sets * WAYS, sizeof(*lk->e));
	/* the user table has its own key: a name cannot aim at an address's set */
	{
		unsigned char k2[16];
		for (int i = 0; i < 16; i++)
			k2[i] = (unsigned char)(key[i] ^ 0xa5);
		lk->users = throttle_new(&tp, k2);
	}
	return lk;
}

void lockout_free(struct lockout **lkp)
{
	struct lockout *lk = *lkp;

	if (!lk)
		return;
	throttle_free(&lk->users);
	free(lk->e);
	free(lk);
	*lkp = NULL;
}

uint64_t lockout_changes(const struct lockout *lk)
{
	return lk->changes;
}

static uint64_t hash_of(const struct lockout *lk, const char *ip)
{
	uint64_t h = throttle_siphash(lk->key, ip, strlen(ip));

	return h ? h : 1;
}

static struct entry *set_of(const struct lockout *lk, uint64_t h)
{
	return &lk->e[(size_t)(h % lk->n_sets) * WAYS];
}

static struct entry *find(const struct lockout *lk, const char *ip)
{
	uint64_t h = hash_of(lk, ip);
	struct entry *set = set_of(lk, h);

	for (int i = 0; i < WAYS; i++)
		if (set[i].hash == h && strcmp(set[i].rec.address, ip) == 0)
			return &set[i];
	return NULL;
}

/* The decaying count at now; with update, the decay is applied to e. */
static unsigned decayed(const struct lockout *lk, struct entry *e, uint64_t now, int update)
{
	uint64_t steps;
	unsigned f = e->rec.failures;

	if (!lk->p.decay_ms || now <= e->rec.last_ms)
		return f;
	steps = (now - e->rec.last_ms) / lk->p.decay_ms;
	f = steps >= f ? 0 : f - (unsigned)steps;
	if (update) {
		e->rec.failures = f;
		e->rec.last_ms = f ? e->rec.last_ms + steps * lk->p.decay_ms : now;
	}
	return f;
}

static int locked(const struct entry *e, uint64_t now)
{
	return e->rec.locked_until_ms > now;
}

static int window_open(const struct lockout *lk, const struct entry *e, uint64_t now)
{
	return e->rec.window_start_ms && now - e->rec.window_start_ms < lk->p.window_ms && now >= e->rec.window_start_ms;
}

/* 1 when e holds nothing worth keeping at now. */
static int idle(const struct lockout *lk, struct entry *e, uint64_t now)
{
	return !e->pending && !locked(e, now) && decayed(lk, e, now, 0) == 0 &&
	       (!e->rec.window_failures || !window_open(lk, e, now)) && e->next_ms <= now;
}

/* ip's entry, made (evicting another in its set) when it has none. */
static struct entry *get(struct lockout *lk, const char *ip, uint64_t now)
{
	uint64_t h = hash_of(lk, ip);
	struct entry *set = set_of(lk, h), *best = NULL;
	unsigned best_rank = 0, best_f = 0;
	struct entry *e = find(lk, ip);

	if (e)
		return e;
	for (int i = 0; i < WAYS; i++) {
		unsigned rank, f;

		if (!set[i].hash) {
			best = &set[i];
			break;
		}
		/* keep locked-out addresses first, then those in flight */
		rank = (locked(&set[i], now) ? 2u : 0u) + (set[i].pending ? 1u : 0u);
		f = decayed(lk, &set[i], now, 1);
		if (!best || rank < best_rank || (rank == best_rank && f < best_f) ||
		    (rank == best_rank && f == best_f && set[i].rec.last_ms < best->rec.last_ms)) {
			best = &set[i];
			best_rank = rank;
			best_f = f;
		}
	}
	memset(best, 0, sizeof(*best));
	best->hash = h;
	snprintf(best->rec.address, sizeof(best->rec.address), "%s", ip);
	best->rec.last_ms = now;
	return best;
}

static unsigned delay_for(const struct lockout *lk, unsigned n)
{
	const struct throttle_params tp = {
		.free_failures = lk->p.free_failures,
		.base_ms = lk->p.base_ms,
		.max_ms = lk->p.max_ms,
	};

	return throttle_backoff(&tp, n);
}

static void user_key(const char *user, char *out, size_t outlen)
{
	snprintf(out, outlen, "user:%s", user);
	/* the name as typed, lower-cased: the same key whether it exists or not */
	for (char *q = out + 5; *q; q++)
		*q = (char)tolower((unsigned char)*q);
}

int lockout_exempt(const struct lockout *lk, const char *ip)
{
	return cidr_match_any(lk->p.exempt, lk->p.n_exempt, ip);
}

uint64_t lockout_locked_until(const struct lockout *lk, const char *ip, uint64_t now_ms)
{
	struct entry *e;

	if (!lk->p.max_failures)
		return 0;
	e = find(lk, ip);
	if (!e || !locked(e, now_ms) || lockout_exempt(lk, ip))
		return 0;
	return e->rec.locked_until_ms;
}

unsigned lockout_attempt(struct lockout *lk, const char *ip, const char *user, uint64_t now_ms)
{
	struct entry *e;
	unsigned f, n, d;
	uint64_t start = now_ms;

	if (lockout_exempt(lk, ip))
		return 0;
	e = get(lk, ip, now_ms);
	f = decayed(lk, e, now_ms, 1);
	n = f + (e->pending > LOCKOUT_PARALLEL_FREE ? e->pending - LOCKOUT_PARALLEL_FREE : 0);
	d = delay_for(lk, n);
	if (d) {
		/* queued behind the address's previous delayed attempt */
		start = (e->next_ms > now_ms ? e->next_ms : now_ms) + d;
		if (start - now_ms > LOCKOUT_DELAY_CAP_MS)
			start = now_ms + LOCKOUT_DELAY_CAP_MS;
		e->next_ms = start;
	}
	if (f && user) {
		/* the user's counter only for an address that failed itself */
		char uk[400];
		unsigned du;

		user_key(user, uk, sizeof(uk));
		du = throttle_delay(lk->users, uk, now_ms);
		if (now_ms + du > start)
			start = now_ms + du;
	}
	e->pending++;
	return (unsigned)(start - now_ms);
}

int lockout_result(struct lockout *lk, const char *ip, const char *user, enum lockout_outcome o, uint64_t now_ms)
{
	struct entry *e;
	char uk[400];
	int started = 0;

	if (lockout_exempt(lk, ip))
		return 0;
	e = find(lk, ip);
	if (e && e->pending)
		e->pending--;
	if (user)
		user_key(user, uk, sizeof(uk));
	if (o == LOCKOUT_OK) {
		/* the user's counter only: a valid account must not clear its address */
		if (user)
			throttle_success(lk->users, uk);
	} else if (o == LOCKOUT_FAIL) {
		if (user)
			throttle_failure(lk->users, uk, now_ms);
		if (!e)
			e = get(lk, ip, now_ms);
		decayed(lk, e, now_ms, 1);
		if (e->rec.failures < UINT_MAX)
			e->rec.failures++;
		e->rec.last_ms = now_ms;
		if (!window_open(lk, e, now_ms)) {
			e->rec.window_start_ms = now_ms;
			e->rec.window_failures = 0;
		}
		e->rec.window_failures++;
		if (lk->p.max_failures && e->rec.window_failures >= lk->p.max_failures && !locked(e, now_ms)) {
			e->rec.locked_until_ms = now_ms + lk->p.lock_ms;
			e->rec.window_failures = 0;
			e->rec.window_start_ms = 0;
			started = 1;
		}
		lk->changes++;
	}
	if (e && idle(lk, e, now_ms)) {
		memset(e, 0, sizeof(*e));
		lk->changes++;
	}
	return started;
}

unsigned lockout_failures(const struct lockout *lk, const char *ip, uint64_t now_ms)
{
	struct entry *e = find(lk, ip);

	return e ? decayed(lk, e, now_ms, 0) : 0;
}

unsigned lockout_window_failures(const struct lockout *lk, const char *ip, uint64_t now_ms)
{
	struct entry *e = find(lk, ip);

	return e && window_open(lk, e, now_ms) ? e->rec.window_failures : 0;
}

int lockout_clear(struct lockout *lk, const char *ip)
{
	struct entry *e = find(lk, ip);

	if (!e)
		return 0;
	/* attempts in flight end without an entry: they count nothing */
	memset(e, 0, sizeof(*e));
	lk->changes++;
	return 1;
}

size_t lockout_snapshot(const struct lockout *lk, uint64_t now_ms, struct lockout_record **r)
{
	size_t n = 0, total = lk->n_sets * WAYS;
	struct lockout_record *out = NULL;

	for (size_t i = 0; i < total; i++) {
		struct entry *e = &lk->e[i];
		struct lockout_record rec;

		if (!e->hash)
			continue;
		rec = e->rec;
		rec.failures = decayed(lk, e, now_ms, 0);
		if (!window_open(lk, e, now_ms)) {
			rec.window_failures = 0;
			rec.window_start_ms = 0;
		}
		if (!locked(e, now_ms))
			rec.locked_until_ms = 0;
		if (!rec.failures && !rec.window_failures && !rec.locked_until_ms)
			continue;
		if (!out)
			out = xcalloc(total, sizeof(*out));
		out[n++] = rec;
	}
	*r = out;
	return n;
}

void lockout_restore(struct lockout *lk, const struct lockout_record *r, size_t n, uint64_t now_ms)
{
	for (size_t i = 0; i < n; i++) {
		struct entry *e;

		if (!r[i].address[0] || memchr(r[i].address, '\0', sizeof(r[i].address)) == NULL)
			continue;
		e = get(lk, r[i].address, now_ms);
		e->rec = r[i];
		if (e->rec.last_ms > now_ms)
			e->rec.last_ms = now_ms;
		if (idle(lk, e, now_ms))
			memset(e, 0, sizeof(*e));
	}
	lk->changes++;
}
