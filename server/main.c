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
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/failpoint.h"
#include "lib/folder-watch.h"
#include "lib/lockout.h"
#include "lib/log.h"
#include "lib/net.h"
#include "lib/xalloc.h"
#include "server/cli.h"
#include "server/privs.h"
#include "smtp/smtp-server.h"
#include "imap/imap-server.h"
#include "pop3/pop3-server.h"
#include "storage/directory.h"
#include "lib/sasl.h"
#include "server/tls-setup.h"
#include "storage/maildir.h"

/* %s: the data_dir, see default_data_dir(). */
static const char default_config[] =
	"[server]\n"
	"hostname = mail.example.test\n"
	"data_dir = %s\n"
	"\n"
	"[tls]\n"
	"certificate = auto\n"
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

/* Root's default data is where Debian keeps a service's data; anyone else's
 * is ./var (the service user could not reach a root-only home). */
static const char *default_data_dir(void)
{
	return geteuid() == 0 ? "/var/lib/buzon" : "./var";
}

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
		"  user add|del|list|passwd [ADDRESS] [--password-stdin] [--quota SIZE] [--reuse-mail]\n"
		"  user quota ADDRESS SIZE | user enable|disable ADDRESS\n"
		"  alias add|del|list [ALIAS] [TARGET...]\n"
		"  lockout list | lockout clear ADDRESS\n"
		"  version\n"
		"\n"
		"Without --config, the embedded default is used (data in ./var, or /var/lib/buzon for root;\n"
		"SMTP on 127.0.0.1:2525, POP3 on 127.0.0.1:1110, IMAP on 127.0.0.1:1143).\n");
}

/* ---- serve ---- */

struct daemon {
	uv_loop_t *loop;
	const struct config *cfg;
	struct net *net;
	struct dir *dir;
	uv_signal_t sigterm, sigint, sighup;
	int stopping;
	/* SIGHUP: the directory is reopened on a worker (it blocks on disk) */
	uv_work_t hup_work;
	int hup_running, hup_again, hup_result;
	char hup_err[256];
	/* the certificates in force, and those SIGHUP read (on the worker) */
	struct tls_setup *tls, *hup_tls;
	int hup_tls_result;
	char hup_tls_err[1024];
	/* the allocator: see heap_tuning() */
	uv_timer_t trim_timer;
	uv_work_t trim_work;
	int trim_running;
	uint64_t trim_seen, trim_done;   /* net_reads() at the last tick, at the last trim */
	/* the failed-login table of every protocol, and its copy in buzon.db
	 * (see lockout_tick) */
	struct lockout *lockout;
	uv_timer_t lk_timer;
	uv_work_t lk_work;
	int lk_running, lk_result;
	uint64_t lk_changes;             /* lockout_changes() of the snapshot being written */
	uint64_t lk_saved;               /* ... of the last one written */
	struct lockout_record *lk_recs;  /* the snapshot, owned by the worker while it runs */
	size_t lk_n;
	int lk_write;                    /* 0: only read the clears (nothing changed) */
	char **lk_cleared;               /* addresses `buzon lockout clear` forgot */
	size_t lk_n_cleared;
};

/* How often the failed-login table is written to buzon.db when it changed,
 * and the clears of `buzon lockout clear` read. */
#define LOCKOUT_SYNC_MS 5000

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

/* ---- the failed-login table in buzon.db ---- */

/* Runs on a worker thread: buzon.db is never written on the loop thread. */
static void lockout_work_cb(uv_work_t *w)
{
	struct daemon *d = w->data;

	/* unchanged: only the clears are read (no write unless there are some) */
	d->lk_result = dir_lockout_save(d->dir, d->lk_write ? d->lk_recs : NULL, d->lk_n, &d->lk_cleared,
					&d->lk_n_cleared);
}

