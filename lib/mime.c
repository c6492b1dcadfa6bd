/*
 * RFC 5322 headers, the RFC 2045/2046 MIME tree, and the decoders behind
 * IMAP FETCH and SEARCH. See lib/mime.h for the contract; the notes here say
 * how the one-pass parser decides where parts begin and end.
 *
 * Boundaries (RFC 2046 5.1.1, read the way Dovecot reads them): a line that
 * starts with "--" followed by the boundary of any open multipart is a
 * delimiter; when several open boundaries match, the longest wins, and on a
 * tie the innermost. A delimiter of an outer multipart closes every part
 * still open inside it (a missing closing delimiter). The line break before
 * a delimiter belongs to the delimiter, unless the delimiter is the first
 * line of the part's current section (then there is no such line break in
 * that section). A delimiter line also ends a header that has no empty line.
 */

#include "lib/mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

/* ------------------------------------------------------------------ */
/* Arena: every part and string of one message, freed at once.        */

struct mime_arena {
	struct mime_arena *next;
	size_t used, cap;
	max_align_t data[];
};

#define ARENA_BLOCK 8192

static void *arena_alloc(struct mime_message *m, size_t n)
{
	struct mime_arena *a = m->arena;
	size_t al = alignof(max_align_t);
	void *p;

	n = (n + al - 1) / al * al;
	if (n == 0)
		n = al;
	if (!a || a->cap - a->used < n) {
		size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;

		a = xmalloc(sizeof(*a) + cap);
		a->used = 0;
		a->cap = cap;
		/* A big request gets its own block behind the current one, so that
		 * the current block's free tail stays in use. */
		if (m->arena && n > ARENA_BLOCK) {
			a->next = m->arena->next;
			m->arena->next = a;
		} else {
			a->next = m->arena;
			m->arena = a;
		}
	}
	p = (char *)a->data + a->used;
	a->used += n;
	return p;
}

static void *arena_zalloc(struct mime_message *m, size_t n)
{
	void *p = arena_alloc(m, n);

	memset(p, 0, n);
	return p;
}

/* Copies n bytes as a C string, CR and LF dropped, NUL turned into 0x80. */
static char *arena_strdup_clean(struct mime_message *m, const char *s, size_t n)
{
	char *r = arena_alloc(m, n + 1), *w = r;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\r' || c == '\n')
			continue;
		*w++ = c == '\0' ? (char)0x80 : c;
	}
	*w = '\0';
	return r;
}

/* ------------------------------------------------------------------ */
/* Headers                                                            */

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Position after the line that starts at p (after its LF, or end). */
static const char *line_next(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl ? nl + 1 : end;
}

static bool line_is_blank(const char *p, const char *end)
{
	return (p < end && *p == '\n') ||
	       (end - p >= 2 && p[0] == '\r' && p[1] == '\n');
}

size_t mime_header_length(const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	while (p < end) {
		if (line_is_blank(p, end))
			return (size_t)(line_next(p, end) - data);
		p = line_next(p, end);
	}
	return len;
}

void mime_header_iter_init(struct mime_header_iter *it, const char *hdr, size_t len)
{
	it->p = hdr;
	it->end = hdr + len;
}

int mime_header_next(struct mime_header_iter *it, struct mime_field *f)
{
	const char *line = it->p, *end = it->end, *next, *first_end, *colon, *v, *ve;

	if (line >= end || line_is_blank(line, end)) {
		it->p = end;
		return 0;
	}
	first_end = memchr(line, '\n', (size_t)(end - line));
	if (!first_end)
		first_end = end;
	next = first_end < end ? first_end + 1 : end;
	/* continuation lines: those that start with whitespace */
	while (next < end && is_wsp(*next))
		next = line_next(next, end);
	it->p = next;

	f->raw = line;
	f->raw_len = (size_t)(next - line);
	f->name = line;
	f->name_len = 0;
	/* value: the field without its final line break */
	ve = next;
	if (ve > line && ve[-1] == '\n') {
		ve--;
		if (ve > line && ve[-1] == '\r')
			ve--;
	}
	colon = is_wsp(*line) ? NULL : memchr(line, ':', (size_t)(first_end - line));
	if (!colon) {
		f->value = line;
		f->value_len = (size_t)(ve - line);
		return 1;
	}
	f->name_len = (size_t)(colon - line);
	while (f->name_len > 0 && is_wsp(line[f->name_len - 1]))
		f->name_len--;
	v = colon + 1;
	while (v < ve && (is_wsp(*v) || *v == '\r' || *v == '\n'))
		v++;
	f->value = v;
	f->value_len = (size_t)(ve - v);
	return 1;
}

int mime_header_iter_find(struct mime_header_iter *it, const char *name, struct mime_field *f)
{
	size_t n = strlen(name);

	while (mime_header_next(it, f) > 0)
		if (f->name_len == n && strncasecmp(f->name, name, n) == 0)
			return 1;
	return 0;
}

int mime_header_find(const char *hdr, size_t len, const char *name, struct mime_field *f)
{
	struct mime_header_iter it;

	mime_header_iter_init(&it, hdr, len);
	return mime_header_iter_find(&it, name, f);
}

int mime_header_unfold(struct buf *out, const char *value, size_t len)
{
	size_t start = out->len, i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && value[j] != '\r' && value[j] != '\n')
			j++;
		if (j > i && buf_add(out, value + i, j - i) < 0) {
			out->len = start;
			if (out->data)
				out->data[start] = '\0';
			return -ENOBUFS;
		}
		i = j + 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* MIME field syntax (RFC 2045 5.1, RFC 822 lexical rules, leniently)  */

struct lex {
	const char *p, *end;
};

