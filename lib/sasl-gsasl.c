#include "lib/sasl.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gsasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/tls-types.h"
#include "lib/xalloc.h"

/*
 * The server side of every mechanism through GNU SASL (see lib/sasl.h).
 *
 * GNU SASL asks the application for what it needs through one callback per
 * Gsasl context, named by property: the channel binding (CB_TLS_*), the
 * SCRAM salt, iteration count and keys (SCRAM_*), and the check of a
 * password (VALIDATE_SIMPLE). The callback finds its exchange with
 * gsasl_session_hook_get(), and the exchange holds the directory callbacks
 * (struct sasl_backend) only while a step runs: so one context serves every
 * thread, and an exchange needs no lock as long as one thread steps it at a
 * time. The Gsasl context itself is only read after sasl_ctx_new().
 */

enum mech_flags {
	MECH_PLAINTEXT = 1 << 0, /* sends the password: only where plaintext_ok */
	MECH_SCRAM = 1 << 1,
	MECH_PLUS = 1 << 2,      /* needs channel binding data */
	MECH_LOGIN = 1 << 3,     /* asks for the user name first */
};

struct mech_info {
	const char *name;
	unsigned flags;
	enum sasl_scram_hash hash;
};

/* Strongest first: the order of the advertised list. */
static const struct mech_info mechs[] = {
	{ "SCRAM-SHA-256-PLUS", MECH_SCRAM | MECH_PLUS, SASL_SCRAM_SHA256 },
	{ "SCRAM-SHA-1-PLUS", MECH_SCRAM | MECH_PLUS, SASL_SCRAM_SHA1 },
	{ "SCRAM-SHA-256", MECH_SCRAM, SASL_SCRAM_SHA256 },
	{ "SCRAM-SHA-1", MECH_SCRAM, SASL_SCRAM_SHA1 },
	{ "PLAIN", MECH_PLAINTEXT, 0 },
	{ "LOGIN", MECH_PLAINTEXT | MECH_LOGIN, 0 },
};

/* A client may not ping-pong for ever (PLAIN and SCRAM answer an empty
 * response with another empty challenge). SCRAM needs 3, LOGIN 3. */
#define STEPS_MAX 6
/* Base64 of the longest stored salt and of a key. */
#define SALT_MAX 64
#define B64_SALT_MAX (((SALT_MAX + 2) / 3) * 4 + 1)
#define B64_KEY_MAX (((GSASL_HASH_MAX_SIZE + 2) / 3) * 4 + 1)
/* The largest iteration count taken from the directory (a typo there must
 * not make every login of a user a minute of PBKDF2 for the client). */
#define ITER_MAX 1000000

struct sasl_ctx {
	Gsasl *gs;
	unsigned char secret[SASL_CTX_SECRET_LEN];
};

enum x_state {
	X_RUNNING,
	X_FINAL,  /* SCRAM's "v=" sent: an empty response ends it */
	X_DONE,
};

struct sasl_exchange {
	struct sasl_ctx *ctx;
	Gsasl_session *gs;
	const struct mech_info *mech;
	enum x_state state;
	int steps;
	/* set by the callback during a step */
	const struct sasl_backend *backend;  /* only while a step runs */
	int tempfail;          /* a lookup could not answer */
	int scram_ready;       /* the SCRAM values below are chosen */
	char cb_type[16];      /* "" when the connection has no channel binding */
	char cb_b64[((sizeof(((struct tls_info *)0)->cb_data) + 2) / 3) * 4 + 1];
	char authcid[SASL_ID_MAX + 1];
	char user[SASL_ID_MAX + 1];   /* canonical address, once the credentials are right */
	char scram_user[SASL_ID_MAX + 1]; /* canonical address of a SCRAM user found and enabled */
	char iter[16];
	char salt_b64[B64_SALT_MAX];
	char stored_b64[B64_KEY_MAX];
	char server_b64[B64_KEY_MAX];
	char *out;             /* the last challenge, from GNU SASL */
};

