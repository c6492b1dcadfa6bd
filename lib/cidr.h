#ifndef BUZON_CIDR_H
#define BUZON_CIDR_H

#include <stddef.h>
#include <stdint.h>

/*
 * Client-address rules: "192.0.2.0/24", "2001:db8::/32", or a single address
 * (a /32 or /128). An IPv4-mapped IPv6 rule ("::ffff:192.0.2.0/120") is kept
 * as the IPv4 rule it means, and an IPv4-mapped client address is matched as
 * IPv4: a dual-stack listener sees IPv4 clients that way.
 */
struct cidr {
	int v6;                 /* 0: IPv4 (addr[0..3]), 1: IPv6 */
	unsigned prefix;        /* bits that must match */
	unsigned char addr[16]; /* network order; bits past prefix are zero */
};

/* Parses one rule; 0, or -1 with a reason (no final period) in err. */
int cidr_parse(const char *text, struct cidr *c, char *err, size_t errlen);
/* Parses a client address (as lib/net.c prints it) into a /32 or /128:
 * 0 or -1 when it is not an address. */
int cidr_parse_addr(const char *ip, struct cidr *c);
/* 1 when address a (from cidr_parse_addr) lies in rule c. */
int cidr_contains(const struct cidr *c, const struct cidr *a);
/* 1 when the client address ip lies in one of the n rules; 0 otherwise
 * (also when ip is not an address). */
int cidr_match_any(const struct cidr *rules, size_t n, const char *ip);
/* Writes c as text ("192.0.2.0/24") into out (at least 64 octets). */
void cidr_format(const struct cidr *c, char *out, size_t outlen);

#endif
