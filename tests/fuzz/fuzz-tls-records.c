/*
 * Fuzz target for the record boundary handling of lib/tls.c's engine.
 *
 * A GnuTLS client and the server engine talk over memory, no sockets: the
 * client's push appends to a "wire" buffer that is cut into pieces before
 * each tls_engine_feed(), the way lib/net.c's socket reads cut it; the
 * engine's output callback appends to the other wire, which the client's
 * pull reads. The input chooses the cuts, the plaintext sent each way and
 * how it is cut into sends, and optionally one byte of the client's
 * ciphertext to flip or insert.
 *
 * Input (missing octets read as 0):
 *   octet 0, flags: 1 client offers TLS 1.2 only (else TLS 1.3),
 *                   2 corrupt the client's ciphertext (octets 7-10),
 *                   4|8 how the client cuts its sends (all, 1-byte records
 *                   for the first 64 octets, 100, 5000),
 *                   16|32 the same for the engine's sends
 *   octet 1: the buffer size given to tls_engine_recv (0: 16384)
 *   octets 2-3, 4-5: plaintext lengths client->server and server->client
 *                   (little-endian, modulo 40001), octet 6: their pattern
 *   with flag 2, octets 7-8: offset in the client's ciphertext,
 *                   octet 9: 0 flip (xor octet 10 | 1), else insert octet 10
 *   the rest: one octet per feed, the piece size minus one (1..256); once
 *                   they run out, everything held is fed at once
 *
 * Checked: without corruption the handshake completes on both sides with
 * the version asked for, each side receives exactly the plaintext the other
 * sent, once, in order, then the close_notify, whatever the cuts;
 * tls_engine_recv never returns more than asked; tls_engine_feed is never
 * refused while the caller respects TLS_ENGINE_IN_MAX. With corruption the
 * engine may fail or wait for bytes that never come, but never crashes or
 * loops, and never hands over a byte that was not sent (what it gave is a
 * prefix of the plaintext).
 */

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/tls-creds.h"
#include "lib/tls.h"
#include "tests/common/tls-test-cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FAIL(...) do { fprintf(stderr, "fuzz-tls-records: " __VA_ARGS__); fprintf(stderr, "\n"); abort(); } while (0)

#define MAX_DATA 40000
/* Enough rounds for 1-octet feeds of the largest input both ways. */
#define MAX_ROUNDS (4 * (2 * MAX_DATA + 65536))

static struct tls_creds *creds;
static gnutls_certificate_credentials_t client_cred;

static void cleanup(void)
{
	tls_creds_unref(&creds);
	if (client_cred)
		gnutls_certificate_free_credentials(client_cred);
	client_cred = NULL;
}

/* One certificate for the whole run: made, loaded, and its files removed
 * (the credentials keep the key in memory). */
static void setup(void)
{
	struct tls_test_cert cert;
	struct tls_cert_config cc = { .name = "", .line = 1 };
	char err[256];

	if (creds)
		return;
	if (tls_test_cert_make(&cert, "localhost") < 0)
		FAIL("cannot make the test certificate");
	cc.certificate = cert.cert_path;
	cc.key = cert.key_path;
	if (tls_creds_new(&cc, 1, NULL, &creds, err, sizeof(err)) < 0)
		FAIL("tls_creds_new: %s", err);
	tls_test_cert_free(&cert);
	gnutls_certificate_allocate_credentials(&client_cred);
	atexit(cleanup);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setup();
	return 0;
}

struct input {
	const uint8_t *p;
	size_t len, off;
};

static unsigned take8(struct input *in)
{
	return in->off < in->len ? in->p[in->off++] : 0;
}

static unsigned take16(struct input *in)
{
	unsigned lo = take8(in);

	return lo | take8(in) << 8;
}

