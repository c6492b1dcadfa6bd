/*
 * ENVELOPE, BODYSTRUCTURE and BODY[section] (RFC 3501 6.4.5, 7.4.2).
 * See imap/imap-envelope.h for the output conventions.
 *
 * Writers go through struct w, which remembers the first -ENOBUFS so the
 * code reads straight; the public functions restore the buffer on failure.
 */

#include "imap/imap-envelope.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

struct w {
	struct buf *out;
	int err;
	struct buf tmp;          /* scratch for whitespace-collapsed strings */
};

static void w_add(struct w *w, const void *s, size_t n)
{
	struct buf *o = w->out;

	if (w->err)
		return;
	/* fast path: room left (cap <= max + 1 keeps the maximum) */
	if (o->cap - o->len > n) {
		memcpy(o->data + o->len, s, n);
		o->len += n;
		o->data[o->len] = '\0';
		return;
	}
	if (buf_add(o, s, n) < 0)
		w->err = -ENOBUFS;
}

/* Appends " <v>" (a space and the number). */
static void w_addnum(struct w *w, size_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	*--p = ' ';
	w_add(w, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void w_adds(struct w *w, const char *s)
{
	w_add(w, s, strlen(s));
}

static void w_addch(struct w *w, char c)
{
	w_add(w, &c, 1);
}

static int w_finish(struct w *w, size_t start)
{
	buf_release(&w->tmp);
	if (w->err) {
		w->out->len = start;
		if (w->out->data)
			w->out->data[start] = '\0';
		return -ENOBUFS;
	}
	return 0;
}

/* Quoted string or literal, as Dovecot's imap_append_nstring() decides;
 * max_esc: how many quotes and backslashes a quoted string may escape
 * before a literal is shorter to read. */
static void put_string_esc(struct w *w, const char *s, size_t n, size_t max_esc)
{
	size_t esc = 0;
	bool lit = false;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			esc++;
		else if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
			lit = true;
	}
	if (lit || esc > max_esc) {
		char hdr[32];
		size_t at;

		snprintf(hdr, sizeof(hdr), "{%zu}\r\n", n);
		w_adds(w, hdr);
		at = w->out->len;
		w_add(w, s, n);
		if (!w->err) {
			char *p = w->out->data + at, *e = p + n;

			while ((p = memchr(p, '\0', (size_t)(e - p))) != NULL)
				*p++ = (char)0x80;
		}
		return;
	}
	if (w->err || buf_reserve(w->out, n + esc + 2) < 0) {
		w->err = -ENOBUFS;
		return;
	}
	{
		char *d = w->out->data + w->out->len;

		*d++ = '"';
		if (esc == 0) {
			/* s may be NULL for an empty string (memcpy must not see it) */
			if (n)
				memcpy(d, s, n);
			d += n;
		} else {
			for (size_t i = 0; i < n; i++) {
				if (s[i] == '"' || s[i] == '\\')
					*d++ = '\\';
				*d++ = s[i];
			}
		}
		*d++ = '"';
		*d = '\0';
		w->out->len = (size_t)(d - w->out->data);
	}
}

static void put_string(struct w *w, const char *s, size_t n)
{
	put_string_esc(w, s, n, 4);
}

static void put_cstring(struct w *w, const char *s)
{
	put_string(w, s, strlen(s));
}

static void put_nstring(struct w *w, const char *s)
{
	if (!s)
		w_adds(w, "NIL");
	else
		put_cstring(w, s);
}

/* A header value unfolded (CR and LF dropped). */
static void put_unfolded(struct w *w, const char *s, size_t n)
{
	buf_reset(&w->tmp);
	if (mime_header_unfold(&w->tmp, s, n) < 0) {
		w->err = -ENOBUFS;
		return;
	}
	put_string(w, w->tmp.data ? w->tmp.data : "", w->tmp.len);
}

/*
 * A string for people (subject, display names): line breaks dropped, runs of
 * whitespace made one space, none at either end, NUL made 0x80
 * (Dovecot's imap_append_string_for_humans()).
 */
static void put_human(struct w *w, const char *s, size_t n)
{
	bool space = false;

	char *d;

	buf_reset(&w->tmp);
	if (buf_reserve(&w->tmp, n) < 0) {
		w->err = -ENOBUFS;
		return;
	}
	d = w->tmp.data;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\r' || c == '\n')
			continue;
		if (c == ' ' || c == '\t') {
			space = true;
			continue;
		}
		if (space && d > w->tmp.data)
			*d++ = ' ';
		space = false;
		*d++ = c == '\0' ? (char)0x80 : c;
	}
	*d = '\0';
	w->tmp.len = (size_t)(d - w->tmp.data);
	put_string(w, w->tmp.data, w->tmp.len);
}

