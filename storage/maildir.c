#include "storage/maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/failpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "storage/storage-private.h"

/* copy->state: where this copy's file is, so that a failure can undo it. */
enum copy_state {
	COPY_NONE = 0,
	COPY_IN_TMP,
	COPY_IN_NEW,
};

/* Shared by every worker thread; with the pid and the time it makes each
 * name unique within this host. */
static atomic_ulong delivery_counter;

/* Disk full and the file system's own quota both mean "try later" to the
 * sender; -EDQUOT is kept for the user's quota, which is ours. */
static int io_error(int e)
{
	if (e == ENOSPC || e == EDQUOT)
		return -ENOSPC;
	return e ? -e : -EIO;
}

/* mkdir of name in dirfd (0700: every directory buzon makes is the
 * owner's alone, whatever the umask), then an open of it that refuses a
 * symbolic link. fd or a negative errno. */
static int mkdir_open_at(int dirfd, const char *name, const char *what)
{
	int e = failpoint("storage/maildir/mkdir");

	if (e)
		return -e;
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	return storage_open_subdir(dirfd, name, what);
}

static int mkdir_one(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int storage_mkdir_p(const char *path)
{
	char *p = xstrdup(path);
	size_t len = strlen(p);
	int fd, r = 0;

	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	/* The longest existing prefix is opened safely (no symbolic link below
	 * data_dir); what is missing below it is made one level at a time. */
	for (;;) {
		fd = storage_open_dir(p);
		if (fd >= 0 || fd != -ENOENT)
			break;
		char *slash = strrchr(p, '/');
		if (!slash || slash == p) {
			/* Nothing of it exists: the plain way from "/". */
			free(p);
			p = xstrdup(path);
			for (char *s = p + 1; *s; s++) {
				if (*s != '/')
					continue;
				*s = '\0';
				r = mkdir_one(p);
				*s = '/';
				if (r < 0)
					break;
			}
			if (r == 0)
				r = mkdir_one(p);
			free(p);
			return r;
		}
		*slash = '\0';
	}
	if (fd < 0) {
		free(p);
		return fd;
	}
	/* p exists; create the rest of path below it. */
	for (const char *rest = path + strlen(p); *rest;) {
		char comp[NAME_MAX + 1];
		size_t n;
		int sub;

		while (*rest == '/')
			rest++;
		n = strcspn(rest, "/");
		if (n == 0)
			break;
		if (n > NAME_MAX) {
			r = -ENAMETOOLONG;
			break;
		}
		memcpy(comp, rest, n);
		comp[n] = '\0';
		rest += n;
		sub = mkdir_open_at(fd, comp, p);
		if (sub < 0) {
			r = sub;
			break;
		}
		close(fd);
		fd = sub;
	}
	close(fd);
	free(p);
	return r;
}

int storage_fsync_dir(const char *path)
{
	int fd, r;

	fd = storage_open_dir(path);
	if (fd < 0)
		return fd;
	r = storage_fsync_fd(fd);
	close(fd);
	return r;
}

static int make_subdirs(int dirfd, const char *what)
{
	static const char *const sub[] = { "tmp", "new", "cur" };

	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		int fd = mkdir_open_at(dirfd, sub[i], what);
		if (fd < 0)
			return fd;
		close(fd);
	}
	return 0;
}

int maildir_create(const char *path)
{
	int fd, r;

	if (!path || !*path)
		return -EINVAL;
	r = storage_mkdir_p(path);
	if (r < 0)
		return r;
	fd = storage_open_dir(path);
	if (fd < 0)
		return fd;
	r = make_subdirs(fd, path);
	if (r == 0)
		r = storage_fsync_fd(fd);
	close(fd);
	return r;
}

