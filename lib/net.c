#include "lib/net.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define IP_BUCKETS 256
#define READ_MAX 65536          /* bytes asked of one read */

struct ipent {
	struct ipent *next;
	unsigned count;
	char ip[64];
};

/*
 * A configured listener: its protocol, its caps and what counts against
 * them, shared by all its addresses. It lives until its last socket is
 * closed and its last connection freed (each holds a reference), so a
 * connection can always reach its counters.
 */
struct lgroup {
	struct net *net;
	struct lgroup *next;
	const struct proto_handler *h;
	void *ctx;
	struct listen_limits lim;
	unsigned n_conns;        /* sessions (busy replies excluded) */
	unsigned n_unauth;       /* of which not logged in yet */
	unsigned refs;           /* listening sockets and connections */
	struct ipent *ips[IP_BUCKETS];
	char name[64];
};

/* One listening socket of a group. */
struct listener {
	uv_tcp_t tcp;
	struct net *net;
	struct listener *next;
	struct lgroup *g;
	char addr[80];
};

struct net {
	uv_loop_t *loop;
	struct net_limits lim;
	struct conn *conns;
	unsigned n_conns;        /* every connection, busy replies included */
	unsigned n_busy;         /* connections being told "busy" */
	unsigned n_listeners_open;
	struct listener *listeners;
	struct lgroup *groups;
	uint64_t warn_ms;        /* last "newcomers closed" warning */
	unsigned warn_count;     /* newcomers closed since it */
	/* One read buffer for every connection of the loop: a connection that
	 * holds no input reads here, the protocol takes what it can straight
	 * from it, and only the rest is copied into the connection's own
	 * buffer (see conn_alloc). libuv calls conn_alloc and conn_read in
	 * pairs, one stream at a time, so one buffer is enough. */
	char *rbuf;
	size_t rbuf_size;       /* min(input_max, READ_MAX) + 1 */
	uint64_t reads;         /* reads that brought bytes */
	int stopping;
	uv_timer_t stop_timer;
	int stop_timer_init;
	void (*done)(void *arg);
	void *done_arg;
};

enum conn_flags {
	CONN_CLOSING = 1 << 0,    /* close requested: no more input to the protocol */
	CONN_CLOSED = 1 << 1,     /* handles are being closed */
	CONN_EOF = 1 << 2,        /* the client closed its side */
	CONN_READING = 1 << 3,
	CONN_IN_INPUT = 1 << 4,   /* inside proto->input: do not re-enter */
	CONN_WRITING = 1 << 5,    /* a uv_write is in flight */
	CONN_BUSY_REJECT = 1 << 6,/* over the limits: no session, counted in n_busy */
	CONN_UNAUTH = 1 << 7,     /* counted in its listener's n_unauth */
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_timer_t resume;
	struct net *net;
	struct conn *prev, *next;
	struct lgroup *g;
	const struct proto_handler *h;
	void *session;
	struct ipent *ip;
	unsigned flags;
	int handles_open;
	struct buf in;          /* input the protocol left; no memory when empty */
	struct buf out;         /* queued, not yet handed to uv_write */
	size_t inflight;        /* bytes handed to uv_write */
	uv_write_t wreq;
	char *wdata;
	size_t drain_mark;      /* call h->drained when pending <= this */
	int drain_armed;
	uint64_t start_ms;
	char sid[16];
	char peer[64];
	char reason[96];
};

static void conn_process_input(struct conn *c);
static void conn_start_write(struct conn *c);
static void conn_start_reading(struct conn *c);
static void conn_really_close(struct conn *c);
static void maybe_done(struct net *n);
static void group_unref(struct lgroup *g);
static void conn_timeout_cb(uv_timer_t *t);

struct net *net_new(uv_loop_t *loop, const struct net_limits *lim)
{
	struct net *n = xcalloc(1, sizeof(*n));

