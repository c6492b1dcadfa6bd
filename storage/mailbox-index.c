/*
 * The per-user index file: its schema, opening a connection, the pool of
 * idle connections, and the small helpers every other mailbox file uses
 * to run SQL on an mbox's connection.
 */
#include "storage/mailbox-private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/failpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"

/* Bump both when index_schema changes: older index files are upgraded (or,
 * being a cache, could simply be deleted). */
#define INDEX_VERSION 4
#define INDEX_VERSION_TEXT "4"

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
	 * (see mailbox-view.c). */
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
	/* The FETCH cache (mailbox-cache.c): ENVELOPE,
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
	/* Messages a MOVE is bringing in (mailbox-save.c): their UIDs and
	 * keywords are on disk before their files are renamed into the
	 * folder, so a crash in between loses neither; the next sync takes a
	 * file listed here with its row, and drops rows whose file never came. */
	"CREATE TABLE IF NOT EXISTS incoming (\n"
	"  mailbox_id INTEGER NOT NULL,\n"
	"  base TEXT NOT NULL,\n"
	"  uid INTEGER NOT NULL,\n"
	"  keywords TEXT NOT NULL DEFAULT '',\n"
	"  internaldate INTEGER NOT NULL,\n"
	"  PRIMARY KEY (mailbox_id, base)) WITHOUT ROWID;\n"
	"CREATE TRIGGER IF NOT EXISTS cache_gc AFTER DELETE ON messages BEGIN\n"
	"  DELETE FROM cache WHERE mailbox_id = old.mailbox_id AND uid = old.uid;\n"
	"END;\n";

/* The errno an injected fault stands for (failpoints only; per thread,
 * read once by the error path that follows the failed call). */
static _Thread_local int injected;

static bool is_memory(sqlite3 *db)
{
	const char *f = sqlite3_db_filename(db, "main");

	return !f || !*f;
}

/* A failpoint on the index file (never on a session's in-memory stand-in,
 * which is what the fault falls back to). */
static int index_fault(sqlite3 *db, const char *point)
{
	int e = failpoint(point);

	if (e && !is_memory(db)) {
		injected = e;
		return 1;
	}
	return 0;
}

int mbox_step(sqlite3_stmt *st)
{
	if (index_fault(sqlite3_db_handle(st), "storage/mailbox-index/step"))
		return SQLITE_IOERR;
	return sqlite3_step(st);
}

int mbox_sql_errno(sqlite3 *db, int rc)
{
	int e;

	if (injected) {
		e = injected;
		injected = 0;
		return -e;
	}
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EUCLEAN;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		e = db ? sqlite3_system_errno(db) : 0;
		if (e == ENOSPC || e == EDQUOT)
			return -ENOSPC;
		return e > 0 ? -e : -EIO;
	default:
		return -EIO;
	}
}

int mbox_db_err(struct mbox *m, const char *what)
{
	int r = mbox_sql_errno(m->db, sqlite3_errcode(m->db));

	m->index_err = r;
	log_error("store", NULL, "index error op=%s maildir=%s%s error=\"%s\"", what, m->maildir,
		  m->mem ? " (in memory)" : "", r == -EIO ? sqlite3_errmsg(m->db) : strerror(-r));
	return r;
}

int mbox_exec(struct mbox *m, const char *sql)
{
	const char *point = strncmp(sql, "BEGIN", 5) == 0    ? "storage/mailbox-index/begin"
			    : strncmp(sql, "COMMIT", 6) == 0 ? "storage/mailbox-index/commit"
							     : NULL;
	char *msg = NULL;
	int rc, r;

	if (point && index_fault(m->db, point)) {
		r = mbox_sql_errno(m->db, SQLITE_IOERR);
		m->index_err = r;
		log_error("store", NULL, "index error op=%s maildir=%s error=\"%s\"", sql, m->maildir, strerror(-r));
		return r;
	}
	rc = sqlite3_exec(m->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		r = mbox_sql_errno(m->db, rc);
		m->index_err = r;
		/* A ROLLBACK after a failed COMMIT finds no transaction: not news. */
		if (strcmp(sql, "ROLLBACK") != 0 || sqlite3_get_autocommit(m->db) == 0)
			log_error("store", NULL, "index error op=%s maildir=%s%s error=\"%s\"", sql, m->maildir,
				  m->mem ? " (in memory)" : "", msg ? msg : "?");
		sqlite3_free(msg);
		return r;
	}
	return 0;
}

