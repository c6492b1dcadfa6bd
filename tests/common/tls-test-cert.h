#ifndef BUZON_TESTS_TLS_TEST_CERT_H
#define BUZON_TESTS_TLS_TEST_CERT_H

#include <gnutls/gnutls.h>

/*
 * A throwaway server certificate for tests: an ECDSA P-256 key and a
 * self-signed certificate for "localhost" (valid from an hour ago for a
 * day), made with GnuTLS's x509 API and written as PEM files in a fresh
 * directory under $TMPDIR (or /tmp). The PEM and DER stay in memory too, so
 * a client can trust or pin the certificate without reading the files.
 */
struct tls_test_cert {
	char dir[256];           /* the temporary directory; "" once removed */
	char cert_path[320];     /* dir/cert.pem */
	char key_path[320];      /* dir/key.pem */
	gnutls_datum_t cert_pem; /* owned (gnutls_free) */
	gnutls_datum_t cert_der; /* owned (gnutls_free) */
};

/* Makes the key and the certificate (common name cn, also its DNS
 * subjectAltName) and writes them; 0, or -1 with the reason on stderr. */
int tls_test_cert_make(struct tls_test_cert *t, const char *cn);
/* Removes the files and the directory and frees the memory; idempotent. */
void tls_test_cert_free(struct tls_test_cert *t);

#endif
