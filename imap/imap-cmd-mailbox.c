/* IMAP commands of the mailbox group: CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE, LIST (with LIST-EXTENDED, RFC 5258, LIST-STATUS, RFC 5819,
 * CHILDREN, RFC 3348, and SPECIAL-USE, RFC 6154), LSUB, STATUS, and QUOTA
 * (RFC 9208): GETQUOTA, GETQUOTAROOT, SETQUOTA.
 *
 * Names. Mailbox names are Maildir++ folder names in modified UTF-7 with
 * "." as the hierarchy delimiter (NAMESPACE (("" "."))). The Maildir++
 * layout can hold "a.b" without "a": such a parent exists only implicitly
 * and is listed as \Noselect (base LIST) or \NonExistent (LIST-EXTENDED),
 * as Dovecot does. CREATE does not create missing parents either (Dovecot's
 * Maildir++ behaviour). A name the framework refuses (imap_mailbox_name():
 * "..", "/", control characters, empty levels, over 200 octets, bad mUTF-7)
 * gets NO [CANNOT]. Folders found on disk whose names could not be sent by
 * a client (not canonical mUTF-7) are not listed.
 *
 * Decisions where RFC 3501 leaves a choice, as Dovecot does:
 *  - DELETE of the selected mailbox is allowed: the mailbox is closed first,
 *    the session returns to the authenticated state and gets an untagged
 *    "OK [CLOSED]". RENAME of the selected mailbox (or of one of its
 *    ancestors) does the same, since the open view would point at a folder
 *    that is gone. RENAME INBOX keeps INBOX selected: its messages leave it
 *    and the session sees them expunged.
 *  - DELETE of a folder with children removes the folder and its messages;
 *    the children stay, and the name becomes an implicit \Noselect parent
 *    (RFC 3501 6.3.4).
 *  - DELETE leaves the subscription list alone (RFC 3501 6.3.6: a name is
 *    never removed from it unilaterally). RENAME moves the subscriptions of
 *    the folder and its children to the new names, as Dovecot does; RENAME
 *    INBOX leaves them.
 *  - SUBSCRIBE needs an existing mailbox (NO [NONEXISTENT]); UNSUBSCRIBE of
 *    a name that is not subscribed is OK.
 *  - STATUS opens its own read-only view, also for the selected mailbox, so
 *    the session's view changes only through its own refresh.
 *  - Quota: one root "" for all folders of the user; STORAGE in KiB
 *    (usage and limit rounded down, as Dovecot). A user without a quota has
 *    no quota root. SETQUOTA is refused with NO [CANNOT]: quotas are set by
 *    the administrator (buzon user quota).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imap-private.h"
#include "imap/imap-quote.h"
#include "imap/imap-utf7.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "storage/directory.h"
#include "storage/folder.h"
#include "storage/maildir.h"

#define NAME_MAX_OCTETS 256      /* imap_mailbox_name() output buffer */
/* A pattern (reference included) longer than this once runs of wildcards
 * are folded matches nothing: a name has at most 200 octets, so a pattern
 * that can match has at most 200 other characters and 201 wildcards. */
#define PATTERN_MAX 401
#define PATTERNS_MAX 32          /* patterns of one LIST (RFC 5258 lists) */
#define MATCH_NAME_MAX 250       /* names compared by the matcher */

/* ---- helpers ---- */

/* The notify key of a folder: its directory. */
static void folder_key(const struct imap_session *s, const char *name, char *out, size_t outlen)
{
	if (strcmp(name, "INBOX") == 0)
		snprintf(out, outlen, "%s", s->maildir);
	else
		snprintf(out, outlen, "%s/.%s", s->maildir, name);
}

