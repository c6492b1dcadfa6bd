#include "lib/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/sasl.h"
#include "lib/tls-creds.h"
#include "lib/xalloc.h"

/* The longest key and section name the reader takes: libinih cuts names at
 * 49 octets, so longer ones would be read as a shorter name. */
#define MAX_KEY 48
#define MAX_SECTION 96
/* How much of a value an error line shows. */
#define QUOTE_MAX 64

struct parse_ctx {
	struct config *cfg;
	const char *name;
	/* directory that a relative path in the file is taken from */
	char *base_dir;
	/* reader state: a FILE, or text .. text_end in memory */
	FILE *fp;
	const char *text, *text_end;
	unsigned line;
	unsigned section_line;
	/* the section the reader is in, in full (libinih passes it cut at 49) */
	char section[MAX_SECTION + 1];
	/* every section header so far, for "given twice" */
	struct {
		char name[MAX_SECTION + 1];
		unsigned line;
	} sections[64];
	unsigned n_sections;
	/* the first error wins */
	char err[512];
	unsigned err_line;
	/* q(): room for the quoted values of one error line */
	char quoted[3][QUOTE_MAX * 4 + 8];
	unsigned n_quoted;
	/* keys seen in the current section, for duplicate detection */
	char cur_section[MAX_SECTION + 1];
	char seen[64][MAX_KEY + 1];
	unsigned n_seen;
	/* Lines of the TLS keys, for the checks made once the whole file is
	 * read (a key and its certificate may come in either order): [tls]'s,
	 * and one per listener and per [certificate "NAME"], parallel to
	 * cfg->listeners and cfg->tls.extra. 0: not set. */
	struct tls_lines {
		unsigned tls, certificate, key;
		unsigned rate, rcpt, auth;   /* listener keys checked against the protocol */
	} tls_lines, *listener_lines, *cert_lines;
};

const char *proto_name(enum proto p)
{
	switch (p) {
	case PROTO_SMTP: return "smtp";
	case PROTO_POP3: return "pop3";
	case PROTO_IMAP: return "imap";
	}
	return "?";
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->hostname = NULL;
	cfg->data_dir = NULL;
	cfg->log_level = LOG_INFO;
	cfg->max_connections = 1000;
	cfg->max_connections_per_ip = 50;
	cfg->user = xstrdup("buzon");
	cfg->group = NULL;
	cfg->shutdown_timeout = 10;
	cfg->delivery_threads = 4;
	cfg->smtp.max_message_size = 26214400;
	cfg->smtp.max_buffered = 256 * 1024 * 1024;
	cfg->smtp.max_recipients = 100;
	cfg->smtp.bare_newline = BARE_LF_NORMALIZE;
	strcpy(cfg->smtp.recipient_delimiter, "+");
	cfg->smtp.command_timeout = 300;
	cfg->smtp.data_timeout = 300;
	cfg->smtp.max_bad_commands = 10;
	cfg->smtp.max_pipeline = 100;
	cfg->smtp.min_data_rate = 500;
	pop3_config_defaults(&cfg->pop3);
	imap_config_defaults(&cfg->imap);
	auth_config_defaults(&cfg->auth);
	cfg->tls.handshake_timeout = 30;
}

void auth_config_defaults(struct auth_config *c)
{
	memset(c, 0, sizeof(*c));
	c->delay_free = 2;
	c->delay_base = 1;
	c->delay_max = 15;
	c->delay_decay = 60;
	c->lockout_failures = 10;
	c->lockout_window = 600;
	c->lockout_time = 900;
}

void imap_config_defaults(struct imap_config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->hostname, "localhost");
	c->idle_timeout = 1800;
	c->max_line = 65536;
	c->max_literal = 50 * 1024 * 1024;
	c->max_buffered = 256 * 1024 * 1024;
	c->login_timeout = 60;
	c->login_max_literal = 4096;
	c->login_max_buffered = 4 * 1024 * 1024;
	c->max_depth = 16;
	c->max_bad_commands = 20;
	c->max_auth_failures = 3;
}

void pop3_config_defaults(struct pop3_config *c)
{
	memset(c, 0, sizeof(*c));
	c->idle_timeout = 600;
	c->max_line = 1024;
	c->max_commands = 100000;
	c->max_bad_commands = 20;
	c->max_auth_failures = 3;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		free(cfg->listeners[i].name);
		free(cfg->listeners[i].addrs);
		free(cfg->listeners[i].certificate);
		free(cfg->listeners[i].key);
		free(cfg->listeners[i].allow);
		free(cfg->listeners[i].deny);
	}
	free(cfg->auth.exempt);
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->tls.n_extra; i++) {
		free(cfg->tls.extra[i].name);
		free(cfg->tls.extra[i].certificate);
		free(cfg->tls.extra[i].key);
	}
	free(cfg->tls.extra);
	free(cfg->tls.certificate);
	free(cfg->tls.key);
	free(cfg->tls.priority);
	free(cfg->hostname);
	free(cfg->data_dir);
	free(cfg->log_file);
	free(cfg->postmaster);
	free(cfg->user);
	free(cfg->group);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

const char *config_quote(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, shown = 0;

	if (outlen == 0)
		return out;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[5];
		size_t n;

		if (shown == QUOTE_MAX) {
			if (o + 3 < outlen) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		/* Printable ASCII as is; everything else (controls, and octets
		 * of 0x80 and up, which some terminals take as C1 controls)
		 * as \xNN, and '\' doubled so that the escapes are unambiguous. */
		if (ch == '\\') {
			esc[0] = esc[1] = '\\';
			n = 2;
		} else if (ch >= 0x20 && ch < 0x7f) {
			esc[0] = (char)ch;
			n = 1;
		} else {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[ch >> 4];
			esc[3] = hex[ch & 15];
			n = 4;
		}
		if (o + n >= outlen)
			break;
		memcpy(out + o, esc, n);
		o += n;
		shown++;
	}
	out[o] = '\0';
	return out;
}

/* File-supplied text for an error line: config_quote() into one of the
 * context's buffers (an error line quotes at most three such texts). */
static const char *q(struct parse_ctx *c, const char *s)
{
	char *out = c->quoted[c->n_quoted++ % ARRAY_SIZE(c->quoted)];

	return config_quote(s ? s : "", out, sizeof(c->quoted[0]));
}

static int fail(struct parse_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the first error; returns 0, which tells libinih "error". */
static int fail(struct parse_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err[0])
		return 0;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	/* Every file-supplied text should come through q(); should one not,
	 * it still never reaches the terminal raw. */
	for (char *p = c->err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	c->err_line = c->line;
	return 0;
}

int config_parse_size(const char *s, uint64_t *r)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		switch (tolower((unsigned char)*end)) {
		case 'k': mult = 1024; break;
		case 'm': mult = 1024 * 1024; break;
		case 'g': mult = 1024ULL * 1024 * 1024; break;
		default: return -EINVAL;
		}
		end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (v > UINT64_MAX / mult)
		return -EINVAL;
	*r = v * mult;
	return 0;
}

int config_parse_duration(const char *s, unsigned *r)
{
	char *end;
	unsigned long v;
	unsigned long mult = 1;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		default: return -EINVAL;
		}
		if (end[1])
			return -EINVAL;
	}
	if (v > UINT_MAX / mult)
		return -EINVAL;
	*r = (unsigned)(v * mult);
	return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *r)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*r = (unsigned)v;
	return 0;
}

