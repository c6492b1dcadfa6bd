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

#include "lib/xalloc.h"

#define MAX_CONFIG_LINE 4096

struct parse_ctx {
	struct config *cfg;
	const char *name;
	/* reader state */
	FILE *fp;
	const char *text;
	unsigned line;
	unsigned section_line;
	int line_too_long;
	/* the first error wins */
	char err[512];
	unsigned err_line;
	/* keys seen in the current section, for duplicate detection */
	char cur_section[256];
	char seen[64][48];
	unsigned n_seen;
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
	pop3_config_defaults(&cfg->pop3);
	imap_config_defaults(&cfg->imap);
}

void imap_config_defaults(struct imap_config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->hostname, "localhost");
	c->idle_timeout = 1800;
	c->max_line = 65536;
	c->max_literal = 50 * 1024 * 1024;
	c->max_buffered = 256 * 1024 * 1024;
	c->max_depth = 16;
	c->max_bad_commands = 20;
	c->max_auth_failures = 3;
	c->auth_delay_free = 2;
	c->auth_delay_base = 1;
	c->auth_delay_max = 15;
	c->auth_delay_decay = 60;
}

void pop3_config_defaults(struct pop3_config *c)
{
	memset(c, 0, sizeof(*c));
	c->idle_timeout = 600;
	c->max_line = 1024;
	c->max_commands = 100000;
	c->max_bad_commands = 20;
	c->max_auth_failures = 3;
	c->auth_delay_free = 2;
	c->auth_delay_base = 1;
	c->auth_delay_max = 15;
	c->auth_delay_decay = 60;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		free(cfg->listeners[i].name);
		free(cfg->listeners[i].addrs);
	}
	free(cfg->listeners);
	free(cfg->hostname);
	free(cfg->data_dir);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

static int fail(struct parse_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parse_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err[0])
		return 0;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
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
	char host[64];
	const char *colon, *port_s;
	size_t hlen;
	unsigned port;

	memset(a, 0, sizeof(*a));
	if (strlen(text) >= sizeof(a->text)) {
		snprintf(err, errlen, "address '%.40s...' is too long", text);
		return -1;
	}
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "address '%s' is not [IPv6]:port", text);
			return -1;
		}
		hlen = (size_t)(close - text - 1);
		port_s = close + 2;
		if (hlen == 0 || hlen >= sizeof(host)) {
			snprintf(err, errlen, "address '%s' has a bad IPv6 host", text);
			return -1;
		}
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
	} else {
		colon = strrchr(text, ':');
		if (!colon || colon == text) {
			snprintf(err, errlen, "address '%s' is not host:port", text);
			return -1;
		}
		hlen = (size_t)(colon - text);
		if (hlen >= sizeof(host) || memchr(text, ':', hlen)) {
			snprintf(err, errlen, "address '%s' is not host:port (write IPv6 as [addr]:port)", text);
			return -1;
		}
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		port_s = colon + 1;
	}
	if (parse_uint(port_s, 0, 65535, &port) < 0) {
		snprintf(err, errlen, "address '%s' has a bad port (0-65535; 0 picks a free one)", text);
		return -1;
	}
	if (text[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
			snprintf(err, errlen, "address '%s': '%s' is not an IPv6 address", text, host);
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
			snprintf(err, errlen, "address '%s': '%s' is not an IPv4 address", text, host);
			return -1;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		a->len = sizeof(*s4);
	}
	strcpy(a->text, text);
	return 0;
}

static char *reader(char *str, int num, void *stream)
{
	struct parse_ctx *c = stream;
	size_t n;

	if (c->fp) {
		if (!fgets(str, num, c->fp))
			return NULL;
		n = strlen(str);
		if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(c->fp)) {
			int ch;
			while ((ch = fgetc(c->fp)) != EOF && ch != '\n')
				;
			c->line++;
			if (!c->line_too_long) {
				c->line_too_long = 1;
				fail(c, "line is longer than %d characters", num - 3);
			}
			str[0] = '\0';
			return str;
		}
	} else {
		const char *nl;
		if (!*c->text)
			return NULL;
		nl = strchr(c->text, '\n');
		n = nl ? (size_t)(nl - c->text + 1) : strlen(c->text);
		if (n >= (size_t)num) {
			c->line++;
			c->text += n;
			fail(c, "line is longer than %d characters", num - 3);
			str[0] = '\0';
			return str;
		}
		memcpy(str, c->text, n);
		str[n] = '\0';
		c->text += n;
	}
	c->line++;
	{
		const char *p = str;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '[')
			c->section_line = c->line;
	}
	return str;
}

