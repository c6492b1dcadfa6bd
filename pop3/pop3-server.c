#include "pop3/pop3-server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/runner.h"
#include "lib/sasl.h"
#include "lib/xalloc.h"
#include "pop3/pop3-session.h"
#include "storage/mailbox.h"

#define LOCK_BUCKETS 64
#define LOCK_FILE "buzon-pop3.lock"
/* Another block of a message is read once the queued output is below this. */
#define DRAIN_LOW (64 * 1024)

/* One locked maildrop. */
struct maildrop_lock {
	struct maildrop_lock *next;
	char user[320];
};

struct pop3_server {
	struct runner *runner;      /* first: this struct is the handler's ctx (lib/runner.h) */
	const struct config *cfg;
	struct pop3_config pcfg;
	struct dir *dir;
	struct maildrop_lock *locks[LOCK_BUCKETS];
	/* AUTH: GNU SASL (NULL: AUTH is not offered) and the directory as its
	 * steps see it */
	struct sasl_ctx *sasl;
	struct sasl_backend backend;
};

/*
 * One per connection, made and freed by lib/runner.c. It outlives the
 * connection while a request is on the threadpool; at the end the maildrop
 * is closed on the threadpool (closing SQLite may checkpoint its WAL) before
 * the struct is freed.
 */
struct pop3_conn {
	struct rconn rc;            /* first: the runner's part (conn, session, sid, peer) */
	struct pop3_server *srv;
	/* the request on the threadpool or waiting for its login delay */
	struct pop3_auth_req *areq;
	struct pop3_open_req *oreq;
	struct pop3_read_req *rreq;
	struct pop3_update_req *ureq;
	int result;
	char locked[320];           /* the maildrop locked in the table, "" when none */
	/* touched only by work functions, one at a time */
	struct mbox *mbox;
	int lock_fd;
	int msg_fd;
	size_t msg_idx;
	const struct listener_config *listener; /* the listener it came in on; NULL: none known */
	struct runner_auth auth;    /* AUTH */
};

static struct pop3_conn *pconn(struct rconn *rc)
{
	return (struct pop3_conn *)rc;
}

/* ---- the maildrop lock table (loop thread only) ---- */

static unsigned lock_hash(const char *user)
{
	unsigned h = 5381;

	for (; *user; user++)
		h = h * 33 + (unsigned char)*user;
	return h % LOCK_BUCKETS;
}

/* Takes the lock of user; 0 or -EBUSY. */
static int lock_take(struct pop3_server *srv, const char *user)
{
	unsigned h = lock_hash(user);
	struct maildrop_lock *l;

	for (l = srv->locks[h]; l; l = l->next)
		if (strcmp(l->user, user) == 0)
			return -EBUSY;
	l = xcalloc(1, sizeof(*l));
	snprintf(l->user, sizeof(l->user), "%s", user);
	l->next = srv->locks[h];
	srv->locks[h] = l;
	return 0;
}

static void lock_release(struct pop3_server *srv, const char *user)
{
	struct maildrop_lock **pp;

	for (pp = &srv->locks[lock_hash(user)]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->user, user) == 0) {
			struct maildrop_lock *l = *pp;
			*pp = l->next;
			free(l);
			return;
		}
	}
	BUG("pop3 maildrop lock released twice");
}

/* Closes the message file, the maildrop and its lock file (which releases
 * the flock). On a worker thread (closing SQLite may checkpoint its WAL),
 * or on the loop only when libuv cancelled the job meant to do it. */
static void close_maildrop(struct pop3_conn *pc)
{
	if (pc->msg_fd >= 0)
		close(pc->msg_fd);
	pc->msg_fd = -1;
	mbox_close(&pc->mbox);
	if (pc->lock_fd >= 0)
		close(pc->lock_fd);
	pc->lock_fd = -1;
}

/* ---- io for the session ---- */

static void submit(struct pop3_conn *pc, runner_work_fn *work, runner_after_fn *after, unsigned delay_ms)
{
	pc->result = -EIO;
	runner_submit(&pc->rc, work, after, delay_ms);
}

/* -- login -- */

