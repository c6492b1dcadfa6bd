#include "lib/net.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/lockout.h"
#include "lib/log.h"
#include "lib/tls.h"
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
	enum tls_mode tls_mode;
	struct tls_creds *creds; /* referenced; NULL: no TLS */
	unsigned handshake_ms;
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
	struct lockout *lockout; /* NULL: no lockout gate */
	/* clients refused by address rules or a lockout, reported once a
	 * minute at most (see refused_note) */
	uint64_t refused_ms;
	unsigned refused_denied, refused_locked;
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
	CONN_TLS_PENDING = 1 << 8,/* STARTTLS: clear input dropped, handshake once output is sent */
	CONN_HANDSHAKE = 1 << 9,  /* the TLS handshake runs; no session input or output */
	CONN_TLS = 1 << 10,       /* the TLS transport carries the session */
	CONN_REFUSED = 1 << 11,   /* refused by address rules or a lockout: logged in bulk only */
};

/*
 * How bytes cross the socket. Every connection starts on one of the two
 * tables below and moves from plain to TLS at most once (STARTTLS/STLS, or
 * at accept on an implicit-TLS listener). The protocol never knows which:
 * it gets plaintext through proto_handler.input and writes with
 * conn_write().
 */
struct transport {
	const char *name;
	/* Where the next socket read goes (a NULL base: no room). */
	void (*alloc)(struct conn *c, uv_buf_t *b);
	/* nread > 0 bytes arrived in the buffer alloc gave. */
	void (*read)(struct conn *c, char *data, size_t len);
	/* Plaintext from the protocol for the client; 0 or -1 (aborted). */
	int (*write)(struct conn *c, const void *data, size_t len);
	/* Gives the protocol what is held (it may take more now), then reads
	 * on or stops depending on room and queued output. */
	void (*pump)(struct conn *c);
	/* 1 when a socket read would have somewhere to go. */
	int (*want_read)(const struct conn *c);
	/* The connection closes after its queued output: say goodbye. */
	void (*shutdown)(struct conn *c);
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_timer_t resume;
	struct net *net;
	struct conn *prev, *next;
	struct lgroup *g;
	const struct proto_handler *h;
	const struct transport *tp;
	struct tls_engine *tls;  /* from STARTTLS or accept on implicit TLS to the end */
	void *session;
	struct ipent *ip;
	unsigned flags;
	int handles_open;
	struct buf in;          /* input the protocol left; no memory when empty */
	struct buf out;         /* queued, not yet handed to uv_write */
	size_t inflight;        /* bytes handed to uv_write */
	uv_write_t wreq;
	char *wdata;
	size_t dropped;         /* clear input thrown away after STARTTLS */
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
static int tls_begin(struct conn *c);
static const struct transport plain_transport, tls_transport;

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

void net_set_lockout(struct net *n, struct lockout *lk)
{
	n->lockout = lk;
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
	tls_engine_free(&c->tls);
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
	tls_creds_unref(&g->creds);
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
	/* a refused flood is counted by refused_note(), not logged line by line */
	log_at(c->flags & CONN_REFUSED ? LOG_DEBUG : LOG_INFO, "net", c->sid,
	       "disconnect client=%s reason=%s duration_ms=%llu", c->peer, c->reason[0] ? c->reason : "closed",
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
	c->tp->shutdown(c);
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
	/* STARTTLS's reply is out: now the handshake. */
	if (c->flags & CONN_TLS_PENDING) {
		tls_begin(c);
		return;
	}
	/* Output drained below the high-water mark: take input again. */
	c->tp->pump(c);
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

/* Queues bytes as they go on the wire; 0 or -1 (the connection is aborted). */
static int conn_queue_raw(struct conn *c, const void *data, size_t len)
{
	if (c->flags & CONN_CLOSED)
		return -1;
	if (c->inflight + len > c->net->lim.output_max || buf_add(&c->out, data, len) < 0) {
		conn_abort(c, "output buffer overflow");
		return -1;
	}
	return 0;
}

void conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->flags & CONN_CLOSED)
		return;
	/* A session has nothing to say while a handshake runs (it asked for
	 * it and waits): bytes now would land in the middle of the TLS
	 * records, so they are dropped. */
	if (c->flags & CONN_HANDSHAKE) {
		log_debug("net", c->sid, "output during the TLS handshake dropped octets=%zu", len);
		return;
	}
	if (c->tp->write(c, data, len) == 0)
		conn_start_write(c);
}

size_t conn_output_pending(const struct conn *c)
{
	return c->out.len + c->inflight;
}

/* ---- reading ---- */

static char *shared_rbuf(struct net *n)
{
	if (!n->rbuf) {
		n->rbuf_size = READ_MAX + 1;
		n->rbuf = xmalloc(n->rbuf_size);
	}
	return n->rbuf;
}

/*
 * Clear text: reads go to the loop's shared buffer while the connection
 * holds no input, and to the free tail of its own buffer when the protocol
 * left some: either way at most input_max bytes are held, as if every read
 * went to the connection's buffer, but an idle connection holds no input
 * memory.
 */
static void plain_alloc(struct conn *c, uv_buf_t *b)
{
	size_t room = buf_room(&c->in);

	if (room > READ_MAX)
		room = READ_MAX;
	if (room == 0) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	if (c->in.len == 0) {
		*b = uv_buf_init(shared_rbuf(c->net), (unsigned)room);
		return;
	}
	if (buf_reserve(&c->in, room) < 0) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	*b = uv_buf_init(c->in.data + c->in.len, (unsigned)room);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct conn *c = h->data;

	(void)suggested;
	c->tp->alloc(c, b);
}

static void conn_stop_reading(struct conn *c)
{
	if (c->flags & CONN_READING) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->flags &= ~CONN_READING;
	}
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static int reading_allowed(const struct conn *c)
{
	if (c->flags & (CONN_CLOSING | CONN_EOF | CONN_TLS_PENDING))
		return 0;
	return c->tp->want_read(c) && conn_output_pending(c) <= c->net->lim.output_high;
}

static void conn_start_reading(struct conn *c)
{
	if ((c->flags & CONN_READING) || !reading_allowed(c))
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) == 0)
		c->flags |= CONN_READING;
}

