/* Unit tests of the in-process change notifications. */
#include <stdio.h>
#include <string.h>

#include "lib/notify.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static int hits[4];
static char firsts[256], lasts[256];

static void on_first(const char *key)
{
	strncat(firsts, key, sizeof(firsts) - strlen(firsts) - 2);
	strcat(firsts, ";");
}

static void on_last(const char *key)
{
	strncat(lasts, key, sizeof(lasts) - strlen(lasts) - 2);
	strcat(lasts, ";");
}
static struct notify_sub *subs[4];

static void cb(void *ctx)
{
	int i = (int)(long)ctx;

	hits[i]++;
	/* Subscriber 1 leaves from inside its callback, and takes 2 with it. */
	if (i == 1) {
		notify_unsubscribe(&subs[1]);
		notify_unsubscribe(&subs[2]);
	}
}

int main(void)
{
	subs[0] = notify_subscribe("/m/a", cb, (void *)0L);
	subs[1] = notify_subscribe("/m/a", cb, (void *)1L);
	subs[2] = notify_subscribe("/m/a", cb, (void *)2L);
	subs[3] = notify_subscribe("/m/a/.Sent", cb, (void *)3L);
	CHECK(notify_count() == 4);

	notify_publish("/m/b");
	CHECK(hits[0] == 0 && hits[1] == 0 && hits[2] == 0 && hits[3] == 0);

	notify_publish("/m/a");
	CHECK(hits[0] == 1 && hits[1] == 1 && hits[2] == 0 && hits[3] == 0);
	CHECK(subs[1] == NULL && subs[2] == NULL && notify_count() == 2);

	notify_publish("/m/a");
	CHECK(hits[0] == 2 && hits[1] == 1 && hits[2] == 0);
	notify_publish("/m/a/.Sent");
	CHECK(hits[3] == 1);

	notify_unsubscribe(&subs[0]);
	notify_unsubscribe(&subs[3]);
	notify_unsubscribe(&subs[3]);
	CHECK(notify_count() == 0);
	notify_publish("/m/a");
	CHECK(hits[0] == 2);

	/* The hooks (lib/folder-watch.c): first subscriber of a key in, last
	 * one out, also when the last leaves from inside a callback. */
	notify_set_hooks(on_first, on_last);
	subs[0] = notify_subscribe("/m/a", cb, (void *)0L);
	subs[1] = notify_subscribe("/m/a", cb, (void *)1L);
	subs[2] = notify_subscribe("/m/b", cb, (void *)2L);
	CHECK(strcmp(firsts, "/m/a;/m/b;") == 0 && strcmp(lasts, "") == 0);
	notify_unsubscribe(&subs[0]);
	CHECK(strcmp(lasts, "") == 0);
	subs[3] = notify_subscribe("/m/a", cb, (void *)3L);
	CHECK(strcmp(firsts, "/m/a;/m/b;") == 0);
	notify_unsubscribe(&subs[3]);
	CHECK(strcmp(lasts, "") == 0);
	/* subscriber 1's callback unsubscribes 1 and 2: both keys end */
	notify_publish("/m/a");
	CHECK(strcmp(lasts, "/m/a;/m/b;") == 0 && notify_count() == 0);
	subs[0] = notify_subscribe("/m/a", cb, (void *)0L);
	CHECK(strcmp(firsts, "/m/a;/m/b;/m/a;") == 0);
	notify_unsubscribe(&subs[0]);
	CHECK(strcmp(lasts, "/m/a;/m/b;/m/a;") == 0);
	notify_set_hooks(NULL, NULL);

	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("notify: all checks passed\n");
	return 0;
}
