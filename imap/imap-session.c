#include "imap/imap-private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imap-utf7.h"
#include "lib/log.h"
#include "lib/sasl.h"
#include "lib/xalloc.h"

/*
 * The session: reads commands with the incremental parser, dispatches them
 * through the tables of the command files, runs their storage work through
 * io->exec one at a time, and writes untagged updates at the points RFC 3501
 * allows (after every command but FETCH, STORE and SEARCH, and during IDLE).
 *
 * Before login the session is anybody's: it gets small parser limits
 * (IMAP_LOGIN_MAX_LINE, [imap] login_max_literal), its literals draw on a
 * budget of their own ([imap] login_max_buffered) so that clients who have
 * not logged in can never make a logged-in user's APPEND fail, and one
 * deadline ([imap] login_timeout, from connect) that nothing re-arms: not
 * input, not a command, not a failed LOGIN. Without it, five connections
 * announcing {52428800} literals held the whole max_buffered budget and a
 * client could stay unauthenticated forever by failing logins slowly. The
 * limits are lifted once, when a login succeeds, between two commands.
 *
 * STARTTLS (RFC 3501 6.2.1): its tagged OK is the last thing read in
 * clear. imap_session_input() returns right after the command, before any
 * byte pipelined behind it, and takes nothing (returns 0) until
 * imap_session_tls_started(); the glue throws away what it holds, so a
 * command injected in clear is never run inside TLS (CVE-2011-0411 class,
 * the 2021 "NO STARTTLS" variants). The parser is reset at the handshake,
 * and the login deadline keeps running through it. With tls = required,
 * LOGINDISABLED is advertised and LOGIN and AUTHENTICATE get NO
 * [PRIVACYREQUIRED] (RFC 5530) until then, a literal of theirs being
 * refused before the client sends the password in it.
 */

#define OUT_MAX (64 * 1024 * 1024)   /* one run's output; FETCH streams in smaller pieces */
#define DRAIN_MARK (64 * 1024)

static const struct imap_cmd_def *const tables[] = {
	imap_cmds_any, imap_cmds_mailbox, imap_cmds_select, imap_cmds_fetch,
	imap_cmds_store, imap_cmds_search, imap_cmds_append,
};

static void session_write(struct imap_session *s, const char *data, size_t len)
{
	if (!s->closed)
		s->io.write(s->ctx, data, len);
}

void imap_session_printf(struct imap_session *s, const char *fmt, ...)
{
	char line[1024];
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
	session_write(s, line, (size_t)n);
}

void imap_session_close(struct imap_session *s, const char *reason)
{
	if (s->closed)
		return;
	s->io.watch(s->ctx, NULL);
	s->io.close(s->ctx, reason);
	s->closed = true;
	log_info("imap", s->sid, "close reason=%s", reason);
}

static void login_timed_out(struct imap_session *s)
{
	imap_session_printf(s, "* BYE Login timed out");
	imap_session_close(s, "login timeout");
}

/* After a command (or at its start): the idle timer of a logged-in
 * session starts again. Before login the deadline set at connect keeps
 * running; when it passed while a command ran, the session ends now. */
static void arm_timeout(struct imap_session *s)
{
	if (s->closed)
		return;
	if (s->state == IMAP_NOAUTH) {
		if (s->login_expired)
			login_timed_out(s);
		return;
	}
	s->io.set_timeout(s->ctx, s->cfg.idle_timeout);
}

/* The parser limits before login: far below the logged-in ones, never above. */
static void login_limits(const struct imap_config *cfg, struct imap_parser_limits *lim)
{
	lim->max_line = cfg->max_line < IMAP_LOGIN_MAX_LINE ? cfg->max_line : IMAP_LOGIN_MAX_LINE;
	lim->max_literal = cfg->login_max_literal < cfg->max_literal ? cfg->login_max_literal : cfg->max_literal;
	if (lim->max_args > IMAP_LOGIN_MAX_ARGS)
		lim->max_args = IMAP_LOGIN_MAX_ARGS;
}