/* The special-use attribute (RFC 6154) of the default folders. */
static const char *special_use(const char *name)
{
	static const char *const map[][2] = {
		{ "Drafts", "\\Drafts" }, { "Sent", "\\Sent" }, { "Trash", "\\Trash" },
		{ "Junk", "\\Junk" }, { "Archive", "\\Archive" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (strcmp(name, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

/* A name that imap_mailbox_name() accepts and that names a folder we can
 * create: ".subscriptions.tmp" is storage's temporary file. */
static bool creatable_name(const char *name)
{
	return strcmp(name, "subscriptions.tmp") != 0;
}

/* The canonical name of an argument; false when it is not an astring or
 * not an acceptable name. */
static bool arg_mailbox(const struct imap_arg *a, char *out, size_t outlen, bool *syntax_ok)
{
	const char *str;
	size_t len;

	*syntax_ok = imap_arg_get_astring(a, &str, &len);
	if (!*syntax_ok)
		return false;
	return imap_mailbox_name(str, len, out, outlen);
}

/* Writes a mailbox name as an astring. */
static void write_name(struct buf *out, const char *name)
{
	if (imap_write_astring(out, name, strlen(name), 0) < 0)
		buf_adds(out, "\"\"");
}

/* A name on disk that a client can address: imap_mailbox_name() gives it back unchanged. */
static bool listable_name(const char *name)
{
	char canon[NAME_MAX_OCTETS];

	return imap_mailbox_name(name, strlen(name), canon, sizeof(canon)) && strcmp(canon, name) == 0;
}

/* ---- STATUS items (also for LIST-STATUS) ---- */

enum status_item {
	ST_MESSAGES = 1, ST_RECENT, ST_UIDNEXT, ST_UIDVALIDITY, ST_UNSEEN, ST_HIGHESTMODSEQ, ST_SIZE,
	ST_DELETED, ST_APPENDLIMIT, ST_DELETED_STORAGE,
};

static const struct {
	const char *name;
	enum status_item item;
} status_names[] = {
	{ "MESSAGES", ST_MESSAGES }, { "RECENT", ST_RECENT }, { "UIDNEXT", ST_UIDNEXT },
	{ "UIDVALIDITY", ST_UIDVALIDITY }, { "UNSEEN", ST_UNSEEN }, { "HIGHESTMODSEQ", ST_HIGHESTMODSEQ },
	{ "SIZE", ST_SIZE }, { "DELETED", ST_DELETED }, { "APPENDLIMIT", ST_APPENDLIMIT },
	{ "DELETED-STORAGE", ST_DELETED_STORAGE },
};

#define STATUS_ITEMS_MAX ARRAY_SIZE(status_names)

struct status_req {
	enum status_item items[STATUS_ITEMS_MAX];
	size_t n;
};

/* Parses "(item ...)": false on an unknown item or an empty list. */
static bool parse_status_items(const struct imap_arg *a, struct status_req *req)
{
	const struct imap_arg *items;
	size_t n;

	req->n = 0;
	if (!imap_arg_get_list(a, &items, &n) || n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		const char *t;
		enum status_item it = 0;
		bool dup = false;

		if (items[i].type != IMAP_ARG_ATOM || (items[i].flags & IMAP_ARG_SECTION) ||
		    !imap_arg_get_atom(&items[i], &t))
			return false;
		for (size_t k = 0; k < ARRAY_SIZE(status_names); k++)
			if (strcasecmp(t, status_names[k].name) == 0)
				it = status_names[k].item;
		if (!it)
			return false;
		for (size_t k = 0; k < req->n; k++)
			if (req->items[k] == it)
				dup = true;
		if (!dup)
			req->items[req->n++] = it;
	}
	return true;
}

static bool status_wants(const struct status_req *req, enum status_item it)
{
	for (size_t k = 0; k < req->n; k++)
		if (req->items[k] == it)
			return true;
	return false;
}

/* Worker: writes "* STATUS name (...)" for folder name into out. Returns 0,
 * -ENOENT when the folder does not exist, or another negative code. */
static int write_status(struct imap_session *s, const char *name, const struct status_req *req, struct buf *out)
{
	struct mbox *m = NULL;
	char err[128];
	uint64_t unseen = 0, size = 0, deleted = 0, deleted_bytes = 0, recent = 0;
	size_t n;
	int r;

	r = mbox_open(s->maildir, name, MBOX_READONLY, &m, err, sizeof(err));
	if (r < 0) {
		if (r != -ENOENT && r != -EINVAL)
			log_warn("imap", s->sid, "status open failed mailbox=%s error=%s", name, err);
		return r == -EINVAL ? -ENOENT : r;
	}
	n = mbox_count(m);
	for (size_t i = 0; i < n; i++) {
		const struct mbox_msg *x = mbox_get(m, i);
		if (!(x->flags & MBOX_SEEN))
			unseen++;
		if (x->flags & MBOX_DELETED) {
			deleted++;
			deleted_bytes += x->size;
		}
		size += x->vsize;
	}
	/* \Recent is per session: the selected mailbox reports this session's
	 * own \Recent messages; another one counts the messages no session
	 * has claimed yet (what a SELECT would see as \Recent). */
	if (s->mbox && strcmp(s->mailbox, name) == 0) {
		recent = mbox_recent_count(s->mbox);
	} else {
		for (size_t i = 0; i < n; i++)
			if (mbox_get(m, i)->uid >= mbox_first_recent_uid(m))
				recent++;
	}
	buf_adds(out, "* STATUS ");
	write_name(out, name);
	buf_adds(out, " (");
	for (size_t k = 0; k < req->n; k++) {
		if (k)
			buf_addch(out, ' ');
		switch (req->items[k]) {
		case ST_MESSAGES:
			buf_printf(out, "MESSAGES %zu", n);
			break;
		case ST_RECENT:
			buf_printf(out, "RECENT %llu", (unsigned long long)recent);
			break;
		case ST_UIDNEXT:
			buf_printf(out, "UIDNEXT %u", mbox_uidnext(m));
			break;
		case ST_UIDVALIDITY:
			buf_printf(out, "UIDVALIDITY %u", mbox_uidvalidity(m));
			break;
		case ST_UNSEEN:
			buf_printf(out, "UNSEEN %llu", (unsigned long long)unseen);
			break;
		case ST_HIGHESTMODSEQ:
			buf_printf(out, "HIGHESTMODSEQ %llu", (unsigned long long)mbox_highestmodseq(m));
			break;
		case ST_SIZE:
			buf_printf(out, "SIZE %llu", (unsigned long long)size);
			break;
		case ST_DELETED:
			buf_printf(out, "DELETED %llu", (unsigned long long)deleted);
			break;
		case ST_APPENDLIMIT:
			buf_printf(out, "APPENDLIMIT %llu", (unsigned long long)s->cfg.max_literal);
			break;
		case ST_DELETED_STORAGE:
			/* RFC 9208 DELETED-STORAGE: KiB freed by expunging the \Deleted
			 * messages, counted as the quota counts (file sizes). */
			buf_printf(out, "DELETED-STORAGE %llu", (unsigned long long)(deleted_bytes / 1024));
			break;
		}
	}
	buf_adds(out, ")\r\n");
	mbox_close(&m);
	return 0;
}

/* ---- CREATE, DELETE, RENAME ---- */

struct mbx_change {
	char name[NAME_MAX_OCTETS];
	char to[NAME_MAX_OCTETS];
	bool closed_selected;     /* the selected mailbox was closed */
	char **keys;              /* folder keys to publish, NULL-terminated */
	size_t n_keys;
};

static void change_free(void *p)
{
	struct mbx_change *x = p;

	if (!x)
		return;
	for (size_t i = 0; i < x->n_keys; i++)
		free(x->keys[i]);
	free(x->keys);
	free(x);
}

static void change_add_key(struct imap_session *s, struct mbx_change *x, const char *name)
{
	char key[4400];

	folder_key(s, name, key, sizeof(key));
	x->keys = xrealloc(x->keys, (x->n_keys + 2) * sizeof(char *));
	x->keys[x->n_keys++] = xstrdup(key);
	x->keys[x->n_keys] = NULL;
}

static void change_finish(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct mbx_change *x = cmd->priv;

	if (x->closed_selected) {
		s->state = IMAP_AUTH;
		s->io.watch(s->ctx, NULL);
		imap_session_set_key(s, "");
		s->mailbox[0] = '\0';
	}
	for (size_t i = 0; i < x->n_keys; i++)
		s->io.publish(s->ctx, x->keys[i]);
}

/* Worker: closes the selected mailbox when it is name or below it. */
static void close_selected_under(struct imap_cmd *cmd, struct mbx_change *x, const char *name)
{
	struct imap_session *s = cmd->s;
	size_t len = strlen(name);

	if (!s->mbox)
		return;
	if (strcmp(s->mailbox, name) != 0 && !(strncmp(s->mailbox, name, len) == 0 && s->mailbox[len] == '.'))
		return;
	mbox_close(&s->mbox);
	x->closed_selected = true;
	imap_cmd_untagged(cmd, "OK [CLOSED] Previous mailbox closed");
}

static struct mbx_change *change_new(struct imap_cmd *cmd)
{
	struct mbx_change *x = xcalloc(1, sizeof(*x));

	cmd->priv = x;
	cmd->free_priv = change_free;
	return x;
}

static int create_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct mbx_change *x = cmd->priv;
	int r;

	if (folder_exists(s->maildir, x->name)) {
		imap_cmd_tagged(cmd, "NO", "[ALREADYEXISTS] Mailbox already exists");
		return IMAP_RUN_DONE;
	}
	r = folder_create(s->maildir, x->name);
	if (r == -EEXIST) {
		imap_cmd_tagged(cmd, "NO", "[ALREADYEXISTS] Mailbox already exists");
	} else if (r == -EINVAL || r == -ENAMETOOLONG) {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
	} else if (r == -ENOSPC || r == -EDQUOT) {
		imap_cmd_tagged(cmd, "NO", "[OVERQUOTA] Not enough disk space");
	} else if (r < 0) {
		log_warn("imap", s->sid, "create failed mailbox=%s error=%s", x->name, strerror(-r));
		imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Cannot create the mailbox");
	} else {
		change_add_key(s, x, x->name);
		imap_cmd_tagged(cmd, "OK", "Create completed");
	}
	return IMAP_RUN_DONE;
}

/* CREATE name [(USE (attrs))]: RFC 6154 CREATE-SPECIAL-USE is not offered,
 * but a USE list that names the folder's own fixed attribute is accepted. */
static bool create_params(const char *name, const struct imap_arg *a, bool *use_ok)
{
	const struct imap_arg *items, *attrs;
	size_t n, na;
	const char *su = special_use(name);

	*use_ok = true;
	if (!imap_arg_get_list(a, &items, &n))
		return false;
	for (size_t i = 0; i < n; i += 2) {
		if (!imap_arg_atom_equals(&items[i], "USE") || i + 1 >= n || !imap_arg_get_list(&items[i + 1], &attrs, &na))
			return false;
		for (size_t k = 0; k < na; k++) {
			const char *t;
			if (!imap_arg_get_atom(&attrs[k], &t) || t[0] != '\\')
				return false;
			if (!su || strcasecmp(t, su) != 0)
				*use_ok = false;
		}
	}
	return true;
}

static void cmd_create(struct imap_cmd *cmd)
{
	struct mbx_change *x;
	const char *str;
	size_t len;
	bool use_ok = true;

	if (cmd->count < 1 || cmd->count > 2 || !imap_arg_get_astring(&cmd->args[0], &str, &len)) {
		imap_cmd_bad(cmd, "CREATE needs a mailbox name");
		return;
	}
	x = change_new(cmd);
	/* RFC 3501 6.3.3: a trailing delimiter says the client means to create
	 * names below it; the name itself is created without it. */
	if (len > 1 && str[len - 1] == '.')
		len--;
	if (!imap_mailbox_name(str, len, x->name, sizeof(x->name)) || !creatable_name(x->name)) {
		if (cmd->count == 2 && !create_params("", &cmd->args[1], &use_ok)) {
			imap_cmd_bad(cmd, "Invalid CREATE parameters");
			return;
		}
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	if (cmd->count == 2 && !create_params(x->name, &cmd->args[1], &use_ok)) {
		imap_cmd_bad(cmd, "Invalid CREATE parameters");
		return;
	}
	if (strcmp(x->name, "INBOX") == 0) {
		imap_cmd_tagged(cmd, "NO", "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	if (!use_ok) {
		imap_cmd_tagged(cmd, "NO", "[USEATTR] Special-use attributes are fixed by the mailbox name");
		return;
	}
	cmd->run = create_run;
	cmd->finish = change_finish;
}

static int delete_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct mbx_change *x = cmd->priv;
	int r;

	if (!folder_exists(s->maildir, x->name)) {
		imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", x->name);
		return IMAP_RUN_DONE;
	}
	/* The selected mailbox is closed first (as Dovecot does). */
	if (s->mbox && strcmp(s->mailbox, x->name) == 0) {
		mbox_close(&s->mbox);
		x->closed_selected = true;
		imap_cmd_untagged(cmd, "OK [CLOSED] Previous mailbox closed");
	}
	r = folder_delete(s->maildir, x->name);
	if (r == -ENOENT) {
		imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", x->name);
	} else if (r == -EINVAL) {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
	} else if (r < 0) {
		log_warn("imap", s->sid, "delete failed mailbox=%s error=%s", x->name, strerror(-r));
		imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Cannot delete the mailbox");
	} else {
		imap_cmd_tagged(cmd, "OK", "Delete completed");
	}
	/* Sessions that have it selected hear of it either way. */
	change_add_key(s, x, x->name);
	return IMAP_RUN_DONE;
}

static void cmd_delete(struct imap_cmd *cmd)
{
	struct mbx_change *x;
	bool syntax_ok;

	if (cmd->count != 1) {
		imap_cmd_bad(cmd, "DELETE needs a mailbox name");
		return;
	}
	x = change_new(cmd);
	if (!arg_mailbox(&cmd->args[0], x->name, sizeof(x->name), &syntax_ok)) {
		if (!syntax_ok)
			imap_cmd_bad(cmd, "DELETE needs a mailbox name");
		else
			imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	if (strcmp(x->name, "INBOX") == 0) {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] INBOX cannot be deleted");
		return;
	}
	cmd->run = delete_run;
	cmd->finish = change_finish;
}

/* Moves the subscriptions of from and its children to to. */
static void rename_subscriptions(struct imap_session *s, const char *from, const char *to)
{
	char **subs = NULL;
	size_t flen = strlen(from);
	int n = folder_subscriptions(s->maildir, &subs);

	for (int i = 0; i < n; i++) {
		char newname[2 * NAME_MAX_OCTETS];
		const char *x = subs[i];
		if (strcmp(x, from) != 0 && !(strncmp(x, from, flen) == 0 && x[flen] == '.'))
			continue;
		if ((size_t)snprintf(newname, sizeof(newname), "%s%s", to, x + flen) >= sizeof(newname))
			continue;
		if (folder_subscribe(s->maildir, x, 0) < 0 || folder_subscribe(s->maildir, newname, 1) < 0)
			log_warn("imap", s->sid, "rename: cannot move the subscription of %s", x);
	}
	if (n >= 0)
		folder_list_free(subs);
}

static int rename_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct mbx_change *x = cmd->priv;
	bool inbox = strcmp(x->name, "INBOX") == 0;
	char **names = NULL;
	size_t flen = strlen(x->name);
	int n, r;

	if (!folder_exists(s->maildir, x->name)) {
		imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", x->name);
		return IMAP_RUN_DONE;
	}
	if (folder_exists(s->maildir, x->to)) {
		imap_cmd_tagged(cmd, "NO", "[ALREADYEXISTS] Target mailbox already exists");
		return IMAP_RUN_DONE;
	}
	if (!inbox && strncmp(x->to, x->name, flen) == 0 && x->to[flen] == '.') {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Cannot rename a mailbox below itself");
		return IMAP_RUN_DONE;
	}
	if (!inbox)
		close_selected_under(cmd, x, x->name);
	/* The folders that move, for the notifications. */
	n = inbox ? -1 : folder_list(s->maildir, &names);
	r = folder_rename(s->maildir, x->name, x->to);
	if (r == -ENOENT) {
		imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", x->name);
	} else if (r == -EEXIST) {
		imap_cmd_tagged(cmd, "NO", "[ALREADYEXISTS] Target mailbox already exists");
	} else if (r == -EINVAL || r == -ENAMETOOLONG) {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
	} else if (r < 0) {
		log_warn("imap", s->sid, "rename failed from=%s to=%s error=%s", x->name, x->to, strerror(-r));
		imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Cannot rename the mailbox");
	} else {
		if (!inbox)
			rename_subscriptions(s, x->name, x->to);
		imap_cmd_tagged(cmd, "OK", "Rename completed");
	}
	change_add_key(s, x, x->name);
	change_add_key(s, x, x->to);
	for (int i = 0; i < n; i++) {
		char moved[2 * NAME_MAX_OCTETS];
		if (strncmp(names[i], x->name, flen) != 0 || names[i][flen] != '.')
			continue;
		change_add_key(s, x, names[i]);
		if ((size_t)snprintf(moved, sizeof(moved), "%s%s", x->to, names[i] + flen) < sizeof(moved))
			change_add_key(s, x, moved);
	}
	if (n >= 0)
		folder_list_free(names);
	return IMAP_RUN_DONE;
}

static void cmd_rename(struct imap_cmd *cmd)
{
	struct mbx_change *x;
	bool ok1, ok2, good1, good2;

	if (cmd->count != 2) {
		imap_cmd_bad(cmd, "RENAME needs two mailbox names");
		return;
	}
	x = change_new(cmd);
	good1 = arg_mailbox(&cmd->args[0], x->name, sizeof(x->name), &ok1);
	good2 = arg_mailbox(&cmd->args[1], x->to, sizeof(x->to), &ok2);
	if (!good1 || !good2) {
		if (!ok1 || !ok2)
			imap_cmd_bad(cmd, "RENAME needs two mailbox names");
		else
			imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	if (strcmp(x->to, "INBOX") == 0) {
		imap_cmd_tagged(cmd, "NO", "[ALREADYEXISTS] Target mailbox already exists");
		return;
	}
	if (!creatable_name(x->to)) {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	cmd->run = rename_run;
	cmd->finish = change_finish;
}

/* ---- SUBSCRIBE, UNSUBSCRIBE ---- */

static int subscribe_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct mbx_change *x = cmd->priv;
	bool sub = strcmp(cmd->name, "SUBSCRIBE") == 0;
	int r;

	if (sub && !folder_exists(s->maildir, x->name)) {
		imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", x->name);
		return IMAP_RUN_DONE;
	}
	r = folder_subscribe(s->maildir, x->name, sub);
	if (r == -EINVAL) {
		imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
	} else if (r < 0) {
		log_warn("imap", s->sid, "subscribe failed mailbox=%s error=%s", x->name, strerror(-r));
		imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Cannot change the subscriptions");
	} else {
		imap_cmd_tagged(cmd, "OK", "%s completed", sub ? "Subscribe" : "Unsubscribe");
	}
	return IMAP_RUN_DONE;
}

static void cmd_subscribe(struct imap_cmd *cmd)
{
	struct mbx_change *x;
	bool syntax_ok;

	if (cmd->count != 1) {
		imap_cmd_bad(cmd, "Needs a mailbox name");
		return;
	}
	x = change_new(cmd);
	if (!arg_mailbox(&cmd->args[0], x->name, sizeof(x->name), &syntax_ok)) {
		if (!syntax_ok)
			imap_cmd_bad(cmd, "Needs a mailbox name");
		else
			imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	cmd->run = subscribe_run;
}

/* ---- LIST and LSUB ---- */

enum entry_flags {
	E_EXISTS = 1 << 0,        /* a folder (or INBOX) */
	E_IMPLICIT = 1 << 1,      /* a parent of a folder that is not one itself */
	E_SUBSCRIBED = 1 << 2,
	E_SUB_PARENT = 1 << 3,    /* a parent of a subscribed name */
	E_CHILDREN = 1 << 4,      /* some folder lies below it */
	E_SPECIAL = 1 << 5,       /* a parent of a special-use folder */
};

struct entry {
	char *name;
	unsigned flags;
};

struct entries {
	struct entry *v;
	size_t n, cap;
};

static void entries_add(struct entries *e, const char *name, size_t len, unsigned flags)
{
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
	}
	e->v[e->n].name = xstrndup(name, len);
	e->v[e->n].flags = flags;
	e->n++;
}

/* Adds name and each of its parents ("a.b.c": "a", "a.b") with parent_flags. */
static void entries_add_tree(struct entries *e, const char *name, unsigned flags, unsigned parent_flags)
{
	entries_add(e, name, strlen(name), flags);
	for (const char *p = strchr(name, '.'); p; p = strchr(p + 1, '.'))
		entries_add(e, name, (size_t)(p - name), parent_flags);
}

static int cmp_entry(const void *a, const void *b)
{
	const char *x = ((const struct entry *)a)->name, *y = ((const struct entry *)b)->name;

	/* INBOX first, then byte order (as folder_list()). */
	if (strcmp(x, y) == 0)
		return 0;
	if (strcmp(x, "INBOX") == 0)
		return -1;
	if (strcmp(y, "INBOX") == 0)
		return 1;
	return strcmp(x, y);
}

static void entries_free(struct entries *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i].name);
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

/* Worker: the folders of the Maildir, their implicit parents and (when subs)
 * the subscribed names, sorted and each once. */
static int entries_collect(struct imap_session *s, bool subs, struct entries *e)
{
	char **names = NULL;
	int n = folder_list(s->maildir, &names);
	size_t k = 0;

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i], "INBOX") != 0 && !listable_name(names[i]))
			continue;
		entries_add_tree(e, names[i], E_EXISTS, E_IMPLICIT | E_CHILDREN);
	}
	folder_list_free(names);
	if (subs) {
		n = folder_subscriptions(s->maildir, &names);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			if (strcmp(names[i], "INBOX") != 0 && !listable_name(names[i]))
				continue;
			entries_add_tree(e, names[i], E_SUBSCRIBED, E_SUB_PARENT);
		}
		folder_list_free(names);
	}
	if (e->n == 0)
		return 0;
	qsort(e->v, e->n, sizeof(*e->v), cmp_entry);
	for (size_t i = 1; i < e->n; i++) {
		if (strcmp(e->v[i].name, e->v[k].name) == 0) {
			e->v[k].flags |= e->v[i].flags;
			free(e->v[i].name);
		} else {
			e->v[++k] = e->v[i];
		}
	}
	e->n = k + 1;
	return 0;
}