static void lockout_after_cb(uv_work_t *w, int status)
{
	struct daemon *d = w->data;

	d->lk_running = 0;
	free(d->lk_recs);
	d->lk_recs = NULL;
	if (status == 0 && d->lk_result == 0) {
		d->lk_saved = d->lk_changes;
		for (size_t i = 0; i < d->lk_n_cleared; i++) {
			lockout_clear(d->lockout, d->lk_cleared[i]);
			log_info("server", NULL, "lockout cleared by the admin client=%s", d->lk_cleared[i]);
		}
	} else if (status == 0) {
		log_warn("server", NULL, "failed-login table not written to buzon.db error=%s",
			 strerror(-d->lk_result));
	}
	dir_strings_free(d->lk_cleared, d->lk_n_cleared);
	d->lk_cleared = NULL;
	d->lk_n_cleared = 0;
}

/* Every LOCKOUT_SYNC_MS and at SIGHUP: the table goes to buzon.db from a
 * worker when it changed since the last write (a snapshot: the loop goes
 * on counting), and the clears of `buzon lockout clear` come back. */
static void lockout_sync(struct daemon *d)
{
	uint64_t now = lockout_now_ms();

	if (d->lk_running || !d->lockout)
		return;
	d->lk_changes = lockout_changes(d->lockout);
	d->lk_write = d->lk_changes != d->lk_saved;
	d->lk_n = lockout_snapshot(d->lockout, now, &d->lk_recs);
	d->lk_work.data = d;
	if (uv_queue_work(d->loop, &d->lk_work, lockout_work_cb, lockout_after_cb) == 0) {
		d->lk_running = 1;
		return;
	}
	free(d->lk_recs);
	d->lk_recs = NULL;
}

static void lockout_tick(uv_timer_t *t)
{
	lockout_sync(t->data);
}

/* The table at start: what the last run wrote (a restart keeps lockouts). */
static struct lockout *lockout_start(const struct config *cfg, struct dir *dir)
{
	const struct auth_config *a = &cfg->auth;
	struct lockout_params p = {
		.free_failures = a->delay_free,
		.base_ms = a->delay_base * 1000,
		.max_ms = a->delay_max * 1000,
		.decay_ms = a->delay_decay * 1000,
		.max_failures = a->lockout_failures,
		.window_ms = a->lockout_window * 1000,
		.lock_ms = a->lockout_time * 1000,
		.slots = 4096,
		.exempt = a->exempt,
		.n_exempt = a->n_exempt,
	};
	unsigned char key[16];
	struct lockout *lk;
	struct lockout_record *r;
	size_t n;
	uint64_t now = lockout_now_ms();
	unsigned locked = 0;

	if (gnutls_rnd(GNUTLS_RND_NONCE, key, sizeof(key)) < 0) {
		uint64_t v = uv_hrtime() ^ (uint64_t)getpid() << 32;
		memset(key, 0x5a, sizeof(key));
		memcpy(key, &v, sizeof(v));
	}
	lk = lockout_new(&p, key);
	if (dir_lockout_load(dir, &r, &n) < 0) {
		log_warn("server", NULL, "failed-login table not read from buzon.db: starting empty");
		return lk;
	}
	lockout_restore(lk, r, n, now);
	for (size_t i = 0; i < n; i++)
		if (r[i].locked_until_ms > now)
			locked++;
	free(r);
	log_info("server", NULL, "failed-login table loaded addresses=%zu locked_out=%u", n, locked);
	return lk;
}

static void net_stopped(void *arg)
{
	struct daemon *d = arg;

	log_info("server", NULL, "stopped accepting; all sessions closed");
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sighup, NULL);
	uv_close((uv_handle_t *)&d->trim_timer, NULL);
	uv_close((uv_handle_t *)&d->lk_timer, NULL);
}

static void hup_work_cb(uv_work_t *w)
{
	struct daemon *d = w->data;

	d->hup_result = dir_reopen(d->dir, d->hup_err, sizeof(d->hup_err));
	/* Certificates and keys are read again by the service user: a key
	 * only root can read was good for the start but not for this. */
	d->hup_tls_result = tls_setup_load(d->cfg, NULL, &d->hup_tls, d->hup_tls_err, sizeof(d->hup_tls_err));
}

