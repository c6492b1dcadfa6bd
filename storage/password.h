#ifndef BUZON_STORAGE_PASSWORD_H
#define BUZON_STORAGE_PASSWORD_H

#include <stddef.h>

/* Hashes password with yescrypt (crypt_gensalt_rn "$y$" + crypt_rn) into out
 * (at least 384 bytes); 0 or a negative code. */
int password_hash(const char *password, char *out, size_t outlen);
/* 0 when password matches hash (any scheme libcrypt verifies: $y$, $2b$, $6$,
 * $5$), -EACCES when not, -EINVAL for a hash libcrypt cannot use. Constant-time
 * comparison. */
int password_verify(const char *password, const char *hash);

#endif
