/* IMAP commands of the search group: not written yet. */
#include "imap/imap-private.h"

const struct imap_cmd_def imap_cmds_search[] = {
	{ NULL, 0, NULL, 0 },
};
