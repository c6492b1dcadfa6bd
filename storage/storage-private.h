#ifndef BUZON_STORAGE_PRIVATE_H
#define BUZON_STORAGE_PRIVATE_H

/* Helpers shared by the files of storage/ and nothing else. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Creates path and its missing parents with mode 0700 (mkdir -p); an
 * existing directory is fine. Below data_dir no symbolic link is followed
 * (-ELOOP, logged). 0 or a negative errno. */
int storage_mkdir_p(const char *path);

/* Opens the directory at path and fsyncs it: a rename, link or unlink in
 * it is then on disk. 0 or a negative errno. */
int storage_fsync_dir(const char *path);
/* A new unique Maildir base name for a file of size octets (vsize with
 * CRLF line ends): "<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<vsize>", as
 * Dovecot writes them, host with '/', ':' and ',' escaped. */
void storage_unique_name(const char *host, uint64_t size, uint64_t vsize, char *out, size_t outlen);
/* fsync() of an open directory; 0 or a negative errno. */
int storage_fsync_fd(int fd);

/* ---- path.c: no symbolic link below data_dir ---- */

/* Sets data_dir, below which no symbolic link is followed (dir_open()
 * calls it; unit tests call it with their own directory). 0 or -errno. */
int storage_set_root(const char *data_dir);

/* Opens path (absolute) with no symbolic link followed in its components
 * below data_dir (storage_set_root()); a path outside data_dir is opened as
 * is. open() flags; O_CLOEXEC is added. Returns an fd
 * or a negative errno: -ELOOP for a symbolic link (logged with the path). */
int storage_open_path(const char *path, int flags, mode_t mode);
/* storage_open_path(path, O_RDONLY | O_DIRECTORY). */
int storage_open_dir(const char *path);
/* Opens rel (one or more components, no "..") below dirfd without
 * following any symbolic link; fd or a negative errno (-ELOOP, -EXDEV),
 * not logged. */
int storage_openat(int dirfd, const char *rel, int flags, mode_t mode);
/* Opens the directory name below dirfd, no symbolic link followed; -ELOOP
 * is logged with what (the parent's path, for the log line). */
int storage_open_subdir(int dirfd, const char *name, const char *what);
/* For the unit tests: walk components with O_NOFOLLOW as on a kernel
 * without openat2. */
void storage_path_force_fallback(bool on);

#endif