int config_parse_address(const char *text, struct listen_addr *a, char *err, size_t errlen)
{
	char host[64], qt[QUOTE_MAX * 4 + 8], qh[sizeof(qt)];
	const char *colon, *port_s;
	size_t hlen;
	unsigned port;

	memset(a, 0, sizeof(*a));
	/* Error lines show the text escaped (it comes from a file). */
	config_quote(text, qt, sizeof(qt));
	if (strlen(text) >= sizeof(a->text)) {
		snprintf(err, errlen, "address '%s' is too long", qt);
		return -1;
	}
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "address '%s' is not [IPv6]:port", qt);
			return -1;
		}
		hlen = (size_t)(close - text - 1);
		port_s = close + 2;
		if (hlen == 0 || hlen >= sizeof(host)) {
			snprintf(err, errlen, "address '%s' has a bad IPv6 host", qt);
			return -1;
		}
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
	} else {
		colon = strrchr(text, ':');
		if (!colon || colon == text) {
			snprintf(err, errlen, "address '%s' is not host:port", qt);
			return -1;
		}
		hlen = (size_t)(colon - text);
		if (hlen >= sizeof(host) || memchr(text, ':', hlen)) {
			snprintf(err, errlen, "address '%s' is not host:port (write IPv6 as [addr]:port)", qt);
			return -1;
		}
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		port_s = colon + 1;
	}
	if (parse_uint(port_s, 0, 65535, &port) < 0) {
		snprintf(err, errlen, "address '%s' has a bad port (0-65535; 0 picks a free one)", qt);
		return -1;
	}
	if (text[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
			snprintf(err, errlen, "address '%s': '%s' is not an IPv6 address", qt,
				 config_quote(host, qh, sizeof(qh)));
			return -1;
		}
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
		if (strcmp(host, "*") == 0)
			strcpy(host, "0.0.0.0");
		if (strcmp(host, "localhost") == 0)
			strcpy(host, "127.0.0.1");
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
			snprintf(err, errlen, "address '%s': '%s' is not an IPv4 address", qt,
				 config_quote(host, qh, sizeof(qh)));
			return -1;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		a->len = sizeof(*s4);
	}
	strcpy(a->text, text);
	return 0;
}

static int section_header(struct parse_ctx *c);

/* Reads the next line into buf without its '\n': at most cap - 1 octets are
 * kept (NUL bytes included, hence *len_r) and *long_r is set when more were
 * dropped. 0 at the end of the input. */
static int raw_line(struct parse_ctx *c, char *buf, size_t cap, size_t *len_r, int *long_r)
{
	size_t n = 0;

	*long_r = 0;
	if (c->fp) {
		int ch, got = 0;

		while ((ch = getc(c->fp)) != EOF) {
			got = 1;
			if (ch == '\n')
				break;
			if (n + 1 == cap) {
				/* Too long: an error, after which nothing more is
				 * read (a file without line ends could be endless). */
				*long_r = 1;
				break;
			}
			buf[n++] = (char)ch;
		}
		if (!got)
			return 0;
	} else {
		const char *nl;
		size_t len;

		if (c->text >= c->text_end)
			return 0;
		nl = memchr(c->text, '\n', (size_t)(c->text_end - c->text));
		len = (size_t)((nl ? nl : c->text_end) - c->text);
		n = len < cap ? len : cap - 1;
		*long_r = len >= cap;
		memcpy(buf, c->text, n);
		c->text += len + (nl ? 1 : 0);
	}
	buf[n] = '\0';
	*len_r = n;
	return 1;
}

/* Checks a "key = value" line (leading blanks gone) the way libinih will
 * split it: the key up to '=', the value up to a " ;" comment. */
static void check_key_line(struct parse_ctx *c, const char *line)
{
	char key[256], value[256];
	const char *eq = strchr(line, '='), *v, *end;
	size_t klen, vlen;

	if (!eq) {
		fail(c, "expected [section] or key = value, got '%s'", q(c, line));
		return;
	}
	klen = (size_t)(eq - line);
	while (klen > 0 && (line[klen - 1] == ' ' || line[klen - 1] == '\t'))
		klen--;
	if (klen == 0) {
		fail(c, "'%s' has no key before '='", q(c, line));
		return;
	}
	snprintf(key, sizeof(key), "%.*s", (int)(klen < sizeof(key) ? klen : sizeof(key) - 1), line);
	for (size_t i = 0; i < klen; i++) {
		if (!isalnum((unsigned char)line[i]) && line[i] != '_' && line[i] != '-' && line[i] != '.') {
			fail(c, "key '%s' is not a name (letters, digits, '_', '-', '.')", q(c, key));
			return;
		}
	}
	if (klen > MAX_KEY) {
		fail(c, "key '%s' is longer than %d characters", q(c, key), MAX_KEY);
		return;
	}
	for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (end = v; *end; end++)
		if (*end == ';' && end > v && (end[-1] == ' ' || end[-1] == '\t'))
			break;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	vlen = (size_t)(end - v);
	/* "hostname = "mx.example"" would keep the quotes in the value (and a
	 * quoted path would be relative): say so rather than let it pass. */
	if (vlen >= 2 && (v[0] == '"' || v[0] == '\'') && v[vlen - 1] == v[0]) {
		snprintf(value, sizeof(value), "%.*s", (int)(vlen < sizeof(value) ? vlen : sizeof(value) - 1), v);
		fail(c, "%s: value %s is in quotes; write it without them", q(c, key), q(c, value));
	}
}

/*
 * The line reader given to libinih. It sees each raw line with its length,
 * so it refuses here what libinih would pass on silently: a NUL byte (which
 * would cut the line short), other control characters, bytes that are not
 * UTF-8, lines too long for libinih's buffer, junk after a section header, a
 * key that is not a name, a section given twice or unknown. It accepts, on
 * purpose, CR LF line ends and a UTF-8 byte order mark at the start of the
 * file (both written by Windows editors). Leading blanks are removed before
 * libinih sees the line: an indented line would otherwise continue the value
 * of the line before (libinih's multi-line values), which nobody means.
 * The first error ends the reading.
 */
static char *reader(char *str, int num, void *stream)
{
	struct parse_ctx *c = stream;
	size_t n, max = num > 3 ? (size_t)num - 3 : 1;
	int too_long;
	char *p;

	if (c->err[0] || !raw_line(c, str, (size_t)num, &n, &too_long))
		return NULL;
	c->line++;
	if (!too_long && n > 0 && str[n - 1] == '\r')
		str[--n] = '\0';
	if (too_long || n > max) {
		fail(c, "line is longer than %zu characters", max);
		str[0] = '\0';
		return str;
	}
	if (c->line == 1 && n >= 3 && memcmp(str, "\xef\xbb\xbf", 3) == 0) {
		memmove(str, str + 3, n - 2);
		n -= 3;
	}
	if (memchr(str, '\0', n)) {
		fail(c, "line contains a NUL byte");
		str[0] = '\0';
		return str;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)str[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			fail(c, "line contains the control character \\x%02x", ch);
			str[0] = '\0';
			return str;
		}
	}
	if (!sasl_utf8_valid((const unsigned char *)str, n)) {
		fail(c, "line is not valid UTF-8");
		str[0] = '\0';
		return str;
	}
	for (p = str; *p == ' ' || *p == '\t'; p++)
		;
	memmove(str, p, strlen(p) + 1);
	if (str[0] == '\0' || str[0] == '#' || str[0] == ';')
		return str;
	if (str[0] == '[') {
		char *close = strchr(str, ']');
		const char *rest;
		size_t len;

		if (!close) {
			fail(c, "section header '%s' has no closing ']'", q(c, str));
			str[0] = '\0';
			return str;
		}
		for (rest = close + 1; *rest == ' ' || *rest == '\t'; rest++)
			;
		if (*rest && *rest != '#' && *rest != ';') {
			fail(c, "junk after the section header: '%s'", q(c, rest));
			str[0] = '\0';
			return str;
		}
		len = (size_t)(close - str - 1);
		if (len > MAX_SECTION) {
			*close = '\0';
			fail(c, "section name '%s' is longer than %d characters", q(c, str + 1), MAX_SECTION);
			str[0] = '\0';
			return str;
		}
		memcpy(c->section, str + 1, len);
		c->section[len] = '\0';
		c->section_line = c->line;
		section_header(c);
		return str;
	}
	check_key_line(c, str);
	return str;
}