/* Runs on a worker thread. */
static void auth_work(struct rconn *rc)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_auth_req *req = pc->areq;
	int r;

	r = dir_authenticate(pc->srv->dir, req->user, req->password, req->canonical);
	pc->result = r;
}

/* A closed connection during the delay answers -ECANCELED (lib/runner.h). */
static void auth_after(struct rconn *rc, int status)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_auth_req *req = pc->areq;

	pc->areq = NULL;
	req->result = status ? status : pc->result;
	if (req->result == -EACCES)
		runner_auth_result(rc, req->user, 0);
	else if (req->result == 0)
		runner_auth_result(rc, req->user, 1);
	pop3_session_auth_done(rc->session, req);
}

static void io_auth(void *ctx, struct pop3_auth_req *req)
{
	struct pop3_conn *pc = ctx;
	unsigned d = runner_auth_delay(&pc->rc, req->user);

	pc->areq = req;
	if (d)
		log_info("pop3", pc->rc.sid, "login delayed ms=%u client=%s", d, pc->rc.peer);
	submit(pc, auth_work, auth_after, d);
}

/* -- AUTH (RFC 5034): lib/runner.h's SASL -- */

static const char *io_auth_mechs(void *ctx)
{
	struct pop3_conn *pc = ctx;

	return runner_auth_mechs(&pc->rc, &pc->auth);
}

static void sasl_done(struct rconn *rc, struct auth_step *st)
{
	pop3_session_sasl_done(rc->session, st);
}

static void io_auth_step(void *ctx, struct auth_step *st)
{
	struct pop3_conn *pc = ctx;

	runner_auth_step(&pc->rc, &pc->auth, st);
}

static void io_auth_end(void *ctx)
{
	struct pop3_conn *pc = ctx;

	runner_auth_end(&pc->auth);
}

/* -- opening the maildrop -- */

/* Runs on a worker thread. */
static void open_work(struct rconn *rc)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_open_req *req = pc->oreq;
	struct dir_target *t = xcalloc(DIR_MAX_TARGETS, sizeof(*t));
	char path[4200], err[256];
	size_t n = 0;
	enum dir_status st;
	int r;

	st = dir_resolve(pc->srv->dir, req->user, "", t, &n);
	if (st != DIR_OK || n != 1) {
		log_error("pop3", pc->rc.sid, "maildrop cannot be resolved status=%d", (int)st);
		r = st == DIR_TEMPFAIL ? -EIO : -ENOENT;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", t[0].maildir, LOCK_FILE);
	pc->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (pc->lock_fd < 0) {
		r = errno == ENOENT ? -ENOENT : -errno;
		log_error("pop3", pc->rc.sid, "cannot open the lock file error=%s", strerror(errno));
		goto out;
	}
	if (flock(pc->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out;
	}
	/* no MBOX_TAKE_RECENT: POP3 leaves \Recent to IMAP */
	r = mbox_open(t[0].maildir, "INBOX", 0, &pc->mbox, err, sizeof(err));
	if (r < 0) {
		log_error("pop3", pc->rc.sid, "maildrop open failed error=%s", err);
		goto out;
	}
	req->uidvalidity = mbox_uidvalidity(pc->mbox);
	req->n_msgs = mbox_count(pc->mbox);
	req->msgs = xcalloc(req->n_msgs ? req->n_msgs : 1, sizeof(*req->msgs));
	for (size_t i = 0; i < req->n_msgs; i++) {
		const struct mbox_msg *m = mbox_get(pc->mbox, i);
		req->msgs[i].uid = m->uid;
		req->msgs[i].size = m->vsize;
	}
out:
	if (r < 0 && pc->lock_fd >= 0) {
		close(pc->lock_fd);
		pc->lock_fd = -1;
	}
	free(t);
	pc->result = r;
}

static void open_after(struct rconn *rc, int status)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_open_req *req = pc->oreq;

	pc->oreq = NULL;
	req->result = status ? status : pc->result;
	if (req->result < 0 && pc->locked[0]) {
		lock_release(pc->srv, pc->locked);
		pc->locked[0] = '\0';
	}
	pop3_session_open_done(rc->session, req);
}

