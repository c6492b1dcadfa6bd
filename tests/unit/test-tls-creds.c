/* Unit tests of the certificate store (lib/tls-creds.c): loading pairs and
 * chains and the errors that name the file, SNI between two pairs, the
 * default priority against clients that offer only what it refuses, the
 * auto certificate, `buzon check`'s pair checks and the reference count.
 * The certificates are made here with GnuTLS's API (nothing to install);
 * handshakes run in-process between a GnuTLS client and server over a
 * socketpair. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "lib/config.h"
#include "lib/tls-creds.h"
#include "tests/common/check.h"

#define DAY 86400

static char dir[] = "/tmp/buzon-test-tls-creds-XXXXXX";

/* dir/name, in one of a few rotating buffers. */
static const char *path(const char *name)
{
	static char bufs[8][512];
	static unsigned n;
	char *p = bufs[n++ % 8];

	snprintf(p, sizeof(bufs[0]), "%s/%s", dir, name);
	return p;
}

static gnutls_x509_privkey_t make_key(int rsa)
{
	gnutls_x509_privkey_t key;

	gnutls_x509_privkey_init(&key);
	if (rsa)
		CHECK(gnutls_x509_privkey_generate(key, GNUTLS_PK_RSA, 2048, 0) == 0, "rsa key");
	else
		CHECK(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
						  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) == 0, "ecdsa key");
	return key;
}

/* A certificate for name (a dNSName), valid from now + from to now + to,
 * signed by issuer (NULL: self-signed). */
static gnutls_x509_crt_t make_crt(gnutls_x509_privkey_t key, const char *name, long from, long to, int ca,
				  gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key)
{
	static unsigned char serial = 1;
	unsigned char ser[2] = { 0x10, serial++ };
	time_t now = time(NULL);
	gnutls_x509_crt_t crt;

	gnutls_x509_crt_init(&crt);
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, ser, sizeof(ser));
	gnutls_x509_crt_set_activation_time(crt, now + from);
	gnutls_x509_crt_set_expiration_time(crt, now + to);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name, (unsigned)strlen(name));
	gnutls_x509_crt_set_key(crt, key);
	gnutls_x509_crt_set_basic_constraints(crt, ca, -1);
	if (ca) {
		gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
	} else {
		gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name, (unsigned)strlen(name),
						     GNUTLS_FSAN_APPEND);
		gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT);
	}
	CHECK(gnutls_x509_crt_sign2(crt, issuer ? issuer : crt, issuer ? issuer_key : key, GNUTLS_DIG_SHA256, 0) == 0,
	      "sign %s", name);
	return crt;
}

static void write_text(const char *file, const void *data, size_t len, const char *mode)
{
	FILE *fp = fopen(file, mode);

	CHECK(fp != NULL, "cannot write %s", file);
	if (!fp)
		return;
	fwrite(data, 1, len, fp);
	fclose(fp);
}

static void write_crts(const char *file, gnutls_x509_crt_t *crts, unsigned n)
{
	write_text(file, "", 0, "w");
	for (unsigned i = 0; i < n; i++) {
		gnutls_datum_t d;
		CHECK(gnutls_x509_crt_export2(crts[i], GNUTLS_X509_FMT_PEM, &d) == 0, "export");
		write_text(file, d.data, d.size, "a");
		gnutls_free(d.data);
	}
}

static void write_key(const char *file, gnutls_x509_privkey_t key)
{
	gnutls_datum_t d;

	CHECK(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d) == 0, "key");
	write_text(file, d.data, d.size, "w");
	gnutls_free(d.data);
}

