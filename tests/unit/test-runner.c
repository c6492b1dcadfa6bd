/*
 * Unit tests for lib/runner.c on real loopback sockets: lib/net.c runs a
 * small line protocol through the runner on a libuv loop in this thread, a
 * client thread talks to it with blocking sockets. What is checked is what
 * the three protocols rely on:
 *   - a job's work runs on a worker and its after on the loop, one at a time;
 *   - a connection closed while its job waits for the login delay gets
 *     after(-ECANCELED) right after disconnected, and the work never runs;
 *   - a connection closed while its job runs keeps its memory until after,
 *     whose io calls then do nothing; the session is freed after it;
 *   - a drain asked for and never come is answered after disconnected;
 *   - release runs on a worker, once, after free;
 *   - the failed-login keys: per address and per lower-cased user name.
 */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
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
#include "lib/runner.h"

#include "tests/common/check.h"
#include "tests/common/loop-client.h"

#define MAX_CONNS 8

/* What happened to each connection, in order, as "event\n" lines. */
static struct buf events[MAX_CONNS];
static int n_conns;
static pthread_t loop_thread;
static _Atomic int released_off_loop;
static _Atomic int released_on_loop;

/* ---- the protocol ---- */

struct tsession {
	int idx;
	int pending;              /* a job or a drain is awaited */
	_Atomic int worked;       /* work ran (set on the worker) */
};

struct tconn {
	struct rconn rc;          /* first, as the runner wants */
	struct tsession *s;
};

struct tserver {
	struct runner *runner;    /* first: the handler's ctx */
};