static Gsasl_hash gs_hash(enum sasl_scram_hash h)
{
	return h == SASL_SCRAM_SHA1 ? GSASL_HASH_SHA1 : GSASL_HASH_SHA256;
}

static const char *hash_name(enum sasl_scram_hash h)
{
	return h == SASL_SCRAM_SHA1 ? "SCRAM-SHA-1" : "SCRAM-SHA-256";
}

static unsigned hash_iter(enum sasl_scram_hash h)
{
	return h == SASL_SCRAM_SHA1 ? SASL_SCRAM_SHA1_ITER : SASL_SCRAM_SHA256_ITER;
}

/* Overwrites a property GNU SASL holds (a heap copy it frees without wiping). */
static void wipe_property(Gsasl_session *gs, Gsasl_property prop)
{
	const char *p = gsasl_property_fast(gs, prop);

	if (p)
		wipe((char *)p, strlen(p));
}

/* ---- stored secrets (RFC 5803) ------------------------------------------ */

/* The parts of a stored secret, as GNU SASL takes them. */
struct scram_parts {
	unsigned long iter;
	char salt_b64[B64_SALT_MAX];
	char stored_b64[B64_KEY_MAX];
	char server_b64[B64_KEY_MAX];
};

/* Copies the base64 field [p, end) into out (outlen) after checking that it
 * decodes strictly to between min and max octets. */
