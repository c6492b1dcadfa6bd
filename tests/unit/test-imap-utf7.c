/*
 * Unit tests for imap/imap-utf7.c. The vectors were made independently of
 * the code under test (Python's UTF-16 and BASE64 codecs) besides the
 * RFC 3501 example; every code point is round-tripped.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "imap/imap-utf7.h"
#include "lib/buf.h"

#include "tests/common/check.h"

/* both directions */
static const struct {
	const char *utf8, *utf7;
} pairs[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "&", "&-" },
	{ "a&b&&", "a&-b&-&-" },
	{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "Entw\xc3\xbcrfe", "Entw&APw-rfe" },
	{ "\xc3\xa9", "&AOk-" },
	{ "\xc3\xa9\xc3\xa9", "&AOkA6Q-" },
	{ "\xf0\x9f\x98\x80", "&2D3eAA-" },
	{ "a\x01" "b", "a&AAE-b" },
	{ "\x7f", "&AH8-" },
	{ "\xce\xa9&x", "&A6k-&-x" },
	{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e&", "&ZeVnLIqe-&-" },
	{ "\xe2\x82\xac", "&IKw-" },
	{ " ~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}", " ~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}" },
};

/* refused by the decoder */
static const char *bad_utf7[] = {
	"&",            /* not terminated */
	"a&",
	"&AOk",         /* no "-" */
	"&AO-",         /* 12 bits: half a unit */
	"&A-",
	"&AOl-",        /* pad bits not zero */
	"&AOkA-",       /* a whole character of padding */
	"&AGE-",        /* "a" must not be encoded */
	"&ACY-",        /* "&" must be "&-" */
	"&ACA-",        /* nor a space */
	"&AH4-",        /* nor "~" */
	"&2D0-",        /* high surrogate alone */
	"&3gA-",        /* low surrogate alone */
	"&2D0A6Q-",     /* high surrogate then a BMP character */
	"&2D3YPd4A-",   /* two high surrogates */
	"&AAA-",        /* U+0000 */
	"&AOk-&AOk-",   /* two runs in a row */
	"&A*k-",        /* outside the alphabet */
	"&A/k-",        /* "/" is "," in modified BASE64 */
	"&AOk=-",       /* no padding */
	"caf\xc3\xa9",  /* 8-bit */
	"a\tb",         /* control */
	"a\x7f",
	"&AOk-&",       /* "&" at the end */
};

/* refused by the encoder */
static const char *bad_utf8[] = {
	"\xc3",                 /* truncated */
	"\xe2\x82",
	"\xc0\x80",             /* overlong */
	"\xc1\xbf",
	"\xe0\x80\xaf",
	"\xf0\x80\x80\xaf",
	"\xed\xa0\x80",         /* surrogate */
	"\xed\xbf\xbf",
	"\xf4\x90\x80\x80",     /* past U+10FFFF */
	"\xf5\x80\x80\x80",
	"\xff",
	"\x80",                 /* continuation alone */
	"a\xc3\xa9\xa9",
};

static void test_pairs(void)
{
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct buf b = BUF_INIT(0);
		int r;

		r = imap_utf8_to_utf7(pairs[i].utf8, strlen(pairs[i].utf8), &b);
		CHECK(r == 0 && b.len == strlen(pairs[i].utf7) && memcmp(b.data ? b.data : "", pairs[i].utf7, b.len) == 0,
		      "encode %zu: r=%d got \"%s\" want \"%s\"", i, r, b.data ? b.data : "", pairs[i].utf7);
		buf_reset(&b);
		r = imap_utf7_to_utf8(pairs[i].utf7, strlen(pairs[i].utf7), &b);
		CHECK(r == 0 && b.len == strlen(pairs[i].utf8) && memcmp(b.data ? b.data : "", pairs[i].utf8, b.len) == 0,
		      "decode %zu \"%s\": r=%d", i, pairs[i].utf7, r);
		CHECK(imap_utf7_is_valid(pairs[i].utf7, strlen(pairs[i].utf7)), "valid %zu", i);
		buf_release(&b);
	}
}

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad_utf7) / sizeof(bad_utf7[0]); i++) {
		struct buf b = BUF_INIT(0);
		int r;

		buf_adds(&b, "keep");
		r = imap_utf7_to_utf8(bad_utf7[i], strlen(bad_utf7[i]), &b);
		CHECK(r == -EINVAL, "bad utf7 \"%s\" accepted (r=%d)", bad_utf7[i], r);
		CHECK(b.len == 4 && strcmp(b.data, "keep") == 0, "bad utf7 \"%s\" changed the output", bad_utf7[i]);
		CHECK(!imap_utf7_is_valid(bad_utf7[i], strlen(bad_utf7[i])), "is_valid \"%s\"", bad_utf7[i]);
		buf_release(&b);
	}
	for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
		struct buf b = BUF_INIT(0);
		int r;

		buf_adds(&b, "keep");
		r = imap_utf8_to_utf7(bad_utf8[i], strlen(bad_utf8[i]), &b);
		CHECK(r == -EINVAL, "bad utf8 %zu accepted (r=%d)", i, r);
		CHECK(b.len == 4 && strcmp(b.data, "keep") == 0, "bad utf8 %zu changed the output", i);
		buf_release(&b);
	}
	{
		/* NUL inside the given length */
		struct buf b = BUF_INIT(0);

		CHECK(imap_utf8_to_utf7("a\0b", 3, &b) == -EINVAL, "NUL encoded");
		CHECK(imap_utf7_to_utf8("a\0b", 3, &b) == -EINVAL, "NUL decoded");
		buf_release(&b);
	}
}

