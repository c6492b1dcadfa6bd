/* Unit tests for smtp/smtp-parse.c: table-driven, every failure printed. */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smtp/smtp-parse.h"

#include "tests/common/check.h"

/* ---- command line splitting ---- */

static const struct {
	const char *line;
	int ok;
	const char *verb, *arg;
} cmdline_cases[] = {
	{ "EHLO client.example", 1, "EHLO", "client.example" },
	{ "ehlo   client.example  ", 1, "EHLO", "client.example" },
	{ "QUIT", 1, "QUIT", "" },
	{ "quit ", 1, "QUIT", "" },
	{ "MAIL FROM:<a@b.example> SIZE=10", 1, "MAIL", "FROM:<a@b.example> SIZE=10" },
	{ "STARTTLS", 1, "STARTTLS", "" },
	{ "NOOP\thello", 0, NULL, NULL },
	{ "", 0, NULL, NULL },
	{ " NOOP", 0, NULL, NULL },
	{ "MAIL:FROM", 0, NULL, NULL },
	{ "X1 y", 0, NULL, NULL },
	{ "ABCDEFGHIJKLMNOP", 0, NULL, NULL },       /* 16 letters: too long */
	{ "ABCDEFGHIJKLMNO", 1, "ABCDEFGHIJKLMNO", "" },
};

static void test_cmdline(void)
{
	for (size_t i = 0; i < sizeof(cmdline_cases) / sizeof(cmdline_cases[0]); i++) {
		struct smtp_cmdline c;
		const char *line = cmdline_cases[i].line;
		int r = smtp_parse_cmdline(line, strlen(line), &c);

		CHECK((r == 0) == cmdline_cases[i].ok, "cmdline %zu \"%s\": r=%d", i, line, r);
		if (r != 0 || !cmdline_cases[i].ok)
			continue;
		CHECK(strcmp(c.verb, cmdline_cases[i].verb) == 0, "cmdline \"%s\": verb %s", line, c.verb);
		CHECK(c.arg_len == strlen(cmdline_cases[i].arg) &&
		      strncmp(c.arg, cmdline_cases[i].arg, c.arg_len) == 0,
		      "cmdline \"%s\": arg \"%.*s\"", line, (int)c.arg_len, c.arg);
	}
}

/* ---- MAIL FROM ---- */

