/* Unit tests of the mailbox index: UIDs, flags in file names, expunge, refresh;
 * file modes, a corrupt, deleted or replaced index, symbolic links, and the
 * in-memory stand-in when the index cannot be written. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/folder.h"
#include "storage/mailbox.h"
#include "storage/maildir.h"
#include "storage/storage-private.h"

#ifdef FIU_ENABLE
#include <fiu.h>
#include <fiu-control.h>
#endif

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static char root[256];

static void put_in(const char *dir, const char *sub, const char *name, const char *text);

static void put(const char *sub, const char *name, const char *text)
{
	put_in(root, sub, name, text);
}

static int exists(const char *sub, const char *name)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s/%s", root, sub, name);
	return access(path, F_OK) == 0;
}

/* ---- helpers for the tests below: each in its own Maildir under root ---- */

static char *mk(const char *name)
{
	char *p = malloc(1024);

	snprintf(p, 1024, "%s/%s", root, name);
	if (maildir_create(p) < 0) {
		perror(p);
		exit(2);
	}
	return p;
}

static void put_in(const char *dir, const char *sub, const char *name, const char *text)
{
	char path[1024];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	fp = fopen(path, "w");
	if (!fp) {
		perror(path);
		exit(2);
	}
	fputs(text, fp);
	fclose(fp);
}

/* dir/name in a static buffer (one of four, for use in one expression). */
static char *xpath(const char *dir, const char *name)
{
	static char bufs[4][1024];
	static int k;
	char *p = bufs[k++ % 4];

	snprintf(p, 1024, "%s/%s", dir, name);
	return p;
}

