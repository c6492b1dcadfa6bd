#include "lib/tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "lib/buf.h"
#include "lib/xalloc.h"

struct tls_engine {
	gnutls_session_t s;
	struct tls_creds *creds;
	tls_output_fn out;
	void *arg;
	struct buf in;           /* ciphertext fed, not yet pulled by GnuTLS */
	int done;                /* handshake finished */
	int bye;                 /* close_notify sent */
	struct tls_info info;
	char error[160];
};

/* GnuTLS asks for ciphertext: what was fed, or "would block". */
static ssize_t pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct tls_engine *e = p;

	if (e->in.len == 0) {
		gnutls_transport_set_errno(e->s, EAGAIN);
		return -1;
	}
	if (len > e->in.len)
		len = e->in.len;
	memcpy(data, e->in.data, len);
	buf_consume(&e->in, len);
	if (e->in.len == 0)
		buf_release(&e->in);
	return (ssize_t)len;
}

/* Only called when GnuTLS would wait for input with a timeout, which a
 * non-blocking session never does; answer "nothing yet" or "ready". */
static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct tls_engine *e = p;

	(void)ms;
	return e->in.len > 0;
}

/* GnuTLS has ciphertext for the client: out at once, never "would block". */
static ssize_t vec_push(gnutls_transport_ptr_t p, const giovec_t *iov, int n)
{
	struct tls_engine *e = p;
	size_t total = 0;

	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len)
			e->out(e->arg, iov[i].iov_base, iov[i].iov_len);
		total += iov[i].iov_len;
	}
	return (ssize_t)total;
}

static void set_error(struct tls_engine *e, int r)
{
	if (r == GNUTLS_E_FATAL_ALERT_RECEIVED || r == GNUTLS_E_WARNING_ALERT_RECEIVED)
		snprintf(e->error, sizeof(e->error), "%s: %s", gnutls_strerror(r),
			 gnutls_alert_get_name(gnutls_alert_get(e->s)));
	else
		snprintf(e->error, sizeof(e->error), "%s", gnutls_strerror(r));
}

int tls_engine_new(struct tls_creds *creds, tls_output_fn out, void *arg, struct tls_engine **r, char *err,
		   size_t errlen)
{
	struct tls_engine *e = xcalloc(1, sizeof(*e));
	int g;

	buf_init(&e->in, TLS_ENGINE_IN_MAX);
	e->out = out;
	e->arg = arg;
	g = gnutls_init(&e->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (g < 0)
		goto fail;
	g = gnutls_priority_set(e->s, tls_creds_priority(creds));
	if (g == 0)
		g = gnutls_credentials_set(e->s, GNUTLS_CRD_CERTIFICATE, tls_creds_x509(creds));
	if (g == 0 && tls_creds_ticket_key(creds)->data)
		g = gnutls_session_ticket_enable_server(e->s, tls_creds_ticket_key(creds));
	if (g < 0)
		goto fail;
	gnutls_certificate_server_set_request(e->s, GNUTLS_CERT_IGNORE);
	/* Our own timer bounds the handshake (lib/net.c); GnuTLS's would
	 * only be looked at by a blocking pull. */
	gnutls_handshake_set_timeout(e->s, 0);
	gnutls_transport_set_ptr(e->s, e);
	gnutls_transport_set_pull_function(e->s, pull);
	gnutls_transport_set_pull_timeout_function(e->s, pull_timeout);
	gnutls_transport_set_vec_push_function(e->s, vec_push);
	tls_creds_ref(creds);
	e->creds = creds;
	*r = e;
	return 0;
fail:
	snprintf(err, errlen, "%s", gnutls_strerror(g));
	if (e->s)
		gnutls_deinit(e->s);
	free(e);
	return -EIO;
}

void tls_engine_free(struct tls_engine **ep)
{
	struct tls_engine *e = *ep;

	if (!e)
		return;
	gnutls_deinit(e->s);
	tls_creds_unref(&e->creds);
	buf_release(&e->in);
	free(e);
	*ep = NULL;
}

int tls_engine_feed(struct tls_engine *e, const void *data, size_t len)
{
	return buf_add(&e->in, data, len);
}

size_t tls_engine_buffered(const struct tls_engine *e)
{
	return e->in.len;
}

static void fill_channel_binding(struct tls_engine *e)
{
	int tls13 = gnutls_protocol_get_version(e->s) == GNUTLS_TLS1_3;
	gnutls_datum_t cb = { NULL, 0 };

	e->info.cb_type[0] = '\0';
	e->info.cb_len = 0;
	if (gnutls_session_channel_binding(e->s, tls13 ? GNUTLS_CB_TLS_EXPORTER : GNUTLS_CB_TLS_UNIQUE, &cb) < 0)
		return;
	if (cb.size <= sizeof(e->info.cb_data)) {
		memcpy(e->info.cb_data, cb.data, cb.size);
		e->info.cb_len = cb.size;
		snprintf(e->info.cb_type, sizeof(e->info.cb_type), "%s", tls13 ? "tls-exporter" : "tls-unique");
	}
	gnutls_free(cb.data);
}

static void fill_info(struct tls_engine *e)
{
	const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(e->s));
	const char *c = gnutls_ciphersuite_get(e->s);
	size_t len = sizeof(e->info.sni) - 1;
	unsigned type = 0;

	snprintf(e->info.version, sizeof(e->info.version), "%s", v ? v : "unknown");
	snprintf(e->info.cipher, sizeof(e->info.cipher), "%s", c ? c : "unknown");
	if (gnutls_server_name_get(e->s, e->info.sni, &len, &type, 0) < 0 || type != GNUTLS_NAME_DNS)
		e->info.sni[0] = '\0';
	else
		e->info.sni[len < sizeof(e->info.sni) ? len : sizeof(e->info.sni) - 1] = '\0';
	fill_channel_binding(e);
	/* The name is the client's text: keep it printable for logs. */
	for (char *p = e->info.sni; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			*p = '?';
}

int tls_engine_handshake(struct tls_engine *e)
{
	int r;

	if (e->done)
		return 1;
	do
		r = gnutls_handshake(e->s);
	while (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r));
	if (r == GNUTLS_E_AGAIN)
		return 0;
	if (r < 0) {
		set_error(e, r);
		/* Tell the client why when an alert applies; its output goes
		 * through the push function like any record. */
		gnutls_alert_send_appropriate(e->s, r);
		return -EPROTO;
	}
	e->done = 1;
	fill_info(e);
	return 1;
}