/* Skips whitespace, line breaks and (nested) comments. */
static void lex_cfws(struct lex *l)
{
	while (l->p < l->end) {
		char c = *l->p;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			l->p++;
		} else if (c == '(') {
			unsigned level = 0;

			while (l->p < l->end) {
				c = *l->p++;
				if (c == '\\') {
					if (l->p < l->end)
						l->p++;
				} else if (c == '(') {
					level++;
				} else if (c == ')') {
					if (--level == 0)
						break;
				}
			}
		} else {
			break;
		}
	}
}

/* RFC 2045 token: CHAR except SPACE, CTLs and tspecials. */
static bool is_token_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(': case ')': case '<': case '>': case '@': case ',': case ';': case ':':
	case '\\': case '"': case '/': case '[': case ']': case '?': case '=':
		return false;
	default:
		return true;
	}
}

static size_t lex_token(struct lex *l, const char **tok_r)
{
	const char *s = l->p;

	while (l->p < l->end && is_token_char((unsigned char)*l->p))
		l->p++;
	*tok_r = s;
	return (size_t)(l->p - s);
}

/* Appends the content of a quoted string at l->p ('"'), unescaped, folding removed. */
static void lex_quoted(struct lex *l, struct buf *out)
{
	const char *s;

	l->p++;
	s = l->p;
	while (l->p < l->end && *l->p != '"') {
		if (*l->p == '\\' && l->p + 1 < l->end) {
			buf_add(out, s, (size_t)(l->p - s));
			l->p++;
			s = l->p;
			l->p++;
			continue;
		}
		if (*l->p == '\r' || *l->p == '\n') {
			buf_add(out, s, (size_t)(l->p - s));
			l->p++;
			s = l->p;
			continue;
		}
		l->p++;
	}
	buf_add(out, s, (size_t)(l->p - s));
	if (l->p < l->end)
		l->p++;
}

/* Skips to the next ';' that is not inside a quoted string or comment. */
static void lex_skip_to_semicolon(struct lex *l)
{
	while (l->p < l->end && *l->p != ';') {
		if (*l->p == '"') {
			l->p++;
			while (l->p < l->end && *l->p != '"') {
				if (*l->p == '\\' && l->p + 1 < l->end)
					l->p++;
				l->p++;
			}
			if (l->p < l->end)
				l->p++;
		} else if (*l->p == '(') {
			lex_cfws(l);
		} else {
			l->p++;
		}
	}
}

struct rawparam {
	const char *name;
	size_t name_len;
	size_t voff, vlen;       /* in the value buffer */
	/* RFC 2231 */
	bool cont;               /* name*, name*N or name*N* */
	bool extended;           /* a trailing '*': charset'lang'%XX */
	size_t base_len;
	unsigned long idx;
	bool done;
};