/* ------------------------------------------------------------------ */
/* Addresses (RFC 5322 3.4 and 4.4, leniently, as Dovecot reads them)  */

struct ap {
	const char *p, *end;
	struct buf comment;      /* the last comment skipped */
	struct buf name, route, mailbox, domain;
	bool have_mailbox, have_domain, syntax_error;
};

/* RFC 5322 atext, plus 8-bit (RFC 6532). */
static bool is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '/': case '=': case '?': case '^': case '_': case '`': case '{':
	case '|': case '}': case '~':
		return true;
	default:
		return false;
	}
}

/* After a backslash: a line break right behind it is a fold, removed
 * before the header is read (RFC 5322 3.2.2: unfolding comes first), so
 * the backslash quotes the blank after it, whether the file ends its lines
 * with LF or CRLF. Returns the quoted character, or -1 at the end. */
static int ap_quoted_pair(struct ap *a)
{
	while (a->p < a->end && (*a->p == '\r' || *a->p == '\n'))
		a->p++;
	return a->p < a->end ? (unsigned char)*a->p++ : -1;
}

static void ap_cfws(struct ap *a)
{
	while (a->p < a->end) {
		char c = *a->p;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			a->p++;
			continue;
		}
		if (c != '(')
			break;
		buf_reset(&a->comment);
		{
			unsigned level = 0;

			while (a->p < a->end) {
				c = *a->p++;
				if (c == '\\') {
					int q = ap_quoted_pair(a);
					if (q >= 0)
						buf_addch(&a->comment, (char)q);
					continue;
				}
				if (c == '(') {
					if (level++ == 0)
						continue;
				} else if (c == ')') {
					if (--level == 0)
						break;
				}
				if (c != '\r' && c != '\n')
					buf_addch(&a->comment, c);
			}
		}
	}
}

/* Reads atext (and dots when dots) into out; returns the count. */
static size_t ap_atom(struct ap *a, struct buf *out, bool dots)
{
	const char *s = a->p;

	while (a->p < a->end &&
	       (is_atext((unsigned char)*a->p) || (dots && *a->p == '.')))
		a->p++;
	buf_add(out, s, (size_t)(a->p - s));
	return (size_t)(a->p - s);
}

/* Reads a quoted string at a->p ('"') into out, unescaped, folding removed. */
static void ap_quoted(struct ap *a, struct buf *out)
{
	a->p++;
	while (a->p < a->end && *a->p != '"') {
		char c = *a->p++;

		if (c == '\\') {
			int q = ap_quoted_pair(a);
			if (q < 0)
				break;
			c = (char)q;
		} else if (c == '\r' || c == '\n') {
			continue;
		}
		buf_addch(out, c);
	}
	if (a->p < a->end)
		a->p++;
}

/* phrase = 1*word / obs-phrase: words joined by one space. */
static bool ap_phrase(struct ap *a, struct buf *out)
{
	bool any = false;

	for (;;) {
		ap_cfws(a);
		if (a->p >= a->end)
			break;
		if (*a->p == '"') {
			if (any)
				buf_addch(out, ' ');
			ap_quoted(a, out);
		} else if (is_atext((unsigned char)*a->p) || (any && *a->p == '.')) {
			if (any)
				buf_addch(out, ' ');
			ap_atom(a, out, true);
		} else {
			break;
		}
		any = true;
	}
	return any;
}

/* local-part = dot-atom / quoted-string / obs-local-part */
static void ap_local_part(struct ap *a)
{
	ap_cfws(a);
	for (;;) {
		if (a->p < a->end && *a->p == '"') {
			ap_quoted(a, &a->mailbox);
			a->have_mailbox = true;
		} else if (ap_atom(a, &a->mailbox, false) > 0) {
			a->have_mailbox = true;
		} else {
			break;
		}
		ap_cfws(a);
		if (a->p < a->end && *a->p == '.') {
			buf_addch(&a->mailbox, '.');
			a->p++;
			ap_cfws(a);
			continue;
		}
		break;
	}
}