static int take_b64(const char *p, const char *end, size_t min, size_t max, char *out, size_t outlen)
{
	unsigned char bin[SALT_MAX];
	size_t n = (size_t)(end - p);
	long r;

	if (n + 1 > outlen)
		return -EINVAL;
	r = sasl_base64_decode(p, n, bin, sizeof(bin));
	wipe(bin, sizeof(bin));
	if (r < 0 || (size_t)r < min || (size_t)r > max)
		return -EINVAL;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" */
static int scram_parse(enum sasl_scram_hash h, const char *s, struct scram_parts *p)
{
	const char *name = hash_name(h), *colon, *dollar, *colon2;
	size_t keylen = gsasl_hash_length(gs_hash(h)), nl = strlen(name);
	char *end;

	if (!s || strncmp(s, name, nl) != 0 || s[nl] != '$')
		return -EINVAL;
	s += nl + 1;
	if (*s < '1' || *s > '9')
		return -EINVAL;
	errno = 0;
	p->iter = strtoul(s, &end, 10);
	if (errno || *end != ':' || p->iter > ITER_MAX)
		return -EINVAL;
	colon = end;
	dollar = strchr(colon + 1, '$');
	if (!dollar || take_b64(colon + 1, dollar, 1, SALT_MAX, p->salt_b64, sizeof(p->salt_b64)) < 0)
		return -EINVAL;
	colon2 = strchr(dollar + 1, ':');
	if (!colon2 || take_b64(dollar + 1, colon2, keylen, keylen, p->stored_b64, sizeof(p->stored_b64)) < 0)
		return -EINVAL;
	if (take_b64(colon2 + 1, colon2 + 1 + strlen(colon2 + 1), keylen, keylen, p->server_b64,
		     sizeof(p->server_b64)) < 0)
		return -EINVAL;
	return 0;
}

int sasl_scram_secret_check(enum sasl_scram_hash hash, const char *s)
{
	struct scram_parts p;
	int r = scram_parse(hash, s, &p);

	wipe(&p, sizeof(p));
	return r;
}

int sasl_password_check(const char *password)
{
	char *prep = NULL;
	int rc, r;

	if (!password)
		return -EINVAL;
	rc = gsasl_saslprep(password, GSASL_ALLOW_UNASSIGNED, &prep, NULL);
	if (rc != GSASL_OK)
		return rc == GSASL_MALLOC_ERROR ? -ENOMEM : -EINVAL;
	r = strcmp(prep, password) == 0 ? 0 : -EINVAL;
	wipe(prep, strlen(prep));
	gsasl_free(prep);
	return r;
}

int sasl_scram_secret_make(enum sasl_scram_hash hash, const char *password, char *out, size_t outlen)
{
	char salted[GSASL_HASH_MAX_SIZE], client[GSASL_HASH_MAX_SIZE], server[GSASL_HASH_MAX_SIZE],
		stored[GSASL_HASH_MAX_SIZE], salt_b64[B64_SALT_MAX], stored_b64[B64_KEY_MAX],
		server_b64[B64_KEY_MAX];
	unsigned char salt[SASL_SCRAM_SALT_LEN];
	size_t keylen = gsasl_hash_length(gs_hash(hash));
	char *prep = NULL;
	int rc, r = 0, n;

	if (!password || !out)
		return -EINVAL;
	/* SCRAM hashes the SASLprep'd password (RFC 5802 2.2); so do the
	 * clients. */
	rc = gsasl_saslprep(password, GSASL_ALLOW_UNASSIGNED, &prep, NULL);
	if (rc != GSASL_OK)
		return rc == GSASL_MALLOC_ERROR ? -ENOMEM : -EINVAL;
	if (gnutls_rnd(GNUTLS_RND_NONCE, salt, sizeof(salt)) < 0) {
		r = -EIO;
		goto out;
	}
	rc = gsasl_scram_secrets_from_password(gs_hash(hash), prep, hash_iter(hash), (const char *)salt,
					       sizeof(salt), salted, client, server, stored);
	if (rc != GSASL_OK) {
		r = rc == GSASL_MALLOC_ERROR ? -ENOMEM : -EINVAL;
		goto out;
	}
	if (sasl_base64_encode(salt, sizeof(salt), salt_b64, sizeof(salt_b64)) < 0 ||
	    sasl_base64_encode((unsigned char *)stored, keylen, stored_b64, sizeof(stored_b64)) < 0 ||
	    sasl_base64_encode((unsigned char *)server, keylen, server_b64, sizeof(server_b64)) < 0)
		BUG("scram secret buffers too small");
	n = snprintf(out, outlen, "%s$%u:%s$%s:%s", hash_name(hash), hash_iter(hash), salt_b64, stored_b64,
		     server_b64);
	if (n < 0 || (size_t)n >= outlen) {
		wipe(out, outlen);
		r = -ENOBUFS;
	}
out:
	wipe(salted, sizeof(salted));
	wipe(client, sizeof(client));
	wipe(server, sizeof(server));
	wipe(stored, sizeof(stored));
	wipe(stored_b64, sizeof(stored_b64));
	wipe(server_b64, sizeof(server_b64));
	if (prep) {
		wipe(prep, strlen(prep));
		gsasl_free(prep);
	}
	return r;
}

/* ---- SCRAM: the values for one user ------------------------------------- */

/*
 * A salt and an iteration count for a name that has no SCRAM secret: the
 * salt is HMAC-SHA-256(context secret, mechanism, lower-cased name), so the
 * same name gets the same salt on every try, as a real user does, and a
 * prober cannot tell the two apart. The count is the one real secrets get.
 */
static void scram_fake(struct sasl_exchange *x)
{
	unsigned char digest[32], salt[SASL_SCRAM_SALT_LEN];
	char msg[64 + SASL_ID_MAX + 1];
	size_t n, keylen = gsasl_hash_length(gs_hash(x->mech->hash));
	unsigned char key[GSASL_HASH_MAX_SIZE];

	n = (size_t)snprintf(msg, sizeof(msg), "buzon scram salt %s ", hash_name(x->mech->hash));
	for (const char *p = x->authcid; *p && n < sizeof(msg); p++)
		msg[n++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, x->ctx->secret, sizeof(x->ctx->secret), msg, n, digest) < 0)
		BUG("gnutls_hmac_fast");
	memcpy(salt, digest, sizeof(salt));
	sasl_base64_encode(salt, sizeof(salt), x->salt_b64, sizeof(x->salt_b64));
	snprintf(x->iter, sizeof(x->iter), "%u", hash_iter(x->mech->hash));
	/* Keys nobody knows: the client proof fails as a wrong password does. */
	if (gnutls_rnd(GNUTLS_RND_NONCE, key, keylen) < 0)
		memset(key, 0x5a, keylen);
	sasl_base64_encode(key, keylen, x->stored_b64, sizeof(x->stored_b64));
	if (gnutls_rnd(GNUTLS_RND_NONCE, key, keylen) < 0)
		memset(key, 0xa5, keylen);
	sasl_base64_encode(key, keylen, x->server_b64, sizeof(x->server_b64));
	wipe(key, sizeof(key));
	wipe(digest, sizeof(digest));
}

