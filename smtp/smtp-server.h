#ifndef BUZON_SMTP_SERVER_H
#define BUZON_SMTP_SERVER_H

#include "lib/config.h"
#include "lib/net.h"
#include "storage/directory.h"

/*
 * The glue between connections (lib/net.h), the SMTP session state machine
 * (smtp/smtp-session.h) and storage: recipient checks and deliveries run on
 * the libuv threadpool, never on the loop thread.
 */
struct smtp_server;

/* Creates the SMTP service; logs where mail to the postmaster goes (see
 * smtp_server_check_postmaster()), an error when that is not deliverable. */
/* lk: the shared failed-login table for SMTP AUTH (NULL: none); sasl: the
 * SASL context of SMTP AUTH (NULL: AUTH is never offered). Both must
 * outlive the server. Where AUTH is offered is each listener's auth and
 * allow_plaintext_auth. */
struct sasl_ctx;
struct smtp_server *smtp_server_new(const struct config *cfg, struct dir *dir, uv_loop_t *loop,
				    struct lockout *lk, struct sasl_ctx *sasl);
/*
 * Checks where mail to the postmaster goes (RFC 5321 4.5.1), for the start
 * and for "buzon check": 0 with the mailbox (or "no user yet") described
 * in msg; -ENOENT when [server] postmaster is set but is not a deliverable
 * address (no such user or alias, or disabled); another negative code when
 * the directory cannot be read. It reads the directory: call it before the
 * loop serves connections, never from the loop thread afterwards.
 */
int smtp_server_check_postmaster(const struct config *cfg, struct dir *dir, char *msg, size_t msglen);
/* The handler to pass to net_listen(); ctx is the smtp_server. */
const struct proto_handler *smtp_server_handler(const struct smtp_server *srv);
void smtp_server_free(struct smtp_server **srv);

#endif
