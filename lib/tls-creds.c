/*
 * The certificate store: certificate/key pairs read from PEM files into
 * GnuTLS credentials, the priority cache and the session-ticket key, the
 * self-signed certificate of "certificate = auto", and the checks of
 * `buzon check`.
 *
 * Files are read here with open(2), not gnutls_certificate_set_x509_key_file(),
 * so that an error says which file and why: a missing key file and a key
 * that does not belong to the certificate are different mistakes. Key
 * material read into memory is wiped before it is freed.
 */
#include "lib/tls-creds.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "lib/xalloc.h"

/* A PEM file larger than this is not a certificate chain or a key. */
#define MAX_PEM (1024 * 1024)
/* A certificate expiring sooner is renewed (auto) or warned about (check). */
#define RENEW_BEFORE (30 * 86400)
/* The life of the auto certificate: what browsers take for a TLS server
 * certificate (CA/Browser Forum, 2018), for clients that check it. */
#define AUTO_DAYS 825

/*
 * Chosen for a mail server in 2026 that must still talk to the mail clients
 * and MTAs of the last ten years: TLS 1.3 and 1.2 only (1.0 and 1.1 are
 * deprecated by RFC 8996); on 1.2 forward secrecy only (ECDHE, DHE: no RSA
 * key transport) and AEAD only (AES-GCM, ChaCha20-Poly1305: no CBC, whose
 * MAC-then-encrypt gave Lucky13 and POODLE, and so no SHA-1 MAC); no SHA-1
 * signatures in the handshake. The groups (X25519, P-256, ..., FFDHE) are
 * GnuTLS's NORMAL ones. `gnutls-cli --priority STRING -l` lists the suites.
 */
const char tls_default_priority[] =
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
	"-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM:-MAC-ALL:+AEAD:"
	"-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:+DHE-RSA:-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1";

struct tls_creds {
	atomic_int refs;
	gnutls_certificate_credentials_t x509;
	gnutls_priority_t priority;
	gnutls_datum_t ticket_key;  /* secret: wiped when the creds go */
};

/* Reads the regular file at path (at most MAX_PEM octets) into d, with a
 * NUL after its end. 0, or -1 with "PATH: reason" in err. Free with
 * datum_release(). */
