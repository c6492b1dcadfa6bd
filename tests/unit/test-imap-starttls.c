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
#include "tests/common/check.h"
#include "tests/common/imap-fake-io.h"
#include "tests/common/imap-test-world.h"

#define ALICE IMAP_TEST_ALICE
/* base64 of "\0alice@example.test\0secret" */
#define PLAIN_ALICE "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="

static struct imap_test_world world;
static const struct tls_info test_tls = { .version = "TLS1.3", .cipher = "TLS_AES_256_GCM_SHA384" };

/* ---- the fake connection (tests/common/imap-fake-io.c) ---- */

static void fake_open(struct imap_fake *f, const struct imap_config *cfg, enum tls_mode mode, bool tls)
{
	struct imap_session_params p = {
		.cfg = cfg, .backend = &world.backend, .sid = "T1", .client_addr = "192.0.2.1",
		.tls_mode = mode, .tls = tls ? &test_tls : NULL,
	};

	imap_fake_open(f, &p, 0);
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

#define MECHS "AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-1 AUTH=PLAIN AUTH=LOGIN"
#define CAPS_STARTTLS "* OK [CAPABILITY IMAP4rev1 * APPENDLIMIT=* STARTTLS " MECHS "] imap.test IMAP4rev1 buzon ready\r\n"
#define CAPS_REQUIRED "* OK [CAPABILITY IMAP4rev1 * APPENDLIMIT=* STARTTLS LOGINDISABLED] imap.test IMAP4rev1 buzon ready\r\n"
#define CAPS_PLAIN "* OK [CAPABILITY IMAP4rev1 * APPENDLIMIT=* " MECHS "] imap.test IMAP4rev1 buzon ready\r\n"
#define BEGIN(tag) tag " OK Begin TLS negotiation now\r\n"
#define PRIVACY(tag) tag " NO [PRIVACYREQUIRED] Must issue a STARTTLS command first\r\n"
#define CAP_PLAIN(tag) "* CAPABILITY IMAP4rev1 * APPENDLIMIT=* " MECHS "\r\n" tag " OK Capability completed\r\n"
#define LOGGED_IN(tag) tag " OK [CAPABILITY *] Logged in\r\n"

static const struct tcase cases[] = {
	{ .name = "STARTTLS offered, then not any more", .mode = TLS_MODE_STARTTLS, .greeting = CAPS_STARTTLS,
	  .in = "a CAPABILITY\r\nb STARTTLS\r\n",
	  .in_tls = "c CAPABILITY\r\nd STARTTLS\r\ne LOGIN " ALICE " secret\r\nf CAPABILITY\r\ng STARTTLS\r\n",
	  .want = "* CAPABILITY IMAP4rev1 * STARTTLS " MECHS "\r\na OK Capability completed\r\n" BEGIN("b")
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
			struct imap_fake f;
			unsigned timeouts;

			fake_open(&f, cfg, c->mode, c->tls);
			CHECK(imap_fake_match(c->greeting, f.greeting.data, f.greeting.len), "%s: greeting %.*s", c->name,
			      (int)f.greeting.len, f.greeting.data);
			timeouts = f.timeouts;
			imap_fake_feed(&f, c->in, strlen(c->in), steps[k]);
			if (f.tls_wanted)
				imap_fake_tls_done(&f, &test_tls);
			if (c->in_tls)
				imap_fake_feed(&f, c->in_tls, strlen(c->in_tls), steps[k]);
			CHECK(imap_fake_match(c->want, f.out.data ? f.out.data : "", f.out.len),
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
			imap_fake_free(&f);
			CHECK(imap_login_literals_held() == 0 && imap_literals_held() == 0, "%s: budget not given back",
			      c->name);
		}
	}
}

/* ---- outside the table ---- */

static void test_handshake(const struct imap_config *cfg)
{
	static const char in[] = "a STARTTLS\r\nb NOOP\r\n";
	struct imap_fake f;
	size_t n;

	/* one call: exactly through the STARTTLS line, then nothing */
	fake_open(&f, cfg, TLS_MODE_STARTTLS, false);
	n = imap_session_input(f.s, in, strlen(in));
	CHECK(n == strlen("a STARTTLS\r\n") && f.tls_wanted, "consumed %zu", n);
	CHECK(imap_session_input(f.s, in + n, strlen(in) - n) == 0, "input taken during the handshake");
	CHECK(!imap_session_busy(f.s), "busy during the handshake");
	imap_fake_tls_done(&f, &test_tls);
	CHECK(imap_session_input(f.s, in + n, strlen(in) - n) == strlen(in) - n, "input after the handshake");
	CHECK(strcmp(f.out.data, BEGIN("a") "b OK NOOP completed\r\n") == 0, "out: %s", f.out.data);
	imap_fake_free(&f);

	/* the login deadline passes during the handshake: closed, no clear text */
	fake_open(&f, cfg, TLS_MODE_REQUIRED, false);
	imap_fake_feed(&f, "a STARTTLS\r\n", 12, 0);
	imap_session_timeout(f.s);
	CHECK(f.closed && strcmp(f.out.data, BEGIN("a")) == 0, "timeout in handshake: %s", f.out.data);
	imap_fake_free(&f);

	/* shutdown during the handshake: the BYE comes after it */
	fake_open(&f, cfg, TLS_MODE_STARTTLS, false);
	imap_fake_feed(&f, "a STARTTLS\r\n", 12, 0);
	imap_session_shutdown(f.s);
	CHECK(!f.closed, "closed in the handshake");
	imap_fake_tls_done(&f, &test_tls);
	CHECK(f.closed && strcmp(f.out.data, BEGIN("a") "* BYE Server shutting down\r\n") == 0, "shutdown: %s",
	      f.out.data);
	imap_fake_free(&f);

	/* the login deadline keeps running after the handshake */
	fake_open(&f, cfg, TLS_MODE_STARTTLS, false);
	imap_fake_feed(&f, "a STARTTLS\r\n", 12, 1);
	imap_fake_tls_done(&f, &test_tls);
	CHECK(f.timeouts == 1, "deadline re-armed by the handshake");
	imap_session_timeout(f.s);
	CHECK(f.closed && strcmp(f.out.data, BEGIN("a") "* BYE Login timed out\r\n") == 0, "deadline: %s",
	      f.out.data);
	imap_fake_free(&f);
}

/* ---- AUTHENTICATE through GNU SASL (the fake answers auth_step) ---- */

/* base64 of "n,,n=alice@example.test,r=fyko+d2lbbFgONRv9qkxdawL" */
#define SCRAM_FIRST "biwsbj1hbGljZUBleGFtcGxlLnRlc3Qscj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0w="

struct sasl_case {
	const char *name;
	int plaintext;
	const char *in;
	const char *want;
	const char *absent;
	bool closed;
	unsigned ends;           /* auth_end calls at least */
};

static const struct sasl_case sasl_cases[] = {
	{ "plaintext not allowed: LOGINDISABLED, SCRAM still offered", 0,
	  "a CAPABILITY\r\nb LOGIN " ALICE " secret\r\nc AUTHENTICATE PLAIN " PLAIN_ALICE "\r\n"
	  "d AUTHENTICATE login\r\ne LOGIN {18}\r\nf NOOP\r\n",
	  "* CAPABILITY IMAP4rev1 * APPENDLIMIT=* AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-1 LOGINDISABLED\r\n"
	  "a OK Capability completed\r\n"
	  "b NO [PRIVACYREQUIRED] *\r\nc NO [PRIVACYREQUIRED] *\r\nd NO [PRIVACYREQUIRED] *\r\n"
	  "e NO [PRIVACYREQUIRED] *\r\nf OK NOOP completed\r\n", "AUTH=PLAIN", false, 0 },
	{ "SCRAM in clear: a challenge, then cancelled", 0,
	  "a AUTHENTICATE SCRAM-SHA-256\r\n*\r\nb AUTHENTICATE scram-sha-256 " SCRAM_FIRST "\r\n*\r\nc NOOP\r\n",
	  "+ \r\na BAD Authentication cancelled\r\n+ cj1meWtvK2QybGJiRmdPTlJ2OXFreGRh*\r\n"
	  "b BAD Authentication cancelled\r\nc OK NOOP completed\r\n", NULL, false, 2 },
	{ "SCRAM: a malformed final message is BAD", 1,
	  "a AUTHENTICATE SCRAM-SHA-256 " SCRAM_FIRST "\r\n"
	  "Zm9v\r\nb NOOP\r\n",
	  "+ cj1meWtvK2QybGJiRmdPTlJ2OXFreGRh*\r\na BAD Invalid SASL response\r\nb OK NOOP completed\r\n",
	  NULL, false, 1 },
	{ "PLAIN through GNU SASL: wrong password, bad base64, unknown mechanism, then right", 1,
	  "a AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\nb AUTHENTICATE PLAIN !!!\r\n"
	  "c AUTHENTICATE PLAIN\r\nnot base64\r\nd AUTHENTICATE CRAM-MD5\r\ne AUTHENTICATE PLAIN =\r\n*\r\n"
	  "f AUTHENTICATE PLAIN\r\n" PLAIN_ALICE "\r\ng CAPABILITY\r\n",
	  "a NO [AUTHENTICATIONFAILED] Authentication failed\r\nb BAD Invalid base64 *\r\n"
	  "+ \r\nc BAD Invalid base64 *\r\nd NO Unsupported authentication mechanism\r\n"
	  "+ \r\ne BAD Authentication cancelled\r\n"
	  "+ \r\nf OK [CAPABILITY IMAP4rev1 *] Logged in\r\n* CAPABILITY IMAP4rev1 *\r\ng OK Capability completed\r\n",
	  NULL, false, 3 },
	{ "too many failed AUTHENTICATEs close", 1,
	  "a AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\n"
	  "b AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\n"
	  "c AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\nd NOOP\r\n",
	  "a NO [AUTHENTICATIONFAILED] *\r\nb NO [AUTHENTICATIONFAILED] *\r\n"
	  "c NO [AUTHENTICATIONFAILED] *\r\n* BYE Too many failed logins\r\n", NULL, true, 3 },
};

static void test_sasl(const struct imap_config *defaults)
{
	static const size_t steps[] = { 1, 0 };
	struct imap_config cfg = *defaults;

	cfg.max_auth_failures = 3;
	for (size_t i = 0; i < sizeof(sasl_cases) / sizeof(sasl_cases[0]); i++) {
		const struct sasl_case *c = &sasl_cases[i];

		for (size_t k = 0; k < 4; k++) {
			struct imap_session_params p = {
				.cfg = &cfg, .backend = &world.backend, .sid = "T1", .client_addr = "192.0.2.1",
			};
			struct imap_fake f;

			imap_fake_open(&f, &p, k >= 2 ? IMAP_FAKE_RUN_NOW : 0);
			f.plaintext = c->plaintext;
			imap_fake_feed(&f, c->in, strlen(c->in), steps[k % 2]);
			CHECK(imap_fake_match(c->want, f.out.data ? f.out.data : "", f.out.len),
			      "%s (way %zu):\n  want: %s\n  got:  %.*s", c->name, k, c->want, (int)f.out.len,
			      f.out.data ? f.out.data : "");
			CHECK(!c->absent || !contains(&f.out, c->absent), "%s (way %zu): '%s' in the output", c->name, k,
			      c->absent);
			CHECK(f.closed == c->closed, "%s (way %zu): closed %d", c->name, k, f.closed);
			CHECK(f.n_auth_ends >= c->ends, "%s (way %zu): auth_end %u", c->name, k, f.n_auth_ends);
			CHECK(!f.sx, "%s (way %zu): exchange left", c->name, k);
			imap_fake_free(&f);
		}
	}
}

/* ---- set-up ---- */

static void setup(void)
{
	imap_test_world_make(&world, "/tmp/buzon-starttls-XXXXXX");
	if (imap_fake_sasl_init(world.backend.dir) < 0) {
		fprintf(stderr, "set-up: GNU SASL\n");
		exit(2);
	}
}

int main(void)
{
	struct imap_config *cfg = &world.cfg;

	log_set_level(LOG_ERROR);
	setup();
	run_cases(cfg);
	test_handshake(cfg);
	test_sasl(cfg);

	imap_fake_sasl_free();
	if (imap_test_world_remove(&world) < 0)
		failures++;
	failures += imap_fake_failures();
	if (failures) {
		printf("%d failures\n", failures);
		return 1;
	}
	printf("imap-starttls: ok (%zu table cases x 2 ways, %zu SASL cases x 4 ways)\n",
	       sizeof(cases) / sizeof(cases[0]), sizeof(sasl_cases) / sizeof(sasl_cases[0]));
	return 0;
}
