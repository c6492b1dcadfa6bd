#include "tests/common/loop-client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/net.h"

int loop_client_connect(int port, const char *from, int rcvbuf, int recv_timeout_s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (fd >= 0 && from) {
		inet_pton(AF_INET, from, &src.sin_addr);
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			perror("bind");
			exit(2);
		}
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		perror("connect");
		exit(2);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (recv_timeout_s > 0) {
		struct timeval tv = { recv_timeout_s, 0 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

void loop_client_send_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0) {
			perror("send");
			exit(2);
		}
		p += n;
		len -= (size_t)n;
	}
}

void loop_client_send_str(int fd, const char *s)
{
	loop_client_send_all(fd, s, strlen(s));
}

void loop_client_recv_until(int fd, struct buf *out, size_t want)
{
	char tmp[65536];

	while (out->len < want) {
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);

		if (n <= 0)
			break;
		buf_add(out, tmp, (size_t)n);
	}
}

void loop_client_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

long loop_client_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void on_stopped(void *arg)
{
	struct loop_client_done *d = arg;

	d->stopped = 1;
}

static void on_done(uv_async_t *a)
{
	struct loop_client_done *d = a->data;

	uv_close((uv_handle_t *)a, NULL);
	if (d->also)
		uv_close(d->also, NULL);
	net_shutdown(d->net, 2000, on_stopped, d);
}

void loop_client_done_init(struct loop_client_done *d, uv_loop_t *loop, struct net *net, uv_handle_t *also)
{
	memset(d, 0, sizeof(*d));
	d->net = net;
	d->also = also;
	uv_async_init(loop, &d->async, on_done);
	d->async.data = d;
}

void loop_client_done_send(struct loop_client_done *d)
{
	uv_async_send(&d->async);
}