/* Chooses salt, count and keys once, when GNU SASL first asks for one. */
static void scram_prepare(struct sasl_exchange *x, Gsasl_session *gs)
{
	struct sasl_scram_user *u;
	struct scram_parts parts;
	const char *authid;
	int r = 0;

	if (x->scram_ready)
		return;
	x->scram_ready = 1;
	authid = gsasl_property_fast(gs, GSASL_AUTHID);
	if (!authid)
		authid = "";
	snprintf(x->authcid, sizeof(x->authcid), "%s", authid);
	scram_fake(x);
	if (strlen(authid) > SASL_ID_MAX || !x->backend->scram_lookup)
		return;
	u = xcalloc(1, sizeof(*u));
	r = x->backend->scram_lookup(x->backend->ctx, authid, x->mech->hash, u);
	if (r < 0) {
		x->tempfail = 1;
	} else if (r > 0 && u->secret[0] && scram_parse(x->mech->hash, u->secret, &parts) == 0) {
		/* A disabled user keeps the real salt and count, so that
		 * disabling an account does not show; the keys stay the fake
		 * ones and the proof fails. */
		snprintf(x->iter, sizeof(x->iter), "%lu", parts.iter);
		memcpy(x->salt_b64, parts.salt_b64, sizeof(x->salt_b64));
		if (u->enabled) {
			memcpy(x->stored_b64, parts.stored_b64, sizeof(x->stored_b64));
			memcpy(x->server_b64, parts.server_b64, sizeof(x->server_b64));
			snprintf(x->scram_user, sizeof(x->scram_user), "%s", u->canonical);
		}
	}
	wipe(&parts, sizeof(parts));
	wipe(u, sizeof(*u));
	free(u);
}

/* ---- the GNU SASL callback ------------------------------------------------ */

/* VALIDATE_SIMPLE (PLAIN, LOGIN): GNU SASL has set AUTHID, AUTHZID and the
 * SASLprep'd PASSWORD. */
static int validate_simple(struct sasl_exchange *x, Gsasl_session *gs)
{
	const char *authid = gsasl_property_fast(gs, GSASL_AUTHID);
	const char *password = gsasl_property_fast(gs, GSASL_PASSWORD);
	char canon[SASL_ID_MAX + 1];
	int r;

	snprintf(x->authcid, sizeof(x->authcid), "%s", authid ? authid : "");
	if (!authid || !password || !x->backend->check_password)
		return GSASL_AUTHENTICATION_ERROR;
	canon[0] = '\0';
	r = x->backend->check_password(x->backend->ctx, authid, password, canon);
	wipe_property(gs, GSASL_PASSWORD);
	if (r == 0 && canon[0]) {
		snprintf(x->user, sizeof(x->user), "%s", canon);
		return GSASL_OK;
	}
	if (r != -EACCES && r != 0)
		x->tempfail = 1;
	return GSASL_AUTHENTICATION_ERROR;
}

static int set_prop(Gsasl_session *gs, Gsasl_property prop, const char *value)
{
	return gsasl_property_set(gs, prop, value) == GSASL_OK ? GSASL_OK : GSASL_NO_CALLBACK;
}

