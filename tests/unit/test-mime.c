/*
 * Unit tests of lib/mime.c: header iteration, RFC 2047/2231, the decoders,
 * charset conversion, the MIME tree with its CRLF sizes, limits, and the
 * CRLF emitter. Expected sizes were counted from the corpus bytes (see
 * tests/data/mime/corpus.h) by the RFC 2046 rule that the line break before
 * a delimiter belongs to the delimiter, independently of this code.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/mime.h"
#include "lib/xalloc.h"
#include "tests/data/mime/corpus.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)
#define CHECK_STR(got, want, what) check_str(__LINE__, (got), (want), (what))

static void check_str(int line, const char *got, const char *want, const char *what)
{
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "%s:%d: %s:\n  got  [%s]\n  want [%s]\n", __FILE__, line, what, got, want);
		failures++;
	}
}

/* ------------------------------------------------------------------ */

static size_t count_lf(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += s[i] == '\n';
	return c;
}

/* Reference CRLF size, written plainly: every LF without a CR before it (in the range) adds one. */
static size_t ref_crlf(const char *s, size_t n)
{
	size_t c = n;

	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			c++;
	return c;
}

/* Structural invariants of a parsed message; returns the number of parts seen. */
static unsigned check_tree(const struct mime_message *m, const struct mime_part *p,
			   const struct mime_limits *lim, const char *name)
{
	unsigned n = 1, kids = 0;
	size_t end = p->body_off + p->body_len, pos = p->body_off;
	int bad = 0;

	bad |= p->hdr_off + p->hdr_len != p->body_off;
	bad |= end > m->len;
	bad |= p->hdr_size != ref_crlf(m->data + p->hdr_off, p->hdr_len);
	bad |= p->body_size != ref_crlf(m->data + p->body_off, p->body_len);
	bad |= p->body_lines != count_lf(m->data + p->body_off, p->body_len);
	bad |= !p->type || !p->subtype;
	bad |= p->depth > lim->max_depth;
	if (p->parent)
		bad |= p->depth != p->parent->depth + 1;
	if (p->flags & MIME_PART_OPAQUE)
		bad |= p->children != NULL || (p->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE));
	if (p->flags & MIME_PART_MESSAGE) {
		const struct mime_part *c = p->children;

		bad |= p->nchildren != 1 || !c || c->next;
		if (c && !c->next)
			bad |= c->hdr_off != p->body_off || c->body_off + c->body_len != end;
	}
	if (!(p->flags & (MIME_PART_MESSAGE | MIME_PART_MULTIPART)))
		bad |= p->children != NULL;
	for (const struct mime_part *c = p->children; c; c = c->next) {
		kids++;
		bad |= c->parent != p;
		bad |= c->hdr_off < pos;
		pos = c->body_off + c->body_len;
		bad |= pos > end;
		n += check_tree(m, c, lim, name);
	}
	bad |= kids != p->nchildren;
	if (bad) {
		fprintf(stderr, "%s: broken invariant at part depth %u hdr_off %zu\n", name, p->depth, p->hdr_off);
		failures++;
	}
	return n;
}

static struct mime_message *parse_checked(const char *data, size_t len,
					  const struct mime_limits *lim, const char *name)
{
	static const struct mime_limits def = MIME_LIMITS_DEFAULT;
	struct mime_message *m = NULL;

	if (!lim)
		lim = &def;
	CHECK(mime_parse(data, len, lim, &m) == 0);
	CHECK(m && m->root);
	if (m && m->root) {
		unsigned n = check_tree(m, m->root, lim, name);

		if (n != m->nparts) {
			fprintf(stderr, "%s: nparts %u, tree has %u\n", name, m->nparts, n);
			failures++;
		}
		CHECK(m->root->hdr_off == 0 && m->root->body_off + m->root->body_len == len);
	}
	return m;
}

/* "type/subtype[hdr_size,body_size,lines]" of each part, children in braces. */
static void dump(struct buf *b, const struct mime_part *p)
{
	buf_printf(b, "%s/%s[%zu,%zu,%zu", p->type, p->subtype, p->hdr_size, p->body_size, p->body_lines);
	if (p->flags & MIME_PART_OPAQUE)
		buf_adds(b, ",opaque");
	if (p->flags & MIME_PART_UNTERMINATED)
		buf_adds(b, ",unterminated");
	if (p->flags & MIME_PART_NO_BLANK_LINE)
		buf_adds(b, ",noblank");
	buf_adds(b, "]");
	if (p->children) {
		buf_adds(b, "{");
		for (const struct mime_part *c = p->children; c; c = c->next) {
			dump(b, c);
			if (c->next)
				buf_adds(b, " ");
		}
		buf_adds(b, "}");
	}
}

