/* Unit tests of lib/sasl.c: strict base64 and UTF-8 checks (the mechanisms: test-sasl-gsasl.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/sasl.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

struct b64_case {
	const char *in;
	long result;          /* octet count or negative code */
	const char *out;      /* expected octets (result of them) */
};

static const struct b64_case b64_cases[] = {
	{ "", 0, "" },
	{ "Zg==", 1, "f" },
	{ "Zm8=", 2, "fo" },
	{ "Zm9v", 3, "foo" },
	{ "Zm9vYg==", 4, "foob" },
	{ "Zm9vYmE=", 5, "fooba" },
	{ "Zm9vYmFy", 6, "foobar" },
	{ "AGFsaWNlAHNlY3JldA==", 13, "\0alice\0secret" },
	{ "+/+/", 3, "\xfb\xff\xbf" },
	/* not multiples of 4, bad characters, bad padding */
	{ "Zg", -EINVAL, NULL },
	{ "Zg=", -EINVAL, NULL },
	{ "Zm9vY", -EINVAL, NULL },
	{ "Zm9v\r\n", -EINVAL, NULL },
	{ "Zm 9", -EINVAL, NULL },
	{ "Zm-_", -EINVAL, NULL },
	{ "====", -EINVAL, NULL },
	{ "Z===", -EINVAL, NULL },
	{ "Zg==Zg==", -EINVAL, NULL },   /* padding in the middle */
	{ "Zm=v", -EINVAL, NULL },       /* data after padding */
	{ "Zh==", -EINVAL, NULL },       /* non-zero pad bits */
	{ "Zm9=", -EINVAL, NULL },       /* non-zero pad bits */
	{ "*", -EINVAL, NULL },
	{ "Zm9v\x80\x80\x80\x80", -EINVAL, NULL },
};

struct utf8_case {
	const char *s;
	size_t n;
	int valid;
};

static const struct utf8_case utf8_cases[] = {
	{ "plain ascii", 11, 1 },
	{ "caf\xc3\xa9", 5, 1 },
	{ "\xe2\x82\xac", 3, 1 },
	{ "\xf0\x9f\x98\x80", 4, 1 },
	{ "\xf4\x8f\xbf\xbf", 4, 1 },       /* U+10FFFF */
	{ "a\0b", 3, 0 },                   /* NUL */
	{ "\xc3", 1, 0 },                   /* truncated */
	{ "\xc0\xaf", 2, 0 },               /* overlong '/' */
	{ "\xe0\x80\xaf", 3, 0 },           /* overlong */
	{ "\xed\xa0\x80", 3, 0 },           /* surrogate */
	{ "\xf4\x90\x80\x80", 4, 0 },       /* above U+10FFFF */
	{ "\x80", 1, 0 },                   /* stray continuation */
	{ "\xff", 1, 0 },
	{ "\xe2\x28\xa1", 3, 0 },           /* bad continuation */
};

static void test_base64(void)
{
	unsigned char out[64];
	char enc[128];

	for (size_t i = 0; i < sizeof(b64_cases) / sizeof(b64_cases[0]); i++) {
		const struct b64_case *c = &b64_cases[i];
		long r = sasl_base64_decode(c->in, strlen(c->in), out, sizeof(out));

		if (r != c->result) {
			fprintf(stderr, "base64 case %zu (%s): got %ld, want %ld\n", i, c->in, r, c->result);
			failures++;
			continue;
		}
		if (r >= 0) {
			CHECK(memcmp(out, c->out, (size_t)r) == 0);
			/* and back */
			CHECK(sasl_base64_encode(out, (size_t)r, enc, sizeof(enc)) == (long)strlen(c->in));
			CHECK(strcmp(enc, c->in) == 0);
		}
	}
	/* output room is checked */
	CHECK(sasl_base64_decode("Zm9vYmFy", 8, out, 5) == -ENOBUFS);
	CHECK(sasl_base64_decode("Zm9vYmFy", 8, out, 6) == 6);
	CHECK(sasl_base64_encode((const unsigned char *)"foo", 3, enc, 4) == -ENOBUFS);
	CHECK(sasl_base64_encode((const unsigned char *)"foo", 3, enc, 5) == 4);
	/* every octet value round-trips */
	{
		unsigned char all[256], back[256];
		char text[400];
		for (int i = 0; i < 256; i++)
			all[i] = (unsigned char)i;
		for (size_t n = 0; n <= 256; n += 1) {
			long e = sasl_base64_encode(all, n, text, sizeof(text));
			CHECK(e >= 0);
			CHECK(sasl_base64_decode(text, (size_t)e, back, sizeof(back)) == (long)n);
			CHECK(memcmp(all, back, n) == 0);
		}
	}
}

static void test_utf8(void)
{
	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		const struct utf8_case *c = &utf8_cases[i];
		if (sasl_utf8_valid((const unsigned char *)c->s, c->n) != c->valid) {
			fprintf(stderr, "utf8 case %zu: want %d\n", i, c->valid);
			failures++;
		}
	}
}

int main(void)
{
	test_base64();
	test_utf8();
	if (failures) {
		fprintf(stderr, "test-sasl: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-sasl: ok\n");
	return 0;
}