/* domain after '@': dot-atom, obs-domain or a [domain-literal], into out. */
static bool ap_domain(struct ap *a, struct buf *out)
{
	bool any = false;

	ap_cfws(a);
	if (a->p < a->end && *a->p == '[') {
		const char *s = a->p;

		while (a->p < a->end && *a->p != ']') {
			if (*a->p == '\\' && a->p + 1 < a->end)
				a->p++;
			a->p++;
		}
		if (a->p < a->end)
			a->p++;
		mime_header_unfold(out, s, (size_t)(a->p - s));
		ap_cfws(a);
		return true;
	}
	for (;;) {
		if (ap_atom(a, out, false) == 0)
			break;
		any = true;
		ap_cfws(a);
		if (a->p < a->end && *a->p == '.') {
			buf_addch(out, '.');
			a->p++;
			ap_cfws(a);
			continue;
		}
		break;
	}
	return any;
}

/* Skips to the next top-level c1 or c2 (outside quotes, comments and <>). */
static void ap_skip_to(struct ap *a, char c1, char c2)
{
	while (a->p < a->end && *a->p != c1 && *a->p != c2) {
		if (*a->p == '"') {
			struct buf dummy = BUF_INIT(1);

			ap_quoted(a, &dummy);
			buf_release(&dummy);
		} else if (*a->p == '(') {
			ap_cfws(a);
		} else if (*a->p == '<') {
			while (a->p < a->end && *a->p != '>')
				a->p++;
			if (a->p < a->end)
				a->p++;
		} else {
			a->p++;
		}
	}
}

static void ap_reset(struct ap *a)
{
	buf_reset(&a->name);
	buf_reset(&a->route);
	buf_reset(&a->mailbox);
	buf_reset(&a->domain);
	a->have_mailbox = a->have_domain = a->syntax_error = false;
}

/* angle-addr after '<': [obs-route] addr-spec ">" */
static void ap_angle(struct ap *a)
{
	ap_cfws(a);
	if (a->p < a->end && *a->p == '@') {
		/* obs-route = obs-domain-list ":" */
		while (a->p < a->end && *a->p == '@') {
			if (a->route.len)
				buf_addch(&a->route, ',');
			buf_addch(&a->route, '@');
			a->p++;
			ap_domain(a, &a->route);
			while (a->p < a->end && (*a->p == ',' || *a->p == ' ' || *a->p == '\t' ||
						 *a->p == '\r' || *a->p == '\n' || *a->p == '('))
				if (*a->p == '(')
					ap_cfws(a);
				else
					a->p++;
		}
		if (a->p < a->end && *a->p == ':') {
			a->p++;
		} else {
			a->syntax_error = true;
			buf_reset(&a->route);
		}
	}
	ap_local_part(a);
	if (a->p < a->end && *a->p == '@') {
		a->p++;
		a->have_domain = ap_domain(a, &a->domain);
	}
	ap_cfws(a);
	if (a->p < a->end && *a->p == '>') {
		a->p++;
	} else {
		a->syntax_error = true;
		while (a->p < a->end && *a->p != '>' && *a->p != ',')
			a->p++;
		if (a->p < a->end && *a->p == '>')
			a->p++;
	}
	if (!a->have_mailbox)
		a->syntax_error = true;
}

/* mailbox = name-addr / addr-spec. Returns false when nothing was there. */
static bool ap_mailbox(struct ap *a)
{
	const char *start = a->p;

	ap_reset(a);
	ap_phrase(a, &a->name);
	if (a->p < a->end && *a->p == '<') {
		a->p++;
		ap_angle(a);
		return true;
	}
	/* addr-spec; a comment in it gives the name: "user@host (Name)" */
	a->p = start;
	ap_reset(a);
	buf_reset(&a->comment);
	ap_local_part(a);
	if (a->p < a->end && *a->p == '@') {
		a->p++;
		a->have_domain = ap_domain(a, &a->domain);
	}
	ap_cfws(a);
	if (!a->have_mailbox && !a->have_domain)
		return false;
	if (a->comment.len)
		buf_add(&a->name, a->comment.data, a->comment.len);
	return true;
}

