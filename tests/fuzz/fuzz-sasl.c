/*
 * Fuzz target for the server side of every SASL mechanism
 * (lib/sasl-gsasl.c over GNU SASL): the fuzzer plays the client.
 *
 * Input: one header octet, then the client's decoded responses separated by
 * the two octets FF FE (so a message can be cut anywhere: "n,,n=al" FF FE
 * "ice,r=..." is two steps).
 *   octet 0: bits 0-2 the mechanism (mod 6: SCRAM-SHA-256-PLUS,
 *            SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, LOGIN),
 *            bits 3-4 the connection: no TLS, TLS 1.3 with tls-exporter,
 *            TLS 1.2 with tls-unique, TLS without channel binding,
 *            bit 5 the first response is an initial response (else the
 *            first step gets none),
 *            bit 6 the directory fails (temporary failure),
 *            bit 7 plaintext mechanisms allowed.
 * In a response, "@N" stands for the whole nonce of the server's last
 * "r=" challenge, so that client-final messages get past the nonce check to
 * the channel binding and the proof.
 *
 * Users: alice@example.test ("secret", SCRAM secrets), bob@example.test
 * (disabled), carol@example.test (no SCRAM secrets). Aborts when an
 * exchange succeeds for anyone but alice or carol, succeeds over SCRAM (the
 * fuzzer cannot know a proof), runs more steps than the limit, or gives a
 * challenge longer than a response may be.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/sasl.h"
#include "lib/tls-types.h"
#include "lib/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const mech_names[] = {
	"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "LOGIN",
};

struct fuser {
	const char *address, *password;
	int enabled, scram;
	char s1[SASL_SCRAM_SECRET_MAX], s256[SASL_SCRAM_SECRET_MAX];
};

static struct fuser users[] = {
	{ "alice@example.test", "secret", 1, 1, "", "" },
	{ "bob@example.test", "secret", 0, 1, "", "" },
	{ "carol@example.test", "secret", 1, 0, "", "" },
};

static int fail_directory;
static struct sasl_ctx *ctx;
static struct tls_info tls13, tls12, tls_nocb;

static struct fuser *find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(users); i++) {
		if (strcasecmp(users[i].address, name) == 0)
			return &users[i];
	}
	return NULL;
}

static int f_check_password(void *c, const char *user, const char *password, char canonical_r[SASL_ID_MAX + 1])
{
	struct fuser *u = find(user);

	(void)c;
	if (fail_directory)
		return -5;
	if (!u || !u->enabled || strcmp(password, u->password) != 0)
		return -13;
	strcpy(canonical_r, u->address);
	return 0;
}

static int f_scram_lookup(void *c, const char *user, enum sasl_scram_hash hash, struct sasl_scram_user *u_r)
{
	struct fuser *u = find(user);

	(void)c;
	memset(u_r, 0, sizeof(*u_r));
	if (fail_directory)
		return -5;
	if (!u)
		return 0;
	strcpy(u_r->canonical, u->address);
	u_r->enabled = u->enabled;
	if (u->scram)
		strcpy(u_r->secret, hash == SASL_SCRAM_SHA1 ? u->s1 : u->s256);
	return 1;
}

static const struct sasl_backend backend = { NULL, f_check_password, f_scram_lookup };

static void init(void)
{
	unsigned char secret[SASL_CTX_SECRET_LEN];

	memset(secret, 7, sizeof(secret));
	if (sasl_ctx_new(secret, sizeof(secret), &ctx) < 0)
		abort();
	for (size_t i = 0; i < ARRAY_SIZE(users); i++) {
		if (sasl_scram_secret_make(SASL_SCRAM_SHA1, users[i].password, users[i].s1, sizeof(users[i].s1)) < 0 ||
		    sasl_scram_secret_make(SASL_SCRAM_SHA256, users[i].password, users[i].s256, sizeof(users[i].s256)) < 0)
			abort();
	}
	strcpy(tls13.version, "TLS1.3");
	strcpy(tls13.cb_type, "tls-exporter");
	memset(tls13.cb_data, 0x33, 32);
	tls13.cb_len = 32;
	strcpy(tls12.version, "TLS1.2");
	strcpy(tls12.cb_type, "tls-unique");
	memset(tls12.cb_data, 0x12, 12);
	tls12.cb_len = 12;
	strcpy(tls_nocb.version, "TLS1.3");
}

/* Copies the response [p, end) into out with "@N" replaced by nonce. */
static size_t expand(const uint8_t *p, const uint8_t *end, const char *nonce, unsigned char *out, size_t cap)
{
	size_t n = 0, nl = strlen(nonce);

	while (p < end && n < cap) {
		if (end - p >= 2 && p[0] == '@' && p[1] == 'N' && n + nl <= cap) {
			memcpy(out + n, nonce, nl);
			n += nl;
			p += 2;
			continue;
		}
		out[n++] = *p++;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char buf[SASL_RESPONSE_MAX + 512];
	const struct tls_info *tls[] = { NULL, &tls13, &tls12, &tls_nocb };
	char nonce[256] = "";
	struct sasl_exchange *x = NULL;
	const unsigned char *out;
	const uint8_t *p, *end;
	size_t outlen;
	int r, steps = 0, scram;
	uint8_t h;

	if (!ctx)
		init();
	if (size < 1)
		return 0;
	h = data[0];
	fail_directory = (h >> 6) & 1;
	if (sasl_exchange_new(ctx, mech_names[(h & 7) % 6], h >> 7, tls[(h >> 3) & 3], &x) < 0)
		return 0;
	scram = strncmp(sasl_exchange_mech(x), "SCRAM", 5) == 0;
	p = data + 1;
	end = data + size;
	if (!(h & 0x20)) {
		r = sasl_exchange_step(x, &backend, NULL, 0, &out, &outlen);
		steps++;
	} else {
		r = SASL_STEP_CONTINUE;
		out = (const unsigned char *)"";
		outlen = 0;
	}
	while (r == SASL_STEP_CONTINUE) {
		const uint8_t *sep = p;
		size_t n;

		if (outlen > SASL_RESPONSE_MAX)
			abort();
		/* remember the server's nonce: "r=<nonce>," */
		if (outlen > 2 && out[0] == 'r' && out[1] == '=') {
			const unsigned char *comma = memchr(out, ',', outlen);
			size_t nl = comma ? (size_t)(comma - out - 2) : outlen - 2;

			if (nl < sizeof(nonce)) {
				memcpy(nonce, out + 2, nl);
				nonce[nl] = '\0';
			}
		}
		if (p >= end && steps > 0)
			break;
		while (sep + 1 < end && !(sep[0] == 0xff && sep[1] == 0xfe))
			sep++;
		if (sep + 1 >= end)
			sep = end;
		n = expand(p, sep, nonce, buf, sizeof(buf));
		p = sep < end ? sep + 2 : end;
		r = sasl_exchange_step(x, &backend, buf, n, &out, &outlen);
		steps++;
		if (steps > 8)
			abort();   /* the step limit did not hold */
	}
	if (r == SASL_STEP_SUCCESS) {
		const char *u = sasl_exchange_user(x);

		if (scram || fail_directory)
			abort();
		if (strcmp(u, "alice@example.test") != 0 && strcmp(u, "carol@example.test") != 0)
			abort();
	} else if (r != SASL_STEP_CONTINUE && sasl_exchange_user(x)[0]) {
		abort();
	}
	sasl_exchange_free(&x);
	return 0;
}
