/*
 * Message lists: shared immutable views of a folder, a session's private
 * copy once it changes one, and what is computed once per view (keywords
 * in use, first unseen message).
 */
#include "storage/mailbox-private.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xalloc.h"

/* ---- shared views ----
 *
 * Loading the message list of a large folder from SQLite is most of what a
 * SELECT costs (10,000 rows: a few ms). A view, once loaded, is immutable
 * and shared: every session that opens the folder while its stamp
 * (uidvalidity, uidnext, highestmodseq, gen of the mailboxes row, read in the
 * same read transaction as the rows) is unchanged takes a reference instead
 * of reading the rows again. Every write to a folder's message rows moves
 * its stamp (gen counts the writes that move nothing else), so a view is
 * never served after the rows changed, whichever connection changed them.
 * The cache keeps the most recently used views, within a bound.
 */

#define VIEW_CACHE_MAX_VIEWS 64
#define VIEW_CACHE_MAX_BYTES ((size_t)64 << 20)

static struct {
	pthread_mutex_t lock;
	struct view *head, *tail;
	size_t n, bytes;
} views = { .lock = PTHREAD_MUTEX_INITIALIZER };

void mbox_view_unref(struct view *v)
{
	if (!v || atomic_fetch_sub(&v->refs, 1) != 1)
		return;
	free(v->key);
	free(v->msgs);
	free(v->pool);
	free(v->keywords);
	free(v);
}

/* Takes v out of the cache; the caller holds views.lock and drops the
 * cache's reference after unlocking. */
static void view_unlink(struct view *v)
{
	if (v->prev)
		v->prev->next = v->next;
	else
		views.head = v->next;
	if (v->next)
		v->next->prev = v->prev;
	else
		views.tail = v->prev;
	v->prev = v->next = NULL;
	views.n--;
	views.bytes -= v->bytes;
}

/* Puts v at the front of the cache (most recently used); the caller holds
 * views.lock and has given the cache its reference. */
static void view_push(struct view *v)
{
	v->prev = NULL;
	v->next = views.head;
	if (views.head)
		views.head->prev = v;
	views.head = v;
	if (!views.tail)
		views.tail = v;
	views.n++;
	views.bytes += v->bytes;
}

/* The cached view of key with this stamp, with a reference, or NULL. */
static struct view *view_lookup(const char *key, uint32_t uidvalidity, uint32_t uidnext, uint64_t modseq,
				int64_t gen)
{
	struct view *v, *stale = NULL;

	pthread_mutex_lock(&views.lock);
	for (v = views.head; v; v = v->next)
		if (strcmp(v->key, key) == 0)
			break;
	if (v && v->uidvalidity == uidvalidity && v->uidnext == uidnext && v->highestmodseq == modseq &&
	    v->gen == gen) {
		atomic_fetch_add(&v->refs, 1);
		if (v != views.head) {   /* to the front */
			view_unlink(v);
			view_push(v);
		}
	} else {
		if (v) {
			view_unlink(v);
			stale = v;
		}
		v = NULL;
	}
	pthread_mutex_unlock(&views.lock);
	mbox_view_unref(stale);
	return v;
}

/* Puts v (loaded under its stamp) into the cache in place of any older
 * view of the same folder; evicts the least recently used past the bounds. */
void mbox_view_insert(struct view *v)
{
	struct view *drop[VIEW_CACHE_MAX_VIEWS + 2];
	size_t n_drop = 0;

	if (v->bytes > VIEW_CACHE_MAX_BYTES / 2)
		return;
	pthread_mutex_lock(&views.lock);
	for (struct view *o = views.head; o; o = o->next) {
		if (strcmp(o->key, v->key) == 0) {
			view_unlink(o);
			drop[n_drop++] = o;
			break;
		}
	}
	atomic_fetch_add(&v->refs, 1);
	view_push(v);
	while (views.tail != v && (views.n > VIEW_CACHE_MAX_VIEWS || views.bytes > VIEW_CACHE_MAX_BYTES) &&
	       n_drop < sizeof(drop) / sizeof(drop[0])) {
		struct view *o = views.tail;
		view_unlink(o);
		drop[n_drop++] = o;
	}
	pthread_mutex_unlock(&views.lock);
	for (size_t i = 0; i < n_drop; i++)
		mbox_view_unref(drop[i]);
}