	n->loop = loop;
	n->lim = *lim;
	if (!n->lim.input_max)
		n->lim.input_max = 4096;
	if (!n->lim.output_high)
		n->lim.output_high = 256 * 1024;
	if (!n->lim.output_max)
		n->lim.output_max = 8 * 1024 * 1024;
	if (!n->lim.max_busy)
		n->lim.max_busy = 256;
	return n;
}

void net_free(struct net **np)
{
	struct net *n = *np;

	if (!n)
		return;
	if (n->conns || n->n_listeners_open)
		BUG("net_free with open connections or listeners");
	free(n->rbuf);
	free(n);
	*np = NULL;
}

unsigned net_connections(const struct net *n)
{
	return n->n_conns;
}

uint64_t net_reads(const struct net *n)
{
	return n->reads;
}

static unsigned ip_hash(const char *ip)
{
	unsigned h = 5381;

	for (; *ip; ip++)
		h = h * 33 + (unsigned char)*ip;
	return h % IP_BUCKETS;
}

/* The count of a client address on one listener; NULL when it has none. */
static struct ipent *ip_find(struct lgroup *l, const char *ip)
{
	struct ipent *e;

	for (e = l->ips[ip_hash(ip)]; e; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	return NULL;
}

static struct ipent *ip_get(struct lgroup *l, const char *ip)
{
	unsigned h = ip_hash(ip);
	struct ipent *e = ip_find(l, ip);

	if (e)
		return e;
	e = xcalloc(1, sizeof(*e));
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	e->next = l->ips[h];
	l->ips[h] = e;
	return e;
}

static void ip_put(struct lgroup *l, struct ipent *e)
{
	unsigned h;
	struct ipent **pp;

	if (--e->count > 0)
		return;
	h = ip_hash(e->ip);
	for (pp = &l->ips[h]; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			free(e);
			return;
		}
	}
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	snprintf(out, outlen, "unknown");
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		uv_ip4_name((struct sockaddr_in *)&ss, out, outlen);
	} else if (ss.ss_family == AF_INET6) {
		uv_ip6_name((struct sockaddr_in6 *)&ss, out, outlen);
		if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.'))
			memmove(out, out + 7, strlen(out + 7) + 1);
	}
}

static void make_sid(char *out)
{
	unsigned char r[6];

	if (gnutls_rnd(GNUTLS_RND_NONCE, r, sizeof(r)) < 0) {
		static unsigned long counter;
		unsigned long v = ++counter ^ (unsigned long)uv_hrtime();
		memcpy(r, &v, sizeof(r));
	}
	for (int i = 0; i < 6; i++)
		sprintf(out + 2 * i, "%02x", r[i]);
}

/* ---- closing ---- */

static void conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct net *n = c->net;

	if (--c->handles_open > 0)
		return;
	buf_release(&c->in);
	buf_release(&c->out);
	free(c->wdata);
	if (c->g)
		group_unref(c->g);
	free(c);
	maybe_done(n);
}

static void group_unref(struct lgroup *g)
{
	struct net *n = g->net;
	struct lgroup **pp;

	if (--g->refs > 0)
		return;
	for (unsigned i = 0; i < IP_BUCKETS; i++)
		if (g->ips[i])
			BUG("listener freed with client addresses counted");
	for (pp = &n->groups; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	free(g);
	maybe_done(n);
}

/* Gives a closing connection's place in its listener's counts back (the
 * reference to the listener goes with the connection's memory). */
static void conn_leave_listener(struct conn *c)
{
	struct lgroup *l = c->g;

	if (c->flags & CONN_BUSY_REJECT)
		c->net->n_busy--;
	else
		l->n_conns--;
	if (c->flags & CONN_UNAUTH)
		l->n_unauth--;
	c->flags &= ~CONN_UNAUTH;
	if (c->ip)
		ip_put(l, c->ip);
	c->ip = NULL;
}


static void conn_really_close(struct conn *c)
{
	struct net *n = c->net;

	if (c->flags & CONN_CLOSED)
		return;
	c->flags |= CONN_CLOSED | CONN_CLOSING;
	log_info("net", c->sid, "disconnect client=%s reason=%s duration_ms=%llu", c->peer,
		 c->reason[0] ? c->reason : "closed",
		 (unsigned long long)(uv_now(n->loop) - c->start_ms));
	if (c->session && c->h->closed)
		c->h->closed(c->session);
	c->session = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n->n_conns--;
	conn_leave_listener(c);
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->resume, conn_handle_closed);
}

