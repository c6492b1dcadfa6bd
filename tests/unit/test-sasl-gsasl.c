/*
 * Unit tests of lib/sasl-gsasl.c: whole exchanges of every mechanism against
 * a GNU SASL client in the same process, with a directory of four users in
 * a table (sasl_backend). Checks that right credentials pass, that wrong
 * password, unknown user and disabled user fail after the same challenges,
 * channel binding (matching, different, missing, downgraded), authzid,
 * users without SCRAM secrets, temporary failures and malformed input.
 */
#include <errno.h>
#include <gsasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/sasl.h"
#include "lib/tls-types.h"
#include "lib/xalloc.h"

static int failures;

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) { \
			failures++; \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* ---- the directory: a table ---------------------------------------------- */

struct user {
	const char *address;
	const char *password;
	int enabled;
	int scram;   /* has SCRAM secrets (0: made before schema 0002) */
	char s1[SASL_SCRAM_SECRET_MAX], s256[SASL_SCRAM_SECRET_MAX];
};

static struct user users[] = {
	{ "alice@example.test", "correct horse", 1, 1, "", "" },
	{ "bob@example.test", "bob's secret", 0, 1, "", "" },       /* disabled */
	{ "carol@example.test", "carol pw", 1, 0, "", "" },         /* no SCRAM secrets */
	{ "d\xc3\xa9sir\xc3\xa9@example.test", "p\xc3\xa4ss", 1, 1, "", "" },
};

static int tempfail;   /* the backend "cannot answer" */
static int lookups;

static struct user *find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(users); i++) {
		if (strcasecmp(users[i].address, name) == 0)
			return &users[i];
	}
	return NULL;
}

static int t_check_password(void *ctx, const char *user, const char *password, char canonical_r[SASL_ID_MAX + 1])
{
	struct user *u = find(user);

	(void)ctx;
	lookups++;
	if (tempfail)
		return -EIO;
	if (!u || !u->enabled || strcmp(u->password, password) != 0)
		return -EACCES;
	strcpy(canonical_r, u->address);
	return 0;
}

static int t_scram_lookup(void *ctx, const char *user, enum sasl_scram_hash hash, struct sasl_scram_user *u_r)
{
	struct user *u = find(user);

	(void)ctx;
	lookups++;
	memset(u_r, 0, sizeof(*u_r));
	if (tempfail)
		return -EIO;
	if (!u)
		return 0;
	strcpy(u_r->canonical, u->address);
	u_r->enabled = u->enabled;
	if (u->scram)
		strcpy(u_r->secret, hash == SASL_SCRAM_SHA1 ? u->s1 : u->s256);
	return 1;
}

static const struct sasl_backend backend = { NULL, t_check_password, t_scram_lookup };

/* ---- the client: GNU SASL ---------------------------------------------------- */

struct client {
	const char *authcid, *authzid, *password;
	const char *cb_type;         /* NULL: no channel binding */
	const unsigned char *cb;
	size_t cblen;
};

static int client_cb(Gsasl *g, Gsasl_session *s, Gsasl_property prop)
{
	const struct client *c = gsasl_session_hook_get(s);
	char b64[128];

	(void)g;
	switch (prop) {
	case GSASL_AUTHID:
		return gsasl_property_set(s, prop, c->authcid);
	case GSASL_AUTHZID:
		return c->authzid ? gsasl_property_set(s, prop, c->authzid) : GSASL_NO_CALLBACK;
	case GSASL_PASSWORD:
		return gsasl_property_set(s, prop, c->password);
	case GSASL_CB_TLS_EXPORTER:
	case GSASL_CB_TLS_UNIQUE:
		if (!c->cb_type || strcmp(c->cb_type, prop == GSASL_CB_TLS_EXPORTER ? "tls-exporter" : "tls-unique"))
			return GSASL_NO_CALLBACK;
		sasl_base64_encode(c->cb, c->cblen, b64, sizeof(b64));
		return gsasl_property_set(s, prop, b64);
	default:
		return GSASL_NO_CALLBACK;
	}
}

static Gsasl *client_ctx;
static struct sasl_ctx *server_ctx;