static char *lf_to_crlf(const char *s, size_t *len_r)
{
	struct buf b = BUF_INIT(0);

	for (; *s; s++) {
		if (*s == '\n')
			buf_addch(&b, '\r');
		buf_addch(&b, *s);
	}
	return buf_detach(&b, len_r);
}

/* ------------------------------------------------------------------ */

static void test_headers(void)
{
	static const char hdr[] =
		" leading continuation\n"
		"From: a@example.com\n"
		"Subject:  folded\n"
		"\t value\r\n"
		"no colon here\n"
		"X-Empty:\n"
		"Obs-Name : spaced\n"
		"\n"
		"Body: not a header\n";
	static const struct { const char *name, *value; } want[] = {
		{ "", " leading continuation" },
		{ "From", "a@example.com" },
		{ "Subject", "folded\n\t value" },
		{ "", "no colon here" },
		{ "X-Empty", "" },
		{ "Obs-Name", "spaced" },
	};
	struct mime_header_iter it;
	struct mime_field f;
	unsigned i = 0;
	struct buf b = BUF_INIT(0);

	mime_header_iter_init(&it, hdr, sizeof(hdr) - 1);
	while (mime_header_next(&it, &f) > 0) {
		if (i < ARRAY_SIZE(want)) {
			CHECK(f.name_len == strlen(want[i].name) &&
			      memcmp(f.name, want[i].name, f.name_len) == 0);
			CHECK(f.value_len == strlen(want[i].value) &&
			      memcmp(f.value, want[i].value, f.value_len) == 0);
		}
		i++;
	}
	CHECK(i == ARRAY_SIZE(want));
	CHECK(mime_header_next(&it, &f) == 0);

	CHECK(mime_header_find(hdr, sizeof(hdr) - 1, "subject", &f) == 1);
	CHECK(f.raw_len == strlen("Subject:  folded\n\t value\r\n"));
	CHECK(mime_header_find(hdr, sizeof(hdr) - 1, "Body", &f) == 0);
	CHECK(mime_header_find(hdr, sizeof(hdr) - 1, "obs-name", &f) == 1);
	CHECK(mime_header_length(hdr, sizeof(hdr) - 1) == sizeof(hdr) - 1 - strlen("Body: not a header\n"));
	CHECK(mime_header_length("a: b", 4) == 4);
	CHECK(mime_header_length("\r\nbody", 6) == 2);

	/* repeated fields, one after the other */
	{
		static const char rec[] = "Received: one\nX: y\nreceived: two\nReceived:three\n\nReceived: body\n";
		static const char *const want_rec[] = { "one", "two", "three" };
		unsigned k = 0;

		mime_header_iter_init(&it, rec, sizeof(rec) - 1);
		while (mime_header_iter_find(&it, "Received", &f) > 0) {
			CHECK(k < 3 && f.value_len == strlen(want_rec[k]) &&
			      memcmp(f.value, want_rec[k], f.value_len) == 0);
			k++;
		}
		CHECK(k == 3);
	}

	CHECK(mime_header_find(hdr, sizeof(hdr) - 1, "Subject", &f) == 1);
	CHECK(mime_header_unfold(&b, f.value, f.value_len) == 0);
	CHECK_STR(b.data, "folded\t value", "unfold");
	buf_release(&b);
}

