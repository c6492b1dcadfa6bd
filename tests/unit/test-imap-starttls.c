/*
 * Unit tests of IMAP STARTTLS and tls = required (imap/imap-session.c,
 * imap/imap-cmd-any.c): what is advertised before and after the
 * handshake, that nothing pipelined behind STARTTLS is ever run (the
 * harness throws it away, as the glue does, and checks that it was exactly
 * the bytes after the command), the refusals, LOGINDISABLED and
 * PRIVACYREQUIRED, and the timers around the handshake.
 *
 * The session runs over a real user directory in /tmp (alice, password
 * "secret", a cheap hash) so that a LOGIN after the handshake really logs
 * in. Commands run the way imap/imap-server.c runs them: exec only queues
 * and the harness runs the command once the session stopped taking input.
 * Every table case is fed one byte at a time and all at once; both must
 * write what the case expects ('*' in want matches any text).
 */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imap/imap-private.h"
#include "imap/imap-session.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/log.h"
#include "storage/directory.h"
#include "tests/common/check.h"

#define ALICE "alice@example.test"
/* SHA-256 crypt of "secret", 1000 rounds: a login costs little */
#define ALICE_HASH "$5$rounds=1000$fuzzsalt$qGCc4JvvMNwwgoU2eJ4FMcZ.jSqNaOPBoUN0Jv2w9O2"
/* base64 of "\0alice@example.test\0secret" */
#define PLAIN_ALICE "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="

static struct imap_backend backend;
static char root[256];
static const struct tls_info test_tls = { "TLS1.3", "TLS_AES_256_GCM_SHA384", "" };

/* ---- the fake connection ---- */

struct fake {
	struct imap_session *s;
	struct buf greeting;
	struct buf out;
	bool closed;
	unsigned timeouts;       /* set_timeout() calls */
	unsigned timeout;        /* the last value */
	struct imap_cmd *queued; /* exec'd, not run yet */
	bool drain;
	/* STARTTLS: after start_tls the glue drops what it holds and what
	 * arrives until the handshake is done */
	bool tls_wanted;
	unsigned n_start_tls;
	struct buf dropped;
};

static void f_write(void *ctx, const char *data, size_t len)
{
	struct fake *f = ctx;

	CHECK(!f->closed, "write after close");
	buf_add(&f->out, data, len);
}

static void f_close(void *ctx, const char *reason)
{
	struct fake *f = ctx;

	(void)reason;
	f->closed = true;
}

static void f_set_timeout(void *ctx, unsigned seconds)
{
	struct fake *f = ctx;

	f->timeouts++;
	f->timeout = seconds;
}

static void f_exec(void *ctx, struct imap_cmd *cmd, unsigned delay_ms)
{
	struct fake *f = ctx;

	(void)delay_ms;
	CHECK(!f->queued, "exec while a command waits");
	f->queued = cmd;
}

static void f_resume(void *ctx)
{
	(void)ctx;
}

static void f_when_drained(void *ctx, size_t below)
{
	struct fake *f = ctx;

	(void)below;
	f->drain = true;
}

static void f_watch(void *ctx, const char *key)
{
	(void)ctx;
	(void)key;
}

static unsigned f_auth_delay(void *ctx, const char *user)
{
	(void)ctx;
	(void)user;
	return 0;
}

static void f_auth_result(void *ctx, const char *user, int ok)
{
	(void)ctx;
	(void)user;
	(void)ok;
}

static void f_start_tls(void *ctx)
{
	static const char ok[] = " OK Begin TLS negotiation now\r\n";
	struct fake *f = ctx;

	CHECK(!f->tls_wanted, "start_tls twice");
	CHECK(f->out.len >= sizeof(ok) - 1 &&
	      memcmp(f->out.data + f->out.len - (sizeof(ok) - 1), ok, sizeof(ok) - 1) == 0,
	      "start_tls before the tagged OK was written");
	f->tls_wanted = true;
	f->n_start_tls++;
}

static const struct imap_io fake_io = {
	.write = f_write, .close = f_close, .set_timeout = f_set_timeout, .exec = f_exec,
	.resume = f_resume, .when_drained = f_when_drained, .watch = f_watch, .publish = f_watch,
	.auth_delay = f_auth_delay, .auth_result = f_auth_result, .start_tls = f_start_tls,
};

