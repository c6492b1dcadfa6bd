/*
 * Fuzz target for the POP3 session (pop3/pop3-session.c).
 *
 * Input: four header octets, a message, then the bytes a client sends.
 *   octet 0, flags: 1 answer requests asynchronously in the second run,
 *                   2 small limits (line 64, 5 bad commands, 30 commands,
 *                     2 failed logins),
 *                   4 log in first ("USER alice\r\nPASS secret\r\n" is
 *                     prepended),
 *                   8 reading message 2 fails with -ENOENT,
 *                   16 UPDATE fails after one removal,
 *                   32 reading message 3 fails with -EIO after the first block,
 *                   64 and 128: the listener's tls mode, octet 0 >> 6: none,
 *                     starttls, required, implicit (encrypted from the start)
 *   octet 1: seed of the split points of the second run; its bit 0 tells
 *            what happens at STLS: 0 the handshake is done at once and the
 *            stream goes on inside TLS, 1 the stream up to its next LF is
 *            thrown away first (a command injected behind STLS, which the
 *            glue drops); its bit 1 set: plaintext logins are refused in
 *            clear (allow_plaintext_auth = no)
 *   octet 2: read block size: 1 + (octet % 16), or 65536 when >= 128
 *   octet 3: length L of message 3 of the maildrop, taken from the next L octets
 *
 * The stream runs twice: fed all at once with a synchronous io, and fed in
 * pseudo-random pieces with requests answered later while the input is held
 * back (as pop3/pop3-server.c does). Both runs must produce the same bytes
 * and the same UPDATE; anything else, or a broken invariant, aborts. At
 * STLS, io->start_tls must come right after the +OK, at a line end of the
 * stream, and the session must take nothing and write nothing until
 * pop3_session_tls_started(), called with a fixed tls_info.
 *
 * AUTH: the fake glue offers SCRAM-SHA-256 and X-TWO, and PLAIN and LOGIN
 * under TLS or where plaintext is allowed; its steps answer by the first
 * octet of the decoded response (a challenge echoing part of it, success as
 * alice, locked, gone or with no user, failure with the name as given,
 * tempfail, malformed), as fuzz-smtp-session.c does. The harness checks
 * that io->auth_end comes exactly once per exchange, never with a step in
 * flight, and that a USER/PASS login never reaches the glue where plaintext
 * is refused.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "pop3/pop3-session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(msg) do { fprintf(stderr, "fuzz-pop3-session: %s\n", (msg)); abort(); } while (0)

struct fmsg {
	const char *data;
	size_t len;
};

enum q { Q_NONE, Q_AUTH, Q_SASL, Q_OPEN, Q_READ, Q_UPDATE, Q_DRAIN };

struct run {
	struct pop3_session *s;
	unsigned flags;
	int async;
	int closed;
	struct buf out;          /* everything written */
	struct buf upd;          /* UPDATE requests */
	struct buf held;         /* input not consumed yet */
	const struct fmsg *msgs;
	size_t n_msgs;
	enum q q;
	void *qreq;
	int resume_wanted;
	const uint8_t *stream;   /* the whole input */
	size_t consumed;         /* octets of it the session took or the harness dropped */
	int drop_line;           /* at STLS, drop the stream up to its next LF */
	int tls_wanted;          /* start_tls called, tls_started not yet */
	int tls_checked;
	int tls_active;          /* implicit TLS, or tls_started */
	int plain_in_clear;      /* USER/PASS, PLAIN and LOGIN allowed without TLS */
	int auth_open;           /* a first step came, auth_end not yet */
	unsigned n_first, n_end;
};

static void r_write(void *ctx, const char *data, size_t len)
{
	struct run *r = ctx;

	if (r->closed)
		FAIL("write after close");
	if (r->tls_wanted)
		FAIL("write during the TLS handshake");
	if (len == 0)
		FAIL("empty write");
	if (buf_add(&r->out, data, len) < 0)
		FAIL("output buffer");
}

