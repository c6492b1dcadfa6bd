#include "lib/runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"

struct runner {
	const struct runner_proto *proto;
	uv_loop_t *loop;
	void *ctx;
	struct lockout *lockout;     /* shared, not owned; NULL: no login throttling */
	char *busy, *denied, *locked;
	struct proto_handler handler;
};

static void auth_end(struct rconn *rc, const char *user, enum lockout_outcome o);

/* ---- freeing ---- */

static void delay_closed(uv_handle_t *h)
{
	free(h->data);
}

/* The last step: the struct goes, with its delay timer if it was ever used. */
static void rc_drop(struct rconn *rc)
{
	if (rc->flags & RCONN_TIMER)
		uv_close((uv_handle_t *)&rc->delay, delay_closed);
	else
		free(rc);
}

/* Runs on a worker thread. */
static void release_work(uv_work_t *w)
{
	struct rconn *rc = w->data;

	rc->runner->proto->release(rc);
}

static void release_after(uv_work_t *w, int status)
{
	struct rconn *rc = w->data;

	if (status == UV_ECANCELED)
		rc->runner->proto->release(rc);
	rc_drop(rc);
}

/*
 * Frees the session and the struct when nobody needs them any more. Called
 * only from the runner's own entry points (proto_handler.closed, a job's
 * completion, the delay timer), never from inside a session's io call, so a
 * session is never freed under its own feet.
 */
static void rc_maybe_free(struct rconn *rc)
{
	const struct runner_proto *p = rc->runner->proto;
	int need_release;

	if (rc->conn || (rc->flags & (RCONN_JOB | RCONN_FREEING)))
		return;
	if (p->busy(rc))
		return;
	if (rc->flags & RCONN_AUTH)
		auth_end(rc, NULL, LOCKOUT_NONE);
	rc->flags |= RCONN_FREEING;
	need_release = p->free(rc);
	rc->session = NULL;
	if (need_release && p->release) {
		rc->work.data = rc;
		if (uv_queue_work(rc->runner->loop, &rc->work, release_work, release_after) == 0)
			return;
		p->release(rc);
	}
	rc_drop(rc);
}

/* ---- jobs ---- */

static void job_run(uv_work_t *w)
{
	struct rconn *rc = w->data;

	rc->work_fn(rc);
}

/* Answers the job: the connection's next job may start from inside after. */
static void job_finish(struct rconn *rc, int status)
{
	runner_after_fn *after = rc->after_fn;

	rc->flags &= ~(unsigned)(RCONN_JOB | RCONN_DELAYING);
	rc->work_fn = NULL;
	rc->after_fn = NULL;
	after(rc, status);
}

static void job_after(uv_work_t *w, int status)
{
	struct rconn *rc = w->data;

	job_finish(rc, status == UV_ECANCELED ? -ECANCELED : 0);
	rc_maybe_free(rc);
}

/* 0, or -1 after the job was answered as cancelled (libuv refused it). */
static int job_queue(struct rconn *rc)
{
	rc->work.data = rc;
	if (uv_queue_work(rc->runner->loop, &rc->work, job_run, job_after) == 0)
		return 0;
	job_finish(rc, -ECANCELED);
	return -1;
}

/* 1 when the login the job would check comes from an address locked out
 * during its delay: the check must not run. */
static int auth_locked(struct rconn *rc)
{
	struct runner *r = rc->runner;

	return (rc->flags & RCONN_AUTH) && r->lockout && rc->conn &&
	       lockout_locked_until(r->lockout, rc->peer, lockout_now_ms()) != 0;
}

static void delay_done(uv_timer_t *t)
{
	struct rconn *rc = t->data;

	if (auth_locked(rc)) {
		/* The job stays "delaying": h_closed answers it -ECANCELED once
		 * the connection is gone, when the session has nobody to reply to. */
		log_info(rc->runner->proto->name, rc->sid, "login not checked: client locked out client=%s", rc->peer);
		if (rc->runner->locked)
			conn_write(rc->conn, rc->runner->locked, strlen(rc->runner->locked));
		conn_close(rc->conn, "client locked out");
		return;
	}
	rc->flags &= ~(unsigned)RCONN_DELAYING;
	if (job_queue(rc) < 0)
		rc_maybe_free(rc);
}