static size_t put_utf8(char *s, uint32_t cp)
{
	if (cp < 0x80) {
		s[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		s[0] = (char)(0xc0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		s[0] = (char)(0xe0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	s[0] = (char)(0xf0 | (cp >> 18));
	s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	s[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Every code point, alone and between ASCII, and runs of three. */
static void test_all_code_points(void)
{
	struct buf e = BUF_INIT(0), d = BUF_INIT(0);
	unsigned bad = 0;

	for (uint32_t cp = 1; cp <= 0x10ffff; cp++) {
		char s[16];
		size_t n = 0;

		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		s[n++] = 'x';
		n += put_utf8(s + n, cp);
		n += put_utf8(s + n, cp % 3 ? cp : 0xe9);
		s[n++] = '&';
		buf_reset(&e);
		buf_reset(&d);
		if (imap_utf8_to_utf7(s, n, &e) != 0 || imap_utf7_to_utf8(e.data, e.len, &d) != 0 ||
		    d.len != n || memcmp(d.data, s, n) != 0) {
			if (bad++ < 5)
				CHECK(0, "round trip of U+%04X", (unsigned)cp);
		}
		/* the encoded form only holds printable US-ASCII */
		for (size_t i = 0; i < e.len; i++)
			if (e.data[i] < 0x20 || e.data[i] > 0x7e) {
				if (bad++ < 5)
					CHECK(0, "U+%04X encodes to a non-printable octet", (unsigned)cp);
				break;
			}
	}
	CHECK(bad == 0, "%u round trip failures", bad);
	buf_release(&e);
	buf_release(&d);
}

/* Every string of up to 4 characters over an alphabet that covers the
 * corner cases either decodes and re-encodes to itself, or is refused. */
static void test_canonical_exhaustive(void)
{
	static const char alpha[] = "&-AOkE6Q2D3eAa,+/ ";
	size_t na = sizeof(alpha) - 1, accepted = 0;
	char s[5];
	struct buf d = BUF_INIT(0), e = BUF_INIT(0);

	for (size_t len = 0; len <= 4; len++) {
		size_t total = 1;

		for (size_t k = 0; k < len; k++)
			total *= na;
		for (size_t idx = 0; idx < total; idx++) {
			size_t v = idx;

			for (size_t k = 0; k < len; k++) {
				s[k] = alpha[v % na];
				v /= na;
			}
			buf_reset(&d);
			buf_reset(&e);
			if (imap_utf7_to_utf8(s, len, &d) != 0)
				continue;
			accepted++;
			CHECK(imap_utf8_to_utf7(d.data ? d.data : "", d.len, &e) == 0 && e.len == len &&
			      memcmp(e.data ? e.data : "", s, len) == 0,
			      "\"%.*s\" decodes but is not canonical", (int)len, s);
		}
	}
	CHECK(accepted > 1000, "only %zu strings accepted", accepted);
	buf_release(&d);
	buf_release(&e);
}

static void test_nobufs(void)
{
	struct buf b = BUF_INIT(6);

	CHECK(imap_utf8_to_utf7("\xc3\xa9\xc3\xa9", 4, &b) == -ENOBUFS && b.len == 0, "encode over max");
	CHECK(imap_utf8_to_utf7("\xc3\xa9", 2, &b) == 0 && b.len == 5, "encode fits");
	CHECK(imap_utf7_to_utf8("&AOkA6QDpAOk-", 13, &b) == -ENOBUFS && b.len == 5, "decode over max");
	buf_release(&b);
}

static void test_char_len(void)
{
	CHECK(imap_utf8_char_len("a", 1) == 1, "ascii");
	CHECK(imap_utf8_char_len("\xc3\xa9", 2) == 2, "2 octets");
	CHECK(imap_utf8_char_len("\xc3\xa9", 1) == 0, "truncated");
	CHECK(imap_utf8_char_len("\xf0\x9f\x98\x80", 4) == 4, "4 octets");
	CHECK(imap_utf8_char_len("\xed\xa0\x80", 3) == 0, "surrogate");
	CHECK(imap_utf8_char_len("", 0) == 0, "empty");
}

int main(void)
{
	test_pairs();
	test_bad();
	test_all_code_points();
	test_canonical_exhaustive();
	test_nobufs();
	test_char_len();
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("imap-utf7: all passed\n");
	return 0;
}