static void hup_after_cb(uv_work_t *w, int status)
{
	struct daemon *d = w->data;

	d->hup_running = 0;
	if (status < 0) {
		tls_setup_free(&d->hup_tls);
		return;
	}
	if (d->hup_tls_result < 0) {
		log_error("server", NULL, "reload: certificates not re-read, the old ones stay in force error=\"%s\"",
			  d->hup_tls_err);
	} else if (!d->stopping) {
		/* new handshakes get the new ones; open sessions keep theirs */
		tls_setup_apply(d->hup_tls, d->cfg, d->net);
		tls_setup_free(&d->tls);
		d->tls = d->hup_tls;
		d->hup_tls = NULL;
		log_info("server", NULL, "reload: certificates re-read");
	}
	tls_setup_free(&d->hup_tls);
	if (d->hup_result < 0)
		log_error("server", NULL, "reload: directory not reopened error=\"%s\"", d->hup_err);
	else
		log_info("server", NULL, "reload: directory %s", d->hup_result > 0 ? "reopened (buzon.db was replaced)"
										 : "unchanged");
	if (d->hup_again && !d->stopping) {
		d->hup_again = 0;
		if (uv_queue_work(d->loop, &d->hup_work, hup_work_cb, hup_after_cb) == 0)
			d->hup_running = 1;
	}
}

/*
 * SIGHUP: the log file is opened again by its name (logrotate), the
 * directory connection follows a buzon.db replaced by a restore, and the
 * certificates and keys are read again (certbot renewals). The rest of the
 * configuration is not read again yet: that needs a restart.
 */
static void on_hup(struct daemon *d)
{
	int r = log_reopen();

	if (r < 0)
		log_error("server", NULL, "reload: log file not reopened error=%s", strerror(-r));
	/* `buzon lockout clear` is picked up now rather than at the next sync */
	lockout_sync(d);
	log_info("server", NULL, "SIGHUP: log %s, directory and certificates queued; other settings need a restart",
		 r > 0 ? "reopened" : r == 0 ? "on standard error" : "kept");
	if (d->hup_running) {
		d->hup_again = 1;
		return;
	}
	d->hup_work.data = d;
	if (uv_queue_work(d->loop, &d->hup_work, hup_work_cb, hup_after_cb) == 0)
		d->hup_running = 1;
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP) {
		if (!d->stopping)
			on_hup(d);
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

/* Descriptors kept for what is not a client socket: the loop and its
 * signals, the log, buzon.db, the pooled index connections (32 x db, -wal,
 * -shm), each worker's message and index files, inotify. */
static unsigned fd_reserve(const struct config *cfg)
{
	return 64 + 32 * 3 + 16 * cfg->delivery_threads;
}

/* A POP3 session holds its maildrop's lock file besides its socket; an IMAP
 * session gives its index connection back between commands (the pool's
 * descriptors are in fd_reserve). */
static unsigned fds_per_session(enum proto p)
{
	return p == PROTO_POP3 ? 2 : 1;
}

/*
 * Fits every listener's sessions, the busy replies and fd_reserve() into
 * the descriptor limit. Each listener has its own caps, so they must all
 * fit at once: a flood on one listener then never leaves another without
 * descriptors. When they do not fit, each listener's caps are lowered in
 * proportion and each change is said (warn, or a printed note for check);
 * when not even 8 sessions a listener fit, -1 with the reason in err.
 */
static int fit_connections(const struct config *cfg, unsigned fd_limit, struct net_limits *lim,
			   struct listen_limits *ll, int print, char *err, size_t errlen)
{
	unsigned reserve = fd_reserve(cfg), busy = fd_limit / 8 < 256 ? fd_limit / 8 : 256;
	uint64_t want = 0, avail;

	lim->fd_limit = fd_limit;
	lim->fd_reserve = reserve;
	lim->max_busy = busy;
	avail = fd_limit > reserve + busy ? fd_limit - reserve - busy : 0;
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct listener_config *l = &cfg->listeners[i];
		ll[i].max_connections = l->max_connections;
		ll[i].max_connections_per_ip = l->max_connections_per_ip;
		ll[i].max_unauthenticated = l->max_unauthenticated;
		ll[i].allow = l->allow;
		ll[i].n_allow = l->n_allow;
		ll[i].deny = l->deny;
		ll[i].n_deny = l->n_deny;
		want += (uint64_t)l->max_connections * fds_per_session(l->protocol);
	}
	if (want <= avail)
		return 0;
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct listener_config *l = &cfg->listeners[i];
		unsigned to = (unsigned)((uint64_t)l->max_connections * avail / want);
		if (to < 8) {
			snprintf(err, errlen, "%s:%u: listener \"%s\": the open files limit (%u) leaves room for %u "
				 "connections of %u: raise it (ulimit -n, LimitNOFILE=) or lower max_connections",
				 cfg->path, l->line, l->name, fd_limit, to, l->max_connections);
			return -1;
		}
		ll[i].max_connections = to;
		if (ll[i].max_connections_per_ip > to)
			ll[i].max_connections_per_ip = to;
		ll[i].max_unauthenticated = (unsigned)((uint64_t)l->max_unauthenticated * to / l->max_connections);
		if (ll[i].max_unauthenticated == 0)
			ll[i].max_unauthenticated = 1;
		if (print)
			printf("%s:%u: note: listener \"%s\": max_connections lowered from %u to %u: the open files "
			       "limit is %u\n", cfg->path, l->line, l->name, l->max_connections, to, fd_limit);
		else
			log_warn("server", NULL, "max_connections lowered listener=%s from=%u to=%u fd_limit=%u "
				 "reserve=%u: raise the open files limit (LimitNOFILE=) or lower max_connections",
				 l->name, l->max_connections, to, fd_limit, reserve + busy);
	}
	return 0;
}

