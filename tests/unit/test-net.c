/*
 * Unit tests for lib/net.c on real loopback sockets: a libuv loop runs a
 * line protocol in this thread, a client thread talks to it with blocking
 * sockets. What is checked is what protocols rely on: every byte reaches
 * the protocol once and in order whatever the cut of the reads; bytes the
 * protocol leaves are passed again (after more arrive, after
 * conn_resume_input(), at EOF); at most input_max bytes are held; no input
 * is passed while more than output_high bytes are queued; conn_when_drained()
 * calls back once, when the output has drained.
 */

#include <errno.h>
#include <pthread.h>
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

#include "tests/common/check.h"
#include "tests/common/loop-client.h"

#define INPUT_MAX 64
#define OUTPUT_HIGH 4096
#define MAX_SESSIONS 16

/* ---- the server side: a line protocol ---- */

/*
 * Takes one line per input call ("\n" ends it) and answers "ok LINE\n".
 * A held part of a line is left in the connection; a full input buffer
 * without a line end is taken as one "long" line. Commands:
 *   HOLD      take nothing more for 30 ms, then conn_resume_input()
 *   BIG n     answer with n bytes of 'x' then "\n"
 *   DRAIN     conn_when_drained(c, 0); the callback logs "drained"
 *   QUIT      answer and close
 */
struct tsession {
	struct conn *c;
	struct buf log;         /* the lines taken, each + "\n" */
	int busy;
	int closed;
	int drained;
	int input_calls;
	size_t max_held;        /* most bytes passed in one input call */
	size_t max_pending;     /* most output queued at an input call */
	int end_early;          /* "end" taken before client 4 read anything */
	uv_timer_t hold;
};

static struct tsession *sessions[MAX_SESSIONS];
static int n_sessions;
static _Atomic int client_reading;   /* client 4 started reading */
static uv_loop_t loop;
static struct net *net;

static void hold_done(uv_timer_t *t)
{
	struct tsession *s = t->data;

	s->busy = 0;
	if (!s->closed)
		conn_resume_input(s->c);
}

static void *t_open(struct conn *c, void *ctx)
{
	struct tsession *s = calloc(1, sizeof(*s));

	(void)ctx;
	s->c = c;
	buf_init(&s->log, 0);
	uv_timer_init(&loop, &s->hold);
	s->hold.data = s;
	if (n_sessions < MAX_SESSIONS)
		sessions[n_sessions++] = s;
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

	s->input_calls++;
	if (len > s->max_held)
		s->max_held = len;
	if (conn_output_pending(s->c) > s->max_pending)
		s->max_pending = conn_output_pending(s->c);
	if (s->busy)
		return 0;
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
	if (n == 4 && memcmp(data, "HOLD", 4) == 0) {
		s->busy = 1;
		uv_timer_start(&s->hold, hold_done, 30, 0);
	} else if (n > 4 && memcmp(data, "BIG ", 4) == 0) {
		size_t big = strtoul(data + 4, NULL, 10);
		char *x = malloc(big + 1);

		memset(x, 'x', big);
		x[big] = '\n';
		conn_write(s->c, x, big + 1);
		free(x);
		return n + 1;
	} else if (n == 3 && memcmp(data, "end", 3) == 0) {
		s->end_early = !client_reading;
	} else if (n == 5 && memcmp(data, "DRAIN", 5) == 0) {
		conn_when_drained(s->c, 0);
	}
	answer(s, data, n);
	if (n == 4 && memcmp(data, "QUIT", 4) == 0)
		conn_close(s->c, "quit");
	return n + 1;
}

static void t_shutdown(void *session)
{
	struct tsession *s = session;

	conn_close(s->c, "shutdown");
}

static void t_drained(void *session)
{
	struct tsession *s = session;

	s->drained++;
	buf_adds(&s->log, "drained\n");
}

static void t_closed(void *session)
{
	struct tsession *s = session;

	s->closed = 1;
	uv_timer_stop(&s->hold);
}

static const struct proto_handler handler = {
	.name = "test",
	.open = t_open,
	.input = t_input,
	.shutdown = t_shutdown,
	.drained = t_drained,
	.closed = t_closed,
};

