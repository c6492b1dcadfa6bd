/* Unit tests of lib/log.c: the log file of [server] log_file and its reopen
 * after logrotate renamed it, while other threads keep logging. */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "tests/common/check.h"

static char dir[] = "/tmp/buzon-test-log-XXXXXX";

/* The file's content (NUL-terminated, malloc'd), or NULL. */
static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *data;
	long n;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	data = calloc(1, (size_t)n + 1);
	if (data && fread(data, 1, (size_t)n, fp) != (size_t)n) {
		free(data);
		data = NULL;
	}
	fclose(fp);
	return data;
}

static unsigned count(const char *text, const char *what)
{
	unsigned n = 0;

	for (const char *p = text; p && (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static atomic_int stop;

static void *writer(void *arg)
{
	unsigned long *n = arg;

	while (!atomic_load(&stop)) {
		log_info("test", NULL, "worker line n=%lu", *n);
		(*n)++;
	}
	return NULL;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

int main(void)
{
	char path[128], rotated[128], link_path[128], err[256];
	struct stat st;
	char *text, *old_text;
	pthread_t th[3];
	unsigned long lines[3] = { 0 };

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/buzon.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/buzon.log.1", dir);

	/* Standard error: nothing to reopen. */
	CHECK(log_reopen() == 0, "log_reopen without a file");

	CHECK(log_open_file(path, err, sizeof(err)) == 0, "log_open_file: %s", err);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "log file mode %o", st.st_mode & 0777);
	log_info("test", NULL, "first line");

	/* logrotate: rename, then SIGHUP -> log_reopen. */
	CHECK(rename(path, rotated) == 0, "rename");
	log_info("test", NULL, "after rename, before reopen");
	CHECK(log_reopen() == 1, "log_reopen");
	log_info("test", NULL, "after reopen");
	old_text = slurp(rotated);
	text = slurp(path);
	CHECK(old_text && strstr(old_text, "first line") && strstr(old_text, "after rename, before reopen"),
	      "old file: %s", old_text ? old_text : "(none)");
	CHECK(old_text && !strstr(old_text, "after reopen"), "a line after the reopen went to the old file");
	CHECK(text && strstr(text, "comp=log log file reopened path="), "the reopen is not logged in the new file: %s",
	      text ? text : "(none)");
	CHECK(text && strstr(text, "after reopen") && !strstr(text, "first line"), "new file: %s", text ? text : "(none)");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "new log file mode %o", st.st_mode & 0777);
	free(old_text);
	free(text);

	/* Reopens while three threads log: every line lands whole in one of
	 * the files (none lost to a closed descriptor, none cut). */
	unlink(rotated);
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, writer, &lines[i]);
	for (int k = 0; k < 50; k++) {
		char name[160];
		snprintf(name, sizeof(name), "%s/buzon.log.r%d", dir, k);
		CHECK(rename(path, name) == 0, "rename %d", k);
		CHECK(log_reopen() == 1, "reopen %d", k);
		usleep(1000);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	{
		unsigned long total = 0, found = 0, reopened = 0, bad = 0;
		for (int i = 0; i < 3; i++)
			total += lines[i];
		for (int k = -1; k < 50; k++) {
			char name[160];
			if (k < 0)
				snprintf(name, sizeof(name), "%s", path);
			else
				snprintf(name, sizeof(name), "%s/buzon.log.r%d", dir, k);
			text = slurp(name);
			CHECK(text != NULL, "%s is missing", name);
			found += count(text, " worker line n=");
			reopened += count(text, "log file reopened");
			/* Every line is whole: it starts with the date and ends in n=NUM. */
			for (char *l = text; l && *l;) {
				char *nl = strchr(l, '\n');
				if (!nl || strncmp(l, "20", 2) != 0)
					bad++;
				l = nl ? nl + 1 : NULL;
			}
			free(text);
		}
		CHECK(total > 0 && found == total, "%lu worker lines written, %lu found", total, found);
		/* 50 here and the one above, whose file became buzon.log.r0 */
		CHECK(reopened == 51, "%lu reopen lines, want 51", reopened);
		CHECK(bad == 0, "%lu broken lines", bad);
	}

	/* A reopen that cannot open the file keeps the old one and says why. */
	snprintf(link_path, sizeof(link_path), "%s/moved", dir);
	CHECK(rename(path, link_path) == 0, "rename");
	CHECK(symlink("/etc/passwd", path) == 0, "symlink");
	CHECK(log_reopen() == -ELOOP, "a symbolic link is refused");
	text = slurp(link_path);
	CHECK(text && strstr(text, "level=error comp=log cannot reopen the log file"),
	      "the failed reopen is not in the old file");
	free(text);
	log_info("test", NULL, "still logging");
	text = slurp(link_path);
	CHECK(text && strstr(text, "still logging"), "lines after a failed reopen are lost");
	free(text);
	log_set_fd(2);

	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (failures) {
		printf("log: %d check(s) failed\n", failures);
		return 1;
	}
	printf("log: all checks passed\n");
	return 0;
}