/*
 * RFC 3501 LIST wildcards: "*" matches anything, "%" anything but the
 * delimiter. Matching runs over the set of name positions reachable so far
 * (O(pattern * name), no backtracking). The first five octets of INBOX and
 * of names below it match case-insensitively.
 */
static bool pattern_match(const char *name, const char *pat)
{
	size_t n = strlen(name);
	bool cur[MATCH_NAME_MAX + 2], nxt[MATCH_NAME_MAX + 2];
	size_t ci = 0;

	if (n > MATCH_NAME_MAX || strlen(pat) > PATTERN_MAX)
		return false;
	if (strncmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '.'))
		ci = 5;
	memset(cur, 0, sizeof(cur));
	cur[0] = true;
	for (const char *p = pat; *p; p++) {
		bool any = false;

		memset(nxt, 0, sizeof(nxt));
		if (*p == '*' || *p == '%') {
			bool run = false;
			for (size_t j = 0; j <= n; j++) {
				if (*p == '%' && j > 0 && name[j - 1] == '.')
					run = false;
				run = run || cur[j];
				nxt[j] = run;
			}
		} else {
			for (size_t j = 0; j < n; j++) {
				if (!cur[j])
					continue;
				if (name[j] == *p || (j < ci && (name[j] | 0x20) == (*p | 0x20)))
					nxt[j + 1] = true;
			}
		}
		for (size_t j = 0; j <= n; j++)
			any = any || nxt[j];
		if (!any)
			return false;
		memcpy(cur, nxt, sizeof(cur));
	}
	return cur[n];
}

