#ifndef BUZON_SERVER_PRIVS_H
#define BUZON_SERVER_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/config.h"

/*
 * Who buzon runs as. Started as root, the server binds its ports, makes
 * data_dir its service user's ([server] user/group), then becomes that user
 * with no capability left and cannot become root again; the admin CLI run
 * as root does the same before it touches data_dir, so everything buzon
 * creates belongs to the service user. Started as anyone else, nothing
 * changes: buzon runs as that user.
 */

struct service_user {
	int drop;               /* 1: started as root, change to uid/gid */
	uid_t uid;
	gid_t gid;
	char name[64];
	char group[64];
};

/* Looks up [server] user and group when running as root (refusing root
 * itself as the service user); otherwise fills in the current user with
 * drop = 0. 0, or -1 with a one-line reason in err. */
int privs_resolve(const struct config *cfg, struct service_user *u, char *err, size_t errlen);

/* Creates data_dir (mode 0700, parents as needed) and, when running as
 * root, gives it to the service user: everything below it when data_dir
 * itself is not the service user's yet (a first start, a restore made as
 * root), else data_dir and the files directly in it. Symlinks are never
 * followed. Then checks that the service user can reach data_dir (every
 * parent searchable). 0, or -1 with a one-line reason in err. */
int privs_prepare_data_dir(const char *data_dir, const struct service_user *u, char *err, size_t errlen);

/* What `buzon check` says of data_dir without creating anything: it is a
 * directory, or could be made in the nearest directory that exists, and
 * the service user could reach and write it. 0, or -1 with err. */
int privs_check_data_dir(const char *data_dir, const struct service_user *u, char *err, size_t errlen);

/* Becomes the service user for good: supplementary groups, gid, uid, no
 * capabilities in any set, no_new_privs; checks that it worked. Does
 * nothing when u->drop is 0. 0, or -1 with a reason in err. */
int privs_drop(const struct service_user *u, char *err, size_t errlen);

/* Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit
 * now in force. */
unsigned privs_raise_fd_limit(void);

#endif
