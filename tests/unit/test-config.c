/* Unit tests of the configuration reader: every error names the line, no
 * error line carries a raw byte from the file, and what is accepted is
 * accepted on purpose (a table of each). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/config.h"
#include "tests/common/check.h"

static const char minimal[] =
	"[server]\n"
	"hostname = mail.example.test\n"
	"data_dir = /var/lib/buzon\n"
	"\n"
	"[listener \"mx\"]\n"
	"protocol = smtp\n"
	"address = 127.0.0.1:2525\n";

#define HEAD "[server]\nhostname = a\ndata_dir = /x\n"
#define MX "[listener \"mx\"]\nprotocol = smtp\naddress = 127.0.0.1:25\n"

/* A text given with its length (it may hold NUL bytes); len 0: strlen. */
#define BUF(s) s, sizeof(s) - 1
struct bad_case {
	const char *text;
	size_t len;
	const char *want; /* substring of the error, with the line */
};

static const struct bad_case bad[] = {
	{ HEAD "[bogus]\nkey = 1\n", 0, "t.conf:4: unknown section [bogus]" },
	{ HEAD "colour = blue\n", 0, "t.conf:4: [server]: unknown key 'colour'" },
	{ "[server]\nhostname = a b\n", 0, "t.conf:2: hostname 'a b' is not a domain name" },
	{ HEAD "[listener \"mx\"]\nprotocol = smtp\naddress = 127.0.0.1:99999\n", 0,
	  "t.conf:6: listener \"mx\": address '127.0.0.1:99999' has a bad port" },
	{ HEAD "[listener \"mx\"]\nprotocol = smtp\naddress = 300.0.0.1:25\n", 0,
	  "t.conf:6: listener \"mx\": address '300.0.0.1:25': '300.0.0.1' is not an IPv4 address" },
	{ HEAD "[listener \"mx\"]\nprotocol = smtp\naddress = ::1:25\n", 0,
	  "t.conf:6: listener \"mx\": address '::1:25' is not host:port (write IPv6 as [addr]:port)" },
	{ HEAD "[listener \"mx\"]\nprotocol = gopher\n", 0,
	  "t.conf:5: listener \"mx\": protocol 'gopher' is not smtp, submission, pop3 or imap" },
	{ HEAD "[listener \"mx\"]\naddress = 127.0.0.1:25\n", 0, "t.conf:4: listener \"mx\": protocol is not set" },
	{ HEAD, 0, "t.conf: no [listener \"name\"] section" },
	{ "[server]\nhostname = a\n" MX, 0, "t.conf: [server] data_dir is not set" },
	{ HEAD "[smtp]\nmax_message_size = lots\n", 0, "t.conf:5: max_message_size 'lots' is not a size" },
	{ HEAD "[smtp]\nbare_newline = maybe\n", 0, "t.conf:5: bare_newline 'maybe' is not normalize or reject" },
	{ HEAD "[smtp]\nreceived_hide_client = maybe\n", 0, "t.conf:5: received_hide_client 'maybe' is not yes or no" },
	{ "[server]\nhostname = a\nhostname = b\n", 0, "t.conf:3: [server]: key 'hostname' is set twice" },
	{ HEAD "[listener \"a\"]\nprotocol = smtp\naddress = 127.0.0.1:25\n"
	  "[listener \"b\"]\nprotocol = smtp\naddress = 127.0.0.1:25\n", 0,
	  "t.conf:9: listener \"b\": address 127.0.0.1:25 is already used by listener \"a\"" },
	{ "this is not ini\n", 0, "t.conf:1: expected [section] or key = value, got 'this is not ini'" },
	{ "[listener mx]\nprotocol = smtp\n", 0, "t.conf:1: section [listener mx]: write listeners as [listener \"name\"]" },
	{ HEAD "[imap]\nmax_buffered = 10k\n", 0, "t.conf:5: max_buffered '10k' is not a size from 1M to 1T" },
	{ HEAD "[imap]\nmax_literal = 60M\nmax_buffered = 50M\n[listener \"mx\"]\nprotocol = imap\naddress = 127.0.0.1:143\n",
	  0, "t.conf: [imap] max_buffered (52428800) is smaller than max_literal (62914560)" },

	/* A section given twice: a later one would silently override. */
	{ HEAD MX "[server]\nhostname = evil.test\n", 0, "t.conf:7: section [server] is given twice (first on line 1)" },
	{ HEAD "[smtp]\nmax_recipients = 10\n" MX "[smtp]\nmax_recipients = 20\n", 0,
	  "t.conf:9: section [smtp] is given twice (first on line 4)" },
	{ HEAD "[pop3]\n[pop3]\n" MX, 0, "t.conf:5: section [pop3] is given twice (first on line 4)" },
	{ HEAD MX "[listener \"mx\"]\n", 0, "t.conf:7: listener \"mx\" is defined twice (first on line 4)" },
	/* Unknown or empty sections, even without keys. */
	{ HEAD MX "[bogus]\n", 0, "t.conf:7: unknown section [bogus]" },
	{ HEAD MX "[]\n", 0, "t.conf:7: empty section name []" },
	{ "[server\nhostname = a\n", 0, "t.conf:1: section header '[server' has no closing ']'" },
	{ "[server] extra\n", 0, "t.conf:1: junk after the section header: 'extra'" },
	{ "[server]x\n", 0, "t.conf:1: junk after the section header: 'x'" },
	{ "[server] ; a comment\n[smtp] # another\n[x ;y]\n", 0, "t.conf:3: unknown section [x ;y]" },
	/* NUL bytes, anywhere, and other bytes that are not text. */
	{ BUF("[server]\nhostname = a\ndata_dir = /x\0junk\n" MX), "t.conf:3: line contains a NUL byte" },
	{ BUF("[server]\n# a comment \0 with a NUL\nhostname = a\n"), "t.conf:2: line contains a NUL byte" },
	{ BUF("\0"), "t.conf:1: line contains a NUL byte" },
	{ "[server]\nhostname = a\x1b]0;pwned\x07\n", 0, "t.conf:2: line contains the control character \\x1b" },
	{ "[server]\nhostname = a\rb\n", 0, "t.conf:2: line contains the control character \\x0d" },
	{ "[server]\rhostname = a\r", 0, "t.conf:1: line contains the control character \\x0d" },
	{ "[server]\nhostname = \xff\xfe\n", 0, "t.conf:2: line is not valid UTF-8" },
	{ BUF("\xff\xfe[\0s\0e\0r\0v\0e\0r\0]\0\n\0"), "t.conf:1: line contains a NUL byte" },
	/* File-supplied text in an error line is escaped and cut. */
	{ "[server]\nhostname = caf\xc3\xa9\\x\n", 0, "t.conf:2: hostname 'caf\\xc3\\xa9\\\\x' is not a domain name" },
	{ "[server]\nhostname = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\n", 0,
	  "aaaaaaaaaaaaaaaa...' is not a domain name" },
	{ "[caf\xc3\xa9]\n", 0, "t.conf:1: unknown section [caf\\xc3\\xa9]" },
	{ "\xef\xbb\xbf[server]\n\xef\xbb\xbfhostname = a\n", 0,
	  "t.conf:2: key '\\xef\\xbb\\xbfhostname' is not a name" },
	/* Keys that are not names, values with trailing junk or quotes. */
	{ "[server]\nhost:name = a\n", 0, "t.conf:2: key 'host:name' is not a name" },
	{ "[server]\nhostname: a\n", 0, "t.conf:2: expected [section] or key = value, got 'hostname: a'" },
	{ "[server]\nhost name = a\n", 0, "t.conf:2: key 'host name' is not a name" },
	{ "[server]\n= a\n", 0, "t.conf:2: '= a' has no key before '='" },
	{ "[server]\nhostname\n", 0, "t.conf:2: expected [section] or key = value, got 'hostname'" },
	{ "[server]\nabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij = 1\n", 0,
	  "t.conf:2: key 'abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij' is longer than 48 characters" },
	{ HEAD "[smtp]\nmax_recipients = 10 abc\n", 0, "t.conf:5: max_recipients '10 abc' is not a number" },
	{ HEAD "[smtp]\nmax_recipients = 10 # not a comment here\n", 0,
	  "t.conf:5: max_recipients '10 # not a comment here' is not a number" },
	{ HEAD "[smtp]\nmax_message_size = 10M;\n", 0, "t.conf:5: max_message_size '10M;' is not a size" },
	{ "[server]\nhostname = \"mx.example.test\"\n", 0,
	  "t.conf:2: hostname: value \"mx.example.test\" is in quotes; write it without them" },
	{ "[server]\ndata_dir = '/var/lib/buzon'\n", 0, "t.conf:2: data_dir: value '/var/lib/buzon' is in quotes" },
	{ "[server]\nhostname = a\nlog_level = info x\n", 0, "t.conf:3: log_level 'info x' is not debug" },
	/* Keys outside a section; a line too long for the reader. */
	{ "hostname = a\n[server]\n", 0, "t.conf:1: key 'hostname' is outside any section" },
	/* Paths. */
	{ "[server]\nhostname = a\ndata_dir =\n", 0, "t.conf:3: data_dir is empty" },
	{ "[server]\nhostname = a\ndata_dir = /../x\n", 0, "t.conf:3: data_dir '/../x' goes above /" },
	{ "[server]\nhostname = a\ndata_dir = /x\nlog_file = /a/../..\n", 0, "t.conf:4: log_file '/a/../..' goes above /" },

	/* [tls]: a certificate and its key go together, each error on the
	 * line of the key that is there. */
	{ HEAD "[tls]\ncertificate = /c.pem\n" MX, 0, "t.conf:5: [tls] certificate is set but key is not" },
	{ HEAD "[tls]\nkey = /k.pem\n" MX, 0, "t.conf:5: [tls] key is set but certificate is not" },
	{ HEAD "[tls]\ncertificate = auto\nkey = /k.pem\n" MX, 0,
	  "t.conf:6: [tls] key: certificate = auto makes its own key; remove this line" },
	{ HEAD "[tls]\nkey = /k.pem\ncertificate = auto\n" MX, 0, "t.conf:5: [tls] key: certificate = auto" },
	{ HEAD "[tls]\ncertificate =\nkey = /k.pem\n", 0, "t.conf:5: certificate is empty" },
	{ HEAD "[tls]\ncertificate = /../c.pem\n", 0, "t.conf:5: certificate '/../c.pem' goes above /" },
	{ HEAD "[tls]\ncertificate = /c.pem\ncertificate = /d.pem\n", 0, "t.conf:6: [tls]: key 'certificate' is set twice" },
	{ HEAD "[tls]\nciphers = HIGH\n", 0, "t.conf:5: [tls]: unknown key 'ciphers'" },
	{ HEAD "[tls]\n" MX "[tls]\n", 0, "t.conf:8: section [tls] is given twice (first on line 4)" },
	{ HEAD "[tls]\nhandshake_timeout = 11m\n", 0, "t.conf:5: handshake_timeout '11m' is not a duration from 1s to 10m" },
	{ HEAD "[tls]\nhandshake_timeout = 0\n", 0, "t.conf:5: handshake_timeout '0' is not a duration from 1s to 10m" },
	{ HEAD "[tls]\nhandshake_timeout = soon\n", 0, "t.conf:5: handshake_timeout 'soon' is not a duration" },
	/* The priority string is GnuTLS's to judge, at load, with its line. */
	{ HEAD "[tls]\npriority = NORMAL:+VERS-FOO\n" MX, 0,
	  "t.conf:5: priority: '+VERS-FOO' at character 8 is not understood" },
	{ HEAD "[tls]\npriority = NORMAL:-VERS-ALL\n" MX, 0,
	  "t.conf:5: priority: it leaves no TLS version, cipher, key exchange or signature to use" },
	{ HEAD "[tls]\npriority = NORMAL:+caf\xc3\xa9\n" MX, 0, "t.conf:5: priority: '+caf\\xc3\\xa9' at character 8" },
	{ HEAD "[tls]\npriority =\n" MX, 0, "t.conf:5: priority is empty" },
	/* Listeners: the mode, a pair of their own, and a certificate for
	 * any mode but none. */
	{ HEAD MX "tls = maybe\n", 0, "t.conf:7: listener \"mx\": tls 'maybe' is not none, starttls, required or implicit" },
	{ HEAD MX "tls = starttls\n", 0, "t.conf:7: listener \"mx\": tls = starttls needs a certificate" },
	{ HEAD MX "tls = required\n", 0, "t.conf:7: listener \"mx\": tls = required needs a certificate" },
	{ HEAD "[tls]\npriority = NORMAL\n" MX "tls = implicit\n", 0,
	  "t.conf:9: listener \"mx\": tls = implicit needs a certificate" },
	{ HEAD MX "certificate = /c.pem\n", 0, "t.conf:7: listener \"mx\": certificate is set but key is not" },
	{ HEAD MX "key = /k.pem\ntls = implicit\n", 0, "t.conf:7: listener \"mx\": key is set but certificate is not" },
	{ HEAD "[tls]\ncertificate = /c.pem\nkey = /k.pem\n" MX "key = /k2.pem\n", 0,
	  "t.conf:10: listener \"mx\": key is set but certificate is not" },
	{ HEAD MX "certificate = auto\n", 0, "t.conf:7: listener \"mx\": certificate = auto is only for [tls]" },
	{ HEAD MX "certificate =\n", 0, "t.conf:7: listener \"mx\": certificate is empty" },
	{ HEAD MX "key = /a/../../k\n", 0, "t.conf:7: listener \"mx\": key '/a/../../k' goes above /" },
	{ HEAD MX "tls = none\ntls = implicit\n", 0, "t.conf:8: [listener \"mx\"]: key 'tls' is set twice" },
	/* [certificate "NAME"]: both keys, a unique name, and the default
	 * certificate of [tls] before any of them. */
	{ HEAD "[certificate \"b\"]\ncertificate = /b.pem\nkey = /b.key\n" MX, 0,
	  "t.conf:4: certificate \"b\": [tls] certificate is not set" },
	{ HEAD "[tls]\ncertificate = auto\n[certificate \"b\"]\ncertificate = /b.pem\n" MX, 0,
	  "t.conf:7: certificate \"b\": certificate is set but key is not" },
	{ HEAD "[tls]\ncertificate = auto\n[certificate \"b\"]\nkey = /b.key\n" MX, 0,
	  "t.conf:7: certificate \"b\": key is set but certificate is not" },
	{ HEAD "[tls]\ncertificate = auto\n[certificate \"b\"]\n" MX, 0,
	  "t.conf:6: certificate \"b\": certificate and key are not set" },
	{ HEAD "[tls]\ncertificate = auto\n[certificate \"b\"]\ncertificate = /b.pem\nkey = /b.key\n"
	  "[certificate \"b\"]\n" MX, 0, "t.conf:9: certificate \"b\" is defined twice (first on line 6)" },
	{ HEAD "[certificate b]\n", 0, "t.conf:4: section [certificate b]: write certificates as [certificate \"name\"]" },
	{ HEAD "[certificate]\n", 0, "t.conf:4: section [certificate]: write certificates as [certificate \"name\"]" },
	{ HEAD "[certificate \"a b\"]\n", 0, "t.conf:4: certificate name \"a b\": use letters, digits" },
	{ HEAD "[certificate \"b\"]\nchain = /x\n", 0, "t.conf:5: certificate \"b\": unknown key 'chain'" },
	{ HEAD "[certificate \"b\"]\ncertificate = auto\n", 0,
	  "t.conf:5: certificate \"b\": certificate = auto is only for [tls]" },
	{ HEAD "[certificate \"b\"]\ncertificate = /../b\n", 0, "t.conf:5: certificate \"b\": certificate '/../b' goes above /" },
	{ HEAD "[certificate \"b\"]\nkey = /b\nkey = /c\n", 0, "t.conf:6: [certificate \"b\"]: key 'key' is set twice" },
	/* listener policy keys and [auth] */
	{ HEAD MX "allow = 192.0.2.0/33\n", 0,
	  "t.conf:7: listener \"mx\": allow: '192.0.2.0/33' is not an address or CIDR (192.0.2.0/24, 2001:db8::/32): "
	  "the prefix length is not from 0 to 32" },
	{ HEAD MX "deny = 10.0.0.0/8 nonsense\n", 0,
	  "t.conf:7: listener \"mx\": deny: 'nonsense' is not an address or CIDR" },
	{ HEAD MX "deny = 2001:db8::/129\n", 0, "the prefix length is not from 0 to 128" },
	{ HEAD MX "deny = 10.0.0.0/x\n", 0, "t.conf:7: listener \"mx\": deny: '10.0.0.0/x'" },
	{ HEAD MX "max_messages_per_ip_per_minute = -1\n", 0,
	  "t.conf:7: listener \"mx\": max_messages_per_ip_per_minute '-1' is not a number from 0" },
	{ HEAD "[listener \"i\"]\nprotocol = imap\naddress = 127.0.0.1:143\nmax_messages_per_ip_per_minute = 5\n", 0,
	  "t.conf:7: listener \"i\": max_messages_per_ip_per_minute is for smtp and submission listeners" },
	{ HEAD "[listener \"i\"]\nprotocol = pop3\naddress = 127.0.0.1:110\nmax_recipients = 5\n", 0,
	  "t.conf:7: listener \"i\": max_recipients is for smtp and submission listeners" },
	{ HEAD MX "max_recipients = 0\n", 0, "t.conf:7: listener \"mx\": max_recipients '0' is not a number from 1" },
	{ HEAD MX "auth = maybe\n", 0, "t.conf:7: listener \"mx\": auth 'maybe' is not none, optional or required" },
	{ HEAD "[listener \"i\"]\nprotocol = imap\naddress = 127.0.0.1:143\nauth = none\n", 0,
	  "t.conf:7: listener \"i\": auth = none: POP3 and IMAP always require a login" },
	{ HEAD MX "allow_plaintext_auth = sometimes\n", 0,
	  "t.conf:7: listener \"mx\": allow_plaintext_auth 'sometimes' is not no, loopback or yes" },
	{ HEAD "[imap]\nauth_delay_base = 2s\n" MX, 0,
	  "t.conf:5: [imap]: auth_delay_base moved to [auth] (one failed-login table for SMTP, POP3 and IMAP)" },
	{ HEAD "[pop3]\nauth_delay_free = 2\n" MX, 0, "t.conf:5: [pop3]: auth_delay_free moved to [auth]" },
	{ HEAD "[auth]\nlockout_failures = many\n" MX, 0,
	  "t.conf:5: lockout_failures 'many' is not a number from 0 (no lockout) to 1000" },
	{ HEAD "[auth]\nlockout_window = 0\n" MX, 0, "t.conf:5: lockout_window '0' is not a duration from 1s" },
	{ HEAD "[auth]\nlockout_time = 31d\n" MX, 0, "t.conf:5: lockout_time '31d' is not a duration" },
	{ HEAD "[auth]\nauth_exempt = 127.0.0.1 ::1/200\n" MX, 0, "t.conf:5: auth_exempt: '::1/200'" },
	{ HEAD "[auth]\nlockout = yes\n" MX, 0, "t.conf:5: [auth]: unknown key 'lockout'" },
};

