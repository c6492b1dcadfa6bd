/* Unit tests of lib/throttle.c: the delay curve, decay, forgetting on
 * success, bounded memory and eviction, SipHash test vectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/throttle.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static const unsigned char key0[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

static const struct throttle_params defaults = {
	.free_failures = 2, .base_ms = 1000, .max_ms = 15000, .decay_ms = 60000, .slots = 64,
};

/* The delay after the n-th consecutive failure (no time passing): two
 * failed attempts are free, the third attempt waits 1 s, then doubling. */
static const unsigned curve[] = { 0, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000, 15000 };

static void test_siphash(void)
{
	/* SipHash-2-4 reference vectors (64-bit output, key 00..0f, message 00..n-1) */
	static const unsigned long long want[] = {
		0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
		0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
		0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL,
	};
	unsigned char msg[16];

	for (int i = 0; i < 16; i++)
		msg[i] = (unsigned char)i;
	for (size_t n = 0; n < sizeof(want) / sizeof(want[0]); n++) {
		unsigned long long h = throttle_siphash(key0, msg, n);
		if (h != want[n]) {
			fprintf(stderr, "siphash n=%zu: got %016llx want %016llx\n", n, h, want[n]);
			failures++;
		}
	}
}

static void test_curve(void)
{
	struct throttle *t = throttle_new(&defaults, key0);
	uint64_t now = 1000000;

	CHECK(throttle_delay(t, "ip:192.0.2.1", now) == 0);
	for (size_t i = 0; i < sizeof(curve) / sizeof(curve[0]); i++) {
		unsigned f = throttle_failure(t, "ip:192.0.2.1", now);
		CHECK(f == i + 1);
		if (throttle_delay(t, "ip:192.0.2.1", now) != curve[i]) {
			fprintf(stderr, "after %zu failures: delay %u, want %u\n", i + 1,
				throttle_delay(t, "ip:192.0.2.1", now), curve[i]);
			failures++;
		}
	}
	/* keys are independent */
	CHECK(throttle_delay(t, "ip:192.0.2.2", now) == 0);
	CHECK(throttle_delay(t, "user:alice@example.test", now) == 0);
	throttle_free(&t);
	CHECK(t == NULL);
}

static void test_decay(void)
{
	struct throttle *t = throttle_new(&defaults, key0);
	uint64_t now = 5000;

	for (int i = 0; i < 5; i++)
		throttle_failure(t, "user:bob", now);
	CHECK(throttle_failures(t, "user:bob", now) == 5);
	CHECK(throttle_delay(t, "user:bob", now) == 8000);
	/* one failure forgotten per 60 s of quiet */
	CHECK(throttle_failures(t, "user:bob", now + 59999) == 5);
	CHECK(throttle_failures(t, "user:bob", now + 60000) == 4);
	CHECK(throttle_delay(t, "user:bob", now + 60000) == 4000);
	CHECK(throttle_failures(t, "user:bob", now + 3 * 60000 + 5) == 2);
	CHECK(throttle_delay(t, "user:bob", now + 3 * 60000 + 5) == 1000);
	CHECK(throttle_failures(t, "user:bob", now + 10 * 60000) == 0);
	CHECK(throttle_delay(t, "user:bob", now + 10 * 60000) == 0);
	/* a new failure after partial decay counts from what is left */
	CHECK(throttle_failure(t, "user:bob", now + 2 * 60000 + 30000) == 4);
	/* and the quiet interval starts again at that failure */
	CHECK(throttle_failures(t, "user:bob", now + 3 * 60000 + 29999) == 4);
	CHECK(throttle_failures(t, "user:bob", now + 3 * 60000 + 30000) == 3);
	/* time going backwards (a different origin) does not underflow */
	CHECK(throttle_failures(t, "user:bob", 0) == 4);
	throttle_free(&t);
}

