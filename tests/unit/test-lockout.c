/* Unit tests of lib/lockout.c (the failed-login table of every protocol:
 * counting, delay, the queue of one address, the lockout, auth_exempt,
 * eviction, snapshot and restore), lib/cidr.c (IPv4, IPv6, IPv4-mapped)
 * and lib/ratelimit.c (the message rate per address). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cidr.h"
#include "lib/lockout.h"
#include "lib/ratelimit.h"
#include "tests/common/check.h"

static const unsigned char key0[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

static const struct lockout_params defaults = {
	.free_failures = 2, .base_ms = 1000, .max_ms = 15000, .decay_ms = 60000,
	.max_failures = 10, .window_ms = 600000, .lock_ms = 900000, .slots = 64,
};

#define T0 1700000000000ULL

/* One attempt that fails at once; returns its delay. */
static unsigned fail_once(struct lockout *lk, const char *ip, const char *user, uint64_t now)
{
	unsigned d = lockout_attempt(lk, ip, user, now);

	lockout_result(lk, ip, user, LOCKOUT_FAIL, now);
	return d;
}

static void test_cidr(void)
{
	static const struct {
		const char *rule, *ip;
		int match;
	} t[] = {
		{ "192.0.2.0/24", "192.0.2.77", 1 },
		{ "192.0.2.0/24", "192.0.3.1", 0 },
		{ "192.0.2.7", "192.0.2.7", 1 },
		{ "192.0.2.7", "192.0.2.8", 0 },
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "0.0.0.0/0", "::1", 0 },
		{ "127.0.0.2/32", "::ffff:127.0.0.2", 1 },       /* a mapped client is IPv4 */
		{ "::ffff:10.0.0.0/104", "10.1.2.3", 1 },        /* a mapped rule is IPv4 */
		{ "::ffff:10.0.0.0/104", "11.1.2.3", 0 },
		{ "2001:db8::/32", "2001:db8:1::5", 1 },
		{ "2001:db8::/32", "2001:db9::5", 0 },
		{ "::1", "::1", 1 },
		{ "::1/128", "127.0.0.1", 0 },
		{ "2001:db8:ff00::/40", "2001:db8:ff80::1", 1 },
		{ "2001:db8:ff00::/41", "2001:db8:ff80::1", 0 },
		{ "10.0.0.0/8", "not-an-address", 0 },
	};
	static const char *const bad[] = { "", "/24", "192.0.2.0/", "192.0.2.0/33", "::/129", "10.0.0.0/-1",
					   "host.example", "192.0.2.0/24/1", "1.2.3.4/0x1" };
	char err[128], text[64];
	struct cidr c;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CHECK(cidr_parse(t[i].rule, &c, err, sizeof(err)) == 0, "rule %s: %s", t[i].rule, err);
		CHECK(cidr_match_any(&c, 1, t[i].ip) == t[i].match, "%s in %s: want %d", t[i].ip, t[i].rule,
		      t[i].match);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(cidr_parse(bad[i], &c, err, sizeof(err)) < 0, "rule '%s' accepted", bad[i]);
	CHECK(cidr_parse("192.0.2.77/24", &c, err, sizeof(err)) == 0, "host bits");
	cidr_format(&c, text, sizeof(text));
	CHECK(strcmp(text, "192.0.2.0/24") == 0, "host bits cleared: %s", text);
	CHECK(cidr_match_any(NULL, 0, "192.0.2.1") == 0, "empty list");
}