static void set_reason(struct conn *c, const char *reason)
{
	if (!c->reason[0] && reason)
		snprintf(c->reason, sizeof(c->reason), "%s", reason);
}

void conn_close(struct conn *c, const char *reason)
{
	set_reason(c, reason);
	if (c->flags & CONN_CLOSING)
		return;
	c->flags |= CONN_CLOSING;
	if (c->flags & CONN_READING) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->flags &= ~CONN_READING;
	}
	if (!(c->flags & CONN_WRITING) && c->out.len == 0) {
		conn_really_close(c);
		return;
	}
	/* The write callback closes once the queue has drained; a client that
	 * never reads its replies is dropped by the timer. */
	uv_timer_start(&c->timer, conn_timeout_cb, 30000, 0);
}

void conn_abort(struct conn *c, const char *reason)
{
	set_reason(c, reason);
	c->flags |= CONN_CLOSING;
	buf_reset(&c->out);
	conn_really_close(c);
}

int conn_closing(const struct conn *c)
{
	return (c->flags & CONN_CLOSING) != 0;
}

/* ---- writing ---- */

static void conn_check_drained(struct conn *c)
{
	if (c->drain_armed && !(c->flags & CONN_CLOSING) && conn_output_pending(c) <= c->drain_mark) {
		c->drain_armed = 0;
		if (c->session && c->h->drained)
			c->h->drained(c->session);
	}
}

static void conn_write_done(uv_write_t *req, int status)
{
	struct conn *c = req->data;

	c->flags &= ~CONN_WRITING;
	free(c->wdata);
	c->wdata = NULL;
	c->inflight = 0;
	if (c->flags & CONN_CLOSED)
		return;
	if (status < 0) {
		conn_abort(c, status == UV_EPIPE || status == UV_ECONNRESET ? "client closed" : "write error");
		return;
	}
	if (c->out.len)
		conn_start_write(c);
	conn_check_drained(c);
	if (c->flags & (CONN_CLOSED | CONN_WRITING))
		return;
	if (c->flags & CONN_CLOSING) {
		conn_really_close(c);
		return;
	}
	/* Output drained below the high-water mark: take input again. */
	if (c->in.len)
		conn_process_input(c);
	else
		conn_start_reading(c);
}

static void conn_start_write(struct conn *c)
{
	uv_buf_t b;
	int r;

	if ((c->flags & (CONN_WRITING | CONN_CLOSED)) || c->out.len == 0)
		return;
	c->inflight = c->out.len;
	c->wdata = buf_detach(&c->out, NULL);
	buf_init(&c->out, c->net->lim.output_max);
	b = uv_buf_init(c->wdata, (unsigned)c->inflight);
	c->wreq.data = c;
	c->flags |= CONN_WRITING;
	r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, conn_write_done);
	if (r < 0) {
		c->flags &= ~CONN_WRITING;
		free(c->wdata);
		c->wdata = NULL;
		c->inflight = 0;
		conn_abort(c, "write error");
	}
}

void conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->flags & CONN_CLOSED)
		return;
	if (c->inflight + len > c->net->lim.output_max || buf_add(&c->out, data, len) < 0) {
		conn_abort(c, "output buffer overflow");
		return;
	}
	conn_start_write(c);
}

size_t conn_output_pending(const struct conn *c)
{
	return c->out.len + c->inflight;
}

/* ---- reading ---- */

/*
 * Reads go to the loop's shared buffer while the connection holds no input,
 * and to the free tail of its own buffer when the protocol left some: either
 * way at most input_max bytes are held, as if every read went to the
 * connection's buffer, but an idle connection holds no input memory.
 */