static int gs_callback(Gsasl *g, Gsasl_session *gs, Gsasl_property prop)
{
	struct sasl_exchange *x = gs ? gsasl_session_hook_get(gs) : NULL;

	(void)g;
	if (!x || !x->backend)
		return GSASL_NO_CALLBACK;
	switch (prop) {
	/* Given whenever the connection has it, also to a SCRAM without
	 * -PLUS: GNU SASL then refuses a client that says "y" (it could
	 * bind but thinks we cannot: a downgrade, RFC 5802 6). */
	case GSASL_CB_TLS_EXPORTER:
		if (strcmp(x->cb_type, "tls-exporter") != 0)
			return GSASL_NO_CALLBACK;
		return set_prop(gs, prop, x->cb_b64);
	case GSASL_CB_TLS_UNIQUE:
		if (strcmp(x->cb_type, "tls-unique") != 0)
			return GSASL_NO_CALLBACK;
		return set_prop(gs, prop, x->cb_b64);
	case GSASL_SCRAM_ITER:
		if (!(x->mech->flags & MECH_SCRAM))
			return GSASL_NO_CALLBACK;
		scram_prepare(x, gs);
		return set_prop(gs, prop, x->iter);
	case GSASL_SCRAM_SALT:
		if (!(x->mech->flags & MECH_SCRAM))
			return GSASL_NO_CALLBACK;
		scram_prepare(x, gs);
		return set_prop(gs, prop, x->salt_b64);
	case GSASL_SCRAM_STOREDKEY:
		if (!(x->mech->flags & MECH_SCRAM))
			return GSASL_NO_CALLBACK;
		scram_prepare(x, gs);
		return set_prop(gs, prop, x->stored_b64);
	case GSASL_SCRAM_SERVERKEY:
		if (!(x->mech->flags & MECH_SCRAM))
			return GSASL_NO_CALLBACK;
		scram_prepare(x, gs);
		return set_prop(gs, prop, x->server_b64);
	case GSASL_VALIDATE_SIMPLE:
		if (!(x->mech->flags & MECH_PLAINTEXT))
			return GSASL_NO_CALLBACK;
		return validate_simple(x, gs);
	default:
		/* GSASL_PASSWORD among others: never handed out, so SCRAM
		 * cannot fall back to a clear-text password we do not have. */
		return GSASL_NO_CALLBACK;
	}
}

/* ---- context ---------------------------------------------------------------- */

int sasl_ctx_new(const unsigned char *secret, size_t secret_len, struct sasl_ctx **ctx_r)
{
	struct sasl_ctx *ctx;
	int rc;

	*ctx_r = NULL;
	if (secret && secret_len != SASL_CTX_SECRET_LEN)
		return -EINVAL;
	ctx = xcalloc(1, sizeof(*ctx));
	rc = gsasl_init(&ctx->gs);
	if (rc != GSASL_OK) {
		free(ctx);
		return rc == GSASL_MALLOC_ERROR ? -ENOMEM : -EIO;
	}
	for (size_t i = 0; i < ARRAY_SIZE(mechs); i++) {
		if (!gsasl_server_support_p(ctx->gs, mechs[i].name)) {
			gsasl_done(ctx->gs);
			free(ctx);
			return -ENOSYS;
		}
	}
	if (secret) {
		memcpy(ctx->secret, secret, SASL_CTX_SECRET_LEN);
	} else if (gnutls_rnd(GNUTLS_RND_KEY, ctx->secret, sizeof(ctx->secret)) < 0) {
		gsasl_done(ctx->gs);
		free(ctx);
		return -EIO;
	}
	gsasl_callback_set(ctx->gs, gs_callback);
	*ctx_r = ctx;
	return 0;
}

void sasl_ctx_free(struct sasl_ctx **ctxp)
{
	struct sasl_ctx *ctx = *ctxp;

	if (!ctx)
		return;
	gsasl_done(ctx->gs);
	wipe(ctx->secret, sizeof(ctx->secret));
	free(ctx);
	*ctxp = NULL;
}

/* The channel binding type of tls usable for -PLUS, or NULL. */
static const char *cb_of(const struct tls_info *tls)
{
	if (!tls || tls->cb_len == 0 || tls->cb_len > sizeof(tls->cb_data))
		return NULL;
	if (strcmp(tls->cb_type, "tls-exporter") == 0 || strcmp(tls->cb_type, "tls-unique") == 0)
		return tls->cb_type;
	return NULL;
}