/* The NAME of a [KIND "NAME"] section header into name (64 octets): 0, or
 * -1 after an error was recorded. */
static int section_name(struct parse_ctx *c, const char *section, const char *kind, char name[64])
{
	const char *p = section + strlen(kind);
	size_t len;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '"') {
		fail(c, "section [%s]: write %ss as [%s \"name\"]", q(c, section), kind, kind);
		return -1;
	}
	p++;
	len = strcspn(p, "\"");
	if (p[len] != '"' || p[len + 1] != '\0' || len == 0 || len >= 64) {
		fail(c, "section [%s]: write %ss as [%s \"name\"]", q(c, section), kind, kind);
		return -1;
	}
	memcpy(name, p, len);
	name[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.') {
			fail(c, "%s name \"%s\": use letters, digits, '-', '_' and '.'", kind, q(c, name));
			return -1;
		}
	}
	return 0;
}

static struct listener_config *listener_for(struct parse_ctx *c, const char *section)
{
	struct config *cfg = c->cfg;
	char name[64];

	if (section_name(c, section, "listener", name) < 0)
		return NULL;
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		if (strcmp(cfg->listeners[i].name, name) == 0) {
			if (cfg->listeners[i].line != c->section_line) {
				fail(c, "listener \"%s\" is defined twice (first on line %u)", name,
				     cfg->listeners[i].line);
				return NULL;
			}
			return &cfg->listeners[i];
		}
	}
	cfg->listeners = xrealloc(cfg->listeners, (cfg->n_listeners + 1) * sizeof(*cfg->listeners));
	c->listener_lines = xrealloc(c->listener_lines, (cfg->n_listeners + 1) * sizeof(*c->listener_lines));
	memset(&c->listener_lines[cfg->n_listeners], 0, sizeof(*c->listener_lines));
	struct listener_config *l = &cfg->listeners[cfg->n_listeners++];
	memset(l, 0, sizeof(*l));
	l->name = xstrdup(name);
	l->line = c->section_line;
	l->allow_plaintext_auth = PLAINTEXT_AUTH_LOOPBACK;
	return l;
}

/* A [certificate "NAME"] section: an extra certificate chosen by SNI. */
static struct tls_cert_config *certificate_for(struct parse_ctx *c, const char *section)
{
	struct tls_config *t = &c->cfg->tls;
	char name[64];

	if (section_name(c, section, "certificate", name) < 0)
		return NULL;
	for (size_t i = 0; i < t->n_extra; i++) {
		if (strcmp(t->extra[i].name, name) == 0) {
			if (t->extra[i].line != c->section_line) {
				fail(c, "certificate \"%s\" is defined twice (first on line %u)", name, t->extra[i].line);
				return NULL;
			}
			return &t->extra[i];
		}
	}
	t->extra = xrealloc(t->extra, (t->n_extra + 1) * sizeof(*t->extra));
	c->cert_lines = xrealloc(c->cert_lines, (t->n_extra + 1) * sizeof(*c->cert_lines));
	memset(&c->cert_lines[t->n_extra], 0, sizeof(*c->cert_lines));
	struct tls_cert_config *e = &t->extra[t->n_extra++];
	memset(e, 0, sizeof(*e));
	e->name = xstrdup(name);
	e->line = c->section_line;
	return e;
}

static int set_path(struct parse_ctx *c, const char *key, const char *value, char **out);

/* A list of CIDR rules separated by blanks or commas into *out (replaced);
 * what names the key in errors. An empty value is an empty list. */
static int cidr_list(struct parse_ctx *c, const char *what, const char *value, struct cidr **out, size_t *n_r)
{
	char *copy = xstrdup(value), *save = NULL, *tok, err[128];
	struct cidr *v = NULL;
	size_t n = 0;

	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if (n == 10000) {
			free(copy);
			free(v);
			return fail(c, "%s: more than 10000 rules", what);
		}
		v = xrealloc(v, (n + 1) * sizeof(*v));
		if (cidr_parse(tok, &v[n], err, sizeof(err)) < 0) {
			fail(c, "%s: '%s' is not an address or CIDR (192.0.2.0/24, 2001:db8::/32): %s", what,
			     q(c, tok), err);
			free(copy);
			free(v);
			return 0;
		}
		n++;
	}
	free(copy);
	free(*out);
	*out = v;
	*n_r = n;
	return 1;
}

/* A certificate or key path of a listener or a [certificate "NAME"]
 * section; what says which in error lines. "auto" is [tls]'s alone: it
 * names the one self-signed certificate of the hostname. */
static int pair_key(struct parse_ctx *c, const char *what, struct tls_lines *lines, char **certificate, char **key_r,
		    const char *key, const char *value)
{
	char label[128];

	snprintf(label, sizeof(label), "%s: %s", what, key);
	if (strcmp(key, "certificate") == 0) {
		if (strcmp(value, "auto") == 0)
			return fail(c, "%s: certificate = auto is only for [tls] (write ./auto for a file of that name)",
				    what);
		lines->certificate = c->line;
		return set_path(c, label, value, certificate);
	}
	lines->key = c->line;
	return set_path(c, label, value, key_r);
}

static int certificate_key(struct parse_ctx *c, struct tls_cert_config *e, const char *key, const char *value)
{
	char what[96];

	snprintf(what, sizeof(what), "certificate \"%s\"", e->name);
	if (strcmp(key, "certificate") == 0 || strcmp(key, "key") == 0)
		return pair_key(c, what, &c->cert_lines[e - c->cfg->tls.extra], &e->certificate, &e->key, key, value);
	return fail(c, "%s: unknown key '%s'", what, q(c, key));
}