struct pair {
	gnutls_session_t cs;
	struct tls_engine *e;
	struct buf c2s;          /* client ciphertext not yet fed */
	struct buf s2c;          /* engine ciphertext not yet pulled */
	size_t pushed;           /* client ciphertext octets so far */
	int corrupt;             /* 0 none, 1 flip, 2 insert */
	size_t corrupt_at;
	uint8_t corrupt_byte;
	int corrupted;           /* the corruption was applied */
	size_t moved;            /* octets moved in this round */
};

static ssize_t c_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
	struct pair *x = p;
	const uint8_t *d = data;

	if (x->corrupt && !x->corrupted && x->corrupt_at >= x->pushed && x->corrupt_at < x->pushed + len) {
		size_t k = x->corrupt_at - x->pushed;

		buf_add(&x->c2s, d, k);
		if (x->corrupt == 1) {
			buf_addch(&x->c2s, (char)(d[k] ^ x->corrupt_byte));
			buf_add(&x->c2s, d + k + 1, len - k - 1);
		} else {
			buf_addch(&x->c2s, (char)x->corrupt_byte);
			buf_add(&x->c2s, d + k, len - k);
		}
		x->corrupted = 1;
	} else {
		buf_add(&x->c2s, d, len);
	}
	x->pushed += len;
	x->moved += len;
	return (ssize_t)len;
}

static ssize_t c_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct pair *x = p;

	if (x->s2c.len == 0) {
		gnutls_transport_set_errno(x->cs, EAGAIN);
		return -1;
	}
	if (len > x->s2c.len)
		len = x->s2c.len;
	memcpy(data, x->s2c.data, len);
	buf_consume(&x->s2c, len);
	x->moved += len;
	return (ssize_t)len;
}

static int c_pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct pair *x = p;

	(void)ms;
	return x->s2c.len > 0;
}

static void s_out(void *arg, const void *data, size_t len)
{
	struct pair *x = arg;

	if (len == 0)
		FAIL("empty output");
	buf_add(&x->s2c, data, len);
	x->moved += len;
}

/* The size of the next send of a side, by its mode. */
static size_t chunk(unsigned mode, size_t done, size_t left)
{
	size_t n = left;

	switch (mode) {
	case 1:
		n = done < 64 ? 1 : left;
		break;
	case 2:
		n = 100;
		break;
	case 3:
		n = 5000;
		break;
	default:
		break;
	}
	return n < left ? n : left;
}