void mbox_durable(struct mbox *m, bool on)
{
	/*
	 * In WAL mode NORMAL syncs the WAL only at checkpoints, so a power
	 * loss can take back the last commits. For a commit that gives UIDs (a
	 * sync that indexes new files, an APPEND) that would be a uidnext
	 * already told to a client (APPENDUID, a SELECT's EXISTS): after the
	 * restart the same UID would go to another message under the same
	 * UIDVALIDITY. Such a transaction runs with FULL, which syncs the WAL
	 * at its commit - and with it every frame before, so no earlier
	 * commit can be lost either once it returns. Flag changes and
	 * expunges stay NORMAL: the file names and the files are their truth,
	 * and a sync after a crash takes them from there. SQLite refuses the
	 * change inside a transaction, hence before BEGIN and after COMMIT.
	 */
	if (m->db && !m->mem && sqlite3_get_autocommit(m->db))
		sqlite3_exec(m->db, on ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
}

static int index_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1, rc;

	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return mbox_sql_errno(db, rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? v : mbox_sql_errno(db, rc);
}

/* Pragmas and schema of a new connection (to the file or in memory). */
static int index_setup(sqlite3 *db, const char *maildir)
{
	char *msg = NULL;
	int v, rc;

	sqlite3_busy_timeout(db, 10000);
	/* NORMAL between the transactions that give UIDs, which are FULL
	 * (mbox_durable()). */
	rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		goto fail;
	/* The last connection of an index to close would checkpoint the WAL
	 * into the database (with an fsync) and delete it: with thousands of
	 * users and a pool of 32 connections, that is every IDLE wake-up of
	 * every user. The WAL stays instead; SQLite's automatic checkpoint (at
	 * 1,000 pages) folds it in, and the next open replays it. */
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	/* The schema is set up once per index file (user_version says which);
	 * every SELECT opens the index, so the check must be cheap. It is also
	 * the first read of the file: a file that is not an index (garbage)
	 * shows here as SQLITE_NOTADB. */
	v = index_version(db);
	if (v < 0) {
		rc = v == -EUCLEAN ? SQLITE_NOTADB : SQLITE_IOERR;
		goto fail;
	}
	if (v != INDEX_VERSION) {
		if ((rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg)) != SQLITE_OK ||
		    (rc = sqlite3_exec(db, index_schema, NULL, NULL, &msg)) != SQLITE_OK)
			goto fail;
		/* Indexes written before the sync columns existed: add them (the
		 * error for a column that exists already is expected). */
		sqlite3_exec(db, "ALTER TABLE mailboxes ADD COLUMN sync_new_ns INTEGER NOT NULL DEFAULT 0", NULL, NULL,
			     NULL);
		sqlite3_exec(db, "ALTER TABLE mailboxes ADD COLUMN sync_cur_ns INTEGER NOT NULL DEFAULT 0", NULL, NULL,
			     NULL);
		sqlite3_exec(db, "ALTER TABLE mailboxes ADD COLUMN gen INTEGER NOT NULL DEFAULT 0", NULL, NULL, NULL);
		if ((rc = sqlite3_exec(db, "PRAGMA user_version = " INDEX_VERSION_TEXT, NULL, NULL, &msg)) != SQLITE_OK)
			goto fail;
	}
	return 0;
fail:
	v = mbox_sql_errno(db, rc);
	log_error("store", NULL, "cannot set up index maildir=%s error=\"%s\"", maildir,
		  msg ? msg : v == -EIO ? sqlite3_errmsg(db) : strerror(-v));
	sqlite3_free(msg);
	return v;
}

/* The index file's identity: a pooled connection to a file that was
 * deleted, replaced or rewritten behind SQLite's back (an index rebuilt
 * or overwritten by hand) must not serve. */
static int ident_at(int dfd, const char *name, struct index_ident *id)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return S_ISLNK(st.st_mode) ? -ELOOP : -EINVAL;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	id->size = st.st_size;
	return 0;
}

static int index_ident(const char *maildir, struct index_ident *id)
{
	int dfd = storage_open_dir(maildir), r;

	if (dfd < 0)
		return dfd;
	r = ident_at(dfd, INDEX_FILE, id);
	close(dfd);
	return r;
}

static bool same_file(const struct index_ident *a, const struct index_ident *b)
{
	return a->dev == b->dev && a->ino == b->ino;
}

static bool unchanged(const struct index_ident *a, const struct index_ident *b)
{
	return same_file(a, b) && a->mtime_ns == b->mtime_ns && a->size == b->size;
}

/* Creating an index, and setting a broken one aside, happen one at a time
 * in the process: a thread must not move the -wal of an index another
 * thread is creating. */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const index_files[] = { INDEX_FILE, INDEX_FILE "-wal", INDEX_FILE "-shm" };

/* A stem "<why>-<time>" (with ".<n>" when that is taken) under which the
 * index files go aside together, none replacing an earlier one. */