static void r_close(void *ctx, const char *reason)
{
	struct run *r = ctx;

	(void)reason;
	if (r->closed)
		FAIL("close twice");
	r->closed = 1;
}

static void r_set_timeout(void *ctx, unsigned seconds)
{
	(void)ctx;
	if (seconds < 600)
		FAIL("idle timeout below RFC 1939's ten minutes");
}

static uint64_t vsize(const char *p, size_t n)
{
	uint64_t v = n;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			v++;
	return v;
}

static void answer_auth(struct run *r, struct pop3_auth_req *req)
{
	if (!req->user || !req->password || !*req->user || !*req->password)
		FAIL("login request without user or password");
	if (!r->tls_active && !r->plain_in_clear)
		FAIL("USER/PASS in clear where plaintext is refused");
	req->result = -EACCES;
	if (strcmp(req->password, "secret") == 0) {
		if (strcasecmp(req->user, "alice") == 0 || strcasecmp(req->user, "locked") == 0 ||
		    strcasecmp(req->user, "gone") == 0) {
			req->result = 0;
			snprintf(req->canonical, sizeof(req->canonical), "%s", req->user);
		} else if (strcasecmp(req->user, "temp") == 0) {
			req->result = -EIO;
		}
	}
	pop3_session_auth_done(r->s, req);
}

static const char *r_auth_mechs(void *ctx)
{
	struct run *r = ctx;

	return r->tls_active || r->plain_in_clear ? "SCRAM-SHA-256 X-TWO PLAIN LOGIN" : "SCRAM-SHA-256 X-TWO";
}

static void answer_sasl(struct run *r, struct auth_step *st)
{
	static const char *const users[] = { "alice", "locked", "gone", "" };
	unsigned char b = st->in_len ? st->in[0] : 0;

	if (!r->tls_active && !r->plain_in_clear && (!strcmp(st->mech, "PLAIN") || !strcmp(st->mech, "LOGIN")))
		FAIL("plaintext mechanism in clear where plaintext is refused");
	if (st->in_absent || st->in_len == 0 || b % 6 < 2) {
		size_t n = st->in_len < (size_t)((b >> 3) % 8) ? st->in_len : (size_t)((b >> 3) % 8);

		st->status = AUTH_CONTINUE;
		if (n || (b & 1)) {
			/* with a pointer even when empty, now and then */
			st->out = malloc(n ? n : 1);
			if (!st->out)
				FAIL("malloc");
			if (n)
				memcpy(st->out, st->in, n);
			st->out_len = n;
		}
	} else if (b % 6 == 2) {
		st->status = AUTH_OK;
		strcpy(st->user, users[(b >> 6) & 3]);
	} else if (b % 6 == 3) {
		st->status = AUTH_FAILED;
		/* the name as given: the session must keep it printable in the log */
		snprintf(st->user, sizeof(st->user), "%.*s", (int)(st->in_len < 40 ? st->in_len : 40),
			 (const char *)st->in);
	} else {
		st->status = b % 6 == 4 ? AUTH_TEMPFAIL : AUTH_MALFORMED;
	}
	pop3_session_sasl_done(r->s, st);
	if (st->out)
		FAIL("challenge not freed");
}

static void answer_open(struct run *r, struct pop3_open_req *req)
{
	if (strcasecmp(req->user, "locked") == 0) {
		req->result = -EBUSY;
	} else if (strcasecmp(req->user, "gone") == 0) {
		req->result = -ENOENT;
	} else {
		req->result = 0;
		req->uidvalidity = 42;
		req->n_msgs = r->n_msgs;
		req->msgs = calloc(r->n_msgs, sizeof(*req->msgs));
		for (size_t i = 0; i < r->n_msgs; i++) {
			req->msgs[i].uid = (uint32_t)(i * 2 + 1);
			req->msgs[i].size = vsize(r->msgs[i].data, r->msgs[i].len);
		}
	}
	pop3_session_open_done(r->s, req);
}

