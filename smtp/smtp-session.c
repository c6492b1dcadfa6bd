#include "smtp/smtp-session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/sasl.h"
#include "lib/xalloc.h"
#include "smtp/smtp-parse.h"

/*
 * The SMTP receiver state machine. Layout follows OpenSMTPD's smtp_session.c:
 * a session with a state, a separate transaction that RSET, EHLO and the end
 * of a message throw away, and a command table of {name, allowed states,
 * handler}.
 *
 * Input: smtp_session_input() copies a command line into s->line (at most
 * SMTP_LINE_MAX octets; the rest of a longer line is dropped as it arrives),
 * feeds DATA content through a byte state machine that finds the end marker
 * and undoes dot-stuffing, and feeds BDAT chunks by their octet count. It
 * stops consuming while a request (recipient check, delivery) is in flight,
 * so the caller holds the pipelined rest and replies stay in order.
 *
 * Decisions worth knowing:
 * - DATA ends only at <CRLF>.<CRLF> (the 354 counts as a CRLF). A line that
 *   begins after a bare LF is a line (normalize mode stores the LF as a line
 *   end and undoes dot-stuffing there, as Postfix does), but it can never end
 *   the data; neither can <CR>.<CR>, <LF>.<LF>, <CRLF>.<LF>, <LF>.<CRLF> or
 *   <CRLF>.<CR>x. No byte after such a sequence can be read as a command
 *   (SMTP smuggling, CVE-2023-51764).
 * - A text line longer than 1000 octets (CRLF included) makes the message be
 *   read to its end and refused with "550 5.6.0": RFC 5321 4.5.3.1.6 sets the
 *   limit, 550 is an allowed reply to the end of data, and RFC 3463 X.6.0
 *   ("other or undefined media error") is the content-format class that
 *   fits best (5.5.2 is about commands, 5.3.4 about size). The limit applies
 *   to BDAT content as well: it is stored as text with LF line ends.
 * - Pipelining bound: one smtp_session_input() call processes at most
 *   max_pipeline command lines, then returns with the rest unconsumed (the
 *   caller calls again once its queued replies have drained). Together with
 *   the caller's output high-water mark this bounds the replies one read of
 *   pipelined commands can produce.
 * - Deadlines, not idle timers (slowloris): the session keeps one deadline.
 *   Waiting for a command it is command_timeout from the moment the session
 *   became ready for it, and octets of an unfinished line never move it, so
 *   a client trickling a byte every few seconds is cut like a silent one.
 *   During DATA and BDAT content it starts at data_timeout, and each octet
 *   received moves it 1/min_data_rate second later, but never past
 *   data_timeout from now: a client below the rate runs out of time, one
 *   above it never does, and a pause longer than data_timeout always ends
 *   the session. This is Postfix's smtpd_per_request_deadline with
 *   smtpd_min_data_rate.
 * - A refused BDAT chunk is answered when its command is read, before any
 *   of its octets: past max_message_size, or past what earlier chunks left
 *   of it, "552 5.3.4". The client reads that reply after it has sent the
 *   chunk, in order with the others, as it would a reply sent later.
 *   RFC 3030 wants a refused chunk read and dropped to stay in step with
 *   the client; that is done only for a chunk no larger than
 *   max_message_size (no more than an over-size DATA message costs). A
 *   larger one (BDAT 18446744073709551615) would keep a slot busy for as
 *   long as the client likes at min_data_rate, so the session closes after
 *   its reply; the client has its permanent answer either way.
 * - STARTTLS (RFC 3207): the 220 is the last thing read in clear. Input
 *   stops right after the STARTTLS line, before any byte pipelined behind
 *   it, and stays stopped (0 consumed) until smtp_session_tls_started():
 *   the glue throws away what it holds, so a command injected in clear
 *   behind STARTTLS is never run inside the TLS session (CVE-2011-0411
 *   and the 2021 "NO STARTTLS" variants). The handshake then resets the
 *   session to its state after the greeting (RFC 3207 4.2): EHLO and any
 *   transaction are forgotten. STARTTLS is refused inside a transaction
 *   (503, as Postfix and OpenSMTPD do): what the client said in clear is
 *   thrown away by the handshake anyway, and a client that mixes the two
 *   is confused. With tls = required, only EHLO, HELO, STARTTLS, NOOP,
 *   RSET and QUIT are served before TLS; the rest get 530 5.7.0 (RFC 3207
 *   4), a BDAT's chunk still being read and dropped to stay in step.
 * - AUTH (RFC 4954): the session does the framing, the base64 and the
 *   replies; the glue runs the mechanism (io->auth_step, answered by
 *   smtp_session_auth_done()) and says what may be used now
 *   (io->auth_mechs, asked at every EHLO and AUTH, so STARTTLS changes it).
 *   While a step runs nothing more is read, so a line pipelined behind AUTH
 *   is read after the reply, as a response when that reply was a 334. AUTH
 *   lines and responses may be 12288 octets (RFC 4954 4); only they get a
 *   buffer that large, allocated at once (no realloc leaves a copy of the
 *   credentials behind) and wiped with the command line after use, as are
 *   the decoded responses and the challenges. A mechanism the glue does
 *   not list now gets 538 5.7.11 when it is one that needs TLS (PLAIN,
 *   LOGIN, *-PLUS) and the session is in clear, else 504 5.5.4. The third
 *   535 closes the session (421 4.7.0); cancels and undecodable lines count
 *   as errors (max_bad_commands), since each exchange costs the glue a
 *   worker step. A user authenticated in clear is forgotten by STARTTLS
 *   (RFC 3207 4.2); EHLO keeps it (RFC 4954 says nothing else, Postfix
 *   does the same). io->auth_end comes once per exchange that reached the
 *   glue, even after a disconnect, never with a step in flight.
 * - Submission (RFC 6409): MAIL needs AUTH (530 5.7.0); the glue checks
 *   that the sender belongs to the user (553 5.7.1), the null sender is
 *   refused (a user sends no bounces), and a message that lacks Date or
 *   Message-ID gets them in the block handed over with Received (8.2,
 *   8.3), found by reading the header section up to its empty line or its
 *   first line that is not a field.
 */

enum smtp_state {
	S_INIT   = 1 << 0,  /* greeting sent, no EHLO/HELO yet */
	S_READY  = 1 << 1,  /* EHLO/HELO done, no transaction */
	S_MAIL   = 1 << 2,  /* MAIL accepted, no recipient yet */
	S_RCPT   = 1 << 3,  /* at least one recipient accepted */
	S_BDAT   = 1 << 4,  /* between BDAT chunks, LAST not seen yet */
	S_DATA   = 1 << 5,  /* reading DATA content */
	S_CHUNK  = 1 << 6,  /* reading the octets of one BDAT chunk */
	S_CLOSED = 1 << 7,  /* QUIT, 421 or disconnect: input is dropped */
};

#define S_ANY_CMD (S_INIT | S_READY | S_MAIL | S_RCPT | S_BDAT)
#define S_TX (S_MAIL | S_RCPT | S_BDAT)

/* Where the DATA byte machine stands. */
enum data_state {
	D_BOL,       /* at the start of a line that follows a CRLF (or the 354) */
	D_BOL_LF,    /* at the start of a line that follows a bare LF */
	D_TEXT,      /* inside a line */
	D_CR,        /* a CR was read, not stored yet */
	D_DOT,       /* "." at D_BOL */
	D_DOT_CR,    /* ".\r" at D_BOL */
	D_DOT_LF,    /* "." at D_BOL_LF */
	D_DOT_LF_CR, /* ".\r" at D_BOL_LF */
};

enum pending { P_NONE, P_RCPT, P_DELIVER, P_AUTH, P_SENDER };

/* The longest AUTH command line or response line, CRLF included (RFC 4954
 * 4: 12288 octets). Lines longer than SMTP_LINE_MAX go to a buffer that
 * exists only while such a line is read. */
#define SMTP_AUTH_LINE_MAX 12288
/* Failed authentications (535) before the session is closed. */
#define SMTP_MAX_AUTH_FAILURES 3

