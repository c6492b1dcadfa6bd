/* SEARCH and UID SEARCH (RFC 3501 6.4.4) with ESEARCH result options
 * (RFC 4731), SEARCHRES (RFC 5182: RETURN (SAVE) and "$") and the CONDSTORE
 * MODSEQ key (RFC 7162 3.1.5).
 *
 * The whole command runs on the worker: the keys are parsed into a tree
 * (sequence sets need the mailbox), then every message is matched in up to
 * three stages so that no file is opened when the index answers: stage 0
 * with what the index holds (flags, keywords, sizes, dates, UIDs, modseqs),
 * stage 1 with the message header read from the file (header keys, SENT*),
 * stage 2 with the whole file (BODY, TEXT). Matching is three-valued:
 * a key that needs a later stage is "unknown", and AND/OR/NOT decide
 * without it when they can.
 *
 * Strings match as case-insensitive substrings of decoded text, as
 * Dovecot does: header values with RFC 2047 encoded words decoded, bodies
 * with their Content-Transfer-Encoding undone and text parts converted to
 * UTF-8 (lib/mime.h). Case is folded with simple one-to-one mappings for
 * ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (fold_cp()). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "imap/imap-private.h"
#include "imap/imap-quote.h"
#include "lib/log.h"
#include "lib/mime.h"
#include "lib/xalloc.h"

/* NOT, OR and parenthesised groups nested deeper than this are refused,
 * so that matching (which recurses) has a bounded depth. */
#define SEARCH_MAX_DEPTH 64
/* Used when the session has no literal limit configured. */
#define SEARCH_DEFAULT_READ_MAX (64u * 1024 * 1024)
#define READ_CHUNK (16 * 1024)

enum skey_type {
	K_ALL,
	K_AND,          /* kids */
	K_OR,           /* kids (two) */
	K_NOT,          /* kids (one) */
	K_FLAG,         /* flag set */
	K_UNFLAG,       /* flag not set */
	K_NEW,          /* \Recent and not \Seen */
	K_OLD,          /* not \Recent */
	K_KEYWORD,
	K_UNKEYWORD,
	K_LARGER,
	K_SMALLER,
	K_BEFORE,
	K_ON,
	K_SINCE,
	K_SENTBEFORE,
	K_SENTON,
	K_SENTSINCE,
	K_SEQ,          /* sequence set; saved: "$" */
	K_UID,          /* UID set; saved: "$" */
	K_MODSEQ,
	K_HEADER,       /* field, needle */
	K_BODY,         /* needle */
	K_TEXT,         /* needle */
};

enum stage { STAGE_INDEX = 0, STAGE_HEADER = 1, STAGE_BODY = 2 };
enum tri { T_FALSE = 0, T_TRUE = 1, T_UNKNOWN = 2 };

struct skey {
	enum skey_type type;
	struct skey *kids, *next;   /* children of AND, OR, NOT */
	struct skey *alloc_next;    /* every node, for freeing */
	uint32_t flag;
	uint64_t num;               /* LARGER, SMALLER, MODSEQ */
	int64_t day;                /* date keys: days since 1970-01-01 */
	const char *field;          /* HEADER field name (NUL-terminated) */
	char *needle;               /* folded search string */
	size_t needle_len;
	const char *keyword;        /* KEYWORD, UNKEYWORD */
	struct imap_seqset set;     /* SEQ, UID */
	bool saved;                 /* SEQ, UID: "$" */
};

enum ret_flags {
	RET_MIN = 1 << 0,
	RET_MAX = 1 << 1,
	RET_ALL = 1 << 2,
	RET_COUNT = 1 << 3,
	RET_SAVE = 1 << 4,
};

struct search {
	struct imap_cmd *cmd;
	struct mbox *m;
	size_t n;
	struct skey *nodes;
	bool esearch;               /* RETURN given */
	unsigned ret;               /* enum ret_flags */
	bool modseq_used;
	const char *error;          /* BAD text */
	bool badcharset;
	size_t read_max;
};

/* ---- case folding ---- */

static uint32_t fold_cp(uint32_t c)
{
	if (c < 0x80)
		return (c >= 'A' && c <= 'Z') ? c + 32 : c;
	if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
		return c + 32;
	if (c >= 0x100 && c <= 0x17F) {
		if (c == 0x130)
			return 'i';
		if (c == 0x178)
			return 0xFF;
		if ((c <= 0x137 || (c >= 0x14A && c <= 0x177)) && !(c & 1))
			return c + 1;
		if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && (c & 1))
			return c + 1;
		return c;
	}
	if (c >= 0x386 && c <= 0x3A9) {
		if (c == 0x386)
			return 0x3AC;
		if (c >= 0x388 && c <= 0x38A)
			return c + 37;
		if (c == 0x38C)
			return 0x3CC;
		if (c == 0x38E || c == 0x38F)
			return c + 63;
		if (c >= 0x391 && c != 0x3A2)
			return c + 32;
		return c;
	}
	if (c == 0x3C2)
		return 0x3C3;   /* final sigma */
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	if (c >= 0x410 && c <= 0x42F)
		return c + 32;
	if (((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F)) && !(c & 1))
		return c + 1;
	return c;
}

