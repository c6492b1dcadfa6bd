/* Unit tests of the configuration reader: every error names the line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static const char minimal[] =
	"[server]\n"
	"hostname = mail.example.test\n"
	"data_dir = /var/lib/buzon\n"
	"\n"
	"[listener \"mx\"]\n"
	"protocol = smtp\n"
	"address = 127.0.0.1:2525\n";

struct bad_case {
	const char *text;
	const char *want; /* substring of the error, with the line */
};

static const struct bad_case bad[] = {
	{ "[server]\nhostname = a\ndata_dir = /x\n[bogus]\nkey = 1\n", "t.conf:5: unknown section [bogus]" },
	{ "[server]\nhostname = a\ndata_dir = /x\ncolour = blue\n", "t.conf:4: [server]: unknown key 'colour'" },
	{ "[server]\nhostname = a b\n", "t.conf:2: hostname 'a b' is not a domain name" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[listener \"mx\"]\nprotocol = smtp\naddress = 127.0.0.1:99999\n",
	  "t.conf:6: listener \"mx\": address '127.0.0.1:99999' has a bad port" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[listener \"mx\"]\nprotocol = smtp\naddress = 300.0.0.1:25\n",
	  "t.conf:6: listener \"mx\": address '300.0.0.1:25': '300.0.0.1' is not an IPv4 address" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[listener \"mx\"]\nprotocol = smtp\naddress = ::1:25\n",
	  "t.conf:6: listener \"mx\": address '::1:25' is not host:port (write IPv6 as [addr]:port)" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[listener \"mx\"]\nprotocol = gopher\n",
	  "t.conf:5: listener \"mx\": protocol 'gopher' is not smtp, pop3 or imap" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[listener \"mx\"]\naddress = 127.0.0.1:25\n",
	  "t.conf:4: listener \"mx\": protocol is not set" },
	{ "[server]\nhostname = a\ndata_dir = /x\n", "t.conf: no [listener \"name\"] section" },
	{ "[server]\nhostname = a\n[listener \"mx\"]\nprotocol = smtp\naddress = 127.0.0.1:25\n",
	  "t.conf: [server] data_dir is not set" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[smtp]\nmax_message_size = lots\n",
	  "t.conf:5: max_message_size 'lots' is not a size" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[smtp]\nbare_newline = maybe\n",
	  "t.conf:5: bare_newline 'maybe' is not normalize or reject" },
	{ "[server]\nhostname = a\nhostname = b\n", "t.conf:3: [server]: key 'hostname' is set twice" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[listener \"a\"]\nprotocol = smtp\naddress = 127.0.0.1:25\n"
	  "[listener \"b\"]\nprotocol = smtp\naddress = 127.0.0.1:25\n",
	  "t.conf:9: listener \"b\": address 127.0.0.1:25 is already used by listener \"a\"" },
	{ "this is not ini\n", "t.conf:1:" },
	{ "[listener mx]\nprotocol = smtp\n", "t.conf:2: section [listener mx]: write listeners as [listener \"name\"]" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[imap]\nmax_buffered = 10k\n",
	  "t.conf:5: max_buffered '10k' is not a size from 1M to 1T" },
	{ "[server]\nhostname = a\ndata_dir = /x\n[imap]\nmax_literal = 60M\nmax_buffered = 50M\n"
	  "[listener \"mx\"]\nprotocol = imap\naddress = 127.0.0.1:143\n",
	  "t.conf: [imap] max_buffered (52428800) is smaller than max_literal (62914560)" },
};

int main(void)
{
	struct config cfg;
	char err[512];
	uint64_t sz;
	unsigned d;

	CHECK(config_load_string(minimal, "t.conf", &cfg, err, sizeof(err)) == 0);
	CHECK(strcmp(cfg.hostname, "mail.example.test") == 0);
	CHECK(strcmp(cfg.data_dir, "/var/lib/buzon") == 0);
	CHECK(cfg.n_listeners == 1 && cfg.listeners[0].protocol == PROTO_SMTP);
	CHECK(cfg.listeners[0].n_addrs == 1 && strcmp(cfg.listeners[0].addrs[0].text, "127.0.0.1:2525") == 0);
	CHECK(cfg.smtp.max_recipients == 100);
	config_free(&cfg);

	CHECK(config_load_string("[server]\nhostname = h\ndata_dir = /d\n[listener \"x\"]\nprotocol = smtp\n"
				 "address = 127.0.0.1:25 [::1]:25\n[smtp]\nmax_message_size = 10M\n"
				 "command_timeout = 2m\nrecipient_delimiter =\n",
				 "t.conf", &cfg, err, sizeof(err)) == 0);
	CHECK(cfg.listeners[0].n_addrs == 2);
	CHECK(cfg.listeners[0].addrs[1].ss.ss_family == AF_INET6);
	CHECK(cfg.smtp.max_message_size == 10 * 1024 * 1024);
	CHECK(cfg.smtp.command_timeout == 120);
	CHECK(cfg.smtp.recipient_delimiter[0] == '\0');
	config_free(&cfg);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (config_load_string(bad[i].text, "t.conf", &cfg, err, sizeof(err)) == 0) {
			fprintf(stderr, "bad case %zu accepted\n", i);
			failures++;
		} else if (!strstr(err, bad[i].want)) {
			fprintf(stderr, "bad case %zu: got '%s', want '%s'\n", i, err, bad[i].want);
			failures++;
		}
		config_free(&cfg);
	}

	CHECK(config_parse_size("512k", &sz) == 0 && sz == 524288);
	CHECK(config_parse_size("1G", &sz) == 0 && sz == 1073741824ULL);
	CHECK(config_parse_size("-1", &sz) < 0);
	CHECK(config_parse_size("10X", &sz) < 0);
	CHECK(config_parse_duration("5m", &d) == 0 && d == 300);
	CHECK(config_parse_duration("1h", &d) == 0 && d == 3600);
	CHECK(config_parse_duration("30", &d) == 0 && d == 30);
	CHECK(config_parse_duration("5x", &d) < 0);

	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("config: all checks passed\n");
	return 0;
}
