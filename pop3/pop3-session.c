#include "pop3/pop3-session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/sasl.h"
#include "lib/xalloc.h"

/*
 * The POP3 state machine. Layout as in smtp/smtp-session.c: a session with
 * a state, a command table of {name, allowed states, handler}, and requests
 * to the glue while which no input is consumed.
 *
 * Multi-line replies that can be long are "jobs" sent in pieces: RETR and
 * TOP read the message file one block at a time (io->read), convert it and
 * write it, then wait for the output to drain (io->drain) before the next
 * block; LIST and UIDL write a few hundred lines at a time the same way. So
 * neither a large message nor a large maildrop is ever held in memory whole.
 * The driver loop (drive()) is re-entrancy-safe: a synchronous io answers a
 * request from inside the call that made it, and the loop goes on without
 * recursing once per block.
 *
 * Wire form of a message (RFC 1939 section 3): the file is stored with LF
 * line ends; every LF not preceded by CR goes out as CRLF, a stored CRLF as
 * is, and a line that begins with "." gets one more. The octets that reach
 * the client after undoing the dot-stuffing are exactly the mailbox's vsize
 * (which counts a LF without CR as two octets), so LIST, STAT and the data
 * agree. A file that does not end in a line end gets a CRLF before the
 * terminating ".", which the terminator needs; that CRLF is not counted.
 *
 * Failed logins: the reply is "-ERR [AUTH] Authentication failed" whether
 * the user exists or not; the glue delays the check (lib/lockout.h) and the
 * session closes after max_auth_failures.
 *
 * AUTH (RFC 5034): the session does the framing ("+ " challenges, "*"
 * cancels, "=" an empty initial response) and the strict base64; the glue
 * runs the mechanism (io->auth_step with the decoded response, answered by
 * pop3_session_sasl_done()) and says what may be used now
 * (io->auth_mechs, asked at every CAPA and AUTH, so STLS changes it). While
 * a step runs nothing more is read. The decoded responses, the challenges
 * and the lines that carried them are wiped after use. SCRAM's final "v="
 * comes as a last challenge that the client answers with an empty line.
 * A user authenticated by SASL gets the maildrop as after PASS. AUTH with
 * no argument lists the mechanisms, one per line (not in RFC 5034, but
 * clients use it). Plaintext logins (USER/PASS; PLAIN and LOGIN, which the
 * glue then leaves out of its list) need TLS unless the listener's
 * allow_plaintext_auth allows them for this client: elsewhere CAPA leaves
 * USER out and USER and AUTH PLAIN/LOGIN get "-ERR [AUTH] Plaintext
 * authentication disallowed on non-secure connections" (Dovecot's words).
 *
 * STLS (RFC 2595 4): the +OK is the last thing read in clear. Input stops
 * right after the STLS line and stays stopped (0 consumed) until
 * pop3_session_tls_started(); the glue throws away what it holds, so a
 * command pipelined in clear behind STLS is never run inside TLS (the
 * CVE-2011-0411 class). The handshake leaves the session in AUTHORIZATION
 * with no USER given; capabilities change (no STLS), and the client asks
 * CAPA again. With tls = required, CAPA lists neither USER nor SASL before
 * TLS and USER, PASS and AUTH are refused with a plain -ERR: RFC 3206 has
 * no response code for it ([AUTH] would tell the client its credentials
 * are wrong), and IMAP's PRIVACYREQUIRED has no POP3 counterpart.
 *
 * idle_timeout is the time allowed for a whole command line: the timer is
 * re-armed when the session becomes ready for a command (greeting, a line
 * done, a request or reply done), never by octets of an unfinished line, so
 * a client that trickles a byte now and then is logged out like a silent
 * one (slowloris).
 */

enum pop3_state {
	S_AUTH   = 1 << 0,  /* AUTHORIZATION: no USER yet */
	S_USER   = 1 << 1,  /* AUTHORIZATION: USER given, PASS expected */
	S_SASL   = 1 << 2,  /* AUTH exchange: lines are SASL responses */
	S_TRANS  = 1 << 3,  /* TRANSACTION */
	S_CLOSED = 1 << 4,  /* QUIT, autologout, shutdown or disconnect: input is dropped */
};

#define S_AUTHORIZATION (S_AUTH | S_USER)
#define S_ANY (S_AUTH | S_USER | S_TRANS)

enum pending { P_NONE, P_AUTH, P_SASL, P_OPEN, P_READ, P_UPDATE, P_DRAIN };

enum job { J_NONE, J_XFER, J_LIST, J_UIDL };

#define USER_MAX 320
#define LIST_LINES_PER_STEP 512
#define CMDS_PER_INPUT 32

/* A message being sent by RETR or TOP. */
struct xfer {
	size_t msg;
	uint64_t offset;       /* next octet of the file to read */
	uint64_t sent;         /* message octets sent, dot-stuffing not counted */
	unsigned line_len;     /* octets of the current line so far (capped) */
	int bol;               /* at the beginning of a line */
	int prev_cr;           /* the last octet was CR */
	int started;           /* the +OK line was sent */
	int top;               /* TOP: stop after the header and top_lines body lines */
	int in_body;
	uint64_t top_lines;
};

struct pop3_session {
	struct pop3_config cfg;
	struct pop3_io io;
	void *ctx;
	char *hostname, *sid, *client_addr;
	size_t read_block;
	enum tls_mode tls_mode;
	const struct tls_info *tls;    /* NULL while in clear */
	int tls_wait;                  /* STLS answered: nothing is read until tls_started */
	int tls_stop;                  /* the current input call ends here */

	unsigned state;
	unsigned bad;
	unsigned auth_failures;
	unsigned n_commands;
	char user[USER_MAX + 1];       /* USER argument */
	char canonical[SASL_ID_MAX + 1]; /* the logged-in user */
	int plaintext_in_clear;        /* USER/PASS allowed without TLS */

	/* AUTH (RFC 5034) */
	char auth_mech[32];            /* the exchange's mechanism, upper-case */
	int auth_open;                 /* io->auth_step called, io->auth_end not yet */
	struct auth_step astep;
	unsigned char *auth_in;        /* the decoded response in astep.in (wiped, freed at _done) */
	size_t auth_in_len;

	/* the maildrop, fixed at login */
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	unsigned char *deleted;
	size_t n_msgs, n_deleted;
	uint64_t total_octets, deleted_octets;

	/* the line being read, LF excluded */
	char *line;
	size_t line_len, line_cap;
	int line_skip;                 /* too long: dropped up to its LF */

