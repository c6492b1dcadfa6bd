/*
 * Incremental IMAP command parser: one byte-driven state machine, with bulk
 * copies for literal data. See imap-parser.h for the contract.
 *
 * Ownership: the parser owns everything. Text being read goes to the token
 * buffers (tag, name, tok, raw), each capped at max_line; finished arguments
 * are copied into the command arena. Items of the lists still open sit in
 * one stack array (a parent never grows while a child is open), so at most
 * max_args items are held there; a list is copied into the arena when it
 * closes. The arena is released when the next command starts or at the next
 * feed after the command was handed out; imap_parser_trim() frees it whole,
 * with the item stack and the token buffers, for a session that waits.
 */

#include "imap/imap-parser.h"

#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/xalloc.h"

/* ---- the command arena ---- */

#define ARENA_CHUNK 4096
#define ARENA_ALIGN (alignof(max_align_t))

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	alignas(max_align_t) unsigned char data[];
};

struct arena {
	struct arena_chunk *head;   /* serves small allocations */
	struct arena_chunk *big;    /* one chunk per large allocation */
};

static void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk *c;
	size_t need = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);

	if (need < n)
		BUG("arena size overflow");
	if (need > ARENA_CHUNK / 4) {
		c = xmalloc(sizeof(*c) + need);
		c->used = c->cap = need;
		c->next = a->big;
		a->big = c;
		return c->data;
	}
	if (!a->head || a->head->cap - a->head->used < need) {
		c = xmalloc(sizeof(*c) + ARENA_CHUNK);
		c->used = 0;
		c->cap = ARENA_CHUNK;
		c->next = a->head;
		a->head = c;
	}
	c = a->head;
	c->used += need;
	return c->data + c->used - need;
}

static void arena_free_list(struct arena_chunk *c)
{
	while (c) {
		struct arena_chunk *next = c->next;

		free(c);
		c = next;
	}
}

/* Frees everything but keeps one small chunk for the next command. */
static void arena_clear(struct arena *a)
{
	arena_free_list(a->big);
	a->big = NULL;
	if (a->head) {
		arena_free_list(a->head->next);
		a->head->next = NULL;
		a->head->used = 0;
	}
}

/*
 * A block that grows while literal data arrives, so that announcing a large
 * literal reserves nothing until its bytes come; given to the arena whole.
 */
static struct arena_chunk *block_grow(struct arena_chunk *c, size_t need, size_t max)
{
	size_t cap = c ? c->cap : 0;

	if (need <= cap)
		return c;
	if (cap == 0)
		cap = 4096;
	while (cap < need)
		cap = cap > max / 2 ? max : cap * 2;
	if (cap > max)
		cap = max;
	c = xrealloc(c, sizeof(*c) + cap);
	c->cap = cap;
	return c;
}

static void arena_adopt(struct arena *a, struct arena_chunk *c)
{
	c->used = c->cap;
	c->next = a->big;
	a->big = c;
}

static char *arena_dup(struct arena *a, const void *data, size_t len)
{
	char *s = arena_alloc(a, len + 1);

	if (len)
		memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

/* ---- parser state ---- */

enum pstate {
	ST_LINE_START,
	ST_EMPTY_CR,      /* CR of an empty line */
	ST_RAW,
	ST_RAW_CR,
	ST_SKIP,          /* discarding the rest of a bad line */
	ST_SKIP_LITERAL,  /* ... and the data of a non-synchronizing literal in it */
	ST_LIT_DECIDE,    /* IMAP_PARSE_LITERAL returned, waiting for the action */
	ST_LIT_DATA,
	ST_LIT_STREAM,
	/* command states: their bytes count against max_line */
	ST_TAG,
	ST_NAME,
	ST_NAME_UID,
	ST_ARG_START,
	ST_AFTER_ARG,
	ST_ATOM,
	ST_TILDE,
	ST_ATOM_BRACKET,  /* after "[" with atom characters only so far */
	ST_ATOM_SUFFIX,   /* after the "]" that closed a section */
	ST_QUOTED,
	ST_QUOTED_ESC,
	ST_LIT_OPEN,
	ST_LIT_DIGITS,
	ST_LIT_PLUS,
	ST_LIT_CLOSE,
	ST_CR,            /* CR seen in a command state: LF must follow */
};

enum skstate { SK_TEXT, SK_OPEN, SK_DIGITS, SK_PLUS, SK_CLOSE };

enum frame_kind { FR_TOP, FR_LIST, FR_SECTION };

struct frame {
	enum frame_kind kind;
	size_t start;           /* its first item in p->items */
};

struct imap_parser {
	struct imap_parser_limits limits;
	unsigned flags;
	enum pstate state, cr_return;
	bool fatal;
	bool raw_requested;
	bool release_pending;

	struct arena arena;
	struct buf tag, name, tok, raw;
	bool have_tag;
	size_t line_used;
	uint64_t literal_total;
	unsigned nargs;

	struct frame *frames;   /* max_depth + 1; frames[0] is the top level */
	unsigned depth;
	bool section_open;
	struct imap_arg *items;
	size_t nitems, items_cap;

	/* the atom being read */
	struct buf *atom_buf;   /* &tok, or &raw once a section holds spaces */
	bool raw_active;        /* every command byte is appended to raw */
	size_t name_len;        /* offset of "[" */
	bool has_section, spaced;
	const struct imap_arg *section;
	size_t section_count;
	size_t suffix_off;

	bool str_8bit;

	/* the literal being read */
	uint64_t lit_size, lit_left;
	bool lit_nonsync, lit8;
	struct arena_chunk *lit_block;  /* the stored literal, growing; owned until finished */
	enum imap_literal_action lit_action;
	const unsigned char *chunk;
	size_t chunk_len;

	/* skipping a bad line */
	enum skstate sk;
	uint64_t sk_size;
	bool sk_nonsync, sk_plain;
	uint64_t skip_left;

	struct imap_command cmd;
	enum imap_parser_error error;
	const char *error_msg;
};

void imap_parser_limits_default(struct imap_parser_limits *l)
{
	l->max_line = IMAP_PARSER_DEFAULT_MAX_LINE;
	l->max_literal = IMAP_PARSER_DEFAULT_MAX_LITERAL;
	l->max_depth = IMAP_PARSER_DEFAULT_MAX_DEPTH;
	l->max_args = IMAP_PARSER_DEFAULT_MAX_ARGS;
}

struct imap_parser *imap_parser_init(const struct imap_parser_limits *limits, unsigned flags)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));

	if (limits)
		p->limits = *limits;
	else
		imap_parser_limits_default(&p->limits);
	if (p->limits.max_line < 16)
		p->limits.max_line = 16;
	if (p->limits.max_args < 1)
		p->limits.max_args = 1;
	/* a literal is allocated whole: keep its size representable */
	if (p->limits.max_literal > SIZE_MAX / 2)
		p->limits.max_literal = SIZE_MAX / 2;
	p->flags = flags;
	buf_init(&p->tag, p->limits.max_line);
	buf_init(&p->name, p->limits.max_line);
	buf_init(&p->tok, p->limits.max_line);
	buf_init(&p->raw, p->limits.max_line);
	p->frames = xcalloc((size_t)p->limits.max_depth + 1, sizeof(*p->frames));
	p->atom_buf = &p->tok;
	p->state = ST_LINE_START;
	return p;
}

