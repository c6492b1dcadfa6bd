#include "server/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "lib/cidr.h"
#include "lib/lockout.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "storage/directory.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define PASSWORD_MAX 1024

static const char usage_text[] =
	"usage: buzon --config FILE domain add|del DOMAIN\n"
	"       buzon --config FILE domain list\n"
	"       buzon --config FILE user add ADDRESS [--password-stdin] [--quota SIZE] [--reuse-mail]\n"
	"       buzon --config FILE user del ADDRESS   (the Maildir moves to DATA_DIR/deleted/)\n"
	"       buzon --config FILE user list [DOMAIN]\n"
	"       buzon --config FILE user passwd ADDRESS [--password-stdin]\n"
	"       buzon --config FILE user quota ADDRESS SIZE\n"
	"       buzon --config FILE user enable|disable ADDRESS\n"
	"       buzon --config FILE user import-hash ADDRESS   (a crypt(3) hash on standard input)\n"
	"       buzon --config FILE alias add ALIAS TARGET...\n"
	"       buzon --config FILE alias del ALIAS [TARGET...]\n"
	"       buzon --config FILE alias list\n"
	"       buzon --config FILE lockout list\n"
	"       buzon --config FILE lockout clear ADDRESS\n"
	"ALIAS is an address or @DOMAIN (catch-all); SIZE is bytes or 512k, 100M, 2G; 0 or none is no quota.\n"
	"user add refuses while a Maildir exists at the user's path; --reuse-mail gives it to the\n"
	"new user (a Maildir restored from a backup).\n"
	"Passwords are read from the terminal (twice, without echo) or, with --password-stdin,\n"
	"as one line of standard input; never from the command line.\n";

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "buzon: <reason>" as one line on standard error and returns code. */
static int fail(int code, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One line, whatever the reason holds. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(stderr, "buzon: %s\n", line);
	return code;
}

static void free_password(char **p)
{
	if (*p) {
		wipe(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

/* ---- reading a password -------------------------------------------------- */

/* The terminal state to restore if a signal arrives while echo is off. */
static int tty_fd = -1;
static struct termios tty_saved;

static void tty_restore_and_die(int sig)
{
	if (tty_fd >= 0)
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Reads one line from fd into buf (without the newline); -1 on EOF before
 * any newline, -2 when the line is too long, else its length. */
static int read_line_fd(int fd, char *buf, size_t size)
{
	size_t n = 0;
	int too_long = 0;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
		else
			too_long = 1;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return too_long ? -2 : (int)n;
}

static char *read_password_tty(int confirm)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGTSTP };
	struct sigaction sa, old[ARRAY_SIZE(sigs)];
	struct termios noecho;
	char first[PASSWORD_MAX + 2], second[PASSWORD_MAX + 2];
	char *result = NULL;
	int fd, n1, n2 = 0;

	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		fail(EXIT_REFUSED, "no terminal to read the password from (use --password-stdin)");
		return NULL;
	}
	if (tcgetattr(fd, &tty_saved) < 0) {
		close(fd);
		fail(EXIT_REFUSED, "cannot read the terminal settings: %s", strerror(errno));
		return NULL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tty_restore_and_die;
	sigemptyset(&sa.sa_mask);
	tty_fd = fd;
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, &old[i]);
	noecho = tty_saved;
	noecho.c_lflag &= (tcflag_t)~(ECHO | ECHOE | ECHOK);
	noecho.c_lflag |= ECHONL;
	tcsetattr(fd, TCSAFLUSH, &noecho);

	dprintf(fd, "New password: ");
	n1 = read_line_fd(fd, first, sizeof(first));
	if (n1 > 0 && confirm) {
		dprintf(fd, "Retype new password: ");
		n2 = read_line_fd(fd, second, sizeof(second));
	}

	tcsetattr(fd, TCSAFLUSH, &tty_saved);
	tty_fd = -1;
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &old[i], NULL);
	close(fd);

	if (n1 == -1)
		fail(EXIT_REFUSED, "no password given");
	else if (n1 == -2 || n2 == -2)
		fail(EXIT_REFUSED, "password is longer than %d characters", PASSWORD_MAX);
	else if (n1 == 0)
		fail(EXIT_REFUSED, "empty password");
	else if (confirm && (n2 != n1 || memcmp(first, second, (size_t)n1) != 0))
		fail(EXIT_REFUSED, "passwords do not match");
	else
		result = xstrdup(first);
	wipe(first, sizeof(first));
	wipe(second, sizeof(second));
	return result;
}

