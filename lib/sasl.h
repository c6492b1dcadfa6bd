#ifndef BUZON_SASL_H
#define BUZON_SASL_H

#include <stddef.h>

struct tls_info;

/*
 * The server side of SASL, protocol-neutral: POP3 AUTH (RFC 5034), IMAP
 * AUTHENTICATE (RFC 9051) and SMTP AUTH (RFC 4954) all carry base64 lines
 * and cancel with "*", so each protocol only frames the lines (with the
 * strict base64 and UTF-8 helpers below) and maps the results to its
 * replies; every mechanism is GNU SASL's (sasl_ctx_* and sasl_exchange_*,
 * lib/sasl-gsasl.c, further below), its steps run on a worker thread.
 */

/* Limits on the identities and the password (octets, UTF-8). RFC 4616 asks
 * for at least 255; an address may be 320. */
#define SASL_ID_MAX 320
#define SASL_PASSWORD_MAX 1024

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

/* ---- GNU SASL: every mechanism (lib/sasl-gsasl.c) ---------------------
 *
 * One struct sasl_ctx per process (a Gsasl context and a secret for the
 * fake SCRAM salts of unknown users); one struct sasl_exchange per
 * authentication. The protocols do the framing and the base64: a step takes
 * the client's DECODED response and gives the DECODED server challenge.
 *
 *   sasl_ctx_mechs(ctx, plaintext_ok, tls, list, sizeof(list));   (CAPA, EHLO)
 *   r = sasl_exchange_new(ctx, "SCRAM-SHA-256", plaintext_ok, tls, &x);
 *   r = sasl_exchange_step(x, &backend, ir_or_NULL, len, &out, &outlen);   (worker)
 *   while (r == SASL_STEP_CONTINUE) {
 *           send base64(out, outlen) as the challenge ("+ ", "334 ");
 *           read the client's line, "*" cancels (the protocol's business);
 *           r = sasl_exchange_step(x, &backend, decoded, n, &out, &outlen);   (worker)
 *   }
 *   SASL_STEP_SUCCESS: sasl_exchange_user(x) is the canonical address.
 *   sasl_exchange_free(&x);
 *
 * Threads: the context is shared (made before the workers start, freed after
 * they stop); an exchange is used by one thread at a time (the loop makes
 * it, a worker steps it, the loop reads the result and frees it): steps
 * check passwords with yescrypt and read the directory, so they belong on a
 * worker (runner_submit()).
 *
 * Failure is one answer: an unknown user, a disabled user and a wrong
 * password give SASL_STEP_FAILURE after the same challenges and the same
 * work. For SCRAM an unknown user (or one without SCRAM secrets, made before
 * schema 0002) gets a salt and an iteration count derived from the
 * context's secret and the name, the same on every try, and fails at the
 * client proof as a wrong password does; a disabled user gets the real salt
 * and fails there too. PLAIN and LOGIN rely on check_password() taking the
 * same time (dir_authenticate() hashes a dummy for unknown users).
 *
 * SCRAM's final "v=" message comes as a last SASL_STEP_CONTINUE challenge;
 * the client answers it with an empty response and only then is the result
 * SASL_STEP_SUCCESS: none of SMTP 235, POP3 +OK or IMAP OK carries data.
 */

struct sasl_ctx;
struct sasl_exchange;

/* Results of sasl_exchange_step(). */
enum sasl_step_result {
	SASL_STEP_SUCCESS = 0,    /* authenticated: sasl_exchange_user() */
	SASL_STEP_CONTINUE = 1,   /* send the challenge, feed the next response */
	SASL_STEP_FAILURE = -1,   /* bad credentials (535 5.7.8, -ERR [AUTH], NO [AUTHENTICATIONFAILED]) */
	SASL_STEP_TEMPFAIL = -2,  /* the directory could not answer (454 4.7.0, -ERR [SYS/TEMP], NO [UNAVAILABLE]) */
	SASL_STEP_MALFORMED = -3, /* not a message of the mechanism, or too long (501 5.5.2, -ERR, BAD) */
};

/* The SCRAM hash functions, for the secrets. */
enum sasl_scram_hash {
	SASL_SCRAM_SHA1,
	SASL_SCRAM_SHA256,
};

/* The longest decoded client response a step takes (a SCRAM
 * client-first-message with an escaped 320-octet name and authzid, the
 * nonce and the gs2 header fits); longer is SASL_STEP_MALFORMED. */
#define SASL_RESPONSE_MAX 2048
/* The longest base64 line of such a response (without CRLF). */
#define SASL_RESPONSE_LINE_MAX (((SASL_RESPONSE_MAX + 2) / 3) * 4)
/* The longest mechanism list sasl_ctx_mechs() writes, with its NUL. */
#define SASL_MECHS_MAX 96
/* Iteration counts of the SCRAM secrets written by sasl_scram_secret_make()
 * (RFC 5802 and 7677 ask for at least 4096). */
#define SASL_SCRAM_SHA1_ITER 4096
#define SASL_SCRAM_SHA256_ITER 10000
/* The octets of a salt sasl_scram_secret_make() draws. */
#define SASL_SCRAM_SALT_LEN 16
/* The size of a buffer for any stored SCRAM secret (RFC 5803 text). */
#define SASL_SCRAM_SECRET_MAX 256
/* The size of the context's secret for fake salts. */
#define SASL_CTX_SECRET_LEN 32