void imap_parser_deinit(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (!p)
		return;
	*pp = NULL;
	free(p->lit_block);
	arena_clear(&p->arena);
	arena_free_list(p->arena.head);
	buf_release(&p->tag);
	buf_release(&p->name);
	buf_release(&p->tok);
	buf_release(&p->raw);
	free(p->frames);
	free(p->items);
	free(p);
}

void imap_parser_set_flags(struct imap_parser *p, unsigned flags)
{
	p->flags = flags;
}

int imap_parser_set_limits(struct imap_parser *p, size_t max_line, uint64_t max_literal, unsigned max_args)
{
	if (p->state != ST_LINE_START || p->raw_requested)
		return -EBUSY;
	imap_parser_trim(p);
	if (max_line < 16)
		max_line = 16;
	if (max_literal > SIZE_MAX / 2)
		max_literal = SIZE_MAX / 2;
	if (max_args < 1)
		max_args = 1;
	p->limits.max_line = max_line;
	p->limits.max_literal = max_literal;
	p->limits.max_args = max_args;   /* trimmed: the item stack is empty */
	/* trimmed: the text buffers hold nothing, only their maximum moves */
	buf_init(&p->tag, max_line);
	buf_init(&p->name, max_line);
	buf_init(&p->tok, max_line);
	buf_init(&p->raw, max_line);
	return 0;
}

/* Forgets the command being built; its arena goes at the next feed. */
static void drop_command(struct imap_parser *p)
{
	free(p->lit_block);
	p->lit_block = NULL;
	p->depth = 0;
	p->frames[0].kind = FR_TOP;
	p->frames[0].start = 0;
	p->section_open = false;
	p->nitems = 0;
	buf_reset(&p->tok);
	buf_reset(&p->raw);
	p->raw_active = false;
	p->atom_buf = &p->tok;
	p->has_section = p->spaced = false;
	p->section = NULL;
	p->section_count = 0;
	p->release_pending = true;
	/* keep the stack array small between commands */
	if (p->items_cap > 64) {
		free(p->items);
		p->items = NULL;
		p->items_cap = 0;
	}
}

static void begin_command(struct imap_parser *p)
{
	if (p->release_pending) {
		arena_clear(&p->arena);
		p->release_pending = false;
	}
	drop_command(p);
	p->release_pending = false;
	buf_reset(&p->tag);
	buf_reset(&p->name);
	p->have_tag = false;
	p->line_used = 0;
	p->literal_total = 0;
	p->nargs = 0;
}

/* ---- errors ---- */

static void skip_char(struct imap_parser *p, unsigned char c);

static uint64_t nonsync_limit(const struct imap_parser *p)
{
	uint64_t limit = p->limits.max_literal;

	if ((p->flags & IMAP_PARSER_LITERAL_MINUS) && limit > IMAP_LITERAL_MINUS_MAX)
		limit = IMAP_LITERAL_MINUS_MAX;
	return limit;
}

static int fatal(struct imap_parser *p, enum imap_parser_error e, const char *msg)
{
	p->error = e;
	p->error_msg = msg;
	p->fatal = true;
	drop_command(p);
	return IMAP_PARSE_FATAL;
}

/*
 * A recoverable error at byte c. When c is the LF that ends the line, the
 * next byte starts a new command, unless that LF ended the header of a
 * non-synchronizing literal, whose data the client sends anyway: it is
 * skipped, then the rest of its line. Otherwise the rest of the line is
 * skipped; the skip scanner starts in the literal-header state the parser
 * was in, so that a header cut by the error is still seen.
 */
static int fail(struct imap_parser *p, enum imap_parser_error e, const char *msg, unsigned char c)
{
	enum pstate st = p->state == ST_CR ? p->cr_return : p->state;

	p->error = e;
	p->error_msg = msg;
	drop_command(p);
	p->sk_plain = st == ST_RAW || st == ST_RAW_CR;
	if (c == '\n') {
		if (st == ST_LIT_CLOSE && p->lit_nonsync) {
			if (p->lit_size > nonsync_limit(p))
				return fatal(p, IMAP_PARSE_ERROR_LITERAL_TOO_BIG, "non-synchronizing literal too big");
			p->skip_left = p->lit_size;
			p->sk = SK_TEXT;
			p->state = p->skip_left ? ST_SKIP_LITERAL : ST_SKIP;
		} else {
			p->state = ST_LINE_START;
		}
		return IMAP_PARSE_ERROR;
	}
	p->sk = SK_TEXT;
	p->sk_nonsync = false;
	switch (st) {
	case ST_LIT_OPEN:
		p->sk = SK_OPEN;
		p->sk_size = 0;
		break;
	case ST_LIT_DIGITS:
		p->sk = SK_DIGITS;
		p->sk_size = p->lit_size;
		break;
	case ST_LIT_PLUS:
		p->sk = SK_PLUS;
		p->sk_size = p->lit_size;
		p->sk_nonsync = true;
		break;
	case ST_LIT_CLOSE:
		p->sk = SK_CLOSE;
		p->sk_size = p->lit_size;
		p->sk_nonsync = p->lit_nonsync;
		break;
	default:
		break;
	}
	p->state = ST_SKIP;
	/* the failing byte belongs to the skipped text, unless it was the
	 * one that made a line too long before being looked at */
	skip_char(p, c);
	return IMAP_PARSE_ERROR;
}