static int rawparam_idx_cmp(const void *a, const void *b)
{
	const struct rawparam *x = *(const struct rawparam *const *)a;
	const struct rawparam *y = *(const struct rawparam *const *)b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void classify_2231(struct rawparam *r)
{
	const char *star = memchr(r->name, '*', r->name_len);
	const char *p, *end = r->name + r->name_len;

	r->cont = false;
	if (!star || star == r->name)
		return;
	p = star + 1;
	r->idx = 0;
	r->extended = false;
	if (p == end) {
		/* name*: one extended value */
		r->extended = true;
	} else {
		const char *d = p;

		while (p < end && *p >= '0' && *p <= '9') {
			if (r->idx < 100000)
				r->idx = r->idx * 10 + (unsigned long)(*p - '0');
			p++;
		}
		if (p == d)
			return;
		/* "name*01" is not a valid index: RFC 2231 has no leading zeros */
		if (*d == '0' && p - d > 1)
			return;
		if (p < end && *p == '*') {
			r->extended = true;
			p++;
		}
		if (p != end)
			return;
	}
	r->cont = true;
	r->base_len = (size_t)(star - r->name);
}

/*
 * Parses ";" separated parameters from l into an arena array, merging RFC
 * 2231 continuations. Broken parameters are skipped up to the next ';'.
 */
static void parse_params(struct mime_message *m, struct lex *l,
			 const struct mime_param **params_r, unsigned *n_r)
{
	struct rawparam raw[MIME_MAX_PARAMS];
	struct rawparam *group[MIME_MAX_PARAMS];
	struct mime_param *out;
	struct buf vals = BUF_INIT(0), tmp = BUF_INIT(0);
	unsigned n = 0, nout = 0;

	*params_r = NULL;
	*n_r = 0;
	for (;;) {
		const char *name;
		size_t name_len;
		struct rawparam *r;

		lex_cfws(l);
		if (l->p >= l->end)
			break;
		if (*l->p != ';') {
			lex_skip_to_semicolon(l);
			continue;
		}
		l->p++;
		lex_cfws(l);
		name_len = lex_token(l, &name);
		lex_cfws(l);
		if (name_len == 0 || l->p >= l->end || *l->p != '=') {
			lex_skip_to_semicolon(l);
			continue;
		}
		l->p++;
		lex_cfws(l);
		if (n == MIME_MAX_PARAMS) {
			lex_skip_to_semicolon(l);
			continue;
		}
		r = &raw[n++];
		memset(r, 0, sizeof(*r));
		r->name = name;
		r->name_len = name_len;
		r->voff = vals.len;
		if (l->p < l->end && *l->p == '"') {
			lex_quoted(l, &vals);
		} else {
			/* Lenient: up to ';' or whitespace, so that unquoted values
			 * with tspecials (boundary=----=_Part_1) survive whole. */
			const char *s = l->p;

			while (l->p < l->end && *l->p != ';' && !is_wsp(*l->p) &&
			       *l->p != '\r' && *l->p != '\n')
				l->p++;
			buf_add(&vals, s, (size_t)(l->p - s));
		}
		r->vlen = vals.len - r->voff;
		classify_2231(r);
	}
	if (n == 0) {
		buf_release(&vals);
		return;
	}

	out = arena_alloc(m, n * sizeof(*out));
	for (unsigned i = 0; i < n; i++) {
		struct rawparam *r = &raw[i];
		unsigned ng = 0;
		bool ok = true, have_ext = false;

		if (r->done)
			continue;
		if (!r->cont) {
			out[nout].name = arena_strdup_clean(m, r->name, r->name_len);
			out[nout].value = arena_strdup_clean(m, vals.data + r->voff, r->vlen);
			nout++;
			r->done = true;
			continue;
		}
		for (unsigned j = i; j < n; j++) {
			struct rawparam *q = &raw[j];

			if (q->done || !q->cont || q->base_len != r->base_len ||
			    strncasecmp(q->name, r->name, r->base_len) != 0)
				continue;
			group[ng++] = q;
			q->done = true;
		}
		qsort(group, ng, sizeof(group[0]), rawparam_idx_cmp);
		for (unsigned j = 0; j < ng; j++) {
			if (group[j]->idx != j)
				ok = false;
			if (group[j]->extended)
				have_ext = true;
		}
		if (!ok) {
			/* Gaps or duplicates: not a continuation; keep them as written. */
			for (unsigned j = 0; j < ng; j++) {
				out[nout].name = arena_strdup_clean(m, group[j]->name, group[j]->name_len);
				out[nout].value = arena_strdup_clean(m, vals.data + group[j]->voff,
								    group[j]->vlen);
				nout++;
			}
			continue;
		}
		buf_reset(&tmp);
		if (have_ext && !group[0]->extended)
			buf_adds(&tmp, "''");
		for (unsigned j = 0; j < ng; j++) {
			const char *v = vals.data + group[j]->voff;
			size_t vl = group[j]->vlen;

			if (have_ext && !group[j]->extended) {
				/* a plain segment inside an encoded value: escape its '%' */
				for (size_t k = 0; k < vl; k++) {
					if (v[k] == '%')
						buf_adds(&tmp, "%25");
					else
						buf_addch(&tmp, v[k]);
				}
			} else {
				buf_add(&tmp, v, vl);
			}
		}
		{
			char *name = arena_alloc(m, r->base_len + 2);
			size_t nl = r->base_len;

			memcpy(name, r->name, nl);
			if (have_ext)
				name[nl++] = '*';
			name[nl] = '\0';
			out[nout].name = name;
		}
		out[nout].value = arena_strdup_clean(m, tmp.data ? tmp.data : "", tmp.len);
		nout++;
	}
	buf_release(&vals);
	buf_release(&tmp);
	*params_r = out;
	*n_r = nout;
}

static const char *params_lookup(const struct mime_param *p, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (strcasecmp(p[i].name, name) == 0)
			return p[i].value;
	return NULL;
}

static void parse_content_type(struct mime_message *m, struct mime_part *p,
			       const char *v, size_t n)
{
	struct lex l = { v, v + n };
	const char *type, *sub;
	size_t tl, sl;

	lex_cfws(&l);
	tl = lex_token(&l, &type);
	lex_cfws(&l);
	if (tl == 0 || l.p >= l.end || *l.p != '/')
		return;
	l.p++;
	lex_cfws(&l);
	sl = lex_token(&l, &sub);
	if (sl == 0)
		return;
	p->type = arena_strdup_clean(m, type, tl);
	p->subtype = arena_strdup_clean(m, sub, sl);
	p->flags &= ~(unsigned)MIME_PART_DEFAULT_TYPE;
	parse_params(m, &l, &p->params, &p->nparams);
}

static const char *parse_single_token(struct mime_message *m, const char *v, size_t n)
{
	struct lex l = { v, v + n };
	const char *tok;
	size_t tl;

	lex_cfws(&l);
	tl = lex_token(&l, &tok);
	lex_cfws(&l);
	if (tl == 0 || l.p != l.end)
		return NULL;
	return arena_strdup_clean(m, tok, tl);
}

static void parse_disposition(struct mime_message *m, struct mime_part *p,
			      const char *v, size_t n)
{
	struct lex l = { v, v + n };
	const char *tok;
	size_t tl;

	lex_cfws(&l);
	tl = lex_token(&l, &tok);
	if (tl == 0)
		return;
	p->disposition = arena_strdup_clean(m, tok, tl);
	parse_params(m, &l, &p->disp_params, &p->ndisp_params);
}

static void parse_language(struct mime_message *m, struct mime_part *p,
			   const char *v, size_t n)
{
	struct lex l = { v, v + n };
	const char *tags[MIME_MAX_LANGUAGES];
	size_t lens[MIME_MAX_LANGUAGES];
	unsigned nt = 0;
	const char **arr;

	for (;;) {
		const char *tok;
		size_t tl;

		lex_cfws(&l);
		tl = lex_token(&l, &tok);
		if (tl == 0)
			break;
		if (nt < MIME_MAX_LANGUAGES) {
			tags[nt] = tok;
			lens[nt] = tl;
			nt++;
		}
		lex_cfws(&l);
		if (l.p >= l.end || *l.p != ',')
			break;
		l.p++;
	}
	if (nt == 0)
		return;
	arr = arena_alloc(m, (nt + 1) * sizeof(*arr));
	for (unsigned i = 0; i < nt; i++)
		arr[i] = arena_strdup_clean(m, tags[i], lens[i]);
	arr[nt] = NULL;
	p->languages = arr;
	p->nlanguages = nt;
}

static bool name_is(const struct mime_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

/* Reads the Content-* fields of p's header; the first occurrence of each counts. */
static void parse_mime_fields(struct mime_message *m, struct mime_part *p)
{
	struct mime_header_iter it;
	struct mime_field f;
	bool seen_type = false, seen_cte = false, seen_disp = false, seen_lang = false;
	const struct mime_part *parent = p->parent;

	p->flags |= MIME_PART_DEFAULT_TYPE;
	mime_header_iter_init(&it, m->data + p->hdr_off, p->hdr_len);
	while (mime_header_next(&it, &f) > 0) {
		if (f.name_len < 9 || strncasecmp(f.name, "content-", 8) != 0)
			continue;
		if (name_is(&f, "Content-Type")) {
			if (!seen_type)
				parse_content_type(m, p, f.value, f.value_len);
			seen_type = true;
		} else if (name_is(&f, "Content-Transfer-Encoding")) {
			if (!seen_cte)
				p->encoding = parse_single_token(m, f.value, f.value_len);
			seen_cte = true;
		} else if (name_is(&f, "Content-Disposition")) {
			if (!seen_disp)
				parse_disposition(m, p, f.value, f.value_len);
			seen_disp = true;
		} else if (name_is(&f, "Content-Language")) {
			if (!seen_lang)
				parse_language(m, p, f.value, f.value_len);
			seen_lang = true;
		} else if (name_is(&f, "Content-ID")) {
			if (!p->id)
				p->id = arena_strdup_clean(m, f.value, f.value_len);
		} else if (name_is(&f, "Content-Description")) {
			if (!p->description)
				p->description = arena_strdup_clean(m, f.value, f.value_len);
		} else if (name_is(&f, "Content-MD5")) {
			if (!p->md5)
				p->md5 = arena_strdup_clean(m, f.value, f.value_len);
		} else if (name_is(&f, "Content-Location")) {
			if (!p->location)
				p->location = arena_strdup_clean(m, f.value, f.value_len);
		}
	}

	if (p->flags & MIME_PART_DEFAULT_TYPE) {
		/* RFC 2046 5.1.5: in a digest the default is message/rfc822 */
		if (parent && (parent->flags & MIME_PART_MULTIPART) &&
		    strcasecmp(parent->subtype, "digest") == 0) {
			p->type = "message";
			p->subtype = "rfc822";
		} else {
			p->type = "text";
			p->subtype = "plain";
		}
	}
	if (strcasecmp(p->type, "text") == 0) {
		p->flags |= MIME_PART_TEXT;
	} else if (strcasecmp(p->type, "message") == 0 &&
		   (strcasecmp(p->subtype, "rfc822") == 0 ||
		    strcasecmp(p->subtype, "global") == 0)) {
		p->flags |= MIME_PART_MESSAGE;
	} else if (strcasecmp(p->type, "multipart") == 0) {
		const char *b = params_lookup(p->params, p->nparams, "boundary");

		/* Without a boundary it cannot be split: it stays one body
		 * (Dovecot does the same). */
		if (b && *b) {
			p->boundary = b;
			p->flags |= MIME_PART_MULTIPART;
		}
	}
}

/* ------------------------------------------------------------------ */
/* The one-pass parser                                                */

/* A position with the line-break counts before it, so that the CRLF size and
 * line count of any range are differences of two marks. */
struct mark {
	size_t off, lf, bare;
};

struct ent {
	struct mime_part *p;
	struct mime_part *last_child;
	struct mark start;       /* header start, then body start */
	bool in_body;
};

struct bnd {
	const char *s;
	size_t len;
	unsigned owner;          /* index into the entity stack */
};

struct parser {
	struct mime_message *m;
	const char *d;
	size_t len;
	unsigned max_depth, max_parts;
	size_t lf, bare;         /* counts before the current line start */
	struct ent *st;
	unsigned nst;            /* open entities; st[nst - 1] is the innermost */
	struct bnd *b;
	unsigned nb;
	bool frozen;             /* the part limit was hit: boundaries are ignored */
};

static size_t mark_crlf(struct mark a, struct mark b)
{
	return (b.off - a.off) + (b.bare - a.bare);
}

static struct mime_part *new_part(struct parser *ps, struct mime_part *parent)
{
	struct mime_part *p = arena_zalloc(ps->m, sizeof(*p));

	ps->m->nparts++;
	p->parent = parent;
	if (parent) {
		struct ent *pe = &ps->st[ps->nst - 1];

		p->depth = parent->depth + 1;
		if (pe->last_child)
			pe->last_child->next = p;
		else
			parent->children = p;
		pe->last_child = p;
		parent->nchildren++;
	}
	return p;
}

static void push_ent(struct parser *ps, struct mime_part *p, struct mark start)
{
	struct ent *e = &ps->st[ps->nst++];

	e->p = p;
	e->last_child = NULL;
	e->start = start;
	e->in_body = false;
	p->hdr_off = start.off;
}

/* The header of the innermost entity ends at hend; its body starts at bstart. */
static void header_done(struct parser *ps, struct mark hend, struct mark bstart, bool blank)
{
	struct ent *e = &ps->st[ps->nst - 1];
	struct mime_part *p = e->p;

	p->hdr_len = hend.off - p->hdr_off;
	p->hdr_size = mark_crlf(e->start, hend);
	if (!blank)
		p->flags |= MIME_PART_NO_BLANK_LINE;
	parse_mime_fields(ps->m, p);
	p->body_off = bstart.off;
	e->in_body = true;
	e->start = bstart;

	if (p->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE)) {
		bool msg = p->flags & MIME_PART_MESSAGE;

		if (p->depth >= ps->max_depth || (msg && ps->m->nparts >= ps->max_parts)) {
			p->flags &= ~(unsigned)(MIME_PART_MULTIPART | MIME_PART_MESSAGE);
			p->flags |= MIME_PART_OPAQUE;
			ps->m->limits_hit = true;
		} else if (msg) {
			push_ent(ps, new_part(ps, p), bstart);
		} else {
			struct bnd *b = &ps->b[ps->nb++];

			b->s = p->boundary;
			b->len = strlen(p->boundary);
			b->owner = ps->nst - 1;
		}
	}
}

/* The body of the innermost entity ends at end: close it. */
static void body_done(struct parser *ps, struct mark end)
{
	struct ent *e = &ps->st[ps->nst - 1];
	struct mime_part *p = e->p;

	p->body_len = end.off - p->body_off;
	p->body_size = mark_crlf(e->start, end);
	p->body_lines = end.lf - e->start.lf;
	if (ps->nb > 0 && ps->b[ps->nb - 1].owner == ps->nst - 1) {
		/* still waiting for its closing delimiter */
		p->flags |= MIME_PART_UNTERMINATED;
		ps->nb--;
	}
	ps->nst--;
}

/* Closes entities until nst == keep, all ending at end. */
static void close_to(struct parser *ps, unsigned keep, struct mark end)
{
	while (ps->nst > keep) {
		if (!ps->st[ps->nst - 1].in_body)
			header_done(ps, end, end, false);
		else
			body_done(ps, end);
	}
}

/* Where a section ends when a delimiter line starts at line: before the
 * line break that precedes it, unless the section starts at the line. */
static struct mark end_before(const struct parser *ps, size_t line, size_t start)
{
	struct mark m = { line, ps->lf, ps->bare };

	if (line == start)
		return m;
	/* line > start, so d[line - 1] is the LF that ended the previous line */
	m.lf--;
	if (line >= 2 && line - 2 >= start && ps->d[line - 2] == '\r') {
		m.off = line - 2;
	} else {
		m.off = line - 1;
		m.bare--;
	}
	return m;
}

static int match_boundary(const struct parser *ps, const char *line, size_t n, bool *close_r)
{
	int best = -1;

	if (n < 2 || line[0] != '-' || line[1] != '-')
		return -1;
	line += 2;
	n -= 2;
	for (int i = (int)ps->nb - 1; i >= 0; i--) {
		const struct bnd *b = &ps->b[i];

		if (b->len <= n && memcmp(line, b->s, b->len) == 0 &&
		    (best < 0 || b->len > ps->b[best].len))
			best = i;
	}
	if (best >= 0) {
		size_t bl = ps->b[best].len;

		*close_r = n >= bl + 2 && line[bl] == '-' && line[bl + 1] == '-';
	}
	return best;
}

int mime_parse(const char *data, size_t len, const struct mime_limits *limits,
	       struct mime_message **msg_r)
{
	static const struct mime_limits defaults = MIME_LIMITS_DEFAULT;
	struct parser ps;
	struct mime_message *m = xcalloc(1, sizeof(*m));
	size_t pos = 0;

	if (!limits)
		limits = &defaults;
	/* An empty message may come as NULL; offsets are then added to "". */
	if (!data)
		data = "";
	memset(&ps, 0, sizeof(ps));
	ps.m = m;
	ps.d = data;
	ps.len = len;
	ps.max_depth = limits->max_depth > MIME_HARD_MAX_DEPTH ? MIME_HARD_MAX_DEPTH
							       : limits->max_depth;
	ps.max_parts = limits->max_parts ? limits->max_parts : 1;
	ps.st = xcalloc(ps.max_depth + 2, sizeof(*ps.st));
	ps.b = xcalloc(ps.max_depth + 2, sizeof(*ps.b));
	m->data = data;
	m->len = len;

	m->root = new_part(&ps, NULL);
	push_ent(&ps, m->root, (struct mark){ 0, 0, 0 });

	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t eol = nl ? (size_t)(nl - data) + 1 : len;
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		struct ent *e = &ps.st[ps.nst - 1];
		bool blank;

		if (nl && n > 0 && line[n - 1] == '\r')
			n--;
		blank = nl && n == 0;

		/* counts at the start of the next line */
		size_t lf2 = ps.lf, bare2 = ps.bare;

		if (nl) {
			lf2++;
			if (!(eol >= 2 && data[eol - 2] == '\r'))
				bare2++;
		}

		if (!ps.frozen && ps.nb > 0 && n >= 2 && line[0] == '-') {
			bool close = false;
			int bi = match_boundary(&ps, line, n, &close);

			if (bi >= 0) {
				unsigned owner = ps.b[bi].owner;
				struct mark end = end_before(&ps, pos, e->start.off);

				close_to(&ps, owner + 1, end);
				if (close) {
					/* the owner's boundary is now on top: inner ones went with their parts */
					if (ps.b[ps.nb - 1].owner != owner)
						BUG("mime: boundary stack out of order");
					ps.nb--;
				} else if (ps.m->nparts >= ps.max_parts) {
					ps.frozen = true;
					m->limits_hit = true;
				} else {
					struct mime_part *owner_p = ps.st[owner].p;

					push_ent(&ps, new_part(&ps, owner_p),
						 (struct mark){ eol, lf2, bare2 });
				}
				ps.lf = lf2;
				ps.bare = bare2;
				pos = eol;
				continue;
			}
		}
		ps.lf = lf2;
		ps.bare = bare2;
		pos = eol;
		if (!e->in_body && blank) {
			struct mark m2 = { pos, ps.lf, ps.bare };

			header_done(&ps, m2, m2, true);
		}
	}
	close_to(&ps, 0, (struct mark){ len, ps.lf, ps.bare });
	free(ps.st);
	free(ps.b);
	*msg_r = m;
	return 0;
}