/* Passes data to the protocol until it takes no more (or output is above
 * the high-water mark, or it asked for TLS); returns the bytes it took. */
static size_t conn_feed(struct conn *c, const char *data, size_t len)
{
	size_t used = 0, n;

	if (c->flags & (CONN_IN_INPUT | CONN_TLS_PENDING | CONN_HANDSHAKE) || !c->session)
		return 0;
	while (used < len && !(c->flags & (CONN_CLOSING | CONN_TLS_PENDING))) {
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

/*
 * Plaintext arrived at data (the shared buffer, or the tail of c->in):
 * the protocol takes what it can and the rest is kept in c->in, except
 * after STARTTLS, when it is thrown away: a command pipelined behind
 * STARTTLS in clear must never run once the session is encrypted
 * (CVE-2011-0411).
 */
static void conn_take_plain(struct conn *c, char *data, size_t len)
{
	size_t used;

	if (data == c->net->rbuf && c->in.len == 0) {
		data[len] = '\0';
		used = conn_feed(c, data, len);
		if (c->flags & CONN_TLS_PENDING)
			c->dropped += len - used;
		else if (!(c->flags & CONN_CLOSING) && used < len && buf_add(&c->in, data + used, len - used) < 0)
			BUG("input over input_max");
		return;
	}
	if (data == c->net->rbuf) {
		if (buf_add(&c->in, data, len) < 0)
			BUG("input over input_max");
	} else {
		c->in.len += len;
		c->in.data[c->in.len] = '\0';
	}
	buf_consume(&c->in, conn_feed(c, c->in.data, c->in.len));
}

/* After input was passed on: give back an empty input buffer, then close
 * at EOF, or read or not depending on room and queued output. */
static void conn_input_done(struct conn *c)
{
	if (c->flags & CONN_TLS_PENDING) {
		c->dropped += c->in.len;
		buf_release(&c->in);
		conn_stop_reading(c);
		return;
	}
	if ((c->flags & CONN_CLOSING) || c->in.len == 0)
		buf_release(&c->in);
	if (c->flags & CONN_CLOSING)
		return;
	if (c->flags & CONN_EOF) {
		/* Nothing more will come. What the protocol left is a command
		 * that can never be finished, unless the protocol is busy (it
		 * takes the rest once its request is done) or waits for its
		 * output to drain. */
		if (c->in.len == 0 || (c->session && c->h->busy && !c->h->busy(c->session) &&
					conn_output_pending(c) <= c->net->lim.output_high))
			conn_close(c, "client closed");
		return;
	}
	if (reading_allowed(c))
		conn_start_reading(c);
	else
		conn_stop_reading(c);
}

/* Gives the protocol the input it holds again. */
static void conn_process_input(struct conn *c)
{
	if (c->flags & CONN_IN_INPUT)
		return;
	buf_consume(&c->in, conn_feed(c, c->in.data, c->in.len));
	conn_input_done(c);
}

static void plain_read(struct conn *c, char *data, size_t len)
{
	conn_take_plain(c, data, len);
	conn_input_done(c);
}

static int plain_write(struct conn *c, const void *data, size_t len)
{
	return conn_queue_raw(c, data, len);
}

static int plain_want_read(const struct conn *c)
{
	return buf_room(&c->in) > 0;
}

static void plain_shutdown(struct conn *c)
{
	(void)c;
}

static const struct transport plain_transport = {
	.name = "plain",
	.alloc = plain_alloc,
	.read = plain_read,
	.write = plain_write,
	.pump = conn_process_input,
	.want_read = plain_want_read,
	.shutdown = plain_shutdown,
};

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct conn *c = s->data;

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
			c->tp->pump(c);
		} else {
			conn_abort(c, nread == UV_ECONNRESET ? "connection reset" : "read error");
		}
		return;
	}
	c->net->reads++;
	c->tp->read(c, b->base, (size_t)nread);
}

