#ifndef BUZON_IMAP_PRIVATE_H
#define BUZON_IMAP_PRIVATE_H

/*
 * Internals shared by the IMAP session (imap-session.c) and its command
 * files (imap-cmd-*.c, one per command group, as Dovecot's src/imap/cmd-*.c).
 *
 * A command goes through up to three steps:
 *   start   (loop thread)   checks the state and arguments; either answers
 *                           at once (imap_cmd_tagged(), no run) or sets
 *                           cmd->run to hand storage work to a worker;
 *   run     (worker thread) does the work, writing untagged responses into
 *                           cmd->out and the tagged result with
 *                           imap_cmd_tagged(); returns IMAP_RUN_MORE to be
 *                           called again once cmd->out has been sent (large
 *                           FETCH results are streamed that way);
 *   finish  (loop thread)   optional: applies what run found to the session
 *                           (login, select), after out is written.
 * The arguments (cmd->args) point into the parser's memory, which stays
 * valid until the command is over: input is not parsed meanwhile.
 *
 * Session fields touched by run (the open mailbox above all) are never
 * touched by the loop thread while a command runs: one command at a time.
 */

#include <stdbool.h>

#include "imap/imap-parser.h"
#include "imap/imap-seqset.h"
#include "imap/imap-session.h"
#include "lib/buf.h"
#include "storage/mailbox.h"

enum imap_state {
	IMAP_NOAUTH = 1 << 0,
	IMAP_AUTH = 1 << 1,
	IMAP_SELECTED = 1 << 2,
	IMAP_LOGOUT = 1 << 3,
};
#define IMAP_ANY (IMAP_NOAUTH | IMAP_AUTH | IMAP_SELECTED)
#define IMAP_AUTHED (IMAP_AUTH | IMAP_SELECTED)

enum imap_cmd_def_flags {
	/* No mailbox refresh after the command: RFC 3501 7.4.1 forbids
	 * EXPUNGE responses during FETCH, STORE and SEARCH (not their UID forms). */
	IMAP_CMD_NO_REFRESH = 1 << 0,
};

enum imap_run_result { IMAP_RUN_DONE = 0, IMAP_RUN_MORE = 1 };

struct imap_cmd;
typedef void imap_start_fn(struct imap_cmd *cmd);
typedef int imap_run_fn(struct imap_cmd *cmd);
typedef void imap_finish_fn(struct imap_cmd *cmd);

struct imap_cmd_def {
	const char *name;         /* upper case; "UID FETCH" for the UID forms */
	unsigned states;          /* enum imap_state where it is allowed */
	imap_start_fn *start;
	unsigned flags;           /* enum imap_cmd_def_flags */
};

/* The command tables of the command files, each ended by a {NULL} entry. */
extern const struct imap_cmd_def imap_cmds_any[];      /* imap-cmd-any.c */
extern const struct imap_cmd_def imap_cmds_mailbox[];  /* imap-cmd-mailbox.c */
extern const struct imap_cmd_def imap_cmds_select[];   /* imap-cmd-select.c */
extern const struct imap_cmd_def imap_cmds_fetch[];    /* imap-cmd-fetch.c */
extern const struct imap_cmd_def imap_cmds_store[];    /* imap-cmd-store.c */
extern const struct imap_cmd_def imap_cmds_search[];   /* imap-cmd-search.c */
extern const struct imap_cmd_def imap_cmds_append[];   /* imap-cmd-append.c */

struct imap_cmd {
	struct imap_session *s;
	const struct imap_cmd_def *def;
	char *tag;
	const char *name;
	const struct imap_arg *args;
	size_t count;
	bool uid;                 /* the UID form of the command */
	imap_run_fn *run;
	imap_finish_fn *finish;
	void *priv;               /* the command's own state */
	void (*free_priv)(void *priv);
	unsigned delay_ms;        /* wait before run (failed-login throttling) */
	struct buf out;           /* written by run (worker) */
	struct buf tagged;        /* "OK [..] text", set once */
	bool refreshed;
	bool no_reply;            /* no tagged line (IDLE, AUTHENTICATE waiting for a line) */
	bool keep_literals;       /* runs while a command is read: its literals stay counted */
};

struct imap_session {
	struct imap_io io;
	void *ctx;
	struct imap_config cfg;
	const struct imap_backend *backend;
	char *sid, *client;

	unsigned state;
	struct imap_parser *parser;
	struct imap_cmd *cmd;       /* the command in progress, or NULL */
	bool pending;               /* cmd is with io->exec */
	bool in_input;              /* inside imap_session_input() */
	bool closed;                /* LOGOUT, BYE or disconnect: input dropped */
	bool shutdown;
	unsigned bad;               /* BAD replies */
	unsigned auth_failures;

	/* AUTH and SELECTED */
	char user[321];
	char *maildir;              /* "" until login */

	/* SELECTED: touched by run functions only while a command runs */
	struct mbox *mbox;
	char mailbox[256];          /* its name as the client sees it (mUTF-7) */
	char *key;                  /* notify key: the folder's directory, "" when none */
	bool readonly;
	bool changed;               /* a notification came in: refresh at the next chance */
	char *kw_told;              /* keywords the client was given in FLAGS (NULL: none) */
	uint64_t lit_held;          /* octets of literals of the command being read or run,
	                             * counted in the server-wide [imap] max_buffered */
	uint64_t lit_held_login;    /* ... before login: in [imap] login_max_buffered instead */
	bool login_limits;          /* the parser has the pre-login limits (until login) */
	bool login_expired;         /* the login deadline passed while a command ran */
	bool lit_kick;              /* a literal is decided (or will be): feed the parser once more */

