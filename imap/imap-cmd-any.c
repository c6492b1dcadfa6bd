/* Commands valid in any state, and login: CAPABILITY, NOOP, LOGOUT, ID,
 * ENABLE, IDLE, NAMESPACE, STARTTLS, LOGIN, AUTHENTICATE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imap-private.h"
#include "imap/imap-quote.h"
#include "lib/log.h"
#include "lib/sasl.h"
#include "lib/xalloc.h"
#include "storage/directory.h"

bool imap_tls_offered(const struct imap_session *s)
{
	return !s->tls && (s->tls_mode == TLS_MODE_STARTTLS || s->tls_mode == TLS_MODE_REQUIRED);
}

bool imap_tls_needed(const struct imap_session *s)
{
	return !s->tls && s->tls_mode == TLS_MODE_REQUIRED;
}

bool imap_plaintext_ok(struct imap_session *s)
{
	if (imap_tls_needed(s))
		return false;
	if (s->tls || !s->io.plaintext_ok)
		return true;
	return s->io.plaintext_ok(s->ctx) != 0;
}

/* STARTTLS only where it may be used: before login, in clear (RFC 3501
 * 6.2.1; after it the client asks again and no longer sees it). The SASL
 * mechanisms come from the glue (AUTH=<mech> each, RFC 3501 6.2.2); where
 * LOGIN and PLAIN may not be used (in clear off loopback, or
 * allow_plaintext_auth = no), LOGINDISABLED (RFC 3501 6.2.3). With tls =
 * required, no mechanism at all until TLS. */
void imap_capabilities(struct imap_session *s, struct buf *out)
{
	const char *mechs;

	buf_adds(out, "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN "
		      "SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES CONDSTORE QRESYNC QUOTA QUOTA=RES-STORAGE");
	buf_printf(out, " APPENDLIMIT=%llu", (unsigned long long)s->cfg.max_literal);
	if (s->state != IMAP_NOAUTH)
		return;
	if (imap_tls_offered(s))
		buf_adds(out, " STARTTLS");
	if (imap_tls_needed(s)) {
		buf_adds(out, " LOGINDISABLED");
		return;
	}
	mechs = s->io.auth_mechs ? s->io.auth_mechs(s->ctx) : NULL;
	while (mechs && *mechs) {
		size_t n = strcspn(mechs, " ");
		if (n)
			buf_printf(out, " AUTH=%.*s", (int)n, mechs);
		mechs += n;
		while (*mechs == ' ')
			mechs++;
	}
	if (!imap_plaintext_ok(s))
		buf_adds(out, " LOGINDISABLED");
}

static void cmd_capability(struct imap_cmd *cmd)
{
	struct buf b = BUF_INIT(0);

	if (cmd->count) {
		imap_cmd_bad(cmd, "CAPABILITY takes no arguments");
		return;
	}
	imap_capabilities(cmd->s, &b);
	imap_cmd_untagged(cmd, "CAPABILITY %s", b.data);
	buf_release(&b);
	imap_cmd_tagged(cmd, "OK", "Capability completed");
}

static int noop_run(struct imap_cmd *cmd)
{
	imap_cmd_tagged(cmd, "OK", "%s completed", cmd->name);
	return IMAP_RUN_DONE;
}

static void cmd_noop(struct imap_cmd *cmd)
{
	if (cmd->count) {
		imap_cmd_bad(cmd, "NOOP takes no arguments");
		return;
	}
	imap_cmd_tagged(cmd, "OK", "NOOP completed");
	/* In a mailbox, the run does the refresh that brings news. */
	if (cmd->s->mbox)
		cmd->run = noop_run;
}

static void cmd_logout(struct imap_cmd *cmd)
{
	if (cmd->count) {
		imap_cmd_bad(cmd, "LOGOUT takes no arguments");
		return;
	}
	imap_cmd_untagged(cmd, "BYE Logging out");
	imap_cmd_tagged(cmd, "OK", "Logout completed");
	cmd->s->state = IMAP_LOGOUT;
}

