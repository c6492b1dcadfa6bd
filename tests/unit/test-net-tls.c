/*
 * Unit tests for the TLS transport of lib/net.c on real loopback sockets,
 * built like test-net.c: a libuv loop runs a line protocol in this thread,
 * a client thread talks to it with blocking sockets and a GnuTLS client
 * session. The client checks each case as it goes; what it needs of the
 * server's side (the lines a session took, what tls_started saw) it copies
 * on the loop thread through run_on_loop(), so no state is shared between
 * the threads without a lock.
 *
 * The client trusts the two test certificates as its only trust anchors and
 * verifies the server's certificate for "localhost" (GnuTLS's
 * gnutls_session_set_verify_cert); the reload case also compares the DER of
 * the certificate it got.
 *
 * What is checked: STARTTLS (the reply goes out in clear, then the
 * handshake), lines over TLS cut every way (1-byte records, ciphertext
 * written one byte at a time, one big record), nothing pipelined behind
 * STARTTLS ever reaching the protocol, implicit TLS (open() only after the
 * handshake), the handshake timeout, garbage and weak clients refused,
 * back-pressure and input_max with TLS, close_notify from either side, and
 * a credentials reload that leaves open sessions alone.
 */

#include <errno.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/net.h"
#include "lib/tls-creds.h"

#include "tests/common/check.h"
#include "tests/common/loop-client.h"
#include "tests/common/tls-test-cert.h"

#define INPUT_MAX 64
#define OUTPUT_HIGH 4096
#define MAX_SESSIONS 64
#define HANDSHAKE_MS 300

/* ---- the server side: a line protocol ---- */

/*
 * Greets with "hi\n", takes one line per input call ("\n" ends it) and
 * answers "ok LINE\n". A held part of a line is left in the connection; a
 * full input buffer without a line end is taken as one "long" line.
 * Commands:
 *   STARTTLS  answer "go\n", conn_start_tls(), return at once
 *   BIG n     answer with n bytes of 'x' then "\n"
 *   QUIT      answer and close
 */
struct tsession {
	struct conn *c;
	char listener[16];
	struct buf log;         /* the lines taken, each + "\n" */
	int tls_at_open;        /* conn_tls_info() was set when open() ran */
	char open_version[16];
	int tls_started;        /* calls of tls_started */
	char version[16];       /* conn_tls_info() at tls_started */
	char cb[32];            /* its channel binding: "type/length" */
	char cipher[96];
	int closed;
	size_t max_held;        /* most bytes passed in one input call */
	size_t max_pending;     /* most output queued at an input call */
	int end_early;          /* "end" taken before the client read anything */
};

static struct tsession *sessions[MAX_SESSIONS];
static int n_sessions;
static atomic_int client_reading;
static uv_loop_t loop;
static struct net *net;

static void *t_open(struct conn *c, void *ctx)
{
	struct tsession *s = calloc(1, sizeof(*s));
	const struct tls_info *ti = conn_tls_info(c);

	(void)ctx;
	s->c = c;
	snprintf(s->listener, sizeof(s->listener), "%s", conn_listener(c));
	buf_init(&s->log, 0);
	s->tls_at_open = ti != NULL;
	if (ti)
		snprintf(s->open_version, sizeof(s->open_version), "%s", ti->version);
	if (n_sessions < MAX_SESSIONS)
		sessions[n_sessions++] = s;
	conn_write(c, "hi\n", 3);
	return s;
}

static void answer(struct tsession *s, const char *line, size_t len)
{
	conn_write(s->c, "ok ", 3);
	conn_write(s->c, line, len);
	conn_write(s->c, "\n", 1);
}

static size_t t_input(void *session, const char *data, size_t len)
{
	struct tsession *s = session;
	const char *nl;
	size_t n;

	if (len > s->max_held)
		s->max_held = len;
	if (conn_output_pending(s->c) > s->max_pending)
		s->max_pending = conn_output_pending(s->c);
	nl = memchr(data, '\n', len);
	if (!nl) {
		if (len < INPUT_MAX)
			return 0;
		buf_adds(&s->log, "long\n");
		conn_write(s->c, "long\n", 5);
		return len;
	}
	n = (size_t)(nl - data);
	buf_add(&s->log, data, n);
	buf_addch(&s->log, '\n');
	if (n == 8 && memcmp(data, "STARTTLS", 8) == 0) {
		conn_write(s->c, "go\n", 3);
		conn_start_tls(s->c);
		return n + 1;
	}
	if (n > 4 && memcmp(data, "BIG ", 4) == 0) {
		size_t big = strtoul(data + 4, NULL, 10);
		char *x = malloc(big + 1);

		memset(x, 'x', big);
		x[big] = '\n';
		conn_write(s->c, x, big + 1);
		free(x);
		return n + 1;
	}
	if (n == 3 && memcmp(data, "end", 3) == 0)
		s->end_early = !client_reading;
	answer(s, data, n);
	if (n == 4 && memcmp(data, "QUIT", 4) == 0)
		conn_close(s->c, "quit");
	return n + 1;
}

static void t_tls_started(void *session)
{
	struct tsession *s = session;
	const struct tls_info *ti = conn_tls_info(s->c);

	s->tls_started++;
	snprintf(s->version, sizeof(s->version), "%s", ti ? ti->version : "(null)");
	snprintf(s->cipher, sizeof(s->cipher), "%s", ti ? ti->cipher : "(null)");
	snprintf(s->cb, sizeof(s->cb), "%s/%u", ti ? ti->cb_type : "", ti ? ti->cb_len : 0);
}