static int read_file(const char *path, gnutls_datum_t *d, char *err, size_t errlen)
{
	struct stat st;
	size_t n = 0;
	int fd;

	d->data = NULL;
	d->size = 0;
	/* O_NONBLOCK: a FIFO put in place of a file must not hang the start. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: is not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size > MAX_PEM) {
		snprintf(err, errlen, "%s: is larger than %d octets: not a PEM certificate or key", path, MAX_PEM);
		close(fd);
		return -1;
	}
	d->data = xmalloc((size_t)st.st_size + 1);
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, d->data + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			close(fd);
			wipe(d->data, n);
			free(d->data);
			d->data = NULL;
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	d->data[n] = '\0';
	d->size = (unsigned)n;
	return 0;
}

static void datum_release(gnutls_datum_t *d)
{
	if (d->data) {
		wipe(d->data, d->size);
		free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

static int has_pem_header(const gnutls_datum_t *d)
{
	return strstr((const char *)d->data, "-----BEGIN ") != NULL;
}

static void crts_free(gnutls_x509_crt_t *crts, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
}

/* The certificates of the PEM file at path, in file order (at least one). */
static int load_crts(const char *path, gnutls_x509_crt_t **crts_r, unsigned *n_r, char *err, size_t errlen)
{
	gnutls_datum_t d;
	int r;

	*crts_r = NULL;
	*n_r = 0;
	if (read_file(path, &d, err, errlen) < 0)
		return -1;
	if (!has_pem_header(&d)) {
		snprintf(err, errlen, "%s: is not PEM (no -----BEGIN CERTIFICATE----- line)", path);
		datum_release(&d);
		return -1;
	}
	r = gnutls_x509_crt_list_import2(crts_r, n_r, &d, GNUTLS_X509_FMT_PEM, 0);
	datum_release(&d);
	if (r < 0 || *n_r == 0) {
		snprintf(err, errlen, "%s: no certificate could be read: %s", path,
			 r < 0 ? gnutls_strerror(r) : "none in the file");
		*crts_r = NULL;
		*n_r = 0;
		return -1;
	}
	return 0;
}

/* The private key of the PEM file at path (PKCS#8, or PKCS#1/SEC 1). */
static int load_key(const char *path, gnutls_x509_privkey_t *key_r, char *err, size_t errlen)
{
	gnutls_datum_t d;
	int r;

	*key_r = NULL;
	if (read_file(path, &d, err, errlen) < 0)
		return -1;
	if (!has_pem_header(&d)) {
		snprintf(err, errlen, "%s: is not PEM (no -----BEGIN PRIVATE KEY----- line)", path);
		datum_release(&d);
		return -1;
	}
	if (gnutls_x509_privkey_init(key_r) < 0)
		BUG("gnutls_x509_privkey_init");
	r = gnutls_x509_privkey_import2(*key_r, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		int encrypted = strstr((const char *)d.data, "ENCRYPTED") != NULL;

		snprintf(err, errlen, "%s: no private key could be read: %s%s", path, gnutls_strerror(r),
			 encrypted ? " (the key is encrypted: buzon needs it without a passphrase)" : "");
		gnutls_x509_privkey_deinit(*key_r);
		*key_r = NULL;
		datum_release(&d);
		return -1;
	}
	datum_release(&d);
	return 0;
}

/* Whether key is the private key of crt: their public keys' SHA-256 ids. */
static int key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
	unsigned char a[64], b[64];
	size_t alen = sizeof(a), blen = sizeof(b);

	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &alen) < 0 ||
	    gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &blen) < 0)
		return 0;
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* Loads a certificate file and its key file, checked to go together. */
static int load_pair(const char *cert_path, const char *key_path, gnutls_x509_crt_t **crts_r, unsigned *n_r,
		     gnutls_x509_privkey_t *key_r, char *err, size_t errlen)
{
	if (load_crts(cert_path, crts_r, n_r, err, errlen) < 0)
		return -1;
	if (load_key(key_path, key_r, err, errlen) < 0) {
		crts_free(*crts_r, *n_r);
		return -1;
	}
	if (!key_matches((*crts_r)[0], *key_r)) {
		snprintf(err, errlen, "%s: the key does not match the certificate (the first one of %s)", key_path,
			 cert_path);
		crts_free(*crts_r, *n_r);
		gnutls_x509_privkey_deinit(*key_r);
		*key_r = NULL;
		return -1;
	}
	return 0;
}

static int format_fingerprint(gnutls_x509_crt_t crt, char *fpr_r, size_t fprlen)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char md[32];
	size_t len = sizeof(md);

	if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, md, &len) < 0 || len != sizeof(md) ||
	    fprlen < len * 3)
		return -1;
	for (size_t i = 0; i < len; i++) {
		fpr_r[i * 3] = hex[md[i] >> 4];
		fpr_r[i * 3 + 1] = hex[md[i] & 15];
		fpr_r[i * 3 + 2] = i + 1 < len ? ':' : '\0';
	}
	return 0;
}

int tls_priority_check(const char *priority, char *err, size_t errlen)
{
	gnutls_priority_t p;
	const char *errpos = NULL;
	const unsigned *list;
	int r;

	r = gnutls_priority_init(&p, priority, &errpos);
	if (r == GNUTLS_E_NO_PRIORITIES_WERE_SET) {
		/* The string parsed, but left nothing to use ("NONE",
		 * "NORMAL:-VERS-ALL"); errpos is then its start. */
		snprintf(err, errlen, "it leaves no TLS version, cipher, key exchange or signature to use (%s)",
			 gnutls_strerror(r));
		return -1;
	}
	if (r < 0) {
		size_t plen = strlen(priority);

		if (errpos && errpos >= priority && errpos <= priority + plen) {
			char token[256], quoted[256 * 4 + 8];
			size_t tlen = strcspn(errpos, ":");

			snprintf(token, sizeof(token), "%.*s", (int)(tlen < sizeof(token) ? tlen : sizeof(token) - 1),
				 errpos);
			snprintf(err, errlen, "'%s' at character %zu is not understood (%s)",
				 config_quote(token, quoted, sizeof(quoted)), (size_t)(errpos - priority) + 1,
				 gnutls_strerror(r));
		} else {
			snprintf(err, errlen, "not a GnuTLS priority string (%s)", gnutls_strerror(r));
		}
		return -1;
	}
	/* "NONE" and the like are taken by GnuTLS but no handshake could
	 * ever succeed: say so now rather than at the first client. */
	if (gnutls_priority_protocol_list(p, &list) <= 0) {
		snprintf(err, errlen, "it enables no TLS version");
		gnutls_priority_deinit(p);
		return -1;
	}
	if (gnutls_priority_cipher_list(p, &list) <= 0) {
		snprintf(err, errlen, "it enables no cipher");
		gnutls_priority_deinit(p);
		return -1;
	}
	gnutls_priority_deinit(p);
	return 0;
}