static char *read_password_stdin(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	char *result = NULL;

	n = getline(&line, &cap, stdin);
	if (n < 0) {
		fail(EXIT_REFUSED, "no password on standard input");
	} else {
		size_t len = (size_t)n;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len == 0)
			fail(EXIT_REFUSED, "empty password");
		else if (strlen(line) != len)
			fail(EXIT_REFUSED, "password contains a NUL byte");
		else if (len > PASSWORD_MAX)
			fail(EXIT_REFUSED, "password is longer than %d characters", PASSWORD_MAX);
		else
			result = xstrdup(line);
	}
	if (line)
		wipe(line, cap);
	free(line);
	return result;
}

char *cli_read_password(int from_stdin, int confirm)
{
	return from_stdin ? read_password_stdin() : read_password_tty(confirm);
}

/* ---- arguments ------------------------------------------------------------ */

enum opt_flags {
	OPT_PASSWORD_STDIN = 1 << 0,
	OPT_QUOTA = 1 << 1,
	OPT_REUSE_MAIL = 1 << 2,
};

#define MAX_POS 64

struct args {
	const char *verb;          /* "add", "del", ... */
	const char *pos[MAX_POS];  /* what follows the verb, options removed */
	int n_pos;
	unsigned opts;             /* enum opt_flags seen */
	const char *quota;
};

/* Splits argv (after the command and verb) into positionals and options. */
static int parse_args(int argc, char **argv, struct args *a)
{
	int only_pos = 0;

	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		if (!only_pos && strcmp(s, "--") == 0) {
			only_pos = 1;
		} else if (!only_pos && strcmp(s, "--password-stdin") == 0) {
			a->opts |= OPT_PASSWORD_STDIN;
		} else if (!only_pos && strcmp(s, "--reuse-mail") == 0) {
			a->opts |= OPT_REUSE_MAIL;
		} else if (!only_pos && strcmp(s, "--quota") == 0) {
			if (i + 1 >= argc)
				return fail(EXIT_USAGE, "--quota needs a SIZE");
			a->opts |= OPT_QUOTA;
			a->quota = argv[++i];
		} else if (!only_pos && strncmp(s, "--quota=", 8) == 0) {
			a->opts |= OPT_QUOTA;
			a->quota = s + 8;
		} else if (!only_pos && s[0] == '-' && s[1] != '\0') {
			return fail(EXIT_USAGE, "unknown option '%s' (see buzon help)", s);
		} else {
			if (a->n_pos == MAX_POS)
				return fail(EXIT_USAGE, "too many arguments");
			a->pos[a->n_pos++] = s;
		}
	}
	return 0;
}

/* Refuses options the verb does not take and a wrong number of arguments. */
static int check_args(const struct args *a, const char *cmd, unsigned allowed, int min, int max,
		      const char *synopsis)
{
	if (a->opts & ~allowed & OPT_PASSWORD_STDIN)
		return fail(EXIT_USAGE, "%s %s does not take --password-stdin", cmd, a->verb);
	if (a->opts & ~allowed & OPT_QUOTA)
		return fail(EXIT_USAGE, "%s %s does not take --quota", cmd, a->verb);
	if (a->opts & ~allowed & OPT_REUSE_MAIL)
		return fail(EXIT_USAGE, "%s %s does not take --reuse-mail", cmd, a->verb);
	if (a->n_pos < min || (max >= 0 && a->n_pos > max))
		return fail(EXIT_USAGE, "usage: buzon --config FILE %s %s%s%s", cmd, a->verb,
			    *synopsis ? " " : "", synopsis);
	return 0;
}

static int parse_quota(const char *s, uint64_t *q)
{
	if (strcmp(s, "none") == 0 || strcmp(s, "unlimited") == 0) {
		*q = 0;
		return 0;
	}
	if (config_parse_size(s, q) < 0)
		return fail(EXIT_USAGE, "invalid size '%s' (bytes, or a number with k, M or G)", s);
	return 0;
}