/* An error while literal data is arriving: skip the rest of it, then the line. */
static int fail_in_literal(struct imap_parser *p, enum imap_parser_error e, const char *msg)
{
	p->error = e;
	p->error_msg = msg;
	drop_command(p);
	p->sk = SK_TEXT;
	p->sk_plain = false;
	p->skip_left = p->lit_left;
	p->state = p->skip_left ? ST_SKIP_LITERAL : ST_SKIP;
	return IMAP_PARSE_ERROR;
}

#define BAD(p, msg, c) fail((p), IMAP_PARSE_ERROR_BAD_SYNTAX, (msg), (c))
#define TOO_LONG(p, c) fail((p), IMAP_PARSE_ERROR_LINE_TOO_LONG, "command line too long", (c))

/* ---- the skip scanner ---- */

static void skip_char(struct imap_parser *p, unsigned char c)
{
	if (c == '{') {
		p->sk = SK_OPEN;
		p->sk_size = 0;
		p->sk_nonsync = false;
		return;
	}
	if (c == '\r')
		return;
	switch (p->sk) {
	case SK_OPEN:
	case SK_DIGITS:
		if (c >= '0' && c <= '9') {
			uint64_t d = (uint64_t)(c - '0');

			p->sk_size = p->sk_size > (UINT64_MAX - d) / 10 ? UINT64_MAX : p->sk_size * 10 + d;
			p->sk = SK_DIGITS;
		} else if (p->sk == SK_DIGITS && c == '+') {
			p->sk = SK_PLUS;
			p->sk_nonsync = true;
		} else if (p->sk == SK_DIGITS && c == '}') {
			p->sk = SK_CLOSE;
		} else {
			p->sk = SK_TEXT;
		}
		break;
	case SK_PLUS:
		p->sk = c == '}' ? SK_CLOSE : SK_TEXT;
		break;
	default:
		p->sk = SK_TEXT;
		break;
	}
}

static int skip_step(struct imap_parser *p, unsigned char c)
{
	if (c != '\n') {
		if (!p->sk_plain)
			skip_char(p, c);
		return IMAP_PARSE_NEED_MORE;
	}
	if (!p->sk_plain && p->sk == SK_CLOSE && p->sk_nonsync) {
		/* the client sends this literal without waiting */
		if (p->sk_size > nonsync_limit(p))
			return fatal(p, IMAP_PARSE_ERROR_LITERAL_TOO_BIG, "non-synchronizing literal too big");
		p->sk = SK_TEXT;
		p->skip_left = p->sk_size;
		p->state = p->skip_left ? ST_SKIP_LITERAL : ST_SKIP;
		return IMAP_PARSE_NEED_MORE;
	}
	/* a synchronizing literal here is never sent: the line ends */
	p->state = ST_LINE_START;
	return IMAP_PARSE_NEED_MORE;
}

/* ---- building arguments ---- */

static bool is_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

/* RFC 3501: tag = 1*<any ASTRING-CHAR except "+"> */
static bool is_tag_char(unsigned char c)
{
	return is_atom_char(c) && c != '%' && c != '*' && c != '\\' && c != '+';
}

static bool is_name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '_' || c == '.';
}

static int begin_arg(struct imap_parser *p, unsigned char c)
{
	if (p->nargs >= p->limits.max_args)
		return fail(p, IMAP_PARSE_ERROR_TOO_MANY_ARGS, "too many arguments", c);
	p->nargs++;
	return 0;
}

static void push_item(struct imap_parser *p, const struct imap_arg *a)
{
	if (p->nitems == p->items_cap) {
		size_t cap = p->items_cap ? p->items_cap * 2 : 16;

		/* never more than the arguments counted by begin_arg() */
		if (cap > (size_t)p->limits.max_args + 1)
			cap = (size_t)p->limits.max_args + 1;
		if (cap <= p->nitems)
			BUG("more items than arguments");
		p->items = xrealloc(p->items, cap * sizeof(*p->items));
		p->items_cap = cap;
	}
	p->items[p->nitems++] = *a;
}

static int open_frame(struct imap_parser *p, enum frame_kind kind, unsigned char c)
{
	if (p->depth >= p->limits.max_depth)
		return fail(p, IMAP_PARSE_ERROR_TOO_DEEP, "lists nested too deeply", c);
	p->depth++;
	p->frames[p->depth].kind = kind;
	p->frames[p->depth].start = p->nitems;
	if (kind == FR_SECTION)
		p->section_open = true;
	return 0;
}

/* Moves the items of the innermost frame into the arena. */
static const struct imap_arg *pop_frame(struct imap_parser *p, size_t *count_r)
{
	struct frame *f = &p->frames[p->depth];
	size_t n = p->nitems - f->start;
	struct imap_arg *arr = NULL;

	if (n) {
		arr = arena_alloc(&p->arena, n * sizeof(*arr));
		memcpy(arr, p->items + f->start, n * sizeof(*arr));
	}
	p->nitems = f->start;
	if (f->kind == FR_SECTION)
		p->section_open = false;
	p->depth--;
	*count_r = n;
	return arr;
}

