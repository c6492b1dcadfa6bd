/*
 * Unit tests of the IMAP session before login (imap/imap-session.c): the
 * small parser limits (IMAP_LOGIN_MAX_LINE, [imap] login_max_literal), the
 * separate literal budget ([imap] login_max_buffered) and the login
 * deadline ([imap] login_timeout), and that all of them are lifted by a
 * login and only by it.
 *
 * The session runs over a real user directory in /tmp (alice with a cheap
 * hash, bob with a long password full of quotes and backslashes). Commands
 * are answered the way imap/imap-server.c answers them: exec only queues,
 * and the harness runs the command once the session has stopped taking
 * input. Every table case is fed one byte at a time and all at once; both
 * must write what the case expects ('*' in want matches any text).
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
#include "tests/common/imap-fake-io.h"
#include "tests/common/imap-test-world.h"

#define ALICE IMAP_TEST_ALICE
#define BOB "bob@example.test"
#define LOGIN_ALICE "L LOGIN " ALICE " secret\r\n"

static struct imap_test_world world;
/* 500 octets: libxcrypt hashes at most 511 */
static char bob_password[501];

/* ---- the fake connection (tests/common/imap-fake-io.c) ---- */

static void fake_open(struct imap_fake *f, const struct imap_config *cfg)
{
	struct imap_session_params p = {
		.cfg = cfg, .backend = &world.backend, .sid = "T1", .client_addr = "192.0.2.1",
	};

	imap_fake_open(f, &p, 0);
}

static void feed_str(struct imap_fake *f, const char *text, size_t step)
{
	imap_fake_feed(f, text, strlen(text), step);
}

static char *repeat(const char *head, char c, size_t n, const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = malloc(hl + n + tl + 1);

	if (!s)
		abort();
	memcpy(s, head, hl);
	memset(s + hl, c, n);
	memcpy(s + hl + n, tail, tl + 1);
	return s;
}

/* ---- the table ---- */

struct tcase {
	const char *name;
	bool login;              /* LOGIN_ALICE first */
	char *in;                /* built by make_cases() */
	const char *want;
	bool closed;
	uint64_t login_held;     /* octets in the login budget at the end */
	uint64_t held;           /* ... in max_buffered */
};

static struct tcase cases[48];
static size_t n_cases;

static void add(const char *name, bool login, char *in, const char *want, bool closed, uint64_t login_held,
		uint64_t held)
{
	if (n_cases == sizeof(cases) / sizeof(cases[0]))
		abort();
	cases[n_cases++] = (struct tcase){ name, login, in, want, closed, login_held, held };
}

static char *sdup(const char *s)
{
	return repeat(s, 'x', 0, "");
}