	enum pending pending;
	struct pop3_auth_req areq;
	struct pop3_open_req oreq;
	struct pop3_read_req rreq;
	struct pop3_update_req ureq;
	uint32_t *update_uids;

	enum job job;
	int need_drain;
	size_t list_next;              /* LIST/UIDL: next index */
	struct xfer x;
	char *rbuf;                    /* RETR/TOP read block */
	struct buf out;                /* reply being built */

	int driving;                   /* inside drive() */
	int in_input;                  /* inside pop3_session_input() */
	int held;                      /* input returned with bytes left over */
	int gone;                      /* disconnected: no more io calls */
	int shutdown;                  /* close as soon as idle */
};

struct pop3_cmd {
	const char *name;
	unsigned states;
	void (*handler)(struct pop3_session *s, char *arg);
};

void pop3_uidl(uint32_t uidvalidity, uint32_t uid, char *out, size_t outlen)
{
	snprintf(out, outlen, "%" PRIu32 "-%" PRIu32, uidvalidity, uid);
}

/* ---- output ---- */

static void write_raw(struct pop3_session *s, const char *data, size_t len)
{
	if (s->gone || len == 0)
		return;
	s->io.write(s->ctx, data, len);
}

static void reply(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply(struct pop3_session *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	write_raw(s, line, (size_t)n);
}

static void flush_out(struct pop3_session *s)
{
	write_raw(s, s->out.data, s->out.len);
	buf_reset(&s->out);
}

static const char *safe(const char *str, char *out, unsigned n)
{
	return log_safe(str, out, n);
}

static void close_session(struct pop3_session *s, const char *reason)
{
	if (s->state & S_CLOSED)
		return;
	s->state = S_CLOSED;
	log_info("pop3", s->sid, "close reason=%s", reason);
	if (!s->gone)
		s->io.close(s->ctx, reason);
}

static void arm_timeout(struct pop3_session *s)
{
	if (s->gone || (s->state & S_CLOSED))
		return;
	if (s->pending != P_NONE && s->pending != P_DRAIN)
		return;
	s->io.set_timeout(s->ctx, s->cfg.idle_timeout);
}

/* Counts a client mistake; past max_bad_commands the session ends. */
static void bad_command(struct pop3_session *s)
{
	if (s->cfg.max_bad_commands && ++s->bad >= s->cfg.max_bad_commands) {
		log_info("pop3", s->sid, "too many errors count=%u", s->bad);
		close_session(s, "too many errors");
	}
}

/* Drops the decoded response handed to the glue. */
static void auth_wipe_in(struct pop3_session *s)
{
	if (s->auth_in) {
		wipe(s->auth_in, s->auth_in_len);
		free(s->auth_in);
	}
	s->auth_in = NULL;
	s->auth_in_len = 0;
}

static void wipe_secrets(struct pop3_session *s)
{
	wipe(s->line, s->line_cap);
	auth_wipe_in(s);
	s->areq.password = NULL;
}

/* Ends the open SASL exchange, if any: the glue frees its state. The one io
 * call made after a disconnect (see io->auth_end). */
static void auth_finish(struct pop3_session *s)
{
	if (!s->auth_open)
		return;
	s->auth_open = 0;
	s->auth_mech[0] = '\0';
	if (s->io.auth_end)
		s->io.auth_end(s->ctx);
}

/* Closes a session that pop3_session_shutdown() asked to stop, once idle. */
static void maybe_shutdown(struct pop3_session *s)
{
	if (!s->shutdown || (s->state & S_CLOSED) || s->pending || s->job)
		return;
	if (s->tls_wait)
		return;  /* no clear-text reply in the middle of a handshake: after it */
	reply(s, "-ERR [SYS/TEMP] Server shutting down");
	close_session(s, "shutdown");
}

/* After a request or job ended: re-arm the timer and let the caller feed the
 * input it held back. */
static void after_request(struct pop3_session *s)
{
	maybe_shutdown(s);
	if (s->in_input || s->gone || (s->state & S_CLOSED) || s->pending || s->job)
		return;
	arm_timeout(s);
	if (s->held) {
		s->held = 0;
		s->io.resume(s->ctx);
	}
}

/* ---- jobs: RETR, TOP, LIST, UIDL ---- */

static void job_end(struct pop3_session *s)
{
	s->job = J_NONE;
	s->need_drain = 0;
	free(s->rbuf);
	s->rbuf = NULL;
	buf_release(&s->out);
}

/* Appends the wire form of n stored octets to s->out. Returns 1 when TOP
 * has sent all it should. */
static int xfer_convert(struct pop3_session *s, const char *p, size_t n)
{
	struct xfer *x = &s->x;
	size_t i = 0;

	while (i < n) {
		const char *lf;
		size_t end, span;
		int empty;

		if (x->bol && p[i] == '.')
			buf_addch(&s->out, '.');
		x->bol = 0;
		lf = memchr(p + i, '\n', n - i);
		end = lf ? (size_t)(lf - p) : n;
		span = end - i;
		if (span) {
			buf_add(&s->out, p + i, span);
			x->sent += span;
			x->line_len = x->line_len + span > 2 ? 2 : x->line_len + (unsigned)span;
			x->prev_cr = p[end - 1] == '\r';
		}
		if (!lf)
			break;
		/* a line end */
		empty = x->line_len == 0 || (x->line_len == 1 && x->prev_cr);
		if (!x->prev_cr) {
			buf_addch(&s->out, '\r');
			x->sent++;
		}
		buf_addch(&s->out, '\n');
		x->sent++;
		x->bol = 1;
		x->line_len = 0;
		x->prev_cr = 0;
		i = end + 1;
		if (x->top) {
			if (!x->in_body) {
				if (empty) {
					x->in_body = 1;
					if (x->top_lines == 0)
						return 1;
				}
			} else if (--x->top_lines == 0) {
				return 1;
			}
		}
	}
	return 0;
}

/* Ends RETR/TOP with the terminating line. */
static void xfer_finish(struct pop3_session *s)
{
	struct xfer *x = &s->x;

	if (!x->bol)
		buf_add(&s->out, "\r\n", 2);
	buf_add(&s->out, ".\r\n", 3);
	flush_out(s);
	if (!x->top && x->sent != s->msgs[x->msg].size)
		log_warn("pop3", s->sid, "message size differs from the index uid=%" PRIu32 " index=%" PRIu64
			 " sent=%" PRIu64, s->msgs[x->msg].uid, s->msgs[x->msg].size, x->sent);
	job_end(s);
}

static void list_step(struct pop3_session *s)
{
	char line[64];
	size_t lines = 0;

	while (s->list_next < s->n_msgs && lines < LIST_LINES_PER_STEP) {
		size_t i = s->list_next++;

		if (s->deleted[i])
			continue;
		if (s->job == J_LIST) {
			snprintf(line, sizeof(line), "%zu %" PRIu64 "\r\n", i + 1, s->msgs[i].size);
		} else {
			char uidl[32];
			pop3_uidl(s->uidvalidity, s->msgs[i].uid, uidl, sizeof(uidl));
			snprintf(line, sizeof(line), "%zu %s\r\n", i + 1, uidl);
		}
		buf_adds(&s->out, line);
		lines++;
	}
	if (s->list_next >= s->n_msgs) {
		buf_add(&s->out, ".\r\n", 3);
		flush_out(s);
		job_end(s);
		return;
	}
	flush_out(s);
	s->need_drain = 1;
}

/* Issues the next request of the current job, or does a step that needs none. */
static void job_step(struct pop3_session *s)
{
	if (s->need_drain) {
		s->need_drain = 0;
		s->pending = P_DRAIN;
		arm_timeout(s);
		s->io.drain(s->ctx);
		return;
	}
	if (s->job == J_LIST || s->job == J_UIDL) {
		list_step(s);
		return;
	}
	memset(&s->rreq, 0, sizeof(s->rreq));
	s->rreq.msg = s->x.msg;
	s->rreq.offset = s->x.offset;
	s->rreq.buf = s->rbuf;
	s->rreq.cap = s->read_block;
	s->rreq.result = -EIO;
	s->pending = P_READ;
	s->io.read(s->ctx, &s->rreq);
}

/* Runs the current job until it waits for a request or ends. A request
 * answered synchronously comes back through *_done() while driving is set;
 * those only record the result and this loop goes on. */
static void drive(struct pop3_session *s)
{
	if (s->driving)
		return;
	s->driving = 1;
	while (s->job != J_NONE && s->pending == P_NONE && !s->gone && !(s->state & S_CLOSED))
		job_step(s);
	if (s->job != J_NONE && s->pending == P_NONE)
		job_end(s); /* closed or gone meanwhile */
	s->driving = 0;
}

static void job_start(struct pop3_session *s, enum job job)
{
	s->job = job;
	s->need_drain = 0;
	buf_init(&s->out, 2 * s->read_block + LIST_LINES_PER_STEP * 64 + 16);
	if (job == J_XFER)
		s->rbuf = xmalloc(s->read_block);
	drive(s);
}

/* ---- helpers for arguments ---- */

/* Splits arg at runs of spaces into at most max tokens; returns the count,
 * or -1 when there are more. */
static int split_args(char *arg, char **tok, int max)
{
	int n = 0;

	for (;;) {
		while (*arg == ' ')
			arg++;
		if (!*arg)
			return n;
		if (n == max)
			return -1;
		tok[n++] = arg;
		while (*arg && *arg != ' ')
			arg++;
		if (*arg)
			*arg++ = '\0';
	}
}

/* Parses a decimal number; values past UINT64_MAX saturate. */
static int parse_number(const char *t, uint64_t *v_r)
{
	uint64_t v = 0;

	if (!*t)
		return -1;
	for (; *t; t++) {
		if (*t < '0' || *t > '9')
			return -1;
		if (v > (UINT64_MAX - 9) / 10)
			v = UINT64_MAX;
		else
			v = v * 10 + (uint64_t)(*t - '0');
	}
	*v_r = v;
	return 0;
}

/* Checks a message-number argument; replies and returns -1 when it is bad. */
static int msg_arg(struct pop3_session *s, const char *t, size_t *idx_r)
{
	uint64_t n;

	if (parse_number(t, &n) < 0) {
		reply(s, "-ERR Invalid message number");
		bad_command(s);
		return -1;
	}
	if (n == 0 || n > s->n_msgs) {
		reply(s, "-ERR No such message");
		return -1;
	}
	if (s->deleted[n - 1]) {
		reply(s, "-ERR Message %" PRIu64 " already deleted", n);
		return -1;
	}
	*idx_r = (size_t)(n - 1);
	return 0;
}

static void syntax(struct pop3_session *s, const char *usage)
{
	reply(s, "-ERR Syntax: %s", usage);
	bad_command(s);
}

/* ---- AUTHORIZATION ---- */

static void start_auth(struct pop3_session *s, const char *user, const char *password, const char *method)
{
	memset(&s->areq, 0, sizeof(s->areq));
	s->areq.user = user;
	s->areq.password = password;
	s->areq.method = method;
	s->areq.result = -EIO;
	s->pending = P_AUTH;
	s->io.auth(s->ctx, &s->areq);
}

/* STLS can be used now: the listener offers it and the session is still in
 * clear. */
static int tls_offered(const struct pop3_session *s)
{
	return !s->tls && (s->tls_mode == TLS_MODE_STARTTLS || s->tls_mode == TLS_MODE_REQUIRED);
}

/* tls = required and not encrypted yet: no password may be sent. */
static int tls_needed(const struct pop3_session *s)
{
	return !s->tls && s->tls_mode == TLS_MODE_REQUIRED;
}

/* USER/PASS (and PLAIN, LOGIN) may be used: under TLS, or where
 * allow_plaintext_auth allows them in clear. */
static int plaintext_ok(const struct pop3_session *s)
{
	return s->tls || s->plaintext_in_clear;
}

/* The mechanisms the glue offers now ("" for none). */
static const char *auth_mechs(struct pop3_session *s)
{
	const char *m = s->io.auth_mechs && !s->gone ? s->io.auth_mechs(s->ctx) : NULL;

	return m ? m : "";
}

#define PLAINTEXT_DISALLOWED "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections"

static void cmd_capa(struct pop3_session *s, char *arg)
{
	if (*arg) {
		syntax(s, "CAPA");
		return;
	}
	/* RFC 2449 section 6; USER and SASL only where they can be used, STLS
	 * only where it is permitted (RFC 2595 4) */
	reply(s, "+OK Capability list follows");
	reply(s, "TOP");
	reply(s, "UIDL");
	if ((s->state & S_AUTHORIZATION) && !tls_needed(s) && plaintext_ok(s))
		reply(s, "USER");
	reply(s, "RESP-CODES");
	reply(s, "AUTH-RESP-CODE");
	reply(s, "PIPELINING");
	if ((s->state & S_AUTHORIZATION) && tls_offered(s))
		reply(s, "STLS");
	if ((s->state & S_AUTHORIZATION) && !tls_needed(s)) {
		const char *mechs = auth_mechs(s);

		if (*mechs)
			reply(s, "SASL %s", mechs);
	}
	reply(s, "IMPLEMENTATION buzon");
	reply(s, ".");
}

static void cmd_stls(struct pop3_session *s, char *arg)
{
	if (s->tls) {
		/* RFC 2595 4's example wording */
		reply(s, "-ERR Command not permitted when TLS active");
		bad_command(s);
		return;
	}
	if (!tls_offered(s)) {
		/* as before STLS existed: the listener has no TLS */
		reply(s, "-ERR Unknown command");
		bad_command(s);
		return;
	}
	if (*arg) {
		syntax(s, "STLS");
		return;
	}
	reply(s, "+OK Begin TLS negotiation");
	log_info("pop3", s->sid, "stls");
	/* Nothing after this line is read in clear: see the opening comment. */
	s->tls_wait = 1;
	s->tls_stop = 1;
	if (!s->gone)
		s->io.start_tls(s->ctx);
}

static void cmd_user(struct pop3_session *s, char *arg)
{
	char *tok[1];

	if (split_args(arg, tok, 1) != 1) {
		syntax(s, "USER name");
		return;
	}
	if (!plaintext_ok(s)) {
		s->state = S_AUTH;
		reply(s, PLAINTEXT_DISALLOWED);
		log_info("pop3", s->sid, "login refused method=user client=%s reason=needs_tls", s->client_addr);
		bad_command(s);
		return;
	}
	if (strlen(tok[0]) > USER_MAX) {
		reply(s, "-ERR Name too long");
		bad_command(s);
		return;
	}
	strcpy(s->user, tok[0]);
	s->state = S_USER;
	/* the same answer for every name: whether it exists is not told */
	reply(s, "+OK Send your password");
}

static void cmd_pass(struct pop3_session *s, char *arg)
{
	/* RFC 1939: the whole rest of the line is the password, spaces included */
	if (!*arg || strlen(arg) > SASL_PASSWORD_MAX) {
		s->state = S_AUTH;
		syntax(s, "PASS password");
		return;
	}
	start_auth(s, s->user, arg, "user");
}

/* 1 when mech is a word of the space-separated list. */
static int mech_listed(const char *list, const char *mech)
{
	size_t n = strlen(mech);

	while (*list) {
		size_t k = strcspn(list, " ");

		if (k == n && strncasecmp(list, mech, n) == 0)
			return 1;
		list += k;
		list += strspn(list, " ");
	}
	return 0;
}

/* The mechanisms that carry the password itself. */
static int mech_plaintext(const char *mech)
{
	return strcmp(mech, "PLAIN") == 0 || strcmp(mech, "LOGIN") == 0;
}

/* Decodes a client response (strict base64) into s->auth_in; 0 or -EINVAL. */
static int auth_decode(struct pop3_session *s, const char *b64, size_t len)
{
	size_t cap = len / 4 * 3 + 1;
	long n;

	auth_wipe_in(s);
	s->auth_in = xmalloc(cap);
	n = sasl_base64_decode(b64, len, s->auth_in, cap);
	if (n < 0) {
		wipe(s->auth_in, cap);
		free(s->auth_in);
		s->auth_in = NULL;
		return -EINVAL;
	}
	s->auth_in_len = (size_t)n;
	return 0;
}

/* Hands one step to the glue; the decoded response is in s->auth_in (or
 * none: absent). */
static void auth_run_step(struct pop3_session *s, int first, int absent)
{
	struct auth_step *st = &s->astep;

	memset(st, 0, sizeof(*st));
	memcpy(st->mech, s->auth_mech, sizeof(st->mech));
	st->first = first;
	st->in = s->auth_in ? s->auth_in : (const unsigned char *)"";
	st->in_len = s->auth_in_len;
	st->in_absent = absent;
	st->status = AUTH_TEMPFAIL;
	s->auth_open = 1;
	s->pending = P_SASL;
	s->io.auth_step(s->ctx, st);
}

static void cmd_auth(struct pop3_session *s, char *arg)
{
	char *tok[2], mech[40];
	int n = split_args(arg, tok, 2);
	const char *mechs = auth_mechs(s);
	size_t len;

	if (n < 0) {
		syntax(s, "AUTH mechanism [initial-response]");
		return;
	}
	if (n == 0) {
		/* not in RFC 5034, but clients use it to list the mechanisms */
		reply(s, "+OK");
		while (*mechs) {
			size_t k = strcspn(mechs, " ");

			reply(s, "%.*s", (int)k, mechs);
			mechs += k;
			mechs += strspn(mechs, " ");
		}
		reply(s, ".");
		return;
	}
	len = strlen(tok[0]);
	if (len >= sizeof(s->auth_mech))
		len = sizeof(s->auth_mech) - 1;  /* too long for any mechanism: not listed */
	for (size_t i = 0; i < len; i++) {
		char c = tok[0][i];

		s->auth_mech[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
	}
	s->auth_mech[len] = '\0';
	if (strlen(tok[0]) != len || !mech_listed(mechs, s->auth_mech)) {
		log_safe(s->auth_mech, mech, sizeof(mech));
		if (mech_plaintext(s->auth_mech) && !plaintext_ok(s) && *mechs) {
			reply(s, PLAINTEXT_DISALLOWED);
			log_info("pop3", s->sid, "auth refused mech=%s client=%s reason=needs_tls", mech,
				 s->client_addr);
		} else {
			reply(s, "-ERR Unsupported authentication mechanism");
			log_info("pop3", s->sid, "auth refused mech=%s client=%s reason=unknown_mech", mech,
				 s->client_addr);
		}
		s->auth_mech[0] = '\0';
		bad_command(s);
		return;
	}
	/* a USER given before is forgotten */
	s->state = S_AUTH;
	memset(s->user, 0, sizeof(s->user));
	auth_wipe_in(s);
	if (n == 2 && strcmp(tok[1], "=") != 0 && auth_decode(s, tok[1], strlen(tok[1])) < 0) {
		log_safe(s->auth_mech, mech, sizeof(mech));
		log_info("pop3", s->sid, "auth failed mech=%s user=- client=%s reason=bad_base64", mech,
			 s->client_addr);
		s->auth_mech[0] = '\0';
		reply(s, "-ERR Malformed SASL response");
		bad_command(s);
		return;
	}
	if (n == 2 && !s->auth_in)
		s->auth_in = xcalloc(1, 1);  /* "=": an empty initial response (RFC 5034 4) */
	auth_run_step(s, 1, n == 1);
}

/* A line read while a "+ " challenge waits for its answer. */
static void sasl_line(struct pop3_session *s, const char *line, size_t len)
{
	char mech[40];

	s->state = S_AUTH;
	log_safe(s->auth_mech, mech, sizeof(mech));
	if (len == 1 && line[0] == '*') {
		reply(s, "-ERR Authentication cancelled");
		log_info("pop3", s->sid, "auth cancelled mech=%s client=%s", mech, s->client_addr);
		auth_finish(s);
		/* counted: a loop of AUTH and "*" costs the glue a step each time */
		bad_command(s);
		return;
	}
	if (auth_decode(s, line, len) < 0) {
		reply(s, "-ERR Malformed SASL response");
		log_info("pop3", s->sid, "auth failed mech=%s user=- client=%s reason=bad_base64", mech,
			 s->client_addr);
		auth_finish(s);
		bad_command(s);
		return;
	}
	auth_run_step(s, 0, 0);
}

static void auth_failed(struct pop3_session *s)
{
	if (s->cfg.max_auth_failures && ++s->auth_failures >= s->cfg.max_auth_failures) {
		log_info("pop3", s->sid, "too many authentication failures count=%u", s->auth_failures);
		close_session(s, "too many authentication failures");
	}
}

/* ---- TRANSACTION ---- */

static void cmd_stat(struct pop3_session *s, char *arg)
{
	if (*arg) {
		syntax(s, "STAT");
		return;
	}
	reply(s, "+OK %zu %" PRIu64, s->n_msgs - s->n_deleted, s->total_octets - s->deleted_octets);
}

static void cmd_list_common(struct pop3_session *s, char *arg, enum job job)
{
	char *tok[1];
	int n = split_args(arg, tok, 1);
	size_t i;

	if (n < 0) {
		syntax(s, job == J_LIST ? "LIST [msg]" : "UIDL [msg]");
		return;
	}
	if (n == 1) {
		if (msg_arg(s, tok[0], &i) < 0)
			return;
		if (job == J_LIST) {
			reply(s, "+OK %zu %" PRIu64, i + 1, s->msgs[i].size);
		} else {
			char uidl[32];
			pop3_uidl(s->uidvalidity, s->msgs[i].uid, uidl, sizeof(uidl));
			reply(s, "+OK %zu %s", i + 1, uidl);
		}
		return;
	}
	if (job == J_LIST)
		reply(s, "+OK %zu messages (%" PRIu64 " octets)", s->n_msgs - s->n_deleted,
		      s->total_octets - s->deleted_octets);
	else
		reply(s, "+OK Unique-ID listing follows");
	s->list_next = 0;
	job_start(s, job);
}

static void cmd_list(struct pop3_session *s, char *arg)
{
	cmd_list_common(s, arg, J_LIST);
}

static void cmd_uidl(struct pop3_session *s, char *arg)
{
	cmd_list_common(s, arg, J_UIDL);
}

static void xfer_start(struct pop3_session *s, size_t i, int top, uint64_t lines)
{
	memset(&s->x, 0, sizeof(s->x));
	s->x.msg = i;
	s->x.bol = 1;
	s->x.top = top;
	s->x.top_lines = lines;
	/* the +OK line goes out with the first block, once the file could be read */
	job_start(s, J_XFER);
}

static void cmd_retr(struct pop3_session *s, char *arg)
{
	char *tok[1];
	size_t i;

	if (split_args(arg, tok, 1) != 1) {
		syntax(s, "RETR msg");
		return;
	}
	if (msg_arg(s, tok[0], &i) < 0)
		return;
	xfer_start(s, i, 0, 0);
}

static void cmd_top(struct pop3_session *s, char *arg)
{
	char *tok[2];
	uint64_t lines;
	size_t i;

	if (split_args(arg, tok, 2) != 2 || parse_number(tok[1], &lines) < 0) {
		syntax(s, "TOP msg lines");
		return;
	}
	if (msg_arg(s, tok[0], &i) < 0)
		return;
	xfer_start(s, i, 1, lines);
}

static void cmd_dele(struct pop3_session *s, char *arg)
{
	char *tok[1];
	size_t i;

	if (split_args(arg, tok, 1) != 1) {
		syntax(s, "DELE msg");
		return;
	}
	if (msg_arg(s, tok[0], &i) < 0)
		return;
	s->deleted[i] = 1;
	s->n_deleted++;
	s->deleted_octets += s->msgs[i].size;
	reply(s, "+OK Message %zu deleted", i + 1);
}

static void cmd_noop(struct pop3_session *s, char *arg)
{
	if (*arg) {
		syntax(s, "NOOP");
		return;
	}
	reply(s, "+OK");
}

static void cmd_rset(struct pop3_session *s, char *arg)
{
	if (*arg) {
		syntax(s, "RSET");
		return;
	}
	memset(s->deleted, 0, s->n_msgs);
	s->n_deleted = 0;
	s->deleted_octets = 0;
	reply(s, "+OK %zu messages (%" PRIu64 " octets)", s->n_msgs, s->total_octets);
}

static void cmd_quit(struct pop3_session *s, char *arg)
{
	size_t k = 0;

	if (*arg) {
		syntax(s, "QUIT");
		return;
	}
	if (!(s->state & S_TRANS)) {
		reply(s, "+OK %s POP3 server signing off", s->hostname);
		close_session(s, "quit");
		return;
	}
	/* UPDATE state (RFC 1939 section 6): even with nothing to remove, the
	 * glue releases the maildrop before the reply, so that a client that
	 * reconnects at once never finds it still locked */
	s->update_uids = xcalloc(s->n_deleted ? s->n_deleted : 1, sizeof(*s->update_uids));
	for (size_t i = 0; i < s->n_msgs; i++)
		if (s->deleted[i])
			s->update_uids[k++] = s->msgs[i].uid;
	memset(&s->ureq, 0, sizeof(s->ureq));
	s->ureq.uids = s->update_uids;
	s->ureq.n = k;
	s->ureq.result = -EIO;
	s->pending = P_UPDATE;
	s->io.update(s->ctx, &s->ureq);
}

static const struct pop3_cmd commands[] = {
	{ "CAPA", S_ANY, cmd_capa },
	{ "QUIT", S_ANY, cmd_quit },
	{ "USER", S_AUTHORIZATION, cmd_user },
	{ "PASS", S_USER, cmd_pass },
	{ "AUTH", S_AUTHORIZATION, cmd_auth },
	{ "STAT", S_TRANS, cmd_stat },
	{ "LIST", S_TRANS, cmd_list },
	{ "RETR", S_TRANS, cmd_retr },
	{ "DELE", S_TRANS, cmd_dele },
	{ "NOOP", S_TRANS, cmd_noop },
	{ "RSET", S_TRANS, cmd_rset },
	{ "TOP", S_TRANS, cmd_top },
	{ "UIDL", S_TRANS, cmd_uidl },
	{ "STLS", S_AUTHORIZATION, cmd_stls },
};

/* Runs one complete line (s->line, LF removed). */
static void process_line(struct pop3_session *s)
{
	size_t len = s->line_len, vlen;
	char *arg;
	const struct pop3_cmd *c = NULL;

	if (len > 0 && s->line[len - 1] == '\r')
		len--;
	if (s->line_skip) {
		wipe(s->line, s->line_cap);
		if (s->state & S_SASL) {
			s->state = S_AUTH;
			auth_finish(s);
		}
		reply(s, "-ERR Line too long");
		bad_command(s);
		return;
	}
	if (memchr(s->line, '\0', len) || memchr(s->line, '\r', len)) {
		wipe(s->line, s->line_cap);
		if (s->state & S_SASL) {
			s->state = S_AUTH;
			auth_finish(s);
		}
		reply(s, "-ERR Invalid character in command");
		bad_command(s);
		return;
	}
	s->line[len] = '\0';
	if (s->state & S_SASL) {
		sasl_line(s, s->line, len);
		wipe(s->line, s->line_cap);
		return;
	}
	s->n_commands++;
	vlen = strcspn(s->line, " ");
	arg = s->line + vlen;
	if (*arg)
		*arg++ = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcasecmp(commands[i].name, s->line) == 0) {
			c = &commands[i];
			break;
		}
	}
	if (s->cfg.max_commands && s->n_commands > s->cfg.max_commands && !(c && c->handler == cmd_quit)) {
		reply(s, "-ERR Too many commands in this session, send QUIT");
		bad_command(s);
		return;
	}
	if (!c) {
		reply(s, "-ERR Unknown command");
		bad_command(s);
		return;
	}
	if (tls_needed(s) && (c->handler == cmd_user || c->handler == cmd_pass || c->handler == cmd_auth)) {
		/* the line may hold a password or a SASL response: never read */
		wipe(s->line, s->line_cap);
		reply(s, "-ERR Command not permitted before STLS");
		bad_command(s);
		return;
	}
	if (!(c->states & s->state)) {
		if (c->handler == cmd_pass || c->handler == cmd_auth)
			wipe(s->line, s->line_cap);
		if (s->state & S_TRANS)
			reply(s, "-ERR Already logged in");
		else if (c->handler == cmd_pass)
			reply(s, "-ERR Send USER first");
		else
			reply(s, "-ERR Log in first");
		bad_command(s);
		return;
	}
	c->handler(s, arg);
	/* A PASS line held the password: wipe it unless a login in flight
	 * still reads it (pop3_session_auth_done() wipes it then). An AUTH
	 * line's response was decoded (and copied) before the step. */
	if ((c->handler == cmd_pass && s->pending != P_AUTH) || c->handler == cmd_auth)
		wipe(s->line, s->line_cap);
}

