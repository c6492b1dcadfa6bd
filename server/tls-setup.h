#ifndef BUZON_SERVER_TLS_SETUP_H
#define BUZON_SERVER_TLS_SETUP_H

#include <stddef.h>

#include "lib/config.h"
#include "lib/net.h"
#include "server/privs.h"

/*
 * The certificates of every listener, made from the configuration: one set
 * from [tls] and the [certificate "NAME"] sections (chosen by SNI), and one
 * per listener that names its own pair. Made at start (as root, before the
 * privileges are dropped, so keys readable by root only work) and again on
 * SIGHUP (as the service user, on a worker thread); handed to the
 * listeners with tls_setup_apply() on the loop thread.
 */

struct tls_setup;

/* Reads every certificate and key of cfg. With [tls] certificate = auto,
 * makes or reuses data_dir/tls/auto-*.pem first, owned by u when u->drop
 * (u may be NULL: nothing is given away). 0 (a setup with no certificate
 * at all is fine: *r is then an empty setup) or -1 with "what: reason" in err. */
int tls_setup_load(const struct config *cfg, const struct service_user *u, struct tls_setup **r, char *err,
		   size_t errlen);
/* Gives each listener its mode and certificates for handshakes from now on. */
void tls_setup_apply(const struct tls_setup *t, const struct config *cfg, struct net *n);
/* The SHA-256 fingerprint of the auto certificate, or NULL. */
const char *tls_setup_auto_fingerprint(const struct tls_setup *t);
void tls_setup_free(struct tls_setup **t);

/* buzon check: every pair of cfg read and checked (key matches, dates,
 * hostname); each problem printed on one line as "FILE:LINE: ...".
 * Returns the number of errors (warnings are printed, not counted). */
int tls_setup_check(const struct config *cfg);

#endif