static void fake_open(struct fake *f, const struct imap_config *cfg, enum tls_mode mode, bool tls)
{
	struct imap_session_params p = {
		.cfg = cfg, .backend = &backend, .sid = "T1", .client_addr = "192.0.2.1",
		.tls_mode = mode, .tls = tls ? &test_tls : NULL,
	};

	memset(f, 0, sizeof(*f));
	buf_init(&f->out, 0);
	buf_init(&f->greeting, 0);
	buf_init(&f->dropped, 0);
	f->s = imap_session_new(&p, &fake_io, f);
	buf_add(&f->greeting, f->out.data, f->out.len);
	buf_reset(&f->out);
}

static void fake_free(struct fake *f)
{
	imap_session_disconnected(f->s);
	imap_session_free(&f->s);
	buf_release(&f->out);
	buf_release(&f->greeting);
	buf_release(&f->dropped);
}

/* Runs what the session asked for, as the loop thread would. */
static void settle(struct fake *f)
{
	for (;;) {
		if (f->queued) {
			struct imap_cmd *cmd = f->queued;

			f->queued = NULL;
			imap_cmd_run(cmd);
			imap_session_cmd_done(f->s, cmd);
		} else if (f->drain) {
			f->drain = false;
			imap_session_drained(f->s);
		} else {
			return;
		}
	}
}

/* Feeds data in pieces of at most step octets (0: all at once), holding
 * back what the session does not take until its command has run; while
 * the handshake runs, what arrives is dropped. */
static void feed(struct fake *f, const char *data, size_t len, size_t step)
{
	size_t off = 0;

	while (off < len && !f->closed) {
		size_t n = step && len - off > step ? step : len - off;
		size_t used;

		if (f->tls_wanted) {
			used = imap_session_input(f->s, data + off, n);
			CHECK(used == 0, "consumed %zu octets while waiting for TLS", used);
			buf_add(&f->dropped, data + off, n);
			off += n;
			continue;
		}
		used = imap_session_input(f->s, data + off, n);
		CHECK(used <= n, "consumed more than given");
		off += used;
		if (used < n && !f->tls_wanted) {
			CHECK(imap_session_busy(f->s) || f->queued, "input left without a command running");
			if (!f->queued && !f->drain)
				break;
		}
		settle(f);
	}
	settle(f);
}

/* The handshake is done. */
static void tls_done(struct fake *f)
{
	CHECK(f->tls_wanted, "handshake without start_tls");
	f->tls_wanted = false;
	imap_session_tls_started(f->s, &test_tls);
	settle(f);
}

/* want with '*' matching any run of characters. */
static bool glob_match(const char *want, const char *got, size_t got_len)
{
	if (!*want)
		return got_len == 0;
	if (*want == '*') {
		for (size_t i = 0; i <= got_len; i++)
			if (glob_match(want + 1, got + i, got_len - i))
				return true;
		return false;
	}
	return got_len > 0 && *want == *got && glob_match(want + 1, got + 1, got_len - 1);
}

static bool contains(const struct buf *b, const char *needle)
{
	return b->len && memmem(b->data, b->len, needle, strlen(needle)) != NULL;
}

/* ---- the table ---- */

struct tcase {
	const char *name;
	enum tls_mode mode;
	bool tls;                /* encrypted from the start (implicit TLS) */
	const char *greeting;    /* glob */
	const char *in;          /* sent in clear */
	const char *in_tls;      /* sent after the handshake, if there was one */
	const char *want;        /* glob of everything written after the greeting */
	const char *dropped;     /* what the glue must have thrown away */
	unsigned starttls;       /* start_tls calls */
	const char *absent;      /* must not appear in the output after the greeting */
	bool closed;
};

