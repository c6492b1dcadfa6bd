/*
 * Fuzz target for the IMAP session (imap/imap-session.c and every command
 * file), over real storage: a data_dir made once per process in /dev/shm
 * (or $TMPDIR) with the user alice@example.test (password "secret", quota
 * 16 KiB) whose Maildir holds a few messages and the default folders. After
 * every run the Maildir is put back as it was (files, index), so that runs
 * do not depend on each other and the data_dir stays small.
 *
 * Input: two header octets, then the bytes a client sends.
 *   octet 0, flags: 1 log in first ("L LOGIN alice@example.test secret" is
 *                     prepended),
 *                   2 ... and select INBOX ("S SELECT INBOX" after it),
 *                   4 small limits (line 1024, literal 2048, depth 4,
 *                     5 bad commands, 2 failed logins; before login:
 *                     literal 512, 700 octets for all sessions),
 *                   8 a message is dropped into INBOX's new/ by "another
 *                     deliverer" and the session notified, between pieces,
 *                   16 the timer fires at the end (BYE: the login deadline
 *                     before login, the idle timeout after),
 *                   32 the server shuts down at the end,
 *                   64 and 128: the listener's tls mode, octet 0 >> 6: none,
 *                     starttls, required, implicit (encrypted from the start)
 *   octet 1: seed of the split points of the second run; its bit 0 tells
 *            what happens at STARTTLS: 0 the handshake is done at once and
 *            the stream goes on inside TLS, 1 the stream up to its next LF
 *            is thrown away first (a command injected behind STARTTLS,
 *            which the glue drops)
 *
 * The io is synchronous but not recursive: exec, when_drained and resume
 * only queue their request, and a loop answers them (exec runs
 * imap_cmd_run() then imap_session_cmd_done(), a drain calls
 * imap_session_drained(), a resume feeds the held input again), the way
 * imap/imap-server.c does it over libuv. The stream runs twice: fed all at
 * once and fed in pseudo-random pieces. Unless octet 0 has 8 (the drop
 * lands at a point that depends on the pieces), both runs must write the
 * same bytes, INTERNALDATE values and UIDVALIDITY-sized numbers aside (an
 * APPEND without a date, a CREATE take the time of day). A broken invariant
 * of the io contract aborts, and so does a login deadline that is re-armed
 * or stopped before login, or a literal held before login that is counted
 * in the logged-in sessions' budget.
 * At STARTTLS, io->start_tls must come right after the tagged OK, at a
 * line end of the stream, and the session must take nothing and write
 * nothing until imap_session_tls_started(), called with a fixed tls_info.
 * AUTHENTICATE: the harness is the glue and answers io->auth_step with a
 * script instead of GNU SASL, queued like a command: mechanisms
 * "SCRAM-SHA-256 X-TWO PLAIN LOGIN" (PLAIN and LOGIN left out, and
 * plaintext_ok 0, when bit 1 of octet 1 is set); PLAIN succeeds for
 * "\0alice@example.test\0secret"; the others take a challenge
 * ("r=fuzz,s=c2FsdA==,i=4096"), then a response "ok" gets a last challenge
 * ("v=ZmluYWw=", as SCRAM's) whose empty answer succeeds, one starting
 * with 'T' a temporary failure, with 'M' a malformed message, anything
 * else a failure. A step while the session is not busy, a second request
 * while one waits, a step of an exchange that is over and an auth_end
 * without an exchange abort.
 * FUZZ_IMAP_SESSION_DUMP=1 in the environment prints what the first run wrote.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imap/imap-private.h"
#include "imap/imap-session.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/log.h"
#include "storage/directory.h"
#include "storage/folder.h"
#include "storage/mailbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(msg) do { fprintf(stderr, "fuzz-imap-session: %s\n", (msg)); abort(); } while (0)

#define USER "alice@example.test"
#define OUT_MAX (256 * 1024 * 1024)

/* ---- the data_dir, made once per process ---- */

