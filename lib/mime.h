#ifndef BUZON_MIME_H
#define BUZON_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/*
 * Message parsing for IMAP: RFC 5322 headers and the RFC 2045/2046 MIME tree
 * of a whole message held in memory, plus the decoders SEARCH needs.
 *
 * Messages are stored with LF line ends; IMAP counts with CRLF. Every size,
 * line count and emitted byte this module reports is in "CRLF form": a
 * stored LF not preceded by CR counts (and is emitted) as CRLF, a stored
 * CRLF counts once as 2, a lone CR counts as 1. Offsets (hdr_off, body_off)
 * are raw positions in the stored bytes, for slicing; sizes (hdr_size,
 * body_size) are CRLF sizes, for the wire.
 *
 * The parser never copies the message: a struct mime_message points into
 * the caller's bytes, which must outlive it. It never recurses over the
 * input: the tree is built in one pass over the lines with an explicit
 * stack, and the limits below cap depth and part count. Past a limit the
 * rest is kept as an opaque body; the parser never fails on bad input.
 */

/* Defaults: Dovecot uses 100 nested / 10000 total; 32 is deeper than any mail client builds. */
#define MIME_DEFAULT_MAX_DEPTH 32
#define MIME_DEFAULT_MAX_PARTS 10000
/* A limit above this is clamped: the BODYSTRUCTURE writer recurses once per level. */
#define MIME_HARD_MAX_DEPTH 256
/* Parameters kept per Content-Type / Content-Disposition; more are ignored. */
#define MIME_MAX_PARAMS 128
/* Language tags kept per Content-Language. */
#define MIME_MAX_LANGUAGES 32

struct mime_limits {
	unsigned max_depth;   /* nesting levels below the top-level message */
	unsigned max_parts;   /* entities in all, the message itself included */
};

#define MIME_LIMITS_DEFAULT { MIME_DEFAULT_MAX_DEPTH, MIME_DEFAULT_MAX_PARTS }

enum mime_part_flags {
	/* multipart/... with a boundary: children are the body parts. */
	MIME_PART_MULTIPART = 1 << 0,
	/* message/rfc822 or message/global: one child, the encapsulated message. */
	MIME_PART_MESSAGE = 1 << 1,
	/* text/... */
	MIME_PART_TEXT = 1 << 2,
	/* A multipart or message part left unexpanded because a limit was
	 * reached: it has no children and is described as application/octet-stream. */
	MIME_PART_OPAQUE = 1 << 3,
	/* No valid Content-Type: type and subtype are the RFC 2045/2046 defaults. */
	MIME_PART_DEFAULT_TYPE = 1 << 4,
	/* The header did not end with an empty line (end of input or a boundary). */
	MIME_PART_NO_BLANK_LINE = 1 << 5,
	/* A multipart whose closing delimiter was never seen. */
	MIME_PART_UNTERMINATED = 1 << 6,
};

/*
 * One parameter as BODYSTRUCTURE reports it (what Dovecot sends too): RFC 2231
 * continuations (name*0, name*1*, ...) are merged into one parameter named
 * "name" or, when a segment was extended, "name*" whose value keeps the
 * charset'language'%XX form. mime_param_decode() turns it into UTF-8.
 * Name and value are NUL-terminated; a NUL byte of the header becomes 0x80.
 */
struct mime_param {
	const char *name;
	const char *value;
};

struct mime_part {
	struct mime_part *parent, *children, *next;
	unsigned nchildren;
	unsigned depth;               /* 0 for the top-level message */
	unsigned flags;               /* enum mime_part_flags */

	size_t hdr_off, hdr_len;      /* raw: the header, its empty line included */
	size_t body_off, body_len;    /* raw: body_off == hdr_off + hdr_len */
	size_t hdr_size, body_size;   /* CRLF form */
	size_t body_lines;            /* line breaks in the body */

	/* MIME fields. Strings are NUL-terminated, unfolded (CR and LF removed)
	 * and NULL when the field is absent; type and subtype are never NULL.
	 * They stay valid as long as the message. */
	const char *type, *subtype;   /* as written, or "text"/"plain" ("message"/"rfc822" in a digest) */
	const struct mime_param *params;
	unsigned nparams;
	const char *boundary;         /* multipart only */
	const char *encoding;         /* Content-Transfer-Encoding token as written */
	const char *id, *description, *md5, *location;
	const char *disposition;      /* token as written */
	const struct mime_param *disp_params;
	unsigned ndisp_params;
	const char *const *languages;
	unsigned nlanguages;
};

struct mime_arena;

struct mime_message {
	const char *data;             /* the caller's bytes */
	size_t len;
	struct mime_part *root;
	unsigned nparts;
	bool limits_hit;              /* some part was left opaque or boundaries were ignored */
	struct mime_arena *arena;
};

/*
 * Parses a whole message (data stays the caller's and must outlive *msg_r).
 * limits may be NULL for MIME_LIMITS_DEFAULT. Always succeeds: any input
 * gives a tree; returns 0.
 */
