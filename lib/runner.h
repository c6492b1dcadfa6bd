#ifndef BUZON_RUNNER_H
#define BUZON_RUNNER_H

#include <stddef.h>
#include <uv.h>

#include "lib/auth-types.h"
#include "lib/config.h"
#include "lib/lockout.h"
#include "lib/net.h"
#include "lib/sasl.h"
#include "lib/tls-types.h"

/*
 * The session runner: what the SMTP, POP3 and IMAP glue share between a
 * connection (lib/net.h), a protocol's session state machine and the libuv
 * threadpool.
 *
 * A protocol describes itself once with a static const struct runner_proto;
 * runner_new() makes the struct proto_handler to give to net_listen(). For
 * every accepted connection the runner allocates the protocol's
 * per-connection struct (proto->conn_size bytes, zeroed), which begins with
 * a struct rconn, and calls proto->open to create the session. That struct
 * is the ctx of the session's io calls: the runner_io_* adapters below take
 * it and do nothing once the connection is gone.
 *
 * Requests: runner_submit() runs one job at a time per connection: work on
 * a worker thread, then after on the loop thread. A session may outlive its
 * connection while a job is in flight; its memory is freed once
 *   - the connection is gone (proto_handler.closed), and
 *   - no job is in flight or waiting for its delay, and
 *   - proto->busy() says 0,
 * by proto->free on the loop thread, then proto->release on a worker when
 * proto->free asked for it, then the struct itself.
 *
 * Everything here runs on the loop thread except work and release.
 */

struct runner;
struct rconn;

/* Runs on a worker thread; touches only what the job owns. */
typedef void runner_work_fn(struct rconn *rc);
/* Runs on the loop thread once the job is over. status: 0 after work ran,
 * -ECANCELED when it never ran (libuv cancelled it, or the connection closed
 * while the job waited for its delay). */
typedef void runner_after_fn(struct rconn *rc, int status);

enum rconn_flags {
	RCONN_JOB = 1 << 0,       /* a job is queued, running or waiting for its delay */
	RCONN_DELAYING = 1 << 1,  /* the job waits for the delay timer */
	RCONN_TIMER = 1 << 2,     /* the delay timer is initialised (closed before the free) */
	RCONN_DRAIN = 1 << 3,     /* runner_when_drained() armed, proto->drained not yet called */
	RCONN_FREEING = 1 << 4,   /* proto->free ran; the struct goes soon */
	RCONN_AUTH = 1 << 5,      /* a login attempt is counted in flight (runner_auth_delay) */
};

/*
 * The runner's part of a per-connection struct: its FIRST member. The glue
 * reads conn, session, sid and peer; the rest is the runner's.
 */
struct rconn {
	/* First, as lib/net.h's conn_io_* adapters expect. NULL once the
	 * connection is gone; the session may live on while a job runs. */
	struct conn *conn;
	struct runner *runner;
	void *session;            /* what proto->open returned */
	char sid[16];             /* copies, valid after the connection: worker log lines */
	char peer[64];
	unsigned flags;           /* enum rconn_flags */
	runner_work_fn *work_fn;
	runner_after_fn *after_fn;
	uv_work_t work;
	uv_timer_t delay;         /* the failed-login delay before a job */
	struct runner_auth *auth; /* the SASL exchange a step job works on */
};

/* What a new connection brings to its session's params. */
struct runner_open {
	const char *sid;
	const char *peer;
	enum tls_mode tls_mode;       /* conn_tls_mode() */
	const struct tls_info *tls;   /* conn_tls_info(): non-NULL on implicit TLS */
};

/*
 * A protocol's table. rc is the per-connection struct (cast it to the
 * protocol's own type: struct rconn is its first member).
 */
struct runner_proto {
	const char *name;             /* "smtp", in logs and the net's handler */
	const char *busy_reply;       /* sent to connections over the caps */
	const char *denied_reply;     /* sent to clients refused by address rules */
	const char *locked_reply;     /* sent to locked-out clients (at connect, or at a login) */
	size_t conn_size;             /* sizeof the per-connection struct */
	/* Creates the session (it may write its greeting through the io);
	 * returns it or NULL to drop the connection. ctx: runner_new()'s. */
	void *(*open)(struct rconn *rc, void *ctx, const struct runner_open *o);
	size_t (*input)(struct rconn *rc, const char *data, size_t len);
	void (*timeout)(struct rconn *rc);
	void (*shutdown)(struct rconn *rc);
	/* Optional: the drain asked for with runner_when_drained() happened;
	 * also called (once) after disconnected when the connection closed
	 * before, so that a session waiting for it is never stuck. */
	void (*drained)(struct rconn *rc);
	/* The connection is gone; rc->conn is already NULL. */
	void (*disconnected)(struct rconn *rc);
	/* 1 while the session waits for something (a request, a drain). */
	int (*busy)(struct rconn *rc);
	/* Frees the session and what the glue holds on the loop thread;
	 * returns 1 when release must still run (on a worker) before the
	 * struct is freed, 0 otherwise. */
	int (*free)(struct rconn *rc);
	/* Optional: closes on a worker what must not be closed on the loop
	 * thread (files, SQLite); run on the loop if libuv cancels it. */
	void (*release)(struct rconn *rc);
	/* The STARTTLS/STLS handshake is done; info from conn_tls_info(). */
	void (*tls_started)(struct rconn *rc, const struct tls_info *info);
};

/* Calls that every protocol's table makes the same way: defines static
 * <p>_rs_input, _timeout, _shutdown, _busy and _tls_started, which call
 * <p>_session_*() on rc->session. */
