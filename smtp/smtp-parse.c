#include "smtp/smtp-parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

/*
 * Grammar references are to RFC 5321 4.1.2 unless noted. The parsers work on
 * NUL-terminated lines that the session has already checked for NUL, CR and
 * LF, and never write past the fixed-size fields of their output structs.
 */

#define R_MAIL_SYNTAX   "501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_MAIL_ADDR     "501 5.1.7 Bad sender address syntax"
#define R_MAIL_LONG     "501 5.1.7 Path too long"
#define R_RCPT_SYNTAX   "501 5.5.4 Syntax: RCPT TO:<address>"
#define R_RCPT_ADDR     "501 5.1.3 Bad recipient address syntax"
#define R_RCPT_LONG     "501 5.1.3 Path too long"
#define R_PARAM_SYNTAX  "501 5.5.4 Bad parameter syntax"
#define R_PARAM_UNKNOWN "555 5.5.4 Unsupported parameter"
#define R_PARAM_DUP     "501 5.5.4 Duplicate parameter"
#define R_SIZE_VALUE    "501 5.5.4 Bad SIZE value"
#define R_BODY_VALUE    "501 5.5.4 Bad BODY value"
#define R_UTF8_VALUE    "501 5.5.4 SMTPUTF8 takes no value"
#define R_BDAT_SYNTAX   "501 5.5.4 Syntax: BDAT chunk-size [LAST]"

static int is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/* atext of RFC 5322 3.2.3, as used by Dot-string. */
static int is_atext(unsigned char c)
{
	return is_alnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

size_t smtp_utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c;
	size_t n;
	unsigned min_2nd = 0x80, max_2nd = 0xbf;

	if (len == 0)
		return 0;
	c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			min_2nd = 0xa0;         /* overlong */
		else if (c == 0xed)
			max_2nd = 0x9f;         /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			min_2nd = 0x90;         /* overlong */
		else if (c == 0xf4)
			max_2nd = 0x8f;         /* above U+10FFFF */
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	if (s[1] < min_2nd || s[1] > max_2nd)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Length of one non-ASCII UTF-8 character at s, or 0 (RFC 6531 UTF8-non-ascii). */
static size_t utf8_non_ascii(const char *s, size_t len)
{
	if (len == 0 || (unsigned char)s[0] < 0x80)
		return 0;
	return smtp_utf8_seq((const unsigned char *)s, len);
}

/* Checks a Dot-string: Atom *("." Atom), atext or UTF-8. */
static int check_dot_string(const char *s, size_t len)
{
	size_t i = 0, atom = 0;

	if (len == 0)
		return -EINVAL;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n;

		if (c == '.') {
			if (atom == 0)
				return -EINVAL;
			atom = 0;
			i++;
		} else if (is_atext(c)) {
			atom++;
			i++;
		} else if ((n = utf8_non_ascii(s + i, len - i)) > 0) {
			atom++;
			i += n;
		} else {
			return -EINVAL;
		}
	}
	return atom ? 0 : -EINVAL;
}

int smtp_check_domain(const char *s, size_t len)
{
	size_t i = 0, label = 0;
	unsigned char prev = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return -EINVAL;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n;

		if (c == '.') {
			/* sub-domain = Let-dig [Ldh-str]: no empty label, no final '-' */
			if (label == 0 || prev == '-')
				return -EINVAL;
			label = 0;
			prev = c;
			i++;
			continue;
		}
		if (is_alnum(c)) {
			n = 1;
		} else if (c == '-') {
			if (label == 0)
				return -EINVAL;
			n = 1;
		} else if ((n = utf8_non_ascii(s + i, len - i)) == 0) {
			return -EINVAL;
		}
		label += n;
		if (label > 63)
			return -EINVAL;
		prev = c;
		i += n;
	}
	if (label == 0 || prev == '-')
		return -EINVAL;
	return 0;
}