/* A self-signed pair name.pem / name.key for dNSName host. */
static void make_pair(const char *name, const char *host, int rsa, long from, long to)
{
	char file[64];
	gnutls_x509_privkey_t key = make_key(rsa);
	gnutls_x509_crt_t crt = make_crt(key, host, from, to, 0, NULL, NULL);

	snprintf(file, sizeof(file), "%s.pem", name);
	write_crts(path(file), &crt, 1);
	snprintf(file, sizeof(file), "%s.key", name);
	write_key(path(file), key);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

/* The outcome of one handshake. */
struct hs {
	int server_err, client_err;   /* 0, or the GnuTLS error of that end */
	unsigned peers;               /* certificates the client was sent */
	int names_b, names_a;         /* the first one is valid for b.test, a.test */
	int resumed;
	char cipher[64];
	gnutls_protocol_t version;
	gnutls_datum_t data;          /* the client's session, for resumption */
};

/* A handshake between a client with client_priority (and sni, and a
 * session to resume) and a server with creds, over a socketpair. */
static void handshake(struct tls_creds *creds, const char *client_priority, const char *sni,
		      const gnutls_datum_t *resume, struct hs *h)
{
	gnutls_session_t srv, cli;
	gnutls_certificate_credentials_t cc;
	int sv[2], sdone = 0, cdone = 0;

	memset(h, 0, sizeof(*h));
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);

	gnutls_init(&srv, GNUTLS_SERVER | GNUTLS_NONBLOCK);
	gnutls_credentials_set(srv, GNUTLS_CRD_CERTIFICATE, tls_creds_x509(creds));
	gnutls_priority_set(srv, tls_creds_priority(creds));
	CHECK(gnutls_session_ticket_enable_server(srv, tls_creds_ticket_key(creds)) == 0, "tickets");
	gnutls_transport_set_int(srv, sv[0]);

	gnutls_certificate_allocate_credentials(&cc);
	gnutls_init(&cli, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	gnutls_credentials_set(cli, GNUTLS_CRD_CERTIFICATE, cc);
	CHECK(gnutls_priority_set_direct(cli, client_priority, NULL) == 0, "client priority %s", client_priority);
	if (sni)
		gnutls_server_name_set(cli, GNUTLS_NAME_DNS, sni, strlen(sni));
	if (resume)
		CHECK(gnutls_session_set_data(cli, resume->data, resume->size) == 0, "set session data");
	gnutls_transport_set_int(cli, sv[1]);

	for (int i = 0; i < 200 && !(sdone && cdone) && !h->server_err && !h->client_err; i++) {
		int r;

		if (!cdone) {
			r = gnutls_handshake(cli);
			if (r == 0)
				cdone = 1;
			else if (gnutls_error_is_fatal(r))
				h->client_err = r;
		}
		if (!sdone) {
			r = gnutls_handshake(srv);
			if (r == 0)
				sdone = 1;
			else if (gnutls_error_is_fatal(r))
				h->server_err = r;
		}
	}
	if (sdone && cdone) {
		const gnutls_datum_t *peers = gnutls_certificate_get_peers(cli, &h->peers);
		gnutls_x509_crt_t crt;

		if (peers && h->peers > 0 && gnutls_x509_crt_init(&crt) == 0) {
			if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) == 0) {
				h->names_a = gnutls_x509_crt_check_hostname(crt, "a.test");
				h->names_b = gnutls_x509_crt_check_hostname(crt, "b.test");
			}
			gnutls_x509_crt_deinit(crt);
		}
		h->resumed = gnutls_session_is_resumed(srv);
		h->version = gnutls_protocol_get_version(srv);
		snprintf(h->cipher, sizeof(h->cipher), "%s",
			 gnutls_cipher_get_name(gnutls_cipher_get(srv)) ? gnutls_cipher_get_name(gnutls_cipher_get(srv))
									: "?");
		gnutls_session_get_data2(cli, &h->data);
	} else if (!h->server_err && !h->client_err) {
		h->server_err = h->client_err = GNUTLS_E_TIMEDOUT;
	}
	gnutls_deinit(cli);
	gnutls_deinit(srv);
	gnutls_certificate_free_credentials(cc);
	close(sv[0]);
	close(sv[1]);
}

static struct tls_creds *creds_of(const char *const *names, size_t n, const char *priority, char *err, size_t errlen)
{
	struct tls_cert_config certs[4];
	char files[4][2][512];
	struct tls_creds *c = NULL;

	for (size_t i = 0; i < n; i++) {
		snprintf(files[i][0], sizeof(files[i][0]), "%s/%s.pem", dir, names[i]);
		snprintf(files[i][1], sizeof(files[i][1]), "%s/%s.key", dir, names[i]);
		certs[i] = (struct tls_cert_config){ .name = (char *)names[i], .certificate = files[i][0],
						     .key = files[i][1] };
	}
	err[0] = '\0';
	if (tls_creds_new(certs, n, priority, &c, err, errlen) < 0)
		return NULL;
	return c;
}