static void close_list(struct imap_parser *p)
{
	struct imap_arg a = { .type = IMAP_ARG_LIST, .str = "" };

	a.list = pop_frame(p, &a.count);
	push_item(p, &a);
	p->state = ST_AFTER_ARG;
}

/* The "]" of a spaced section: the owning atom goes on with its suffix. */
static void close_section(struct imap_parser *p)
{
	p->section = pop_frame(p, &p->section_count);
	p->has_section = true;
	p->spaced = true;
	p->atom_buf = &p->raw;
	p->suffix_off = p->raw.len;     /* raw already holds the "]" */
	p->state = ST_ATOM_SUFFIX;
}

static bool parse_u32(const char *s, size_t len, uint32_t *n_r)
{
	uint64_t n = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(s[i] - '0');
		if (n > UINT32_MAX)
			return false;
	}
	*n_r = (uint32_t)n;
	return true;
}

/* "<" number "." nz-number ">" (RFC 3501 fetch-att) */
static bool parse_partial(const char *s, uint32_t *start_r, uint32_t *len_r)
{
	size_t n = strlen(s);
	const char *dot;

	if (n < 5 || s[0] != '<' || s[n - 1] != '>')
		return false;
	dot = memchr(s, '.', n);
	if (!dot)
		return false;
	if (!parse_u32(s + 1, (size_t)(dot - s - 1), start_r) ||
	    !parse_u32(dot + 1, (size_t)(s + n - 1 - dot - 1), len_r))
		return false;
	return *len_r > 0;
}

static void finish_atom(struct imap_parser *p)
{
	struct buf *b = p->atom_buf;
	struct imap_arg a = { .type = IMAP_ARG_ATOM };
	size_t len = b->len;
	char *s;

	if (b == &p->raw) {
		/* raw holds the byte that ended the atom too */
		if (len && (b->data[len - 1] == '\n' || b->data[len - 1] == ' ' || b->data[len - 1] == ')')) {
			if (b->data[--len] == '\n' && len && b->data[len - 1] == '\r')
				len--;
		}
	}
	s = arena_dup(&p->arena, b->data ? b->data : "", len);
	a.str = s;
	a.len = len;
	a.suffix = "";
	if (p->has_section) {
		a.flags |= IMAP_ARG_SECTION;
		if (p->spaced)
			a.flags |= IMAP_ARG_SECTION_SPACED;
		a.name_len = p->name_len;
		a.section = p->section;
		a.section_count = p->section_count;
		a.suffix = s + p->suffix_off;
		if (parse_partial(a.suffix, &a.partial_start, &a.partial_len))
			a.flags |= IMAP_ARG_PARTIAL;
	} else if (len == 3 && strncasecmp(s, "NIL", 3) == 0) {
		a.type = IMAP_ARG_NIL;
	}
	push_item(p, &a);
	buf_reset(&p->tok);
	if (b == &p->raw || p->has_section) {
		/* the atom that owned a section, not an atom inside one */
		buf_reset(&p->raw);
		p->raw_active = false;
		p->atom_buf = &p->tok;
		p->has_section = p->spaced = false;
		p->section = NULL;
		p->section_count = 0;
	}
	p->state = ST_AFTER_ARG;
}

static void finish_string(struct imap_parser *p)
{
	struct imap_arg a = { .type = IMAP_ARG_STRING, .suffix = "" };

	a.str = arena_dup(&p->arena, p->tok.data ? p->tok.data : "", p->tok.len);
	a.len = p->tok.len;
	a.literal_size = 0;
	if (p->str_8bit)
		a.flags |= IMAP_ARG_8BIT;
	push_item(p, &a);
	buf_reset(&p->tok);
	p->state = ST_AFTER_ARG;
}

static void finish_literal(struct imap_parser *p)
{
	struct imap_arg a = { .type = IMAP_ARG_LITERAL, .suffix = "" };

	a.literal_size = p->lit_size;
	if (p->lit_nonsync)
		a.flags |= IMAP_ARG_NONSYNC;
	if (p->lit8)
		a.flags |= IMAP_ARG_LITERAL8;
	if (p->lit_action == IMAP_LITERAL_STREAM) {
		a.flags |= IMAP_ARG_STREAMED;
		a.str = "";
		a.len = 0;
	} else {
		char *d;

		p->lit_block = block_grow(p->lit_block, (size_t)p->lit_size + 1, (size_t)p->lit_size + 1);
		d = (char *)p->lit_block->data;
		d[p->lit_size] = '\0';
		arena_adopt(&p->arena, p->lit_block);
		p->lit_block = NULL;
		a.str = d;
		a.len = (size_t)p->lit_size;
		if (memchr(a.str, '\0', a.len))
			a.flags |= IMAP_ARG_HAS_NUL;
		for (size_t i = 0; i < a.len; i++) {
			if ((unsigned char)a.str[i] >= 0x80) {
				a.flags |= IMAP_ARG_8BIT;
				break;
			}
		}
	}
	push_item(p, &a);
	p->state = ST_AFTER_ARG;
}

static int complete(struct imap_parser *p)
{
	size_t n = p->nitems;
	struct imap_arg *arr = NULL;

	if (n) {
		arr = arena_alloc(&p->arena, n * sizeof(*arr));
		memcpy(arr, p->items, n * sizeof(*arr));
	}
	p->cmd.tag = p->tag.data;
	p->cmd.name = p->name.data;
	p->cmd.args = arr;
	p->cmd.count = n;
	p->nitems = 0;
	p->line_used = 0;
	p->release_pending = true;
	p->state = ST_LINE_START;
	if (p->items_cap > 64) {
		free(p->items);
		p->items = NULL;
		p->items_cap = 0;
	}
	return IMAP_PARSE_COMMAND;
}

