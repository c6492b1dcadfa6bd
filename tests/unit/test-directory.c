/* Unit tests for storage/directory.c and storage/password.c: domains, users,
 * aliases, recipient resolution, logins, password schemes, the schema. */
#include <crypt.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gsasl.h>

#include "lib/sasl.h"
#include "lib/xalloc.h"
#include "schema/schema.h"
#include "storage/directory.h"
#include "storage/password.h"

static int failures;
static char root[256];
static struct dir *d;

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) { \
			failures++; \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *status_name(enum dir_status s)
{
	switch (s) {
	case DIR_OK: return "OK";
	case DIR_NO_USER: return "NO_USER";
	case DIR_DISABLED: return "DISABLED";
	case DIR_NOT_LOCAL: return "NOT_LOCAL";
	case DIR_BAD_ADDRESS: return "BAD_ADDRESS";
	case DIR_TEMPFAIL: return "TEMPFAIL";
	}
	return "?";
}

/* Makes a hash of another scheme the way an import would bring it. */
static void make_hash(const char *prefix, unsigned long count, const char *password, char *out, size_t outlen)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *h;

	if (!crypt_gensalt_rn(prefix, count, NULL, 0, salt, sizeof(salt)) ||
	    !(h = crypt_rn(password, salt, cd, sizeof(*cd))) || h[0] == '*') {
		fprintf(stderr, "cannot make a %s hash\n", prefix);
		exit(2);
	}
	snprintf(out, outlen, "%s", h);
	free(cd);
}

/* ---- set-up: the data every test below relies on ---------------------- */

struct op {
	const char *what;
	int r;       /* the return code */
	int want;    /* the expected one */
	char err[256];
};

static void expect(const struct op *o, const char *errpart)
{
	CHECK(o->r == o->want, "%s: got %d (%s), want %d", o->what, o->r, o->err, o->want);
	if (errpart)
		CHECK(strstr(o->err, errpart) != NULL, "%s: reason '%s' lacks '%s'", o->what, o->err, errpart);
}

