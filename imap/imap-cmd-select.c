/* Selecting a mailbox and leaving it: SELECT, EXAMINE (with CONDSTORE and
 * QRESYNC, RFC 7162), CLOSE, UNSELECT (RFC 3691), CHECK, EXPUNGE and
 * UID EXPUNGE (RFC 4315). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imap-private.h"
#include "lib/log.h"
#include "lib/xalloc.h"

struct select {
	char name[256];
	bool readonly;
	bool condstore;
	/* QRESYNC (uidvalidity modseq [known-uids]) */
	bool qresync;
	uint32_t q_uidvalidity;
	uint64_t q_modseq;
	struct imap_seqset q_known;
	bool q_have_known;
	/* results */
	int error;
	char key[4400];
};

static void select_free(void *p)
{
	struct select *x = p;

	if (!x)
		return;
	imap_seqset_release(&x->q_known);
	free(x);
}

static const char *const system_flags = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

static int select_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct select *x = cmd->priv;
	struct mbox *m = NULL;
	char err[128];
	size_t n, recent, unseen;
	struct buf kw = BUF_INIT(0);
	const char *kwl;
	int r;

	/* Whatever happens, the old selection is gone (RFC 3501 6.3.1), and
	 * with it the saved search result (RFC 5182 2.1). */
	mbox_close(&s->mbox);
	imap_seqset_clear(&s->saved);
	r = mbox_open(s->maildir, x->name, x->readonly ? MBOX_READONLY : MBOX_TAKE_RECENT, &m, err, sizeof(err));
	if (r < 0) {
		x->error = r;
		if (r == -ENOENT || r == -EINVAL)
			imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", x->name);
		else
			imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Cannot open the mailbox");
		return IMAP_RUN_DONE;
	}
	n = mbox_count(m);
	/* Keywords in use become part of FLAGS and PERMANENTFLAGS (the
	 * storage keeps the list with the message list: no walk over it). */
	kwl = mbox_keywords(m);
	if (*kwl) {
		buf_addch(&kw, ' ');
		buf_adds(&kw, kwl);
	}
	recent = mbox_recent_count(m);
	unseen = mbox_first_unseen(m);
	free(s->kw_told);
	s->kw_told = NULL;
	imap_keywords_told(s, kwl, NULL);
	imap_cmd_untagged(cmd, "FLAGS (%s%s)", system_flags, kw.len ? kw.data : "");
	imap_cmd_untagged(cmd, "%zu EXISTS", n);
	imap_cmd_untagged(cmd, "%zu RECENT", recent);
	if (unseen)
		imap_cmd_untagged(cmd, "OK [UNSEEN %zu] First unseen", unseen);
	imap_cmd_untagged(cmd, "OK [UIDVALIDITY %u] UIDs valid", mbox_uidvalidity(m));
	imap_cmd_untagged(cmd, "OK [UIDNEXT %u] Predicted next UID", mbox_uidnext(m));
	if (x->readonly)
		imap_cmd_untagged(cmd, "OK [PERMANENTFLAGS ()] Read-only mailbox");
	else
		imap_cmd_untagged(cmd, "OK [PERMANENTFLAGS (%s%s \\*)] Flags permitted", system_flags,
				  kw.len ? kw.data : "");
	imap_cmd_untagged(cmd, "OK [HIGHESTMODSEQ %llu] Highest", (unsigned long long)mbox_highestmodseq(m));
	buf_release(&kw);

	if (x->qresync && x->q_uidvalidity == mbox_uidvalidity(m)) {
		uint32_t *gone = NULL;
		size_t n_gone = 0;
		if (mbox_vanished_since(m, x->q_modseq, &gone, &n_gone) == 0 && n_gone) {
			struct imap_seqset v = IMAP_SEQSET_INIT;
			for (size_t k = 0; k < n_gone; k++)
				if (!x->q_have_known || imap_seqset_contains(&x->q_known, gone[k]))
					imap_seqset_add(&v, gone[k]);
			if (v.count) {
				buf_adds(&cmd->out, "* VANISHED (EARLIER) ");
				imap_seqset_format(&v, &cmd->out);
				buf_adds(&cmd->out, "\r\n");
			}
			imap_seqset_release(&v);
		}
		free(gone);
		for (size_t i = 0; i < n; i++) {
			const struct mbox_msg *msg = mbox_get(m, i);
			if (msg->modseq <= x->q_modseq)
				continue;
			if (x->q_have_known && !imap_seqset_contains(&x->q_known, msg->uid))
				continue;
			buf_printf(&cmd->out, "* %zu FETCH (UID %u FLAGS ", i + 1, msg->uid);
			imap_write_flags(&cmd->out, imap_msg_flags(m, i), msg->keywords);
			buf_printf(&cmd->out, " MODSEQ (%llu))\r\n", (unsigned long long)msg->modseq);
		}
	}
	s->mbox = m;
	s->readonly = x->readonly;
	snprintf(s->mailbox, sizeof(s->mailbox), "%s", x->name);
	if (strcmp(x->name, "INBOX") == 0)
		snprintf(x->key, sizeof(x->key), "%s", s->maildir);
	else
		snprintf(x->key, sizeof(x->key), "%s/.%s", s->maildir, x->name);
	cmd->refreshed = true;   /* the view is fresh: no refresh before the tagged reply */
	imap_cmd_tagged(cmd, "OK", "[%s] %s completed", x->readonly ? "READ-ONLY" : "READ-WRITE",
			x->readonly ? "Examine" : "Select");
	return IMAP_RUN_DONE;
}