enum list_sel {
	SEL_SUBSCRIBED = 1 << 0,
	SEL_REMOTE = 1 << 1,
	SEL_RECURSIVEMATCH = 1 << 2,
	SEL_SPECIAL_USE = 1 << 3,
};

enum list_ret {
	RET_SUBSCRIBED = 1 << 0,
	RET_CHILDREN = 1 << 1,
	RET_SPECIAL_USE = 1 << 2,
	RET_STATUS = 1 << 3,
};

struct list {
	bool lsub;
	bool extended;            /* LIST-EXTENDED syntax was used */
	unsigned sel, ret;
	struct status_req status;
	char **patterns;          /* reference + pattern, each */
	size_t n_patterns;
	bool delimiter_only;      /* LIST "" "" */
};

static void list_free(void *p)
{
	struct list *l = p;

	if (!l)
		return;
	for (size_t i = 0; i < l->n_patterns; i++)
		free(l->patterns[i]);
	free(l->patterns);
	free(l);
}

static bool matches_any(const struct list *l, const char *name)
{
	for (size_t i = 0; i < l->n_patterns; i++)
		if (pattern_match(name, l->patterns[i]))
			return true;
	return false;
}

/* Whether entry i meets the selection criteria of l. */
static bool selected_entry(const struct list *l, const struct entry *e)
{
	if (l->lsub)
		return e->flags & E_SUBSCRIBED;
	if ((l->sel & SEL_SUBSCRIBED) && !(e->flags & E_SUBSCRIBED))
		return false;
	if ((l->sel & SEL_SPECIAL_USE) && !((e->flags & E_EXISTS) && special_use(e->name)))
		return false;
	if (!(l->sel & (SEL_SUBSCRIBED | SEL_SPECIAL_USE)))
		return e->flags & (E_EXISTS | E_IMPLICIT);
	return true;
}