static void put_address(struct w *w, struct ap *a, bool *first)
{
	if (*first)
		w_addch(w, '(');
	*first = false;
	w_addch(w, '(');
	if (a->name.len)
		put_human(w, a->name.data, a->name.len);
	else
		w_adds(w, "NIL");
	w_addch(w, ' ');
	if (a->route.len)
		put_string(w, a->route.data, a->route.len);
	else
		w_adds(w, "NIL");
	w_addch(w, ' ');
	if (a->have_mailbox)
		put_string(w, a->mailbox.data ? a->mailbox.data : "", a->mailbox.len);
	else
		w_adds(w, "\"MISSING_MAILBOX\"");
	w_addch(w, ' ');
	if (a->syntax_error)
		w_adds(w, "\"SYNTAX_ERROR\"");
	else if (a->have_domain)
		put_string(w, a->domain.data, a->domain.len);
	else
		w_adds(w, "\"MISSING_DOMAIN\"");
	w_addch(w, ')');
}

/* Writes an address list, or NIL when it holds no address. */
static void put_address_list(struct w *w, struct ap *a, const char *v, size_t n)
{
	bool first = true;

	a->p = v;
	a->end = v + n;
	while (a->p < a->end) {
		/* from before the whitespace: a leading comment may be the name */
		const char *before = a->p;

		ap_cfws(a);
		if (a->p >= a->end)
			break;
		if (*a->p == ',') {
			a->p++;
			continue;
		}
		a->p = before;
		/* group = display-name ":" [group-list] ";" */
		ap_reset(a);
		if (ap_phrase(a, &a->name) && a->p < a->end && *a->p == ':') {
			a->p++;
			if (first)
				w_addch(w, '(');
			first = false;
			w_adds(w, "(NIL NIL ");
			put_string(w, a->name.data, a->name.len);
			w_adds(w, " NIL)");
			for (;;) {
				const char *mb = a->p;

				ap_cfws(a);
				if (a->p >= a->end || *a->p == ';')
					break;
				if (*a->p == ',') {
					a->p++;
					continue;
				}
				a->p = mb;
				if (ap_mailbox(a))
					put_address(w, a, &first);
				ap_cfws(a);
				if (a->p < a->end && *a->p != ',' && *a->p != ';') {
					ap_skip_to(a, ',', ';');
					if (a->p == mb)
						a->p++;
				}
			}
			if (a->p < a->end)
				a->p++;   /* ';' */
			w_adds(w, "(NIL NIL NIL NIL)");
		} else {
			a->p = before;
			if (ap_mailbox(a))
				put_address(w, a, &first);
		}
		ap_cfws(a);
		if (a->p < a->end && *a->p != ',') {
			/* garbage after an address: skip to the next one */
			ap_skip_to(a, ',', ',');
			if (a->p == before)
				a->p++;
		}
	}
	if (first)
		w_adds(w, "NIL");
	else
		w_addch(w, ')');
}

/* ------------------------------------------------------------------ */
/* ENVELOPE                                                           */

enum env_field {
	ENV_DATE, ENV_SUBJECT, ENV_FROM, ENV_SENDER, ENV_REPLY_TO,
	ENV_TO, ENV_CC, ENV_BCC, ENV_IN_REPLY_TO, ENV_MESSAGE_ID, ENV_COUNT
};

static int env_field(const char *name, size_t n)
{
	static const struct { const char *name; int f; } names[] = {
		{ "date", ENV_DATE }, { "subject", ENV_SUBJECT }, { "from", ENV_FROM },
		{ "sender", ENV_SENDER }, { "reply-to", ENV_REPLY_TO }, { "to", ENV_TO },
		{ "cc", ENV_CC }, { "bcc", ENV_BCC }, { "in-reply-to", ENV_IN_REPLY_TO },
		{ "message-id", ENV_MESSAGE_ID },
	};

	static const unsigned char lens[] = { 4, 7, 4, 6, 8, 2, 2, 3, 11, 10 };

	if (n < 2 || n > 11)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (lens[i] == n && strncasecmp(name, names[i].name, n) == 0)
			return names[i].f;
	return -1;
}

static void ap_init(struct ap *a)
{
	memset(a, 0, sizeof(*a));
	buf_init(&a->comment, 0);
	buf_init(&a->name, 0);
	buf_init(&a->route, 0);
	buf_init(&a->mailbox, 0);
	buf_init(&a->domain, 0);
}

