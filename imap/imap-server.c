#include "imap/imap-server.h"

#include <ctype.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imap/imap-session.h"
#include "lib/log.h"
#include "lib/notify.h"
#include "lib/throttle.h"
#include "lib/xalloc.h"

#define THROTTLE_SLOTS 4096

struct imap_server {
	const struct config *cfg;
	uv_loop_t *loop;
	struct imap_backend backend;
	struct throttle *throttle;
	struct proto_handler handler;
	char busy[128];
};

/*
 * One per connection; outlives the connection while a command is on the
 * threadpool (or waiting for its login delay).
 */
struct imap_conn {
	/* First: the conn_io_* adapters of lib/net.h read it. */
	struct conn *conn;          /* NULL once the connection is gone */
	struct imap_server *srv;
	struct imap_session *s;
	uv_work_t work;
	uv_timer_t delay;
	int handles;                /* the delay timer is open */
	struct imap_cmd *cmd;       /* on the threadpool or waiting for the delay */
	struct notify_sub *watch;
	char ip_key[80];
};

static void delay_closed(uv_handle_t *h)
{
	struct imap_conn *ic = h->data;

	imap_session_free(&ic->s);
	free(ic);
}

static void ic_maybe_free(struct imap_conn *ic)
{
	if (ic->conn || ic->cmd)
		return;
	notify_unsubscribe(&ic->watch);
	uv_close((uv_handle_t *)&ic->delay, delay_closed);
}

static void work_cb(uv_work_t *w)
{
	struct imap_conn *ic = w->data;

	imap_cmd_run(ic->cmd);
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct imap_conn *ic = w->data;
	struct imap_cmd *cmd = ic->cmd;

	(void)status;
	ic->cmd = NULL;
	imap_session_cmd_done(ic->s, cmd);
	ic_maybe_free(ic);
}

static void queue(struct imap_conn *ic)
{
	ic->work.data = ic;
	if (uv_queue_work(ic->srv->loop, &ic->work, work_cb, after_work_cb) < 0) {
		/* Cannot happen with a valid loop; run it here rather than lose it. */
		imap_cmd_run(ic->cmd);
		after_work_cb(&ic->work, 0);
	}
}

static void delay_cb(uv_timer_t *t)
{
	struct imap_conn *ic = t->data;

	queue(ic);
}

static void io_exec(void *ctx, struct imap_cmd *cmd, unsigned delay_ms)
{
	struct imap_conn *ic = ctx;

	if (ic->cmd)
		BUG("imap: exec while a command runs");
	ic->cmd = cmd;
	if (delay_ms)
		uv_timer_start(&ic->delay, delay_cb, delay_ms, 0);
	else
		queue(ic);
}

static void watch_cb(void *ctx)
{
	struct imap_conn *ic = ctx;

	if (ic->s && ic->conn)
		imap_session_notify(ic->s);
}