/* Length of the valid UTF-8 sequence at s (with its code point in *c_r),
 * or 0 when s does not start one. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *c_r)
{
	uint32_t c;
	size_t n;

	if (s[0] < 0x80) {
		*c_r = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		n = 2;
		c = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		n = 3;
		c = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10FFFF)) || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*c_r = c;
	return n;
}

static void utf8_put(struct buf *out, uint32_t c)
{
	char b[4];
	size_t n;

	if (c < 0x80) {
		b[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xC0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xE0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[2] = (char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[3] = (char)(0x80 | (c & 0x3F));
		n = 4;
	}
	buf_add(out, b, n);
}

/* Appends s folded to out; bytes that are not UTF-8 are copied. The folded
 * text is never longer than the input (all mappings keep the length), so
 * reserving len bytes first is enough. */
static int fold_append(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (buf_reserve(out, len) < 0)
		return -ENOBUFS;
	while (i < len) {
		uint32_t c;
		size_t n = utf8_next(p + i, len - i, &c);
		if (n == 0) {
			buf_addch(out, (char)p[i]);
			i++;
			continue;
		}
		if (n == 1)
			buf_addch(out, (char)fold_cp(c));
		else
			utf8_put(out, fold_cp(c));
		i += n;
	}
	return 0;
}

static bool contains(const char *hay, size_t hay_len, const struct skey *k)
{
	if (k->needle_len == 0)
		return true;
	return hay && memmem(hay, hay_len, k->needle, k->needle_len) != NULL;
}

/* ---- dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int month_number(const char *s)
{
	static const char *const names[] = { "jan", "feb", "mar", "apr", "may", "jun",
					     "jul", "aug", "sep", "oct", "nov", "dec" };
	for (int i = 0; i < 12; i++)
		if (strncasecmp(s, names[i], 3) == 0)
			return i + 1;
	return 0;
}

static bool valid_day(int64_t y, int m, int d)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	return true;
}

/* RFC 3501 date-text: 1*2DIGIT "-" date-month "-" 4DIGIT. */
static bool parse_search_date(const char *s, size_t len, int64_t *day_r)
{
	size_t i = 0;
	int d = 0, m, y = 0;

	while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9')
		d = d * 10 + (s[i++] - '0');
	if (i == 0 || i >= len || s[i] != '-' || len - i != 9 || s[i + 4] != '-')
		return false;
	m = month_number(s + i + 1);
	if (!m)
		return false;
	for (size_t k = i + 5; k < len; k++) {
		if (s[k] < '0' || s[k] > '9')
			return false;
		y = y * 10 + (s[k] - '0');
	}
	if (!valid_day(y, m, d))
		return false;
	*day_r = days_from_civil(y, (unsigned)m, (unsigned)d);
	return true;
}

/* The date of an RFC 5322 Date: value as written ("[Sun,] 7 Feb 1994
 * 21:52:25 -0800"): time and zone are disregarded (RFC 3501 6.4.4). */
static bool parse_header_date(const char *s, size_t len, int64_t *day_r)
{
	const char *p = s, *end = s + len;
	int d = 0, m, nd = 0;
	long y = 0;
	int ny = 0;

	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	/* optional day-of-week "," */
	if (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))) {
		while (p < end && *p != ',' && !(*p >= '0' && *p <= '9'))
			p++;
		if (p < end && *p == ',')
			p++;
	}
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	while (p < end && *p >= '0' && *p <= '9' && nd < 3) {
		d = d * 10 + (*p++ - '0');
		nd++;
	}
	if (nd == 0 || nd > 2)
		return false;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '-' || *p == '\r' || *p == '\n'))
		p++;
	if (end - p < 3 || !(m = month_number(p)))
		return false;
	p += 3;
	while (p < end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
		p++;   /* a full month name */
	while (p < end && (*p == ' ' || *p == '\t' || *p == '-' || *p == '\r' || *p == '\n'))
		p++;
	while (p < end && *p >= '0' && *p <= '9' && ny < 5) {
		y = y * 10 + (*p++ - '0');
		ny++;
	}
	if (ny == 2)
		y += y < 50 ? 2000 : 1900;   /* RFC 5322 4.3 */
	else if (ny == 3)
		y += 1900;
	else if (ny != 4)
		return false;
	if (!valid_day(y, m, d))
		return false;
	*day_r = days_from_civil(y, (unsigned)m, (unsigned)d);
	return true;
}

/* The day of an INTERNALDATE in the server's time zone, as Dovecot does. */
static int64_t internal_day(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm))
		return t / 86400;
	return days_from_civil((int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
}

/* ---- parsing the keys ---- */

static struct skey *key_new(struct search *x, enum skey_type type)
{
	struct skey *k = xcalloc(1, sizeof(*k));

	k->type = type;
	k->alloc_next = x->nodes;
	x->nodes = k;
	return k;
}

static void keys_free(struct search *x)
{
	while (x->nodes) {
		struct skey *k = x->nodes;
		x->nodes = k->alloc_next;
		imap_seqset_release(&k->set);
		free(k->needle);
		free(k);
	}
}

static bool set_needle(struct skey *k, const char *s, size_t len)
{
	struct buf b = BUF_INIT(0);

	if (fold_append(&b, s, len) < 0) {
		buf_release(&b);
		return false;
	}
	k->needle = b.data ? b.data : xstrdup("");
	k->needle_len = b.len;
	return true;
}

static bool atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\]", c);
}

