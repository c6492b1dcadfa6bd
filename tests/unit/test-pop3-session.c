/*
 * Unit tests of the POP3 session state machine (pop3/pop3-session.c).
 *
 * Table-driven: every case runs with its input fed all at once and one byte
 * at a time, with a synchronous io (requests answered from inside the call)
 * and an asynchronous one (requests answered later, from the test's loop,
 * which feeds held input again only when the session asks with io->resume,
 * as lib/net.c does), and with message read blocks of 1, 3, 7 and 65536
 * octets. The output must be the same, byte for byte, every time.
 *
 * The expected wire forms were written by hand from RFC 1939 (CRLF line
 * ends, dot-stuffing, "." terminator); a property test then compares RETR
 * of random messages with a simple line-based reference and checks that the
 * octets after unstuffing equal the LIST size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "pop3/pop3-session.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

/* ---- the fake maildrop ---- */

struct fmsg {
	uint32_t uid;
	const char *data;
	size_t len;
};

#define M(uid, s) { uid, s, sizeof(s) - 1 }

static const struct fmsg box[] = {
	M(3, "Subject: one\n\nHello\n.dot line\n..two dots\n"),
	M(7, "Subject: two\r\nX: y\r\n\r\nCRLF body\r\n.\r\n"),
	M(8, "Subject: three\n\nno final newline"),
	M(20, ""),
	M(21, ".starts: dot\n\nbody1\nbody2\nbody3\n"),
	M(4000000000u, "A: b\n\n\r\n.\n\rx\r\r\nlast\n"),
};
#define UIDVALIDITY 1764355201u

/* vsize: a LF without CR counts two */
static uint64_t vsize(const char *p, size_t n)
{
	uint64_t v = n;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			v++;
	return v;
}

enum fake_flags {
	F_VANISH2 = 1 << 0,      /* reading message 2 gives -ENOENT */
	F_READ_EIO3 = 1 << 1,    /* reading message 3 gives -EIO at once */
	F_UPDATE_FAIL = 1 << 2,  /* UPDATE removes one message, then fails */
};

enum q { Q_NONE, Q_AUTH, Q_SASL, Q_OPEN, Q_READ, Q_UPDATE, Q_DRAIN };

struct fake {
	struct pop3_session *s;
	int async;
	unsigned flags;
	const struct fmsg *msgs;
	size_t n_msgs;
	/* output */
	char *out;
	size_t out_len, out_cap, max_write;
	size_t len_at_close;
	int closed;
	int writes_after_close;
	unsigned timeout;
	unsigned n_arms;            /* set_timeout calls */
	/* input held like lib/net.c holds it */
	char *in;
	size_t in_len;
	int resume;
	/* requests */
	enum q q;
	void *qreq;
	unsigned n_reads, n_drains, n_auths, n_opens;
	char removed[256];
	int update_called;
	const char *last_password;  /* the session's memory, to check the wipe */
	size_t last_password_len;
	int wipe_failures;
	/* STLS: what the glue does after io->start_tls: drop the input it
	 * holds and what arrives before the handshake is done */
	int tls_wanted;
	int n_start_tls;
	char dropped[512];
	size_t dropped_len;
	/* AUTH: the fake glue's mechanisms (SCRAM-SHA-256, and PLAIN where
	 * plaintext is allowed: under TLS, or plain_in_clear) */
	int tls_active;
	int plain_in_clear;
	unsigned n_sasl_steps, n_sasl_first, n_sasl_end;
	int sasl_open;              /* an exchange reached auth_step, auth_end not yet */
	int scram_stage;            /* 0: client-first expected, 1: client-final, 2: empty after v= */
	char sasl_mech[32];
	char mechs[64];
};

static void io_write(void *ctx, const char *data, size_t len)
{
	struct fake *f = ctx;

	if (f->closed)
		f->writes_after_close++;
	if (f->out_len + len + 1 > f->out_cap) {
		f->out_cap = (f->out_len + len + 1) * 2;
		f->out = realloc(f->out, f->out_cap);
	}
	memcpy(f->out + f->out_len, data, len);
	f->out_len += len;
	f->out[f->out_len] = '\0';
	if (len > f->max_write)
		f->max_write = len;
}

static void io_close(void *ctx, const char *reason)
{
	struct fake *f = ctx;

	(void)reason;
	if (!f->closed)
		f->len_at_close = f->out_len;
	f->closed = 1;
}

static void io_set_timeout(void *ctx, unsigned seconds)
{
	struct fake *f = ctx;

	f->timeout = seconds;
	f->n_arms++;
}

static void answer_auth(struct fake *f, struct pop3_auth_req *req)
{
	static const char *const good[] = { "alice@example.test", "locked@example.test", "nobox@example.test",
					    "broken@example.test" };

	req->result = -EACCES;
	if (strcasecmp(req->user, "temp@example.test") == 0) {
		req->result = -EIO;
	} else if (strcmp(req->password, "secret") == 0) {
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			if (strcasecmp(req->user, good[i]) == 0) {
				req->result = 0;
				snprintf(req->canonical, sizeof(req->canonical), "%s", good[i]);
			}
		}
	}
	pop3_session_auth_done(f->s, req);
	/* the password, in the session's memory, is wiped once checked */
	for (size_t i = 0; i < f->last_password_len; i++) {
		if (f->last_password[i]) {
			f->wipe_failures++;
			break;
		}
	}
}

/* The fake mechanisms. PLAIN: "authzid NUL authcid NUL password" checked as
 * answer_auth() does (an authzid naming anyone else fails, as GNU SASL's
 * does). SCRAM-SHA-256: a scripted exchange, see the table. */
static const char *const good_users[] = { "alice@example.test", "locked@example.test", "nobox@example.test",
					  "broken@example.test" };

static void fake_plain(struct auth_step *st)
{
	const unsigned char *p = st->in, *z1, *z2;
	char authzid[64] = "", authcid[64] = "", pass[64] = "";
	size_t n = st->in_len;

	if (st->in_absent) {
		st->status = AUTH_CONTINUE;
		return;
	}
	z1 = memchr(p, '\0', n);
	z2 = z1 ? memchr(z1 + 1, '\0', n - (size_t)(z1 + 1 - p)) : NULL;
	if (!z1 || !z2 || z2 == z1 + 1 || (size_t)(z1 - p) >= sizeof(authzid) ||
	    (size_t)(z2 - z1 - 1) >= sizeof(authcid) || (size_t)(p + n - z2 - 1) >= sizeof(pass) ||
	    memchr(z2 + 1, '\0', (size_t)(p + n - z2 - 1))) {
		st->status = AUTH_MALFORMED;
		return;
	}
	memcpy(authzid, p, (size_t)(z1 - p));
	memcpy(authcid, z1 + 1, (size_t)(z2 - z1 - 1));
	memcpy(pass, z2 + 1, (size_t)(p + n - z2 - 1));
	st->status = AUTH_FAILED;
	snprintf(st->user, sizeof(st->user), "%s", authcid);
	if (strcasecmp(authcid, "temp@example.test") == 0) {
		st->status = AUTH_TEMPFAIL;
		return;
	}
	if (strcmp(pass, "secret") != 0 || (authzid[0] && strcasecmp(authzid, authcid) != 0))
		return;
	for (size_t i = 0; i < sizeof(good_users) / sizeof(good_users[0]); i++) {
		if (strcasecmp(authcid, good_users[i]) == 0) {
			st->status = AUTH_OK;
			snprintf(st->user, sizeof(st->user), "%s", good_users[i]);
		}
	}
}

static int in_is(const struct auth_step *st, const char *want)
{
	return !st->in_absent && st->in_len == strlen(want) && memcmp(st->in, want, st->in_len) == 0;
}

static void set_out(struct auth_step *st, const char *out)
{
	st->out_len = strlen(out);
	st->out = malloc(st->out_len ? st->out_len : 1);
	memcpy(st->out, out, st->out_len);
}

static void fake_scram(struct fake *f, struct auth_step *st)
{
	st->status = AUTH_MALFORMED;
	if (st->first)
		f->scram_stage = 0;
	if (st->first && st->in_absent) {
		st->status = AUTH_CONTINUE;  /* an empty challenge: send client-first */
		return;
	}
	switch (f->scram_stage) {
	case 0:
		if (in_is(st, "n,,n=temp@example.test,r=abc")) {
			st->status = AUTH_TEMPFAIL;
		} else if (in_is(st, "n,,n=alice@example.test,r=abc") || in_is(st, "n,,n=nobody@example.test,r=abc")) {
			st->status = AUTH_CONTINUE;
			set_out(st, "r=abcdef,s=c2FsdA==,i=4096");
			f->scram_stage = in_is(st, "n,,n=alice@example.test,r=abc") ? 1 : 3;
		}
		break;
	case 1:
	case 3:
		if (in_is(st, "c=biws,r=abcdef,p=good") && f->scram_stage == 1) {
			st->status = AUTH_CONTINUE;
			set_out(st, "v=sig");
			f->scram_stage = 2;
		} else if (in_is(st, "c=biws,r=abcdef,p=bad") || in_is(st, "c=biws,r=abcdef,p=good")) {
			st->status = AUTH_FAILED;
			snprintf(st->user, sizeof(st->user), "%s",
				 f->scram_stage == 1 ? "alice@example.test" : "nobody@example.test");
		}
		break;
	case 2:
		if (in_is(st, "")) {
			st->status = AUTH_OK;
			snprintf(st->user, sizeof(st->user), "alice@example.test");
		}
		break;
	}
}

