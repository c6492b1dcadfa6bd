/* IMAP commands of the store group: not written yet. */
#include "imap/imap-private.h"

const struct imap_cmd_def imap_cmds_store[] = {
	{ NULL, 0, NULL, 0 },
};