static void ap_release(struct ap *a)
{
	buf_release(&a->comment);
	buf_release(&a->name);
	buf_release(&a->route);
	buf_release(&a->mailbox);
	buf_release(&a->domain);
}

static void put_envelope(struct w *w, const char *hdr, size_t hdr_len)
{
	struct mime_header_iter it;
	struct mime_field f, fields[ENV_COUNT];
	bool have[ENV_COUNT] = { false };
	unsigned nhave = 0;
	struct ap a;
	size_t from_start = 0, from_len = 0;

	mime_header_iter_init(&it, hdr, hdr_len);
	while (nhave < ENV_COUNT && mime_header_next(&it, &f) > 0) {
		int i = env_field(f.name, f.name_len);

		if (i >= 0 && !have[i]) {
			have[i] = true;
			fields[i] = f;
			nhave++;
		}
	}
	ap_init(&a);
	w_addch(w, '(');
	for (int i = 0; i < ENV_COUNT; i++) {
		if (i > 0)
			w_addch(w, ' ');
		switch (i) {
		case ENV_DATE:
		case ENV_IN_REPLY_TO:
		case ENV_MESSAGE_ID:
			if (have[i])
				put_unfolded(w, fields[i].value, fields[i].value_len);
			else
				w_adds(w, "NIL");
			break;
		case ENV_SUBJECT:
			if (have[i])
				put_human(w, fields[i].value, fields[i].value_len);
			else
				w_adds(w, "NIL");
			break;
		default: {
			size_t at = w->out->len;

			if (have[i])
				put_address_list(w, &a, fields[i].value, fields[i].value_len);
			else
				w_adds(w, "NIL");
			if (w->err)
				break;
			if (i == ENV_FROM) {
				from_start = at;
				from_len = w->out->len - at;
			} else if ((i == ENV_SENDER || i == ENV_REPLY_TO) &&
				   w->out->len - at == 3 && memcmp(w->out->data + at, "NIL", 3) == 0) {
				/* RFC 3501 7.4.2: absent or empty: the same as from */
				w->out->len = at;
				if (buf_reserve(w->out, from_len) < 0) {
					w->err = -ENOBUFS;
					break;
				}
				memcpy(w->out->data + at, w->out->data + from_start, from_len);
				w->out->len += from_len;
				w->out->data[w->out->len] = '\0';
			}
			break;
		}
		}
	}
	w_addch(w, ')');
	ap_release(&a);
}

int imap_envelope_write(struct buf *out, const char *hdr, size_t hdr_len)
{
	struct w w = { out, 0, BUF_INIT(0) };
	size_t start = out->len;

	put_envelope(&w, hdr, hdr_len);
	return w_finish(&w, start);
}

/* ------------------------------------------------------------------ */
/* BODYSTRUCTURE                                                      */

static void put_params(struct w *w, const struct mime_param *p, unsigned n, bool default_charset)
{
	bool seen = false;

	if (n == 0 && !default_charset) {
		w_adds(w, "NIL");
		return;
	}
	w_addch(w, '(');
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			w_addch(w, ' ');
		put_cstring(w, p[i].name);
		w_addch(w, ' ');
		put_cstring(w, p[i].value);
		if (strcasecmp(p[i].name, "charset") == 0)
			seen = true;
	}
	if (default_charset && !seen) {
		if (n > 0)
			w_addch(w, ' ');
		w_adds(w, "\"charset\" \"us-ascii\"");
	}
	w_addch(w, ')');
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void put_ext_common(struct w *w, const struct mime_part *p)
{
	w_addch(w, ' ');
	if (!p->disposition) {
		w_adds(w, "NIL");
	} else {
		w_addch(w, '(');
		put_cstring(w, p->disposition);
		w_addch(w, ' ');
		put_params(w, p->disp_params, p->ndisp_params, false);
		w_addch(w, ')');
	}
	w_addch(w, ' ');
	if (!p->nlanguages) {
		w_adds(w, "NIL");
	} else {
		w_addch(w, '(');
		for (unsigned i = 0; i < p->nlanguages; i++) {
			if (i > 0)
				w_addch(w, ' ');
			put_cstring(w, p->languages[i]);
		}
		w_addch(w, ')');
	}
	w_addch(w, ' ');
	put_nstring(w, p->location);
}