static int offered(const struct mech_info *m, int plaintext_ok, const struct tls_info *tls)
{
	if ((m->flags & MECH_PLAINTEXT) && !plaintext_ok)
		return 0;
	if ((m->flags & MECH_PLUS) && !cb_of(tls))
		return 0;
	return 1;
}

int sasl_ctx_mechs(const struct sasl_ctx *ctx, int plaintext_ok, const struct tls_info *tls, char *out,
		   size_t outlen)
{
	size_t n = 0;

	(void)ctx;
	if (outlen == 0)
		return -ENOBUFS;
	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(mechs); i++) {
		size_t len = strlen(mechs[i].name);

		if (!offered(&mechs[i], plaintext_ok, tls))
			continue;
		if (n + (n > 0) + len + 1 > outlen)
			return -ENOBUFS;
		if (n > 0)
			out[n++] = ' ';
		memcpy(out + n, mechs[i].name, len + 1);
		n += len;
	}
	return (int)n;
}

/* ---- exchanges -------------------------------------------------------------- */

int sasl_exchange_new(struct sasl_ctx *ctx, const char *mech, int plaintext_ok, const struct tls_info *tls,
		      struct sasl_exchange **x_r)
{
	const struct mech_info *m = NULL;
	struct sasl_exchange *x;
	const char *cb;
	int rc;

	*x_r = NULL;
	for (size_t i = 0; mech && i < ARRAY_SIZE(mechs); i++) {
		if (strcasecmp(mech, mechs[i].name) == 0)
			m = &mechs[i];
	}
	if (!m || !offered(m, plaintext_ok, tls))
		return -ENOENT;
	x = xcalloc(1, sizeof(*x));
	x->ctx = ctx;
	x->mech = m;
	cb = cb_of(tls);
	if (cb) {
		snprintf(x->cb_type, sizeof(x->cb_type), "%s", cb);
		if (sasl_base64_encode(tls->cb_data, tls->cb_len, x->cb_b64, sizeof(x->cb_b64)) < 0)
			BUG("channel binding buffer too small");
	}
	rc = gsasl_server_start(ctx->gs, m->name, &x->gs);
	if (rc != GSASL_OK) {
		free(x);
		return rc == GSASL_MALLOC_ERROR ? -ENOMEM : -EIO;
	}
	gsasl_session_hook_set(x->gs, x);
	*x_r = x;
	return 0;
}

/* 1 when the authorization identity the client asked for is the user. */
static int authzid_ok(const struct sasl_exchange *x)
{
	const char *az = gsasl_property_fast(x->gs, GSASL_AUTHZID);

	return !az || !*az || strcasecmp(az, x->user) == 0;
}

static enum sasl_step_result finish(struct sasl_exchange *x, enum sasl_step_result r)
{
	x->state = X_DONE;
	if (r != SASL_STEP_SUCCESS)
		x->user[0] = '\0';
	return r;
}

