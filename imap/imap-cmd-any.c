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

/* STARTTLS only where it may be used: before login, in clear (RFC 3501
 * 6.2.1; after it the client asks again and no longer sees it). With tls =
 * required, LOGINDISABLED instead of AUTH=PLAIN until then (RFC 3501 6.2.3). */
void imap_capabilities(struct imap_session *s, struct buf *out)
{
	buf_adds(out, "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN "
		      "SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES CONDSTORE QRESYNC QUOTA QUOTA=RES-STORAGE");
	buf_printf(out, " APPENDLIMIT=%llu", (unsigned long long)s->cfg.max_literal);
	if (s->state != IMAP_NOAUTH)
		return;
	if (imap_tls_offered(s))
		buf_adds(out, " STARTTLS");
	if (imap_tls_needed(s))
		buf_adds(out, " LOGINDISABLED");
	else
		buf_adds(out, " AUTH=PLAIN");
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

/* ---- LOGIN and AUTHENTICATE ---- */

struct login {
	char user[SASL_ID_MAX + 1];
	char password[SASL_PASSWORD_MAX + 1];
	char canonical[320];
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

	r = dir_authenticate(b->dir, l->user, l->password, l->canonical);
	wipe(l->password, sizeof(l->password));
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
		log_warn("imap", s->sid, "login error user=%s client=%s", safe, s->client);
		imap_cmd_tagged(cmd, "NO", "[UNAVAILABLE] Temporary authentication failure");
		return;
	}
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

	if (refuse_in_clear(cmd))
		return;
	if (cmd->count != 2 || !imap_arg_get_astring(&cmd->args[0], &user, &ulen) ||
	    !imap_arg_get_astring(&cmd->args[1], &pass, &plen)) {
		imap_cmd_bad(cmd, "LOGIN needs a user name and a password");
		return;
	}
	start_login(cmd, user, ulen, pass, plen);
}

/* Feeds the SASL exchange one step; starts the login when it is complete. */
static void auth_step(struct imap_cmd *cmd, struct sasl_server *x, int r)
{
	switch (r) {
	case SASL_DONE:
		if (x->authzid[0] && strcmp(x->authzid, x->authcid) != 0) {
			imap_cmd_tagged(cmd, "NO", "[AUTHORIZATIONFAILED] Authorization identity not allowed");
			break;
		}
		start_login(cmd, x->authcid, strlen(x->authcid), x->password, strlen(x->password));
		break;
	case SASL_CANCELLED:
		imap_cmd_bad(cmd, "Authentication cancelled");
		break;
	default:
		imap_cmd_bad(cmd, "Invalid SASL response");
		break;
	}
	sasl_server_wipe(x);
}

static void cmd_authenticate(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct sasl_server x;
	const char *mech, *ir = NULL;
	size_t irlen = 0;
	enum sasl_mech m;
	int r;

	if (refuse_in_clear(cmd))
		return;
	if (cmd->count < 1 || cmd->count > 2 || !imap_arg_get_atom(&cmd->args[0], &mech) ||
	    (cmd->count == 2 && !imap_arg_get_atom(&cmd->args[1], &ir))) {
		imap_cmd_bad(cmd, "AUTHENTICATE needs a mechanism");
		return;
	}
	m = sasl_mech_lookup(mech);
	if (m == SASL_MECH_NONE) {
		imap_cmd_tagged(cmd, "NO", "Unsupported authentication mechanism");
		return;
	}
	if (ir)
		irlen = strlen(ir);
	sasl_server_init(&x, m);
	r = sasl_server_start(&x, ir, irlen);
	if (r == SASL_CONTINUE) {
		/* Wait for the client's line: imap_auth_line(). */
		sasl_server_wipe(&x);
		imap_session_printf(s, "+ ");
		free(s->auth_tag);
		s->auth_tag = xstrdup(cmd->tag);
		s->auth_mech = (int)m;
		imap_parser_read_line(s->parser);
		cmd->no_reply = true;
		return;
	}
	auth_step(cmd, &x, r);
}

void imap_auth_line(struct imap_session *s, const char *line, size_t len)
{
	struct imap_cmd *cmd;
	struct sasl_server x;
	char *tag = s->auth_tag;

	if (!tag) {
		imap_session_printf(s, "* BAD Unexpected line");
		return;
	}
	s->auth_tag = NULL;
	cmd = imap_cmd_new(s, tag, "AUTHENTICATE");
	free(tag);
	sasl_server_init(&x, (enum sasl_mech)s->auth_mech);
	sasl_server_start(&x, NULL, 0);
	auth_step(cmd, &x, sasl_server_step(&x, line, len));
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