static int listener_key(struct parse_ctx *c, struct listener_config *l, const char *key, const char *value)
{
	char err[256];

	if (strcmp(key, "protocol") == 0) {
		l->submission = 0;
		if (strcmp(value, "smtp") == 0)
			l->protocol = PROTO_SMTP;
		else if (strcmp(value, "submission") == 0)
			l->protocol = PROTO_SMTP, l->submission = 1;
		else if (strcmp(value, "pop3") == 0)
			l->protocol = PROTO_POP3;
		else if (strcmp(value, "imap") == 0)
			l->protocol = PROTO_IMAP;
		else
			return fail(c, "listener \"%s\": protocol '%s' is not smtp, submission, pop3 or imap", l->name,
				    q(c, value));
		l->have_protocol = 1;
		return 1;
	}
	if (strcmp(key, "allow") == 0 || strcmp(key, "deny") == 0) {
		char what[96];

		snprintf(what, sizeof(what), "listener \"%s\": %s", l->name, key);
		if (key[0] == 'a')
			return cidr_list(c, what, value, &l->allow, &l->n_allow);
		return cidr_list(c, what, value, &l->deny, &l->n_deny);
	}
	if (strcmp(key, "max_messages_per_ip_per_minute") == 0) {
		c->listener_lines[l - c->cfg->listeners].rate = c->line;
		if (parse_uint(value, 0, 1000000, &l->max_messages_per_ip_per_minute) < 0)
			return fail(c, "listener \"%s\": max_messages_per_ip_per_minute '%s' is not a number from 0 "
				    "(no limit) to 1000000", l->name, q(c, value));
		return 1;
	}
	if (strcmp(key, "max_recipients") == 0) {
		c->listener_lines[l - c->cfg->listeners].rcpt = c->line;
		if (parse_uint(value, 1, 100000, &l->max_recipients) < 0)
			return fail(c, "listener \"%s\": max_recipients '%s' is not a number from 1 to 100000", l->name,
				    q(c, value));
		return 1;
	}
	if (strcmp(key, "auth") == 0) {
		c->listener_lines[l - c->cfg->listeners].auth = c->line;
		if (strcmp(value, "none") == 0)
			l->auth = AUTH_NONE;
		else if (strcmp(value, "optional") == 0)
			l->auth = AUTH_OPTIONAL;
		else if (strcmp(value, "required") == 0)
			l->auth = AUTH_REQUIRED;
		else
			return fail(c, "listener \"%s\": auth '%s' is not none, optional or required", l->name,
				    q(c, value));
		l->have_auth = 1;
		return 1;
	}
	if (strcmp(key, "allow_plaintext_auth") == 0) {
		if (strcmp(value, "no") == 0)
			l->allow_plaintext_auth = PLAINTEXT_AUTH_NO;
		else if (strcmp(value, "loopback") == 0)
			l->allow_plaintext_auth = PLAINTEXT_AUTH_LOOPBACK;
		else if (strcmp(value, "yes") == 0)
			l->allow_plaintext_auth = PLAINTEXT_AUTH_YES;
		else
			return fail(c, "listener \"%s\": allow_plaintext_auth '%s' is not no, loopback or yes", l->name,
				    q(c, value));
		return 1;
	}
	if (strcmp(key, "address") == 0) {
		char *copy = xstrdup(value), *save = NULL, *tok;
		l->address_line = c->line;
		for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
			struct listen_addr a;
			if (config_parse_address(tok, &a, err, sizeof(err)) < 0) {
				free(copy);
				return fail(c, "listener \"%s\": %s", l->name, err);
			}
			l->addrs = xrealloc(l->addrs, (l->n_addrs + 1) * sizeof(*l->addrs));
			l->addrs[l->n_addrs++] = a;
		}
		free(copy);
		if (l->n_addrs == 0)
			return fail(c, "listener \"%s\": address is empty", l->name);
		return 1;
	}
	if (strcmp(key, "max_connections") == 0) {
		if (parse_uint(value, 1, 1000000, &l->max_connections) < 0)
			return fail(c, "listener \"%s\": max_connections '%s' is not a number from 1 to 1000000", l->name,
				    q(c, value));
		return 1;
	}
	if (strcmp(key, "max_connections_per_ip") == 0) {
		if (parse_uint(value, 1, 1000000, &l->max_connections_per_ip) < 0)
			return fail(c, "listener \"%s\": max_connections_per_ip '%s' is not a number from 1 to 1000000",
				    l->name, q(c, value));
		return 1;
	}
	if (strcmp(key, "max_unauthenticated") == 0) {
		if (parse_uint(value, 1, 1000000, &l->max_unauthenticated) < 0)
			return fail(c, "listener \"%s\": max_unauthenticated '%s' is not a number from 1 to 1000000",
				    l->name, q(c, value));
		return 1;
	}
	if (strcmp(key, "tls") == 0) {
		static const char *const modes[] = { "none", "starttls", "required", "implicit" };
		static const enum tls_mode values[] = { TLS_MODE_NONE, TLS_MODE_STARTTLS, TLS_MODE_REQUIRED,
							TLS_MODE_IMPLICIT };
		size_t i;

		for (i = 0; i < ARRAY_SIZE(modes); i++)
			if (strcmp(value, modes[i]) == 0)
				break;
		if (i == ARRAY_SIZE(modes))
			return fail(c, "listener \"%s\": tls '%s' is not none, starttls, required or implicit", l->name,
				    q(c, value));
		l->tls = values[i];
		l->have_tls = 1;
		c->listener_lines[l - c->cfg->listeners].tls = c->line;
		return 1;
	}
	if (strcmp(key, "certificate") == 0 || strcmp(key, "key") == 0) {
		char what[96];

		snprintf(what, sizeof(what), "listener \"%s\"", l->name);
		return pair_key(c, what, &c->listener_lines[l - c->cfg->listeners], &l->certificate, &l->key, key,
				value);
	}
	return fail(c, "listener \"%s\": unknown key '%s'", l->name, q(c, key));
}

/* A name as useradd(8) takes it: it never starts with '-' and has no '/'. */
static int account_name_ok(const char *s)
{
	if (!*s || *s == '-' || strlen(s) > 32)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return 0;
	return 1;
}

/*
 * A path from the file (data_dir, log_file), made absolute and tidy. A
 * relative path is taken from the directory of the configuration file (the
 * current directory for the embedded default), once, here: the server and
 * the CLI then find the same place whatever directory they run in, and a
 * later chdir() changes nothing. "." and empty parts go; ".." is resolved
 * as text (a symbolic link before it is not followed).
 */
static int set_path(struct parse_ctx *c, const char *key, const char *value, char **out)
{
	char *joined, *res;
	size_t n = 0;

	if (!*value)
		return fail(c, "%s is empty", key);
	if (value[0] == '/')
		joined = xstrdup(value);
	else if (c->base_dir)
		joined = xasprintf("%s/%s", c->base_dir, value);
	else
		return fail(c, "%s '%s' is relative and the current directory is unknown", key, q(c, value));
	res = xmalloc(strlen(joined) + 2);
	for (const char *p = joined; *p;) {
		const char *e;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		e = strchr(p, '/');
		if (!e)
			e = p + strlen(p);
		len = (size_t)(e - p);
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (n == 0) {
				free(joined);
				free(res);
				return fail(c, "%s '%s' goes above /", key, q(c, value));
			}
			while (res[n - 1] != '/')
				n--;
			n--;
		} else if (!(len == 1 && p[0] == '.')) {
			res[n++] = '/';
			memcpy(res + n, p, len);
			n += len;
		}
		p = e;
	}
	if (n == 0)
		res[n++] = '/';
	res[n] = '\0';
	free(joined);
	/* Maildir paths (data_dir/mail/<domain>/<localpart>/...) must fit PATH_MAX. */
	if (n > 1024) {
		free(res);
		return fail(c, "%s '%s' is longer than 1024 characters", key, q(c, value));
	}
	free(*out);
	*out = res;
	return 1;
}