/* Checks the inside of an address-literal, between "[" and "]". */
static int check_address_literal(const char *s, size_t len)
{
	char tmp[64];
	const char *colon;

	if (len == 0)
		return -EINVAL;
	if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		struct in6_addr a6;

		if (len - 5 >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, s + 5, len - 5);
		tmp[len - 5] = '\0';
		return inet_pton(AF_INET6, tmp, &a6) == 1 ? 0 : -EINVAL;
	}
	colon = memchr(s, ':', len);
	if (colon) {
		/* General-address-literal = Standardized-tag ":" 1*dcontent */
		size_t taglen = (size_t)(colon - s);

		if (taglen == 0 || !is_alnum((unsigned char)s[0]) ||
		    !is_alnum((unsigned char)s[taglen - 1]))
			return -EINVAL;
		for (size_t i = 0; i < taglen; i++)
			if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
				return -EINVAL;
		if (taglen + 1 == len)
			return -EINVAL;
		for (size_t i = taglen + 1; i < len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (!((c >= 33 && c <= 90) || (c >= 94 && c <= 126)))
				return -EINVAL;
		}
		return 0;
	}
	{
		struct in_addr a4;

		if (len >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, s, len);
		tmp[len] = '\0';
		return inet_pton(AF_INET, tmp, &a4) == 1 ? 0 : -EINVAL;
	}
}

/*
 * Scans a Quoted-string starting at s[0] == '"'. Returns the length including
 * both quotes, or 0 when it is not closed or holds a forbidden octet. The
 * unquoted content (escapes removed) goes to out when it fits, with its
 * length in *outlen_r; *outlen_r is (size_t)-1 when it does not fit.
 */
static size_t scan_quoted(const char *s, size_t len, char *out, size_t outsize, size_t *outlen_r)
{
	size_t i = 1, o = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n = 1;

		if (c == '"') {
			*outlen_r = o <= outsize ? o : (size_t)-1;
			return i + 1;
		}
		if (c == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			if (i + 1 >= len || (unsigned char)s[i + 1] < 32 || (unsigned char)s[i + 1] > 126)
				return 0;
			i++;
			c = (unsigned char)s[i];
		} else if (c >= 0x80) {
			if ((n = utf8_non_ascii(s + i, len - i)) == 0)
				return 0;
		} else if (c < 32 || c > 126) {
			return 0;
		}
		for (size_t k = 0; k < n; k++, o++)
			if (o < outsize)
				out[o] = s[i + k];
		i += n;
	}
	return 0;
}

int smtp_parse_mailbox(const char *s, size_t len, char *out, size_t outlen)
{
	const char *at, *dom;
	size_t local_len, dom_len, w;
	char unq[SMTP_LOCAL_MAX];
	size_t unq_len = (size_t)-1;
	int quoted = 0;

	if (len == 0 || len + 1 > outlen)
		return -EINVAL;
	if (s[0] == '"') {
		local_len = scan_quoted(s, len, unq, sizeof(unq), &unq_len);
		if (local_len == 0)
			return -EINVAL;
		quoted = 1;
	} else {
		at = NULL;
		/* the local part of a dot-string ends at the last '@' only if the
		 * rest is a domain; a dot-string cannot hold '@', so the first one */
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '@') {
				at = s + i;
				break;
			}
		}
		if (!at)
			return -EINVAL;
		local_len = (size_t)(at - s);
		if (check_dot_string(s, local_len) < 0)
			return -EINVAL;
	}
	if (local_len > SMTP_LOCAL_MAX + (quoted ? 2 : 0))
		return -EINVAL;
	if (local_len >= len || s[local_len] != '@')
		return -EINVAL;
	dom = s + local_len + 1;
	dom_len = len - local_len - 1;
	if (dom_len >= 2 && dom[0] == '[') {
		if (dom[dom_len - 1] != ']' || check_address_literal(dom + 1, dom_len - 2) < 0)
			return -EINVAL;
	} else if (smtp_check_domain(dom, dom_len) < 0) {
		return -EINVAL;
	}

	/* RFC 5321 4.1.2: a quoted-string that is also a valid dot-string means
	 * the same mailbox; drop the quotes so the directory sees one form. */
	if (quoted && unq_len != (size_t)-1 && check_dot_string(unq, unq_len) == 0) {
		memcpy(out, unq, unq_len);
		w = unq_len;
	} else {
		memcpy(out, s, local_len);
		w = local_len;
	}
	out[w++] = '@';
	memcpy(out + w, dom, dom_len);
	w += dom_len;
	out[w] = '\0';
	return (int)w;
}

/*
 * Parses "<" [A-d-l ":"] Mailbox ">" (or "<>" when null_ok) at *pp, advancing
 * *pp past the ">". Writes the mailbox to out (size SMTP_PATH_MAX + 1).
 * Returns 0, -EINVAL (syntax), -ENAMETOOLONG (path longer than SMTP_PATH_MAX)
 * or -EFAULT (a bad mailbox inside well-formed brackets).
 */
