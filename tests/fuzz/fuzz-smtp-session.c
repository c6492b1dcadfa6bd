/*
 * Fuzz target for the SMTP session (smtp/smtp-session.c).
 *
 * Input: two header octets, then the bytes a client sends.
 *   octet 0, flags: 1 answer requests asynchronously in the second run,
 *                   2 bare_newline = reject, 4 small limits (size 300,
 *                   3 recipients, 2 pipelined commands, 5 bad commands,
 *                   timeouts 3 s and 2 s, 1 octet/s), 8 TLS from the start,
 *                   16 and 32: the listener's tls mode, (octet 0 >> 4) & 3:
 *                   none, starttls, required, implicit (implies 8),
 *                   64 submission (AUTH required, sender checks, Date and
 *                   Message-ID), 128 the glue offers PLAIN and LOGIN in
 *                   clear and received_hide_client is set
 *   octet 1: seed of the split points of the second run; its bit 0 tells
 *            what happens at STARTTLS: 0 the handshake is done at once and
 *            the stream goes on inside TLS, 1 the stream up to its next LF
 *            is thrown away first (a command injected behind STARTTLS,
 *            which the glue drops); its bit 1 set takes AUTH away from the
 *            io (as before AUTH existed) unless 64 is set
 *
 * AUTH: the fake glue answers each step from its decoded input, so that
 * both runs get the same answers: no input or an empty one continues; else
 * the first octet b picks: b % 6 of 0 or 1 continues, 2 succeeds (user
 * "a@example.org", "b@example.org" when b & 64, "" when b & 128: a glue
 * bug the session must survive), 3 fails, 4 is a temporary failure, 5 a
 * malformed message. A challenge is the input's first (b >> 3) % 8
 * octets. The sender check accepts an address that starts with the user's
 * first letter, fails "t..." temporarily and refuses the rest. The harness
 * checks that io->auth_end comes exactly once per exchange, never with a
 * step in flight, and that no request overlaps another.
 *
 * The stream runs twice: fed all at once with a synchronous io, and fed in
 * pseudo-random pieces (optionally with requests answered later while the
 * input is held back, as the connection glue does). Both runs must produce
 * the same replies and the same deliveries; anything else, or a broken
 * invariant, aborts.
 *
 * STARTTLS: io->start_tls must come right after the 220, at a line end of
 * the stream; the session must then take nothing and write nothing until
 * smtp_session_tls_started(), which the harness calls with a fixed
 * tls_info as the glue would after a handshake.
 *
 * A clock moves between pieces (by an amount the seed picks) so that the
 * deadline code runs (command deadlines, the min_data_rate extension); the
 * timer never fires in the middle, which would make the runs differ, but
 * every arming is checked: never 0 ms, never beyond the longer timeout.
 * FUZZ_SMTP_SESSION_DUMP=1 in the environment prints what the first run wrote.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "smtp/smtp-session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(msg) do { fprintf(stderr, "fuzz-smtp-session: %s\n", (msg)); abort(); } while (0)

struct run {
	struct smtp_session *s;
	const struct smtp_config *cfg;
	int async;
	int closed;
	struct buf out;          /* replies */
	struct buf dl;           /* deliveries: from, targets, body */
	struct buf held;         /* input not consumed yet */
	struct smtp_rcpt_req *rreq;
	struct smtp_delivery *dv;
	int resume_wanted;
	uint64_t now;            /* ms */
	const uint8_t *stream;   /* the whole input */
	size_t consumed;         /* octets of it the session took or the harness dropped */
	int drop_line;           /* at STARTTLS, drop the stream up to its next LF */
	int tls_wanted;          /* start_tls called, tls_started not yet */
	int tls_checked;         /* the STARTTLS position was checked */
	int tls_active;          /* encrypted now: the mechanism list depends on it */
	int plain_in_clear;
	struct auth_step *astep; /* async requests waiting for an answer */
	struct smtp_sender_req *sreq;
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
	if (len < 5 || data[len - 2] != '\r' || data[len - 1] != '\n')
		FAIL("reply without CRLF");
	for (size_t i = 0; i + 2 < len; i++)
		if (data[i] == '\r' || data[i] == '\n')
			FAIL("CR or LF inside a reply line");
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