static void conn_resume_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->flags & CONN_CLOSING)
		return;
	if (c->flags & CONN_TLS_PENDING) {
		if (!(c->flags & CONN_WRITING) && c->out.len == 0)
			tls_begin(c);
		return;
	}
	conn_check_drained(c);
	if (c->flags & CONN_CLOSING)
		return;
	c->tp->pump(c);
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

/* ---- TLS ---- */

/* Ciphertext from the engine, in order, straight into the write queue. */
static void tls_out(void *arg, const void *data, size_t len)
{
	conn_queue_raw(arg, data, len);
}

/* Socket reads go to the shared buffer and are fed to the engine at once,
 * so an idle TLS connection holds no read memory either. */
static void tls_alloc(struct conn *c, uv_buf_t *b)
{
	size_t held = tls_engine_buffered(c->tls);
	size_t room = held < TLS_ENGINE_IN_MAX ? TLS_ENGINE_IN_MAX - held : 0;

	if (room > READ_MAX)
		room = READ_MAX;
	*b = room ? uv_buf_init(shared_rbuf(c->net), (unsigned)room) : uv_buf_init(NULL, 0);
}

static void tls_established(struct conn *c)
{
	const struct tls_info *ti = tls_engine_info(c->tls);

	c->flags = (c->flags & ~CONN_HANDSHAKE) | CONN_TLS;
	uv_timer_stop(&c->timer);
	log_info("net", c->sid, "tls established client=%s version=%s cipher=%s sni=%s resumed=%s", c->peer,
		 ti->version, ti->cipher, ti->sni[0] ? ti->sni : "-", tls_engine_resumed(c->tls) ? "yes" : "no");
	if (!c->session) {
		/* implicit TLS: the session starts now, its greeting encrypted */
		c->session = c->h->open(c, c->g->ctx);
		if (!c->session)
			conn_close(c, "session refused");
	} else if (c->h->tls_started) {
		c->h->tls_started(c->session);
	}
}

/* Runs the handshake, then decrypts while the protocol has room. */
static void tls_pump(struct conn *c)
{
	struct net *n = c->net;
	ssize_t r;

	if (c->flags & (CONN_CLOSING | CONN_IN_INPUT))
		return;
	if (c->flags & CONN_HANDSHAKE) {
		int h = tls_engine_handshake(c->tls);

		conn_start_write(c);
		if (h < 0) {
			log_warn("net", c->sid, "tls handshake failed client=%s reason=%s", c->peer,
				 tls_engine_error(c->tls));
			conn_close(c, "TLS handshake failed");
			return;
		}
		if (h == 0) {
			if (c->flags & CONN_EOF)
				conn_close(c, "client closed during the TLS handshake");
			else
				conn_start_reading(c);
			return;
		}
		tls_established(c);
		if (c->flags & CONN_CLOSING)
			return;
	}
	if (c->in.len)
		buf_consume(&c->in, conn_feed(c, c->in.data, c->in.len));
	while (!(c->flags & (CONN_CLOSING | CONN_EOF))) {
		size_t room = buf_room(&c->in);
		char *dst;

		if (room == 0 || conn_output_pending(c) > n->lim.output_high)
			break;
		if (room > READ_MAX)
			room = READ_MAX;
		if (c->in.len == 0) {
			dst = shared_rbuf(n);
		} else {
			if (buf_reserve(&c->in, room) < 0)
				break;
			dst = c->in.data + c->in.len;
		}
		r = tls_engine_recv(c->tls, dst, room);
		if (r == -EAGAIN)
			break;
		if (r == 0) {
			/* close_notify: whatever follows it on the socket is not
			 * read (clear text after it is never taken as input) */
			c->flags |= CONN_EOF;
			set_reason(c, "client closed");
			conn_stop_reading(c);
			break;
		}
		if (r < 0) {
			log_warn("net", c->sid, "tls error client=%s reason=%s", c->peer, tls_engine_error(c->tls));
			conn_start_write(c);
			conn_close(c, "TLS error");
			return;
		}
		conn_take_plain(c, dst, (size_t)r);
	}
	conn_input_done(c);
}

