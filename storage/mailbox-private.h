#ifndef BUZON_STORAGE_MAILBOX_PRIVATE_H
#define BUZON_STORAGE_MAILBOX_PRIVATE_H

/*
 * The internals of storage/mailbox*.c, shared by those files only: the
 * struct mbox, the shared view, and the helpers one job offers another.
 * Every function here blocks on disk or takes a process-wide lock; all run
 * on worker threads like the public calls.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>
#include <sys/types.h>

#include "storage/mailbox.h"
#include "storage/storage-private.h"

#define INDEX_FILE "buzon-index.db"

struct view;

/* Which file an index connection has open, and how it looked. */
struct index_ident {
	dev_t dev;
	ino_t ino;
	int64_t mtime_ns;
	off_t size;
};

struct mbox {
	char *maildir;
	char *name;
	char *dir;              /* the folder's path */
	unsigned flags;
	sqlite3 *db;
	struct index_ident ident;  /* the file db has open (not for mem) */
	/* The index file cannot serve this session (disk full, I/O error,
	 * corrupt, replaced): db is an in-memory stand-in for the rest of the
	 * session, seeded from the list the session had (or from the file, read
	 * only). The Maildir stays the truth: flag renames and unlinks go on,
	 * the file catches up at the next sync of a session that can write. */
	int mem;
	/* The stand-in gives no UIDs: files new to it wait for the file (a UID
	 * given here would be given again to another message by the file). */
	int known_only;
	int mem_why;            /* the index failure that made the stand-in */
	/* The code of the last failed index call (mbox_db_err(), mbox_exec()):
	 * tells an index failure, which the stand-in can take over, from a
	 * Maildir one. Reset by whoever wants to know. */
	int index_err;
	int64_t id;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	uint32_t recent_from;   /* first UID no session had claimed as \Recent at the last sync */
	int scanned;            /* the last sync read the directories */
	int wrote;              /* the last sync changed message rows */
	int64_t sync_new_ns;    /* new/ and cur/ mtimes at the last full scan (0: unknown) */
	int64_t sync_cur_ns;
	/* The message list: the shared view's array, or (own) a private copy
	 * made by the first change this session makes to it; strings of a
	 * private copy point into view->pool or are the copy's own. */
	struct view *view;
	struct mbox_msg *msgs;
	size_t n;
	int own;
	/* \Recent of this session: the UID ranges [from, to) it claimed. */
	uint32_t (*recent)[2];
	size_t n_recent;
	char *own_keywords;     /* mbox_keywords() of a private copy */
	struct mbox_changes ch;
};

/* A loaded message list of one folder under one stamp (mailbox-view.c
 * explains the sharing). Immutable once sealed; freed with its last
 * reference. */
struct view {
	atomic_uint refs;
	char *key;                 /* the folder's path */
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	int64_t gen;
	size_t n;
	struct mbox_msg *msgs;     /* keywords and file point into pool */
	char *pool;
	size_t pool_len;
	size_t cap, pool_cap;      /* room while the view is built */
	size_t bytes;
	char *keywords;            /* the keywords in use, each once ("" when none) */
	size_t first_unseen;       /* 1 + index of the first message without \Seen; 0: none */
	struct view *prev, *next;  /* the cache's LRU list, most recent first */
};

/* ---- mailbox-index.c: the index connection ---- */

/* Opens the index of maildir: a pooled idle connection to the same index
 * file, or a new one (the file and its schema created as needed, a corrupt
 * file set aside and a new one made). *id_r: the file it has open. */
int mbox_index_open(const char *maildir, sqlite3 **db_r, struct index_ident *id_r);
/* Gives a connection back to the pool (no statement open, no transaction);
 * one to a file no longer at the path is closed. */
void mbox_index_release(const char *maildir, sqlite3 *db, const struct index_ident *id);
/* A new in-memory database with the index schema (mailbox.c's stand-in). */
int mbox_index_memory(const char *maildir, sqlite3 **db_r);
/* Moves the index files aside as buzon-index.db.corrupt-<time>[-wal|-shm]
 * (logged), if the file at the path is still the one id names. */
void mbox_index_set_aside(const char *maildir, const struct index_ident *id);
/* Is m's connection still to the file at the path, as it was? A file
 * written behind SQLite's back gets a new connection; -ESTALE when the file
 * was deleted, replaced or is now unreadable (the session's UIDs are the
 * old file's). */
int mbox_index_check(struct mbox *m);
/* FULL (on) or NORMAL durability for the next transactions of m: FULL
 * around those that give UIDs (the reason is at the definition). */