void mime_message_free(struct mime_message **msg)
{
	struct mime_message *m = *msg;

	if (!m)
		return;
	while (m->arena) {
		struct mime_arena *a = m->arena;

		m->arena = a->next;
		free(a);
	}
	free(m);
	*msg = NULL;
}

/* ------------------------------------------------------------------ */
/* Decoders                                                           */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static signed char b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (signed char)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (signed char)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (signed char)(c - '0' + 52);
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Restores out to len start and reports a full buffer. */
static int nobufs(struct buf *out, size_t start)
{
	out->len = start;
	if (out->data)
		out->data[start] = '\0';
	return -ENOBUFS;
}

int mime_base64_decode(struct buf *out, const char *in, size_t len)
{
	size_t start = out->len;
	unsigned acc = 0, nbits = 0;
	char chunk[3 * 256];
	size_t cn = 0;

	for (size_t i = 0; i < len; i++) {
		signed char v = b64val((unsigned char)in[i]);

		if (v < 0) {
			if (in[i] == '=') {
				/* end of a quantum: drop the partial bits, so that
				 * concatenated padded blocks decode too */
				acc = 0;
				nbits = 0;
			}
			continue;
		}
		acc = (acc << 6) | (unsigned)v;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			chunk[cn++] = (char)((acc >> nbits) & 0xff);
			acc &= (1u << nbits) - 1;
			if (cn == sizeof(chunk)) {
				if (buf_add(out, chunk, cn) < 0)
					return nobufs(out, start);
				cn = 0;
			}
		}
	}
	if (cn && buf_add(out, chunk, cn) < 0)
		return nobufs(out, start);
	return 0;
}