/* Accepted on purpose: each must load, and check() says what it gave. */
struct good_case {
	const char *name;
	const char *text;
	const char *hostname, *data_dir, *log_file; /* expected; log_file NULL: standard error */
};

static const struct good_case good[] = {
	{ "minimal", minimal, "mail.example.test", "/var/lib/buzon", NULL },
	/* Windows editors: a byte order mark and CR LF line ends. */
	{ "bom and crlf", "\xef\xbb\xbf[server]\r\nhostname = a.test\r\ndata_dir = /d\r\n"
	  "[listener \"mx\"]\r\nprotocol = smtp\r\naddress = 127.0.0.1:25\r\n", "a.test", "/d", NULL },
	/* No line end at the end of the file. */
	{ "no final newline", "[server]\nhostname = a.test\ndata_dir = /d\n[listener \"mx\"]\nprotocol = smtp\n"
	  "address = 127.0.0.1:25", "a.test", "/d", NULL },
	/* Indented keys are keys, not continuations of the line before. */
	{ "indented", "[server]\n  hostname = a.test\n\tdata_dir = /d\n  [listener \"mx\"]\n  protocol = smtp\n"
	  "  address = 127.0.0.1:25\n", "a.test", "/d", NULL },
	{ "comments", "# c\n; c\n[server] ; c\nhostname = a.test ; c\ndata_dir = /d\t;c\n" MX, "a.test", "/d", NULL },
	{ "tidy paths", "[server]\nhostname = a\ndata_dir = /var//lib/./x/../buzon/\nlog_file = /var/log/buzon.log\n" MX,
	  "a", "/var/lib/buzon", "/var/log/buzon.log" },
	{ "root", "[server]\nhostname = a\ndata_dir = /\n" MX, "a", "/", NULL },
	/* A listener name longer than libinih's 49-octet section names. */
	{ "long listener name", "[server]\nhostname = a\ndata_dir = /d\n"
	  "[listener \"a-listener-name-of-sixty-characters-which-is-fine-0123456\"]\nprotocol = smtp\n"
	  "address = 127.0.0.1:25\n", "a", "/d", NULL },
};

