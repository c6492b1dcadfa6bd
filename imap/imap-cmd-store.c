/* Changing flags and copying messages: STORE and UID STORE (RFC 3501 6.4.6,
 * with the UNCHANGEDSINCE modifier of RFC 7162 3.1.3), COPY and UID COPY
 * (RFC 3501 6.4.7, COPYUID of RFC 4315), MOVE and UID MOVE (RFC 6851). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imap-private.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "storage/directory.h"
#include "storage/folder.h"
#include "storage/maildir.h"

/* The keywords one message may carry, as a space-separated string. */
#define KEYWORDS_MAX 4096

/* ---- keyword lists: space-separated words, compared ignoring case ---- */

/* Appends the words of add that out does not hold yet. */
static void kw_merge(struct buf *out, const char *add)
{
	const char *k = add;

	while (k && *k) {
		size_t len = strcspn(k, " ");
		if (len && !mbox_keyword_listed(out->data, k, len)) {
			if (out->len)
				buf_addch(out, ' ');
			buf_add(out, k, len);
		}
		k += len;
		while (*k == ' ')
			k++;
	}
}

/* Appends the words of from that are not in drop. */
static void kw_minus(struct buf *out, const char *from, const char *drop)
{
	const char *k = from;

	while (k && *k) {
		size_t len = strcspn(k, " ");
		if (len && !mbox_keyword_listed(drop, k, len) && !mbox_keyword_listed(out->data, k, len)) {
			if (out->len)
				buf_addch(out, ' ');
			buf_add(out, k, len);
		}
		k += len;
		while (*k == ' ')
			k++;
	}
}

/* True when every word of a is in b. */
static bool kw_subset(const char *a, const char *b)
{
	const char *k = a;

	while (k && *k) {
		size_t len = strcspn(k, " ");
		if (len && !mbox_keyword_listed(b, k, len))
			return false;
		k += len;
		while (*k == ' ')
			k++;
	}
	return true;
}

static bool kw_same(const char *a, const char *b)
{
	return kw_subset(a, b) && kw_subset(b, a);
}

/* Gives the words of list the spelling they have in known: keywords are
 * case-insensitive (RFC 3501 2.3.2), so "work" joins an existing "Work". */
static void kw_respell(struct buf *list, const char *known)
{
	struct buf out = BUF_INIT(0);
	const char *k = list->data;

	while (k && *k) {
		size_t len = strcspn(k, " ");
		const char *w = known;
		bool found = false;

		while (w && *w && !found) {
			size_t wlen = strcspn(w, " ");
			if (wlen == len && strncasecmp(w, k, len) == 0) {
				if (out.len)
					buf_addch(&out, ' ');
				buf_add(&out, w, wlen);
				found = true;
			}
			w += wlen;
			while (*w == ' ')
				w++;
		}
		if (!found) {
			if (out.len)
				buf_addch(&out, ' ');
			buf_add(&out, k, len);
		}
		k += len;
		while (*k == ' ')
			k++;
	}
	buf_reset(list);
	if (out.len)
		buf_add(list, out.data, out.len);
	buf_release(&out);
}

/* ---- STORE ---- */

enum store_op { STORE_REPLACE, STORE_ADD, STORE_REMOVE };

struct store {
	struct imap_seqset set;     /* indexes (1-based) of the messages */
	enum store_op op;
	bool silent;
	bool unchangedsince;        /* RFC 7162 UNCHANGEDSINCE given */
	uint64_t since;
	bool announce_modseq;       /* CONDSTORE enabled by this command */
	uint32_t flags;
	struct buf kw;              /* keywords of the command */
	bool changed;               /* something was stored: publish */
};

static void store_free(void *p)
{
	struct store *x = p;

	if (!x)
		return;
	imap_seqset_release(&x->set);
	buf_release(&x->kw);
	free(x);
}

/* "* n FETCH (FLAGS (...) MODSEQ (m) UID u)": FLAGS unless .SILENT; with
 * CONDSTORE every FETCH carries MODSEQ and UID (RFC 7162 3.1), UID STORE
 * always gives the UID. */
