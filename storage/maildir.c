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
	int r = 0;

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

static int fsync_path(const char *path)
{
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int make_subdirs(const char *path)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	char p[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", path, sub[i]) >= sizeof(p))
			return -ENAMETOOLONG;
		int r = mkdir_one(p);
		if (r < 0)
			return r;
	}
	return 0;
}

int maildir_create(const char *path)
{
	int r;

	if (!path || !*path)
		return -EINVAL;
	r = storage_mkdir_p(path);
	if (r < 0)
		return r;
	r = make_subdirs(path);
	if (r < 0)
		return r;
	return fsync_path(path);
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
	char p[PATH_MAX], f[PATH_MAX];
	int fd, r;

	if (!path || !name || !folder_name_ok(name))
		return -EINVAL;
	if ((size_t)snprintf(p, sizeof(p), "%s/.%s", path, name) >= sizeof(p) ||
	    (size_t)snprintf(f, sizeof(f), "%s/maildirfolder", p) >= sizeof(f))
		return -ENAMETOOLONG;
	r = mkdir_one(p);
	if (r < 0)
		return r;
	r = make_subdirs(p);
	if (r < 0)
		return r;
	fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	r = fsync_path(p);
	if (r == 0)
		r = fsync_path(path);
	return r;
}

/* Removes every non-directory entry of dirfd/tmp; returns the count. */
static int sweep_one_tmp(int dirfd)
{
	DIR *dir;
	struct dirent *de;
	int fd, n = 0;

	fd = openat(dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 : -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
					     (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
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
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		int sub = openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
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
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
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

	fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
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

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
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

/* Writes one copy to tmp/ and fsyncs it; on failure nothing is left. */
static int write_copy(struct maildir_copy *c, const struct iovec *body, size_t n_body,
		      const char *host, struct iovec *scratch)
{
	struct msg_size m = { 0, 0, 0 };
	struct timeval tv;
	char name[512];
	size_t plen = c->prefix ? strlen(c->prefix) : 0;
	int fd = -1, r;

	msg_size_add(&m, c->prefix ? c->prefix : "", plen);
	for (size_t i = 0; i < n_body; i++)
		msg_size_add(&m, body[i].iov_base, body[i].iov_len);

	for (int attempt = 0; ; attempt++) {
		unsigned long q = atomic_fetch_add(&delivery_counter, 1) + 1;
		gettimeofday(&tv, NULL);
		snprintf(name, sizeof(name), "%lld.M%ldP%ldQ%lu.%s,S=%llu,W=%llu",
			 (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(), q, host,
			 (unsigned long long)m.size, (unsigned long long)m.vsize);
		if ((size_t)snprintf(c->tmp_path, sizeof(c->tmp_path), "%s/tmp/%s", c->maildir, name) >=
			    sizeof(c->tmp_path) ||
		    (size_t)snprintf(c->new_path, sizeof(c->new_path), "%s/new/%s", c->maildir, name) >=
			    sizeof(c->new_path))
			return -ENAMETOOLONG;
		fd = open(c->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST || attempt >= 10)
			return io_error(errno);
	}
	c->state = COPY_IN_TMP;

	scratch[0].iov_base = (void *)(c->prefix ? c->prefix : "");
	scratch[0].iov_len = plen;
	memcpy(scratch + 1, body, n_body * sizeof(*body));
	r = write_all(fd, scratch, n_body + 1);
	if (r == 0 && fsync(fd) < 0)
		r = io_error(errno);
	if (close(fd) < 0 && r == 0)
		r = io_error(errno);
	if (r < 0) {
		unlink(c->tmp_path);
		c->state = COPY_NONE;
	}
	return r;
}

/* Moves tmp/ -> new/ without replacing a file of the same name. */
static int publish(struct maildir_copy *c)
{
	if (renameat2(AT_FDCWD, c->tmp_path, AT_FDCWD, c->new_path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return io_error(errno);
	/* A file system without RENAME_NOREPLACE: the name is unique anyway. */
	if (rename(c->tmp_path, c->new_path) < 0)
		return io_error(errno);
	return 0;
}

static void undo(struct maildir_copy *copies, size_t n)
{
	char dir[4200];

	for (size_t i = 0; i < n; i++) {
		struct maildir_copy *c = &copies[i];
		if (c->state == COPY_IN_TMP) {
			unlink(c->tmp_path);
		} else if (c->state == COPY_IN_NEW) {
			unlink(c->new_path);
			/* Make the removal as durable as the rename may have been. */
			if ((size_t)snprintf(dir, sizeof(dir), "%s/new", c->maildir) < sizeof(dir))
				fsync_path(dir);
		}
		c->state = COPY_NONE;
	}
}

static uint64_t copy_size(const struct maildir_copy *c, uint64_t body_size)
{
	return body_size + (c->prefix ? strlen(c->prefix) : 0);
}

int maildir_deliver(struct maildir_copy *copies, size_t n, const struct iovec *body, size_t n_body,
		    const char *host)
{
	char hostbuf[256], dir[4200];
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
		copies[i].tmp_path[0] = copies[i].new_path[0] = '\0';
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

	host_part(host, hostbuf, sizeof(hostbuf));
	scratch = xmalloc((n_body + 1) * sizeof(*scratch));
	for (size_t i = 0; i < n && r == 0; i++) {
		r = write_copy(&copies[i], body, n_body, hostbuf, scratch);
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
	for (size_t i = 0; i < n && r == 0; i++) {
		if ((size_t)snprintf(dir, sizeof(dir), "%s/new", copies[i].maildir) >= sizeof(dir))
			r = -ENAMETOOLONG;
		else
			r = fsync_path(dir);
		if (r < 0) {
			r = io_error(-r);
			copies[i].error = r;
		}
	}
	if (r < 0) {
		undo(copies, n);
		return r;
	}
	return 0;
}