static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct conn *c = h->data;
	struct net *n = c->net;
	size_t room = buf_room(&c->in);

	(void)suggested;
	if (room > READ_MAX)
		room = READ_MAX;
	if (room == 0) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	if (c->in.len == 0) {
		if (!n->rbuf) {
			n->rbuf_size = (n->lim.input_max < READ_MAX ? n->lim.input_max : READ_MAX) + 1;
			n->rbuf = xmalloc(n->rbuf_size);
		}
		*b = uv_buf_init(n->rbuf, (unsigned)room);
		return;
	}
	if (buf_reserve(&c->in, room) < 0) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	*b = uv_buf_init(c->in.data + c->in.len, (unsigned)room);
}

static void conn_stop_reading(struct conn *c)
{
	if (c->flags & CONN_READING) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->flags &= ~CONN_READING;
	}
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void conn_start_reading(struct conn *c)
{
	if (c->flags & (CONN_READING | CONN_CLOSING | CONN_EOF))
		return;
	if (buf_room(&c->in) == 0 || conn_output_pending(c) > c->net->lim.output_high)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) == 0)
		c->flags |= CONN_READING;
}

/* Passes data to the protocol until it takes no more (or output is above
 * the high-water mark); returns the bytes it took. */
static size_t conn_feed(struct conn *c, const char *data, size_t len)
{
	size_t used = 0, n;

	if (c->flags & CONN_IN_INPUT)
		return 0;
	while (used < len && !(c->flags & CONN_CLOSING)) {
		if (conn_output_pending(c) > c->net->lim.output_high)
			break;
		c->flags |= CONN_IN_INPUT;
		n = c->h->input(c->session, data + used, len - used);
		c->flags &= ~CONN_IN_INPUT;
		if (n > len - used)
			BUG("protocol consumed more input than it was given");
		if (n == 0)
			break;
		used += n;
	}
	return used;
}

/* After input was passed on: give back an empty input buffer, then close
 * at EOF, or read or not depending on room and queued output. */
static void conn_input_done(struct conn *c)
{
	if ((c->flags & CONN_CLOSING) || c->in.len == 0)
		buf_release(&c->in);
	if (c->flags & CONN_CLOSING)
		return;
	if (c->flags & CONN_EOF) {
		if (c->in.len == 0)
			conn_close(c, "client closed");
		return;
	}
	if (buf_room(&c->in) == 0 || conn_output_pending(c) > c->net->lim.output_high)
		conn_stop_reading(c);
	else
		conn_start_reading(c);
}

static void conn_process_input(struct conn *c)
{
	if (c->flags & CONN_IN_INPUT)
		return;
	buf_consume(&c->in, conn_feed(c, c->in.data, c->in.len));
	conn_input_done(c);
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct conn *c = s->data;
	struct net *n = c->net;

	if (nread == 0)
		return; /* EAGAIN: not EOF */
	if (nread == UV_ENOBUFS) {
		conn_stop_reading(c);
		return;
	}
	if (nread < 0) {
		conn_stop_reading(c);
		if (nread == UV_EOF) {
			c->flags |= CONN_EOF;
			set_reason(c, "client closed");
			if (c->in.len == 0)
				conn_close(c, "client closed");
			else
				conn_process_input(c);
		} else {
			conn_abort(c, nread == UV_ECONNRESET ? "connection reset" : "read error");
		}
		return;
	}
	n->reads++;
	if (b->base == n->rbuf) {
		/* The connection held nothing: the protocol reads the shared
		 * buffer, and what it leaves (at most input_max bytes, as the
		 * read was no larger) is kept before the buffer is reused. */
		size_t used;

		n->rbuf[nread] = '\0';
		used = conn_feed(c, n->rbuf, (size_t)nread);
		if (!(c->flags & CONN_CLOSING) && used < (size_t)nread &&
		    buf_add(&c->in, n->rbuf + used, (size_t)nread - used) < 0)
			BUG("input over input_max");
		conn_input_done(c);
		return;
	}
	c->in.len += (size_t)nread;
	c->in.data[c->in.len] = '\0';
	conn_process_input(c);
}

