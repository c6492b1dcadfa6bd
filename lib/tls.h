#ifndef BUZON_TLS_H
#define BUZON_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/tls-creds.h"
#include "lib/tls-types.h"

/*
 * The server side of one TLS connection, over memory: GnuTLS on the loop
 * thread with a non-blocking pull/push pair and no socket. Ciphertext from
 * the client goes in with tls_engine_feed(); ciphertext for the client comes
 * out through the output callback, synchronously, from inside the engine
 * call that produced it (a handshake step, a send, a goodbye). No call ever
 * blocks: when GnuTLS needs more bytes the call says so and the caller feeds
 * more when they arrive.
 *
 * lib/net.c's TLS transport is the one user in the server; the fuzzer
 * tests/fuzz/fuzz-tls-records.c drives it with a GnuTLS client the same way.
 *
 * Memory: the engine holds the GnuTLS session and the ciphertext fed but
 * not yet taken by GnuTLS (no memory once it is all taken); it holds a
 * reference to its credentials, so a reload that replaces them leaves this
 * connection on the old ones.
 */

struct tls_engine;

/* Ciphertext to send to the client; the data is valid during the call. */
typedef void (*tls_output_fn)(void *arg, const void *data, size_t len);

/* The most ciphertext the engine holds before the caller should stop
 * reading: a whole record (16 KiB plus its header and expansion) and some. */
#define TLS_ENGINE_IN_MAX (32 * 1024)

/* A server engine on creds (referenced) with output going to out(arg).
 * 0 or a negative code with GnuTLS's reason in err. */
int tls_engine_new(struct tls_creds *creds, tls_output_fn out, void *arg, struct tls_engine **r,
		   char *err, size_t errlen);
/* Frees the engine (and its reference to the credentials); NULLs *e. */
void tls_engine_free(struct tls_engine **e);

/* Adds len octets received from the client; 0 or -ENOBUFS when more than
 * TLS_ENGINE_IN_MAX would be held (the caller reads no more than that). */
int tls_engine_feed(struct tls_engine *e, const void *data, size_t len);
/* Octets fed and not yet taken by GnuTLS. */
size_t tls_engine_buffered(const struct tls_engine *e);

/* Runs the handshake as far as the fed bytes allow: 1 done, 0 waiting for
 * more bytes, negative on failure (then an alert has been output when one
 * applies and tls_engine_error() says why). */
int tls_engine_handshake(struct tls_engine *e);
/* Decrypts into buf: the count (> 0), 0 at the client's close_notify,
 * -EAGAIN when the fed bytes hold no complete record, another negative code
 * on failure (tls_engine_error()). */
ssize_t tls_engine_recv(struct tls_engine *e, void *buf, size_t len);
/* 1 when decrypted bytes are waiting in GnuTLS (from a record already taken),
 * so tls_engine_recv() gives them without new input. */
int tls_engine_pending(const struct tls_engine *e);
/* Encrypts len octets to the output; 0 or negative (tls_engine_error()). */
int tls_engine_send(struct tls_engine *e, const void *data, size_t len);
/* Outputs close_notify; nothing more may be sent. */
void tls_engine_bye(struct tls_engine *e);

/* What the handshake agreed (once tls_engine_handshake() returned 1). */
const struct tls_info *tls_engine_info(const struct tls_engine *e);
/* GnuTLS's text for the last failure ("" if none). */
const char *tls_engine_error(const struct tls_engine *e);
/* 1 when the handshake resumed an earlier session (a session ticket). */
int tls_engine_resumed(const struct tls_engine *e);

#endif
