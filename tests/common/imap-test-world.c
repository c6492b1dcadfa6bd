#include "tests/common/imap-test-world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/directory.h"

/* SHA-256 crypt of "secret", 1000 rounds */
#define ALICE_HASH "$5$rounds=1000$fuzzsalt$qGCc4JvvMNwwgoU2eJ4FMcZ.jSqNaOPBoUN0Jv2w9O2"

void imap_test_world_make(struct imap_test_world *w, const char *template)
{
	char err[256];
	struct dir *d = NULL;

	memset(w, 0, sizeof(*w));
	snprintf(w->root, sizeof(w->root), "%s", template);
	if (!mkdtemp(w->root) || dir_open(w->root, &d, err, sizeof(err)) < 0 ||
	    dir_domain_add(d, "example.test", err, sizeof(err)) < 0 ||
	    dir_user_add(d, IMAP_TEST_ALICE, "secret", 0, err, sizeof(err)) < 0 ||
	    dir_user_set_hash(d, IMAP_TEST_ALICE, ALICE_HASH, err, sizeof(err)) < 0) {
		fprintf(stderr, "set-up: %s\n", err);
		exit(2);
	}
	w->backend.dir = d;
	w->backend.hostname = "imap.test";
	imap_config_defaults(&w->cfg);
	snprintf(w->cfg.hostname, sizeof(w->cfg.hostname), "imap.test");
}

int imap_test_world_remove(struct imap_test_world *w)
{
	char cmd[512];

	dir_close(&w->backend.dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->root);
	return system(cmd) != 0 ? -1 : 0;
}
