#ifndef BUZON_BUF_H
#define BUZON_BUF_H

#include <stdarg.h>
#include <stddef.h>

/*
 * A growable byte buffer with a hard maximum.
 *
 * Invariants: data is NULL when cap is 0; otherwise data[len] is a NUL byte
 * (so the contents may be used as a C string when they hold no NUL), and
 * len < cap <= max + 1. Growing past max fails with -ENOBUFS and leaves the
 * buffer unchanged; it never aborts and never grows unbounded. max == 0 means
 * "no limit of its own" and is only for buffers whose size is bounded by
 * their caller.
 */
struct buf {
	char *data;
	size_t len, cap, max;
};

#define BUF_INIT(m) { NULL, 0, 0, (m) }

/* Sets an empty buffer that may hold at most max bytes. */
void buf_init(struct buf *b, size_t max);
/* Frees the memory and leaves an empty buffer with the same maximum. */
void buf_release(struct buf *b);
/* Empties the buffer but keeps its memory for reuse. */
void buf_reset(struct buf *b);
/* Makes room for n more bytes; 0 or -ENOBUFS. */
int buf_reserve(struct buf *b, size_t n);
/* Appends n bytes; 0 or -ENOBUFS (nothing appended). */
int buf_add(struct buf *b, const void *data, size_t n);
/* Appends a NUL-terminated string; 0 or -ENOBUFS. */
int buf_adds(struct buf *b, const char *s);
/* Appends one byte; 0 or -ENOBUFS. */
int buf_addch(struct buf *b, char c);
/* Appends formatted text; 0 or -ENOBUFS (nothing appended). */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Removes the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Returns the bytes left before the maximum is reached. */
size_t buf_room(const struct buf *b);
/* Gives up ownership of the data (NUL-terminated, possibly NULL) and empties the buffer. */
char *buf_detach(struct buf *b, size_t *len_r);

#endif
