#ifndef BUZON_STORAGE_PASSWORD_H
#define BUZON_STORAGE_PASSWORD_H

#include <stddef.h>

/* The size of a buffer that holds any hash password_hash() writes or a
 * stored hash may have (libcrypt's CRYPT_OUTPUT_SIZE). */
#define PASSWORD_HASH_MAX 384

/* Hashes password with yescrypt (crypt_gensalt_rn "$y$" + crypt_rn) into out
 * (at least 384 bytes); 0 or a negative code. */
int password_hash(const char *password, char *out, size_t outlen);
/* 0 when password matches hash (any scheme libcrypt verifies: $y$, $2b$, $6$,
 * $5$), -EACCES when not, -EINVAL for a hash libcrypt cannot use. Constant-time
 * comparison. */
int password_verify(const char *password, const char *hash);
/* 0 when hash is a complete hash of a scheme this libcrypt verifies (what
 * crypt(3) itself would write: same salt part, same length), -EINVAL when not:
 * for imports, so that a truncated or mistyped hash is refused rather than
 * stored as an account nobody can log in to. */
int password_check_hash(const char *hash);

#endif