static void make_cases(void)
{
	static char quoted[4096], *q;

	/* literals: refused before their data, from the first over the limit */
	add("sync literal at the login limit", false, sdup("a LOGIN {4096}\r\n"), "+ OK\r\n", false, 4096, 0);
	add("sync literal over the login limit", false, sdup("a LOGIN {4097}\r\n"),
	    "a BAD [TOOBIG] literal too big before login\r\n", false, 0, 0);
	add("the attack: a 50 MiB literal before login", false, sdup("a LOGIN {52428800}\r\n"),
	    "a BAD [TOOBIG] literal too big before login\r\n", false, 0, 0);
	add("APPEND before login: the login limit first", false, sdup("a APPEND INBOX {5000}\r\n"),
	    "a BAD [TOOBIG] literal too big before login\r\n", false, 0, 0);
	add("non-synchronizing literal over the login limit", false, sdup("a LOGIN {4097+}\r\nxyz"),
	    "* BYE non-synchronizing literal too big\r\n", true, 0, 0);
	add("the literals of one command add up", false, repeat("a LOGIN {3000}\r\n", 'u', 3000, " {1097}\r\n"),
	    "+ OK\r\na BAD [TOOBIG] literal too big before login\r\n", false, 0, 0);
	add("the session goes on after a refused literal", false, sdup("a LOGIN {9999}\r\nb NOOP\r\n"),
	    "a BAD [TOOBIG] literal too big before login\r\nb OK NOOP completed\r\n", false, 0, 0);
	/* the command line */
	add("a line at the login limit", false, repeat("a NOOP ", 'x', 8192 - 9, "\r\n"),
	    "a BAD NOOP takes no arguments\r\n", false, 0, 0);
	add("a line over the login limit", false, repeat("a NOOP ", 'x', 8192, "\r\n"),
	    "a BAD command line too long\r\n", false, 0, 0);
	add("SASL-IR over the login line limit", false, repeat("a AUTHENTICATE PLAIN ", 'A', 8192, "\r\n"),
	    "a BAD command line too long\r\n", false, 0, 0);
	add("AUTHENTICATE response line over the login limit", false,
	    repeat("a AUTHENTICATE PLAIN\r\n", 'A', 8200, "\r\nb NOOP\r\n"),
	    "+ \r\na BAD line too long\r\nb OK NOOP completed\r\n", false, 0, 0);
	/* arguments: each costs far more than its text */
	add("too many arguments before login", false, repeat("a NOOP", ' ', 0, ""), "a BAD too many arguments\r\n", false,
	    0, 0);
	{
		struct buf b = BUF_INIT(0);

		buf_adds(&b, "a NOOP");
		for (int i = 0; i < 150; i++)
			buf_adds(&b, " x");
		buf_adds(&b, "\r\n");
		free(cases[n_cases - 1].in);
		cases[n_cases - 1].in = buf_detach(&b, NULL);
	}
	add("after login: the same arguments", true, sdup(cases[n_cases - 1].in), "a BAD NOOP takes no arguments\r\n",
	    false, 0, 0);
	add("ID with 30 pairs before login", false, NULL, "* ID (*)\r\na OK ID completed\r\n", false, 0, 0);
	{
		struct buf b = BUF_INIT(0);

		buf_adds(&b, "a ID (");
		for (int i = 0; i < 30; i++)
			buf_printf(&b, "%s\"k%d\" \"value %d\"", i ? " " : "", i, i);
		buf_adds(&b, ")\r\n");
		cases[n_cases - 1].in = buf_detach(&b, NULL);
	}
	/* logins that must still work */
	add("LOGIN with literals", false, sdup("a LOGIN {18}\r\n" ALICE " {6}\r\nsecret\r\n"),
	    "+ OK\r\n+ OK\r\na OK [CAPABILITY *] Logged in\r\n", false, 0, 0);
	add("LOGIN with a long password as a literal", false, NULL, "+ OK\r\n+ OK\r\na OK [CAPABILITY *] Logged in\r\n",
	    false, 0, 0);
	cases[n_cases - 1].in = malloc(sizeof(bob_password) + 64);
	snprintf(cases[n_cases - 1].in, sizeof(bob_password) + 64, "a LOGIN {16}\r\n" BOB " {500}\r\n%s\r\n",
		 bob_password);
	q = quoted;
	for (const char *p = bob_password; *p; p++) {
		if (*p == '"' || *p == '\\')
			*q++ = '\\';
		*q++ = *p;
	}
	*q = '\0';
	add("LOGIN with a long password quoted", false, NULL, "a OK [CAPABILITY *] Logged in\r\n", false, 0, 0);
	cases[n_cases - 1].in = malloc(sizeof(quoted) + 64);
	snprintf(cases[n_cases - 1].in, sizeof(quoted) + 64, "a LOGIN " BOB " \"%s\"\r\n", quoted);
	/* the longest password SASL takes (1024), every octet escaped, and the
	 * longest user name: the line is read whole (the password is wrong) */
	add("the longest LOGIN line", false, NULL, "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n", false, 0, 0);
	cases[n_cases - 1].in = repeat("", '"', 0, "");
	{
		struct buf b = BUF_INIT(0);

		buf_adds(&b, "a LOGIN \"");
		for (int i = 0; i < 307; i++)   /* 320 octets in all */
			buf_addch(&b, 'u');
		buf_adds(&b, "@example.test\" \"");
		for (int i = 0; i < 1024; i++)
			buf_adds(&b, "\\\"");
		buf_adds(&b, "\"\r\n");
		free(cases[n_cases - 1].in);
		cases[n_cases - 1].in = buf_detach(&b, NULL);
	}
	add("AUTHENTICATE PLAIN with SASL-IR", false,
	    sdup("a AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"),
	    "a OK [CAPABILITY *] Logged in\r\n", false, 0, 0);
	add("AUTHENTICATE PLAIN with a response line", false,
	    sdup("a AUTHENTICATE PLAIN\r\nAGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"),
	    "+ \r\na OK [CAPABILITY *] Logged in\r\n", false, 0, 0);
	/* lifted by the login, for a command pipelined behind it too */
	add("after login: the same literal is taken", true, sdup("b NOOP {5000}\r\n"), "+ OK\r\n", false, 0, 5000);
	add("pipelined behind LOGIN: the full limits", false, sdup(LOGIN_ALICE "b NOOP {5000}\r\n"),
	    "L OK [CAPABILITY *] Logged in\r\n+ OK\r\n", false, 0, 5000);
	add("pipelined behind AUTHENTICATE: the full limits", false,
	    sdup("a AUTHENTICATE PLAIN\r\nAGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\nb NOOP {5000}\r\n"),
	    "+ \r\na OK [CAPABILITY *] Logged in\r\n+ OK\r\n", false, 0, 5000);
	add("after login: a line over the login limit", true, repeat("b NOOP ", 'x', 9000, "\r\n"),
	    "b BAD NOOP takes no arguments\r\n", false, 0, 0);
	add("after login: the logged-in literal limit stays", true, sdup("b APPEND INBOX {52428801}\r\n"),
	    "b NO [TOOBIG] literal too big\r\n", false, 0, 0);
	add("a failed LOGIN does not lift the limits", false,
	    sdup("a LOGIN " ALICE " wrong\r\nb LOGIN {5000}\r\n"),
	    "a NO [AUTHENTICATIONFAILED] Authentication failed\r\nb BAD [TOOBIG] literal too big before login\r\n",
	    false, 0, 0);
}