struct imap_session *imap_session_new(const struct imap_session_params *p, const struct imap_io *io, void *ctx)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	struct imap_parser_limits lim;

	s->io = *io;
	s->ctx = ctx;
	s->cfg = *p->cfg;
	s->backend = p->backend;
	s->sid = xstrdup(p->sid ? p->sid : "-");
	s->client = xstrdup(p->client_addr ? p->client_addr : "unknown");
	s->state = IMAP_NOAUTH;
	s->tls_mode = p->tls_mode;
	s->tls = p->tls;
	if ((s->tls_mode == TLS_MODE_STARTTLS || s->tls_mode == TLS_MODE_REQUIRED) && !io->start_tls)
		BUG("imap session offers STARTTLS without io->start_tls");
	s->maildir = xstrdup("");
	s->key = xstrdup("");
	imap_parser_limits_default(&lim);
	login_limits(&s->cfg, &lim);
	lim.max_depth = s->cfg.max_depth;
	s->parser = imap_parser_init(&lim, IMAP_PARSER_LITERAL_EVENTS);
	s->login_limits = true;
	imap_seqset_init(&s->saved);
	{
		struct buf caps = BUF_INIT(0);
		imap_capabilities(s, &caps);
		imap_session_printf(s, "* OK [CAPABILITY %s] %s IMAP4rev1 buzon ready", caps.data, s->cfg.hostname);
		buf_release(&caps);
	}
	/* The login deadline, armed once: never later than the idle timeout
	 * would have closed a silent client. */
	s->io.set_timeout(s->ctx, s->cfg.login_timeout < s->cfg.idle_timeout ? s->cfg.login_timeout
									    : s->cfg.idle_timeout);
	return s;
}

/*
 * Literals of all sessions together, held in memory while their command is
 * read and run ([imap] max_buffered). Sessions live on the loop thread, and
 * so do these counts. A literal that would go past the budget is refused
 * before its data is taken (NO [UNAVAILABLE]: try again later). Sessions
 * that have not logged in have their own, small budget ([imap]
 * login_max_buffered): however many of them there are, a logged-in user's
 * APPEND never finds max_buffered taken by them.
 */
static uint64_t literals_held, login_literals_held;

uint64_t imap_literals_held(void)
{
	return literals_held;
}

uint64_t imap_login_literals_held(void)
{
	return login_literals_held;
}

static void literals_release(struct imap_session *s)
{
	if (s->lit_held > literals_held || s->lit_held_login > login_literals_held)
		BUG("imap literal budget below what a session holds");
	literals_held -= s->lit_held;
	s->lit_held = 0;
	login_literals_held -= s->lit_held_login;
	s->lit_held_login = 0;
}

/* The literal of an APPEND against the user's quota, before its data:
 * run on a worker while the parser waits for the decision. */
struct quota_check {
	uint64_t size;
	int verdict;
};

static int quota_check_run(struct imap_cmd *cmd)
{
	struct quota_check *q = cmd->priv;

	q->verdict = imap_append_over_quota(cmd->s, q->size);
	return IMAP_RUN_DONE;
}

static void quota_check_finish(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct quota_check *q = cmd->priv;
	const char *tag = imap_parser_tag(s->parser);

	/* Over: refused now, so that the client does not send it (RFC 9208
	 * 4.3 shows OVERQUOTA on APPEND). Cannot tell: taken, and APPEND
	 * checks again once the message is here. */
	if (q->verdict > 0) {
		imap_parser_literal_action(s->parser, IMAP_LITERAL_REJECT);
		literals_release(s);
		imap_session_printf(s, "%s NO [OVERQUOTA] Quota exceeded", tag ? tag : "*");
	}
}

/* A literal was announced: take it into the budget, or refuse it (the
 * parser then drops the command; a synchronizing literal is never sent).
 * The literal of an APPEND is checked against the quota first. */
static void literal_announced(struct imap_session *s)
{
	struct imap_literal_info info;
	const struct imap_command *part;
	const char *tag;
	/* The budget is chosen by the state the literal arrives in; the state
	 * only changes between commands, after the literals are given back. */
	bool login = s->state == IMAP_NOAUTH;
	uint64_t *held = login ? &login_literals_held : &literals_held;
	uint64_t *mine = login ? &s->lit_held_login : &s->lit_held;
	uint64_t max = login ? s->cfg.login_max_buffered : s->cfg.max_buffered;

	imap_parser_literal_info(s->parser, &info);
	part = imap_parser_partial(s->parser);
	if (login && part && part->name &&
	    ((imap_tls_needed(s) && strcasecmp(part->name, "AUTHENTICATE") == 0) ||
	     (strcasecmp(part->name, "LOGIN") == 0 && !imap_plaintext_ok(s)))) {
		/* a synchronizing literal would make the client send the
		 * password in clear: refused before it does */
		tag = imap_parser_tag(s->parser);
		imap_parser_literal_action(s->parser, IMAP_LITERAL_REJECT);
		literals_release(s);
		imap_session_printf(s, "%s NO [PRIVACYREQUIRED] Must issue a STARTTLS command first", tag ? tag : "*");
		return;
	}
	if (*held + info.size <= max) {
		*held += info.size;
		*mine += info.size;
		if ((s->state & IMAP_AUTHED) && !s->cmd && info.size > 0 && part &&
		    strcasecmp(part->name, "APPEND") == 0) {
			struct imap_cmd *cmd = imap_cmd_new(s, part->tag, "APPEND");
			struct quota_check *q = xcalloc(1, sizeof(*q));
			q->size = info.size;
			cmd->priv = q;
			cmd->free_priv = free;
			cmd->run = quota_check_run;
			cmd->finish = quota_check_finish;
			cmd->no_reply = true;
			cmd->keep_literals = true;
			cmd->refreshed = true;   /* no untagged updates in the middle of a command */
			imap_cmd_dispatch(s);
		}
		return;
	}
	tag = imap_parser_tag(s->parser);
	imap_parser_literal_action(s->parser, IMAP_LITERAL_REJECT);
	literals_release(s);
	log_warn("imap", s->sid, "literal refused size=%llu held=%llu %s=%llu", (unsigned long long)info.size,
		 (unsigned long long)*held, login ? "login_max_buffered" : "max_buffered", (unsigned long long)max);
	imap_session_printf(s, "%s NO [UNAVAILABLE] Server busy with other messages, try again later",
			    tag ? tag : "*");
}

