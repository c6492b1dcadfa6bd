#ifndef BUZON_TESTS_LOOP_CLIENT_H
#define BUZON_TESTS_LOOP_CLIENT_H

#include <stddef.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/net.h"

/*
 * The client side of the loopback tests of lib/net.c and lib/runner.c: a
 * libuv loop serves in the main thread while a client thread talks to it
 * with blocking sockets on 127.0.0.1. A socket call that fails makes the
 * test exit with status 2 (a broken harness, not a failed check).
 *
 * When the client thread is done it calls loop_client_done_send(); the loop
 * thread then closes the async handle (and one more handle, if given) and
 * shuts net down, so that uv_run() returns once every connection is gone.
 */

/* Connects to 127.0.0.1:port with TCP_NODELAY and returns the socket. from
 * (or NULL): the local address to bind first; rcvbuf > 0: a small receive
 * buffer, set before connecting; recv_timeout_s > 0: reads time out after
 * that many seconds, so that a server that never answers fails a case
 * instead of hanging the test. */
int loop_client_connect(int port, const char *from, int rcvbuf, int recv_timeout_s);
/* Sends all len bytes of data. */
void loop_client_send_all(int fd, const void *data, size_t len);
/* Sends the string s, without its NUL. */
void loop_client_send_str(int fd, const char *s);
/* Reads into out until it holds want bytes or the peer closed (or the
 * read timed out). */
void loop_client_recv_until(int fd, struct buf *out, size_t want);
/* Sleeps for ms milliseconds. */
void loop_client_sleep_ms(long ms);
/* A monotonic clock in milliseconds. */
long loop_client_now_ms(void);

/* The end of the client thread, seen from the loop thread. */
struct loop_client_done {
	uv_async_t async;
	struct net *net;         /* shut down with a 2 s drain */
	uv_handle_t *also;       /* closed too, or NULL */
	int stopped;             /* net_shutdown() has finished */
};

/* Initialises d on loop (the loop thread, before the client thread starts). */
void loop_client_done_init(struct loop_client_done *d, uv_loop_t *loop, struct net *net, uv_handle_t *also);
/* Client thread: it is done; wakes the loop to stop. */
void loop_client_done_send(struct loop_client_done *d);

#endif