static void run_cases(const struct imap_config *cfg)
{
	static const size_t steps[] = { 1, 0 };

	for (size_t i = 0; i < n_cases; i++) {
		const struct tcase *c = &cases[i];

		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			struct imap_fake f;

			fake_open(&f, cfg);
			if (c->login) {
				feed_str(&f, LOGIN_ALICE, steps[k]);
				CHECK(imap_fake_match("L OK [CAPABILITY *] Logged in\r\n", f.out.data, f.out.len),
				      "%s: login: %s", c->name, f.out.data);
				buf_reset(&f.out);
			}
			feed_str(&f, c->in, steps[k]);
			CHECK(imap_fake_match(c->want, f.out.data ? f.out.data : "", f.out.len),
			      "%s (step %zu):\n  want: %s\n  got:  %.*s", c->name, steps[k], c->want,
			      (int)f.out.len, f.out.data ? f.out.data : "");
			CHECK(f.closed == c->closed, "%s (step %zu): closed %d", c->name, steps[k], f.closed);
			CHECK(imap_login_literals_held() == c->login_held && imap_literals_held() == c->held,
			      "%s (step %zu): held %llu (login) %llu, want %llu %llu", c->name, steps[k],
			      (unsigned long long)imap_login_literals_held(), (unsigned long long)imap_literals_held(),
			      (unsigned long long)c->login_held, (unsigned long long)c->held);
			imap_fake_free(&f);
			CHECK(imap_login_literals_held() == 0 && imap_literals_held() == 0, "%s: budget not given back",
			      c->name);
		}
	}
}

/* ---- the budgets ---- */

static void test_budgets(const struct imap_config *defaults)
{
	struct imap_config cfg = *defaults;
	struct imap_fake a, b, u;

	/* two sessions before login fill a small login budget; a logged-in
	 * user's literal still goes through, drawing on max_buffered */
	cfg.login_max_buffered = 5000;
	cfg.max_buffered = 4 * 1024 * 1024;
	fake_open(&a, &cfg);
	fake_open(&b, &cfg);
	fake_open(&u, &cfg);
	feed_str(&a, "a LOGIN {3000}\r\n", 1);
	CHECK(strcmp(a.out.data, "+ OK\r\n") == 0, "first login literal: %s", a.out.data);
	feed_str(&b, "b LOGIN {3000}\r\n", 1);
	CHECK(imap_fake_match("b NO [UNAVAILABLE] *\r\n", b.out.data, b.out.len), "second: %s", b.out.data);
	CHECK(!b.closed, "a refused login literal closes nothing");
	feed_str(&u, LOGIN_ALICE "c NOOP {4000}\r\n", 1);
	CHECK(imap_fake_match("L OK [CAPABILITY *] Logged in\r\n+ OK\r\n", u.out.data, u.out.len), "user: %s",
	      u.out.data);
	CHECK(imap_login_literals_held() == 3000 && imap_literals_held() == 4000, "held %llu %llu",
	      (unsigned long long)imap_login_literals_held(), (unsigned long long)imap_literals_held());
	/* the budget comes back when the command ends (here with a BAD) */
	{
		char *rest = repeat("", 'x', 3000, "\r\n");

		feed_str(&a, rest, 1);
		free(rest);
	}
	CHECK(imap_fake_match("+ OK\r\na BAD *\r\n", a.out.data, a.out.len), "first ends: %s", a.out.data);
	buf_reset(&b.out);
	feed_str(&b, "b LOGIN {3000}\r\n", 1);
	CHECK(strcmp(b.out.data, "+ OK\r\n") == 0, "after the first gave it back: %s", b.out.data);
	imap_fake_free(&a);
	imap_fake_free(&b);
	imap_fake_free(&u);
	CHECK(imap_login_literals_held() == 0 && imap_literals_held() == 0, "budgets given back");
}

