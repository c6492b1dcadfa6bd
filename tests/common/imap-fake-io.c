#include "tests/common/imap-fake-io.h"

#include <string.h>

#include "imap/imap-session.h"
#include "lib/buf.h"
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

static const struct imap_io fake_io = {
	.write = f_write, .close = f_close, .set_timeout = f_set_timeout, .exec = f_exec,
	.resume = f_resume, .when_drained = f_when_drained, .watch = f_watch, .publish = f_watch,
	.auth_delay = f_auth_delay, .auth_result = f_auth_result, .start_tls = f_start_tls,
};

void imap_fake_open(struct imap_fake *f, const struct imap_session_params *p, enum imap_fake_flags flags)
{
	memset(f, 0, sizeof(*f));
	f->flags = flags;
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
	imap_session_free(&f->s);
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
			CHECK(imap_session_busy(f->s) || f->queued, "input left without a command running");
			if (!f->queued && !f->drain)
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
