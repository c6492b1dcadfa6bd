#ifndef BUZON_IMAP_UTF7_H
#define BUZON_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/*
 * Modified UTF-7 for mailbox names (RFC 3501 section 5.1.3). Printable
 * US-ASCII except "&" stands for itself, "&" is "&-", everything else is
 * UTF-16 in modified BASE64 (with "," for "/", no padding) between "&" and
 * "-".
 *
 * Decoding is strict: only the canonical form, the one imap_utf8_to_utf7()
 * writes, is accepted, so that decoding then encoding gives back the input.
 * Refused: octets outside 0x20-0x7e, an "&" without its "-", characters
 * outside the modified BASE64 alphabet, pad bits that are not zero or make
 * up a whole character, printable US-ASCII inside BASE64, two BASE64 runs
 * one after the other, unpaired surrogates, and U+0000.
 */

/*
 * Appends the mUTF-7 form of the UTF-8 text src[0..len) to out. Returns 0,
 * -EINVAL when src is not valid UTF-8 (overlong forms, surrogates, code
 * points past U+10FFFF, U+0000) or -ENOBUFS; on error out is left as it was.
 */
int imap_utf8_to_utf7(const char *src, size_t len, struct buf *out);

/*
 * Appends the UTF-8 form of the mUTF-7 text src[0..len) to out. Returns 0,
 * -EINVAL when src is not canonical modified UTF-7 (see above) or -ENOBUFS;
 * on error out is left as it was.
 */
int imap_utf7_to_utf8(const char *src, size_t len, struct buf *out);

/* Returns the length of the valid UTF-8 sequence at s (at most len
 * octets, len > 0), or 0 when s does not start one. */
size_t imap_utf8_char_len(const char *s, size_t len);

/* True when src[0..len) is canonical modified UTF-7. */
bool imap_utf7_is_valid(const char *src, size_t len);

#endif
