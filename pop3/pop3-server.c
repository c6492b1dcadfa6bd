#include "pop3/pop3-server.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/throttle.h"
#include "lib/xalloc.h"
#include "pop3/pop3-session.h"
#include "storage/mailbox.h"

#define LOCK_BUCKETS 64
#define LOCK_FILE "buzon-pop3.lock"
/* Another block of a message is read once the queued output is below this. */
#define DRAIN_LOW (64 * 1024)
#define THROTTLE_SLOTS 4096

/* One locked maildrop. */
struct maildrop_lock {
	struct maildrop_lock *next;
	char user[320];
};

struct pop3_server {
	const struct config *cfg;
	struct pop3_config pcfg;
	struct dir *dir;
	uv_loop_t *loop;
	struct proto_handler handler;
	struct throttle *throttle;
	struct maildrop_lock *locks[LOCK_BUCKETS];
	char busy[128];
};

enum req { R_NONE, R_AUTH, R_OPEN, R_READ, R_UPDATE, R_CLEANUP };

/*
 * One per connection. It outlives the connection while a request is on the
 * threadpool or a handle is closing: the session and this struct are freed
 * once the connection is gone, no request is in flight and the maildrop is
 * closed (on the threadpool: closing SQLite may checkpoint its WAL).
 */
struct pop3_conn {
	/* First: the conn_io_* adapters of lib/net.h read it. */
	struct conn *conn;          /* NULL once the connection is gone */
	struct pop3_server *srv;
	struct pop3_session *s;
	char sid[16];
	char peer[64];
	uv_work_t work;
	uv_timer_t delay;           /* the failed-login delay before a check */
	int handles;                /* libuv handles not yet closed */
	enum req req;               /* the request on the threadpool or the delay timer */
	int delaying;               /* the delay timer runs for req == R_AUTH */
	int draining;               /* waiting for the connection's drained callback */
	int freeing;
	struct pop3_auth_req *areq;
	struct pop3_open_req *oreq;
	struct pop3_read_req *rreq;
	struct pop3_update_req *ureq;
	char ip_key[80];
	char user_key[340];
	int result;
	char locked[320];           /* the maildrop locked in the table, "" when none */
	/* touched only by work functions, one at a time */
	struct mbox *mbox;
	int lock_fd;
	int msg_fd;
	size_t msg_idx;
};

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

/* ---- freeing ---- */

static void handle_closed(uv_handle_t *h)
{
	struct pop3_conn *pc = h->data;

	if (--pc->handles == 0)
		free(pc);
}

static void close_handles(struct pop3_conn *pc)
{
	uv_close((uv_handle_t *)&pc->delay, handle_closed);
}

/* Runs on a worker thread. */
static void cleanup_work(uv_work_t *w)
{
	struct pop3_conn *pc = w->data;

	if (pc->msg_fd >= 0)
		close(pc->msg_fd);
	pc->msg_fd = -1;
	mbox_close(&pc->mbox);
	if (pc->lock_fd >= 0)
		close(pc->lock_fd); /* releases the flock */
	pc->lock_fd = -1;
}

static void cleanup_after(uv_work_t *w, int status)
{
	struct pop3_conn *pc = w->data;

	if (status == UV_ECANCELED)
		cleanup_work(w);
	pc->req = R_NONE;
	close_handles(pc);
}

static void pc_maybe_free(struct pop3_conn *pc)
{
	if (pc->conn || pc->freeing || pc->req != R_NONE || pop3_session_busy(pc->s))
		return;
	pc->freeing = 1;
	pop3_session_free(&pc->s);
	/* the in-process lock goes now: the flock follows with the file */
	if (pc->locked[0]) {
		lock_release(pc->srv, pc->locked);
		pc->locked[0] = '\0';
	}
	if (pc->mbox || pc->msg_fd >= 0 || pc->lock_fd >= 0) {
		pc->req = R_CLEANUP;
		pc->work.data = pc;
		if (uv_queue_work(pc->srv->loop, &pc->work, cleanup_work, cleanup_after) == 0)
			return;
		cleanup_work(&pc->work);
		pc->req = R_NONE;
	}
	close_handles(pc);
}

/* ---- io for the session ---- */

static void queue(struct pop3_conn *pc, enum req req, uv_work_cb work, uv_after_work_cb after)
{
	pc->req = req;
	pc->result = -EIO;
	pc->work.data = pc;
	if (uv_queue_work(pc->srv->loop, &pc->work, work, after) < 0)
		after(&pc->work, UV_ECANCELED);
}

