/* Unit tests for imap/imap-seqset.c: parse table, membership, iteration,
 * formatting, and a randomized comparison against a plain bitmap. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "imap/imap-seqset.h"
#include "lib/buf.h"

#include "tests/common/check.h"

static const struct {
	const char *in;
	uint32_t star;
	unsigned flags;
	int ret;
	const char *out;        /* formatted set when ret == 0 */
} parse_cases[] = {
	{ "1", 10, 0, 0, "1" },
	{ "1:*,5,7:9", 10, 0, 0, "1:10" },
	{ "1,3,5", 10, 0, 0, "1,3,5" },
	{ "5:*", 3, 0, 0, "3:5" },              /* RFC 3501 6.4.8: UID 5:* with max UID 3 */
	{ "*", 7, 0, 0, "7" },
	{ "*:4", 7, 0, 0, "4:7" },
	{ "*:*", 7, 0, 0, "7" },
	{ "4:2", 10, 0, 0, "2:4" },
	{ "1:3,4:6", 10, 0, 0, "1:6" },
	{ "10,1:3,2:5,9", 10, 0, 0, "1:5,9:10" },
	{ "2,2,2", 10, 0, 0, "2" },
	{ "3,1,2", 10, 0, 0, "1:3" },
	{ "1:2,4:5", 10, 0, 0, "1:2,4:5" },
	{ "4294967295", 1, 0, 0, "4294967295" },
	{ "1:4294967295", 1, 0, 0, "1:4294967295" },
	{ "4294967294,4294967295,1", 1, 0, 0, "1,4294967294:4294967295" },
	{ "1:2", 0, 0, 0, "1:2" },              /* no "*": star does not matter */
	{ "41,43:211,214:541", 600, 0, 0, "41,43:211,214:541" },
	{ "4294967296", 1, 0, -EINVAL, NULL },
	{ "99999999999", 1, 0, -EINVAL, NULL },
	{ "0", 10, 0, -EINVAL, NULL },
	{ "0:5", 10, 0, -EINVAL, NULL },
	{ "01", 10, 0, -EINVAL, NULL },
	{ "", 10, 0, -EINVAL, NULL },
	{ "1,", 10, 0, -EINVAL, NULL },
	{ ",1", 10, 0, -EINVAL, NULL },
	{ "1,,2", 10, 0, -EINVAL, NULL },
	{ "1::2", 10, 0, -EINVAL, NULL },
	{ "1:", 10, 0, -EINVAL, NULL },
	{ ":1", 10, 0, -EINVAL, NULL },
	{ "1:2:3", 10, 0, -EINVAL, NULL },
	{ "1:*:2", 10, 0, -EINVAL, NULL },
	{ "**", 10, 0, -EINVAL, NULL },
	{ "a", 10, 0, -EINVAL, NULL },
	{ "1 2", 10, 0, -EINVAL, NULL },
	{ "-1", 10, 0, -EINVAL, NULL },
	{ "+1", 10, 0, -EINVAL, NULL },
	{ "$", 10, 0, -EINVAL, NULL },
	{ "$", 10, IMAP_SEQSET_ALLOW_SAVED, IMAP_SEQSET_SAVED, "" },
	{ "1,$", 10, IMAP_SEQSET_ALLOW_SAVED, -EINVAL, NULL },
	{ "$$", 10, IMAP_SEQSET_ALLOW_SAVED, -EINVAL, NULL },
	{ "1:*", 0, 0, -ERANGE, NULL },         /* "*" in an empty mailbox */
	{ "*", 0, 0, -ERANGE, NULL },
};