static void write_fetch(struct imap_cmd *cmd, struct buf *out, size_t i, const struct mbox_msg *msg,
			uint32_t flags, const char *keywords, bool silent)
{
	bool condstore = cmd->s->condstore;
	const char *sep = "";

	buf_printf(out, "* %zu FETCH (", i + 1);
	if (!silent) {
		buf_adds(out, "FLAGS ");
		imap_write_flags(out, flags, keywords);
		sep = " ";
	}
	if (condstore) {
		buf_printf(out, "%sMODSEQ (%llu)", sep, (unsigned long long)msg->modseq);
		sep = " ";
	}
	if (condstore || cmd->uid)
		buf_printf(out, "%sUID %u", sep, msg->uid);
	buf_adds(out, ")\r\n");
}

/* A message the STORE names, between the look and the responses. */
struct todo {
	size_t i;
	const struct mbox_msg *now;   /* its entry in the fresh look */
	ssize_t change;               /* its entry in the changes, or -1 */
};

static int store_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct store *x = cmd->priv;
	struct mbox *m = imap_mbox(s), *cur = NULL;
	struct buf known = BUF_INIT(0), kw = BUF_INIT(0);
	struct imap_seqset modified = IMAP_SEQSET_INIT;
	struct imap_seqset_iter it;
	size_t n, expunged = 0, stored_kw = 0;
	struct todo *todo = NULL;
	struct mbox_flag_change *changes = NULL;
	size_t n_todo = 0, cap_todo = 0, n_changes = 0, cap_changes = 0;
	uint32_t seq;
	char err[128];
	int error = 0;

	if (!m) {
		imap_cmd_tagged(cmd, "NO", "No mailbox selected");
		return IMAP_RUN_DONE;
	}
	n = mbox_count(m);

	if (x->announce_modseq)
		imap_cmd_untagged(cmd, "OK [HIGHESTMODSEQ %llu] Highest",
				  (unsigned long long)mbox_highestmodseq(m));
	/* The view may be behind other sessions' changes (STORE may not bring
	 * it up to date: no EXPUNGE responses here). The flags to start from
	 * and the modseqs UNCHANGEDSINCE compares come from a fresh look at
	 * the index; the view is what the client numbers messages by. */
	if (mbox_open(s->maildir, s->mailbox, MBOX_READONLY, &cur, err, sizeof(err)) < 0) {
		log_warn("imap", s->sid, "store cannot reread the mailbox error=%s", err);
		cur = NULL;
	}
	if (x->op != STORE_REMOVE && x->kw.len) {
		buf_adds(&known, mbox_keywords(m));   /* what SELECT announced, give or take */
		kw_respell(&x->kw, known.data);
	}

	/* First what each message is to carry (from the fresh look), then
	 * every change in one index transaction, then the responses. */
	imap_seqset_iter_init(&it, &x->set);
	while (imap_seqset_iter_next(&it, &seq) && error == 0) {
		size_t i = seq - 1;
		const struct mbox_msg *now, *mine;
		uint32_t old, flags;
		struct todo *t;

		if (i >= n)
			break;
		mine = mbox_get(m, i);
		if (cur) {
			ssize_t j = mbox_find(cur, mine->uid);
			if (j < 0) {
				expunged++;
				continue;
			}
			now = mbox_get(cur, (size_t)j);
		} else {
			now = mine;
		}
		if (x->unchangedsince && now->modseq > x->since) {
			imap_seqset_add(&modified, cmd->uid ? mine->uid : seq);
			continue;
		}
		old = now->flags & ~(uint32_t)MBOX_RECENT;
		buf_reset(&kw);
		switch (x->op) {
		case STORE_REPLACE:
			flags = x->flags;
			kw_merge(&kw, x->kw.data);
			break;
		case STORE_ADD:
			flags = old | x->flags;
			kw_merge(&kw, now->keywords);
			kw_merge(&kw, x->kw.data);
			break;
		case STORE_REMOVE:
		default:
			flags = old & ~x->flags;
			kw_minus(&kw, now->keywords, x->kw.data);
			break;
		}
		if (kw.len > KEYWORDS_MAX) {
			imap_cmd_tagged(cmd, "NO", "[LIMIT] Too many keywords");
			error = -E2BIG;
			break;
		}
		if (n_todo == cap_todo) {
			cap_todo = cap_todo ? cap_todo * 2 : 64;
			todo = xrealloc(todo, cap_todo * sizeof(*todo));
		}
		t = &todo[n_todo++];
		t->i = i;
		t->now = now;
		t->change = -1;
		if (flags != old || !kw_same(kw.data ? kw.data : "", now->keywords)) {
			if (n_changes == cap_changes) {
				cap_changes = cap_changes ? cap_changes * 2 : 64;
				changes = xrealloc(changes, cap_changes * sizeof(*changes));
			}
			t->change = (ssize_t)n_changes;
			changes[n_changes++] = (struct mbox_flag_change){
				.i = i, .flags = flags, .keywords = xstrdup(kw.data ? kw.data : ""),
			};
			if (kw.len)
				stored_kw++;
		}
	}
	if (error == 0 && n_changes) {
		int r = mbox_set_flags_many(m, changes, n_changes);
		for (size_t k = 0; k < n_changes; k++)
			if (changes[k].result == 0)
				x->changed = true;
		if (r < 0) {
			log_error("imap", s->sid, "store failed error=%s", strerror(-r));
			imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Cannot store the flags");
			error = r;
		}
	}
	/* A keyword new to the client: FLAGS and PERMANENTFLAGS, as Dovecot
	 * sends them, before the FETCH responses that carry it. */
	if (error == 0 && stored_kw && x->changed)
		imap_keywords_told(s, mbox_keywords(m), &cmd->out);
	for (size_t k = 0; k < n_todo && error == 0; k++) {
		const struct todo *t = &todo[k];
		const struct mbox_msg *mine;

		if (t->change >= 0 && changes[t->change].result == -ENOENT) {
			expunged++;
			continue;
		}
		if (x->silent && !s->condstore)
			continue;
		/* What the message carries now: the view's entry after a change
		 * (the store updated it), the fresh one when nothing was stored
		 * (\Recent is this session's own). */
		mine = mbox_get(m, t->i);
		if (t->change >= 0)
			write_fetch(cmd, &cmd->out, t->i, mine, imap_msg_flags(m, t->i), mine->keywords, x->silent);
		else
			write_fetch(cmd, &cmd->out, t->i, t->now,
				    t->now->flags | (mbox_is_recent(m, t->i) ? MBOX_RECENT : 0), t->now->keywords,
				    x->silent);
	}
	for (size_t k = 0; k < n_changes; k++)
		free((char *)changes[k].keywords);
	free(changes);
	free(todo);

	if (error == 0) {
		if (modified.count) {
			struct buf b = BUF_INIT(0);
			imap_seqset_format(&modified, &b);
			imap_cmd_tagged(cmd, "OK", "[MODIFIED %s] Conditional STORE failed", b.data ? b.data : "");
			buf_release(&b);
		} else if (expunged) {
			imap_cmd_tagged(cmd, "NO", "[EXPUNGEISSUED] Some of the requested messages no longer exist");
		} else {
			imap_cmd_tagged(cmd, "OK", "Store completed");
		}
	}
	imap_seqset_release(&modified);
	buf_release(&known);
	buf_release(&kw);
	mbox_close(&cur);
	return IMAP_RUN_DONE;
}