static char base_dir[512];        /* the data_dir */
static char user_maildir[1024];   /* its Maildir */
static char template_dir[1024];   /* the Maildir as it was at the start */
static struct dir *fuzz_dir;
static struct imap_backend backend;

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Copies the tree src to dst (which must not exist) with modes and mtimes. */
static int copy_tree(const char *src, const char *dst)
{
	DIR *d;
	struct dirent *e;
	struct stat st;
	int r = 0;

	if (stat(src, &st) < 0 || mkdir(dst, st.st_mode & 07777) < 0)
		return -1;
	d = opendir(src);
	if (!d)
		return -1;
	while (r == 0 && (e = readdir(d)) != NULL) {
		char from[2048], to[2048];

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(from, sizeof(from), "%s/%s", src, e->d_name);
		snprintf(to, sizeof(to), "%s/%s", dst, e->d_name);
		if (lstat(from, &st) < 0) {
			r = -1;
		} else if (S_ISDIR(st.st_mode)) {
			r = copy_tree(from, to);
		} else if (S_ISREG(st.st_mode)) {
			char buf[65536];
			int in = open(from, O_RDONLY | O_CLOEXEC), out;
			ssize_t n;
			struct timespec times[2];

			if (in < 0)
				return closedir(d), -1;
			out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
			if (out < 0) {
				close(in);
				return closedir(d), -1;
			}
			while ((n = read(in, buf, sizeof(buf))) > 0)
				if (write(out, buf, (size_t)n) != n)
					r = -1;
			if (n < 0)
				r = -1;
			times[0] = st.st_atim;
			times[1] = st.st_mtim;
			futimens(out, times);
			close(in);
			close(out);
		}
	}
	closedir(d);
	return r;
}

static void restore_maildir(void)
{
	rm_tree(user_maildir);
	if (copy_tree(template_dir, user_maildir) < 0)
		FAIL("cannot restore the Maildir");
}

static void cleanup_base(void)
{
	dir_close(&fuzz_dir);
	if (base_dir[0])
		rm_tree(base_dir);
}

/* libFuzzer leaves through _Exit() after a finding, without the atexit
 * clean-up: data_dirs whose process is gone are removed here. */
static void remove_stale(const char *parent)
{
	static const char prefix[] = "fuzz-imap-session-";
	DIR *d = opendir(parent);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[1024], *end;
		long pid;

		if (strncmp(e->d_name, prefix, sizeof(prefix) - 1) != 0)
			continue;
		pid = strtol(e->d_name + sizeof(prefix) - 1, &end, 10);
		if (pid <= 0 || *end != '-' || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", parent, e->d_name);
		rm_tree(path);
	}
	closedir(d);
}

static const char *const seed_msgs[] = {
	"From: Bob <bob@example.org>\nTo: alice@example.test\nSubject: hello\n"
	"Date: Sat, 28 Nov 2026 18:53:08 +0000\nMessage-ID: <1@example.org>\n\nHello Alice.\n",
	"From: =?utf-8?q?Ren=C3=A9?= <rene@example.org>\nTo: alice@example.test, carol@example.org\n"
	"Subject: =?iso-8859-1?q?caf=E9?=\nMIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=\"b1\"\n\npreamble\n--b1\n"
	"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
	"caf=C3=A9 au lait\n--b1\nContent-Type: message/rfc822\n\n"
	"From: x@example.org\nSubject: inner\n\ninner body\n--b1\n"
	"Content-Type: application/octet-stream; name*=utf-8''%E2%82%AC.bin\n"
	"Content-Transfer-Encoding: base64\n\nAAECAwQFBgcICQ==\n--b1--\nepilogue\n",
	"Subject: no date, no from\n\nline\r\nwith a bare CR\r here\n",
};

