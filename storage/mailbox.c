#include "storage/mailbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"

#define INDEX_FILE "buzon-index.db"
/* Bump both when index_schema changes: older index files are upgraded (or,
 * being a cache, could simply be deleted). */
#define INDEX_VERSION 3
#define INDEX_VERSION_TEXT "3"

/* The per-user index. Kept here rather than in schema/ because it lives in
 * each user's Maildir, not in buzon.db; see docs/architecture.md. */
static const char index_schema[] =
	"CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);\n"
	"CREATE TABLE IF NOT EXISTS mailboxes (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  name TEXT NOT NULL UNIQUE,\n"
	"  uidvalidity INTEGER NOT NULL,\n"
	"  uidnext INTEGER NOT NULL,\n"
	"  highestmodseq INTEGER NOT NULL,\n"
	"  first_recent_uid INTEGER NOT NULL DEFAULT 1,\n"
	"  sync_new_ns INTEGER NOT NULL DEFAULT 0,\n"
	"  sync_cur_ns INTEGER NOT NULL DEFAULT 0,\n"
	/* gen grows with every write to the folder's message rows: with
	 * uidvalidity, uidnext and highestmodseq it stamps a loaded view
	 * (see "shared views" below). */
	"  gen INTEGER NOT NULL DEFAULT 0);\n"
	"CREATE TABLE IF NOT EXISTS messages (\n"
	"  mailbox_id INTEGER NOT NULL,\n"
	"  uid INTEGER NOT NULL,\n"
	"  base TEXT NOT NULL,\n"
	"  file TEXT NOT NULL,\n"
	"  flags INTEGER NOT NULL,\n"
	"  keywords TEXT NOT NULL DEFAULT '',\n"
	"  size INTEGER NOT NULL,\n"
	"  vsize INTEGER NOT NULL,\n"
	"  internaldate INTEGER NOT NULL,\n"
	"  modseq INTEGER NOT NULL,\n"
	"  PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;\n"
	"CREATE UNIQUE INDEX IF NOT EXISTS messages_base ON messages(mailbox_id, base);\n"
	"CREATE TABLE IF NOT EXISTS expunged (\n"
	"  mailbox_id INTEGER NOT NULL,\n"
	"  uid INTEGER NOT NULL,\n"
	"  modseq INTEGER NOT NULL,\n"
	"  PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;\n"
	/* The FETCH cache (mbox_cache_*, at the end of this file): ENVELOPE,
	 * BODYSTRUCTURE and BODY strings of a message, filled on first FETCH.
	 * base ties a row to its file, so a reused (mailbox_id, uid) never
	 * serves another message; rows die with their message. */
	"CREATE TABLE IF NOT EXISTS cache (\n"
	"  mailbox_id INTEGER NOT NULL,\n"
	"  uid INTEGER NOT NULL,\n"
	"  base TEXT NOT NULL,\n"
	"  envelope TEXT,\n"
	"  bodystructure TEXT,\n"
	"  body TEXT,\n"
	"  PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;\n"
	"CREATE TRIGGER IF NOT EXISTS cache_gc AFTER DELETE ON messages BEGIN\n"
	"  DELETE FROM cache WHERE mailbox_id = old.mailbox_id AND uid = old.uid;\n"
	"END;\n";

struct mbox {
	char *maildir;
	char *name;
	char *dir;              /* the folder's path */
	unsigned flags;
	sqlite3 *db;
	int64_t id;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	uint32_t recent_from;   /* first UID no session had claimed as \Recent at the last sync */
	int scanned;            /* the last sync read the directories */
	int wrote;              /* the last sync changed message rows */
	int64_t sync_new_ns;    /* new/ and cur/ mtimes at the last full scan (0: unknown) */
	int64_t sync_cur_ns;
	/* The message list: the shared view's array, or (own) a private copy
	 * made by the first change this session makes to it; strings of a
	 * private copy point into view->pool or are the copy's own. */
	struct view *view;
	struct mbox_msg *msgs;
	size_t n;
	int own;
	/* \Recent of this session: the UID ranges [from, to) it claimed. */
	uint32_t (*recent)[2];
	size_t n_recent;
	char *own_keywords;     /* mbox_keywords() of a private copy */
	struct mbox_changes ch;
};

/* One file found in new/ or cur/. */
struct found {
	char *name;      /* file name without the directory */
	char *base;      /* name up to ':' */
	int in_cur;
	int seen;        /* matched to an index row */
	int has_key;     /* key holds the name's numbers (parse_name_key) */
	unsigned long long key[3];
};

struct row {
	uint32_t uid;
	uint32_t flags;
	char *base;
	char *file;
	int matched;
};

void mbox_flags_to_info(uint32_t flags, char *out)
{
	size_t n = 0;

	/* Maildir info letters in ASCII order, as the spec asks. */
	if (flags & MBOX_DRAFT)
		out[n++] = 'D';
	if (flags & MBOX_FLAGGED)
		out[n++] = 'F';
	if (flags & MBOX_ANSWERED)
		out[n++] = 'R';
	if (flags & MBOX_SEEN)
		out[n++] = 'S';
	if (flags & MBOX_DELETED)
		out[n++] = 'T';
	out[n] = '\0';
}

uint32_t mbox_info_to_flags(const char *name)
{
	const char *info = strstr(name, ":2,");
	uint32_t f = 0;

	if (!info)
		return 0;
	for (info += 3; *info; info++) {
		switch (*info) {
		case 'D': f |= MBOX_DRAFT; break;
		case 'F': f |= MBOX_FLAGGED; break;
		case 'R': f |= MBOX_ANSWERED; break;
		case 'S': f |= MBOX_SEEN; break;
		case 'T': f |= MBOX_DELETED; break;
		default: break;
		}
	}
	return f;
}

static int wake(struct mbox *m);

static int db_err(struct mbox *m, const char *what)
{
	log_error("store", NULL, "index error op=%s maildir=%s error=%s", what, m->maildir, sqlite3_errmsg(m->db));
	return -EIO;
}

static int exec(struct mbox *m, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(m->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("store", NULL, "index error maildir=%s error=%s", m->maildir, msg ? msg : "?");
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

/* Reads S= and W= from a Dovecot-style name; 0 when absent. */
static uint64_t name_size(const char *name, char key)
{
	char pat[4] = { ',', key, '=', '\0' };
	const char *p = strstr(name, pat);
	char *end;
	unsigned long long v;

	if (!p)
		return 0;
	v = strtoull(p + 3, &end, 10);
	if (end == p + 3)
		return 0;
	return v;
}

static int measure(const char *path, uint64_t *size_r, uint64_t *vsize_r, int64_t *mtime_r)
{
	struct stat st;
	char buf[65536];
	uint64_t bare = 0;
	char prev = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' && prev != '\r')
				bare++;
			prev = buf[i];
		}
	}
	close(fd);
	if (n < 0)
		return -EIO;
	*size_r = (uint64_t)st.st_size;
	*vsize_r = (uint64_t)st.st_size + bare;
	*mtime_r = st.st_mtime;
	return 0;
}

/* "<sec>.M<usec>P<pid>Q<n>" as buzon and Dovecot write them: compared by
 * number, so that messages get UIDs in the order they were written. */
static int parse_name_key(const char *name, unsigned long long k[3])
{
	char *end;

	k[0] = strtoull(name, &end, 10);
	if (end == name || *end != '.' || end[1] != 'M')
		return 0;
	name = end + 2;
	k[1] = strtoull(name, &end, 10);
	if (end == name || *end != 'P')
		return 0;
	end = strchr(end, 'Q');
	if (!end)
		return 0;
	name = end + 1;
	k[2] = strtoull(name, &end, 10);
	return end != name;
}

static int cmp_found(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	int c = strcmp(x->base, y->base);

	/* Equal bases stay together (a file in both new/ and cur/). */
	if (c == 0)
		return 0;
	if (x->has_key && y->has_key) {
		for (int i = 0; i < 3; i++)
			if (x->key[i] != y->key[i])
				return x->key[i] < y->key[i] ? -1 : 1;
	}
	return c;
}

/* FNV-1a of a base name, for the sync's table of index rows. */
static size_t base_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static int64_t mtime_ns(const char *dir, const char *sub)
{
	char path[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, sub) >= sizeof(path) || stat(path, &st) < 0)
		return 0;
	return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

static void dir_mtimes(const struct mbox *m, int64_t *new_r, int64_t *cur_r)
{
	*new_r = mtime_ns(m->dir, "new");
	*cur_r = mtime_ns(m->dir, "cur");
}