static void answer_sasl(struct fake *f, struct auth_step *st)
{
	if (strcmp(st->mech, "PLAIN") == 0)
		fake_plain(st);
	else
		fake_scram(f, st);
	pop3_session_sasl_done(f->s, st);
}

static void answer_open(struct fake *f, struct pop3_open_req *req)
{
	if (strcmp(req->user, "locked@example.test") == 0) {
		req->result = -EBUSY;
	} else if (strcmp(req->user, "nobox@example.test") == 0) {
		req->result = -ENOENT;
	} else if (strcmp(req->user, "broken@example.test") == 0) {
		req->result = -EIO;
	} else {
		req->result = 0;
		req->uidvalidity = UIDVALIDITY;
		req->n_msgs = f->n_msgs;
		req->msgs = calloc(f->n_msgs ? f->n_msgs : 1, sizeof(*req->msgs));
		for (size_t i = 0; i < f->n_msgs; i++) {
			req->msgs[i].uid = f->msgs[i].uid;
			req->msgs[i].size = vsize(f->msgs[i].data, f->msgs[i].len);
		}
	}
	pop3_session_open_done(f->s, req);
}

static void answer_read(struct fake *f, struct pop3_read_req *req)
{
	const struct fmsg *m = &f->msgs[req->msg];

	f->n_reads++;
	if (req->msg >= f->n_msgs) {
		req->result = -EINVAL;
	} else if ((f->flags & F_VANISH2) && req->msg == 1) {
		req->result = -ENOENT;
	} else if ((f->flags & F_READ_EIO3) && req->msg == 2) {
		req->result = -EIO;
	} else if (req->offset >= m->len) {
		req->result = 0;
	} else {
		size_t n = m->len - (size_t)req->offset;
		if (n > req->cap)
			n = req->cap;
		memcpy(req->buf, m->data + req->offset, n);
		req->result = (ssize_t)n;
	}
	pop3_session_read_done(f->s, req);
}

static void answer_update(struct fake *f, struct pop3_update_req *req)
{
	size_t k;

	f->update_called = 1;
	f->removed[0] = '\0';
	req->result = 0;
	for (k = 0; k < req->n; k++) {
		if ((f->flags & F_UPDATE_FAIL) && k == 1) {
			req->result = -EIO;
			break;
		}
		snprintf(f->removed + strlen(f->removed), sizeof(f->removed) - strlen(f->removed), "%s%u",
			 k ? "," : "", (unsigned)req->uids[k]);
	}
	req->done = k;
	pop3_session_update_done(f->s, req);
}

static void answer(struct fake *f)
{
	enum q q = f->q;
	void *req = f->qreq;

	f->q = Q_NONE;
	f->qreq = NULL;
	switch (q) {
	case Q_AUTH: answer_auth(f, req); break;
	case Q_SASL: answer_sasl(f, req); break;
	case Q_OPEN: answer_open(f, req); break;
	case Q_READ: answer_read(f, req); break;
	case Q_UPDATE: answer_update(f, req); break;
	case Q_DRAIN: pop3_session_drained(f->s); break;
	case Q_NONE: break;
	}
}

static void enqueue(struct fake *f, enum q q, void *req)
{
	if (f->q != Q_NONE) {
		fprintf(stderr, "two requests in flight at once\n");
		failures++;
	}
	f->q = q;
	f->qreq = req;
	if (!f->async)
		answer(f);
}

static void io_auth(void *ctx, struct pop3_auth_req *req)
{
	struct fake *f = ctx;

	f->n_auths++;
	f->last_password = req->password;
	f->last_password_len = strlen(req->password);
	enqueue(f, Q_AUTH, req);
}

static const char *io_auth_mechs(void *ctx)
{
	struct fake *f = ctx;

	snprintf(f->mechs, sizeof(f->mechs), "SCRAM-SHA-256%s", f->tls_active || f->plain_in_clear ? " PLAIN" : "");
	return f->mechs;
}

static void io_auth_step(void *ctx, struct auth_step *st)
{
	struct fake *f = ctx;

	f->n_sasl_steps++;
	if (st->first) {
		if (f->sasl_open) {
			fprintf(stderr, "a new exchange without auth_end\n");
			failures++;
		}
		f->n_sasl_first++;
		f->sasl_open = 1;
		snprintf(f->sasl_mech, sizeof(f->sasl_mech), "%s", st->mech);
	} else if (!f->sasl_open || strcmp(f->sasl_mech, st->mech) != 0) {
		fprintf(stderr, "a step outside an exchange\n");
		failures++;
	}
	enqueue(f, Q_SASL, st);
}

static void io_auth_end(void *ctx)
{
	struct fake *f = ctx;

	if (!f->sasl_open || f->q == Q_SASL) {
		fprintf(stderr, "auth_end without an exchange or with a step in flight\n");
		failures++;
	}
	f->sasl_open = 0;
	f->n_sasl_end++;
}

static void io_open(void *ctx, struct pop3_open_req *req)
{
	struct fake *f = ctx;

	f->n_opens++;
	enqueue(f, Q_OPEN, req);
}

static void io_read(void *ctx, struct pop3_read_req *req)
{
	enqueue(ctx, Q_READ, req);
}

static void io_update(void *ctx, struct pop3_update_req *req)
{
	enqueue(ctx, Q_UPDATE, req);
}

static void io_drain(void *ctx)
{
	struct fake *f = ctx;

	f->n_drains++;
	enqueue(f, Q_DRAIN, NULL);
}

static void io_resume(void *ctx)
{
	struct fake *f = ctx;

	f->resume = 1;
}

static void io_start_tls(void *ctx)
{
	static const char ready[] = "+OK Begin TLS negotiation\r\n";
	struct fake *f = ctx;

	if (f->tls_wanted || f->out_len < sizeof(ready) - 1 ||
	    memcmp(f->out + f->out_len - (sizeof(ready) - 1), ready, sizeof(ready) - 1) != 0) {
		fprintf(stderr, "start_tls twice or before the +OK\n");
		failures++;
	}
	f->tls_wanted = 1;
	f->n_start_tls++;
}

static const struct pop3_io fake_io = {
	.start_tls = io_start_tls,
	.write = io_write,
	.close = io_close,
	.set_timeout = io_set_timeout,
	.auth = io_auth,
	.open = io_open,
	.read = io_read,
	.update = io_update,
	.drain = io_drain,
	.resume = io_resume,
	.auth_mechs = io_auth_mechs,
	.auth_step = io_auth_step,
	.auth_end = io_auth_end,
};

/* What lib/net.c does with held input: pass it until nothing is consumed. */
static void net_feed(struct fake *f)
{
	while (f->in_len && !f->closed) {
		size_t used;

		if (f->tls_wanted) {
			/* the handshake runs: the session takes nothing, the glue
			 * throws the clear text away */
			used = pop3_session_input(f->s, f->in, f->in_len);
			if (used != 0) {
				fprintf(stderr, "session consumed %zu octets while waiting for TLS\n", used);
				failures++;
			}
			if (f->dropped_len + f->in_len < sizeof(f->dropped)) {
				memcpy(f->dropped + f->dropped_len, f->in, f->in_len);
				f->dropped_len += f->in_len;
			}
			f->in_len = 0;
			break;
		}
		used = pop3_session_input(f->s, f->in, f->in_len);
		if (used > f->in_len) {
			fprintf(stderr, "session consumed more than it was given\n");
			failures++;
			used = f->in_len;
		}
		if (used == 0)
			break;
		memmove(f->in, f->in + used, f->in_len - used);
		f->in_len -= used;
	}
}

static const struct tls_info test_tls = { .version = "TLS1.3", .cipher = "TLS_AES_256_GCM_SHA384" };

/* The handshake is done. */
static void tls_done(struct fake *f)
{
	net_feed(f);
	f->tls_wanted = 0;
	f->tls_active = 1;
	pop3_session_tls_started(f->s, &test_tls);
}

/* Bytes arrive from the client. */
static void arrive(struct fake *f, const char *data, size_t len)
{
	f->in = realloc(f->in, f->in_len + len + 1);
	memcpy(f->in + f->in_len, data, len);
	f->in_len += len;
	net_feed(f);
}

/* Runs the async requests and resumes until nothing moves. */
static void settle(struct fake *f)
{
	for (;;) {
		if (f->q != Q_NONE) {
			answer(f);
			continue;
		}
		if (f->resume) {
			f->resume = 0;
			net_feed(f);
			continue;
		}
		break;
	}
}

static void fake_start_plain(struct fake *f, const struct pop3_config *cfg, size_t block, int async, unsigned flags,
			     enum tls_mode mode, int tls, int plain_in_clear)
{
	struct pop3_session_params p = {
		.cfg = cfg,
		.hostname = "pop.example.test",
		.sid = "0123456789ab",
		.client_addr = "192.0.2.1",
		.read_block = block,
		.tls_mode = mode,
		.tls = tls ? &test_tls : NULL,
		.plaintext_in_clear = plain_in_clear,
	};

	memset(f, 0, sizeof(*f));
	f->tls_active = tls;
	f->plain_in_clear = plain_in_clear;
	f->async = async;
	f->flags = flags;
	f->msgs = box;
	f->n_msgs = sizeof(box) / sizeof(box[0]);
	f->s = pop3_session_new(&p, &fake_io, f);
}