static void test_rfc2047(void)
{
	static const struct { const char *in, *out; } t[] = {
		{ "plain text", "plain text" },
		{ "=?UTF-8?Q?Caf=C3=A9_meeting?= tomorrow", "Caf\xc3\xa9 meeting tomorrow" },
		{ "=?iso-8859-1?q?Gr=FC=DFe?=", "Gr\xc3\xbc\xc3\x9f" "e" },
		{ "=?ISO-8859-1?B?R3L832U=?=", "Gr\xc3\xbc\xc3\x9f" "e" },
		/* Shift_JIS through iconv: "日本語の件名" */
		{ "=?Shift_JIS?B?k/qWe4zqgsyMj5a8?=",
		  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe4\xbb\xb6\xe5\x90\x8d" },
		/* whitespace between adjacent encoded words is dropped (RFC 2047 6.2) */
		{ "=?utf-8?q?a?= =?utf-8?q?b?=", "ab" },
		{ "=?utf-8?q?a?=\n\t=?utf-8?q?b?=", "ab" },
		{ "=?utf-8?q?a?= =?iso-8859-1?q?b?=", "ab" },
		/* ... but kept between an encoded word and text */
		{ "x =?utf-8?q?a?= y", "x a y" },
		{ "=?utf-8?q?a_?= y", "a  y" },
		/* a UTF-8 character split over two words survives */
		{ "=?utf-8?B?5pe=?= =?utf-8?B?pQ==?=", "\xe6\x97\xa5" },
		{ "=?utf-8?q?=E6=97?= =?utf-8?q?=A5?=", "\xe6\x97\xa5" },
		/* language suffix (RFC 2231 5) */
		{ "=?utf-8*en?q?hi?=", "hi" },
		/* unknown charset: kept as written */
		{ "=?x-unknown?q?abc?= tail", "=?x-unknown?q?abc?= tail" },
		{ "=?x-unknown?q?a?= =?x-unknown?q?b?=", "=?x-unknown?q?a?= =?x-unknown?q?b?=" },
		/* malformed: kept */
		{ "=?utf-8?x?abc?=", "=?utf-8?x?abc?=" },
		{ "=?utf-8?q?abc", "=?utf-8?q?abc" },
		{ "=?utf-8?q?a b?=", "=?utf-8?q?a b?=" },
		{ "=??q?a?=", "=??q?a?=" },
		{ "a =? b", "a =? b" },
		/* encoded words glued to text (not RFC, common): decoded */
		{ "pre=?utf-8?q?X?=post", "preXpost" },
		/* folding removed, other whitespace kept */
		{ "a\r\n b", "a b" },
		/* invalid UTF-8 inside a UTF-8 word becomes U+FFFD */
		{ "=?utf-8?q?=FF?=", "\xef\xbf\xbd" },
		/* raw 8-bit outside encoded words is copied */
		{ "K\xc3\xb6ln =?utf-8?q?x?=", "K\xc3\xb6ln x" },
	};
	struct buf b = BUF_INIT(0);

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		buf_reset(&b);
		CHECK(mime_header_decode(&b, t[i].in, strlen(t[i].in)) == 0);
		CHECK_STR(b.data ? b.data : "", t[i].out, t[i].in);
	}
	/* the buffer maximum is respected and the buffer left as it was */
	{
		struct buf small = BUF_INIT(4);

		buf_adds(&small, "ab");
		CHECK(mime_header_decode(&small, "=?utf-8?q?cdef?=", 16) == -ENOBUFS);
		CHECK(small.len == 2 && strcmp(small.data, "ab") == 0);
		buf_release(&small);
	}
	buf_release(&b);
}

static void test_decoders(void)
{
	static const struct { const char *in, *out; } b64[] = {
		{ "", "" },
		{ "YQ==", "a" },
		{ "YWI=", "ab" },
		{ "YWJj", "abc" },
		{ "YW\nJj\r\nZA", "abcd" },         /* line breaks, no padding */
		{ "Y W J j", "abc" },               /* junk skipped */
		{ "YQ==YQ==", "aa" },               /* concatenated padded blocks */
		{ "!!!YWJj***", "abc" },
	};
	static const struct { const char *in, *out; bool q; } qp[] = {
		{ "Gr=FC=DFe", "Gr\xfc\xdf" "e", false },
		{ "soft=\nbreak", "softbreak", false },
		{ "soft=\r\nbreak", "softbreak", false },
		{ "trailing   \nspace\t\n", "trailing\nspace\n", false },
		{ "a=\n", "a", false },
		{ "bad=ZZ escape", "bad=ZZ escape", false },
		{ "lower=e9", "lower\xe9", false },
		{ "end=", "end", false },
		{ "end=4", "end=4", false },
		{ "crlf\r\nkept", "crlf\r\nkept", false },
		{ "a_b=5F", "a b_", true },
	};
	struct buf b = BUF_INIT(0);

	for (size_t i = 0; i < ARRAY_SIZE(b64); i++) {
		buf_reset(&b);
		CHECK(mime_base64_decode(&b, b64[i].in, strlen(b64[i].in)) == 0);
		CHECK_STR(b.data ? b.data : "", b64[i].out, b64[i].in);
	}
	for (size_t i = 0; i < ARRAY_SIZE(qp); i++) {
		buf_reset(&b);
		CHECK(mime_qp_decode(&b, qp[i].in, strlen(qp[i].in), qp[i].q) == 0);
		CHECK_STR(b.data ? b.data : "", qp[i].out, qp[i].in);
	}
	buf_release(&b);
}

