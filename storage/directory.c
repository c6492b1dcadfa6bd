#include "storage/directory.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/sasl.h"
#include "lib/xalloc.h"
#include "schema/schema.h"
#include "storage/maildir.h"
#include "storage/password.h"
#include "storage/storage-private.h"

#define LOCAL_MAX 64
#define DOMAIN_MAX 253
#define ADDRESS_MAX (LOCAL_MAX + 1 + DOMAIN_MAX)
#define BUSY_TIMEOUT_MS 5000

/*
 * One SQLite connection shared by every thread. The connection is opened in
 * serialized mode, and lock makes each public call (which may be several
 * statements and a transaction) one unit: without it, a BEGIN on one thread
 * would swallow another thread's statements. The lock is recursive so that
 * a list callback may call back into the directory.
 */
struct dir {
	sqlite3 *db;
	char *data_dir;
	pthread_mutex_t lock;
	/* the file db was opened on, for dir_reopen() */
	dev_t db_dev;
	ino_t db_ino;
};

/* The Maildir++ folders every new user gets, also written to the
 * "subscriptions" file so that IMAP clients show them. */
static const char *const default_folders[] = { "Drafts", "Sent", "Trash", "Junk", "Archive" };

/* A yescrypt hash (default cost) of a password nobody has: verified for
 * unknown users so that a failed login takes as long either way. */
static const char dummy_hash[] = "$y$j9T$01zqEpWPO5qt/GRlHYphY1$qH3EfGwLqci0USYYqQSJhfphLXMKb5Vpj9Pd2GL0Oq0";

/* A parsed, lower-cased address; local is "" for a catch-all "@domain". */
struct addr {
	char local[LOCAL_MAX + 1];
	char domain[DOMAIN_MAX + 1];
};

enum addr_class {
	ADDR_OK,
	ADDR_BAD,    /* not an address we accept */
	ADDR_ROUTE,  /* tries to route elsewhere (%, !, source route, quoting, literal) */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Length of the well-formed UTF-8 sequence at p (at most n octets), 0 if bad. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	unsigned cp;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * A local part: a dot-atom (RFC 5322 atext, UTF-8 allowed as RFC 6531 does)
 * of at most 64 octets. '%', '!', '@', '/', quotes and backslashes are
 * routing (or quoting) tricks that never name a local mailbox; they also keep
 * the local part safe as a path component, with the dot rules that rule out
 * "." and "..".
 */
static enum addr_class parse_local(const char *s, size_t len, char *out, char *err, size_t errlen)
{
	const unsigned char *p = (const unsigned char *)s;

	if (len == 0) {
		seterr(err, errlen, "empty local part");
		return ADDR_BAD;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] && strchr("@%!/\"\\", s[i])) {
			seterr(err, errlen, "local part contains '%c' (routing is not accepted)", s[i]);
			return ADDR_ROUTE;
		}
	}
	if (len > LOCAL_MAX) {
		seterr(err, errlen, "local part is longer than %d octets", LOCAL_MAX);
		return ADDR_BAD;
	}
	if (s[0] == '.' || s[len - 1] == '.') {
		seterr(err, errlen, "local part starts or ends with '.'");
		return ADDR_BAD;
	}
	for (size_t i = 0; i < len; ) {
		unsigned char c = p[i];
		if (c >= 0x80) {
			size_t n = utf8_len(p + i, len - i);
			if (n == 0) {
				seterr(err, errlen, "local part is not valid UTF-8");
				return ADDR_BAD;
			}
			memcpy(out + i, s + i, n);
			i += n;
			continue;
		}
		if (c == '.' && i > 0 && s[i - 1] == '.') {
			seterr(err, errlen, "local part contains '..'");
			return ADDR_BAD;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c && strchr(".#$&'*+-=?^_`{|}~", c)))) {
			if (c < 0x20 || c == 0x7f)
				seterr(err, errlen, "local part contains a control character");
			else
				seterr(err, errlen, "local part contains '%c'", c);
			return ADDR_BAD;
		}
		out[i] = lower((char)c);
		i++;
	}
	out[len] = '\0';
	return ADDR_OK;
}

/* A host name of LDH labels; address literals ("[192.0.2.1]") are never local. */
static enum addr_class parse_domain(const char *s, char *out, char *err, size_t errlen)
{
	size_t len = strlen(s), label = 0;

	if (len == 0) {
		seterr(err, errlen, "empty domain");
		return ADDR_BAD;
	}
	if (s[0] == '[') {
		seterr(err, errlen, "address literals are not local domains");
		return ADDR_ROUTE;
	}
	if (len > DOMAIN_MAX) {
		seterr(err, errlen, "domain is longer than %d octets", DOMAIN_MAX);
		return ADDR_BAD;
	}
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				seterr(err, errlen, "domain '%s' has an empty or too long label", s);
				return ADDR_BAD;
			}
			if (s[i - 1] == '-') {
				seterr(err, errlen, "domain '%s' has a label ending in '-'", s);
				return ADDR_BAD;
			}
			label = 0;
			out[i] = c;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c == '-' && label > 0))) {
			if ((unsigned char)c >= 0x80)
				seterr(err, errlen, "domain '%s' is not ASCII (write it as xn--)", s);
			else
				seterr(err, errlen, "domain '%s' contains '%c'", s, c);
			return ADDR_BAD;
		}
		out[i] = lower(c);
		label++;
	}
	return ADDR_OK;
}

static enum addr_class parse_address(const char *in, struct addr *a, char *err, size_t errlen)
{
	const char *at;
	enum addr_class c;

	if (!in || !*in) {
		seterr(err, errlen, "empty address");
		return ADDR_BAD;
	}
	if (in[0] == '@') {
		seterr(err, errlen, "source routes are not accepted");
		return ADDR_ROUTE;
	}
	if (in[0] == '"') {
		seterr(err, errlen, "quoted local parts are not accepted");
		return ADDR_ROUTE;
	}
	at = strrchr(in, '@');
	if (!at) {
		seterr(err, errlen, "missing @domain");
		return ADDR_BAD;
	}
	c = parse_local(in, (size_t)(at - in), a->local, err, errlen);
	if (c != ADDR_OK)
		return c;
	return parse_domain(at + 1, a->domain, err, errlen);
}

/* An alias source: an address, or "@domain" for the domain's catch-all. */
static enum addr_class parse_alias(const char *in, struct addr *a, char *err, size_t errlen)
{
	if (in && in[0] == '@' && !strchr(in + 1, '@')) {
		a->local[0] = '\0';
		return parse_domain(in + 1, a->domain, err, errlen);
	}
	return parse_address(in, a, err, errlen);
}

static void addr_format(const struct addr *a, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s@%s", a->local, a->domain);
}

int dir_normalize_address(const char *address, char *out, size_t outlen, char *err, size_t errlen)
{
	struct addr a;
	char why[160];

	if (parse_address(address, &a, why, sizeof(why)) != ADDR_OK) {
		seterr(err, errlen, "invalid address '%s': %s", address ? address : "", why);
		return -EINVAL;
	}
	if (strlen(a.local) + 1 + strlen(a.domain) >= outlen) {
		seterr(err, errlen, "address is too long");
		return -ENAMETOOLONG;
	}
	addr_format(&a, out, outlen);
	return 0;
}

/* Checks and lower-cases a user address, with the reason in err. */
static int check_address(const char *address, struct addr *a, char *err, size_t errlen)
{
	char why[160];

	if (parse_address(address, a, why, sizeof(why)) != ADDR_OK) {
		seterr(err, errlen, "invalid address '%s': %s", address ? address : "", why);
		return -EINVAL;
	}
	return 0;
}

static int check_domain(const char *domain, char *out, char *err, size_t errlen)
{
	char why[160];

	if (!domain || parse_domain(domain, out, why, sizeof(why)) != ADDR_OK) {
		seterr(err, errlen, "invalid domain '%s': %s", domain ? domain : "", domain ? why : "empty");
		return -EINVAL;
	}
	return 0;
}

/* ---- SQLite helpers ---------------------------------------------------- */

static int sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EAGAIN;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		return -EIO;
	}
}

/* Logs a database failure, puts a reason in err and returns a negative errno. */
static int sql_fail(struct dir *d, int rc, const char *what, char *err, size_t errlen)
{
	char safe[200];

	log_error("dir", NULL, "sqlite error op=%s rc=%d msg=%s", what, rc,
		  log_safe(sqlite3_errmsg(d->db), safe, sizeof(safe)));
	seterr(err, errlen, "directory error during %s: %s", what, sqlite3_errstr(rc));
	return sql_errno(rc);
}

/* Prepares sql and binds the arguments described by types: 't' a string,
 * 'i' an int64_t (pass it as such). Returns an SQLite code. */