/* The LF that ends the arguments. */
static int end_of_args(struct imap_parser *p, unsigned char c)
{
	if (p->depth > 0)
		return BAD(p, p->section_open ? "missing ] at end of line" : "missing ) at end of line", c);
	return complete(p);
}

/* ---- literals ---- */

static int start_literal(struct imap_parser *p)
{
	bool sync = !p->lit_nonsync;

	if (p->lit_action == IMAP_LITERAL_REJECT) {
		drop_command(p);
		if (sync) {
			p->state = ST_LINE_START;
		} else {
			p->sk = SK_TEXT;
			p->sk_plain = false;
			p->skip_left = p->lit_size;
			p->state = p->skip_left ? ST_SKIP_LITERAL : ST_SKIP;
		}
		return IMAP_PARSE_NEED_MORE;
	}
	p->lit_left = p->lit_size;
	if (p->lit_action == IMAP_LITERAL_STREAM) {
		p->state = ST_LIT_STREAM;
	} else {
		free(p->lit_block);
		p->lit_block = NULL;
		p->state = ST_LIT_DATA;
	}
	if (p->lit_left == 0)
		finish_literal(p);
	return sync ? IMAP_PARSE_CONTINUE : IMAP_PARSE_NEED_MORE;
}

/* The LF after "{n}" or "{n+}". */
static int literal_header(struct imap_parser *p, unsigned char c)
{
	uint64_t max = p->limits.max_literal;
	bool too_big = p->lit_size > max || p->lit_size > max - p->literal_total;
	int r;

	if (p->lit_nonsync) {
		if (too_big || p->lit_size > nonsync_limit(p))
			return fatal(p, IMAP_PARSE_ERROR_LITERAL_TOO_BIG, "non-synchronizing literal too big");
	} else if (too_big) {
		/* before the client sends it: it will not */
		return fail(p, IMAP_PARSE_ERROR_LITERAL_TOO_BIG, "literal too big", c);
	}
	if ((r = begin_arg(p, c)) != 0)
		return r;
	p->literal_total += p->lit_size;
	p->lit_action = IMAP_LITERAL_STORE;
	if (p->flags & IMAP_PARSER_LITERAL_EVENTS) {
		p->state = ST_LIT_DECIDE;
		return IMAP_PARSE_LITERAL;
	}
	return start_literal(p);
}

/* ---- the byte machine ---- */

static int dispatch(struct imap_parser *p, unsigned char c);

/* The byte after an argument, or the byte that ended an atom. */
static int after_arg(struct imap_parser *p, unsigned char c)
{
	p->state = ST_AFTER_ARG;
	switch (c) {
	case ' ':
		p->state = ST_ARG_START;
		return 0;
	case '\n':
		return end_of_args(p, c);
	case ')':
		if (p->frames[p->depth].kind != FR_LIST)
			return BAD(p, "unexpected )", c);
		close_list(p);
		return 0;
	case ']':
		if (p->frames[p->depth].kind != FR_SECTION)
			return BAD(p, "unexpected ]", c);
		close_section(p);
		return 0;
	default:
		return BAD(p, "missing space between arguments", c);
	}
}

static int atom_add(struct imap_parser *p, unsigned char c)
{
	if (buf_addch(&p->tok, (char)c) < 0)
		return TOO_LONG(p, c);
	return 0;
}

/* A "[" section that so far held atom characters only meets a space or a
 * list, string or literal: from now on the bracket text is parsed as
 * arguments and the whole atom is recorded in raw. */
static int section_to_spaced(struct imap_parser *p, unsigned char c)
{
	size_t content = p->tok.len - p->name_len - 1;
	int r;

	if (c != ' ' && content > 0)
		return BAD(p, "missing space in section", c);
	if ((r = open_frame(p, FR_SECTION, c)) != 0)
		return r;
	buf_reset(&p->raw);
	if (buf_add(&p->raw, p->tok.data, p->tok.len) < 0 || buf_addch(&p->raw, (char)c) < 0)
		return TOO_LONG(p, c);
	p->raw_active = true;
	if (content > 0) {
		struct imap_arg a = { .type = IMAP_ARG_ATOM, .suffix = "" };

		if ((r = begin_arg(p, c)) != 0)
			return r;
		a.str = arena_dup(&p->arena, p->tok.data + p->name_len + 1, content);
		a.len = content;
		push_item(p, &a);
	}
	buf_reset(&p->tok);
	p->state = ST_ARG_START;
	if (c == ' ')
		return 0;
	return dispatch(p, c);
}

