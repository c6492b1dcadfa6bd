#include "smtp/smtp-server.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "lib/log.h"
#include "lib/notify.h"
#include "lib/ratelimit.h"
#include "lib/runner.h"
#include "lib/sasl.h"
#include "lib/xalloc.h"
#include "smtp/smtp-session.h"
#include "storage/maildir.h"

struct smtp_server {
	struct runner *runner;        /* first: this struct is the handler's ctx (lib/runner.h) */
	const struct config *cfg;
	struct dir *dir;
	uv_loop_t *loop;
	uint64_t held;                /* message octets held by all sessions */
	/* max_messages_per_ip_per_minute of every listener: one bucket per
	 * listener and client address, bounded (lib/ratelimit.h) */
	struct ratelimit *rates;
	/* SMTP AUTH: GNU SASL (NULL: AUTH is not offered) and the directory
	 * as its steps see it */
	struct sasl_ctx *sasl;
	struct sasl_backend backend;
};

/* Client addresses whose message rate is kept at once (about 40 octets each). */
#define RATE_SLOTS 16384

/*
 * One per connection, made and freed by lib/runner.c: it outlives the
 * connection while a request is on the threadpool.
 */
struct smtp_conn {
	struct rconn rc;              /* first: the runner's part (conn, session, sid) */
	struct smtp_server *srv;
	/* the request on the threadpool, one at a time */
	struct smtp_rcpt_req *rcpt;
	struct smtp_delivery *dv;
	int result;
	char **maildirs;              /* the delivery's Maildirs, to publish on success */
	size_t n_maildirs;
	uint64_t held;                /* this session's share of srv->held */
	const struct listener_config *listener; /* the listener it came in on; NULL: none known */
	struct runner_auth auth;      /* SMTP AUTH */
	struct smtp_sender_req *sender;
};

static void io_release(void *ctx)
{
	struct smtp_conn *sc = ctx;

	sc->srv->held -= sc->held;
	sc->held = 0;
}

/* The budget of [smtp] max_buffered, shared by every SMTP session. */
static int io_reserve(void *ctx, size_t n)
{
	struct smtp_conn *sc = ctx;

	if (sc->srv->held + n > sc->srv->cfg->smtp.max_buffered)
		return -1;
	sc->srv->held += n;
	sc->held += n;
	return 0;
}

/* At MAIL: one token of the client's bucket on its listener. */
static int io_mail_allowed(void *ctx)
{
	struct smtp_conn *sc = ctx;
	char key[160];

	if (!sc->listener || !sc->listener->max_messages_per_ip_per_minute)
		return 1;
	snprintf(key, sizeof(key), "%s %s", sc->listener->name, sc->rc.peer);
	return ratelimit_take(sc->srv->rates, key, sc->listener->max_messages_per_ip_per_minute,
			      uv_now(sc->srv->loop));
}

/* ---- io for the session ---- */

/* The session's deadlines are kept in loop time, the clock libuv's timers
 * count in, so a deadline and the timer armed for it agree. */
static uint64_t io_now(void *ctx)
{
	struct smtp_conn *sc = ctx;

	return uv_now(sc->srv->loop);
}

static void io_set_timeout(void *ctx, unsigned ms)
{
	struct smtp_conn *sc = ctx;

	if (sc->rc.conn)
		conn_set_timeout(sc->rc.conn, ms ? ms : 1);  /* 0 would stop the timer */
}

/* The domain of a postmaster address (local part "postmaster" in any case,
 * RFC 5321 4.5.1), or NULL. "<Postmaster>" reaches the glue as
 * Postmaster@<hostname> (smtp/smtp-session.c). */
static const char *postmaster_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	if (!at || at - address != 10 || strncasecmp(address, "postmaster", 10) != 0)
		return NULL;
	return at + 1;
}

