#ifndef BUZON_IMAP_SEQSET_H
#define BUZON_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/*
 * Sets of message sequence numbers or UIDs (RFC 3501 section 9
 * sequence-set, RFC 4315 uid-set, RFC 5182 "$"), held as sorted, merged,
 * non-adjacent ranges: "5,1:3,4" is held as the one range 1:5.
 *
 * "*" is the largest number in use, which the caller passes as star: the
 * number of messages for sequence numbers; for UIDs the UID of the last
 * message, or UIDNEXT when the mailbox is empty (RFC 3501 section 9,
 * seq-number). A range is the same whichever end is written first, so with
 * star 3 "5:*" is the range 3:5 and matches UID 3 (RFC 3501 6.4.8).
 */

struct imap_seq_range {
	uint32_t lo, hi;        /* lo <= hi, both >= 1 */
};

struct imap_seqset {
	struct imap_seq_range *r;
	size_t count, cap;
};

#define IMAP_SEQSET_INIT { NULL, 0, 0 }

enum imap_seqset_flags {
	/* Accept "$" (RFC 5182 SEARCHRES) as the whole set. */
	IMAP_SEQSET_ALLOW_SAVED = 1 << 0,
};

/* imap_seqset_parse() returns this for "$": the caller uses the saved result. */
#define IMAP_SEQSET_SAVED 1

/* Sets an empty set. */
void imap_seqset_init(struct imap_seqset *set);

/* Frees the memory and leaves an empty set. */
void imap_seqset_release(struct imap_seqset *set);

/* Empties the set but keeps its memory. */
void imap_seqset_clear(struct imap_seqset *set);

/*
 * Replaces the contents of set with the sequence-set s[0..len), "*" being
 * star. Returns 0; IMAP_SEQSET_SAVED for "$" with IMAP_SEQSET_ALLOW_SAVED
 * (the set is left empty); -EINVAL for bad syntax (a 0, a leading zero, a
 * number over 4294967295, an empty element); -ERANGE when "*" is used and
 * star is 0 (an empty mailbox, for sequence numbers). On error the set is
 * empty.
 */
int imap_seqset_parse(struct imap_seqset *set, const char *s, size_t len, uint32_t star, unsigned flags);

/* Adds the range lo:hi (in either order; 0 is not a valid number and is
 * ignored). Appending in increasing order costs O(1). */
void imap_seqset_add_range(struct imap_seqset *set, uint32_t lo, uint32_t hi);

/* Adds one number. */
void imap_seqset_add(struct imap_seqset *set, uint32_t x);

/* True when x is in the set (binary search). */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t x);

/* How many numbers the set holds. */
uint64_t imap_seqset_count(const struct imap_seqset *set);

/* The largest number in the set, or 0 when it is empty. */
uint32_t imap_seqset_max(const struct imap_seqset *set);

/* Iteration over the numbers of a set, in increasing order. The set must
 * not change while it is iterated. */
struct imap_seqset_iter {
	const struct imap_seqset *set;
	size_t i;
	uint64_t next;
};

void imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *set);

/* Sets *x_r to the next number and returns true, or returns false at the end. */
bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *x_r);

/*
 * Appends the set in compact form ("1:3,5,7:9") to out; nothing for an
 * empty set. Returns 0 or -ENOBUFS (out is then left as it was).
 */
int imap_seqset_format(const struct imap_seqset *set, struct buf *out);

#endif
