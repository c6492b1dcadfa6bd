#include "server/privs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/xalloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define BUZON_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BUZON_ASAN 1
#endif
#endif

/* Deeper than any data_dir buzon writes (data_dir/mail/domain/user/.folder/cur). */
#define TAKE_OVER_DEPTH 16
/* From this depth down (a user's Maildir), a directory that is already the
 * service user's is not walked: its files were made by buzon. */
#define TAKE_OVER_TRUST_DEPTH 3

int privs_resolve(const struct config *cfg, struct service_user *u, char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;

	memset(u, 0, sizeof(*u));
	if (geteuid() != 0) {
		u->uid = geteuid();
		u->gid = getegid();
		pw = getpwuid(u->uid);
		snprintf(u->name, sizeof(u->name), "%s", pw ? pw->pw_name : "?");
		gr = getgrgid(u->gid);
		snprintf(u->group, sizeof(u->group), "%s", gr ? gr->gr_name : "?");
		return 0;
	}
	errno = 0;
	pw = getpwnam(cfg->user);
	if (!pw) {
		snprintf(err, errlen,
			 "%s: [server] user '%s' does not exist: create it (useradd --system --no-create-home "
			 "--shell /usr/sbin/nologin %s) or name another",
			 cfg->path, cfg->user, cfg->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "%s: [server] user '%s' is root: buzon refuses to serve as root", cfg->path,
			 cfg->user);
		return -1;
	}
	u->drop = 1;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
	if (cfg->group) {
		gr = getgrnam(cfg->group);
		if (!gr) {
			snprintf(err, errlen, "%s: [server] group '%s' does not exist", cfg->path, cfg->group);
			return -1;
		}
		u->gid = gr->gr_gid;
	}
	if (u->gid == 0) {
		snprintf(err, errlen, "%s: [server] group of user '%s' is root's group: give buzon its own group",
			 cfg->path, cfg->user);
		return -1;
	}
	gr = getgrgid(u->gid);
	snprintf(u->group, sizeof(u->group), "%s", gr ? gr->gr_name : "?");
	return 0;
}

/* mkdir -p: what it creates gets mode 0700. */
static int mkdirs(const char *path)
{
	char *p = xstrdup(path);
	int r = 0;

	for (char *s = p + 1;; s++) {
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

/*
 * Gives the directory dirfd and what is below it to uid:gid, through
 * descriptors only (openat with O_NOFOLLOW, fchownat with
 * AT_SYMLINK_NOFOLLOW): whatever the service user renames or links while
 * this runs as root, no path outside data_dir is ever changed. A symlink
 * itself is given over, never what it points to.
 */
static int take_over(int dirfd, const struct service_user *u, int depth, int all, char *err, size_t errlen,
		     const char *what)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int r = 0, owned;

	if (fstat(dirfd, &st) < 0)
		return -errno;
	owned = st.st_uid == u->uid && st.st_gid == u->gid;
	if (!all && depth >= TAKE_OVER_TRUST_DEPTH && owned)
		return 0;
	/* Below a directory that was not the service user's, nothing is
	 * trusted: a restore made as root is taken over whole. */
	if (!owned)
		all = 1;
	if (!owned && fchown(dirfd, u->uid, u->gid) < 0) {
		snprintf(err, errlen, "cannot give %s to %s: %s", what, u->name, strerror(errno));
		return -1;
	}
	if (depth >= TAKE_OVER_DEPTH)
		return 0;
	/* fdopendir owns the descriptor it is given: hand it a copy. */
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "cannot read %s: %s", what, strerror(errno));
		return -1;
	}
	while (r == 0 && (de = readdir(d))) {
		struct stat est;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &est, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		if (S_ISDIR(est.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0)
				continue;
			r = take_over(sub, u, depth + 1, all, err, errlen, what);
			close(sub);
		} else if ((est.st_uid != u->uid || est.st_gid != u->gid) &&
			   fchownat(dirfd, de->d_name, u->uid, u->gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot give %s/.../%s to %s: %s", what, de->d_name, u->name,
				 strerror(errno));
			r = -1;
		}
	}
	closedir(d);
	return r;
}

/* 1 when the service user may search (x) a directory with this stat. */
static int can_search(const struct stat *st, const struct service_user *u)
{
	if (st->st_uid == u->uid)
		return (st->st_mode & S_IXUSR) != 0;
	if (st->st_gid == u->gid)
		return (st->st_mode & S_IXGRP) != 0;
	return (st->st_mode & S_IXOTH) != 0;
}

/* Every directory above path (and path itself with self) must be
 * searchable by the service user, or it could not reach its own data once
 * it is no longer root. data_dir names path in the message. */