static void cmd_free(struct imap_cmd **cp)
{
	struct imap_cmd *c = *cp;

	if (!c)
		return;
	if (c->free_priv)
		c->free_priv(c->priv);
	buf_release(&c->out);
	buf_release(&c->tagged);
	free(c->tag);
	free(c);
	*cp = NULL;
}

void imap_session_free(struct imap_session **sp)
{
	struct imap_session *s = *sp;

	if (!s)
		return;
	if (s->pending)
		BUG("imap session freed while a command runs");
	cmd_free(&s->cmd);
	literals_release(s);
	mbox_close(&s->mbox);
	imap_parser_deinit(&s->parser);
	imap_seqset_release(&s->saved);
	free(s->idle_tag);
	free(s->auth_tag);
	if (s->astep.out) {
		wipe(s->astep.out, s->astep.out_len);
		free(s->astep.out);
	}
	if (s->auth_in) {
		wipe(s->auth_in, SASL_RESPONSE_MAX);
		free(s->auth_in);
	}
	free(s->kw_told);
	free(s->maildir);
	free(s->key);
	free(s->sid);
	free(s->client);
	free(s);
	*sp = NULL;
}

int imap_session_busy(const struct imap_session *s)
{
	return s->pending;
}

/* ---- helpers for the command files ---- */

void imap_session_set_key(struct imap_session *s, const char *key)
{
	free(s->key);
	s->key = xstrdup(key);
}

void imap_cmd_tagged(struct imap_cmd *cmd, const char *status, const char *fmt, ...)
{
	va_list ap;

	buf_reset(&cmd->tagged);
	buf_printf(&cmd->tagged, "%s ", status);
	va_start(ap, fmt);
	buf_vprintf(&cmd->tagged, fmt, ap);
	va_end(ap);
}

void imap_cmd_bad(struct imap_cmd *cmd, const char *text)
{
	imap_cmd_tagged(cmd, "BAD", "%s", text);
}

void imap_cmd_untagged(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	buf_adds(&cmd->out, "* ");
	va_start(ap, fmt);
	buf_vprintf(&cmd->out, fmt, ap);
	va_end(ap);
	buf_adds(&cmd->out, "\r\n");
}

void imap_write_flags(struct buf *out, uint32_t flags, const char *keywords)
{
	static const struct { uint32_t f; const char *name; } names[] = {
		{ MBOX_ANSWERED, "\\Answered" }, { MBOX_FLAGGED, "\\Flagged" }, { MBOX_DELETED, "\\Deleted" },
		{ MBOX_SEEN, "\\Seen" }, { MBOX_DRAFT, "\\Draft" }, { MBOX_RECENT, "\\Recent" },
	};
	bool first = true;

	buf_addch(out, '(');
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (!(flags & names[i].f))
			continue;
		if (!first)
			buf_addch(out, ' ');
		buf_adds(out, names[i].name);
		first = false;
	}
	if (keywords && *keywords) {
		if (!first)
			buf_addch(out, ' ');
		buf_adds(out, keywords);
	}
	buf_addch(out, ')');
}

/* An atom character of RFC 3501 (flag keywords are atoms). */
static bool atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\]", c);
}