struct smtp_tx {
	char from[SMTP_PATH_MAX + 1];    /* reverse-path, "" for <> */
	uint64_t size_hint;              /* MAIL SIZE=, 0 if none */
	int smtputf8;
	unsigned n_rcpt;                 /* accepted RCPT commands */
	char first_rcpt[SMTP_PATH_MAX + 64];
	char **targets;                  /* unique canonical addresses */
	size_t n_targets, cap_targets;
	struct buf msg;                  /* stored content, max = max_message_size */
	uint64_t size;                   /* octets received, CRLF = 2 */
	unsigned line_len;               /* octets of the current text line */
	enum data_state ds;
	int too_big, bare_lf, long_line;
	int add_date, add_msgid;         /* submission: the header section lacks them */
	int no_memory;                   /* the shared message budget said no */
	int reserved;                    /* io->reserve() was called */
	int bdat_failed;                 /* a chunk was refused: refuse the rest */
	/* the BDAT chunk being read */
	uint64_t chunk_size, chunk_left;
	int chunk_last;
	int chunk_discard;               /* refused (already answered): read and dropped */
	unsigned chunk_ret;              /* state to go back to after a discarded chunk */
};

struct smtp_session {
	struct smtp_config cfg;
	struct smtp_io io;
	void *ctx;
	char *hostname, *sid, *client_addr, *client_name;
	enum tls_mode tls_mode;
	const struct tls_info *tls;      /* NULL while in clear */
	int auth_required, submission;

	unsigned state;
	int esmtp;
	char helo[256];
	unsigned bad;
	unsigned n_msg;                  /* transactions that reached the end of data */
	struct smtp_tx tx;

	char line[SMTP_LINE_MAX];        /* the command line being read, LF excluded */
	size_t line_len;
	int line_skip;                   /* the line is too long: drop it up to LF */
	int line_auth;                   /* the line is an AUTH command or response */
	struct buf long_line;            /* an AUTH line past SMTP_LINE_MAX: its whole
					  * content while it is read (allocated at once,
					  * wiped and freed after the line) */
	int line_secret;                 /* the line held credentials: wipe it */

	/* SMTP AUTH (RFC 4954) */
	char *auth_user;                 /* who authenticated; NULL before */
	char auth_mech[32];              /* the exchange's mechanism, upper-case */
	int auth_open;                   /* io->auth_step called, io->auth_end not yet */
	int auth_wait;                   /* a 334 was sent: the next line is a response */
	unsigned auth_failures;          /* 535 replies */
	struct auth_step astep;
	unsigned char *auth_in;          /* the decoded response in st.in (wiped, freed at _done) */
	size_t auth_in_len;
	struct smtp_sender_req sreq;

	enum pending pending;
	struct smtp_rcpt_req rreq;
	char rcpt_addr[SMTP_PATH_MAX + 64];
	struct smtp_delivery dv;
	struct buf received;
	char id[96];

	uint64_t deadline;               /* ms (io->now clock): when the session gives up */
	uint64_t armed;                  /* the deadline last given to io->set_timeout */

	int in_input;                    /* inside smtp_session_input() */
	int held;                        /* input returned with bytes left over */
	int gone;                        /* disconnected: no more io calls */
	int shutdown;                    /* close after the current transaction */
	int tls_wait;                    /* STARTTLS answered: nothing is read until
					  * smtp_session_tls_started() */
	int tls_stop;                    /* the current input call ends here */
};

struct smtp_cmd {
	const char *name;
	unsigned states;                 /* where the command is allowed */
	const char *bad_seq;             /* reply elsewhere (S_INIT and S_BDAT have their own) */
	void (*handler)(struct smtp_session *s, const char *arg);
};

static void reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply(struct smtp_session *s, const char *fmt, ...)
{
	char line[SMTP_LINE_MAX + 256];
	va_list ap;
	int n;

	if (s->gone)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	s->io.write(s->ctx, line, (size_t)n);
}

/* Ends the open SASL exchange, if any: the glue frees its state. This is
 * the one io call made after a disconnect (see io->auth_end). */
static void auth_finish(struct smtp_session *s)
{
	s->auth_wait = 0;
	if (!s->auth_open)
		return;
	s->auth_open = 0;
	if (s->io.auth_end)
		s->io.auth_end(s->ctx);
}

static void close_session(struct smtp_session *s, const char *reason)
{
	if (s->state & S_CLOSED)
		return;
	s->state = S_CLOSED;
	log_info("smtp", s->sid, "close reason=%s", reason);
	if (!s->pending)
		auth_finish(s);
	if (!s->gone)
		s->io.close(s->ctx, reason);
}

/* Starts the time allowed for what the session waits for now: a whole
 * command line, or message content (see the opening comment). */
static void restart_deadline(struct smtp_session *s)
{
	unsigned sec = (s->state & (S_DATA | S_CHUNK)) ? s->cfg.data_timeout : s->cfg.command_timeout;

	s->deadline = s->io.now(s->ctx) + (uint64_t)sec * 1000;
}

/* n octets of DATA or BDAT content arrived: they buy n/min_data_rate more
 * seconds, up to data_timeout from now. */
static void data_progress(struct smtp_session *s, size_t n)
{
	uint64_t now = s->io.now(s->ctx);
	uint64_t cap = now + (uint64_t)s->cfg.data_timeout * 1000;
	uint64_t more = s->cfg.min_data_rate ? (uint64_t)n * 1000 / s->cfg.min_data_rate : 0;

	s->deadline = s->deadline + more < cap ? s->deadline + more : cap;
}

/* Gives the current deadline to the glue's timer when it moved. While a
 * request is in flight the client waits for us: the timer is ignored then
 * and the deadline restarts when the request is done. */
static void arm_timeout(struct smtp_session *s)
{
	uint64_t now, ms;

	if (s->gone || (s->state & S_CLOSED) || s->pending || s->deadline == s->armed)
		return;
	now = s->io.now(s->ctx);
	ms = s->deadline > now ? s->deadline - now : 1;
	s->armed = s->deadline;
	s->io.set_timeout(s->ctx, ms < UINT32_MAX ? (unsigned)ms : UINT32_MAX);
}

static void tx_reset(struct smtp_session *s)
{
	struct smtp_tx *t = &s->tx;

	for (size_t i = 0; i < t->n_targets; i++)
		free(t->targets[i]);
	free(t->targets);
	buf_release(&t->msg);
	if (t->reserved && s->io.release && !s->gone)
		s->io.release(s->ctx);
	memset(t, 0, sizeof(*t));
	/* The body never holds more than the limit; a limit of 0 ("no mail")
	 * still gets a bounded buffer, since buf max 0 would mean unbounded. */
	buf_init(&t->msg, s->cfg.max_message_size ? (size_t)s->cfg.max_message_size : 1);
}

/* Back to command mode after a transaction ended one way or another. */
static void tx_end(struct smtp_session *s)
{
	tx_reset(s);
	s->state = S_READY;
}

/* Counts a client mistake; past max_bad_commands the session ends. */
static void bad_command(struct smtp_session *s)
{
	if (s->cfg.max_bad_commands && ++s->bad >= s->cfg.max_bad_commands) {
		reply(s, "421 4.7.0 %s Too many errors", s->hostname);
		log_info("smtp", s->sid, "too many errors count=%u", s->bad);
		close_session(s, "too many errors");
	}
}

/* Ends a session that smtp_session_shutdown() asked to stop, once it is
 * between transactions and no request is in flight. */
static void maybe_shutdown(struct smtp_session *s)
{
	if (!s->shutdown || (s->state & (S_CLOSED | S_DATA | S_CHUNK | S_BDAT)) || s->pending)
		return;
	if (s->tls_wait)
		return;  /* no clear-text reply in the middle of a handshake: after it */
	reply(s, "421 4.3.2 %s Service shutting down", s->hostname);
	close_session(s, "shutdown");
}

/* After a request completed outside smtp_session_input(): let the caller
 * feed the input it held back. The caller is told even when this session
 * saw no input held back (s->held), since a caller may keep what arrives
 * during a request without offering it to a busy session. */
static void after_request(struct smtp_session *s)
{
	maybe_shutdown(s);
	if (s->gone || (s->state & S_CLOSED))
		return;
	/* the client waited for this reply: its time starts now */
	restart_deadline(s);
	if (s->in_input)
		return;
	arm_timeout(s);
	s->held = 0;
	s->io.resume(s->ctx);
}

/* ---- message content ---- */

/* Counts n octets of the current text line (CR and LF included). */
static void eat(struct smtp_tx *t, size_t n)
{
	if (n > SMTP_TEXT_LINE_MAX - (t->line_len < SMTP_TEXT_LINE_MAX ? t->line_len : SMTP_TEXT_LINE_MAX)) {
		t->long_line = 1;
		t->line_len = SMTP_TEXT_LINE_MAX + 1;  /* saturated: no wrap on endless lines */
		return;
	}
	t->line_len += (unsigned)n;
}

