/* Unit tests of struct buf: the hard maximum, appends, consume, detach. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

int main(void)
{
	struct buf b;

	buf_init(&b, 10);
	CHECK(b.data == NULL && b.len == 0);
	CHECK(buf_add(&b, "hello", 5) == 0);
	CHECK(b.len == 5 && strcmp(b.data, "hello") == 0);
	CHECK(buf_room(&b) == 5);
	/* Past the maximum: refused, buffer unchanged. */
	CHECK(buf_add(&b, "world!", 6) == -ENOBUFS);
	CHECK(b.len == 5 && strcmp(b.data, "hello") == 0);
	CHECK(buf_add(&b, "world", 5) == 0);
	CHECK(b.len == 10 && strcmp(b.data, "helloworld") == 0);
	CHECK(buf_addch(&b, 'x') == -ENOBUFS);
	CHECK(buf_printf(&b, "%d", 1) == -ENOBUFS);
	CHECK(b.cap <= 11);
	buf_consume(&b, 3);
	CHECK(b.len == 7 && strcmp(b.data, "loworld") == 0);
	CHECK(buf_printf(&b, "%03d", 7) == 0);
	CHECK(strcmp(b.data, "loworld007") == 0);
	buf_consume(&b, 100);
	CHECK(b.len == 0 && b.data[0] == '\0');
	buf_release(&b);
	CHECK(b.data == NULL && b.max == 10);

	/* One byte at a time up to the limit, then refusal. */
	buf_init(&b, 1000);
	for (int i = 0; i < 1000; i++)
		CHECK(buf_addch(&b, (char)('a' + i % 26)) == 0);
	CHECK(buf_addch(&b, 'z') == -ENOBUFS);
	CHECK(b.len == 1000 && b.data[1000] == '\0');
	size_t len;
	char *p = buf_detach(&b, &len);
	CHECK(len == 1000 && p[0] == 'a' && p[999] == (char)('a' + 999 % 26));
	free(p);
	CHECK(b.data == NULL && b.len == 0);

	/* Embedded NULs are kept. */
	buf_init(&b, 0);
	CHECK(buf_add(&b, "a\0b", 3) == 0);
	CHECK(b.len == 3 && b.data[1] == '\0' && b.data[2] == 'b');
	buf_release(&b);

	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("buf: all checks passed\n");
	return 0;
}
