#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Read by every thread on every line, written by the loop thread (or a
 * test): atomics, so that a change is never a data race. */
static _Atomic int min_level = LOG_INFO;
static atomic_int log_fd = 2;

/*
 * The log file of [server] log_file, or NULL for standard error. Set once at
 * start (log_open_file) and read by log_reopen on the loop thread only.
 * While a file is open, log_fd is a descriptor of our own that keeps its
 * number for the life of the process: log_reopen() puts the new file behind
 * that same number with dup2(), which the kernel does atomically, so a worker
 * thread's write() goes wholly to the old file or wholly to the new one, and
 * never to a closed (or reused) descriptor. No lock is needed.
 */
static char *log_path;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&min_level, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&min_level, memory_order_relaxed);
}

void log_set_fd(int fd)
{
	atomic_store(&log_fd, fd);
}

static int open_log(const char *path)
{
	/* O_NOFOLLOW: the file is opened as root at start; a symlink planted in
	 * a log directory must not make us append to another file. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);

	return fd < 0 ? -errno : fd;
}

int log_open_file(const char *path, char *err, size_t errlen)
{
	int fd = open_log(path);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open the log file %s: %s", path, strerror(-fd));
		return fd;
	}
	if (log_path) {
		/* Already open (a second call): keep the descriptor number. */
		if (dup2(fd, atomic_load(&log_fd)) < 0) {
			int e = errno;
			close(fd);
			snprintf(err, errlen, "cannot open the log file %s: %s", path, strerror(e));
			return -e;
		}
		close(fd);
		free(log_path);
	} else {
		atomic_store(&log_fd, fd);
	}
	log_path = strdup(path);
	if (!log_path)
		abort();
	return 0;
}

int log_reopen(void)
{
	char safe[256];
	int fd, r;

	if (!log_path)
		return 0;
	log_safe(log_path, safe, sizeof(safe));
	fd = open_log(log_path);
	if (fd < 0) {
		/* Keep writing to the file we have: a line in the old file says why. */
		log_error("log", NULL, "cannot reopen the log file path=%s error=%s", safe, strerror(-fd));
		return fd;
	}
	r = dup2(fd, atomic_load(&log_fd)) < 0 ? -errno : 0;
	close(fd);
	if (r < 0) {
		log_error("log", NULL, "cannot reopen the log file path=%s error=%s", safe, strerror(-r));
		return r;
	}
	log_info("log", NULL, "log file reopened path=%s", safe);
	return 1;
}

int log_parse_level(const char *s, enum log_level *level_r)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_msg(enum log_level level, const char *comp, const char *sid, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;
	va_list ap;

	if (level < log_get_level())
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ", &tm);
	r = snprintf(line + n, sizeof(line) - n, " level=%s comp=%s", level_names[level], comp);
	n += (size_t)r;
	if (sid) {
		r = snprintf(line + n, sizeof(line) - n, " sid=%s", sid);
		n += (size_t)r;
	}
	line[n++] = ' ';
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (r < 0)
		r = 0;
	n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	while (write(atomic_load_explicit(&log_fd, memory_order_relaxed), line, n) < 0 && errno == EINTR)
		;
}

const char *log_safe(const char *s, char *out, unsigned n)
{
	unsigned i = 0;

	if (!s)
		s = "";
	for (; *s && i + 1 < n; s++) {
		unsigned char c = (unsigned char)*s;
		out[i++] = (c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=') ? (char)c : '?';
	}
	out[i] = '\0';
	return out;
}
