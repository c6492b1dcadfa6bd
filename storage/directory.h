#ifndef BUZON_STORAGE_DIRECTORY_H
#define BUZON_STORAGE_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include "lib/sasl.h"
#include "lib/lockout.h"

/*
 * The user directory: domains, users and aliases in data_dir/buzon.db
 * (SQLite, WAL). The schema comes from schema/ (embedded in the binary) and
 * is migrated when the directory is opened.
 *
 * A struct dir may be used from several threads at once (the connection is
 * opened in serialized mode); every call may block on disk, so the server
 * calls it only from worker threads or from the admin CLI, never from the
 * event loop thread.
 *
 * Addresses are stored lower-case. A local part is a dot-atom of at most 64
 * octets (no quoted local parts, no '/', not starting or ending with '.');
 * a domain is a host name of at most 253 octets.
 *
 * Functions return 0 (or a count) on success and a negative errno-style code
 * on failure; those that take err/errlen put a one-line, lower-case reason
 * there ("unknown domain example.org").
 */

struct dir;

/* Opens (creating if needed) data_dir/buzon.db and applies migrations. */
int dir_open(const char *data_dir, struct dir **dir_r, char *err, size_t errlen);
/* Closes the directory and sets *d to NULL. */
void dir_close(struct dir **d);
/* Returns the data_dir given to dir_open(). */
const char *dir_data_dir(const struct dir *d);
/* Opens buzon.db again when the file at its path is no longer the one the
 * connection reads (replaced by a restore): 1 when reopened, 0 when it is
 * the same file (nothing is cached otherwise, so nothing else to do), or a
 * negative code with the reason in err, the old connection kept. Blocks on
 * disk like every call here: not for the event loop thread. */
int dir_reopen(struct dir *d, char *err, size_t errlen);

/*
 * Says, creating nothing, whether data_dir can serve: an absolute path that
 * is a directory (not a symbolic link) the caller can read and write, or
 * that does not exist yet and whose nearest existing parent is a directory
 * the caller can write in; never inside /proc, /sys or /dev. 0, or a
 * negative errno with a one-line reason in err.
 */
int data_dir_check(const char *data_dir, char *err, size_t errlen);

/* Checks and lower-cases an address into out (size outlen); 0 or -EINVAL with reason. */
int dir_normalize_address(const char *address, char *out, size_t outlen, char *err, size_t errlen);

int dir_domain_add(struct dir *d, const char *domain, char *err, size_t errlen);
/* Fails with -EBUSY when the domain still has users or aliases. */
int dir_domain_del(struct dir *d, const char *domain, char *err, size_t errlen);
/* Calls cb for every domain in name order; returns the count or a negative code. */
int dir_domain_list(struct dir *d, void (*cb)(void *ctx, const char *domain), void *ctx);
/* 1 when the domain is local, 0 when not, negative on error. */
int dir_domain_exists(struct dir *d, const char *domain);

/* Adds a user with the password (hashed here, yescrypt, and SCRAM-SHA-1 and
 * SCRAM-SHA-256 secrets, sasl_scram_secret_make()) and quota in bytes
 * (0 = none) and creates the user's Maildir (with its default folders).
 * Refuses (-EEXIST) while anything exists at the user's Maildir path: the
 * mail of an earlier user of the name is never handed over by accident. */
int dir_user_add(struct dir *d, const char *address, const char *password, uint64_t quota,
		 char *err, size_t errlen);

enum dir_user_add_flags {
	/* Take over a Maildir found at the user's path (a restore from backup,
	 * or the mail of a deleted user moved back on purpose). */
	DIR_USER_REUSE_MAIL = 1 << 0,
};
/* dir_user_add() with enum dir_user_add_flags. */
int dir_user_add_flags(struct dir *d, const char *address, const char *password, uint64_t quota,
		       unsigned flags, char *err, size_t errlen);
/* Puts the Maildir path of address (data_dir/mail/<domain>/<localpart>) in
 * out, whether or not the user or the directory exists; 0 or negative. */