static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static void test_bad(void)
{
	struct config cfg;
	char err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
		err[0] = '\0';
		int r = config_load_buffer(bad[i].text, len, "t.conf", &cfg, err, sizeof(err));
		CHECK(r < 0, "bad case %zu accepted (want '%s')", i, bad[i].want);
		CHECK(r == 0 || strstr(err, bad[i].want), "bad case %zu: got '%s', want '%s'", i, err, bad[i].want);
		CHECK(printable(err), "bad case %zu: raw bytes in '%s'", i, err);
		config_free(&cfg);
	}
}

static void test_good(void)
{
	struct config cfg;
	char err[512];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good_case *g = &good[i];
		err[0] = '\0';
		if (config_load_string(g->text, "t.conf", &cfg, err, sizeof(err)) < 0) {
			CHECK(0, "%s: refused: %s", g->name, err);
			config_free(&cfg);
			continue;
		}
		CHECK(strcmp(cfg.hostname, g->hostname) == 0, "%s: hostname '%s'", g->name, cfg.hostname);
		CHECK(strcmp(cfg.data_dir, g->data_dir) == 0, "%s: data_dir '%s'", g->name, cfg.data_dir);
		if (g->log_file)
			CHECK(cfg.log_file && strcmp(cfg.log_file, g->log_file) == 0, "%s: log_file '%s'", g->name,
			      cfg.log_file ? cfg.log_file : "(none)");
		CHECK(cfg.n_listeners == 1 && cfg.listeners[0].have_protocol && cfg.listeners[0].n_addrs == 1,
		      "%s: listeners", g->name);
		config_free(&cfg);
	}
}