int mime_qp_decode(struct buf *out, const char *in, size_t len, bool q_header)
{
	size_t start = out->len, i = 0;

	while (i < len) {
		const char *nl = memchr(in + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - in) : len;   /* line end, LF excluded */
		size_t ce = e;
		bool crlf = false, soft = false;

		if (nl && ce > i && in[ce - 1] == '\r') {
			ce--;
			crlf = true;
		}
		/* transport padding (RFC 2045 6.7 rule 3) */
		while (ce > i && is_wsp(in[ce - 1]))
			ce--;
		if (ce > i && in[ce - 1] == '=') {
			ce--;
			soft = true;
		}
		for (size_t j = i; j < ce; j++) {
			char c = in[j];

			if (c == '=' && j + 2 < ce &&
			    hexval(in[j + 1]) >= 0 && hexval(in[j + 2]) >= 0) {
				c = (char)(hexval(in[j + 1]) * 16 + hexval(in[j + 2]));
				j += 2;
			} else if (q_header && c == '_') {
				c = ' ';
			}
			if (buf_addch(out, c) < 0)
				return nobufs(out, start);
		}
		if (nl) {
			if (!soft && buf_adds(out, crlf ? "\r\n" : "\n") < 0)
				return nobufs(out, start);
			i = e + 1;
		} else {
			i = len;
		}
	}
	return 0;
}