/* -- login -- */

/* Runs on a worker thread. */
static void auth_work(uv_work_t *w)
{
	struct pop3_conn *pc = w->data;
	struct pop3_auth_req *req = pc->areq;
	int r;

	r = dir_authenticate(pc->srv->dir, req->user, req->password, req->canonical);
	/* acting as another user (RFC 4616 authzid) is not offered */
	if (r == 0 && req->authzid[0] && strcasecmp(req->authzid, req->user) != 0 &&
	    strcasecmp(req->authzid, req->canonical) != 0)
		r = -EPERM;
	pc->result = r;
}

static void auth_after(uv_work_t *w, int status)
{
	struct pop3_conn *pc = w->data;
	struct pop3_auth_req *req = pc->areq;
	struct pop3_server *srv = pc->srv;
	uint64_t now = uv_now(srv->loop);

	pc->req = R_NONE;
	pc->areq = NULL;
	req->result = status == UV_ECANCELED ? -ECANCELED : pc->result;
	if (req->result == -EACCES) {
		unsigned fi = throttle_failure(srv->throttle, pc->ip_key, now);
		unsigned fu = throttle_failure(srv->throttle, pc->user_key, now);
		log_debug("pop3", pc->sid, "login failure counted client_failures=%u user_failures=%u", fi, fu);
	} else if (req->result == 0) {
		/* the user's counter only: a valid account must not clear its address */
		throttle_success(srv->throttle, pc->user_key);
		/* from now on in the listener's share kept for users */
		if (pc->conn)
			conn_set_authenticated(pc->conn);
	}
	pop3_session_auth_done(pc->s, req);
	pc_maybe_free(pc);
}

static void delay_done(uv_timer_t *t)
{
	struct pop3_conn *pc = t->data;

	pc->delaying = 0;
	queue(pc, R_AUTH, auth_work, auth_after);
}

static void io_auth(void *ctx, struct pop3_auth_req *req)
{
	struct pop3_conn *pc = ctx;
	struct pop3_server *srv = pc->srv;
	uint64_t now = uv_now(srv->loop);
	unsigned d_ip, d_user, d;
	size_t i;

	if (pc->req != R_NONE)
		BUG("pop3 request while another is in flight");
	pc->areq = req;
	snprintf(pc->ip_key, sizeof(pc->ip_key), "ip:%s", pc->peer);
	/* the name as typed, lower-cased: the same key whether it exists or not */
	snprintf(pc->user_key, sizeof(pc->user_key), "user:%s", req->user);
	for (i = 5; pc->user_key[i]; i++)
		pc->user_key[i] = (char)tolower((unsigned char)pc->user_key[i]);
	d_ip = throttle_delay(srv->throttle, pc->ip_key, now);
	d_user = throttle_delay(srv->throttle, pc->user_key, now);
	d = d_ip > d_user ? d_ip : d_user;
	if (d) {
		log_info("pop3", pc->sid, "login delayed ms=%u client=%s", d, pc->peer);
		pc->req = R_AUTH;
		pc->delaying = 1;
		uv_timer_start(&pc->delay, delay_done, d, 0);
		return;
	}
	queue(pc, R_AUTH, auth_work, auth_after);
}

/* -- opening the maildrop -- */

