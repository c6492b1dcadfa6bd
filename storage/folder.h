#ifndef BUZON_STORAGE_FOLDER_H
#define BUZON_STORAGE_FOLDER_H

#include <stddef.h>

/*
 * The folders of a Maildir (Maildir++): "INBOX" is the Maildir itself, any
 * other folder NAME is the directory "<maildir>/.NAME" with '.' as the
 * hierarchy separator ("Archive.2026"). Names are stored as given, which for
 * IMAP is modified UTF-7 (as Dovecot and Courier write them); the IMAP layer
 * converts and validates what clients send. Every call blocks on disk.
 */

/* 1 when name may be a folder: 1..200 octets, no '/', no control
 * characters, no empty level (leading, trailing or doubled '.'), not
 * "INBOX" in any case (that one always exists). */
int folder_name_valid(const char *name);

/* Lists INBOX and every folder, sorted; *names_r is a NULL-terminated array
 * to free with folder_list_free(). Returns the count or a negative code. */
int folder_list(const char *maildir, char ***names_r);
void folder_list_free(char **names);
/* 1 when the folder exists, 0 when not. */
int folder_exists(const char *maildir, const char *name);

/* Creates a folder; -EEXIST when it exists, -EINVAL for a bad name. */
int folder_create(const char *maildir, const char *name);
/* Deletes a folder and its messages (not its subfolders); -ENOENT, -EINVAL
 * (INBOX cannot be deleted). */
int folder_delete(const char *maildir, const char *name);
/* Renames a folder and its subfolders ("a" -> "b" also moves "a.x" to
 * "b.x"); -ENOENT, -EEXIST. Renaming INBOX moves its messages into a new
 * folder and leaves INBOX empty (RFC 3501 6.3.5). */
int folder_rename(const char *maildir, const char *from, const char *to);

/* Subscriptions: the "subscriptions" file, one name per line. */
int folder_subscriptions(const char *maildir, char ***names_r);
int folder_subscribe(const char *maildir, const char *name, int subscribe);

#endif
