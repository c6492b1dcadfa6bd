#ifndef BUZON_IMAP_SESSION_H
#define BUZON_IMAP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "lib/auth-types.h"
#include "lib/config.h"
#include "lib/tls-types.h"

/*
 * The IMAP4rev1 session (RFC 3501 and the extensions in CAPABILITY): a state
 * machine on the loop thread that parses commands and writes replies, and
 * commands whose work touches storage. That work runs as a struct imap_cmd
 * handed to io->exec: the glue runs imap_cmd_run() on a worker thread and
 * then calls imap_session_cmd_done() on the loop thread. One command runs at
 * a time; pipelined commands wait in the caller's input buffer. Unit tests
 * and the fuzzer run commands synchronously inside exec.
 */

struct imap_session;
struct imap_cmd;
struct dir;

/* What worker-thread code may use: the user directory and our name. */
struct imap_backend {
	struct dir *dir;
	const char *hostname;
};

struct imap_io {
	void (*write)(void *ctx, const char *data, size_t len);
	/* Close once the queued output is sent. */
	void (*close)(void *ctx, const char *reason);
	void (*set_timeout)(void *ctx, unsigned seconds);
	/* Run imap_cmd_run(cmd) on a worker after delay_ms, then call
	 * imap_session_cmd_done(s, cmd) on the loop thread; may run it at once. */
	void (*exec)(void *ctx, struct imap_cmd *cmd, unsigned delay_ms);
	/* Input was held back: feed the held bytes again. */
	void (*resume)(void *ctx);
	/* Call imap_session_drained() once at most below bytes are queued. */
	void (*when_drained)(void *ctx, size_t below);
	/* Watch a folder key for changes (NULL stops); changes come as
	 * imap_session_notify(). */
	void (*watch)(void *ctx, const char *key);
	/* Tell other sessions that a folder key changed. */
	void (*publish)(void *ctx, const char *key);
	/* Failed-login throttling: the delay before checking a login for user,
	 * and the outcome (ok = 1 success). */
	unsigned (*auth_delay)(void *ctx, const char *user);
	void (*auth_result)(void *ctx, const char *user, int ok);
	/* STARTTLS: the tagged OK is queued; the glue drops input not consumed,
	 * sends the replies, runs the handshake and calls
	 * imap_session_tls_started() (or closes). */
	void (*start_tls)(void *ctx);
	/*
	 * AUTHENTICATE (RFC 3501 6.2.2) through the glue's SASL (lib/auth-types.h).
	 * auth_mechs: the mechanisms to offer now, space-separated (CAPABILITY
	 * lists each as AUTH=<mech>); NULL or "" offers none.
	 * plaintext_ok: 1 when LOGIN and PLAIN may be used now (TLS active, or
	 * the listener's allow_plaintext_auth allows it for the client); 0:
	 * LOGINDISABLED. NULL: always, unless tls = required and in clear.
	 * auth_step: runs one step (on a worker) and answers with
	 * imap_session_auth_done(), later or from inside the call; the session
	 * reads no input meanwhile (imap_session_busy()).
	 * auth_end: the exchange is over (done, failed, cancelled, closed).
	 */
	const char *(*auth_mechs)(void *ctx);
	int (*plaintext_ok)(void *ctx);
	void (*auth_step)(void *ctx, struct auth_step *st);
	void (*auth_end)(void *ctx);
};

struct imap_session_params {
	const struct imap_config *cfg;
	const struct imap_backend *backend;
	const char *sid;
	const char *client_addr;
	enum tls_mode tls_mode;   /* the listener's: STARTTLS offered or required */
	const struct tls_info *tls; /* non-NULL: encrypted from the start (implicit TLS) */
};

/* Creates a session and writes the greeting. */
struct imap_session *imap_session_new(const struct imap_session_params *p, const struct imap_io *io, void *ctx);
/* Frees the session; not while a command runs (imap_session_busy()). */
void imap_session_free(struct imap_session **s);
/* Feeds client bytes; returns how many were consumed (see smtp_session_input()).
 * After STARTTLS the call returns right after that command, and every later
 * call returns 0 until imap_session_tls_started(): what the caller holds
 * then was sent in clear and must be thrown away. */
size_t imap_session_input(struct imap_session *s, const char *data, size_t len);
int imap_session_busy(const struct imap_session *s);
void imap_session_disconnected(struct imap_session *s);
void imap_session_timeout(struct imap_session *s);
void imap_session_shutdown(struct imap_session *s);
void imap_session_drained(struct imap_session *s);
void imap_session_notify(struct imap_session *s);
/* The STARTTLS handshake is done (info valid as long as the session): the
 * session forgets what it advertised (RFC 3501 6.2.1). */
void imap_session_tls_started(struct imap_session *s, const struct tls_info *info);

/* Loop thread: the step asked of io->auth_step is answered (st is the
 * session's own struct, its out malloc'd by the glue). */
void imap_session_auth_done(struct imap_session *s, struct auth_step *st);

/* Worker thread: does the storage work of cmd. */
void imap_cmd_run(struct imap_cmd *cmd);
/* Loop thread: cmd's work is done. */
void imap_session_cmd_done(struct imap_session *s, struct imap_cmd *cmd);

/* Octets of literals all logged-in sessions hold now (their budget is
 * [imap] max_buffered); 0 once every session is freed. */
uint64_t imap_literals_held(void);
/* The same for sessions that have not logged in (budget [imap]
 * login_max_buffered): they never draw on max_buffered. */
uint64_t imap_login_literals_held(void);

/* The longest command line (literals excluded) before login, when [imap]
 * max_line is not smaller: what Dovecot's imap-login reads, and three times
 * the longest valid LOGIN or AUTHENTICATE PLAIN line. */
#define IMAP_LOGIN_MAX_LINE 8192
/* Arguments of one command before login: an ID with its 30 field-value
 * pairs (RFC 2971) has 61. Each argument costs about 100 octets however
 * short its text, so 8 KiB of "x x x ..." must not become 4,000 of them. */
#define IMAP_LOGIN_MAX_ARGS 100

#endif