static void answer_read(struct run *r, struct pop3_read_req *req)
{
	const struct fmsg *m;

	if (req->msg >= r->n_msgs || req->cap == 0 || !req->buf)
		FAIL("bad read request");
	m = &r->msgs[req->msg];
	if (req->offset > m->len)
		FAIL("read past the end of the file");
	if ((r->flags & 8) && req->msg == 1) {
		req->result = -ENOENT;
	} else if ((r->flags & 32) && req->msg == 2 && req->offset > 0) {
		req->result = -EIO;
	} else {
		size_t n = m->len - (size_t)req->offset;
		if (n > req->cap)
			n = req->cap;
		memcpy(req->buf, m->data + req->offset, n);
		req->result = (ssize_t)n;
	}
	pop3_session_read_done(r->s, req);
}

static void answer_update(struct run *r, struct pop3_update_req *req)
{
	size_t k;

	if (req->n > r->n_msgs || !req->uids)
		FAIL("bad update request");
	for (k = 0; k < req->n; k++)
		for (size_t j = 0; j < k; j++)
			if (req->uids[j] == req->uids[k])
				FAIL("a message removed twice");
	req->result = 0;
	for (k = 0; k < req->n; k++) {
		if ((r->flags & 16) && k == 1) {
			req->result = -EIO;
			break;
		}
		buf_printf(&r->upd, "%u ", (unsigned)req->uids[k]);
	}
	buf_adds(&r->upd, "\n");
	req->done = k;
	pop3_session_update_done(r->s, req);
}

static void answer_one(struct run *r)
{
	enum q q = r->q;
	void *req = r->qreq;

	r->q = Q_NONE;
	r->qreq = NULL;
	switch (q) {
	case Q_AUTH: answer_auth(r, req); break;
	case Q_SASL: answer_sasl(r, req); break;
	case Q_OPEN: answer_open(r, req); break;
	case Q_READ: answer_read(r, req); break;
	case Q_UPDATE: answer_update(r, req); break;
	case Q_DRAIN: pop3_session_drained(r->s); break;
	case Q_NONE: break;
	}
}

static void enqueue(struct run *r, enum q q, void *req)
{
	if (r->q != Q_NONE)
		FAIL("two requests in flight");
	r->q = q;
	r->qreq = req;
	if (!r->async)
		answer_one(r);
}

static void r_auth(void *ctx, struct pop3_auth_req *req) { enqueue(ctx, Q_AUTH, req); }
static void r_open(void *ctx, struct pop3_open_req *req) { enqueue(ctx, Q_OPEN, req); }
static void r_read(void *ctx, struct pop3_read_req *req) { enqueue(ctx, Q_READ, req); }
static void r_update(void *ctx, struct pop3_update_req *req) { enqueue(ctx, Q_UPDATE, req); }
static void r_drain(void *ctx) { enqueue(ctx, Q_DRAIN, NULL); }

static void r_auth_step(void *ctx, struct auth_step *st)
{
	struct run *r = ctx;

	if (st->first == r->auth_open)
		FAIL("first step flag does not match the open exchange");
	if (!st->in || (st->in_absent && (!st->first || st->in_len)) || st->out)
		FAIL("bad step");
	if (!st->mech[0] || strlen(st->mech) >= sizeof(st->mech))
		FAIL("bad mechanism name");
	if (st->first) {
		r->auth_open = 1;
		r->n_first++;
	}
	enqueue(r, Q_SASL, st);
}

static void r_auth_end(void *ctx)
{
	struct run *r = ctx;

	if (!r->auth_open || r->q == Q_SASL)
		FAIL("auth_end without an open exchange, or with a step in flight");
	r->auth_open = 0;
	r->n_end++;
}

static void r_resume(void *ctx)
{
	struct run *r = ctx;

	r->resume_wanted = 1;
}