static void fake_start_tls(struct fake *f, const struct pop3_config *cfg, size_t block, int async, unsigned flags,
			   enum tls_mode mode, int tls)
{
	fake_start_plain(f, cfg, block, async, flags, mode, tls, 1);
}

static void fake_start(struct fake *f, const struct pop3_config *cfg, size_t block, int async, unsigned flags)
{
	fake_start_tls(f, cfg, block, async, flags, TLS_MODE_NONE, 0);
}

static void fake_end(struct fake *f)
{
	settle(f);
	pop3_session_disconnected(f->s);
	if (pop3_session_busy(f->s)) {
		fprintf(stderr, "session busy at the end\n");
		failures++;
		settle(f);
	}
	pop3_session_free(&f->s);
	/* every exchange that reached the glue was ended, once */
	if (f->sasl_open || f->n_sasl_first != f->n_sasl_end) {
		fprintf(stderr, "auth_end: %u exchanges, %u ends\n", f->n_sasl_first, f->n_sasl_end);
		failures++;
	}
	free(f->out);
	free(f->in);
}

/* ---- the table ---- */

#define GREET "+OK pop.example.test POP3 server ready\r\n"
#define LOGIN "USER alice@example.test\r\nPASS secret\r\n"
#define LOGGED_IN "+OK Send your password\r\n+OK Logged in, 6 messages (177 octets)\r\n"
#define BYE "+OK pop.example.test POP3 server signing off\r\n"
#define AUTH_FAILED "-ERR [AUTH] Authentication failed\r\n"
#define CAPA_AUTH "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n" \
	"PIPELINING\r\nSASL SCRAM-SHA-256 PLAIN\r\nIMPLEMENTATION buzon\r\n.\r\n"
#define CAPA_TRANS "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n" \
	"PIPELINING\r\nIMPLEMENTATION buzon\r\n.\r\n"
/* base64 of "\0alice@example.test\0secret" and variants */
#define PLAIN_ALICE "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="
#define PLAIN_ALICE_AS_BOB "Ym9iQGV4YW1wbGUudGVzdABhbGljZUBleGFtcGxlLnRlc3QAc2VjcmV0"
#define PLAIN_ALICE_AS_ALICE "YWxpY2VAZXhhbXBsZS50ZXN0AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="
#define PLAIN_ALICE_WRONG "AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw=="

#define CAPA_STLS "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n" \
	"PIPELINING\r\nSTLS\r\nSASL SCRAM-SHA-256 PLAIN\r\nIMPLEMENTATION buzon\r\n.\r\n"
#define CAPA_REQUIRED "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n" \
	"PIPELINING\r\nSTLS\r\nIMPLEMENTATION buzon\r\n.\r\n"
#define STLS_OK "+OK Begin TLS negotiation\r\n"
#define NOT_BEFORE_STLS "-ERR Command not permitted before STLS\r\n"
#define TLS_ACTIVE "-ERR Command not permitted when TLS active\r\n"

/* the fake SCRAM-SHA-256 exchange (answer_sasl()) in base64 */
#define SCRAM_FIRST "biwsbj1hbGljZUBleGFtcGxlLnRlc3Qscj1hYmM="      /* n,,n=alice@example.test,r=abc */
#define SCRAM_NOBODY "biwsbj1ub2JvZHlAZXhhbXBsZS50ZXN0LHI9YWJj"     /* n,,n=nobody@example.test,r=abc */
#define SCRAM_TEMP "biwsbj10ZW1wQGV4YW1wbGUudGVzdCxyPWFiYw=="       /* n,,n=temp@example.test,r=abc */
#define SCRAM_GOOD "Yz1iaXdzLHI9YWJjZGVmLHA9Z29vZA=="               /* c=biws,r=abcdef,p=good */
#define SCRAM_BAD "Yz1iaXdzLHI9YWJjZGVmLHA9YmFk"                    /* c=biws,r=abcdef,p=bad */
#define SCRAM_SF "+ cj1hYmNkZWYscz1jMkZzZEE9PSxpPTQwOTY=\r\n"        /* r=abcdef,s=c2FsdA==,i=4096 */
#define SCRAM_V "+ dj1zaWc=\r\n"                                     /* v=sig */
#define SASL_IN "+OK Logged in, 6 messages (177 octets)\r\n"
#define CANCELLED "-ERR Authentication cancelled\r\n"
#define MALFORMED "-ERR Malformed SASL response\r\n"
#define PLAIN_REFUSED "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections\r\n"
#define CAPA_NOPLAIN "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n" \
	"PIPELINING\r\nSASL SCRAM-SHA-256\r\nIMPLEMENTATION buzon\r\n.\r\n"
#define CAPA_NOPLAIN_STLS "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n" \
	"PIPELINING\r\nSTLS\r\nSASL SCRAM-SHA-256\r\nIMPLEMENTATION buzon\r\n.\r\n"

#define RETR1 "+OK 46 octets\r\nSubject: one\r\n\r\nHello\r\n..dot line\r\n...two dots\r\n.\r\n"
#define RETR2 "+OK 36 octets\r\nSubject: two\r\nX: y\r\n\r\nCRLF body\r\n..\r\n.\r\n"
#define RETR3 "+OK 34 octets\r\nSubject: three\r\n\r\nno final newline\r\n.\r\n"
#define RETR4 "+OK 0 octets\r\n.\r\n"
#define RETR5 "+OK 37 octets\r\n..starts: dot\r\n\r\nbody1\r\nbody2\r\nbody3\r\n.\r\n"
#define RETR6 "+OK 24 octets\r\nA: b\r\n\r\n\r\n..\r\n\rx\r\r\nlast\r\n.\r\n"
#define TOP "+OK Top of message follows\r\n"

struct tcase {
	const char *name;
	const char *input;
	const char *output;
	int closed;              /* the session closed the connection */
	const char *removed;     /* UIDs removed by UPDATE ("" for QUIT with none), NULL: no UPDATE */
	unsigned flags;
	unsigned max_commands, max_bad, max_line, max_auth;
	/* STLS: the listener's mode; input_tls is sent after the handshake;
	 * dropped is what the glue threw away for it (all the input after the
	 * STLS line) */
	enum tls_mode mode;
	const char *input_tls;
	const char *dropped;
	int starttls;            /* start_tls calls expected */
	int tls;                 /* encrypted from the start (implicit TLS) */
	int no_plain;            /* allow_plaintext_auth refuses plaintext in clear for this client */
};

/* name, input, output, then the expectations and limits as designated fields */
#define CASE(n, i, o, ...) { .name = n, .input = i, .output = o, __VA_ARGS__ }