/* What the TLS keys give: each listener's mode (have_tls only when set),
 * [tls]'s pair and the extra certificates in file order. */
struct tls_case {
	const char *name;
	const char *text;
	const char *modes;       /* per listener: n(one) s(tarttls) r(equired) i(mplicit) */
	const char *certificate; /* [tls] certificate, NULL: none */
	const char *key;
	const char *own;         /* the first listener's own certificate, NULL: none */
	size_t n_extra;
	unsigned handshake_timeout;
	const char *priority;
};

#define TLS_PAIR "[tls]\ncertificate = /etc/buzon/c.pem\nkey = /etc/buzon/k.pem\n"
#define IMAPS "[listener \"imaps\"]\nprotocol = imap\naddress = 127.0.0.1:993\n"

static const struct tls_case tls_cases[] = {
	{ "no tls", HEAD MX IMAPS, "nn", NULL, NULL, NULL, 0, 30, NULL },
	{ "tls without a certificate", HEAD "[tls]\nhandshake_timeout = 2m\n" MX "tls = none\n", "n", NULL, NULL,
	  NULL, 0, 120, NULL },
	{ "default starttls", HEAD TLS_PAIR MX IMAPS "tls = implicit\n", "si", "/etc/buzon/c.pem", "/etc/buzon/k.pem",
	  NULL, 0, 30, NULL },
	{ "none and required", HEAD TLS_PAIR MX "tls = none\n" IMAPS "tls = required\n", "nr", "/etc/buzon/c.pem",
	  "/etc/buzon/k.pem", NULL, 0, 30, NULL },
	{ "own pair only", HEAD MX "certificate = /m/c.pem\nkey = /m//k.pem\n" IMAPS, "sn", NULL, NULL, "/m/c.pem",
	  0, 30, NULL },
	{ "own pair, implicit", HEAD MX "key = /m/k.pem\ncertificate = /m/c.pem\ntls = implicit\n", "i", NULL, NULL,
	  "/m/c.pem", 0, 30, NULL },
	{ "auto", HEAD "[tls]\ncertificate = auto\nhandshake_timeout = 10m\n" MX IMAPS "tls = required\n", "sr", "auto",
	  NULL, NULL, 0, 600, NULL },
	{ "sni", HEAD "[certificate \"b\"]\ncertificate = /b/c.pem\nkey = /b/k.pem\n" TLS_PAIR
	  "priority = NORMAL:%SERVER_PRECEDENCE\n[certificate \"c.example\"]\nkey = /c/k.pem\ncertificate = /c/c.pem\n" MX,
	  "s", "/etc/buzon/c.pem", "/etc/buzon/k.pem", NULL, 2, 30, "NORMAL:%SERVER_PRECEDENCE" },
};