static void tls_read(struct conn *c, char *data, size_t len)
{
	if (tls_engine_feed(c->tls, data, len) < 0)
		BUG("tls input over TLS_ENGINE_IN_MAX");
	tls_pump(c);
}

static int tls_write(struct conn *c, const void *data, size_t len)
{
	if (tls_engine_send(c->tls, data, len) < 0) {
		log_warn("net", c->sid, "tls error client=%s reason=%s", c->peer, tls_engine_error(c->tls));
		conn_abort(c, "TLS error");
		return -1;
	}
	return (c->flags & CONN_CLOSED) ? -1 : 0;
}

static int tls_want_read(const struct conn *c)
{
	if (tls_engine_buffered(c->tls) >= TLS_ENGINE_IN_MAX)
		return 0;
	return (c->flags & CONN_HANDSHAKE) || buf_room(&c->in) > 0;
}

static void tls_shutdown(struct conn *c)
{
	if (c->flags & CONN_TLS)
		tls_engine_bye(c->tls);
	conn_start_write(c);
}

static const struct transport tls_transport = {
	.name = "tls",
	.alloc = tls_alloc,
	.read = tls_read,
	.write = tls_write,
	.pump = tls_pump,
	.want_read = tls_want_read,
	.shutdown = tls_shutdown,
};

/* Switches c to TLS and waits for the client's hello; 0 or -1 (aborted). */
static int tls_begin(struct conn *c)
{
	char err[160];

	c->flags &= ~CONN_TLS_PENDING;
	if (c->dropped)
		log_warn("net", c->sid, "clear text after STARTTLS discarded client=%s octets=%zu", c->peer,
			 c->dropped);
	if (!c->g->creds || tls_engine_new(c->g->creds, tls_out, c, &c->tls, err, sizeof(err)) < 0) {
		log_error("net", c->sid, "tls unavailable listener=%s reason=%s", c->g->name,
			  c->g->creds ? err : "no certificate");
		conn_abort(c, "TLS unavailable");
		return -1;
	}
	c->tp = &tls_transport;
	c->flags |= CONN_HANDSHAKE;
	buf_release(&c->in);
	uv_timer_start(&c->timer, conn_timeout_cb, c->g->handshake_ms, 0);
	conn_start_reading(c);
	return 0;
}

void conn_start_tls(struct conn *c)
{
	if (c->flags & CONN_CLOSING)
		return;
	if (c->tls || (c->flags & CONN_TLS_PENDING) || !c->g->creds) {
		/* the session offers STARTTLS only when it can be done */
		log_error("net", c->sid, "STARTTLS asked where it cannot be done listener=%s", c->g->name);
		conn_abort(c, "STARTTLS not possible");
		return;
	}
	c->flags |= CONN_TLS_PENDING;
	conn_stop_reading(c);
	if (!(c->flags & CONN_WRITING) && c->out.len == 0)
		uv_timer_start(&c->resume, conn_resume_cb, 0, 0);
}

const struct tls_info *conn_tls_info(const struct conn *c)
{
	return (c->flags & CONN_TLS) ? tls_engine_info(c->tls) : NULL;
}

enum tls_mode conn_tls_mode(const struct conn *c)
{
	return c->g->tls_mode;
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
	if (c->flags & CONN_HANDSHAKE) {
		log_info("net", c->sid, "tls handshake timeout client=%s after_ms=%u", c->peer, c->g->handshake_ms);
		conn_abort(c, "TLS handshake timeout");
		return;
	}
	if (c->session && c->h->timeout)
		c->h->timeout(c->session);
	else
		conn_close(c, "timeout");
}

