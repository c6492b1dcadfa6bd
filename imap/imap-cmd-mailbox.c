/* IMAP commands of the mailbox group: not written yet. */
#include "imap/imap-private.h"

const struct imap_cmd_def imap_cmds_mailbox[] = {
	{ NULL, 0, NULL, 0 },
};