int maildir_check(const char *path)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	struct stat st;
	int fd, r = 0, made = 0;

	fd = storage_open_dir(path);
	if (fd < 0)
		return fd;
	for (size_t i = 0; i < ARRAY_SIZE(sub) && r == 0; i++) {
		if (fstatat(fd, sub[i], &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (errno != ENOENT) {
			r = -errno;
			break;
		}
		/* Deleted by hand: made again inside a Maildir that exists (the
		 * Maildir itself is the directory's to make, which knows whether
		 * its user still exists). */
		int sfd = mkdir_open_at(fd, sub[i], path);
		if (sfd < 0)
			r = sfd;
		else
			close(sfd);
		made = 1;
	}
	if (r == 0 && made) {
		r = storage_fsync_fd(fd);
		log_warn("maildir", NULL, "missing tmp/, new/ or cur/ made again path=%s", path);
	}
	close(fd);
	return r;
}

/* A Maildir++ folder name as it appears on disk after the leading dot:
 * "Sent", "Archive.2026". No '/', no empty level, no control characters. */
static int folder_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 200 || name[0] == '.' || name[len - 1] == '.' || strstr(name, ".."))
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '/')
			return 0;
	return 1;
}

int maildir_create_folder(const char *path, const char *name)
{
	char dot[256];
	int dfd, fd = -1, ffd, r;

	if (!path || !name || !folder_name_ok(name))
		return -EINVAL;
	snprintf(dot, sizeof(dot), ".%s", name);
	dfd = storage_open_dir(path);
	if (dfd < 0)
		return dfd;
	fd = mkdir_open_at(dfd, dot, path);
	if (fd < 0) {
		close(dfd);
		return fd;
	}
	r = make_subdirs(fd, path);
	if (r == 0) {
		ffd = FAILPOINT_ERRNO("storage/maildir/open") ? -1 :
			openat(fd, "maildirfolder", O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (ffd < 0)
			r = -errno;
		else
			close(ffd);
	}
	if (r == 0)
		r = storage_fsync_fd(fd);
	if (r == 0)
		r = storage_fsync_fd(dfd);
	close(fd);
	close(dfd);
	return r;
}

/* Removes every non-directory entry of dirfd/tmp; returns the count. */
static int sweep_one_tmp(int dirfd)
{
	DIR *dir;
	struct dirent *de;
	int fd, n = 0;

	fd = storage_open_subdir(dirfd, "tmp", "(start-up sweep)");
	if (fd < 0)
		return fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP ? 0 : fd;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
					     (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		if (!FAILPOINT_ERRNO("storage/maildir/unlink") && unlinkat(fd, de->d_name, 0) == 0)
			n++;
		else if (errno != ENOENT && errno != EISDIR)
			log_warn("maildir", NULL, "sweep cannot remove tmp file error=\"%s\"", strerror(errno));
	}
	if (n > 0)
		fsync(fd);
	closedir(dir);
	return n;
}

/* Calls fn(ctx, fd) for every subdirectory of dirfd (no symlinks); with
 * dots set, only for those whose name starts with '.' (Maildir++ folders). */
static int for_each_subdir(int dirfd, int dots, int (*fn)(void *ctx, int fd), void *ctx)
{
	DIR *dir;
	struct dirent *de;
	int fd, total = 0, r;

	/* A new open file description: a dup() would share the offset. */
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir))) {
		const char *n = de->d_name;
		if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
			continue;
		if (dots != (n[0] == '.'))
			continue;
		if (de->d_type == DT_LNK) {
			/* Never walked into: a write (the sweep's unlinks) would go
			 * through it, a quota sum would count what is not ours. */
			log_warn("maildir", NULL, "symbolic link below data_dir skipped name=%s", n);
			continue;
		}
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		int sub = openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			if (errno == ELOOP)
				log_warn("maildir", NULL, "symbolic link below data_dir skipped name=%s", n);
			continue;
		}
		r = fn(ctx, sub);
		close(sub);
		if (r < 0) {
			total = r;
			break;
		}
		total += r;
	}
	closedir(dir);
	return total;
}

static int sweep_folder(void *ctx, int fd)
{
	(void)ctx;
	return sweep_one_tmp(fd);
}