static bool is_seqset_arg(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && !(a->flags & IMAP_ARG_SECTION) && a->len > 0 &&
	       ((a->str[0] >= '0' && a->str[0] <= '9') || a->str[0] == '*' || a->str[0] == '$');
}

/* Resolves a sequence set ("$" included) for k. */
static bool parse_set(struct search *x, struct skey *k, const struct imap_arg *a, bool uid)
{
	uint32_t star;
	int r;

	if (a->type != IMAP_ARG_ATOM || (a->flags & IMAP_ARG_SECTION)) {
		x->error = "Invalid sequence set";
		return false;
	}
	if (uid)
		star = x->n ? mbox_get(x->m, x->n - 1)->uid : mbox_uidnext(x->m);
	else
		star = (uint32_t)x->n;
	r = imap_seqset_parse(&k->set, a->str, a->len, star, IMAP_SEQSET_ALLOW_SAVED);
	if (r == IMAP_SEQSET_SAVED) {
		k->saved = true;
		return true;
	}
	if (r == -ERANGE) {
		/* "*" in an empty mailbox: no message can match anyway. */
		imap_seqset_clear(&k->set);
		return true;
	}
	if (r < 0) {
		x->error = "Invalid sequence set";
		return false;
	}
	return true;
}

static bool get_astring(struct search *x, const struct imap_arg *args, size_t count, size_t *pos,
			const char **s_r, size_t *len_r)
{
	if (*pos >= count || !imap_arg_get_astring(&args[*pos], s_r, len_r) ||
	    (args[*pos].flags & IMAP_ARG_STREAMED)) {
		x->error = "Missing or invalid search string";
		return false;
	}
	(*pos)++;
	return true;
}

static bool get_date(struct search *x, const struct imap_arg *args, size_t count, size_t *pos, int64_t *day_r)
{
	const char *s;
	size_t len;

	if (*pos >= count || args[*pos].type == IMAP_ARG_LIST ||
	    !imap_arg_get_astring(&args[*pos], &s, &len) || !parse_search_date(s, len, day_r)) {
		x->error = "Invalid search date";
		return false;
	}
	(*pos)++;
	return true;
}

static struct skey *parse_key(struct search *x, const struct imap_arg *args, size_t count, size_t *pos,
			      unsigned depth);

/* Keys args[*pos..count) up to the end, as one AND node. */
static struct skey *parse_keys(struct search *x, const struct imap_arg *args, size_t count, size_t *pos,
			       unsigned depth)
{
	struct skey *and = key_new(x, K_AND), **tail = &and->kids;

	if (*pos >= count) {
		x->error = "Missing search keys";
		return NULL;
	}
	while (*pos < count) {
		struct skey *k = parse_key(x, args, count, pos, depth);
		if (!k)
			return NULL;
		*tail = k;
		tail = &k->next;
	}
	return and;
}

static const struct {
	const char *name;
	enum skey_type type;
	uint32_t flag;
} simple_keys[] = {
	{ "ALL", K_ALL, 0 },
	{ "ANSWERED", K_FLAG, MBOX_ANSWERED },
	{ "DELETED", K_FLAG, MBOX_DELETED },
	{ "DRAFT", K_FLAG, MBOX_DRAFT },
	{ "FLAGGED", K_FLAG, MBOX_FLAGGED },
	{ "RECENT", K_FLAG, MBOX_RECENT },
	{ "SEEN", K_FLAG, MBOX_SEEN },
	{ "UNANSWERED", K_UNFLAG, MBOX_ANSWERED },
	{ "UNDELETED", K_UNFLAG, MBOX_DELETED },
	{ "UNDRAFT", K_UNFLAG, MBOX_DRAFT },
	{ "UNFLAGGED", K_UNFLAG, MBOX_FLAGGED },
	{ "UNSEEN", K_UNFLAG, MBOX_SEEN },
	{ "NEW", K_NEW, 0 },
	{ "OLD", K_OLD, 0 },
};

static const struct {
	const char *name;
	const char *field;
} header_keys[] = {
	{ "BCC", "Bcc" }, { "CC", "Cc" }, { "FROM", "From" }, { "SUBJECT", "Subject" }, { "TO", "To" },
};

static const struct {
	const char *name;
	enum skey_type type;
} date_keys[] = {
	{ "BEFORE", K_BEFORE }, { "ON", K_ON }, { "SINCE", K_SINCE },
	{ "SENTBEFORE", K_SENTBEFORE }, { "SENTON", K_SENTON }, { "SENTSINCE", K_SENTSINCE },
};

