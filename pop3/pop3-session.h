#ifndef BUZON_POP3_SESSION_H
#define BUZON_POP3_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/auth-types.h"
#include "lib/config.h"
#include "lib/tls-types.h"

/*
 * The POP3 service as a pure state machine (RFC 1939, 2449, 3206, 5034):
 * bytes in, replies out through struct pop3_io. It never touches a socket,
 * a file or the directory: checking a password, opening the maildrop,
 * reading a message and removing the deleted messages are asynchronous
 * requests to the glue (pop3/pop3-server.c), answered through the
 * pop3_session_*_done() functions, later or from inside the request call.
 * Unit tests and the fuzzer plug in a synchronous io.
 *
 * While a request is in flight the session consumes no input: pipelined
 * commands wait in the caller's buffer (see pop3_session_input()), so
 * replies stay in order.
 */



struct pop3_session;

/* One message of the maildrop as fixed at login. */
struct pop3_msg {
	uint32_t uid;
	uint64_t size;     /* octets with CRLF line ends (the mailbox's vsize) */
};

/* A USER/PASS login to check (SASL goes through io->auth_step). Owned by
 * the session; valid until pop3_session_auth_done(). */
struct pop3_auth_req {
	const char *user;       /* the name the client gave with USER */
	const char *password;   /* wiped by the session after _done */
	const char *method;     /* "user", for logs */
	/* filled by the glue before pop3_session_auth_done(): */
	int result;             /* 0 ok, -EACCES bad credentials, another negative
				 * code: temporary failure */
	char canonical[320];    /* the user's canonical address when result is 0 */
};

/* Opening (and locking) the maildrop of an authenticated user. */
struct pop3_open_req {
	const char *user;       /* canonical address */
	/* filled by the glue: */
	int result;             /* 0, -EBUSY (locked by another session: [IN-USE]),
				 * -ENOENT (no maildrop: [SYS/PERM]), other: [SYS/TEMP] */
	uint32_t uidvalidity;
	struct pop3_msg *msgs;  /* malloc'd; the session takes it over at _done */
	size_t n_msgs;
};

/* One block of a message file, as stored (LF line ends). */
struct pop3_read_req {
	size_t msg;             /* index into the list given at open (0-based) */
	uint64_t offset;        /* octet offset into the stored file */
	char *buf;              /* room for cap octets, owned by the session */
	size_t cap;
	/* filled by the glue: */
	ssize_t result;         /* octets read (0: end of file), -ENOENT (the message
				 * vanished) or another negative code */
};

/* UPDATE state (QUIT in TRANSACTION): remove the deleted messages (n may be
 * 0), then close the maildrop and release its lock, all before the reply. */
struct pop3_update_req {
	const uint32_t *uids;
	size_t n;
	/* filled by the glue: */
	int result;             /* 0, or the negative code of the first failure */
	size_t done;            /* messages removed (the first `done` of uids) */
};

struct pop3_io {
	/* Queues reply bytes for the client. */
	void (*write)(void *ctx, const char *data, size_t len);
	/* Closes the connection once the queued replies are sent. */
	void (*close)(void *ctx, const char *reason);
	/* (Re)arms the idle timer; pop3_session_timeout() is called when it fires. */
	void (*set_timeout)(void *ctx, unsigned seconds);
	/* Requests; each is answered by its pop3_session_*_done(). */
	void (*auth)(void *ctx, struct pop3_auth_req *req);
	void (*open)(void *ctx, struct pop3_open_req *req);
	void (*read)(void *ctx, struct pop3_read_req *req);
	void (*update)(void *ctx, struct pop3_update_req *req);
	/* Calls pop3_session_drained() once the queued output is small enough
	 * to add another block (at once if it already is). */
	void (*drain)(void *ctx);
	/* Input was held back while a request was in flight: call
	 * pop3_session_input() again with the bytes still held. */
	void (*resume)(void *ctx);
	/* STLS: the +OK is queued; the glue drops input not consumed, sends the
	 * replies, runs the handshake and calls pop3_session_tls_started() (or
	 * closes). */
	void (*start_tls)(void *ctx);
	/* AUTH (RFC 5034) through SASL. auth_mechs gives the mechanisms that
	 * may be used now, space-separated (asked at every CAPA and AUTH, so
	 * STLS changes it; "" or a NULL auth_mechs: no SASL). auth_step runs
	 * one step (struct auth_step, lib/auth-types.h) and calls
	 * pop3_session_sasl_done(s, st) later or from inside the call;
	 * auth_end (optional) ends the exchange: called exactly once per
	 * exchange that reached auth_step, even after a disconnect, never with
	 * a step in flight. */
	const char *(*auth_mechs)(void *ctx);
	void (*auth_step)(void *ctx, struct auth_step *st);
	void (*auth_end)(void *ctx);
};