static int dispatch(struct imap_parser *p, unsigned char c)
{
	int r;

	switch (p->state) {
	case ST_TAG:
		if (c == ' ' || c == '\n') {
			if (p->tag.len == 0)
				return BAD(p, "missing tag", c);
			p->have_tag = true;
			if (c == '\n')
				return BAD(p, "missing command name", c);
			p->state = ST_NAME;
			return 0;
		}
		if (!is_tag_char(c))
			return BAD(p, "invalid character in tag", c);
		if (buf_addch(&p->tag, (char)c) < 0)
			return TOO_LONG(p, c);
		return 0;

	case ST_NAME:
	case ST_NAME_UID:
		if (is_name_char(c)) {
			if (p->name.len >= 64)
				return BAD(p, "command name too long", c);
			return buf_addch(&p->name, (char)(c >= 'a' && c <= 'z' ? c - 32 : c)) < 0 ? TOO_LONG(p, c) : 0;
		}
		if (c != ' ' && c != '\n')
			return BAD(p, "invalid character in command name", c);
		if (p->name.len == 0)
			return BAD(p, "missing command name", c);
		if (p->state == ST_NAME && strcmp(p->name.data, "UID") == 0) {
			if (c == '\n')
				return BAD(p, "missing command after UID", c);
			if (buf_addch(&p->name, ' ') < 0)
				return TOO_LONG(p, c);
			p->state = ST_NAME_UID;
			return 0;
		}
		if (p->state == ST_NAME_UID && p->name.len == 4)
			return BAD(p, "missing command after UID", c);
		if (c == '\n')
			return complete(p);
		p->state = ST_ARG_START;
		return 0;

	case ST_ARG_START:
		switch (c) {
		case ' ':
			return 0;       /* extra spaces are tolerated */
		case '\n':
			return end_of_args(p, c);
		case '(':
			if ((r = begin_arg(p, c)) != 0 || (r = open_frame(p, FR_LIST, c)) != 0)
				return r;
			return 0;
		case ')':
			if (p->frames[p->depth].kind != FR_LIST)
				return BAD(p, "unexpected )", c);
			close_list(p);
			return 0;
		case '"':
			if ((r = begin_arg(p, c)) != 0)
				return r;
			buf_reset(&p->tok);
			p->str_8bit = false;
			p->state = ST_QUOTED;
			return 0;
		case '{':
			/* the argument is counted at the end of the header, so that
			 * an error there still sees the whole header */
			p->lit8 = false;
			p->state = ST_LIT_OPEN;
			return 0;
		case '~':
			p->state = ST_TILDE;
			return 0;
		case ']':
			if (p->section_open) {
				if (p->frames[p->depth].kind != FR_SECTION)
					return BAD(p, "unexpected ]", c);
				close_section(p);
				return 0;
			}
			break;
		default:
			break;
		}
		if (!is_atom_char(c))
			return BAD(p, c >= 0x80 ? "8-bit character in atom" : "invalid character", c);
		if ((r = begin_arg(p, c)) != 0)
			return r;
		buf_reset(&p->tok);
		p->state = ST_ATOM;
		return dispatch(p, c);

	case ST_TILDE:
		if (c == '{') {
			p->lit8 = true;
			p->state = ST_LIT_OPEN;
			return 0;
		}
		/* "~peter/mail" is an atom */
		if ((r = begin_arg(p, c)) != 0)
			return r;
		buf_reset(&p->tok);
		if ((r = atom_add(p, '~')) != 0)
			return r;
		p->state = ST_ATOM;
		return dispatch(p, c);

	case ST_ATOM:
		if (c == ' ' || c == '\n' || c == ')' || (c == ']' && p->section_open)) {
			finish_atom(p);
			return after_arg(p, c);
		}
		if (c == '[' && !p->section_open) {
			p->name_len = p->tok.len;
			p->state = ST_ATOM_BRACKET;
			return atom_add(p, c);
		}
		if (!is_atom_char(c))
			return BAD(p, c >= 0x80 ? "8-bit character in atom" : "invalid character in atom", c);
		return atom_add(p, c);

	case ST_ATOM_BRACKET:
		if (c == ']') {
			size_t content = p->tok.len - p->name_len - 1;
			struct imap_arg *a = NULL;

			/* A section is a level of nesting, spaced or not. */
			if (p->depth >= p->limits.max_depth)
				return fail(p, IMAP_PARSE_ERROR_TOO_DEEP, "lists nested too deeply", c);

			if (content > 0) {
				if ((r = begin_arg(p, c)) != 0)
					return r;
				a = arena_alloc(&p->arena, sizeof(*a));
				memset(a, 0, sizeof(*a));
				a->type = IMAP_ARG_ATOM;
				a->str = arena_dup(&p->arena, p->tok.data + p->name_len + 1, content);
				a->len = content;
				a->suffix = "";
			}
			p->section = a;
			p->section_count = a ? 1 : 0;
			p->has_section = true;
			p->spaced = false;
			if ((r = atom_add(p, c)) != 0)
				return r;
			p->suffix_off = p->tok.len;
			p->state = ST_ATOM_SUFFIX;
			return 0;
		}
		if (c == ' ' || c == '(' || c == '"' || c == '{')
			return section_to_spaced(p, c);
		if (c == '\n' || c == ')') {
			/* "foo[bar": an atom with a bracket, not a section */
			finish_atom(p);
			return after_arg(p, c);
		}
		if (!is_atom_char(c))
			return BAD(p, c >= 0x80 ? "8-bit character in atom" : "invalid character in atom", c);
		return atom_add(p, c);

	case ST_ATOM_SUFFIX:
		if (c == ' ' || c == '\n' || c == ')') {
			finish_atom(p);
			return after_arg(p, c);
		}
		if (!is_atom_char(c))
			return BAD(p, c >= 0x80 ? "8-bit character in atom" : "invalid character in atom", c);
		/* raw records it by itself */
		return p->atom_buf == &p->tok ? atom_add(p, c) : 0;

	case ST_AFTER_ARG:
		return after_arg(p, c);

	case ST_QUOTED:
		switch (c) {
		case '"':
			finish_string(p);
			return 0;
		case '\\':
			p->state = ST_QUOTED_ESC;
			return 0;
		case '\n':
			return BAD(p, "unterminated quoted string", c);
		case '\0':
			return BAD(p, "NUL in quoted string", c);
		default:
			if (c >= 0x80)
				p->str_8bit = true;
			return atom_add(p, c);
		}

	case ST_QUOTED_ESC:
		if (c != '"' && c != '\\')
			return BAD(p, c == '\n' ? "unterminated quoted string" : "invalid escape in quoted string", c);
		p->state = ST_QUOTED;
		return atom_add(p, c);

	case ST_LIT_OPEN:
	case ST_LIT_DIGITS:
		if (c >= '0' && c <= '9') {
			uint64_t d = (uint64_t)(c - '0');

			if (p->state == ST_LIT_OPEN)
				p->lit_size = 0;
			p->lit_size = p->lit_size > (UINT64_MAX - d) / 10 ? UINT64_MAX : p->lit_size * 10 + d;
			p->state = ST_LIT_DIGITS;
			return 0;
		}
		if (p->state == ST_LIT_DIGITS && c == '+') {
			p->lit_nonsync = true;
			p->state = ST_LIT_PLUS;
			return 0;
		}
		if (p->state == ST_LIT_DIGITS && c == '}') {
			p->lit_nonsync = false;
			p->state = ST_LIT_CLOSE;
			return 0;
		}
		if (p->state == ST_LIT_DIGITS && c == '-')
			return BAD(p, "invalid literal: LITERAL- uses {n+}", c);
		return BAD(p, "invalid literal", c);

	case ST_LIT_PLUS:
		if (c != '}')
			return BAD(p, "invalid literal", c);
		p->state = ST_LIT_CLOSE;
		return 0;

	case ST_LIT_CLOSE:
		if (c != '\n')
			return BAD(p, "missing line end after literal", c);
		return literal_header(p, c);

	case ST_CR:
		if (c != '\n')
			return BAD(p, "CR not followed by LF", c);
		p->state = p->cr_return;
		return dispatch(p, c);

	default:
		BUG("bad parser state");
	}
}