static void test_delay_and_lockout(void)
{
	struct lockout *lk = lockout_new(&defaults, key0);
	/* sequential failures from one address: free, free, 1 s, 2 s, 4 s, 8 s, 15 s ... */
	static const unsigned curve[] = { 0, 0, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000 };
	uint64_t now = T0;

	for (int i = 0; i < 10; i++) {
		/* the check runs once its delay is over */
		unsigned d = lockout_attempt(lk, "192.0.2.1", "alice", now);
		CHECK(d == curve[i], "failure %d: delay %u, want %u", i, d, curve[i]);
		now += d;
		lockout_result(lk, "192.0.2.1", "alice", LOCKOUT_FAIL, now);
	}
	/* the 10th failure within the window locked it out for 15 minutes */
	CHECK(lockout_locked_until(lk, "192.0.2.1", now) == now + 900000, "locked out");
	CHECK(lockout_locked_until(lk, "192.0.2.2", now) == 0, "another address is not");
	CHECK(lockout_locked_until(lk, "192.0.2.1", now + 900000) == 0, "the lockout ends");
	/* the user's failures do not delay a correct password from a clean address */
	CHECK(lockout_attempt(lk, "198.51.100.1", "alice", now) == 0, "clean address, attacked user");
	lockout_result(lk, "198.51.100.1", "alice", LOCKOUT_OK, now);
	/* ... but they do from an address that failed itself */
	fail_once(lk, "198.51.100.2", "bob", now);
	for (int i = 0; i < 5; i++)
		fail_once(lk, "203.0.113.1", "carol", now);
	CHECK(lockout_attempt(lk, "198.51.100.2", "carol", now) == 8000, "failed address, attacked user");
	lockout_result(lk, "198.51.100.2", "carol", LOCKOUT_NONE, now);
	/* decay: one failure forgotten per quiet minute */
	CHECK(lockout_failures(lk, "203.0.113.1", now + 60000) == 4, "decay");
	CHECK(lockout_failures(lk, "203.0.113.1", now + 600000) == 0, "decayed away");
	lockout_free(&lk);
}

static void test_window(void)
{
	struct lockout_params p = defaults;
	struct lockout *lk;
	uint64_t now = T0;

	p.base_ms = 0;  /* no delays: only the lockout */
	p.max_failures = 3;
	p.window_ms = 10000;
	p.lock_ms = 5000;
	lk = lockout_new(&p, key0);
	fail_once(lk, "192.0.2.9", "x", now);
	fail_once(lk, "192.0.2.9", "x", now + 5000);
	/* the window opened at the first failure is over: counting starts again */
	fail_once(lk, "192.0.2.9", "x", now + 10001);
	CHECK(lockout_window_failures(lk, "192.0.2.9", now + 10001) == 1, "new window");
	CHECK(lockout_locked_until(lk, "192.0.2.9", now + 10001) == 0, "not locked");
	fail_once(lk, "192.0.2.9", "x", now + 11000);
	CHECK(lockout_result(lk, "192.0.2.9", "x", LOCKOUT_FAIL, now + 12000) == 1, "third in the window locks");
	CHECK(lockout_locked_until(lk, "192.0.2.9", now + 12000) == now + 17000, "for lock_ms");
	/* a success of a user does not clear its address */
	lockout_result(lk, "192.0.2.9", "x", LOCKOUT_OK, now + 12000);
	CHECK(lockout_locked_until(lk, "192.0.2.9", now + 12000) != 0, "still locked");
	CHECK(lockout_clear(lk, "192.0.2.9") == 1 && lockout_locked_until(lk, "192.0.2.9", now + 12000) == 0,
	      "cleared");
	CHECK(lockout_clear(lk, "192.0.2.9") == 0, "cleared twice");
	lockout_free(&lk);
}

/* Many sessions of one address at once: their checks are queued one after
 * the other, so the address gets only a few guesses a minute. */
static void test_parallel(void)
{
	struct lockout_params p = defaults;
	struct lockout *lk;
	unsigned d[50], in_minute = 0;

	p.max_failures = 0;  /* the delays alone */
	lk = lockout_new(&p, key0);
	for (int i = 0; i < 50; i++)
		d[i] = lockout_attempt(lk, "192.0.2.50", "alice", T0);
	for (int i = 0; i < 50; i++)
		if (d[i] < 60000)
			in_minute++;
	CHECK(in_minute <= 10, "%u checks within the first minute", in_minute);
	CHECK(d[0] == 0 && d[1] == 0, "a couple of connections at once are not delayed (%u %u)", d[0], d[1]);
	for (int i = 1; i < 50; i++)
		CHECK(d[i] >= d[i - 1], "queued in order (%u after %u)", d[i], d[i - 1]);
	for (int i = 0; i < 50; i++)
		lockout_result(lk, "192.0.2.50", "alice", LOCKOUT_NONE, T0);
	lockout_free(&lk);
}

static void test_exempt(void)
{
	struct lockout_params p = defaults;
	struct cidr ex[2];
	char err[64];
	struct lockout *lk;

	cidr_parse("10.0.0.0/8", &ex[0], err, sizeof(err));
	cidr_parse("2001:db8::/32", &ex[1], err, sizeof(err));
	p.exempt = ex;
	p.n_exempt = 2;
	lk = lockout_new(&p, key0);
	for (int i = 0; i < 30; i++) {
		CHECK(fail_once(lk, "10.1.2.3", "alice", T0) == 0, "exempt address delayed");
		CHECK(fail_once(lk, "2001:db8::7", "alice", T0) == 0, "exempt address delayed");
	}
	CHECK(lockout_locked_until(lk, "10.1.2.3", T0) == 0 && lockout_failures(lk, "10.1.2.3", T0) == 0,
	      "exempt address counted");
	CHECK(lockout_exempt(lk, "::ffff:10.9.9.9") == 1, "mapped exempt");
	lockout_free(&lk);
}

