/* APPEND (RFC 3501 6.3.11) with APPENDUID (RFC 4315), LITERAL+ (RFC 7888,
 * handled by the parser) and APPENDLIMIT (RFC 7889: the parser refuses a
 * literal over max_literal before it is sent). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imap-private.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "storage/directory.h"
#include "storage/maildir.h"

struct append {
	char name[256];          /* Maildir folder name ("INBOX", "Sent", ...) */
	uint32_t flags;          /* enum mbox_flag */
	struct buf kw;           /* keywords, space separated */
	int64_t date;            /* INTERNALDATE; 0 = now */
	/* The message as the client sent it: points into the parser's memory,
	 * which stays valid until the command is over. */
	const char *data;
	size_t len;
	/* results (worker) */
	int error;
	uint32_t uidvalidity, uid;
	char key[4400];
};

static void append_free(void *p)
{
	struct append *x = p;

	if (!x)
		return;
	buf_release(&x->kw);
	free(x);
}

/* ---- date-time (RFC 3501 section 9) ---- */

static bool digits(const char *p, size_t n, int *v_r)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*v_r = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP
 * zone DQUOTE, e.g. "28-Nov-2026 18:53:08 +0100". The day may be " 7", "07"
 * or (as Dovecot also takes) "7". Returns the time in seconds since the epoch.
 */