static void cmd_id(struct imap_cmd *cmd)
{
	const struct imap_arg *items;
	size_t n;

	/* RFC 2971: ID ( "name" "value" ... ) or ID NIL; at most 30 pairs. */
	if (cmd->count != 1 || (cmd->args[0].type != IMAP_ARG_NIL &&
				(!imap_arg_get_list(&cmd->args[0], &items, &n) || n % 2 || n > 60))) {
		imap_cmd_bad(cmd, "ID needs a list of field-value pairs or NIL");
		return;
	}
	imap_cmd_untagged(cmd, "ID (\"name\" \"buzon\" \"version\" \"%s\")", BUZON_VERSION);
	imap_cmd_tagged(cmd, "OK", "ID completed");
}

static void cmd_enable(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct buf b = BUF_INIT(0);

	if (cmd->count == 0) {
		imap_cmd_bad(cmd, "ENABLE needs capability names");
		return;
	}
	for (size_t i = 0; i < cmd->count; i++) {
		const char *a;
		if (!imap_arg_get_atom(&cmd->args[i], &a)) {
			imap_cmd_bad(cmd, "ENABLE takes atoms");
			buf_release(&b);
			return;
		}
		if (strcasecmp(a, "CONDSTORE") == 0 && !s->condstore) {
			s->condstore = true;
			buf_adds(&b, " CONDSTORE");
		} else if (strcasecmp(a, "QRESYNC") == 0 && !s->qresync) {
			s->qresync = true;
			buf_adds(&b, " QRESYNC");
			/* QRESYNC implies CONDSTORE (RFC 7162 3.2.3). */
			s->condstore = true;
		}
	}
	imap_cmd_untagged(cmd, "ENABLED%s", b.data ? b.data : "");
	buf_release(&b);
	imap_cmd_tagged(cmd, "OK", "Enabled");
}

static void cmd_idle(struct imap_cmd *cmd)
{
	if (cmd->count) {
		imap_cmd_bad(cmd, "IDLE takes no arguments");
		return;
	}
	imap_session_printf(cmd->s, "+ idling");
	imap_session_enter_idle(cmd->s, cmd->tag);
	cmd->no_reply = true;
}

static void cmd_namespace(struct imap_cmd *cmd)
{
	if (cmd->count) {
		imap_cmd_bad(cmd, "NAMESPACE takes no arguments");
		return;
	}
	imap_cmd_untagged(cmd, "NAMESPACE ((\"\" \".\")) NIL NIL");
	imap_cmd_tagged(cmd, "OK", "Namespace completed");
}

/* The tagged OK is the last thing read in clear: the session starts TLS
 * once it is written and reads nothing pipelined behind the command
 * (imap_session_input()). */
static void cmd_starttls(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;

	if (s->tls) {
		imap_cmd_bad(cmd, "TLS is already active");
		return;
	}
	if (!imap_tls_offered(s)) {
		imap_cmd_bad(cmd, "TLS is not available on this port");
		return;
	}
	if (cmd->count) {
		imap_cmd_bad(cmd, "STARTTLS takes no arguments");
		return;
	}
	imap_cmd_tagged(cmd, "OK", "Begin TLS negotiation now");
	s->tls_go = true;
}

/* tls = required before TLS: LOGIN and AUTHENTICATE are refused before
 * their arguments are looked at (RFC 5530 PRIVACYREQUIRED). */
static bool refuse_in_clear(struct imap_cmd *cmd)
{
	if (!imap_tls_needed(cmd->s))
		return false;
	imap_cmd_tagged(cmd, "NO", "[PRIVACYREQUIRED] Must issue a STARTTLS command first");
	return true;
}

/* LOGIN and PLAIN where plaintext passwords are not allowed (in clear
 * off loopback, allow_plaintext_auth = no): NO [PRIVACYREQUIRED]. */
static bool refuse_plaintext(struct imap_cmd *cmd)
{
	if (imap_plaintext_ok(cmd->s))
		return false;
	imap_cmd_tagged(cmd, "NO", "[PRIVACYREQUIRED] Plaintext authentication is not allowed without TLS");
	return true;
}

/* ---- LOGIN and AUTHENTICATE ---- */

struct login {
	const char *mech;         /* NULL: LOGIN; else the SASL mechanism of AUTHENTICATE */
	char user[SASL_ID_MAX + 1];
	char password[SASL_PASSWORD_MAX + 1];
	char canonical[SASL_ID_MAX + 1];
	char maildir[4096];
	int ok;
	int tempfail;
};