static void put_body(struct w *w, const struct mime_message *m, const struct mime_part *p, bool ext)
{
	w_addch(w, '(');
	if (p->flags & MIME_PART_MULTIPART) {
		if (!p->children) {
			/* no parts at all: not allowed by the grammar; Dovecot sends one empty part */
			w_adds(w, ext ? "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"
				      : "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
		}
		for (const struct mime_part *c = p->children; c; c = c->next)
			put_body(w, m, c, ext);
		w_addch(w, ' ');
		put_cstring(w, p->subtype);
		if (ext) {
			w_addch(w, ' ');
			put_params(w, p->params, p->nparams, false);
			put_ext_common(w, p);
		}
		w_addch(w, ')');
		return;
	}

	if (p->flags & MIME_PART_OPAQUE) {
		w_adds(w, "\"application\" \"octet-stream\" NIL");
	} else if (p->flags & MIME_PART_MESSAGE) {
		w_adds(w, strcasecmp(p->subtype, "global") == 0 ? "\"message\" \"global\" "
							        : "\"message\" \"rfc822\" ");
		put_params(w, p->params, p->nparams, false);
	} else {
		put_cstring(w, p->type);
		w_addch(w, ' ');
		put_cstring(w, p->subtype);
		w_addch(w, ' ');
		put_params(w, p->params, p->nparams, (p->flags & MIME_PART_TEXT) != 0);
	}
	w_addch(w, ' ');
	put_nstring(w, p->id);
	w_addch(w, ' ');
	put_nstring(w, p->description);
	w_addch(w, ' ');
	if (p->encoding)
		put_cstring(w, p->encoding);
	else
		w_adds(w, "\"7bit\"");
	w_addnum(w, p->body_size);
	if (p->flags & MIME_PART_TEXT) {
		w_addnum(w, p->body_lines);
	} else if (p->flags & MIME_PART_MESSAGE) {
		const struct mime_part *c = p->children;

		w_addch(w, ' ');
		put_envelope(w, m->data + c->hdr_off, c->hdr_len);
		w_addch(w, ' ');
		put_body(w, m, c, ext);
		w_addnum(w, p->body_lines);
	}
	if (ext) {
		w_addch(w, ' ');
		put_nstring(w, p->md5);
		put_ext_common(w, p);
	}
	w_addch(w, ')');
}

int imap_bodystructure_write(struct buf *out, const struct mime_message *msg, bool extended)
{
	struct w w = { out, 0, BUF_INIT(0) };
	size_t start = out->len;

	put_body(&w, msg, msg->root, extended);
	return w_finish(&w, start);
}

/* ------------------------------------------------------------------ */
/* BODY[section]                                                      */

void imap_section_init(struct imap_section *s)
{
	memset(s, 0, sizeof(*s));
}

void imap_section_release(struct imap_section *s)
{
	for (unsigned i = 0; i < s->nfields; i++)
		free(s->fields[i]);
	free(s->fields);
	imap_section_init(s);
}

int imap_section_add_field(struct imap_section *s, const char *name, size_t len)
{
	if (s->nfields >= IMAP_SECTION_MAX_FIELDS)
		return -E2BIG;
	if ((s->nfields & (s->nfields - 1)) == 0)
		s->fields = xrealloc(s->fields, (s->nfields ? s->nfields * 2 : 1) * sizeof(*s->fields));
	s->fields[s->nfields++] = xstrndup(name, len);
	return 0;
}

static bool kw(const char **p, const char *end, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(end - *p) < n || strncasecmp(*p, word, n) != 0)
		return false;
	*p += n;
	return true;
}

/* ASTRING-CHAR minus atom-specials ("(" ")" "{" SP CTL "%" "*" DQUOTE "\"), ']' allowed. */
static bool is_astring_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\", c);
}