int dir_user_maildir(const struct dir *d, const char *address, char *out, size_t outlen);
/* Makes the Maildir of an existing user again when it is missing (deleted by
 * hand): 1 when made, 0 when it was there, -ENOENT when address is not a
 * user (nothing is made), another negative code on error. The row is read
 * under the directory's write lock, so a user being deleted never gets a new
 * empty Maildir (see dir_user_del()). */
int dir_user_ensure_maildir(struct dir *d, const char *address, char *err, size_t errlen);
/* 1 when address is a user (enabled or not), 0 when not (or not an address),
 * negative on error. */
int dir_user_exists(struct dir *d, const char *address);
/* Deletes the user from the directory, with the alias entries that point to
 * the user; returns how many of those went (>= 0). Then moves the Maildir
 * to data_dir/deleted/<domain>/<localpart>.<unix time>, out of reach of
 * delivery, POP3 and IMAP, and puts that path in moved_r (size movedlen;
 * "" when there was no Maildir; moved_r may be NULL). When the move fails
 * the user is deleted all the same and the error says where the Maildir
 * stays (and dir_user_add() refuses the name while it is there). */
int dir_user_del(struct dir *d, const char *address, char *moved_r, size_t movedlen, char *err,
		 size_t errlen);
/* Sets a new password: its yescrypt hash and its SCRAM secrets. Both here
 * and at dir_user_add(), a password SASL would carry changed (SASLprep:
 * control characters, non-ASCII spaces, unnormalized Unicode) is refused
 * with -EINVAL. */
int dir_user_passwd(struct dir *d, const char *address, const char *password, char *err, size_t errlen);
/* Sets a stored hash as is (import of $2b$, $6$, $y$ hashes); the user's
 * SCRAM secrets are removed (SCRAM returns at the next dir_user_passwd()). */
int dir_user_set_hash(struct dir *d, const char *address, const char *hash, char *err, size_t errlen);
int dir_user_set_quota(struct dir *d, const char *address, uint64_t quota, char *err, size_t errlen);
int dir_user_set_enabled(struct dir *d, const char *address, int enabled, char *err, size_t errlen);

struct dir_user {
	const char *address;
	uint64_t quota;
	int enabled;
};
/* Calls cb for every user (of one domain when domain is not NULL). */
int dir_user_list(struct dir *d, const char *domain,
		  void (*cb)(void *ctx, const struct dir_user *u), void *ctx);

/* Adds alias -> target (target must be a local user). alias may be "@domain" (catch-all). */
int dir_alias_add(struct dir *d, const char *alias, const char *target, char *err, size_t errlen);
/* Removes alias -> target, or every target of alias when target is NULL. */
int dir_alias_del(struct dir *d, const char *alias, const char *target, char *err, size_t errlen);
int dir_alias_list(struct dir *d, void (*cb)(void *ctx, const char *alias, const char *target), void *ctx);

enum dir_status {
	DIR_OK = 0,
	DIR_NO_USER,      /* local domain, no such user or alias: 550 5.1.1 */
	DIR_DISABLED,     /* the user exists but is disabled: 550 5.2.1 */
	DIR_NOT_LOCAL,    /* the domain is not ours (or the address tries to route): 550 5.7.1 */
	DIR_BAD_ADDRESS,  /* not an address we accept: 501/553 */
	DIR_TEMPFAIL,     /* the directory could not be read: 451 4.3.0 */
};

/* One local mailbox a recipient resolves to. */
struct dir_target {
	char address[320];   /* the user's canonical address: Delivered-To */
	char maildir[4096];  /* data_dir/mail/<domain>/<localpart> */
	uint64_t quota;      /* bytes, 0 = none */
};

#define DIR_MAX_TARGETS 64

/*
 * Resolves a recipient: exact user, then user after removing a +tag (the
 * delimiter; "" disables), then alias (exact, then with the tag removed),
 * then the catch-all alias "@domain". A disabled user gives DIR_DISABLED
 * (for an alias, disabled targets are skipped; if none is left, DIR_DISABLED).
 * Fills at most DIR_MAX_TARGETS targets and their count.
 */
