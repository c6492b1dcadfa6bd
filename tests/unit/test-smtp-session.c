/*
 * Unit tests for the SMTP session state machine (smtp/smtp-session.c).
 *
 * Every table case runs six times: input fed all at once, one byte at a
 * time, and in pseudo-random pieces, each with a synchronous io (requests
 * answered from inside the call) and an asynchronous one (requests answered
 * later, while the harness holds the input the session did not consume, as
 * the connection glue does). The harness checks the input contract on the
 * way: a busy session consumes nothing, an idle one never leaves more than
 * a few bytes for the caller to hold, and held input resumes only after
 * io->resume.
 *
 * Time is a fake clock (f->now, milliseconds) that only tick() moves; tick()
 * fires the session's timer when the clock passes the deadline it armed, as
 * the loop would.
 *
 * AUTH: the fake glue offers "X-TWO" everywhere and "PLAIN LOGIN" under
 * TLS (or in clear when the case says so). PLAIN knows alice/secret (user
 * alice@example.org), "tempfail" (454) and fails anyone else; LOGIN asks
 * "Username:" and "Password:" with the same accounts; X-TWO is a fake
 * mechanism with two round trips whose first challenge says what it got
 * ("absent", "empty", or the octets 00 ff "ok"), and whose second answer
 * "alice:secret" or "bob:secret" succeeds ("again" asks a third time with
 * an empty challenge). The sender check lets alice use alice@, alice+tag@
 * and team@example.org, fails temp@example.org and refuses the rest.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "smtp/smtp-session.h"

static int failures;
static const char *current = "";

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		failures++; \
		printf("FAIL %s:%d [%s]: ", __FILE__, __LINE__, current); \
		printf(__VA_ARGS__); \
		printf("\n"); \
	} \
} while (0)

/* ---- the fake connection and io ---- */

#define MAX_DL 4

struct delivery {
	char *received, *body, *from, *targets;
	size_t body_len;
	uint64_t size;
};

struct fake {
	struct smtp_session *s;
	struct buf out;             /* every reply written */
	int closed;
	char reason[64];
	unsigned timeout;           /* last set_timeout, ms */
	uint64_t now;               /* the fake clock, ms */
	uint64_t timer_at;          /* when the armed timer fires; 0: not armed */
	unsigned n_arms;            /* set_timeout calls */
	int async;
	int deliver_result;
	int gone;                   /* disconnected: io must not be called */
	int io_after_gone;
	struct smtp_rcpt_req *rreq; /* async requests waiting for an answer */
	struct smtp_delivery *dv;
	struct delivery dl[MAX_DL];
	int n_dl;
	struct buf queries;         /* recipient addresses asked, space-separated */
	uint64_t last_size_hint;
	int resume_wanted;
	int resumes;
	struct buf held;            /* input the session did not consume */
	size_t max_held_idle;       /* most ever held while the session was idle */
	/* STARTTLS: after io->start_tls the harness does what the glue does:
	 * it throws away the input it holds and what arrives before the
	 * handshake is done, then calls smtp_session_tls_started() */
	int tls_wanted;             /* start_tls called, tls_started not yet */
	int n_start_tls;
	struct buf dropped;         /* input thrown away for the handshake */
	/* AUTH and submission */
	int tls_active;             /* encrypted now: what the glue's mechanism list depends on */
	int plain_in_clear;         /* PLAIN and LOGIN offered without TLS */
	struct auth_step *astep;    /* async step waiting for an answer */
	struct smtp_sender_req *sreq;
	int auth_open;              /* a first step was seen, auth_end not yet */
	int n_first_steps, n_auth_end, n_steps;
	int login_stage;            /* LOGIN: 1 after the user name */
	char login_user[64];            /* as long as answer_auth's copy of the input */
	int xtwo_stage;
	struct buf senders;         /* sender checks asked: "address/user ..." */
};

static void f_write(void *ctx, const char *data, size_t len)
{
	struct fake *f = ctx;

	if (f->gone)
		f->io_after_gone++;
	if (f->closed)
		CHECK(0, "write after close: %.*s", (int)len, data);
	buf_add(&f->out, data, len);
}

static void f_close(void *ctx, const char *reason)
{
	struct fake *f = ctx;

	if (f->gone)
		f->io_after_gone++;
	CHECK(!f->closed, "close called twice");
	f->closed = 1;
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
}

static void f_set_timeout(void *ctx, unsigned ms)
{
	struct fake *f = ctx;

	if (f->gone)
		f->io_after_gone++;
	CHECK(ms > 0, "timer armed with 0 ms");
	f->timeout = ms;
	f->timer_at = f->now + ms;
	f->n_arms++;
}

static uint64_t f_now(void *ctx)
{
	struct fake *f = ctx;

	return f->now;
}

/* The directory: a few users, an alias, a disabled and a full mailbox. */
static void answer_rcpt(struct fake *f, struct smtp_rcpt_req *req)
{
	static const struct {
		const char *address;
		enum smtp_rcpt_status status;
		const char *targets;
	} dir[] = {
		{ "alice@example.org", SMTP_RCPT_OK, "alice@example.org" },
		{ "alice+tag@example.org", SMTP_RCPT_OK, "alice@example.org" },
		{ "bob@example.org", SMTP_RCPT_OK, "bob@example.org" },
		{ "team@example.org", SMTP_RCPT_OK, "alice@example.org bob@example.org" },
		{ "j\xc3\xb6rg@example.org", SMTP_RCPT_OK, "j\xc3\xb6rg@example.org" },
		{ "Postmaster@mx.test", SMTP_RCPT_OK, "postmaster@example.org" },
		{ "carol@example.org", SMTP_RCPT_DISABLED, NULL },
		{ "dave@example.org", SMTP_RCPT_OVER_QUOTA, NULL },
		{ "temp@example.org", SMTP_RCPT_TEMPFAIL, NULL },
		{ "empty@example.org", SMTP_RCPT_OK, "" },
	};
	const char *a = req->address;
	const char *at = strrchr(a, '@');

	req->status = SMTP_RCPT_NO_USER;
	if (!at || strcmp(at, "@example.org") != 0 || strpbrk(a, "%!\""))
		req->status = SMTP_RCPT_NOT_LOCAL;
	for (size_t i = 0; i < ARRAY_SIZE(dir); i++) {
		if (strcmp(dir[i].address, a) != 0)
			continue;
		req->status = dir[i].status;
		if (dir[i].targets) {
			char tmp[256], *save = NULL;

			snprintf(tmp, sizeof(tmp), "%s", dir[i].targets);
			req->targets = xcalloc(4, sizeof(char *));
			for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save))
				req->targets[req->n_targets++] = xstrdup(t);
		}
	}
	smtp_session_rcpt_done(f->s, req);
}

static void f_rcpt(void *ctx, struct smtp_rcpt_req *req)
{
	struct fake *f = ctx;

	if (f->gone)
		f->io_after_gone++;
	CHECK(f->rreq == NULL && f->dv == NULL && f->astep == NULL && f->sreq == NULL,
	      "rcpt while another request is in flight");
	CHECK(smtp_session_busy(f->s), "not busy during rcpt");
	if (f->queries.len)
		buf_addch(&f->queries, ' ');
	buf_adds(&f->queries, req->address);
	f->last_size_hint = req->size_hint;
	if (f->async)
		f->rreq = req;
	else
		answer_rcpt(f, req);
}

static void f_deliver(void *ctx, struct smtp_delivery *dv)
{
	struct fake *f = ctx;
	struct delivery *d;
	struct buf t = BUF_INIT(0);

	if (f->gone)
		f->io_after_gone++;
	CHECK(f->rreq == NULL && f->dv == NULL && f->astep == NULL && f->sreq == NULL,
	      "deliver while another request is in flight");
	CHECK(f->n_dl < MAX_DL, "too many deliveries");
	CHECK(dv->body->data != NULL, "body without a data pointer");
	if (f->n_dl < MAX_DL) {
		d = &f->dl[f->n_dl++];
		d->received = xstrdup(dv->received);
		d->from = xstrdup(dv->return_path);
		d->body_len = dv->body->len;
		d->body = xmalloc(dv->body->len + 1);
		if (dv->body->len)
			memcpy(d->body, dv->body->data, dv->body->len);
		d->body[dv->body->len] = '\0';
		d->size = dv->size;
		for (size_t i = 0; i < dv->n_targets; i++) {
			if (i)
				buf_addch(&t, ' ');
			buf_adds(&t, dv->targets[i]);
		}
		d->targets = xstrdup(t.data ? t.data : "");
		buf_release(&t);
	}
	if (f->async)
		f->dv = dv;
	else
		smtp_session_deliver_done(f->s, dv, f->deliver_result);
}

static void f_resume(void *ctx)
{
	struct fake *f = ctx;

	if (f->gone)
		f->io_after_gone++;
	f->resume_wanted = 1;
	f->resumes++;
}

static void f_start_tls(void *ctx)
{
	static const char ready[] = "220 2.0.0 Ready to start TLS\r\n";
	struct fake *f = ctx;

	if (f->gone)
		f->io_after_gone++;
	CHECK(!f->tls_wanted, "start_tls twice");
	/* the 220 is queued before the glue is told */
	CHECK(f->out.len >= sizeof(ready) - 1 &&
	      memcmp(f->out.data + f->out.len - (sizeof(ready) - 1), ready, sizeof(ready) - 1) == 0,
	      "start_tls before the 220 was written");
	f->tls_wanted = 1;
	f->n_start_tls++;
}

static const char *f_auth_mechs(void *ctx)
{
	struct fake *f = ctx;

	if (f->gone)
		f->io_after_gone++;
	return f->tls_active || f->plain_in_clear ? "X-TWO PLAIN LOGIN" : "X-TWO";
}

/* out = a malloc'd copy of the n octets at p (the session frees it). */
static void set_out(struct auth_step *st, const char *p, size_t n)
{
	st->out = xmalloc(n ? n : 1);
	memcpy(st->out, p, n);
	st->out_len = n;
}

/* alice/secret is the one good password; "tempfail" is a directory outage. */
static enum auth_status check_password(struct auth_step *st, const char *user, const char *pass)
{
	if (strcmp(user, "tempfail") == 0)
		return AUTH_TEMPFAIL;
	if ((strcmp(user, "alice") == 0 || strcmp(user, "alice@example.org") == 0) && strcmp(pass, "secret") == 0) {
		strcpy(st->user, "alice@example.org");
		return AUTH_OK;
	}
	snprintf(st->user, sizeof(st->user), "%s", user);  /* as given, for the log */
	return AUTH_FAILED;
}

static void answer_auth(struct fake *f, struct auth_step *st)
{
	char in[64];
	size_t n = st->in_len < sizeof(in) - 1 ? st->in_len : sizeof(in) - 1;

	memcpy(in, st->in, n);
	in[n] = '\0';
	if (strcmp(st->mech, "PLAIN") == 0) {
		const char *authcid = memchr(in, '\0', n);
		const char *pass = authcid ? memchr(authcid + 1, '\0', n - (size_t)(authcid + 1 - in)) : NULL;

		if (st->in_absent)
			st->status = AUTH_CONTINUE;  /* an empty challenge, out NULL */
		else if (!pass || memchr(pass + 1, '\0', n - (size_t)(pass + 1 - in)))
			st->status = AUTH_MALFORMED;
		else
			st->status = check_password(st, authcid + 1, pass + 1);
	} else if (strcmp(st->mech, "LOGIN") == 0) {
		if (st->first)
			f->login_stage = 0;
		if (st->first && st->in_absent) {
			set_out(st, "Username:", 9);
			st->status = AUTH_CONTINUE;
		} else if (f->login_stage == 0) {
			snprintf(f->login_user, sizeof(f->login_user), "%s", in);
			f->login_stage = 1;
			set_out(st, "Password:", 9);
			st->status = AUTH_CONTINUE;
		} else {
			st->status = check_password(st, f->login_user, in);
		}
	} else if (strcmp(st->mech, "X-TWO") == 0) {
		if (st->first) {
			f->xtwo_stage = 0;
			if (st->in_absent)
				set_out(st, "absent", 6);
			else if (n == 0)
				set_out(st, "empty", 5);
			else
				set_out(st, "\0\xffok", 4);
			st->status = AUTH_CONTINUE;
		} else if (strcmp(in, "again") == 0 && f->xtwo_stage++ == 0) {
			st->status = AUTH_CONTINUE;
			set_out(st, "", 0);  /* an empty challenge with a pointer */
		} else if (strcmp(in, "alice:secret") == 0 || strcmp(in, "bob:secret") == 0) {
			snprintf(st->user, sizeof(st->user), "%.*s@example.org", (int)strcspn(in, ":"), in);
			st->status = AUTH_OK;
		} else {
			st->status = AUTH_FAILED;
		}
	} else {
		CHECK(0, "auth step for mechanism %s", st->mech);
		st->status = AUTH_FAILED;
	}
	smtp_session_auth_done(f->s, st);
	CHECK(st->out == NULL, "challenge not freed by the session");
}

static void f_auth_step(void *ctx, struct auth_step *st)
{
	struct fake *f = ctx;

	if (f->gone)
		f->io_after_gone++;
	CHECK(f->rreq == NULL && f->dv == NULL && f->astep == NULL && f->sreq == NULL,
	      "auth step while another request is in flight");
	CHECK(smtp_session_busy(f->s), "not busy during an auth step");
	CHECK(st->first == !f->auth_open, "first %d with an exchange %s", st->first,
	      f->auth_open ? "open" : "closed");
	CHECK(st->in != NULL && (!st->in_absent || (st->first && st->in_len == 0)), "bad step input");
	CHECK(st->out == NULL && st->out_len == 0, "step with a challenge set");
	if (st->first) {
		f->auth_open = 1;
		f->n_first_steps++;
	}
	f->n_steps++;
	if (f->async)
		f->astep = st;
	else
		answer_auth(f, st);
}

static void f_auth_end(void *ctx)
{
	struct fake *f = ctx;

	/* the one call allowed after a disconnect */
	CHECK(f->auth_open, "auth_end without an open exchange");
	CHECK(f->astep == NULL, "auth_end with a step in flight");
	f->auth_open = 0;
	f->n_auth_end++;
}

static void answer_sender(struct fake *f, struct smtp_sender_req *req)
{
	static const char *const alice[] = { "alice@example.org", "alice+tag@example.org", "team@example.org" };

	req->status = SMTP_SENDER_NOT_OWNED;
	if (strcmp(req->address, "temp@example.org") == 0)
		req->status = SMTP_SENDER_TEMPFAIL;
	for (size_t i = 0; i < ARRAY_SIZE(alice); i++)
		if (strcmp(req->user, "alice@example.org") == 0 && strcmp(req->address, alice[i]) == 0)
			req->status = SMTP_SENDER_OK;
	if (strcmp(req->user, "bob@example.org") == 0 && strcmp(req->address, "bob@example.org") == 0)
		req->status = SMTP_SENDER_OK;
	smtp_session_sender_done(f->s, req);
}