static void test_charsets(void)
{
	static const struct { const char *cs, *in, *out; int ret; } t[] = {
		{ "iso-8859-1", "K\xf6ln", "K\xc3\xb6ln", 0 },
		{ "ISO_8859-1", "\xe9", "\xc3\xa9", 0 },
		{ "windows-1252", "\x80 \x93q\x94", "\xe2\x82\xac \xe2\x80\x9cq\xe2\x80\x9d", 0 },
		{ "Shift_JIS", "\x93\xfa\x96{\x8c\xea", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 0 },
		{ "iso-2022-jp", "\x1b$BF|K\\8l\x1b(B", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 0 },
		{ "utf-8", "ok \xc3\xa9", "ok \xc3\xa9", 0 },
		/* invalid UTF-8: overlong, surrogate, truncated, stray continuation */
		{ "UTF-8", "\xc0\xaf|\xed\xa0\x80|\xe6\x97|\x80", "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd", 0 },
		{ "us-ascii", "plain", "plain", 0 },
		/* invalid Shift_JIS lead byte at the end */
		{ "shift_jis", "a\x81", "a\xef\xbf\xbd", 0 },
		{ "x-unknown", "abc", "", -EINVAL },
		{ "utf-8//TRANSLIT", "abc", "", -EINVAL },
		{ "", "abc", "", -EINVAL },
	};
	struct buf b = BUF_INIT(0);

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		buf_reset(&b);
		CHECK(mime_charset_to_utf8(&b, t[i].cs, t[i].in, strlen(t[i].in)) == t[i].ret);
		CHECK_STR(b.data ? b.data : "", t[i].out, t[i].cs);
	}
	buf_release(&b);
}

/* Content-Type and Content-Disposition parameters, RFC 2045 and 2231. */
static void test_params(void)
{
	static const struct {
		const char *hdr;        /* header field(s) of a part */
		const char *params;     /* name=value;... of Content-Type (or Disposition) */
		const char *decoded;    /* mime_params_get(..., "filename" or "name") */
	} t[] = {
		{ "Content-Type: text/plain; charset=\"utf-8\"; format=flowed",
		  "charset=utf-8;format=flowed;", NULL },
		{ "Content-Type: text/plain (comment) ; (c) charset = (c) us-ascii (c)",
		  "charset=us-ascii;", NULL },
		{ "Content-Type: multipart/mixed; boundary=----=_Part_1_2.3",
		  "boundary=----=_Part_1_2.3;", NULL },
		{ "Content-Type: text/plain; name=\"a \\\"quoted\\\" name\"",
		  "name=a \"quoted\" name;", "a \"quoted\" name" },
		/* continuations, out of order, extended in the middle */
		{ "Content-Disposition: attachment; filename*1*=%E2%80%93%20x.txt;\n filename*0*=utf-8'en'a%20",
		  "filename*=utf-8'en'a%20%E2%80%93%20x.txt;", "a \xe2\x80\x93 x.txt" },
		/* plain continuations (no '*' at the end) */
		{ "Content-Disposition: attachment; filename*0=\"long \"; filename*1=\"name.txt\"",
		  "filename=long name.txt;", "long name.txt" },
		/* mixed: a plain first segment gets the '' prefix, a later plain one escapes '%' */
		{ "Content-Disposition: attachment; filename*0=\"50% \"; filename*1*=%C3%A9; filename*2=\"%\"",
		  "filename*=''50%25 %C3%A9%25;", "50% \xc3\xa9%" },
		/* a gap: not merged, kept as written */
		{ "Content-Disposition: attachment; filename*0=a; filename*2=c",
		  "filename*0=a;filename*2=c;", NULL },
		/* single extended value, ISO-8859-1 */
		{ "Content-Disposition: attachment; filename*=iso-8859-1''K%F6ln.txt",
		  "filename*=iso-8859-1''K%F6ln.txt;", "K\xc3\xb6ln.txt" },
		/* unknown charset: raw bytes */
		{ "Content-Disposition: attachment; filename*=x-nope''%41%42",
		  "filename*=x-nope''%41%42;", "AB" },
		/* "name*" preferred over "name" */
		{ "Content-Disposition: attachment; filename=old.txt; filename*=utf-8''new.txt",
		  "filename=old.txt;filename*=utf-8''new.txt;", "new.txt" },
		/* encoded words in a plain parameter (Outlook, Gmail) */
		{ "Content-Type: application/pdf; name=\"=?UTF-8?B?UsOpc3Vtw6kucGRm?=\"",
		  "name==?UTF-8?B?UsOpc3Vtw6kucGRm?=;", "R\xc3\xa9sum\xc3\xa9.pdf" },
		/* broken pieces are skipped, the rest kept */
		{ "Content-Type: text/plain; ; =x; novalue; a=1 junk; b=\"2\"x; c=3",
		  "a=1;b=2;c=3;", NULL },
		/* unterminated quoted string: to the end */
		{ "Content-Type: text/plain; a=\"open",
		  "a=open;", NULL },
		/* name*01 is not an RFC 2231 index */
		{ "Content-Type: text/plain; a*01=x",
		  "a*01=x;", NULL },
	};
	struct buf b = BUF_INIT(0), d = BUF_INIT(0), msg = BUF_INIT(0);

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct mime_message *m;
		const struct mime_part *p;
		const struct mime_param *pa;
		unsigned n;
		bool disp = strncmp(t[i].hdr, "Content-Disposition", 19) == 0;

		buf_reset(&msg);
		buf_printf(&msg, "%s\n\nbody\n", t[i].hdr);
		m = parse_checked(msg.data, msg.len, NULL, t[i].hdr);
		p = m->root;
		pa = disp ? p->disp_params : p->params;
		n = disp ? p->ndisp_params : p->nparams;
		buf_reset(&b);
		for (unsigned k = 0; k < n; k++)
			buf_printf(&b, "%s=%s;", pa[k].name, pa[k].value);
		CHECK_STR(b.data ? b.data : "", t[i].params, t[i].hdr);
		buf_reset(&d);
		if (t[i].decoded) {
			CHECK(mime_params_get(&d, pa, n, disp ? "filename" : "name") == 1);
			CHECK_STR(d.data ? d.data : "", t[i].decoded, t[i].hdr);
		} else {
			CHECK(mime_params_get(&d, pa, n, "filename") == 0);
		}
		mime_message_free(&m);
		CHECK(m == NULL);
	}
	buf_release(&b);
	buf_release(&d);
	buf_release(&msg);
}