static void conn_resume_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->flags & CONN_CLOSING)
		return;
	conn_check_drained(c);
	if (c->flags & CONN_CLOSING)
		return;
	conn_process_input(c);
	if (!(c->flags & CONN_CLOSING) && !(c->flags & CONN_EOF))
		conn_start_reading(c);
}

void conn_resume_input(struct conn *c)
{
	if (c->flags & CONN_CLOSED)
		return;
	uv_timer_start(&c->resume, conn_resume_cb, 0, 0);
}

void conn_when_drained(struct conn *c, size_t below)
{
	if (c->flags & CONN_CLOSING)
		return;
	c->drain_mark = below;
	c->drain_armed = 1;
	if (conn_output_pending(c) <= below)
		uv_timer_start(&c->resume, conn_resume_cb, 0, 0);
}

/* ---- timers ---- */

static void conn_timeout_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->flags & CONN_CLOSING) {
		/* The client does not read its replies: give up on them. */
		conn_abort(c, "close timeout");
		return;
	}
	if (c->session && c->h->timeout)
		c->h->timeout(c->session);
	else
		conn_close(c, "timeout");
}

void conn_set_timeout(struct conn *c, unsigned ms)
{
	if (c->flags & CONN_CLOSING)
		return;
	if (ms)
		uv_timer_start(&c->timer, conn_timeout_cb, ms, 0);
	else
		uv_timer_stop(&c->timer);
}

const char *conn_sid(const struct conn *c)
{
	return c->sid;
}

const char *conn_peer(const struct conn *c)
{
	return c->peer;
}

const char *conn_listener(const struct conn *c)
{
	return c->g->name;
}

uv_loop_t *conn_loop(const struct conn *c)
{
	return c->net->loop;
}

/* ---- accepting ---- */

/* Newcomers closed without a reply are counted and reported once a minute
 * at most: a flood must not also flood the log. */
static void warn_closed(struct net *n, const char *listener, const char *why)
{
	uint64_t now = uv_now(n->loop);

	n->warn_count++;
	if (n->warn_ms && now - n->warn_ms < 60000)
		return;
	log_warn("net", NULL, "newcomers closed without a reply listener=%s reason=%s count=%u", listener, why,
		 n->warn_count);
	n->warn_ms = now;
	n->warn_count = 0;
}