static void aside_stem(int dfd, const char *why, char *out, size_t outlen)
{
	long long when = (long long)time(NULL);
	char name[160];
	struct stat st;

	for (int n = 0; n < 1000; n++) {
		if (n == 0)
			snprintf(out, outlen, "%s-%lld", why, when);
		else
			snprintf(out, outlen, "%s-%lld.%d", why, when, n);
		snprintf(name, sizeof(name), "%s.%s", INDEX_FILE, out);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
			return;
	}
}

/* Moves name aside as "buzon-index.db.<stem>[-wal|-shm]" in dfd. */
static void set_aside(int dfd, const char *maildir, const char *name, const char *stem)
{
	char to[200];
	const char *suffix = strcmp(name, INDEX_FILE) == 0 ? "" : name + strlen(INDEX_FILE);

	snprintf(to, sizeof(to), "%s.%s%s", INDEX_FILE, stem, suffix);
	if (renameat(dfd, name, dfd, to) == 0)
		log_warn("store", NULL, "index file set aside maildir=%s file=%s", maildir, to);
	else if (errno != ENOENT)
		log_error("store", NULL, "cannot set aside maildir=%s file=%s error=\"%s\"", maildir, name,
			  strerror(errno));
}

/*
 * Checks the files of the index before SQLite opens them by path (it
 * cannot open relative to a descriptor): the Maildir's directory chain has
 * no symbolic link (openat2), none of the three files is one, and each is
 * the owner's alone (0600; the -wal and -shm take their mode from the
 * database file, so the database is created here with that mode). A -wal
 * or -shm without its database is what is left of an index deleted while
 * connections were open: they go aside, or SQLite would replay that WAL
 * into the new, empty database. On success *id_r is the database file.
 */