static struct listener_config *listener_for(struct parse_ctx *c, const char *section)
{
	struct config *cfg = c->cfg;
	const char *p = section + strlen("listener");
	char name[64];
	size_t len;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '"') {
		fail(c, "section [%s]: write listeners as [listener \"name\"]", section);
		return NULL;
	}
	p++;
	len = strcspn(p, "\"");
	if (p[len] != '"' || p[len + 1] != '\0' || len == 0 || len >= sizeof(name)) {
		fail(c, "section [%s]: write listeners as [listener \"name\"]", section);
		return NULL;
	}
	memcpy(name, p, len);
	name[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.') {
			fail(c, "listener name \"%s\": use letters, digits, '-', '_' and '.'", name);
			return NULL;
		}
	}
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
	struct listener_config *l = &cfg->listeners[cfg->n_listeners++];
	memset(l, 0, sizeof(*l));
	l->name = xstrdup(name);
	l->line = c->section_line;
	return l;
}

static int listener_key(struct parse_ctx *c, struct listener_config *l, const char *key, const char *value)
{
	char err[256];

	if (strcmp(key, "protocol") == 0) {
		if (strcmp(value, "smtp") == 0)
			l->protocol = PROTO_SMTP;
		else if (strcmp(value, "pop3") == 0)
			l->protocol = PROTO_POP3;
		else if (strcmp(value, "imap") == 0)
			l->protocol = PROTO_IMAP;
		else
			return fail(c, "listener \"%s\": protocol '%s' is not smtp, pop3 or imap", l->name, value);
		l->have_protocol = 1;
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
	return fail(c, "listener \"%s\": unknown key '%s'", l->name, key);
}

static int server_key(struct parse_ctx *c, const char *key, const char *value)
{
	struct config *cfg = c->cfg;

	if (strcmp(key, "hostname") == 0) {
		for (const char *p = value; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
				return fail(c, "hostname '%s' is not a domain name", value);
		if (!*value || strlen(value) > 253)
			return fail(c, "hostname '%s' is not a domain name", value);
		free(cfg->hostname);
		cfg->hostname = xstrdup(value);
	} else if (strcmp(key, "data_dir") == 0) {
		if (!*value)
			return fail(c, "data_dir is empty");
		free(cfg->data_dir);
		cfg->data_dir = xstrdup(value);
	} else if (strcmp(key, "log_level") == 0) {
		if (log_parse_level(value, &cfg->log_level) < 0)
			return fail(c, "log_level '%s' is not debug, info, warn or error", value);
	} else if (strcmp(key, "max_connections") == 0) {
		if (parse_uint(value, 1, 1000000, &cfg->max_connections) < 0)
			return fail(c, "max_connections '%s' is not a number from 1 to 1000000", value);
	} else if (strcmp(key, "max_connections_per_ip") == 0) {
		if (parse_uint(value, 1, 1000000, &cfg->max_connections_per_ip) < 0)
			return fail(c, "max_connections_per_ip '%s' is not a number from 1 to 1000000", value);
	} else if (strcmp(key, "shutdown_timeout") == 0) {
		if (config_parse_duration(value, &cfg->shutdown_timeout) < 0)
			return fail(c, "shutdown_timeout '%s' is not a duration (30, 30s, 5m)", value);
	} else if (strcmp(key, "delivery_threads") == 0) {
		if (parse_uint(value, 1, 128, &cfg->delivery_threads) < 0)
			return fail(c, "delivery_threads '%s' is not a number from 1 to 128", value);
	} else {
		return fail(c, "[server]: unknown key '%s'", key);
	}
	return 1;
}

static int smtp_key(struct parse_ctx *c, const char *key, const char *value)
{
	struct smtp_config *s = &c->cfg->smtp;

	if (strcmp(key, "max_message_size") == 0) {
		if (config_parse_size(value, &s->max_message_size) < 0 || s->max_message_size < 1024 ||
		    s->max_message_size > (uint64_t)1 << 31)
			return fail(c, "max_message_size '%s' is not a size from 1k to 2G", value);
	} else if (strcmp(key, "max_buffered") == 0) {
		if (config_parse_size(value, &s->max_buffered) < 0 || s->max_buffered < 1024 * 1024 ||
		    s->max_buffered > (uint64_t)1 << 40)
			return fail(c, "max_buffered '%s' is not a size from 1M to 1T", value);
	} else if (strcmp(key, "max_recipients") == 0) {
		if (parse_uint(value, 1, 100000, &s->max_recipients) < 0)
			return fail(c, "max_recipients '%s' is not a number from 1 to 100000", value);
	} else if (strcmp(key, "bare_newline") == 0) {
		if (strcmp(value, "normalize") == 0)
			s->bare_newline = BARE_LF_NORMALIZE;
		else if (strcmp(value, "reject") == 0)
			s->bare_newline = BARE_LF_REJECT;
		else
			return fail(c, "bare_newline '%s' is not normalize or reject", value);
	} else if (strcmp(key, "recipient_delimiter") == 0) {
		if (strlen(value) >= sizeof(s->recipient_delimiter))
			return fail(c, "recipient_delimiter '%s' is too long", value);
		for (const char *p = value; *p; p++)
			if (!strchr("+-_=#~", *p))
				return fail(c, "recipient_delimiter '%s': use characters from + - _ = # ~", value);
		strcpy(s->recipient_delimiter, value);
	} else if (strcmp(key, "command_timeout") == 0) {
		if (config_parse_duration(value, &s->command_timeout) < 0 || s->command_timeout == 0)
			return fail(c, "command_timeout '%s' is not a duration (300, 300s, 5m)", value);
	} else if (strcmp(key, "data_timeout") == 0) {
		if (config_parse_duration(value, &s->data_timeout) < 0 || s->data_timeout == 0)
			return fail(c, "data_timeout '%s' is not a duration (180, 180s, 3m)", value);
	} else if (strcmp(key, "max_bad_commands") == 0) {
		if (parse_uint(value, 1, 1000, &s->max_bad_commands) < 0)
			return fail(c, "max_bad_commands '%s' is not a number from 1 to 1000", value);
	} else if (strcmp(key, "max_pipeline") == 0) {
		if (parse_uint(value, 1, 10000, &s->max_pipeline) < 0)
			return fail(c, "max_pipeline '%s' is not a number from 1 to 10000", value);
	} else {
		return fail(c, "[smtp]: unknown key '%s'", key);
	}
	return 1;
}

/* The failed-login keys shared by [pop3] and [imap]: 1 when key was one of
 * them (0 after an error was recorded), -1 when it is not. */
static int login_key(struct parse_ctx *c, const char *key, const char *value, unsigned *max_auth_failures,
		     unsigned *delay_free, unsigned *delay_base, unsigned *delay_max, unsigned *delay_decay)
{
	if (strcmp(key, "max_auth_failures") == 0) {
		if (parse_uint(value, 1, 100, max_auth_failures) < 0)
			return fail(c, "max_auth_failures '%s' is not a number from 1 to 100", value);
	} else if (strcmp(key, "auth_delay_free") == 0) {
		if (parse_uint(value, 0, 100, delay_free) < 0)
			return fail(c, "auth_delay_free '%s' is not a number from 0 to 100", value);
	} else if (strcmp(key, "auth_delay_base") == 0) {
		if (config_parse_duration(value, delay_base) < 0 || *delay_base > 60)
			return fail(c, "auth_delay_base '%s' is not a duration from 0 to 60s", value);
	} else if (strcmp(key, "auth_delay_max") == 0) {
		if (config_parse_duration(value, delay_max) < 0 || *delay_max > 3600)
			return fail(c, "auth_delay_max '%s' is not a duration from 0 to 1h", value);
	} else if (strcmp(key, "auth_delay_decay") == 0) {
		if (config_parse_duration(value, delay_decay) < 0 || *delay_decay == 0 || *delay_decay > 86400)
			return fail(c, "auth_delay_decay '%s' is not a duration from 1s to 24h", value);
	} else {
		return -1;
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
				    value);
	} else if (strcmp(key, "max_line") == 0) {
		if (parse_uint(value, 256, 65536, &p->max_line) < 0)
			return fail(c, "max_line '%s' is not a number from 256 to 65536", value);
	} else if (strcmp(key, "max_commands") == 0) {
		if (parse_uint(value, 1, 10000000, &p->max_commands) < 0)
			return fail(c, "max_commands '%s' is not a number from 1 to 10000000", value);
	} else if (strcmp(key, "max_bad_commands") == 0) {
		if (parse_uint(value, 1, 1000, &p->max_bad_commands) < 0)
			return fail(c, "max_bad_commands '%s' is not a number from 1 to 1000", value);
	} else {
		int r = login_key(c, key, value, &p->max_auth_failures, &p->auth_delay_free, &p->auth_delay_base,
				  &p->auth_delay_max, &p->auth_delay_decay);
		if (r >= 0)
			return r;
		return fail(c, "[pop3]: unknown key '%s'", key);
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
				    value);
	} else if (strcmp(key, "max_line") == 0) {
		if (parse_uint(value, 1024, 1048576, &p->max_line) < 0)
			return fail(c, "max_line '%s' is not a number from 1024 to 1048576", value);
	} else if (strcmp(key, "max_literal") == 0) {
		if (config_parse_size(value, &p->max_literal) < 0 || p->max_literal < 1024 ||
		    p->max_literal > (uint64_t)1 << 31)
			return fail(c, "max_literal '%s' is not a size from 1k to 2G", value);
	} else if (strcmp(key, "max_buffered") == 0) {
		if (config_parse_size(value, &p->max_buffered) < 0 || p->max_buffered < 1024 * 1024 ||
		    p->max_buffered > (uint64_t)1 << 40)
			return fail(c, "max_buffered '%s' is not a size from 1M to 1T", value);
	} else if (strcmp(key, "max_depth") == 0) {
		if (parse_uint(value, 2, 100, &p->max_depth) < 0)
			return fail(c, "max_depth '%s' is not a number from 2 to 100", value);
	} else if (strcmp(key, "max_bad_commands") == 0) {
		if (parse_uint(value, 1, 1000, &p->max_bad_commands) < 0)
			return fail(c, "max_bad_commands '%s' is not a number from 1 to 1000", value);
	} else {
		int r = login_key(c, key, value, &p->max_auth_failures, &p->auth_delay_free, &p->auth_delay_base,
				  &p->auth_delay_max, &p->auth_delay_decay);
		if (r >= 0)
			return r;
		return fail(c, "[imap]: unknown key '%s'", key);
	}
	return 1;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse_ctx *c = user;

	if (c->err[0])
		return 0;
	if (strcmp(section, c->cur_section) != 0) {
		snprintf(c->cur_section, sizeof(c->cur_section), "%s", section);
		c->n_seen = 0;
	}
	for (unsigned i = 0; i < c->n_seen; i++)
		if (strcmp(c->seen[i], key) == 0)
			return fail(c, "[%s]: key '%s' is set twice", section, key);
	if (c->n_seen < ARRAY_SIZE(c->seen) && strlen(key) < sizeof(c->seen[0]))
		strcpy(c->seen[c->n_seen++], key);

	if (strcmp(section, "server") == 0)
		return server_key(c, key, value);
	if (strcmp(section, "smtp") == 0)
		return smtp_key(c, key, value);
	if (strcmp(section, "pop3") == 0)
		return pop3_key(c, key, value);
	if (strcmp(section, "imap") == 0)
		return imap_key(c, key, value);
	if (strncmp(section, "listener", 8) == 0 && (section[8] == ' ' || section[8] == '\t' || section[8] == '"')) {
		struct listener_config *l = listener_for(c, section);
		return l ? listener_key(c, l, key, value) : 0;
	}
	if (section[0] == '\0')
		return fail(c, "key '%s' is outside any section", key);
	return fail(c, "unknown section [%s]", section);
}