static struct skey *parse_key(struct search *x, const struct imap_arg *args, size_t count, size_t *pos,
			      unsigned depth)
{
	const struct imap_arg *a;
	const char *name, *s;
	size_t len;
	struct skey *k;

	if (depth > SEARCH_MAX_DEPTH) {
		x->error = "Search keys nested too deeply";
		return NULL;
	}
	if (*pos >= count) {
		x->error = "Missing search key";
		return NULL;
	}
	a = &args[(*pos)++];
	if (a->type == IMAP_ARG_LIST) {
		size_t p = 0;
		if (a->count == 0) {
			x->error = "Empty search key list";
			return NULL;
		}
		return parse_keys(x, a->list, a->count, &p, depth + 1);
	}
	if (a->type != IMAP_ARG_ATOM || (a->flags & IMAP_ARG_SECTION)) {
		x->error = "Invalid search key";
		return NULL;
	}
	if (is_seqset_arg(a)) {
		k = key_new(x, K_SEQ);
		return parse_set(x, k, a, false) ? k : NULL;
	}
	name = a->str;
	for (size_t i = 0; i < ARRAY_SIZE(simple_keys); i++) {
		if (strcasecmp(name, simple_keys[i].name) == 0) {
			k = key_new(x, simple_keys[i].type);
			k->flag = simple_keys[i].flag;
			return k;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(header_keys); i++) {
		if (strcasecmp(name, header_keys[i].name) == 0) {
			k = key_new(x, K_HEADER);
			k->field = header_keys[i].field;
			if (!get_astring(x, args, count, pos, &s, &len) || !set_needle(k, s, len))
				return NULL;
			return k;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(date_keys); i++) {
		if (strcasecmp(name, date_keys[i].name) == 0) {
			k = key_new(x, date_keys[i].type);
			return get_date(x, args, count, pos, &k->day) ? k : NULL;
		}
	}
	if (strcasecmp(name, "BODY") == 0 || strcasecmp(name, "TEXT") == 0) {
		k = key_new(x, name[0] == 'B' || name[0] == 'b' ? K_BODY : K_TEXT);
		if (!get_astring(x, args, count, pos, &s, &len) || !set_needle(k, s, len))
			return NULL;
		return k;
	}
	if (strcasecmp(name, "HEADER") == 0) {
		const char *f;
		size_t flen;
		k = key_new(x, K_HEADER);
		if (!get_astring(x, args, count, pos, &f, &flen) || flen == 0 || memchr(f, '\0', flen) ||
		    memchr(f, ':', flen)) {
			x->error = "Invalid header field name";
			return NULL;
		}
		for (size_t i = 0; i < flen; i++) {
			if ((unsigned char)f[i] <= 0x20 || (unsigned char)f[i] >= 0x7f) {
				x->error = "Invalid header field name";
				return NULL;
			}
		}
		k->field = f;
		if (!get_astring(x, args, count, pos, &s, &len) || !set_needle(k, s, len))
			return NULL;
		return k;
	}
	if (strcasecmp(name, "KEYWORD") == 0 || strcasecmp(name, "UNKEYWORD") == 0) {
		const char *kw;
		k = key_new(x, (name[0] == 'K' || name[0] == 'k') ? K_KEYWORD : K_UNKEYWORD);
		if (*pos >= count || !imap_arg_get_atom(&args[*pos], &kw) || (args[*pos].flags & IMAP_ARG_SECTION) ||
		    args[*pos].type != IMAP_ARG_ATOM) {
			x->error = "Invalid keyword";
			return NULL;
		}
		for (const char *p = kw; *p; p++) {
			if (!atom_char((unsigned char)*p)) {
				x->error = "Invalid keyword";
				return NULL;
			}
		}
		k->keyword = kw;
		(*pos)++;
		return k;
	}
	if (strcasecmp(name, "LARGER") == 0 || strcasecmp(name, "SMALLER") == 0) {
		uint32_t n;
		k = key_new(x, (name[0] == 'L' || name[0] == 'l') ? K_LARGER : K_SMALLER);
		if (*pos >= count || !imap_arg_get_number(&args[*pos], &n)) {
			x->error = "Invalid size";
			return NULL;
		}
		k->num = n;
		(*pos)++;
		return k;
	}
	if (strcasecmp(name, "NOT") == 0) {
		k = key_new(x, K_NOT);
		k->kids = parse_key(x, args, count, pos, depth + 1);
		return k->kids ? k : NULL;
	}
	if (strcasecmp(name, "OR") == 0) {
		k = key_new(x, K_OR);
		k->kids = parse_key(x, args, count, pos, depth + 1);
		if (!k->kids)
			return NULL;
		k->kids->next = parse_key(x, args, count, pos, depth + 1);
		return k->kids->next ? k : NULL;
	}
	if (strcasecmp(name, "UID") == 0) {
		k = key_new(x, K_UID);
		if (*pos >= count) {
			x->error = "Missing UID set";
			return NULL;
		}
		return parse_set(x, k, &args[(*pos)++], true) ? k : NULL;
	}
	if (strcasecmp(name, "MODSEQ") == 0) {
		/* RFC 7162: MODSEQ [entry-name entry-type-req] mod-sequence-valzer */
		uint64_t v;
		k = key_new(x, K_MODSEQ);
		if (*pos < count && args[*pos].type == IMAP_ARG_STRING) {
			const char *t;
			if (strncasecmp(args[*pos].str, "/flags/", 7) != 0 || *pos + 1 >= count ||
			    !imap_arg_get_atom(&args[*pos + 1], &t) ||
			    (strcasecmp(t, "priv") != 0 && strcasecmp(t, "shared") != 0 && strcasecmp(t, "all") != 0)) {
				x->error = "Invalid MODSEQ entry";
				return NULL;
			}
			*pos += 2;
		}
		if (*pos >= count || !imap_arg_get_number64(&args[*pos], &v)) {
			x->error = "Invalid MODSEQ value";
			return NULL;
		}
		(*pos)++;
		k->num = v;
		x->modseq_used = true;
		return k;
	}
	x->error = "Unknown search key";
	return NULL;
}

/* SEARCH [RETURN (opts)] [CHARSET name] keys */
static struct skey *parse_search(struct search *x, const struct imap_arg *args, size_t count)
{
	size_t pos = 0;

	if (pos < count && imap_arg_atom_equals(&args[pos], "RETURN")) {
		const struct imap_arg *opts;
		size_t n;
		pos++;
		if (pos >= count || !imap_arg_get_list(&args[pos], &opts, &n)) {
			x->error = "RETURN needs a list of options";
			return NULL;
		}
		pos++;
		x->esearch = true;
		for (size_t i = 0; i < n; i++) {
			if (imap_arg_atom_equals(&opts[i], "MIN"))
				x->ret |= RET_MIN;
			else if (imap_arg_atom_equals(&opts[i], "MAX"))
				x->ret |= RET_MAX;
			else if (imap_arg_atom_equals(&opts[i], "ALL"))
				x->ret |= RET_ALL;
			else if (imap_arg_atom_equals(&opts[i], "COUNT"))
				x->ret |= RET_COUNT;
			else if (imap_arg_atom_equals(&opts[i], "SAVE"))
				x->ret |= RET_SAVE;
			else {
				x->error = "Unknown RETURN option";
				return NULL;
			}
		}
		if (x->ret == 0)
			x->ret = RET_ALL;   /* RFC 4731 3.1: RETURN () is RETURN (ALL) */
	}
	if (pos < count && imap_arg_atom_equals(&args[pos], "CHARSET")) {
		const char *cs;
		size_t len;
		pos++;
		if (pos >= count || !imap_arg_get_astring(&args[pos], &cs, &len)) {
			x->error = "CHARSET needs a name";
			return NULL;
		}
		pos++;
		if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0 &&
		    strcasecmp(cs, "UTF8") != 0 && strcasecmp(cs, "ASCII") != 0) {
			x->badcharset = true;
			return NULL;
		}
	}
	return parse_keys(x, args, count, &pos, 0);
}

/* ---- reading messages ---- */

struct msgctx {
	struct search *x;
	size_t i;
	const struct mbox_msg *msg;
	int fd;                 /* open while more may be read; -1 otherwise */
	bool opened, eof;
	struct buf raw;         /* the file's first bytes (or all of it) */
	size_t hdr_len;         /* raw bytes of the header, valid once have_hdr */
	bool have_hdr, have_all;
	struct mime_message *mime;
	struct buf body;        /* folded decoded body text */
	bool have_body;
	struct buf hdrtext;     /* folded decoded header fields */
	bool have_hdrtext;
	int64_t sent_day;
	int sent_state;         /* 0 not looked, 1 found, -1 none */
};

static void msg_reset(struct msgctx *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->opened = c->eof = false;
	buf_reset(&c->raw);
	c->have_hdr = c->have_all = false;
	mime_message_free(&c->mime);
	buf_reset(&c->body);
	c->have_body = false;
	buf_reset(&c->hdrtext);
	c->have_hdrtext = false;
	c->sent_state = 0;
	c->hdr_len = 0;
}

/* Reads one more chunk; false at the end (EOF, error, limit). */
static bool read_more(struct msgctx *c)
{
	ssize_t r;
	size_t want;

	if (!c->opened) {
		c->opened = true;
		c->fd = mbox_open_msg(c->x->m, c->i);
		if (c->fd < 0) {
			/* Expunged meanwhile, or unreadable: nothing to match. */
			if (c->fd != -ENOENT)
				log_warn("imap", c->x->cmd->s->sid, "search cannot open message uid=%u error=%d",
					 c->msg->uid, c->fd);
			c->fd = -1;
			c->eof = true;
			return false;
		}
	}
	if (c->eof || c->fd < 0)
		return false;
	if (c->raw.len >= c->x->read_max) {
		c->eof = true;   /* the rest of an over-long file is not searched */
		return false;
	}
	want = c->x->read_max - c->raw.len;
	if (want > READ_CHUNK)
		want = READ_CHUNK;
	if (buf_reserve(&c->raw, want) < 0) {
		c->eof = true;
		return false;
	}
	do
		r = read(c->fd, c->raw.data + c->raw.len, want);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		c->eof = true;
		close(c->fd);
		c->fd = -1;
		return false;
	}
	c->raw.len += (size_t)r;
	c->raw.data[c->raw.len] = '\0';
	return true;
}

