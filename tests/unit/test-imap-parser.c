/*
 * Unit tests for imap/imap-parser.c. Table-driven: every case is fed all at
 * once, one byte at a time and in pseudo-random pieces, and all runs must
 * give the same events at the same input offsets, which must be the
 * expected ones. The session behaviour the driver imitates: after a
 * command named AUTHENTICATE or IDLE it asks for one raw line; with
 * IMAP_PARSER_LITERAL_EVENTS it applies the case's literal action.
 */

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap-parser.h"
#include "lib/buf.h"

#include "tests/common/check.h"

/* ---- dumping a command ---- */

static void dump_str(struct buf *b, const char *s, size_t len)
{
	size_t n = len > 40 ? 40 : len;

	buf_addch(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c == '\r')
			buf_adds(b, "\\r");
		else if (c == '\n')
			buf_adds(b, "\\n");
		else if (c < 0x20 || c >= 0x7f)
			buf_printf(b, "\\x%02x", c);
		else
			buf_addch(b, (char)c);
	}
	if (n < len)
		buf_adds(b, "...");
	buf_addch(b, '"');
}

static void dump_args(struct buf *b, const struct imap_arg *args, size_t count);

static void dump_arg(struct buf *b, const struct imap_arg *a)
{
	/* every string is NUL-terminated at its length */
	if (a->type != IMAP_ARG_LIST && a->str[a->len] != '\0')
		buf_adds(b, "<NOT-TERMINATED>");
	switch (a->type) {
	case IMAP_ARG_NIL:
		buf_adds(b, "NIL");
		break;
	case IMAP_ARG_ATOM:
		buf_add(b, a->str, a->len);
		if (a->flags & IMAP_ARG_SECTION) {
			buf_printf(b, "{%.*s|", (int)a->name_len, a->str);
			dump_args(b, a->section, a->section_count);
			buf_printf(b, "|%s", a->suffix);
			if (a->flags & IMAP_ARG_PARTIAL)
				buf_printf(b, "|p%u.%u", (unsigned)a->partial_start, (unsigned)a->partial_len);
			if (a->flags & IMAP_ARG_SECTION_SPACED)
				buf_adds(b, "|s");
			buf_addch(b, '}');
		}
		break;
	case IMAP_ARG_STRING:
		dump_str(b, a->str, a->len);
		if (a->flags & IMAP_ARG_8BIT)
			buf_adds(b, "8");
		break;
	case IMAP_ARG_LITERAL:
		buf_printf(b, "%s{%llu%s}", (a->flags & IMAP_ARG_LITERAL8) ? "~" : "",
			   (unsigned long long)a->literal_size, (a->flags & IMAP_ARG_NONSYNC) ? "+" : "");
		if (a->flags & IMAP_ARG_STREAMED)
			buf_adds(b, "S");
		else
			dump_str(b, a->str, a->len);
		if (a->flags & IMAP_ARG_HAS_NUL)
			buf_adds(b, "0");
		break;
	case IMAP_ARG_LIST:
		buf_addch(b, '(');
		dump_args(b, a->list, a->count);
		buf_addch(b, ')');
		break;
	}
}

static void dump_args(struct buf *b, const struct imap_arg *args, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (i)
			buf_addch(b, ' ');
		dump_arg(b, &args[i]);
	}
}

static const char *err_name(enum imap_parser_error e)
{
	switch (e) {
	case IMAP_PARSE_ERROR_NONE: return "none";
	case IMAP_PARSE_ERROR_BAD_SYNTAX: return "syntax";
	case IMAP_PARSE_ERROR_LINE_TOO_LONG: return "long";
	case IMAP_PARSE_ERROR_LITERAL_TOO_BIG: return "big";
	case IMAP_PARSE_ERROR_TOO_DEEP: return "deep";
	case IMAP_PARSE_ERROR_TOO_MANY_ARGS: return "args";
	}
	return "?";
}

/* ---- the driver ---- */

enum { LIM_DEFAULT, LIM_SMALL };

struct pcase {
	const char *name;
	const char *in;
	size_t in_len;                  /* 0: strlen(in) */
	int limits;
	unsigned flags;
	enum imap_literal_action action; /* with IMAP_PARSER_LITERAL_EVENTS */
	const char *expect;             /* events, one a line */
};

static void set_limits(struct imap_parser_limits *l, int which)
{
	imap_parser_limits_default(l);
	if (which == LIM_SMALL) {
		l->max_line = 64;
		l->max_literal = 16;
		l->max_depth = 3;
		l->max_args = 8;
	}
}

/* Split strategies: 0 all at once, 1 one byte at a time, n >= 2 random
 * pieces of 1..23 bytes from seed n. */
struct splitter {
	int mode;
	uint32_t seed;
};

static size_t next_piece(struct splitter *sp, size_t left)
{
	size_t n;

	if (sp->mode == 0)
		return left;
	if (sp->mode == 1)
		return left ? 1 : 0;
	sp->seed = sp->seed * 1103515245u + 12345u;
	n = 1 + (sp->seed >> 16) % 23;
	return n < left ? n : left;
}

/*
 * Runs one case with one split strategy. log gets the events, offs the
 * input offset after each event (LITERAL_DATA pieces are joined into one
 * DATA line logged with the next other event, as their cut depends on the
 * split). With trim, the driver calls imap_parser_trim() after every event
 * and between feeds, as a session does when it waits: nothing may change.
 */