/* The tree of each corpus message: types and CRLF sizes counted by hand. */
static void test_trees(void)
{
	static const struct { const char *name, *msg, *tree; } t[] = {
		{ "plain", CORPUS_PLAIN, "text/plain[634,46,5]" },
		{ "mixed-alt", CORPUS_MIXED_ALT,
		  "multipart/mixed[271,813,25]{multipart/alternative[65,327,12]{text/plain[93,35,1] text/html[92,44,0]} application/pdf[177,114,1]}" },
		{ "forward", CORPUS_FORWARD,
		  "multipart/mixed[222,681,31]{text/plain[46,12,1] message/rfc822[101,489,19]{multipart/alternative[384,105,9]{text/plain[28,5,0] text/html[27,12,0]}}}" },
		{ "no-boundary", CORPUS_NO_BOUNDARY, "multipart/mixed[76,48,5]" },
		{ "unterminated", CORPUS_UNTERMINATED,
		  "multipart/mixed[110,180,15,unterminated]{multipart/alternative[53,80,7,unterminated]{text/plain[28,3,0] text/html[27,10,0]} text/plain[28,7,1]}" },
		{ "garbage", CORPUS_GARBAGE, "text/plain[229,6,1]" },
		{ "header-only", CORPUS_HEADER_ONLY, "text/plain[37,0,0,noblank]" },
		{ "digest", CORPUS_DIGEST,
		  "multipart/digest[108,114,13]{message/rfc822[2,47,4]{text/plain[39,8,1]} text/plain[28,16,1]}" },
		{ "rfc822-empty", CORPUS_RFC822_EMPTY,
		  "Message/RFC822[48,28,1]{text/plain[28,0,0,noblank]}" },
		{ "empty", "", "text/plain[0,0,0,noblank]" },
		{ "lone boundary line", "Content-Type: multipart/mixed; boundary=b\n\n--b",
		  "multipart/mixed[45,3,0,unterminated]{text/plain[0,0,0,noblank]}" },
		{ "boundary ends a header", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n--b--\n",
		  "multipart/mixed[45,37,3]{text/html[23,0,0,noblank]}" },
		{ "nested same prefix", "Content-Type: multipart/mixed; boundary=ab\n\n--ab\nContent-Type: multipart/mixed; boundary=a\n\n--a\n\nx\n--ab--\n",
		  "multipart/mixed[46,69,7]{multipart/mixed[45,8,2,unterminated]{text/plain[2,1,0]}}" },
	};
	struct buf b = BUF_INIT(0);

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct mime_message *m = parse_checked(t[i].msg, strlen(t[i].msg), NULL, t[i].name);

		buf_reset(&b);
		dump(&b, m->root);
		CHECK_STR(b.data, t[i].tree, t[i].name);
		CHECK(!m->limits_hit);
		mime_message_free(&m);
	}
	buf_release(&b);
}