#define CAPS_STARTTLS "* OK [CAPABILITY IMAP4rev1 * APPENDLIMIT=* STARTTLS AUTH=PLAIN] imap.test IMAP4rev1 buzon ready\r\n"
#define CAPS_REQUIRED "* OK [CAPABILITY IMAP4rev1 * APPENDLIMIT=* STARTTLS LOGINDISABLED] imap.test IMAP4rev1 buzon ready\r\n"
#define CAPS_PLAIN "* OK [CAPABILITY IMAP4rev1 * APPENDLIMIT=* AUTH=PLAIN] imap.test IMAP4rev1 buzon ready\r\n"
#define BEGIN(tag) tag " OK Begin TLS negotiation now\r\n"
#define PRIVACY(tag) tag " NO [PRIVACYREQUIRED] Must issue a STARTTLS command first\r\n"
#define CAP_PLAIN(tag) "* CAPABILITY IMAP4rev1 * APPENDLIMIT=* AUTH=PLAIN\r\n" tag " OK Capability completed\r\n"
#define LOGGED_IN(tag) tag " OK [CAPABILITY *] Logged in\r\n"

static const struct tcase cases[] = {
	{ .name = "STARTTLS offered, then not any more", .mode = TLS_MODE_STARTTLS, .greeting = CAPS_STARTTLS,
	  .in = "a CAPABILITY\r\nb STARTTLS\r\n",
	  .in_tls = "c CAPABILITY\r\nd STARTTLS\r\ne LOGIN " ALICE " secret\r\nf CAPABILITY\r\ng STARTTLS\r\n",
	  .want = "* CAPABILITY IMAP4rev1 * STARTTLS AUTH=PLAIN\r\na OK Capability completed\r\n" BEGIN("b")
		  CAP_PLAIN("c") "d BAD TLS is already active\r\n" LOGGED_IN("e")
		  "* CAPABILITY IMAP4rev1 *\r\nf OK Capability completed\r\ng BAD Already logged in\r\n",
	  .starttls = 1 },
	{ .name = "injection: a LOGIN pipelined behind STARTTLS is never run", .mode = TLS_MODE_STARTTLS,
	  .greeting = CAPS_STARTTLS,
	  .in = "a STARTTLS\r\nb LOGIN " ALICE " secret\r\nc SELECT INBOX\r\n",
	  .in_tls = "d SELECT INBOX\r\n",
	  .want = BEGIN("a") "d BAD Log in first\r\n",
	  .dropped = "b LOGIN " ALICE " secret\r\nc SELECT INBOX\r\n", .starttls = 1 },
	{ .name = "injection: a partial command behind STARTTLS is dropped", .mode = TLS_MODE_STARTTLS,
	  .greeting = CAPS_STARTTLS,
	  .in = "a STARTTLS\r\nb LOGIN " ALICE,
	  .in_tls = " secret\r\nc NOOP\r\n",
	  .want = BEGIN("a") "* BAD *\r\nc OK NOOP completed\r\n",
	  .dropped = "b LOGIN " ALICE, .starttls = 1 },
	{ .name = "injection: a literal behind STARTTLS", .mode = TLS_MODE_STARTTLS, .greeting = CAPS_STARTTLS,
	  .in = "a STARTTLS\r\nb LOGIN {18+}\r\n" ALICE " secret\r\n",
	  .in_tls = "c NOOP\r\n",
	  .want = BEGIN("a") "c OK NOOP completed\r\n",
	  .dropped = "b LOGIN {18+}\r\n" ALICE " secret\r\n", .starttls = 1 },
	{ .name = "STARTTLS with an argument", .mode = TLS_MODE_STARTTLS, .greeting = CAPS_STARTTLS,
	  .in = "a STARTTLS now\r\nb NOOP\r\n",
	  .want = "a BAD STARTTLS takes no arguments\r\nb OK NOOP completed\r\n" },
	{ .name = "STARTTLS after a login in clear", .mode = TLS_MODE_STARTTLS, .greeting = CAPS_STARTTLS,
	  .in = "a LOGIN " ALICE " secret\r\nb STARTTLS\r\n",
	  .want = LOGGED_IN("a") "b BAD Already logged in\r\n", .absent = "STARTTLS " },
	{ .name = "tls = none: not offered, refused", .mode = TLS_MODE_NONE, .greeting = CAPS_PLAIN,
	  .in = "a CAPABILITY\r\nb STARTTLS\r\nc NOOP\r\n",
	  .want = CAP_PLAIN("a") "b BAD TLS is not available on this port\r\nc OK NOOP completed\r\n",
	  .absent = "STARTTLS\r\n" },
	{ .name = "implicit TLS: not offered, refused", .mode = TLS_MODE_IMPLICIT, .tls = true, .greeting = CAPS_PLAIN,
	  .in = "a CAPABILITY\r\nb STARTTLS\r\nc LOGIN " ALICE " secret\r\n",
	  .want = CAP_PLAIN("a") "b BAD TLS is already active\r\n" LOGGED_IN("c") },
	{ .name = "tls = required: LOGINDISABLED and PRIVACYREQUIRED", .mode = TLS_MODE_REQUIRED,
	  .greeting = CAPS_REQUIRED,
	  .in = "a CAPABILITY\r\nb LOGIN " ALICE " secret\r\nc AUTHENTICATE PLAIN\r\nd AUTHENTICATE PLAIN " PLAIN_ALICE
		"\r\ne LOGIN {18}\r\nf LOGIN " ALICE " {6+}\r\nsecret\r\ng NOOP\r\nh ID NIL\r\ni LOGIN\r\n"
		"j SELECT INBOX\r\nk STARTTLS\r\n",
	  .in_tls = "l CAPABILITY\r\nm LOGIN " ALICE " secret\r\n",
	  .want = "* CAPABILITY IMAP4rev1 * STARTTLS LOGINDISABLED\r\na OK Capability completed\r\n"
		  PRIVACY("b") PRIVACY("c") PRIVACY("d") PRIVACY("e") PRIVACY("f") "g OK NOOP completed\r\n"
		  "* ID (*)\r\nh OK ID completed\r\n" PRIVACY("i") "j BAD Log in first\r\n" BEGIN("k")
		  CAP_PLAIN("l") LOGGED_IN("m"),
	  .starttls = 1, .absent = "\n+ " },
	{ .name = "tls = required: injection", .mode = TLS_MODE_REQUIRED, .greeting = CAPS_REQUIRED,
	  .in = "k STARTTLS\r\nx LOGIN " ALICE " secret\r\n",
	  .in_tls = "y SELECT INBOX\r\n",
	  .want = BEGIN("k") "y BAD Log in first\r\n",
	  .dropped = "x LOGIN " ALICE " secret\r\n", .starttls = 1 },
	{ .name = "tls = required on implicit TLS: logins work", .mode = TLS_MODE_REQUIRED, .tls = true,
	  .greeting = CAPS_PLAIN,
	  .in = "a AUTHENTICATE PLAIN " PLAIN_ALICE "\r\n",
	  .want = LOGGED_IN("a") },
};