static void test_load(void)
{
	struct tls_cert_config bad;
	struct tls_creds *c;
	char err[512];
	struct hs h;

	/* One pair; the ticket key is there (GnuTLS's are 64 octets). */
	c = creds_of((const char *[]){ "a" }, 1, NULL, err, sizeof(err));
	CHECK(c != NULL, "load a: %s", err);
	if (c) {
		CHECK(tls_creds_x509(c) && tls_creds_priority(c), "creds");
		CHECK(tls_creds_ticket_key(c)->data && tls_creds_ticket_key(c)->size == 64, "ticket key");
		handshake(c, "NORMAL", NULL, NULL, &h);
		CHECK(!h.server_err && !h.client_err && h.version == GNUTLS_TLS1_3 && h.names_a,
		      "a: server %d client %d version %d", h.server_err, h.client_err, (int)h.version);
		gnutls_free(h.data.data);
		tls_creds_unref(&c);
	}
	/* A chain: the client gets the leaf and its issuer. */
	c = creds_of((const char *[]){ "chain" }, 1, NULL, err, sizeof(err));
	CHECK(c != NULL, "load chain: %s", err);
	if (c) {
		handshake(c, "NORMAL", NULL, NULL, &h);
		CHECK(!h.server_err && h.peers == 2 && h.names_a, "chain: %d, %u certificates", h.server_err, h.peers);
		gnutls_free(h.data.data);
		tls_creds_unref(&c);
	}
	/* A key that belongs to another certificate: the key file is named. */
	bad = (struct tls_cert_config){ .name = (char *)"", .certificate = (char *)path("a.pem"),
					.key = (char *)path("b.key") };
	c = NULL;
	CHECK(tls_creds_new(&bad, 1, NULL, &c, err, sizeof(err)) < 0 && c == NULL, "mismatch accepted");
	CHECK(strstr(err, "b.key: the key does not match the certificate") && strstr(err, "a.pem"), "mismatch: '%s'",
	      err);
	/* Missing files, each named. */
	bad.key = (char *)path("missing.key");
	CHECK(tls_creds_new(&bad, 1, NULL, &c, err, sizeof(err)) < 0, "missing key accepted");
	CHECK(strstr(err, "missing.key: cannot open: No such file or directory"), "missing key: '%s'", err);
	bad.certificate = (char *)path("missing.pem");
	bad.key = (char *)path("a.key");
	CHECK(tls_creds_new(&bad, 1, NULL, &c, err, sizeof(err)) < 0, "missing certificate accepted");
	CHECK(strstr(err, "missing.pem: cannot open: No such file or directory"), "missing certificate: '%s'", err);
	/* Not PEM, a PEM that is not a certificate, a directory. */
	write_text(path("junk.pem"), "hello\n", 6, "w");
	bad.certificate = (char *)path("junk.pem");
	CHECK(tls_creds_new(&bad, 1, NULL, &c, err, sizeof(err)) < 0 && strstr(err, "junk.pem: is not PEM"),
	      "junk: '%s'", err);
	bad.certificate = (char *)path("a.key");
	CHECK(tls_creds_new(&bad, 1, NULL, &c, err, sizeof(err)) < 0 &&
	      strstr(err, "a.key: no certificate could be read"), "key as certificate: '%s'", err);
	bad.certificate = (char *)path("a.pem");
	bad.key = (char *)path("a.pem");
	CHECK(tls_creds_new(&bad, 1, NULL, &c, err, sizeof(err)) < 0 && strstr(err, "a.pem: no private key could be read"),
	      "certificate as key: '%s'", err);
	bad.key = dir;
	CHECK(tls_creds_new(&bad, 1, NULL, &c, err, sizeof(err)) < 0 && strstr(err, "is not a regular file"),
	      "directory: '%s'", err);
	/* "auto" must have been resolved to files first. */
	bad.certificate = (char *)"auto";
	bad.key = NULL;
	CHECK(tls_creds_new(&bad, 1, NULL, &c, err, sizeof(err)) < 0 && strstr(err, "auto: no key file"), "auto: '%s'",
	      err);
	/* A bad priority string. */
	c = creds_of((const char *[]){ "a" }, 1, "NORMAL:+VERS-FOO", err, sizeof(err));
	CHECK(c == NULL && strstr(err, "priority: '+VERS-FOO' at character 8"), "priority: '%s'", err);
}