/* True when data[0..len) holds the whole header, its empty line included. */
static bool header_complete(const char *data, size_t len, size_t *hlen_r)
{
	size_t h = mime_header_length(data, len);

	if (h < len) {
		*hlen_r = h;
		return true;
	}
	/* h == len: complete only if the last line is empty */
	if ((len >= 1 && data[0] == '\n') || (len >= 2 && data[0] == '\r' && data[1] == '\n') ||
	    (len >= 2 && data[len - 1] == '\n' && data[len - 2] == '\n') ||
	    (len >= 3 && data[len - 1] == '\n' && data[len - 2] == '\r' && data[len - 3] == '\n')) {
		*hlen_r = h;
		return true;
	}
	return false;
}

static void load_header(struct msgctx *c)
{
	if (c->have_hdr)
		return;
	for (;;) {
		if (c->raw.len && header_complete(c->raw.data, c->raw.len, &c->hdr_len))
			break;
		if (!read_more(c)) {
			c->hdr_len = c->raw.len;
			break;
		}
	}
	c->have_hdr = true;
}

static void load_all(struct msgctx *c)
{
	if (c->have_all)
		return;
	load_header(c);
	while (read_more(c))
		;
	c->have_all = true;
}

static const char *raw_data(const struct msgctx *c)
{
	return c->raw.data ? c->raw.data : "";
}