static const struct tcase cases[] = {
	CASE("greeting and quit", "QUIT\r\n", GREET BYE, .closed = 1),
	CASE("lower case, bare LF", "quit\n", GREET BYE, .closed = 1),
	CASE("capa before login", "CAPA\r\nQUIT\r\n", GREET CAPA_AUTH BYE, .closed = 1),
	CASE("capa after login", LOGIN "CAPA\r\nQUIT\r\n", GREET LOGGED_IN CAPA_TRANS BYE, .closed = 1, .removed = ""),
	CASE("stat list uidl",
	     LOGIN "STAT\r\nLIST\r\nUIDL\r\nQUIT\r\n",
	     GREET LOGGED_IN "+OK 6 177\r\n"
	     "+OK 6 messages (177 octets)\r\n1 46\r\n2 36\r\n3 34\r\n4 0\r\n5 37\r\n6 24\r\n.\r\n"
	     "+OK Unique-ID listing follows\r\n1 1764355201-3\r\n2 1764355201-7\r\n3 1764355201-8\r\n"
	     "4 1764355201-20\r\n5 1764355201-21\r\n6 1764355201-4000000000\r\n.\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("list and uidl of one",
	     LOGIN "LIST 2\r\nUIDL 6\r\nLIST 0006\r\nQUIT\r\n",
	     GREET LOGGED_IN "+OK 2 36\r\n+OK 6 1764355201-4000000000\r\n+OK 6 24\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("list and uidl bad arguments",
	     LOGIN "LIST 0\r\nLIST 7\r\nLIST x\r\nLIST 1 2\r\nLIST -1\r\nLIST +1\r\nUIDL 99999999999999999999999\r\n"
	     "UIDL 1x\r\nSTAT 1\r\nNOOP x\r\nRSET x\r\nQUIT x\r\nQUIT\r\n",
	     GREET LOGGED_IN "-ERR No such message\r\n-ERR No such message\r\n-ERR Invalid message number\r\n"
	     "-ERR Syntax: LIST [msg]\r\n-ERR Invalid message number\r\n-ERR Invalid message number\r\n"
	     "-ERR No such message\r\n-ERR Invalid message number\r\n-ERR Syntax: STAT\r\n-ERR Syntax: NOOP\r\n"
	     "-ERR Syntax: RSET\r\n-ERR Syntax: QUIT\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("retr every message",
	     LOGIN "RETR 1\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\nRETR 5\r\nRETR 6\r\nRETR 1\r\nQUIT\r\n",
	     GREET LOGGED_IN RETR1 RETR2 RETR3 RETR4 RETR5 RETR6 RETR1 BYE,
	     .closed = 1, .removed = ""),
	CASE("retr bad arguments",
	     LOGIN "RETR\r\nRETR 0\r\nRETR 7\r\nRETR 1 2\r\nRETR one\r\nQUIT\r\n",
	     GREET LOGGED_IN "-ERR Syntax: RETR msg\r\n-ERR No such message\r\n-ERR No such message\r\n"
	     "-ERR Syntax: RETR msg\r\n-ERR Invalid message number\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("top",
	     LOGIN "TOP 1 0\r\nTOP 5 2\r\nTOP 3 10\r\nTOP 2 1\r\nTOP 4 0\r\nTOP 6 1\r\nTOP 1 99999999999999999999\r\n"
	     "QUIT\r\n",
	     GREET LOGGED_IN TOP "Subject: one\r\n\r\n.\r\n"
	     TOP "..starts: dot\r\n\r\nbody1\r\nbody2\r\n.\r\n"
	     TOP "Subject: three\r\n\r\nno final newline\r\n.\r\n"
	     TOP "Subject: two\r\nX: y\r\n\r\nCRLF body\r\n.\r\n"
	     TOP ".\r\n"
	     TOP "A: b\r\n\r\n\r\n.\r\n"
	     TOP "Subject: one\r\n\r\nHello\r\n..dot line\r\n...two dots\r\n.\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("top bad arguments",
	     LOGIN "TOP\r\nTOP 1\r\nTOP 1 x\r\nTOP 1 -1\r\nTOP 0 1\r\nTOP 9 1\r\nTOP 1 1 1\r\nQUIT\r\n",
	     GREET LOGGED_IN "-ERR Syntax: TOP msg lines\r\n-ERR Syntax: TOP msg lines\r\n-ERR Syntax: TOP msg lines\r\n"
	     "-ERR Syntax: TOP msg lines\r\n-ERR No such message\r\n-ERR No such message\r\n"
	     "-ERR Syntax: TOP msg lines\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("dele and update",
	     LOGIN "DELE 2\r\nDELE 3\r\nSTAT\r\nLIST\r\nRETR 2\r\nDELE 2\r\nLIST 3\r\nUIDL 2\r\nTOP 3 0\r\nQUIT\r\n",
	     GREET LOGGED_IN "+OK Message 2 deleted\r\n+OK Message 3 deleted\r\n+OK 4 107\r\n"
	     "+OK 4 messages (107 octets)\r\n1 46\r\n4 0\r\n5 37\r\n6 24\r\n.\r\n"
	     "-ERR Message 2 already deleted\r\n-ERR Message 2 already deleted\r\n-ERR Message 3 already deleted\r\n"
	     "-ERR Message 2 already deleted\r\n-ERR Message 3 already deleted\r\n"
	     "+OK pop.example.test POP3 server signing off (2 messages deleted)\r\n",
	     .closed = 1, .removed = "7,8"),
	CASE("rset unmarks",
	     LOGIN "DELE 1\r\nDELE 6\r\nRSET\r\nSTAT\r\nDELE 4\r\nQUIT\r\n",
	     GREET LOGGED_IN "+OK Message 1 deleted\r\n+OK Message 6 deleted\r\n+OK 6 messages (177 octets)\r\n"
	     "+OK 6 177\r\n+OK Message 4 deleted\r\n"
	     "+OK pop.example.test POP3 server signing off (1 messages deleted)\r\n",
	     .closed = 1, .removed = "20"),
	CASE("update fails partway",
	     LOGIN "DELE 1\r\nDELE 2\r\nDELE 3\r\nQUIT\r\n",
	     GREET LOGGED_IN "+OK Message 1 deleted\r\n+OK Message 2 deleted\r\n+OK Message 3 deleted\r\n"
	     "-ERR [SYS/TEMP] Some deleted messages not removed (1 of 3 removed)\r\n",
	     .closed = 1, .removed = "3", .flags = F_UPDATE_FAIL),
	CASE("no update without quit",
	     LOGIN "DELE 1\r\nDELE 2\r\n",
	     GREET LOGGED_IN "+OK Message 1 deleted\r\n+OK Message 2 deleted\r\n"),
	CASE("quit without deletions removes nothing",
	     LOGIN "RETR 4\r\nQUIT\r\n", GREET LOGGED_IN RETR4 BYE, .closed = 1, .removed = ""),
	CASE("wrong password and unknown user look the same",
	     "USER alice@example.test\r\nPASS wrong\r\nUSER nobody@example.test\r\nPASS secret\r\n" LOGIN "STAT\r\nQUIT\r\n",
	     GREET "+OK Send your password\r\n" AUTH_FAILED "+OK Send your password\r\n" AUTH_FAILED LOGGED_IN
	     "+OK 6 177\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("too many login failures close",
	     "USER a\r\nPASS b\r\nUSER a\r\nPASS b\r\nUSER a\r\nPASS b\r\nUSER a\r\nPASS b\r\n",
	     GREET "+OK Send your password\r\n" AUTH_FAILED "+OK Send your password\r\n" AUTH_FAILED
	     "+OK Send your password\r\n" AUTH_FAILED,
	     .closed = 1),
	CASE("password with spaces",
	     "USER alice@example.test\r\nPASS  secret\r\nUSER alice@example.test\r\nPASS secret \r\nQUIT\r\n",
	     GREET "+OK Send your password\r\n" AUTH_FAILED "+OK Send your password\r\n" AUTH_FAILED BYE,
	     .closed = 1),
	CASE("user name case does not matter to the directory",
	     "USER ALICE@Example.TEST\r\nPASS secret\r\nQUIT\r\n", GREET LOGGED_IN BYE, .closed = 1, .removed = ""),
	CASE("authorization state errors",
	     "PASS secret\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nNOOP\r\nRSET\r\nTOP 1 1\r\nUIDL\r\nUSER\r\nUSER a b\r\n"
	     "APOP alice@example.test 0123456789abcdef0123456789abcdef\r\nSTLS\r\nXYZZY\r\n\r\n QUIT\r\nQUIT\r\n",
	     GREET "-ERR Send USER first\r\n-ERR Log in first\r\n-ERR Log in first\r\n-ERR Log in first\r\n"
	     "-ERR Log in first\r\n-ERR Log in first\r\n-ERR Log in first\r\n-ERR Log in first\r\n-ERR Log in first\r\n"
	     "-ERR Syntax: USER name\r\n-ERR Syntax: USER name\r\n-ERR Unknown command\r\n-ERR Unknown command\r\n"
	     "-ERR Unknown command\r\n-ERR Unknown command\r\n-ERR Unknown command\r\n" BYE,
	     .closed = 1),
	CASE("transaction state refuses login commands",
	     LOGIN "USER bob\r\nPASS x\r\nAUTH PLAIN\r\nNOOP\r\nQUIT\r\n",
	     GREET LOGGED_IN "-ERR Already logged in\r\n-ERR Already logged in\r\n-ERR Already logged in\r\n+OK\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("pass needs an argument", "USER alice@example.test\r\nPASS\r\nPASS secret\r\nQUIT\r\n",
	     GREET "+OK Send your password\r\n-ERR Syntax: PASS password\r\n-ERR Send USER first\r\n" BYE,
	     .closed = 1),
	CASE("user name too long",
	     "USER aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "a\r\nQUIT\r\n",
	     GREET "-ERR Name too long\r\n" BYE,
	     .closed = 1),
	CASE("auth plain with initial response",
	     "AUTH PLAIN " PLAIN_ALICE "\r\nSTAT\r\nQUIT\r\n",
	     GREET "+OK Logged in, 6 messages (177 octets)\r\n+OK 6 177\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("auth plain with continuation",
	     "AUTH plain\r\n" PLAIN_ALICE "\r\nSTAT\r\nQUIT\r\n",
	     GREET "+ \r\n+OK Logged in, 6 messages (177 octets)\r\n+OK 6 177\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("auth plain cancelled",
	     "AUTH PLAIN\r\n*\r\nSTAT\r\nQUIT\r\n",
	     GREET "+ \r\n-ERR Authentication cancelled\r\n-ERR Log in first\r\n" BYE,
	     .closed = 1),
	CASE("auth plain wrong password",
	     "AUTH PLAIN " PLAIN_ALICE_WRONG "\r\nAUTH PLAIN\r\n" PLAIN_ALICE_WRONG "\r\nQUIT\r\n",
	     GREET AUTH_FAILED "+ \r\n" AUTH_FAILED BYE,
	     .closed = 1),
	CASE("auth plain bad responses",
	     "AUTH PLAIN =\r\nAUTH PLAIN AGFsaWNl\r\nAUTH PLAIN\r\nnot base64\r\nAUTH PLAIN\r\nQUIT\r\nAUTH PLAIN a b\r\n"
	     "AUTH PLAIN Zg=\r\nQUIT\r\n",
	     GREET "-ERR Malformed SASL response\r\n-ERR Malformed SASL response\r\n+ \r\n-ERR Malformed SASL response\r\n"
	     "+ \r\n-ERR Malformed SASL response\r\n-ERR Syntax: AUTH mechanism [initial-response]\r\n"
	     "-ERR Malformed SASL response\r\n" BYE,
	     .closed = 1),
	CASE("auth mechanisms",
	     "AUTH\r\nAUTH LOGIN\r\nAUTH CRAM-MD5 abc\r\nQUIT\r\n",
	     GREET "+OK\r\nSCRAM-SHA-256\r\nPLAIN\r\n.\r\n-ERR Unsupported authentication mechanism\r\n"
	     "-ERR Unsupported authentication mechanism\r\n" BYE,
	     .closed = 1),
	CASE("auth plain authzid",
	     "AUTH PLAIN " PLAIN_ALICE_AS_BOB "\r\nAUTH PLAIN " PLAIN_ALICE_AS_ALICE "\r\nQUIT\r\n",
	     GREET AUTH_FAILED "+OK Logged in, 6 messages (177 octets)\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("auth after user",
	     "USER bob\r\nAUTH PLAIN " PLAIN_ALICE "\r\nQUIT\r\n",
	     GREET "+OK Send your password\r\n+OK Logged in, 6 messages (177 octets)\r\n" BYE,
	     .closed = 1, .removed = ""),
	CASE("maildrop in use",
	     "USER locked@example.test\r\nPASS secret\r\nSTAT\r\n" LOGIN "QUIT\r\n",
	     GREET "+OK Send your password\r\n-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n"
	     "-ERR Log in first\r\n" LOGGED_IN BYE,
	     .closed = 1, .removed = ""),
	CASE("maildrop missing",
	     "USER nobox@example.test\r\nPASS secret\r\nQUIT\r\n",
	     GREET "+OK Send your password\r\n-ERR [SYS/PERM] Mailbox not found\r\n" BYE,
	     .closed = 1),
	CASE("maildrop broken",
	     "USER broken@example.test\r\nPASS secret\r\nQUIT\r\n",
	     GREET "+OK Send your password\r\n-ERR [SYS/TEMP] Cannot open the mailbox, try again later\r\n" BYE,
	     .closed = 1),
	CASE("directory unavailable",
	     "USER temp@example.test\r\nPASS secret\r\nQUIT\r\n",
	     GREET "+OK Send your password\r\n-ERR [SYS/TEMP] Authentication is not available now, try again later\r\n"
	     BYE,
	     .closed = 1),
	CASE("message vanished",
	     LOGIN "RETR 2\r\nTOP 2 1\r\nRETR 1\r\nQUIT\r\n",
	     GREET LOGGED_IN "-ERR Message 2 was removed by another session\r\n"
	     "-ERR Message 2 was removed by another session\r\n" RETR1 BYE,
	     .closed = 1, .removed = "", .flags = F_VANISH2),
	CASE("message unreadable",
	     LOGIN "RETR 3\r\nSTAT\r\nQUIT\r\n",
	     GREET LOGGED_IN "-ERR [SYS/TEMP] Cannot read the message, try again later\r\n+OK 6 177\r\n" BYE,
	     .closed = 1, .removed = "", .flags = F_READ_EIO3),
	CASE("line too long",
	     "USER aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
	     "USER alice@example.test\r\nPASS secret\r\nQUIT\r\n",
	     GREET "-ERR Line too long\r\n" LOGGED_IN BYE,
	     .closed = 1, .removed = "", .max_line = 64),
	/* max_line 64 counts the CRLF: 62 octets of command */
	CASE("line at the limit",
	     "USER aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nQUIT\r\n",
	     GREET "+OK Send your password\r\n" BYE,
	     .closed = 1, .max_line = 64),
	CASE("line one over the limit",
	     "USER aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nQUIT\r\n",
	     GREET "-ERR Line too long\r\n" BYE,
	     .closed = 1, .max_line = 64),
	CASE("sasl line too long",
	     "AUTH PLAIN\r\n" PLAIN_ALICE PLAIN_ALICE "\r\nQUIT\r\n",
	     GREET "+ \r\n-ERR Line too long\r\n" BYE,
	     .closed = 1, .max_line = 64),
	CASE("nul and cr in a line",
	     "NO\0OP\r\nQU\rIT\r\nQUIT\r\n",
	     GREET "-ERR Invalid character in command\r\n-ERR Invalid character in command\r\n" BYE,
	     .closed = 1),
	CASE("too many errors",
	     "A\r\nB\r\nC\r\nD\r\n",
	     GREET "-ERR Unknown command\r\n-ERR Unknown command\r\n-ERR Unknown command\r\n",
	     .closed = 1, .max_bad = 3),
	CASE("too many commands, quit still works",
	     LOGIN "DELE 1\r\nNOOP\r\nSTAT\r\nQUIT\r\n",
	     GREET LOGGED_IN "+OK Message 1 deleted\r\n+OK\r\n"
	     "-ERR Too many commands in this session, send QUIT\r\n"
	     "+OK pop.example.test POP3 server signing off (1 messages deleted)\r\n",
	     .closed = 1, .removed = "3", .max_commands = 4),
	CASE("input after quit is ignored",
	     "QUIT\r\nNOOP\r\nQUIT\r\n", GREET BYE, .closed = 1),
	/* STLS (RFC 2595) */
	CASE("capa offers STLS", "CAPA\r\nQUIT\r\n", GREET CAPA_STLS BYE, .closed = 1, .mode = TLS_MODE_STARTTLS),
	CASE("STLS, then capa without it and a login", "STLS\r\n",
	     GREET STLS_OK CAPA_AUTH TLS_ACTIVE LOGGED_IN CAPA_TRANS "-ERR Already logged in\r\n" BYE,
	     .input_tls = "CAPA\r\nSTLS\r\n" LOGIN "CAPA\r\nSTLS\r\nQUIT\r\n",
	     .closed = 1, .removed = "", .mode = TLS_MODE_STARTTLS, .starttls = 1),
	CASE("injection: commands pipelined behind STLS are never run", "CAPA\r\nSTLS\r\n" LOGIN "STAT\r\n",
	     GREET CAPA_STLS STLS_OK "-ERR Log in first\r\n" BYE,
	     .input_tls = "STAT\r\nQUIT\r\n", .dropped = LOGIN "STAT\r\n",
	     .closed = 1, .mode = TLS_MODE_STARTTLS, .starttls = 1),
	CASE("injection: a partial line behind STLS is dropped", "STLS\r\nQU",
	     GREET STLS_OK "-ERR Unknown command\r\n" BYE,
	     .input_tls = "IT\r\nQUIT\r\n", .dropped = "QU",
	     .closed = 1, .mode = TLS_MODE_STARTTLS, .starttls = 1),
	CASE("a USER given in clear is forgotten", "USER alice@example.test\r\nSTLS\r\n",
	     GREET "+OK Send your password\r\n" STLS_OK "-ERR Send USER first\r\n" BYE,
	     .input_tls = "PASS secret\r\nQUIT\r\n", .closed = 1, .mode = TLS_MODE_STARTTLS, .starttls = 1),
	CASE("STLS with an argument", "STLS now\r\nQUIT\r\n", GREET "-ERR Syntax: STLS\r\n" BYE,
	     .closed = 1, .mode = TLS_MODE_STARTTLS),
	CASE("STLS after a login in clear", LOGIN "STLS\r\nCAPA\r\nQUIT\r\n",
	     GREET LOGGED_IN "-ERR Already logged in\r\n" CAPA_TRANS BYE,
	     .closed = 1, .removed = "", .mode = TLS_MODE_STARTTLS),
	CASE("STLS on implicit TLS", "CAPA\r\nSTLS\r\nQUIT\r\n", GREET CAPA_AUTH TLS_ACTIVE BYE,
	     .closed = 1, .mode = TLS_MODE_IMPLICIT, .tls = 1),
	CASE("tls = required: no login before TLS",
	     "CAPA\r\nUSER alice@example.test\r\nPASS secret\r\nAUTH PLAIN " PLAIN_ALICE "\r\nAUTH\r\n"
	     "APOP alice@example.test 0123456789abcdef0123456789abcdef\r\nNOOP\r\nSTLS\r\n",
	     GREET CAPA_REQUIRED NOT_BEFORE_STLS NOT_BEFORE_STLS NOT_BEFORE_STLS NOT_BEFORE_STLS
	     "-ERR Unknown command\r\n-ERR Log in first\r\n" STLS_OK CAPA_AUTH LOGGED_IN BYE,
	     .input_tls = "CAPA\r\n" LOGIN "QUIT\r\n",
	     .closed = 1, .removed = "", .mode = TLS_MODE_REQUIRED, .starttls = 1),
	CASE("tls = required: errors still count", "USER a\r\nPASS b\r\nUSER a\r\nCAPA\r\n",
	     GREET NOT_BEFORE_STLS NOT_BEFORE_STLS NOT_BEFORE_STLS,
	     .closed = 1, .max_bad = 3, .mode = TLS_MODE_REQUIRED),
	CASE("tls = required: injection", "STLS\r\n" LOGIN,
	     GREET STLS_OK "-ERR Send USER first\r\n",
	     .input_tls = "PASS secret\r\n", .dropped = LOGIN, .mode = TLS_MODE_REQUIRED, .starttls = 1),
	CASE("tls = required on implicit TLS", "CAPA\r\n" LOGIN "QUIT\r\n", GREET CAPA_AUTH LOGGED_IN BYE,
	     .closed = 1, .removed = "", .mode = TLS_MODE_REQUIRED, .tls = 1),
	/* AUTH through the glue's mechanisms (RFC 5034) */
	CASE("scram with initial response",
	     "AUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\n" SCRAM_GOOD "\r\n\r\nSTAT\r\nQUIT\r\n",
	     GREET SCRAM_SF SCRAM_V SASL_IN "+OK 6 177\r\n" BYE, .closed = 1, .removed = ""),
	CASE("scram without initial response",
	     "AUTH scram-sha-256\r\n" SCRAM_FIRST "\r\n" SCRAM_GOOD "\r\n\r\nQUIT\r\n",
	     GREET "+ \r\n" SCRAM_SF SCRAM_V SASL_IN BYE, .closed = 1, .removed = ""),
	CASE("scram wrong proof and unknown user look the same",
	     "AUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\n" SCRAM_BAD "\r\nAUTH SCRAM-SHA-256 " SCRAM_NOBODY "\r\n"
	     SCRAM_GOOD "\r\nQUIT\r\n",
	     GREET SCRAM_SF AUTH_FAILED SCRAM_SF AUTH_FAILED BYE, .closed = 1),
	CASE("scram cancelled at every step",
	     "AUTH SCRAM-SHA-256\r\n*\r\nAUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\n*\r\nAUTH SCRAM-SHA-256 " SCRAM_FIRST
	     "\r\n" SCRAM_GOOD "\r\n*\r\nSTAT\r\nQUIT\r\n",
	     GREET "+ \r\n" CANCELLED SCRAM_SF CANCELLED SCRAM_SF SCRAM_V CANCELLED "-ERR Log in first\r\n" BYE,
	     .closed = 1),
	CASE("scram malformed responses",
	     "AUTH SCRAM-SHA-256 =\r\nAUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\nnot base64\r\nAUTH SCRAM-SHA-256 "
	     SCRAM_FIRST "\r\n" SCRAM_GOOD "\r\nAAAA\r\nAUTH SCRAM-SHA-256 Zg=\r\nQUIT\r\n",
	     GREET MALFORMED SCRAM_SF MALFORMED SCRAM_SF SCRAM_V MALFORMED MALFORMED BYE, .closed = 1),
	CASE("scram directory unavailable",
	     "AUTH SCRAM-SHA-256 " SCRAM_TEMP "\r\nQUIT\r\n",
	     GREET "-ERR [SYS/TEMP] Authentication is not available now, try again later\r\n" BYE, .closed = 1),
	CASE("sasl and USER/PASS failures count together",
	     "AUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\n" SCRAM_BAD "\r\nUSER a\r\nPASS b\r\nAUTH PLAIN "
	     PLAIN_ALICE_WRONG "\r\nQUIT\r\n",
	     GREET SCRAM_SF AUTH_FAILED "+OK Send your password\r\n" AUTH_FAILED AUTH_FAILED, .closed = 1),
	CASE("mechanism names too long or unknown",
	     "AUTH SCRAM-SHA-256-AND-A-GOOD-DEAL-MORE-THAN-32\r\nAUTH SCRAM-SHA-256-PLUS\r\nQUIT\r\n",
	     GREET "-ERR Unsupported authentication mechanism\r\n-ERR Unsupported authentication mechanism\r\n" BYE,
	     .closed = 1),
	CASE("plaintext refused in clear",
	     "CAPA\r\nUSER alice@example.test\r\nPASS secret\r\nAUTH PLAIN " PLAIN_ALICE "\r\nAUTH LOGIN\r\nAUTH\r\n"
	     "AUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\n" SCRAM_GOOD "\r\n\r\nQUIT\r\n",
	     GREET CAPA_NOPLAIN PLAIN_REFUSED "-ERR Send USER first\r\n" PLAIN_REFUSED PLAIN_REFUSED
	     "+OK\r\nSCRAM-SHA-256\r\n.\r\n" SCRAM_SF SCRAM_V SASL_IN BYE,
	     .closed = 1, .removed = "", .no_plain = 1),
	CASE("plaintext allowed after STLS", "CAPA\r\nSTLS\r\n",
	     GREET CAPA_NOPLAIN_STLS STLS_OK CAPA_AUTH LOGGED_IN BYE,
	     .input_tls = "CAPA\r\n" LOGIN "QUIT\r\n",
	     .closed = 1, .removed = "", .mode = TLS_MODE_STARTTLS, .starttls = 1, .no_plain = 1),
	CASE("AUTH PLAIN after STLS", "STLS\r\n",
	     GREET STLS_OK SASL_IN BYE,
	     .input_tls = "AUTH PLAIN " PLAIN_ALICE "\r\nQUIT\r\n",
	     .closed = 1, .removed = "", .mode = TLS_MODE_STARTTLS, .starttls = 1, .no_plain = 1),
	CASE("plaintext on implicit TLS", "CAPA\r\n" LOGIN "QUIT\r\n", GREET CAPA_AUTH LOGGED_IN BYE,
	     .closed = 1, .removed = "", .mode = TLS_MODE_IMPLICIT, .tls = 1, .no_plain = 1),
	CASE("pipelined with partial last line",
	     LOGIN "STAT\r\nNOOP\r\nLIST 1\r\nSTA", GREET LOGGED_IN "+OK 6 177\r\n+OK\r\n+OK 1 46\r\n"),
};

