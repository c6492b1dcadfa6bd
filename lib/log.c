#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static int log_fd = 2;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
	min_level = level;
}

enum log_level log_get_level(void)
{
	return min_level;
}

void log_set_fd(int fd)
{
	log_fd = fd;
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

	if (level < min_level)
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
	while (write(log_fd, line, n) < 0 && errno == EINTR)
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