/* Reads octets up to and including one LF; returns the octets consumed and
 * counts a finished line in *nlines. */
static size_t feed_line(struct pop3_session *s, const char *data, size_t len, unsigned *nlines)
{
	const char *lf = memchr(data, '\n', len);
	size_t take = lf ? (size_t)(lf - data) + 1 : len;
	size_t content = lf ? take - 1 : take;

	if (!s->line_skip) {
		/* max_line counts the CRLF: the content (CR included) gets one octet less */
		if (content > s->line_cap - 1 - s->line_len) {
			s->line_skip = 1;
			wipe(s->line, s->line_cap);
			s->line_len = 0;
		} else {
			memcpy(s->line + s->line_len, data, content);
			s->line_len += content;
		}
	}
	if (lf) {
		(*nlines)++;
		process_line(s);
		s->line_len = 0;
		s->line_skip = 0;
		maybe_shutdown(s);
	}
	return take;
}

/* ---- public interface ---- */

struct pop3_session *pop3_session_new(const struct pop3_session_params *p, const struct pop3_io *io, void *ctx)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	s->cfg = *p->cfg;
	if (s->cfg.max_line < 64)
		s->cfg.max_line = 64;
	s->io = *io;
	s->ctx = ctx;
	s->hostname = xstrdup(p->hostname);
	s->sid = xstrdup(p->sid);
	s->client_addr = xstrdup(p->client_addr ? p->client_addr : "unknown");
	s->read_block = p->read_block ? p->read_block : 65536;
	/* the line buffer holds max_line - 1 octets (the LF is not kept) plus a NUL */
	s->line_cap = s->cfg.max_line;
	s->line = xmalloc(s->line_cap + 1);
	s->tls_mode = p->tls_mode;
	s->tls = p->tls;
	s->plaintext_in_clear = p->plaintext_in_clear;
	if (io->auth_mechs && !io->auth_step)
		BUG("pop3 session offers AUTH without io->auth_step");
	if ((s->tls_mode == TLS_MODE_STARTTLS || s->tls_mode == TLS_MODE_REQUIRED) && !io->start_tls)
		BUG("pop3 session offers STLS without io->start_tls");
	s->state = S_AUTH;
	buf_init(&s->out, 1);
	reply(s, "+OK %s POP3 server ready", s->hostname);
	log_info("pop3", s->sid, "session start client=%s", s->client_addr);
	arm_timeout(s);
	return s;
}

