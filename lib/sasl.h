#ifndef BUZON_SASL_H
#define BUZON_SASL_H

#include <stddef.h>

/*
 * The server side of SASL exchanges, protocol-neutral: POP3 AUTH (RFC 5034),
 * IMAP AUTHENTICATE (RFC 9051) and SMTP AUTH (RFC 4954) all carry base64
 * lines and cancel with "*", so each protocol only frames the lines and maps
 * the results to its replies.
 *
 * Mechanisms: PLAIN (RFC 4616). A mechanism that needs more than one step
 * with real challenges (SCRAM) is meant to come from GNU SASL behind the same
 * interface.
 *
 * Usage:
 *   sasl_server_init(&x, mech);
 *   r = sasl_server_start(&x, initial_or_NULL, len);
 *   while (r == SASL_CONTINUE) { send the empty challenge; r = sasl_server_step(&x, line, len); }
 *   r == SASL_DONE: x.authzid, x.authcid and x.password are valid until
 *   sasl_server_wipe(&x), which must always be called at the end.
 *
 * The struct holds the password: it lives in the caller's memory (no heap),
 * and sasl_server_wipe() overwrites it.
 */

/* Results of sasl_server_start() and sasl_server_step(). */
enum sasl_result {
	SASL_DONE = 0,       /* credentials are ready */
	SASL_CONTINUE = 1,   /* send an empty challenge, then feed the client's next line */
	SASL_CANCELLED = -1, /* the client sent "*" */
	SASL_BAD_BASE64 = -2,/* the line is not strict base64 */
	SASL_BAD_MESSAGE = -3,/* decoded, but not a valid message for the mechanism */
};

enum sasl_mech {
	SASL_MECH_NONE = 0,
	SASL_MECH_PLAIN,
};

/* Limits on the identities and the password (octets, UTF-8). RFC 4616 asks
 * for at least 255; an address may be 320. */
#define SASL_ID_MAX 320
#define SASL_PASSWORD_MAX 1024
/* The longest decoded PLAIN message: authzid NUL authcid NUL password. */
#define SASL_MESSAGE_MAX (2 * SASL_ID_MAX + SASL_PASSWORD_MAX + 2)
/* The longest base64 line a client needs to send (without CRLF). */
#define SASL_LINE_MAX (((SASL_MESSAGE_MAX + 2) / 3) * 4)

struct sasl_server {
	enum sasl_mech mech;
	int state;
	/* set by SASL_DONE, pointing into buf */
	const char *authzid;   /* "" when the client sent none */
	const char *authcid;
	const char *password;
	unsigned char buf[SASL_MESSAGE_MAX + 1];
};

/* Returns the mechanism named name (case-insensitive), or SASL_MECH_NONE. */
enum sasl_mech sasl_mech_lookup(const char *name);
/* The mechanisms offered, space-separated ("PLAIN"), for CAPA, EHLO, CAPABILITY. */
const char *sasl_mech_list(void);

/* Starts an exchange with mech. */
void sasl_server_init(struct sasl_server *x, enum sasl_mech mech);
/*
 * Feeds the initial response of the command (AUTH PLAIN <ir>): ir is the
 * base64 text, "=" for an empty response, or NULL when the command carried
 * none (then the result is SASL_CONTINUE). "*" is not accepted here.
 */
int sasl_server_start(struct sasl_server *x, const char *ir, size_t len);
/* Feeds one client line (without CRLF) after a challenge. */
int sasl_server_step(struct sasl_server *x, const char *line, size_t len);
/* Overwrites the credentials and resets the struct; safe to call twice. */
void sasl_server_wipe(struct sasl_server *x);

/*
 * Strict base64 (RFC 4648 section 4, padding required, no white space,
 * zero pad bits). Decodes len characters into out (room for outcap octets);
 * returns the octet count, or -EINVAL for bad input, or -ENOBUFS when out is
 * too small.
 */
long sasl_base64_decode(const char *in, size_t len, unsigned char *out, size_t outcap);
/* Encodes len octets into out (room for outcap characters including the
 * NUL); returns the character count or -ENOBUFS. */
long sasl_base64_encode(const unsigned char *in, size_t len, char *out, size_t outcap);

/* 1 when the n octets at s are well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF) and contain no NUL. */
int sasl_utf8_valid(const unsigned char *s, size_t n);

#endif