/* Does p belong to the mbox's private copy rather than the view's pool? */
static bool own_string(const struct mbox *m, const char *p)
{
	return !m->view || p < m->view->pool || p >= m->view->pool + m->view->pool_len;
}

void mbox_free_view(struct mbox *m)
{
	if (m->own) {
		for (size_t i = 0; i < m->n; i++) {
			if (own_string(m, m->msgs[i].keywords))
				free(m->msgs[i].keywords);
			if (own_string(m, m->msgs[i].file))
				free(m->msgs[i].file);
		}
		free(m->msgs);
	}
	mbox_view_unref(m->view);
	m->view = NULL;
	m->msgs = NULL;
	m->n = 0;
	m->own = 0;
}

/* Makes the message list this session's own before it changes an entry. */
void mbox_own_view(struct mbox *m)
{
	struct mbox_msg *copy;

	if (m->own)
		return;
	copy = xmalloc((m->n ? m->n : 1) * sizeof(*copy));
	if (m->n)
		memcpy(copy, m->msgs, m->n * sizeof(*copy));
	m->msgs = copy;
	m->own = 1;
}

/* Replaces a string of the message list (mbox_own_view() first). */
void mbox_set_string(struct mbox *m, char **field, char *value)
{
	if (own_string(m, *field))
		free(*field);
	*field = value;
}

void mbox_recent_add(struct mbox *m, uint32_t from, uint32_t to)
{
	if (from >= to)
		return;
	if (m->n_recent && m->recent[m->n_recent - 1][1] == from) {
		m->recent[m->n_recent - 1][1] = to;
		return;
	}
	m->recent = xrealloc(m->recent, (m->n_recent + 1) * sizeof(*m->recent));
	m->recent[m->n_recent][0] = from;
	m->recent[m->n_recent][1] = to;
	m->n_recent++;
}

bool mbox_is_recent(const struct mbox *m, size_t i)
{
	uint32_t uid;

	if (i >= m->n)
		return false;
	uid = m->msgs[i].uid;
	for (size_t k = m->n_recent; k-- > 0;)
		if (uid >= m->recent[k][0] && uid < m->recent[k][1])
			return true;
	return false;
}

bool mbox_keyword_listed(const char *list, const char *k, size_t len)
{
	while (list && *list) {
		size_t l = strcspn(list, " ");
		if (l == len && strncasecmp(list, k, len) == 0)
			return true;
		list += l;
		while (*list == ' ')
			list++;
	}
	return false;
}

/* The union of the keywords of msgs into a new string (at most
 * MBOX_KEYWORDS_MAX octets: more are left out), and the first unseen. */
static char *summarize(const struct mbox_msg *msgs, size_t n, size_t *first_unseen_r)
{
	char out[MBOX_KEYWORDS_MAX + 1];
	size_t len = 0;

	out[0] = '\0';
	*first_unseen_r = 0;
	for (size_t i = 0; i < n; i++) {
		const char *k = msgs[i].keywords;
		if (!(msgs[i].flags & MBOX_SEEN) && !*first_unseen_r)
			*first_unseen_r = i + 1;
		while (k && *k) {
			size_t l = strcspn(k, " ");
			if (l && !mbox_keyword_listed(out, k, l) && len + l + 1 <= MBOX_KEYWORDS_MAX) {
				if (len)
					out[len++] = ' ';
				memcpy(out + len, k, l);
				len += l;
				out[len] = '\0';
			}
			k += l;
			while (*k == ' ')
				k++;
		}
	}
	return xstrdup(out);   /* as long as it is: thousands of views may be held */
}

const char *mbox_keywords(struct mbox *m)
{
	size_t unseen;

	if (!m->own)
		return m->view->keywords;
	free(m->own_keywords);
	m->own_keywords = summarize(m->msgs, m->n, &unseen);
	return m->own_keywords;
}

size_t mbox_first_unseen(const struct mbox *m)
{
	if (!m->own)
		return m->view->first_unseen;
	for (size_t i = 0; i < m->n; i++)
		if (!(m->msgs[i].flags & MBOX_SEEN))
			return i + 1;
	return 0;
}