static int index_prepare(const char *maildir, struct index_ident *id_r)
{
	int dfd, fd, r = 0;
	struct stat st;

	dfd = storage_open_dir(maildir);
	if (dfd < 0)
		return dfd;
	pthread_mutex_lock(&create_lock);
	for (size_t i = 0; i < ARRAY_SIZE(index_files); i++) {
		if (fstatat(dfd, index_files[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				r = -errno;
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			log_error("store", NULL, "index file is not a regular file maildir=%s file=%s", maildir,
				  index_files[i]);
			r = S_ISLNK(st.st_mode) ? -ELOOP : -EINVAL;
		} else if ((st.st_mode & 077) && fchmodat(dfd, index_files[i], 0600, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
		}
	}
	if (r == 0 && fstatat(dfd, INDEX_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		char stem[64];
		aside_stem(dfd, "orphan", stem, sizeof(stem));
		set_aside(dfd, maildir, INDEX_FILE "-wal", stem);
		set_aside(dfd, maildir, INDEX_FILE "-shm", stem);
		/* No connection of this process can have this new file open, so
		 * closing our descriptor drops no SQLite lock (POSIX locks go
		 * with any close of the file). */
		fd = FAILPOINT_ERRNO("storage/mailbox-index/create") ? -1 :
			openat(dfd, INDEX_FILE, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		else if (errno != EEXIST)
			r = -errno;
	}
	if (r == 0)
		r = ident_at(dfd, INDEX_FILE, id_r);
	pthread_mutex_unlock(&create_lock);
	close(dfd);
	return r;
}

void mbox_index_set_aside(const char *maildir, const struct index_ident *id)
{
	struct index_ident now;
	char stem[64];
	int dfd = storage_open_dir(maildir);

	if (dfd < 0)
		return;
	pthread_mutex_lock(&create_lock);
	/* Only the file that connection had open: another thread may have set
	 * it aside and built a new one already. */
	if (ident_at(dfd, INDEX_FILE, &now) == 0 && same_file(&now, id)) {
		log_error("store", NULL, "index corrupt, rebuilt from the maildir maildir=%s", maildir);
		aside_stem(dfd, "corrupt", stem, sizeof(stem));
		for (size_t i = 0; i < ARRAY_SIZE(index_files); i++)
			set_aside(dfd, maildir, index_files[i], stem);
		fsync(dfd);
	}
	pthread_mutex_unlock(&create_lock);
	close(dfd);
}

/* Opens (creating) the per-user index of maildir. */
static int index_connect(const char *maildir, sqlite3 **db_r, struct index_ident *id_r)
{
	struct index_ident before, after;
	char *path;
	sqlite3 *db = NULL;
	int rc, r;

	r = index_prepare(maildir, &before);
	if (r < 0) {
		log_error("store", NULL, "cannot open index maildir=%s error=\"%s\"", maildir, strerror(-r));
		return r;
	}
	path = xasprintf("%s/%s", maildir, INDEX_FILE);
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	free(path);
	if (rc != SQLITE_OK) {
		r = mbox_sql_errno(db, rc);
		log_error("store", NULL, "cannot open index maildir=%s error=%s", maildir,
			  db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return r;
	}
	/* The file SQLite opened is the one checked (no swap in between). */
	if (index_ident(maildir, &after) < 0 || !same_file(&before, &after)) {
		log_error("store", NULL, "index file changed while opening maildir=%s", maildir);
		sqlite3_close(db);
		return -EAGAIN;
	}
	r = index_setup(db, maildir);
	if (r < 0) {
		sqlite3_close(db);
		if (r == -EUCLEAN)
			mbox_index_set_aside(maildir, &before);
		return r;
	}
	*db_r = db;
	*id_r = before;
	return 0;
}

int mbox_index_memory(const char *maildir, sqlite3 **db_r)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL), r;

	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		return -ENOMEM;
	}
	r = index_setup(db, maildir);
	if (r < 0) {
		sqlite3_close(db);
		return r;
	}
	*db_r = db;
	return 0;
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
	struct index_ident id;  /* the index file as it was when given back */
	struct pooled *next;
};

static struct {
	pthread_mutex_t lock;
	struct pooled *head;
	size_t n;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

int mbox_index_open(const char *maildir, sqlite3 **db_r, struct index_ident *id_r)
{
	struct pooled **pp, *p = NULL;
	int r;

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
		struct index_ident now;
		sqlite3 *db = p->db;
		/* Untouched since it was given back (a checkpoint by another
		 * connection also moves the mtime: then a new connection, no harm). */
		bool same = index_ident(maildir, &now) == 0 && unchanged(&now, &p->id);
		free(p->maildir);
		free(p);
		if (same) {
			*db_r = db;
			*id_r = now;
			return 0;
		}
		sqlite3_close(db);
	}
	r = index_connect(maildir, db_r, id_r);
	if (r == -EUCLEAN || r == -EAGAIN)   /* set aside (or raced): once more, on a new file */
		r = index_connect(maildir, db_r, id_r);
	return r;
}

void mbox_index_release(const char *maildir, sqlite3 *db, const struct index_ident *id)
{
	struct pooled *p, *drop = NULL;
	struct index_ident now;

	if (!db)
		return;
	if (!sqlite3_get_autocommit(db) || sqlite3_next_stmt(db, NULL) || is_memory(db)) {
		sqlite3_close_v2(db);   /* not in a state to share (or not the file's): no harm */
		return;
	}
	/* Only a connection to the file now at the path is kept. */
	if (index_ident(maildir, &now) < 0 || !same_file(&now, id)) {
		sqlite3_close(db);
		return;
	}
	p = xmalloc(sizeof(*p));
	p->id = now;
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

int mbox_index_check(struct mbox *m)
{
	struct index_ident now;
	int r;

	if (m->mem || !m->db)
		return 0;
	r = index_ident(m->maildir, &now);
	if (r == 0 && unchanged(&now, &m->ident))
		return 0;
	if (r == 0 && same_file(&now, &m->ident)) {
		/* The same file, written by someone: a checkpoint, or bytes
		 * written behind SQLite's back, which its page cache would not
		 * notice. A new connection reads the file afresh. */
		sqlite3 *db;
		struct index_ident id;
		r = index_connect(m->maildir, &db, &id);
		if (r == 0) {
			sqlite3_close(m->db);
			m->db = db;
			m->ident = id;
			return 0;
		}
		return r == -EUCLEAN || r == -EAGAIN ? -ESTALE : r;
	}
	/* Deleted or replaced: this session's UIDs belong to the old file. */
	log_warn("store", NULL, "index file replaced while in use maildir=%s", m->maildir);
	return -ESTALE;
}

/* Runs one statement with the text arguments a and b (b may be NULL). */
static int index_exec2(const char *maildir, const char *sql, const char *a, const char *b)
{
	struct index_ident id;
	sqlite3 *db;
	sqlite3_stmt *st;
	int r = mbox_index_open(maildir, &db, &id), rc;

	if (r < 0)
		return r;
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = mbox_sql_errno(db, rc);
		mbox_index_release(maildir, db, &id);
		return r;
	}
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (b)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	rc = mbox_step(st);
	r = rc == SQLITE_DONE ? 0 : mbox_sql_errno(db, rc);
	sqlite3_finalize(st);
	mbox_index_release(maildir, db, &id);
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

void mbox_sleep(struct mbox *m)
{
	/* An in-memory stand-in is the session's only copy: it stays. */
	if (m && m->db && !m->mem) {
		mbox_index_release(m->maildir, m->db, &m->ident);
		m->db = NULL;
	}
}

/* Reopens the index of a mailbox put to sleep by mbox_sleep(). */
int mbox_wake(struct mbox *m)
{
	if (m->db)
		return 0;
	return mbox_index_open(m->maildir, &m->db, &m->ident);
}