int mime_parse(const char *data, size_t len, const struct mime_limits *limits,
	       struct mime_message **msg_r);
/* Frees the tree and sets *msg to NULL. */
void mime_message_free(struct mime_message **msg);

/* Returns the size of the header at data, its empty line included (the whole input when there is none). */
size_t mime_header_length(const char *data, size_t len);

/*
 * Header fields, in order, from a header block (as given by hdr_off/hdr_len
 * or mime_header_length()). Iteration stops at the empty line.
 */
struct mime_header_iter {
	const char *p, *end;
};

struct mime_field {
	const char *name;     /* name_len == 0: a malformed line (no colon, or a
			       * continuation with nothing to continue) */
	size_t name_len;      /* without the whitespace before the colon */
	const char *value;    /* after the colon and leading whitespace, folded, */
	size_t value_len;     /* without the final line break */
	const char *raw;      /* the whole field with its line breaks */
	size_t raw_len;
};

void mime_header_iter_init(struct mime_header_iter *it, const char *hdr, size_t len);
/* 1 and the next field in *f, or 0 at the end of the header. */
int mime_header_next(struct mime_header_iter *it, struct mime_field *f);
/* Finds the first field named name (case-insensitive); 1 found, 0 not. */
int mime_header_find(const char *hdr, size_t len, const char *name, struct mime_field *f);
/* Finds the next field named name from where it stands, for fields that
 * occur more than once (Received, Resent-*); 1 found, 0 at the end. */
int mime_header_iter_find(struct mime_header_iter *it, const char *name, struct mime_field *f);
/* Appends value with its folding removed (RFC 5322 2.2.3: CR and LF dropped); 0 or -ENOBUFS. */
int mime_header_unfold(struct buf *out, const char *value, size_t len);
/*
 * Appends value unfolded and with RFC 2047 encoded words decoded to UTF-8
 * (B and Q; whitespace between adjacent encoded words dropped; adjacent
 * words in one charset joined before conversion, so split characters
 * survive). An encoded word in an unknown charset, or malformed, is kept
 * as written. Other bytes are copied. 0 or -ENOBUFS.
 */
int mime_header_decode(struct buf *out, const char *value, size_t len);

/* Decoders; all lenient, appending to out; 0 or -ENOBUFS. */
/* Base64: characters outside the alphabet are skipped, padding optional. */
int mime_base64_decode(struct buf *out, const char *in, size_t len);
/* Quoted-printable: soft breaks removed, bad escapes kept as written, trailing
 * whitespace of lines dropped. q_header: the RFC 2047 Q form ('_' is a space). */
int mime_qp_decode(struct buf *out, const char *in, size_t len, bool q_header);
/*
 * Converts text in charset to UTF-8 with iconv. Invalid sequences become
 * U+FFFD. US-ASCII and UTF-8 (and labels that mean them) are only checked.
 * -EINVAL (nothing appended) when the charset is unknown, -ENOBUFS.
 */
int mime_charset_to_utf8(struct buf *out, const char *charset, const char *in, size_t len);

/*
 * Decodes a parameter into UTF-8: a "name*" value as RFC 2231 says
 * (charset'language'%XX; an unknown charset leaves the bytes raw), any
 * other value as mime_header_decode() does (mailers put encoded words
 * in file names). 0 or -ENOBUFS.
 */
int mime_param_decode(struct buf *out, const struct mime_param *param);
/*
 * Finds parameter name (case-insensitive, "name*" preferred over "name")
 * among params and appends its decoded value. 1 found, 0 not, -ENOBUFS.
 */
int mime_params_get(struct buf *out, const struct mime_param *params, unsigned n,
		    const char *name);

enum mime_decode_flags {
	/* text/... parts: convert from their charset to UTF-8 as well. */
	MIME_DECODE_UTF8 = 1 << 0,
};

/* Appends the body of part with its Content-Transfer-Encoding undone (and
 * converted to UTF-8 with MIME_DECODE_UTF8); 0 or -ENOBUFS. */
int mime_part_decode(struct buf *out, const struct mime_message *msg,
		     const struct mime_part *part, unsigned flags);

/* CRLF form. */
/* Returns the CRLF size of a byte range that starts at a line start. */
size_t mime_crlf_size(const char *data, size_t len);

enum mime_crlf_flags {
	/* IMAP literals may not hold NUL: write 0x80 instead (as Dovecot does). */
	MIME_CRLF_NUL_TO_80 = 1 << 0,
};

/*
 * Appends the CRLF form of data[0..len) (a range that starts at a line
 * start), from CRLF position skip, at most max bytes (SIZE_MAX: all).
 * Appends nothing and returns -ENOBUFS when out cannot take it; else 0.
 */
int mime_crlf_append(struct buf *out, const char *data, size_t len,
		     size_t skip, size_t max, unsigned flags);

#endif
