#ifndef BUZON_NET_H
#define BUZON_NET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/cidr.h"
#include "lib/config.h"
#include "lib/tls-creds.h"
#include "lib/tls-types.h"

/*
 * Listeners and connections on one libuv loop.
 *
 * A struct conn owns its TCP handle, its input buffer, its write queue and
 * its idle timer; it is freed in the last close callback, never from inside
 * a protocol handler. Protocols see it only through the functions below and
 * the struct proto_handler callbacks.
 *
 * Memory of a waiting connection: its input buffer holds only the bytes the
 * protocol left (a read into an empty connection goes to one buffer shared
 * by the loop) and is freed once they are consumed; its write queue is freed
 * once handed to the kernel. An idle connection holds no heap memory
 * besides its struct.
 */

struct net;
struct conn;

struct proto_handler {
	const char *name;
	/* A connection was accepted: create the session (it may write its
	 * greeting). Returns the session, or NULL to drop the connection. */
	void *(*open)(struct conn *c, void *ctx);
	/* Bytes arrived. Returns how many were consumed; the rest stay in the
	 * connection's input buffer and are passed again after conn_resume_input()
	 * or when more bytes arrive. data is valid during the call only (it may
	 * be the loop's shared read buffer). */
	size_t (*input)(void *session, const char *data, size_t len);
	/* The idle timer fired. */
	void (*timeout)(void *session);
	/* The server is stopping: finish the current exchange and close soon. */
	void (*shutdown)(void *session);
	/* The connection is gone: the session must not call conn_* any more.
	 * The session frees itself now, or later if work is still in flight. */
	void (*closed)(void *session);
	/* Optional: the output queue went below the mark given to
	 * conn_when_drained() (one call per conn_when_drained()). */
	void (*drained)(void *session);
	/* Optional: a TLS handshake asked for with conn_start_tls() is done;
	 * conn_tls_info() tells what was agreed. The session resets the state
	 * its RFC says to forget. (On an implicit-TLS listener open() is
	 * called only after the handshake, and this is not called.) */
	void (*tls_started)(void *session);
	/* Optional: 1 while the session has a request in flight or waits for
	 * its output to drain, and so takes no input now. Once the client has
	 * closed its side, input left by a session that is not busy is an
	 * unfinished command and the connection closes; without this callback
	 * it stays until the session's own timer. */
	int (*busy)(void *session);
	/* Reply sent before closing a connection over the connection limits. */
	const char *busy_reply;
	/* Reply sent before closing a client the listener's deny/allow rules
	 * refuse (SMTP 554 5.7.1), and one whose address is locked out after
	 * failed logins (SMTP 421 4.7.0). NULL: closed without a word. */
	const char *denied_reply;
	const char *locked_reply;
};

struct net_limits {
	size_t input_max;        /* most bytes held for the protocol (default 4096) */
	size_t output_high;      /* stop reading above this much queued output */
	size_t output_max;       /* close the connection above this */
	/* Connections told "busy" at once, over all listeners (default 256):
	 * past it a newcomer is closed without a reply. */
	unsigned max_busy;
	/* The process's descriptor limit (RLIMIT_NOFILE) and how many of
	 * them accepted sockets must leave free for files, SQLite and the
	 * loop; 0: no check. Descriptors are handed out lowest first, so an
	 * accepted socket numbered fd means at most fd_limit - fd are left:
	 * within fd_reserve + max_busy of the limit the newcomer gets the
	 * busy reply instead of a session that would fail later, within
	 * fd_reserve it is closed at once. */
	unsigned fd_limit;
	unsigned fd_reserve;
};

/* The caps of one listener; each listener counts its own connections, so a
 * flood on one port never takes another's slots. */
struct listen_limits {
	unsigned max_connections;
	unsigned max_connections_per_ip;
	/* Of max_connections, how many may not have logged in yet
	 * (conn_set_authenticated); the rest is kept for those that have. */
	unsigned max_unauthenticated;
	/* Client-address rules (referenced: they must outlive the net): with
	 * allow rules only those addresses are served; deny wins. */
	const struct cidr *allow;
	size_t n_allow;
	const struct cidr *deny;
	size_t n_deny;
};

struct lockout;

struct net *net_new(uv_loop_t *loop, const struct net_limits *lim);
/* Frees a net whose connections and listeners are all closed. */
void net_free(struct net **n);
/* Refuses clients that lk (lib/lockout.h, referenced) has locked out, at
 * accept, before any TLS handshake and before a session exists. */