static void test_parse(void)
{
	struct imap_seqset set = IMAP_SEQSET_INIT;

	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		struct buf b = BUF_INIT(0);
		const char *in = parse_cases[i].in;
		int r;

		/* leave something in the set: parse replaces it */
		imap_seqset_add_range(&set, 100, 200);
		r = imap_seqset_parse(&set, in, strlen(in), parse_cases[i].star, parse_cases[i].flags);
		CHECK(r == parse_cases[i].ret, "parse \"%s\": r=%d want %d", in, r, parse_cases[i].ret);
		if (r < 0 || r == IMAP_SEQSET_SAVED)
			CHECK(set.count == 0, "parse \"%s\": set not empty after r=%d", in, r);
		if (r == 0) {
			CHECK(imap_seqset_format(&set, &b) == 0, "format");
			CHECK(strcmp(b.data ? b.data : "", parse_cases[i].out) == 0,
			      "parse \"%s\": got \"%s\" want \"%s\"", in, b.data ? b.data : "", parse_cases[i].out);
		}
		buf_release(&b);
	}
	/* length-delimited: the bytes after len are not read */
	CHECK(imap_seqset_parse(&set, "1:3,junk", 3, 10, 0) == 0 && set.count == 1 && set.r[0].hi == 3, "length");
	imap_seqset_release(&set);
}

static void test_contains_iter(void)
{
	struct imap_seqset set;
	struct imap_seqset_iter it;
	uint32_t x, got[16];
	size_t n = 0;

	imap_seqset_init(&set);
	CHECK(imap_seqset_parse(&set, "9:10,1:3,7", 10, 10, 0) == 0, "parse");
	CHECK(imap_seqset_contains(&set, 1) && imap_seqset_contains(&set, 3) && imap_seqset_contains(&set, 7) &&
	      imap_seqset_contains(&set, 9) && imap_seqset_contains(&set, 10), "contains members");
	CHECK(!imap_seqset_contains(&set, 0) && !imap_seqset_contains(&set, 4) && !imap_seqset_contains(&set, 8) &&
	      !imap_seqset_contains(&set, 11) && !imap_seqset_contains(&set, UINT32_MAX), "contains non-members");
	CHECK(imap_seqset_count(&set) == 6 && imap_seqset_max(&set) == 10, "count and max");
	imap_seqset_iter_init(&it, &set);
	while (n < 16 && imap_seqset_iter_next(&it, &x))
		got[n++] = x;
	CHECK(n == 6 && got[0] == 1 && got[1] == 2 && got[2] == 3 && got[3] == 7 && got[4] == 9 && got[5] == 10,
	      "iteration (%zu)", n);
	CHECK(!imap_seqset_iter_next(&it, &x), "iteration ends");

	/* the top of the range does not wrap */
	CHECK(imap_seqset_parse(&set, "4294967294:*", 12, UINT32_MAX, 0) == 0, "parse top");
	imap_seqset_iter_init(&it, &set);
	n = 0;
	while (n < 16 && imap_seqset_iter_next(&it, &x))
		got[n++] = x;
	CHECK(n == 2 && got[0] == 4294967294u && got[1] == 4294967295u, "iteration at the top (%zu)", n);
	CHECK(imap_seqset_count(&set) == 2, "count at the top");
	CHECK(imap_seqset_parse(&set, "1:*", 3, UINT32_MAX, 0) == 0 && imap_seqset_count(&set) == 4294967295ull,
	      "count of everything");

	/* an empty set */
	imap_seqset_clear(&set);
	imap_seqset_iter_init(&it, &set);
	CHECK(!imap_seqset_iter_next(&it, &x) && imap_seqset_count(&set) == 0 && imap_seqset_max(&set) == 0 &&
	      !imap_seqset_contains(&set, 1), "empty set");
	imap_seqset_release(&set);
}

static void test_add(void)
{
	struct imap_seqset set = IMAP_SEQSET_INIT;
	struct buf b = BUF_INIT(0);

	imap_seqset_add(&set, 5);
	imap_seqset_add(&set, 6);               /* adjacent: merged */
	imap_seqset_add(&set, 9);
	imap_seqset_add_range(&set, 12, 10);    /* reversed */
	imap_seqset_add(&set, 1);               /* before everything */
	imap_seqset_add_range(&set, 0, 0);      /* ignored */
	imap_seqset_add_range(&set, 0, 2);      /* 0 is not a number: 1:2 */
	imap_seqset_add_range(&set, 7, 8);      /* joins 5:6, 9 and 10:12 */
	CHECK(imap_seqset_format(&set, &b) == 0 && strcmp(b.data, "1:2,5:12") == 0, "add: \"%s\"", b.data);
	buf_release(&b);

	/* out of memory in the output: unchanged */
	{
		struct buf small = BUF_INIT(8);

		buf_adds(&small, "x ");
		CHECK(imap_seqset_format(&set, &small) == -ENOBUFS && small.len == 2 && strcmp(small.data, "x ") == 0,
		      "format over max");
		buf_release(&small);
	}
	imap_seqset_release(&set);
}

