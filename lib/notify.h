#ifndef BUZON_NOTIFY_H
#define BUZON_NOTIFY_H

/*
 * In-process change notifications between sessions, on the loop thread only:
 * a delivery (SMTP) or a change made by one IMAP/POP3 session publishes the
 * folder it touched; every session watching that folder hears of it at once
 * (IMAP IDLE, untagged EXISTS/EXPUNGE/FETCH). The key is the folder's
 * directory path ("<maildir>" for INBOX, "<maildir>/.Sent" for a folder).
 */

struct notify_sub;

/* Calls cb(ctx) whenever key is published, until notify_unsubscribe(). */
struct notify_sub *notify_subscribe(const char *key, void (*cb)(void *ctx), void *ctx);
/* Stops the callbacks and sets *sub to NULL; safe from inside a callback. */
void notify_unsubscribe(struct notify_sub **sub);
/* Tells every subscriber of key, in subscription order. */
void notify_publish(const char *key);
/* Hooks called when a key gets its first live subscription and when its
 * last one goes (lib/folder-watch.c watches the folder's directories in
 * between). Either may be NULL. */
void notify_set_hooks(void (*first)(const char *key), void (*last)(const char *key));
/* The hash of a key (FNV-1a), for tables of keys (lib/folder-watch.c). */
unsigned notify_key_hash(const char *key);
/* The number of live subscriptions (for tests). */
unsigned notify_count(void);

#endif