static void r_set_timeout(void *ctx, unsigned ms)
{
	struct run *r = ctx;
	unsigned longest = r->cfg->command_timeout > r->cfg->data_timeout ? r->cfg->command_timeout
									  : r->cfg->data_timeout;

	if (ms == 0)
		FAIL("timer armed with 0 ms");
	if (ms > longest * 1000u)
		FAIL("deadline beyond the longest timeout");
}

static uint64_t r_now(void *ctx)
{
	struct run *r = ctx;

	return r->now;
}

static void answer_rcpt(struct run *r, struct smtp_rcpt_req *req)
{
	const char *a = req->address;
	const char *at = strrchr(a, '@');

	req->status = SMTP_RCPT_NO_USER;
	if (!at || strcmp(at, "@example.org") != 0 || strpbrk(a, "%!\"")) {
		req->status = SMTP_RCPT_NOT_LOCAL;
	} else {
		switch (a[0]) {
		case 'a':
		case 'b':
			req->status = SMTP_RCPT_OK;
			req->targets = xcalloc(2, sizeof(char *));
			req->targets[req->n_targets++] = xstrdup(a);
			if (a[0] == 'b')
				req->targets[req->n_targets++] = xstrdup("shared@example.org");
			break;
		case 'd': req->status = SMTP_RCPT_DISABLED; break;
		case 'q': req->status = SMTP_RCPT_OVER_QUOTA; break;
		case 't': req->status = SMTP_RCPT_TEMPFAIL; break;
		}
	}
	smtp_session_rcpt_done(r->s, req);
}

static int deliver_result(const struct smtp_delivery *dv)
{
	switch (dv->return_path[0]) {
	case 'f': return -EIO;
	case 'q': return -EDQUOT;
	case 's': return -ENOSPC;
	}
	return 0;
}

static void r_rcpt(void *ctx, struct smtp_rcpt_req *req)
{
	struct run *r = ctx;

	if (r->rreq || r->dv || r->astep || r->sreq)
		FAIL("two requests in flight");
	if (r->async)
		r->rreq = req;
	else
		answer_rcpt(r, req);
}

static void r_deliver(void *ctx, struct smtp_delivery *dv)
{
	struct run *r = ctx;

	if (r->rreq || r->dv || r->astep || r->sreq)
		FAIL("two requests in flight");
	if (dv->body->len > r->cfg->max_message_size || dv->size > r->cfg->max_message_size ||
	    dv->size < dv->body->len)
		FAIL("body over the limit");
	if (dv->n_targets == 0)
		FAIL("delivery without targets");
	for (size_t i = 0; i < dv->n_targets; i++)
		for (size_t k = 0; k < i; k++)
			if (strcmp(dv->targets[i], dv->targets[k]) == 0)
				FAIL("duplicate target");
	if (strncmp(dv->received, "Return-Path: <", 14) != 0)
		FAIL("bad Received block");
	{
		/* the protocol name and what submission added; not the dates,
		 * which may differ between the runs */
		const char *w = strstr(dv->received, "\tby mx.test (buzon) with ");
		const char *end = dv->received + strlen(dv->received);

		if (!w || end[-1] != '\n' || strchr(dv->received, '\r'))
			FAIL("bad Received block");
		w += strlen("\tby mx.test (buzon) with ");
		buf_printf(&r->dl, "proto=%.*s date=%d msgid=%d hidden=%d ", (int)strcspn(w, " \n"), w,
			   strstr(dv->received, "\nDate: ") != NULL, strstr(dv->received, "\nMessage-ID: <") != NULL,
			   strstr(dv->received, "[IPv6:2001:db8::1]") == NULL);
	}
	buf_printf(&r->dl, "from=%s n=%zu size=%llu:", dv->return_path, dv->n_targets,
		   (unsigned long long)dv->size);
	for (size_t i = 0; i < dv->n_targets; i++)
		buf_printf(&r->dl, " %s", dv->targets[i]);
	buf_adds(&r->dl, "\n");
	buf_add(&r->dl, dv->body->data, dv->body->len);
	buf_adds(&r->dl, "\n--\n");
	if (r->async)
		r->dv = dv;
	else
		smtp_session_deliver_done(r->s, dv, deliver_result(dv));
}

