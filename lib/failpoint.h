#ifndef BUZON_LIB_FAILPOINT_H
#define BUZON_LIB_FAILPOINT_H

/*
 * Fault injection for the test suite (libfiu). A build with the meson
 * option `failpoints` defines FIU_ENABLE and links libfiu; any other build
 * gets fiu-local.h's no-op macros, so a failpoint costs nothing there.
 *
 * A point is named "storage/<file>/<step>" and, when enabled with
 * `fiu-ctrl -c "enable name=POINT,failnum=ERRNO" PID`, makes the step fail
 * as if the system call had returned that errno (docs/testing.md).
 */

#include <errno.h>
#include <stdio.h>

#ifdef FIU_ENABLE
#include <fiu.h>
#include <fiu-control.h>
#include <stdlib.h>
#else
/* What libfiu's fiu-local.h does: a build without failpoints needs no libfiu. */
#define fiu_fail(name) 0
#endif

/* The errno to inject at point name, or 0 (the step runs as usual). A
 * failnum of 1 (fiu-ctrl's default) stands for EIO. */
#ifdef FIU_ENABLE
#include <pthread.h>

static inline void failpoint_init_once(void)
{
	fiu_init(0);
}
#endif

static inline int failpoint(const char *name)
{
	int e;

#ifdef FIU_ENABLE
	/* libfiu must be set up before its first check, in the server, the
	 * CLI and the unit tests alike. */
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, failpoint_init_once);
#endif
	e = fiu_fail(name);
	(void)name;
	return e == 1 ? EIO : e;
}

/* Sets errno to the injected code and evaluates to true at an enabled
 * point: `if (FAILPOINT_ERRNO("storage/x/write") || write(...) < 0)`. */
#define FAILPOINT_ERRNO(name) failpoint_set_errno(failpoint(name))

static inline int failpoint_set_errno(int e)
{
	if (e)
		errno = e;
	return e != 0;
}

/* Called once at start (server/main.c): lets the tests drive the points of
 * the running process through fiu-ctrl (fifos /tmp/fiu-ctrl-PID.in/.out).
 * Nothing in a build without failpoints. */
static inline void failpoints_start(void)
{
#ifdef FIU_ENABLE
	/* The fifo prefix fiu-ctrl uses by default: $TMPDIR/fiu-ctrl. */
	const char *tmp = getenv("TMPDIR");
	char base[4096];

	snprintf(base, sizeof(base), "%s/fiu-ctrl", tmp && *tmp ? tmp : "/tmp");
	fiu_init(0);
	fiu_rc_fifo(base);
#endif
}

#endif