static void test_fields(void)
{
	struct mime_message *m = parse_checked(CORPUS_OUTLOOK, strlen(CORPUS_OUTLOOK), NULL, "outlook");
	const struct mime_part *root = m->root, *att = root->children->next;
	struct buf b = BUF_INIT(0);

	CHECK(root->nlanguages == 1 && strcmp(root->languages[0], "de-DE") == 0);
	CHECK(strcmp(root->boundary, "_004_OUTLOOK_") == 0);
	CHECK(strcmp(att->type, "application") == 0);
	CHECK(strcmp(att->id, "<part1.ABC@example.com>") == 0);
	CHECK(strcmp(att->location, "Preisliste.xlsx") == 0);
	CHECK(strcmp(att->md5, "rL0Y20zC+Fzt72VPzMSk2A==") == 0);
	CHECK(strcmp(att->encoding, "base64") == 0);
	CHECK(strcmp(att->disposition, "attachment") == 0);
	CHECK(mime_params_get(&b, att->disp_params, att->ndisp_params, "filename") == 1);
	CHECK_STR(b.data, "Preisliste 2026 \xe2\x80\x93 Entwurf.xlsx", "outlook filename");
	buf_reset(&b);
	CHECK(mime_header_decode(&b, att->description, strlen(att->description)) == 0);
	CHECK_STR(b.data, "Preisliste 2026 \xe2\x80\x93 Entwurf.xlsx", "outlook description");
	mime_message_free(&m);

	/* the first of repeated fields counts; invalid encodings are ignored */
	{
		static const char msg[] =
			"Content-Type: text/html\n"
			"Content-Type: image/png\n"
			"Content-Transfer-Encoding: ?invalid\n"
			"Content-Transfer-Encoding: base64\n"
			"Content-Language: en-GB, (comment) fr , x-klingon\n"
			"Content-ID: <a>\n"
			"Content-ID: <b>\n"
			"\n";

		m = parse_checked(msg, sizeof(msg) - 1, NULL, "repeated");
		CHECK(strcmp(m->root->subtype, "html") == 0);
		CHECK(m->root->encoding == NULL);
		CHECK(m->root->nlanguages == 3 && strcmp(m->root->languages[2], "x-klingon") == 0);
		CHECK(strcmp(m->root->id, "<a>") == 0);
		mime_message_free(&m);
	}
	/* a Content-Type without a subtype is invalid: the default applies */
	{
		static const char msg[] = "Content-Type: text\n\nx";

		m = parse_checked(msg, sizeof(msg) - 1, NULL, "no subtype");
		CHECK(strcmp(m->root->type, "text") == 0 && strcmp(m->root->subtype, "plain") == 0);
		CHECK(m->root->flags & MIME_PART_DEFAULT_TYPE);
		mime_message_free(&m);
	}
	buf_release(&b);
}

