/*
 * Fuzz target for the IMAP command parser (imap/imap-parser.c), with a
 * round trip through the string writer (imap/imap-quote.c).
 *
 * Input: two header octets, then the bytes a client sends.
 *   octet 0, flags: 1 small limits (line 64, literal 16, depth 3, args 8),
 *                   2 LITERAL- (non-synchronizing literals up to 4096),
 *                   4 literal events, with the action from bits 8 and 16:
 *                     0 store, 1 stream, 2 reject, 3 store
 *   octet 1: seed of the split points of the second run
 *
 * The stream runs twice, fed all at once and in pseudo-random pieces (one
 * byte at a time when the seed is 0). After a command named AUTHENTICATE or
 * IDLE one raw line is read. Both runs must give the same events at the
 * same offsets and the same commands, and every command must respect the
 * limits: anything else aborts. Then the whole input, taken as a string, is
 * written as an astring and must parse back to the same bytes.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap-parser.h"
#include "imap/imap-quote.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(msg) do { fprintf(stderr, "fuzz-imap-parser: %s\n", (msg)); abort(); } while (0)

struct tally {
	unsigned args;
	uint64_t literals;
};

static void check_args(const struct imap_parser_limits *lim, const struct imap_arg *args, size_t count,
		       unsigned depth, struct tally *t, struct buf *log)
{
	if (depth > lim->max_depth)
		FAIL("nesting over the limit");
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];

		if (++t->args > lim->max_args)
			FAIL("arguments over the limit");
		if (i)
			buf_addch(log, ' ');
		switch (a->type) {
		case IMAP_ARG_LIST:
			buf_addch(log, '(');
			check_args(lim, a->list, a->count, depth + 1, t, log);
			buf_addch(log, ')');
			continue;
		case IMAP_ARG_LITERAL:
			if (a->flags & IMAP_ARG_STREAMED) {
				if (a->len != 0)
					FAIL("streamed literal with data");
			} else if (a->len != a->literal_size) {
				FAIL("literal length");
			}
			t->literals += a->literal_size;
			if (a->literal_size > lim->max_literal || t->literals > lim->max_literal)
				FAIL("literal over the limit");
			if (((a->flags & IMAP_ARG_HAS_NUL) != 0) != (memchr(a->str, '\0', a->len) != NULL))
				FAIL("HAS_NUL flag wrong");
			buf_printf(log, "{%llu}", (unsigned long long)a->literal_size);
			break;
		case IMAP_ARG_ATOM:
		case IMAP_ARG_NIL:
			/* a literal inside a section is part of the atom's text */
			if (a->len == 0 || (!(a->flags & IMAP_ARG_SECTION_SPACED) && memchr(a->str, '\0', a->len)))
				FAIL("empty atom or NUL in atom");
			if (a->len > lim->max_line)
				FAIL("atom over the line limit");
			if (a->flags & IMAP_ARG_SECTION) {
				if (a->name_len >= a->len || a->str[a->name_len] != '[')
					FAIL("section name_len");
				if (a->suffix < a->str || a->suffix > a->str + a->len)
					FAIL("suffix outside the atom");
				buf_addch(log, '[');
				check_args(lim, a->section, a->section_count, depth + 1, t, log);
				buf_addch(log, ']');
			}
			break;
		case IMAP_ARG_STRING:
			if (memchr(a->str, '\0', a->len))
				FAIL("NUL in quoted string");
			if (a->len > lim->max_line)
				FAIL("string over the line limit");
			break;
		}
		if (a->str[a->len] != '\0')
			FAIL("string not NUL-terminated");
		buf_printf(log, "%d:", (int)a->type);
		buf_add(log, a->str, a->len);
	}
}

static void set_limits(struct imap_parser_limits *lim, unsigned flags)
{
	imap_parser_limits_default(lim);
	if (flags & 1) {
		lim->max_line = 64;
		lim->max_literal = 16;
		lim->max_depth = 3;
		lim->max_args = 8;
	}
}