void runner_submit(struct rconn *rc, runner_work_fn *work, runner_after_fn *after, unsigned delay_ms)
{
	if (rc->flags & (RCONN_JOB | RCONN_FREEING))
		BUG("runner: a job while another is in flight");
	rc->flags |= RCONN_JOB;
	rc->work_fn = work;
	rc->after_fn = after;
	if (!delay_ms) {
		/* a refusal is answered from inside this call, as sessions allow */
		job_queue(rc);
		return;
	}
	if (!(rc->flags & RCONN_TIMER)) {
		uv_timer_init(rc->runner->loop, &rc->delay);
		rc->delay.data = rc;
		rc->flags |= RCONN_TIMER;
	}
	rc->flags |= RCONN_DELAYING;
	uv_timer_start(&rc->delay, delay_done, delay_ms, 0);
}

int runner_busy(const struct rconn *rc)
{
	return (rc->flags & RCONN_JOB) != 0;
}

void runner_when_drained(struct rconn *rc, size_t below)
{
	if (!rc->conn)
		return;
	rc->flags |= RCONN_DRAIN;
	conn_when_drained(rc->conn, below);
}

/* ---- the proto_handler ---- */

/* ctx: the protocol's server, whose first member is its struct runner *. */
static void *h_open(struct conn *c, void *ctx)
{
	struct runner *r = *(struct runner **)ctx;
	const struct runner_proto *p = r->proto;
	struct rconn *rc;
	struct runner_open o;

	if (p->conn_size < sizeof(*rc))
		BUG("runner: conn_size smaller than struct rconn");
	rc = xcalloc(1, p->conn_size);
	rc->conn = c;
	rc->runner = r;
	snprintf(rc->sid, sizeof(rc->sid), "%s", conn_sid(c));
	snprintf(rc->peer, sizeof(rc->peer), "%s", conn_peer(c));
	o = (struct runner_open){
		.sid = conn_sid(c),
		.peer = conn_peer(c),
		.tls_mode = conn_tls_mode(c),
		.tls = conn_tls_info(c),
	};
	rc->session = p->open(rc, r->ctx, &o);
	if (!rc->session) {
		if (rc->flags & RCONN_JOB)
			BUG("runner: open failed with a job in flight");
		rc_drop(rc);
		return NULL;
	}
	return rc;
}

static size_t h_input(void *session, const char *data, size_t len)
{
	struct rconn *rc = session;

	return rc->runner->proto->input(rc, data, len);
}

static void h_timeout(void *session)
{
	struct rconn *rc = session;

	rc->runner->proto->timeout(rc);
}

static void h_shutdown(void *session)
{
	struct rconn *rc = session;

	rc->runner->proto->shutdown(rc);
}

static void h_drained(void *session)
{
	struct rconn *rc = session;

	if (!(rc->flags & RCONN_DRAIN))
		return;
	rc->flags &= ~(unsigned)RCONN_DRAIN;
	if (rc->runner->proto->drained)
		rc->runner->proto->drained(rc);
}

static void h_tls_started(void *session)
{
	struct rconn *rc = session;

	if (rc->conn && rc->runner->proto->tls_started)
		rc->runner->proto->tls_started(rc, conn_tls_info(rc->conn));
}

/* For lib/net.c at the client's end: input held while a job runs or the
 * session waits is taken later; held otherwise, it is never taken. */
static int h_busy(void *session)
{
	struct rconn *rc = session;

	return (rc->flags & (RCONN_JOB | RCONN_DRAIN)) || rc->runner->proto->busy(rc);
}

static void h_closed(void *session)
{
	struct rconn *rc = session;
	const struct runner_proto *p = rc->runner->proto;

	rc->conn = NULL;
	p->disconnected(rc);
	if (rc->flags & RCONN_DELAYING) {
		/* nobody waits for this job any more: answer it without running it */
		uv_timer_stop(&rc->delay);
		job_finish(rc, -ECANCELED);
	}
	if (rc->flags & RCONN_DRAIN) {
		/* the drain will never come: a session waiting for it goes on (and ends) */
		rc->flags &= ~(unsigned)RCONN_DRAIN;
		if (p->drained)
			p->drained(rc);
	}
	rc_maybe_free(rc);
}

/* ---- failed-login throttling ---- */