static void test_eviction(void)
{
	struct lockout_params p = defaults;
	struct lockout *lk;
	char ip[64];
	unsigned kept = 0;

	p.slots = 16;
	lk = lockout_new(&p, key0);
	for (int i = 0; i < 10; i++)
		fail_once(lk, "192.0.2.200", "v", T0);
	CHECK(lockout_locked_until(lk, "192.0.2.200", T0) != 0, "locked");
	/* a flood of new addresses with one failure each */
	for (int i = 0; i < 2000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 250, i % 250);
		fail_once(lk, ip, "v", T0 + 1 + (uint64_t)i);
	}
	CHECK(lockout_locked_until(lk, "192.0.2.200", T0 + 5000) != 0, "the locked address survives the flood");
	for (int i = 0; i < 2000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 250, i % 250);
		kept += lockout_failures(lk, ip, T0 + 5000) != 0;
	}
	CHECK(kept <= 16, "memory is bounded: %u kept", kept);
	lockout_free(&lk);
}

static void test_snapshot(void)
{
	struct lockout *lk = lockout_new(&defaults, key0), *lk2;
	struct lockout_record *r;
	size_t n;
	uint64_t now = T0;

	for (int i = 0; i < 10; i++)
		fail_once(lk, "2001:db8::1", "a", now);
	fail_once(lk, "192.0.2.3", "a", now);
	fail_once(lk, "192.0.2.3", "a", now);
	lockout_attempt(lk, "192.0.2.4", "a", now);   /* in flight only: not worth keeping */
	n = lockout_snapshot(lk, now, &r);
	CHECK(n == 2, "%zu records", n);
	lk2 = lockout_new(&defaults, key0);
	lockout_restore(lk2, r, n, now + 1000);
	CHECK(lockout_locked_until(lk2, "2001:db8::1", now + 1000) == now + 900000, "lockout restored");
	CHECK(lockout_failures(lk2, "192.0.2.3", now + 1000) == 2, "failures restored");
	CHECK(lockout_window_failures(lk2, "192.0.2.3", now + 1000) == 2, "window restored");
	CHECK(lockout_attempt(lk2, "192.0.2.3", "a", now + 1000) == 1000, "delay restored");
	free(r);
	/* records that are over are not restored */
	n = lockout_snapshot(lk, now + 3600000, &r);
	CHECK(n == 0, "%zu records an hour later", n);
	free(r);
	lockout_free(&lk);
	lockout_free(&lk2);
	lockout_free(&lk2);
}

static void test_ratelimit(void)
{
	struct ratelimit *rl = ratelimit_new(64, key0);
	int ok = 0;

	for (int i = 0; i < 10; i++)
		ok += ratelimit_take(rl, "mx 192.0.2.1", 5, T0);
	CHECK(ok == 5, "%d of 10 at once with 5 a minute", ok);
	CHECK(ratelimit_take(rl, "mx 192.0.2.2", 5, T0) == 1, "another address has its own");
	CHECK(ratelimit_take(rl, "mx 192.0.2.1", 5, T0 + 11000) == 0, "not refilled after 11 s");
	CHECK(ratelimit_take(rl, "mx 192.0.2.1", 5, T0 + 12000) == 1, "one refilled after 12 s");
	ok = 0;
	for (int i = 0; i < 10; i++)
		ok += ratelimit_take(rl, "mx 192.0.2.1", 5, T0 + 600000);
	CHECK(ok == 5, "refilled to its size only: %d", ok);
	CHECK(ratelimit_take(rl, "mx 192.0.2.1", 0, T0) == 1, "0 is no limit");
	ratelimit_free(&rl);
	ratelimit_free(&rl);
}

int main(void)
{
	test_cidr();
	test_delay_and_lockout();
	test_window();
	test_parallel();
	test_exempt();
	test_eviction();
	test_snapshot();
	test_ratelimit();
	if (failures) {
		printf("test-lockout: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-lockout: ok\n");
	return 0;
}
