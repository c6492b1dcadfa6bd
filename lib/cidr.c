#include "lib/cidr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* An IPv4-mapped IPv6 address or rule becomes the IPv4 one it stands for. */
static void unmap(struct cidr *c)
{
	if (c->v6 && c->prefix >= 96 && memcmp(c->addr, v4mapped, 12) == 0) {
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		c->v6 = 0;
		c->prefix -= 96;
	}
}

static void mask(struct cidr *c)
{
	unsigned bits = c->v6 ? 128 : 32;

	for (unsigned i = c->prefix; i < bits; i++)
		c->addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
}

int cidr_parse_addr(const char *ip, struct cidr *c)
{
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, ip, c->addr) == 1) {
		c->prefix = 32;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, c->addr) == 1) {
		c->v6 = 1;
		c->prefix = 128;
		unmap(c);
		return 0;
	}
	return -1;
}

int cidr_parse(const char *text, struct cidr *c, char *err, size_t errlen)
{
	char host[64];
	const char *slash = strchr(text, '/');
	size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned long prefix;
	char *end;

	memset(c, 0, sizeof(*c));
	if (hlen == 0 || hlen >= sizeof(host)) {
		snprintf(err, errlen, "not an address or address/prefix");
		return -1;
	}
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->prefix = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->v6 = 1;
		c->prefix = 128;
	} else {
		snprintf(err, errlen, "not an IPv4 or IPv6 address");
		return -1;
	}
	if (slash) {
		if (!isdigit((unsigned char)slash[1]) || strlen(slash + 1) > 3) {
			snprintf(err, errlen, "the prefix length is not a number");
			return -1;
		}
		prefix = strtoul(slash + 1, &end, 10);
		if (*end || prefix > c->prefix) {
			snprintf(err, errlen, "the prefix length is not from 0 to %u", c->prefix);
			return -1;
		}
		c->prefix = (unsigned)prefix;
	}
	mask(c);
	unmap(c);
	return 0;
}

int cidr_contains(const struct cidr *c, const struct cidr *a)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (c->v6 != a->v6)
		return 0;
	if (memcmp(c->addr, a->addr, full) != 0)
		return 0;
	if (rest) {
		unsigned char m = (unsigned char)(0xff00u >> rest);
		if ((c->addr[full] & m) != (a->addr[full] & m))
			return 0;
	}
	return 1;
}

int cidr_match_any(const struct cidr *rules, size_t n, const char *ip)
{
	struct cidr a;

	if (n == 0 || cidr_parse_addr(ip, &a) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (cidr_contains(&rules[i], &a))
			return 1;
	return 0;
}

void cidr_format(const struct cidr *c, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];

	inet_ntop(c->v6 ? AF_INET6 : AF_INET, c->addr, host, sizeof(host));
	snprintf(out, outlen, "%s/%u", host, c->prefix);
}