/* This protocol never waits for anything: input it leaves at the client's
 * end is an unfinished line. */
static int t_busy(void *session)
{
	(void)session;
	return 0;
}

static void t_shutdown(void *session)
{
	struct tsession *s = session;

	conn_close(s->c, "shutdown");
}

static void t_closed(void *session)
{
	struct tsession *s = session;

	s->closed = 1;
}

static const struct proto_handler handler = {
	.name = "test",
	.open = t_open,
	.input = t_input,
	.shutdown = t_shutdown,
	.closed = t_closed,
	.tls_started = t_tls_started,
	.busy = t_busy,
};

/* ---- calls from the client thread into the loop ---- */

static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t call_cv = PTHREAD_COND_INITIALIZER;
static void (*call_fn)(void *);
static void *call_arg;
static int call_done;
static uv_async_t call_async;

static void on_call(uv_async_t *a)
{
	void (*fn)(void *);
	void *arg;

	(void)a;
	pthread_mutex_lock(&call_mu);
	fn = call_fn;
	arg = call_arg;
	call_fn = NULL;
	pthread_mutex_unlock(&call_mu);
	if (!fn)
		return;
	fn(arg);
	pthread_mutex_lock(&call_mu);
	call_done = 1;
	pthread_cond_signal(&call_cv);
	pthread_mutex_unlock(&call_mu);
}

/* Runs fn(arg) on the loop thread and waits for it. */
static void run_on_loop(void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&call_mu);
	call_fn = fn;
	call_arg = arg;
	call_done = 0;
	pthread_mutex_unlock(&call_mu);
	uv_async_send(&call_async);
	pthread_mutex_lock(&call_mu);
	while (!call_done)
		pthread_cond_wait(&call_cv, &call_mu);
	pthread_mutex_unlock(&call_mu);
}

/* A copy of one session's state, made on the loop thread. */
struct snap {
	int index;              /* in: which session */
	int count;              /* sessions opened so far */
	int exists;
	char listener[16];
	char log[512 * 1024];
	size_t log_len;
	int tls_at_open;
	char open_version[16];
	int tls_started;
	char version[16];
	char cb[32];
	char cipher[96];
	int closed;
	size_t max_held, max_pending;
	int end_early;
};

static void do_snap(void *arg)
{
	struct snap *p = arg;
	struct tsession *s;

	p->count = n_sessions;
	p->exists = p->index >= 0 && p->index < n_sessions;
	if (!p->exists)
		return;
	s = sessions[p->index];
	snprintf(p->listener, sizeof(p->listener), "%s", s->listener);
	p->log_len = s->log.len < sizeof(p->log) - 1 ? s->log.len : sizeof(p->log) - 1;
	if (p->log_len)
		memcpy(p->log, s->log.data, p->log_len);
	p->log[p->log_len] = '\0';
	p->tls_at_open = s->tls_at_open;
	memcpy(p->open_version, s->open_version, sizeof(p->open_version));
	p->tls_started = s->tls_started;
	memcpy(p->version, s->version, sizeof(p->version));
	memcpy(p->cb, s->cb, sizeof(p->cb));
	memcpy(p->cipher, s->cipher, sizeof(p->cipher));
	p->closed = s->closed;
	p->max_held = s->max_held;
	p->max_pending = s->max_pending;
	p->end_early = s->end_early;
}

static struct snap snapbuf;

static struct snap *snap(int index)
{
	snapbuf.index = index;
	run_on_loop(do_snap, &snapbuf);
	return &snapbuf;
}

static int session_count(void)
{
	return snap(-1)->count;
}

/* Waits (up to 3 s) for session index to be closed on the server. */
static int wait_session_closed(int index)
{
	for (int i = 0; i < 300; i++) {
		if (snap(index)->closed)
			return 1;
		loop_client_sleep_ms(10);
	}
	return 0;
}

/* ---- the reload, on the loop thread ---- */

static struct tls_test_cert cert1, cert2;
static struct tls_creds *creds1, *creds2;

static void do_reload(void *arg)
{
	(void)arg;
	net_set_tls(net, "implicit", TLS_MODE_IMPLICIT, creds2, 0);
}

/* ---- the client side ---- */

static int port_starttls, port_implicit, port_hs, port_hs_st;
static struct loop_client_done client_done;
static gnutls_certificate_credentials_t client_cred;

/* rcvbuf > 0: a small receive buffer. Reads time out after 10 s, so that
 * a server that never answers fails the case instead of hanging the test. */
static int client_connect(int port, int rcvbuf)
{
	return loop_client_connect(port, NULL, rcvbuf, 10);
}