void pop3_session_free(struct pop3_session **sp)
{
	struct pop3_session *s = *sp;

	if (!s)
		return;
	if (s->pending)
		BUG("pop3 session freed with a request in flight");
	auth_finish(s);
	wipe_secrets(s);
	job_end(s);
	free(s->line);
	free(s->msgs);
	free(s->deleted);
	free(s->update_uids);
	free(s->hostname);
	free(s->sid);
	free(s->client_addr);
	free(s);
	*sp = NULL;
}

size_t pop3_session_input(struct pop3_session *s, const char *data, size_t len)
{
	unsigned nlines = 0;
	size_t off = 0;

	if (s->tls_wait && !(s->state & S_CLOSED))
		return 0;  /* the glue drops what it holds once the handshake is done */
	s->in_input++;
	while (off < len) {
		if (s->tls_stop)
			break;  /* STLS: not one byte after its line */
		if (s->state & S_CLOSED) {
			off = len; /* after QUIT or a close the rest is dropped */
			break;
		}
		if (s->pending || s->job)
			break;
		if (nlines >= CMDS_PER_INPUT && s->line_len == 0 && !s->line_skip)
			break;
		off += feed_line(s, data + off, len - off, &nlines);
	}
	s->in_input--;
	s->tls_stop = 0;
	if (off < len && !s->tls_wait)
		s->held = 1;
	/* only a finished line restarts the time: see the opening comment */
	if (nlines && !s->pending && !s->job)
		arm_timeout(s);
	return off;
}

