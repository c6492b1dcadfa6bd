/*
 * Messages saved into a folder by IMAP: APPEND (tmp/, fsync, cur/) and
 * COPY (hard links), each given its UID at once.
 */
#include "storage/mailbox-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/failpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"

/* Finds the UIDs a sync gave to the files with the given base names. */
static int find_uids(struct mbox *m, char **bases, size_t n, uint32_t *uids_r)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(m->db, "SELECT uid FROM messages WHERE mailbox_id = ? AND base = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return mbox_db_err(m, "prepare");
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, m->id);
		sqlite3_bind_text(st, 2, bases[i], -1, SQLITE_STATIC);
		if (mbox_step(st) != SQLITE_ROW) {
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
		return mbox_db_err(m, "prepare");
	sqlite3_bind_text(st, 1, keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, m->id);
	sqlite3_bind_int64(st, 3, uid);
	r = mbox_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return mbox_db_err(m, "update keywords");
	/* The row changed: views loaded before must not serve. */
	if (sqlite3_prepare_v2(m->db, "UPDATE mailboxes SET gen = gen + 1 WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return mbox_db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, m->id);
	r = mbox_step(st);
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : mbox_db_err(m, "update mailbox");
}

/*
 * Puts a file written to tmp/ into the folder's cur/ and gives it the next
 * UID, in one write transaction of the index: the rename happens under the
 * index's write lock, which every sync holds while it reads the folder, so
 * no sync sees the file before its row exists. (A sync that took the file
 * first gave it a UID of its own; a session could then expunge it before
 * the APPEND wrote its row, and the APPEND gave the vanished file a second
 * UID.) On failure nothing is left in cur/: the file is taken out again
 * before the write lock goes, so no sync indexed it; tmp/ is the caller's.
 */
static int append_row(const char *maildir, const char *name, const struct mbox_dirs *d, const char *base,
		      const char *final, uint32_t flags, const char *keywords, uint64_t size, uint64_t vsize,
		      int64_t mtime, uint32_t *uidvalidity_r, uint32_t *uid_r)
{
	struct mbox *m = xcalloc(1, sizeof(*m));
	sqlite3_stmt *st = NULL;
	char *file = xasprintf("cur/%s", final);
	bool fs_failed = false;   /* the rename or the fsync failed, not the index */
	int r, placed = 0;

	m->maildir = xstrdup(maildir);
	m->name = xstrdup(name);
	if (mbox_folder_path(maildir, name, &m->dir) < 0) {
		r = -EINVAL;
		goto out;
	}
	if ((r = mbox_index_open(maildir, &m->db, &m->ident)) < 0)
		goto out;
	mbox_durable(m, true);   /* the UID goes to the client in APPENDUID */
	if ((r = mbox_exec(m, "BEGIN IMMEDIATE")) < 0)
		goto out;
	if ((r = mbox_load_row(m)) < 0)
		goto fail;
	if (FAILPOINT_ERRNO("storage/mailbox-save/rename") || renameat(d->tmp, base, d->cur, final) < 0) {
		r = errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -errno;
		fs_failed = true;
		goto fail;
	}
	placed = 1;
	/* OK to APPEND means the directory entry is on disk too. */
	if (FAILPOINT_ERRNO("storage/mailbox-save/fsync-dir") || fsync(d->cur) < 0) {
		r = -errno;
		fs_failed = true;
		goto fail;
	}
	if (sqlite3_prepare_v2(m->db, "INSERT INTO messages (mailbox_id, uid, base, file, flags, keywords, "
			       "size, vsize, internaldate, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st,
			       NULL) != SQLITE_OK) {
		r = mbox_db_err(m, "prepare");
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
	if (mbox_step(st) != SQLITE_DONE) {
		r = mbox_db_err(m, "insert message");
		goto fail;
	}
	*uid_r = m->uidnext++;
	m->highestmodseq++;
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(m->db, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, gen = gen + 1 "
			       "WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
		st = NULL;
		r = mbox_db_err(m, "prepare");
		goto fail;
	}
	sqlite3_bind_int64(st, 1, m->uidnext);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)m->highestmodseq);
	sqlite3_bind_int64(st, 3, m->id);
	if (mbox_step(st) != SQLITE_DONE) {
		r = mbox_db_err(m, "update mailbox");
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((r = mbox_exec(m, "COMMIT")) < 0)
		goto fail;
	*uidvalidity_r = m->uidvalidity;
	goto out;
fail:
	sqlite3_finalize(st);
	/* Out of cur/ while the write lock is held (a COMMIT that failed
	 * keeps its transaction, or lost it to a rollback: then a sync may
	 * have indexed the file meanwhile, and drops the row when the file
	 * has gone; a burnt UID, never a reused one). NO must mean not
	 * stored: a client would append it again. */
	if (placed) {
		unlinkat(d->cur, final, 0);
		fsync(d->cur);
	}
	mbox_exec(m, "ROLLBACK");
out:
	if (r < 0 && !fs_failed)
		log_error("store", NULL, "append not indexed, file removed maildir=%s folder=%s error=\"%s\"", maildir,
			  name, strerror(-r));
	mbox_durable(m, false);
	mbox_close(&m);
	free(file);
	return r;
}

/* Writes data to a new file name in tmp/ and fsyncs it (mtime set to
 * internaldate when > 0); on failure nothing is left. */
static int write_tmp(int tmpfd, const char *name, const char *data, size_t len, int64_t internaldate)
{
	struct timespec times[2];
	int fd, r = 0;

	fd = FAILPOINT_ERRNO("storage/mailbox-save/open") ? -1 :
		openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errno == EDQUOT ? -ENOSPC : -errno;
	if (FAILPOINT_ERRNO("storage/mailbox-save/write"))
		r = errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -errno;
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
	/* A failed fsync is final (never tried again into a success): the
	 * kernel may have dropped the pages it could not write. */
	if (r == 0 && (FAILPOINT_ERRNO("storage/mailbox-save/fsync") || fsync(fd) < 0))
		r = errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -EIO;
	if (close(fd) < 0 && r == 0)
		r = -EIO;
	if (r < 0)
		unlinkat(tmpfd, name, 0);
	return r;
}

int mbox_append(const char *maildir, const char *name, const char *data, size_t len, uint32_t flags,
		const char *keywords, int64_t internaldate, const char *host, uint32_t *uidvalidity_r,
		uint32_t *uid_r)
{
	char base[300], final[340], info[8], *dir;
	struct mbox_dirs d;
	struct stat st;
	uint64_t vsize = len;
	int64_t mtime;
	int r;

	if (mbox_folder_path(maildir, name, &dir) < 0)
		return -EINVAL;
	r = mbox_dirs_open(dir, &d, true);
	free(dir);
	if (r < 0)
		return r == -ENOTDIR ? -ENOENT : r;
	if (d.tmp < 0 || d.cur < 0) {
		mbox_dirs_close(&d);
		return -ENOENT;
	}
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			vsize++;
	storage_unique_name(host, len, vsize, base, sizeof(base));
	mbox_flags_to_info(flags & ~(uint32_t)MBOX_RECENT, info);
	snprintf(final, sizeof(final), "%s:2,%s", base, info);
	r = write_tmp(d.tmp, base, data, len, internaldate);
	if (r < 0) {
		mbox_dirs_close(&d);
		return r;
	}
	mtime = internaldate > 0 ? internaldate : (int64_t)time(NULL);
	if (fstatat(d.tmp, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
		mtime = st.st_mtime;
	/* The next UID, given here rather than by a sync: no scan of the
	 * folder, so an APPEND costs the same in a folder of 10 or 100,000
	 * messages. The folder's recorded mtimes stay as they were (cur/
	 * moves): the next sync rescans and finds this file indexed. UIDs are
	 * given under the folder's lock (see mbox_move()). */
	r = flock(d.dir, LOCK_SH) < 0 ? -errno :
		append_row(maildir, name, &d, base, final, flags & ~(uint32_t)MBOX_RECENT, keywords, len, vsize,
			   mtime, uidvalidity_r, uid_r);
	if (r < 0)
		unlinkat(d.tmp, base, 0);   /* still there unless the rename happened */
	mbox_dirs_close(&d);
	return r;
}

/* A copy by content, where a hard link is refused: another owner's file
 * (fs.protected_hardlinks, a file another Maildir writer dropped), another
 * file system, too many links. Written through tmp/ like any new file,
 * with the source's mtime (the INTERNALDATE). 0 or a negative errno. */
static int copy_contents(int from_at, const char *from, int tmpfd, int curfd, const char *base,
			 const char *final)
{
	char buf[65536];
	struct stat st;
	struct timespec times[2];
	ssize_t n = 0;
	int in, out, r = 0;

	in = openat(from_at, from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = openat(tmpfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while (r == 0 && (n = read(in, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n && r == 0;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				r = errno == EDQUOT ? -ENOSPC : errno ? -errno : -EIO;
			else
				off += w;
		}
	}
	if (r == 0 && n < 0)
		r = -errno;
	if (r == 0 && fstat(in, &st) == 0) {
		times[0] = st.st_atim;
		times[1] = st.st_mtim;
		futimens(out, times);
	}
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	if (close(out) < 0 && r == 0)
		r = -errno;
	close(in);
	if (r == 0 && renameat(tmpfd, base, curfd, final) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(tmpfd, base, 0);
	return r;
}

int mbox_copy(struct mbox *src, const uint32_t *uids, size_t n, const char *dst_name, const char *host,
	      uint32_t *uidvalidity_r, uint32_t *dst_uids_r)
{
	char err[128], *dir;
	char **bases = xcalloc(n ? n : 1, sizeof(char *)), **finals = xcalloc(n ? n : 1, sizeof(char *));
	size_t made = 0;
	struct mbox_dirs sd = MBOX_DIRS_INIT, dd = MBOX_DIRS_INIT;
	struct mbox *dst = NULL;
	int r;

	if (mbox_folder_path(src->maildir, dst_name, &dir) < 0) {
		r = -EINVAL;
		goto out;
	}
	r = mbox_dirs_open(dir, &dd, true);
	free(dir);
	if (r == 0 && (dd.cur < 0 || dd.tmp < 0))
		r = -ENOENT;
	if (r == 0)
		r = mbox_dirs_open(src->dir, &sd, false);
	if (r < 0) {
		if (r == -ENOTDIR)
			r = -ENOENT;
		goto out;
	}
	for (size_t k = 0; k < n && r == 0; k++) {
		ssize_t i = mbox_find(src, uids[k]);
		char base[300], info[8];
		const struct mbox_msg *x;
		const char *from;
		int at, e;

		if (i < 0) {
			r = -ENOENT;
			break;
		}
		x = &src->msgs[i];
		storage_unique_name(host, x->size, x->vsize, base, sizeof(base));
		mbox_flags_to_info(x->flags & ~(uint32_t)MBOX_RECENT, info);
		finals[made] = xasprintf("%s:2,%s", base, info);
		for (int attempt = 0;; attempt++) {
			at = mbox_dirs_at(&sd, src->msgs[i].file, &from);
			if (FAILPOINT_ERRNO("storage/mailbox-save/link"))
				e = errno;
			else
				e = at < 0 ? ENOENT : linkat(at, from, dd.cur, finals[made], 0) == 0 ? 0 : errno;
			if (e != ENOENT || attempt > 0 || mbox_relocate(src, (size_t)i) < 0)
				break;
		}
		if (e == EPERM || e == EXDEV || e == EMLINK)
			e = -copy_contents(at, from, dd.tmp, dd.cur, base, finals[made]);
		if (e) {
			r = e == ENOSPC || e == EDQUOT ? -ENOSPC : -e;
			free(finals[made]);
			finals[made] = NULL;
			break;
		}
		bases[made++] = xstrdup(base);
	}
	/* The copies are on disk before the client hears of them. */
	if (r == 0 && made && (FAILPOINT_ERRNO("storage/mailbox-save/fsync-dir") || fsync(dd.cur) < 0))
		r = -errno;
	if (r == 0) {
		r = mbox_open(src->maildir, dst_name, 0, &dst, err, sizeof(err));
		/* A stand-in gives no UIDs: the copy waits for the index. */
		if (r == 0 && dst->mem)
			r = -EIO;
		if (r == 0)
			r = find_uids(dst, bases, made, dst_uids_r);
		/* The keywords of all copies in one transaction (gen moves with them). */
		if (r == 0 && (r = mbox_exec(dst, "BEGIN IMMEDIATE")) == 0) {
			for (size_t k = 0; r == 0 && k < made; k++) {
				ssize_t i = mbox_find(src, uids[k]);
				r = set_keywords(dst, dst_uids_r[k], src->msgs[i].keywords);
			}
			if (r == 0)
				r = mbox_exec(dst, "COMMIT");
			if (r < 0)
				mbox_exec(dst, "ROLLBACK");
		}
		if (r == 0)
			*uidvalidity_r = dst->uidvalidity;
		mbox_close(&dst);
	}
	if (r < 0 && made) {
		/* All or nothing: take back the links already made. */
		for (size_t k = 0; k < made; k++)
			if (unlinkat(dd.cur, finals[k], 0) < 0 && errno != ENOENT)
				log_error("store", NULL, "cannot take back a copy maildir=%s file=%s error=\"%s\"",
					  src->maildir, finals[k], strerror(errno));
		fsync(dd.cur);
	}
out:
	mbox_dirs_close(&sd);
	mbox_dirs_close(&dd);
	for (size_t k = 0; k < made; k++) {
		free(bases[k]);
		free(finals[k]);
	}
	free(bases);
	free(finals);
	return r;
}

/* A message on its way: where its file was, where it goes. */
struct moving {
	char *from;      /* relative to the source folder ("new/X" or "cur/X:2,...") */
	char *to;        /* the name in the target's cur/ */
	char base[300];  /* to, up to ':' */
	char *keywords;
	uint32_t flags;
	uint64_t size, vsize;
	int64_t internaldate;
	int moved;
};

static void undo_moves(const struct mbox_dirs *sd, int dst_cur, struct moving *mv, size_t n,
		       const char *maildir)
{
	for (size_t k = n; k-- > 0;) {
		const char *from;
		int at;

		if (!mv[k].moved)
			continue;
		at = mbox_dirs_at(sd, mv[k].from, &from);
		if (renameat(dst_cur, mv[k].to, at, from) < 0)
			log_error("store", NULL, "cannot take back a move maildir=%s file=%s error=\"%s\"", maildir,
				  mv[k].to, strerror(errno));
		mv[k].moved = 0;
	}
}

/* Writes down (commit 1, durable) the UIDs and keywords of the messages a
 * move brings into d's folder, before their files move. */
static int reserve_incoming(struct mbox *d, struct mbox *src, const uint32_t *uids, size_t n, const char *host,
			    struct moving *mv, uint32_t *dst_uids_r)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = mbox_exec(d, "BEGIN IMMEDIATE")) < 0)
		return r;
	if ((r = mbox_load_row(d)) < 0)
		goto fail;
	if (sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO incoming (mailbox_id, base, uid, keywords, internaldate) "
			       "VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
		r = mbox_db_err(d, "prepare");
		goto fail;
	}
	for (size_t k = 0; k < n; k++) {
		const struct mbox_msg *x = &src->msgs[mbox_find(src, uids[k])];
		char info[8];

		/* A new base name: the same one coming back later to a folder
		 * whose index still had its old row would get its old UID. */
		storage_unique_name(host, x->size, x->vsize, mv[k].base, sizeof(mv[k].base));
		mbox_flags_to_info(x->flags & ~(uint32_t)MBOX_RECENT, info);
		mv[k].from = xstrdup(x->file);
		mv[k].to = xasprintf("%s:2,%s", mv[k].base, info);
		mv[k].flags = x->flags & ~(uint32_t)MBOX_RECENT;
		mv[k].size = x->size;
		mv[k].vsize = x->vsize;
		mv[k].internaldate = x->internaldate;
		mv[k].keywords = xstrdup(x->keywords ? x->keywords : "");
		dst_uids_r[k] = d->uidnext++;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, d->id);
		sqlite3_bind_text(st, 2, mv[k].base, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, dst_uids_r[k]);
		sqlite3_bind_text(st, 4, mv[k].keywords, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, mv[k].internaldate);
		if (mbox_step(st) != SQLITE_DONE) {
			r = mbox_db_err(d, "insert incoming");
			goto fail;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(d->db, "UPDATE mailboxes SET uidnext = ? WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
		r = mbox_db_err(d, "prepare");
		goto fail;
	}
	sqlite3_bind_int64(st, 1, d->uidnext);
	sqlite3_bind_int64(st, 2, d->id);
	if (mbox_step(st) != SQLITE_DONE) {
		r = mbox_db_err(d, "update mailbox");
		goto fail;
	}
	sqlite3_finalize(st);
	return mbox_exec(d, "COMMIT") < 0 ? (mbox_exec(d, "ROLLBACK"), -EIO) : 0;
fail:
	sqlite3_finalize(st);
	mbox_exec(d, "ROLLBACK");
	return r;
}

/* Commit 2: the moved files' rows, out of "incoming". */
static int settle_incoming(struct mbox *d, const struct moving *mv, size_t n, const uint32_t *dst_uids)
{
	sqlite3_stmt *ins = NULL, *del = NULL;
	int r;

	if ((r = mbox_exec(d, "BEGIN IMMEDIATE")) < 0)
		return r;
	if (sqlite3_prepare_v2(d->db, "INSERT OR IGNORE INTO messages (mailbox_id, uid, base, file, flags, keywords, "
			       "size, vsize, internaldate, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &ins,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->db, "DELETE FROM incoming WHERE mailbox_id = ? AND base = ?", -1, &del, NULL) !=
		    SQLITE_OK) {
		r = mbox_db_err(d, "prepare");
		goto fail;
	}
	if ((r = mbox_load_row(d)) < 0)
		goto fail;
	for (size_t k = 0; k < n; k++) {
		char *file = xasprintf("cur/%s", mv[k].to);
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, d->id);
		sqlite3_bind_int64(ins, 2, dst_uids[k]);
		sqlite3_bind_text(ins, 3, mv[k].base, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 4, file, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(ins, 5, mv[k].flags);
		sqlite3_bind_text(ins, 6, mv[k].keywords, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 7, (sqlite3_int64)mv[k].size);
		sqlite3_bind_int64(ins, 8, (sqlite3_int64)mv[k].vsize);
		sqlite3_bind_int64(ins, 9, mv[k].internaldate);
		sqlite3_bind_int64(ins, 10, (sqlite3_int64)++d->highestmodseq);
		free(file);
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, d->id);
		sqlite3_bind_text(del, 2, mv[k].base, -1, SQLITE_STATIC);
		if (mbox_step(ins) != SQLITE_DONE || mbox_step(del) != SQLITE_DONE) {
			r = mbox_db_err(d, "insert message");
			goto fail;
		}
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	ins = del = NULL;
	if (sqlite3_prepare_v2(d->db, "UPDATE mailboxes SET highestmodseq = ?, gen = gen + 1 WHERE id = ?", -1, &ins,
			       NULL) != SQLITE_OK) {
		r = mbox_db_err(d, "prepare");
		goto fail;
	}
	sqlite3_bind_int64(ins, 1, (sqlite3_int64)d->highestmodseq);
	sqlite3_bind_int64(ins, 2, d->id);
	if (mbox_step(ins) != SQLITE_DONE) {
		r = mbox_db_err(d, "update mailbox");
		goto fail;
	}
	sqlite3_finalize(ins);
	return mbox_exec(d, "COMMIT") < 0 ? (mbox_exec(d, "ROLLBACK"), -EIO) : 0;
fail:
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	mbox_exec(d, "ROLLBACK");
	return r;
}

/*
 * A move in three steps under the target folder's exclusive lock (every
 * UID given in that folder is given under it, shared): (1) the new UIDs and
 * the keywords are committed durably to the target's "incoming" rows; (2)
 * each file is renamed into the target's cur/, directories fsync'd; (3) the
 * rows become messages. A message is in one folder at every moment. A
 * crash after (1) leaves rows whose files never came (the next sync drops
 * them: UIDs burnt, never reused); after (2), files whose UIDs and keywords
 * the next sync takes from "incoming": the COPYUID already sent stays true.
 */
int mbox_move(struct mbox *src, const uint32_t *uids, size_t n, const char *dst_name, const char *host,
	      uint32_t *uidvalidity_r, uint32_t *dst_uids_r)
{
	struct mbox *d = xcalloc(1, sizeof(*d));
	struct mbox_dirs sd = MBOX_DIRS_INIT, dd = MBOX_DIRS_INIT;
	struct moving *mv = xcalloc(n ? n : 1, sizeof(*mv));
	int r;

	d->maildir = xstrdup(src->maildir);
	d->name = xstrdup(dst_name);
	if (mbox_folder_path(src->maildir, dst_name, &d->dir) < 0) {
		r = -EINVAL;
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		if (mbox_find(src, uids[k]) < 0) {
			r = -ENOENT;
			goto out;
		}
	}
	if ((r = mbox_dirs_open(d->dir, &dd, false)) < 0 || (r = mbox_dirs_open(src->dir, &sd, false)) < 0) {
		if (r == -ENOTDIR)
			r = -ENOENT;
		goto out;
	}
	if (dd.cur < 0) {
		r = -ENOENT;
		goto out;
	}
	if (flock(dd.dir, LOCK_EX) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = mbox_index_open(d->maildir, &d->db, &d->ident)) < 0)
		goto out;
	mbox_durable(d, true);   /* the UIDs go to the client in COPYUID */
	/* Rows reserved here and left by a failure below are dropped by the
	 * next sync of the target (their UIDs burnt, never reused). */
	if ((r = reserve_incoming(d, src, uids, n, host, mv, dst_uids_r)) < 0)
		goto out;
	mbox_durable(d, false);
	for (size_t k = 0; k < n; k++) {
		const char *from;
		int at, e;

		for (int attempt = 0;; attempt++) {
			at = mbox_dirs_at(&sd, mv[k].from, &from);
			if (FAILPOINT_ERRNO("storage/mailbox-save/rename"))
				e = errno;
			else
				e = at >= 0 && renameat(at, from, dd.cur, mv[k].to) == 0 ? 0 : at < 0 ? ENOENT : errno;
			if (e != ENOENT || attempt > 0)
				break;
			/* Renamed by another reader (a flag change): find it again. */
			ssize_t i = mbox_find(src, uids[k]);
			if (mbox_relocate(src, (size_t)i) < 0)
				break;
			free(mv[k].from);
			mv[k].from = xstrdup(src->msgs[i].file);
		}
		if (e) {
			r = e == ENOSPC || e == EDQUOT ? -ENOSPC : -e;
			goto out;
		}
		mv[k].moved = 1;
	}
	/* The renames are on disk (both directories) before the client hears
	 * of them; if not, they are taken back and the move did not happen. */
	if (FAILPOINT_ERRNO("storage/mailbox-save/fsync-dir") || fsync(dd.cur) < 0 ||
	    (sd.new >= 0 && fsync(sd.new) < 0) || (sd.cur >= 0 && fsync(sd.cur) < 0)) {
		r = -errno;
		goto out;
	}
	for (size_t k = 0; k < n; k++)
		mv[k].moved = 0;   /* done: nothing to take back */
	/* From here the move has happened whatever fails: the next sync of
	 * the target takes the files with their "incoming" rows. */
	if (settle_incoming(d, mv, n, dst_uids_r) < 0)
		log_warn("store", NULL, "moved files not in the target index yet maildir=%s folder=%s", d->maildir,
			 dst_name);
	*uidvalidity_r = d->uidvalidity;
	if (mbox_forget(src, uids, n) < 0)
		log_warn("store", NULL, "moved files not out of the source index yet maildir=%s count=%zu",
			 src->maildir, n);
	r = 0;
out:
	if (r < 0) {
		undo_moves(&sd, dd.cur, mv, n, src->maildir);
		if (dd.cur >= 0)
			fsync(dd.cur);
	}
	mbox_durable(d, false);
	mbox_close(&d);
	mbox_dirs_close(&sd);
	mbox_dirs_close(&dd);   /* and the lock with it */
	for (size_t k = 0; k < n; k++) {
		free(mv[k].from);
		free(mv[k].to);
		free(mv[k].keywords);
	}
	free(mv);
	return r;
}
