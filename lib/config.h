#ifndef BUZON_CONFIG_H
#define BUZON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/cidr.h"
#include "lib/log.h"
#include "lib/tls-types.h"

/*
 * The configuration: an INI file read with libinih. Every key is documented
 * in docs/configuration.md. config_load() checks every section, key and value
 * and reports the first problem as "FILE:LINE: reason".
 */

enum proto { PROTO_SMTP, PROTO_POP3, PROTO_IMAP };

enum bare_lf_policy { BARE_LF_NORMALIZE, BARE_LF_REJECT };

/* A listener's auth key: whether a client must log in (SMTP AUTH before
 * MAIL on submission; POP3 and IMAP always require it). */
enum auth_policy { AUTH_NONE, AUTH_OPTIONAL, AUTH_REQUIRED };

/* A listener's allow_plaintext_auth: where PLAIN, LOGIN, USER/PASS and IMAP
 * LOGIN are offered without TLS. */
enum plaintext_auth { PLAINTEXT_AUTH_NO, PLAINTEXT_AUTH_LOOPBACK, PLAINTEXT_AUTH_YES };

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[80];          /* as written: "127.0.0.1:2525", "[::1]:2525" */
};

struct listener_config {
	char *name;
	unsigned line;          /* line of the section header, for errors */
	unsigned address_line;  /* line of the address key, for bind errors */
	enum proto protocol;
	int have_protocol;
	struct listen_addr *addrs;
	size_t n_addrs;
	/* Connection caps of this listener alone (0 in the file: [server]'s
	 * value); a flood on one listener never takes another's slots. */
	unsigned max_connections;
	unsigned max_connections_per_ip;
	/* Of max_connections, how many may be not yet logged in (POP3, IMAP):
	 * the rest is kept for sessions that have authenticated. */
	unsigned max_unauthenticated;
	/* TLS of this listener (docs/configuration.md [listener]): unset, it
	 * is starttls when a certificate is configured, else none. */
	enum tls_mode tls;
	int have_tls;
	char *certificate;      /* this listener's own PEM chain and key; NULL: [tls]'s */
	char *key;
	/* Client-address rules (lib/cidr.h): an empty allow admits everyone;
	 * deny wins over allow. Checked by lib/net.c at accept. */
	struct cidr *allow;
	size_t n_allow;
	struct cidr *deny;
	size_t n_deny;
	/* SMTP: messages (MAIL commands) a minute from one client address on
	 * this listener; 0: no limit. */
	unsigned max_messages_per_ip_per_minute;
	/* SMTP: recipients of one message; 0 in the file: [smtp]'s. */
	unsigned max_recipients;
	/* protocol = submission: an SMTP listener (protocol PROTO_SMTP) for
	 * message submission (RFC 6409); auth defaults to required. */
	int submission;
	enum auth_policy auth;  /* smtp: none, submission/pop3/imap: required */
	int have_auth;
	enum plaintext_auth allow_plaintext_auth; /* default loopback */
};

/* A certificate and key: [tls]'s own, or a [certificate "NAME"] section
 * (several are chosen by the client's SNI). */
struct tls_cert_config {
	char *name;             /* "" for [tls]'s, else the section's name */
	unsigned line;          /* line of the section header, for errors */
	char *certificate;      /* PEM file (a chain allowed), absolute; or "auto" */
	char *key;              /* PEM file, absolute; NULL with "auto" */
};

/* [tls]: see docs/configuration.md. */
struct tls_config {
	char *certificate;      /* absolute path, "auto", or NULL: none */
	char *key;
	unsigned line;          /* line of the [tls] header, for errors */
	char *priority;         /* GnuTLS priority string; NULL: the built-in default */
	unsigned handshake_timeout; /* seconds a handshake may take */
	struct tls_cert_config *extra; /* [certificate "NAME"] sections, in file order */
	size_t n_extra;
};

struct smtp_config {
	uint64_t max_message_size;  /* octets; SIZE announced and enforced */
	uint64_t max_buffered;      /* octets of messages held in memory by all sessions */
	unsigned max_recipients;
	enum bare_lf_policy bare_newline;
	char recipient_delimiter[8]; /* "" disables plus-addressing */
	unsigned command_timeout;    /* seconds waiting for a command */
	unsigned data_timeout;       /* seconds waiting for the next data block */
	unsigned max_bad_commands;
	unsigned max_pipeline;       /* commands buffered ahead of their replies */
	unsigned min_data_rate;      /* octets/s that extend data_timeout during DATA/BDAT */
	int received_hide_client;    /* authenticated mail: Received names neither the client's
				      * address nor its DNS name (default 0) */
};