/* ---- the deadline ---- */

static void test_deadline(const struct imap_config *defaults)
{
	struct imap_config cfg = *defaults;
	struct imap_fake f;

	cfg.login_timeout = 60;
	cfg.idle_timeout = 1800;

	/* armed once at connect; input, commands and a failed LOGIN leave it */
	fake_open(&f, &cfg);
	CHECK(f.timeouts == 1 && f.timeout == 60, "armed at connect: %u calls, %u s", f.timeouts, f.timeout);
	feed_str(&f, "a NOOP\r\nb LOGIN " ALICE " wrong\r\nc CAPABILITY\r\nd LOG", 1);
	CHECK(f.timeouts == 1, "re-armed before login (%u calls, last %u)", f.timeouts, f.timeout);
	imap_session_timeout(f.s);
	CHECK(f.closed && imap_fake_match("*\r\n* BYE Login timed out\r\n", f.out.data, f.out.len), "deadline: %s",
	      f.out.data);
	imap_fake_free(&f);

	/* it passes while a failed LOGIN is checked: BYE after its NO */
	fake_open(&f, &cfg);
	feed_str(&f, "a LOGIN " ALICE " wrong\r\n", 0);
	imap_fake_settle(&f);
	buf_reset(&f.out);
	imap_session_input(f.s, "b LOGIN " ALICE " wrong\r\n", strlen("b LOGIN " ALICE " wrong\r\n"));
	CHECK(f.queued != NULL, "the LOGIN waits to run");
	imap_session_timeout(f.s);
	CHECK(!f.closed, "closed while its LOGIN runs");
	imap_fake_settle(&f);
	CHECK(f.closed && strcmp(f.out.data, "b NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
					      "* BYE Login timed out\r\n") == 0,
	      "after the failed LOGIN: %s", f.out.data);
	imap_fake_free(&f);

	/* ... a LOGIN that succeeds then is a login: the idle timer takes over */
	fake_open(&f, &cfg);
	imap_session_input(f.s, LOGIN_ALICE, strlen(LOGIN_ALICE));
	CHECK(f.queued != NULL, "the LOGIN waits to run");
	imap_session_timeout(f.s);
	imap_fake_settle(&f);
	CHECK(!f.closed && f.timeout == 1800, "logged in at the deadline: closed %d, timeout %u", f.closed,
	      f.timeout);
	imap_session_timeout(f.s);
	CHECK(f.closed && imap_fake_match("*\r\n* BYE Autologout; idle for too long\r\n", f.out.data, f.out.len),
	      "idle timeout after login: %s", f.out.data);
	imap_fake_free(&f);

	/* never later than the idle timeout would have closed a silent client */
	cfg.idle_timeout = 20;
	fake_open(&f, &cfg);
	CHECK(f.timeouts == 1 && f.timeout == 20, "the shorter of the two: %u", f.timeout);
	imap_fake_free(&f);
}

/* ---- set-up ---- */

static void setup(void)
{
	char err[256];

	/* printable, with the characters a quoted string must escape */
	for (size_t i = 0; i < sizeof(bob_password) - 1; i++)
		bob_password[i] = "ab\"c\\d e"[i % 8];
	bob_password[sizeof(bob_password) - 1] = '\0';
	imap_test_world_make(&world, "/tmp/buzon-prelogin-XXXXXX");
	if (imap_fake_sasl_init(world.backend.dir) < 0) {
		fprintf(stderr, "set-up: GNU SASL\n");
		exit(2);
	}
	if (dir_user_add(world.backend.dir, BOB, bob_password, 0, err, sizeof(err)) < 0) {
		fprintf(stderr, "set-up: %s\n", err);
		exit(2);
	}
}

int main(void)
{
	struct imap_config *cfg = &world.cfg;

	log_set_level(LOG_ERROR);
	setup();
	CHECK(cfg->login_max_literal == 4096 && cfg->login_max_buffered == 4 * 1024 * 1024 && cfg->login_timeout == 60,
	      "defaults");
	make_cases();
	run_cases(cfg);
	test_budgets(cfg);
	test_deadline(cfg);

	for (size_t i = 0; i < n_cases; i++)
		free(cases[i].in);
	imap_fake_sasl_free();
	if (imap_test_world_remove(&world) < 0)
		failures++;
	failures += imap_fake_failures();
	if (failures)
		printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