/* Appends in as UTF-8, each invalid byte replaced by U+FFFD. */
static int utf8_sanitize(struct buf *out, const unsigned char *s, size_t n)
{
	size_t start = out->len, i = 0, run = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t need = 0;
		unsigned cp = 0, min = 0;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3; cp = c & 0x07; min = 0x10000;
		}
		if (need && i + need < n) {
			size_t k;

			for (k = 1; k <= need; k++) {
				if ((s[i + k] & 0xc0) != 0x80)
					break;
				cp = (cp << 6) | (s[i + k] & 0x3f);
			}
			if (k == need + 1 && cp >= min && cp <= 0x10ffff &&
			    !(cp >= 0xd800 && cp <= 0xdfff)) {
				i += need + 1;
				continue;
			}
		}
		/* invalid byte at i */
		if (buf_add(out, s + run, i - run) < 0 || buf_add(out, "\xef\xbf\xbd", 3) < 0)
			return nobufs(out, start);
		i++;
		run = i;
	}
	if (buf_add(out, s + run, n - run) < 0)
		return nobufs(out, start);
	return 0;
}

static bool charset_is_utf8ish(const char *cs)
{
	static const char *const names[] = {
		"utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us",
		"us", "csascii", "646",
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcasecmp(cs, names[i]) == 0)
			return true;
	return false;
}

static bool charset_name_ok(const char *cs)
{
	size_t n = strlen(cs);

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)cs[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("-_.:+()", c)))
			return false;
	}
	return true;
}

int mime_charset_to_utf8(struct buf *out, const char *charset, const char *in, size_t len)
{
	size_t start = out->len;
	iconv_t cd;
	char *ip = (char *)in;
	size_t il = len;
	char chunk[4096];

	if (!charset_name_ok(charset))
		return -EINVAL;
	if (charset_is_utf8ish(charset))
		return utf8_sanitize(out, (const unsigned char *)in, len);
	cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return -EINVAL;
	for (;;) {
		char *op = chunk;
		size_t ol = sizeof(chunk);
		size_t r = iconv(cd, il ? &ip : NULL, il ? &il : NULL, &op, &ol);
		int err = r == (size_t)-1 ? errno : 0;

		if (op > chunk && buf_add(out, chunk, (size_t)(op - chunk)) < 0) {
			iconv_close(cd);
			return nobufs(out, start);
		}
		if (err == E2BIG)
			continue;
		if (err == EILSEQ || err == EINVAL) {
			/* invalid or truncated input: one replacement per byte skipped */
			if (buf_add(out, "\xef\xbf\xbd", 3) < 0) {
				iconv_close(cd);
				return nobufs(out, start);
			}
			if (il > 0) {
				ip++;
				il--;
			}
			/* reset the shift state after garbage */
			iconv(cd, NULL, NULL, NULL, NULL);
			continue;
		}
		if (err != 0) {
			iconv_close(cd);
			return nobufs(out, start);
		}
		if (il == 0)
			break;
	}
	/* flush the shift state (stateful encodings such as ISO-2022-JP) */
	{
		char *op = chunk;
		size_t ol = sizeof(chunk);

		iconv(cd, NULL, NULL, &op, &ol);
		if (op > chunk && buf_add(out, chunk, (size_t)(op - chunk)) < 0) {
			iconv_close(cd);
			return nobufs(out, start);
		}
	}
	iconv_close(cd);
	return 0;
}