bool imap_parse_flags(const struct imap_arg *list, size_t count, uint32_t *flags_r, struct buf *kw)
{
	static const struct { const char *name; uint32_t f; } names[] = {
		{ "\\Answered", MBOX_ANSWERED }, { "\\Flagged", MBOX_FLAGGED }, { "\\Deleted", MBOX_DELETED },
		{ "\\Seen", MBOX_SEEN }, { "\\Draft", MBOX_DRAFT },
	};
	uint32_t flags = 0;

	buf_reset(kw);
	for (size_t i = 0; i < count; i++) {
		const char *a;
		bool known = false;

		if (list[i].type != IMAP_ARG_ATOM || (list[i].flags & IMAP_ARG_SECTION) || !imap_arg_get_atom(&list[i], &a))
			return false;
		if (a[0] == '\\') {
			for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
				if (strcasecmp(a, names[k].name) == 0) {
					flags |= names[k].f;
					known = true;
				}
			}
			if (!known)
				return false;
			continue;
		}
		for (const char *p = a; *p; p++)
			if (!atom_char((unsigned char)*p))
				return false;
		if (strlen(a) > 100)
			return false;
		/* Keep each keyword once; case-insensitive as RFC 3501 2.3.2 says. */
		{
			bool dup = false;
			const char *k = kw->data;
			size_t alen = strlen(a);
			while (k && *k) {
				size_t klen = strcspn(k, " ");
				if (klen == alen && strncasecmp(k, a, alen) == 0)
					dup = true;
				k += klen;
				while (*k == ' ')
					k++;
			}
			if (dup)
				continue;
		}
		if (kw->len > 4000)
			return false;
		if (kw->len)
			buf_addch(kw, ' ');
		buf_adds(kw, a);
	}
	*flags_r = flags;
	return true;
}

bool imap_mailbox_name(const char *name, size_t len, char *out, size_t outlen)
{
	if (len == 0 || len >= outlen || memchr(name, '\0', len))
		return false;
	if (len == 5 && strncasecmp(name, "INBOX", 5) == 0) {
		snprintf(out, outlen, "INBOX");
		return true;
	}
	/* Child names of INBOX, such as "INBOX.Sub", keep their case. */
	memcpy(out, name, len);
	out[len] = '\0';
	if (!imap_utf7_is_valid(out, len))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c < 0x20 || c >= 0x7f || c == '/' || c == '*' || c == '%')
			return false;
	}
	if (out[0] == '.' || out[len - 1] == '.' || strstr(out, ".."))
		return false;
	if (strcmp(out, "..") == 0 || strncmp(out, "../", 3) == 0)
		return false;
	return len <= 200;
}

bool imap_cmd_seqset(struct imap_cmd *cmd, const struct imap_arg *arg, struct imap_seqset *idx_r)
{
	struct imap_session *s = cmd->s;
	struct mbox *m = s->mbox;
	size_t n = m ? mbox_count(m) : 0;
	struct imap_seqset set;
	const char *text;
	uint32_t star;
	int r;

	imap_seqset_clear(idx_r);
	if (!imap_arg_get_atom(arg, &text) || (arg->flags & IMAP_ARG_SECTION)) {
		imap_cmd_bad(cmd, "Invalid sequence set");
		return false;
	}
	if (cmd->uid)
		star = n ? mbox_get(m, n - 1)->uid : (m ? mbox_uidnext(m) : 1);
	else
		star = (uint32_t)n;
	imap_seqset_init(&set);
	r = imap_seqset_parse(&set, text, strlen(text), star, IMAP_SEQSET_ALLOW_SAVED);
	if (r == IMAP_SEQSET_SAVED) {
		/* $: the saved search result, as UIDs. */
		for (size_t i = 0; i < n; i++)
			if (imap_seqset_contains(&s->saved, mbox_get(m, i)->uid))
				imap_seqset_add(idx_r, (uint32_t)i + 1);
		imap_seqset_release(&set);
		return true;
	}
	if (r == -ERANGE && !cmd->uid) {
		imap_seqset_release(&set);
		imap_cmd_tagged(cmd, "NO", "No messages");   /* "*" in an empty mailbox */
		return false;
	}
	if (r < 0) {
		imap_seqset_release(&set);
		imap_cmd_bad(cmd, "Invalid sequence set");
		return false;
	}
	if (cmd->uid) {
		for (size_t i = 0; i < n; i++)
			if (imap_seqset_contains(&set, mbox_get(m, i)->uid))
				imap_seqset_add(idx_r, (uint32_t)i + 1);
	} else {
		if (imap_seqset_max(&set) > n) {
			imap_seqset_release(&set);
			imap_cmd_bad(cmd, "Invalid messageset");
			return false;
		}
		imap_seqset_release(idx_r);
		*idx_r = set;
		return true;
	}
	imap_seqset_release(&set);
	return true;
}

/* ---- untagged updates ---- */

