#ifndef BUZON_TLS_CREDS_H
#define BUZON_TLS_CREDS_H

#include <stddef.h>

#include <gnutls/gnutls.h>

#include "lib/config.h"

/*
 * The certificate store of the TLS transport (lib/net.c, lib/tls.c): the
 * certificates and keys of a listener, loaded once and shared by every
 * session that starts a handshake while it is current. A reload (SIGHUP)
 * makes new creds and drops the old ones; sessions that hold a reference
 * keep theirs until they end. Everything here runs on the loop thread or
 * before it starts (file reads are short and happen at start and reload).
 *
 * Errors are one line "FILE: reason" (GnuTLS's gnutls_strerror() where
 * GnuTLS said no), lower-case, without a final period.
 */

/* Refcounted and immutable once made: GnuTLS certificate credentials with
 * one or more certificate/key pairs (the first is the default; GnuTLS picks
 * another one when its names match the server name a client asks for with
 * SNI), a priority cache, and a session-ticket key for resumption. */
struct tls_creds;

/* Loads the n pairs of certs (the first is the default) and the priority
 * string (NULL: tls_default_priority) into new creds, with a reference for
 * the caller. A "certificate = auto" pair must have been resolved to its
 * files first (tls_auto_certificate(), tls_creds_for_listener()).
 * Returns 0, or -1 with "FILE: reason" in err. */
int tls_creds_new(const struct tls_cert_config *certs, size_t n, const char *priority, struct tls_creds **r,
		  char *err, size_t errlen);
/* The creds of listener l of cfg: its own pair, or else [tls]'s default
 * and the [certificate "NAME"] pairs after it, with [tls] priority;
 * "auto" stands for the files tls_auto_certificate() makes (which must
 * have been called before: this reads, never writes). *r is NULL (and 0 is
 * returned) when l has no certificate (tls = none, none configured). */
int tls_creds_for_listener(const struct config *cfg, const struct listener_config *l, struct tls_creds **r,
			   char *err, size_t errlen);
/* Takes one more reference. */
void tls_creds_ref(struct tls_creds *c);
/* Drops a reference and sets *c to NULL; the last one frees the creds
 * (the ticket key is wiped). NULL is fine. */
void tls_creds_unref(struct tls_creds **c);

/* What a server session is given: gnutls_credentials_set(s,
 * GNUTLS_CRD_CERTIFICATE, tls_creds_x509(c)), gnutls_priority_set(s,
 * tls_creds_priority(c)) and gnutls_session_ticket_enable_server(s,
 * tls_creds_ticket_key(c)). Valid while a reference to c is held. */
gnutls_certificate_credentials_t tls_creds_x509(const struct tls_creds *c);
gnutls_priority_t tls_creds_priority(const struct tls_creds *c);
const gnutls_datum_t *tls_creds_ticket_key(const struct tls_creds *c);

/* The default priority string: TLS 1.2 and 1.3 only; on TLS 1.2 only
 * ECDHE and DHE key exchange (no RSA key transport) and only AEAD ciphers
 * (AES-GCM, ChaCha20-Poly1305: no CBC, no SHA-1 MAC); no SHA-1 handshake
 * signatures; the ECDHE/FFDHE groups are GnuTLS's (RFC 7919 groups for DHE
 * too, so no dh file is needed). */
extern const char tls_default_priority[];

/* The files "certificate = auto" stands for: data_dir/tls/auto-cert.pem and
 * data_dir/tls/auto-key.pem, into cert_path_r and key_path_r (pathlen
 * each). 0, or -1 when they do not fit. */
int tls_auto_paths(const char *data_dir, char *cert_path_r, char *key_path_r, size_t pathlen);
/* certificate = auto: reuses data_dir/tls/auto-cert.pem and auto-key.pem
 * when they go together, name hostname and do not expire within 30 days,
 * or else makes them (ECDSA P-256, self-signed, subjectAltName hostname,
 * valid 825 days) with GnuTLS's own x509 API; the directory is made mode
 * 0700 (data_dir too when missing), the files 0600, written whole or not
 * at all. Writes their paths (pathlen each) and the SHA-256 fingerprint of
 * the certificate ("AB:CD:...", 96 octets with the NUL; fprlen at least
 * that) for a client to pin. 0 when reused, 1 when made, -1 with
 * "FILE: reason" in err. */
int tls_auto_certificate(const char *data_dir, const char *hostname, char *cert_path_r, char *key_path_r,
			 size_t pathlen, char *fpr_r, size_t fprlen, char *err, size_t errlen);
/* For buzon check: both files readable PEM, the key that of the first
 * certificate, every certificate of the chain valid now (an error), none
 * expiring within 30 days (a warning), the chain in order (a warning), the
 * first certificate valid for hostname (a warning when not; NULL: not
 * checked). Returns 0 (msg ""), 1 with the warnings in msg ("; " between
 * them), or -1 with the error in msg. */
int tls_check_pair(const char *cert_path, const char *key_path, const char *hostname, char *msg, size_t msglen);
/* The SHA-256 fingerprint of the first certificate of a PEM file, as
 * "AB:CD:..." (fprlen at least 96). 0, or -1 with "FILE: reason". */
int tls_fingerprint(const char *cert_path, char *fpr_r, size_t fprlen, char *err, size_t errlen);
/* Whether GnuTLS takes priority as a priority string: 0, or -1 with where
 * it stopped ("unknown element at character 8: '+VERS-FOO'") in err, the
 * text escaped as config_quote() does. */
int tls_priority_check(const char *priority, char *err, size_t errlen);

#endif
