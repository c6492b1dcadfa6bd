/* IMAP commands of the append group: not written yet. */
#include "imap/imap-private.h"

const struct imap_cmd_def imap_cmds_append[] = {
	{ NULL, 0, NULL, 0 },
};