void imap_keywords_told(struct imap_session *s, const char *kw, struct buf *out)
{
	static const char *const system_flags = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
	struct buf all = BUF_INIT(0);
	bool news = false;

	/* The list only grows within a selection, as Dovecot's does: a
	 * keyword no message carries any more stays offered. */
	if (s->kw_told)
		buf_adds(&all, s->kw_told);
	for (const char *k = kw; k && *k;) {
		size_t l = strcspn(k, " ");
		if (l && !mbox_keyword_listed(all.data, k, l) && all.len + l < MBOX_KEYWORDS_MAX) {
			if (all.len)
				buf_addch(&all, ' ');
			buf_add(&all, k, l);
			news = true;
		}
		k += l;
		while (*k == ' ')
			k++;
	}
	if (news && out) {
		const char *sep = all.len ? " " : "";
		buf_printf(out, "* FLAGS (%s%s%s)\r\n", system_flags, sep, all.data ? all.data : "");
		if (!s->readonly)
			buf_printf(out, "* OK [PERMANENTFLAGS (%s%s%s \\*)] Flags permitted\r\n", system_flags, sep,
				   all.data ? all.data : "");
	}
	if (news) {
		free(s->kw_told);
		s->kw_told = xstrdup(all.data);
	}
	buf_release(&all);
}

int imap_refresh(struct imap_session *s, struct buf *out)
{
	struct mbox *m = s->mbox;
	struct mbox_changes ch;
	uint32_t *old;
	size_t n_old, recent = 0;
	int r;

	if (!m)
		return 0;
	n_old = mbox_count(m);
	old = xcalloc(n_old + 1, sizeof(uint32_t));
	for (size_t i = 0; i < n_old; i++)
		old[i] = mbox_get(m, i)->uid;
	r = mbox_refresh(m, &ch);
	if (r < 0) {
		free(old);
		return r;
	}
	if (ch.n_expunged && s->qresync) {
		struct imap_seqset v = IMAP_SEQSET_INIT;
		for (size_t k = 0; k < ch.n_expunged; k++)
			imap_seqset_add(&v, ch.expunged[k]);
		buf_adds(out, "* VANISHED ");
		imap_seqset_format(&v, out);
		buf_adds(out, "\r\n");
		imap_seqset_release(&v);
	} else if (ch.n_expunged) {
		/* From the highest sequence number down: each stays valid as sent. */
		size_t k = ch.n_expunged, i = n_old;
		while (k > 0 && i > 0) {
			if (old[i - 1] == ch.expunged[k - 1]) {
				buf_printf(out, "* %zu EXPUNGE\r\n", i);
				k--;
			}
			i--;
		}
	}
	/* A keyword new to the client comes with FLAGS before the FETCH
	 * responses that carry it. */
	if (ch.n_changed || ch.n_new)
		imap_keywords_told(s, mbox_keywords(m), out);
	for (size_t k = 0; k < ch.n_changed; k++) {
		ssize_t i = mbox_find(m, ch.changed[k]);
		const struct mbox_msg *x;
		if (i < 0)
			continue;
		x = mbox_get(m, (size_t)i);
		buf_printf(out, "* %zd FETCH (", i + 1);
		buf_adds(out, "FLAGS ");
		imap_write_flags(out, imap_msg_flags(m, (size_t)i), x->keywords);
		if (s->condstore)
			buf_printf(out, " MODSEQ (%llu)", (unsigned long long)x->modseq);
		buf_printf(out, " UID %u)\r\n", x->uid);
	}
	/* EXPUNGE (or VANISHED) counts the messages down by itself: EXISTS
	 * only for new ones (RFC 3501 7.4.1). */
	if (ch.n_new) {
		buf_printf(out, "* %zu EXISTS\r\n", mbox_count(m));
		recent = mbox_recent_count(m);
		buf_printf(out, "* %zu RECENT\r\n", recent);
	}
	free(old);
	return 0;
}

/* ---- running commands ---- */

void imap_cmd_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	int r = IMAP_RUN_DONE;

	if (cmd->run)
		r = cmd->run(cmd);
	if (r == IMAP_RUN_MORE)
		return;
	cmd->run = NULL;
	/* Untagged updates go before the tagged reply, where RFC 3501 allows them. */
	if (s->mbox && !(cmd->def && (cmd->def->flags & IMAP_CMD_NO_REFRESH)) && !cmd->refreshed) {
		cmd->refreshed = true;
		imap_refresh(s, &cmd->out);
	}
	/* Between commands a session holds no index connection (three
	 * descriptors: db, -wal, -shm): a thousand selected sessions would
	 * otherwise need three thousand, and run out (issue 8). The next
	 * command takes one back from the pool. */
	if (s->mbox)
		mbox_sleep(s->mbox);
}

static void idle_refresh(struct imap_session *s);