static void store_finish(struct imap_cmd *cmd)
{
	struct store *x = cmd->priv;

	if (x->changed)
		cmd->s->io.publish(cmd->s->ctx, cmd->s->key);
}

/* The modifiers list "(UNCHANGEDSINCE n)" of RFC 4466 2.5. */
static bool store_modifiers(struct store *x, const struct imap_arg *list)
{
	const struct imap_arg *items;
	size_t n;

	if (!imap_arg_get_list(list, &items, &n) || n == 0 || n % 2)
		return false;
	for (size_t i = 0; i < n; i += 2) {
		if (!imap_arg_atom_equals(&items[i], "UNCHANGEDSINCE") || x->unchangedsince ||
		    !imap_arg_get_number64(&items[i + 1], &x->since))
			return false;
		x->unchangedsince = true;
	}
	return true;
}

/* "FLAGS", "+FLAGS", "-FLAGS", each with an optional ".SILENT". */
static bool store_item(struct store *x, const struct imap_arg *a)
{
	const char *t;

	if ((a->flags & IMAP_ARG_SECTION) || !imap_arg_get_atom(a, &t))
		return false;
	x->op = STORE_REPLACE;
	if (*t == '+' || *t == '-')
		x->op = *t++ == '+' ? STORE_ADD : STORE_REMOVE;
	if (strcasecmp(t, "FLAGS") == 0)
		return true;
	if (strcasecmp(t, "FLAGS.SILENT") == 0) {
		x->silent = true;
		return true;
	}
	return false;
}