static void io_open(void *ctx, struct pop3_open_req *req)
{
	struct pop3_conn *pc = ctx;

	if (runner_busy(&pc->rc) || pc->locked[0] || pc->mbox)
		BUG("pop3 open while another request is in flight or a maildrop is open");
	if (lock_take(pc->srv, req->user) < 0) {
		req->result = -EBUSY;
		pop3_session_open_done(pc->rc.session, req);
		return;
	}
	snprintf(pc->locked, sizeof(pc->locked), "%s", req->user);
	pc->oreq = req;
	submit(pc, open_work, open_after, 0);
}

/* -- reading a message -- */

/* Runs on a worker thread. */
static void read_work(struct rconn *rc)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_read_req *req = pc->rreq;
	ssize_t n;
	int e;

	if (!pc->mbox) {
		pc->result = -EBADF;
		return;
	}
	if (pc->msg_fd >= 0 && pc->msg_idx != req->msg) {
		close(pc->msg_fd);
		pc->msg_fd = -1;
	}
	if (pc->msg_fd < 0) {
		int fd = mbox_open_msg(pc->mbox, req->msg);
		if (fd < 0) {
			pc->result = fd;
			return;
		}
		pc->msg_fd = fd;
		pc->msg_idx = req->msg;
	}
	do
		n = pread(pc->msg_fd, req->buf, req->cap, (off_t)req->offset);
	while (n < 0 && errno == EINTR);
	e = n < 0 ? errno : 0;
	if (n <= 0) {
		/* the end of the file, or an error: the next read opens it again */
		close(pc->msg_fd);
		pc->msg_fd = -1;
	}
	pc->result = -e;
	req->result = n < 0 ? -e : n;
}

static void read_after(struct rconn *rc, int status)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_read_req *req = pc->rreq;

	pc->rreq = NULL;
	if (status || pc->result < 0)
		req->result = status ? status : pc->result;
	pop3_session_read_done(rc->session, req);
}

static void io_read(void *ctx, struct pop3_read_req *req)
{
	struct pop3_conn *pc = ctx;

	pc->rreq = req;
	submit(pc, read_work, read_after, 0);
}

/* -- UPDATE -- */

/* Runs on a worker thread. */
static void update_work(struct rconn *rc)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_update_req *req = pc->ureq;

	if (pc->msg_fd >= 0) {
		close(pc->msg_fd);
		pc->msg_fd = -1;
	}
	req->done = 0;
	pc->result = pc->mbox ? mbox_expunge(pc->mbox, req->uids, req->n, &req->done) : -EBADF;
	/* the session ends here: release the maildrop before the reply */
	close_maildrop(pc);
}

static void update_after(struct rconn *rc, int status)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_update_req *req = pc->ureq;

	pc->ureq = NULL;
	req->result = status ? status : pc->result;
	if (status)
		close_maildrop(pc); /* never run: close the maildrop all the same */
	if (pc->locked[0]) {
		lock_release(pc->srv, pc->locked);
		pc->locked[0] = '\0';
	}
	pop3_session_update_done(rc->session, req);
}

static void io_update(void *ctx, struct pop3_update_req *req)
{
	struct pop3_conn *pc = ctx;

	pc->ureq = req;
	submit(pc, update_work, update_after, 0);
}

/* -- output flow control -- */

static void io_drain(void *ctx)
{
	struct pop3_conn *pc = ctx;

	if (!pc->rc.conn || conn_output_pending(pc->rc.conn) <= DRAIN_LOW) {
		pop3_session_drained(pc->rc.session);
		return;
	}
	/* s_drained() continues once the client has taken the queue. */
	runner_when_drained(&pc->rc, DRAIN_LOW);
}

static const struct pop3_io pop3_io = {
	.write = runner_io_write,
	.close = runner_io_close,
	.set_timeout = runner_io_set_timeout,
	.auth = io_auth,
	.open = io_open,
	.read = io_read,
	.update = io_update,
	.drain = io_drain,
	.resume = runner_io_resume,
	.start_tls = runner_io_start_tls,
	.auth_mechs = io_auth_mechs,
	.auth_step = io_auth_step,
	.auth_end = io_auth_end,
};