static void write_and_finish(struct imap_session *s)
{
	struct imap_cmd *cmd = s->cmd;

	if (cmd->out.len)
		session_write(s, cmd->out.data, cmd->out.len);
	buf_reset(&cmd->out);
	if (cmd->run) {
		/* More to come once the client has taken this part. */
		s->pending = true;
		s->io.when_drained(s->ctx, DRAIN_MARK);
		return;
	}
	if (cmd->finish)
		cmd->finish(cmd);
	if (!cmd->no_reply) {
		if (!cmd->tagged.len)
			imap_cmd_tagged(cmd, "OK", "%s completed", cmd->name);
		if (strncmp(cmd->tagged.data, "BAD", 3) == 0)
			s->bad++;
		imap_session_printf(s, "%s %s", cmd->tag, cmd->tagged.data);
	}
	if (!cmd->keep_literals)
		literals_release(s);
	cmd_free(&s->cmd);
	/* The command is over and its arguments with it: a session waiting
	 * for its client (IDLE above all, thousands of them) keeps no parser
	 * memory. A pipelined next command allocates it again, a few small
	 * mallocs. */
	imap_parser_trim(s->parser);
	if (s->login_limits && (s->state & IMAP_AUTHED)) {
		/* Logged in: the next command (maybe pipelined already, still
		 * unread) is read with the full limits. A login ends its
		 * command, so the parser is between commands here. */
		if (imap_parser_set_limits(s->parser, s->cfg.max_line, s->cfg.max_literal,
					   IMAP_PARSER_DEFAULT_MAX_ARGS) < 0)
			BUG("imap login with a command partly read");
		s->login_limits = false;
	}
	if (s->state == IMAP_LOGOUT && !s->closed)
		imap_session_close(s, "logout");
	if (s->bad >= s->cfg.max_bad_commands && !s->closed) {
		imap_session_printf(s, "* BYE Too many invalid commands");
		imap_session_close(s, "too many bad commands");
	}
	if (s->shutdown && !s->closed) {
		imap_session_printf(s, "* BYE Server shutting down");
		imap_session_close(s, "shutdown");
	}
}

void imap_session_drained(struct imap_session *s)
{
	if (!s->cmd || !s->cmd->run || s->closed) {
		s->pending = false;
		return;
	}
	s->io.exec(s->ctx, s->cmd, 0);
}

void imap_session_cmd_done(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd != s->cmd)
		BUG("imap cmd_done for a command that is not running");
	s->pending = false;
	if (s->closed) {
		cmd_free(&s->cmd);
		return;
	}
	write_and_finish(s);
	if (s->pending)
		return;     /* streaming: waiting for the drain */
	arm_timeout(s);
	if (s->lit_kick && !s->in_input && !s->closed)
		imap_session_input(s, "", 0);  /* the parser acts on the decision ("+") */
	if (s->idling && s->changed)
		idle_refresh(s);
	else if (!s->in_input)
		s->io.resume(s->ctx);
}

struct imap_cmd *imap_cmd_new(struct imap_session *s, const char *tag, const char *name)
{
	struct imap_cmd *cmd = xcalloc(1, sizeof(*cmd));

	if (s->cmd)
		BUG("imap: a second command while one is in progress");
	cmd->s = s;
	cmd->tag = xstrdup(tag);
	cmd->name = name;
	buf_init(&cmd->out, OUT_MAX);
	buf_init(&cmd->tagged, 4096);
	s->cmd = cmd;
	return cmd;
}

void imap_cmd_dispatch(struct imap_session *s)
{
	struct imap_cmd *cmd = s->cmd;

	if (s->closed) {
		cmd_free(&s->cmd);
		return;
	}
	if (cmd->run) {
		s->pending = true;
		/* Before login the deadline runs on through a (delayed) LOGIN. */
		if (s->state != IMAP_NOAUTH)
			s->io.set_timeout(s->ctx, 0);
		s->io.exec(s->ctx, cmd, cmd->delay_ms);
		return;
	}
	/* Answered at once. */
	write_and_finish(s);
}

static void start_command(struct imap_session *s, const struct imap_command *c)
{
	const struct imap_cmd_def *def = NULL;
	struct imap_cmd *cmd = imap_cmd_new(s, c->tag, c->name);

	cmd->args = c->args;
	cmd->count = c->count;
	cmd->uid = strncmp(c->name, "UID ", 4) == 0;
	for (size_t t = 0; t < ARRAY_SIZE(tables) && !def; t++)
		for (const struct imap_cmd_def *d = tables[t]; d->name && !def; d++)
			if (strcmp(d->name, c->name) == 0)
				def = d;
	cmd->def = def;
	if (!def) {
		imap_cmd_bad(cmd, "Unknown command");
	} else if (!(def->states & s->state)) {
		if (s->state == IMAP_NOAUTH)
			imap_cmd_bad(cmd, "Log in first");
		else if (def->states == IMAP_NOAUTH)
			imap_cmd_bad(cmd, "Already logged in");
		else
			imap_cmd_bad(cmd, "No mailbox selected");
	} else {
		def->start(cmd);
	}
	imap_cmd_dispatch(s);
}

