/* Unit tests of the mailbox index: UIDs, flags in file names, expunge, refresh. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/mailbox.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static char root[256];

static void put(const char *sub, const char *name, const char *text)
{
	char path[1024];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s/%s", root, sub, name);
	fp = fopen(path, "w");
	if (!fp) {
		perror(path);
		exit(2);
	}
	fputs(text, fp);
	fclose(fp);
}

static int exists(const char *sub, const char *name)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s/%s", root, sub, name);
	return access(path, F_OK) == 0;
}

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
