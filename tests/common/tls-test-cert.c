/*
 * See tls-test-cert.h. Tests only: errors are printed, not logged.
 */

#include "tests/common/tls-test-cert.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int write_file(const char *path, const gnutls_datum_t *d)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f) {
		perror(path);
		return -1;
	}
	ok = fwrite(d->data, 1, d->size, f) == d->size;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok)
		fprintf(stderr, "tls-test-cert: cannot write %s\n", path);
	return ok ? 0 : -1;
}

int tls_test_cert_make(struct tls_test_cert *t, const char *cn)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_privkey_t pkey = NULL;
	gnutls_datum_t key_pem = { NULL, 0 };
	const char *tmp = getenv("TMPDIR");
	unsigned char serial[16];
	time_t now = time(NULL);
	const char *step = "";
	int r;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "%s/buzon-tls-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(t->dir)) {
		perror("tls-test-cert: mkdtemp");
		t->dir[0] = '\0';
		return -1;
	}
	snprintf(t->cert_path, sizeof(t->cert_path), "%s/cert.pem", t->dir);
	snprintf(t->key_path, sizeof(t->key_path), "%s/key.pem", t->dir);

#define TRY(what, call) do { step = (what); if ((r = (call)) < 0) goto fail; } while (0)
	TRY("key init", gnutls_x509_privkey_init(&key));
	TRY("key generate", gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
							  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
	TRY("crt init", gnutls_x509_crt_init(&crt));
	TRY("version", gnutls_x509_crt_set_version(crt, 3));
	TRY("serial rnd", gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)));
	serial[0] &= 0x7f; /* a positive INTEGER */
	TRY("serial", gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)));
	TRY("activation", gnutls_x509_crt_set_activation_time(crt, now - 3600));
	TRY("expiration", gnutls_x509_crt_set_expiration_time(crt, now + 86400));
	TRY("cn", gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, (unsigned)strlen(cn)));
	TRY("san", gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, cn, (unsigned)strlen(cn),
							 GNUTLS_FSAN_SET));
	TRY("basic constraints", gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
	TRY("key usage", gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
	TRY("key purpose", gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
	TRY("key", gnutls_x509_crt_set_key(crt, key));
	TRY("privkey init", gnutls_privkey_init(&pkey));
	TRY("privkey import", gnutls_privkey_import_x509(pkey, key, 0));
	TRY("sign", gnutls_x509_crt_privkey_sign(crt, crt, pkey, GNUTLS_DIG_SHA256, 0));
	TRY("export pem", gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &t->cert_pem));
	TRY("export der", gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &t->cert_der));
	TRY("export key", gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &key_pem));
#undef TRY
	r = write_file(t->cert_path, &t->cert_pem);
	if (r == 0)
		r = write_file(t->key_path, &key_pem);
	gnutls_memset(key_pem.data, 0, key_pem.size);
	gnutls_free(key_pem.data);
	gnutls_privkey_deinit(pkey);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	if (r < 0)
		tls_test_cert_free(t);
	return r;
fail:
	fprintf(stderr, "tls-test-cert: %s: %s\n", step, gnutls_strerror(r));
	if (pkey)
		gnutls_privkey_deinit(pkey);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	tls_test_cert_free(t);
	return -1;
}

void tls_test_cert_free(struct tls_test_cert *t)
{
	if (t->dir[0]) {
		unlink(t->cert_path);
		unlink(t->key_path);
		rmdir(t->dir);
		t->dir[0] = '\0';
	}
	gnutls_free(t->cert_pem.data);
	gnutls_free(t->cert_der.data);
	t->cert_pem = (gnutls_datum_t){ NULL, 0 };
	t->cert_der = (gnutls_datum_t){ NULL, 0 };
}