/* What an exchange looked like from the client's side. */
struct outcome {
	int new_r;              /* sasl_exchange_new() */
	int result;             /* the last sasl_exchange_step() */
	int steps;
	char user[SASL_ID_MAX + 1];
	char challenges[1024];  /* the server's challenges, nonces taken out */
	char salt[128], iter[16];
};

/* Appends a challenge with SCRAM's r= (random nonce) replaced by "r=*". */
static void record(struct outcome *o, const unsigned char *ch, size_t n)
{
	char tmp[512];
	size_t len = strlen(o->challenges);

	snprintf(tmp, sizeof(tmp), "%.*s", (int)n, (const char *)ch);
	if (strncmp(tmp, "r=", 2) == 0) {
		char *comma = strchr(tmp, ','), *s, *i;

		s = strstr(tmp, ",s=");
		i = strstr(tmp, ",i=");
		if (s) {
			snprintf(o->salt, sizeof(o->salt), "%.*s", (int)(strcspn(s + 3, ",")), s + 3);
		}
		if (i)
			snprintf(o->iter, sizeof(o->iter), "%s", i + 3);
		if (comma)
			memmove(tmp + 3, comma, strlen(comma) + 1), tmp[2] = '*';
		/* the salt differs between users: keep its length only */
		s = strstr(tmp, ",s=");
		if (s) {
			size_t sl = strcspn(s + 3, ",");
			char rest[256];

			snprintf(rest, sizeof(rest), "%s", s + 3 + sl);
			snprintf(s, sizeof(tmp) - (size_t)(s - tmp), ",s=<%zu>%s", sl, rest);
		}
	} else if (strncmp(tmp, "v=", 2) == 0) {
		snprintf(tmp, sizeof(tmp), "v=*");
	}
	snprintf(o->challenges + len, sizeof(o->challenges) - len, "[%s]", tmp);
}

/* Runs one exchange: mech on a server with stls (NULL: no TLS), the client
 * c; with_ir sends the client's first message with the command. */
static struct outcome run(const char *mech, const struct tls_info *stls, int plaintext_ok,
			  const struct client *c, int with_ir)
{
	struct outcome o;
	struct sasl_exchange *x = NULL;
	Gsasl_session *cs = NULL;
	const unsigned char *out;
	size_t outlen;
	char *resp = NULL;
	size_t resplen = 0;
	int rc;

	memset(&o, 0, sizeof(o));
	o.result = 99;
	o.new_r = sasl_exchange_new(server_ctx, mech, plaintext_ok, stls, &x);
	if (o.new_r < 0)
		return o;
	if (gsasl_client_start(client_ctx, mech, &cs) != GSASL_OK) {
		fprintf(stderr, "client cannot start %s\n", mech);
		failures++;
		sasl_exchange_free(&x);
		return o;
	}
	gsasl_session_hook_set(cs, (void *)c);
	if (with_ir) {
		rc = gsasl_step(cs, NULL, 0, &resp, &resplen);
		o.result = sasl_exchange_step(x, &backend, (unsigned char *)(resp ? resp : ""), resplen, &out, &outlen);
		gsasl_free(resp);
	} else {
		o.result = sasl_exchange_step(x, &backend, NULL, 0, &out, &outlen);
	}
	o.steps = 1;
	while (o.result == SASL_STEP_CONTINUE && o.steps < 10) {
		record(&o, out, outlen);
		resp = NULL;
		resplen = 0;
		rc = gsasl_step(cs, (const char *)out, outlen, &resp, &resplen);
		if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
			/* the client refuses the server (e.g. a wrong v=) */
			o.result = 100 + rc;
			gsasl_free(resp);
			break;
		}
		o.result = sasl_exchange_step(x, &backend, (unsigned char *)(resp ? resp : ""), resplen, &out, &outlen);
		o.steps++;
		gsasl_free(resp);
	}
	snprintf(o.user, sizeof(o.user), "%s", sasl_exchange_user(x));
	sasl_exchange_free(&x);
	CHECK(x == NULL, "free did not clear the pointer");
	gsasl_finish(cs);
	return o;
}

/* ---- tests ------------------------------------------------------------------ */

static struct tls_info tls13, tls12, tls_nocb, tls13_other;

static int feed(const char *mech, const struct tls_info *t, const char *const *resp, const size_t *lens, size_t n);

