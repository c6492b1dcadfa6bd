#include "tests/common/imap-fake-io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap-session.h"
#include "lib/buf.h"
#include "lib/sasl.h"
#include "lib/xalloc.h"
#include "storage/directory.h"
/* the fake's own failures: imap_fake_failures() */
#include "tests/common/check.h"

static void f_write(void *ctx, const char *data, size_t len)
{
	struct imap_fake *f = ctx;

	CHECK(!f->closed, "write after close");
	buf_add(&f->out, data, len);
}

static void f_close(void *ctx, const char *reason)
{
	struct imap_fake *f = ctx;

	(void)reason;
	f->closed = true;
}

static void f_set_timeout(void *ctx, unsigned seconds)
{
	struct imap_fake *f = ctx;

	f->timeouts++;
	f->timeout = seconds;
}

static void f_exec(void *ctx, struct imap_cmd *cmd, unsigned delay_ms)
{
	struct imap_fake *f = ctx;

	(void)delay_ms;
	CHECK(!f->queued, "exec while a command waits");
	if (f->flags & IMAP_FAKE_RUN_NOW) {
		imap_cmd_run(cmd);
		imap_session_cmd_done(f->s, cmd);
		return;
	}
	f->queued = cmd;
}

static void f_resume(void *ctx)
{
	(void)ctx;
}

static void f_when_drained(void *ctx, size_t below)
{
	struct imap_fake *f = ctx;

	(void)below;
	if (f->flags & IMAP_FAKE_RUN_NOW) {
		imap_session_drained(f->s);
		return;
	}
	f->drain = true;
}

static void f_watch(void *ctx, const char *key)
{
	(void)ctx;
	(void)key;
}

static unsigned f_auth_delay(void *ctx, const char *user)
{
	(void)ctx;
	(void)user;
	return 0;
}

static void f_auth_result(void *ctx, const char *user, int ok)
{
	(void)ctx;
	(void)user;
	(void)ok;
}

static void f_start_tls(void *ctx)
{
	static const char ok[] = " OK Begin TLS negotiation now\r\n";
	struct imap_fake *f = ctx;

	CHECK(!f->tls_wanted, "start_tls twice");
	CHECK(f->out.len >= sizeof(ok) - 1 &&
	      memcmp(f->out.data + f->out.len - (sizeof(ok) - 1), ok, sizeof(ok) - 1) == 0,
	      "start_tls before the tagged OK was written");
	f->tls_wanted = true;
	f->n_start_tls++;
}

/* ---- AUTHENTICATE through GNU SASL, as imap/imap-server.c ---- */

static struct sasl_ctx *fake_sasl;
static struct sasl_backend fake_backend;

int imap_fake_sasl_init(struct dir *dir)
{
	int r = sasl_ctx_new(NULL, 0, &fake_sasl);

	if (r < 0)
		return r;
	dir_sasl_backend(dir, &fake_backend);
	return 0;
}

void imap_fake_sasl_free(void)
{
	sasl_ctx_free(&fake_sasl);
}

static int f_plaintext_ok(void *ctx)
{
	struct imap_fake *f = ctx;

	return f->plaintext;
}

static const char *f_auth_mechs(void *ctx)
{
	struct imap_fake *f = ctx;

	f->mechs[0] = '\0';
	if (fake_sasl && sasl_ctx_mechs(fake_sasl, f->plaintext, NULL, f->mechs, sizeof(f->mechs)) < 0)
		f->mechs[0] = '\0';
	return f->mechs;
}

static void run_step(struct imap_fake *f, struct auth_step *st)
{
	const unsigned char *out = NULL;
	size_t outlen = 0;
	enum sasl_step_result r;

	st->out = NULL;
	st->out_len = 0;
	st->user[0] = '\0';
	if (st->first) {
		sasl_exchange_free(&f->sx);
		if (!fake_sasl || sasl_exchange_new(fake_sasl, st->mech, f->plaintext, NULL, &f->sx) < 0) {
			st->status = AUTH_MALFORMED;
			imap_session_auth_done(f->s, st);
			return;
		}
	}
	CHECK(f->sx != NULL, "auth step without an exchange");
	if (!f->sx) {
		st->status = AUTH_TEMPFAIL;
		imap_session_auth_done(f->s, st);
		return;
	}
	r = sasl_exchange_step(f->sx, &fake_backend, st->in_absent ? NULL : st->in, st->in_len, &out, &outlen);
	switch (r) {
	case SASL_STEP_CONTINUE:
		st->status = AUTH_CONTINUE;
		if (outlen) {
			st->out = xmalloc(outlen);
			memcpy(st->out, out, outlen);
			st->out_len = outlen;
		}
		break;
	case SASL_STEP_SUCCESS:
		st->status = AUTH_OK;
		snprintf(st->user, sizeof(st->user), "%s", sasl_exchange_user(f->sx));
		break;
	case SASL_STEP_FAILURE:
		st->status = AUTH_FAILED;
		snprintf(st->user, sizeof(st->user), "%s", sasl_exchange_authcid(f->sx));
		break;
	case SASL_STEP_MALFORMED:
		st->status = AUTH_MALFORMED;
		break;
	default:
		st->status = AUTH_TEMPFAIL;
		break;
	}
	imap_session_auth_done(f->s, st);
}

