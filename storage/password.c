#include "storage/password.h"

#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

/*
 * struct crypt_data is about 32 KiB: too big for the small stacks of worker
 * threads, so it lives on the heap, and it is wiped before it is freed because
 * the hashing state holds the password.
 */
static struct crypt_data *crypt_data_new(void)
{
	return xcalloc(1, sizeof(struct crypt_data));
}

static void crypt_data_free(struct crypt_data **cd)
{
	wipe(*cd, sizeof(**cd));
	free(*cd);
	*cd = NULL;
}

int password_hash(const char *password, char *out, size_t outlen)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	size_t len;
	int r = 0;

	if (!password || !out)
		return -EINVAL;
	/* count 0 picks libxcrypt's default cost; NULL rbytes lets it read
	 * the random salt from the kernel itself. */
	if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)))
		return errno ? -errno : -EINVAL;
	cd = crypt_data_new();
	h = crypt_rn(password, salt, cd, sizeof(*cd));
	if (!h || h[0] == '*') {
		r = (h || !errno) ? -EINVAL : -errno;
	} else {
		len = strlen(h);
		if (len >= outlen)
			r = -ENOBUFS;
		else
			memcpy(out, h, len + 1);
	}
	crypt_data_free(&cd);
	wipe(salt, sizeof(salt));
	return r;
}

/* Compares two strings in a time that depends on their lengths only. */
static int ct_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;
	size_t n = la < lb ? la : lb;

	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

int password_verify(const char *password, const char *hash)
{
	struct crypt_data *cd;
	const char *h;
	int r;

	if (!password || !hash || hash[0] != '$')
		return -EINVAL;
	cd = crypt_data_new();
	h = crypt_rn(password, hash, cd, sizeof(*cd));
	if (!h || h[0] == '*')
		r = -EINVAL;
	else
		r = ct_streq(h, hash) ? 0 : -EACCES;
	crypt_data_free(&cd);
	return r;
}

int password_check_hash(const char *hash)
{
	struct crypt_data *cd;
	const char *h, *salt_end;
	int r = -EINVAL;

	if (!hash || hash[0] != '$' || strlen(hash) >= PASSWORD_HASH_MAX)
		return -EINVAL;
	salt_end = strrchr(hash, '$');
	cd = crypt_data_new();
	h = crypt_rn("", hash, cd, sizeof(*cd));
	/* crypt(3) reads only the settings and salt of hash and writes them
	 * back with its own result: a well-formed hash has the same shape. */
	if (h && h[0] != '*' && strlen(h) == strlen(hash) &&
	    strncmp(h, hash, (size_t)(salt_end - hash) + 1) == 0)
		r = 0;
	crypt_data_free(&cd);
	return r;
}