static void format_size(uint64_t v, char *out, size_t outlen)
{
	static const struct {
		uint64_t unit;
		const char *suffix;
	} units[] = { { 1ULL << 30, "G" }, { 1ULL << 20, "M" }, { 1ULL << 10, "k" } };

	if (v == 0) {
		snprintf(out, outlen, "none");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (v % units[i].unit == 0) {
			snprintf(out, outlen, "%" PRIu64 "%s", v / units[i].unit, units[i].suffix);
			return;
		}
	}
	snprintf(out, outlen, "%" PRIu64, v);
}

/* Lower-cases a domain for messages (the directory checks it properly). */
static void lower_copy(const char *s, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < outlen; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	out[i] = '\0';
}

/* Checks an address and that it is (want_user = 1) or is not (0) a user. */
static int check_user(struct dir *d, const char *address, int want_user, char *canon, size_t canonlen)
{
	char err[512], domain[300];
	int r;

	if (dir_normalize_address(address, canon, canonlen, err, sizeof(err)) < 0)
		return fail(EXIT_REFUSED, "%s", err);
	lower_copy(strchr(canon, '@') + 1, domain, sizeof(domain));
	r = dir_domain_exists(d, domain);
	if (r < 0)
		return fail(EXIT_REFUSED, "cannot read the user directory: %s", strerror(-r));
	if (r == 0)
		return fail(EXIT_REFUSED, "unknown domain %s", domain);
	r = dir_user_exists(d, canon);
	if (r < 0)
		return fail(EXIT_REFUSED, "cannot read the user directory: %s", strerror(-r));
	if (r && !want_user)
		return fail(EXIT_REFUSED, "user %s already exists", canon);
	if (!r && want_user)
		return fail(EXIT_REFUSED, "unknown user %s", canon);
	return 0;
}

/* ---- domain ---------------------------------------------------------------- */

static void print_domain(void *ctx, const char *domain)
{
	(void)ctx;
	printf("%s\n", domain);
}

static int cmd_domain(struct dir *d, struct args *a)
{
	char err[512], name[300];
	int r;

	if (strcmp(a->verb, "add") == 0 || strcmp(a->verb, "del") == 0) {
		int add = a->verb[0] == 'a';
		if ((r = check_args(a, "domain", 0, 1, 1, "DOMAIN")))
			return r;
		r = add ? dir_domain_add(d, a->pos[0], err, sizeof(err)) : dir_domain_del(d, a->pos[0], err, sizeof(err));
		if (r < 0)
			return fail(EXIT_REFUSED, "%s", err);
		lower_copy(a->pos[0], name, sizeof(name));
		printf("%s domain %s\n", add ? "added" : "deleted", name);
		return 0;
	}
	if (strcmp(a->verb, "list") == 0) {
		if ((r = check_args(a, "domain", 0, 0, 0, "")))
			return r;
		r = dir_domain_list(d, print_domain, NULL);
		if (r < 0)
			return fail(EXIT_REFUSED, "cannot list domains: %s", strerror(-r));
		return 0;
	}
	return fail(EXIT_USAGE, "unknown command 'domain %s' (add, del, list)", a->verb);
}

/* ---- user ------------------------------------------------------------------ */

static void print_user(void *ctx, const struct dir_user *u)
{
	char q[32];

	(void)ctx;
	format_size(u->quota, q, sizeof(q));
	printf("%s\tquota=%s\t%s\n", u->address, q, u->enabled ? "enabled" : "disabled");
}

static int user_add(struct dir *d, struct args *a)
{
	char err[512], canon[320], q[32], path[4096];
	uint64_t quota = 0;
	struct stat st;
	char *pw;
	int r, reused;

	if ((r = check_args(a, "user", OPT_PASSWORD_STDIN | OPT_QUOTA | OPT_REUSE_MAIL, 1, 1,
			    "ADDRESS [--password-stdin] [--quota SIZE] [--reuse-mail]")))
		return r;
	if (a->quota && (r = parse_quota(a->quota, &quota)))
		return r;
	/* Everything that can be refused is refused before the prompt. */
	if ((r = check_user(d, a->pos[0], 0, canon, sizeof(canon))))
		return r;
	if (dir_user_maildir(d, canon, path, sizeof(path)) < 0)
		return fail(EXIT_REFUSED, "the maildir path of %s is too long", canon);
	reused = lstat(path, &st) == 0;
	if (reused && !(a->opts & OPT_REUSE_MAIL))
		return fail(EXIT_REFUSED, "a maildir already exists at %s (mail of an earlier user?): move it away, "
			    "or give --reuse-mail to hand it to %s", path, canon);
	pw = cli_read_password(a->opts & OPT_PASSWORD_STDIN, 1);
	if (!pw)
		return EXIT_REFUSED;
	r = dir_user_add_flags(d, canon, pw, quota, a->opts & OPT_REUSE_MAIL ? DIR_USER_REUSE_MAIL : 0, err,
			       sizeof(err));
	free_password(&pw);
	if (r < 0)
		return fail(EXIT_REFUSED, "%s", err);
	format_size(quota, q, sizeof(q));
	printf("added user %s (quota %s)%s%s\n", canon, q, reused ? "; it keeps the mail in " : "",
	       reused ? path : "");
	return 0;
}