static int sweep_user(void *ctx, int fd)
{
	int n, m;

	(void)ctx;
	n = sweep_one_tmp(fd);
	if (n < 0)
		return n;
	m = for_each_subdir(fd, 1, sweep_folder, NULL);
	return m < 0 ? m : n + m;
}

static int sweep_domain(void *ctx, int fd)
{
	(void)ctx;
	return for_each_subdir(fd, 0, sweep_user, NULL);
}

int maildir_sweep_tmp(const char *data_dir)
{
	char p[PATH_MAX];
	int fd, r;

	if ((size_t)snprintf(p, sizeof(p), "%s/mail", data_dir) >= sizeof(p))
		return -ENAMETOOLONG;
	fd = storage_open_dir(p);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	r = for_each_subdir(fd, 0, sweep_domain, NULL);
	close(fd);
	return r;
}

/* Reads ",S=<digits>" from a Maildir file name; 0 when there is none. */
static int name_size(const char *name, uint64_t *size_r)
{
	const char *p = name;
	const char *colon = strchr(name, ':');
	uint64_t v = 0;

	while ((p = strstr(p, ",S=")) && (!colon || p < colon)) {
		p += 3;
		if (*p < '0' || *p > '9')
			continue;
		while (*p >= '0' && *p <= '9') {
			if (v > (UINT64_MAX - 9) / 10)
				return 0;
			v = v * 10 + (uint64_t)(*p++ - '0');
		}
		if (*p == '\0' || *p == ',' || *p == ':') {
			*size_r = v;
			return 1;
		}
		v = 0;
	}
	return 0;
}

static int usage_subdir(int dirfd, const char *sub, uint64_t *bytes)
{
	DIR *dir;
	struct dirent *de;
	struct stat st;
	uint64_t size;
	int fd;

	fd = storage_open_subdir(dirfd, sub, "(quota walk)");
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (name_size(de->d_name, &size)) {
			*bytes += size;
			continue;
		}
		/* A file another process moves (new/ -> cur/) or expunges
		 * while we look is not an error. */
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			*bytes += (uint64_t)st.st_size;
	}
	closedir(dir);
	return 0;
}

static int usage_maildir(void *ctx, int fd)
{
	uint64_t *bytes = ctx;
	int r;

	r = usage_subdir(fd, "new", bytes);
	if (r == 0)
		r = usage_subdir(fd, "cur", bytes);
	return r;
}

int maildir_usage(const char *path, uint64_t *bytes_r)
{
	uint64_t bytes = 0;
	int fd, r;

	fd = storage_open_dir(path);
	if (fd < 0)
		return fd;
	r = usage_maildir(&bytes, fd);
	if (r == 0)
		r = for_each_subdir(fd, 1, usage_maildir, &bytes);
	close(fd);
	if (r < 0)
		return r;
	*bytes_r = bytes;
	return 0;
}

/* The host part of a Maildir name: '/' and ':' would break the name, ','
 * the ,S= fields, so they are written as octal escapes as Courier does. */
static void host_part(const char *host, char *out, size_t outlen)
{
	size_t o = 0;

	if (!host || !*host)
		host = "localhost";
	for (const unsigned char *p = (const unsigned char *)host; *p && o + 5 < outlen; p++) {
		if (*p == '/' || *p == ':' || *p == ',' || *p < 0x21 || *p > 0x7e) {
			snprintf(out + o, outlen - o, "\\%03o", *p);
			o += 4;
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
}

void storage_unique_name(const char *host, uint64_t size, uint64_t vsize, char *out, size_t outlen)
{
	char h[256];
	struct timeval tv;
	unsigned long q = atomic_fetch_add(&delivery_counter, 1) + 1;

	host_part(host, h, sizeof(h));
	gettimeofday(&tv, NULL);
	snprintf(out, outlen, "%lld.M%06ldP%ldQ%lu.%s,S=%llu,W=%llu", (long long)tv.tv_sec, (long)tv.tv_usec,
		 (long)getpid(), q, h, (unsigned long long)size, (unsigned long long)vsize);
}

struct msg_size {
	uint64_t size;   /* octets as stored (LF line ends) */
	uint64_t vsize;  /* octets with CRLF line ends */
	int last_cr;     /* the previous octet was '\r' (across segments) */
};

static void msg_size_add(struct msg_size *m, const char *p, size_t len)
{
	const char *end = p + len, *nl;

	m->size += len;
	m->vsize += len;
	if (len == 0)
		return;
	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		int cr = nl > p ? nl[-1] == '\r' : m->last_cr;
		if (!cr)
			m->vsize++;
		p = nl + 1;
	}
	m->last_cr = end[-1] == '\r';
}

static int write_all(int fd, struct iovec *iov, size_t n)
{
	while (n > 0) {
		int cnt = n > IOV_MAX ? IOV_MAX : (int)n;
		ssize_t w = writev(fd, iov, cnt);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return io_error(errno);
		}
		size_t left = (size_t)w;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0 && left > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
		if (w == 0 && n > 0 && iov->iov_len > 0)
			return -EIO;
	}
	return 0;
}