struct pop3_session_params {
	const struct pop3_config *cfg;
	const char *hostname;     /* our name, in the greeting */
	const char *sid;          /* session id, in logs */
	const char *client_addr;  /* "127.0.0.1", in logs */
	size_t read_block;        /* octets per read request (0: 65536); tests use small ones */
	enum tls_mode tls_mode;   /* the listener's: STLS offered or required */
	const struct tls_info *tls; /* non-NULL: encrypted from the start (implicit TLS) */
	int plaintext_in_clear;   /* USER/PASS allowed without TLS (the listener's
				   * allow_plaintext_auth for this client); under TLS always */
};

/* Creates a session and writes the greeting. The params strings are copied. */
struct pop3_session *pop3_session_new(const struct pop3_session_params *p, const struct pop3_io *io,
				      void *ctx);
/* Frees the session and sets *s to NULL. Must not be called while a request
 * is in flight (see pop3_session_busy()). */
void pop3_session_free(struct pop3_session **s);

/*
 * Feeds bytes received from the client; returns how many were consumed. The
 * caller keeps the rest and passes them again (with what arrives later) after
 * io->resume, or at once when something was consumed. An over-long line is
 * consumed and discarded as it arrives, so the caller never holds more than
 * one read of it. After STLS the call returns right after its line, and
 * every later call returns 0 until pop3_session_tls_started(): what the
 * caller holds then was sent in clear and must be thrown away.
 */
size_t pop3_session_input(struct pop3_session *s, const char *data, size_t len);

/* The connection is gone: no more io calls (requests in flight still get
 * their _done). */
void pop3_session_disconnected(struct pop3_session *s);
/* The idle timer fired: autologout without UPDATE (RFC 1939 section 3). */
void pop3_session_timeout(struct pop3_session *s);
/* The server is stopping: an idle session says so and closes (without
 * UPDATE); a busy one closes after its current reply. */
void pop3_session_shutdown(struct pop3_session *s);
/* 1 while a request is in flight. */
int pop3_session_busy(const struct pop3_session *s);

/* The STLS handshake is done (info valid as long as the session): the
 * session forgets what it advertised (RFC 2595 4) and stays in AUTHORIZATION. */
void pop3_session_tls_started(struct pop3_session *s, const struct tls_info *info);

/* Results of the requests. */
void pop3_session_auth_done(struct pop3_session *s, struct pop3_auth_req *req);
/* The step asked for by io->auth_step is done (st is the session's own). */
void pop3_session_sasl_done(struct pop3_session *s, struct auth_step *st);
void pop3_session_open_done(struct pop3_session *s, struct pop3_open_req *req);
void pop3_session_read_done(struct pop3_session *s, struct pop3_read_req *req);
void pop3_session_update_done(struct pop3_session *s, struct pop3_update_req *req);
void pop3_session_drained(struct pop3_session *s);

/*
 * The unique-id listing (UIDL) of a message: "<uidvalidity>-<uid>" in decimal,
 * e.g. "1764355201-42": at most 21 characters from 0x21-0x7E, unique within
 * the mailbox and stable as long as its index lives; the same pair that
 * IMAP reports as UIDVALIDITY and UID. Writes into out (size >= 24).
 */
void pop3_uidl(uint32_t uidvalidity, uint32_t uid, char *out, size_t outlen);

#endif