static void test_tls(void)
{
	struct config cfg;
	char err[512];

	for (size_t i = 0; i < sizeof(tls_cases) / sizeof(tls_cases[0]); i++) {
		const struct tls_case *t = &tls_cases[i];

		if (config_load_string(t->text, "t.conf", &cfg, err, sizeof(err)) < 0) {
			CHECK(0, "%s: refused: %s", t->name, err);
			config_free(&cfg);
			continue;
		}
		CHECK(cfg.n_listeners == strlen(t->modes), "%s: %zu listeners", t->name, cfg.n_listeners);
		for (size_t k = 0; k < cfg.n_listeners && k < strlen(t->modes); k++) {
			static const char letters[] = "nsri";
			CHECK(letters[cfg.listeners[k].tls] == t->modes[k], "%s: listener %zu tls = %s", t->name, k,
			      tls_mode_name(cfg.listeners[k].tls));
		}
		CHECK(!t->certificate == !cfg.tls.certificate &&
		      (!t->certificate || strcmp(t->certificate, cfg.tls.certificate) == 0),
		      "%s: [tls] certificate '%s'", t->name, cfg.tls.certificate ? cfg.tls.certificate : "(none)");
		CHECK(!t->key == !cfg.tls.key && (!t->key || strcmp(t->key, cfg.tls.key) == 0), "%s: [tls] key '%s'",
		      t->name, cfg.tls.key ? cfg.tls.key : "(none)");
		CHECK(!t->own == !cfg.listeners[0].certificate &&
		      (!t->own || strcmp(t->own, cfg.listeners[0].certificate) == 0), "%s: own certificate '%s'", t->name,
		      cfg.listeners[0].certificate ? cfg.listeners[0].certificate : "(none)");
		CHECK(!cfg.listeners[0].certificate == !cfg.listeners[0].key, "%s: own key", t->name);
		CHECK(cfg.tls.n_extra == t->n_extra, "%s: %zu extra certificates", t->name, cfg.tls.n_extra);
		CHECK(cfg.tls.handshake_timeout == t->handshake_timeout, "%s: handshake_timeout %u", t->name,
		      cfg.tls.handshake_timeout);
		CHECK(!t->priority == !cfg.tls.priority && (!t->priority || strcmp(t->priority, cfg.tls.priority) == 0),
		      "%s: priority '%s'", t->name, cfg.tls.priority ? cfg.tls.priority : "(default)");
		config_free(&cfg);
	}

	/* The extra certificates: names, lines and paths, in file order. */
	CHECK(config_load_string(tls_cases[7].text, "t.conf", &cfg, err, sizeof(err)) == 0, "sni: %s", err);
	if (cfg.tls.n_extra == 2) {
		CHECK(strcmp(cfg.tls.extra[0].name, "b") == 0 && cfg.tls.extra[0].line == 4 &&
		      strcmp(cfg.tls.extra[0].certificate, "/b/c.pem") == 0 && strcmp(cfg.tls.extra[0].key, "/b/k.pem") == 0,
		      "extra 0: %s line %u", cfg.tls.extra[0].name, cfg.tls.extra[0].line);
		CHECK(strcmp(cfg.tls.extra[1].name, "c.example") == 0 && cfg.tls.extra[1].line == 11 &&
		      strcmp(cfg.tls.extra[1].certificate, "/c/c.pem") == 0 && strcmp(cfg.tls.extra[1].key, "/c/k.pem") == 0,
		      "extra 1: %s line %u", cfg.tls.extra[1].name, cfg.tls.extra[1].line);
	}
	config_free(&cfg);
}

