#include "lib/notify.h"

#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

#define BUCKETS 1024

struct notify_sub {
	struct notify_sub *next;
	void (*cb)(void *ctx);
	void *ctx;
	unsigned hash;
	int dead;
	char key[];
};

static struct notify_sub *buckets[BUCKETS];
static unsigned live;
static unsigned publishing;   /* nesting depth: dead entries are freed at 0 */
static unsigned n_dead;
static void (*hook_first)(const char *key);
static void (*hook_last)(const char *key);

void notify_set_hooks(void (*first)(const char *key), void (*last)(const char *key))
{
	hook_first = first;
	hook_last = last;
}

/* Is there a live subscription of key (hash h) other than except? */
static int key_live(const char *key, unsigned h, const struct notify_sub *except)
{
	for (struct notify_sub *s = buckets[h % BUCKETS]; s; s = s->next)
		if (s != except && !s->dead && s->hash == h && strcmp(s->key, key) == 0)
			return 1;
	return 0;
}

unsigned notify_key_hash(const char *key)
{
	unsigned h = 2166136261u;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h;
}

struct notify_sub *notify_subscribe(const char *key, void (*cb)(void *ctx), void *ctx)
{
	size_t len = strlen(key);
	struct notify_sub *s = xcalloc(1, sizeof(*s) + len + 1), **pp;

	memcpy(s->key, key, len + 1);
	s->cb = cb;
	s->ctx = ctx;
	s->hash = notify_key_hash(key);
	if (hook_first && !key_live(key, s->hash, NULL))
		hook_first(key);
	/* Appended, so that callbacks run in subscription order. */
	for (pp = &buckets[s->hash % BUCKETS]; *pp; pp = &(*pp)->next)
		;
	*pp = s;
	live++;
	return s;
}

static void sweep(void)
{
	for (unsigned b = 0; b < BUCKETS && n_dead; b++) {
		struct notify_sub **pp = &buckets[b];
		while (*pp) {
			struct notify_sub *s = *pp;
			if (s->dead) {
				*pp = s->next;
				free(s);
				n_dead--;
			} else {
				pp = &s->next;
			}
		}
	}
}

void notify_unsubscribe(struct notify_sub **sp)
{
	struct notify_sub *s = *sp;

	if (!s)
		return;
	*sp = NULL;
	s->dead = 1;
	live--;
	n_dead++;
	if (hook_last && !key_live(s->key, s->hash, s))
		hook_last(s->key);
	if (!publishing)
		sweep();
}

void notify_publish(const char *key)
{
	unsigned h = notify_key_hash(key);

	publishing++;
	/* Subscriptions added by a callback are appended and may run too: each
	 * one of them has just subscribed to a change it can now see anyway. */
	for (struct notify_sub *s = buckets[h % BUCKETS]; s; s = s->next)
		if (!s->dead && s->hash == h && strcmp(s->key, key) == 0)
			s->cb(s->ctx);
	if (--publishing == 0 && n_dead)
		sweep();
}

unsigned notify_count(void)
{
	return live;
}