static int parse_field_list(struct imap_section *s, const char *p, const char *end)
{
	if (p >= end || *p != ' ')
		return -EINVAL;
	p++;
	if (p >= end || *p != '(')
		return -EINVAL;
	p++;
	for (;;) {
		const char *st = p;

		if (p < end && *p == '"') {
			struct buf name = BUF_INIT(1024);
			int r;

			p++;
			while (p < end && *p != '"') {
				if (*p == '\\' && p + 1 < end)
					p++;
				/* QUOTED-CHAR: 7-bit, no CR or LF (RFC 3501 9) */
				if (*p == '\r' || *p == '\n' || *p == '\0' || (unsigned char)*p >= 0x80 ||
				    buf_addch(&name, *p) < 0) {
					buf_release(&name);
					return -EINVAL;
				}
				p++;
			}
			if (p >= end) {
				buf_release(&name);
				return -EINVAL;
			}
			p++;
			r = imap_section_add_field(s, name.data ? name.data : "", name.len);
			buf_release(&name);
			if (r < 0)
				return -EINVAL;
		} else {
			while (p < end && is_astring_char((unsigned char)*p) && *p != ')')
				p++;
			if (p == st || imap_section_add_field(s, st, (size_t)(p - st)) < 0)
				return -EINVAL;
		}
		if (p < end && *p == ' ') {
			p++;
			continue;
		}
		if (p < end && *p == ')' && p + 1 == end)
			return 0;
		return -EINVAL;
	}
}

int imap_section_parse(struct imap_section *s, const char *spec, size_t len)
{
	const char *p = spec, *end = spec + len;
	int r = 0;

	imap_section_release(s);
	while (p < end && *p >= '0' && *p <= '9') {
		unsigned long v = 0;

		if (*p == '0' || s->nparts == IMAP_SECTION_MAX_PARTS)
			goto bad;
		while (p < end && *p >= '0' && *p <= '9') {
			v = v * 10 + (unsigned long)(*p++ - '0');
			if (v > UINT32_MAX)
				goto bad;
		}
		s->parts[s->nparts++] = (unsigned)v;
		if (p == end)
			return 0;
		if (*p != '.')
			goto bad;
		p++;
		if (p == end)
			goto bad;
	}
	if (p == end) {
		s->text = IMAP_SECTION_ALL;
		return 0;
	}
	if (kw(&p, end, "HEADER.FIELDS.NOT")) {
		s->text = IMAP_SECTION_HEADER_FIELDS_NOT;
		r = parse_field_list(s, p, end);
	} else if (kw(&p, end, "HEADER.FIELDS")) {
		s->text = IMAP_SECTION_HEADER_FIELDS;
		r = parse_field_list(s, p, end);
	} else if (kw(&p, end, "HEADER")) {
		s->text = IMAP_SECTION_HEADER;
		r = p == end ? 0 : -EINVAL;
	} else if (kw(&p, end, "TEXT")) {
		s->text = IMAP_SECTION_TEXT;
		r = p == end ? 0 : -EINVAL;
	} else if (kw(&p, end, "MIME")) {
		s->text = IMAP_SECTION_MIME;
		r = p == end && s->nparts > 0 ? 0 : -EINVAL;
	} else {
		r = -EINVAL;
	}
	if (r == 0)
		return 0;
bad:
	imap_section_release(s);
	return -EINVAL;
}