void mbox_durable(struct mbox *m, bool on);
/* sqlite3_step() with the failpoint storage/mailbox-index/step. */
int mbox_step(sqlite3_stmt *st);
/* A SQLite result code as a negative errno: -ENOSPC (disk full), -EUCLEAN
 * (corrupt, not a database), -EROFS, -EBUSY, -EIO or the system errno. */
int mbox_sql_errno(sqlite3 *db, int rc);
/* Takes an index connection again after mbox_sleep(); 0 or a negative code. */
int mbox_wake(struct mbox *m);
/* Logs the connection's last SQLite error for op what; returns it as
 * mbox_sql_errno() does. */
int mbox_db_err(struct mbox *m, const char *what);
/* Runs SQL without results on m's connection (failpoints at BEGIN and
 * COMMIT); 0 or a negative code (logged). */
int mbox_exec(struct mbox *m, const char *sql);

/* ---- mailbox-sync.c ---- */

/* Reads the folder's mailboxes row into m (creating it, with a new
 * UIDVALIDITY, on first sight); inside the caller's write transaction. */
int mbox_load_row(struct mbox *m);
/* Brings the index in line with the folder (one IMMEDIATE transaction). */
int mbox_sync(struct mbox *m);

/* ---- mailbox-view.c ---- */

struct view *mbox_view_new(const char *key, uint32_t uidvalidity, uint32_t uidnext, uint64_t modseq,
			   int64_t gen, size_t n_hint);
void mbox_view_add(struct view *v, const struct mbox_msg *x, const char *keywords, const char *file);
void mbox_view_seal(struct view *v);
void mbox_view_insert(struct view *v);
void mbox_view_unref(struct view *v);
/* The folder's current list (the cached view when its stamp matches). */
int mbox_view_read(struct mbox *m, struct view **v_r);
/* Makes v (a reference the caller gives) the session's list. */
void mbox_adopt_view(struct mbox *m, struct view *v);
/* Sets the session's list to the folder's current view. */
int mbox_load_view(struct mbox *m);
/* Drops the session's list (its private copy, its view reference). */
void mbox_free_view(struct mbox *m);
/* Makes the list this session's own before it changes an entry. */
void mbox_own_view(struct mbox *m);
/* Replaces a string of an entry of the private list. */
void mbox_set_string(struct mbox *m, char **field, char *value);
/* After a write that left the private list equal to the index: share it. */
void mbox_publish_own(struct mbox *m, uint32_t uidvalidity, uint32_t uidnext, uint64_t modseq, int64_t gen);
/* Adds [from, to) to the UIDs this session holds as \Recent. */
void mbox_recent_add(struct mbox *m, uint32_t from, uint32_t to);

/* ---- mailbox-flags.c ---- */

/* Drops the rows of messages whose files are gone (expunged, moved away)
 * from m's index, through its stand-in if the file cannot take it. */
int mbox_forget(struct mbox *m, const uint32_t *uids, size_t n);

/* ---- mailbox.c ---- */

/* The directory of folder name (INBOX: the Maildir) into *dir_r (malloc'd);
 * -EINVAL for a name that is not a folder name. */
int mbox_folder_path(const char *maildir, const char *name, char **dir_r);
/* Finds the current file of message i by its base name after a rename by
 * another reader; -ENOENT when it is gone. */
int mbox_relocate(struct mbox *m, size_t i);

/* After the index file failed it (why: the error): m continues on an
 * in-memory stand-in (see struct mbox), seeded from its list, or, before it
 * has one, from the file read only or from the Maildir alone. A corrupt
 * file is set aside first. 0 or a negative code (m unchanged). */
int mbox_go_memory(struct mbox *m, int why);

/* A folder's directories, opened with no symbolic link followed below
 * data_dir; -1 for those not opened. */
struct mbox_dirs {
	int dir, tmp, new, cur;
};
#define MBOX_DIRS_INIT { -1, -1, -1, -1 }
/* Opens dir and its new/ and cur/ (and tmp/ with want_tmp). */
int mbox_dirs_open(const char *dir, struct mbox_dirs *d, bool want_tmp);
void mbox_dirs_close(struct mbox_dirs *d);
/* The directory fd of file ("new/NAME" or "cur/NAME") and NAME, or -1. */
int mbox_dirs_at(const struct mbox_dirs *d, const char *file, const char **name_r);
/* The process remembers the highest UIDVALIDITY it has read or given: a
 * new one is above it and not below the clock, so an index rebuilt in the
 * same second as the one it replaces still tells clients a new value. */
void mbox_uidvalidity_seen(uint32_t v);
uint32_t mbox_uidvalidity_next(uint32_t at_least);

#endif
