/* Unit tests for storage/maildir.c: all-or-nothing delivery to several
 * Maildirs, file names (S=, W=), quota, failure clean-up, tmp sweep, usage,
 * a Maildir deleted by hand, symbolic links below data_dir, file modes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "storage/maildir.h"
#include "storage/storage-private.h"

#ifdef FIU_ENABLE
#include <fiu.h>
#include <fiu-control.h>
#endif

static int failures;
static char root[256];

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) { \
			failures++; \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

static char *path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Returns root/<formatted>; the caller frees it. */
static char *path(const char *fmt, ...)
{
	char rel[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	return xasprintf("%s/%s", root, rel);
}

/* Counts the entries of a directory other than "." and ".."; -1 if it cannot be read. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int count_in(const char *maildir, const char *sub)
{
	char *p = xasprintf("%s/%s", maildir, sub);
	int n = count_entries(p);
	free(p);
	return n;
}

/* The one entry's name in dir, or NULL if there is not exactly one. */
static char *only_entry(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *name = NULL;
	int n = 0;

	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n++ == 0)
			name = xstrdup(de->d_name);
	}
	closedir(d);
	if (n != 1) {
		free(name);
		return NULL;
	}
	return name;
}

static char *read_all(const char *file, size_t *len_r)
{
	FILE *f = fopen(file, "rb");
	char *data;
	long len;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = xmalloc((size_t)len + 1);
	if (fread(data, 1, (size_t)len, f) != (size_t)len) {
		free(data);
		fclose(f);
		return NULL;
	}
	data[len] = '\0';
	fclose(f);
	*len_r = (size_t)len;
	return data;
}

static void write_file(const char *file, const char *data)
{
	FILE *f = fopen(file, "wb");

	if (!f) {
		fprintf(stderr, "cannot create %s: %s\n", file, strerror(errno));
		exit(2);
	}
	fputs(data, f);
	fclose(f);
}

/* The CRLF size computed the plain way, independently of maildir.c. */
static size_t crlf_size(const char *s, size_t len)
{
	size_t v = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			v++;
		v++;
	}
	return v;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static char *make_maildir(const char *name)
{
	char *p = path("mail/example.test/%s", name);
	int r = maildir_create(p);

	if (r < 0) {
		fprintf(stderr, "maildir_create %s: %s\n", p, strerror(-r));
		exit(2);
	}
	return p;
}

/* ---- the name and contents of delivered copies ------------------------ */

/* A body in pieces, with a CRLF split across two iovecs and an empty one. */
static const char *const body_parts[] = {
	"Subject: test\n\nline one\r",
	"\nline two\n",
	"",
	"a \r\n in the data\nlast line without CR\n",
};

