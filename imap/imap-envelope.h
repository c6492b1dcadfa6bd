#ifndef BUZON_IMAP_ENVELOPE_H
#define BUZON_IMAP_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/mime.h"

/*
 * FETCH ENVELOPE, BODY, BODYSTRUCTURE and BODY[section] (RFC 3501 6.4.5,
 * 7.4.2, 9) from a message parsed by lib/mime.
 *
 * Output conventions, chosen to answer what Dovecot answers:
 * - Strings are quoted ("..." with \" and \\ escaped) unless they hold CR,
 *   LF, NUL or 8-bit bytes, or more than four characters to escape: then
 *   they are literals ({n}CRLF and the bytes; NUL is sent as 0x80).
 * - Media types, subtypes, parameter names, encodings and dispositions are
 *   sent as the message wrote them; defaults are lower case: "text" "plain"
 *   ("charset" "us-ascii") and "7bit". Only message/rfc822 and
 *   message/global parts are written in a fixed form ("message" "rfc822").
 * - RFC 2231 parameters are merged but stay encoded (see struct mime_param).
 * - A multipart with no parts at all is described with one empty text/plain
 *   part; a part left opaque by a limit as "application" "octet-stream".
 * - Header values (date, message-id, in-reply-to, content-id, ...) are
 *   unfolded; subject and display names are also whitespace-collapsed.
 *   Encoded words are not decoded (RFC 3501: the client does that).
 * Every writer appends to out and returns 0, or -ENOBUFS with out unchanged.
 */

/*
 * Writes the ENVELOPE list "(date subject from sender reply-to to cc bcc
 * in-reply-to message-id)" of the header block hdr (a whole message works
 * too: only its header is read). The first occurrence of each field counts;
 * sender and reply-to fall back to from when absent or empty; addresses
 * missing a part are completed with MISSING_MAILBOX / MISSING_DOMAIN, broken
 * angle addresses get the domain SYNTAX_ERROR (as Dovecot).
 */
int imap_envelope_write(struct buf *out, const char *hdr, size_t hdr_len);

/*
 * Writes the BODYSTRUCTURE (extended) or BODY (not extended) of msg,
 * parenthesized: "(" body ")".
 */
int imap_bodystructure_write(struct buf *out, const struct mime_message *msg, bool extended);

/* A BODY[section] specification. */
enum imap_section_text {
	IMAP_SECTION_ALL,               /* BODY[] or BODY[1.2]: the part's body */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME,              /* needs a part number */
};

#define IMAP_SECTION_MAX_PARTS 64
#define IMAP_SECTION_MAX_FIELDS 256

struct imap_section {
	unsigned parts[IMAP_SECTION_MAX_PARTS];
	unsigned nparts;
	enum imap_section_text text;
	char **fields;                  /* HEADER.FIELDS[.NOT] names, owned */
	unsigned nfields;
};

/* Sets an empty section (BODY[]). */
void imap_section_init(struct imap_section *s);
/* Frees the field names and leaves an empty section. */
void imap_section_release(struct imap_section *s);
/* Adds a HEADER.FIELDS name (for callers that read it as a literal); 0 or -E2BIG. */
int imap_section_add_field(struct imap_section *s, const char *name, size_t len);
/*
 * Parses the text between the brackets of BODY[...]: "", "1.2", "HEADER",
 * "2.TEXT", "1.MIME", "HEADER.FIELDS (From To)", ... into s, which must have
 * been initialized (its old contents are released). Keywords are
 * case-insensitive; field names are atoms or quoted strings (a literal is
 * the command parser's business: it can use imap_section_add_field()).
 * 0, or -EINVAL for a malformed section (s is then empty).
 */
int imap_section_parse(struct imap_section *s, const char *spec, size_t len);
/* Writes the section back in canonical form (upper-case keywords), for the FETCH reply. */
int imap_section_write(struct buf *out, const struct imap_section *s);

/*
 * Finds the part named by part numbers (RFC 3501 6.4.5): in a multipart the
 * n-th body part; in a message whose body is not multipart only 1, the body
 * itself; numbers below a message/rfc822 part address its encapsulated
 * message. NULL when there is no such part.
 */
const struct mime_part *imap_section_part(const struct mime_message *msg,
					  const unsigned *parts, unsigned nparts);

/*
 * Appends the CRLF form of the section of msg, from octet offset, at most
 * max octets (SIZE_MAX: all): BODY[section]<offset.max>. *size_r gets the
 * full size of the section. HEADER, TEXT and HEADER.FIELDS[.NOT] of a part
 * apply to its encapsulated message, so the part must be message/rfc822;
 * MIME is the part's own header. HEADER.FIELDS[.NOT] lists the fields in
 * message order, folding kept, and ends with the empty line.
 *
 * A part that does not exist is not an error (RFC 3501 does not say;
 * Dovecot and UW-IMAP send an empty string): nothing is appended, *size_r
 * is 0 and the return value is 0. Returns 1 when the part exists,
 * -ENOBUFS when out cannot take the bytes, -EINVAL for MIME without a part.
 * NUL bytes are sent as 0x80 (IMAP literals may not hold NUL).
 */
int imap_section_fetch(struct buf *out, const struct mime_message *msg,
		       const struct imap_section *s, size_t offset, size_t max,
		       size_t *size_r);

#endif