static void ev(struct rconn *rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ev(struct rconn *rc, const char *fmt, ...)
{
	struct tsession *s = ((struct tconn *)rc)->s;
	char line[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s && s->idx < MAX_CONNS)
		buf_printf(&events[s->idx], "%s\n", line);
}

static void reply(struct rconn *rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct rconn *rc, const char *fmt, ...)
{
	char line[200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	runner_io_write(rc, line, (size_t)n);
}

static void slow_work(struct rconn *rc)
{
	struct tsession *s = ((struct tconn *)rc)->s;

	loop_client_sleep_ms(150);
	s->worked = 1;
}

static void job_after(struct rconn *rc, int status)
{
	struct tsession *s = ((struct tconn *)rc)->s;

	ev(rc, "after status=%d worked=%d conn=%s", status, s->worked, rc->conn ? "yes" : "gone");
	s->pending = 0;
	/* nothing happens once the connection is gone */
	reply(rc, "done %d\n", status);
	runner_io_resume(rc);
}

static void *t_open(struct rconn *rc, void *ctx, const struct runner_open *o)
{
	struct tconn *tc = (struct tconn *)rc;

	(void)ctx;
	tc->s = calloc(1, sizeof(*tc->s));
	tc->s->idx = n_conns++;
	ev(rc, "open tls=%d", (int)o->tls_mode);
	return tc->s;
}

/*
 * One line per call:
 *   JOB           slow work on a worker, then "done <status>"
 *   LOGIN ms      the same after a delay of ms
 *   BIG n         n bytes of output, then wait for the drain
 *   FAIL user / OK user / DELAY user   the failed-login table
 */
static size_t t_input(struct rconn *rc, const char *data, size_t len)
{
	struct tsession *s = rc->session;
	const char *nl = memchr(data, '\n', len);
	char line[128], *arg;
	size_t n;

	if (s->pending || !nl)
		return 0;
	n = (size_t)(nl - data);
	snprintf(line, sizeof(line), "%.*s", (int)n, data);
	arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	ev(rc, "input %s", line);
	if (strcmp(line, "JOB") == 0) {
		s->pending = 1;
		runner_submit(rc, slow_work, job_after, 0);
	} else if (strcmp(line, "LOGIN") == 0 && arg) {
		s->pending = 1;
		runner_submit(rc, slow_work, job_after, (unsigned)atoi(arg));
	} else if (strcmp(line, "BIG") == 0 && arg) {
		size_t big = strtoul(arg, NULL, 10);
		char *x = malloc(big);

		memset(x, 'x', big);
		runner_io_write(rc, x, big);
		free(x);
		s->pending = 1;
		runner_io_when_drained(rc, 0);
	} else if (strcmp(line, "FAIL") == 0 && arg) {
		runner_auth_result(rc, arg, 0);
		reply(rc, "ok\n");
	} else if (strcmp(line, "OK") == 0 && arg) {
		runner_auth_result(rc, arg, 1);
		reply(rc, "ok\n");
	} else if (strcmp(line, "DELAY") == 0 && arg) {
		reply(rc, "delay %u\n", runner_auth_delay(rc, arg));
	} else {
		reply(rc, "?\n");
	}
	return n + 1;
}

static void t_timeout(struct rconn *rc)
{
	runner_io_close(rc, "timeout");
}

static void t_shutdown(struct rconn *rc)
{
	runner_io_close(rc, "shutdown");
}

static void t_drained(struct rconn *rc)
{
	struct tsession *s = rc->session;

	ev(rc, "drained conn=%s", rc->conn ? "yes" : "gone");
	s->pending = 0;
}

static void t_disconnected(struct rconn *rc)
{
	ev(rc, "disconnected");
}

static int t_busy(struct rconn *rc)
{
	struct tsession *s = rc->session;

	return s->pending;
}

static int t_free(struct rconn *rc)
{
	struct tconn *tc = (struct tconn *)rc;

	ev(rc, "free");
	free(tc->s);
	tc->s = NULL;
	return 1;
}

static void t_release(struct rconn *rc)
{
	if (pthread_equal(pthread_self(), loop_thread))
		released_on_loop++;
	else
		released_off_loop++;
}

static const struct runner_proto tproto = {
	.name = "test",
	.busy_reply = "busy\r\n",
	.conn_size = sizeof(struct tconn),
	.open = t_open,
	.input = t_input,
	.timeout = t_timeout,
	.shutdown = t_shutdown,
	.drained = t_drained,
	.disconnected = t_disconnected,
	.busy = t_busy,
	.free = t_free,
	.release = t_release,
};

/* ---- the client thread ---- */

static int port;
static struct loop_client_done client_done;
static char answers[MAX_CONNS][256];

/* Reads until want lines came or the peer closed. */
static void recv_lines(int fd, char *out, size_t outlen, int want)
{
	size_t len = strlen(out);
	int lines = 0;

	for (const char *p = out; (p = strchr(p, '\n')); p++)
		lines++;
	while (lines < want && len + 1 < outlen) {
		ssize_t n = recv(fd, out + len, outlen - len - 1, 0);

		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			lines += out[len + (size_t)i] == '\n';
		len += (size_t)n;
		out[len] = '\0';
	}
}

static void *client(void *arg)
{
	int fd, k = 0;

	(void)arg;

	/* 0. a job answered while connected, then a pipelined delayed one */
	fd = loop_client_connect(port, NULL, 0, 0);
	loop_client_send_str(fd, "JOB\nLOGIN 30\n");
	recv_lines(fd, answers[k], sizeof(answers[k]), 2);
	close(fd);
	k++;

	/* 1. closed while the job waits for its login delay */
	fd = loop_client_connect(port, NULL, 0, 0);
	loop_client_send_str(fd, "LOGIN 300\n");
	loop_client_sleep_ms(50);
	close(fd);
	k++;

	/* 2. closed while the job runs on a worker */
	fd = loop_client_connect(port, NULL, 0, 0);
	loop_client_send_str(fd, "JOB\n");
	loop_client_sleep_ms(50);
	close(fd);
	k++;

	/* 3. closed while the session waits for a drain that cannot come */
	fd = loop_client_connect(port, NULL, 4096, 0);
	loop_client_send_str(fd, "BIG 4000000\n");
	loop_client_sleep_ms(100);
	close(fd);
	k++;

	/* 4./5. the failed-login keys: failures from 127.0.0.1 for "Bob" ... */
	fd = loop_client_connect(port, "127.0.0.1", 0, 0);
	loop_client_send_str(fd, "DELAY bob\nFAIL Bob\nFAIL bob\nFAIL BOB\nDELAY carol\n");
	recv_lines(fd, answers[k], sizeof(answers[k]), 5);
	close(fd);
	k++;
	/* ... count for the user name from another address, not for others */
	fd = loop_client_connect(port, "127.0.0.2", 0, 0);
	loop_client_send_str(fd, "DELAY bOb\nDELAY carol\nOK BOB\nDELAY bob\n");
	recv_lines(fd, answers[k], sizeof(answers[k]), 4);
	close(fd);
	k++;

	loop_client_sleep_ms(300);   /* the job of 2. ends */
	loop_client_done_send(&client_done);
	return NULL;
}

/* ---- running it ---- */

static struct net *net;
static const char *const expected[] = {
	"open tls=0\ninput JOB\nafter status=0 worked=1 conn=yes\ninput LOGIN\n"
	"after status=0 worked=1 conn=yes\ndisconnected\nfree\n",
	"open tls=0\ninput LOGIN\ndisconnected\nafter status=-125 worked=0 conn=gone\nfree\n",
	"open tls=0\ninput JOB\ndisconnected\nafter status=0 worked=1 conn=gone\nfree\n",
	"open tls=0\ninput BIG\ndisconnected\ndrained conn=gone\nfree\n",
	NULL,
	NULL,
};

int main(void)
{
	struct net_limits lim = {
		.input_max = 4096,
		.output_high = 64 * 1024,
		.output_max = 16 * 1024 * 1024,
	};
	struct listen_limits ll = { .max_connections = 100, .max_connections_per_ip = 100,
				    .max_unauthenticated = 100 };
	/* one free failure, then 100 ms doubling; no decay, no lockout */
	struct lockout_params lp = { .free_failures = 1, .base_ms = 100, .max_ms = 10000, .slots = 64 };
	static const unsigned char key[16] = { 1 };
	struct lockout *lk = lockout_new(&lp, key);
	struct tserver srv;
	struct listen_addr a;
	char err[256], bound[80];
	uv_loop_t loop;
	pthread_t th;

	log_set_level(LOG_ERROR);
	loop_thread = pthread_self();
	uv_loop_init(&loop);
	net = net_new(&loop, &lim);
	srv.runner = runner_new(&tproto, &loop, &srv, NULL, lk);
	CHECK(strcmp(runner_handler(srv.runner)->busy_reply, "busy\r\n") == 0, "busy reply");
	if (config_parse_address("127.0.0.1:0", &a, err, sizeof(err)) < 0 ||
	    net_listen(net, &a, "test", &ll, runner_handler(srv.runner), &srv, bound, err, sizeof(err)) < 0) {
		printf("cannot listen: %s\n", err);
		return 2;
	}
	port = atoi(strrchr(bound, ':') + 1);
	loop_client_done_init(&client_done, &loop, net, NULL);
	pthread_create(&th, NULL, client, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	CHECK(client_done.stopped, "net_shutdown did not finish");

	CHECK(n_conns == 6, "%d connections, 6 expected", n_conns);
	for (int i = 0; i < n_conns && i < MAX_CONNS; i++) {
		if (i < (int)(sizeof(expected) / sizeof(expected[0])) && expected[i])
			CHECK(events[i].data && strcmp(events[i].data, expected[i]) == 0,
			      "connection %d:\n%s\nexpected\n%s", i, events[i].data ? events[i].data : "",
			      expected[i]);
	}
	CHECK(strcmp(answers[0], "done 0\ndone 0\n") == 0, "answers 0: %s", answers[0]);
	/* one free failure, then 100 ms doubling: 3 failures give 400 ms for
	 * the address (any name) */
	CHECK(strcmp(answers[4], "delay 0\nok\nok\nok\ndelay 400\n") == 0, "answers 4: %s", answers[4]);
	/* the name's failures do not delay it from an address without
	 * failures of its own (lib/lockout.h): a correct password never waits */
	CHECK(strcmp(answers[5], "delay 0\ndelay 0\nok\ndelay 0\n") == 0, "answers 5: %s", answers[5]);
	CHECK(released_off_loop == n_conns && released_on_loop == 0, "release: %d on workers, %d on the loop",
	      (int)released_off_loop, (int)released_on_loop);

	runner_free(&srv.runner);
	lockout_free(&lk);
	net_free(&net);
	uv_loop_close(&loop);
	for (int i = 0; i < MAX_CONNS; i++)
		buf_release(&events[i]);
	if (failures)
		printf("%d failure(s)\n", failures);
	return failures != 0;
}