static int step_raw(struct imap_parser *p, unsigned char c)
{
	if (p->state == ST_RAW_CR) {
		if (c == '\n') {
			p->state = ST_LINE_START;
			p->release_pending = true;
			return IMAP_PARSE_LINE;
		}
		if (buf_addch(&p->tok, '\r') < 0)
			return fail(p, IMAP_PARSE_ERROR_LINE_TOO_LONG, "line too long", c);
		if (c == '\r')
			return 0;
		p->state = ST_RAW;
	}
	if (c == '\n') {
		p->state = ST_LINE_START;
		p->release_pending = true;
		return IMAP_PARSE_LINE;
	}
	if (c == '\r') {
		p->state = ST_RAW_CR;
		return 0;
	}
	if (buf_addch(&p->tok, (char)c) < 0)
		return fail(p, IMAP_PARSE_ERROR_LINE_TOO_LONG, "line too long", c);
	return 0;
}

static int step(struct imap_parser *p, unsigned char c)
{
	switch (p->state) {
	case ST_LINE_START:
		if (p->raw_requested) {
			p->raw_requested = false;
			begin_command(p);
			p->state = ST_RAW;
			return step_raw(p, c);
		}
		if (c == '\n')
			return 0;       /* empty lines are ignored */
		if (c == '\r') {
			p->state = ST_EMPTY_CR;
			return 0;
		}
		begin_command(p);
		p->state = ST_TAG;
		break;
	case ST_EMPTY_CR:
		if (c == '\n') {
			p->state = ST_LINE_START;
			return 0;
		}
		begin_command(p);
		p->state = ST_SKIP;
		p->sk_plain = true;
		p->error = IMAP_PARSE_ERROR_BAD_SYNTAX;
		p->error_msg = "CR not followed by LF";
		return IMAP_PARSE_ERROR;
	case ST_RAW:
	case ST_RAW_CR:
		return step_raw(p, c);
	case ST_SKIP:
		return skip_step(p, c);
	default:
		break;
	}
	if (++p->line_used > p->limits.max_line)
		return TOO_LONG(p, c);
	if (p->raw_active && buf_addch(&p->raw, (char)c) < 0)
		return TOO_LONG(p, c);
	if (c == '\r' && p->state != ST_CR) {
		p->cr_return = p->state;
		p->state = ST_CR;
		return 0;
	}
	return dispatch(p, c);
}

int imap_parser_feed(struct imap_parser *p, const void *data, size_t len, size_t *consumed_r)
{
	const unsigned char *s = data;
	size_t pos = 0;
	int r;

	*consumed_r = 0;
	if (p->fatal)
		return IMAP_PARSE_FATAL;
	if (p->release_pending) {
		/* nothing handed out before this call is used any more */
		arena_clear(&p->arena);
		p->release_pending = false;
	}
	p->error = IMAP_PARSE_ERROR_NONE;
	p->error_msg = NULL;
	p->chunk = NULL;
	p->chunk_len = 0;
	if (p->state == ST_LIT_DECIDE) {
		r = start_literal(p);
		if (r != IMAP_PARSE_NEED_MORE)
			return r;
	}
	while (pos < len) {
		size_t n;

		switch (p->state) {
		case ST_LIT_DATA:
			n = len - pos < p->lit_left ? len - pos : (size_t)p->lit_left;
			if (p->raw_active && n > buf_room(&p->raw)) {
				/* the atom's text outgrows the line: the error is at
				 * the first byte that does not fit, whatever the cut */
				n = buf_room(&p->raw) + 1;
				pos += n;
				p->lit_left -= n;
				*consumed_r = pos;
				return fail_in_literal(p, IMAP_PARSE_ERROR_LINE_TOO_LONG, "command line too long");
			}
			{
				size_t have = (size_t)(p->lit_size - p->lit_left);

				p->lit_block = block_grow(p->lit_block, have + n + 1, (size_t)p->lit_size + 1);
				memcpy(p->lit_block->data + have, s + pos, n);
			}
			pos += n;
			p->lit_left -= n;
			if (p->raw_active && buf_add(&p->raw, s + pos - n, n) < 0)
				BUG("raw text room");
			if (p->lit_left == 0)
				finish_literal(p);
			continue;
		case ST_LIT_STREAM:
			n = len - pos < p->lit_left ? len - pos : (size_t)p->lit_left;
			p->chunk = s + pos;
			p->chunk_len = n;
			pos += n;
			p->lit_left -= n;
			if (p->lit_left == 0)
				finish_literal(p);
			*consumed_r = pos;
			return IMAP_PARSE_LITERAL_DATA;
		case ST_SKIP_LITERAL:
			n = len - pos < p->skip_left ? len - pos : (size_t)p->skip_left;
			pos += n;
			p->skip_left -= n;
			if (p->skip_left == 0) {
				p->state = ST_SKIP;
				p->sk = SK_TEXT;
			}
			continue;
		case ST_LIT_DECIDE:
			BUG("literal action pending");
		default:
			r = step(p, s[pos++]);
			if (r != IMAP_PARSE_NEED_MORE) {
				*consumed_r = pos;
				return r;
			}
		}
	}
	*consumed_r = pos;
	return IMAP_PARSE_NEED_MORE;
}