enum dir_status dir_resolve(struct dir *d, const char *address, const char *delimiter,
			    struct dir_target *targets, size_t *n_r);

/* Which rule gave the postmaster's mailbox (dir_resolve_postmaster()). */
enum dir_postmaster_source {
	DIR_PM_DIRECTORY,   /* a user or alias postmaster@domain of the directory */
	DIR_PM_CONFIGURED,  /* the configured address ([server] postmaster) */
	DIR_PM_OLDEST,      /* the oldest enabled user (lowest id) */
};

/*
 * Resolves the postmaster (RFC 5321 4.5.1: "Postmaster" and postmaster@ every
 * local domain must be accepted). With a domain: a user or alias
 * postmaster@domain of the directory wins (DIR_NOT_LOCAL when the domain is
 * not local); without one (domain NULL), or when the domain has neither,
 * the configured address (resolved as dir_resolve() does, without tags) when
 * it is set and deliverable, else the oldest enabled user. DIR_NO_USER when
 * there is no enabled user at all. *source_r says which rule answered.
 */
enum dir_status dir_resolve_postmaster(struct dir *d, const char *domain, const char *configured,
				       struct dir_target *targets, size_t *n_r,
				       enum dir_postmaster_source *source_r);

/*
 * Checks a login. Returns 0 when the address is an enabled user whose hash
 * verifies the password, -EACCES otherwise (unknown user, disabled user and
 * wrong password look the same; a dummy hash is computed for unknown users so
 * that the time does not tell), or another negative code on error.
 * canonical_r (size 320) receives the canonical address on success.
 */
int dir_authenticate(struct dir *d, const char *address, const char *password, char *canonical_r);

/*
 * Reads the SCRAM secret of address for hash (RFC 5803 text, "" for a user
 * made before schema 0002 or with an imported hash), whether the user is
 * enabled and the canonical address: 1 when address is a user, 0 when not
 * (or not an address), negative on error. Quick (one indexed read).
 */
int dir_scram_lookup(struct dir *d, const char *address, enum sasl_scram_hash hash, struct sasl_scram_user *u_r);
/* Reads the key of the fake SCRAM salts (schema 0002 made it) for
 * sasl_ctx_new(); 0 or negative. */
int dir_sasl_secret(struct dir *d, unsigned char out[SASL_CTX_SECRET_LEN]);
/* Fills b with the directory's lookups for sasl_exchange_step():
 * dir_authenticate() and dir_scram_lookup(), ctx = d. */
void dir_sasl_backend(struct dir *d, struct sasl_backend *b);

/*
 * The failed-login table kept across restarts (schema/0003-auth-failures.sql,
 * lib/lockout.h). Blocking: the server calls them on a worker thread.
 *
 * dir_lockout_load: every stored address into a malloc'd array *r (NULL when
 * none) and *n_r; forgets the pending clears. dir_lockout_save: in one
 * transaction, takes the addresses cleared since the last save (a malloc'd
 * array of malloc'd strings in *cleared_r, *n_cleared_r; free with
 * dir_strings_free) and replaces the table with the n records, those
 * cleared left out; with r NULL it only takes the clears (the CLI removed
 * their rows) and writes nothing when there are none. 0 or a negative errno.
 */
int dir_lockout_load(struct dir *d, struct lockout_record **r, size_t *n_r);
int dir_lockout_save(struct dir *d, const struct lockout_record *r, size_t n, char ***cleared_r,
		     size_t *n_cleared_r);
void dir_strings_free(char **v, size_t n);
/* Calls cb for each stored address (the admin's list); 0 or negative. */
int dir_lockout_list(struct dir *d, void (*cb)(void *ctx, const struct lockout_record *r), void *ctx);
/* Forgets address (written as a server writes it) and tells a running
 * server to forget it too: 1 when it was stored, 0 when not, negative on
 * error. */
int dir_lockout_clear(struct dir *d, const char *address);

#endif
