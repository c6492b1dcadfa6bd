/* Writing IMAP strings. See imap-quote.h. */

#include "imap/imap-quote.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "imap/imap-utf7.h"
#include "lib/buf.h"

static bool is_astring_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' &&
		c != '*' && c != '"' && c != '\\';
}

bool imap_is_astring_atom(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_astring_char((unsigned char)s[i]))
			return false;
	return true;
}

bool imap_can_quote(const char *s, size_t len, unsigned flags)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		size_t n;

		if (c == '\0' || c == '\r' || c == '\n')
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (!(flags & IMAP_QUOTE_UTF8))
			return false;
		n = imap_utf8_char_len(s + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static void restore(struct buf *out, size_t len)
{
	out->len = len;
	if (out->data)
		out->data[len] = '\0';
}

int imap_write_quoted(struct buf *out, const char *s, size_t len, unsigned flags)
{
	size_t start = out->len, extra = 2;

	if (!imap_can_quote(s, len, flags))
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '"' || s[i] == '\\')
			extra++;
	if (len > SIZE_MAX - extra || buf_reserve(out, len + extra) < 0)
		return -ENOBUFS;
	buf_addch(out, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_addch(out, '\\');
		buf_addch(out, s[i]);
	}
	if (buf_addch(out, '"') < 0) {
		restore(out, start);
		return -ENOBUFS;
	}
	return 0;
}

int imap_write_literal(struct buf *out, const char *s, size_t len, bool literal8)
{
	size_t start = out->len;

	if (buf_printf(out, "%s{%zu}\r\n", literal8 ? "~" : "", len) < 0 || buf_add(out, s, len) < 0) {
		restore(out, start);
		return -ENOBUFS;
	}
	return 0;
}

int imap_write_string(struct buf *out, const char *s, size_t len, unsigned flags)
{
	if (len <= IMAP_QUOTE_MAX_QUOTED && imap_can_quote(s, len, flags))
		return imap_write_quoted(out, s, len, flags);
	if (memchr(s, '\0', len)) {
		if (!(flags & IMAP_QUOTE_LITERAL8))
			return -EINVAL;
		return imap_write_literal(out, s, len, true);
	}
	return imap_write_literal(out, s, len, false);
}

int imap_write_astring(struct buf *out, const char *s, size_t len, unsigned flags)
{
	if (imap_is_astring_atom(s, len) && !(len == 3 && strncasecmp(s, "NIL", 3) == 0))
		return buf_add(out, s, len);
	return imap_write_string(out, s, len, flags);
}

int imap_write_nstring(struct buf *out, const char *s, size_t len, unsigned flags)
{
	if (!s)
		return buf_add(out, "NIL", 3);
	return imap_write_string(out, s, len, flags);
}