void net_set_lockout(struct net *n, struct lockout *lk);
/* Binds and listens on a; the actual address (port 0 = a free port) is
 * written to bound_r (size 80). 0 or -1 with a reason in err. h may be
 * NULL until net_set_handler() (the server listens as root, then drops
 * privileges and opens its storage before the loop accepts anything). */
int net_listen(struct net *n, const struct listen_addr *a, const char *listener_name,
	       const struct listen_limits *ll, const struct proto_handler *h, void *ctx, char *bound_r,
	       char *err, size_t errlen);
/* Sets the protocol of every listener called listener_name. */
void net_set_handler(struct net *n, const char *listener_name, const struct proto_handler *h, void *ctx);
/* Sets how the listeners called listener_name use TLS: mode, and creds
 * (referenced; NULL: no TLS, mode becomes none) for the handshakes that
 * start from now on; connections already in TLS keep theirs (a reload
 * replaces certificates this way). handshake_ms bounds a handshake (0:
 * unchanged; 30 s until set). */
void net_set_tls(struct net *n, const char *listener_name, enum tls_mode mode, struct tls_creds *creds,
		 unsigned handshake_ms);
/* Stops accepting, asks every session to shut down, and aborts those still
 * open after timeout_ms; done(arg) runs once no connection is left. */
void net_shutdown(struct net *n, unsigned timeout_ms, void (*done)(void *arg), void *arg);
/* The number of open connections. */
unsigned net_connections(const struct net *n);
/* How many reads brought bytes since net_new(): a cheap sign of activity
 * (server/main.c trims the heap once it pauses). */
uint64_t net_reads(const struct net *n);

/* Queues bytes for the client (copied). */
void conn_write(struct conn *c, const void *data, size_t len);
/* Closes after every queued byte has been sent; idempotent. reason is logged. */
void conn_close(struct conn *c, const char *reason);
/* Closes now, dropping queued output; idempotent. */
void conn_abort(struct conn *c, const char *reason);
/* (Re)arms the idle timer; 0 stops it. */
void conn_set_timeout(struct conn *c, unsigned ms);
/* Asks the connection to pass its held input to the protocol again (from
 * the next loop iteration, never re-entering the caller). */
void conn_resume_input(struct conn *c);
/* Arms a one-shot proto_handler.drained call for when at most below bytes
 * are queued (from the next loop iteration if that is already so). */
void conn_when_drained(struct conn *c, size_t below);
/* Bytes queued and not yet written. */
size_t conn_output_pending(const struct conn *c);
/* Session id (12 hex digits), client IP text, the listener's name, loop. */
const char *conn_sid(const struct conn *c);
const char *conn_peer(const struct conn *c);
const char *conn_listener(const struct conn *c);
uv_loop_t *conn_loop(const struct conn *c);
/* The session has logged in: it no longer counts against its listener's
 * max_unauthenticated. Idempotent. */
void conn_set_authenticated(struct conn *c);
/* 1 once conn_close()/conn_abort() was called. */
int conn_closing(const struct conn *c);
/* STARTTLS/STLS: the session has queued its "go ahead" reply. Input not yet
 * consumed by the protocol (pipelined after the command) is thrown away,
 * nothing more is read in clear, and once the queued output is sent the
 * TLS handshake starts; proto_handler.tls_started follows, or the
 * connection closes. Call it from inside proto_handler.input, then return
 * at once (the rest of the input is dropped). */
void conn_start_tls(struct conn *c);
/* What the handshake agreed, or NULL while the connection is in clear. */
const struct tls_info *conn_tls_info(const struct conn *c);
/* The TLS mode of the connection's listener. */
enum tls_mode conn_tls_mode(const struct conn *c);

/*
 * Session io adapters for a protocol's glue: ctx points to a struct whose
 * FIRST member is `struct conn *conn`, set to NULL once the connection is
 * gone (the session may outlive it while work is in flight); then they do
 * nothing.
 */
void conn_io_write(void *ctx, const char *data, size_t len);
void conn_io_close(void *ctx, const char *reason);
void conn_io_set_timeout(void *ctx, unsigned seconds);
void conn_io_resume(void *ctx);
void conn_io_when_drained(void *ctx, size_t below);
void conn_io_start_tls(void *ctx);

#endif
