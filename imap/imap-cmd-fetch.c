/* FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2), with the CONDSTORE and
 * QRESYNC modifiers CHANGEDSINCE and VANISHED (RFC 7162 3.1.4, 3.2.6).
 *
 * The reply is streamed: a run writes about FETCH_CHUNK octets into
 * cmd->out, keeps its place in struct fetch and returns IMAP_RUN_MORE; the
 * session sends that part and runs it again once the client has taken it.
 * A large literal goes out the same way: "{n}" first, then its octets piece
 * by piece, converted from the stored LF form to CRLF on the fly. Message
 * files are mapped (mmap), never read whole into memory.
 *
 * ENVELOPE, BODY and BODYSTRUCTURE come from the index's cache
 * (mbox_cache_*) after the first FETCH of a message; on a miss ENVELOPE
 * reads the header only, the other two parse the whole message.
 *
 * Messages whose file has vanished (expunged by another session, RFC 2180
 * 4.1) are left out of the reply, and the command ends with
 * "OK [EXPUNGEISSUED] Some messages were already expunged", as Dovecot
 * does; items that need no file (FLAGS, UID, cached ENVELOPE, ...) are still
 * answered from the index.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imap/imap-envelope.h"
#include "imap/imap-private.h"
#include "lib/log.h"
#include "lib/mime.h"
#include "lib/xalloc.h"

/* Octets written into cmd->out per run before handing it to the client. */
#define FETCH_CHUNK (256 * 1024)
/* Items of one FETCH (the parser's own limits bound the rest). */
#define FETCH_MAX_ITEMS 256

enum item_kind {
	IT_UID,
	IT_FLAGS,
	IT_INTERNALDATE,
	IT_SIZE,
	IT_ENVELOPE,
	IT_BODY,            /* BODY without a section: the non-extended structure */
	IT_BODYSTRUCTURE,
	IT_MODSEQ,
	IT_SECTION,         /* BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT */
};

struct item {
	enum item_kind kind;
	struct imap_section sec;
	bool peek;
	bool partial;
	uint32_t pstart, plen;
	char *label;        /* the response name: "BODY[HEADER.FIELDS (FROM)]<0>", "RFC822" */
};

/* Where the octets of the literal being streamed come from. */
struct stream {
	bool on;
	bool from_map;      /* map[start..end), converted to CRLF; else tmp from pos */
	size_t start, pos, end;
	bool half;          /* the CR of a bare LF at pos has been sent */
	size_t left;        /* CRLF octets still to send */
};

struct fetch {
	struct item *items;
	size_t n_items;
	bool set_seen;          /* some item sets \Seen */
	bool has_flags, has_modseq;
	unsigned want_cache;    /* MBOX_CACHE_* bits the items use */
	bool changedsince_on, vanished;
	uint64_t changedsince;
	struct imap_seqset idx; /* sequence numbers of the messages */
	struct imap_seqset uids;/* VANISHED: the UID set as sent */

	/* progress */
	bool started, done;
	struct imap_seqset_iter it;
	struct mbox_cache *cache;
	bool in_msg;
	size_t i;               /* index of the current message */
	size_t cur;             /* next item of it */
	bool seen_set;          /* this FETCH set its \Seen */
	const char *map;        /* the mapped file, or "" */
	size_t map_len;
	bool mapped;
	size_t hdr_len;         /* raw length of the top-level header */
	struct mime_message *mime;
	struct stream st;
	struct buf tmp;         /* a section built in memory (HEADER.FIELDS) */
	struct buf env, bs, body;
	unsigned have;          /* MBOX_CACHE_* bits in env/bs/body for this message */

	/* results */
	bool flags_changed;     /* publish in finish */
	bool skipped;           /* some message's file was gone */
};

static void msg_end(struct fetch *f)
{
	mime_message_free(&f->mime);
	if (f->mapped)
		munmap((void *)f->map, f->map_len);
	f->map = NULL;
	f->map_len = 0;
	f->mapped = false;
	f->in_msg = false;
	f->seen_set = false;
	f->have = 0;
	memset(&f->st, 0, sizeof(f->st));
	buf_reset(&f->tmp);
}

