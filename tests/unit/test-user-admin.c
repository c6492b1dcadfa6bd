/* Unit tests of the admin side of storage/directory.c: "user del" moves the
 * Maildir aside and "user add" never hands it to a new account by accident,
 * a missing Maildir is made again only for a user who still exists (also
 * while the user is being deleted), dir_reopen() after a restore replaced
 * buzon.db, and data_dir_check(). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/directory.h"
#include "tests/common/check.h"

static char root[128];
static char data[256];

static int is_dir(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

static int mode_of(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

/* Files in path/new. */
static int count_new(const char *maildir)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/new", maildir);
	int n = 0;
	for (int i = 0; i < 100; i++) {
		char f[4300];
		snprintf(f, sizeof(f), "%s/msg%d", p, i);
		n += exists(f);
	}
	return n;
}

/* A delivered message, as a file in new/. */
static void put_message(const char *maildir, int i)
{
	char f[4300];
	int fd;

	snprintf(f, sizeof(f), "%s/new/msg%d", maildir, i);
	fd = open(f, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0, "cannot write %s", f);
	if (fd >= 0) {
		CHECK(write(fd, "Subject: x\n\nbody\n", 17) == 17, "write");
		close(fd);
	}
}

static void test_del_then_add(struct dir *d)
{
	char err[512], path[4096], moved[4096], moved2[4096], deleted[4200], prefix[4200];

	CHECK(dir_user_add(d, "alice@example.test", "pw", 0, err, sizeof(err)) == 0, "add: %s", err);
	CHECK(dir_user_maildir(d, "Alice@Example.TEST", path, sizeof(path)) == 0, "maildir path");
	snprintf(prefix, sizeof(prefix), "%s/mail/example.test/alice", data);
	CHECK(strcmp(path, prefix) == 0, "maildir path %s", path);
	put_message(path, 1);
	put_message(path, 2);

	/* del: the row goes, the Maildir moves out of mail/. */
	CHECK(dir_user_del(d, "alice@example.test", moved, sizeof(moved), err, sizeof(err)) == 0, "del: %s", err);
	CHECK(dir_user_exists(d, "alice@example.test") == 0, "alice still exists");
	CHECK(!exists(path), "the Maildir is still at %s", path);
	snprintf(prefix, sizeof(prefix), "%s/deleted/example.test/alice.", data);
	CHECK(strncmp(moved, prefix, strlen(prefix)) == 0, "moved to '%s', want %s<time>", moved, prefix);
	CHECK(count_new(moved) == 2, "%d messages in the moved Maildir", count_new(moved));
	snprintf(deleted, sizeof(deleted), "%s/deleted", data);
	CHECK(mode_of(deleted) == 0700, "%s mode %o", deleted, mode_of(deleted));
	snprintf(deleted, sizeof(deleted), "%s/deleted/example.test", data);
	CHECK(mode_of(deleted) == 0700, "%s mode %o", deleted, mode_of(deleted));

	/* add again: a new, empty Maildir. */
	CHECK(dir_user_add(d, "alice@example.test", "pw2", 0, err, sizeof(err)) == 0, "add again: %s", err);
	CHECK(is_dir(path) && count_new(path) == 0, "the new alice sees %d old messages", count_new(path));
	CHECK(count_new(moved) == 2, "the old mail moved");

	/* del again within the same second: a second name, nothing replaced. */
	put_message(path, 3);
	CHECK(dir_user_del(d, "alice@example.test", moved2, sizeof(moved2), err, sizeof(err)) == 0, "del 2: %s", err);
	CHECK(strcmp(moved, moved2) != 0 && count_new(moved) == 2 && count_new(moved2) == 1,
	      "second del: %s and %s", moved, moved2);

	/* Restore: the old Maildir back in place; add refuses without the
	 * flag, and takes it over with it. */
	CHECK(rename(moved, path) == 0, "restore by hand");
	CHECK(dir_user_add(d, "alice@example.test", "pw3", 0, err, sizeof(err)) == -EEXIST &&
	      strstr(err, "a maildir already exists at ") && strstr(err, path), "add over old mail: %s", err);
	CHECK(dir_user_exists(d, "alice@example.test") == 0, "a refused add left the user");
	CHECK(dir_user_add_flags(d, "alice@example.test", "pw3", 0, DIR_USER_REUSE_MAIL, err, sizeof(err)) == 0,
	      "add --reuse-mail: %s", err);
	CHECK(count_new(path) == 2, "the restored mail: %d messages", count_new(path));

	/* Reuse of something that is not a directory. */
	CHECK(dir_user_del(d, "alice@example.test", moved, sizeof(moved), err, sizeof(err)) == 0, "del 3: %s", err);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	CHECK(dir_user_add_flags(d, "alice@example.test", "pw", 0, DIR_USER_REUSE_MAIL, err, sizeof(err)) == -ENOTDIR,
	      "reuse of a file: %s", err);
	unlink(path);

	/* A user without a Maildir is deleted all the same. */
	CHECK(dir_user_add(d, "alice@example.test", "pw", 0, err, sizeof(err)) == 0, "add 4: %s", err);
	snprintf(prefix, sizeof(prefix), "%s/aside", root);
	CHECK(rename(path, prefix) == 0, "remove by hand");
	CHECK(dir_user_del(d, "alice@example.test", moved, sizeof(moved), err, sizeof(err)) == 0 && moved[0] == '\0',
	      "del without a Maildir: %s '%s'", err, moved);
}