int tls_creds_new(const struct tls_cert_config *certs, size_t n, const char *priority, struct tls_creds **r,
		  char *err, size_t errlen)
{
	struct tls_creds *c;
	const char *errpos = NULL;
	int ret;

	*r = NULL;
	if (n == 0) {
		snprintf(err, errlen, "no certificate");
		return -1;
	}
	c = xcalloc(1, sizeof(*c));
	atomic_init(&c->refs, 1);
	if (gnutls_certificate_allocate_credentials(&c->x509) < 0)
		BUG("gnutls_certificate_allocate_credentials");
	for (size_t i = 0; i < n; i++) {
		gnutls_x509_crt_t *crts;
		gnutls_x509_privkey_t key;
		unsigned ncrts;

		if (!certs[i].key || strcmp(certs[i].certificate, "auto") == 0) {
			snprintf(err, errlen, "%s: no key file (certificate = auto is resolved with tls_auto_certificate())",
				 certs[i].certificate);
			goto fail;
		}
		if (load_pair(certs[i].certificate, certs[i].key, &crts, &ncrts, &key, err, errlen) < 0)
			goto fail;
		/* GnuTLS copies the chain and the key, and takes the names
		 * that SNI is matched against from the first certificate. */
		ret = gnutls_certificate_set_x509_key(c->x509, crts, ncrts, key);
		crts_free(crts, ncrts);
		gnutls_x509_privkey_deinit(key);
		if (ret < 0) {
			snprintf(err, errlen, "%s: %s", certs[i].certificate, gnutls_strerror(ret));
			goto fail;
		}
	}
	/* DHE on TLS 1.2 with a client that does not name an RFC 7919 group:
	 * GnuTLS's own 2048-bit (RFC 7919) parameters, no dh file. */
	ret = gnutls_certificate_set_known_dh_params(c->x509, GNUTLS_SEC_PARAM_MEDIUM);
	if (ret < 0) {
		snprintf(err, errlen, "dh parameters: %s", gnutls_strerror(ret));
		goto fail;
	}
	ret = gnutls_priority_init(&c->priority, priority ? priority : tls_default_priority, &errpos);
	if (ret < 0) {
		char why[512];

		if (tls_priority_check(priority ? priority : tls_default_priority, why, sizeof(why)) == 0)
			snprintf(why, sizeof(why), "%s", gnutls_strerror(ret));
		snprintf(err, errlen, "priority: %s", why);
		c->priority = NULL;
		goto fail;
	}
	ret = gnutls_session_ticket_key_generate(&c->ticket_key);
	if (ret < 0) {
		snprintf(err, errlen, "session ticket key: %s", gnutls_strerror(ret));
		c->ticket_key.data = NULL;
		goto fail;
	}
	*r = c;
	return 0;
fail:
	tls_creds_unref(&c);
	return -1;
}

