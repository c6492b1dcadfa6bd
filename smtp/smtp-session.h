#ifndef BUZON_SMTP_SESSION_H
#define BUZON_SMTP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "lib/auth-types.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/tls-types.h"

/*
 * The SMTP receiver as a pure state machine (RFC 5321, 1870, 2920, 3030,
 * 3463, 3207, 4954, 6152, 6409, 6531): bytes in, replies out through
 * struct smtp_io. It never touches a socket, a file or the directory;
 * recipient checks, sender checks, SASL steps and delivery are asynchronous
 * requests to the glue (smtp/smtp-server.c), whose results come back
 * through the smtp_session_*_done() calls. Unit tests and the fuzzer plug
 * in a synchronous io.
 */

struct smtp_session;

enum smtp_rcpt_status {
	SMTP_RCPT_OK,
	SMTP_RCPT_NO_USER,    /* 550 5.1.1 */
	SMTP_RCPT_DISABLED,   /* 550 5.2.1 */
	SMTP_RCPT_NOT_LOCAL,  /* 550 5.7.1 relaying denied */
	SMTP_RCPT_OVER_QUOTA, /* 452 4.2.2 */
	SMTP_RCPT_TEMPFAIL,   /* 451 4.3.0 */
};

/* A recipient check in flight. Owned by the session; valid until _done. */
struct smtp_rcpt_req {
	const char *address;   /* the forward-path mailbox, without <>; local part may hold UTF-8 */
	uint64_t size_hint;    /* MAIL SIZE= value, 0 if none */
	/* filled by the glue before smtp_session_rcpt_done(): */
	enum smtp_rcpt_status status;
	char **targets;        /* canonical user addresses: a malloc'd array of malloc'd
				* strings; the session frees both after _done */
	size_t n_targets;
};

enum smtp_sender_status {
	SMTP_SENDER_OK,        /* the address delivers to the user: 250 */
	SMTP_SENDER_NOT_OWNED, /* 553 5.7.1 */
	SMTP_SENDER_TEMPFAIL,  /* 451 4.3.0 */
};

/* A submission sender check in flight (RFC 6409 4.1: the MSA checks that
 * the envelope sender belongs to who authenticated). Owned by the session;
 * valid until smtp_session_sender_done(). */
struct smtp_sender_req {
	const char *address;   /* the reverse-path mailbox, without <>, never "" */
	const char *user;      /* the authenticated user (struct auth_step's user) */
	/* filled by the glue: OK when address is the user or one of the
	 * addresses that deliver to it */
	enum smtp_sender_status status;
};

/* A delivery in flight. Owned by the session; valid until _done. */
struct smtp_delivery {
	const char *return_path;  /* reverse-path without <>, "" for the null sender */
	const char *received;     /* "Return-Path: <...>\nReceived: ...\n" header block, LF ends;
				   * on submission followed by "Date: ...\n" and "Message-ID:
				   * <...>\n" when the message has none (RFC 6409 8.2, 8.3) */
	char *const *targets;     /* unique canonical user addresses */
	size_t n_targets;
	const struct buf *body;   /* the message as stored: LF line ends, dot-unstuffed */
	uint64_t size;            /* octets as received (CRLF counted as 2) */
};

struct smtp_io {
	/* Queues reply bytes for the client. */
	void (*write)(void *ctx, const char *data, size_t len);
	/* Closes the connection once the queued replies are sent. */
	void (*close)(void *ctx, const char *reason);
	/* (Re)arms the session's one timer to fire in ms milliseconds (at least
	 * 1, counted on the clock of now()); smtp_session_timeout() is called
	 * when it fires. The session arms it at its deadline, which partial
	 * input never moves (see smtp_session_input()). */
	void (*set_timeout)(void *ctx, unsigned ms);
	/* Milliseconds on a monotonic clock: the time the deadlines are kept in. */
	uint64_t (*now)(void *ctx);
	/* Starts a recipient check; the glue calls smtp_session_rcpt_done() later
	 * or from inside this call. */
	void (*rcpt)(void *ctx, struct smtp_rcpt_req *req);
	/* Starts a delivery; the glue calls smtp_session_deliver_done() later or
	 * from inside this call. */
	void (*deliver)(void *ctx, struct smtp_delivery *dv);
	/* Input was held back while a request was in flight: the glue should call
	 * smtp_session_input() again with the bytes it still holds. */
	void (*resume)(void *ctx);
	/* Optional: asks for n more octets of message memory, from a budget
	 * shared by all sessions; non-zero refuses, and the message is then read
	 * to its end and refused with 452 4.3.1 (the client tries again later). */
	int (*reserve)(void *ctx, size_t n);
	/* Optional: the memory reserved for the transaction is free again. */
	void (*release)(void *ctx);
	/* STARTTLS: the 220 reply is queued; the glue drops input the session
	 * has not consumed, sends the queued replies, runs the handshake and
	 * calls smtp_session_tls_started() (or closes). The session consumes
	 * nothing after the STARTTLS line until then. */
	void (*start_tls)(void *ctx);

