#ifndef BUZON_STORAGE_MAILDIR_H
#define BUZON_STORAGE_MAILDIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * Maildir delivery. Every call blocks on disk: the server calls these only
 * from worker threads.
 *
 * File names: "<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<vsize>" where S is
 * the file size (LF line ends, as stored) and W the size with CRLF line ends
 * (what POP3 and IMAP count), as Dovecot writes them.
 */

/* Creates path/{tmp,new,cur} (mode 0700, parents as needed); 0 or negative errno.
 * No symbolic link below data_dir is followed (-ELOOP, logged). */
int maildir_create(const char *path);
/* Checks the Maildir at path: opened with no symbolic link followed below
 * data_dir (-ELOOP, logged), its tmp/, new/ and cur/ made again if they
 * were deleted (logged). -ENOENT when the Maildir itself is missing: only
 * the directory, which knows whether the user exists, makes that again
 * (dir_user_ensure_maildir()). 0 or a negative code. */
int maildir_check(const char *path);
/* Creates the Maildir++ folder path/.<name> with its tmp/new/cur and maildirfolder file. */
int maildir_create_folder(const char *path, const char *name);
/* Removes every file in tmp/ of every Maildir (and folder) under data_dir/mail;
 * returns the count removed or a negative code. Called once at start. */
int maildir_sweep_tmp(const char *data_dir);
/* Sums the message sizes (S= from names, or stat) in new/ and cur/ of the
 * Maildir and its folders into *bytes_r. */
int maildir_usage(const char *path, uint64_t *bytes_r);

/* One copy of a message for one Maildir. */
struct maildir_copy {
	const char *maildir;     /* destination */
	const char *prefix;      /* headers for this copy only (Delivered-To...), LF ends */
	uint64_t quota;          /* 0 = none; checked against maildir_usage() */
	/* results */
	char tmp_path[4200];
	char new_path[4200];
	/* private */
	char name[512];          /* the file name in tmp/ and new/ */
	int fd_tmp, fd_new;      /* the Maildir's tmp/ and new/, opened safely */
	int state;
	int error;               /* the code that concerns this copy (-EDQUOT: this
				  * one is over quota), 0 otherwise */
};

/*
 * Delivers one message to several Maildirs all-or-nothing: every copy
 * (copy->prefix, then the iovecs) is written to tmp/ and fsync'd; only when
 * all are written are they renamed into new/ and the new/ directories
 * fsync'd. On any failure nothing stays in new/ or tmp/.
 * Returns 0, -EDQUOT (a copy would exceed its quota; nothing written),
 * -ENOSPC, or another negative errno (I/O error). host is the name used in the
 * file names.
 */
int maildir_deliver(struct maildir_copy *copies, size_t n, const struct iovec *body, size_t n_body,
		    const char *host);

#endif
