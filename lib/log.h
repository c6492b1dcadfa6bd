#ifndef BUZON_LOG_H
#define BUZON_LOG_H

#include <stddef.h>

/*
 * key=value log lines on standard error (or the file of [server] log_file),
 * one write(2) per line so that lines from worker threads never interleave:
 *   2026-11-28T18:53:08Z level=info comp=smtp sid=3f2a0c1d9e77 connect client=127.0.0.1
 * Message text and secrets are never passed here; callers log metadata only.
 */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the lowest level that is written (default LOG_INFO). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug", "info", "warn" or "error"; 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *level_r);
/* Sends lines to fd instead of standard error (tests capture them). */
void log_set_fd(int fd);
/* Sends lines to the file at path ([server] log_file), opened for appending
 * (created mode 0600; a symbolic link is refused). 0, or a negative errno
 * with the reason in err. Call it before worker threads start. */
int log_open_file(const char *path, char *err, size_t errlen);
/* Opens the log file again by its name (after logrotate renamed it) and
 * sends the following lines there; safe while other threads log. 1 when
 * reopened (and logged), 0 when logs go to standard error (nothing to do),
 * a negative errno when the file cannot be opened: lines keep going to the
 * old file, with one error line there. */
int log_reopen(void);

void log_msg(enum log_level level, const char *comp, const char *sid, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_at(lvl, comp, sid, ...) \
	do { if ((lvl) >= log_get_level()) log_msg((lvl), (comp), (sid), __VA_ARGS__); } while (0)
#define log_debug(comp, sid, ...) log_at(LOG_DEBUG, comp, sid, __VA_ARGS__)
#define log_info(comp, sid, ...) log_at(LOG_INFO, comp, sid, __VA_ARGS__)
#define log_warn(comp, sid, ...) log_at(LOG_WARN, comp, sid, __VA_ARGS__)
#define log_error(comp, sid, ...) log_at(LOG_ERROR, comp, sid, __VA_ARGS__)

/* Copies s into out (size n) with anything outside printable ASCII, spaces and
 * quotes replaced, so that client-supplied text cannot forge log fields. */
const char *log_safe(const char *s, char *out, unsigned n);

#endif