static void idle_done(struct imap_session *s, const char *line, size_t len)
{
	char *tag = s->idle_tag;

	s->idling = false;
	s->idle_tag = NULL;
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
		imap_session_printf(s, "%s OK Idle completed", tag);
	else
		imap_session_printf(s, "%s BAD Expected DONE", tag);
	free(tag);
	arm_timeout(s);
}

/* IDLE: a change came in (or the session just entered IDLE). */
static int idle_run(struct imap_cmd *cmd)
{
	imap_refresh(cmd->s, &cmd->out);
	cmd->refreshed = true;
	/* An idling session may wait for hours: give its index connection
	 * back (thousands of IDLE sessions, RSS) until the next change. */
	mbox_sleep(cmd->s->mbox);
	return IMAP_RUN_DONE;
}

static void idle_refresh(struct imap_session *s)
{
	struct imap_cmd *cmd;

	if (s->pending || s->cmd || s->closed)
		return;
	s->changed = false;
	cmd = imap_cmd_new(s, "*", "IDLE");
	cmd->run = idle_run;
	cmd->no_reply = true;
	imap_cmd_dispatch(s);
}

void imap_session_notify(struct imap_session *s)
{
	s->changed = true;
	if (s->idling)
		idle_refresh(s);
}

void imap_session_enter_idle(struct imap_session *s, const char *tag)
{
	s->idling = true;
	free(s->idle_tag);
	s->idle_tag = xstrdup(tag);
	imap_parser_read_line(s->parser);
}

/* ---- AUTHENTICATE: the steps the glue runs ---- */

void imap_auth_send(struct imap_session *s)
{
	if (!s->io.auth_step)
		BUG("imap AUTHENTICATE without io->auth_step");
	s->pending = true;
	s->auth_busy = true;
	s->io.auth_step(s->ctx, &s->astep);
}

void imap_session_auth_done(struct imap_session *s, struct auth_step *st)
{
	if (!s->auth_busy || st != &s->astep)
		BUG("imap auth_done without a step in progress");
	s->auth_busy = false;
	s->pending = false;
	if (s->auth_in)
		wipe(s->auth_in, SASL_RESPONSE_MAX);
	st->in = NULL;
	st->in_len = 0;
	if (s->closed) {
		if (st->out) {
			wipe(st->out, st->out_len);
			free(st->out);
			st->out = NULL;
		}
		free(s->auth_tag);
		s->auth_tag = NULL;
		if (s->io.auth_end)
			s->io.auth_end(s->ctx);
		return;
	}
	imap_auth_answer(s, st);
	if (s->pending)
		return;     /* the login's maildir lookup runs: imap_session_cmd_done() goes on */
	if (!s->closed && s->shutdown) {
		imap_session_printf(s, "* BYE Server shutting down");
		imap_session_close(s, "shutdown");
	}
	arm_timeout(s);
	if (!s->in_input && !s->closed)
		s->io.resume(s->ctx);
}

