#ifndef BUZON_STORAGE_MAILBOX_H
#define BUZON_STORAGE_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * A mailbox (one Maildir folder) as POP3 and IMAP see it: the Maildir is the
 * truth, the per-user index (<maildir>/buzon-index.db, SQLite WAL) is a
 * cache that gives each message a UID that is stable for the life of the
 * index, keeps flags, keywords, modseqs and sizes, and is rebuilt (with a new
 * UIDVALIDITY) if it is lost.
 *
 * Every call blocks on disk: sessions call these from worker threads only.
 * A struct mbox belongs to one session and is not shared between threads at
 * the same time.
 *
 * Opening or refreshing a mailbox reconciles the index with the folder:
 * files new to the index get the next UIDs in name order (oldest first);
 * files that vanished are expunged; flags changed by other Maildir readers in
 * the file name (":2,FRS") are taken over. The message list of an open mbox
 * changes only when mbox_refresh() is called, so POP3 keeps the list it had
 * at login.
 */

enum mbox_flag {
	MBOX_SEEN = 1 << 0,
	MBOX_ANSWERED = 1 << 1,
	MBOX_FLAGGED = 1 << 2,
	MBOX_DELETED = 1 << 3,
	MBOX_DRAFT = 1 << 4,
	MBOX_RECENT = 1 << 5, /* never in struct mbox_msg: see mbox_is_recent() */
};

struct mbox_msg {
	uint32_t uid;
	uint32_t flags;        /* enum mbox_flag */
	uint64_t size;         /* octets of the file (LF line ends) */
	uint64_t vsize;        /* octets with CRLF line ends: RFC822.SIZE, POP3 LIST */
	int64_t internaldate;  /* seconds since the epoch (file mtime at first sight) */
	uint64_t modseq;
	char *keywords;        /* space-separated, "" when none */
	char *file;            /* path relative to the folder: "new/NAME" or "cur/NAME:2,FS" */
};

enum mbox_open_flags {
	MBOX_READONLY = 1 << 0,     /* EXAMINE, STATUS: change nothing but the index sync */
	MBOX_TAKE_RECENT = 1 << 1,  /* SELECT: this session owns \Recent of new messages */
};

struct mbox;

/*
 * Opens folder name ("INBOX" for the Maildir root, or a Maildir++ folder
 * name without its leading dot, such as "Sent" or "Archive.2026") of the
 * Maildir at path. Returns 0, -ENOENT when the folder does not exist, or
 * another negative code with a reason in err.
 */
int mbox_open(const char *maildir, const char *name, unsigned flags, struct mbox **mbox_r,
	      char *err, size_t errlen);
void mbox_close(struct mbox **m);

uint32_t mbox_uidvalidity(const struct mbox *m);
uint32_t mbox_uidnext(const struct mbox *m);
/* The first UID no session has claimed as \Recent yet (STATUS RECENT of a
 * mailbox that is not selected counts the UIDs from here). */
uint32_t mbox_first_recent_uid(const struct mbox *m);
uint64_t mbox_highestmodseq(const struct mbox *m);
/* Messages in UID order, fixed between refreshes. */
size_t mbox_count(const struct mbox *m);
const struct mbox_msg *mbox_get(const struct mbox *m, size_t i);
/* Is message i \Recent for this session (it claimed the message at a
 * SELECT or refresh with MBOX_TAKE_RECENT)? */
bool mbox_is_recent(const struct mbox *m, size_t i);
/* How many messages are \Recent for this session. */
size_t mbox_recent_count(const struct mbox *m);
/* 1 + the index of the first message without \Seen; 0 when all are seen. */
size_t mbox_first_unseen(const struct mbox *m);
/* The keywords in use in the mailbox, space-separated, each once (in the
 * spelling first seen), "" when none; valid until the next call on m or
 * change to it. At most MBOX_KEYWORDS_MAX octets (more are left out). */
#define MBOX_KEYWORDS_MAX 8192
const char *mbox_keywords(struct mbox *m);
/* Is the keyword k (len octets) in the space-separated list (NULL: none)?
 * Keywords compare without regard to ASCII case (RFC 3501 2.3.2). */
bool mbox_keyword_listed(const char *list, const char *k, size_t len);
/* Index of the message with uid, or -1. */
ssize_t mbox_find(const struct mbox *m, uint32_t uid);
/* Full path of message i into out; 0 or -ENAMETOOLONG. */
int mbox_path(const struct mbox *m, size_t i, char *out, size_t outlen);
/* Opens message i for reading (O_RDONLY|O_CLOEXEC); if its file moved (a
 * flag change by another reader), finds it again. Returns an fd or -ENOENT
 * when it was expunged meanwhile. */
int mbox_open_msg(struct mbox *m, size_t i);

/*
 * Removes the messages with the given UIDs: unlinks their files, fsyncs the
 * folder and drops them from the index. Stops at the first failure and
 * returns it (the messages before it are gone, the rest are intact);
 * *done_r counts those removed. A file already gone counts as removed.
 */
int mbox_expunge(struct mbox *m, const uint32_t *uids, size_t n, size_t *done_r);

/* Sets the flags (not MBOX_RECENT) and keywords of message i: renames the
 * file to carry the new ":2," info, updates the index, gives the message a
 * new modseq. */
int mbox_set_flags(struct mbox *m, size_t i, uint32_t flags, const char *keywords);

/* Many mbox_set_flags() in one index transaction (STORE of a range).
 * keywords NULL keeps a message's keywords. Each entry's result is 0,
 * -ENOENT (its file is gone: expunged by someone else) or, after a failure
 * that stopped the batch, the error (entries not reached: -ECANCELED);
 * modseq is the entry's new modseq. Returns 0 or the error that stopped it
 * (changes made before it are kept). */
