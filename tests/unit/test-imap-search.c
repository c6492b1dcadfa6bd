/* Unit tests of SEARCH (imap/imap-cmd-search.c): an IMAP session driven
 * synchronously, byte by byte, over a real Maildir and index in /tmp. The
 * messages are the awkward shapes the integration tests do not cover:
 * folded headers, split encoded words, repeated fields, message/rfc822
 * bodies, a header without a body, an empty file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "imap/imap-private.h"
#include "lib/config.h"
#include "tests/common/imap-fake-io.h"

static int failures;
static char root[256];

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static void put(const char *name, const char *text, int y, int mon, int d)
{
	char path[1024];
	struct tm tm = { 0 };
	struct utimbuf ut;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/cur/%s", root, name);
	fp = fopen(path, "w");
	if (!fp) {
		perror(path);
		exit(2);
	}
	fputs(text, fp);
	fclose(fp);
	tm.tm_year = y - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = d;
	tm.tm_hour = 12;
	tm.tm_isdst = -1;
	ut.actime = ut.modtime = mktime(&tm);
	utime(path, &ut);
}

static const char *const messages[][2] = {
	{ "0001.a:2,S",
	  "Subject: hello\n world\n"
	  "From: =?UTF-8?Q?Andr=C3=A9?= =?UTF-8?Q?_Dupont?= <a@x.example>\n"
	  "Received: from one\n"
	  "Received: from two.example\n"
	  "Date: Sunday, 7 February 1994 21:52:25 -0800\n"
	  "\n"
	  "plain body\n" },
	{ "0002.b:2,",
	  "Subject: outer\n"
	  "Content-Type: message/rfc822\n"
	  "\n"
	  "Subject: inner-subject\n"
	  "Content-Type: text/plain; charset=utf-8\n"
	  "Content-Transfer-Encoding: base64\n"
	  "\n"
	  "zqPOn86mzpnOkQ==\n" },
	{ "0003.c:2,F", "Subject: no body here\nX-Tag: One\n" },
	{ "0004.d:2,", "" },
};

struct tcase {
	const char *in;
	const char *want;
};

static const struct tcase cases[] = {
	{ "a SEARCH ALL\r\n", "* SEARCH 1 2 3 4\r\na OK Search completed\r\n" },
	/* unfolded header */
	{ "a SEARCH SUBJECT \"hello world\"\r\n", "* SEARCH 1\r\na OK Search completed\r\n" },
	/* adjacent encoded words joined, literal, case folding of é */
	{ "a SEARCH CHARSET UTF-8 FROM {13}\r\nANDRÉ DUPONT\r\n",
	  "+ OK\r\n* SEARCH 1\r\na OK Search completed\r\n" },
	{ "a SEARCH FROM {13+}\r\nandré dupont\r\n", "* SEARCH 1\r\na OK Search completed\r\n" },
	/* every occurrence of a field */
	{ "a SEARCH HEADER received two.example\r\n", "* SEARCH 1\r\na OK Search completed\r\n" },
	{ "a SEARCH HEADER RECEIVED \"from one\"\r\n", "* SEARCH 1\r\na OK Search completed\r\n" },
	/* full day and month names */
	{ "a SEARCH SENTON 7-Feb-1994\r\n", "* SEARCH 1\r\na OK Search completed\r\n" },
	{ "a SEARCH SENTSINCE 8-Feb-1994\r\n", "* SEARCH\r\na OK Search completed\r\n" },
	{ "a SEARCH ON 8-Feb-1994\r\n", "* SEARCH 1\r\na OK Search completed\r\n" },
	/* message/rfc822: its header is body text of the outer message */
	{ "a SEARCH BODY inner-subject\r\n", "* SEARCH 2\r\na OK Search completed\r\n" },
	{ "a SEARCH SUBJECT inner\r\n", "* SEARCH\r\na OK Search completed\r\n" },
	{ "a SEARCH BODY {10}\r\nσοφια\r\n", "+ OK\r\n* SEARCH 2\r\na OK Search completed\r\n" },
	/* a header without a body, an empty file */
	{ "a SEARCH SUBJECT \"no body\"\r\n", "* SEARCH 3\r\na OK Search completed\r\n" },
	{ "a SEARCH TEXT one\r\n", "* SEARCH 1 3\r\na OK Search completed\r\n" },
	{ "a SEARCH NOT TEXT zzz\r\n", "* SEARCH 1 2 3 4\r\na OK Search completed\r\n" },
	{ "a SEARCH HEADER X-Tag \"\"\r\n", "* SEARCH 3\r\na OK Search completed\r\n" },
	{ "a SEARCH 2:* UNFLAGGED\r\n", "* SEARCH 2 4\r\na OK Search completed\r\n" },
	{ "a SEARCH 3:9\r\n", "* SEARCH 3 4\r\na OK Search completed\r\n" },
	{ "a SEARCH ON 29-Feb-2024\r\n", "* SEARCH\r\na OK Search completed\r\n" },
	/* ESEARCH and SEARCHRES */
	{ "t1 UID SEARCH RETURN (MIN MAX) NOT SEEN\r\n",
	  "* ESEARCH (TAG \"t1\") UID MIN 2 MAX 4\r\nt1 OK UID SEARCH completed\r\n" },
	{ "a SEARCH RETURN (SAVE) FLAGGED\r\n", "a OK Search completed\r\n" },
	{ "b SEARCH $\r\n", "* SEARCH 3\r\nb OK Search completed\r\n" },
	{ "b SEARCH OR $ 1\r\n", "* SEARCH 1 3\r\nb OK Search completed\r\n" },
	/* errors */
	{ "a SEARCH OR SEEN\r\n", "a BAD Missing search key\r\n" },
	{ "a SEARCH ON 30-Feb-2024\r\n", "a BAD Invalid search date\r\n" },
	{ "a SEARCH HEADER \"Bad:Name\" x\r\n", "a BAD Invalid header field name\r\n" },
	{ "a SEARCH CHARSET BIG5 ALL\r\n", "a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n" },
	{ "a SEARCH RETURN (SAVE) CHARSET BIG5 ALL\r\n", "a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n" },
	{ "b SEARCH $\r\n", "* SEARCH\r\nb OK Search completed\r\n" },
	{ "a SEARCH\r\n", "a BAD SEARCH needs search keys\r\n" },
};