static int vprep(struct dir *d, sqlite3_stmt **st_r, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st;
	int rc;

	*st_r = NULL;
	rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	for (int i = 0; types[i]; i++) {
		if (types[i] == 't')
			rc = sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
		else if (types[i] == 'i')
			rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
		else
			BUG("bad bind type");
		if (rc != SQLITE_OK) {
			sqlite3_finalize(st);
			return rc;
		}
	}
	*st_r = st;
	return SQLITE_OK;
}

static int prep(struct dir *d, sqlite3_stmt **st_r, const char *sql, const char *types, ...)
{
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = vprep(d, st_r, sql, types, ap);
	va_end(ap);
	return rc;
}

/* Runs a statement that returns no rows; SQLITE_OK or the error code. */
static int sql_exec(struct dir *d, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = vprep(d, &st, sql, types, ap);
	va_end(ap);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Runs a query for one integer: SQLITE_ROW with *v_r set, SQLITE_DONE when
 * there is no row, or an error code. */
static int sql_int(struct dir *d, int64_t *v_r, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = vprep(d, &st, sql, types, ap);
	va_end(ap);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v_r = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

static int begin(struct dir *d)
{
	return sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
}

static int commit(struct dir *d)
{
	return sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
}

static void rollback(struct dir *d)
{
	if (!sqlite3_get_autocommit(d->db))
		sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
}

static void lock(struct dir *d)
{
	pthread_mutex_lock(&d->lock);
}

static void unlock(struct dir *d)
{
	pthread_mutex_unlock(&d->lock);
}

static const char sql_domain_id[] = "SELECT id FROM domains WHERE name = ?1";
static const char sql_user_id[] =
	"SELECT u.id FROM users u JOIN domains d ON d.id = u.domain_id"
	" WHERE d.name = ?1 AND u.localpart = ?2";

/* ---- open, migrate, close --------------------------------------------- */

static int pragma_text(struct dir *d, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	int rc;

	out[0] = '\0';
	rc = prep(d, &st, sql, "");
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		snprintf(out, outlen, "%s", t ? (const char *)t : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static int migrate(struct dir *d, char *err, size_t errlen)
{
	int64_t have = 0, version = 0;
	char *msg = NULL;
	int rc;

	/* IMMEDIATE: two processes opening a new database at once take turns. */
	rc = begin(d);
	if (rc != SQLITE_OK)
		return sql_fail(d, rc, "begin", err, errlen);
	rc = sql_int(d, &have, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'", "");
	if (rc == SQLITE_ROW && have)
		rc = sql_int(d, &version, "SELECT coalesce(max(version), 0) FROM schema_version", "");
	if (rc != SQLITE_ROW) {
		rc = sql_fail(d, rc, "schema check", err, errlen);
		rollback(d);
		return rc;
	}
	if (version > (int64_t)schema_n_migrations) {
		rollback(d);
		seterr(err, errlen, "database schema version %lld is newer than this buzon knows (%zu)",
		       (long long)version, schema_n_migrations);
		return -EPROTO;
	}
	if (version == (int64_t)schema_n_migrations) {
		rollback(d);
		return 0;
	}
	for (size_t i = (size_t)version; i < schema_n_migrations; i++) {
		const struct schema_migration *m = &schema_migrations[i];
		rc = sqlite3_exec(d->db, m->sql, NULL, NULL, &msg);
		if (rc != SQLITE_OK) {
			seterr(err, errlen, "schema migration %s failed: %s", m->name, msg ? msg : sqlite3_errstr(rc));
			log_error("dir", NULL, "schema migration failed file=%s rc=%d", m->name, rc);
			sqlite3_free(msg);
			rollback(d);
			return sql_errno(rc);
		}
	}
	rc = sql_exec(d, "DELETE FROM schema_version", "");
	if (rc == SQLITE_OK)
		rc = sql_exec(d, "INSERT INTO schema_version (version) VALUES (?1)", "i", (int64_t)schema_n_migrations);
	if (rc == SQLITE_OK)
		rc = commit(d);
	if (rc != SQLITE_OK) {
		rc = sql_fail(d, rc, "schema migration", err, errlen);
		rollback(d);
		return rc;
	}
	log_info("dir", NULL, "schema migrated from=%lld to=%zu", (long long)version, schema_n_migrations);
	return 0;
}

/* Opens d->db on path, sets it up and migrates the schema; on failure
 * d->db is closed again and err says why. */
static int db_connect(struct dir *d, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char mode[16];
	int64_t fk = 0;
	int rc, r;

	rc = sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		seterr(err, errlen, "cannot open %s: %s", path, d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
		r = sql_errno(rc);
		goto fail;
	}
	sqlite3_busy_timeout(d->db, BUSY_TIMEOUT_MS);
	rc = pragma_text(d, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
	if (rc == SQLITE_OK && strcmp(mode, "wal") != 0)
		log_warn("dir", NULL, "database is not in WAL mode journal_mode=%s", mode);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(d->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"
				  " PRAGMA secure_delete = ON", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sql_int(d, &fk, "PRAGMA foreign_keys", "") == SQLITE_ROW ? SQLITE_OK : SQLITE_ERROR;
	if (rc != SQLITE_OK) {
		seterr(err, errlen, "cannot set up %s: %s", path, sqlite3_errmsg(d->db));
		r = sql_errno(rc);
		goto fail;
	}
	if (fk != 1) {
		seterr(err, errlen, "this SQLite does not enforce foreign keys");
		r = -ENOTSUP;
		goto fail;
	}
	r = migrate(d, err, errlen);
	if (r < 0)
		goto fail;
	if (stat(path, &st) == 0) {
		d->db_dev = st.st_dev;
		d->db_ino = st.st_ino;
	}
	return 0;

fail:
	if (d->db && sqlite3_close(d->db) != SQLITE_OK)
		BUG("directory closed with statements still open");
	d->db = NULL;
	return r;
}

int dir_open(const char *data_dir, struct dir **dir_r, char *err, size_t errlen)
{
	pthread_mutexattr_t attr;
	struct dir *d;
	char *path;
	int fd, r;

	*dir_r = NULL;
	if (!data_dir || !*data_dir) {
		seterr(err, errlen, "data_dir is not set");
		return -EINVAL;
	}
	r = storage_mkdir_p(data_dir);
	if (r == 0)
		r = storage_set_root(data_dir);   /* no symbolic link is followed below it */
	if (r < 0) {
		seterr(err, errlen, "cannot create %s: %s", data_dir, strerror(-r));
		return r;
	}
	path = xasprintf("%s/buzon.db", data_dir);
	/* Create the file ourselves so that it (and the -wal and -shm files
	 * SQLite derives from it) is not readable by others: it holds hashes. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
		free(path);
		return r;
	}
	close(fd);

	d = xcalloc(1, sizeof(*d));
	d->data_dir = xstrdup(data_dir);
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&d->lock, &attr);
	pthread_mutexattr_destroy(&attr);

	r = db_connect(d, path, err, errlen);
	free(path);
	if (r < 0) {
		dir_close(&d);
		return r;
	}
	*dir_r = d;
	return 0;
}

/*
 * Why a reopen is all the directory needs: it caches nothing. Every call
 * prepares its statements afresh and reads the database live, so a change
 * made by the CLI (another process) is seen at the next call. What a
 * connection does hold on to is its file: a buzon.db replaced by rename (a
 * restore from a copy) would go on being read through the old, unlinked
 * file. dir_reopen() checks for that and only then opens the new file.
 */
int dir_reopen(struct dir *d, char *err, size_t errlen)
{
	struct dir fresh;
	struct stat st;
	sqlite3 *old;
	char *path = xasprintf("%s/buzon.db", d->data_dir);
	int r;

	lock(d);
	if (stat(path, &st) < 0) {
		r = -errno;
		seterr(err, errlen, "cannot reopen %s: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_dev == d->db_dev && st.st_ino == d->db_ino) {
		r = 0;
		goto out;
	}
	/* The -wal and -shm files go by name, so the new file shares them with
	 * the old one: fold the old file's WAL into it and empty the WAL first,
	 * so that the new connection never reads the old file's pages there.
	 * The lock keeps every other call of this process out meanwhile. */
	sqlite3_wal_checkpoint_v2(d->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	memset(&fresh, 0, sizeof(fresh));
	fresh.data_dir = d->data_dir;
	r = db_connect(&fresh, path, err, errlen);
	if (r < 0) {
		log_error("dir", NULL, "cannot reopen the directory; the old file stays in use");
		goto out;
	}
	old = d->db;
	d->db = fresh.db;
	d->db_dev = fresh.db_dev;
	d->db_ino = fresh.db_ino;
	if (sqlite3_close(old) != SQLITE_OK)
		BUG("directory closed with statements still open");
	log_info("dir", NULL, "directory reopened: buzon.db was replaced");
	r = 1;
out:
	unlock(d);
	free(path);
	return r;
}

void dir_close(struct dir **dp)
{
	struct dir *d = *dp;

	if (!d)
		return;
	if (d->db && sqlite3_close(d->db) != SQLITE_OK)
		BUG("directory closed with statements still open");
	pthread_mutex_destroy(&d->lock);
	free(d->data_dir);
	free(d);
	*dp = NULL;
}

const char *dir_data_dir(const struct dir *d)
{
	return d->data_dir;
}

/* 1 when path is dir or inside it. */
static int path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int data_dir_check(const char *data_dir, char *err, size_t errlen)
{
	static const char *const kernel_dirs[] = { "/proc", "/sys", "/dev" };
	char *p = NULL, real[PATH_MAX];
	struct stat st;
	int exists, r = 0;

	if (!data_dir || data_dir[0] != '/') {
		seterr(err, errlen, "data_dir '%s' is not an absolute path", data_dir ? data_dir : "");
		return -EINVAL;
	}
	if (lstat(data_dir, &st) == 0) {
		if (S_ISLNK(st.st_mode)) {
			seterr(err, errlen, "data_dir %s is a symbolic link; give the directory itself", data_dir);
			return -ELOOP;
		}
		if (!S_ISDIR(st.st_mode)) {
			seterr(err, errlen, "data_dir %s is not a directory", data_dir);
			return -ENOTDIR;
		}
	}
	/* The nearest part of the path that exists: data_dir itself, or the
	 * directory in which it would be created. */
	p = xstrdup(data_dir);
	for (;;) {
		char *slash;

		if (stat(p, &st) == 0)
			break;
		if (errno != ENOENT && errno != ENOTDIR) {
			r = -errno;
			seterr(err, errlen, "data_dir %s: cannot look at %s: %s", data_dir, p, strerror(errno));
			goto out;
		}
		slash = strrchr(p, '/');
		if (slash == p) {
			p[1] = '\0';
			continue;
		}
		*slash = '\0';
	}
	exists = strcmp(p, data_dir) == 0;
	if (!S_ISDIR(st.st_mode)) {
		seterr(err, errlen, "data_dir %s cannot be created: %s is not a directory", data_dir, p);
		r = -ENOTDIR;
		goto out;
	}
	/* Where it really is, symbolic links followed: /var/run/x -> /run/x. */
	if (!realpath(p, real)) {
		r = -errno;
		seterr(err, errlen, "data_dir %s: cannot resolve %s: %s", data_dir, p, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < ARRAY_SIZE(kernel_dirs); i++) {
		if (path_under(real, kernel_dirs[i]) || path_under(data_dir, kernel_dirs[i])) {
			seterr(err, errlen, "data_dir %s is inside %s, which the kernel owns", data_dir, kernel_dirs[i]);
			r = -EINVAL;
			goto out;
		}
	}
	/* As the user running this (before a privilege drop, root: then only
	 * a read-only file system fails here). */
	if (access(p, exists ? (R_OK | W_OK | X_OK) : (W_OK | X_OK)) < 0) {
		r = -errno;
		if (exists)
			seterr(err, errlen, "data_dir %s is not writable: %s", data_dir, strerror(errno));
		else
			seterr(err, errlen, "data_dir %s cannot be created in %s: %s", data_dir, p, strerror(errno));
		goto out;
	}
out:
	free(p);
	return r;
}

/* ---- domains ------------------------------------------------------------ */

int dir_domain_add(struct dir *d, const char *domain, char *err, size_t errlen)
{
	char name[DOMAIN_MAX + 1];
	int64_t id;
	int rc, r = 0;

	if (check_domain(domain, name, err, errlen) < 0)
		return -EINVAL;
	lock(d);
	rc = begin(d);
	if (rc == SQLITE_OK)
		rc = sql_int(d, &id, sql_domain_id, "t", name);
	if (rc == SQLITE_ROW) {
		seterr(err, errlen, "domain %s already exists", name);
		r = -EEXIST;
	} else if (rc == SQLITE_DONE) {
		rc = sql_exec(d, "INSERT INTO domains (name) VALUES (?1)", "t", name);
		if (rc == SQLITE_OK)
			rc = commit(d);
		if (rc != SQLITE_OK)
			r = sql_fail(d, rc, "domain add", err, errlen);
	} else {
		r = sql_fail(d, rc, "domain add", err, errlen);
	}
	rollback(d);
	unlock(d);
	return r;
}

static const char *plural(int64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

int dir_domain_del(struct dir *d, const char *domain, char *err, size_t errlen)
{
	char name[DOMAIN_MAX + 1];
	int64_t id, users = 0, aliases = 0;
	int rc, r = 0;

	if (check_domain(domain, name, err, errlen) < 0)
		return -EINVAL;
	lock(d);
	rc = begin(d);
	if (rc == SQLITE_OK)
		rc = sql_int(d, &id, sql_domain_id, "t", name);
	if (rc == SQLITE_DONE) {
		seterr(err, errlen, "unknown domain %s", name);
		r = -ENOENT;
		goto out;
	}
	if (rc == SQLITE_ROW)
		rc = sql_int(d, &users, "SELECT count(*) FROM users WHERE domain_id = ?1", "i", id);
	if (rc == SQLITE_ROW)
		rc = sql_int(d, &aliases, "SELECT count(*) FROM aliases WHERE domain_id = ?1", "i", id);
	if (rc != SQLITE_ROW) {
		r = sql_fail(d, rc, "domain del", err, errlen);
		goto out;
	}
	if (users > 0) {
		seterr(err, errlen, "domain %s still has %lld %s; delete %s first", name,
		       (long long)users, plural(users, "user", "users"), plural(users, "it", "them"));
		r = -EBUSY;
		goto out;
	}
	if (aliases > 0) {
		seterr(err, errlen, "domain %s still has %lld %s; delete %s first", name,
		       (long long)aliases, plural(aliases, "alias", "aliases"), plural(aliases, "it", "them"));
		r = -EBUSY;
		goto out;
	}
	rc = sql_exec(d, "DELETE FROM domains WHERE id = ?1", "i", id);
	if (rc == SQLITE_OK)
		rc = commit(d);
	if (rc != SQLITE_OK)
		r = sql_fail(d, rc, "domain del", err, errlen);
out:
	rollback(d);
	unlock(d);
	return r;
}

int dir_domain_list(struct dir *d, void (*cb)(void *ctx, const char *domain), void *ctx)
{
	sqlite3_stmt *st;
	int rc, n = 0;

	lock(d);
	rc = prep(d, &st, "SELECT name FROM domains ORDER BY name", "");
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			cb(ctx, (const char *)sqlite3_column_text(st, 0));
			n++;
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		n = sql_fail(d, rc, "domain list", NULL, 0);
	unlock(d);
	return n;
}

int dir_domain_exists(struct dir *d, const char *domain)
{
	char name[DOMAIN_MAX + 1];
	int64_t id;
	int rc, r;

	if (check_domain(domain, name, NULL, 0) < 0)
		return 0;
	lock(d);
	rc = sql_int(d, &id, sql_domain_id, "t", name);
	if (rc == SQLITE_ROW)
		r = 1;
	else if (rc == SQLITE_DONE)
		r = 0;
	else
		r = sql_fail(d, rc, "domain exists", NULL, 0);
	unlock(d);
	return r;
}

/* ---- users -------------------------------------------------------------- */

static int maildir_path(const struct dir *d, const char *local, const char *domain, char *out, size_t outlen)
{
	if ((size_t)snprintf(out, outlen, "%s/mail/%s/%s", d->data_dir, domain, local) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/* Creates the Maildir, the default folders and the subscriptions file;
 * what exists already (a user deleted and added again) is kept. */
static int create_mailbox(const char *path, char *err, size_t errlen)
{
	struct buf subs = BUF_INIT(0);
	char *file = NULL, *tmp = NULL;
	int fd = -1, r;

	r = maildir_create(path);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(default_folders); i++)
		r = maildir_create_folder(path, default_folders[i]);
	if (r < 0) {
		seterr(err, errlen, "cannot create the maildir %s: %s", path, strerror(-r));
		return r;
	}
	file = xasprintf("%s/subscriptions", path);
	if (access(file, F_OK) == 0)
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(default_folders); i++)
		buf_printf(&subs, "%s\n", default_folders[i]);
	/* Written aside and renamed, so that a reader never sees half a file. */
	tmp = xasprintf("%s/subscriptions.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, subs.data, subs.len) != (ssize_t)subs.len || fsync(fd) < 0) {
		r = errno ? -errno : -EIO;
	} else if (close(fd) < 0) {
		fd = -1;
		r = -errno;
	} else {
		fd = -1;
		if (rename(tmp, file) < 0)
			r = -errno;
	}
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		unlink(tmp);
		seterr(err, errlen, "cannot write %s: %s", file, strerror(-r));
	}
out:
	buf_release(&subs);
	free(file);
	free(tmp);
	return r;
}

int dir_user_maildir(const struct dir *d, const char *address, char *out, size_t outlen)
{
	struct addr a;

	if (check_address(address, &a, NULL, 0) < 0)
		return -EINVAL;
	return maildir_path(d, a.local, a.domain, out, outlen);
}

/* What is at a new user's Maildir path: nothing (0), or the Maildir of an
 * earlier user that flags allow to take over (0), or an error. Mail found
 * there is never handed to a new account by accident. */
static int check_old_maildir(const char *path, unsigned flags, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		seterr(err, errlen, "cannot look at %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!(flags & DIR_USER_REUSE_MAIL)) {
		seterr(err, errlen, "a maildir already exists at %s (mail of an earlier user?)", path);
		return -EEXIST;
	}
	if (!S_ISDIR(st.st_mode)) {
		seterr(err, errlen, "%s is not a directory", path);
		return -ENOTDIR;
	}
	return 0;
}

/*
 * The SCRAM secrets of a new password (both hashes), computed before any
 * lock: PBKDF2 is slow on purpose. A password SASLprep refuses or changes
 * (control characters, a non-ASCII space, a character mapped to nothing)
 * is refused: GNU SASL's PLAIN and every SCRAM client would send another
 * string than the one hashed, so the user could not log in by SASL.
 */
static int scram_secrets(const char *password, char *s1, char *s256, char *err, size_t errlen)
{
	int r;

	r = sasl_password_check(password);
	if (r == 0)
		r = sasl_scram_secret_make(SASL_SCRAM_SHA1, password, s1, SASL_SCRAM_SECRET_MAX);
	if (r == 0)
		r = sasl_scram_secret_make(SASL_SCRAM_SHA256, password, s256, SASL_SCRAM_SECRET_MAX);
	if (r == -EINVAL)
		seterr(err, errlen, "the password holds characters SASL cannot carry as they are"
		       " (control characters, non-ASCII spaces, or text that Unicode normalization changes)");
	else if (r < 0)
		seterr(err, errlen, "cannot compute the SCRAM secrets: %s", strerror(-r));
	return r;
}

int dir_user_add(struct dir *d, const char *address, const char *password, uint64_t quota,
		 char *err, size_t errlen)
{
	return dir_user_add_flags(d, address, password, quota, 0, err, errlen);
}

int dir_user_add_flags(struct dir *d, const char *address, const char *password, uint64_t quota,
		       unsigned flags, char *err, size_t errlen)
{
	char hash[PASSWORD_HASH_MAX], canon[ADDRESS_MAX + 1], path[4096];
	char s1[SASL_SCRAM_SECRET_MAX], s256[SASL_SCRAM_SECRET_MAX];
	struct addr a;
	int64_t domain_id, id;
	int rc, r;

	if (check_address(address, &a, err, errlen) < 0)
		return -EINVAL;
	if (!password || !*password) {
		seterr(err, errlen, "empty password");
		return -EINVAL;
	}
	if (quota > INT64_MAX) {
		seterr(err, errlen, "quota is too large");
		return -EINVAL;
	}
	addr_format(&a, canon, sizeof(canon));
	if (maildir_path(d, a.local, a.domain, path, sizeof(path)) < 0) {
		seterr(err, errlen, "maildir path for %s is too long", canon);
		return -ENAMETOOLONG;
	}
	/* Hash before taking the lock: yescrypt and PBKDF2 are slow on purpose. */
	r = scram_secrets(password, s1, s256, err, errlen);
	if (r < 0)
		return r;
	r = password_hash(password, hash, sizeof(hash));
	if (r < 0) {
		wipe(s1, sizeof(s1));
		wipe(s256, sizeof(s256));
		seterr(err, errlen, "cannot hash the password: %s", strerror(-r));
		return r;
	}

	lock(d);
	rc = begin(d);
	if (rc == SQLITE_OK)
		rc = sql_int(d, &domain_id, sql_domain_id, "t", a.domain);
	if (rc == SQLITE_DONE) {
		seterr(err, errlen, "unknown domain %s", a.domain);
		r = -ENOENT;
		goto out;
	}
	if (rc == SQLITE_ROW)
		rc = sql_int(d, &id, "SELECT id FROM users WHERE domain_id = ?1 AND localpart = ?2", "it",
			     domain_id, a.local);
	if (rc == SQLITE_ROW) {
		seterr(err, errlen, "user %s already exists", canon);
		r = -EEXIST;
		goto out;
	}
	if (rc == SQLITE_DONE)
		rc = sql_int(d, &id, "SELECT id FROM aliases WHERE source = ?1", "t", canon);
	if (rc == SQLITE_ROW) {
		seterr(err, errlen, "%s is an alias; delete the alias first", canon);
		r = -EEXIST;
		goto out;
	}
	if (rc == SQLITE_DONE) {
		/* Checked under the write lock: a concurrent "user del" of the
		 * same name has moved its Maildir aside before or not at all. */
		r = check_old_maildir(path, flags, err, errlen);
		if (r < 0)
			goto out;
		rc = sql_exec(d, "INSERT INTO users (domain_id, localpart, password, quota, scram_sha1, scram_sha256)"
			      " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			      "ittitt", domain_id, a.local, hash, (int64_t)quota, s1, s256);
	}
	if (rc != SQLITE_OK) {
		r = sql_fail(d, rc, "user add", err, errlen);
		goto out;
	}
	/* The Maildir is made inside the transaction: if it cannot be, the
	 * user is not added. */
	r = create_mailbox(path, err, errlen);
	if (r < 0)
		goto out;
	rc = commit(d);
	if (rc != SQLITE_OK)
		r = sql_fail(d, rc, "user add", err, errlen);
out:
	rollback(d);
	unlock(d);
	wipe(hash, sizeof(hash));
	wipe(s1, sizeof(s1));
	wipe(s256, sizeof(s256));
	return r;
}

int dir_user_exists(struct dir *d, const char *address)
{
	struct addr a;
	int64_t id;
	int rc, r;

	if (parse_address(address, &a, NULL, 0) != ADDR_OK)
		return 0;
	lock(d);
	rc = sql_int(d, &id, sql_user_id, "tt", a.domain, a.local);
	if (rc == SQLITE_ROW)
		r = 1;
	else if (rc == SQLITE_DONE)
		r = 0;
	else
		r = sql_fail(d, rc, "user exists", NULL, 0);
	unlock(d);
	return r;
}

/* Moves the Maildir at from to data_dir/deleted/<domain>/<localpart>.<unix
 * time> (".2", ".3", ... added when taken) and puts that path in to;
 * to is "" when there was nothing at from. */
static int move_aside(const struct dir *d, const struct addr *a, const char *from, char *to, size_t tolen,
		      char *err, size_t errlen)
{
	char parent[4096], from_parent[4096];
	long long now = (long long)time(NULL);
	struct stat st;
	int r;

	to[0] = '\0';
	if (lstat(from, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		seterr(err, errlen, "cannot look at %s: %s", from, strerror(errno));
		return r;
	}
	if ((size_t)snprintf(parent, sizeof(parent), "%s/deleted/%s", d->data_dir, a->domain) >= sizeof(parent))
		return -ENAMETOOLONG;
	r = storage_mkdir_p(parent);
	if (r < 0) {
		seterr(err, errlen, "cannot create %s: %s", parent, strerror(-r));
		return r;
	}
	for (unsigned n = 1;; n++) {
		int len = n == 1 ? snprintf(to, tolen, "%s/%s.%lld", parent, a->local, now)
				 : snprintf(to, tolen, "%s/%s.%lld.%u", parent, a->local, now, n);
		if (len < 0 || (size_t)len >= tolen) {
			to[0] = '\0';
			return -ENAMETOOLONG;
		}
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
			break;
		if ((errno == EINVAL || errno == ENOSYS) && lstat(to, &st) < 0 && errno == ENOENT &&
		    rename(from, to) == 0)
			break;
		if (errno != EEXIST || n == 1000) {
			r = -errno;
			seterr(err, errlen, "cannot move %s to %s: %s", from, to, strerror(errno));
			to[0] = '\0';
			return r;
		}
	}
	/* Both directory entries on disk: after a crash the Maildir is in one
	 * place or the other, never in both, and never back in mail/. */
	snprintf(from_parent, sizeof(from_parent), "%s/mail/%s", d->data_dir, a->domain);
	storage_fsync_dir(parent);
	storage_fsync_dir(from_parent);
	return 0;
}

int dir_user_del(struct dir *d, const char *address, char *moved_r, size_t movedlen, char *err, size_t errlen)
{
	char canon[ADDRESS_MAX + 1], path[4096], moved[4096];
	struct addr a;
	int64_t id, aliases = 0;
	int rc, r = 0;

	if (moved_r && movedlen)
		moved_r[0] = '\0';
	if (check_address(address, &a, err, errlen) < 0)
		return -EINVAL;
	addr_format(&a, canon, sizeof(canon));
	if (maildir_path(d, a.local, a.domain, path, sizeof(path)) < 0) {
		seterr(err, errlen, "maildir path for %s is too long", canon);
		return -ENAMETOOLONG;
	}
	/*
	 * The order matters while a server runs. First the row goes, committed:
	 * from then on no RCPT resolves to the user and no login succeeds, and
	 * whatever recreates a missing Maildir (delivery, login) asks for the
	 * row first (dir_user_ensure_maildir() does it under the write lock
	 * this transaction holds) and finds none. Only then does the Maildir
	 * move aside, in one rename. A delivery that resolved the user before
	 * the commit either wrote its file before the rename (the file moves
	 * with the Maildir) or finds its path gone at the rename into new/ or
	 * at the fsync of new/, and answers 451: the sender tries again and
	 * gets 550. The other order (move, then delete the row) would leave a
	 * moment in which the user exists without a Maildir: the state in which
	 * storage makes a new, empty one, which the next "user add" of the name
	 * would get.
	 */
	lock(d);
	rc = begin(d);
	if (rc == SQLITE_OK)
		rc = sql_int(d, &id, sql_user_id, "tt", a.domain, a.local);
	if (rc == SQLITE_DONE) {
		seterr(err, errlen, "unknown user %s", canon);
		r = -ENOENT;
		goto out;
	}
	if (rc == SQLITE_ROW)
		rc = sql_int(d, &aliases, "SELECT count(*) FROM aliases WHERE target_user_id = ?1", "i", id);
	if (rc == SQLITE_ROW)
		rc = sql_exec(d, "DELETE FROM users WHERE id = ?1", "i", id);
	if (rc == SQLITE_OK)
		rc = commit(d);
	if (rc != SQLITE_OK) {
		r = sql_fail(d, rc, "user del", err, errlen);
		goto out;
	}
	r = move_aside(d, &a, path, moved, sizeof(moved), err, errlen);
	if (r < 0) {
		/* The user is gone; its mail stays where it was, and "user add"
		 * of the name refuses while it is there. */
		char why[512];
		snprintf(why, sizeof(why), "%s", err ? err : "");
		seterr(err, errlen, "deleted user %s, but its maildir stays at %s: %s", canon, path, why);
		log_error("dir", NULL, "maildir of a deleted user not moved aside error=%s", strerror(-r));
		goto out;
	}
	if (moved_r && movedlen)
		snprintf(moved_r, movedlen, "%s", moved);
	r = (int)aliases;
out:
	rollback(d);
	unlock(d);
	return r;
}

int dir_user_ensure_maildir(struct dir *d, const char *address, char *err, size_t errlen)
{
	char canon[ADDRESS_MAX + 1], path[4096];
	struct addr a;
	struct stat st;
	int64_t id;
	int rc, r;

	if (check_address(address, &a, err, errlen) < 0)
		return -EINVAL;
	addr_format(&a, canon, sizeof(canon));
	if (maildir_path(d, a.local, a.domain, path, sizeof(path)) < 0) {
		seterr(err, errlen, "maildir path for %s is too long", canon);
		return -ENAMETOOLONG;
	}
	if (lstat(path, &st) == 0)
		return 0;
	/* Missing: look at the row and create under the write lock, which
	 * dir_user_del() holds while the row goes (see there). */
	lock(d);
	rc = begin(d);
	if (rc == SQLITE_OK)
		rc = sql_int(d, &id, sql_user_id, "tt", a.domain, a.local);
	if (rc == SQLITE_DONE) {
		seterr(err, errlen, "unknown user %s", canon);
		r = -ENOENT;
	} else if (rc != SQLITE_ROW) {
		r = sql_fail(d, rc, "user maildir", err, errlen);
	} else if (lstat(path, &st) == 0) {
		r = 0;
	} else {
		r = create_mailbox(path, err, errlen);
		if (r == 0) {
			log_warn("dir", NULL, "maildir was missing and is made again domain=%s", a.domain);
			r = 1;
		}
	}
	rollback(d);
	unlock(d);
	return r;
}

/* Runs "UPDATE users SET <column> = ?3 WHERE <user ?1 ?2>" with the value
 * in text (when not NULL) or num. */
static int user_update(struct dir *d, const char *address, const char *column, const char *text,
		       int64_t num, char *err, size_t errlen)
{
	char canon[ADDRESS_MAX + 1], sql[256];
	struct addr a;
	int rc, r = 0;

	if (check_address(address, &a, err, errlen) < 0)
		return -EINVAL;
	addr_format(&a, canon, sizeof(canon));
	snprintf(sql, sizeof(sql), "UPDATE users SET %s = ?3 WHERE localpart = ?2 AND"
		 " domain_id = (SELECT id FROM domains WHERE name = ?1)", column);
	lock(d);
	if (text)
		rc = sql_exec(d, sql, "ttt", a.domain, a.local, text);
	else
		rc = sql_exec(d, sql, "tti", a.domain, a.local, num);
	if (rc != SQLITE_OK) {
		r = sql_fail(d, rc, "user update", err, errlen);
	} else if (sqlite3_changes(d->db) == 0) {
		seterr(err, errlen, "unknown user %s", canon);
		r = -ENOENT;
	}
	unlock(d);
	return r;
}

/* Sets the password hash and the SCRAM secrets (NULL: none) of a user in
 * one statement, so that a login never sees one without the other. */
static int set_password(struct dir *d, const char *address, const char *hash, const char *s1,
			const char *s256, char *err, size_t errlen)
{
	char canon[ADDRESS_MAX + 1];
	struct addr a;
	int rc, r = 0;

	if (check_address(address, &a, err, errlen) < 0)
		return -EINVAL;
	addr_format(&a, canon, sizeof(canon));
	lock(d);
	rc = sql_exec(d, "UPDATE users SET password = ?3, scram_sha1 = ?4, scram_sha256 = ?5"
		      " WHERE localpart = ?2 AND domain_id = (SELECT id FROM domains WHERE name = ?1)",
		      "ttttt", a.domain, a.local, hash, s1, s256);
	if (rc != SQLITE_OK) {
		r = sql_fail(d, rc, "user update", err, errlen);
	} else if (sqlite3_changes(d->db) == 0) {
		seterr(err, errlen, "unknown user %s", canon);
		r = -ENOENT;
	}
	unlock(d);
	return r;
}

int dir_user_passwd(struct dir *d, const char *address, const char *password, char *err, size_t errlen)
{
	char hash[PASSWORD_HASH_MAX], s1[SASL_SCRAM_SECRET_MAX], s256[SASL_SCRAM_SECRET_MAX];
	struct addr a;
	int r;

	if (check_address(address, &a, err, errlen) < 0)
		return -EINVAL;
	if (!password || !*password) {
		seterr(err, errlen, "empty password");
		return -EINVAL;
	}
	r = scram_secrets(password, s1, s256, err, errlen);
	if (r < 0)
		return r;
	r = password_hash(password, hash, sizeof(hash));
	if (r < 0)
		seterr(err, errlen, "cannot hash the password: %s", strerror(-r));
	else
		r = set_password(d, address, hash, s1, s256, err, errlen);
	wipe(hash, sizeof(hash));
	wipe(s1, sizeof(s1));
	wipe(s256, sizeof(s256));
	return r;
}

/* An imported hash comes without SCRAM secrets (they need the password):
 * the old ones go, and SCRAM waits for the next "user passwd". */
int dir_user_set_hash(struct dir *d, const char *address, const char *hash, char *err, size_t errlen)
{
	struct addr a;

	if (check_address(address, &a, err, errlen) < 0)
		return -EINVAL;
	if (!hash || strlen(hash) >= PASSWORD_HASH_MAX || strpbrk(hash, ": \t\r\n")) {
		seterr(err, errlen, "not a crypt(3) hash");
		return -EINVAL;
	}
	if (password_check_hash(hash) < 0) {
		seterr(err, errlen, "not a complete hash this libcrypt can verify ($y$, $2b$, $6$, $5$)");
		return -EINVAL;
	}
	return set_password(d, address, hash, NULL, NULL, err, errlen);
}

int dir_user_set_quota(struct dir *d, const char *address, uint64_t quota, char *err, size_t errlen)
{
	if (quota > INT64_MAX) {
		seterr(err, errlen, "quota is too large");
		return -EINVAL;
	}
	return user_update(d, address, "quota", NULL, (int64_t)quota, err, errlen);
}

int dir_user_set_enabled(struct dir *d, const char *address, int enabled, char *err, size_t errlen)
{
	return user_update(d, address, "enabled", NULL, enabled ? 1 : 0, err, errlen);
}

int dir_user_list(struct dir *d, const char *domain,
		  void (*cb)(void *ctx, const struct dir_user *u), void *ctx)
{
	char name[DOMAIN_MAX + 1];
	struct dir_user u;
	sqlite3_stmt *st;
	int rc, n = 0;

	if (domain && check_domain(domain, name, NULL, 0) < 0)
		return -EINVAL;
	lock(d);
	rc = prep(d, &st,
		  "SELECT u.localpart || '@' || d.name, u.quota, u.enabled FROM users u"
		  " JOIN domains d ON d.id = u.domain_id WHERE ?1 IS NULL OR d.name = ?1"
		  " ORDER BY d.name, u.localpart", "t", domain ? name : NULL);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			u.address = (const char *)sqlite3_column_text(st, 0);
			u.quota = (uint64_t)sqlite3_column_int64(st, 1);
			u.enabled = sqlite3_column_int(st, 2);
			cb(ctx, &u);
			n++;
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		n = sql_fail(d, rc, "user list", NULL, 0);
	unlock(d);
	return n;
}

/* ---- aliases ------------------------------------------------------------ */

static int check_alias(const char *alias, struct addr *a, char *out, size_t outlen, char *err, size_t errlen)
{
	char why[160];

	if (parse_alias(alias, a, why, sizeof(why)) != ADDR_OK) {
		seterr(err, errlen, "invalid alias '%s': %s", alias ? alias : "", why);
		return -EINVAL;
	}
	snprintf(out, outlen, "%s@%s", a->local, a->domain);
	return 0;
}

int dir_alias_add(struct dir *d, const char *alias, const char *target, char *err, size_t errlen)
{
	char source[ADDRESS_MAX + 1], canon[ADDRESS_MAX + 1];
	struct addr a, t;
	int64_t domain_id, user_id, id;
	int rc, r = 0;

	if (check_alias(alias, &a, source, sizeof(source), err, errlen) < 0 ||
	    check_address(target, &t, err, errlen) < 0)
		return -EINVAL;
	addr_format(&t, canon, sizeof(canon));
	lock(d);
	rc = begin(d);
	if (rc == SQLITE_OK)
		rc = sql_int(d, &domain_id, sql_domain_id, "t", a.domain);
	if (rc == SQLITE_DONE) {
		seterr(err, errlen, "unknown domain %s", a.domain);
		r = -ENOENT;
		goto out;
	}
	if (rc == SQLITE_ROW && a.local[0]) {
		rc = sql_int(d, &id, sql_user_id, "tt", a.domain, a.local);
		if (rc == SQLITE_ROW) {
			seterr(err, errlen, "%s is a user; an alias of the same name would never be used", source);
			r = -EEXIST;
			goto out;
		}
		if (rc == SQLITE_DONE)
			rc = SQLITE_ROW;
	}
	if (rc == SQLITE_ROW)
		rc = sql_int(d, &user_id, sql_user_id, "tt", t.domain, t.local);
	if (rc == SQLITE_DONE) {
		seterr(err, errlen, "unknown user %s (an alias points to local users only)", canon);
		r = -ENOENT;
		goto out;
	}
	if (rc == SQLITE_ROW)
		rc = sql_int(d, &id, "SELECT id FROM aliases WHERE source = ?1 AND target_user_id = ?2", "ti",
			     source, user_id);
	if (rc == SQLITE_ROW) {
		seterr(err, errlen, "alias %s -> %s already exists", source, canon);
		r = -EEXIST;
		goto out;
	}
	if (rc == SQLITE_DONE)
		rc = sql_exec(d, "INSERT INTO aliases (source, domain_id, target_user_id) VALUES (?1, ?2, ?3)",
			      "tii", source, domain_id, user_id);
	if (rc == SQLITE_OK)
		rc = commit(d);
	if (rc != SQLITE_OK)
		r = sql_fail(d, rc, "alias add", err, errlen);
out:
	rollback(d);
	unlock(d);
	return r;
}

int dir_alias_del(struct dir *d, const char *alias, const char *target, char *err, size_t errlen)
{
	char source[ADDRESS_MAX + 1], canon[ADDRESS_MAX + 1];
	struct addr a, t;
	int rc, r;

	if (check_alias(alias, &a, source, sizeof(source), err, errlen) < 0)
		return -EINVAL;
	if (target && check_address(target, &t, err, errlen) < 0)
		return -EINVAL;
	lock(d);
	if (target) {
		addr_format(&t, canon, sizeof(canon));
		rc = sql_exec(d, "DELETE FROM aliases WHERE source = ?1 AND target_user_id ="
			      " (SELECT u.id FROM users u JOIN domains d ON d.id = u.domain_id"
			      "  WHERE d.name = ?2 AND u.localpart = ?3)", "ttt", source, t.domain, t.local);
	} else {
		rc = sql_exec(d, "DELETE FROM aliases WHERE source = ?1", "t", source);
	}
	if (rc != SQLITE_OK) {
		r = sql_fail(d, rc, "alias del", err, errlen);
	} else {
		r = sqlite3_changes(d->db);
		if (r == 0 && target) {
			seterr(err, errlen, "no alias %s -> %s", source, canon);
			r = -ENOENT;
		} else if (r == 0) {
			seterr(err, errlen, "no alias %s", source);
			r = -ENOENT;
		}
	}
	unlock(d);
	return r;
}

int dir_alias_list(struct dir *d, void (*cb)(void *ctx, const char *alias, const char *target), void *ctx)
{
	sqlite3_stmt *st;
	int rc, n = 0;

	lock(d);
	rc = prep(d, &st,
		  "SELECT a.source, u.localpart || '@' || d.name FROM aliases a"
		  " JOIN users u ON u.id = a.target_user_id JOIN domains d ON d.id = u.domain_id"
		  " ORDER BY a.source, d.name, u.localpart", "");
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			cb(ctx, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
			n++;
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		n = sql_fail(d, rc, "alias list", NULL, 0);
	unlock(d);
	return n;
}

/* ---- resolution and login ----------------------------------------------- */

/* Fills one target; -ENAMETOOLONG when the path does not fit. */
static int fill_target(const struct dir *d, struct dir_target *t, const char *local, const char *domain,
		       uint64_t quota)
{
	if ((size_t)snprintf(t->address, sizeof(t->address), "%s@%s", local, domain) >= sizeof(t->address) ||
	    maildir_path(d, local, domain, t->maildir, sizeof(t->maildir)) < 0)
		return -ENAMETOOLONG;
	t->quota = quota;
	return 0;
}

enum lookup {
	LOOKUP_NONE,      /* nothing by that name: try the next rule */
	LOOKUP_OK,        /* targets filled */
	LOOKUP_DISABLED,  /* found, but every target is disabled */
	LOOKUP_ERROR,
};

static enum lookup lookup_user(struct dir *d, const char *local, const char *domain,
			       struct dir_target *targets, size_t *n_r)
{
	sqlite3_stmt *st;
	enum lookup res = LOOKUP_NONE;
	int rc;

	rc = prep(d, &st, "SELECT u.quota, u.enabled FROM users u JOIN domains d ON d.id = u.domain_id"
		  " WHERE d.name = ?1 AND u.localpart = ?2", "tt", domain, local);
	if (rc != SQLITE_OK) {
		sql_fail(d, rc, "resolve", NULL, 0);
		return LOOKUP_ERROR;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (!sqlite3_column_int(st, 1)) {
			res = LOOKUP_DISABLED;
		} else if (fill_target(d, &targets[0], local, domain, (uint64_t)sqlite3_column_int64(st, 0)) < 0) {
			log_error("dir", NULL, "maildir path too long domain=%s", domain);
			res = LOOKUP_ERROR;
		} else {
			*n_r = 1;
			res = LOOKUP_OK;
		}
	} else if (rc != SQLITE_DONE) {
		sql_fail(d, rc, "resolve", NULL, 0);
		res = LOOKUP_ERROR;
	}
	sqlite3_finalize(st);
	return res;
}

static enum lookup lookup_alias(struct dir *d, const char *source, struct dir_target *targets, size_t *n_r)
{
	sqlite3_stmt *st;
	size_t seen = 0, n = 0;
	int rc;

	/* DISTINCT: one user reached twice is delivered once. */
	rc = prep(d, &st, "SELECT DISTINCT u.localpart, d.name, u.quota, u.enabled FROM aliases a"
		  " JOIN users u ON u.id = a.target_user_id JOIN domains d ON d.id = u.domain_id"
		  " WHERE a.source = ?1 ORDER BY d.name, u.localpart", "t", source);
	if (rc != SQLITE_OK) {
		sql_fail(d, rc, "resolve", NULL, 0);
		return LOOKUP_ERROR;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		seen++;
		if (!sqlite3_column_int(st, 3))
			continue;
		if (n == DIR_MAX_TARGETS) {
			log_warn("dir", NULL, "alias has more than %d enabled targets; extra ones skipped",
				 DIR_MAX_TARGETS);
			break;
		}
		if (fill_target(d, &targets[n], (const char *)sqlite3_column_text(st, 0),
				(const char *)sqlite3_column_text(st, 1),
				(uint64_t)sqlite3_column_int64(st, 2)) < 0) {
			log_error("dir", NULL, "maildir path too long");
			sqlite3_finalize(st);
			return LOOKUP_ERROR;
		}
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		sql_fail(d, rc, "resolve", NULL, 0);
		return LOOKUP_ERROR;
	}
	if (seen == 0)
		return LOOKUP_NONE;
	*n_r = n;
	return n > 0 ? LOOKUP_OK : LOOKUP_DISABLED;
}

/* Removes a tag: base gets the local part up to the first delimiter
 * character. 0 when there is no tag to remove. */
static int strip_tag(const char *local, const char *delimiter, char *base)
{
	size_t n;

	if (!delimiter || !*delimiter)
		return 0;
	n = strcspn(local, delimiter);
	/* "+tag@domain" has no base to fall back to. */
	if (n == 0 || local[n] == '\0')
		return 0;
	memcpy(base, local, n);
	base[n] = '\0';
	/* "user.+tag" would leave a base that is not a dot-atom. */
	return base[n - 1] != '.';
}

enum dir_status dir_resolve(struct dir *d, const char *address, const char *delimiter,
			    struct dir_target *targets, size_t *n_r)
{
	char base[LOCAL_MAX + 1], source[ADDRESS_MAX + 1];
	struct addr a;
	enum dir_status status = DIR_NO_USER;
	enum lookup res;
	int64_t id;
	int rc, tagged;

	*n_r = 0;
	switch (parse_address(address, &a, NULL, 0)) {
	case ADDR_OK:
		break;
	case ADDR_ROUTE:
		return DIR_NOT_LOCAL;
	case ADDR_BAD:
	default:
		return DIR_BAD_ADDRESS;
	}
	tagged = strip_tag(a.local, delimiter, base);

	lock(d);
	rc = sql_int(d, &id, sql_domain_id, "t", a.domain);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE) {
			status = DIR_NOT_LOCAL;
		} else {
			sql_fail(d, rc, "resolve", NULL, 0);
			status = DIR_TEMPFAIL;
		}
		goto out;
	}
	res = lookup_user(d, a.local, a.domain, targets, n_r);
	if (res == LOOKUP_NONE && tagged)
		res = lookup_user(d, base, a.domain, targets, n_r);
	if (res == LOOKUP_NONE) {
		snprintf(source, sizeof(source), "%s@%s", a.local, a.domain);
		res = lookup_alias(d, source, targets, n_r);
	}
	if (res == LOOKUP_NONE && tagged) {
		snprintf(source, sizeof(source), "%s@%s", base, a.domain);
		res = lookup_alias(d, source, targets, n_r);
	}
	if (res == LOOKUP_NONE) {
		snprintf(source, sizeof(source), "@%s", a.domain);
		res = lookup_alias(d, source, targets, n_r);
	}
	switch (res) {
	case LOOKUP_OK:
		status = DIR_OK;
		break;
	case LOOKUP_DISABLED:
		status = DIR_DISABLED;
		break;
	case LOOKUP_NONE:
		status = DIR_NO_USER;
		break;
	case LOOKUP_ERROR:
		status = DIR_TEMPFAIL;
		break;
	}
out:
	unlock(d);
	/* A Maildir deleted by hand is made again (logged), for delivery and
	 * login alike, by dir_user_ensure_maildir() (which asks for the row
	 * under the write lock); one behind a symbolic link is a temporary
	 * failure (maildir_check() logs it). */
	for (size_t i = 0; status == DIR_OK && i < *n_r; i++) {
		int r = maildir_check(targets[i].maildir);
		if (r == -ENOENT && dir_user_ensure_maildir(d, targets[i].address, NULL, 0) >= 0)
			r = maildir_check(targets[i].maildir);
		if (r < 0)
			status = DIR_TEMPFAIL;
	}
	if (status != DIR_OK)
		*n_r = 0;
	return status;
}

/* The oldest enabled user: where the postmaster's mail goes when nobody
 * else was named for it. */
static enum lookup lookup_oldest_user(struct dir *d, struct dir_target *targets, size_t *n_r)
{
	sqlite3_stmt *st;
	enum lookup res = LOOKUP_NONE;
	char local[LOCAL_MAX + 1], domain[DOMAIN_MAX + 1];
	int rc;

	rc = prep(d, &st, "SELECT u.localpart, d.name FROM users u JOIN domains d ON d.id = u.domain_id"
		  " WHERE u.enabled = 1 ORDER BY u.id LIMIT 1", "");
	if (rc != SQLITE_OK) {
		sql_fail(d, rc, "resolve postmaster", NULL, 0);
		return LOOKUP_ERROR;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(local, sizeof(local), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(domain, sizeof(domain), "%s", (const char *)sqlite3_column_text(st, 1));
		res = LOOKUP_OK;
	} else if (rc != SQLITE_DONE) {
		sql_fail(d, rc, "resolve postmaster", NULL, 0);
		res = LOOKUP_ERROR;
	}
	sqlite3_finalize(st);
	/* the same lookup as any user's, from its name */
	return res == LOOKUP_OK ? lookup_user(d, local, domain, targets, n_r) : res;
}

enum dir_status dir_resolve_postmaster(struct dir *d, const char *domain, const char *configured,
				       struct dir_target *targets, size_t *n_r,
				       enum dir_postmaster_source *source_r)
{
	char dom[DOMAIN_MAX + 1], source[ADDRESS_MAX + 1];
	enum lookup res = LOOKUP_NONE;
	enum dir_status st;
	int64_t id;
	int rc;

	*n_r = 0;
	if (domain) {
		if (parse_domain(domain, dom, NULL, 0) != ADDR_OK)
			return DIR_NOT_LOCAL;
		lock(d);
		rc = sql_int(d, &id, sql_domain_id, "t", dom);
		if (rc == SQLITE_ROW) {
			/* explicit entries first; a catch-all is not one */
			res = lookup_user(d, "postmaster", dom, targets, n_r);
			if (res == LOOKUP_NONE || res == LOOKUP_DISABLED) {
				snprintf(source, sizeof(source), "postmaster@%s", dom);
				res = lookup_alias(d, source, targets, n_r);
			}
		} else if (rc != SQLITE_DONE) {
			sql_fail(d, rc, "resolve postmaster", NULL, 0);
			res = LOOKUP_ERROR;
		}
		unlock(d);
		if (rc == SQLITE_DONE)
			return DIR_NOT_LOCAL;
		if (res == LOOKUP_ERROR)
			return DIR_TEMPFAIL;
		if (res == LOOKUP_OK) {
			*source_r = DIR_PM_DIRECTORY;
			return DIR_OK;
		}
		*n_r = 0;
	}
	if (configured && *configured) {
		st = dir_resolve(d, configured, "", targets, n_r);
		if (st == DIR_OK) {
			*source_r = DIR_PM_CONFIGURED;
			return DIR_OK;
		}
		if (st == DIR_TEMPFAIL)
			return DIR_TEMPFAIL;
		/* Deleted or disabled since the start: the mail still goes to a
		 * person (the caller logs it). */
		*n_r = 0;
	}
	lock(d);
	res = lookup_oldest_user(d, targets, n_r);
	unlock(d);
	*source_r = DIR_PM_OLDEST;
	switch (res) {
	case LOOKUP_OK:
		return DIR_OK;
	case LOOKUP_ERROR:
		*n_r = 0;
		return DIR_TEMPFAIL;
	default:
		*n_r = 0;
		return DIR_NO_USER;
	}
}

int dir_authenticate(struct dir *d, const char *address, const char *password, char *canonical_r)
{
	char hash[PASSWORD_HASH_MAX];
	struct addr a;
	sqlite3_stmt *st;
	int found = 0, enabled = 0, rc, r;

	hash[0] = '\0';
	if (parse_address(address, &a, NULL, 0) == ADDR_OK) {
		lock(d);
		rc = prep(d, &st, "SELECT u.password, u.enabled FROM users u JOIN domains d ON d.id = u.domain_id"
			  " WHERE d.name = ?1 AND u.localpart = ?2", "tt", a.domain, a.local);
		if (rc == SQLITE_OK) {
			rc = sqlite3_step(st);
			if (rc == SQLITE_ROW) {
				const char *h = (const char *)sqlite3_column_text(st, 0);
				if (h && strlen(h) < sizeof(hash)) {
					strcpy(hash, h);
					found = 1;
				}
				enabled = sqlite3_column_int(st, 1);
				rc = SQLITE_DONE;
			}
			sqlite3_finalize(st);
		}
		if (rc != SQLITE_DONE) {
			r = sql_fail(d, rc, "authenticate", NULL, 0);
			unlock(d);
			return r;
		}
		unlock(d);
	}
	/* The slow hash runs outside the lock, and for unknown users too. */
	r = password_verify(password ? password : "", found ? hash : dummy_hash);
	wipe(hash, sizeof(hash));
	if (r == -EINVAL && found)
		log_warn("dir", NULL, "stored password hash is not usable domain=%s", a.domain);
	if (!found || !enabled || r != 0 || !password)
		return -EACCES;
	if (canonical_r)
		snprintf(canonical_r, 320, "%s@%s", a.local, a.domain);
	return 0;
}

int dir_scram_lookup(struct dir *d, const char *address, enum sasl_scram_hash hash, struct sasl_scram_user *u_r)
{
	struct addr a;
	sqlite3_stmt *st;
	int rc, r = 0;

	memset(u_r, 0, sizeof(*u_r));
	if (parse_address(address, &a, NULL, 0) != ADDR_OK)
		return 0;
	lock(d);
	rc = prep(d, &st, hash == SASL_SCRAM_SHA1
		  ? "SELECT u.enabled, u.scram_sha1 FROM users u JOIN domains d ON d.id = u.domain_id"
		    " WHERE d.name = ?1 AND u.localpart = ?2"
		  : "SELECT u.enabled, u.scram_sha256 FROM users u JOIN domains d ON d.id = u.domain_id"
		    " WHERE d.name = ?1 AND u.localpart = ?2", "tt", a.domain, a.local);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *sec = (const char *)sqlite3_column_text(st, 1);

			u_r->enabled = sqlite3_column_int(st, 0);
			if (sec && strlen(sec) < sizeof(u_r->secret))
				strcpy(u_r->secret, sec);
			snprintf(u_r->canonical, sizeof(u_r->canonical), "%s@%s", a.local, a.domain);
			r = 1;
			rc = SQLITE_DONE;
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		r = sql_fail(d, rc, "scram lookup", NULL, 0);
	unlock(d);
	return r;
}

int dir_sasl_secret(struct dir *d, unsigned char out[SASL_CTX_SECRET_LEN])
{
	sqlite3_stmt *st;
	int rc, r = -ENOENT;

	lock(d);
	rc = prep(d, &st, "SELECT value FROM settings WHERE key = 'sasl_secret'", "");
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *hex = (const char *)sqlite3_column_text(st, 0);

			if (hex && strlen(hex) == 2 * SASL_CTX_SECRET_LEN) {
				r = 0;
				for (size_t i = 0; i < SASL_CTX_SECRET_LEN && r == 0; i++) {
					unsigned v;

					if (sscanf(hex + 2 * i, "%2x", &v) != 1)
						r = -EINVAL;
					out[i] = (unsigned char)v;
				}
			} else {
				r = -EINVAL;
			}
			rc = SQLITE_DONE;
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		r = sql_fail(d, rc, "sasl secret", NULL, 0);
	else if (r < 0)
		log_error("dir", NULL, "settings row sasl_secret is missing or damaged");
	unlock(d);
	return r;
}

/* The adapters of dir_sasl_backend(). */
static int backend_check_password(void *ctx, const char *user, const char *password,
				  char canonical_r[SASL_ID_MAX + 1])
{
	return dir_authenticate(ctx, user, password, canonical_r);
}

static int backend_scram_lookup(void *ctx, const char *user, enum sasl_scram_hash hash,
				struct sasl_scram_user *u_r)
{
	return dir_scram_lookup(ctx, user, hash, u_r);
}

void dir_sasl_backend(struct dir *d, struct sasl_backend *b)
{
	b->ctx = d;
	b->check_password = backend_check_password;
	b->scram_lookup = backend_scram_lookup;
}

/* ---- failed logins kept across restarts (lib/lockout.h) ---------------- */

static const char sql_lockout_select[] =
	"SELECT address, failures, last_ms, window_failures, window_start_ms, locked_until_ms"
	" FROM auth_failures ORDER BY address";

static void record_of(sqlite3_stmt *st, struct lockout_record *r)
{
	const unsigned char *a = sqlite3_column_text(st, 0);
	int64_t v;

	memset(r, 0, sizeof(*r));
	snprintf(r->address, sizeof(r->address), "%s", a ? (const char *)a : "");
	v = sqlite3_column_int64(st, 1);
	r->failures = v < 0 ? 0 : v > 1000000 ? 1000000 : (unsigned)v;
	v = sqlite3_column_int64(st, 2);
	r->last_ms = v < 0 ? 0 : (uint64_t)v;
	v = sqlite3_column_int64(st, 3);
	r->window_failures = v < 0 ? 0 : v > 1000000 ? 1000000 : (unsigned)v;
	v = sqlite3_column_int64(st, 4);
	r->window_start_ms = v < 0 ? 0 : (uint64_t)v;
	v = sqlite3_column_int64(st, 5);
	r->locked_until_ms = v < 0 ? 0 : (uint64_t)v;
}

int dir_lockout_list(struct dir *d, void (*cb)(void *ctx, const struct lockout_record *r), void *ctx)
{
	sqlite3_stmt *st;
	struct lockout_record rec;
	int rc;

	lock(d);
	rc = prep(d, &st, sql_lockout_select, "");
	if (rc != SQLITE_OK) {
		rc = sql_fail(d, rc, "lockout list", NULL, 0);
		unlock(d);
		return rc;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		record_of(st, &rec);
		cb(ctx, &rec);
	}
	sqlite3_finalize(st);
	rc = rc == SQLITE_DONE ? 0 : sql_fail(d, rc, "lockout list", NULL, 0);
	unlock(d);
	return rc;
}

int dir_lockout_load(struct dir *d, struct lockout_record **r, size_t *n_r)
{
	sqlite3_stmt *st;
	struct lockout_record *v = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*r = NULL;
	*n_r = 0;
	lock(d);
	rc = prep(d, &st, sql_lockout_select, "");
	if (rc != SQLITE_OK) {
		rc = sql_fail(d, rc, "lockout load", NULL, 0);
		unlock(d);
		return rc;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof(*v));
		}
		record_of(st, &v[n++]);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		rc = sql_fail(d, rc, "lockout load", NULL, 0);
		unlock(d);
		return rc;
	}
	/* the CLI removed their rows already: nothing left to forget */
	rc = sql_exec(d, "DELETE FROM auth_clears", "");
	unlock(d);
	if (rc != SQLITE_OK)
		log_warn("dir", NULL, "lockout clears not emptied rc=%d", rc);
	*r = v;
	*n_r = n;
	return 0;
}

void dir_strings_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int cleared(char *const *v, size_t n, const char *address)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], address) == 0)
			return 1;
	return 0;
}

int dir_lockout_save(struct dir *d, const struct lockout_record *r, size_t n, char ***cleared_r,
		     size_t *n_cleared_r)
{
	sqlite3_stmt *st = NULL;
	char **cv = NULL;
	size_t cn = 0;
	int rc;

	*cleared_r = NULL;
	*n_cleared_r = 0;
	lock(d);
	rc = begin(d);
	if (rc == SQLITE_OK)
		rc = prep(d, &st, "SELECT address FROM auth_clears", "");
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *a = sqlite3_column_text(st, 0);

		cv = xrealloc(cv, (cn + 1) * sizeof(*cv));
		cv[cn++] = xstrdup(a ? (const char *)a : "");
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_DONE && !r && cn == 0) {
		/* nothing to write and nothing cleared: no write at all */
		rollback(d);
		unlock(d);
		return 0;
	}
	if (rc == SQLITE_DONE)
		rc = sql_exec(d, "DELETE FROM auth_clears", "");
	if (rc == SQLITE_OK && r)
		rc = sql_exec(d, "DELETE FROM auth_failures", "");
	if (!r)
		n = 0;
	if (rc == SQLITE_OK && r)
		rc = prep(d, &st,
			  "INSERT OR REPLACE INTO auth_failures (address, failures, last_ms, window_failures,"
			  " window_start_ms, locked_until_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", "");
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		if (!r[i].address[0] || cleared(cv, cn, r[i].address))
			continue;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, r[i].address, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)r[i].failures);
		sqlite3_bind_int64(st, 3, (int64_t)r[i].last_ms);
		sqlite3_bind_int64(st, 4, (int64_t)r[i].window_failures);
		sqlite3_bind_int64(st, 5, (int64_t)r[i].window_start_ms);
		sqlite3_bind_int64(st, 6, (int64_t)r[i].locked_until_ms);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = commit(d);
	if (rc != SQLITE_OK) {
		rollback(d);
		rc = sql_fail(d, rc, "lockout save", NULL, 0);
		unlock(d);
		dir_strings_free(cv, cn);
		return rc;
	}
	unlock(d);
	*cleared_r = cv;
	*n_cleared_r = cn;
	return 0;
}

int dir_lockout_clear(struct dir *d, const char *address)
{
	int rc, had;

	lock(d);
	rc = begin(d);
	if (rc == SQLITE_OK)
		rc = sql_exec(d, "DELETE FROM auth_failures WHERE address = ?1", "t", address);
	had = sqlite3_changes(d->db) > 0;
	if (rc == SQLITE_OK)
		rc = sql_exec(d, "INSERT OR REPLACE INTO auth_clears (address) VALUES (?1)", "t", address);
	if (rc == SQLITE_OK)
		rc = commit(d);
	if (rc != SQLITE_OK) {
		rollback(d);
		rc = sql_fail(d, rc, "lockout clear", NULL, 0);
		unlock(d);
		return rc;
	}
	unlock(d);
	return had;
}