/* Opens the copy's Maildir and its tmp/ and new/ (no symbolic link below
 * data_dir); a Maildir deleted by hand is made again first. */
static int open_dirs(struct maildir_copy *c)
{
	int dfd, r = maildir_check(c->maildir);

	if (r < 0)
		return r;
	dfd = storage_open_dir(c->maildir);
	if (dfd < 0)
		return dfd;
	c->fd_tmp = storage_open_subdir(dfd, "tmp", c->maildir);
	c->fd_new = c->fd_tmp < 0 ? -1 : storage_open_subdir(dfd, "new", c->maildir);
	close(dfd);
	if (c->fd_tmp < 0)
		return c->fd_tmp;
	if (c->fd_new < 0)
		return c->fd_new;
	return 0;
}

/* Writes one copy to tmp/ and fsyncs it; on failure nothing is left. */
static int write_copy(struct maildir_copy *c, const struct iovec *body, size_t n_body,
		      const char *host, struct iovec *scratch)
{
	struct msg_size m = { 0, 0, 0 };
	size_t plen = c->prefix ? strlen(c->prefix) : 0;
	int fd = -1, r;

	msg_size_add(&m, c->prefix ? c->prefix : "", plen);
	for (size_t i = 0; i < n_body; i++)
		msg_size_add(&m, body[i].iov_base, body[i].iov_len);

	r = open_dirs(c);
	if (r < 0)
		return io_error(-r);
	for (int attempt = 0; ; attempt++) {
		storage_unique_name(host, m.size, m.vsize, c->name, sizeof(c->name));
		if ((size_t)snprintf(c->tmp_path, sizeof(c->tmp_path), "%s/tmp/%s", c->maildir, c->name) >=
			    sizeof(c->tmp_path) ||
		    (size_t)snprintf(c->new_path, sizeof(c->new_path), "%s/new/%s", c->maildir, c->name) >=
			    sizeof(c->new_path))
			return -ENAMETOOLONG;
		fd = FAILPOINT_ERRNO("storage/maildir/open") ? -1 :
			openat(c->fd_tmp, c->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST || attempt >= 10)
			return io_error(errno);
	}
	c->state = COPY_IN_TMP;

	scratch[0].iov_base = (void *)(c->prefix ? c->prefix : "");
	scratch[0].iov_len = plen;
	memcpy(scratch + 1, body, n_body * sizeof(*body));
	r = FAILPOINT_ERRNO("storage/maildir/write") ? io_error(errno) : write_all(fd, scratch, n_body + 1);
	/* A failed fsync is final: the kernel may have dropped the dirty pages
	 * and a second fsync would report success for data that is not there
	 * (the "fsyncgate" lesson), so the copy is given up, never retried. */
	if (r == 0 && (FAILPOINT_ERRNO("storage/maildir/fsync") || fsync(fd) < 0))
		r = io_error(errno);
	if (close(fd) < 0 && r == 0)
		r = io_error(errno);
	if (r < 0) {
		unlinkat(c->fd_tmp, c->name, 0);
		c->state = COPY_NONE;
	}
	return r;
}