	/* SMTP AUTH (RFC 4954). With auth_mechs NULL AUTH is not implemented
	 * (502) and auth_step and auth_end are never called; with it set,
	 * auth_step is required and auth_end optional. */
	/* The mechanisms to advertise and accept now, upper-case and
	 * space-separated ("SCRAM-SHA-256 PLAIN"), "" for none. Asked at every
	 * EHLO and AUTH, so the answer may depend on the TLS state (after
	 * STARTTLS it is asked again) and on the listener's
	 * allow_plaintext_auth; the session copies what it needs. */
	const char *(*auth_mechs)(void *ctx);
	/* Runs one step of an exchange; the glue fills the second part of st
	 * and calls smtp_session_auth_done(s, st) later or from inside this
	 * call. st->in is valid until then. */
	void (*auth_step)(void *ctx, struct auth_step *st);
	/* The exchange that the last first step opened is over (success,
	 * failure, "*", a bad line or the end of the session): the glue frees
	 * its state. Called exactly once per exchange that reached auth_step,
	 * never while a step is in flight; it is the one io call that may come
	 * during or after smtp_session_disconnected() (from it, from
	 * smtp_session_auth_done() or from smtp_session_free()). */
	void (*auth_end)(void *ctx);
	/* Submission: starts a sender check; the glue calls
	 * smtp_session_sender_done() later or from inside this call. Required
	 * when params.submission is set. */
	void (*sender_check)(void *ctx, struct smtp_sender_req *req);
	/* Optional: asked at each MAIL command; 0 means the client is over its
	 * listener's max_messages_per_ip_per_minute: the session answers
	 * 421 4.7.0 and closes (the client tries again later). */
	int (*mail_allowed)(void *ctx);
};

struct smtp_session_params {
	const struct smtp_config *cfg;
	const char *hostname;     /* our name, in the greeting and Received */
	const char *sid;          /* session id, in logs and Received */
	const char *client_addr;  /* "127.0.0.1" or "::1" */
	const char *client_name;  /* reverse DNS name, or NULL */
	enum tls_mode tls_mode;   /* the listener's: STARTTLS offered or required */
	const struct tls_info *tls; /* non-NULL: encrypted from the start (implicit TLS);
				   * valid as long as the session */
	int auth_required;        /* MAIL only after a successful AUTH (530 5.7.0) */
	int submission;           /* RFC 6409: auth_required, the sender must belong to the
				   * user, no null sender, no relaying, Date and Message-ID
				   * added when missing */
};

/* Creates a session and writes the 220 greeting. The params strings are
 * copied. */
struct smtp_session *smtp_session_new(const struct smtp_session_params *p,
				      const struct smtp_io *io, void *ctx);
/* Frees the session and sets *s to NULL. Must not be called while a request
 * is in flight (see smtp_session_busy()). */
void smtp_session_free(struct smtp_session **s);

/*
 * Feeds bytes received from the client. Returns how many were consumed; the
 * caller keeps the rest and passes them again, with what arrives later.
 * Bytes are held back in two cases:
 * - a request is in flight (smtp_session_busy() is 1): the session consumes
 *   nothing more until the request is done; it then calls io->resume, and
 *   the caller passes what it holds again;
 * - one call processed max_pipeline command lines: the call returns with
 *   smtp_session_busy() 0; the caller passes the rest again once the
 *   replies it has queued have drained (io->resume is not called for this);
 * - a STARTTLS was accepted: the call returns right after its line and
 *   every later call returns 0 until smtp_session_tls_started(); what the
 *   caller holds then was sent in clear and must be thrown away.
 * A partial command line is copied into the session and consumed; an
 * over-long line is consumed and discarded before its end arrives, so the
 * caller's buffer never has to hold more than 1024 octets of one line.
 *
 * Time: command_timeout bounds the time to a complete command line (it
 * starts when the session is ready for the next command, and bytes of an
 * unfinished line do not extend it); data_timeout bounds a DATA or BDAT
 * transfer, extended by octets/min_data_rate seconds as content arrives but
 * never past data_timeout from now (Postfix's per-request deadline).
 */
size_t smtp_session_input(struct smtp_session *s, const char *data, size_t len);

/* The connection was closed (by the client or an error); no more io calls. */
void smtp_session_disconnected(struct smtp_session *s);
/* The deadline passed (the timer fired): writes 421 4.4.2 and closes. */
void smtp_session_timeout(struct smtp_session *s);
/* The server is stopping: an idle session gets 421 4.3.2 and closes now; a
 * session in a transaction closes after its current reply. */
void smtp_session_shutdown(struct smtp_session *s);
/* 1 while a request (rcpt, sender check, AUTH step, delivery) is in flight. */
int smtp_session_busy(const struct smtp_session *s);

/* The handshake asked for by io->start_tls is done; info stays valid as
 * long as the session. The session forgets EHLO and any transaction (RFC
 * 3207 4.2) and waits for a new EHLO; a user authenticated in clear is
 * forgotten too. */
void smtp_session_tls_started(struct smtp_session *s, const struct tls_info *info);

/* Results of the asynchronous requests. */
void smtp_session_rcpt_done(struct smtp_session *s, struct smtp_rcpt_req *req);
/* result: 0 delivered, -EDQUOT, -ENOSPC, or another negative code. */
void smtp_session_deliver_done(struct smtp_session *s, struct smtp_delivery *dv, int result);
/* The step asked for by io->auth_step is done (st is the session's own).
 * The session wipes and frees st->out, and writes 334, 235 or the failure. */
void smtp_session_auth_done(struct smtp_session *s, struct auth_step *st);
/* The sender check asked for by io->sender_check is done: 250 or 553/451. */
void smtp_session_sender_done(struct smtp_session *s, struct smtp_sender_req *req);

#endif
