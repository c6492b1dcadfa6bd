/* Sequence sets as sorted, merged ranges. See imap-seqset.h. */

#include "imap/imap-seqset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/xalloc.h"

void imap_seqset_init(struct imap_seqset *set)
{
	set->r = NULL;
	set->count = set->cap = 0;
}

void imap_seqset_release(struct imap_seqset *set)
{
	free(set->r);
	imap_seqset_init(set);
}

void imap_seqset_clear(struct imap_seqset *set)
{
	set->count = 0;
}

static void reserve(struct imap_seqset *set, size_t n)
{
	size_t cap;

	if (set->cap - set->count >= n)
		return;
	cap = set->cap ? set->cap : 8;
	while (cap - set->count < n) {
		if (cap > SIZE_MAX / 2 / sizeof(*set->r))
			BUG("sequence set too large");
		cap *= 2;
	}
	set->r = xrealloc(set->r, cap * sizeof(*set->r));
	set->cap = cap;
}

static int cmp_range(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts and merges overlapping or adjacent ranges in place. */
static void normalize(struct imap_seqset *set)
{
	size_t out = 0;

	if (set->count < 2)
		return;
	qsort(set->r, set->count, sizeof(*set->r), cmp_range);
	for (size_t i = 1; i < set->count; i++) {
		struct imap_seq_range *last = &set->r[out];

		if ((uint64_t)set->r[i].lo <= (uint64_t)last->hi + 1) {
			if (set->r[i].hi > last->hi)
				last->hi = set->r[i].hi;
		} else {
			set->r[++out] = set->r[i];
		}
	}
	set->count = out + 1;
}

/* nz-number (RFC 3501): digit-nz *DIGIT, at most 4294967295; or "*". */
static int parse_number(const char *s, size_t len, size_t *pos, uint32_t star, bool *star_used, uint32_t *n_r)
{
	uint64_t n = 0;
	size_t i = *pos;

	if (i < len && s[i] == '*') {
		*star_used = true;
		*n_r = star;
		*pos = i + 1;
		return 0;
	}
	if (i >= len || s[i] < '1' || s[i] > '9')
		return -EINVAL;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		n = n * 10 + (uint64_t)(s[i] - '0');
		if (n > UINT32_MAX)
			return -EINVAL;
		i++;
	}
	*pos = i;
	*n_r = (uint32_t)n;
	return 0;
}

int imap_seqset_parse(struct imap_seqset *set, const char *s, size_t len, uint32_t star, unsigned flags)
{
	size_t pos = 0;
	bool star_used = false;
	int r;

	imap_seqset_clear(set);
	if (len == 1 && s[0] == '$')
		return (flags & IMAP_SEQSET_ALLOW_SAVED) ? IMAP_SEQSET_SAVED : -EINVAL;
	for (;;) {
		uint32_t lo, hi;

		if ((r = parse_number(s, len, &pos, star, &star_used, &lo)) < 0)
			goto fail;
		hi = lo;
		if (pos < len && s[pos] == ':') {
			pos++;
			if ((r = parse_number(s, len, &pos, star, &star_used, &hi)) < 0)
				goto fail;
		}
		reserve(set, 1);
		set->r[set->count].lo = lo < hi ? lo : hi;
		set->r[set->count].hi = lo < hi ? hi : lo;
		set->count++;
		if (pos == len)
			break;
		if (s[pos] != ',') {
			r = -EINVAL;
			goto fail;
		}
		pos++;
	}
	if (star_used && star == 0) {
		r = -ERANGE;
		goto fail;
	}
	normalize(set);
	return 0;
fail:
	imap_seqset_clear(set);
	return r;
}

void imap_seqset_add_range(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	struct imap_seq_range *last;
	bool sorted;

	if (lo > hi) {
		uint32_t t = lo;

		lo = hi;
		hi = t;
	}
	if (lo == 0)
		lo = 1;
	if (hi == 0)
		return;
	last = set->count ? &set->r[set->count - 1] : NULL;
	if (last && lo >= last->lo && (uint64_t)lo <= (uint64_t)last->hi + 1) {
		if (hi > last->hi)
			last->hi = hi;
		return;
	}
	/* out of order when it starts before the last range */
	sorted = !last || lo >= last->lo;
	reserve(set, 1);                /* last is invalid from here on */
	set->r[set->count].lo = lo;
	set->r[set->count].hi = hi;
	set->count++;
	if (!sorted)
		normalize(set);
}

void imap_seqset_add(struct imap_seqset *set, uint32_t x)
{
	imap_seqset_add_range(set, x, x);
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t x)
{
	size_t lo = 0, hi = set->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (x < set->r[mid].lo)
			hi = mid;
		else if (x > set->r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

uint64_t imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t n = 0;

	for (size_t i = 0; i < set->count; i++)
		n += (uint64_t)set->r[i].hi - set->r[i].lo + 1;
	return n;
}

uint32_t imap_seqset_max(const struct imap_seqset *set)
{
	return set->count ? set->r[set->count - 1].hi : 0;
}

void imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *set)
{
	it->set = set;
	it->i = 0;
	it->next = set->count ? set->r[0].lo : 0;
}

bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *x_r)
{
	const struct imap_seqset *set = it->set;

	if (it->i >= set->count)
		return false;
	*x_r = (uint32_t)it->next;
	if (it->next < set->r[it->i].hi) {
		it->next++;
	} else if (++it->i < set->count) {
		it->next = set->r[it->i].lo;
	}
	return true;
}

int imap_seqset_format(const struct imap_seqset *set, struct buf *out)
{
	size_t start = out->len;

	for (size_t i = 0; i < set->count; i++) {
		const struct imap_seq_range *r = &set->r[i];
		int ret;

		if (r->lo == r->hi)
			ret = buf_printf(out, "%s%u", i ? "," : "", (unsigned)r->lo);
		else
			ret = buf_printf(out, "%s%u:%u", i ? "," : "", (unsigned)r->lo, (unsigned)r->hi);
		if (ret < 0) {
			out->len = start;
			if (out->data)
				out->data[start] = '\0';
			return -ENOBUFS;
		}
	}
	return 0;
}