static void test_deliver_three(void)
{
	char *m[3];
	struct maildir_copy copies[3];
	struct iovec iov[ARRAY_SIZE(body_parts)];
	char body[512] = "";
	static const char *const prefixes[3] = {
		"Delivered-To: a@example.test\n",
		"Delivered-To: b@example.test\nX-Extra: 1\n",
		NULL,
	};

	for (size_t i = 0; i < ARRAY_SIZE(body_parts); i++) {
		iov[i].iov_base = (void *)body_parts[i];
		iov[i].iov_len = strlen(body_parts[i]);
		strcat(body, body_parts[i]);
	}
	m[0] = make_maildir("a");
	m[1] = make_maildir("b");
	m[2] = make_maildir("c");
	memset(copies, 0, sizeof(copies));
	for (int i = 0; i < 3; i++) {
		copies[i].maildir = m[i];
		copies[i].prefix = prefixes[i];
	}
	int r = maildir_deliver(copies, 3, iov, ARRAY_SIZE(iov), "mx/1:2,3.example.test");
	CHECK(r == 0, "maildir_deliver returned %d (%s)", r, strerror(-r));

	for (int i = 0; i < 3; i++) {
		char *newdir = xasprintf("%s/new", m[i]);
		char *name = only_entry(newdir);
		char expect[1024];
		size_t len = 0;

		snprintf(expect, sizeof(expect), "%s%s", prefixes[i] ? prefixes[i] : "", body);
		CHECK(name != NULL, "%s: expected exactly one file in new/", m[i]);
		CHECK(count_in(m[i], "tmp") == 0, "%s: tmp/ not empty", m[i]);
		CHECK(count_in(m[i], "cur") == 0, "%s: cur/ not empty", m[i]);
		if (name) {
			char want_tail[128];
			long long sec;
			long usec, pid;
			unsigned long q;
			int consumed = 0;
			char *file = xasprintf("%s/%s", newdir, name);
			char *data = read_all(file, &len);
			struct stat st;

			CHECK(data && len == strlen(expect) && memcmp(data, expect, len) == 0,
			      "%s: contents differ: got '%s'", file, data ? data : "(unreadable)");
			CHECK(strcmp(file, copies[i].new_path) == 0, "new_path %s is not %s", copies[i].new_path, file);
			CHECK(sscanf(name, "%lld.M%ldP%ldQ%lu.%n", &sec, &usec, &pid, &q, &consumed) == 4 && consumed > 0,
			      "name %s is not <sec>.M<usec>P<pid>Q<n>.<host>", name);
			CHECK(pid == (long)getpid(), "name %s does not carry our pid", name);
			CHECK(usec >= 0 && usec < 1000000, "name %s: bad usec", name);
			snprintf(want_tail, sizeof(want_tail), "mx\\0571\\0722\\0543.example.test,S=%zu,W=%zu",
				 strlen(expect), crlf_size(expect, strlen(expect)));
			CHECK(consumed > 0 && strcmp(name + consumed, want_tail) == 0,
			      "name %s: tail is not %s", name, want_tail);
			CHECK(stat(file, &st) == 0 && (st.st_mode & 0777) == 0600, "%s: mode is not 0600", file);
			free(data);
			free(file);
		}
		free(name);
		free(newdir);
	}
	/* The W= arithmetic on its own: "\r\n" counts 2, a lone "\n" counts 2. */
	CHECK(crlf_size("a\r\nb\n", 5) == 6, "crlf_size self-check");
	for (int i = 0; i < 3; i++)
		free(m[i]);
}

/* ---- quota ----------------------------------------------------------- */

static void test_quota(void)
{
	char *a = make_maildir("qa"), *b = make_maildir("qb");
	char *f = xasprintf("%s/cur/1.M1P1Q1.h,S=1000,W=1020:2,S", b);
	struct maildir_copy copies[2];
	struct iovec iov = { (void *)"0123456789\n", 11 };
	const char *prefix = "X: y\n";   /* 5 octets: each copy is 16 */
	int r;

	write_file(f, "placeholder");
	struct {
		uint64_t quota_a, quota_b;
		int want;
		int error_b;
	} cases[] = {
		{ 0, 1015, -EDQUOT, -EDQUOT },   /* 1000 used + 16 > 1015 */
		{ 15, 0, -EDQUOT, 0 },           /* an empty Maildir, 16 > 15 */
		{ 16, 1016, 0, 0 },              /* exactly full is allowed */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int before_a = count_in(a, "new"), before_b = count_in(b, "new");
		memset(copies, 0, sizeof(copies));
		copies[0].maildir = a;
		copies[0].prefix = prefix;
		copies[0].quota = cases[i].quota_a;
		copies[1].maildir = b;
		copies[1].prefix = prefix;
		copies[1].quota = cases[i].quota_b;
		r = maildir_deliver(copies, 2, &iov, 1, "h");
		CHECK(r == cases[i].want, "quota case %zu: got %d, want %d", i, r, cases[i].want);
		CHECK(copies[1].error == cases[i].error_b, "quota case %zu: copy b error %d", i, copies[1].error);
		if (cases[i].want < 0) {
			CHECK(count_in(a, "new") == before_a && count_in(b, "new") == before_b,
			      "quota case %zu: something was delivered", i);
		} else {
			CHECK(count_in(a, "new") == before_a + 1 && count_in(b, "new") == before_b + 1,
			      "quota case %zu: not delivered to both", i);
		}
		CHECK(count_in(a, "tmp") == 0 && count_in(b, "tmp") == 0, "quota case %zu: tmp/ not empty", i);
	}
	free(f);
	free(a);
	free(b);
}