static void run_case(const struct tcase *c, size_t block, int async, int bytewise)
{
	struct pop3_config cfg;
	struct fake f;
	size_t in_len;

	pop3_config_defaults(&cfg);
	if (c->max_commands)
		cfg.max_commands = c->max_commands;
	if (c->max_bad)
		cfg.max_bad_commands = c->max_bad;
	if (c->max_line)
		cfg.max_line = c->max_line;
	if (c->max_auth)
		cfg.max_auth_failures = c->max_auth;
	fake_start_plain(&f, &cfg, block, async, c->flags, c->mode, c->tls, !c->no_plain);
	/* inputs may hold a NUL: the table gives them with sizeof-free strings,
	 * so the "nul" case is measured by its known length */
	in_len = strlen(c->input);
	if (strcmp(c->name, "nul and cr in a line") == 0)
		in_len = sizeof("NO\0OP\r\nQU\rIT\r\nQUIT\r\n") - 1;
	if (bytewise) {
		for (size_t i = 0; i < in_len; i++) {
			arrive(&f, c->input + i, 1);
			settle(&f);
		}
	} else {
		arrive(&f, c->input, in_len);
		settle(&f);
	}
	if (f.tls_wanted) {
		tls_done(&f);
		settle(&f);
	}
	if (c->input_tls) {
		size_t n = strlen(c->input_tls);

		for (size_t i = 0; i < n; i += bytewise ? 1 : n) {
			arrive(&f, c->input_tls + i, bytewise ? 1 : n);
			settle(&f);
		}
	}
	if (f.n_start_tls != c->starttls || f.dropped_len != (c->dropped ? strlen(c->dropped) : 0) ||
	    (f.dropped_len && memcmp(f.dropped, c->dropped, f.dropped_len) != 0)) {
		fprintf(stderr, "case '%s' (%s, %s): start_tls %d (want %d), dropped '%.*s' (want '%s')\n", c->name,
			async ? "async" : "sync", bytewise ? "bytewise" : "whole", f.n_start_tls, c->starttls,
			(int)f.dropped_len, f.dropped, c->dropped ? c->dropped : "");
		failures++;
	}
	if (f.out_len != strlen(c->output) || memcmp(f.out, c->output, f.out_len) != 0) {
		fprintf(stderr, "case '%s' (block %zu, %s, %s): output differs\n--- got ---\n%s\n--- want ---\n%s\n---\n",
			c->name, block, async ? "async" : "sync", bytewise ? "bytewise" : "whole",
			f.out ? f.out : "", c->output);
		failures++;
	}
	if (f.closed != c->closed) {
		fprintf(stderr, "case '%s' (block %zu, %s, %s): closed=%d want %d\n", c->name, block,
			async ? "async" : "sync", bytewise ? "bytewise" : "whole", f.closed, c->closed);
		failures++;
	}
	if (c->removed == NULL ? f.update_called : (!f.update_called || strcmp(f.removed, c->removed) != 0)) {
		fprintf(stderr, "case '%s': update %s removed '%s', want %s\n", c->name,
			f.update_called ? "called" : "not called", f.removed, c->removed ? c->removed : "no update");
		failures++;
	}
	if (f.writes_after_close) {
		fprintf(stderr, "case '%s': %d writes after close\n", c->name, f.writes_after_close);
		failures++;
	}
	/* a session that did not close must have taken every complete line */
	if (!f.closed && f.in_len && memchr(f.in, '\n', f.in_len)) {
		fprintf(stderr, "case '%s' (%s, %s): input left unprocessed: %zu octets\n", c->name,
			async ? "async" : "sync", bytewise ? "bytewise" : "whole", f.in_len);
		failures++;
	}
	/* the timer is armed with the idle timeout */
	CHECK(f.timeout == cfg.idle_timeout);
	if (f.wipe_failures) {
		fprintf(stderr, "case '%s': password not wiped after the check\n", c->name);
		failures++;
	}
	fake_end(&f);
}