void pop3_session_disconnected(struct pop3_session *s)
{
	s->gone = 1;
	/* a login in flight still reads the password: auth_done wipes it */
	if (s->pending != P_AUTH && s->pending != P_SASL)
		wipe_secrets(s);
	/* the glue frees its SASL state now, or after the step in flight */
	if (s->pending != P_SASL)
		auth_finish(s);
	if (!(s->state & S_CLOSED)) {
		s->state = S_CLOSED;
		/* a dropped connection is not QUIT: nothing is removed (RFC 1939 section 6) */
		log_info("pop3", s->sid, "close reason=disconnected%s", s->n_deleted ? " deleted_kept=yes" : "");
	}
}

void pop3_session_timeout(struct pop3_session *s)
{
	if (s->state & S_CLOSED)
		return;
	if (s->pending != P_NONE && s->pending != P_DRAIN)
		return; /* waiting for our own disk work, not for the client */
	if (s->pending == P_DRAIN) {
		/* the client stopped reading in the middle of a reply */
		close_session(s, "timeout while sending");
		return;
	}
	if (s->tls_wait) {
		/* a clear-text -ERR would land in the middle of the handshake */
		close_session(s, "timeout during tls handshake");
		return;
	}
	/* autologout: no UPDATE (RFC 1939 section 3) */
	reply(s, "-ERR Disconnected for inactivity");
	close_session(s, "timeout");
}