#ifdef FIU_ENABLE
static int fail_after, calls;

/* libfiu's external method: fail the fail_after-th call, and later ones. */
static int nth_call(const char *name, int *failnum, void **failinfo, unsigned int *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	return ++calls >= fail_after;
}
#endif

/* ---- failures leave nothing ------------------------------------------ */

static void test_failure_cleanup(void)
{
	char *a = make_maildir("fa"), *b = make_maildir("fb"), *c = make_maildir("fc");
	char *blocker = path("mail/example.test/a-file");
	char *missing = path("mail/example.test/a-file/u");
	char *c_new = xasprintf("%s/new", c);
	struct maildir_copy copies[3];
	struct iovec iov = { (void *)"body\n", 5 };
	int r;

	/* A copy in the middle cannot be written (its Maildir cannot exist:
	 * a file is in the way): the first one, already in tmp/, must go. */
	write_file(blocker, "");
	memset(copies, 0, sizeof(copies));
	copies[0].maildir = a;
	copies[1].maildir = missing;
	copies[2].maildir = b;
	r = maildir_deliver(copies, 3, &iov, 1, "h");
	CHECK(r == -ENOTDIR, "unreachable maildir: got %d", r);
	CHECK(copies[1].error == -ENOTDIR, "unreachable maildir: copy error %d", copies[1].error);
	CHECK(count_in(a, "new") == 0 && count_in(a, "tmp") == 0, "unreachable maildir: copy a left a file");
	CHECK(count_in(b, "new") == 0 && count_in(b, "tmp") == 0, "unreachable maildir: copy b left a file");
	(void)c_new;

#ifdef FIU_ENABLE
	/* The last copy is written to tmp/ but cannot be renamed into new/:
	 * the copies already moved into new/ must be taken back. The same for
	 * the fsync of the last new/: not retried, every copy taken back. */
	static const struct {
		const char *point;
		int nth;       /* the call that fails (1-based) */
	} late[] = {
		{ "storage/maildir/rename", 3 },
		{ "storage/maildir/fsync-dir", 3 },
		{ "storage/maildir/fsync", 2 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(late); i++) {
		fail_after = late[i].nth;
		calls = 0;
		fiu_enable_external(late[i].point, EIO, NULL, 0, nth_call);
		memset(copies, 0, sizeof(copies));
		copies[0].maildir = a;
		copies[1].maildir = b;
		copies[2].maildir = c;
		r = maildir_deliver(copies, 3, &iov, 1, "h");
		fiu_disable(late[i].point);
		CHECK(r == -EIO, "%s failure: got %d", late[i].point, r);
		CHECK(count_in(a, "new") == 0 && count_in(a, "tmp") == 0, "%s: copy a left a file", late[i].point);
		CHECK(count_in(b, "new") == 0 && count_in(b, "tmp") == 0, "%s: copy b left a file", late[i].point);
		CHECK(count_in(c, "new") == 0 && count_in(c, "tmp") == 0, "%s: copy c left a file", late[i].point);
	}
#endif

	/* Bad arguments write nothing. */
	memset(copies, 0, sizeof(copies));
	CHECK(maildir_deliver(copies, 0, &iov, 1, "h") == -EINVAL, "no copies accepted");
	copies[0].maildir = a;
	copies[1].maildir = NULL;
	CHECK(maildir_deliver(copies, 2, &iov, 1, "h") == -EINVAL, "NULL maildir accepted");
	CHECK(count_in(a, "new") == 0 && count_in(a, "tmp") == 0, "bad arguments left a file");

	free(a);
	free(b);
	free(c);
	free(c_new);
	free(missing);
	free(blocker);
}

/* ---- folders, sweep, usage ------------------------------------------- */

static void test_folders(void)
{
	char *m = make_maildir("folders");
	static const struct {
		const char *name;
		int want;
	} cases[] = {
		{ "Sent", 0 }, { "Archive.2026", 0 }, { "", -EINVAL }, { ".hidden", -EINVAL },
		{ "a/b", -EINVAL }, { "..", -EINVAL }, { "a..b", -EINVAL }, { "trail.", -EINVAL },
		{ "tab\there", -EINVAL }, { "Sent", 0 },  /* twice is fine */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = maildir_create_folder(m, cases[i].name);
		CHECK(r == cases[i].want, "folder '%s': got %d, want %d", cases[i].name, r, cases[i].want);
	}
	char *mf = xasprintf("%s/.Archive.2026/maildirfolder", m);
	struct stat st;
	CHECK(stat(mf, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0, "maildirfolder missing or not empty");
	CHECK(count_in(m, ".Sent/new") == 0 && count_in(m, ".Sent/cur") == 0 && count_in(m, ".Sent/tmp") == 0,
	      ".Sent lacks tmp/new/cur");
	free(mf);
	free(m);
}

static void test_sweep_and_usage(void)
{
	char *data = xstrdup(root);
	char *m = make_maildir("sweep"), *m2 = make_maildir("sweep2");
	char *other = path("mail/other.test/u");
	uint64_t used = 12345;
	int r;

	CHECK(maildir_create(other) == 0, "maildir_create other");
	CHECK(maildir_create_folder(m, "Sent") == 0, "folder Sent");
	CHECK(maildir_create_folder(m, "Archive.2026") == 0, "folder Archive.2026");

	/* Usage: S= from names (before and after the :2, info), stat otherwise;
	 * tmp/ is not counted. */
	static const struct {
		const char *file;
		const char *content;
	} files[] = {
		{ "new/1.M1P1Q1.h,S=100,W=104", "" },
		{ "cur/2.M1P1Q2.h,S=50,W=52:2,S", "" },
		{ "cur/3.M1P1Q3.h:2,RS", "0123456789" },         /* no S=: 10 by stat */
		{ "cur/4.M1P1Q4.h,S=x,W=5:2,", "abc" },          /* bad S=: 3 by stat */
		{ ".Sent/cur/5.M1P1Q5.h,S=7:2,S", "" },
		{ ".Archive.2026/new/6.M1P1Q6.h,W=9", "12345" }, /* W= only: 5 by stat */
		{ "tmp/7.M1P1Q7.h,S=100000", "" },               /* not counted */
		{ ".Sent/tmp/8.M1P1Q8.h,S=100000", "" },         /* not counted */
	};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char *f = xasprintf("%s/%s", m, files[i].file);
		write_file(f, files[i].content);
		free(f);
	}
	r = maildir_usage(m, &used);
	CHECK(r == 0 && used == 100 + 50 + 10 + 3 + 7 + 5, "usage: r=%d used=%llu", r, (unsigned long long)used);
	CHECK(maildir_usage(other, &used) == 0 && used == 0, "usage of an empty maildir: %llu",
	      (unsigned long long)used);
	CHECK(maildir_usage("/nonexistent/buzon/maildir", &used) == -ENOENT, "usage of a missing maildir");

	/* Sweep: every file in every tmp/, nothing else. */
	char *f1 = xasprintf("%s/tmp/left-over", m2);
	char *f2 = xasprintf("%s/tmp/left-over", other);
	char *sub = xasprintf("%s/tmp/a-directory", m2);
	write_file(f1, "x");
	write_file(f2, "x");
	CHECK(mkdir(sub, 0700) == 0, "mkdir %s", sub);
	r = maildir_sweep_tmp(data);
	CHECK(r == 4, "sweep removed %d files, want 4 (m/tmp, m/.Sent/tmp, m2/tmp, other/tmp)", r);
	CHECK(count_in(m, "tmp") == 0 && count_in(m, ".Sent/tmp") == 0, "sweep left files in m");
	CHECK(count_in(m2, "tmp") == 1, "sweep removed the directory in tmp/ or left the file");
	CHECK(count_in(other, "tmp") == 0, "sweep missed another domain");
	CHECK(count_in(m, "new") == 1 && count_in(m, "cur") == 3 && count_in(m, ".Sent/cur") == 1,
	      "sweep touched new/ or cur/");
	CHECK(maildir_usage(m, &used) == 0 && used == 175, "usage after sweep %llu", (unsigned long long)used);
	CHECK(maildir_sweep_tmp(data) == 0, "second sweep found files");
	char *nomail = path("no-such-data-dir");
	CHECK(maildir_sweep_tmp(nomail) == 0, "sweep of a data_dir without mail/");
	free(nomail);
	free(f1);
	free(f2);
	free(sub);
	free(other);
	free(m);
	free(m2);
	free(data);
}

/* ---- several worker threads at once ----------------------------------- */

#define THREADS 4
#define PER_THREAD 50

struct worker {
	const char *maildir;
	int errors;
};

static void *deliver_many(void *arg)
{
	struct worker *w = arg;
	struct iovec iov = { (void *)"concurrent\n", 11 };

	for (int i = 0; i < PER_THREAD; i++) {
		struct maildir_copy c;
		memset(&c, 0, sizeof(c));
		c.maildir = w->maildir;
		if (maildir_deliver(&c, 1, &iov, 1, "h") != 0)
			w->errors++;
	}
	return NULL;
}

static void test_threads(void)
{
	char *m = make_maildir("threads");
	pthread_t th[THREADS];
	struct worker w[THREADS];

	for (int i = 0; i < THREADS; i++) {
		w[i].maildir = m;
		w[i].errors = 0;
		pthread_create(&th[i], NULL, deliver_many, &w[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].errors == 0, "thread %d: %d deliveries failed", i, w[i].errors);
	}
	/* Same second, same pid: only the counter keeps the names apart. */
	CHECK(count_in(m, "new") == THREADS * PER_THREAD, "%d files in new/, want %d", count_in(m, "new"),
	      THREADS * PER_THREAD);
	free(m);
}

/* ---- tmp/, new/ or cur/ deleted by hand are made again ------------------ */

static void test_restore(void)
{
	static const char *const gone[] = { "/new", "/tmp", "/cur" };
	struct iovec iov = { (void *)"body\n", 5 };

	for (size_t i = 0; i < ARRAY_SIZE(gone); i++) {
		char *m = make_maildir("restore");
		char *cmd = xasprintf("rm -rf '%s%s'", m, gone[i]);
		struct maildir_copy copy;
		int r;

		CHECK(system(cmd) == 0, "%s", cmd);
		memset(&copy, 0, sizeof(copy));
		copy.maildir = m;
		r = maildir_deliver(&copy, 1, &iov, 1, "h");
		CHECK(r == 0, "deleted '%s': delivery got %d", gone[i], r);
		CHECK(count_in(m, "new") == 1 && count_in(m, "tmp") == 0 && count_in(m, "cur") == 0,
		      "deleted '%s': not delivered into a whole Maildir", gone[i]);
		CHECK(maildir_check(m) == 0, "check of an intact maildir");
		free(cmd);
		cmd = xasprintf("rm -rf '%s'", m);
		CHECK(system(cmd) == 0, "%s", cmd);
		free(cmd);
		/* The Maildir itself is not made again here (the directory does it,
		 * knowing whether the user still exists). */
		CHECK(maildir_check(m) == -ENOENT, "a missing maildir is reported");
		memset(&copy, 0, sizeof(copy));
		copy.maildir = m;
		CHECK(maildir_deliver(&copy, 1, &iov, 1, "h") == -ENOENT, "delivered to a missing maildir");
		CHECK(count_in(m, "new") == -1, "a missing maildir was made by the delivery");
		free(m);
	}
}

/* ---- no symbolic link below data_dir is followed ---------------------- */

/* Regular files anywhere below dir (a symlink is not followed, not counted). */
static int files_below(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char *p;
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		if (lstat(p, &st) == 0)
			n += S_ISDIR(st.st_mode) ? files_below(p) : S_ISREG(st.st_mode);
		free(p);
	}
	closedir(d);
	return n;
}