static void fuzz_init(void)
{
	const char *parents[] = { "/dev/shm", getenv("TMPDIR"), "/tmp" };
	char err[256];
	uint32_t uv, uid;
	int null;

	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null >= 0)
		log_set_fd(null);
	for (size_t i = 0; i < sizeof(parents) / sizeof(parents[0]) && !base_dir[0]; i++) {
		if (!parents[i] || access(parents[i], W_OK) < 0)
			continue;
		remove_stale(parents[i]);
		snprintf(base_dir, sizeof(base_dir), "%s/fuzz-imap-session-%ld-XXXXXX", parents[i], (long)getpid());
		if (!mkdtemp(base_dir))
			base_dir[0] = '\0';
	}
	if (!base_dir[0])
		FAIL("cannot make a data_dir");
	atexit(cleanup_base);
	if (dir_open(base_dir, &fuzz_dir, err, sizeof(err)) < 0 ||
	    dir_domain_add(fuzz_dir, "example.test", err, sizeof(err)) < 0 ||
	    dir_user_add(fuzz_dir, USER, "secret", 16384, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz-imap-session: %s\n", err);
		FAIL("cannot set up the directory");
	}
	/* A cheap hash (SHA-256 crypt, 1000 rounds) instead of yescrypt: a
	 * login per run. */
	dir_user_set_hash(fuzz_dir, USER,
			  "$5$rounds=1000$fuzzsalt$qGCc4JvvMNwwgoU2eJ4FMcZ.jSqNaOPBoUN0Jv2w9O2", err, sizeof(err));
	snprintf(user_maildir, sizeof(user_maildir), "%s/mail/example.test/alice", base_dir);
	snprintf(template_dir, sizeof(template_dir), "%s/template", base_dir);
	if (folder_create(user_maildir, "Archive.2026") < 0 || folder_create(user_maildir, "&AOk-t&AOk-") < 0)
		FAIL("cannot create folders");
	for (size_t i = 0; i < sizeof(seed_msgs) / sizeof(seed_msgs[0]); i++)
		if (mbox_append(user_maildir, "INBOX", seed_msgs[i], strlen(seed_msgs[i]), i == 0 ? MBOX_SEEN : 0,
				i == 1 ? "$Important work" : "", 1700000000 + (int64_t)i * 86400, "fuzz", &uv,
				&uid) < 0)
			FAIL("cannot append the seed messages");
	if (mbox_append(user_maildir, "Sent", seed_msgs[0], strlen(seed_msgs[0]), MBOX_SEEN | MBOX_ANSWERED, "",
			1700000000, "fuzz", &uv, &uid) < 0)
		FAIL("cannot append to Sent");
	/* Every folder gets its UIDVALIDITY now, the same in every run. */
	{
		char **names = NULL;
		int n = folder_list(user_maildir, &names);
		for (int i = 0; i < n; i++) {
			struct mbox *m = NULL;
			if (mbox_open(user_maildir, names[i], MBOX_READONLY, &m, err, sizeof(err)) < 0)
				FAIL("cannot open a folder");
			mbox_close(&m);
		}
		if (n < 0)
			FAIL("cannot list the folders");
		folder_list_free(names);
	}
	if (copy_tree(user_maildir, template_dir) < 0)
		FAIL("cannot copy the Maildir");
	backend.dir = fuzz_dir;
	backend.hostname = "imap.fuzz.test";
}

/* ---- one run ---- */

struct run {
	struct imap_session *s;
	const struct imap_config *cfg;
	unsigned timeouts;       /* set_timeout() calls */
	unsigned flags;
	bool closed;
	struct buf out;          /* everything written */
	struct buf held;         /* input not consumed yet */
	struct imap_cmd *exec;   /* a command waiting to run */
	bool drain;              /* imap_session_drained() is due */
	bool resume;             /* feed the held input again */
	unsigned drops;
	const uint8_t *stream;   /* the whole input */
	size_t consumed;         /* octets of it the session took or the harness dropped */
	bool drop_line;          /* at STARTTLS, drop the stream up to its next LF */
	bool tls_wanted;         /* start_tls called, tls_started not yet */
	bool tls_checked;
	bool no_plaintext;       /* plaintext_ok answers 0 */
	struct auth_step *step;  /* auth_step asked, not answered yet */
	int exchange;            /* 0 none; else the number of steps answered + 1 */
	bool final_sent;         /* the "v=" challenge went out */
};

static void r_write(void *ctx, const char *data, size_t len)
{
	struct run *r = ctx;

	if (r->closed)
		FAIL("write after close");
	if (r->tls_wanted)
		FAIL("write during the TLS handshake");
	if (len == 0)
		FAIL("empty write");
	if (buf_add(&r->out, data, len) < 0)
		FAIL("output over 256 MiB");
}