/* A relative path: from the current directory for text in memory, from the
 * file's directory for a file, whatever the current directory is then. */
static void test_relative_paths(void)
{
	struct config cfg;
	char err[512], cwd[PATH_MAX], want[PATH_MAX + 64], dir[] = "/tmp/buzon-test-config-XXXXXX", file[128];
	FILE *fp;

	CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
	CHECK(config_load_string("[server]\nhostname = a\ndata_dir = ./var\nlog_file = logs/../buzon.log\n" MX,
				 "t.conf", &cfg, err, sizeof(err)) == 0, "relative: %s", err);
	snprintf(want, sizeof(want), "%s/var", strcmp(cwd, "/") ? cwd : "");
	CHECK(cfg.data_dir && strcmp(cfg.data_dir, want) == 0, "data_dir '%s', want '%s'", cfg.data_dir, want);
	snprintf(want, sizeof(want), "%s/buzon.log", strcmp(cwd, "/") ? cwd : "");
	CHECK(cfg.log_file && strcmp(cfg.log_file, want) == 0, "log_file '%s', want '%s'", cfg.log_file, want);
	config_free(&cfg);

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(file, sizeof(file), "%s/buzon.conf", dir);
	fp = fopen(file, "w");
	CHECK(fp != NULL, "cannot write %s", file);
	if (!fp)
		return;
	fputs("[server]\nhostname = a\ndata_dir = data\n[tls]\ncertificate = tls/c.pem\nkey = ./tls/k.pem\n"
	      "[certificate \"b\"]\ncertificate = ../b.pem\nkey = b.key\n" MX "certificate = mx.pem\nkey = mx.key\n", fp);
	fclose(fp);
	CHECK(chdir("/") == 0, "chdir");
	CHECK(config_load(file, &cfg, err, sizeof(err)) == 0, "file: %s", err);
	snprintf(want, sizeof(want), "%s/data", dir);
	CHECK(cfg.data_dir && strcmp(cfg.data_dir, want) == 0, "data_dir '%s', want '%s'", cfg.data_dir, want);
	/* Certificates and keys too are taken from the file's directory. */
	snprintf(want, sizeof(want), "%s/tls/c.pem", dir);
	CHECK(cfg.tls.certificate && strcmp(cfg.tls.certificate, want) == 0, "certificate '%s'", cfg.tls.certificate);
	snprintf(want, sizeof(want), "%s/tls/k.pem", dir);
	CHECK(cfg.tls.key && strcmp(cfg.tls.key, want) == 0, "key '%s'", cfg.tls.key);
	CHECK(cfg.tls.n_extra == 1 && strcmp(cfg.tls.extra[0].certificate, "/tmp/b.pem") == 0,
	      "extra certificate '%s'", cfg.tls.n_extra ? cfg.tls.extra[0].certificate : "(none)");
	snprintf(want, sizeof(want), "%s/b.key", dir);
	CHECK(cfg.tls.n_extra == 1 && strcmp(cfg.tls.extra[0].key, want) == 0, "extra key");
	snprintf(want, sizeof(want), "%s/mx.pem", dir);
	CHECK(cfg.listeners[0].certificate && strcmp(cfg.listeners[0].certificate, want) == 0,
	      "listener certificate '%s'", cfg.listeners[0].certificate);
	config_free(&cfg);
	snprintf(want, sizeof(want), "%s/data", dir);
	/* The same file named relative to the current directory. */
	CHECK(chdir("/tmp") == 0, "chdir");
	CHECK(config_load(file + 5, &cfg, err, sizeof(err)) == 0, "file: %s", err);
	CHECK(cfg.data_dir && strcmp(cfg.data_dir, want) == 0, "data_dir '%s', want '%s'", cfg.data_dir, want);
	config_free(&cfg);
	/* A NUL byte in a file (the reader of files, not of memory). */
	fp = fopen(file, "w");
	if (fp) {
		static const char text[] = "[server]\nhostname = a\0b\n";
		fwrite(text, 1, sizeof(text) - 1, fp);
		fclose(fp);
	}
	CHECK(config_load(file, &cfg, err, sizeof(err)) < 0 && strstr(err, "buzon.conf:2: line contains a NUL byte"),
	      "NUL in a file: '%s'", err);
	config_free(&cfg);
	/* A directory given as the file. */
	CHECK(config_load(dir, &cfg, err, sizeof(err)) < 0 && strstr(err, "cannot read"), "directory: '%s'", err);
	config_free(&cfg);
	unlink(file);
	rmdir(dir);
	CHECK(chdir(cwd) == 0, "chdir back");
}