static void test_symlinks(bool fallback)
{
	/* What is replaced by a link to a complete Maildir (tree) outside
	 * data_dir, and the Maildir delivered to. A followed link would write
	 * there without error. */
	static const struct {
		const char *what;
		const char *link;      /* below data/, becomes the symlink */
		const char *maildir;   /* below data/ */
		const char *outside;   /* what the link points at, made below out/ */
	} cases[] = {
		{ "new/", "mail/l.test/u1/new", "mail/l.test/u1", "x/new" },
		{ "tmp/", "mail/l.test/u2/tmp", "mail/l.test/u2", "x/tmp" },
		{ "user directory", "mail/l.test/u3", "mail/l.test/u3", "x" },
		{ "domain directory", "mail/ldom.test", "mail/ldom.test/u4", "x" },
	};
	char *data = path("sym-%d/data", fallback), *out = path("sym-%d/out", fallback);
	char *good;
	struct iovec iov = { (void *)"body\n", 5 };

	storage_path_force_fallback(fallback);
	CHECK(storage_mkdir_p(data) == 0 && storage_mkdir_p(out) == 0, "mkdir data/out");
	CHECK(storage_set_root(data) == 0, "set root");
	good = xasprintf("%s/mail/l.test/good", data);
	CHECK(maildir_create(good) == 0, "good maildir");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *link = xasprintf("%s/%s", data, cases[i].link);
		char *m = xasprintf("%s/%s", data, cases[i].maildir);
		char *target = xasprintf("%s/%zu", out, i);
		char *inside = xasprintf("%s/%s", target, cases[i].outside);
		char *cmd;
		struct maildir_copy copies[2];
		uint64_t used;
		int r;

		CHECK(maildir_create(m) == 0, "%s: maildir", cases[i].what);
		/* A full Maildir tree where the link points. */
		{
			char *x = xasprintf("%s/x", target), *u4 = xasprintf("%s/x/u4", target);
			CHECK(maildir_create(x) == 0 && maildir_create(u4) == 0, "%s: target", cases[i].what);
			free(x);
			free(u4);
		}
		cmd = xasprintf("rm -rf '%s'", link);
		CHECK(system(cmd) == 0, "%s", cmd);
		free(cmd);
		CHECK(symlink(inside, link) == 0, "symlink %s: %s", link, strerror(errno));

		memset(copies, 0, sizeof(copies));
		copies[0].maildir = good;
		copies[1].maildir = m;
		r = maildir_deliver(copies, 2, &iov, 1, "h");
		CHECK(r == -ELOOP, "%s (fallback %d): delivery got %d", cases[i].what, fallback, r);
		CHECK(files_below(target) == 0, "%s (fallback %d): written through the link", cases[i].what,
		      fallback);
		CHECK(count_in(good, "new") == 0 && count_in(good, "tmp") == 0, "%s: the other copy stayed",
		      cases[i].what);
		/* The quota walk does not count (or enter) the target either. */
		r = maildir_usage(m, &used);
		CHECK(strcmp(cases[i].what, "tmp/") == 0 ? r == 0 && used == 0 : r == -ELOOP,
		      "%s (fallback %d): usage went through the link (%d)", cases[i].what, fallback, r);
		/* Nor does making a folder or the Maildir again. */
		CHECK(maildir_create_folder(m, "Sent") < 0 || strcmp(cases[i].what, "new/") == 0 ||
		      strcmp(cases[i].what, "tmp/") == 0, "%s: folder created through the link", cases[i].what);
		CHECK(maildir_create(m) < 0, "%s (fallback %d): maildir_create through the link", cases[i].what,
		      fallback);
		CHECK(files_below(target) == 0, "%s (fallback %d): a folder made through the link", cases[i].what,
		      fallback);
		free(link);
		free(m);
		free(target);
		free(inside);
	}

	/* The start-up sweep never empties a tmp/ that is a link. */
	{
		char *m = xasprintf("%s/mail/l.test/sw", data), *target = xasprintf("%s/sweep", out);
		char *link = xasprintf("%s/tmp", m), *victim = xasprintf("%s/precious", target);
		char *cmd = xasprintf("rm -rf '%s'", link);
		CHECK(maildir_create(m) == 0 && storage_mkdir_p(target) == 0, "sweep setup");
		CHECK(system(cmd) == 0 && symlink(target, link) == 0, "sweep link");
		write_file(victim, "keep me");
		CHECK(maildir_sweep_tmp(data) >= 0, "sweep");
		CHECK(access(victim, F_OK) == 0, "(fallback %d) the sweep removed a file through a link", fallback);
		free(m);
		free(target);
		free(link);
		free(victim);
		free(cmd);
	}
	storage_path_force_fallback(false);
	CHECK(storage_set_root(root) == 0, "set root back");
	free(good);
	free(data);
	free(out);
}