static void test_success(void)
{
	struct throttle *t = throttle_new(&defaults, key0);

	for (int i = 0; i < 4; i++) {
		throttle_failure(t, "user:carol", 100);
		throttle_failure(t, "ip:198.51.100.7", 100);
	}
	CHECK(throttle_delay(t, "user:carol", 100) == 4000);
	throttle_success(t, "user:carol");
	CHECK(throttle_delay(t, "user:carol", 100) == 0);
	CHECK(throttle_failures(t, "user:carol", 100) == 0);
	/* only that key */
	CHECK(throttle_delay(t, "ip:198.51.100.7", 100) == 4000);
	/* forgetting an unknown key is harmless */
	throttle_success(t, "user:nobody");
	throttle_free(&t);
}

static void test_disabled(void)
{
	struct throttle_params p = defaults;
	struct throttle *t;

	p.base_ms = 0;
	t = throttle_new(&p, key0);
	for (int i = 0; i < 50; i++)
		throttle_failure(t, "ip:x", 0);
	CHECK(throttle_delay(t, "ip:x", 0) == 0);
	CHECK(throttle_failures(t, "ip:x", 0) == 50);
	throttle_free(&t);

	/* no decay: never forgotten */
	p = defaults;
	p.decay_ms = 0;
	t = throttle_new(&p, key0);
	for (int i = 0; i < 3; i++)
		throttle_failure(t, "ip:x", 0);
	CHECK(throttle_delay(t, "ip:x", UINT64_MAX / 2) == 2000);
	throttle_free(&t);

	/* free_failures 0: the first failure already delays */
	p = defaults;
	p.free_failures = 0;
	t = throttle_new(&p, key0);
	throttle_failure(t, "ip:x", 0);
	CHECK(throttle_delay(t, "ip:x", 0) == 2000);
	throttle_free(&t);

	/* huge counts do not overflow the shift */
	p = defaults;
	t = throttle_new(&p, key0);
	for (int i = 0; i < 100; i++)
		throttle_failure(t, "ip:y", 0);
	CHECK(throttle_delay(t, "ip:y", 0) == 15000);
	throttle_free(&t);
}

static void test_eviction(void)
{
	struct throttle_params p = defaults;
	struct throttle *t;
	char key[64];
	unsigned present = 0;

	p.slots = 16; /* two sets of eight */
	t = throttle_new(&p, key0);
	/* a key under attack */
	for (int i = 0; i < 6; i++)
		throttle_failure(t, "user:victim", 1000);
	/* a flood of new names, one failure each, cannot evict it: they evict
	 * each other (the fewest failures go first) */
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "user:flood%d", i);
		throttle_failure(t, key, 1000 + (uint64_t)i);
	}
	CHECK(throttle_failures(t, "user:victim", 20000) == 6);
	CHECK(throttle_delay(t, "user:victim", 20000) == 15000);
	/* memory is bounded: at most 16 keys are known */
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "user:flood%d", i);
		if (throttle_failures(t, key, 20000))
			present++;
	}
	CHECK(present <= 15);
	CHECK(present >= 7);   /* the other set is full of flood keys */
	/* once decayed below the flood, the victim's entry may be taken */
	throttle_free(&t);

	/* slots rounded up to a whole set; 0 gives the default */
	p.slots = 1;
	t = throttle_new(&p, key0);
	for (int i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		throttle_failure(t, key, 0);
	}
	for (int i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		CHECK(throttle_failures(t, key, 0) == 1);
	}
	throttle_free(&t);
	p.slots = 0;
	t = throttle_new(&p, key0);
	CHECK(t != NULL);
	throttle_free(&t);
	throttle_free(&t); /* NULL is fine */
}

int main(void)
{
	test_siphash();
	test_curve();
	test_decay();
	test_success();
	test_disabled();
	test_eviction();
	if (failures) {
		fprintf(stderr, "test-throttle: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-throttle: ok\n");
	return 0;
}