static void test_ensure(struct dir *d)
{
	char err[512], path[4096], aside[4200];

	CHECK(dir_user_add(d, "bob@example.test", "pw", 0, err, sizeof(err)) == 0, "add bob: %s", err);
	dir_user_maildir(d, "bob@example.test", path, sizeof(path));
	CHECK(dir_user_ensure_maildir(d, "bob@example.test", err, sizeof(err)) == 0, "present: %s", err);
	snprintf(aside, sizeof(aside), "%s/bob-aside", root);
	CHECK(rename(path, aside) == 0, "remove by hand");
	CHECK(dir_user_ensure_maildir(d, "bob@example.test", err, sizeof(err)) == 1 && is_dir(path),
	      "made again: %s", err);
	CHECK(dir_user_del(d, "bob@example.test", NULL, 0, err, sizeof(err)) == 0, "del bob: %s", err);
	CHECK(dir_user_ensure_maildir(d, "bob@example.test", err, sizeof(err)) == -ENOENT && !exists(path),
	      "a deleted user's Maildir was made again: %s", err);
}

/* Two connections, as a server and the CLI have: one makes the Maildir of
 * a user whenever it is missing, the other deletes the user. The deleted
 * user's Maildir must never come back. */
struct racer {
	struct dir *d;
	atomic_int stop;
	int made;
};

static void *ensure_loop(void *arg)
{
	struct racer *r = arg;
	char err[512];

	while (!atomic_load(&r->stop))
		if (dir_user_ensure_maildir(r->d, "carol@example.test", err, sizeof(err)) == 1)
			r->made++;
	return NULL;
}

static void test_del_race(struct dir *d)
{
	struct racer r;
	pthread_t th;
	char err[512], path[4096];
	int back = 0;

	memset(&r, 0, sizeof(r));
	CHECK(dir_open(data, &r.d, err, sizeof(err)) == 0, "second connection: %s", err);
	if (!r.d)
		return;
	dir_user_maildir(d, "carol@example.test", path, sizeof(path));
	for (int i = 0; i < 30; i++) {
		CHECK(dir_user_add(d, "carol@example.test", "pw", 0, err, sizeof(err)) == 0, "add carol %d: %s", i, err);
		atomic_store(&r.stop, 0);
		pthread_create(&th, NULL, ensure_loop, &r);
		usleep(200 * (unsigned)(i % 5));
		CHECK(dir_user_del(d, "carol@example.test", NULL, 0, err, sizeof(err)) == 0, "del carol %d: %s", i, err);
		usleep(2000);
		atomic_store(&r.stop, 1);
		pthread_join(th, NULL);
		back += exists(path);
		if (exists(path)) {
			char aside[4200];
			snprintf(aside, sizeof(aside), "%s/carol-back-%d", root, i);
			rename(path, aside);
		}
	}
	CHECK(back == 0, "the Maildir of deleted carol came back %d times of 30", back);
	dir_close(&r.d);
}

/* buzon.db replaced under a running server (a restore renamed a copy over
 * it): the old connection would go on reading the old file. */
static void test_reopen(struct dir *d)
{
	char err[512], other[300], db[400], odb[400];
	struct dir *o = NULL, *check = NULL;
	FILE *fp;

	CHECK(dir_reopen(d, err, sizeof(err)) == 0, "reopen of the same file: %s", err);
	snprintf(other, sizeof(other), "%s/other", root);
	CHECK(dir_open(other, &o, err, sizeof(err)) == 0, "other: %s", err);
	if (!o)
		return;
	CHECK(dir_domain_add(o, "other.test", err, sizeof(err)) == 0, "%s", err);
	CHECK(dir_user_add(o, "dave@other.test", "pw", 0, err, sizeof(err)) == 0, "%s", err);
	dir_close(&o);
	CHECK(dir_domain_exists(d, "example.test") == 1, "before");
	snprintf(db, sizeof(db), "%s/buzon.db", data);
	snprintf(odb, sizeof(odb), "%s/buzon.db", other);
	CHECK(rename(odb, db) == 0, "restore by rename");
	CHECK(dir_domain_exists(d, "other.test") == 0, "the old connection already sees the new file");
	CHECK(dir_reopen(d, err, sizeof(err)) == 1, "reopen: %s", err);
	CHECK(dir_domain_exists(d, "other.test") == 1 && dir_domain_exists(d, "example.test") == 0,
	      "after the reopen the directory is not the restored one");
	CHECK(dir_user_exists(d, "dave@other.test") == 1, "dave");
	CHECK(dir_domain_add(d, "new.test", err, sizeof(err)) == 0, "write after reopen: %s", err);
	CHECK(dir_open(data, &check, err, sizeof(err)) == 0 && dir_domain_exists(check, "new.test") == 1 &&
	      dir_domain_exists(check, "other.test") == 1, "another connection does not see the write");
	dir_close(&check);
	CHECK(dir_reopen(d, err, sizeof(err)) == 0, "second reopen: %s", err);

	/* A file that is not a database: refused, the old connection kept. */
	snprintf(odb, sizeof(odb), "%s/junk.db", root);
	fp = fopen(odb, "w");
	if (fp) {
		for (int i = 0; i < 100; i++)
			fputs("this is not an SQLite database\n", fp);
		fclose(fp);
	}
	CHECK(rename(odb, db) == 0, "junk");
	err[0] = '\0';
	CHECK(dir_reopen(d, err, sizeof(err)) < 0 && err[0], "junk accepted: %s", err);
	CHECK(dir_domain_exists(d, "new.test") == 1, "the old connection is gone after a failed reopen");
}