void pop3_session_shutdown(struct pop3_session *s)
{
	s->shutdown = 1;
	maybe_shutdown(s);
}

int pop3_session_busy(const struct pop3_session *s)
{
	return s->pending != P_NONE;
}

/* After a login: opens the maildrop of s->canonical (the reply comes at
 * pop3_session_open_done()). */
static void open_maildrop(struct pop3_session *s)
{
	memset(&s->oreq, 0, sizeof(s->oreq));
	s->oreq.user = s->canonical;
	s->oreq.result = -EIO;
	s->pending = P_OPEN;
	s->io.open(s->ctx, &s->oreq);
}

void pop3_session_sasl_done(struct pop3_session *s, struct auth_step *st)
{
	char user[128], mech[40];
	enum auth_status status = st->status;
	int live;

	if (s->pending != P_SASL || st != &s->astep)
		BUG("pop3 sasl_done without an AUTH step in flight");
	s->pending = P_NONE;
	auth_wipe_in(s);
	log_safe(st->mech, mech, sizeof(mech));
	st->user[sizeof(st->user) - 1] = '\0';
	if (status == AUTH_OK && !st->user[0]) {
		log_error("pop3", s->sid, "auth ok without a user mech=%s", mech);
		status = AUTH_TEMPFAIL;
	}
	live = !s->gone && !(s->state & S_CLOSED);
	switch (status) {
	case AUTH_CONTINUE:
		if (live) {
			/* "+ " and the challenge in base64, empty for none (RFC 5034 4) */
			size_t cap = (st->out_len + 2) / 3 * 4 + 5;
			char *line = xmalloc(cap);
			long n;

			memcpy(line, "+ ", 2);
			n = sasl_base64_encode(st->out ? st->out : (const unsigned char *)"", st->out_len, line + 2,
					       cap - 2);
			if (n < 0)
				BUG("pop3 auth challenge encoding");
			memcpy(line + 2 + n, "\r\n", 2);
			write_raw(s, line, 2 + (size_t)n + 2);
			wipe(line, cap);
			free(line);
			s->state = S_SASL;
		}
		break;
	case AUTH_OK:
		log_info("pop3", s->sid, "auth ok mech=%s user=%s client=%s", mech, safe(st->user, user, sizeof(user)),
			 s->client_addr);
		snprintf(s->canonical, sizeof(s->canonical), "%s", st->user);
		break;
	case AUTH_FAILED:
		/* identical for an unknown user, a disabled one and a wrong
		 * password (the glue makes them so) */
		log_info("pop3", s->sid, "auth failed mech=%s user=%s client=%s", mech,
			 st->user[0] ? safe(st->user, user, sizeof(user)) : "-", s->client_addr);
		if (live)
			reply(s, "-ERR [AUTH] Authentication failed");
		break;
	case AUTH_MALFORMED:
		log_info("pop3", s->sid, "auth failed mech=%s user=- client=%s reason=malformed", mech, s->client_addr);
		if (live)
			reply(s, "-ERR Malformed SASL response");
		break;
	default:
		log_warn("pop3", s->sid, "auth tempfail mech=%s client=%s", mech, s->client_addr);
		if (live)
			reply(s, "-ERR [SYS/TEMP] Authentication is not available now, try again later");
		break;
	}
	if (st->out) {
		wipe(st->out, st->out_len);
		free(st->out);
	}
	st->out = NULL;
	st->out_len = 0;
	st->in = NULL;
	st->in_len = 0;
	memset(st->user, 0, sizeof(st->user));
	if (status != AUTH_CONTINUE || !live)
		auth_finish(s);
	if (!live) {
		s->canonical[0] = '\0';
		return;
	}
	if (status == AUTH_OK) {
		open_maildrop(s);
		return;
	}
	if (status == AUTH_FAILED)
		auth_failed(s);
	else if (status == AUTH_MALFORMED)
		bad_command(s);
	after_request(s);
}