static void run(const struct pcase *c, int mode, bool trim, struct buf *log, struct buf *offs)
{
	struct imap_parser_limits lim;
	struct imap_parser *p;
	struct splitter sp = { mode, (uint32_t)mode * 2654435761u };
	size_t len = c->in_len ? c->in_len : strlen(c->in);
	size_t pos = 0, end = 0;
	struct buf data = BUF_INIT(0);
	unsigned zero_events = 0;
	bool in_data = false;

	set_limits(&lim, c->limits);
	p = imap_parser_init(&lim, c->flags);
	end = next_piece(&sp, len);
	for (unsigned guard = 0; guard < 100000; guard++) {
		size_t used;
		int r = imap_parser_feed(p, c->in + pos, end - pos, &used);
		const struct imap_command *cmd;
		const char *msg, *tag;
		enum imap_parser_error e;

		CHECK(used <= end - pos, "%s: consumed more than given", c->name);
		pos += used;
		if (r == IMAP_PARSE_NEED_MORE) {
			CHECK(pos == end, "%s: NEED_MORE with bytes left", c->name);
			if (trim)
				imap_parser_trim(p);
			if (pos == len)
				break;
			end = pos + next_piece(&sp, len - pos);
			continue;
		}
		if (r == IMAP_PARSE_LITERAL_DATA) {
			size_t n;
			uint64_t left;
			const char *d = imap_parser_literal_chunk(p, &n, &left);

			CHECK(n == used && d == c->in + pos - used, "%s: chunk is not the consumed bytes", c->name);
			buf_add(&data, d, n);
			in_data = true;
			if (left == 0) {
				buf_adds(log, "DATA ");
				dump_str(log, data.data ? data.data : "", data.len);
				buf_addch(log, '\n');
				buf_printf(offs, "%zu ", pos);
				buf_reset(&data);
				in_data = false;
			}
			if (trim)
				imap_parser_trim(p);
			continue;
		}
		if (used == 0 && ++zero_events > 2) {
			CHECK(0, "%s: events without progress", c->name);
			break;
		}
		if (used)
			zero_events = 0;
		buf_printf(offs, "%zu ", pos);
		switch (r) {
		case IMAP_PARSE_COMMAND:
			cmd = imap_parser_command(p);
			buf_printf(log, "CMD %s %s:", cmd->tag, cmd->name);
			if (cmd->count)
				buf_addch(log, ' ');
			dump_args(log, cmd->args, cmd->count);
			buf_addch(log, '\n');
			if (strcmp(cmd->name, "AUTHENTICATE") == 0 || strcmp(cmd->name, "IDLE") == 0)
				CHECK(imap_parser_read_line(p) == 0, "%s: read_line refused", c->name);
			break;
		case IMAP_PARSE_CONTINUE:
			buf_adds(log, "+\n");
			break;
		case IMAP_PARSE_LINE: {
			size_t n;
			const char *l = imap_parser_line(p, &n);

			buf_adds(log, "LINE ");
			dump_str(log, l, n);
			buf_addch(log, '\n');
			break;
		}
		case IMAP_PARSE_LITERAL: {
			struct imap_literal_info info;
			struct imap_parser *q = p;
			const struct imap_command *part = imap_parser_partial(q);

			imap_parser_literal_info(p, &info);
			buf_printf(log, "LIT %s %s %llu%s d%u [", part->tag, part->name,
				   (unsigned long long)info.size, info.sync ? "" : "+", info.depth);
			dump_args(log, part->args, part->count);
			buf_adds(log, "]\n");
			CHECK(imap_parser_literal_action(p, c->action) == 0 || c->action == IMAP_LITERAL_STREAM,
			      "%s: literal action refused", c->name);
			break;
		}
		case IMAP_PARSE_ERROR:
		case IMAP_PARSE_FATAL:
			e = imap_parser_error(p, &msg);
			tag = imap_parser_tag(p);
			buf_printf(log, "%s[%s] %s: %s\n", r == IMAP_PARSE_ERROR ? "ERR" : "FATAL", err_name(e),
				   tag ? tag : "*", msg);
			break;
		default:
			CHECK(0, "%s: unknown result %d", c->name, r);
			break;
		}
		if (trim)
			imap_parser_trim(p);
		if (r == IMAP_PARSE_FATAL) {
			size_t u2;

			CHECK(imap_parser_feed(p, "x", 1, &u2) == IMAP_PARSE_FATAL && u2 == 0,
			      "%s: fatal is not sticky", c->name);
			break;
		}
	}
	CHECK(!in_data, "%s: literal data cut off", c->name);
	buf_release(&data);
	imap_parser_deinit(&p);
	CHECK(p == NULL, "deinit does not clear the pointer");
}

static void run_case(const struct pcase *c)
{
	struct buf log0 = BUF_INIT(0), offs0 = BUF_INIT(0);

	run(c, 0, false, &log0, &offs0);
	CHECK(strcmp(log0.data ? log0.data : "", c->expect) == 0,
	      "%s:\n--- expected\n%s--- got\n%s---", c->name, c->expect, log0.data ? log0.data : "");
	/* modes 12.. are modes 0.. again, trimming the parser at every chance */
	for (int m = 1; m < 12 + 4; m++) {
		struct buf log = BUF_INIT(0), offs = BUF_INIT(0);
		int mode = m < 12 ? m : m - 12;
		bool trim = m >= 12;

		run(c, mode, trim, &log, &offs);
		CHECK(log.len == log0.len && (log.len == 0 || strcmp(log.data, log0.data) == 0),
		      "%s: split mode %d%s gives other events:\n%s", c->name, mode, trim ? " (trim)" : "",
		      log.data ? log.data : "");
		CHECK(offs.len == offs0.len && (offs.len == 0 || strcmp(offs.data, offs0.data) == 0),
		      "%s: split mode %d%s gives other offsets: %s vs %s", c->name, mode, trim ? " (trim)" : "",
		      offs.data ? offs.data : "", offs0.data ? offs0.data : "");
		buf_release(&log);
		buf_release(&offs);
	}
	buf_release(&log0);
	buf_release(&offs0);
}

/* RFC 3501 6.3.11: 310 octets */
#define RFC_MSG \
	"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n" \
	"From: Fred Foobar <foobar@Blurdybloop.COM>\r\n" \
	"Subject: afternoon meeting\r\n" \
	"To: mooch@owatagu.siam.edu\r\n" \
	"Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n" \
	"MIME-Version: 1.0\r\n" \
	"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n" \
	"\r\n" \
	"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"

#define BIN(s) s, sizeof(s) - 1