/* Stores n octets of content that count size_n octets toward the size. */
static void put(struct smtp_session *s, const char *p, size_t n, size_t size_n)
{
	struct smtp_tx *t = &s->tx;

	if (t->too_big)
		return;
	t->size += size_n;
	if (t->size > s->cfg.max_message_size) {
		/* Stop storing, keep reading to the end. */
		t->too_big = 1;
		buf_release(&t->msg);
		return;
	}
	if (t->no_memory || n == 0)
		return;
	if (s->io.reserve) {
		t->reserved = 1;
		if (s->io.reserve(s->ctx, n) != 0) {
			/* The server holds too many messages at once: count the rest,
			 * store nothing, refuse at the end with a temporary error. */
			t->no_memory = 1;
			buf_release(&t->msg);
			return;
		}
	}
	if (buf_add(&t->msg, p, n) < 0) {
		t->too_big = 1;
		buf_release(&t->msg);
	}
}

/* A LF that ends a line; crlf tells whether a CR came before it. */
static void line_end(struct smtp_session *s, int crlf)
{
	struct smtp_tx *t = &s->tx;

	eat(t, 1);
	t->line_len = 0;
	if (!crlf && s->cfg.bare_newline == BARE_LF_REJECT)
		t->bare_lf = 1;
	put(s, "\n", 1, crlf ? 2 : 1);
}

/* Copies a TLS parameter into a Received comment: printable ASCII without
 * the characters that would end or escape the comment (RFC 5322 ctext). */
static void comment_safe(const char *in, char *out, size_t n)
{
	size_t i = 0;

	for (; *in && i + 1 < n; in++) {
		unsigned char c = (unsigned char)*in;

		out[i++] = (c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '\\') ? (char)c : '_';
	}
	if (i == 0 && n > 1)
		out[i++] = '?';
	out[i] = '\0';
}

/* Copies a name the glue gave (an authenticated user) into reply text or
 * a Received comment: printable ASCII and well-formed UTF-8 as they are,
 * anything else (and the characters that would end or escape a comment)
 * as '_'. */
static void text_safe(const char *in, char *out, size_t n)
{
	size_t i = 0, len = strlen(in);

	for (size_t k = 0; k < len && i + 1 < n;) {
		unsigned char c = (unsigned char)in[k];
		size_t u = c >= 0x80 ? smtp_utf8_seq((const unsigned char *)in + k, len - k) : 0;

		if (u) {
			if (i + u >= n)
				break;
			memcpy(out + i, in + k, u);
			i += u;
			k += u;
			continue;
		}
		out[i++] = (c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '\\') ? (char)c : '_';
		k++;
	}
	if (i == 0 && n > 1)
		out[i++] = '?';
	out[i] = '\0';
}

