#ifndef BUZON_THROTTLE_H
#define BUZON_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Failed-login slow-down: a counter of recent failures per key (the caller
 * uses one key per client address and one per user name, with a prefix that
 * keeps the two apart), and the delay that a new attempt for that key must
 * wait before its password is checked.
 *
 *   delay(f) = 0                                  when f < free_failures
 *            = min(base_ms << (f - free_failures), max_ms) otherwise
 *
 * f decays: one failure is forgotten for every decay_ms without a new one.
 *
 * Memory is fixed at creation: a set-associative table (8 entries per set)
 * of 64-bit keyed hashes (SipHash-2-4 with a random key, so that a client
 * cannot aim its keys at one set). A new key evicts, within its set, the
 * entry with the fewest failures left after decay (oldest first), so a flood
 * of new names evicts itself before it evicts a key under attack.
 *
 * Not thread-safe: the server uses it from the loop thread only. Time is
 * passed in (milliseconds, any monotonic origin) so tests control it.
 */

struct throttle_params {
	unsigned free_failures;  /* failures without a delay (2) */
	unsigned base_ms;        /* first delay (1000); 0 disables every delay */
	unsigned max_ms;         /* cap (15000) */
	unsigned decay_ms;       /* one failure forgotten per quiet interval (60000); 0: never */
	size_t slots;            /* table size, rounded up to a multiple of 8 (4096) */
};

struct throttle;

/* Creates a table; key is the 16-byte hash key (random in the server, fixed
 * in tests). */
/* The delay after failures failures under p: none for the first
 * free_failures, then base_ms doubled per further failure, at most max_ms
 * (0 with base_ms 0). Also the curve of lib/lockout.c. */
unsigned throttle_backoff(const struct throttle_params *p, unsigned failures);
struct throttle *throttle_new(const struct throttle_params *p, const unsigned char key[16]);
void throttle_free(struct throttle **t);

/* The delay in ms that an attempt for key must wait now. */
unsigned throttle_delay(const struct throttle *t, const char *key, uint64_t now_ms);
/* Records a failure for key; returns its failure count after decay. */
unsigned throttle_failure(struct throttle *t, const char *key, uint64_t now_ms);
/* Forgets key (a successful login of that user). */
void throttle_success(struct throttle *t, const char *key);
/* The failures counted for key now (after decay); 0 when unknown. */
unsigned throttle_failures(const struct throttle *t, const char *key, uint64_t now_ms);

/* SipHash-2-4 of n octets with a 16-byte key (exposed for the tests). */
uint64_t throttle_siphash(const unsigned char key[16], const void *data, size_t n);

#endif