static void setup_tls(void)
{
	memset(&tls13, 0, sizeof(tls13));
	strcpy(tls13.version, "TLS1.3");
	strcpy(tls13.cb_type, "tls-exporter");
	for (unsigned i = 0; i < 32; i++)
		tls13.cb_data[i] = (unsigned char)(i * 7 + 1);
	tls13.cb_len = 32;
	tls13_other = tls13;
	tls13_other.cb_data[5] ^= 1;
	memset(&tls12, 0, sizeof(tls12));
	strcpy(tls12.version, "TLS1.2");
	strcpy(tls12.cb_type, "tls-unique");
	for (unsigned i = 0; i < 12; i++)
		tls12.cb_data[i] = (unsigned char)(0xa0 + i);
	tls12.cb_len = 12;
	memset(&tls_nocb, 0, sizeof(tls_nocb));
	strcpy(tls_nocb.version, "TLS1.3");
}

static void test_mechs(void)
{
	char list[SASL_MECHS_MAX];
	int n;

	n = sasl_ctx_mechs(server_ctx, 1, &tls13, list, sizeof(list));
	CHECK(n > 0 && strcmp(list, "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN") == 0,
	      "with cb: %s", list);
	sasl_ctx_mechs(server_ctx, 1, &tls_nocb, list, sizeof(list));
	CHECK(strcmp(list, "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN") == 0, "tls without cb: %s", list);
	sasl_ctx_mechs(server_ctx, 0, NULL, list, sizeof(list));
	CHECK(strcmp(list, "SCRAM-SHA-256 SCRAM-SHA-1") == 0, "no plaintext: %s", list);
	CHECK(sasl_ctx_mechs(server_ctx, 1, &tls13, list, 20) == -ENOBUFS, "short buffer");

	struct sasl_exchange *x = NULL;
	CHECK(sasl_exchange_new(server_ctx, "PLAIN", 0, NULL, &x) == -ENOENT && !x, "PLAIN without plaintext_ok");
	CHECK(sasl_exchange_new(server_ctx, "SCRAM-SHA-256-PLUS", 1, &tls_nocb, &x) == -ENOENT, "-PLUS without cb");
	CHECK(sasl_exchange_new(server_ctx, "CRAM-MD5", 1, &tls13, &x) == -ENOENT, "CRAM-MD5");
	CHECK(sasl_exchange_new(server_ctx, "ANONYMOUS", 1, &tls13, &x) == -ENOENT, "ANONYMOUS");
	CHECK(sasl_exchange_new(server_ctx, "scram-sha-1", 0, NULL, &x) == 0 && x, "case-insensitive name");
	CHECK(x && strcmp(sasl_exchange_mech(x), "SCRAM-SHA-1") == 0, "mech name");
	sasl_exchange_free(&x);
	sasl_exchange_free(&x);  /* twice is fine */
}

struct mech_case {
	const char *mech;
	const struct tls_info *tls;
	const char *client_cb;   /* the client's cb type, NULL none */
};