static int scan_dir(struct mbox *m, const char *sub, struct found **list, size_t *n, size_t *cap)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/%s", m->dir, sub);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		const char *colon;
		if (e->d_name[0] == '.')
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 256;
			*list = xrealloc(*list, *cap * sizeof(**list));
		}
		colon = strchr(e->d_name, ':');
		(*list)[*n].name = xstrdup(e->d_name);
		(*list)[*n].base = colon ? xstrndup(e->d_name, (size_t)(colon - e->d_name)) : xstrdup(e->d_name);
		(*list)[*n].in_cur = strcmp(sub, "cur") == 0;
		(*list)[*n].seen = 0;
		/* Once here, not in every comparison of the sort. */
		(*list)[*n].has_key = parse_name_key(e->d_name, (*list)[*n].key);
		(*n)++;
	}
	closedir(d);
	return 0;
}

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
struct view {
	atomic_uint refs;
	char *key;                 /* the folder's path */
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	int64_t gen;
	size_t n;
	struct mbox_msg *msgs;     /* keywords and file point into pool */
	char *pool;
	size_t pool_len;
	size_t cap, pool_cap;      /* room while the view is built */
	size_t bytes;
	char *keywords;            /* the keywords in use, each once ("" when none) */
	size_t first_unseen;       /* 1 + index of the first message without \Seen; 0: none */
	struct view *prev, *next;  /* the cache's LRU list, most recent first */
};

#define VIEW_CACHE_MAX_VIEWS 64
#define VIEW_CACHE_MAX_BYTES ((size_t)64 << 20)

static struct {
	pthread_mutex_t lock;
	struct view *head, *tail;
	size_t n, bytes;
} views = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void view_unref(struct view *v)
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
	view_unref(stale);
	return v;
}

/* Puts v (loaded under its stamp) into the cache in place of any older
 * view of the same folder; evicts the least recently used past the bounds. */
static void view_insert(struct view *v)
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
		view_unref(drop[i]);
}

/* Does p belong to the mbox's private copy rather than the view's pool? */
static bool own_string(const struct mbox *m, const char *p)
{
	return !m->view || p < m->view->pool || p >= m->view->pool + m->view->pool_len;
}

static void free_view(struct mbox *m)
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
	view_unref(m->view);
	m->view = NULL;
	m->msgs = NULL;
	m->n = 0;
	m->own = 0;
}

/* Makes the message list this session's own before it changes an entry. */
static void own_view(struct mbox *m)
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

/* Replaces a string of the message list (own_view() first). */
static void set_string(struct mbox *m, char **field, char *value)
{
	if (own_string(m, *field))
		free(*field);
	*field = value;
}

static void recent_add(struct mbox *m, uint32_t from, uint32_t to)
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

static int load_mailbox_row(struct mbox *m)
{
	sqlite3_stmt *st;
	int r;

	if (sqlite3_prepare_v2(m->db, "SELECT id, uidvalidity, uidnext, highestmodseq, first_recent_uid, "
			       "sync_new_ns, sync_cur_ns FROM mailboxes WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
		return db_err(m, "prepare");
	sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		m->id = sqlite3_column_int64(st, 0);
		m->uidvalidity = (uint32_t)sqlite3_column_int64(st, 1);
		m->uidnext = (uint32_t)sqlite3_column_int64(st, 2);
		m->highestmodseq = (uint64_t)sqlite3_column_int64(st, 3);
		m->recent_from = (uint32_t)sqlite3_column_int64(st, 4);
		m->sync_new_ns = sqlite3_column_int64(st, 5);
		m->sync_cur_ns = sqlite3_column_int64(st, 6);
		sqlite3_finalize(st);
		return 0;
	}
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return db_err(m, "select mailbox");
	/* First sight of this folder (or a rebuilt index): a new UIDVALIDITY,
	 * never one this index handed out before (a folder deleted and created
	 * again in the same second must not get its old one back). */
	m->uidvalidity = (uint32_t)time(NULL);
	if (sqlite3_prepare_v2(m->db, "SELECT value FROM meta WHERE key = 'last_uidvalidity'", -1, &st, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW && (uint32_t)sqlite3_column_int64(st, 0) >= m->uidvalidity)
			m->uidvalidity = (uint32_t)sqlite3_column_int64(st, 0) + 1;
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(m->db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_uidvalidity', ?)", -1,
			       &st, NULL) != SQLITE_OK)
		return db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, m->uidvalidity);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return db_err(m, "update meta");
	m->uidnext = 1;
	m->highestmodseq = 1;
	m->recent_from = 1;
	m->sync_new_ns = m->sync_cur_ns = 0;
	if (sqlite3_prepare_v2(m->db, "INSERT INTO mailboxes (name, uidvalidity, uidnext, highestmodseq, "
			       "first_recent_uid) VALUES (?, ?, 1, 1, 1)", -1, &st, NULL) != SQLITE_OK)
		return db_err(m, "prepare");
	sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, m->uidvalidity);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return db_err(m, "insert mailbox");
	m->id = sqlite3_last_insert_rowid(m->db);
	return 0;
}

/* Was a directory mtime read at now_ns old enough that a later change
 * must move it? */
static bool mtime_settled(int64_t mtime_ns, int64_t now_ns)
{
	int64_t margin = mtime_ns % 1000000000LL == 0 ? 1000000000LL : 100000000LL;

	return mtime_ns > 0 && now_ns - mtime_ns > margin;
}

/*
 * Brings the index in line with the folder. Runs in one IMMEDIATE
 * transaction so that two sessions never hand out the same UID.
 */