static void r_close(void *ctx, const char *reason)
{
	struct run *r = ctx;

	if (!reason || !*reason)
		FAIL("close without a reason");
	if (r->closed)
		FAIL("close twice");
	r->closed = true;
}

static void r_set_timeout(void *ctx, unsigned seconds)
{
	struct run *r = ctx;

	if (r->timeouts++ == 0) {
		/* from imap_session_new(): the login deadline */
		unsigned deadline = r->cfg->login_timeout < r->cfg->idle_timeout ? r->cfg->login_timeout
										 : r->cfg->idle_timeout;

		if (r->s || seconds != deadline)
			FAIL("the first timeout is not the login deadline");
		return;
	}
	/* nothing moves the deadline before login: not input, not a LOGIN */
	if (!r->s || r->s->state == IMAP_NOAUTH)
		FAIL("login deadline re-armed or stopped before login");
	if (seconds != 0 && seconds < 1800)
		FAIL("idle timeout below RFC 3501's 30 minutes");
}

static void r_exec(void *ctx, struct imap_cmd *cmd, unsigned delay_ms)
{
	struct run *r = ctx;

	(void)delay_ms;
	if (!cmd)
		FAIL("exec without a command");
	if (r->exec)
		FAIL("exec while a command waits");
	r->exec = cmd;
}

static void r_resume(void *ctx)
{
	struct run *r = ctx;

	r->resume = true;
}

static void r_when_drained(void *ctx, size_t below)
{
	struct run *r = ctx;

	(void)below;
	if (r->drain)
		FAIL("when_drained twice");
	r->drain = true;
}

static void check_key(const char *key)
{
	size_t n = strlen(user_maildir);

	/* A folder key is the Maildir or a folder directory inside it. */
	if (strncmp(key, user_maildir, n) != 0 || (key[n] != '\0' && strncmp(key + n, "/.", 2) != 0) ||
	    strstr(key + n, "/..") || strchr(key + n + (key[n] ? 2 : 0), '/'))
		FAIL("a folder key outside the user's Maildir");
}

static void r_watch(void *ctx, const char *key)
{
	(void)ctx;
	if (key)
		check_key(key);
}

static void r_publish(void *ctx, const char *key)
{
	(void)ctx;
	if (!key)
		FAIL("publish without a key");
	check_key(key);
}

static unsigned r_auth_delay(void *ctx, const char *user)
{
	(void)ctx;
	if (!user)
		FAIL("auth_delay without a user");
	return 0;
}

static void r_auth_result(void *ctx, const char *user, int ok)
{
	(void)ctx;
	(void)ok;
	if (!user)
		FAIL("auth_result without a user");
}

static void r_start_tls(void *ctx)
{
	static const char ok[] = " OK Begin TLS negotiation now\r\n";
	struct run *r = ctx;

	if (r->tls_wanted)
		FAIL("start_tls twice");
	if (r->out.len < sizeof(ok) - 1 || memcmp(r->out.data + r->out.len - (sizeof(ok) - 1), ok, sizeof(ok) - 1) != 0)
		FAIL("start_tls without the tagged OK before it");
	if (r->s->state != IMAP_NOAUTH)
		FAIL("start_tls after login");
	r->tls_wanted = true;
	r->tls_checked = false;
}

static const char *r_auth_mechs(void *ctx)
{
	struct run *r = ctx;

	return r->no_plaintext ? "SCRAM-SHA-256 X-TWO" : "SCRAM-SHA-256 X-TWO PLAIN LOGIN";
}

static int r_plaintext_ok(void *ctx)
{
	struct run *r = ctx;

	return !r->no_plaintext;
}

static void r_auth_step(void *ctx, struct auth_step *st)
{
	struct run *r = ctx;

	if (!st)
		FAIL("auth_step without a step");
	if (r->step || r->exec)
		FAIL("auth_step while a request waits");
	if (!imap_session_busy(r->s))
		FAIL("auth_step with the session not busy");
	if (r->s->state != IMAP_NOAUTH)
		FAIL("auth_step after login");
	if (st->first) {
		r->exchange = 1;
		r->final_sent = false;
		if (!st->in_absent && !st->in)
			FAIL("initial response without data");
	} else if (!r->exchange) {
		FAIL("a step of an exchange that is over");
	} else if (st->in_absent || (st->in_len && !st->in)) {
		FAIL("a later step without a response");
	}
	r->step = st;
}

