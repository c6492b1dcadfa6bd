/*
 * buzon: the daemon and the admin CLI in one binary.
 *
 *   buzon [--config FILE] serve | check | demo | domain ... | user ... | alias ...
 *
 * Without --config the embedded default below is used: data under ./var,
 * SMTP on 127.0.0.1:2525.
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/folder-watch.h"
#include "lib/log.h"
#include "lib/net.h"
#include "lib/xalloc.h"
#include "server/cli.h"
#include "server/smtp-server.h"
#include "imap/imap-server.h"
#include "pop3/pop3-server.h"
#include "storage/directory.h"
#include "storage/maildir.h"

static const char default_config[] =
	"[server]\n"
	"hostname = mail.example.test\n"
	"data_dir = ./var\n"
	"\n"
	"[listener \"mx\"]\n"
	"protocol = smtp\n"
	"address = 127.0.0.1:2525\n"
	"\n"
	"[listener \"pop3\"]\n"
	"protocol = pop3\n"
	"address = 127.0.0.1:1110\n"
	"\n"
	"[listener \"imap\"]\n"
	"protocol = imap\n"
	"address = 127.0.0.1:1143\n";

#define DEMO_DOMAIN "example.test"
#define DEMO_USER "demo@example.test"

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: buzon [--config FILE] COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  serve                      run the server in the foreground (logs to stderr)\n"
		"  check                      validate the configuration and exit\n"
		"  demo                       set up the demo domain and user, then serve\n"
		"  domain add|del|list [DOMAIN]\n"
		"  user add|del|list|passwd [ADDRESS] [--password-stdin] [--quota SIZE]\n"
		"  user quota ADDRESS SIZE | user enable|disable ADDRESS\n"
		"  alias add|del|list [ALIAS] [TARGET...]\n"
		"  version\n"
		"\n"
		"Without --config, the embedded default is used (data in ./var, SMTP on 127.0.0.1:2525,\n"
		"POP3 on 127.0.0.1:1110, IMAP on 127.0.0.1:1143).\n");
}

/* mkdir -p with mode 0700 for what it creates. */
static int mkdirs(const char *path)
{
	char *p = xstrdup(path);
	int r = 0;

	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0700) < 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return r;
}

static int open_directory(const struct config *cfg, struct dir **dir_r)
{
	char err[512];
	int r = mkdirs(cfg->data_dir);

	if (r < 0) {
		fprintf(stderr, "buzon: %s:%s: cannot create data_dir: %s\n", cfg->path, cfg->data_dir,
			strerror(-r));
		return -1;
	}
	if (dir_open(cfg->data_dir, dir_r, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		return -1;
	}
	return 0;
}

/* ---- serve ---- */

struct daemon {
	uv_loop_t *loop;
	const struct config *cfg;
	struct net *net;
	uv_signal_t sigterm, sigint, sighup;
	int stopping;
	/* the allocator: see heap_tuning() */
	uv_timer_t trim_timer;
	uv_work_t trim_work;
	int trim_running;
	uint64_t trim_seen, trim_done;   /* net_reads() at the last tick, at the last trim */
};

/*
 * glibc malloc, set for thousands of long-lived sessions (issue 4: 5,000 in
 * IDLE within 100 MiB). Worker threads open SQLite index connections (each
 * SELECT, each IDLE wake-up) whose large short-lived blocks (the page
 * cache, ~87 KiB a connection) land in the worker arenas between small
 * blocks that live as long as a session; freed, they stay resident, as
 * glibc only gives back the top of an arena. Measured with 1,000 IDLE
 * sessions (bench/imap-bench.py idle): 37 to 54 KiB of RSS per session
 * without the two settings below, 17 with them.
 *
 * - A fixed mmap threshold of 64 KiB: those blocks are mapped and go back
 *   to the kernel at free(). glibc's own threshold starts at 128 KiB and
 *   rises (up to 32 MiB) each time a mapped block is freed; setting it
 *   stops the rise.
 * - malloc_trim() after a second without input (trim_tick): it gives back
 *   the free pages inside the arenas.
 *
 * M_ARENA_MAX = 1 was measured too and did worse.
 */
static void heap_tuning(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 64 * 1024);
#endif
}

