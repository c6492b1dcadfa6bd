#ifndef BUZON_IMAP_PARSER_H
#define BUZON_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Incremental parser of IMAP client commands (RFC 3501 section 9, with
 * RFC 7888 LITERAL+/LITERAL-, RFC 3516 literal8 and the generic extended
 * syntax of RFC 4466, which RFC 5258, 7162 and 4731 build on). It knows
 * nothing of sockets and sessions: the session feeds it the bytes it has
 * read and gets back one event at a time.
 *
 * A command is "tag SP name [SP args] CRLF" (bare LF is accepted too). The
 * name is upper-cased; "UID" is joined with the next word, so that UID
 * FETCH arrives as the name "UID FETCH". The arguments form a tree of atoms,
 * NIL, quoted strings, literals and parenthesised lists.
 *
 * Bracket sections. An atom that holds "[" is kept whole: arg->str is the
 * exact text the client sent, e.g. "BODY.PEEK[HEADER.FIELDS (From To)]<0.100>"
 * or the mailbox name "[Gmail]/Sent". In addition the parser splits it:
 * name_len is the length of the part before "[" ("BODY.PEEK"), section and
 * section_count hold the arguments inside the brackets, parsed like command
 * arguments (here the atom HEADER.FIELDS and the list (From To)), suffix is
 * what follows "]" ("<0.100>"), and when the suffix is exactly
 * "<" number "." number ">" the flag IMAP_ARG_PARTIAL is set and
 * partial_start/partial_len hold the two numbers. Inside the brackets "]"
 * ends atoms and "[" is an ordinary character: sections do not nest. When
 * the bracket text holds only atom characters ("BODY[1.2.TEXT]") section
 * holds that text as one atom. When a literal stands inside the brackets,
 * str holds its header and bytes as sent (which may include NUL: use len).
 * A "[" whose bracket is never closed and that
 * is followed by atom characters only ("CREATE foo[bar") leaves a plain atom
 * with no section. Dovecot instead returns "BODY[HEADER.FIELDS" as an atom
 * followed by a list; keeping the whole text lets an astring with brackets
 * pass unchanged and gives FETCH its parts without re-parsing.
 *
 * Events returned by imap_parser_feed():
 *   IMAP_PARSE_COMMAND   a complete command: imap_parser_command().
 *   IMAP_PARSE_CONTINUE  a synchronizing literal was accepted: the session
 *                        must now send "+ ..." and keep feeding.
 *   IMAP_PARSE_LINE      a raw line asked for with imap_parser_read_line().
 *   IMAP_PARSE_LITERAL   only with IMAP_PARSER_LITERAL_EVENTS: a literal
 *                        was announced and fits the limits; the session may
 *                        choose what happens to it (imap_parser_literal_action).
 *   IMAP_PARSE_LITERAL_DATA  a piece of a literal the session chose to stream.
 *   IMAP_PARSE_ERROR     recoverable: the session answers "<tag> BAD ..." (or
 *                        "* BAD" when imap_parser_tag() is NULL) and keeps
 *                        feeding; the parser drops the rest of the line itself.
 *   IMAP_PARSE_FATAL     the session answers "* BYE ..." and closes; every later
 *                        feed returns IMAP_PARSE_FATAL again.
 *
 * Errors are returned as soon as they are seen, not at the end of the line.
 * After a recoverable error the parser discards the rest of that line. A
 * synchronizing literal announced in the discarded part ends the line (the
 * client waits for a "+" that never comes and reads the BAD instead); the
 * data of a non-synchronizing one is skipped, as the client sends it anyway
 * (or, over the literal limit, the error becomes fatal).
 *
 * Literals: "{n}" is synchronizing, "{n+}" is not (RFC 7888; LITERAL- uses
 * the same "{n+}" syntax with n <= 4096, there is no "{n-}", which is bad
 * syntax), "~{n}" and "~{n+}" are RFC 3516 literal8. A stored literal's
 * buffer grows as its bytes arrive, so an announced size reserves nothing.
 *
 * Memory: the tag, name and arguments of one command live in an arena owned
 * by the parser and bounded by the limits (max_line bytes of text, max_args
 * arguments, max_literal bytes of literal data). All pointers handed out stay
 * valid until the next call of imap_parser_feed(), imap_parser_reset() or
 * imap_parser_trim().
 */

/* Limits; imap_parser_init() raises max_line to at least 16, max_args to at
 * least 1, and lowers max_literal to SIZE_MAX / 2. */
struct imap_parser_limits {
	/* Non-literal bytes of one command, all its lines and line ends
	 * included (the data of literals inside a bracket section count
	 * too); also the longest raw line. */
	size_t max_line;
	/* Largest literal; also the sum of the literals of one command. */
	uint64_t max_literal;
	/* Deepest nesting of lists and bracket sections. */
	unsigned max_depth;
	/* Arguments of one command, nested ones included. */
	unsigned max_args;
};