static void answer_step(struct run *r, struct auth_step *st)
{
	static const char plain[] = "\0" USER "\0secret";
	static const char first[] = "r=fuzz,s=c2FsdA==,i=4096";
	static const char final[] = "v=ZmluYWw=";
	const char *ch = NULL;

	st->out = NULL;
	st->out_len = 0;
	st->user[0] = '\0';
	if (strcmp(st->mech, "PLAIN") == 0 || strcmp(st->mech, "LOGIN") == 0) {
		if (st->in_absent) {
			st->status = AUTH_CONTINUE;
		} else if (st->in_len == sizeof(plain) - 1 && memcmp(st->in, plain, st->in_len) == 0) {
			st->status = AUTH_OK;
			snprintf(st->user, sizeof(st->user), "%s", USER);
		} else {
			st->status = AUTH_FAILED;
			snprintf(st->user, sizeof(st->user), "someone");
		}
	} else if (r->final_sent) {
		st->status = st->in_len == 0 ? AUTH_OK : AUTH_MALFORMED;
		if (st->status == AUTH_OK)
			snprintf(st->user, sizeof(st->user), "%s", USER);
	} else if (st->first) {
		st->status = AUTH_CONTINUE;
		ch = first;
	} else if (st->in_len == 2 && memcmp(st->in, "ok", 2) == 0) {
		st->status = AUTH_CONTINUE;
		ch = final;
		r->final_sent = true;
	} else if (st->in_len && st->in[0] == 'T') {
		st->status = AUTH_TEMPFAIL;
	} else if (st->in_len && st->in[0] == 'M') {
		st->status = AUTH_MALFORMED;
	} else {
		st->status = AUTH_FAILED;
	}
	if (ch) {
		st->out = malloc(strlen(ch));
		if (!st->out)
			FAIL("out of memory");
		memcpy(st->out, ch, strlen(ch));
		st->out_len = strlen(ch);
	}
	r->exchange++;
	imap_session_auth_done(r->s, st);
}

static void r_auth_end(void *ctx)
{
	struct run *r = ctx;

	if (r->step)
		FAIL("auth_end while a step runs");
	if (!r->exchange)
		FAIL("auth_end without an exchange");
	r->exchange = 0;
}

static const struct imap_io fuzz_io = {
	.write = r_write, .close = r_close, .set_timeout = r_set_timeout, .exec = r_exec,
	.resume = r_resume, .when_drained = r_when_drained, .watch = r_watch, .publish = r_publish,
	.auth_delay = r_auth_delay, .auth_result = r_auth_result, .start_tls = r_start_tls,
	.auth_mechs = r_auth_mechs, .plaintext_ok = r_plaintext_ok, .auth_step = r_auth_step,
	.auth_end = r_auth_end,
};

static const struct tls_info fuzz_tls = { .version = "TLS1.3", .cipher = "TLS_AES_256_GCM_SHA384" };

/* After start_tls: the session takes nothing; the harness drops what the
 * glue would (the rest of the line behind STARTTLS, when asked), then the
 * handshake is done. Returns true while still waiting for more input. */
static bool tls_step(struct run *r, bool at_end)
{
	if (!r->tls_checked) {
		if (r->consumed == 0 || r->stream[r->consumed - 1] != '\n')
			FAIL("STARTTLS did not end at a line end");
		r->tls_checked = true;
	}
	if (r->held.len && imap_session_input(r->s, r->held.data, r->held.len) != 0)
		FAIL("input taken during the TLS handshake");
	if (imap_session_busy(r->s))
		FAIL("busy during the TLS handshake");
	if (r->drop_line) {
		const char *lf = r->held.len ? memchr(r->held.data, '\n', r->held.len) : NULL;
		size_t n = lf ? (size_t)(lf - r->held.data) + 1 : r->held.len;

		buf_consume(&r->held, n);
		r->consumed += n;
		if (!lf && !at_end)
			return true;
	}
	r->tls_wanted = false;
	imap_session_tls_started(r->s, &fuzz_tls);
	return false;
}