static void trim_work_cb(uv_work_t *w)
{
	(void)w;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void trim_after_cb(uv_work_t *w, int status)
{
	struct daemon *d = w->data;

	(void)status;
	d->trim_running = 0;
}

/* Every second: after a second in which no read brought bytes, and if any
 * did since the last trim, trim the heap on a worker thread (a few ms with
 * thousands of sessions; the loop thread only waits for an arena lock).
 * A busy server reuses its free memory anyway; an idle one is not woken. */
static void trim_tick(uv_timer_t *t)
{
	struct daemon *d = t->data;
	uint64_t reads = net_reads(d->net);

	if (reads != d->trim_seen) {
		d->trim_seen = reads;
		return;
	}
	if (reads == d->trim_done || d->trim_running)
		return;
	d->trim_done = reads;
	d->trim_work.data = d;
	if (uv_queue_work(d->loop, &d->trim_work, trim_work_cb, trim_after_cb) == 0)
		d->trim_running = 1;
}

static void net_stopped(void *arg)
{
	struct daemon *d = arg;

	log_info("server", NULL, "stopped accepting; all sessions closed");
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sighup, NULL);
	uv_close((uv_handle_t *)&d->trim_timer, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP) {
		log_info("server", NULL, "SIGHUP ignored: restart buzon to apply a new configuration");
		return;
	}
	if (d->stopping) {
		log_warn("server", NULL, "second signal=%d: exiting now", signum);
		exit(1);
	}
	d->stopping = 1;
	log_info("server", NULL, "signal=%s stopping shutdown_timeout=%us", signum == SIGTERM ? "TERM" : "INT",
		 d->cfg->shutdown_timeout);
	net_shutdown(d->net, d->cfg->shutdown_timeout * 1000, net_stopped, d);
}

