#ifndef BUZON_SMTP_SERVER_H
#define BUZON_SMTP_SERVER_H

#include "lib/config.h"
#include "lib/net.h"
#include "storage/directory.h"

/*
 * The glue between connections (lib/net.h), the SMTP session state machine
 * (server/smtp-session.h) and storage: recipient checks and deliveries run on
 * the libuv threadpool, never on the loop thread.
 */
struct smtp_server;

struct smtp_server *smtp_server_new(const struct config *cfg, struct dir *dir, uv_loop_t *loop);
/* The handler to pass to net_listen(); ctx is the smtp_server. */
const struct proto_handler *smtp_server_handler(const struct smtp_server *srv);
void smtp_server_free(struct smtp_server **srv);

#endif