/* The first index whose UID is >= uid. */
static size_t lower_bound(const struct mbox *m, uint32_t uid)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t mbox_recent_count(const struct mbox *m)
{
	size_t n = 0;

	for (size_t k = 0; k < m->n_recent; k++)
		n += lower_bound(m, m->recent[k][1]) - lower_bound(m, m->recent[k][0]);
	return n;
}

/* A new view of the folder at path key under this stamp, with one
 * reference and an empty pool whose first octet is the "" that every
 * message without keywords shares. Messages are added with mbox_view_add(),
 * then mbox_view_seal() makes it usable. */
struct view *mbox_view_new(const char *key, uint32_t uidvalidity, uint32_t uidnext, uint64_t modseq, int64_t gen,
			     size_t n_hint)
{
	struct view *v = xcalloc(1, sizeof(*v));

	atomic_init(&v->refs, 1);
	v->key = xstrdup(key);
	v->uidvalidity = uidvalidity;
	v->uidnext = uidnext;
	v->highestmodseq = modseq;
	v->gen = gen;
	v->cap = n_hint ? n_hint : 16;
	v->msgs = xmalloc(v->cap * sizeof(*v->msgs));
	v->pool_cap = 64 * v->cap;
	v->pool = xmalloc(v->pool_cap);
	v->pool[0] = '\0';
	v->pool_len = 1;
	return v;
}

/* Copies s (len octets) and its NUL into the pool; returns its offset. */
static size_t pool_add(struct view *v, const char *s, size_t len)
{
	size_t off = v->pool_len;

	if (len == 0)
		return 0;
	if (v->pool_len + len + 1 > v->pool_cap) {
		while (v->pool_len + len + 1 > v->pool_cap)
			v->pool_cap *= 2;
		v->pool = xrealloc(v->pool, v->pool_cap);
	}
	memcpy(v->pool + off, s, len);
	v->pool[off + len] = '\0';
	v->pool_len += len + 1;
	return off;
}

/* Adds x, whose strings are copied into the pool (kept as offsets until
 * mbox_view_seal(): the pool may still move). */
void mbox_view_add(struct view *v, const struct mbox_msg *x, const char *keywords, const char *file)
{
	struct mbox_msg *y;

	if (v->n == v->cap) {
		v->cap *= 2;
		v->msgs = xrealloc(v->msgs, v->cap * sizeof(*v->msgs));
	}
	y = &v->msgs[v->n++];
	*y = *x;
	y->flags &= ~(uint32_t)MBOX_RECENT;
	y->keywords = (char *)(uintptr_t)pool_add(v, keywords ? keywords : "", keywords ? strlen(keywords) : 0);
	y->file = (char *)(uintptr_t)pool_add(v, file ? file : "", file ? strlen(file) : 0);
}

/* Turns offsets into pointers, gives back the unused room (thousands of
 * small views may be held at once) and takes the keyword list and first
 * unseen message. */
void mbox_view_seal(struct view *v)
{
	v->msgs = xrealloc(v->msgs, (v->n ? v->n : 1) * sizeof(*v->msgs));
	v->cap = v->n ? v->n : 1;
	v->pool = xrealloc(v->pool, v->pool_len);
	v->pool_cap = v->pool_len;
	for (size_t i = 0; i < v->n; i++) {
		v->msgs[i].keywords = v->pool + (uintptr_t)v->msgs[i].keywords;
		v->msgs[i].file = v->pool + (uintptr_t)v->msgs[i].file;
	}
	v->keywords = summarize(v->msgs, v->n, &v->first_unseen);
	v->bytes = sizeof(*v) + v->n * sizeof(*v->msgs) + v->pool_len + strlen(v->keywords) + 1;
}

/* Reads the stamp of the folder and its rows from the index (one read
 * transaction) into a view: the cached one when the stamp matches. */