static void test_data_dir_check(void)
{
	char err[512], file[300], under[400], link[300], plink[300], ro[300], p[400];
	static const struct {
		const char *path;
		int want;
		const char *msg;
	} fixed[] = {
		{ "relative/dir", -EINVAL, "is not an absolute path" },
		{ "/etc/passwd", -ENOTDIR, "data_dir /etc/passwd is not a directory" },
		{ "/etc/passwd/buzon", -ENOTDIR, "cannot be created: /etc/passwd is not a directory" },
		{ "/proc/buzon", -EINVAL, "inside /proc" },
		{ "/proc", -EINVAL, "inside /proc" },
		{ "/sys/kernel/buzon", -EINVAL, "inside /sys" },
		{ "/dev/shm/buzon", -EINVAL, "inside /dev" },
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		err[0] = '\0';
		int r = data_dir_check(fixed[i].path, err, sizeof(err));
		CHECK(r == fixed[i].want && strstr(err, fixed[i].msg), "%s: %d '%s'", fixed[i].path, r, err);
	}
	CHECK(data_dir_check(data, err, sizeof(err)) == 0, "existing: %s", err);
	snprintf(p, sizeof(p), "%s/not/yet/there", root);
	CHECK(data_dir_check(p, err, sizeof(err)) == 0 && !exists(p), "creatable: %s", err);
	snprintf(file, sizeof(file), "%s/a-file", root);
	close(open(file, O_WRONLY | O_CREAT, 0600));
	CHECK(data_dir_check(file, err, sizeof(err)) == -ENOTDIR, "a file: %s", err);
	snprintf(under, sizeof(under), "%s/below/it", file);
	CHECK(data_dir_check(under, err, sizeof(err)) == -ENOTDIR && strstr(err, file), "under a file: %s", err);
	snprintf(link, sizeof(link), "%s/a-link", root);
	CHECK(symlink(data, link) == 0, "symlink");
	CHECK(data_dir_check(link, err, sizeof(err)) == -ELOOP, "a symbolic link: %s", err);
	snprintf(plink, sizeof(plink), "%s/to-proc", root);
	CHECK(symlink("/proc", plink) == 0, "symlink");
	snprintf(p, sizeof(p), "%s/buzon", plink);
	CHECK(data_dir_check(p, err, sizeof(err)) == -EINVAL && strstr(err, "inside /proc"), "via a link: %s", err);
	/* Root may write anywhere; others get a reason. */
	if (geteuid() != 0) {
		snprintf(ro, sizeof(ro), "%s/read-only", root);
		mkdir(ro, 0500);
		snprintf(p, sizeof(p), "%s/data", ro);
		CHECK(data_dir_check(p, err, sizeof(err)) == -EACCES, "read-only parent: %s", err);
		CHECK(data_dir_check(ro, err, sizeof(err)) == -EACCES, "read-only dir: %s", err);
		chmod(ro, 0700);
	}
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	struct dir *d = NULL;
	char err[512];

	snprintf(root, sizeof(root), "%s/buzon-test-user-admin-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(data, sizeof(data), "%s/data", root);
	if (dir_open(data, &d, err, sizeof(err)) < 0) {
		printf("FAIL dir_open: %s\n", err);
		return 1;
	}
	CHECK(dir_domain_add(d, "example.test", err, sizeof(err)) == 0, "%s", err);
	test_del_then_add(d);
	test_ensure(d);
	test_del_race(d);
	test_data_dir_check();
	test_reopen(d);
	dir_close(&d);
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (failures) {
		printf("user-admin: %d check(s) failed\n", failures);
		return 1;
	}
	printf("user-admin: all checks passed\n");
	return 0;
}
