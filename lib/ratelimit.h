#ifndef BUZON_RATELIMIT_H
#define BUZON_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/*
 * A token bucket per key (a client address on one listener): `limit`
 * tokens a minute, refilled continuously, at most `limit` saved up, one
 * taken per event. A client over the rate recovers by itself as the bucket
 * refills.
 *
 * Memory is fixed at creation: a set-associative table (8 ways) of keyed
 * hashes (lib/throttle.c's SipHash with a random key). A new key evicts,
 * within its set, the fullest bucket (the one that would be full again
 * soonest), so a flood of new addresses evicts each other before it evicts
 * one that is being held back. Loop thread only; time is passed in.
 */

struct ratelimit;

struct ratelimit *ratelimit_new(size_t slots, const unsigned char key[16]);
void ratelimit_free(struct ratelimit **rl);
/* Takes one token for key, whose bucket holds limit a minute: 1 when there
 * was one, 0 when key is over its rate. limit 0: always 1. */
int ratelimit_take(struct ratelimit *rl, const char *key, unsigned limit, uint64_t now_ms);

#endif