static void r_resume(void *ctx)
{
	struct run *r = ctx;

	r->resume_wanted = 1;
}

static void r_start_tls(void *ctx)
{
	struct run *r = ctx;
	static const char ready[] = "220 2.0.0 Ready to start TLS\r\n";

	if (r->tls_wanted)
		FAIL("start_tls twice");
	if (r->out.len < sizeof(ready) - 1 ||
	    memcmp(r->out.data + r->out.len - (sizeof(ready) - 1), ready, sizeof(ready) - 1) != 0)
		FAIL("start_tls without the 220 before it");
	r->tls_wanted = 1;
	r->tls_checked = 0;
}

static const char *r_auth_mechs(void *ctx)
{
	struct run *r = ctx;

	return r->tls_active || r->plain_in_clear ? "PLAIN LOGIN SCRAM-SHA-256 X-TWO" : "SCRAM-SHA-256 X-TWO";
}

static void answer_auth(struct run *r, struct auth_step *st)
{
	unsigned char b = st->in_len ? st->in[0] : 0;

	if (st->in_absent || st->in_len == 0 || b % 6 < 2) {
		size_t n = st->in_len < (size_t)((b >> 3) % 8) ? st->in_len : (size_t)((b >> 3) % 8);

		st->status = AUTH_CONTINUE;
		if (n || (b & 1)) {
			/* with a pointer even when empty, now and then */
			st->out = xmalloc(n ? n : 1);
			if (n)
				memcpy(st->out, st->in, n);
			st->out_len = n;
		}
	} else if (b % 6 == 2) {
		st->status = AUTH_OK;
		strcpy(st->user, (b & 128) ? "" : (b & 64) ? "b@example.org" : "a@example.org");
	} else if (b % 6 == 3) {
		st->status = AUTH_FAILED;
		/* the name as given: the session must keep it printable in the log */
		snprintf(st->user, sizeof(st->user), "%.*s", (int)(st->in_len < 40 ? st->in_len : 40),
			 (const char *)st->in);
	} else {
		st->status = b % 6 == 4 ? AUTH_TEMPFAIL : AUTH_MALFORMED;
	}
	smtp_session_auth_done(r->s, st);
	if (st->out)
		FAIL("challenge not freed");
}

static void r_auth_step(void *ctx, struct auth_step *st)
{
	struct run *r = ctx;

	if (r->rreq || r->dv || r->astep || r->sreq)
		FAIL("two requests in flight");
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
	if (r->async)
		r->astep = st;
	else
		answer_auth(r, st);
}

static void r_auth_end(void *ctx)
{
	struct run *r = ctx;

	if (!r->auth_open || r->astep)
		FAIL("auth_end without an open exchange, or with a step in flight");
	r->auth_open = 0;
	r->n_end++;
}

static void answer_sender(struct run *r, struct smtp_sender_req *req)
{
	if (!req->address[0] || !req->user || !req->user[0])
		FAIL("sender check without an address or a user");
	if (req->address[0] == 't')
		req->status = SMTP_SENDER_TEMPFAIL;
	else if (req->address[0] == req->user[0])
		req->status = SMTP_SENDER_OK;
	else
		req->status = SMTP_SENDER_NOT_OWNED;
	smtp_session_sender_done(r->s, req);
}