static void test_decode_parts(void)
{
	struct buf b = BUF_INIT(0);
	struct mime_message *m;
	const struct mime_part *p;

	m = parse_checked(CORPUS_MIXED_ALT, strlen(CORPUS_MIXED_ALT), NULL, "mixed-alt");
	p = m->root->children->children;                  /* 1.1, QP ISO-8859-1 */
	CHECK(mime_part_decode(&b, m, p, MIME_DECODE_UTF8) == 0);
	CHECK_STR(b.data, "Gr\xc3\xbc\xc3\x9f" "e,\nthe report is attached.", "qp latin1");
	buf_reset(&b);
	CHECK(mime_part_decode(&b, m, p, 0) == 0);
	CHECK_STR(b.data, "Gr\xfc\xdf" "e,\nthe report is attached.", "qp raw");
	buf_reset(&b);
	p = m->root->children->next;                      /* 2, the PDF */
	CHECK(mime_part_decode(&b, m, p, MIME_DECODE_UTF8) == 0);
	CHECK(b.len == 84 && memcmp(b.data, "%PDF-1.4\n%\xc7\xec\x8f\xa2\n", 15) == 0 &&
	      memcmp(b.data + b.len - 6, "%%EOF\n", 6) == 0);
	buf_reset(&b);
	CHECK(mime_params_get(&b, p->disp_params, p->ndisp_params, "filename") == 1);
	CHECK_STR(b.data, "R\xc3\xa9sum\xc3\xa9.pdf", "pdf filename");
	mime_message_free(&m);

	buf_reset(&b);
	m = parse_checked(CORPUS_SJIS, strlen(CORPUS_SJIS), NULL, "sjis");
	CHECK(mime_part_decode(&b, m, m->root, MIME_DECODE_UTF8) == 0);
	CHECK_STR(b.data, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\n", "sjis body");
	mime_message_free(&m);

	buf_reset(&b);
	m = parse_checked(CORPUS_OUTLOOK, strlen(CORPUS_OUTLOOK), NULL, "outlook");
	CHECK(mime_part_decode(&b, m, m->root->children, MIME_DECODE_UTF8) == 0);
	CHECK_STR(b.data, "Angebot anbei.\n", "outlook base64");
	mime_message_free(&m);

	/* a full buffer leaves it unchanged */
	{
		struct buf small = BUF_INIT(5);

		m = parse_checked(CORPUS_OUTLOOK, strlen(CORPUS_OUTLOOK), NULL, "outlook");
		CHECK(mime_part_decode(&small, m, m->root->children, MIME_DECODE_UTF8) == -ENOBUFS);
		CHECK(small.len == 0);
		mime_message_free(&m);
		buf_release(&small);
	}
	buf_release(&b);
}

/* CRLF size and windows: every window equals the slice of the full output. */
static void test_crlf(void)
{
	static const char *const in[] = {
		"", "\n", "a", "a\nb\r\nc\n", "\r\n\r\n", "\n\n\n", "x\r", "\r\r\n\rz\n",
		"no newline", "a\0b\nc",
	};
	static const size_t lens[] = { 0, 1, 1, 7, 4, 3, 2, 6, 10, 5 };
	static const size_t sizes[] = { 0, 2, 1, 9, 4, 6, 2, 7, 10, 6 };
	struct buf full = BUF_INIT(0), part = BUF_INIT(0);

	for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
		size_t n = lens[i];

		CHECK(mime_crlf_size(in[i], n) == sizes[i]);
		CHECK(mime_crlf_size(in[i], n) == ref_crlf(in[i], n));
		buf_reset(&full);
		CHECK(mime_crlf_append(&full, in[i], n, 0, SIZE_MAX, 0) == 0);
		CHECK(full.len == sizes[i]);
		/* no bare LF, no lone CR turned into CRLF */
		for (size_t k = 0; k < full.len; k++)
			if (full.data[k] == '\n')
				CHECK(k > 0 && full.data[k - 1] == '\r');
		for (size_t skip = 0; skip <= full.len + 1; skip++) {
			for (size_t max = 0; max <= full.len + 1; max++) {
				size_t want_len = skip >= full.len ? 0 :
					(full.len - skip < max ? full.len - skip : max);

				buf_reset(&part);
				CHECK(mime_crlf_append(&part, in[i], n, skip, max, 0) == 0);
				CHECK(part.len == want_len);
				if (part.len == want_len && want_len)
					CHECK(memcmp(part.data, full.data + skip, want_len) == 0);
			}
		}
	}
	buf_reset(&full);
	CHECK(mime_crlf_append(&full, "a\0b\n", 4, 0, SIZE_MAX, MIME_CRLF_NUL_TO_80) == 0);
	CHECK(full.len == 5 && memcmp(full.data, "a\x80" "b\r\n", 5) == 0);
	{
		struct buf small = BUF_INIT(3);

		buf_adds(&small, "x");
		CHECK(mime_crlf_append(&small, "ab\n", 3, 0, SIZE_MAX, 0) == -ENOBUFS);
		CHECK(small.len == 1);
		CHECK(mime_crlf_append(&small, "ab\n", 3, 2, SIZE_MAX, 0) == 0);
		CHECK(small.len == 3 && memcmp(small.data, "x\r\n", 3) == 0);
		buf_release(&small);
	}
	buf_release(&full);
	buf_release(&part);
}

/* LF and CRLF storage give the same tree and the same CRLF sizes. */
static void test_crlf_input(void)
{
	struct buf a = BUF_INIT(0), b = BUF_INIT(0);

	for (size_t i = 0; i < ARRAY_SIZE(corpus); i++) {
		size_t len;
		char *crlf = lf_to_crlf(corpus[i].data, &len);
		struct mime_message *m1 = parse_checked(corpus[i].data, strlen(corpus[i].data), NULL, corpus[i].name);
		struct mime_message *m2 = parse_checked(crlf, len, NULL, corpus[i].name);

		buf_reset(&a);
		buf_reset(&b);
		dump(&a, m1->root);
		dump(&b, m2->root);
		CHECK_STR(b.data, a.data, corpus[i].name);
		mime_message_free(&m1);
		mime_message_free(&m2);
		free(crlf);
	}
	buf_release(&a);
	buf_release(&b);
}