static void run_cases(const struct imap_config *cfg)
{
	static const size_t steps[] = { 1, 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *c = &cases[i];

		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			struct fake f;
			unsigned timeouts;

			fake_open(&f, cfg, c->mode, c->tls);
			CHECK(glob_match(c->greeting, f.greeting.data, f.greeting.len), "%s: greeting %.*s", c->name,
			      (int)f.greeting.len, f.greeting.data);
			timeouts = f.timeouts;
			feed(&f, c->in, strlen(c->in), steps[k]);
			if (f.tls_wanted)
				tls_done(&f);
			if (c->in_tls)
				feed(&f, c->in_tls, strlen(c->in_tls), steps[k]);
			CHECK(glob_match(c->want, f.out.data ? f.out.data : "", f.out.len),
			      "%s (step %zu):\n  want: %s\n  got:  %.*s", c->name, steps[k], c->want,
			      (int)f.out.len, f.out.data ? f.out.data : "");
			CHECK(f.n_start_tls == c->starttls, "%s (step %zu): start_tls %u", c->name, steps[k],
			      f.n_start_tls);
			CHECK(f.dropped.len == (c->dropped ? strlen(c->dropped) : 0) &&
			      (!f.dropped.len || memcmp(f.dropped.data, c->dropped, f.dropped.len) == 0),
			      "%s (step %zu): dropped '%.*s'", c->name, steps[k], (int)f.dropped.len,
			      f.dropped.data ? f.dropped.data : "");
			CHECK(!c->absent || !contains(&f.out, c->absent), "%s (step %zu): '%s' in the output",
			      c->name, steps[k], c->absent);
			CHECK(f.closed == c->closed, "%s (step %zu): closed %d", c->name, steps[k], f.closed);
			/* the login deadline from connect: no handshake re-arms it */
			if (f.s->state == IMAP_NOAUTH)
				CHECK(f.timeouts == timeouts, "%s (step %zu): deadline re-armed", c->name, steps[k]);
			fake_free(&f);
			CHECK(imap_login_literals_held() == 0 && imap_literals_held() == 0, "%s: budget not given back",
			      c->name);
		}
	}
}