#define OP(want_, errpart, call) \
	do { \
		struct op o_ = { #call, 0, (want_), "" }; \
		char *err = o_.err; \
		size_t errlen = sizeof(o_.err); \
		o_.r = (call); \
		expect(&o_, (errpart)); \
	} while (0)

static void setup(void)
{
	OP(0, NULL, dir_domain_add(d, "Example.TEST", err, errlen));
	OP(0, NULL, dir_domain_add(d, "other.test", err, errlen));
	OP(0, NULL, dir_domain_add(d, "empty.test", err, errlen));
	OP(-EEXIST, "domain example.test already exists", dir_domain_add(d, "example.test", err, errlen));
	OP(-EINVAL, "invalid domain", dir_domain_add(d, "bad_domain.test", err, errlen));
	OP(-EINVAL, "invalid domain", dir_domain_add(d, "-bad.test", err, errlen));
	OP(-EINVAL, "invalid domain", dir_domain_add(d, "", err, errlen));
	OP(-EINVAL, "invalid domain", dir_domain_add(d, "a..test", err, errlen));

	OP(0, NULL, dir_user_add(d, "Alice@Example.Test", "alice-pw", 0, err, errlen));
	OP(0, NULL, dir_user_add(d, "bob@example.test", "bob-pw", 1048576, err, errlen));
	OP(0, NULL, dir_user_add(d, "carol@example.test", "carol-pw", 0, err, errlen));
	OP(0, NULL, dir_user_add(d, "dave@example.test", "dave-pw", 0, err, errlen));
	OP(0, NULL, dir_user_add(d, "a+b@example.test", "ab-pw", 0, err, errlen));
	OP(0, NULL, dir_user_add(d, "first-last@example.test", "fl-pw", 0, err, errlen));
	OP(0, NULL, dir_user_set_enabled(d, "carol@example.test", 0, err, errlen));

	OP(-EEXIST, "user alice@example.test already exists", dir_user_add(d, "alice@example.test", "x", 0, err, errlen));
	OP(-EEXIST, "already exists", dir_user_add(d, "ALICE@EXAMPLE.TEST", "x", 0, err, errlen));
	OP(-ENOENT, "unknown domain nowhere.test", dir_user_add(d, "x@nowhere.test", "x", 0, err, errlen));
	OP(-EINVAL, "invalid address", dir_user_add(d, "no-at-sign", "x", 0, err, errlen));
	OP(-EINVAL, "invalid address", dir_user_add(d, "a%b@example.test", "x", 0, err, errlen));
	OP(-EINVAL, "invalid address", dir_user_add(d, "../x@example.test", "x", 0, err, errlen));
	OP(-EINVAL, "invalid address", dir_user_add(d, ".x@example.test", "x", 0, err, errlen));
	OP(-EINVAL, "empty password", dir_user_add(d, "erin@example.test", "", 0, err, errlen));

	OP(0, NULL, dir_alias_add(d, "Sales@Example.Test", "alice@example.test", err, errlen));
	OP(0, NULL, dir_alias_add(d, "sales@example.test", "bob@example.test", err, errlen));
	OP(-EEXIST, "alias sales@example.test -> alice@example.test already exists",
	   dir_alias_add(d, "sales@example.test", "ALICE@example.test", err, errlen));
	OP(0, NULL, dir_alias_add(d, "team@example.test", "alice@example.test", err, errlen));
	OP(0, NULL, dir_alias_add(d, "team@example.test", "carol@example.test", err, errlen));
	OP(0, NULL, dir_alias_add(d, "off@example.test", "carol@example.test", err, errlen));
	OP(0, NULL, dir_alias_add(d, "info@example.test", "bob@example.test", err, errlen));
	OP(0, NULL, dir_alias_add(d, "@other.test", "dave@example.test", err, errlen));
	OP(0, NULL, dir_alias_add(d, "gone@example.test", "first-last@example.test", err, errlen));
	OP(-ENOENT, "unknown user", dir_alias_add(d, "x@example.test", "nobody@example.test", err, errlen));
	OP(-ENOENT, "unknown domain nowhere.test", dir_alias_add(d, "x@nowhere.test", "alice@example.test", err, errlen));
	OP(-ENOENT, "unknown domain nowhere.test", dir_alias_add(d, "@nowhere.test", "alice@example.test", err, errlen));
	OP(-EEXIST, "is a user", dir_alias_add(d, "bob@example.test", "alice@example.test", err, errlen));
	OP(-EINVAL, "invalid alias", dir_alias_add(d, "a!b@example.test", "alice@example.test", err, errlen));
	OP(-EINVAL, "invalid address", dir_alias_add(d, "y@example.test", "alice", err, errlen));
	OP(-EEXIST, "is an alias", dir_user_add(d, "sales@example.test", "x", 0, err, errlen));

	CHECK(dir_user_exists(d, "ALICE@example.test") == 1, "alice does not exist");
	CHECK(dir_user_exists(d, "carol@example.test") == 1, "disabled carol does not exist");
	CHECK(dir_user_exists(d, "sales@example.test") == 0, "an alias is a user");
	CHECK(dir_user_exists(d, "alice@other.test") == 0, "alice exists in other.test");
	CHECK(dir_user_exists(d, "not an address") == 0, "garbage is a user");
}

/* ---- resolution --------------------------------------------------------- */

static const struct {
	const char *address;
	const char *delimiter;
	enum dir_status want;
	const char *targets;   /* comma-separated canonical addresses */
} resolve_cases[] = {
	{ "alice@example.test", "+", DIR_OK, "alice@example.test" },
	{ "ALICE@Example.TEST", "+", DIR_OK, "alice@example.test" },
	{ "alice+news@example.test", "+", DIR_OK, "alice@example.test" },
	{ "Alice+News@example.test", "+", DIR_OK, "alice@example.test" },
	{ "alice+news@example.test", "", DIR_NO_USER, "" },
	{ "alice+news@example.test", NULL, DIR_NO_USER, "" },
	{ "alice-news@example.test", "+", DIR_NO_USER, "" },
	{ "alice-news@example.test", "+-", DIR_OK, "alice@example.test" },
	{ "alice_x-y@example.test", "-_", DIR_OK, "alice@example.test" },  /* first of any delimiter */
	{ "alice+a+b@example.test", "+", DIR_OK, "alice@example.test" },
	{ "+alice@example.test", "+", DIR_NO_USER, "" },                   /* no base to fall back to */
	{ "a+b@example.test", "+", DIR_OK, "a+b@example.test" },            /* the exact user first */
	{ "a+c@example.test", "+", DIR_NO_USER, "" },
	{ "first-last@example.test", "-", DIR_OK, "first-last@example.test" },
	{ "sales@example.test", "+", DIR_OK, "alice@example.test,bob@example.test" },
	{ "SALES@EXAMPLE.TEST", "+", DIR_OK, "alice@example.test,bob@example.test" },
	{ "sales+q3@example.test", "+", DIR_OK, "alice@example.test,bob@example.test" },
	{ "sales+q3@example.test", "", DIR_NO_USER, "" },
	{ "info@example.test", "+", DIR_OK, "bob@example.test" },
	{ "team@example.test", "+", DIR_OK, "alice@example.test" },          /* disabled carol skipped */
	{ "off@example.test", "+", DIR_DISABLED, "" },
	{ "carol@example.test", "+", DIR_DISABLED, "" },
	{ "carol+x@example.test", "+", DIR_DISABLED, "" },
	{ "nobody@example.test", "+", DIR_NO_USER, "" },
	{ "nobody@empty.test", "+", DIR_NO_USER, "" },
	{ "anything@other.test", "+", DIR_OK, "dave@example.test" },        /* catch-all */
	{ "Anything+x@OTHER.test", "+", DIR_OK, "dave@example.test" },
	{ "alice@not-ours.test", "+", DIR_NOT_LOCAL, "" },
	{ "alice@example.test.evil.test", "+", DIR_NOT_LOCAL, "" },
	/* routing tricks never reach a local mailbox */
	{ "alice%other.test@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "alice%example.test@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "other.test!alice@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "\"alice@other.test\"@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "\"alice\"@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "al\\ice@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "@relay.test:alice@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "@relay.test,@r2.test:alice@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "alice@other.test@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "alice/../bob@example.test", "+", DIR_NOT_LOCAL, "" },
	{ "alice@[127.0.0.1]", "+", DIR_NOT_LOCAL, "" },
	{ "anything%x@other.test", "+", DIR_NOT_LOCAL, "" },                /* not even to the catch-all */
	/* not addresses at all */
	{ "", "+", DIR_BAD_ADDRESS, "" },
	{ "alice", "+", DIR_BAD_ADDRESS, "" },
	{ "alice@", "+", DIR_BAD_ADDRESS, "" },
	{ ".alice@example.test", "+", DIR_BAD_ADDRESS, "" },
	{ "alice.@example.test", "+", DIR_BAD_ADDRESS, "" },
	{ "al..ice@example.test", "+", DIR_BAD_ADDRESS, "" },
	{ "al ice@example.test", "+", DIR_BAD_ADDRESS, "" },
	{ "al\tice@example.test", "+", DIR_BAD_ADDRESS, "" },
	{ "alice@exa_mple.test", "+", DIR_BAD_ADDRESS, "" },
	{ "alice@-example.test", "+", DIR_BAD_ADDRESS, "" },
	{ "alice@example..test", "+", DIR_BAD_ADDRESS, "" },
	{ "alice@example.test.", "+", DIR_BAD_ADDRESS, "" },
	{ "\xff\xfe@example.test", "+", DIR_BAD_ADDRESS, "" },
	{ "x@b\xc3\xbc" "cher.test", "+", DIR_BAD_ADDRESS, "" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.test", "+", DIR_BAD_ADDRESS, "" },
	/* UTF-8 local parts are addresses, just not of anyone here */
	{ "j\xc3\xb6rg@example.test", "+", DIR_NO_USER, "" },
};

static void test_resolve(void)
{
	struct dir_target t[DIR_MAX_TARGETS];

	for (size_t i = 0; i < ARRAY_SIZE(resolve_cases); i++) {
		char got[2048] = "";
		size_t n = 99;
		enum dir_status s = dir_resolve(d, resolve_cases[i].address, resolve_cases[i].delimiter, t, &n);

		for (size_t k = 0; s == DIR_OK && k < n; k++) {
			char want_maildir[4200];
			const char *at = strchr(t[k].address, '@');
			snprintf(want_maildir, sizeof(want_maildir), "%s/mail/%s/%.*s", root, at + 1,
				 (int)(at - t[k].address), t[k].address);
			CHECK(strcmp(t[k].maildir, want_maildir) == 0, "'%s': maildir %s, want %s",
			      resolve_cases[i].address, t[k].maildir, want_maildir);
			if (k)
				strcat(got, ",");
			strcat(got, t[k].address);
		}
		CHECK(s == resolve_cases[i].want && strcmp(got, resolve_cases[i].targets) == 0 &&
		      (s == DIR_OK) == (n > 0),
		      "resolve '%s' delim '%s': got %s [%s] n=%zu, want %s [%s]", resolve_cases[i].address,
		      resolve_cases[i].delimiter ? resolve_cases[i].delimiter : "(null)", status_name(s), got, n,
		      status_name(resolve_cases[i].want), resolve_cases[i].targets);
	}
	/* The quota travels with the target. */
	size_t n = 0;
	CHECK(dir_resolve(d, "bob@example.test", "+", t, &n) == DIR_OK && n == 1 && t[0].quota == 1048576,
	      "bob's quota %llu", (unsigned long long)t[0].quota);
}

/* ---- maildirs made by user add ------------------------------------------ */

static void test_user_maildir(void)
{
	static const char *const subdirs[] = {
		"tmp", "new", "cur",
		".Drafts/tmp", ".Drafts/new", ".Drafts/cur",
		".Sent/tmp", ".Sent/new", ".Sent/cur",
		".Trash/tmp", ".Trash/new", ".Trash/cur",
		".Junk/tmp", ".Junk/new", ".Junk/cur",
		".Archive/tmp", ".Archive/new", ".Archive/cur",
	};
	static const char *const folders[] = { "Drafts", "Sent", "Trash", "Junk", "Archive" };
	char p[1024];

	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
		snprintf(p, sizeof(p), "%s/mail/example.test/alice/%s", root, subdirs[i]);
		CHECK(is_dir(p), "%s is not a directory", p);
	}
	for (size_t i = 0; i < ARRAY_SIZE(folders); i++) {
		snprintf(p, sizeof(p), "%s/mail/example.test/alice/.%s/maildirfolder", root, folders[i]);
		CHECK(is_file(p), "%s is missing", p);
	}
	snprintf(p, sizeof(p), "%s/mail/example.test/alice/subscriptions", root);
	FILE *f = fopen(p, "r");
	char content[256] = "";
	size_t len = f ? fread(content, 1, sizeof(content) - 1, f) : 0;
	content[len] = '\0';
	if (f)
		fclose(f);
	CHECK(strcmp(content, "Drafts\nSent\nTrash\nJunk\nArchive\n") == 0, "subscriptions: '%s'", content);
	snprintf(p, sizeof(p), "%s/mail/example.test/a+b/new", root);
	CHECK(is_dir(p), "%s is not a directory", p);
}

/* ---- deletion rules ------------------------------------------------------ */

static void test_delete(void)
{
	struct dir_target t[DIR_MAX_TARGETS];
	size_t n;

	OP(-EBUSY, "domain example.test still has 6 users; delete them first",
	   dir_domain_del(d, "example.test", err, errlen));
	OP(-EBUSY, "domain other.test still has 1 alias; delete it first",
	   dir_domain_del(d, "other.test", err, errlen));
	OP(-ENOENT, "unknown domain nowhere.test", dir_domain_del(d, "nowhere.test", err, errlen));
	OP(0, NULL, dir_domain_del(d, "empty.test", err, errlen));
	CHECK(dir_domain_exists(d, "empty.test") == 0, "empty.test still exists");
	CHECK(dir_domain_exists(d, "EXAMPLE.test") == 1, "example.test does not exist");

	/* Deleting a user takes its alias entries along (and says how many)
	 * and moves the Maildir aside, out of mail/ (test-user-admin.c has the
	 * details). */
	char p[1100], moved[1024];
	OP(1, NULL, dir_user_del(d, "first-last@example.test", moved, sizeof(moved), err, errlen));
	CHECK(dir_resolve(d, "gone@example.test", "+", t, &n) == DIR_NO_USER, "alias to a deleted user resolves");
	OP(-ENOENT, "unknown user first-last@example.test",
	   dir_user_del(d, "first-last@example.test", NULL, 0, err, errlen));
	snprintf(p, sizeof(p), "%s/mail/example.test/first-last", root);
	CHECK(!is_dir(p), "the maildir of a deleted user is still in mail/");
	snprintf(p, sizeof(p), "%s/new", moved);
	CHECK(is_dir(p), "the maildir of a deleted user is not at %s", moved);

	OP(-ENOENT, "no alias info@example.test -> alice@example.test",
	   dir_alias_del(d, "info@example.test", "alice@example.test", err, errlen));
	OP(-ENOENT, "no alias nothing@example.test", dir_alias_del(d, "nothing@example.test", NULL, err, errlen));
	OP(1, NULL, dir_alias_del(d, "SALES@example.test", "bob@example.test", err, errlen));
	CHECK(dir_resolve(d, "sales@example.test", "+", t, &n) == DIR_OK && n == 1 &&
	      strcmp(t[0].address, "alice@example.test") == 0, "sales after removing bob");
	OP(2, NULL, dir_alias_del(d, "team@example.test", NULL, err, errlen));
	CHECK(dir_resolve(d, "team@example.test", "+", t, &n) == DIR_NO_USER, "team after deletion");

	/* A re-added user gets a new Maildir, not the old one. */
	OP(0, NULL, dir_user_add(d, "first-last@example.test", "again", 0, err, errlen));

	/* A domain with only a catch-all goes once the alias goes. */
	OP(1, NULL, dir_alias_del(d, "@other.test", NULL, err, errlen));
	OP(0, NULL, dir_domain_del(d, "other.test", err, errlen));
	CHECK(dir_resolve(d, "anything@other.test", "+", t, &n) == DIR_NOT_LOCAL, "deleted domain still local");
}

/* ---- lists --------------------------------------------------------------- */

struct collect {
	char text[2048];
	int calls;
};

static void add_line(struct collect *c, const char *s)
{
	size_t len = strlen(c->text);
	snprintf(c->text + len, sizeof(c->text) - len, "%s;", s);
	c->calls++;
}

static void domain_cb(void *ctx, const char *domain)
{
	add_line(ctx, domain);
}

static void user_cb(void *ctx, const struct dir_user *u)
{
	char line[400];
	snprintf(line, sizeof(line), "%s/%llu/%d", u->address, (unsigned long long)u->quota, u->enabled);
	add_line(ctx, line);
}

static void alias_cb(void *ctx, const char *alias, const char *target)
{
	char line[700];
	snprintf(line, sizeof(line), "%s>%s", alias, target);
	add_line(ctx, line);
}

static void test_lists(void)
{
	struct collect c;
	int n;

	memset(&c, 0, sizeof(c));
	n = dir_domain_list(d, domain_cb, &c);
	CHECK(n == 3 && strcmp(c.text, "empty.test;example.test;other.test;") == 0, "domains: %d '%s'", n, c.text);

	memset(&c, 0, sizeof(c));
	n = dir_user_list(d, "example.test", user_cb, &c);
	CHECK(n == 6 && strcmp(c.text, "a+b@example.test/0/1;alice@example.test/5000/1;bob@example.test/1048576/1;"
			       "carol@example.test/0/0;dave@example.test/0/1;first-last@example.test/0/1;") == 0,
	      "users: %d '%s'", n, c.text);
	memset(&c, 0, sizeof(c));
	CHECK(dir_user_list(d, "empty.test", user_cb, &c) == 0 && c.calls == 0, "users of empty.test");
	memset(&c, 0, sizeof(c));
	CHECK(dir_user_list(d, NULL, user_cb, &c) == 6, "all users");

	memset(&c, 0, sizeof(c));
	n = dir_alias_list(d, alias_cb, &c);
	CHECK(n == 8 && strcmp(c.text, "@other.test>dave@example.test;gone@example.test>first-last@example.test;"
			       "info@example.test>bob@example.test;off@example.test>carol@example.test;"
			       "sales@example.test>alice@example.test;sales@example.test>bob@example.test;"
			       "team@example.test>alice@example.test;team@example.test>carol@example.test;") == 0,
	      "aliases: %d '%s'", n, c.text);
}

/* ---- passwords and logins ----------------------------------------------- */

static void test_passwords(void)
{
	char y[PASSWORD_HASH_MAX], y2[PASSWORD_HASH_MAX], sha512[PASSWORD_HASH_MAX];
	char sha256[PASSWORD_HASH_MAX], bcrypt[PASSWORD_HASH_MAX];

	CHECK(password_hash("secret", y, sizeof(y)) == 0 && strncmp(y, "$y$", 3) == 0, "yescrypt hash: %s", y);
	CHECK(password_hash("secret", y2, sizeof(y2)) == 0 && strcmp(y, y2) != 0, "two hashes share a salt");
	CHECK(password_hash("secret", y2, 10) == -ENOBUFS, "a short buffer accepted");
	make_hash("$6$", 0, "secret", sha512, sizeof(sha512));
	make_hash("$5$", 0, "secret", sha256, sizeof(sha256));
	make_hash("$2b$", 5, "secret", bcrypt, sizeof(bcrypt));
	/* A stored hash with junk after it must not match on its prefix. */
	char sha512_junk[PASSWORD_HASH_MAX + 8];
	snprintf(sha512_junk, sizeof(sha512_junk), "%sjunk", sha512);

	const struct {
		const char *name;
		const char *hash;
		const char *password;
		int want;
	} cases[] = {
		{ "yescrypt", y, "secret", 0 },
		{ "yescrypt", y, "Secret", -EACCES },
		{ "yescrypt", y, "", -EACCES },
		{ "sha512", sha512, "secret", 0 },
		{ "sha512", sha512, "secret ", -EACCES },
		{ "sha512+junk", sha512_junk, "secret", -EACCES },
		{ "sha256", sha256, "secret", 0 },
		{ "sha256", sha256, "nope", -EACCES },
		{ "bcrypt", bcrypt, "secret", 0 },
		{ "bcrypt", bcrypt, "secreT", -EACCES },
		{ "garbage", "$z$not-a-hash", "secret", -EINVAL },
		{ "empty", "", "secret", -EINVAL },
		{ "locked", "!$6$abc", "secret", -EINVAL },
		{ "star", "*", "secret", -EINVAL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = password_verify(cases[i].password, cases[i].hash);
		CHECK(r == cases[i].want, "verify %s '%s': got %d, want %d", cases[i].name, cases[i].password, r,
		      cases[i].want);
	}

	/* Hashes fit for import: complete, of a scheme libcrypt knows. */
	char truncated[PASSWORD_HASH_MAX];
	snprintf(truncated, sizeof(truncated), "%.*s", (int)strlen(sha512) - 3, sha512);
	const struct {
		const char *hash;
		int want;
	} imports[] = {
		{ y, 0 }, { sha512, 0 }, { sha256, 0 }, { bcrypt, 0 },
		{ truncated, -EINVAL }, { sha512_junk, -EINVAL }, { "$6$abc$def", -EINVAL },
		{ "$6$abc", -EINVAL }, { "$y$", -EINVAL }, { "$z$abc$def", -EINVAL }, { "plain", -EINVAL },
		{ "", -EINVAL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(imports); i++) {
		int r = password_check_hash(imports[i].hash);
		CHECK(r == imports[i].want, "check_hash '%s': got %d, want %d", imports[i].hash, r, imports[i].want);
	}

	/* Imported hashes log in. */
	OP(0, NULL, dir_user_set_hash(d, "dave@example.test", sha512, err, errlen));
	OP(0, NULL, dir_user_set_hash(d, "a+b@example.test", bcrypt, err, errlen));
	OP(-EINVAL, "not a complete hash", dir_user_set_hash(d, "dave@example.test", "$z$junk", err, errlen));
	OP(-EINVAL, "not a complete hash", dir_user_set_hash(d, "dave@example.test", truncated, err, errlen));
	OP(-EINVAL, "not a crypt(3) hash", dir_user_set_hash(d, "dave@example.test", "$6$a:b", err, errlen));
	OP(-ENOENT, "unknown user", dir_user_set_hash(d, "nobody@example.test", sha512, err, errlen));
	OP(0, NULL, dir_user_passwd(d, "bob@example.test", "new-bob-pw", err, errlen));
	OP(-ENOENT, "unknown user nobody@example.test", dir_user_passwd(d, "nobody@example.test", "x", err, errlen));
	OP(-EINVAL, "empty password", dir_user_passwd(d, "bob@example.test", "", err, errlen));
	OP(0, NULL, dir_user_set_quota(d, "alice@example.test", 5000, err, errlen));
	OP(-ENOENT, "unknown user", dir_user_set_quota(d, "nobody@example.test", 5000, err, errlen));
	OP(-ENOENT, "unknown user", dir_user_set_enabled(d, "nobody@example.test", 1, err, errlen));

	static const struct {
		const char *address;
		const char *password;
		int want;
		const char *canonical;
	} logins[] = {
		{ "alice@example.test", "alice-pw", 0, "alice@example.test" },
		{ "ALICE@Example.Test", "alice-pw", 0, "alice@example.test" },
		{ "alice@example.test", "ALICE-PW", -EACCES, NULL },
		{ "alice@example.test", "", -EACCES, NULL },
		{ "alice+tag@example.test", "alice-pw", -EACCES, NULL },  /* logins are exact */
		{ "sales@example.test", "alice-pw", -EACCES, NULL },      /* aliases do not log in */
		{ "bob@example.test", "bob-pw", -EACCES, NULL },          /* the old password */
		{ "bob@example.test", "new-bob-pw", 0, "bob@example.test" },
		{ "carol@example.test", "carol-pw", -EACCES, NULL },      /* disabled */
		{ "dave@example.test", "secret", 0, "dave@example.test" },/* $6$ */
		{ "dave@example.test", "dave-pw", -EACCES, NULL },
		{ "a+b@example.test", "secret", 0, "a+b@example.test" },  /* $2b$ */
		{ "nobody@example.test", "x", -EACCES, NULL },
		{ "nobody@nowhere.test", "x", -EACCES, NULL },
		{ "not an address", "x", -EACCES, NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(logins); i++) {
		char canon[320] = "unset";
		int r = dir_authenticate(d, logins[i].address, logins[i].password, canon);
		CHECK(r == logins[i].want, "login %s / %s: got %d, want %d", logins[i].address, logins[i].password, r,
		      logins[i].want);
		if (r == 0 && logins[i].canonical)
			CHECK(strcmp(canon, logins[i].canonical) == 0, "login %s: canonical %s", logins[i].address, canon);
	}
	CHECK(dir_user_set_enabled(d, "carol@example.test", 1, NULL, 0) == 0, "enable carol");
	CHECK(dir_authenticate(d, "carol@example.test", "carol-pw", NULL) == 0, "carol after enabling");
	CHECK(dir_user_set_enabled(d, "carol@example.test", 0, NULL, 0) == 0, "disable carol");
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An unknown user costs a hash too: without the dummy verify the login
 * would answer a thousand times faster. The bound is loose on purpose. */
static void test_login_timing(void)
{
	double t0, known, unknown;

	t0 = now();
	for (int i = 0; i < 3; i++)
		dir_authenticate(d, "alice@example.test", "wrong", NULL);
	known = now() - t0;
	t0 = now();
	for (int i = 0; i < 3; i++)
		dir_authenticate(d, "nobody@example.test", "wrong", NULL);
	unknown = now() - t0;
	CHECK(unknown > known * 0.3, "unknown user login took %.4fs, known %.4fs", unknown, known);
}

/* ---- SCRAM secrets and the SASL backend ----------------------------------- */

static int client_cb(Gsasl *g, Gsasl_session *s, Gsasl_property prop)
{
	const char *const *cred = gsasl_session_hook_get(s);

	(void)g;
	if (prop == GSASL_AUTHID)
		return gsasl_property_set(s, prop, cred[0]);
	if (prop == GSASL_PASSWORD)
		return gsasl_property_set(s, prop, cred[1]);
	return GSASL_NO_CALLBACK;
}

/* One whole exchange of mech through dir_sasl_backend(): the result, and
 * the user in user_r (320). */
static int sasl_login(const char *mech, const char *user, const char *password, char *user_r)
{
	static struct sasl_ctx *sctx;
	static Gsasl *cctx;
	const char *cred[2] = { user, password };
	struct sasl_backend b;
	struct sasl_exchange *x = NULL;
	Gsasl_session *cs = NULL;
	const unsigned char *out;
	size_t outlen, rl;
	char *resp = NULL;
	int r, rc;

	if (!sctx) {
		unsigned char secret[SASL_CTX_SECRET_LEN];
		CHECK(dir_sasl_secret(d, secret) == 0, "dir_sasl_secret");
		CHECK(sasl_ctx_new(secret, sizeof(secret), &sctx) == 0, "sasl_ctx_new");
		gsasl_init(&cctx);
		gsasl_callback_set(cctx, client_cb);
	}
	dir_sasl_backend(d, &b);
	user_r[0] = '\0';
	if (sasl_exchange_new(sctx, mech, 1, NULL, &x) < 0 || gsasl_client_start(cctx, mech, &cs) != GSASL_OK)
		return 99;
	gsasl_session_hook_set(cs, cred);
	gsasl_step(cs, NULL, 0, &resp, &rl);
	r = sasl_exchange_step(x, &b, (unsigned char *)resp, rl, &out, &outlen);
	gsasl_free(resp);
	while (r == SASL_STEP_CONTINUE) {
		resp = NULL;
		rl = 0;
		rc = gsasl_step(cs, (const char *)out, outlen, &resp, &rl);
		if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
			r = 100 + rc;
			break;
		}
		r = sasl_exchange_step(x, &b, (unsigned char *)(resp ? resp : ""), rl, &out, &outlen);
		gsasl_free(resp);
	}
	snprintf(user_r, 320, "%s", sasl_exchange_user(x));
	sasl_exchange_free(&x);
	gsasl_finish(cs);
	return r;
}

static void test_scram(void)
{
	struct sasl_scram_user u, u2;
	unsigned char key[SASL_CTX_SECRET_LEN], key2[SASL_CTX_SECRET_LEN];
	char user[320];

	/* written at user add */
	CHECK(dir_scram_lookup(d, "Alice@Example.TEST", SASL_SCRAM_SHA256, &u) == 1, "lookup alice");
	CHECK(u.enabled && strcmp(u.canonical, "alice@example.test") == 0, "alice: %d %s", u.enabled, u.canonical);
	CHECK(sasl_scram_secret_check(SASL_SCRAM_SHA256, u.secret) == 0 && strncmp(u.secret, "SCRAM-SHA-256$", 14) == 0,
	      "alice's SCRAM-SHA-256 secret: %s", u.secret);
	CHECK(dir_scram_lookup(d, "alice@example.test", SASL_SCRAM_SHA1, &u) == 1 &&
	      sasl_scram_secret_check(SASL_SCRAM_SHA1, u.secret) == 0, "alice's SCRAM-SHA-1 secret: %s", u.secret);
	/* replaced at user passwd */
	CHECK(dir_scram_lookup(d, "bob@example.test", SASL_SCRAM_SHA256, &u) == 1 && u.secret[0], "bob");
	OP(0, NULL, dir_user_passwd(d, "bob@example.test", "newer-bob-pw", err, errlen));
	CHECK(dir_scram_lookup(d, "bob@example.test", SASL_SCRAM_SHA256, &u2) == 1 && u2.secret[0] &&
	      strcmp(u.secret, u2.secret) != 0, "bob's secret after passwd");
	/* removed by an imported hash (dave), kept for a disabled user (carol) */
	CHECK(dir_scram_lookup(d, "dave@example.test", SASL_SCRAM_SHA256, &u) == 1 && !u.secret[0] && u.enabled,
	      "dave (imported hash) has a secret: %s", u.secret);
	CHECK(dir_scram_lookup(d, "carol@example.test", SASL_SCRAM_SHA1, &u) == 1 && !u.enabled && u.secret[0],
	      "carol (disabled)");
	CHECK(dir_scram_lookup(d, "nobody@example.test", SASL_SCRAM_SHA1, &u) == 0 && !u.canonical[0], "nobody");
	CHECK(dir_scram_lookup(d, "sales@example.test", SASL_SCRAM_SHA1, &u) == 0, "an alias");
	CHECK(dir_scram_lookup(d, "not an address", SASL_SCRAM_SHA1, &u) == 0, "not an address");
	/* passwords SASL would carry changed are refused */
	OP(-EINVAL, "SASL", dir_user_passwd(d, "bob@example.test", "a\x01b", err, errlen));
	OP(-EINVAL, "SASL", dir_user_passwd(d, "bob@example.test", "non\xc2\xa0" "breaking", err, errlen));
	OP(-EINVAL, "SASL", dir_user_add(d, "eve@example.test", "a\x7f", 0, err, errlen));
	CHECK(dir_user_exists(d, "eve@example.test") == 0, "eve was added");
	OP(0, NULL, dir_user_passwd(d, "bob@example.test", "p\xc3\xa4ss w\xc3\xb6rd", err, errlen));
	/* the key of the fake salts: there, and the same on every read */
	CHECK(dir_sasl_secret(d, key) == 0 && dir_sasl_secret(d, key2) == 0 && memcmp(key, key2, sizeof(key)) == 0,
	      "sasl secret");

	/* whole exchanges against the directory */
	CHECK(sasl_login("SCRAM-SHA-256", "alice@example.test", "alice-pw", user) == SASL_STEP_SUCCESS &&
	      strcmp(user, "alice@example.test") == 0, "alice over SCRAM-SHA-256: %s", user);
	CHECK(sasl_login("SCRAM-SHA-1", "bob@example.test", "p\xc3\xa4ss w\xc3\xb6rd", user) == SASL_STEP_SUCCESS,
	      "bob over SCRAM-SHA-1 with a UTF-8 password");
	CHECK(sasl_login("SCRAM-SHA-256", "alice@example.test", "wrong", user) == SASL_STEP_FAILURE, "wrong pw");
	CHECK(sasl_login("SCRAM-SHA-256", "carol@example.test", "carol-pw", user) == SASL_STEP_FAILURE, "disabled");
	CHECK(sasl_login("SCRAM-SHA-256", "dave@example.test", "secret", user) == SASL_STEP_FAILURE,
	      "dave (no SCRAM secret) over SCRAM");
	CHECK(sasl_login("PLAIN", "dave@example.test", "secret", user) == SASL_STEP_SUCCESS &&
	      strcmp(user, "dave@example.test") == 0, "dave over PLAIN");
	CHECK(sasl_login("LOGIN", "ALICE@example.test", "alice-pw", user) == SASL_STEP_SUCCESS &&
	      strcmp(user, "alice@example.test") == 0, "alice over LOGIN: %s", user);
	CHECK(sasl_login("PLAIN", "nobody@example.test", "x", user) == SASL_STEP_FAILURE, "nobody over PLAIN");
}

/* A database of schema version 1 (0001-initial.sql) with a user: opening it
 * migrates it, and the old user logs in as before, with PLAIN but not SCRAM,
 * until a new password gives the secrets. */
static void test_migration_v1(void)
{
	char dir1[512], path[600], hash[PASSWORD_HASH_MAX], why[256], user[320];
	struct dir *saved = d;
	struct sasl_scram_user u;
	sqlite3 *db;
	sqlite3_stmt *st;

	snprintf(dir1, sizeof(dir1), "%s-v1", root);
	CHECK(mkdir(dir1, 0700) == 0, "mkdir %s", dir1);
	snprintf(path, sizeof(path), "%s/buzon.db", dir1);
	CHECK(password_hash("old-pw", hash, sizeof(hash)) == 0, "hash");
	CHECK(sqlite3_open(path, &db) == SQLITE_OK, "open v1");
	CHECK(strcmp(schema_migrations[0].name, "0001-initial.sql") == 0, "first migration");
	CHECK(sqlite3_exec(db, schema_migrations[0].sql, NULL, NULL, NULL) == SQLITE_OK, "0001");
	char *sql = sqlite3_mprintf("INSERT INTO schema_version VALUES (1);"
				    " INSERT INTO domains (name) VALUES ('old.test');"
				    " INSERT INTO users (domain_id, localpart, password) VALUES (1, 'olduser', %Q);", hash);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "v1 data");
	sqlite3_free(sql);
	sqlite3_close(db);

	d = NULL;
	CHECK(dir_open(dir1, &d, why, sizeof(why)) == 0, "open the v1 database: %s", why);
	if (!d) {
		d = saved;
		return;
	}
	CHECK(sqlite3_open(path, &db) == SQLITE_OK, "reopen");
	CHECK(sqlite3_prepare_v2(db, "SELECT (SELECT version FROM schema_version),"
				 " (SELECT count(*) FROM users WHERE scram_sha1 IS NULL AND scram_sha256 IS NULL),"
				 " (SELECT length(value) FROM settings WHERE key = 'sasl_secret')", -1, &st, NULL) == SQLITE_OK,
	      "query");
	CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 3 && sqlite3_column_int(st, 1) == 1 &&
	      sqlite3_column_int(st, 2) == 64, "after migration: version %d, users without secrets %d, secret %d",
	      sqlite3_column_int(st, 0), sqlite3_column_int(st, 1), sqlite3_column_int(st, 2));
	sqlite3_finalize(st);
	CHECK(dir_authenticate(d, "olduser@old.test", "old-pw", NULL) == 0, "the old user logs in");
	CHECK(dir_scram_lookup(d, "olduser@old.test", SASL_SCRAM_SHA256, &u) == 1 && !u.secret[0] && u.enabled,
	      "no secret before the next passwd");
	CHECK(sasl_login("PLAIN", "olduser@old.test", "old-pw", user) == SASL_STEP_SUCCESS, "PLAIN after migration");
	CHECK(sasl_login("SCRAM-SHA-256", "olduser@old.test", "old-pw", user) == SASL_STEP_FAILURE,
	      "SCRAM before the next passwd");
	OP(0, NULL, dir_user_passwd(d, "olduser@old.test", "new-pw", err, errlen));
	CHECK(sasl_login("SCRAM-SHA-256", "olduser@old.test", "new-pw", user) == SASL_STEP_SUCCESS &&
	      strcmp(user, "olduser@old.test") == 0, "SCRAM after passwd");
	/* a schema CHECK keeps junk out of the columns */
	CHECK(sqlite3_exec(db, "UPDATE users SET scram_sha1 = 'junk'", NULL, NULL, NULL) != SQLITE_OK, "junk secret");
	sqlite3_close(db);
	dir_close(&d);
	d = saved;
	nftw(dir1, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- schema, reopen, normalize ------------------------------------------ */

/* The failed-login table in buzon.db: a save, a load, the CLI's clear taken
 * by the next save, the list. */
static void count_cb(void *ctx, const struct lockout_record *r)
{
	(void)r;
	(*(int *)ctx)++;
}

static void test_lockout_rows(void)
{
	struct lockout_record in[2], *out = NULL;
	char **cleared = NULL;
	size_t n = 0, nc = 0;
	int listed = 0;

	memset(in, 0, sizeof(in));
	snprintf(in[0].address, sizeof(in[0].address), "192.0.2.1");
	in[0].failures = 7;
	in[0].last_ms = 1700000000123ULL;
	in[0].window_failures = 3;
	in[0].window_start_ms = 1700000000000ULL;
	in[0].locked_until_ms = 1700000900000ULL;
	snprintf(in[1].address, sizeof(in[1].address), "2001:db8::1");
	in[1].failures = 1;
	CHECK(dir_lockout_save(d, in, 2, &cleared, &nc) == 0 && nc == 0, "save");
	CHECK(dir_lockout_load(d, &out, &n) == 0 && n == 2, "load: %zu", n);
	CHECK(out && memcmp(&out[0], &in[0], sizeof(in[0])) == 0, "round trip of every field");
	free(out);
	CHECK(dir_lockout_clear(d, "192.0.2.1") == 1, "clear a stored address");
	CHECK(dir_lockout_clear(d, "198.51.100.1") == 0, "clear an address not stored");
	CHECK(dir_lockout_list(d, count_cb, &listed) == 0 && listed == 1, "list after the clear: %d", listed);
	/* a server that still has 192.0.2.1 in memory does not write it back */
	CHECK(dir_lockout_save(d, in, 2, &cleared, &nc) == 0 && nc == 2, "clears taken: %zu", nc);
	dir_strings_free(cleared, nc);
	listed = 0;
	CHECK(dir_lockout_list(d, count_cb, &listed) == 0 && listed == 1, "list after the save: %d", listed);
	/* nothing to write and nothing cleared: nothing happens */
	CHECK(dir_lockout_save(d, NULL, 0, &cleared, &nc) == 0 && nc == 0, "read-only pass");
	listed = 0;
	CHECK(dir_lockout_list(d, count_cb, &listed) == 0 && listed == 1, "list unchanged: %d", listed);
	CHECK(dir_lockout_save(d, in, 0, &cleared, &nc) == 0, "empty table");
}

static void test_schema(void)
{
	char path[512], out[320], err[256];
	sqlite3 *db;
	sqlite3_stmt *st;
	struct dir *d2 = NULL;

	dir_close(&d);
	CHECK(d == NULL, "dir_close did not clear the pointer");
	CHECK(dir_open(root, &d, err, sizeof(err)) == 0, "reopen: %s", err);
	CHECK(dir_open(root, &d2, err, sizeof(err)) == 0, "second connection: %s", err);
	CHECK(dir_domain_exists(d2, "example.test") == 1, "second connection sees the data");
	dir_close(&d2);

	snprintf(path, sizeof(path), "%s/buzon.db", root);
	struct stat sb;
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0077) == 0, "buzon.db is readable by others");
	CHECK(sqlite3_open(path, &db) == SQLITE_OK, "sqlite3_open");
	static const struct {
		const char *sql;
		const char *want;
	} q[] = {
		{ "SELECT version FROM schema_version", "3" },
		{ "SELECT count(*) FROM sqlite_master WHERE name IN ('auth_failures','auth_clears')", "2" },
		{ "SELECT count(*) FROM schema_version", "1" },
		{ "PRAGMA journal_mode", "wal" },
		{ "SELECT localpart FROM users WHERE localpart = 'alice'", "alice" },
		{ "SELECT count(*) FROM sqlite_master WHERE name IN ('domains','users','aliases','settings')", "4" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(q); i++) {
		const char *got = "(none)";
		CHECK(sqlite3_prepare_v2(db, q[i].sql, -1, &st, NULL) == SQLITE_OK, "%s", q[i].sql);
		if (sqlite3_step(st) == SQLITE_ROW)
			got = (const char *)sqlite3_column_text(st, 0);
		CHECK(got && strcmp(got, q[i].want) == 0, "%s: got %s, want %s", q[i].sql, got ? got : "NULL", q[i].want);
		sqlite3_finalize(st);
	}
	/* The schema itself refuses what the code never writes. */
	CHECK(sqlite3_exec(db, "PRAGMA foreign_keys = ON; INSERT INTO users (domain_id, localpart, password)"
			   " VALUES (9999, 'x', 'h')", NULL, NULL, NULL) != SQLITE_OK, "a user without a domain");
	CHECK(sqlite3_exec(db, "INSERT INTO domains (name) VALUES ('UPPER.test')", NULL, NULL, NULL) != SQLITE_OK,
	      "an upper-case domain");
	/* A database from a newer buzon is refused, not damaged. */
	CHECK(sqlite3_exec(db, "UPDATE schema_version SET version = 999", NULL, NULL, NULL) == SQLITE_OK, "bump");
	CHECK(dir_open(root, &d2, err, sizeof(err)) == -EPROTO && strstr(err, "newer"), "newer schema: %s", err);
	CHECK(sqlite3_exec(db, "UPDATE schema_version SET version = 3", NULL, NULL, NULL) == SQLITE_OK, "restore");
	sqlite3_close(db);

	static const struct {
		const char *in;
		int want;
		const char *out;
	} norm[] = {
		{ "Alice@Example.TEST", 0, "alice@example.test" },
		{ "a.b+c@x.y", 0, "a.b+c@x.y" },
		{ "x@localhost", 0, "x@localhost" },
		{ "a%b@x.y", -EINVAL, NULL },
		{ "a@b@c", -EINVAL, NULL },
		{ "@x.y", -EINVAL, NULL },
		{ NULL, -EINVAL, NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(norm); i++) {
		int r = dir_normalize_address(norm[i].in, out, sizeof(out), err, sizeof(err));
		CHECK(r == norm[i].want && (!norm[i].out || strcmp(out, norm[i].out) == 0),
		      "normalize '%s': %d '%s'", norm[i].in ? norm[i].in : "(null)", r, r == 0 ? out : err);
	}
	CHECK(dir_normalize_address("alice@example.test", out, 5, err, sizeof(err)) < 0, "short buffer accepted");
}

/* ---- several threads resolving at once --------------------------------- */

static void *resolver(void *arg)
{
	struct dir_target *t = xmalloc(sizeof(*t) * DIR_MAX_TARGETS);
	int *errors = arg;
	size_t n;

	for (int i = 0; i < 200; i++) {
		if (dir_resolve(d, "alice+x@example.test", "+", t, &n) != DIR_OK || n != 1)
			(*errors)++;
		if (dir_resolve(d, "nobody@example.test", "+", t, &n) != DIR_NO_USER)
			(*errors)++;
	}
	free(t);
	return NULL;
}

static void test_threads(void)
{
	pthread_t th[4];
	int errors[4] = { 0 };

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, resolver, &errors[i]);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(errors[i] == 0, "thread %d: %d wrong answers", i, errors[i]);
	}
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	char err[256];

	snprintf(root, sizeof(root), "%s/buzon-test-directory-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 2;
	}
	/* dir_open creates a missing data_dir. */
	char data[300];
	snprintf(data, sizeof(data), "%s", root);
	strcat(root, "/data");
	if (dir_open(root, &d, err, sizeof(err)) < 0) {
		fprintf(stderr, "FAIL dir_open: %s\n", err);
		return 1;
	}
	setup();
	test_user_maildir();
	test_resolve();
	test_passwords();
	test_login_timing();
	test_scram();
	test_migration_v1();
	test_threads();
	test_schema();
	test_lockout_rows();
	test_lists();
	test_delete();
	dir_close(&d);
	nftw(data, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (failures) {
		fprintf(stderr, "test-directory: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test-directory: all checks passed\n");
	return 0;
}