static void f_sender_check(void *ctx, struct smtp_sender_req *req)
{
	struct fake *f = ctx;

	if (f->gone)
		f->io_after_gone++;
	CHECK(f->rreq == NULL && f->dv == NULL && f->astep == NULL && f->sreq == NULL,
	      "sender check while another request is in flight");
	CHECK(smtp_session_busy(f->s), "not busy during a sender check");
	if (f->senders.len)
		buf_addch(&f->senders, ' ');
	buf_printf(&f->senders, "%s/%s", req->address, req->user);
	if (f->async)
		f->sreq = req;
	else
		answer_sender(f, req);
}

static const struct smtp_io fake_io = {
	.write = f_write, .close = f_close, .set_timeout = f_set_timeout, .now = f_now,
	.rcpt = f_rcpt, .deliver = f_deliver, .resume = f_resume, .start_tls = f_start_tls,
};

/* The same with AUTH and the sender check. */
static const struct smtp_io fake_auth_io = {
	.write = f_write, .close = f_close, .set_timeout = f_set_timeout, .now = f_now,
	.rcpt = f_rcpt, .deliver = f_deliver, .resume = f_resume, .start_tls = f_start_tls,
	.auth_mechs = f_auth_mechs, .auth_step = f_auth_step, .auth_end = f_auth_end,
	.sender_check = f_sender_check,
};

/* While the handshake runs the session takes nothing; the glue drops what
 * it holds. */
static void drop_for_tls(struct fake *f)
{
	if (f->held.len) {
		size_t n = smtp_session_input(f->s, f->held.data, f->held.len);

		CHECK(n == 0, "session consumed %zu bytes while waiting for TLS", n);
		buf_add(&f->dropped, f->held.data, f->held.len);
		buf_reset(&f->held);
	}
}

/* Moves the clock ms forward, firing the timer as the loop would. */
static void tick(struct fake *f, uint64_t ms)
{
	f->now += ms;
	if (f->timer_at && f->now >= f->timer_at && !f->closed && !f->gone) {
		f->timer_at = 0;
		smtp_session_timeout(f->s);
	}
}

/* Passes the held input to the session, as the connection does on a read
 * or on io->resume. */
static void pump(struct fake *f)
{
	int rounds = 0;

	while (f->held.len > 0) {
		size_t n;

		if (f->tls_wanted) {
			drop_for_tls(f);
			return;
		}
		if (smtp_session_busy(f->s)) {
			n = smtp_session_input(f->s, f->held.data, f->held.len);
			CHECK(n == 0, "busy session consumed %zu bytes", n);
			return;
		}
		n = smtp_session_input(f->s, f->held.data, f->held.len);
		buf_consume(&f->held, n);
		if (f->tls_wanted)
			continue;  /* dropped at the top of the loop */
		if (n == 0 && !smtp_session_busy(f->s)) {
			CHECK(0, "idle session consumed nothing of %zu bytes", f->held.len);
			return;
		}
		/* n < len without a request in flight: the max_pipeline bound;
		 * the connection calls again once its replies drained. */
		if (++rounds > 100000) {
			CHECK(0, "input loop does not end");
			return;
		}
	}
}

static void feed(struct fake *f, const char *data, size_t len)
{
	if (buf_add(&f->held, data, len) < 0)
		CHECK(0, "harness buffer full");
	pump(f);
	if (!smtp_session_busy(f->s) && f->held.len > f->max_held_idle)
		f->max_held_idle = f->held.len;
}

/* Answers the requests in flight (async mode), then feeds what was held if
 * the session asked for it. */
static void answer(struct fake *f)
{
	while (f->rreq || f->dv || f->astep || f->sreq) {
		if (f->rreq) {
			struct smtp_rcpt_req *r = f->rreq;

			f->rreq = NULL;
			answer_rcpt(f, r);
		} else if (f->astep) {
			struct auth_step *st = f->astep;

			f->astep = NULL;
			answer_auth(f, st);
		} else if (f->sreq) {
			struct smtp_sender_req *q = f->sreq;

			f->sreq = NULL;
			answer_sender(f, q);
		} else {
			struct smtp_delivery *d = f->dv;

			f->dv = NULL;
			smtp_session_deliver_done(f->s, d, f->deliver_result);
		}
		if (f->resume_wanted) {
			f->resume_wanted = 0;
			pump(f);
		}
	}
}

static struct smtp_config test_cfg(void)
{
	struct smtp_config c;

	memset(&c, 0, sizeof(c));
	c.max_message_size = 10000;
	c.max_recipients = 100;
	c.bare_newline = BARE_LF_NORMALIZE;
	strcpy(c.recipient_delimiter, "+");
	c.command_timeout = 111;
	c.data_timeout = 222;
	c.max_bad_commands = 10;
	c.max_pipeline = 100;
	c.min_data_rate = 500;
	return c;
}

static const struct tls_info test_tls = { .version = "TLS1.3", .cipher = "TLS_AES_256_GCM_SHA384" };

/* The handshake is done: what the harness held was dropped. */
static void tls_done(struct fake *f)
{
	CHECK(f->tls_wanted, "tls_done without start_tls");
	drop_for_tls(f);
	f->tls_wanted = 0;
	f->tls_active = 1;
	smtp_session_tls_started(f->s, &test_tls);
}

enum fake_flags {
	FK_AUTH = 1 << 0,           /* the glue offers AUTH */
	FK_PLAIN_CLEAR = 1 << 1,    /* PLAIN and LOGIN in clear too */
	FK_SUBMISSION = 1 << 2,
	FK_AUTH_REQUIRED = 1 << 3,
};

static void fake_start_flags(struct fake *f, const struct smtp_config *cfg, int async, int tls,
			     enum tls_mode mode, unsigned flags)
{
	struct smtp_session_params p = {
		.cfg = cfg, .hostname = "mx.test", .sid = "S1",
		.client_addr = "192.0.2.1", .client_name = "client.example.net", .tls = tls ? &test_tls : NULL,
		.tls_mode = mode,
		.submission = (flags & FK_SUBMISSION) != 0,
		.auth_required = (flags & FK_AUTH_REQUIRED) != 0,
	};

	memset(f, 0, sizeof(*f));
	buf_init(&f->out, 0);
	buf_init(&f->held, 0);
	buf_init(&f->queries, 0);
	buf_init(&f->dropped, 0);
	buf_init(&f->senders, 0);
	f->async = async;
	f->now = 1000000;  /* a clock that does not start at 0 */
	f->tls_active = tls;
	f->plain_in_clear = (flags & FK_PLAIN_CLEAR) != 0;
	f->s = smtp_session_new(&p, (flags & (FK_AUTH | FK_SUBMISSION)) ? &fake_auth_io : &fake_io, f);
}

static void fake_start_mode(struct fake *f, const struct smtp_config *cfg, int async, int tls,
			    enum tls_mode mode)
{
	fake_start_flags(f, cfg, async, tls, mode, 0);
}

static void fake_start(struct fake *f, const struct smtp_config *cfg, int async, int tls)
{
	fake_start_mode(f, cfg, async, tls, tls ? TLS_MODE_IMPLICIT : TLS_MODE_NONE);
}

static void fake_end(struct fake *f)
{
	answer(f);
	if (!f->gone)
		smtp_session_disconnected(f->s);
	smtp_session_free(&f->s);
	CHECK(f->s == NULL, "free did not clear the pointer");
	for (int i = 0; i < f->n_dl; i++) {
		free(f->dl[i].received);
		free(f->dl[i].body);
		free(f->dl[i].from);
		free(f->dl[i].targets);
	}
	buf_release(&f->out);
	buf_release(&f->held);
	buf_release(&f->queries);
	buf_release(&f->dropped);
	buf_release(&f->senders);
	/* every exchange that reached the glue was ended, once */
	CHECK(!f->auth_open && f->n_auth_end == f->n_first_steps, "%d exchanges, %d auth_end calls",
	      f->n_first_steps, f->n_auth_end);
}

/* ---- checks ---- */

/* "Www, D Mmm YYYY HH:MM:SS +0000" (RFC 5322 3.3) */
static int date_ok(const char *d, size_t len)
{
	static const char *const days = "Mon Tue Wed Thu Fri Sat Sun";
	static const char *const months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec";
	char w[4], m[4];
	int day, year, hh, mm, ss, n = 0;

	if (len > 40)
		return 0;
	if (sscanf(d, "%3[A-Za-z], %d %3[A-Za-z] %4d %2d:%2d:%2d +0000%n",
		   w, &day, m, &year, &hh, &mm, &ss, &n) != 7 || (size_t)n != len)
		return 0;
	return strstr(days, w) && strstr(months, m) && day >= 1 && day <= 31 &&
	       year >= 2024 && hh < 24 && mm < 60 && ss < 61;
}

struct dcheck {
	const char *body;
	const char *targets;   /* NULL: no delivery expected */
	const char *from;
	const char *for_rcpt;  /* NULL: no "for" clause */
	const char *proto;     /* NULL: "ESMTP"; comments included */
	int id;                /* 0: the delivery's index + 1 */
	int added;             /* submission: 1 Date added, 2 Message-ID added */
	int hidden;            /* received_hide_client: no client address and name */
};

static void check_delivery(const struct delivery *d, const struct dcheck *want, int index)
{
	char prefix[1024], tail[256];
	size_t plen, dlen;
	const char *date, *eol;

	CHECK(d->body_len == strlen(want->body) && memcmp(d->body, want->body, d->body_len) == 0,
	      "delivery %d body \"%s\", want \"%s\"", index, d->body, want->body);
	CHECK(strcmp(d->targets, want->targets) == 0, "delivery %d targets \"%s\", want \"%s\"",
	      index, d->targets, want->targets);
	CHECK(strcmp(d->from, want->from) == 0, "delivery %d return path \"%s\", want \"%s\"",
	      index, d->from, want->from);
	/* size: the body with every LF that was a CRLF counted twice, so at
	 * least the stored length */
	CHECK(d->size >= d->body_len, "delivery %d size %llu < body %zu", index,
	      (unsigned long long)d->size, d->body_len);

	snprintf(prefix, sizeof(prefix),
		 "Return-Path: <%s>\n"
		 "Received: from client.example%s\n"
		 "\tby mx.test (buzon) with %s id S1.%d%s%s%s",
		 want->from, want->hidden ? "" : " (client.example.net [192.0.2.1])",
		 want->proto ? want->proto : "ESMTP", want->id ? want->id : index + 1,
		 want->for_rcpt ? "\n\tfor <" : "; ",
		 want->for_rcpt ? want->for_rcpt : "",
		 want->for_rcpt ? ">; " : "");
	plen = strlen(prefix);
	CHECK(strncmp(d->received, prefix, plen) == 0, "delivery %d received:\n%s\nwant prefix:\n%s",
	      index, d->received, prefix);
	if (strncmp(d->received, prefix, plen) != 0)
		return;
	date = d->received + plen;
	eol = strchr(date, '\n');
	dlen = eol ? (size_t)(eol - date) : 0;
	CHECK(eol && date_ok(date, dlen), "delivery %d received date \"%s\"", index, date);
	if (!eol)
		return;
	/* what submission adds after Received: the same date, our id */
	tail[0] = '\0';
	if (want->added & 1)
		snprintf(tail, sizeof(tail), "Date: %.*s\n", (int)dlen, date);
	if (want->added & 2)
		snprintf(tail + strlen(tail), sizeof(tail) - strlen(tail), "Message-ID: <S1.%d@mx.test>\n",
			 want->id ? want->id : index + 1);
	CHECK(strcmp(eol + 1, tail) == 0, "delivery %d after Received:\n%s\nwant:\n%s", index, eol + 1, tail);
}

/* ---- table ---- */

struct scase {
	const char *name;
	const char *in;
	size_t in_len;
	const char *out;
	struct dcheck dl[MAX_DL];
	const char *queries;    /* recipient checks expected, NULL: not checked */
	int closed;
	/* configuration changes; 0 keeps the default of test_cfg() */
	int reject_bare_lf;
	uint64_t max_size;
	unsigned max_rcpt, max_bad, max_pipeline;
	int deliver_result;
	int tls;                /* encrypted from the start (implicit TLS) */
	/* STARTTLS: the listener's mode; in_tls is sent after the handshake
	 * (when there was one); dropped is what the harness must have thrown
	 * away for it: all the input after the STARTTLS line, no more, no less */
	enum tls_mode mode;
	const char *in_tls;
	size_t in_tls_len;
	const char *dropped;
	int starttls;           /* start_tls calls expected */
	/* AUTH and submission */
	unsigned flags;         /* enum fake_flags */
	int hide_client;        /* received_hide_client */
	const char *senders;    /* sender checks expected ("address/user ..."), NULL: not checked */
};

#define IN(s) .in = s, .in_len = sizeof(s) - 1
#define IN_TLS(s) .in_tls = s, .in_tls_len = sizeof(s) - 1
#define GREET "220 mx.test ESMTP buzon\r\n"
#define EHLO "EHLO client.example\r\n"
#define EHLO_OUT "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define MAIL_A "MAIL FROM:<sender@remote.example>\r\n"
#define RCPT_ALICE "RCPT TO:<alice@example.org>\r\n"
#define RCPT_BOB "RCPT TO:<bob@example.org>\r\n"
#define OK "250 2.0.0 Ok\r\n"
#define MAIL_OK "250 2.1.0 Ok\r\n"
#define RCPT_OK "250 2.1.5 Ok\r\n"
#define DATA_GO "354 2.0.0 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED(n) "250 2.0.0 Ok: queued as S1." #n "\r\n"
#define BYE "221 2.0.0 mx.test closing connection\r\n"
#define START EHLO MAIL_A RCPT_ALICE "DATA\r\n"
#define START_OUT GREET EHLO_OUT MAIL_OK RCPT_OK DATA_GO
#define ALICE(body) { body, "alice@example.org", "sender@remote.example", "alice@example.org", NULL }
#define X100 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define X1000 X100 X100 X100 X100 X100 X100 X100 X100 X100 X100
#define SMUGGLE "MAIL FROM:<evil@x.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nevil\r\n"
#define EHLO_STARTTLS_OUT "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n" \
	"250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define READY "220 2.0.0 Ready to start TLS\r\n"
#define MUST_TLS "530 5.7.0 Must issue a STARTTLS command first\r\n"
#define TLS_COMMENT "\n\t(version=TLS1.3 cipher=TLS_AES_256_GCM_SHA384)"
#define EHLO_AUTH_OUT(mechs) "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n" \
	"250-AUTH " mechs "\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define EHLO_STARTTLS_AUTH_OUT(mechs) "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n" \
	"250-STARTTLS\r\n250-AUTH " mechs "\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define CLEAR_MECHS "X-TWO"