static void r_start_tls(void *ctx)
{
	static const char ok[] = "+OK Begin TLS negotiation\r\n";
	struct run *r = ctx;

	if (r->tls_wanted)
		FAIL("start_tls twice");
	if (r->out.len < sizeof(ok) - 1 || memcmp(r->out.data + r->out.len - (sizeof(ok) - 1), ok, sizeof(ok) - 1) != 0)
		FAIL("start_tls without the +OK before it");
	r->tls_wanted = 1;
	r->tls_checked = 0;
}

static const struct pop3_io fuzz_io = {
	.write = r_write, .close = r_close, .set_timeout = r_set_timeout,
	.auth = r_auth, .open = r_open, .read = r_read, .update = r_update,
	.drain = r_drain, .resume = r_resume, .start_tls = r_start_tls,
	.auth_mechs = r_auth_mechs, .auth_step = r_auth_step, .auth_end = r_auth_end,
};

static const struct tls_info fuzz_tls = { .version = "TLS1.3", .cipher = "TLS_AES_256_GCM_SHA384" };

/* After start_tls: the session takes nothing; the harness drops what the
 * glue would (the rest of the line behind STLS, when asked), then the
 * handshake is done. Returns 1 while still waiting for more input. */
static int tls_step(struct run *r, int at_end)
{
	if (!r->tls_checked) {
		if (r->consumed == 0 || r->stream[r->consumed - 1] != '\n')
			FAIL("STLS did not end at a line end");
		r->tls_checked = 1;
	}
	if (r->held.len && pop3_session_input(r->s, r->held.data, r->held.len) != 0)
		FAIL("input taken during the TLS handshake");
	if (r->drop_line) {
		const char *lf = r->held.len ? memchr(r->held.data, '\n', r->held.len) : NULL;
		size_t n = lf ? (size_t)(lf - r->held.data) + 1 : r->held.len;

		buf_consume(&r->held, n);
		r->consumed += n;
		if (!lf && !at_end)
			return 1;
	}
	r->tls_wanted = 0;
	r->tls_active = 1;
	pop3_session_tls_started(r->s, &fuzz_tls);
	return 0;
}

/* What lib/net.c does: pass held input until nothing more is consumed. */
static void pump(struct run *r)
{
	while (r->held.len > 0 && !r->closed) {
		size_t n;

		if (r->tls_wanted) {
			if (tls_step(r, 0))
				return;
			continue;
		}
		n = pop3_session_input(r->s, r->held.data, r->held.len);
		if (n > r->held.len)
			FAIL("consumed more than given");
		r->consumed += n;
		if (r->tls_wanted) {
			buf_consume(&r->held, n);
			continue;
		}
		if (n == 0) {
			if (!pop3_session_busy(r->s))
				FAIL("idle session consumed nothing");
			return;
		}
		buf_consume(&r->held, n);
	}
}

static void answer(struct run *r)
{
	while (r->q != Q_NONE || r->resume_wanted) {
		if (r->q != Q_NONE)
			answer_one(r);
		if (r->resume_wanted) {
			r->resume_wanted = 0;
			pump(r);
		}
	}
}

static void run(struct run *r, const struct pop3_config *cfg, unsigned flags, size_t block, int async,
		unsigned seed, int drop_line, int plain_in_clear, const struct fmsg *msgs, size_t n_msgs,
		const uint8_t *data, size_t size)
{
	enum tls_mode mode = (enum tls_mode)((flags >> 6) & 3);
	struct pop3_session_params p = {
		.cfg = cfg, .hostname = "pop.test", .sid = "F1", .client_addr = "2001:db8::1",
		.read_block = block, .tls_mode = mode, .tls = mode == TLS_MODE_IMPLICIT ? &fuzz_tls : NULL,
		.plaintext_in_clear = plain_in_clear,
	};
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	r->stream = data;
	r->drop_line = drop_line;
	r->flags = flags;
	r->async = async;
	r->msgs = msgs;
	r->n_msgs = n_msgs;
	r->tls_active = mode == TLS_MODE_IMPLICIT;
	r->plain_in_clear = plain_in_clear;
	buf_init(&r->out, 0);
	buf_init(&r->upd, 0);
	buf_init(&r->held, 0);
	r->s = pop3_session_new(&p, &fuzz_io, r);
	while (off < size) {
		size_t n = size - off;

		if (seed) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % 64;
			if (n > size - off)
				n = size - off;
		}
		buf_add(&r->held, data + off, n);
		off += n;
		pump(r);
		if (async && (seed >> 8) % 3 == 0)
			answer(r);
	}
	answer(r);
	while (r->tls_wanted && !r->closed) {
		/* the stream ended during the handshake */
		tls_step(r, 1);
		pump(r);
		answer(r);
	}
	if (r->held.len && !r->closed)
		FAIL("input left over");
	if (pop3_session_busy(r->s))
		FAIL("busy after everything was answered");
	pop3_session_timeout(r->s);
	pop3_session_disconnected(r->s);
	pop3_session_free(&r->s);
	if (r->auth_open || r->n_first != r->n_end)
		FAIL("an exchange was not ended exactly once");
}

