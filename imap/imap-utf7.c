/* Modified UTF-7 (RFC 3501 section 5.1.3). See imap-utf7.h. */

#include "imap/imap-utf7.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "lib/buf.h"

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/*
 * Decodes one UTF-8 sequence at s (len > 0 octets) into *cp; returns its
 * length, or 0 when it is not valid (RFC 3629 table: no overlong forms, no
 * surrogates, nothing past U+10FFFF).
 */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		*cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		*cp = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		*cp = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		unsigned char b = s[i];

		if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
			return 0;
		*cp = (*cp << 6) | (b & 0x3f);
	}
	return n;
}

static int utf8_encode(struct buf *out, uint32_t cp)
{
	char s[4];
	size_t n;

	if (cp < 0x80) {
		s[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		s[0] = (char)(0xc0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		s[0] = (char)(0xe0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		s[0] = (char)(0xf0 | (cp >> 18));
		s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_add(out, s, n);
}

/* Puts a modified BASE64 run's pending bits out and closes it with "-". */
static int b64_close(struct buf *out, uint32_t bits, unsigned nbits)
{
	if (nbits > 0 && buf_addch(out, b64chars[(bits << (6 - nbits)) & 0x3f]) < 0)
		return -ENOBUFS;
	return buf_addch(out, '-');
}

static int b64_unit(struct buf *out, uint32_t *bits, unsigned *nbits, uint32_t unit)
{
	*bits = (*bits << 16) | unit;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		if (buf_addch(out, b64chars[(*bits >> *nbits) & 0x3f]) < 0)
			return -ENOBUFS;
	}
	*bits &= (1u << *nbits) - 1;
	return 0;
}

static void restore(struct buf *out, size_t len)
{
	out->len = len;
	if (out->data)
		out->data[len] = '\0';
}

int imap_utf8_to_utf7(const char *src, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t start = out->len, i = 0;
	bool in_b64 = false;
	uint32_t bits = 0;
	unsigned nbits = 0;
	int r = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_decode(s + i, len - i, &cp);

		if (n == 0 || cp == 0) {
			r = -EINVAL;
			goto fail;
		}
		i += n;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (in_b64) {
				if ((r = b64_close(out, bits, nbits)) < 0)
					goto fail;
				in_b64 = false;
				bits = 0;
				nbits = 0;
			}
			if (cp == '&')
				r = buf_add(out, "&-", 2);
			else
				r = buf_addch(out, (char)cp);
			if (r < 0)
				goto fail;
			continue;
		}
		if (!in_b64) {
			if ((r = buf_addch(out, '&')) < 0)
				goto fail;
			in_b64 = true;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			if ((r = b64_unit(out, &bits, &nbits, 0xd800 | (cp >> 10))) < 0 ||
			    (r = b64_unit(out, &bits, &nbits, 0xdc00 | (cp & 0x3ff))) < 0)
				goto fail;
		} else if ((r = b64_unit(out, &bits, &nbits, cp)) < 0) {
			goto fail;
		}
	}
	if (in_b64 && (r = b64_close(out, bits, nbits)) < 0)
		goto fail;
	return 0;
fail:
	restore(out, start);
	return r;
}

int imap_utf7_to_utf8(const char *src, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t start = out->len, i = 0;
	int r = -EINVAL;

	while (i < len) {
		uint32_t bits = 0, high = 0;
		unsigned nbits = 0;

		if (s[i] < 0x20 || s[i] > 0x7e)
			goto fail;
		if (s[i] != '&') {
			if ((r = buf_addch(out, (char)s[i])) < 0)
				goto fail;
			r = -EINVAL;
			i++;
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			if ((r = buf_addch(out, '&')) < 0)
				goto fail;
			r = -EINVAL;
			i++;
			continue;
		}
		/* a modified BASE64 run up to "-" */
		for (;;) {
			int v;

			if (i >= len)
				goto fail;              /* "&" not terminated */
			if (s[i] == '-')
				break;
			if ((v = b64value(s[i])) < 0)
				goto fail;
			i++;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			{
				uint32_t unit = (bits >> nbits) & 0xffff;

				bits &= (1u << nbits) - 1;
				if (high) {
					if (unit < 0xdc00 || unit > 0xdfff)
						goto fail;      /* high surrogate alone */
					if ((r = utf8_encode(out, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00))) < 0)
						goto fail;
					r = -EINVAL;
					high = 0;
				} else if (unit >= 0xd800 && unit <= 0xdbff) {
					high = unit;
				} else if (unit >= 0xdc00 && unit <= 0xdfff) {
					goto fail;              /* low surrogate alone */
				} else if (unit == 0 || (unit >= 0x20 && unit <= 0x7e)) {
					goto fail;              /* should not be encoded */
				} else {
					if ((r = utf8_encode(out, unit)) < 0)
						goto fail;
					r = -EINVAL;
				}
			}
		}
		/* at "-": no unit left half done, no whole character of padding,
		 * zero padding bits, and at least one unit in the run */
		if (high || nbits >= 6 || bits != 0)
			goto fail;
		i++;
		/* a run right after a run should have been one run */
		if (i + 1 < len && s[i] == '&' && s[i + 1] != '-')
			goto fail;
	}
	return 0;
fail:
	restore(out, start);
	return r;
}

size_t imap_utf8_char_len(const char *s, size_t len)
{
	uint32_t cp;

	return len ? utf8_decode((const unsigned char *)s, len, &cp) : 0;
}

bool imap_utf7_is_valid(const char *src, size_t len)
{
	struct buf b = BUF_INIT(0);
	int r = imap_utf7_to_utf8(src, len, &b);

	buf_release(&b);
	return r == 0;
}
