#ifndef BUZON_IMAP_SERVER_H
#define BUZON_IMAP_SERVER_H

#include <uv.h>

#include "lib/config.h"
#include "lib/net.h"
#include "storage/directory.h"

/*
 * The glue between connections (lib/net.h), the IMAP session
 * (imap/imap-session.h) and storage: each command's storage work runs on the
 * libuv threadpool; change notifications between sessions go through
 * lib/notify.h; failed logins are slowed down and locked out per client
 * address and per user name by the table every protocol shares
 * (lib/lockout.h, through lib/runner.h).
 */
struct imap_server;

struct sasl_ctx;

/* lk: the shared failed-login table (NULL: none); sasl: GNU SASL for
 * AUTHENTICATE (NULL: no mechanism offered); both must outlive the server. */
struct imap_server *imap_server_new(const struct config *cfg, struct dir *dir, uv_loop_t *loop,
				    struct lockout *lk, struct sasl_ctx *sasl);
const struct proto_handler *imap_server_handler(const struct imap_server *srv);
void imap_server_free(struct imap_server **srv);

#endif