static int user_passwd(struct dir *d, struct args *a)
{
	char err[512], canon[320];
	char *pw;
	int r;

	if ((r = check_args(a, "user", OPT_PASSWORD_STDIN, 1, 1, "ADDRESS [--password-stdin]")))
		return r;
	if ((r = check_user(d, a->pos[0], 1, canon, sizeof(canon))))
		return r;
	pw = cli_read_password(a->opts & OPT_PASSWORD_STDIN, 1);
	if (!pw)
		return EXIT_REFUSED;
	r = dir_user_passwd(d, canon, pw, err, sizeof(err));
	free_password(&pw);
	if (r < 0)
		return fail(EXIT_REFUSED, "%s", err);
	printf("changed the password of %s\n", canon);
	return 0;
}

static int user_import_hash(struct dir *d, struct args *a)
{
	char err[512], canon[320];
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r;

	if ((r = check_args(a, "user", 0, 1, 1, "ADDRESS")))
		return r;
	if ((r = check_user(d, a->pos[0], 1, canon, sizeof(canon))))
		return r;
	n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		return fail(EXIT_REFUSED, "no hash on standard input");
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	r = dir_user_set_hash(d, canon, line, err, sizeof(err));
	wipe(line, cap);
	free(line);
	if (r < 0)
		return fail(EXIT_REFUSED, "%s", err);
	printf("set the password hash of %s\n", canon);
	return 0;
}

static int cmd_user(struct dir *d, struct args *a)
{
	char err[512], canon[320], q[32], moved[4096];
	uint64_t quota;
	int r;

	if (strcmp(a->verb, "add") == 0)
		return user_add(d, a);
	if (strcmp(a->verb, "passwd") == 0)
		return user_passwd(d, a);
	if (strcmp(a->verb, "import-hash") == 0)
		return user_import_hash(d, a);
	if (strcmp(a->verb, "del") == 0) {
		if ((r = check_args(a, "user", 0, 1, 1, "ADDRESS")))
			return r;
		if ((r = check_user(d, a->pos[0], 1, canon, sizeof(canon))))
			return r;
		r = dir_user_del(d, canon, moved, sizeof(moved), err, sizeof(err));
		if (r < 0)
			return fail(EXIT_REFUSED, "%s", err);
		printf("deleted user %s", canon);
		if (r > 0)
			printf(" and %d alias %s to it", r, r == 1 ? "entry pointing" : "entries pointing");
		if (moved[0])
			printf("; its mail was moved to %s\n", moved);
		else
			printf("; it had no maildir\n");
		return 0;
	}
	if (strcmp(a->verb, "list") == 0) {
		if ((r = check_args(a, "user", 0, 0, 1, "[DOMAIN]")))
			return r;
		if (a->n_pos == 1) {
			r = dir_domain_exists(d, a->pos[0]);
			if (r == 0)
				return fail(EXIT_REFUSED, "unknown domain %s", a->pos[0]);
		}
		r = dir_user_list(d, a->n_pos ? a->pos[0] : NULL, print_user, NULL);
		if (r < 0)
			return fail(EXIT_REFUSED, "cannot list users: %s", strerror(-r));
		return 0;
	}
	if (strcmp(a->verb, "quota") == 0) {
		if ((r = check_args(a, "user", 0, 2, 2, "ADDRESS SIZE")))
			return r;
		if ((r = parse_quota(a->pos[1], &quota)))
			return r;
		if ((r = check_user(d, a->pos[0], 1, canon, sizeof(canon))))
			return r;
		if (dir_user_set_quota(d, canon, quota, err, sizeof(err)) < 0)
			return fail(EXIT_REFUSED, "%s", err);
		format_size(quota, q, sizeof(q));
		printf("set the quota of %s to %s\n", canon, q);
		return 0;
	}
	if (strcmp(a->verb, "enable") == 0 || strcmp(a->verb, "disable") == 0) {
		int enable = a->verb[0] == 'e';
		if ((r = check_args(a, "user", 0, 1, 1, "ADDRESS")))
			return r;
		if ((r = check_user(d, a->pos[0], 1, canon, sizeof(canon))))
			return r;
		if (dir_user_set_enabled(d, canon, enable, err, sizeof(err)) < 0)
			return fail(EXIT_REFUSED, "%s", err);
		printf("%s user %s\n", enable ? "enabled" : "disabled", canon);
		return 0;
	}
	return fail(EXIT_USAGE, "unknown command 'user %s' (add, del, list, passwd, quota, enable, disable, import-hash)",
		    a->verb);
}

