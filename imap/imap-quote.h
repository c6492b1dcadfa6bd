#ifndef BUZON_IMAP_QUOTE_H
#define BUZON_IMAP_QUOTE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/*
 * Writing strings into IMAP responses (RFC 3501 section 4.3 and 9): an atom
 * when the text allows it and the grammar asks for an astring, a quoted
 * string when it holds only 7-bit text without CR and LF, a literal
 * otherwise. All functions append to out and return 0, -ENOBUFS when out is
 * full, or -EINVAL when the text cannot be written at all; on error out is
 * left as it was.
 */

enum imap_quote_flags {
	/* Valid UTF-8 may go in quoted strings (RFC 6855 UTF8=ACCEPT). */
	IMAP_QUOTE_UTF8 = 1 << 0,
	/* Text with NUL goes out as a literal8 "~{n}" (RFC 3516) instead of
	 * being refused. */
	IMAP_QUOTE_LITERAL8 = 1 << 1,
};

/* Quoted strings longer than this are written as literals. */
#define IMAP_QUOTE_MAX_QUOTED 1024

/* True when s[0..len) is a non-empty run of ATOM-CHAR or "]"
 * (RFC 3501 ASTRING-CHAR), so that it may be written bare as an astring. */
bool imap_is_astring_atom(const char *s, size_t len);

/* True when s[0..len) may be written as a quoted string with these flags. */
bool imap_can_quote(const char *s, size_t len, unsigned flags);

/* Writes "..." with " and \ escaped; -EINVAL when imap_can_quote() is false. */
int imap_write_quoted(struct buf *out, const char *s, size_t len, unsigned flags);

/* Writes "{len}" CRLF and the bytes ("~{len}" with literal8). */
int imap_write_literal(struct buf *out, const char *s, size_t len, bool literal8);

/* Writes a string: quoted when possible and at most IMAP_QUOTE_MAX_QUOTED
 * octets long, else a literal. Text with NUL needs IMAP_QUOTE_LITERAL8. */
int imap_write_string(struct buf *out, const char *s, size_t len, unsigned flags);

/* Writes an astring: bare when imap_is_astring_atom() and not "NIL" in any
 * case, else as imap_write_string(). */
int imap_write_astring(struct buf *out, const char *s, size_t len, unsigned flags);

/* Writes an nstring: NIL when s is NULL, else as imap_write_string(). */
int imap_write_nstring(struct buf *out, const char *s, size_t len, unsigned flags);

#endif