/* Reads exactly len clear bytes (fewer if the peer closes or 10 s pass). */
static size_t recv_exact(int fd, char *out, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, out + got, len - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* Reads and throws away until the server closes: the milliseconds that
 * took, or -1 when it was still open after the socket's read timeout. */
static long wait_closed(int fd, long start)
{
	char tmp[4096];

	for (;;) {
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return loop_client_now_ms() - start;
		if (n < 0)
			return -1;
	}
}

struct tclient {
	int fd;
	gnutls_session_t s;
	int pieces;             /* write the ciphertext one byte at a time */
};

static ssize_t c_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct tclient *t = p;
	size_t total = 0;

	for (int i = 0; i < iovcnt; i++) {
		const char *d = iov[i].iov_base;

		for (size_t off = 0; off < iov[i].iov_len;) {
			size_t n = t->pieces ? 1 : iov[i].iov_len - off;

			loop_client_send_all(t->fd, d + off, n);
			off += n;
			if (t->pieces)
				loop_client_sleep_ms(1);
		}
		total += iov[i].iov_len;
	}
	return (ssize_t)total;
}

/* A GnuTLS client session over t->fd: GnuTLS's own reads on the socket,
 * writes through c_push (so that the ciphertext can be cut); priority
 * NULL: GnuTLS's "NORMAL". */
static void tclient_init(struct tclient *t, int fd, const char *priority)
{
	const char *errpos = NULL;
	int r;

	memset(t, 0, sizeof(*t));
	t->fd = fd;
	gnutls_init(&t->s, GNUTLS_CLIENT);
	r = gnutls_priority_set_direct(t->s, priority ? priority : "NORMAL", &errpos);
	if (r < 0) {
		printf("client priority %s: %s at %s\n", priority, gnutls_strerror(r), errpos ? errpos : "?");
		exit(2);
	}
	gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, client_cred);
	gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, "localhost", 9);
	gnutls_session_set_verify_cert(t->s, "localhost", 0);
	gnutls_transport_set_ptr2(t->s, (gnutls_transport_ptr_t)(long)fd, t);
	gnutls_transport_set_vec_push_function(t->s, c_push);
}

static int tclient_handshake(struct tclient *t)
{
	int r;

	do
		r = gnutls_handshake(t->s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	return r;
}

static void tclient_free(struct tclient *t)
{
	if (t->s)
		gnutls_deinit(t->s);
	t->s = NULL;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

static void tsend(struct tclient *t, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = gnutls_record_send(t->s, p, len);

		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0) {
			printf("client record_send: %s\n", gnutls_strerror((int)n));
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void tsends(struct tclient *t, const char *s)
{
	tsend(t, s, strlen(s));
}

/* Reads plaintext until want bytes are in out; returns the last
 * gnutls_record_recv result (> 0 when want was reached). */
static ssize_t trecv(struct tclient *t, struct buf *out, size_t want)
{
	char tmp[16384];
	ssize_t n = 1;

	long deadline = loop_client_now_ms() + 10000;

	while (out->len < want) {
		size_t ask = want - out->len < sizeof(tmp) ? want - out->len : sizeof(tmp);

		n = gnutls_record_recv(t->s, tmp, ask);
		/* TLS 1.3's post-handshake messages (the server's session
		 * tickets) make a blocking recv say "again" too; a socket read
		 * timeout says the same, hence the deadline */
		if ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) && loop_client_now_ms() < deadline)
			continue;
		if (n <= 0)
			break;
		buf_add(out, tmp, (size_t)n);
	}
	return n;
}

/* Reads want bytes and compares them with expect. */
static void texpect(struct tclient *t, const char *expect, const char *what)
{
	struct buf got = BUF_INIT(0);
	ssize_t r = trecv(t, &got, strlen(expect));

	CHECK(got.len == strlen(expect) && memcmp(got.data, expect, got.len) == 0,
	      "%s: read \"%.*s\" (%zu bytes, last %zd %s), expected \"%s\"", what, (int)(got.len > 200 ? 200 : got.len),
	      got.data ? got.data : "", got.len, r, r < 0 ? gnutls_strerror((int)r) : "", expect);
	buf_release(&got);
}

/* Connects to the STARTTLS listener and reads the greeting in clear. */
static int connect_clear(int port)
{
	char hi[4] = "";
	int fd = client_connect(port, 0);

	CHECK(recv_exact(fd, hi, 3) == 3 && memcmp(hi, "hi\n", 3) == 0, "clear greeting: \"%.3s\"", hi);
	return fd;
}

/* STARTTLS on fd (greeting read): "go\n" exactly, then the handshake. */
static int starttls(struct tclient *t, int fd, const char *priority, int pieces)
{
	char go[4] = "";
	int r;

	loop_client_send_all(fd, "STARTTLS\n", 9);
	CHECK(recv_exact(fd, go, 3) == 3 && memcmp(go, "go\n", 3) == 0, "STARTTLS reply: \"%.3s\"", go);
	tclient_init(t, fd, priority);
	t->pieces = pieces;
	r = tclient_handshake(t);
	t->pieces = 0;
	CHECK(r == 0, "STARTTLS handshake: %s", gnutls_strerror(r));
	return r;
}

/* Connects to an implicit-TLS listener and shakes hands; 0 or the error. */
static int connect_implicit(struct tclient *t, int port, const char *priority, int rcvbuf)
{
	tclient_init(t, client_connect(port, rcvbuf), priority);
	return tclient_handshake(t);
}

/* The DER of the server's certificate in t equals cert's. */
static int peer_is(struct tclient *t, const struct tls_test_cert *cert)
{
	unsigned n = 0;
	const gnutls_datum_t *d = gnutls_certificate_get_peers(t->s, &n);

	return d && n >= 1 && d[0].size == cert->cert_der.size &&
	       memcmp(d[0].data, cert->cert_der.data, d[0].size) == 0;
}

static int cipher_is_aead(const char *c)
{
	return strstr(c, "GCM") || strstr(c, "CHACHA20") || strstr(c, "CCM");
}

/* A ClientHello as a GnuTLS client writes it, for the half-hello case. */
static ssize_t hello_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
	buf_add(p, data, len);
	return (ssize_t)len;
}