int tls_creds_for_listener(const struct config *cfg, const struct listener_config *l, struct tls_creds **r,
			   char *err, size_t errlen)
{
	char auto_cert[4096], auto_key[4096];
	struct tls_cert_config *certs;
	size_t n = 0;
	int ret;

	*r = NULL;
	if (l->tls == TLS_MODE_NONE)
		return 0;
	if (l->certificate) {
		struct tls_cert_config own = { .name = l->name, .line = l->line, .certificate = l->certificate,
					       .key = l->key };
		return tls_creds_new(&own, 1, cfg->tls.priority, r, err, errlen);
	}
	if (!cfg->tls.certificate)
		return 0;
	certs = xcalloc(1 + cfg->tls.n_extra, sizeof(*certs));
	certs[n].name = (char *)"";
	certs[n].certificate = cfg->tls.certificate;
	certs[n].key = cfg->tls.key;
	if (strcmp(cfg->tls.certificate, "auto") == 0) {
		if (tls_auto_paths(cfg->data_dir, auto_cert, auto_key, sizeof(auto_cert)) < 0) {
			snprintf(err, errlen, "%s: data_dir is too long for certificate = auto", cfg->data_dir);
			free(certs);
			return -1;
		}
		certs[n].certificate = auto_cert;
		certs[n].key = auto_key;
	}
	n++;
	for (size_t i = 0; i < cfg->tls.n_extra; i++)
		certs[n++] = cfg->tls.extra[i];
	ret = tls_creds_new(certs, n, cfg->tls.priority, r, err, errlen);
	free(certs);
	return ret;
}

void tls_creds_ref(struct tls_creds *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void tls_creds_unref(struct tls_creds **cp)
{
	struct tls_creds *c = *cp;

	*cp = NULL;
	if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (c->ticket_key.data) {
		gnutls_memset(c->ticket_key.data, 0, c->ticket_key.size);
		gnutls_free(c->ticket_key.data);
	}
	if (c->priority)
		gnutls_priority_deinit(c->priority);
	gnutls_certificate_free_credentials(c->x509);
	free(c);
}

gnutls_certificate_credentials_t tls_creds_x509(const struct tls_creds *c)
{
	return c->x509;
}

gnutls_priority_t tls_creds_priority(const struct tls_creds *c)
{
	return c->priority;
}

const gnutls_datum_t *tls_creds_ticket_key(const struct tls_creds *c)
{
	return &c->ticket_key;
}

int tls_fingerprint(const char *cert_path, char *fpr_r, size_t fprlen, char *err, size_t errlen)
{
	gnutls_x509_crt_t *crts;
	unsigned n;
	int r;

	if (load_crts(cert_path, &crts, &n, err, errlen) < 0)
		return -1;
	r = format_fingerprint(crts[0], fpr_r, fprlen);
	crts_free(crts, n);
	if (r < 0) {
		snprintf(err, errlen, "%s: no SHA-256 fingerprint (or no room for it)", cert_path);
		return -1;
	}
	return 0;
}

/* "2026-05-01 12:00 UTC" */
static const char *date_text(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm))
		snprintf(buf, len, "(time %lld)", (long long)t);
	return buf;
}

/* Appends a warning to msg, "; " after the one before. */
static void warn(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void warn(char *msg, size_t msglen, const char *fmt, ...)
{
	size_t len = strlen(msg);
	va_list ap;

	if (len && len + 2 < msglen) {
		memcpy(msg + len, "; ", 3);
		len += 2;
	}
	if (len >= msglen)
		return;
	va_start(ap, fmt);
	vsnprintf(msg + len, msglen - len, fmt, ap);
	va_end(ap);
}

/* Up to three dNSName (or, without one, IP address) subjectAltNames of crt,
 * for "it names ...". */
static void names_of(gnutls_x509_crt_t crt, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (unsigned i = 0, shown = 0; shown < 3; i++) {
		char name[256];
		size_t len = sizeof(name) - 1;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &len, NULL);

		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type != GNUTLS_SAN_DNSNAME || len >= sizeof(name))
			continue;
		name[len] = '\0';
		for (size_t k = 0; k < len; k++)
			if ((unsigned char)name[k] < 0x20 || (unsigned char)name[k] >= 0x7f)
				name[k] = '?';
		o += (size_t)snprintf(out + o, o < outlen ? outlen - o : 0, "%s%s", shown ? ", " : "", name);
		if (o >= outlen)
			break;
		shown++;
	}
	if (!out[0])
		snprintf(out, outlen, "no DNS name");
}

