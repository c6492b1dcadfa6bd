/* Shared by tests/unit/test-imap-envelope.c and tests/fuzz/fuzz-mime.c. */
#include "tests/common/imap-syntax.h"

#include <string.h>

bool imap_syntax_ok(const char *s, size_t n)
{
	size_t i = 0;
	int depth = 0;
	/* what came last: 0 nothing or '(', 1 a space, 2 a token, 3 ')' (")(" is
	 * how body-type-mpart joins its bodies) */
	int last = 0;

	while (i < n) {
		char c = s[i];

		if (c == '(') {
			if (last == 2)
				return false;
			depth++;
			i++;
			last = 0;
			continue;
		}
		if (c == ')') {
			if (--depth < 0 || last == 1)
				return false;
			i++;
			last = 3;
			continue;
		}
		if (c == ' ') {
			if (last < 2)
				return false;
			last = 1;
			i++;
			continue;
		}
		if (last >= 2)
			return false;
		if (c == '"') {
			i++;
			while (i < n && s[i] != '"') {
				unsigned char q = (unsigned char)s[i];

				if (q == '\r' || q == '\n' || q == 0 || q >= 0x80)
					return false;
				if (q == '\\') {
					if (i + 1 >= n || (s[i + 1] != '"' && s[i + 1] != '\\'))
						return false;
					i++;
				}
				i++;
			}
			if (i >= n)
				return false;
			i++;
		} else if (c == '{') {
			size_t len = 0;

			i++;
			if (i >= n || s[i] < '0' || s[i] > '9')
				return false;
			while (i < n && s[i] >= '0' && s[i] <= '9')
				len = len * 10 + (size_t)(s[i++] - '0');
			if (n - i < 3 || s[i] != '}' || s[i + 1] != '\r' || s[i + 2] != '\n')
				return false;
			i += 3;
			if (n - i < len || memchr(s + i, '\0', len))
				return false;
			i += len;
		} else if (n - i >= 3 && memcmp(s + i, "NIL", 3) == 0) {
			i += 3;
		} else if (c >= '0' && c <= '9') {
			while (i < n && s[i] >= '0' && s[i] <= '9')
				i++;
		} else {
			return false;
		}
		last = 2;
	}
	return depth == 0 && last != 1;
}