/* Moves tmp/ -> new/ without replacing a file of the same name. */
static int publish(struct maildir_copy *c)
{
	if (FAILPOINT_ERRNO("storage/maildir/rename"))
		return io_error(errno);
	if (renameat2(c->fd_tmp, c->name, c->fd_new, c->name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return io_error(errno);
	/* A file system without RENAME_NOREPLACE: the name is unique anyway. */
	if (renameat(c->fd_tmp, c->name, c->fd_new, c->name) < 0)
		return io_error(errno);
	return 0;
}

static void undo(struct maildir_copy *copies, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct maildir_copy *c = &copies[i];
		if (c->state == COPY_IN_TMP) {
			unlinkat(c->fd_tmp, c->name, 0);
		} else if (c->state == COPY_IN_NEW) {
			if (unlinkat(c->fd_new, c->name, 0) < 0 && errno != ENOENT)
				log_error("maildir", NULL, "cannot take back a copy path=%s error=\"%s\"", c->new_path,
					  strerror(errno));
			/* Make the removal as durable as the rename may have been. */
			fsync(c->fd_new);
		}
		c->state = COPY_NONE;
	}
}

static void close_dirs(struct maildir_copy *copies, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (copies[i].fd_tmp >= 0)
			close(copies[i].fd_tmp);
		if (copies[i].fd_new >= 0)
			close(copies[i].fd_new);
		copies[i].fd_tmp = copies[i].fd_new = -1;
	}
}

static uint64_t copy_size(const struct maildir_copy *c, uint64_t body_size)
{
	return body_size + (c->prefix ? strlen(c->prefix) : 0);
}

int maildir_deliver(struct maildir_copy *copies, size_t n, const struct iovec *body, size_t n_body,
		    const char *host)
{
	struct iovec *scratch;
	uint64_t body_size = 0, used;
	int r = 0;

	if (n == 0 || (n_body > 0 && !body))
		return -EINVAL;
	for (size_t i = 0; i < n_body; i++)
		body_size += body[i].iov_len;
	for (size_t i = 0; i < n; i++) {
		copies[i].state = COPY_NONE;
		copies[i].error = 0;
		copies[i].fd_tmp = copies[i].fd_new = -1;
		copies[i].name[0] = copies[i].tmp_path[0] = copies[i].new_path[0] = '\0';
		if (!copies[i].maildir || !*copies[i].maildir)
			return -EINVAL;
	}

	/* Every quota first, so that a refusal writes nothing at all. */
	for (size_t i = 0; i < n; i++) {
		struct maildir_copy *c = &copies[i];
		if (c->quota == 0)
			continue;
		r = maildir_usage(c->maildir, &used);
		if (r < 0) {
			c->error = r;
			return r == -ENOSPC || r == -EDQUOT ? -ENOSPC : r;
		}
		if (used + copy_size(c, body_size) > c->quota) {
			c->error = -EDQUOT;
			r = -EDQUOT;
		}
	}
	if (r < 0)
		return r;

	scratch = xmalloc((n_body + 1) * sizeof(*scratch));
	for (size_t i = 0; i < n && r == 0; i++) {
		r = write_copy(&copies[i], body, n_body, host, scratch);
		if (r < 0)
			copies[i].error = r;
	}
	free(scratch);

	for (size_t i = 0; i < n && r == 0; i++) {
		r = publish(&copies[i]);
		if (r == 0)
			copies[i].state = COPY_IN_NEW;
		else
			copies[i].error = r;
	}
	/* As with the file's fsync, a failed directory fsync is not retried:
	 * the copies are taken back and the client tries again later. */
	for (size_t i = 0; i < n && r == 0; i++) {
		if (FAILPOINT_ERRNO("storage/maildir/fsync-dir") || fsync(copies[i].fd_new) < 0) {
			r = io_error(errno);
			copies[i].error = r;
		}
	}
	if (r < 0)
		undo(copies, n);
	close_dirs(copies, n);
	return r;
}