static int check_reachable(const char *path, int self, const char *data_dir, const struct service_user *u,
			   char *err, size_t errlen)
{
	char *abs = realpath(path, NULL);
	struct stat st;
	int r = 0;

	if (!abs) {
		snprintf(err, errlen, "data_dir %s: %s", data_dir, strerror(errno));
		return -1;
	}
	for (char *s = abs; *s && r == 0;) {
		char *slash = strchr(s + 1, '/');
		char keep;
		if (!slash)
			break;
		keep = *slash;
		*slash = '\0';
		if (stat(*abs ? abs : "/", &st) == 0 && !can_search(&st, u)) {
			snprintf(err, errlen,
				 "data_dir %s: user %s cannot reach it: %s is mode %04o, owner %u, group %u "
				 "(make it searchable, e.g. chmod o+x %s, or put data_dir elsewhere, e.g. /var/lib/buzon)",
				 data_dir, u->name, *abs ? abs : "/", (unsigned)(st.st_mode & 07777),
				 (unsigned)st.st_uid, (unsigned)st.st_gid, *abs ? abs : "/");
			r = -1;
		}
		*slash = keep;
		s = slash;
	}
	if (r == 0 && stat("/", &st) == 0 && !can_search(&st, u)) {
		snprintf(err, errlen, "data_dir %s: user %s cannot search /", data_dir, u->name);
		r = -1;
	}
	if (r == 0 && self && stat(abs, &st) == 0 && !can_search(&st, u)) {
		snprintf(err, errlen,
			 "data_dir %s: user %s cannot reach it: %s is mode %04o, owner %u, group %u", data_dir,
			 u->name, abs, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid);
		r = -1;
	}
	free(abs);
	return r;
}

int privs_check_data_dir(const char *data_dir, const struct service_user *u, char *err, size_t errlen)
{
	char *p = xstrdup(data_dir), *slash;
	struct stat st;
	int r = 0, exists;

	/* The nearest part of the path that exists. */
	while (stat(p, &st) < 0) {
		/* ENOTDIR: a component is a file; going up finds which. */
		if (errno != ENOENT && errno != ENOTDIR) {
			snprintf(err, errlen, "data_dir %s: %s: %s", data_dir, p, strerror(errno));
			free(p);
			return -1;
		}
		slash = strrchr(p, '/');
		if (!slash || slash == p) {
			strcpy(p, slash == p ? "/" : ".");
			continue;
		}
		*slash = '\0';
	}
	exists = strcmp(p, data_dir) == 0;
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "data_dir %s: %s is not a directory", data_dir, p);
		r = -1;
	} else if (u->drop) {
		/* Root makes and gives over what is missing; the service user
		 * must reach what exists. */
		r = check_reachable(p, !exists, data_dir, u, err, errlen);
	} else if (access(p, W_OK | X_OK) < 0) {
		snprintf(err, errlen, "data_dir %s: %s is not writable by %s: %s", data_dir, p, u->name,
			 strerror(errno));
		r = -1;
	}
	free(p);
	return r;
}

int privs_prepare_data_dir(const char *data_dir, const struct service_user *u, char *err, size_t errlen)
{
	struct stat st;
	int r, fd;

	r = mkdirs(data_dir);
	if (r < 0) {
		snprintf(err, errlen, "data_dir %s cannot be created: %s", data_dir, strerror(-r));
		return -1;
	}
	fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "data_dir %s: %s", data_dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!u->drop) {
		close(fd);
		if (access(data_dir, R_OK | W_OK | X_OK) < 0) {
			snprintf(err, errlen, "data_dir %s is not writable by %s: %s", data_dir, u->name,
				 strerror(errno));
			return -1;
		}
		return 0;
	}
	r = take_over(fd, u, 0, 0, err, errlen, data_dir);
	close(fd);
	if (r < 0)
		return -1;
	return check_reachable(data_dir, 0, data_dir, u, err, errlen);
}

/* All five capability sets of this thread are empty. */
static int caps_all_clear(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return 0;
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (d[i].effective || d[i].permitted || d[i].inheritable)
			return 0;
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
		int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (in > 0)
			return 0;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) > 0)
		return 0;
	return 1;
}

int privs_drop(const struct service_user *u, char *err, size_t errlen)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	if (!u->drop)
		return 0;
	if (setgroups(1, &u->gid) < 0 || setresgid(u->gid, u->gid, u->gid) < 0) {
		snprintf(err, errlen, "cannot change to group %s: %s", u->group, strerror(errno));
		return -1;
	}
	/* The bounding set goes first, while CAP_SETPCAP is still there; the
	 * other sets empty themselves when every uid leaves 0. */
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
			snprintf(err, errlen, "cannot drop capability %d: %s", cap, strerror(errno));
			return -1;
		}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (setresuid(u->uid, u->uid, u->uid) < 0) {
		snprintf(err, errlen, "cannot change to user %s: %s", u->name, strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
		return -1;
	}
	/* Check rather than trust: no way back to root, nothing left. */
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 || ruid != u->uid ||
	    euid != u->uid || suid != u->uid || rgid != u->gid || egid != u->gid || sgid != u->gid ||
	    setuid(0) == 0 || !caps_all_clear()) {
		snprintf(err, errlen, "privileges are still there after changing to %s: refusing to serve", u->name);
		return -1;
	}
#ifdef BUZON_ASAN
	/* Sanitizer builds only: LeakSanitizer stops the world with ptrace,
	 * which a process made non-dumpable by the uid change refuses. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	return 0;
}

unsigned privs_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1u << 20))
		rl.rlim_max = 1u << 20;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur > (1u << 20) ? 1u << 20 : (unsigned)rl.rlim_cur;
}