#define IMAP_PARSER_DEFAULT_MAX_LINE (64 * 1024)
#define IMAP_PARSER_DEFAULT_MAX_LITERAL (50 * 1024 * 1024)
#define IMAP_PARSER_DEFAULT_MAX_DEPTH 16
#define IMAP_PARSER_DEFAULT_MAX_ARGS 10000
/* RFC 7888 section 4: the largest non-synchronizing literal under LITERAL-. */
#define IMAP_LITERAL_MINUS_MAX 4096

enum imap_parser_flags {
	/* The server advertises LITERAL- instead of LITERAL+: a
	 * non-synchronizing literal over 4096 octets is fatal. */
	IMAP_PARSER_LITERAL_MINUS = 1 << 0,
	/* Return IMAP_PARSE_LITERAL for every literal announced. */
	IMAP_PARSER_LITERAL_EVENTS = 1 << 1,
};

enum imap_parse_result {
	IMAP_PARSE_FATAL = -2,
	IMAP_PARSE_ERROR = -1,
	IMAP_PARSE_NEED_MORE = 0,
	IMAP_PARSE_COMMAND = 1,
	IMAP_PARSE_CONTINUE = 2,
	IMAP_PARSE_LINE = 3,
	IMAP_PARSE_LITERAL = 4,
	IMAP_PARSE_LITERAL_DATA = 5,
};

enum imap_parser_error {
	IMAP_PARSE_ERROR_NONE = 0,
	/* Bad syntax (recoverable). */
	IMAP_PARSE_ERROR_BAD_SYNTAX,
	/* The command or raw line is longer than max_line (recoverable). */
	IMAP_PARSE_ERROR_LINE_TOO_LONG,
	/* A literal is over the limit: recoverable for a synchronizing one
	 * (returned before the client sends it; answer with [TOOBIG]), fatal
	 * for a non-synchronizing one. */
	IMAP_PARSE_ERROR_LITERAL_TOO_BIG,
	/* Lists nested deeper than max_depth (recoverable). */
	IMAP_PARSE_ERROR_TOO_DEEP,
	/* More than max_args arguments (recoverable). */
	IMAP_PARSE_ERROR_TOO_MANY_ARGS,
};

enum imap_arg_type {
	IMAP_ARG_NIL,     /* the atom NIL in any case; str holds it as sent */
	IMAP_ARG_ATOM,
	IMAP_ARG_STRING,  /* a quoted string, unescaped */
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,
};

enum imap_arg_flags {
	IMAP_ARG_LITERAL8 = 1 << 0,      /* ~{n}: RFC 3516 literal8 */
	IMAP_ARG_NONSYNC = 1 << 1,       /* {n+} */
	IMAP_ARG_HAS_NUL = 1 << 2,       /* the literal holds a NUL octet */
	IMAP_ARG_STREAMED = 1 << 3,      /* the literal went out as LITERAL_DATA */
	IMAP_ARG_8BIT = 1 << 4,          /* a quoted string or literal holds octets >= 0x80 */
	IMAP_ARG_SECTION = 1 << 5,       /* an atom with a closed [...] part */
	IMAP_ARG_SECTION_SPACED = 1 << 6,/* ... holding more than atom text, so not an astring */
	IMAP_ARG_PARTIAL = 1 << 7,       /* ... followed by exactly <start.len> */
};

struct imap_arg {
	enum imap_arg_type type;
	unsigned flags;                 /* enum imap_arg_flags */
	/* NIL, ATOM, STRING, LITERAL: len bytes, NUL-terminated (a literal
	 * may hold NUL itself). A streamed literal has "" here. */
	const char *str;
	size_t len;
	/* LITERAL: its announced size (len, or the streamed size). */
	uint64_t literal_size;
	/* LIST: the items. */
	const struct imap_arg *list;
	size_t count;
	/* ATOM with IMAP_ARG_SECTION: see the comment at the top. */
	size_t name_len;
	const struct imap_arg *section;
	size_t section_count;
	const char *suffix;             /* points into str; "" when none */
	uint32_t partial_start, partial_len;
};

struct imap_command {
	const char *tag;
	const char *name;               /* upper-cased; "UID FETCH" etc. */
	const struct imap_arg *args;
	size_t count;
};

struct imap_literal_info {
	uint64_t size;
	bool sync;                      /* {n}: the client waits for "+" */
	bool literal8;
	unsigned depth;                 /* 0 when it is a top-level argument */
};

enum imap_literal_action {
	IMAP_LITERAL_STORE,             /* the default: keep it in the command */
	IMAP_LITERAL_STREAM,            /* hand it out as LITERAL_DATA pieces */
	IMAP_LITERAL_REJECT,            /* refuse it and drop the command */
};

struct imap_parser;

/* Fills l with the defaults above. */
void imap_parser_limits_default(struct imap_parser_limits *l);

/* Creates a parser; limits are copied (NULL means the defaults). */
struct imap_parser *imap_parser_init(const struct imap_parser_limits *limits, unsigned flags);

/* Frees the parser and everything it handed out, and sets *p to NULL. */
void imap_parser_deinit(struct imap_parser **p);

/* Changes the flags (enum imap_parser_flags), e.g. after ENABLE. */
void imap_parser_set_flags(struct imap_parser *p, unsigned flags);