/* What lib/net.c does: pass held input until nothing more is consumed. */
static void pump(struct run *r)
{
	while (r->held.len > 0 && !r->closed) {
		size_t n;

		if (r->tls_wanted) {
			if (tls_step(r, false))
				return;
			continue;
		}
		n = imap_session_input(r->s, r->held.data, r->held.len);
		if (!r->closed)
			r->consumed += n;

		/* a session that has not logged in draws on its own budget only */
		if (r->s->state == IMAP_NOAUTH && (r->s->lit_held != 0 || imap_literals_held() != 0))
			FAIL("a literal before login counted in max_buffered");
		if (imap_login_literals_held() > r->cfg->login_max_buffered)
			FAIL("login literals over login_max_buffered");

		if (n > r->held.len)
			FAIL("consumed more than given");
		buf_consume(&r->held, n);
		if (r->tls_wanted)
			continue;
		if (imap_session_busy(r->s))
			return;
		if (n == 0 && !r->closed)
			FAIL("idle session consumed nothing");
	}
}

/* Answers the queued requests, in the order the loop thread would. */
static void settle(struct run *r)
{
	for (;;) {
		if (r->exec) {
			struct imap_cmd *cmd = r->exec;

			r->exec = NULL;
			if (!imap_session_busy(r->s))
				FAIL("exec but the session is not busy");
			imap_cmd_run(cmd);
			imap_session_cmd_done(r->s, cmd);
		} else if (r->step) {
			struct auth_step *st = r->step;

			r->step = NULL;
			answer_step(r, st);
		} else if (r->drain) {
			r->drain = false;
			imap_session_drained(r->s);
		} else if (r->resume) {
			r->resume = false;
			pump(r);
		} else {
			return;
		}
	}
}

/* Another deliverer drops a message into INBOX's new/ (picked up at the
 * next refresh). */
static void drop_message(struct run *r)
{
	char path[1400];
	static const char msg[] = "Subject: dropped\n\nfrom outside\n";
	int fd;

	snprintf(path, sizeof(path), "%s/new/1700000000.M%uP1.fuzz,S=%zu", user_maildir, r->drops++,
		 sizeof(msg) - 1);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, msg, sizeof(msg) - 1) < 0)
		FAIL("cannot drop a message");
	close(fd);
	imap_session_notify(r->s);
}

static void run(struct run *r, const struct imap_config *cfg, unsigned flags, unsigned seed, bool drop_line,
		bool no_plaintext, const uint8_t *data, size_t size)
{
	enum tls_mode mode = (enum tls_mode)((flags >> 6) & 3);
	struct imap_session_params p = {
		.cfg = cfg, .backend = &backend, .sid = "F1", .client_addr = "2001:db8::1",
		.tls_mode = mode, .tls = mode == TLS_MODE_IMPLICIT ? &fuzz_tls : NULL,
	};
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	r->stream = data;
	r->drop_line = drop_line;
	r->no_plaintext = no_plaintext;
	r->flags = flags;
	r->cfg = cfg;
	buf_init(&r->out, OUT_MAX);
	buf_init(&r->held, 0);
	restore_maildir();
	r->s = imap_session_new(&p, &fuzz_io, r);
	while (off < size) {
		size_t n = size - off;

		if (seed) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % 64;
			if (n > size - off)
				n = size - off;
		}
		buf_add(&r->held, data + off, n);
		off += n;
		if (!imap_session_busy(r->s))
			pump(r);
		settle(r);
		if ((flags & 8) && (seed >> 8) % 4 == 0 && !r->closed)
			drop_message(r);
		settle(r);
	}
	settle(r);
	while (r->tls_wanted && !r->closed) {
		/* the stream ended during the handshake */
		tls_step(r, true);
		pump(r);
		settle(r);
	}
	if (imap_session_busy(r->s))
		FAIL("busy after everything was answered");
	if (r->held.len && !r->closed)
		FAIL("input left over");
	if (r->out.len < 2 || r->out.data[r->out.len - 2] != '\r' || r->out.data[r->out.len - 1] != '\n')
		FAIL("output does not end with CRLF");
	if ((flags & 16) && !r->closed)
		imap_session_timeout(r->s);
	if ((flags & 32) && !r->closed)
		imap_session_shutdown(r->s);
	settle(r);
	imap_session_disconnected(r->s);
	imap_session_free(&r->s);
}