static void feed(struct imap_session *s, const char *in)
{
	for (size_t i = 0; in[i]; i++)
		CHECK(imap_session_input(s, in + i, 1) == 1);
}

int main(void)
{
	struct imap_config cfg;
	struct imap_backend backend = { NULL, "test.example" };
	struct imap_session_params params = { .cfg = &cfg, .backend = &backend, .sid = "t",
					      .client_addr = "127.0.0.1" };
	struct imap_fake f;
	struct imap_session *s;
	struct mbox *m = NULL;
	char err[256], path[1024];
	struct buf deep = BUF_INIT(0);

	setenv("TZ", "UTC", 1);
	tzset();
	snprintf(root, sizeof(root), "/tmp/buzon-search-XXXXXX");
	if (!mkdtemp(root))
		return 2;
	for (const char *const *d = (const char *const[]){ "new", "cur", "tmp", NULL }; *d; d++) {
		snprintf(path, sizeof(path), "%s/%s", root, *d);
		mkdir(path, 0700);
	}
	put(messages[0][0], messages[0][1], 1994, 2, 8);
	put(messages[1][0], messages[1][1], 2000, 1, 1);
	put(messages[2][0], messages[2][1], 2010, 6, 30);
	put(messages[3][0], messages[3][1], 2020, 12, 31);

	imap_config_defaults(&cfg);
	snprintf(cfg.hostname, sizeof(cfg.hostname), "test.example");
	/* commands run inside exec, so every byte is taken at once */
	imap_fake_open(&f, &params, IMAP_FAKE_RUN_NOW);
	s = f.s;
	CHECK(mbox_open(root, "INBOX", MBOX_READONLY, &m, err, sizeof(err)) == 0);
	s->mbox = m;
	s->state = IMAP_SELECTED;
	s->readonly = true;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&f.out);
		feed(s, cases[i].in);
		if (f.out.len != strlen(cases[i].want) || memcmp(f.out.data, cases[i].want, f.out.len) != 0) {
			fprintf(stderr, "case %zu: %s\n  want: %s\n  got:  %.*s\n", i, cases[i].in, cases[i].want,
				(int)f.out.len, f.out.data ? f.out.data : "");
			failures++;
		}
	}

	/* Nesting is bounded: 64 NOTs are fine, 66 are refused. */
	for (int n = 64; n <= 66; n += 2) {
		buf_reset(&deep);
		buf_adds(&deep, "d SEARCH");
		for (int k = 0; k < n; k++)
			buf_adds(&deep, " NOT");
		buf_adds(&deep, " SEEN\r\n");
		buf_reset(&f.out);
		feed(s, deep.data);
		if (n == 64)
			CHECK(f.out.data && strcmp(f.out.data, "* SEARCH 1\r\nd OK Search completed\r\n") == 0);
		else
			CHECK(f.out.data && strcmp(f.out.data, "d BAD Search keys nested too deeply\r\n") == 0);
	}
	buf_release(&deep);

	imap_fake_free(&f);
	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	if (system(path) != 0)
		failures++;
	failures += imap_fake_failures();
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	return failures ? 1 : 0;
}
