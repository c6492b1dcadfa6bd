/*
 * Paths below data_dir, opened without following symbolic links.
 *
 * Everything buzon writes lives below data_dir; a symbolic link planted
 * there (a user's new/ pointing at /etc, a domain directory pointing at
 * another disk) must never make buzon write, read or create through it.
 * So every Maildir path is opened from a descriptor of data_dir with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) - glibc 2.36 has no
 * wrapper, hence syscall() - and, on a kernel without openat2 (ENOSYS),
 * one component at a time with O_NOFOLLOW. The file operations then use
 * *at() calls relative to the directory descriptors opened this way.
 * data_dir itself (and what is above it) is the administrator's and may be
 * a symbolic link.
 */
#include "storage/storage-private.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/failpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"

static struct {
	pthread_mutex_t lock;
	char *path;       /* data_dir as given, without trailing '/' */
	size_t len;
	int fd;           /* O_PATH descriptor of data_dir, -1 before storage_set_root() */
} root = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

/* Set when openat2 answered ENOSYS once (or by a test): component walk. */
static atomic_bool no_openat2;

int storage_set_root(const char *data_dir)
{
	size_t len = strlen(data_dir);
	int fd;

	while (len > 1 && data_dir[len - 1] == '/')
		len--;
	fd = open(data_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&root.lock);
	if (root.fd >= 0)
		close(root.fd);
	free(root.path);
	root.path = xstrndup(data_dir, len);
	root.len = len;
	root.fd = fd;
	pthread_mutex_unlock(&root.lock);
	return 0;
}

void storage_path_force_fallback(bool on)
{
	atomic_store(&no_openat2, on);
}

static bool link_error(int e)
{
	/* ELOOP: a symlink met with NO_SYMLINKS or O_NOFOLLOW; EXDEV: a path
	 * that would leave its starting directory (RESOLVE_BENEATH). */
	return e == ELOOP || e == EXDEV;
}

/* One component at a time from dirfd: no symlink, no "..". */
static int walk_open(int dirfd, const char *rel, int flags, mode_t mode)
{
	char *copy = xstrdup(rel), *save = NULL, *comp;
	int cur = dirfd, r = -EINVAL;

	comp = strtok_r(copy, "/", &save);
	if (!comp) {
		free(copy);
		r = openat(dirfd, ".", flags & ~(O_CREAT | O_EXCL), mode);
		return r < 0 ? -errno : r;
	}
	while (comp) {
		char *next = strtok_r(NULL, "/", &save);

		if (strcmp(comp, "..") == 0) {
			r = -EXDEV;
			break;
		}
		if (strcmp(comp, ".") == 0 && next) {
			comp = next;
			continue;
		}
		if (next)
			r = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		else
			r = openat(cur, comp, flags | O_NOFOLLOW, mode);
		if (r < 0) {
			struct stat st;
			r = -errno;
			/* O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR. */
			if (r == -ENOTDIR && fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
				r = -ELOOP;
			break;
		}
		if (cur != dirfd)
			close(cur);
		cur = dirfd;
		if (!next)
			break;     /* r is the answer */
		cur = r;
		comp = next;
	}
	if (cur != dirfd)
		close(cur);
	free(copy);
	return r;
}

int storage_openat(int dirfd, const char *rel, int flags, mode_t mode)
{
	struct open_how how;
	int fd, e = failpoint("storage/path/open");

	if (e)
		return -e;
	flags |= O_CLOEXEC;
	if (!atomic_load(&no_openat2)) {
		memset(&how, 0, sizeof(how));
		how.flags = (uint64_t)flags;
		how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
		/* EAGAIN: a rename raced the lookup; the kernel asks for a retry. */
		for (int tries = 0; tries < 8; tries++) {
			fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
			if (fd >= 0)
				return fd;
			if (errno != EAGAIN)
				break;
		}
		if (errno != ENOSYS)
			return -errno;
		atomic_store(&no_openat2, true);
	}
	return walk_open(dirfd, rel, flags, mode);
}

/* The part of path below the root ("" for the root itself), or NULL when
 * path is not below it. */
static const char *below_root(const char *path)
{
	if (!root.path || strncmp(path, root.path, root.len) != 0)
		return NULL;
	if (path[root.len] == '\0')
		return "";
	if (path[root.len] != '/')
		return NULL;
	return path + root.len + 1;
}

int storage_open_path(const char *path, int flags, mode_t mode)
{
	const char *rel;
	int fd, rootfd;

	pthread_mutex_lock(&root.lock);
	rel = below_root(path);
	rootfd = rel ? dup(root.fd) : -1;
	pthread_mutex_unlock(&root.lock);
	if (!rel) {
		/* Not below data_dir (data_dir itself before the root is set,
		 * or what is above it): the administrator's, followed as is. */
		fd = open(path, flags | O_CLOEXEC, mode);
		fd = fd < 0 ? -errno : fd;
	} else if (rootfd < 0) {
		fd = -errno;
	} else {
		fd = storage_openat(rootfd, *rel ? rel : ".", flags, mode);
		close(rootfd);
	}
	if (fd < 0 && link_error(-fd)) {
		log_error("store", NULL, "symbolic link refused below data_dir path=%s", path);
		fd = -ELOOP;
	}
	return fd;
}

int storage_open_dir(const char *path)
{
	return storage_open_path(path, O_RDONLY | O_DIRECTORY, 0);
}

int storage_open_subdir(int dirfd, const char *name, const char *what)
{
	int fd = storage_openat(dirfd, name, O_RDONLY | O_DIRECTORY, 0);

	if (fd < 0 && link_error(-fd)) {
		log_error("store", NULL, "symbolic link refused below data_dir path=%s/%s", what ? what : "?", name);
		fd = -ELOOP;
	}
	return fd;
}

int storage_fsync_fd(int fd)
{
	if (FAILPOINT_ERRNO("storage/path/fsync-dir") || fsync(fd) < 0)
		return -errno;
	return 0;
}