size_t imap_session_input(struct imap_session *s, const char *data, size_t len)
{
	size_t used = 0;

	if (s->closed)
		return len;
	if (s->tls_wait)
		return 0;   /* the glue drops what it holds once the handshake is done */
	s->in_input = true;
	/* lit_kick: after IMAP_PARSE_LITERAL the parser must be fed once more,
	 * with or without bytes, to act on the decision ("+" for a
	 * synchronizing literal the client waits for). */
	while ((used < len || s->lit_kick) && !s->pending && !s->closed) {
		size_t n = 0;
		const char *msg;
		int r;

		s->lit_kick = false;
		r = imap_parser_feed(s->parser, data + used, len - used, &n);

		used += n;
		switch (r) {
		case IMAP_PARSE_NEED_MORE:
			break;
		case IMAP_PARSE_COMMAND:
			arm_timeout(s);
			start_command(s, imap_parser_command(s->parser));
			if (s->auth_go) {
				/* AUTHENTICATE: its first step goes to the glue */
				s->auth_go = false;
				imap_auth_send(s);
			}
			if (s->tls_go) {
				/* STARTTLS: its OK is written; not one byte after
				 * the command is read in clear */
				s->tls_go = false;
				s->in_input = false;
				if (s->closed)
					return len;
				s->tls_wait = true;
				s->io.start_tls(s->ctx);
				return used;
			}
			if (s->pending) {
				s->in_input = false;
				return used;
			}
			if (s->idling)
				idle_refresh(s);
			break;
		case IMAP_PARSE_CONTINUE:
			imap_session_printf(s, "+ OK");
			break;
		case IMAP_PARSE_LITERAL:
			/* decided now, or by a quota check on a worker (pending) */
			literal_announced(s);
			s->lit_kick = true;
			break;
		case IMAP_PARSE_LINE: {
			size_t llen;
			const char *line = imap_parser_line(s->parser, &llen);
			if (s->idling) {
				idle_done(s, line, llen);
			} else {
				imap_auth_line(s, line, llen);
				if (s->pending) {
					s->in_input = false;
					return used;
				}
			}
			break;
		}
		case IMAP_PARSE_ERROR: {
			const char *tag = imap_parser_tag(s->parser);
			enum imap_parser_error e = imap_parser_error(s->parser, &msg);
			char *auth_tag = s->auth_tag;
			bool counted = true;

			literals_release(s);   /* the parser dropped the command */
			/* An AUTHENTICATE response line that is too long ends
			 * that AUTHENTICATE: the client waits for its tag. */
			s->auth_tag = NULL;
			if (auth_tag) {
				tag = auth_tag;
				if (s->io.auth_end)
					s->io.auth_end(s->ctx);
			}
			if (e == IMAP_PARSE_ERROR_LITERAL_TOO_BIG && s->state == IMAP_NOAUTH) {
				/* Before login no literal is a message: one over the
				 * login limit is a bad argument, refused before the
				 * client sends it (RFC 3501 7.5; TOOBIG, RFC 5530). */
				imap_session_printf(s, "%s BAD [TOOBIG] %s before login", tag ? tag : "*", msg);
			} else if (e == IMAP_PARSE_ERROR_LITERAL_TOO_BIG) {
				/* A literal over APPENDLIMIT is a NO, not a client error. */
				imap_session_printf(s, "%s NO [TOOBIG] %s", tag ? tag : "*", msg);
				counted = false;
			} else {
				imap_session_printf(s, "%s BAD %s", tag ? tag : "*", msg);
			}
			free(auth_tag);
			if (counted && ++s->bad >= s->cfg.max_bad_commands) {
				imap_session_printf(s, "* BYE Too many invalid commands");
				imap_session_close(s, "too many bad commands");
			}
			break;
		}
		case IMAP_PARSE_FATAL:
		default:
			imap_parser_error(s->parser, &msg);
			imap_session_printf(s, "* BYE %s", msg);
			imap_session_close(s, "protocol error");
			break;
		}
		if (n == 0 && r == IMAP_PARSE_NEED_MORE)
			break;
	}
	s->in_input = false;
	if (s->closed)
		return len;
	return used;
}

void imap_session_disconnected(struct imap_session *s)
{
	s->closed = true;
}

void imap_session_timeout(struct imap_session *s)
{
	if (s->closed)
		return;
	if (s->tls_wait) {
		/* a clear-text BYE would land in the middle of the handshake */
		imap_session_close(s, "timeout during tls handshake");
		return;
	}
	if (s->state == IMAP_NOAUTH) {
		/* The login deadline. A LOGIN being checked is let finish: it
		 * may succeed; if not, arm_timeout() ends the session. */
		if (s->pending)
			s->login_expired = true;
		else
			login_timed_out(s);
		return;
	}
	if (s->pending)
		return;
	imap_session_printf(s, "* BYE Autologout; idle for too long");
	imap_session_close(s, "timeout");
}

void imap_session_shutdown(struct imap_session *s)
{
	s->shutdown = true;
	if (s->pending || s->closed || s->tls_wait)
		return;   /* after the command, or inside TLS after the handshake */
	imap_session_printf(s, "* BYE Server shutting down");
	imap_session_close(s, "shutdown");
}

void imap_session_tls_started(struct imap_session *s, const struct tls_info *info)
{
	if (!s->tls_wait || !info)
		BUG("imap tls_started without a STARTTLS in progress");
	s->tls_wait = false;
	s->tls = info;
	if (s->closed)
		return;
	/* Still not authenticated; nothing said in clear is kept (the parser
	 * stopped between commands, reset anyway). What was advertised
	 * changes: the client asks CAPABILITY again (RFC 3501 6.2.1). */
	imap_parser_reset(s->parser);
	imap_parser_trim(s->parser);
	log_info("imap", s->sid, "tls started version=%s cipher=%s", info->version, info->cipher);
	if (s->shutdown) {
		imap_session_printf(s, "* BYE Server shutting down");
		imap_session_close(s, "shutdown");
		return;
	}
	/* as after a command: before login the deadline from connect runs on */
	arm_timeout(s);
}