/* The attempt in flight of rc ends with o. */
static void auth_end(struct rconn *rc, const char *user, enum lockout_outcome o)
{
	struct runner *r = rc->runner;
	uint64_t now = lockout_now_ms();

	rc->flags &= ~(unsigned)RCONN_AUTH;
	if (!r->lockout)
		return;
	if (lockout_result(r->lockout, rc->peer, user, o, now)) {
		uint64_t until = lockout_locked_until(r->lockout, rc->peer, now);

		log_warn(r->proto->name, rc->sid, "client locked out after failed logins client=%s seconds=%llu",
			 rc->peer, (unsigned long long)((until - now + 999) / 1000));
	}
}

unsigned runner_auth_delay(struct rconn *rc, const char *user)
{
	struct runner *r = rc->runner;
	unsigned d;

	if (!r->lockout)
		return 0;
	if (rc->flags & RCONN_AUTH)
		auth_end(rc, NULL, LOCKOUT_NONE);   /* the last one never got an answer */
	d = lockout_attempt(r->lockout, rc->peer, user, lockout_now_ms());
	rc->flags |= RCONN_AUTH;
	/* a locked-out address is stopped when the delay ends (delay_done) */
	if (!d && auth_locked(rc))
		d = 1;
	return d;
}

void runner_auth_result(struct rconn *rc, const char *user, int ok)
{
	struct runner *r = rc->runner;

	if (ok) {
		/* from now on in the listener's share kept for users */
		if (rc->conn)
			conn_set_authenticated(rc->conn);
	}
	if (!r->lockout)
		return;
	auth_end(rc, user, ok ? LOCKOUT_OK : LOCKOUT_FAIL);
	if (!ok)
		log_debug(r->proto->name, rc->sid, "login failure counted client_failures=%u",
			  lockout_failures(r->lockout, rc->peer, lockout_now_ms()));
}

/* ---- io adapters ---- */

void runner_io_write(void *ctx, const char *data, size_t len)
{
	struct rconn *rc = ctx;

	if (rc->conn)
		conn_write(rc->conn, data, len);
}

void runner_io_close(void *ctx, const char *reason)
{
	struct rconn *rc = ctx;

	if (rc->conn)
		conn_close(rc->conn, reason);
}

void runner_io_set_timeout(void *ctx, unsigned seconds)
{
	struct rconn *rc = ctx;

	if (rc->conn)
		conn_set_timeout(rc->conn, seconds * 1000);
}

void runner_io_resume(void *ctx)
{
	struct rconn *rc = ctx;

	if (rc->conn)
		conn_resume_input(rc->conn);
}

void runner_io_when_drained(void *ctx, size_t below)
{
	runner_when_drained(ctx, below);
}

void runner_io_start_tls(void *ctx)
{
	struct rconn *rc = ctx;

	if (rc->conn)
		conn_start_tls(rc->conn);
}

/* ---- the runner ---- */

static char *reply_copy(const char *mine, const char *proto)
{
	const char *s = mine ? mine : proto;

	return s ? xstrdup(s) : NULL;
}

struct runner *runner_new(const struct runner_proto *proto, uv_loop_t *loop, void *ctx,
			  const struct runner_replies *replies, struct lockout *lk)
{
	struct runner *r = xcalloc(1, sizeof(*r));
	struct runner_replies none = { 0 };

	if (!replies)
		replies = &none;
	r->proto = proto;
	r->loop = loop;
	r->ctx = ctx;
	r->busy = reply_copy(replies->busy, proto->busy_reply);
	r->denied = reply_copy(replies->denied, proto->denied_reply);
	r->locked = reply_copy(replies->locked, proto->locked_reply);
	r->lockout = lk;
	r->handler = (struct proto_handler){
		.name = proto->name,
		.open = h_open,
		.input = h_input,
		.timeout = h_timeout,
		.shutdown = h_shutdown,
		.closed = h_closed,
		.drained = h_drained,
		.tls_started = h_tls_started,
		.busy = h_busy,
		.busy_reply = r->busy,
		.denied_reply = r->denied,
		.locked_reply = r->locked,
	};
	return r;
}

void runner_free(struct runner **rp)
{
	struct runner *r = *rp;

	if (!r)
		return;
	free(r->busy);
	free(r->denied);
	free(r->locked);
	free(r);
	*rp = NULL;
}