/* Why a newcomer gets the busy reply instead of a session, or NULL. */
static const char *over_limits(struct lgroup *l, const char *peer, int fd)
{
	struct net *n = l->net;
	struct ipent *e = ip_find(l, peer);

	if (l->n_conns >= l->lim.max_connections)
		return "connection limit";
	if (e && e->count >= l->lim.max_connections_per_ip)
		return "per-client connection limit";
	if (l->n_unauth >= l->lim.max_unauthenticated)
		return "unauthenticated connection limit";
	if (n->lim.fd_limit && fd >= 0 && (unsigned)fd + n->lim.fd_reserve + n->lim.max_busy >= n->lim.fd_limit)
		return "file descriptor limit";
	return NULL;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct lgroup *l = ((struct listener *)server->data)->g;
	struct net *n = l->net;
	struct conn *c;
	const char *refuse;
	uv_os_fd_t fd = -1;

	if (!l->h)
		BUG("a listener accepts before it has a protocol");
	if (status < 0) {
		/* libuv closed the newcomers itself (its reserve descriptor):
		 * the descriptor limit was reached by something else than
		 * sessions, which over_limits() keeps below it. */
		if (status == UV_EMFILE || status == UV_ENFILE)
			warn_closed(n, l->name, "out of file descriptors");
		else
			log_warn("net", NULL, "accept failed listener=%s error=%s", l->name, uv_strerror(status));
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->net = n;
	c->g = l;
	l->refs++;
	c->h = l->h;
	uv_tcp_init(n->loop, &c->tcp);
	c->tcp.data = c;
	c->handles_open = 1;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
		return;
	}
	if (n->stopping) {
		uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
		return;
	}
	peer_name(&c->tcp, c->peer, sizeof(c->peer));
	uv_fileno((uv_handle_t *)&c->tcp, &fd);
	refuse = over_limits(l, c->peer, fd);
	/* Far past the limits nobody is told why: even the reply costs, and
	 * the last fd_reserve descriptors belong to the files of the
	 * sessions already open. */
	if (refuse && (n->n_busy >= n->lim.max_busy ||
		       (n->lim.fd_limit && (unsigned)fd + n->lim.fd_reserve >= n->lim.fd_limit))) {
		warn_closed(n, l->name, refuse);
		uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
		return;
	}
	uv_timer_init(n->loop, &c->timer);
	uv_timer_init(n->loop, &c->resume);
	c->timer.data = c->resume.data = c;
	c->handles_open = 3;
	uv_tcp_nodelay(&c->tcp, 1);
	buf_init(&c->in, n->lim.input_max);
	buf_init(&c->out, n->lim.output_max);
	c->start_ms = uv_now(n->loop);
	make_sid(c->sid);
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	n->n_conns++;
	log_info("net", c->sid, "connect listener=%s proto=%s client=%s%s%s", l->name, l->h->name, c->peer,
		 refuse ? " refused=" : "", refuse ? refuse : "");
	if (refuse) {
		c->flags |= CONN_BUSY_REJECT;
		n->n_busy++;
		if (strcmp(refuse, "file descriptor limit") == 0)
			warn_closed(n, l->name, refuse);
		if (l->h->busy_reply)
			conn_write(c, l->h->busy_reply, strlen(l->h->busy_reply));
		conn_set_timeout(c, 10000);
		conn_close(c, refuse);
		return;
	}
	l->n_conns++;
	l->n_unauth++;
	c->flags |= CONN_UNAUTH;
	c->ip = ip_get(l, c->peer);
	c->ip->count++;
	c->session = l->h->open(c, l->ctx);
	if (!c->session) {
		conn_close(c, "session refused");
		return;
	}
	conn_start_reading(c);
}

void conn_set_authenticated(struct conn *c)
{
	if (!(c->flags & CONN_UNAUTH))
		return;
	c->flags &= ~CONN_UNAUTH;
	c->g->n_unauth--;
}

static void listener_closed(uv_handle_t *h)
{
	struct listener *l = h->data;
	struct net *n = l->net;

	n->n_listeners_open--;
	group_unref(l->g);
	free(l);
	maybe_done(n);
}

/* The group of listener_name, made with limits ll on first use. */
static struct lgroup *group_get(struct net *n, const char *listener_name, const struct listen_limits *ll)
{
	struct lgroup *g;

	for (g = n->groups; g; g = g->next)
		if (strcmp(g->name, listener_name) == 0)
			return g;
	g = xcalloc(1, sizeof(*g));
	g->net = n;
	g->lim = *ll;
	snprintf(g->name, sizeof(g->name), "%s", listener_name);
	g->next = n->groups;
	n->groups = g;
	return g;
}

int net_listen(struct net *n, const struct listen_addr *a, const char *listener_name,
	       const struct listen_limits *ll, const struct proto_handler *h, void *ctx, char *bound_r,
	       char *err, size_t errlen)
{
	struct listener *l = xcalloc(1, sizeof(*l));
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char host[64];
	int r;

	l->net = n;
	l->g = group_get(n, listener_name, ll);
	l->g->refs++;
	if (h) {
		l->g->h = h;
		l->g->ctx = ctx;
	}
	uv_tcp_init(n->loop, &l->tcp);
	l->tcp.data = l;
	n->n_listeners_open++;
	if (a->ss.ss_family == AF_INET6)
		r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&a->ss, UV_TCP_IPV6ONLY);
	else
		r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&a->ss, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
	if (r < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", a->text, uv_strerror(r));
		uv_close((uv_handle_t *)&l->tcp, listener_closed);
		return -1;
	}
	uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
	if (ss.ss_family == AF_INET6) {
		uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
		snprintf(l->addr, sizeof(l->addr), "[%s]:%u", host,
			 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	} else {
		uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
		snprintf(l->addr, sizeof(l->addr), "%s:%u", host, ntohs(((struct sockaddr_in *)&ss)->sin_port));
	}
	if (bound_r)
		strcpy(bound_r, l->addr);
	l->next = n->listeners;
	n->listeners = l;
	return 0;
}