static const struct pcase cases[] = {
	/* ---- RFC 3501 examples ---- */
	{ "capability", "abcd CAPABILITY\r\n", 0, 0, 0, 0,
	  "CMD abcd CAPABILITY:\n" },
	{ "login", "a001 LOGIN SMITH SESAME\r\n", 0, 0, 0, 0,
	  "CMD a001 LOGIN: SMITH SESAME\n" },
	{ "login literals 7.5", "A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n", 0, 0, 0, 0,
	  "+\n+\nCMD A001 LOGIN: {11}\"FRED FOOBAR\" {7}\"fat man\"\n" },
	{ "select", "A142 SELECT INBOX\r\n", 0, 0, 0, 0,
	  "CMD A142 SELECT: INBOX\n" },
	{ "create", "A004 CREATE owatagu/\r\n", 0, 0, 0, 0,
	  "CMD A004 CREATE: owatagu/\n" },
	{ "list wildcards", "A101 LIST \"\" \"\"\r\nA202 LIST ~/Mail/ %\r\nA682 LIST \"\" *\r\n", 0, 0, 0, 0,
	  "CMD A101 LIST: \"\" \"\"\n"
	  "CMD A202 LIST: ~/Mail/ %\n"
	  "CMD A682 LIST: \"\" *\n" },
	{ "list mutf7", "A1 LIST \"\" ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n", 0, 0, 0, 0,
	  "CMD A1 LIST: \"\" ~peter/mail/&U,BTFw-/&ZeVnLIqe-\n" },
	{ "status", "A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n", 0, 0, 0, 0,
	  "CMD A042 STATUS: blurdybloop (UIDNEXT MESSAGES)\n" },
	{ "append rfc", "A003 APPEND saved-messages (\\Seen) {310}\r\n" RFC_MSG "\r\n", 0, 0, 0, 0,
	  "+\nCMD A003 APPEND: saved-messages (\\Seen) {310}\"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PS...\"\n" },
	{ "fetch rfc", "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n", 0, 0, 0, 0,
	  "CMD A654 FETCH: 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)]{BODY|HEADER.FIELDS (DATE FROM)||s})\n" },
	{ "uid fetch", "A999 UID FETCH 4827313:4828442 FLAGS\r\n", 0, 0, 0, 0,
	  "CMD A999 UID FETCH: 4827313:4828442 FLAGS\n" },
	{ "store", "A003 STORE 2:4 +FLAGS (\\Deleted)\r\n", 0, 0, 0, 0,
	  "CMD A003 STORE: 2:4 +FLAGS (\\Deleted)\n" },
	{ "copy expunge close logout", "A003 COPY 2:4 MEETING\r\nA202 EXPUNGE\r\nA341 CLOSE\r\nA023 LOGOUT\r\n", 0, 0, 0, 0,
	  "CMD A003 COPY: 2:4 MEETING\nCMD A202 EXPUNGE:\nCMD A341 CLOSE:\nCMD A023 LOGOUT:\n" },
	{ "search rfc", "A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n", 0, 0, 0, 0,
	  "CMD A282 SEARCH: FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\n" },
	{ "search charset literal", "A284 SEARCH CHARSET UTF-8 TEXT {6}\r\n\xe4\xbd\xa0\xe5\xa5\xbd\r\n", 0, 0, 0, 0,
	  "+\nCMD A284 SEARCH: CHARSET UTF-8 TEXT {6}\"\\xe4\\xbd\\xa0\\xe5\\xa5\\xbd\"\n" },
	{ "authenticate", "a001 AUTHENTICATE GSSAPI\r\nYIIB+wYJKoZIhvcSAQICAQBuggHqMIIB5qADAgEFoQMCAQ6iBw==\r\na002 NOOP\r\n", 0, 0, 0, 0,
	  "CMD a001 AUTHENTICATE: GSSAPI\nLINE \"YIIB+wYJKoZIhvcSAQICAQBuggHqMIIB5qADAgEF...\"\nCMD a002 NOOP:\n" },
	{ "authenticate cancel", "a AUTHENTICATE PLAIN\r\n*\r\n", 0, 0, 0, 0,
	  "CMD a AUTHENTICATE: PLAIN\nLINE \"*\"\n" },
	{ "idle done pipelined", "a IDLE\r\nDONE\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "CMD a IDLE:\nLINE \"DONE\"\nCMD b NOOP:\n" },
	{ "idle bare lf and cr inside", "a IDLE\nDO\rNE\r\r\n", 0, 0, 0, 0,
	  "CMD a IDLE:\nLINE \"DO\\rNE\\r\"\n" },
	{ "idle empty line", "a IDLE\r\n\r\n", 0, 0, 0, 0,
	  "CMD a IDLE:\nLINE \"\"\n" },

	/* ---- line ends, tags, names ---- */
	{ "bare lf", "a NOOP\nb NOOP\n", 0, 0, 0, 0,
	  "CMD a NOOP:\nCMD b NOOP:\n" },
	{ "empty lines ignored", "\r\n\n\r\na NOOP\r\n", 0, 0, 0, 0,
	  "CMD a NOOP:\n" },
	{ "name upper-cased", "a1 noop\r\nA2 Uid Fetch 1 FLAGS\r\n", 0, 0, 0, 0,
	  "CMD a1 NOOP:\nCMD A2 UID FETCH: 1 FLAGS\n" },
	{ "tag with bracket", "a]1 NOOP\r\n", 0, 0, 0, 0,
	  "CMD a]1 NOOP:\n" },
	{ "tag plus", "+a NOOP\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] *: invalid character in tag\nCMD b NOOP:\n" },
	{ "tag star", "a*1 NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] *: invalid character in tag\n" },
	{ "missing tag", " NOOP\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] *: missing tag\nCMD b NOOP:\n" },
	{ "missing command", "a\r\nb \r\nc NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: missing command name\nERR[syntax] b: missing command name\nCMD c NOOP:\n" },
	{ "two spaces after tag", "a  NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: missing command name\n" },
	{ "uid alone", "a UID\r\nb UID \r\nc NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: missing command after UID\nERR[syntax] b: missing command after UID\nCMD c NOOP:\n" },
	{ "bad command char", "a NO*OP\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: invalid character in command name\nCMD b NOOP:\n" },
	{ "cr without lf", "a NOOP\rb NOOP\r\nc NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: CR not followed by LF\nCMD c NOOP:\n" },
	{ "cr without lf on empty line", "\rx\r\nc NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] *: CR not followed by LF\nCMD c NOOP:\n" },
	{ "trailing and extra spaces", "a FETCH  1   ( FLAGS  UID )  \r\n", 0, 0, 0, 0,
	  "CMD a FETCH: 1 (FLAGS UID)\n" },

	/* ---- atoms, strings, NIL ---- */
	{ "nil", "a X nil NIL \"NIL\" NILS\r\n", 0, 0, 0, 0,
	  "CMD a X: NIL NIL \"NIL\" NILS\n" },
	{ "quoted escapes", "a LOGIN \"fred \\\"x\\\" \\\\\" \"\"\r\n", 0, 0, 0, 0,
	  "CMD a LOGIN: \"fred \\\"x\\\" \\\\\" \"\"\n" },
	{ "quoted bad escape", "a LOGIN \"a\\b\" x\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: invalid escape in quoted string\nCMD b NOOP:\n" },
	{ "quoted 8-bit flagged", "a LOGIN \"caf\xc3\xa9\" x\r\n", 0, 0, 0, 0,
	  "CMD a LOGIN: \"caf\\xc3\\xa9\"8 x\n" },
	{ "unterminated quoted", "a LOGIN \"fred\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: unterminated quoted string\nCMD b NOOP:\n" },
	{ "unterminated quoted lf", "a LOGIN \"fred\nb NOOP\n", 0, 0, 0, 0,
	  "ERR[syntax] a: unterminated quoted string\nCMD b NOOP:\n" },
	{ "unterminated quoted escape", "a LOGIN \"fred\\\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: unterminated quoted string\nCMD b NOOP:\n" },
	{ "nul in quoted", BIN("a LOGIN \"fr\0ed\" x\r\nb NOOP\r\n"), 0, 0, 0,
	  "ERR[syntax] a: NUL in quoted string\nCMD b NOOP:\n" },
	{ "8-bit in atom", "a SELECT caf\xc3\xa9\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: 8-bit character in atom\nCMD b NOOP:\n" },
	{ "8-bit atom start", "a SELECT \xc3\xa9\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: 8-bit character in atom\nCMD b NOOP:\n" },
	{ "ctl in atom", "a SELECT ab\x01 x\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: invalid character in atom\nCMD b NOOP:\n" },
	{ "nul in atom", BIN("a SELECT ab\0c\r\nb NOOP\r\n"), 0, 0, 0,
	  "ERR[syntax] a: invalid character in atom\nCMD b NOOP:\n" },
	{ "quote in atom", "a SELECT ab\"c\"\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: invalid character in atom\n" },
	{ "no space between args", "a X \"a\"\"b\"\r\nb X (a)(b)\r\nc NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: missing space between arguments\nERR[syntax] b: missing space between arguments\nCMD c NOOP:\n" },
	{ "unbalanced parens", "a X (a\r\nb X a)\r\nc X ((a)\r\nd NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: missing ) at end of line\nERR[syntax] b: unexpected )\n"
	  "ERR[syntax] c: missing ) at end of line\nCMD d NOOP:\n" },
	{ "empty lists", "a X () (()) (() a)\r\n", 0, 0, 0, 0,
	  "CMD a X: () (()) (() a)\n" },
	{ "tilde atom", "a SELECT ~ ~peter ~~\r\n", 0, 0, 0, 0,
	  "CMD a SELECT: ~ ~peter ~~\n" },

	/* ---- bracket sections and partials ---- */
	{ "fetch sections", "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To)]<0.100> BODY[1.2.MIME] BINARY.PEEK[1]<0.5> BODY[] BODY[TEXT]<10>)\r\n", 0, 0, 0, 0,
	  "CMD a FETCH: 1 (BODY.PEEK[HEADER.FIELDS (From To)]<0.100>{BODY.PEEK|HEADER.FIELDS (From To)|<0.100>|p0.100|s} "
	  "BODY[1.2.MIME]{BODY|1.2.MIME|} BINARY.PEEK[1]<0.5>{BINARY.PEEK|1|<0.5>|p0.5} BODY[]{BODY||} BODY[TEXT]<10>{BODY|TEXT|<10>})\n" },
	{ "section nested lists and strings", "a FETCH 1 BODY[HEADER.FIELDS.NOT (\"X-A\" (b c) d)]\r\n", 0, 0, 0, 0,
	  "CMD a FETCH: 1 BODY[HEADER.FIELDS.NOT (\"X-A\" (b c) d)]{BODY|HEADER.FIELDS.NOT (\"X-A\" (b c) d)||s}\n" },
	{ "section literal", "a FETCH 1 BODY[HEADER.FIELDS ({4}\r\nFrom To)]<5.6>\r\n", 0, 0, 0, 0,
	  "+\nCMD a FETCH: 1 BODY[HEADER.FIELDS ({4}\r\nFrom To)]<5.6>{BODY|HEADER.FIELDS ({4}\"From\" To)|<5.6>|p5.6|s}\n" },
	{ "section list right after bracket", "a FETCH 1 BODY[(a)]\r\n", 0, 0, 0, 0,
	  "CMD a FETCH: 1 BODY[(a)]{BODY|(a)||s}\n" },
	{ "section missing space", "a FETCH 1 BODY[HEADER.FIELDS(From)]\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: missing space in section\nCMD b NOOP:\n" },
	{ "section unterminated", "a FETCH 1 BODY[HEADER.FIELDS (From)\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: missing ] at end of line\nCMD b NOOP:\n" },
	{ "section bad partial kept as suffix", "a FETCH 1 BODY[]<0.0> BODY[]<a.1> BODY[]<1.4294967296> BODY[]<4294967295.1>\r\n", 0, 0, 0, 0,
	  "CMD a FETCH: 1 BODY[]<0.0>{BODY||<0.0>} BODY[]<a.1>{BODY||<a.1>} BODY[]<1.4294967296>{BODY||<1.4294967296>} "
	  "BODY[]<4294967295.1>{BODY||<4294967295.1>|p4294967295.1}\n" },
	{ "brackets in mailbox names", "a SELECT [Gmail]/Sent\r\nb CREATE foo[bar\r\nc X (foo[bar) x]y ]\r\n", 0, 0, 0, 0,
	  "CMD a SELECT: [Gmail]/Sent{|Gmail|/Sent}\nCMD b CREATE: foo[bar\nCMD c X: (foo[bar) x]y ]\n" },
	{ "second bracket is text", "a X a[b][c]\r\n", 0, 0, 0, 0,
	  "CMD a X: a[b][c]{a|b|[c]}\n" },
	{ "bracket in section is text", "a X a[[b] c]\r\n", 0, 0, 0, 0,
	  "CMD a X: a[[b]{a|[b|} c]\n" },
	{ "close bracket in section list", "a X a[b (c]d)]\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: unexpected ]\nCMD b NOOP:\n" },

	/* ---- extensions: RFC 4466, 5258, 7162, 4731 ---- */
	{ "list-extended", "a LIST (SUBSCRIBED REMOTE) \"\" (\"INBOX\" \"Drafts\" %) RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n", 0, 0, 0, 0,
	  "CMD a LIST: (SUBSCRIBED REMOTE) \"\" (\"INBOX\" \"Drafts\" %) RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))\n" },
	{ "condstore fetch", "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n", 0, 0, 0, 0,
	  "CMD a UID FETCH: 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\n" },
	{ "condstore store", "a STORE 1:5 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n", 0, 0, 0, 0,
	  "CMD a STORE: 1:5 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\n" },
	{ "qresync select", "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:15 41:71)))\r\n", 0, 0, 0, 0,
	  "CMD a SELECT: INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:15 41:71)))\n" },
	{ "esearch", "a UID SEARCH RETURN (MIN MAX COUNT SAVE) OR (NOT (FROM {3}\r\nbob SEEN)) (OR SUBJECT \"x\" TO y) UNDELETED MODSEQ 5 UID $\r\n", 0, 0, 0, 0,
	  "+\nCMD a UID SEARCH: RETURN (MIN MAX COUNT SAVE) OR (NOT (FROM {3}\"bob\" SEEN)) (OR SUBJECT \"x\" TO y) UNDELETED MODSEQ 5 UID $\n" },
	{ "enable and flags", "a ENABLE CONDSTORE QRESYNC UTF8=ACCEPT\r\nb STORE 1 FLAGS (\\Seen $Forwarded \\*)\r\n", 0, 0, 0, 0,
	  "CMD a ENABLE: CONDSTORE QRESYNC UTF8=ACCEPT\nCMD b STORE: 1 FLAGS (\\Seen $Forwarded \\*)\n" },

	/* ---- literals ---- */
	{ "append flags date literal", "A APPEND INBOX (\\Seen \\Flagged) \"07-Feb-1994 21:52:25 -0800\" {5}\r\nhello\r\n", 0, 0, 0, 0,
	  "+\nCMD A APPEND: INBOX (\\Seen \\Flagged) \"07-Feb-1994 21:52:25 -0800\" {5}\"hello\"\n" },
	{ "literal with crlf and nul", BIN("a APPEND x {7}\r\na\r\n\0b\r\n\r\n"), 0, 0, 0,
	  "+\nCMD a APPEND: x {7}\"a\\r\\n\\x00b\\r\\n\"0\n" },
	{ "nonsync literal", "a LOGIN {4+}\r\nfred {6+}\r\nsecret\r\n", 0, 0, 0, 0,
	  "CMD a LOGIN: {4+}\"fred\" {6+}\"secret\"\n" },
	{ "literal8", BIN("a APPEND x ~{3}\r\na\0b ~{2+}\r\n\0\0\r\n"), 0, 0, 0,
	  "+\nCMD a APPEND: x ~{3}\"a\\x00b\"0 ~{2+}\"\\x00\\x00\"0\n" },
	{ "literal zero", "a LOGIN {0}\r\n {0+}\r\n\r\n", 0, 0, 0, 0,
	  "+\nCMD a LOGIN: {0}\"\" {0+}\"\"\n" },
	{ "literal in list", "a X (a {2}\r\nbc (d {1+}\r\ne))\r\n", 0, 0, 0, 0,
	  "+\nCMD a X: (a {2}\"bc\" (d {1+}\"e\"))\n" },
	{ "literal bare lf", "a LOGIN {2}\nab {1}\nc\n", 0, 0, 0, 0,
	  "+\n+\nCMD a LOGIN: {2}\"ab\" {1}\"c\"\n" },
	{ "literal leading zeros", "a LOGIN {007}\r\n1234567 x\r\n", 0, 0, 0, 0,
	  "+\nCMD a LOGIN: {7}\"1234567\" x\n" },
	{ "literal then garbage", "a LOGIN {2}\r\nabx\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "+\nERR[syntax] a: missing space between arguments\nCMD b NOOP:\n" },
	{ "literal minus syntax", "a LOGIN {5-}\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: invalid literal: LITERAL- uses {n+}\nCMD b NOOP:\n" },
	{ "literal bad header", "a LOGIN {x}\r\nb LOGIN {5}x\r\nc LOGIN {}\r\nd LOGIN {5+x\r\ne NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: invalid literal\nERR[syntax] b: missing line end after literal\nERR[syntax] c: invalid literal\n"
	  "ERR[syntax] d: invalid literal\nCMD e NOOP:\n" },
	{ "literal8 needs brace", "a X ~(a)\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: invalid character in atom\nCMD b NOOP:\n" },

	/* ---- limits ---- */
	{ "sync literal too big", "a APPEND x {17}\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[big] a: literal too big\nCMD b NOOP:\n" },
	{ "sync literal at limit", "a APPEND x {16}\r\n0123456789abcdef\r\n", 0, LIM_SMALL, 0, 0,
	  "+\nCMD a APPEND: x {16}\"0123456789abcdef\"\n" },
	{ "sync literal huge number", "a APPEND x {99999999999999999999999999}\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[big] a: literal too big\nCMD b NOOP:\n" },
	{ "literal sum too big", "a X {10}\r\n0123456789 {7}\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "+\nERR[big] a: literal too big\nCMD b NOOP:\n" },
	{ "nonsync literal too big", "a APPEND x {17+}\r\n01234567890123456\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "FATAL[big] a: non-synchronizing literal too big\n" },
	{ "literal minus 4096 ok", "a X {4096+}\r\n", 0, 0, IMAP_PARSER_LITERAL_MINUS, 0,
	  "" },
	{ "literal minus 4097 fatal", "a X {4097+}\r\nxyz", 0, 0, IMAP_PARSER_LITERAL_MINUS, 0,
	  "FATAL[big] a: non-synchronizing literal too big\n" },
	{ "literal minus sync is fine", "a X {4097}\r\n", 0, 0, IMAP_PARSER_LITERAL_MINUS, 0,
	  "+\n" },
	{ "too deep", "a X (((a)))\r\nb X ((((a))))\r\nc NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "CMD a X: (((a)))\nERR[deep] b: lists nested too deeply\nCMD c NOOP:\n" },
	{ "too deep counts sections", "a X ((BODY[HEADER.FIELDS (a)]))\r\nb X (BODY[HEADER.FIELDS (a)])\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[deep] a: lists nested too deeply\nCMD b X: (BODY[HEADER.FIELDS (a)]{BODY|HEADER.FIELDS (a)||s})\n" },
	{ "too deep counts plain sections", "a X (((BODY[])))\r\nb X (((BODY[TEXT])))\r\nc X ((BODY[TEXT]))\r\n", 0,
	  LIM_SMALL, 0, 0,
	  "ERR[deep] a: lists nested too deeply\nERR[deep] b: lists nested too deeply\nCMD c X: ((BODY[TEXT]{BODY|TEXT|}))\n" },
	{ "too many args", "a X 1 2 3 4 5 6 7 8\r\nb X 1 2 3 4 5 6 7 8 9\r\nc X (1 2 3 4 5 6 7 8)\r\nd NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "CMD a X: 1 2 3 4 5 6 7 8\nERR[args] b: too many arguments\nERR[args] c: too many arguments\nCMD d NOOP:\n" },
	{ "too many args at a literal", "a X 1 2 3 4 5 6 7 8 {2}\r\nb X 1 2 3 4 5 6 7 8 {2+}\r\nxy\r\nc NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[args] a: too many arguments\nERR[args] b: too many arguments\nCMD c NOOP:\n" },
	{ "line too long", "a X 0123456789012345678901234567890123456789012345678901234567890123456789\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[long] a: command line too long\nCMD b NOOP:\n" },
	{ "line too long at cr", "a X 012345678901234567890123456789012345678901234567890123456789\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[long] a: command line too long\nCMD b NOOP:\n" },
	{ "line too long at lf", "a X 01234567890123456789012345678901234567890123456789012345678\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[long] a: command line too long\nCMD b NOOP:\n" },
	{ "line fits", "a X 0123456789012345678901234567890123456789012345678901234567\r\n", 0, LIM_SMALL, 0, 0,
	  "CMD a X: 0123456789012345678901234567890123456789012345678901234567\n" },
	{ "line too long counts all lines", "a X 0123456789012345678901234 {2}\r\nab 0123456789012345678901234567890\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "+\nERR[long] a: command line too long\nCMD b NOOP:\n" },
	{ "line too long in tag", "0123456789012345678901234567890123456789012345678901234567890123456789 NOOP\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[long] *: command line too long\nCMD b NOOP:\n" },
	{ "line too long at literal header lf", "a X 01234567890123456789012345678901234567890123456789012 {12+}\r\n0123456789ab\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[long] a: command line too long\nCMD b NOOP:\n" },
	{ "line too long inside literal header", "a X 01234567890123456789012345678901234567890123456789012345 {12+}\r\n0123456789ab\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[long] a: command line too long\nCMD b NOOP:\n" },
	{ "section literal outgrows the line", "a X B[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa {16}\r\n0123456789abcdef]\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "+\nERR[long] a: command line too long\nCMD b NOOP:\n" },
	{ "section literal fills the line", "a X B[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa {16}\r\n0123456789abcdef]\r\n", 0, LIM_SMALL, 0, 0,
	  "+\nCMD a X: B[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa {16}\r\n0123456789abcdef]{B|aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa {16}\"0123456789abcdef\"||s}\n" },
	{ "raw line too long", "a IDLE\r\n01234567890123456789012345678901234567890123456789012345678901234567890123456789\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "CMD a IDLE:\nERR[long] *: line too long\nCMD b NOOP:\n" },
	{ "raw line no literal skip", "a IDLE\r\n01234567890123456789012345678901234567890123456789012345678901234567890123456789 {3+}\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "CMD a IDLE:\nERR[long] *: line too long\nCMD b NOOP:\n" },

	/* ---- recovery: the rest of a bad line ---- */
	{ "bad line with sync literal is not waited for", "a FETCH 1 (FLAGS))) {5}\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: unexpected )\nCMD b NOOP:\n" },
	{ "bad line with nonsync literal is skipped", "a FETCH 1 ))) {5+}\r\nab\r\nc\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: unexpected )\nCMD b NOOP:\n" },
	{ "bad line with several nonsync literals", "a X ) {1+}\r\nx {3+}\r\n\r\n\n y\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: unexpected )\nCMD b NOOP:\n" },
	{ "bad line nonsync over limit is fatal", "a X ) {17+}\r\n01234567890123456\r\nb NOOP\r\n", 0, LIM_SMALL, 0, 0,
	  "ERR[syntax] a: unexpected )\nFATAL[big] a: non-synchronizing literal too big\n" },
	{ "bad line literal then sync", "a X ) {2+}\r\nab {3}\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: unexpected )\nCMD b NOOP:\n" },
	{ "bad line braces in text", "a X ) {a} {1 {+} {2+}x\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "ERR[syntax] a: unexpected )\nCMD b NOOP:\n" },
	{ "error after literal data", "a X {3}\r\nabc) {2+}\r\nxy\r\nb NOOP\r\n", 0, 0, 0, 0,
	  "+\nERR[syntax] a: unexpected )\nCMD b NOOP:\n" },

	/* ---- literal events ---- */
	{ "event store sync", "a APPEND box (\\Seen) {5}\r\nhello\r\n", 0, 0, IMAP_PARSER_LITERAL_EVENTS, IMAP_LITERAL_STORE,
	  "LIT a APPEND 5 d0 [box (\\Seen)]\n+\nCMD a APPEND: box (\\Seen) {5}\"hello\"\n" },
	{ "event stream sync", "a APPEND box {11}\r\nhello world\r\nb NOOP\r\n", 0, 0, IMAP_PARSER_LITERAL_EVENTS, IMAP_LITERAL_STREAM,
	  "LIT a APPEND 11 d0 [box]\n+\nDATA \"hello world\"\nCMD a APPEND: box {11}S\nCMD b NOOP:\n" },
	{ "event stream nonsync", "a APPEND box {5+}\r\nhello\r\n", 0, 0, IMAP_PARSER_LITERAL_EVENTS, IMAP_LITERAL_STREAM,
	  "LIT a APPEND 5+ d0 [box]\nDATA \"hello\"\nCMD a APPEND: box {5+}S\n" },
	{ "event stream empty", "a APPEND box {0}\r\n\r\n", 0, 0, IMAP_PARSER_LITERAL_EVENTS, IMAP_LITERAL_STREAM,
	  "LIT a APPEND 0 d0 [box]\n+\nCMD a APPEND: box {0}S\n" },
	{ "event reject sync", "a APPEND nobox {5}\r\nb NOOP\r\n", 0, 0, IMAP_PARSER_LITERAL_EVENTS, IMAP_LITERAL_REJECT,
	  "LIT a APPEND 5 d0 [nobox]\nCMD b NOOP:\n" },
	{ "event reject nonsync", "a APPEND nobox {5+}\r\nhe\r\no {2+}\r\nxy\r\nb NOOP\r\n", 0, 0, IMAP_PARSER_LITERAL_EVENTS, IMAP_LITERAL_REJECT,
	  "LIT a APPEND 5+ d0 [nobox]\nCMD b NOOP:\n" },
	{ "event in list", "a X y (z {1}\r\nq)\r\n", 0, 0, IMAP_PARSER_LITERAL_EVENTS, IMAP_LITERAL_STORE,
	  "LIT a X 1 d1 [y]\n+\nCMD a X: y (z {1}\"q\")\n" },
	{ "event stream refused in section", "a FETCH 1 BODY[HEADER.FIELDS ({1}\r\nq)]\r\n", 0, 0, IMAP_PARSER_LITERAL_EVENTS, IMAP_LITERAL_STREAM,
	  "LIT a FETCH 1 d2 [1]\n+\nCMD a FETCH: 1 BODY[HEADER.FIELDS ({1}\r\nq)]{BODY|HEADER.FIELDS ({1}\"q\")||s}\n" },
	{ "event over limit still an error", "a APPEND x {17}\r\nb NOOP\r\n", 0, LIM_SMALL, IMAP_PARSER_LITERAL_EVENTS, IMAP_LITERAL_STORE,
	  "ERR[big] a: literal too big\nCMD b NOOP:\n" },
};

/* ---- targeted checks ---- */

/* Feeds s whole and returns the result; *used_r gets the bytes consumed. */
static int feed_all(struct imap_parser *p, const char *s, size_t len, size_t *used_r)
{
	return imap_parser_feed(p, s, len, used_r);
}

static void test_offsets(void)
{
	struct imap_parser_limits lim;
	struct imap_parser *p;
	const char *in = "a APPEND x {17}\r\n";
	size_t used;
	int r;

	/* the literal-too-big error comes at the LF of the header, before any data */
	set_limits(&lim, LIM_SMALL);
	p = imap_parser_init(&lim, 0);
	r = feed_all(p, in, strlen(in), &used);
	CHECK(r == IMAP_PARSE_ERROR && used == strlen(in), "too big: r=%d used=%zu", r, used);
	r = feed_all(p, "c NOOP\r\n", 8, &used);
	CHECK(r == IMAP_PARSE_COMMAND && used == 8, "after too big: r=%d", r);
	imap_parser_deinit(&p);

	/* the continuation is asked for right after the header, not later */
	p = imap_parser_init(NULL, 0);
	in = "a LOGIN {3}\r\nabc x\r\n";
	r = feed_all(p, in, strlen(in), &used);
	CHECK(r == IMAP_PARSE_CONTINUE && used == 13, "continue: r=%d used=%zu", r, used);
	r = feed_all(p, in + used, strlen(in) - 13, &used);
	CHECK(r == IMAP_PARSE_COMMAND && used == strlen(in) - 13, "command: r=%d used=%zu", r, used);
	imap_parser_deinit(&p);

	/* an over-long line is refused as soon as it passes the limit */
	p = imap_parser_init(&lim, 0);
	{
		char big[200];

		memset(big, 'x', sizeof(big));
		memcpy(big, "a X ", 4);
		r = feed_all(p, big, sizeof(big), &used);
		CHECK(r == IMAP_PARSE_ERROR && used == lim.max_line + 1, "too long: r=%d used=%zu", r, used);
		/* and the rest is discarded without growing anything */
		for (int i = 0; i < 1000; i++) {
			r = feed_all(p, big, sizeof(big), &used);
			CHECK(r == IMAP_PARSE_NEED_MORE && used == sizeof(big), "discarding: r=%d", r);
		}
		r = feed_all(p, "\r\nb NOOP\r\n", 10, &used);
		CHECK(r == IMAP_PARSE_COMMAND, "after discard: r=%d", r);
	}
	imap_parser_deinit(&p);

	/* pipelined commands come one at a time */
	p = imap_parser_init(NULL, 0);
	in = "a NOOP\r\nb NOOP\r\n";
	r = feed_all(p, in, strlen(in), &used);
	CHECK(r == IMAP_PARSE_COMMAND && used == 8, "pipelined: r=%d used=%zu", r, used);
	CHECK(strcmp(imap_parser_command(p)->tag, "a") == 0, "pipelined: first tag");
	imap_parser_deinit(&p);
}

static void test_read_line_busy(void)
{
	struct imap_parser *p = imap_parser_init(NULL, 0);
	size_t used;

	CHECK(imap_parser_feed(p, "a NOOP", 6, &used) == IMAP_PARSE_NEED_MORE, "partial");
	CHECK(imap_parser_read_line(p) == -EBUSY, "read_line while a command is partly read");
	imap_parser_reset(p);
	CHECK(imap_parser_read_line(p) == 0, "read_line after reset");
	CHECK(imap_parser_feed(p, "x y\r\n", 5, &used) == IMAP_PARSE_LINE, "raw line after reset");
	imap_parser_deinit(&p);
	imap_parser_deinit(&p);         /* a NULL parser is fine */
}

/* imap_parser_set_limits(): between commands only; the new limits hold
 * from the next command on, in both directions (the session's limits
 * before and after login). */
static void test_set_limits(void)
{
	struct imap_parser_limits lim = { .max_line = 32, .max_literal = 10, .max_depth = 4, .max_args = 3 };
	struct imap_parser *p = imap_parser_init(&lim, 0);
	const char *lng = "a NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n";
	const char *lit = "b LOGIN {11}\r\n";
	const char *args = "c NOOP 1 2 3 4\r\n";
	size_t used;
	const char *msg;

	CHECK(feed_all(p, lng, strlen(lng), &used) == IMAP_PARSE_ERROR &&
	      imap_parser_error(p, &msg) == IMAP_PARSE_ERROR_LINE_TOO_LONG, "small: line");
	while (used < strlen(lng)) {
		size_t more;

		CHECK(feed_all(p, lng + used, strlen(lng) - used, &more) == IMAP_PARSE_NEED_MORE, "small: skip");
		used += more;
	}
	CHECK(feed_all(p, lit, strlen(lit), &used) == IMAP_PARSE_ERROR &&
	      imap_parser_error(p, &msg) == IMAP_PARSE_ERROR_LITERAL_TOO_BIG, "small: literal");
	CHECK(feed_all(p, args, strlen(args), &used) == IMAP_PARSE_ERROR &&
	      imap_parser_error(p, &msg) == IMAP_PARSE_ERROR_TOO_MANY_ARGS, "small: arguments");
	CHECK(feed_all(p, args + used, strlen(args) - used, &used) == IMAP_PARSE_NEED_MORE, "small: skip args");

	CHECK(imap_parser_set_limits(p, 1024, 100, 100) == 0, "between commands");
	CHECK(feed_all(p, lng, strlen(lng), &used) == IMAP_PARSE_COMMAND && used == strlen(lng), "large: line");
	CHECK(feed_all(p, lit, strlen(lit), &used) == IMAP_PARSE_CONTINUE, "large: literal");
	CHECK(imap_parser_set_limits(p, 16, 1, 1) == -EBUSY, "in a literal");
	CHECK(feed_all(p, "12345678901\r\n", 13, &used) == IMAP_PARSE_COMMAND, "large: literal data");
	CHECK(feed_all(p, args, strlen(args), &used) == IMAP_PARSE_COMMAND, "large: arguments");
	CHECK(feed_all(p, "d NO", 4, &used) == IMAP_PARSE_NEED_MORE, "partial");
	CHECK(imap_parser_set_limits(p, 16, 1, 1) == -EBUSY, "in a command");
	CHECK(feed_all(p, "OP\r\n", 4, &used) == IMAP_PARSE_COMMAND, "partial completed");
	CHECK(imap_parser_read_line(p) == 0, "read_line");
	CHECK(imap_parser_set_limits(p, 16, 1, 1) == -EBUSY, "raw line asked for");
	CHECK(feed_all(p, "raw\r\n", 5, &used) == IMAP_PARSE_LINE, "raw line");
	/* and back down */
	CHECK(imap_parser_set_limits(p, 32, 10, 3) == 0, "lowered");
	CHECK(feed_all(p, lit, strlen(lit), &used) == IMAP_PARSE_ERROR &&
	      imap_parser_error(p, &msg) == IMAP_PARSE_ERROR_LITERAL_TOO_BIG, "lowered: literal");
	imap_parser_deinit(&p);
}

static void test_literal_action_checks(void)
{
	struct imap_parser *p = imap_parser_init(NULL, IMAP_PARSER_LITERAL_EVENTS);
	size_t used;

	CHECK(imap_parser_literal_action(p, IMAP_LITERAL_STREAM) == -EINVAL, "action without a literal");
	CHECK(imap_parser_feed(p, "a X {3}\r\n", 9, &used) == IMAP_PARSE_LITERAL, "literal event");
	CHECK(imap_parser_literal_action(p, (enum imap_literal_action)7) == -EINVAL, "bad action");
	CHECK(imap_parser_literal_action(p, IMAP_LITERAL_STORE) == 0, "store");
	CHECK(imap_parser_feed(p, NULL, 0, &used) == IMAP_PARSE_CONTINUE && used == 0, "continue without input");
	CHECK(imap_parser_feed(p, "abc\r\n", 5, &used) == IMAP_PARSE_COMMAND, "command");
	imap_parser_deinit(&p);
}

static void test_big_literal(void)
{
	struct imap_parser *p = imap_parser_init(NULL, 0);
	size_t n = 1 << 20, used, total = 0;
	char *msg = malloc(n);
	char head[64];
	const struct imap_command *cmd;
	int r;

	for (size_t i = 0; i < n; i++)
		msg[i] = (char)('a' + i % 26);
	snprintf(head, sizeof(head), "A APPEND INBOX {%zu}\r\n", n);
	r = imap_parser_feed(p, head, strlen(head), &used);
	CHECK(r == IMAP_PARSE_CONTINUE, "big literal continue");
	while (total < n) {
		size_t piece = n - total < 65521 ? n - total : 65521;

		r = imap_parser_feed(p, msg + total, piece, &used);
		CHECK(r == IMAP_PARSE_NEED_MORE && used == piece, "big literal data");
		total += piece;
	}
	r = imap_parser_feed(p, "\r\n", 2, &used);
	CHECK(r == IMAP_PARSE_COMMAND, "big literal command");
	cmd = imap_parser_command(p);
	CHECK(cmd->count == 2 && cmd->args[1].type == IMAP_ARG_LITERAL && cmd->args[1].len == n &&
	      memcmp(cmd->args[1].str, msg, n) == 0, "big literal content");
	imap_parser_deinit(&p);
	free(msg);
}

static void test_rfc_append_bytes(void)
{
	struct imap_parser *p = imap_parser_init(NULL, 0);
	const char *in = "A003 APPEND saved-messages (\\Seen) {310}\r\n" RFC_MSG "\r\n";
	const struct imap_command *cmd;
	size_t used, pos = 0;
	int r;

	while ((r = imap_parser_feed(p, in + pos, strlen(in) - pos, &used)) == IMAP_PARSE_CONTINUE)
		pos += used;
	CHECK(r == IMAP_PARSE_COMMAND, "rfc append r=%d", r);
	cmd = imap_parser_command(p);
	CHECK(cmd->count == 3 && cmd->args[2].len == 310 && memcmp(cmd->args[2].str, RFC_MSG, 310) == 0,
	      "rfc append literal bytes");
	imap_parser_deinit(&p);
}

static void test_getters(void)
{
	struct imap_parser *p = imap_parser_init(NULL, 0);
	const char *in = "a X nil atom \"str\" {3}\r\nlit (l) 4294967295 4294967296 9223372036854775807 "
		"9223372036854775808 BODY[] BODY[a b] [x]y 12a\r\n";
	const struct imap_command *cmd;
	const struct imap_arg *a, *items;
	const char *s;
	size_t len, pos = 0, used, n;
	uint32_t u;
	uint64_t u64;
	int r;

	while ((r = imap_parser_feed(p, in + pos, strlen(in) - pos, &used)) == IMAP_PARSE_CONTINUE)
		pos += used;
	CHECK(r == IMAP_PARSE_COMMAND, "getters r=%d", r);
	cmd = imap_parser_command(p);
	CHECK(cmd->count == 13, "getters count %zu", cmd->count);
	if (cmd->count != 13) {
		imap_parser_deinit(&p);
		return;
	}
	a = cmd->args;
	CHECK(imap_arg_get_nstring(&a[0], &s, &len) && s == NULL, "nil nstring");
	CHECK(imap_arg_get_astring(&a[0], &s, &len) && strcmp(s, "nil") == 0, "nil astring");
	CHECK(!imap_arg_get_string(&a[0], &s, &len), "nil is no string");
	CHECK(imap_arg_atom_equals(&a[0], "NIL") && imap_arg_atom_equals(&a[1], "ATOM"), "atom_equals");
	CHECK(!imap_arg_atom_equals(&a[2], "str"), "string is no atom");
	CHECK(imap_arg_get_atom(&a[1], &s) && strcmp(s, "atom") == 0, "atom");
	CHECK(!imap_arg_get_atom(&a[2], &s), "string is no atom");
	CHECK(imap_arg_get_string(&a[2], &s, &len) && len == 3, "string");
	CHECK(imap_arg_get_astring(&a[3], &s, &len) && strcmp(s, "lit") == 0, "literal astring");
	CHECK(imap_arg_get_nstring(&a[3], &s, &len) && strcmp(s, "lit") == 0, "literal nstring");
	CHECK(imap_arg_get_list(&a[4], &items, &n) && n == 1 && imap_arg_atom_equals(&items[0], "l"), "list");
	CHECK(!imap_arg_get_list(&a[1], &items, &n), "atom is no list");
	CHECK(imap_arg_get_number(&a[5], &u) && u == 4294967295u, "number max");
	CHECK(!imap_arg_get_number(&a[6], &u), "number overflow");
	CHECK(imap_arg_get_number64(&a[7], &u64) && u64 == 9223372036854775807ull, "number64 max");
	CHECK(!imap_arg_get_number64(&a[8], &u64), "number64 overflow");
	CHECK(imap_arg_get_astring(&a[9], &s, &len) && strcmp(s, "BODY[]") == 0, "plain section is an astring");
	CHECK(!imap_arg_get_astring(&a[10], &s, &len), "spaced section is not an astring");
	CHECK(!imap_arg_atom_equals(&a[9], "BODY[]"), "section is not a plain atom");
	CHECK(imap_arg_get_astring(&a[11], &s, &len) && strcmp(s, "[x]y") == 0, "bracket mailbox");
	CHECK(!imap_arg_get_number(&a[12], &u) && !imap_arg_get_number64(&a[12], &u64), "12a is no number");
	CHECK(!imap_arg_get_number(&a[9], &u), "section is no number");
	imap_parser_deinit(&p);
}

/* Feeds in[0..cut) then in[cut..len) and logs each event with its offset. */
static void two_way(const char *in, size_t len, size_t cut, struct buf *log)
{
	struct imap_parser *p = imap_parser_init(NULL, 0);
	size_t pos = 0, used;
	size_t ends[2] = { cut, len };

	for (int k = 0; k < 2; k++) {
		for (;;) {
			int r = imap_parser_feed(p, in + pos, ends[k] - pos, &used);

			pos += used;
			if (r == IMAP_PARSE_NEED_MORE)
				break;
			buf_printf(log, "%d@%zu ", r, pos);
			if (r == IMAP_PARSE_COMMAND) {
				const struct imap_command *cmd = imap_parser_command(p);

				buf_printf(log, "%s:", cmd->name);
				dump_args(log, cmd->args, cmd->count);
				buf_addch(log, ' ');
			}
		}
	}
	imap_parser_deinit(&p);
}

/* Every cut of the input in two pieces gives the same events. */
static void test_all_two_way_splits(void)
{
	static const char in[] = "a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS ({4}\r\nFrom To)]<0.10>) "
		"(CHANGEDSINCE 5)\r\nb APPEND x ~{3+}\r\na\0c\r\nc X ) {2+}\r\nxy\r\nd NOOP\r\n";
	size_t len = sizeof(in) - 1;
	struct buf ref = BUF_INIT(0);

	two_way(in, len, len, &ref);
	CHECK(ref.data && strstr(ref.data, "APPEND:x ~{3+}\"a\\x00c\"0 ") && strstr(ref.data, "-1@") &&
	      strstr(ref.data, "NOOP:"), "two-way reference: %s", ref.data ? ref.data : "");
	for (size_t cut = 0; cut < len; cut++) {
		struct buf log = BUF_INIT(0);

		two_way(in, len, cut, &log);
		CHECK(log.len == ref.len && memcmp(log.data, ref.data, log.len) == 0,
		      "two-way split at %zu: %s", cut, log.data ? log.data : "");
		buf_release(&log);
	}
	buf_release(&ref);
}

/*
 * Announcing a literal reserves nothing until its bytes come: 100 clients
 * each announcing 50 MiB take well under 1 MiB each. (glibc's counters do
 * not see AddressSanitizer's allocator: under ASan this checks nothing.)
 */
static void test_literal_memory_on_demand(void)
{
	struct imap_parser *ps[100];
	struct mallinfo2 before = mallinfo2(), after;
	size_t used, grown;

	for (int i = 0; i < 100; i++) {
		ps[i] = imap_parser_init(NULL, 0);
		CHECK(imap_parser_feed(ps[i], "a APPEND x {52428800+}\r\nabc", 27, &used) == IMAP_PARSE_NEED_MORE,
		      "pending literal");
	}
	after = mallinfo2();
	grown = (after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd);
	CHECK(grown < 100 * 64 * 1024, "100 pending literals take %zu bytes", grown);
	for (int i = 0; i < 100; i++)
		imap_parser_deinit(&ps[i]);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/*
 * A parser trimmed after its command keeps no memory but its struct (an
 * IDLE session waits for hours), trimming inside a command changes nothing,
 * and a raw-line request outlives the trim. (The memory part needs glibc's
 * counters, which do not see AddressSanitizer's allocator.)
 */
static void test_trim(void)
{
	struct imap_parser *ps[100];
	const char *cmd = "a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)])\r\n";
	size_t used, n;
	const char *line;
	struct imap_parser *p;

	for (int i = 0; i < 100; i++)
		ps[i] = imap_parser_init(NULL, 0);
	for (int i = 0; i < 100; i++)
		CHECK(imap_parser_feed(ps[i], cmd, strlen(cmd), &used) == IMAP_PARSE_COMMAND, "trim: command");
#ifndef UNDER_ASAN
	{
		struct mallinfo2 before = mallinfo2(), after;
		size_t freed;

		for (int i = 0; i < 100; i++)
			imap_parser_trim(ps[i]);
		after = mallinfo2();
		freed = (before.uordblks + before.hblkhd) - (after.uordblks + after.hblkhd);
		CHECK(freed >= 100 * 4096, "trim gave back %zu bytes for 100 parsers", freed);
	}
#endif
	for (int i = 0; i < 100; i++)
		imap_parser_deinit(&ps[i]);

	p = imap_parser_init(NULL, 0);
	CHECK(imap_parser_feed(p, "b SELECT {5}\r\nIN", 16, &used) == IMAP_PARSE_CONTINUE, "trim: literal");
	imap_parser_trim(p);
	CHECK(imap_parser_feed(p, "IN", 2, &used) == IMAP_PARSE_NEED_MORE && used == 2, "trim: literal data");
	imap_parser_trim(p);
	CHECK(imap_parser_feed(p, "BOX\r\n", 5, &used) == IMAP_PARSE_COMMAND, "trim: end of literal");
	CHECK(strcmp(imap_parser_command(p)->tag, "b") == 0 && imap_parser_command(p)->count == 1 &&
	      strcmp(imap_parser_command(p)->args[0].str, "INBOX") == 0, "trim: command after trims");
	CHECK(imap_parser_read_line(p) == 0, "trim: read_line");
	imap_parser_trim(p);
	CHECK(imap_parser_feed(p, "DONE\r\n", 6, &used) == IMAP_PARSE_LINE, "trim: raw line request kept");
	line = imap_parser_line(p, &n);
	CHECK(n == 4 && memcmp(line, "DONE", 4) == 0, "trim: raw line");
	imap_parser_trim(p);
	CHECK(imap_parser_feed(p, "c NOOP\r\n", 8, &used) == IMAP_PARSE_COMMAND &&
	      strcmp(imap_parser_command(p)->name, "NOOP") == 0, "trim: command after the line");
	imap_parser_deinit(&p);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_offsets();
	test_read_line_busy();
	test_set_limits();
	test_literal_action_checks();
	test_big_literal();
	test_literal_memory_on_demand();
	test_rfc_append_bytes();
	test_getters();
	test_all_two_way_splits();
	test_trim();
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("imap-parser: %zu table cases, all passed\n", sizeof(cases) / sizeof(cases[0]));
	return 0;
}