static void login_free(void *p)
{
	struct login *l = p;

	if (!l)
		return;
	wipe(l->password, sizeof(l->password));
	free(l);
}

static int login_run(struct imap_cmd *cmd)
{
	struct login *l = cmd->priv;
	const struct imap_backend *b = cmd->s->backend;
	struct dir_target t[DIR_MAX_TARGETS];
	size_t n = 0;
	int r;

	if (l->mech) {
		/* AUTHENTICATE: the glue's SASL checked the credentials */
		r = 0;
	} else {
		r = dir_authenticate(b->dir, l->user, l->password, l->canonical);
		wipe(l->password, sizeof(l->password));
	}
	if (r == 0) {
		if (dir_resolve(b->dir, l->canonical, "", t, &n) == DIR_OK && n == 1) {
			snprintf(l->maildir, sizeof(l->maildir), "%s", t[0].maildir);
			l->ok = 1;
		} else {
			l->tempfail = 1;
		}
	} else if (r != -EACCES) {
		l->tempfail = 1;
	}
	return IMAP_RUN_DONE;
}

static void login_finish(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct login *l = cmd->priv;
	char safe[128];

	log_safe(l->user, safe, sizeof(safe));
	if (l->tempfail) {
		if (l->mech)
			log_warn("imap", s->sid, "auth error mech=%s user=%s client=%s", l->mech, safe, s->client);
		else
			log_warn("imap", s->sid, "login error user=%s client=%s", safe, s->client);
		imap_cmd_tagged(cmd, "NO", "[UNAVAILABLE] Temporary authentication failure");
		return;
	}
	if (!l->mech)   /* SASL: the glue counted it */
		s->io.auth_result(s->ctx, l->user, l->ok);
	if (!l->ok) {
		log_info("imap", s->sid, "login failed user=%s client=%s", safe, s->client);
		imap_cmd_tagged(cmd, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		if (++s->auth_failures >= s->cfg.max_auth_failures) {
			imap_session_printf(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed", cmd->tag);
			imap_session_printf(s, "* BYE Too many failed logins");
			cmd->no_reply = true;
			imap_session_close(s, "too many failed logins");
		}
		return;
	}
	s->state = IMAP_AUTH;
	snprintf(s->user, sizeof(s->user), "%s", l->canonical);
	free(s->maildir);
	s->maildir = xstrdup(l->maildir);
	if (l->mech)
		log_info("imap", s->sid, "auth ok mech=%s user=%s client=%s", l->mech, safe, s->client);
	else
		log_info("imap", s->sid, "login user=%s client=%s", safe, s->client);
	{
		struct buf b = BUF_INIT(0);
		imap_capabilities(s, &b);
		imap_cmd_tagged(cmd, "OK", "[CAPABILITY %s] Logged in", b.data);
		buf_release(&b);
	}
}

static void start_login(struct imap_cmd *cmd, const char *user, size_t ulen, const char *pass, size_t plen)
{
	struct login *l;

	if (ulen == 0 || ulen > SASL_ID_MAX || plen > SASL_PASSWORD_MAX || memchr(user, '\0', ulen) ||
	    memchr(pass, '\0', plen)) {
		imap_cmd_tagged(cmd, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		return;
	}
	l = xcalloc(1, sizeof(*l));
	memcpy(l->user, user, ulen);
	memcpy(l->password, pass, plen);
	cmd->priv = l;
	cmd->free_priv = login_free;
	cmd->run = login_run;
	cmd->finish = login_finish;
	cmd->delay_ms = cmd->s->io.auth_delay(cmd->s->ctx, l->user);
}

static void cmd_login(struct imap_cmd *cmd)
{
	const char *user, *pass;
	size_t ulen, plen;

	if (refuse_in_clear(cmd) || refuse_plaintext(cmd))
		return;
	if (cmd->count != 2 || !imap_arg_get_astring(&cmd->args[0], &user, &ulen) ||
	    !imap_arg_get_astring(&cmd->args[1], &pass, &plen)) {
		imap_cmd_bad(cmd, "LOGIN needs a user name and a password");
		return;
	}
	start_login(cmd, user, ulen, pass, plen);
}

/*
 * AUTHENTICATE (RFC 3501 6.2.2, SASL-IR RFC 4959) through the glue's SASL
 * (lib/auth-types.h): the session decodes each client response and hands
 * it to io->auth_step as s->astep; the glue runs it (GNU SASL, on a worker)
 * and answers with imap_session_auth_done(), which comes here
 * (imap_auth_answer()): a challenge becomes "+ <base64>" and the next line
 * is read raw; the end becomes a command of its own (imap_cmd_new()) so
 * that the tagged line goes through the usual machinery: success runs the
 * Maildir lookup on a worker and finishes as LOGIN does (state,
 * [CAPABILITY], the full parser limits); failure is NO
 * [AUTHENTICATIONFAILED], counted in max_auth_failures; a directory
 * failure NO [UNAVAILABLE]; a response that is not base64 or not a message
 * of the mechanism BAD. "*" cancels with BAD.
 */

static const char *mech_offered(struct imap_session *s, const char *mech)
{
	const char *m = s->io.auth_mechs ? s->io.auth_mechs(s->ctx) : NULL;
	size_t len = strlen(mech);

	while (m && *m) {
		size_t n = strcspn(m, " ");
		if (n == len && strncasecmp(m, mech, n) == 0)
			return m;
		m += n;
		while (*m == ' ')
			m++;
	}
	return NULL;
}

/* Decodes a client response (base64, "=" for an empty initial response
 * when ir) into s->auth_in; false when it is not strict base64 or too long. */
static bool auth_decode(struct imap_session *s, const char *text, size_t len, bool ir)
{
	long n;

	if (!s->auth_in)
		s->auth_in = xmalloc(SASL_RESPONSE_MAX);
	if (ir && len == 1 && text[0] == '=') {
		n = 0;
	} else {
		if (len > SASL_RESPONSE_LINE_MAX)
			return false;
		n = sasl_base64_decode(text, len, s->auth_in, SASL_RESPONSE_MAX);
		if (n < 0)
			return false;
	}
	s->astep.in = s->auth_in;
	s->astep.in_len = (size_t)n;
	s->astep.in_absent = 0;
	return true;
}

static void cmd_authenticate(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct auth_step *st = &s->astep;
	const char *mech, *ir = NULL;
	size_t mlen;

	if (refuse_in_clear(cmd))
		return;
	if (cmd->count < 1 || cmd->count > 2 || !imap_arg_get_atom(&cmd->args[0], &mech) ||
	    (cmd->count == 2 && !imap_arg_get_atom(&cmd->args[1], &ir))) {
		imap_cmd_bad(cmd, "AUTHENTICATE needs a mechanism");
		return;
	}
	mlen = strlen(mech);
	if ((strcasecmp(mech, "PLAIN") == 0 || strcasecmp(mech, "LOGIN") == 0) && refuse_plaintext(cmd))
		return;
	if (mlen >= sizeof(st->mech) || !mech_offered(s, mech)) {
		imap_cmd_tagged(cmd, "NO", "Unsupported authentication mechanism");
		return;
	}
	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i <= mlen; i++)
		st->mech[i] = (char)((mech[i] >= 'a' && mech[i] <= 'z') ? mech[i] - 'a' + 'A' : mech[i]);
	st->first = 1;
	if (ir) {
		if (!auth_decode(s, ir, strlen(ir), true)) {
			imap_cmd_bad(cmd, "Invalid base64 in the initial response");
			return;
		}
	} else {
		st->in = NULL;
		st->in_len = 0;
		st->in_absent = 1;
	}
	/* the first step goes to the glue once this command is over
	 * (imap_session_input()); the tagged line comes at the end */
	free(s->auth_tag);
	s->auth_tag = xstrdup(cmd->tag);
	s->auth_go = true;
	cmd->no_reply = true;
}

void imap_auth_line(struct imap_session *s, const char *line, size_t len)
{
	struct imap_cmd *cmd;
	char *tag = s->auth_tag;

	if (!tag) {
		imap_session_printf(s, "* BAD Unexpected line");
		return;
	}
	if (len == 1 && line[0] == '*') {
		s->auth_tag = NULL;
		if (s->io.auth_end)
			s->io.auth_end(s->ctx);
		cmd = imap_cmd_new(s, tag, "AUTHENTICATE");
		free(tag);
		imap_cmd_bad(cmd, "Authentication cancelled");
		imap_cmd_dispatch(s);
		return;
	}
	s->astep.first = 0;
	if (!auth_decode(s, line, len, false)) {
		s->auth_tag = NULL;
		if (s->io.auth_end)
			s->io.auth_end(s->ctx);
		cmd = imap_cmd_new(s, tag, "AUTHENTICATE");
		free(tag);
		imap_cmd_bad(cmd, "Invalid base64 in the SASL response");
		imap_cmd_dispatch(s);
		return;
	}
	imap_auth_send(s);
}

void imap_auth_answer(struct imap_session *s, struct auth_step *st)
{
	struct imap_cmd *cmd;
	struct login *l;
	char *tag = s->auth_tag;
	char safe[128];

	if (st->status == AUTH_CONTINUE) {
		size_t cap = ((st->out_len + 2) / 3) * 4 + 1;
		char *b64 = xmalloc(cap);
		long n = sasl_base64_encode(st->out ? st->out : (const unsigned char *)"", st->out_len, b64, cap);

		if (n >= 0) {
			char *line = xasprintf("+ %s\r\n", b64);
			s->io.write(s->ctx, line, strlen(line));
			free(line);
		}
		wipe(b64, cap);
		free(b64);
		if (st->out) {
			wipe(st->out, st->out_len);
			free(st->out);
			st->out = NULL;
			st->out_len = 0;
		}
		if (n >= 0) {
			imap_parser_read_line(s->parser);
			return;
		}
		st->status = AUTH_TEMPFAIL;
	}
	if (st->out) {
		wipe(st->out, st->out_len);
		free(st->out);
		st->out = NULL;
		st->out_len = 0;
	}
	s->auth_tag = NULL;
	if (s->io.auth_end)
		s->io.auth_end(s->ctx);
	cmd = imap_cmd_new(s, tag ? tag : "*", "AUTHENTICATE");
	free(tag);
	log_safe(st->user, safe, sizeof(safe));
	switch (st->status) {
	case AUTH_OK:
		l = xcalloc(1, sizeof(*l));
		l->mech = st->mech;
		snprintf(l->user, sizeof(l->user), "%s", st->user);
		snprintf(l->canonical, sizeof(l->canonical), "%s", st->user);
		cmd->priv = l;
		cmd->free_priv = login_free;
		cmd->run = login_run;
		cmd->finish = login_finish;
		break;
	case AUTH_FAILED:
		log_info("imap", s->sid, "auth failed mech=%s user=%s client=%s", st->mech, safe, s->client);
		imap_cmd_tagged(cmd, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		if (++s->auth_failures >= s->cfg.max_auth_failures) {
			imap_session_printf(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed", cmd->tag);
			imap_session_printf(s, "* BYE Too many failed logins");
			cmd->no_reply = true;
			imap_session_close(s, "too many failed logins");
		}
		break;
	case AUTH_MALFORMED:
		log_info("imap", s->sid, "auth failed mech=%s user=%s client=%s reason=malformed", st->mech, safe,
			 s->client);
		imap_cmd_bad(cmd, "Invalid SASL response");
		break;
	default:
		log_warn("imap", s->sid, "auth error mech=%s user=%s client=%s", st->mech, safe, s->client);
		imap_cmd_tagged(cmd, "NO", "[UNAVAILABLE] Temporary authentication failure");
		break;
	}
	imap_cmd_dispatch(s);
}

const struct imap_cmd_def imap_cmds_any[] = {
	{ "CAPABILITY", IMAP_ANY, cmd_capability, 0 },
	{ "NOOP", IMAP_ANY, cmd_noop, 0 },
	{ "LOGOUT", IMAP_ANY, cmd_logout, 0 },
	{ "ID", IMAP_ANY, cmd_id, 0 },
	{ "ENABLE", IMAP_AUTHED, cmd_enable, 0 },
	{ "IDLE", IMAP_AUTHED, cmd_idle, 0 },
	{ "NAMESPACE", IMAP_AUTHED, cmd_namespace, 0 },
	{ "STARTTLS", IMAP_NOAUTH, cmd_starttls, 0 },
	{ "LOGIN", IMAP_NOAUTH, cmd_login, 0 },
	{ "AUTHENTICATE", IMAP_NOAUTH, cmd_authenticate, 0 },
	{ NULL, 0, NULL, 0 },
};