ssize_t tls_engine_recv(struct tls_engine *e, void *buf, size_t len)
{
	ssize_t r;

	for (;;) {
		r = gnutls_record_recv(e->s, buf, len);
		if (r >= 0)
			return r;
		if (r == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (r == GNUTLS_E_INTERRUPTED)
			continue;
		if (r == GNUTLS_E_REHANDSHAKE) {
			/* Renegotiation costs the server a handshake each time and
			 * no mail client needs it: refused, and the session ends. */
			snprintf(e->error, sizeof(e->error), "renegotiation refused");
			gnutls_alert_send(e->s, GNUTLS_AL_FATAL, GNUTLS_A_NO_RENEGOTIATION);
			return -EPROTO;
		}
		if (!gnutls_error_is_fatal((int)r))
			continue;  /* a warning alert, a TLS 1.3 key update: keep going */
		set_error(e, (int)r);
		return -EPROTO;
	}
}

int tls_engine_pending(const struct tls_engine *e)
{
	return gnutls_record_check_pending(e->s) > 0;
}

int tls_engine_send(struct tls_engine *e, const void *data, size_t len)
{
	const char *p = data;
	ssize_t r;

	if (e->bye)
		return -EPIPE;
	for (unsigned again = 0; len > 0;) {
		r = gnutls_record_send(e->s, p, len);
		/* The push never blocks, so "again" is not expected: bounded. */
		if ((r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN) && ++again < 16)
			continue;
		if (r < 0) {
			set_error(e, (int)r);
			return -EPROTO;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

void tls_engine_bye(struct tls_engine *e)
{
	if (e->bye || !e->done)
		return;
	e->bye = 1;
	gnutls_bye(e->s, GNUTLS_SHUT_WR);
}

const struct tls_info *tls_engine_info(const struct tls_engine *e)
{
	return e->done ? &e->info : NULL;
}

const char *tls_engine_error(const struct tls_engine *e)
{
	return e->error;
}

int tls_engine_resumed(const struct tls_engine *e)
{
	return e->done && gnutls_session_is_resumed(e->s);
}

const char *tls_mode_name(enum tls_mode m)
{
	static const char *const names[] = { "none", "starttls", "required", "implicit" };

	return (unsigned)m < 4 ? names[m] : "?";
}