/* Two pairs in one creds: GnuTLS picks by the client's server name, and
 * the first one for no name or a name neither has. */
static void test_sni(void)
{
	struct tls_creds *c;
	char err[512];
	struct hs h;

	c = creds_of((const char *[]){ "a", "b" }, 2, NULL, err, sizeof(err));
	CHECK(c != NULL, "load a, b: %s", err);
	if (!c)
		return;
	handshake(c, "NORMAL", "b.test", NULL, &h);
	CHECK(!h.server_err && h.names_b && !h.names_a, "sni b.test: %d, b %d", h.server_err, h.names_b);
	gnutls_free(h.data.data);
	handshake(c, "NORMAL", NULL, NULL, &h);
	CHECK(!h.server_err && h.names_a && !h.names_b, "no sni: %d, a %d", h.server_err, h.names_a);
	gnutls_free(h.data.data);
	handshake(c, "NORMAL", "c.test", NULL, &h);
	CHECK(!h.server_err && h.names_a, "sni c.test: %d, a %d", h.server_err, h.names_a);
	gnutls_free(h.data.data);
	handshake(c, "NORMAL:-VERS-ALL:+VERS-TLS1.2", "b.test", NULL, &h);
	CHECK(!h.server_err && h.names_b, "sni b.test on TLS 1.2: %d, b %d", h.server_err, h.names_b);
	gnutls_free(h.data.data);
	tls_creds_unref(&c);
}

/* The default priority against clients: what it takes and what it refuses
 * (the server refuses: the error is the server's). */
static void test_priority(void)
{
	static const struct {
		const char *client;
		int ok;
		const char *cipher;   /* substring of the cipher agreed, when ok */
		gnutls_protocol_t version;
	} cases[] = {
		{ "NORMAL", 1, "", GNUTLS_TLS1_3 },
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2", 1, "GCM", GNUTLS_TLS1_2 },
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305", 1, "CHACHA20", GNUTLS_TLS1_2 },
		/* Only TLS 1.0 or 1.1 (RFC 8996). */
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.0", 0, NULL, 0 },
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0", 0, NULL, 0 },
		/* Only CBC ciphers, with SHA-1 or SHA-256 MACs, on TLS 1.2. */
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC:+3DES-CBC:-MAC-ALL:+SHA1:+SHA256", 0,
		  NULL, 0 },
		/* Only CCM (AEAD, but not in the default set). */
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CCM", 0, NULL, 0 },
	};
	static const struct {
		const char *client;
		int ok;
	} rsa_cases[] = {
		/* With an RSA certificate: ECDHE-RSA and DHE-RSA (GnuTLS's own
		 * RFC 7919 group, no dh file), never RSA key transport. */
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA", 1 },
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+DHE-RSA:-GROUP-ALL:+GROUP-FFDHE2048", 1 },
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+DHE-RSA:-GROUP-ALL:+GROUP-SECP256R1", 1 },
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA", 0 },
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.3", 1 },
	};
	struct tls_creds *c;
	char err[512];
	struct hs h;

	CHECK(tls_priority_check(tls_default_priority, err, sizeof(err)) == 0, "default: %s", err);
	c = creds_of((const char *[]){ "a" }, 1, NULL, err, sizeof(err));
	CHECK(c != NULL, "load a: %s", err);
	if (!c)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		handshake(c, cases[i].client, NULL, NULL, &h);
		if (cases[i].ok)
			CHECK(!h.server_err && !h.client_err && h.version == cases[i].version &&
			      strstr(h.cipher, cases[i].cipher), "%s: server %s, client %s, %s", cases[i].client,
			      gnutls_strerror(h.server_err), gnutls_strerror(h.client_err), h.cipher);
		else
			CHECK(h.server_err < 0 && h.server_err != GNUTLS_E_TIMEDOUT, "%s: accepted (%s, %s)",
			      cases[i].client, h.cipher, gnutls_strerror(h.server_err));
		gnutls_free(h.data.data);
	}
	tls_creds_unref(&c);

	c = creds_of((const char *[]){ "rsa" }, 1, NULL, err, sizeof(err));
	CHECK(c != NULL, "load rsa: %s", err);
	if (!c)
		return;
	for (size_t i = 0; i < sizeof(rsa_cases) / sizeof(rsa_cases[0]); i++) {
		handshake(c, rsa_cases[i].client, NULL, NULL, &h);
		if (rsa_cases[i].ok)
			CHECK(!h.server_err && !h.client_err, "rsa %s: server %s, client %s", rsa_cases[i].client,
			      gnutls_strerror(h.server_err), gnutls_strerror(h.client_err));
		else
			CHECK(h.server_err < 0 && h.server_err != GNUTLS_E_TIMEDOUT, "rsa %s: accepted (%s)",
			      rsa_cases[i].client, h.cipher);
		gnutls_free(h.data.data);
	}
	tls_creds_unref(&c);

	/* A priority of the configuration is used as given. */
	c = creds_of((const char *[]){ "a" }, 1, "NORMAL:-VERS-ALL:+VERS-TLS1.2", err, sizeof(err));
	CHECK(c != NULL, "load a: %s", err);
	if (c) {
		handshake(c, "NORMAL", NULL, NULL, &h);
		CHECK(!h.server_err && h.version == GNUTLS_TLS1_2, "configured priority: %d", (int)h.version);
		gnutls_free(h.data.data);
		tls_creds_unref(&c);
	}

	/* tls_priority_check(): where GnuTLS stopped, escaped. */
	CHECK(tls_priority_check("NORMAL:+VERS-FOO:+AEAD", err, sizeof(err)) < 0 &&
	      strcmp(err, "'+VERS-FOO' at character 8 is not understood (The request is invalid.)") == 0, "'%s'", err);
	CHECK(tls_priority_check("NORMAL:\x1b[31m", err, sizeof(err)) < 0 && strstr(err, "'\\x1b[31m' at character 8"),
	      "'%s'", err);
	CHECK(tls_priority_check("NONE", err, sizeof(err)) < 0 && strstr(err, "leaves no TLS version"), "'%s'", err);
	CHECK(tls_priority_check("SECURE256:%SERVER_PRECEDENCE", err, sizeof(err)) == 0, "'%s'", err);
}

