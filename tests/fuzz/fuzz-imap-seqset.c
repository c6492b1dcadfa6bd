/*
 * Fuzz target for sequence sets (imap/imap-seqset.c).
 *
 * Input: four octets of "*" (big-endian; 0 is an empty mailbox) and the set
 * text. When it parses, the ranges are sorted, merged and within
 * 1..4294967295; the compact form parses back to the same ranges; the count
 * is the sum of the ranges; membership agrees with a linear scan at each
 * range edge. The same ranges added one by one in reverse order give the
 * same set.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap-seqset.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(msg) do { fprintf(stderr, "fuzz-imap-seqset: %s\n", (msg)); abort(); } while (0)

static bool scan(const struct imap_seqset *s, uint32_t x)
{
	for (size_t i = 0; i < s->count; i++)
		if (x >= s->r[i].lo && x <= s->r[i].hi)
			return true;
	return false;
}

static bool same(const struct imap_seqset *a, const struct imap_seqset *b)
{
	return a->count == b->count && (a->count == 0 || memcmp(a->r, b->r, a->count * sizeof(*a->r)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_seqset set = IMAP_SEQSET_INIT, again = IMAP_SEQSET_INIT, built = IMAP_SEQSET_INIT;
	struct buf text = BUF_INIT(0);
	uint32_t star;
	uint64_t count = 0;
	int r;

	if (size < 4)
		return 0;
	star = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
	r = imap_seqset_parse(&set, (const char *)data + 4, size - 4, star, IMAP_SEQSET_ALLOW_SAVED);
	if (r != 0 && r != IMAP_SEQSET_SAVED && r != -EINVAL && r != -ERANGE)
		FAIL("unexpected return");
	if (r != 0) {
		if (set.count != 0)
			FAIL("set not empty after a failure");
		goto out;
	}
	if (set.count == 0)
		FAIL("empty set from a successful parse");
	for (size_t i = 0; i < set.count; i++) {
		if (set.r[i].lo == 0 || set.r[i].lo > set.r[i].hi)
			FAIL("bad range");
		if (i && (uint64_t)set.r[i - 1].hi + 1 >= set.r[i].lo)
			FAIL("ranges not sorted and merged");
		count += (uint64_t)set.r[i].hi - set.r[i].lo + 1;
		for (int d = -1; d <= 1; d++) {
			uint32_t x = set.r[i].lo + (uint32_t)d, y = set.r[i].hi + (uint32_t)d;

			if (imap_seqset_contains(&set, x) != scan(&set, x) ||
			    imap_seqset_contains(&set, y) != scan(&set, y))
				FAIL("contains disagrees with a scan");
		}
	}
	if (imap_seqset_count(&set) != count || imap_seqset_max(&set) != set.r[set.count - 1].hi)
		FAIL("count or max");
	if (imap_seqset_format(&set, &text) != 0)
		FAIL("format");
	if (imap_seqset_parse(&again, text.data, text.len, 1, 0) != 0 || !same(&set, &again))
		FAIL("format does not parse back to the same set");
	for (size_t i = set.count; i-- > 0;)
		imap_seqset_add_range(&built, set.r[i].hi, set.r[i].lo);
	if (!same(&set, &built))
		FAIL("added ranges give another set");
out:
	imap_seqset_release(&set);
	imap_seqset_release(&again);
	imap_seqset_release(&built);
	buf_release(&text);
	return 0;
}
