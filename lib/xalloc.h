#ifndef BUZON_XALLOC_H
#define BUZON_XALLOC_H

#include <stddef.h>

/* Allocators that abort on out-of-memory, so callers never test for NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formats into a newly allocated string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Aborts with the location: for broken invariants, never for bad input. */
#define BUG(msg) bug_at(__FILE__, __LINE__, (msg))
void bug_at(const char *file, int line, const char *msg) __attribute__((noreturn));

/* Overwrites a secret so that it does not linger in freed memory. */
void wipe(void *p, size_t n);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