static void f_auth_step(void *ctx, struct auth_step *st)
{
	struct imap_fake *f = ctx;

	CHECK(!f->auth_queued && !f->queued, "auth_step while another request waits");
	CHECK(imap_session_busy(f->s), "auth_step with the session not busy");
	f->n_auth_steps++;
	if (f->flags & IMAP_FAKE_RUN_NOW) {
		run_step(f, st);
		return;
	}
	f->auth_queued = st;
}

static void f_auth_end(void *ctx)
{
	struct imap_fake *f = ctx;

	f->n_auth_ends++;
	sasl_exchange_free(&f->sx);
}

static const struct imap_io fake_io = {
	.write = f_write, .close = f_close, .set_timeout = f_set_timeout, .exec = f_exec,
	.resume = f_resume, .when_drained = f_when_drained, .watch = f_watch, .publish = f_watch,
	.auth_delay = f_auth_delay, .auth_result = f_auth_result, .start_tls = f_start_tls,
	.auth_mechs = f_auth_mechs, .plaintext_ok = f_plaintext_ok, .auth_step = f_auth_step,
	.auth_end = f_auth_end,
};

void imap_fake_open(struct imap_fake *f, const struct imap_session_params *p, enum imap_fake_flags flags)
{
	memset(f, 0, sizeof(*f));
	f->flags = flags;
	f->plaintext = 1;
	buf_init(&f->out, 0);
	buf_init(&f->greeting, 0);
	buf_init(&f->dropped, 0);
	f->s = imap_session_new(p, &fake_io, f);
	buf_add(&f->greeting, f->out.data, f->out.len);
	buf_reset(&f->out);
}

void imap_fake_free(struct imap_fake *f)
{
	imap_session_disconnected(f->s);
	if (f->auth_queued) {
		struct auth_step *st = f->auth_queued;

		/* the glue's answer after the disconnect, as auth_after's */
		f->auth_queued = NULL;
		st->status = AUTH_TEMPFAIL;
		st->out = NULL;
		imap_session_auth_done(f->s, st);
	}
	imap_session_free(&f->s);
	sasl_exchange_free(&f->sx);
	buf_release(&f->out);
	buf_release(&f->greeting);
	buf_release(&f->dropped);
}

void imap_fake_settle(struct imap_fake *f)
{
	for (;;) {
		if (f->queued) {
			struct imap_cmd *cmd = f->queued;

			f->queued = NULL;
			imap_cmd_run(cmd);
			imap_session_cmd_done(f->s, cmd);
		} else if (f->auth_queued) {
			struct auth_step *st = f->auth_queued;

			f->auth_queued = NULL;
			run_step(f, st);
		} else if (f->drain) {
			f->drain = false;
			imap_session_drained(f->s);
		} else {
			return;
		}
	}
}

void imap_fake_feed(struct imap_fake *f, const char *data, size_t len, size_t step)
{
	size_t off = 0;

	while (off < len && !f->closed) {
		size_t n = step && len - off > step ? step : len - off;
		size_t used;

		if (f->tls_wanted) {
			used = imap_session_input(f->s, data + off, n);
			CHECK(used == 0, "consumed %zu octets while waiting for TLS", used);
			buf_add(&f->dropped, data + off, n);
			off += n;
			continue;
		}
		used = imap_session_input(f->s, data + off, n);
		CHECK(used <= n, "consumed more than given");
		off += used;
		if (used < n && !f->tls_wanted) {
			CHECK(imap_session_busy(f->s) || f->queued || f->auth_queued,
			      "input left without a command running");
			if (!f->queued && !f->drain && !f->auth_queued)
				break;
		}
		imap_fake_settle(f);
	}
	imap_fake_settle(f);
}

void imap_fake_tls_done(struct imap_fake *f, const struct tls_info *info)
{
	CHECK(f->tls_wanted, "handshake without start_tls");
	f->tls_wanted = false;
	imap_session_tls_started(f->s, info);
	imap_fake_settle(f);
}

bool imap_fake_match(const char *want, const char *got, size_t got_len)
{
	if (!*want)
		return got_len == 0;
	if (*want == '*') {
		for (size_t i = 0; i <= got_len; i++)
			if (imap_fake_match(want + 1, got + i, got_len - i))
				return true;
		return false;
	}
	return got_len > 0 && *want == *got && imap_fake_match(want + 1, got + 1, got_len - 1);
}

int imap_fake_failures(void)
{
	return failures;
}
