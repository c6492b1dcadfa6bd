/*
 * The FETCH cache (for imap/imap-cmd-fetch.c): ENVELOPE, BODYSTRUCTURE
 * and BODY strings of each message, kept in the index.
 */
#include "storage/mailbox-private.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xalloc.h"

struct mbox_cache {
	struct mbox *m;
	sqlite3_stmt *get, *put;
	int in_tx;
	int failed;     /* a write failed: stop writing for this reader */
};

struct mbox_cache *mbox_cache_open(struct mbox *m)
{
	struct mbox_cache *c;

	if (mbox_wake(m) < 0)
		return NULL;
	c = xcalloc(1, sizeof(*c));

	c->m = m;
	if (sqlite3_prepare_v2(m->db, "SELECT envelope, bodystructure, body FROM cache "
			       "WHERE mailbox_id = ?1 AND uid = ?2 AND base = ?3", -1, &c->get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(m->db, "INSERT INTO cache (mailbox_id, uid, base, envelope, bodystructure, body) "
			       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (mailbox_id, uid) DO UPDATE SET "
			       "envelope = CASE WHEN base = excluded.base THEN coalesce(excluded.envelope, envelope) "
			       "ELSE excluded.envelope END, "
			       "bodystructure = CASE WHEN base = excluded.base THEN "
			       "coalesce(excluded.bodystructure, bodystructure) ELSE excluded.bodystructure END, "
			       "body = CASE WHEN base = excluded.base THEN coalesce(excluded.body, body) "
			       "ELSE excluded.body END, base = excluded.base", -1, &c->put, NULL) != SQLITE_OK) {
		mbox_db_err(m, "prepare cache");
		mbox_cache_close(&c);
		return NULL;
	}
	return c;
}

/* The base name (up to ':') of message i's file, after "new/" or "cur/". */
static const char *msg_base(const struct mbox_msg *x, int *len_r)
{
	const char *slash = strchr(x->file, '/');
	const char *b = slash ? slash + 1 : x->file;
	const char *colon = strchr(b, ':');

	*len_r = (int)(colon ? (size_t)(colon - b) : strlen(b));
	return b;
}

static void col_copy(sqlite3_stmt *st, int col, struct buf *out, unsigned bit, unsigned *found)
{
	const void *p;

	if (!out || sqlite3_column_type(st, col) == SQLITE_NULL)
		return;
	p = sqlite3_column_text(st, col);
	buf_reset(out);
	if (p && buf_add(out, p, (size_t)sqlite3_column_bytes(st, col)) == 0)
		*found |= bit;
}

unsigned mbox_cache_get(struct mbox_cache *c, size_t i, struct buf *envelope, struct buf *bodystructure,
			struct buf *body)
{
	const struct mbox_msg *x = mbox_get(c->m, i);
	const char *base;
	unsigned found = 0;
	int blen;

	if (!x)
		return 0;
	base = msg_base(x, &blen);
	sqlite3_reset(c->get);
	sqlite3_bind_int64(c->get, 1, c->m->id);
	sqlite3_bind_int64(c->get, 2, x->uid);
	sqlite3_bind_text(c->get, 3, base, blen, SQLITE_STATIC);
	if (mbox_step(c->get) == SQLITE_ROW) {
		col_copy(c->get, 0, envelope, MBOX_CACHE_ENVELOPE, &found);
		col_copy(c->get, 1, bodystructure, MBOX_CACHE_BODYSTRUCTURE, &found);
		col_copy(c->get, 2, body, MBOX_CACHE_BODY, &found);
	}
	sqlite3_reset(c->get);
	return found;
}

int mbox_cache_put(struct mbox_cache *c, size_t i, const char *envelope, const char *bodystructure,
		   const char *body)
{
	const struct mbox_msg *x = mbox_get(c->m, i);
	const char *base;
	int blen, r;

	if (!x)
		return -EINVAL;
	if (c->failed)
		return -EIO;
	if (!c->in_tx) {
		/* Many rows per transaction: one WAL commit per run, not per message. */
		if (mbox_exec(c->m, "BEGIN IMMEDIATE") < 0) {
			c->failed = 1;
			return -EIO;
		}
		c->in_tx = 1;
	}
	base = msg_base(x, &blen);
	sqlite3_reset(c->put);
	sqlite3_bind_int64(c->put, 1, c->m->id);
	sqlite3_bind_int64(c->put, 2, x->uid);
	sqlite3_bind_text(c->put, 3, base, blen, SQLITE_STATIC);
	if (envelope)
		sqlite3_bind_text(c->put, 4, envelope, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(c->put, 4);
	if (bodystructure)
		sqlite3_bind_text(c->put, 5, bodystructure, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(c->put, 5);
	if (body)
		sqlite3_bind_text(c->put, 6, body, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(c->put, 6);
	r = mbox_step(c->put);
	sqlite3_reset(c->put);
	sqlite3_clear_bindings(c->put);
	if (r != SQLITE_DONE) {
		c->failed = 1;
		return mbox_db_err(c->m, "cache put");
	}
	return 0;
}

int mbox_cache_flush(struct mbox_cache *c)
{
	int r = 0;

	if (!c || !c->in_tx)
		return 0;
	c->in_tx = 0;
	if (mbox_exec(c->m, "COMMIT") < 0) {
		mbox_exec(c->m, "ROLLBACK");
		c->failed = 1;
		r = -EIO;
	}
	return r;
}

void mbox_cache_close(struct mbox_cache **cp)
{
	struct mbox_cache *c = *cp;

	if (!c)
		return;
	mbox_cache_flush(c);
	sqlite3_finalize(c->get);
	sqlite3_finalize(c->put);
	free(c);
	*cp = NULL;
}