const struct imap_command *imap_parser_command(const struct imap_parser *p)
{
	return &p->cmd;
}

const struct imap_command *imap_parser_partial(struct imap_parser *p)
{
	p->cmd.tag = p->tag.data ? p->tag.data : "";
	p->cmd.name = p->name.data ? p->name.data : "";
	p->cmd.args = p->items;
	p->cmd.count = p->depth > 0 ? p->frames[1].start : p->nitems;
	return &p->cmd;
}

enum imap_parser_error imap_parser_error(const struct imap_parser *p, const char **msg_r)
{
	if (msg_r)
		*msg_r = p->error_msg ? p->error_msg : "";
	return p->error;
}

const char *imap_parser_tag(const struct imap_parser *p)
{
	return p->have_tag ? p->tag.data : NULL;
}

const char *imap_parser_line(const struct imap_parser *p, size_t *len_r)
{
	*len_r = p->tok.len;
	return p->tok.data ? p->tok.data : "";
}

int imap_parser_read_line(struct imap_parser *p)
{
	if (p->state != ST_LINE_START)
		return -EBUSY;
	p->raw_requested = true;
	return 0;
}

void imap_parser_literal_info(const struct imap_parser *p, struct imap_literal_info *info_r)
{
	info_r->size = p->lit_size;
	info_r->sync = !p->lit_nonsync;
	info_r->literal8 = p->lit8;
	info_r->depth = p->depth;
}

int imap_parser_literal_action(struct imap_parser *p, enum imap_literal_action action)
{
	if (p->state != ST_LIT_DECIDE)
		return -EINVAL;
	if (action == IMAP_LITERAL_STREAM && p->raw_active)
		return -EINVAL;
	if (action != IMAP_LITERAL_STORE && action != IMAP_LITERAL_STREAM && action != IMAP_LITERAL_REJECT)
		return -EINVAL;
	p->lit_action = action;
	return 0;
}

const void *imap_parser_literal_chunk(const struct imap_parser *p, size_t *len_r, uint64_t *left_r)
{
	*len_r = p->chunk_len;
	if (left_r)
		*left_r = p->state == ST_LIT_STREAM ? p->lit_left : 0;
	return p->chunk;
}

void imap_parser_trim(struct imap_parser *p)
{
	if (p->state != ST_LINE_START)
		return;
	drop_command(p);
	arena_clear(&p->arena);
	arena_free_list(p->arena.head);
	p->arena.head = NULL;
	p->release_pending = false;
	free(p->items);
	p->items = NULL;
	p->items_cap = 0;
	p->have_tag = false;
	buf_release(&p->tag);
	buf_release(&p->name);
	buf_release(&p->tok);
	buf_release(&p->raw);
}

void imap_parser_reset(struct imap_parser *p)
{
	drop_command(p);
	arena_clear(&p->arena);
	p->release_pending = false;
	p->raw_requested = false;
	p->have_tag = false;
	buf_reset(&p->tag);
	p->line_used = 0;
	p->nargs = 0;
	p->literal_total = 0;
	p->state = ST_LINE_START;
}

/* ---- reading arguments ---- */

bool imap_arg_atom_equals(const struct imap_arg *a, const char *s)
{
	return (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL) &&
		!(a->flags & IMAP_ARG_SECTION) && strlen(s) == a->len && strcasecmp(a->str, s) == 0;
}

bool imap_arg_get_atom(const struct imap_arg *a, const char **str_r)
{
	if (a->type != IMAP_ARG_ATOM)
		return false;
	*str_r = a->str;
	return true;
}

bool imap_arg_get_astring(const struct imap_arg *a, const char **str_r, size_t *len_r)
{
	switch (a->type) {
	case IMAP_ARG_ATOM:
		if (a->flags & IMAP_ARG_SECTION_SPACED)
			return false;
		break;
	case IMAP_ARG_NIL:
	case IMAP_ARG_STRING:
		break;
	case IMAP_ARG_LITERAL:
		if (a->flags & IMAP_ARG_STREAMED)
			return false;
		break;
	default:
		return false;
	}
	*str_r = a->str;
	*len_r = a->len;
	return true;
}

bool imap_arg_get_string(const struct imap_arg *a, const char **str_r, size_t *len_r)
{
	if (a->type != IMAP_ARG_STRING &&
	    (a->type != IMAP_ARG_LITERAL || (a->flags & IMAP_ARG_STREAMED)))
		return false;
	*str_r = a->str;
	*len_r = a->len;
	return true;
}

bool imap_arg_get_nstring(const struct imap_arg *a, const char **str_r, size_t *len_r)
{
	if (a->type == IMAP_ARG_NIL) {
		*str_r = NULL;
		*len_r = 0;
		return true;
	}
	return imap_arg_get_string(a, str_r, len_r);
}

bool imap_arg_get_list(const struct imap_arg *a, const struct imap_arg **items_r, size_t *count_r)
{
	if (a->type != IMAP_ARG_LIST)
		return false;
	*items_r = a->list;
	*count_r = a->count;
	return true;
}

bool imap_arg_get_number(const struct imap_arg *a, uint32_t *n_r)
{
	if (a->type != IMAP_ARG_ATOM || (a->flags & IMAP_ARG_SECTION))
		return false;
	return parse_u32(a->str, a->len, n_r);
}

bool imap_arg_get_number64(const struct imap_arg *a, uint64_t *n_r)
{
	uint64_t n = 0;

	if (a->type != IMAP_ARG_ATOM || (a->flags & IMAP_ARG_SECTION) || a->len == 0)
		return false;
	for (size_t i = 0; i < a->len; i++) {
		if (a->str[i] < '0' || a->str[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(a->str[i] - '0');
		if (n > INT64_MAX)
			return false;
	}
	*n_r = n;
	return true;
}