static mode_t mode_of(const char *dir, const char *name)
{
	char path[1024];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

/* How many entries of dir start with prefix. */
static int count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

/* Folds the WAL into the database file (as SQLite's automatic checkpoint
 * does), so that the file holds every page: garbage written to it is then
 * read. */
static void checkpoint(const char *dir)
{
	char path[1024];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/buzon-index.db", dir);
	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
}

static void garble(const char *dir, const char *name)
{
	char path[1024], junk[8192];
	FILE *fp;

	checkpoint(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	/* In place (same inode), as a disk fault or a stray write would. */
	fp = fopen(path, "r+");
	if (!fp) {
		perror(path);
		exit(2);
	}
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	fwrite(junk, 1, sizeof(junk), fp);
	fclose(fp);
}

/* Index files are 0600 whatever the umask (SQLite would make them 0644),
 * and an index left 0644 by an older version is made 0600. */
static void test_index_modes(void)
{
	char *a = mk("modes-a"), *b = mk("modes-b"), err[256], path[1024];
	struct mbox *m = NULL;
	mode_t old = umask(0);

	put_in(a, "new", "1.M1P1Q1.h", "a: b\n\nc\n");
	CHECK(mbox_open(a, "INBOX", 0, &m, err, sizeof(err)) == 0);
	CHECK(m && mbox_set_flags(m, 0, MBOX_SEEN, "Key") == 0);
	CHECK(mode_of(a, "buzon-index.db") == 0600);
	CHECK(mode_of(a, "buzon-index.db-wal") == 0600);
	CHECK(mode_of(a, "buzon-index.db-shm") == 0600);
	mbox_close(&m);

	snprintf(path, sizeof(path), "%s/buzon-index.db", b);
	close(open(path, O_WRONLY | O_CREAT, 0644));
	chmod(path, 0644);
	CHECK(mbox_open(b, "INBOX", 0, &m, err, sizeof(err)) == 0);
	CHECK(mode_of(b, "buzon-index.db") == 0600);
	CHECK(mode_of(b, "buzon-index.db-wal") == 0600);
	mbox_close(&m);
	umask(old);
	free(a);
	free(b);
}

/* An index overwritten with garbage, at open and under an open session;
 * an index deleted while in use. No message is lost, the next open tells
 * a new UIDVALIDITY (even in the same second), the broken file is kept
 * aside, and a session that had the old file keeps its UIDs. */
static void test_index_damage(void)
{
	char *d = mk("damage"), err[256];
	struct mbox *m = NULL, *s = NULL;
	struct mbox_changes ch;
	uint32_t v0, v1, v2, uids[1];
	size_t done;

	put_in(d, "new", "1.M1P1Q1.h", "a: 1\n\nx\n");
	put_in(d, "new", "2.M1P1Q2.h", "a: 2\n\nx\n");
	put_in(d, "cur", "3.M1P1Q3.h:2,S", "a: 3\n\nx\n");
	CHECK(mbox_open(d, "INBOX", 0, &m, err, sizeof(err)) == 0);
	v0 = m ? mbox_uidvalidity(m) : 0;
	mbox_close(&m);   /* its connection goes to the pool */

	/* Garbage at open: the pooled connection must not serve it. */
	garble(d, "buzon-index.db");
	CHECK(mbox_open(d, "INBOX", 0, &m, err, sizeof(err)) == 0);
	CHECK(m && mbox_count(m) == 3);
	v1 = m ? mbox_uidvalidity(m) : 0;
	CHECK(v1 != v0 && v1 > v0);
	CHECK(count_prefix(d, "buzon-index.db.corrupt-") >= 1);
	CHECK(m && mbox_get(m, 2)->flags == MBOX_SEEN);   /* flags from the names */
	mbox_close(&m);

	/* Garbage under an open session: it keeps its list and UIDs, and can
	 * still expunge; the next open rebuilds under a new UIDVALIDITY. */
	CHECK(mbox_open(d, "INBOX", 0, &s, err, sizeof(err)) == 0);
	garble(d, "buzon-index.db");
	CHECK(s && mbox_refresh(s, &ch) == 0);
	CHECK(s && mbox_count(s) == 3 && mbox_uidvalidity(s) == v1);
	uids[0] = s ? mbox_get(s, 0)->uid : 0;
	CHECK(s && mbox_expunge(s, uids, 1, &done) == 0 && done == 1);
	CHECK(s && mbox_refresh(s, &ch) == 0 && ch.n_expunged == 1 && mbox_count(s) == 2);
	CHECK(mbox_open(d, "INBOX", 0, &m, err, sizeof(err)) == 0);
	v2 = m ? mbox_uidvalidity(m) : 0;
	CHECK(m && mbox_count(m) == 2 && v2 != v1 && v2 > v1);
	CHECK(count_prefix(d, "buzon-index.db.corrupt-") == 2 * 3);   /* both kept, with -wal and -shm */
	mbox_close(&m);
	mbox_close(&s);

	/* Deleted (the database alone, its -wal and -shm left behind) while a
	 * session has it: a new index, the old WAL not replayed into it. */
	CHECK(mbox_open(d, "INBOX", 0, &s, err, sizeof(err)) == 0);
	CHECK(s && mbox_set_flags(s, 0, MBOX_FLAGGED, NULL) == 0);
	{
		char path[1024];
		snprintf(path, sizeof(path), "%s/buzon-index.db", d);
		CHECK(unlink(path) == 0);
	}
	CHECK(mbox_open(d, "INBOX", 0, &m, err, sizeof(err)) == 0);
	CHECK(m && mbox_count(m) == 2 && mbox_uidvalidity(m) > v2);
	CHECK(m && mbox_get(m, 0)->flags == MBOX_FLAGGED);
	CHECK(count_prefix(d, "buzon-index.db.orphan-") >= 1);
	mbox_close(&m);
	CHECK(s && mbox_refresh(s, &ch) == 0 && mbox_count(s) == 2 && mbox_uidvalidity(s) == v2);
	mbox_close(&s);
	free(d);
}

/* Symbolic links in a folder's path: refused (-ELOOP), nothing written or
 * read through them. */
static void test_mailbox_symlinks(void)
{
	char *d = mk("links"), *out = mk("links-out"), err[256], path[1024], target[1024];
	struct mbox *m = NULL;
	uint32_t uv, uid, uids[1], dst[1];
	size_t done;

	CHECK(maildir_create_folder(d, "Sent") == 0 && maildir_create_folder(d, "Box") == 0);
	put_in(out, "cur", "9.M9P9Q9.h:2,S", "secret: 1\n\nx\n");
	put_in(d, "new", "1.M1P1Q1.h", "a: 1\n\nx\n");

	/* cur/ of a folder is a link to another Maildir's cur/. */
	snprintf(path, sizeof(path), "%s/.Sent/cur", d);
	snprintf(target, sizeof(target), "%s/cur", out);
	CHECK(rmdir(path) == 0 && symlink(target, path) == 0);
	CHECK(mbox_open(d, "Sent", 0, &m, err, sizeof(err)) == -ELOOP);
	CHECK(mbox_append(d, "Sent", "a: b\n\nc\n", 8, 0, "", 0, "h", &uv, &uid) == -ELOOP);
	CHECK(count_prefix(target, "") == 3);   /* ".", ".." and the one message */

	/* tmp/ of a folder: APPEND refused, nothing written there. */
	snprintf(path, sizeof(path), "%s/.Box/tmp", d);
	snprintf(target, sizeof(target), "%s/tmp", out);
	CHECK(rmdir(path) == 0 && symlink(target, path) == 0);
	CHECK(mbox_append(d, "Box", "a: b\n\nc\n", 8, 0, "", 0, "h", &uv, &uid) == -ELOOP);
	CHECK(count_prefix(target, "") == 2);

	/* COPY into it, STORE and EXPUNGE after cur/ became a link under an
	 * open session: refused, the target untouched. */
	CHECK(mbox_open(d, "INBOX", 0, &m, err, sizeof(err)) == 0);
	if (m) {
		uids[0] = mbox_get(m, 0)->uid;
		CHECK(mbox_copy(m, uids, 1, "Box", "h", &uv, dst) == -ELOOP);
		CHECK(mbox_copy(m, uids, 1, "Sent", "h", &uv, dst) == -ELOOP);
		snprintf(path, sizeof(path), "%s/cur", d);
		snprintf(target, sizeof(target), "%s/cur", out);
		CHECK(rename(path, xpath(d, "cur.real")) == 0 && symlink(target, path) == 0);
		CHECK(mbox_set_flags(m, 0, MBOX_SEEN, NULL) < 0);
		CHECK(mbox_expunge(m, uids, 1, &done) < 0);
		CHECK(count_prefix(target, "") == 3);
		CHECK(unlink(path) == 0 && rename(xpath(d, "cur.real"), path) == 0);
		mbox_close(&m);
	}

	/* The index file itself is a link: refused, the target not written. */
	{
		char *e = mk("links-index");
		snprintf(path, sizeof(path), "%s/buzon-index.db", e);
		snprintf(target, sizeof(target), "%s/not-an-index", out);
		put_in(out, "", "not-an-index", "keep");
		CHECK(symlink(target, path) == 0);
		CHECK(mbox_open(e, "INBOX", 0, &m, err, sizeof(err)) == -ELOOP);
		mbox_close(&m);
		CHECK(mode_of(out, "not-an-index") != (mode_t)-1);
		{
			FILE *fp = fopen(target, "r");
			char buf[16] = "";
			CHECK(fp && fgets(buf, sizeof(buf), fp) && strcmp(buf, "keep") == 0);
			if (fp)
				fclose(fp);
		}
		free(e);
	}

	/* A folder that is a link is no folder: not listed, not made through. */
	{
		char **names = NULL;
		snprintf(path, sizeof(path), "%s/.Linked", d);
		CHECK(symlink(out, path) == 0);
		CHECK(folder_list(d, &names) > 0 && names);
		for (size_t i = 0; names && names[i]; i++)
			CHECK(strcmp(names[i], "Linked") != 0);
		folder_list_free(names);
		CHECK(!folder_exists(d, "Linked"));
		CHECK(folder_create(d, "Linked") == -ELOOP);
		CHECK(folder_delete(d, "Linked") == -ENOENT);
		CHECK(folder_rename(d, "Linked", "Other") == -ENOENT);
		CHECK(mode_of(out, "maildirfolder") == (mode_t)-1);
		CHECK(count_prefix(out, "") == 5 + 1);   /* . .. tmp new cur not-an-index */
	}
	free(d);
	free(out);
}

/* MOVE renames: the files leave the source, arrive in the target with
 * their flags and keywords under the UIDs reported, and the index of the
 * target agrees after a new open. */
static void test_move(void)
{
	char *d = mk("move"), err[256];
	struct mbox *m = NULL, *t = NULL;
	uint32_t uids[2], dst[2], uv = 0;

	CHECK(maildir_create_folder(d, "Sent") == 0);
	put_in(d, "new", "1.M1P1Q1.h", "a: 1\n\nx\n");
	put_in(d, "new", "2.M1P1Q2.h", "a: 2\n\nx\n");
	put_in(d, "new", "3.M1P1Q3.h", "a: 3\n\nx\n");
	CHECK(mbox_open(d, "INBOX", 0, &m, err, sizeof(err)) == 0);
	if (!m)
		return;
	CHECK(mbox_set_flags(m, 0, MBOX_SEEN, "Work") == 0);
	uids[0] = mbox_get(m, 0)->uid;
	uids[1] = mbox_get(m, 2)->uid;
	CHECK(mbox_move(m, uids, 2, "Sent", "h", &uv, dst) == 0);
	CHECK(count_prefix(xpath(d, "cur"), "1.M1P1Q1.h") == 0 && count_prefix(xpath(d, "new"), "3.") == 0);
	CHECK(count_prefix(xpath(d, ".Sent/cur"), "") == 4);
	CHECK(mbox_refresh(m, NULL) == 0 && mbox_count(m) == 1);
	CHECK(mbox_open(d, "Sent", 0, &t, err, sizeof(err)) == 0);
	if (t) {
		CHECK(mbox_uidvalidity(t) == uv && mbox_count(t) == 2);
		CHECK(mbox_get(t, 0)->uid == dst[0] && mbox_get(t, 1)->uid == dst[1]);
		CHECK(mbox_get(t, 0)->flags == MBOX_SEEN && strcmp(mbox_get(t, 0)->keywords, "Work") == 0);
		CHECK(mbox_get(t, 1)->flags == 0 && strcmp(mbox_get(t, 1)->keywords, "") == 0);
	}
	mbox_close(&t);
	/* A message gone meanwhile: nothing moves. */
	uids[0] = 999;
	CHECK(mbox_move(m, uids, 1, "Sent", "h", &uv, dst) == -ENOENT);
	mbox_close(&m);
	free(d);
}

#ifdef FIU_ENABLE
/* Another session of test_append_race: opens the folder (a sync), marks
 * the appended message \Deleted and expunges it, as an IMAP client's
 * STORE and EXPUNGE would. */
static struct {
	const char *dir;
	uint32_t before;        /* the folder's UIDNEXT before the APPEND */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int started, done;
	uint32_t uid;           /* the UID that session saw on the appended message */
} race = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void *race_session(void *arg)
{
	struct mbox *o = NULL;
	char err[256];
	size_t done;

	(void)arg;
	if (mbox_open(race.dir, "INBOX", 0, &o, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < mbox_count(o); i++) {
			uint32_t uid = mbox_get(o, i)->uid;
			if (uid < race.before)
				continue;
			race.uid = uid;
			if (mbox_set_flags(o, i, MBOX_DELETED, NULL) == 0)
				mbox_expunge(o, &uid, 1, &done);
			break;
		}
		mbox_close(&o);
	}
	pthread_mutex_lock(&race.lock);
	race.done = 1;
	pthread_cond_signal(&race.cond);
	pthread_mutex_unlock(&race.lock);
	return NULL;
}

/* At the APPEND's fsync of cur/ (its file is in cur/ by then): the other
 * session runs, and gets up to a second to finish. */
static int race_point(const char *name, int *failnum, void **failinfo, unsigned int *flags)
{
	struct timespec until;

	(void)name, (void)failnum, (void)failinfo, (void)flags;
	if (race.started)
		return 0;
	race.started = 1;
	if (pthread_create(&race.thread, NULL, race_session, NULL) != 0) {
		race.started = 0;
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	pthread_mutex_lock(&race.lock);
	while (!race.done && pthread_cond_timedwait(&race.cond, &race.lock, &until) == 0)
		;
	pthread_mutex_unlock(&race.lock);
	return 0;   /* the step itself does not fail */
}

/*
 * An APPEND whose file another session sees before the APPEND has its
 * row: that session's sync ran, and it expunged the message, between the
 * file's arrival in cur/ and its indexing. The message has one UID all the
 * same: the one the APPEND answers is the one the other session saw, and
 * UIDNEXT moved by one (it moved by two when the sync gave the file a UID
 * and the APPEND then gave the expunged file another).
 */
static void test_append_race(void)
{
	char *d = mk("append-race"), err[256];
	struct mbox *m = NULL;
	uint32_t uv = 0, uid = 0, next;

	put_in(d, "new", "1.M1P1Q1.h", "a: 1\n\nx\n");
	CHECK(mbox_open(d, "INBOX", 0, &m, err, sizeof(err)) == 0);
	if (!m)
		return;
	next = mbox_uidnext(m);
	mbox_close(&m);
	race.dir = d;
	race.before = next;
	fiu_enable_external("storage/mailbox-save/fsync-dir", 1, NULL, 0, race_point);
	CHECK(mbox_append(d, "INBOX", "a: b\n\nc\n", 8, MBOX_SEEN, "", 0, "h", &uv, &uid) == 0);
	fiu_disable("storage/mailbox-save/fsync-dir");
	CHECK(race.started);
	if (race.started)
		pthread_join(race.thread, NULL);
	CHECK(race.done && race.uid == uid && uid == next);
	CHECK(mbox_open(d, "INBOX", 0, &m, err, sizeof(err)) == 0);
	if (m) {
		CHECK(mbox_uidnext(m) == next + 1);
		CHECK(mbox_count(m) == 1 && mbox_get(m, 0)->uid == 1);
	}
	mbox_close(&m);
	CHECK(count_prefix(xpath(d, "cur"), "") == 2 && count_prefix(xpath(d, "tmp"), "") == 2);
	free(d);
}

/* The index file cannot be written (each step of it in turn): system
 * flags and expunge go on through the stand-in, the Maildir carries the
 * change and the index file takes it at its next sync; keywords are
 * refused and nothing is renamed; APPEND is refused and leaves no file. */
static void test_index_faults(void)
{
	static const char *const points[] = {
		"storage/mailbox-index/begin", "storage/mailbox-index/step", "storage/mailbox-index/commit",
	};
	char err[256];

	for (size_t p = 0; p < sizeof(points) / sizeof(points[0]); p++) {
		char name[64], *d;
		struct mbox *m = NULL, *n = NULL;
		uint32_t uv, uid, uids[1];
		size_t done;

		snprintf(name, sizeof(name), "faults-%zu", p);
		d = mk(name);
		put_in(d, "new", "1.M1P1Q1.h", "a: 1\n\nx\n");
		put_in(d, "new", "2.M1P1Q2.h", "a: 2\n\nx\n");
		CHECK(mbox_open(d, "INBOX", 0, &m, err, sizeof(err)) == 0);
		if (!m)
			continue;
		fiu_enable(points[p], ENOSPC, NULL, 0);
		CHECK(mbox_set_flags(m, 0, MBOX_DELETED, NULL) == 0);
		CHECK(count_prefix(xpath(d, "cur"), "1.M1P1Q1.h:2,T") == 1);
		CHECK(mbox_set_flags(m, 1, MBOX_SEEN, "Kw") == -ENOSPC);
		CHECK(count_prefix(xpath(d, "new"), "2.M1P1Q2.h") == 1);
		uids[0] = mbox_get(m, 0)->uid;
		CHECK(mbox_expunge(m, uids, 1, &done) == 0 && done == 1);
		CHECK(count_prefix(xpath(d, "cur"), "1.M1P1Q1.h") == 0);
		CHECK(mbox_append(d, "INBOX", "a: b\n\nc\n", 8, 0, "", 0, "h", &uv, &uid) < 0);
		CHECK(count_prefix(xpath(d, "cur"), "") == 2 && count_prefix(xpath(d, "tmp"), "") == 2);
		/* Reading goes on: a new session of the same folder. */
		CHECK(mbox_open(d, "INBOX", 0, &n, err, sizeof(err)) == 0 && n && mbox_count(n) == 1);
		mbox_close(&n);
		fiu_disable(points[p]);
		CHECK(mbox_refresh(m, NULL) == 0 && mbox_count(m) == 1);
		mbox_close(&m);
		/* The file catches up: the expunge and nothing else. */
		CHECK(mbox_open(d, "INBOX", 0, &n, err, sizeof(err)) == 0 && n && mbox_count(n) == 1);
		CHECK(n && mbox_get(n, 0)->uid == 2 && mbox_get(n, 0)->flags == 0);
		mbox_close(&n);
		free(d);
	}
}
#endif

int main(void)
{
	struct mbox *m = NULL;
	struct mbox_changes ch;
	char err[256], path[1024], info[8];
	uint32_t uidvalidity, uids[2];
	size_t done;
	int fd;

	snprintf(root, sizeof(root), "/tmp/buzon-mbox-XXXXXX");
	if (!mkdtemp(root))
		return 2;
	storage_set_root(root);
#ifdef FIU_ENABLE
	fiu_init(0);
#endif
	for (const char *const *d = (const char *const[]){ "new", "cur", "tmp", ".Sent", ".Sent/new", ".Sent/cur",
							    ".Sent/tmp", NULL }; *d; d++) {
		snprintf(path, sizeof(path), "%s/%s", root, *d);
		mkdir(path, 0700);
	}
	put("new", "1000.M1P1Q1.h,S=10,W=12", "a: b\n\nbody\n");   /* 11 bytes: S= does not match, measured */
	put("new", "1001.M1P1Q2.h,S=7,W=9", "x\n\nyy\n\n");
	put("cur", "0999.M1P1Q0.h:2,S", "old\r\nmail\r\n");

	/* Messages get UIDs in name order; sizes from the file, CRLF counted. */
	CHECK(mbox_open(root, "INBOX", MBOX_TAKE_RECENT, &m, err, sizeof(err)) == 0);
	CHECK(mbox_count(m) == 3);
	CHECK(mbox_get(m, 0)->uid == 1 && mbox_get(m, 1)->uid == 2 && mbox_get(m, 2)->uid == 3);
	CHECK(mbox_get(m, 0)->flags == MBOX_SEEN && mbox_is_recent(m, 0));
	CHECK(mbox_get(m, 0)->size == 11 && mbox_get(m, 0)->vsize == 11);
	CHECK(mbox_get(m, 1)->size == 11 && mbox_get(m, 1)->vsize == 14);
	CHECK(mbox_get(m, 2)->size == 7 && mbox_get(m, 2)->vsize == 9);
	CHECK(mbox_uidnext(m) == 4);
	uidvalidity = mbox_uidvalidity(m);
	CHECK(uidvalidity != 0);
	CHECK(mbox_find(m, 2) == 1 && mbox_find(m, 9) == -1);

	/* Flags go into the file name, the file moves to cur/. */
	CHECK(mbox_set_flags(m, 1, MBOX_SEEN | MBOX_FLAGGED, "$Label1") == 0);
	CHECK(exists("cur", "1000.M1P1Q1.h,S=10,W=12:2,FS"));
	CHECK(!exists("new", "1000.M1P1Q1.h,S=10,W=12"));
	fd = mbox_open_msg(m, 1);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	mbox_close(&m);

	/* Reopen: same UIDs, same UIDVALIDITY, flags and keywords kept; \Recent is gone. */
	CHECK(mbox_open(root, "INBOX", MBOX_TAKE_RECENT, &m, err, sizeof(err)) == 0);
	CHECK(mbox_count(m) == 3 && mbox_uidvalidity(m) == uidvalidity);
	CHECK(mbox_get(m, 1)->uid == 2 && mbox_get(m, 1)->flags == (MBOX_SEEN | MBOX_FLAGGED));
	CHECK(strcmp(mbox_get(m, 1)->keywords, "$Label1") == 0);
	CHECK(!mbox_is_recent(m, 0));

	/* Another reader changes a flag in the name; a delivery arrives; a file vanishes. */
	snprintf(path, sizeof(path), "%s/cur/0999.M1P1Q0.h:2,S", root);
	char to[1024];
	snprintf(to, sizeof(to), "%s/cur/0999.M1P1Q0.h:2,RS", root);
	CHECK(rename(path, to) == 0);
	put("new", "1002.M1P1Q3.h,S=2,W=3", "z\n");
	snprintf(path, sizeof(path), "%s/new/1001.M1P1Q2.h,S=7,W=9", root);
	CHECK(unlink(path) == 0);
	CHECK(mbox_refresh(m, &ch) == 0);
	CHECK(ch.n_new == 1 && ch.n_expunged == 1 && ch.expunged[0] == 3);
	CHECK(ch.n_changed == 1 && ch.changed[0] == 1);
	CHECK(mbox_count(m) == 3 && mbox_get(m, 2)->uid == 4);
	CHECK(mbox_get(m, 0)->flags == (MBOX_SEEN | MBOX_ANSWERED));
	CHECK(mbox_is_recent(m, 2) && !mbox_is_recent(m, 0));

	/* Expunge removes files and index rows; an unknown UID counts as done. */
	uids[0] = 1;
	uids[1] = 4;
	CHECK(mbox_expunge(m, uids, 2, &done) == 0 && done == 2);
	CHECK(!exists("cur", "0999.M1P1Q0.h:2,RS"));
	CHECK(!exists("new", "1002.M1P1Q3.h,S=2,W=3"));
	CHECK(mbox_refresh(m, &ch) == 0 && ch.n_expunged == 2);
	CHECK(mbox_count(m) == 1 && mbox_get(m, 0)->uid == 2);
	mbox_close(&m);

	/* A folder; a missing one; a bad name. */
	CHECK(mbox_open(root, "Sent", 0, &m, err, sizeof(err)) == 0);
	CHECK(mbox_count(m) == 0 && mbox_uidnext(m) == 1);
	mbox_close(&m);
	CHECK(mbox_open(root, "Nope", 0, &m, err, sizeof(err)) == -ENOENT);
	CHECK(mbox_open(root, "../x", 0, &m, err, sizeof(err)) == -EINVAL);

	/* Losing the index loses no mail: UIDs are handed out again under a new UIDVALIDITY. */
	snprintf(path, sizeof(path), "%s/buzon-index.db", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/buzon-index.db-wal", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/buzon-index.db-shm", root);
	unlink(path);
	sleep(1);
	CHECK(mbox_open(root, "INBOX", 0, &m, err, sizeof(err)) == 0);
	CHECK(mbox_count(m) == 1 && mbox_uidvalidity(m) != uidvalidity);
	mbox_close(&m);

	/* Two sessions on one folder share the loaded message list; a change
	 * by one stays its own until the other refreshes; \Recent is per
	 * session; the keyword list follows changes made through any path. */
	{
		struct mbox *a = NULL, *b = NULL, *c = NULL;
		uint32_t uv, uid;

		put("new", "2000.M1P1Q1.h", "k: v\n\nx\n");
		put("new", "2001.M1P1Q2.h", "k: w\n\ny\n");
		CHECK(mbox_open(root, "INBOX", MBOX_TAKE_RECENT, &a, err, sizeof(err)) == 0);
		CHECK(mbox_open(root, "INBOX", MBOX_TAKE_RECENT, &b, err, sizeof(err)) == 0);
		if (a && b) {
			size_t n = mbox_count(a);
			CHECK(n == 3 && mbox_count(b) == 3);
			CHECK(mbox_get(a, 0) == mbox_get(b, 0));   /* one list, not two */
			/* The open after the index was lost took no \Recent: a claims all. */
			CHECK(mbox_recent_count(a) == 3 && mbox_recent_count(b) == 0);
			CHECK(mbox_is_recent(a, 2) && !mbox_is_recent(b, 2));
			CHECK(mbox_first_unseen(a) == 2 && strcmp(mbox_keywords(a), "") == 0);

			CHECK(mbox_set_flags(a, 1, MBOX_SEEN, "Todo $label1") == 0);
			CHECK(mbox_get(a, 1)->flags == MBOX_SEEN && strcmp(mbox_get(a, 1)->keywords, "Todo $label1") == 0);
			CHECK(mbox_get(b, 1)->flags == 0 && strcmp(mbox_get(b, 1)->keywords, "") == 0);
			CHECK(mbox_first_unseen(a) == 3 && mbox_first_unseen(b) == 2);
			CHECK(strcmp(mbox_keywords(a), "Todo $label1") == 0);
			CHECK(mbox_set_flags(a, 2, 0, "$LABEL1 Other") == 0);
			CHECK(strcmp(mbox_keywords(a), "Todo $label1 Other") == 0);

			/* a's write made its list the folder's current one: a new
			 * session shares it rather than reading the rows. */
			CHECK(mbox_open(root, "INBOX", 0, &c, err, sizeof(err)) == 0);
			if (c) {
				CHECK(mbox_get(c, 1) == mbox_get(a, 1));
				CHECK(mbox_get(c, 1)->flags == MBOX_SEEN);
				mbox_close(&c);
			}

			/* b hears of it at its refresh, and only of that. */
			CHECK(mbox_refresh(b, &ch) == 0);
			CHECK(mbox_get(b, 1) == mbox_get(a, 1));
			CHECK(ch.n_changed == 2 && ch.changed[0] == mbox_get(b, 1)->uid && ch.n_new == 0 &&
			      ch.n_expunged == 0);
			CHECK(mbox_get(b, 1)->flags == MBOX_SEEN && strcmp(mbox_keywords(b), "Todo $label1 Other") == 0);

			/* A delivery: b claims it as \Recent; a keeps its own. */
			put("new", "2002.M1P1Q3.h", "k: z\n\nz\n");
			CHECK(mbox_refresh(b, &ch) == 0 && ch.n_new == 1);
			CHECK(mbox_refresh(a, &ch) == 0 && ch.n_new == 1 && ch.n_changed == 0);
			CHECK(mbox_count(a) == 4 && mbox_recent_count(a) == 3 && mbox_recent_count(b) == 1);
			CHECK(mbox_is_recent(b, 3) && !mbox_is_recent(a, 3));

			/* APPEND with a keyword, through its own connection: an open
			 * of the folder afterwards sees the keyword, though a view
			 * of the folder was cached before. */
			CHECK(mbox_append(root, "INBOX", "a: b\n\nc\n", 9, 0, "Later", 0, "h", &uv, &uid) == 0);
			CHECK(mbox_open(root, "INBOX", 0, &c, err, sizeof(err)) == 0);
			if (c) {
				CHECK(mbox_count(c) == 5 && mbox_get(c, 4)->uid == uid);
				CHECK(strcmp(mbox_get(c, 4)->keywords, "Later") == 0);
				CHECK(strcmp(mbox_keywords(c), "Todo $label1 Other Later") == 0);
				mbox_close(&c);
			}
		}
		mbox_close(&a);
		mbox_close(&b);
	}

	/* One message in new/ and cur/ at once (a crash between link and
	 * unlink) is one message, when it is new and when it is known; new
	 * messages get UIDs in name order, whatever order readdir gives. */
	CHECK(mbox_open(root, "INBOX", 0, &m, err, sizeof(err)) == 0);
	if (m) {
		size_t before = mbox_count(m);
		put("new", "3000.M5P1Q1.h", "d: 1\n\nx\n");
		put("cur", "3000.M5P1Q1.h:2,S", "d: 1\n\nx\n");
		put("new", "2999.M9P1Q9.h", "d: 0\n\nx\n");
		put("new", "3000.M10P1Q1.h", "d: 2\n\nx\n");
		CHECK(mbox_refresh(m, &ch) == 0 && ch.n_new == 3);
		CHECK(mbox_count(m) == before + 3);
		if (mbox_count(m) == before + 3) {
			CHECK(strstr(mbox_get(m, before)->file, "2999.M9P1Q9.h") != NULL);
			CHECK(strstr(mbox_get(m, before + 1)->file, "3000.M5P1Q1.h") != NULL);
			CHECK(strstr(mbox_get(m, before + 2)->file, "3000.M10P1Q1.h") != NULL);
		}
		put("new", "3001.M1P1Q1.h", "d: 3\n\nx\n");
		CHECK(mbox_refresh(m, &ch) == 0 && ch.n_new == 1 && ch.n_expunged == 0);
		CHECK(mbox_count(m) == before + 4);
		mbox_close(&m);
	}

	test_index_modes();
	test_index_damage();
	test_mailbox_symlinks();
	test_move();
#ifdef FIU_ENABLE
	test_index_faults();
	test_append_race();
#endif

	mbox_flags_to_info(MBOX_SEEN | MBOX_DRAFT | MBOX_DELETED | MBOX_ANSWERED | MBOX_FLAGGED, info);
	CHECK(strcmp(info, "DFRST") == 0);
	CHECK(mbox_info_to_flags("x:2,ST") == (MBOX_SEEN | MBOX_DELETED));
	CHECK(mbox_info_to_flags("x") == 0);

	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	if (system(path) != 0)
		fprintf(stderr, "cleanup failed\n");
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("mailbox: all checks passed\n");
	return 0;
}
