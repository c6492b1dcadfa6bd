#ifndef BUZON_SMTP_PARSE_H
#define BUZON_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * SMTP command line parsing (RFC 5321 4.1, 1870, 3030, 6152, 6531). These
 * functions know nothing of sessions: they take one command line, already
 * stripped of its CRLF and free of NUL, CR and LF bytes, and fill a struct.
 * On a client error they return -EINVAL and point *reply_r at a static
 * reply line (code, enhanced code, text; no CRLF) for the session to send.
 */

/* Command line, CRLF included (RFC 5321 4.5.3.1.4). */
#define SMTP_LINE_MAX 512
/* Text line of message content, CRLF included (RFC 5321 4.5.3.1.6). */
#define SMTP_TEXT_LINE_MAX 1000
/* Reverse-path or forward-path, punctuation included (RFC 5321 4.5.3.1.3). */
#define SMTP_PATH_MAX 256
/* Local part and domain (RFC 5321 4.5.3.1.1 and 4.5.3.1.2). */
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
/* Longest verb we know ("STARTTLS") with room to spare. */
#define SMTP_VERB_MAX 15

struct smtp_cmdline {
	char verb[SMTP_VERB_MAX + 1]; /* upper-cased */
	const char *arg;              /* points into the line; "" when none */
	size_t arg_len;               /* trailing spaces removed */
};

/*
 * Splits a command line into its verb and argument. The verb is 1 to
 * SMTP_VERB_MAX letters, followed by the end of the line or by spaces and the
 * argument. Returns 0, or -EINVAL when the line does not start with a verb.
 */
int smtp_parse_cmdline(const char *line, size_t len, struct smtp_cmdline *c);

enum smtp_body { SMTP_BODY_UNSPEC, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };

struct smtp_mail_args {
	char path[SMTP_PATH_MAX + 1]; /* the mailbox without <> and route; "" is the null reverse-path */
	int has_size;
	uint64_t size;                /* SIZE= value; UINT64_MAX when it does not fit */
	enum smtp_body body;
	int smtputf8;                 /* the SMTPUTF8 parameter was given */
	int utf8;                     /* the path holds non-ASCII octets */
};

struct smtp_rcpt_args {
	char path[SMTP_PATH_MAX + 1]; /* the final mailbox, without <> and source route */
	int postmaster;               /* "<Postmaster>" without a domain: path is "Postmaster" */
	int route;                    /* a source route was given and dropped */
	int utf8;
};

/*
 * Parses the argument of MAIL: "FROM:" Reverse-path [SP Mail-parameters].
 * Known parameters: SIZE=, BODY=7BIT|8BITMIME|BINARYMIME, SMTPUTF8; any
 * other gives 555 5.5.4. Spaces after the colon are tolerated, the angle
 * brackets are not optional. A source route is accepted and dropped.
 */
int smtp_parse_mail(const char *arg, struct smtp_mail_args *m, const char **reply_r);

/*
 * Parses the argument of RCPT: "TO:" Forward-path [SP Rcpt-parameters]. No
 * RCPT parameter is supported (555 5.5.4). "<Postmaster>" without a domain
 * is accepted (RFC 5321 4.5.1). A source route "<@a,@b:user@dom>" is accepted
 * and dropped: only the final mailbox is kept (RFC 5321 3.6.1, appendix C).
 */
int smtp_parse_rcpt(const char *arg, struct smtp_rcpt_args *r, const char **reply_r);

/* Parses the argument of BDAT: chunk-size [SP "LAST"] (RFC 3030). */
int smtp_parse_bdat(const char *arg, uint64_t *size_r, int *last_r, const char **reply_r);

/*
 * Checks s[0..len) as a Mailbox (RFC 5321 4.1.2, with RFC 6531 UTF-8 in the
 * local part and domain) and writes its canonical form to out (size outlen):
 * a quoted local part whose content is a plain dot-string loses its quotes
 * and backslashes; anything else is copied as written. Returns the length
 * written, or -EINVAL.
 */
int smtp_parse_mailbox(const char *s, size_t len, char *out, size_t outlen);

/* Checks s[0..len) as a Domain: LDH labels (UTF-8 labels allowed), 1 to 63
 * octets each, SMTP_DOMAIN_MAX in all. 0 or -EINVAL. */
int smtp_check_domain(const char *s, size_t len);

/* Returns the length of the valid UTF-8 sequence at s (at most len octets),
 * or 0 when s does not start one (overlong forms and surrogates included). */
size_t smtp_utf8_seq(const unsigned char *s, size_t len);

#endif