/* libinih reads lines into a buffer of 200 octets: 197 characters and a
 * CR LF fit, one more is an error (never a line cut in two). */
static void test_line_limit(void)
{
	struct config cfg;
	char err[512], text[512], line[256];

	for (int len = 196; len <= 199; len++) {
		memset(line, 'x', sizeof(line));
		line[0] = '#';
		line[len] = '\0';
		snprintf(text, sizeof(text), "[server]\r\nhostname = a\r\ndata_dir = /d\r\n%s\r\n" MX, line);
		int r = config_load_string(text, "t.conf", &cfg, err, sizeof(err));
		if (len <= 197)
			CHECK(r == 0, "a line of %d characters: %s", len, err);
		else
			CHECK(r < 0 && strstr(err, "t.conf:4: line is longer than 197 characters"),
			      "a line of %d characters: '%s'", len, r < 0 ? err : "accepted");
		config_free(&cfg);
	}
}

static void test_quote(void)
{
	char out[300];

	CHECK(strcmp(config_quote("plain text", out, sizeof(out)), "plain text") == 0, "'%s'", out);
	CHECK(strcmp(config_quote("a\x01\x7f\x80\\", out, sizeof(out)), "a\\x01\\x7f\\x80\\\\") == 0, "'%s'", out);
	config_quote("0123456789012345678901234567890123456789012345678901234567890123456789", out, sizeof(out));
	CHECK(strcmp(out, "0123456789012345678901234567890123456789012345678901234567890123...") == 0, "'%s'", out);
	/* Never past the buffer, and never half an escape. */
	CHECK(strcmp(config_quote("ab\x01", out, 5), "ab") == 0, "'%s'", out);
}