/* ---- modes: the owner's alone, whatever the umask --------------------- */

static int bad_modes;

static int mode_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	mode_t want = S_ISDIR(st->st_mode) ? 0700 : 0600;

	(void)flag; (void)ftw;
	if ((st->st_mode & 07777) != want) {
		bad_modes++;
		fprintf(stderr, "mode %04o, want %04o: %s\n", st->st_mode & 07777, want, p);
	}
	return 0;
}

static void test_modes(void)
{
	char *data = path("modes"), *m;
	struct iovec iov = { (void *)"body\n", 5 };
	struct maildir_copy copy;
	mode_t old = umask(0);   /* the most open: everything must be explicit */

	CHECK(storage_mkdir_p(data) == 0, "mkdir");
	m = xasprintf("%s/mail/m.test/u", data);
	CHECK(maildir_create(m) == 0, "maildir");
	CHECK(maildir_create_folder(m, "Sent") == 0, "folder");
	memset(&copy, 0, sizeof(copy));
	copy.maildir = m;
	CHECK(maildir_deliver(&copy, 1, &iov, 1, "h") == 0, "deliver");
	umask(old);
	bad_modes = 0;
	{
		char *mail = xasprintf("%s/mail", data);
		nftw(mail, mode_cb, 16, FTW_PHYS);
		free(mail);
	}
	CHECK(bad_modes == 0, "%d file(s) or directories not 0600/0700", bad_modes);
	free(m);
	free(data);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(root, sizeof(root), "%s/buzon-test-maildir-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 2;
	}
	storage_set_root(root);
#ifdef FIU_ENABLE
	fiu_init(0);
#endif
	test_deliver_three();
	test_quota();
	test_failure_cleanup();
	test_folders();
	test_sweep_and_usage();
	test_threads();
	test_restore();
	test_symlinks(false);
	test_symlinks(true);
	test_modes();
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (failures) {
		fprintf(stderr, "test-maildir: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test-maildir: all checks passed\n");
	return 0;
}