/* Every prefix of every corpus message (truncated mail) parses with the invariants intact. */
static void test_prefixes(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(corpus); i++) {
		size_t len = strlen(corpus[i].data);

		for (size_t n = 0; n <= len; n++) {
			char *copy = xmalloc(n + 1);   /* exact size, so ASan sees overreads */
			struct mime_message *m;

			memcpy(copy, corpus[i].data, n);
			m = parse_checked(copy, n, NULL, corpus[i].name);
			mime_message_free(&m);
			free(copy);
		}
	}
}

static void test_limits(void)
{
	struct buf b = BUF_INIT(0), d = BUF_INIT(0);
	struct mime_message *m;
	const struct mime_part *p;
	unsigned depth;

	/* 100 nested multiparts, each with its own boundary, never closed
	 * (fixed width: "b3" would be a prefix of "b33", a delimiter by RFC 2046) */
	for (int i = 0; i < 100; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%03d\"\n\n--b%03d\n", i, i);
	buf_adds(&b, "Content-Type: text/plain\n\ndeep\n");
	m = parse_checked(b.data, b.len, NULL, "deep multipart");
	CHECK(m->limits_hit);
	for (p = m->root, depth = 0; p->children; p = p->children)
		depth++;
	CHECK(depth == MIME_DEFAULT_MAX_DEPTH);
	CHECK(p->flags & MIME_PART_OPAQUE);
	CHECK(strcmp(p->type, "multipart") == 0);
	/* the opaque part holds the rest of the message */
	CHECK(p->body_off + p->body_len == b.len);
	mime_message_free(&m);

	/* 100 nested message/rfc822 */
	buf_reset(&b);
	for (int i = 0; i < 100; i++)
		buf_printf(&b, "Subject: level %d\nContent-Type: message/rfc822\n\n", i);
	buf_adds(&b, "Subject: bottom\n\nbody\n");
	m = parse_checked(b.data, b.len, NULL, "deep rfc822");
	CHECK(m->limits_hit);
	for (p = m->root, depth = 0; p->children; p = p->children)
		depth++;
	CHECK(depth == MIME_DEFAULT_MAX_DEPTH && (p->flags & MIME_PART_OPAQUE));
	mime_message_free(&m);

	/* custom limits: depth 1, 4 parts in all */
	{
		struct mime_limits lim = { 1, 4 };

		buf_reset(&b);
		buf_adds(&b, "Content-Type: multipart/mixed; boundary=o\n\n");
		for (int i = 0; i < 6; i++)
			buf_printf(&b, "--o\nContent-Type: message/rfc822\n\nSubject: %d\n\nx\n", i);
		buf_adds(&b, "--o--\nepilogue\n");
		m = parse_checked(b.data, b.len, &lim, "custom limits");
		CHECK(m->nparts == 4 && m->root->nchildren == 3 && m->limits_hit);
		/* depth 1: the rfc822 parts are not opened */
		CHECK(m->root->children->flags & MIME_PART_OPAQUE);
		/* past the part limit the boundaries are ignored: the multipart's body runs to the end */
		CHECK(m->root->body_off + m->root->body_len == b.len);
		mime_message_free(&m);
	}

	/* 20000 parts: capped at the default 10000, linear time */
	buf_reset(&b);
	buf_adds(&b, "Content-Type: multipart/mixed; boundary=z\n\n");
	for (int i = 0; i < 20000; i++)
		buf_adds(&b, "--z\n\nx\n");
	buf_adds(&b, "--z--\n");
	m = parse_checked(b.data, b.len, NULL, "many parts");
	CHECK(m->nparts == MIME_DEFAULT_MAX_PARTS && m->limits_hit);
	mime_message_free(&m);

	/* zero limits are survivable too */
	{
		struct mime_limits lim = { 0, 0 };

		m = parse_checked(CORPUS_FORWARD, strlen(CORPUS_FORWARD), &lim, "zero limits");
		CHECK(m->nparts == 1 && (m->root->flags & MIME_PART_OPAQUE));
		mime_message_free(&m);
	}
	buf_release(&b);
	buf_release(&d);
}

int main(void)
{
	test_headers();
	test_rfc2047();
	test_decoders();
	test_charsets();
	test_params();
	test_trees();
	test_fields();
	test_decode_parts();
	test_crlf();
	test_crlf_input();
	test_prefixes();
	test_limits();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("mime: all checks passed\n");
	return 0;
}
