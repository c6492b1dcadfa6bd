#include "server/tls-setup.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/tls-creds.h"
#include "lib/xalloc.h"

struct tls_setup {
	struct tls_creds **creds;   /* per listener of the config; NULL: no TLS */
	size_t n;
	char fpr[128];              /* the auto certificate's fingerprint, "" if none */
};

/* The auto certificate's files belong to the service user, who reads them
 * again on SIGHUP. */
static void give_away(const char *path, const struct service_user *u)
{
	if (u && u->drop && fchownat(AT_FDCWD, path, u->uid, u->gid, AT_SYMLINK_NOFOLLOW) < 0)
		log_warn("server", NULL, "cannot give the file to the service user path=%s user=%s", path, u->name);
}

int tls_setup_load(const struct config *cfg, const struct service_user *u, struct tls_setup **r, char *err,
		   size_t errlen)
{
	struct tls_setup *t = xcalloc(1, sizeof(*t));
	char cert[4200], key[4200], e[512];

	t->n = cfg->n_listeners;
	t->creds = xcalloc(t->n ? t->n : 1, sizeof(*t->creds));
	if (cfg->tls.certificate && strcmp(cfg->tls.certificate, "auto") == 0) {
		if (tls_auto_certificate(cfg->data_dir, cfg->hostname, cert, key, sizeof(cert), t->fpr,
					 sizeof(t->fpr), e, sizeof(e)) < 0) {
			snprintf(err, errlen, "[tls] certificate = auto: %s", e);
			goto fail;
		}
		give_away(cert, u);
		give_away(key, u);
		*strrchr(cert, '/') = '\0';
		give_away(cert, u);
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		if (tls_creds_for_listener(cfg, &cfg->listeners[i], &t->creds[i], e, sizeof(e)) < 0) {
			snprintf(err, errlen, "listener \"%s\": %s", cfg->listeners[i].name, e);
			goto fail;
		}
	}
	*r = t;
	return 0;
fail:
	tls_setup_free(&t);
	return -1;
}

void tls_setup_apply(const struct tls_setup *t, const struct config *cfg, struct net *n)
{
	for (size_t i = 0; i < cfg->n_listeners && i < t->n; i++) {
		const struct listener_config *l = &cfg->listeners[i];
		net_set_tls(n, l->name, l->tls, t->creds[i], cfg->tls.handshake_timeout * 1000);
	}
}

const char *tls_setup_auto_fingerprint(const struct tls_setup *t)
{
	return t->fpr[0] ? t->fpr : NULL;
}

void tls_setup_free(struct tls_setup **tp)
{
	struct tls_setup *t = *tp;

	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		tls_creds_unref(&t->creds[i]);
	free(t->creds);
	free(t);
	*tp = NULL;
}

/* hostname: the name the certificate must hold, or NULL (an SNI
 * certificate is for other names) */
static int check_one(const struct config *cfg, unsigned line, const char *what, const char *cert,
		     const char *key, const char *hostname)
{
	char msg[512];
	int r = tls_check_pair(cert, key, hostname, msg, sizeof(msg));

	if (r < 0)
		printf("%s:%u: %s: %s\n", cfg->path, line, what, msg);
	else if (r > 0)
		printf("%s:%u: warning: %s: %s\n", cfg->path, line, what, msg);
	return r < 0;
}

int tls_setup_check(const struct config *cfg)
{
	int errors = 0;
	char what[160];

	if (cfg->tls.certificate && strcmp(cfg->tls.certificate, "auto") != 0)
		errors += check_one(cfg, cfg->tls.line, "[tls] certificate", cfg->tls.certificate, cfg->tls.key,
				    cfg->hostname);
	for (size_t i = 0; i < cfg->tls.n_extra; i++) {
		snprintf(what, sizeof(what), "[certificate \"%s\"]", cfg->tls.extra[i].name);
		errors += check_one(cfg, cfg->tls.extra[i].line, what, cfg->tls.extra[i].certificate,
				    cfg->tls.extra[i].key, NULL);
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct listener_config *l = &cfg->listeners[i];

		if (!l->certificate)
			continue;
		snprintf(what, sizeof(what), "listener \"%s\" certificate", l->name);
		errors += check_one(cfg, l->line, what, l->certificate, l->key, cfg->hostname);
	}
	return errors;
}