/* RFC 2047 ----------------------------------------------------------- */

struct ew {
	const char *cs;          /* charset, without a *language suffix */
	size_t cs_len;
	char enc;                /* 'B' or 'Q' */
	const char *text;
	size_t text_len;
	size_t len;              /* the whole encoded word */
};

/* Recognizes "=?charset[*lang]?B|Q?text?=" at s. */
static bool parse_ew(const char *s, const char *end, struct ew *w)
{
	const char *p = s + 2, *q;

	if (end - s < 8 || s[0] != '=' || s[1] != '?')
		return false;
	q = p;
	while (q < end && *q != '?' && *q > 0x20 && *q < 0x7f)
		q++;
	if (q == p || q >= end || *q != '?')
		return false;
	w->cs = p;
	w->cs_len = (size_t)(q - p);
	{
		const char *star = memchr(p, '*', w->cs_len);

		if (star)
			w->cs_len = (size_t)(star - p);
	}
	if (w->cs_len == 0 || w->cs_len > 63)
		return false;
	q++;
	if (end - q < 3 || q[1] != '?')
		return false;
	if (*q == 'B' || *q == 'b')
		w->enc = 'B';
	else if (*q == 'Q' || *q == 'q')
		w->enc = 'Q';
	else
		return false;
	q += 2;
	w->text = q;
	while (q + 1 < end && !(q[0] == '?' && q[1] == '=')) {
		if (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			return false;
		q++;
	}
	if (q + 1 >= end)
		return false;
	w->text_len = (size_t)(q - w->text);
	w->len = (size_t)(q + 2 - s);
	return true;
}

struct ew_pending {
	char cs[64];
	struct buf bytes;        /* decoded bytes of adjacent words in cs */
	const char *raw;         /* the words as written, for an unknown charset */
	size_t raw_len;
	bool active;
};

/* Appends raw with CR and LF dropped. */
static int add_unfolded(struct buf *out, const char *raw, size_t n)
{
	return mime_header_unfold(out, raw, n);
}

static int ew_flush(struct buf *out, struct ew_pending *pd)
{
	int r = 0;

	if (!pd->active)
		return 0;
	pd->active = false;
	r = mime_charset_to_utf8(out, pd->cs, pd->bytes.data ? pd->bytes.data : "",
				 pd->bytes.len);
	if (r == -EINVAL)
		r = add_unfolded(out, pd->raw, pd->raw_len);
	buf_reset(&pd->bytes);
	return r;
}

int mime_header_decode(struct buf *out, const char *value, size_t len)
{
	const char *p = value, *end = value + len, *lit = value;
	struct ew_pending pd;
	size_t start = out->len;
	bool last_ew = false;
	const char *ws = NULL;     /* start of whitespace after the last encoded word */
	int r = 0;

	memset(&pd, 0, sizeof(pd));
	buf_init(&pd.bytes, 0);
	/* fast path: nothing encoded */
	if (!memmem(value, len, "=?", 2)) {
		r = add_unfolded(out, value, len);
		buf_release(&pd.bytes);
		return r;
	}
	while (p < end) {
		struct ew w;

		if (*p == '=' && parse_ew(p, end, &w)) {
			bool join = last_ew && pd.active &&
				    strlen(pd.cs) == w.cs_len &&
				    strncasecmp(pd.cs, w.cs, w.cs_len) == 0;

			if (last_ew) {
				/* whitespace between two encoded words is dropped */
				if (!join && (r = ew_flush(out, &pd)) < 0)
					goto fail;
			} else {
				if ((r = ew_flush(out, &pd)) < 0 ||
				    (r = add_unfolded(out, lit, (size_t)(p - lit))) < 0)
					goto fail;
			}
			if (!join) {
				memcpy(pd.cs, w.cs, w.cs_len);
				pd.cs[w.cs_len] = '\0';
				pd.raw = p;
				pd.active = true;
			}
			pd.raw_len = (size_t)(p + w.len - pd.raw);
			if (w.enc == 'B')
				r = mime_base64_decode(&pd.bytes, w.text, w.text_len);
			else
				r = mime_qp_decode(&pd.bytes, w.text, w.text_len, true);
			if (r < 0)
				goto fail;
			p += w.len;
			lit = p;
			last_ew = true;
			ws = p;
			continue;
		}
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			p++;
			continue;
		}
		/* other text: the whitespace run before it is kept */
		if (last_ew) {
			if ((r = ew_flush(out, &pd)) < 0)
				goto fail;
			lit = ws;
			last_ew = false;
		}
		p++;
	}
	if ((r = ew_flush(out, &pd)) < 0 || (r = add_unfolded(out, lit, (size_t)(end - lit))) < 0)
		goto fail;
	buf_release(&pd.bytes);
	return 0;
fail:
	buf_release(&pd.bytes);
	return nobufs(out, start);
}

