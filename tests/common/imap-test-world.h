#ifndef BUZON_TESTS_IMAP_TEST_WORLD_H
#define BUZON_TESTS_IMAP_TEST_WORLD_H

#include "imap/imap-session.h"
#include "lib/config.h"

/*
 * What the IMAP session tests run over: a throwaway user directory in a
 * fresh directory under /tmp holding the domain example.test and the user
 * IMAP_TEST_ALICE with the password "secret" (stored as a SHA-256 crypt
 * hash of 1000 rounds, so that a login costs little), a backend on it named
 * imap.test, and the default [imap] settings with that host name. Tests add
 * users with dir_user_add(w->backend.dir, ...) and change w->cfg as needed.
 */
#define IMAP_TEST_ALICE "alice@example.test"

struct imap_test_world {
	char root[256];              /* the directory, removed at the end */
	struct imap_backend backend; /* dir is owned */
	struct imap_config cfg;
};

/* Makes the world in a directory named from template (a path ending in
 * XXXXXX); on failure says why on stderr and exits with status 2. */
void imap_test_world_make(struct imap_test_world *w, const char *template);
/* Closes the directory and removes root with everything in it; 0, or -1
 * when the removal failed. */
int imap_test_world_remove(struct imap_test_world *w);

#endif
