/* Unit tests for imap/imap-quote.c: fixed cases, and a round trip of random
 * strings written as astrings and read back by imap/imap-parser.c. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "imap/imap-parser.h"
#include "imap/imap-quote.h"
#include "lib/buf.h"

#include "tests/common/check.h"

enum kind { ASTRING, STRING, NSTRING };

#define BIN(s) s, sizeof(s) - 1

static const struct {
	enum kind kind;
	const char *in;
	size_t len;
	unsigned flags;
	int ret;
	const char *out;
	size_t out_len;
} cases[] = {
	{ ASTRING, BIN("INBOX"), 0, 0, BIN("INBOX") },
	{ ASTRING, BIN("[Gmail]/Sent"), 0, 0, BIN("[Gmail]/Sent") },
	{ ASTRING, BIN("a]b"), 0, 0, BIN("a]b") },
	{ ASTRING, BIN("NIL"), 0, 0, BIN("\"NIL\"") },
	{ ASTRING, BIN("nIl"), 0, 0, BIN("\"nIl\"") },
	{ ASTRING, BIN("NILS"), 0, 0, BIN("NILS") },
	{ ASTRING, BIN(""), 0, 0, BIN("\"\"") },
	{ ASTRING, BIN("a b"), 0, 0, BIN("\"a b\"") },
	{ ASTRING, BIN("a%"), 0, 0, BIN("\"a%\"") },
	{ ASTRING, BIN("a*"), 0, 0, BIN("\"a*\"") },
	{ ASTRING, BIN("(a)"), 0, 0, BIN("\"(a)\"") },
	{ ASTRING, BIN("{1}"), 0, 0, BIN("\"{1}\"") },
	{ ASTRING, BIN("a\"b\\c"), 0, 0, BIN("\"a\\\"b\\\\c\"") },
	{ ASTRING, BIN("a\tb"), 0, 0, BIN("\"a\tb\"") },
	{ ASTRING, BIN("a\r\nb"), 0, 0, BIN("{4}\r\na\r\nb") },
	{ ASTRING, BIN("a\rb"), 0, 0, BIN("{3}\r\na\rb") },
	{ ASTRING, BIN("caf\xc3\xa9"), 0, 0, BIN("{5}\r\ncaf\xc3\xa9") },
	{ ASTRING, BIN("caf\xc3\xa9"), IMAP_QUOTE_UTF8, 0, BIN("\"caf\xc3\xa9\"") },
	{ ASTRING, BIN("caf\xc3"), IMAP_QUOTE_UTF8, 0, BIN("{4}\r\ncaf\xc3") },
	{ ASTRING, BIN("\xed\xa0\x80"), IMAP_QUOTE_UTF8, 0, BIN("{3}\r\n\xed\xa0\x80") },
	{ ASTRING, BIN("a\0b"), 0, -EINVAL, BIN("") },
	{ ASTRING, BIN("a\0b"), IMAP_QUOTE_LITERAL8, 0, BIN("~{3}\r\na\0b") },
	{ STRING, BIN("INBOX"), 0, 0, BIN("\"INBOX\"") },
	{ STRING, BIN("NIL"), 0, 0, BIN("\"NIL\"") },
	{ NSTRING, NULL, 0, 0, 0, BIN("NIL") },
	{ NSTRING, BIN(""), 0, 0, BIN("\"\"") },
	{ NSTRING, BIN("x\ny"), 0, 0, BIN("{3}\r\nx\ny") },
};

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = BUF_INIT(0);
		int r;

		buf_adds(&b, "> ");
		switch (cases[i].kind) {
		case ASTRING:
			r = imap_write_astring(&b, cases[i].in, cases[i].len, cases[i].flags);
			break;
		case STRING:
			r = imap_write_string(&b, cases[i].in, cases[i].len, cases[i].flags);
			break;
		default:
			r = imap_write_nstring(&b, cases[i].in, cases[i].len, cases[i].flags);
			break;
		}
		CHECK(r == cases[i].ret, "case %zu: r=%d", i, r);
		CHECK(b.len == 2 + cases[i].out_len && memcmp(b.data + 2, cases[i].out, cases[i].out_len) == 0,
		      "case %zu: got \"%s\" want \"%s\"", i, b.data + 2, cases[i].out);
		buf_release(&b);
	}
}

static void test_misc(void)
{
	char big[IMAP_QUOTE_MAX_QUOTED + 1];
	struct buf b = BUF_INIT(0), small = BUF_INIT(6);

	memset(big, 'x', sizeof(big));
	CHECK(imap_write_string(&b, big, IMAP_QUOTE_MAX_QUOTED, 0) == 0 && b.data[0] == '"', "longest quoted");
	buf_reset(&b);
	CHECK(imap_write_string(&b, big, sizeof(big), 0) == 0 && strncmp(b.data, "{1025}\r\n", 8) == 0,
	      "long string as literal");
	CHECK(imap_write_quoted(&b, "a\nb", 3, 0) == -EINVAL, "quoted refuses LF");
	CHECK(imap_write_literal(&b, "abc", 3, false) == 0, "literal");
	CHECK(!imap_can_quote("a\0", 2, IMAP_QUOTE_UTF8) && imap_can_quote("", 0, 0), "can_quote");
	CHECK(!imap_is_astring_atom("", 0) && imap_is_astring_atom("a]", 2) && !imap_is_astring_atom("a\\", 2),
	      "is_astring_atom");

	buf_adds(&small, "ab");
	CHECK(imap_write_astring(&small, "a b c", 5, 0) == -ENOBUFS && small.len == 2, "quoted over max");
	CHECK(imap_write_astring(&small, "a\nb", 3, 0) == -ENOBUFS && small.len == 2, "literal over max");
	CHECK(imap_write_astring(&small, "abcde", 5, 0) == -ENOBUFS && small.len == 2, "atom over max");
	CHECK(strcmp(small.data, "ab") == 0, "unchanged");
	buf_release(&small);
	buf_release(&b);
}

/* What the writer writes, the parser reads back unchanged. */
static void test_round_trip(void)
{
	uint32_t seed = 99;
	unsigned rounds = 0;

	for (int i = 0; i < 3000; i++) {
		char s[40];
		size_t len;
		unsigned flags = i % 3 == 0 ? IMAP_QUOTE_UTF8 : 0;
		struct buf line = BUF_INIT(0);
		struct imap_parser *p = imap_parser_init(NULL, 0);
		const struct imap_command *cmd = NULL;
		size_t pos = 0, used;
		int r;

#define RND() (seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff)
		len = RND() % sizeof(s);
		for (size_t k = 0; k < len; k++) {
			unsigned v = RND() % 100;

			/* mostly printable, some specials, CR, LF, 8-bit, rarely NUL */
			s[k] = v < 60 ? (char)(0x20 + RND() % 95) : v < 70 ? "\"\\(){}%*]["[RND() % 11] :
				v < 75 ? '\r' : v < 80 ? '\n' : v < 99 ? (char)(0x80 + RND() % 128) : '\0';
		}
		if (memchr(s, '\0', len))
			flags |= IMAP_QUOTE_LITERAL8;
		buf_adds(&line, "t X ");
		CHECK(imap_write_astring(&line, s, len, flags) == 0, "write");
		buf_adds(&line, "\r\n");
		while ((r = imap_parser_feed(p, line.data + pos, line.len - pos, &used)) == IMAP_PARSE_CONTINUE)
			pos += used;
		CHECK(r == IMAP_PARSE_COMMAND, "round trip %d: r=%d for \"%s\"", i, r, line.data);
		if (r == IMAP_PARSE_COMMAND) {
			const char *str;
			size_t n;

			cmd = imap_parser_command(p);
			CHECK(cmd->count == 1 && imap_arg_get_astring(&cmd->args[0], &str, &n) && n == len &&
			      memcmp(str, s, len) == 0, "round trip %d differs: \"%s\"", i, line.data);
			rounds++;
		}
		imap_parser_deinit(&p);
		buf_release(&line);
	}
	CHECK(rounds == 3000, "rounds %u", rounds);
}

int main(void)
{
	test_cases();
	test_misc();
	test_round_trip();
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("imap-quote: all passed\n");
	return 0;
}
