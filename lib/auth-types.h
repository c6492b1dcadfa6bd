#ifndef BUZON_AUTH_TYPES_H
#define BUZON_AUTH_TYPES_H

#include <stddef.h>

/*
 * What a protocol session and its glue exchange during a SASL
 * authentication (SMTP AUTH, RFC 4954; later POP3 AUTH and IMAP
 * AUTHENTICATE). Sessions do the framing and the base64 and never see GNU
 * SASL; the glue runs the mechanism (on a worker) and answers each step.
 * No sockets and no gsasl types here, so that unit tests and fuzzers can
 * answer steps themselves.
 */

/* The outcome of one step. */
enum auth_status {
	AUTH_CONTINUE,   /* send out as the next challenge, wait for the client's answer */
	AUTH_OK,         /* authenticated as user */
	AUTH_FAILED,     /* wrong credentials (unknown user, disabled user, wrong password alike) */
	AUTH_TEMPFAIL,   /* the directory or the worker could not answer now */
	AUTH_MALFORMED,  /* the response is not a valid message for the mechanism */
};

/*
 * One step of a SASL exchange that a session asks of its glue (which runs
 * it on a worker with GNU SASL). The session owns the struct; the glue
 * fills the second part before it calls the session's x_session_auth_done()
 * (later, or from inside the request).
 */
struct auth_step {
	char mech[32];                 /* upper-cased mechanism name, set by the session on every step */
	int first;                     /* 1: the first step of a new exchange */
	const unsigned char *in;       /* the client's DECODED response (valid until _done) */
	size_t in_len;
	int in_absent;                 /* first step without an initial response */
	/* filled by the glue before x_session_auth_done(): */
	enum auth_status status;
	unsigned char *out;            /* DECODED server challenge (malloc'd; the session wipes and frees it) */
	size_t out_len;
	char user[321];                /* canonical address on AUTH_OK; on AUTH_FAILED the glue may put
					* the name the client gave here, for the log line only */
};

#endif
