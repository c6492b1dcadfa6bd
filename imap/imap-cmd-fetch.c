/* IMAP commands of the fetch group: not written yet. */
#include "imap/imap-private.h"

const struct imap_cmd_def imap_cmds_fetch[] = {
	{ NULL, 0, NULL, 0 },
};