/* Appends the fields of a header block, each "name: decoded value\n". */
static void add_decoded_header(struct buf *out, const char *hdr, size_t len)
{
	struct mime_header_iter it;
	struct mime_field f;
	struct buf tmp = BUF_INIT(0);

	mime_header_iter_init(&it, hdr, len);
	while (mime_header_next(&it, &f) == 1) {
		if (f.name_len == 0)
			continue;
		buf_reset(&tmp);
		buf_add(&tmp, f.name, f.name_len);
		buf_adds(&tmp, ": ");
		mime_header_decode(&tmp, f.value, f.value_len);
		buf_addch(&tmp, '\n');
		if (fold_append(out, tmp.data, tmp.len) < 0)
			break;
	}
	buf_release(&tmp);
}

static void load_hdrtext(struct msgctx *c)
{
	if (c->have_hdrtext)
		return;
	load_header(c);
	add_decoded_header(&c->hdrtext, raw_data(c), c->hdr_len);
	c->have_hdrtext = true;
}

/* The decoded text of the body: every leaf part with its transfer
 * encoding undone (text parts also converted to UTF-8), and the headers of
 * encapsulated messages (message/rfc822), which belong to the body. */
static void load_body(struct msgctx *c)
{
	const struct mime_part *p;
	struct buf tmp;

	if (c->have_body)
		return;
	c->have_body = true;
	load_all(c);
	mime_parse(raw_data(c), c->raw.len, NULL, &c->mime);
	buf_init(&tmp, 2 * c->raw.len + 4096);
	p = c->mime->root;
	while (p) {
		if (p->parent && (p->parent->flags & MIME_PART_MESSAGE))
			add_decoded_header(&c->body, c->mime->data + p->hdr_off, p->hdr_len);
		if (!p->children) {
			buf_reset(&tmp);
			if (mime_part_decode(&tmp, c->mime, p, MIME_DECODE_UTF8) == 0) {
				fold_append(&c->body, tmp.data ? tmp.data : "", tmp.len);
				buf_addch(&c->body, '\n');
			}
		}
		/* next in document order */
		if (p->children) {
			p = p->children;
			continue;
		}
		while (p && !p->next)
			p = p->parent;
		if (p)
			p = p->next;
	}
	buf_release(&tmp);
}

static bool header_match(struct msgctx *c, const struct skey *k)
{
	struct mime_header_iter it;
	struct mime_field f;
	struct buf dec = BUF_INIT(0), folded = BUF_INIT(0);
	size_t flen = strlen(k->field);
	bool found = false;

	load_header(c);
	mime_header_iter_init(&it, raw_data(c), c->hdr_len);
	while (!found && mime_header_next(&it, &f) == 1) {
		if (f.name_len != flen || strncasecmp(f.name, k->field, flen) != 0)
			continue;
		if (k->needle_len == 0) {
			found = true;
			break;
		}
		buf_reset(&dec);
		buf_reset(&folded);
		mime_header_decode(&dec, f.value, f.value_len);
		fold_append(&folded, dec.data ? dec.data : "", dec.len);
		found = contains(folded.data, folded.len, k);
	}
	buf_release(&dec);
	buf_release(&folded);
	return found;
}

static bool sent_day(struct msgctx *c, int64_t *day_r)
{
	struct mime_field f;

	if (c->sent_state == 0) {
		load_header(c);
		c->sent_state = -1;
		if (mime_header_find(raw_data(c), c->hdr_len, "Date", &f) == 1) {
			struct buf v = BUF_INIT(0);
			mime_header_unfold(&v, f.value, f.value_len);
			if (parse_header_date(v.data ? v.data : "", v.len, &c->sent_day))
				c->sent_state = 1;
			buf_release(&v);
		}
	}
	*day_r = c->sent_day;
	return c->sent_state == 1;
}

/* ---- matching ---- */

static enum tri eval(struct msgctx *c, const struct skey *k, enum stage st)
{
	const struct mbox_msg *msg = c->msg;
	struct imap_session *s = c->x->cmd->s;
	int64_t day;