/* What one user's SCRAM lookup gives the exchange. */
struct sasl_scram_user {
	char canonical[SASL_ID_MAX + 1];  /* the user's address as the directory writes it */
	int enabled;
	/* The stored secret of the asked hash (RFC 5803, sasl_scram_secret_make()),
	 * "" when the user has none (made before SCRAM, or an imported hash). */
	char secret[SASL_SCRAM_SECRET_MAX];
};

/*
 * The directory as a step sees it, called on the step's thread. The caller
 * of sasl_exchange_step() owns ctx.
 */
struct sasl_backend {
	void *ctx;
	/* Checks user's password (PLAIN, LOGIN): 0 with the canonical address
	 * in canonical_r; -EACCES for an unknown user, a disabled user or a
	 * wrong password alike, in the same time; another negative code when
	 * the directory cannot answer. */
	int (*check_password)(void *ctx, const char *user, const char *password,
			      char canonical_r[SASL_ID_MAX + 1]);
	/* Reads user's SCRAM secret for hash (SCRAM-*): 1 with *u_r filled, 0
	 * when there is no such user, a negative code when the directory cannot
	 * answer. The exchange wipes u_r->secret after use. */
	int (*scram_lookup)(void *ctx, const char *user, enum sasl_scram_hash hash,
			    struct sasl_scram_user *u_r);
};

/*
 * Makes the process context: initializes GNU SASL and keeps a copy of secret
 * (SASL_CTX_SECRET_LEN octets, e.g. dir_sasl_secret(): the same across
 * restarts, so that a fake salt does not change when the server does), or
 * draws a random one when secret is NULL. 0, or -ENOSYS when this GNU SASL
 * lacks a mechanism buzon offers, or another negative code.
 */
int sasl_ctx_new(const unsigned char *secret, size_t secret_len, struct sasl_ctx **ctx_r);
/* Frees the context (no exchange may be left) and sets *ctx to NULL. */
void sasl_ctx_free(struct sasl_ctx **ctx);

/*
 * Writes the mechanisms to offer, space-separated, strongest first, into out
 * (SASL_MECHS_MAX is enough): SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS when
 * tls carries channel binding data ("tls-exporter" or "tls-unique"),
 * SCRAM-SHA-256 and SCRAM-SHA-1 always, PLAIN and LOGIN when plaintext_ok
 * (under TLS, or allowed by allow_plaintext_auth). tls is NULL without TLS.
 * Returns the length, or -ENOBUFS.
 */
int sasl_ctx_mechs(const struct sasl_ctx *ctx, int plaintext_ok, const struct tls_info *tls, char *out,
		   size_t outlen);

/*
 * Starts an exchange of mechanism mech (case-insensitive) with the same
 * plaintext_ok and tls as sasl_ctx_mechs(): -ENOENT when mech is not one it
 * would offer (the protocol answers 504 / -ERR / NO). The channel binding of
 * tls is copied. Cheap: may run on the loop thread.
 */
int sasl_exchange_new(struct sasl_ctx *ctx, const char *mech, int plaintext_ok, const struct tls_info *tls,
		      struct sasl_exchange **x_r);
/*
 * Feeds the client's decoded response (in, len) and gives the decoded
 * challenge to send in *out_r, *outlen_r (valid until the next step or the
 * free; it may be empty). in is NULL only at the first step when the
 * command carried no initial response; an empty initial response ("=") is
 * in != NULL with len 0. Once the result is not SASL_STEP_CONTINUE, the
 * exchange is over and must not be stepped again. Runs the lookups of
 * backend on the calling thread.
 */
enum sasl_step_result sasl_exchange_step(struct sasl_exchange *x, const struct sasl_backend *backend,
					 const unsigned char *in, size_t len, const unsigned char **out_r,
					 size_t *outlen_r);
/* After SASL_STEP_SUCCESS: the canonical address of the user (the
 * authorization identity is always that user; an authzid naming anyone else
 * fails the exchange). "" before. Valid until the free. */
const char *sasl_exchange_user(const struct sasl_exchange *x);
/* The name of the exchange's mechanism ("SCRAM-SHA-256-PLUS"), for logs. */
const char *sasl_exchange_mech(const struct sasl_exchange *x);
/* The authentication identity the client sent, once a step has seen it
 * ("" before; at most SASL_ID_MAX octets, cut), for the log line and the
 * lockout: never a secret. */
const char *sasl_exchange_authcid(const struct sasl_exchange *x);
/* Wipes and frees the exchange; sets *x to NULL. */
void sasl_exchange_free(struct sasl_exchange **x);

/*
 * Computes the SCRAM secret of password for hash with a random salt and the
 * iteration count SASL_SCRAM_*_ITER, as RFC 5803 text:
 * "SCRAM-SHA-256$<iter>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>",
 * into out (SASL_SCRAM_SECRET_MAX). The password is SASLprep'd as SCRAM
 * asks. 0, or -EINVAL (a password SASLprep refuses), or another negative
 * code. Slow on purpose (PBKDF2): not for the loop thread.
 */
int sasl_scram_secret_make(enum sasl_scram_hash hash, const char *password, char *out, size_t outlen);
/* 0 when SASL carries password as it is (SASLprep leaves it unchanged),
 * -EINVAL when SASLprep refuses or changes it: such a password could be
 * hashed, but PLAIN, LOGIN and SCRAM clients would send another string. */
int sasl_password_check(const char *password);
/* 0 when s is a well-formed secret of hash as sasl_scram_secret_make()
 * writes it, -EINVAL when not. */
int sasl_scram_secret_check(enum sasl_scram_hash hash, const char *s);

#endif
