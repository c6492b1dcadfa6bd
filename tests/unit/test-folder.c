/* Unit tests of folders (Maildir++), APPEND and COPY on the mailbox index. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/folder.h"
#include "storage/mailbox.h"
#include "storage/maildir.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static int has(char **names, const char *name)
{
	for (int i = 0; names && names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

static char *slurp(const char *path, size_t *len_r)
{
	FILE *fp = fopen(path, "rb");
	char *p;
	long n;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	p = malloc((size_t)n + 1);
	*len_r = fread(p, 1, (size_t)n, fp);
	p[*len_r] = '\0';
	fclose(fp);
	return p;
}

int main(void)
{
	char root[] = "/tmp/buzon-folder-XXXXXX", err[128], path[1024];
	char **names = NULL;
	struct mbox *m = NULL, *s = NULL;
	uint32_t uv, uid, uid2, uids[2], dst[2];
	size_t len;
	char *text;
	struct stat st;

	if (!mkdtemp(root))
		return 2;
	CHECK(maildir_create(root) == 0);

	/* Names. */
	CHECK(folder_name_valid("Sent"));
	CHECK(folder_name_valid("Archive.2026"));
	CHECK(folder_name_valid("&U,BTFw-"));
	CHECK(!folder_name_valid(""));
	CHECK(!folder_name_valid(".x"));
	CHECK(!folder_name_valid("x."));
	CHECK(!folder_name_valid("a..b"));
	CHECK(!folder_name_valid("a/b"));
	CHECK(!folder_name_valid("../etc"));
	CHECK(!folder_name_valid("a\tb"));
	CHECK(!folder_name_valid("inbox"));

	/* Create, list, exists. */
	CHECK(folder_create(root, "Sent") == 0);
	CHECK(folder_create(root, "Sent") == -EEXIST);
	CHECK(folder_create(root, "Work.Projects") == 0);
	CHECK(folder_create(root, "a/b") == -EINVAL);
	CHECK(folder_list(root, &names) == 3);
	CHECK(names && strcmp(names[0], "INBOX") == 0 && has(names, "Sent") && has(names, "Work.Projects"));
	folder_list_free(names);
	CHECK(folder_exists(root, "INBOX") && folder_exists(root, "Sent") && !folder_exists(root, "Nope"));

	/* Append: the file lands in cur/ with its flags; UIDs ascend; the date is the mtime. */
	CHECK(mbox_append(root, "Sent", "Subject: hi\n\nbody\n", 18, MBOX_SEEN, "$Forwarded", 1000000000, "h",
			  &uv, &uid) == 0);
	CHECK(uid == 1 && uv != 0);
	CHECK(mbox_append(root, "Sent", "x\n", 2, 0, NULL, 0, "h", &uv, &uid2) == 0 && uid2 == 2);
	CHECK(mbox_append(root, "Nope", "x\n", 2, 0, NULL, 0, "h", &uv, &uid2) == -ENOENT);
	CHECK(mbox_open(root, "Sent", 0, &m, err, sizeof(err)) == 0);
	CHECK(mbox_count(m) == 2);
	CHECK(mbox_get(m, 0)->flags == MBOX_SEEN && strcmp(mbox_get(m, 0)->keywords, "$Forwarded") == 0);
	CHECK(mbox_get(m, 0)->internaldate == 1000000000);
	CHECK(mbox_get(m, 0)->size == 18 && mbox_get(m, 0)->vsize == 21);
	CHECK(strncmp(mbox_get(m, 0)->file, "cur/", 4) == 0 && strstr(mbox_get(m, 0)->file, ":2,S"));
	CHECK(mbox_path(m, 0, path, sizeof(path)) == 0);
	text = slurp(path, &len);
	CHECK(text && len == 18 && memcmp(text, "Subject: hi\n\nbody\n", 18) == 0);
	free(text);

	/* Copy into INBOX: new UIDs in order, flags and keywords kept, source intact. */
	uids[0] = 1;
	uids[1] = 2;
	CHECK(mbox_copy(m, uids, 2, "INBOX", "h", &uv, dst) == 0);
	CHECK(dst[0] == 1 && dst[1] == 2);
	CHECK(mbox_open(root, "INBOX", 0, &s, err, sizeof(err)) == 0);
	CHECK(mbox_count(s) == 2 && mbox_get(s, 0)->flags == MBOX_SEEN);
	CHECK(strcmp(mbox_get(s, 0)->keywords, "$Forwarded") == 0);
	CHECK(mbox_get(s, 0)->vsize == 21);
	mbox_close(&s);
	uids[0] = 9;
	CHECK(mbox_copy(m, uids, 1, "INBOX", "h", &uv, dst) == -ENOENT);
	CHECK(mbox_copy(m, uids, 0, "Nope", "h", &uv, dst) == -ENOENT);
	mbox_close(&m);

	/* Subscriptions. */
	CHECK(folder_subscribe(root, "Sent", 1) == 0);
	CHECK(folder_subscribe(root, "Sent", 1) == 0);
	CHECK(folder_subscribe(root, "Work.Projects", 1) == 0);
	CHECK(folder_subscriptions(root, &names) == 2 && has(names, "Sent"));
	folder_list_free(names);
	CHECK(folder_subscribe(root, "Sent", 0) == 0);
	CHECK(folder_subscriptions(root, &names) == 1 && !has(names, "Sent"));
	folder_list_free(names);
	CHECK(folder_subscribe(root, "../x", 1) == -EINVAL);

	/* Rename keeps UIDVALIDITY and UIDs, children follow. */
	CHECK(folder_create(root, "Work") == 0);
	CHECK(mbox_append(root, "Work.Projects", "p\n", 2, 0, NULL, 0, "h", &uv, &uid) == 0);
	CHECK(folder_rename(root, "Work", "Job") == 0);
	CHECK(folder_exists(root, "Job") && folder_exists(root, "Job.Projects") && !folder_exists(root, "Work.Projects"));
	CHECK(mbox_open(root, "Job.Projects", 0, &m, err, sizeof(err)) == 0);
	CHECK(mbox_uidvalidity(m) == uv && mbox_count(m) == 1 && mbox_get(m, 0)->uid == uid);
	mbox_close(&m);
	CHECK(folder_rename(root, "Job", "Job.Sub") == -EINVAL);
	CHECK(folder_rename(root, "Nope", "Other") == -ENOENT);
	CHECK(folder_rename(root, "Job", "Sent") == -EEXIST);

	/* Renaming INBOX moves its messages and leaves it empty. */
	CHECK(folder_rename(root, "INBOX", "Old") == 0);
	CHECK(mbox_open(root, "Old", 0, &m, err, sizeof(err)) == 0 && mbox_count(m) == 2);
	mbox_close(&m);
	CHECK(mbox_open(root, "INBOX", 0, &m, err, sizeof(err)) == 0 && mbox_count(m) == 0);
	mbox_close(&m);

	/* Delete removes the folder and its messages; INBOX cannot go. */
	CHECK(folder_delete(root, "Old") == 0);
	snprintf(path, sizeof(path), "%s/.Old", root);
	CHECK(stat(path, &st) < 0);
	CHECK(folder_delete(root, "Old") == -ENOENT);
	CHECK(folder_delete(root, "INBOX") == -EINVAL);
	/* A new folder of the same name starts over. */
	CHECK(folder_create(root, "Old") == 0);
	CHECK(mbox_open(root, "Old", 0, &m, err, sizeof(err)) == 0 && mbox_count(m) == 0 && mbox_uidnext(m) == 1);
	mbox_close(&m);

	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	if (system(path) != 0)
		fprintf(stderr, "cleanup failed\n");
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("folder: all checks passed\n");
	return 0;
}