int tls_check_pair(const char *cert_path, const char *key_path, const char *hostname, char *msg, size_t msglen)
{
	gnutls_x509_crt_t *crts;
	gnutls_x509_privkey_t key;
	unsigned n;
	time_t now = time(NULL);
	char d[64];
	int ret = 0;

	msg[0] = '\0';
	if (load_pair(cert_path, key_path, &crts, &n, &key, msg, msglen) < 0)
		return -1;
	gnutls_x509_privkey_deinit(key);
	for (unsigned i = 0; i < n && ret == 0; i++) {
		time_t act = gnutls_x509_crt_get_activation_time(crts[i]);
		time_t exp = gnutls_x509_crt_get_expiration_time(crts[i]);
		char which[48] = "the certificate";

		if (i > 0)
			snprintf(which, sizeof(which), "certificate %u of the chain", i + 1);
		if (exp != (time_t)-1 && now > exp) {
			snprintf(msg, msglen, "%s: %s expired on %s", cert_path, which, date_text(exp, d, sizeof(d)));
			ret = -1;
		} else if (act != (time_t)-1 && now < act) {
			snprintf(msg, msglen, "%s: %s is not valid before %s", cert_path, which,
				 date_text(act, d, sizeof(d)));
			ret = -1;
		} else if (exp != (time_t)-1 && exp - now < RENEW_BEFORE) {
			warn(msg, msglen, "%s: %s expires on %s, in %lld days", cert_path, which,
			     date_text(exp, d, sizeof(d)), (long long)((exp - now) / 86400));
		}
	}
	/* Clients are given the chain as it is in the file: the server's
	 * own certificate first, then each issuer. */
	for (unsigned i = 0; i + 1 < n && ret == 0; i++) {
		if (!gnutls_x509_crt_check_issuer(crts[i], crts[i + 1])) {
			warn(msg, msglen, "%s: certificate %u of the chain is not the issuer of the one before it "
			     "(write the server's certificate first, then each issuer)", cert_path, i + 2);
			break;
		}
	}
	if (ret == 0 && hostname && !gnutls_x509_crt_check_hostname(crts[0], hostname)) {
		char names[256];

		names_of(crts[0], names, sizeof(names));
		warn(msg, msglen, "%s: the certificate is not valid for %s (it names %s)", cert_path, hostname, names);
	}
	crts_free(crts, n);
	if (ret == 0 && msg[0])
		ret = 1;
	return ret;
}

int tls_auto_paths(const char *data_dir, char *cert_path_r, char *key_path_r, size_t pathlen)
{
	int a = snprintf(cert_path_r, pathlen, "%s/tls/auto-cert.pem", data_dir);
	int b = snprintf(key_path_r, pathlen, "%s/tls/auto-key.pem", data_dir);

	return a < 0 || b < 0 || (size_t)a >= pathlen || (size_t)b >= pathlen ? -1 : 0;
}

/* Whether the auto pair at cert_path and key_path may be used again. */
static int auto_usable(const char *cert_path, const char *key_path, const char *hostname)
{
	gnutls_x509_crt_t *crts;
	gnutls_x509_privkey_t key;
	unsigned n;
	char err[512];
	time_t now = time(NULL), exp, act;
	int ok;

	if (load_pair(cert_path, key_path, &crts, &n, &key, err, sizeof(err)) < 0)
		return 0;
	exp = gnutls_x509_crt_get_expiration_time(crts[0]);
	act = gnutls_x509_crt_get_activation_time(crts[0]);
	ok = n == 1 && gnutls_x509_crt_check_hostname(crts[0], hostname) && exp != (time_t)-1 &&
	     exp - now >= RENEW_BEFORE && act != (time_t)-1 && act <= now;
	crts_free(crts, n);
	gnutls_x509_privkey_deinit(key);
	return ok;
}

/* Writes len octets to path, mode 0600, whole or not at all: a temporary
 * file, synced, then renamed over path. */
