#include "storage/folder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/failpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "storage/mailbox.h"
#include "storage/maildir.h"
#include "storage/storage-private.h"

#define NAME_MAX_LEN 200

int folder_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > NAME_MAX_LEN || name[0] == '.' || name[len - 1] == '.' || strstr(name, ".."))
		return 0;
	if (strcasecmp(name, "INBOX") == 0)
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '/')
			return 0;
	return 1;
}

static int cmp_names(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;

	/* INBOX first, then byte order. */
	if (strcmp(x, "INBOX") == 0)
		return -1;
	if (strcmp(y, "INBOX") == 0)
		return 1;
	return strcmp(x, y);
}

void folder_list_free(char **names)
{
	if (!names)
		return;
	for (char **p = names; *p; p++)
		free(*p);
	free(names);
}

int folder_list(const char *maildir, char ***names_r)
{
	int fd = storage_open_dir(maildir);
	DIR *d;
	struct dirent *e;
	char **names;
	size_t n = 1, cap = 16;

	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	names = xcalloc(cap, sizeof(char *));
	names[0] = xstrdup("INBOX");
	while ((e = readdir(d))) {
		char path[NAME_MAX + 8];
		struct stat st;

		if (e->d_name[0] != '.' || !folder_name_valid(e->d_name + 1))
			continue;
		/* A symbolic link is no folder of ours (lstat of each level). */
		snprintf(path, sizeof(path), "%s/cur", e->d_name);
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
		    fstatat(dirfd(d), path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (n + 2 > cap) {
			cap *= 2;
			names = xrealloc(names, cap * sizeof(char *));
		}
		names[n++] = xstrdup(e->d_name + 1);
	}
	closedir(d);
	names[n] = NULL;
	qsort(names, n, sizeof(char *), cmp_names);
	*names_r = names;
	return (int)n;
}

static int folder_dir(const char *maildir, const char *name, char *out, size_t outlen)
{
	int n = strcmp(name, "INBOX") == 0 ? snprintf(out, outlen, "%s", maildir)
					   : snprintf(out, outlen, "%s/.%s", maildir, name);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int folder_exists(const char *maildir, const char *name)
{
	char path[PATH_MAX];
	int fd;

	if (strcmp(name, "INBOX") != 0 && !folder_name_valid(name))
		return 0;
	if (folder_dir(maildir, name, path, sizeof(path)) < 0 || strlen(path) + 5 >= sizeof(path))
		return 0;
	strcat(path, "/cur");
	/* Through no symbolic link: a linked folder does not exist for us. */
	fd = storage_open_dir(path);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

int folder_create(const char *maildir, const char *name)
{
	if (!folder_name_valid(name))
		return -EINVAL;
	if (folder_exists(maildir, name))
		return -EEXIST;
	return maildir_create_folder(maildir, name);
}

/* Removes a directory tree that holds files and directories only. */
static int remove_tree(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *e;
	int r = 0;

	if (fd < 0)
		return errno == ENOTDIR ? (unlinkat(parent, name, 0) < 0 ? -errno : 0) : -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((e = readdir(d)) && r == 0) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0) {
			if (errno == EISDIR || errno == EPERM)
				r = remove_tree(dirfd(d), e->d_name);
			else if (errno != ENOENT)
				r = -errno;
		}
	}
	closedir(d);
	if (r == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

int folder_delete(const char *maildir, const char *name)
{
	char dotname[NAME_MAX_LEN + 2];
	int fd, r;

	if (!folder_name_valid(name))
		return -EINVAL;
	if (!folder_exists(maildir, name))
		return -ENOENT;
	snprintf(dotname, sizeof(dotname), ".%s", name);
	fd = storage_open_dir(maildir);
	if (fd < 0)
		return fd;
	r = FAILPOINT_ERRNO("storage/folder/unlink") ? -errno : remove_tree(fd, dotname);
	if (r == 0)
		r = storage_fsync_fd(fd);
	close(fd);
	if (r == 0)
		mbox_index_forget(maildir, name);
	return r;
}

/* Moves every message of INBOX into the new folder to. */
/* Moves every message of INBOX into the new folder to. */
static int rename_inbox(const char *maildir, const char *to)
{
	static const char *const subs[] = { "new", "cur" };
	char dot[NAME_MAX_LEN + 2];
	int mfd, tfd, r;

	r = folder_create(maildir, to);
	if (r < 0)
		return r;
	snprintf(dot, sizeof(dot), ".%s", to);
	mfd = storage_open_dir(maildir);
	if (mfd < 0)
		return mfd;
	tfd = storage_open_subdir(mfd, dot, maildir);
	if (tfd < 0) {
		close(mfd);
		return tfd;
	}
	for (size_t s = 0; s < 2 && r == 0; s++) {
		int from = storage_open_subdir(mfd, subs[s], maildir);
		int into = storage_open_subdir(tfd, subs[s], maildir);
		int fd;
		DIR *d = NULL;
		struct dirent *e;

		if (from < 0 || into < 0 || (fd = openat(from, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
		    !(d = fdopendir(fd))) {
			r = from < 0 ? from : into < 0 ? into : -errno;
		} else {
			while ((e = readdir(d))) {
				if (e->d_name[0] == '.')
					continue;
				if ((FAILPOINT_ERRNO("storage/folder/rename") ||
				     renameat(from, e->d_name, into, e->d_name) < 0) && errno != ENOENT) {
					r = -errno;
					break;
				}
			}
			closedir(d);
		}
		if (r == 0)
			r = storage_fsync_fd(into);
		if (r == 0)
			r = storage_fsync_fd(from);
		if (from >= 0)
			close(from);
		if (into >= 0)
			close(into);
	}
	close(tfd);
	close(mfd);
	return r;
}

int folder_rename(const char *maildir, const char *from, const char *to)
{
	char **names = NULL;
	size_t flen = strlen(from);
	int n, mfd, r = 0;

	if (!folder_name_valid(to))
		return -EINVAL;
	if (folder_exists(maildir, to))
		return -EEXIST;
	if (strcmp(from, "INBOX") == 0)
		return rename_inbox(maildir, to);
	if (!folder_name_valid(from))
		return -EINVAL;
	if (!folder_exists(maildir, from))
		return -ENOENT;
	/* "a" cannot become "a.b": it would move into itself. */
	if (strncmp(to, from, flen) == 0 && to[flen] == '.')
		return -EINVAL;
	n = folder_list(maildir, &names);
	if (n < 0)
		return n;
	mfd = storage_open_dir(maildir);
	if (mfd < 0) {
		folder_list_free(names);
		return mfd;
	}
	/* The folder first, then its children: none of the new names exists.
	 * folder_list() left out symbolic links, and renameat() in the
	 * Maildir's own descriptor moves names, never what a link points at. */
	for (int i = 0; i < n && r == 0; i++) {
		const char *x = names[i];
		char a[NAME_MAX_LEN + 2], b[2 * NAME_MAX_LEN + 2];
		struct stat st;
		if (strcmp(x, from) != 0 && !(strncmp(x, from, flen) == 0 && x[flen] == '.'))
			continue;
		if (strlen(to) + strlen(x + flen) > NAME_MAX_LEN) {
			r = -ENAMETOOLONG;
			break;
		}
		snprintf(a, sizeof(a), ".%s", x);
		snprintf(b, sizeof(b), ".%s%s", to, x + flen);
		if (fstatat(mfd, b, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			r = -EEXIST;
			break;
		}
		if (errno != ENOENT) {
			r = -errno;
			break;
		}
		if (FAILPOINT_ERRNO("storage/folder/rename") || renameat(mfd, a, mfd, b) < 0)
			r = -errno;
	}
	folder_list_free(names);
	if (storage_fsync_fd(mfd) < 0 && r == 0)
		r = -EIO;
	close(mfd);
	if (r == 0)
		mbox_index_rename(maildir, from, to);
	return r;
}

/* The lines of dirfd/name (absent: none), no symbolic link followed. */
static int read_lines(int dirfd, const char *name, char ***names_r)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	FILE *fp = fd >= 0 ? fdopen(fd, "r") : NULL;
	char line[NAME_MAX_LEN + 8];
	char **names;
	size_t n = 0, cap = 16;

	if (fd >= 0 && !fp)
		close(fd);
	names = xcalloc(cap, sizeof(char *));
	if (fp) {
		while (fgets(line, sizeof(line), fp)) {
			line[strcspn(line, "\r\n")] = '\0';
			if (!line[0])
				continue;
			if (n + 2 > cap) {
				cap *= 2;
				names = xrealloc(names, cap * sizeof(char *));
			}
			names[n++] = xstrdup(line);
		}
		fclose(fp);
	} else if (errno != ENOENT) {
		int e = -errno;
		free(names);
		return e;
	}
	names[n] = NULL;
	*names_r = names;
	return (int)n;
}

int folder_subscriptions(const char *maildir, char ***names_r)
{
	int dfd = storage_open_dir(maildir), r;

	if (dfd < 0)
		return dfd;
	r = read_lines(dfd, "subscriptions", names_r);
	close(dfd);
	return r;
}

int folder_subscribe(const char *maildir, const char *name, int subscribe)
{
	struct buf out = BUF_INIT(0);
	char **names = NULL;
	int n, found = 0, fd, lock, r = 0;

	if (strcmp(name, "INBOX") != 0 && !folder_name_valid(name))
		return -EINVAL;
	/* One writer at a time: two sessions subscribing at once both count. */
	lock = storage_open_dir(maildir);
	if (lock < 0)
		return lock;
	if (flock(lock, LOCK_EX) < 0) {
		close(lock);
		return -EIO;
	}
	n = read_lines(lock, "subscriptions", &names);
	if (n < 0) {
		close(lock);
		return n;
	}
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i], name) == 0) {
			found = 1;
			if (!subscribe)
				continue;
		}
		buf_printf(&out, "%s\n", names[i]);
	}
	folder_list_free(names);
	if (subscribe == found) {
		buf_release(&out);
		close(lock);
		return 0;
	}
	if (subscribe)
		buf_printf(&out, "%s\n", name);
	fd = openat(lock, "subscriptions.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		buf_release(&out);
		close(lock);
		return r;
	}
	if (write(fd, out.data ? out.data : "", out.len) != (ssize_t)out.len || fsync(fd) < 0)
		r = -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(lock, "subscriptions.tmp", lock, "subscriptions") < 0)
		r = -errno;
	if (r < 0)
		unlinkat(lock, "subscriptions.tmp", 0);
	buf_release(&out);
	close(lock);
	return r;
}
