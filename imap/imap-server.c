#include "imap/imap-server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap-session.h"
#include "lib/notify.h"
#include "lib/runner.h"
#include "lib/sasl.h"
#include "lib/xalloc.h"

struct imap_server {
	struct runner *runner;      /* first: this struct is the handler's ctx (lib/runner.h) */
	struct imap_backend backend;
	const struct config *cfg;
	/* AUTHENTICATE: GNU SASL (NULL: no mechanism offered) and the
	 * directory as its steps see it */
	struct sasl_ctx *sasl;
	struct sasl_backend sasl_backend;
};

/*
 * One per connection, made and freed by lib/runner.c; outlives the
 * connection while a command is on the threadpool (or waiting for its
 * login delay).
 */
struct imap_conn {
	struct rconn rc;            /* first: the runner's part (conn, session, sid, peer) */
	struct imap_cmd *cmd;       /* on the threadpool or waiting for the delay */
	struct notify_sub *watch;
	struct imap_server *srv;
	const struct listener_config *listener; /* the listener it came in on; NULL: none known */
	struct runner_auth auth;    /* AUTHENTICATE */
};

/* Runs on a worker thread. */
static void cmd_work(struct rconn *rc)
{
	imap_cmd_run(((struct imap_conn *)rc)->cmd);
}

/* status is not looked at: a command cancelled before it ran (the
 * connection closed during its login delay) finds its session closed. */
static void cmd_after(struct rconn *rc, int status)
{
	struct imap_conn *ic = (struct imap_conn *)rc;
	struct imap_cmd *cmd = ic->cmd;

	(void)status;
	ic->cmd = NULL;
	imap_session_cmd_done(rc->session, cmd);
}

static void io_exec(void *ctx, struct imap_cmd *cmd, unsigned delay_ms)
{
	struct imap_conn *ic = ctx;

	ic->cmd = cmd;
	runner_submit(&ic->rc, cmd_work, cmd_after, delay_ms);
}

static void watch_cb(void *ctx)
{
	struct imap_conn *ic = ctx;

	if (ic->rc.session && ic->rc.conn)
		imap_session_notify(ic->rc.session);
}

static void io_watch(void *ctx, const char *key)
{
	struct imap_conn *ic = ctx;

	notify_unsubscribe(&ic->watch);
	if (key && ic->rc.conn)
		ic->watch = notify_subscribe(key, watch_cb, ic);
}

static void io_publish(void *ctx, const char *key)
{
	struct imap_conn *ic = ctx;
	struct notify_sub *mine = ic->watch;

	/* Others hear of it; this session already knows. */
	ic->watch = NULL;
	notify_publish(key);
	ic->watch = mine;
}

static unsigned io_auth_delay(void *ctx, const char *user)
{
	return runner_auth_delay(ctx, user);
}

static void io_auth_result(void *ctx, const char *user, int ok)
{
	runner_auth_result(ctx, user, ok);
}

/* ---- AUTHENTICATE: lib/runner.h's SASL ---- */

static int io_plaintext_ok(void *ctx)
{
	struct imap_conn *ic = ctx;

	return runner_plaintext_ok(&ic->rc, ic->auth.policy);
}

static const char *io_auth_mechs(void *ctx)
{
	struct imap_conn *ic = ctx;

	return runner_auth_mechs(&ic->rc, &ic->auth);
}

static void auth_done(struct rconn *rc, struct auth_step *st)
{
	imap_session_auth_done(rc->session, st);
}

static void io_auth_step(void *ctx, struct auth_step *st)
{
	struct imap_conn *ic = ctx;

	runner_auth_step(&ic->rc, &ic->auth, st);
}

static void io_auth_end(void *ctx)
{
	struct imap_conn *ic = ctx;

	runner_auth_end(&ic->auth);
}

static const struct imap_io imap_io = {
	.write = runner_io_write,
	.close = runner_io_close,
	.set_timeout = runner_io_set_timeout,
	.exec = io_exec,
	.resume = runner_io_resume,
	.when_drained = runner_io_when_drained,
	.watch = io_watch,
	.publish = io_publish,
	.auth_delay = io_auth_delay,
	.auth_result = io_auth_result,
	.start_tls = runner_io_start_tls,
	.auth_mechs = io_auth_mechs,
	.plaintext_ok = io_plaintext_ok,
	.auth_step = io_auth_step,
	.auth_end = io_auth_end,
};

/* ---- the session's side of the runner ---- */

RUNNER_SESSION_CALLS(imap)

static void *s_open(struct rconn *rc, void *ctx, const struct runner_open *o)
{
	struct imap_server *srv = ctx;
	struct imap_conn *ic = (struct imap_conn *)rc;
	struct imap_session_params p = {
		.cfg = &srv->cfg->imap,
		.backend = &srv->backend,
		.sid = o->sid,
		.client_addr = o->peer,
		.tls_mode = o->tls_mode,
		.tls = o->tls,
	};

	ic->srv = srv;
	if (rc->conn) {
		const char *name = conn_listener(rc->conn);

		for (size_t i = 0; i < srv->cfg->n_listeners; i++)
			if (strcmp(srv->cfg->listeners[i].name, name) == 0)
				ic->listener = &srv->cfg->listeners[i];
	}
	ic->auth = (struct runner_auth){
		.ctx = srv->sasl,
		.backend = &srv->sasl_backend,
		.policy = ic->listener ? ic->listener->allow_plaintext_auth : PLAINTEXT_AUTH_LOOPBACK,
		.done = auth_done,
	};
	return imap_session_new(&p, &imap_io, rc);
}

static void s_drained(struct rconn *rc)
{
	imap_session_drained(rc->session);
}

static void s_disconnected(struct rconn *rc)
{
	struct imap_conn *ic = (struct imap_conn *)rc;

	notify_unsubscribe(&ic->watch);
	imap_session_disconnected(rc->session);
}

static int s_free(struct rconn *rc)
{
	struct imap_conn *ic = (struct imap_conn *)rc;
	struct imap_session *s = rc->session;

	notify_unsubscribe(&ic->watch);
	imap_session_free(&s);
	runner_auth_end(&ic->auth);
	return 0;
}

static const struct runner_proto imap_proto = {
	.name = "imap",
	.busy_reply = "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
	.denied_reply = "* BYE Access denied for your address\r\n",
	.locked_reply = "* BYE [UNAVAILABLE] Too many failed logins from your address, try again later\r\n",
	.conn_size = sizeof(struct imap_conn),
	.open = s_open,
	.input = imap_rs_input,
	.timeout = imap_rs_timeout,
	.shutdown = imap_rs_shutdown,
	.drained = s_drained,
	.disconnected = s_disconnected,
	.busy = imap_rs_busy,
	.free = s_free,
	.tls_started = imap_rs_tls_started,
};

struct imap_server *imap_server_new(const struct config *cfg, struct dir *dir, uv_loop_t *loop,
				    struct lockout *lk, struct sasl_ctx *sasl)
{
	struct imap_server *srv = xcalloc(1, sizeof(*srv));

	srv->cfg = cfg;
	srv->sasl = sasl;
	dir_sasl_backend(dir, &srv->sasl_backend);
	srv->backend.dir = dir;
	srv->backend.hostname = cfg->hostname;
	srv->runner = runner_new(&imap_proto, loop, srv, NULL, lk);
	return srv;
}

const struct proto_handler *imap_server_handler(const struct imap_server *srv)
{
	return runner_handler(srv->runner);
}

void imap_server_free(struct imap_server **srv)
{
	if (!*srv)
		return;
	runner_free(&(*srv)->runner);
	free(*srv);
	*srv = NULL;
}