enum sasl_step_result sasl_exchange_step(struct sasl_exchange *x, const struct sasl_backend *backend,
					 const unsigned char *in, size_t len, const unsigned char **out_r,
					 size_t *outlen_r)
{
	char *out = NULL;
	size_t outlen = 0;
	int rc;

	*out_r = (const unsigned char *)"";
	*outlen_r = 0;
	if (x->state == X_DONE)
		BUG("sasl_exchange_step after the end");
	if (!in && x->steps > 0)
		BUG("sasl_exchange_step without a response");
	if (x->out) {
		gsasl_free(x->out);
		x->out = NULL;
	}
	x->steps++;
	if ((in && len > SASL_RESPONSE_MAX) || x->steps > STEPS_MAX)
		return finish(x, SASL_STEP_MALFORMED);
	if (x->state == X_FINAL)
		return finish(x, len == 0 ? SASL_STEP_SUCCESS : SASL_STEP_MALFORMED);

	x->backend = backend;
	/* GNU SASL's LOGIN sends "User Name" at its first step whatever the
	 * input: an initial response (the user name, RFC 4616's sibling
	 * draft-murchison-sasl-login) is fed after that challenge. */
	if ((x->mech->flags & MECH_LOGIN) && x->steps == 1 && in) {
		rc = gsasl_step(x->gs, NULL, 0, &out, &outlen);
		gsasl_free(out);
		out = NULL;
		if (rc != GSASL_NEEDS_MORE) {
			x->backend = NULL;
			return finish(x, SASL_STEP_TEMPFAIL);
		}
	}
	/* GNU SASL's mechanisms take (input, len) but some copy it with
	 * strndup(), which may read up to a NUL: the response is handed over
	 * NUL-terminated (ASan's strict string checks caught LOGIN doing it). */
	if (in) {
		char *z = xmalloc(len + 1);

		memcpy(z, in, len);
		z[len] = '\0';
		rc = gsasl_step(x->gs, z, len, &out, &outlen);
		gnutls_memset(z, 0, len);
		free(z);
	} else {
		rc = gsasl_step(x->gs, NULL, 0, &out, &outlen);
	}
	x->backend = NULL;
	wipe_property(x->gs, GSASL_PASSWORD);
	if (x->tempfail) {
		gsasl_free(out);
		return finish(x, SASL_STEP_TEMPFAIL);
	}
	switch (rc) {
	case GSASL_NEEDS_MORE:
		x->out = out;
		*out_r = (const unsigned char *)(out ? out : "");
		*outlen_r = out ? outlen : 0;
		return SASL_STEP_CONTINUE;
	case GSASL_OK:
		if (x->mech->flags & MECH_SCRAM)
			snprintf(x->user, sizeof(x->user), "%s", x->scram_user);
		if (!x->user[0] || !authzid_ok(x)) {
			gsasl_free(out);
			return finish(x, SASL_STEP_FAILURE);
		}
		if (out && outlen > 0) {
			/* SCRAM's server-final-message "v=...". */
			x->out = out;
			*out_r = (const unsigned char *)out;
			*outlen_r = outlen;
			x->state = X_FINAL;
			return SASL_STEP_CONTINUE;
		}
		gsasl_free(out);
		return finish(x, SASL_STEP_SUCCESS);
	case GSASL_MECHANISM_PARSE_ERROR:
	case GSASL_BASE64_ERROR:
	case GSASL_MECHANISM_CALLED_TOO_MANY_TIMES:
		gsasl_free(out);
		return finish(x, SASL_STEP_MALFORMED);
	case GSASL_MALLOC_ERROR:
		gsasl_free(out);
		return finish(x, SASL_STEP_TEMPFAIL);
	default:
		/* AUTHENTICATION_ERROR, NO_CB_TLS_*, SASLPREP_ERROR, ...:
		 * one answer for every wrong credential. */
		gsasl_free(out);
		return finish(x, SASL_STEP_FAILURE);
	}
}

const char *sasl_exchange_user(const struct sasl_exchange *x)
{
	return x->state == X_DONE ? x->user : "";
}

const char *sasl_exchange_mech(const struct sasl_exchange *x)
{
	return x->mech->name;
}

const char *sasl_exchange_authcid(const struct sasl_exchange *x)
{
	return x->authcid;
}

void sasl_exchange_free(struct sasl_exchange **xp)
{
	struct sasl_exchange *x = *xp;

	if (!x)
		return;
	if (x->out)
		gsasl_free(x->out);
	wipe_property(x->gs, GSASL_PASSWORD);
	wipe_property(x->gs, GSASL_SCRAM_STOREDKEY);
	wipe_property(x->gs, GSASL_SCRAM_SERVERKEY);
	wipe_property(x->gs, GSASL_SCRAM_SALTED_PASSWORD);
	gsasl_finish(x->gs);
	wipe(x, sizeof(*x));
	free(x);
	*xp = NULL;
}