static void test_table(void)
{
	static const size_t blocks[] = { 1, 3, 7, 65536 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (size_t b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++)
			for (int async = 0; async < 2; async++)
				for (int bytewise = 0; bytewise < 2; bytewise++)
					run_case(&cases[i], blocks[b], async, bytewise);
}

/* ---- behaviour outside the table ---- */

static void login(struct fake *f)
{
	arrive(f, LOGIN, strlen(LOGIN));
	settle(f);
}

static void test_timeout(void)
{
	struct pop3_config cfg;
	struct fake f;

	pop3_config_defaults(&cfg);
	CHECK(cfg.idle_timeout >= 600);

	/* autologout in TRANSACTION: no UPDATE */
	fake_start(&f, &cfg, 0, 0, 0);
	login(&f);
	arrive(&f, "DELE 1\r\n", 8);
	pop3_session_timeout(f.s);
	CHECK(f.closed);
	CHECK(strstr(f.out, "-ERR Disconnected for inactivity\r\n") != NULL);
	CHECK(!f.update_called);
	fake_end(&f);

	/* while our own request runs, the timer is ignored */
	fake_start(&f, &cfg, 0, 1, 0);
	arrive(&f, LOGIN, strlen(LOGIN));
	CHECK(f.q == Q_AUTH);
	pop3_session_timeout(f.s);
	CHECK(!f.closed);
	settle(&f);
	CHECK(strstr(f.out, "+OK Logged in") != NULL);
	fake_end(&f);

	/* a client that stops reading in the middle of RETR is dropped */
	fake_start(&f, &cfg, 4, 1, 0);
	login(&f);
	arrive(&f, "RETR 1\r\n", 8);
	CHECK(f.q == Q_READ);
	answer(&f);
	CHECK(f.q == Q_DRAIN);
	pop3_session_timeout(f.s);
	CHECK(f.closed);
	answer(&f); /* the drain the glue completes when the connection goes */
	CHECK(!pop3_session_busy(f.s));
	CHECK(f.q == Q_NONE);
	fake_end(&f);
}

/* Slowloris: octets of an unfinished line never re-arm the timer; only a
 * finished line does, so idle_timeout bounds the time to a whole command. */
static void test_partial_line_keeps_deadline(void)
{
	struct pop3_config cfg;
	struct fake f;
	unsigned arms;

	pop3_config_defaults(&cfg);
	for (int logged_in = 0; logged_in < 2; logged_in++) {
		fake_start(&f, &cfg, 0, 0, 0);
		if (logged_in)
			login(&f);
		arms = f.n_arms;
		CHECK(arms >= 1);
		for (const char *p = "USER ali"; *p; p++)
			arrive(&f, p, 1);
		CHECK(f.n_arms == arms);
		/* an over-long line that never ends does not either */
		for (int i = 0; i < 3000; i++)
			arrive(&f, "x", 1);
		CHECK(f.n_arms == arms);
		pop3_session_timeout(f.s);
		CHECK(f.closed);
		CHECK(strstr(f.out, "-ERR Disconnected for inactivity\r\n") != NULL);
		fake_end(&f);
	}

	/* a finished line re-arms, also when a partial one follows it */
	fake_start(&f, &cfg, 0, 0, 0);
	arms = f.n_arms;
	arrive(&f, "CAPA\r\nUS", 9);
	CHECK(f.n_arms == arms + 1);
	arrive(&f, "ER", 2);
	CHECK(f.n_arms == arms + 1);
	CHECK(!f.closed);
	fake_end(&f);
}

static void test_shutdown(void)
{
	struct pop3_config cfg;
	struct fake f;

	pop3_config_defaults(&cfg);
	/* idle: told and closed, no UPDATE */
	fake_start(&f, &cfg, 0, 0, 0);
	login(&f);
	arrive(&f, "DELE 1\r\n", 8);
	pop3_session_shutdown(f.s);
	CHECK(f.closed);
	CHECK(strstr(f.out, "-ERR [SYS/TEMP] Server shutting down\r\n") != NULL);
	CHECK(!f.update_called);
	fake_end(&f);

	/* busy with RETR: the message is finished first */
	fake_start(&f, &cfg, 5, 1, 0);
	login(&f);
	arrive(&f, "RETR 1\r\nSTAT\r\n", 14);
	CHECK(f.q == Q_READ);
	pop3_session_shutdown(f.s);
	CHECK(!f.closed);
	settle(&f);
	CHECK(f.closed);
	CHECK(f.out_len > strlen(RETR1));
	CHECK(strstr(f.out, RETR1 "-ERR [SYS/TEMP] Server shutting down\r\n") != NULL);
	CHECK(strstr(f.out, "+OK 6 177") == NULL);
	fake_end(&f);
}

static void test_disconnect(void)
{
	struct pop3_config cfg;
	struct fake f;

	pop3_config_defaults(&cfg);
	/* a dropped connection removes nothing */
	fake_start(&f, &cfg, 0, 0, 0);
	login(&f);
	arrive(&f, "DELE 1\r\nDELE 2\r\n", 16);
	pop3_session_disconnected(f.s);
	CHECK(!f.update_called);
	fake_end(&f);

	/* gone during the login: the result arrives later, nothing is written,
	 * no maildrop is opened, the password is wiped */
	fake_start(&f, &cfg, 0, 1, 0);
	arrive(&f, LOGIN, strlen(LOGIN));
	CHECK(f.q == Q_AUTH);
	pop3_session_disconnected(f.s);
	CHECK(pop3_session_busy(f.s));
	{
		size_t before = f.out_len;
		answer(&f);
		CHECK(f.out_len == before);
	}
	CHECK(f.n_opens == 0);
	CHECK(!pop3_session_busy(f.s));
	for (size_t i = 0; i < f.last_password_len; i++)
		CHECK(f.last_password[i] == '\0');
	fake_end(&f);

	/* gone during a SASL step: the glue's exchange ends after the step,
	 * nothing is written, no maildrop is opened */
	fake_start(&f, &cfg, 0, 1, 0);
	arrive(&f, "AUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\n" SCRAM_GOOD "\r\n", strlen("AUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\n" SCRAM_GOOD "\r\n"));
	CHECK(f.q == Q_SASL);
	answer(&f);
	settle(&f);
	CHECK(f.q == Q_NONE);
	arrive(&f, "\r\n", 2);
	CHECK(f.q == Q_SASL);
	pop3_session_disconnected(f.s);
	CHECK(pop3_session_busy(f.s));
	CHECK(f.n_sasl_end == 0);
	{
		size_t before = f.out_len;
		answer(&f);
		CHECK(f.out_len == before);
	}
	CHECK(f.n_sasl_end == 1);
	CHECK(f.n_opens == 0);
	CHECK(!pop3_session_busy(f.s));
	fake_end(&f);

	/* gone while a challenge waits for its answer: the exchange ends at once */
	fake_start(&f, &cfg, 0, 0, 0);
	arrive(&f, "AUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\n", strlen("AUTH SCRAM-SHA-256 " SCRAM_FIRST "\r\n"));
	CHECK(f.n_sasl_first == 1 && f.n_sasl_end == 0);
	pop3_session_disconnected(f.s);
	CHECK(f.n_sasl_end == 1);
	fake_end(&f);

	/* gone during the open: the message list is freed (ASan checks) */
	fake_start(&f, &cfg, 0, 1, 0);
	arrive(&f, LOGIN, strlen(LOGIN));
	answer(&f);
	CHECK(f.q == Q_OPEN);
	pop3_session_disconnected(f.s);
	answer(&f);
	CHECK(!pop3_session_busy(f.s));
	fake_end(&f);

	/* gone in the middle of RETR */
	fake_start(&f, &cfg, 3, 1, 0);
	login(&f);
	arrive(&f, "RETR 1\r\n", 8);
	answer(&f);
	CHECK(f.q == Q_DRAIN);
	pop3_session_disconnected(f.s);
	answer(&f);
	CHECK(f.q == Q_NONE);
	CHECK(!pop3_session_busy(f.s));
	fake_end(&f);

	/* gone during UPDATE: the removal still finishes */
	fake_start(&f, &cfg, 0, 1, 0);
	login(&f);
	arrive(&f, "DELE 1\r\nQUIT\r\n", 14);
	CHECK(f.q == Q_UPDATE);
	pop3_session_disconnected(f.s);
	answer(&f);
	CHECK(f.update_called && strcmp(f.removed, "3") == 0);
	fake_end(&f);
}

/* Input is held (not consumed) while a request runs, and resumed after. */
static void test_holding(void)
{
	struct pop3_config cfg;
	struct fake f;
	size_t used;

	pop3_config_defaults(&cfg);
	fake_start(&f, &cfg, 0, 1, 0);
	used = pop3_session_input(f.s, LOGIN "STAT\r\n", strlen(LOGIN "STAT\r\n"));
	CHECK(used == strlen(LOGIN));
	CHECK(f.q == Q_AUTH);
	CHECK(pop3_session_input(f.s, "STAT\r\n", 6) == 0);
	answer(&f);
	CHECK(f.q == Q_OPEN);
	CHECK(!f.resume);
	answer(&f);
	CHECK(f.resume);
	CHECK(pop3_session_input(f.s, "STAT\r\n", 6) == 6);
	CHECK(strstr(f.out, "+OK 6 177\r\n") != NULL);
	fake_end(&f);
}

/* A big maildrop: LIST and UIDL go out in pieces with drains between. */
static void test_big_listing(void)
{
	enum { N = 2000 };
	struct fmsg *many = calloc(N, sizeof(*many));
	struct pop3_config cfg;
	struct fake f;
	char want[64];
	unsigned drains;

	for (size_t i = 0; i < N; i++) {
		many[i].uid = (uint32_t)(i + 1) * 3;
		many[i].data = "x\n";
		many[i].len = 2;
	}
	pop3_config_defaults(&cfg);
	for (int async = 0; async < 2; async++) {
		fake_start(&f, &cfg, 0, async, 0);
		f.msgs = many;
		f.n_msgs = N;
		login(&f);
		CHECK(strstr(f.out, "+OK Logged in, 2000 messages (6000 octets)\r\n") != NULL);
		arrive(&f, "DELE 1000\r\nLIST\r\n", 17);
		settle(&f);
		drains = f.n_drains;
		CHECK(drains >= 3);
		CHECK(strstr(f.out, "+OK 1999 messages (5997 octets)\r\n1 3\r\n2 3\r\n") != NULL);
		CHECK(strstr(f.out, "\r\n999 3\r\n1001 3\r\n") != NULL);
		CHECK(strstr(f.out, "\r\n2000 3\r\n.\r\n") != NULL);
		CHECK(f.max_write < 64 * 1024);
		arrive(&f, "UIDL\r\nNOOP\r\n", 12);
		settle(&f);
		CHECK(f.n_drains >= drains + 3);
		snprintf(want, sizeof(want), "\r\n2000 %u-6000\r\n.\r\n+OK\r\n", UIDVALIDITY);
		CHECK(strstr(f.out, want) != NULL);
		snprintf(want, sizeof(want), "\r\n999 %u-2997\r\n1001 %u-3003\r\n", UIDVALIDITY, UIDVALIDITY);
		CHECK(strstr(f.out, want) != NULL);
		fake_end(&f);
	}
	free(many);
}

/* A reference for RETR: the stored message split into lines at LF, each
 * line sent with CRLF (a CR before the LF stays as the CR of the CRLF),
 * lines starting with "." get another, and a last line without LF gets a
 * CRLF. */
static size_t reference_retr(const char *p, size_t n, char *out)
{
	size_t o = 0, start = 0;

	while (start < n) {
		const char *lf = memchr(p + start, '\n', n - start);
		size_t end = lf ? (size_t)(lf - p) : n;
		size_t len = end - start;

		if (len && p[start] == '.')
			out[o++] = '.';
		if (lf && len && p[end - 1] == '\r')
			len--;
		memcpy(out + o, p + start, len);
		o += len;
		out[o++] = '\r';
		out[o++] = '\n';
		start = end + 1;
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

/* Undoes dot-stuffing of a multi-line body ending in ".\r\n"; returns the
 * octets a client keeps (the terminator not counted). */
static size_t unstuffed_len(const char *p, size_t n)
{
	size_t count = 0, i = 0;

	while (i < n) {
		const char *e = NULL;
		size_t len;

		for (size_t k = i; k + 1 < n; k++) {
			if (p[k] == '\r' && p[k + 1] == '\n') {
				e = p + k;
				break;
			}
		}
		if (!e)
			return (size_t)-1;
		len = (size_t)(e - (p + i));
		if (len == 1 && p[i] == '.')
			return count; /* the terminator */
		count += len + 2 - (p[i] == '.' ? 1 : 0);
		i += len + 2;
	}
	return (size_t)-1;
}

static unsigned long long rng = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void test_random_messages(void)
{
	static const char alphabet[] = "..\n\n\n\r\rab. ";
	struct pop3_config cfg;
	char data[600], want[2000], cmd[32];
	struct fmsg one[1];

	pop3_config_defaults(&cfg);
	for (int iter = 0; iter < 3000; iter++) {
		size_t n = rnd(200), wlen, block = 1 + rnd(9);
		struct fake f;
		char *body;
		unsigned long long size;

		for (size_t i = 0; i < n; i++)
			data[i] = alphabet[rnd(sizeof(alphabet) - 1)];
		/* the reference handles a stored CR before LF; a trailing CR at the
		 * very end without LF is kept as is by both */
		one[0].uid = 1;
		one[0].data = data;
		one[0].len = n;
		fake_start(&f, &cfg, block, (int)rnd(2), 0);
		f.msgs = one;
		f.n_msgs = 1;
		login(&f);
		f.out_len = 0;
		snprintf(cmd, sizeof(cmd), "RETR 1\r\n");
		arrive(&f, cmd, strlen(cmd));
		settle(&f);
		wlen = reference_retr(data, n, want);
		body = f.out ? strstr(f.out, "\r\n") : NULL;
		if (!body || sscanf(f.out, "+OK %llu octets", &size) != 1) {
			fprintf(stderr, "random %d: no +OK line\n", iter);
			failures++;
			fake_end(&f);
			continue;
		}
		body += 2;
		if ((size_t)(f.out + f.out_len - body) != wlen || memcmp(body, want, wlen) != 0) {
			fprintf(stderr, "random %d (block %zu): RETR differs from the reference\n", iter, block);
			failures++;
		}
		/* what the client keeps after unstuffing is exactly the LIST size,
		 * unless the message lacks a final LF (then the CRLF before the
		 * terminator is extra) */
		{
			size_t kept = unstuffed_len(body, (size_t)(f.out + f.out_len - body));
			size_t expect = (size_t)vsize(data, n) + ((n && data[n - 1] != '\n') ? 2 : 0);
			if (size != vsize(data, n) || kept != expect) {
				fprintf(stderr, "random %d: size %llu kept %zu vsize %llu\n", iter, size, kept,
					(unsigned long long)vsize(data, n));
				failures++;
			}
		}
		fake_end(&f);
	}
}

/* A large message is streamed: no write is larger than about two blocks. */
static void test_streaming(void)
{
	enum { SIZE = 3 * 1024 * 1024 };
	char *big = malloc(SIZE);
	struct fmsg one[1];
	struct pop3_config cfg;
	struct fake f;

	for (size_t i = 0; i < SIZE; i++)
		big[i] = (i % 70 == 69) ? '\n' : (i % 70 == 0 ? '.' : 'x');
	big[SIZE - 1] = '\n';
	one[0].uid = 9;
	one[0].data = big;
	one[0].len = SIZE;
	pop3_config_defaults(&cfg);
	fake_start(&f, &cfg, 65536, 1, 0);
	f.msgs = one;
	f.n_msgs = 1;
	login(&f);
	arrive(&f, "RETR 1\r\nQUIT\r\n", 14);
	settle(&f);
	CHECK(f.n_reads >= SIZE / 65536);
	CHECK(f.n_drains >= SIZE / 65536 - 1);
	CHECK(f.max_write <= 2 * 65536 + 16);
	CHECK(f.closed);
	{
		char *body = strstr(f.out, "+OK ") ? strstr(f.out, "octets\r\n") : NULL;
		CHECK(body != NULL);
		if (body) {
			body += 8;
			CHECK(unstuffed_len(body, (size_t)(f.out + f.out_len - body)) == vsize(big, SIZE));
		}
	}
	fake_end(&f);
	free(big);
}

static void test_uidl_format(void)
{
	char out[32];

	pop3_uidl(4294967295u, 4294967295u, out, sizeof(out));
	CHECK(strcmp(out, "4294967295-4294967295") == 0);
	CHECK(strlen(out) <= 70);
	for (const char *p = out; *p; p++)
		CHECK(*p >= 0x21 && *p <= 0x7e);
	pop3_uidl(1, 2, out, sizeof(out));
	CHECK(strcmp(out, "1-2") == 0);
}

/* STLS outside the table: exact consumption, time and shutdown. */
static void test_stls(void)
{
	static const char in[] = "CAPA\r\nSTLS\r\nUSER a\r\n";
	struct pop3_config cfg;
	struct fake f;
	size_t n;

	pop3_config_defaults(&cfg);
	/* one call: exactly through the STLS line, then nothing */
	fake_start_tls(&f, &cfg, 0, 0, 0, TLS_MODE_STARTTLS, 0);
	n = pop3_session_input(f.s, in, strlen(in));
	CHECK(n == strlen("CAPA\r\nSTLS\r\n"));
	CHECK(f.tls_wanted);
	CHECK(pop3_session_input(f.s, in + n, strlen(in) - n) == 0);
	CHECK(!pop3_session_busy(f.s));
	f.n_arms = 0;
	f.tls_wanted = 0;
	pop3_session_tls_started(f.s, &test_tls);
	CHECK(f.n_arms == 1 && f.timeout == cfg.idle_timeout);   /* re-armed as after a command */
	fake_end(&f);

	/* the timer fires during the handshake: closed, nothing written in clear */
	fake_start_tls(&f, &cfg, 0, 0, 0, TLS_MODE_REQUIRED, 0);
	arrive(&f, "STLS\r\n", 6);
	pop3_session_timeout(f.s);
	CHECK(f.closed);
	CHECK(strcmp(f.out, GREET STLS_OK) == 0);
	fake_end(&f);

	/* shutdown during the handshake: said after it, inside TLS */
	fake_start_tls(&f, &cfg, 0, 0, 0, TLS_MODE_STARTTLS, 0);
	arrive(&f, "STLS\r\n", 6);
	pop3_session_shutdown(f.s);
	CHECK(!f.closed);
	tls_done(&f);
	CHECK(f.closed);
	CHECK(strcmp(f.out, GREET STLS_OK "-ERR [SYS/TEMP] Server shutting down\r\n") == 0);
	fake_end(&f);
}

int main(void)
{
	/* the session logs; the failure paths log errors on purpose */
	if (!getenv("TEST_VERBOSE")) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			log_set_fd(null);
	}
	test_table();
	test_timeout();
	test_partial_line_keeps_deadline();
	test_shutdown();
	test_stls();
	test_disconnect();
	test_holding();
	test_big_listing();
	test_random_messages();
	test_streaming();
	test_uidl_format();
	if (failures) {
		fprintf(stderr, "test-pop3-session: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-pop3-session: ok (%zu table cases x 16 ways)\n", sizeof(cases) / sizeof(cases[0]));
	return 0;
}