static const struct {
	const char *arg;
	const char *path;   /* expected path, or NULL when refused */
	const char *reply;  /* expected reply prefix when refused */
	int has_size;
	uint64_t size;
	enum smtp_body body;
	int smtputf8;
} mail_cases[] = {
	{ "FROM:<alice@example.org>", "alice@example.org", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "from:<alice@example.org>", "alice@example.org", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM: <alice@example.org>", "alice@example.org", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<>", "", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<> SIZE=0", "", NULL, 1, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<a@b.example> SIZE=12345 BODY=8BITMIME", "a@b.example", NULL, 1, 12345, SMTP_BODY_8BITMIME, 0 },
	{ "FROM:<a@b.example> body=7bit", "a@b.example", NULL, 0, 0, SMTP_BODY_7BIT, 0 },
	{ "FROM:<a@b.example> BODY=BINARYMIME", "a@b.example", NULL, 0, 0, SMTP_BODY_BINARYMIME, 0 },
	{ "FROM:<a@b.example>  SMTPUTF8   SIZE=1", "a@b.example", NULL, 1, 1, SMTP_BODY_UNSPEC, 1 },
	{ "FROM:<a@b.example> SIZE=99999999999999999999", "a@b.example", NULL, 1, UINT64_MAX, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<a@b.example> SIZE=18446744073709551615", "a@b.example", NULL, 1, UINT64_MAX, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<a@b.example> SIZE=18446744073709551614", "a@b.example", NULL, 1, UINT64_MAX - 1, SMTP_BODY_UNSPEC, 0 },
	/* UTF-8 (RFC 6531) */
	{ "FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.example> SMTPUTF8", "j\xc3\xb6rg@b\xc3\xbc" "cher.example", NULL, 0, 0, SMTP_BODY_UNSPEC, 1 },
	/* source route, dropped */
	{ "FROM:<@relay.example,@other.example:a@b.example>", "a@b.example", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	/* quoted local parts */
	{ "FROM:<\"john\"@example.org>", "john@example.org", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<\"john smith\"@example.org>", "\"john smith\"@example.org", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<\"a>b\"@example.org>", "\"a>b\"@example.org", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<\"j\\\"q\"@example.org>", "\"j\\\"q\"@example.org", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<\"a\\b\"@example.org>", "ab@example.org", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	/* address literals */
	{ "FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<a@[x-tag:some>thing]>", "a@[x-tag:some>thing]", NULL, 0, 0, SMTP_BODY_UNSPEC, 0 },
	{ "FROM:<a@[192.0.2.256]>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a@[IPv6:2001:db8::g]>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a@[]>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	/* syntax */
	{ "FROM:alice@example.org", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM <alice@example.org>", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "TO:<alice@example.org>", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<alice@example.org", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<alice>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<alice@>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a..b@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<.a@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a.@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a b@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a@b@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a@-example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a@example-.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a@example..org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a@example.org.>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<a@exa_mple.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<\"unterminated@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<@relay.example:>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<@relay.example>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<@relay.example,a@b.example>", NULL, "501 5.1.7", 0, 0, 0, 0 },
	{ "FROM:<\xc3\x28@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },      /* bad UTF-8 */
	{ "FROM:<\xc0\xaf@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },      /* overlong */
	{ "FROM:<\xed\xa0\x80@example.org>", NULL, "501 5.1.7", 0, 0, 0, 0 },  /* surrogate */
	{ "FROM:<a@example.org>x", NULL, "501 5.5.4", 0, 0, 0, 0 },
	/* parameters */
	{ "FROM:<a@b.example> FOO=bar", NULL, "555 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> NOTIFY=NEVER", NULL, "555 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> SIZE", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> SIZE=", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> SIZE=12a", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> SIZE=-1", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> SIZE=123456789012345678901", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> SIZE=1 SIZE=2", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> BODY=9BIT", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> SMTPUTF8=yes", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> =x", NULL, "501 5.5.4", 0, 0, 0, 0 },
	{ "FROM:<a@b.example> SIZE=1=2", NULL, "501 5.5.4", 0, 0, 0, 0 },
};

static void test_mail(void)
{
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
		struct smtp_mail_args m;
		const char *reply = NULL;
		int r = smtp_parse_mail(mail_cases[i].arg, &m, &reply);

		if (!mail_cases[i].path) {
			CHECK(r < 0, "MAIL \"%s\" accepted, path \"%s\"", mail_cases[i].arg, m.path);
			if (r < 0)
				CHECK(reply && strncmp(reply, mail_cases[i].reply, strlen(mail_cases[i].reply)) == 0,
				      "MAIL \"%s\": reply \"%s\", want %s", mail_cases[i].arg,
				      reply ? reply : "(null)", mail_cases[i].reply);
			continue;
		}
		CHECK(r == 0, "MAIL \"%s\" refused: %s", mail_cases[i].arg, r < 0 && reply ? reply : "");
		if (r != 0)
			continue;
		CHECK(strcmp(m.path, mail_cases[i].path) == 0, "MAIL \"%s\": path \"%s\"", mail_cases[i].arg, m.path);
		CHECK(m.has_size == mail_cases[i].has_size && m.size == mail_cases[i].size,
		      "MAIL \"%s\": size %d/%llu", mail_cases[i].arg, m.has_size, (unsigned long long)m.size);
		CHECK(m.body == mail_cases[i].body, "MAIL \"%s\": body %d", mail_cases[i].arg, (int)m.body);
		CHECK(m.smtputf8 == mail_cases[i].smtputf8, "MAIL \"%s\": smtputf8 %d", mail_cases[i].arg, m.smtputf8);
	}
}

/* ---- RCPT TO ---- */

static const struct {
	const char *arg;
	const char *path;
	const char *reply;
	int postmaster, route;
} rcpt_cases[] = {
	{ "TO:<bob@example.org>", "bob@example.org", NULL, 0, 0 },
	{ "to: <bob+tag@example.org>", "bob+tag@example.org", NULL, 0, 0 },
	{ "TO:<Postmaster>", "Postmaster", NULL, 1, 0 },
	{ "TO:<postmaster>", "Postmaster", NULL, 1, 0 },
	{ "TO:<postmaster@example.org>", "postmaster@example.org", NULL, 0, 0 },
	{ "TO:<@evil.example:bob@example.org>", "bob@example.org", NULL, 0, 1 },
	{ "TO:<@a.example,@b.example:bob@example.org>", "bob@example.org", NULL, 0, 1 },
	/* routing tricks stay visible to the directory, which says NOT_LOCAL */
	{ "TO:<bob%other.example@example.org>", "bob%other.example@example.org", NULL, 0, 0 },
	{ "TO:<other.example!bob@example.org>", "other.example!bob@example.org", NULL, 0, 0 },
	{ "TO:<\"bob@other.example\"@example.org>", "\"bob@other.example\"@example.org", NULL, 0, 0 },
	{ "TO:<bob@[192.0.2.1]>", "bob@[192.0.2.1]", NULL, 0, 0 },
	{ "TO:<>", NULL, "501 5.1.3", 0, 0 },
	{ "TO:<bob>", NULL, "501 5.1.3", 0, 0 },
	{ "TO:bob@example.org", NULL, "501 5.5.4", 0, 0 },
	{ "FROM:<bob@example.org>", NULL, "501 5.5.4", 0, 0 },
	{ "TO:<bob@example.org> NOTIFY=NEVER", NULL, "555 5.5.4", 0, 0 },
	{ "TO:<bob@example.org> ORCPT=rfc822;bob@example.org", NULL, "555 5.5.4", 0, 0 },
	{ "TO:<bob@example.org>junk", NULL, "501 5.5.4", 0, 0 },
	{ "TO:<Postmaster> x=", NULL, "501 5.5.4", 0, 0 },
};

static void test_rcpt(void)
{
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		struct smtp_rcpt_args r;
		const char *reply = NULL;
		int rc = smtp_parse_rcpt(rcpt_cases[i].arg, &r, &reply);

		if (!rcpt_cases[i].path) {
			CHECK(rc < 0, "RCPT \"%s\" accepted, path \"%s\"", rcpt_cases[i].arg, r.path);
			if (rc < 0)
				CHECK(reply && strncmp(reply, rcpt_cases[i].reply, strlen(rcpt_cases[i].reply)) == 0,
				      "RCPT \"%s\": reply \"%s\", want %s", rcpt_cases[i].arg,
				      reply ? reply : "(null)", rcpt_cases[i].reply);
			continue;
		}
		CHECK(rc == 0, "RCPT \"%s\" refused: %s", rcpt_cases[i].arg, rc < 0 && reply ? reply : "");
		if (rc != 0)
			continue;
		CHECK(strcmp(r.path, rcpt_cases[i].path) == 0, "RCPT \"%s\": path \"%s\"", rcpt_cases[i].arg, r.path);
		CHECK(r.postmaster == rcpt_cases[i].postmaster, "RCPT \"%s\": postmaster %d", rcpt_cases[i].arg, r.postmaster);
		CHECK(r.route == rcpt_cases[i].route, "RCPT \"%s\": route %d", rcpt_cases[i].arg, r.route);
	}
}

/* ---- lengths ---- */

static void test_lengths(void)
{
	char arg[2048], want[1024];
	struct smtp_rcpt_args r;
	const char *reply;
	size_t n;

	/* a 64-octet local part is fine, 65 is not */
	memset(want, 'l', 64);
	strcpy(want + 64, "@example.org");
	snprintf(arg, sizeof(arg), "TO:<%s>", want);
	CHECK(smtp_parse_rcpt(arg, &r, &reply) == 0 && strcmp(r.path, want) == 0, "64-octet local part refused");
	memset(want, 'l', 65);
	strcpy(want + 65, "@example.org");
	snprintf(arg, sizeof(arg), "TO:<%s>", want);
	CHECK(smtp_parse_rcpt(arg, &r, &reply) < 0, "65-octet local part accepted");

	/* a path of exactly 256 octets with its brackets is fine, 257 is not:
	 * "u@" and a domain of 63+1+63+1+63+1+60 = 252 octets */
	n = 0;
	want[n++] = 'u';
	want[n++] = '@';
	for (int k = 0; k < 4; k++) {
		size_t label = k < 3 ? 63 : 60;

		memset(want + n, 'd', label);
		n += label;
		if (k < 3)
			want[n++] = '.';
	}
	want[n] = '\0';
	snprintf(arg, sizeof(arg), "TO:<%s>", want);
	CHECK(strlen(want) == 254, "test setup: mailbox of %zu octets", strlen(want));
	CHECK(smtp_parse_rcpt(arg, &r, &reply) == 0, "256-octet path refused: %s", reply);
	want[n++] = 'd';
	want[n] = '\0';
	snprintf(arg, sizeof(arg), "TO:<%s>", want);
	CHECK(smtp_parse_rcpt(arg, &r, &reply) < 0 && strncmp(reply, "501 5.1.3", 9) == 0,
	      "257-octet path accepted");
	snprintf(arg, sizeof(arg), "TO:<@r.example:%s>", want);
	CHECK(smtp_parse_rcpt(arg, &r, &reply) < 0 && strncmp(reply, "501 5.1.3", 9) == 0,
	      "path over 256 octets (with route) accepted");
	/* a label of 64 octets is not */
	memset(want, 'd', 64);
	want[64] = '\0';
	CHECK(smtp_check_domain(want, 64) < 0, "64-octet label accepted");
	CHECK(smtp_check_domain(want, 63) == 0, "63-octet label refused");
}

/* ---- BDAT ---- */

static const struct {
	const char *arg;
	int ok;
	uint64_t size;
	int last;
} bdat_cases[] = {
	{ "0", 1, 0, 0 },
	{ "0 LAST", 1, 0, 1 },
	{ "1000 last", 1, 1000, 1 },
	{ "42", 1, 42, 0 },
	{ "18446744073709551615", 1, UINT64_MAX, 0 },
	{ "18446744073709551616", 0, 0, 0 },
	{ "", 0, 0, 0 },
	{ "LAST", 0, 0, 0 },
	{ "-1", 0, 0, 0 },
	{ "10 LAST x", 0, 0, 0 },
	{ "10 FIRST", 0, 0, 0 },
	{ "10x", 0, 0, 0 },
	{ "10 LASTX", 0, 0, 0 },
};

static void test_bdat(void)
{
	for (size_t i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++) {
		uint64_t size = 12345;
		int last = -1;
		const char *reply = NULL;
		int r = smtp_parse_bdat(bdat_cases[i].arg, &size, &last, &reply);

		CHECK((r == 0) == bdat_cases[i].ok, "BDAT \"%s\": r=%d", bdat_cases[i].arg, r);
		if (r == 0 && bdat_cases[i].ok)
			CHECK(size == bdat_cases[i].size && last == bdat_cases[i].last,
			      "BDAT \"%s\": size %llu last %d", bdat_cases[i].arg, (unsigned long long)size, last);
		if (r < 0)
			CHECK(reply && strncmp(reply, "501 5.5.4", 9) == 0, "BDAT \"%s\": reply %s",
			      bdat_cases[i].arg, reply ? reply : "(null)");
	}
}

/* ---- UTF-8 ---- */

static const struct {
	const char *s;
	size_t len, want;
} utf8_cases[] = {
	{ "a", 1, 1 },
	{ "\xc3\xa9", 2, 2 },
	{ "\xc3", 1, 0 },
	{ "\xc1\xbf", 2, 0 },              /* overlong */
	{ "\xe2\x82\xac", 3, 3 },
	{ "\xe0\x9f\xbf", 3, 0 },          /* overlong */
	{ "\xed\x9f\xbf", 3, 3 },
	{ "\xed\xa0\x80", 3, 0 },          /* surrogate */
	{ "\xf0\x9f\x98\x80", 4, 4 },
	{ "\xf0\x8f\xbf\xbf", 4, 0 },      /* overlong */
	{ "\xf4\x8f\xbf\xbf", 4, 4 },
	{ "\xf4\x90\x80\x80", 4, 0 },      /* above U+10FFFF */
	{ "\xf5\x80\x80\x80", 4, 0 },
	{ "\xe2\x28\xa1", 3, 0 },
	{ "\x80", 1, 0 },
};

static void test_utf8(void)
{
	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		size_t n = smtp_utf8_seq((const unsigned char *)utf8_cases[i].s, utf8_cases[i].len);

		CHECK(n == utf8_cases[i].want, "utf8 case %zu: %zu, want %zu", i, n, utf8_cases[i].want);
	}
}

int main(void)
{
	test_cmdline();
	test_mail();
	test_rcpt();
	test_lengths();
	test_bdat();
	test_utf8();
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("all smtp-parse tests passed\n");
	return 0;
}