/* Resumption with a session ticket of the creds' key (TLS 1.2, where the
 * ticket comes within the handshake); another creds' key does not resume. */
static void test_resumption(void)
{
	struct tls_creds *c, *other;
	char err[512];
	struct hs h, h2;

	c = creds_of((const char *[]){ "a" }, 1, NULL, err, sizeof(err));
	other = creds_of((const char *[]){ "a" }, 1, NULL, err, sizeof(err));
	CHECK(c && other, "load: %s", err);
	if (!c || !other) {
		tls_creds_unref(&c);
		tls_creds_unref(&other);
		return;
	}
	handshake(c, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL, NULL, &h);
	CHECK(!h.server_err && !h.resumed && h.data.size > 0, "first: %d", h.server_err);
	handshake(c, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL, &h.data, &h2);
	CHECK(!h2.server_err && h2.resumed, "second: %d, resumed %d", h2.server_err, h2.resumed);
	gnutls_free(h2.data.data);
	handshake(other, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL, &h.data, &h2);
	CHECK(!h2.server_err && !h2.resumed, "other key: %d, resumed %d", h2.server_err, h2.resumed);
	gnutls_free(h2.data.data);
	gnutls_free(h.data.data);
	tls_creds_unref(&c);
	tls_creds_unref(&other);
}

static unsigned mode_of(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0;
}