static int parse_path(const char **pp, int null_ok, char *out, int *route_r)
{
	const char *p = *pp, *start = p, *mb, *end;

	*route_r = 0;
	if (*p != '<')
		return -EINVAL;
	p++;
	if (*p == '>') {
		if (!null_ok)
			return -EFAULT;
		out[0] = '\0';
		*pp = p + 1;
		return 0;
	}
	if (*p == '@') {
		/* A-d-l = At-domain *( "," At-domain ); accepted, then ignored */
		for (;;) {
			const char *d;

			if (*p != '@')
				return -EFAULT;
			d = ++p;
			while (*p && *p != ',' && *p != ':' && *p != '>')
				p++;
			if (smtp_check_domain(d, (size_t)(p - d)) < 0)
				return -EFAULT;
			if (*p == ',') {
				p++;
				continue;
			}
			if (*p == ':')
				break;
			return -EFAULT;
		}
		p++;
		*route_r = 1;
	}
	mb = p;
	if (*p == '"') {
		p++;
		while (*p && *p != '"') {
			if (*p == '\\' && p[1])
				p++;
			p++;
		}
		if (*p != '"')
			return -EFAULT;
		p++;
	}
	while (*p && *p != '>' && *p != '[')
		p++;
	if (*p == '[') {
		while (*p && *p != ']')
			p++;
		if (*p == ']')
			p++;
	}
	if (*p != '>')
		return -EFAULT;
	end = p;
	p++;
	if ((size_t)(p - start) > SMTP_PATH_MAX)
		return -ENAMETOOLONG;
	if (smtp_parse_mailbox(mb, (size_t)(end - mb), out, SMTP_PATH_MAX + 1) < 0)
		return -EFAULT;
	*pp = p;
	return 0;
}