static void select_finish(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct select *x = cmd->priv;

	if (!s->mbox) {
		s->state = IMAP_AUTH;
		s->io.watch(s->ctx, NULL);
		imap_session_set_key(s, "");
		return;
	}
	s->state = IMAP_SELECTED;
	if (x->condstore)
		s->condstore = true;
	imap_session_set_key(s, x->key);
	s->io.watch(s->ctx, s->key);
	s->changed = false;
}

/* (CONDSTORE) or (QRESYNC (uidvalidity modseq [known-uids [seq-match]])) */
static bool select_params(struct imap_cmd *cmd, struct select *x, const struct imap_arg *a)
{
	const struct imap_arg *items;
	size_t n;

	if (!imap_arg_get_list(a, &items, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *q;
		size_t qn;
		if (imap_arg_atom_equals(&items[i], "CONDSTORE")) {
			x->condstore = true;
		} else if (imap_arg_atom_equals(&items[i], "QRESYNC") && i + 1 < n && cmd->s->qresync &&
			   imap_arg_get_list(&items[i + 1], &q, &qn) && qn >= 2 &&
			   imap_arg_get_number(&q[0], &x->q_uidvalidity) && x->q_uidvalidity &&
			   imap_arg_get_number64(&q[1], &x->q_modseq)) {
			x->qresync = true;
			x->condstore = true;
			if (qn >= 3) {
				const char *t;
				if (!imap_arg_get_atom(&q[2], &t) ||
				    imap_seqset_parse(&x->q_known, t, strlen(t), UINT32_MAX, 0) < 0)
					return false;
				x->q_have_known = true;
			}
			i++;
		} else {
			return false;
		}
	}
	return true;
}

static void cmd_select(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct select *x;
	const char *name;
	size_t len;

	if (cmd->count < 1 || cmd->count > 2 || !imap_arg_get_astring(&cmd->args[0], &name, &len)) {
		imap_cmd_bad(cmd, "SELECT needs a mailbox name");
		return;
	}
	x = xcalloc(1, sizeof(*x));
	imap_seqset_init(&x->q_known);
	cmd->priv = x;
	cmd->free_priv = select_free;
	x->readonly = strcmp(cmd->name, "EXAMINE") == 0;
	if (cmd->count == 2 && !select_params(cmd, x, &cmd->args[1])) {
		imap_cmd_bad(cmd, "Invalid SELECT parameters");
		return;
	}
	if (!imap_mailbox_name(name, len, x->name, sizeof(x->name))) {
		/* The old selection ends even so. */
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		x->name[0] = '\0';
	}
	if (s->state == IMAP_SELECTED)
		imap_cmd_untagged(cmd, "OK [CLOSED] Previous mailbox closed");
	cmd->run = select_run;
	cmd->finish = select_finish;
	if (!x->name[0])
		cmd->run = NULL;
	if (!cmd->run && s->state == IMAP_SELECTED) {
		/* Invalid name: deselect on a worker like any other close. */
		cmd->run = select_run;
		snprintf(x->name, sizeof(x->name), "%s", "..");
	}
}

/* ---- CLOSE, UNSELECT, CHECK, EXPUNGE ---- */

/* Removes the \Deleted messages (of the indexes in only, when given). */
static int expunge_deleted(struct imap_session *s, const struct imap_seqset *only)
{
	struct mbox *m = s->mbox;
	size_t n = mbox_count(m), k = 0, done = 0;
	uint32_t *uids = xcalloc(n + 1, sizeof(uint32_t));
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct mbox_msg *x = mbox_get(m, i);
		if ((x->flags & MBOX_DELETED) && (!only || imap_seqset_contains(only, (uint32_t)i + 1)))
			uids[k++] = x->uid;
	}
	r = mbox_expunge(m, uids, k, &done);
	free(uids);
	return r;
}