static ssize_t hello_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	(void)p;
	(void)data;
	(void)len;
	errno = EAGAIN;
	return -1;
}

static void make_client_hello(struct buf *out)
{
	gnutls_session_t s;

	gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	gnutls_set_default_priority(s);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, client_cred);
	gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", 9);
	gnutls_transport_set_ptr(s, out);
	gnutls_transport_set_push_function(s, hello_push);
	gnutls_transport_set_pull_function(s, hello_pull);
	gnutls_handshake(s);
	gnutls_deinit(s);
}

/* ---- the cases ---- */

static void lines_text(struct buf *lines, struct buf *answers, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		buf_printf(lines, "%s %d\n", prefix, i);
		buf_printf(answers, "ok %s %d\n", prefix, i);
	}
}

/* 1. STARTTLS, then lines over TLS cut every way; TLS 1.3 by default. */
static void case_starttls_lines(void)
{
	struct buf lines = BUF_INIT(0), answers = BUF_INIT(0), expect = BUF_INIT(0);
	struct tclient t;
	int idx = session_count();
	struct snap *p;

	lines_text(&lines, &answers, "line", 20);
	/* the ClientHello and the rest of the handshake in 1-byte writes */
	starttls(&t, connect_clear(port_starttls), NULL, 1);
	CHECK(peer_is(&t, &cert1), "starttls: not the first certificate");
	/* 1-byte records */
	for (size_t i = 0; i < lines.len; i++)
		tsend(&t, lines.data + i, 1);
	texpect(&t, answers.data, "starttls: 1-byte records");
	/* one record written to the socket one byte at a time */
	t.pieces = 1;
	tsend(&t, lines.data, lines.len);
	t.pieces = 0;
	texpect(&t, answers.data, "starttls: ciphertext in 1-byte writes");
	/* everything in one write, twice over */
	buf_reset(&expect);
	buf_add(&expect, lines.data, lines.len);
	buf_add(&expect, lines.data, lines.len);
	tsend(&t, expect.data, expect.len);
	buf_reset(&expect);
	buf_add(&expect, answers.data, answers.len);
	buf_add(&expect, answers.data, answers.len);
	texpect(&t, expect.data, "starttls: one big write");
	tsends(&t, "QUIT\n");
	texpect(&t, "ok QUIT\n", "starttls: quit");

	p = snap(idx);
	buf_reset(&expect);
	buf_adds(&expect, "STARTTLS\n");
	for (int i = 0; i < 4; i++)
		buf_add(&expect, lines.data, lines.len);
	buf_adds(&expect, "QUIT\n");
	CHECK(p->exists && strcmp(p->log, expect.data) == 0, "starttls: server took\n%s\nexpected\n%s", p->log,
	      expect.data);
	CHECK(p->tls_started == 1, "starttls: tls_started called %d times", p->tls_started);
	CHECK(strcmp(p->version, "TLS1.3") == 0, "starttls: version %s", p->version);
	/* RFC 9266: 32 octets exported under "EXPORTER-Channel-Binding" */
	CHECK(strcmp(p->cb, "tls-exporter/32") == 0, "starttls: channel binding %s", p->cb);
	CHECK(strcmp(gnutls_protocol_get_name(gnutls_protocol_get_version(t.s)), p->version) == 0,
	      "starttls: client says %s, server %s", gnutls_protocol_get_name(gnutls_protocol_get_version(t.s)),
	      p->version);
	CHECK(p->max_held <= INPUT_MAX, "starttls: %zu bytes passed at once", p->max_held);
	tclient_free(&t);
	buf_release(&lines);
	buf_release(&answers);
	buf_release(&expect);
}

/* 2. A client that forces TLS 1.2 gets TLS 1.2 with an AEAD suite. */
static void case_starttls_tls12(void)
{
	struct tclient t;
	int idx = session_count();
	struct snap *p;

	starttls(&t, connect_clear(port_starttls), "NORMAL:-VERS-ALL:+VERS-TLS1.2", 0);
	tsends(&t, "a\n");
	texpect(&t, "ok a\n", "tls1.2");
	p = snap(idx);
	CHECK(p->tls_started == 1, "tls1.2: tls_started called %d times", p->tls_started);
	CHECK(strcmp(p->version, "TLS1.2") == 0, "tls1.2: version %s", p->version);
	/* RFC 5929: the first Finished message, 12 octets */
	CHECK(strcmp(p->cb, "tls-unique/12") == 0, "tls1.2: channel binding %s", p->cb);
	CHECK(cipher_is_aead(p->cipher), "tls1.2: cipher %s is not AEAD", p->cipher);
	CHECK(strcmp(p->log, "STARTTLS\na\n") == 0, "tls1.2: server took %s", p->log);
	tclient_free(&t);
}