int mbox_view_read(struct mbox *m, struct view **v_r)
{
	sqlite3_stmt *st;
	struct view *v;
	uint32_t uidvalidity, uidnext;
	uint64_t modseq;
	int64_t gen;
	int r;

	if ((r = mbox_exec(m, "BEGIN")) < 0)
		return r;
	if (sqlite3_prepare_v2(m->db, "SELECT uidvalidity, uidnext, highestmodseq, gen FROM mailboxes WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK) {
		r = mbox_db_err(m, "prepare");
		mbox_exec(m, "ROLLBACK");
		return r;
	}
	sqlite3_bind_int64(st, 1, m->id);
	if (mbox_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		mbox_exec(m, "ROLLBACK");
		return -ENOENT; /* the folder left the index meanwhile */
	}
	uidvalidity = (uint32_t)sqlite3_column_int64(st, 0);
	uidnext = (uint32_t)sqlite3_column_int64(st, 1);
	modseq = (uint64_t)sqlite3_column_int64(st, 2);
	gen = sqlite3_column_int64(st, 3);
	sqlite3_finalize(st);

	/* Another session may have written since our sync: a view already
	 * loaded under the same stamp serves (no rows read at all). */
	/* A stand-in's stamps mean nothing to the file's sessions: its lists
	 * are never shared (struct mbox). */
	v = m->mem ? NULL : view_lookup(m->dir, uidvalidity, uidnext, modseq, gen);
	if (v) {
		mbox_exec(m, "COMMIT");
		*v_r = v;
		return 0;
	}
	if (sqlite3_prepare_v2(m->db, "SELECT uid, flags, size, vsize, internaldate, modseq, keywords, file "
			       "FROM messages WHERE mailbox_id = ? ORDER BY uid", -1, &st, NULL) != SQLITE_OK) {
		r = mbox_db_err(m, "prepare");
		mbox_exec(m, "ROLLBACK");
		return r;
	}
	sqlite3_bind_int64(st, 1, m->id);
	v = mbox_view_new(m->dir, uidvalidity, uidnext, modseq, gen, 0);
	while ((r = mbox_step(st)) == SQLITE_ROW) {
		struct mbox_msg x = {
			.uid = (uint32_t)sqlite3_column_int64(st, 0),
			.flags = (uint32_t)sqlite3_column_int64(st, 1),
			.size = (uint64_t)sqlite3_column_int64(st, 2),
			.vsize = (uint64_t)sqlite3_column_int64(st, 3),
			.internaldate = sqlite3_column_int64(st, 4),
			.modseq = (uint64_t)sqlite3_column_int64(st, 5),
		};
		mbox_view_add(v, &x, (const char *)sqlite3_column_text(st, 6), (const char *)sqlite3_column_text(st, 7));
	}
	sqlite3_finalize(st);
	mbox_exec(m, "COMMIT");
	if (r != SQLITE_DONE) {
		mbox_view_unref(v);
		return mbox_db_err(m, "select view");
	}
	mbox_view_seal(v);
	if (!m->mem)
		mbox_view_insert(v);
	*v_r = v;
	return 0;
}

/* Makes v (a reference the caller gives) the session's message list. */
void mbox_adopt_view(struct mbox *m, struct view *v)
{
	mbox_free_view(m);
	m->view = v;
	m->msgs = v->msgs;
	m->n = v->n;
	/* What the session reports goes with the list it holds. */
	m->uidnext = v->uidnext;
	m->highestmodseq = v->highestmodseq;
}

/* Sets the session's message list to the current view of the folder. */
int mbox_load_view(struct mbox *m)
{
	struct view *v;
	int r = mbox_view_read(m, &v);

	if (r < 0)
		return r;
	mbox_adopt_view(m, v);
	return 0;
}

/*
 * After this session's own write to an index whose rows were exactly its
 * list (and the commit of nothing else, the write lock held throughout):
 * its private list is the folder's list under the new stamp. It becomes a
 * shared view, so that the other sessions (and this one's next refresh) do
 * not read the rows again.
 */
void mbox_publish_own(struct mbox *m, uint32_t uidvalidity, uint32_t uidnext, uint64_t modseq, int64_t gen)
{
	struct view *v;

	if (!m->own || m->mem)
		return;
	v = mbox_view_new(m->dir, uidvalidity, uidnext, modseq, gen, m->n);
	for (size_t i = 0; i < m->n; i++)
		mbox_view_add(v, &m->msgs[i], m->msgs[i].keywords, m->msgs[i].file);
	mbox_view_seal(v);
	mbox_view_insert(v);
	mbox_adopt_view(m, v);
}