static int serve(const struct config *cfg, const char *banner)
{
	struct daemon d;
	struct dir *dir = NULL;
	struct smtp_server *smtp = NULL;
	struct pop3_server *pop3 = NULL;
	struct imap_server *imap = NULL;
	struct net_limits lim = {
		.max_connections = cfg->max_connections,
		.max_connections_per_ip = cfg->max_connections_per_ip,
		.input_max = 4096,
	};
	char err[512], bound[80], tp[16];
	int r, lock_fd;

	log_set_level(cfg->log_level);
	heap_tuning();
	signal(SIGPIPE, SIG_IGN);
	snprintf(tp, sizeof(tp), "%u", cfg->delivery_threads);
	setenv("UV_THREADPOOL_SIZE", tp, 1);
	if (open_directory(cfg, &dir) < 0)
		return 1;
	/* One server per data_dir: the lock dies with the process. */
	snprintf(err, sizeof(err), "%s/buzon.pid", cfg->data_dir);
	lock_fd = open(err, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "buzon: %s: data_dir %s is in use by another buzon server\n", cfg->path,
			cfg->data_dir);
		dir_close(&dir);
		return 1;
	}
	if (ftruncate(lock_fd, 0) == 0)
		dprintf(lock_fd, "%ld\n", (long)getpid());

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.loop = uv_default_loop();
	folder_watch_start(d.loop);
	d.net = net_new(d.loop, &lim);
	smtp = smtp_server_new(cfg, dir, d.loop);
	pop3 = pop3_server_new(cfg, dir, d.loop);
	imap = imap_server_new(cfg, dir, d.loop);

	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct listener_config *l = &cfg->listeners[i];
		const struct proto_handler *h;
		void *ctx;

		switch (l->protocol) {
		case PROTO_SMTP:
			h = smtp_server_handler(smtp);
			ctx = smtp;
			break;
		case PROTO_IMAP:
			h = imap_server_handler(imap);
			ctx = imap;
			break;
		case PROTO_POP3:
			h = pop3_server_handler(pop3);
			ctx = pop3;
			break;
		default:
			fprintf(stderr, "buzon: %s:%u: listener \"%s\": protocol %s is not available yet\n",
				cfg->path, l->line, l->name, proto_name(l->protocol));
			return 1;
		}
		for (size_t j = 0; j < l->n_addrs; j++) {
			if (net_listen(d.net, &l->addrs[j], l->name, h, ctx, bound, err, sizeof(err)) < 0) {
				fprintf(stderr, "buzon: %s:%u: listener \"%s\": %s\n", cfg->path, l->address_line,
					l->name, err);
				return 1;
			}
			log_info("server", NULL, "listening listener=%s proto=%s address=%s", l->name,
				 proto_name(l->protocol), bound);
		}
	}
	/* No other server uses this data_dir (the lock above): what is in tmp/
	 * was never acknowledged. */
	r = maildir_sweep_tmp(cfg->data_dir);
	if (r < 0)
		log_warn("server", NULL, "tmp sweep failed error=%s", strerror(-r));
	else if (r > 0)
		log_info("server", NULL, "tmp sweep removed=%d", r);
	uv_signal_init(d.loop, &d.sigterm);
	uv_signal_init(d.loop, &d.sigint);
	uv_signal_init(d.loop, &d.sighup);
	d.sigterm.data = d.sigint.data = d.sighup.data = &d;
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	uv_signal_start(&d.sighup, on_signal, SIGHUP);
	uv_timer_init(d.loop, &d.trim_timer);
	d.trim_timer.data = &d;
	uv_timer_start(&d.trim_timer, trim_tick, 1000, 1000);
	uv_unref((uv_handle_t *)&d.trim_timer);
	log_info("server", NULL, "ready hostname=%s data_dir=%s version=%s", cfg->hostname, cfg->data_dir,
		 BUZON_VERSION);
	if (banner)
		fputs(banner, stderr);

	uv_run(d.loop, UV_RUN_DEFAULT);

	net_free(&d.net);
	smtp_server_free(&smtp);
	pop3_server_free(&pop3);
	imap_server_free(&imap);
	folder_watch_stop();
	dir_close(&dir);
	uv_loop_close(d.loop);
	close(lock_fd);
	log_info("server", NULL, "exit");
	return 0;
}

/* ---- demo ---- */