/* 3. Lines pipelined behind STARTTLS in clear are thrown away. */
static void case_injection(void)
{
	struct tclient t;
	char go[4] = "";
	int fd = connect_clear(port_starttls), r;
	int idx = session_count() - 1;
	struct snap *p;

	loop_client_send_all(fd, "STARTTLS\nINJECTED\n", 18);
	CHECK(recv_exact(fd, go, 3) == 3 && memcmp(go, "go\n", 3) == 0, "injection: STARTTLS reply \"%.3s\"", go);
	tclient_init(&t, fd, NULL);
	r = tclient_handshake(&t);
	CHECK(r == 0, "injection: handshake %s", gnutls_strerror(r));
	tsends(&t, "hello\n");
	texpect(&t, "ok hello\n", "injection: first reply over TLS");
	p = snap(idx);
	CHECK(!strstr(p->log, "INJECTED"), "injection: the protocol took %s", p->log);
	CHECK(strcmp(p->log, "STARTTLS\nhello\n") == 0, "injection: server took\n%s", p->log);
	CHECK(p->tls_started == 1, "injection: tls_started %d", p->tls_started);
	tclient_free(&t);
}

/* 4. Implicit TLS: no session before the handshake, the greeting encrypted. */
static void case_implicit(void)
{
	struct tclient t;
	char c;
	int idx = session_count(), r;
	struct snap *p;

	tclient_init(&t, client_connect(port_implicit, 0), NULL);
	loop_client_sleep_ms(100);
	CHECK(session_count() == idx, "implicit: a session opened before the handshake");
	CHECK(recv(t.fd, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "implicit: the server spoke first in clear");
	r = tclient_handshake(&t);
	CHECK(r == 0, "implicit: handshake %s", gnutls_strerror(r));
	texpect(&t, "hi\n", "implicit: greeting");
	tsends(&t, "x\n");
	texpect(&t, "ok x\n", "implicit: line");
	p = snap(idx);
	CHECK(p->exists && strcmp(p->listener, "implicit") == 0, "implicit: session %d is %s", idx, p->listener);
	CHECK(p->tls_at_open && strcmp(p->open_version, "TLS1.3") == 0, "implicit: open() before TLS (%d %s)",
	      p->tls_at_open, p->open_version);
	CHECK(p->tls_started == 0, "implicit: tls_started called %d times", p->tls_started);
	CHECK(strcmp(p->log, "x\n") == 0, "implicit: server took %s", p->log);
	tclient_free(&t);
}

/* 5. A stalled handshake is cut at handshake_ms. */
static void case_handshake_timeout(void)
{
	struct buf hello = BUF_INIT(0);
	char go[4] = "";
	long start, took;
	int fd, idx = session_count();

	/* nothing at all on an implicit listener */
	fd = client_connect(port_hs, 0);
	start = loop_client_now_ms();
	took = wait_closed(fd, start);
	close(fd);
	CHECK(took >= HANDSHAKE_MS - 5 && took < 3000, "timeout, silent client: closed after %ld ms", took);

	/* half a ClientHello */
	make_client_hello(&hello);
	CHECK(hello.len > 100 && (unsigned char)hello.data[0] == 0x16, "timeout: no ClientHello made (%zu bytes)",
	      hello.len);
	fd = client_connect(port_hs, 0);
	start = loop_client_now_ms();
	loop_client_send_all(fd, hello.data, hello.len / 2);
	took = wait_closed(fd, start);
	close(fd);
	CHECK(took >= HANDSHAKE_MS - 5 && took < 3000, "timeout, half a ClientHello: closed after %ld ms", took);
	CHECK(session_count() == idx, "timeout: a session opened on the implicit listener");

	/* after STARTTLS, nothing */
	fd = connect_clear(port_hs_st);
	loop_client_send_all(fd, "STARTTLS\n", 9);
	CHECK(recv_exact(fd, go, 3) == 3 && memcmp(go, "go\n", 3) == 0, "timeout: STARTTLS reply \"%.3s\"", go);
	start = loop_client_now_ms();
	took = wait_closed(fd, start);
	close(fd);
	CHECK(took >= HANDSHAKE_MS - 5 && took < 3000, "timeout after STARTTLS: closed after %ld ms", took);
	CHECK(wait_session_closed(idx), "timeout after STARTTLS: session not closed");
	CHECK(snap(idx)->tls_started == 0, "timeout after STARTTLS: tls_started called");
	buf_release(&hello);
}

/* 6. Garbage on an implicit listener: closed at once (well before the
 * listener's 30 s handshake timeout); the server goes on. */
static void case_garbage(void)
{
	static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	unsigned char junk[1024], hdr[5 + 255];
	unsigned x = 2463534242u;
	struct tclient t;
	long took;
	int fd, idx = session_count(), r;

	for (size_t i = 0; i < sizeof(junk); i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		junk[i] = (unsigned char)x;
	}
	/* no record type and no SSLv2 length (which would make GnuTLS wait
	 * for up to 32 KiB more) */
	junk[0] = 0x00;
	fd = client_connect(port_implicit, 0);
	loop_client_send_all(fd, junk, sizeof(junk));
	took = wait_closed(fd, loop_client_now_ms());
	close(fd);
	CHECK(took >= 0 && took < 3000, "garbage, random bytes: closed after %ld ms", took);

	/* a handshake record holding a ClientHello of random bytes (a random
	 * handshake length would make GnuTLS wait for more records) */
	memcpy(hdr, "\x16\x03\x01\x00\xff\x01\x00\x00\xfb", 9);
	memcpy(hdr + 9, junk + 1, 251);
	fd = client_connect(port_implicit, 0);
	loop_client_send_all(fd, hdr, sizeof(hdr));
	took = wait_closed(fd, loop_client_now_ms());
	close(fd);
	CHECK(took >= 0 && took < 3000, "garbage, random handshake record: closed after %ld ms", took);

	fd = client_connect(port_implicit, 0);
	loop_client_send_all(fd, http, strlen(http));
	took = wait_closed(fd, loop_client_now_ms());
	close(fd);
	CHECK(took >= 0 && took < 3000, "garbage, HTTP request: closed after %ld ms", took);
	CHECK(session_count() == idx, "garbage: %d sessions opened", session_count() - idx);

	r = connect_implicit(&t, port_implicit, NULL, 0);
	CHECK(r == 0, "after garbage: handshake %s", gnutls_strerror(r));
	texpect(&t, "hi\n", "after garbage: greeting");
	tsends(&t, "still\n");
	texpect(&t, "ok still\n", "after garbage: line");
	tclient_free(&t);
}

/* 7. Clients that offer only TLS 1.1, or only CBC suites, are refused. */
static void case_weak_clients(void)
{
	static const char *const prios[] = {
		"NORMAL:-VERS-ALL:+VERS-TLS1.1",
		"NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:-MAC-ALL:+SHA1",
	};
	int idx = session_count();

	for (size_t i = 0; i < sizeof(prios) / sizeof(prios[0]); i++) {
		struct tclient t;
		int r = connect_implicit(&t, port_implicit, prios[i], 0);

		CHECK(r < 0, "weak client %s: handshake succeeded (%s %s)", prios[i],
		      gnutls_protocol_get_name(gnutls_protocol_get_version(t.s)), gnutls_ciphersuite_get(t.s));
		/* refused by the server (an alert or a close), not by the
		 * client's own configuration before anything was sent */
		CHECK(r == GNUTLS_E_FATAL_ALERT_RECEIVED || r == GNUTLS_E_PREMATURE_TERMINATION ||
			      r == GNUTLS_E_PULL_ERROR || r == GNUTLS_E_UNSUPPORTED_VERSION_PACKET,
		      "weak client %s: failed with %s (%d)", prios[i], gnutls_strerror(r), r);
		if (r == GNUTLS_E_FATAL_ALERT_RECEIVED)
			printf("weak client %s: server alert %s\n", prios[i],
			       gnutls_alert_get_name(gnutls_alert_get(t.s)));
		tclient_free(&t);
	}
	CHECK(session_count() == idx, "weak clients: %d sessions opened", session_count() - idx);
}

/* 8. Back-pressure through output_high with TLS: 13 MB of answers while
 * the client reads nothing for a while; "end" must wait. */
static void case_big_output(void)
{
	static const char cmds[] = "BIG 1000000\nBIG 6000000\nBIG 6000000\nend\n";
	const size_t sizes[] = { 1000000, 6000000, 6000000 };
	size_t want = 1000001 + 6000001 + 6000001 + strlen("ok end\n"), off = 0;
	struct buf got = BUF_INIT(0);
	struct tclient t;
	int idx = session_count(), r, ok = 1;
	struct snap *p;

	r = connect_implicit(&t, port_implicit, NULL, 4096);
	CHECK(r == 0, "big output: handshake %s", gnutls_strerror(r));
	texpect(&t, "hi\n", "big output: greeting");
	tsends(&t, cmds);
	loop_client_sleep_ms(300);
	client_reading = 1;
	trecv(&t, &got, want);
	CHECK(got.len == want, "big output: read %zu bytes, expected %zu", got.len, want);
	for (size_t i = 0; i < 3 && ok && got.len == want; i++) {
		for (size_t k = 0; k < sizes[i]; k++)
			ok &= got.data[off + k] == 'x';
		ok &= got.data[off + sizes[i]] == '\n';
		off += sizes[i] + 1;
	}
	CHECK(ok && got.len == want && memcmp(got.data + off, "ok end\n", 7) == 0, "big output: wrong bytes");
	p = snap(idx);
	CHECK(!p->end_early, "big output: input taken while the output was over output_high");
	CHECK(p->max_pending <= OUTPUT_HIGH, "big output: input passed with %zu bytes queued", p->max_pending);
	CHECK(strcmp(p->log, cmds) == 0, "big output: server took %s", p->log);
	tclient_free(&t);
	buf_release(&got);
}

static size_t first_difference(const struct buf *a, const struct buf *b)
{
	size_t i = 0;

	while (i < a->len && i < b->len && a->data[i] == b->data[i])
		i++;
	return i;
}

struct reader {
	struct tclient *t;
	struct buf got;
	size_t want;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	trecv(rd->t, &rd->got, rd->want);
	return NULL;
}

/* 9. 200 KiB of lines in one go, input_max 64: every line answered. */
static void case_big_input(void)
{
	struct buf lines = BUF_INIT(0), answers = BUF_INIT(0);
	struct reader rd = { 0 };
	struct tclient t;
	pthread_t th;
	int idx = session_count(), r;
	struct snap *p;

	for (int i = 0; lines.len < 200 * 1024; i++) {
		buf_printf(&lines, "line %06d\n", i);
		buf_printf(&answers, "ok line %06d\n", i);
	}
	r = connect_implicit(&t, port_implicit, NULL, 0);
	CHECK(r == 0, "big input: handshake %s", gnutls_strerror(r));
	texpect(&t, "hi\n", "big input: greeting");
	rd.t = &t;
	rd.want = answers.len;
	pthread_create(&th, NULL, reader_main, &rd);
	tsend(&t, lines.data, lines.len);
	pthread_join(th, NULL);
	CHECK(rd.got.len == answers.len && memcmp(rd.got.data, answers.data, answers.len) == 0,
	      "big input: read %zu bytes of %zu, first difference at %zu", rd.got.len, answers.len,
	      first_difference(&rd.got, &answers));
	p = snap(idx);
	CHECK(p->log_len == lines.len && strcmp(p->log, lines.data) == 0, "big input: server took %zu bytes of %zu",
	      p->log_len, lines.len);
	CHECK(p->max_held <= INPUT_MAX, "big input: %zu bytes passed at once", p->max_held);
	tclient_free(&t);
	buf_release(&lines);
	buf_release(&answers);
	buf_release(&rd.got);
}

/* 10. close_notify from the client, then clear text on the socket. */
static void close_notify_case(const char *name, const char *partial)
{
	struct buf rest = BUF_INIT(0);
	struct tclient t;
	int idx = session_count(), r;
	long took;
	ssize_t n;
	struct snap *p;

	r = connect_implicit(&t, port_implicit, NULL, 0);
	CHECK(r == 0, "%s: handshake %s", name, gnutls_strerror(r));
	texpect(&t, "hi\n", name);
	tsends(&t, "a\n");
	texpect(&t, "ok a\n", name);
	if (partial[0])
		tsends(&t, partial);
	r = gnutls_bye(t.s, GNUTLS_SHUT_WR);
	CHECK(r == 0, "%s: bye %s", name, gnutls_strerror(r));
	loop_client_send_all(t.fd, "CLEAR\n", 6);
	/* the server answers with its own close_notify, or just closes */
	n = trecv(&t, &rest, 1);
	CHECK(rest.len == 0, "%s: the server sent \"%s\" after close_notify", name, rest.data);
	took = wait_closed(t.fd, loop_client_now_ms());
	CHECK(took >= 0, "%s: the server did not close (record_recv said %zd %s)", name, n,
	      n < 0 ? gnutls_strerror((int)n) : "");
	CHECK(wait_session_closed(idx), "%s: session not closed", name);
	p = snap(idx);
	CHECK(!strstr(p->log, "CLEAR"), "%s: the protocol took clear text: %s", name, p->log);
	CHECK(strcmp(p->log, "a\n") == 0, "%s: server took %s", name, p->log);
	tclient_free(&t);
	buf_release(&rest);
}

static void case_close_notify(void)
{
	close_notify_case("close_notify between lines", "");
	close_notify_case("close_notify in a line", "PARTIAL");
}

/* 11. QUIT over TLS: the reply, then the server's close_notify. */
static void case_quit(void)
{
	struct buf rest = BUF_INIT(0);
	struct tclient t;
	ssize_t n;
	int r;

	r = connect_implicit(&t, port_implicit, NULL, 0);
	CHECK(r == 0, "quit: handshake %s", gnutls_strerror(r));
	texpect(&t, "hi\n", "quit: greeting");
	tsends(&t, "QUIT\n");
	texpect(&t, "ok QUIT\n", "quit: reply");
	n = trecv(&t, &rest, 1);
	CHECK(n == 0 && rest.len == 0, "quit: after the reply record_recv gave %zd (%s), not close_notify", n,
	      n < 0 ? gnutls_strerror((int)n) : rest.data ? rest.data : "");
	CHECK(wait_closed(t.fd, loop_client_now_ms()) >= 0, "quit: TCP not closed");
	tclient_free(&t);
	buf_release(&rest);
}

/* 12. New credentials: open sessions keep theirs, new ones get the new. */
static void case_reload(void)
{
	struct tclient a, b;
	int r;

	r = connect_implicit(&a, port_implicit, NULL, 0);
	CHECK(r == 0, "reload: handshake a %s", gnutls_strerror(r));
	texpect(&a, "hi\n", "reload: greeting a");
	CHECK(peer_is(&a, &cert1), "reload: a did not get the first certificate");
	tsends(&a, "before\n");
	texpect(&a, "ok before\n", "reload: a before");

	run_on_loop(do_reload, NULL);

	tsends(&a, "after\n");
	texpect(&a, "ok after\n", "reload: a after the reload");
	r = connect_implicit(&b, port_implicit, NULL, 0);
	CHECK(r == 0, "reload: handshake b %s", gnutls_strerror(r));
	texpect(&b, "hi\n", "reload: greeting b");
	CHECK(peer_is(&b, &cert2), "reload: b did not get the second certificate");
	CHECK(!peer_is(&b, &cert1), "reload: b got the first certificate");
	tsends(&b, "b\n");
	texpect(&b, "ok b\n", "reload: b line");
	/* a again, with the big record sizes too */
	tsends(&a, "again\nBIG 70000\n");
	texpect(&a, "ok again\n", "reload: a again");
	{
		struct buf got = BUF_INIT(0);

		trecv(&a, &got, 70001);
		CHECK(got.len == 70001 && got.data[70000] == '\n', "reload: a BIG read %zu bytes", got.len);
		buf_release(&got);
	}
	tsends(&a, "QUIT\n");
	texpect(&a, "ok QUIT\n", "reload: a quit");
	tsends(&b, "QUIT\n");
	texpect(&b, "ok QUIT\n", "reload: b quit");
	tclient_free(&a);
	tclient_free(&b);
}

struct tcase {
	const char *name;
	void (*fn)(void);
};

static const struct tcase cases[] = {
	{ "starttls-lines", case_starttls_lines },
	{ "starttls-tls12", case_starttls_tls12 },
	{ "injection", case_injection },
	{ "implicit", case_implicit },
	{ "handshake-timeout", case_handshake_timeout },
	{ "garbage", case_garbage },
	{ "weak-clients", case_weak_clients },
	{ "big-output", case_big_output },
	{ "big-input", case_big_input },
	{ "close-notify", case_close_notify },
	{ "quit", case_quit },
	{ "reload", case_reload },
};

static int cases_failed;

static void *client(void *arg)
{
	const char *only = arg;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int before = failures;

		if (only && strcmp(only, cases[i].name) != 0)
			continue;
		cases[i].fn();
		printf("%s %s\n", failures == before ? "PASS" : "FAIL", cases[i].name);
		fflush(stdout);
		if (failures != before)
			cases_failed++;
	}
	loop_client_done_send(&client_done);
	return NULL;
}

