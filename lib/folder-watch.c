#include "lib/folder-watch.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/notify.h"
#include "lib/xalloc.h"

/*
 * Why FOLDER_WATCH_DELAY_MS is 150: storage/mailbox.c trusts a directory
 * mtime only once it is 100 ms old. Publishing a burst of changes a little
 * later than that lets the first session that refreshes record the settled
 * mtimes, so the other sessions of the folder skip the directory scan.
 */

#define BUCKETS 256
/* A folder nobody watches any more keeps its watch this long (and at most
 * LINGER_MAX of them are kept): adding an inotify watch costs the kernel a
 * walk over the directory's entries (about half a millisecond for 10,000
 * files, on the loop thread), and a client that logs out and in again, or
 * SELECTs back and forth, should not pay it each time. */
#define LINGER_MS 60000
#define LINGER_MAX 1024

struct watch {
	struct watch *next;
	uv_fs_event_t ev[2];    /* new/ and cur/ */
	uv_timer_t timer;       /* the delayed publish, or the poll */
	unsigned open;          /* handles not closed yet: freed at 0 */
	bool polling;           /* the kernel refused a watch */
	bool unused;            /* no subscriber: lingers until idle_since + LINGER_MS */
	uint64_t idle_since;
	bool gone;              /* new/ or cur/ itself was deleted or moved */
	char key[];
};

static uv_loop_t *wloop;
static struct watch *buckets[BUCKETS];
static unsigned n_watches, n_unused;
static uv_timer_t sweep_timer;
static bool sweep_timer_open;

static void on_closed(uv_handle_t *h)
{
	struct watch *w = h->data;

	if (--w->open == 0)
		free(w);
}

static void on_timer(uv_timer_t *t)
{
	struct watch *w = t->data;

	/* The callbacks may end the watch (a session leaves): w stays
	 * allocated until its handles are closed, but is not touched again. */
	notify_publish(w->key);
}

static void on_event(uv_fs_event_t *e, const char *filename, int events, int status)
{
	struct watch *w = e->data;

	(void)status;
	/* libuv names the watched directory itself (IN_DELETE_SELF,
	 * IN_MOVE_SELF) by its base name; no Maildir file is called so. */
	if ((events & UV_RENAME) && filename && (strcmp(filename, "new") == 0 || strcmp(filename, "cur") == 0))
		w->gone = true;
	if (!w->polling && !uv_is_active((uv_handle_t *)&w->timer))
		uv_timer_start(&w->timer, on_timer, FOLDER_WATCH_DELAY_MS, 0);
}

static struct watch *watch_find(const char *key)
{
	for (struct watch *w = buckets[notify_key_hash(key) % BUCKETS]; w; w = w->next)
		if (strcmp(w->key, key) == 0)
			return w;
	return NULL;
}

static void watch_close(struct watch *w);

/* Takes w out of the table and closes it. */
static void watch_drop(struct watch *w)
{
	for (struct watch **pp = &buckets[notify_key_hash(w->key) % BUCKETS]; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			watch_close(w);
			return;
		}
	}
}

static void watch_first(const char *key)
{
	size_t len = strlen(key);
	struct watch *w = watch_find(key);
	static const char *const subs[2] = { "new", "cur" };
	static bool warned;
	unsigned b = notify_key_hash(key) % BUCKETS;

	if (w) {
		/* A lingering watch serves again, unless the folder was deleted
		 * (or renamed) since: its watch is on the old directory. */
		if (!w->gone) {
			if (w->unused)
				n_unused--;
			w->unused = false;
			return;
		}
		watch_drop(w);
	}
	w = xcalloc(1, sizeof(*w) + len + 1);

	memcpy(w->key, key, len + 1);
	uv_timer_init(wloop, &w->timer);
	w->timer.data = w;
	uv_unref((uv_handle_t *)&w->timer);
	w->open = 1;
	for (int i = 0; i < 2; i++) {
		char path[4096];
		int r;

		uv_fs_event_init(wloop, &w->ev[i]);
		w->ev[i].data = w;
		w->open++;
		snprintf(path, sizeof(path), "%s/%s", key, subs[i]);
		r = uv_fs_event_start(&w->ev[i], on_event, path, 0);
		if (r < 0 && r != UV_ENOENT) {
			/* Out of inotify watches, most likely: poll instead. */
			if (!warned)
				log_warn("watch", NULL, "cannot watch folder path=%s error=%s, polling every %d s",
					 path, uv_strerror(r), FOLDER_WATCH_POLL_MS / 1000);
			warned = true;
			w->polling = true;
		}
		uv_unref((uv_handle_t *)&w->ev[i]);
	}
	if (w->polling)
		uv_timer_start(&w->timer, on_timer, FOLDER_WATCH_POLL_MS, FOLDER_WATCH_POLL_MS);
	w->next = buckets[b];
	buckets[b] = w;
	n_watches++;
}

static void watch_close(struct watch *w)
{
	uv_close((uv_handle_t *)&w->timer, on_closed);
	uv_close((uv_handle_t *)&w->ev[0], on_closed);
	uv_close((uv_handle_t *)&w->ev[1], on_closed);
	if (w->unused)
		n_unused--;
	n_watches--;
}

/* Closes the unused watches idle since before cutoff (all with cutoff
 * UINT64_MAX), or, with oldest_only, the one unused longest. */
static void close_unused(uint64_t cutoff, bool oldest_only)
{
	struct watch **oldest = NULL;

	for (unsigned b = 0; b < BUCKETS; b++) {
		for (struct watch **pp = &buckets[b]; *pp;) {
			struct watch *w = *pp;
			if (!w->unused) {
				pp = &w->next;
			} else if (oldest_only) {
				if (!oldest || w->idle_since < (*oldest)->idle_since)
					oldest = pp;
				pp = &w->next;
			} else if (w->idle_since < cutoff) {
				*pp = w->next;
				watch_close(w);
			} else {
				pp = &w->next;
			}
		}
	}
	if (oldest) {
		struct watch *w = *oldest;
		*oldest = w->next;
		watch_close(w);
	}
}

static void on_sweep(uv_timer_t *t)
{
	uint64_t now = uv_now(t->loop);

	if (n_unused && now > LINGER_MS)
		close_unused(now - LINGER_MS, false);
}

static void watch_last(const char *key)
{
	struct watch *w = watch_find(key);

	if (!w || w->unused)
		return;
	w->unused = true;
	w->idle_since = uv_now(wloop);
	if (++n_unused > LINGER_MAX)
		close_unused(0, true);
}

void folder_watch_start(uv_loop_t *loop)
{
	wloop = loop;
	notify_set_hooks(watch_first, watch_last);
	uv_timer_init(loop, &sweep_timer);
	uv_timer_start(&sweep_timer, on_sweep, LINGER_MS / 4, LINGER_MS / 4);
	uv_unref((uv_handle_t *)&sweep_timer);
	sweep_timer_open = true;
}

void folder_watch_stop(void)
{
	if (!wloop)
		return;
	notify_set_hooks(NULL, NULL);
	if (sweep_timer_open) {
		uv_close((uv_handle_t *)&sweep_timer, NULL);
		sweep_timer_open = false;
	}
	for (unsigned b = 0; b < BUCKETS; b++) {
		while (buckets[b]) {
			struct watch *w = buckets[b];
			buckets[b] = w->next;
			watch_close(w);
		}
	}
	/* Let the close callbacks run (they free the watches). */
	uv_run(wloop, UV_RUN_NOWAIT);
	wloop = NULL;
}

unsigned folder_watch_count(void)
{
	return n_watches;
}
