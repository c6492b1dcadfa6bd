#ifndef BUZON_POP3_SERVER_H
#define BUZON_POP3_SERVER_H

#include <uv.h>

#include "lib/config.h"
#include "lib/net.h"
#include "storage/directory.h"

/*
 * The glue between connections (lib/net.h), the POP3 session state machine
 * (pop3/pop3-session.h) and storage: password checks (dir_authenticate),
 * opening the maildrop (mbox_open), reading message files and removing
 * deleted messages (mbox_expunge) run on the libuv threadpool, never on the
 * loop thread.
 *
 * The maildrop lock: a table in this process keyed by the user's canonical
 * address, held from the open request until the session is freed, plus an
 * flock() on <maildir>/buzon-pop3.lock against other processes. Both die with
 * the process, so a crash never leaves a maildrop locked; SMTP delivery takes
 * neither, so a POP3 session never blocks delivery.
 *
 * Failed logins are slowed down and locked out per client address and per
 * user name by the table every protocol shares (lib/lockout.h): an attempt
 * waits, before its password is checked, for the delay it gives. AUTH runs
 * its mechanism through GNU SASL (lib/sasl.h) on the threadpool, as SMTP
 * AUTH does: the first step waits for the client address's delay, a failed
 * exchange counts against the address and the name the client gave.
 */
struct pop3_server;

struct sasl_ctx;

/* Creates the POP3 service; cfg, dir, loop, lk (the shared failed-login
 * table, NULL: none) and sasl (GNU SASL for AUTH, lib/sasl.h; NULL: AUTH
 * is not offered) must outlive it. */
struct pop3_server *pop3_server_new(const struct config *cfg, struct dir *dir, uv_loop_t *loop,
				    struct lockout *lk, struct sasl_ctx *sasl);
/* The handler to pass to net_listen(); ctx is the pop3_server. */
const struct proto_handler *pop3_server_handler(const struct pop3_server *srv);
/* Frees the service once every connection is closed and uv_run() returned. */
void pop3_server_free(struct pop3_server **srv);

#endif