static void cmd_store(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const struct imap_arg *flags;
	size_t k = 1, n_flags;
	struct store *x;

	if (cmd->count < 3) {
		imap_cmd_bad(cmd, "STORE needs a sequence set, an item and flags");
		return;
	}
	x = xcalloc(1, sizeof(*x));
	imap_seqset_init(&x->set);
	buf_init(&x->kw, 0);
	cmd->priv = x;
	cmd->free_priv = store_free;
	if (cmd->args[k].type == IMAP_ARG_LIST) {
		if (!store_modifiers(x, &cmd->args[k])) {
			imap_cmd_bad(cmd, "Invalid STORE modifiers");
			return;
		}
		k++;
	}
	if (k + 2 > cmd->count) {
		imap_cmd_bad(cmd, "STORE needs an item and flags");
		return;
	}
	if (!store_item(x, &cmd->args[k])) {
		imap_cmd_bad(cmd, "Invalid STORE item");
		return;
	}
	k++;
	/* A flag list, or flags without parentheses (RFC 3501 9: store-att-flags). */
	if (k + 1 == cmd->count && cmd->args[k].type == IMAP_ARG_LIST) {
		imap_arg_get_list(&cmd->args[k], &flags, &n_flags);
	} else {
		flags = &cmd->args[k];
		n_flags = cmd->count - k;
	}
	if (!imap_parse_flags(flags, n_flags, &x->flags, &x->kw)) {
		imap_cmd_bad(cmd, "Invalid flags (\\Recent and unknown system flags cannot be stored)");
		return;
	}
	if (!imap_cmd_seqset(cmd, &cmd->args[0], &x->set))
		return;
	if (s->readonly) {
		imap_cmd_tagged(cmd, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (x->unchangedsince && !s->condstore) {
		/* A CONDSTORE enabling command (RFC 7162 3.1). */
		s->condstore = true;
		x->announce_modseq = true;
	}
	cmd->run = store_run;
	cmd->finish = store_finish;
}

/* ---- COPY and MOVE ---- */

struct copy {
	struct imap_seqset set;     /* indexes (1-based) of the messages */
	bool move;
	char name[256];             /* the destination folder */
	char key[4400];             /* its notify key */
	bool copied, expunged;
};

static void copy_free(void *p)
{
	struct copy *x = p;

	if (!x)
		return;
	imap_seqset_release(&x->set);
	free(x);
}

/* Writes n numbers in their order, ascending runs as "a:b" (RFC 4315 uid-set). */
static void write_uids(struct buf *out, const uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (i)
			buf_addch(out, ',');
		if (j > i)
			buf_printf(out, "%u:%u", v[i], v[j]);
		else
			buf_printf(out, "%u", v[i]);
		i = j + 1;
	}
}

/* Worker: 1 when adding size octets would take the user over the quota,
 * 0 when not (or no quota), negative when it cannot be told. */
static int copy_over_quota(struct imap_session *s, uint64_t size)
{
	struct dir_target *t;
	size_t n = 0;
	uint64_t used = 0;
	int r = 0;

	if (!s->backend || !s->backend->dir)
		return 0;
	t = xcalloc(DIR_MAX_TARGETS, sizeof(*t));
	if (dir_resolve(s->backend->dir, s->user, "", t, &n) != DIR_OK || n != 1) {
		r = -EIO;
	} else if (t[0].quota > 0) {
		r = maildir_usage(t[0].maildir, &used);
		if (r == 0)
			r = used + size > t[0].quota;
	}
	free(t);
	return r;
}

static int copy_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct copy *x = cmd->priv;
	struct mbox *m = imap_mbox(s);
	size_t n, k = 0;
	uint64_t count = imap_seqset_count(&x->set), size = 0;
	uint32_t *uids, *dst, uidvalidity = 0, seq;
	struct imap_seqset_iter it;
	struct buf code = BUF_INIT(0);
	int r;

	if (!m) {
		imap_cmd_tagged(cmd, "NO", "No mailbox selected");
		return IMAP_RUN_DONE;
	}
	n = mbox_count(m);

	if (folder_exists(s->maildir, x->name) != 1) {
		imap_cmd_tagged(cmd, "NO", "[TRYCREATE] Mailbox doesn't exist: %s", x->name);
		return IMAP_RUN_DONE;
	}
	if (count > n)
		count = n;
	uids = xcalloc(count + 1, sizeof(uint32_t));
	dst = xcalloc(count + 1, sizeof(uint32_t));
	imap_seqset_iter_init(&it, &x->set);
	while (k < count && imap_seqset_iter_next(&it, &seq) && seq <= n) {
		const struct mbox_msg *msg = mbox_get(m, seq - 1);
		uids[k++] = msg->uid;
		size += msg->size;
	}
	if (k == 0) {
		imap_cmd_tagged(cmd, "OK", "No messages found");
		goto out;
	}
	/* A move takes no more room than before. */
	if (!x->move) {
		r = copy_over_quota(s, size);
		if (r < 0) {
			log_warn("imap", s->sid, "copy cannot check the quota error=%d", r);
			imap_cmd_tagged(cmd, "NO", "[UNAVAILABLE] Cannot check the quota, try again later");
			goto out;
		}
		if (r > 0) {
			imap_cmd_tagged(cmd, "NO", "[OVERQUOTA] Quota exceeded");
			goto out;
		}
	}
	/* MOVE renames (storage/mailbox-save.c): never in both folders. */
	r = (x->move ? mbox_move : mbox_copy)(m, uids, k, x->name, s->backend ? s->backend->hostname : NULL,
					     &uidvalidity, dst);
	if (r == -ENOENT && folder_exists(s->maildir, x->name) != 1) {
		imap_cmd_tagged(cmd, "NO", "[TRYCREATE] Mailbox doesn't exist: %s", x->name);
		goto out;
	}
	if (r == -ENOENT) {
		imap_cmd_tagged(cmd, "NO", "[EXPUNGEISSUED] Some of the requested messages no longer exist");
		goto out;
	}
	if (r == -ENOSPC || r == -EDQUOT) {
		imap_cmd_tagged(cmd, "NO", "[OVERQUOTA] Not enough disk space");
		goto out;
	}
	if (r < 0) {
		log_error("imap", s->sid, "copy failed to=%s error=%s", x->name, strerror(-r));
		imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Cannot copy the messages");
		goto out;
	}
	x->copied = true;
	buf_printf(&code, "COPYUID %u ", uidvalidity);
	write_uids(&code, uids, k);
	buf_addch(&code, ' ');
	write_uids(&code, dst, k);
	if (!x->move) {
		imap_cmd_tagged(cmd, "OK", "[%s] Copy completed", code.data);
		goto out;
	}
	/* RFC 6851 3.3: COPYUID goes untagged, before the EXPUNGE (or
	 * VANISHED) responses that the refresh after this run writes. */
	imap_cmd_untagged(cmd, "OK [%s] Moved UIDs", code.data);
	x->expunged = true;
	imap_cmd_tagged(cmd, "OK", "Move completed");
out:
	buf_release(&code);
	free(uids);
	free(dst);
	return IMAP_RUN_DONE;
}