static void test_auto(void)
{
	char cert[512], key[512], fpr[96], fpr2[96], fpr3[96], err[512], msg[512], data_dir[512];
	struct config cfg;
	struct tls_creds *c;
	char conf[1024];
	struct hs h;

	/* data_dir does not exist yet: made 0700, tls/ too, files 0600. */
	snprintf(data_dir, sizeof(data_dir), "%s/data", dir);
	umask(022);
	CHECK(tls_auto_certificate(data_dir, "mail.test", cert, key, sizeof(cert), fpr, sizeof(fpr), err,
				   sizeof(err)) == 0, "auto: %s", err);
	CHECK(strcmp(cert, path("data/tls/auto-cert.pem")) == 0 && strcmp(key, path("data/tls/auto-key.pem")) == 0,
	      "paths %s %s", cert, key);
	CHECK(mode_of(path("data/tls")) == 0700, "tls/ mode %o", mode_of(path("data/tls")));
	CHECK(mode_of(cert) == 0600 && mode_of(key) == 0600, "modes %o %o", mode_of(cert), mode_of(key));
	CHECK(strlen(fpr) == 95 && fpr[2] == ':' && fpr[94] != ':', "fingerprint '%s'", fpr);
	for (const char *p = fpr; *p; p++)
		CHECK((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F') || *p == ':', "fingerprint '%s'", fpr);
	CHECK(tls_fingerprint(cert, fpr2, sizeof(fpr2), err, sizeof(err)) == 0 && strcmp(fpr, fpr2) == 0,
	      "fingerprint %s vs %s", fpr, fpr2);
	CHECK(tls_check_pair(cert, key, "mail.test", msg, sizeof(msg)) == 0, "check auto: %s", msg);
	CHECK(access(path("data/tls/auto-key.pem.tmp"), F_OK) < 0, "temporary file left");

	/* Reused while valid for the hostname, even if its mode was changed. */
	chmod(key, 0644);
	CHECK(tls_auto_certificate(data_dir, "mail.test", cert, key, sizeof(cert), fpr2, sizeof(fpr2), err,
				   sizeof(err)) == 0 && strcmp(fpr, fpr2) == 0, "reuse: %s / %s", err, fpr2);
	CHECK(mode_of(key) == 0600, "key mode again %o", mode_of(key));

	/* Another hostname: made again. */
	CHECK(tls_auto_certificate(data_dir, "other.test", cert, key, sizeof(cert), fpr3, sizeof(fpr3), err,
				   sizeof(err)) == 0 && strcmp(fpr, fpr3) != 0, "new hostname: %s", err);
	CHECK(tls_check_pair(cert, key, "other.test", msg, sizeof(msg)) == 0, "check: %s", msg);
	CHECK(tls_check_pair(cert, key, "mail.test", msg, sizeof(msg)) == 1, "old name: %s", msg);

	/* A key that no longer matches (a crash between the two renames):
	 * made again. */
	{
		gnutls_x509_privkey_t k = make_key(0);
		write_key(key, k);
		gnutls_x509_privkey_deinit(k);
	}
	CHECK(tls_auto_certificate(data_dir, "other.test", cert, key, sizeof(cert), fpr2, sizeof(fpr2), err,
				   sizeof(err)) == 0 && strcmp(fpr2, fpr3) != 0, "mismatched key: %s", err);
	CHECK(tls_check_pair(cert, key, "other.test", msg, sizeof(msg)) == 0, "check: %s", msg);
	/* An address as the hostname gets an iPAddress name. */
	CHECK(tls_auto_certificate(data_dir, "192.0.2.1", cert, key, sizeof(cert), fpr2, sizeof(fpr2), err,
				   sizeof(err)) == 0, "address: %s", err);
	CHECK(tls_check_pair(cert, key, "192.0.2.1", msg, sizeof(msg)) == 0, "check address: %s", msg);

	/* "auto" through the configuration, as serve does it. */
	snprintf(conf, sizeof(conf), "[server]\nhostname = 192.0.2.1\ndata_dir = %s\n[tls]\ncertificate = auto\n"
		 "[listener \"mx\"]\nprotocol = smtp\naddress = 127.0.0.1:25\n"
		 "[listener \"plain\"]\nprotocol = smtp\naddress = 127.0.0.1:26\ntls = none\n", data_dir);
	CHECK(config_load_string(conf, "t.conf", &cfg, err, sizeof(err)) == 0, "config: %s", err);
	c = NULL;
	CHECK(tls_creds_for_listener(&cfg, &cfg.listeners[0], &c, err, sizeof(err)) == 0 && c, "creds: %s", err);
	if (c) {
		handshake(c, "NORMAL", NULL, NULL, &h);
		CHECK(!h.server_err && h.peers == 1, "auto handshake: %d", h.server_err);
		gnutls_free(h.data.data);
		tls_creds_unref(&c);
	}
	CHECK(tls_creds_for_listener(&cfg, &cfg.listeners[1], &c, err, sizeof(err)) == 0 && !c, "tls = none: creds");
	config_free(&cfg);

	/* A data_dir that cannot be made. */
	CHECK(tls_auto_certificate("/proc/no/such", "a", cert, key, sizeof(cert), fpr2, sizeof(fpr2), err,
				   sizeof(err)) < 0 && strstr(err, "/proc/no/such: cannot create"), "bad dir: '%s'", err);
}

/* tls_creds_for_listener(): a listener's own pair, or [tls]'s and the
 * [certificate] ones after it. */
static void test_for_listener(void)
{
	struct config cfg;
	struct tls_creds *c = NULL;
	char conf[2048], err[512];
	struct hs h;

	snprintf(conf, sizeof(conf), "[server]\nhostname = a.test\ndata_dir = %s\n"
		 "[tls]\ncertificate = %s/a.pem\nkey = %s/a.key\n[certificate \"b\"]\ncertificate = %s/b.pem\nkey = %s/b.key\n"
		 "[listener \"mx\"]\nprotocol = smtp\naddress = 127.0.0.1:25\n"
		 "[listener \"own\"]\nprotocol = smtp\naddress = 127.0.0.1:26\ncertificate = %s/b.pem\nkey = %s/b.key\n",
		 dir, dir, dir, dir, dir, dir, dir);
	CHECK(config_load_string(conf, "t.conf", &cfg, err, sizeof(err)) == 0, "config: %s", err);
	if (cfg.n_listeners != 2) {
		config_free(&cfg);
		return;
	}
	CHECK(tls_creds_for_listener(&cfg, &cfg.listeners[0], &c, err, sizeof(err)) == 0 && c, "mx: %s", err);
	if (c) {
		handshake(c, "NORMAL", "b.test", NULL, &h);
		CHECK(!h.server_err && h.names_b, "mx sni b");
		gnutls_free(h.data.data);
		handshake(c, "NORMAL", NULL, NULL, &h);
		CHECK(!h.server_err && h.names_a, "mx default a");
		gnutls_free(h.data.data);
		tls_creds_unref(&c);
	}
	/* Its own pair only: the SNI certificates are not its. */
	CHECK(tls_creds_for_listener(&cfg, &cfg.listeners[1], &c, err, sizeof(err)) == 0 && c, "own: %s", err);
	if (c) {
		handshake(c, "NORMAL", "a.test", NULL, &h);
		CHECK(!h.server_err && h.names_b, "own: b whatever the name");
		gnutls_free(h.data.data);
		tls_creds_unref(&c);
	}
	config_free(&cfg);
}

static void test_check_pair(void)
{
	static const struct {
		const char *cert, *key, *hostname;
		int want;
		const char *msg;
	} cases[] = {
		{ "a.pem", "a.key", "a.test", 0, "" },
		{ "a.pem", "a.key", NULL, 0, "" },
		{ "a.pem", "a.key", "mail.example.test", 1, "a.pem: the certificate is not valid for mail.example.test (it names a.test)" },
		{ "a.pem", "b.key", "a.test", -1, "b.key: the key does not match the certificate (the first one of " },
		{ "expired.pem", "expired.key", "a.test", -1, "expired.pem: the certificate expired on " },
		{ "future.pem", "future.key", "a.test", -1, "future.pem: the certificate is not valid before " },
		{ "soon.pem", "soon.key", "a.test", 1, "soon.pem: the certificate expires on " },
		{ "soon.pem", "soon.key", "b.test", 1, "; " },
		{ "chain.pem", "chain.key", "a.test", 0, "" },
		{ "unordered.pem", "chain.key", "a.test", 1, "certificate 2 of the chain is not the issuer of the one before it" },
		{ "oldca.pem", "chain.key", "a.test", -1, "oldca.pem: certificate 2 of the chain expired on " },
		{ "missing.pem", "a.key", "a.test", -1, "missing.pem: cannot open: No such file or directory" },
		{ "junk.pem", "a.key", "a.test", -1, "junk.pem: is not PEM" },
	};
	char msg[512], c[512], k[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(c, sizeof(c), "%s", path(cases[i].cert));
		snprintf(k, sizeof(k), "%s", path(cases[i].key));
		int r = tls_check_pair(c, k, cases[i].hostname, msg, sizeof(msg));
		CHECK(r == cases[i].want, "check %s %s %s: %d '%s'", cases[i].cert, cases[i].key,
		      cases[i].hostname ? cases[i].hostname : "-", r, msg);
		CHECK(cases[i].msg[0] ? strstr(msg, cases[i].msg) != NULL : msg[0] == '\0', "check %s %s: '%s', want '%s'",
		      cases[i].cert, cases[i].key, msg, cases[i].msg);
	}
	CHECK(tls_fingerprint(path("missing.pem"), c, sizeof(c), msg, sizeof(msg)) < 0 &&
	      strstr(msg, "missing.pem: cannot open"), "fingerprint of nothing: '%s'", msg);
	CHECK(tls_fingerprint(path("a.pem"), c, 90, msg, sizeof(msg)) < 0, "fingerprint without room");
}

static void test_refs(void)
{
	struct tls_creds *c, *d;
	char err[512];

	c = creds_of((const char *[]){ "a", "b", "chain" }, 3, NULL, err, sizeof(err));
	CHECK(c != NULL, "load: %s", err);
	if (!c)
		return;
	d = c;
	tls_creds_ref(d);
	tls_creds_ref(d);
	tls_creds_unref(&c);
	CHECK(c == NULL, "unref sets NULL");
	tls_creds_unref(&c);  /* NULL: nothing */
	CHECK(tls_creds_x509(d) != NULL, "still there");
	c = d;
	tls_creds_unref(&d);
	tls_creds_unref(&c);  /* the last one: freed (ASan would see a leak or a double free) */
	CHECK(c == NULL && d == NULL, "both NULL");
}

static void make_files(void)
{
	gnutls_x509_privkey_t ca_key = make_key(0), leaf_key = make_key(0), old_key = make_key(0);
	gnutls_x509_privkey_t other_key = make_key(0);
	gnutls_x509_crt_t other_ca = make_crt(other_key, "Other CA", -DAY, 100 * DAY, 1, NULL, NULL);
	gnutls_x509_crt_t ca = make_crt(ca_key, "Test CA", -DAY, 100 * DAY, 1, NULL, NULL);
	gnutls_x509_crt_t old_ca = make_crt(old_key, "Old CA", -100 * DAY, -DAY, 1, NULL, NULL);
	gnutls_x509_crt_t leaf = make_crt(leaf_key, "a.test", -DAY, 90 * DAY, 0, ca, ca_key);
	gnutls_x509_crt_t leaf_old = make_crt(leaf_key, "a.test", -DAY, 90 * DAY, 0, old_ca, old_key);
	gnutls_x509_crt_t chain[2] = { leaf, ca }, unordered[2] = { leaf, other_ca }, oldchain[2] = { leaf_old, old_ca };

	make_pair("a", "a.test", 0, -DAY, 365 * DAY);
	make_pair("b", "b.test", 0, -DAY, 365 * DAY);
	make_pair("rsa", "a.test", 1, -DAY, 365 * DAY);
	make_pair("expired", "a.test", 0, -100 * DAY, -DAY);
	make_pair("future", "a.test", 0, DAY, 100 * DAY);
	make_pair("soon", "a.test", 0, -DAY, 10 * DAY);
	write_crts(path("chain.pem"), chain, 2);
	write_crts(path("unordered.pem"), unordered, 2);
	write_crts(path("oldca.pem"), oldchain, 2);
	write_key(path("chain.key"), leaf_key);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_crt_deinit(old_ca);
	gnutls_x509_crt_deinit(other_ca);
	gnutls_x509_privkey_deinit(other_key);
	gnutls_x509_crt_deinit(leaf);
	gnutls_x509_crt_deinit(leaf_old);
	gnutls_x509_privkey_deinit(ca_key);
	gnutls_x509_privkey_deinit(leaf_key);
	gnutls_x509_privkey_deinit(old_key);
}

int main(void)
{
	char cmd[600];

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	make_files();
	test_load();
	test_sni();
	test_priority();
	test_resumption();
	test_check_pair();
	test_auto();
	test_for_listener();
	test_refs();

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	if (failures) {
		printf("tls-creds: %d check(s) failed\n", failures);
		return 1;
	}
	printf("tls-creds: all checks passed\n");
	return 0;
}