/* Random sets over 1..200 built three ways (add in random order, parse of
 * a random text, parse of the formatted set) against a bitmap. */
static void test_random(void)
{
	uint32_t seed = 12345;

	for (int round = 0; round < 2000; round++) {
		bool bits[202] = { false };
		struct imap_seqset a = IMAP_SEQSET_INIT, c = IMAP_SEQSET_INIT;
		struct buf text = BUF_INIT(0), fa = BUF_INIT(0);
		int nitems;
		uint32_t star;

#define RND() (seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff)
		star = 1 + RND() % 200;
		nitems = 1 + RND() % 12;
		for (int k = 0; k < nitems; k++) {
			uint32_t lo = 1 + RND() % 200, hi = RND() % 4 ? lo + RND() % 20 : lo;
			bool lo_star = RND() % 10 == 0, hi_star = RND() % 10 == 0;

			if (hi > 200)
				hi = 200;
			if (lo_star)
				lo = star;
			if (hi_star)
				hi = star;
			buf_printf(&text, "%s", k ? "," : "");
			if (lo_star)
				buf_addch(&text, '*');
			else
				buf_printf(&text, "%u", (unsigned)lo);
			if (hi != lo || hi_star) {
				buf_addch(&text, ':');
				if (hi_star)
					buf_addch(&text, '*');
				else
					buf_printf(&text, "%u", (unsigned)hi);
			}
			for (uint32_t x = lo < hi ? lo : hi; x <= (lo < hi ? hi : lo); x++)
				bits[x] = true;
			imap_seqset_add_range(&a, hi, lo);
		}
		CHECK(imap_seqset_parse(&c, text.data, text.len, star, 0) == 0, "random parse \"%s\"", text.data);
		CHECK(imap_seqset_format(&a, &fa) == 0, "random format");
		{
			struct buf fc = BUF_INIT(0);

			imap_seqset_format(&c, &fc);
			CHECK(fa.len == fc.len && strcmp(fa.data, fc.data) == 0, "random: add gives \"%s\", parse \"%s\" of \"%s\"",
			      fa.data, fc.data, text.data);
			buf_release(&fc);
		}
		{
			uint64_t count = 0;

			for (uint32_t x = 0; x <= 201; x++) {
				count += bits[x];
				if (imap_seqset_contains(&c, x) != bits[x]) {
					CHECK(0, "random contains %u in \"%s\"", (unsigned)x, text.data);
					break;
				}
			}
			CHECK(imap_seqset_count(&c) == count, "random count");
		}
		/* sorted, merged, non-adjacent */
		for (size_t i = 0; i < c.count; i++) {
			CHECK(c.r[i].lo >= 1 && c.r[i].lo <= c.r[i].hi, "range order");
			if (i)
				CHECK((uint64_t)c.r[i - 1].hi + 1 < c.r[i].lo, "ranges not merged in \"%s\"", text.data);
		}
		/* the formatted text parses back to the same set */
		{
			struct imap_seqset d = IMAP_SEQSET_INIT;
			struct buf fd = BUF_INIT(0);

			CHECK(imap_seqset_parse(&d, fa.data, fa.len, 1, 0) == 0, "reparse");
			imap_seqset_format(&d, &fd);
			CHECK(strcmp(fd.data, fa.data) == 0, "format round trip");
			buf_release(&fd);
			imap_seqset_release(&d);
		}
		imap_seqset_release(&a);
		imap_seqset_release(&c);
		buf_release(&text);
		buf_release(&fa);
	}
}

int main(void)
{
	test_parse();
	test_contains_iter();
	test_add();
	test_random();
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("imap-seqset: all passed\n");
	return 0;
}