/* Parameters --------------------------------------------------------- */

int mime_param_decode(struct buf *out, const struct mime_param *param)
{
	size_t nl = strlen(param->name);
	const char *v = param->value, *q1, *q2;
	struct buf bytes = BUF_INIT(0);
	char cs[64];
	int r;

	if (nl == 0 || param->name[nl - 1] != '*')
		return mime_header_decode(out, v, strlen(v));
	q1 = strchr(v, '\'');
	q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
	cs[0] = '\0';
	if (q2) {
		size_t cl = (size_t)(q1 - v);

		if (cl < sizeof(cs)) {
			memcpy(cs, v, cl);
			cs[cl] = '\0';
		}
		v = q2 + 1;
	}
	for (; *v; v++) {
		if (*v == '%' && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
			buf_addch(&bytes, (char)(hexval(v[1]) * 16 + hexval(v[2])));
			v += 2;
		} else {
			buf_addch(&bytes, *v);
		}
	}
	r = -EINVAL;
	if (cs[0])
		r = mime_charset_to_utf8(out, cs, bytes.data ? bytes.data : "", bytes.len);
	if (r == -EINVAL)
		r = buf_add(out, bytes.data ? bytes.data : "", bytes.len);
	buf_release(&bytes);
	return r < 0 ? -ENOBUFS : 0;
}

int mime_params_get(struct buf *out, const struct mime_param *params, unsigned n,
		    const char *name)
{
	size_t len = strlen(name);
	const struct mime_param *plain = NULL;

	for (unsigned i = 0; i < n; i++) {
		const char *pn = params[i].name;

		if (strncasecmp(pn, name, len) != 0)
			continue;
		if (pn[len] == '*' && pn[len + 1] == '\0')
			return mime_param_decode(out, &params[i]) < 0 ? -ENOBUFS : 1;
		if (pn[len] == '\0' && !plain)
			plain = &params[i];
	}
	if (!plain)
		return 0;
	return mime_param_decode(out, plain) < 0 ? -ENOBUFS : 1;
}

int mime_part_decode(struct buf *out, const struct mime_message *msg,
		     const struct mime_part *part, unsigned flags)
{
	const char *body = msg->data + part->body_off;
	struct buf tmp = BUF_INIT(0), *dst = out;
	bool convert = (flags & MIME_DECODE_UTF8) && (part->flags & MIME_PART_TEXT);
	size_t start = out->len;
	int r;

	if (convert)
		dst = &tmp;
	if (part->encoding && strcasecmp(part->encoding, "base64") == 0)
		r = mime_base64_decode(dst, body, part->body_len);
	else if (part->encoding && strcasecmp(part->encoding, "quoted-printable") == 0)
		r = mime_qp_decode(dst, body, part->body_len, false);
	else
		r = buf_add(dst, body, part->body_len);
	if (r < 0) {
		buf_release(&tmp);
		return nobufs(out, start);
	}
	if (convert) {
		const char *cs = params_lookup(part->params, part->nparams, "charset");

		r = mime_charset_to_utf8(out, cs ? cs : "us-ascii",
					 tmp.data ? tmp.data : "", tmp.len);
		if (r == -EINVAL)
			r = buf_add(out, tmp.data ? tmp.data : "", tmp.len);
		buf_release(&tmp);
		if (r < 0)
			return nobufs(out, start);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* CRLF form                                                          */

size_t mime_crlf_size(const char *data, size_t len)
{
	size_t size = len;
	const char *p = data, *end = data + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl)
			break;
		if (nl == data || nl[-1] != '\r')
			size++;
		p = nl + 1;
	}
	return size;
}

/* Copies the part of [s, s+n) that falls inside the window [skip, end) of the output to *d. */
static void emit_clip(char **d, const char *s, size_t n, size_t *vpos, size_t skip, size_t end)
{
	size_t a = *vpos, b = *vpos + n;

	*vpos = b;
	if (b <= skip || a >= end)
		return;
	if (a < skip) {
		s += skip - a;
		a = skip;
	}
	if (b > end)
		b = end;
	memcpy(*d, s, b - a);
	*d += b - a;
}

int mime_crlf_append(struct buf *out, const char *data, size_t len,
		     size_t skip, size_t max, unsigned flags)
{
	size_t total = mime_crlf_size(data, len), want, end, vpos = 0, i = 0;
	size_t start = out->len;

	if (skip >= total)
		return 0;
	want = total - skip;
	if (max < want)
		want = max;
	if (want == 0)
		return 0;
	if (buf_reserve(out, want) < 0)
		return -ENOBUFS;
	end = skip + want;
	/* the room is reserved: write in place */
	{
		char *d = out->data + out->len;

		if (skip == 0 && want == total && total == len) {
			memcpy(d, data, len);
			d += len;
		} else {
			while (i < len && vpos < end) {
				const char *nl = memchr(data + i, '\n', len - i);
				size_t seg = nl ? (size_t)(nl - (data + i)) : len - i;

				emit_clip(&d, data + i, seg, &vpos, skip, end);
				if (nl) {
					if (nl == data || nl[-1] != '\r')
						emit_clip(&d, "\r\n", 2, &vpos, skip, end);
					else
						emit_clip(&d, "\n", 1, &vpos, skip, end);
				}
				i += seg + (nl ? 1 : 0);
			}
		}
		*d = '\0';
		out->len = (size_t)(d - out->data);
	}
	if (flags & MIME_CRLF_NUL_TO_80) {
		char *p = out->data + start, *e = out->data + out->len;

		while ((p = memchr(p, '\0', (size_t)(e - p))) != NULL)
			*p++ = (char)0x80;
	}
	return 0;
}
