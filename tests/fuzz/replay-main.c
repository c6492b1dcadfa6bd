/*
 * Runs every file of a corpus directory through LLVMFuzzerTestOneInput, so
 * that fuzz targets build without libFuzzer (meson option fuzzing=false) and
 * their corpus replays as a normal test. Usage: replay CORPUS_DIR [FILE...]
 */

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs larger than this are not corpus material. */
#define REPLAY_MAX_INPUT (16 * 1024 * 1024)

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *data;
	size_t n;

	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) < 0 || st.st_size < 0 || st.st_size > REPLAY_MAX_INPUT) {
		fprintf(stderr, "replay: %s: cannot size or too large\n", path);
		fclose(f);
		return -1;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		fclose(f);
		return -1;
	}
	n = fread(data, 1, (size_t)st.st_size, f);
	fclose(f);
	if (n != (size_t)st.st_size) {
		fprintf(stderr, "replay: %s: short read\n", path);
		free(data);
		return -1;
	}
	LLVMFuzzerTestOneInput(data, n);
	free(data);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR [FILE...]\n", argv[0]);
		return 2;
	}
	for (int i = 2; i < argc; i++)
		if (run_file(argv[i]) < 0)
			failed = 1;
	d = opendir(argv[1]);
	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
			if (!names)
				abort();
		}
		names[n] = strdup(path);
		if (!names[n])
			abort();
		n++;
	}
	closedir(d);
	/* a stable order, so that a failure names the same file every time */
	if (n)
		qsort(names, n, sizeof(*names), cmp);
	for (size_t i = 0; i < n; i++) {
		if (run_file(names[i]) < 0)
			failed = 1;
		free(names[i]);
	}
	free(names);
	if (n == 0) {
		fprintf(stderr, "replay: %s: empty corpus\n", argv[1]);
		return 1;
	}
	printf("replayed %zu inputs from %s\n", n, argv[1]);
	return failed;
}