static void copy_finish(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct copy *x = cmd->priv;

	if (x->copied)
		s->io.publish(s->ctx, x->key);
	if (x->expunged && strcmp(x->key, s->key) != 0)
		s->io.publish(s->ctx, s->key);
}

static void cmd_copy(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct copy *x;
	const char *name;
	size_t len;

	if (cmd->count != 2 || !imap_arg_get_astring(&cmd->args[1], &name, &len)) {
		imap_cmd_bad(cmd, "Needs a sequence set and a mailbox name");
		return;
	}
	x = xcalloc(1, sizeof(*x));
	imap_seqset_init(&x->set);
	cmd->priv = x;
	cmd->free_priv = copy_free;
	x->move = strstr(cmd->name, "MOVE") != NULL;
	if (!imap_cmd_seqset(cmd, &cmd->args[0], &x->set))
		return;
	if (x->move && s->readonly) {
		imap_cmd_tagged(cmd, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (!imap_mailbox_name(name, len, x->name, sizeof(x->name))) {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	if (strcmp(x->name, "INBOX") == 0)
		snprintf(x->key, sizeof(x->key), "%s", s->maildir);
	else
		snprintf(x->key, sizeof(x->key), "%s/.%s", s->maildir, x->name);
	cmd->run = copy_run;
	cmd->finish = copy_finish;
}

const struct imap_cmd_def imap_cmds_store[] = {
	{ "STORE", IMAP_SELECTED, cmd_store, IMAP_CMD_NO_REFRESH },
	{ "UID STORE", IMAP_SELECTED, cmd_store, 0 },
	{ "COPY", IMAP_SELECTED, cmd_copy, 0 },
	{ "UID COPY", IMAP_SELECTED, cmd_copy, 0 },
	{ "MOVE", IMAP_SELECTED, cmd_copy, 0 },
	{ "UID MOVE", IMAP_SELECTED, cmd_copy, 0 },
	{ NULL, 0, NULL, 0 },
};