/* Runs after the listeners are bound, privileges dropped and the directory
 * open, before the first connection is accepted (the demo makes its user
 * there): returns 0 and may set a banner to print, or -1 to stop. */
static void not_started(void *arg)
{
	(void)arg;
}

typedef int (*serve_ready_fn)(struct dir *dir, char **banner_r, void *arg);

static int serve(const struct config *cfg, serve_ready_fn ready, void *ready_arg)
{
	struct daemon d;
	struct dir *dir = NULL;
	struct smtp_server *smtp = NULL;
	struct sasl_ctx *sasl = NULL;
	struct pop3_server *pop3 = NULL;
	struct imap_server *imap = NULL;
	struct service_user u;
	struct net_limits lim = { .input_max = 4096 };
	struct listen_limits *ll;
	char err[1024], bound[80], tp[16], *banner = NULL;
	int r, lock_fd = -1, rc = 1, watching = 0;

	log_set_level(cfg->log_level);
	heap_tuning();
	signal(SIGPIPE, SIG_IGN);
	snprintf(tp, sizeof(tp), "%u", cfg->delivery_threads);
	setenv("UV_THREADPOOL_SIZE", tp, 1);
	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.loop = uv_default_loop();
	ll = xcalloc(cfg->n_listeners, sizeof(*ll));
	if (data_dir_check(cfg->data_dir, err, sizeof(err)) < 0 || privs_resolve(cfg, &u, err, sizeof(err)) < 0 ||
	    fit_connections(cfg, privs_raise_fd_limit(), &lim, ll, 0, err, sizeof(err)) < 0 ||
	    privs_prepare_data_dir(cfg->data_dir, &u, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		free(ll);
		return 1;
	}
	d.net = net_new(d.loop, &lim);

	/* Ports first, while root may bind below 1024; nothing is accepted
	 * before uv_run, by then as the service user. */
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct listener_config *l = &cfg->listeners[i];

		for (size_t j = 0; j < l->n_addrs; j++) {
			if (net_listen(d.net, &l->addrs[j], l->name, &ll[i], NULL, NULL, bound, err, sizeof(err)) < 0) {
				fprintf(stderr, "buzon: %s:%u: listener \"%s\": %s\n", cfg->path, l->address_line,
					l->name, err);
				goto out;
			}
			log_info("server", NULL, "listening listener=%s proto=%s address=%s max_connections=%u",
				 l->name, proto_name(l->protocol), bound, ll[i].max_connections);
		}
	}
	/* Certificates while still root: a key readable by root only works. */
	if (tls_setup_load(cfg, &u, &d.tls, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s: %s\n", cfg->path, err);
		goto out;
	}
	if (tls_setup_auto_fingerprint(d.tls))
		log_info("server", NULL, "tls auto certificate=%s/tls/auto-cert.pem sha256=%s", cfg->data_dir,
			 tls_setup_auto_fingerprint(d.tls));
	if (privs_drop(&u, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		goto out;
	}
	log_info("server", NULL, "running as user=%s uid=%u group=%s gid=%u", u.name, (unsigned)u.uid, u.group,
		 (unsigned)u.gid);
	failpoints_start();   /* test builds only; its thread starts unprivileged */

	/* One server per data_dir: the lock dies with the process. */
	snprintf(err, sizeof(err), "%s/buzon.pid", cfg->data_dir);
	lock_fd = open(err, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "buzon: %s: data_dir %s is in use by another buzon server\n", cfg->path,
			cfg->data_dir);
		goto out;
	}
	if (ftruncate(lock_fd, 0) == 0)
		dprintf(lock_fd, "%ld\n", (long)getpid());
	if (cfg->log_file && log_open_file(cfg->log_file, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s: %s\n", cfg->path, err);
		goto out;
	}
	if (dir_open(cfg->data_dir, &dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		goto out;
	}
	d.dir = dir;
	/* The demo's user before the servers start: they look up where
	 * postmaster mail goes when they are made. */
	if (ready && ready(dir, &banner, ready_arg) < 0)
		goto out;
	folder_watch_start(d.loop);
	watching = 1;
	d.lockout = lockout_start(cfg, dir);
	d.lk_saved = lockout_changes(d.lockout);
	net_set_lockout(d.net, d.lockout);
	{
		unsigned char secret[SASL_CTX_SECRET_LEN];
		int sr = dir_sasl_secret(dir, secret);

		/* the fake salts of unknown users stay the same across restarts */
		if (sasl_ctx_new(sr == 0 ? secret : NULL, sizeof(secret), &sasl) < 0) {
			fprintf(stderr, "buzon: GNU SASL cannot be started (a mechanism is missing)\n");
			goto out;
		}
		gnutls_memset(secret, 0, sizeof(secret));
	}
	smtp = smtp_server_new(cfg, dir, d.loop, d.lockout, sasl);
	pop3 = pop3_server_new(cfg, dir, d.loop, d.lockout, sasl);
	imap = imap_server_new(cfg, dir, d.loop, d.lockout, sasl);
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct listener_config *l = &cfg->listeners[i];

		switch (l->protocol) {
		case PROTO_SMTP:
			net_set_handler(d.net, l->name, smtp_server_handler(smtp), smtp);
			break;
		case PROTO_IMAP:
			net_set_handler(d.net, l->name, imap_server_handler(imap), imap);
			break;
		case PROTO_POP3:
			net_set_handler(d.net, l->name, pop3_server_handler(pop3), pop3);
			break;
		}
	}
	tls_setup_apply(d.tls, cfg, d.net);
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
	uv_timer_init(d.loop, &d.lk_timer);
	d.lk_timer.data = &d;
	uv_timer_start(&d.lk_timer, lockout_tick, LOCKOUT_SYNC_MS, LOCKOUT_SYNC_MS);
	uv_unref((uv_handle_t *)&d.lk_timer);
	log_info("server", NULL, "ready hostname=%s data_dir=%s version=%s", cfg->hostname, cfg->data_dir,
		 BUZON_VERSION);
	if (banner) {
		fputs(banner, stderr);
		if (tls_setup_auto_fingerprint(d.tls))
			fprintf(stderr, "TLS uses a self-signed certificate, made for this host name:\n"
				"  %s/tls/auto-cert.pem\n  SHA-256 %s\n"
				"Pin it in your client, or set [tls] certificate and key to a real one.\n\n",
				cfg->data_dir, tls_setup_auto_fingerprint(d.tls));
	}

	uv_run(d.loop, UV_RUN_DEFAULT);
	rc = 0;
	/* The last state of the failed-login table: the loop is over (every
	 * session closed), so nothing waits for this write. */
	{
		struct lockout_record *recs;
		size_t n = lockout_snapshot(d.lockout, lockout_now_ms(), &recs);
		char **cv;
		size_t cn;

		if (dir_lockout_save(dir, recs, n, &cv, &cn) == 0) {
			dir_strings_free(cv, cn);
			log_info("server", NULL, "failed-login table written addresses=%zu", n);
		}
		free(recs);
	}
	log_info("server", NULL, "exit");
	goto done;
out:
	/* Not started: close what was opened, let the loop run the closes. */
	net_shutdown(d.net, 0, not_started, NULL);
	uv_run(d.loop, UV_RUN_DEFAULT);
done:
	net_free(&d.net);
	tls_setup_free(&d.tls);
	smtp_server_free(&smtp);
	sasl_ctx_free(&sasl);
	pop3_server_free(&pop3);
	imap_server_free(&imap);
	lockout_free(&d.lockout);
	if (watching)
		folder_watch_stop();
	dir_close(&dir);
	uv_loop_close(d.loop);
	if (lock_fd >= 0)
		close(lock_fd);
	if (banner)
		wipe(banner, strlen(banner));
	free(banner);
	free(ll);
	return rc;
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

/*
 * The demo makes its domain and user once the listeners are bound and the
 * directory is open (serve's ready hook): a busy port stops the demo before
 * anything is created, and a user made here always has its password
 * printed.
 */
static int demo_ready(struct dir *dir, char **banner_r, void *arg)
{
	const struct config *cfg = arg;
	char err[512], password[17];
	struct dir_target t[DIR_MAX_TARGETS];
	size_t n = 0;
	const char *smtp_addr = "127.0.0.1:2525", *pop3_addr = NULL, *imap_addr = NULL;
	int created = 0;
	struct buf b = BUF_INIT(0);

	if (dir_domain_exists(dir, DEMO_DOMAIN) != 1 && dir_domain_add(dir, DEMO_DOMAIN, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		return -1;
	}
	if (dir_resolve(dir, DEMO_USER, "", t, &n) != DIR_OK) {
		random_password(password, sizeof(password));
		if (dir_user_add(dir, DEMO_USER, password, 0, err, sizeof(err)) < 0) {
			fprintf(stderr, "buzon: %s\n", err);
			wipe(password, sizeof(password));
			return -1;
		}
		created = 1;
	}
	if (dir_resolve(dir, DEMO_USER, "", t, &n) != DIR_OK || n != 1) {
		fprintf(stderr, "buzon: demo user %s cannot be resolved\n", DEMO_USER);
		wipe(password, sizeof(password));
		return -1;
	}
	for (size_t i = 0; i < cfg->n_listeners; i++)
		if (cfg->listeners[i].protocol == PROTO_SMTP && cfg->listeners[i].n_addrs)
			smtp_addr = cfg->listeners[i].addrs[0].text;
		else if (cfg->listeners[i].protocol == PROTO_POP3 && cfg->listeners[i].n_addrs)
			pop3_addr = cfg->listeners[i].addrs[0].text;
		else if (cfg->listeners[i].protocol == PROTO_IMAP && cfg->listeners[i].n_addrs)
			imap_addr = cfg->listeners[i].addrs[0].text;
	buf_printf(&b, "\nbuzon demo is running.\n  domain:   %s\n  user:     %s\n  password: %s\n\n", DEMO_DOMAIN,
		   DEMO_USER,
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
		buf_printf(&b, "Or read it over IMAP (any IMAP client, on %s, STARTTLS offered):\n"
			       "  curl -u %s:PASSWORD 'imap://%s/INBOX;UID=1'\n",
			   imap_addr, DEMO_USER, imap_addr);
	buf_adds(&b, "Stop with Ctrl-C.\n\n");
	if (created)
		wipe(password, sizeof(password));
	*banner_r = buf_detach(&b, NULL);
	return 0;
}

/* Tries to bind a, as serve will (address reuse as libuv sets it). */
static int try_bind(const struct listen_addr *a, char *err, size_t errlen)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1, r = 0;

	if (fd < 0) {
		snprintf(err, errlen, "cannot make a socket for %s: %s", a->text, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s%s", a->text, strerror(errno),
			 errno == EADDRINUSE ? " (another server, or buzon itself, has it)"
			 : errno == EACCES ? " (ports below 1024 need buzon started as root)" : "");
		r = -1;
	}
	close(fd);
	return r;
}

/*
 * `buzon check`: the file, then what serve will need - the service user,
 * data_dir (made or reachable and writable by that user, nothing created
 * here), the open files limit against the connection caps, and every
 * address bindable. Every problem is one line; the exit code is 1 if any.
 */
static int check(const struct config *cfg)
{
	struct service_user u;
	struct net_limits lim;
	struct listen_limits *ll = xcalloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*ll));
	char err[1024];
	int bad = 0;

	if (data_dir_check(cfg->data_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s: %s\n", cfg->path, err);
		bad = 1;
	} else if (privs_resolve(cfg, &u, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		bad = 1;
	} else if (privs_check_data_dir(cfg->data_dir, &u, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s: %s\n", cfg->path, err);
		bad = 1;
	}
	if (fit_connections(cfg, privs_raise_fd_limit(), &lim, ll, 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		bad = 1;
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct listener_config *l = &cfg->listeners[i];
		for (size_t j = 0; j < l->n_addrs; j++) {
			if (try_bind(&l->addrs[j], err, sizeof(err)) < 0) {
				fprintf(stderr, "buzon: %s:%u: listener \"%s\": %s\n", cfg->path, l->address_line,
					l->name, err);
				bad = 1;
			}
		}
	}
	free(ll);
	if (tls_setup_check(cfg) > 0)
		bad = 1;
	if (bad)
		return 1;
	printf("%s: ok (%zu listener%s, data_dir %s, serving as %s)\n", cfg->path, cfg->n_listeners,
	       cfg->n_listeners == 1 ? "" : "s", cfg->data_dir, u.name);
	return 0;
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
	/* Whatever buzon creates, server or CLI, is its own alone. */
	umask(077);
	if (config_path) {
		r = config_load(config_path, &cfg, err, sizeof(err));
	} else {
		char text[sizeof(default_config) + 64];
		snprintf(text, sizeof(text), default_config, default_data_dir());
		r = config_load_string(text, "(embedded default)", &cfg, err, sizeof(err));
	}
	if (r < 0) {
		fprintf(stderr, "buzon: %s\n", err);
		config_free(&cfg);
		return 1;
	}
	if ((strcmp(argv[i], "check") == 0 || strcmp(argv[i], "serve") == 0 || strcmp(argv[i], "demo") == 0) &&
	    i + 1 < argc) {
		fprintf(stderr, "buzon: %s takes no arguments (got '%s')\n", argv[i], argv[i + 1]);
		r = 2;
	} else if (strcmp(argv[i], "check") == 0) {
		r = check(&cfg);
	} else if (strcmp(argv[i], "serve") == 0) {
		r = serve(&cfg, NULL, NULL);
	} else if (strcmp(argv[i], "demo") == 0) {
		r = serve(&cfg, demo_ready, &cfg);
	} else if (strcmp(argv[i], "domain") == 0 || strcmp(argv[i], "user") == 0 ||
		   strcmp(argv[i], "alias") == 0 || strcmp(argv[i], "lockout") == 0) {
		struct service_user u;
		/* As root, the CLI acts as the service user, so what it
		 * creates (buzon.db, a Maildir) is the server's to use. */
		if (privs_resolve(&cfg, &u, err, sizeof(err)) < 0 ||
		    privs_prepare_data_dir(cfg.data_dir, &u, err, sizeof(err)) < 0 ||
		    privs_drop(&u, err, sizeof(err)) < 0) {
			fprintf(stderr, "buzon: %s\n", err);
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