void pop3_session_auth_done(struct pop3_session *s, struct pop3_auth_req *req)
{
	char user[128];

	if (s->pending != P_AUTH || req != &s->areq)
		BUG("pop3 auth_done without a login in flight");
	s->pending = P_NONE;
	safe(req->user, user, sizeof(user));
	switch (req->result) {
	case 0:
		log_info("pop3", s->sid, "login ok user=%s method=%s client=%s", user, req->method, s->client_addr);
		break;
	case -EACCES:
		log_info("pop3", s->sid, "login failed user=%s method=%s client=%s reason=bad_credentials", user,
			 req->method, s->client_addr);
		break;
	default:
		log_warn("pop3", s->sid, "login failed user=%s method=%s client=%s reason=tempfail error=%d", user,
			 req->method, s->client_addr, req->result);
		break;
	}
	if (req->result == 0)
		snprintf(s->canonical, sizeof(s->canonical), "%s", req->canonical);
	wipe_secrets(s);
	memset(s->user, 0, sizeof(s->user));
	if (s->gone || (s->state & S_CLOSED))
		return;
	s->state = S_AUTH;
	switch (req->result) {
	case 0:
		open_maildrop(s);
		return;
	case -EACCES:
		reply(s, "-ERR [AUTH] Authentication failed");
		auth_failed(s);
		break;
	default:
		reply(s, "-ERR [SYS/TEMP] Authentication is not available now, try again later");
		break;
	}
	after_request(s);
}