void net_set_handler(struct net *n, const char *listener_name, const struct proto_handler *h, void *ctx)
{
	for (struct lgroup *g = n->groups; g; g = g->next) {
		if (strcmp(g->name, listener_name) == 0) {
			g->h = h;
			g->ctx = ctx;
		}
	}
}

/* ---- stopping ---- */

static void maybe_done(struct net *n)
{
	void (*done)(void *);

	if (!n->stopping || n->conns || n->n_listeners_open || !n->done)
		return;
	if (n->stop_timer_init) {
		n->stop_timer_init = 0;
		uv_close((uv_handle_t *)&n->stop_timer, NULL);
	}
	done = n->done;
	n->done = NULL;
	done(n->done_arg);
}

static void stop_timer_cb(uv_timer_t *t)
{
	struct net *n = t->data;
	struct conn *c, *next;

	for (c = n->conns; c; c = next) {
		next = c->next;
		conn_abort(c, "shutdown timeout");
	}
}

void net_shutdown(struct net *n, unsigned timeout_ms, void (*done)(void *arg), void *arg)
{
	struct listener *l, *lnext;
	struct conn *c, *next;

	if (n->stopping)
		return;
	n->stopping = 1;
	n->done = done;
	n->done_arg = arg;
	for (l = n->listeners; l; l = lnext) {
		lnext = l->next;
		uv_close((uv_handle_t *)&l->tcp, listener_closed);
	}
	n->listeners = NULL;
	uv_timer_init(n->loop, &n->stop_timer);
	n->stop_timer.data = n;
	n->stop_timer_init = 1;
	uv_timer_start(&n->stop_timer, stop_timer_cb, timeout_ms, 0);
	uv_unref((uv_handle_t *)&n->stop_timer);
	for (c = n->conns; c; c = next) {
		next = c->next;
		if (c->session && c->h->shutdown && !(c->flags & CONN_CLOSING))
			c->h->shutdown(c->session);
		else if (!(c->flags & CONN_CLOSING))
			conn_close(c, "shutdown");
	}
	maybe_done(n);
}

/* ---- session io adapters ---- */

static struct conn *ctx_conn(void *ctx)
{
	return *(struct conn **)ctx;
}

void conn_io_write(void *ctx, const char *data, size_t len)
{
	struct conn *c = ctx_conn(ctx);

	if (c)
		conn_write(c, data, len);
}

void conn_io_close(void *ctx, const char *reason)
{
	struct conn *c = ctx_conn(ctx);

	if (c)
		conn_close(c, reason);
}

void conn_io_set_timeout(void *ctx, unsigned seconds)
{
	struct conn *c = ctx_conn(ctx);

	if (c)
		conn_set_timeout(c, seconds * 1000);
}

void conn_io_resume(void *ctx)
{
	struct conn *c = ctx_conn(ctx);

	if (c)
		conn_resume_input(c);
}

void conn_io_when_drained(void *ctx, size_t below)
{
	struct conn *c = ctx_conn(ctx);

	if (c)
		conn_when_drained(c, below);
}

void conn_io_start_tls(void *ctx)
{
	struct conn *c = ctx_conn(ctx);

	if (c)
		conn_start_tls(c);
}

/* ---- TLS (placeholder until the transport lands) ---- */

void conn_start_tls(struct conn *c)
{
	conn_abort(c, "TLS not available");
}

const struct tls_info *conn_tls_info(const struct conn *c)
{
	(void)c;
	return NULL;
}

enum tls_mode conn_tls_mode(const struct conn *c)
{
	(void)c;
	return TLS_MODE_NONE;
}

const char *tls_mode_name(enum tls_mode m)
{
	static const char *const names[] = { "none", "starttls", "required", "implicit" };

	return (unsigned)m < 4 ? names[m] : "?";
}