/* ---- alias ----------------------------------------------------------------- */

static void print_alias(void *ctx, const char *alias, const char *target)
{
	(void)ctx;
	printf("%s -> %s\n", alias, target);
}

/* The alias as the directory stores it, for messages. */
static void alias_name(const char *alias, char *out, size_t outlen)
{
	char err[512];

	if (alias[0] == '@' || dir_normalize_address(alias, out, outlen, err, sizeof(err)) < 0)
		lower_copy(alias, out, outlen);
}

static int cmd_alias(struct dir *d, struct args *a)
{
	char err[512], canon[320], name[320];
	int r;

	if (strcmp(a->verb, "add") == 0) {
		if ((r = check_args(a, "alias", 0, 2, -1, "ALIAS TARGET...")))
			return r;
		/* Check every target before adding any. */
		for (int i = 1; i < a->n_pos; i++)
			if ((r = check_user(d, a->pos[i], 1, canon, sizeof(canon))))
				return r;
		alias_name(a->pos[0], name, sizeof(name));
		for (int i = 1; i < a->n_pos; i++) {
			if (dir_alias_add(d, a->pos[0], a->pos[i], err, sizeof(err)) < 0)
				return fail(EXIT_REFUSED, "%s", err);
			dir_normalize_address(a->pos[i], canon, sizeof(canon), NULL, 0);
			printf("added alias %s -> %s\n", name, canon);
		}
		return 0;
	}
	if (strcmp(a->verb, "del") == 0) {
		if ((r = check_args(a, "alias", 0, 1, -1, "ALIAS [TARGET...]")))
			return r;
		alias_name(a->pos[0], name, sizeof(name));
		if (a->n_pos == 1) {
			r = dir_alias_del(d, a->pos[0], NULL, err, sizeof(err));
			if (r < 0)
				return fail(EXIT_REFUSED, "%s", err);
			printf("deleted alias %s (%d %s)\n", name, r, r == 1 ? "target" : "targets");
			return 0;
		}
		for (int i = 1; i < a->n_pos; i++) {
			if (dir_alias_del(d, a->pos[0], a->pos[i], err, sizeof(err)) < 0)
				return fail(EXIT_REFUSED, "%s", err);
			dir_normalize_address(a->pos[i], canon, sizeof(canon), NULL, 0);
			printf("deleted alias %s -> %s\n", name, canon);
		}
		return 0;
	}
	if (strcmp(a->verb, "list") == 0) {
		if ((r = check_args(a, "alias", 0, 0, 0, "")))
			return r;
		r = dir_alias_list(d, print_alias, NULL);
		if (r < 0)
			return fail(EXIT_REFUSED, "cannot list aliases: %s", strerror(-r));
		return 0;
	}
	return fail(EXIT_USAGE, "unknown command 'alias %s' (add, del, list)", a->verb);
}

/* ---- lockout ---------------------------------------------------------------- */

struct lockout_list_ctx {
	const struct config *cfg;
	uint64_t now;
	unsigned n;
};

/* One line of `lockout list`: the failures as a running server counts them
 * now (decayed with [auth] auth_delay_decay), those of the lockout window,
 * and the end of a lockout in UTC. */
