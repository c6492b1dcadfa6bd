#include "lib/sasl.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

/*
 * SASL PLAIN (RFC 4616): message = [authzid] NUL authcid NUL passwd, each
 * part UTF-8 without NUL, authcid and passwd not empty. The decoded message
 * is kept in x->buf with its two NULs, and one more NUL after the password,
 * so that the three parts are C strings in place: no copy of the password
 * ever exists outside x->buf.
 */

enum { ST_INIT, ST_WAIT, ST_DONE, ST_FAILED };

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

enum sasl_mech sasl_mech_lookup(const char *name)
{
	if (strcasecmp(name, "PLAIN") == 0)
		return SASL_MECH_PLAIN;
	return SASL_MECH_NONE;
}

const char *sasl_mech_list(void)
{
	return "PLAIN";
}

void sasl_server_init(struct sasl_server *x, enum sasl_mech mech)
{
	wipe(x->buf, sizeof(x->buf));
	x->mech = mech;
	x->state = ST_INIT;
	x->authzid = x->authcid = x->password = NULL;
}

void sasl_server_wipe(struct sasl_server *x)
{
	wipe(x->buf, sizeof(x->buf));
	x->state = ST_FAILED;
	x->authzid = x->authcid = x->password = NULL;
}

/* Splits the decoded PLAIN message of n octets in x->buf. */
static int plain_parse(struct sasl_server *x, size_t n)
{
	unsigned char *p = x->buf, *nul1, *nul2;
	size_t zlen, clen, plen;

	nul1 = memchr(p, '\0', n);
	if (!nul1)
		return SASL_BAD_MESSAGE;
	nul2 = memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - p));
	if (!nul2)
		return SASL_BAD_MESSAGE;
	zlen = (size_t)(nul1 - p);
	clen = (size_t)(nul2 - nul1 - 1);
	plen = n - (size_t)(nul2 + 1 - p);
	if (clen == 0 || plen == 0 || zlen > SASL_ID_MAX || clen > SASL_ID_MAX || plen > SASL_PASSWORD_MAX)
		return SASL_BAD_MESSAGE;
	/* a third NUL (inside the password) fails the UTF-8 check */
	if (!sasl_utf8_valid(p, zlen) || !sasl_utf8_valid(nul1 + 1, clen) || !sasl_utf8_valid(nul2 + 1, plen))
		return SASL_BAD_MESSAGE;
	p[n] = '\0';
	x->authzid = (const char *)p;
	x->authcid = (const char *)nul1 + 1;
	x->password = (const char *)nul2 + 1;
	return SASL_DONE;
}

/* Decodes one response and finishes the exchange. */
static int take_response(struct sasl_server *x, const char *line, size_t len)
{
	long n;
	int r;

	if (len > SASL_LINE_MAX) {
		x->state = ST_FAILED;
		return SASL_BAD_MESSAGE;
	}
	n = sasl_base64_decode(line, len, x->buf, SASL_MESSAGE_MAX);
	if (n == -ENOBUFS) {
		wipe(x->buf, sizeof(x->buf));
		x->state = ST_FAILED;
		return SASL_BAD_MESSAGE;
	}
	if (n < 0) {
		wipe(x->buf, sizeof(x->buf));
		x->state = ST_FAILED;
		return SASL_BAD_BASE64;
	}
	r = plain_parse(x, (size_t)n);
	if (r != SASL_DONE) {
		wipe(x->buf, sizeof(x->buf));
		x->state = ST_FAILED;
		return r;
	}
	x->state = ST_DONE;
	return SASL_DONE;
}

int sasl_server_start(struct sasl_server *x, const char *ir, size_t len)
{
	if (x->state != ST_INIT || x->mech != SASL_MECH_PLAIN)
		BUG("sasl_server_start out of sequence");
	if (!ir) {
		x->state = ST_WAIT;
		return SASL_CONTINUE;
	}
	/* RFC 4954, 5034: "=" stands for an empty initial response. */
	if (len == 1 && ir[0] == '=')
		return take_response(x, "", 0);
	return take_response(x, ir, len);
}

int sasl_server_step(struct sasl_server *x, const char *line, size_t len)
{
	if (x->state != ST_WAIT)
		BUG("sasl_server_step out of sequence");
	if (len == 1 && line[0] == '*') {
		x->state = ST_FAILED;
		return SASL_CANCELLED;
	}
	return take_response(x, line, len);
}