int imap_section_write(struct buf *out, const struct imap_section *s)
{
	struct w w = { out, 0, BUF_INIT(0) };
	size_t start = out->len;
	char num[16];
	static const char *const names[] = {
		[IMAP_SECTION_ALL] = "", [IMAP_SECTION_HEADER] = "HEADER",
		[IMAP_SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
		[IMAP_SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
		[IMAP_SECTION_TEXT] = "TEXT", [IMAP_SECTION_MIME] = "MIME",
	};

	for (unsigned i = 0; i < s->nparts; i++) {
		snprintf(num, sizeof(num), i ? ".%u" : "%u", s->parts[i]);
		w_adds(&w, num);
	}
	if (s->text != IMAP_SECTION_ALL) {
		if (s->nparts)
			w_addch(&w, '.');
		w_adds(&w, names[s->text]);
	}
	if (s->text == IMAP_SECTION_HEADER_FIELDS || s->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
		w_adds(&w, " (");
		for (unsigned i = 0; i < s->nfields; i++) {
			const char *f = s->fields[i];
			bool atom = *f != '\0';

			for (const char *c = f; *c; c++)
				if (!is_astring_char((unsigned char)*c) || *c == ')' || *c == ']')
					atom = false;
			if (i)
				w_addch(&w, ' ');
			/* A field name stays a quoted string whatever it
			 * escapes (a literal only for what a quoted string
			 * cannot hold), so that the section reads back with
			 * imap_section_parse() (fuzz-mime's round trip). */
			if (atom)
				w_adds(&w, f);
			else
				put_string_esc(&w, f, strlen(f), SIZE_MAX);
		}
		w_addch(&w, ')');
	}
	return w_finish(&w, start);
}

const struct mime_part *imap_section_part(const struct mime_message *msg,
					  const unsigned *parts, unsigned nparts)
{
	const struct mime_part *cur = msg->root;
	bool at_message = true;   /* cur is a message: its top entity */

	for (unsigned i = 0; i < nparts; i++) {
		unsigned num = parts[i];

		if (!at_message && (cur->flags & MIME_PART_MESSAGE)) {
			cur = cur->children;
			at_message = true;
		}
		if (cur->flags & MIME_PART_MULTIPART) {
			const struct mime_part *c = cur->children;

			if (num == 0 || num > cur->nchildren)
				return NULL;
			while (--num > 0)
				c = c->next;
			cur = c;
		} else if (!at_message || num != 1) {
			return NULL;
		}
		/* else: part 1 of a non-multipart message is its body */
		at_message = false;
	}
	return cur;
}

static bool field_listed(const struct imap_section *s, const struct mime_field *f)
{
	for (unsigned i = 0; i < s->nfields; i++)
		if (strlen(s->fields[i]) == f->name_len &&
		    strncasecmp(s->fields[i], f->name, f->name_len) == 0)
			return true;
	return false;
}

/* Builds HEADER.FIELDS[.NOT] of a header in CRLF form into tmp. */
static int header_fields(struct buf *tmp, const char *hdr, size_t len, const struct imap_section *s)
{
	struct mime_header_iter it;
	struct mime_field f;
	bool not = s->text == IMAP_SECTION_HEADER_FIELDS_NOT;

	mime_header_iter_init(&it, hdr, len);
	while (mime_header_next(&it, &f) > 0) {
		bool listed = f.name_len > 0 && field_listed(s, &f);

		if (listed == not)
			continue;
		if (mime_crlf_append(tmp, f.raw, f.raw_len, 0, SIZE_MAX, MIME_CRLF_NUL_TO_80) < 0)
			return -ENOBUFS;
		if (f.raw[f.raw_len - 1] != '\n' && buf_adds(tmp, "\r\n") < 0)
			return -ENOBUFS;
	}
	return buf_adds(tmp, "\r\n");
}

int imap_section_fetch(struct buf *out, const struct mime_message *msg,
		       const struct imap_section *s, size_t offset, size_t max,
		       size_t *size_r)
{
	const struct mime_part *p = msg->root;
	size_t off, len, size;

	*size_r = 0;
	if (s->text == IMAP_SECTION_MIME && s->nparts == 0)
		return -EINVAL;
	if (s->nparts) {
		p = imap_section_part(msg, s->parts, s->nparts);
		if (!p)
			return 0;
		if (s->text != IMAP_SECTION_ALL && s->text != IMAP_SECTION_MIME) {
			/* HEADER, TEXT, HEADER.FIELDS: of the encapsulated message */
			if (!(p->flags & MIME_PART_MESSAGE))
				return 0;
			p = p->children;
		}
	}
	switch (s->text) {
	case IMAP_SECTION_ALL:
		if (s->nparts == 0) {
			off = 0;
			len = msg->len;
			size = p->hdr_size + p->body_size;
		} else {
			off = p->body_off;
			len = p->body_len;
			size = p->body_size;
		}
		break;
	case IMAP_SECTION_HEADER:
	case IMAP_SECTION_MIME:
		off = p->hdr_off;
		len = p->hdr_len;
		size = p->hdr_size;
		break;
	case IMAP_SECTION_TEXT:
		off = p->body_off;
		len = p->body_len;
		size = p->body_size;
		break;
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT: {
		struct buf tmp = BUF_INIT(0);
		int r = header_fields(&tmp, msg->data + p->hdr_off, p->hdr_len, s);

		*size_r = tmp.len;
		if (r == 0 && offset < tmp.len) {
			size_t n = tmp.len - offset;

			if (n > max)
				n = max;
			r = buf_add(out, tmp.data + offset, n);
		}
		buf_release(&tmp);
		return r < 0 ? -ENOBUFS : 1;
	}
	default:
		return -EINVAL;
	}
	*size_r = size;
	if (mime_crlf_append(out, msg->data + off, len, offset, max, MIME_CRLF_NUL_TO_80) < 0)
		return -ENOBUFS;
	return 1;
}