static int sync_index(struct mbox *m)
{
	struct found *files = NULL;
	size_t n_files = 0, cap = 0;
	struct row *rows = NULL;
	size_t n_rows = 0, rows_cap = 0, *htab = NULL, hcap = 0;
	sqlite3_stmt *sel = NULL, *del = NULL, *exp = NULL, *upd = NULL, *ins = NULL;
	int64_t new_ns = 0, cur_ns = 0, now_ns, old_new_ns, old_cur_ns;
	uint32_t old_recent;
	struct timespec now;
	int r;

	r = exec(m, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	m->wrote = 0;
	r = load_mailbox_row(m);
	if (r < 0)
		goto fail;
	old_new_ns = m->sync_new_ns;
	old_cur_ns = m->sync_cur_ns;
	old_recent = m->recent_from;
	clock_gettime(CLOCK_REALTIME, &now);
	now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	/* Neither new/ nor cur/ changed since the last full scan: the index is
	 * up to date (a file's rename, arrival or removal changes its
	 * directory's mtime). Mtimes too close to the scan are not trusted,
	 * as Dovecot does: a change in the same clock tick would not show. */
	dir_mtimes(m, &new_ns, &cur_ns);
	m->scanned = 0;
	if (new_ns && cur_ns && new_ns == m->sync_new_ns && cur_ns == m->sync_cur_ns)
		goto update_row;
	m->scanned = 1;
	if ((r = scan_dir(m, "new", &files, &n_files, &cap)) < 0 ||
	    (r = scan_dir(m, "cur", &files, &n_files, &cap)) < 0)
		goto fail;

	if (sqlite3_prepare_v2(m->db, "SELECT uid, flags, base, file FROM messages WHERE mailbox_id = ?",
			       -1, &sel, NULL) != SQLITE_OK) {
		r = db_err(m, "prepare");
		goto fail;
	}
	sqlite3_bind_int64(sel, 1, m->id);
	while ((r = sqlite3_step(sel)) == SQLITE_ROW) {
		if (n_rows == rows_cap) {
			rows_cap = rows_cap ? rows_cap * 2 : 256;
			rows = xrealloc(rows, rows_cap * sizeof(*rows));
		}
		rows[n_rows].uid = (uint32_t)sqlite3_column_int64(sel, 0);
		rows[n_rows].flags = (uint32_t)sqlite3_column_int64(sel, 1);
		rows[n_rows].base = xstrdup((const char *)sqlite3_column_text(sel, 2));
		rows[n_rows].file = xstrdup((const char *)sqlite3_column_text(sel, 3));
		rows[n_rows].matched = 0;
		n_rows++;
	}
	if (r != SQLITE_DONE) {
		r = db_err(m, "select messages");
		goto fail;
	}
	/* Rows by base name: a hash table of indexes (comparing 10,000 names
	 * that share long prefixes in sorts and searches was most of a scan). */
	hcap = 16;
	while (hcap < 2 * n_rows)
		hcap *= 2;
	htab = xmalloc(hcap * sizeof(*htab));
	for (size_t k = 0; k < hcap; k++)
		htab[k] = SIZE_MAX;
	for (size_t k = 0; k < n_rows; k++) {
		size_t h = base_hash(rows[k].base, strlen(rows[k].base)) & (hcap - 1);
		while (htab[h] != SIZE_MAX)
			h = (h + 1) & (hcap - 1);
		htab[h] = k;
	}

	if (sqlite3_prepare_v2(m->db, "UPDATE messages SET file = ?1, flags = ?2, "
			       "modseq = CASE WHEN ?3 = 0 THEN modseq ELSE ?3 END "
			       "WHERE mailbox_id = ?4 AND uid = ?5", -1, &upd, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(m->db, "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", -1, &del,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(m->db, "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
			       -1, &exp, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(m->db, "INSERT INTO messages (mailbox_id, uid, base, file, flags, size, vsize, "
			       "internaldate, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &ins,
			       NULL) != SQLITE_OK) {
		r = db_err(m, "prepare");
		goto fail;
	}

	/* Files the index knows: follow renames and flag changes. */
	for (size_t i = 0; i < n_files; i++) {
		struct row *row;
		char file[PATH_MAX];
		uint32_t fflags;

		row = NULL;
		for (size_t h = base_hash(files[i].base, strlen(files[i].base)) & (hcap - 1); htab[h] != SIZE_MAX;
		     h = (h + 1) & (hcap - 1)) {
			if (strcmp(rows[htab[h]].base, files[i].base) == 0) {
				row = &rows[htab[h]];
				break;
			}
		}
		if (!row)
			continue; /* new */
		if (row->matched) {
			/* The same base twice (a crash between link and unlink): the
			 * first one found stands for the message. */
			files[i].seen = 1;
			continue;
		}
		row->matched = 1;
		files[i].seen = 1;
		snprintf(file, sizeof(file), "%s/%s", files[i].in_cur ? "cur" : "new", files[i].name);
		fflags = files[i].in_cur ? mbox_info_to_flags(files[i].name) : row->flags;
		if (strcmp(file, row->file) == 0 && fflags == row->flags)
			continue;
		sqlite3_reset(upd);
		sqlite3_bind_text(upd, 1, file, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(upd, 2, fflags);
		/* A move alone (new/ to cur/) keeps the modseq; a flag change gets a new one. */
		sqlite3_bind_int64(upd, 3, (sqlite3_int64)(fflags != row->flags ? ++m->highestmodseq : 0));
		sqlite3_bind_int64(upd, 4, m->id);
		sqlite3_bind_int64(upd, 5, row->uid);
		if (sqlite3_step(upd) != SQLITE_DONE) {
			r = db_err(m, "update message");
			goto fail;
		}
		m->wrote = 1;
	}

	/* Index rows whose file is gone: expunged behind our back. */
	for (size_t i = 0; i < n_rows; i++) {
		if (rows[i].matched)
			continue;
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, m->id);
		sqlite3_bind_int64(del, 2, rows[i].uid);
		sqlite3_reset(exp);
		sqlite3_bind_int64(exp, 1, m->id);
		sqlite3_bind_int64(exp, 2, rows[i].uid);
		sqlite3_bind_int64(exp, 3, (sqlite3_int64)++m->highestmodseq);
		if (sqlite3_step(del) != SQLITE_DONE || sqlite3_step(exp) != SQLITE_DONE) {
			r = db_err(m, "expunge");
			goto fail;
		}
		m->wrote = 1;
	}

	/* Files new to the index: the next UIDs, in name (arrival) order.
	 * Only they are sorted; the seen ones go to the end. */
	{
		size_t n_new = 0;
		for (size_t i = 0; i < n_files; i++) {
			if (!files[i].seen) {
				struct found t = files[n_new];
				files[n_new] = files[i];
				files[i] = t;
				n_new++;
			}
		}
		if (n_new > 1)
			qsort(files, n_new, sizeof(*files), cmp_found);
	}
	for (size_t i = 0; i < n_files; i++) {
		char path[PATH_MAX + 300], file[PATH_MAX];
		uint64_t size = 0, vsize = 0;
		int64_t mtime = 0;

		if (files[i].seen)
			break;
		/* The same base twice (a crash between link and unlink): take it once. */
		if (i > 0 && strcmp(files[i].base, files[i - 1].base) == 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s", files[i].in_cur ? "cur" : "new", files[i].name);
		snprintf(path, sizeof(path), "%s/%s", m->dir, file);
		r = measure(path, &size, &vsize, &mtime);
		if (r == -ENOENT)
			continue; /* expunged by someone else meanwhile */
		if (r < 0)
			goto fail;
		if (name_size(files[i].name, 'W') && name_size(files[i].name, 'S') == size)
			vsize = name_size(files[i].name, 'W');
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, m->id);
		sqlite3_bind_int64(ins, 2, m->uidnext);
		sqlite3_bind_text(ins, 3, files[i].base, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 4, file, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(ins, 5, files[i].in_cur ? mbox_info_to_flags(files[i].name) : 0);
		sqlite3_bind_int64(ins, 6, (sqlite3_int64)size);
		sqlite3_bind_int64(ins, 7, (sqlite3_int64)vsize);
		sqlite3_bind_int64(ins, 8, mtime);
		sqlite3_bind_int64(ins, 9, (sqlite3_int64)++m->highestmodseq);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			r = db_err(m, "insert message");
			goto fail;
		}
		m->uidnext++;
		m->wrote = 1;
	}

	/* Trust these mtimes next time only if they were clearly in the past
	 * when read (before the scan): a change in the same timestamp tick
	 * as the read would not move them. Filesystems with whole-second
	 * times get a second; others a margin well above a clock tick. */
	m->sync_new_ns = mtime_settled(new_ns, now_ns) ? new_ns : 0;
	m->sync_cur_ns = mtime_settled(cur_ns, now_ns) ? cur_ns : 0;
update_row:
	{
		sqlite3_stmt *st;
		uint32_t first_recent = m->recent_from;

		if (m->flags & MBOX_TAKE_RECENT) {
			/* This session owns \Recent of everything not yet claimed. */
			recent_add(m, m->recent_from, m->uidnext);
			first_recent = m->uidnext;
		}
		/* Nothing to write (a SELECT of an unchanged folder): no WAL frame. */
		if (!m->wrote && first_recent == old_recent && m->sync_new_ns == old_new_ns &&
		    m->sync_cur_ns == old_cur_ns)
			goto commit;
		if (sqlite3_prepare_v2(m->db, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, "
				       "first_recent_uid = ?, sync_new_ns = ?, sync_cur_ns = ?, gen = gen + ? "
				       "WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
			r = db_err(m, "prepare");
			goto fail;
		}
		sqlite3_bind_int64(st, 1, m->uidnext);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)m->highestmodseq);
		sqlite3_bind_int64(st, 3, first_recent);
		sqlite3_bind_int64(st, 4, m->sync_new_ns);
		sqlite3_bind_int64(st, 5, m->sync_cur_ns);
		sqlite3_bind_int64(st, 6, m->wrote ? 1 : 0);
		sqlite3_bind_int64(st, 7, m->id);
		r = sqlite3_step(st);
		sqlite3_finalize(st);
		if (r != SQLITE_DONE) {
			r = db_err(m, "update mailbox");
			goto fail;
		}
	}
commit:
	r = exec(m, "COMMIT");
	if (r < 0)
		goto fail;
	r = 0;
	goto out;
fail:
	exec(m, "ROLLBACK");
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	sqlite3_finalize(del);
	sqlite3_finalize(exp);
	sqlite3_finalize(ins);
	for (size_t i = 0; i < n_files; i++) {
		free(files[i].name);
		free(files[i].base);
	}
	free(files);
	for (size_t i = 0; i < n_rows; i++) {
		free(rows[i].base);
		free(rows[i].file);
	}
	free(rows);
	free(htab);
	return r;
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
 * message without keywords shares. Messages are added with view_add(),
 * then view_seal() makes it usable. */
static struct view *view_new(const char *key, uint32_t uidvalidity, uint32_t uidnext, uint64_t modseq, int64_t gen,
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
 * view_seal(): the pool may still move). */
static void view_add(struct view *v, const struct mbox_msg *x, const char *keywords, const char *file)
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
static void view_seal(struct view *v)
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
static int view_read(struct mbox *m, struct view **v_r)
{
	sqlite3_stmt *st;
	struct view *v;
	uint32_t uidvalidity, uidnext;
	uint64_t modseq;
	int64_t gen;
	int r;

	if (exec(m, "BEGIN") < 0)
		return -EIO;
	if (sqlite3_prepare_v2(m->db, "SELECT uidvalidity, uidnext, highestmodseq, gen FROM mailboxes WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK) {
		r = db_err(m, "prepare");
		exec(m, "ROLLBACK");
		return r;
	}
	sqlite3_bind_int64(st, 1, m->id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		exec(m, "ROLLBACK");
		return -ENOENT; /* the folder left the index meanwhile */
	}
	uidvalidity = (uint32_t)sqlite3_column_int64(st, 0);
	uidnext = (uint32_t)sqlite3_column_int64(st, 1);
	modseq = (uint64_t)sqlite3_column_int64(st, 2);
	gen = sqlite3_column_int64(st, 3);
	sqlite3_finalize(st);

	/* Another session may have written since our sync: a view already
	 * loaded under the same stamp serves (no rows read at all). */
	v = view_lookup(m->dir, uidvalidity, uidnext, modseq, gen);
	if (v) {
		exec(m, "COMMIT");
		*v_r = v;
		return 0;
	}
	if (sqlite3_prepare_v2(m->db, "SELECT uid, flags, size, vsize, internaldate, modseq, keywords, file "
			       "FROM messages WHERE mailbox_id = ? ORDER BY uid", -1, &st, NULL) != SQLITE_OK) {
		r = db_err(m, "prepare");
		exec(m, "ROLLBACK");
		return r;
	}
	sqlite3_bind_int64(st, 1, m->id);
	v = view_new(m->dir, uidvalidity, uidnext, modseq, gen, 0);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		struct mbox_msg x = {
			.uid = (uint32_t)sqlite3_column_int64(st, 0),
			.flags = (uint32_t)sqlite3_column_int64(st, 1),
			.size = (uint64_t)sqlite3_column_int64(st, 2),
			.vsize = (uint64_t)sqlite3_column_int64(st, 3),
			.internaldate = sqlite3_column_int64(st, 4),
			.modseq = (uint64_t)sqlite3_column_int64(st, 5),
		};
		view_add(v, &x, (const char *)sqlite3_column_text(st, 6), (const char *)sqlite3_column_text(st, 7));
	}
	sqlite3_finalize(st);
	exec(m, "COMMIT");
	if (r != SQLITE_DONE) {
		view_unref(v);
		return db_err(m, "select view");
	}
	view_seal(v);
	view_insert(v);
	*v_r = v;
	return 0;
}

/* Makes v (a reference the caller gives) the session's message list. */
static void adopt_view(struct mbox *m, struct view *v)
{
	free_view(m);
	m->view = v;
	m->msgs = v->msgs;
	m->n = v->n;
	/* What the session reports goes with the list it holds. */
	m->uidnext = v->uidnext;
	m->highestmodseq = v->highestmodseq;
}

/* Sets the session's message list to the current view of the folder. */
static int load_view(struct mbox *m)
{
	struct view *v;
	int r = view_read(m, &v);

	if (r < 0)
		return r;
	adopt_view(m, v);
	return 0;
}

static int index_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Opens (creating) the per-user index of maildir. */
static int index_connect(const char *maildir, sqlite3 **db_r)
{
	char *path = xasprintf("%s/%s", maildir, INDEX_FILE);
	sqlite3 *db = NULL;
	char *msg = NULL;
	int r;

	r = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	free(path);
	if (r != SQLITE_OK) {
		log_error("store", NULL, "cannot open index maildir=%s error=%s", maildir,
			  db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -EIO;
	}
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	/* The last connection of an index to close would checkpoint the WAL
	 * into the database (with an fsync) and delete it: with thousands of
	 * users and a pool of 32 connections, that is every IDLE wake-up of
	 * every user. The WAL stays instead; SQLite's automatic checkpoint (at
	 * 1,000 pages) folds it in, and the next open replays it. */
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	/* The schema is set up once per index file (user_version says which);
	 * every SELECT opens the index, so the check must be cheap. */
	if (index_version(db) != INDEX_VERSION) {
		if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, index_schema, NULL, NULL, &msg) != SQLITE_OK)
			goto fail;
		/* Indexes written before the sync columns existed: add them (the
		 * error for a column that exists already is expected). */
		sqlite3_exec(db, "ALTER TABLE mailboxes ADD COLUMN sync_new_ns INTEGER NOT NULL DEFAULT 0", NULL, NULL,
			     NULL);
		sqlite3_exec(db, "ALTER TABLE mailboxes ADD COLUMN sync_cur_ns INTEGER NOT NULL DEFAULT 0", NULL, NULL,
			     NULL);
		sqlite3_exec(db, "ALTER TABLE mailboxes ADD COLUMN gen INTEGER NOT NULL DEFAULT 0", NULL, NULL, NULL);
		if (sqlite3_exec(db, "PRAGMA user_version = " INDEX_VERSION_TEXT, NULL, NULL, &msg) != SQLITE_OK)
			goto fail;
	}
	*db_r = db;
	return 0;
fail:
	log_error("store", NULL, "cannot set up index maildir=%s error=%s", maildir, msg ? msg : "?");
	sqlite3_free(msg);
	sqlite3_close(db);
	return -EIO;
}

/*
 * Idle index connections, kept for the next open of the same index: a
 * SELECT, a session's wake from IDLE or an APPEND then needs no
 * sqlite3_open() and no schema read. Bounded; the least recently returned
 * go first.
 */
#define INDEX_POOL_MAX 32

struct pooled {
	char *maildir;
	sqlite3 *db;
	dev_t dev;              /* the index file it has open */
	ino_t ino;
	struct pooled *next;
};

/* The index file's identity: a pooled connection to a file that was
 * deleted or replaced (an index rebuilt by hand) must not serve. */
static int index_ident(const char *maildir, dev_t *dev_r, ino_t *ino_r)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", maildir, INDEX_FILE);
	if (stat(path, &st) < 0)
		return -errno;
	*dev_r = st.st_dev;
	*ino_r = st.st_ino;
	return 0;
}

static struct {
	pthread_mutex_t lock;
	struct pooled *head;
	size_t n;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int index_open(const char *maildir, sqlite3 **db_r)
{
	struct pooled **pp, *p = NULL;

	pthread_mutex_lock(&pool.lock);
	for (pp = &pool.head; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->maildir, maildir) == 0) {
			p = *pp;
			*pp = p->next;
			pool.n--;
			break;
		}
	}
	pthread_mutex_unlock(&pool.lock);
	if (p) {
		dev_t dev;
		ino_t ino;
		sqlite3 *db = p->db;
		int same = index_ident(maildir, &dev, &ino) == 0 && dev == p->dev && ino == p->ino;
		free(p->maildir);
		free(p);
		if (same) {
			*db_r = db;
			return 0;
		}
		sqlite3_close(db);
	}
	return index_connect(maildir, db_r);
}

/* Gives a connection back (no statement open, no transaction). */
static void index_release(const char *maildir, sqlite3 *db)
{
	struct pooled *p, *drop = NULL;

	if (!db)
		return;
	if (!sqlite3_get_autocommit(db) || sqlite3_next_stmt(db, NULL)) {
		sqlite3_close_v2(db);   /* not in a state to share: a bug upstream, but no harm */
		return;
	}
	p = xmalloc(sizeof(*p));
	if (index_ident(maildir, &p->dev, &p->ino) < 0) {
		free(p);
		sqlite3_close(db);
		return;
	}
	p->maildir = xstrdup(maildir);
	p->db = db;
	pthread_mutex_lock(&pool.lock);
	p->next = pool.head;
	pool.head = p;
	if (++pool.n > INDEX_POOL_MAX) {
		struct pooled **pp = &pool.head;
		while ((*pp)->next)
			pp = &(*pp)->next;
		drop = *pp;
		*pp = NULL;
		pool.n--;
	}
	pthread_mutex_unlock(&pool.lock);
	if (drop) {
		sqlite3_close(drop->db);
		free(drop->maildir);
		free(drop);
	}
}

static int folder_path(const char *maildir, const char *name, char **dir_r)
{
	if (strcmp(name, "INBOX") == 0) {
		*dir_r = xstrdup(maildir);
		return 0;
	}
	if (!*name || name[0] == '.' || strstr(name, "..") || strchr(name, '/'))
		return -EINVAL;
	*dir_r = xasprintf("%s/.%s", maildir, name);
	return 0;
}

int mbox_open(const char *maildir, const char *name, unsigned flags, struct mbox **mbox_r,
	      char *err, size_t errlen)
{
	struct mbox *m = xcalloc(1, sizeof(*m));
	struct stat st;
	int r;

	m->maildir = xstrdup(maildir);
	m->name = xstrdup(name);
	m->flags = flags;
	if (folder_path(maildir, name, &m->dir) < 0) {
		snprintf(err, errlen, "invalid mailbox name");
		r = -EINVAL;
		goto fail;
	}
	if (stat(m->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "no such mailbox");
		r = -ENOENT;
		goto fail;
	}
	r = index_open(maildir, &m->db);
	if (r < 0) {
		snprintf(err, errlen, "cannot open the mailbox index");
		goto fail;
	}
	r = sync_index(m);
	if (r == 0)
		r = load_view(m);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the mailbox");
		goto fail;
	}
	*mbox_r = m;
	return 0;
fail:
	mbox_close(&m);
	return r;
}