/* Masks what may take the time of day: INTERNALDATE values (an APPEND
 * without a date) and numbers of nine digits or more (the UIDVALIDITY of
 * a folder made during the run). */
static void mask_dates(struct buf *b)
{
	static const char key[] = "INTERNALDATE \"";
	char *p = b->data;
	size_t run = 0;

	for (size_t i = 0; i <= b->len; i++) {
		if (i < b->len && b->data[i] >= '0' && b->data[i] <= '9') {
			run++;
			continue;
		}
		if (run >= 9)
			memset(b->data + i - run, 'X', run);
		run = 0;
	}

	while (p && (p = memmem(p, b->len - (size_t)(p - b->data), key, sizeof(key) - 1)) != NULL) {
		p += sizeof(key) - 1;
		while ((size_t)(p - b->data) < b->len && *p != '"')
			*p++ = 'X';
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char login[] = "L LOGIN " USER " secret\r\n";
	static const char select[] = "S SELECT INBOX\r\n";
	struct imap_config cfg;
	struct run a, b;
	unsigned flags, seed;
	uint8_t *stream;
	size_t stream_len, pre = 0;

	if (!base_dir[0])
		fuzz_init();
	if (size < 2)
		return 0;
	flags = data[0];
	seed = data[1] | 0x100u;   /* never 0: the second run always splits */
	data += 2;
	size -= 2;
	if (flags & 3)
		pre += sizeof(login) - 1;
	if (flags & 2)
		pre += sizeof(select) - 1;
	stream_len = pre + size;
	stream = malloc(stream_len ? stream_len : 1);
	if (!stream)
		return 0;
	if (flags & 3)
		memcpy(stream, login, sizeof(login) - 1);
	if (flags & 2)
		memcpy(stream + sizeof(login) - 1, select, sizeof(select) - 1);
	memcpy(stream + pre, data, size);

	imap_config_defaults(&cfg);
	snprintf(cfg.hostname, sizeof(cfg.hostname), "imap.fuzz.test");
	if (flags & 4) {
		cfg.max_line = 1024;
		cfg.max_literal = 2048;
		cfg.max_buffered = 3000;   /* two literals of one command can go past it */
		cfg.max_depth = 4;
		cfg.max_bad_commands = 5;
		cfg.max_auth_failures = 2;
		cfg.login_max_literal = 512;
		cfg.login_max_buffered = 700;   /* one session holds at most 512 */
	}
	run(&a, &cfg, flags, 0, seed & 1, seed & 2, stream, stream_len);
	if (imap_literals_held() != 0 || imap_login_literals_held() != 0)
		FAIL("a freed session left literal octets counted");
	run(&b, &cfg, flags, seed, seed & 1, seed & 2, stream, stream_len);
	if (imap_literals_held() != 0 || imap_login_literals_held() != 0)
		FAIL("a freed session left literal octets counted");
	free(stream);
	if (getenv("FUZZ_IMAP_SESSION_DUMP"))
		fprintf(stderr, "%.*s", (int)a.out.len, a.out.data);
	if (!(flags & 8)) {
		mask_dates(&a.out);
		mask_dates(&b.out);
		if (a.out.len != b.out.len || memcmp(a.out.data, b.out.data, a.out.len) != 0) {
			fprintf(stderr, "--- all at once:\n%.*s\n--- in pieces:\n%.*s\n", (int)a.out.len,
				a.out.data, (int)b.out.len, b.out.data);
			FAIL("replies depend on how the input was split");
		}
	}
	buf_release(&a.out);
	buf_release(&a.held);
	buf_release(&b.out);
	buf_release(&b.held);
	return 0;
}