	/* ENABLE (RFC 5161) */
	bool condstore;             /* CONDSTORE (also turned on by its use) */
	bool qresync;

	/* TLS (RFC 3501 6.2.1, RFC 8314) */
	enum tls_mode tls_mode;
	const struct tls_info *tls; /* NULL while in clear */
	bool tls_go;                /* STARTTLS answered OK: start TLS after its reply */
	bool tls_wait;              /* io->start_tls called: nothing is read until tls_started */

	/* AUTHENTICATE: the tag of the exchange in progress (waiting for the
	 * client's response line, or for the glue's answer to a step) */
	char *auth_tag;
	bool auth_go;               /* a step is ready: send it once the command is written */
	bool auth_busy;             /* io->auth_step called, imap_session_auth_done() not yet */
	struct auth_step astep;
	unsigned char *auth_in;     /* the decoded client response (SASL_RESPONSE_MAX), wiped after each step */

	/* IDLE (RFC 2177) */
	bool idling;
	char *idle_tag;

	/* SEARCHRES (RFC 5182) and misc */
	struct imap_seqset saved;
};

/* ---- for the command files ---- */

/* Writes the capabilities of the session's state into out (imap-cmd-any.c). */
void imap_capabilities(struct imap_session *s, struct buf *out);
/* STARTTLS can be used now: the listener offers it and the session is in
 * clear (imap-cmd-any.c). */
bool imap_tls_offered(const struct imap_session *s);
/* tls = required and still in clear: no password may be sent. */
bool imap_tls_needed(const struct imap_session *s);
/* Sets s->key (the selected folder's notify key; "" for none). */
void imap_session_set_key(struct imap_session *s, const char *key);
/* Writes a line (CRLF added) to the client now. */
void imap_session_printf(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Closes after the queued output; no more input is taken. */
void imap_session_close(struct imap_session *s, const char *reason);
/* A command that does not come from the parser (AUTHENTICATE's second
 * step, IDLE refreshes); then imap_cmd_dispatch() runs or answers it. */
struct imap_cmd *imap_cmd_new(struct imap_session *s, const char *tag, const char *name);
void imap_cmd_dispatch(struct imap_session *s);
/* IDLE: the tagged reply waits for "DONE" (RFC 2177). */
void imap_session_enter_idle(struct imap_session *s, const char *tag);
/* The client's line for a pending AUTHENTICATE (imap-cmd-any.c). */
void imap_auth_line(struct imap_session *s, const char *line, size_t len);
/* Hands s->astep to io->auth_step (imap-session.c). */
void imap_auth_send(struct imap_session *s);
/* The glue's answer to a step, once the session has taken it back
 * (imap-cmd-any.c): a continuation, or the tagged result. */
void imap_auth_answer(struct imap_session *s, struct auth_step *st);
/* LOGIN and PLAIN may be used now (imap-cmd-any.c). */
bool imap_plaintext_ok(struct imap_session *s);

/* Sets the tagged result: status "OK", "NO" or "BAD", then text (which may
 * start with a response code "[...]"). */
void imap_cmd_tagged(struct imap_cmd *cmd, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Shorthand for a BAD with the text, counted towards max_bad_commands. */
void imap_cmd_bad(struct imap_cmd *cmd, const char *text);
/* Appends an untagged response line "* " fmt "\r\n" to cmd->out. */
void imap_cmd_untagged(struct imap_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Worker: brings the selected mailbox up to date and writes the untagged
 * EXPUNGE/VANISHED, EXISTS, RECENT and FETCH FLAGS responses into out. */
int imap_refresh(struct imap_session *s, struct buf *out);
/* Remembers kw (space-separated) as the keywords the client has been given
 * in FLAGS; with out, first writes FLAGS and PERMANENTFLAGS to it when kw
 * holds one the client was not given (RFC 3501 7.2.6). */
void imap_keywords_told(struct imap_session *s, const char *kw, struct buf *out);
/* Worker: 1 when adding size octets would take the user over the quota,
 * 0 when not (or no quota), negative when it cannot be told
 * (imap/imap-cmd-append.c). */
int imap_append_over_quota(struct imap_session *s, uint64_t size);
/* Writes "FLAGS (...)" content for a message: flags and keywords. */
void imap_write_flags(struct buf *out, uint32_t flags, const char *keywords);
/* The flags of message i as this session reports them (with \Recent). */
static inline uint32_t imap_msg_flags(const struct mbox *m, size_t i)
{
	return mbox_get(m, i)->flags | (mbox_is_recent(m, i) ? MBOX_RECENT : 0);
}
/* Parses a flag list (STORE, APPEND) into flags and keywords (space
 * separated, into kw); false on a bad flag (\Recent or unknown \X). */
bool imap_parse_flags(const struct imap_arg *list, size_t count, uint32_t *flags_r, struct buf *kw);

/* Worker: the Maildir folder name for a mailbox name the client sent
 * (mUTF-7, '.' separator, INBOX in any case); false when not acceptable. */
bool imap_mailbox_name(const char *name, size_t len, char *out, size_t outlen);

/* Sequence numbers or UIDs (cmd->uid) of the selected mailbox into the
 * indexes of its messages; false with a BAD set on bad syntax. */
bool imap_cmd_seqset(struct imap_cmd *cmd, const struct imap_arg *arg, struct imap_seqset *idx_r);

/* Worker: the open mailbox of a selected session. */
static inline struct mbox *imap_mbox(struct imap_session *s)
{
	return s->mbox;
}

#endif
