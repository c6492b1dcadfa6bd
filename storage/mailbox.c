/*
 * An open mailbox: opening and closing, what a session reads of it, the
 * refresh that tells a session what changed, and message files by UID.
 * The other jobs live beside it: mailbox-index.c (the index connection and
 * its pool), mailbox-sync.c (index against Maildir), mailbox-view.c
 * (shared message lists), mailbox-flags.c (flags, expunge), mailbox-save.c
 * (APPEND, COPY), mailbox-cache.c (the FETCH cache).
 */
#include "storage/mailbox-private.h"

#include <dirent.h>
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

#include "lib/log.h"
#include "lib/xalloc.h"

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

int mbox_folder_path(const char *maildir, const char *name, char **dir_r)
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

int mbox_dirs_open(const char *dir, struct mbox_dirs *d, bool want_tmp)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	int *fds[] = { &d->tmp, &d->new, &d->cur };

	d->dir = d->tmp = d->new = d->cur = -1;
	d->dir = storage_open_dir(dir);
	if (d->dir < 0)
		return d->dir;
	for (size_t i = want_tmp ? 0 : 1; i < ARRAY_SIZE(subs); i++) {
		int fd = storage_open_subdir(d->dir, subs[i], dir);
		/* A folder without one of them is read as empty there. */
		if (fd < 0 && fd != -ENOENT) {
			mbox_dirs_close(d);
			return fd;
		}
		*fds[i] = fd;
	}
	return 0;
}

void mbox_dirs_close(struct mbox_dirs *d)
{
	int *fds[] = { &d->dir, &d->tmp, &d->new, &d->cur };

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int mbox_dirs_at(const struct mbox_dirs *d, const char *file, const char **name_r)
{
	if (strncmp(file, "new/", 4) == 0) {
		*name_r = file + 4;
		return d->new;
	}
	if (strncmp(file, "cur/", 4) == 0) {
		*name_r = file + 4;
		return d->cur;
	}
	*name_r = file;
	return -1;
}

static struct {
	pthread_mutex_t lock;
	uint32_t last;
} uidvalidity = { .lock = PTHREAD_MUTEX_INITIALIZER };

void mbox_uidvalidity_seen(uint32_t v)
{
	pthread_mutex_lock(&uidvalidity.lock);
	if (v > uidvalidity.last)
		uidvalidity.last = v;
	pthread_mutex_unlock(&uidvalidity.lock);
}

uint32_t mbox_uidvalidity_next(uint32_t at_least)
{
	uint32_t v = (uint32_t)time(NULL);

	pthread_mutex_lock(&uidvalidity.lock);
	if (v < at_least)
		v = at_least;
	if (v <= uidvalidity.last)
		v = uidvalidity.last + 1;
	uidvalidity.last = v;
	pthread_mutex_unlock(&uidvalidity.lock);
	return v;
}

/* The base name of a message file ("cur/BASE:2,S" -> BASE). */
static char *file_base(const char *file)
{
	const char *slash = strchr(file, '/');
	const char *b = slash ? slash + 1 : file;

	return xstrndup(b, strcspn(b, ":"));
}

/* Fills the stand-in db with m's folder: the row and the given list. */
static int seed(struct mbox *m, sqlite3 *db, const struct mbox_msg *msgs, size_t n)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "INSERT INTO mailboxes (name, uidvalidity, uidnext, highestmodseq, "
					"first_recent_uid) VALUES (?, ?, ?, ?, ?)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, m->uidvalidity);
		sqlite3_bind_int64(st, 3, m->uidnext);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)m->highestmodseq);
		sqlite3_bind_int64(st, 5, m->recent_from ? m->recent_from : 1);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_finalize(st);
		st = NULL;
	}
	m->id = sqlite3_last_insert_rowid(db);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "INSERT INTO messages (mailbox_id, uid, base, file, flags, keywords, size, "
					"vsize, internaldate, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st,
					NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		char *base = file_base(msgs[i].file);
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, m->id);
		sqlite3_bind_int64(st, 2, msgs[i].uid);
		sqlite3_bind_text(st, 3, base, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, msgs[i].file, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, msgs[i].flags);
		sqlite3_bind_text(st, 6, msgs[i].keywords ? msgs[i].keywords : "", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)msgs[i].size);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)msgs[i].vsize);
		sqlite3_bind_int64(st, 9, msgs[i].internaldate);
		sqlite3_bind_int64(st, 10, (sqlite3_int64)msgs[i].modseq);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		free(base);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : -ENOMEM;
}