/* RECURSIVEMATCH (and the LSUB "%" rule of RFC 3501 6.3.9): a name below
 * entry i that meets the criteria and matches no pattern (matched[j] tells
 * whether entry j matches one). */
static bool has_unmatched_child(const struct list *l, const struct entries *es, const bool *matched, size_t i)
{
	const char *name = es->v[i].name;
	size_t len = strlen(name);

	for (size_t j = 0; j < es->n; j++) {
		const struct entry *c = &es->v[j];
		if (matched[j] || strncmp(c->name, name, len) != 0 || c->name[len] != '.')
			continue;
		if (selected_entry(l, c))
			return true;
	}
	return false;
}

static int list_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct list *l = cmd->priv;
	struct entries es = { 0 };
	bool want_subs = l->lsub || (l->sel & SEL_SUBSCRIBED) || (l->ret & RET_SUBSCRIBED);
	bool show_children = !l->extended || (l->ret & RET_CHILDREN);
	bool show_special = !l->extended || (l->ret & RET_SPECIAL_USE) || (l->sel & SEL_SPECIAL_USE);
	bool show_subscribed = (l->sel & SEL_SUBSCRIBED) || (l->ret & RET_SUBSCRIBED);
	bool recursive = l->lsub || (l->sel & SEL_RECURSIVEMATCH);
	const char *verb = l->lsub ? "LSUB" : "LIST";
	bool *matched;
	int r;

	if (l->delimiter_only) {
		imap_cmd_untagged(cmd, "%s (\\Noselect) \".\" \"\"", verb);
		imap_cmd_tagged(cmd, "OK", "%s completed", l->lsub ? "Lsub" : "List");
		return IMAP_RUN_DONE;
	}
	r = entries_collect(s, want_subs, &es);
	if (r < 0) {
		log_warn("imap", s->sid, "list failed error=%s", strerror(-r));
		entries_free(&es);
		imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Cannot list the mailboxes");
		return IMAP_RUN_DONE;
	}
	matched = xcalloc(es.n + 1, sizeof(bool));
	for (size_t i = 0; i < es.n; i++)
		matched[i] = matches_any(l, es.v[i].name);
	for (size_t i = 0; i < es.n; i++) {
		const struct entry *e = &es.v[i];
		bool exists = e->flags & E_EXISTS, sel, childinfo = false;
		const char *su = exists ? special_use(e->name) : NULL;
		bool first = true;

		if (!matched[i])
			continue;
		sel = selected_entry(l, e);
		if (recursive && (e->flags & E_SUB_PARENT || !l->lsub))
			childinfo = has_unmatched_child(l, &es, matched, i);
		if (!sel && !childinfo)
			continue;
		buf_printf(&cmd->out, "* %s (", verb);
#define ATTR(a)                                      \
	do {                                         \
		if (!first)                          \
			buf_addch(&cmd->out, ' ');   \
		buf_adds(&cmd->out, a);              \
		first = false;                       \
	} while (0)
		if (l->lsub) {
			/* RFC 3501 6.3.9: a parent that is listed only because
			 * of its subscribed children, or a subscribed name that
			 * is not a mailbox, cannot be selected. */
			if (!sel || !exists)
				ATTR("\\Noselect");
		} else {
			if (!exists)
				ATTR(l->extended ? "\\NonExistent" : "\\Noselect");
			if (show_subscribed && (e->flags & E_SUBSCRIBED))
				ATTR("\\Subscribed");
			if (show_children)
				ATTR(e->flags & E_CHILDREN ? "\\HasChildren" : "\\HasNoChildren");
			if (show_special && su)
				ATTR(su);
		}
#undef ATTR
		buf_adds(&cmd->out, ") \".\" ");
		write_name(&cmd->out, e->name);
		if (!l->lsub && childinfo && (l->sel & SEL_RECURSIVEMATCH) && (l->sel & SEL_SUBSCRIBED))
			buf_adds(&cmd->out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
		buf_adds(&cmd->out, "\r\n");
		if ((l->ret & RET_STATUS) && exists && sel) {
			r = write_status(s, e->name, &l->status, &cmd->out);
			if (r < 0 && r != -ENOENT)
				log_warn("imap", s->sid, "list-status failed mailbox=%s", e->name);
		}
	}
	free(matched);
	entries_free(&es);
	imap_cmd_tagged(cmd, "OK", "%s completed", l->lsub ? "Lsub" : "List");
	return IMAP_RUN_DONE;
}