int main(void)
{
	struct config cfg;
	char err[512];
	uint64_t sz;
	unsigned d;

	CHECK(config_load_string(minimal, "t.conf", &cfg, err, sizeof(err)) == 0, "minimal: %s", err);
	CHECK(strcmp(cfg.hostname, "mail.example.test") == 0, "hostname");
	CHECK(cfg.n_listeners == 1 && cfg.listeners[0].protocol == PROTO_SMTP, "listener");
	CHECK(cfg.listeners[0].n_addrs == 1 && strcmp(cfg.listeners[0].addrs[0].text, "127.0.0.1:2525") == 0, "address");
	CHECK(cfg.smtp.max_recipients == 100, "default max_recipients");
	CHECK(cfg.smtp.received_hide_client == 0, "received_hide_client defaults to no");
	CHECK(cfg.log_file == NULL, "log_file defaults to standard error");
	config_free(&cfg);

	/* the listener policy keys and [auth], parsed and stored */
	CHECK(config_load_string("[server]\nhostname = h\ndata_dir = /d\n[smtp]\nmax_recipients = 7\n"
				 "[auth]\nlockout_failures = 3\nlockout_window = 2m\nlockout_time = 1h\n"
				 "auth_exempt = 192.0.2.1, 2001:db8::/32\nauth_delay_base = 2s\n"
				 "[listener \"x\"]\nprotocol = smtp\naddress = 127.0.0.1:25\n"
				 "allow = 192.0.2.0/24 ::ffff:198.51.100.0/120 2001:db8::/32\ndeny = 192.0.2.7\n"
				 "max_messages_per_ip_per_minute = 60\n"
				 "[listener \"s\"]\nprotocol = submission\naddress = 127.0.0.1:587\nmax_recipients = 9\n"
				 "allow_plaintext_auth = no\n"
				 "[listener \"i\"]\nprotocol = imap\naddress = 127.0.0.1:143\nauth = required\n",
				 "t.conf", &cfg, err, sizeof(err)) == 0, "%s", err);
	CHECK(cfg.auth.lockout_failures == 3 && cfg.auth.lockout_window == 120 && cfg.auth.lockout_time == 3600 &&
	      cfg.auth.n_exempt == 2 && cfg.auth.delay_base == 2 && cfg.auth.delay_free == 2, "[auth]");
	CHECK(cfg.listeners[0].n_allow == 3 && !cfg.listeners[0].allow[1].v6 && cfg.listeners[0].allow[1].prefix == 24,
	      "allow, the IPv4-mapped rule as IPv4");
	CHECK(cfg.listeners[0].n_deny == 1 && cfg.listeners[0].deny[0].prefix == 32, "deny");
	CHECK(cfg.listeners[0].max_messages_per_ip_per_minute == 60 && cfg.listeners[0].max_recipients == 7 &&
	      cfg.listeners[0].auth == AUTH_NONE && !cfg.listeners[0].submission &&
	      cfg.listeners[0].allow_plaintext_auth == PLAINTEXT_AUTH_LOOPBACK, "smtp listener");
	CHECK(cfg.listeners[1].protocol == PROTO_SMTP && cfg.listeners[1].submission &&
	      cfg.listeners[1].auth == AUTH_REQUIRED && cfg.listeners[1].max_recipients == 9 &&
	      cfg.listeners[1].allow_plaintext_auth == PLAINTEXT_AUTH_NO, "submission listener");
	CHECK(cfg.listeners[2].auth == AUTH_REQUIRED, "imap listener");
	config_free(&cfg);
	CHECK(config_load_string(minimal, "t.conf", &cfg, err, sizeof(err)) == 0, "minimal: %s", err);
	CHECK(cfg.auth.lockout_failures == 10 && cfg.auth.lockout_window == 600 && cfg.auth.lockout_time == 900 &&
	      cfg.auth.n_exempt == 0 && cfg.auth.delay_free == 2 && cfg.auth.delay_base == 1 &&
	      cfg.auth.delay_max == 15 && cfg.auth.delay_decay == 60, "[auth] defaults");
	CHECK(cfg.listeners[0].n_allow == 0 && cfg.listeners[0].max_messages_per_ip_per_minute == 0, "defaults");
	config_free(&cfg);

	CHECK(config_load_string("[server]\nhostname = h\ndata_dir = /d\n[listener \"x\"]\nprotocol = smtp\n"
				 "address = 127.0.0.1:25 [::1]:25\n[smtp]\nmax_message_size = 10M\n"
				 "command_timeout = 2m\nrecipient_delimiter =\nreceived_hide_client = yes\n",
				 "t.conf", &cfg, err, sizeof(err)) == 0, "%s", err);
	CHECK(cfg.listeners[0].n_addrs == 2, "two addresses");
	CHECK(cfg.listeners[0].addrs[1].ss.ss_family == AF_INET6, "IPv6");
	CHECK(cfg.smtp.max_message_size == 10 * 1024 * 1024, "max_message_size");
	CHECK(cfg.smtp.command_timeout == 120, "command_timeout");
	CHECK(cfg.smtp.received_hide_client == 1, "received_hide_client");
	CHECK(cfg.smtp.recipient_delimiter[0] == '\0', "empty recipient_delimiter");
	config_free(&cfg);

	test_bad();
	test_good();
	test_tls();
	test_relative_paths();
	test_line_limit();
	test_quote();

	CHECK(config_parse_size("512k", &sz) == 0 && sz == 524288, "512k");
	CHECK(config_parse_size("1G", &sz) == 0 && sz == 1073741824ULL, "1G");
	CHECK(config_parse_size("-1", &sz) < 0, "-1");
	CHECK(config_parse_size("10X", &sz) < 0, "10X");
	CHECK(config_parse_duration("5m", &d) == 0 && d == 300, "5m");
	CHECK(config_parse_duration("1h", &d) == 0 && d == 3600, "1h");
	CHECK(config_parse_duration("30", &d) == 0 && d == 30, "30");
	CHECK(config_parse_duration("5x", &d) < 0, "5x");

	if (failures) {
		printf("config: %d check(s) failed\n", failures);
		return 1;
	}
	printf("config: all checks passed\n");
	return 0;
}