static int close_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;

	if (strcmp(cmd->name, "CLOSE") == 0 && !s->readonly)
		expunge_deleted(s, NULL);
	mbox_close(&s->mbox);
	imap_seqset_clear(&s->saved);
	cmd->refreshed = true;
	imap_cmd_tagged(cmd, "OK", "%s completed", cmd->name);
	return IMAP_RUN_DONE;
}

static void close_finish(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;

	if (strcmp(cmd->name, "CLOSE") == 0 && !s->readonly)
		s->io.publish(s->ctx, s->key);
	s->state = IMAP_AUTH;
	s->io.watch(s->ctx, NULL);
	imap_session_set_key(s, "");
}

static void cmd_close(struct imap_cmd *cmd)
{
	if (cmd->count) {
		imap_cmd_bad(cmd, "No arguments allowed");
		return;
	}
	cmd->run = close_run;
	cmd->finish = close_finish;
}

static int check_run(struct imap_cmd *cmd)
{
	imap_cmd_tagged(cmd, "OK", "%s completed", cmd->name);
	return IMAP_RUN_DONE;
}

static void cmd_check(struct imap_cmd *cmd)
{
	if (cmd->count) {
		imap_cmd_bad(cmd, "No arguments allowed");
		return;
	}
	cmd->run = check_run;
}

struct expunge {
	struct imap_seqset set;
	bool have_set;
	int error;
};

static void expunge_free(void *p)
{
	struct expunge *x = p;

	if (!x)
		return;
	imap_seqset_release(&x->set);
	free(x);
}

static int expunge_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct expunge *x = cmd->priv;

	x->error = expunge_deleted(s, x->have_set ? &x->set : NULL);
	if (x->error < 0)
		imap_cmd_tagged(cmd, "NO", "[EXPUNGEISSUED] Some messages could not be expunged");
	else
		imap_cmd_tagged(cmd, "OK", "Expunge completed");
	return IMAP_RUN_DONE;
}

static void expunge_finish(struct imap_cmd *cmd)
{
	cmd->s->io.publish(cmd->s->ctx, cmd->s->key);
}

static void cmd_expunge(struct imap_cmd *cmd)
{
	struct expunge *x;

	if (cmd->s->readonly) {
		imap_cmd_tagged(cmd, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (cmd->count != (cmd->uid ? 1u : 0u)) {
		imap_cmd_bad(cmd, cmd->uid ? "UID EXPUNGE needs a UID set" : "No arguments allowed");
		return;
	}
	x = xcalloc(1, sizeof(*x));
	imap_seqset_init(&x->set);
	cmd->priv = x;
	cmd->free_priv = expunge_free;
	if (cmd->uid) {
		if (!imap_cmd_seqset(cmd, &cmd->args[0], &x->set))
			return;
		x->have_set = true;
	}
	cmd->run = expunge_run;
	cmd->finish = expunge_finish;
}

const struct imap_cmd_def imap_cmds_select[] = {
	{ "SELECT", IMAP_AUTHED, cmd_select, 0 },
	{ "EXAMINE", IMAP_AUTHED, cmd_select, 0 },
	{ "CLOSE", IMAP_SELECTED, cmd_close, 0 },
	{ "UNSELECT", IMAP_SELECTED, cmd_close, 0 },
	{ "CHECK", IMAP_SELECTED, cmd_check, 0 },
	{ "EXPUNGE", IMAP_SELECTED, cmd_expunge, 0 },
	{ "UID EXPUNGE", IMAP_SELECTED, cmd_expunge, 0 },
	{ NULL, 0, NULL, 0 },
};