struct mbox_flag_change {
	size_t i;
	uint32_t flags;
	const char *keywords;
	int result;
	uint64_t modseq;
};
int mbox_set_flags_many(struct mbox *m, struct mbox_flag_change *c, size_t n);

/* What mbox_refresh() found. Arrays are owned by the mbox until the next refresh. */
struct mbox_changes {
	uint32_t *expunged;    /* UIDs gone since the last view */
	size_t n_expunged;
	size_t n_new;          /* messages appended at the end of the view */
	uint32_t *changed;     /* UIDs whose flags or keywords changed */
	size_t n_changed;
};

/* Reconciles again and updates the view; ch may be NULL. */
int mbox_refresh(struct mbox *m, struct mbox_changes *ch);

/*
 * Appends a message (data in stored form: LF line ends) to folder name of
 * maildir: written to tmp/, fsync'd, renamed into cur/ with its flags in the
 * name, the directory fsync'd, then given the next UID. internaldate (if > 0)
 * becomes the file's mtime. Returns 0 with the UIDVALIDITY and UID
 * (RFC 4315 APPENDUID), -ENOENT for a missing folder, -ENOSPC, or -EIO.
 */
int mbox_append(const char *maildir, const char *name, const char *data, size_t len, uint32_t flags,
		const char *keywords, int64_t internaldate, const char *host, uint32_t *uidvalidity_r,
		uint32_t *uid_r);

/*
 * Copies the messages with the given UIDs (all present in src's view) into
 * folder dst_name of the same Maildir, all or nothing: hard links with new
 * names, flags and keywords kept. dst_uids_r[k] receives the new UID of
 * uids[k] (RFC 4315 COPYUID). -ENOENT when a message or the folder is gone.
 */
int mbox_copy(struct mbox *src, const uint32_t *uids, size_t n, const char *dst_name, const char *host,
	      uint32_t *uidvalidity_r, uint32_t *dst_uids_r);

/*
 * Moves the messages with the given UIDs (all present in src's view) into
 * folder dst_name of the same Maildir (RFC 6851 MOVE): each file is
 * renamed, so a message is in one folder or the other at every moment,
 * even across a crash, never in both. Their rows go into the target's
 * index (new UIDs, flags and keywords kept) in the same transaction as the
 * renames; the source's rows are dropped after. All or nothing: 0 with
 * dst_uids_r[k] the new UID of uids[k] (COPYUID), -ENOENT when a message or
 * the folder is gone, or another negative code with nothing moved.
 */
int mbox_move(struct mbox *src, const uint32_t *uids, size_t n, const char *dst_name, const char *host,
	      uint32_t *uidvalidity_r, uint32_t *dst_uids_r);

/* UIDs expunged with a modseq above modseq (QRESYNC VANISHED (EARLIER)),
 * ascending; *uids_r is malloc'd. */
int mbox_vanished_since(struct mbox *m, uint64_t modseq, uint32_t **uids_r, size_t *n_r);

/* Lets go of the index connection of an idle mailbox (IMAP IDLE: a SQLite
 * connection costs ~100 KiB): it goes back to a small process-wide pool of
 * idle connections; the next call that needs one takes it from there. */
void mbox_sleep(struct mbox *m);

/* Index housekeeping for storage/folder.c: drop a folder's rows; rename a
 * folder and its children (UIDVALIDITY and UIDs are kept). */
int mbox_index_forget(const char *maildir, const char *name);
int mbox_index_rename(const char *maildir, const char *from, const char *to);

/* Flags as Maildir info letters ("DFRST" order) into out (size >= 8). */
void mbox_flags_to_info(uint32_t flags, char *out);
/* Parses the ":2,..." info of a file name into flags. */
uint32_t mbox_info_to_flags(const char *name);

/*
 * The FETCH cache: the ENVELOPE, BODYSTRUCTURE and BODY strings of each
 * message, kept in the index so that a FETCH of a large mailbox does not
 * read every file again (imap/imap-cmd-fetch.c fills it on first FETCH).
 * A row is tied to the message's file name and dies with the message.
 * A struct mbox_cache belongs to the thread that uses its mbox and must be
 * closed before the mbox; writes are batched in one transaction until
 * mbox_cache_flush(), which must come before any other write to the index
 * on the same mbox (mbox_set_flags() and the like) and before the thread
 * lets go of the mbox.
 */
struct buf;
struct mbox_cache;

enum mbox_cache_field {
	MBOX_CACHE_ENVELOPE = 1 << 0,
	MBOX_CACHE_BODYSTRUCTURE = 1 << 1,
	MBOX_CACHE_BODY = 1 << 2,
};

/* Opens the cache of an open mailbox; NULL when the index cannot serve it
 * (FETCH then works without it). */
struct mbox_cache *mbox_cache_open(struct mbox *m);
/* Flushes and frees the cache and sets *c to NULL. */
void mbox_cache_close(struct mbox_cache **c);
/* Reads what is cached for message i into the given buffers (each may be
 * NULL: not wanted); returns the enum mbox_cache_field bits found. */
unsigned mbox_cache_get(struct mbox_cache *c, size_t i, struct buf *envelope, struct buf *bodystructure,
			struct buf *body);
/* Stores the non-NULL strings for message i (others are kept); 0 or a
 * negative code (the cache is then left alone for this reader). */
int mbox_cache_put(struct mbox_cache *c, size_t i, const char *envelope, const char *bodystructure,
		   const char *body);
/* Commits the writes since the last flush; 0 or -EIO. */
int mbox_cache_flush(struct mbox_cache *c);

#endif