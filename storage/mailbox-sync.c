/*
 * The sync of a folder: the index brought in line with its Maildir (new
 * files get the next UIDs, vanished files are expunged, flags renamed by
 * other readers are taken over), skipped when neither new/ nor cur/ moved.
 */
#include "storage/mailbox-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"

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

static int measure(int dirfd, const char *name, uint64_t *size_r, uint64_t *vsize_r, int64_t *mtime_r)
{
	struct stat st;
	char buf[65536];
	uint64_t bare = 0;
	char prev = 0;
	ssize_t n;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno == ELOOP ? -ENOENT : -errno;   /* a symlink is no message of ours */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = S_ISREG(st.st_mode) ? -errno : -ENOENT;
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

static int64_t mtime_ns(int fd)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

static int scan_dir(int fd, int in_cur, struct found **list, size_t *n, size_t *cap)
{
	DIR *d;
	struct dirent *e;

	/* A new open file description: the caller keeps fd. */
	fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
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
		(*list)[*n].in_cur = in_cur;
		(*list)[*n].seen = 0;
		/* Once here, not in every comparison of the sort. */
		(*list)[*n].has_key = parse_name_key(e->d_name, (*list)[*n].key);
		(*n)++;
	}
	closedir(d);
	return 0;
}

int mbox_load_row(struct mbox *m)
{
	sqlite3_stmt *st;
	int r;

	if (sqlite3_prepare_v2(m->db, "SELECT id, uidvalidity, uidnext, highestmodseq, first_recent_uid, "
			       "sync_new_ns, sync_cur_ns FROM mailboxes WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
		return mbox_db_err(m, "prepare");
	sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
	r = mbox_step(st);
	if (r == SQLITE_ROW) {
		m->id = sqlite3_column_int64(st, 0);
		m->uidvalidity = (uint32_t)sqlite3_column_int64(st, 1);
		mbox_uidvalidity_seen(m->uidvalidity);
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
		return mbox_db_err(m, "select mailbox");
	/* First sight of this folder (or a rebuilt index): a new UIDVALIDITY,
	 * never one this index handed out before (a folder deleted and created
	 * again in the same second must not get its old one back). */
	m->uidvalidity = mbox_uidvalidity_next(0);
	if (sqlite3_prepare_v2(m->db, "SELECT value FROM meta WHERE key = 'last_uidvalidity'", -1, &st, NULL) ==
	    SQLITE_OK) {
		if (mbox_step(st) == SQLITE_ROW && (uint32_t)sqlite3_column_int64(st, 0) >= m->uidvalidity)
			m->uidvalidity = mbox_uidvalidity_next((uint32_t)sqlite3_column_int64(st, 0) + 1);
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(m->db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_uidvalidity', ?)", -1,
			       &st, NULL) != SQLITE_OK)
		return mbox_db_err(m, "prepare");
	sqlite3_bind_int64(st, 1, m->uidvalidity);
	r = mbox_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return mbox_db_err(m, "update meta");
	m->uidnext = 1;
	m->highestmodseq = 1;
	m->recent_from = 1;
	m->sync_new_ns = m->sync_cur_ns = 0;
	if (sqlite3_prepare_v2(m->db, "INSERT INTO mailboxes (name, uidvalidity, uidnext, highestmodseq, "
			       "first_recent_uid) VALUES (?, ?, 1, 1, 1)", -1, &st, NULL) != SQLITE_OK)
		return mbox_db_err(m, "prepare");
	sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, m->uidvalidity);
	r = mbox_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return mbox_db_err(m, "insert mailbox");
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
int mbox_sync(struct mbox *m)
{
	struct found *files = NULL;
	size_t n_files = 0, cap = 0;
	struct row *rows = NULL;
	size_t n_rows = 0, rows_cap = 0, *htab = NULL, hcap = 0;
	sqlite3_stmt *sel = NULL, *del = NULL, *exp = NULL, *upd = NULL, *ins = NULL, *inc = NULL;
	int64_t new_ns = 0, cur_ns = 0, now_ns, old_new_ns, old_cur_ns;
	uint32_t old_recent;
	struct timespec now;
	struct mbox_dirs d = MBOX_DIRS_INIT;
	int r;

	r = mbox_dirs_open(m->dir, &d, false);
	if (r < 0)
		return r;
	/* UIDs are given under the folder's lock (mailbox-save.c's MOVE
	 * holds it exclusively while its files are on the way). */
	if (flock(d.dir, LOCK_SH) < 0) {
		r = -errno;
		mbox_dirs_close(&d);
		return r;
	}
	mbox_durable(m, true);   /* it may give UIDs */
	r = mbox_exec(m, "BEGIN IMMEDIATE");
	if (r < 0) {
		mbox_durable(m, false);
		mbox_dirs_close(&d);
		return r;
	}
	m->wrote = 0;
	r = mbox_load_row(m);
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
	new_ns = mtime_ns(d.new);
	cur_ns = mtime_ns(d.cur);
	m->scanned = 0;
	if (new_ns && cur_ns && new_ns == m->sync_new_ns && cur_ns == m->sync_cur_ns)
		goto update_row;
	m->scanned = 1;
	if ((d.new >= 0 && (r = scan_dir(d.new, 0, &files, &n_files, &cap)) < 0) ||
	    (d.cur >= 0 && (r = scan_dir(d.cur, 1, &files, &n_files, &cap)) < 0))
		goto fail;

	if (sqlite3_prepare_v2(m->db, "SELECT uid, flags, base, file FROM messages WHERE mailbox_id = ?",
			       -1, &sel, NULL) != SQLITE_OK) {
		r = mbox_db_err(m, "prepare");
		goto fail;
	}
	sqlite3_bind_int64(sel, 1, m->id);
	while ((r = mbox_step(sel)) == SQLITE_ROW) {
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
		r = mbox_db_err(m, "select messages");
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
			       "internaldate, modseq, keywords) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &ins,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(m->db, "SELECT uid, keywords, internaldate FROM incoming WHERE mailbox_id = ? AND "
			       "base = ?", -1, &inc, NULL) != SQLITE_OK) {
		r = mbox_db_err(m, "prepare");
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
		if (mbox_step(upd) != SQLITE_DONE) {
			r = mbox_db_err(m, "update message");
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
		if (mbox_step(del) != SQLITE_DONE || mbox_step(exp) != SQLITE_DONE) {
			r = mbox_db_err(m, "expunge");
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
		char file[PATH_MAX];
		uint64_t size = 0, vsize = 0;
		int64_t mtime = 0;

		/* The stand-in of a session gives no UID (struct mbox). */
		if (files[i].seen || m->known_only)
			break;
		/* The same base twice (a crash between link and unlink): take it once. */
		if (i > 0 && strcmp(files[i].base, files[i - 1].base) == 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s", files[i].in_cur ? "cur" : "new", files[i].name);
		r = measure(files[i].in_cur ? d.cur : d.new, files[i].name, &size, &vsize, &mtime);
		if (r == -ENOENT)
			continue; /* expunged by someone else meanwhile */
		if (r < 0)
			goto fail;
		if (name_size(files[i].name, 'W') && name_size(files[i].name, 'S') == size)
			vsize = name_size(files[i].name, 'W');
		/* A moved file whose move did not finish (a crash): the UID
		 * and keywords the move wrote down before renaming it. */
		uint32_t uid = m->uidnext;
		sqlite3_reset(inc);
		sqlite3_bind_int64(inc, 1, m->id);
		sqlite3_bind_text(inc, 2, files[i].base, -1, SQLITE_STATIC);
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 10, "", -1, SQLITE_STATIC);
		if (mbox_step(inc) == SQLITE_ROW && (uint32_t)sqlite3_column_int64(inc, 0) < m->uidnext) {
			uid = (uint32_t)sqlite3_column_int64(inc, 0);
			sqlite3_bind_text(ins, 10, (const char *)sqlite3_column_text(inc, 1), -1, SQLITE_TRANSIENT);
			mtime = sqlite3_column_int64(inc, 2);
		}
		sqlite3_bind_int64(ins, 1, m->id);
		sqlite3_bind_int64(ins, 2, uid);
		sqlite3_bind_text(ins, 3, files[i].base, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 4, file, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(ins, 5, files[i].in_cur ? mbox_info_to_flags(files[i].name) : 0);
		sqlite3_bind_int64(ins, 6, (sqlite3_int64)size);
		sqlite3_bind_int64(ins, 7, (sqlite3_int64)vsize);
		sqlite3_bind_int64(ins, 8, mtime);
		sqlite3_bind_int64(ins, 9, (sqlite3_int64)++m->highestmodseq);
		r = mbox_step(ins);
		sqlite3_reset(inc);
		if (r != SQLITE_DONE) {
			r = mbox_db_err(m, "insert message");
			goto fail;
		}
		if (uid == m->uidnext)
			m->uidnext++;
		m->wrote = 1;
	}
	/* Under the folder's lock no move is on its way: what is left of
	 * "incoming" is from a move that never renamed its files. */
	if (!m->known_only) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(m->db, "DELETE FROM incoming WHERE mailbox_id = ?", -1, &st, NULL) !=
		    SQLITE_OK) {
			r = mbox_db_err(m, "prepare");
			goto fail;
		}
		sqlite3_bind_int64(st, 1, m->id);
		r = mbox_step(st);
		sqlite3_finalize(st);
		if (r != SQLITE_DONE) {
			r = mbox_db_err(m, "drop incoming");
			goto fail;
		}
		if (sqlite3_changes(m->db) > 0)
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
			mbox_recent_add(m, m->recent_from, m->uidnext);
			first_recent = m->uidnext;
		}
		/* Nothing to write (a SELECT of an unchanged folder): no WAL frame. */
		if (!m->wrote && first_recent == old_recent && m->sync_new_ns == old_new_ns &&
		    m->sync_cur_ns == old_cur_ns)
			goto commit;
		if (sqlite3_prepare_v2(m->db, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, "
				       "first_recent_uid = ?, sync_new_ns = ?, sync_cur_ns = ?, gen = gen + ? "
				       "WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
			r = mbox_db_err(m, "prepare");
			goto fail;
		}
		sqlite3_bind_int64(st, 1, m->uidnext);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)m->highestmodseq);
		sqlite3_bind_int64(st, 3, first_recent);
		sqlite3_bind_int64(st, 4, m->sync_new_ns);
		sqlite3_bind_int64(st, 5, m->sync_cur_ns);
		sqlite3_bind_int64(st, 6, m->wrote ? 1 : 0);
		sqlite3_bind_int64(st, 7, m->id);
		r = mbox_step(st);
		sqlite3_finalize(st);
		if (r != SQLITE_DONE) {
			r = mbox_db_err(m, "update mailbox");
			goto fail;
		}
	}
commit:
	r = mbox_exec(m, "COMMIT");
	if (r < 0)
		goto fail;
	r = 0;
	goto out;
fail:
	mbox_exec(m, "ROLLBACK");
out:
	mbox_durable(m, false);
	mbox_dirs_close(&d);
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	sqlite3_finalize(del);
	sqlite3_finalize(exp);
	sqlite3_finalize(ins);
	sqlite3_finalize(inc);
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