static void lockout_line(void *ctx, const struct lockout_record *r)
{
	struct lockout_list_ctx *c = ctx;
	const struct auth_config *a = &c->cfg->auth;
	unsigned f = r->failures, w = r->window_failures;
	char until[64] = "-";

	if (a->delay_decay && c->now > r->last_ms) {
		uint64_t steps = (c->now - r->last_ms) / ((uint64_t)a->delay_decay * 1000);
		f = steps >= f ? 0 : f - (unsigned)steps;
	}
	if (!r->window_start_ms || c->now - r->window_start_ms >= (uint64_t)a->lockout_window * 1000)
		w = 0;
	if (r->locked_until_ms > c->now) {
		time_t t = (time_t)(r->locked_until_ms / 1000);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	} else if (!f && !w) {
		return;   /* nothing left of it: a server would not keep it */
	}
	if (c->n++ == 0)
		printf("%-40s %8s %9s  %s\n", "ADDRESS", "FAILURES", "IN_WINDOW", "LOCKED_UNTIL");
	printf("%-40s %8u %9u  %s\n", r->address, f, w, until);
}

static int cmd_lockout(const struct config *cfg, struct dir *d, struct args *a)
{
	int r;

	if (strcmp(a->verb, "list") == 0) {
		struct lockout_list_ctx c = { .cfg = cfg, .now = lockout_now_ms() };

		if ((r = check_args(a, "lockout", 0, 0, 0, "")) != 0)
			return r;
		if (dir_lockout_list(d, lockout_line, &c) < 0)
			return fail(EXIT_REFUSED, "cannot read the failed-login table");
		if (c.n == 0)
			printf("no address has failed logins\n");
		return 0;
	}
	if (strcmp(a->verb, "clear") == 0) {
		struct cidr addr;
		char text[64], *slash;

		if ((r = check_args(a, "lockout", 0, 1, 1, "ADDRESS")) != 0)
			return r;
		/* written as the server writes a client address (::ffff:a.b.c.d as a.b.c.d) */
		if (cidr_parse_addr(a->pos[0], &addr) < 0)
			return fail(EXIT_USAGE, "'%s' is not an IPv4 or IPv6 address", a->pos[0]);
		cidr_format(&addr, text, sizeof(text));
		if ((slash = strchr(text, '/')))
			*slash = '\0';
		r = dir_lockout_clear(d, text);
		if (r < 0)
			return fail(EXIT_REFUSED, "cannot clear %s in the failed-login table", text);
		printf("%s: %s; a running server forgets it within %d seconds (at once on SIGHUP)\n", text,
		       r ? "cleared" : "had no failed logins stored", 5);
		return 0;
	}
	return fail(EXIT_USAGE, "unknown command 'lockout %s' (list, clear)", a->verb);
}

/* ---- entry ------------------------------------------------------------------ */

int cli_main(const struct config *cfg, int argc, char **argv)
{
	struct args a;
	struct dir *d = NULL;
	char err[512];
	int r;

	if (argc < 1)
		return fail(EXIT_USAGE, "no command (domain, user or alias; see buzon help)");
	if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(argv[0], "domain") && strcmp(argv[0], "user") && strcmp(argv[0], "alias") &&
	    strcmp(argv[0], "lockout"))
		return fail(EXIT_USAGE, "unknown command '%s' (domain, user, alias or lockout; see buzon help)",
			    argv[0]);
	if (argc < 2)
		return fail(EXIT_USAGE, "'%s' needs a subcommand (see buzon help)", argv[0]);

	memset(&a, 0, sizeof(a));
	a.verb = argv[1];
	r = parse_args(argc - 2, argv + 2, &a);
	if (r)
		return r;

	/* The admin wants answers on the terminal, not the server's info log. */
	if (log_get_level() < LOG_WARN && cfg->log_level != LOG_DEBUG)
		log_set_level(LOG_WARN);
	if (dir_open(cfg->data_dir, &d, err, sizeof(err)) < 0)
		return fail(EXIT_REFUSED, "cannot open the user directory: %s", err);
	if (strcmp(argv[0], "domain") == 0)
		r = cmd_domain(d, &a);
	else if (strcmp(argv[0], "user") == 0)
		r = cmd_user(d, &a);
	else if (strcmp(argv[0], "lockout") == 0)
		r = cmd_lockout(cfg, d, &a);
	else
		r = cmd_alias(d, &a);
	dir_close(&d);
	if (fflush(stdout) != 0 && r == 0)
		r = fail(EXIT_REFUSED, "cannot write the output: %s", strerror(errno));
	return r;
}