/* ---- the session's side of the runner ---- */

RUNNER_SESSION_CALLS(pop3)

static void *s_open(struct rconn *rc, void *ctx, const struct runner_open *o)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_server *srv = ctx;
	struct pop3_session_params p = {
		.cfg = &srv->pcfg,
		.hostname = srv->cfg->hostname,
		.sid = o->sid,
		.client_addr = o->peer,
		.tls_mode = o->tls_mode,
		.tls = o->tls,
	};

	pc->srv = srv;
	pc->lock_fd = -1;
	pc->msg_fd = -1;
	if (rc->conn) {
		const char *name = conn_listener(rc->conn);

		for (size_t i = 0; i < srv->cfg->n_listeners; i++)
			if (strcmp(srv->cfg->listeners[i].name, name) == 0)
				pc->listener = &srv->cfg->listeners[i];
	}
	pc->auth = (struct runner_auth){
		.ctx = srv->sasl,
		.backend = &srv->backend,
		.policy = pc->listener ? pc->listener->allow_plaintext_auth : PLAINTEXT_AUTH_LOOPBACK,
		.done = sasl_done,
	};
	p.plaintext_in_clear = runner_plaintext_in_clear(rc, pc->auth.policy);
	return pop3_session_new(&p, &pop3_io, pc);
}

static void s_drained(struct rconn *rc)
{
	pop3_session_drained(rc->session);
}

static void s_disconnected(struct rconn *rc)
{
	pop3_session_disconnected(rc->session);
}

/* Loop thread: the session and the in-process lock go now; the maildrop
 * and the flock follow on a worker (s_release) when one is open. */
static int s_free(struct rconn *rc)
{
	struct pop3_conn *pc = pconn(rc);
	struct pop3_session *s = rc->session;

	pop3_session_free(&s);
	runner_auth_end(&pc->auth);
	if (pc->locked[0]) {
		lock_release(pc->srv, pc->locked);
		pc->locked[0] = '\0';
	}
	return pc->mbox || pc->msg_fd >= 0 || pc->lock_fd >= 0;
}

/* Runs on a worker thread (on the loop if libuv cancelled it). */
static void s_release(struct rconn *rc)
{
	close_maildrop(pconn(rc));
}

static const struct runner_proto pop3_proto = {
	.name = "pop3",
	.busy_reply = "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
	.denied_reply = "-ERR [SYS/PERM] Access denied for your address\r\n",
	.locked_reply = "-ERR [SYS/TEMP] Too many failed logins from your address, try again later\r\n",
	.conn_size = sizeof(struct pop3_conn),
	.open = s_open,
	.input = pop3_rs_input,
	.timeout = pop3_rs_timeout,
	.shutdown = pop3_rs_shutdown,
	.drained = s_drained,
	.disconnected = s_disconnected,
	.busy = pop3_rs_busy,
	.free = s_free,
	.release = s_release,
	.tls_started = pop3_rs_tls_started,
};

struct pop3_server *pop3_server_new(const struct config *cfg, struct dir *dir, uv_loop_t *loop,
				    struct lockout *lk, struct sasl_ctx *sasl)
{
	struct pop3_server *srv = xcalloc(1, sizeof(*srv));

	srv->cfg = cfg;
	srv->dir = dir;
	srv->sasl = sasl;
	dir_sasl_backend(dir, &srv->backend);
	srv->pcfg = cfg->pop3;
	srv->runner = runner_new(&pop3_proto, loop, srv, NULL, lk);
	return srv;
}

const struct proto_handler *pop3_server_handler(const struct pop3_server *srv)
{
	return runner_handler(srv->runner);
}

void pop3_server_free(struct pop3_server **srvp)
{
	struct pop3_server *srv = *srvp;

	if (!srv)
		return;
	for (size_t i = 0; i < LOCK_BUCKETS; i++) {
		struct maildrop_lock *l, *next;
		for (l = srv->locks[i]; l; l = next) {
			next = l->next;
			free(l);
		}
	}
	runner_free(&srv->runner);
	free(srv);
	*srvp = NULL;
}