static int port_is_zero(const struct listen_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)&a->ss)->sin6_port == 0;
	return ((const struct sockaddr_in *)&a->ss)->sin_port == 0;
}

static int finish(struct parse_ctx *c, int r, char *err, size_t errlen)
{
	struct config *cfg = c->cfg;

	if (c->err[0] || r > 0) {
		snprintf(err, errlen, "%s:%u: %s", c->name, c->err[0] ? c->err_line : (unsigned)r,
			 c->err[0] ? c->err : "syntax error (expected [section] or key = value)");
		return -1;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", c->name, strerror(errno));
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
	if (cfg->n_listeners == 0) {
		snprintf(err, errlen, "%s: no [listener \"name\"] section: buzon would serve nothing", c->name);
		return -1;
	}
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
	r = ini_parse_stream(reader, &c, handler, &c);
	fclose(c.fp);
	c.fp = NULL;
	if (r == -2)
		r = -1;
	return finish(&c, r, err, errlen);
}

int config_load_string(const char *text, const char *name, struct config *cfg, char *err, size_t errlen)
{
	struct parse_ctx c;
	int r;

	config_defaults(cfg);
	cfg->path = xstrdup(name);
	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.name = name;
	c.text = text;
	r = ini_parse_stream(reader, &c, handler, &c);
	return finish(&c, r, err, errlen);
}