/* One run; the log gets every event, its offset and the commands. */
static void run(const uint8_t *in, size_t len, unsigned flags, unsigned seed, int split, struct buf *log)
{
	struct imap_parser_limits lim;
	struct imap_parser *p;
	unsigned pflags = 0;
	size_t pos = 0, end;
	unsigned zero = 0;
	uint32_t rnd = seed * 2654435761u + 1;
	struct buf data = BUF_INIT(0);

	set_limits(&lim, flags);
	if (flags & 2)
		pflags |= IMAP_PARSER_LITERAL_MINUS;
	if (flags & 4)
		pflags |= IMAP_PARSER_LITERAL_EVENTS;
	p = imap_parser_init(&lim, pflags);

#define PIECE() (!split ? len - pos : seed == 0 ? 1 : \
	(rnd = rnd * 1103515245u + 12345u, 1 + (rnd >> 16) % 64))
	end = pos + PIECE();
	if (end > len)
		end = len;
	for (;;) {
		size_t used;
		int r = imap_parser_feed(p, in + pos, end - pos, &used);

		if (used > end - pos)
			FAIL("consumed more than given");
		pos += used;
		if (r == IMAP_PARSE_NEED_MORE) {
			if (pos != end)
				FAIL("NEED_MORE with bytes left");
			if (pos == len)
				break;
			end = pos + PIECE();
			if (end > len)
				end = len;
			continue;
		}
		if (r == IMAP_PARSE_LITERAL_DATA) {
			size_t n;
			uint64_t left;
			const uint8_t *d = imap_parser_literal_chunk(p, &n, &left);

			if (d != in + pos - used || n != used || n == 0)
				FAIL("literal chunk is not the consumed bytes");
			buf_add(&data, d, n);
			if (left == 0) {
				buf_printf(log, "DATA %zu@%zu\n", data.len, pos);
				buf_reset(&data);
			}
			continue;
		}
		if (used == 0 && ++zero > 2)
			FAIL("events without progress");
		if (used)
			zero = 0;
		buf_printf(log, "%d@%zu ", r, pos);
		switch (r) {
		case IMAP_PARSE_COMMAND: {
			const struct imap_command *cmd = imap_parser_command(p);
			struct tally t = { 0, 0 };

			if (!cmd->tag[0] || !cmd->name[0])
				FAIL("empty tag or name");
			buf_printf(log, "%s %s ", cmd->tag, cmd->name);
			check_args(&lim, cmd->args, cmd->count, 0, &t, log);
			if (strcmp(cmd->name, "AUTHENTICATE") == 0 || strcmp(cmd->name, "IDLE") == 0) {
				if (imap_parser_read_line(p) != 0)
					FAIL("read_line refused after a command");
			}
			break;
		}
		case IMAP_PARSE_LINE: {
			size_t n;
			const char *l = imap_parser_line(p, &n);

			if (n > lim.max_line)
				FAIL("raw line over the limit");
			buf_add(log, l, n);
			break;
		}
		case IMAP_PARSE_LITERAL: {
			struct imap_literal_info info;
			static const enum imap_literal_action acts[4] = {
				IMAP_LITERAL_STORE, IMAP_LITERAL_STREAM, IMAP_LITERAL_REJECT, IMAP_LITERAL_STORE
			};
			const struct imap_command *part = imap_parser_partial(p);

			imap_parser_literal_info(p, &info);
			if (info.size > lim.max_literal)
				FAIL("literal event over the limit");
			buf_printf(log, "%llu %zu", (unsigned long long)info.size, part->count);
			/* streaming is refused inside a section: then it is stored */
			(void)imap_parser_literal_action(p, acts[(flags >> 3) & 3]);
			break;
		}
		case IMAP_PARSE_CONTINUE:
			break;
		case IMAP_PARSE_ERROR:
		case IMAP_PARSE_FATAL: {
			const char *msg, *tag = imap_parser_tag(p);

			if (imap_parser_error(p, &msg) == IMAP_PARSE_ERROR_NONE || !msg[0])
				FAIL("error without a code or message");
			buf_printf(log, "%s %s", tag ? tag : "*", msg);
			break;
		}
		default:
			FAIL("unknown result");
		}
		buf_addch(log, '\n');
		if (r == IMAP_PARSE_FATAL) {
			if (imap_parser_feed(p, "a", 1, &used) != IMAP_PARSE_FATAL || used != 0)
				FAIL("fatal not sticky");
			break;
		}
	}
	buf_release(&data);
	imap_parser_deinit(&p);
	if (p)
		FAIL("deinit did not clear the pointer");
}

/* The writer's astring reads back as the same bytes. */
static void quote_round_trip(const uint8_t *s, size_t len, unsigned flags)
{
	struct buf line = BUF_INIT(0);
	struct imap_parser *p = imap_parser_init(NULL, 0);
	unsigned qflags = IMAP_QUOTE_LITERAL8 | ((flags & 32) ? IMAP_QUOTE_UTF8 : 0);
	size_t pos = 0, used;
	const struct imap_command *cmd;
	const char *str;
	size_t n;
	int r;

	buf_adds(&line, "t X ");
	if (imap_write_astring(&line, (const char *)s, len, qflags) != 0)
		FAIL("astring not written");
	buf_adds(&line, "\r\n");
	while ((r = imap_parser_feed(p, line.data + pos, line.len - pos, &used)) == IMAP_PARSE_CONTINUE)
		pos += used;
	if (r != IMAP_PARSE_COMMAND)
		FAIL("written astring does not parse");
	cmd = imap_parser_command(p);
	if (cmd->count != 1 || !imap_arg_get_astring(&cmd->args[0], &str, &n) || n != len ||
	    (len && memcmp(str, s, len) != 0))
		FAIL("written astring reads back differently");
	imap_parser_deinit(&p);
	buf_release(&line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf a = BUF_INIT(0), b = BUF_INIT(0);
	unsigned flags, seed;

	if (size < 2)
		return 0;
	flags = data[0];
	seed = data[1];
	run(data + 2, size - 2, flags, seed, 0, &a);
	run(data + 2, size - 2, flags, seed, 1, &b);
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0)) {
		fprintf(stderr, "--- whole\n%s--- split\n%s---\n", a.data ? a.data : "", b.data ? b.data : "");
		FAIL("split run differs from the whole run");
	}
	buf_release(&a);
	buf_release(&b);
	if (size - 2 <= 4096)
		quote_round_trip(data + 2, size - 2, flags);
	return 0;
}