/* Matches "FROM:" / "TO:" case-insensitively and skips spaces after it. */
static const char *skip_keyword(const char *arg, const char *kw)
{
	size_t n = strlen(kw);

	if (strncasecmp(arg, kw, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	return arg;
}

struct param {
	const char *key;
	size_t key_len;
	const char *val;   /* NULL when no "=" */
	size_t val_len;
};

/* Takes the next esmtp-param from *pp; 1 got one, 0 at the end, -EINVAL. */
static int next_param(const char **pp, struct param *pm)
{
	const char *p = *pp;

	if (*p == '\0')
		return 0;
	if (*p != ' ')
		return -EINVAL;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 0;
	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	pm->key = p;
	if (!is_alnum((unsigned char)*p))
		return -EINVAL;
	while (is_alnum((unsigned char)*p) || *p == '-')
		p++;
	pm->key_len = (size_t)(p - pm->key);
	pm->val = NULL;
	pm->val_len = 0;
	if (*p == '=') {
		/* esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 allowed (RFC 6531) */
		pm->val = ++p;
		while (*p && *p != ' ') {
			unsigned char c = (unsigned char)*p;
			size_t n;

			if ((c >= 33 && c <= 60) || (c >= 62 && c <= 126))
				p++;
			else if ((n = utf8_non_ascii(p, strlen(p))) > 0)
				p += n;
			else
				return -EINVAL;
		}
		pm->val_len = (size_t)(p - pm->val);
		if (pm->val_len == 0)
			return -EINVAL;
	}
	if (*p != '\0' && *p != ' ')
		return -EINVAL;
	*pp = p;
	return 1;
}

static int key_is(const struct param *pm, const char *name)
{
	return pm->key_len == strlen(name) && strncasecmp(pm->key, name, pm->key_len) == 0;
}

static int val_is(const struct param *pm, const char *name)
{
	return pm->val_len == strlen(name) && strncasecmp(pm->val, name, pm->val_len) == 0;
}

static int has_non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int fail(const char **reply_r, const char *reply)
{
	*reply_r = reply;
	return -EINVAL;
}

int smtp_parse_mail(const char *arg, struct smtp_mail_args *m, const char **reply_r)
{
	const char *p;
	struct param pm;
	int r, route, seen_size = 0, seen_body = 0;

	memset(m, 0, sizeof(*m));
	p = skip_keyword(arg, "FROM:");
	if (!p)
		return fail(reply_r, R_MAIL_SYNTAX);
	r = parse_path(&p, 1, m->path, &route);
	if (r == -EINVAL)
		return fail(reply_r, R_MAIL_SYNTAX);
	if (r == -ENAMETOOLONG)
		return fail(reply_r, R_MAIL_LONG);
	if (r < 0)
		return fail(reply_r, R_MAIL_ADDR);
	m->utf8 = has_non_ascii(m->path);
	while ((r = next_param(&p, &pm)) > 0) {
		if (key_is(&pm, "SIZE")) {
			uint64_t v = 0;

			/* size-value = 1*20DIGIT (RFC 1870) */
			if (seen_size++)
				return fail(reply_r, R_PARAM_DUP);
			if (!pm.val || pm.val_len > 20)
				return fail(reply_r, R_SIZE_VALUE);
			for (size_t i = 0; i < pm.val_len; i++) {
				unsigned d = (unsigned)(pm.val[i] - '0');

				if (!is_digit((unsigned char)pm.val[i]))
					return fail(reply_r, R_SIZE_VALUE);
				if (v > (UINT64_MAX - d) / 10)
					v = UINT64_MAX;
				else if (v != UINT64_MAX)
					v = v * 10 + d;
			}
			m->has_size = 1;
			m->size = v;
		} else if (key_is(&pm, "BODY")) {
			if (seen_body++)
				return fail(reply_r, R_PARAM_DUP);
			if (!pm.val)
				return fail(reply_r, R_BODY_VALUE);
			if (val_is(&pm, "7BIT"))
				m->body = SMTP_BODY_7BIT;
			else if (val_is(&pm, "8BITMIME"))
				m->body = SMTP_BODY_8BITMIME;
			else if (val_is(&pm, "BINARYMIME"))
				m->body = SMTP_BODY_BINARYMIME;
			else
				return fail(reply_r, R_BODY_VALUE);
		} else if (key_is(&pm, "SMTPUTF8")) {
			if (m->smtputf8)
				return fail(reply_r, R_PARAM_DUP);
			if (pm.val)
				return fail(reply_r, R_UTF8_VALUE);
			m->smtputf8 = 1;
		} else {
			return fail(reply_r, R_PARAM_UNKNOWN);
		}
	}
	if (r < 0)
		return fail(reply_r, R_PARAM_SYNTAX);
	return 0;
}

int smtp_parse_rcpt(const char *arg, struct smtp_rcpt_args *rc, const char **reply_r)
{
	const char *p;
	struct param pm;
	int r;

	memset(rc, 0, sizeof(*rc));
	p = skip_keyword(arg, "TO:");
	if (!p)
		return fail(reply_r, R_RCPT_SYNTAX);
	/* RFC 5321 4.1.1.3: "<Postmaster>" needs no domain */
	if (strncasecmp(p, "<Postmaster>", 12) == 0) {
		strcpy(rc->path, "Postmaster");
		rc->postmaster = 1;
		p += 12;
	} else {
		r = parse_path(&p, 0, rc->path, &rc->route);
		if (r == -EINVAL)
			return fail(reply_r, R_RCPT_SYNTAX);
		if (r == -ENAMETOOLONG)
			return fail(reply_r, R_RCPT_LONG);
		if (r < 0)
			return fail(reply_r, R_RCPT_ADDR);
	}
	rc->utf8 = has_non_ascii(rc->path);
	/* We offer no RCPT parameters (no DSN): any is unsupported. */
	r = next_param(&p, &pm);
	if (r > 0)
		return fail(reply_r, R_PARAM_UNKNOWN);
	if (r < 0)
		return fail(reply_r, R_PARAM_SYNTAX);
	return 0;
}

int smtp_parse_bdat(const char *arg, uint64_t *size_r, int *last_r, const char **reply_r)
{
	const char *p = arg;
	uint64_t v = 0;

	*last_r = 0;
	if (!is_digit((unsigned char)*p))
		return fail(reply_r, R_BDAT_SYNTAX);
	for (; is_digit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return fail(reply_r, R_BDAT_SYNTAX);
		v = v * 10 + d;
	}
	if (*p == ' ') {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, "LAST", 4) != 0)
			return fail(reply_r, R_BDAT_SYNTAX);
		p += 4;
		*last_r = 1;
	}
	if (*p != '\0')
		return fail(reply_r, R_BDAT_SYNTAX);
	*size_r = v;
	return 0;
}

int smtp_parse_cmdline(const char *line, size_t len, struct smtp_cmdline *c)
{
	size_t i = 0, end;

	while (i < len && is_alpha((unsigned char)line[i])) {
		if (i >= SMTP_VERB_MAX)
			return -EINVAL;
		c->verb[i] = (char)(line[i] & ~0x20);
		i++;
	}
	if (i == 0 || (i < len && line[i] != ' '))
		return -EINVAL;
	c->verb[i] = '\0';
	while (i < len && line[i] == ' ')
		i++;
	end = len;
	while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t'))
		end--;
	c->arg = line + i;
	c->arg_len = end - i;
	return 0;
}