static void test_credentials(void)
{
	const struct mech_case mc[] = {
		{ "PLAIN", &tls13, NULL },
		{ "LOGIN", &tls13, NULL },
		{ "SCRAM-SHA-1", NULL, NULL },
		{ "SCRAM-SHA-256", NULL, NULL },
		{ "SCRAM-SHA-1", &tls_nocb, NULL },
		{ "SCRAM-SHA-1-PLUS", &tls13, "tls-exporter" },
		{ "SCRAM-SHA-256-PLUS", &tls13, "tls-exporter" },
		{ "SCRAM-SHA-256-PLUS", &tls12, "tls-unique" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(mc); i++) {
		const struct tls_info *t = mc[i].tls;
		struct client c = { "Alice@Example.TEST", NULL, "correct horse", mc[i].client_cb,
				    t ? t->cb_data : NULL, t ? t->cb_len : 0 };
		struct outcome ok, ok_noir, wrong, unknown, unknown2, disabled;
		int scram = strncmp(mc[i].mech, "SCRAM", 5) == 0;

		ok = run(mc[i].mech, t, 1, &c, 1);
		CHECK(ok.result == SASL_STEP_SUCCESS && strcmp(ok.user, "alice@example.test") == 0,
		      "%s right password: result %d user '%s'", mc[i].mech, ok.result, ok.user);
		ok_noir = run(mc[i].mech, t, 1, &c, 0);
		CHECK(ok_noir.result == SASL_STEP_SUCCESS, "%s without initial response: %d", mc[i].mech, ok_noir.result);

		c.password = "Correct horse";
		wrong = run(mc[i].mech, t, 1, &c, 1);
		c.password = "correct horse";
		c.authcid = "nobody@example.test";
		unknown = run(mc[i].mech, t, 1, &c, 1);
		unknown2 = run(mc[i].mech, t, 1, &c, 1);
		c.authcid = "bob@example.test";
		c.password = "bob's secret";
		disabled = run(mc[i].mech, t, 1, &c, 1);

		CHECK(wrong.result == SASL_STEP_FAILURE, "%s wrong password: %d", mc[i].mech, wrong.result);
		CHECK(unknown.result == SASL_STEP_FAILURE, "%s unknown user: %d", mc[i].mech, unknown.result);
		CHECK(disabled.result == SASL_STEP_FAILURE, "%s disabled user: %d", mc[i].mech, disabled.result);
		CHECK(!wrong.user[0] && !unknown.user[0] && !disabled.user[0], "%s user set on failure", mc[i].mech);
		/* the same challenges, the same number of steps */
		CHECK(strcmp(wrong.challenges, unknown.challenges) == 0 && wrong.steps == unknown.steps,
		      "%s wrong password %s (%d) / unknown user %s (%d)", mc[i].mech, wrong.challenges, wrong.steps,
		      unknown.challenges, unknown.steps);
		CHECK(strcmp(wrong.challenges, disabled.challenges) == 0 && wrong.steps == disabled.steps,
		      "%s wrong password %s / disabled user %s", mc[i].mech, wrong.challenges, disabled.challenges);
		if (scram) {
			CHECK(strcmp(unknown.salt, unknown2.salt) == 0 && unknown.salt[0],
			      "%s fake salt changes: %s %s", mc[i].mech, unknown.salt, unknown2.salt);
			CHECK(strcmp(ok.salt, wrong.salt) == 0, "%s real salt changes", mc[i].mech);
			CHECK(strcmp(ok.salt, unknown.salt) != 0, "%s fake salt is the real one", mc[i].mech);
			CHECK(strcmp(ok.iter, unknown.iter) == 0 && strcmp(ok.iter, disabled.iter) == 0,
			      "%s iteration counts %s %s %s", mc[i].mech, ok.iter, unknown.iter, disabled.iter);
			CHECK(strlen(ok.salt) == strlen(unknown.salt), "%s salt lengths", mc[i].mech);
		} else {
			CHECK(strcmp(ok.challenges, wrong.challenges) == 0, "%s: %s / %s", mc[i].mech, ok.challenges,
			      wrong.challenges);
		}
		/* a case-changed unknown name gets the same fake salt */
		if (scram) {
			c.authcid = "NoBody@example.test";
			struct outcome u3 = run(mc[i].mech, t, 1, &c, 1);
			CHECK(strcmp(u3.salt, unknown.salt) == 0, "%s fake salt depends on case", mc[i].mech);
		}
	}
}

static void test_channel_binding(void)
{
	struct client c = { "alice@example.test", NULL, "correct horse", "tls-exporter", tls13.cb_data, tls13.cb_len };
	struct outcome o;

	/* a different cb_data: another TLS connection (a man in the middle) */
	c.cb = tls13_other.cb_data;
	o = run("SCRAM-SHA-256-PLUS", &tls13, 1, &c, 1);
	CHECK(o.result == SASL_STEP_FAILURE, "SCRAM-SHA-256-PLUS with another cb: %d", o.result);
	o = run("SCRAM-SHA-1-PLUS", &tls13, 1, &c, 1);
	CHECK(o.result == SASL_STEP_FAILURE, "SCRAM-SHA-1-PLUS with another cb: %d", o.result);
	/* the right data under another type than the connection's */
	c.cb = tls13.cb_data;
	c.cb_type = "tls-unique";
	o = run("SCRAM-SHA-256-PLUS", &tls13, 1, &c, 1);
	CHECK(o.result == SASL_STEP_FAILURE, "tls-unique on a tls-exporter connection: %d", o.result);
	/* -PLUS is not offered without cb data */
	c.cb_type = "tls-exporter";
	o = run("SCRAM-SHA-256-PLUS", &tls_nocb, 1, &c, 1);
	CHECK(o.new_r == -ENOENT, "-PLUS on a server without cb: %d", o.new_r);
	o = run("SCRAM-SHA-256-PLUS", NULL, 1, &c, 1);
	CHECK(o.new_r == -ENOENT, "-PLUS without TLS: %d", o.new_r);
	/* downgrade: a client that can bind says "y" to a server that can too
	 * (GNU SASL's client never sends "y" when it has cb data: hand-made) */
	{
		static const char *y[] = { "y,,n=alice@example.test,r=0123456789abcdef" };
		size_t yl[] = { strlen(y[0]) };

		CHECK(feed("SCRAM-SHA-256", &tls13, y, yl, 1) == SASL_STEP_FAILURE, "cbflag y against a cb server");
		CHECK(feed("SCRAM-SHA-256", &tls12, y, yl, 1) == SASL_STEP_FAILURE, "cbflag y against tls-unique");
		/* ... but "y" is fine where the server has none (no -PLUS offered) */
		CHECK(feed("SCRAM-SHA-256", &tls_nocb, y, yl, 1) == SASL_STEP_CONTINUE, "cbflag y, server without cb");
		CHECK(feed("SCRAM-SHA-256", NULL, y, yl, 1) == SASL_STEP_CONTINUE, "cbflag y, no TLS");
	}
}

static void test_authzid(void)
{
	const char *mechs[] = { "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256" };

	for (size_t i = 0; i < ARRAY_SIZE(mechs); i++) {
		struct client c = { "alice@example.test", "bob@example.test", "correct horse", NULL, NULL, 0 };
		struct outcome o = run(mechs[i], NULL, 1, &c, 1);

		CHECK(o.result == SASL_STEP_FAILURE && !o.user[0], "%s authzid bob: %d", mechs[i], o.result);
		c.authzid = "ALICE@example.test";
		o = run(mechs[i], NULL, 1, &c, 1);
		CHECK(o.result == SASL_STEP_SUCCESS && strcmp(o.user, "alice@example.test") == 0,
		      "%s authzid = the user: %d", mechs[i], o.result);
	}
}

static void test_no_scram_secrets(void)
{
	struct client c = { "carol@example.test", NULL, "carol pw", NULL, NULL, 0 };
	struct outcome o;

	o = run("SCRAM-SHA-256", NULL, 1, &c, 1);
	CHECK(o.result == SASL_STEP_FAILURE, "pre-migration user over SCRAM-SHA-256: %d", o.result);
	o = run("SCRAM-SHA-1", NULL, 1, &c, 1);
	CHECK(o.result == SASL_STEP_FAILURE, "pre-migration user over SCRAM-SHA-1: %d", o.result);
	o = run("PLAIN", NULL, 1, &c, 1);
	CHECK(o.result == SASL_STEP_SUCCESS && strcmp(o.user, "carol@example.test") == 0, "over PLAIN: %d", o.result);
	o = run("LOGIN", NULL, 1, &c, 0);
	CHECK(o.result == SASL_STEP_SUCCESS, "over LOGIN: %d", o.result);
}

static void test_utf8_user(void)
{
	struct client c = { "d\xc3\xa9sir\xc3\xa9@example.test", NULL, "p\xc3\xa4ss", NULL, NULL, 0 };
	struct outcome o;

	o = run("SCRAM-SHA-256", NULL, 1, &c, 1);
	CHECK(o.result == SASL_STEP_SUCCESS, "UTF-8 user over SCRAM: %d", o.result);
	o = run("PLAIN", NULL, 1, &c, 1);
	CHECK(o.result == SASL_STEP_SUCCESS, "UTF-8 user over PLAIN: %d", o.result);
}

static void test_tempfail(void)
{
	const char *mechs[] = { "PLAIN", "LOGIN", "SCRAM-SHA-256" };

	tempfail = 1;
	for (size_t i = 0; i < ARRAY_SIZE(mechs); i++) {
		struct client c = { "alice@example.test", NULL, "correct horse", NULL, NULL, 0 };
		struct outcome o = run(mechs[i], NULL, 1, &c, 1);

		CHECK(o.result == SASL_STEP_TEMPFAIL, "%s with the directory down: %d", mechs[i], o.result);
	}
	tempfail = 0;
}

/* Feeds raw responses to a server exchange; returns the last result. */
static int feed(const char *mech, const struct tls_info *t, const char *const *resp, const size_t *lens, size_t n)
{
	struct sasl_exchange *x = NULL;
	const unsigned char *out;
	size_t outlen;
	int r = 99;

	if (sasl_exchange_new(server_ctx, mech, 1, t, &x) < 0)
		return 98;
	for (size_t i = 0; i < n; i++) {
		r = sasl_exchange_step(x, &backend, (const unsigned char *)resp[i], lens[i], &out, &outlen);
		if (r != SASL_STEP_CONTINUE)
			break;
	}
	sasl_exchange_free(&x);
	return r;
}

static void test_malformed(void)
{
	static char big[SASL_RESPONSE_MAX + 2];
	const char *r1[] = { "no nuls here" };
	size_t l1[] = { 12 };
	const char *r2[] = { "x,,n=alice@example.test,r=abc" };
	size_t l2[] = { strlen(r2[0]) };
	const char *r3[] = { "", "", "", "", "", "", "", "" };
	size_t l3[] = { 0, 0, 0, 0, 0, 0, 0, 0 };
	const char *r4[] = { big };
	size_t l4[] = { sizeof(big) - 1 };
	const char *r5[] = { "n,,n=alice@example.test,r=abcdef", "c=biws,r=wrongnonce,p=AAAA" };
	size_t l5[] = { strlen(r5[0]), strlen(r5[1]) };
	const char *r6[] = { "\0alice@example.test\0correct horse\0x" };
	size_t l6[] = { 35 };

	memset(big, 'a', sizeof(big) - 1);
	CHECK(feed("PLAIN", NULL, r1, l1, 1) == SASL_STEP_MALFORMED, "PLAIN without NULs");
	CHECK(feed("SCRAM-SHA-256", NULL, r2, l2, 1) == SASL_STEP_MALFORMED, "bad gs2 header");
	CHECK(feed("PLAIN", NULL, r3, l3, 8) == SASL_STEP_MALFORMED, "empty responses for ever (PLAIN)");
	CHECK(feed("SCRAM-SHA-1", NULL, r3, l3, 8) == SASL_STEP_MALFORMED, "empty responses for ever (SCRAM)");
	CHECK(feed("PLAIN", NULL, r4, l4, 1) == SASL_STEP_MALFORMED, "over-long response");
	CHECK(feed("SCRAM-SHA-256", NULL, r5, l5, 2) < 0, "a nonce that is not ours");
	CHECK(feed("PLAIN", NULL, r6, l6, 1) < 0 && feed("PLAIN", NULL, r6, l6, 1) != SASL_STEP_SUCCESS,
	      "a third NUL");
	/* a right exchange, then a non-empty answer to v= */
	{
		struct client c = { "alice@example.test", NULL, "correct horse", NULL, NULL, 0 };
		struct sasl_exchange *x = NULL;
		Gsasl_session *cs = NULL;
		const unsigned char *out;
		size_t outlen, rl;
		char *resp;
		int r;

		sasl_exchange_new(server_ctx, "SCRAM-SHA-256", 1, NULL, &x);
		gsasl_client_start(client_ctx, "SCRAM-SHA-256", &cs);
		gsasl_session_hook_set(cs, &c);
		gsasl_step(cs, NULL, 0, &resp, &rl);
		r = sasl_exchange_step(x, &backend, (unsigned char *)resp, rl, &out, &outlen);
		gsasl_free(resp);
		gsasl_step(cs, (const char *)out, outlen, &resp, &rl);
		r = sasl_exchange_step(x, &backend, (unsigned char *)resp, rl, &out, &outlen);
		gsasl_free(resp);
		CHECK(r == SASL_STEP_CONTINUE && outlen > 2 && memcmp(out, "v=", 2) == 0, "v= challenge");
		CHECK(!sasl_exchange_user(x)[0], "user before the end");
		r = sasl_exchange_step(x, &backend, (const unsigned char *)"junk", 4, &out, &outlen);
		CHECK(r == SASL_STEP_MALFORMED && !sasl_exchange_user(x)[0], "junk after v=: %d", r);
		sasl_exchange_free(&x);
		gsasl_finish(cs);
	}
}

static void test_secrets(void)
{
	char s[SASL_SCRAM_SECRET_MAX], s2[SASL_SCRAM_SECRET_MAX];

	CHECK(sasl_scram_secret_make(SASL_SCRAM_SHA256, "pw", s, sizeof(s)) == 0, "make");
	CHECK(strncmp(s, "SCRAM-SHA-256$10000:", 20) == 0, "format: %s", s);
	CHECK(sasl_scram_secret_check(SASL_SCRAM_SHA256, s) == 0, "check: %s", s);
	CHECK(sasl_scram_secret_check(SASL_SCRAM_SHA1, s) == -EINVAL, "wrong hash accepted");
	CHECK(sasl_scram_secret_make(SASL_SCRAM_SHA256, "pw", s2, sizeof(s2)) == 0 && strcmp(s, s2) != 0,
	      "two secrets of one password are the same (salt not random)");
	CHECK(sasl_scram_secret_make(SASL_SCRAM_SHA1, "pw", s, sizeof(s)) == 0 &&
	      strncmp(s, "SCRAM-SHA-1$4096:", 17) == 0 && sasl_scram_secret_check(SASL_SCRAM_SHA1, s) == 0,
	      "sha1: %s", s);
	CHECK(sasl_scram_secret_make(SASL_SCRAM_SHA1, "pw", s, 40) == -ENOBUFS, "short buffer");
	static const char *bad[] = {
		"", "SCRAM-SHA-1", "SCRAM-SHA-1$", "SCRAM-SHA-1$0:AAAA$AAAA:AAAA", "SCRAM-SHA-1$4096:$x:y",
		"SCRAM-SHA-1$4096:QUFB$AAAAAAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAAAAAAAA==",  /* 19-octet keys */
		"SCRAM-SHA-1$4096:QUFB$AAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAA=x",
		"SCRAM-SHA-1$99999999999:QUFB$AAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SCRAM-SHA-1$-1:QUFB$x:y",
	};
	CHECK(sasl_scram_secret_check(SASL_SCRAM_SHA1,
				      "SCRAM-SHA-1$4096:QUFB$AAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAA=") == 0,
	      "a well-formed secret refused");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK(sasl_scram_secret_check(SASL_SCRAM_SHA1, bad[i]) == -EINVAL, "bad secret accepted: %s", bad[i]);
	CHECK(sasl_password_check("plain ascii pw") == 0, "ascii");
	CHECK(sasl_password_check("p\xc3\xa4ss") == 0, "NFC UTF-8");
	CHECK(sasl_password_check("a\x01z") == -EINVAL, "control character");
	CHECK(sasl_password_check("a\xc2\xa0z") == -EINVAL, "non-ASCII space");
	CHECK(sasl_password_check("pa\xcc\x88ss") == -EINVAL, "decomposed umlaut");
}

int main(void)
{
	setup_tls();
	if (sasl_ctx_new(NULL, 0, &server_ctx) < 0 || gsasl_init(&client_ctx) != GSASL_OK) {
		fprintf(stderr, "FAIL cannot start GNU SASL\n");
		return 1;
	}
	gsasl_callback_set(client_ctx, client_cb);
	for (size_t i = 0; i < ARRAY_SIZE(users); i++) {
		if (sasl_scram_secret_make(SASL_SCRAM_SHA1, users[i].password, users[i].s1, sizeof(users[i].s1)) < 0 ||
		    sasl_scram_secret_make(SASL_SCRAM_SHA256, users[i].password, users[i].s256,
					   sizeof(users[i].s256)) < 0) {
			fprintf(stderr, "FAIL sasl_scram_secret_make\n");
			return 1;
		}
	}
	test_mechs();
	test_credentials();
	test_channel_binding();
	test_authzid();
	test_no_scram_secrets();
	test_utf8_user();
	test_tempfail();
	test_malformed();
	test_secrets();
	gsasl_done(client_ctx);
	sasl_ctx_free(&server_ctx);
	CHECK(server_ctx == NULL, "ctx not cleared");
	if (failures) {
		fprintf(stderr, "test-sasl-gsasl: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test-sasl-gsasl: all checks passed\n");
	return 0;
}