/* The current time as an RFC 5322 date-time (3.3), in UTC. */
static void rfc5322_now(char *out, size_t n)
{
	static const char *const wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	snprintf(out, n, "%s, %d %s %04d %02d:%02d:%02d +0000",
		 wday[tm.tm_wday % 7], tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900,
		 tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* 1 when the header line p (n octets, no LF) is the field name: the name
 * in any case, optional white space, then ':' (RFC 5322 2.2 and the
 * obsolete WSP before the colon of 4.5). */
static int field_is(const char *p, size_t n, const char *name)
{
	size_t k = strlen(name);

	if (n <= k || strncasecmp(p, name, k) != 0)
		return 0;
	while (k < n && (p[k] == ' ' || p[k] == '\t'))
		k++;
	return k < n && p[k] == ':';
}

/* 1 when the line starts a header field: ftext (RFC 5322 3.6.8) up to the
 * colon, white space allowed before it (obsolete syntax). */
static int field_line(const char *p, size_t n)
{
	size_t k = 0;

	while (k < n && (unsigned char)p[k] > 0x20 && (unsigned char)p[k] < 0x7f && p[k] != ':')
		k++;
	if (k == 0)
		return 0;
	while (k < n && (p[k] == ' ' || p[k] == '\t'))
		k++;
	return k < n && p[k] == ':';
}

/* Submission (RFC 6409 8.2, 8.3): notes which of Date and Message-ID the
 * header section of the stored message (LF line ends) lacks. The section
 * ends at the empty line, or at the first line that is neither a field
 * nor the continuation of one (a message without a header section). */
static void check_header(struct smtp_tx *t)
{
	const char *p = t->msg.data, *end = p ? p + t->msg.len : p;
	int date = 0, msgid = 0, in_field = 0;

	while (p && p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t n = lf ? (size_t)(lf - p) : (size_t)(end - p);

		if (n == 0)
			break;
		if ((p[0] == ' ' || p[0] == '\t') && in_field) {
			/* folded */
		} else if (field_line(p, n)) {
			in_field = 1;
			date |= field_is(p, n, "Date");
			msgid |= field_is(p, n, "Message-ID");
		} else {
			break;
		}
		if (!lf)
			break;
		p = lf + 1;
	}
	t->add_date = !date;
	t->add_msgid = !msgid;
}

static void build_received(struct smtp_session *s)
{
	struct smtp_tx *t = &s->tx;
	char date[64], proto[16];
	int v6 = strchr(s->client_addr, ':') != NULL;

	rfc5322_now(date, sizeof(date));
	/* RFC 3848 and RFC 6531 protocol names: S for TLS, A for AUTH */
	snprintf(proto, sizeof(proto), "%s%s%s",
		 t->smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP",
		 s->tls && (s->esmtp || t->smtputf8) ? "S" : "",
		 s->auth_user && (s->esmtp || t->smtputf8) ? "A" : "");

	buf_reset(&s->received);
	buf_printf(&s->received, "Return-Path: <%s>\n", t->from);
	if (s->auth_user && s->cfg.received_hide_client) {
		/* the client's address and name stay private (the EHLO name,
		 * which RFC 5321 4.4 requires, is still there) */
		buf_printf(&s->received, "Received: from %s\n", s->helo);
	} else {
		buf_printf(&s->received, "Received: from %s (%s [%s%s])\n",
			   s->helo, s->client_name ? s->client_name : "unknown",
			   v6 ? "IPv6:" : "", s->client_addr);
	}
	buf_printf(&s->received, "\tby %s (buzon) with %s", s->hostname, proto);
	if (s->tls) {
		/* What was agreed, as a comment before "id" (the CFWS of RFC 5321
		 * 4.4's ID clause), on a line of its own to stay short. */
		char version[sizeof(s->tls->version)], cipher[sizeof(s->tls->cipher)];

		comment_safe(s->tls->version, version, sizeof(version));
		comment_safe(s->tls->cipher, cipher, sizeof(cipher));
		buf_printf(&s->received, "\n\t(version=%s cipher=%s)", version, cipher);
	}
	if (s->auth_user) {
		/* who sent it, as Postfix's smtpd_sasl_authenticated_header
		 * does, in the same place as the TLS comment */
		char user[sizeof(s->astep.user)];

		text_safe(s->auth_user, user, sizeof(user));
		buf_printf(&s->received, "\n\t(authenticated as %s)", user);
	}
	buf_printf(&s->received, " id %s", s->id);
	if (t->n_rcpt == 1)
		buf_printf(&s->received, "\n\tfor <%s>; %s\n", t->first_rcpt, date);
	else
		buf_printf(&s->received, "; %s\n", date);
	if (t->add_date)
		buf_printf(&s->received, "Date: %s\n", date);
	if (t->add_msgid)
		buf_printf(&s->received, "Message-ID: <%s@%s>\n", s->id, s->hostname);
}

/* The whole message was read (DATA end marker or BDAT LAST): refuse it or
 * hand it to the glue. The reply to this command is the delivery result. */
static void end_of_message(struct smtp_session *s)
{
	struct smtp_tx *t = &s->tx;
	char from[128];
	const char *why = NULL;

	snprintf(s->id, sizeof(s->id), "%s.%u", s->sid, ++s->n_msg);
	log_safe(t->from, from, sizeof(from));
	if (t->too_big) {
		reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		why = "too_big";
	} else if (t->bare_lf) {
		reply(s, "550 5.5.2 Message contains bare LF, lines must end with CRLF");
		why = "bare_lf";
	} else if (t->long_line) {
		reply(s, "550 5.6.0 Message has lines longer than 998 octets");
		why = "long_line";
	} else if (t->no_memory) {
		reply(s, "452 4.3.1 Insufficient system storage, try again later");
		why = "no_memory";
	}
	if (why) {
		log_info("smtp", s->sid, "message refused id=%s from=%s nrcpt=%u size=%llu result=%s",
			 s->id, from, t->n_rcpt, (unsigned long long)t->size, why);
		tx_end(s);
		return;
	}
	if (s->submission)
		check_header(t);
	build_received(s);
	if (!t->msg.data)
		buf_reserve(&t->msg, 0);  /* an empty body still has a data pointer */
	s->dv.return_path = t->from;
	s->dv.received = s->received.data;
	s->dv.targets = t->targets;
	s->dv.n_targets = t->n_targets;
	s->dv.body = &t->msg;
	s->dv.size = t->size;
	s->pending = P_DELIVER;
	s->io.deliver(s->ctx, &s->dv);
}

/*
 * Feeds DATA content; returns the octets consumed, which stop right after
 * the end marker. Transitions are documented at enum data_state; a
 * "continue" without consuming re-reads the octet in the new state.
 */
static size_t feed_data(struct smtp_session *s, const char *data, size_t len)
{
	struct smtp_tx *t = &s->tx;
	size_t i = 0;

	while (i < len) {
		char c = data[i];

		switch (t->ds) {
		case D_BOL:
		case D_BOL_LF:
			if (c == '.') {
				eat(t, 1);
				i++;
				t->ds = t->ds == D_BOL ? D_DOT : D_DOT_LF;
			} else {
				t->ds = D_TEXT;
			}
			continue;
		case D_TEXT: {
			size_t j = i;

			while (j < len && data[j] != '\r' && data[j] != '\n')
				j++;
			if (j > i) {
				eat(t, j - i);
				put(s, data + i, j - i, j - i);
				i = j;
				continue;
			}
			i++;
			if (c == '\r') {
				eat(t, 1);
				t->ds = D_CR;
			} else {
				line_end(s, 0);
				t->ds = D_BOL_LF;
			}
			continue;
		}
		case D_CR:
			if (c == '\n') {
				i++;
				line_end(s, 1);
				t->ds = D_BOL;
			} else {
				/* a bare CR is kept as data */
				put(s, "\r", 1, 1);
				t->ds = D_TEXT;
			}
			continue;
		case D_DOT:
		case D_DOT_LF:
			if (c == '\r') {
				eat(t, 1);
				i++;
				t->ds = t->ds == D_DOT ? D_DOT_CR : D_DOT_LF_CR;
			} else if (c == '\n') {
				/* "." then a bare LF: a line holding only a dot, kept */
				put(s, ".", 1, 1);
				t->ds = D_TEXT;
			} else {
				/* dot-stuffing (RFC 5321 4.5.2): drop the first dot */
				t->ds = D_TEXT;
			}
			continue;
		case D_DOT_CR:
			if (c == '\n') {
				/* <CRLF>.<CRLF>: the end of the data */
				eat(t, 1);
				i++;
				t->ds = D_BOL;
				end_of_message(s);
				return i;
			}
			/* ".\r" then not LF: unstuffed dot, bare CR kept */
			put(s, "\r", 1, 1);
			t->ds = D_TEXT;
			continue;
		case D_DOT_LF_CR:
			if (c == '\n') {
				/* <LF>.<CRLF> is a line with a single dot, never the end */
				i++;
				put(s, ".", 1, 1);
				line_end(s, 1);
				t->ds = D_BOL;
			} else {
				put(s, "\r", 1, 1);
				t->ds = D_TEXT;
			}
			continue;
		}
	}
	return i;
}

/* Ends a BDAT chunk once its last octet has been read. */
static void chunk_end(struct smtp_session *s)
{
	struct smtp_tx *t = &s->tx;

	if (t->chunk_discard) {
		/* answered when the BDAT command was read */
		t->chunk_discard = 0;
		if (t->chunk_ret & S_TX) {
			t->bdat_failed = 1;
			if (t->chunk_last) {
				tx_end(s);
				return;
			}
			s->state = t->chunk_ret == S_MAIL ? S_MAIL : S_BDAT;
			return;
		}
		s->state = t->chunk_ret;
		return;
	}
	if (!t->chunk_last) {
		s->state = S_BDAT;
		reply(s, "250 2.0.0 Ok: %llu octets received", (unsigned long long)t->chunk_size);
		return;
	}
	if (t->ds == D_CR) {
		/* a CR at the very end has no LF to pair with */
		put(s, "\r", 1, 1);
		t->ds = D_TEXT;
	}
	end_of_message(s);
}

/* Feeds BDAT chunk octets: no dot processing and no end marker, but CRLF
 * is stored as LF, across chunk boundaries too. */
static size_t feed_chunk(struct smtp_session *s, const char *data, size_t len)
{
	struct smtp_tx *t = &s->tx;
	size_t n = len < t->chunk_left ? len : (size_t)t->chunk_left;
	size_t i = 0;

	if (t->chunk_discard) {
		i = n;
	} else {
		while (i < n) {
			char c = data[i];

			if (t->ds == D_CR) {
				if (c == '\n') {
					i++;
					line_end(s, 1);
				} else {
					put(s, "\r", 1, 1);
				}
				t->ds = D_TEXT;
				continue;
			}
			if (c == '\r') {
				eat(t, 1);
				t->ds = D_CR;
				i++;
			} else if (c == '\n') {
				line_end(s, 0);
				i++;
			} else {
				size_t j = i;

				while (j < n && data[j] != '\r' && data[j] != '\n')
					j++;
				eat(t, j - i);
				put(s, data + i, j - i, j - i);
				i = j;
			}
		}
	}
	t->chunk_left -= n;
	if (t->chunk_left == 0)
		chunk_end(s);
	return n;
}

/* ---- commands ---- */

/* STARTTLS can be used now: the listener offers it and the session is
 * still in clear. */
static int tls_offered(const struct smtp_session *s)
{
	return !s->tls && (s->tls_mode == TLS_MODE_STARTTLS || s->tls_mode == TLS_MODE_REQUIRED);
}

/* AUTH can be asked for now: the glue implements it, and tls = required
 * is satisfied (before TLS the mechanisms are not even advertised). */
static int auth_usable(const struct smtp_session *s)
{
	return s->io.auth_mechs && !(s->tls_mode == TLS_MODE_REQUIRED && !s->tls);
}

static void cmd_helo_common(struct smtp_session *s, const char *arg, int esmtp)
{
	size_t n = strcspn(arg, " ");

	if (n == 0 || n >= sizeof(s->helo)) {
		reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		bad_command(s);
		return;
	}
	/* The name goes into the Received header: printable ASCII only. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)arg[i];
		s->helo[i] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
	}
	s->helo[n] = '\0';
	s->esmtp = esmtp;
	tx_end(s);
	if (!esmtp) {
		reply(s, "250 %s", s->hostname);
		return;
	}
	reply(s, "250-%s", s->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %llu", (unsigned long long)s->cfg.max_message_size);
	reply(s, "250-8BITMIME");
	if (tls_offered(s))
		reply(s, "250-STARTTLS");
	if (auth_usable(s)) {
		const char *mechs = s->io.auth_mechs(s->ctx);

		if (mechs && *mechs)
			reply(s, "250-AUTH %s", mechs);
	}
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-SMTPUTF8");
	reply(s, "250 CHUNKING");
}

static void cmd_ehlo(struct smtp_session *s, const char *arg)
{
	cmd_helo_common(s, arg, 1);
}

static void cmd_helo(struct smtp_session *s, const char *arg)
{
	cmd_helo_common(s, arg, 0);
}

static void cmd_mail(struct smtp_session *s, const char *arg)
{
	struct smtp_mail_args m;
	const char *err;

	if ((s->auth_required || s->submission) && !s->auth_user) {
		/* RFC 4954 6, RFC 6409 4.3 */
		reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (smtp_parse_mail(arg, &m, &err) < 0) {
		reply(s, "%s", err);
		bad_command(s);
		return;
	}
	if (m.body == SMTP_BODY_BINARYMIME) {
		/* Not offered: the Maildir stores text with LF line ends. */
		reply(s, "555 5.5.4 BODY=BINARYMIME not supported");
		bad_command(s);
		return;
	}
	if (m.has_size && m.size > s->cfg.max_message_size) {
		reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	if (s->io.mail_allowed && !s->io.mail_allowed(s->ctx)) {
		reply(s, "421 4.7.0 %s Too many messages from your address, try again later", s->hostname);
		log_info("smtp", s->sid, "mail refused reason=message_rate client=%s", s->client_addr);
		close_session(s, "message rate");
		return;
	}
	tx_reset(s);
	memcpy(s->tx.from, m.path, sizeof(s->tx.from));
	s->tx.size_hint = m.has_size ? m.size : 0;
	s->tx.smtputf8 = m.smtputf8;
	if (s->submission) {
		char from[128];

		if (!m.path[0]) {
			/* a user sends no delivery status notifications */
			reply(s, "553 5.7.1 Sender address rejected: null sender not allowed on submission");
			log_info("smtp", s->sid, "mail refused from=<> user=%s reason=null_sender",
				 log_safe(s->auth_user, from, sizeof(from)));
			tx_reset(s);
			return;
		}
		/* RFC 6409 4.1: the glue says whether the address is the user's */
		memset(&s->sreq, 0, sizeof(s->sreq));
		s->sreq.address = s->tx.from;
		s->sreq.user = s->auth_user;
		s->sreq.status = SMTP_SENDER_TEMPFAIL;
		s->pending = P_SENDER;
		s->io.sender_check(s->ctx, &s->sreq);
		return;
	}
	s->state = S_MAIL;
	reply(s, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct smtp_session *s, const char *arg)
{
	struct smtp_rcpt_args r;
	const char *err;
	char buf[128];

	if (smtp_parse_rcpt(arg, &r, &err) < 0) {
		reply(s, "%s", err);
		bad_command(s);
		return;
	}
	if (s->tx.n_rcpt >= s->cfg.max_recipients) {
		reply(s, "452 4.5.3 Too many recipients");
		log_info("smtp", s->sid, "rcpt refused to=%s reason=too_many_recipients",
			 log_safe(r.path, buf, sizeof(buf)));
		return;
	}
	/* "<Postmaster>" means the postmaster of this host (RFC 5321 4.5.1). */
	if (r.postmaster)
		snprintf(s->rcpt_addr, sizeof(s->rcpt_addr), "Postmaster@%s", s->hostname);
	else
		memcpy(s->rcpt_addr, r.path, sizeof(r.path));
	memset(&s->rreq, 0, sizeof(s->rreq));
	s->rreq.address = s->rcpt_addr;
	s->rreq.size_hint = s->tx.size_hint;
	s->rreq.status = SMTP_RCPT_TEMPFAIL;
	s->pending = P_RCPT;
	s->io.rcpt(s->ctx, &s->rreq);
}

static void cmd_data(struct smtp_session *s, const char *arg)
{
	if (*arg) {
		reply(s, "501 5.5.4 Syntax: DATA");
		bad_command(s);
		return;
	}
	if (s->state == S_MAIL) {
		reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	s->state = S_DATA;
	s->tx.ds = D_BOL;
	s->tx.line_len = 0;
	reply(s, "354 2.0.0 End data with <CR><LF>.<CR><LF>");
}

static void cmd_bdat(struct smtp_session *s, const char *arg)
{
	struct smtp_tx *t = &s->tx;
	uint64_t size;
	int last;
	const char *err = NULL;

	if (smtp_parse_bdat(arg, &size, &last, &err) < 0) {
		/* Without a size the chunk cannot be skipped: whatever the client
		 * sends next would be read as commands, message text included
		 * (a command smuggled inside a chunk). The session ends here. */
		reply(s, "%s", err);
		log_info("smtp", s->sid, "bdat without a usable size, closing");
		close_session(s, "bdat syntax error");
		return;
	}
	if (s->tls_mode == TLS_MODE_REQUIRED && !s->tls)
		err = "530 5.7.0 Must issue a STARTTLS command first";
	else if (s->state == S_INIT)
		err = "503 5.5.1 Send HELO/EHLO first";
	else if (s->state == S_READY)
		err = "503 5.5.1 Need MAIL command";
	else if (s->state == S_MAIL)
		err = "554 5.5.1 No valid recipients";
	else if (t->bdat_failed)
		err = "503 5.5.1 Earlier BDAT failed, send RSET";
	else if (size > s->cfg.max_message_size - (t->size < s->cfg.max_message_size ? t->size : s->cfg.max_message_size))
		err = "552 5.3.4 Message size exceeds fixed maximum message size";
	if (err) {
		/* Refused before any octet of the chunk is read. */
		reply(s, "%s", err);
		if (size > s->cfg.max_message_size) {
			/* No message can be that large: reading it to stay in step
			 * (RFC 3030) is what the client wants us to waste. */
			log_info("smtp", s->sid, "bdat refused size=%llu max=%llu, closing",
				 (unsigned long long)size, (unsigned long long)s->cfg.max_message_size);
			close_session(s, "bdat chunk over max_message_size");
			return;
		}
	}
	if (s->state == S_RCPT) {
		t->ds = D_TEXT;
		t->line_len = 0;
	}
	t->chunk_size = t->chunk_left = size;
	t->chunk_last = last;
	t->chunk_discard = err != NULL;
	t->chunk_ret = s->state;
	s->state = S_CHUNK;
	if (size == 0)
		chunk_end(s);
}

static void cmd_rset(struct smtp_session *s, const char *arg)
{
	if (*arg) {
		reply(s, "501 5.5.4 Syntax: RSET");
		bad_command(s);
		return;
	}
	tx_reset(s);
	if (s->state != S_INIT)
		s->state = S_READY;
	reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, const char *arg)
{
	(void)arg;
	reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, const char *arg)
{
	if (*arg) {
		reply(s, "501 5.5.4 Syntax: QUIT");
		bad_command(s);
		return;
	}
	reply(s, "221 2.0.0 %s closing connection", s->hostname);
	close_session(s, "quit");
}

static void cmd_vrfy(struct smtp_session *s, const char *arg)
{
	if (!*arg) {
		reply(s, "501 5.5.4 Syntax: VRFY address");
		bad_command(s);
		return;
	}
	/* No user enumeration (RFC 5321 3.5.3, 7.3). */
	reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct smtp_session *s, const char *arg)
{
	(void)arg;
	reply(s, "502 5.5.1 EXPN not supported");
}

static void cmd_help(struct smtp_session *s, const char *arg)
{
	(void)arg;
	reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
}

static void cmd_starttls(struct smtp_session *s, const char *arg)
{
	if (s->tls) {
		reply(s, "503 5.5.1 TLS already active");
		bad_command(s);
		return;
	}
	if (!tls_offered(s)) {
		/* as before STARTTLS existed (and as AUTH): not counted */
		reply(s, "502 5.5.1 Command not implemented");
		return;
	}
	if (*arg) {
		reply(s, "501 5.5.4 Syntax: STARTTLS");
		bad_command(s);
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	log_info("smtp", s->sid, "starttls");
	/* Nothing after this line is read in clear: see the opening comment. */
	s->tls_wait = 1;
	s->tls_stop = 1;
	if (!s->gone)
		s->io.start_tls(s->ctx);
}

/* ---- AUTH (RFC 4954) ---- */

/* 1 when the space-separated list holds mech (both upper-case). */
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

/* Mechanisms that a glue offers only under TLS: those that send the
 * password as it is, and the channel-binding variants, which need a TLS
 * channel to bind to. Asked for in clear they get 538 5.7.11 (RFC 4954 6),
 * other names the glue does not list 504. */
static int mech_needs_tls(const char *mech)
{
	size_t n = strlen(mech);

	return strcmp(mech, "PLAIN") == 0 || strcmp(mech, "LOGIN") == 0 ||
	       (n > 5 && strcmp(mech + n - 5, "-PLUS") == 0);
}

/* Drops the decoded response handed to the glue. */
static void auth_wipe_in(struct smtp_session *s)
{
	if (s->auth_in) {
		wipe(s->auth_in, s->auth_in_len);
		free(s->auth_in);
	}
	s->auth_in = NULL;
	s->auth_in_len = 0;
}

/* Decodes a client response (strict base64, RFC 4954 4) into s->auth_in;
 * 0 or -EINVAL. */
static int auth_decode(struct smtp_session *s, const char *b64, size_t len)
{
	long n;

	auth_wipe_in(s);
	s->auth_in = xmalloc(len / 4 * 3 + 1);
	n = sasl_base64_decode(b64, len, s->auth_in, len / 4 * 3 + 1);
	if (n < 0) {
		wipe(s->auth_in, len / 4 * 3 + 1);
		free(s->auth_in);
		s->auth_in = NULL;
		return -EINVAL;
	}
	s->auth_in_len = (size_t)n;
	return 0;
}

/* Hands one step to the glue; the decoded response is in s->auth_in (or
 * none: absent). */
static void auth_run_step(struct smtp_session *s, int first, int absent)
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
	s->pending = P_AUTH;
	s->io.auth_step(s->ctx, st);
}

static void cmd_auth(struct smtp_session *s, const char *arg)
{
	const char *mechs, *ir;
	size_t n;

	if (!s->io.auth_mechs) {
		/* as before AUTH existed (and as STARTTLS): not counted */
		reply(s, "502 5.5.1 Command not implemented");
		return;
	}
	/* the command may carry credentials: wipe the line after it */
	s->line_secret = 1;
	if (s->auth_user) {
		/* RFC 4954 4: once per session */
		reply(s, "503 5.5.1 Already authenticated");
		bad_command(s);
		return;
	}
	if (s->state & S_TX) {
		/* RFC 4954 4: not during a mail transaction */
		reply(s, "503 5.5.1 AUTH not permitted during a mail transaction");
		return;
	}
	if (!s->esmtp) {
		/* an ESMTP extension: only after EHLO (RFC 4954 3) */
		reply(s, "503 5.5.1 Send EHLO first");
		return;
	}
	n = strcspn(arg, " ");
	ir = arg[n] ? arg + n + 1 : NULL;
	if (n == 0 || (ir && (!*ir || strchr(ir, ' ')))) {
		reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		bad_command(s);
		return;
	}
	mechs = s->io.auth_mechs(s->ctx);
	if (!mechs)
		mechs = "";
	if (n >= sizeof(s->auth_mech)) {
		reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char c = arg[i];

		s->auth_mech[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
	}
	s->auth_mech[n] = '\0';
	if (!mech_listed(mechs, s->auth_mech)) {
		char mech[40];

		log_safe(s->auth_mech, mech, sizeof(mech));
		if (!s->tls && mech_needs_tls(s->auth_mech)) {
			reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
			log_info("smtp", s->sid, "auth refused mech=%s client=%s reason=needs_tls", mech,
				 s->client_addr);
		} else {
			reply(s, "504 5.5.4 Unrecognized authentication type");
			log_info("smtp", s->sid, "auth refused mech=%s client=%s reason=unknown_mech", mech,
				 s->client_addr);
		}
		s->auth_mech[0] = '\0';
		return;
	}
	auth_wipe_in(s);
	if (ir && strcmp(ir, "=") != 0 && auth_decode(s, ir, strlen(ir)) < 0) {
		reply(s, "501 5.5.2 Cannot decode response");
		bad_command(s);
		return;
	}
	if (ir && !s->auth_in)
		s->auth_in = xcalloc(1, 1);  /* "=": an empty initial response (RFC 4954 4) */
	auth_run_step(s, 1, ir == NULL);
}

/* A line read while a 334 challenge waits for its answer (RFC 4954 4). */
static void auth_response(struct smtp_session *s, char *line, size_t len)
{
	int crlf = len > 0 && line[len - 1] == '\r';

	s->line_secret = 1;
	s->auth_wait = 0;
	if (crlf)
		len--;
	if (!crlf && s->cfg.bare_newline == BARE_LF_REJECT) {
		reply(s, "500 5.5.2 Bare LF not allowed, end commands with CRLF");
		auth_finish(s);
		bad_command(s);
		return;
	}
	if (len == 1 && line[0] == '*') {
		reply(s, "501 5.0.0 Authentication cancelled");
		log_info("smtp", s->sid, "auth cancelled mech=%s client=%s", s->auth_mech, s->client_addr);
		auth_finish(s);
		/* counted: a loop of AUTH and "*" costs a worker step each time */
		bad_command(s);
		return;
	}
	if (auth_decode(s, line, len) < 0) {
		reply(s, "501 5.5.2 Cannot decode response");
		auth_finish(s);
		bad_command(s);
		return;
	}
	auth_run_step(s, 0, 0);
}

static const struct smtp_cmd commands[] = {
	{ "EHLO", S_ANY_CMD, NULL, cmd_ehlo },
	{ "HELO", S_ANY_CMD, NULL, cmd_helo },
	{ "MAIL", S_READY, "503 5.5.1 Nested MAIL command", cmd_mail },
	{ "RCPT", S_MAIL | S_RCPT, "503 5.5.1 Need MAIL command", cmd_rcpt },
	{ "DATA", S_MAIL | S_RCPT, "503 5.5.1 Need MAIL command", cmd_data },
	{ "BDAT", S_ANY_CMD, NULL, cmd_bdat },
	{ "RSET", S_ANY_CMD, NULL, cmd_rset },
	{ "NOOP", S_ANY_CMD, NULL, cmd_noop },
	{ "QUIT", S_ANY_CMD, NULL, cmd_quit },
	{ "VRFY", S_ANY_CMD, NULL, cmd_vrfy },
	{ "EXPN", S_ANY_CMD, NULL, cmd_expn },
	{ "HELP", S_ANY_CMD, NULL, cmd_help },
	{ "STARTTLS", S_INIT | S_READY, "503 5.5.1 Error: MAIL transaction in progress", cmd_starttls },
	{ "AUTH", S_ANY_CMD, NULL, cmd_auth },
};

/* The commands tls = required serves before TLS (RFC 3207 4: a server
 * that requires TLS answers the others with 530). */
static int tls_free_command(const struct smtp_cmd *c)
{
	return c->handler == cmd_ehlo || c->handler == cmd_helo || c->handler == cmd_starttls ||
	       c->handler == cmd_noop || c->handler == cmd_rset || c->handler == cmd_quit;
}

/* Runs one complete command line (s->line, or s->long_line for a long AUTH
 * line; LF removed). */
static void process_line(struct smtp_session *s)
{
	struct smtp_cmdline cl;
	char *line = s->long_line.data ? s->long_line.data : s->line;
	size_t len = s->long_line.data ? s->long_line.len : s->line_len;
	int crlf;

	if (s->line_skip) {
		if (s->line_auth) {
			/* RFC 4954 4: the exchange (or the AUTH command) fails */
			reply(s, "500 5.5.6 Authentication Exchange line is too long");
			auth_finish(s);
		} else {
			reply(s, "500 5.5.2 Line too long");
		}
		bad_command(s);
		return;
	}
	if (s->auth_wait) {
		auth_response(s, line, len);
		return;
	}
	crlf = len > 0 && line[len - 1] == '\r';
	if (crlf)
		len--;
	if (!crlf && s->cfg.bare_newline == BARE_LF_REJECT) {
		reply(s, "500 5.5.2 Bare LF not allowed, end commands with CRLF");
		bad_command(s);
		return;
	}
	if (memchr(line, '\0', len) || memchr(line, '\r', len)) {
		reply(s, "500 5.5.2 Invalid character in command");
		bad_command(s);
		return;
	}
	line[len] = '\0';
	if (smtp_parse_cmdline(line, len, &cl) < 0) {
		reply(s, "500 5.5.2 Syntax error");
		bad_command(s);
		return;
	}
	/* arg is NUL-terminated where the trailing spaces begin */
	line[(size_t)(cl.arg - line) + cl.arg_len] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		const struct smtp_cmd *c = &commands[i];

		if (strcmp(c->name, cl.verb) != 0)
			continue;
		if (s->tls_mode == TLS_MODE_REQUIRED && !s->tls && !tls_free_command(c)) {
			if (c->handler == cmd_bdat) {
				/* its chunk is read and dropped, in step with the client */
				cmd_bdat(s, cl.arg);
				if (!(s->state & S_CLOSED))
					bad_command(s);
				return;
			}
			reply(s, "530 5.7.0 Must issue a STARTTLS command first");
			bad_command(s);
			return;
		}
		if (!(c->states & s->state)) {
			if (s->state == S_INIT)
				reply(s, "503 5.5.1 Send HELO/EHLO first");
			else if (s->state == S_BDAT)
				reply(s, "503 5.5.1 BDAT transfer in progress");
			else
				reply(s, "%s", c->bad_seq);
			return;
		}
		c->handler(s, cl.arg);
		return;
	}
	reply(s, "500 5.5.1 Command unrecognized");
	bad_command(s);
}

/* 1 when the line being read is an AUTH command or an AUTH response, the
 * lines that may be longer than SMTP_LINE_MAX (RFC 4954 4). data holds the
 * next content octets of the line. */
static int auth_line(const struct smtp_session *s, const char *data, size_t n)
{
	char p[5];
	size_t k = 0;

	if (!auth_usable(s))
		return 0;
	if (s->auth_wait)
		return 1;
	for (size_t i = 0; i < s->line_len && k < sizeof(p); i++)
		p[k++] = s->line[i];
	for (size_t i = 0; i < n && k < sizeof(p); i++)
		p[k++] = data[i];
	return k == sizeof(p) && strncasecmp(p, "AUTH ", sizeof(p)) == 0;
}

/* Forgets the partial line, wiping what may be credentials. */
static void line_drop(struct smtp_session *s)
{
	if (s->long_line.data) {
		wipe(s->long_line.data, s->long_line.cap);
		buf_release(&s->long_line);
	}
	if (s->line_secret || s->line_auth)
		wipe(s->line, sizeof(s->line));
	s->line_len = 0;
	s->line_secret = 0;
}

/* Stores content octets of the command line being read: in s->line, or
 * for an AUTH line past its size in s->long_line (up to
 * SMTP_AUTH_LINE_MAX), or nowhere once the line is too long. */
static void line_store(struct smtp_session *s, const char *data, size_t content)
{
	if (s->line_skip)
		return;
	if (s->long_line.data) {
		if (buf_add(&s->long_line, data, content) == 0)
			return;
	} else if (content <= sizeof(s->line) - 1 - s->line_len) {
		/* SMTP_LINE_MAX counts the LF: the content gets one octet less */
		memcpy(s->line + s->line_len, data, content);
		s->line_len += content;
		return;
	} else if (auth_line(s, data, content)) {
		s->line_auth = 1;
		/* the whole room at once: no realloc leaves a copy behind */
		buf_init(&s->long_line, SMTP_AUTH_LINE_MAX - 1);
		if (buf_reserve(&s->long_line, SMTP_AUTH_LINE_MAX - 1) < 0)
			BUG("smtp auth line buffer");
		buf_add(&s->long_line, s->line, s->line_len);
		wipe(s->line, s->line_len);
		if (buf_add(&s->long_line, data, content) == 0)
			return;
	}
	/* too long: dropped up to its LF, answered then */
	line_drop(s);
	s->line_skip = 1;
}

/* Reads command octets up to and including one LF; returns the octets
 * consumed and counts a finished line in *ncmd. */
static size_t feed_line(struct smtp_session *s, const char *data, size_t len, unsigned *ncmd)
{
	const char *lf = memchr(data, '\n', len);
	size_t take = lf ? (size_t)(lf - data) + 1 : len;
	size_t content = lf ? take - 1 : take;

	line_store(s, data, content);
	if (lf) {
		(*ncmd)++;
		process_line(s);
		line_drop(s);
		s->line_skip = 0;
		s->line_auth = 0;
		/* a command is done: the next one (or DATA/BDAT content) gets
		 * its full time from now */
		restart_deadline(s);
		maybe_shutdown(s);
	}
	return take;
}

/* ---- public interface ---- */

struct smtp_session *smtp_session_new(const struct smtp_session_params *p,
				      const struct smtp_io *io, void *ctx)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	s->cfg = *p->cfg;
	s->io = *io;
	s->ctx = ctx;
	s->hostname = xstrdup(p->hostname);
	s->sid = xstrdup(p->sid);
	s->client_addr = xstrdup(p->client_addr ? p->client_addr : "unknown");
	s->client_name = p->client_name ? xstrdup(p->client_name) : NULL;
	s->tls_mode = p->tls_mode;
	s->tls = p->tls;
	s->auth_required = p->auth_required;
	s->submission = p->submission;
	if ((s->tls_mode == TLS_MODE_STARTTLS || s->tls_mode == TLS_MODE_REQUIRED) && !io->start_tls)
		BUG("smtp session offers STARTTLS without io->start_tls");
	if (io->auth_mechs && !io->auth_step)
		BUG("smtp session offers AUTH without io->auth_step");
	if (s->submission && !io->sender_check)
		BUG("smtp submission session without io->sender_check");
	buf_init(&s->long_line, SMTP_AUTH_LINE_MAX - 1);
	s->state = S_INIT;
	buf_init(&s->received, 4096);
	tx_reset(s);
	reply(s, "220 %s ESMTP buzon", s->hostname);
	restart_deadline(s);
	arm_timeout(s);
	return s;
}

void smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;

	if (!s)
		return;
	if (s->pending)
		BUG("smtp session freed with a request in flight");
	auth_finish(s);
	auth_wipe_in(s);
	line_drop(s);
	free(s->auth_user);
	tx_reset(s);
	buf_release(&s->tx.msg);
	buf_release(&s->received);
	free(s->hostname);
	free(s->sid);
	free(s->client_addr);
	free(s->client_name);
	free(s);
	*sp = NULL;
}

size_t smtp_session_input(struct smtp_session *s, const char *data, size_t len)
{
	unsigned ncmd = 0, max_cmd = s->cfg.max_pipeline ? s->cfg.max_pipeline : 1;
	size_t off = 0;

	if (s->tls_wait && !(s->state & S_CLOSED))
		return 0;  /* the glue drops what it holds once the handshake is done */
	s->in_input++;
	while (off < len) {
		if (s->tls_stop)
			break;  /* STARTTLS: not one byte after its line */
		if (s->state & S_CLOSED) {
			/* after QUIT or 421 the rest is dropped */
			off = len;
			break;
		}
		if (s->pending)
			break;
		if (s->state & (S_DATA | S_CHUNK)) {
			size_t n = (s->state & S_DATA) ? feed_data(s, data + off, len - off)
						       : feed_chunk(s, data + off, len - off);

			off += n;
			if (s->state & (S_DATA | S_CHUNK))
				data_progress(s, n);
			else
				restart_deadline(s);  /* back to commands */
			maybe_shutdown(s);
		} else {
			if (ncmd >= max_cmd && s->line_len == 0 && !s->line_skip)
				break;
			off += feed_line(s, data + off, len - off, &ncmd);
		}
	}
	s->in_input--;
	s->tls_stop = 0;
	if (off < len && !s->tls_wait)
		s->held = 1;
	arm_timeout(s);
	return off;
}

void smtp_session_disconnected(struct smtp_session *s)
{
	s->gone = 1;
	if (!(s->state & S_CLOSED)) {
		s->state = S_CLOSED;
		log_info("smtp", s->sid, "close reason=disconnected");
	}
	/* the glue frees its SASL state now, or after the step in flight */
	if (!s->pending)
		auth_finish(s);
}

void smtp_session_timeout(struct smtp_session *s)
{
	if (s->state & S_CLOSED)
		return;
	if (s->pending) {
		/* the client is waiting for us, not the other way round; the
		 * timer is armed again when the request is done */
		s->armed = 0;
		return;
	}
	if (s->tls_wait) {
		/* a clear-text 421 would land in the middle of the handshake */
		close_session(s, "timeout during tls handshake");
		return;
	}
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->hostname);
	close_session(s, "timeout");
}

void smtp_session_shutdown(struct smtp_session *s)
{
	s->shutdown = 1;
	maybe_shutdown(s);
}

int smtp_session_busy(const struct smtp_session *s)
{
	return s->pending != P_NONE;
}

void smtp_session_rcpt_done(struct smtp_session *s, struct smtp_rcpt_req *req)
{
	struct smtp_tx *t = &s->tx;
	char addr[128];
	const char *why = NULL;

	if (s->pending != P_RCPT || req != &s->rreq)
		BUG("smtp rcpt_done without a recipient check in flight");
	s->pending = P_NONE;
	log_safe(req->address, addr, sizeof(addr));
	if (req->status == SMTP_RCPT_OK && req->n_targets == 0) {
		log_error("smtp", s->sid, "rcpt resolved to no target to=%s", addr);
		req->status = SMTP_RCPT_TEMPFAIL;
	}
	if (s->gone) {
		/* nothing to answer; only free what was handed over */
	} else if (req->status == SMTP_RCPT_OK) {
		for (size_t i = 0; i < req->n_targets; i++) {
			size_t k;

			for (k = 0; k < t->n_targets; k++)
				if (strcmp(t->targets[k], req->targets[i]) == 0)
					break;
			if (k < t->n_targets)
				continue;  /* the same user twice gets the message once */
			if (t->n_targets == t->cap_targets) {
				t->cap_targets = t->cap_targets ? t->cap_targets * 2 : 4;
				t->targets = xrealloc(t->targets, t->cap_targets * sizeof(*t->targets));
			}
			t->targets[t->n_targets++] = req->targets[i];
			req->targets[i] = NULL;
		}
		if (t->n_rcpt++ == 0)
			memcpy(t->first_rcpt, s->rcpt_addr, sizeof(t->first_rcpt));
		s->state = S_RCPT;
		reply(s, "250 2.1.5 Ok");
		log_info("smtp", s->sid, "rcpt accepted to=%s targets=%zu", addr, req->n_targets);
	} else {
		switch (req->status) {
		case SMTP_RCPT_NO_USER:
			reply(s, "550 5.1.1 Recipient address rejected: user unknown");
			why = "no_user";
			break;
		case SMTP_RCPT_DISABLED:
			reply(s, "550 5.2.1 Recipient address rejected: mailbox disabled");
			why = "disabled";
			break;
		case SMTP_RCPT_NOT_LOCAL:
			if (s->submission)
				/* until there is an outbound queue: say so plainly */
				reply(s, "550 5.7.1 <%s>: sending to other domains is not enabled on this server",
				      s->rcpt_addr);
			else
				reply(s, "550 5.7.1 Relay access denied");
			why = "not_local";
			break;
		case SMTP_RCPT_OVER_QUOTA:
			reply(s, "452 4.2.2 Mailbox full");
			why = "over_quota";
			break;
		default:
			reply(s, "451 4.3.0 Temporary failure, try again later");
			why = "tempfail";
			break;
		}
		log_info("smtp", s->sid, "rcpt refused to=%s reason=%s", addr, why);
	}
	for (size_t i = 0; i < req->n_targets; i++)
		free(req->targets[i]);
	free(req->targets);
	req->targets = NULL;
	req->n_targets = 0;
	after_request(s);
}

void smtp_session_deliver_done(struct smtp_session *s, struct smtp_delivery *dv, int result)
{
	struct smtp_tx *t = &s->tx;
	char from[128];
	const char *why;

	if (s->pending != P_DELIVER || dv != &s->dv)
		BUG("smtp deliver_done without a delivery in flight");
	s->pending = P_NONE;
	switch (result) {
	case 0:
		reply(s, "250 2.0.0 Ok: queued as %s", s->id);
		why = "delivered";
		break;
	case -EDQUOT:
		reply(s, "452 4.2.2 Mailbox full");
		why = "over_quota";
		break;
	case -ENOSPC:
		reply(s, "452 4.3.1 Insufficient system storage");
		why = "no_space";
		break;
	default:
		reply(s, "451 4.3.0 Local error in processing");
		why = "tempfail";
		break;
	}
	log_info("smtp", s->sid, "message id=%s from=%s nrcpt=%u targets=%zu size=%llu result=%s",
		 s->id, log_safe(t->from, from, sizeof(from)), t->n_rcpt, t->n_targets,
		 (unsigned long long)t->size, why);
	memset(&s->dv, 0, sizeof(s->dv));
	if (s->gone) {
		tx_reset(s);
		return;
	}
	tx_end(s);
	after_request(s);
}

void smtp_session_tls_started(struct smtp_session *s, const struct tls_info *info)
{
	if (!s->tls_wait || !info)
		BUG("smtp tls_started without a STARTTLS in progress");
	s->tls_wait = 0;
	s->tls = info;
	if (s->gone || (s->state & S_CLOSED))
		return;
	/* RFC 3207 4.2: back to the state right after the greeting (no new
	 * one); what the client said in clear (EHLO, a transaction) is
	 * forgotten. The line buffer is empty: input stopped at a line end. */
	tx_reset(s);
	s->state = S_INIT;
	s->esmtp = 0;
	s->helo[0] = '\0';
	s->line_len = 0;
	s->line_skip = 0;
	if (s->auth_user) {
		/* RFC 3207 4.2: nothing learnt in clear survives, the user
		 * who authenticated there included */
		log_info("smtp", s->sid, "auth forgotten after starttls");
		free(s->auth_user);
		s->auth_user = NULL;
	}
	log_info("smtp", s->sid, "tls started version=%s cipher=%s", info->version, info->cipher);
	/* a fresh command_timeout for the EHLO that must come now */
	restart_deadline(s);
	maybe_shutdown(s);
	arm_timeout(s);
}

void smtp_session_auth_done(struct smtp_session *s, struct auth_step *st)
{
	char user[128], mech[40];
	enum auth_status status = st->status;

	if (s->pending != P_AUTH || st != &s->astep)
		BUG("smtp auth_done without an AUTH step in flight");
	s->pending = P_NONE;
	auth_wipe_in(s);
	log_safe(st->mech, mech, sizeof(mech));
	st->user[sizeof(st->user) - 1] = '\0';
	if (status == AUTH_OK && !st->user[0]) {
		log_error("smtp", s->sid, "auth ok without a user mech=%s", mech);
		status = AUTH_TEMPFAIL;
	}
	if (s->gone || (s->state & S_CLOSED)) {
		/* nothing to answer: only free what was handed over */
	} else if (status == AUTH_CONTINUE) {
		/* "334 " and the challenge in base64, empty for none (RFC 4954 4) */
		size_t cap = (st->out_len + 2) / 3 * 4 + 7;
		char *line = xmalloc(cap);
		long n;

		memcpy(line, "334 ", 4);
		n = sasl_base64_encode(st->out ? st->out : (const unsigned char *)"", st->out_len, line + 4,
				       cap - 4);
		if (n < 0)
			BUG("smtp auth challenge encoding");
		memcpy(line + 4 + n, "\r\n", 2);
		s->io.write(s->ctx, line, 4 + (size_t)n + 2);
		wipe(line, cap);
		free(line);
		s->auth_wait = 1;
	} else if (status == AUTH_OK) {
		s->auth_user = xstrdup(st->user);
		reply(s, "235 2.7.0 Authentication successful");
		log_info("smtp", s->sid, "auth ok mech=%s user=%s client=%s", mech,
			 log_safe(st->user, user, sizeof(user)), s->client_addr);
	} else if (status == AUTH_FAILED) {
		/* identical for an unknown user, a disabled one and a wrong
		 * password (the glue makes them so) */
		reply(s, "535 5.7.8 Authentication credentials invalid");
		log_info("smtp", s->sid, "auth failed mech=%s user=%s client=%s", mech,
			 st->user[0] ? log_safe(st->user, user, sizeof(user)) : "-", s->client_addr);
	} else if (status == AUTH_MALFORMED) {
		reply(s, "501 5.5.2 Malformed authentication response");
		log_info("smtp", s->sid, "auth failed mech=%s user=- client=%s reason=malformed", mech,
			 s->client_addr);
	} else {
		reply(s, "454 4.7.0 Temporary authentication failure");
		log_info("smtp", s->sid, "auth tempfail mech=%s client=%s", mech, s->client_addr);
	}
	if (st->out) {
		wipe(st->out, st->out_len);
		free(st->out);
	}
	st->out = NULL;
	st->out_len = 0;
	st->in = NULL;
	st->in_len = 0;
	if (status != AUTH_CONTINUE || s->gone || (s->state & S_CLOSED))
		auth_finish(s);
	if (s->gone || (s->state & S_CLOSED))
		return;
	if (status == AUTH_FAILED && ++s->auth_failures >= SMTP_MAX_AUTH_FAILURES) {
		reply(s, "421 4.7.0 %s Too many authentication failures", s->hostname);
		log_info("smtp", s->sid, "too many auth failures count=%u client=%s", s->auth_failures,
			 s->client_addr);
		close_session(s, "too many auth failures");
	} else if (status == AUTH_MALFORMED) {
		bad_command(s);
	}
	after_request(s);
}

void smtp_session_sender_done(struct smtp_session *s, struct smtp_sender_req *req)
{
	char from[128], user[128];

	if (s->pending != P_SENDER || req != &s->sreq)
		BUG("smtp sender_done without a sender check in flight");
	s->pending = P_NONE;
	if (s->gone)
		return;
	log_safe(req->address, from, sizeof(from));
	log_safe(s->auth_user, user, sizeof(user));
	switch (req->status) {
	case SMTP_SENDER_OK:
		s->state = S_MAIL;
		reply(s, "250 2.1.0 Ok");
		break;
	case SMTP_SENDER_NOT_OWNED: {
		char safe[sizeof(s->astep.user)];

		text_safe(s->auth_user, safe, sizeof(safe));
		reply(s, "553 5.7.1 Sender address rejected: not owned by user %s", safe);
		log_info("smtp", s->sid, "mail refused from=%s user=%s reason=not_owned", from, user);
		tx_reset(s);
		break;
	}
	default:
		reply(s, "451 4.3.0 Temporary failure, try again later");
		log_info("smtp", s->sid, "mail refused from=%s user=%s reason=tempfail", from, user);
		tx_reset(s);
		break;
	}
	after_request(s);
}