#define TLS_MECHS "X-TWO PLAIN LOGIN"
#define PLAIN_ALICE "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"        /* \0alice\0secret */
#define PLAIN_WRONG "AUTH PLAIN AGFsaWNlAHdyb25n\r\n"            /* \0alice\0wrong */
#define MAIL_ALICE "MAIL FROM:<alice@example.org>\r\n"
#define AUTH_OK "235 2.7.0 Authentication successful\r\n"
#define AUTH_BAD "535 5.7.8 Authentication credentials invalid\r\n"
#define AUTH_TEMP "454 4.7.0 Temporary authentication failure\r\n"
#define AUTH_MALFORMED "501 5.5.2 Malformed authentication response\r\n"
#define AUTH_B64 "501 5.5.2 Cannot decode response\r\n"
#define AUTH_CANCEL "501 5.0.0 Authentication cancelled\r\n"
#define AUTH_TOO_LONG "500 5.5.6 Authentication Exchange line is too long\r\n"
#define AUTH_ENCRYPT "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
#define AUTH_UNKNOWN "504 5.5.4 Unrecognized authentication type\r\n"
#define AUTH_NEEDED "530 5.7.0 Authentication required\r\n"
#define CH_ABSENT "334 YWJzZW50\r\n"      /* X-TWO's first challenge: "absent" */
#define CH_EMPTY "334 ZW1wdHk=\r\n"       /* "empty" */
#define CH_BINARY "334 AP9vaw==\r\n"      /* 00 ff "ok" */
#define AS(u) "\n\t(authenticated as " u ")"
#define NOT_OWNED "553 5.7.1 Sender address rejected: not owned by user alice@example.org\r\n"
/* 12272 octets of valid base64 (it decodes to c7 1c 71 ...) */
#define B64_12272 X1000 X1000 X1000 X1000 X1000 X1000 X1000 X1000 X1000 X1000 X1000 X1000 X100 X100 \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static const struct scase cases[] = {
	{ .name = "basic transaction",
	  IN(START "Subject: hi\r\n\r\nHello\r\n.\r\nQUIT\r\n"),
	  .out = START_OUT QUEUED(1) BYE,
	  .dl = { ALICE("Subject: hi\n\nHello\n") },
	  .queries = "alice@example.org", .closed = 1 },
	{ .name = "HELO gives SMTP",
	  IN("HELO client.example\r\n" MAIL_A RCPT_ALICE "DATA\r\nx\r\n.\r\n"),
	  .out = GREET "250 mx.test\r\n" MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "x\n", "alice@example.org", "sender@remote.example", "alice@example.org", "SMTP" } } },
	{ .name = "TLS gives ESMTPS", .tls = 1,
	  IN(START "x\r\n.\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { { "x\n", "alice@example.org", "sender@remote.example", "alice@example.org", "ESMTPS" TLS_COMMENT } } },
	{ .name = "lower-case commands, null sender",
	  IN("ehlo client.example\r\nmail from:<>\r\nrcpt to:<alice@example.org>\r\ndata\r\nx\r\n.\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { { "x\n", "alice@example.org", "", "alice@example.org", NULL } } },
	{ .name = "empty message",
	  IN(START ".\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("") } },
	{ .name = "dot-unstuffing",
	  IN(START "..one\r\n.two\r\n...\r\n. \r\nend.\r\n.\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE(".one\ntwo\n..\n \nend.\n") } },
	{ .name = "dot-unstuffing after a bare LF (normalize)",
	  IN(START "a\n..b\n.c\r\n.\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("a\n.b\nc\n") } },
	{ .name = "bare LF normalized",
	  IN(START "line1\nline2\r\n\n\r\n.\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("line1\nline2\n\n\n") } },
	{ .name = "bare CR kept",
	  IN(START "a\rb\r\r\n\r.\r\n.\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("a\rb\r\n\r.\n") } },
	{ .name = "two messages and QUIT pipelined",
	  IN(START "one\r\n.\r\n" MAIL_A RCPT_BOB "DATA\r\ntwo\r\n.\r\nQUIT\r\n"),
	  .out = START_OUT QUEUED(1) MAIL_OK RCPT_OK DATA_GO QUEUED(2) BYE,
	  .dl = { ALICE("one\n"),
		  { "two\n", "bob@example.org", "sender@remote.example", "bob@example.org", NULL } },
	  .queries = "alice@example.org bob@example.org", .closed = 1 },

	/* SMTP smuggling: none of these ends the data, so the "evil" commands
	 * stay inside the one message */
	{ .name = "smuggling <LF>.<LF>",
	  IN(START "Hi\n.\n" SMUGGLE ".\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("Hi\n.\nMAIL FROM:<evil@x.example>\nRCPT TO:<bob@example.org>\nDATA\nevil\n") },
	  .queries = "alice@example.org" },
	{ .name = "smuggling <CR>.<CR>",
	  IN(START "Hi\r.\r" SMUGGLE ".\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("Hi\r.\rMAIL FROM:<evil@x.example>\nRCPT TO:<bob@example.org>\nDATA\nevil\n") },
	  .queries = "alice@example.org" },
	{ .name = "smuggling <CR>.<CRLF>",
	  IN(START "Hi\r.\r\n" SMUGGLE ".\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("Hi\r.\nMAIL FROM:<evil@x.example>\nRCPT TO:<bob@example.org>\nDATA\nevil\n") } },
	{ .name = "smuggling <CRLF>.<LF>",
	  IN(START "Hi\r\n.\n" SMUGGLE ".\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("Hi\n.\nMAIL FROM:<evil@x.example>\nRCPT TO:<bob@example.org>\nDATA\nevil\n") } },
	{ .name = "smuggling <LF>.<CRLF>",
	  IN(START "Hi\n.\r\n" SMUGGLE ".\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("Hi\n.\nMAIL FROM:<evil@x.example>\nRCPT TO:<bob@example.org>\nDATA\nevil\n") } },
	{ .name = "smuggling <CRLF>.<CR>x",
	  IN(START "Hi\r\n.\rX" SMUGGLE ".\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("Hi\n\rXMAIL FROM:<evil@x.example>\nRCPT TO:<bob@example.org>\nDATA\nevil\n") } },
	{ .name = "smuggling <CRLF>.<CR><CRLF>",
	  IN(START "Hi\r\n.\r\r\n" SMUGGLE ".\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("Hi\n\r\nMAIL FROM:<evil@x.example>\nRCPT TO:<bob@example.org>\nDATA\nevil\n") } },
	{ .name = "smuggling <LF>.<LF> refused in reject mode", .reject_bare_lf = 1,
	  IN(START "Hi\n.\n" SMUGGLE ".\r\nNOOP\r\n"),
	  .out = START_OUT "550 5.5.2 Message contains bare LF, lines must end with CRLF\r\n" OK,
	  .queries = "alice@example.org" },
	{ .name = "smuggling <CR>.<CR> in reject mode: bare CR is data", .reject_bare_lf = 1,
	  IN(START "Hi\r.\r" SMUGGLE ".\r\n"),
	  .out = START_OUT QUEUED(1),
	  .dl = { ALICE("Hi\r.\rMAIL FROM:<evil@x.example>\nRCPT TO:<bob@example.org>\nDATA\nevil\n") } },

	{ .name = "bare LF in content refused", .reject_bare_lf = 1,
	  IN(START "a\nb\r\n.\r\n" MAIL_A RCPT_ALICE "DATA\r\nok\r\n.\r\n"),
	  .out = START_OUT "550 5.5.2 Message contains bare LF, lines must end with CRLF\r\n"
		 MAIL_OK RCPT_OK DATA_GO QUEUED(2),
	  .dl = { { "ok\n", "alice@example.org", "sender@remote.example", "alice@example.org", NULL, 2 } } },
	{ .name = "command ending in bare LF refused", .reject_bare_lf = 1,
	  IN("EHLO client.example\nNOOP\r\n"),
	  .out = GREET "500 5.5.2 Bare LF not allowed, end commands with CRLF\r\n" OK },
	{ .name = "command ending in bare LF accepted",
	  IN("EHLO client.example\nNOOP\n"),
	  .out = GREET EHLO_OUT OK },

	/* line limits */
	{ .name = "command line too long",
	  IN("NOOP XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	     "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	     "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	     "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	     "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	     "MAIL FROM:<x@y.example>\r\nNOOP\r\n"),
	  .out = GREET "500 5.5.2 Line too long\r\n" OK },

	/* sequence */
	{ .name = "MAIL before EHLO",
	  IN(MAIL_A "RCPT TO:<alice@example.org>\r\nDATA\r\nBDAT 6\r\nNOOP\r\n"),
	  .out = GREET "503 5.5.1 Send HELO/EHLO first\r\n503 5.5.1 Send HELO/EHLO first\r\n"
		 "503 5.5.1 Send HELO/EHLO first\r\n503 5.5.1 Send HELO/EHLO first\r\n",
	  .queries = "" },
	{ .name = "RCPT and DATA without MAIL, nested MAIL",
	  IN(EHLO RCPT_ALICE "DATA\r\n" MAIL_A MAIL_A "DATA\r\n"),
	  .out = GREET EHLO_OUT "503 5.5.1 Need MAIL command\r\n503 5.5.1 Need MAIL command\r\n"
		 MAIL_OK "503 5.5.1 Nested MAIL command\r\n554 5.5.1 No valid recipients\r\n" },
	{ .name = "RSET ends the transaction",
	  IN(EHLO MAIL_A RCPT_ALICE "RSET\r\nDATA\r\nRSET x\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK OK "503 5.5.1 Need MAIL command\r\n"
		 "501 5.5.4 Syntax: RSET\r\n" },
	{ .name = "EHLO ends the transaction",
	  IN(EHLO MAIL_A RCPT_ALICE EHLO "DATA\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK EHLO_OUT "503 5.5.1 Need MAIL command\r\n" },
	{ .name = "EHLO without a name",
	  IN("EHLO\r\nHELO \r\n"),
	  .out = GREET "501 5.5.4 Syntax: EHLO hostname\r\n501 5.5.4 Syntax: HELO hostname\r\n" },
	{ .name = "misc commands",
	  IN("NOOP\r\nNOOP anything\r\nVRFY alice\r\nVRFY\r\nEXPN staff\r\nHELP\r\nAUTH PLAIN\r\nSTARTTLS\r\n"
	     "FOO\r\n\r\n1234\r\nNO\0P\r\nQUIT now\r\n"),
	  .out = GREET OK OK
		 "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
		 "501 5.5.4 Syntax: VRFY address\r\n"
		 "502 5.5.1 EXPN not supported\r\n"
		 "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"
		 "502 5.5.1 Command not implemented\r\n502 5.5.1 Command not implemented\r\n"
		 "500 5.5.1 Command unrecognized\r\n500 5.5.2 Syntax error\r\n500 5.5.2 Syntax error\r\n"
		 "500 5.5.2 Invalid character in command\r\n501 5.5.4 Syntax: QUIT\r\n" },
	{ .name = "too many errors", .max_bad = 3,
	  IN("FOO\r\nNOOP\r\nBAR\r\nHELO c\r\nMAIL FROM:bad\r\nNOOP\r\nQUIT\r\n"),
	  .out = GREET "500 5.5.1 Command unrecognized\r\n" OK "500 5.5.1 Command unrecognized\r\n"
		 "250 mx.test\r\n501 5.5.4 Syntax: MAIL FROM:<address>\r\n421 4.7.0 mx.test Too many errors\r\n",
	  .closed = 1 },
	{ .name = "input after QUIT is ignored",
	  IN(EHLO "QUIT\r\n" MAIL_A "NOOP\r\n"),
	  .out = GREET EHLO_OUT BYE, .closed = 1 },

	/* recipients */
	{ .name = "recipient results",
	  IN(EHLO MAIL_A "RCPT TO:<carol@example.org>\r\nRCPT TO:<dave@example.org>\r\n"
	     "RCPT TO:<nobody@example.org>\r\nRCPT TO:<x@other.example>\r\nRCPT TO:<temp@example.org>\r\n"
	     "RCPT TO:<bob%other.example@example.org>\r\nRCPT TO:<other.example!bob@example.org>\r\n"
	     "RCPT TO:<\"bob@other.example\"@example.org>\r\nRCPT TO:<empty@example.org>\r\n"
	     "DATA\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK
		 "550 5.2.1 Recipient address rejected: mailbox disabled\r\n"
		 "452 4.2.2 Mailbox full\r\n"
		 "550 5.1.1 Recipient address rejected: user unknown\r\n"
		 "550 5.7.1 Relay access denied\r\n"
		 "451 4.3.0 Temporary failure, try again later\r\n"
		 "550 5.7.1 Relay access denied\r\n550 5.7.1 Relay access denied\r\n550 5.7.1 Relay access denied\r\n"
		 "451 4.3.0 Temporary failure, try again later\r\n"
		 "554 5.5.1 No valid recipients\r\n",
	  .queries = "carol@example.org dave@example.org nobody@example.org x@other.example temp@example.org "
		     "bob%other.example@example.org other.example!bob@example.org \"bob@other.example\"@example.org "
		     "empty@example.org" },
	{ .name = "source route dropped, only the mailbox is checked",
	  IN(EHLO MAIL_A "RCPT TO:<@relay.example,@evil.example:bob@example.org>\r\nDATA\r\nx\r\n.\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "x\n", "bob@example.org", "sender@remote.example", "bob@example.org", NULL } },
	  .queries = "bob@example.org" },
	{ .name = "Postmaster without domain",
	  IN(EHLO MAIL_A "RCPT TO:<Postmaster>\r\nDATA\r\nx\r\n.\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "x\n", "postmaster@example.org", "sender@remote.example", "Postmaster@mx.test", NULL } },
	  .queries = "Postmaster@mx.test" },
	{ .name = "postmaster in any case, without a domain",
	  IN(EHLO MAIL_A "RCPT TO:<postmaster>\r\nRCPT TO: <POSTMASTER>\r\nRCPT TO:<pOsTmAsTeR>\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK RCPT_OK RCPT_OK,
	  .queries = "Postmaster@mx.test Postmaster@mx.test Postmaster@mx.test" },
	{ .name = "duplicate targets collapse, no for clause",
	  IN(EHLO MAIL_A RCPT_ALICE "RCPT TO:<alice+tag@example.org>\r\nRCPT TO:<team@example.org>\r\n"
	     RCPT_ALICE "DATA\r\nx\r\n.\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK RCPT_OK RCPT_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "x\n", "alice@example.org bob@example.org", "sender@remote.example", NULL, NULL } } },
	{ .name = "too many recipients", .max_rcpt = 2,
	  IN(EHLO MAIL_A RCPT_ALICE "RCPT TO:<nobody@example.org>\r\n" RCPT_BOB
	     "RCPT TO:<team@example.org>\r\nDATA\r\nx\r\n.\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK "550 5.1.1 Recipient address rejected: user unknown\r\n"
		 RCPT_OK "452 4.5.3 Too many recipients\r\n" DATA_GO QUEUED(1),
	  .dl = { { "x\n", "alice@example.org bob@example.org", "sender@remote.example", NULL, NULL } },
	  .queries = "alice@example.org nobody@example.org bob@example.org" },
	{ .name = "SMTPUTF8 transaction",
	  IN(EHLO "MAIL FROM:<j\xc3\xb6rg@remote.example> SMTPUTF8 BODY=8BITMIME\r\n"
	     "RCPT TO:<j\xc3\xb6rg@example.org>\r\nDATA\r\nGr\xc3\xbc\xc3\x9f\x65\r\n.\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "Gr\xc3\xbc\xc3\x9f\x65\n", "j\xc3\xb6rg@example.org", "j\xc3\xb6rg@remote.example",
		    "j\xc3\xb6rg@example.org", "UTF8SMTP" } } },
	{ .name = "SMTPUTF8 over TLS", .tls = 1,
	  IN(EHLO "MAIL FROM:<a@remote.example> SMTPUTF8\r\n" RCPT_ALICE "DATA\r\nx\r\n.\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "x\n", "alice@example.org", "a@remote.example", "alice@example.org", "UTF8SMTPS" TLS_COMMENT } } },
	{ .name = "MAIL parameters",
	  IN(EHLO "MAIL FROM:<a@remote.example> FOO=1\r\nMAIL FROM:<a@remote.example> BODY=BINARYMIME\r\n"
	     "MAIL FROM:<a@remote.example> SIZE=10001\r\nMAIL FROM:<a@remote.example> SIZE=10000\r\n"
	     "RCPT TO:<alice@example.org> NOTIFY=NEVER\r\n"),
	  .out = GREET EHLO_OUT "555 5.5.4 Unsupported parameter\r\n555 5.5.4 BODY=BINARYMIME not supported\r\n"
		 "552 5.3.4 Message size exceeds fixed maximum message size\r\n" MAIL_OK
		 "555 5.5.4 Unsupported parameter\r\n",
	  .queries = "" },

	/* delivery results */
	{ .name = "delivery over quota", .deliver_result = -EDQUOT,
	  IN(START "x\r\n.\r\n" MAIL_A RCPT_ALICE "DATA\r\n"),
	  .out = START_OUT "452 4.2.2 Mailbox full\r\n" MAIL_OK RCPT_OK DATA_GO,
	  .dl = { ALICE("x\n") } },
	{ .name = "delivery out of space", .deliver_result = -ENOSPC,
	  IN(START "x\r\n.\r\n"),
	  .out = START_OUT "452 4.3.1 Insufficient system storage\r\n",
	  .dl = { ALICE("x\n") } },
	{ .name = "delivery error", .deliver_result = -EIO,
	  IN(START "x\r\n.\r\nDATA\r\n"),
	  .out = START_OUT "451 4.3.0 Local error in processing\r\n503 5.5.1 Need MAIL command\r\n",
	  .dl = { ALICE("x\n") } },

	/* BDAT (RFC 3030) */
	{ .name = "BDAT chunks, CRLF split across chunks",
	  IN(EHLO MAIL_A RCPT_ALICE "BDAT 3\r\nHelBDAT 3\r\nlo\rBDAT 8 LAST\r\n\nWorld\r\nQUIT\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK "250 2.0.0 Ok: 3 octets received\r\n"
		 "250 2.0.0 Ok: 3 octets received\r\n" QUEUED(1) BYE,
	  .dl = { ALICE("Hello\nWorld\n") }, .closed = 1 },
	{ .name = "BDAT has no dot processing and no end marker",
	  IN(EHLO MAIL_A RCPT_ALICE "BDAT 11 LAST\r\n.\r\n..x\r\n.\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK QUEUED(1),
	  .dl = { ALICE(".\n..x\n.\n") } },
	{ .name = "BDAT 0 LAST",
	  IN(EHLO MAIL_A RCPT_ALICE "BDAT 2\r\nabBDAT 0 LAST\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK "250 2.0.0 Ok: 2 octets received\r\n" QUEUED(1),
	  .dl = { ALICE("ab") } },
	{ .name = "BDAT CR at the very end is kept",
	  IN(EHLO MAIL_A RCPT_ALICE "BDAT 2 LAST\r\na\r"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK QUEUED(1),
	  .dl = { ALICE("a\r") } },
	{ .name = "BDAT refused chunks are read and dropped",
	  IN(EHLO "BDAT 6\r\nNOOP\r\n" MAIL_A "BDAT 6 LAST\r\nNOOP\r\n" MAIL_A "RCPT TO:<nobody@example.org>\r\n"
	     "BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n"),
	  .out = GREET EHLO_OUT "503 5.5.1 Need MAIL command\r\n" MAIL_OK "554 5.5.1 No valid recipients\r\n"
		 MAIL_OK "550 5.1.1 Recipient address rejected: user unknown\r\n"
		 "554 5.5.1 No valid recipients\r\n" OK },
	{ .name = "BDAT then DATA, MAIL, RCPT refused",
	  IN(EHLO MAIL_A RCPT_ALICE "BDAT 1\r\nxDATA\r\n" MAIL_A RCPT_BOB "BDAT 1 LAST\r\ny"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK "250 2.0.0 Ok: 1 octets received\r\n"
		 "503 5.5.1 BDAT transfer in progress\r\n503 5.5.1 BDAT transfer in progress\r\n"
		 "503 5.5.1 BDAT transfer in progress\r\n" QUEUED(1),
	  .dl = { ALICE("xy") } },
	/* Without a size nobody knows where the chunk ends: what follows is
	 * never read as commands, the session ends after the 501. */
	{ .name = "BDAT syntax error closes", IN(EHLO MAIL_A RCPT_ALICE "BDAT x\r\nRSET\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n", .closed = 1 },
	{ .name = "BDAT LAST LAST closes", IN(EHLO MAIL_A RCPT_ALICE "BDAT 1 LAST LAST\r\nx"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n", .closed = 1 },
	{ .name = "BDAT without size closes", IN(EHLO MAIL_A RCPT_ALICE "BDAT\r\nQUIT\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n", .closed = 1 },
	{ .name = "BDAT bare LF refused", .reject_bare_lf = 1,
	  IN(EHLO MAIL_A RCPT_ALICE "BDAT 4 LAST\r\na\nb\n" "BDAT 1\r\nx"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK
		 "550 5.5.2 Message contains bare LF, lines must end with CRLF\r\n"
		 "503 5.5.1 Need MAIL command\r\n" },
	{ .name = "BDAT larger than any message: 552 at once, then close",
	  IN(EHLO MAIL_A RCPT_ALICE "BDAT 18446744073709551615 LAST\r\nxxxxxxxxNOOP\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
	  .closed = 1 },
	{ .name = "BDAT larger than any message outside a transaction: close",
	  IN(EHLO "BDAT 10001\r\nNOOP\r\n"),
	  .out = GREET EHLO_OUT "503 5.5.1 Need MAIL command\r\n", .closed = 1 },
	{ .name = "BDAT of max_message_size outside a transaction is read and dropped",
	  IN(EHLO "BDAT 10000\r\n" X1000 X1000 X1000 X1000 X1000 X1000 X1000 X1000 X1000 X1000 "NOOP\r\n"),
	  .out = GREET EHLO_OUT "503 5.5.1 Need MAIL command\r\n" OK },
	{ .name = "BDAT too big for the limit", .max_size = 10,
	  IN("HELO client.example\r\n" MAIL_A RCPT_ALICE "BDAT 6\r\n123456BDAT 5\r\n12345BDAT 1 LAST\r\nxRSET\r\n"
	     MAIL_A RCPT_ALICE "BDAT 5 LAST\r\n12345"),
	  .out = GREET "250 mx.test\r\n" MAIL_OK RCPT_OK "250 2.0.0 Ok: 6 octets received\r\n"
		 "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
		 "503 5.5.1 Earlier BDAT failed, send RSET\r\n" OK MAIL_OK RCPT_OK QUEUED(1),
	  .dl = { { "12345", "alice@example.org", "sender@remote.example", "alice@example.org", "SMTP" } } },

	/* sizes: CRLF counts as 2 */
	{ .name = "message at the size limit", .max_size = 10,
	  IN("HELO client.example\r\n" MAIL_A RCPT_ALICE "DATA\r\n12345678\r\n.\r\n"),
	  .out = GREET "250 mx.test\r\n" MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "12345678\n", "alice@example.org", "sender@remote.example", "alice@example.org", "SMTP" } } },
	{ .name = "message over the size limit", .max_size = 10,
	  IN("HELO client.example\r\n" MAIL_A RCPT_ALICE "DATA\r\n123456789\r\n.\r\nNOOP\r\n"),
	  .out = GREET "250 mx.test\r\n" MAIL_OK RCPT_OK DATA_GO
		 "552 5.3.4 Message size exceeds fixed maximum message size\r\n" OK },
	{ .name = "dot-stuffing does not count toward the size", .max_size = 10,
	  IN("HELO client.example\r\n" MAIL_A RCPT_ALICE "DATA\r\n..3456789\r\n.\r\n"),
	  .out = GREET "250 mx.test\r\n" MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { ".3456789\n", "alice@example.org", "sender@remote.example", "alice@example.org", "SMTP" } } },

	/* STARTTLS (RFC 3207) */
	{ .name = "EHLO offers STARTTLS", .mode = TLS_MODE_STARTTLS,
	  IN(EHLO "HELO client.example\r\n"),
	  .out = GREET EHLO_STARTTLS_OUT "250 mx.test\r\n" },
	{ .name = "STARTTLS, then a new EHLO without it and a message", .mode = TLS_MODE_STARTTLS,
	  IN(EHLO "STARTTLS\r\n"),
	  IN_TLS(START "x\r\n.\r\nSTARTTLS\r\nQUIT\r\n"),
	  .out = GREET EHLO_STARTTLS_OUT READY EHLO_OUT MAIL_OK RCPT_OK DATA_GO QUEUED(1)
		 "503 5.5.1 TLS already active\r\n" BYE,
	  .dl = { { "x\n", "alice@example.org", "sender@remote.example", "alice@example.org",
		    "ESMTPS" TLS_COMMENT } },
	  .starttls = 1, .closed = 1 },
	{ .name = "HELO over STARTTLS is SMTP with the comment", .mode = TLS_MODE_STARTTLS,
	  IN("STARTTLS\r\n"),
	  IN_TLS("HELO client.example\r\n" MAIL_A RCPT_ALICE "DATA\r\nx\r\n.\r\n"),
	  .out = GREET READY "250 mx.test\r\n" MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "x\n", "alice@example.org", "sender@remote.example", "alice@example.org", "SMTP" TLS_COMMENT } },
	  .starttls = 1 },
	{ .name = "injection: commands pipelined behind STARTTLS are never run", .mode = TLS_MODE_STARTTLS,
	  IN(EHLO "STARTTLS\r\n" MAIL_A RCPT_BOB "DATA\r\nevil\r\n.\r\n"),
	  IN_TLS(EHLO "RCPT TO:<alice@example.org>\r\nQUIT\r\n"),
	  .dropped = MAIL_A RCPT_BOB "DATA\r\nevil\r\n.\r\n",
	  .out = GREET EHLO_STARTTLS_OUT READY EHLO_OUT "503 5.5.1 Need MAIL command\r\n" BYE,
	  .queries = "", .starttls = 1, .closed = 1 },
	{ .name = "injection right after STARTTLS, before any EHLO", .mode = TLS_MODE_STARTTLS,
	  IN("STARTTLS\r\nMAIL FROM:<a@b>\r\n"),
	  IN_TLS("NOOP\r\n"),
	  .dropped = "MAIL FROM:<a@b>\r\n",
	  .out = GREET READY OK, .starttls = 1 },
	{ .name = "injection: a partial line behind STARTTLS is dropped", .mode = TLS_MODE_STARTTLS,
	  IN(EHLO "STARTTLS\r\nMAIL FR"),
	  IN_TLS("OM:<a@b>\r\n" EHLO),
	  .dropped = "MAIL FR",
	  .out = GREET EHLO_STARTTLS_OUT READY "500 5.5.2 Syntax error\r\n" EHLO_OUT, .starttls = 1 },
	{ .name = "after STARTTLS the EHLO is forgotten", .mode = TLS_MODE_STARTTLS,
	  IN(EHLO "STARTTLS\r\n"),
	  IN_TLS(MAIL_A RCPT_ALICE "DATA\r\nRSET\r\n" MAIL_A),
	  .out = GREET EHLO_STARTTLS_OUT READY "503 5.5.1 Send HELO/EHLO first\r\n"
		 "503 5.5.1 Send HELO/EHLO first\r\n503 5.5.1 Send HELO/EHLO first\r\n" OK
		 "503 5.5.1 Send HELO/EHLO first\r\n",
	  .queries = "", .starttls = 1 },
	{ .name = "STARTTLS with an argument", .mode = TLS_MODE_STARTTLS,
	  IN(EHLO "STARTTLS now\r\nNOOP\r\n"),
	  .out = GREET EHLO_STARTTLS_OUT "501 5.5.4 Syntax: STARTTLS\r\n" OK },
	{ .name = "STARTTLS inside a transaction is refused", .mode = TLS_MODE_STARTTLS,
	  IN(EHLO MAIL_A "STARTTLS\r\n" RCPT_ALICE "STARTTLS\r\nRSET\r\nSTARTTLS\r\n"),
	  IN_TLS(EHLO),
	  .out = GREET EHLO_STARTTLS_OUT MAIL_OK "503 5.5.1 Error: MAIL transaction in progress\r\n" RCPT_OK
		 "503 5.5.1 Error: MAIL transaction in progress\r\n" OK READY EHLO_OUT,
	  .starttls = 1 },
	{ .name = "STARTTLS not offered (tls = none)",
	  IN(EHLO "STARTTLS\r\n" MAIL_A),
	  .out = GREET EHLO_OUT "502 5.5.1 Command not implemented\r\n" MAIL_OK },
	{ .name = "STARTTLS on implicit TLS", .tls = 1, .mode = TLS_MODE_IMPLICIT,
	  IN(EHLO "STARTTLS\r\n" MAIL_A),
	  .out = GREET EHLO_OUT "503 5.5.1 TLS already active\r\n" MAIL_OK },
	{ .name = "tls = required: only the way to TLS before it", .mode = TLS_MODE_REQUIRED,
	  IN(EHLO MAIL_A RCPT_ALICE "DATA\r\nVRFY alice\r\nEXPN x\r\nHELP\r\nAUTH PLAIN\r\n"
	     "NOOP\r\nRSET\r\nHELO client.example\r\n" EHLO "STARTTLS\r\n"),
	  IN_TLS(START "x\r\n.\r\nQUIT\r\n"),
	  .out = GREET EHLO_STARTTLS_OUT MUST_TLS MUST_TLS MUST_TLS MUST_TLS MUST_TLS MUST_TLS MUST_TLS
		 OK OK "250 mx.test\r\n" EHLO_STARTTLS_OUT READY EHLO_OUT MAIL_OK RCPT_OK DATA_GO QUEUED(1) BYE,
	  .dl = { { "x\n", "alice@example.org", "sender@remote.example", "alice@example.org",
		    "ESMTPS" TLS_COMMENT } },
	  .queries = "alice@example.org", .starttls = 1, .closed = 1 },
	{ .name = "tls = required: a BDAT chunk is still read and dropped", .mode = TLS_MODE_REQUIRED,
	  IN("BDAT 6\r\nNOOP\r\nBDAT 4 LAST\r\nabcdQUIT\r\n"),
	  .out = GREET MUST_TLS MUST_TLS BYE, .closed = 1 },
	{ .name = "tls = required: QUIT before TLS", .mode = TLS_MODE_REQUIRED,
	  IN("MAIL FROM:<a@b>\r\nQUIT\r\n"),
	  .out = GREET MUST_TLS BYE, .closed = 1 },
	{ .name = "tls = required: errors still count", .mode = TLS_MODE_REQUIRED, .max_bad = 3,
	  IN("MAIL FROM:<a@b>\r\nVRFY a\r\nHELP\r\nNOOP\r\n"),
	  .out = GREET MUST_TLS MUST_TLS MUST_TLS "421 4.7.0 mx.test Too many errors\r\n", .closed = 1 },
	{ .name = "tls = required: nothing refused after TLS", .mode = TLS_MODE_REQUIRED,
	  IN("STARTTLS\r\n" MAIL_A),
	  IN_TLS(EHLO "VRFY alice\r\nSTARTTLS\r\n"),
	  .dropped = MAIL_A,
	  .out = GREET READY EHLO_OUT "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
		 "503 5.5.1 TLS already active\r\n",
	  .starttls = 1 },
	{ .name = "tls = required on implicit TLS: no refusal", .tls = 1, .mode = TLS_MODE_REQUIRED,
	  IN(EHLO MAIL_A),
	  .out = GREET EHLO_OUT MAIL_OK },

	/* SMTP AUTH (RFC 4954) */
	{ .name = "AUTH in clear: only what the glue offers there", .flags = FK_AUTH,
	  IN(EHLO PLAIN_ALICE "AUTH LOGIN\r\nAUTH SCRAM-SHA-256-PLUS\r\nAUTH FOO\r\n"
	     "AUTH X-TWO\r\n*\r\nQUIT\r\n"),
	  .out = GREET EHLO_AUTH_OUT(CLEAR_MECHS) AUTH_ENCRYPT AUTH_ENCRYPT AUTH_ENCRYPT AUTH_UNKNOWN
		 CH_ABSENT AUTH_CANCEL BYE, .closed = 1 },
	{ .name = "AUTH under TLS: the plaintext mechanisms too", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "AUTH SCRAM-SHA-256-PLUS\r\nAUTH FOO\r\n" PLAIN_ALICE),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_UNKNOWN AUTH_UNKNOWN AUTH_OK },
	{ .name = "AUTH: plaintext in clear where the glue allows it (loopback)", .flags = FK_AUTH | FK_PLAIN_CLEAR,
	  IN(EHLO PLAIN_ALICE MAIL_A RCPT_ALICE "DATA\r\nx\r\n.\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_OK MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "x\n", "alice@example.org", "sender@remote.example", "alice@example.org",
		    "ESMTPA" AS("alice@example.org") } } },
	{ .name = "AUTH: the list is asked again after STARTTLS", .flags = FK_AUTH, .mode = TLS_MODE_STARTTLS,
	  IN(EHLO "STARTTLS\r\n"),
	  IN_TLS(EHLO),
	  .out = GREET EHLO_STARTTLS_AUTH_OUT(CLEAR_MECHS) READY EHLO_AUTH_OUT(TLS_MECHS), .starttls = 1 },
	{ .name = "AUTH: tls = required offers it only after TLS", .flags = FK_AUTH, .mode = TLS_MODE_REQUIRED,
	  IN(EHLO "AUTH X-TWO\r\nSTARTTLS\r\n"),
	  IN_TLS(EHLO PLAIN_ALICE),
	  .out = GREET EHLO_STARTTLS_OUT MUST_TLS READY EHLO_AUTH_OUT(TLS_MECHS) AUTH_OK, .starttls = 1 },
	{ .name = "AUTH PLAIN pipelined with a transaction: ESMTPSA", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO PLAIN_ALICE MAIL_A RCPT_ALICE "DATA\r\nx\r\n.\r\nQUIT\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_OK MAIL_OK RCPT_OK DATA_GO QUEUED(1) BYE,
	  .dl = { { "x\n", "alice@example.org", "sender@remote.example", "alice@example.org",
		    "ESMTPSA" TLS_COMMENT AS("alice@example.org") } },
	  .senders = "", .closed = 1 },
	{ .name = "AUTH PLAIN without an initial response: an empty 334", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) "334 \r\n" AUTH_OK },
	{ .name = "AUTH LOGIN: two challenges", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" AUTH_OK },
	{ .name = "AUTH LOGIN with the name as initial response, wrong password", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "auth login YWxpY2U=\r\nd3Jvbmc=\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) "334 UGFzc3dvcmQ6\r\n" AUTH_BAD },
	{ .name = "AUTH X-TWO in clear: a binary challenge, ESMTPA", .flags = FK_AUTH,
	  IN(EHLO "auth x-two aGVsbG8=\r\nYWxpY2U6c2VjcmV0\r\n" MAIL_A RCPT_ALICE "BDAT 2 LAST\r\nx\n"),
	  .out = GREET EHLO_AUTH_OUT(CLEAR_MECHS) CH_BINARY AUTH_OK MAIL_OK RCPT_OK QUEUED(1),
	  .dl = { { "x\n", "alice@example.org", "sender@remote.example", "alice@example.org",
		    "ESMTPA" AS("alice@example.org") } } },
	{ .name = "AUTH: initial response \"=\" is an empty response", .flags = FK_AUTH,
	  IN(EHLO "AUTH X-TWO =\r\n*\r\nAUTH PLAIN =\r\n"),
	  .out = GREET EHLO_AUTH_OUT(CLEAR_MECHS) CH_EMPTY AUTH_CANCEL AUTH_ENCRYPT },
	{ .name = "AUTH: an empty challenge in the middle, then an empty response", .flags = FK_AUTH,
	  IN(EHLO "AUTH X-TWO\r\nYWdhaW4=\r\n\r\nAUTH X-TWO\r\nYWdhaW4=\r\nYWdhaW4=\r\n"
	     "AUTH X-TWO\r\nYWdhaW4=\r\nYm9iOnNlY3JldA==\r\n"),
	  .out = GREET EHLO_AUTH_OUT(CLEAR_MECHS) CH_ABSENT "334 \r\n" AUTH_BAD
		 CH_ABSENT "334 \r\n" AUTH_BAD CH_ABSENT "334 \r\n" AUTH_OK },
	{ .name = "AUTH: wrong password, then the right one", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO PLAIN_WRONG PLAIN_WRONG PLAIN_ALICE),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_BAD AUTH_BAD AUTH_OK },
	{ .name = "AUTH: the third failure closes the session", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO PLAIN_WRONG "AUTH PLAIN\r\nAGJvYgBzZWNyZXQ=\r\n" "AUTH LOGIN YWxpY2U=\r\nd3Jvbmc=\r\n" PLAIN_ALICE),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_BAD "334 \r\n" AUTH_BAD "334 UGFzc3dvcmQ6\r\n" AUTH_BAD
		 "421 4.7.0 mx.test Too many authentication failures\r\n", .closed = 1 },
	{ .name = "AUTH: temporary failure and malformed message are not failures", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "AUTH PLAIN AHRlbXBmYWlsAHg=\r\nAUTH PLAIN YWxpY2U=\r\nAUTH PLAIN AHRlbXBmYWlsAHg=\r\n"
	     PLAIN_WRONG PLAIN_WRONG PLAIN_ALICE),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_TEMP AUTH_MALFORMED AUTH_TEMP AUTH_BAD AUTH_BAD AUTH_OK },
	{ .name = "AUTH: bad base64 in the command and in a response", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "AUTH PLAIN AGFsaWNl!\r\nAUTH PLAIN YR==\r\nAUTH PLAIN\r\nAGFsaWNl=\r\n"
	     "AUTH PLAIN\r\nAGFs aWNl\r\nAUTH X-TWO a\r\nAUTH PLAIN =\r\n" PLAIN_ALICE),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_B64 AUTH_B64 "334 \r\n" AUTH_B64 "334 \r\n" AUTH_B64
		 AUTH_B64 AUTH_MALFORMED AUTH_OK },
	{ .name = "AUTH: cancel, then a new exchange", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "AUTH LOGIN\r\n*\r\nAUTH LOGIN\r\nYWxpY2U=\r\n*\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) "334 VXNlcm5hbWU6\r\n" AUTH_CANCEL
		 "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" AUTH_CANCEL
		 "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" AUTH_OK },
	{ .name = "AUTH: once per session, not in a transaction, only after EHLO", .flags = FK_AUTH, .tls = 1,
	  IN("AUTH X-TWO\r\nHELO client.example\r\nAUTH X-TWO\r\n" EHLO MAIL_A "AUTH X-TWO\r\n" RCPT_ALICE
	     "AUTH X-TWO\r\nRSET\r\n" PLAIN_ALICE PLAIN_ALICE "AUTH X-TWO\r\n" EHLO "AUTH X-TWO\r\n"),
	  .out = GREET "503 5.5.1 Send EHLO first\r\n250 mx.test\r\n503 5.5.1 Send EHLO first\r\n"
		 EHLO_AUTH_OUT(TLS_MECHS) MAIL_OK "503 5.5.1 AUTH not permitted during a mail transaction\r\n"
		 RCPT_OK "503 5.5.1 AUTH not permitted during a mail transaction\r\n" OK AUTH_OK
		 "503 5.5.1 Already authenticated\r\n503 5.5.1 Already authenticated\r\n"
		 EHLO_AUTH_OUT(TLS_MECHS) "503 5.5.1 Already authenticated\r\n" },
	{ .name = "AUTH syntax", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "AUTH\r\nAUTH X-TWO a b\r\nAUTH ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG\r\nAUTH X\x80\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"
		 "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n" AUTH_UNKNOWN AUTH_UNKNOWN },
	{ .name = "AUTH line of 12288 octets is read, one more is too long", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "AUTH X-TWO " B64_12272 "   \r\n*\r\nAUTH X-TWO " B64_12272 "    \r\nNOOP\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) CH_BINARY AUTH_CANCEL AUTH_TOO_LONG OK },
	{ .name = "AUTH response line of 12288 octets is read, one more is too long", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "AUTH X-TWO\r\n" B64_12272 "xxxx\r\nAUTH X-TWO\r\n" B64_12272 "xxxxxxxxxxxxxxxx\r\nNOOP\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) CH_ABSENT AUTH_BAD CH_ABSENT AUTH_TOO_LONG OK },
	{ .name = "AUTH: other long lines stay at 512", .flags = FK_AUTH, .tls = 1,
	  IN(EHLO "NOOP " X1000 "\r\nAUTX " X1000 "\r\nNOOP\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) "500 5.5.2 Line too long\r\n500 5.5.2 Line too long\r\n" OK },
	{ .name = "AUTH: a response ending in a bare LF in reject mode", .flags = FK_AUTH, .reject_bare_lf = 1,
	  IN(EHLO "AUTH X-TWO\r\naGVsbG8=\nNOOP\r\n"),
	  .out = GREET EHLO_AUTH_OUT(CLEAR_MECHS) CH_ABSENT
		 "500 5.5.2 Bare LF not allowed, end commands with CRLF\r\n" OK },
	{ .name = "AUTH: cancels and bad lines count as errors", .flags = FK_AUTH, .max_bad = 3,
	  IN(EHLO "AUTH X-TWO\r\n*\r\nAUTH X-TWO\r\n!\r\nAUTH X-TWO\r\n*\r\nNOOP\r\n"),
	  .out = GREET EHLO_AUTH_OUT(CLEAR_MECHS) CH_ABSENT AUTH_CANCEL CH_ABSENT AUTH_B64 CH_ABSENT AUTH_CANCEL
		 "421 4.7.0 mx.test Too many errors\r\n", .closed = 1 },
	{ .name = "AUTH: commands sent during an exchange are responses", .flags = FK_AUTH,
	  IN(EHLO "AUTH X-TWO\r\nQUIT\r\nNOOP\r\n"),
	  .out = GREET EHLO_AUTH_OUT(CLEAR_MECHS) CH_ABSENT AUTH_BAD OK },
	{ .name = "AUTH: a user authenticated in clear is forgotten by STARTTLS", .mode = TLS_MODE_STARTTLS,
	  .flags = FK_SUBMISSION,
	  IN(EHLO "AUTH X-TWO aGVsbG8=\r\nYWxpY2U6c2VjcmV0\r\nSTARTTLS\r\n"),
	  IN_TLS(EHLO MAIL_ALICE PLAIN_ALICE MAIL_ALICE),
	  .out = GREET EHLO_STARTTLS_AUTH_OUT(CLEAR_MECHS) CH_BINARY AUTH_OK READY EHLO_AUTH_OUT(TLS_MECHS)
		 AUTH_NEEDED AUTH_OK MAIL_OK,
	  .senders = "alice@example.org/alice@example.org", .starttls = 1 },

	/* submission (RFC 6409) */
	{ .name = "submission: MAIL before AUTH", .flags = FK_SUBMISSION, .tls = 1,
	  IN(EHLO MAIL_ALICE "MAIL FROM:<>\r\n" PLAIN_ALICE MAIL_ALICE),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_NEEDED AUTH_NEEDED AUTH_OK MAIL_OK,
	  .senders = "alice@example.org/alice@example.org" },
	{ .name = "submission: senders, remote recipients, Date and Message-ID added", .flags = FK_SUBMISSION,
	  .tls = 1,
	  IN(EHLO PLAIN_ALICE "MAIL FROM:<bob@example.org>\r\nMAIL FROM:<>\r\nMAIL FROM:<temp@example.org>\r\n"
	     "RCPT TO:<bob@example.org>\r\nMAIL FROM:<team@example.org>\r\nRCPT TO:<x@other.example>\r\n"
	     RCPT_BOB "DATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_OK NOT_OWNED
		 "553 5.7.1 Sender address rejected: null sender not allowed on submission\r\n"
		 "451 4.3.0 Temporary failure, try again later\r\n503 5.5.1 Need MAIL command\r\n" MAIL_OK
		 "550 5.7.1 <x@other.example>: sending to other domains is not enabled on this server\r\n"
		 RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "Subject: hi\n\nbody\n", "bob@example.org", "team@example.org", "bob@example.org",
		    "ESMTPSA" TLS_COMMENT AS("alice@example.org"), 0, 3 } },
	  .senders = "bob@example.org/alice@example.org temp@example.org/alice@example.org "
		     "team@example.org/alice@example.org",
	  .queries = "x@other.example bob@example.org" },
	{ .name = "submission: Date and Message-ID only when missing", .flags = FK_SUBMISSION, .tls = 1,
	  IN(EHLO PLAIN_ALICE MAIL_ALICE RCPT_BOB
	     "DATA\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id : <a@b.example>\r\n\r\nx\r\n.\r\n"
	     MAIL_ALICE RCPT_BOB
	     "DATA\r\nSubject: s\r\n date: folded\r\nMessage-ID:<c@d.example>\r\n\r\nDate: in the body\r\n.\r\n"
	     MAIL_ALICE RCPT_BOB "BDAT 21 LAST\r\nHello\nDate: no header"
	     MAIL_ALICE RCPT_BOB "DATA\r\nDATE:x\r\n\tfolded\r\n.\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_OK MAIL_OK RCPT_OK DATA_GO QUEUED(1) MAIL_OK RCPT_OK DATA_GO
		 QUEUED(2) MAIL_OK RCPT_OK QUEUED(3) MAIL_OK RCPT_OK DATA_GO QUEUED(4),
	  .dl = { { "Date: Mon, 1 Jan 2024 00:00:00 +0000\nmessage-id : <a@b.example>\n\nx\n", "bob@example.org",
		    "alice@example.org", "bob@example.org", "ESMTPSA" TLS_COMMENT AS("alice@example.org"), 0, 0 },
		  { "Subject: s\n date: folded\nMessage-ID:<c@d.example>\n\nDate: in the body\n", "bob@example.org",
		    "alice@example.org", "bob@example.org", "ESMTPSA" TLS_COMMENT AS("alice@example.org"), 0, 1 },
		  { "Hello\nDate: no header", "bob@example.org", "alice@example.org", "bob@example.org",
		    "ESMTPSA" TLS_COMMENT AS("alice@example.org"), 0, 3 },
		  { "DATE:x\n\tfolded\n", "bob@example.org", "alice@example.org", "bob@example.org",
		    "ESMTPSA" TLS_COMMENT AS("alice@example.org"), 0, 2 } } },
	{ .name = "submission: received_hide_client", .flags = FK_SUBMISSION, .tls = 1, .hide_client = 1,
	  IN(EHLO PLAIN_ALICE "MAIL FROM:<alice+tag@example.org>\r\n" RCPT_BOB "DATA\r\nx\r\n.\r\n"),
	  .out = GREET EHLO_AUTH_OUT(TLS_MECHS) AUTH_OK MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "x\n", "bob@example.org", "alice+tag@example.org", "bob@example.org",
		    "ESMTPSA" TLS_COMMENT AS("alice@example.org"), 0, 3, 1 } } },
	{ .name = "received_hide_client keeps the client of unauthenticated mail", .flags = FK_AUTH,
	  .hide_client = 1,
	  IN(START "x\r\n.\r\n"),
	  .out = GREET EHLO_AUTH_OUT(CLEAR_MECHS) MAIL_OK RCPT_OK DATA_GO QUEUED(1),
	  .dl = { ALICE("x\n") } },
	{ .name = "auth_required without submission: any sender, relay denied", .flags = FK_AUTH | FK_AUTH_REQUIRED,
	  IN(EHLO MAIL_A "AUTH X-TWO aGVsbG8=\r\nYm9iOnNlY3JldA==\r\n" MAIL_A "RCPT TO:<x@other.example>\r\n"
	     RCPT_ALICE "DATA\r\nx\r\n.\r\n"),
	  .out = GREET EHLO_AUTH_OUT(CLEAR_MECHS) AUTH_NEEDED CH_BINARY AUTH_OK MAIL_OK
		 "550 5.7.1 Relay access denied\r\n" RCPT_OK DATA_GO QUEUED(1),
	  .dl = { { "x\n", "alice@example.org", "sender@remote.example", "alice@example.org",
		    "ESMTPA" AS("bob@example.org") } },
	  .senders = "" },

	/* the max_pipeline bound: same replies, only more calls */
	{ .name = "pipeline bound", .max_pipeline = 2,
	  IN(EHLO MAIL_A RCPT_ALICE RCPT_BOB "NOOP\r\nDATA\r\nx\r\n.\r\nNOOP\r\nNOOP\r\nNOOP\r\nQUIT\r\n"),
	  .out = GREET EHLO_OUT MAIL_OK RCPT_OK RCPT_OK OK DATA_GO QUEUED(1) OK OK OK BYE,
	  .dl = { { "x\n", "alice@example.org bob@example.org", "sender@remote.example", NULL, NULL } },
	  .closed = 1 },
};

enum feed_mode { FEED_ALL, FEED_BYTES, FEED_RANDOM };
static const char *const mode_names[] = { "all", "bytes", "random" };

/* Feeds in the way mode says, answering requests now and then when async. */
static void feed_mode(struct fake *f, const char *in, size_t in_len, enum feed_mode mode, int async,
		      unsigned *seed, unsigned *step)
{
	size_t off = 0;

	while (off < in_len) {
		size_t n = in_len - off;

		if (mode == FEED_BYTES) {
			n = 1;
		} else if (mode == FEED_RANDOM) {
			*seed = *seed * 1103515245 + 12345;
			n = 1 + (*seed >> 16) % 23;
			if (n > in_len - off)
				n = in_len - off;
		}
		feed(f, in + off, n);
		off += n;
		/* async: answer now and then, so that input piles up behind
		 * a request in flight */
		if (async && (++*step % 5 == 0 || mode == FEED_ALL))
			answer(f);
	}
	answer(f);
}

static void run_case(const struct scase *c, enum feed_mode mode, int async)
{
	struct smtp_config cfg = test_cfg();
	struct fake f;
	char name[256];
	unsigned seed = 12345;
	unsigned step = 0;
	int n_want = 0;

	snprintf(name, sizeof(name), "%s / %s / %s", c->name, mode_names[mode], async ? "async" : "sync");
	current = name;
	if (c->reject_bare_lf)
		cfg.bare_newline = BARE_LF_REJECT;
	if (c->max_size)
		cfg.max_message_size = c->max_size;
	if (c->max_rcpt)
		cfg.max_recipients = c->max_rcpt;
	if (c->max_bad)
		cfg.max_bad_commands = c->max_bad;
	if (c->max_pipeline)
		cfg.max_pipeline = c->max_pipeline;
	cfg.received_hide_client = c->hide_client;
	fake_start_flags(&f, &cfg, async, c->tls, c->mode, c->flags);
	f.deliver_result = c->deliver_result;
	CHECK(f.timeout == cfg.command_timeout * 1000, "timeout %u ms after greeting", f.timeout);

	feed_mode(&f, c->in, c->in_len, mode, async, &seed, &step);
	if (f.tls_wanted) {
		/* the handshake takes a while: the timer restarts from its end */
		tick(&f, 50);
		tls_done(&f);
	}
	if (c->in_tls)
		feed_mode(&f, c->in_tls, c->in_tls_len, mode, async, &seed, &step);

	CHECK(f.n_start_tls == c->starttls, "%d start_tls calls, want %d", f.n_start_tls, c->starttls);
	CHECK(f.dropped.len == (c->dropped ? strlen(c->dropped) : 0) &&
	      (f.dropped.len == 0 || memcmp(f.dropped.data, c->dropped, f.dropped.len) == 0),
	      "dropped for TLS:\n%.*s\nwant:\n%s", (int)f.dropped.len, f.dropped.data ? f.dropped.data : "",
	      c->dropped ? c->dropped : "");
	if (f.closed && f.held.len && !smtp_session_busy(f.s)) {
		/* closed by a request's answer (the third failed AUTH) with
		 * input held: the connection drops it; the session would too */
		CHECK(smtp_session_input(f.s, f.held.data, f.held.len) == f.held.len, "closed session kept input");
		buf_reset(&f.held);
	}
	CHECK(f.held.len == 0, "%zu input bytes never consumed", f.held.len);
	CHECK(f.max_held_idle <= 1024, "caller had to hold %zu bytes", f.max_held_idle);
	CHECK(f.out.len == strlen(c->out) && memcmp(f.out.data, c->out, f.out.len) == 0,
	      "replies:\n%s\nwant:\n%s", f.out.data ? f.out.data : "", c->out);
	CHECK(f.closed == c->closed, "closed %d, want %d", f.closed, c->closed);
	for (int i = 0; i < MAX_DL && c->dl[i].targets; i++)
		n_want++;
	CHECK(f.n_dl == n_want, "%d deliveries, want %d", f.n_dl, n_want);
	for (int i = 0; i < f.n_dl && i < n_want; i++)
		check_delivery(&f.dl[i], &c->dl[i], i);
	if (c->queries)
		CHECK(strcmp(f.queries.data ? f.queries.data : "", c->queries) == 0,
		      "recipient checks \"%s\", want \"%s\"", f.queries.data ? f.queries.data : "", c->queries);
	if (c->senders)
		CHECK(strcmp(f.senders.data ? f.senders.data : "", c->senders) == 0,
		      "sender checks \"%s\", want \"%s\"", f.senders.data ? f.senders.data : "", c->senders);
	/* the clock did not move: the timer stands at one full timeout */
	if (!f.closed && !smtp_session_busy(f.s))
		CHECK(f.timeout == cfg.command_timeout * 1000 || f.timeout == cfg.data_timeout * 1000,
		      "timeout %u ms", f.timeout);
	fake_end(&f);
}

/* ---- tests outside the table ---- */

static void feed_str(struct fake *f, const char *s)
{
	feed(f, s, strlen(s));
}

static int out_ends_with(const struct fake *f, const char *tail)
{
	size_t n = strlen(tail);

	return f->out.len >= n && memcmp(f->out.data + f->out.len - n, tail, n) == 0;
}

/* Large and generated inputs: sizes, long text lines, long command lines. */
static void test_generated(void)
{
	struct smtp_config cfg = test_cfg();
	struct fake f;
	struct buf in = BUF_INIT(0);

	for (int mode = 0; mode < 2; mode++) {
		/* 998 octets + CRLF is fine; 999 + CRLF is refused at the end */
		current = mode ? "long text line (bytes)" : "long text line";
		fake_start(&f, &cfg, 0, 0);
		buf_reset(&in);
		buf_adds(&in, START);
		for (int i = 0; i < 998; i++)
			buf_addch(&in, 'a');
		buf_adds(&in, "\r\n.\r\n" MAIL_A RCPT_ALICE "DATA\r\n");
		for (int i = 0; i < 999; i++)
			buf_addch(&in, 'b');
		buf_adds(&in, "\r\n.\r\n" MAIL_A RCPT_ALICE "DATA\r\n");
		for (int i = 0; i < 1000; i++)
			buf_addch(&in, 'c');
		buf_adds(&in, "\nx\r\n.\r\nNOOP\r\n");
		if (mode)
			for (size_t i = 0; i < in.len; i++)
				feed(&f, in.data + i, 1);
		else
			feed(&f, in.data, in.len);
		CHECK(f.n_dl == 1 && f.dl[0].body_len == 999, "998-octet line not delivered");
		CHECK(out_ends_with(&f, QUEUED(1) MAIL_OK RCPT_OK DATA_GO
				    "550 5.6.0 Message has lines longer than 998 octets\r\n"
				    MAIL_OK RCPT_OK DATA_GO
				    "550 5.6.0 Message has lines longer than 998 octets\r\n" OK),
		      "long line replies: %s", f.out.data);
		fake_end(&f);

		/* a message far over the limit: read to its end, never stored
		 * beyond the limit, refused, and the session goes on */
		current = mode ? "oversized message (bytes)" : "oversized message";
		fake_start(&f, &cfg, 0, 0);
		buf_reset(&in);
		buf_adds(&in, START);
		for (int i = 0; i < 5000; i++)
			buf_adds(&in, "0123456789abcdef\r\n..\r\n\r\n");
		buf_adds(&in, ".\r\nNOOP\r\n");
		if (mode)
			for (size_t i = 0; i < in.len; i++)
				feed(&f, in.data + i, 1);
		else
			feed(&f, in.data, in.len);
		CHECK(f.n_dl == 0, "oversized message delivered");
		CHECK(f.out.len == strlen(START_OUT "552 5.3.4 Message size exceeds fixed maximum message size\r\n" OK) &&
		      out_ends_with(&f, "552 5.3.4 Message size exceeds fixed maximum message size\r\n" OK),
		      "oversized replies: %s", f.out.data);
		fake_end(&f);

		/* exactly the limit: 4999 octets + CRLF, twice = 10000 */
		current = mode ? "message of exactly max size (bytes)" : "message of exactly max size";
		fake_start(&f, &cfg, 0, 0);
		buf_reset(&in);
		buf_adds(&in, START);
		for (int k = 0; k < 2; k++) {
			for (int i = 0; i < 998; i++)
				buf_addch(&in, 'x');
			buf_adds(&in, "\r\n");
		}
		/* 2000 so far; 8000 more in lines of 98 + CRLF */
		for (int k = 0; k < 80; k++) {
			for (int i = 0; i < 98; i++)
				buf_addch(&in, 'y');
			buf_adds(&in, "\r\n");
		}
		buf_adds(&in, ".\r\n");
		if (mode)
			for (size_t i = 0; i < in.len; i++)
				feed(&f, in.data + i, 1);
		else
			feed(&f, in.data, in.len);
		CHECK(f.n_dl == 1 && f.dl[0].size == 10000 && f.dl[0].body_len == 10000 - 82,
		      "max-size message: %d deliveries, size %llu", f.n_dl,
		      f.n_dl ? (unsigned long long)f.dl[0].size : 0ULL);
		fake_end(&f);
	}

	/* a command line of exactly 512 octets is fine, 513 is too long */
	current = "command line length limit";
	fake_start(&f, &cfg, 0, 0);
	buf_reset(&in);
	buf_adds(&in, "NOOP ");
	while (in.len < 510)
		buf_addch(&in, 'z');
	buf_adds(&in, "\r\nNOOP ");
	while (in.len < 512 + 511)
		buf_addch(&in, 'z');
	buf_adds(&in, "\r\n");
	for (size_t i = 0; i < in.len; i++)
		feed(&f, in.data + i, 1);
	CHECK(f.out.len == strlen(GREET OK "500 5.5.2 Line too long\r\n") &&
	      out_ends_with(&f, OK "500 5.5.2 Line too long\r\n"), "512/513 replies: %s", f.out.data);
	fake_end(&f);

	/* a line with no end: consumed as it arrives, nothing held */
	current = "endless line";
	fake_start(&f, &cfg, 0, 0);
	for (int i = 0; i < 100000; i++)
		feed(&f, "A", 1);
	CHECK(f.held.len == 0 && f.out.len == strlen(GREET), "endless line: held %zu", f.held.len);
	feed_str(&f, "\r\nNOOP\r\n");
	CHECK(out_ends_with(&f, "500 5.5.2 Line too long\r\n" OK), "after endless line: %s", f.out.data);
	fake_end(&f);
	buf_release(&in);
}

static void test_timeouts(void)
{
	struct smtp_config cfg = test_cfg();
	struct fake f;

	current = "timeouts";
	fake_start(&f, &cfg, 0, 0);
	CHECK(f.timeout == 111000, "command timeout after greeting: %u", f.timeout);
	feed_str(&f, START);
	CHECK(f.timeout == 222000, "data timeout in DATA: %u", f.timeout);
	feed_str(&f, "x\r\n.\r\n");
	CHECK(f.timeout == 111000, "command timeout after DATA: %u", f.timeout);
	feed_str(&f, MAIL_A RCPT_ALICE "BDAT 10\r\nabc");
	CHECK(f.timeout == 222000, "data timeout in a BDAT chunk: %u", f.timeout);
	smtp_session_timeout(f.s);
	CHECK(f.closed && out_ends_with(&f, "421 4.4.2 mx.test Error: timeout exceeded\r\n"),
	      "timeout reply: %s", f.out.data);
	feed_str(&f, "defghij");
	CHECK(f.n_dl == 1 && f.held.len == 0, "input after timeout");
	fake_end(&f);

	/* a timer firing while a request is in flight is ignored */
	current = "timeout while busy";
	fake_start(&f, &cfg, 1, 0);
	feed_str(&f, EHLO MAIL_A RCPT_ALICE);
	CHECK(smtp_session_busy(f.s), "not busy with a rcpt in flight");
	smtp_session_timeout(f.s);
	CHECK(!f.closed, "closed while busy");
	answer(&f);
	CHECK(out_ends_with(&f, RCPT_OK) && f.timeout == 111000, "after rcpt: %s", f.out.data);
	fake_end(&f);
}

/* Slowloris: the time bounds a whole command, and a minimum data rate, not
 * the gap between two octets (test_cfg(): command 111 s, data 222 s, 500
 * octets/s). */
static void test_deadlines(void)
{
	struct smtp_config cfg = test_cfg();
	struct fake f;
	uint64_t t0, longest = 0;
	char line[100];

	current = "deadline: a trickled command line";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO "MAIL FROM:<");
	t0 = f.now;
	for (int i = 0; i < 100 && !f.closed; i++) {
		tick(&f, 10000);
		if (!f.closed)
			feed(&f, "x", 1);
	}
	CHECK(f.closed && out_ends_with(&f, "421 4.4.2 mx.test Error: timeout exceeded\r\n"),
	      "trickled command not cut: %s", f.out.data);
	CHECK(f.now - t0 >= 111000 && f.now - t0 <= 121000, "cut after %llu ms",
	      (unsigned long long)(f.now - t0));
	fake_end(&f);

	current = "deadline: an over-long line trickled";
	fake_start(&f, &cfg, 0, 0);
	t0 = f.now;
	for (int i = 0; i < 100 && !f.closed; i++) {
		feed(&f, X100, 100);
		tick(&f, 5000);
	}
	CHECK(f.closed && f.now - t0 >= 111000 && f.now - t0 <= 116000, "over-long line: closed %d after %llu ms",
	      f.closed, (unsigned long long)(f.now - t0));
	fake_end(&f);

	current = "deadline: each complete command gets its own time";
	fake_start(&f, &cfg, 0, 0);
	for (int i = 0; i < 10; i++) {
		tick(&f, 100000);
		feed_str(&f, "NOOP\r\n");
	}
	CHECK(!f.closed && f.timer_at == f.now + 111000, "NOOP every 100 s: closed %d", f.closed);
	tick(&f, 111000);
	CHECK(f.closed, "silence after the last command");
	fake_end(&f);

	current = "deadline: DATA trickled far below min_data_rate";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, START);
	t0 = f.now;
	for (int i = 0; i < 100 && !f.closed; i++) {
		tick(&f, 10000);
		if (!f.closed)
			feed(&f, "y", 1);
	}
	CHECK(f.closed && out_ends_with(&f, "421 4.4.2 mx.test Error: timeout exceeded\r\n") && f.n_dl == 0,
	      "trickled DATA not cut: %s", f.out.data);
	CHECK(f.now - t0 >= 222000 && f.now - t0 <= 232000, "cut after %llu ms", (unsigned long long)(f.now - t0));
	fake_end(&f);

	/* whole lines, but 100 octets/s: the deadline gains 0.2 s a second,
	 * so it runs out after about 222 / 0.8 = 277.5 s */
	current = "deadline: DATA in whole lines below min_data_rate";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, START);
	t0 = f.now;
	memset(line, 'z', sizeof(line));
	line[98] = '\r';
	line[99] = '\n';
	for (int i = 0; i < 1000 && !f.closed; i++) {
		tick(&f, 1000);
		if (!f.closed)
			feed(&f, line, sizeof(line));
	}
	CHECK(f.closed && f.now - t0 >= 270000 && f.now - t0 <= 285000, "100 octets/s: closed %d after %llu ms",
	      f.closed, (unsigned long long)(f.now - t0));
	fake_end(&f);

	/* 1000 octets/s for 20 minutes (over five data timeouts) */
	current = "deadline: DATA steadily above min_data_rate";
	cfg.max_message_size = 2000000;
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, START);
	for (int i = 0; i < 1200 && !f.closed; i++) {
		tick(&f, 1000);
		for (int k = 0; k < 10; k++)
			feed(&f, line, sizeof(line));
		if (f.timer_at - f.now > longest)
			longest = f.timer_at - f.now;
	}
	feed_str(&f, ".\r\n");
	CHECK(!f.closed && f.n_dl == 1 && f.dl[0].size == 1200000, "steady sender: closed %d, %d deliveries",
	      f.closed, f.n_dl);
	CHECK(longest == 222000, "the deadline went %llu ms ahead (at most data_timeout)",
	      (unsigned long long)longest);
	fake_end(&f);
	cfg = test_cfg();

	current = "deadline: a pause longer than data_timeout after a fast start";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, START);
	for (int k = 0; k < 50; k++)
		feed(&f, line, sizeof(line));
	tick(&f, 221000);
	CHECK(!f.closed, "cut before data_timeout");
	tick(&f, 1000);
	CHECK(f.closed, "5000 octets at once bought more than data_timeout");
	fake_end(&f);

	current = "deadline: BDAT content trickled";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO MAIL_A RCPT_ALICE "BDAT 5000 LAST\r\n");
	t0 = f.now;
	for (int i = 0; i < 100 && !f.closed; i++) {
		tick(&f, 10000);
		if (!f.closed)
			feed(&f, "b", 1);
	}
	CHECK(f.closed && f.n_dl == 0 && f.now - t0 >= 222000 && f.now - t0 <= 232000,
	      "trickled BDAT: closed %d after %llu ms", f.closed, (unsigned long long)(f.now - t0));
	fake_end(&f);

	current = "deadline: a refused BDAT chunk trickled";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO "BDAT 5000\r\n");
	t0 = f.now;
	for (int i = 0; i < 100 && !f.closed; i++) {
		tick(&f, 10000);
		if (!f.closed)
			feed(&f, "b", 1);
	}
	CHECK(f.closed && f.now - t0 >= 222000 && f.now - t0 <= 232000, "discarded chunk: closed %d after %llu ms",
	      f.closed, (unsigned long long)(f.now - t0));
	fake_end(&f);

	/* our own request does not count against the client */
	current = "deadline: restarts after a request";
	fake_start(&f, &cfg, 1, 0);
	feed_str(&f, EHLO MAIL_A RCPT_ALICE);
	CHECK(smtp_session_busy(f.s), "no request in flight");
	tick(&f, 500000);
	CHECK(!f.closed, "closed while our request ran");
	answer(&f);
	CHECK(f.timer_at == f.now + 111000, "timer not restarted after the request");
	tick(&f, 110000);
	CHECK(!f.closed, "cut early after the request");
	tick(&f, 1000);
	CHECK(f.closed, "not cut after the request");
	fake_end(&f);
}

/* A refused BDAT chunk is answered before any of its octets is read. */
static void test_bdat_refused_at_once(void)
{
	struct smtp_config cfg = test_cfg();
	struct fake f;

	current = "BDAT over what is left: 552 before the chunk";
	cfg.max_message_size = 10;
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO MAIL_A RCPT_ALICE "BDAT 6\r\n123456BDAT 5\r\n");
	CHECK(out_ends_with(&f, "250 2.0.0 Ok: 6 octets received\r\n"
			    "552 5.3.4 Message size exceeds fixed maximum message size\r\n") && !f.closed,
	      "no 552 before the chunk: %s", f.out.data);
	/* the 5 octets are still read and dropped (RFC 3030), not run as commands */
	feed_str(&f, "QUIT\n" "BDAT 1 LAST\r\nx" "RSET\r\n");
	CHECK(out_ends_with(&f, "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
			    "503 5.5.1 Earlier BDAT failed, send RSET\r\n" OK) && f.n_dl == 0,
	      "after the refused chunk: %s", f.out.data);
	fake_end(&f);

	current = "BDAT of 2^64-1 octets: 552 and close, nothing read";
	cfg = test_cfg();
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO MAIL_A RCPT_ALICE "BDAT 18446744073709551615 LAST\r\n");
	CHECK(f.closed && !strcmp(f.reason, "bdat chunk over max_message_size") &&
	      out_ends_with(&f, RCPT_OK "552 5.3.4 Message size exceeds fixed maximum message size\r\n"),
	      "huge BDAT: closed %d: %s", f.closed, f.out.data);
	for (int i = 0; i < 1000; i++)
		feed(&f, X1000, 1000);
	CHECK(f.held.len == 0 && f.n_dl == 0, "input after the close");
	fake_end(&f);

	current = "BDAT one octet over max_message_size in a transaction: close";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO MAIL_A RCPT_ALICE "BDAT 10001 LAST\r\n");
	CHECK(f.closed && out_ends_with(&f, "552 5.3.4 Message size exceeds fixed maximum message size\r\n"),
	      "BDAT max+1: closed %d: %s", f.closed, f.out.data);
	fake_end(&f);
}

static void test_shutdown(void)
{
	struct smtp_config cfg = test_cfg();
	struct fake f;

	current = "shutdown idle";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO "NOO");
	smtp_session_shutdown(f.s);
	CHECK(f.closed && out_ends_with(&f, EHLO_OUT "421 4.3.2 mx.test Service shutting down\r\n"),
	      "shutdown idle: %s", f.out.data);
	fake_end(&f);

	current = "shutdown after MAIL";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO MAIL_A);
	smtp_session_shutdown(f.s);
	CHECK(f.closed, "shutdown after MAIL did not close");
	fake_end(&f);

	current = "shutdown in DATA";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, START "part one\r\n");
	smtp_session_shutdown(f.s);
	CHECK(!f.closed, "closed in the middle of DATA");
	feed_str(&f, "part two\r\n.\r\nNOOP\r\n");
	CHECK(f.closed && f.n_dl == 1 &&
	      out_ends_with(&f, QUEUED(1) "421 4.3.2 mx.test Service shutting down\r\n"),
	      "shutdown in DATA: %s", f.out.data);
	fake_end(&f);

	current = "shutdown during delivery";
	fake_start(&f, &cfg, 1, 0);
	feed_str(&f, EHLO MAIL_A RCPT_ALICE);
	answer(&f);
	feed_str(&f, "DATA\r\nx\r\n.\r\nNOOP\r\n");
	CHECK(f.dv != NULL && smtp_session_busy(f.s), "no delivery in flight");
	smtp_session_shutdown(f.s);
	CHECK(!f.closed, "closed with a delivery in flight");
	answer(&f);
	CHECK(f.closed && out_ends_with(&f, QUEUED(1) "421 4.3.2 mx.test Service shutting down\r\n"),
	      "shutdown during delivery: %s", f.out.data);
	fake_end(&f);

	current = "shutdown between BDAT chunks";
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO MAIL_A RCPT_ALICE "BDAT 2\r\nab");
	smtp_session_shutdown(f.s);
	CHECK(!f.closed, "closed between BDAT chunks");
	feed_str(&f, "BDAT 1 LAST\r\nc");
	CHECK(f.closed && f.n_dl == 1 && strcmp(f.dl[0].body, "abc") == 0 &&
	      out_ends_with(&f, QUEUED(1) "421 4.3.2 mx.test Service shutting down\r\n"),
	      "shutdown between chunks: %s", f.out.data);
	fake_end(&f);
}

static void test_async_contract(void)
{
	struct smtp_config cfg = test_cfg();
	struct fake f;
	static const char in[] = EHLO MAIL_A RCPT_ALICE RCPT_BOB "DATA\r\n";
	size_t n;

	/* the session stops right after the RCPT line and says so */
	current = "async: input held behind a request";
	fake_start(&f, &cfg, 1, 0);
	n = smtp_session_input(f.s, in, sizeof(in) - 1);
	CHECK(n == strlen(EHLO MAIL_A RCPT_ALICE), "consumed %zu", n);
	CHECK(smtp_session_busy(f.s) && f.rreq, "no request in flight");
	CHECK(smtp_session_input(f.s, in + n, sizeof(in) - 1 - n) == 0, "busy session consumed input");
	CHECK(f.resumes == 0, "resume before the answer");
	{
		struct smtp_rcpt_req *r = f.rreq;

		f.rreq = NULL;
		answer_rcpt(&f, r);
	}
	CHECK(f.resumes == 1 && !smtp_session_busy(f.s), "no resume after the answer");
	CHECK(out_ends_with(&f, MAIL_OK RCPT_OK), "reply after answer: %s", f.out.data);
	fake_end(&f);

	/* disconnect with a delivery in flight: the answer makes no io call */
	current = "async: disconnect during delivery";
	fake_start(&f, &cfg, 1, 0);
	feed_str(&f, EHLO MAIL_A RCPT_ALICE);
	answer(&f);
	feed_str(&f, "DATA\r\nx\r\n.\r\nQUIT\r\n");
	CHECK(f.dv != NULL, "no delivery in flight");
	smtp_session_disconnected(f.s);
	f.gone = 1;
	answer(&f);
	CHECK(f.io_after_gone == 0, "%d io calls after disconnect", f.io_after_gone);
	CHECK(!smtp_session_busy(f.s), "still busy");
	fake_end(&f);

	/* disconnect with a recipient check in flight */
	current = "async: disconnect during rcpt";
	fake_start(&f, &cfg, 1, 0);
	feed_str(&f, EHLO MAIL_A "RCPT TO:<team@example.org>\r\n");
	smtp_session_disconnected(f.s);
	f.gone = 1;
	answer(&f);
	CHECK(f.io_after_gone == 0, "%d io calls after disconnect", f.io_after_gone);
	fake_end(&f);

	/* the pipeline bound, seen from the caller */
	current = "pipeline bound per call";
	cfg.max_pipeline = 2;
	fake_start(&f, &cfg, 0, 0);
	{
		static const char noops[] = "NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n";

		n = smtp_session_input(f.s, noops, sizeof(noops) - 1);
		CHECK(n == 12, "consumed %zu with max_pipeline 2", n);
		n += smtp_session_input(f.s, noops + n, sizeof(noops) - 1 - n);
		n += smtp_session_input(f.s, noops + n, sizeof(noops) - 1 - n);
		CHECK(n == sizeof(noops) - 1, "consumed %zu after three calls", n);
		CHECK(f.out.len == strlen(GREET OK OK OK OK OK), "replies %s", f.out.data);
	}
	fake_end(&f);
}

/* Logs carry metadata, never content. */
static void test_logs(void)
{
	struct smtp_config cfg = test_cfg();
	struct fake f;
	FILE *tmp = tmpfile();
	char text[8192];
	size_t n;

	current = "logs";
	if (!tmp) {
		CHECK(0, "tmpfile failed");
		return;
	}
	log_set_fd(fileno(tmp));
	fake_start(&f, &cfg, 0, 0);
	feed_str(&f, EHLO "MAIL FROM:<s p@x>\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<carol@example.org>\r\n"
		 RCPT_ALICE "DATA\r\nSubject: SECRET-SUBJECT\r\n\r\nSECRET-BODY\r\n.\r\nQUIT\r\n");
	fake_end(&f);
	log_set_fd(2);
	rewind(tmp);
	n = fread(text, 1, sizeof(text) - 1, tmp);
	text[n] = '\0';
	fclose(tmp);
	CHECK(strstr(text, "SECRET") == NULL, "message content in logs:\n%s", text);
	CHECK(strstr(text, "sid=S1") && strstr(text, "rcpt refused to=carol@example.org reason=disabled"),
	      "rcpt refusal not logged:\n%s", text);
	CHECK(strstr(text, "message id=S1.1 from=sender@remote.example nrcpt=1 targets=1 size=") &&
	      strstr(text, "result=delivered"), "transaction not logged:\n%s", text);
	CHECK(strstr(text, "close reason=quit"), "close not logged:\n%s", text);
}

/* STARTTLS outside the table: time, shutdown and the Received comment. */
static void test_starttls(void)
{
	static const struct tls_info odd = { .version = "TLS1.2", .cipher = "AES(256) \\x\r\n" };
	struct smtp_config cfg = test_cfg();
	struct fake f;
	size_t n;

	current = "starttls: consumed exactly the STARTTLS line";
	fake_start_mode(&f, &cfg, 0, 0, TLS_MODE_STARTTLS);
	n = smtp_session_input(f.s, EHLO "STARTTLS\r\nMAIL FROM:<a@b>\r\n", strlen(EHLO "STARTTLS\r\nMAIL FROM:<a@b>\r\n"));
	CHECK(n == strlen(EHLO "STARTTLS\r\n") && f.tls_wanted, "consumed %zu", n);
	CHECK(smtp_session_input(f.s, "MAIL FROM:<a@b>\r\n", 17) == 0, "input taken before tls_started");
	CHECK(!smtp_session_busy(f.s), "busy while waiting for TLS");
	smtp_session_tls_started(f.s, &test_tls);
	f.tls_wanted = 0;
	feed_str(&f, "MAIL FROM:<a@b>\r\n");
	CHECK(out_ends_with(&f, READY "503 5.5.1 Send HELO/EHLO first\r\n"), "after tls: %s", f.out.data);
	fake_end(&f);

	current = "starttls: the deadline restarts after the handshake";
	fake_start_mode(&f, &cfg, 0, 0, TLS_MODE_STARTTLS);
	tick(&f, 100 * 1000);
	feed_str(&f, "STARTTLS\r\n");
	tick(&f, 100 * 1000);  /* 200 s since the greeting, 100 s since STARTTLS */
	CHECK(!f.closed, "closed during the handshake");
	tls_done(&f);
	CHECK(f.timer_at == f.now + cfg.command_timeout * 1000, "timer %llu ms ahead, want %u",
	      (unsigned long long)(f.timer_at - f.now), cfg.command_timeout * 1000);
	tick(&f, 110 * 1000);
	CHECK(!f.closed, "closed before a full command_timeout after the handshake");
	tick(&f, 1000);
	CHECK(f.closed && out_ends_with(&f, READY "421 4.4.2 mx.test Error: timeout exceeded\r\n"),
	      "timeout after tls: %s", f.out.data);
	fake_end(&f);

	current = "starttls: timeout during the handshake writes nothing";
	fake_start_mode(&f, &cfg, 0, 0, TLS_MODE_REQUIRED);
	feed_str(&f, "STARTTLS\r\n");
	tick(&f, cfg.command_timeout * 1000);
	CHECK(f.closed && out_ends_with(&f, GREET READY), "timeout in handshake: %s", f.out.data);
	fake_end(&f);

	current = "starttls: shutdown during the handshake says so after it";
	fake_start_mode(&f, &cfg, 0, 0, TLS_MODE_STARTTLS);
	feed_str(&f, EHLO "STARTTLS\r\n");
	smtp_session_shutdown(f.s);
	CHECK(!f.closed && out_ends_with(&f, READY), "shutdown in handshake: %s", f.out.data);
	tls_done(&f);
	CHECK(f.closed && out_ends_with(&f, READY "421 4.3.2 mx.test Service shutting down\r\n"),
	      "shutdown after handshake: %s", f.out.data);
	fake_end(&f);

	current = "starttls: odd characters stay inside the comment";
	fake_start_mode(&f, &cfg, 0, 0, TLS_MODE_STARTTLS);
	feed_str(&f, "STARTTLS\r\n");
	drop_for_tls(&f);
	f.tls_wanted = 0;
	smtp_session_tls_started(f.s, &odd);
	feed_str(&f, START "x\r\n.\r\n");
	CHECK(f.n_dl == 1 && strstr(f.dl[0].received, "with ESMTPS\n\t(version=TLS1.2 cipher=AES_256___x__) id S1.1\n"),
	      "received: %s", f.n_dl ? f.dl[0].received : "");
	fake_end(&f);
}

/* AUTH outside the table: logs, time, disconnects, the async contract. */
static void test_auth(void)
{
	struct smtp_config cfg = test_cfg();
	struct fake f;
	FILE *tmp = tmpfile();
	char text[8192];
	size_t n;

	current = "auth: logs name mechanism, user and client, never a secret";
	if (!tmp) {
		CHECK(0, "tmpfile failed");
		return;
	}
	log_set_level(LOG_INFO);
	log_set_fd(fileno(tmp));
	fake_start_flags(&f, &cfg, 0, 1, TLS_MODE_IMPLICIT, FK_SUBMISSION);
	feed_str(&f, EHLO PLAIN_WRONG "AUTH LOGIN\r\nYWxpY2U=\r\n*\r\nAUTH PLAIN YWxpY2U=\r\n"
		 "AUTH X-TWO\r\nYWxpY2U6c2VjcmV0\r\nMAIL FROM:<bob@example.org>\r\nQUIT\r\n");
	fake_end(&f);
	log_set_fd(2);
	log_set_level(LOG_WARN);
	rewind(tmp);
	n = fread(text, 1, sizeof(text) - 1, tmp);
	text[n] = '\0';
	fclose(tmp);
	CHECK(!strstr(text, "secret") && !strstr(text, "wrong") && !strstr(text, "AGFsaWNl") &&
	      !strstr(text, "YWxpY2U"), "a secret in the logs:\n%s", text);
	CHECK(strstr(text, "auth failed mech=PLAIN user=alice client=192.0.2.1") &&
	      strstr(text, "auth cancelled mech=LOGIN client=192.0.2.1") &&
	      strstr(text, "auth failed mech=PLAIN user=- client=192.0.2.1 reason=malformed") &&
	      strstr(text, "auth ok mech=X-TWO user=alice@example.org client=192.0.2.1") &&
	      strstr(text, "mail refused from=bob@example.org user=alice@example.org reason=not_owned"),
	      "auth not logged:\n%s", text);

	current = "auth: the session takes nothing while a step runs";
	fake_start_flags(&f, &cfg, 1, 1, TLS_MODE_IMPLICIT, FK_AUTH);
	{
		static const char in[] = EHLO "AUTH LOGIN\r\nYWxpY2U=\r\n";

		n = smtp_session_input(f.s, in, sizeof(in) - 1);
		CHECK(n == strlen(EHLO "AUTH LOGIN\r\n") && f.astep && smtp_session_busy(f.s), "consumed %zu", n);
		CHECK(smtp_session_input(f.s, in + n, sizeof(in) - 1 - n) == 0, "busy session consumed input");
		tick(&f, 500 * 1000);
		CHECK(!f.closed, "timed out while the glue worked");
		answer(&f);
		CHECK(f.resumes == 1 && out_ends_with(&f, "334 VXNlcm5hbWU6\r\n"), "after the step: %s", f.out.data);
		CHECK(f.timer_at == f.now + cfg.command_timeout * 1000, "response deadline not restarted");
	}
	fake_end(&f);

	current = "auth: disconnect with a step in flight";
	fake_start_flags(&f, &cfg, 1, 1, TLS_MODE_IMPLICIT, FK_AUTH);
	feed_str(&f, EHLO "AUTH LOGIN\r\n");
	answer(&f);
	feed_str(&f, "YWxpY2U=\r\n");
	CHECK(f.astep != NULL && f.auth_open, "no step in flight");
	smtp_session_disconnected(f.s);
	f.gone = 1;
	CHECK(f.auth_open, "auth_end while the step was in flight");
	answer(&f);
	CHECK(f.io_after_gone == 0 && !f.auth_open && f.n_auth_end == 1, "after the answer: %d io calls, open %d",
	      f.io_after_gone, f.auth_open);
	fake_end(&f);

	current = "auth: disconnect while a 334 waits";
	fake_start_flags(&f, &cfg, 0, 1, TLS_MODE_IMPLICIT, FK_AUTH);
	feed_str(&f, EHLO "AUTH LOGIN\r\n");
	CHECK(f.auth_open, "no exchange open");
	smtp_session_disconnected(f.s);
	f.gone = 1;
	CHECK(!f.auth_open && f.n_auth_end == 1, "exchange not ended at disconnect");
	fake_end(&f);

	current = "auth: timeout while a 334 waits";
	fake_start_flags(&f, &cfg, 0, 1, TLS_MODE_IMPLICIT, FK_AUTH);
	feed_str(&f, EHLO "AUTH LOGIN\r\nYWxp");
	tick(&f, cfg.command_timeout * 1000);
	CHECK(f.closed && !f.auth_open && out_ends_with(&f, "334 VXNlcm5hbWU6\r\n"
							"421 4.4.2 mx.test Error: timeout exceeded\r\n"),
	      "timeout in an exchange: %s", f.out.data);
	fake_end(&f);

	current = "auth: shutdown during an exchange";
	fake_start_flags(&f, &cfg, 1, 1, TLS_MODE_IMPLICIT, FK_AUTH);
	feed_str(&f, EHLO "AUTH LOGIN\r\n");
	smtp_session_shutdown(f.s);
	CHECK(!f.closed, "closed with a step in flight");
	answer(&f);
	CHECK(f.closed && !f.auth_open && out_ends_with(&f, "334 VXNlcm5hbWU6\r\n"
							"421 4.3.2 mx.test Service shutting down\r\n"),
	      "shutdown in an exchange: %s", f.out.data);
	fake_end(&f);

	current = "auth: freed with a 334 waiting";
	fake_start_flags(&f, &cfg, 0, 1, TLS_MODE_IMPLICIT, FK_AUTH);
	feed_str(&f, EHLO "AUTH X-TWO\r\n");
	smtp_session_free(&f.s);
	CHECK(!f.auth_open && f.n_auth_end == 1, "exchange not ended at free");
	{
		/* fake_end wants a session to free */
		struct smtp_session_params p = { .cfg = &cfg, .hostname = "mx.test", .sid = "S1" };

		f.s = smtp_session_new(&p, &fake_io, &f);
	}
	fake_end(&f);

	current = "auth: a sender check in flight holds the input";
	fake_start_flags(&f, &cfg, 1, 1, TLS_MODE_IMPLICIT, FK_SUBMISSION);
	feed_str(&f, EHLO PLAIN_ALICE);
	answer(&f);
	feed_str(&f, MAIL_ALICE RCPT_BOB);
	CHECK(f.sreq && smtp_session_busy(f.s) && f.held.len == strlen(RCPT_BOB), "no sender check in flight");
	answer(&f);
	CHECK(out_ends_with(&f, AUTH_OK MAIL_OK RCPT_OK), "after the sender check: %s", f.out.data);
	fake_end(&f);
}

int main(void)
{
	FILE *devnull = fopen("/dev/null", "w");

	/* the table runs log expected errors ("rcpt resolved to no target") */
	if (devnull)
		log_set_fd(fileno(devnull));
	log_set_level(LOG_WARN);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		for (int mode = FEED_ALL; mode <= FEED_RANDOM; mode++)
			for (int async = 0; async < 2; async++)
				run_case(&cases[i], (enum feed_mode)mode, async);
	log_set_level(LOG_INFO);
	test_logs();
	log_set_level(LOG_WARN);
	if (devnull)
		log_set_fd(fileno(devnull));
	test_generated();
	test_timeouts();
	test_deadlines();
	test_bdat_refused_at_once();
	test_shutdown();
	test_async_contract();
	test_starttls();
	test_auth();
	log_set_fd(2);
	if (devnull)
		fclose(devnull);
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("all smtp-session tests passed (%zu table cases x 6 runs)\n", ARRAY_SIZE(cases));
	return 0;
}