/* ---- running it ---- */

static int listen_on(const char *name, enum tls_mode mode, unsigned hs_ms)
{
	struct listen_limits ll = {
		.max_connections = 100,
		.max_connections_per_ip = 100,
		.max_unauthenticated = 100,
	};
	struct listen_addr a;
	char err[256], bound[80];

	if (config_parse_address("127.0.0.1:0", &a, err, sizeof(err)) < 0 ||
	    net_listen(net, &a, name, &ll, &handler, NULL, bound, err, sizeof(err)) < 0) {
		printf("cannot listen: %s\n", err);
		exit(2);
	}
	net_set_tls(net, name, mode, creds1, hs_ms);
	return atoi(strrchr(bound, ':') + 1);
}

static struct tls_creds *make_creds(const struct tls_test_cert *cert)
{
	struct tls_cert_config cc = { .name = "", .line = 1 };
	struct tls_creds *c = NULL;
	char err[256];

	cc.certificate = (char *)cert->cert_path;
	cc.key = (char *)cert->key_path;
	if (tls_creds_new(&cc, 1, NULL, &c, err, sizeof(err)) < 0) {
		printf("tls_creds_new: %s\n", err);
		exit(2);
	}
	return c;
}

int main(int argc, char **argv)
{
	struct net_limits lim = {
		.input_max = INPUT_MAX,
		.output_high = OUTPUT_HIGH,
		.output_max = 16 * 1024 * 1024,
	};
	const char *lvl = getenv("TEST_NET_TLS_LOG");
	enum log_level level = LOG_ERROR;
	pthread_t th;

	if (lvl && log_parse_level(lvl, &level) < 0)
		level = LOG_DEBUG;
	log_set_level(level);
	if (tls_test_cert_make(&cert1, "localhost") < 0 || tls_test_cert_make(&cert2, "localhost") < 0)
		return 2;
	creds1 = make_creds(&cert1);
	creds2 = make_creds(&cert2);
	gnutls_certificate_allocate_credentials(&client_cred);
	if (gnutls_certificate_set_x509_trust_mem(client_cred, &cert1.cert_pem, GNUTLS_X509_FMT_PEM) != 1 ||
	    gnutls_certificate_set_x509_trust_mem(client_cred, &cert2.cert_pem, GNUTLS_X509_FMT_PEM) != 1) {
		printf("cannot trust the test certificates\n");
		return 2;
	}

	uv_loop_init(&loop);
	net = net_new(&loop, &lim);
	port_starttls = listen_on("starttls", TLS_MODE_STARTTLS, 0);
	port_implicit = listen_on("implicit", TLS_MODE_IMPLICIT, 0);
	port_hs = listen_on("hs", TLS_MODE_IMPLICIT, HANDSHAKE_MS);
	port_hs_st = listen_on("hs-st", TLS_MODE_STARTTLS, HANDSHAKE_MS);
	loop_client_done_init(&client_done, &loop, net, (uv_handle_t *)&call_async);
	uv_async_init(&loop, &call_async, on_call);
	pthread_create(&th, NULL, client, argc > 1 ? argv[1] : NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	CHECK(client_done.stopped, "net_shutdown did not finish");
	for (int i = 0; i < n_sessions; i++)
		CHECK(sessions[i]->closed, "session %d (%s) not closed", i, sessions[i]->listener);

	for (int i = 0; i < n_sessions; i++) {
		buf_release(&sessions[i]->log);
		free(sessions[i]);
	}
	net_free(&net);
	uv_loop_close(&loop);
	tls_creds_unref(&creds1);
	tls_creds_unref(&creds2);
	gnutls_certificate_free_credentials(client_cred);
	tls_test_cert_free(&cert1);
	tls_test_cert_free(&cert2);
	if (failures) {
		printf("%d failure(s) in %d case(s)\n", failures, cases_failed);
		return 1;
	}
	printf("net-tls: all cases passed\n");
	return 0;
}
