/*
 * Fuzz target for lib/mime.c and imap/imap-envelope.c.
 *
 * Input: one flag octet, then a message.
 *   flag & 1: small limits (depth 3, 12 parts) instead of the defaults
 *   flag & 2: also parse the message bytes as a BODY[section] spec
 *
 * Per input: parse; check the tree's invariants (ranges nested and ordered,
 * CRLF sizes and line counts equal to a plain recount); write BODYSTRUCTURE,
 * BODY and ENVELOPE and check them lexically (balanced lists, well-formed
 * quoted strings and literals); fetch every section of every part path up
 * to three levels deep and check that the reported size matches and that a
 * window is the slice of the whole; decode every part. When the input holds
 * no CR, the same message with CRLF line ends must give byte-identical
 * answers. Any violation aborts.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap-envelope.h"
#include "lib/buf.h"
#include "tests/common/imap-syntax.h"
#include "lib/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(msg) do { fprintf(stderr, "fuzz-mime: %s\n", (msg)); abort(); } while (0)

static size_t ref_crlf(const char *s, size_t n)
{
	size_t c = n;

	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			c++;
	return c;
}

static size_t count_lf(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += s[i] == '\n';
	return c;
}

static unsigned check_tree(const struct mime_message *m, const struct mime_part *p,
			   const struct mime_limits *lim)
{
	unsigned n = 1, kids = 0;
	size_t end = p->body_off + p->body_len, pos = p->body_off;

	if (p->hdr_off + p->hdr_len != p->body_off || end > m->len)
		FAIL("part ranges");
	if (p->hdr_size != ref_crlf(m->data + p->hdr_off, p->hdr_len) ||
	    p->body_size != ref_crlf(m->data + p->body_off, p->body_len))
		FAIL("crlf sizes");
	if (p->body_lines != count_lf(m->data + p->body_off, p->body_len))
		FAIL("line count");
	if (!p->type || !p->subtype || p->depth > lim->max_depth)
		FAIL("type or depth");
	if (p->parent && p->depth != p->parent->depth + 1)
		FAIL("depth");
	if ((p->flags & MIME_PART_MESSAGE) &&
	    (p->nchildren != 1 || p->children->hdr_off != p->body_off ||
	     p->children->body_off + p->children->body_len != end))
		FAIL("message part");
	if (!(p->flags & (MIME_PART_MESSAGE | MIME_PART_MULTIPART)) && p->children)
		FAIL("children of a leaf");
	for (const struct mime_part *c = p->children; c; c = c->next) {
		kids++;
		if (c->parent != p || c->hdr_off < pos)
			FAIL("child order");
		pos = c->body_off + c->body_len;
		if (pos > end)
			FAIL("child outside its parent");
		n += check_tree(m, c, lim);
	}
	if (kids != p->nchildren)
		FAIL("child count");
	return n;
}

static const enum imap_section_text texts[] = {
	IMAP_SECTION_ALL, IMAP_SECTION_HEADER, IMAP_SECTION_TEXT, IMAP_SECTION_MIME,
	IMAP_SECTION_HEADER_FIELDS, IMAP_SECTION_HEADER_FIELDS_NOT,
};

/* Fetches every section kind of the path in s, then of its extensions
 * 1..4 up to three levels, pruning below paths that do not exist. */
static void fetch_paths(const struct mime_message *m, struct imap_section *s, struct buf *all)
{
	struct buf b = BUF_INIT(0), w = BUF_INIT(0);
	unsigned np = s->nparts;

	for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
		size_t sz = 1, sz2 = 1;
		int r, r2;

		s->text = texts[t];
		buf_reset(&b);
		r = imap_section_fetch(&b, m, s, 0, SIZE_MAX, &sz);
		if (s->text == IMAP_SECTION_MIME && np == 0) {
			if (r != -EINVAL)
				FAIL("MIME without part");
			continue;
		}
		if (r < 0 || sz != b.len || (r == 0 && b.len))
			FAIL("section size");
		if (memchr(b.data ? b.data : "", '\0', b.len))
			FAIL("NUL in a section");
		buf_reset(&w);
		r2 = imap_section_fetch(&w, m, s, 3, 7, &sz2);
		if (r2 != r || sz2 != sz)
			FAIL("window result");
		if (w.len != (sz > 3 ? (sz - 3 < 7 ? sz - 3 : 7) : 0) ||
		    (w.len && memcmp(w.data, b.data + 3, w.len) != 0))
			FAIL("window bytes");
		buf_printf(all, "[%d %zu]", r, sz);
		buf_add(all, b.data ? b.data : "", b.len);
	}
	buf_release(&b);
	buf_release(&w);
	if (np == 3 || (np > 0 && !imap_section_part(m, s->parts, np)))
		return;
	for (unsigned k = 1; k <= 4; k++) {
		s->parts[np] = k;
		s->nparts = np + 1;
		fetch_paths(m, s, all);
	}
	s->nparts = np;
}