/* Before a session has a list: the folder's row and rows read from the
 * file (reading works on a full disk). 0, or a negative code when the file
 * cannot serve even that (then the stand-in starts from the Maildir). */
static int read_only_view(struct mbox *m, struct view **v_r)
{
	sqlite3_stmt *st;
	int r;

	if (!m->db || sqlite3_prepare_v2(m->db, "SELECT id, uidvalidity, uidnext, highestmodseq, first_recent_uid "
					 "FROM mailboxes WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
	r = mbox_step(st);
	if (r == SQLITE_ROW) {
		m->id = sqlite3_column_int64(st, 0);
		m->uidvalidity = (uint32_t)sqlite3_column_int64(st, 1);
		m->uidnext = (uint32_t)sqlite3_column_int64(st, 2);
		m->highestmodseq = (uint64_t)sqlite3_column_int64(st, 3);
		m->recent_from = (uint32_t)sqlite3_column_int64(st, 4);
	}
	sqlite3_finalize(st);
	if (r != SQLITE_ROW)
		return -ENOENT;
	return mbox_view_read(m, v_r);
}

int mbox_go_memory(struct mbox *m, int why)
{
	struct view *v = NULL;
	sqlite3 *db;
	int r;

	if (m->mem)
		return why;      /* the stand-in itself failed */
	if (why == -EUCLEAN && m->db)
		mbox_index_set_aside(m->maildir, &m->ident);
	r = mbox_index_memory(m->maildir, &db);
	if (r < 0)
		return r;
	if (m->view || m->own) {
		/* The session's own list: its client keeps the UIDs it knows. */
		r = seed(m, db, m->msgs, m->n);
		m->known_only = 1;
	} else if (why != -EUCLEAN && read_only_view(m, &v) == 0) {
		r = seed(m, db, v->msgs, v->n);
		m->known_only = 1;
		mbox_view_unref(v);
	} else {
		/* Nothing to go on: the Maildir alone, under a new UIDVALIDITY. */
		r = 0;
		m->known_only = 0;
	}
	if (r < 0) {
		sqlite3_close(db);
		return r;
	}
	if (m->db) {
		if (!sqlite3_get_autocommit(m->db))
			sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(m->db);
	}
	m->db = db;
	m->mem = 1;
	m->mem_why = why;
	m->sync_new_ns = m->sync_cur_ns = 0;
	log_warn("store", NULL, "index unavailable, the session goes on in memory maildir=%s folder=%s error=\"%s\"",
		 m->maildir, m->name, strerror(-why));
	return 0;
}

int mbox_open(const char *maildir, const char *name, unsigned flags, struct mbox **mbox_r,
	      char *err, size_t errlen)
{
	struct mbox *m = xcalloc(1, sizeof(*m));
	struct mbox_dirs d;
	int r;

	m->maildir = xstrdup(maildir);
	m->name = xstrdup(name);
	m->flags = flags;
	if (mbox_folder_path(maildir, name, &m->dir) < 0) {
		snprintf(err, errlen, "invalid mailbox name");
		r = -EINVAL;
		goto fail;
	}
	/* The folder, opened as every later step will: a symbolic link in its
	 * path is refused here (logged), a missing folder is -ENOENT. */
	r = mbox_dirs_open(m->dir, &d, false);
	if (r < 0) {
		snprintf(err, errlen, r == -ENOENT || r == -ENOTDIR ? "no such mailbox" : "cannot open the mailbox");
		if (r == -ENOTDIR)
			r = -ENOENT;
		goto fail;
	}
	mbox_dirs_close(&d);
	r = mbox_index_open(maildir, &m->db, &m->ident);
	if (r == 0) {
		r = mbox_sync(m);
		if (r == 0)
			r = mbox_load_view(m);
		if (r < 0 && !m->index_err) {
			snprintf(err, errlen, "cannot read the mailbox");
			goto fail;
		}
	}
	/* The index cannot serve (disk full, corrupt, I/O error): reading,
	 * flags and expunge go on with a stand-in (struct mbox). A symbolic
	 * link in place of the index file is refused instead. */
	if (r < 0 && r != -ELOOP && mbox_go_memory(m, r) == 0) {
		r = mbox_sync(m);
		if (r == 0)
			r = mbox_load_view(m);
	}
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
	mbox_free_view(m);
	free(m->recent);
	free(m->own_keywords);
	free(m->ch.expunged);
	free(m->ch.changed);
	if (m->mem)
		sqlite3_close(m->db);
	else
		mbox_index_release(m->maildir, m->db, &m->ident);
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
int mbox_relocate(struct mbox *m, size_t i)
{
	const char *file = m->msgs[i].file;
	const char *slash = strchr(file, '/');
	const char *colon;
	size_t blen;
	struct mbox_dirs d;
	int r = -ENOENT;

	if (!slash)
		return -ENOENT;
	colon = strchr(slash + 1, ':');
	blen = colon ? (size_t)(colon - slash - 1) : strlen(slash + 1);
	if (mbox_dirs_open(m->dir, &d, false) < 0)
		return -ENOENT;
	for (size_t s = 0; s < 2 && r < 0; s++) {
		int fd = s == 0 ? d.cur : d.new;
		DIR *dir;
		struct dirent *e;

		if (fd < 0 || (fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			continue;
		dir = fdopendir(fd);
		if (!dir) {
			close(fd);
			continue;
		}
		while ((e = readdir(dir))) {
			if (strncmp(e->d_name, slash + 1, blen) == 0 &&
			    (e->d_name[blen] == '\0' || e->d_name[blen] == ':')) {
				mbox_own_view(m);
				mbox_set_string(m, &m->msgs[i].file,
						xasprintf("%s/%s", s == 0 ? "cur" : "new", e->d_name));
				r = 0;
				break;
			}
		}
		closedir(dir);
	}
	mbox_dirs_close(&d);
	return r;
}

static int open_in(struct mbox *m, size_t i)
{
	struct mbox_dirs d;
	const char *name;
	int at, fd;

	fd = mbox_dirs_open(m->dir, &d, false);
	if (fd < 0)
		return fd;
	at = mbox_dirs_at(&d, m->msgs[i].file, &name);
	fd = at < 0 ? -ENOENT : openat(at, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && at >= 0)
		fd = errno == ELOOP ? -ENOENT : -errno;   /* a symlink is no message of ours */
	mbox_dirs_close(&d);
	return fd;
}

int mbox_open_msg(struct mbox *m, size_t i)
{
	int fd;

	if (i >= m->n)
		return -EINVAL;
	fd = open_in(m, i);
	if (fd != -ENOENT)
		return fd;
	if (mbox_relocate(m, i) < 0)
		return -ENOENT;
	return open_in(m, i);
}

int mbox_refresh(struct mbox *m, struct mbox_changes *ch)
{
	const struct mbox_msg *old;
	struct view *v;
	size_t n, i = 0, j = 0;
	int r;

	m->index_err = 0;
	r = mbox_wake(m);
	/* A file deleted, replaced or rewritten under the session: its UIDs
	 * are the old file's, so the session goes on with a stand-in. */
	if (r == 0)
		r = mbox_index_check(m);
	if (r == 0)
		r = mbox_sync(m);
	if (r < 0 && !m->mem && (!m->db || r == -ESTALE || m->index_err) && mbox_go_memory(m, r) == 0)
		r = mbox_sync(m);
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
	m->index_err = 0;
	r = mbox_view_read(m, &v);
	if (r < 0 && m->index_err && !m->mem && mbox_go_memory(m, r) == 0 && (r = mbox_sync(m)) == 0)
		r = mbox_view_read(m, &v);
	if (r < 0)
		return r;
	if (v == m->view && !m->own) {
		mbox_view_unref(v);
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
	mbox_adopt_view(m, v);
	if (ch)
		*ch = m->ch;
	return 0;
}


int mbox_vanished_since(struct mbox *m, uint64_t modseq, uint32_t **uids_r, size_t *n_r)
{
	sqlite3_stmt *st;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int r;

	if ((r = mbox_wake(m)) < 0)
		return r;
	if (sqlite3_prepare_v2(m->db, "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
			       -1, &st, NULL) != SQLITE_OK)
		return mbox_db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, m->id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
	while ((r = mbox_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			uids = xrealloc(uids, cap * sizeof(*uids));
		}
		uids[n++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (r != SQLITE_DONE) {
		free(uids);
		return mbox_db_err(m, "select expunged");
	}
	*uids_r = uids;
	*n_r = n;
	return 0;
}