	switch (k->type) {
	case K_ALL:
		return T_TRUE;
	case K_AND: {
		enum tri r = T_TRUE;
		for (const struct skey *q = k->kids; q; q = q->next) {
			enum tri t = eval(c, q, st);
			if (t == T_FALSE)
				return T_FALSE;
			if (t == T_UNKNOWN)
				r = T_UNKNOWN;
		}
		return r;
	}
	case K_OR: {
		enum tri r = T_FALSE;
		for (const struct skey *q = k->kids; q; q = q->next) {
			enum tri t = eval(c, q, st);
			if (t == T_TRUE)
				return T_TRUE;
			if (t == T_UNKNOWN)
				r = T_UNKNOWN;
		}
		return r;
	}
	case K_NOT: {
		enum tri t = eval(c, k->kids, st);
		return t == T_UNKNOWN ? T_UNKNOWN : (t == T_TRUE ? T_FALSE : T_TRUE);
	}
	case K_FLAG:
		return (imap_msg_flags(c->x->m, c->i) & k->flag) ? T_TRUE : T_FALSE;
	case K_UNFLAG:
		return (imap_msg_flags(c->x->m, c->i) & k->flag) ? T_FALSE : T_TRUE;
	case K_NEW:
		return mbox_is_recent(c->x->m, c->i) && !(msg->flags & MBOX_SEEN) ? T_TRUE : T_FALSE;
	case K_OLD:
		return mbox_is_recent(c->x->m, c->i) ? T_FALSE : T_TRUE;
	case K_KEYWORD:
		return mbox_keyword_listed(msg->keywords, k->keyword, strlen(k->keyword)) ? T_TRUE : T_FALSE;
	case K_UNKEYWORD:
		return mbox_keyword_listed(msg->keywords, k->keyword, strlen(k->keyword)) ? T_FALSE : T_TRUE;
	case K_LARGER:
		return msg->vsize > k->num ? T_TRUE : T_FALSE;
	case K_SMALLER:
		return msg->vsize < k->num ? T_TRUE : T_FALSE;
	case K_BEFORE:
		return internal_day(msg->internaldate) < k->day ? T_TRUE : T_FALSE;
	case K_ON:
		return internal_day(msg->internaldate) == k->day ? T_TRUE : T_FALSE;
	case K_SINCE:
		return internal_day(msg->internaldate) >= k->day ? T_TRUE : T_FALSE;
	case K_SEQ:
		if (k->saved)
			return imap_seqset_contains(&s->saved, msg->uid) ? T_TRUE : T_FALSE;
		return imap_seqset_contains(&k->set, (uint32_t)c->i + 1) ? T_TRUE : T_FALSE;
	case K_UID:
		if (k->saved)
			return imap_seqset_contains(&s->saved, msg->uid) ? T_TRUE : T_FALSE;
		return imap_seqset_contains(&k->set, msg->uid) ? T_TRUE : T_FALSE;
	case K_MODSEQ:
		return msg->modseq >= k->num ? T_TRUE : T_FALSE;
	case K_SENTBEFORE:
	case K_SENTON:
	case K_SENTSINCE:
		if (st < STAGE_HEADER)
			return T_UNKNOWN;
		if (!sent_day(c, &day))
			return T_FALSE;
		if (k->type == K_SENTBEFORE)
			return day < k->day ? T_TRUE : T_FALSE;
		if (k->type == K_SENTON)
			return day == k->day ? T_TRUE : T_FALSE;
		return day >= k->day ? T_TRUE : T_FALSE;
	case K_HEADER:
		if (st < STAGE_HEADER)
			return T_UNKNOWN;
		return header_match(c, k) ? T_TRUE : T_FALSE;
	case K_BODY:
		if (st < STAGE_BODY)
			return T_UNKNOWN;
		load_body(c);
		return contains(c->body.data, c->body.len, k) ? T_TRUE : T_FALSE;
	case K_TEXT:
		if (st < STAGE_BODY)
			return T_UNKNOWN;
		load_hdrtext(c);
		if (contains(c->hdrtext.data, c->hdrtext.len, k))
			return T_TRUE;
		load_body(c);
		return contains(c->body.data, c->body.len, k) ? T_TRUE : T_FALSE;
	}
	return T_FALSE;
}

static bool match(struct msgctx *c, const struct skey *root)
{
	enum tri r = eval(c, root, STAGE_INDEX);

	if (r == T_UNKNOWN)
		r = eval(c, root, STAGE_HEADER);
	if (r == T_UNKNOWN)
		r = eval(c, root, STAGE_BODY);
	return r == T_TRUE;
}

/* ---- the command ---- */

static void write_tag_quoted(struct buf *out, const char *tag)
{
	if (imap_write_quoted(out, tag, strlen(tag), 0) < 0)
		buf_adds(out, "\"\"");
}