/* [pop3]: see docs/configuration.md. */
struct pop3_config {
	unsigned idle_timeout;       /* seconds without a command before autologout (RFC 1939: >= 600) */
	unsigned max_line;           /* octets of a command or SASL line, CRLF included */
	unsigned max_commands;       /* commands in one session; past it only QUIT is served */
	unsigned max_bad_commands;   /* client errors before the session is closed */
	unsigned max_auth_failures;  /* failed logins before the session is closed */
};

/* [imap]: see docs/configuration.md. */
struct imap_config {
	char hostname[256];          /* copied from [server] for the greeting */
	unsigned idle_timeout;       /* seconds without a command (RFC 3501: >= 30 min) */
	unsigned max_line;           /* octets of one command, literals excluded */
	uint64_t max_literal;        /* largest literal: APPENDLIMIT */
	uint64_t max_buffered;       /* octets of literals held by all sessions together */
	unsigned login_timeout;      /* seconds from connect to a completed login */
	uint64_t login_max_literal;  /* largest literal (and sum of one command's) before login */
	uint64_t login_max_buffered; /* octets of literals held by sessions not logged in */
	unsigned max_depth;          /* nesting of lists */
	unsigned max_bad_commands;   /* BAD replies before the session is closed */
	unsigned max_auth_failures;  /* failed logins before the session is closed */
};

/* [auth]: the one failed-login table of every protocol (lib/lockout.h);
 * see docs/configuration.md. */
struct auth_config {
	unsigned delay_free;         /* failures per address or user before delays start */
	unsigned delay_base;         /* seconds: the first delay, doubled per further failure; 0: none */
	unsigned delay_max;          /* seconds: the longest delay */
	unsigned delay_decay;        /* seconds: one failure is forgotten per quiet interval */
	unsigned lockout_failures;   /* failures within lockout_window that lock an address out; 0: never */
	unsigned lockout_window;     /* seconds */
	unsigned lockout_time;       /* seconds */
	struct cidr *exempt;         /* auth_exempt: never delayed or locked out */
	size_t n_exempt;
};

struct config {
	char *path;
	char *hostname;
	char *data_dir;              /* absolute: a relative one is resolved at load */
	char *log_file;              /* [server] log_file (absolute); NULL: standard error */
	char *postmaster;            /* [server] postmaster address; NULL: the oldest user */
	enum log_level log_level;
	unsigned max_connections;        /* default of each listener's cap */
	unsigned max_connections_per_ip; /* default of each listener's cap */
	char *user;                  /* service user when started as root */
	char *group;                 /* its group; NULL: the user's primary group */
	unsigned shutdown_timeout;   /* seconds to finish sessions on SIGTERM */
	unsigned delivery_threads;   /* libuv threadpool size */
	struct smtp_config smtp;
	struct pop3_config pop3;
	struct imap_config imap;
	struct auth_config auth;
	struct tls_config tls;
	struct listener_config *listeners;
	size_t n_listeners;
};

/* Fills c with the [imap] defaults of docs/configuration.md. */
void imap_config_defaults(struct imap_config *c);
/* Fills c with the [pop3] defaults of docs/configuration.md. */
void pop3_config_defaults(struct pop3_config *c);
/* Fills cfg with the defaults of docs/configuration.md and no listeners. */
void config_defaults(struct config *cfg);
/* Reads and checks path; 0 or -1 with "FILE:LINE: reason" in err. */
int config_load(const char *path, struct config *cfg, char *err, size_t errlen);
/* Same for text held in memory; name stands for the file in messages.
 * Relative paths are taken from the current directory. */
int config_load_string(const char *text, const char *name, struct config *cfg,
		       char *err, size_t errlen);
/* Same for len octets at data, which may hold NUL bytes (an error). */
int config_load_buffer(const char *data, size_t len, const char *name, struct config *cfg,
		       char *err, size_t errlen);
/* Frees everything config_load() allocated. */
void config_free(struct config *cfg);

/* Parses "host:port" or "[v6]:port" into a; 0 or -1 with reason in err. */
int config_parse_address(const char *text, struct listen_addr *a, char *err, size_t errlen);
/* Parses a size like "10485760", "10M", "512k", "1G"; 0 or -EINVAL. */
int config_parse_size(const char *s, uint64_t *r);
/* Parses a duration like "300", "300s", "5m", "1h"; 0 or -EINVAL. */
int config_parse_duration(const char *s, unsigned *r);
/* Copies s into out (size outlen) for an error line: printable ASCII as
 * is, a backslash doubled, any other octet as \xNN, cut after 64 characters
 * with "...". Returns out. */
const char *config_quote(const char *s, char *out, size_t outlen);
/* Returns "smtp", "pop3" or "imap". */
const char *proto_name(enum proto p);
/* Fills c with the [auth] defaults of docs/configuration.md. */
void auth_config_defaults(struct auth_config *c);

#endif