/* ---- the client thread ---- */

static int port;
static struct loop_client_done client_done;

/* Sends data in pieces of 1, 2, ... 7 bytes, pausing so that the server
 * reads them one by one. */
static void send_pieces(int fd, const char *data, size_t len)
{
	size_t k = 1;

	while (len) {
		size_t n = k < len ? k : len;

		loop_client_send_all(fd, data, n);
		data += n;
		len -= n;
		k = k % 7 + 1;
		loop_client_sleep_ms(1);
	}
}

struct expect {
	const char *lines;      /* what the server should have taken */
	const char *replies;    /* what the client should have read, or NULL */
	size_t reply_len;       /* with replies NULL: this many bytes */
};

static struct expect expects[MAX_SESSIONS];
static struct buf replies[MAX_SESSIONS];
static int n_clients;

static void *client(void *arg)
{
	struct buf lines = BUF_INIT(0), answers = BUF_INIT(0), big = BUF_INIT(0);
	char *both;
	int fd, i;

	(void)arg;

	/* 1. pipelined lines, cut every way, then many in one send */
	for (i = 0; i < 40; i++) {
		buf_printf(&lines, "line %d\n", i);
		buf_printf(&answers, "ok line %d\n", i);
	}
	fd = loop_client_connect(port, NULL, 0, 0);
	send_pieces(fd, lines.data, lines.len);
	loop_client_send_all(fd, lines.data, lines.len);
	expects[n_clients].lines = both = malloc(2 * lines.len + 1);
	memcpy(both, lines.data, lines.len);
	memcpy(both + lines.len, lines.data, lines.len + 1);
	expects[n_clients].replies = both = malloc(2 * answers.len + 1);
	memcpy(both, answers.data, answers.len);
	memcpy(both + answers.len, answers.data, answers.len + 1);
	loop_client_recv_until(fd, &replies[n_clients], 2 * answers.len);
	close(fd);
	n_clients++;

	/* 2. input held by a busy session, passed again after conn_resume_input() */
	fd = loop_client_connect(port, NULL, 0, 0);
	loop_client_send_all(fd, "HOLD\na\nb\nc", 10);
	loop_client_sleep_ms(5);
	loop_client_send_all(fd, "c\n", 2);
	expects[n_clients] = (struct expect){ "HOLD\na\nb\ncc\n", "ok HOLD\nok a\nok b\nok cc\n", 0 };
	loop_client_recv_until(fd, &replies[n_clients], strlen(expects[n_clients].replies));
	close(fd);
	n_clients++;

	/* 3. at most INPUT_MAX bytes held: a longer line comes as "long" pieces */
	fd = loop_client_connect(port, NULL, 0, 0);
	buf_reset(&big);
	for (i = 0; i < 3 * INPUT_MAX + 8; i++)
		buf_addch(&big, 'y');
	send_pieces(fd, big.data, 20);
	loop_client_send_all(fd, big.data + 20, big.len - 20);
	loop_client_send_all(fd, "\nQUIT\n", 6);
	expects[n_clients] = (struct expect){ "long\nlong\nlong\nyyyyyyyy\nQUIT\n",
					      "long\nlong\nlong\nok yyyyyyyy\nok QUIT\n", 0 };
	loop_client_recv_until(fd, &replies[n_clients], 1000);
	close(fd);
	n_clients++;

	/* 4. back-pressure: no input while more than OUTPUT_HIGH is queued. The
	 * client reads nothing for a while: 12 MB of answers are more than the
	 * kernel takes (a small receive buffer here, tcp_wmem's 4 MB at most
	 * there), so "end" must wait until the client reads. */
	fd = loop_client_connect(port, NULL, 4096, 0);
	loop_client_send_all(fd, "BIG 6000000\nBIG 6000000\nend\nDRAIN\n", 34);
	loop_client_sleep_ms(300);
	expects[n_clients] = (struct expect){ "BIG 6000000\nBIG 6000000\nend\nDRAIN\ndrained\n", NULL,
					      2 * 6000001 + strlen("ok end\nok DRAIN\n") };
	client_reading = 1;
	loop_client_recv_until(fd, &replies[n_clients], expects[n_clients].reply_len);
	close(fd);
	n_clients++;

	/* 5. EOF after a last line cut in two */
	fd = loop_client_connect(port, NULL, 0, 0);
	loop_client_send_all(fd, "a\nb", 3);
	loop_client_sleep_ms(5);
	loop_client_send_all(fd, "b\n", 2);
	shutdown(fd, SHUT_WR);
	expects[n_clients] = (struct expect){ "a\nbb\n", "ok a\nok bb\n", 0 };
	loop_client_recv_until(fd, &replies[n_clients], 1000);
	close(fd);
	n_clients++;

	buf_release(&lines);
	buf_release(&answers);
	buf_release(&big);
	loop_client_done_send(&client_done);
	return NULL;
}