const struct proto_handler *runner_handler(const struct runner *r)
{
	return &r->handler;
}

uv_loop_t *runner_loop(const struct runner *r)
{
	return r->loop;
}

/* ---- SASL ---- */

static int is_loopback(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

int runner_plaintext_ok(const struct rconn *rc, enum plaintext_auth policy)
{
	return (rc->conn && conn_tls_info(rc->conn)) || runner_plaintext_in_clear(rc, policy);
}

int runner_plaintext_in_clear(const struct rconn *rc, enum plaintext_auth policy)
{
	switch (policy) {
	case PLAINTEXT_AUTH_YES:
		return 1;
	case PLAINTEXT_AUTH_LOOPBACK:
		return is_loopback(rc->peer);
	default:
		return 0;
	}
}

const char *runner_auth_mechs(struct rconn *rc, struct runner_auth *a)
{
	a->mechs[0] = '\0';
	if (!rc->conn || !a->ctx)
		return a->mechs;
	if (sasl_ctx_mechs(a->ctx, runner_plaintext_ok(rc, a->policy), conn_tls_info(rc->conn), a->mechs,
			   sizeof(a->mechs)) < 0)
		a->mechs[0] = '\0';
	return a->mechs;
}

/* Runs on a worker thread: GNU SASL checks the password or the SCRAM proof
 * against the directory. */
static void auth_work(struct rconn *rc)
{
	struct runner_auth *a = rc->auth;
	struct auth_step *st = a->step;
	const unsigned char *out = NULL;
	size_t outlen = 0;

	a->result = sasl_exchange_step(a->sx, a->backend, st->in_absent ? NULL : st->in, st->in_len, &out, &outlen);
	st->out = NULL;
	st->out_len = 0;
	if (a->result == SASL_STEP_CONTINUE && outlen) {
		st->out = xmalloc(outlen);
		memcpy(st->out, out, outlen);
		st->out_len = outlen;
	}
}

static void auth_after(struct rconn *rc, int status)
{
	struct runner_auth *a = rc->auth;
	struct auth_step *st = a->step;
	const char *who = sasl_exchange_authcid(a->sx);

	a->step = NULL;
	rc->auth = NULL;
	if (status < 0)
		a->result = SASL_STEP_TEMPFAIL;
	switch (a->result) {
	case SASL_STEP_CONTINUE:
		st->status = AUTH_CONTINUE;
		break;
	case SASL_STEP_SUCCESS:
		st->status = AUTH_OK;
		snprintf(st->user, sizeof(st->user), "%s", sasl_exchange_user(a->sx));
		runner_auth_result(rc, st->user, 1);
		break;
	case SASL_STEP_FAILURE:
		st->status = AUTH_FAILED;
		snprintf(st->user, sizeof(st->user), "%s", who);
		runner_auth_result(rc, who, 0);
		break;
	case SASL_STEP_MALFORMED:
		st->status = AUTH_MALFORMED;
		snprintf(st->user, sizeof(st->user), "%s", who);
		break;
	default:
		st->status = AUTH_TEMPFAIL;
		snprintf(st->user, sizeof(st->user), "%s", who);
		break;
	}
	a->done(rc, st);
}

void runner_auth_step(struct rconn *rc, struct runner_auth *a, struct auth_step *st)
{
	unsigned delay = 0;

	st->user[0] = '\0';
	if (st->first) {
		sasl_exchange_free(&a->sx);
		if (!rc->conn || !a->ctx ||
		    sasl_exchange_new(a->ctx, st->mech, runner_plaintext_ok(rc, a->policy), conn_tls_info(rc->conn),
				      &a->sx) < 0) {
			st->status = AUTH_MALFORMED;
			a->done(rc, st);
			return;
		}
		/* the client address's failed-login delay, before the first step */
		delay = runner_auth_delay(rc, "");
	}
	if (!a->sx) {
		st->status = AUTH_TEMPFAIL;
		a->done(rc, st);
		return;
	}
	a->step = st;
	rc->auth = a;
	runner_submit(rc, auth_work, auth_after, delay);
}

void runner_auth_end(struct runner_auth *a)
{
	sasl_exchange_free(&a->sx);
}