static int write_file(const char *path, const gnutls_datum_t *d, char *err, size_t errlen)
{
	char *tmp = xasprintf("%s.tmp", path);
	size_t n = 0;
	int fd;

	if (unlink(tmp) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "%s: cannot remove: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	while (n < d->size) {
		ssize_t r = write(fd, d->data + n, d->size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto fail;
		n += (size_t)r;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	free(tmp);
	return 0;
fail:
	snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno ? errno : EIO));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

/* Makes the self-signed pair of hostname and writes it: the key first, so
 * that a crash in between leaves a pair that does not match, which the next
 * start makes again. */
static int make_auto(const char *cert_path, const char *key_path, const char *hostname, char *fpr_r, size_t fprlen,
		     char *err, size_t errlen)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t cd = { NULL, 0 }, kd = { NULL, 0 };
	unsigned char serial[16], id[64], ip[16];
	size_t idlen = sizeof(id);
	time_t now = time(NULL);
	const char *step;
	int r, ret = -1;

	if (gnutls_x509_privkey_init(&key) < 0 || gnutls_x509_crt_init(&crt) < 0)
		BUG("gnutls x509 init");
	step = "generating the key";
	r = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (r < 0)
		goto fail;
	step = "making the certificate";
	/* A positive 128-bit serial number, unique in practice (RFC 5280 4.1.2.2). */
	r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	if (r < 0)
		goto fail;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	if ((r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
	    (r = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
	    (r = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)AUTO_DAYS * 86400)) < 0 ||
	    (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, hostname,
					       (unsigned)strlen(hostname))) < 0 ||
	    (r = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0)
		goto fail;
	/* A hostname that is an address gets an iPAddress name, which is what
	 * clients compare an address with. */
	if (inet_pton(AF_INET, hostname, ip) == 1)
		r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_APPEND);
	else if (inet_pton(AF_INET6, hostname, ip) == 1)
		r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16, GNUTLS_FSAN_APPEND);
	else
		r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, hostname, (unsigned)strlen(hostname),
							 GNUTLS_FSAN_APPEND);
	if (r < 0)
		goto fail;
	if ((r = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &idlen)) < 0 ||
	    (r = gnutls_x509_crt_set_subject_key_id(crt, id, idlen)) < 0)
		goto fail;
	step = "signing the certificate";
	if ((r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0)
		goto fail;
	step = "exporting the pair";
	if ((r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cd)) < 0 ||
	    (r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &kd)) < 0)
		goto fail;
	if (format_fingerprint(crt, fpr_r, fprlen) < 0) {
		snprintf(err, errlen, "%s: no room for the fingerprint", cert_path);
		goto out;
	}
	if (write_file(key_path, &kd, err, errlen) < 0 || write_file(cert_path, &cd, err, errlen) < 0)
		goto out;
	ret = 0;
	goto out;
fail:
	snprintf(err, errlen, "%s: %s: %s", cert_path, step, gnutls_strerror(r));
out:
	if (kd.data) {
		gnutls_memset(kd.data, 0, kd.size);
		gnutls_free(kd.data);
	}
	gnutls_free(cd.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return ret;
}

/* Makes dir (mode 0700) unless it is there; a directory that is there must
 * be one (not a symbolic link to one). */
static int make_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: is not a directory", dir);
		return -1;
	}
	return 0;
}

int tls_auto_certificate(const char *data_dir, const char *hostname, char *cert_path_r, char *key_path_r,
			 size_t pathlen, char *fpr_r, size_t fprlen, char *err, size_t errlen)
{
	char *dir;
	int fd;

	if (tls_auto_paths(data_dir, cert_path_r, key_path_r, pathlen) < 0) {
		snprintf(err, errlen, "%s: too long for the paths of certificate = auto", data_dir);
		return -1;
	}
	dir = xasprintf("%s/tls", data_dir);
	if (make_dir(data_dir, err, errlen) < 0 || make_dir(dir, err, errlen) < 0) {
		free(dir);
		return -1;
	}
	/* Only the service user reads the key: the directory is its alone,
	 * whatever mode it was found with. */
	if (chmod(dir, 0700) < 0) {
		snprintf(err, errlen, "%s: cannot chmod: %s", dir, strerror(errno));
		free(dir);
		return -1;
	}
	if (auto_usable(cert_path_r, key_path_r, hostname)) {
		free(dir);
		if (chmod(key_path_r, 0600) < 0 || chmod(cert_path_r, 0600) < 0) {
			snprintf(err, errlen, "%s: cannot chmod: %s", key_path_r, strerror(errno));
			return -1;
		}
		return tls_fingerprint(cert_path_r, fpr_r, fprlen, err, errlen);
	}
	if (make_auto(cert_path_r, key_path_r, hostname, fpr_r, fprlen, err, errlen) < 0) {
		free(dir);
		return -1;
	}
	/* The renames last once the directory is on disk too: a pinned
	 * fingerprint should not change because of a crash. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
	return 0;
}