/* ---- running it ---- */

int main(void)
{
	struct net_limits lim = {
		.input_max = INPUT_MAX,
		.output_high = OUTPUT_HIGH,
		.output_max = 16 * 1024 * 1024,
	};
	struct listen_limits ll = {
		.max_connections = 100,
		.max_connections_per_ip = 100,
		.max_unauthenticated = 100,
	};
	struct listen_addr a;
	char err[256], bound[80];
	pthread_t th;

	log_set_level(LOG_ERROR);
	uv_loop_init(&loop);
	net = net_new(&loop, &lim);
	if (config_parse_address("127.0.0.1:0", &a, err, sizeof(err)) < 0 ||
	    net_listen(net, &a, "test", &ll, &handler, NULL, bound, err, sizeof(err)) < 0) {
		printf("cannot listen: %s\n", err);
		return 2;
	}
	port = atoi(strrchr(bound, ':') + 1);
	loop_client_done_init(&client_done, &loop, net, NULL);
	pthread_create(&th, NULL, client, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	CHECK(client_done.stopped, "net_shutdown did not finish");

	CHECK(n_sessions == n_clients, "%d sessions for %d clients", n_sessions, n_clients);
	for (int i = 0; i < n_sessions && i < n_clients; i++) {
		struct tsession *s = sessions[i];
		const struct expect *e = &expects[i];

		CHECK(s->log.data && strcmp(s->log.data, e->lines) == 0, "client %d: server took\n%s\nexpected\n%s", i + 1,
		      s->log.data ? s->log.data : "", e->lines);
		if (e->replies)
			CHECK(replies[i].data && strcmp(replies[i].data, e->replies) == 0,
			      "client %d: client read\n%s\nexpected\n%s", i + 1, replies[i].data ? replies[i].data : "",
			      e->replies);
		else
			CHECK(replies[i].len == e->reply_len, "client %d: client read %zu bytes, expected %zu", i + 1,
			      replies[i].len, e->reply_len);
		CHECK(s->max_held <= INPUT_MAX, "client %d: %zu bytes passed at once, input_max %d", i + 1,
		      s->max_held, INPUT_MAX);
		CHECK(s->max_pending <= OUTPUT_HIGH, "client %d: input passed with %zu bytes queued", i + 1,
		      s->max_pending);
		CHECK(s->closed, "client %d: session not closed", i + 1);
		CHECK(s->drained == (i == 3), "client %d: drained %d times", i + 1, s->drained);
		CHECK(!s->end_early, "client %d: input taken while the output was over the mark", i + 1);
	}
	/* the held input of client 2 was passed again without new bytes */
	CHECK(n_sessions > 1 && sessions[1]->input_calls > 4, "hold: %d input calls",
	      n_sessions > 1 ? sessions[1]->input_calls : 0);

	for (int i = 0; i < n_sessions; i++) {
		uv_close((uv_handle_t *)&sessions[i]->hold, NULL);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	for (int i = 0; i < n_sessions; i++) {
		buf_release(&sessions[i]->log);
		free(sessions[i]);
	}
	for (int i = 0; i < n_clients; i++) {
		buf_release(&replies[i]);
		if (i == 0) {
			free((char *)expects[i].lines);
			free((char *)expects[i].replies);
		}
	}
	net_free(&net);
	uv_loop_close(&loop);
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("net: %d connections, all passed\n", n_clients);
	return 0;
}