/* ---- outside the table ---- */

static void test_handshake(const struct imap_config *cfg)
{
	static const char in[] = "a STARTTLS\r\nb NOOP\r\n";
	struct fake f;
	size_t n;

	/* one call: exactly through the STARTTLS line, then nothing */
	fake_open(&f, cfg, TLS_MODE_STARTTLS, false);
	n = imap_session_input(f.s, in, strlen(in));
	CHECK(n == strlen("a STARTTLS\r\n") && f.tls_wanted, "consumed %zu", n);
	CHECK(imap_session_input(f.s, in + n, strlen(in) - n) == 0, "input taken during the handshake");
	CHECK(!imap_session_busy(f.s), "busy during the handshake");
	tls_done(&f);
	CHECK(imap_session_input(f.s, in + n, strlen(in) - n) == strlen(in) - n, "input after the handshake");
	CHECK(strcmp(f.out.data, BEGIN("a") "b OK NOOP completed\r\n") == 0, "out: %s", f.out.data);
	fake_free(&f);

	/* the login deadline passes during the handshake: closed, no clear text */
	fake_open(&f, cfg, TLS_MODE_REQUIRED, false);
	feed(&f, "a STARTTLS\r\n", 12, 0);
	imap_session_timeout(f.s);
	CHECK(f.closed && strcmp(f.out.data, BEGIN("a")) == 0, "timeout in handshake: %s", f.out.data);
	fake_free(&f);

	/* shutdown during the handshake: the BYE comes after it */
	fake_open(&f, cfg, TLS_MODE_STARTTLS, false);
	feed(&f, "a STARTTLS\r\n", 12, 0);
	imap_session_shutdown(f.s);
	CHECK(!f.closed, "closed in the handshake");
	tls_done(&f);
	CHECK(f.closed && strcmp(f.out.data, BEGIN("a") "* BYE Server shutting down\r\n") == 0, "shutdown: %s",
	      f.out.data);
	fake_free(&f);

	/* the login deadline keeps running after the handshake */
	fake_open(&f, cfg, TLS_MODE_STARTTLS, false);
	feed(&f, "a STARTTLS\r\n", 12, 1);
	tls_done(&f);
	CHECK(f.timeouts == 1, "deadline re-armed by the handshake");
	imap_session_timeout(f.s);
	CHECK(f.closed && strcmp(f.out.data, BEGIN("a") "* BYE Login timed out\r\n") == 0, "deadline: %s",
	      f.out.data);
	fake_free(&f);
}

/* ---- set-up ---- */

static void setup(void)
{
	char err[256];
	struct dir *d = NULL;

	snprintf(root, sizeof(root), "/tmp/buzon-starttls-XXXXXX");
	if (!mkdtemp(root) || dir_open(root, &d, err, sizeof(err)) < 0 ||
	    dir_domain_add(d, "example.test", err, sizeof(err)) < 0 ||
	    dir_user_add(d, ALICE, "secret", 0, err, sizeof(err)) < 0 ||
	    dir_user_set_hash(d, ALICE, ALICE_HASH, err, sizeof(err)) < 0) {
		fprintf(stderr, "set-up: %s\n", err);
		exit(2);
	}
	backend.dir = d;
	backend.hostname = "imap.test";
}

int main(void)
{
	struct imap_config cfg;
	char cmd[512];

	log_set_level(LOG_ERROR);
	setup();
	imap_config_defaults(&cfg);
	snprintf(cfg.hostname, sizeof(cfg.hostname), "imap.test");
	run_cases(&cfg);
	test_handshake(&cfg);

	dir_close(&backend.dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		failures++;
	if (failures) {
		printf("%d failures\n", failures);
		return 1;
	}
	printf("imap-starttls: ok (%zu table cases x 2 ways)\n", sizeof(cases) / sizeof(cases[0]));
	return 0;
}