/* Runs on a worker thread. */
static void open_work(uv_work_t *w)
{
	struct pop3_conn *pc = w->data;
	struct pop3_open_req *req = pc->oreq;
	struct dir_target *t = xcalloc(DIR_MAX_TARGETS, sizeof(*t));
	char path[4200], err[256];
	size_t n = 0;
	enum dir_status st;
	int r;

	st = dir_resolve(pc->srv->dir, req->user, "", t, &n);
	if (st != DIR_OK || n != 1) {
		log_error("pop3", pc->sid, "maildrop cannot be resolved status=%d", (int)st);
		r = st == DIR_TEMPFAIL ? -EIO : -ENOENT;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", t[0].maildir, LOCK_FILE);
	pc->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (pc->lock_fd < 0) {
		r = errno == ENOENT ? -ENOENT : -errno;
		log_error("pop3", pc->sid, "cannot open the lock file error=%s", strerror(errno));
		goto out;
	}
	if (flock(pc->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out;
	}
	/* no MBOX_TAKE_RECENT: POP3 leaves \Recent to IMAP */
	r = mbox_open(t[0].maildir, "INBOX", 0, &pc->mbox, err, sizeof(err));
	if (r < 0) {
		log_error("pop3", pc->sid, "maildrop open failed error=%s", err);
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

static void open_after(uv_work_t *w, int status)
{
	struct pop3_conn *pc = w->data;
	struct pop3_open_req *req = pc->oreq;

	pc->req = R_NONE;
	pc->oreq = NULL;
	req->result = status == UV_ECANCELED ? -ECANCELED : pc->result;
	if (req->result < 0 && pc->locked[0]) {
		lock_release(pc->srv, pc->locked);
		pc->locked[0] = '\0';
	}
	pop3_session_open_done(pc->s, req);
	pc_maybe_free(pc);
}

static void io_open(void *ctx, struct pop3_open_req *req)
{
	struct pop3_conn *pc = ctx;

	if (pc->req != R_NONE || pc->locked[0] || pc->mbox)
		BUG("pop3 open while another request is in flight or a maildrop is open");
	if (lock_take(pc->srv, req->user) < 0) {
		req->result = -EBUSY;
		pop3_session_open_done(pc->s, req);
		return;
	}
	snprintf(pc->locked, sizeof(pc->locked), "%s", req->user);
	pc->oreq = req;
	queue(pc, R_OPEN, open_work, open_after);
}

/* -- reading a message -- */

/* Runs on a worker thread. */
static void read_work(uv_work_t *w)
{
	struct pop3_conn *pc = w->data;
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

static void read_after(uv_work_t *w, int status)
{
	struct pop3_conn *pc = w->data;
	struct pop3_read_req *req = pc->rreq;

	pc->req = R_NONE;
	pc->rreq = NULL;
	if (status == UV_ECANCELED || pc->result < 0)
		req->result = status == UV_ECANCELED ? -ECANCELED : pc->result;
	pop3_session_read_done(pc->s, req);
	pc_maybe_free(pc);
}

static void io_read(void *ctx, struct pop3_read_req *req)
{
	struct pop3_conn *pc = ctx;

	if (pc->req != R_NONE)
		BUG("pop3 request while another is in flight");
	pc->rreq = req;
	queue(pc, R_READ, read_work, read_after);
}

/* -- UPDATE -- */

/* Runs on a worker thread. */
static void update_work(uv_work_t *w)
{
	struct pop3_conn *pc = w->data;
	struct pop3_update_req *req = pc->ureq;

	if (pc->msg_fd >= 0) {
		close(pc->msg_fd);
		pc->msg_fd = -1;
	}
	req->done = 0;
	pc->result = pc->mbox ? mbox_expunge(pc->mbox, req->uids, req->n, &req->done) : -EBADF;
	/* the session ends here: release the maildrop before the reply */
	mbox_close(&pc->mbox);
	if (pc->lock_fd >= 0)
		close(pc->lock_fd);
	pc->lock_fd = -1;
}

static void update_after(uv_work_t *w, int status)
{
	struct pop3_conn *pc = w->data;
	struct pop3_update_req *req = pc->ureq;

	pc->req = R_NONE;
	pc->ureq = NULL;
	req->result = status == UV_ECANCELED ? -ECANCELED : pc->result;
	if (status == UV_ECANCELED)
		update_work(w); /* never run: close the maildrop all the same */
	if (pc->locked[0]) {
		lock_release(pc->srv, pc->locked);
		pc->locked[0] = '\0';
	}
	pop3_session_update_done(pc->s, req);
	pc_maybe_free(pc);
}

static void io_update(void *ctx, struct pop3_update_req *req)
{
	struct pop3_conn *pc = ctx;

	if (pc->req != R_NONE)
		BUG("pop3 request while another is in flight");
	pc->ureq = req;
	queue(pc, R_UPDATE, update_work, update_after);
}

/* -- output flow control -- */

static void io_drain(void *ctx)
{
	struct pop3_conn *pc = ctx;

	if (!pc->conn || conn_output_pending(pc->conn) <= DRAIN_LOW) {
		pop3_session_drained(pc->s);
		return;
	}
	/* h_drained() continues once the client has taken the queue. */
	pc->draining = 1;
	conn_when_drained(pc->conn, DRAIN_LOW);
}

static void h_drained(void *session)
{
	struct pop3_conn *pc = session;

	if (!pc->draining)
		return;
	pc->draining = 0;
	pop3_session_drained(pc->s);
}

static const struct pop3_io pop3_io = {
	.write = conn_io_write,
	.close = conn_io_close,
	.set_timeout = conn_io_set_timeout,
	.auth = io_auth,
	.open = io_open,
	.read = io_read,
	.update = io_update,
	.drain = io_drain,
	.resume = conn_io_resume,
	.start_tls = conn_io_start_tls,
};

/* ---- proto handler ---- */

static void *h_open(struct conn *c, void *ctx)
{
	struct pop3_server *srv = ctx;
	struct pop3_conn *pc = xcalloc(1, sizeof(*pc));
	struct pop3_session_params p = {
		.cfg = &srv->pcfg,
		.hostname = srv->cfg->hostname,
		.sid = conn_sid(c),
		.client_addr = conn_peer(c),
		.tls_mode = conn_tls_mode(c),
		.tls = conn_tls_info(c),
	};

	pc->srv = srv;
	pc->conn = c;
	pc->lock_fd = -1;
	pc->msg_fd = -1;
	snprintf(pc->sid, sizeof(pc->sid), "%s", conn_sid(c));
	snprintf(pc->peer, sizeof(pc->peer), "%s", conn_peer(c));
	uv_timer_init(srv->loop, &pc->delay);
	pc->delay.data = pc;
	pc->handles = 1;
	pc->s = pop3_session_new(&p, &pop3_io, pc);
	return pc;
}

static size_t h_input(void *session, const char *data, size_t len)
{
	struct pop3_conn *pc = session;

	return pop3_session_input(pc->s, data, len);
}

static void h_timeout(void *session)
{
	struct pop3_conn *pc = session;

	pop3_session_timeout(pc->s);
}

static void h_shutdown(void *session)
{
	struct pop3_conn *pc = session;

	pop3_session_shutdown(pc->s);
}

static void h_tls_started(void *session)
{
	struct pop3_conn *pc = session;

	pop3_session_tls_started(pc->s, conn_tls_info(pc->conn));
}

static int h_busy(void *session)
{
	struct pop3_conn *pc = session;

	return pop3_session_busy(pc->s);
}

static void h_closed(void *session)
{
	struct pop3_conn *pc = session;

	pc->conn = NULL;
	pop3_session_disconnected(pc->s);
	if (pc->delaying) {
		/* nobody waits for this login any more */
		struct pop3_auth_req *req = pc->areq;
		uv_timer_stop(&pc->delay);
		pc->delaying = 0;
		pc->req = R_NONE;
		pc->areq = NULL;
		req->result = -ECANCELED;
		pop3_session_auth_done(pc->s, req);
	}
	if (pc->draining) {
		pc->draining = 0;
		pop3_session_drained(pc->s);
	}
	pc_maybe_free(pc);
}

struct pop3_server *pop3_server_new(const struct config *cfg, struct dir *dir, uv_loop_t *loop)
{
	struct pop3_server *srv = xcalloc(1, sizeof(*srv));
	struct throttle_params tp;
	unsigned char key[16];

	srv->cfg = cfg;
	srv->dir = dir;
	srv->loop = loop;
	srv->pcfg = cfg->pop3;
	tp = (struct throttle_params){
		.free_failures = srv->pcfg.auth_delay_free,
		.base_ms = srv->pcfg.auth_delay_base * 1000,
		.max_ms = srv->pcfg.auth_delay_max * 1000,
		.decay_ms = srv->pcfg.auth_delay_decay * 1000,
		.slots = THROTTLE_SLOTS,
	};
	if (gnutls_rnd(GNUTLS_RND_NONCE, key, sizeof(key)) < 0) {
		uint64_t v = uv_hrtime() ^ (uint64_t)getpid() << 32;
		memset(key, 0x5a, sizeof(key));
		memcpy(key, &v, sizeof(v));
	}
	srv->throttle = throttle_new(&tp, key);
	snprintf(srv->busy, sizeof(srv->busy), "-ERR [SYS/TEMP] Too many connections, try again later\r\n");
	srv->handler = (struct proto_handler){
		.name = "pop3",
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

const struct proto_handler *pop3_server_handler(const struct pop3_server *srv)
{
	return &srv->handler;
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
	throttle_free(&srv->throttle);
	free(srv);
	*srvp = NULL;
}
