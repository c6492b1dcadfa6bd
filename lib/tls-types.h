#ifndef BUZON_TLS_TYPES_H
#define BUZON_TLS_TYPES_H

/*
 * What a protocol session knows of TLS: how its listener uses it and, once
 * a handshake is done, what was agreed. Sessions never see a socket or a
 * GnuTLS object; lib/net.c owns those.
 */

enum tls_mode {
	TLS_MODE_NONE,       /* clear text only; STARTTLS/STLS not offered */
	TLS_MODE_STARTTLS,   /* clear text, STARTTLS/STLS offered */
	TLS_MODE_REQUIRED,   /* STARTTLS/STLS offered and needed before anything else */
	TLS_MODE_IMPLICIT,   /* TLS from the first byte (RFC 8314: 465, 993, 995) */
};

/* The outcome of a handshake; valid as long as the connection. */
struct tls_info {
	char version[16];    /* "TLS1.3" */
	char cipher[96];     /* "TLS_AES_256_GCM_SHA384", as in Received lines */
	char sni[256];       /* the server name the client asked for, "" if none */
	/* Channel binding for SASL -PLUS mechanisms: "tls-exporter" (RFC 9266)
	 * on TLS 1.3, "tls-unique" (RFC 5929) on TLS 1.2; "" when GnuTLS gave
	 * none. */
	char cb_type[16];
	unsigned char cb_data[64];
	unsigned cb_len;
};

/* "none", "starttls", "required" or "implicit". */
const char *tls_mode_name(enum tls_mode m);

#endif