static bool parse_datetime(const char *s, size_t len, int64_t *t_r)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *p = s, *end = s + len;
	int day, mon = -1, year, hh, mm, ss, zh, zm, dlen;
	int64_t t;

	if (len >= 1 && p[0] == ' ')
		p++;
	dlen = (end - p >= 2 && p[1] >= '0' && p[1] <= '9') ? 2 : 1;
	if (end - p < dlen || !digits(p, (size_t)dlen, &day) || (s[0] == ' ' && dlen != 1))
		return false;
	p += dlen;
	/* the rest has a fixed shape: "-Mon-yyyy hh:mm:ss +zzzz" */
	if (end - p != 24 || p[0] != '-' || p[4] != '-' || p[9] != ' ' || p[12] != ':' || p[15] != ':' ||
	    p[18] != ' ' || (p[19] != '+' && p[19] != '-'))
		return false;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(p + 1, months[i], 3) == 0)
			mon = i;
	if (mon < 0 || !digits(p + 5, 4, &year) || !digits(p + 10, 2, &hh) || !digits(p + 13, 2, &mm) ||
	    !digits(p + 16, 2, &ss) || !digits(p + 20, 2, &zh) || !digits(p + 22, 2, &zm))
		return false;
	if (day < 1 || day > mdays[mon] || hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
		return false;
	if (mon == 1 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
		return false;
	t = days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 + mm * 60 + ss;
	t -= (p[19] == '+' ? 1 : -1) * (int64_t)(zh * 3600 + zm * 60);
	*t_r = t;
	return true;
}

/* ---- the command ---- */

/* The message in stored form: CRLF becomes LF, a bare CR or LF stays.
 * Returns data itself when there is nothing to change, else a malloc'd copy. */
static char *stored_form(const char *data, size_t len, size_t *len_r)
{
	char *out;
	size_t o = 0;

	if (!memchr(data, '\r', len)) {
		*len_r = len;
		return (char *)data;
	}
	out = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
			continue;
		out[o++] = data[i];
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

int imap_append_over_quota(struct imap_session *s, uint64_t size)
{
	struct dir_target *t = xcalloc(DIR_MAX_TARGETS, sizeof(*t));
	size_t n = 0;
	uint64_t used = 0;
	int r = 0;

	if (!s->backend || !s->backend->dir ||
	    dir_resolve(s->backend->dir, s->user, "", t, &n) != DIR_OK || n != 1) {
		r = -EIO;
	} else if (t[0].quota > 0) {
		r = maildir_usage(t[0].maildir, &used);
		if (r == 0)
			r = used + size > t[0].quota;
	}
	free(t);
	return r;
}

static int append_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct append *x = cmd->priv;
	size_t len;
	char *data = stored_form(x->data, x->len, &len);
	int r;

	r = imap_append_over_quota(s, len);
	if (r < 0) {
		log_warn("imap", s->sid, "append cannot check the quota error=%d", r);
		imap_cmd_tagged(cmd, "NO", "[UNAVAILABLE] Cannot check the quota, try again later");
		x->error = r;
		goto out;
	}
	if (r > 0) {
		imap_cmd_tagged(cmd, "NO", "[OVERQUOTA] Quota exceeded");
		x->error = -EDQUOT;
		goto out;
	}
	r = mbox_append(s->maildir, x->name, data, len, x->flags, x->kw.data ? x->kw.data : "", x->date,
			s->backend ? s->backend->hostname : NULL, &x->uidvalidity, &x->uid);
	x->error = r;
	switch (r) {
	case 0:
		imap_cmd_tagged(cmd, "OK", "[APPENDUID %u %u] Append completed", x->uidvalidity, x->uid);
		log_info("imap", s->sid, "append uid=%u size=%zu", x->uid, len);
		break;
	case -ENOENT:
		imap_cmd_tagged(cmd, "NO", "[TRYCREATE] Mailbox doesn't exist: %s", x->name);
		break;
	case -EINVAL:
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		break;
	case -ENOSPC:
	case -EDQUOT:
		/* As Dovecot: a full disk is reported like a quota. */
		imap_cmd_tagged(cmd, "NO", "[OVERQUOTA] Not enough disk space");
		break;
	default:
		log_warn("imap", s->sid, "append failed error=%d", r);
		imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Internal error saving the message");
		break;
	}
out:
	if (data != x->data)
		free(data);
	return IMAP_RUN_DONE;
}

static void append_finish(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct append *x = cmd->priv;

	if (x->error)
		return;
	if (strcmp(x->name, "INBOX") == 0)
		snprintf(x->key, sizeof(x->key), "%s", s->maildir);
	else
		snprintf(x->key, sizeof(x->key), "%s/.%s", s->maildir, x->name);
	s->io.publish(s->ctx, x->key);
}

/* APPEND mailbox [flag-list] [date-time] literal */
static void cmd_append(struct imap_cmd *cmd)
{
	const struct imap_arg *a = cmd->args, *list;
	struct append *x;
	const char *name;
	size_t len, n, i = 1;

	if (cmd->count < 2 || !imap_arg_get_astring(&a[0], &name, &len)) {
		imap_cmd_bad(cmd, "APPEND needs a mailbox name and a message");
		return;
	}
	x = xcalloc(1, sizeof(*x));
	buf_init(&x->kw, 8192);
	cmd->priv = x;
	cmd->free_priv = append_free;
	if (a[i].type == IMAP_ARG_LIST) {
		imap_arg_get_list(&a[i], &list, &n);
		if (!imap_parse_flags(list, n, &x->flags, &x->kw)) {
			imap_cmd_bad(cmd, "Invalid flags");
			return;
		}
		i++;
	}
	if (i < cmd->count && a[i].type == IMAP_ARG_STRING) {
		if (!parse_datetime(a[i].str, a[i].len, &x->date)) {
			imap_cmd_bad(cmd, "Invalid date-time");
			return;
		}
		/* A date before the epoch cannot be a file time here: the earliest that can. */
		if (x->date <= 0)
			x->date = 1;
		i++;
	}
	if (i >= cmd->count || a[i].type != IMAP_ARG_LITERAL) {
		imap_cmd_bad(cmd, "APPEND needs the message as a literal");
		return;
	}
	if (i + 1 != cmd->count) {
		/* MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) are not offered. */
		imap_cmd_bad(cmd, "APPEND takes one message");
		return;
	}
	if ((a[i].flags & IMAP_ARG_LITERAL8) || (a[i].flags & IMAP_ARG_STREAMED)) {
		/* literal8 belongs to BINARY (RFC 3516), which is not offered. */
		imap_cmd_bad(cmd, "APPEND takes a literal, not a literal8");
		return;
	}
	x->data = a[i].str;
	x->len = a[i].len;
	if (x->len == 0) {
		imap_cmd_tagged(cmd, "NO", "Can't save a zero byte message");
		return;
	}
	if ((uint64_t)x->len > cmd->s->cfg.max_literal) {
		/* The parser refuses these already; this keeps APPENDLIMIT true. */
		imap_cmd_tagged(cmd, "NO", "[TOOBIG] Message too large");
		return;
	}
	if ((a[i].flags & IMAP_ARG_HAS_NUL) || memchr(x->data, '\0', x->len)) {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Messages with NUL octets are not accepted");
		return;
	}
	if (!imap_mailbox_name(name, len, x->name, sizeof(x->name))) {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	cmd->run = append_run;
	cmd->finish = append_finish;
}

const struct imap_cmd_def imap_cmds_append[] = {
	{ "APPEND", IMAP_AUTHED, cmd_append, 0 },
	{ NULL, 0, NULL, 0 },
};