/*
 * Changes max_line, max_literal and max_args (max_depth stays as it was),
 * adjusted as imap_parser_init() does; the session's limits before and
 * after login. Only between commands: -EBUSY when a command or a raw line
 * is partly read or a raw line has been asked for. Everything handed out
 * before is invalid afterwards, as after imap_parser_trim().
 */
int imap_parser_set_limits(struct imap_parser *p, size_t max_line, uint64_t max_literal, unsigned max_args);

/*
 * Parses data[0..len) until an event or the end of the data. Sets
 * *consumed_r to the bytes used; the session feeds the rest again after it
 * has dealt with the event (an answer, a continuation, a mode change), so
 * that pipelined commands wait their turn. Returns an enum imap_parse_result.
 * IMAP_PARSE_CONTINUE after IMAP_PARSE_LITERAL may consume no byte.
 */
int imap_parser_feed(struct imap_parser *p, const void *data, size_t len, size_t *consumed_r);

/* After IMAP_PARSE_COMMAND: the command. */
const struct imap_command *imap_parser_command(const struct imap_parser *p);

/*
 * After IMAP_PARSE_LITERAL: the command as far as it has been read (tag,
 * name and the top-level arguments before the literal; an argument being
 * built inside a list is not among them).
 */
const struct imap_command *imap_parser_partial(struct imap_parser *p);

/* After IMAP_PARSE_ERROR or IMAP_PARSE_FATAL: the error and a static
 * lower-case message for the BAD or BYE line. */
enum imap_parser_error imap_parser_error(const struct imap_parser *p, const char **msg_r);

/* The tag of the command being read or just ended, or NULL when none has
 * been read completely (the reply to an error is then untagged). */
const char *imap_parser_tag(const struct imap_parser *p);

/* After IMAP_PARSE_LINE: the line without its CRLF or LF (it may hold NUL). */
const char *imap_parser_line(const struct imap_parser *p, size_t *len_r);

/*
 * Asks for the next line to be returned raw as IMAP_PARSE_LINE (the
 * AUTHENTICATE response lines, IDLE's "DONE"). One line only; then the
 * parser reads commands again. Returns 0, or -EBUSY when a command is
 * partly read.
 */
int imap_parser_read_line(struct imap_parser *p);

/* After IMAP_PARSE_LITERAL: what has been announced. */
void imap_parser_literal_info(const struct imap_parser *p, struct imap_literal_info *info_r);

/*
 * After IMAP_PARSE_LITERAL and before the next feed: what to do with the
 * literal. STREAM: its data comes as IMAP_PARSE_LITERAL_DATA pieces and the
 * argument in the command has IMAP_ARG_STREAMED (not possible inside a
 * bracket section: -EINVAL). REJECT: the command is dropped without a
 * reply from the parser; the session answers it (NO or BAD); a synchronizing
 * literal is then never sent, a non-synchronizing one is skipped with the
 * rest of its line. Returns 0 or -EINVAL.
 */
int imap_parser_literal_action(struct imap_parser *p, enum imap_literal_action action);

/* After IMAP_PARSE_LITERAL_DATA: the piece (pointing into the fed data) and
 * the bytes of the literal still to come after it. */
const void *imap_parser_literal_chunk(const struct imap_parser *p, size_t *len_r, uint64_t *left_r);

/* Drops any partly read command and raw-line request (e.g. after STARTTLS).
 * Does not clear a fatal error. */
void imap_parser_reset(struct imap_parser *p);

/*
 * Frees the memory the parser keeps for the next command (the arena, the
 * argument stack, the text buffers) when no command or raw line is partly
 * read; otherwise does nothing. A raw-line request stays. Everything handed
 * out before (command, line, tag) is invalid afterwards, as after the next
 * feed. For a session that waits for its client: a trimmed parser holds
 * only its struct and its stack of list frames.
 */
void imap_parser_trim(struct imap_parser *p);

/* ---- reading arguments ---- */

/* True when a is a plain atom (no section) equal to s, ignoring ASCII case. */
bool imap_arg_atom_equals(const struct imap_arg *a, const char *s);

/* An atom (with or without a section): its text. */
bool imap_arg_get_atom(const struct imap_arg *a, const char **str_r);

/* An astring: an atom (NIL included, a spaced section excluded), a quoted
 * string or a stored literal. */
bool imap_arg_get_astring(const struct imap_arg *a, const char **str_r, size_t *len_r);

/* A string: a quoted string or a stored literal. */
bool imap_arg_get_string(const struct imap_arg *a, const char **str_r, size_t *len_r);

/* An nstring: NIL (*str_r = NULL, *len_r = 0) or a string. */
bool imap_arg_get_nstring(const struct imap_arg *a, const char **str_r, size_t *len_r);

/* A list: its items. */
bool imap_arg_get_list(const struct imap_arg *a, const struct imap_arg **items_r, size_t *count_r);

/* An atom that is a number (RFC 3501: 1*DIGIT, at most 4294967295). */
bool imap_arg_get_number(const struct imap_arg *a, uint32_t *n_r);

/* An atom that is a 63-bit number, as mod-sequences are (RFC 7162). */
bool imap_arg_get_number64(const struct imap_arg *a, uint64_t *n_r);

#endif