void pop3_session_open_done(struct pop3_session *s, struct pop3_open_req *req)
{
	char user[128];

	if (s->pending != P_OPEN || req != &s->oreq)
		BUG("pop3 open_done without an open in flight");
	s->pending = P_NONE;
	safe(s->canonical, user, sizeof(user));
	if (req->result == 0 && !s->gone && !(s->state & S_CLOSED)) {
		s->msgs = req->msgs;
		s->n_msgs = req->n_msgs;
		req->msgs = NULL;
		s->uidvalidity = req->uidvalidity;
		s->deleted = xcalloc(s->n_msgs ? s->n_msgs : 1, 1);
		s->total_octets = 0;
		for (size_t i = 0; i < s->n_msgs; i++)
			s->total_octets += s->msgs[i].size;
		s->state = S_TRANS;
		log_info("pop3", s->sid, "maildrop open user=%s messages=%zu octets=%" PRIu64, user, s->n_msgs,
			 s->total_octets);
		reply(s, "+OK Logged in, %zu messages (%" PRIu64 " octets)", s->n_msgs, s->total_octets);
		after_request(s);
		return;
	}
	free(req->msgs);
	req->msgs = NULL;
	req->n_msgs = 0;
	if (s->gone || (s->state & S_CLOSED))
		return;
	switch (req->result) {
	case 0:
		break;
	case -EBUSY:
		log_info("pop3", s->sid, "maildrop in use user=%s", user);
		reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
		break;
	case -ENOENT:
		log_error("pop3", s->sid, "maildrop missing user=%s", user);
		reply(s, "-ERR [SYS/PERM] Mailbox not found");
		break;
	default:
		log_error("pop3", s->sid, "maildrop open failed user=%s error=%d", user, req->result);
		reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later");
		break;
	}
	s->canonical[0] = '\0';
	after_request(s);
}

void pop3_session_read_done(struct pop3_session *s, struct pop3_read_req *req)
{
	struct xfer *x = &s->x;

	if (s->pending != P_READ || req != &s->rreq || s->job != J_XFER)
		BUG("pop3 read_done without a read in flight");
	s->pending = P_NONE;
	if (s->gone || (s->state & S_CLOSED)) {
		job_end(s);
		return;
	}
	if (req->result < 0 || (size_t)req->result > req->cap) {
		if (!x->started) {
			if (req->result == -ENOENT) {
				reply(s, "-ERR Message %zu was removed by another session", x->msg + 1);
			} else {
				log_error("pop3", s->sid, "message read failed uid=%" PRIu32 " error=%zd",
					  s->msgs[x->msg].uid, req->result);
				reply(s, "-ERR [SYS/TEMP] Cannot read the message, try again later");
			}
			job_end(s);
		} else {
			/* the reply is half sent: only closing tells the client it is incomplete */
			log_error("pop3", s->sid, "message read failed mid-transfer uid=%" PRIu32 " error=%zd",
				  s->msgs[x->msg].uid, req->result);
			job_end(s);
			close_session(s, "read error");
		}
	} else {
		if (!x->started) {
			x->started = 1;
			if (x->top)
				reply(s, "+OK Top of message follows");
			else
				reply(s, "+OK %" PRIu64 " octets", s->msgs[x->msg].size);
		}
		if (req->result == 0) {
			xfer_finish(s);
		} else {
			x->offset += (uint64_t)req->result;
			if (xfer_convert(s, req->buf, (size_t)req->result)) {
				xfer_finish(s);
			} else {
				flush_out(s);
				s->need_drain = 1;
			}
		}
	}
	drive(s);
	after_request(s);
}

void pop3_session_drained(struct pop3_session *s)
{
	if (s->pending != P_DRAIN)
		BUG("pop3 drained without a drain wait");
	s->pending = P_NONE;
	if (s->gone || (s->state & S_CLOSED)) {
		job_end(s);
		return;
	}
	arm_timeout(s);
	drive(s);
	after_request(s);
}

void pop3_session_update_done(struct pop3_session *s, struct pop3_update_req *req)
{
	char user[128];

	if (s->pending != P_UPDATE || req != &s->ureq)
		BUG("pop3 update_done without an update in flight");
	s->pending = P_NONE;
	safe(s->canonical, user, sizeof(user));
	if (req->result == 0 && req->done == req->n) {
		log_info("pop3", s->sid, "update user=%s removed=%zu", user, req->done);
		if (req->n == 0)
			reply(s, "+OK %s POP3 server signing off", s->hostname);
		else
			reply(s, "+OK %s POP3 server signing off (%zu messages deleted)", s->hostname, req->done);
	} else {
		log_error("pop3", s->sid, "update failed user=%s removed=%zu of=%zu error=%d", user, req->done, req->n,
			  req->result);
		reply(s, "-ERR [SYS/TEMP] Some deleted messages not removed (%zu of %zu removed)", req->done, req->n);
	}
	free(s->update_uids);
	s->update_uids = NULL;
	close_session(s, "quit");
}

void pop3_session_tls_started(struct pop3_session *s, const struct tls_info *info)
{
	if (!s->tls_wait || !info)
		BUG("pop3 tls_started without a STLS in progress");
	s->tls_wait = 0;
	s->tls = info;
	if (s->gone || (s->state & S_CLOSED))
		return;
	/* RFC 2595 4: still AUTHORIZATION; a USER given in clear is forgotten,
	 * and so is the line buffer (empty: input stopped at a line end). */
	s->state = S_AUTH;
	wipe(s->user, sizeof(s->user));
	s->line_len = 0;
	s->line_skip = 0;
	log_info("pop3", s->sid, "tls started version=%s cipher=%s", info->version, info->cipher);
	maybe_shutdown(s);
	/* the time for the next command starts now, as after a command */
	arm_timeout(s);
}