static int server_key(struct parse_ctx *c, const char *key, const char *value)
{
	struct config *cfg = c->cfg;

	if (strcmp(key, "hostname") == 0) {
		for (const char *p = value; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
				return fail(c, "hostname '%s' is not a domain name", q(c, value));
		if (!*value || strlen(value) > 253)
			return fail(c, "hostname '%s' is not a domain name", q(c, value));
		free(cfg->hostname);
		cfg->hostname = xstrdup(value);
	} else if (strcmp(key, "data_dir") == 0) {
		return set_path(c, key, value, &cfg->data_dir);
	} else if (strcmp(key, "log_file") == 0) {
		return set_path(c, key, value, &cfg->log_file);
	} else if (strcmp(key, "postmaster") == 0) {
		/* The form only; whether it is deliverable needs the directory,
		 * which the server checks at start. */
		const char *at = strrchr(value, '@');
		int bad = !at || at == value || !at[1] || strlen(value) > 320 || strchr(value, '@') != at;

		for (const char *p = value; *p && !bad; p++)
			bad = (unsigned char)*p <= ' ' || *p == 0x7f || strchr("\"<>()[],;:\\", *p) != NULL;
		if (bad)
			return fail(c, "postmaster '%s' is not an address (user@domain)", q(c, value));
		free(cfg->postmaster);
		cfg->postmaster = xstrdup(value);
	} else if (strcmp(key, "log_level") == 0) {
		if (log_parse_level(value, &cfg->log_level) < 0)
			return fail(c, "log_level '%s' is not debug, info, warn or error", q(c, value));
	} else if (strcmp(key, "max_connections") == 0) {
		if (parse_uint(value, 1, 1000000, &cfg->max_connections) < 0)
			return fail(c, "max_connections '%s' is not a number from 1 to 1000000", q(c, value));
	} else if (strcmp(key, "max_connections_per_ip") == 0) {
		if (parse_uint(value, 1, 1000000, &cfg->max_connections_per_ip) < 0)
			return fail(c, "max_connections_per_ip '%s' is not a number from 1 to 1000000", q(c, value));
	} else if (strcmp(key, "user") == 0 || strcmp(key, "group") == 0) {
		if (!account_name_ok(value))
			return fail(c, "%s '%s' is not a user or group name (letters, digits, '_', '-', '.')", q(c, key),
				    q(c, value));
		if (key[0] == 'u') {
			free(cfg->user);
			cfg->user = xstrdup(value);
		} else {
			free(cfg->group);
			cfg->group = xstrdup(value);
		}
	} else if (strcmp(key, "shutdown_timeout") == 0) {
		if (config_parse_duration(value, &cfg->shutdown_timeout) < 0)
			return fail(c, "shutdown_timeout '%s' is not a duration (30, 30s, 5m)", q(c, value));
	} else if (strcmp(key, "delivery_threads") == 0) {
		if (parse_uint(value, 1, 128, &cfg->delivery_threads) < 0)
			return fail(c, "delivery_threads '%s' is not a number from 1 to 128", q(c, value));
	} else {
		return fail(c, "[server]: unknown key '%s'", q(c, key));
	}
	return 1;
}

static int smtp_key(struct parse_ctx *c, const char *key, const char *value)
{
	struct smtp_config *s = &c->cfg->smtp;

	if (strcmp(key, "max_message_size") == 0) {
		if (config_parse_size(value, &s->max_message_size) < 0 || s->max_message_size < 1024 ||
		    s->max_message_size > (uint64_t)1 << 31)
			return fail(c, "max_message_size '%s' is not a size from 1k to 2G", q(c, value));
	} else if (strcmp(key, "max_buffered") == 0) {
		if (config_parse_size(value, &s->max_buffered) < 0 || s->max_buffered < 1024 * 1024 ||
		    s->max_buffered > (uint64_t)1 << 40)
			return fail(c, "max_buffered '%s' is not a size from 1M to 1T", q(c, value));
	} else if (strcmp(key, "max_recipients") == 0) {
		if (parse_uint(value, 1, 100000, &s->max_recipients) < 0)
			return fail(c, "max_recipients '%s' is not a number from 1 to 100000", q(c, value));
	} else if (strcmp(key, "bare_newline") == 0) {
		if (strcmp(value, "normalize") == 0)
			s->bare_newline = BARE_LF_NORMALIZE;
		else if (strcmp(value, "reject") == 0)
			s->bare_newline = BARE_LF_REJECT;
		else
			return fail(c, "bare_newline '%s' is not normalize or reject", q(c, value));
	} else if (strcmp(key, "recipient_delimiter") == 0) {
		if (strlen(value) >= sizeof(s->recipient_delimiter))
			return fail(c, "recipient_delimiter '%s' is too long", q(c, value));
		for (const char *p = value; *p; p++)
			if (!strchr("+-_=#~", *p))
				return fail(c, "recipient_delimiter '%s': use characters from + - _ = # ~", q(c, value));
		strcpy(s->recipient_delimiter, value);
	} else if (strcmp(key, "command_timeout") == 0) {
		if (config_parse_duration(value, &s->command_timeout) < 0 || s->command_timeout == 0)
			return fail(c, "command_timeout '%s' is not a duration (300, 300s, 5m)", q(c, value));
	} else if (strcmp(key, "data_timeout") == 0) {
		if (config_parse_duration(value, &s->data_timeout) < 0 || s->data_timeout == 0)
			return fail(c, "data_timeout '%s' is not a duration (180, 180s, 3m)", q(c, value));
	} else if (strcmp(key, "max_bad_commands") == 0) {
		if (parse_uint(value, 1, 1000, &s->max_bad_commands) < 0)
			return fail(c, "max_bad_commands '%s' is not a number from 1 to 1000", q(c, value));
	} else if (strcmp(key, "max_pipeline") == 0) {
		if (parse_uint(value, 1, 10000, &s->max_pipeline) < 0)
			return fail(c, "max_pipeline '%s' is not a number from 1 to 10000", q(c, value));
	} else if (strcmp(key, "min_data_rate") == 0) {
		if (parse_uint(value, 1, 1000000000, &s->min_data_rate) < 0)
			return fail(c, "min_data_rate '%s' is not a number of octets per second from 1 to 1000000000",
				    q(c, value));
	} else if (strcmp(key, "received_hide_client") == 0) {
		if (strcmp(value, "yes") == 0)
			s->received_hide_client = 1;
		else if (strcmp(value, "no") == 0)
			s->received_hide_client = 0;
		else
			return fail(c, "received_hide_client '%s' is not yes or no", q(c, value));
	} else {
		return fail(c, "[smtp]: unknown key '%s'", q(c, key));
	}
	return 1;
}

/* The failed-login keys shared by [pop3] and [imap]: 1 when key was one of
 * them (0 after an error was recorded), -1 when it is not. The delays moved
 * to [auth] with the one table of every protocol: the old keys say so. */
static int login_key(struct parse_ctx *c, const char *key, const char *value, unsigned *max_auth_failures)
{
	if (strcmp(key, "max_auth_failures") == 0) {
		if (parse_uint(value, 1, 100, max_auth_failures) < 0)
			return fail(c, "max_auth_failures '%s' is not a number from 1 to 100", q(c, value));
	} else if (strncmp(key, "auth_delay_", 11) == 0) {
		return fail(c, "[%s]: %s moved to [auth] (one failed-login table for SMTP, POP3 and IMAP): "
			    "write it there, once", q(c, c->section), q(c, key));
	} else {
		return -1;
	}
	return 1;
}

/* [auth]: the delays, the lockout and auth_exempt (lib/lockout.h). */
static int auth_key(struct parse_ctx *c, const char *key, const char *value)
{
	struct auth_config *a = &c->cfg->auth;
	unsigned *delay_free = &a->delay_free, *delay_base = &a->delay_base, *delay_max = &a->delay_max,
		 *delay_decay = &a->delay_decay;

	if (strcmp(key, "lockout_failures") == 0) {
		if (parse_uint(value, 0, 1000, &a->lockout_failures) < 0)
			return fail(c, "lockout_failures '%s' is not a number from 0 (no lockout) to 1000", q(c, value));
	} else if (strcmp(key, "lockout_window") == 0) {
		if (config_parse_duration(value, &a->lockout_window) < 0 || a->lockout_window == 0 ||
		    a->lockout_window > 7 * 86400)
			return fail(c, "lockout_window '%s' is not a duration from 1s to 168h", q(c, value));
	} else if (strcmp(key, "lockout_time") == 0) {
		if (config_parse_duration(value, &a->lockout_time) < 0 || a->lockout_time == 0 ||
		    a->lockout_time > 30 * 86400)
			return fail(c, "lockout_time '%s' is not a duration from 1s to 720h", q(c, value));
	} else if (strcmp(key, "auth_exempt") == 0) {
		return cidr_list(c, "auth_exempt", value, &a->exempt, &a->n_exempt);
	} else if (strcmp(key, "auth_delay_free") == 0) {
		if (parse_uint(value, 0, 100, delay_free) < 0)
			return fail(c, "auth_delay_free '%s' is not a number from 0 to 100", q(c, value));
	} else if (strcmp(key, "auth_delay_base") == 0) {
		if (config_parse_duration(value, delay_base) < 0 || *delay_base > 60)
			return fail(c, "auth_delay_base '%s' is not a duration from 0 to 60s", q(c, value));
	} else if (strcmp(key, "auth_delay_max") == 0) {
		if (config_parse_duration(value, delay_max) < 0 || *delay_max > 3600)
			return fail(c, "auth_delay_max '%s' is not a duration from 0 to 1h", q(c, value));
	} else if (strcmp(key, "auth_delay_decay") == 0) {
		if (config_parse_duration(value, delay_decay) < 0 || *delay_decay == 0 || *delay_decay > 86400)
			return fail(c, "auth_delay_decay '%s' is not a duration from 1s to 24h", q(c, value));
	} else {
		return fail(c, "[auth]: unknown key '%s'", q(c, key));
	}
	return 1;
}

static int pop3_key(struct parse_ctx *c, const char *key, const char *value)
{
	struct pop3_config *p = &c->cfg->pop3;

	if (strcmp(key, "idle_timeout") == 0) {
		if (config_parse_duration(value, &p->idle_timeout) < 0 || p->idle_timeout == 0 ||
		    p->idle_timeout > 86400)
			return fail(c, "idle_timeout '%s' is not a duration from 1s to 24h (RFC 1939 asks for 10m or more)",
				    q(c, value));
	} else if (strcmp(key, "max_line") == 0) {
		if (parse_uint(value, 256, 65536, &p->max_line) < 0)
			return fail(c, "max_line '%s' is not a number from 256 to 65536", q(c, value));
	} else if (strcmp(key, "max_commands") == 0) {
		if (parse_uint(value, 1, 10000000, &p->max_commands) < 0)
			return fail(c, "max_commands '%s' is not a number from 1 to 10000000", q(c, value));
	} else if (strcmp(key, "max_bad_commands") == 0) {
		if (parse_uint(value, 1, 1000, &p->max_bad_commands) < 0)
			return fail(c, "max_bad_commands '%s' is not a number from 1 to 1000", q(c, value));
	} else {
		int r = login_key(c, key, value, &p->max_auth_failures);
		if (r >= 0)
			return r;
		return fail(c, "[pop3]: unknown key '%s'", q(c, key));
	}
	return 1;
}

static int imap_key(struct parse_ctx *c, const char *key, const char *value)
{
	struct imap_config *p = &c->cfg->imap;

	if (strcmp(key, "idle_timeout") == 0) {
		if (config_parse_duration(value, &p->idle_timeout) < 0 || p->idle_timeout == 0 ||
		    p->idle_timeout > 86400)
			return fail(c, "idle_timeout '%s' is not a duration from 1s to 24h (RFC 3501 asks for 30m or more)",
				    q(c, value));
	} else if (strcmp(key, "max_line") == 0) {
		if (parse_uint(value, 1024, 1048576, &p->max_line) < 0)
			return fail(c, "max_line '%s' is not a number from 1024 to 1048576", q(c, value));
	} else if (strcmp(key, "max_literal") == 0) {
		if (config_parse_size(value, &p->max_literal) < 0 || p->max_literal < 1024 ||
		    p->max_literal > (uint64_t)1 << 31)
			return fail(c, "max_literal '%s' is not a size from 1k to 2G", q(c, value));
	} else if (strcmp(key, "max_buffered") == 0) {
		if (config_parse_size(value, &p->max_buffered) < 0 || p->max_buffered < 1024 * 1024 ||
		    p->max_buffered > (uint64_t)1 << 40)
			return fail(c, "max_buffered '%s' is not a size from 1M to 1T", q(c, value));
	} else if (strcmp(key, "login_timeout") == 0) {
		if (config_parse_duration(value, &p->login_timeout) < 0 || p->login_timeout == 0 ||
		    p->login_timeout > 3600)
			return fail(c, "login_timeout '%s' is not a duration from 1s to 1h", q(c, value));
	} else if (strcmp(key, "login_max_literal") == 0) {
		/* 2k: a LOGIN whose user name (320) and password (1024) are literals */
		if (config_parse_size(value, &p->login_max_literal) < 0 || p->login_max_literal < 2048 ||
		    p->login_max_literal > 1024 * 1024)
			return fail(c, "login_max_literal '%s' is not a size from 2k to 1M", q(c, value));
	} else if (strcmp(key, "login_max_buffered") == 0) {
		if (config_parse_size(value, &p->login_max_buffered) < 0 || p->login_max_buffered < 64 * 1024 ||
		    p->login_max_buffered > (uint64_t)1 << 30)
			return fail(c, "login_max_buffered '%s' is not a size from 64k to 1G", q(c, value));
	} else if (strcmp(key, "max_depth") == 0) {
		if (parse_uint(value, 2, 100, &p->max_depth) < 0)
			return fail(c, "max_depth '%s' is not a number from 2 to 100", q(c, value));
	} else if (strcmp(key, "max_bad_commands") == 0) {
		if (parse_uint(value, 1, 1000, &p->max_bad_commands) < 0)
			return fail(c, "max_bad_commands '%s' is not a number from 1 to 1000", q(c, value));
	} else {
		int r = login_key(c, key, value, &p->max_auth_failures);
		if (r >= 0)
			return r;
		return fail(c, "[imap]: unknown key '%s'", q(c, key));
	}
	return 1;
}

static int tls_key(struct parse_ctx *c, const char *key, const char *value)
{
	struct tls_config *t = &c->cfg->tls;
	char err[256];

	if (!t->line)
		t->line = c->section_line;
	if (strcmp(key, "certificate") == 0) {
		c->tls_lines.certificate = c->line;
		if (strcmp(value, "auto") == 0) {
			free(t->certificate);
			t->certificate = xstrdup("auto");
			return 1;
		}
		return set_path(c, key, value, &t->certificate);
	} else if (strcmp(key, "key") == 0) {
		c->tls_lines.key = c->line;
		return set_path(c, key, value, &t->key);
	} else if (strcmp(key, "priority") == 0) {
		/* Checked here, so that a typo names its line; the files are
		 * read only by tls_creds_new() (config_load() stays a parser). */
		if (!*value)
			return fail(c, "priority is empty (leave the key out for the default)");
		if (tls_priority_check(value, err, sizeof(err)) < 0)
			return fail(c, "priority: %s", err);
		free(t->priority);
		t->priority = xstrdup(value);
	} else if (strcmp(key, "handshake_timeout") == 0) {
		if (config_parse_duration(value, &t->handshake_timeout) < 0 || t->handshake_timeout == 0 ||
		    t->handshake_timeout > 600)
			return fail(c, "handshake_timeout '%s' is not a duration from 1s to 10m", q(c, value));
	} else {
		return fail(c, "[tls]: unknown key '%s'", q(c, key));
	}
	return 1;
}

/* The sections other than [listener "NAME"] and [certificate "NAME"], each
 * with its key parser. */
static const struct {
	const char *name;
	int (*key)(struct parse_ctx *c, const char *key, const char *value);
} plain_sections[] = {
	{ "server", server_key },
	{ "smtp", smtp_key },
	{ "pop3", pop3_key },
	{ "imap", imap_key },
	{ "auth", auth_key },
	{ "tls", tls_key },
};

static int is_listener_section(const char *section)
{
	return strncmp(section, "listener", 8) == 0 &&
	       (section[8] == ' ' || section[8] == '\t' || section[8] == '"');
}

/* [certificate "NAME"], and a bare [certificate] (to say how to write it). */
static int is_certificate_section(const char *section)
{
	return strncmp(section, "certificate", 11) == 0 &&
	       (section[11] == ' ' || section[11] == '\t' || section[11] == '"' || section[11] == '\0');
}

/* Called by the reader at each section header (c->section): an unknown
 * section is an error even when no key follows, and so is a section given
 * twice, where a later one would silently override the first. */
static int section_header(struct parse_ctx *c)
{
	const char *name = c->section;

	for (unsigned i = 0; i < c->n_sections; i++)
		if (strcmp(c->sections[i].name, name) == 0 && !is_listener_section(name) &&
		    !is_certificate_section(name))
			return fail(c, "section [%s] is given twice (first on line %u)", q(c, name),
				    c->sections[i].line);
	if (c->n_sections == ARRAY_SIZE(c->sections))
		return fail(c, "more than %zu sections", ARRAY_SIZE(c->sections));
	strcpy(c->sections[c->n_sections].name, name);
	c->sections[c->n_sections++].line = c->line;
	if (is_listener_section(name))
		return listener_for(c, name) ? 1 : 0;
	if (is_certificate_section(name))
		return certificate_for(c, name) ? 1 : 0;
	for (size_t i = 0; i < ARRAY_SIZE(plain_sections); i++)
		if (strcmp(name, plain_sections[i].name) == 0)
			return 1;
	if (!name[0])
		return fail(c, "empty section name []");
	return fail(c, "unknown section [%s]", q(c, name));
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse_ctx *c = user;

	/* libinih cuts section names at 49 octets; the reader keeps them whole. */
	(void)section;
	section = c->section;
	if (c->err[0])
		return 0;
	if (strcmp(section, c->cur_section) != 0) {
		snprintf(c->cur_section, sizeof(c->cur_section), "%s", section);
		c->n_seen = 0;
	}
	for (unsigned i = 0; i < c->n_seen; i++)
		if (strcmp(c->seen[i], key) == 0)
			return fail(c, "[%s]: key '%s' is set twice", q(c, section), q(c, key));
	if (c->n_seen < ARRAY_SIZE(c->seen) && strlen(key) < sizeof(c->seen[0]))
		strcpy(c->seen[c->n_seen++], key);

	for (size_t i = 0; i < ARRAY_SIZE(plain_sections); i++)
		if (strcmp(section, plain_sections[i].name) == 0)
			return plain_sections[i].key(c, key, value);
	if (is_listener_section(section)) {
		struct listener_config *l = listener_for(c, section);
		return l ? listener_key(c, l, key, value) : 0;
	}
	if (is_certificate_section(section)) {
		struct tls_cert_config *e = certificate_for(c, section);
		return e ? certificate_key(c, e, key, value) : 0;
	}
	if (section[0] == '\0' && c->section_line == 0)
		return fail(c, "key '%s' is outside any section", q(c, key));
	return fail(c, "unknown section [%s]", q(c, section));
}

static int port_is_zero(const struct listen_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)&a->ss)->sin6_port == 0;
	return ((const struct sockaddr_in *)&a->ss)->sin_port == 0;
}