static int search_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct search x = { 0 };
	struct skey *root;
	struct msgctx c = { 0 };
	struct imap_seqset hits = IMAP_SEQSET_INIT;     /* seq numbers or UIDs */
	uint32_t min_id = 0, max_id = 0, min_uid = 0, max_uid = 0;
	uint64_t count = 0, hi_modseq = 0, min_modseq = 0, max_modseq = 0;

	x.cmd = cmd;
	x.m = imap_mbox(s);
	x.n = mbox_count(x.m);
	x.read_max = s->cfg.max_literal ? (size_t)s->cfg.max_literal : SEARCH_DEFAULT_READ_MAX;
	root = parse_search(&x, cmd->args, cmd->count);
	if (!root) {
		/* RFC 5182 2.1: a failed SEARCH with SAVE empties "$". */
		if (x.ret & RET_SAVE)
			imap_seqset_clear(&s->saved);
		if (x.badcharset)
			imap_cmd_tagged(cmd, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
		else
			imap_cmd_bad(cmd, x.error ? x.error : "Invalid search");
		keys_free(&x);
		return IMAP_RUN_DONE;
	}
	if (x.modseq_used)
		s->condstore = true;   /* a CONDSTORE enabling command (RFC 7162 3.1) */

	c.x = &x;
	c.fd = -1;
	buf_init(&c.raw, x.read_max);
	buf_init(&c.body, 0);
	buf_init(&c.hdrtext, 0);
	for (size_t i = 0; i < x.n; i++) {
		const struct mbox_msg *msg = mbox_get(x.m, i);
		uint32_t id = cmd->uid ? msg->uid : (uint32_t)i + 1;

		c.i = i;
		c.msg = msg;
		if (match(&c, root)) {
			imap_seqset_add(&hits, id);
			if (!min_id) {
				min_id = id;
				min_uid = msg->uid;
				min_modseq = msg->modseq;
			}
			max_id = id;
			max_uid = msg->uid;
			max_modseq = msg->modseq;
			count++;
			if (msg->modseq > hi_modseq)
				hi_modseq = msg->modseq;
		}
		msg_reset(&c);
	}
	msg_reset(&c);
	buf_release(&c.raw);
	buf_release(&c.body);
	buf_release(&c.hdrtext);

	if (!x.esearch) {
		struct imap_seqset_iter it;
		uint32_t id;
		buf_adds(&cmd->out, "* SEARCH");
		imap_seqset_iter_init(&it, &hits);
		while (imap_seqset_iter_next(&it, &id))
			buf_printf(&cmd->out, " %u", id);
		if (x.modseq_used && count)
			buf_printf(&cmd->out, " (MODSEQ %llu)", (unsigned long long)hi_modseq);
		buf_adds(&cmd->out, "\r\n");
	} else {
		bool minmax_only = (x.ret & (RET_MIN | RET_MAX)) && !(x.ret & (RET_ALL | RET_COUNT));
		if (x.ret & RET_SAVE) {
			imap_seqset_clear(&s->saved);
			if (minmax_only) {
				/* RFC 5182 2.1: SAVE with MIN and/or MAX saves just those. */
				if ((x.ret & RET_MIN) && min_uid)
					imap_seqset_add(&s->saved, min_uid);
				if ((x.ret & RET_MAX) && max_uid)
					imap_seqset_add(&s->saved, max_uid);
			} else {
				for (size_t i = 0; i < x.n; i++) {
					const struct mbox_msg *msg = mbox_get(x.m, i);
					uint32_t id = cmd->uid ? msg->uid : (uint32_t)i + 1;
					if (imap_seqset_contains(&hits, id))
						imap_seqset_add(&s->saved, msg->uid);
				}
			}
		}
		/* RFC 5182 2.1: SAVE alone gives no ESEARCH response. */
		if (x.ret != RET_SAVE) {
			buf_adds(&cmd->out, "* ESEARCH (TAG ");
			write_tag_quoted(&cmd->out, cmd->tag);
			buf_addch(&cmd->out, ')');
			if (cmd->uid)
				buf_adds(&cmd->out, " UID");
			if ((x.ret & RET_MIN) && count)
				buf_printf(&cmd->out, " MIN %u", min_id);
			if ((x.ret & RET_MAX) && count)
				buf_printf(&cmd->out, " MAX %u", max_id);
			if ((x.ret & RET_ALL) && count) {
				buf_adds(&cmd->out, " ALL ");
				imap_seqset_format(&hits, &cmd->out);
			}
			if (x.ret & RET_COUNT)
				buf_printf(&cmd->out, " COUNT %llu", (unsigned long long)count);
			if (x.modseq_used && count) {
				/* RFC 7162 3.1.5: the highest modseq of the messages
				 * returned: MIN/MAX ones only when nothing else is. */
				uint64_t ms = hi_modseq;
				if (minmax_only) {
					ms = 0;
					if (x.ret & RET_MIN)
						ms = min_modseq;
					if ((x.ret & RET_MAX) && max_modseq > ms)
						ms = max_modseq;
				}
				buf_printf(&cmd->out, " MODSEQ %llu", (unsigned long long)ms);
			}
			buf_adds(&cmd->out, "\r\n");
		}
	}
	imap_seqset_release(&hits);
	keys_free(&x);
	imap_cmd_tagged(cmd, "OK", "%s completed", cmd->uid ? "UID SEARCH" : "Search");
	return IMAP_RUN_DONE;
}

static void cmd_search(struct imap_cmd *cmd)
{
	if (cmd->count == 0) {
		imap_cmd_bad(cmd, "SEARCH needs search keys");
		return;
	}
	cmd->run = search_run;
}

const struct imap_cmd_def imap_cmds_search[] = {
	{ "SEARCH", IMAP_SELECTED, cmd_search, IMAP_CMD_NO_REFRESH },
	{ "UID SEARCH", IMAP_SELECTED, cmd_search, 0 },
	{ NULL, 0, NULL, 0 },
};
