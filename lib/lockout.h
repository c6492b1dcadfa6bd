#ifndef BUZON_LOCKOUT_H
#define BUZON_LOCKOUT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/cidr.h"

/*
 * The one table of failed authentications, shared by SMTP AUTH, POP3 and
 * IMAP (server/main.c makes it and gives it to every runner and to the
 * net), per client address and per user name.
 *
 * Delay. An attempt waits before its password is checked:
 *   - per address: n = the address's failures (decaying, one forgotten per
 *     decay_ms) + the attempts from it still in flight beyond PARALLEL_FREE;
 *     delay(n) = 0 below free_failures, else min(base_ms << (n - free), max_ms).
 *     A delayed attempt is queued behind the address's previous delayed
 *     one (next_ms): however many sessions an address opens, its delayed
 *     attempts run one at a time, delay(n) apart.
 *   - per user: only when the address has failures of its own; a correct
 *     password from an address without recent failures never waits, even
 *     while the user's name is under attack from elsewhere.
 * Lockout. max_failures failures from an address within window_ms lock it
 * out for lock_ms: lib/net.c refuses it at accept, and lib/runner.c does
 * not check a password of it whose delay ends during the lockout.
 * Addresses in the exempt list are never delayed, counted or locked out.
 *
 * Memory is fixed at creation: two set-associative tables (8 ways) of
 * `slots` entries, one of addresses (kept as text, to be persisted and
 * listed) and one of user names (lib/throttle.c, only hashed, in memory
 * only: they decay within minutes). A new address evicts in its set the
 * entry that is neither locked nor in flight, with the fewest failures,
 * oldest first.
 *
 * Time is wall-clock milliseconds passed in by the caller (the table is
 * persisted across restarts). Loop thread only; lockout_snapshot() copies
 * what a worker writes to buzon.db.
 */

/* Attempts in flight from one address that do not count as failures: a
 * client opening a few connections at once is not delayed. */
#define LOCKOUT_PARALLEL_FREE 1
/* The longest an attempt is ever delayed (a queue behind many sessions). */
#define LOCKOUT_DELAY_CAP_MS 3600000u

struct lockout_params {
	unsigned free_failures;  /* failures without a delay (2) */
	unsigned base_ms;        /* first delay (1000); 0: no delays */
	unsigned max_ms;         /* longest delay (15000) */
	unsigned decay_ms;       /* one failure forgotten per quiet interval (60000) */
	unsigned max_failures;   /* lockout_failures (10); 0: no lockout */
	unsigned window_ms;      /* lockout_window (600000) */
	unsigned lock_ms;        /* lockout_time (900000) */
	size_t slots;            /* entries of each table (4096) */
	const struct cidr *exempt; /* auth_exempt, referenced; must outlive the table */
	size_t n_exempt;
};

/* What is kept of an address across a restart (buzon.db auth_failures). */
struct lockout_record {
	char address[48];
	unsigned failures;           /* the decaying count of the delay */
	uint64_t last_ms;            /* when it was last brought up to date */
	unsigned window_failures;    /* failures in the current lockout window */
	uint64_t window_start_ms;    /* 0: no window open */
	uint64_t locked_until_ms;    /* 0: not locked out */
};

enum lockout_outcome {
	LOCKOUT_OK,     /* the password was right */
	LOCKOUT_FAIL,   /* it was wrong (or the user unknown or disabled) */
	LOCKOUT_NONE,   /* no answer: cancelled, temporary failure */
};

struct lockout;

/* Creates a table; key is the 16-byte hash key (random in the server). */
struct lockout *lockout_new(const struct lockout_params *p, const unsigned char key[16]);
void lockout_free(struct lockout **lk);

/* 1 when ip is in auth_exempt. */
int lockout_exempt(const struct lockout *lk, const char *ip);
/* When ip's lockout ends (wall-clock ms), or 0 when it is not locked out. */
uint64_t lockout_locked_until(const struct lockout *lk, const char *ip, uint64_t now_ms);
/* An attempt for user from ip begins: returns the ms it must wait before
 * its check, and counts it in flight until lockout_result(). */
unsigned lockout_attempt(struct lockout *lk, const char *ip, const char *user, uint64_t now_ms);
/* The attempt ended; returns 1 when this failure locked ip out. */
int lockout_result(struct lockout *lk, const char *ip, const char *user, enum lockout_outcome o,
		   uint64_t now_ms);
/* The failures counted for ip now (after decay), and in its window. */
unsigned lockout_failures(const struct lockout *lk, const char *ip, uint64_t now_ms);
unsigned lockout_window_failures(const struct lockout *lk, const char *ip, uint64_t now_ms);
/* Forgets ip (buzon lockout clear); 1 when it was known. */
int lockout_clear(struct lockout *lk, const char *ip);

/* The addresses worth keeping, as a malloc'd array in *r; returns how many.
 * Those with nothing left (decayed, window over, not locked) are left out. */
size_t lockout_snapshot(const struct lockout *lk, uint64_t now_ms, struct lockout_record **r);
/* Puts records back (at start); those already over are skipped. */
void lockout_restore(struct lockout *lk, const struct lockout_record *r, size_t n, uint64_t now_ms);
/* Grows at every change: the persisting side skips a write when unchanged. */
uint64_t lockout_changes(const struct lockout *lk);

/* Wall-clock milliseconds (CLOCK_REALTIME). */
uint64_t lockout_now_ms(void);

#endif