/* Everything the message answers, concatenated, for the CRLF comparison. */
static void answers(const struct mime_message *m, struct buf *all)
{
	struct buf b = BUF_INIT(0);
	struct imap_section s;

	for (int ext = 0; ext < 2; ext++) {
		buf_reset(&b);
		if (imap_bodystructure_write(&b, m, ext) < 0 || !imap_syntax_ok(b.data, b.len))
			FAIL("bodystructure syntax");
		buf_add(all, b.data, b.len);
	}
	buf_reset(&b);
	if (imap_envelope_write(&b, m->data, m->root->hdr_len) < 0 || !imap_syntax_ok(b.data, b.len))
		FAIL("envelope syntax");
	buf_add(all, b.data, b.len);
	buf_release(&b);

	imap_section_init(&s);
	imap_section_add_field(&s, "From", 4);
	imap_section_add_field(&s, "content-type", 12);
	fetch_paths(m, &s, all);
	imap_section_release(&s);
}

static void decode_all(const struct mime_message *m, const struct mime_part *p)
{
	struct buf b = BUF_INIT(0);

	if (mime_part_decode(&b, m, p, MIME_DECODE_UTF8) < 0)
		FAIL("decode");
	buf_reset(&b);
	if (mime_params_get(&b, p->disp_params, p->ndisp_params, "filename") < 0 ||
	    mime_params_get(&b, p->params, p->nparams, "name") < 0)
		FAIL("param decode");
	if (p->description) {
		buf_reset(&b);
		if (mime_header_decode(&b, p->description, strlen(p->description)) < 0)
			FAIL("header decode");
	}
	buf_release(&b);
	for (const struct mime_part *c = p->children; c; c = c->next)
		decode_all(m, c);
}

static void run(const char *msg, size_t len, const struct mime_limits *lim, struct buf *all)
{
	struct mime_message *m = NULL;
	struct mime_header_iter it;
	struct mime_field f;
	struct buf b = BUF_INIT(0);

	if (mime_parse(msg, len, lim, &m) != 0 || !m)
		FAIL("parse");
	if (check_tree(m, m->root, lim) != m->nparts)
		FAIL("part count");
	if (m->root->hdr_off != 0 || m->root->body_off + m->root->body_len != len)
		FAIL("root range");
	answers(m, all);
	decode_all(m, m->root);
	mime_header_iter_init(&it, msg, m->root->hdr_len);
	while (mime_header_next(&it, &f) > 0) {
		buf_reset(&b);
		if (mime_header_decode(&b, f.value, f.value_len) < 0)
			FAIL("header decode");
	}
	buf_release(&b);
	mime_message_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_limits small = { 3, 12 }, def = MIME_LIMITS_DEFAULT;
	const struct mime_limits *lim;
	const char *msg;
	size_t len;
	struct buf a1 = BUF_INIT(0), a2 = BUF_INIT(0);

	if (size < 1 || size > 256 * 1024)
		return 0;
	lim = (data[0] & 1) ? &small : &def;
	/* an exact copy, so that reads past the end are caught */
	len = size - 1;
	msg = malloc(len ? len : 1);
	if (!msg)
		return 0;
	memcpy((char *)msg, data + 1, len);

	run(msg, len, lim, &a1);

	if (!memchr(msg, '\r', len)) {
		struct buf crlf = BUF_INIT(0);

		for (size_t i = 0; i < len; i++) {
			if (msg[i] == '\n')
				buf_addch(&crlf, '\r');
			buf_addch(&crlf, msg[i]);
		}
		run(crlf.data ? crlf.data : "", crlf.len, lim, &a2);
		if (a1.len != a2.len || memcmp(a1.data ? a1.data : "", a2.data ? a2.data : "", a1.len) != 0) {
			size_t at = 0;

			while (at < a1.len && at < a2.len && a1.data[at] == a2.data[at])
				at++;
			fprintf(stderr, "LF answers (%zu) and CRLF answers (%zu) differ at %zu:\n%.*s\n---\n%.*s\n",
				a1.len, a2.len, at, (int)(a1.len - at < 200 ? a1.len - at : 200), a1.data + at,
				(int)(a2.len - at < 200 ? a2.len - at : 200), a2.data + at);
			FAIL("LF and CRLF storage answer differently");
		}
		buf_release(&crlf);
	}

	if (data[0] & 2) {
		struct imap_section s, s2;
		struct buf w = BUF_INIT(0);

		imap_section_init(&s);
		imap_section_init(&s2);
		if (imap_section_parse(&s, msg, len < 512 ? len : 512) == 0) {
			if (imap_section_write(&w, &s) < 0 || imap_section_parse(&s2, w.data ? w.data : "", w.len) != 0)
				FAIL("section round trip");
			if (s.nparts != s2.nparts || s.text != s2.text || s.nfields != s2.nfields ||
			    memcmp(s.parts, s2.parts, s.nparts * sizeof(s.parts[0])) != 0)
				FAIL("section round trip differs");
			for (unsigned i = 0; i < s.nfields; i++)
				if (strcmp(s.fields[i], s2.fields[i]) != 0)
					FAIL("section field differs");
		}
		imap_section_release(&s);
		imap_section_release(&s2);
		buf_release(&w);
	}
	buf_release(&a1);
	buf_release(&a2);
	free((char *)msg);
	return 0;
}