/* A certificate and key that go together (what: "[tls]", "listener \"mx\""):
 * both or neither, and "auto" ([tls] only) without a key. */
static int check_pair(struct parse_ctx *c, const char *what, const char *certificate, const char *key,
		      const struct tls_lines *lines, char *err, size_t errlen)
{
	if (certificate && strcmp(certificate, "auto") == 0 && key) {
		snprintf(err, errlen, "%s:%u: %s key: certificate = auto makes its own key; remove this line", c->name,
			 lines->key, what);
		return -1;
	}
	if (certificate && !key && strcmp(certificate, "auto") != 0) {
		snprintf(err, errlen, "%s:%u: %s certificate is set but key is not (set both)", c->name,
			 lines->certificate, what);
		return -1;
	}
	if (key && !certificate) {
		snprintf(err, errlen, "%s:%u: %s key is set but certificate is not (set both)", c->name, lines->key,
			 what);
		return -1;
	}
	return 0;
}

/* The [tls] and [certificate "NAME"] rules that need the whole file. */
static int finish_tls(struct parse_ctx *c, char *err, size_t errlen)
{
	struct tls_config *t = &c->cfg->tls;
	char what[96];

	if (check_pair(c, "[tls]", t->certificate, t->key, &c->tls_lines, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < t->n_extra; i++) {
		struct tls_cert_config *e = &t->extra[i];

		snprintf(what, sizeof(what), "certificate \"%s\":", e->name);
		if (!e->certificate && !e->key) {
			snprintf(err, errlen, "%s:%u: %s certificate and key are not set", c->name, e->line, what);
			return -1;
		}
		if (check_pair(c, what, e->certificate, e->key, &c->cert_lines[i], err, errlen) < 0)
			return -1;
		/* Clients without SNI (and names no certificate has) get the
		 * default one: there must be one. */
		if (!t->certificate) {
			snprintf(err, errlen, "%s:%u: %s [tls] certificate is not set: the default certificate, "
				 "for clients that name no server or another one, must be there too", c->name, e->line,
				 what);
			return -1;
		}
	}
	return 0;
}

/* A listener's own pair, and its tls mode: unset, starttls when it has a
 * certificate ([tls]'s or its own), else none. */
static int finish_listener_tls(struct parse_ctx *c, struct listener_config *l, const struct tls_lines *lines,
			       char *err, size_t errlen)
{
	char what[96];

	snprintf(what, sizeof(what), "listener \"%s\":", l->name);
	if (check_pair(c, what, l->certificate, l->key, lines, err, errlen) < 0)
		return -1;
	if (!l->have_tls)
		l->tls = l->certificate || c->cfg->tls.certificate ? TLS_MODE_STARTTLS : TLS_MODE_NONE;
	else if (l->tls != TLS_MODE_NONE && !l->certificate && !c->cfg->tls.certificate) {
		snprintf(err, errlen, "%s:%u: %s tls = %s needs a certificate: set [tls] certificate and key, "
			 "or this listener's", c->name, lines->tls, what, tls_mode_name(l->tls));
		return -1;
	}
	return 0;
}

static int finish_checks(struct parse_ctx *c, int r, char *err, size_t errlen);

/* The checks once the whole file is read, and the reader's memory freed. */
static int finish(struct parse_ctx *c, int r, char *err, size_t errlen)
{
	int ret = finish_checks(c, r, err, errlen);

	free(c->base_dir);
	c->base_dir = NULL;
	free(c->listener_lines);
	c->listener_lines = NULL;
	free(c->cert_lines);
	c->cert_lines = NULL;
	return ret;
}

static int finish_checks(struct parse_ctx *c, int r, char *err, size_t errlen)
{
	struct config *cfg = c->cfg;

	if (c->err[0] || r > 0) {
		/* The first error in the file, ours or libinih's. */
		int ours = c->err[0] && (r <= 0 || c->err_line <= (unsigned)r);

		snprintf(err, errlen, "%s:%u: %s", c->name, ours ? c->err_line : (unsigned)r,
			 ours ? c->err : "syntax error (expected [section] or key = value)");
		return -1;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", c->name, strerror(r == -1 ? EIO : -r));
		return -1;
	}
	if (!cfg->hostname) {
		snprintf(err, errlen, "%s: [server] hostname is not set", c->name);
		return -1;
	}
	snprintf(cfg->imap.hostname, sizeof(cfg->imap.hostname), "%s", cfg->hostname);
	if (!cfg->data_dir) {
		snprintf(err, errlen, "%s: [server] data_dir is not set", c->name);
		return -1;
	}
	if (cfg->smtp.max_buffered < cfg->smtp.max_message_size) {
		snprintf(err, errlen, "%s: [smtp] max_buffered (%llu) is smaller than max_message_size (%llu): "
			 "the largest messages could never be taken", c->name,
			 (unsigned long long)cfg->smtp.max_buffered, (unsigned long long)cfg->smtp.max_message_size);
		return -1;
	}
	if (cfg->imap.max_buffered < cfg->imap.max_literal) {
		snprintf(err, errlen, "%s: [imap] max_buffered (%llu) is smaller than max_literal (%llu): "
			 "the largest messages could never be taken", c->name,
			 (unsigned long long)cfg->imap.max_buffered, (unsigned long long)cfg->imap.max_literal);
		return -1;
	}
	if (cfg->imap.login_max_buffered < cfg->imap.login_max_literal) {
		snprintf(err, errlen, "%s: [imap] login_max_buffered (%llu) is smaller than login_max_literal (%llu): "
			 "the largest login literals could never be taken", c->name,
			 (unsigned long long)cfg->imap.login_max_buffered,
			 (unsigned long long)cfg->imap.login_max_literal);
		return -1;
	}
	if (cfg->n_listeners == 0) {
		snprintf(err, errlen, "%s: no [listener \"name\"] section: buzon would serve nothing", c->name);
		return -1;
	}
	if (finish_tls(c, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		struct listener_config *l = &cfg->listeners[i];
		if (!l->have_protocol) {
			snprintf(err, errlen, "%s:%u: listener \"%s\": protocol is not set", c->name, l->line, l->name);
			return -1;
		}
		if (l->n_addrs == 0) {
			snprintf(err, errlen, "%s:%u: listener \"%s\": address is not set", c->name, l->line, l->name);
			return -1;
		}
		if (finish_listener_tls(c, l, &c->listener_lines[i], err, errlen) < 0)
			return -1;
		if (l->protocol != PROTO_SMTP && (c->listener_lines[i].rate || c->listener_lines[i].rcpt)) {
			snprintf(err, errlen, "%s:%u: listener \"%s\": %s is for smtp and submission listeners", c->name,
				 c->listener_lines[i].rate ? c->listener_lines[i].rate : c->listener_lines[i].rcpt,
				 l->name, c->listener_lines[i].rate ? "max_messages_per_ip_per_minute" : "max_recipients");
			return -1;
		}
		if (l->protocol != PROTO_SMTP && l->have_auth && l->auth != AUTH_REQUIRED) {
			snprintf(err, errlen, "%s:%u: listener \"%s\": auth = %s: POP3 and IMAP always require a login",
				 c->name, c->listener_lines[i].auth, l->name, l->auth == AUTH_NONE ? "none" : "optional");
			return -1;
		}
		if (!l->have_auth)
			l->auth = l->protocol == PROTO_SMTP && !l->submission ? AUTH_NONE : AUTH_REQUIRED;
		if (!l->max_recipients)
			l->max_recipients = cfg->smtp.max_recipients;
		if (!l->max_connections)
			l->max_connections = cfg->max_connections;
		if (!l->max_connections_per_ip)
			l->max_connections_per_ip = cfg->max_connections_per_ip;
		if (!l->max_unauthenticated) {
			/* POP3 and IMAP keep half for users who have logged in;
			 * SMTP has no login yet. */
			l->max_unauthenticated = l->protocol == PROTO_SMTP ? l->max_connections
									  : (l->max_connections + 1) / 2;
		} else if (l->max_unauthenticated > l->max_connections) {
			snprintf(err, errlen, "%s:%u: listener \"%s\": max_unauthenticated (%u) is larger than "
				 "max_connections (%u)", c->name, l->line, l->name, l->max_unauthenticated,
				 l->max_connections);
			return -1;
		}
		for (size_t j = 0; j < l->n_addrs; j++) {
			for (size_t k = 0; k <= i; k++) {
				struct listener_config *o = &cfg->listeners[k];
				for (size_t m = 0; m < (k == i ? j : o->n_addrs); m++) {
					if (o->addrs[m].len == l->addrs[j].len && !port_is_zero(&l->addrs[j]) &&
					    memcmp(&o->addrs[m].ss, &l->addrs[j].ss, l->addrs[j].len) == 0) {
						snprintf(err, errlen, "%s:%u: listener \"%s\": address %s is already used by listener \"%s\"",
							 c->name, l->address_line, l->name, l->addrs[j].text, o->name);
						return -1;
					}
				}
			}
		}
	}
	return 0;
}

/* The directory of the file at path, absolute: where its relative paths
 * start. NULL when the current directory cannot be known. */
static char *base_dir_of(const char *path)
{
	char cwd[4096];
	const char *slash = path ? strrchr(path, '/') : NULL;

	if (path && path[0] == '/')
		return xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (!slash)
		return xstrdup(cwd);
	return xasprintf("%s/%.*s", cwd, (int)(slash - path), path);
}

int config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	struct parse_ctx c;
	int r;

	config_defaults(cfg);
	cfg->path = xstrdup(path);
	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.name = path;
	c.fp = fopen(path, "r");
	if (!c.fp) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	c.base_dir = base_dir_of(path);
	r = ini_parse_stream(reader, &c, handler, &c);
	/* A read error (a directory given as the file) looks like the end. */
	if (r == 0 && ferror(c.fp))
		r = errno ? -errno : -EIO;
	fclose(c.fp);
	c.fp = NULL;
	if (r == -2)
		r = -ENOMEM;
	return finish(&c, r, err, errlen);
}

int config_load_buffer(const char *data, size_t len, const char *name, struct config *cfg, char *err,
		       size_t errlen)
{
	struct parse_ctx c;
	int r;

	config_defaults(cfg);
	cfg->path = xstrdup(name);
	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.name = name;
	c.text = data;
	c.text_end = data + len;
	c.base_dir = base_dir_of(NULL);
	r = ini_parse_stream(reader, &c, handler, &c);
	if (r == -2)
		r = -ENOMEM;
	return finish(&c, r, err, errlen);
}

int config_load_string(const char *text, const char *name, struct config *cfg, char *err, size_t errlen)
{
	return config_load_buffer(text, strlen(text), name, cfg, err, errlen);
}