static enum dir_status resolve_postmaster(struct smtp_conn *sc, const char *domain, struct dir_target *t,
					  size_t *n_r)
{
	const struct config *cfg = sc->srv->cfg;
	enum dir_postmaster_source src = DIR_PM_OLDEST;
	enum dir_status st;
	static const char *const names[] = { "directory", "config", "oldest_user" };

	st = dir_resolve_postmaster(sc->srv->dir, domain, cfg->postmaster, t, n_r, &src);
	/* Our own name is ours even when it is not one of the mail domains. */
	if (st == DIR_NOT_LOCAL && strcasecmp(domain, cfg->hostname) == 0)
		st = dir_resolve_postmaster(sc->srv->dir, NULL, cfg->postmaster, t, n_r, &src);
	if (st != DIR_OK)
		return st;
	if (src == DIR_PM_OLDEST && cfg->postmaster)
		log_warn("smtp", sc->rc.sid, "postmaster address not deliverable postmaster=%s, mail goes to to=%s",
			 cfg->postmaster, t[0].address);
	else
		log_info("smtp", sc->rc.sid, "postmaster resolved to=%s via=%s", t[0].address, names[src]);
	return st;
}

/* Runs on a worker thread. */
static void rcpt_work(struct rconn *rc)
{
	struct smtp_conn *sc = (struct smtp_conn *)rc;
	struct smtp_rcpt_req *req = sc->rcpt;
	struct dir_target *t = xcalloc(DIR_MAX_TARGETS, sizeof(*t));
	const char *pm = postmaster_domain(req->address);
	size_t n = 0;
	enum dir_status st;

	if (pm)
		st = resolve_postmaster(sc, pm, t, &n);
	else
		st = dir_resolve(sc->srv->dir, req->address, sc->srv->cfg->smtp.recipient_delimiter, t, &n);
	switch (st) {
	case DIR_OK:
		req->status = SMTP_RCPT_OK;
		break;
	case DIR_NO_USER:
	case DIR_BAD_ADDRESS:
		req->status = SMTP_RCPT_NO_USER;
		break;
	case DIR_DISABLED:
		req->status = SMTP_RCPT_DISABLED;
		break;
	case DIR_NOT_LOCAL:
		req->status = SMTP_RCPT_NOT_LOCAL;
		break;
	default:
		req->status = SMTP_RCPT_TEMPFAIL;
		break;
	}
	if (req->status == SMTP_RCPT_OK) {
		for (size_t i = 0; i < n; i++) {
			uint64_t used = 0;
			if (!t[i].quota)
				continue;
			if (maildir_usage(t[i].maildir, &used) < 0) {
				req->status = SMTP_RCPT_TEMPFAIL;
				break;
			}
			/* written so that no sum can wrap */
			if (used >= t[i].quota || req->size_hint > t[i].quota - used) {
				req->status = SMTP_RCPT_OVER_QUOTA;
				break;
			}
		}
	}
	if (req->status == SMTP_RCPT_OK) {
		req->targets = xcalloc(n, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			req->targets[i] = xstrdup(t[i].address);
		req->n_targets = n;
	}
	free(t);
}

static void rcpt_after(struct rconn *rc, int status)
{
	struct smtp_conn *sc = (struct smtp_conn *)rc;
	struct smtp_rcpt_req *req = sc->rcpt;

	sc->rcpt = NULL;
	if (status == -ECANCELED)
		req->status = SMTP_RCPT_TEMPFAIL;
	smtp_session_rcpt_done(rc->session, req);
}

static void io_rcpt(void *ctx, struct smtp_rcpt_req *req)
{
	struct smtp_conn *sc = ctx;

	sc->rcpt = req;
	runner_submit(&sc->rc, rcpt_work, rcpt_after, 0);
}

/* Runs on a worker thread. */
static void deliver_work(struct rconn *rc)
{
	struct smtp_conn *sc = (struct smtp_conn *)rc;
	struct smtp_delivery *dv = sc->dv;
	struct maildir_copy *copies = xcalloc(dv->n_targets, sizeof(*copies));
	char **prefixes = xcalloc(dv->n_targets, sizeof(char *));
	struct dir_target *t = xcalloc(DIR_MAX_TARGETS, sizeof(*t));
	const char *rp_end;
	size_t rp_len = 0;
	struct iovec iov;
	int r = 0;

	sc->maildirs = xcalloc(dv->n_targets, sizeof(char *));
	sc->n_maildirs = 0;
	/* Return-Path stays first; Delivered-To goes right after it. */
	if (strncmp(dv->received, "Return-Path:", 12) == 0 && (rp_end = strchr(dv->received, '\n')))
		rp_len = (size_t)(rp_end - dv->received + 1);
	for (size_t i = 0; i < dv->n_targets; i++) {
		size_t n = 0;
		/* A canonical address resolves to exactly its own mailbox. */
		enum dir_status st = dir_resolve(sc->srv->dir, dv->targets[i], "", t, &n);
		if (st != DIR_OK || n != 1) {
			log_error("smtp", NULL, "delivery target vanished to=%s status=%d", dv->targets[i], (int)st);
			r = -EIO;
			goto out;
		}
		prefixes[i] = xasprintf("%.*sDelivered-To: %s\n%s", (int)rp_len, dv->received, t[0].address,
					dv->received + rp_len);
		copies[i].maildir = xstrdup(t[0].maildir);
		sc->maildirs[sc->n_maildirs++] = xstrdup(t[0].maildir);
		copies[i].prefix = prefixes[i];
		copies[i].quota = t[0].quota;
	}
	iov.iov_base = dv->body->data;
	iov.iov_len = dv->body->len;
	r = maildir_deliver(copies, dv->n_targets, &iov, 1, sc->srv->cfg->hostname);
	if (r < 0 && r != -EDQUOT) {
		for (size_t i = 0; i < dv->n_targets; i++)
			if (copies[i].error)
				log_error("smtp", NULL, "delivery failed maildir=%s error=%s", copies[i].maildir,
					  strerror(-copies[i].error));
	}
out:
	for (size_t i = 0; i < dv->n_targets; i++) {
		free(prefixes[i]);
		free((char *)copies[i].maildir);
	}
	free(prefixes);
	free(copies);
	free(t);
	sc->result = r;
}

static void deliver_after(struct rconn *rc, int status)
{
	struct smtp_conn *sc = (struct smtp_conn *)rc;
	struct smtp_delivery *dv = sc->dv;

	sc->dv = NULL;
	/* IMAP sessions watching these INBOXes (IDLE) hear of the new mail now. */
	for (size_t i = 0; i < sc->n_maildirs; i++) {
		if (status == 0 && sc->result == 0)
			notify_publish(sc->maildirs[i]);
		free(sc->maildirs[i]);
	}
	free(sc->maildirs);
	sc->maildirs = NULL;
	sc->n_maildirs = 0;
	smtp_session_deliver_done(rc->session, dv, status ? status : sc->result);
}

static void io_deliver(void *ctx, struct smtp_delivery *dv)
{
	struct smtp_conn *sc = ctx;

	sc->dv = dv;
	sc->result = 0;
	runner_submit(&sc->rc, deliver_work, deliver_after, 0);
}

/* ---- AUTH (RFC 4954): lib/runner.h's SASL, on listeners whose auth is not none ---- */

static const char *io_auth_mechs(void *ctx)
{
	struct smtp_conn *sc = ctx;

	if (!sc->listener || sc->listener->auth == AUTH_NONE)
		return "";
	return runner_auth_mechs(&sc->rc, &sc->auth);
}

static void auth_done(struct rconn *rc, struct auth_step *st)
{
	smtp_session_auth_done(rc->session, st);
}

static void io_auth_step(void *ctx, struct auth_step *st)
{
	struct smtp_conn *sc = ctx;

	runner_auth_step(&sc->rc, &sc->auth, st);
}

static void io_auth_end(void *ctx)
{
	struct smtp_conn *sc = ctx;

	runner_auth_end(&sc->auth);
}

/* Runs on a worker thread: does the envelope sender deliver to the user
 * (the user's own address, an alias of it, plus-addressing)? */
static void sender_work(struct rconn *rc)
{
	struct smtp_conn *sc = (struct smtp_conn *)rc;
	struct smtp_sender_req *req = sc->sender;
	struct dir_target *t = xcalloc(DIR_MAX_TARGETS, sizeof(*t));
	size_t n = 0;
	enum dir_status st = dir_resolve(sc->srv->dir, req->address, sc->srv->cfg->smtp.recipient_delimiter, t, &n);

	req->status = SMTP_SENDER_NOT_OWNED;
	if (st == DIR_TEMPFAIL)
		req->status = SMTP_SENDER_TEMPFAIL;
	for (size_t i = 0; st == DIR_OK && i < n; i++)
		if (strcasecmp(t[i].address, req->user) == 0)
			req->status = SMTP_SENDER_OK;
	free(t);
}

static void sender_after(struct rconn *rc, int status)
{
	struct smtp_conn *sc = (struct smtp_conn *)rc;
	struct smtp_sender_req *req = sc->sender;

	sc->sender = NULL;
	if (status < 0)
		req->status = SMTP_SENDER_TEMPFAIL;
	smtp_session_sender_done(rc->session, req);
}

static void io_sender_check(void *ctx, struct smtp_sender_req *req)
{
	struct smtp_conn *sc = ctx;

	sc->sender = req;
	runner_submit(&sc->rc, sender_work, sender_after, 0);
}

static const struct smtp_io smtp_io = {
	.write = runner_io_write,
	.close = runner_io_close,
	.set_timeout = io_set_timeout,
	.now = io_now,
	.rcpt = io_rcpt,
	.deliver = io_deliver,
	.resume = runner_io_resume,
	.reserve = io_reserve,
	.release = io_release,
	.start_tls = runner_io_start_tls,
	.mail_allowed = io_mail_allowed,
	.auth_mechs = io_auth_mechs,
	.auth_step = io_auth_step,
	.auth_end = io_auth_end,
	.sender_check = io_sender_check,
};

/* ---- the session's side of the runner ---- */

RUNNER_SESSION_CALLS(smtp)

static void *s_open(struct rconn *rc, void *ctx, const struct runner_open *o)
{
	struct smtp_conn *sc = (struct smtp_conn *)rc;
	struct smtp_server *srv = ctx;
	struct smtp_config scfg = srv->cfg->smtp;
	struct smtp_session_params p = {
		.cfg = &scfg,
		.hostname = srv->cfg->hostname,
		.sid = o->sid,
		.client_addr = o->peer,
		.client_name = NULL,
		.tls_mode = o->tls_mode,
		.tls = o->tls,
	};

	sc->srv = srv;
	/* the listener's own settings over [smtp]'s (the session copies them) */
	if (rc->conn) {
		const char *name = conn_listener(rc->conn);

		for (size_t i = 0; i < srv->cfg->n_listeners; i++)
			if (strcmp(srv->cfg->listeners[i].name, name) == 0)
				sc->listener = &srv->cfg->listeners[i];
	}
	if (sc->listener && sc->listener->max_recipients)
		scfg.max_recipients = sc->listener->max_recipients;
	if (sc->listener) {
		p.submission = sc->listener->submission;
		p.auth_required = sc->listener->auth == AUTH_REQUIRED;
	}
	sc->auth = (struct runner_auth){
		.ctx = srv->sasl,
		.backend = &srv->backend,
		.policy = sc->listener ? sc->listener->allow_plaintext_auth : PLAINTEXT_AUTH_LOOPBACK,
		.done = auth_done,
	};
	return smtp_session_new(&p, &smtp_io, sc);
}

static void s_disconnected(struct rconn *rc)
{
	smtp_session_disconnected(rc->session);
}

static int s_free(struct rconn *rc)
{
	struct smtp_session *s = rc->session;

	io_release(rc);
	smtp_session_free(&s);
	runner_auth_end(&((struct smtp_conn *)rc)->auth);
	return 0;
}

static const struct runner_proto smtp_proto = {
	.name = "smtp",
	.conn_size = sizeof(struct smtp_conn),
	.open = s_open,
	.input = smtp_rs_input,
	.timeout = smtp_rs_timeout,
	.shutdown = smtp_rs_shutdown,
	.disconnected = s_disconnected,
	.busy = smtp_rs_busy,
	.free = s_free,
	.tls_started = smtp_rs_tls_started,
};

int smtp_server_check_postmaster(const struct config *cfg, struct dir *dir, char *msg, size_t msglen)
{
	struct dir_target *t = xcalloc(DIR_MAX_TARGETS, sizeof(*t));
	enum dir_postmaster_source src = DIR_PM_OLDEST;
	enum dir_status st;
	size_t n = 0;
	int r = 0;

	if (cfg->postmaster) {
		st = dir_resolve(dir, cfg->postmaster, "", t, &n);
		if (st == DIR_OK)
			snprintf(msg, msglen, "postmaster mail goes to %s ([server] postmaster)", t[0].address);
		else if (st == DIR_TEMPFAIL)
			r = -EIO;
		else
			r = -ENOENT;
		if (r == -ENOENT)
			snprintf(msg, msglen, "[server] postmaster %s is not a deliverable address (%s)",
				 cfg->postmaster, st == DIR_DISABLED ? "disabled" :
				 st == DIR_NOT_LOCAL ? "not a local domain" : "no such user or alias");
	} else {
		st = dir_resolve_postmaster(dir, NULL, NULL, t, &n, &src);
		if (st == DIR_OK)
			snprintf(msg, msglen, "postmaster mail goes to %s (the oldest user; "
				 "[server] postmaster chooses another)", t[0].address);
		else if (st == DIR_NO_USER)
			snprintf(msg, msglen, "no user yet: mail to the postmaster is refused until there is one");
		else
			r = -EIO;
	}
	if (r == -EIO)
		snprintf(msg, msglen, "cannot read the user directory to find the postmaster");
	free(t);
	return r;
}

struct smtp_server *smtp_server_new(const struct config *cfg, struct dir *dir, uv_loop_t *loop,
				    struct lockout *lk, struct sasl_ctx *sasl)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));
	char msg[512], busy[160], denied[160], locked[160];
	unsigned char key[16];
	struct runner_replies replies = { .busy = busy, .denied = denied, .locked = locked };

	if (smtp_server_check_postmaster(cfg, dir, msg, sizeof(msg)) < 0)
		log_error("smtp", NULL, "%s", msg);
	else
		log_info("smtp", NULL, "%s", msg);

	srv->loop = loop;
	srv->cfg = cfg;
	srv->dir = dir;
	srv->sasl = sasl;
	dir_sasl_backend(dir, &srv->backend);
	/* the busy reply names the host, as a 421 does (RFC 5321 4.2.3) */
	snprintf(busy, sizeof(busy), "421 4.7.0 %s too many connections, try again later\r\n", cfg->hostname);
	snprintf(denied, sizeof(denied), "554 5.7.1 %s access denied for your address\r\n", cfg->hostname);
	snprintf(locked, sizeof(locked), "421 4.7.0 %s too many failed logins from your address, try again later\r\n",
		 cfg->hostname);
	srv->runner = runner_new(&smtp_proto, loop, srv, &replies, lk);
	if (gnutls_rnd(GNUTLS_RND_NONCE, key, sizeof(key)) < 0)
		memset(key, 0x3c, sizeof(key));
	srv->rates = ratelimit_new(RATE_SLOTS, key);
	return srv;
}

const struct proto_handler *smtp_server_handler(const struct smtp_server *srv)
{
	return runner_handler(srv->runner);
}

void smtp_server_free(struct smtp_server **srv)
{
	if (!*srv)
		return;
	runner_free(&(*srv)->runner);
	ratelimit_free(&(*srv)->rates);
	free(*srv);
	*srv = NULL;
}