#define RUNNER_SESSION_CALLS(p) \
	static size_t p##_rs_input(struct rconn *rc, const char *data, size_t len) \
	{ return p##_session_input(rc->session, data, len); } \
	static void p##_rs_timeout(struct rconn *rc) { p##_session_timeout(rc->session); } \
	static void p##_rs_shutdown(struct rconn *rc) { p##_session_shutdown(rc->session); } \
	static int p##_rs_busy(struct rconn *rc) { return p##_session_busy(rc->session); } \
	static void p##_rs_tls_started(struct rconn *rc, const struct tls_info *info) \
	{ p##_session_tls_started(rc->session, info); }

/* Replies that replace the proto's (copied; SMTP's name the host). */
struct runner_replies {
	const char *busy, *denied, *locked;
};

/*
 * Creates a protocol's runner. ctx (the protocol's server, see
 * runner_handler()) is given to proto->open. replies, when not NULL,
 * replace the proto's where set. lk, when not NULL, is the failed-login
 * table shared by every protocol (server/main.c owns it; it must outlive
 * the runner). proto and loop must outlive it.
 */
struct runner *runner_new(const struct runner_proto *proto, uv_loop_t *loop, void *ctx,
			  const struct runner_replies *replies, struct lockout *lk);
/* Frees the runner once every connection is closed and uv_run() returned. */
void runner_free(struct runner **r);
/* The handler to pass to net_listen() / net_set_handler(). Its ctx there
 * is runner_new()'s ctx, the protocol's server, whose FIRST member must be
 * the struct runner * that runner_new() returned. */
const struct proto_handler *runner_handler(const struct runner *r);
uv_loop_t *runner_loop(const struct runner *r);

/*
 * Starts a job: after delay_ms (0: at once) work(rc) runs on a worker, then
 * after(rc, status) on the loop. One job at a time per connection (a second
 * one is a bug). If the connection closes during the delay, after() is
 * called with -ECANCELED from inside proto_handler.closed, after
 * proto->disconnected, and work never runs.
 */
void runner_submit(struct rconn *rc, runner_work_fn *work, runner_after_fn *after, unsigned delay_ms);
/* 1 while a job is in flight or waiting for its delay. */
int runner_busy(const struct rconn *rc);

/* Arms proto->drained for when at most below bytes are queued. */
void runner_when_drained(struct rconn *rc, size_t below);

/*
 * Failed-login throttling through the shared table (runner_new()'s lk,
 * lib/lockout.h). auth_delay: the ms a login for user must wait before it
 * is checked; from then the attempt counts as in flight for its address
 * until auth_result, the connection's end, or the next auth_delay. Call it
 * right before the runner_submit() of the check: should the address be
 * locked out when the delay ends (other sessions failed meanwhile), the
 * check never runs; the client gets the proto's locked_reply and the
 * connection closes (the job is answered -ECANCELED once it is gone).
 * auth_result: ok = 1 forgets the user's failures (never the address's)
 * and calls conn_set_authenticated(); ok = 0 counts a failure for both,
 * and logs the start of a lockout.
 */
unsigned runner_auth_delay(struct rconn *rc, const char *user);
void runner_auth_result(struct rconn *rc, const char *user, int ok);

/*
 * Session io adapters: ctx is the per-connection struct. After the
 * connection is gone they do nothing. set_timeout takes seconds;
 * when_drained is runner_when_drained(); start_tls is conn_start_tls().
 */
void runner_io_write(void *ctx, const char *data, size_t len);
void runner_io_close(void *ctx, const char *reason);
void runner_io_set_timeout(void *ctx, unsigned seconds);
void runner_io_resume(void *ctx);
void runner_io_when_drained(void *ctx, size_t below);
void runner_io_start_tls(void *ctx);

/*
 * SASL (SMTP AUTH, POP3 AUTH, IMAP AUTHENTICATE) the same way for every
 * protocol: the session frames the exchange and asks for one decoded step
 * at a time (lib/auth-types.h); the glue keeps a struct runner_auth in its
 * per-connection struct, filled at open, and passes its io calls here. Each
 * step runs as a job on a worker (GNU SASL reads the directory and may hash
 * a password) after the client address's failed-login delay for the first
 * one, counts in the shared lockout, and is answered with done(rc, st), the
 * protocol's x_session_auth_done(). On AUTH_FAILED, AUTH_MALFORMED and
 * AUTH_TEMPFAIL st->user holds the name the client gave, for the log.
 */
struct runner_auth {
	struct sasl_ctx *ctx;                 /* NULL: no SASL offered */
	const struct sasl_backend *backend;
	enum plaintext_auth policy;           /* the listener's allow_plaintext_auth */
	void (*done)(struct rconn *rc, struct auth_step *st);
	/* the exchange: loop thread between steps, the worker during one */
	struct sasl_exchange *sx;
	struct auth_step *step;
	enum sasl_step_result result;
	char mechs[SASL_MECHS_MAX];
};

/* 1 when the password may travel as it is (PLAIN, LOGIN, POP3 USER/PASS,
 * IMAP LOGIN): under TLS, or where policy allows it for the client address
 * (loopback: 127.0.0.0/8 and ::1). */
int runner_plaintext_ok(const struct rconn *rc, enum plaintext_auth policy);
/* The same without TLS: what policy allows for the client address. */
int runner_plaintext_in_clear(const struct rconn *rc, enum plaintext_auth policy);
/* The mechanisms to offer now, space-separated ("" without a context or a
 * connection); valid until the next call. */
const char *runner_auth_mechs(struct rconn *rc, struct runner_auth *a);
/* Runs step st of the exchange (st->first starts a new one) and answers
 * with a->done, later or from inside this call. */
void runner_auth_step(struct rconn *rc, struct runner_auth *a, struct auth_step *st);
/* The exchange is over (or the connection): frees it. Idempotent. */
void runner_auth_end(struct runner_auth *a);

#endif