static void fill(uint8_t *d, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(seed + i * 31 + (i >> 8));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };
	struct pair x = { 0 };
	unsigned flags, seed;
	size_t rsize, c2s_len, s2c_len;
	uint8_t *c2s_data, *s2c_data, *rbuf;
	struct buf s_got = BUF_INIT(0), c_got = BUF_INIT(0);
	size_t c_sent = 0, s_sent = 0;
	int c_done = 0, s_done = 0, c_failed = 0, s_failed = 0, c_bye = 0, s_bye = 0;
	int s_closed = 0, c_closed = 0, clean = 0;
	const char *prio;
	char err[160];
	uint8_t tmp[16384];

	setup();
	flags = take8(&in);
	rsize = take8(&in);
	if (rsize == 0)
		rsize = 16384;
	c2s_len = take16(&in) % (MAX_DATA + 1);
	s2c_len = take16(&in) % (MAX_DATA + 1);
	seed = take8(&in);
	if (flags & 2) {
		x.corrupt_at = take16(&in);
		x.corrupt = take8(&in) ? 2 : 1;
		x.corrupt_byte = (uint8_t)take8(&in);
		if (x.corrupt == 1)
			x.corrupt_byte |= 1;
	}
	c2s_data = malloc(c2s_len + 1);
	s2c_data = malloc(s2c_len + 1);
	rbuf = malloc(rsize);
	if (!c2s_data || !s2c_data || !rbuf)
		abort();
	fill(c2s_data, c2s_len, seed);
	fill(s2c_data, s2c_len, seed ^ 0x5a);
	buf_init(&x.c2s, 0);
	buf_init(&x.s2c, 0);

	if (tls_engine_new(creds, s_out, &x, &x.e, err, sizeof(err)) < 0)
		FAIL("tls_engine_new: %s", err);
	prio = (flags & 1) ? "NORMAL:-VERS-ALL:+VERS-TLS1.2" : "NORMAL:-VERS-ALL:+VERS-TLS1.3";
	gnutls_init(&x.cs, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	if (gnutls_priority_set_direct(x.cs, prio, NULL) < 0)
		FAIL("client priority");
	gnutls_credentials_set(x.cs, GNUTLS_CRD_CERTIFICATE, client_cred);
	gnutls_server_name_set(x.cs, GNUTLS_NAME_DNS, "localhost", 9);
	gnutls_transport_set_ptr(x.cs, &x);
	gnutls_transport_set_push_function(x.cs, c_push);
	gnutls_transport_set_pull_function(x.cs, c_pull);
	gnutls_transport_set_pull_timeout_function(x.cs, c_pull_timeout);

	for (unsigned round = 0;; round++) {
		int r;
		size_t before_got = s_got.len + c_got.len;
		int before_state = c_done + s_done + c_failed + s_failed + c_bye + s_bye + s_closed + c_closed;

		if (round >= MAX_ROUNDS)
			FAIL("no end after %u rounds", round);
		x.moved = 0;

		/* the client: handshake, send, read, goodbye */
		if (!c_done && !c_failed) {
			r = gnutls_handshake(x.cs);
			if (r == 0)
				c_done = 1;
			else if (gnutls_error_is_fatal(r))
				c_failed = 1;
		}
		if (c_done && !c_failed && c_sent < c2s_len) {
			while (c_sent < c2s_len) {
				size_t n = chunk((flags >> 2) & 3, c_sent, c2s_len - c_sent);
				ssize_t w = gnutls_record_send(x.cs, c2s_data + c_sent, n);

				if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
					break;
				if (w < 0) {
					c_failed = 1;
					break;
				}
				c_sent += (size_t)w;
			}
		}
		if (c_done && !c_failed && !c_bye && c_sent == c2s_len) {
			r = gnutls_bye(x.cs, GNUTLS_SHUT_WR);
			if (r == 0)
				c_bye = 1;
			else if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED)
				c_failed = 1;
		}
		while (c_done && !c_failed && !c_closed) {
			ssize_t n = gnutls_record_recv(x.cs, tmp, sizeof(tmp));

			if (n > 0) {
				buf_add(&c_got, tmp, (size_t)n);
				if (c_got.len > s2c_len || memcmp(c_got.data, s2c_data, c_got.len) != 0)
					FAIL("the client received octets the engine did not send");
				continue;
			}
			if (n == 0)
				c_closed = 1;
			else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal((int)n))
				c_failed = 1;
			break;
		}

		/* the engine: one piece of ciphertext, as lib/net.c feeds a read */
		if (!s_failed && x.c2s.len) {
			size_t cut = in.off < in.len ? (size_t)in.p[in.off++] + 1 : x.c2s.len;
			size_t room = TLS_ENGINE_IN_MAX - tls_engine_buffered(x.e);

			if (tls_engine_buffered(x.e) > TLS_ENGINE_IN_MAX)
				FAIL("engine holds %zu octets", tls_engine_buffered(x.e));
			if (cut > x.c2s.len)
				cut = x.c2s.len;
			if (cut > room)
				cut = room;
			if (cut) {
				if (tls_engine_feed(x.e, x.c2s.data, cut) < 0)
					FAIL("feed of %zu refused with %zu held", cut, tls_engine_buffered(x.e));
				buf_consume(&x.c2s, cut);
				x.moved += cut;
			}
		}
		if (!s_failed && !s_done) {
			r = tls_engine_handshake(x.e);
			if (r == 1) {
				s_done = 1;
				if (!tls_engine_info(x.e))
					FAIL("no tls_info after the handshake");
			} else if (r < 0) {
				s_failed = 1;
			} else if (tls_engine_info(x.e)) {
				FAIL("tls_info before the handshake");
			}
		}
		while (s_done && !s_failed && !s_closed) {
			ssize_t n = tls_engine_recv(x.e, rbuf, rsize);

			if (n > (ssize_t)rsize)
				FAIL("tls_engine_recv gave %zd octets for %zu asked", n, rsize);
			if (n > 0) {
				buf_add(&s_got, rbuf, (size_t)n);
				if (s_got.len > c2s_len || memcmp(s_got.data, c2s_data, s_got.len) != 0)
					FAIL("the engine received octets the client did not send");
				continue;
			}
			if (n == 0)
				s_closed = 1;
			else if (n != -EAGAIN)
				s_failed = 1;
			break;
		}
		if (s_done && !s_failed && s_sent < s2c_len) {
			while (s_sent < s2c_len) {
				size_t n = chunk((flags >> 4) & 3, s_sent, s2c_len - s_sent);

				if (tls_engine_send(x.e, s2c_data + s_sent, n) < 0) {
					s_failed = 1;
					break;
				}
				s_sent += n;
			}
		}
		/* lib/net.c closes once the client's close_notify came: its
		 * goodbye follows the replies; after a failure it also says
		 * goodbye (a no-op before the handshake is done) */
		if (!s_bye && ((s_closed && s_sent == s2c_len) || s_failed)) {
			tls_engine_bye(x.e);
			s_bye = 1;
		}

		if (x.moved == 0 && s_got.len + c_got.len == before_got &&
		    c_done + s_done + c_failed + s_failed + c_bye + s_bye + s_closed + c_closed == before_state)
			break;
	}

	clean = !x.corrupted;
	if (clean) {
		const struct tls_info *ti = tls_engine_info(x.e);

		if (!c_done || !s_done || c_failed || s_failed)
			FAIL("clean run: client done %d failed %d, engine done %d failed %d (%s)", c_done, c_failed,
			     s_done, s_failed, tls_engine_error(x.e));
		if (strcmp(ti->version, (flags & 1) ? "TLS1.2" : "TLS1.3") != 0)
			FAIL("clean run: version %s", ti->version);
		if (s_got.len != c2s_len)
			FAIL("clean run: the engine received %zu of %zu octets", s_got.len, c2s_len);
		if (c_got.len != s2c_len)
			FAIL("clean run: the client received %zu of %zu octets", c_got.len, s2c_len);
		if (!s_closed || !c_closed)
			FAIL("clean run: close_notify seen by engine %d, client %d", s_closed, c_closed);
		if (tls_engine_buffered(x.e) || x.c2s.len || x.s2c.len)
			FAIL("clean run: octets left over: engine %zu, wires %zu %zu", tls_engine_buffered(x.e),
			     x.c2s.len, x.s2c.len);
	}

	if (getenv("FUZZ_TLS_RECORDS_VERBOSE"))
		fprintf(stderr, "flags=%#x rsize=%zu sent=%zu/%zu got=%zu/%zu feeds_from_input=%zu corrupted=%d "
			"client done=%d failed=%d closed=%d engine done=%d failed=%d closed=%d %s %s\n",
			flags, rsize, c2s_len, s2c_len, s_got.len, c_got.len, in.off, x.corrupted, c_done, c_failed,
			c_closed, s_done, s_failed, s_closed, tls_engine_info(x.e) ? tls_engine_info(x.e)->version : "-",
			tls_engine_error(x.e));
	tls_engine_free(&x.e);
	if (x.e)
		FAIL("tls_engine_free did not clear the pointer");
	gnutls_deinit(x.cs);
	buf_release(&x.c2s);
	buf_release(&x.s2c);
	buf_release(&s_got);
	buf_release(&c_got);
	free(c2s_data);
	free(s2c_data);
	free(rbuf);
	return 0;
}