void conn_set_timeout(struct conn *c, unsigned ms)
{
	/* while a handshake runs, its own timeout rules */
	if (c->flags & (CONN_CLOSING | CONN_HANDSHAKE))
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

/* Clients refused by the address rules or a lockout: counted, and the
 * counts logged once a minute at most (a refused flood must not flood the
 * log; each lockout's start is logged once by lib/runner.c). */
static void refused_note(struct net *n, const char *listener, int locked)
{
	uint64_t now = uv_now(n->loop);

	if (locked)
		n->refused_locked++;
	else
		n->refused_denied++;
	if (n->refused_ms && now - n->refused_ms < 60000)
		return;
	log_warn("net", NULL, "clients refused listener=%s denied=%u locked_out=%u", listener, n->refused_denied,
		 n->refused_locked);
	n->refused_ms = now;
	n->refused_denied = n->refused_locked = 0;
}

/* Why a client is refused by its address, or NULL: the listener's rules
 * (deny wins; with allow rules, only those), then the lockout.
 * *locked_r says which. */
static const char *address_refused(struct lgroup *l, const char *peer, int *locked_r)
{
	struct net *n = l->net;

	*locked_r = 0;
	if (l->lim.n_deny && cidr_match_any(l->lim.deny, l->lim.n_deny, peer))
		return "denied";
	if (l->lim.n_allow && !cidr_match_any(l->lim.allow, l->lim.n_allow, peer))
		return "not allowed";
	if (n->lockout && lockout_locked_until(n->lockout, peer, lockout_now_ms())) {
		*locked_r = 1;
		return "locked out";
	}
	return NULL;
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

/* An accepted socket becomes a connection of the net: its timers, its
 * (empty) buffers, a session id, a place in the list. */
static void conn_register(struct conn *c)
{
	struct net *n = c->net;

	uv_timer_init(n->loop, &c->timer);
	uv_timer_init(n->loop, &c->resume);
	c->timer.data = c->resume.data = c;
	c->handles_open = 3;
	buf_init(&c->in, n->lim.input_max);
	buf_init(&c->out, n->lim.output_max);
	c->start_ms = uv_now(n->loop);
	make_sid(c->sid);
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	n->n_conns++;
}

/* Says reply (when it can be said cheaply) and closes: no session, no TLS
 * handshake. Counted with the busy replies (max_busy): a flood of refused
 * clients is closed without a word past it, as on implicit-TLS listeners
 * (a reply there would cost a handshake). */
static void refuse_client(struct conn *c, const char *why, const char *reply, int fd)
{
	struct net *n = c->net;
	struct lgroup *l = c->g;

	if (!reply || n->n_busy >= n->lim.max_busy || l->tls_mode == TLS_MODE_IMPLICIT ||
	    (n->lim.fd_limit && fd >= 0 && (unsigned)fd + n->lim.fd_reserve >= n->lim.fd_limit)) {
		uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
		return;
	}
	conn_register(c);
	c->flags |= CONN_BUSY_REJECT | CONN_REFUSED;
	n->n_busy++;
	conn_write(c, reply, strlen(reply));
	conn_set_timeout(c, 10000);
	conn_close(c, why);
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
	c->tp = &plain_transport;
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
	{
		int locked;
		const char *why = address_refused(l, c->peer, &locked);

		if (why) {
			refused_note(n, l->name, locked);
			log_debug("net", NULL, "client refused listener=%s client=%s reason=%s", l->name, c->peer, why);
			refuse_client(c, why, locked ? l->h->locked_reply : l->h->denied_reply, fd);
			return;
		}
	}
	refuse = over_limits(l, c->peer, fd);
	/* Far past the limits nobody is told why: even the reply costs, and
	 * the last fd_reserve descriptors belong to the files of the
	 * sessions already open. On an implicit-TLS listener the busy reply
	 * would cost a handshake: the newcomer is closed at once. */
	if (refuse && (n->n_busy >= n->lim.max_busy || l->tls_mode == TLS_MODE_IMPLICIT ||
		       (n->lim.fd_limit && (unsigned)fd + n->lim.fd_reserve >= n->lim.fd_limit))) {
		warn_closed(n, l->name, refuse);
		uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
		return;
	}
	conn_register(c);
	uv_tcp_nodelay(&c->tcp, 1);
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
	if (l->tls_mode == TLS_MODE_IMPLICIT) {
		/* the session is opened once the handshake is done */
		tls_begin(c);
		return;
	}
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
	g->handshake_ms = 30000;
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

void net_set_tls(struct net *n, const char *listener_name, enum tls_mode mode, struct tls_creds *creds,
		 unsigned handshake_ms)
{
	for (struct lgroup *g = n->groups; g; g = g->next) {
		if (strcmp(g->name, listener_name) != 0)
			continue;
		if (creds)
			tls_creds_ref(creds);
		/* connections already in TLS keep the credentials they hold */
		tls_creds_unref(&g->creds);
		g->creds = creds;
		g->tls_mode = creds ? mode : TLS_MODE_NONE;
		if (handshake_ms)
			g->handshake_ms = handshake_ms;
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
		if (c->session && c->h->shutdown && !(c->flags & (CONN_CLOSING | CONN_TLS_PENDING | CONN_HANDSHAKE)))
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
