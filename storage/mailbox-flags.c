/*
 * Changes to messages in place: flags and keywords (a rename to the new
 * ":2," info, then the row) and expunge (unlink, then the row).
 */
#include "storage/mailbox-private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/failpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"

/* After a write to message rows: the new highestmodseq, and gen moves. */
static int bump_mailbox(struct mbox *m)
{
	sqlite3_stmt *st;
	int r;

	if (sqlite3_prepare_v2(m->db, "UPDATE mailboxes SET highestmodseq = ?, gen = gen + 1 WHERE id = ?", -1, &st,
			       NULL) !=
	    SQLITE_OK)
		return mbox_db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)m->highestmodseq);
	sqlite3_bind_int64(st, 2, m->id);
	r = mbox_step(st);
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : mbox_db_err(m, "update mailbox");
}

/* Re-reads highestmodseq inside a transaction: another session may have moved it. */
static int reload_stamp(struct mbox *m, bool *view_current_r)
{
	sqlite3_stmt *st;
	int r;

	if (sqlite3_prepare_v2(m->db, "SELECT highestmodseq, uidvalidity, uidnext, gen FROM mailboxes WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return mbox_db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, m->id);
	r = mbox_step(st);
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
	return r == SQLITE_ROW ? 0 : mbox_db_err(m, "select mailbox");
}

static int reload_modseq(struct mbox *m)
{
	return reload_stamp(m, NULL);
}

/* The index side of an expunge, inside the caller's write transaction:
 * rows out, expunged rows in, the mailbox row bumped. */
static int expunge_rows(struct mbox *m, const uint32_t *uids, size_t n)
{
	sqlite3_stmt *del = NULL, *exp = NULL;
	int r;

	if ((r = reload_modseq(m)) < 0)
		return r;
	if (sqlite3_prepare_v2(m->db, "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", -1, &del, NULL) !=
		    SQLITE_OK ||
	    sqlite3_prepare_v2(m->db, "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
			       -1, &exp, NULL) != SQLITE_OK) {
		r = mbox_db_err(m, "prepare");
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, m->id);
		sqlite3_bind_int64(del, 2, uids[k]);
		sqlite3_reset(exp);
		sqlite3_bind_int64(exp, 1, m->id);
		sqlite3_bind_int64(exp, 2, uids[k]);
		sqlite3_bind_int64(exp, 3, (sqlite3_int64)++m->highestmodseq);
		if (mbox_step(del) != SQLITE_DONE || mbox_step(exp) != SQLITE_DONE) {
			r = mbox_db_err(m, "expunge");
			goto out;
		}
	}
	r = bump_mailbox(m);
out:
	sqlite3_finalize(del);
	sqlite3_finalize(exp);
	return r;
}

/* The same in a transaction of its own (the files are gone already). */
static int index_expunge(struct mbox *m, const uint32_t *uids, size_t n)
{
	int r;

	if ((r = mbox_wake(m)) < 0 || (r = mbox_exec(m, "BEGIN IMMEDIATE")) < 0)
		return r;
	if ((r = expunge_rows(m, uids, n)) < 0 || (r = mbox_exec(m, "COMMIT")) < 0)
		mbox_exec(m, "ROLLBACK");
	return r;
}

/*
 * The files go first, the index after, under the index's write lock taken
 * before the first unlink: no other session's STORE renames a file
 * meanwhile, so an unlink that finds nothing (and a search by base name
 * after it) means the file is really gone, not on its way from new/ to
 * cur/ (its row dropped then would give the file a second UID at the next
 * sync). An unlink needs no free space and the Maildir is the truth: once
 * a file is gone the message is gone, so an index that cannot record it (a
 * full disk has no room for SQLite's WAL) does not undo it. The session's
 * stand-in records it instead, and the index file catches up at the next
 * sync that can write (a vanished file is an expunge).
 */
int mbox_expunge(struct mbox *m, const uint32_t *uids, size_t n, size_t *done_r)
{
	struct mbox_dirs d;
	uint32_t *gone;
	size_t n_gone = 0;
	uint64_t modseq;
	int r, ri, removed_new = 0, removed_cur = 0;

	*done_r = 0;
	if (n == 0)
		return 0;
	m->index_err = 0;
	r = mbox_wake(m);
	if (r == 0)
		r = mbox_exec(m, "BEGIN IMMEDIATE");
	if (r < 0 && (!m->db || m->index_err) && !m->mem && mbox_go_memory(m, r) == 0)
		r = mbox_exec(m, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	modseq = m->highestmodseq;
	r = mbox_dirs_open(m->dir, &d, false);
	if (r < 0) {
		mbox_exec(m, "ROLLBACK");
		return r;
	}
	gone = xcalloc(n, sizeof(*gone));
	for (size_t k = 0; k < n; k++) {
		ssize_t i = mbox_find(m, uids[k]);
		const char *name;
		int at, e = 0;

		if (i >= 0) {
			at = mbox_dirs_at(&d, m->msgs[i].file, &name);
			if (FAILPOINT_ERRNO("storage/mailbox-flags/unlink") || at < 0 || unlinkat(at, name, 0) < 0)
				e = at < 0 ? ENOENT : errno;
			if (e == ENOENT && mbox_relocate(m, (size_t)i) == 0) {
				at = mbox_dirs_at(&d, m->msgs[i].file, &name);
				e = at >= 0 && unlinkat(at, name, 0) == 0 ? 0 : at < 0 ? ENOENT : errno;
			}
			if (e && e != ENOENT) {   /* ENOENT: expunged by someone else, gone all the same */
				r = -e;
				log_error("store", NULL, "expunge failed maildir=%s uid=%u error=\"%s\"", m->maildir,
					  uids[k], strerror(e));
				break;
			}
			if (strncmp(m->msgs[i].file, "new/", 4) == 0)
				removed_new = 1;
			else
				removed_cur = 1;
		}
		gone[n_gone++] = uids[k];
	}
	/* The removals are on disk before the client hears of them. A failed
	 * fsync is reported, not tried again (a second fsync could claim
	 * success for what the first lost). */
	if (removed_new && (FAILPOINT_ERRNO("storage/mailbox-flags/fsync-dir") || fsync(d.new) < 0) && r == 0)
		r = -errno;
	if (removed_cur && (FAILPOINT_ERRNO("storage/mailbox-flags/fsync-dir") || fsync(d.cur) < 0) && r == 0)
		r = -errno;
	mbox_dirs_close(&d);
	m->index_err = 0;
	ri = n_gone ? expunge_rows(m, gone, n_gone) : 0;
	if (ri == 0)
		ri = mbox_exec(m, "COMMIT");
	if (ri < 0) {
		mbox_exec(m, "ROLLBACK");
		if (m->index_err && !m->mem) {
			m->highestmodseq = modseq;
			if (mbox_go_memory(m, ri) == 0)
				ri = index_expunge(m, gone, n_gone);
		}
		if (ri < 0)
			log_warn("store", NULL, "expunged files not in the index yet maildir=%s count=%zu", m->maildir,
				 n_gone);
	}
	*done_r = n_gone;
	free(gone);
	return r;
}

int mbox_forget(struct mbox *m, const uint32_t *uids, size_t n)
{
	uint64_t modseq = m->highestmodseq;
	int r;

	if (n == 0)
		return 0;
	m->index_err = 0;
	r = index_expunge(m, uids, n);
	if (r < 0 && m->index_err && !m->mem) {
		m->highestmodseq = modseq;
		if (mbox_go_memory(m, r) == 0)
			r = index_expunge(m, uids, n);
	}
	return r;
}

/* One flag change carried out on the Maildir, to be taken back if the
 * batch fails. */
struct renamed {
	char *from;      /* the file before ("new/NAME" or "cur/NAME:2,..."), NULL: not renamed */
	char *to;        /* after ("cur/NAME:2,...") */
};

/* Renames message i's file to carry flags; its new name relative to the
 * folder into rn->to (malloc'd). -ENOENT when it is gone. */
static int rename_for_flags(struct mbox *m, struct mbox_dirs *d, size_t i, uint32_t flags, struct renamed *rn)
{
	const char *cur = m->msgs[i].file;
	const char *slash = strchr(cur, '/');
	const char *b = slash ? slash + 1 : cur;
	const char *colon = strchr(b, ':');
	const char *name;
	char info[8], *file;
	int at, e;

	mbox_flags_to_info(flags, info);
	file = xasprintf("cur/%.*s:2,%s", (int)(colon ? (size_t)(colon - b) : strlen(b)), b, info);
	if (strcmp(file, cur) == 0 || d->cur < 0) {
		rn->to = file;
		return d->cur < 0 ? -ENOENT : 0;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		at = mbox_dirs_at(d, m->msgs[i].file, &name);
		if (FAILPOINT_ERRNO("storage/mailbox-flags/rename"))
			e = errno;
		else
			e = at >= 0 && renameat(at, name, d->cur, file + 4) == 0 ? 0 : at < 0 ? ENOENT : errno;
		if (e == 0) {
			rn->from = xstrdup(m->msgs[i].file);
			rn->to = file;
			return 0;
		}
		/* Renamed by another reader meanwhile: find it and try again. */
		if (e != ENOENT || attempt > 0 || mbox_relocate(m, i) < 0)
			break;
	}
	free(file);
	return -e;
}

/* Takes back the renames of a batch that failed (the index never saw
 * them, the client is told nothing changed). */
static void undo_renames(struct mbox *m, struct mbox_dirs *d, struct renamed *rn, size_t n)
{
	for (size_t k = n; k-- > 0;) {
		const char *from, *to;
		int from_at, to_at;

		if (!rn[k].from)
			continue;
		from_at = mbox_dirs_at(d, rn[k].from, &from);
		to_at = mbox_dirs_at(d, rn[k].to, &to);
		if (renameat(to_at, to, from_at, from) < 0)
			log_error("store", NULL, "cannot take back a flag change maildir=%s file=%s error=\"%s\"",
				  m->maildir, rn[k].to, strerror(errno));
		free(rn[k].from);
		rn[k].from = NULL;
	}
}

/* The batch once: renames, rows, one commit; all or nothing. */
static int flags_apply(struct mbox *m, struct mbox_flag_change *c, size_t n)
{
	struct mbox_dirs d = MBOX_DIRS_INIT;
	sqlite3_stmt *st = NULL;
	struct renamed *rn;
	size_t done = 0;
	bool current = false;
	int r;

	for (size_t k = 0; k < n; k++)
		c[k].result = -ECANCELED;
	if ((r = mbox_wake(m)) < 0)
		return r;
	if ((r = mbox_dirs_open(m->dir, &d, false)) < 0)
		return r;
	if ((r = mbox_exec(m, "BEGIN IMMEDIATE")) < 0) {
		mbox_dirs_close(&d);
		return r;
	}
	rn = xcalloc(n, sizeof(*rn));
	if ((r = reload_stamp(m, &current)) < 0)
		goto fail;
	if (sqlite3_prepare_v2(m->db, "UPDATE messages SET file = ?, flags = ?, keywords = ?, modseq = ? "
			       "WHERE mailbox_id = ? AND uid = ?", -1, &st, NULL) != SQLITE_OK) {
		r = mbox_db_err(m, "prepare");
		goto fail;
	}
	/* The files first (each rename is the change for other Maildir
	 * readers), the rows with them, one commit for all; the write lock is
	 * held throughout, so no sync of another session takes half of it. */
	for (size_t k = 0; k < n; k++) {
		const struct mbox_msg *x;
		uint32_t flags = c[k].flags & ~(uint32_t)MBOX_RECENT;

		r = rename_for_flags(m, &d, c[k].i, flags, &rn[k]);
		if (r == -ENOENT) {
			c[k].result = r;   /* expunged meanwhile: the others go on */
			r = 0;
			continue;
		}
		if (r < 0) {
			log_error("store", NULL, "flag change failed maildir=%s error=\"%s\"", m->maildir,
				  strerror(-r));
			goto fail;
		}
		x = &m->msgs[c[k].i];   /* after mbox_relocate(), which may have copied the list */
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, rn[k].to, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, flags);
		sqlite3_bind_text(st, 3, c[k].keywords ? c[k].keywords : x->keywords, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)++m->highestmodseq);
		sqlite3_bind_int64(st, 5, m->id);
		sqlite3_bind_int64(st, 6, x->uid);
		if (mbox_step(st) != SQLITE_DONE) {
			r = mbox_db_err(m, "update flags");
			goto fail;
		}
		c[k].result = 0;
		c[k].modseq = m->highestmodseq;
		done++;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* No fsync of cur/ here (it would cost three quarters of a STORE's
	 * rate): a flag change lost to a power cut loses no message, and the
	 * next sync takes the flags the file names kept, so the index and the
	 * Maildir still agree. */
	if ((done && (r = bump_mailbox(m)) < 0) || (r = mbox_exec(m, "COMMIT")) < 0)
		goto fail;
	mbox_dirs_close(&d);
	if (done) {
		mbox_own_view(m);
		for (size_t k = 0; k < n; k++) {
			struct mbox_msg *x = &m->msgs[c[k].i];
			if (c[k].result != 0)
				continue;
			free(rn[k].from);
			rn[k].from = NULL;
			mbox_set_string(m, &x->file, rn[k].to);
			rn[k].to = NULL;
			if (c[k].keywords)
				mbox_set_string(m, &x->keywords, xstrdup(c[k].keywords));
			x->flags = c[k].flags & ~(uint32_t)MBOX_RECENT;
			x->modseq = c[k].modseq;
		}
		/* bump_mailbox() moved gen by one; nothing else was committed. */
		if (current)
			mbox_publish_own(m, m->view->uidvalidity, m->view->uidnext, m->highestmodseq, m->view->gen + 1);
	}
	for (size_t k = 0; k < n; k++) {
		free(rn[k].from);
		free(rn[k].to);
	}
	free(rn);
	return 0;
fail:
	sqlite3_finalize(st);
	mbox_exec(m, "ROLLBACK");
	undo_renames(m, &d, rn, n);
	if (d.cur >= 0)
		fsync(d.cur);
	mbox_dirs_close(&d);
	for (size_t k = 0; k < n; k++) {
		c[k].result = r;
		free(rn[k].to);
	}
	free(rn);
	return r;
}

/* Does the batch change keywords, which only the index keeps? */
static bool changes_keywords(const struct mbox *m, const struct mbox_flag_change *c, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (c[k].keywords && strcmp(c[k].keywords, m->msgs[c[k].i].keywords) != 0)
			return true;
	return false;
}

int mbox_set_flags_many(struct mbox *m, struct mbox_flag_change *c, size_t n)
{
	uint64_t modseq = m->highestmodseq;
	int r;

	for (size_t k = 0; k < n; k++)
		c[k].result = -ECANCELED;
	if (n == 0)
		return 0;
	for (size_t k = 0; k < n; k++)
		if (c[k].i >= m->n)
			return -EINVAL;
	/* Keywords live only in the index: a stand-in would lose them. */
	if (m->mem && changes_keywords(m, c, n))
		return m->mem_why < 0 ? m->mem_why : -EIO;
	m->index_err = 0;
	r = flags_apply(m, c, n);
	/* The index cannot take it (disk full, I/O error, corrupt): system
	 * flags live in the file names, so the change is made with the
	 * session's stand-in and the index file takes the flags from the names
	 * at its next sync. Keywords live only in the index: refused. */
	if (r < 0 && m->index_err && !m->mem && !changes_keywords(m, c, n)) {
		m->highestmodseq = modseq;
		if (mbox_go_memory(m, r) == 0) {
			m->index_err = 0;
			r = flags_apply(m, c, n);
		}
	}
	return r;
}

int mbox_set_flags(struct mbox *m, size_t i, uint32_t flags, const char *keywords)
{
	struct mbox_flag_change c = { .i = i, .flags = flags, .keywords = keywords };
	int r = mbox_set_flags_many(m, &c, 1);

	return r < 0 ? r : c.result;
}