static void r_sender_check(void *ctx, struct smtp_sender_req *req)
{
	struct run *r = ctx;

	if (r->rreq || r->dv || r->astep || r->sreq)
		FAIL("two requests in flight");
	if (r->async)
		r->sreq = req;
	else
		answer_sender(r, req);
}

static const struct smtp_io fuzz_io = {
	.write = r_write, .close = r_close, .set_timeout = r_set_timeout, .now = r_now,
	.rcpt = r_rcpt, .deliver = r_deliver, .resume = r_resume, .start_tls = r_start_tls,
};

static const struct smtp_io fuzz_auth_io = {
	.write = r_write, .close = r_close, .set_timeout = r_set_timeout, .now = r_now,
	.rcpt = r_rcpt, .deliver = r_deliver, .resume = r_resume, .start_tls = r_start_tls,
	.auth_mechs = r_auth_mechs, .auth_step = r_auth_step, .auth_end = r_auth_end,
	.sender_check = r_sender_check,
};

static const struct tls_info fuzz_tls = { .version = "TLS1.3", .cipher = "TLS_AES_256_GCM_SHA384" };

/* After start_tls: the session takes nothing; the harness drops what the
 * glue would (the rest of the line behind STARTTLS, when asked), then the
 * handshake is done. Returns 1 while still waiting for more input. */
static int tls_step(struct run *r, int at_end)
{
	if (!r->tls_checked) {
		/* the session stopped right after the STARTTLS line */
		if (r->consumed == 0 || r->stream[r->consumed - 1] != '\n')
			FAIL("STARTTLS did not end at a line end");
		r->tls_checked = 1;
	}
	if (r->held.len && smtp_session_input(r->s, r->held.data, r->held.len) != 0)
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
	smtp_session_tls_started(r->s, &fuzz_tls);
	return 0;
}

static void pump(struct run *r)
{
	while (r->held.len > 0) {
		size_t n;

		if (r->tls_wanted) {
			if (tls_step(r, 0))
				return;
			continue;
		}
		n = smtp_session_input(r->s, r->held.data, r->held.len);
		r->consumed += n;
		if (r->tls_wanted) {
			buf_consume(&r->held, n);
			continue;
		}
		if (smtp_session_busy(r->s)) {
			buf_consume(&r->held, n);
			if (smtp_session_input(r->s, r->held.data, r->held.len) != 0)
				FAIL("busy session consumed input");
			return;
		}
		if (n == 0)
			FAIL("idle session consumed nothing");
		buf_consume(&r->held, n);
	}
}

static void answer(struct run *r)
{
	while (r->rreq || r->dv || r->astep || r->sreq) {
		if (r->rreq) {
			struct smtp_rcpt_req *q = r->rreq;

			r->rreq = NULL;
			answer_rcpt(r, q);
		} else if (r->astep) {
			struct auth_step *st = r->astep;

			r->astep = NULL;
			answer_auth(r, st);
		} else if (r->sreq) {
			struct smtp_sender_req *q = r->sreq;

			r->sreq = NULL;
			answer_sender(r, q);
		} else {
			struct smtp_delivery *d = r->dv;

			r->dv = NULL;
			smtp_session_deliver_done(r->s, d, deliver_result(d));
		}
		if (r->resume_wanted) {
			r->resume_wanted = 0;
			pump(r);
		}
	}
}