static void random_password(char *out, size_t n)
{
	static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char r[32];

	if (n > sizeof(r) + 1)
		n = sizeof(r) + 1;
	gnutls_rnd(GNUTLS_RND_KEY, r, sizeof(r));
	for (size_t i = 0; i + 1 < n; i++)
		out[i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
	out[n - 1] = '\0';
}

static int demo(const struct config *cfg)
{
	struct dir *dir = NULL;
	char err[512], password[17], *banner;
	struct dir_target t[DIR_MAX_TARGETS];
	size_t n = 0;
	const char *smtp_addr = "127.0.0.1:2525", *pop3_addr = NULL, *imap_addr = NULL;
	int created = 0;

	if (open_directory(cfg, &dir) < 0)
		return 1;
	if (dir_domain_exists(dir, DEMO_DOMAIN) != 1 && dir_domain_add(dir, DEMO_DOMAIN, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		dir_close(&dir);
		return 1;
	}
	if (dir_resolve(dir, DEMO_USER, "", t, &n) != DIR_OK) {
		random_password(password, sizeof(password));
		if (dir_user_add(dir, DEMO_USER, password, 0, err, sizeof(err)) < 0) {
			fprintf(stderr, "buzon: %s\n", err);
			dir_close(&dir);
			return 1;
		}
		created = 1;
	}
	if (dir_resolve(dir, DEMO_USER, "", t, &n) != DIR_OK || n != 1) {
		fprintf(stderr, "buzon: demo user %s cannot be resolved\n", DEMO_USER);
		dir_close(&dir);
		return 1;
	}
	dir_close(&dir);
	for (size_t i = 0; i < cfg->n_listeners; i++)
		if (cfg->listeners[i].protocol == PROTO_SMTP && cfg->listeners[i].n_addrs)
			smtp_addr = cfg->listeners[i].addrs[0].text;
		else if (cfg->listeners[i].protocol == PROTO_POP3 && cfg->listeners[i].n_addrs)
			pop3_addr = cfg->listeners[i].addrs[0].text;
		else if (cfg->listeners[i].protocol == PROTO_IMAP && cfg->listeners[i].n_addrs)
			imap_addr = cfg->listeners[i].addrs[0].text;
	{
		struct buf b = BUF_INIT(0);

		buf_printf(&b, "\nbuzon demo is running.\n  domain:   %s\n  user:     %s\n  password: %s\n\n",
			   DEMO_DOMAIN, DEMO_USER,
			   created ? password
				   : "(set when the demo was first created; change it with: buzon user passwd " DEMO_USER ")");
		buf_printf(&b, "Send a test message from another terminal:\n"
			       "  swaks --server %s --to %s --from you@example.org\n"
			       "It lands in:\n  %s/new/\n", smtp_addr, DEMO_USER, t[0].maildir);
		if (pop3_addr)
			buf_printf(&b, "Collect it over POP3 (list, then fetch message 1):\n"
				       "  curl -u %s:PASSWORD pop3://%s/\n  curl -u %s:PASSWORD pop3://%s/1\n",
				   DEMO_USER, pop3_addr, DEMO_USER, pop3_addr);
		if (imap_addr)
			buf_printf(&b, "Or read it over IMAP (any IMAP client, plain text, on %s):\n"
				       "  curl -u %s:PASSWORD 'imap://%s/INBOX;UID=1'\n",
				   imap_addr, DEMO_USER, imap_addr);
		buf_adds(&b, "Stop with Ctrl-C.\n\n");
		banner = buf_detach(&b, NULL);
	}
	wipe(password, sizeof(password));
	int r = serve(cfg, banner);
	free(banner);
	return r;
}

int main(int argc, char **argv)
{
	struct config cfg;
	const char *config_path = NULL;
	char err[1024];
	int i = 1, r;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "buzon: --config needs a file\n");
				return 2;
			}
			config_path = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			config_path = argv[i] + 9;
			i++;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("buzon %s\n", BUZON_VERSION);
			return 0;
		} else {
			fprintf(stderr, "buzon: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "version") == 0) {
		printf("buzon %s\n", BUZON_VERSION);
		return 0;
	}
	if (strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (config_path)
		r = config_load(config_path, &cfg, err, sizeof(err));
	else
		r = config_load_string(default_config, "(embedded default)", &cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		config_free(&cfg);
		return 1;
	}
	if (strcmp(argv[i], "check") == 0) {
		printf("%s: ok (%zu listener%s)\n", cfg.path, cfg.n_listeners, cfg.n_listeners == 1 ? "" : "s");
		r = 0;
	} else if (strcmp(argv[i], "serve") == 0) {
		r = serve(&cfg, NULL);
	} else if (strcmp(argv[i], "demo") == 0) {
		r = demo(&cfg);
	} else if (strcmp(argv[i], "domain") == 0 || strcmp(argv[i], "user") == 0 ||
		   strcmp(argv[i], "alias") == 0) {
		struct stat st;
		if (mkdirs(cfg.data_dir) < 0 || stat(cfg.data_dir, &st) < 0) {
			fprintf(stderr, "buzon: %s: data_dir %s cannot be created: %s\n", cfg.path, cfg.data_dir,
				strerror(errno));
			r = 1;
		} else {
			r = cli_main(&cfg, argc - i, argv + i);
		}
	} else {
		fprintf(stderr, "buzon: unknown command '%s'\n", argv[i]);
		usage(stderr);
		r = 2;
	}
	config_free(&cfg);
	return r;
}