static void io_watch(void *ctx, const char *key)
{
	struct imap_conn *ic = ctx;

	notify_unsubscribe(&ic->watch);
	if (key && ic->conn)
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

static void user_key(const char *user, char *out, size_t outlen)
{
	snprintf(out, outlen, "user:%s", user);
	for (char *p = out + 5; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

static unsigned io_auth_delay(void *ctx, const char *user)
{
	struct imap_conn *ic = ctx;
	uint64_t now = uv_now(ic->srv->loop);
	char uk[400];
	unsigned a, b;

	user_key(user, uk, sizeof(uk));
	a = throttle_delay(ic->srv->throttle, ic->ip_key, now);
	b = throttle_delay(ic->srv->throttle, uk, now);
	return a > b ? a : b;
}

static void io_auth_result(void *ctx, const char *user, int ok)
{
	struct imap_conn *ic = ctx;
	uint64_t now = uv_now(ic->srv->loop);
	char uk[400];

	user_key(user, uk, sizeof(uk));
	if (ok) {
		throttle_success(ic->srv->throttle, uk);
		/* from now on in the listener's share kept for users */
		if (ic->conn)
			conn_set_authenticated(ic->conn);
	} else {
		throttle_failure(ic->srv->throttle, ic->ip_key, now);
		throttle_failure(ic->srv->throttle, uk, now);
	}
}

static const struct imap_io imap_io = {
	.write = conn_io_write,
	.close = conn_io_close,
	.set_timeout = conn_io_set_timeout,
	.exec = io_exec,
	.resume = conn_io_resume,
	.when_drained = conn_io_when_drained,
	.watch = io_watch,
	.publish = io_publish,
	.auth_delay = io_auth_delay,
	.auth_result = io_auth_result,
	.start_tls = conn_io_start_tls,
};

static void *h_open(struct conn *c, void *ctx)
{
	struct imap_server *srv = ctx;
	struct imap_conn *ic = xcalloc(1, sizeof(*ic));
	struct imap_session_params p = {
		.cfg = &srv->cfg->imap,
		.backend = &srv->backend,
		.sid = conn_sid(c),
		.client_addr = conn_peer(c),
		.tls_mode = conn_tls_mode(c),
		.tls = conn_tls_info(c),
	};

	ic->srv = srv;
	ic->conn = c;
	snprintf(ic->ip_key, sizeof(ic->ip_key), "ip:%s", conn_peer(c));
	uv_timer_init(srv->loop, &ic->delay);
	ic->delay.data = ic;
	ic->s = imap_session_new(&p, &imap_io, ic);
	return ic;
}

static size_t h_input(void *session, const char *data, size_t len)
{
	struct imap_conn *ic = session;

	return imap_session_input(ic->s, data, len);
}

static void h_timeout(void *session)
{
	struct imap_conn *ic = session;

	imap_session_timeout(ic->s);
}

static void h_shutdown(void *session)
{
	struct imap_conn *ic = session;

	imap_session_shutdown(ic->s);
}

static void h_drained(void *session)
{
	struct imap_conn *ic = session;

	imap_session_drained(ic->s);
}

static void h_tls_started(void *session)
{
	struct imap_conn *ic = session;

	imap_session_tls_started(ic->s, conn_tls_info(ic->conn));
}

static int h_busy(void *session)
{
	struct imap_conn *ic = session;

	return imap_session_busy(ic->s);
}

static void h_closed(void *session)
{
	struct imap_conn *ic = session;

	ic->conn = NULL;
	notify_unsubscribe(&ic->watch);
	imap_session_disconnected(ic->s);
	if (ic->cmd && uv_is_active((uv_handle_t *)&ic->delay)) {
		/* Waiting for a login delay: nothing runs yet, drop it. */
		uv_timer_stop(&ic->delay);
		imap_session_cmd_done(ic->s, ic->cmd);
		ic->cmd = NULL;
	}
	ic_maybe_free(ic);
}

struct imap_server *imap_server_new(const struct config *cfg, struct dir *dir, uv_loop_t *loop)
{
	struct imap_server *srv = xcalloc(1, sizeof(*srv));
	const struct imap_config *ic = &cfg->imap;
	struct throttle_params tp = {
		.free_failures = ic->auth_delay_free,
		.base_ms = ic->auth_delay_base * 1000,
		.max_ms = ic->auth_delay_max * 1000,
		.decay_ms = ic->auth_delay_decay * 1000,
		.slots = THROTTLE_SLOTS,
	};
	unsigned char key[16];

	srv->cfg = cfg;
	srv->loop = loop;
	srv->backend.dir = dir;
	srv->backend.hostname = cfg->hostname;
	if (gnutls_rnd(GNUTLS_RND_NONCE, key, sizeof(key)) < 0) {
		uint64_t v = uv_hrtime() ^ (uint64_t)getpid() << 32;
		memset(key, 0x5a, sizeof(key));
		memcpy(key, &v, sizeof(v));
	}
	srv->throttle = throttle_new(&tp, key);
	snprintf(srv->busy, sizeof(srv->busy), "* BYE [UNAVAILABLE] Too many connections, try again later\r\n");
	srv->handler = (struct proto_handler){
		.name = "imap",
		.open = h_open,
		.input = h_input,
		.timeout = h_timeout,
		.shutdown = h_shutdown,
		.drained = h_drained,
		.closed = h_closed,
		.tls_started = h_tls_started,
		.busy = h_busy,
		.busy_reply = srv->busy,
	};
	return srv;
}

const struct proto_handler *imap_server_handler(const struct imap_server *srv)
{
	return &srv->handler;
}

void imap_server_free(struct imap_server **srv)
{
	if (!*srv)
		return;
	throttle_free(&(*srv)->throttle);
	free(*srv);
	*srv = NULL;
}