static void run_free(struct run *r)
{
	buf_release(&r->out);
	buf_release(&r->upd);
	buf_release(&r->held);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char login[] = "USER alice\r\nPASS secret\r\n";
	static int quiet;
	struct fmsg msgs[5] = {
		{ "Subject: a\n\nbody\n.\n", 19 },
		{ "Subject: b\r\n\r\n..x\r\n", 19 },
		{ NULL, 0 },
		{ "", 0 },
		{ "no newline", 10 },
	};
	struct pop3_config cfg;
	struct run a, b;
	unsigned flags, seed, msg_len;
	size_t block;
	uint8_t *stream;
	size_t stream_len;

	if (size < 4)
		return 0;
	flags = data[0];
	seed = data[1] | 0x100u;   /* never 0: the second run always splits */
	block = data[2] >= 128 ? 65536 : 1 + (data[2] % 16);
	msg_len = data[3];
	data += 4;
	size -= 4;
	if (msg_len > size)
		msg_len = (unsigned)size;
	msgs[2].data = (const char *)data;
	msgs[2].len = msg_len;
	data += msg_len;
	size -= msg_len;

	/* the stream, with the login first when asked */
	stream_len = size + ((flags & 4) ? sizeof(login) - 1 : 0);
	stream = malloc(stream_len ? stream_len : 1);
	if (!stream)
		return 0;
	if (flags & 4)
		memcpy(stream, login, sizeof(login) - 1);
	memcpy(stream + ((flags & 4) ? sizeof(login) - 1 : 0), data, size);

	if (!quiet) {
		/* the failure paths log errors on purpose */
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			log_set_fd(null);
		quiet = 1;
	}
	pop3_config_defaults(&cfg);
	if (flags & 2) {
		cfg.max_line = 64;
		cfg.max_bad_commands = 5;
		cfg.max_commands = 30;
		cfg.max_auth_failures = 2;
	}

	run(&a, &cfg, flags, block, 0, 0, seed & 1, !(seed & 2), msgs, 5, stream, stream_len);
	run(&b, &cfg, flags, block, flags & 1, seed, seed & 1, !(seed & 2), msgs, 5, stream, stream_len);
	free(stream);
	if (getenv("FUZZ_POP3_SESSION_DUMP"))
		fprintf(stderr, "%.*s", (int)a.out.len, a.out.data ? a.out.data : "");
	if (a.out.len != b.out.len || (a.out.len && memcmp(a.out.data, b.out.data, a.out.len) != 0)) {
		fprintf(stderr, "--- all at once:\n%.*s\n--- in pieces:\n%.*s\n", (int)a.out.len,
			a.out.data ? a.out.data : "", (int)b.out.len, b.out.data ? b.out.data : "");
		FAIL("replies depend on how the input was split");
	}
	if (a.upd.len != b.upd.len || (a.upd.len && memcmp(a.upd.data, b.upd.data, a.upd.len) != 0))
		FAIL("UPDATE depends on how the input was split");
	run_free(&a);
	run_free(&b);
	return 0;
}