static void run(struct run *r, const struct smtp_config *cfg, int tls, enum tls_mode mode, int drop_line,
		int async, unsigned seed, unsigned flags, int with_auth, const uint8_t *data, size_t size)
{
	struct smtp_session_params p = {
		.cfg = cfg, .hostname = "mx.test", .sid = "F1",
		.client_addr = "2001:db8::1", .client_name = NULL, .tls = tls ? &fuzz_tls : NULL,
		.tls_mode = mode,
		.submission = (flags & 64) != 0,
	};
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	r->async = async;
	r->now = 5000;
	r->stream = data;
	r->drop_line = drop_line;
	r->tls_active = tls;
	r->plain_in_clear = (flags & 128) != 0;
	buf_init(&r->out, 0);
	buf_init(&r->dl, 0);
	buf_init(&r->held, 0);
	r->s = smtp_session_new(&p, with_auth ? &fuzz_auth_io : &fuzz_io, r);
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
		r->now += (seed >> 20) % 4000;  /* 0 to 4 s between pieces */
		pump(r);
		if (!smtp_session_busy(r->s) && r->held.len > 1024)
			FAIL("caller has to hold more than 1024 bytes");
		if (async && (seed >> 8) % 3 == 0)
			answer(r);
	}
	answer(r);
	while (r->tls_wanted) {
		/* the stream ended during the handshake */
		tls_step(r, 1);
		pump(r);
		answer(r);
	}
	if (r->held.len && r->closed && !smtp_session_busy(r->s)) {
		/* closed by the answer to a request (the third failed AUTH)
		 * while input was held: the connection drops it, and the
		 * session must too */
		if (smtp_session_input(r->s, r->held.data, r->held.len) != r->held.len)
			FAIL("closed session kept input");
		buf_reset(&r->held);
	}
	if (r->held.len)
		FAIL("input left over");
	smtp_session_timeout(r->s);
	smtp_session_disconnected(r->s);
	smtp_session_free(&r->s);
	if (r->auth_open || r->n_first != r->n_end)
		FAIL("an exchange was not ended exactly once");
}

static void run_free(struct run *r)
{
	buf_release(&r->out);
	buf_release(&r->dl);
	buf_release(&r->held);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_config cfg;
	struct run a, b;
	unsigned flags, seed;
	enum tls_mode mode;
	int tls, with_auth;

	if (size < 2)
		return 0;
	flags = data[0];
	seed = data[1] | 0x100u;   /* never 0: the second run always splits */
	data += 2;
	size -= 2;

	log_set_level(LOG_ERROR);
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_message_size = (flags & 4) ? 300 : 100000;
	cfg.max_recipients = (flags & 4) ? 3 : 100;
	cfg.bare_newline = (flags & 2) ? BARE_LF_REJECT : BARE_LF_NORMALIZE;
	strcpy(cfg.recipient_delimiter, "+");
	cfg.command_timeout = (flags & 4) ? 3 : 300;
	cfg.data_timeout = (flags & 4) ? 2 : 300;
	cfg.min_data_rate = (flags & 4) ? 1 : 500;
	cfg.max_bad_commands = (flags & 4) ? 5 : 20;
	cfg.max_pipeline = (flags & 4) ? 2 : 100;

	mode = (enum tls_mode)((flags >> 4) & 3);
	tls = (flags & 8) || mode == TLS_MODE_IMPLICIT;
	cfg.received_hide_client = (flags & 128) != 0;
	with_auth = (flags & 64) || !(seed & 2);
	run(&a, &cfg, tls, mode, seed & 1, 0, 0, flags, with_auth, data, size);
	run(&b, &cfg, tls, mode, seed & 1, flags & 1, seed, flags, with_auth, data, size);
	if (getenv("FUZZ_SMTP_SESSION_DUMP"))
		fprintf(stderr, "%.*s", (int)a.out.len, a.out.data ? a.out.data : "");
	if (a.out.len != b.out.len || (a.out.len && memcmp(a.out.data, b.out.data, a.out.len) != 0)) {
		fprintf(stderr, "--- all at once:\n%s\n--- in pieces:\n%s\n",
			a.out.data ? a.out.data : "", b.out.data ? b.out.data : "");
		FAIL("replies depend on how the input was split");
	}
	if (a.dl.len != b.dl.len || (a.dl.len && memcmp(a.dl.data, b.dl.data, a.dl.len) != 0))
		FAIL("deliveries depend on how the input was split");
	run_free(&a);
	run_free(&b);
	return 0;
}