static void fetch_free(void *p)
{
	struct fetch *f = p;

	if (!f)
		return;
	msg_end(f);
	mbox_cache_close(&f->cache);
	for (size_t k = 0; k < f->n_items; k++) {
		imap_section_release(&f->items[k].sec);
		free(f->items[k].label);
	}
	free(f->items);
	imap_seqset_release(&f->idx);
	imap_seqset_release(&f->uids);
	buf_release(&f->tmp);
	buf_release(&f->env);
	buf_release(&f->bs);
	buf_release(&f->body);
	free(f);
}

static int fetch_run(struct imap_cmd *cmd);

/* ---- parsing the items (loop thread) ---- */

static struct item *add_item(struct fetch *f, enum item_kind kind)
{
	struct item *it;

	if (f->n_items >= FETCH_MAX_ITEMS)
		return NULL;
	if ((f->n_items & (f->n_items + 1)) == 0 || f->n_items == 0)
		f->items = xrealloc(f->items, (f->n_items * 2 + 2) * sizeof(*f->items));
	it = &f->items[f->n_items++];
	memset(it, 0, sizeof(*it));
	imap_section_init(&it->sec);
	it->kind = kind;
	switch (kind) {
	case IT_FLAGS: f->has_flags = true; break;
	case IT_MODSEQ: f->has_modseq = true; break;
	case IT_ENVELOPE: f->want_cache |= MBOX_CACHE_ENVELOPE; break;
	case IT_BODY: f->want_cache |= MBOX_CACHE_BODY; break;
	case IT_BODYSTRUCTURE: f->want_cache |= MBOX_CACHE_BODYSTRUCTURE; break;
	default: break;
	}
	return it;
}

/* A section item named by a fixed spec ("" or "HEADER" or "TEXT"). */
static bool add_rfc822(struct fetch *f, const char *spec, const char *label, bool peek)
{
	struct item *it = add_item(f, IT_SECTION);

	if (!it)
		return false;
	if (imap_section_parse(&it->sec, spec, strlen(spec)) < 0)
		return false;
	it->peek = peek;
	it->label = xstrdup(label);
	if (!peek)
		f->set_seen = true;
	return true;
}

