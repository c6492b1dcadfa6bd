#ifndef BUZON_TESTS_IMAP_FAKE_IO_H
#define BUZON_TESTS_IMAP_FAKE_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "imap/imap-session.h"
#include "lib/buf.h"

/*
 * A fake connection for driving an imap_session directly, without a loop or
 * sockets: its struct imap_io records what the session asks of the glue.
 *
 * By default it works the way imap/imap-server.c does: exec only queues the
 * command and when_drained only notes the request; imap_fake_settle() then
 * runs them, as the loop thread would once the session stopped taking
 * input. With IMAP_FAKE_RUN_NOW both happen at once, inside the call that
 * asked for them, as the fuzzer does.
 *
 * start_tls is offered, so sessions on STARTTLS and tls = required
 * listeners work: after it the glue throws away what it holds and what
 * arrives until the handshake is done, and so does imap_fake_feed(), into
 * dropped; imap_fake_tls_done() ends the handshake.
 *
 * The fake checks how it is used (no write after close, one command at a
 * time, start_tls only after its tagged OK) and counts the failures apart
 * from the test's own: main() adds imap_fake_failures() to its count.
 */

enum imap_fake_flags {
	IMAP_FAKE_RUN_NOW = 1 << 0,   /* exec, when_drained and auth_step act at once */
};

/*
 * AUTHENTICATE: once imap_fake_sasl_init() gave the fakes a directory, the
 * fake answers io->auth_step as imap/imap-server.c does, with GNU SASL
 * (lib/sasl.h) over that directory, without channel binding (no -PLUS):
 * queued like a command (run by imap_fake_settle()) or at once with
 * IMAP_FAKE_RUN_NOW. plaintext_ok is f->plaintext (1 after open).
 */

struct imap_fake {
	struct imap_session *s;
	enum imap_fake_flags flags;
	struct buf greeting;     /* what imap_session_new() wrote */
	struct buf out;          /* everything written since */
	bool closed;             /* close() was called */
	unsigned timeouts;       /* set_timeout() calls */
	unsigned timeout;        /* the last value */
	struct imap_cmd *queued; /* exec'd, not run yet */
	bool drain;              /* when_drained() asked, not answered yet */
	bool tls_wanted;         /* start_tls() called, handshake not done */
	unsigned n_start_tls;    /* start_tls() calls */
	struct buf dropped;      /* input thrown away during the handshake */
	int plaintext;           /* what io->plaintext_ok answers (1 after open) */
	struct auth_step *auth_queued; /* auth_step asked, not answered yet */
	struct sasl_exchange *sx;      /* the exchange in progress */
	unsigned n_auth_steps, n_auth_ends;
	char mechs[96];
};

struct dir;
/* Gives every fake GNU SASL over dir (which must outlive them); 0 or a
 * negative code. imap_fake_sasl_free() at the end. */
int imap_fake_sasl_init(struct dir *dir);
void imap_fake_sasl_free(void);

/* Opens a session with params p on the fake f (p->backend and p->tls must
 * outlive the session), moving the greeting from out to greeting. */
void imap_fake_open(struct imap_fake *f, const struct imap_session_params *p, enum imap_fake_flags flags);
/* Tells the session it is disconnected, frees it and the buffers. */
void imap_fake_free(struct imap_fake *f);
/* Runs the queued command and answers a drain, over and over, until the
 * session asks for nothing more. */
void imap_fake_settle(struct imap_fake *f);
/* Feeds data in pieces of at most step octets (0: all at once), holding
 * back what the session does not take until its command has run, and
 * settles after each piece; while the handshake runs, input goes to
 * dropped. Stops early once the session is closed. */
void imap_fake_feed(struct imap_fake *f, const char *data, size_t len, size_t step);
/* The handshake asked for by start_tls() is done with info (which must
 * outlive the session); settles. */
void imap_fake_tls_done(struct imap_fake *f, const struct tls_info *info);
/* Whether got (got_len octets) matches want, in which '*' stands for any
 * run of characters. */
bool imap_fake_match(const char *want, const char *got, size_t got_len);
/* How many of the fake's own checks failed so far. */
int imap_fake_failures(void);

#endif