/* A pattern: printable US-ASCII in canonical modified UTF-7. */
static bool valid_pattern(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
			return false;
	return imap_utf7_is_valid(p, len);
}

static bool list_add_pattern(struct list *l, const char *ref, size_t ref_len, const char *pat, size_t pat_len)
{
	char *full;
	size_t k = 0;

	if (!valid_pattern(pat, pat_len))
		return false;
	full = xmalloc(ref_len + pat_len + 1);
	memcpy(full, ref, ref_len);
	memcpy(full + ref_len, pat, pat_len);
	full[ref_len + pat_len] = '\0';
	/* Fold each run of wildcards into one: "*" when the run holds a "*",
	 * else "%". The pattern means the same and matches in bounded time. */
	for (size_t i = 0; full[i]; i++) {
		if ((full[i] == '*' || full[i] == '%') && k > 0 && (full[k - 1] == '*' || full[k - 1] == '%')) {
			if (full[i] == '*')
				full[k - 1] = '*';
			continue;
		}
		full[k++] = full[i];
	}
	full[k] = '\0';
	l->patterns = xrealloc(l->patterns, (l->n_patterns + 1) * sizeof(char *));
	l->patterns[l->n_patterns++] = full;
	return true;
}

static bool list_sel_opts(struct list *l, const struct imap_arg *a)
{
	const struct imap_arg *items;
	size_t n;

	if (!imap_arg_get_list(a, &items, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (imap_arg_atom_equals(&items[i], "SUBSCRIBED"))
			l->sel |= SEL_SUBSCRIBED;
		else if (imap_arg_atom_equals(&items[i], "REMOTE"))
			l->sel |= SEL_REMOTE;
		else if (imap_arg_atom_equals(&items[i], "RECURSIVEMATCH"))
			l->sel |= SEL_RECURSIVEMATCH;
		else if (imap_arg_atom_equals(&items[i], "SPECIAL-USE"))
			l->sel |= SEL_SPECIAL_USE;
		else
			return false;
	}
	/* RFC 5258 3.1: RECURSIVEMATCH alone (or with REMOTE only) is BAD. */
	if ((l->sel & SEL_RECURSIVEMATCH) && !(l->sel & (SEL_SUBSCRIBED | SEL_SPECIAL_USE)))
		return false;
	return true;
}

static bool list_ret_opts(struct list *l, const struct imap_arg *a)
{
	const struct imap_arg *items;
	size_t n, skip = 0;

	if (!imap_arg_get_list(a, &items, &n))
		return false;
	for (size_t i = 0; i < n; i += 1 + skip) {
		skip = 0;
		if (imap_arg_atom_equals(&items[i], "SUBSCRIBED")) {
			l->ret |= RET_SUBSCRIBED;
		} else if (imap_arg_atom_equals(&items[i], "CHILDREN")) {
			l->ret |= RET_CHILDREN;
		} else if (imap_arg_atom_equals(&items[i], "SPECIAL-USE")) {
			l->ret |= RET_SPECIAL_USE;
		} else if (imap_arg_atom_equals(&items[i], "STATUS") && i + 1 < n &&
			   parse_status_items(&items[i + 1], &l->status)) {
			l->ret |= RET_STATUS;
			skip = 1;
		} else {
			return false;
		}
	}
	return true;
}

static void cmd_list(struct imap_cmd *cmd)
{
	struct list *l = xcalloc(1, sizeof(*l));
	const struct imap_arg *args = cmd->args, *pats;
	size_t i = 0, n = cmd->count, n_pats;
	const char *ref, *pat;
	size_t ref_len, pat_len;

	cmd->priv = l;
	cmd->free_priv = list_free;
	l->lsub = strcmp(cmd->name, "LSUB") == 0;
	if (!l->lsub && n > 0 && args[0].type == IMAP_ARG_LIST) {
		l->extended = true;
		if (!list_sel_opts(l, &args[0])) {
			imap_cmd_bad(cmd, "Invalid LIST selection options");
			return;
		}
		i = 1;
	}
	if (n < i + 2 || !imap_arg_get_astring(&args[i], &ref, &ref_len)) {
		imap_cmd_bad(cmd, l->lsub ? "LSUB needs a reference and a pattern" : "LIST needs a reference and a pattern");
		return;
	}
	if (!valid_pattern(ref, ref_len)) {
		imap_cmd_bad(cmd, "Invalid reference: not modified UTF-7");
		return;
	}
	if (!l->lsub && args[i + 1].type == IMAP_ARG_LIST) {
		l->extended = true;
		imap_arg_get_list(&args[i + 1], &pats, &n_pats);
		if (n_pats == 0 || n_pats > PATTERNS_MAX) {
			imap_cmd_bad(cmd, n_pats ? "Too many patterns" : "Empty pattern list");
			return;
		}
		for (size_t k = 0; k < n_pats; k++) {
			if (!imap_arg_get_astring(&pats[k], &pat, &pat_len)) {
				imap_cmd_bad(cmd, "Invalid pattern");
				return;
			}
			if (!list_add_pattern(l, ref, ref_len, pat, pat_len)) {
				imap_cmd_bad(cmd, "Invalid pattern: not modified UTF-7");
				return;
			}
		}
	} else {
		if (!imap_arg_get_astring(&args[i + 1], &pat, &pat_len)) {
			imap_cmd_bad(cmd, "Invalid pattern");
			return;
		}
		if (pat_len == 0) {
			/* RFC 3501 6.3.8: the delimiter and the root ("" here). */
			l->delimiter_only = true;
		} else if (!list_add_pattern(l, ref, ref_len, pat, pat_len)) {
			imap_cmd_bad(cmd, "Invalid pattern: not modified UTF-7");
			return;
		}
	}
	i += 2;
	if (!l->lsub && i + 2 == n && imap_arg_atom_equals(&args[i], "RETURN")) {
		l->extended = true;
		if (!list_ret_opts(l, &args[i + 1])) {
			imap_cmd_bad(cmd, "Invalid LIST return options");
			return;
		}
		i += 2;
	}
	if (i != n) {
		imap_cmd_bad(cmd, "Unexpected arguments");
		return;
	}
	if ((l->ret & RET_STATUS) && status_wants(&l->status, ST_HIGHESTMODSEQ))
		cmd->s->condstore = true;   /* RFC 7162 3.1: a CONDSTORE-enabling command */
	cmd->run = list_run;
}

/* ---- STATUS ---- */

struct status_cmd {
	char name[NAME_MAX_OCTETS];
	struct status_req req;
};

static int status_run(struct imap_cmd *cmd)
{
	struct status_cmd *x = cmd->priv;
	int r = write_status(cmd->s, x->name, &x->req, &cmd->out);

	if (r == -ENOENT)
		imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", x->name);
	else if (r < 0)
		imap_cmd_tagged(cmd, "NO", "[SERVERBUG] Cannot open the mailbox");
	else
		imap_cmd_tagged(cmd, "OK", "Status completed");
	return IMAP_RUN_DONE;
}

static void cmd_status(struct imap_cmd *cmd)
{
	struct status_cmd *x;
	bool syntax_ok;

	if (cmd->count != 2) {
		imap_cmd_bad(cmd, "STATUS needs a mailbox name and a list of items");
		return;
	}
	x = xcalloc(1, sizeof(*x));
	cmd->priv = x;
	cmd->free_priv = free;
	if (!parse_status_items(&cmd->args[1], &x->req)) {
		imap_cmd_bad(cmd, "Invalid STATUS items");
		return;
	}
	if (!arg_mailbox(&cmd->args[0], x->name, sizeof(x->name), &syntax_ok)) {
		if (!syntax_ok)
			imap_cmd_bad(cmd, "STATUS needs a mailbox name");
		else
			imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	if (status_wants(&x->req, ST_HIGHESTMODSEQ))
		cmd->s->condstore = true;   /* RFC 7162 3.1 */
	cmd->run = status_run;
}

/* ---- QUOTA (RFC 9208) ---- */

struct quota_cmd {
	char name[NAME_MAX_OCTETS];   /* GETQUOTAROOT: the mailbox */
	bool root;                    /* GETQUOTAROOT */
};

/* Worker: the user's quota (bytes, 0 = none) and usage; negative on error. */
static int quota_lookup(struct imap_session *s, uint64_t *limit_r, uint64_t *used_r)
{
	struct dir_target t[DIR_MAX_TARGETS];
	size_t n = 0;
	int r;

	*limit_r = 0;
	*used_r = 0;
	if (!s->backend || !s->backend->dir)
		return -ENOENT;
	if (dir_resolve(s->backend->dir, s->user, "", t, &n) != DIR_OK || n < 1)
		return -EIO;
	*limit_r = t[0].quota;
	if (!*limit_r)
		return 0;
	r = maildir_usage(s->maildir, used_r);
	return r < 0 ? r : 0;
}

static int quota_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct quota_cmd *x = cmd->priv;
	uint64_t limit, used;
	int r;

	if (x->root && !folder_exists(s->maildir, x->name)) {
		imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", x->name);
		return IMAP_RUN_DONE;
	}
	r = quota_lookup(s, &limit, &used);
	if (r < 0) {
		log_warn("imap", s->sid, "quota lookup failed error=%s", strerror(-r));
		imap_cmd_tagged(cmd, "NO", "[UNAVAILABLE] Cannot read the quota");
		return IMAP_RUN_DONE;
	}
	if (x->root) {
		buf_adds(&cmd->out, "* QUOTAROOT ");
		write_name(&cmd->out, x->name);
		buf_adds(&cmd->out, limit ? " \"\"\r\n" : "\r\n");
	} else if (!limit) {
		imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] No such quota root");
		return IMAP_RUN_DONE;
	}
	if (limit)
		imap_cmd_untagged(cmd, "QUOTA \"\" (STORAGE %llu %llu)", (unsigned long long)(used / 1024),
				  (unsigned long long)(limit / 1024));
	imap_cmd_tagged(cmd, "OK", "%s completed", x->root ? "Getquotaroot" : "Getquota");
	return IMAP_RUN_DONE;
}