void mbox_close(struct mbox **mp)
{
	struct mbox *m = *mp;

	if (!m)
		return;
	free_view(m);
	free(m->recent);
	free(m->own_keywords);
	free(m->ch.expunged);
	free(m->ch.changed);
	index_release(m->maildir, m->db);
	free(m->maildir);
	free(m->name);
	free(m->dir);
	free(m);
	*mp = NULL;
}

uint32_t mbox_uidvalidity(const struct mbox *m) { return m->uidvalidity; }
uint32_t mbox_uidnext(const struct mbox *m) { return m->uidnext; }
uint32_t mbox_first_recent_uid(const struct mbox *m) { return m->recent_from; }
uint64_t mbox_highestmodseq(const struct mbox *m) { return m->highestmodseq; }
size_t mbox_count(const struct mbox *m) { return m->n; }

const struct mbox_msg *mbox_get(const struct mbox *m, size_t i)
{
	return i < m->n ? &m->msgs[i] : NULL;
}

ssize_t mbox_find(const struct mbox *m, uint32_t uid)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->msgs[mid].uid == uid)
			return (ssize_t)mid;
		if (m->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int mbox_path(const struct mbox *m, size_t i, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/%s", m->dir, m->msgs[i].file);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Finds the current file of message i by its base name, after a rename. */
static int relocate(struct mbox *m, size_t i)
{
	const char *file = m->msgs[i].file;
	const char *slash = strchr(file, '/');
	const char *colon;
	size_t blen;
	static const char *const subs[] = { "cur", "new" };

	if (!slash)
		return -ENOENT;
	colon = strchr(slash + 1, ':');
	blen = colon ? (size_t)(colon - slash - 1) : strlen(slash + 1);
	for (size_t s = 0; s < 2; s++) {
		char path[PATH_MAX];
		DIR *d;
		struct dirent *e;

		snprintf(path, sizeof(path), "%s/%s", m->dir, subs[s]);
		d = opendir(path);
		if (!d)
			continue;
		while ((e = readdir(d))) {
			if (strncmp(e->d_name, slash + 1, blen) == 0 &&
			    (e->d_name[blen] == '\0' || e->d_name[blen] == ':')) {
				own_view(m);
				set_string(m, &m->msgs[i].file, xasprintf("%s/%s", subs[s], e->d_name));
				closedir(d);
				return 0;
			}
		}
		closedir(d);
	}
	return -ENOENT;
}

int mbox_open_msg(struct mbox *m, size_t i)
{
	char path[PATH_MAX];
	int fd;

	if (i >= m->n)
		return -EINVAL;
	if (mbox_path(m, i, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT)
		return fd >= 0 ? fd : -errno;
	if (relocate(m, i) < 0)
		return -ENOENT;
	if (mbox_path(m, i, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* After a write to message rows: the new highestmodseq, and gen moves. */
static int bump_mailbox(struct mbox *m)
{
	sqlite3_stmt *st;
	int r;

	if (sqlite3_prepare_v2(m->db, "UPDATE mailboxes SET highestmodseq = ?, gen = gen + 1 WHERE id = ?", -1, &st,
			       NULL) !=
	    SQLITE_OK)
		return db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)m->highestmodseq);
	sqlite3_bind_int64(st, 2, m->id);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : db_err(m, "update mailbox");
}

/* Re-reads highestmodseq inside a transaction: another session may have moved it. */
static int reload_stamp(struct mbox *m, bool *view_current_r)
{
	sqlite3_stmt *st;
	int r;

	if (sqlite3_prepare_v2(m->db, "SELECT highestmodseq, uidvalidity, uidnext, gen FROM mailboxes WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, m->id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		m->highestmodseq = (uint64_t)sqlite3_column_int64(st, 0);
		/* Is the session's list exactly what the index holds? */
		if (view_current_r)
			*view_current_r = !m->own && m->view &&
					  m->view->highestmodseq == m->highestmodseq &&
					  m->view->uidvalidity == (uint32_t)sqlite3_column_int64(st, 1) &&
					  m->view->uidnext == (uint32_t)sqlite3_column_int64(st, 2) &&
					  m->view->gen == sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	return r == SQLITE_ROW ? 0 : db_err(m, "select mailbox");
}

static int reload_modseq(struct mbox *m)
{
	return reload_stamp(m, NULL);
}

/*
 * After this session's own write to an index whose rows were exactly its
 * list (and the commit of nothing else, the write lock held throughout):
 * its private list is the folder's list under the new stamp. It becomes a
 * shared view, so that the other sessions (and this one's next refresh) do
 * not read the rows again.
 */
static void publish_own(struct mbox *m, uint32_t uidvalidity, uint32_t uidnext, uint64_t modseq, int64_t gen)
{
	struct view *v;

	if (!m->own)
		return;
	v = view_new(m->dir, uidvalidity, uidnext, modseq, gen, m->n);
	for (size_t i = 0; i < m->n; i++)
		view_add(v, &m->msgs[i], m->msgs[i].keywords, m->msgs[i].file);
	view_seal(v);
	view_insert(v);
	adopt_view(m, v);
}

int mbox_expunge(struct mbox *m, const uint32_t *uids, size_t n, size_t *done_r)
{
	sqlite3_stmt *del = NULL, *exp = NULL;
	char path[PATH_MAX];
	size_t done = 0;
	int r = 0, removed_new = 0, removed_cur = 0;

	*done_r = 0;
	if (n == 0)
		return 0;
	if ((r = wake(m)) < 0 || (r = exec(m, "BEGIN IMMEDIATE")) < 0)
		return r;
	if ((r = reload_modseq(m)) < 0)
		goto fail;
	if (sqlite3_prepare_v2(m->db, "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", -1, &del, NULL) !=
		    SQLITE_OK ||
	    sqlite3_prepare_v2(m->db, "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
			       -1, &exp, NULL) != SQLITE_OK) {
		r = db_err(m, "prepare");
		goto fail;
	}
	for (size_t k = 0; k < n; k++) {
		ssize_t i = mbox_find(m, uids[k]);
		if (i >= 0) {
			if ((r = mbox_path(m, (size_t)i, path, sizeof(path))) < 0)
				break;
			if (unlink(path) < 0 && errno == ENOENT && relocate(m, (size_t)i) == 0 &&
			    mbox_path(m, (size_t)i, path, sizeof(path)) == 0)
				unlink(path);
			if (access(path, F_OK) == 0) {
				r = -EIO;
				log_error("store", NULL, "expunge failed maildir=%s uid=%u error=%s", m->maildir,
					  uids[k], strerror(errno));
				break;
			}
			if (strncmp(m->msgs[i].file, "new/", 4) == 0)
				removed_new = 1;
			else
				removed_cur = 1;
		}
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, m->id);
		sqlite3_bind_int64(del, 2, uids[k]);
		sqlite3_reset(exp);
		sqlite3_bind_int64(exp, 1, m->id);
		sqlite3_bind_int64(exp, 2, uids[k]);
		sqlite3_bind_int64(exp, 3, (sqlite3_int64)++m->highestmodseq);
		if (sqlite3_step(del) != SQLITE_DONE || sqlite3_step(exp) != SQLITE_DONE) {
			r = db_err(m, "expunge");
			break;
		}
		done++;
	}
	if (done && bump_mailbox(m) < 0 && r == 0)
		r = -EIO;
	sqlite3_finalize(del);
	sqlite3_finalize(exp);
	del = exp = NULL;
	/* What was unlinked is gone whatever the index says: commit it. */
	if (exec(m, "COMMIT") < 0 && r == 0)
		r = -EIO;
	if (removed_new) {
		snprintf(path, sizeof(path), "%s/new", m->dir);
		fsync_dir(path);
	}
	if (removed_cur) {
		snprintf(path, sizeof(path), "%s/cur", m->dir);
		fsync_dir(path);
	}
	*done_r = done;
	return r;
fail:
	sqlite3_finalize(del);
	sqlite3_finalize(exp);
	exec(m, "ROLLBACK");
	return r;
}

/* Renames message i's file to carry flags; its new name relative to the
 * folder into *file_r (malloc'd). -ENOENT when it is gone. */
static int rename_for_flags(struct mbox *m, size_t i, uint32_t flags, char **file_r)
{
	const char *cur = m->msgs[i].file;
	const char *slash = strchr(cur, '/');
	const char *b = slash ? slash + 1 : cur;
	const char *colon = strchr(b, ':');
	char from[PATH_MAX], to[PATH_MAX], info[8], *file;

	mbox_flags_to_info(flags, info);
	file = xasprintf("cur/%.*s:2,%s", (int)(colon ? (size_t)(colon - b) : strlen(b)), b, info);
	if (strcmp(file, cur) != 0) {
		snprintf(to, sizeof(to), "%s/%s", m->dir, file);
		mbox_path(m, i, from, sizeof(from));
		if (rename(from, to) < 0) {
			int e = errno;
			if (e != ENOENT || relocate(m, i) < 0) {
				free(file);
				return e == ENOENT ? -ENOENT : -e;
			}
			mbox_path(m, i, from, sizeof(from));
			if (rename(from, to) < 0) {
				e = errno;
				free(file);
				return -e;
			}
		}
	}
	*file_r = file;
	return 0;
}

int mbox_set_flags_many(struct mbox *m, struct mbox_flag_change *c, size_t n)
{
	sqlite3_stmt *st = NULL;
	char **files;
	size_t done = 0;
	bool current = false;
	int r;

	for (size_t k = 0; k < n; k++)
		c[k].result = -ECANCELED;
	if (n == 0)
		return 0;
	for (size_t k = 0; k < n; k++)
		if (c[k].i >= m->n)
			return -EINVAL;
	if ((r = wake(m)) < 0 || (r = exec(m, "BEGIN IMMEDIATE")) < 0)
		return r;
	files = xcalloc(n, sizeof(*files));
	if ((r = reload_stamp(m, &current)) < 0)
		goto fail;
	if (sqlite3_prepare_v2(m->db, "UPDATE messages SET file = ?, flags = ?, keywords = ?, modseq = ? "
			       "WHERE mailbox_id = ? AND uid = ?", -1, &st, NULL) != SQLITE_OK) {
		r = db_err(m, "prepare");
		goto fail;
	}
	/* The files first (each rename is the change for other Maildir
	 * readers), the rows with them; one commit for all. A crash in
	 * between leaves names the next sync takes the flags from. */
	for (size_t k = 0; k < n; k++) {
		const struct mbox_msg *x;
		uint32_t flags = c[k].flags & ~(uint32_t)MBOX_RECENT;

		r = rename_for_flags(m, c[k].i, flags, &files[k]);
		if (r == -ENOENT) {
			c[k].result = r;   /* expunged meanwhile: the others go on */
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		x = &m->msgs[c[k].i];   /* after relocate(), which may have copied the list */
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, files[k], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, flags);
		sqlite3_bind_text(st, 3, c[k].keywords ? c[k].keywords : x->keywords, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)++m->highestmodseq);
		sqlite3_bind_int64(st, 5, m->id);
		sqlite3_bind_int64(st, 6, x->uid);
		if (sqlite3_step(st) != SQLITE_DONE) {
			r = db_err(m, "update flags");
			break;
		}
		c[k].result = 0;
		c[k].modseq = m->highestmodseq;
		done++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (done && bump_mailbox(m) < 0 && r == 0)
		r = -EIO;
	/* What was renamed is renamed whatever else failed: commit it. */
	if (exec(m, "COMMIT") < 0) {
		r = -EIO;
		goto fail;
	}
	if (done) {
		own_view(m);
		for (size_t k = 0; k < n; k++) {
			struct mbox_msg *x = &m->msgs[c[k].i];
			if (c[k].result != 0)
				continue;
			set_string(m, &x->file, files[k]);
			files[k] = NULL;
			if (c[k].keywords)
				set_string(m, &x->keywords, xstrdup(c[k].keywords));
			x->flags = c[k].flags & ~(uint32_t)MBOX_RECENT;
			x->modseq = c[k].modseq;
		}
		/* bump_mailbox() moved gen by one; nothing else was committed. */
		if (current && r == 0)
			publish_own(m, m->view->uidvalidity, m->view->uidnext, m->highestmodseq, m->view->gen + 1);
	}
	for (size_t k = 0; k < n; k++)
		free(files[k]);
	free(files);
	return r;
fail:
	sqlite3_finalize(st);
	exec(m, "ROLLBACK");
	for (size_t k = 0; k < n; k++) {
		c[k].result = r;
		free(files[k]);
	}
	free(files);
	return r;
}

int mbox_set_flags(struct mbox *m, size_t i, uint32_t flags, const char *keywords)
{
	struct mbox_flag_change c = { .i = i, .flags = flags, .keywords = keywords };
	int r = mbox_set_flags_many(m, &c, 1);

	return r < 0 ? r : c.result;
}

int mbox_refresh(struct mbox *m, struct mbox_changes *ch)
{
	const struct mbox_msg *old;
	struct view *v;
	size_t n, i = 0, j = 0;
	int r;

	r = wake(m);
	if (r == 0)
		r = sync_index(m);
	if (r < 0)
		return r;
	free(m->ch.expunged);
	free(m->ch.changed);
	memset(&m->ch, 0, sizeof(m->ch));
	if (ch)
		*ch = m->ch;
	/* Nothing moved on disk and no session changed the index: the view
	 * stands (a NOOP on a large mailbox costs two small queries). */
	if (!m->scanned && !m->wrote && m->view && m->highestmodseq == m->view->highestmodseq &&
	    m->uidnext == m->view->uidnext)
		return 0;
	r = view_read(m, &v);
	if (r < 0)
		return r;
	if (v == m->view && !m->own) {
		view_unref(v);
		return 0;
	}
	old = m->msgs;
	n = v->n;
	m->ch.expunged = xcalloc(m->n + 1, sizeof(uint32_t));
	m->ch.changed = xcalloc(m->n + 1, sizeof(uint32_t));
	/* Both lists are in UID order: walk them together. */
	while (i < m->n) {
		if (j < n && v->msgs[j].uid == old[i].uid) {
			if (v->msgs[j].modseq != old[i].modseq &&
			    (v->msgs[j].flags != old[i].flags || strcmp(v->msgs[j].keywords, old[i].keywords) != 0))
				m->ch.changed[m->ch.n_changed++] = v->msgs[j].uid;
			i++;
			j++;
		} else if (j < n && v->msgs[j].uid < old[i].uid) {
			j++; /* cannot happen: UIDs only grow */
		} else {
			m->ch.expunged[m->ch.n_expunged++] = old[i].uid;
			i++;
		}
	}
	m->ch.n_new = n - j;
	adopt_view(m, v);
	if (ch)
		*ch = m->ch;
	return 0;
}

/* Runs one statement with the text arguments a and b (b may be NULL). */
static int index_exec2(const char *maildir, const char *sql, const char *a, const char *b)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int r = index_open(maildir, &db);

	if (r < 0)
		return r;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		index_release(maildir, db);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (b)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	index_release(maildir, db);
	return r;
}

int mbox_index_forget(const char *maildir, const char *name)
{
	int r = index_exec2(maildir, "DELETE FROM messages WHERE mailbox_id IN "
			    "(SELECT id FROM mailboxes WHERE name = ?1)", name, NULL);

	if (r == 0)
		r = index_exec2(maildir, "DELETE FROM expunged WHERE mailbox_id IN "
				"(SELECT id FROM mailboxes WHERE name = ?1)", name, NULL);
	if (r == 0)
		r = index_exec2(maildir, "DELETE FROM mailboxes WHERE name = ?1", name, NULL);
	return r;
}

int mbox_index_rename(const char *maildir, const char *from, const char *to)
{
	/* The folder and its children keep their UIDVALIDITY and UIDs. */
	return index_exec2(maildir, "UPDATE mailboxes SET name = ?2 || substr(name, length(?1) + 1) "
			   "WHERE name = ?1 OR substr(name, 1, length(?1) + 1) = ?1 || '.'", from, to);
}

static _Atomic unsigned long name_counter;

/* A new unique Maildir base name for a file of size octets (vsize with CRLF). */
static void unique_name(const char *host, uint64_t size, uint64_t vsize, char *out, size_t outlen)
{
	struct timeval tv;
	char h[64];
	size_t n = 0;

	for (const char *p = host && *host ? host : "buzon"; *p && n + 1 < sizeof(h); p++)
		h[n++] = (*p == '/' || *p == ':' || *p == ',') ? '_' : *p;
	h[n] = '\0';
	gettimeofday(&tv, NULL);
	snprintf(out, outlen, "%lld.M%06ldP%ldQ%lu.%s,S=%llu,W=%llu", (long long)tv.tv_sec, (long)tv.tv_usec,
		 (long)getpid(), atomic_fetch_add(&name_counter, 1) + 1, h, (unsigned long long)size,
		 (unsigned long long)vsize);
}

/* Finds the UIDs a sync gave to the files with the given base names. */
static int find_uids(struct mbox *m, char **bases, size_t n, uint32_t *uids_r)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(m->db, "SELECT uid FROM messages WHERE mailbox_id = ? AND base = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return db_err(m, "prepare");
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, m->id);
		sqlite3_bind_text(st, 2, bases[i], -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_finalize(st);
			return -ENOENT;
		}
		uids_r[i] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return 0;
}

static int set_keywords(struct mbox *m, uint32_t uid, const char *keywords)
{
	sqlite3_stmt *st;
	int r;

	if (!keywords || !*keywords)
		return 0;
	if (sqlite3_prepare_v2(m->db, "UPDATE messages SET keywords = ? WHERE mailbox_id = ? AND uid = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return db_err(m, "prepare");
	sqlite3_bind_text(st, 1, keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, m->id);
	sqlite3_bind_int64(st, 3, uid);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return db_err(m, "update keywords");
	/* The row changed: views loaded before must not serve. */
	if (sqlite3_prepare_v2(m->db, "UPDATE mailboxes SET gen = gen + 1 WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, m->id);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : db_err(m, "update mailbox");
}

/* Indexes one file just put into a folder: the next UID and modseq, in one
 * write transaction. A sync that ran in between may have indexed it
 * already: then its UID is the answer. */
static int append_row(const char *maildir, const char *name, const char *base, const char *file, uint32_t flags,
		      const char *keywords, uint64_t size, uint64_t vsize, int64_t mtime, uint32_t *uidvalidity_r,
		      uint32_t *uid_r)
{
	struct mbox *m = xcalloc(1, sizeof(*m));
	sqlite3_stmt *st = NULL;
	char *bases[1] = { (char *)base };
	int r;

	m->maildir = xstrdup(maildir);
	m->name = xstrdup(name);
	if (folder_path(maildir, name, &m->dir) < 0) {
		mbox_close(&m);
		return -EINVAL;
	}
	if ((r = index_open(maildir, &m->db)) < 0 || (r = exec(m, "BEGIN IMMEDIATE")) < 0) {
		mbox_close(&m);
		return r < 0 ? r : -EIO;
	}
	if ((r = load_mailbox_row(m)) < 0)
		goto fail;
	if (sqlite3_prepare_v2(m->db, "INSERT OR IGNORE INTO messages (mailbox_id, uid, base, file, flags, keywords, "
			       "size, vsize, internaldate, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st,
			       NULL) != SQLITE_OK) {
		r = db_err(m, "prepare");
		goto fail;
	}
	sqlite3_bind_int64(st, 1, m->id);
	sqlite3_bind_int64(st, 2, m->uidnext);
	sqlite3_bind_text(st, 3, base, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, file, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, flags);
	sqlite3_bind_text(st, 6, keywords ? keywords : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)vsize);
	sqlite3_bind_int64(st, 9, mtime);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)(m->highestmodseq + 1));
	if (sqlite3_step(st) != SQLITE_DONE) {
		r = db_err(m, "insert message");
		goto fail;
	}
	if (sqlite3_changes(m->db) == 1) {
		*uid_r = m->uidnext++;
		m->highestmodseq++;
		sqlite3_finalize(st);
		if (sqlite3_prepare_v2(m->db, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, gen = gen + 1 "
				       "WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
			st = NULL;
			r = db_err(m, "prepare");
			goto fail;
		}
		sqlite3_bind_int64(st, 1, m->uidnext);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)m->highestmodseq);
		sqlite3_bind_int64(st, 3, m->id);
		if (sqlite3_step(st) != SQLITE_DONE) {
			r = db_err(m, "update mailbox");
			goto fail;
		}
	} else {
		/* A sync got there first; keep its UID, give the keywords. */
		if ((r = find_uids(m, bases, 1, uid_r)) < 0 || (r = set_keywords(m, *uid_r, keywords)) < 0)
			goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((r = exec(m, "COMMIT")) < 0)
		goto fail;
	*uidvalidity_r = m->uidvalidity;
	mbox_close(&m);
	return 0;
fail:
	sqlite3_finalize(st);
	exec(m, "ROLLBACK");
	mbox_close(&m);
	return r;
}

int mbox_append(const char *maildir, const char *name, const char *data, size_t len, uint32_t flags,
		const char *keywords, int64_t internaldate, const char *host, uint32_t *uidvalidity_r,
		uint32_t *uid_r)
{
	char dir[PATH_MAX], base[300], tmp[PATH_MAX + 320], final[PATH_MAX + 340], info[8];
	struct timespec times[2];
	uint64_t vsize = len;
	char *bases[1];
	int fd, r;

	if (folder_path(maildir, name, &bases[0]) < 0)
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%s", bases[0]);
	free(bases[0]);
	if (access(dir, F_OK) < 0)
		return -ENOENT;
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			vsize++;
	unique_name(host, len, vsize, base, sizeof(base));
	mbox_flags_to_info(flags & ~(uint32_t)MBOX_RECENT, info);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, base);
	snprintf(final, sizeof(final), "%s/cur/%s:2,%s", dir, base, info);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errno == EDQUOT ? -ENOSPC : -errno;
	r = 0;
	for (size_t off = 0; off < len && r == 0;) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			r = (errno == ENOSPC || errno == EDQUOT) ? -ENOSPC : -EIO;
		else
			off += (size_t)w;
	}
	if (r == 0 && internaldate > 0) {
		times[0].tv_sec = times[1].tv_sec = internaldate;
		times[0].tv_nsec = times[1].tv_nsec = 0;
		futimens(fd, times);
	}
	if (r == 0 && fsync(fd) < 0)
		r = -EIO;
	if (close(fd) < 0 && r == 0)
		r = -EIO;
	if (r == 0 && rename(tmp, final) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	snprintf(tmp, sizeof(tmp), "%s/cur", dir);
	/* OK to APPEND means the directory entry is on disk too. */
	r = fsync_dir(tmp);
	if (r < 0) {
		unlink(final);
		return r;
	}
	/* The next UID, given here rather than by a sync: no scan of the
	 * folder, so an APPEND costs the same in a folder of 10 or 100,000
	 * messages. The folder's recorded mtimes stay as they were (cur/ just
	 * moved): the next sync rescans and finds this file indexed. */
	{
		struct stat st;
		int64_t mtime = internaldate > 0 ? internaldate : (int64_t)time(NULL);
		if (stat(final, &st) == 0)
			mtime = st.st_mtime;
		r = append_row(maildir, name, base, final + strlen(dir) + 1, flags & ~(uint32_t)MBOX_RECENT,
			       keywords, len, vsize, mtime, uidvalidity_r, uid_r);
	}
	if (r < 0) {
		/* NO must mean not stored: a client would append it again. */
		log_error("store", NULL, "append not indexed, file removed maildir=%s folder=%s error=%s", maildir,
			  name, strerror(-r));
		unlink(final);
	}
	return r;
}

int mbox_copy(struct mbox *src, const uint32_t *uids, size_t n, const char *dst_name, const char *host,
	      uint32_t *uidvalidity_r, uint32_t *dst_uids_r)
{
	char dir[PATH_MAX], err[128], *p;
	char **bases = xcalloc(n ? n : 1, sizeof(char *));
	size_t made = 0;
	struct mbox *dst = NULL;
	int r = 0;

	if (folder_path(src->maildir, dst_name, &p) < 0) {
		free(bases);
		return -EINVAL;
	}
	snprintf(dir, sizeof(dir), "%s", p);
	free(p);
	if (access(dir, F_OK) < 0) {
		free(bases);
		return -ENOENT;
	}
	for (size_t k = 0; k < n && r == 0; k++) {
		ssize_t i = mbox_find(src, uids[k]);
		char from[PATH_MAX], to[PATH_MAX + 340], base[300], info[8];
		const struct mbox_msg *x;

		if (i < 0) {
			r = -ENOENT;
			break;
		}
		x = &src->msgs[i];
		unique_name(host, x->size, x->vsize, base, sizeof(base));
		mbox_flags_to_info(x->flags & ~(uint32_t)MBOX_RECENT, info);
		snprintf(to, sizeof(to), "%s/cur/%s:2,%s", dir, base, info);
		if (mbox_path(src, (size_t)i, from, sizeof(from)) < 0) {
			r = -ENAMETOOLONG;
			break;
		}
		if (link(from, to) < 0) {
			if (errno != ENOENT || relocate(src, (size_t)i) < 0 ||
			    mbox_path(src, (size_t)i, from, sizeof(from)) < 0 || link(from, to) < 0) {
				r = errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -errno;
				break;
			}
		}
		bases[made++] = xstrdup(base);
	}
	{
		char cur[PATH_MAX + 8];
		snprintf(cur, sizeof(cur), "%s/cur", dir);
		fsync_dir(cur);
	}
	if (r == 0) {
		r = mbox_open(src->maildir, dst_name, 0, &dst, err, sizeof(err));
		if (r == 0) {
			r = find_uids(dst, bases, made, dst_uids_r);
			/* The keywords of all copies in one transaction (gen moves with them). */
			if (r == 0 && (r = exec(dst, "BEGIN IMMEDIATE")) == 0) {
				for (size_t k = 0; r == 0 && k < made; k++) {
					ssize_t i = mbox_find(src, uids[k]);
					r = set_keywords(dst, dst_uids_r[k], src->msgs[i].keywords);
				}
				if (r == 0)
					r = exec(dst, "COMMIT");
				if (r < 0)
					exec(dst, "ROLLBACK");
			}
			*uidvalidity_r = dst->uidvalidity;
			mbox_close(&dst);
		}
	}
	if (r < 0) {
		/* All or nothing: take back the links already made. */
		for (size_t k = 0; k < made; k++) {
			char path[PATH_MAX + 340];
			DIR *d;
			struct dirent *e;
			snprintf(path, sizeof(path), "%s/cur", dir);
			d = opendir(path);
			if (!d)
				break;
			while ((e = readdir(d))) {
				if (strncmp(e->d_name, bases[k], strlen(bases[k])) == 0) {
					snprintf(path, sizeof(path), "%s/cur/%s", dir, e->d_name);
					unlink(path);
					break;
				}
			}
			closedir(d);
		}
	}
	for (size_t k = 0; k < made; k++)
		free(bases[k]);
	free(bases);
	return r;
}

int mbox_vanished_since(struct mbox *m, uint64_t modseq, uint32_t **uids_r, size_t *n_r)
{
	sqlite3_stmt *st;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int r;

	if (wake(m) < 0)
		return -EIO;
	if (sqlite3_prepare_v2(m->db, "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, m->id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			uids = xrealloc(uids, cap * sizeof(*uids));
		}
		uids[n++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (r != SQLITE_DONE) {
		free(uids);
		return db_err(m, "select expunged");
	}
	*uids_r = uids;
	*n_r = n;
	return 0;
}

/* ---- the FETCH cache (for imap/imap-cmd-fetch.c) ---- */

#include "lib/buf.h"

struct mbox_cache {
	struct mbox *m;
	sqlite3_stmt *get, *put;
	int in_tx;
	int failed;     /* a write failed: stop writing for this reader */
};

struct mbox_cache *mbox_cache_open(struct mbox *m)
{
	struct mbox_cache *c;

	if (wake(m) < 0)
		return NULL;
	c = xcalloc(1, sizeof(*c));

	c->m = m;
	if (sqlite3_prepare_v2(m->db, "SELECT envelope, bodystructure, body FROM cache "
			       "WHERE mailbox_id = ?1 AND uid = ?2 AND base = ?3", -1, &c->get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(m->db, "INSERT INTO cache (mailbox_id, uid, base, envelope, bodystructure, body) "
			       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (mailbox_id, uid) DO UPDATE SET "
			       "envelope = CASE WHEN base = excluded.base THEN coalesce(excluded.envelope, envelope) "
			       "ELSE excluded.envelope END, "
			       "bodystructure = CASE WHEN base = excluded.base THEN "
			       "coalesce(excluded.bodystructure, bodystructure) ELSE excluded.bodystructure END, "
			       "body = CASE WHEN base = excluded.base THEN coalesce(excluded.body, body) "
			       "ELSE excluded.body END, base = excluded.base", -1, &c->put, NULL) != SQLITE_OK) {
		db_err(m, "prepare cache");
		mbox_cache_close(&c);
		return NULL;
	}
	return c;
}

/* The base name (up to ':') of message i's file, after "new/" or "cur/". */
static const char *msg_base(const struct mbox_msg *x, int *len_r)
{
	const char *slash = strchr(x->file, '/');
	const char *b = slash ? slash + 1 : x->file;
	const char *colon = strchr(b, ':');

	*len_r = (int)(colon ? (size_t)(colon - b) : strlen(b));
	return b;
}

static void col_copy(sqlite3_stmt *st, int col, struct buf *out, unsigned bit, unsigned *found)
{
	const void *p;

	if (!out || sqlite3_column_type(st, col) == SQLITE_NULL)
		return;
	p = sqlite3_column_text(st, col);
	buf_reset(out);
	if (p && buf_add(out, p, (size_t)sqlite3_column_bytes(st, col)) == 0)
		*found |= bit;
}

unsigned mbox_cache_get(struct mbox_cache *c, size_t i, struct buf *envelope, struct buf *bodystructure,
			struct buf *body)
{
	const struct mbox_msg *x = mbox_get(c->m, i);
	const char *base;
	unsigned found = 0;
	int blen;

	if (!x)
		return 0;
	base = msg_base(x, &blen);
	sqlite3_reset(c->get);
	sqlite3_bind_int64(c->get, 1, c->m->id);
	sqlite3_bind_int64(c->get, 2, x->uid);
	sqlite3_bind_text(c->get, 3, base, blen, SQLITE_STATIC);
	if (sqlite3_step(c->get) == SQLITE_ROW) {
		col_copy(c->get, 0, envelope, MBOX_CACHE_ENVELOPE, &found);
		col_copy(c->get, 1, bodystructure, MBOX_CACHE_BODYSTRUCTURE, &found);
		col_copy(c->get, 2, body, MBOX_CACHE_BODY, &found);
	}
	sqlite3_reset(c->get);
	return found;
}

int mbox_cache_put(struct mbox_cache *c, size_t i, const char *envelope, const char *bodystructure,
		   const char *body)
{
	const struct mbox_msg *x = mbox_get(c->m, i);
	const char *base;
	int blen, r;

	if (!x)
		return -EINVAL;
	if (c->failed)
		return -EIO;
	if (!c->in_tx) {
		/* Many rows per transaction: one WAL commit per run, not per message. */
		if (exec(c->m, "BEGIN IMMEDIATE") < 0) {
			c->failed = 1;
			return -EIO;
		}
		c->in_tx = 1;
	}
	base = msg_base(x, &blen);
	sqlite3_reset(c->put);
	sqlite3_bind_int64(c->put, 1, c->m->id);
	sqlite3_bind_int64(c->put, 2, x->uid);
	sqlite3_bind_text(c->put, 3, base, blen, SQLITE_STATIC);
	if (envelope)
		sqlite3_bind_text(c->put, 4, envelope, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(c->put, 4);
	if (bodystructure)
		sqlite3_bind_text(c->put, 5, bodystructure, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(c->put, 5);
	if (body)
		sqlite3_bind_text(c->put, 6, body, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(c->put, 6);
	r = sqlite3_step(c->put);
	sqlite3_reset(c->put);
	sqlite3_clear_bindings(c->put);
	if (r != SQLITE_DONE) {
		c->failed = 1;
		return db_err(c->m, "cache put");
	}
	return 0;
}

int mbox_cache_flush(struct mbox_cache *c)
{
	int r = 0;

	if (!c || !c->in_tx)
		return 0;
	c->in_tx = 0;
	if (exec(c->m, "COMMIT") < 0) {
		exec(c->m, "ROLLBACK");
		c->failed = 1;
		r = -EIO;
	}
	return r;
}

void mbox_cache_close(struct mbox_cache **cp)
{
	struct mbox_cache *c = *cp;

	if (!c)
		return;
	mbox_cache_flush(c);
	sqlite3_finalize(c->get);
	sqlite3_finalize(c->put);
	free(c);
	*cp = NULL;
}

void mbox_sleep(struct mbox *m)
{
	if (m && m->db) {
		index_release(m->maildir, m->db);
		m->db = NULL;
	}
}

/* Reopens the index of a mailbox put to sleep by mbox_sleep(). */
static int wake(struct mbox *m)
{
	if (m->db)
		return 0;
	return index_open(m->maildir, &m->db);
}