/* BODY[...] / BODY.PEEK[...] with its optional <start.len>. */
static bool add_section(struct fetch *f, const struct imap_arg *a)
{
	struct item *it;
	struct buf spec = BUF_INIT(64 * 1024), label = BUF_INIT(64 * 1024);
	bool peek;
	bool ok = false;

	if (a->name_len == 4 && strncasecmp(a->str, "BODY", 4) == 0)
		peek = false;
	else if (a->name_len == 9 && strncasecmp(a->str, "BODY.PEEK", 9) == 0)
		peek = true;
	else
		return false;
	if (*a->suffix && !(a->flags & IMAP_ARG_PARTIAL))
		return false;
	/* The bracket text as parsed: [atom] or [atom (astring ...)]. */
	if (a->section_count > 2)
		return false;
	if (a->section_count >= 1) {
		const char *head;
		if (a->section[0].type != IMAP_ARG_ATOM || (a->section[0].flags & IMAP_ARG_SECTION) ||
		    !imap_arg_get_atom(&a->section[0], &head))
			goto out;
		buf_adds(&spec, head);
	}
	if (a->section_count == 2) {
		const struct imap_arg *names;
		size_t n;
		if (!imap_arg_get_list(&a->section[1], &names, &n) || n == 0)
			goto out;
		buf_adds(&spec, " (");
		for (size_t k = 0; k < n; k++) {
			const char *v;
			size_t len;
			if (!imap_arg_get_astring(&names[k], &v, &len))
				goto out;
			if (k)
				buf_addch(&spec, ' ');
			buf_addch(&spec, '"');
			for (size_t j = 0; j < len; j++) {
				if (v[j] == '"' || v[j] == '\\')
					buf_addch(&spec, '\\');
				buf_addch(&spec, v[j]);
			}
			if (buf_addch(&spec, '"') < 0)
				goto out;
		}
		buf_addch(&spec, ')');
	}
	it = add_item(f, IT_SECTION);
	if (!it || imap_section_parse(&it->sec, spec.data ? spec.data : "", spec.len) < 0)
		goto out;
	/* Field names echo upper-cased, as Dovecot sends them. */
	for (unsigned k = 0; k < it->sec.nfields; k++)
		for (char *c = it->sec.fields[k]; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
	it->peek = peek;
	if (a->flags & IMAP_ARG_PARTIAL) {
		it->partial = true;
		it->pstart = a->partial_start;
		it->plen = a->partial_len;
	}
	buf_adds(&label, "BODY[");
	if (imap_section_write(&label, &it->sec) < 0)
		goto out;
	buf_addch(&label, ']');
	if (it->partial)
		buf_printf(&label, "<%u>", it->pstart);
	it->label = buf_detach(&label, NULL);
	if (!peek)
		f->set_seen = true;
	ok = true;
out:
	buf_release(&spec);
	buf_release(&label);
	return ok;
}

static bool add_att(struct fetch *f, const struct imap_arg *a)
{
	static const struct { const char *name; enum item_kind kind; } simple[] = {
		{ "UID", IT_UID }, { "FLAGS", IT_FLAGS }, { "INTERNALDATE", IT_INTERNALDATE },
		{ "RFC822.SIZE", IT_SIZE }, { "ENVELOPE", IT_ENVELOPE }, { "BODY", IT_BODY },
		{ "BODYSTRUCTURE", IT_BODYSTRUCTURE }, { "MODSEQ", IT_MODSEQ },
	};

	if (a->type != IMAP_ARG_ATOM)
		return false;
	if (a->flags & IMAP_ARG_SECTION)
		return add_section(f, a);
	for (size_t k = 0; k < ARRAY_SIZE(simple); k++)
		if (imap_arg_atom_equals(a, simple[k].name))
			return add_item(f, simple[k].kind) != NULL;
	if (imap_arg_atom_equals(a, "RFC822"))
		return add_rfc822(f, "", "RFC822", false);
	if (imap_arg_atom_equals(a, "RFC822.HEADER"))
		return add_rfc822(f, "HEADER", "RFC822.HEADER", true);
	if (imap_arg_atom_equals(a, "RFC822.TEXT"))
		return add_rfc822(f, "TEXT", "RFC822.TEXT", false);
	return false;
}

static bool add_macro(struct fetch *f, const struct imap_arg *a)
{
	bool full = imap_arg_atom_equals(a, "FULL");

	if (!full && !imap_arg_atom_equals(a, "ALL") && !imap_arg_atom_equals(a, "FAST"))
		return false;
	add_item(f, IT_FLAGS);
	add_item(f, IT_INTERNALDATE);
	add_item(f, IT_SIZE);
	if (!imap_arg_atom_equals(a, "FAST"))
		add_item(f, IT_ENVELOPE);
	if (full)
		add_item(f, IT_BODY);
	return true;
}

/* (CHANGEDSINCE n [VANISHED]) in any order (RFC 7162). */
static bool parse_modifiers(struct imap_cmd *cmd, struct fetch *f, const struct imap_arg *a)
{
	const struct imap_arg *mods;
	size_t n;

	if (!imap_arg_get_list(a, &mods, &n) || n == 0)
		return false;
	for (size_t k = 0; k < n; k++) {
		if (imap_arg_atom_equals(&mods[k], "CHANGEDSINCE") && k + 1 < n && !f->changedsince_on) {
			if (!imap_arg_get_number64(&mods[k + 1], &f->changedsince))
				return false;
			f->changedsince_on = true;
			k++;
		} else if (imap_arg_atom_equals(&mods[k], "VANISHED") && !f->vanished) {
			f->vanished = true;
		} else {
			return false;
		}
	}
	/* VANISHED: UID FETCH only, with CHANGEDSINCE, after ENABLE QRESYNC (RFC 7162 3.2.6). */
	if (f->vanished && (!cmd->uid || !f->changedsince_on || !cmd->s->qresync))
		return false;
	return true;
}

static void cmd_fetch(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct fetch *f;
	const struct imap_arg *list;
	size_t n;

	if (cmd->count < 2 || cmd->count > 3) {
		imap_cmd_bad(cmd, "FETCH needs a sequence set and items");
		return;
	}
	f = xcalloc(1, sizeof(*f));
	imap_seqset_init(&f->idx);
	imap_seqset_init(&f->uids);
	buf_init(&f->tmp, 0);
	buf_init(&f->env, 0);
	buf_init(&f->bs, 0);
	buf_init(&f->body, 0);
	cmd->priv = f;
	cmd->free_priv = fetch_free;

	if (cmd->uid)
		add_item(f, IT_UID);    /* UID FETCH always answers UID (RFC 3501 6.4.8) */
	if (cmd->args[1].type == IMAP_ARG_LIST) {
		imap_arg_get_list(&cmd->args[1], &list, &n);
		if (n == 0) {
			imap_cmd_bad(cmd, "Invalid FETCH items: empty list");
			return;
		}
		for (size_t k = 0; k < n; k++) {
			if (!add_att(f, &list[k])) {
				imap_cmd_bad(cmd, "Invalid FETCH item");
				return;
			}
		}
	} else if (!add_macro(f, &cmd->args[1]) && !add_att(f, &cmd->args[1])) {
		imap_cmd_bad(cmd, "Invalid FETCH item");
		return;
	}
	if (cmd->count == 3 && !parse_modifiers(cmd, f, &cmd->args[2])) {
		imap_cmd_bad(cmd, "Invalid FETCH modifiers");
		return;
	}
	/* CHANGEDSINCE implies MODSEQ (RFC 7162 3.1.4.1); both turn CONDSTORE on. */
	if (f->changedsince_on && !f->has_modseq)
		add_item(f, IT_MODSEQ);
	/* The UID item of UID FETCH was added first; drop a second one. */
	if (cmd->uid) {
		size_t w = 1;
		for (size_t k = 1; k < f->n_items; k++) {
			if (f->items[k].kind == IT_UID)
				continue;
			f->items[w++] = f->items[k];
		}
		f->n_items = w;
	}
	if (f->has_modseq)
		s->condstore = true;
	if (!imap_cmd_seqset(cmd, &cmd->args[0], &f->idx))
		return;
	if (f->vanished) {
		const char *text;
		uint32_t star = mbox_uidnext(s->mbox) > 1 ? mbox_uidnext(s->mbox) - 1 : 1;
		/* "*" reaches every UID ever given, so that expunged ones above the
		 * last message are reported too. */
		if (!imap_arg_get_atom(&cmd->args[0], &text) ||
		    imap_seqset_parse(&f->uids, text, strlen(text), star, 0) < 0)
			f->vanished = false;   /* "$": no VANISHED */
	}
	if (s->readonly)
		f->set_seen = false;
	cmd->run = fetch_run;
}

/* ---- writing (worker) ---- */

/*
 * Copies the CRLF form of data[*pos..end) (a range that begins at start, a
 * line start) into dst, at most want octets; dst NULL only skips. A stored
 * LF not after a CR becomes CRLF; NUL becomes 0x80 (IMAP literals may not
 * hold NUL), as mime_crlf_append() does. Returns the octets produced.
 */
static size_t crlf_copy(char *dst, const char *data, size_t start, size_t *pos, size_t end, bool *half,
			size_t want)
{
	size_t n = 0, p = *pos;

	while (n < want && p < end) {
		const char *nl;
		size_t seg, take;

		if (*half) {
			if (dst)
				dst[n] = '\n';
			n++;
			p++;
			*half = false;
			continue;
		}
		nl = memchr(data + p, '\n', end - p);
		seg = nl ? (size_t)(nl - data) - p : end - p;
		take = seg < want - n ? seg : want - n;
		if (dst && take) {
			char *d = dst + n, *e = d + take;
			memcpy(d, data + p, take);
			while ((d = memchr(d, '\0', (size_t)(e - d))) != NULL)
				*d++ = (char)0x80;
		}
		n += take;
		p += take;
		if (take < seg || !nl || n == want)
			break;
		if (p == start || data[p - 1] != '\r') {
			if (dst)
				dst[n] = '\r';
			n++;
			if (n == want) {
				*half = true;
				break;
			}
		}
		if (dst)
			dst[n] = '\n';
		n++;
		p++;
	}
	*pos = p;
	return n;
}

/* Sends what the budget allows of the literal being streamed; true when it is complete. */
static bool stream_more(struct imap_cmd *cmd, struct fetch *f)
{
	struct stream *st = &f->st;

	while (st->left > 0) {
		size_t room = cmd->out.len < FETCH_CHUNK ? FETCH_CHUNK - cmd->out.len : 0;
		size_t want = st->left < room ? st->left : room;
		size_t got;

		if (want == 0)
			return false;
		if (buf_reserve(&cmd->out, want) < 0)
			return false;
		if (st->from_map) {
			got = crlf_copy(cmd->out.data + cmd->out.len, f->map, st->start, &st->pos, st->end, &st->half,
					want);
		} else {
			got = want;
			memcpy(cmd->out.data + cmd->out.len, f->tmp.data + st->pos, want);
			st->pos += want;
		}
		if (got == 0) {
			/* The source is shorter than announced (cannot happen with
			 * sizes counted from the same bytes): pad rather than
			 * leave the client waiting. */
			got = want;
			memset(cmd->out.data + cmd->out.len, ' ', want);
		}
		cmd->out.len += got;
		cmd->out.data[cmd->out.len] = '\0';
		st->left -= got;
	}
	st->on = false;
	return true;
}

/* The raw range [off, off+len) of a section of the current message, in
 * f->map; false when the part does not exist (or the section is built in
 * f->tmp instead: *in_tmp). */
static bool section_range(struct fetch *f, const struct item *it, size_t *off_r, size_t *len_r, bool *in_tmp)
{
	const struct imap_section *sec = &it->sec;
	const struct mime_part *p;
	size_t size;

	*in_tmp = false;
	if (sec->nparts == 0 && sec->text != IMAP_SECTION_HEADER_FIELDS &&
	    sec->text != IMAP_SECTION_HEADER_FIELDS_NOT) {
		switch (sec->text) {
		case IMAP_SECTION_HEADER:
			*off_r = 0;
			*len_r = f->hdr_len;
			return true;
		case IMAP_SECTION_TEXT:
			*off_r = f->hdr_len;
			*len_r = f->map_len - f->hdr_len;
			return true;
		default:
			*off_r = 0;
			*len_r = f->map_len;
			return true;
		}
	}
	if (sec->text == IMAP_SECTION_HEADER_FIELDS || sec->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
		struct mime_message *hm = NULL;
		const struct mime_message *msg = f->mime;
		int r;

		/* The top-level header alone is enough for the message's own fields. */
		if (sec->nparts == 0 && !msg) {
			mime_parse(f->map, f->hdr_len, NULL, &hm);
			msg = hm;
		}
		buf_reset(&f->tmp);
		r = imap_section_fetch(&f->tmp, msg, sec, 0, SIZE_MAX, &size);
		mime_message_free(&hm);
		*in_tmp = true;
		return r > 0;
	}
	p = imap_section_part(f->mime, sec->parts, sec->nparts);
	if (!p)
		return false;
	if (sec->text != IMAP_SECTION_ALL && sec->text != IMAP_SECTION_MIME) {
		/* HEADER and TEXT of a part: of its encapsulated message */
		if (!(p->flags & MIME_PART_MESSAGE) || !p->children)
			return false;
		p = p->children;
	}
	switch (sec->text) {
	case IMAP_SECTION_HEADER:
	case IMAP_SECTION_MIME:
		*off_r = p->hdr_off;
		*len_r = p->hdr_len;
		break;
	default:   /* ALL of a part and TEXT: the body */
		*off_r = p->body_off;
		*len_r = p->body_len;
		break;
	}
	return true;
}

/* Writes " label " and starts the literal of a section item. */
static void section_begin(struct imap_cmd *cmd, struct fetch *f, const struct item *it)
{
	size_t off = 0, len = 0, size, skip, n;
	bool in_tmp = false, exists;

	buf_adds(&cmd->out, it->label);
	buf_addch(&cmd->out, ' ');
	exists = section_range(f, it, &off, &len, &in_tmp);
	if (!exists) {
		buf_adds(&cmd->out, "\"\"");
		return;
	}
	size = in_tmp ? f->tmp.len : mime_crlf_size(f->map + off, len);
	skip = it->partial ? it->pstart : 0;
	n = skip < size ? size - skip : 0;
	if (it->partial && n > it->plen)
		n = it->plen;
	if (n == 0) {
		buf_adds(&cmd->out, "\"\"");
		return;
	}
	buf_printf(&cmd->out, "{%zu}\r\n", n);
	memset(&f->st, 0, sizeof(f->st));
	f->st.on = true;
	f->st.left = n;
	if (in_tmp) {
		f->st.from_map = false;
		f->st.pos = skip;
	} else {
		f->st.from_map = true;
		f->st.start = off;
		f->st.pos = off;
		f->st.end = off + len;
		if (skip)
			crlf_copy(NULL, f->map, off, &f->st.pos, f->st.end, &f->st.half, skip);
	}
}

static void write_internaldate(struct buf *out, int64_t t)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	long off;
	char sign = '+';

	if (!localtime_r(&tt, &tm))
		memset(&tm, 0, sizeof(tm));
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	buf_printf(out, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d %c%02ld%02ld\"", tm.tm_mday,
		   months[tm.tm_mon >= 0 && tm.tm_mon < 12 ? tm.tm_mon : 0], tm.tm_year + 1900, tm.tm_hour,
		   tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
}

/* What the items need of the file of message i. */
static bool needs_file(const struct fetch *f, unsigned missing, bool *full_r)
{
	bool file = false, full = false;

	for (size_t k = 0; k < f->n_items; k++) {
		const struct item *it = &f->items[k];
		switch (it->kind) {
		case IT_ENVELOPE:
			if (missing & MBOX_CACHE_ENVELOPE)
				file = true;
			break;
		case IT_BODY:
		case IT_BODYSTRUCTURE:
			if (missing & (it->kind == IT_BODY ? MBOX_CACHE_BODY : MBOX_CACHE_BODYSTRUCTURE))
				file = full = true;
			break;
		case IT_SECTION:
			file = true;
			if (it->sec.nparts > 0)
				full = true;
			break;
		default:
			break;
		}
	}
	*full_r = full;
	return file;
}

/* Opens message i: cache, file, \Seen. False when it is to be left out. */
static bool msg_begin(struct imap_cmd *cmd, struct fetch *f, size_t i)
{
	struct imap_session *s = cmd->s;
	struct mbox *m = s->mbox;
	const struct mbox_msg *x = mbox_get(m, i);
	unsigned missing;
	bool full = false;

	if (!x)
		return false;
	if (f->changedsince_on && x->modseq <= f->changedsince)
		return false;
	f->i = i;
	f->cur = 0;
	f->have = 0;
	if (f->want_cache && f->cache)
		f->have = mbox_cache_get(f->cache, i, (f->want_cache & MBOX_CACHE_ENVELOPE) ? &f->env : NULL,
					 (f->want_cache & MBOX_CACHE_BODYSTRUCTURE) ? &f->bs : NULL,
					 (f->want_cache & MBOX_CACHE_BODY) ? &f->body : NULL);
	missing = f->want_cache & ~f->have;
	if (needs_file(f, missing, &full)) {
		struct stat stt;
		int fd = mbox_open_msg(m, i);

		if (fd < 0) {
			if (fd != -ENOENT)
				log_warn("imap", s->sid, "fetch cannot open message uid=%u error=%s", x->uid,
					 strerror(-fd));
			f->skipped = true;
			return false;
		}
		if (fstat(fd, &stt) < 0) {
			close(fd);
			f->skipped = true;
			return false;
		}
		f->map = "";
		f->map_len = 0;
		if (stt.st_size > 0) {
			void *p = mmap(NULL, (size_t)stt.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
			if (p == MAP_FAILED) {
				log_warn("imap", s->sid, "fetch cannot map message uid=%u error=%s", x->uid,
					 strerror(errno));
				close(fd);
				f->skipped = true;
				return false;
			}
			f->map = p;
			f->map_len = (size_t)stt.st_size;
			f->mapped = true;
		}
		close(fd);
		f->hdr_len = mime_header_length(f->map, f->map_len);
		if (full)
			mime_parse(f->map, f->map_len, NULL, &f->mime);
		if (missing) {
			const char *env = NULL, *bs = NULL, *body = NULL;
			if (missing & MBOX_CACHE_ENVELOPE) {
				buf_reset(&f->env);
				imap_envelope_write(&f->env, f->map, f->hdr_len);
				env = f->env.data;
			}
			if (missing & MBOX_CACHE_BODYSTRUCTURE) {
				buf_reset(&f->bs);
				imap_bodystructure_write(&f->bs, f->mime, true);
				bs = f->bs.data;
			}
			if (missing & MBOX_CACHE_BODY) {
				buf_reset(&f->body);
				imap_bodystructure_write(&f->body, f->mime, false);
				body = f->body.data;
			}
			f->have |= missing;
			if (f->cache && (env || bs || body))
				mbox_cache_put(f->cache, i, env, bs, body);
		}
	}
	if (f->set_seen && !(x->flags & MBOX_SEEN)) {
		int r;
		/* The cache's write transaction must end before another write. */
		mbox_cache_flush(f->cache);
		r = mbox_set_flags(m, i, (x->flags & ~(uint32_t)MBOX_RECENT) | MBOX_SEEN, NULL);
		if (r == 0) {
			f->seen_set = true;
			f->flags_changed = true;
		} else if (r != -ENOENT) {
			log_warn("imap", s->sid, "fetch cannot set \\Seen uid=%u error=%s", x->uid, strerror(-r));
		}
	}
	f->in_msg = true;
	buf_printf(&cmd->out, "* %zu FETCH (", i + 1);
	return true;
}

/* Writes the items of the current message from f->cur; false when the
 * budget ran out in the middle of a literal. */
static bool msg_items(struct imap_cmd *cmd, struct fetch *f)
{
	const struct mbox_msg *x = mbox_get(cmd->s->mbox, f->i);
	struct buf *out = &cmd->out;

	if (f->st.on && !stream_more(cmd, f))
		return false;
	for (; f->cur < f->n_items; f->cur++) {
		const struct item *it = &f->items[f->cur];

		if (f->cur)
			buf_addch(out, ' ');
		switch (it->kind) {
		case IT_UID:
			buf_printf(out, "UID %u", x->uid);
			break;
		case IT_FLAGS:
			buf_adds(out, "FLAGS ");
			imap_write_flags(out, imap_msg_flags(cmd->s->mbox, f->i), x->keywords);
			break;
		case IT_INTERNALDATE:
			write_internaldate(out, x->internaldate);
			break;
		case IT_SIZE:
			buf_printf(out, "RFC822.SIZE %llu", (unsigned long long)x->vsize);
			break;
		case IT_MODSEQ:
			buf_printf(out, "MODSEQ (%llu)", (unsigned long long)x->modseq);
			break;
		case IT_ENVELOPE:
			buf_adds(out, "ENVELOPE ");
			buf_add(out, f->env.data, f->env.len);
			break;
		case IT_BODY:
			buf_adds(out, "BODY ");
			buf_add(out, f->body.data, f->body.len);
			break;
		case IT_BODYSTRUCTURE:
			buf_adds(out, "BODYSTRUCTURE ");
			buf_add(out, f->bs.data, f->bs.len);
			break;
		case IT_SECTION:
			section_begin(cmd, f, it);
			if (f->st.on && !stream_more(cmd, f)) {
				f->cur++;   /* resume after this item once the literal is out */
				return false;
			}
			break;
		}
	}
	/* RFC 3501 6.4.5: a \Seen set by this FETCH shows as FLAGS. */
	if (f->seen_set && !f->has_flags) {
		buf_adds(out, " FLAGS ");
		imap_write_flags(out, imap_msg_flags(cmd->s->mbox, f->i), x->keywords);
		if (cmd->s->condstore && !f->has_modseq)
			buf_printf(out, " MODSEQ (%llu)", (unsigned long long)x->modseq);
	}
	buf_adds(out, ")\r\n");
	return true;
}

static int fetch_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct fetch *f = cmd->priv;
	struct mbox *m = s->mbox;

	if (!f->started) {
		f->started = true;
		if (f->want_cache)
			f->cache = mbox_cache_open(m);
		if (f->vanished) {
			uint32_t *gone = NULL;
			size_t n_gone = 0;
			if (mbox_vanished_since(m, f->changedsince, &gone, &n_gone) == 0 && n_gone) {
				struct imap_seqset v = IMAP_SEQSET_INIT;
				for (size_t k = 0; k < n_gone; k++)
					if (imap_seqset_contains(&f->uids, gone[k]))
						imap_seqset_add(&v, gone[k]);
				if (v.count) {
					buf_adds(&cmd->out, "* VANISHED (EARLIER) ");
					imap_seqset_format(&v, &cmd->out);
					buf_adds(&cmd->out, "\r\n");
				}
				imap_seqset_release(&v);
			}
			free(gone);
		}
		imap_seqset_iter_init(&f->it, &f->idx);
	}
	while (cmd->out.len < FETCH_CHUNK) {
		if (!f->in_msg) {
			uint32_t seq;
			if (!imap_seqset_iter_next(&f->it, &seq)) {
				f->done = true;
				break;
			}
			if (seq == 0 || seq > mbox_count(m) || !msg_begin(cmd, f, seq - 1))
				continue;
		}
		if (!msg_items(cmd, f))
			break;
		msg_end(f);
	}
	mbox_cache_flush(f->cache);
	if (!f->done)
		return IMAP_RUN_MORE;
	mbox_cache_close(&f->cache);
	if (f->skipped)
		imap_cmd_tagged(cmd, "OK", "[EXPUNGEISSUED] Some messages were already expunged");
	else
		imap_cmd_tagged(cmd, "OK", "Fetch completed");
	return IMAP_RUN_DONE;
}

static void fetch_finish(struct imap_cmd *cmd)
{
	struct fetch *f = cmd->priv;

	/* Other sessions hear of the \Seen flags this FETCH set. */
	if (f && f->flags_changed)
		cmd->s->io.publish(cmd->s->ctx, cmd->s->key);
}

static void cmd_fetch_start(struct imap_cmd *cmd)
{
	cmd_fetch(cmd);
	if (cmd->run)
		cmd->finish = fetch_finish;
}

const struct imap_cmd_def imap_cmds_fetch[] = {
	{ "FETCH", IMAP_SELECTED, cmd_fetch_start, IMAP_CMD_NO_REFRESH },
	{ "UID FETCH", IMAP_SELECTED, cmd_fetch_start, 0 },
	{ NULL, 0, NULL, 0 },
};