static void cmd_getquota(struct imap_cmd *cmd)
{
	struct quota_cmd *x;
	const char *root;
	size_t len;

	if (cmd->count != 1 || !imap_arg_get_astring(&cmd->args[0], &root, &len)) {
		imap_cmd_bad(cmd, "GETQUOTA needs a quota root");
		return;
	}
	if (len != 0) {
		imap_cmd_tagged(cmd, "NO", "[NONEXISTENT] No such quota root");
		return;
	}
	x = xcalloc(1, sizeof(*x));
	cmd->priv = x;
	cmd->free_priv = free;
	cmd->run = quota_run;
}

static void cmd_getquotaroot(struct imap_cmd *cmd)
{
	struct quota_cmd *x;
	bool syntax_ok;

	if (cmd->count != 1) {
		imap_cmd_bad(cmd, "GETQUOTAROOT needs a mailbox name");
		return;
	}
	x = xcalloc(1, sizeof(*x));
	cmd->priv = x;
	cmd->free_priv = free;
	x->root = true;
	if (!arg_mailbox(&cmd->args[0], x->name, sizeof(x->name), &syntax_ok)) {
		if (!syntax_ok)
			imap_cmd_bad(cmd, "GETQUOTAROOT needs a mailbox name");
		else
			imap_cmd_tagged(cmd, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	cmd->run = quota_run;
}

static void cmd_setquota(struct imap_cmd *cmd)
{
	const char *root;
	size_t len;

	/* SETQUOTA root (resource limit ...) */
	if (cmd->count != 2 || !imap_arg_get_astring(&cmd->args[0], &root, &len) ||
	    cmd->args[1].type != IMAP_ARG_LIST) {
		imap_cmd_bad(cmd, "SETQUOTA needs a quota root and a list of limits");
		return;
	}
	imap_cmd_tagged(cmd, "NO", "[CANNOT] Quotas are set by the administrator");
}

const struct imap_cmd_def imap_cmds_mailbox[] = {
	{ "CREATE", IMAP_AUTHED, cmd_create, 0 },
	{ "DELETE", IMAP_AUTHED, cmd_delete, 0 },
	{ "RENAME", IMAP_AUTHED, cmd_rename, 0 },
	{ "SUBSCRIBE", IMAP_AUTHED, cmd_subscribe, 0 },
	{ "UNSUBSCRIBE", IMAP_AUTHED, cmd_subscribe, 0 },
	{ "LIST", IMAP_AUTHED, cmd_list, 0 },
	{ "LSUB", IMAP_AUTHED, cmd_list, 0 },
	{ "STATUS", IMAP_AUTHED, cmd_status, 0 },
	{ "GETQUOTA", IMAP_AUTHED, cmd_getquota, 0 },
	{ "GETQUOTAROOT", IMAP_AUTHED, cmd_getquotaroot, 0 },
	{ "SETQUOTA", IMAP_AUTHED, cmd_setquota, 0 },
	{ NULL, 0, NULL, 0 },
};
