#include "lib/sasl.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

/* The strict base64 and UTF-8 checks every protocol's SASL framing uses;
 * the mechanisms themselves are GNU SASL's (lib/sasl-gsasl.c). */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long sasl_base64_decode(const char *in, size_t len, unsigned char *out, size_t outcap)
{
	size_t o = 0;

	if (len % 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		unsigned long w;

		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];

			if (c == '=') {
				/* padding only in the last quantum, only at its end */
				if (i + 4 != len || k < 2)
					return -EINVAL;
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad)
				return -EINVAL; /* data after '=' */
			v[k] = b64_value(c);
			if (v[k] < 0)
				return -EINVAL;
		}
		w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) | ((unsigned long)v[2] << 6) |
		    (unsigned long)v[3];
		/* non-zero pad bits would mean two encodings for one message */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -EINVAL;
		if (o + (size_t)(3 - pad) > outcap)
			return -ENOBUFS;
		out[o++] = (unsigned char)(w >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)w;
	}
	return (long)o;
}

long sasl_base64_encode(const unsigned char *in, size_t len, char *out, size_t outcap)
{
	size_t need = (len + 2) / 3 * 4, o = 0;

	if (need + 1 > outcap)
		return -ENOBUFS;
	for (size_t i = 0; i < len; i += 3) {
		unsigned long w = (unsigned long)in[i] << 16;
		size_t left = len - i;

		if (left > 1)
			w |= (unsigned long)in[i + 1] << 8;
		if (left > 2)
			w |= in[i + 2];
		out[o++] = b64[(w >> 18) & 63];
		out[o++] = b64[(w >> 12) & 63];
		out[o++] = left > 1 ? b64[(w >> 6) & 63] : '=';
		out[o++] = left > 2 ? b64[w & 63] : '=';
	}
	out[o] = '\0';
	return (long)o;
}

int sasl_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		unsigned long cp;
		size_t len;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0; /* continuation byte, overlong lead (c0, c1) or > f4 */
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}
