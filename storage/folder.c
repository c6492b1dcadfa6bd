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
#include "lib/xalloc.h"
#include "storage/mailbox.h"
#include "storage/maildir.h"

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

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
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
	DIR *d = opendir(maildir);
	struct dirent *e;
	char **names;
	size_t n = 1, cap = 16;

	if (!d)
		return -errno;
	names = xcalloc(cap, sizeof(char *));
	names[0] = xstrdup("INBOX");
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (e->d_name[0] != '.' || !folder_name_valid(e->d_name + 1))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s/cur", maildir, e->d_name) >= sizeof(path))
			continue;
		if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
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
	struct stat st;

	if (strcmp(name, "INBOX") != 0 && !folder_name_valid(name))
		return 0;
	if (folder_dir(maildir, name, path, sizeof(path)) < 0 ||
	    strlen(path) + 5 >= sizeof(path))
		return 0;
	strcat(path, "/cur");
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
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
	fd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = remove_tree(fd, dotname);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0)
		mbox_index_forget(maildir, name);
	return r;
}

/* Moves every message of INBOX into the new folder to. */
static int rename_inbox(const char *maildir, const char *to)
{
	static const char *const subs[] = { "new", "cur" };
	char dst[PATH_MAX];
	int r;

	r = folder_create(maildir, to);
	if (r < 0)
		return r;
	for (size_t s = 0; s < 2; s++) {
		char from_dir[PATH_MAX], to_dir[PATH_MAX];
		DIR *d;
		struct dirent *e;

		snprintf(from_dir, sizeof(from_dir), "%s/%s", maildir, subs[s]);
		if (folder_dir(maildir, to, dst, sizeof(dst)) < 0 ||
		    (size_t)snprintf(to_dir, sizeof(to_dir), "%s/%s", dst, subs[s]) >= sizeof(to_dir))
			return -ENAMETOOLONG;
		d = opendir(from_dir);
		if (!d)
			return -errno;
		while ((e = readdir(d))) {
			char a[PATH_MAX + 256], b[PATH_MAX + 256];
			if (e->d_name[0] == '.')
				continue;
			snprintf(a, sizeof(a), "%s/%s", from_dir, e->d_name);
			snprintf(b, sizeof(b), "%s/%s", to_dir, e->d_name);
			if (rename(a, b) < 0 && errno != ENOENT) {
				r = -errno;
				break;
			}
		}
		closedir(d);
		if (r < 0)
			return r;
		fsync_dir(to_dir);
		fsync_dir(from_dir);
	}
	return 0;
}

int folder_rename(const char *maildir, const char *from, const char *to)
{
	char **names = NULL;
	size_t flen = strlen(from);
	int n, r = 0;

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
	/* The folder first, then its children: none of the new names exists. */
	for (int i = 0; i < n && r == 0; i++) {
		const char *x = names[i];
		char a[PATH_MAX], b[PATH_MAX];
		if (strcmp(x, from) != 0 && !(strncmp(x, from, flen) == 0 && x[flen] == '.'))
			continue;
		if ((size_t)snprintf(a, sizeof(a), "%s/.%s", maildir, x) >= sizeof(a) ||
		    (size_t)snprintf(b, sizeof(b), "%s/.%s%s", maildir, to, x + flen) >= sizeof(b) ||
		    strlen(to) + strlen(x + flen) > NAME_MAX_LEN) {
			r = -ENAMETOOLONG;
			break;
		}
		if (access(b, F_OK) == 0) {
			r = -EEXIST;
			break;
		}
		if (rename(a, b) < 0)
			r = -errno;
	}
	folder_list_free(names);
	fsync_dir(maildir);
	if (r == 0)
		mbox_index_rename(maildir, from, to);
	return r;
}

static int read_lines(const char *path, char ***names_r)
{
	FILE *fp = fopen(path, "r");
	char line[NAME_MAX_LEN + 8];
	char **names;
	size_t n = 0, cap = 16;

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
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/subscriptions", maildir) >= sizeof(path))
		return -ENAMETOOLONG;
	return read_lines(path, names_r);
}

int folder_subscribe(const char *maildir, const char *name, int subscribe)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	struct buf out = BUF_INIT(0);
	char **names = NULL;
	int n, found = 0, fd, lock, r = 0;

	if (strcmp(name, "INBOX") != 0 && !folder_name_valid(name))
		return -EINVAL;
	if ((size_t)snprintf(path, sizeof(path), "%s/subscriptions", maildir) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/subscriptions.tmp", maildir) >= sizeof(tmp))
		return -ENAMETOOLONG;
	/* One writer at a time: two sessions subscribing at once both count. */
	lock = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock < 0 || flock(lock, LOCK_EX) < 0) {
		if (lock >= 0)
			close(lock);
		return -EIO;
	}
	n = read_lines(path, &names);
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
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
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
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	buf_release(&out);
	close(lock);
	return r;
}
